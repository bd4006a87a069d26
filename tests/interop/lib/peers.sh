# Shared helpers for the Exim/OpenSMTPD matrix (tests/interop/peers/run.sh); sourced.
#
# The peers come from Debian packages, fetched with `apt-get download` and unpacked with
# `dpkg-deb -x` into a private root (never installed: they would replace Postfix, as all
# three provide mail-transport-agent). The matrix runs in one private mount namespace
# (peers_enter_namespace) in which the peers find what their binaries expect at fixed
# paths, without the machine being changed:
#   /etc/resolv.conf   127.0.0.1 only (no real DNS, as lib/loopback-dns.sh)
#   /etc/hosts         the test host names on 127.0.0.1
#   /etc/passwd, group + Debian-exim, opensmtpd, opensmtpq (Debian's names for _smtpd
#                      and _smtpq) and pivmail, the owner of the peers' Maildirs
#   /var/spool, /var/lib, /run   empty private directories (OpenSMTPD's queue and chroot)
#   /usr/libexec       the unpacked OpenSMTPD helpers (mail.maildir ...)

PEER_PACKAGES="exim4-daemon-light libidn12 opensmtpd"

# peers_fetch ROOT: unpack the peer packages into ROOT once (kept between runs).
peers_fetch() {
    local root=$1 dl p
    if [ -x "$root/usr/sbin/exim4" ] && [ -x "$root/usr/sbin/smtpd" ]; then
        return 0
    fi
    dl=$(mktemp -d "${TMPDIR:-/tmp}/postern-peer-debs.XXXXXX")
    chmod 777 "$dl"  # apt-get download drops privileges to _apt for the download
    (cd "$dl" && apt-get download -q $PEER_PACKAGES >"$dl/apt.log" 2>&1) || {
        echo "peers: apt-get download $PEER_PACKAGES failed:" >&2
        tail -n 20 "$dl/apt.log" >&2
        rm -rf -- "$dl"
        return 1
    }
    mkdir -p "$root"
    for p in "$dl"/*.deb; do
        dpkg-deb -x "$p" "$root" || { rm -rf -- "$dl"; return 1; }
    done
    rm -rf -- "$dl"
}

# peers_namespace_files DIR: the replacement files and directories the namespace mounts.
peers_namespace_files() {
    local d=$1
    mkdir -p "$d/varspool" "$d/varlib/opensmtpd/empty" "$d/run"
    chmod 755 "$d" "$d/varspool" "$d/varlib" "$d/varlib/opensmtpd" "$d/varlib/opensmtpd/empty" "$d/run"
    printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' >"$d/resolv.conf"
    printf '127.0.0.1 localhost mx.postern.test mx.exim.test mx.smtpd.test\n' >"$d/hosts"
    cp /etc/passwd "$d/passwd"
    cp /etc/group "$d/group"
    local n id=64990
    for n in Debian-exim opensmtpd opensmtpq pivmail; do
        if ! grep -q "^$n:" "$d/passwd"; then
            while getent passwd "$id" >/dev/null || getent group "$id" >/dev/null; do id=$((id + 1)); done
            echo "$n:x:$id:$id:postern interop:/nonexistent:/usr/sbin/nologin" >>"$d/passwd"
            echo "$n:x:$id:" >>"$d/group"
            id=$((id + 1))
        fi
    done
    chmod 644 "$d"/passwd "$d"/group "$d"/hosts "$d"/resolv.conf
}

# peers_enter_namespace DIR ROOT COMMAND...: run COMMAND in the private namespace.
peers_enter_namespace() {
    local d=$1 root=$2
    shift 2
    # shellcheck disable=SC2016 # expanded by the inner sh
    unshare --mount --propagation private -- sh -c '
        d=$1 root=$2; shift 2
        for f in resolv.conf hosts passwd group; do
            mount --bind "$d/$f" "/etc/$f" || exit 125
        done
        mount --bind "$d/varspool" /var/spool || exit 125
        mount --bind "$d/varlib" /var/lib || exit 125
        mount --bind "$d/run" /run || exit 125
        mount --bind "$root/usr/libexec" /usr/libexec || exit 125
        exec "$@"
    ' peers-ns "$d" "$root" "$@"
}

# peer_uid NAME: the uid of NAME as seen inside the namespace (from its passwd copy).
peer_uid() { awk -F: -v n="$1" '$1 == n { print $3 }' "$NS/passwd"; }
