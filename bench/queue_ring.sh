#!/usr/bin/env bash
# Queue benchmark: CALLERS SIPp callers kept in one queue (bench/queue_uac.xml, `-l CALLERS`) served by
# OPERATORS operator phones (target/release/examples/queue_operators, bench/queue_operators.rs) that
# answer every INVITE, talk TALK_MIN_MS–TALK_MAX_MS and hang up. What is measured is the time from an
# operator becoming free to its phone ringing again, p50/p90/p99/max, two ways:
#   - from the phone's BYE (just before it is sent) to the next INVITE's arrival;
#   - from the arrival of the server's 200 to that BYE to the next INVITE's arrival.
# Arrivals are kernel receive timestamps, so the phones' own scheduling is not in them (the "client
# read lag" column shows what it would have added). Per run the script also reports SIPp's counters,
# the server's CPU-s over the SIPp run (utime+stime from /proc/PID/stat) per 1,000 calls, hold-music RTP
# packets per call (openline_rtp_packets_sent_total), rings and answers (openline_queue_rings_total,
# _answered_total), and how many callers waited while the samples were taken (openline_queue_waiting,
# scraped every second), which shows that an operator always had a caller to take.
#
# One fresh server per run, with a generated config: OPERATORS [[operators]] 101…, one queue `bench`
# with all of them (the strategy under test, wrap_up = "0s", record off, hold music on (hold.wav),
# position announcements at their default (off), no rating flow), [routes] 200 → a flow whose only node
# is `queue: bench`, [calls] media_timeout = "600s" (nobody sends RTP). Everything on 127.0.0.1.
#
#   bench/queue_ring.sh                    # every strategy; Markdown on stdout, progress on stderr
#   bench/queue_ring.sh --profile evenly   # one run under `perf record` (PROFILE_SECONDS), with areas
#
# On a shared box run it under the build lock, so that nobody's build runs during the measurement:
#   flock /tmp/openline-build.lock bench/queue_ring.sh
#
# Environment (defaults in brackets):
#   STRATEGIES ["evenly all in_order"]  one queue strategy per run
#   RUNS [1]             runs per strategy (a median row follows when > 1)
#   OPERATORS [50]       operator phones (extensions 101…)
#   CALLERS [200]        SIPp's concurrent calls (-l), placed at CALLERS calls/s until the queue is full
#   SAMPLES [1000]       free → ring samples per run; SIPp places SAMPLES + OPERATORS + CALLERS calls so
#                        that the samples are taken while the queue is full
#   TALK_MIN_MS [1000] TALK_MAX_MS [3000]   each call's length at the operator, uniform
#   SIPP_BUFFER [4194304]  SIPp -buff_size
#   DATA_PARENT [/tmp]   where the server's temp data dir goes
#   QUIET_LOAD [0.3] QUIET_WAIT [20]  see bench/lib.sh wait_for_quiet
#   SKIP_BUILD [0]       1: do not run cargo build --release --bin openline --example queue_operators
#   OPENLINE_BIN, OPERATORS_BIN  prebuilt binaries to use;  BUILT_FROM  what to print as their origin
#   NICE [0]             nice value of the server, the phones and SIPp
#   RUST_LOG [warn]  PROFILE_SECONDS [20]  KEEP_TMP [0]
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
# shellcheck source=bench/lib.sh
source "$repo/bench/lib.sh"

STRATEGIES=${STRATEGIES:-"evenly all in_order"}
RUNS=${RUNS:-1}
OPERATORS=${OPERATORS:-50}
CALLERS=${CALLERS:-200}
SAMPLES=${SAMPLES:-1000}
TALK_MIN_MS=${TALK_MIN_MS:-1000}
TALK_MAX_MS=${TALK_MAX_MS:-3000}
SIPP_BUFFER=${SIPP_BUFFER:-4194304}
DATA_PARENT=${DATA_PARENT:-/tmp}
QUIET_LOAD=${QUIET_LOAD:-0.3}
QUIET_WAIT=${QUIET_WAIT:-20}
SKIP_BUILD=${SKIP_BUILD:-0}
PROFILE_SECONDS=${PROFILE_SECONDS:-20}
KEEP_TMP=${KEEP_TMP:-0}
export RUST_LOG=${RUST_LOG:-warn}

