#!/usr/bin/env bash
# MTA-STS policy listener interop (issue #13, "Serving our own policy"), on 127.0.0.1:
#
#   (1) curl (test CA, --resolve to loopback) fetches the policy: 200, text/plain, HSTS,
#       the RFC 8461 text; HEAD likewise without a body.
#   (2) curl gets 404 for an unknown host and path and 405 (Allow: GET, HEAD) for POST,
#       each with HSTS.
#   (3) curl against the plain HTTP listener gets only a 301 to the https URL.
#   (4) openssl s_client with SNI mta-sts.example.org is shown the certificate naming
#       that host (verified against the test CA), ALPN http/1.1.
#   (5) the ncsc-suite-b profile, exactly: TLS 1.2 ECDHE-ECDSA-AES128-GCM-SHA256 and
#       TLS 1.3 TLS_AES_128_GCM_SHA256 accepted; TLS 1.1, TLS 1.0, ECDHE-ECDSA-AES256-GCM,
#       ECDHE-ECDSA-CHACHA20 and TLS_AES_256_GCM_SHA384 refused.
#
#   cargo build && tests/interop/mta-sts/run.sh
#
# POSTERN_BIN overrides the binary. curl and openssl are installed with apt-get when
# missing. Peers run under tests/interop/lib/loopback-dns.sh (no real DNS; curl is told
# the address with --resolve). Prints "ok - ..." / "not ok - ..." and ends with
# "N passed, M failed".
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
INTEROP_DIR=$(cd -- "$SCRIPT_DIR/.." && pwd)
REPO_ROOT=$(cd -- "$INTEROP_DIR/../.." && pwd)
LOOPBACK_DNS="$INTEROP_DIR/lib/loopback-dns.sh"
BIN=${POSTERN_BIN:-$REPO_ROOT/target/debug/postern}
PEER_TIMEOUT=20

PASSED=0
FAILED=0
WORK=
POSTERN_PGIDS=()

# shellcheck source=../lib/harness.sh
. "$INTEROP_DIR/lib/harness.sh"

finish() {
    stop_posterns
    [ -n "$WORK" ] && rm -rf -- "$WORK"
    echo "$PASSED passed, $FAILED failed"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_for_binary mta-sts-interop "$BIN"
if [ "$(id -u)" -ne 0 ]; then
    echo "mta-sts-interop: must run as root (loopback DNS namespace, apt-get)" >&2
    FAILED=$((FAILED + 1))
    exit 1
fi
need=()
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v setsid >/dev/null 2>&1 || need+=(util-linux)
[ "${#need[@]}" -eq 0 ] || apt_install mta-sts-interop "${need[@]}"

peer() { timeout --kill-after=5 "$PEER_TIMEOUT" "$LOOPBACK_DNS" "$@"; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/postern-mta-sts.XXXXXX")
CA="$WORK/ca"
PN="$WORK/postern"
mkdir -p "$CA" "$PN/state"
read -r SMTP_PORT HTTPS_PORT HTTP_PORT < <(pick_ports 3)
HOST=mta-sts.example.org
URL="https://$HOST:$HTTPS_PORT/.well-known/mta-sts.txt"

# --- certificates: a test CA (ECDSA P-256), the MX host's and the policy host's --------
issue() {
    local name=$1
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$CA/$name.key" 2>/dev/null
    openssl req -new -key "$CA/$name.key" -subj "/O=Postern interop/CN=$name" -out "$CA/$name.csr" 2>/dev/null
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:%s\n' \
        "$name" >"$CA/$name.ext"
    openssl x509 -req -in "$CA/$name.csr" -CA "$CA/ca.pem" -CAkey "$CA/ca.key" -CAcreateserial \
        -days 2 -sha256 -extfile "$CA/$name.ext" -out "$CA/$name.pem" 2>/dev/null
}
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$CA/ca.key" 2>/dev/null
openssl req -x509 -new -key "$CA/ca.key" -sha256 -days 2 -subj "/O=Postern interop/CN=MTA-STS Test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$CA/ca.pem" 2>/dev/null
issue mx.postern.test
issue "$HOST"
chmod 644 "$CA"/*.pem

# --- Postern: ncsc-suite-b, the MX certificate first (SNI must pick the other) ----------
cat >"$PN/postern.toml" <<EOF
[server]
hostname = "mx.postern.test"
state_dir = "$PN/state"
submit_socket = false

[tls]
profile = "ncsc-suite-b"

[[tls.certificate]]
chain = "$CA/mx.postern.test.pem"
key = "$CA/mx.postern.test.key"

[[tls.certificate]]
chain = "$CA/$HOST.pem"
key = "$CA/$HOST.key"

[[listener]]
address = "127.0.0.1:$SMTP_PORT"

[relay]
local_domains = ["example.org"]

[[route]]
domain = "example.org"
next_hop = "maildir:mail"

[mta_sts]
listen = ["127.0.0.1:$HTTPS_PORT"]
http_listen = ["127.0.0.1:$HTTP_PORT"]

[[mta_sts.policy]]
domain = "example.org"
mode = "enforce"
mx = ["mx.postern.test"]
max_age = 604800
EOF
NO_COLOR=1 RUST_LOG=info setsid "$LOOPBACK_DNS" "$BIN" serve -c "$PN/postern.toml" \
    >"$PN/stdout" 2>"$PN/postern.log" </dev/null &
POSTERN_PGIDS+=("$!")
for _ in $(seq 100); do port_open "$HTTPS_PORT" && break; sleep 0.1; done
if ! port_open "$HTTPS_PORT"; then
    not_ok "postern starts with the [mta_sts] listener" "$(cat "$PN/postern.log")"
    exit 1
fi
ok "postern starts under ncsc-suite-b with the [mta_sts] listener"

CURL=(curl -sS --max-time 10 --cacert "$CA/ca.pem" --resolve "$HOST:$HTTPS_PORT:127.0.0.1"
    --resolve "mta-sts.other.test:$HTTPS_PORT:127.0.0.1" --resolve "$HOST:$HTTP_PORT:127.0.0.1")

# header NAME FILE: the value of header NAME in a curl -D dump (last response).
header() { tr -d '\r' <"$2" | awk -v n="$(tr '[:upper:]' '[:lower:]' <<<"$1")" 'BEGIN{IGNORECASE=1} index(tolower($0), n ":")==1 {sub(/^[^:]*:[ ]*/, ""); v=$0} END{print v}'; }
status() { tr -d '\r' <"$1" | awk 'NR==1{print $2}'; }

