#!/usr/bin/env bash
# IVR call rate: SIPp calls (bench/ivr_uac.xml) that the release server answers with the shipped main
# flow (ivr-flows/main.yaml: welcome.wav first) and that hear 1 s of that entry prompt, at rising rates.
# Per step: SIPp's counters, INVITE→200 setup time p50/p99/max (from SIPp's -trace_rtt file, one line
# per call), the server's CPU-seconds per 1,000 calls (utime+stime from /proc/PID/stat from the start
# of the step until every call has ended and its records are written), whether RTP flowed (the
# server's openline_rtp_packets_sent_total / _received_total deltas per completed call; with
# -rtp_echo SIPp returns every packet, so the server receives too), RSS, SIPp's CPU and other load.
# A step passes when no call failed, every call completed, SIPp exited 0 and reached ≥ 95 % of the
# rate. Stops at the first failing step (a failure under NOISY_LOAD cores of other load is run once
# more), then repeats the highest passing rate (REPEAT_TOP runs in all) for medians.
#
#   bench/ivr_call_rate.sh                  # the sweep; Markdown on stdout, progress on stderr
#   bench/ivr_call_rate.sh --profile 1000   # one step under `perf record` (PROFILE_SECONDS)
#
# Environment (defaults in brackets):
#   RATES ["100 250 500 750 1000 1250 1500 2000 2500 3000"]  calls/s, rising
#   STEP_SECONDS [10]  calls per step = rate × STEP_SECONDS
#   REPEAT_TOP [3]     runs of the highest passing rate, the first included
#   HOLD_MS [1000]     SIPp -d: how long each call listens between ACK and BYE
#   RTP_ECHO [1]       SIPp -rtp_echo (0: SIPp's media port only receives)
#   SIPP_BUFFER [4194304]  SIPp -buff_size
#   DATA_PARENT [/tmp] where the server's temp data dir goes (disk, like bench/sip_call_setup.sh)
#   QUIET_LOAD [0.3] QUIET_WAIT [20] NOISY_LOAD [0.3]  see bench/lib.sh wait_for_quiet
#   OPENLINE_BIN, MEDIA_LOAD_BIN  prebuilt binaries to use (e.g. copies, while others rebuild target/)
#   BUILT_FROM        what to print as the binary's origin
#   SKIP_BUILD [1]     0: cargo build --release --bin openline first
#   DEADLINE [900]     seconds for the sweep; no new step starts after it
#   NICE [0]           nice value of the server and SIPp (-10: ahead of other people's builds)
#   RUST_LOG [info]  PROFILE_SECONDS [8]  KEEP_TMP [0]
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
# shellcheck source=bench/lib.sh
source "$repo/bench/lib.sh"

RATES=${RATES:-"100 250 500 750 1000 1250 1500 2000 2500 3000"}
STEP_SECONDS=${STEP_SECONDS:-10}
REPEAT_TOP=${REPEAT_TOP:-3}
RTP_ECHO=${RTP_ECHO:-1}
HOLD_MS=${HOLD_MS:-1000}
SIPP_BUFFER=${SIPP_BUFFER:-4194304}
DATA_PARENT=${DATA_PARENT:-/tmp}
QUIET_LOAD=${QUIET_LOAD:-0.3}
QUIET_WAIT=${QUIET_WAIT:-20}
NOISY_LOAD=${NOISY_LOAD:-0.3}
SKIP_BUILD=${SKIP_BUILD:-1}
DEADLINE=${DEADLINE:-900}
PROFILE_SECONDS=${PROFILE_SECONDS:-8}
KEEP_TMP=${KEEP_TMP:-0}
export RUST_LOG=${RUST_LOG:-info}

profile_rate=""
case "${1:-}" in
    "") ;;
    --profile) profile_rate=${2:?"--profile needs a rate"} ;;
    *)
        echo "usage: $0 [--profile RATE]" >&2
        exit 2
        ;;
esac
for tool in sipp curl jq python3 /usr/bin/time getconf; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done

target_dir=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
if [[ $SKIP_BUILD != 1 ]]; then
    timeout 3600 cargo build --release --bin openline >&2
fi
bin=${OPENLINE_BIN:-"$target_dir/release/openline"}
[[ -x $bin ]] || die "no release binary at $bin"
built_from="commit $(git rev-parse --short HEAD)"
git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || built_from+=" with uncommitted changes in src/"
[[ -n ${OPENLINE_BIN:-} ]] && built_from="prebuilt $OPENLINE_BIN"
built_from=${BUILT_FROM:-$built_from}

