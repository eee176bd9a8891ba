# SPDX-License-Identifier: LGPL-2.1-or-later
# TAP helpers for shell integration tests (sourced). Run inside the sandbox.

# These tests add users, units and files to /etc and start systemd managers: only in a world of
# tests/sandbox/sandbox (its PID 1 runs with container=jobd-sandbox), never on a real machine.
if ! tr '\0' '\n' </proc/1/environ 2>/dev/null | grep -qx 'container=jobd-sandbox'; then
        echo "Bail out! not inside a tests/sandbox world; run it through tests/integration/run"
        exit 1
fi
n=0
failed=0
ok()   { n=$((n + 1)); echo "ok $n - $*"; }
fail() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $*"; }
# check NAME COMMAND…: passes when the command succeeds
check() { local name=$1; shift; if "$@" >/tmp/check.out 2>&1; then ok "$name"; else fail "$name"; sed 's/^/# /' /tmp/check.out | tail -n 20; fi; }
# expect_eq NAME GOT WANT
expect_eq() { if [ "$2" = "$3" ]; then ok "$1"; else fail "$1"; echo "# got:  $2"; echo "# want: $3"; fi; }
# expect_match NAME TEXT REGEX
expect_match() { if printf '%s' "$2" | grep -qE -- "$3"; then ok "$1"; else fail "$1"; printf '%s\n' "$2" | head -n 20 | sed 's/^/# /'; echo "# wanted /$3/"; fi; }
finish() { echo "1..$n"; [ "$failed" -eq 0 ]; exit; }
JOBCTL=${JOBD_PREFIX:-/usr}/bin/jobctl
write_type() { mkdir -p /etc/jobd/types.d; printf '%b' "$2" >"/etc/jobd/types.d/$1.type"; }
