# SPDX-License-Identifier: LGPL-2.1-or-later
"""Dependencies (after), locks (lock) and expiry (expire_usec) for real: chains held back until
each dependency succeeded, failures and cancels that cascade with Errors naming the job, refused
ids that create nothing, Retry, one running job per lock key across local jobs and worker claims
(waiters by priority, then age; a job backing off holds nothing; keys are per owner), jobs that
expire, and all of it across a restart of jobd. Statuses are awaited as JobChanged signals."""

import os
import time

import dbus

from jobdtest import *

SEC = 1_000_000


def sv(d=None):
    return dbus.Dictionary(d or {}, signature="sv")


def after(*ids):
    return dbus.Array([dbus.UInt64(int(i)) for i in ids], signature="t")


def submit_id(type_, options=None, params="{}"):
    return int(submit(type_, params, options)[0])


def claim1(type_):
    return claim([type_])


with open("/etc/jobd/jobd.conf", "w") as f:
    f.write("[Manager]\nMaxRunning=4\n")
WORKED = "[Type]\nDescription=Worked by external workers\n"
for name in ("dep", "deprestart", "lk", "lkprio", "lkown", "lkrestart", "frozen"):
    write_type(name, WORKED)
write_type("lkback", WORKED + "MaxAttempts=2\n")
write_type("nap", "[Type]\nDescription=Sleeps\nExec=/bin/sleep 0.4\nStdin=none\n")
manager().Reload()
watch = JobChanges()

# ---- a chain A ← B ← C: blocked until each dependency succeeded ----

a = submit_id("dep")
b = submit_id("dep", {"after": after(a)})
c = submit_id("dep", {"after": after(b)})
eq([status_of(a), status_of(b), status_of(c)], ["pending", "blocked", "blocked"],
   "a chain: the first pending, the ones after it blocked")
eq([int(i) for i in props_of(c)["After"]], [b], "After lists the dependency")
got = claim1("dep")
eq(got.id, a, "a Claim hands out the dependency, not its dependents")
eq(claim1("dep").id, 0, "blocked jobs are not handed out")
complete(a, got.token)
watch.wait(b, "pending")
eq((status_of(b), status_of(c)), ("pending", "blocked"), "A succeeded: B is pending, C still blocked")
got = claim1("dep")
eq(got.id, b, "B is claimed next")
complete(b, got.token)
watch.wait(c, "pending")
got = claim1("dep")
eq(got.id, c, "then C")
complete(c, got.token)
d = submit_id("dep", {"after": after(a, c)})
eq(status_of(d), "pending", "dependencies that succeeded already count as met")
job(job_path(d)).Cancel()

# ---- a failure cascades down the chain ----

a = submit_id("dep")
b = submit_id("dep", {"after": after(a)})
c = submit_id("dep", {"after": after(b)})
e = submit_id("dep", {"after": after(a, c)})
got = claim1("dep")
eq(got.id, a, "the chain's head is claimed")
fail(a, got.token, "broken", {"retry": dbus.Boolean(False)})
for jid in (b, c, e):
    watch.wait(jid, "failed")
errors = {jid: str(job_props(job_path(jid))["Error"]) for jid in (b, c, e)}
eq(errors, {b: f"dependency job {a} failed", c: f"dependency job {b} failed", e: f"dependency job {a} failed"},
   "the dependents fail with an Error naming the job they waited for")
eq(claim1("dep").id, 0, "nothing of the failed chain is handed out")

# Retry: a dependent of a failed job is refused; retrying the dependency leaves its dependents
# failed; retrying a dependent afterwards makes it wait again
msg = expect_error("Retry of a job whose dependency failed", ERR + "InvalidState", job(job_path(c)).Retry)
ok(str(b) in msg and "failed" in msg, "the refusal names the failed dependency", msg)
job(job_path(a)).Retry()
eq((status_of(a), status_of(b), status_of(c)), ("pending", "failed", "failed"),
   "a retried dependency leaves its failed dependents failed")
job(job_path(b)).Retry()
eq(status_of(b), "blocked", "a retried dependent waits again for its (retried) dependency")
got = claim1("dep")
complete(a, got.token)
watch.wait(b, "pending")
ok(True, "and runs once it succeeded")
job(job_path(b)).Cancel()

# a cancel cascades the same way
x = submit_id("dep")
y = submit_id("dep", {"after": after(x)})
job(job_path(x)).Cancel()
p = watch.wait(y, "failed")
eq(str(p["Error"]), f"dependency job {x} was cancelled", "a cancelled dependency fails its dependents, saying so")

# ---- refused: nothing is created, no record written, no id consumed ----

