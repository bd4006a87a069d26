#!/usr/bin/env bash
# The peer matrix: Postern against Exim 4.96 and OpenSMTPD 6.8 from Debian, in both
# directions, at each TLS level, with an 8-bit UTF-8 body and a 2 MiB attachment
# (issue #16). See README.md next to this file.
#
#   cargo build && tests/interop/peers/run.sh
#
# POSTERN_BIN overrides the binary; POSTERN_PEER_ROOT is where the Debian packages are
# unpacked (kept between runs; default /var/cache/postern-interop/peers). The grid is
# printed at the end, and written to docs/interop.md with POSTERN_INTEROP_DOCS=1 (off by
# default, so a run leaves the checkout clean); POSTERN_PEERS_KEEP=1 keeps the work directory (logs, spools). The last line is "N passed, M failed"; known-broken cells count as neither.
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd -- "$SCRIPT_DIR/../../.." && pwd)
BIN=${POSTERN_BIN:-$REPO_ROOT/target/debug/postern}
PEER_ROOT=${POSTERN_PEER_ROOT:-/var/cache/postern-interop/peers}
MAILPY="$SCRIPT_DIR/mail.py"
# shellcheck source=../lib/peers.sh
. "$SCRIPT_DIR/../lib/peers.sh"

# --- outside the namespace: fetch the peers, then re-run this script inside it ---------

if [ -z "${POSTERN_PEERS_NS:-}" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "peers: must run as root (private mount namespace, peers' own users)" >&2
        exit 1
    fi
    [ -x "$BIN" ] || { echo "peers: postern binary not found at $BIN (cargo build first)" >&2; exit 1; }
    for t in swaks openssl python3 unshare dpkg-deb; do
        command -v "$t" >/dev/null || { echo "peers: $t is missing" >&2; exit 1; }
    done
    peers_fetch "$PEER_ROOT" || exit 1
    NS=$(mktemp -d "${TMPDIR:-/tmp}/postern-peers-ns.XXXXXX")
    trap 'rm -rf -- "$NS"' EXIT
    peers_namespace_files "$NS"
    set +e
    POSTERN_PEERS_NS=$NS POSTERN_BIN=$BIN POSTERN_PEER_ROOT=$PEER_ROOT \
        peers_enter_namespace "$NS" "$PEER_ROOT" "$0" "$@"
    rc=$?
    set -e
    exit "$rc"
fi

# --- inside the namespace ---------------------------------------------------------------

NS=$POSTERN_PEERS_NS
ROOT=$PEER_ROOT
export LD_LIBRARY_PATH=$ROOT/usr/lib/x86_64-linux-gnu
EXIM="$ROOT/usr/sbin/exim4"
SMTPD="$ROOT/usr/sbin/smtpd"
WAIT=30 # seconds for a message to arrive

WORK=$(mktemp -d "${TMPDIR:-/tmp}/postern-peers.XXXXXX")
chmod 755 "$WORK"
CA="$WORK/ca" P="$WORK/postern" E="$WORK/exim" O="$WORK/smtpd" MSG="$WORK/msg"
mkdir -p "$CA" "$P/state" "$E/spool" "$E/log" "$E/mail" "$O/mail" "$MSG"
EXIM_UID=$(peer_uid Debian-exim)
VMAIL_UID=$(peer_uid pivmail)
chown -R "$EXIM_UID:$EXIM_UID" "$E"
chown "$VMAIL_UID:$VMAIL_UID" "$O/mail"
PIDS=()

cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    sleep 0.3
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    if [ "${POSTERN_PEERS_KEEP:-0}" = 1 ]; then echo "# kept $WORK"; else rm -rf -- "$WORK"; fi
}
trap cleanup EXIT

pick_ports() {
    python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}
read -r P_TLS P_MTLS P_PLAIN E_TLS E_PLAIN E_MTLS E_IN O_PLAIN O_TLS O_IN < <(pick_ports 10)

# --- certificates: one test CA, ECDSA P-256 --------------------------------------------

issue() {
    local name=$1 cn=$2 eku=$3
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$CA/$name.key" 2>/dev/null
    openssl req -new -key "$CA/$name.key" -subj "/O=Postern interop/CN=$cn" -out "$CA/$name.csr" 2>/dev/null
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\nsubjectAltName=DNS:%s\n' \
        "$eku" "$cn" >"$CA/$name.ext"
    openssl x509 -req -in "$CA/$name.csr" -CA "$CA/ca.pem" -CAkey "$CA/ca.key" -CAcreateserial \
        -days 2 -sha256 -extfile "$CA/$name.ext" -out "$CA/$name.pem" 2>/dev/null
}
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$CA/ca.key" 2>/dev/null
openssl req -x509 -new -key "$CA/ca.key" -sha256 -days 2 -subj "/CN=Postern Peers Test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
    -out "$CA/ca.pem" 2>/dev/null
