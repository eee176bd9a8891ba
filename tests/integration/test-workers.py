# SPDX-License-Identifier: LGPL-2.1-or-later
"""External workers for real: Claim with leases and tokens, long polls (20 at once), priorities,
lease expiry, heartbeats, Fail with and without retry, Release, tracked workers, 3 MB inputs and
outputs, output names that try to escape the spool, Follow, who may claim, stale tokens, kill -9
of jobd between Claim and Complete, and `jobctl worker` working through 100 jobs."""

import fcntl
import json
import os
import re
import signal
import subprocess
import tempfile
import time
import traceback

import dbus

from jobdtest import *

SEC = 1_000_000
MiB = 1 << 20


def realtime_usec():
    return int(time.time() * SEC)


def sv(d=None):
    return dbus.Dictionary(d or {}, signature="sv")


def fd_arg(fd):
    return dbus.types.UnixFd(fd)


def section(fn):
    """Runs a part of the test at once; an exception in it is a failure of that part, and the
    other parts still run (each has its own types)."""
    try:
        fn()
    except Exception:
        ok(False, f"{fn.__doc__}: ran to its end", traceback.format_exc())
    return fn


def crash_jobd():
    """kill -9 of jobd; resets the unit's start rate limit, which four quick crashes would hit."""
    kill_jobd()
    systemctl("reset-failed", "jobd.service")


# a one-shot worker process: claims one job of argv[1] (tracked when argv[2] is 1), prints id, token
# and its unique name, and leaves without finishing it (with a third argument: once stdin closes)
WORKER = r"""
import sys, dbus
b = dbus.bus.BusConnection(dbus.bus.BUS_SYSTEM)
m = dbus.Interface(b.get_object("org.jobd.Jobd1", "/org/jobd/Jobd1"), "org.jobd.Jobd1.Manager")
opts = dbus.Dictionary({"track": dbus.Boolean(sys.argv[2] == "1")}, signature="sv")
r = m.Claim(dbus.Array([sys.argv[1]], signature="s"), dbus.UInt64(5000000), opts)
print(int(r[0]), str(r[1]), b.get_unique_name(), flush=True)
if len(sys.argv) > 3:
    sys.stdin.readline()        # stays on the bus until told to go
"""


with open("/etc/jobd/jobd.conf", "w") as f:
    f.write(f"[Manager]\nMaxInputBytes={4 * MiB}\nOutputQuotaBytes={4 * MiB}\n")

# every part of this test has a type of its own, so no job of one part is claimed by another
WORKED = "[Type]\nDescription=Worked by external workers\n"
for name in ("w", "wprio", "wprio2", "wpoll", "wquota", "wquota2", "wio", "wfollow", "wx", "wsh", "wsh1", "wuntracked"):
    write_type(name, WORKED)
write_type("wlease", WORKED + "Timeout=2s\nMaxAttempts=2\nRetryBackoff=100ms\n")
write_type("whb", WORKED + "Timeout=2s\n")
write_type("wfail", WORKED + "MaxAttempts=2\nRetryBackoff=100ms\n")
write_type("wrel", WORKED + "MaxAttempts=1\n")
write_type("wtrack", WORKED + "MaxAttempts=2\nRetryBackoff=100ms\n")
write_type("wtrack2", WORKED + "MaxAttempts=2\nRetryBackoff=100ms\n")
write_type("wcrash", WORKED + "MaxAttempts=3\nRetryBackoff=100ms\n")
write_type("wauth", WORKED + "WorkerGroups=jobdadm\n")
write_type("wuser", WORKED + "WorkerUsers=jobdtest2\n")
write_type("local", "[Type]\nDescription=Runs locally\nExec=/bin/cat\nStdin=parameters\n")
MANY = [f"wm{i:02d}" for i in range(65)]
for name in MANY:
    write_type(name, WORKED)

me = bus().get_unique_name()


# ---- Submit, Claim, Complete -------------------------------------------------------------------

@section
def test_submit_claim_complete():
    """Submit, Claim, Complete"""

    jid = int(submit("w", '{"in": 1}')[0])
    c = claim(["w"])
    eq(c.id, jid, "Claim takes the pending job")
    eq((c.type, c.parameters), ("w", '{"in": 1}'), "Claim returns the job's type and its parameters as submitted")
    ok(len(c.token) >= 22, "the token is long enough for 128 random bits", c.token)
    eq(int(c.info.get("attempt", 0)), 1, "info carries attempt 1")
    now = realtime_usec()
    dl = int(c.info.get("deadline_usec", 0))
    ok(now + 29 * 60 * SEC < dl <= now + 30 * 60 * SEC + SEC,
       "deadline_usec is CLOCK_REALTIME now + 30 min when Timeout= is unset", f"now {now}, deadline {dl}")
    ok("input" not in c.info, "info has no input when the job has none", c.info)
    p = props_of(jid)
    eq((str(p["Status"]), int(p["Attempt"]), str(p["Worker"])), ("running", 1, me),
       "a claimed job is running, Attempt 1, Worker the claimer's unique bus name")
    ok(int(p["StartedUSec"]) > 0, "StartedUSec is set when claimed")
    result = {"answer": 42, "list": [1, "two", None], "nested": {"ok": True}, "text": "äö \"q\""}
    complete(jid, c.token, json.dumps(result))
    p = props_of(jid)
    eq(str(p["Status"]), "succeeded", "Complete: the job succeeded")
    eq(json.loads(str(p["Result"])), result, "Complete: the Result property equals the JSON the worker sent")
    ok(int(p["FinishedUSec"]) >= int(p["StartedUSec"]) > 0, "FinishedUSec is set")

    expect_error("a second Complete with the same token", ERR + "StaleToken", complete, jid, c.token, '{"again": 1}')
    expect_error("Fail after Complete", ERR + "StaleToken", fail, jid, c.token, "late")
    expect_error("Heartbeat after Complete", ERR + "StaleToken", job(job_path(jid)).Heartbeat, c.token, dbus.UInt64(0))
    expect_error("Release after Complete", ERR + "StaleToken", job(job_path(jid)).Release, c.token, dbus.UInt64(0))
    expect_error("Progress after Complete", ERR + "StaleToken", job(job_path(jid)).Progress, c.token, dbus.UInt32(5), "x")
    expect_error("Log after Complete", ERR + "StaleToken", job(job_path(jid)).Log, c.token, "late line\n")
    p2 = props_of(jid)
    eq([(k, p2[k]) for k in ("Status", "Result", "Error", "Attempt", "FinishedUSec", "Progress")],
       [(k, p[k]) for k in ("Status", "Result", "Error", "Attempt", "FinishedUSec", "Progress")],
       "the refused calls changed nothing")


