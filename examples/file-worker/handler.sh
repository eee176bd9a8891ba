#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The handler `jobctl worker upper -- handler.sh` runs for each job: the job's input on fd 3,
# its parameters on stdin, JOBD_JOB_ID, JOBD_TOKEN and a fresh JOBD_WORKSPACE in the
# environment. Files left in $JOBD_WORKSPACE/outputs/ become the job's outputs, stdout its
# result (JSON), stderr its log; exit 0 completes the job, anything else fails the attempt.
#
# Relies on leases and tokens (see upper.type): jobctl worker heartbeats while this runs and
# sends its outputs with the attempt's token.
set -eu

if ! [ -e /proc/self/fd/3 ]; then
        echo "job $JOBD_JOB_ID has no input: submit it with --input=FILE" >&2
        exit 2
fi

jobctl progress 10 "converting"
mkdir -p "$JOBD_WORKSPACE/outputs"
out=$JOBD_WORKSPACE/outputs/upper.txt
tr '[:lower:]' '[:upper:]' <&3 >"$out"
lines=$(wc -l <"$out")
echo "converted $lines lines" >&2
jobctl progress 100 "done"

printf '{"lines": %d, "output": "upper.txt"}\n' "$lines"
