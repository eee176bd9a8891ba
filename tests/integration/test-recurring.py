# SPDX-License-Identifier: LGPL-2.1-or-later
"""Recurring jobs: [Schedule] OnCalendar= makes a transient systemd timer per type that submits
with a unique key, so firings never pile up; Reload replaces, keeps or stops the timers; a
calendar expression systemd refuses is reported for its type and the others still work."""

import os
import subprocess

import dbus
import dbus.mainloop.glib
from gi.repository import GLib

from jobdtest import *

dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)

TICK = "[Type]\nDescription=Every two seconds\n[Schedule]\nOnCalendar=*:*:0/2\nAccuracySec=1ms\n" \
       'Parameters={"every": "2s", "cost": "$HOME"}\n'
# never fires during the test: Persistent= would write systemd's stamp file when it fires
LATER = "[Type]\n[Schedule]\nOnCalendar=2099-01-01 00:00:00\nPersistent=yes\n"


def show(unit, *props):
    r = systemctl("show", "-P" if len(props) == 1 else "-p", ",".join(props), unit)
    if len(props) == 1:
        return r.stdout.strip()
    return dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)


def loaded(unit):
    return show(unit, "LoadState") == "loaded"


def types_by_name():
    return {str(t[0]): dict(t[2]) for t in manager().ListTypes()}


def last_trigger(unit="jobd-schedule-tick.timer"):
    # as systemctl prints it (a time span since boot): only compared for a change
    return show(unit, "LastTriggerUSecMonotonic")


def unfinished(type_):
    rows = manager().List(dbus.Dictionary({"type": dbus.Array([type_], signature="s"),
                                           "status": dbus.Array(["pending", "scheduled", "blocked", "running"],
                                                                signature="s")}, signature="sv"))
    return [int(r[0]) for r in rows]


def jobd_log():
    return run("journalctl", "-q", "--no-pager", "-o", "cat", "-u", "jobd.service").stdout


def schedule_units():
    r = systemctl("list-units", "--all", "--plain", "--no-legend", "jobd-schedule-*")
    return sorted(line.split()[0] for line in r.stdout.splitlines() if line.strip())


# JobNew signals, collected while GLib's main context is pumped
new_jobs = []
sysbus = dbus.SystemBus()
sysbus.add_signal_receiver(lambda jid, path, type_: new_jobs.append((int(jid), str(type_))),
                           signal_name="JobNew", dbus_interface=MANAGER_IFACE, path=MANAGER_PATH)


def new_of(type_):
    return [jid for jid, t in new_jobs if t == type_]


# ---- a stale timer of an earlier jobd, for a type that no longer exists ----
r = run("systemd-run", "--unit=jobd-schedule-ghost", "--on-calendar=2099-01-01", "--timer-property=AccuracySec=1s",
        "/bin/true")
ok(r.returncode == 0 and loaded("jobd-schedule-ghost.timer"), "a leftover jobd-schedule-ghost.timer exists",
   r.stderr)

write_type("tick", TICK)
write_type("later", LATER)
write_type("bad", "[Type]\nDescription=Refused by systemd\n[Schedule]\nOnCalendar=every now and then\n")
write_type("plain", "[Type]\nDescription=No schedule\n")

# activation syncs; Reload answers once its own sync (queued behind that one) is over
manager().Reload()
eq(show("jobd-schedule-tick.timer", "ActiveState"), "active", "a scheduled type has an active timer")
ok("*:*:00/2" in show("jobd-schedule-tick.timer", "TimersCalendar"), "with its OnCalendar= as systemd parsed it",
   show("jobd-schedule-tick.timer", "TimersCalendar"))
eq(show("jobd-schedule-tick.timer", "Triggers"), "jobd-schedule-tick.service", "that triggers its service")
r = systemctl("list-timers", "--all", "--no-pager")
ok("jobd-schedule-tick.timer" in r.stdout and "jobd-schedule-tick.service" in r.stdout,
   "systemctl list-timers shows it", r.stdout)
exec_start = show("jobd-schedule-tick.service", "ExecStart")
ok(f"{JOBCTL} submit --unique-key=schedule:tick -- tick" in exec_start, "the service runs jobctl submit with the key",
   exec_start)
eq(show("jobd-schedule-later.timer", "Persistent"), "yes", "Persistent= reaches the timer")
eq(show("jobd-schedule-later.timer", "AccuracyUSec"), "1min", "without AccuracySec= systemd's default holds")
ok(not loaded("jobd-schedule-ghost.timer"), "the leftover timer of a type that does not exist is stopped",
   schedule_units())
ok(not loaded("jobd-schedule-plain.timer"), "a type without [Schedule] has no timer")