# ---- Claim's arguments ---------------------------------------------------------------------------

@section
def test_claim_arguments():
    """Claim's arguments"""

    c = claim(["w"])
    eq((c.id, c.token, c.type, c.parameters), (0, "", "", ""), "Claim on an empty queue with wait 0: id 0 and empty strings")
    t0 = time.monotonic()
    c = claim(["w"], 1 * SEC)
    el = time.monotonic() - t0
    eq(c.id, 0, "Claim on an empty queue with wait 1 s: id 0")
    ok(1.0 <= el < 2.0, "and it answered after about wait_usec (>= 1 s, < 2 s)", f"{el:.3f} s")
    expect_error("Claim waiting more than an hour", ERR + "InvalidParameters", claim, ["w"], 3600 * SEC + 1)
    expect_error("Claim of an unknown type", ERR + "UnknownType", claim, ["w", "no-such-type"])
    expect_error("Claim of a type with Exec=", ERR + "InvalidParameters", claim, ["local"])
    expect_error("Claim of the built-in exec type", ERR + "InvalidParameters", claim, ["exec"])
    expect_error("Claim of no types", ERR + "InvalidParameters", claim, [])
    expect_error("Claim of 65 types", ERR + "InvalidParameters", claim, MANY)
    got, r = call_error(claim, MANY[:64])
    ok(got is None and r.id == 0, "Claim of 64 types is allowed", f"{got}: {r}")
    expect_error("Claim with an unknown option", ERR + "InvalidOption", manager().Claim,
                 dbus.Array(["w"], signature="s"), dbus.UInt64(0), sv({"bogus": dbus.Boolean(True)}))


# ---- priority, then age ------------------------------------------------------------------------------

@section
def test_priority():
    """priority, then age"""

    ids = {}
    for label, prio in (("mid", 0), ("low", -5), ("high", 50), ("mid2", 0)):
        ids[label] = int(submit("wprio", json.dumps(label), {"priority": dbus.Int32(prio)})[0])
    order = []
    for _ in range(4):
        c = claim(["wprio"])
        order.append(json.loads(c.parameters) if c.id else None)
        if c.id:
            complete(c.id, c.token)
    eq(order, ["high", "mid", "mid2", "low"], "claims come by priority (50, 0, -5), then by id among equals")
    a = int(submit("wprio", '"five"', {"priority": dbus.Int32(5)})[0])
    b_ = int(submit("wprio2", '"ten"', {"priority": dbus.Int32(10)})[0])
    c = claim(["wprio", "wprio2"])
    eq(c.id, b_, "a Claim of two types takes the higher priority job across them")
    complete(c.id, c.token)
    c = claim(["wprio", "wprio2"])
    eq(c.id, a, "and then the other")
    complete(c.id, c.token)


# ---- 20 workers long-polling at once ---------------------------------------------------------------

@section
def test_20_long_polls():
    """20 workers long-polling at once"""

    conns = [private_bus(mainloop=True) for _ in range(20)]
    replies, errors = {}, {}
    for i, b in enumerate(conns):
        claim_async(b, ["wpoll"], 20 * SEC, lambda *r, i=i: replies.__setitem__(i, r),
                    lambda e, i=i: errors.__setitem__(i, e))
    for b in conns:
        ping_jobd(b)      # jobd has read each connection's Claim
    pump(lambda: True, 1)
    ok(not replies and not errors, "20 Claims on an empty queue are all waiting", f"{replies} {errors}")
    t0 = time.monotonic()
    got, r = call_error(manager().List, sv())
    ok(got is None and time.monotonic() - t0 < 1, "jobd answers other calls while 20 Claims wait", got)
    t0 = time.monotonic()
    poll_ids = [int(submit("wpoll", json.dumps({"n": i}))[0]) for i in range(20)]
    try:
        pump(lambda: len(replies) + len(errors) == 20, 15, "all 20 Claims to be answered")
    except TimeoutError as e:
        print(f"# {e}: {len(replies)} answered, errors {errors}")
    el = time.monotonic() - t0
    eq(errors, {}, "no waiting Claim failed")
    got_ids = sorted(int(r[0]) for r in replies.values())
    eq(got_ids, sorted(poll_ids), "the 20 waiting workers got the 20 jobs, each a distinct one")
    ok(el < 10, "they were answered when the jobs came, not when their wait ran out", f"{el:.2f} s")
    workers_ok = True
    for i, r in replies.items():
        jid, token = int(r[0]), str(r[1])
        if not jid:
            continue
        if str(props_of(jid)["Worker"]) != conns[i].get_unique_name():
            workers_ok = False
        got, _ = call_error(complete, jid, token, json.dumps({"by": i}), b=conns[i])
        workers_ok = workers_ok and got is None
    ok(workers_ok, "each job's Worker is the connection that claimed it, and each completes")
    ok(all(status_of(j) == "succeeded" for j in poll_ids), "all 20 jobs succeeded")
    for b in conns:
        b.close()


