#!/usr/bin/env bash
# Voice broadcast rate: outbound calls per second and concurrent broadcast calls the server sustains.
#
# Starts `openline serve` on free 127.0.0.1 ports (SQLite in a temp data dir, wall clock started at
# a Wednesday noon in Kyiv so the default 09:00-20:00 calling window is open) with one trunk that
# is SIPp running bench/broadcast_uas.xml: it answers every INVITE (180, 200 with SDP, -rtp_echo
# sends our audio back as a phone sends its own), waits for our BYE and logs
# `<tick ms> INVITE <number>@ <call-id>` / `<tick ms> END <call-id>` lines. The trunk allows
# 1000 calls/s and 1000 channels, so the campaign's own `cps` is the only pace.
#
# Per step (one per rate in STEPS) a campaign is created through the HTTP API (multipart: the
# campaign JSON, a MESSAGE_SECS WAV tone, a CSV of cps × DURATION new Kyiv numbers) with that cps,
# concurrency cps × (MESSAGE_SECS + 2) + 20 (at most 1000), one attempt per recipient and
# `start: true`; the script waits until it is `completed` (STEP_TIMEOUT) and reports, from the
# trunk's log: INVITEs seen, the INVITE rate (median of the per-second counts with the first and
# the last second left out, and overall: (INVITEs − 1) / (last INVITE − first INVITE)), the most
# INVITEs in any 1000 ms, the most calls up at once (INVITE seen, END not yet) and a call's median
# length; from the server: how long the POST took, the campaign's started_at → finished_at, the
# server's CPU-seconds (utime+stime from /proc/PID/stat, from the POST until `completed`) in all
# and per 1,000 calls, RSS at the end and its peak so far (VmHWM), RTP packets sent per call
# (openline_rtp_packets_sent_total), SIP datagrams the server dropped, the outcome counts; SIPp's
# CPU share and retransmissions, and the CPU used by everything else on the host.
# A step passes when every recipient's outcome is `human`, the trunk saw one INVITE per recipient,
# the campaign completed in time and the overall INVITE rate is ≥ 95 % of the target (the server's
# pacer spaces INVITEs 1.02 / cps apart, so 98 % is the most a step can show).
# Every step runs even after one fails (KEEP_GOING=0: stop at the first failing one).
# A Markdown table goes to stdout (also a row per step on stderr as it ends); progress to stderr.
# Traffic goes to 127.0.0.1 only.
#
#   bench/broadcast_rate.sh
#   OPENLINE_BIN=target/debug/openline STEPS="5 10" DURATION=5 bench/broadcast_rate.sh   # a try-out
#
# Environment (defaults in brackets):
#   STEPS ["25 50 100 200"]  target calls/s, one campaign each
#   DURATION [20]        seconds of calling per step: recipients = cps × DURATION
#   MESSAGE_SECS [1]     length of the message (a 440 Hz tone, 8 kHz mono 16-bit WAV)
#   CONCURRENCY          the campaigns' concurrency [cps × (MESSAGE_SECS + 2) + 20, at most 1000]
#   RTP_ECHO [1]         SIPp -rtp_echo (0: the trunk's media port only receives)
#   STEP_TIMEOUT         seconds a step may take to complete [DURATION × 3 + MESSAGE_SECS + 60]
#   KEEP_GOING [1]       0: stop at the first failing step
#   DEADLINE [1800]      no new step starts after this many seconds
#   SIPP_BUFFER [4194304]  SIPp -buff_size
#   DATA_PARENT [/tmp]   where the temp dir (server data, logs) goes
#   QUIET_LOAD [0.3] QUIET_WAIT [20]  before each step wait up to QUIET_WAIT s for other processes
#                        to use less than QUIET_LOAD cores (bench/lib.sh wait_for_quiet)
#   OPENLINE_BIN         the binary to measure [CARGO_TARGET_DIR or cargo's target dir /release/openline];
#                        nothing is built: build the release binary first
#   BUILT_FROM           what to print as the binary's origin
#   NICE [0]             nice value of the server and SIPp (see bench/lib.sh)
#   RUST_LOG [info]  KEEP_TMP [0] (1: keep the temp dir: server log, trunk log, SIPp stats, API answers)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
# shellcheck source=bench/lib.sh
source "$repo/bench/lib.sh"

