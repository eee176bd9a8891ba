# SPDX-License-Identifier: LGPL-2.1-or-later
"""What a local job runs with (README, "Security"): an exec job has exactly its submitter's uid, gid
and the groups the bus saw, nothing more; a type with User= runs as that user with the user's
groups (initgroups); a type without User= as root with jobd's capability bounding set. No job
has an fd beyond 0, 1 and 2, a capability it was not meant to have, or an environment variable
beyond the documented ones; the umask is 0022, the seccomp filter and bounding set are jobd.service's."""

import json
import os

import dbus

from jobdtest import *

PROBE = r'''
import json, os
def is_open(fd):
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False
status = {}
for line in open("/proc/self/status"):
    k, _, v = line.partition(":")
    if k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp"):
        status[k] = v.strip()
mask = os.umask(0)
print(json.dumps({"uid": [os.getuid(), os.geteuid()], "gid": [os.getgid(), os.getegid()],
                  "groups": sorted(os.getgroups()), "fds": [fd for fd in range(4096) if is_open(fd)],
                  "env": sorted(os.environ), "status": status, "umask": mask, "cwd": os.getcwd()}))
'''

# the bus call as a user, on a connection of its own: prints the job id
SUBMIT = r'''
import sys, dbus
m = dbus.Interface(dbus.SystemBus().get_object("org.jobd.Jobd1", "/org/jobd/Jobd1"), "org.jobd.Jobd1.Manager")
print(int(m.Submit(sys.argv[1], sys.argv[2], dbus.Dictionary({}, signature="sv"))[0]))
'''

# CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_SETGID, CAP_SETUID, CAP_SYS_ADMIN, CAP_SYS_NICE, CAP_SYS_RESOURCE,
# of those the machine has (a container may lack some: CI's lacks CAP_SYS_RESOURCE)
def cap_bnd(pid):
    return int(next(l for l in open(f"/proc/{pid}/status") if l.startswith("CapBnd:")).split()[1], 16)


BOUNDING = "%016x" % (sum(1 << c for c in (0, 1, 3, 6, 7, 21, 23, 24)) & cap_bnd(1))
DOCUMENTED_ENV = ["HOME", "JOBD_ATTEMPT", "JOBD_JOB_ID", "JOBD_TOKEN", "JOBD_TYPE", "JOBD_WORKSPACE", "LANG",
                  "LOGNAME", "PATH", "TMPDIR", "USER"]


def probe(type_, params, uid=None, init_groups=True):
    """Runs PROBE as a job submitted by uid; returns what it saw."""
    r = run("/usr/bin/python3", "-c", SUBMIT, type_, params, user=uid, init_groups=init_groups)
    if not ok(r.returncode == 0, f"{type_} job submitted by {uid if uid is not None else 'root'}", r.stderr):
        return None
    p = wait_finished(int(r.stdout), timeout=60)
    if not ok(str(p["Status"]) == "succeeded", f"the {type_} job ran", str(p["Error"])):
        return None
    return json.loads(json.loads(str(p["Result"])) if str(p["Result"]).startswith('"') else str(p["Result"]))


with open("/etc/jobd/probe.py", "w") as f:
    f.write(PROBE)
os.chmod("/etc/jobd/probe.py", 0o644)
write_type("asuser", "[Type]\nDescription=Runs as jobdtest1\nUser=jobdtest1\nExec=/usr/bin/python3 /etc/jobd/probe.py\n")
write_type("asroot", "[Type]\nDescription=Runs as root\nExec=/usr/bin/python3 /etc/jobd/probe.py\n")
manager().Reload()

jobd = {}
for line in open(f"/proc/{jobd_main_pid()}/status"):
    k, _, v = line.partition(":")
    jobd[k] = v.strip()
eq((jobd["CapBnd"], jobd["Seccomp"], jobd["NoNewPrivs"]), (BOUNDING, "2", "0"),
   "jobd runs with the documented bounding set, a seccomp filter, and without NoNewPrivileges")

exec_params = json.dumps({"argv": ["/usr/bin/python3", "-c", PROBE], "env": {"FROM_PARAMS": "1"}})
no_caps = {"CapInh": "0" * 16, "CapPrm": "0" * 16, "CapEff": "0" * 16, "CapAmb": "0" * 16}

got = probe("exec", exec_params, 2001, init_groups=True)
if got:
    eq((got["uid"], got["gid"], got["groups"]), ([2001, 2001], [2001, 2001], [2001, 2100]),
       "exec as jobdtest1: its uid, its gid and exactly the groups the bus saw (jobdtest1, jobdadm)")
    eq({k: got["status"][k] for k in no_caps}, no_caps, "exec as jobdtest1: no capabilities at all")
    eq((got["status"]["CapBnd"], got["status"]["Seccomp"], got["status"]["NoNewPrivs"]), (BOUNDING, "2", "0"),
       "exec: jobd.service's bounding set and seccomp filter are inherited, NoNewPrivileges is not")
    eq(got["fds"], [0, 1, 2], "exec: no fd of jobd's is inherited, only stdin, stdout and stderr")
    eq(got["env"], sorted(DOCUMENTED_ENV + ["FROM_PARAMS"]),
       "exec: the environment is the documented one plus the job's env, nothing of jobd's")
    eq((got["umask"], got["cwd"]), (0o022, "/tmp"), "exec: umask 0022, started in its workspace")

got = probe("exec", exec_params, 2001, init_groups=False)
if got:
    eq((got["uid"], got["gid"], got["groups"]), ([2001, 2001], [2001, 2001], [2001]),
       "exec by jobdtest1 without supplementary groups: only its primary group in the job too (never more)")

got = probe("asuser", "{}", 2002)
if got:
    eq((got["uid"], got["gid"], got["groups"]), ([2001, 2001], [2001, 2001], [2001, 2100]),
       "User=jobdtest1, submitted by jobdtest2: jobdtest1 with its groups from the user database (initgroups)")
    eq({k: got["status"][k] for k in no_caps}, no_caps, "User=: no capabilities")
    eq(got["fds"], [0, 1, 2], "User=: no fd of jobd's")
    eq(got["env"], DOCUMENTED_ENV, "User=: the documented environment only")

got = probe("asroot", "{}")
if got:
    eq((got["uid"], got["groups"]), ([0, 0], []), "a type without User= runs as root, without groups")
    eq((got["status"]["CapEff"], got["status"]["CapBnd"]), (BOUNDING, BOUNDING),
       "… with jobd's bounding set as its capabilities, no more")
    eq(got["fds"], [0, 1, 2], "… and no fd of jobd's")

os.unlink("/etc/jobd/probe.py")
done()
