#!/bin/bash
# A signed DNS tree on loopback, for DNSSEC and DANE tests: knot (authoritative, signs the
# zones itself) under a fake root `.`, and unbound (validating, trusting only that fake root).
#
#   signed-tree.sh start WORKDIR     build the tree described in WORKDIR, start both servers
#   signed-tree.sh stop WORKDIR      stop both servers (by the pids recorded in WORKDIR)
#
# Input (written by the caller before `start`):
#   WORKDIR/zones.list           one zone a line: `NAME MODE` (NAME without trailing dot), MODE:
#                                  secure    signed, with a matching DS in its parent
#                                  insecure  unsigned, delegated without DS (provably insecure)
#                                  bogus     signed, but the DS in its parent matches none of its
#                                            keys (validators answer SERVFAIL)
#   WORKDIR/records/NAME.zone    the zone's own records in zone-file syntax (`$ORIGIN NAME.` is
#                                set, relative owners are allowed): MX, A, AAAA, TLSA, TXT,
#                                CNAME... The script adds SOA, NS `ns.NAME.` and its A 127.0.0.1.
#   A zone's parent is the longest other listed zone it lies under, else the fake root; the
#   parent gets the NS, glue and (secure, bogus) DS records. Names may be several labels deep
#   (`secure.test`): the root delegates them directly.
#   Optional environment: KNOT_PORT, UNBOUND_PORT, PLAIN_PORT (free ports on 127.0.0.1, UDP and TCP);
#   chosen at random when unset.
#
# Output (after `start` returns 0):
#   WORKDIR/tree.env     KNOT_ADDR=127.0.0.1:P  UNBOUND_ADDR=127.0.0.1:P  PLAIN_ADDR=127.0.0.1:P
#                        (UNBOUND: validating, sets AD; PLAIN: a second unbound that recurses
#                        without validating, for clients that validate themselves)
#                        ROOT_DNSKEY=WORKDIR/root.dnskey  ROOT_DS=WORKDIR/root.ds
#   WORKDIR/root.dnskey  the fake root's DNSKEY record, zone-file syntax (a trust anchor for
#                        unbound or for Postern's `[resolver] trust_anchor`)
#   WORKDIR/root.ds      the same key as DS records
#   WORKDIR/knot.log, WORKDIR/unbound.log, WORKDIR/plain.log, WORKDIR/*.pid
#
# Exit codes: 0 running; 77 the Debian packages (knot, knot-dnsutils, unbound) are missing and
# cannot be installed (callers skip, loudly); anything else: a real failure (see stderr and logs).
#
# Both servers run as root without dropping privileges, on 127.0.0.1 only, on non-53 ports.
# unbound reaches every zone through stub zones (glue cannot carry a port), so it never queries
# anything but knot. Start-up takes about a second.
set -euo pipefail

die() { echo "signed-tree: $*" >&2; exit 1; }

need_packages() {
  local missing=()
  command -v knotd >/dev/null || missing+=(knot)
  command -v keymgr >/dev/null || missing+=(knot)
  command -v kdig >/dev/null || missing+=(knot-dnsutils)
  command -v unbound >/dev/null || missing+=(unbound)
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "signed-tree: installing ${missing[*]} (apt-get)" >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get install -y --no-install-recommends "${missing[@]}" >&2 ||
         { apt-get update >&2 && apt-get install -y --no-install-recommends "${missing[@]}" >&2; }; }; then
    echo "signed-tree: SKIP: cannot install ${missing[*]} with apt-get" >&2
    exit 77
  fi
  for b in knotd keymgr kdig unbound; do
    command -v "$b" >/dev/null || { echo "signed-tree: SKIP: $b still missing after apt-get" >&2; exit 77; }
  done
}

free_port() {
  local p
  for _ in $(seq 1 50); do
    p=$(( 20000 + RANDOM % 40000 ))
    if ! ss -Hlnu "sport = :$p" 2>/dev/null | grep -q . && ! ss -Hlnt "sport = :$p" 2>/dev/null | grep -q .; then
      echo "$p"; return 0
    fi
  done
  die "no free port found"
}

