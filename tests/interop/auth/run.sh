#!/usr/bin/env bash
# DKIM interop with dkimpy (Debian python3-dkim), both directions, RSA and Ed25519.
#
#   tests/interop/auth/run.sh
#
# (a) Postern signs (one RSA and one Ed25519 key, from `postern dkim keygen`) mail it
#     relays to an SMTP sink; dkimpy's `dkimverify` and its library verify each signature.
# (b) dkimpy's `dkimsign` signs messages (keys from `dknewkey`); Postern receives them with
#     `[auth] dkim = "verify"` and must record dkim=pass in Authentication-Results.
# (c) Report mail: a second Postern with `[reports] tls_rpt = true` relays a message over
#     STARTTLS to a TLS sink (remote.test publishes `_smtp._tls` with rua= on the test
#     DNS); `postern reports send-now` queues the TLS-RPT report, and dkimverify must
#     accept the report the sink receives, signed with d= the report's From domain; the
#     same for the DMARC aggregate report about a dkimsign-signed message it received.
#
# Everything runs in a private network namespace (its own loopback) under
# tests/interop/lib/loopback-dns.sh, so /etc/resolv.conf names 127.0.0.1 and the only DNS
# server is dns.py beside this file, answering from a zone file of the test keys; no
# question leaves the machine. Needs root (unshare). python3-dkim and python3-dnslib are
# installed with apt-get when missing.
#
# POSTERN_BIN overrides the binary (default: target/debug/postern). Prints "ok - ..." /
# "not ok - ..." / "skip - ..." lines and ends with "N passed, M failed".
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
INTEROP_DIR=$(cd -- "$SCRIPT_DIR/.." && pwd)
REPO_ROOT=$(cd -- "$INTEROP_DIR/../.." && pwd)
BIN=${POSTERN_BIN:-$REPO_ROOT/target/debug/postern}
PY=/usr/bin/python3

if [ "${1:-}" != "--inside" ]; then
    if [ "$(id -u)" != 0 ] || ! command -v unshare >/dev/null; then
        if [ "${POSTERN_REQUIRE_ALL_TESTS:-}" = 1 ]; then
            echo "not ok - dkimpy interop needs root and unshare(1) (POSTERN_REQUIRE_ALL_TESTS=1)"
            echo "0 passed, 1 failed"
            exit 1
        fi
        echo "skip - dkimpy interop needs root and unshare(1)"
        echo "0 passed, 0 failed"
        exit 0
    fi
    if ! $PY -c 'import dkim, dnslib, nacl' 2>/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-dkim python3-dnslib python3-nacl >/dev/null 2>&1 || true
    fi
    if ! $PY -c 'import dkim, dnslib, nacl' 2>/dev/null || ! command -v dkimverify >/dev/null; then
        echo "not ok - dkimpy interop: python3-dkim / python3-dnslib not installable"
        echo "0 passed, 1 failed"
        exit 1
    fi
    # A new network namespace: its own loopback, so the test DNS server can use port 53.
    exec unshare --net -- sh -c 'ip link set lo up && exec "$0" "$@"' \
        "$INTEROP_DIR/lib/loopback-dns.sh" "$0" --inside
fi

PASSED=0
FAILED=0
ok() { echo "ok - $1"; PASSED=$((PASSED + 1)); }
nok() { echo "not ok - $1"; FAILED=$((FAILED + 1)); }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/postern-dkim-interop.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/keys" "$WORK/out"
ZONE="$WORK/zone.txt"
: >"$ZONE"

$PY "$SCRIPT_DIR/dns.py" "$ZONE" 127.0.0.1 53 >"$WORK/dns.log" 2>&1 &
PIDS+=($!)
$PY "$SCRIPT_DIR/sink.py" 2626 "$WORK/out" >"$WORK/sink.log" 2>&1 &
PIDS+=($!)

# Postern's keys: the record is the quoted strings of the last line, joined.
publish_postern_key() { # SELECTOR ALGORITHM
    local out
    out=$("$BIN" dkim keygen --domain example.org --selector "$1" --algorithm "$2" --out "$WORK/keys")
    local value
    value=$(printf '%s\n' "$out" | tail -1 | sed -e 's/^[^"]*"//' -e 's/"$//' -e 's/" "//g')
    echo "$1._domainkey.example.org $value" >>"$ZONE"
}
publish_postern_key pr rsa2048
publish_postern_key pe ed25519

# dkimpy's keys: dknewkey writes NAME.key and NAME.dns.
(cd "$WORK/keys" && dknewkey dkr >/dev/null 2>&1 && dknewkey --ktype ed25519 dke >/dev/null 2>&1)
for s in dkr dke; do
    echo "$s._domainkey.example.org $(tr -d '\n' <"$WORK/keys/$s.dns")" >>"$ZONE"
