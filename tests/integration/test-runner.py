#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The runner against the sandbox's real systemd: each case runs one RunSpec through
runner-driver (tests/integration/runner-driver.c), which prints JSON lines, and checks what the
job saw, what systemd made of its scope, and how the runner classified the end.

The driver is $JOBD_RUNNER_DRIVER, else $JOBD_PREFIX/libexec/jobd-tests/runner-driver.
"""

import grp
import json
import os
import pwd
import shutil
import subprocess
import sys
import time

from jobdtest import PREFIX, done, eq, ok, run, systemctl, wait_for

DRIVER = os.environ.get("JOBD_RUNNER_DRIVER") or os.path.join(PREFIX, "libexec", "jobd-tests", "runner-driver")
WORKSPACES = "/run/jobd-runner-test"
MiB = 1024 * 1024

_next_id = 7000 + (os.getpid() % 1000) * 10
_sanitizer_reports = []


def note_sanitizer_reports(stderr):
    """The driver is built with ASan and UBSan like jobd: any report fails the file at the end."""
    _sanitizer_reports.extend(line for line in stderr.splitlines()
                              if any(k in line for k in ("AddressSanitizer", "LeakSanitizer", "runtime error:")))


class Run:
    def __init__(self, stdout, stderr, workspace, job_id):
        self.events = []
        for line in stdout.splitlines():
            if line.startswith("{"):
                self.events.append(json.loads(line))
        self.stderr = stderr
        note_sanitizer_reports(stderr)
        self.workspace = workspace
        self.id = job_id
        self.unit = f"jobd-{job_id}.scope"
        ends = [e for e in self.events if e["event"] == "done"]
        self.done = ends[0] if ends else {}
        self.logs = [e["line"] for e in self.events if e["event"] == "log"]
        self.started = [e for e in self.events if e["event"] == "started"]

    def get(self, key, default=None):
        return self.done.get(key, default)

    def diag(self):
        return json.dumps(self.events, indent=1) + "\n" + self.stderr


def new_id():
    global _next_id
    _next_id += 1
    return _next_id


def workspace(job_id, uid=0, gid=0):
    path = os.path.join(WORKSPACES, str(job_id))
    os.makedirs(path, mode=0o700)
    os.chown(path, uid, gid)
    return path


def driver_argv(job_id, ws, argv, opts):
    args = [DRIVER, f"--id={job_id}", f"--workspace={ws}"]
    for k, v in opts.items():
        args.append(f"--{k.replace('_', '-')}" + ("" if v is True else f"={v}"))
    return args + ["--"] + list(argv)


def drive(*argv, uid=0, gid=0, **opts):
    job_id = new_id()
    ws = workspace(job_id, uid, gid)
    if uid:
        opts.setdefault("uid", uid)
        opts.setdefault("gid", gid)
    p = subprocess.run(driver_argv(job_id, ws, argv, opts), capture_output=True, text=True, timeout=120)
    return Run(p.stdout, p.stderr, ws, job_id)


def start_driver(*argv, **opts):
    """Runs the driver in the background; returns (Popen, id) once it printed "started"."""
    job_id = new_id()
    ws = workspace(job_id)
    p = subprocess.Popen(driver_argv(job_id, ws, argv, opts), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    first = p.stdout.readline()
    return p, job_id, ws, first


def finish_driver(p, job_id, ws, first):
    out, err = p.communicate(timeout=120)
    return Run(first + out, err, ws, job_id)


def scope_exists(unit):
    r = systemctl("list-units", "--all", "--no-legend", "--plain", unit)
    return unit in r.stdout


def scope_props(unit, *props):
    r = systemctl("show", unit, *[f"-p{p}" for p in props])
    return dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)


def no_scope_left(r, name):
    try:
        wait_for(lambda: not scope_exists(r.unit), timeout=10, what=f"{r.unit} to go")
        ok(True, f"{name}: no scope left")
    except TimeoutError as e:
        ok(False, f"{name}: no scope left", f"{e}\n{systemctl('status', r.unit).stdout}")


def t_stdin_echo():
    path = os.path.join(WORKSPACES, "stdin.txt")
    with open(path, "w") as f:
        f.write("hello from stdin\n")
    r = drive("cat", stdin_file=path)
    eq((r.get("end"), r.get("exit_status"), r.get("error")), ("exited", 0, None), "stdin: cat exits 0, no error")
    eq(r.get("stdout"), "hello from stdin\n", "stdin: stdout is what stdin held")
    ok(len(r.started) == 1, "stdin: started came once, before done", r.diag())
    r = drive("cat")
    eq((r.get("end"), r.get("stdout")), ("exited", ""), "stdin: none given reads /dev/null")


def t_workspace_tmp():
    marker = f"runner-marker-{os.getpid()}"
    r = drive("sh", "-c", f'echo data > /tmp/{marker} && echo "$TMPDIR $JOBD_WORKSPACE $PWD"')
    eq(r.get("end"), "exited", "workspace: job ran")
    eq(r.get("stdout"), "/tmp /tmp /tmp\n", "workspace: TMPDIR, JOBD_WORKSPACE and the cwd are /tmp")
    ok(os.path.exists(os.path.join(r.workspace, marker)), "workspace: /tmp/FILE landed in the workspace",
       r.diag())
    ok(not os.path.exists(f"/tmp/{marker}"), "workspace: the host's /tmp is untouched")


def t_environment():
    r = drive("sh", "-c", 'echo "$PATH|$HOME|$USER|$LANG|$FOO|$JOBD_JOB_ID"; env | wc -l',
              env="FOO=bar baz")
    lines = r.get("stdout", "").splitlines()
    eq(lines[0] if lines else None,
       f"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin|/root|root|C.UTF-8|bar baz|{r.id}",
       "env: clean PATH, HOME, USER, LANG, the spec's variables, JOBD_JOB_ID")
    ok(len(lines) > 1 and int(lines[1]) <= 12, "env: nothing of the driver's environment leaks in", r.diag())


def t_exit_status():
    r = drive("sh", "-c", "echo out; exit 3")
    eq((r.get("end"), r.get("exit_status"), r.get("error")), ("exited", 3, "exited with status 3"),
       "exit 3: RUN_EXITED 3 with the error text")
    eq(r.get("stdout"), "out\n", "exit 3: stdout kept")


def t_signal():
    r = drive("sh", "-c", "kill -SEGV $$")
    eq((r.get("end"), r.get("term_signal"), r.get("error")), ("signaled", 11, "killed by signal SEGV"),
       "signal: RUN_SIGNALED SEGV")


def t_stderr_lines():
    r = drive("sh", "-c", "echo one >&2; echo >&2; echo two >&2; head -c 10000 /dev/zero | tr '\\0' x >&2; "
              "echo >&2; printf partial >&2")
    eq(r.logs[:3], ["one", "", "two"], "stderr: one log line per line, empty lines kept")
    eq([len(x) for x in r.logs[3:6]], [4096, 4096, 1808], "stderr: a 10000-byte line is split at 4 KiB")
    eq(r.logs[6:], ["partial"], "stderr: an unterminated last line is logged at EOF")


def t_stdout_cap():
    r = drive("sh", "-c", "printf 0123456789abcdef; head -c 3000000 /dev/zero", result_max=10)
    eq((r.get("stdout"), r.get("stdout_size"), r.get("stdout_truncated")), ("0123456789", 10, True),
       "stdout: kept up to result_max, flagged truncated, the rest drained")
    eq(r.get("end"), "exited", "stdout: a job writing past the cap is not blocked")


def t_limits_while_running():
    p, job_id, ws, first = start_driver("sleep", "30", memory_max="64M", cpu_quota=50, tasks_max=32,
                                        cancel_after_usec=3000000)
    unit = f"jobd-{job_id}.scope"
    ok('"started"' in first, "limits: the job started", first)
    props = scope_props(unit, "MemoryMax", "CPUQuotaPerSecUSec", "TasksMax", "Slice", "ActiveState",
                        "OOMPolicy", "CollectMode", "Description")
    eq((props.get("MemoryMax"), props.get("CPUQuotaPerSecUSec"), props.get("TasksMax"), props.get("Slice")),
       (str(64 * MiB), "500ms", "32", "jobd.slice"),
       "limits: systemctl show has MemoryMax, CPUQuotaPerSecUSec, TasksMax, Slice=jobd.slice")
    eq((props.get("ActiveState"), props.get("OOMPolicy"), props.get("CollectMode")),
       ("active", "kill", "inactive-or-failed"), "limits: scope active, OOMPolicy=kill, CollectMode")
    cg = scope_props(unit, "ControlGroup").get("ControlGroup", "")
    limit_file = f"/sys/fs/cgroup/memory{cg}/memory.limit_in_bytes"
    if os.path.exists(limit_file):
        with open(limit_file) as f:
            eq(int(f.read()), 64 * MiB, "limits: the kernel enforces it (v1 memory.limit_in_bytes)")
    else:
        with open(f"/sys/fs/cgroup{cg}/memory.max") as f:
            eq(int(f.read()), 64 * MiB, "limits: the kernel enforces it (memory.max)")
    r = finish_driver(p, job_id, ws, first)
    eq((r.get("end"), r.get("error")), ("cancelled", "cancelled"), "cancel: RUN_CANCELLED while running")
    ok(r.get("done_usec", 0) - r.get("started_usec", 0) < 10_000_000, "cancel: sleep 30 ended early", r.diag())
    no_scope_left(r, "cancel")


def t_cancel_before_start():
    r = drive("sleep", "30", cancel_after_usec=0)
    eq((r.get("end"), r.get("started_usec")), ("cancelled", 0), "cancel at once: RUN_CANCELLED, never started")
    ok(not r.started, "cancel at once: no started callback", r.diag())
    no_scope_left(r, "cancel at once")


def t_cancel_ignoring_term():
    r = drive("python3", "-c", "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
              "print('ready', flush=True)\ntime.sleep(60)", cancel_after_usec=500000, stop_timeout="1s")
    eq((r.get("end"), r.get("error")), ("cancelled", "cancelled"),
       "cancel, job ignores SIGTERM: SIGKILL after the stop timeout, still RUN_CANCELLED")
    no_scope_left(r, "cancel, job ignores SIGTERM")


def t_timeout():
    t0 = time.monotonic()
    r = drive("sleep", "30", timeout="1s")
    took = time.monotonic() - t0
    eq((r.get("end"), r.get("error")), ("timed-out", "timed out after 1s (Timeout=)"),
       "timeout: RUN_TIMED_OUT with the error text")
    ok(1.0 <= took < 10, f"timeout: stopped after about 1s ({took:.2f}s)")
    no_scope_left(r, "timeout")


def t_timeout_graceful():
    r = drive("sh", "-c", "trap 'exit 0' TERM; sleep 30 & wait", timeout="1s")
    eq(r.get("end"), "timed-out", "timeout: a job that exits 0 on SIGTERM still timed out")


def supervisor_of(unit):
    cg = scope_props(unit, "ControlGroup").get("ControlGroup", "")
    for base in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
        procs = f"{base}{cg}/cgroup.procs"
        if os.path.exists(procs):
            for pid in open(procs).read().split():
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() == "jobd-supervise":
                        return int(pid)
    return None


def t_lost():
    p, job_id, ws, first = start_driver("sleep", "30")
    pid = supervisor_of(f"jobd-{job_id}.scope")
    ok(pid is not None, "lost: the supervisor sits in the scope")
    if pid:
        os.kill(pid, 9)
    r = finish_driver(p, job_id, ws, first)
    eq(r.get("end"), "lost", "lost: a supervisor killed without a report is RUN_LOST")
    ok("killed by signal KILL" in (r.get("error") or ""), "lost: the error says how it went", r.get("error"))
    no_scope_left(r, "lost (the orphaned job is stopped)")


def t_oom():
    r = drive("python3", "-c", "a = []\nwhile True: a.append(bytearray(8 << 20))", memory_max="64M")
    eq((r.get("end"), r.get("error")),
       ("oom", "killed by the OOM killer: memory limit MemoryMax=64M reached"),
       "oom: allocating past MemoryMax is RUN_OOM and says so")
    ok(r.get("memory_peak_bytes", 0) >= 60 * MiB, "oom: peak memory is at the limit", r.diag())
    no_scope_left(r, "oom")


def t_tasks_max():
    r = drive("sh", "-c", "for i in $(seq 40); do sleep 1 & done; wait", tasks_max=10)
    ok(r.get("tasks_max_hit") is True, "tasks: a fork past TasksMax=10 is recorded", r.diag())
    eq(r.get("end"), "exited", "tasks: the shell saw its forks fail and exited")
    no_scope_left(r, "tasks")


def t_leftovers_stopped():
    t0 = time.monotonic()
    r = drive("sh", "-c", "for i in 1 2 3; do (sleep 60 &); done; echo spawned; exit 0")
    took = time.monotonic() - t0
    eq((r.get("end"), r.get("exit_status"), r.get("stdout")), ("exited", 0, "spawned\n"),
       "leftovers: the main process's exit decides")
    ok(took < 10, f"leftovers: processes still holding stdout are stopped with the scope ({took:.2f}s)")
    no_scope_left(r, "leftovers")


def t_nice():
    r = drive("nice", nice=7)
    eq(r.get("stdout"), "7\n", "nice: the job runs at the spec's nice level")


def t_credentials():
    try:
        pw = pwd.getpwnam("jobdtest1")
        adm = grp.getgrnam("jobdadm").gr_gid
    except KeyError:
        ok(True, "credentials: # SKIP no jobdtest1 user in this world")
        return
    r = drive("sh", "-c", 'id; echo "$HOME $USER"; touch /tmp/mine; stat -c %u /tmp/mine',
              uid=pw.pw_uid, gid=pw.pw_gid, groups=adm)
    lines = r.get("stdout", "").splitlines()
    want_id = f"uid={pw.pw_uid}(jobdtest1) gid={pw.pw_gid}({grp.getgrgid(pw.pw_gid).gr_name}) " \
              f"groups={pw.pw_gid}({grp.getgrgid(pw.pw_gid).gr_name}),{adm}(jobdadm)"
    want_alt = f"uid={pw.pw_uid}(jobdtest1) gid={pw.pw_gid}({grp.getgrgid(pw.pw_gid).gr_name}) " \
               f"groups={adm}(jobdadm)"
    ok(lines[:1] in ([want_id], [want_alt]), "credentials: id shows exactly the spec's uid, gid and groups",
       r.diag())
    eq(lines[1:], [f"{pw.pw_dir} jobdtest1", str(pw.pw_uid)], "credentials: HOME and USER, files owned by the user")
    r = drive("id", "-G", uid=pw.pw_uid, gid=pw.pw_gid)
    eq(r.get("stdout"), f"{pw.pw_gid}\n", "credentials: no supplementary groups unless given (root's dropped)")


def t_exec_failures():
    r = drive("no-such-binary-xyz", "--flag")
    eq((r.get("end"), r.get("error")),
       ("failed-to-start", "failed to execute no-such-binary-xyz: No such file or directory"),
       "exec: a missing binary is RUN_FAILED_TO_START with the message")
    eq(r.logs, [], "exec: nothing of the failure lands in the job's log")
    r = drive("/etc/passwd")
    eq((r.get("end"), r.get("error")), ("failed-to-start", "failed to execute /etc/passwd: Permission denied"),
       "exec: a non-executable file is RUN_FAILED_TO_START")
    r = drive("true", cwd="/nonexistent-dir")
    eq((r.get("end"), r.get("error")),
       ("failed-to-start", "failed to change to directory /nonexistent-dir: No such file or directory"),
       "exec: a missing cwd is RUN_FAILED_TO_START")
    no_scope_left(r, "exec failures")


def t_systemd_refuses():
    r = drive("true", slice="not-a-slice-name")
    ok(r.get("end") == "failed-to-start" and
       (r.get("error") or "").startswith(f"systemd refused scope jobd-{r.id}.scope: "),
       "refused: a bad Slice= is RUN_FAILED_TO_START, systemd's reason in the error", r.diag())


def t_accounting():
    r = drive("sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done")
    ok(r.get("cpu_usage_nsec", 0) > 10_000_000, f"accounting: CPU use of a busy loop ({r.get('cpu_usage_nsec')} ns)",
       r.diag())
    r = drive("python3", "-c", "b = bytearray(48 << 20)")
    ok(r.get("memory_peak_bytes", 0) >= 48 * MiB,
       f"accounting: peak memory of a 48 MiB allocation ({r.get('memory_peak_bytes')} bytes)", r.diag())


def t_stale_scope():
    unit = f"jobd-{new_id()}.scope"
    p = subprocess.Popen(["systemd-run", "--quiet", "--scope", f"--unit={unit}", "--slice=jobd.slice",
                          "sleep", "60"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: scope_exists(unit), timeout=10, what=unit)
        r = run(DRIVER, f"--stop-stale={unit}")
        note_sanitizer_reports(r.stderr)
        ev = json.loads(r.stdout.splitlines()[-1]) if r.stdout else {}
        eq(ev.get("r"), 1, "stale scope: found and stopped (1)")
        ok(not scope_exists(unit), "stale scope: gone when the callback came")
    finally:
        p.kill()
        p.wait()
    r = run(DRIVER, "--stop-stale=jobd-999999.scope")
    note_sanitizer_reports(r.stderr)
    ev = json.loads(r.stdout.splitlines()[-1]) if r.stdout else {}
    eq(ev.get("r"), 0, "stale scope: none there (0)")


def main():
    if not os.access(DRIVER, os.X_OK):
        print(f"ok 1 - runner # SKIP {DRIVER} not built (-Dtests=true)")
        print("1..1")
        return
    shutil.rmtree(WORKSPACES, ignore_errors=True)
    os.makedirs(WORKSPACES, mode=0o755)

    for t in (t_stdin_echo, t_workspace_tmp, t_environment, t_exit_status, t_signal, t_stderr_lines,
              t_stdout_cap, t_limits_while_running, t_cancel_before_start, t_cancel_ignoring_term,
              t_timeout, t_timeout_graceful, t_lost, t_oom, t_tasks_max, t_leftovers_stopped, t_nice, t_credentials, t_exec_failures,
              t_systemd_refuses, t_accounting, t_stale_scope):
        try:
            t()
        except Exception as e:  # one broken case must not hide the others
            ok(False, f"{t.__name__}: raised", repr(e))

    left = systemctl("list-units", "--all", "--no-legend", "--plain", "jobd-*.scope").stdout.strip()
    ok(left == "", "no jobd-*.scope left after all cases", left)
    ok(not _sanitizer_reports, "runner-driver logged no sanitizer reports", "\n".join(_sanitizer_reports[:20]))
    shutil.rmtree(WORKSPACES, ignore_errors=True)
    done()


if __name__ == "__main__":
    sys.exit(main())
