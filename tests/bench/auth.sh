#!/usr/bin/env bash
# Cost of inbound authentication: messages/s accepted with [auth] off, and with SPF, DKIM
# and DMARC on (spf = "tag", dkim = "verify", dmarc = "tag"), same messages, same machine.
#
#   tests/bench/auth.sh            (BENCH_N=400 messages per run, BENCH_CONN=4 connections)
#
# Each message carries one RSA-2048 DKIM signature (made once with dkimpy) and comes from an
# SPF-authorised address, so "on" exercises every check. DNS comes from
# tests/interop/auth/dns.py in a private network namespace (loopback only) under
# tests/interop/lib/loopback-dns.sh; the answers are cached by Postern after the first
# message, as in production. The queue fsyncs every message in both runs (that usually
# dominates). Needs root (unshare), python3-dkim and python3-dnslib. Not part of cargo test.
# POSTERN_BIN overrides the binary (use a release build for numbers worth quoting).
set -euo pipefail
SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd -- "$SCRIPT_DIR/../.." && pwd)
BIN=${POSTERN_BIN:-$REPO_ROOT/target/release/postern}
[ -x "$BIN" ] || BIN=$REPO_ROOT/target/debug/postern
PY=/usr/bin/python3
N=${BENCH_N:-400}
CONN=${BENCH_CONN:-4}

if [ "${1:-}" != "--inside" ]; then
    exec unshare --net -- sh -c 'ip link set lo up && exec "$0" "$@"' \
        "$REPO_ROOT/tests/interop/lib/loopback-dns.sh" "$0" --inside
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/postern-auth-bench.XXXXXX")
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT
ZONE=$WORK/zone.txt
(cd "$WORK" && dknewkey bench >/dev/null 2>&1)
{
    echo "bench._domainkey.example.org $(tr -d '\n' <"$WORK/bench.dns")"
    echo "example.org v=spf1 ip4:127.0.0.0/8 -all"
    echo "_dmarc.example.org v=DMARC1; p=reject"
} >"$ZONE"
$PY "$REPO_ROOT/tests/interop/auth/dns.py" "$ZONE" 127.0.0.1 53 >/dev/null 2>&1 &
PIDS+=($!)
$PY -c 'import sys; sys.stdout.buffer.write(b"From: <alice@example.org>\r\nTo: <bob@local.test>\r\nSubject: bench\r\nDate: Mon, 1 Dec 2025 10:00:00 +0000\r\nMessage-ID: <bench@example.org>\r\n\r\n" + (b"x" * 76 + b"\r\n") * 40)' >"$WORK/m.eml"
dkimsign bench example.org "$WORK/bench.key" <"$WORK/m.eml" >"$WORK/signed.eml"

run() { # NAME AUTH-TOML
    local dir=$WORK/$1
    mkdir -p "$dir"
    cat >"$dir/p.toml" <<TOML
[server]
hostname = "mx.bench.test"
state_dir = "$dir/state"
[[listener]]
address = "127.0.0.1:2525"
max_connections_per_ip = 64
[relay]
local_domains = ["local.test"]
[[route]]
domain = "local.test"
next_hop = "maildir:mail"
[resolver]
nameservers = ["127.0.0.1:53"]
[auth]
$2
TOML
    RUST_LOG=warn "$BIN" serve -c "$dir/p.toml" >"$dir/log" 2>&1 &
    local pid=$!
    for _ in $(seq 50); do
        $PY -c 'import socket; socket.create_connection(("127.0.0.1", 2525), 1)' 2>/dev/null && break
        sleep 0.2
    done
    $PY - "$WORK/signed.eml" "$N" "$CONN" "$1" <<'PYEOF'
import smtplib, sys, threading, time
msg = open(sys.argv[1], "rb").read()
n, conns, name = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def worker(k):
    with smtplib.SMTP("127.0.0.1", 2525, timeout=60) as s:
        for _ in range(k):
            s.sendmail("alice@example.org", ["bob@local.test"], msg)
with smtplib.SMTP("127.0.0.1", 2525) as s:  # warm-up: fills the DNS cache
    s.sendmail("alice@example.org", ["bob@local.test"], msg)
t = time.monotonic()
ts = [threading.Thread(target=worker, args=(n // conns,)) for _ in range(conns)]
[x.start() for x in ts]; [x.join() for x in ts]
dt = time.monotonic() - t
print(f"{name}: {n // conns * conns} messages in {dt:.2f}s = {n // conns * conns / dt:.0f} messages/s")
PYEOF
    kill "$pid"; wait "$pid" 2>/dev/null || true
}
echo "binary: $BIN; $N messages of $(wc -c <"$WORK/signed.eml") bytes over $CONN connections"
run auth-off 'spf = "off"'
run auth-on 'spf = "tag"
dkim = "verify"
dmarc = "tag"'
