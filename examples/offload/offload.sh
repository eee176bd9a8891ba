#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Offload a CPU-heavy task and fetch its result, with busctl and gdbus only.
#
# Replaces: the HTTP endpoint that takes "POST /tasks", forks a child to do the work, answers
# "202 Accepted, task 7" and later serves "GET /tasks/7". Here the web application would run
# the two busctl calls below; the task runs in its own scope, limited, logged and accounted,
# and survives a restart of the web application.
#
# Relies on:
#  - durability: Submit answers only once the job is on disk, so a 202 sent after it never
#    names a task that a crash of jobd (or of anything else) can lose;
#  - unique keys: a client that retries its POST with the same request id gets the same job
#    back while it is unfinished, not a second one (option unique_key);
#  - scopes and limits: the task gets half a CPU and a timeout, whatever it is asked to do.
#
#   offload.sh [REQUEST_ID [LIMIT]]    counts the primes up to LIMIT (default 1000000);
#                                      prints "job ID", then "result COUNT"; exits 1 if it failed
set -eu

request=${1:-request-$$}
limit=${2:-1000000}
case $limit in *[!0-9]*|'') echo "LIMIT must be a number" >&2; exit 2 ;; esac

# Watch the manager's signals before submitting: the job may end before we have read the
# answer to Submit, and a JobChanged sent before we listened would be missed.
fifo=$(mktemp -u "${TMPDIR:-/tmp}/offload.XXXXXX")
mkfifo -m 0600 "$fifo"
gdbus monitor --system --dest org.jobd.Jobd1 --object-path /org/jobd/Jobd1 >"$fifo" &
monitor=$!
trap 'kill $monitor 2>/dev/null; rm -f "$fifo"' EXIT
exec 3<"$fifo"
# "The name org.jobd.Jobd1 is owned by …" (or "does not have an owner"): gdbus asked for its
# match before it asked who owns the name, so its match is in place now
while read -r line <&3; do
        case $line in "The name "*) break ;; esac
done

# The task: the built-in type exec runs a command as the caller. Its standard output becomes
# the job's Result (here a number, which is JSON).
params='{"argv": ["/bin/sh", "-c", "printf %s $(seq 2 $0 | factor | awk NF==2 | wc -l)", "'$limit'"]}'

# Submit(s type, s parameters, a{sv} options) → (t id, o path)
reply=$(busctl call org.jobd.Jobd1 /org/jobd/Jobd1 org.jobd.Jobd1.Manager Submit 'ssa{sv}' \
        exec "$params" 3 \
        unique_key s "$request" \
        timeout_usec t 600000000 \
        resources a{sv} 1 cpu_quota_percent u 50)
# reply: to 7 "/org/jobd/Jobd1/job/7"
set -- $reply
id=$2
path=$(echo "$3" | tr -d '"')
echo "job $id"

# JobChanged(t id, o job, s status), once per change after it is durable; gdbus shows it as
#   /org/jobd/Jobd1: org.jobd.Jobd1.Manager.JobChanged (uint64 7, objectpath '/org/jobd/…', 'succeeded')
status=
while [ -z "$status" ] && read -r line <&3; do
        case $line in
        *".JobChanged (uint64 $id, "*"'succeeded')") status=succeeded ;;
        *".JobChanged (uint64 $id, "*"'failed')")    status=failed ;;
        *".JobChanged (uint64 $id, "*"'cancelled')") status=cancelled ;;
        esac
done

if [ "$status" != succeeded ]; then
        # Error says why, for people
        busctl get-property org.jobd.Jobd1 "$path" org.jobd.Jobd1.Job Error >&2
        exit 1
fi

# Result is JSON text; busctl prints a string property as: s "78498"
result=$(busctl get-property org.jobd.Jobd1 "$path" org.jobd.Jobd1.Job Result)
result=${result#s \"}
echo "result ${result%\"}"
