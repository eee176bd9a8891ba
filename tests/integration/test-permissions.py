# SPDX-License-Identifier: LGPL-2.1-or-later
"""Who may do what, for real. polkitd runs in the world (D-Bus activated) with a rule that grants
group jobdadm org.jobd.Jobd1.manage. A permission matrix over every method and every protected
property for five callers: the job's owner, another user, root, a polkit-authorized administrator
(jobdtest1, in jobdadm) and a worker of the type (jobdtest3); a refused call changes nothing (the
jobs' properties, paused types and the journal's size are compared before and after). Then type
access (SubmitUsers=/SubmitGroups=, WorkerUsers=/WorkerGroups=, from the groups the bus saw) and
workers acting only on attempts they claimed."""

import json
import os
import subprocess
import time

import dbus

from jobdtest import *

OWNER, OTHER, ROOT, ADMIN, WORKER = 2002, 2004, 0, 2001, 2003
ROLES = [("owner", OWNER), ("another user", OTHER), ("root", ROOT), ("polkit admin", ADMIN), ("worker", WORKER)]
JOURNAL = "/var/lib/jobd/journal"
RULE = "/etc/polkit-1/rules.d/50-jobd-test.rules"
PROPS = "org.freedesktop.DBus.Properties"
DENIED = "org.freedesktop.DBus.Error.AccessDenied"

# One call on a connection of its own, as whoever runs it; prints {"ok", "value"} or {"ok", "error",
# "message"} as JSON. Arguments are JSON: {"t": n}, {"u": n}, {"b": x}, {"as": [...]}, {"sv": {...}},
# {"sh": {...}} and {"memfd": "text"} become those D-Bus types; fds in answers are closed.
CALL = r'''
import json, os, sys
import dbus

def arg(a):
    if not isinstance(a, dict):
        return a
    (k, v), = a.items()
    if k == "memfd":
        fd = os.memfd_create("arg")
        os.write(fd, v.encode())
        os.lseek(fd, 0, 0)
        return dbus.types.UnixFd(fd)
    conv = {"t": dbus.UInt64, "u": dbus.UInt32, "i": dbus.Int32, "b": dbus.Boolean,
            "as": lambda x: dbus.Array(x, signature="s")}
    if k in conv:
        return conv[k](v)
    return dbus.Dictionary({kk: arg(vv) for kk, vv in v.items()}, signature=k)

def plain(v):
    if isinstance(v, dbus.types.UnixFd):
        os.close(v.take())
        return "<fd>"
    if isinstance(v, (dbus.Array, dbus.Struct, list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, (dbus.Dictionary, dict)):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, dbus.Boolean):
        return bool(v)
    if isinstance(v, int):
        return int(v)
    return str(v)

spec = json.loads(sys.argv[1])
obj = dbus.SystemBus().get_object("org.jobd.Jobd1", spec["path"], introspect=False)
try:
    r = obj.get_dbus_method(spec["method"], spec["iface"])(*[arg(a) for a in spec["args"]],
                                                           signature=spec["sig"])
    print(json.dumps({"ok": True, "value": plain(r)}))
except dbus.DBusException as e:
    print(json.dumps({"ok": False, "error": e.get_dbus_name(), "message": e.get_dbus_message()}))
'''


def call(uid, path, iface, method, sig="", *args, groups=True):
    """A call as uid (with the user's groups, or none), on its own connection."""
    spec = json.dumps({"path": path, "iface": iface, "method": method, "sig": sig, "args": list(args)})
    if uid == ROOT:
        r = run("/usr/bin/python3", "-c", CALL, spec)
    else:
        r = run("/usr/bin/python3", "-c", CALL, spec, user=uid, init_groups=groups)
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"ok": False, "error": "(the helper failed)", "message": r.stdout + r.stderr}


def mcall(uid, method, sig="", *args, groups=True):
    return call(uid, MANAGER_PATH, MANAGER_IFACE, method, sig, *args, groups=groups)