# ---- at most 16 waiting Claims per connection; a connection that leaves takes nothing ------------------

@section
def test_claim_quota():
    """at most 16 waiting Claims per connection; a connection that leaves takes nothing"""

    qb = private_bus(mainloop=True)
    qname = qb.get_unique_name()
    qreplies, qerrors = [], []
    for i in range(16):
        claim_async(qb, ["wquota"], 30 * SEC, lambda *r: qreplies.append(r), lambda e: qerrors.append(e))
    ping_jobd(qb)
    pump(lambda: True, 0.5)
    ok(not qreplies and not qerrors, "16 Claims wait on one connection", f"{qreplies} {qerrors}")
    expect_error("a 17th waiting Claim on the same connection", ERR + "QuotaExceeded", claim, ["wquota"], 5 * SEC, b=qb)
    got, r = call_error(claim, ["wquota"], 0)
    ok(got is None and r.id == 0, "another connection may still claim", got)

    for track, type_ in ((False, "wquota"), (True, "wquota2")):
        kind = "tracked" if track else "untracked"
        if track:
            qb = private_bus(mainloop=True)
            qname = qb.get_unique_name()
            claim_async(qb, [type_], 30 * SEC, lambda *r: None, lambda e: None, track=True)
            ping_jobd(qb)
        qb.close()
        wait_for(lambda: not bus().name_has_owner(qname), 10, "the connection to leave the bus")
        jid = int(submit(type_, "{}")[0])
        got, c = call_error(claim, [type_], 3 * SEC)
        ok(got is None and c.id == jid,
           f"a job submitted after a connection with waiting {kind} Claims left goes to a live claimer",
           f"{got} {c}; the job is {status_of(jid)}, Worker {props_of(jid)['Worker']}, Error "
           f"{str(props_of(jid)['Error'])!r} (the departed connection was {qname})")
        if got is None and c.id:
            complete(c.id, c.token)
        else:
            call_error(job(job_path(jid)).Cancel)


# ---- lease expiry -----------------------------------------------------------------------------------

@section
def test_lease_expiry():
    """lease expiry"""

    jid = int(submit("wlease", "{}")[0])
    c1 = claim(["wlease"])
    now = realtime_usec()
    dl = int(c1.info.get("deadline_usec", 0))
    ok(now + 1_500_000 <= dl <= now + 2_500_000, "deadline_usec is now + the type's Timeout=2s", f"now {now} deadline {dl}")
    eq(int(props_of(jid)["Attempt"]), 1, "first attempt")
    p = wait_status(jid, ("pending", "scheduled"), 10)
    lost_at = realtime_usec()
    ok(lost_at >= dl - 200_000, "the attempt was not lost before its deadline", f"lost at {lost_at}, deadline {dl}")
    ok(lost_at < dl + 2 * SEC, "and was lost soon after it", f"lost at {lost_at}, deadline {dl}")
    c2 = claim(["wlease"], 5 * SEC)
    eq(c2.id, jid, "after the lease expired the job is claimable again")
    ok(c2.token and c2.token != c1.token, "the second attempt has a new token")
    eq(int(c2.info.get("attempt", 0)), 2, "info carries attempt 2")
    J = job(job_path(jid))
    expect_error("Complete with the expired attempt's token", ERR + "StaleToken", complete, jid, c1.token, '{"late": 1}')
    expect_error("Heartbeat with the expired token", ERR + "StaleToken", J.Heartbeat, c1.token, dbus.UInt64(0))
    expect_error("Fail with the expired token", ERR + "StaleToken", fail, jid, c1.token, "late")
    expect_error("Release with the expired token", ERR + "StaleToken", J.Release, c1.token, dbus.UInt64(0))
    expect_error("Progress with the expired token", ERR + "StaleToken", J.Progress, c1.token, dbus.UInt32(50), "x")
    p = props_of(jid)
    eq((str(p["Status"]), int(p["Attempt"]), str(p["Result"])), ("running", 2, ""), "the stale calls changed nothing")
    complete(jid, c2.token, '{"second": true}')
    p = props_of(jid)
    eq((str(p["Status"]), json.loads(str(p["Result"]) or "null")), ("succeeded", {"second": True}),
       "the second attempt's Complete lands")

    jid = int(submit("wlease", "{}", {"max_attempts": dbus.UInt32(1)})[0])
    c = claim(["wlease"])
    p = wait_finished(jid, 10)
    eq(str(p["Status"]), "failed", "a lease that expires on the last attempt fails the job")
    ok("lease" in str(p["Error"]).lower() and "expire" in str(p["Error"]).lower(), "and the Error says the lease expired",
       p["Error"])
    expect_error("Complete after the last lease expired", ERR + "StaleToken", complete, jid, c.token)


# ---- heartbeats --------------------------------------------------------------------------------------

@section
def test_heartbeats():
    """heartbeats"""

    jid = int(submit("whb", "{}")[0])
    c = claim(["whb"])
    J = job(job_path(jid))
    last = int(c.info.get("deadline_usec", 0))
    problems = []
    end = time.monotonic() + 4
    while time.monotonic() < end:
        now = realtime_usec()
        got, d = call_error(J.Heartbeat, c.token, dbus.UInt64(0))
        if got:
            problems.append(f"Heartbeat: {got}: {d}")
            break
        d = int(d)
        if not now + 1_500_000 <= d <= now + 2_500_000 + 200_000 or d < last:
            problems.append(f"deadline {d} at {now}, previous {last}")
        last = d
        if status_of(jid) != "running":
            problems.append("not running")
        time.sleep(0.5)       # the worker's pace, not a synchronisation
    ok(not problems, "Heartbeat(0) every 0.5 s for 4 s extends the 2 s lease each time", "\n".join(problems))
    now = realtime_usec()
    d = int(J.Heartbeat(c.token, dbus.UInt64(10 * SEC)))
    ok(now + 9 * SEC <= d <= now + 11 * SEC, "Heartbeat with extend_usec 10 s: the deadline is now + 10 s", f"{d} at {now}")
    expect_error("Heartbeat of more than a day", ERR + "InvalidParameters", J.Heartbeat, c.token,
                 dbus.UInt64(86400 * SEC + 1))
    complete(jid, c.token, '"kept alive"')
    p = props_of(jid)
    eq((str(p["Status"]), int(p["Attempt"]), json.loads(str(p["Result"]) or "null")), ("succeeded", 1, "kept alive"),
       "a heartbeating worker completes past its Timeout= on its first attempt")


