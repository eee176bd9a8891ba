#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# A worker that takes a file and returns a file, end to end: submits FILE as the input of an
# upper job, works it with `jobctl worker` and handler.sh (beside this file), and fetches the
# output file. Install upper.type first. In real use the worker runs on its own, as a service:
#   ExecStart=/usr/bin/jobctl worker --concurrency=4 upper -- /usr/local/lib/upper/handler.sh
#
# Relies on leases and tokens and on durability (see upper.type).
#
#   run.sh FILE OUTPUT       prints "job ID" and the job's result; writes its output to OUTPUT
set -eu

[ $# -eq 2 ] || { echo "usage: run.sh FILE OUTPUT" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
jobctl types --names | grep -qx upper ||
        { echo "jobd has no type upper: install upper.type into /etc/jobd/types.d and run jobctl reload" >&2; exit 1; }

# the input is in jobd's spool when this returns
id=$(jobctl submit upper '{}' --input="$1")
echo "job $id"

# one worker slot that exits after one job; it claims the next pending job of type upper,
# which is ours unless others are queued too
jobctl worker --max-jobs=1 upper -- "$here/handler.sh"

jobctl follow "$id" >/dev/null || true
jobctl status "$id" | sed -n 's/^ *\(Status\|Result\): /\1: /p'
jobctl output "$id" upper.txt --output="$2"