issue postern-server mx.postern.test serverAuth
issue postern-client mx.postern.test clientAuth
issue exim-server mx.exim.test serverAuth
issue exim-client mx.exim.test clientAuth
issue smtpd-server mx.smtpd.test serverAuth
chmod 644 "$CA"/*.pem
chmod 640 "$CA"/*.key
chgrp "$EXIM_UID" "$CA"/exim-*.key
chmod 755 "$CA"

python3 "$MAILPY" make "$MSG"
chmod -R a+rX "$MSG"

# --- Postern ------------------------------------------------------------------------------

LEVELS="may encrypt verify mutual"
postern_routes() { # PEER MAY_PORT TLS_PORT PLAIN_PORT MTLS_PORT
    local peer=$1 may=$2 tls=$3 plain=$4 mtls=$5 l
    for l in $LEVELS neg dsn; do
        local port=$tls
        [ "$l" = may ] || [ "$l" = dsn ] && port=$may
        [ "$l" = neg ] && port=$plain
        [ "$l" = mutual ] && port=$mtls
        printf '[[route]]\ndomain = "%s.%s.test"\nnext_hop = "smtp:[127.0.0.1]:%s"\n\n' "$l" "$peer" "$port"
    done
    printf '[[outbound.policy]]\ndomain = "encrypt.%s.test"\ntls = "encrypt"\n\n' "$peer"
    printf '[[outbound.policy]]\ndomain = "neg.%s.test"\ntls = "encrypt"\n\n' "$peer"
    printf '[[outbound.policy]]\ndomain = "verify.%s.test"\ntls = "secure"\nmatch = ["mx.%s.test"]\nca = "%s"\n\n' "$peer" "$peer" "$CA/ca.pem"
    printf '[[outbound.policy]]\ndomain = "mutual.%s.test"\ntls = "secure"\nmatch = ["mx.%s.test"]\nca = "%s"\nclient_certificate = true\n\n' "$peer" "$peer" "$CA/ca.pem"
}
{
    cat <<EOF
# Written by tests/interop/peers/run.sh
[server]
hostname = "mx.postern.test"
state_dir = "$P/state"

[[tls.certificate]]
chain = "$CA/postern-server.pem"
key = "$CA/postern-server.key"

[[listener]]
address = "127.0.0.1:$P_TLS"
mode = "starttls"

[[listener]]
address = "127.0.0.1:$P_MTLS"
mode = "starttls"
client_certificates = "require"
client_ca = "$CA/ca.pem"

[[listener]]
address = "127.0.0.1:$P_PLAIN"
mode = "plain"

[relay]
local_domains = ["postern.test", "may.postern.test", "encrypt.postern.test", "verify.postern.test", "mutual.postern.test", "neg.postern.test", "nocert.postern.test"]
trusted_networks = ["127.0.0.0/8"]

[queue]
retry = ["1h"]

[outbound]
tls = "may"
client_certificate = { chain = "$CA/postern-client.pem", key = "$CA/postern-client.key" }

EOF
    for d in postern may.postern encrypt.postern verify.postern mutual.postern neg.postern nocert.postern; do
        printf '[[route]]\ndomain = "%s.test"\nnext_hop = "maildir:mail"\n\n' "$d"
    done
    postern_routes exim "$E_TLS" "$E_TLS" "$E_PLAIN" "$E_MTLS"
    # Negative case of verify: Exim's certificate does not carry the expected name.
    printf '[[route]]\ndomain = "badname.exim.test"\nnext_hop = "smtp:[127.0.0.1]:%s"\n\n' "$E_TLS"
    printf '[[outbound.policy]]\ndomain = "badname.exim.test"\ntls = "secure"\nmatch = ["wrong.exim.test"]\nca = "%s"\n\n' "$CA/ca.pem"
    postern_routes smtpd "$O_PLAIN" "$O_TLS" "$O_PLAIN" "$O_TLS"
} >"$P/postern.toml"

NO_COLOR=1 RUST_LOG=info "$BIN" serve -c "$P/postern.toml" --log-format text >"$P/stdout" 2>"$P/log" </dev/null &
PIDS+=($!)

# --- Exim: receives on E_TLS / E_PLAIN / E_MTLS, relays to Postern by recipient domain --

exim_transport() { # NAME PORT OPTIONS...
    local name=$1
    shift
    printf '%s:\n  driver = smtp\n  allow_localhost\n  helo_data = mx.exim.test\n' "$name"
    printf '  %s\n' "$@"
}
exim_router() { # LEVEL PORT TRANSPORT
    printf 'to_%s:\n  driver = manualroute\n  domains = %s.postern.test\n  route_list = * mx.postern.test::%s byname\n  self = send\n  transport = %s\n\n' \
        "$1" "$1" "$2" "$3"
}
{
    cat <<EOF
exim_path = $EXIM
keep_environment = LD_LIBRARY_PATH
spool_directory = $E/spool
log_file_path = $E/log/%slog
log_selector = +tls_cipher +tls_peerdn +tls_certificate_verified +smtp_no_mail +incoming_port +incoming_interface +received_recipients
primary_hostname = mx.exim.test
daemon_smtp_ports = $E_TLS : $E_PLAIN : $E_MTLS : $E_IN
local_interfaces = 127.0.0.1
exim_user = Debian-exim
exim_group = Debian-exim
queue_only
domainlist local_domains = *.exim.test
tls_certificate = $CA/exim-server.pem
tls_privatekey = $CA/exim-server.key
tls_advertise_hosts = \${if eq{\$received_port}{$E_PLAIN}{}{*}}
tls_verify_certificates = $CA/ca.pem
tls_verify_hosts = \${if eq{\$received_port}{$E_MTLS}{*}{}}
acl_smtp_rcpt = acl_rcpt
# DSN only where the test injects, so that Postern sees a next hop without DSN.
dsn_advertise_hosts = \${if eq{\$received_port}{$E_IN}{*}{}}

begin acl
acl_rcpt:
  deny local_parts = reject
       message = 5.1.1 <\$local_part@\$domain>: no such user
  accept

begin routers
EOF
    exim_router may "$P_TLS" t_may
    exim_router encrypt "$P_TLS" t_encrypt
    exim_router verify "$P_TLS" t_verify
    exim_router mutual "$P_MTLS" t_mutual
    exim_router neg "$P_PLAIN" t_encrypt
    exim_router nocert "$P_MTLS" t_verify
    cat <<EOF
local:
  driver = accept
  domains = +local_domains
  transport = t_maildir

begin transports
t_maildir:
  driver = appendfile
  directory = $E/mail
  maildir_format
  user = Debian-exim
  create_directory

EOF
    exim_transport t_may "tls_verify_certificates = $CA/ca.pem"
    exim_transport t_encrypt "hosts_require_tls = *"
    exim_transport t_verify "hosts_require_tls = *" "tls_verify_certificates = $CA/ca.pem" \
        "tls_verify_hosts = *" "tls_verify_cert_hostnames = *" "tls_sni = mx.postern.test"
    exim_transport t_mutual "hosts_require_tls = *" "tls_verify_certificates = $CA/ca.pem" \
        "tls_verify_hosts = *" "tls_verify_cert_hostnames = *" "tls_sni = mx.postern.test" \
        "tls_certificate = $CA/exim-client.pem" "tls_privatekey = $CA/exim-client.key"
} >"$E/exim.conf"
chmod 644 "$E/exim.conf"

# -bdf: in the foreground, so that its PID is the one cleanup stops.
"$EXIM" -C "$E/exim.conf" -bdf >"$E/daemon.out" 2>&1 </dev/null &
PIDS+=($!)
# The Debian binary drops privilege for a configuration given with -C, and its daemon
# then cannot deliver; a queue runner started by root (in this namespace) delivers.
(while sleep 1; do "$EXIM" -C "$E/exim.conf" -qff >/dev/null 2>&1 || true; done) &
PIDS+=($!)

# --- OpenSMTPD ----------------------------------------------------------------------------

printf '@ pivmail\n' >"$O/vusers"
smtpd_conf() { # TLS_LISTENER(yes/no)
    cat <<EOF
pki mx.smtpd.test cert "$CA/smtpd-server.pem"
pki mx.smtpd.test key "$CA/smtpd-server.key"
table vusers file:$O/vusers
listen on 127.0.0.1 port $O_PLAIN hostname mx.smtpd.test
listen on 127.0.0.1 port $O_IN hostname mx.smtpd.test
EOF
    [ "$1" = yes ] && echo "listen on 127.0.0.1 port $O_TLS tls pki mx.smtpd.test hostname mx.smtpd.test"
    cat <<EOF
action "deliver" maildir "$O/mail" virtual <vusers>
action "to_may" relay host smtp+notls://127.0.0.1:$P_TLS helo mx.smtpd.test
action "to_encrypt" relay host smtp+tls://127.0.0.1:$P_TLS helo mx.smtpd.test
action "to_neg" relay host smtp+tls://127.0.0.1:$P_PLAIN helo mx.smtpd.test
match from any for domain "dsn.smtpd.test" reject
EOF
    local l
    for l in $LEVELS neg; do echo "match from any for domain \"$l.smtpd.test\" action \"deliver\""; done
    cat <<EOF
match from any for domain "may.postern.test" action "to_may"
match from any for domain "encrypt.postern.test" action "to_encrypt"
match from any for domain "neg.postern.test" action "to_neg"
EOF
}

# Known broken upstream on Debian 12 with OpenSSL 3 (OpenSMTPD issues 1171 and 1239):
# STARTTLS fails ("missing private key"). Probe: the TLS cells run once it works.
SMTPD_TLS=no
smtpd_conf yes >"$O/smtpd.conf"
"$SMTPD" -d -f "$O/smtpd.conf" >"$O/log" 2>&1 </dev/null &
SMTPD_PID=$!
for _ in $(seq 50); do grep -q "starting" "$O/log" 2>/dev/null && break; sleep 0.1; done
sleep 0.5
if echo QUIT | timeout 10 openssl s_client -starttls smtp -connect "127.0.0.1:$O_TLS" \
    -CAfile "$CA/ca.pem" -verify_return_error >"$O/probe" 2>&1; then
    SMTPD_TLS=yes
    PIDS+=("$SMTPD_PID")
else
    kill "$SMTPD_PID" 2>/dev/null || true
    wait "$SMTPD_PID" 2>/dev/null || true
    SMTPD_BROKEN="STARTTLS fails on Debian 12/OpenSSL 3 ($(grep -hoiE 'missing private key|io-error: [^"]*|alert [a-z ]*' "$O/log" "$O/probe" | head -n 1); OpenSMTPD issues 1171, 1239)"
    smtpd_conf no >"$O/smtpd.conf"
    "$SMTPD" -d -f "$O/smtpd.conf" >>"$O/log" 2>&1 </dev/null &
    PIDS+=($!)
fi

# --- readiness ----------------------------------------------------------------------------

wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
for port in $P_TLS $E_TLS $E_IN $O_PLAIN $O_IN; do
    wait_port "$port" || { echo "FAILED - a peer did not start listening on 127.0.0.1:$port"; cat "$P/log" "$E/daemon.out" "$O/log" 2>/dev/null | tail -n 30; echo "0 passed, 1 failed"; exit 1; }
done
POSTERN_VERSION=$("$BIN" --version 2>/dev/null | awk '{print $2}')
EXIM_VERSION=$("$EXIM" -C "$E/exim.conf" -bV 2>/dev/null | sed -n 's/^Exim version \([^ ]*\).*/\1/p')
SMTPD_VERSION=$(sed -n 's/.*OpenSMTPD \([^ ]*\) starting.*/\1/p' "$O/log" | head -n 1)
echo "# peers: postern $POSTERN_VERSION, exim $EXIM_VERSION, opensmtpd $SMTPD_VERSION (Debian packages unpacked in $ROOT); OpenSMTPD TLS: $SMTPD_TLS"

