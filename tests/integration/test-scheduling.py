# SPDX-License-Identifier: LGPL-2.1-or-later
"""Time: delay_usec and not_before_usec keep a job scheduled until then, one timer wakes it."""

import time

import dbus

from jobdtest import *

write_type("later", "[Type]\nDescription=For workers\n")
m = manager()

now = int(time.time() * 1e6)
jid, path = submit("exec", '{"argv": ["true"]}', {"delay_usec": dbus.UInt64(1_500_000)})
p = job_props(path)
eq(str(p["Status"]), "scheduled", "a delayed job is scheduled")
ok(now + 1_400_000 <= int(p["NotBeforeUSec"]) <= now + 3_000_000, "NotBeforeUSec is now + delay_usec", p["NotBeforeUSec"])
p = wait_for(lambda: (lambda q: q if str(q["Status"]) == "succeeded" else None)(job_props(path)), 15, "the delayed job")
ok(int(p["StartedUSec"]) >= int(p["NotBeforeUSec"]), "it started no earlier than NotBeforeUSec")
ok(int(p["StartedUSec"]) - int(p["NotBeforeUSec"]) < 500_000, "and within 0.5 s of it",
   int(p["StartedUSec"]) - int(p["NotBeforeUSec"]))

at = int(time.time() * 1e6) + 1_000_000
jid, path = submit("later", "{}", {"not_before_usec": dbus.UInt64(at)})
eq(str(job_props(path)["Status"]), "scheduled", "a job with a future not_before_usec is scheduled")
got = m.Claim(["later"], dbus.UInt64(0), dbus.Dictionary({}, signature="sv"))
eq(int(got[0]), 0, "a scheduled job is not handed out early")
got = m.Claim(["later"], dbus.UInt64(5_000_000), dbus.Dictionary({}, signature="sv"), timeout=10)
t = int(time.time() * 1e6)
eq(int(got[0]), int(jid), "a waiting Claim gets it when it is due")
ok(at <= t < at + 500_000, "on time (within 0.5 s)", t - at)

jid, path = submit("later", "{}", {"not_before_usec": dbus.UInt64(1)})
eq(str(job_props(path)["Status"]), "pending", "a not_before_usec in the past is pending at once")
expect_error("delay_usec with not_before_usec", ERR + "InvalidOption", submit, "later", "{}",
             {"delay_usec": dbus.UInt64(1), "not_before_usec": dbus.UInt64(at)})
expect_error("not_before_usec 0 with delay_usec (refused by the keys, not the values)", ERR + "InvalidOption",
             submit, "later", "{}", {"not_before_usec": dbus.UInt64(0), "delay_usec": dbus.UInt64(5_000_000)})
expect_error("a delay of more than a year", ERR + "InvalidOption", submit, "later", "{}",
             {"delay_usec": dbus.UInt64(400 * 24 * 3600 * 1_000_000)})

# a scheduled job keeps its state and due time across a restart
jid, path = submit("later", "{}", {"delay_usec": dbus.UInt64(60_000_000)})
before = job_props(path)
stop_jobd()
after = job_props(path)
ok((str(after["Status"]), int(after["NotBeforeUSec"])) == (str(before["Status"]), int(before["NotBeforeUSec"])),
   "a scheduled job keeps its status and due time across a restart",
   f"before {before['Status']} {before['NotBeforeUSec']}, after {after['Status']} {after['NotBeforeUSec']}, "
   f"now {int(time.time() * 1e6)}\n" +
   run("journalctl", "-q", "--no-pager", "-o", "short-precise", "-u", "jobd.service").stdout[-3000:])
job(path).Cancel()
eq(str(job_props(path)["Status"]), "cancelled", "a scheduled job can be cancelled")

