#!/usr/bin/env bash
# Concurrent calls with media and recording: N callers on loopback (target/release/examples/media_load,
# bench/media_load.rs), each dialling the release server over SIP/UDP, hearing a prompt (sounds/hold.wav,
# 20 s, then silence while the flow waits in a gather) and sending 20 ms G.711 RTP, every call recorded
# (`[calls] record = true`). For each N it reports the server's CPU (% of one core, utime+stime from
# /proc/PID/stat over the part of the step when all N calls are up), RSS (VmRSS at the end of that
# window; per call = (that − RSS of the idle server) / N), packet loss and the deviation of the
# server's send times from the 20 ms grid (p50/p99/max), as seen by the client.
#
# Each step starts a fresh server (so RSS per call is not blurred by an earlier, smaller step) with its
# data dir on tmpfs (/dev/shm): recordings and SQLite are written to memory, so disk speed is not what
# is measured. Steps rise through NS and stop after a step that fails badly (loss > 1 % or fewer
# answered calls than N). A step during which other processes used NOISY_LOAD cores or more is run
# again (up to MAX_RUNS); every run is a row, and a per-N median row follows.
#
#   bench/media_calls.sh                  # the sweep; Markdown on stdout, progress on stderr
#   bench/media_calls.sh --profile 2000   # one step at N = 2000 under `perf record` (PROFILE_SECONDS)
#
# Environment (defaults in brackets):
#   NS ["100 500 1000 2000 3000 4000"]  concurrent calls per step, rising
#   RAMP [250]        new calls per second while a step ramps up
#   STEADY [15]       seconds measured once all calls are up (call length = ramp + STEADY + 3 s)
#   MAX_RUNS [3]      runs of one N when the host was noisy
#   QUIET_LOAD [0.3] QUIET_WAIT [30] NOISY_LOAD [0.3]  see bench/lib.sh wait_for_quiet
#   OPENLINE_BIN, MEDIA_LOAD_BIN  prebuilt binaries to use (e.g. copies, while others rebuild target/)
#   BUILT_FROM        what to print as the binary's origin
#   SKIP_BUILD [1]    0: cargo build --release --bin openline --example media_load first
#   SHM [/dev/shm]    where the data dirs go (tmpfs)
#   RUST_LOG [info]   server log level (log in the data dir's parent)
#   PROFILE_SECONDS [10]
#   KEEP_TMP [0]
#   NICE [0]          nice value of the server and the client (-10: ahead of other people's builds)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
# shellcheck source=bench/lib.sh
source "$repo/bench/lib.sh"

NS=${NS:-"100 500 1000 2000 3000 4000"}
RAMP=${RAMP:-250}
STEADY=${STEADY:-15}
MAX_RUNS=${MAX_RUNS:-3}
QUIET_LOAD=${QUIET_LOAD:-0.3}
QUIET_WAIT=${QUIET_WAIT:-30}
NOISY_LOAD=${NOISY_LOAD:-0.3}
SKIP_BUILD=${SKIP_BUILD:-1}
SHM=${SHM:-/dev/shm}
PROFILE_SECONDS=${PROFILE_SECONDS:-10}
KEEP_TMP=${KEEP_TMP:-0}
RTP_PORTS=${RTP_PORTS:-20000-32767} # below the ephemeral range (32768+) the client's sockets use
export RUST_LOG=${RUST_LOG:-info}

profile_n=""
case "${1:-}" in
    "") ;;
    --profile) profile_n=${2:?"--profile needs N"} ;;
    *)
        echo "usage: $0 [--profile N]" >&2
        exit 2
        ;;
esac

for tool in curl python3 /usr/bin/time getconf; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done
[[ -z $profile_n ]] || command -v perf >/dev/null 2>&1 || die "perf is required (Debian: linux-perf)"

target_dir=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
if [[ $SKIP_BUILD != 1 ]]; then
    timeout 3600 cargo build --release --bin openline --example media_load >&2
