#!/usr/bin/env bash
# Coverage-guided fuzzing with AFL++ through cargo-afl (stable toolchain; fuzz/ is its own crate).
#
#   scripts/fuzz.sh smoke [SECONDS]        every target for SECONDS (default 10) from fuzz/corpus;
#                                          fails if any target crashes or hangs (scripts/test.sh runs it)
#   scripts/fuzz.sh run TARGET SECONDS     one long run; findings in $FUZZ_OUT/TARGET
#   scripts/fuzz.sh replay TARGET FILE...  runs inputs through the instrumented target (a crash shows
#                                          its panic message)
#   scripts/fuzz.sh targets                lists the targets
#
# Installs cargo-afl (crates.io, pinned) when missing; AFL++ itself is built by cargo-afl. The
# instrumented build has its own target dir ($FUZZ_TARGET_DIR) so it never evicts the normal one.
# A crash found becomes a file in tests/data/fuzz/TARGET/ and a test that names it
# (tests/fuzz_corpus.rs replays every file there and in fuzz/corpus on each `cargo test`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)

CARGO_AFL_VERSION=0.18.2
FUZZ_TARGET_DIR=${FUZZ_TARGET_DIR:-/var/cache/openline-target-afl}
FUZZ_OUT=${FUZZ_OUT:-/var/cache/openline-fuzz}
TARGETS=(sip_message sdp digest rtp ivr_yaml config http_json)

log() { printf '== fuzz: %s\n' "$*" >&2; }

ensure_cargo_afl() {
    if ! cargo afl --version 2>/dev/null | grep -q "cargo-afl $CARGO_AFL_VERSION"; then
        log "installing cargo-afl $CARGO_AFL_VERSION (builds AFL++ too)"
        cargo install --locked cargo-afl --version "$CARGO_AFL_VERSION"
    fi
    # cargo-afl builds AFL++ once per rustc; up front, quietly ("already built" is fine).
    local out
    if ! out=$(cargo afl config --build 2>&1) && ! grep -q "already built" <<<"$out"; then
        log "building AFL++ failed:"
        echo "$out" >&2
        exit 1
    fi
}

build() {
    log "building the instrumented targets (target dir $FUZZ_TARGET_DIR)"
    (cd fuzz && CARGO_TARGET_DIR=$FUZZ_TARGET_DIR cargo afl build --release --locked --quiet)
}

# afl-fuzz settings for a sandbox: no core_pattern or CPU governor to tune, no UI.
# (AFL++ reads most of its variables as set-or-not: AFL_BENCH_UNTIL_CRASH=0 would still stop at
# the first crash, so such variables are not set at all.)
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1

# fuzz TARGET SECONDS OUT: one afl-fuzz run; prints "execs crashes hangs".
fuzz_one() {
    local target=$1 seconds=$2 out=$3
    mkdir -p "$out"
    local input="$repo/fuzz/corpus/$target"
    # Resume a previous run's queue when there is one ("-i -").
    [[ -d $out/default/queue ]] && input=-
    cargo afl fuzz -V "$seconds" -t 1000 -m none -i "$input" -o "$out" \
        "$FUZZ_TARGET_DIR/release/$target" >"$out/afl.log" 2>&1 || {
        log "$target: afl-fuzz failed; its log:"
        tail -30 "$out/afl.log" >&2
        return 1
    }
    local stats="$out/default/fuzzer_stats"
    local execs crashes hangs
    execs=$(awk -F': *' '$1 ~ /^execs_done/ { print $2 }' "$stats")
    crashes=$(awk -F': *' '$1 ~ /^saved_crashes/ { print $2 }' "$stats")
    hangs=$(awk -F': *' '$1 ~ /^saved_hangs/ { print $2 }' "$stats")
    echo "$execs $crashes $hangs"
}

case "${1:-}" in
    targets)
        printf '%s\n' "${TARGETS[@]}"
        ;;
    smoke)
        seconds=${2:-10}
        ensure_cargo_afl
        build
        scratch=$(mktemp -d /tmp/openline-fuzz-smoke.XXXXXX)
        trap 'rm -rf "$scratch"' EXIT
        failed=0
        for target in "${TARGETS[@]}"; do
            read -r execs crashes hangs < <(fuzz_one "$target" "$seconds" "$scratch/$target") || {
                failed=1
                continue
            }
            log "$target: ${seconds}s, $execs execs, $crashes crashes, $hangs hangs"
            if ((crashes > 0 || hangs > 0)); then
                failed=1
                for f in "$scratch/$target"/default/crashes/id:* "$scratch/$target"/default/hangs/id:*; do
                    [[ -e $f ]] || continue
                    log "$target: finding $f (base64): $(base64 -w0 "$f" | head -c 2000)"
                done
            fi
        done
        exit "$failed"
        ;;
    run)
        target=${2:?target}
        seconds=${3:?seconds}
        ensure_cargo_afl
        build
        read -r execs crashes hangs < <(fuzz_one "$target" "$seconds" "$FUZZ_OUT/$target")
        echo "$target: ${seconds}s, $execs execs, $crashes crashes, $hangs hangs (findings: $FUZZ_OUT/$target/default)"
        ;;
    replay)
        target=${2:?target}
        shift 2
        ensure_cargo_afl
        build
        failed=0
        for f in "$@"; do
            echo "-- $f"
            if "$FUZZ_TARGET_DIR/release/$target" <"$f"; then echo "ok"; else failed=1; fi
        done
        exit "$failed"
        ;;
    *)
        sed -n '2,14p' "$0" >&2
        exit 2
        ;;
esac
