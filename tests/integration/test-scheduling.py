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
expect_error("a delay of more than a year", ERR + "InvalidOption", submit, "later", "{}",
             {"delay_usec": dbus.UInt64(400 * 24 * 3600 * 1_000_000)})

# a scheduled job keeps its state and due time across a restart
jid, path = submit("later", "{}", {"delay_usec": dbus.UInt64(60_000_000)})
before = job_props(path)
stop_jobd()
after = job_props(path)
eq((str(after["Status"]), int(after["NotBeforeUSec"])), (str(before["Status"]), int(before["NotBeforeUSec"])),
   "a scheduled job keeps its status and due time across a restart")
job(path).Cancel()
eq(str(job_props(path)["Status"]), "cancelled", "a scheduled job can be cancelled")

done()
