# SPDX-License-Identifier: LGPL-2.1-or-later
# busctl and gdbus are first-class clients: the README's examples, run for real.
. "$JOBD_TESTS/lib.sh"

write_type echo '[Type]\nDescription=Echo\n'
write_type hold '[Type]\nDescription=Held\n'

out=$(busctl call org.jobd.Jobd1 /org/jobd/Jobd1 org.jobd.Jobd1.Manager Submit 'ssa{sv}' \
        hold '{"argv": ["make", "-j8"]}' 1 priority i 10)
expect_match "busctl Submit returns an id and a path" "$out" '^to [0-9]+ "/org/jobd/Jobd1/job/[0-9]+"$'
id=$(echo "$out" | cut -d' ' -f2)

out=$(busctl get-property org.jobd.Jobd1 /org/jobd/Jobd1/job/$id org.jobd.Jobd1.Job Status Priority)
expect_eq "busctl get-property reads Status and Priority" "$out" $'s "pending"\ni 10'

out=$(busctl introspect org.jobd.Jobd1 /org/jobd/Jobd1/job/$id org.jobd.Jobd1.Job)
expect_match "busctl introspect shows the job interface" "$out" '\.Cancel +method'

out=$(gdbus call --system --dest org.jobd.Jobd1 --object-path /org/jobd/Jobd1 \
        --method org.jobd.Jobd1.Manager.Submit echo '{"x": 1}' "{'priority': <int32 -3>}")
expect_match "gdbus Submit returns an id and a path" "$out" "^\(uint64 [0-9]+, objectpath '/org/jobd/Jobd1/job/[0-9]+'\)$"
gid=$(echo "$out" | sed -E 's/^\(uint64 ([0-9]+),.*/\1/')

out=$(gdbus call --system --dest org.jobd.Jobd1 --object-path /org/jobd/Jobd1 \
        --method org.jobd.Jobd1.Manager.List "{'type': <['echo']>}")
expect_match "gdbus List filters by type" "$out" "^\(\[\(uint64 $gid, 'echo', 'pending', 'root', objectpath '/org/jobd/Jobd1/job/$gid'\)\],\)$"

out=$(gdbus call --system --dest org.jobd.Jobd1 --object-path /org/jobd/Jobd1/job/$gid \
        --method org.freedesktop.DBus.Properties.Get org.jobd.Jobd1.Job Parameters)
expect_eq "gdbus reads Parameters as the owner" "$out" "(<'{\"x\": 1}'>,)"

check "gdbus Cancel" gdbus call --system --dest org.jobd.Jobd1 --object-path /org/jobd/Jobd1/job/$gid \
        --method org.jobd.Jobd1.Job.Cancel
out=$(busctl get-property org.jobd.Jobd1 /org/jobd/Jobd1/job/$gid org.jobd.Jobd1.Job Status)
expect_eq "the job is cancelled" "$out" 's "cancelled"'

out=$(busctl call org.jobd.Jobd1 /org/jobd/Jobd1 org.jobd.Jobd1.Manager Submit 'ssa{sv}' nope '{}' 0 2>&1)
expect_match "busctl shows the named error's message" "$out" 'Unknown job type .nope.'

out=$(busctl call org.jobd.Jobd1 /org/jobd/Jobd1 org.jobd.Jobd1.Manager GetStats s "" )
expect_match "busctl GetStats" "$out" '"cancelled" u 1'

out=$(busctl call org.jobd.Jobd1 /org/jobd/Jobd1 org.jobd.Jobd1.Manager ListTypes)
expect_match "busctl ListTypes" "$out" '"echo" "Echo"'

out=$(busctl tree org.jobd.Jobd1 --list)
expect_match "busctl tree lists jobs" "$out" "/org/jobd/Jobd1/job/$id"

finish
