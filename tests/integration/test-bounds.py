# SPDX-License-Identifier: LGPL-2.1-or-later
"""Every bound on what a caller controls (README, "Security": the table of limits), tried at its
limit (accepted) and one past it (refused with its named error, and nothing created or changed):
parameters, input, pending jobs per user, after ids, lock and unique keys, List limit and filters,
Claim types, wait and waiting Claims per connection, Follow streams per connection and per job,
Log, Progress, Fail and Complete sizes, outputs of workers and of local jobs, Heartbeat and
Release times."""

import json
import os

import dbus

from jobdtest import *

SEC = 1_000_000
KiB = 1024
MiB = 1 << 20
JOURNAL = "/var/lib/jobd/journal"


def sv(d=None):
    return dbus.Dictionary(d or {}, signature="sv")


def state():
    """The journal's size and every property of every job."""
    rows = manager().List(sv())
    return os.path.getsize(JOURNAL), [{str(k): repr(v) for k, v in job_props(str(r[4])).items()} for r in rows]


def refused(name, want, fn, *args, **kwargs):
    """fn(*args) must fail with want and leave the jobs and the journal as they were."""
    before = state()
    expect_error(f"{name}, one past the limit", want, fn, *args, **kwargs)
    after = state()
    ok(after == before, f"{name}: nothing was created or changed",
       f"journal {before[0]} -> {after[0]} bytes; jobs {len(before[1])} -> {len(after[1])}; changed: "
       f"{[a['Id'] for a, b in zip(after[1], before[1]) if a != b]}")


def accepted(name, fn, *args, **kwargs):
    got, r = call_error(fn, *args, **kwargs)
    ok(got is None, f"{name}, at the limit, is accepted", f"{got}: {r}")
    return r


with open("/etc/jobd/jobd.conf", "w") as f:
    f.write(f"[Manager]\nMaxParameterBytes=1K\nMaxInputBytes=1K\nMaxPendingPerUser=3\nOutputQuotaBytes=1K\n")
WORKED = "[Type]\nDescription=Worked by external workers\n"
write_type("b", WORKED)
write_type("bq", WORKED)
write_type("many", "[Type]\nDescription=Leaves 1001 outputs\nExec=/bin/sh -c 'cd \"$JOBD_WORKSPACE/outputs\" && "
           "i=0; while [ $i -le 1000 ]; do : >f$i; i=$((i+1)); done'\n")
write_type("big", "[Type]\nDescription=Leaves 1025 bytes of outputs\nExec=/bin/sh -c "
           "'head -c 1025 /dev/zero >\"$JOBD_WORKSPACE/outputs/big\"'\n")
manager().Reload()
first = int(submit("b", "{}")[0])

# ---- Submit ----

accepted("parameters of MaxParameterBytes=1K", submit, "b", '"' + "x" * (KiB - 2) + '"')
refused("parameters over MaxParameterBytes=1K", ERR + "TooLarge", submit, "b", '"' + "x" * (KiB - 1) + '"')
accepted("an input of MaxInputBytes=1K", submit, "b", "{}", {"input": dbus.types.UnixFd(memfd_with(b"i" * KiB))})
refused("an input over MaxInputBytes=1K", ERR + "TooLarge", submit, "b", "{}",
        {"input": dbus.types.UnixFd(memfd_with(b"i" * (KiB + 1)))})
refused("65 after ids (SUBMIT_AFTER_MAX=64)", ERR + "InvalidOption", submit, "b", "{}",
        {"after": dbus.Array([dbus.UInt64(first)] * 65, signature="t")})
refused("a lock key of 256 bytes (255)", ERR + "InvalidOption", submit, "b", "{}", {"lock": "k" * 256})
YEAR = 366 * 24 * 3600 * SEC
accepted("retention_usec of a year", submit, "b", "{}", {"retention_usec": dbus.UInt64(YEAR)})
refused("retention_usec of a year and 1 µs", ERR + "InvalidOption", submit, "b", "{}",
        {"retention_usec": dbus.UInt64(YEAR + 1)})