types = types_by_name()
eq((str(types["tick"]["on_calendar"]), str(types["tick"]["schedule_timer"]), str(types["tick"]["schedule_error"])),
   ("*:*:0/2", "jobd-schedule-tick.timer", ""), "ListTypes shows the schedule")
eq(str(types["plain"]["on_calendar"]), "", "and no schedule for a type without one")
err = str(types["bad"]["schedule_error"])
ok("systemd refused" in err and "every now and then" in err and "bad.type" in err,
   "an invalid OnCalendar= is reported for its type", err)
ok(not loaded("jobd-schedule-bad.timer"), "and has no timer")
ok("bad.type: [Schedule] OnCalendar=every now and then: systemd refused the timer" in jobd_log(),
   "and is logged with the file", jobd_log()[-2000:])
r = jobctl("types")
ok(any(line.startswith("tick") and "*:*:0/2" in line for line in r.stdout.splitlines())
   and "Schedule of bad not in effect" in r.stderr, "jobctl types shows the schedule and the refusal",
   r.stdout + r.stderr)

# ---- firings ----
pump(lambda: new_of("tick"), 15, "the timer's first job")
first = new_of("tick")[0]
p = props_of(first)
eq((str(p["Type"]), str(p["Parameters"]), int(p["Owner"]), str(p["Status"])),
   ("tick", '{"every": "2s", "cost": "$HOME"}', 0, "pending"),
   "the timer submits a job of its type with the Parameters= (no $ expansion), as root")
jid, _ = submit("tick", "{}", {"unique_key": "schedule:tick"})
eq(int(jid), first, "the job holds the unique key schedule:tick")

# several firings while that job stays unclaimed (no Exec=: it waits for a worker)
t0 = last_trigger()
seen = [t0]
def fired_again():
    t = last_trigger()
    if t != seen[-1]:
        seen.append(t)
    return len(seen) >= 4
wait_for(fired_again, 20, "three more firings", interval=0.1)
# the last firing's jobctl has finished once the oneshot service has no start job queued and is
# not activating (running jobctl)
def service_idle():
    queued = "jobd-schedule-tick.service" in systemctl("list-jobs", "--no-legend").stdout
    return not queued and show("jobd-schedule-tick.service", "ActiveState") in ("inactive", "failed")
wait_for(service_idle, 10, "the last firing's submit")
pump(lambda: True, 1)
eq(unfinished("tick"), [first], "after several firings there is still exactly one unfinished job")
eq(new_of("tick"), [first], "and no other job of the type was made")
eq(show("jobd-schedule-tick.service", "Result"), "success", "a firing that finds the job unfinished succeeds")

# once it is done, the next firing makes a new one
c = claim(["tick"])
eq(c.id, first, "a worker claims the scheduled job")
complete(c.id, c.token)
pump(lambda: len(new_of("tick")) >= 2, 15, "a new job after the first finished")
second = new_of("tick")[1]
ok(second != first, "once the job finished, the next firing submits a new one", new_of("tick"))

# ---- reload and restart keep what did not change ----
since = show("jobd-schedule-tick.timer", "ActiveEnterTimestampMonotonic")
manager().Reload()
eq(show("jobd-schedule-tick.timer", "ActiveEnterTimestampMonotonic"), since, "Reload leaves an unchanged timer alone")
stop_jobd()
manager().Reload()          # activates jobd (which syncs), then waits for the sync
eq(show("jobd-schedule-tick.timer", "ActiveEnterTimestampMonotonic"), since,
   "a restarted jobd recognises its timer and leaves it alone")

# ---- reload changes, fixes and removes ----
write_type("later", LATER.replace("2099-01-01", "2098-06-01"))
write_type("bad", "[Type]\n[Schedule]\nOnCalendar=weekly\n")
os.remove("/etc/jobd/types.d/tick.type")
write_type("tick", "[Type]\nDescription=Every two seconds, no more\n")
manager().Reload()
ok("2098-06-01" in show("jobd-schedule-later.timer", "TimersCalendar"), "Reload replaces a changed timer",
   show("jobd-schedule-later.timer", "TimersCalendar"))
eq(show("jobd-schedule-later.timer", "ActiveState"), "active", "and the replacement is active")
ok(not loaded("jobd-schedule-tick.timer") and not loaded("jobd-schedule-tick.service"),
   "Reload after the [Schedule] section was removed stops the timer and its service", schedule_units())
eq(show("jobd-schedule-bad.timer", "ActiveState"), "active", "a fixed OnCalendar= gets its timer")
eq(str(types_by_name()["bad"]["schedule_error"]), "", "and its error is gone")

for name in ("later", "bad", "tick", "plain"):
    os.remove(f"/etc/jobd/types.d/{name}.type")
manager().Reload()
eq(schedule_units(), [], "with no scheduled types no jobd-schedule-* unit is left")

done()
