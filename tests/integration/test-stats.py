# SPDX-License-Identifier: LGPL-2.1-or-later
"""Observability: GetStats figures checked against the jobs run (counts, exact nearest-rank wait and
run percentiles, CPU and memory totals, per type), `jobctl stats` for people and --prometheus
parsed, `jobctl top --once` and a live `jobctl top` driven by jobd's signals."""

import json
import math
import os
import re
import select
import subprocess
import time

import dbus

from jobdtest import *

write_type("ext", "[Type]\nDescription=For workers\n")
write_type("sleepy", "[Type]\nDescription=Sleeps\nExec=/bin/sh -c 'sleep \"$(cat)\"'\nStdin=parameters\n")


def nearest_rank(values, p):
    s = sorted(values)
    return s[math.ceil(p * len(s) / 100) - 1] if s else 0


def run_exec(script):
    jid, _ = submit("exec", json.dumps({"argv": ["/bin/sh", "-c", script]}))
    return int(jid)


# jobs with spread-out run times, one that fails, one cancelled before it ran, one pending
ids = [int(submit("sleepy", str(d))[0]) for d in (0.1, 0.3, 0.5, 0.2, 0.4)]      # a JSON number
ids.append(run_exec("head -c 3000000 /dev/zero | cat > /dev/null; exit 3"))
ids.append(run_exec("true"))
for j in ids:
    wait_finished(j, 30)
held, held_path = submit("ext", "{}")
gone, gone_path = submit("ext", "{}")
job(gone_path).Cancel()

props = {int(r[0]): props_of(r[0]) for r in manager().List(dbus.Dictionary({}, signature="sv"))}


def expected(jobs):
    started = [p for p in jobs if int(p["StartedUSec"]) > 0]
    finished = [p for p in started if str(p["Status"]) in ("succeeded", "failed", "cancelled")]
    waits = [int(p["StartedUSec"]) - int(p["SubmittedUSec"]) for p in started]
    runs = [int(p["FinishedUSec"]) - int(p["StartedUSec"]) for p in finished]
    e = {s: sum(1 for p in jobs if str(p["Status"]) == s)
         for s in ("pending", "scheduled", "blocked", "running", "succeeded", "failed", "cancelled")}
    e.update(total=len(jobs), queue_depth=e["pending"] + e["scheduled"] + e["blocked"],
             wait_count=len(waits), wait_total_usec=sum(waits), run_count=len(runs), run_total_usec=sum(runs),
             cpu_usage_total_nsec=sum(int(p["CPUUsageNSec"]) for p in jobs),
             memory_peak_total_bytes=sum(int(p["MemoryPeakBytes"]) for p in jobs),
             memory_peak_max_bytes=max([int(p["MemoryPeakBytes"]) for p in jobs] + [0]))
    for what, values in (("wait", waits), ("run", runs)):
        for q in (50, 90, 99):
            e[f"{what}_p{q}_usec"] = nearest_rank(values, q)
    return e


def check_figures(got, jobs, name):
    want = expected(jobs)
    bad = {k: (int(got.get(k, -1)), v) for k, v in want.items() if int(got.get(k, -1)) != v}
    ok(not bad, name, bad)


stats = manager().GetStats("")
check_figures(stats, list(props.values()), "GetStats(\"\"): counts, exact p50/p90/p99 of wait and run, CPU and memory")
ok(int(stats["run_count"]) == 7 and int(stats["failed"]) == 1 and int(stats["cancelled"]) == 1
   and int(stats["pending"]) == 1, "the figures cover the jobs run here", dict(stats))
ok(int(stats["run_p90_usec"]) >= 450_000, "the run time percentiles reflect the sleeps", int(stats["run_p90_usec"]))
ok(int(stats["cpu_usage_total_nsec"]) > 0 and int(stats["memory_peak_max_bytes"]) > 0,
   "CPU and memory of the scopes are added up", (int(stats["cpu_usage_total_nsec"]), int(stats["memory_peak_max_bytes"])))
for t in ("sleepy", "exec", "ext"):
    per = manager().GetStats(t)
    check_figures(per, [p for p in props.values() if str(p["Type"]) == t], f"GetStats(\"{t}\") has that type's figures")
    ok(dict(per) == dict(stats["by_type"][t]), f"by_type[{t}] of GetStats(\"\") is the same")
ok("by_type" not in manager().GetStats("sleepy"), "a type's figures have no by_type")
eq(int(stats["workers_waiting"]), 0, "no worker waits")

# a parked Claim counts as a waiting worker
w = private_bus(mainloop=True)
got = []
write_type("idle", "[Type]\nDescription=Nothing to do\n")
manager().Reload()
claim_async(w, ["idle"], 20_000_000, lambda *a: got.append(a), lambda e: got.append(e))
ping_jobd(w)
eq(int(manager().GetStats("")["workers_waiting"]), 1, "workers_waiting counts a parked Claim")
w.set_exit_on_disconnect(False)
w.close()

