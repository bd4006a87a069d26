#!/usr/bin/env bash
# Packaging test: build the .deb, lint it, install it on this machine, run the installed
# daemon the way its systemd unit does, send it mail, stop it, purge the package.
#
#   tests/packaging/run.sh
#
# Needs root (dpkg -i, the postern user, port 25). Missing tools (lintian, swaks,
# dpkg-dev, systemd-analyze ...) are installed with apt-get. Traffic stays on loopback:
# the installed configuration is edited to listen on 127.0.0.1:25 only, and swaks runs
# under tests/interop/lib/loopback-dns.sh. systemd is not needed (and not used): the
# daemon is started as the postern user, with the unit's ExecStart= command line, the
# unit's capability (CAP_NET_BIND_SERVICE, ambient) and a NOTIFY_SOCKET this script
# listens on, so READY=1 and STOPPING=1 are checked too.
#
# PACKAGING_DEB=path skips the build and tests that .deb. The last line printed is
# "N passed, M failed"; the exit status is 0 only when M is 0.
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd -- "$SCRIPT_DIR/../.." && pwd)
LOOPBACK_DNS="$REPO_ROOT/tests/interop/lib/loopback-dns.sh"
CONF=/etc/postern/postern.toml
DOMAIN=pkgtest.test
PORT=25

PASSED=0
FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "ok   - $1"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL - $1"; [ $# -gt 1 ] && printf '%s\n' "$2" | sed 's/^/       /'; return 0; }
check() { # check NAME COMMAND...
    local name=$1; shift
    local out
    if out=$("$@" 2>&1); then pass "$name"; else fail "$name" "$out"; fi
}
finish() {
    echo "$PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ]
}

if [ "$(id -u)" -ne 0 ]; then
    echo "packaging: must run as root (dpkg -i, a system user, port 25)" >&2
    exit 1
fi

# --- prerequisites -------------------------------------------------------------------

install_missing() {
    local need=()
    command -v lintian >/dev/null 2>&1 || need+=(lintian)
    command -v swaks >/dev/null 2>&1 || need+=(swaks)
    perl -MNet::SSLeay -e 1 >/dev/null 2>&1 || need+=(libnet-ssleay-perl)
    command -v dpkg-shlibdeps >/dev/null 2>&1 || need+=(dpkg-dev)
    command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
    command -v adduser >/dev/null 2>&1 || need+=(adduser)
    command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
    command -v python3 >/dev/null 2>&1 || need+=(python3)
    [ "${#need[@]}" -eq 0 ] && return 0
    echo "packaging: installing ${need[*]} ..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}
install_missing

if ss -Hltn "sport = :$PORT" 2>/dev/null | grep -q .; then
    echo "packaging: port $PORT is in use on this machine; the test needs it free" >&2
    exit 1
fi
if dpkg-query -W -f='${Status}' postern 2>/dev/null | grep -q "installed"; then
    echo "packaging: a postern package is already installed here; remove it first" >&2
    exit 1
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/postern-packaging.XXXXXX")
# The daemon, running as postern, must reach the notify socket in here.
chmod 0711 "$WORK"
SERVER_PID=
NOTIFY_PID=
DIVERTED=
cleanup() {
    [ -n "$SERVER_PID" ] && kill -KILL "$SERVER_PID" 2>/dev/null || true
    [ -n "$NOTIFY_PID" ] && kill "$NOTIFY_PID" 2>/dev/null || true
    if dpkg-query -W -f='${Status}' postern 2>/dev/null | grep -q "installed"; then
        dpkg --purge postern >/dev/null 2>&1 || true
    fi
    if [ -n "$DIVERTED" ]; then
        [ "$(readlink /usr/sbin/sendmail 2>/dev/null)" = postern ] && rm -f /usr/sbin/sendmail
        dpkg-divert --local --rename --remove /usr/sbin/sendmail >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK" /run/postern
}
trap cleanup EXIT

# --- build and lint ------------------------------------------------------------------

if [ -n "${PACKAGING_DEB:-}" ]; then
    DEB=$PACKAGING_DEB
else
    echo "packaging: building the .deb (release build) ..."
    if ! DEB=$("$REPO_ROOT/packaging/build-deb.sh" 2>"$WORK/build.log" | tail -n 1) || [ ! -f "$DEB" ]; then
        tail -n 30 "$WORK/build.log" >&2
        fail "build the .deb"
        finish
        exit 1
    fi
fi
pass "build $(basename "$DEB")"

case "$(basename "$DEB")" in
    postern_*_*.deb) pass "file name is postern_<version>_<arch>.deb" ;;
    *) fail "file name is postern_<version>_<arch>.deb" "$(basename "$DEB")" ;;
esac

