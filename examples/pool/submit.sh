#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Submits files to the pool of hash.type (beside this file; install it first) and waits for
# each job: the pool runs two at a time, whatever the number submitted.
#
# Relies on durability: each id is printed once its job is on disk, so the jobs are done even
# if this script is killed after that; and on scopes and limits (see hash.type).
#
#   submit.sh FILE...        prints "FILE job ID" per file, each job's log as it ends, and
#                            "FILE SHA256" per file; exits 1 if any job failed
#
# The input travels as a file descriptor, which busctl and gdbus cannot send; from Python:
#   m.Submit("hash", "", {"input": dbus.types.UnixFd(open(FILE, "rb"))})
set -eu

[ $# -gt 0 ] || { echo "usage: submit.sh FILE..." >&2; exit 2; }
jobctl types --names | grep -qx hash ||
        { echo "jobd has no type hash: install hash.type into /etc/jobd/types.d and run jobctl reload" >&2; exit 1; }

ids=
for f in "$@"; do
        # jobd copies the file into its spool before it answers: FILE may go away after this
        id=$(jobctl submit hash --input="$f")
        echo "$f job $id"
        ids="$ids $id"
done

failed=0
set -- "$@"
for id in $ids; do
        # the job's log and its end, as they come; exits 0 once the job ended
        jobctl follow "$id"
        # Result is JSON: the text the job printed, as a JSON string
        result=$(jobctl status "$id" | sed -n 's/^ *Result: "\(.*\)"$/\1/p')
        if [ -n "$result" ]; then
                printf '%s %s\n' "$1" "$result"
        else
                failed=1
                jobctl status "$id" >&2
        fi
        shift
done
exit $failed