# The parent of zone $1 among the listed zones ("." if none).
parent_of() {
  local z=$1 best=. cand
  for cand in "${ZONES[@]}"; do
    [ "$cand" = "$z" ] && continue
    case "$z" in
      *."$cand") if [ "$best" = . ] || [ ${#cand} -gt ${#best} ]; then best=$cand; fi ;;
    esac
  done
  echo "$best"
}

# unbound_conf PORT NAME MODULES: a resolver that asks knot only (stub zones: glue cannot carry a
# port). With "validator iterator" it validates from the fake root's key (AD bit, SERVFAIL with
# an Extended DNS Error on bogus answers); with "iterator" it only recurses, returning the
# RRSIGs when asked with DO, so that a validating client sees bogus data as it is.
unbound_conf() {
  local port=$1 name=$2 modules=$3 z
  cat <<EOF
server:
    interface: 127.0.0.1@$port
    port: $port
    interface-automatic: no
    do-ip6: no
    access-control: 127.0.0.0/8 allow
    username: ""
    chroot: ""
    directory: "$W/$name"
    pidfile: ""
    use-syslog: no
    logfile: "$W/$name.log"
    verbosity: 1
    val-log-level: 2
    log-servfail: yes
    ede: yes
    num-threads: 1
    so-reuseport: no
    outgoing-range: 64
    outgoing-port-permit: 1024-65535
    do-not-query-localhost: no
    qname-minimisation: no
    aggressive-nsec: no
    harden-glue: no
    auto-trust-anchor-file: ""
    root-hints: ""
    module-config: "$modules"
    local-zone: "test." nodefault
    local-zone: "invalid." nodefault
    local-zone: "example." nodefault
    cache-max-ttl: 300
    cache-max-negative-ttl: 30
EOF
  [ "$modules" = iterator ] || echo "    trust-anchor-file: \"$W/root.dnskey\""
  cat <<EOF
remote-control:
    control-enable: no
stub-zone:
    name: "."
    stub-addr: 127.0.0.1@$KNOT_PORT
EOF
  for z in "${ZONES[@]}"; do
    printf 'stub-zone:\n    name: "%s."\n    stub-addr: 127.0.0.1@%s\n' "$z" "$KNOT_PORT"
  done
}

zone_file() { [ "$1" = . ] && echo "$W/zones/root.zone" || echo "$W/zones/$1.zone"; }

start() {
  need_packages
  # A failed start leaves nothing running.
  trap 'rc=$?; [ $rc -eq 0 ] || stop; exit $rc' EXIT
  [ -f "$W/zones.list" ] || die "$W/zones.list missing"
  ZONES=(); declare -gA MODE
  while read -r name mode _; do
    [ -z "${name:-}" ] && continue
    case "$name" in \#*) continue ;; esac
    name=${name%.}
    case "$mode" in secure|insecure|bogus) ;; *) die "zone $name: unknown mode '$mode'" ;; esac
    ZONES+=("$name"); MODE[$name]=$mode
  done <"$W/zones.list"

  KNOT_PORT=${KNOT_PORT:-$(free_port)}
  UNBOUND_PORT=${UNBOUND_PORT:-$(free_port)}
  PLAIN_PORT=${PLAIN_PORT:-$(free_port)}
  rm -rf "$W/knot" "$W/zones" "$W/unbound" "$W/plain"
  mkdir -p "$W/knot/db" "$W/knot/keys" "$W/zones" "$W/unbound" "$W/plain"

  # knot: one server for every zone, signing with keys generated below (manual policy, so
  # that the DS records can go into the parents before knot loads anything).
  {
    cat <<EOF
server:
    rundir: "$W/knot"
    listen: 127.0.0.1@$KNOT_PORT
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "$W/knot/db"
    kasp-db: "$W/knot/keys"
log:
  - target: "$W/knot.log"
    any: info
policy:
  - id: tree
    manual: on
    algorithm: ecdsap256sha256
    single-type-signing: on
    nsec3: off
    rrsig-lifetime: 14d
    rrsig-refresh: 7d
template:
  - id: default
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
    semantic-checks: off
zone:
  - domain: .
    file: "$(zone_file .)"
    dnssec-signing: on
    dnssec-policy: tree
EOF
    for z in "${ZONES[@]}"; do
      echo "  - domain: $z."
      echo "    file: \"$(zone_file "$z")\""
      if [ "${MODE[$z]}" != insecure ]; then
        echo "    dnssec-signing: on"
        echo "    dnssec-policy: tree"
      fi
    done
  } >"$W/knot.conf"

  local z
  for z in . "${ZONES[@]}"; do
    [ "$z" != . ] && [ "${MODE[$z]}" = insecure ] && continue
    local zn=$z; [ "$zn" != . ] && zn="$z."
    keymgr -c "$W/knot.conf" "$zn" generate algorithm=ecdsap256sha256 ksk=yes zsk=yes >/dev/null \
      || die "keymgr generate for $zn failed"
  done
  keymgr -c "$W/knot.conf" . dnskey >"$W/root.dnskey.raw" || die "keymgr dnskey . failed"
  keymgr -c "$W/knot.conf" . ds >"$W/root.ds.raw" || die "keymgr ds . failed"
  # keymgr prints owner and type without TTL/class: normalise to `. 3600 IN TYPE ...`.
  sed -E 's/^\.[[:space:]]+(DNSKEY|DS)[[:space:]]+/. 3600 IN \1 /' "$W/root.dnskey.raw" >"$W/root.dnskey"
  sed -E 's/^\.[[:space:]]+(DNSKEY|DS)[[:space:]]+/. 3600 IN \1 /' "$W/root.ds.raw" >"$W/root.ds"
  rm -f "$W/root.dnskey.raw" "$W/root.ds.raw"

  # Zone files: SOA, NS, glue, the caller's records; delegations and DS in the parents.
  local serial; serial=$(date +%s)
  for z in . "${ZONES[@]}"; do
    local origin=$z; [ "$origin" != . ] && origin="$z."
    local ns="ns.$origin"; [ "$z" = . ] && ns="ns.fake-root."
    {
      echo "\$ORIGIN $origin"
      echo "\$TTL 300"
      echo "$origin 300 IN SOA $ns hostmaster.$( [ "$z" = . ] && echo fake-root. || echo "$origin") $serial 3600 600 86400 60"
      echo "$origin 300 IN NS $ns"
      echo "$ns 300 IN A 127.0.0.1"
      if [ "$z" != . ]; then
        [ -f "$W/records/$z.zone" ] && cat "$W/records/$z.zone"
        echo
        echo "\$ORIGIN $origin"
      fi
    } >"$(zone_file "$z")"
  done
  for z in "${ZONES[@]}"; do
    local p; p=$(parent_of "$z")
    local pf; pf=$(zone_file "$p")
    {
      echo "$z. 300 IN NS ns.$z."
      echo "ns.$z. 300 IN A 127.0.0.1"
      case "${MODE[$z]}" in
        secure)
          keymgr -c "$W/knot.conf" "$z." ds | grep -E '[[:space:]]DS[[:space:]]+[0-9]+[[:space:]]+13[[:space:]]+2[[:space:]]' \
            | sed -E "s/^[^[:space:]]+[[:space:]]+DS[[:space:]]+/$z. 300 IN DS /" ;;
        bogus)
          # The real key tag and algorithm, a digest of nothing it has: "DS matches no key".
          keymgr -c "$W/knot.conf" "$z." ds | grep -E '[[:space:]]DS[[:space:]]+[0-9]+[[:space:]]+13[[:space:]]+2[[:space:]]' \
            | awk -v z="$z." '{ print z, 300, "IN DS", $3, $4, $5, "0000000000000000000000000000000000000000000000000000000000000000" }' ;;
      esac
    } >>"$pf"
  done

  setsid knotd -c "$W/knot.conf" </dev/null >>"$W/knot.log" 2>&1 &
  echo $! >"$W/knot.pid"

  # Wait until knot serves every signed zone with its DNSKEY.
  local deadline=$(( $(date +%s) + 20 ))
  for z in . "${ZONES[@]}"; do
    local zn=$z; [ "$zn" != . ] && zn="$z."
    [ "$z" != . ] && [ "${MODE[$z]}" = insecure ] && continue
    until kdig +short +timeout=1 +retry=0 @127.0.0.1 -p "$KNOT_PORT" "$zn" DNSKEY 2>/dev/null | grep -q .; do
      kill -0 "$(cat "$W/knot.pid")" 2>/dev/null || { cat "$W/knot.log" >&2; die "knotd exited"; }
      [ "$(date +%s)" -lt "$deadline" ] || { cat "$W/knot.log" >&2; die "knot did not serve $zn signed in 20 s"; }
      sleep 0.1
    done
  done

  unbound_conf "$UNBOUND_PORT" unbound "validator iterator" >"$W/unbound.conf"
  unbound_conf "$PLAIN_PORT" plain "iterator" >"$W/plain.conf"
  local u
  for u in unbound plain; do
    unbound-checkconf "$W/$u.conf" >/dev/null 2>"$W/$u-checkconf.err" \
      || { cat "$W/$u-checkconf.err" >&2; die "unbound configuration $u.conf rejected"; }
    setsid unbound -d -c "$W/$u.conf" </dev/null >>"$W/$u.log" 2>&1 &
    echo $! >"$W/$u.pid"
  done

  # Ready when the validating unbound answers the root SOA with the AD bit (the chain starts
  # at the anchor) and the plain one answers at all.
  deadline=$(( $(date +%s) + 20 ))
  until kdig +dnssec +timeout=1 +retry=0 @127.0.0.1 -p "$UNBOUND_PORT" . SOA 2>/dev/null | grep -qE 'Flags:.* ad' &&
        kdig +dnssec +timeout=1 +retry=0 @127.0.0.1 -p "$PLAIN_PORT" . SOA 2>/dev/null | grep -q 'status: NOERROR'; do
    for u in unbound plain; do
      kill -0 "$(cat "$W/$u.pid")" 2>/dev/null || { cat "$W/$u.log" >&2; die "unbound ($u) exited"; }
    done
    [ "$(date +%s)" -lt "$deadline" ] || { cat "$W/unbound.log" >&2; die "unbound did not validate the fake root in 20 s"; }
    sleep 0.1
  done

  cat >"$W/tree.env" <<EOF