def jcall(uid, jid, method, sig="", *args):
    return call(uid, job_path(jid), JOB_IFACE, method, sig, *args)


def get_prop(uid, jid, name):
    return call(uid, job_path(jid), PROPS, "Get", "ss", JOB_IFACE, name)


def submit_as(uid, type_, params="{}", groups=True):
    r = mcall(uid, "Submit", "ssa{sv}", type_, params, {"sv": {}}, groups=groups)
    return int(r["value"][0]) if r["ok"] else r


def claim_as(uid, type_, groups=True):
    r = mcall(uid, "Claim", "asta{sv}", {"as": [type_]}, {"t": 0}, {"sv": {}}, groups=groups)
    return (int(r["value"][0]), r["value"][1]) if r["ok"] else r


def snapshot():
    """Everything a refused call must leave alone: every job's properties, paused types, the journal."""
    jobs = {}
    for row in manager().List(dbus.Dictionary({}, signature="sv")):
        jobs[int(row[0])] = {str(k): repr(v) for k, v in job_props(str(row[4])).items()}
    paused = {str(t[0]): bool(t[2].get("paused", False)) for t in manager().ListTypes()}
    return os.path.getsize(JOURNAL), jobs, paused


def refused(name, r, want=DENIED, before=None):
    ok(not r["ok"] and r.get("error") == want and bool(r.get("message")),
       f"{name}: refused with {want.rsplit('.', 1)[-1]}", r)
    if before is not None:
        after = snapshot()
        ok(after == before, f"{name}: the refused call changed nothing",
           f"journal {before[0]} -> {after[0]}" if after[0] != before[0] else "jobs or paused types differ")


def refused_call(name, fn, *args, want=DENIED):
    """Calls fn(*args), which must be refused and change nothing."""
    before = snapshot()
    refused(name, fn(*args), want, before)


def allowed(name, r):
    return ok(r["ok"], f"{name}: allowed", r)


WORKED = "[Type]\nDescription=Worked by external workers\n"
write_type("idle", WORKED)                                        # nobody but root claims: stays pending
write_type("rootonly", WORKED)
write_type("work", WORKED + "WorkerUsers=jobdtest3\n")
write_type("work2", WORKED + "WorkerUsers=jobdtest3 jobdtest2\n")
write_type("wgroup", WORKED + "WorkerGroups=jobdwork\n")
write_type("restricted", WORKED + "SubmitUsers=jobdtest2\nSubmitGroups=jobdadm\n")
for f in os.listdir("/etc/polkit-1/rules.d"):
    os.unlink(os.path.join("/etc/polkit-1/rules.d", f))
systemctl("stop", "polkit.service")

# ---- jobs of the owner: one finished with a result and an output, one failed, pending ones ----

done_id = submit_as(OWNER, "work", '{"secret": "parameters"}')
jid, token = claim_as(WORKER, "work")
eq(jid, done_id, "the worker claims the owner's job")
r = jcall(WORKER, jid, "Complete", "ssa{sv}", token, '{"secret": "result"}',
          {"sv": {"outputs": {"sh": {"out.txt": {"memfd": "secret output"}}}}})
allowed("the worker completes it with an output", r)
failed_id = submit_as(OWNER, "work", '{"secret": "parameters"}')
jid, token = claim_as(WORKER, "work")
allowed("the worker fails another", jcall(WORKER, jid, "Fail", "ssa{sv}", token, "secret failure",
                                          {"sv": {"retry": {"b": False}}}))
eq(status_of(failed_id), "failed", "that job failed")

# ---- polkit for real: without a rule the administrator is nobody special ----

