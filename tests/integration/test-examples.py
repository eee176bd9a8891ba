# SPDX-License-Identifier: LGPL-2.1-or-later
"""Every example of examples/ run for real, from where it is installed (share/doc/jobd/examples),
as its header says to run it: the busctl offload with its unique key, the process pool with its
limits, the file worker with jobctl worker, the recurring cleanup (on a timer made to fire every
two seconds) and the long-polling Python worker. Each example states the guarantee of
jobd it relies on; the checks here are about that guarantee."""

import hashlib
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
import traceback

import dbus

from jobdtest import *

EXAMPLES = os.path.join(PREFIX, "share", "doc", "jobd", "examples")
SEC = 1_000_000
FINAL = ("succeeded", "failed", "cancelled")


def section(fn):
    """Runs a part at once; an exception in it fails that part, the others still run."""
    try:
        fn()
    except Exception:
        ok(False, f"{fn.__doc__}: ran to its end", traceback.format_exc())
    return fn


def expect(got, want, name, diag=""):
    """eq() that also prints diag (a command's stderr) when it fails."""
    return ok(got == want, name, f"got {got!r}, want {want!r}\n{diag}")


def example(*parts):
    return os.path.join(EXAMPLES, *parts)


def install_type(path, text=None):
    """Installs a type file as the example says (into /etc/jobd/types.d, then jobctl reload)."""
    name = os.path.basename(path)[:-len(".type")]
    if text is None:
        with open(path) as f:
            text = f.read()
    write_type(name, text)
    r = jobctl("reload")
    assert r.returncode == 0, r.stderr
    return name


def type_settings(name):
    for n, _, settings in manager().ListTypes():
        if n == name:
            return dict(settings)
    return None


def event_texts(jid):
    return [e.get("data") or e.get("message") or "" for e in follow_events(jid)]


class Lines:
    """A child's stdout read line by line against a deadline (no blocking readline)."""

    def __init__(self, proc):
        self.proc, self.buf = proc, b""

    def next(self, timeout=20.0):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no line from {self.proc.args} in {timeout}s; got {self.buf!r}")
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    raise EOFError(f"{self.proc.args} closed stdout; got {self.buf!r}")
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def rest(self, timeout=60.0):
        out, _ = self.proc.communicate(timeout=timeout)
        return self.buf.decode() + out.decode()


# ---- every example says what it relies on, and the README lists it ----

@section
def headers():
    """the examples' headers"""
    with open(example("README.md")) as f:
        readme = f.read()
    for d in ("offload", "pool", "file-worker", "recurring", "python-worker"):
        for f in sorted(os.listdir(example(d))):
            with open(example(d, f)) as fh:
                head = fh.read(4000)
            ok("Relies on" in head, f"{d}/{f} says which guarantee of jobd it relies on")
            ok(f"{d}/{f}" in readme or f"({f})" in readme, f"examples/README.md lists {d}/{f}")
            if f.endswith((".sh", ".py")):
                ok(os.access(example(d, f), os.X_OK), f"{d}/{f} is installed executable")


# ---- (a) offload with busctl: durability and unique keys ----

@section
def offload():
    """offload/offload.sh"""
    script = example("offload", "offload.sh")
    m = manager()
    # with exec paused the job waits, so both requests are certainly submitted while it is
    # unfinished: the second must get the first one's job back
    m.PauseType("exec")
    procs = []
    try:
        for _ in range(2):
            procs.append(subprocess.Popen([script, "request-42", "100000"], stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE))
        lines = [Lines(p) for p in procs]
        first = [l.next() for l in lines]
        ok(first[0].startswith("job ") and first[0] == first[1],
           "two submits with the same request id (unique_key) get the same job", first)
        jid = int(first[0].split()[1])
        eq(status_of(jid), "pending", "the job waits while exec is paused, both scripts wait for it")
    finally:
        m.ResumeType("exec")
    outs = [l.rest() for l in lines]
    for i, p in enumerate(procs):
        eq(p.returncode, 0, f"offload.sh #{i + 1} exits 0 once the job ended")
        eq(outs[i].strip(), "result 9592", f"offload.sh #{i + 1} prints the Result (9592 primes up to 100000)")
    p = props_of(jid)
    eq((str(p["Status"]), str(p["Result"])), ("succeeded", "9592"), "the job succeeded with that Result")
    eq(str(p["Unit"]), f"jobd-{jid}.scope", "it ran in its own scope")
    eq(len(manager().List(dbus.Dictionary({"type": dbus.Array(["exec"], signature="s")}, signature="sv"))), 1,
       "and there is one job, not two")

    # once it finished, the same request id is a new request
    r = run(script, "request-42", "1000")
    expect(r.returncode, 0, "offload.sh again after the end", r.stderr)
    ok(r.stdout.startswith(f"job {jid + 1}\n") and r.stdout.endswith("result 168\n"),
       "a finished job's key is free again: a new job, its result (168 primes up to 1000)", r.stdout)
    r = run(script, "request-43", "x")
    eq(r.returncode, 2, "offload.sh refuses a LIMIT that is not a number")


