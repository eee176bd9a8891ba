# SPDX-License-Identifier: LGPL-2.1-or-later
"""Local jobs for real: each in its own transient scope in jobd.slice, with limits, a private
/tmp workspace, results, logs, outputs, Follow, progress, cancel, timeouts, retries, recovery."""

import json
import os
import time

import dbus

from jobdtest import *

J = "/org/jobd/Jobd1/job/"


def write(name, text):
    write_type(name, text)


write("echo", "[Type]\nDescription=Echo\nExec=/bin/cat\nStdin=parameters\n")
write("shell", "[Type]\nDescription=Shell\n"
      "Exec=/usr/bin/python3 -c \"import json, os, sys; os.execv('/bin/sh', ['sh', '-c', json.load(sys.stdin)])\"\n"
      "Stdin=parameters\nTimeout=1min\n"
      "[Resources]\nMemoryMax=64M\nTasksMax=32\nCPUQuota=50%\nNice=7\n")
write("slow", "[Type]\nDescription=Slow\nExec=/bin/sleep 30\nTimeout=2s\nStdin=none\n")
write("pair", "[Type]\nDescription=Two at a time\nExec=/bin/sleep 1\nConcurrency=2\nStdin=none\n")
write("flaky", "[Type]\nDescription=Fails\nExec=/bin/sh -c 'exit 3'\nMaxAttempts=3\nRetryBackoff=200ms\nStdin=none\n")
write("asuser", "[Type]\nDescription=As a user\nExec=/usr/bin/id\nUser=jobdtest2\nStdin=none\n")


def sh(script, **opts):
    """Submits a shell-type job; the script is the parameters (a JSON string read from stdin)."""
    jid, path = submit("shell", json.dumps(script), opts)
    return int(jid)


def finished(jid, timeout=30):
    def check():
        p = job_props(J + str(jid))
        return p if str(p["Status"]) in ("succeeded", "failed", "cancelled") else None
    return wait_for(check, timeout, f"job {jid} to finish")


def status_is(jid, status, timeout=30):
    return wait_for(lambda: str(job_props(J + str(jid))["Status"]) == status, timeout, f"job {jid} to be {status}")


# the parameters on stdin, stdout as the result
jid, _ = submit("echo", '{"hello": [1, 2]}')
p = finished(int(jid))
eq(str(p["Status"]), "succeeded", "a job that exits 0 succeeds")
eq(json.loads(str(p["Result"])), {"hello": [1, 2]}, "stdout that is JSON becomes the Result")
eq(int(p["ExitStatus"]), 0, "ExitStatus 0")
eq(str(p["Unit"]), f"jobd-{int(jid)}.scope", "Unit names the job's scope")
ok(int(p["StartedUSec"]) >= int(p["SubmittedUSec"]) and int(p["FinishedUSec"]) >= int(p["StartedUSec"]),
   "StartedUSec and FinishedUSec are set in order")

p = finished(sh("echo not json; ls / >/dev/null"))
eq(json.loads(str(p["Result"])), "not json\n", "stdout that is not JSON becomes a JSON string")

p = finished(sh("echo oops >&2; exit 3"))
eq((str(p["Status"]), int(p["ExitStatus"])), ("failed", 3), "a non-zero exit fails with its ExitStatus")
ok("exited with status 3" in str(p["Error"]), "Error says how it exited", p["Error"])
log = run("journalctl", "-q", "--no-pager", "-o", "cat", f"JOBD_JOB_ID={int(p['Id'])}").stdout
ok("oops" in log, "stderr reaches the journal with JOBD_JOB_ID=", log)

# the workspace is the job's /tmp, private, and gone afterwards
marker = f"jobd-marker-{os.getpid()}"
p = finished(sh(f'echo hi > /tmp/{marker}; test "$TMPDIR" = /tmp && test "$JOBD_WORKSPACE" = /tmp && '
                f'stat -c %a /tmp; ls -A /tmp'))
eq(str(p["Status"]), "succeeded", "a job writes into its /tmp")
ok(not os.path.exists(f"/tmp/{marker}"), "the job's /tmp is not the host's /tmp")
res = json.loads(str(p["Result"]))
ok(res.startswith("700\n") and marker in res, "the workspace is 0700 and holds what the job wrote", res)
ok(not os.path.exists(f"/var/lib/jobd/workspaces/{int(p['Id'])}"), "the workspace is removed at the end")

jid = sh("echo kept > /tmp/file", retention_usec=dbus.UInt64(2_000_000))
p = finished(jid)
ws = f"/var/lib/jobd/workspaces/{jid}"
ok(os.path.exists(ws + "/file"), "retention_usec keeps the workspace after the end")
wait_for(lambda: not os.path.exists(ws), 10, "the kept workspace to expire")
ok(True, "a kept workspace is removed when its retention runs out")