# Errors and warnings fail; every warning that remains is overridden, with a reason,
# in packaging/lintian-overrides (shipped in the package).
check "lintian: no errors, no unexplained warnings" \
    lintian --fail-on error,warning --tag-display-limit 0 "$DEB"

fields=$(dpkg-deb --field "$DEB" Depends Provides Conflicts Replaces Section)
check "Depends has ca-certificates and adduser" grep -Eq '^Depends:.*ca-certificates.*' <<<"$fields"
check "Depends has libc (\$auto)" grep -Eq '^Depends:.*libc6' <<<"$fields"
check "Provides/Conflicts/Replaces mail-transport-agent" \
    test "$(grep -Ec '^(Provides|Conflicts|Replaces): mail-transport-agent$' <<<"$fields")" = 3
contents=$(dpkg-deb --contents "$DEB")
for f in ./usr/sbin/postern ./etc/postern/postern.toml ./usr/share/man/man8/postern.8.gz \
    ./usr/share/man/man5/postern.toml.5.gz ./usr/share/doc/postern/copyright \
    ./usr/share/doc/postern/README.md ./usr/share/doc/postern/docs/operations.md \
    ./usr/share/doc/postern/examples/internet-gateway.toml; do
    check "package contains $f" grep -q " $f\$" <<<"$contents"
done
UNIT=$(grep -Eo '\./(usr/)?lib/systemd/system/postern\.service' <<<"$contents" | head -n 1 | sed 's/^\.//')
check "package contains the systemd unit" test -n "$UNIT"

# --- install -------------------------------------------------------------------------

# This CI machine has Postfix for the interop suite; on a real host `apt install
# ./postern_*.deb` would replace it (Conflicts/Replaces). Here both stay.
force=()
if dpkg-query -W -f='${Provides}\n' 2>/dev/null | grep -q mail-transport-agent; then
    force=(--force-conflicts)
fi
# Debian requires /usr/sbin/sendmail of an MTA: postinst links it to postern unless another
# package's sendmail is there. Postfix's is diverted aside for the test (dpkg-divert, undone
# after the purge and on exit) so that postinst's link is what gets tested.
if [ -e /usr/sbin/sendmail ] || [ -L /usr/sbin/sendmail ]; then
    dpkg-divert --local --rename --divert /usr/sbin/sendmail.postern-test \
        --add /usr/sbin/sendmail >/dev/null && DIVERTED=yes
fi
LIB_SENDMAIL_BEFORE=
if [ -e /usr/lib/sendmail ] || [ -L /usr/lib/sendmail ]; then
    LIB_SENDMAIL_BEFORE=$(readlink /usr/lib/sendmail || echo "(a file)")
fi

check "dpkg -i" dpkg -i "${force[@]}" "$DEB"
check "postinst links /usr/sbin/sendmail to postern" \
    test "$(readlink /usr/sbin/sendmail)" = postern
if [ -z "$LIB_SENDMAIL_BEFORE" ]; then
    check "postinst links /usr/lib/sendmail to postern" \
        test "$(readlink /usr/lib/sendmail)" = ../sbin/postern
else
    check "postinst leaves another package's /usr/lib/sendmail alone" \
        test "$(readlink /usr/lib/sendmail || echo "(a file)")" = "$LIB_SENDMAIL_BEFORE"
fi

check "user postern exists, system account, no login" \
    sh -c 'getent passwd postern | grep -Eq "^postern:x:[0-9]+:[0-9]+:[^:]*:/var/lib/postern:/usr/sbin/nologin$"'
check "group postern exists" getent group postern
perm() { [ "$(stat -c '%U:%G %a' "$1")" = "$2" ] || { stat -c "%n: %U:%G %a, expected $2" "$1"; return 1; }; }
check "/var/lib/postern postern:postern 0750" perm /var/lib/postern "postern:postern 750"
check "/var/spool/postern postern:postern 0750" perm /var/spool/postern "postern:postern 750"
check "/etc/postern/tls root:postern 0750" perm /etc/postern/tls "root:postern 750"
check "$CONF is a conffile" sh -c "dpkg-query -W -f='\${Conffiles}' postern | grep -q '$CONF'"
check "man postern works" sh -c 'man -P cat postern 2>/dev/null | grep -q "postern queue list"'
check "man postern.toml works" sh -c 'man -P cat postern.toml 2>/dev/null | grep -q "local_domains"'

if [ -n "$UNIT" ]; then
    check "systemd-analyze verify $UNIT" systemd-analyze verify "$UNIT"
fi

as_postern() { setpriv --reuid=postern --regid=postern --init-groups "$@"; }
check "check-config passes on the configuration as installed" \
    as_postern /usr/sbin/postern check-config --config "$CONF"

# --- configure as the comments in the file say -----------------------------------------