journal = "/var/lib/jobd/journal"
rows = len(manager().List(sv()))
size = os.path.getsize(journal)
last = max(int(r[0]) for r in manager().List(sv()))
msg = expect_error("after naming a job that does not exist", ERR + "InvalidOption", submit, "dep", "{}",
                   {"after": after(a, 999999)})
ok("999999" in msg, "the message names the id", msg)
msg = expect_error("after naming the job's own future id", ERR + "InvalidOption", submit, "dep", "{}",
                   {"after": after(last + 1)})
ok("not exist yet" in msg and "before it" in msg, "the message says a job can only wait for earlier jobs", msg)
msg = expect_error("after naming a failed job", ERR + "InvalidOption", submit, "dep", "{}", {"after": after(c)})
ok(f"job {c}" in msg and "failed" in msg, "the message says which job failed", msg)
expect_error("after naming a cancelled job", ERR + "InvalidOption", submit, "dep", "{}", {"after": after(x)})
expect_error("after naming a job twice", ERR + "InvalidOption", submit, "dep", "{}", {"after": after(a, a)})
expect_error("expire_usec 0", ERR + "InvalidOption", submit, "dep", "{}", {"expire_usec": dbus.UInt64(0)})
expect_error("expire_usec over a year", ERR + "InvalidOption", submit, "dep", "{}",
             {"expire_usec": dbus.UInt64(367 * 24 * 3600 * SEC)})
expect_error("expire_usec shorter than delay_usec", ERR + "InvalidOption", submit, "dep", "{}",
             {"expire_usec": dbus.UInt64(SEC), "delay_usec": dbus.UInt64(60 * SEC)})
eq((len(manager().List(sv())), os.path.getsize(journal)), (rows, size), "no refused Submit created a job or wrote")
eq(submit_id("dep", {"after": after(a)}), last + 1, "no refused Submit consumed an id")

# jobctl: --after (repeatable), --lock, --expire
r = jobctl("submit", "dep", f"--after={a}", f"--after={last + 1}", "--lock=jc", "--expire=5min")
ok(r.returncode == 0, "jobctl submit --after --after --lock --expire", r.stderr)
if r.returncode == 0:
    jc = int(r.stdout)
    eq([int(i) for i in props_of(jc)["After"]], [a, last + 1], "jobctl passes every --after")
    r = jobctl("list", "--status=blocked", "--no-legend")
    ok(str(jc) in r.stdout, "jobctl list --status=blocked shows it", r.stdout)
    job(job_path(jc)).Cancel()
r = jobctl("submit", "dep", "--expire=0")
eq(r.returncode, 2, "jobctl refuses --expire=0 as a usage error")
job(job_path(last + 1)).Cancel()

# ---- locks: local jobs of two types never run at once ----

j1 = submit_id("exec", {"lock": "L"}, '{"argv": ["sleep", "0.4"]}')
j2 = submit_id("nap", {"lock": "L"})
j3 = submit_id("exec", {}, '{"argv": ["sleep", "0.4"]}')
eq(status_of(j2), "blocked", "a second job with the lock is blocked")
for jid in (j1, j2, j3):
    watch.wait(jid, "succeeded", 30)
p1, p2, p3 = props_of(j1), props_of(j2), props_of(j3)
ok(int(p2["StartedUSec"]) >= int(p1["FinishedUSec"]), "the second started only after the first ended",
   f"{p2['StartedUSec']} < {p1['FinishedUSec']}")
ok(int(p3["StartedUSec"]) < int(p1["FinishedUSec"]), "a job without the lock ran beside the first",
   f"{p3['StartedUSec']} >= {p1['FinishedUSec']}")
seq = [(i, s) for i, s in watch.events if i in (j1, j2)]
running = set()
overlap = False
for i, s in seq:
    if s == "running":
        running.add(i)
    elif s in ("succeeded", "failed", "cancelled"):
        running.discard(i)
    overlap = overlap or len(running) > 1
ok(not overlap, "JobChanged never showed both running", seq)

# a worker's claim holds the key against local jobs too
h = submit_id("lk", {"lock": "mix"})
hc = claim1("lk")
eq(hc.id, h, "a worker claims the holder")
loc = submit_id("exec", {"lock": "mix"}, '{"argv": ["true"]}')
eq(status_of(loc), "blocked", "a local job waits for a key a worker holds")
complete(h, hc.token)
watch.wait(loc, "succeeded", 30)
ok(True, "and runs once the worker completed")

# waiters start by priority, then age
h = submit_id("lkprio", {"lock": "K"})
hc = claim1("lkprio")
w1 = submit_id("lkprio", {"lock": "K"})
w2 = submit_id("lkprio", {"lock": "K", "priority": dbus.Int32(5)})
w3 = submit_id("lkprio", {"lock": "K", "priority": dbus.Int32(5)})
free = submit_id("lkprio", {"lock": "other"})
eq([status_of(i) for i in (w1, w2, w3, free)], ["blocked", "blocked", "blocked", "pending"],
   "waiters for a held key are blocked; another key is free")
