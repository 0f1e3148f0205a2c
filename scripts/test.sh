#!/usr/bin/env bash
# The whole test suite, as a new developer and CI run it: installs what the tests need when it is
# missing (Debian packages: sip-tester for SIPp, baresip-core and linphone-cli for softphones, postgresql,
# iproute2/util-linux for the network namespace, chromium and node for the browser test) and
# playwright-core from npm, starts a throwaway PostgreSQL, then runs fmt, clippy and every test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '\n== %s\n' "$*" >&2; }

need_packages=()
command -v sipp >/dev/null 2>&1 || need_packages+=(sip-tester)
# baresip as the operators' softphone (tests/softphone_e2e.rs); -core has the binary and every module
# the tests load, without the GTK, GStreamer, FFmpeg and X11 plugins the `baresip` package pulls in.
command -v baresip >/dev/null 2>&1 || need_packages+=(baresip-core)
# Linphone's console phone for the attended transfer from the phone (REFER with Replaces), which
# baresip 1.0.0 cannot send (tests/transfer_e2e.rs).
command -v linphonec >/dev/null 2>&1 || need_packages+=(linphone-cli)
command -v espeak-ng >/dev/null 2>&1 || need_packages+=(espeak-ng)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_packages+=(postgresql)
command -v ip >/dev/null 2>&1 || need_packages+=(iproute2)
command -v unshare >/dev/null 2>&1 || need_packages+=(util-linux)
# The managers' page browser test (tests/web.rs): Debian's chromium driven by playwright-core.
[[ -x /usr/bin/chromium ]] || need_packages+=(chromium)
command -v node >/dev/null 2>&1 || need_packages+=(nodejs)
command -v npm >/dev/null 2>&1 || need_packages+=(npm)
# SIPVicious (tests/scanners.rs) goes into a virtualenv: Debian's python needs python3-venv for it.
command -v python3 >/dev/null 2>&1 || need_packages+=(python3)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need_packages+=(python3-venv)
if ((${#need_packages[@]})); then
    log "installing ${need_packages[*]}"
    if [[ $(id -u) -ne 0 ]]; then
        echo "scripts/test.sh: missing ${need_packages[*]}; run as root or install them" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq "${need_packages[@]}" >/dev/null
fi

if [[ ! -d tests/browser/node_modules/playwright-core ]]; then
    log "installing playwright-core for the browser test (npm ci in tests/browser)"
    (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi

# SIPVicious 0.3.8 from PyPI for tests/scanners.rs, in a virtualenv outside the clone (kept
# between runs like the cargo target dir).
sipvicious_venv=${OPENLINE_TOOLS_DIR:-/var/cache/openline-tools}/sipvicious-0.3.8
if ! "$sipvicious_venv/bin/python" -c 'import sipvicious' >/dev/null 2>&1; then
    log "installing SIPVicious 0.3.8 into $sipvicious_venv"
    rm -rf "$sipvicious_venv"
    mkdir -p "$(dirname "$sipvicious_venv")"
    python3 -m venv "$sipvicious_venv"
    "$sipvicious_venv/bin/pip" install --quiet --disable-pip-version-check sipvicious==0.3.8
fi
export OPENLINE_SIPVICIOUS_PYTHON="$sipvicious_venv/bin/python"

log "starting a throwaway PostgreSQL"
PGURL=$(scripts/test-postgres.sh start)
trap 'scripts/test-postgres.sh stop >/dev/null 2>&1 || true' EXIT
export OPENLINE_TEST_POSTGRES_URL="$PGURL"
export OPENLINE_REQUIRE_POSTGRES=1

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --all-targets --locked -- -D warnings
log "cargo test"
cargo test --all-targets --locked --no-fail-fast -- --test-threads="${OPENLINE_TEST_THREADS:-4}"
log "fuzz smoke run (AFL++, every target for ${OPENLINE_FUZZ_SMOKE_SECONDS:-10} s)"
scripts/fuzz.sh smoke "${OPENLINE_FUZZ_SMOKE_SECONDS:-10}"