# ---- Fail ----------------------------------------------------------------------------------------------

@section
def test_fail():
    """Fail"""

    jid = int(submit("wfail", "{}")[0])
    c = claim(["wfail"])
    fail(jid, c.token, "disk on fire", {"retry": dbus.Boolean(False)})
    p = props_of(jid)
    eq((str(p["Status"]), int(p["Attempt"])), ("failed", 1), "Fail with retry=false fails the job although attempts remain")
    ok("disk on fire" in str(p["Error"]), "and Error holds the worker's error", p["Error"])
    expect_error("Complete after Fail", ERR + "StaleToken", complete, jid, c.token)

    jid = int(submit("wfail", "{}")[0])
    c1 = claim(["wfail"])
    t = realtime_usec()
    fail(jid, c1.token, "transient", {"retry_after_usec": dbus.UInt64(1_500_000)})
    p = props_of(jid)
    eq(str(p["Status"]), "scheduled", "Fail with attempts left (MaxAttempts=2): scheduled for a retry")
    nb = int(p["NotBeforeUSec"])
    ok(t + 1_400_000 <= nb <= t + 2_500_000, "NotBeforeUSec is retry_after_usec away", f"{nb} at {t}")
    c = claim(["wfail"])
    eq(c.id, 0, "not claimable before retry_after_usec")
    c2 = claim(["wfail"], 5 * SEC)
    at = realtime_usec()
    eq(c2.id, jid, "claimable again after retry_after_usec")
    ok(at >= nb - 100_000, "and not before NotBeforeUSec", f"claimed at {at}, not before {nb}")
    eq(int(c2.info.get("attempt", 0)), 2, "as attempt 2")
    expect_error("the first attempt's token after Fail", ERR + "StaleToken", complete, jid, c1.token)
    fail(jid, c2.token, "still broken")
    p = props_of(jid)
    eq((str(p["Status"]), int(p["Attempt"])), ("failed", 2), "Fail on the last attempt fails the job")
    ok("still broken" in str(p["Error"]), "with the last error", p["Error"])


# ---- Release --------------------------------------------------------------------------------------------

@section
def test_release():
    """Release"""

    jid = int(submit("wrel", "{}")[0])
    c1 = claim(["wrel"])
    job(job_path(jid)).Release(c1.token, dbus.UInt64(0))
    p = props_of(jid)
    eq((str(p["Status"]), int(p["Attempt"]), str(p["Worker"])), ("pending", 0, ""),
       "Release: pending again, Attempt back to 0, no Worker")
    expect_error("the released attempt's token", ERR + "StaleToken", complete, jid, c1.token)
    c2 = claim(["wrel"])
    eq((c2.id, int(c2.info.get("attempt", 0))), (jid, 1),
       "the released job is claimable again as attempt 1 (MaxAttempts=1: no attempt was charged)")
    ok(c2.token != c1.token, "with a new token")
    t = realtime_usec()
    job(job_path(jid)).Release(c2.token, dbus.UInt64(1 * SEC))
    p = props_of(jid)
    nb = int(p["NotBeforeUSec"])
    eq((str(p["Status"]), int(p["Attempt"])), ("scheduled", 0), "Release with a delay: scheduled, no attempt charged")
    ok(t + 900_000 <= nb <= t + 2 * SEC, "NotBeforeUSec is delay_usec away", f"{nb} at {t}")
    eq(claim(["wrel"]).id, 0, "not claimable during the delay")
    c3 = claim(["wrel"], 5 * SEC)
    eq((c3.id, int(c3.info.get("attempt", 0))), (jid, 1), "claimable after the delay, still as attempt 1")
    complete(jid, c3.token, '"released twice"')
    p = props_of(jid)
    eq((str(p["Status"]), int(p["Attempt"])), ("succeeded", 1), "and it completes on attempt 1")


# ---- another job's token, a made-up token ------------------------------------------------------------------

@section
def test_foreign_tokens():
    """another job's token, a made-up token"""

    ja = int(submit("wx", '"a"')[0])
    jb = int(submit("wx", '"b"')[0])
    ca, cb = claim(["wx"]), claim(["wx"])
    eq(sorted([ca.id, cb.id]), sorted([ja, jb]), "two jobs claimed")
    expect_error("Complete of one job with another job's token", ERR + "StaleToken", complete, ca.id, cb.token, '"x"')
    expect_error("Fail of one job with another job's token", ERR + "StaleToken", fail, ca.id, cb.token, "x",
                 {"retry": dbus.Boolean(False)})
    expect_error("Complete with a made-up token", ERR + "StaleToken", complete, ca.id, "0" * 32, '"x"')
    expect_error("Complete with an empty token", ERR + "StaleToken", complete, ca.id, "", '"x"')
    pa, pb = props_of(ca.id), props_of(cb.id)
    eq((str(pa["Status"]), int(pa["Attempt"]), str(pb["Status"]), int(pb["Attempt"])), ("running", 1, "running", 1),
       "both jobs are still running on their first attempt")
    complete(ca.id, ca.token, '"own a"')
    complete(cb.id, cb.token, '"own b"')
    eq((json.loads(str(props_of(ca.id)["Result"])), json.loads(str(props_of(cb.id)["Result"]))), ("own a", "own b"),
       "each completes with its own token and keeps its own result")
    expect_error("Heartbeat of a pending job", ERR + "StaleToken",
                 job(job_path(int(submit("wx", "{}")[0]))).Heartbeat, "0" * 32, dbus.UInt64(0))
    c = claim(["wx"])
    complete(c.id, c.token)