t_get() {
    local name="(1) curl GET: 200 text/plain, HSTS, the RFC 8461 policy; HEAD the same without a body"
    local h="$WORK/get.h" b="$WORK/get.b" want
    if ! out=$(peer "${CURL[@]}" -D "$h" -o "$b" "$URL" 2>&1); then
        not_ok "$name" "curl: $out" "$(tail -n 5 "$PN/postern.log")"
        return
    fi
    want="$WORK/want"
    printf 'version: STSv1\r\nmode: enforce\r\nmx: mx.postern.test\r\nmax_age: 604800\r\n' >"$want"
    local problems=()
    [ "$(status "$h")" = 200 ] || problems+=("status $(status "$h")")
    [ "$(header content-type "$h")" = text/plain ] || problems+=("content-type $(header content-type "$h")")
    [ "$(header strict-transport-security "$h")" = "max-age=31536000" ] || problems+=("no HSTS")
    cmp -s "$b" "$want" || problems+=("body: $(od -c "$b" | head -n 5)")
    if ! out=$(peer "${CURL[@]}" -I -D "$h" -o "$b" "$URL" 2>&1); then
        problems+=("curl -I: $out")
    else
        [ "$(status "$h")" = 200 ] || problems+=("HEAD status $(status "$h")")
        [ "$(header strict-transport-security "$h")" = "max-age=31536000" ] || problems+=("HEAD: no HSTS")
        [ "$(header content-length "$h")" = "$(wc -c <"$want")" ] || problems+=("HEAD content-length $(header content-length "$h") != $(wc -c <"$want")")
        # curl -I writes the head to -o as well: the policy text must not follow it.
        ! grep -q STSv1 "$b" || problems+=("HEAD answer has a body")
    fi
    if [ "${#problems[@]}" -eq 0 ]; then ok "$name"; else not_ok "$name" "${problems[@]}" "$(cat "$h")"; fi
}

t_errors() {
    local name="(2) curl: 404 for an unknown host and path, 405 with Allow for POST, HSTS on each"
    local h="$WORK/err.h" problems=() url want s
    for spec in "GET https://mta-sts.other.test:$HTTPS_PORT/.well-known/mta-sts.txt 404" \
        "GET https://$HOST:$HTTPS_PORT/ 404" "GET https://$HOST:$HTTPS_PORT/index.html 404" \
        "POST $URL 405" "PUT $URL 405"; do
        read -r method url want <<<"$spec"
        # mta-sts.other.test has no certificate of its own: skip verification for it only.
        local k=()
        [[ $url == *other.test* ]] && k=(-k)
        if ! out=$(peer "${CURL[@]}" "${k[@]}" -X "$method" -D "$h" -o /dev/null "$url" 2>&1); then
            problems+=("$method $url: curl: $out")
            continue
        fi
        s=$(status "$h")
        [ "$s" = "$want" ] || problems+=("$method $url: status $s, want $want")
        [ "$(header strict-transport-security "$h")" = "max-age=31536000" ] || problems+=("$method $url: no HSTS")
        if [ "$want" = 405 ] && [ "$(header allow "$h")" != "GET, HEAD" ]; then
            problems+=("$method $url: Allow is '$(header allow "$h")'")
        fi
    done
    if [ "${#problems[@]}" -eq 0 ]; then ok "$name"; else not_ok "$name" "${problems[@]}"; fi
}

