#!/usr/bin/env bash
# Overload: SIPp IVR calls (bench/overload_uac.xml: the IVR call of bench/ivr_call_rate.sh, which
# the server may refuse with 503 + Retry-After) at FACTOR × the sustainable rate for SECONDS_AT s,
# against a fresh release server per `calls.overload_lag` value in LAGS ("0s": the lag gate off,
# the SIP-backlog gate still on), the load run ROUNDS times on each server (a leak grows round
# after round; an allocator's high-water mark does not). Per round: how many calls the server
# admitted and refused, by reason (its own counters), how many SIPp saw fail (an admitted call
# that broke, or a 503 without Retry-After), setup time and RTP per admitted call, pacing skips,
# and what the node held (RSS, tokio tasks, SIP legs and timers) before and after it drained.
#
#   bench/overload.sh          # Markdown on stdout, progress on stderr
#
# Environment (defaults in brackets):
#   RATE [1000]       the sustainable IVR rate (BENCHMARKS.md "IVR call rate"); the load is FACTOR × it
#   FACTOR [2]  SECONDS_AT [60]  HOLD_MS [1000]
#   LAGS ["default"]  overload_lag per server ("default": the server's own, or e.g. "10ms 0s")
#   ROUNDS [2]        load runs per server
#   OPENLINE_BIN  a prebuilt release binary (default: the target dir's release/openline)
#   NICE [0]  SIPP_BUFFER [4194304]  DATA_PARENT [/tmp]  KEEP_TMP [0]  RUST_LOG [info]
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
# shellcheck source=bench/lib.sh
source "$repo/bench/lib.sh"

RATE=${RATE:-1000}
FACTOR=${FACTOR:-2}
SECONDS_AT=${SECONDS_AT:-60}
HOLD_MS=${HOLD_MS:-1000}
LAGS=${LAGS:-default}
ROUNDS=${ROUNDS:-2}
SIPP_BUFFER=${SIPP_BUFFER:-4194304}
DATA_PARENT=${DATA_PARENT:-/tmp}
KEEP_TMP=${KEEP_TMP:-0}
export RUST_LOG=${RUST_LOG:-info}

for tool in sipp curl jq python3 /usr/bin/time getconf; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done
target_dir=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
bin=${OPENLINE_BIN:-"$target_dir/release/openline"}
[[ -x $bin ]] || die "no release binary at $bin (cargo build --release --bin openline)"
built_from="commit $(git rev-parse --short HEAD)"
git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || built_from+=" with uncommitted changes in src/"

tmp=$(mktemp -d "$DATA_PARENT/openline-overload.XXXXXX")
sipp_pid=""
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    [[ -n $sipp_pid ]] && kill_tree "$sipp_pid" KILL
    stop_server
    if [[ $KEEP_TMP == 1 ]]; then log "kept $tmp"; else rm -rf "$tmp"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT TERM

stat_col() {
    awk -F';' -v col="$2" '
        NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) idx = i; next }
        { last = $idx }
        END { print (idx ? last : "NA") }' "$1"
}

# What the node holds: "rss_MB tasks legs timers calls".
held() {
    echo "$(($(proc_rss_kb "$server_pid") / 1024)) $(metric openline_tasks_alive) $(metric openline_sip_legs)" \
        "$(metric openline_sip_timers) $(metric openline_calls_active)"
}

# Waits until no call is up and no record is queued (at most 120 s).
drain() {
    local start=$SECONDS
    while (($(metric openline_calls_active) > 0 || $(metric openline_records_backlog) > 0)); do
        ((SECONDS - start > 120)) && break
        sleep 0.5
    done
    # Timer H and transaction linger (32 s at the default T1) before the node is "after".
    sleep 35
}

sipp_run() { # dir rate calls
    local dir=$1 rate=$2 calls=$3
    mkdir -p "$dir"
    sipp_cmd=(sipp -sf "$repo/bench/overload_uac.xml" -d "$HOLD_MS" -r "$rate" -rp 1000 -m "$calls"
        -l $((rate * 3 + 200)) -i 127.0.0.1 -p "$(free_port)" -mp "$(free_port)" -rtp_echo
        -buff_size "$SIPP_BUFFER" -nostdin -recv_timeout 10000 -timeout $((SECONDS_AT * 2 + 60))
        -timeout_error -trace_stat -stf "$dir/stat.csv" -fd 1 -trace_rtt -rtt_freq 100
        -trace_screen -screen_file "$dir/screen.log" "$sip_addr")
    sipp_rc=0
    (cd "$dir" && exec nice -n "$NICE" /usr/bin/time -f '%U %S %e' -o "$dir/sipp.time" "${sipp_cmd[@]}" >"$dir/sipp.out" 2>&1) &
    sipp_pid=$!
    wait "$sipp_pid" || sipp_rc=$?
    sipp_pid=""
}

rows=()
run_server() {
    local lag=$1 dir="$tmp/lag-$1"
    mkdir -p "$dir/data"
    if [[ $lag == default ]]; then
        : >"$dir/openline.toml"
    else
        printf '[calls]\noverload_lag = "%s"\n' "$lag" >"$dir/openline.toml"
    fi
    server_args=(--config "$dir/openline.toml" --sip "127.0.0.1:$(free_port)" --http 127.0.0.1:0
        --data-dir "$dir/data" --rtp-ports 20000-32767 --flows "$repo/ivr-flows" --sounds "$repo/sounds")
    start_server "${server_args[@]}"
    # Warm-up (prompt cache, lazily started tasks), then the baseline.
    log "lag $lag: warm-up, 200 calls at 100/s"
    sipp_run "$dir/warm" 100 200
    drain
    local round
    for ((round = 1; round <= ROUNDS; round++)); do
        run_round "$lag" "$round" "$dir/round$round"
    done
    stop_server
}