# ---- tracked and untracked workers that leave -------------------------------------------------------------

@section
def test_tracked_workers():
    """tracked and untracked workers that leave"""


    def one_shot_worker(type_, track):
        """A worker process that claims one job and exits without finishing it: (id, token, name)."""
        r = subprocess.run(["/usr/bin/python3", "-c", WORKER, type_, "1" if track else "0"],
                           capture_output=True, text=True, timeout=30)
        parts = r.stdout.split()
        if r.returncode != 0 or len(parts) != 3:
            print(f"# worker failed: {r.returncode} {r.stdout} {r.stderr}")
            return 0, "", ""
        return int(parts[0]), parts[1], parts[2]


    ju = int(submit("wuntracked", "{}")[0])
    uid_, utoken, uname = one_shot_worker("wuntracked", False)
    eq(uid_, ju, "an untracked one-shot worker claimed a job and left")
    jt = int(submit("wtrack", "{}")[0])
    tid, ttoken, tname = one_shot_worker("wtrack", True)
    left = time.monotonic()
    eq(tid, jt, "a tracked worker claimed a job and left")
    p = wait_status(jt, ("pending", "scheduled"), 10)
    ok(time.monotonic() - left < 5, "the tracked worker's attempt was lost at once, not at the end of its 30 min lease",
       f"{time.monotonic() - left:.2f} s")
    eq(str(props_of(ju)["Status"]), "running", "the untracked worker's job keeps its lease after it left")
    c = claim(["wtrack"], 5 * SEC)
    eq((c.id, int(c.info.get("attempt", 0))), (jt, 2), "the lost job is claimed again as attempt 2")
    expect_error("the departed tracked worker's token", ERR + "StaleToken", complete, jt, ttoken)
    complete(jt, c.token)
    jt = int(submit("wtrack", "{}", {"max_attempts": dbus.UInt32(1)})[0])
    tid, ttoken, _ = one_shot_worker("wtrack", True)
    p = wait_finished(jt, 10)
    eq(str(p["Status"]), "failed", "a tracked worker leaving on the last attempt fails the job")
    ok(re.search(r"disconnect|left the bus", str(p["Error"])), "and the Error says the worker disconnected", p["Error"])
    job(job_path(ju)).Cancel()
    try:
        p = wait_finished(ju, 10)
    except TimeoutError:
        p = props_of(ju)
    eq(str(p["Status"]), "cancelled", "Cancel of a claimed job cancels it")
    expect_error("the cancelled attempt's token", ERR + "StaleToken", complete, ju, utoken, '"after Cancel"')
    eq(str(props_of(ju)["Status"]), "cancelled", "a Complete after Cancel does not make it succeed")


# ---- input and outputs -----------------------------------------------------------------------------------

