#!/usr/bin/env bash
# selftest.sh — checks that tests/sandbox/sandbox boots a usable world and leaves nothing behind.
#
# Builds a throwaway install prefix holding a D-Bus-activatable Type=dbus service
# (org.example.Hello, python3-dbus), boots a world on it and checks: activation through
# systemd, a transient scope with limits, the journal, exec's plumbing, the world's own
# /etc/jobd, /var/lib/jobd and /run/jobd; then stops it and checks that its process, cgroups
# and files are gone and that the host was not touched. Prints TAP-like ok/not ok lines and
# exits non-zero if any check failed. Needs root, like the sandbox.

# Helpers are called through check() and trap, which shellcheck cannot follow.
# shellcheck disable=SC2317

set -euo pipefail

HERE=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
SB=$HERE/sandbox
TMP=$(mktemp -d /tmp/jobd-sbx-selftest.XXXXXX)
PREFIX=$TMP/prefix
CANARY=$TMP.canary          # a file in the host's /tmp that must survive the world
PID=""
FAILED=0
N=0

ok() {
        N=$((N + 1))
        echo "ok $N - $*"
}

not_ok() {
        N=$((N + 1))
        FAILED=1
        echo "not ok $N - $*"
}

# check DESCRIPTION CMD...: one result line for a command's success.
check() {
        local what=$1
        shift
        if "$@"; then ok "$what"; else not_ok "$what"; fi
}

now_msec() {
        local t=$EPOCHREALTIME
        t=${t/./}
        echo $((t / 1000))
}

in_world() { "$SB" exec "$PID" "$@"; }

# The host facts a world must not change.
host_facts() {
        cat /proc/1/cgroup
        cat /proc/sys/fs/file-max /proc/sys/fs/nr_open /proc/sys/net/unix/max_dgram_qlen
        hostname
        ls /dev
}

cleanup() {
        if [[ -n $PID ]]; then
                "$SB" stop "$PID" >&2 || true
        fi
        rm -rf "$TMP" "$CANARY"
}
trap cleanup EXIT

write_prefix() {
        mkdir -p "$PREFIX"/{bin,libexec,share/dbus-1/system-services,share/dbus-1/system.d} \
                "$PREFIX/lib/systemd/system"

        cat >"$PREFIX/libexec/hello.py" <<'EOF'
import os
import dbus
import dbus.mainloop.glib
import dbus.service
from gi.repository import GLib


class Hello(dbus.service.Object):
    @dbus.service.method("org.example.Hello", in_signature="", out_signature="s")
    def Ping(self):
        return "pong from pid %d" % os.getpid()


dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
bus = dbus.SystemBus()
name = dbus.service.BusName("org.example.Hello", bus)
hello = Hello(bus, "/org/example/Hello")
print("hello: ready", flush=True)
GLib.MainLoop().run()
EOF
        cat >"$PREFIX/lib/systemd/system/hello.service" <<EOF
[Unit]
Description=Sandbox self-test D-Bus service

[Service]
Type=dbus
BusName=org.example.Hello
ExecStart=/usr/bin/python3 $PREFIX/libexec/hello.py
EOF
        cat >"$PREFIX/share/dbus-1/system-services/org.example.Hello.service" <<'EOF'
[D-BUS Service]
Name=org.example.Hello
Exec=/bin/false
User=root
SystemdService=hello.service
EOF
        cat >"$PREFIX/share/dbus-1/system.d/org.example.Hello.conf" <<'EOF'
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <policy user="root">
    <allow own="org.example.Hello"/>
  </policy>
  <policy context="default">
    <allow send_destination="org.example.Hello"/>
  </policy>
</busconfig>
EOF
        printf '#!/bin/sh\necho from-prefix-bin\n' >"$PREFIX/bin/sbx-selftest-tool"
        chmod 755 "$PREFIX/bin/sbx-selftest-tool"
}

# journal_has PATTERN JOURNALCTL-ARGS...: polls the world's journal for a line, up to 10 s.
journal_has() {
        local pattern=$1 i
        shift
        for ((i = 0; i < 200; i++)); do
                in_world journalctl --no-pager -o cat "$@" 2>/dev/null | grep -q -- "$pattern" && return 0
                sleep 0.05
        done
        return 1
}

test_activation() {
        local reply
        reply=$(in_world busctl call org.example.Hello /org/example/Hello org.example.Hello Ping 2>&1) || true
        check "busctl Ping activates org.example.Hello ($reply)" grep -q '^s "pong from pid' <<<"$reply"
        check "hello.service was started by systemd" \
                test "$(in_world systemctl is-active hello.service)" = active
        check "the service's stdout reaches the journal" \
                journal_has 'hello: ready' -u hello.service
}

test_scope() {
        local rc=0 limit
        in_world systemd-run --quiet --scope -p MemoryMax=50M -p TasksMax=10 true || rc=$?
        check "systemd-run --scope -p MemoryMax=50M -p TasksMax=10 true (rc $rc)" test "$rc" = 0
        # shellcheck disable=SC2016 # expanded inside the scope
        limit=$(in_world systemd-run --quiet --scope -p MemoryMax=50M sh -c \
                'cat /sys/fs/cgroup/memory$(grep :memory: /proc/self/cgroup | cut -d: -f3)/memory.limit_in_bytes') || true
        check "MemoryMax=50M is enforced as memory.limit_in_bytes ($limit)" test "$limit" = 52428800
}