r = get_prop(ADMIN, done_id, "Parameters")
eq(r, {"ok": True, "value": ""}, "without a polkit rule jobdtest1 reads Parameters as empty")
pending = submit_as(OWNER, "idle")
before = snapshot()
refused("without a polkit rule jobdtest1 cancels", jcall(ADMIN, pending, "Cancel"), before=before)
ok(systemctl("is-active", "polkit.service").stdout.strip() == "active", "polkitd was D-Bus activated to answer")
with open(RULE, "w") as f:
    f.write('polkit.addRule(function(action, subject) {\n'
            '        if (action.id == "org.jobd.Jobd1.manage" && subject.isInGroup("jobdadm"))\n'
            '                return polkit.Result.YES;\n'
            '});\n')
subprocess.run(["chown", "polkitd", RULE], check=False)
systemctl("restart", "polkit.service")
eq(get_prop(ADMIN, done_id, "Parameters"), {"ok": True, "value": '{"secret": "parameters"}'},
   "with the rule granting jobdadm, jobdtest1 reads Parameters")

# ---- the matrix ----

SEES = {"owner", "root", "polkit admin"}
for role, uid in ROLES:
    for jid, prop, want in ((done_id, "Parameters", '{"secret": "parameters"}'), (done_id, "Result", '{"secret": "result"}'),
                            (done_id, "Outputs", ["out.txt"]), (failed_id, "Error", "secret failure")):
        empty = [] if prop == "Outputs" else ""
        eq(get_prop(uid, jid, prop), {"ok": True, "value": want if role in SEES else empty},
           f"{role} reads {prop} {'as it is' if role in SEES else 'as empty'}")
    r = call(uid, job_path(done_id), PROPS, "GetAll", "s", JOB_IFACE)
    got = (r["value"]["Parameters"], r["value"]["Status"]) if r["ok"] else r
    eq(got, ('{"secret": "parameters"}' if role in SEES else "", "succeeded"),
       f"{role}: GetAll {'has' if role in SEES else 'hides'} Parameters, shows Status")
    eq(get_prop(uid, done_id, "Owner"), {"ok": True, "value": OWNER}, f"{role} reads Owner")

    for method, sig, args, jid in (("Follow", "t", [{"t": 0}], done_id), ("GetOutput", "s", ["out.txt"], done_id)):
        if role in SEES:
            eq(jcall(uid, jid, method, sig, *args), {"ok": True, "value": "<fd>"}, f"{role}: {method} gives an fd")
        else:
            refused_call(f"{role}: {method}", jcall, uid, jid, method, sig, *args)

    target = submit_as(OWNER, "idle")
    if role in SEES:
        allowed(f"{role}: Cancel", jcall(uid, target, "Cancel"))
        eq(status_of(target), "cancelled", f"{role}: the job is cancelled")
        allowed(f"{role}: Retry", jcall(uid, target, "Retry"))
        eq(status_of(target), "pending", f"{role}: the job is pending again")
    else:
        before = snapshot()
        refused(f"{role}: Cancel", jcall(uid, target, "Cancel"), before=before)
        job(job_path(target)).Cancel()         # root's, so Retry has something to refuse
        before = snapshot()
        refused(f"{role}: Retry", jcall(uid, target, "Retry"), before=before)

    for method in ("PauseType", "ResumeType"):
        if role in ("root", "polkit admin"):
            allowed(f"{role}: {method}", mcall(uid, method, "s", "idle"))
        else:
            refused_call(f"{role}: {method}", mcall, uid, method, "s", "idle")
    if role in ("root", "polkit admin"):
        allowed(f"{role}: Reload", mcall(uid, "Reload"))
    else:
        refused_call(f"{role}: Reload", mcall, uid, "Reload")

    # Claim: the type's workers and root; a polkit admin is no worker
    waiting = submit_as(OWNER, "work")
    if role in ("worker", "root"):
        r = claim_as(uid, "work")
        ok(isinstance(r, tuple) and r[0] == waiting, f"{role}: Claim takes the job", r)
        if isinstance(r, tuple):
            allowed(f"{role}: Complete of its claim", jcall(uid, r[0], "Complete", "ssa{sv}", r[1], "{}", {"sv": {}}))
    else:
        before = snapshot()
        r = claim_as(uid, "work")
        refused(f"{role}: Claim", r if isinstance(r, dict) else {"ok": True, "value": r}, before=before)
        job(job_path(waiting)).Cancel()

    # the worker's calls on an attempt the worker claimed: the worker and root only
    claimed = submit_as(OWNER, "work")
    cid, tok = claim_as(WORKER, "work")
    eq(cid, claimed, f"({role}: the worker claims a job)")
    calls = [("Heartbeat", "st", [tok, {"t": 0}]), ("Progress", "sus", [tok, {"u": 5}, "x"]),
             ("Log", "ss", [tok, "a line"]), ("Release", "st", [tok, {"t": 0}]),
             ("Fail", "ssa{sv}", [tok, "no", {"sv": {"retry": {"b": False}}}]),
             ("Complete", "ssa{sv}", [tok, "{}", {"sv": {}}])]
    if role in ("worker", "root"):
        for method, sig, args in calls[:3] + calls[-1:]:
            allowed(f"{role}: {method} with the worker's token", jcall(uid, cid, method, sig, *args))
    else:
        for method, sig, args in calls:
            refused_call(f"{role}: {method} with the worker's token", jcall, uid, cid, method, sig, *args)
        jcall(WORKER, cid, "Complete", "ssa{sv}", tok, "{}", {"sv": {}})

