# SPDX-License-Identifier: LGPL-2.1-or-later
# Remote workers (DESIGN.md §5, issue 5 item 6): jobctl -H and busctl -H reach jobd through
# sd-bus's SSH transport (ssh -xT -p PORT -- root@127.0.0.1 systemd-stdio-bridge), against a
# real sshd listening on 127.0.0.1 inside the sandbox world.
#
# Everything set up here lives in the world only: sshd runs as the transient unit test-sshd,
# its config and host keys sit in /run/sbx-ssh (the world's own tmpfs), root's key, the
# authorized_keys and the client config on a 0700 tmpfs mounted over /root/.ssh in the
# world's mount namespace. The trap stops sshd, the worker and the mount, also on failure.
. "$JOBD_TESTS/lib.sh"

SSHD_UNIT=test-sshd
SSHDIR=/run/sbx-ssh
SSHD_BIN=/usr/sbin/sshd
PORT=
HOME_MOUNT=
WORKER_PID=

now_ms() { local t=$EPOCHREALTIME; echo $(( ${t/./} / 1000 )); }
T0=$(now_ms)
took() { echo "# timing: $1: $(( $(now_ms) - $2 )) ms"; }

cleanup() {
        [ -n "$WORKER_PID" ] && kill "$WORKER_PID" 2>/dev/null && wait "$WORKER_PID" 2>/dev/null
        WORKER_PID=
        if systemctl is-active -q "$SSHD_UNIT" 2>/dev/null || systemctl is-failed -q "$SSHD_UNIT" 2>/dev/null; then
                systemctl stop "$SSHD_UNIT" 2>/dev/null
                systemctl reset-failed "$SSHD_UNIT" 2>/dev/null
        fi
        if [ -n "$HOME_MOUNT" ]; then
                umount "$HOME_MOUNT" 2>/dev/null || umount -l "$HOME_MOUNT" 2>/dev/null
                HOME_MOUNT=
        fi
        rm -rf "$SSHDIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! [ -x "$SSHD_BIN" ] || ! command -v ssh >/dev/null || ! command -v ssh-keygen >/dev/null; then
        echo "# openssh-server/openssh-client missing: run tests/install-deps"
        fail "sshd and ssh are installed"
        finish
fi
if ! command -v systemd-stdio-bridge >/dev/null; then
        fail "systemd-stdio-bridge is on PATH (sd-bus's remote transport runs it on the far side)"
        finish
fi

# --- keys and client configuration ------------------------------------------------------------
mkdir -p "$SSHDIR" && chmod 0700 "$SSHDIR"
ssh-keygen -q -t ed25519 -N '' -C sbx-host -f "$SSHDIR/ssh_host_ed25519_key" </dev/null

# root's ~/.ssh: a 0700 tmpfs mounted in the world's mount namespace. /root itself belongs to
# the host (the world only overlays /etc and /var); when /root/.ssh does not exist there we do
# not create it on the host but put the tmpfs over /root instead, hiding it from the world.
if [ -d /root/.ssh ]; then
        HOME_MOUNT=/root/.ssh
else
        HOME_MOUNT=/root
fi
if ! mount -t tmpfs -o mode=0700,uid=0,gid=0,size=1m sbx-ssh "$HOME_MOUNT"; then
        HOME_MOUNT=
        fail "a tmpfs over /root/.ssh in the world"
        finish
fi
mkdir -p -m 0700 /root/.ssh
ssh-keygen -q -t ed25519 -N '' -C sbx-root -f /root/.ssh/id_ed25519 </dev/null
cp /root/.ssh/id_ed25519.pub /root/.ssh/authorized_keys
chmod 0600 /root/.ssh/authorized_keys

# --- sshd on a free port of 127.0.0.1 ------------------------------------------------------------
port_free() { [ -z "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]; }
port_listening() { ss -Hltn "src 127.0.0.1 and sport = :$1" 2>/dev/null | grep -q LISTEN; }

start_sshd() {
        local p=$1
        cat >"$SSHDIR/sshd_config" <<EOF
Port $p
ListenAddress 127.0.0.1
HostKey $SSHDIR/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PidFile none
X11Forwarding no
AllowTcpForwarding no
PrintMotd no
UseDNS no
EOF
        systemd-run -q --unit="$SSHD_UNIT" -p RuntimeDirectory=sshd -p RuntimeDirectoryMode=0755 \
                "$SSHD_BIN" -D -e -f "$SSHDIR/sshd_config" || return 1
        local i
        for i in $(seq 1 250); do
                port_listening "$p" && return 0
                systemctl is-active -q "$SSHD_UNIT" || break
                sleep 0.02
        done
        journalctl -q --no-pager -u "$SSHD_UNIT" | tail -n 5 | sed 's/^/# sshd: /'
        systemctl stop "$SSHD_UNIT" 2>/dev/null
        systemctl reset-failed "$SSHD_UNIT" 2>/dev/null
        return 1
}

t=$(now_ms)
base=$(( 20000 + RANDOM % 30000 ))
for try in $(seq 0 39); do
        p=$(( base + try * 97 ))
        port_free "$p" || continue
        # another process may take the port between the check and the bind: then try the next one
        if start_sshd "$p"; then PORT=$p; break; fi
done
if [ -z "$PORT" ]; then
        fail "sshd listens on a free port of 127.0.0.1"
        finish
fi
ok "sshd listens on 127.0.0.1:$PORT as $SSHD_UNIT"
took "sshd start" "$t"

cat >/root/.ssh/config <<EOF
Host 127.0.0.1
        Port $PORT
        User root
        IdentityFile /root/.ssh/id_ed25519
        IdentitiesOnly yes
        StrictHostKeyChecking no
        UserKnownHostsFile /dev/null
        GlobalKnownHostsFile /dev/null
        BatchMode yes
        ConnectTimeout 10
        LogLevel ERROR
EOF
chmod 0600 /root/.ssh/config

H=root@127.0.0.1:$PORT
export SYSTEMD_LOG_LEVEL=${SYSTEMD_LOG_LEVEL:-warning}

t=$(now_ms)
out=$(ssh -T root@127.0.0.1 'echo remote-uid=$(id -u)' 2>&1 </dev/null)
expect_eq "plain ssh to root@127.0.0.1 logs in with the key" "$out" "remote-uid=0"
took "ssh round trip" "$t"

# --- busctl -H -------------------------------------------------------------------------------------
t=$(now_ms)
out=$(busctl -H "$H" list --no-pager 2>&1)
expect_match "busctl -H lists the names on the remote system bus" "$out" 'org\.jobd\.Jobd1'
took "busctl -H list" "$t"

write_type remote '[Type]\nDescription=Worked by remote workers\nTimeout=2min\n'
$JOBCTL reload >/dev/null 2>&1

out=$(busctl -H "$H" call org.jobd.Jobd1 /org/jobd/Jobd1 org.jobd.Jobd1.Manager ListTypes 2>&1)
expect_match "busctl -H calls jobd (ListTypes shows the remote type)" "$out" '"remote"'

# --- jobctl -H: list, submit ------------------------------------------------------------------------
t=$(now_ms)
out=$($JOBCTL -H "$H" list 2>&1); rc=$?
expect_eq "jobctl -H list exits 0" "$rc" "0"
expect_match "jobctl -H list prints the table" "$out" '(^ *ID +TYPE +STATUS|0 jobs listed|No jobs)'
took "jobctl -H list" "$t"

t=$(now_ms)
id1=$($JOBCTL -H "$H" submit remote '{"from": "remote", "n": 0}' 2>&1)
expect_match "jobctl -H submit prints the new id" "$id1" '^[0-9]+$'
took "jobctl -H submit" "$t"
out=$($JOBCTL status "$id1" 2>&1)
expect_match "the local jobctl status shows the remotely submitted job" "$out" 'Status: pending'
expect_match "owned by root, the ssh user" "$out" 'Owner: root \(0\)'
expect_match "with its parameters" "$out" 'Parameters: \{"from": "remote", "n": 0\}'

out=$($JOBCTL -H root@127.0.0.1 status "$id1" 2>&1)
expect_match "jobctl -H without a port uses the Port of ~/.ssh/config" "$out" 'Status: pending'

out=$($JOBCTL -H "$H" --json status "$id1" 2>&1)
v=$(printf '%s' "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["Id"], d["Type"], d["Status"])' 2>&1)
expect_eq "jobctl -H --json status" "$v" "$id1 remote pending"

# a file descriptor cannot cross the SSH transport: --input must be refused up front
if $JOBCTL submit --help 2>&1 | grep -q -- '--input'; then
        echo '{}' >"$SSHDIR/input"
        err=$($JOBCTL -H "$H" submit remote '{}' --input="$SSHDIR/input" 2>&1); rc=$?
        expect_eq "jobctl -H submit --input is refused (fds do not cross SSH)" "$([ $rc -ne 0 ] && echo refused)" "refused"
        expect_match "and says why" "$err" 'cannot carry'
        out=$($JOBCTL --json list --type=remote 2>&1)
        v=$(printf '%s' "$out" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' 2>&1)
        expect_eq "and no job was queued for it" "$v" "1"
else
        ok "jobctl -H submit --input is refused (fds do not cross SSH) # SKIP no --input in this build"
fi

# --- Claim, Heartbeat, Complete with busctl -H ---------------------------------------------------------
MGR=(org.jobd.Jobd1 /org/jobd/Jobd1 org.jobd.Jobd1.Manager)
t=$(now_ms)
out=$(busctl -H "$H" --json=short call "${MGR[@]}" Claim 'asta{sv}' 1 remote 5000000 0 2>&1)
took "busctl -H Claim" "$t"
mapfile -t claim < <(printf '%s' "$out" | python3 -c '
import json, sys
d = json.load(sys.stdin)["data"]
print(d[0], d[1], d[2], d[4]["attempt"]["data"], json.dumps(json.loads(d[3]), sort_keys=True), sep="\n")' 2>&1)
cid=${claim[0]-} token=${claim[1]-} ctype=${claim[2]-} cattempt=${claim[3]-} cparams=${claim[4]-}
[ -z "$cattempt" ] && printf '%s\n' "$out" | head -n 5 | sed 's/^/# claim: /'
expect_eq "busctl -H Claim takes the remotely submitted job" "$cid $ctype $cattempt" "$id1 remote 1"
expect_eq "and hands over its parameters" "$cparams" '{"from": "remote", "n": 0}'
expect_match "with a token" "$token" '^[0-9A-Za-z_+/=-]{16,}$'
JOB=(org.jobd.Jobd1 "/org/jobd/Jobd1/job/$id1" org.jobd.Jobd1.Job)
expect_match "the job runs locally after the remote claim" "$($JOBCTL status "$id1" 2>&1)" 'Status: running'

out=$(busctl -H "$H" call "${JOB[@]}" Heartbeat st "$token" 60000000 2>&1)
expect_match "busctl -H Heartbeat extends the lease" "$out" '^t [0-9]+$'
out=$(busctl -H "$H" call "${JOB[@]}" Progress sus "$token" 50 "halfway over ssh" 2>&1); rc=$?
expect_eq "busctl -H Progress" "$rc" "0"
expect_match "progress shows locally" "$($JOBCTL status "$id1" 2>&1)" 'halfway over ssh'

t=$(now_ms)
out=$(busctl -H "$H" call "${JOB[@]}" Complete 'ssa{sv}' "$token" '{"done": "remotely"}' 0 2>&1); rc=$?
expect_eq "busctl -H Complete" "$rc" "0"
took "busctl -H Complete" "$t"
v=$($JOBCTL --json status "$id1" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["Status"], json.dumps(json.loads(d["Result"]), sort_keys=True))' 2>&1)
expect_eq "the job ended succeeded with the remote result" "$v" 'succeeded {"done": "remotely"}'
err=$(busctl -H "$H" call "${JOB[@]}" Complete 'ssa{sv}' "$token" '{"again": 1}' 0 2>&1); rc=$?
expect_eq "a second remote Complete is refused" "$([ $rc -ne 0 ] && echo refused)" "refused"
expect_match "with jobd's error, carried back over ssh" "$err" '(StaleToken|[Ss]tale|not running|finished|succeeded)'

# --- jobctl -H worker ----------------------------------------------------------------------------------
ids=()
for i in 1 2 3; do
        ids+=("$($JOBCTL submit remote "{\"n\": $i, \"word\": \"w$i\"}")")
done
expect_match "three jobs submitted locally" "${ids[*]}" '^[0-9]+ [0-9]+ [0-9]+$'

if $JOBCTL worker --help >/dev/null 2>&1; then
        t=$(now_ms)
        timeout 90 $JOBCTL -H "$H" worker --max-jobs=3 remote -- sh -c 'cat' \
                >"$SSHDIR/worker.out" 2>&1 </dev/null &
        WORKER_PID=$!
        wait "$WORKER_PID"; rc=$?
        WORKER_PID=
        took "jobctl -H worker, 3 jobs" "$t"
        expect_eq "jobctl -H worker --max-jobs=3 exits 0 after three jobs" "$rc" "0"
        [ "$rc" -ne 0 ] && tail -n 20 "$SSHDIR/worker.out" | sed 's/^/# worker: /'
        for i in 1 2 3; do
                id=${ids[$((i - 1))]}
                v=$($JOBCTL --json status "$id" | python3 -c 'import json,sys; d=json.load(sys.stdin); r=d["Result"]; print(d["Status"], d["Attempt"], json.dumps(json.loads(r), sort_keys=True) if r else "-")' 2>&1)
                expect_eq "job $i ($id) ended succeeded with the handler's stdout as result" "$v" \
                        "succeeded 1 {\"n\": $i, \"word\": \"w$i\"}"
        done
        # the worker's claims are tracked: its connection (the remote bridge's) is gone, nothing is left running
        out=$($JOBCTL --json list --type=remote | python3 -c 'import json,sys; print(sorted({j["status"] for j in json.load(sys.stdin)}))' 2>&1)
        expect_eq "no remote job is left pending or running" "$out" "['succeeded']"

        # an output file is an fd on Complete, which SSH cannot carry: the job fails saying so
        id=$($JOBCTL submit remote '{"n": 4}')
        timeout 60 $JOBCTL -H "$H" worker --max-jobs=1 remote -- \
                sh -c 'echo data >"$JOBD_WORKSPACE/outputs/out.txt"; cat' >"$SSHDIR/worker.out" 2>&1 </dev/null &
        WORKER_PID=$!
        wait "$WORKER_PID"; rc=$?
        WORKER_PID=
        v=$($JOBCTL --json status "$id" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["Status"], "|", d["Error"])' 2>&1)
        expect_match "a remote handler's output file fails its job with a clear error" "$v" '^failed \| .*(SSH|cannot pass)'
        [ "$rc" -gt 1 ] && tail -n 20 "$SSHDIR/worker.out" | sed 's/^/# worker: /'
else
        echo "# jobctl worker is not available in this build: remote Claim/Complete loop with busctl -H instead"
        ok "jobctl -H worker --max-jobs=3 processes three jobs # SKIP jobctl worker not in this build"
        t=$(now_ms)
        for i in 1 2 3; do
                out=$(busctl -H "$H" --json=short call "${MGR[@]}" Claim 'asta{sv}' 1 remote 5000000 0 2>&1)
                read -r cid token params <<<"$(printf '%s' "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin)["data"]; print(d[0], d[1], d[3])' 2>&1)"
                busctl -H "$H" call org.jobd.Jobd1 "/org/jobd/Jobd1/job/$cid" org.jobd.Jobd1.Job Complete 'ssa{sv}' \
                        "$token" "$params" 0 >/dev/null 2>&1
        done
        took "busctl -H claim+complete, 3 jobs" "$t"
        for i in 1 2 3; do
                id=${ids[$((i - 1))]}
                v=$($JOBCTL --json status "$id" | python3 -c 'import json,sys; d=json.load(sys.stdin); r=d["Result"]; print(d["Status"], json.dumps(json.loads(r), sort_keys=True) if r else "-")' 2>&1)
                expect_eq "job $i ($id) claimed and completed over busctl -H" "$v" "succeeded {\"n\": $i, \"word\": \"w$i\"}"
        done
fi

# --- teardown: sshd is stopped and nothing of it is left ------------------------------------------------
cleanup
if systemctl is-active -q "$SSHD_UNIT" 2>/dev/null || port_listening "$PORT"; then
        fail "sshd is stopped at the end"
else
        ok "sshd is stopped at the end"
fi
took "whole test" "$T0"
finish