# --- cells --------------------------------------------------------------------------------

PASSED=0 FAILED=0 BROKEN=0
GRID=()
cell() { # PEER DIRECTION LEVEL RESULT DETAIL
    GRID+=("$1|$2|$3|$4|$5")
    case $4 in
        ok) PASSED=$((PASSED + 1)); echo "ok     - $1 $2 $3: $5" ;;
        known-broken* | not-run) BROKEN=$((BROKEN + 1)); echo "skip   - $1 $2 $3: $5" ;;
        *) FAILED=$((FAILED + 1)); echo "FAILED - $1 $2 $3: $5" ;;
    esac
}

# wait_file DIR MARKER: a file below DIR containing MARKER (fixed string).
wait_file() {
    local f
    for _ in $(seq $((WAIT * 5))); do
        f=$(grep -rlF -- "$2" "$1" 2>/dev/null | head -n 1 || true)
        [ -n "$f" ] && { printf '%s\n' "$f"; return 0; }
        sleep 0.2
    done
    return 1
}
wait_log() { # FILE ERE
    for _ in $(seq $((WAIT * 5))); do
        grep -qE -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.2
    done
    return 1
}

# Peer -> Postern: the peer is handed the message in clear on its injection port and
# relays it to Postern with the level's TLS settings.
inbound() { # PEER INJECT_PORT LEVEL
    local peer=$1 port=$2 level=$3 tag="in-$1-$3-$RANDOM" f chk tls
    if ! python3 "$MAILPY" send "$port" "sender@$peer.test" "$tag@$level.postern.test" "$MSG/message.eml" "$tag" 2>"$WORK/err"; then
        cell "$peer" "$peer->postern" "$level" FAIL "submission to $peer refused: $(tail -n 1 "$WORK/err")"
        return
    fi
    if ! f=$(wait_file "$P/state/mail/$tag/new" "$tag@postern.test"); then
        cell "$peer" "$peer->postern" "$level" FAIL "not delivered by Postern within ${WAIT}s; $peer log: $(grep -F "$tag" "$E/log/mainlog" "$O/log" 2>/dev/null | tail -n 1)"
        return
    fi
    if ! chk=$(python3 "$MAILPY" check "$f" "$MSG" 2>&1); then
        cell "$peer" "$peer->postern" "$level" FAIL "$chk"
        return
    fi
    tls=$(grep -m1 -oE "using TLSv[0-9.]+ with cipher [A-Z0-9_]+" "$f" || true)
    if [ "$level" != may ] || [ "$peer" = exim ]; then
        [ -n "$tls" ] || { cell "$peer" "$peer->postern" "$level" FAIL "delivered without TLS"; return; }
    fi
    if [ "$peer" = exim ] && [ "$level" != may ]; then
        local x
        x=$(grep -F "$tag@$level.postern.test" "$E/log/mainlog" | grep -oE 'X=TLS[^ ]+' | head -n 1)
        [ -n "$x" ] || { cell "$peer" "$peer->postern" "$level" FAIL "Exim logged no TLS for the delivery"; return; }
        tls="$tls; exim: $x"
        if [ "$level" = verify ] || [ "$level" = mutual ]; then
            grep -F "$tag@$level.postern.test" "$E/log/mainlog" | grep -q 'CV=yes' \
                || { cell "$peer" "$peer->postern" "$level" FAIL "Exim did not verify Postern's certificate (no CV=yes)"; return; }
        fi
        if [ "$level" = mutual ]; then
            grep -q "Verified TLS connection established from" "$P/log" \
                || { cell "$peer" "$peer->postern" "$level" FAIL "Postern logged no verified client certificate"; return; }
        fi
    fi
    cell "$peer" "$peer->postern" "$level" ok "${tls:-plaintext}; $chk"
}