@section
def test_input_outputs():
    """input and outputs"""

    data = os.urandom(3 * MiB)
    fd = memfd_with(data, "input")
    jid = int(submit("wio", "{}", {"input": fd_arg(fd)})[0])
    os.close(fd)
    c = claim(["wio"])
    eq(c.id, jid, "a job with a 3 MB memfd input is claimed")
    ok("input" in c.info, "info carries input", c.info)
    if "input" in c.info:
        ifd = c.info["input"].take()
        eq(fcntl.fcntl(ifd, fcntl.F_GETFL) & os.O_ACCMODE, os.O_RDONLY, "the input fd is read-only")
        try:
            os.write(ifd, b"x")
            wrote = True
        except OSError:
            wrote = False
        ok(not wrote, "writing to the input fd fails")
        got = read_fd(ifd)
        eq(len(got), len(data), "the input has all 3 MB")
        ok(got == data, "the input arrives byte for byte")

    # refused output names: the job stays running with the same token, nothing lands outside the spool
    ofd = memfd_with(b"evil\n", "evil")
    for bad in ("../../etc/evil", "../evil", "..", ".", "", "a/b", "/etc/evil"):
        expect_error(f"an output named {bad!r}", ERR + "InvalidParameters", complete, jid, c.token, "{}", {bad: ofd})
    os.close(ofd)
    ok(not os.path.exists("/etc/evil"), "/etc/evil does not exist")
    strays = run("find", "/var/lib/jobd", "/etc", "-name", "evil*").stdout.split()
    eq(strays, [], "no file named evil anywhere under /var/lib/jobd or /etc")
    p = props_of(jid)
    eq((str(p["Status"]), int(p["Attempt"]), str(p["Worker"]), list(p["Outputs"])), ("running", 1, me, []),
       "after the refusals the job is still running, attempt 1, no outputs")
    got, _ = call_error(job(job_path(jid)).Heartbeat, c.token, dbus.UInt64(0))
    ok(got is None, "and the same token is still current", got)

    rp, wp = os.pipe()
    os.write(wp, b"from a pipe\n")
    os.close(wp)
    got, msg = call_error(complete, jid, c.token, "{}", {"piped": rp})
    os.close(rp)
    ok(got in (ERR + "InvalidParameters", ERR + "InvalidOption") and msg, "an output that is a pipe is refused",
       f"{got}: {msg}")
    fa, fb = memfd_with(os.urandom(3 * MiB)), memfd_with(os.urandom(2 * MiB))
    expect_error("outputs of 5 MB in total past OutputQuotaBytes=4M", ERR + "TooLarge", complete, jid, c.token, "{}",
                 {"a": fa, "b": fb})
    os.close(fa)
    os.close(fb)
    expect_error("a result that is not JSON", ERR + "InvalidParameters", complete, jid, c.token, "{not json")
    expect_error("a result over 1 MiB", ERR + "TooLarge", complete, jid, c.token, json.dumps("x" * MiB))
    eq((status_of(jid), list(props_of(jid)["Outputs"])), ("running", []), "still running and without outputs after those")

    out = os.urandom(3 * MiB)
    ofd = memfd_with(out, "output")
    tmp = tempfile.NamedTemporaryFile(prefix="jobdtest-out-", dir="/var/tmp")
    tmp.write(b"some notes\n")
    tmp.flush()
    nfd = os.open(tmp.name, os.O_RDONLY)
    complete(jid, c.token, '{"outputs": 2}', {"big.bin": ofd, "notes.txt": nfd})
    os.close(ofd)
    os.close(nfd)
    tmp.close()
    p = props_of(jid)
    eq(str(p["Status"]), "succeeded", "Complete with a memfd and a regular file as outputs")
    eq(sorted(str(x) for x in p["Outputs"]), ["big.bin", "notes.txt"], "Outputs lists both")
    gfd = job(job_path(jid)).GetOutput("big.bin").take()
    eq(fcntl.fcntl(gfd, fcntl.F_GETFL) & os.O_ACCMODE, os.O_RDONLY, "GetOutput's fd is read-only")
    got = read_fd(gfd)
    eq(len(got), len(out), "GetOutput returns all 3 MB")
    ok(got == out, "the output comes back byte for byte")
    eq(read_fd(job(job_path(jid)).GetOutput("notes.txt").take()), b"some notes\n", "the regular file output too")

    # inputs: copied before Submit answers, pipes refused, MaxInputBytes
    tmp = tempfile.NamedTemporaryFile(prefix="jobdtest-in-", dir="/var/tmp")
    tmp.write(b"original bytes\n")
    tmp.flush()
    rfd = os.open(tmp.name, os.O_RDONLY)
    jid = int(submit("wio", "{}", {"input": fd_arg(rfd)})[0])
    os.close(rfd)
    with open(tmp.name, "r+b") as f:
        f.write(b"CHANGED")
    tmp.close()
    c = claim(["wio"])
    got = read_fd(c.info["input"].take()) if "input" in c.info else None
    eq(got, b"original bytes\n", "a regular file input is copied at Submit: later changes to the file do not show")
    complete(jid, c.token)

    before = len(manager().List(sv({"type": dbus.Array(["wio"], signature="s")})))
    rp, wp = os.pipe()
    os.write(wp, b"data through a pipe\n")
    os.close(wp)
    expect_error("Submit with a pipe as input", ERR + "InvalidOption", submit, "wio", "{}", {"input": fd_arg(rp)})
    os.close(rp)
    big = memfd_with(b"\0" * (5 * MiB))
    expect_error("Submit with an input past MaxInputBytes=4M", ERR + "TooLarge", submit, "wio", "{}",
                 {"input": fd_arg(big)})
    os.close(big)
    eq(len(manager().List(sv({"type": dbus.Array(["wio"], signature="s")}))), before, "the refused Submits queued nothing")


# ---- Follow: progress, log, the end ---------------------------------------------------------------------

@section
def test_follow():
    """Follow: progress, log, the end"""

    jid = int(submit("wfollow", "{}")[0])
    c = claim(["wfollow"])
    J = job(job_path(jid))
    stream = J.Follow(dbus.UInt64(0)).take()     # opened while running: the rest comes live
    J.Progress(c.token, dbus.UInt32(30), "halfway")
    J.Log(c.token, "line-a\nline-b\n")
    got, msg = call_error(J.Progress, c.token, dbus.UInt32(95), "m" * 4096)
    ok(got is None, "a progress message of exactly 4096 bytes is accepted", f"{got}: {msg}")
    J.Progress(c.token, dbus.UInt32(90), "almost")
    expect_error("Progress of 101 %", ERR + "InvalidParameters", J.Progress, c.token, dbus.UInt32(101), "too far")
    got, msg = call_error(J.Progress, c.token, dbus.UInt32(95), "m" * 4097)
    ok(got in (ERR + "InvalidParameters", ERR + "TooLarge") and msg, "a progress message over 4096 bytes is refused",
       f"{got}: {msg}")
    got, msg = call_error(J.Log, c.token, "l" * (64 * 1024 + 1))
    ok(got in (ERR + "InvalidParameters", ERR + "TooLarge") and msg, "a Log call over 64 KiB is refused", f"{got}: {msg}")
    p = props_of(jid)
    eq((int(p["Progress"]), str(p["ProgressMessage"])), (90, "almost"), "Progress and ProgressMessage properties")
    complete(jid, c.token, '{"followed": true}')
    events = [json.loads(line) for line in read_fd(stream).decode().splitlines() if line]
    kinds = [e["event"] for e in events]
    ok(any(e["event"] == "progress" and e.get("percent") == 30 and e.get("message") == "halfway" for e in events),
       "Follow shows the worker's progress", events)
    eq([e["data"] for e in events if e["event"] == "log"], ["line-a", "line-b"], "Follow shows the worker's log lines")
    ok(bool(kinds) and kinds[-1] == "end" and events[-1].get("status") == "succeeded",
       "Follow ends with the end event saying succeeded", kinds)
    ok(kinds.index("progress") < kinds.index("log") < len(kinds) - 1 if "progress" in kinds and "log" in kinds else False,
       "in the order they happened", kinds)
    ok([e["seq"] for e in events] == sorted(e["seq"] for e in events), "events come in seq order")
    eq([e["event"] for e in follow_events(jid)], kinds, "a Follow after the end replays the same history")
    log = wait_for(lambda: (lambda t: t if "line-b" in t else None)(
        run("journalctl", "-q", "--no-pager", "-o", "cat", f"JOBD_JOB_ID={jid}").stdout), 10, "the log in the journal")
    ok("line-a" in log and "line-b" in log, "the worker's log lines are in the journal with JOBD_JOB_ID=", log)


