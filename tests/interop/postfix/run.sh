#!/usr/bin/env bash
# Postfix interop: a real Postfix and the real postern binary relay to each other over
# mutually verified TLS, all on 127.0.0.1 and without DNS.
#
#   tests/interop/postfix/run.sh
#
# (a) Postfix -> Postern: a private Postfix instance relays to Postern with
#     smtp_tls_security_level = secure (it verifies Postern's certificate against a test
#     CA and the name mx.postern.test).
# (b) Postern -> Postfix: the same Postfix instance receives mail for partner.test with
#     smtpd_tls_security_level = encrypt and smtpd_tls_req_ccert = yes (it verifies the
#     client certificate against the test CA). swaks first checks the Postfix side
#     alone (with Postern's client certificate), then Postern's outbound relay sends.
#
# POSTERN_BIN overrides the binary (default: target/debug/postern in the repository).
# Postfix (and swaks, openssl) are installed with apt-get when missing; the system
# Postfix is neither configured nor started. Prints "ok - ..." / "not ok - ..." /
# "skip - ..." lines and ends with "N passed, M failed" (skips not counted); the exit
# status is 0 only when M is 0. See README.md beside this file.
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
INTEROP_DIR=$(cd -- "$SCRIPT_DIR/.." && pwd)
REPO_ROOT=$(cd -- "$INTEROP_DIR/../.." && pwd)
LOOPBACK_DNS="$INTEROP_DIR/lib/loopback-dns.sh"
BIN=${POSTERN_BIN:-$REPO_ROOT/target/debug/postern}
MAILPY="$INTEROP_DIR/peers/mail.py"   # "mail.py dsn FILE": parses a bounce as a DSN
DSN_UNKNOWN=unknown@partner.test      # the one address Postfix refuses with 550 5.1.1

DELIVERY_WAIT=20   # seconds to wait for a message to arrive (or be deferred)
PEER_TIMEOUT=30    # seconds any single peer command may run

PASSED=0
FAILED=0
SKIPPED=0
COMPLETED=0

WORK=
PF_ETC=
POSTFIX_STARTED=0
POSTERN_PGIDS=()

# shellcheck source=../lib/harness.sh
. "$INTEROP_DIR/lib/harness.sh"
# shellcheck source=../lib/postfix.sh
. "$INTEROP_DIR/lib/postfix.sh"

# Always: stop Postfix and Postern, remove the temp dir, print the summary.
trap 'postfix_suite_cleanup "postfix interop"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- prerequisites ---------------------------------------------------------------------

wait_for_binary postfix-interop "$BIN"