got = claim1("lkprio")
eq(got.id, free, "only the job of the free key is handed out")
complete(free, got.token)
eq(claim1("lkprio").id, 0, "nothing else while the key is held")
complete(h, hc.token)
order = []
for _ in range(3):
    got = claim(["lkprio"], wait_usec=5 * SEC)
    order.append(got.id)
    complete(got.id, got.token)
eq(order, [w2, w3, w1], "the key goes by priority, then age")

# keys are per owner
h = submit_id("lkown", {"lock": "K"})
hc = claim1("lkown")
r = run("gdbus", "call", "--system", "--dest", "org.jobd.Jobd1", "--object-path", "/org/jobd/Jobd1",
        "--method", "org.jobd.Jobd1.Manager.Submit", "lkown", "{}", "{'lock': <'K'>}", user=2002)
theirs = int(r.stdout.split("uint64 ")[1].split(",")[0]) if r.returncode == 0 else 0
eq(status_of(theirs) if theirs else r.stderr, "pending", "another user's key of the same name is their own")
complete(h, hc.token)

# a job backing off before its retry does not hold the key
h = submit_id("lkback", {"lock": "B"})
w = submit_id("lkback", {"lock": "B"})
hc = claim1("lkback")
eq(hc.id, h, "the holder is claimed")
fail(h, hc.token, "transient", {"retry_after_usec": dbus.UInt64(600 * SEC)})
watch.wait(w, "pending")
eq(status_of(h), "scheduled", "the failed holder backs off (scheduled)")
eq(claim1("lkback").id, w, "meanwhile the waiter has the key")

# ---- expiry ----

manager().PauseType("frozen")
t0 = int(time.time() * SEC)
ex = submit_id("frozen", {"expire_usec": dbus.UInt64(SEC)})
started = submit_id("dep", {"expire_usec": dbus.UInt64(SEC)})
sc = claim1("dep")
eq(sc.id, started, "a job with expire_usec is claimed in time")
p = watch.wait(ex, "failed", 10)
ok("expired" in str(p["Error"]) and "1s" in str(p["Error"]), "a job of a paused type fails saying it expired",
   p["Error"])
waited = int(p["FinishedUSec"]) - int(p["SubmittedUSec"])
ok(SEC <= waited < SEC + SEC // 2, "after expire_usec (within 0.5 s)", waited)
eq(status_of(started), "running", "a job started in time does not expire")
complete(started, sc.token)
watch.events.clear()
job(job_path(ex)).Retry()
eq(status_of(ex), "pending", "Retry gives an expired job a new expiry")
p = watch.wait(ex, "failed", 10)
ok("expired" in str(p["Error"]), "which runs out again while its type is paused", p["Error"])
bl = submit_id("dep", {"expire_usec": dbus.UInt64(SEC), "after": after(submit_id("frozen"))})
eq(status_of(bl), "blocked", "a blocked job can expire too")
p = watch.wait(bl, "failed", 10)
ok("expired" in str(p["Error"]), "it does", p["Error"])

# ---- across a restart ----

ra = submit_id("deprestart")
rb = submit_id("deprestart", {"after": after(ra)})
rc = submit_id("deprestart", {"after": after(rb)})
rh = submit_id("lkrestart", {"lock": "R"})
rhc = claim1("lkrestart")
rw1 = submit_id("lkrestart", {"lock": "R"})
rw2 = submit_id("lkrestart", {"lock": "R", "priority": dbus.Int32(1)})
rex = submit_id("frozen", {"expire_usec": dbus.UInt64(4 * SEC)})
stop_jobd()
eq([status_of(i) for i in (ra, rb, rc, rh, rw1, rw2, rex)],
   ["pending", "blocked", "blocked", "running", "blocked", "blocked", "pending"],
   "after a restart: blocked stays blocked, the lock's holder runs, its waiters wait")
p = watch.wait(rex, "failed", 15)
ok("expired" in str(p["Error"]), "the expiry still fires after the restart", p["Error"])
got = claim1("deprestart")
eq(got.id, ra, "the dependency is handed out, not its dependents")
complete(ra, got.token)
watch.wait(rb, "pending")
eq(status_of(rc), "blocked", "its dependent is released, the next one still waits")
complete(rh, rhc.token)
watch.wait(rw2, "pending")
eq(status_of(rw1), "blocked", "the lock's holder (claimed before the restart) completes; the better waiter is next")
manager().ResumeType("frozen")

done()
