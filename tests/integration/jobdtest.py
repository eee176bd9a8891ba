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
    run("kill", "-KILL", str(pid))
    wait_for(lambda: jobd_main_pid() != pid, timeout=15, what="jobd to be gone")
    return pid


def stop_jobd():
    systemctl("stop", "jobd.service")
    systemctl("reset-failed", "jobd.service")


def write_type(name, text, folder="/etc/jobd/types.d"):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name + ".type"), "w") as f:
        f.write(text)
