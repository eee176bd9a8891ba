# SPDX-License-Identifier: LGPL-2.1-or-later
"""Helpers for integration tests run inside the sandbox: TAP output, the bus, jobctl, waiting.

Tests print TAP ("ok N - name" / "not ok N - name"); tests/integration/run numbers them across
files. Waiting polls a condition against a deadline; it never sleeps in place of an event.
"""

import os
import subprocess
import sys
import time

import dbus

# These tests add users, units and files to /etc and start systemd managers: only in a world of
# tests/sandbox/sandbox (its PID 1 runs with container=jobd-sandbox), never on a real machine.
try:
    with open("/proc/1/environ", "rb") as _f:
        _inside = b"container=jobd-sandbox" in _f.read().split(b"\0")
except OSError:
    _inside = False
if not _inside:
    print("Bail out! not inside a tests/sandbox world; run it through tests/integration/run", flush=True)
    sys.exit(1)

BUS_NAME = "org.jobd.Jobd1"
MANAGER_PATH = "/org/jobd/Jobd1"
MANAGER_IFACE = "org.jobd.Jobd1.Manager"
JOB_IFACE = "org.jobd.Jobd1.Job"
ERR = "org.jobd.Jobd1.Error."
PREFIX = os.environ.get("JOBD_PREFIX", "/usr")
JOBCTL = os.path.join(PREFIX, "bin", "jobctl")

_n = 0
_failed = 0


def ok(cond, name, diag=None):
    global _n, _failed
    _n += 1
    if cond:
        print(f"ok {_n} - {name}", flush=True)
    else:
        _failed += 1
        print(f"not ok {_n} - {name}", flush=True)
        if diag is not None:
            for line in str(diag).splitlines():
                print(f"# {line}", flush=True)
    return cond


def eq(got, want, name):
    return ok(got == want, name, f"got {got!r}, want {want!r}")


def done():
    print(f"1..{_n}", flush=True)
    sys.exit(1 if _failed else 0)


def bus():
    return dbus.SystemBus()


def manager(b=None):
    b = b or bus()
    return dbus.Interface(b.get_object(BUS_NAME, MANAGER_PATH), MANAGER_IFACE)


def job_props(path, b=None):
    b = b or bus()
    return dbus.Interface(b.get_object(BUS_NAME, path), dbus.PROPERTIES_IFACE).GetAll(JOB_IFACE)


def job(path, b=None):
    b = b or bus()
    return dbus.Interface(b.get_object(BUS_NAME, path), JOB_IFACE)


def submit(type_, params="{}", options=None, b=None):
    return manager(b).Submit(type_, params, dbus.Dictionary(options or {}, signature="sv"))


def call_error(fn, *args, **kwargs):
    """Calls fn; returns the D-Bus error name and message it raised, or (None, result)."""
    try:
        return None, fn(*args, **kwargs)
    except dbus.DBusException as e:
        return e.get_dbus_name(), e.get_dbus_message()


def expect_error(name, want, fn, *args, **kwargs):
    got, msg = call_error(fn, *args, **kwargs)
    ok(got == want and bool(msg), f"{name}: {want.rsplit('.', 1)[-1]}", f"got {got}: {msg}")
    return msg


def run(*argv, input=None, check=False, user=None, init_groups=False):
    """Runs a command, optionally as another user (setpriv: with the user's groups when
    init_groups, else none), returns CompletedProcess."""
    if user is not None:
        groups = "--init-groups" if init_groups else "--clear-groups"
        argv = ("setpriv", f"--reuid={user}", f"--regid={user}", groups, *argv)
    return subprocess.run(argv, input=input, capture_output=True, text=True, check=check)


def jobctl(*args, **kwargs):
    return run(JOBCTL, *args, **kwargs)


def wait_for(pred, timeout=10.0, what="condition", interval=0.02):
    """Polls pred until it returns a true value or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def systemctl(*args):
    return run("systemctl", *args)


def jobd_main_pid():
    r = systemctl("show", "-P", "MainPID", "jobd.service")
    return int(r.stdout.strip() or 0)


def kill_jobd():
    """SIGKILL jobd and wait until systemd saw it go (it may restart it: Restart=on-failure, or
    the next call activates it)."""
    pid = jobd_main_pid()
    assert pid > 0, "jobd is not running"      # kill -KILL 0 would hit our own process group
    os.kill(pid, 9)
    wait_for(lambda: jobd_main_pid() != pid, timeout=15, what="jobd to be gone")
    return pid


def stop_jobd():
    systemctl("stop", "jobd.service")
    systemctl("reset-failed", "jobd.service")


def write_type(name, text, folder="/etc/jobd/types.d"):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name + ".type"), "w") as f:
        f.write(text)


# ---- external workers (test-workers.py) ----

JOB_PATH = "/org/jobd/Jobd1/job/"


def job_path(jid):
    return JOB_PATH + str(int(jid))


def private_bus(mainloop=False):
    """A connection of its own to the system bus (so its own unique name: its own worker). With
    mainloop it is attached to GLib's default main context and takes async calls
    (reply_handler=, error_handler=), whose replies pump() dispatches."""
    if mainloop:
        from dbus.mainloop.glib import DBusGMainLoop
        return dbus.bus.BusConnection(dbus.bus.BUS_SYSTEM, mainloop=DBusGMainLoop())
    return dbus.bus.BusConnection(dbus.bus.BUS_SYSTEM)


def pump(pred, timeout=10.0, what="condition"):
    """wait_for that dispatches GLib's default main context while it waits, so replies to async
    calls made on private_bus(mainloop=True) connections arrive."""
    from gi.repository import GLib
    ctx = GLib.MainContext.default()
    deadline = time.monotonic() + timeout
    # a timeout source wakes the blocking iteration at least every 100 ms to check the deadline
    tick = GLib.timeout_add(100, lambda: True)
    try:
        while True:
            v = pred()
            if v:
                return v
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
            ctx.iteration(True)
    finally:
        GLib.source_remove(tick)


def ping_jobd(b):
    """A round trip to jobd on connection b. jobd reads a connection's messages in order, so when
    this returns jobd has read (and answered, or parked) every call b sent before it."""
    b.call_blocking(BUS_NAME, MANAGER_PATH, "org.freedesktop.DBus.Peer", "Ping", "", ())


class Claimed:
    """Claim's answer: id, token, type, parameters, info (a dict: attempt, deadline_usec, input)."""

    def __init__(self, r):
        self.id, self.token, self.type, self.parameters = int(r[0]), str(r[1]), str(r[2]), str(r[3])
        self.info = dict(r[4])

    def __repr__(self):
        return f"Claimed(id={self.id}, token={self.token!r}, type={self.type!r}, info={self.info!r})"