# ---- (b) a process pool as a type: scopes and limits ----

@section
def pool():
    """pool/hash.type and pool/submit.sh"""
    install_type(example("pool", "hash.type"))
    s = type_settings("hash")
    eq((int(s["concurrency"]), int(s["timeout_usec"]), int(s["nice"]), int(s["memory_max"])),
       (2, 60 * SEC, 10, 64 << 20), "hash.type: Concurrency=2, Timeout=1min, Nice=10, MemoryMax=64M")

    d = tempfile.mkdtemp(dir="/var/tmp", prefix="pool.")
    try:
        files = []
        for i in range(5):
            path = os.path.join(d, f"file{i}")
            with open(path, "wb") as f:
                f.write(os.urandom(256 * 1024 + i))
            files.append(path)
        r = run(example("pool", "submit.sh"), *files)
        expect(r.returncode, 0, "submit.sh hashes five files through the pool", r.stderr)
        ids, hashes = {}, {}
        for line in r.stdout.splitlines():
            words = line.split()
            if len(words) == 3 and words[1] == "job":
                ids[words[0]] = int(words[2])
            elif len(words) == 2 and words[0] in files:
                hashes[words[0]] = words[1]
        eq(sorted(ids), sorted(files), "it prints a job id per file")
        want = {f: hashlib.sha256(open(f, "rb").read()).hexdigest() for f in files}
        eq(hashes, want, "and each file's SHA-256, computed by its job from the input")
        ok("hashing at nice 10" in r.stdout, "the jobs' logs (jobctl follow) show them at nice 10", r.stdout)

        spans = []
        for f, jid in ids.items():
            p = props_of(jid)
            eq(json.loads(str(p["Result"])), want[f], f"job {jid}'s Result is the hash")
            spans += [(int(p["StartedUSec"]), 1), (int(p["FinishedUSec"]), -1)]
        running = most = 0
        for _, delta in sorted(spans, key=lambda e: (e[0], e[1])):   # an end before a start at the same µs
            running += delta
            most = max(most, running)
        ok(1 <= most <= 2, f"never more than Concurrency=2 jobs ran at once (at most {most})")
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---- (c) a file in, a file out, with jobctl worker: leases and tokens ----

@section
def file_worker():
    """file-worker/upper.type, handler.sh and run.sh"""
    install_type(example("file-worker", "upper.type"))
    eq(type_settings("upper")["external"], True, "upper.type is for external workers")
    d = tempfile.mkdtemp(dir="/var/tmp", prefix="upper.")
    try:
        src, dst = os.path.join(d, "in.txt"), os.path.join(d, "out.txt")
        text = "hello, jobd\nthe second line\nand a third\n"
        with open(src, "w") as f:
            f.write(text)
        r = run(example("file-worker", "run.sh"), src, dst)
        expect(r.returncode, 0, "run.sh submits the file, works it with jobctl worker, fetches the output",
           r.stderr)
        jid = int(r.stdout.split()[1])
        with open(dst) as f:
            eq(f.read(), text.upper(), "the output file is the input in upper case")
        p = props_of(jid)
        eq(str(p["Status"]), "succeeded", "the job succeeded")
        eq(json.loads(str(p["Result"])), {"lines": 3, "output": "upper.txt"}, "with the handler's JSON as Result")
        eq(list(map(str, p["Outputs"])), ["upper.txt"], "and the file it left in outputs/ as its output")
        eq((int(p["Progress"]), str(p["ProgressMessage"])), (100, "done"), "jobctl progress from the handler")
        ok(any("converted 3 lines" in t for t in event_texts(jid)), "the handler's stderr is the job's log")

        # without input the handler fails the attempt, and jobd retries it (MaxAttempts=3)
        jid = int(jobctl("submit", "upper").stdout)
        r = run(JOBCTL, "worker", "--max-jobs=1", "upper", "--", example("file-worker", "handler.sh"))
        p = props_of(jid)
        ok(str(p["Status"]) == "scheduled" and int(p["Attempt"]) == 1,
           "a job without input fails its attempt and is scheduled for a retry", dict(p))
        jobctl("cancel", str(jid))
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---- (d) the recurring cleanup: unique keys, durability ----