fi
bin=${OPENLINE_BIN:-"$target_dir/release/openline"}
client=${MEDIA_LOAD_BIN:-"$target_dir/release/examples/media_load"}
[[ -x $bin && -x $client ]] || die "build first: cargo build --release --bin openline --example media_load"
built_from="commit $(git rev-parse --short HEAD)"
git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || built_from+=" with uncommitted changes in src/"
[[ -n ${OPENLINE_BIN:-} ]] && built_from="prebuilt $OPENLINE_BIN"
built_from=${BUILT_FROM:-$built_from}

tmp=$(mktemp -d "$SHM/openline-media.XXXXXX")
client_pid=""
perf_pid=""
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    [[ -n $client_pid ]] && kill_tree "$client_pid" KILL
    [[ -n $perf_pid ]] && kill -INT "$perf_pid" 2>/dev/null
    stop_server
    if [[ $KEEP_TMP == 1 ]]; then log "kept $tmp"; else rm -rf "$tmp"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT TERM

# The flow: the prompt, then a gather that waits (no terminator, 120 s timeouts) while RTP flows.
mkdir -p "$tmp/flows"
cat >"$tmp/flows/main.yaml" <<'EOF'
id: main
entry: hello
nodes:
  hello:
    play: hold.wav
    next: wait
  wait:
    gather:
      var: k
      max_digits: 30
      terminator: none
      timeout: 120s
      inter_digit_timeout: 120s
      next: done
      on_fail: done
  done:
    hangup:
EOF
cat >"$tmp/openline.toml" <<'EOF'
[calls]
record = true
EOF

rows=()
declare -A res