# Postern -> peer: submitted to Postern in clear, relayed with the level's policy.
outbound() { # PEER LEVEL MAILDIR LOG
    local peer=$1 level=$2 dir=$3 plog=$4 tag="out-$1-$2-$RANDOM" f chk tls
    local before
    before=$(wc -l <"$P/log")
    if ! python3 "$MAILPY" send "$P_PLAIN" "alice@postern.test" "$tag@$level.$peer.test" "$MSG/message.eml" "$tag" 2>"$WORK/err"; then
        cell "$peer" "postern->$peer" "$level" FAIL "submission to Postern refused: $(tail -n 1 "$WORK/err")"
        return
    fi
    if ! f=$(wait_file "$dir" "$tag@postern.test"); then
        cell "$peer" "postern->$peer" "$level" FAIL "not delivered by $peer within ${WAIT}s; Postern: $(tail -n "+$((before + 1))" "$P/log" | grep -E 'deferred|failed' | tail -n 1)"
        return
    fi
    if ! chk=$(python3 "$MAILPY" check "$f" "$MSG" 2>&1); then
        cell "$peer" "postern->$peer" "$level" FAIL "$chk"
        return
    fi
    tls=$(tail -n "+$((before + 1))" "$P/log" | grep -oE "(Verified|Trusted|Untrusted|Anonymous) TLS connection established to [^ ]+: TLSv[0-9.]+ with cipher [A-Z0-9_]+" | head -n 1 || true)
    if [ "$peer" = exim ]; then
        [ -n "$tls" ] || { cell "$peer" "postern->$peer" "$level" FAIL "Postern logged no TLS connection"; return; }
        local x
        x=$(grep -F "<= alice@postern.test" "$plog" | grep -F "$tag@" | grep -oE 'X=TLS[^ ]+' | head -n 1)
        [ -n "$x" ] || { cell "$peer" "postern->$peer" "$level" FAIL "Exim logged no TLS for the message"; return; }
        case $level in
            verify|mutual) [[ "$tls" == Verified* ]] \
                || { cell "$peer" "postern->$peer" "$level" FAIL "Postern did not verify Exim's certificate: $tls"; return; } ;;
        esac
        tls="${tls%% *} ${tls#* established to }; exim: $x"
        if [ "$level" = mutual ]; then
            grep -F "$tag@" "$plog" | grep -q 'CV=yes' \
                || { cell "$peer" "postern->$peer" "$level" FAIL "Exim did not verify Postern's client certificate"; return; }
        fi
    fi
    cell "$peer" "postern->$peer" "$level" ok "${tls:-plaintext}; $chk"
}