install_missing() {
    local need=()
    command -v postfix >/dev/null 2>&1 && [ -x /usr/lib/postfix/sbin/master ] || need+=(postfix)
    command -v swaks >/dev/null 2>&1 || need+=(swaks)
    command -v openssl >/dev/null 2>&1 || need+=(openssl)
    perl -MNet::SSLeay -e 1 >/dev/null 2>&1 || need+=(libnet-ssleay-perl)
    command -v python3 >/dev/null 2>&1 || need+=(python3)
    command -v unshare >/dev/null 2>&1 || need+=(util-linux)
    command -v setsid >/dev/null 2>&1 || need+=(util-linux)
    command -v timeout >/dev/null 2>&1 || need+=(coreutils)
    [ "${#need[@]}" -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "postfix-interop: missing ${need[*]}; run as root so they can be installed" >&2
        exit 1
    fi
    postfix_install_quietly postfix-interop "${need[@]}"
}
install_missing

if ! "$LOOPBACK_DNS" true >/dev/null 2>&1; then
    echo "postfix-interop: $LOOPBACK_DNS cannot create a private mount namespace (needs root)" >&2
    exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "postfix-interop: must run as root (a private Postfix instance needs it)" >&2
    exit 1
fi

POSTFIX_VERSION=$(postconf -d -h mail_version 2>/dev/null || echo unknown)

# Every third-party peer runs with DNS confined to loopback and a hard time limit.
peer() {
    timeout --kill-after=5 "$PEER_TIMEOUT" "$LOOPBACK_DNS" "$@"
}

# --- layout ------------------------------------------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/postern-postfix.XXXXXX")
# Postfix daemons (user postfix) and the virtual delivery agent (user nobody) must be
# able to reach their directories below it.
chmod 755 "$WORK"
CA="$WORK/ca"
PF="$WORK/postfix"
PF_ETC="$PF/etc"
PF_SPOOL="$PF/spool"
PF_DATA="$PF/data"
PF_LOG="$PF/postfix.log"
VMAIL="$PF/vmail"
PA="$WORK/postern-a"
PB="$WORK/postern-b"
mkdir -p "$CA" "$PF_ETC" "$PF_SPOOL" "$PF_DATA" "$VMAIL" "$PA/state" "$PB/state"
chmod 755 "$PF" "$PF_ETC" "$PF_SPOOL"
chown postfix: "$PF_DATA"
chmod 700 "$PF_DATA"
chown nobody:nogroup "$VMAIL"
NOBODY_UID=$(id -u nobody)
NOBODY_GID=$(getent group nogroup | cut -d: -f3)

read -r PF_PORT PA_PORT PA_BADNAME_PORT PB_PORT < <(pick_ports 4) \
    || { echo "postfix-interop: python3 could not pick free ports" >&2; exit 1; }

echo "# postfix $POSTFIX_VERSION (private instance, config $PF_ETC), smtpd 127.0.0.1:$PF_PORT"
echo "# postern $("$BIN" --version 2>/dev/null | awk '{print $2}'): (a) 127.0.0.1:$PA_PORT, bad-name 127.0.0.1:$PA_BADNAME_PORT; (b) 127.0.0.1:$PB_PORT"

# --- the test CA and its certificates (ECDSA P-256, SHA-256) -------------------------

# issue NAME SUBJECT_CN SAN EKU: $CA/NAME.pem (leaf only) and $CA/NAME.key (PKCS#8).
issue() {
    local name=$1 cn=$2 san=$3 eku=$4
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$CA/$name.key" 2>/dev/null
    openssl req -new -key "$CA/$name.key" -subj "/O=Postern interop/CN=$cn" -out "$CA/$name.csr" 2>/dev/null
    cat >"$CA/$name.ext" <<EOF
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = $eku
subjectAltName = $san
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
    openssl x509 -req -in "$CA/$name.csr" -CA "$CA/ca.pem" -CAkey "$CA/ca.key" -CAcreateserial \
        -days 2 -sha256 -extfile "$CA/$name.ext" -out "$CA/$name.pem" 2>/dev/null
}

make_ca() {
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$CA/ca.key" 2>/dev/null
    openssl req -x509 -new -key "$CA/ca.key" -sha256 -days 2 \
        -subj "/O=Postern interop/CN=Postern Interop Test CA" \
        -addext "basicConstraints = critical, CA:TRUE" \
        -addext "keyUsage = critical, keyCertSign, cRLSign" \
        -addext "subjectKeyIdentifier = hash" \
        -out "$CA/ca.pem" 2>/dev/null
    # Postern as a server, and as a client (for direction b), both mx.postern.test.
    issue postern-server mx.postern.test "DNS:mx.postern.test" serverAuth
    issue postern-client mx.postern.test "DNS:mx.postern.test" clientAuth
    # Postfix as the partner's server.
    issue partner-server mx.partner.test "DNS:mx.partner.test" serverAuth
    chmod 600 "$CA"/*.key
}

t_ca() {
    local name="test CA issues Postern server/client and Postfix server certificates"
    local out
    if ! out=$(make_ca 2>&1); then
        not_ok "$name" "openssl failed:" "$out"
        return 1
    fi
    local n purpose
    for n in postern-server:sslserver postern-client:sslclient partner-server:sslserver; do
        purpose=${n#*:}
        n=${n%%:*}
        if ! out=$(openssl verify -CAfile "$CA/ca.pem" -purpose "$purpose" "$CA/$n.pem" 2>&1); then
            not_ok "$name" "openssl verify -purpose $purpose $n.pem:" "$out"
            return 1
        fi
    done
    ok "$name"
}

# --- Postern -------------------------------------------------------------------------

# write_postern_a: Postern as the receiving side of direction (a).
write_postern_a() {
    cat >"$PA/postern.toml" <<EOF
# Written by tests/interop/postfix/run.sh: Postern receives from Postfix (direction a).
[server]
hostname = "mx.postern.test"
state_dir = "$PA/state"

[[tls.certificate]]
chain = "$CA/postern-server.pem"
key = "$CA/postern-server.key"

[[listener]]
address = "127.0.0.1:$PA_PORT"
mode = "starttls"

# Postfix is told to expect another name on this port: it must refuse to deliver here.
[[listener]]
address = "127.0.0.1:$PA_BADNAME_PORT"
mode = "starttls"

[relay]
local_domains = ["postern.test", "badname.postern.test"]
trusted_networks = []

[[route]]
domain = "postern.test"
next_hop = "maildir:mail"

[[route]]
domain = "badname.postern.test"
next_hop = "maildir:badname"
EOF
}

# ======================================================================================
# write_postern_b: Postern as the SENDING side of direction (b).
#
# The route's next hop is the IP literal [127.0.0.1], so "nexthop" would be 127.0.0.1,
# which Postfix's certificate (SAN mx.partner.test only) does not carry. The policy
# therefore names the expected host explicitly, as direction (a) does with Postfix's
# "match=mx.postern.test".
# ======================================================================================
write_postern_b() {
    cat >"$PB/postern.toml" <<EOF
# Written by tests/interop/postfix/run.sh: Postern relays to Postfix (direction b).
[server]
hostname = "mx.postern.test"
state_dir = "$PB/state"

[[tls.certificate]]
chain = "$CA/postern-server.pem"
key = "$CA/postern-server.key"

[[listener]]
address = "127.0.0.1:$PB_PORT"
mode = "starttls"

# bounces.postern.test: where the DSN test's sender gets Postern's bounce.
[relay]
local_domains = ["bounces.postern.test"]
trusted_networks = ["127.0.0.0/8"]

[outbound]
tls = "may"
client_certificate = { chain = "$CA/postern-client.pem", key = "$CA/postern-client.key" }

[[outbound.policy]]
domain = "partner.test"
tls = "secure"
match = ["mx.partner.test"]
ca = "$CA/ca.pem"
client_certificate = true

[[route]]
domain = "partner.test"
next_hop = "smtp:[127.0.0.1]:$PF_PORT"

[[route]]
domain = "bounces.postern.test"
next_hop = "maildir:mail"
EOF
}

# start_postern DIR: run "$BIN serve -c DIR/postern.toml" (DNS confined to loopback) in
# its own process group; wait up to 10 s for "started" in DIR/postern.log.
start_postern() {
    local dir=$1 pid
    NO_COLOR=1 RUST_LOG=info setsid "$LOOPBACK_DNS" "$BIN" serve -c "$dir/postern.toml" --log-format text \
        >"$dir/postern.stdout" 2>"$dir/postern.log" </dev/null &
    pid=$!
    POSTERN_PGIDS+=("$pid")
    for _ in $(seq 100); do
        grep -q "started" "$dir/postern.log" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    return 1
}

# --- the private Postfix instance -----------------------------------------------------

write_postfix() {
    {
        echo "# Written by tests/interop/postfix/run.sh: a private instance, started with"
        echo "# \"postfix -c $PF_ETC start\". Nothing here touches /etc/postfix."
        postfix_main_cf "$PF_ETC" "$PF_SPOOL" "$PF_DATA" "$PF_LOG" "$WORK"
        cat <<EOF
syslog_name = postfix-interop
myhostname = mx.partner.test
mydomain = partner.test
myorigin = partner.test
append_dot_mydomain = no
biff = no
lmtp_host_lookup = native

# No local delivery: partner.test is a virtual mailbox domain, every address of it
# delivered to one Maildir, $VMAIL/partner/.
local_recipient_maps =
local_transport = error:5.1.1 no local delivery in this instance
virtual_mailbox_domains = partner.test
virtual_mailbox_base = $VMAIL
virtual_mailbox_maps = static:partner/
virtual_uid_maps = static:$NOBODY_UID
virtual_gid_maps = static:$NOBODY_GID

# Direction (a): everything else goes to Postern, over TLS verified against the test
# CA and the name mx.postern.test (the next hop is an IP literal, so the name is given
# in the policy table).
relayhost = [127.0.0.1]:$PA_PORT
transport_maps = texthash:$PF_ETC/transport
smtp_tls_security_level = secure
smtp_tls_CAfile = $CA/ca.pem
smtp_tls_secure_cert_match = nexthop
smtp_tls_policy_maps = texthash:$PF_ETC/tls_policy
smtp_tls_loglevel = 1

# Direction (b): mandatory TLS, and a client certificate issued by the test CA.
smtpd_tls_security_level = encrypt
smtpd_tls_ask_ccert = yes
smtpd_tls_req_ccert = yes
smtpd_tls_CAfile = $CA/ca.pem
smtpd_tls_chain_files = $CA/partner-server.key, $CA/partner-server.pem
smtpd_tls_loglevel = 1
smtpd_tls_received_header = yes

# One unknown user: refused at RCPT with 550 5.1.1 (the DSN test); every other
# partner.test address is accepted as before.
smtpd_recipient_restrictions = check_recipient_access texthash:$PF_ETC/rcpt_access

# Keep retries quick and bounded: nothing here should wait long.
minimal_backoff_time = 10s
maximal_backoff_time = 20s
queue_run_delay = 10s
EOF
    } >"$PF_ETC/main.cf"

    cat >"$PF_ETC/tls_policy" <<EOF
[127.0.0.1]:$PA_PORT secure match=mx.postern.test
[127.0.0.1]:$PA_BADNAME_PORT secure match=wrong-name.postern.test
EOF
    cat >"$PF_ETC/rcpt_access" <<EOF
$DSN_UNKNOWN 550 5.1.1 User unknown
EOF
    cat >"$PF_ETC/transport" <<EOF
badname.postern.test smtp:[127.0.0.1]:$PA_BADNAME_PORT
EOF

    postfix_master_cf "127.0.0.1:$PF_PORT inet n - n - - smtpd" \
        "proxywrite unix  - - n -    1 proxymap" \
        "local      unix  - n n -    - local" \
        "virtual    unix  - n n -    - virtual" \
        "lmtp       unix  - - n -    - lmtp" >"$PF_ETC/master.cf"
}

t_postfix_start() {
    local name="private Postfix $POSTFIX_VERSION starts with its own config, queue and data directories"
    local out
    write_postfix
    if ! out=$(peer postfix -c "$PF_ETC" start 2>&1); then
        not_ok "$name" "postfix -c $PF_ETC start failed:" "$out" "$(tail -n 20 "$PF_LOG" 2>/dev/null)"
        return 1
    fi
    POSTFIX_STARTED=1
    for _ in $(seq 100); do
        if postfix -c "$PF_ETC" status >/dev/null 2>&1 \
            && python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$PF_PORT" 2>/dev/null; then
            ok "$name"
            return 0
        fi
        sleep 0.1
    done
    not_ok "$name" "Postfix is not running or not listening on 127.0.0.1:$PF_PORT" "$out" "$(tail -n 20 "$PF_LOG" 2>/dev/null)"
    return 1
}

# --- helpers ---------------------------------------------------------------------------

# wait_for_file DIR MARKER: print a file under DIR containing MARKER (waits DELIVERY_WAIT).
wait_for_file() {
    local dir=$1 marker=$2 f
    for _ in $(seq $((DELIVERY_WAIT * 10))); do
        if [ -d "$dir" ]; then
            f=$(grep -rlF -- "$marker" "$dir" 2>/dev/null | head -n 1 || true)
            if [ -n "$f" ]; then
                printf '%s\n' "$f"
                return 0
            fi
        fi
        sleep 0.1
    done
    return 1
}

# wait_for_log FILE REGEX: wait until FILE has a line matching REGEX (ERE); print it.
wait_for_log() {
    local file=$1 re=$2 l
    for _ in $(seq $((DELIVERY_WAIT * 10))); do
        l=$(grep -E -- "$re" "$file" 2>/dev/null | head -n 1 || true)
        if [ -n "$l" ]; then
            printf '%s\n' "$l"
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# queue_id_of MARKER: the Postfix queue id whose cleanup logged message-id MARKER.
queue_id_of() {
    local l
    l=$(wait_for_log "$PF_LOG" "cleanup\[[0-9]+\]: [0-9A-F]+: message-id=<$1>") || return 1
    sed -E 's/.*cleanup\[[0-9]+\]: ([0-9A-F]+): message-id=.*/\1/' <<<"$l"
}

pf_log_tail() { tail -n 25 "$PF_LOG" 2>/dev/null || echo "(no Postfix log at $PF_LOG)"; }

# postfix_inject FROM TO SUBJECT MSGID: submit with Postfix's own sendmail (-C: the
# private instance), as a local program would.
postfix_inject() {
    printf 'From: <%s>\nTo: <%s>\nSubject: %s\nMessage-ID: <%s>\n\nsent through the private Postfix by sendmail -C\n' \
        "$1" "$2" "$3" "$4" \
        | peer /usr/sbin/sendmail -C "$PF_ETC" -f "$1" -- "$2"
}

# --- direction (a): Postfix relays into Postern, verifying Postern's certificate --------

t_postfix_to_postern() {
    local name="(a) Postfix relays to Postern with smtp_tls_security_level=secure: delivered, TLS verified on both sides"
    local id="a-$RANDOM$RANDOM@partner.test" subj="postfix-to-postern-$RANDOM" out f qid l
    if ! out=$(postfix_inject alice@partner.test someone@postern.test "$subj" "$id" 2>&1); then
        not_ok "$name" "sendmail -C $PF_ETC failed:" "$out"
        return 1
    fi
    if ! f=$(wait_for_file "$PA/state/mail/someone/new" "Subject: $subj"); then
        not_ok "$name" "expected: a file in $PA/state/mail/someone/new/ with 'Subject: $subj' within ${DELIVERY_WAIT}s" \
            "Postfix log:" "$(pf_log_tail)" "Postern log:" "$(tail -n 15 "$PA/postern.log")"
        return 1
    fi
    qid=$(queue_id_of "$id") || { not_ok "$name" "no cleanup line for message-id <$id>" "$(pf_log_tail)"; return 1; }
    # Postfix: the handshake verified the chain (test CA) and the name (mx.postern.test).
    if ! l=$(wait_for_log "$PF_LOG" "smtp\[[0-9]+\]: Verified TLS connection established to 127\.0\.0\.1\[127\.0\.0\.1\]:$PA_PORT: "); then
        not_ok "$name" "expected in the Postfix log: 'Verified TLS connection established to 127.0.0.1[127.0.0.1]:$PA_PORT'" "$(pf_log_tail)"
        return 1
    fi
    PROOF_A_VERIFIED=$l
    if ! l=$(wait_for_log "$PF_LOG" "$qid: to=<someone@postern\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:$PA_PORT, .*status=sent"); then
        not_ok "$name" "expected in the Postfix log: '$qid: to=<someone@postern.test>, relay=127.0.0.1[127.0.0.1]:$PA_PORT, ... status=sent'" "$(pf_log_tail)"
        return 1
    fi
    PROOF_A_SENT=$l
    # Postern: the TLS session it received the message on.
    if ! l=$(grep -E "TLS connection established from [^ ]*\[127\.0\.0\.1\]: TLSv1\.[23] " "$PA/postern.log" | head -n 1) || [ -z "$l" ]; then
        not_ok "$name" "expected in the Postern log: 'TLS connection established from ...[127.0.0.1]: TLSv1...'" "$(tail -n 20 "$PA/postern.log")"
        return 1
    fi
    PROOF_A_POSTERN=$l
    if ! grep -qF "with ESMTPS" "$f" || ! grep -qF "Received: from mx.partner.test" "$f"; then
        not_ok "$name" "expected the delivered message to have 'Received: from mx.partner.test ... with ESMTPS'" "$(cat "$f")"
        return 1
    fi
    ok "$name"
}

# Negative control: the same Postern certificate, but Postfix is told to expect another
# name. With verification really on, Postfix must defer, and nothing is delivered.
t_postfix_refuses_wrong_name() {
    local name="(a) Postfix defers instead of delivering when Postern's certificate does not match the expected name"
    local id="bad-$RANDOM$RANDOM@partner.test" subj="postfix-wrong-name-$RANDOM" out qid l
    if ! out=$(postfix_inject alice@partner.test someone@badname.postern.test "$subj" "$id" 2>&1); then
        not_ok "$name" "sendmail -C $PF_ETC failed:" "$out"
        return 1
    fi
    qid=$(queue_id_of "$id") || { not_ok "$name" "no cleanup line for message-id <$id>" "$(pf_log_tail)"; return 1; }
    if ! l=$(wait_for_log "$PF_LOG" "$qid: to=<someone@badname\.postern\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:$PA_BADNAME_PORT, .*status=deferred \(Server certificate not verified\)"); then
        not_ok "$name" "expected in the Postfix log: '$qid: to=<someone@badname.postern.test>, relay=...:$PA_BADNAME_PORT, ... status=deferred (Server certificate not verified)'" "$(pf_log_tail)"
        return 1
    fi
    PROOF_A_DEFERRED=$l
    if grep -rlqF -- "$subj" "$PA/state" 2>/dev/null; then
        not_ok "$name" "the message must not reach Postern, but it is stored:" "$(grep -rlF -- "$subj" "$PA/state")"
        return 1
    fi
    ok "$name"
}

# --- direction (b), Postfix side: smtpd requires TLS and a client certificate -----------

# swaks_to_postfix SUBJECT [SWAKS OPTIONS...]: one message to someone@partner.test.
swaks_to_postfix() {
    local subj=$1
    shift
    peer swaks --server 127.0.0.1 --port "$PF_PORT" --helo mx.postern.test --timeout 15 \
        --from sender@postern.test --to someone@partner.test \
        --header "Subject: $subj" --body "direction b stand-in" "$@" 2>&1
}

t_postfix_accepts_client_cert() {
    local name="(b) Postfix smtpd (encrypt, req_ccert) accepts a client presenting the test CA's certificate (swaks stand-in)"
    local subj="clientcert-ok-$RANDOM" out rc f l
    out=$(swaks_to_postfix "$subj" --tls --tls-cert "$CA/postern-client.pem" --tls-key "$CA/postern-client.key") && rc=0 || rc=$?
    if [ "$rc" -ne 0 ]; then
        not_ok "$name" "expected: swaks exits 0 (message accepted); got exit $rc" "$out" "Postfix log:" "$(pf_log_tail)"
        return 1
    fi
    if ! f=$(wait_for_file "$VMAIL/partner/new" "Subject: $subj"); then
        not_ok "$name" "expected: a file in $VMAIL/partner/new/ with 'Subject: $subj'" "$(pf_log_tail)"
        return 1
    fi
    # The Received: header Postfix adds names the client certificate and its verification.
    if ! grep -qF '(Client CN "mx.postern.test", Issuer "Postern Interop Test CA" (verified OK))' "$f"; then
        not_ok "$name" "expected in the delivered message: (Client CN \"mx.postern.test\", Issuer \"Postern Interop Test CA\" (verified OK))" "$(cat "$f")"
        return 1
    fi
    if ! l=$(wait_for_log "$PF_LOG" "smtpd\[[0-9]+\]: Trusted TLS connection established from [^ ]*\[127\.0\.0\.1\]: "); then
        not_ok "$name" "expected in the Postfix log: 'Trusted TLS connection established from ...[127.0.0.1]'" "$(pf_log_tail)"
        return 1
    fi
    PROOF_B_TRUSTED=$l
    PROOF_B_RECEIVED=$(grep -F '(verified OK)' "$f" | head -n 1)
    ok "$name"
}

t_postfix_refuses_no_client_cert() {
    local name="(b) Postfix smtpd refuses a TLS client without a client certificate"
    local subj="clientcert-missing-$RANDOM" out rc l
    out=$(swaks_to_postfix "$subj" --tls) && rc=0 || rc=$?
    if [ "$rc" -eq 0 ]; then
        not_ok "$name" "expected: swaks fails; it exited 0" "$out"
        return 1
    fi
    # swaks marks replies read over TLS "<~", and error replies with "*".
    if ! grep -qE '^<[~*-]?\* +421 4\.7\.1 .*No client certificate presented' <<<"$out"; then
        not_ok "$name" "expected: '421 4.7.1 ... Error: No client certificate presented' after STARTTLS (swaks exit $rc)" "$out" "$(pf_log_tail)"
        return 1
    fi
    if ! l=$(wait_for_log "$PF_LOG" "smtpd\[[0-9]+\]: NOQUEUE: abort: TLS from [^ ]*\[127\.0\.0\.1\]: No client certificate presented"); then
        not_ok "$name" "expected in the Postfix log: 'NOQUEUE: abort: TLS from ...[127.0.0.1]: No client certificate presented'" "$(pf_log_tail)"
        return 1
    fi
    PROOF_B_ABORT=$l
    PROOF_B_421=$(grep -E '^<[~*-]?\* +421' <<<"$out" | head -n 1)
    if grep -rlqF -- "$subj" "$VMAIL" 2>/dev/null; then
        not_ok "$name" "the refused message must not be delivered" "$(grep -rlF -- "$subj" "$VMAIL")"
        return 1
    fi
    ok "$name"
}

t_postfix_refuses_plaintext() {
    local name="(b) Postfix smtpd refuses MAIL without STARTTLS (530 5.7.0)"
    local subj="plaintext-$RANDOM" out rc
    out=$(swaks_to_postfix "$subj") && rc=0 || rc=$?
    if [ "$rc" -eq 0 ] || ! grep -qE '^<\*\* +530 5\.7\.0 Must issue a STARTTLS command first' <<<"$out"; then
        not_ok "$name" "expected: '530 5.7.0 Must issue a STARTTLS command first' (swaks exit $rc)" "$out"
        return 1
    fi
    ok "$name"
}

# ======================================================================================
# postern_relays_to_postfix: direction (b) with Postern itself as the client.
# ======================================================================================
postern_relays_to_postfix() {
    local name="(b) Postern relays to Postfix with a verified client certificate and verified server certificate"
    local subj="postern-to-postfix-$RANDOM" out rc f l
    write_postern_b
    if ! out=$("$BIN" check-config -c "$PB/postern.toml" 2>&1); then
        not_ok "$name" "postern check-config refuses the direction (b) configuration:" "$out" "config:" "$(cat "$PB/postern.toml")"
        return 1
    fi
    if ! start_postern "$PB"; then
        not_ok "$name" "Postern (b) did not start within 10 s; its log:" "$(tail -n 30 "$PB/postern.log")"
        return 1
    fi
    out=$(peer swaks --server 127.0.0.1 --port "$PB_PORT" --tls --helo client.postern.test --timeout 15 \
        --from sender@postern.test --to someone@partner.test \
        --header "Subject: $subj" --body "relayed by Postern to Postfix" 2>&1) && rc=0 || rc=$?
    if [ "$rc" -ne 0 ]; then
        not_ok "$name" "expected: Postern accepts the message for relay (swaks exit 0); got exit $rc" "$out"
        return 1
    fi
    if ! f=$(wait_for_file "$VMAIL/partner/new" "Subject: $subj"); then
        not_ok "$name" "expected: Postfix delivers it to $VMAIL/partner/new/" \
            "Postern log:" "$(tail -n 30 "$PB/postern.log")" "Postfix log:" "$(pf_log_tail)"
        return 1
    fi
    # Postfix verified Postern's client certificate ...
    if ! grep -qF '(Client CN "mx.postern.test", Issuer "Postern Interop Test CA" (verified OK))' "$f"; then
        not_ok "$name" "expected in the delivered message: (Client CN \"mx.postern.test\", ... (verified OK))" "$(cat "$f")"
        return 1
    fi
    if ! grep -qE "Received: from mx\.postern\.test" "$f"; then
        not_ok "$name" "expected the message to arrive from Postern (Received: from mx.postern.test)" "$(cat "$f")"
        return 1
    fi
    # ... and Postern verified Postfix's server certificate (policy secure).
    if ! l=$(wait_for_log "$PB/postern.log" "Verified TLS connection established to 127\.0\.0\.1\[127\.0\.0\.1\]:$PF_PORT: TLSv1\.[23] with cipher"); then
        not_ok "$name" "expected in the Postern log: a line saying the TLS connection to 127.0.0.1:$PF_PORT was verified" "$(tail -n 30 "$PB/postern.log")"
        return 1
    fi
    ok "$name"
}

# ======================================================================================
# postern_bounces_postfix_550: Postfix refuses one recipient with 550 5.1.1; Postern's
# bounce, delivered to the sender's Maildir, must parse in Python's email as a delivery
# report (issue #16, the "DSN (550)" cell of tests/interop/peers/run.sh). Needs Postern
# (b), started by postern_relays_to_postfix.
# ======================================================================================
postern_bounces_postfix_550() {
    local name="(b) Postfix refuses a recipient with 550 5.1.1: Postern's bounce parses in Python's email as a delivery report"
    local tag="dsn-postfix-$RANDOM" out rc f l
    local sender="$tag@bounces.postern.test"
    out=$(peer swaks --server 127.0.0.1 --port "$PB_PORT" --tls --helo client.postern.test --timeout 15 \
        --from "$sender" --to "$DSN_UNKNOWN" \
        --header "Subject: $tag" --body "Postfix refuses this recipient" 2>&1) && rc=0 || rc=$?
    if [ "$rc" -ne 0 ]; then
        not_ok "$name" "expected: Postern accepts the message for relay (swaks exit 0); got exit $rc" "$out"
        return 1
    fi
    if ! l=$(wait_for_log "$PF_LOG" "NOQUEUE: reject: RCPT from [^ ]*\[127\.0\.0\.1\]: 550 5\.1\.1 <$DSN_UNKNOWN>"); then
        not_ok "$name" "expected in the Postfix log: 'NOQUEUE: reject: RCPT ... 550 5.1.1 <$DSN_UNKNOWN>'" "$(pf_log_tail)"
        return 1
    fi
    if ! f=$(wait_for_file "$PB/state/mail/$tag/new" "$DSN_UNKNOWN"); then
        not_ok "$name" "expected: a bounce for $sender in $PB/state/mail/$tag/new/ naming $DSN_UNKNOWN" \
            "Postern log:" "$(tail -n 30 "$PB/postern.log")" "Postfix log:" "$(pf_log_tail)"
        return 1
    fi
    if ! out=$(python3 "$MAILPY" dsn "$f" 2>&1); then
        not_ok "$name" "the bounce does not parse as a delivery report: $out" "$(head -c 4000 "$f")"
        return 1
    fi
    case $out in
        "failed 5."*) ;;
        *)
            not_ok "$name" "expected report fields 'failed 5.x.x'; got: $out" "$(head -c 4000 "$f")"
            return 1
            ;;
    esac
    PROOF_B_DSN="$l => bounce: $out"
    ok "$name"
}