cp "$CONF" "$WORK/postern.toml.orig"
python3 - "$CONF" "$DOMAIN" "$PORT" <<'PY'
import sys
path, domain, port = sys.argv[1:]
s = open(path).read()
def sub(old, new):
    global s
    assert s.count(old) == 1, old
    s = s.replace(old, new)
sub('# hostname = "mx1.example.org"', f'hostname = "mx.{domain}"')
sub('local_domains = []', f'local_domains = ["{domain}"]')
# CI only: loopback, never the machine's public addresses.
sub('address = "0.0.0.0:25"', f'address = "127.0.0.1:{port}"')
s += f'\n[[route]]\ndomain = "{domain}"\nnext_hop = "maildir:mail"\n'
open(path, "w").write(s)
PY
check "check-config passes with hostname, local_domains and a route set" \
    as_postern /usr/sbin/postern check-config --config "$CONF"

# --- run it as the unit does -----------------------------------------------------------

EXEC=$(sed -n 's/^ExecStart=//p' "$UNIT")
check "ExecStart runs /usr/sbin/postern serve" grep -q '^/usr/sbin/postern serve --config /etc/postern/postern.toml$' <<<"$EXEC"
grep -q '^AmbientCapabilities=CAP_NET_BIND_SERVICE$' "$UNIT" && pass "unit grants only CAP_NET_BIND_SERVICE" \
    || fail "unit grants only CAP_NET_BIND_SERVICE"

NOTIFY_SOCK="$WORK/notify.sock"
python3 - "$NOTIFY_SOCK" "$WORK/notify.log" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
import os; os.chmod(sys.argv[1], 0o777)
with open(sys.argv[2], "a") as log:
    while True:
        log.write(s.recv(4096).decode() + "\n--\n")
        log.flush()
PY
NOTIFY_PID=$!
for _ in $(seq 50); do [ -S "$NOTIFY_SOCK" ] && break; sleep 0.1; done

# RuntimeDirectory=postern (0755), as systemd makes it: the local submission socket's home.
install -d -o postern -g postern -m 0755 /run/postern
# shellcheck disable=SC2086 # the ExecStart line is split into words, as systemd does
(cd / && exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin NOTIFY_SOCKET="$NOTIFY_SOCK" JOURNAL_STREAM=8:1 \
    setpriv --reuid=postern --regid=postern --init-groups \
    --inh-caps=+net_bind_service --ambient-caps=+net_bind_service --no-new-privs \
    $EXEC) >"$WORK/postern.log" 2>&1 &
SERVER_PID=$!

ready=no
for _ in $(seq 100); do
    if grep -q "READY=1" "$WORK/notify.log" 2>/dev/null; then ready=yes; break; fi
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
done
if [ "$ready" = yes ]; then pass "READY=1 sent to NOTIFY_SOCKET"; else
    fail "READY=1 sent to NOTIFY_SOCKET" "$(tail -n 20 "$WORK/postern.log")"; fi
check "runs as the postern user" sh -c "ps -o user= -p $SERVER_PID | grep -qx postern"
check "listens on 127.0.0.1:$PORT (port below 1024 without root)" \
    sh -c "ss -Hltn 'sport = :$PORT' | grep -q 127.0.0.1:$PORT"
check "log lines have no timestamp under journald (JOURNAL_STREAM)" \
    sh -c "head -n 1 '$WORK/postern.log' | grep -Eqv '^[0-9]{4}-[0-9]{2}-[0-9]{2}T'"

swaks_out=$("$LOOPBACK_DNS" timeout 30 swaks --server "127.0.0.1:$PORT" --tls \
    --helo client.pkgtest.test --from sender@example.net --to "user@$DOMAIN" \
    --header "Subject: packaging test" 2>&1) || true
if grep -q "<~  250 2.0.0 Ok: queued as" <<<"$swaks_out"; then pass "swaks over STARTTLS: 250 queued"
else fail "swaks over STARTTLS: 250 queued" "$swaks_out"; fi
check "swaks negotiated TLS" grep -q "TLS started" <<<"$swaks_out"

delivered=
for _ in $(seq 100); do
    delivered=$(find /var/lib/postern/mail/user/new -type f 2>/dev/null | head -n 1)
    [ -n "$delivered" ] && break
    sleep 0.1
done
check "message delivered to /var/lib/postern/mail/user/new" test -n "$delivered"
[ -n "$delivered" ] && check "delivered message has the TLS Received header" \
    grep -q "using TLSv1" "$delivered"
# The sendmail interface, as cron uses it, by an unprivileged user: -i keeps the "." line.
if sendmail_out=$(printf 'Subject: sendmail test\n\nfrom cron\n.\nafter the dot\n' |
    (cd / && setpriv --reuid=nobody --regid=nogroup --clear-groups \
        timeout 30 /usr/sbin/sendmail -i "someone@$DOMAIN") 2>&1); then
    pass "/usr/sbin/sendmail -i someone@$DOMAIN (as nobody): exit 0"
