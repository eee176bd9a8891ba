# SPDX-License-Identifier: LGPL-2.1-or-later
# TAP helpers for shell integration tests (sourced). Run inside the sandbox.
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
