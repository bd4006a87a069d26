#!/usr/bin/env bash
# Interop tests: the real postern binary against real third-party SMTP/TLS peers
# (swaks, openssl s_client, Python's smtplib and ssl), all on 127.0.0.1 only.
#
#   cargo build && tests/interop/run.sh
#
# POSTERN_BIN overrides the binary (default: target/debug/postern in the repository).
# Missing tools (swaks, openssl) are installed with apt-get. The last line printed is
# "N passed, M failed"; the exit status is 0 only when M is 0.
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd -- "$SCRIPT_DIR/../.." && pwd)
LOOPBACK_DNS="$SCRIPT_DIR/lib/loopback-dns.sh"
BIN=${POSTERN_BIN:-$REPO_ROOT/target/debug/postern}

HOSTNAME_MX=mx.interop.test
HELO=client.interop.test
LOCAL_DOMAIN=interop.test
DELIVERY_WAIT=15   # seconds to wait for a message to reach its Maildir
PEER_TIMEOUT=30    # seconds any single peer command may run

# shellcheck source=lib/harness.sh
. "$SCRIPT_DIR/lib/harness.sh"

# --- prerequisites -------------------------------------------------------------------

if [ ! -x "$BIN" ]; then
    echo "interop: postern binary not found at $BIN" >&2
    echo "interop: run 'cargo build' first (or set POSTERN_BIN to the binary to test)" >&2
    exit 1
fi

