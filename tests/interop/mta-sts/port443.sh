#!/usr/bin/env bash
# MTA-STS end to end on the real port 443 (issue #13, "Tests"): one Postern sends, with
# no test knob (`[outbound] mta_sts_port` left at its default of 443), to a second
# Postern that serves its own policy from `[mta_sts] listen = ["127.0.0.1:443"]`.
#
#   cargo build && tests/interop/mta-sts/port443.sh
#
# Everything runs in a private network and mount namespace (unshare --net --mount): its
# own loopback, where ports 25, 53 and 443 are free. The DNS is the signed tree of
# tests/support/dnssec/signed-tree.sh (knot + unbound on 127.0.0.1:53), holding the
# `_mta-sts` TXT and `mta-sts` records exactly as `postern dns-records` printed them for
# the receiving Postern. The certificates come from a private CA made with openssl, which
# the sender trusts through `[outbound] ca`.
#
#   (1) mail to example.test (MX mx.example.test, policy enforce, mx mx.example.test) is
#       delivered, and the sender logs the policy fetched from
#       https://mta-sts.example.test/.well-known/mta-sts.txt (port 443, no port in the URL);
#   (2) `postern mta-sts show example.test` on the sender prints the cached enforce policy;
#   (3) mail to other.test, whose MX mx2.other.test is not in its enforced policy, is
#       never delivered: the sender defers it with 4.7.5 "matches no mx pattern".
#
# POSTERN_BIN overrides the binary. openssl, python3, knot and unbound are installed with
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
netns_enter mta-sts-443 POSTERN_STS443_NS python3 python3 setsid util-linux

# --- inside the namespaces ---------------------------------------------------------------
netns_setup sts443 "timeout:1 attempts:2"

summary_and_exit() {
    echo "$PASSED passed, $FAILED failed"
    exit 1
}

# The private CA and the receiver's certificate (its SMTP host name and both policy hosts).
C=$WORK/certs
mkdir -p "$C"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj "/CN=Postern MTA-STS interop CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$C/ca.key" -out "$C/ca.crt" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=mx.example.test" -keyout "$C/b.key" -out "$C/b.csr" 2>/dev/null
printf '%s\n' "subjectAltName=DNS:mx.example.test,DNS:mta-sts.example.test,DNS:mta-sts.other.test" \
    "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" \
    >"$C/b.ext"
openssl x509 -req -in "$C/b.csr" -CA "$C/ca.crt" -CAkey "$C/ca.key" -CAcreateserial \
    -days 30 -extfile "$C/b.ext" -out "$C/b.crt" 2>/dev/null

# B: the receiver, SMTP on 127.0.0.1:25, policies on 127.0.0.1:443.
cat >"$WORK/b.toml" <<EOF
[server]
hostname = "mx.example.test"
state_dir = "$WORK/state-b"

[[tls.certificate]]
chain = "$C/b.crt"
key = "$C/b.key"

[[listener]]
address = "127.0.0.1:25"

[relay]
local_domains = ["example.test", "other.test"]

[[route]]
domain = "example.test"
next_hop = "maildir:mail"

[[route]]
domain = "other.test"
next_hop = "maildir:mail"

[resolver]
nameservers = ["127.0.0.1:53"]
dnssec = "off"

[mta_sts]
listen = ["127.0.0.1:443"]

[[mta_sts.policy]]
domain = "example.test"
mode = "enforce"
mx = ["mx.example.test"]
max_age = 86400

[[mta_sts.policy]]
domain = "other.test"
mode = "enforce"
mx = ["mx.example.test"]
max_age = 86400
EOF

# A: the sender; MTA-STS on by default, policy port 443 by default, the CA as `ca`.
cat >"$WORK/a.toml" <<EOF
[server]
hostname = "a.sender.test"
state_dir = "$WORK/state-a"

[[listener]]
address = "127.0.0.1:2525"
mode = "plain"

[relay]
local_domains = ["sender.test"]
trusted_networks = ["127.0.0.0/8"]

[[route]]
domain = "sender.test"
next_hop = "maildir:mail"

[resolver]
nameservers = ["127.0.0.1:53"]
dnssec = "off"

[queue]
retry = ["1h"]

[outbound]
ca = "$C/ca.crt"
connect_timeout = "3s"
EOF