STEPS=${STEPS:-"25 50 100 200"}
DURATION=${DURATION:-20}
MESSAGE_SECS=${MESSAGE_SECS:-1}
CONCURRENCY=${CONCURRENCY:-}
RTP_ECHO=${RTP_ECHO:-1}
STEP_TIMEOUT=${STEP_TIMEOUT:-$((DURATION * 3 + MESSAGE_SECS + 60))}
KEEP_GOING=${KEEP_GOING:-1}
DEADLINE=${DEADLINE:-1800}
SIPP_BUFFER=${SIPP_BUFFER:-4194304}
DATA_PARENT=${DATA_PARENT:-/tmp}
QUIET_LOAD=${QUIET_LOAD:-0.3}
QUIET_WAIT=${QUIET_WAIT:-20}
KEEP_TMP=${KEEP_TMP:-0}
CLOCK_START=2026-12-02T10:00:00Z # a Wednesday, 12:00 in Kyiv
export RUST_LOG=${RUST_LOG:-info}

for tool in sipp curl jq python3 getconf; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done
[[ $MESSAGE_SECS =~ ^[0-9]+$ && $MESSAGE_SECS -ge 1 ]] || die "MESSAGE_SECS: whole seconds, at least 1"
[[ $DURATION =~ ^[0-9]+$ && $DURATION -ge 1 ]] || die "DURATION: whole seconds, at least 1"
for cps in $STEPS; do
    [[ $cps =~ ^[0-9]+$ ]] && ((cps >= 1 && cps <= 1000)) || die "STEPS: whole calls/s from 1 to 1000 ($cps)"
done

if [[ -n ${OPENLINE_BIN:-} ]]; then
    bin=$OPENLINE_BIN
    built_from="prebuilt $OPENLINE_BIN"
else
    target_dir=${CARGO_TARGET_DIR:-$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)}
    bin="$target_dir/release/openline"
    built_from="$bin, commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || built_from+=" (the tree has uncommitted changes in src/)"
fi
built_from=${BUILT_FROM:-$built_from}
[[ -x $bin ]] || die "no binary at $bin (build it: cargo build --release --bin openline, or set OPENLINE_BIN)"

# --- clean-up: always stop what we started ------------------------------------------------------
tmp=$(mktemp -d "$DATA_PARENT/openline-broadcast.XXXXXX")
sipp_pid=""
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    stop_server # first, so that the trunk still answers the BYEs of calls up at the time
    [[ -n $sipp_pid ]] && kill_tree "$sipp_pid" KILL
    wait 2>/dev/null || true
    if [[ $KEEP_TMP == 1 ]]; then log "kept $tmp"; else rm -rf "$tmp"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT TERM

# An even UDP port whose next one is free too (SIPp's media port; RTCP above it).
free_media_port() {
    python3 - <<'EOF'
import socket
while True:
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("127.0.0.1", 0))
    port = a.getsockname()[1]
    if port % 2 or port > 65000:
        a.close()
        continue
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        b.bind(("127.0.0.1", port + 1))
    except OSError:
        continue
    finally:
        a.close()
        b.close()
    print(port)
    break
EOF
}

# Whether something listens on UDP 127.0.0.1:PORT.
udp_bound() {
    awk -v addr="$(printf '0100007F:%04X' "$1")" '$2 == addr { found = 1 } END { exit !found }' /proc/net/udp
}

# Value of a column in the last row of a SIPp statistics CSV (';'-separated, header first).
stat_col() {
    awk -F';' -v col="$2" '
        NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) idx = i; next }
        { last = $idx }
        END { print (idx ? last : "NA") }' "$1" 2>/dev/null || echo NA
}

api() { curl -sS --max-time 30 -H "Authorization: Bearer $token" "$@"; }

# --- the message, the config, the trunk, the server -----------------------------------------------
python3 - "$tmp/message.wav" "$MESSAGE_SECS" <<'EOF'
import math, struct, sys, wave
rate, secs = 8000, int(sys.argv[2])
with wave.open(sys.argv[1], "wb") as w:
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(rate)
    w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate)))
                           for i in range(rate * secs)))
EOF

token="bench-admin-token-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
sip_port=$(free_port)
trunk_port=$(free_port)
while [[ $trunk_port == "$sip_port" ]]; do trunk_port=$(free_port); done
media_port=$(free_media_port)
mkdir -p "$tmp/data" "$tmp/trunk" "$tmp/steps"
cat >"$tmp/openline.toml" <<EOF
[[api_tokens]]
token = "$token"
role = "admin"