install_missing() {
    local need=()
    command -v swaks >/dev/null 2>&1 || need+=(swaks)
    command -v openssl >/dev/null 2>&1 || need+=(openssl)
    # swaks only Recommends the TLS module, which --no-install-recommends leaves out.
    perl -MNet::SSLeay -e 1 >/dev/null 2>&1 || need+=(libnet-ssleay-perl)
    command -v python3 >/dev/null 2>&1 || need+=(python3)
    command -v unshare >/dev/null 2>&1 || need+=(util-linux)
    command -v mount >/dev/null 2>&1 || need+=(mount)
    command -v timeout >/dev/null 2>&1 || need+=(coreutils)
    [ "${#need[@]}" -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "interop: missing ${need[*]}; run as root so they can be installed with apt-get" >&2
        exit 1
    fi
    apt_install interop "${need[@]}"
}
install_missing

if ! "$LOOPBACK_DNS" true >/dev/null 2>&1; then
    echo "interop: $LOOPBACK_DNS cannot create a private mount namespace (needs root / CAP_SYS_ADMIN);" >&2
    echo "interop: refusing to run peers that might resolve names through the real DNS" >&2
    exit 1
fi

# --- the server under test -----------------------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/postern-interop.XXXXXX")
STATE="$WORK/state"
CFG="$WORK/postern.toml"
LOG="$WORK/postern.log"
SERVER_PID=

cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf -- "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Three distinct free ports on 127.0.0.1, held open together while they are chosen.
write_config() {
    cat >"$CFG" <<EOF
# Written by tests/interop/run.sh
[server]
hostname = "$HOSTNAME_MX"
state_dir = "$STATE"

[[listener]]
address = "127.0.0.1:$PORT_STARTTLS"
mode = "starttls"

[[listener]]
address = "127.0.0.1:$PORT_IMPLICIT"
mode = "implicit-tls"

[[listener]]
address = "127.0.0.1:$PORT_REQUIRE"
mode = "starttls"
require_tls = true

[relay]
local_domains = ["$LOCAL_DOMAIN"]
trusted_networks = []

[[route]]
domain = "$LOCAL_DOMAIN"
next_hop = "maildir:mail"
EOF
}

# start_server: start postern and wait (at most 10 s) until its log says "started".
start_server() {
    NO_COLOR=1 RUST_LOG=info "$BIN" serve -c "$CFG" --log-format text >"$WORK/postern.stdout" 2>"$LOG" &
    SERVER_PID=$!
    for _ in $(seq 100); do
        grep -q "started" "$LOG" 2>/dev/null && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
    return 1
}

# A port picked above may be taken by someone else before postern binds it: try again
# with fresh ports, but only for that reason.
attempt=1
while :; do
    read -r PORT_STARTTLS PORT_IMPLICIT PORT_REQUIRE < <(pick_ports) \
        || { echo "interop: python3 could not pick free ports" >&2; exit 1; }
    write_config
    start_server && break
    if [ "$attempt" -lt 3 ] && grep -qi "address already in use" "$LOG"; then
        attempt=$((attempt + 1))
        continue
    fi
    echo "interop: postern did not start within 10 s; its log ($LOG):" >&2
    cat "$LOG" >&2 || true
    exit 1
done
echo "interop: postern $("$BIN" --version 2>/dev/null | awk '{print $2}') pid $SERVER_PID: starttls=127.0.0.1:$PORT_STARTTLS implicit-tls=127.0.0.1:$PORT_IMPLICIT require-tls=127.0.0.1:$PORT_REQUIRE"

# --- helpers -------------------------------------------------------------------------

PASSED=0
FAILED=0
EXPECTED=
ACTUAL=

# Every third-party peer runs with DNS confined to loopback and a hard time limit.
peer() {
    timeout --kill-after=5 "$PEER_TIMEOUT" "$LOOPBACK_DNS" "$@"
}

# Fail the current test: what was expected, what came back.
bad() {
    EXPECTED=$1
    ACTUAL=$2
    return 1
}

# log_since N: the server log after its first N lines.
log_lines() { wc -l <"$LOG" | tr -d ' '; }
log_since() { tail -n "+$(($1 + 1))" "$LOG"; }

# wait_for_delivery USER MARKER: print the path of a message in USER's Maildir (new/)
# that contains MARKER, waiting up to DELIVERY_WAIT seconds. Fails when none arrives.
wait_for_delivery() {
    local dir="$STATE/mail/$1/new" marker=$2 f
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

# has FILE TEXT: FILE has TEXT (fixed string) somewhere.
has() { grep -qF -- "$2" "$1"; }

run_test() {
    local name=$1 fn=$2 before
    EXPECTED=
    ACTUAL=
    before=$(log_lines)
    if "$fn"; then
        PASSED=$((PASSED + 1))
        echo "ok     - $name"
    else
        FAILED=$((FAILED + 1))
        echo "FAILED - $name"
        echo "  expected: ${EXPECTED:-(not stated)}"
        echo "  got:"
        printf '%s\n' "${ACTUAL:-(nothing)}" | sed 's/\r$//; s/^/    | /'
        echo "  server log (last 25 lines; this test began after line $before):"
        tail -n 25 "$LOG" | sed 's/^/    | /'
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "  the server is no longer running"
        fi
    fi
}

# A Python prelude for raw-socket tests: a strict line/reply reader and a transcript.
PY_PRELUDE=$(cat <<'PY'
import socket, ssl, sys

HOST = "127.0.0.1"
MX = "mx.interop.test"
transcript = []

def fail(msg):
    print("\n".join(transcript))
    print("FAIL: " + msg)
    sys.exit(1)

def unverified_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx

class Peer:
    def __init__(self, port):
        self.sock = socket.create_connection((HOST, port), timeout=10)
        self.buf = b""

    def send(self, data):
        transcript.append("C: " + repr(data))
        self.sock.sendall(data)

    def line(self):
        while b"\r\n" not in self.buf:
            try:
                d = self.sock.recv(4096)
            except socket.timeout:
                fail("no reply within 10 s (buffered: %r)" % self.buf)
            if not d:
                fail("connection closed by the server (buffered: %r)" % self.buf)
            self.buf += d
        l, self.buf = self.buf.split(b"\r\n", 1)
        l = l.decode("latin-1")
        transcript.append("S: " + l)
        return l

    def reply(self):
        lines = [self.line()]
        while len(lines[-1]) >= 4 and lines[-1][3] == "-":
            lines.append(self.line())
        return lines

    def expect(self, prefix, what):
        r = self.reply()
        if not r[-1].startswith(prefix):
            fail("%s: expected a reply starting %r, got %r" % (what, prefix, r))
        return r

    def starttls(self):
        if self.buf:
            fail("the server sent %r in clear after its STARTTLS reply" % self.buf)
        self.sock = unverified_context().wrap_socket(self.sock, server_hostname=MX)
        transcript.append("-- TLS established: %s %s" % (self.sock.version(), self.sock.cipher()[0]))
PY
)

py() {
    local code=$1
    shift
    peer python3 -c "$PY_PRELUDE
$code" "$@"
}

# --- test cases ----------------------------------------------------------------------

# 1. swaks, STARTTLS, one local recipient: delivered with a complete trace.
t_swaks_starttls() {
    local out rc f
    out=$(peer swaks --server 127.0.0.1 --port "$PORT_STARTTLS" --tls --helo "$HELO" --timeout 15 \
        --from alice@sender.example --to bob@interop.test \
        --header "Subject: swaks-starttls" --body "interop body over STARTTLS" 2>&1) && rc=0 || rc=$?
    [ "$rc" -eq 0 ] || { bad "swaks exits 0 (message accepted)" "exit $rc"$'\n'"$out"; return 1; }
    f=$(wait_for_delivery bob "Subject: swaks-starttls") \
        || { bad "a file in $STATE/mail/bob/new/ containing 'Subject: swaks-starttls' within ${DELIVERY_WAIT}s" \
                 "$(ls -R "$STATE/mail" 2>&1)"; return 1; }
    local want
    for want in "Return-Path: <alice@sender.example>" "Received: from $HELO" "with ESMTPS" \
                "(using TLSv1.3 with cipher" "interop body over STARTTLS"; do
        has "$f" "$want" || { bad "the delivered message contains '$want'" "$(cat "$f")"; return 1; }
    done
}

# 2. swaks, implicit TLS (RFC 8314) on its own port.
t_swaks_implicit_tls() {
    local out rc f
    out=$(peer swaks --server 127.0.0.1 --port "$PORT_IMPLICIT" --tls-on-connect --helo "$HELO" --timeout 15 \
        --from alice@sender.example --to bob@interop.test \
        --header "Subject: swaks-implicit-tls" --body "interop body over implicit TLS" 2>&1) && rc=0 || rc=$?
    [ "$rc" -eq 0 ] || { bad "swaks --tls-on-connect exits 0" "exit $rc"$'\n'"$out"; return 1; }
    f=$(wait_for_delivery bob "Subject: swaks-implicit-tls") \
        || { bad "a file in bob/new/ containing 'Subject: swaks-implicit-tls'" "$(ls -R "$STATE/mail" 2>&1)"; return 1; }
    { has "$f" "with ESMTPS" && has "$f" "(using TLSv1"; } \
        || { bad "a Received header 'with ESMTPS ... (using TLSv1...'" "$(cat "$f")"; return 1; }
}

# s_client_cert PORT [OPTIONS...]: the server certificate (text) of a STARTTLS handshake.
s_client_cert() {
    local port=$1 out rc
    shift
    out=$(peer openssl s_client -starttls smtp -name "$HELO" -connect "127.0.0.1:$port" \
        -servername "$HOSTNAME_MX" "$@" </dev/null 2>&1) && rc=0 || rc=$?
    if [ "$rc" -ne 0 ]; then
        printf 'openssl s_client exited %s\n%s\n' "$rc" "$out"
        return 1
    fi
    printf '%s\n' "$out" | openssl x509 -noout -text 2>&1 || { printf '%s\n' "$out"; return 1; }
}

# 3. openssl s_client: the certificate is chosen per handshake.
t_openssl_cert_selection() {
    local cert
    cert=$(s_client_cert "$PORT_STARTTLS") \
        || { bad "openssl s_client -starttls smtp completes a handshake" "$cert"; return 1; }
    { grep -q "id-ecPublicKey" <<<"$cert" && grep -q "prime256v1" <<<"$cert"; } \
        || { bad "with default client options an ECDSA P-256 certificate (id-ecPublicKey, prime256v1)" "$cert"; return 1; }
    grep -q "CN *= *$HOSTNAME_MX" <<<"$cert" \
        || { bad "certificate subject CN = $HOSTNAME_MX" "$cert"; return 1; }

    cert=$(s_client_cert "$PORT_STARTTLS" -tls1_2 -sigalgs "RSA+SHA256:RSA-PSS+SHA256") \
        || { bad "a TLS 1.2 handshake offering only RSA signature algorithms succeeds" "$cert"; return 1; }
    { grep -q "rsaEncryption" <<<"$cert" && grep -q "Public-Key: (2048 bit)" <<<"$cert"; } \
        || { bad "with -sigalgs RSA+SHA256:RSA-PSS+SHA256 an RSA 2048 certificate" "$cert"; return 1; }

    cert=$(s_client_cert "$PORT_STARTTLS" -tls1_3 -sigalgs "rsa_pss_rsae_sha256") \
        || { bad "a TLS 1.3 handshake offering only rsa_pss_rsae_sha256 succeeds" "$cert"; return 1; }
    grep -q "rsaEncryption" <<<"$cert" \
        || { bad "with TLS 1.3 and -sigalgs rsa_pss_rsae_sha256 an RSA certificate" "$cert"; return 1; }
}

# 3b. A TLS 1.2 client whose cipher list has only ECDHE-RSA suites (but which, like
# OpenSSL by default, also lists ECDSA signature algorithms) must get the RSA certificate.
t_openssl_rsa_only_ciphers() {
    local cert
    cert=$(s_client_cert "$PORT_STARTTLS" -tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256) \
        || { bad "a TLS 1.2 handshake with -cipher ECDHE-RSA-AES128-GCM-SHA256 succeeds (RSA certificate)" "$cert"; return 1; }
    { grep -q "rsaEncryption" <<<"$cert" && grep -q "Public-Key: (2048 bit)" <<<"$cert"; } \
        || { bad "with -cipher ECDHE-RSA-AES128-GCM-SHA256 an RSA 2048 certificate" "$cert"; return 1; }
}

# 4. openssl s_client, implicit TLS: the greeting comes over TLS.
t_openssl_implicit_greeting() {
    local out rc
    # QUIT only after the greeting: a client that talks first is refused (554 5.5.0).
    out=$( { sleep 1; printf 'QUIT\r\n'; } | peer openssl s_client -quiet -connect "127.0.0.1:$PORT_IMPLICIT" \
        -servername "$HOSTNAME_MX" 2>&1) && rc=0 || rc=$?
    grep -q "^220 $HOSTNAME_MX ESMTP" <<<"$out" \
        || { bad "'220 $HOSTNAME_MX ESMTP' as the first reply over TLS (s_client exit $rc)" "$out"; return 1; }
    grep -q "^221" <<<"$out" || { bad "a 221 reply to QUIT" "$out"; return 1; }
}

# 5. Python smtplib: two local recipients in one transaction; relaying refused.
t_smtplib() {
    local out rc f
    out=$(peer python3 - "$PORT_STARTTLS" <<'PY' 2>&1
import smtplib, ssl, sys
port = int(sys.argv[1])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
msg = ("From: alice@sender.example\r\nTo: carol@interop.test, dave@interop.test\r\n"
       "Subject: smtplib-two-rcpts\r\n\r\nsent by smtplib\r\n")
# local_hostname: without it smtplib asks the resolver for our FQDN.
with smtplib.SMTP("127.0.0.1", port, local_hostname="client.interop.test", timeout=15) as s:
    s.ehlo()
    if not s.has_extn("starttls"):
        print("FAIL: STARTTLS not advertised: %r" % s.esmtp_features); sys.exit(1)
    s.starttls(context=ctx)
    refused = s.sendmail("alice@sender.example", ["carol@interop.test", "dave@interop.test"], msg)
    if refused:
        print("FAIL: recipients refused: %r" % refused); sys.exit(1)
    print("sent to carol and dave over %s" % s.sock.version())
with smtplib.SMTP("127.0.0.1", port, local_hostname="client.interop.test", timeout=15) as s:
    s.starttls(context=ctx)
    try:
        s.sendmail("alice@sender.example", ["victim@elsewhere.example"],
                   "Subject: relay-attempt\r\n\r\nrelay me\r\n")
    except smtplib.SMTPRecipientsRefused as e:
        code, text = e.recipients["victim@elsewhere.example"]
        print("relay refused: %d %s" % (code, text.decode()))
        if code != 554 or b"5.7.1" not in text:
            print("FAIL: expected 554 5.7.1"); sys.exit(1)
    else:
        print("FAIL: relaying to victim@elsewhere.example was accepted"); sys.exit(1)
PY
    ) && rc=0 || rc=$?
    [ "$rc" -eq 0 ] || { bad "smtplib delivers to carol+dave, and relaying to elsewhere.example gets 554 5.7.1" "$out"; return 1; }
    local u
    for u in carol dave; do
        f=$(wait_for_delivery "$u" "Subject: smtplib-two-rcpts") \
            || { bad "a file in $u/new/ containing 'Subject: smtplib-two-rcpts'" "$out"$'\n'"$(ls -R "$STATE/mail" 2>&1)"; return 1; }
        has "$f" "Delivered-To: $u@interop.test" || { bad "Delivered-To: $u@interop.test" "$(cat "$f")"; return 1; }
    done
    if grep -rlqF "relay-attempt" "$STATE" 2>/dev/null; then
        bad "the refused relay message is stored nowhere" "$(grep -rlF relay-attempt "$STATE")"
        return 1
    fi
}

# 6. A listener with require_tls: no mail without STARTTLS.
t_require_tls() {
    local out rc f
    out=$(peer swaks --server 127.0.0.1 --port "$PORT_REQUIRE" --helo "$HELO" --timeout 15 \
        --from alice@sender.example --to bob@interop.test \
        --header "Subject: require-tls-plain" --body "must not be accepted" 2>&1) && rc=0 || rc=$?
    [ "$rc" -ne 0 ] || { bad "swaks without --tls fails (non-zero exit)" "exit 0"$'\n'"$out"; return 1; }
    grep -q "^<\*\* *530 5.7.0 Must issue a STARTTLS command first" <<<"$out" \
        || { bad "'530 5.7.0 Must issue a STARTTLS command first' in reply to MAIL FROM" "exit $rc"$'\n'"$out"; return 1; }
    grep -B1 "^<\*\* *530" <<<"$out" | grep -q "^ *-> MAIL FROM" \
        || { bad "the 530 is the reply to MAIL FROM" "$out"; return 1; }

    out=$(peer swaks --server 127.0.0.1 --port "$PORT_REQUIRE" --tls --helo "$HELO" --timeout 15 \
        --from alice@sender.example --to bob@interop.test \
        --header "Subject: require-tls-ok" --body "accepted after STARTTLS" 2>&1) && rc=0 || rc=$?
    [ "$rc" -eq 0 ] || { bad "swaks --tls on the require_tls port exits 0" "exit $rc"$'\n'"$out"; return 1; }
    f=$(wait_for_delivery bob "Subject: require-tls-ok") \
        || { bad "a file in bob/new/ containing 'Subject: require-tls-ok'" "$(ls -R "$STATE/mail" 2>&1)"; return 1; }
    if grep -rlqF "require-tls-plain" "$STATE" 2>/dev/null; then
        bad "the plaintext attempt is stored nowhere" "$(grep -rlF require-tls-plain "$STATE")"
        return 1
    fi
}

# 7. STARTTLS command injection (CVE-2011-0411): a command pipelined after STARTTLS in
# the same packet must be discarded, not run inside the TLS session.
t_starttls_injection() {
    local out rc before
    before=$(log_lines)
    out=$(py '
p = Peer(int(sys.argv[1]))
p.expect("220 ", "greeting")
p.send(b"EHLO x\r\n")
ehlo = p.expect("250 ", "EHLO")
if not any("STARTTLS" in l for l in ehlo):
    fail("STARTTLS not advertised")
p.send(b"STARTTLS\r\nMAIL FROM:<evil@x>\r\n")
p.expect("220 ", "STARTTLS")
p.starttls()
p.send(b"EHLO client.interop.test\r\n")
r = p.expect("250", "EHLO after STARTTLS")
if not r[0].startswith("250-" + MX) and r[0] != "250 " + MX:
    fail("the first reply after the handshake is not the EHLO reply: %r" % r)
p.send(b"MAIL FROM:<a@b>\r\n")
p.expect("250 2.1.0", "MAIL FROM after STARTTLS (503 5.5.1 would mean the injected MAIL ran)")
p.send(b"QUIT\r\n")
p.expect("221", "QUIT")
print("\n".join(transcript))
' "$PORT_STARTTLS" 2>&1) && rc=0 || rc=$?
    [ "$rc" -eq 0 ] || { bad "the pipelined MAIL is discarded; MAIL after TLS gets 250 2.1.0" "$out"; return 1; }
    sleep 0.2
    log_since "$before" | grep -q "discarded" \
        || { bad "the server log says the injected bytes were 'discarded'" "$out"; return 1; }
}

# 8. SMTP smuggling: a bare-LF end-of-data must not end the message, and the whole thing
# is refused with 550 5.6.0; nothing of it is stored.
t_smtp_smuggling() {
    local out rc
    out=$(py '
p = Peer(int(sys.argv[1]))
p.expect("220 ", "greeting")
p.send(b"EHLO client.interop.test\r\n")
p.expect("250 ", "EHLO")
p.send(b"MAIL FROM:<a@sender.example>\r\n")
p.expect("250 ", "MAIL")
p.send(b"RCPT TO:<bob@interop.test>\r\n")
p.expect("250 ", "RCPT")
p.send(b"DATA\r\n")
p.expect("354", "DATA")
p.send(b"Subject: smuggle\r\n\r\nhello\n.\nMAIL FROM:<x@y>\r\nRCPT TO:<bob@interop.test>\r\n"
       b"DATA\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\n")
p.expect("550 5.6.0", "end of data after a bare LF")
# Nothing may follow: the next reply must be the one to our QUIT.
p.send(b"QUIT\r\n")
p.expect("221", "QUIT (any other reply means smuggled commands were executed)")
print("\n".join(transcript))
' "$PORT_STARTTLS" 2>&1) && rc=0 || rc=$?
    [ "$rc" -eq 0 ] || { bad "550 5.6.0 after the data, then 221 to QUIT" "$out"; return 1; }

    # A later, legitimate message has been delivered: the queue has run since the attempt.
    local s_out s_rc
    s_out=$(peer swaks --server 127.0.0.1 --port "$PORT_STARTTLS" --tls --helo "$HELO" --timeout 15 \
        --from alice@sender.example --to bob@interop.test \
        --header "Subject: after-smuggling-sentinel" --body "sentinel" 2>&1) && s_rc=0 || s_rc=$?
    [ "$s_rc" -eq 0 ] || { bad "a normal message after the attempt is accepted" "exit $s_rc"$'\n'"$s_out"; return 1; }
    wait_for_delivery bob "after-smuggling-sentinel" >/dev/null \
        || { bad "the sentinel message is delivered" "$(ls -R "$STATE/mail" 2>&1)"; return 1; }
    sleep 0.5
    local found
    found=$(grep -rlE "smuggled|Subject: smuggle" "$STATE" 2>/dev/null || true)
    [ -z "$found" ] || { bad "no stored file contains 'smuggled' or 'Subject: smuggle'" "$found"; return 1; }
}

# 9. TLS renegotiation (openssl s_client's "R" command, TLS 1.2): never performed. The
# server answers the new ClientHello with a no_renegotiation alert; depending on timing
# s_client then reports the error or waits for a handshake that never comes. Either way
# nothing is exchanged after it.
t_tls_renegotiation() {
    local out rc after
    out=$( (printf 'EHLO renegotiate.test\r\n'; sleep 1; printf 'R\n'; sleep 2; printf 'NOOP\r\n'; sleep 1) \
        | timeout 10 "$LOOPBACK_DNS" openssl s_client -starttls smtp -tls1_2 \
            -connect "127.0.0.1:$PORT_STARTTLS" 2>&1) && rc=0 || rc=$?
    grep -q "RENEGOTIATING" <<<"$out" || { bad "s_client attempts a renegotiation" "$out"; return 1; }
    after=$(sed -n '/RENEGOTIATING/,$p' <<<"$out")
    if grep -qE "^250 |Verify return code|New, TLS" <<<"$after"; then
        bad "no completed renegotiation and no command answered after it (s_client exit $rc)" "$after"
        return 1
    fi
    grep -qi "no renegotiation" <<<"$after" || [ "$rc" -eq 124 ] \
        || { bad "a no_renegotiation error, or s_client left waiting (exit 124); exit $rc" "$after"; return 1; }
}

run_test "1 swaks STARTTLS delivery (trace headers, Return-Path)" t_swaks_starttls
run_test "2 swaks implicit TLS delivery" t_swaks_implicit_tls
run_test "3 openssl s_client: ECDSA P-256 by default, RSA-2048 for RSA-only sigalgs" t_openssl_cert_selection
run_test "3b openssl s_client: TLS 1.2 with only ECDHE-RSA cipher suites gets RSA-2048" t_openssl_rsa_only_ciphers
run_test "4 openssl s_client implicit TLS: 220 greeting over TLS" t_openssl_implicit_greeting
run_test "5 python smtplib: two recipients delivered, relaying refused 554 5.7.1" t_smtplib
run_test "6 require_tls: 530 5.7.0 without STARTTLS, delivered with it" t_require_tls
run_test "7 STARTTLS command injection discarded" t_starttls_injection
run_test "8 SMTP smuggling refused with 550 5.6.0, nothing stored" t_smtp_smuggling
run_test "9 TLS renegotiation refused (never performed)" t_tls_renegotiation

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "interop: the server exited during the tests; its log:"
    tail -n 40 "$LOG" | sed 's/^/    | /'
fi

pf_sum=; while IFS= read -r l; do if [[ $l =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then PASSED=$((PASSED + BASH_REMATCH[1])); FAILED=$((FAILED + BASH_REMATCH[2])); pf_sum=1; else printf '%s\n' "$l"; fi; done < <(POSTERN_BIN="$BIN" "$SCRIPT_DIR/postfix/run.sh" 2>&1 || true); [ -n "$pf_sum" ] || { echo "FAILED - postfix interop (tests/interop/postfix/run.sh) printed no summary"; FAILED=$((FAILED + 1)); }
tl_sum=; while IFS= read -r l; do if [[ $l =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then PASSED=$((PASSED + BASH_REMATCH[1])); FAILED=$((FAILED + BASH_REMATCH[2])); tl_sum=1; else printf '%s\n' "$l"; fi; done < <(POSTERN_BIN="$BIN" "$SCRIPT_DIR/tls/run.sh" 2>&1 || true); [ -n "$tl_sum" ] || { echo "FAILED - TLS interop (tests/interop/tls/run.sh) printed no summary"; FAILED=$((FAILED + 1)); }
au_sum=; while IFS= read -r l; do if [[ $l =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then PASSED=$((PASSED + BASH_REMATCH[1])); FAILED=$((FAILED + BASH_REMATCH[2])); au_sum=1; else printf '%s\n' "$l"; fi; done < <(POSTERN_BIN="$BIN" "$SCRIPT_DIR/auth/run.sh" 2>&1 || true); [ -n "$au_sum" ] || { echo "FAILED - dkimpy interop (tests/interop/auth/run.sh) printed no summary"; FAILED=$((FAILED + 1)); }
# Exim and OpenSMTPD, both directions, every TLS level (#16): tests/interop/peers/run.sh.
pe_sum=; while IFS= read -r l; do if [[ $l =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then PASSED=$((PASSED + BASH_REMATCH[1])); FAILED=$((FAILED + BASH_REMATCH[2])); pe_sum=1; else printf '%s\n' "$l"; fi; done < <(POSTERN_BIN="$BIN" "$SCRIPT_DIR/peers/run.sh" 2>&1 || true); [ -n "$pe_sum" ] || { echo "FAILED - peer matrix (tests/interop/peers/run.sh) printed no summary"; FAILED=$((FAILED + 1)); }
# The MTA-STS policy listener with curl and openssl s_client (#13): tests/interop/mta-sts/run.sh.
ms_sum=; while IFS= read -r l; do if [[ $l =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then PASSED=$((PASSED + BASH_REMATCH[1])); FAILED=$((FAILED + BASH_REMATCH[2])); ms_sum=1; else printf '%s\n' "$l"; fi; done < <(POSTERN_BIN="$BIN" "$SCRIPT_DIR/mta-sts/run.sh" 2>&1 || true); [ -n "$ms_sum" ] || { echo "FAILED - MTA-STS interop (tests/interop/mta-sts/run.sh) printed no summary"; FAILED=$((FAILED + 1)); }
# MTA-STS end to end on the real port 443, in a private network namespace (#13):
# tests/interop/mta-sts/port443.sh.
m4_sum=; while IFS= read -r l; do if [[ $l =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then PASSED=$((PASSED + BASH_REMATCH[1])); FAILED=$((FAILED + BASH_REMATCH[2])); m4_sum=1; else printf '%s\n' "$l"; fi; done < <(POSTERN_BIN="$BIN" "$SCRIPT_DIR/mta-sts/port443.sh" 2>&1 || true); [ -n "$m4_sum" ] || { echo "FAILED - MTA-STS port 443 interop (tests/interop/mta-sts/port443.sh) printed no summary"; FAILED=$((FAILED + 1)); }
# Postfix's posttls-finger -l dane against Postern's listener, over a signed DNS tree (#12):
# tests/interop/dane/run.sh.
dn_sum=; while IFS= read -r l; do if [[ $l =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then PASSED=$((PASSED + BASH_REMATCH[1])); FAILED=$((FAILED + BASH_REMATCH[2])); dn_sum=1; else printf '%s\n' "$l"; fi; done < <(POSTERN_BIN="$BIN" "$SCRIPT_DIR/dane/run.sh" 2>&1 || true); [ -n "$dn_sum" ] || { echo "FAILED - DANE interop (tests/interop/dane/run.sh) printed no summary"; FAILED=$((FAILED + 1)); }
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