t_redirect() {
    local name="(3) curl over plain HTTP: 301 to the https URL, nothing else"
    local h="$WORK/redir.h" b="$WORK/redir.b" problems=()
    if ! out=$(peer "${CURL[@]}" -D "$h" -o "$b" "http://$HOST:$HTTP_PORT/.well-known/mta-sts.txt" 2>&1); then
        not_ok "$name" "curl: $out"
        return
    fi
    [ "$(status "$h")" = 301 ] || problems+=("status $(status "$h")")
    [ "$(header location "$h")" = "https://$HOST/.well-known/mta-sts.txt" ] || problems+=("location $(header location "$h")")
    grep -q STSv1 "$b" && problems+=("the policy was served over plain HTTP")
    if [ "${#problems[@]}" -eq 0 ]; then ok "$name"; else not_ok "$name" "${problems[@]}" "$(cat "$h")"; fi
}

# s_client ARGS...: one handshake to the policy listener, SNI mta-sts.example.org.
s_client() {
    echo | peer openssl s_client -connect "127.0.0.1:$HTTPS_PORT" -servername "$HOST" \
        -CAfile "$CA/ca.pem" -verify_hostname "$HOST" -alpn http/1.1 "$@" 2>&1
}

t_sni() {
    local name="(4) openssl s_client: SNI $HOST gets its certificate, verified; ALPN http/1.1"
    local out alpn
    out=$(s_client -brief) || true
    alpn=$(s_client) || true
    if grep -q "Verification: OK" <<<"$out" && grep -q "Peer certificate: .*CN *= *$HOST" <<<"$out" \
        && grep -q "ALPN protocol: http/1.1" <<<"$alpn"; then
        ok "$name"
    else
        not_ok "$name" "$out" "$(grep -i alpn <<<"$alpn")"
    fi
}

t_profile() {
    local name="(5) ncsc-suite-b exactly: TLS 1.2 ECDHE-ECDSA-AES128-GCM-SHA256 and TLS 1.3 AES-128 only"
    local problems=() out
    out=$(s_client -brief -tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256) || true
    grep -q "Protocol version: TLSv1.2" <<<"$out" && grep -q "Ciphersuite: ECDHE-ECDSA-AES128-GCM-SHA256" <<<"$out" \
        || problems+=("TLS 1.2 ECDHE-ECDSA-AES128-GCM-SHA256 not accepted: $out")
    out=$(s_client -brief -tls1_3 -ciphersuites TLS_AES_128_GCM_SHA256) || true
    grep -q "Ciphersuite: TLS_AES_128_GCM_SHA256" <<<"$out" \
        || problems+=("TLS 1.3 TLS_AES_128_GCM_SHA256 not accepted: $out")
    for refused in "-tls1_1 -cipher DEFAULT:@SECLEVEL=0" "-tls1 -cipher DEFAULT:@SECLEVEL=0" \
        "-tls1_2 -cipher ECDHE-ECDSA-AES256-GCM-SHA384" "-tls1_2 -cipher ECDHE-ECDSA-CHACHA20-POLY1305" \
        "-tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256" "-tls1_3 -ciphersuites TLS_AES_256_GCM_SHA384" \
        "-tls1_3 -ciphersuites TLS_CHACHA20_POLY1305_SHA256"; do
        # shellcheck disable=SC2086 # the option list is split on purpose
        out=$(s_client -brief $refused) || true
        if grep -q "CONNECTION ESTABLISHED\|Ciphersuite:" <<<"$out"; then
            problems+=("accepted although outside the profile: $refused: $out")
        fi
    done
    if [ "${#problems[@]}" -eq 0 ]; then ok "$name"; else not_ok "$name" "${problems[@]}"; fi
}

t_get
t_errors
t_redirect
t_sni
t_profile

if ! grep -q 'MTA-STS https: 127.0.0.1:[0-9]*: GET "mta-sts.example.org:'"$HTTPS_PORT"'" "/.well-known/mta-sts.txt" -> 200' "$PN/postern.log"; then
    not_ok "(6) each request is logged" "$(grep MTA-STS "$PN/postern.log" | tail -n 5)"
else
    ok "(6) each request is logged"
fi
[ "$FAILED" -eq 0 ]