accepted("retry_backoff_usec of an hour", submit, "b", "{}", {"retry_backoff_usec": dbus.UInt64(3600 * SEC)})
refused("retry_backoff_usec of an hour and 1 µs", ERR + "InvalidOption", submit, "b", "{}",
        {"retry_backoff_usec": dbus.UInt64(3600 * SEC + 1)})
accepted("a unique_key of 255 bytes", submit, "b", "{}", {"unique_key": "u" * 255})
refused("a unique_key of 256 bytes", ERR + "InvalidOption", submit, "b", "{}", {"unique_key": "u" * 256})
for i in range(3):
    r = run("gdbus", "call", "--system", "--dest", BUS_NAME, "--object-path", MANAGER_PATH, "--method",
            MANAGER_IFACE + ".Submit", "bq", "{}", "{}", user=2002)
    ok(r.returncode == 0, f"jobdtest2's job {i + 1} of MaxPendingPerUser=3 is accepted", r.stderr)
before = state()
r = run("gdbus", "call", "--system", "--dest", BUS_NAME, "--object-path", MANAGER_PATH, "--method",
        MANAGER_IFACE + ".Submit", "bq", "{}", "{}", user=2002)
ok(r.returncode != 0 and "QuotaExceeded" in r.stderr and "MaxPendingPerUser" in r.stderr,
   "a 4th unfinished job of jobdtest2, one past MaxPendingPerUser=3: QuotaExceeded", r.stderr)
eq(state(), before, "MaxPendingPerUser: nothing was created or changed")

# ---- List ----

accepted("List with limit 10000", manager().List, sv({"limit": dbus.UInt32(10000)}))
refused("List with limit 10001", ERR + "InvalidOption", manager().List, sv({"limit": dbus.UInt32(10001)}))
accepted("a status filter of 64 names", manager().List, sv({"status": dbus.Array(["pending"] * 64, signature="s")}))
refused("a status filter of 65 names", ERR + "InvalidOption", manager().List,
        sv({"status": dbus.Array(["pending"] * 65, signature="s")}))
refused("a type filter of 65 names", ERR + "InvalidOption", manager().List,
        sv({"type": dbus.Array(["b"] * 65, signature="s")}))

# ---- Claim ----

refused("Claim of 65 types (CLAIM_TYPES_MAX=64)", ERR + "InvalidParameters", claim, ["b"] * 65)
refused("Claim waiting one hour and 1 µs", ERR + "InvalidParameters", claim, ["b"], 3600 * SEC + 1)
write_type("bwait", WORKED)
manager().Reload()
qb = private_bus(mainloop=True)
waiting = []
for i in range(16):
    claim_async(qb, ["bwait"], 30 * SEC, lambda *r: waiting.append(r), lambda e: waiting.append(e))
ping_jobd(qb)
ok(not waiting, "16 Claims wait on one connection (CLAIM_WAITERS_PER_CONNECTION=16)", waiting)
refused("a 17th waiting Claim on that connection", ERR + "QuotaExceeded", claim, ["bwait"], 5 * SEC, b=qb)
qb.close()

# ---- a worker's calls ----

size = os.path.getsize(JOURNAL)
c = claim(["b"])
ok(c.id > 0, "a worker claims a job", c)
# the claim's record is written with the next fsync, or within 10 ms: wait for it before comparing
wait_for(lambda: os.path.getsize(JOURNAL) > size, 5, "the claim to reach the journal")
jb = job(job_path(c.id))
accepted("Log of 64 KiB", jb.Log, c.token, "l" * (64 * KiB))
refused("Log of 64 KiB + 1", ERR + "TooLarge", jb.Log, c.token, "l" * (64 * KiB + 1))
accepted("a progress message of 4096 bytes", jb.Progress, c.token, dbus.UInt32(1), "p" * 4096)
refused("a progress message of 4097 bytes", ERR + "TooLarge", jb.Progress, c.token, dbus.UInt32(2), "p" * 4097)
refused("Heartbeat extending by a day and 1 µs", ERR + "InvalidParameters", jb.Heartbeat, c.token,
        dbus.UInt64(24 * 3600 * SEC + 1))