KNOT_ADDR=127.0.0.1:$KNOT_PORT
UNBOUND_ADDR=127.0.0.1:$UNBOUND_PORT
PLAIN_ADDR=127.0.0.1:$PLAIN_PORT
ROOT_DNSKEY=$W/root.dnskey
ROOT_DS=$W/root.ds
EOF
}

stop() {
  # The tree holds nothing worth a graceful shutdown: TERM, a second's grace, then KILL.
  local f pid pids=()
  for f in "$W/unbound.pid" "$W/plain.pid" "$W/knot.pid"; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    rm -f "$f"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && kill "$pid" 2>/dev/null && pids+=("$pid")
  done
  for _ in $(seq 1 10); do
    local alive=0
    for pid in "${pids[@]}"; do
      # A zombie (state Z) is dead already; only its parent has not reaped it yet.
      kill -0 "$pid" 2>/dev/null && ! grep -qE "^[0-9]+ \\(.*\\) Z" "/proc/$pid/stat" 2>/dev/null && alive=1
    done
    [ $alive -eq 0 ] && return 0
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  return 0
}

[ $# -eq 2 ] || { echo "usage: $0 start|stop WORKDIR" >&2; exit 2; }
W=$(cd "$2" && pwd) || die "no such directory: $2"
case "$1" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop WORKDIR" >&2; exit 2 ;;
esac
