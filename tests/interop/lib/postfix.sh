# A private Postfix instance for the shell suites (tests/interop/postfix/run.sh,
# tests/interop/tls/run.sh, tests/bench/run.sh): its own configuration, queue and data
# directories under the suite's temporary directory, started with "postfix -c ETC".
# Nothing here touches /etc/postfix or the system instance. Source it; it only defines
# functions.

# postfix_main_cf ETC SPOOL DATA LOG PREFIX: the main.cf lines every private instance
# shares: its directories, its own log file (PREFIX: the allowed log directory), loopback
# IPv4 only, no local destination, no aliases, and no DNS ever (IP-literal next hops,
# native lookups, no client name lookups). Callers append their own lines.
postfix_main_cf() {
    cat <<CONF
compatibility_level = 3.6
config_directory = $1
queue_directory = $2
data_directory = $3
mail_owner = postfix
setgid_group = postdrop
maillog_file = $4
maillog_file_prefixes = $5
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtp_dns_support_level = disabled
smtp_host_lookup = native
smtpd_peername_lookup = no
alias_maps =
alias_database =
CONF
}

# postfix_master_cf [LINE...]: master.cf with the services every instance needs (queue
# manager, cleanup, the SMTP client, bounces, logging ...), then each LINE (an smtpd
# listener such as "127.0.0.1:PORT inet n - n - - smtpd", or more services).
postfix_master_cf() {
    # service type private unpriv chroot wakeup maxproc command
    cat <<'CONF'
pickup     unix  n - n 60   1 pickup
cleanup    unix  n - n -    0 cleanup
qmgr       unix  n - n 300  1 qmgr
tlsmgr     unix  - - n 1000? 1 tlsmgr
rewrite    unix  - - n -    - trivial-rewrite
bounce     unix  - - n -    0 bounce
defer      unix  - - n -    0 bounce
trace      unix  - - n -    0 bounce
verify     unix  - - n -    1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n -    - proxymap
smtp       unix  - - n -    - smtp
relay      unix  - - n -    - smtp
showq      unix  n - n -    - showq
error      unix  - - n -    - error
retry      unix  - - n -    - error
discard    unix  - - n -    - discard
anvil      unix  - - n -    1 anvil
scache     unix  - - n -    1 scache
postlog    unix-dgram n - n - 1 postlogd
CONF
    local line
    for line in "$@"; do
        printf '%s\n' "$line"
    done
}

# postfix_stop ETC SPOOL: stop the private instance; if "postfix stop" cannot, end its
# master by the pid in SPOOL/pid/master.pid (never any other Postfix).
postfix_stop() {
    timeout 30 postfix -c "$1" stop >/dev/null 2>&1 || true
    local pidfile="$2/pid/master.pid" pid
    if [ -f "$pidfile" ]; then
        pid=$(tr -d ' \n' <"$pidfile" 2>/dev/null || true)
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            sleep 1
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
}

# system_postfix_pid: the system Postfix's master, if one runs (by the default pid file).
system_postfix_pid() {
    local f=/var/spool/postfix/pid/master.pid pid
    [ -f "$f" ] || return 1
    pid=$(tr -d ' \n' <"$f" 2>/dev/null || true)
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && printf '%s\n' "$pid"
}

# postfix_install_quietly TAG PACKAGE...: apt_install (lib/harness.sh), then stop a system
# Postfix that the package's maintainer scripts may have started: only private instances
# may run.
postfix_install_quietly() {
    local was_running=0
    system_postfix_pid >/dev/null && was_running=1
    apt_install "$@"
    if [ "$was_running" -eq 0 ] && system_postfix_pid >/dev/null; then
        echo "$1: stopping the system Postfix that the package started" >&2
        if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
            systemctl stop postfix >/dev/null 2>&1 || true
        fi
        postfix stop >/dev/null 2>&1 || true
    fi
}

# --- a suite around one private instance -------------------------------------------------
# The suite keeps PF_ETC and PF_SPOOL (its instance), POSTFIX_STARTED (1 once started),
# WORK (its temporary directory), COMPLETED (1 once every test ran), the counters PASSED
# and FAILED, and POSTERN_PGIDS (lib/harness.sh).

# stop_postfix: stop the suite's instance, if it was started.
stop_postfix() {
    [ "$POSTFIX_STARTED" -eq 1 ] || return 0
    POSTFIX_STARTED=0
    postfix_stop "$PF_ETC" "$PF_SPOOL"
}

# postfix_suite_cleanup NAME: the EXIT trap: stop Postern and Postfix, remove WORK, count
# an unfinished run as a failure, print "N passed, M failed" and exit 0 only if M is 0.
postfix_suite_cleanup() {
    set +e
    stop_posterns
    stop_postfix
    [ -n "$WORK" ] && rm -rf -- "$WORK"
    if [ "$COMPLETED" -ne 1 ]; then
        FAILED=$((FAILED + 1))
        echo "not ok - $1 harness stopped before all tests ran"
    fi
    echo "$PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ] && exit 0
    exit 1
}
