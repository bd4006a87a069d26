# Shared by the interop scripts that run in a private network and mount namespace over the
# signed DNS tree of tests/support/dnssec/signed-tree.sh (dane/run.sh,
# mta-sts/port443.sh). Source it after harness.sh; it only defines functions. The caller
# sets BIN (the postern binary) and TREE (signed-tree.sh), and keeps PASSED, FAILED and
# POSTERN_PGIDS as harness.sh says.

# netns_enter TAG FLAG [COMMAND PACKAGE]...: unless the variable FLAG is 1 (we are
# inside already), check for root, install what the tree needs (knot, unbound, kdig,
# openssl, ip) and each COMMAND's PACKAGE when missing, wait for BIN, and re-run the
# script inside new network and mount namespaces (the scripts take no arguments).
# Everything is installed out here: inside, there is no network.
netns_enter() {
    local tag=$1 flag=$2
    shift 2
    [ "${!flag:-}" = 1 ] && return 0
    if [ "$(id -u)" != 0 ]; then
        echo "not ok - $tag: must run as root (namespaces, apt-get)"
        echo "0 passed, 1 failed"
        exit 1
    fi
    while [ $# -ge 2 ]; do
        command -v "$1" >/dev/null || apt_install "$tag" "$2"
        shift 2
    done
    command -v openssl >/dev/null || apt_install "$tag" openssl
    command -v ip >/dev/null || apt_install "$tag" iproute2
    { command -v knotd && command -v keymgr; } >/dev/null || apt_install "$tag" knot
    command -v kdig >/dev/null || apt_install "$tag" knot-dnsutils
    command -v unbound >/dev/null || apt_install "$tag" unbound
    wait_for_binary "$tag" "$BIN"
    export "$flag=1"
    exec unshare --net --mount --propagation private -- "$0"
}

# netns_setup NAME RESOLV_OPTIONS: inside the namespaces: loopback up, WORK a new
# temporary directory, /etc/resolv.conf (bind-mounted, seen by this process tree only)
# naming 127.0.0.1 with RESOLV_OPTIONS, the counters at zero, and a cleanup on exit that
# stops the Posterns and the tree and removes WORK.
netns_setup() {
    ip link set lo up
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/postern-$1-interop.XXXXXX")
    printf 'nameserver 127.0.0.1\noptions %s\n' "$2" >"$WORK/resolv.conf"
    chmod 644 "$WORK/resolv.conf"
    mount --bind "$WORK/resolv.conf" /etc/resolv.conf
    PASSED=0
    FAILED=0
    POSTERN_PGIDS=()
    trap netns_cleanup EXIT
}

netns_cleanup() {
    stop_posterns
    [ -f "$WORK/tree/tree.env" ] && bash "$TREE" stop "$WORK/tree" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}

# netns_start_tree TAG: start the signed tree described under $WORK/tree, unbound on
# 127.0.0.1:53. Returns 0 when it runs. Otherwise prints the result and exits: a skip
# (0) when knot/unbound cannot be had, unless POSTERN_REQUIRE_DNSSEC_TREE=1 (CI) makes
# that a failure; a failure (1) when the tree does not start.
netns_start_tree() {
    local rc
    set +e
    UNBOUND_PORT=53 bash "$TREE" start "$WORK/tree" >"$WORK/tree.out" 2>&1
    rc=$?
    set -e
    [ "$rc" -eq 0 ] && return 0
    if [ "$rc" -eq 77 ] && [ "${POSTERN_REQUIRE_DNSSEC_TREE:-}" != 1 ]; then
        echo "SKIPPED - $1: knot/unbound missing and not installable: $(tail -n 3 "$WORK/tree.out")"
        echo "$PASSED passed, $FAILED failed"
        exit 0
    elif [ "$rc" -eq 77 ]; then
        not_ok "signed DNS tree required (POSTERN_REQUIRE_DNSSEC_TREE=1): knot/unbound unavailable" "$(tail -n 3 "$WORK/tree.out")"
    else
        not_ok "signed DNS tree starts (unbound on 127.0.0.1:53)" "$(tail -n 30 "$WORK/tree.out")"
    fi
    echo "$PASSED passed, $FAILED failed"
    exit 1
}
