# SPDX-License-Identifier: LGPL-2.1-or-later
# jobctl run / follow / output / progress / status against real local jobs.
. "$JOBD_TESTS/lib.sh"

out=$($JOBCTL run -f -- sh -c 'echo to-stderr >&2; echo to-stdout' 2>/tmp/run.err); rc=$?
expect_eq "run -f exits with the job's status" "$rc" "0"
expect_eq "run -f prints the result on stdout" "$out" "to-stdout"
expect_match "run -f streams the log on stderr" "$(cat /tmp/run.err)" 'to-stderr'

$JOBCTL run --wait -- sh -c 'exit 7' 2>/dev/null; rc=$?
expect_eq "run --wait propagates a non-zero exit status" "$rc" "7"

err=$($JOBCTL run -f --timeout=1s -- sleep 30 2>&1); rc=$?
expect_eq "a job past --timeout makes run -f exit 1" "$rc" "1"
expect_match "and says it timed out" "$err" 'timed out'

out=$($JOBCTL run -f --memory-max=32M --tasks-max=8 --nice=5 --cpu-quota=30% -- \
        sh -c 'p=$(grep :memory: /proc/self/cgroup | cut -d: -f3); cat /sys/fs/cgroup/memory$p/memory.limit_in_bytes; cut -d" " -f19 /proc/self/stat')
expect_eq "run --memory-max and --nice reach the job" "$(echo $out)" "33554432 5"

out=$(cd /etc && $JOBCTL run -f --setenv=GREETING=hi -- sh -c 'echo "$GREETING $(pwd)"')
expect_eq "run passes --setenv and the current directory" "$out" "hi /etc"

out=$(setpriv --reuid=2002 --regid=2002 --init-groups $JOBCTL run -f -- id -un)
expect_eq "run as a user runs as that user" "$out" "jobdtest2"

id=$($JOBCTL run -- sh -c 'mkdir -p "$JOBD_WORKSPACE/outputs"; printf "abc\0def" > "$JOBD_WORKSPACE/outputs/bin.dat"; '"$JOBCTL"' progress 50 halfway')
expect_match "run without -f prints the id" "$id" '^[0-9]+$'
out=$($JOBCTL follow "$id")
expect_match "follow renders progress" "$out" '50%.*halfway|progress 50'
expect_match "follow renders the end" "$out" 'succeeded'
# nobody follows this one until it ended: its progress report must be in its history anyway
late=$($JOBCTL run -- sh -c "$JOBCTL progress 30 early")
for _ in $(seq 500); do
        $JOBCTL status "$late" | grep -q "Status: succeeded" && break
        sleep 0.02
done
expect_match "a progress report is kept for followers who come after the end" "$($JOBCTL follow "$late")" "progress 30% early"
$JOBCTL output "$id" bin.dat --output=/tmp/bin.dat
expect_eq "output copies an output file byte for byte" "$(od -An -c /tmp/bin.dat | tr -s ' ')" " a b c \0 d e f"
out=$($JOBCTL --json follow "$id" | python3 -c 'import json,sys; print([json.loads(l)["event"] for l in sys.stdin][-1])')
expect_eq "follow --json prints the raw events" "$out" "end"

out=$($JOBCTL status "$id")
expect_match "status shows the unit" "$out" "jobd-$id.scope"
expect_match "status shows CPU used" "$out" 'CPU: '
expect_match "status shows the outputs" "$out" 'bin.dat'

err=$(env -u JOBD_TOKEN $JOBCTL progress 10 2>&1); rc=$?
expect_eq "progress outside a job is a usage error" "$rc" "2"

finish