[[trunks]]
name = "bench"
proxy = "127.0.0.1:$trunk_port"
max_cps = 1000
max_channels = 1000
EOF

trunk_log="$tmp/trunk/trunk.log"
trunk_stat="$tmp/trunk/stat.csv"
echo_flag=()
[[ $RTP_ECHO == 1 ]] && echo_flag=(-rtp_echo)
sipp_cmd=(sipp -sf "$repo/bench/broadcast_uas.xml" -i 127.0.0.1 -p "$trunk_port" -mp "$media_port"
    "${echo_flag[@]}" -buff_size "$SIPP_BUFFER" -nostdin -trace_logs -log_file "$trunk_log"
    -trace_stat -stf "$trunk_stat" -fd 1)
(cd "$tmp/trunk" && exec nice -n "$NICE" "${sipp_cmd[@]}" >"$tmp/trunk/sipp.out" 2>&1) &
sipp_pid=$!
disown "$sipp_pid" # killed by pid in cleanup; no job-control notice when it is
for _ in $(seq 50); do
    udp_bound "$trunk_port" && break
    kill -0 "$sipp_pid" 2>/dev/null || die "SIPp exited: $(tail -5 "$tmp/trunk/sipp.out")"
    sleep 0.1
done
udp_bound "$trunk_port" || die "SIPp does not listen on 127.0.0.1:$trunk_port"
log "trunk: SIPp pid $sipp_pid on 127.0.0.1:$trunk_port (media $media_port)"

server_args=(--config "$tmp/openline.toml" --sip "127.0.0.1:$sip_port" --http 127.0.0.1:0
    --data-dir "$tmp/data" --rtp-ports 20000-32767 --flows "$repo/ivr-flows" --sounds "$repo/sounds"
    --clock-start "$CLOCK_START")
start_server "${server_args[@]}"
[[ $http_addr == 127.0.0.1:* ]] || die "the server's HTTP address is $http_addr, not on 127.0.0.1"

