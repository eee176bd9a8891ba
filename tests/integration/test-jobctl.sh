# SPDX-License-Identifier: LGPL-2.1-or-later
# jobctl against the real service: every verb of issue 3, --json, errors and exit codes.
. "$JOBD_TESTS/lib.sh"

# no Exec=: worked by external workers, so its jobs stay pending for this test
write_type echo '[Type]\nDescription=Echo the parameters\nTimeout=5min\n'

id1=$($JOBCTL submit echo '{"a": 1}')
expect_match "submit prints the new id" "$id1" '^[0-9]+$'
id2=$(echo '{"from": "stdin"}' | $JOBCTL submit echo - --priority=7)
expect_eq "submit reads JSON from stdin and takes options" "$id2" "$((id1 + 1))"
out=$($JOBCTL --json submit exec '{"argv": ["true"]}')
expect_match "submit --json prints id and path" "$out" '^\{"id":[0-9]+,"job":"/org/jobd/Jobd1/job/[0-9]+"\}$'

out=$($JOBCTL list)
expect_match "list shows a header" "$out" '^ *ID +TYPE +STATUS +OWNER'
expect_match "list shows the jobs" "$out" "$id2 +echo +pending +root"
expect_match "list shows a footer" "$out" '3 jobs listed\.'
out=$($JOBCTL list --type=exec --no-legend)
expect_eq "list --type filters, --no-legend drops header and footer" "$(echo "$out" | wc -l)" "1"
out=$($JOBCTL list --limit=1 --after="$id1" --no-legend)
expect_match "list pages with --limit and --after" "$out" "^ *$id2 +echo"

out=$($JOBCTL --json list)
n=$(printf '%s' "$out" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
expect_eq "list --json is a JSON array of every job" "$n" "3"

out=$($JOBCTL status "$id2")
expect_match "status shows the status" "$out" 'Status: pending'
expect_match "status shows the priority" "$out" 'Priority: 7'
expect_match "status shows the parameters to the owner" "$out" 'Parameters: \{"from": "stdin"\}'
out=$($JOBCTL --json status "$id2")
v=$(printf '%s' "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["Id"], d["Status"], d["Priority"], d["Owner"])')
expect_eq "status --json has the properties with native types" "$v" "$id2 pending 7 0"

out=$($JOBCTL types)
expect_match "types lists a configured type" "$out" 'echo +external .*Echo the parameters'
expect_match "types lists the built-in exec type" "$out" 'exec +builtin'
out=$($JOBCTL --json types)
v=$(printf '%s' "$out" | python3 -c 'import json,sys; print(sorted(t["name"] for t in json.load(sys.stdin)))')
expect_eq "types --json" "$v" "['echo', 'exec']"

out=$($JOBCTL stats echo)
expect_match "stats counts pending jobs" "$out" 'pending: +2'
v=$($JOBCTL --json stats echo | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["total"], d["pending"])')
expect_eq "stats --json for one type" "$v" "2 2"

check "cancel a pending job" $JOBCTL cancel "$id1"
expect_match "the cancelled job shows as cancelled" "$($JOBCTL status "$id1")" 'Status: cancelled'
err=$($JOBCTL cancel "$id1" 2>&1); rc=$?
expect_eq "cancel of a finished job exits 1" "$rc" "1"
expect_match "and prints the service's message" "$err" 'is cancelled already'

err=$($JOBCTL submit nope 2>&1); rc=$?
expect_eq "submit of an unknown type exits 1" "$rc" "1"
expect_match "and says why" "$err" "Unknown job type 'nope'"
err=$($JOBCTL submit echo '{bad' 2>&1); rc=$?
expect_eq "submit of bad JSON exits non-zero" "$([ $rc -ne 0 ] && echo yes)" "yes"
err=$($JOBCTL status 999999 2>&1); rc=$?
expect_eq "status of an unknown job exits 1" "$rc" "1"
expect_match "and says it does not exist" "$err" 'does not exist'
err=$($JOBCTL frobnicate 2>&1); rc=$?
expect_eq "an unknown verb is a usage error (exit 2)" "$rc" "2"

# another user: sees the job but not its parameters, cannot cancel it
out=$(setpriv --reuid=2002 --regid=2002 --clear-groups $JOBCTL status "$id2")
expect_match "another user sees the status" "$out" 'Status: pending'
if printf '%s' "$out" | grep -q 'stdin'; then fail "another user does not see the parameters"; else ok "another user does not see the parameters"; fi
err=$(setpriv --reuid=2002 --regid=2002 --clear-groups $JOBCTL cancel "$id2" 2>&1); rc=$?
expect_eq "another user's cancel exits 1" "$rc" "1"
expect_match "with the reason" "$err" 'only its owner, root or an administrator'
id3=$(setpriv --reuid=2002 --regid=2002 --clear-groups $JOBCTL submit echo '{}')
expect_match "an unprivileged user submits with jobctl" "$id3" '^[0-9]+$'
expect_match "and owns the job" "$($JOBCTL status "$id3")" 'Owner: jobdtest2 \(2002\)'

check "reload as root" $JOBCTL reload

# pause and resume: a paused type hands out nothing, its queue kept
check "pause a type" $JOBCTL pause echo
expect_match "types shows it paused" "$($JOBCTL types)" 'echo +external +paused'
claim() { busctl call org.jobd.Jobd1 /org/jobd/Jobd1 org.jobd.Jobd1.Manager Claim 'asta{sv}' 1 echo 0 0; }
expect_match "a paused type hands out nothing" "$(claim)" '^tsssa\{sv\} 0 '
err=$(setpriv --reuid=2002 --regid=2002 --clear-groups $JOBCTL resume echo 2>&1); rc=$?
expect_eq "resume as another user exits 1" "$rc" "1"
expect_match "and says why" "$err" 'Failed to resume type echo'
check "resume it" $JOBCTL resume echo
expect_match "types shows it active again" "$($JOBCTL types)" 'echo +external +active'
expect_match "the queue is intact: the best job is handed out" "$(claim)" "^tsssa\\{sv\\} $id2 "
err=$($JOBCTL pause nope 2>&1); rc=$?
expect_eq "pause of an unknown type exits 1" "$rc" "1"

# retry: a failed job runs again from attempt 1
id4=$($JOBCTL submit exec '{"argv": ["false"]}')
$JOBCTL follow "$id4" >/dev/null 2>&1          # to its end
expect_match "a job of false fails" "$($JOBCTL status "$id4")" 'Status: failed'
check "retry it" $JOBCTL retry "$id4"
$JOBCTL follow "$id4" >/tmp/retry-follow.out 2>&1
expect_match "Follow of the retried job goes to its new end" "$(cat /tmp/retry-follow.out)" 'failed'
out=$($JOBCTL --json status "$id4" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["Status"], d["Attempt"])')
expect_eq "it ran again, from attempt 1" "$out" "failed 1"
err=$($JOBCTL retry "$id2" 2>&1); rc=$?
expect_eq "retry of an unfinished job exits 1" "$rc" "1"

finish