def claim(types, wait_usec=0, track=None, b=None):
    """Manager.Claim; track None sends no options."""
    opts = {} if track is None else {"track": dbus.Boolean(track)}
    r = manager(b).Claim(dbus.Array(types, signature="s"), dbus.UInt64(wait_usec),
                         dbus.Dictionary(opts, signature="sv"), timeout=wait_usec / 1e6 + 30)
    return Claimed(r)


def claim_async(b, types, wait_usec, reply_handler, error_handler, track=None):
    """Sends Manager.Claim on b (a private_bus(mainloop=True)) at once; pump() delivers the answer
    to reply_handler(id, token, type, parameters, info) or error_handler(exception). (A proxy
    method would wait for its Introspect reply before sending, so ping_jobd() would not order it.)"""
    opts = {} if track is None else {"track": dbus.Boolean(track)}
    b.call_async(BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "Claim", "asta{sv}",
                 (dbus.Array(types, signature="s"), dbus.UInt64(wait_usec), dbus.Dictionary(opts, signature="sv")),
                 reply_handler, error_handler, timeout=wait_usec / 1e6 + 30)


def complete(jid, token, result="{}", outputs=None, b=None):
    opts = {}
    if outputs is not None:
        opts["outputs"] = dbus.Dictionary({k: dbus.types.UnixFd(v) for k, v in outputs.items()},
                                          signature="sh")
    return job(job_path(jid), b).Complete(token, result, dbus.Dictionary(opts, signature="sv"))


def fail(jid, token, error, options=None, b=None):
    return job(job_path(jid), b).Fail(token, error, dbus.Dictionary(options or {}, signature="sv"))


def props_of(jid, b=None):
    return job_props(job_path(jid), b)


def status_of(jid, b=None):
    return str(props_of(jid, b)["Status"])


def wait_status(jid, statuses, timeout=15.0):
    """Waits until the job's status is one of statuses (a string or a tuple); returns its properties."""
    if isinstance(statuses, str):
        statuses = (statuses,)

    def check():
        p = props_of(jid)
        return p if str(p["Status"]) in statuses else None
    return wait_for(check, timeout, f"job {jid} to be {'/'.join(statuses)}")


def wait_finished(jid, timeout=30.0):
    return wait_status(jid, ("succeeded", "failed", "cancelled"), timeout)


def read_fd(fd, timeout=10.0):
    """Reads fd to EOF against a deadline, closes it, returns the bytes."""
    import select
    deadline = time.monotonic() + timeout
    chunks = []
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"timed out after {timeout}s reading fd {fd} to EOF")
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)
    finally:
        os.close(fd)


def follow_events(jid, after_seq=0, timeout=10.0):
    """Follow's whole stream (to EOF) as a list of decoded JSON events."""
    import json
    fd = job(job_path(jid)).Follow(dbus.UInt64(after_seq))
    data = read_fd(fd.take(), timeout)
    return [json.loads(line) for line in data.decode().splitlines() if line]


def memfd_with(data, name="jobdtest"):
    """A memfd holding data, offset 0."""
    fd = os.memfd_create(name)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


class JobChanges:
    """Every JobChanged signal, in the order jobd sent them, as (id, status): a connection of its
    own attached to GLib's main context, subscribed before this returns (AddMatch is a call), and
    across restarts of jobd (no sender in the match). wait() dispatches until a status came."""

    def __init__(self):
        self.events = []
        self.bus = private_bus(mainloop=True)
        self.bus.add_signal_receiver(lambda jid, path, status: self.events.append((int(jid), str(status))),
                                     signal_name="JobChanged", dbus_interface=MANAGER_IFACE, path=MANAGER_PATH)

    def statuses(self, jid):
        return [s for i, s in self.events if i == int(jid)]

    def wait(self, jid, status, timeout=15.0):
        """Waits for the signal that job jid became status (or one of a tuple)."""
        statuses = (status,) if isinstance(status, str) else status
        pump(lambda: any(s in statuses for s in self.statuses(jid)), timeout,
             f"JobChanged of job {jid} to {'/'.join(statuses)}")
        return props_of(jid)