# ======================================================================================
# postern_requiretls_refused_by_postfix: a message submitted to Postern (b) with
# MAIL FROM ... REQUIRETLS (RFC 8689), inside TLS, for partner.test. Postfix does not
# offer REQUIRETLS, so Postern must not send it (no MAIL reaches Postfix) and must
# bounce it with 5.7.30, headers only (issue #13). Needs Postern (b), started by
# postern_relays_to_postfix.
# ======================================================================================
postern_requiretls_refused_by_postfix() {
    local name="(b) REQUIRETLS mail to Postfix (no REQUIRETLS offered): not sent, bounced with 5.7.30, headers only"
    local tag="requiretls-$RANDOM" out f flat
    local sender="$tag@bounces.postern.test"
    out=$(peer python3 - "$PB_PORT" "$sender" "$tag" <<'PY' 2>&1
import smtplib, ssl, sys
port, sender, tag = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
msg = ("From: %s\r\nTo: someone@partner.test\r\nSubject: %s\r\n\r\n"
       "secret body %s\r\n" % (sender, tag, tag))
with smtplib.SMTP("127.0.0.1", port, local_hostname="client.postern.test", timeout=15) as s:
    s.ehlo()
    if s.has_extn("requiretls"):
        print("FAIL: REQUIRETLS offered before STARTTLS"); sys.exit(1)
    s.starttls(context=ctx)
    s.ehlo()
    if not s.has_extn("requiretls"):
        print("FAIL: REQUIRETLS not offered after STARTTLS: %r" % s.esmtp_features); sys.exit(1)
    s.sendmail(sender, ["someone@partner.test"], msg, mail_options=["REQUIRETLS"])
    print("accepted with REQUIRETLS over %s" % s.sock.version())
PY
    ) || { not_ok "$name" "expected: Postern offers REQUIRETLS after STARTTLS and accepts the message" "$out"; return 1; }
    if ! f=$(wait_for_file "$PB/state/mail/$tag/new" "5.7.30"); then
        not_ok "$name" "expected: a 5.7.30 bounce for $sender in $PB/state/mail/$tag/new/" \
            "Postern log:" "$(tail -n 30 "$PB/postern.log")" "Postfix log:" "$(pf_log_tail)"
        return 1
    fi
    flat=$(tr -d '\r' <"$f" | tr -s ' \n\t' ' ')
    if ! grep -qF "5.7.30 REQUIRETLS: next hop 127.0.0.1[127.0.0.1] did not offer REQUIRETLS" <<<"$flat"; then
        not_ok "$name" "expected in the bounce: '5.7.30 REQUIRETLS: next hop 127.0.0.1[127.0.0.1] did not offer REQUIRETLS'" "$(head -c 4000 "$f")"
        return 1
    fi
    if ! grep -q '^Content-Type: text/rfc822-headers' <(tr -d '\r' <"$f") || grep -qF "secret body $tag" "$f"; then
        not_ok "$name" "expected: the original's headers only (text/rfc822-headers, no body)" "$(head -c 4000 "$f")"
        return 1
    fi
    if grep -qF "$sender" "$PF_LOG"; then
        not_ok "$name" "expected: Postfix never saw the sender (no MAIL FROM); its log names it" "$(pf_log_tail)"
        return 1
    fi
    if ! out=$(python3 "$MAILPY" dsn "$f" 2>&1) || [ "${out#failed 5.7.30}" = "$out" ]; then
        not_ok "$name" "expected report fields 'failed 5.7.30'; got: $out" "$(head -c 4000 "$f")"
        return 1
    fi
    PROOF_B_REQUIRETLS="bounce: $out"
    ok "$name"
}