run_round() {
    local lag=$1 round=$2 dir=$3
    local before
    before=$(held)
    local load=$((RATE * FACTOR)) calls=$((RATE * FACTOR * SECONDS_AT))
    log "lag $lag round $round: $load calls/s for ${SECONDS_AT}s ($calls calls); held before: $before"
    local started0 sent0 skipped0 ticks0 t0 reason
    declare -A refused0
    started0=$(metric openline_calls_started_total)
    for reason in overload sip_backlog call_rate node_full records_backlog; do
        refused0[$reason]=$(metric "openline_calls_refused_total{reason=\"$reason\"}")
    done
    sent0=$(metric openline_rtp_packets_sent_total)
    skipped0=$(metric openline_rtp_pacing_skipped_total)
    ticks0=$(proc_ticks "$server_pid")
    t0=$(now_s)
    local rc peak_rss
    sipp_run "$dir" "$load" "$calls"
    rc=$sipp_rc
    load_cmd=("${sipp_cmd[@]}")
    peak_rss=$(($(proc_hwm_kb "$server_pid") / 1024))
    local wall
    wall=$(calc "$(now_s) - $t0")
    drain
    local after
    after=$(held)
    local started sent skipped cpu refused=0 reasons=""
    started=$(($(metric openline_calls_started_total) - started0))
    for reason in overload sip_backlog call_rate node_full records_backlog; do
        local n=$(($(metric "openline_calls_refused_total{reason=\"$reason\"}") - ${refused0[$reason]}))
        refused=$((refused + n))
        ((n > 0)) && reasons+="${reasons:+, }$reason $n"
    done
    sent=$(($(metric openline_rtp_packets_sent_total) - sent0))
    skipped=$(($(metric openline_rtp_pacing_skipped_total) - skipped0))
    cpu=$(calc "($(proc_ticks "$server_pid") - $ticks0) / $clk_tck")
    local csv="$dir/stat.csv" ok failed retrans
    [[ -s $csv ]] || csv=/dev/null
    ok=$(stat_col "$csv" 'SuccessfulCall(C)')
    failed=$(stat_col "$csv" 'FailedCall(C)')
    retrans=$(stat_col "$csv" 'Retransmissions(C)')
    local rtt_file p50 p99
    rtt_file=$(ls "$dir"/*_rtt.csv 2>/dev/null | head -1 || true)
    read -r p50 p99 < <(
        awk -F';' 'NR > 1 && $2 ~ /^[0-9.]+$/ { print $2 }' "${rtt_file:-/dev/null}" | sort -g |
            awk '{ v[NR] = $1 } END { if (NR == 0) { print "NA NA"; exit }
                printf "%.0f %.0f\n", v[int((NR - 1) * 0.5 + 0.5) + 1], v[int((NR - 1) * 0.99 + 0.5) + 1] }'
    )
    local per_call=NA skip_per_call=NA
    ((started > 0)) && per_call=$(printf '%.1f' "$(calc "$sent / $started")") &&
        skip_per_call=$(printf '%.2f' "$(calc "$skipped / $started")")
    local b=($before) a=($after)
    rows+=("| $lag | $round | $load | $(printf '%.0f' "$(calc "$calls / $wall")") | $started | $refused (${reasons:-none}) | $ok | $failed | $retrans \
| $p50 / $p99 | $per_call | $skip_per_call | $(printf '%.1f' "$cpu") | ${b[0]} → $peak_rss → ${a[0]} | ${b[1]} → ${a[1]} \
| ${b[2]} → ${a[2]} | ${b[3]} → ${a[3]} | $rc |")
    log "lag $lag round $round: admitted=$started refused=$refused ($reasons) sipp ok=$ok failed=$failed retrans=$retrans" \
        "setup p50/p99=$p50/$p99 ms rtp/admitted=$per_call skipped/admitted=$skip_per_call cpu=${cpu}s" \
        "rss ${b[0]}→peak $peak_rss→${a[0]} MB tasks ${b[1]}→${a[1]} legs ${b[2]}→${a[2]} timers ${b[3]}→${a[3]} sipp rc=$rc"
}

for lag in $LAGS; do
    run_server "$lag"
done

machine_line
echo "SIPp: $(sipp -v 2>&1 | awk '/SIPp v/ { print $2 }' | head -1)"
echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'); binary: $built_from (release)"
echo "Load: ${FACTOR}× $RATE calls/s for ${SECONDS_AT}s, each call ${HOLD_MS} ms of the main flow with RTP echoed"
echo "SIPp (load, last run): ${load_cmd[*]}" | sed "s|$tmp|\$TMP|g; s|$repo/||g"
echo
echo "| overload_lag | round | offered calls/s | placed calls/s | admitted | refused (503, by reason) | SIPp ok | SIPp failed | retrans | setup p50 / p99 ms | RTP sent per admitted call | pacing skips per admitted call | server CPU-s | RSS MB before → peak → after | tokio tasks before → after | SIP legs before → after | SIP timers before → after | SIPp exit |"
echo "|---|---:|---:|---:|---:|---|---:|---:|---:|---|---:|---:|---:|---|---|---|---|---:|"
printf '%s\n' "${rows[@]}"