# Mandatory TLS towards a peer that offers none: Postern defers with the reason, and the
# peer never sees MAIL.
outbound_negative() { # PEER PEER_LOG PATTERN_NO_MAIL
    local peer=$1 plog=$2 tag="neg-$1-$RANDOM" before
    before=$(wc -l <"$P/log")
    python3 "$MAILPY" send "$P_PLAIN" "alice@postern.test" "$tag@neg.$peer.test" "$MSG/message.eml" "$tag" 2>/dev/null || true
    if ! wait_log "$P/log" "$tag@neg\.$peer\.test.*(deferred|4\.7\.)"; then
        cell "$peer" "postern->$peer" "encrypt (no STARTTLS)" FAIL "Postern did not defer"
        return
    fi
    local why
    why=$(grep -F "$tag@neg.$peer.test" "$P/log" | grep -oE '4\.7\.[0-9] .*' | sed 's/) queue_id=.*//' | head -n 1)
    if grep -qF "$tag" "$plog" 2>/dev/null || grep -rqF "$tag" "$3" 2>/dev/null; then
        cell "$peer" "postern->$peer" "encrypt (no STARTTLS)" FAIL "$peer saw the message"
        return
    fi
    # Exim logs a session that ended without MAIL (log_selector +smtp_no_mail).
    if [ "$peer" = exim ] && ! wait_log "$plog" "no MAIL in SMTP connection from .*I=\[127\.0\.0\.1\]:$E_PLAIN"; then
        cell "$peer" "postern->$peer" "encrypt (no STARTTLS)" FAIL "Exim logged no session without MAIL on its plaintext port"
        return
    fi
    cell "$peer" "postern->$peer" "encrypt (no STARTTLS)" ok "deferred, $peer never saw MAIL: ${why:-see log}"
}