# --- run -------------------------------------------------------------------------------

# The tests fill these in; they are printed at the end (read by name, hence SC2034).
# shellcheck disable=SC2034
{
    PROOF_A_VERIFIED='' PROOF_A_SENT='' PROOF_A_POSTERN='' PROOF_A_DEFERRED=''
    PROOF_B_TRUSTED='' PROOF_B_RECEIVED='' PROOF_B_ABORT='' PROOF_B_421='' PROOF_B_DSN=''
    PROOF_B_REQUIRETLS=''
}

if t_ca; then
    write_postern_a
    if start_postern "$PA"; then
        POSTERN_A_UP=1
    else
        POSTERN_A_UP=0
        not_ok "Postern (direction a) starts with the test CA's certificate" "$(tail -n 30 "$PA/postern.log")"
    fi
    if t_postfix_start; then
        if [ "$POSTERN_A_UP" -eq 1 ]; then
            t_postfix_to_postern || true
            t_postfix_refuses_wrong_name || true
        fi
        t_postfix_accepts_client_cert || true
        t_postfix_refuses_no_client_cert || true
        t_postfix_refuses_plaintext || true
        if postern_relays_to_postfix; then
            postern_bounces_postfix_550 || true
            postern_requiretls_refused_by_postfix || true
        fi
    fi
fi

# The log lines that show verification, for the record.
for p in PROOF_A_VERIFIED PROOF_A_SENT PROOF_A_POSTERN PROOF_A_DEFERRED PROOF_B_TRUSTED PROOF_B_RECEIVED PROOF_B_421 PROOF_B_ABORT PROOF_B_DSN PROOF_B_REQUIRETLS; do
    [ -n "${!p}" ] && printf '# %s: %s\n' "$p" "$(tr -d '\r' <<<"${!p}")"
done

COMPLETED=1