# ---- type access: SubmitUsers= / SubmitGroups=, from the groups the bus saw ----

for name, uid, groups, want in (("jobdtest2 (in SubmitUsers=)", OWNER, True, True),
                                ("jobdtest1 with its groups (in SubmitGroups=jobdadm)", ADMIN, True, True),
                                ("jobdtest1 without supplementary groups", ADMIN, False, False),
                                ("jobdtest4 (in neither)", OTHER, True, False),
                                ("root", ROOT, True, True)):
    before = snapshot()
    r = mcall(uid, "Submit", "ssa{sv}", "restricted", "{}", {"sv": {}}, groups=groups)
    if want:
        allowed(f"Submit to a restricted type by {name}", r)
    else:
        refused(f"Submit to a restricted type by {name}", r, before=before)
        ok("SubmitUsers=" in r.get("message", ""), "the refusal names the settings", r)

# ---- WorkerUsers= / WorkerGroups= ----

for name, uid, type_, groups, want in (("jobdtest3 with its groups (in WorkerGroups=jobdwork)", WORKER, "wgroup", True, True),
                                       ("jobdtest3 without supplementary groups", WORKER, "wgroup", False, False),
                                       ("jobdtest4 (not in WorkerGroups=)", OTHER, "wgroup", True, False),
                                       ("jobdtest3 (empty WorkerUsers= and WorkerGroups=: root only)", WORKER, "rootonly", True, False),
                                       ("root (empty lists)", ROOT, "rootonly", True, True)):
    waiting = submit_as(OWNER, type_)
    before = snapshot()
    r = claim_as(uid, type_, groups=groups)
    if want:
        ok(isinstance(r, tuple) and r[0] == waiting, f"Claim of {type_} by {name}: allowed", r)
        if isinstance(r, tuple):
            jcall(uid, r[0], "Complete", "ssa{sv}", r[1], "{}", {"sv": {}})
    else:
        refused(f"Claim of {type_} by {name}", r if isinstance(r, dict) else {"ok": True}, before=before)
        job(job_path(waiting)).Cancel()

# ---- a worker acts only on what it claimed ----

a = submit_as(OWNER, "work2")
b = submit_as(OWNER, "work2")
ca = claim_as(WORKER, "work2")
cb = claim_as(OWNER, "work2")          # jobdtest2 is a worker of work2 too
eq(sorted([ca[0], cb[0]]), sorted([a, b]), "two workers claim one job each")
before = snapshot()
refused("the worker completes the other's job with its own token",
        jcall(WORKER, cb[0], "Complete", "ssa{sv}", ca[1], "{}", {"sv": {}}), ERR + "StaleToken", before=before)