refused("Release with a delay of a day and 1 µs", ERR + "InvalidParameters", jb.Release, c.token,
        dbus.UInt64(24 * 3600 * SEC + 1))
refused("Fail with an error of 4097 bytes", ERR + "TooLarge", jb.Fail, c.token, "e" * 4097, sv())
refused("Fail with retry_after_usec of a day and 1 µs", ERR + "InvalidOption", jb.Fail, c.token, "e",
        sv({"retry_after_usec": dbus.UInt64(24 * 3600 * SEC + 1)}))
refused("Complete with a result of 1 MiB + 1", ERR + "TooLarge", jb.Complete, c.token,
        '"' + "r" * (MiB - 1) + '"', sv())
refused("Complete with outputs over OutputQuotaBytes=1K", ERR + "TooLarge", jb.Complete, c.token, "{}",
        sv({"outputs": dbus.Dictionary({"a": dbus.types.UnixFd(memfd_with(b"o" * 600)),
                                        "b": dbus.types.UnixFd(memfd_with(b"o" * 425))}, signature="sh")}))
ok(not os.path.exists(f"/var/lib/jobd/spool/{c.id}/outputs/a"), "the refused outputs were not stored")
accepted("Complete with outputs of OutputQuotaBytes=1K", jb.Complete, c.token, "{}",
         sv({"outputs": dbus.Dictionary({"a": dbus.types.UnixFd(memfd_with(b"o" * 600)),
                                         "b": dbus.types.UnixFd(memfd_with(b"o" * 424))}, signature="sh")}))

# ---- Follow ----

fb = private_bus()
fjob = job(job_path(first), fb)
fds = [fjob.Follow(dbus.UInt64(0)) for _ in range(16)]
ok(len(fds) == 16, "16 Follow streams on one connection (FOLLOW_MAX_PER_CONNECTION=16)")
refused("a 17th Follow stream on that connection", ERR + "QuotaExceeded", fjob.Follow, dbus.UInt64(0))
others = [private_bus() for _ in range(7)]
fds += [job(job_path(first), o).Follow(dbus.UInt64(0)) for o in others for _ in range(16)]
ok(len(fds) == 128, "128 Follow streams of one job (FOLLOW_MAX_PER_JOB=128) from eight connections")
last = private_bus()
refused("a 129th Follow stream of that job", ERR + "QuotaExceeded", job(job_path(first), last).Follow,
        dbus.UInt64(0))
others.append(last)
for fd in fds:
    os.close(fd.take())
for o in [fb] + others:
    o.close()
got = None
for _ in range(100):           # jobd notices closed streams when it next writes to them, or at once by EPOLLERR
    got, _fd = call_error(job(job_path(first), private_bus()).Follow, dbus.UInt64(0))
    if got is None:
        os.close(_fd.take())
        break
    wait_for(lambda: True, 0.05)
ok(got is None, "closed streams give their places back")

# ---- outputs of local jobs ----

jid = int(submit("many", "{}")[0])
p = wait_finished(jid)
ok(str(p["Status"]) == "failed" and "1000" in str(p["Error"]),
   "a local job leaving 1001 outputs fails saying 1000 is the limit", str(p["Error"]))
jid = int(submit("big", "{}")[0])
p = wait_finished(jid)
ok(str(p["Status"]) == "failed" and "OutputQuotaBytes" in str(p["Error"]),
   "a local job leaving 1025 bytes of outputs fails naming OutputQuotaBytes=1K", str(p["Error"]))

done()