tmp=$(mktemp -d "$DATA_PARENT/openline-ivr.XXXXXX")
sipp_pid=""
perf_pid=""
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    [[ -n $sipp_pid ]] && kill_tree "$sipp_pid" KILL
    [[ -n $perf_pid ]] && kill -INT "$perf_pid" 2>/dev/null
    stop_server
    if [[ $KEEP_TMP == 1 ]]; then log "kept $tmp"; else rm -rf "$tmp"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT TERM

mkdir -p "$tmp/data"
: >"$tmp/openline.toml"
server_args=(--config "$tmp/openline.toml" --sip "127.0.0.1:$(free_port)" --http 127.0.0.1:0
    --data-dir "$tmp/data" --rtp-ports 20000-32767 --flows "$repo/ivr-flows" --sounds "$repo/sounds")
start_server "${server_args[@]}"
sipp_port=$(free_port)
media_port=$(free_port)

# Value of a column in the last row of a SIPp statistics CSV (';'-separated, header first).
stat_col() {
    awk -F';' -v col="$2" '
        NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) idx = i; next }
        { last = $idx }
        END { print (idx ? last : "NA") }' "$1"
}

rows=()
declare -A res
step_no=0
t_begin=$SECONDS

run_step() {
    local rate=$1 label=$2 with_perf=${3:-}
    local calls=$((rate * STEP_SECONDS)) limit=$((rate * 3 + 200))
    step_no=$((step_no + 1))
    local dir="$tmp/sipp/step$step_no-$rate"
    mkdir -p "$dir"
    local echo_flag=()
    [[ $RTP_ECHO == 1 ]] && echo_flag=(-rtp_echo)
    sipp_cmd=(sipp -sf "$repo/bench/ivr_uac.xml" -d "$HOLD_MS" -r "$rate" -rp 1000 -m "$calls" -l "$limit"
        -i 127.0.0.1 -p "$sipp_port" -mp "$media_port" "${echo_flag[@]}" -buff_size "$SIPP_BUFFER"
        -nostdin -recv_timeout 10000 -timeout $((STEP_SECONDS * 3 + 30)) -timeout_error
        -trace_stat -stf "$dir/stat.csv" -fd 1 -trace_rtt -rtt_freq 100
        -trace_screen -screen_file "$dir/screen.log" "$sip_addr")
    host_snapshot
    local quiet
    quiet=$(wait_for_quiet)
    log "step $step_no ($label): $rate calls/s × ${STEP_SECONDS}s = $calls calls (other load before: $quiet)"
    local sent0 recv0 skipped0
    sent0=$(metric openline_rtp_packets_sent_total)
    recv0=$(metric openline_rtp_packets_received_total)
    skipped0=$(metric openline_rtp_pacing_skipped_total)
    if [[ -n $with_perf ]]; then
        perf record -F 499 --call-graph dwarf,16384 -o "$tmp/perf.data" -p "$server_pid" -- sleep "$PROFILE_SECONDS" \
            >"$tmp/perf-record.log" 2>&1 &
        perf_pid=$!
        sleep 0.5
    fi
    local ticks0 host0 t0 ticks1 host1 t1 sipp_rc=0
    ticks0=$(proc_ticks "$server_pid")
    host0=$(host_busy_ticks)
    t0=$(now_s)
    (cd "$dir" && exec nice -n "$NICE" /usr/bin/time -f '%U %S %e' -o "$dir/sipp.time" "${sipp_cmd[@]}" >"$dir/sipp.out" 2>&1) &
    sipp_pid=$!
    wait "$sipp_pid" || sipp_rc=$?
    sipp_pid=""
    ticks1=$(proc_ticks "$server_pid")
    host1=$(host_busy_ticks)
    t1=$(now_s)
    local rss
    rss=$(($(proc_rss_kb "$server_pid") / 1024))
    # Until every call task has ended and the records are written (the calls' CPU is all counted).
    local drain_start active queued
    drain_start=$(now_s)
    while :; do
        active=$(metric openline_calls_active)
        queued=$(metric openline_records_queued)
        [[ $active == 0 && $queued == 0 ]] && break
        (($(calc "$(now_s) - $drain_start > 60") == 1)) && break
        sleep 0.25
    done
    local ticks2 drain
    ticks2=$(proc_ticks "$server_pid")
    drain=$(printf '%.1f' "$(calc "$(now_s) - $drain_start")")
    if [[ -n $perf_pid ]]; then
        wait "$perf_pid" 2>/dev/null || true
        perf_pid=""
    fi
    local sent recv skipped
    sent=$(($(metric openline_rtp_packets_sent_total) - sent0))
    recv=$(($(metric openline_rtp_packets_received_total) - recv0))
    skipped=$(($(metric openline_rtp_pacing_skipped_total) - skipped0))

    local csv="$dir/stat.csv"
    [[ -s $csv ]] || csv=/dev/null
    local ok failed retrans achieved
    ok=$(stat_col "$csv" 'SuccessfulCall(C)')
    failed=$(stat_col "$csv" 'FailedCall(C)')
    retrans=$(stat_col "$csv" 'Retransmissions(C)')
    # SIPp's CallRate(C) divides by the whole run, including the last calls' hold; the rate at which
    # calls were placed is taken from the rtt file instead (one line per call, Date_ms = when its 200
    # arrived): (calls − 1) / (last − first).
    local rtt_file
    rtt_file=$(ls "$dir"/*_rtt.csv 2>/dev/null | head -1 || true)
    achieved=$(awk -F';' 'NR > 1 && $1 ~ /^[0-9.]+$/ { if (n == 0) first = $1; last = $1; n++ }
        END { if (n > 1 && last > first) printf "%.1f", (n - 1) * 1000 / (last - first); else print 0 }' "${rtt_file:-/dev/null}")
    [[ $ok =~ ^[0-9]+$ ]] || ok=0
    [[ $failed =~ ^[0-9]+$ ]] || failed=NA
    [[ $achieved =~ ^[0-9.]+$ ]] || achieved=0
    # Setup time: the rtt file has one line per call: date_ms;response_time_ms;rtd_no.
    local p50 p99 pmax
    read -r p50 p99 pmax < <(
        if [[ -n $rtt_file ]]; then
            awk -F';' 'NR > 1 && $2 ~ /^[0-9.]+$/ { print $2 }' "$rtt_file" | sort -g |
                awk '{ v[NR] = $1 } END { if (NR == 0) { print "NA NA NA"; exit }
                    i50 = int((NR - 1) * 0.50 + 0.5) + 1; i99 = int((NR - 1) * 0.99 + 0.5) + 1
                    printf "%.2f %.2f %.2f\n", v[i50], v[i99], v[NR] }'
        else
            echo "NA NA NA"
        fi
    )
    local wall sipp_user=0 sipp_sys=0 sipp_pct server_cpu cpu_all other per_k
    wall=$(calc "$t1 - $t0")
    read -r sipp_user sipp_sys _ <"$dir/sipp.time" 2>/dev/null || true
    [[ $sipp_user =~ ^[0-9.]+$ ]] || sipp_user=0
    [[ $sipp_sys =~ ^[0-9.]+$ ]] || sipp_sys=0
    sipp_pct=$(calc "100 * ($sipp_user + $sipp_sys) / $wall")
    server_cpu=$(calc "($ticks1 - $ticks0) / $clk_tck")
    cpu_all=$(calc "($ticks2 - $ticks0) / $clk_tck")
    other=$(calc "(($host1 - $host0) / $clk_tck - $server_cpu - $sipp_user - $sipp_sys) / $wall")
    per_k=NA
    ((ok > 0)) && per_k=$(printf '%.2f' "$(calc "1000 * $cpu_all / $ok")")
    local per_call_sent=NA per_call_recv=NA
    ((ok > 0)) && per_call_sent=$(printf '%.1f' "$(calc "$sent / $ok")") && per_call_recv=$(printf '%.1f' "$(calc "$recv / $ok")")

    local pass=1 why=()
    [[ $sipp_rc == 0 ]] || { pass=0; why+=("sipp exit $sipp_rc"); }
    [[ $failed == 0 ]] || { pass=0; why+=("$failed failed"); }
    ((ok == calls)) || { pass=0; why+=("$((calls - ok)) not completed"); }
    (($(calc "$achieved < 0.95 * $rate") == 1)) && { pass=0; why+=("rate not reached"); }
    local verdict=pass
    ((pass)) || verdict="FAIL: $(IFS=,; echo "${why[*]}")"
    res[pass]=$pass res[other]=$other res[per_k]=$per_k res[p50]=$p50 res[p99]=$p99 res[achieved]=$achieved
    rows+=("| $label | $rate | $(printf '%.0f' "$achieved") | $ok | $failed | $retrans | $p50 / $p99 / $pmax \
| $(printf '%.2f' "$cpu_all") | $per_k | $drain | $per_call_sent / $per_call_recv | $skipped | $rss | $(printf '%.0f' "$sipp_pct") \
| $(printf '%.2f' "$other") | $verdict |")
    log "  achieved $(printf '%.0f' "$achieved")/s ok=$ok failed=$failed retrans=$retrans setup p50/p99/max=$p50/$p99/$pmax ms" \
        "server ${cpu_all}s (${per_k}/1k, ${server_cpu}s during SIPp, drain ${drain}s) rtp/call sent=$per_call_sent recv=$per_call_recv" \
        "skipped=$skipped rss=${rss}MB sipp=$(printf '%.0f' "$sipp_pct")% other=$other → $verdict"
    if ((!pass)); then
        sed -n '/Messages  Retrans/,/^$/p' "$dir/screen.log" 2>/dev/null | head -20 >&2 || true
    fi
    sleep 1
}

print_header() {
    machine_line
    echo "SIPp: $(sipp -v 2>&1 | awk '/SIPp v/ { print $2 }' | head -1)"
    echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'); binary: $built_from (release)"
    echo "Priority: server and SIPp at nice $NICE"
    echo "Server: RUST_LOG=$RUST_LOG openline serve ${server_args[*]}" | sed "s|$tmp|\$TMP|g; s|$repo/||g"
    echo "SIPp (last step): ${sipp_cmd[*]}" | sed "s|$tmp|\$TMP|g; s|$repo/||g"
    echo
    echo "| step | target calls/s | achieved calls/s | ok | failed | retrans | INVITE→200 p50 / p99 / max ms (1 ms grain) | server CPU-s (step + drain) | CPU-s / 1k calls | drain s | RTP pkts/call sent / received | pacing skips | RSS MB | SIPp CPU % | other load (cores) | result |"
    echo "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---|"
    printf '%s\n' "${rows[@]}"
}

if [[ -n $profile_rate ]]; then
    run_step "$profile_rate" profile perf
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
    perf script -i "$tmp/perf.data" -F comm,ip,sym 2>/dev/null | python3 "$repo/bench/perf_areas.py" ivr || true
    echo '```'
    exit 0
fi

last_pass=""
stopped=""
runs=() # "rate pass per_k p50 p99 achieved"
for rate in $RATES; do
    if ((SECONDS - t_begin > DEADLINE)); then
        stopped="deadline reached before $rate calls/s"
        break
    fi
    run_step "$rate" sweep
    runs+=("$rate ${res[pass]} ${res[per_k]} ${res[p50]} ${res[p99]} ${res[achieved]}")
    if [[ ${res[pass]} != 1 ]] && (($(calc "${res[other]} >= $NOISY_LOAD") == 1)); then
        log "  failed while others used ${res[other]} cores: running it again"
        run_step "$rate" "sweep (rerun: noisy host)"
        runs+=("$rate ${res[pass]} ${res[per_k]} ${res[p50]} ${res[p99]} ${res[achieved]}")
    fi
    if [[ ${res[pass]} == 1 ]]; then
        last_pass=$rate
    else
        stopped="first failing rate: $rate calls/s"
        break
    fi
done
if [[ -n $last_pass ]]; then
    for ((i = 2; i <= REPEAT_TOP; i++)); do
        ((SECONDS - t_begin > DEADLINE)) && break
        run_step "$last_pass" "repeat $i"
        runs+=("$last_pass ${res[pass]} ${res[per_k]} ${res[p50]} ${res[p99]} ${res[achieved]}")
    done
fi

print_header
echo
echo "- ${stopped:-every rate in RATES passed}"
if [[ -n $last_pass ]]; then
    top=$(printf '%s\n' "${runs[@]}" | awk -v r="$last_pass" '$1 == r')
    # shellcheck disable=SC2046
    echo "- highest passing rate: $last_pass calls/s ($(printf '%.2f' "$(calc "$last_pass / 1000")")× the 1,000 calls/s target);" \
        "$(awk '$2 == 1' <<<"$top" | wc -l) of $(wc -l <<<"$top") runs at it passed; medians: achieved" \
        "$(printf '%.0f' "$(median $(awk '{ print $6 }' <<<"$top"))") calls/s, setup p50 $(median $(awk '{ print $4 }' <<<"$top")) ms," \
        "p99 $(median $(awk '{ print $5 }' <<<"$top")) ms, $(median $(awk '{ print $3 }' <<<"$top")) CPU-s per 1,000 calls"
fi