# --- one step -------------------------------------------------------------------------------------
# Analyses the trunk log's lines for one step (stdin): key=value lines.
analyse_trunk=$(
    cat <<'EOF'
import sys
invites, ends = {}, {}
for line in sys.stdin:
    f = line.split()
    if len(f) == 4 and f[1] == "INVITE" and f[0].isdigit():
        invites.setdefault(f[3], int(f[0]))
    elif len(f) == 3 and f[1] == "END" and f[0].isdigit():
        ends[f[2]] = int(f[0])
ticks = sorted(invites.values())
out = {"invites": len(ticks), "ended": sum(1 for c in invites if c in ends)}
def median(v):
    v = sorted(v)
    if not v:
        return None
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2
if ticks:
    first, last = ticks[0], ticks[-1]
    buckets = [0] * ((last - first) // 1000 + 1)
    for t in ticks:
        buckets[(t - first) // 1000] += 1
    steady = buckets[1:-1] if len(buckets) >= 3 else buckets
    out["median_rate"] = float(median(steady))
    out["steady_seconds"] = len(steady)
    out["min_rate"] = min(steady)
    out["overall_rate"] = (len(ticks) - 1) * 1000 / (last - first) if last > first else float("nan")
    best, lo = 0, 0
    for hi in range(len(ticks)):
        while ticks[hi] - ticks[lo] >= 1000:
            lo += 1
        best = max(best, hi - lo + 1)
    out["max_1s"] = best
    # Ends before starts at the same tick: a slot freed and taken within a millisecond.
    events = sorted([(t, 1) for t in invites.values()] + [(ends[c], -1) for c in invites if c in ends])
    now = peak = 0
    for _, d in events:
        now += d
        peak = max(peak, now)
    out["max_up"] = peak
    lengths = [ends[c] - t for c, t in invites.items() if c in ends]
    out["call_ms"] = median(lengths)
    out["span_s"] = (max([ends[c] for c in invites if c in ends] or [last]) - first) / 1000
for k, v in out.items():
    if isinstance(v, float):
        v = f"{v:.2f}"
    print(f"{k}={'NA' if v is None else v}")
EOF
)

rows=()
step_pass=0
step_no=0
number_seq=0
create_cmd_shown=""
t_begin=$SECONDS

run_step() {
    local cps=$1
    step_no=$((step_no + 1))
    local n=$((cps * DURATION)) conc
    conc=${CONCURRENCY:-$((cps * (MESSAGE_SECS + 2) + 20))}
    ((conc > 1000)) && conc=1000
    local dir="$tmp/steps/$step_no-$cps"
    mkdir -p "$dir"

    # New numbers every step (each becomes a CRM lead): +380 44 123 0000 upwards, Kyiv.
    {
        echo "number,name"
        local i
        for ((i = 0; i < n; i++)); do
            printf '+38044%07d,Bench %d\n' $((1230000 + number_seq + i)) $((number_seq + i))
        done
    } >"$dir/recipients.csv"
    number_seq=$((number_seq + n))
    jq -n --arg name "bench $cps cps #$step_no" --argjson cps "$cps" --argjson conc "$conc" \
        '{name: $name, trunk: "bench", cps: $cps, concurrency: $conc, max_ring_secs: 20,
          retry: {max_attempts: 1}, start: true}' >"$dir/campaign.json"
    local create_cmd=(curl -sS -H "Authorization: Bearer \$TOKEN"
        -F "campaign=<$dir/campaign.json;type=application/json"
        -F "message=@$tmp/message.wav;type=audio/wav"
        -F "recipients=@$dir/recipients.csv;type=text/csv"
        "http://$http_addr/api/v1/broadcasts")
    [[ -n $create_cmd_shown ]] || create_cmd_shown="${create_cmd[*]}"

    local quiet
    quiet=$(wait_for_quiet)
    log "step $step_no: $cps calls/s × ${DURATION}s = $n recipients, concurrency $conc (other load before: $quiet cores)"

    local log_off sent0 drops0 retrans0 sipp_failed0
    log_off=$(stat -c %s "$trunk_log" 2>/dev/null || echo 0)
    sent0=$(metric openline_rtp_packets_sent_total)
    drops0=$(metric openline_sip_udp_dropped_total)
    retrans0=$(stat_col "$trunk_stat" 'Retransmissions(C)')
    sipp_failed0=$(stat_col "$trunk_stat" 'FailedCall(C)')

    local ticks0 sticks0 host0 t0 ticks_c t_c code
    ticks0=$(proc_ticks "$server_pid")
    sticks0=$(proc_ticks "$sipp_pid")
    host0=$(host_busy_ticks)
    t0=$(now_s)
    code=$(api -o "$dir/created.json" -w '%{http_code}' \
        -F "campaign=<$dir/campaign.json;type=application/json" \
        -F "message=@$tmp/message.wav;type=audio/wav" \
        -F "recipients=@$dir/recipients.csv;type=text/csv" \
        "http://$http_addr/api/v1/broadcasts") || code="curl failed"
    t_c=$(now_s)
    ticks_c=$(proc_ticks "$server_pid")
    [[ $code == 201 ]] || die "creating the campaign: HTTP $code: $(head -c 500 "$dir/created.json" 2>/dev/null)"
    local id accepted
    id=$(jq -r .id "$dir/created.json")
    accepted=$(jq -r .recipients.accepted "$dir/created.json")
    [[ $accepted == "$n" ]] || die "the campaign took $accepted of $n recipients: $(jq -c .recipients "$dir/created.json" | head -c 500)"
    local create_s
    create_s=$(calc "$t_c - $t0")
    log "  created $id in $(printf '%.2f' "$create_s") s; calling"

    # Until completed (or the step's deadline), sampling the server's own counts of calls in
    # flight: the dispatcher's gauge (INVITEs sent, not yet reported over) and the API's
    # progress.calling (recipients in state `calling`: claimed, so also those waiting for a slot).
    local state="" view="$dir/view.json" max_calling=0 max_gauge=0 calling gauge completed=1 last_log=$SECONDS
    while :; do
        gauge=$(metric openline_broadcast_calls_in_flight)
        ((gauge > max_gauge)) && max_gauge=$gauge
        if api -o "$view" "http://$http_addr/api/v1/broadcasts/$id" 2>/dev/null; then
            state=$(jq -r .state "$view")
            calling=$(jq -r .progress.calling "$view")
            ((calling > max_calling)) && max_calling=$calling
            [[ $state == completed ]] && break
            if ((SECONDS - last_log >= 5)); then
                log "  $(jq -r '"\(.state): \(.progress.done)/\(.progress.total) done, \(.progress.calling) calling"' "$view")"
                last_log=$SECONDS
            fi
        fi
        if (($(calc "$(now_s) - $t_c > $STEP_TIMEOUT") == 1)); then
            completed=0
            log "  not completed after ${STEP_TIMEOUT}s ($state): cancelling it"
            api -o /dev/null -X POST "http://$http_addr/api/v1/broadcasts/$id/cancel" || true
            sleep 3
            break
        fi
        sleep 0.5
    done
    local t1 ticks1 sticks1 host1 rss hwm
    t1=$(now_s)
    ticks1=$(proc_ticks "$server_pid")
    sticks1=$(proc_ticks "$sipp_pid")
    host1=$(host_busy_ticks)
    rss=$(($(proc_rss_kb "$server_pid") / 1024))
    hwm=$(($(proc_hwm_kb "$server_pid") / 1024))
    api -o "$view" "http://$http_addr/api/v1/broadcasts/$id" || true

    # The trunk's view: this step's part of its log (wait a moment for the last ENDs and stats).
    local -A tr=()
    local k v waited
    for waited in 1 2 3 4 5 6; do
        sleep 1
        tail -c +$((log_off + 1)) "$trunk_log" >"$dir/trunk.log"
        tr=()
        while IFS='=' read -r k v; do tr[$k]=$v; done < <(python3 -c "$analyse_trunk" <"$dir/trunk.log")
        [[ ${tr[invites]:-0} == "${tr[ended]:-0}" ]] && ((waited >= 2)) && break
    done
    local sent drops retrans sipp_failed
    sent=$(($(metric openline_rtp_packets_sent_total) - sent0))
    drops=$(($(metric openline_sip_udp_dropped_total) - drops0))
    retrans=NA sipp_failed=NA
    v=$(stat_col "$trunk_stat" 'Retransmissions(C)')
    [[ $v =~ ^[0-9]+$ && $retrans0 =~ ^[0-9]+$ ]] && retrans=$((v - retrans0))
    v=$(stat_col "$trunk_stat" 'FailedCall(C)')
    [[ $v =~ ^[0-9]+$ && $sipp_failed0 =~ ^[0-9]+$ ]] && sipp_failed=$((v - sipp_failed0))

    local pct=NA
    [[ ${tr[overall_rate]:-NA} =~ ^[0-9.]+$ ]] && pct=$(printf '%.0f' "$(calc "100 * ${tr[overall_rate]} / $cps")")
    local wall server_cpu create_cpu sipp_cpu host_cpu other per_k sipp_pct invites humans outcomes
    wall=$(calc "$t1 - $t0")
    server_cpu=$(calc "($ticks1 - $ticks0) / $clk_tck")
    create_cpu=$(calc "($ticks_c - $ticks0) / $clk_tck")
    sipp_cpu=$(calc "($sticks1 - $sticks0) / $clk_tck")
    host_cpu=$(calc "($host1 - $host0) / $clk_tck")
    other=$(printf '%.2f' "$(calc "($host_cpu - $server_cpu - $sipp_cpu) / $wall")")
    sipp_pct=$(printf '%.0f' "$(calc "100 * $sipp_cpu / $wall")")
    invites=${tr[invites]:-0}
    per_k=NA
    ((invites > 0)) && per_k=$(printf '%.2f' "$(calc "1000 * $server_cpu / $invites")")
    local per_call_rtp=NA
    ((invites > 0)) && per_call_rtp=$(printf '%.0f' "$(calc "$sent / $invites")")
    humans=$(jq -r '.progress.outcomes.human // 0' "$view")
    outcomes=$(jq -r '.progress.outcomes | to_entries | map("\(.key) \(.value)") | join(", ")' "$view")
    local started finished run_s=NA
    started=$(jq -r '.started_at // empty' "$view")
    finished=$(jq -r '.finished_at // empty' "$view")
    if [[ -n $started && -n $finished ]]; then
        run_s=$(printf '%.2f' "$(calc "$(date -d "$finished" +%s.%N) - $(date -d "$started" +%s.%N)")")
    fi

    local pass=1 why=()
    ((completed)) || { pass=0; why+=("not completed in ${STEP_TIMEOUT}s"); }
    ((humans == n)) || { pass=0; why+=("$((n - humans)) of $n not human"); }
    ((invites == n)) || { pass=0; why+=("trunk saw $invites INVITEs for $n recipients"); }
    if [[ ${tr[overall_rate]:-NA} == NA || $(calc "${tr[overall_rate]} < 0.95 * $cps") == 1 ]]; then
        pass=0
        why+=("rate below 95 %")
    fi
    local verdict=pass
    ((pass)) || verdict="FAIL: $(IFS=';'; echo "${why[*]}")"
    local row="| $cps | $n | $conc | $invites | ${tr[median_rate]:-NA} (min ${tr[min_rate]:-NA}) \
| ${tr[overall_rate]:-NA} ($pct %) | ${tr[max_1s]:-NA} | ${tr[max_up]:-NA} / $max_gauge / $max_calling \
| $(calc "${tr[call_ms]:-0} / 1000" | xargs printf '%.2f') | $(printf '%.2f' "$create_s") \
| $run_s | ${tr[span_s]:-NA} | $(printf '%.2f' "$create_cpu") | $(printf '%.2f' "$server_cpu") | $per_k \
| $rss / $hwm | $per_call_rtp | $drops | $sipp_pct | $retrans / $sipp_failed | $other | $outcomes | $verdict |"
    rows+=("$row")
    log "  $row"
    step_pass=$pass
}

# --- the steps -------------------------------------------------------------------------------------
stopped=""
steps_run=0
steps_passed=0
for cps in $STEPS; do
    if ((SECONDS - t_begin > DEADLINE)); then
        stopped="DEADLINE (${DEADLINE}s) reached before the $cps calls/s step"
        break
    fi
    run_step "$cps"
    steps_run=$((steps_run + 1))
    steps_passed=$((steps_passed + step_pass))
    if [[ $step_pass != 1 && $KEEP_GOING != 1 ]]; then
        stopped="stopped after the first failing step ($cps calls/s)"
        break
    fi
    sleep 2
done

# --- the report -------------------------------------------------------------------------------------
hide() { sed "s|$tmp|\$TMP|g; s|$repo/||g; s|$token|\$TOKEN|g"; }
echo "$(machine_line); $(sipp -v 2>&1 | grep -o 'SIPp v[^ ]*' | head -1)"
echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'); binary: $built_from"
echo "Run: STEPS=\"$STEPS\" DURATION=$DURATION MESSAGE_SECS=$MESSAGE_SECS${CONCURRENCY:+ CONCURRENCY=$CONCURRENCY} RTP_ECHO=$RTP_ECHO STEP_TIMEOUT=$STEP_TIMEOUT NICE=$NICE bench/broadcast_rate.sh"
echo "Server: RUST_LOG=$RUST_LOG $bin serve ${server_args[*]}" | hide
echo "Trunk: ${sipp_cmd[*]}" | hide
echo "Campaign (first step): ${create_cmd_shown:-none}; campaign JSON: $(jq -c . "$tmp/steps/1-"*/campaign.json 2>/dev/null | head -1)" | hide
echo "Message: ${MESSAGE_SECS} s 440 Hz tone, 8 kHz mono 16-bit WAV; recipients: new Kyiv numbers (+38044123…), one attempt each; trunk max_cps 1000, max_channels 1000; RTP echo: $([[ $RTP_ECHO == 1 ]] && echo on || echo off)"
echo
echo "| target calls/s | recipients | concurrency | INVITEs at trunk | INVITE/s median of seconds | INVITE/s overall" \
    "| most INVITEs in 1 s | most calls up: trunk / server gauge / API calling | call length s (median) | create s" \
    "| started → finished s | first INVITE → last END s | CPU-s create | server CPU-s | CPU-s / 1k calls" \
    "| RSS MB (end / peak) | RTP sent / call | SIP drops | SIPp CPU % | SIPp retrans / failed | other load (cores) | outcomes | result |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "- $steps_passed of $steps_run steps passed${stopped:+; $stopped}"
echo "- server CPU-s: utime+stime from the POST to \`completed\` (campaign creation included; 'CPU-s create' is the POST alone); per 1k calls divides it by the INVITEs the trunk saw"
echo "- most calls up: trunk = INVITE seen and END not yet, from the trunk's log; server gauge = the highest openline_broadcast_calls_in_flight and API calling = the highest progress.calling (claimed recipients, so also those waiting for their INVITE slot), both sampled every ~0.5 s"
echo "- INVITE/s median of seconds: per-second INVITE counts from the first INVITE on, the first and the last (partial) second left out; overall: (INVITEs − 1) / (last INVITE − first INVITE); the pacer's 2 % guard caps both at 0.98 × target"