profile_strategy=""
case "${1:-}" in
    "") ;;
    --profile) profile_strategy=${2:?"--profile needs a strategy"} ;;
    *)
        echo "usage: $0 [--profile STRATEGY]" >&2
        exit 2
        ;;
esac
for tool in sipp curl jq python3 /usr/bin/time getconf; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done
[[ -z $profile_strategy ]] || command -v perf >/dev/null 2>&1 || die "perf is required (Debian: linux-perf)"

target_dir=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
if [[ $SKIP_BUILD != 1 ]]; then
    timeout 3600 cargo build --release --bin openline --example queue_operators >&2
fi
bin=${OPENLINE_BIN:-"$target_dir/release/openline"}
phones_bin=${OPERATORS_BIN:-"$target_dir/release/examples/queue_operators"}
[[ -x $bin && -x $phones_bin ]] || die "build first: cargo build --release --bin openline --example queue_operators"
built_from="commit $(git rev-parse --short HEAD)"
git diff --quiet HEAD -- src Cargo.toml Cargo.lock bench 2>/dev/null || built_from+=" with uncommitted changes"
[[ -n ${OPENLINE_BIN:-} ]] && built_from="prebuilt $OPENLINE_BIN"
built_from=${BUILT_FROM:-$built_from}

tmp=$(mktemp -d "$DATA_PARENT/openline-queue.XXXXXX")
sipp_pid=""
phones_pid=""
sampler_pid=""
perf_pid=""
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    [[ -n $sipp_pid ]] && kill_tree "$sipp_pid" KILL
    [[ -n $phones_pid ]] && kill -KILL "$phones_pid" 2>/dev/null
    [[ -n $sampler_pid ]] && kill -TERM "$sampler_pid" 2>/dev/null
    [[ -n $perf_pid ]] && kill -INT "$perf_pid" 2>/dev/null
    stop_server
    if [[ $KEEP_TMP == 1 ]]; then log "kept $tmp"; else rm -rf "$tmp"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT TERM

admin_token="bench-admin-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
first_ext=101
last_ext=$((first_ext + OPERATORS - 1))
calls_per_run=$((SAMPLES + OPERATORS + CALLERS))

mkdir -p "$tmp/flows"
cat >"$tmp/flows/bench_queue.yaml" <<'EOF'
id: bench_queue
entry: q
nodes:
  q:
    queue: bench
EOF

# write_config STRATEGY FILE: the operators, the queue and the route.
write_config() {
    local strategy=$1 file=$2 ext members=""
    {
        echo '[calls]'
        echo 'media_timeout = "600s"'
        echo
        echo '[routes]'
        echo '"200" = "bench_queue"'
        echo
        echo '[[api_tokens]]'
        echo "token = \"$admin_token\""
        echo 'role = "admin"'
        for ((ext = first_ext; ext <= last_ext; ext++)); do
            echo
            echo '[[operators]]'
            echo "extension = \"$ext\""
            echo "name = \"Operator $ext\""
            echo "password = \"bench-$ext\""
            members+="${members:+, }\"$ext\""
        done
        echo
        echo '[[queues]]'
        echo 'name = "bench"'
        echo "members = [$members]"
        echo "strategy = \"$strategy\""
        echo 'wrap_up = "0s"'
        echo 'hold_music = "hold.wav"'
    } >"$file"
}

# Value of a column in the last row of a SIPp statistics CSV (';'-separated, header first).
stat_col() {
    awk -F';' -v col="$2" '
        NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) idx = i; next }
        { last = $idx }
        END { print (idx ? last : "NA") }' "$1"
}

# A gauge's value for one label set, e.g. gauge 'openline_operators{state="available"}'.
gauge() {
    curl -sf --max-time 5 "http://$http_addr/metrics" 2>/dev/null |
        awk -v key="$1" '$1 == key { v = $2 } END { printf "%s", (v == "" ? "NA" : v) }'
}

# key=value from the phones' summary line.
field() { tr ' ' '\n' <"$1" | sed -n "s/^$2=//p" | tail -1; }

rows=()
declare -A res
run_no=0