@section
def recurring():
    """recurring/cleanup.type"""
    path = example("recurring", "cleanup.type")
    with open(path) as f:
        text = f.read()
    install_type(path, text)
    s = type_settings("cleanup")
    ok(s is not None, "cleanup.type loads", jobctl("types").stdout)
    eq((str(s["on_calendar"]), bool(s["schedule_persistent"]), str(s["schedule_error"])),
       ("*-*-* 03:00", True, ""), "its [Schedule] is in effect: OnCalendar=, Persistent=yes")
    r = systemctl("show", "-P", "TimersCalendar", str(s["schedule_timer"]))
    ok("03:00" in r.stdout, f"systemd has the timer {s['schedule_timer']} with that calendar", r.stdout + r.stderr)

    d = tempfile.mkdtemp(dir="/var/tmp", prefix="cleanup.")
    try:
        for name in ("old1", "old2"):
            open(os.path.join(d, name), "w").close()
            old = time.time() - 10 * 86400
            os.utime(os.path.join(d, name), (old, old))
        open(os.path.join(d, "new"), "w").close()
        # the example's schedule, every two seconds (AccuracySec=1s: systemd's default is a minute)
        fast = (text.replace("OnCalendar=*-*-* 03:00", "OnCalendar=*:*:0/2\nAccuracySec=1s")
                    .replace('"dir": "/var/cache/example"', f'"dir": "{d}"'))
        install_type(path, fast)

        def first_run():
            rows = manager().List(dbus.Dictionary({"type": dbus.Array(["cleanup"], signature="s")},
                                                   signature="sv"))
            done = [r for r in rows if str(r[2]) in FINAL]
            return done[0] if done else None
        row = wait_for(first_run, timeout=30, what="the timer's first cleanup job to end")
        p = props_of(int(row[0]))
        eq((str(p["Status"]), json.loads(str(p["Result"]))), ("succeeded", {"removed": 2}),
           "the timer submitted the job with the [Schedule] Parameters=, and it removed the two old files")
        eq(sorted(os.listdir(d)), ["new"], "the new file is still there")
    finally:
        os.unlink("/etc/jobd/types.d/cleanup.type")
        jobctl("reload")
        shutil.rmtree(d, ignore_errors=True)


# ---- (e) the long-polling Python worker: leases and tokens ----

@section
def python_worker():
    """python-worker/stats.type and worker.py"""
    install_type(example("python-worker", "stats.type"))
    worker = [example("python-worker", "worker.py")]

    good = int(submit("stats", json.dumps({"numbers": [3, 1, 4, 1, 5, 9, 2, 6]}))[0])
    bad = int(submit("stats", json.dumps({"numbers": []}))[0])
    r = subprocess.run(worker + ["--wait", "5", "--max-jobs", "2", "stats"], capture_output=True, text=True,
                       timeout=60)
    expect(r.returncode, 0, "worker.py works two jobs and exits", r.stderr)
    p = props_of(good)
    eq(str(p["Status"]), "succeeded", "the good job succeeded")
    eq(json.loads(str(p["Result"])), {"count": 8, "sum": 31, "mean": 3.875, "min": 1, "max": 9},
       "with the worker's result")
    eq((int(p["Progress"]), str(p["ProgressMessage"])), (100, "done"), "its last Progress")
    events = follow_events(good)
    kinds = [e["event"] for e in events]
    ok(kinds.count("progress") >= 4 and "log" in kinds and kinds[-1] == "end",
       "Follow shows the worker's Log and its Progress steps, then the end", kinds)
    p = props_of(bad)
    ok(str(p["Status"]) == "failed" and "non-empty list" in str(p["Error"]),
       "bad parameters fail the job without a retry (Fail retry=false), with the worker's message", dict(p))

    # a long poll: the worker waits in Claim, and gets a job submitted after it started at once
    proc = subprocess.Popen(worker + ["--wait", "30", "--max-jobs", "1", "stats"], stderr=subprocess.PIPE,
                            text=True)
    try:
        # Give it time to reach its Claim. Not a wait for an event: should the job come first,
        # the Claim takes it at once just the same, and the checks below still hold.
        time.sleep(1)
        t0 = time.monotonic()
        jid = int(submit("stats", json.dumps({"numbers": [2, 4]}))[0])
        proc.wait(timeout=20)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    eq(proc.returncode, 0, "a waiting worker.py took the job submitted after it asked")
    ok(took < 10, f"at once, not at the end of its 30 s wait ({took:.1f}s)")
    eq(json.loads(str(props_of(jid)["Result"]))["mean"], 3.0, "and completed it")


done()