test_journal() {
        local tag=sbx-selftest-$$-$RANDOM
        echo "via-systemd-cat" | in_world systemd-cat -t "$tag"
        in_world logger -t "$tag" "via-logger"
        check "systemd-cat message is in the journal" journal_has via-systemd-cat -t "$tag"
        check "logger (/dev/log) message is in the journal" journal_has via-logger -t "$tag"
}

test_exec() {
        local rc=0 out
        in_world sh -c 'exit 7' || rc=$?
        check "exec keeps the exit status (7 = $rc)" test "$rc" = 7
        rc=0
        # In a subshell with stderr dropped: bash would print "Terminated".
        # shellcheck disable=SC2016 # expanded inside
        (in_world sh -c 'kill -TERM $$') 2>/dev/null || rc=$?
        check "exec keeps death by signal (143 = $rc)" test "$rc" = 143
        out=$(echo through-stdin | in_world cat)
        check "exec passes stdin and stdout" test "$out" = through-stdin
        out=$(in_world sh -c 'echo to-stderr >&2' 2>&1 >/dev/null)
        check "exec passes stderr" test "$out" = to-stderr
        check "exec runs in /" test "$(in_world pwd)" = /
        check "the prefix's bin is on PATH" test "$(in_world sbx-selftest-tool)" = from-prefix-bin
        check "python3 on PATH has dbus" in_world python3 -c 'import dbus'
        check "PID 1 inside is systemd" \
                test "$(in_world sh -c 'cat /proc/1/comm')" = systemd
}

# Units added to $W/units after start, then daemon-reload; services' PATH.
test_units() {
        local w out
        w=$(cat "/tmp/sbworld.of.$PID")
        cat >"$w/units/sbx-added.service" <<'EOF'
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/true
EOF
        in_world systemctl daemon-reload
        check "a unit written to \$W/units starts after daemon-reload" in_world systemctl start sbx-added.service
        # shellcheck disable=SC2016 # expanded by the service
        out=$(in_world systemd-run --quiet --wait --pipe sh -c 'echo $PATH') || true
        check "services have the prefix's bin on PATH ($out)" test "${out%%:*}" = "$PREFIX/bin"
}

test_state_dirs() {
        local w d
        w=$(cat "/tmp/sbworld.of.$PID")
        for d in /etc/jobd /var/lib/jobd /var/log/journal /run; do
                check "$d is a mount of its own inside" in_world mountpoint -q "$d"
        done
        check "/run/jobd exists inside" in_world test -d /run/jobd
        in_world sh -c 'echo x >/etc/jobd/selftest.conf && echo y >/var/lib/jobd/state'
        check "/etc/jobd inside is \$W/etc-jobd on the host" test -f "$w/etc-jobd/selftest.conf"
        check "the host has no /etc/jobd or /var/lib/jobd" test ! -e /etc/jobd -a ! -e /var/lib/jobd
        in_world sh -c 'echo x >/etc/sbx-selftest-written-inside'
        check "writes to /etc inside stay inside" test ! -e /etc/sbx-selftest-written-inside
        check "the manager's unit path is only the stubs and the prefix" test \
                "$(in_world systemctl show -P UnitPath)" = "$w/units $PREFIX/lib/systemd/system"
}

main() {
        local facts_before t0 start_ms stop_ms w cgroups cg left sleeper
        [[ $(id -u) == 0 ]] || { echo "not ok 1 - selftest needs root"; exit 1; }
        # The bus reads activation files and policy as messagebus.
        chmod 755 "$TMP"
        write_prefix
        : >"$CANARY"
        facts_before=$(host_facts)

        t0=$(now_msec)
        PID=$("$SB" start --prefix "$PREFIX" | tail -n 1) || true
        start_ms=$(( $(now_msec) - t0 ))
        if [[ ! $PID =~ ^[0-9]+$ ]]; then
                PID=""
                not_ok "sandbox start"
                exit 1
        fi
        ok "sandbox start (pid $PID, ${start_ms} ms)"
        w=$(cat "/tmp/sbworld.of.$PID")
        cgroups=$(cat "$w/cgroups")
        check "PID 1's console log reaches \$W/systemd.log" grep -q 'running in system mode' "$w/systemd.log"

        test_activation
        test_scope
        test_journal
        test_exec
        test_state_dirs
        test_units
        # Left running on purpose: stop must end it with the world.
        in_world sleep 1000 </dev/null >/dev/null 2>&1 &
        sleeper=$!

        t0=$(now_msec)
        if "$SB" stop "$PID"; then ok "sandbox stop ($(( $(now_msec) - t0 )) ms)"; else not_ok "sandbox stop"; fi
        stop_ms=$(( $(now_msec) - t0 ))
        check "the world's PID 1 is gone" test ! -e "/proc/$PID"
        wait "$sleeper" 2>/dev/null || true
        check "a command left running by exec ended with the world" test ! -e "/proc/$sleeper"
        left=""
        while read -r cg; do
                [[ -e $cg ]] && left+=" $cg"
        done <<<"$cgroups"
        check "the sub-cgroups are gone${left:+ (left:$left)}" test -z "$left"
        check "W and its record are gone" test ! -e "$w" -a ! -e "/tmp/sbworld.of.$PID"
        check "a second stop is harmless" "$SB" stop "$PID"
        PID=""
        check "the host's /tmp was not emptied" test -e "$CANARY"
        check "host PID 1's cgroups, sysctls, hostname and /dev are unchanged" \
                test "$(host_facts)" = "$facts_before"
        echo "# start ${start_ms} ms, stop ${stop_ms} ms"
        exit "$FAILED"
}

main "$@"