# ---- who may claim ---------------------------------------------------------------------------------------

@section
def test_who_may_claim():
    """who may claim"""

    jid = int(submit("wauth", '{"for": "workers"}')[0])


    def gdbus_claim(type_, user, init_groups=False):
        return run("gdbus", "call", "--system", "--dest", BUS_NAME, "--object-path", MANAGER_PATH,
                   "--method", MANAGER_IFACE + ".Claim", f"['{type_}']", "0", "@a{sv} {}", user=user,
                   init_groups=init_groups)


    r = gdbus_claim("wauth", 2002)
    ok(r.returncode != 0 and "org.freedesktop.DBus.Error.AccessDenied" in r.stderr,
       "jobdtest2 (not in WorkerGroups=jobdadm) may not claim", r.stdout + r.stderr)
    eq(status_of(jid), "pending", "and the job stays pending")
    r = gdbus_claim("w", 2001, True)
    ok(r.returncode != 0 and "org.freedesktop.DBus.Error.AccessDenied" in r.stderr,
       "a type with empty WorkerUsers= and WorkerGroups= is for root only", r.stdout + r.stderr)
    r = gdbus_claim("wuser", 2002)
    ok(r.returncode == 0 and "uint64 0" in r.stdout, "jobdtest2 may claim a type with WorkerUsers=jobdtest2",
       r.stdout + r.stderr)
    r = run("busctl", "--json=short", "call", BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "Claim", "asta{sv}",
            "1", "wauth", "0", "0", user=2001, init_groups=True)
    try:
        data = json.loads(r.stdout)["data"]
    except (ValueError, KeyError):
        data = [0, "", "", "", {}]
    eq((int(data[0]), data[3]), (jid, '{"for": "workers"}'), "jobdtest1 (in jobdadm) claims it with busctl")
    wname = str(props_of(jid)["Worker"])
    ok(wname.startswith(":") and wname != me, "its Worker is jobdtest1's connection", wname)
    r = run("busctl", "call", BUS_NAME, job_path(jid), JOB_IFACE, "Complete", "ssa{sv}", data[1], '{"by": "jobdtest1"}',
            "0", user=2001, init_groups=True)
    ok(r.returncode == 0, "and completes it with busctl", r.stderr)
    p = props_of(jid)
    eq((str(p["Status"]), json.loads(str(p["Result"]) or "null")), ("succeeded", {"by": "jobdtest1"}),
       "the job succeeded with the worker's result")


# ---- kill -9 of jobd between Claim and Complete ---------------------------------------------------------------

@section
def test_kill_jobd():
    """kill -9 of jobd between Claim and Complete"""

    jid = int(submit("wcrash", '"crash"')[0])
    c = claim(["wcrash"])
    crash_jobd()
    got, msg = call_error(complete, jid, c.token, '{"after": "crash"}')
    ok(got in (None, ERR + "StaleToken"), "after kill -9 the worker's Complete either lands or is refused as StaleToken",
       f"{got}: {msg}")
    if got is None:
        print("# the attempt survived the crash: Complete landed", flush=True)
        p = props_of(jid)
        eq((str(p["Status"]), int(p["Attempt"]), json.loads(str(p["Result"]) or "null")),
           ("succeeded", 1, {"after": "crash"}), "the job succeeded on attempt 1 with the worker's result")
        expect_error("a second Complete after the crash", ERR + "StaleToken", complete, jid, c.token, '{"twice": 1}')
    else:
        print(f"# Complete after the crash was refused: {msg}", flush=True)
        p = props_of(jid)
        ok(str(p["Status"]) != "succeeded", "the refused Complete was not applied", p["Status"])
        p = wait_status(jid, ("pending", "scheduled", "failed"), 10)
        if str(p["Status"]) != "failed":
            c2 = claim(["wcrash"], 5 * SEC)
            eq(c2.id, jid, "the job whose attempt was lost is claimable again")
            complete(jid, c2.token, '{"after": "crash"}')
    crash_jobd()
    p = props_of(jid)
    eq((str(p["Status"]), json.loads(str(p["Result"]) or "null")), ("succeeded", {"after": "crash"}),
       "after another kill -9 the job is succeeded, exactly once, with the result")
    if got is None:
        eq(int(p["Attempt"]), 1, "still on attempt 1")

    # a Complete that was answered is durable: kill -9 right after it
    jid = int(submit("wcrash", '"durable"')[0])
    c = claim(["wcrash"])
    complete(jid, c.token, '{"durable": true}')
    crash_jobd()
    p = props_of(jid)
    eq((str(p["Status"]), int(p["Attempt"]), json.loads(str(p["Result"]) or "null")), ("succeeded", 1, {"durable": True}),
       "an answered Complete survives kill -9 of jobd right after it")

    # a claimed attempt after a restart: its token either still works or is stale, the job is never lost
    jid = int(submit("wcrash", '"restart"')[0])
    c = claim(["wcrash"])
    crash_jobd()
    got, msg = call_error(job(job_path(jid)).Heartbeat, c.token, dbus.UInt64(0))
    p = props_of(jid)
    if got is None:
        eq((str(p["Status"]), int(p["Attempt"])), ("running", 1), "after kill -9 a surviving attempt is still running")
        complete(jid, c.token)
    else:
        eq(got, ERR + "StaleToken", "after kill -9 a lost attempt's token is StaleToken")
        ok(str(p["Status"]) in ("pending", "scheduled"), "and the job is back in the queue", p["Status"])
        c2 = claim(["wcrash"], 5 * SEC)
        complete(jid, c2.token)
    eq(status_of(jid), "succeeded", "the job succeeds either way")


