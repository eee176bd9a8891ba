# SPDX-License-Identifier: LGPL-2.1-or-later
"""Every refused Submit names its error, carries a message, and creates nothing (no record,
no job, no id consumed)."""

import os

import dbus

from jobdtest import *

write_type("echo", "[Type]\nDescription=Echo\nTimeout=1min\n[Resources]\nMemoryMax=64M\n")

first, _ = submit("echo", "{}")
journal = "/var/lib/jobd/journal"
size_before = os.path.getsize(journal)

S = lambda *a, **k: submit(*a, **k)
cases = [
    ("unknown type", ERR + "UnknownType", ("nope", "{}")),
    ("parameters that are not JSON", ERR + "InvalidParameters", ("echo", "{not json")),
    ("parameters nested too deep", ERR + "InvalidParameters", ("echo", "[" * 100000 + "]" * 100000)),
    ("parameters over MaxParameterBytes", ERR + "TooLarge", ("echo", '"' + "x" * (1024 * 1024) + '"')),
    ("exec without argv", ERR + "InvalidParameters", ("exec", "{}")),
    ("exec with an empty argv", ERR + "InvalidParameters", ("exec", '{"argv": []}')),
    ("exec with a non-string argument", ERR + "InvalidParameters", ("exec", '{"argv": ["ls", 1]}')),
    ("exec with a relative cwd", ERR + "InvalidParameters", ("exec", '{"argv": ["ls"], "cwd": "tmp"}')),
    ("exec with a bad env name", ERR + "InvalidParameters", ("exec", '{"argv": ["ls"], "env": {"A=B": "x"}}')),
    ("exec with an unknown key", ERR + "InvalidParameters", ("exec", '{"argv": ["ls"], "shell": true}')),
    ("an unknown option", ERR + "InvalidOption", ("echo", "{}", {"colour": "red"})),
    ("an option of the wrong type", ERR + "InvalidOption", ("echo", "{}", {"priority": "high"})),
    ("priority out of range", ERR + "InvalidOption", ("echo", "{}", {"priority": dbus.Int32(1001)})),
    ("max_attempts 0", ERR + "InvalidOption", ("echo", "{}", {"max_attempts": dbus.UInt32(0)})),
    ("timeout_usec 0", ERR + "InvalidOption", ("echo", "{}", {"timeout_usec": dbus.UInt64(0)})),
    ("an unknown resource", ERR + "InvalidOption", ("echo", "{}", {"resources": dbus.Dictionary({"gpu": dbus.UInt32(1)}, signature="sv")})),
    ("a resource of the wrong type", ERR + "InvalidOption", ("echo", "{}", {"resources": dbus.Dictionary({"nice": "low"}, signature="sv")})),
    ("nice out of range", ERR + "InvalidOption", ("echo", "{}", {"resources": dbus.Dictionary({"nice": dbus.Int32(40)}, signature="sv")})),
    ("after naming a job that does not exist", ERR + "InvalidOption", ("echo", "{}", {"after": dbus.Array([dbus.UInt64(99999)], signature="t")})),
    ("after with too many ids", ERR + "InvalidOption", ("echo", "{}", {"after": dbus.Array([dbus.UInt64(first)] * 65, signature="t")})),
    ("a lock key over 255 bytes", ERR + "InvalidOption", ("echo", "{}", {"lock": "k" * 256})),
]
for name, want, args in cases:
    msg = expect_error(name, want, S, *args)

got, msg = call_error(S, "echo", "{}", {"priority": dbus.Int32(1), "priority ": dbus.Int32(2)})
eq(got, ERR + "InvalidOption", "an option with a near-miss name is refused")
got, msg = call_error(S, "echo", "{}", {"priority": "x"})
ok("'priority'" in msg and "'i'" in msg, "the message names the option and the type it takes", msg)
got, msg = call_error(S, "echo", '"' + "x" * (1024 * 1024) + '"')
ok("MaxParameterBytes" in msg, "TooLarge names the setting to change", msg)

# busctl can send a duplicate key, which python's dict cannot
r = run("busctl", "call", "org.jobd.Jobd1", "/org/jobd/Jobd1", "org.jobd.Jobd1.Manager", "Submit", "ssa{sv}",
        "echo", "{}", "2", "priority", "i", "1", "priority", "i", "2")
ok(r.returncode != 0 and "twice" in r.stderr, "an option given twice is refused", r.stderr)
r = run("busctl", "call", "org.jobd.Jobd1", "/org/jobd/Jobd1", "org.jobd.Jobd1.Manager", "Submit", "ssa{sv}",
        "echo", "{}", "1", "resources", "a{sv}", "2", "nice", "i", "1", "nice", "i", "2")
ok(r.returncode != 0 and "twice" in r.stderr, "a resource given twice is refused", r.stderr)
r = run("busctl", "call", "org.jobd.Jobd1", "/org/jobd/Jobd1", "org.jobd.Jobd1.Manager", "List", "a{sv}",
        "2", "limit", "u", "1", "limit", "u", "2")
ok(r.returncode != 0 and "'limit' is given twice" in r.stderr, "a List filter given twice is refused", r.stderr)

rows = manager().List(dbus.Dictionary({}, signature="sv"))
eq([int(r[0]) for r in rows], [int(first)], "no refused Submit created a job")
eq(os.path.getsize(journal), size_before, "no refused Submit wrote a record")
nxt, _ = submit("echo", "{}")
eq(int(nxt), int(first) + 1, "no refused Submit consumed an id")

# quota: MaxPendingPerUser counts a user's unfinished jobs; root is exempt
with open("/etc/jobd/jobd.conf", "w") as f:
    f.write("[Manager]\nMaxPendingPerUser=2\nMaxParameterBytes=100\n")
manager().Reload()
as_user = lambda *a: run("gdbus", "call", "--system", "--dest", "org.jobd.Jobd1", "--object-path", "/org/jobd/Jobd1",
                         "--method", "org.jobd.Jobd1.Manager.Submit", *a, "{}", user=2002)
r1, r2, r3 = as_user("echo", "{}"), as_user("echo", "{}"), as_user("echo", "{}")
ok(r1.returncode == 0 and r2.returncode == 0, "a user submits up to MaxPendingPerUser jobs", r1.stderr + r2.stderr)
ok(r3.returncode != 0 and "QuotaExceeded" in r3.stderr and "MaxPendingPerUser" in r3.stderr,
   "one more is refused with QuotaExceeded naming the setting", r3.stderr)
n_user = len(manager().List({"owner": dbus.UInt32(2002)}))
eq(n_user, 2, "the refused Submit created nothing")
victim = r1.stdout.split("objectpath '")[1].split("'")[0] if r1.returncode == 0 else "/"
run("gdbus", "call", "--system", "--dest", "org.jobd.Jobd1", "--object-path", victim,
    "--method", "org.jobd.Jobd1.Job.Cancel", user=2002)
r4 = as_user("echo", "{}")
ok(r4.returncode == 0, "a finished job frees its place in the quota", r4.stderr)
got, msg = call_error(S, "echo", '"' + "x" * 200 + '"')
ok(got == ERR + "TooLarge" and "100" in msg, "MaxParameterBytes from jobd.conf applies after Reload", msg)

done()
