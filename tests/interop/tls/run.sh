#!/usr/bin/env bash
# TLS interop for issue #5 (partner mutual TLS, NCSC profiles), all on 127.0.0.1:
#
#   (1) Postfix as a client presents a client certificate (smtp_tls_cert_file) and relays
#       mail from partner.test into Postern's partner-required listener; without the
#       certificate the same mail is refused (530 5.7.0).
#   (2) testssl.sh --starttls smtp against Postern under ncsc-suite-b finds no protocol
#       below TLS 1.2 and no cipher outside the profile.
#   (3) openssl s_client -starttls smtp with the Suite B cipher list connects and gets
#       ECDHE-ECDSA-AES128-GCM-SHA256 on TLS 1.2; with an RSA-only cipher list it fails.
#
#   cargo build && tests/interop/tls/run.sh
#
# POSTERN_BIN overrides the binary. Postfix, openssl and testssl.sh (Debian package
# "testssl.sh") are installed with apt-get when missing. Third-party tools that might
# resolve names run under tests/interop/lib/loopback-dns.sh. Prints "ok - ..." /
# "not ok - ..." / "skip - ..." and ends with "N passed, M failed".
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
INTEROP_DIR=$(cd -- "$SCRIPT_DIR/.." && pwd)
REPO_ROOT=$(cd -- "$INTEROP_DIR/../.." && pwd)
LOOPBACK_DNS="$INTEROP_DIR/lib/loopback-dns.sh"
BIN=${POSTERN_BIN:-$REPO_ROOT/target/debug/postern}
WAIT=20
PEER_TIMEOUT=120

PASSED=0
FAILED=0
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
trap 'postfix_suite_cleanup "tls interop"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_for_binary tls-interop "$BIN"
if [ "$(id -u)" -ne 0 ]; then
    echo "tls-interop: must run as root (private Postfix instance, loopback DNS namespace)" >&2
    exit 1
fi

install_missing() {
    local need=()
    command -v postfix >/dev/null 2>&1 && [ -x /usr/lib/postfix/sbin/master ] || need+=(postfix)
    command -v openssl >/dev/null 2>&1 || need+=(openssl)
    command -v testssl >/dev/null 2>&1 || command -v testssl.sh >/dev/null 2>&1 || need+=(testssl.sh)
    command -v python3 >/dev/null 2>&1 || need+=(python3)
    command -v setsid >/dev/null 2>&1 || need+=(util-linux)
    [ "${#need[@]}" -eq 0 ] && return 0
    postfix_install_quietly tls-interop "${need[@]}"
}
install_missing
TESTSSL=$(command -v testssl || command -v testssl.sh)