inbound_negative_exim() {
    local tag="neg-in-exim-$RANDOM"
    python3 "$MAILPY" send "$E_IN" "sender@exim.test" "$tag@neg.postern.test" "$MSG/message.eml" "$tag" 2>/dev/null || true
    if ! wait_log "$E/log/mainlog" "$tag@neg\.postern\.test.* defer "; then
        cell exim "exim->postern" "encrypt (no STARTTLS)" FAIL "Exim did not defer"
        return
    fi
    if [ -d "$P/state/mail/$tag" ]; then
        cell exim "exim->postern" "encrypt (no STARTTLS)" FAIL "delivered in clear"
        return
    fi
    cell exim "exim->postern" "encrypt (no STARTTLS)" ok "Exim deferred: $(grep -F "$tag@neg" "$E/log/mainlog" | grep -oE 'defer \(-?[0-9]+\).*' | head -n 1 | cut -c1-110)"
}

# Negative case of verify, Postern -> Exim: the name does not match; Postern defers
# with 4.7.5 and Exim never sees the message.
outbound_badname_exim() {
    local tag="badname-exim-$RANDOM" why
    python3 "$MAILPY" send "$P_PLAIN" "alice@postern.test" "$tag@badname.exim.test" "$MSG/message.eml" "$tag" 2>/dev/null || true
    if ! wait_log "$P/log" "$tag@badname\.exim\.test.*4\.7\.5"; then
        cell exim "postern->exim" "verify (wrong name)" FAIL "Postern did not defer with 4.7.5"
        return
    fi
    why=$(grep -F "$tag@badname.exim.test" "$P/log" | grep -oE '4\.7\.5 .*' | sed 's/) queue_id=.*//' | head -n 1)
    if grep -qF "$tag" "$E/log/mainlog" || grep -rqF "$tag" "$E/mail"; then
        cell exim "postern->exim" "verify (wrong name)" FAIL "Exim saw the message"
        return
    fi
    cell exim "postern->exim" "verify (wrong name)" ok "deferred, Exim never saw MAIL: $why"
}

# Negative case of mutual, Exim -> Postern: no client certificate, no session.
inbound_nocert_exim() {
    local tag="nocert-exim-$RANDOM"
    python3 "$MAILPY" send "$E_IN" "sender@exim.test" "$tag@nocert.postern.test" "$MSG/message.eml" "$tag" 2>/dev/null || true
    if ! wait_log "$E/log/mainlog" "$tag@nocert\.postern\.test.* defer "; then
        cell exim "exim->postern" "mutual (no client cert)" FAIL "Exim did not defer"
        return
    fi
    if [ -d "$P/state/mail/$tag" ]; then
        cell exim "exim->postern" "mutual (no client cert)" FAIL "delivered without a client certificate"
        return
    fi
    cell exim "exim->postern" "mutual (no client cert)" ok "Exim deferred: $(grep -F "$tag@nocert" "$E/log/mainlog" | grep -oE 'defer \(-?[0-9]+\).*' | head -n 1 | cut -c1-110)"
}