# ---- a tracked worker that leaves while jobd is down ------------------------------------------------------

@section
def test_tracked_worker_left_while_down():
    """a tracked worker that leaves while jobd is down"""

    jid = int(submit("wtrack2", "{}")[0])
    w = subprocess.Popen(["/usr/bin/python3", "-c", WORKER, "wtrack2", "1", "stay"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    try:
        parts = w.stdout.readline().split()
        eq(int(parts[0]) if parts else 0, jid, "a tracked worker claimed a job and stays")
        stop_jobd()
        w.stdin.close()
        w.wait(timeout=10)
        wait_for(lambda: not bus().name_has_owner(parts[2]), 10, "the worker to leave the bus")
        t0 = time.monotonic()
        try:
            p = wait_status(jid, ("pending", "scheduled"), 5)     # the call starts jobd again
        except TimeoutError:
            p = props_of(jid)
        ok(str(p["Status"]) in ("pending", "scheduled"),
           "when jobd comes back, the attempt of a tracked worker that left meanwhile is lost at once",
           f"{p['Status']} after {time.monotonic() - t0:.1f} s, Worker {p['Worker']}, deadline {p['DeadlineUSec']}")
    finally:
        if w.poll() is None:
            w.kill()
            w.wait()


# ---- jobctl worker -------------------------------------------------------------------------------------------

@section
def test_jobctl_worker():
    """jobctl worker"""

    params = {}
    for i in range(100):
        p_ = {"n": i, "text": "x" * (i % 7)}
        params[int(submit("wsh", json.dumps(p_))[0])] = p_
    try:
        r = subprocess.run([JOBCTL, "worker", "--concurrency=4", "--max-jobs=100", "wsh", "--",
                            "sh", "-c", "cat; echo done >&2"], capture_output=True, text=True, timeout=120)
        rc, err = r.returncode, r.stderr
    except subprocess.TimeoutExpired as e:
        rc, err = "timeout", e.stderr
    eq(rc, 0, "jobctl worker --concurrency=4 --max-jobs=100 exits 0 after 100 jobs")
    if rc != 0:
        print("# " + str(err)[-2000:].replace("\n", "\n# "))
    wrong = []
    for jid, want in params.items():
        p = props_of(jid)
        try:
            res = json.loads(str(p["Result"]))
        except ValueError:
            res = str(p["Result"])
        if str(p["Status"]) != "succeeded" or res != want:
            wrong.append(f"{jid}: {p['Status']} {p['Result']!r} {p['Error']!r}")
    ok(not wrong, "all 100 jobs succeeded with the handler's stdout as their result", "\n".join(wrong[:10]))
    props = [props_of(j) for j in params]
    edges = sorted([(int(p["StartedUSec"]), 1) for p in props] + [(int(p["FinishedUSec"]), -1) for p in props])
    peak = cur = 0
    for _, d in edges:
        cur += d
        peak = max(peak, cur)
    ok(1 <= peak <= 4, f"--concurrency=4 held at most 4 jobs at once (peak {peak})")
    eq(sorted(int(p["Attempt"]) for p in props), [1] * 100, "each job took exactly one attempt")
    first = min(params)
    try:
        log = wait_for(lambda: (lambda t: t if "done" in t else "")(
            run("journalctl", "-q", "--no-pager", "-o", "cat", f"JOBD_JOB_ID={first}").stdout), 10,
            "the handler's stderr in the journal", interval=0.2)
    except TimeoutError:
        log = run("journalctl", "-q", "--no-pager", "-o", "cat", f"JOBD_JOB_ID={first}").stdout
    ok("done" in log, "the handler's stderr reaches the job's log", log)


    def jobctl_worker_once(type_, *handler, timeout=30):
        try:
            r = subprocess.run([JOBCTL, "worker", "--max-jobs=1", type_, "--", *handler],
                               capture_output=True, text=True, timeout=timeout)
            return r.returncode, r.stderr
        except subprocess.TimeoutExpired as e:
            return "timeout", e.stderr


    jid = int(submit("wsh1", '{"env": 1}')[0])
    rc, err = jobctl_worker_once("wsh1", "sh", "-c",
                                 'printf \'{"id": %s, "token": %s}\' "$JOBD_JOB_ID" "${#JOBD_TOKEN}"')
    p = props_of(jid)
    try:
        res = json.loads(str(p["Result"]))
    except ValueError:
        res = {}
    ok(str(p["Status"]) == "succeeded" and res.get("id") == jid and res.get("token", 0) >= 22,
       "the handler has JOBD_JOB_ID and JOBD_TOKEN in its environment", f"{rc} {err} {p['Status']} {p['Result']}")
    jid = int(submit("wsh1", "{}", {"max_attempts": dbus.UInt32(1)})[0])
    rc, err = jobctl_worker_once("wsh1", "sh", "-c", "echo bad >&2; exit 3")
    p = props_of(jid)
    ok(str(p["Status"]) == "failed" and "3" in str(p["Error"]), "a handler that exits 3 fails the job, saying so",
       f"{rc} {err} {p['Status']} {p['Error']}")

    jid = int(submit("wsh1", "{}")[0])
    w = subprocess.Popen([JOBCTL, "worker", "wsh1", "--", "sleep", "60"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    try:
        wait_status(jid, "running", 10)
        w.send_signal(signal.SIGTERM)
        try:
            rc = w.wait(timeout=15)
        except subprocess.TimeoutExpired:
            rc = "still running"
        ok(rc == 0, "jobctl worker exits cleanly on SIGTERM", f"{rc} {w.stderr.read() if rc != 'still running' else ''}")
        p = props_of(jid)
        eq((str(p["Status"]), int(p["Attempt"])), ("pending", 0), "and releases the job it held: pending, no attempt charged")
    finally:
        if w.poll() is None:
            w.kill()
            w.wait()

done()