refused("the worker completes the other's job with the other's (leaked) token",
        jcall(WORKER, cb[0], "Complete", "ssa{sv}", cb[1], "{}", {"sv": {}}), before=before)
r = jcall(WORKER, cb[0], "Complete", "ssa{sv}", cb[1], "{}", {"sv": {}})
ok("claimed by uid 2002" in r.get("message", ""), "the refusal says who claimed it", r)
allowed("the claimer completes its own", jcall(OWNER, cb[0], "Complete", "ssa{sv}", cb[1], "{}", {"sv": {}}))
allowed("the worker completes its own", jcall(WORKER, ca[0], "Complete", "ssa{sv}", ca[1], "{}", {"sv": {}}))

# ---- busctl asks with ALLOW_INTERACTIVE_AUTHORIZATION: the rule answers without a prompt ----

for name, uid, want in (("the polkit admin", ADMIN, 's "{\\"secret\\": \\"parameters\\"}"'), ("another user", OTHER, 's ""')):
    r = run("busctl", "get-property", BUS_NAME, job_path(done_id), JOB_IFACE, "Parameters", user=uid, init_groups=True)
    eq(r.stdout.strip(), want, f"busctl (interactive authorization allowed) as {name}")

# ---- answers are kept for the connection's life, asked again on a new one ----

KEEP = r"""
import sys, dbus
p = dbus.Interface(dbus.SystemBus().get_object("org.jobd.Jobd1", sys.argv[1]), dbus.PROPERTIES_IFACE)
print(repr(str(p.Get("org.jobd.Jobd1.Job", "Parameters"))), flush=True)
sys.stdin.readline()
print(repr(str(p.Get("org.jobd.Jobd1.Job", "Parameters"))), flush=True)
"""
proc = subprocess.Popen(["setpriv", f"--reuid={ADMIN}", f"--regid={ADMIN}", "--init-groups", "/usr/bin/python3", "-c",
                         KEEP, job_path(done_id)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
first = proc.stdout.readline().strip()
os.unlink(RULE)
systemctl("restart", "polkit.service")
proc.stdin.write("\n")
proc.stdin.flush()
second = proc.stdout.readline().strip()
proc.wait(timeout=30)
secret = repr('{"secret": "parameters"}')
eq((first, second), (secret, secret), "an open connection keeps polkit's yes after the rule is gone")
eq(get_prop(ADMIN, done_id, "Parameters"), {"ok": True, "value": ""}, "a new connection is asked again: no")

# ---- polkit unavailable (its activation hangs until dbus-daemon gives up after 25 s): no after
# jobd's own 10 s, before callers time out; owners and root unaffected ----

with open(RULE, "w") as f:
    f.write('polkit.addRule(function(action, subject) { return polkit.Result.YES; });\n')
# a drop-in beside the world's polkit.service (the world's unit folder) makes it fail to start
dropin = os.path.dirname(systemctl("show", "-P", "FragmentPath", "polkit.service").stdout.strip()) + \
    "/polkit.service.d"
os.makedirs(dropin, exist_ok=True)
with open(dropin + "/50-broken.conf", "w") as f:
    f.write("[Service]\nExecStart=\nExecStart=/bin/false\n")
systemctl("daemon-reload")
systemctl("stop", "polkit.service")
t0 = time.monotonic()
eq(get_prop(ADMIN, done_id, "Parameters"), {"ok": True, "value": ""}, "polkit unavailable: a non-owner reads empty")
target = submit_as(OWNER, "idle")
refused_call("polkit unavailable: a non-owner's Cancel", jcall, ADMIN, target, "Cancel")
ok(time.monotonic() - t0 < 24, "polkit hanging: both answered within 10 s each, before the caller's 25 s",
   time.monotonic() - t0)
allowed("polkit unavailable: the owner cancels", jcall(OWNER, target, "Cancel"))
os.unlink(dropin + "/50-broken.conf")
os.rmdir(dropin)
systemctl("daemon-reload")

os.unlink(RULE)
done()