inbound_negative_smtpd() {
    local tag="neg-in-smtpd-$RANDOM"
    python3 "$MAILPY" send "$O_IN" "sender@smtpd.test" "$tag@neg.postern.test" "$MSG/message.eml" "$tag" 2>/dev/null || true
    sleep 3
    if [ -d "$P/state/mail/$tag" ]; then
        cell smtpd "smtpd->postern" "encrypt (no STARTTLS)" FAIL "delivered in clear"
        return
    fi
    cell smtpd "smtpd->postern" "encrypt (no STARTTLS)" ok "not delivered in clear: $(grep -E 'TLS|tls' "$O/log" | tail -n 1 | cut -c1-90)"
}

# A 550 from the peer: Postern's bounce parses as a delivery report in Python's email.
dsn_cell() { # PEER
    local peer=$1 tag="dsn-$1-$RANDOM" f out
    python3 "$MAILPY" send "$P_PLAIN" "$tag@postern.test" "reject@dsn.$peer.test" "$MSG/message.eml" "$tag" 2>/dev/null || true
    if ! f=$(wait_file "$P/state/mail/$tag/new" "reject@dsn.$peer.test"); then
        cell "$peer" "postern->$peer" "DSN (550)" FAIL "no bounce within ${WAIT}s"
        return
    fi
    if ! out=$(python3 "$MAILPY" dsn "$f" 2>&1); then
        cell "$peer" "postern->$peer" "DSN (550)" FAIL "$out"
        return
    fi
    case $out in
        "failed 5."*) cell "$peer" "postern->$peer" "DSN (550)" ok "bounce parses as a delivery report: $out" ;;
        *) cell "$peer" "postern->$peer" "DSN (550)" FAIL "unexpected report fields: $out" ;;
    esac
}

# NOTIFY=SUCCESS towards a peer that does not offer DSN (Exim, dsn_advertise_hosts unset):
# Postern itself reports "relayed" (RFC 3461 §5.2.2), and the report parses.
relayed_cell() { # PEER
    local peer=$1 tag="relayed-$1-$RANDOM" f out
    python3 "$MAILPY" send "$P_PLAIN" "$tag@postern.test" "$tag@may.$peer.test" "$MSG/message.eml" "$tag" NOTIFY=SUCCESS 2>/dev/null || true
    if ! f=$(wait_file "$P/state/mail/$tag/new" "Action: relayed"); then
        cell "$peer" "postern->$peer" "DSN relayed (NOTIFY=SUCCESS)" FAIL "no relayed report within ${WAIT}s"
        return
    fi
    if ! out=$(python3 "$MAILPY" dsn "$f" 2>&1); then
        cell "$peer" "postern->$peer" "DSN relayed (NOTIFY=SUCCESS)" FAIL "$out"
        return
    fi
    case $out in
        "relayed 2."*) cell "$peer" "postern->$peer" "DSN relayed (NOTIFY=SUCCESS)" ok "$peer offers no DSN; Postern's relayed report parses: $out" ;;
        *) cell "$peer" "postern->$peer" "DSN relayed (NOTIFY=SUCCESS)" FAIL "unexpected report fields: $out" ;;
    esac
}

# An internationalised ORCPT as Postfix sends it (xtext of UTF-8), relayed by Exim with
# DSN: Postern used to refuse it with 501 5.5.4 (issue #16, defect 1).
orcpt_cell() {
    local tag="orcpt-exim-$RANDOM" f
    python3 "$MAILPY" send "$E_IN" "sender@exim.test" "$tag@may.postern.test" "$MSG/message.eml" "$tag" \
        "NOTIFY=FAILURE ORCPT=rfc822;j+C3+BCrgen@may.postern.test" 2>"$WORK/err" || {
        cell exim "exim->postern" "ORCPT (UTF-8 xtext)" FAIL "Exim refused it: $(tail -n 1 "$WORK/err")"
        return
    }
    if ! f=$(wait_file "$P/state/mail/$tag/new" "$tag@postern.test"); then
        cell exim "exim->postern" "ORCPT (UTF-8 xtext)" FAIL "not delivered; Exim: $(grep -F "$tag@may" "$E/log/mainlog" | tail -n 1 | cut -c1-150)"
        return
    fi
    grep -F "$tag@may" "$E/log/mainlog" | grep -q "=> " \
        || { cell exim "exim->postern" "ORCPT (UTF-8 xtext)" FAIL "Exim logged no delivery"; return; }
    cell exim "exim->postern" "ORCPT (UTF-8 xtext)" ok "accepted and delivered with NOTIFY=FAILURE ORCPT=rfc822;j+C3+BCrgen@... relayed by Exim"
}

