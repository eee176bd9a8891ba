#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""bench-follow: what followers cost jobd (issue 9, target 5). Run inside the sandbox world.

  bench-follow.py JOBD_PID FOLLOWERS LINES

One busy local job (built-in exec type) writes LINES lines on stderr, 100 at a time with a 10 ms
pause between (about 10,000 lines/s: busy, yet slow enough that every follower, a Python reader
here, keeps up instead of being cut off 1 MiB behind); each line goes to the journal and into
the job's Follow stream. FOLLOWERS streams are opened before the job
writes anything (it waits on a FIFO outside its private /tmp), and read to EOF. jobd's CPU time
(/proc/JOBD_PID/schedstat: on-CPU ns of its main thread; jobd is single-threaded) is taken from
the moment the job is let go until the job's end is seen and every stream reached EOF.
Prints: RESULT name=follow followers=N lines=L jobd_cpu_ms=… seconds=… bytes_per_follower=…
"""

import os
import select
import sys
import time

import dbus
import dbus.bus
import dbus.mainloop.glib
from gi.repository import GLib

dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
pid, n_followers, n_lines = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
fifo = "/run/jobd-bench-follow.fifo"
if os.path.exists(fifo):
    os.unlink(fifo)
os.mkfifo(fifo, 0o600)

bus = dbus.SystemBus()
m = dbus.Interface(bus.get_object("org.jobd.Jobd1", "/org/jobd/Jobd1"), "org.jobd.Jobd1.Manager")
script = ('read go < %s; i=0; while [ $i -lt %d ]; do echo "log line $i of a busy job, about sixty bytes" >&2; '
          'i=$((i+1)); [ $((i %% 100)) -eq 0 ] && sleep 0.01; done; true' % (fifo, n_lines))
params = '{"argv": ["/bin/sh", "-c", %s]}' % __import__("json").dumps(script)
jid, path = m.Submit("exec", params, dbus.Dictionary({}, signature="sv"))
job = dbus.Interface(bus.get_object("org.jobd.Jobd1", path), "org.jobd.Jobd1.Job")
props = dbus.Interface(bus.get_object("org.jobd.Jobd1", path), "org.freedesktop.DBus.Properties")

ended = []
bus.add_signal_receiver(lambda i, o, status: ended.append(status) if int(i) == int(jid) and
                        status in ("succeeded", "failed", "cancelled") else None,
                        signal_name="JobChanged", dbus_interface="org.jobd.Jobd1.Manager")
# jobd allows 16 Follow streams per connection: one connection per 16 followers
conns = [dbus.bus.BusConnection(dbus.bus.BUS_SYSTEM) for _ in range((n_followers + 15) // 16)]
streams = [dbus.Interface(conns[i // 16].get_object("org.jobd.Jobd1", path), "org.jobd.Jobd1.Job")
           .Follow(dbus.UInt64(0)).take() for i in range(n_followers)]
for fd in streams:
    os.set_blocking(fd, False)


def cpu_ns():
    with open("/proc/%d/schedstat" % pid) as f:
        return int(f.read().split()[0])


# The job blocks in open() of the FIFO until we open it for writing: then it runs.
t0, c0 = time.monotonic(), cpu_ns()
with open(fifo, "w") as f:
    f.write("go\n")

got = {fd: 0 for fd in streams}
tail = {fd: b"" for fd in streams}
open_fds = set(streams)
while open_fds:
    ready, _, _ = select.select(list(open_fds), [], [], 60)
    if not ready:
        sys.exit("bench-follow: no progress for 60 s")
    for fd in ready:
        data = os.read(fd, 1 << 16)
        if data:
            got[fd] += len(data)
            tail[fd] = (tail[fd] + data)[-200:]
        else:
            os.close(fd)
            open_fds.discard(fd)
# with no followers, the end comes as JobChanged
ctx = GLib.MainContext.default()
deadline = time.monotonic() + 60
while not ended and time.monotonic() < deadline:
    ctx.iteration(True)
c1, t1 = cpu_ns(), time.monotonic()
os.unlink(fifo)
status = str(props.Get("org.jobd.Jobd1.Job", "Status"))
if status != "succeeded":
    sys.exit("bench-follow: the busy job ended %s" % status)
cut = sum(1 for fd in streams if b'"event":"end"' not in tail[fd])
if cut:
    sys.exit("bench-follow: %d of %d followers were cut off (fell 1 MiB behind): the reader is too slow here" %
             (cut, n_followers))
print("RESULT name=follow followers=%d lines=%d jobd_cpu_ms=%.1f seconds=%.3f bytes_per_follower=%d" %
      (n_followers, n_lines, (c1 - c0) / 1e6, t1 - t0, min(got.values()) if got else 0))
