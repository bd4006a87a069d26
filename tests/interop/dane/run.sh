#!/usr/bin/env bash
# DANE interop for issue #12: Postfix's posttls-finger, an independent DANE client,
# verifies Postern's STARTTLS listener against the TLSA records `postern dns-records`
# printed, for the RSA and for the ECDSA certificate.
#
#   cargo build && tests/interop/dane/run.sh
#
# Everything runs in a private network and mount namespace (unshare --net --mount): its
# own loopback, where port 25 and port 53 are free, and an /etc/resolv.conf (bind-mounted,
# visible to this process tree only) naming 127.0.0.1 with "options trust-ad". The signed
# DNS tree of tests/support/dnssec/signed-tree.sh (knot signs a fake root and dane.test,
# unbound validates) answers on 127.0.0.1:53 there; the machine's DNS is never used.
#
#   (1) RSA:   Postern serves only an RSA-2048 certificate; posttls-finger -l dane finds
#              the secure TLSA RRset and logs "Verified TLS connection established".
#   (2) ECDSA: the same with only an ECDSA P-256 certificate.
#   (3) A certificate whose key is not in the TLSA RRset: posttls-finger must not say
#              Verified (the negative control that proves the check is real).
#
# POSTERN_BIN overrides the binary. postfix, openssl, knot and unbound are installed with
# apt-get when missing. Prints "ok - ..." / "not ok - ..." and ends with
# "N passed, M failed".
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
INTEROP_DIR=$(cd -- "$SCRIPT_DIR/.." && pwd)
REPO_ROOT=$(cd -- "$INTEROP_DIR/../.." && pwd)
BIN=${POSTERN_BIN:-$REPO_ROOT/target/debug/postern}
TREE="$REPO_ROOT/tests/support/dnssec/signed-tree.sh"

# shellcheck source=../lib/harness.sh
. "$INTEROP_DIR/lib/harness.sh"

# shellcheck source=../lib/netns.sh
. "$INTEROP_DIR/lib/netns.sh"
netns_enter dane POSTERN_DANE_NS posttls-finger postfix

# --- inside the namespaces ---------------------------------------------------------------
netns_setup dane "trust-ad timeout:1 attempts:2"

HOST=mx.dane.test
mkdir -p "$WORK/certs"
# The certificates: RSA-2048, ECDSA P-256, and a stray one not published in DNS.
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=$HOST" \
    -addext "subjectAltName=DNS:$HOST" -keyout "$WORK/certs/rsa.key" \
    -out "$WORK/certs/rsa.crt" 2>/dev/null
for name in ecdsa stray; do
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
        -subj "/CN=$HOST" -addext "subjectAltName=DNS:$HOST" \
        -keyout "$WORK/certs/$name.key" -out "$WORK/certs/$name.crt" 2>/dev/null
done

# config NAME CERT...: a Postern config serving the given certificates on 127.0.0.1:25.
config() {
    local name=$1 c
    shift
    {
        printf '[server]\nhostname = "%s"\nstate_dir = "%s"\n' "$HOST" "$WORK/state-$name"
        for c in "$@"; do
            printf '[[tls.certificate]]\nchain = "%s"\nkey = "%s"\n' \
                "$WORK/certs/$c.crt" "$WORK/certs/$c.key"
        done
        printf '[[listener]]\naddress = "127.0.0.1:25"\n'
        printf '[relay]\nlocal_domains = ["dane.test"]\n'
        printf '[[route]]\ndomain = "dane.test"\nnext_hop = "maildir:mail"\n'
        printf '[resolver]\nnameservers = ["127.0.0.1:53"]\ndnssec = "off"\n'
    } >"$WORK/$name.toml"
}

# The TLSA records, exactly as the operator would copy them from `postern dns-records`
# for a server with both certificates.
config both rsa ecdsa
"$BIN" dns-records -c "$WORK/both.toml" >"$WORK/records.txt"
grep -E "^_25\._tcp\.$HOST\. IN TLSA 3 1 1 [0-9a-f]{64}$" "$WORK/records.txt" >"$WORK/tlsa.txt" || true
if [ "$(wc -l <"$WORK/tlsa.txt")" -ne 2 ]; then
    not_ok "dns-records prints one TLSA 3 1 1 record per certificate" "$(cat "$WORK/records.txt")"
    echo "$PASSED passed, $FAILED failed"
    exit 1
fi
ok "dns-records prints one TLSA 3 1 1 record per certificate (RSA and ECDSA)"

# The signed zone: the host's address and the two TLSA records, on 127.0.0.1:53.
mkdir -p "$WORK/tree/records"
echo "dane.test secure" >"$WORK/tree/zones.list"
{
    echo "mx A 127.0.0.1"
    sed 's/ IN TLSA / TLSA /' "$WORK/tlsa.txt"
} >"$WORK/tree/records/dane.test.zone"
netns_start_tree dane

# serve NAME: start Postern with config NAME and wait for its listener.
serve() {
    setsid "$BIN" serve -c "$WORK/$1.toml" >"$WORK/$1.log" 2>&1 &
    POSTERN_PGIDS+=("$!")
    for _ in $(seq 100); do
        port_open 25 && return 0
        sleep 0.1
    done
    return 1
}

# finger NAME: posttls-finger at level dane against the running Postern.
finger() {
    timeout 60 posttls-finger -c -l dane -L routine,certmatch "[$HOST]:25" >"$WORK/finger-$1.txt" 2>&1 || true
}

for kind in rsa ecdsa; do
    config "$kind" "$kind"
    if ! serve "$kind"; then
        not_ok "posttls-finger -l dane verifies the $kind certificate" "Postern did not start:" "$(tail -n 20 "$WORK/$kind.log")"
        continue
    fi
    finger "$kind"
    # The record posttls-finger matched must be one that dns-records printed.
    matched=$(sed -n 's/.*Matched DANE EE certificate at depth 0: 3 1 1 \([0-9A-Fa-f]*\).*/\1/p' \
        "$WORK/finger-$kind.txt" | tr 'A-F' 'a-f' | head -n 1)
    if grep -q "Verified TLS connection established to $HOST\[127.0.0.1\]:25" "$WORK/finger-$kind.txt" \
        && [ -n "$matched" ] && grep -q "TLSA 3 1 1 $matched\$" "$WORK/tlsa.txt"; then
        ok "posttls-finger -l dane verifies the $kind certificate against the printed TLSA records"
    else
        not_ok "posttls-finger -l dane verifies the $kind certificate" "$(cat "$WORK/finger-$kind.txt")"
    fi
    stop_posterns
done

config stray stray
if serve stray; then
    finger stray
    # It must get as far as the handshake and then say why it does not trust the key
    # (not merely fail to connect).
    if ! grep -q "Verified TLS connection established" "$WORK/finger-stray.txt" \
        && grep -q "verification failed for $HOST\[127.0.0.1\]:25: .*no matching DANE TLSA records" "$WORK/finger-stray.txt" \
        && grep -q "Untrusted TLS connection established to $HOST\[127.0.0.1\]:25" "$WORK/finger-stray.txt"; then
        ok "posttls-finger -l dane refuses a key the TLSA records do not name"
    else
        not_ok "posttls-finger -l dane refuses a key the TLSA records do not name" "$(cat "$WORK/finger-stray.txt")"
    fi
    stop_posterns
else
    not_ok "posttls-finger -l dane refuses a key the TLSA records do not name" "Postern did not start"
fi

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
