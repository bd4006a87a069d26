# Shared by the shell test suites (tests/interop/run.sh, tests/interop/postfix/run.sh,
# tests/interop/tls/run.sh, tests/bench/run.sh): results, tools, process groups, ports.
# Source it; it only defines functions. The caller keeps the counters PASSED, FAILED and
# SKIPPED, and the array POSTERN_PGIDS.

# --- results: "ok - NAME", "not ok - NAME" with "#" detail lines, "skip - NAME" --------

ok() { PASSED=$((PASSED + 1)); echo "ok - $1"; }
skip() { SKIPPED=$((${SKIPPED:-0} + 1)); echo "skip - $1"; }

# not_ok NAME DETAIL...: a failed test, with its details as "#" comment lines.
not_ok() {
    local name=$1
    shift
    FAILED=$((FAILED + 1))
    echo "not ok - $name"
    local d
    for d in "$@"; do
        printf '%s\n' "$d" | sed 's/\r$//; s/^/#   /'
    done
}

# --- tools -----------------------------------------------------------------------------

# apt_install TAG PACKAGE...: install with apt-get, without recommends. A Postfix package
# is told "No configuration", so it writes no main.cf and starts no system instance. On
# failure prints the end of apt's output, prefixed by TAG, and exits.
apt_install() {
    local tag=$1
    shift
    echo "$tag: installing $* ..." >&2
    export DEBIAN_FRONTEND=noninteractive
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections 2>/dev/null || true
    local apt_log
    apt_log=$(mktemp)
    if ! apt-get update -qq >"$apt_log" 2>&1 \
        || ! apt-get install -y -qq --no-install-recommends "$@" >>"$apt_log" 2>&1; then
        echo "$tag: apt-get could not install $*:" >&2
        tail -n 20 "$apt_log" >&2
        rm -f "$apt_log"
        exit 1
    fi
    rm -f "$apt_log"
}

# wait_for_binary TAG PATH: the binary may be being rebuilt; wait up to a minute for it.
wait_for_binary() {
    for _ in $(seq 60); do
        [ -x "$2" ] && return 0
        sleep 1
    done
    echo "$1: postern binary not found at $2 (run 'cargo build' or set POSTERN_BIN)" >&2
    exit 1
}

# --- processes and ports ---------------------------------------------------------------

# Each Postern runs as the leader of its own process group (setsid), with the
# loopback-dns wrapper in the same group: stop every group in POSTERN_PGIDS, TERM first.
stop_posterns() {
    local g
    for g in "${POSTERN_PGIDS[@]}"; do
        kill -TERM -- "-$g" 2>/dev/null || continue
        for _ in $(seq 50); do
            kill -0 -- "-$g" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$g" 2>/dev/null || true
    done
    POSTERN_PGIDS=()
    wait 2>/dev/null || true
}

# port_open PORT: whether something accepts connections on 127.0.0.1:PORT.
port_open() {
    python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$1" 2>/dev/null
}

# pick_ports [N]: N (default 3) distinct free ports on 127.0.0.1, held open together while
# they are chosen.
pick_ports() {
    python3 - "${1:-3}" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PY
}