done

cat >"$WORK/postern.toml" <<EOF
[server]
hostname = "mx.postern.test"
state_dir = "$WORK/state"

[[listener]]
address = "127.0.0.1:2525"

[relay]
local_domains = ["local.test"]
trusted_networks = ["127.0.0.0/8"]

[[route]]
domain = "local.test"
next_hop = "maildir:mail"

[[route]]
domain = "remote.test"
next_hop = "smtp:[127.0.0.1]:2626"

[outbound]
tls = "none"

[resolver]
nameservers = ["127.0.0.1:53"]
timeout = "2s"

[auth]
dkim = "verify"
exempt_trusted_networks = false

[[auth.dkim_sign]]
domain = "example.org"
selector = "pr"
key = "$WORK/keys/example.org.pr.key"
sources = ["trusted_networks"]

[[auth.dkim_sign]]
domain = "example.org"
selector = "pe"
key = "$WORK/keys/example.org.pe.key"
algorithm = "ed25519-sha256"
sources = ["trusted_networks"]
EOF
RUST_LOG=info "$BIN" serve -c "$WORK/postern.toml" >"$WORK/postern.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do
    $PY -c 'import socket; socket.create_connection(("127.0.0.1", 2525), 1)' 2>/dev/null && break
    sleep 0.2
done

message() { # FROM SUBJECT
    printf 'From: Alice <%s>\r\nTo: someone\r\nSubject: %s\r\nDate: Mon, 1 Dec 2025 10:00:00 +0000\r\nMessage-ID: <%s@interop.test>\r\n\r\nHello from the DKIM interop test.\r\n' "$1" "$2" "$2"
}
sendto() { # PORT FROM TO FILE
    $PY - "$@" <<'PYEOF'
import smtplib, sys
with open(sys.argv[4], "rb") as f:
    data = f.read()
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20) as s:
    s.sendmail(sys.argv[2], [sys.argv[3]], data)
PYEOF
}
send() { sendto 2525 "$@"; } # FROM TO FILE
wait_file() { # PATTERN
    for _ in $(seq 100); do
        # shellcheck disable=SC2086
        ls $1 >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    return 1
}