else
    fail "/usr/sbin/sendmail -i someone@$DOMAIN (as nobody): exit 0" "$sendmail_out"
fi
via_sendmail=
for _ in $(seq 100); do
    via_sendmail=$(find /var/lib/postern/mail/someone/new -type f 2>/dev/null | head -n 1)
    [ -n "$via_sendmail" ] && break
    sleep 0.1
done
check "sendmail's message delivered to /var/lib/postern/mail/someone/new" test -n "$via_sendmail"
if [ -n "$via_sendmail" ]; then
    check "sendmail kept the line after a lone dot (-i)" grep -q "after the dot" "$via_sendmail"
    check "sendmail added From: nobody@mx.$DOMAIN" grep -q "^From: nobody@mx.$DOMAIN" "$via_sendmail"
    check "sendmail submitted over /run/postern/submit.sock: Received names uid $(id -u nobody)" \
        grep -q "from userid $(id -u nobody))" "$via_sendmail"
fi

check "queued files belong to postern" sh -c \
    "! find /var/spool/postern /var/lib/postern ! -user postern | grep -q ."
check "postern queue list (root, through the control socket)" \
    sh -c "/usr/sbin/postern queue list | grep -q 'The queue is empty.'"
check "control socket is 0660" perm /var/lib/postern/control.sock "postern:postern 660"

# ExecReload= sends SIGHUP: RELOADING=1, then READY=1 again.
kill -HUP "$SERVER_PID"
reloaded=no
for _ in $(seq 50); do
    if grep -q "RELOADING=1" "$WORK/notify.log" && [ "$(grep -c "READY=1" "$WORK/notify.log")" -ge 2 ]; then
        reloaded=yes; break
    fi
    sleep 0.1
done
if [ "$reloaded" = yes ]; then pass "SIGHUP: RELOADING=1 then READY=1"; else
    fail "SIGHUP: RELOADING=1 then READY=1" "$(cat "$WORK/notify.log")"; fi
check "still serving after the reload" kill -0 "$SERVER_PID"

kill -TERM "$SERVER_PID"
rc=0
for _ in $(seq 150); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.2; done
if kill -0 "$SERVER_PID" 2>/dev/null; then
    fail "SIGTERM stops the daemon within 30 s"
    kill -KILL "$SERVER_PID" 2>/dev/null || true
else
    wait "$SERVER_PID" || rc=$?
    SERVER_PID=
    if [ "$rc" -eq 0 ]; then pass "SIGTERM: exit status 0"; else fail "SIGTERM: exit status 0" "exit $rc"; fi
fi
check "STOPPING=1 sent" grep -q "STOPPING=1" "$WORK/notify.log"
check "control socket removed on stop" test ! -e /var/lib/postern/control.sock
kill "$NOTIFY_PID" 2>/dev/null || true
NOTIFY_PID=

# --- remove keeps state, purge removes it -----------------------------------------------

check "dpkg -r" dpkg -r postern
check "remove keeps /var/lib/postern" test -d /var/lib/postern/mail
check "remove keeps /var/spool/postern" test -d /var/spool/postern
check "remove keeps the conffile" test -f "$CONF"
check "remove removes the binary" test ! -e /usr/sbin/postern
check "remove removes the /usr/sbin/sendmail link" \
    sh -c '! [ -e /usr/sbin/sendmail ] && ! [ -L /usr/sbin/sendmail ]'
if [ -z "$LIB_SENDMAIL_BEFORE" ]; then
    check "remove removes the /usr/lib/sendmail link" \
        sh -c '! [ -e /usr/lib/sendmail ] && ! [ -L /usr/lib/sendmail ]'
fi
check "dpkg --purge" dpkg --purge postern
check "purge removes Postern's own state" \
    sh -c '! [ -e /var/lib/postern/tls ] && ! [ -e /var/lib/postern/queue ]'
check "purge keeps the delivered Maildirs (users' mail)" test -d /var/lib/postern/mail
rm -rf /var/lib/postern
check "purge removes /var/spool/postern" test ! -e /var/spool/postern
check "purge removes /etc/postern" test ! -e /etc/postern
check "purge keeps the postern user (Debian practice)" getent passwd postern
# shellcheck disable=SC2016 # expanded by sh -c
check "no sendmail link after purge" \
    sh -c '[ "$(readlink /usr/sbin/sendmail)" != postern ] && [ "$(readlink /usr/lib/sendmail)" != ../sbin/postern ]'
if [ -n "$DIVERTED" ]; then
    check "the diverted sendmail is restored" \
        dpkg-divert --local --rename --remove /usr/sbin/sendmail
    DIVERTED=
fi

finish
