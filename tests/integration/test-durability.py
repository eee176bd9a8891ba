# SPDX-License-Identifier: LGPL-2.1-or-later
"""The store's promises, against the real service: acknowledged Submits survive kill -9 under
concurrent load; a torn tail is cut on start and reported; a corrupt record in the middle is
reported with its offset and the records around it survive; state survives restarts."""

import os
import subprocess
import time

import dbus

from jobdtest import *

JOURNAL = "/var/lib/jobd/journal"
write_type("echo", "[Type]\nDescription=Echo\n")

CLIENT = r"""
import sys, dbus
b = dbus.bus.BusConnection(dbus.bus.BUS_SYSTEM)
m = dbus.Interface(b.get_object("org.jobd.Jobd1", "/org/jobd/Jobd1"), "org.jobd.Jobd1.Manager")
n = 0
while n < 100000:
    try:
        jid, _ = m.Submit("echo", '{"client": %s, "n": %d}' % (sys.argv[1], n), dbus.Dictionary({}, signature="sv"))
    except dbus.DBusException as e:
        print("error", e.get_dbus_name(), flush=True)
        break
    print(int(jid), flush=True)
    n += 1
"""

# make sure jobd is up, then start 4 concurrent submitters
submit("echo", "{}")
clients = [subprocess.Popen(["/usr/bin/python3", "-c", CLIENT, str(i)], stdout=subprocess.PIPE, text=True)
           for i in range(4)]
acked = {i: [] for i in range(4)}
# read until every client has had at least 50 Submits acknowledged, then kill jobd mid-stream
for i, c in enumerate(clients):
    while len(acked[i]) < 50:
        line = c.stdout.readline()
        if not line or line.startswith("error"):
            break
        acked[i].append(int(line))
pid_before = jobd_main_pid()
run("kill", "-9", str(pid_before))
for i, c in enumerate(clients):
    for line in c.stdout:
        if line.startswith("error"):
            break
        acked[i].append(int(line))
    c.wait(timeout=60)
all_acked = sorted(x for v in acked.values() for x in v)
ok(all(len(v) >= 50 for v in acked.values()), f"4 concurrent clients had {len(all_acked)} Submits acknowledged before kill -9")
eq(len(set(all_acked)), len(all_acked), "no id was acknowledged twice")

wait_for(lambda: systemctl("is-active", "jobd.service").stdout.strip() != "active", 15, "jobd to die")
systemctl("reset-failed", "jobd.service")
rows = manager().List({"limit": dbus.UInt32(10000)})
ok(jobd_main_pid() not in (0, pid_before), "the next call re-activated jobd")
listed = {int(r[0]) for r in rows}
missing = [x for x in all_acked if x not in listed]
ok(not missing, "every acknowledged job is there after kill -9", f"missing {missing[:20]}")
p = job_props(f"/org/jobd/Jobd1/job/{all_acked[-1]}")
ok('"client"' in str(p["Parameters"]), "an acknowledged job kept its parameters")

# state survives a clean restart too
jid, path = submit("echo", '{"keep": 1}', {"priority": dbus.Int32(7)})
job(path).Cancel()
before = job_props(path)
stop_jobd()
after = job_props(path)
eq(dict(after), dict(before), "every property is the same after a restart")

# torn tail: cut the last record in half, and add junk after a clean end
n_before = len(manager().List({"limit": dbus.UInt32(10000)}))
last, _ = submit("echo", '{"last": true}')
stop_jobd()
size = os.path.getsize(JOURNAL)
with open(JOURNAL, "r+b") as f:
    f.truncate(size - 5)
rows = manager().List({"limit": dbus.UInt32(10000)})
ids = [int(r[0]) for r in rows]
ok(int(last) not in ids, "the torn last record is cut")
eq(len(ids), n_before, "every earlier job survives a torn tail")
log = run("journalctl", "-q", "--no-pager", "-u", "jobd.service", "-o", "cat").stdout
ok("offset" in log and ("torn" in log.lower() or "cut" in log.lower()), "the cut is reported with its offset", log[-1500:])
eq(os.path.getsize(JOURNAL) <= size - 5, True, "the file was truncated at the torn record")
nxt, _ = submit("echo", "{}")
ok(int(nxt) > 0, "Submits work after a torn tail")

stop_jobd()
with open(JOURNAL, "ab") as f:
    f.write(os.urandom(37))
rows = manager().List({"limit": dbus.UInt32(10000)})
ok(int(nxt) in [int(r[0]) for r in rows], "junk after the last record is cut, the jobs before it survive")

# corruption in the middle: flip a byte inside an early record
stop_jobd()
with open(JOURNAL, "rb") as f:
    data = bytearray(f.read())
target = len(data) // 3
data[target] ^= 0xFF
with open(JOURNAL, "wb") as f:
    f.write(data)
rows = manager().List({"limit": dbus.UInt32(10000)})
ids = [int(r[0]) for r in rows]
ok(int(nxt) in ids, "records after a corrupt one in the middle survive")
log = run("journalctl", "-q", "--no-pager", "-u", "jobd.service", "-o", "cat").stdout
ok("corrupt" in log.lower(), "the corruption is reported", log[-1500:])
ok(os.path.exists("/var/lib/jobd/journal.corrupt"), "the corrupt journal is kept for inspection")

done()
