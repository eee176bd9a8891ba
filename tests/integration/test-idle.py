# SPDX-License-Identifier: LGPL-2.1-or-later
"""Idle exit: jobd leaves the bus IdleExitSec after the last activity when nothing is pending,
running, waited on or followed, and the next call activates it again with its state intact.
Exits are watched as NameOwnerChanged of org.jobd.Jobd1, never slept for longer than
IdleExitSec + 1 s."""

import json
import os
import subprocess
import time

import dbus
from dbus.mainloop.glib import DBusGMainLoop

from jobdtest import *

IDLE = 2.0
MARGIN = 1.0


def set_idle(value):
    with open("/etc/jobd/jobd.conf", "w") as f:
        f.write(f"[Manager]\nIdleExitSec={value}\n")


class OwnerWatch:
    """The owners org.jobd.Jobd1 had, from NameOwnerChanged on a connection of our own."""

    def __init__(self):
        self.bus = dbus.bus.BusConnection(dbus.bus.BUS_SYSTEM, mainloop=DBusGMainLoop())
        self.events = []                # (monotonic time, old owner, new owner)
        self.on_lost = None
        self.bus.add_signal_receiver(self._changed, signal_name="NameOwnerChanged",
                                     dbus_interface="org.freedesktop.DBus", arg0=BUS_NAME)
        ping_jobd_bus(self.bus)          # the match is in place once this returns

    def _changed(self, name, old, new):
        self.events.append((time.monotonic(), str(old), str(new)))
        if not new and self.on_lost:
            self.on_lost()

    def mark(self):
        pump(lambda: True, 1)
        return len(self.events)

    def lost_since(self, k):
        return next((t for t, old, new in self.events[k:] if not new), None)

    def wait_lost(self, k, timeout):
        try:
            return pump(lambda: self.lost_since(k), timeout, "jobd to leave the bus")
        except TimeoutError:
            return None

    def stays(self, k, seconds):
        """True if jobd kept its name for seconds from now."""
        end = time.monotonic() + seconds
        try:
            pump(lambda: self.lost_since(k) or time.monotonic() >= end, seconds + 1, "time to pass")
        except TimeoutError:
            pass
        return self.lost_since(k) is None


