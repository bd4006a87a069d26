#!/usr/bin/env bash
# Postern vs Postfix on the same machine, same disk, same load generators.
#
#   tests/bench/run.sh            full run (release build, several rounds; ~10 minutes)
#   tests/bench/run.sh --smoke    seconds-long version for CI, so the script cannot rot
#   BENCH_SKIP_BUILD=1 ...        use the binaries already built (target/{debug,release})
#   BENCH_POSTERN=PATH ...        another postern binary (an older build, for before/after)
#   BENCH_SIZES="5120" BENCH_CONCS="20 100" ...   fewer acceptance cells
#   tests/bench/run.sh --out F    also write the results as JSON to F
#   tests/bench/run.sh --only M,M  only these measures: fsync, acceptance, tls, relay,
#                                  memory, backlog (default: all)
#
# The backlog measure queues BENCH_BACKLOG messages (200,000; 200 in --smoke) for an
# unreachable destination on both servers, then reports memory, acceptance during the
# backlog, and how soon after a restart fresh mail is delivered. It runs last (the
# backlog stays until the end). BENCH_BACKLOG=0 skips it.
#
# Both servers fsync every message before answering 250. Loads: Postfix's own smtp-source
# (plaintext acceptance and relay), and tests/bench/loadgen (STARTTLS acceptance, latency,
# idle connections, the disk's fsync rate). Relay goes to Postfix's smtp-sink. Everything
# runs on 127.0.0.1 and stops by itself. Needs root (a private Postfix instance).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SMOKE=0
OUT=""
ONLY="fsync,acceptance,tls,relay,memory,backlog"
while [ $# -gt 0 ]; do
    case "$1" in
        --smoke) SMOKE=1; shift ;;
        --out) OUT=$2; shift 2 ;;
        --only) ONLY=$2; shift 2 ;;
        *) echo "usage: $0 [--smoke] [--out FILE] [--only fsync,acceptance,tls,relay,memory,backlog]" >&2; exit 2 ;;
    esac
