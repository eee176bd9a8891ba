# SPDX-License-Identifier: LGPL-2.1-or-later
# The bash completion of jobctl, installed, against the running jobd: it offers the types jobd
# has now (also one added a moment ago) and the ids of its jobs, besides commands and options.
. "$JOBD_TESTS/lib.sh"

COMPLETION=$JOBD_PREFIX/share/bash-completion/completions/jobctl

# complete WORD…: what the completion offers for the last word of the command line WORD…, one a line
complete_line() {
        bash -c '. "$1" && shift && COMP_WORDS=("$@") && COMP_CWORD=$(($# - 1)) && _jobctl &&
                 printf "%s\n" "${COMPREPLY[@]}"' _ "$COMPLETION" "$@"
}

check "the completion is installed under share/bash-completion/completions" test -r "$COMPLETION"
check "it loads into bash and registers itself for jobctl" \
        bash -c '. "$1" && complete -p jobctl | grep -q -- "-F _jobctl"' _ "$COMPLETION"

write_type resize '[Type]\nDescription=Resize an image\n'
write_type thumbnail '[Type]\nExec=/bin/true\n'
$JOBCTL reload

out=$(complete_line jobctl submit "")
expect_match "submit TYPE offers the types of the running jobd" "$out" '^resize$'
expect_match "local types too" "$out" '^thumbnail$'
expect_match "and the built-in exec" "$out" '^exec$'
expect_eq "a prefix picks one" "$(complete_line jobctl submit res)" "resize"
expect_eq "with options before the command" "$(complete_line jobctl --no-legend submit --priority 5 thu)" "thumbnail"

write_type added-later '[Type]\n'
$JOBCTL reload
expect_eq "a type added since is offered at once (asked of jobd, not cached)" \
        "$(complete_line jobctl submit add)" "added-later"
expect_match "worker TYPE… offers types" "$(complete_line jobctl worker resize "")" '^thumbnail$'
expect_match "list --type= offers types (the word split at '=', as bash does)" \
        "$(complete_line jobctl list --type = "")" '^resize$'
expect_eq "list --type=a,… completes the last item of the list" \
        "$(complete_line jobctl list --type = "resize,thu")" "resize,thumbnail"

id=$($JOBCTL submit resize)
done_id=$($JOBCTL submit resize)
$JOBCTL cancel "$done_id"
expect_match "status ID offers job ids" "$(complete_line jobctl status "")" "^$done_id\$"
out=$(complete_line jobctl cancel "")
expect_match "cancel ID offers unfinished jobs" "$out" "^$id\$"
if printf '%s\n' "$out" | grep -qx "$done_id"; then
        fail "cancel ID does not offer finished jobs"
else
        ok "cancel ID does not offer finished jobs"
fi

out=$(complete_line jobctl "")
expect_match "the commands" "$out" '^submit$'
expect_match "all of them" "$out" '^worker$'
expect_eq "a command's options" "$(complete_line jobctl submit --pri)" "--priority="
expect_match "the global options with them" "$(complete_line jobctl types --)" '^--no-legend$'
expect_match "types --names" "$(complete_line jobctl types --)" '^--names$'
expect_eq "--status= values" "$(complete_line jobctl list --status = can)" "cancelled"
expect_match "the command of run -- …" "$(complete_line jobctl run -- bas)" '^bash$'

finish