# run_step N LABEL [perf]: one fresh server, one client run; fills res[...] and appends a row.
run_step() {
    local n=$1 label=$2 with_perf=${3:-}
    local ramp_s hold dir
    ramp_s=$(((n + RAMP - 1) / RAMP))
    hold=$((ramp_s + STEADY + 3))
    dir="$tmp/step-$n-$RANDOM"
    mkdir -p "$dir/data"
    server_args=(--config "$tmp/openline.toml" --sip 127.0.0.1:0 --http 127.0.0.1:0
        --data-dir "$dir/data" --rtp-ports "$RTP_PORTS" --flows "$tmp/flows" --sounds "$repo/sounds")
    start_server "${server_args[@]}"
    sleep 1
    local rss_idle other_before
    rss_idle=$(proc_rss_kb "$server_pid")
    host_snapshot
    other_before=$(wait_for_quiet)
    client_cmd=("$client" --sip "$sip_addr" --calls "$n" --seconds "$hold" --ramp "$RAMP")
    log "$label: N=$n, ramp ${ramp_s}s at $RAMP/s, calls last ${hold}s; other load before: $other_before cores"
    local t_start
    t_start=$(now_s)
    (
        ulimit -n "$(ulimit -Hn)"
        exec nice -n "$NICE" /usr/bin/time -f '%U %S %e' -o "$dir/client.time" "${client_cmd[@]}" >"$dir/client.out" 2>"$dir/client.err"
    ) &
    client_pid=$!
    # The steady part: from 2 s after the last call was placed until 1 s before the first ends.
    sleep "$(calc "$ramp_s + 2 - ($(now_s) - $t_start)")"
    local active ticks0 host0 t0 ticks1 host1 t1 rss hwm cticks0 cticks1 cpid
    active=$(metric openline_calls_active)
    # $client_pid is /usr/bin/time (the subshell exec'd it); its child is the client.
    cpid=$(cat /proc/"$client_pid"/task/*/children 2>/dev/null | awk '{ print $1 }' || true)
    ticks0=$(proc_ticks "$server_pid")
    cticks0=$(proc_ticks "${cpid:-0}")
    host0=$(host_busy_ticks)
    t0=$(now_s)
    if [[ -n $with_perf ]]; then
        perf record -F 499 --call-graph dwarf,16384 -o "$tmp/perf.data" -p "$server_pid" -- sleep "$PROFILE_SECONDS" \
            >"$tmp/perf-record.log" 2>&1 &
        perf_pid=$!
    fi
    sleep "$STEADY"
    ticks1=$(proc_ticks "$server_pid")
    cticks1=$(proc_ticks "${cpid:-0}")
    host1=$(host_busy_ticks)
    t1=$(now_s)
    rss=$(proc_rss_kb "$server_pid")
    hwm=$(proc_hwm_kb "$server_pid")
    local active_end
    active_end=$(metric openline_calls_active)
    if [[ -n $perf_pid ]]; then
        wait "$perf_pid" 2>/dev/null || true
        perf_pid=""
    fi
    wait "$client_pid" || log "client exited $?: $(tail -3 "$dir/client.err")"
    client_pid=""
    sleep 2 # the calls' Finished notices carry the RTP counters
    local sent skipped rec_files rec_bytes
    sent=$(metric openline_rtp_packets_sent_total)
    skipped=$(metric openline_rtp_pacing_skipped_total)
    rec_files=$(find "$dir/data" -name '*.wav' | wc -l)
    rec_bytes=$(du -sk "$dir/data" | awk '{ print $1 }')
    local rec_rows=NA
    if command -v sqlite3 >/dev/null; then
        rec_rows=$(sqlite3 -readonly "$dir/data/openline.db" "PRAGMA busy_timeout=2000; SELECT count(*) FROM recordings;" 2>/dev/null | tail -1 || echo NA)
    fi
    stop_server
    cp "$tmp/server.log" "$dir/server.log" 2>/dev/null || true

    local out wall cpu_pct client_pct other per_call
    out=$(cat "$dir/client.out")
    log "  client: $out"
    wall=$(calc "$t1 - $t0")
    cpu_pct=$(calc "100 * ($ticks1 - $ticks0) / $clk_tck / $wall")
    client_pct=$(calc "100 * ($cticks1 - $cticks0) / $clk_tck / $wall")
    other=$(calc "(($host1 - $host0) - ($ticks1 - $ticks0) - ($cticks1 - $cticks0)) / $clk_tck / $wall")
    per_call=$(calc "($rss - $rss_idle) / $n")
    field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$out"; }
    local answered loss p50 p99 max r50 r99 rmax
    answered=$(field answered)
    loss=$(field loss_pct)
    p50=$(field send_dev_p50_ms)
    p99=$(field send_dev_p99_ms)
    max=$(field send_dev_max_ms)
    r50=$(field recv_dev_p50_ms)
    r99=$(field recv_dev_p99_ms)
    rmax=$(field recv_dev_max_ms)
    [[ $answered =~ ^[0-9]+$ ]] || answered=0
    [[ $loss =~ ^[0-9.]+$ ]] || loss=100
    res[answered]=$answered res[loss]=$loss res[cpu]=$cpu_pct res[other]=$other res[p99]=$p99
    res[per_call]=$per_call res[rss]=$rss res[p50]=$p50 res[max]=$max
    local verdict="pass"
    if ((answered < n)) || (($(calc "$loss > 1") == 1)); then
        verdict="FAIL"
    elif (($(calc "$loss > 0 || $p99 >= 2 || $per_call >= 100") == 1)); then
        verdict="below target"
    fi
    res[verdict]=$verdict
    rows+=("| $n | $label | $answered | $active / $active_end | $(printf '%.0f' "$cpu_pct") | $(printf '%.0f' "$client_pct") \
| $(printf '%.2f' "$other") | $(printf '%.0f' "$((rss / 1024))") | $(printf '%.1f' "$per_call") | $loss | $p50 / $p99 / $max \
| $r50 / $r99 / $rmax | $skipped | $rec_files / $rec_rows | $((rec_bytes / 1024)) | $verdict |")
    log "  N=$n answered=$answered server_cpu=${cpu_pct}% client_cpu=${client_pct}% other=${other} rss=${rss}KiB" \
        "(idle $rss_idle, hwm $hwm) per_call=${per_call}KiB loss=$loss send_dev=$p50/$p99/$max recv_dev=$r50/$r99/$rmax" \
        "rtp_sent=$sent skipped=$skipped recordings=$rec_files files/$rec_rows rows → $verdict"
}

print_header() {
    machine_line
    echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'); binary: $built_from (release)"
    echo "Server: RUST_LOG=$RUST_LOG openline serve ${server_args[*]}" | sed "s|$tmp|\$SHM_TMP|g; s|$repo/||g; s|step-[0-9]*-[0-9]*|step-N|g"
    echo "Client: ${client_cmd[*]}" | sed "s|$target_dir/|target/|; s|--sip [^ ]*|--sip SERVER|"
    echo "Priority: server and client at nice $NICE"
    echo "Flow: hold.wav (20 s), then gather (no terminator, 120 s timeouts); [calls] record = true; data dir on tmpfs ($SHM)"
    echo
    echo "| N | run | answered | calls active (window start / end) | server CPU % of one core | client CPU % | other load (cores) | server RSS MB | RSS per call KiB | loss % | server send deviation p50 / p99 / max ms (kernel rx timestamp) | client-observed deviation p50 / p99 / max ms | pacing skips | recordings (files / rows) | data dir MB | result |"
    echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---|"
    printf '%s\n' "${rows[@]}"
}

if [[ -n $profile_n ]]; then
    run_step "$profile_n" profile perf
    print_header
    echo
    echo '```'
    perf report -i "$tmp/perf.data" --no-children --sort comm,dso --stdio -g none 2>/dev/null |
        grep -v '^#' | grep -v '^$' | sed 's/ *$//' | head -15 || true
    echo '```'
    echo
    echo '```'
    perf report -i "$tmp/perf.data" --no-children --sort sym --stdio -g none 2>/dev/null |
        grep -v '^#' | grep -v '^$' | sed 's/ *$//' | head -40 || true
    echo '```'
    echo
    echo '```'
    perf script -i "$tmp/perf.data" -F comm,ip,sym 2>/dev/null | python3 "$repo/bench/perf_areas.py" media || true
    echo '```'
    if [[ $KEEP_TMP == 1 ]]; then log "perf data: $tmp/perf.data"; fi
    exit 0
fi

summary=()
for n in $NS; do
    runs_pass=()
    cpus=() per=() losses=() p50s=() p99s=() maxs=() answered_all=()
    for ((run = 1; run <= MAX_RUNS; run++)); do
        run_step "$n" "run $run"
        cpus+=("${res[cpu]}") per+=("${res[per_call]}") losses+=("${res[loss]}")
        p50s+=("${res[p50]}") p99s+=("${res[p99]}") maxs+=("${res[max]}") answered_all+=("${res[answered]}")
        # Run again only when other processes were busy during the step.
        if (($(calc "${res[other]} < $NOISY_LOAD") == 1)); then
            break
        fi
        log "  other processes used ${res[other]} cores during the step: running N=$n again"
    done
    # shellcheck disable=SC2046
    if ((${#cpus[@]} > 1)); then
        rows+=("| $n | **median of ${#cpus[@]}** | $(median "${answered_all[@]}") | | $(printf '%.0f' "$(median "${cpus[@]}")") | | | \
| $(printf '%.1f' "$(median "${per[@]}")") | $(median "${losses[@]}") | $(median "${p50s[@]}") / $(median "${p99s[@]}") / $(median "${maxs[@]}") | | | | | |")
    fi
    med_answered=$(median "${answered_all[@]}")
    med_loss=$(median "${losses[@]}")
    if (($(calc "$med_answered < $n || $med_loss > 1") == 1)); then
        summary+=("- stopped after N=$n: median of ${#cpus[@]} run(s): $med_answered of $n answered, loss $med_loss %")
        break
    fi
done
print_header
echo
printf '%s\n' "${summary[@]}"