# Exim, both directions.
for l in $LEVELS; do inbound exim "$E_IN" "$l"; done
inbound_negative_exim
inbound_nocert_exim
for l in $LEVELS; do outbound exim "$l" "$E/mail/new" "$E/log/mainlog"; done
outbound_negative exim "$E/log/mainlog" "$E/mail"
outbound_badname_exim
dsn_cell exim
relayed_cell exim
orcpt_cell

# OpenSMTPD: plaintext always, TLS cells only when its TLS works.
inbound smtpd "$O_IN" may
outbound smtpd may "$O/mail/new" "$O/log"
if [ "$SMTPD_TLS" = yes ]; then
    inbound smtpd "$O_IN" encrypt
    inbound_negative_smtpd
    outbound smtpd encrypt "$O/mail/new" "$O/log"
    outbound_negative smtpd "$O/log" "$O/mail"
    for l in verify mutual; do
        cell smtpd "smtpd->postern" "$l" not-run "OpenSMTPD's TLS works now: configure this cell in tests/interop/peers/run.sh"
        cell smtpd "postern->smtpd" "$l" not-run "OpenSMTPD's TLS works now: configure this cell in tests/interop/peers/run.sh"
    done
else
    for l in encrypt verify mutual; do
        cell smtpd "smtpd->postern" "$l" "known-broken-upstream" "$SMTPD_BROKEN"
        cell smtpd "postern->smtpd" "$l" "known-broken-upstream" "$SMTPD_BROKEN"
    done
fi
dsn_cell smtpd

# --- the grid ------------------------------------------------------------------------------

grid() {
    echo "| Peer | Direction | Level | Result | TLS and content checked |"
    echo "|---|---|---|---|---|"
    local row peer dir level res detail
    for row in "${GRID[@]}"; do
        IFS='|' read -r peer dir level res detail <<<"$row"
        printf '| %s | %s | %s | %s | %s |\n' "$peer" "$dir" "$level" "$res" "$detail"
    done
}
echo
echo "# peer matrix (postern $POSTERN_VERSION, exim $EXIM_VERSION, opensmtpd $SMTPD_VERSION):"
grid | sed 's/^/# /'
if [ "${POSTERN_INTEROP_DOCS:-0}" = 1 ] && [ -w "$REPO_ROOT/docs" ]; then
    {
        cat <<EOF
# Interop grid

Written by \`tests/interop/peers/run.sh\` (part of \`tests/interop/run.sh\`) at its last
run: $(date -u '+%Y-%m-%d %H:%M UTC'). Postern $POSTERN_VERSION against Exim $EXIM_VERSION and
OpenSMTPD $SMTPD_VERSION from Debian packages (unpacked, never installed), both
directions, on loopback in a private namespace. Every delivered cell compares the
SHA-256 of the 8-bit UTF-8 text part and of a 2 MiB attachment with what was sent, and
shows the TLS version and cipher each side logged. "encrypt (no STARTTLS)" is the
negative case of a mandatory level: the message must not go in clear; "verify (wrong
name)" and "mutual (no client cert)" are those of verify and mutual TLS. "DSN (550)": the
peer refuses the recipient and Postern's bounce must parse, in Python's \`email\`, as a
delivery report (\`multipart/report; report-type=delivery-status\`). "DSN relayed":
\`NOTIFY=SUCCESS\` to a peer without DSN gets Postern's own "relayed" report (RFC 3461
§5.2.2). "ORCPT (UTF-8 xtext)": Exim relays \`ORCPT=rfc822;j+C3+BCrgen@...\` (as
Postfix sends it) and Postern must accept it. Postfix has its
own suite (\`tests/interop/postfix/run.sh\`, \`tests/interop/tls/run.sh\`).

Levels: may = opportunistic; encrypt = TLS required, no certificate check; verify =
certificate checked against the test CA and the host name (Postern's \`secure\` with
\`match\`); mutual = verify plus a client certificate checked by the receiver.

$(grid)

Result: $PASSED passed, $FAILED failed, $BROKEN not run (known broken upstream).
EOF
    } >"$REPO_ROOT/docs/interop.md"
fi
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