def ping_jobd_bus(b):
    b.call_blocking("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "GetId", "", ())


def unit(prop):
    return systemctl("show", "-P", prop, "jobd.service").stdout.strip()


def last_call():
    """The last activity jobd saw is no later than now."""
    return time.monotonic()


set_idle("2s")
write_type("ext", "[Type]\nDescription=For workers\n")
write_type("loc", "[Type]\nDescription=Local\nExec=/bin/true\nStdin=none\n")
watch = OwnerWatch()

# ---- exit after IdleExitSec, then activation with everything kept ----
jid, path = submit("loc")
wait_finished(jid)
manager().PauseType("loc")
held, held_path = submit("loc")                         # stays pending: its type is paused
k = watch.mark()
wait_status(held, "pending")
# a paused type's queue keeps jobd alive like any pending job; take it out to let it go idle
job(held_path).Cancel()
t = last_call()
lost = watch.wait_lost(k, IDLE + MARGIN)
ok(lost is not None, "jobd exits IdleExitSec after the last call with nothing to do")
ok(lost is None or lost - t >= IDLE - 0.2, "not before IdleExitSec", lost and lost - t)
wait_for(lambda: unit("ActiveState") == "inactive", 5, "jobd.service to be inactive")
eq(unit("Result"), "success", "jobd.service ended with success")
eq(unit("ExecMainStatus"), "0", "jobd exited 0")

k = watch.mark()
eq(str(job_props(path)["Status"]), "succeeded", "the next call activates jobd; the finished job is kept")
eq(str(job_props(held_path)["Status"]), "cancelled", "and the cancelled one")
types = {str(n): dict(s) for n, _, s in manager().ListTypes()}
ok(bool(types["loc"].get("paused")), "a paused type is still paused after the idle exit")
nid, npath = submit("ext")
ok(int(nid) > int(held), "ids continue after the idle exit", (nid, held))
ok(pump(lambda: len(watch.events) > k, 2, "NameOwnerChanged") and watch.events[k][2],
   "the call brought a new owner of the name")
manager().ResumeType("loc")

# ---- a pending job keeps it alive; STATUS= shows the queue ----
k = watch.mark()
ok(watch.stays(k, IDLE + MARGIN), "a pending job keeps jobd running past IdleExitSec")


def status_text():
    return systemctl("status", "--no-pager", "jobd.service").stdout


txt = wait_for(lambda: (lambda s: s if "1 queued" in s else None)(status_text()), 3, "STATUS= in systemctl status")
ok('Status: "0 running, 1 queued, 0 workers waiting"' in txt, "systemctl status shows the running and queued counts",
   txt)
c = claim(["ext"])
txt = wait_for(lambda: (lambda s: s if "1 running, 0 queued" in s else None)(status_text()), 3, "STATUS= update")
ok("1 running, 0 queued" in txt, "STATUS= follows a claim", txt)
ok(watch.stays(k, IDLE + MARGIN), "a claimed job keeps jobd running past IdleExitSec")
complete(nid, c.token, "{}")
t = last_call()
ok(watch.wait_lost(k, IDLE + MARGIN) is not None, "once it finished, jobd exits IdleExitSec later")

# ---- a parked Claim keeps it alive; its worker leaving lets it go ----
k = watch.mark()
worker = private_bus(mainloop=True)
answers = []
claim_async(worker, ["ext"], 30_000_000, lambda *a: answers.append(a), lambda e: answers.append(e))
ping_jobd(worker)
ok(watch.stays(k, IDLE + MARGIN), "a parked Claim keeps jobd running past IdleExitSec")
worker.set_exit_on_disconnect(False)   # we pump the main loop after closing it
worker.close()
ok(watch.wait_lost(k, IDLE + MARGIN) is not None, "after its worker left the bus, jobd exits IdleExitSec later")

# ---- a Follow stream with a follower keeps it alive ----
k = watch.mark()
script = "i=0; while [ $i -lt 3000 ]; do echo line-$i-padding-padding-padding-padding-padding-padding >&2; i=$((i+1)); done"
jid, path = submit("exec", json.dumps({"argv": ["/bin/sh", "-c", script]}))
wait_finished(jid)
fd = job(path).Follow(dbus.UInt64(0)).take()            # more history than a pipe holds: unread
ok(watch.stays(k, IDLE + MARGIN), "an unread Follow stream keeps jobd running past IdleExitSec")
data = read_fd(fd)
events = [json.loads(line) for line in data.decode().splitlines()]
eq(events[-1]["event"], "end", "the follower read the whole history")
ok(watch.wait_lost(k, IDLE + MARGIN) is not None, "once it was read, jobd exits IdleExitSec later")

# ---- a call right after the release activates jobd again ----
k = watch.mark()
after_release = []


def call_now():
    watch.on_lost = None
    try:
        after_release.append(manager().List(dbus.Dictionary({}, signature="sv")))
    except dbus.DBusException as e:
        after_release.append(e)


manager().GetStats("")
watch.on_lost = call_now
ok(watch.wait_lost(k, IDLE + MARGIN) is not None, "jobd released its name")
ok(len(after_release) == 1 and not isinstance(after_release[0], Exception),
   "a call sent right after the release is answered by the activated jobd", after_release)
ok(any(new for _, _, new in watch.events[k:]), "a new jobd took the name")

# ---- IdleExitSec=0 means never; a Reload applies a new period ----
set_idle("0")
manager().Reload()
k = watch.mark()
ok(watch.stays(k, IDLE + MARGIN), "IdleExitSec=0: jobd stays")
set_idle("2s")
manager().Reload()
ok(watch.wait_lost(k, IDLE + MARGIN) is not None, "IdleExitSec=2s after a Reload: jobd exits")
eq(unit("NRestarts"), "0", "no idle exit made systemd restart jobd")

# ---- SIGTERM: STOPPING=1, the name released, a clean stop ----
manager().GetStats("")
k = watch.mark()
r = systemctl("stop", "jobd.service")
ok(r.returncode == 0 and watch.wait_lost(k, 2) is not None, "systemctl stop: jobd released its name and stopped",
   r.stderr)
eq(unit("Result"), "success", "and ended with success")

os.unlink("/etc/jobd/jobd.conf")
done()