# limits on the scope while it runs
jid = sh("sleep 20")
status_is(jid, "running")
unit = f"jobd-{jid}.scope"
wait_for(lambda: systemctl("is-active", unit).stdout.strip() == "active", 10, "the scope")
show = systemctl("show", unit, "-p", "MemoryMax", "-p", "CPUQuotaPerSecUSec", "-p", "TasksMax", "-p", "Slice").stdout
ok("MemoryMax=67108864" in show, "the scope has MemoryMax", show)
ok("CPUQuotaPerSecUSec=500ms" in show, "the scope has CPUQuotaPerSecUSec", show)
ok("TasksMax=32" in show, "the scope has TasksMax", show)
ok("Slice=jobd.slice" in show, "the scope is in jobd.slice", show)
job(J + str(jid)).Cancel()
p = finished(jid)
eq(str(p["Status"]), "cancelled", "Cancel of a running job cancels it")
ok(systemctl("is-active", unit).stdout.strip() != "active", "Cancel removes the scope")

# nice level and credentials
p = finished(sh("cut -d' ' -f19 /proc/self/stat"))
eq(json.loads(str(p["Result"])), 7, "the job runs at the type's Nice=")
p = finished(int(submit("asuser", "{}")[0]))
ok("uid=2002(jobdtest2)" in json.loads(str(p["Result"])), "User= runs the job as that user", p["Result"])
r = run(JOBCTL, "submit", "exec", '{"argv": ["/usr/bin/id"]}', user=2001, init_groups=True)
p = finished(int(r.stdout.strip() or 0))
res = json.loads(str(p["Result"]))
ok("uid=2001(jobdtest1)" in res and "gid=2001" in res and "jobdadm" in res,
   "an exec job runs as exactly its submitter with the submitter's groups", res)

# memory, tasks, timeout
p = finished(sh("python3 -c 'b = []\nwhile True: b.append(bytearray(8 << 20))'"))
eq(str(p["Status"]), "failed", "a job allocating past MemoryMax fails")
ok("memory" in str(p["Error"]).lower() or "OOM" in str(p["Error"]), "and says it ran out of memory", p["Error"])
p = finished(sh("for i in $(seq 100); do sleep 5 & done; wait"))
ok("TasksMax" in str(p["Error"]), "forking past TasksMax is contained and said", p["Error"])
ok(int(p["FinishedUSec"]) - int(p["StartedUSec"]) < 20_000_000, "the fork attempts stayed in the scope")
p = finished(int(submit("slow", "{}")[0]))
eq(str(p["Status"]), "failed", "a job past its Timeout fails")
ok("timed out" in str(p["Error"]), "and says it timed out", p["Error"])
ok(systemctl("is-active", f"jobd-{int(p['Id'])}.scope").stdout.strip() != "active", "no scope is left after a timeout")

# outputs, and a symlink to a secret refused
p = finished(sh("echo data > /tmp/outputs/result.txt; head -c 3000 /dev/urandom > /tmp/outputs/blob.bin; "
                "ln -s /etc/shadow /tmp/outputs/shadow"))
eq(sorted(str(x) for x in p["Outputs"]), ["blob.bin", "result.txt"], "files in outputs/ become Outputs; a symlink does not")
fd = job(J + str(int(p["Id"]))).GetOutput("result.txt")
eq(os.read(fd.take(), 100), b"data\n", "GetOutput returns the output's bytes")
expect_error("GetOutput of a name that is not an output", ERR + "InvalidParameters", job(J + str(int(p["Id"]))).GetOutput, "shadow")
ok(not os.path.exists(f"/var/lib/jobd/spool/{int(p['Id'])}/outputs/shadow"), "nothing was copied through the symlink")

# Concurrency=2: six 1-second jobs never have more than two scopes at once
ids = [int(submit("pair", "{}")[0]) for _ in range(6)]
props = [finished(i) for i in ids]
# the overlap from the jobs' own timestamps, not from polling (reads of six jobs are not atomic)
edges = sorted([(int(p["StartedUSec"]), 1) for p in props] + [(int(p["FinishedUSec"]), -1) for p in props],
               key=lambda e: (e[0], e[1]))
peak = cur = 0
for _, d in edges:
    cur += d
    peak = max(peak, cur)
eq(peak, 2, "a Concurrency=2 type runs at most two jobs at once (and does reach two)")
starts = sorted(int(p["StartedUSec"]) for p in props)
ok(starts[2] - starts[0] >= 900_000, "the third job started only after one of the first two ended")

# retries: MaxAttempts=3 with RetryBackoff
jid = int(submit("flaky", "{}")[0])
fd = job(J + str(jid)).Follow(dbus.UInt64(0))        # from the start: every status change is in it
with os.fdopen(fd.take(), "r") as f:
    events = [json.loads(line) for line in f]
