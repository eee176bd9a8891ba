# SPDX-License-Identifier: LGPL-2.1-or-later
# User mode for real: a `systemd --user` manager for jobdtest1 (uid 2001) with its own session bus
# (dbus.socket at $XDG_RUNTIME_DIR/bus, dbus-daemon with systemd activation), the way
# user@.service runs one; the first `jobctl --user` call activates `jobd --user` through the
# prefix's session activation file and user unit; jobs run in the user manager's jobd.slice;
# state lives in $XDG_STATE_HOME/jobd; types also come from $XDG_CONFIG_HOME/jobd/types.d.
. "$JOBD_TESTS/lib.sh"

U=2001
PREFIX=${JOBD_PREFIX:?}
D=/run/jobdtest-user                    # the user manager's units and bus config (the world's /run)
H=/var/lib/jobdtest-home/$U             # the user's home (the world's /var overlay, never the host)
RT=/run/user/$U

cleanup() {
        systemctl stop user@$U.service 2>/dev/null
        systemctl reset-failed user@$U.service 2>/dev/null
        rm -rf "$D" "$H"
}
trap cleanup EXIT
cleanup

# Runs a command as the user, in their session.
as_user() {
        setpriv --reuid=$U --regid=$U --clear-groups env -i PATH="$PATH" HOME=$H XDG_RUNTIME_DIR=$RT \
                DBUS_SESSION_BUS_ADDRESS=unix:path=$RT/bus XDG_STATE_HOME=$H/state XDG_CONFIG_HOME=$H/config "$@"
}
ujobctl() { as_user "$JOBCTL" --user "$@"; }

unit() { mkdir -p "$D/units"; cat >"$D/units/$1"; }

# ---- the user manager: stub units (never the distribution's user units), a session bus ----
mkdir -p "$D/units" "$D/empty"
for t in basic sockets timers paths; do printf '[Unit]\nDescription=%s (test stub)\n' $t | unit $t.target; done
printf '[Unit]\nDescription=Shutdown (test stub)\nDefaultDependencies=no\n' | unit shutdown.target
unit default.target <<EOF
[Unit]
Description=Default (test stub)
Requires=basic.target
Wants=dbus.socket
After=basic.target
EOF
unit dbus.socket <<EOF
[Unit]
Description=D-Bus session bus socket (test)
[Socket]
ListenStream=%t/bus
EOF
cat >"$D/session.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <include>/usr/share/dbus-1/session.conf</include>
  <servicedir>$PREFIX/share/dbus-1/services</servicedir>
</busconfig>
EOF
unit dbus.service <<EOF
[Unit]
Description=D-Bus session bus (test)
Requires=dbus.socket
After=dbus.socket
[Service]
ExecStart=/usr/bin/dbus-daemon --config-file=$D/session.conf --address=systemd: --nofork --nopidfile --systemd-activation
EOF
# SIGTERM makes a user manager start exit.target: without these, stopping it hangs until SIGKILL
unit exit.target <<EOF
[Unit]
Description=Exit the user manager (test stub)
DefaultDependencies=no
Requires=systemd-exit.service
After=systemd-exit.service
EOF
unit systemd-exit.service <<EOF
[Unit]
Description=Exit the user manager (test stub)
DefaultDependencies=no
Requires=shutdown.target
After=shutdown.target
SuccessAction=exit-force
[Service]
Type=oneshot
ExecStart=/bin/true
Slice=-.slice
EOF
chmod -R a+rX "$D"
mkdir -p "$H/config/jobd/types.d"
chown -R $U:$U "$H"

check "a systemd --user manager starts for uid $U (user@$U.service)" \
        systemd-run --quiet --unit=user@$U.service -p Type=notify -p User=$U -p Delegate=yes -p KillMode=mixed \
        -p Slice=user-$U.slice -p RuntimeDirectory=user/$U -p RuntimeDirectoryMode=0700 \
        --setenv=SYSTEMD_UNIT_PATH="$D/units:$PREFIX/lib/systemd/user" --setenv=SYSTEMD_GENERATOR_PATH="$D/empty" \
        --setenv=SYSTEMD_ENVIRONMENT_GENERATOR_PATH="$D/empty" --setenv=XDG_RUNTIME_DIR=$RT --setenv=HOME=$H \
        --setenv=XDG_STATE_HOME=$H/state --setenv=XDG_CONFIG_HOME=$H/config /lib/systemd/systemd --user
expect_eq "the user manager is running" "$(as_user systemctl --user is-system-running 2>&1)" "running"
expect_eq "jobd --user is not running yet" "$(as_user systemctl --user is-active jobd.service)" "inactive"