for n in a b; do
    if ! out=$("$BIN" check-config -c "$WORK/$n.toml" 2>&1); then
        not_ok "check-config accepts the $n configuration" "$out"
        summary_and_exit
    fi
done

# The DNS records of B's policies, as `postern dns-records` prints them.
"$BIN" dns-records -c "$WORK/b.toml" >"$WORK/records.txt"
sts_lines=$(grep -E '^(_mta-sts|mta-sts)\.(example|other)\.test\. IN (TXT|CNAME|A) ' "$WORK/records.txt" || true)
if [ "$(printf '%s\n' "$sts_lines" | grep -c .)" -ne 4 ]; then
    not_ok "dns-records prints the _mta-sts TXT and mta-sts records of both domains" "$(cat "$WORK/records.txt")"
    summary_and_exit
fi
ok "dns-records prints the _mta-sts TXT and mta-sts records of both domains"

mkdir -p "$WORK/tree/records"
printf 'example.test secure\nother.test secure\n' >"$WORK/tree/zones.list"
{
    echo "@ MX 10 mx"
    echo "mx A 127.0.0.1"
    printf '%s\n' "$sts_lines" | grep 'example\.test\. IN' | sed 's/ IN / /'
} >"$WORK/tree/records/example.test.zone"
{
    echo "@ MX 10 mx2"
    echo "mx2 A 127.0.0.1"
    printf '%s\n' "$sts_lines" | grep 'other\.test\. IN' | sed 's/ IN / /'
} >"$WORK/tree/records/other.test.zone"
netns_start_tree mta-sts-443

# serve NAME PORT: start Postern with config NAME and wait for its listener on PORT.
serve() {
    setsid "$BIN" serve -c "$WORK/$1.toml" >"$WORK/$1.log" 2>&1 &
    POSTERN_PGIDS+=("$!")
    for _ in $(seq 100); do
        port_open "$2" && return 0
        sleep 0.1
    done
    return 1
}
if ! serve b 25 || ! serve a 2525; then
    not_ok "both Posterns start" "$(tail -n 20 "$WORK/b.log" "$WORK/a.log")"
    summary_and_exit
fi
for _ in $(seq 50); do port_open 443 && break; sleep 0.1; done

python3 - <<'EOF'
import smtplib
with smtplib.SMTP("127.0.0.1", 2525, timeout=20) as s:
    s.ehlo("client.sender.test")
    for to, subject in (("bob@example.test", "sts443-enforced"), ("carol@other.test", "sts443-mismatch")):
        s.sendmail("alice@sender.test", [to],
                   f"From: alice@sender.test\r\nTo: {to}\r\nSubject: {subject}\r\n\r\nHello.\r\n")
EOF

delivered() { grep -rqs "Subject: $1" "$WORK/state-b"; }
for _ in $(seq 150); do
    delivered sts443-enforced && grep -q "matches no mx pattern" "$WORK/a.log" && break
    sleep 0.1
done

url="https://mta-sts.example.test/.well-known/mta-sts.txt"
if delivered sts443-enforced && grep -q "MTA-STS: policy for example.test fetched from $url (id " "$WORK/a.log"; then
    ok "(1) enforce: delivered to mx.example.test after fetching $url on port 443"
else
    not_ok "(1) enforce: delivered to mx.example.test after fetching $url on port 443" \
        "$(grep -i 'mta-sts\|example.test' "$WORK/a.log" | tail -n 15)"
fi

show=$("$BIN" mta-sts show example.test -c "$WORK/a.toml" 2>&1 || true)
if grep -q "enforce" <<<"$show" && grep -q "mx.example.test" <<<"$show"; then
    ok "(2) postern mta-sts show example.test prints the cached enforce policy"
else
    not_ok "(2) postern mta-sts show example.test prints the cached enforce policy" "$show"
fi

sleep 0.5
if ! delivered sts443-mismatch && grep -q "4.7.5 MX host mx2.other.test matches no mx pattern" "$WORK/a.log"; then
    ok "(3) enforce: MX mx2.other.test not in the policy, never delivered, deferred 4.7.5"
else
    not_ok "(3) enforce: MX mx2.other.test not in the policy, never delivered, deferred 4.7.5" \
        "$(grep -i 'other.test' "$WORK/a.log" | tail -n 15)"
fi

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