# run_one STRATEGY LABEL [perf]: a fresh server, the phones, one SIPp run; fills res[...], adds a row.
run_one() {
    local strategy=$1 label=$2 with_perf=${3:-}
    run_no=$((run_no + 1))
    local dir="$tmp/run$run_no-$strategy"
    mkdir -p "$dir/data"
    write_config "$strategy" "$dir/openline.toml"
    server_args=(--config "$dir/openline.toml" --sip "127.0.0.1:$(free_port)" --http 127.0.0.1:0
        --data-dir "$dir/data" --rtp-ports 20000-32767 --flows "$tmp/flows" --sounds "$repo/sounds")
    start_server "${server_args[@]}"

    # The phones; wait until each has registered, then until the server shows them available.
    nice -n "$NICE" "$phones_bin" --sip "$sip_addr" --operators "$OPERATORS" --first-ext "$first_ext" \
        --password-prefix bench- --talk-min-ms "$TALK_MIN_MS" --talk-max-ms "$TALK_MAX_MS" \
        --samples "$SAMPLES" --csv "$dir/samples.csv" --seed "$run_no" >"$dir/phones.out" 2>"$dir/phones.log" &
    phones_pid=$!
    for _ in $(seq 150); do
        grep -q '^ready' "$dir/phones.out" 2>/dev/null && break
        kill -0 "$phones_pid" 2>/dev/null || die "operator phones exited: $(tail -3 "$dir/phones.log")"
        sleep 0.2
    done
    grep -q '^ready' "$dir/phones.out" || die "operator phones not registered after 30 s"
    local available=0
    for _ in $(seq 50); do
        available=$(curl -sf --max-time 5 -H "Authorization: Bearer $admin_token" \
            "http://$http_addr/api/v1/operators" | jq '[.[] | select(.state == "available")] | length')
        ((available == OPERATORS)) && break
        sleep 0.2
    done
    ((available == OPERATORS)) || die "$available of $OPERATORS operators available in the API"
    log "run $run_no ($strategy, $label): $OPERATORS operators registered and available; gauge says $(gauge 'openline_operators{state="available"}')"
    host_snapshot
    local quiet
    quiet=$(wait_for_quiet)

    # Every second: when, callers waiting, operators talking (from the server's gauges).
    (
        while :; do
            printf '%s %s %s\n' "$(now_s)" "$(gauge 'openline_queue_waiting{queue="bench"}')" \
                "$(gauge 'openline_operators{state="talking"}')"
            sleep 1
        done
    ) >"$dir/waiting.txt" 2>/dev/null &
    sampler_pid=$!

    local sent0 rings0 answered0
    sent0=$(metric openline_rtp_packets_sent_total)
    rings0=$(metric openline_queue_rings_total)
    answered0=$(metric openline_queue_answered_total)
    local sipp_port media_port
    sipp_port=$(free_port)
    media_port=$(free_port)
    sipp_cmd=(sipp -sf "$repo/bench/queue_uac.xml" -r "$CALLERS" -rp 1000 -l "$CALLERS" -m "$calls_per_run"
        -i 127.0.0.1 -p "$sipp_port" -mp "$media_port" -buff_size "$SIPP_BUFFER" -nostdin
        -recv_timeout 120000 -timeout 1200 -timeout_error -trace_stat -stf "$dir/stat.csv" -fd 1
        -trace_screen -screen_file "$dir/screen.log" "$sip_addr")
    if [[ -n $with_perf ]]; then
        # Starts once the queue has filled, and ends before it drains.
        (sleep 5 && exec perf record -F 499 --call-graph dwarf,16384 -o "$tmp/perf.data" -p "$server_pid" \
            -- sleep "$PROFILE_SECONDS") >"$tmp/perf-record.log" 2>&1 &
        perf_pid=$!
    fi
    local ticks0 host0 t0 ticks1 host1 t1 sipp_rc=0
    ticks0=$(proc_ticks "$server_pid")
    host0=$(host_busy_ticks)
    t0=$(now_s)
    log "  SIPp: $calls_per_run calls, $CALLERS at a time"
    (cd "$dir" && exec nice -n "$NICE" /usr/bin/time -f '%U %S %e' -o "$dir/sipp.time" "${sipp_cmd[@]}" >"$dir/sipp.out" 2>&1) &
    sipp_pid=$!
    wait "$sipp_pid" || sipp_rc=$?
    sipp_pid=""
    ticks1=$(proc_ticks "$server_pid")
    host1=$(host_busy_ticks)
    t1=$(now_s)
    if [[ -n $perf_pid ]]; then
        wait "$perf_pid" 2>/dev/null || true
        perf_pid=""
    fi
    kill -TERM "$sampler_pid" 2>/dev/null || true
    wait "$sampler_pid" 2>/dev/null || true
    sampler_pid=""
    kill -TERM "$phones_pid" 2>/dev/null || true
    wait "$phones_pid" 2>/dev/null || true
    phones_pid=""
    local summary_file="$dir/phones.out"
    grep -q '^samples=' "$summary_file" || die "no summary from the phones: $(tail -3 "$dir/phones.log")"
    local sent rings answered
    sent=$(($(metric openline_rtp_packets_sent_total) - sent0))
    rings=$(($(metric openline_queue_rings_total) - rings0))
    answered=$(($(metric openline_queue_answered_total) - answered0))
    stop_server

    local csv="$dir/stat.csv"
    [[ -s $csv ]] || csv=/dev/null
    local ok failed retrans
    ok=$(stat_col "$csv" 'SuccessfulCall(C)')
    failed=$(stat_col "$csv" 'FailedCall(C)')
    retrans=$(stat_col "$csv" 'Retransmissions(C)')
    [[ $ok =~ ^[0-9]+$ ]] || ok=0
    local n b50 b90 b99 bmax o50 o90 o99 omax lag50 lag99 ws we cancels server_byes
    n=$(field "$summary_file" samples)
    b50=$(field "$summary_file" bye_to_ring_p50_ms) b90=$(field "$summary_file" bye_to_ring_p90_ms)
    b99=$(field "$summary_file" bye_to_ring_p99_ms) bmax=$(field "$summary_file" bye_to_ring_max_ms)
    o50=$(field "$summary_file" ok_to_ring_p50_ms) o90=$(field "$summary_file" ok_to_ring_p90_ms)
    o99=$(field "$summary_file" ok_to_ring_p99_ms) omax=$(field "$summary_file" ok_to_ring_max_ms)
    lag50=$(field "$summary_file" read_lag_p50_ms) lag99=$(field "$summary_file" read_lag_p99_ms)
    ws=$(field "$summary_file" window_start_s) we=$(field "$summary_file" window_end_s)
    cancels=$(field "$summary_file" cancels) server_byes=$(field "$summary_file" server_byes)
    # Callers waiting while the samples were taken (gauge scraped every second).
    local waiting_range
    waiting_range=$(awk -v a="$ws" -v b="$we" '$1 >= a && $1 <= b && $2 ~ /^[0-9]+$/ {
            if (n == 0 || $2 < lo) lo = $2; if (n == 0 || $2 > hi) hi = $2; n++ }
        END { if (n) printf "%d–%d", lo, hi; else printf "NA" }' "$dir/waiting.txt")
    local wall sipp_user=0 sipp_sys=0 sipp_pct server_cpu other per_k per_call_rtp
    wall=$(calc "$t1 - $t0")
    read -r sipp_user sipp_sys _ <"$dir/sipp.time" 2>/dev/null || true
    [[ $sipp_user =~ ^[0-9.]+$ ]] || sipp_user=0
    [[ $sipp_sys =~ ^[0-9.]+$ ]] || sipp_sys=0
    sipp_pct=$(calc "100 * ($sipp_user + $sipp_sys) / $wall")
    server_cpu=$(calc "($ticks1 - $ticks0) / $clk_tck")
    other=$(calc "(($host1 - $host0) / $clk_tck - $server_cpu - $sipp_user - $sipp_sys) / $wall")
    per_k=NA per_call_rtp=NA
    ((ok > 0)) && per_k=$(printf '%.2f' "$(calc "1000 * $server_cpu / $ok")") &&
        per_call_rtp=$(printf '%.0f' "$(calc "$sent / $ok")")
    local verdict=ok why=()
    [[ $sipp_rc == 0 ]] || why+=("sipp exit $sipp_rc")
    [[ $failed == 0 ]] || why+=("$failed failed")
    ((ok == calls_per_run)) || why+=("$((calls_per_run - ok)) not completed")
    [[ $n == "$SAMPLES" ]] || why+=("$n samples")
    ((${#why[@]} == 0)) || verdict="FAIL: $(IFS=,; echo "${why[*]}")"
    res[b50]=$b50 res[b99]=$b99 res[o50]=$o50 res[o99]=$o99 res[per_k]=$per_k
    rows+=("| $strategy | $label | $ok / $failed / $retrans | $n | $b50 / $b90 / **$b99** / $bmax | $o50 / $o90 / **$o99** / $omax \
| $lag50 / $lag99 | $waiting_range | $rings / $answered / $cancels / $server_byes | $(printf '%.0f' "$wall") \
| $(printf '%.2f' "$server_cpu") | $per_k | $per_call_rtp | $(printf '%.0f' "$sipp_pct") | $(printf '%.2f' "$other") | $verdict |")
    log "  $strategy: ok=$ok failed=$failed samples=$n BYE→ring p50/p99 $b50/$b99 ms, 200→ring p50/p99 $o50/$o99 ms," \
        "read lag p50/p99 $lag50/$lag99 ms, waiting $waiting_range, server ${server_cpu}s (${per_k}/1k), other load $other → $verdict"
    if [[ $verdict != ok ]]; then
        sed -n '/Messages  Retrans/,/^$/p' "$dir/screen.log" 2>/dev/null | head -20 >&2 || true
    fi
}

print_header() {
    machine_line
    echo "SIPp: $(sipp -v 2>&1 | awk '/SIPp v/ { print $2 }' | head -1)"
    echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'); binary: $built_from (release)"
    echo "Priority: server, phones and SIPp at nice $NICE"
    echo "Server: RUST_LOG=$RUST_LOG openline serve ${server_args[*]}" | sed "s|$tmp|\$TMP|g; s|$repo/||g"
    echo "Phones: queue_operators --operators $OPERATORS --first-ext $first_ext --talk-min-ms $TALK_MIN_MS" \
        "--talk-max-ms $TALK_MAX_MS --samples $SAMPLES"
    echo "SIPp (last run): ${sipp_cmd[*]}" | sed "s|$tmp|\$TMP|g; s|$repo/||g"
    echo
    echo "| strategy | run | calls ok / failed / retrans | samples | free (BYE sent) → ring p50 / p90 / **p99** / max ms | free (200 to BYE) → ring p50 / p90 / **p99** / max ms | client read lag p50 / p99 ms | callers waiting while sampled (min–max) | rings / answered / CANCELs / server BYEs | run s | server CPU-s | CPU-s / 1k calls | hold RTP pkts / call | SIPp CPU % | other load (cores) | result |"
    echo "|---|---|---|---:|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---|"
    printf '%s\n' "${rows[@]}"
}

if [[ -n $profile_strategy ]]; then
    run_one "$profile_strategy" profile perf
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
    perf script -i "$tmp/perf.data" -F comm,ip,sym 2>/dev/null | python3 "$repo/bench/perf_areas.py" queue || true
    echo '```'
    if [[ $KEEP_TMP == 1 ]]; then log "perf data: $tmp/perf.data"; fi
    exit 0
fi

medians=()
for strategy in $STRATEGIES; do
    b50s=() b99s=() o50s=() o99s=() pks=()
    for ((run = 1; run <= RUNS; run++)); do
        run_one "$strategy" "run $run"
        b50s+=("${res[b50]}") b99s+=("${res[b99]}") o50s+=("${res[o50]}") o99s+=("${res[o99]}") pks+=("${res[per_k]}")
    done
    if ((RUNS > 1)); then
        medians+=("- $strategy, median of $RUNS runs: free (BYE sent) → ring p50 $(median "${b50s[@]}") ms, p99 $(median "${b99s[@]}") ms; free (200 to BYE) → ring p50 $(median "${o50s[@]}") ms, p99 $(median "${o99s[@]}") ms; $(median "${pks[@]}") server CPU-s per 1,000 calls")
    fi
done

print_header
if ((${#medians[@]} > 0)); then
    echo
    printf '%s\n' "${medians[@]}"
fi