p = finished(jid, 60)
eq((str(p["Status"]), int(p["Attempt"])), ("failed", 3), "a failing job is tried MaxAttempts times, then fails")
runs = [e["time"] for e in events if e["event"] == "status" and e["status"] == "running"]
eq(len(runs), 3, "Follow shows three attempts")
gaps = [b - a for a, b in zip(runs, runs[1:])]
ok(all(g >= 500_000 for g in gaps), "with the backoff between them (at least 0.5 s, RetryBackoff=200ms doubled)", gaps)
ok(all(g < 500_000 * 1.25 + 1_000_000 for g in gaps), "and no more than the backoff, its jitter and a run", gaps)

# a stderr line with a NUL byte reaches the journal and Follow whole (jobd counts bytes, not C strings)
jid = sh("printf 'nul\\000byte\\n' >&2")
finished(jid)
events = follow_events(jid)
ok(any(e["event"] == "log" and e["data"] == "nul\u0000byte" for e in events),
   "a log line with a NUL byte is kept whole", events)

# a finished job's stream (its history file and folder fds) goes once its last follower left
def jobd_fds():
    return len(os.listdir(f"/proc/{jobd_main_pid()}/fd"))
before = jobd_fds()
for _ in range(5):
    follow_events(jid)                            # the finished NUL job above: history, then EOF
wait_for(lambda: jobd_fds() <= before, 10, "jobd's fds back to where they were")
ok(jobd_fds() <= before, "followers of a finished job leave no stream open behind them", (before, jobd_fds()))

# progress from inside the job, and Follow: history, then live, then EOF
jid = sh(f"{JOBCTL} progress 40 resizing; echo line-one >&2; sleep 1; echo line-two >&2")
status_is(jid, "running")
fd = job(J + str(jid)).Follow(dbus.UInt64(0))
with os.fdopen(fd.take(), "r") as f:
    events = [json.loads(line) for line in f]
kinds = [e["event"] for e in events]
ok(kinds[0] == "status" and kinds[-1] == "end", "Follow starts with the history and ends with the end event", kinds)
ok([e["seq"] for e in events] == sorted(e["seq"] for e in events), "events come in seq order")
ok(any(e["event"] == "progress" and e["percent"] == 40 and e["message"] == "resizing" for e in events),
   "the job's progress report is in the stream", events)
ok([e["data"] for e in events if e["event"] == "log"] == ["line-one", "line-two"], "stderr lines are in the stream")
p = job_props(J + str(jid))
eq((int(p["Progress"]), str(p["ProgressMessage"])), (40, "resizing"), "Progress and ProgressMessage properties")
fd = job(J + str(jid)).Follow(dbus.UInt64(events[1]["seq"]))
with os.fdopen(fd.take(), "r") as f:
    later = [json.loads(line) for line in f]
eq([e["seq"] for e in later], [e["seq"] for e in events[2:]], "Follow from after_seq replays only what came later")
r = run("busctl", "call", "org.jobd.Jobd1", J + str(jid), "org.jobd.Jobd1.Job", "Progress", "sus", "not-the-token", "5", "x")
ok(r.returncode != 0, "Progress with a wrong token is refused")
other = run("gdbus", "call", "--system", "--dest", "org.jobd.Jobd1", "--object-path", J + str(jid),
            "--method", "org.jobd.Jobd1.Job.Follow", "0", user=2002)
ok(other.returncode != 0 and "AccessDenied" in other.stderr, "another user may not follow the job", other.stderr)

# Retry of a failed job runs it again
p = finished(sh("exit 5"))
job(J + str(int(p["Id"]))).Retry()
p2 = finished(int(p["Id"]))
eq((str(p2["Status"]), int(p2["ExitStatus"]), int(p2["Attempt"])), ("failed", 5, 1), "Retry runs a failed job again from attempt 1")

# finished jobs hold no fds: 30 jobs later jobd has no more open files than before
def n_fds():
    return len(os.listdir(f"/proc/{jobd_main_pid()}/fd"))
finished(int(submit("echo", "{}")[0]))
before_fds = n_fds()
for jid in [int(submit("echo", '{"n": %d}' % i)[0]) for i in range(30)]:
    finished(jid)
ok(n_fds() <= before_fds + 2, "running jobs leaves no fds open in jobd", (before_fds, n_fds()))

# kill -9 of jobd while a job runs: after re-activation it is not left running unaccounted
jid = sh("sleep 60")
status_is(jid, "running")
unit = f"jobd-{jid}.scope"
wait_for(lambda: systemctl("is-active", unit).stdout.strip() == "active", 10, "the scope")
kill_jobd()
p = finished(jid)      # the call re-activates jobd
eq(str(p["Status"]), "failed", "a job that ran while jobd died ends failed (its attempt is lost)")
ok("jobd stopped" in str(p["Error"]), "and says why", p["Error"])
wait_for(lambda: systemctl("is-active", unit).stdout.strip() != "active", 15, "the stale scope to stop")
ok(True, "the stale scope is stopped")

done()