done
wanted() { case ",$ONLY," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
[ "$(id -u)" -eq 0 ] || { echo "bench: run as root (a private Postfix instance needs it)" >&2; exit 1; }

# shellcheck source=../interop/lib/harness.sh
. "$ROOT/tests/interop/lib/harness.sh"
# shellcheck source=../interop/lib/postfix.sh
. "$ROOT/tests/interop/lib/postfix.sh"

# --- tools ------------------------------------------------------------------------------
need=()
[ -x /usr/sbin/smtp-source ] && [ -x /usr/lib/postfix/sbin/master ] || need+=(postfix)
command -v openssl >/dev/null || need+=(openssl)
command -v python3 >/dev/null || need+=(python3)
if [ "${#need[@]}" -gt 0 ]; then
    postfix_install_quietly bench "${need[@]}"
fi

if [ "$SMOKE" -eq 1 ]; then
    PROFILE=debug
    [ -n "${BENCH_SKIP_BUILD:-}" ] || (cd "$ROOT" && cargo build -q -p postern --bin postern && cargo build -q -p postern-loadgen)
    ROUNDS=1 N=60 NTLS=40 NIDLE=50 NFSYNC=30 SIZES="5120" CONCS="20"
    NBACKLOG=${BENCH_BACKLOG:-200} PAUSE=1
    # Idle/DATA connections are held HOLD seconds and measured after SETTLE.
    HOLD=3 SETTLE=2
else
    PROFILE=release
    [ -n "${BENCH_SKIP_BUILD:-}" ] || (cd "$ROOT" && cargo build -q --release -p postern --bin postern && cargo build -q --release -p postern-loadgen)
    ROUNDS=3 N=2000 NTLS=1000 NIDLE=1000 NFSYNC=500 SIZES="5120 102400" CONCS="1 20 100"
    NBACKLOG=${BENCH_BACKLOG:-200000} PAUSE=10
    HOLD=6 SETTLE=4
fi
SIZES=${BENCH_SIZES:-$SIZES} CONCS=${BENCH_CONCS:-$CONCS}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${BENCH_POSTERN:-$TARGET/$PROFILE/postern}
LOADGEN=$TARGET/$PROFILE/loadgen

WORK=$(mktemp -d /tmp/postern-bench.XXXXXX)
chmod 755 "$WORK"
PIDS=()
PF_ETC=$WORK/postfix/etc
cleanup() {
    [ -d "$PF_ETC" ] && postfix -c "$PF_ETC" stop >/dev/null 2>&1 || true
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -n "${BENCH_KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
SINK=$(free_port); PN=$(free_port); PF=$(free_port)
# Nothing listens here: the backlog's destination (connection refused at once).
DEAD=$(free_port)
wait_port() { # wait_port PORT [SECONDS]
    for _ in $(seq $((${2:-10} * 20))); do
        port_open "$1" && return 0
        sleep 0.05
    done
    echo "bench: nothing listens on 127.0.0.1:$1" >&2; return 1
}

# --- the sink ---------------------------------------------------------------------------
start_sink() { # start_sink [max-messages]
    local extra=()
    [ -n "${1:-}" ] && extra=(-M "$1")
    smtp-sink -u nobody "${extra[@]}" "127.0.0.1:$SINK" 1000 >/dev/null 2>&1 &
    SINK_PID=$!
    PIDS+=("$SINK_PID")
    wait_port "$SINK"
}
stop_sink() { kill "$SINK_PID" 2>/dev/null || true; wait "$SINK_PID" 2>/dev/null || true; }

# --- Postern ----------------------------------------------------------------------------
mkdir -p "$WORK/postern"
cat >"$WORK/postern/postern.toml" <<EOF
[server]
hostname = "mx.bench.test"
state_dir = "$WORK/postern/state"
[[listener]]
address = "127.0.0.1:$PN"
mode = "starttls"
max_connections = 5000
max_connections_per_ip = 5000
[relay]
local_domains = []
trusted_networks = ["127.0.0.0/8"]
[[route]]
domain = "backlog.test"
next_hop = "smtp:[127.0.0.1]:$DEAD"
[[route]]
domain = "*"
next_hop = "smtp:[127.0.0.1]:$SINK"
[outbound]
tls = "may"
EOF
start_postern() {
    RUST_LOG=warn "$BIN" serve -c "$WORK/postern/postern.toml" 2>>"$WORK/postern/log" &
    POSTERN_PID=$!
    PIDS+=("$POSTERN_PID")
}
start_postern

# --- Postfix (private instance) -----------------------------------------------------------
mkdir -p "$PF_ETC" "$WORK/postfix/spool" "$WORK/postfix/data"
chown postfix "$WORK/postfix/data"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=mx.bench.test \
    -keyout "$PF_ETC/key.pem" -out "$PF_ETC/cert.pem" >/dev/null 2>&1
{
    postfix_main_cf "$PF_ETC" "$WORK/postfix/spool" "$WORK/postfix/data" "$WORK/postfix/log" "$WORK"
    cat <<EOF
myhostname = mx-postfix.bench.test
relayhost = [127.0.0.1]:$SINK
transport_maps = texthash:$PF_ETC/transport
smtp_tls_security_level = may
smtpd_tls_security_level = may
smtpd_tls_chain_files = $PF_ETC/key.pem, $PF_ETC/cert.pem
# A fair comparison: no artificial client slow-down, room for every connection.
in_flow_delay = 0
smtpd_error_sleep_time = 0
default_process_limit = 1200
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
default_destination_concurrency_limit = 50
EOF
} >"$PF_ETC/main.cf"
echo "backlog.test smtp:[127.0.0.1]:$DEAD" >"$PF_ETC/transport"
postfix_master_cf "127.0.0.1:$PF inet n - n - - smtpd" >"$PF_ETC/master.cf"
if ! out=$(postfix -c "$PF_ETC" start 2>&1); then echo "bench: Postfix did not start: $out" >&2; cat "$WORK/postfix/log" >&2 2>/dev/null || true; exit 1; fi
wait_port "$PF"
wait_port "$PN"
PF_VERSION=$(postconf -d -h mail_version)

# --- measurements ---------------------------------------------------------------------------
median() { python3 -c 'import sys,statistics; print(round(statistics.median(float(x) for x in sys.argv[1:]),1))' "$@"; }
now() { python3 -c 'import time; print(time.time())'; }
# Wait until both servers have delivered everything queued so far, so that one
# measurement does not pay for the previous one's deliveries (at most 60 s).
drain() {
    local i pn pf
    for i in $(seq 600); do
        pn=$(find "$WORK/postern/state/queue/active" -name '*.msg' 2>/dev/null | wc -l)
        pf=$(find "$WORK/postfix/spool/incoming" "$WORK/postfix/spool/active" "$WORK/postfix/spool/deferred" -type f 2>/dev/null | wc -l)
        [ "$pn" -eq 0 ] && [ "$pf" -eq 0 ] && return 0
        # A message deferred while the sink was down waits for its retry time: try now.
        if [ "$i" -eq 20 ]; then
            "$BIN" queue flush --all -c "$WORK/postern/postern.toml" >/dev/null 2>&1 || true
            postqueue -c "$PF_ETC" -f >/dev/null 2>&1 || true
        fi
        sleep 0.1
    done
    echo "bench: queues did not drain (postern $pn, postfix $pf)" >&2
}
source_rate() { # source_rate PORT CONC COUNT SIZE -> messages/s (smtp-source)
    local t0 t1
    [ -n "${NODRAIN:-}" ] || drain
    t0=$(now)
    smtp-source -d -s "$2" -m "$3" -l "$4" -f load@bench.test -t sink@bench.test -M bench.test "127.0.0.1:$1" >/dev/null
    t1=$(now)
    python3 -c "print(round($3/($t1-$t0),1))"
}
jq_field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
RESULTS=()
row() { # row NAME POSTERN POSTFIX UNIT higher|lower
    local ratio
    ratio=$(python3 -c "a,b=float('$2'),float('$3'); print(round(a/b,2) if b else 'n/a')")
    printf '%-46s %12s %12s %8s  %s\n' "$1" "$2" "$3" "$ratio" "$4"
    RESULTS+=("{\"name\":\"$1\",\"postern\":$2,\"postfix\":$3,\"ratio\":\"$ratio\",\"unit\":\"$4\"}")
}

echo "Postern $("$BIN" --version | cut -d' ' -f2) ($PROFILE) vs Postfix $PF_VERSION on $(nproc) cores; spool on $(df -P "$WORK" | awk 'NR==2{print $1}')"
printf '%-46s %12s %12s %8s  %s\n' "measure" "postern" "postfix" "ratio" "unit"

if wanted fsync; then
    FS=$("$LOADGEN" fsync "$WORK/fsync" "$NFSYNC")
    row "disk fsync rate (4 KiB file + fsync)" "$(jq_field "$FS" rate)" "$(jq_field "$FS" rate)" "fsync/s"
fi

start_sink
if wanted acceptance; then
    for size in $SIZES; do
        for c in $CONCS; do
            n=$N
            [ "$c" -eq 1 ] && n=$((N / 4))
            a=() b=()
            for _ in $(seq "$ROUNDS"); do
                a+=("$(source_rate "$PN" "$c" "$n" "$size")")
                b+=("$(source_rate "$PF" "$c" "$n" "$size")")
            done
            row "acceptance plaintext c=$c size=$((size / 1024))KiB" "$(median "${a[@]}")" "$(median "${b[@]}")" "msg/s"
        done
    done
fi

if wanted tls; then
    a=() b=() pa=() pb=() qa=() qb=()
    for _ in $(seq "$ROUNDS"); do
        drain; r=$("$LOADGEN" smtp "127.0.0.1:$PN" 20 "$NTLS" 5120 tls); a+=("$(jq_field "$r" rate)"); pa+=("$(jq_field "$r" p50_ms)"); qa+=("$(jq_field "$r" p99_ms)")
        drain; r=$("$LOADGEN" smtp "127.0.0.1:$PF" 20 "$NTLS" 5120 tls); b+=("$(jq_field "$r" rate)"); pb+=("$(jq_field "$r" p50_ms)"); qb+=("$(jq_field "$r" p99_ms)")
    done
    row "acceptance STARTTLS c=20 size=5KiB" "$(median "${a[@]}")" "$(median "${b[@]}")" "msg/s"
    row "latency end-of-DATA to 250, p50, c=20, TLS" "$(median "${pa[@]}")" "$(median "${pb[@]}")" "ms"
    row "latency end-of-DATA to 250, p99, c=20, TLS" "$(median "${qa[@]}")" "$(median "${qb[@]}")" "ms"
fi
drain
stop_sink

relay_rate() { # relay_rate PORT COUNT -> messages/s from first send until the sink has all
    local t0 t1
    drain
    start_sink "$2"
    t0=$(now)
    smtp-source -d -s 20 -m "$2" -l 5120 -f load@bench.test -t sink@bench.test -M bench.test "127.0.0.1:$1" >/dev/null
    for _ in $(seq 6000); do kill -0 "$SINK_PID" 2>/dev/null || break; sleep 0.05; done
    t1=$(now)
    stop_sink
    start_sink
    drain
    stop_sink
    python3 -c "print(round($2/($t1-$t0),1))"
}
if wanted relay; then
    # Let earlier deliveries drain before the relay measurement.
    sleep 2
    a=() b=()
    for _ in $(seq "$ROUNDS"); do
        a+=("$(relay_rate "$PN" "$N")")
        b+=("$(relay_rate "$PF" "$N")")
    done
    row "relay end to end (smtp-source -> sink) c=20" "$(median "${a[@]}")" "$(median "${b[@]}")" "msg/s"
fi

# Proportional set size (shared pages divided among their users), so that Postfix's many
# smtpd processes are not charged the shared libraries once per process.
pss_kib() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
rss_kib() { pss_kib "$1"; }
smtpd_rss_kib() { local s=0 p; for p in $(ps -C smtpd -o pid=); do s=$((s + $(pss_kib "$p"))); done; echo "$s"; }
if wanted memory; then
    base_pn=$(rss_kib "$POSTERN_PID")
    "$LOADGEN" idle "127.0.0.1:$PN" "$NIDLE" "$HOLD" >"$WORK/idle-pn" &
    IDLE=$!; sleep "$SETTLE"
    held_pn=$(rss_kib "$POSTERN_PID"); wait "$IDLE" || true
    "$LOADGEN" idle "127.0.0.1:$PF" "$NIDLE" "$HOLD" >"$WORK/idle-pf" &
    IDLE=$!; sleep "$SETTLE"
    held_pf=$(smtpd_rss_kib); n_pf=$(ps -C smtpd -o pid= | wc -l); wait "$IDLE" || true
    per_pn=$(python3 -c "print(round(max($held_pn-$base_pn,0)/$NIDLE,1))")
    per_pf=$(python3 -c "print(round($held_pf/max($n_pf,1),1))")
    row "memory (PSS) per idle connection ($NIDLE open)" "$per_pn" "$per_pf" "KiB"
    row "memory (PSS) with $NIDLE idle connections" "$held_pn" "$held_pf" "KiB"

    echo "established: postern $(cat "$WORK/idle-pn"), postfix $(cat "$WORK/idle-pf") ($n_pf smtpd processes)"

    # The same, with every session inside DATA (1 KiB received, the rest outstanding).
    base_pn=$(rss_kib "$POSTERN_PID")
    "$LOADGEN" data "127.0.0.1:$PN" "$NIDLE" "$HOLD" >"$WORK/data-pn" &
    IDLE=$!; sleep "$SETTLE"
    held_pn=$(rss_kib "$POSTERN_PID"); wait "$IDLE" || true
    "$LOADGEN" data "127.0.0.1:$PF" "$NIDLE" "$HOLD" >"$WORK/data-pf" &
    IDLE=$!; sleep "$SETTLE"
    held_pf=$(smtpd_rss_kib); n_pf=$(ps -C smtpd -o pid= | wc -l); wait "$IDLE" || true
    row "memory (PSS) per session in DATA ($NIDLE open)" "$(python3 -c "print(round(max($held_pn-$base_pn,0)/$NIDLE,1))")" "$(python3 -c "print(round($held_pf/max($n_pf,1),1))")" "KiB"
    echo "in DATA: postern $(cat "$WORK/data-pn"), postfix $(cat "$WORK/data-pf") ($n_pf smtpd processes)"
fi

# --- backlog: NBACKLOG messages for a destination that refuses connections ---------------
# Postfix's queue processes: master and its children except the smtpd listeners (the
# counterpart of Postern's one process, whose listener costs little when idle).
pf_queue_pss_kib() {
    local master s=0 p
    master=$(tr -d ' \n' <"$WORK/postfix/spool/pid/master.pid" 2>/dev/null || echo 0)
    for p in "$master" $(ps --ppid "$master" -o pid= -o comm= | awk '$2 != "smtpd" {print $1}'); do
        s=$((s + $(pss_kib "$p")))
    done
    echo "$s"
}
pn_queued() { find "$WORK/postern/state/queue/active" -name '*.msg' 2>/dev/null | wc -l; }
pn_deferred() { find "$WORK/postern/state/queue/active" -name '*.state' 2>/dev/null | wc -l; }
pf_deferred() { find "$WORK/postfix/spool/deferred" -type f 2>/dev/null | wc -l; }
pf_queued() { find "$WORK/postfix/spool/incoming" "$WORK/postfix/spool/active" "$WORK/postfix/spool/deferred" -type f 2>/dev/null | wc -l; }
# Until every backlog message has had its first (failed) attempt, at most LIMIT seconds.
settle_backlog() {
    local i
    for i in $(seq $(($1 * 2))); do
        [ "$(pn_deferred)" -ge "$NBACKLOG" ] && [ "$(pf_deferred)" -ge "$NBACKLOG" ] && return 0
        sleep 0.5
    done
    echo "bench: backlog not settled after $1 s (postern $(pn_deferred) deferred, postfix $(pf_deferred))" >&2
}
# fresh_delivery PORT: seconds from the listener opening (just restarted) until the sink
# has a fresh message, and from its acceptance until then: "START ACCEPTED".
fresh_delivery() {
    local t0=$1 port=$2 t1 t2
    wait_port "$port" 600
    start_sink 1
    smtp-source -s 1 -m 1 -l 5120 -f load@bench.test -t sink@bench.test -M bench.test "127.0.0.1:$port" >/dev/null
    t1=$(now)
    for _ in $(seq 2400); do kill -0 "$SINK_PID" 2>/dev/null || break; sleep 0.05; done
    t2=$(now)
    if kill -0 "$SINK_PID" 2>/dev/null; then
        echo "bench: the fresh message did not arrive within 120 s" >&2
        stop_sink
    fi
    python3 -c "print(round($t2-$t0,2), round($t2-$t1,2))"
}
if wanted backlog && [ "$NBACKLOG" -gt 0 ]; then
    echo "building a backlog of $NBACKLOG messages on each server (both at once) ..."
    t0=$(now)
    smtp-source -d -s 20 -m "$NBACKLOG" -l 5120 -f load@bench.test -t rcpt@backlog.test -M bench.test "127.0.0.1:$PN" >/dev/null &
    INJ_PN=$!
    smtp-source -d -s 20 -m "$NBACKLOG" -l 5120 -f load@bench.test -t rcpt@backlog.test -M bench.test "127.0.0.1:$PF" >/dev/null &
    INJ_PF=$!
    wait "$INJ_PN"; t_pn=$(now)
    wait "$INJ_PF"; t_pf=$(now)
    echo "injected: postern in $(python3 -c "print(round($t_pn-$t0))") s, postfix in $(python3 -c "print(round($t_pf-$t0))") s (concurrently)"
    settle_backlog $((60 + NBACKLOG / 500))
    echo "queued: postern $(pn_queued) ($(pn_deferred) deferred), postfix $(pf_queued) ($(pf_deferred) deferred)"
    row "backlog $NBACKLOG: memory (PSS) of the queue" "$(rss_kib "$POSTERN_PID")" "$(pf_queue_pss_kib)" "KiB"

    # Fresh mail while the backlog waits: acceptance, and delivery to the sink.
    start_sink
    a=() b=()
    for _ in $(seq "$ROUNDS"); do
        a+=("$(NODRAIN=1 source_rate "$PN" 20 "$N" 5120)")
        b+=("$(NODRAIN=1 source_rate "$PF" 20 "$N" 5120)")
    done
    row "backlog: acceptance plaintext c=20 size=5KiB" "$(median "${a[@]}")" "$(median "${b[@]}")" "msg/s"
    sleep "$PAUSE"
    stop_sink

    # Restart with the backlog on disk: how soon is fresh mail delivered?
    kill -TERM "$POSTERN_PID" 2>/dev/null || true
    wait "$POSTERN_PID" 2>/dev/null || true
    t0=$(now); start_postern
    r_pn=$(fresh_delivery "$t0" "$PN")
    postfix -c "$PF_ETC" stop >/dev/null 2>&1 || true
    for _ in $(seq 100); do port_open "$PF" || break; sleep 0.1; done
    t0=$(now); postfix -c "$PF_ETC" start >/dev/null 2>&1
    r_pf=$(fresh_delivery "$t0" "$PF")
    row "backlog: restart to fresh mail delivered" "${r_pn% *}" "${r_pf% *}" "s"
    row "backlog: fresh mail accepted to delivered" "${r_pn#* }" "${r_pf#* }" "s"
    sleep "$PAUSE"
    row "backlog: memory (PSS) after restart + ${PAUSE} s" "$(rss_kib "$POSTERN_PID")" "$(pf_queue_pss_kib)" "KiB"
fi

if [ -n "$OUT" ]; then
    mkdir -p "$(dirname "$OUT")"
    (IFS=,; echo "{\"profile\":\"$PROFILE\",\"postfix\":\"$PF_VERSION\",\"cores\":$(nproc),\"results\":[${RESULTS[*]}]}") >"$OUT"
    echo "results written to $OUT"
fi
