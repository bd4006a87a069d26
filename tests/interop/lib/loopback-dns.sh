#!/usr/bin/env bash
# Run a command with DNS confined to loopback.
#
#   tests/interop/lib/loopback-dns.sh COMMAND [ARG...]
#
# The command runs in a private mount namespace in which /etc/resolv.conf is replaced
# (bind mount, visible to that process tree only) by one naming 127.0.0.1 as the only
# name server. Nothing listens on 127.0.0.1:53 during the tests, so any name lookup a
# peer attempts fails at once on loopback instead of reaching a real resolver. The
# machine's own /etc/resolv.conf is never touched.
#
# Needs root (CAP_SYS_ADMIN) for unshare(1) and mount(8). Exits 125 with a message when
# the namespace cannot be set up, so the caller can tell that apart from the command's
# own failures.
set -euo pipefail

if [ "$#" -eq 0 ]; then
    echo "usage: $0 COMMAND [ARG...]" >&2
    exit 2
fi

conf=$(mktemp "${TMPDIR:-/tmp}/loopback-resolv.XXXXXX")
trap 'rm -f "$conf"' EXIT
printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' >"$conf"
chmod 644 "$conf"

# Not exec'd: the trap must remove $conf when the command ends. Mount propagation of the
# new namespace is private (unshare's default), so the bind mount never leaks out.
set +e
# shellcheck disable=SC2016 # expanded by the inner sh, not here
unshare --mount --propagation private -- sh -c '
    conf=$1; shift
    mount --bind "$conf" /etc/resolv.conf || { echo "loopback-dns: cannot bind-mount $conf over /etc/resolv.conf" >&2; exit 125; }
    exec "$@"
' loopback-dns "$conf" "$@"
rc=$?
set -e
exit "$rc"
