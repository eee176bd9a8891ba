# SPDX-License-Identifier: LGPL-2.1-or-later
# Shared by tests/bench/run and tests/bench/run-local (sourced).

# Busy share of all CPUs, in percent, over $1 seconds.
cpu_busy_pct() {
        local a b
        a=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat)
        sleep "$1"
        b=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat)
        awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " ");
                busy = y[1] - x[1]; all = busy + y[2] - x[2]; printf "%.0f", (all > 0 ? 100 * busy / all : 0) }'
}

# wait_quiet LABEL: the machine may be shared (other test runs). Before a cell, wait up to
# WAIT_QUIET_TRIES × 0.5 s (default 20: 10 s; 0: not at all) for the CPUs to be quiet (< 10% busy
# while nothing of ours runs), else measure anyway and name the cell in NOISY for the report.
NOISY=()
wait_quiet() {
        local busy=0 tries=${WAIT_QUIET_TRIES:-20}
        for _ in $(seq "$tries"); do
                busy=$(cpu_busy_pct 0.5)
                ((busy < 10)) && return 0
        done
        ((tries == 0)) || NOISY+=("$1 (${busy}% busy before)")
}