# unique keys: while a job with the key is unfinished, Submit returns it (per owner)
import os
a, pa = submit("later", '{"n": 1}', {"unique_key": "nightly"})
size = os.path.getsize("/var/lib/jobd/journal")
b, pb = submit("later", '{"n": 2}', {"unique_key": "nightly"})
eq((int(b), str(pb)), (int(a), str(pa)), "a second Submit with the key returns the first job")
eq(os.path.getsize("/var/lib/jobd/journal"), size, "and writes no record")
r = run("gdbus", "call", "--system", "--dest", "org.jobd.Jobd1", "--object-path", "/org/jobd/Jobd1",
        "--method", "org.jobd.Jobd1.Manager.Submit", "later", "{}", "{'unique_key': <'nightly'>}", user=2002)
ok(r.returncode == 0 and f"uint64 {int(a)}," not in r.stdout, "another user's key is their own", r.stdout + r.stderr)
# pipelined: both Submits in one batch still get one job
import dbus.mainloop.glib
from gi.repository import GLib
dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
bb = dbus.bus.BusConnection(dbus.bus.BUS_SYSTEM)
mm = dbus.Interface(bb.get_object(BUS_NAME, MANAGER_PATH), MANAGER_IFACE)
replies, loop = [], GLib.MainLoop()
def got_reply(*r):
    replies.append(int(r[0]))
    if len(replies) == 2:
        loop.quit()
for _ in range(2):
    mm.Submit("later", "{}", dbus.Dictionary({"unique_key": "burst"}, signature="sv"),
              reply_handler=got_reply, error_handler=lambda e: (replies.append(str(e)), loop.quit()))
GLib.timeout_add(10000, loop.quit)
loop.run()
ok(len(replies) == 2 and replies[0] == replies[1], "two Submits with one key in the same batch get one job", replies)
job(pa).Cancel()
c, pc = submit("later", '{"n": 3}', {"unique_key": "nightly"})
ok(int(c) != int(a), "once the job finished, the key makes a new job")

# PauseType / ResumeType: a paused type keeps its queue, starts and hands out nothing
write_type("paws", "[Type]\nDescription=Pausable\n")
manager().Reload()
q1, _ = submit("paws", "{}")
m = manager()
m.PauseType("paws")
types = {str(t[0]): t for t in m.ListTypes()}
ok(bool(types["paws"][2]["paused"]), "ListTypes shows the type paused")
got = m.Claim(["paws"], dbus.UInt64(0), dbus.Dictionary({}, signature="sv"))
eq(int(got[0]), 0, "a paused type hands out nothing")
q2, _ = submit("paws", "{}")
eq(str(job_props(job_path(q2))["Status"]), "pending", "a paused type still queues")
stop_jobd()
types = {str(t[0]): t for t in manager().ListTypes()}
ok(bool(types["paws"][2]["paused"]), "the pause survives a restart")
r = run("gdbus", "call", "--system", "--dest", "org.jobd.Jobd1", "--object-path", "/org/jobd/Jobd1",
        "--method", "org.jobd.Jobd1.Manager.ResumeType", "paws", user=2002)
ok(r.returncode != 0 and "AccessDenied" in r.stderr, "only root resumes a type", r.stderr)
manager().ResumeType("paws")
got = manager().Claim(["paws"], dbus.UInt64(0), dbus.Dictionary({}, signature="sv"))
eq(int(got[0]), int(q1), "after ResumeType the queue is intact and in order")
expect_error("PauseType of an unknown type", ERR + "UnknownType", manager().PauseType, "nope")
manager().PauseType("exec")
jid, path = submit("exec", '{"argv": ["true"]}')
# nothing to wait for when nothing should happen: watch it stay pending for a second
end = time.monotonic() + 1.0
states = set()
while time.monotonic() < end:
    states.add(str(job_props(path)["Status"]))
eq(states, {"pending"}, "a paused local type starts nothing")
manager().ResumeType("exec")
wait_for(lambda: str(job_props(path)["Status"]) == "succeeded", 15, "the job after ResumeType")
ok(True, "after ResumeType a local job runs")

done()