wait_grep() { # TEXT DIR: a file in DIR contains TEXT (Maildir files appear whole, by rename)
    for _ in $(seq 100); do
        grep -lF "$1" "$2"/* >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    return 1
}

# (a) Postern signs, dkimpy verifies.
message alice@example.org postern-signed >"$WORK/a.eml"
if send alice@example.org carol@remote.test "$WORK/a.eml" && wait_file "$WORK/out/1.eml"; then
    if dkimverify <"$WORK/out/1.eml" >"$WORK/v.log" 2>&1; then
        ok "dkimverify accepts the first signature Postern made"
    else
        nok "dkimverify rejects Postern's signature: $(cat "$WORK/v.log")"
    fi
    for alg in rsa-sha256 ed25519-sha256; do
        if $PY - "$WORK/out/1.eml" "$alg" <<'PYEOF'
import sys, dkim
msg = open(sys.argv[1], "rb").read()
d = dkim.DKIM(msg)
sigs = [i for i, (n, v) in enumerate(d.headers) if n.lower() == b"dkim-signature"]
for idx in range(len(sigs)):
    fields = dict(x.strip().split(b"=", 1) for x in d.headers[sigs[idx]][1].split(b";") if b"=" in x)
    if fields[b"a"].strip().decode() == sys.argv[2]:
        sys.exit(0 if dkim.DKIM(msg).verify(idx=idx) else 1)
sys.exit(2)
PYEOF
        then
            ok "dkimpy verifies Postern's $alg signature"
        else
            nok "dkimpy does not verify Postern's $alg signature"
        fi
    done
else
    nok "Postern did not relay the message to be signed ($(tail -3 "$WORK/postern.log"))"
fi

# (b) dkimpy signs, Postern verifies.
n=0
for case in "dkr rsa-sha256" "dke ed25519-sha256"; do
    set -- $case
    n=$((n + 1))
    message alice@example.org "dkimpy-$2" >"$WORK/b$n.eml"
    dkimsign --signalg "$2" "$1" example.org "$WORK/keys/$1.key" <"$WORK/b$n.eml" >"$WORK/b$n.signed"
    if send alice@example.org bob@local.test "$WORK/b$n.signed" \
        && wait_grep "dkimpy-$2" "$WORK/state/mail/bob/new"; then
        f=$(grep -l "dkimpy-$2" "$WORK"/state/mail/bob/new/* | head -1)
        if grep -Eq "dkim=pass header\.(d=|i=@)example\.org header\.s=$1" "$f"; then
            ok "Postern verifies a dkimsign $2 signature"
        else
            nok "Postern does not verify a dkimsign $2 signature: $(grep -A4 Authentication-Results "$f")"
        fi
    else
        nok "dkimsign $2 message not delivered within 20 s ($(tail -3 "$WORK/postern.log"))"
    fi
done

# (c) Report mail: Postern signs its TLS-RPT report, dkimpy verifies.
mkdir -p "$WORK/rout"
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=sink.test -days 2 \
    -keyout "$WORK/sink.pem" -out "$WORK/sink.crt" >/dev/null 2>&1
cat "$WORK/sink.crt" >>"$WORK/sink.pem"
$PY "$SCRIPT_DIR/sink.py" 2627 "$WORK/rout" "$WORK/sink.pem" >"$WORK/rsink.log" 2>&1 &
PIDS+=($!)
cat >>"$ZONE" <<EOF
_smtp._tls.remote.test v=TLSRPTv1; rua=mailto:tlsrpt@remote.test
_dmarc.example.org v=DMARC1; p=none; rua=mailto:dmarc@remote.test
example.org._report._dmarc.remote.test v=DMARC1
EOF
cat >"$WORK/reports.toml" <<EOF
[server]
hostname = "mx.postern.test"
state_dir = "$WORK/rstate"

[[listener]]
address = "127.0.0.1:2535"

[relay]
local_domains = ["local.test"]
trusted_networks = ["127.0.0.0/8"]

[[route]]
domain = "local.test"
next_hop = "maildir:mail"

[[route]]
domain = "remote.test"
next_hop = "smtp:[127.0.0.1]:2627"

[outbound]
tls = "may"

[resolver]
nameservers = ["127.0.0.1:53"]
timeout = "2s"

[[auth.dkim_sign]]
domain = "example.org"
selector = "pr"
key = "$WORK/keys/example.org.pr.key"
sources = ["trusted_networks"]

[auth]
dkim = "verify"
dmarc = "tag"
exempt_trusted_networks = false

[reports]
tls_rpt = true
dmarc = true
organization = "Postern Interop"
from = "tlsrpt-reports@example.org"
EOF
RUST_LOG=info "$BIN" serve -c "$WORK/reports.toml" >"$WORK/reports.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do
    $PY -c 'import socket; socket.create_connection(("127.0.0.1", 2535), 1)' 2>/dev/null && break
    sleep 0.2
done
report_check() { # FILE NAME
    if ! dkimverify <"$1" >"$WORK/rv.log" 2>&1; then
        nok "dkimverify rejects the $2 report's signature: $(cat "$WORK/rv.log")"
    elif d=$($PY - "$1" <<'PYEOF'
import sys, dkim
d = dkim.DKIM(open(sys.argv[1], "rb").read())
sigs = [v for n, v in d.headers if n.lower() == b"dkim-signature"]
frm = [v for n, v in d.headers if n.lower() == b"from"][0].decode()
dom = frm.strip().rstrip(">").rsplit("@", 1)[1].lower()
tags = dict(x.strip().split(b"=", 1) for x in sigs[0].split(b";") if b"=" in x)
got = tags[b"d"].strip().decode().lower()
print(got)
sys.exit(0 if len(sigs) == 1 and got == dom else 1)
PYEOF
    ); then
        ok "dkimverify accepts Postern's $2 report (d=$d, its From domain)"
    else
        nok "the $2 report's signature is not d= its From domain (d=$d)"
    fi
}
message alice@example.org report-session >"$WORK/c.eml"
if sendto 2535 alice@example.org dave@remote.test "$WORK/c.eml" && wait_file "$WORK/rout/1.eml" \
    && sendto 2535 alice@example.org bob@local.test "$WORK/b1.signed" \
    && wait_file "$WORK/rstate/mail/bob/new/*" \
    && "$BIN" -c "$WORK/reports.toml" reports send-now >"$WORK/send-now.log" 2>&1 \
    && wait_file "$WORK/rout/3.eml"; then
    f=$(grep -l '^TLS-Report-Domain: remote.test' "$WORK"/rout/*.eml | head -1 || true)
    if [ -n "$f" ]; then report_check "$f" TLS-RPT; else nok "no TLS-RPT report at the sink"; fi
    f=$(grep -l '^Subject: Report Domain: example.org' "$WORK"/rout/*.eml | head -1 || true)
    if [ -n "$f" ]; then report_check "$f" "DMARC aggregate"; else nok "no DMARC aggregate report at the sink"; fi
else
    nok "the reports did not reach the sink ($(cat "$WORK/send-now.log" 2>/dev/null); $(tail -3 "$WORK/reports.log"))"
fi

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
