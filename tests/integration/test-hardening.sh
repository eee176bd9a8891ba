#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# jobd.service as installed: `systemd-analyze security` (the world's PID 1 evaluates the loaded
# unit) scores it at most 5.0, the README records the same score, and the settings that matter
# are in force for the running jobd. test-credentials.py checks what jobs inherit from it.
. "$JOBD_TESTS/lib.sh"

busctl call org.jobd.Jobd1 /org/jobd/Jobd1 org.freedesktop.DBus.Peer Ping >/dev/null   # activate jobd
out=$(systemd-analyze security --no-pager jobd.service 2>&1)
score=$(printf '%s\n' "$out" | sed -nE 's/.*Overall exposure level for jobd\.service: ([0-9]+\.[0-9]+).*/\1/p')
expect_match "systemd-analyze security scores jobd.service" "$score" '^[0-9]+\.[0-9]+$'
echo "# exposure level: $score"
if awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 5.0) }'; then
        ok "the exposure level $score is at most 5.0"
else
        fail "the exposure level ${score:-?} is at most 5.0"
        printf '%s\n' "$out" | grep '✗' | sed 's/^/# /' | head -n 40
fi
readme=$JOBD_PREFIX/share/doc/jobd/README.md
expect_match "the README records that score" "$(grep -o 'exposure level [0-9.]*' "$readme" | head -n 1)" \
        "exposure level ${score:-none}\$"

pid=$(systemctl show -P MainPID jobd.service)
status=$(cat "/proc/$pid/status")
expect_match "jobd runs with a seccomp filter" "$status" $'Seccomp:\t2'
expect_match "jobd's capability bounding set is a handful" "$status" $'CapBnd:\t0000000001a000cb|CapBnd:\t0000000000a000cb'
expect_match "jobd cannot see other users' processes (ProtectProc=invisible)" \
        "$(awk '$5 == "/proc"' "/proc/$pid/mountinfo" | tail -n 1)" 'hidepid=invisible'
expect_match "jobd's /proc/sys is read-only (ProtectKernelTunables=)" \
        "$(awk '$5 == "/proc/sys" { print $6 }' "/proc/$pid/mountinfo" | tail -n 1)" '^ro'
finish