peer() { timeout --kill-after=5 "$PEER_TIMEOUT" "$LOOPBACK_DNS" "$@"; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/postern-tls.XXXXXX")
chmod 755 "$WORK"
CA="$WORK/ca"
PF="$WORK/postfix"
PF_SPOOL="$PF/spool"
PF_ETC="$PF/etc"
PF_LOG="$PF/postfix.log"
PN="$WORK/postern"
mkdir -p "$CA" "$PF_ETC" "$PF/spool" "$PF/data" "$PN/state"
chmod 755 "$PF" "$PF_ETC" "$PF/spool"
chown postfix: "$PF/data"
chmod 700 "$PF/data"
read -r PN_PORT PF_PORT < <(pick_ports 2)

# --- certificates: one test CA (ECDSA P-256), Postern server, partner client ---------------
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
openssl req -x509 -new -key "$CA/ca.key" -sha256 -days 2 -subj "/O=Postern interop/CN=Partner CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$CA/ca.pem" 2>/dev/null
issue server mx.postern.test serverAuth
issue client mx.partner.test clientAuth
cat "$CA/client.pem" "$CA/ca.pem" >"$CA/client-chain.pem"
chmod 644 "$CA"/*.pem
chmod 640 "$CA"/*.key
chgrp postfix "$CA/client.key" 2>/dev/null || true

# --- Postern: ncsc-suite-b, partner-required listener ----------------------------------
cat >"$PN/postern.toml" <<EOF
[server]
hostname = "mx.postern.test"
state_dir = "$PN/state"

[tls]
profile = "ncsc-suite-b"

[[tls.certificate]]
chain = "$CA/server.pem"
key = "$CA/server.key"

[[listener]]
address = "127.0.0.1:$PN_PORT"
client_certificates = "request"
client_ca = "$CA/ca.pem"

[relay]
local_domains = ["postern.test"]

[[route]]
domain = "postern.test"
next_hop = "maildir:mail"

[[inbound.partner]]
domains = ["partner.test"]
ca = "$CA/ca.pem"
names = ["mx.partner.test"]
EOF
NO_COLOR=1 RUST_LOG=info setsid "$LOOPBACK_DNS" "$BIN" serve -c "$PN/postern.toml" \
    >"$PN/stdout" 2>"$PN/postern.log" </dev/null &
POSTERN_PGIDS+=("$!")
for _ in $(seq 100); do grep -q started "$PN/postern.log" 2>/dev/null && break; sleep 0.1; done
grep -q started "$PN/postern.log" || { not_ok "postern starts" "$(cat "$PN/postern.log")"; exit 1; }
ok "postern starts under ncsc-suite-b with a partner-required listener"

# --- (1) Postfix with a client certificate -------------------------------------------
write_postfix() {
    local with_cert=$1
    {
        postfix_main_cf "$PF_ETC" "$PF/spool" "$PF/data" "$PF_LOG" "$WORK"
        cat <<EOF
syslog_name = postfix-tls-interop
myhostname = mx.partner.test
mydomain = partner.test
myorigin = partner.test
local_recipient_maps =
relayhost = [127.0.0.1]:$PN_PORT
smtp_tls_security_level = secure
smtp_tls_CAfile = $CA/ca.pem
smtp_tls_policy_maps = texthash:$PF_ETC/tls_policy
smtp_tls_loglevel = 1
minimal_backoff_time = 5s
maximal_backoff_time = 10s
queue_run_delay = 5s
EOF
    } >"$PF_ETC/main.cf"
    if [ "$with_cert" = yes ]; then
        printf 'smtp_tls_cert_file = %s\nsmtp_tls_key_file = %s\n' "$CA/client-chain.pem" "$CA/client.key" >>"$PF_ETC/main.cf"
    fi
    echo "[127.0.0.1]:$PN_PORT secure match=mx.postern.test" >"$PF_ETC/tls_policy"
    postfix_master_cf >"$PF_ETC/master.cf"
}

inject() {
    printf 'From: <alice@partner.test>\nTo: <bob@postern.test>\nSubject: %s\n\nvia postfix\n' "$1" \
        | peer /usr/sbin/sendmail -C "$PF_ETC" -f alice@partner.test -- bob@postern.test
}

t_postfix() {
    local name="(1) Postfix with smtp_tls_cert_file relays partner mail into the partner-required listener"
    write_postfix yes
    if ! out=$(peer postfix -c "$PF_ETC" start 2>&1); then
        not_ok "$name" "postfix start: $out"
        return
    fi
    POSTFIX_STARTED=1
    local subj="partner-mtls-$RANDOM"
    inject "$subj" || { not_ok "$name" "sendmail failed"; return; }
    local f=
    for _ in $(seq $((WAIT * 10))); do
        f=$(grep -rlF "Subject: $subj" "$PN/state/mail/bob/new" 2>/dev/null | head -n 1 || true)
        [ -n "$f" ] && break
        sleep 0.1
    done
    if [ -z "$f" ]; then
        not_ok "$name" "not delivered within ${WAIT}s" "$(tail -n 20 "$PF_LOG")" "$(tail -n 20 "$PN/postern.log")"
        return
    fi
    if ! grep -q 'verified client certificate "O=Postern interop, CN=mx.partner.test"' "$f"; then
        not_ok "$name" "Received header lacks the verified client certificate" "$(head -n 8 "$f")"
        return
    fi
    if ! grep -qE 'Verified TLS connection established from .*client certificate "O=Postern interop, CN=mx.partner.test"' "$PN/postern.log"; then
        not_ok "$name" "Postern log lacks 'Verified TLS connection established'" "$(tail -n 20 "$PN/postern.log")"
        return
    fi
    ok "$name"

    name="(1b) the same Postfix without a client certificate is refused with 530 5.7.0"
    stop_postfix
    write_postfix no
    peer postfix -c "$PF_ETC" start >/dev/null 2>&1 && POSTFIX_STARTED=1
    subj="partner-nocert-$RANDOM"
    inject "$subj" || true
    local l=
    for _ in $(seq $((WAIT * 10))); do
        l=$(grep -E "NOQUEUE: reject: MAIL .*530 5\.7\.0 .*no client certificate was presented" "$PN/postern.log" | head -n 1 || true)
        [ -n "$l" ] && break
        sleep 0.1
    done
    if [ -z "$l" ]; then
        not_ok "$name" "no 530 reject with reason in the Postern log" "$(tail -n 20 "$PN/postern.log")" "$(tail -n 10 "$PF_LOG")"
    else
        ok "$name"
    fi
    stop_postfix
}

# --- (2) testssl.sh under ncsc-suite-b ---------------------------------------------
t_testssl() {
    local name="(2) testssl.sh --starttls smtp: nothing below TLS 1.2, no cipher outside Suite B"
    local json="$WORK/testssl.json" out
    out=$(peer "$TESTSSL" --quiet --warnings off --color 0 --ip 127.0.0.1 --starttls smtp \
        --protocols --each-cipher --jsonfile "$json" "127.0.0.1:$PN_PORT" 2>&1) || true
    if [ ! -s "$json" ]; then
        not_ok "$name" "testssl.sh wrote no JSON:" "$(tail -n 30 <<<"$out")"
        return
    fi
    local verdict
    verdict=$(python3 - "$json" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
items = data if isinstance(data, list) else data.get("scanResult", [])
problems, ciphers, protos = [], [], {}
for it in items:
    i, f = it.get("id", ""), it.get("finding", "")
    if i in ("SSLv2", "SSLv3", "TLS1", "TLS1_1", "TLS1_2", "TLS1_3"):
        protos[i] = f
        if i in ("SSLv2", "SSLv3", "TLS1", "TLS1_1") and "not offered" not in f:
            problems.append(f"{i}: {f}")
    if i.startswith("cipher-") or i.startswith("cipher_x"):
        ciphers.append(f)
allowed = ("ECDHE-ECDSA-AES128-GCM-SHA256", "TLS_AES_128_GCM_SHA256")
for c in ciphers:
    if not any(a in c for a in allowed):
        problems.append(f"cipher outside the profile: {c}")
if "TLS1_2" not in protos or "not offered" in protos.get("TLS1_2", "not offered"):
    problems.append(f"TLS 1.2 not offered: {protos.get('TLS1_2')}")
if not ciphers:
    problems.append("no cipher found at all")
print("OK" if not problems else "\n".join(problems))
print("protocols: " + ", ".join(f"{k}={v}" for k, v in sorted(protos.items())))
print("ciphers: " + " | ".join(ciphers))
PY
)
    if head -n 1 <<<"$verdict" | grep -qx OK; then
        ok "$name"
        sed 's/^/#   /' <<<"$(tail -n 2 <<<"$verdict")"
    else
        not_ok "$name" "$verdict"
    fi
}

# --- (3) openssl s_client with the Suite B cipher list --------------------------------
t_s_client() {
    local name="(3) openssl s_client -starttls smtp with the Suite B cipher list connects"
    local out
    out=$(echo QUIT | peer openssl s_client -starttls smtp -connect "127.0.0.1:$PN_PORT" \
        -tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256 -groups P-256 -sigalgs ECDSA+SHA256 \
        -CAfile "$CA/ca.pem" -verify_hostname mx.postern.test -verify_return_error 2>&1) || true
    if grep -q "Cipher is ECDHE-ECDSA-AES128-GCM-SHA256" <<<"$out" && grep -q "Verify return code: 0 (ok)" <<<"$out"; then
        ok "$name"
    else
        not_ok "$name" "$(tail -n 25 <<<"$out")"
    fi
    name="(3b) openssl s_client with only RSA suites is refused under ncsc-suite-b"
    out=$(echo QUIT | peer openssl s_client -starttls smtp -connect "127.0.0.1:$PN_PORT" \
        -tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256 2>&1) || true
    if grep -q "Cipher is ECDHE-RSA" <<<"$out"; then
        not_ok "$name" "$(tail -n 15 <<<"$out")"
    else
        ok "$name"
    fi
}

# --- (4) postern tls-check agrees ----------------------------------------------------
t_tls_check() {
    local name="(4) postern tls-check --profile ncsc-suite-b passes, with the partner's client certificate"
    local out rc=0
    out=$("$BIN" tls-check "127.0.0.1:$PN_PORT" --profile ncsc-suite-b --ca "$CA/ca.pem" \
        --name mx.postern.test --client-cert "$CA/client-chain.pem" --client-key "$CA/client.key" 2>&1) || rc=$?
    if [ "$rc" -eq 0 ] && grep -q "PASS  client certificate accepted" <<<"$out"; then
        ok "$name"
    else
        not_ok "$name" "exit $rc" "$out"
    fi
}

t_postfix
t_testssl
t_s_client
t_tls_check
COMPLETED=1
