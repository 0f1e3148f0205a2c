# Shared helpers for bench/media_calls.sh and bench/ivr_call_rate.sh (sourced, not run).
# The same machinery as bench/sip_call_setup.sh (which keeps its own copy): free 127.0.0.1 ports,
# CPU from /proc/PID/stat, RSS from /proc/PID/status, host load from /proc/stat, kill by pid only.
# Expects the caller to `set -euo pipefail` and to set `tmp` (a scratch dir) before start_server.

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

clk_tck=$(getconf CLK_TCK)

# Arithmetic and comparisons (1/0) on decimals.
calc() { awk "BEGIN { printf \"%s\", ($1) }"; }
now_s() { date +%s.%N; }

# Median of numbers (non-numbers ignored).
median() {
    printf '%s\n' "$@" | grep -E '^-?[0-9.]+$' | sort -g |
        awk '{ v[NR] = $1 } END { if (NR == 0) print "NA"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# Kills a process and its descendants, children first, by pid (read from /proc).
kill_tree() {
    local pid=$1 sig=${2:-TERM} child children
    children=$(cat /proc/"$pid"/task/*/children 2>/dev/null || true)
    kill -"$sig" "$pid" 2>/dev/null || true
    for child in $children; do
        kill_tree "$child" "$sig"
    done
}

# A port free for both UDP and TCP on 127.0.0.1 (the server binds both for SIP).
free_port() {
    python3 - <<'EOF'
import socket
while True:
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    port = u.getsockname()[1]
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        t.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        t.close()
        u.close()
    print(port)
    break
EOF
}

# utime+stime of a process in clock ticks (fields 14 and 15 of /proc/PID/stat, read after the
# command name's closing parenthesis so names with spaces cannot shift the fields).
proc_ticks() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || {
        echo 0
        return
    }
    stat=${stat##*) }
    awk '{ print $12 + $13 }' <<<"$stat"
}

# Busy clock ticks of the whole host (all CPUs): total minus idle and iowait.
host_busy_ticks() {
    local cpu user nice system idle iowait irq softirq steal rest
    read -r cpu user nice system idle iowait irq softirq steal rest </proc/stat
    echo $((user + nice + system + irq + softirq + steal))
}

# VmRSS / VmHWM of a process in KiB.
proc_rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
proc_hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# One-line host snapshot for the log (load average and the busiest processes).
host_snapshot() {
    local up
    up=$(uptime | sed 's/.*load average/load average/')
    log "host: $up; top: $(top -bn1 -o %CPU 2>/dev/null | awk 'NR > 7 && $9 + 0 > 5 { printf "%s %s%%, ", $12, $9 }' | head -c 200)"
}

# start_server ARGS...: starts "$bin serve ARGS" with its stdout/stderr in $tmp/server.{out,log},
# waits for "openline ready", sets server_pid, sip_addr, http_addr.
# NICE (default 0): run the server (and the load client) at this nice value, e.g. -10 on a shared box
# so that other people's builds do not take the server's CPU (root only for negative values).
NICE=${NICE:-0}
# With CONFIG_SCHED_AUTOGROUP (sched_autogroup_enabled = 1) nice only ranks processes within one
# session's group: each session's group gets an equal share of the CPUs, whatever the nice of its
# processes. So NICE is also applied to this script's own autogroup, which needs the script to lead
# its own session (start it with `setsid`): then only the benchmark's processes are in that group.
if [[ $NICE != 0 && -w /proc/$$/autogroup ]]; then
    if [[ $(ps -o sid= -p $$ | tr -d ' ') == "$$" ]]; then
        echo "$NICE" >"/proc/$$/autogroup" && log "autogroup: $(cat /proc/$$/autogroup)"
    else
        log "NICE=$NICE: not a session leader, so the autogroup is left alone (start with setsid)"
    fi
fi
server_pid=""
start_server() {
    : >"$tmp/server.out"
    nice -n "$NICE" "$bin" serve "$@" >"$tmp/server.out" 2>"$tmp/server.log" &
    server_pid=$!
    for _ in $(seq 150); do
        grep -q '^openline ready' "$tmp/server.out" 2>/dev/null && break
        kill -0 "$server_pid" 2>/dev/null || die "server exited: $(tail -5 "$tmp/server.log")"
        sleep 0.2
    done
    grep -q '^openline ready' "$tmp/server.out" || die "server not ready after 30 s"
    local ready
    ready=$(grep '^openline ready' "$tmp/server.out")
    sip_addr=$(sed -n 's/.*sip=\([^ ]*\).*/\1/p' <<<"$ready")
    http_addr=$(sed -n 's/.*http=\([^ ]*\).*/\1/p' <<<"$ready")
    log "$ready (pid $server_pid)"
}

# Stops the server: SIGTERM, then SIGKILL after 10 s.
stop_server() {
    [[ -n $server_pid ]] || return 0
    if kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL "$server_pid" 2>/dev/null || true
    fi
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
}

# Sum of a Prometheus metric's samples from GET /metrics (all label sets); 0 when absent.
metric() {
    curl -sf --max-time 10 "http://$http_addr/metrics" 2>/dev/null |
        awk -v name="$1" '$1 == name || index($1, name "{") == 1 { s += $NF } END { printf "%.0f", s }'
}

# Waits (up to QUIET_WAIT s) until processes other than the server use less than QUIET_LOAD cores,
# measured over 2 s. Prints the last measured load.
wait_for_quiet() {
    local waited=0 h0 h1 s0 s1 load
    while :; do
        h0=$(host_busy_ticks)
        s0=$(proc_ticks "$server_pid")
        sleep 2
        h1=$(host_busy_ticks)
        s1=$(proc_ticks "$server_pid")
        load=$(calc "(($h1 - $h0) - ($s1 - $s0)) / $clk_tck / 2")
        if (($(calc "$load < $QUIET_LOAD") == 1)); then
            break
        fi
        waited=$((waited + 2))
        if ((waited >= QUIET_WAIT)); then
            log "host still busy ($(printf '%.2f' "$load") cores used by others); measuring anyway"
            break
        fi
    done
    echo "$load"
}

machine_line() {
    echo "Machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo); $(uname -sr)"
}