# ---- jobctl stats ----
r = jobctl("stats")
ok(r.returncode == 0 and re.search(r"^run_p50_usec: +\S", r.stdout, re.M) and re.search(r"^TYPE +TOTAL", r.stdout, re.M),
   "jobctl stats prints the timings and a table per type", r.stdout + r.stderr)
r = jobctl("--json=short", "stats", "sleepy")
ok(r.returncode == 0 and json.loads(r.stdout)["run_count"] == 5, "jobctl --json stats TYPE", r.stdout)

# ---- --prometheus ----
r = jobctl("stats", "--prometheus")
ok(r.returncode == 0, "jobctl stats --prometheus", r.stderr)
families, samples, errors = {}, {}, []
sample_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? (\S+)$')
for line in r.stdout.splitlines():
    if line.startswith("# HELP ") or line.startswith("# TYPE "):
        parts = line.split(" ", 3)
        families.setdefault(parts[2], {})[parts[1]] = parts[3] if len(parts) > 3 else ""
        continue
    m = sample_re.match(line)
    if not m:
        errors.append(f"not a sample: {line!r}")
        continue
    name, labels = m.group(1), dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
    base = re.sub(r"_(sum|count)$", "", name) if name not in families else name
    if base not in families or "TYPE" not in families[base] or "HELP" not in families[base]:
        errors.append(f"{name} has no HELP and TYPE before it")
    samples[(name, tuple(sorted(labels.items())))] = float(m.group(4))
ok(not errors, "every line is a sample or HELP/TYPE, every family has both", errors[:5])


def sample(name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


ok(all(sample("jobd_jobs", type=t, status=s) == int(stats["by_type"][t][s])
       for t in stats["by_type"] for s in ("pending", "running", "succeeded", "failed", "cancelled")),
   "jobd_jobs{type,status} are GetStats' counts")
sl = stats["by_type"]["sleepy"]
ok(sample("jobd_run_seconds", type="sleepy", quantile="0.5") == int(sl["run_p50_usec"]) / 1e6 and
   sample("jobd_run_seconds_count", type="sleepy") == int(sl["run_count"]) and
   sample("jobd_run_seconds_sum", type="sleepy") == int(sl["run_total_usec"]) / 1e6,
   "jobd_run_seconds is a summary with GetStats' quantiles, sum and count")
ok(families.get("jobd_wait_seconds", {}).get("TYPE") == "summary" and families["jobd_jobs"]["TYPE"] == "gauge",
   "TYPE lines say summary and gauge")
ok(math.isnan(sample("jobd_wait_seconds", type="ext", quantile="0.99")), "a quantile of no samples is NaN")
ok(sample("jobd_workers_waiting") is not None, "jobd_workers_waiting has no labels")

# ---- top ----
tid = run_exec(f"{JOBCTL} progress 40 resizing; sleep 30")
wait_status(tid, "running")
wait_for(lambda: int(props_of(tid)["Progress"]) == 40, 10, "the progress report")
r = jobctl("top", "--once")
ok(r.returncode == 0 and re.search(rf"^ *{tid} +exec +root +jobd-{tid}\.scope +1/1 .* 40% resizing$", r.stdout, re.M),
   "jobctl top --once shows the running job, its scope, attempt and progress", r.stdout + r.stderr)
ok(re.search(r"^jobd: 1 running, 1 queued, 0 workers waiting", r.stdout, re.M), "and the counts", r.stdout)
job(job_path(tid)).Cancel()
wait_finished(tid)

# live, not on a terminal: a snapshot per change, from jobd's signals
top = subprocess.Popen([JOBCTL, "top"], stdout=subprocess.PIPE)
out, pending = [], b""


def read_until(pattern, timeout=10):
    """Reads top's lines (unbuffered: select() sees only the pipe) until one matches."""
    global pending
    deadline = time.monotonic() + timeout
    while True:
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            out.append(line.decode() + "\n")
            if re.search(pattern, out[-1]):
                return True
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([top.stdout], [], [], left)[0]:
            return False
        chunk = os.read(top.stdout.fileno(), 65536)
        if not chunk:
            return False
        pending += chunk


ok(read_until(r"^No jobs running\.$"), "jobctl top starts with what runs now", "".join(out))
lid = run_exec("sleep 30")
ok(read_until(rf"^ *{lid} +exec "), "a job that starts shows up (JobChanged)", "".join(out[-10:]))
job(job_path(lid)).Cancel()
p = wait_finished(lid)
ok(read_until(r"^No jobs running\.$"), "and goes when it ends",
   "".join(out[-10:]) + f"(job {lid} is {p['Status']}; top is {'alive' if top.poll() is None else 'gone'})")
top.terminate()
eq(top.wait(5), 0, "jobctl top exits 0 on SIGTERM")

job(held_path).Cancel()
done()