# ---- activation by the first call; types from $XDG_CONFIG_HOME ----
printf '[Type]\nDescription=Mine\nExec=/bin/sh -c "cat; echo from-mine >&2"\n' >"$H/config/jobd/types.d/mine.type"
printf '[Type]\nDescription=Worked by me\n' >"$H/config/jobd/types.d/todo.type"
chown -R $U:$U "$H/config"
out=$(ujobctl types 2>&1)
expect_match "the first jobctl --user call activates jobd on the session bus" "$out" "^mine +local"
expect_eq "jobd.service of the user manager is active" "$(as_user systemctl --user is-active jobd.service)" "active"
expect_match "it runs jobd --user as the user" "$(ps -o uid=,args= -p "$(as_user systemctl --user show -P MainPID jobd.service)")" \
        "^ *$U .*/jobd --user$"
expect_eq "the system's jobd was not involved" "$(systemctl is-active jobd.service)" "inactive"

# ---- a local job in a scope of the user manager ----
id=$(ujobctl run -- sh -c "$JOBCTL --user progress 50 halfway; sleep 30")
expect_match "jobctl --user run submits" "$id" '^[0-9]+$'
for _ in $(seq 100); do ujobctl status "$id" | grep -q "Status: running" && break; sleep 0.1; done
props=$(as_user systemctl --user show -p ControlGroup -p Slice -p ActiveState "jobd-$id.scope")
expect_match "the job runs in jobd-$id.scope, in the user manager's jobd.slice" "$props" \
        "ControlGroup=/user.slice/user-$U.slice/user@$U.service/jobd.slice/jobd-$id.scope"
expect_match "the scope is active" "$props" "ActiveState=active"
for _ in $(seq 100); do ujobctl status "$id" | grep -q "50%" && break; sleep 0.1; done
expect_match "jobctl --user progress works from inside the job (session bus in its environment)" \
        "$(ujobctl status "$id")" "50%.*halfway"
check "jobctl --user cancel" ujobctl cancel "$id"
for _ in $(seq 100); do ujobctl status "$id" | grep -q cancelled && break; sleep 0.1; done
expect_match "the job is cancelled" "$(ujobctl status "$id")" "cancelled"

out=$(ujobctl run -f -- sh -c 'id -u; grep "^0::" /proc/self/cgroup')
expect_match "run -f: the exec job runs as the user" "$out" "^$U$"
expect_match "run -f: in a jobd-ID.scope below user@$U.service" "$out" "user@$U.service/jobd.slice/jobd-[0-9]+.scope"

jid=$(ujobctl submit mine '{"x": 1}')
out=$(ujobctl follow "$jid" 2>&1)
expect_match "jobctl --user follow shows a configured type's log" "$out" "from-mine"
expect_match "jobctl --user status shows its result" "$(ujobctl status "$jid")" 'Result: \{"x": ?1\}'

# an external type of the user's own: the user works it (their jobd, their jobs)
tid=$(ujobctl submit todo '{}')
out=$(ujobctl worker --max-jobs=1 --wait=5s todo -- sh -c 'echo "{\"done\": true}"' 2>&1)
expect_match "jobctl --user worker takes and completes the user's job" "$(ujobctl status "$tid")" "succeeded"
check "jobctl --user reload (the user is the admin of their jobd)" ujobctl reload
expect_match "jobctl --user list" "$(ujobctl list --no-legend)" "^ *$tid +todo +succeeded +jobdtest1"
out=$(ujobctl --json=short stats)
expect_match "jobctl --user stats" "$out" '"succeeded":[3-9]'

# ---- state in $XDG_STATE_HOME/jobd ----
check "the journal is in \$XDG_STATE_HOME/jobd, owned by the user" \
        test "$(stat -c %U "$H/state/jobd/journal")" = jobdtest1
check "the system state folder has no journal of it" test ! -e /var/lib/jobd/journal

# ---- idle exit and activation in user mode ----
mkdir -p "$H/config/jobd"
printf '[Manager]\nIdleExitSec=1s\n' >"$H/config/jobd/jobd.conf"
chown -R $U:$U "$H/config"
check "jobctl --user reload reads \$XDG_CONFIG_HOME/jobd/jobd.conf" ujobctl reload
gone=no
for _ in $(seq 40); do         # IdleExitSec + 1 s
        [ "$(as_user systemctl --user is-active jobd.service)" = inactive ] && { gone=yes; break; }
        sleep 0.05
done
expect_eq "jobd --user exits when idle" "$gone" yes
expect_match "the next call activates it again, with its jobs" "$(ujobctl list --no-legend)" "^ *$tid +todo +succeeded"

reports=$(journalctl -q --no-pager _UID=$U 2>/dev/null | grep -E 'AddressSanitizer|LeakSanitizer|runtime error:' | head -n 5)
expect_eq "jobd --user logged no sanitizer reports" "$reports" ""
finish
