#!/usr/bin/env bash
# The Wine leg of veloq-bench: builds the bench in release for
# x86_64-pc-windows-gnu and runs its echo and/or file scenario under Wine
# (veloq's IOCP driver vs tokio and compio). Wine figures are labelled as
# Wine: they say nothing about speed on Windows. Too slow for CI.
#
# Usage: scripts/bench-windows.sh [echo|file|all] [--quick] [more bench options]
#        scripts/bench-windows.sh --check    (cargo check, no Wine)
#        scripts/bench-windows.sh --clippy   (clippy -D warnings, no Wine)
#
# Same toolchain, Wine prefix (<repo>/.wine), target dir
# (<repo>/target-windows) and ProcessPrng shim as scripts/test-windows.sh;
# run that once first on a fresh machine (it installs the packages and
# creates the prefix). Results go to veloq-bench/results/wine/ unless
# --out is given; the file scenario defaults to a 64 MiB file.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

TARGET=x86_64-pc-windows-gnu
log() { printf '[bench-windows] %s\n' "$*" >&2; }

# --- the environment of scripts/test-windows.sh ---------------------------
export PATH="/usr/bin:$PATH"
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$REPO/target-windows"
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine
unset RUSTFLAGS CARGO_BUILD_TARGET

if [[ "${1:-}" == "--check" ]]; then
    shift
    exec cargo check -p veloq-bench --all-targets --target "$TARGET" -Zbuild-std "$@"
fi
if [[ "${1:-}" == "--clippy" ]]; then
    shift
    # The same allowance as test-windows.sh --clippy (a false positive of
    # Debian's clippy for this target). --no-deps: veloq is linted by
    # test-windows.sh --clippy (with its tests, which use all of it).
    exec cargo clippy -p veloq-bench --no-deps --all-targets --target "$TARGET" -Zbuild-std "$@" -- -D warnings \
        -A clippy::missing_const_for_thread_local
fi

export WINEPREFIX="$REPO/.wine"
export WINEDEBUG=-all
export WINEDLLOVERRIDES="mscoree,mshtml="
SYSTEM32="$WINEPREFIX/drive_c/windows/system32"
SHIM="$CARGO_TARGET_DIR/shim/bcryptprimitives.dll"
if [[ ! -d "$SYSTEM32" || ! -f "$SHIM" ]]; then
    log "no Wine prefix or ProcessPrng shim yet: run scripts/test-windows.sh once first"
    exit 1
fi
cmp -s "$SHIM" "$SYSTEM32/bcryptprimitives.dll" || cp "$SHIM" "$SYSTEM32/bcryptprimitives.dll"

# --- arguments --------------------------------------------------------------
scenario=echo
if [[ $# -gt 0 && "$1" != -* ]]; then
    scenario="$1"
    shift
fi
case "$scenario" in
    echo | file | all) ;;
    *) log "unknown scenario $scenario (echo, file or all)"; exit 2 ;;
esac
args=("$scenario" "$@")
[[ " $* " == *" --out "* ]] || args+=(--out veloq-bench/results/wine)
[[ "$scenario" == echo || " $* " == *" --file-mib "* ]] || args+=(--file-mib 64)

# --- build and run ------------------------------------------------------------
log "cargo build --release -p veloq-bench --target $TARGET -Zbuild-std"
cargo build --release -p veloq-bench --target "$TARGET" -Zbuild-std
EXE="$CARGO_TARGET_DIR/$TARGET/release/veloq-bench.exe"

model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
export VELOQ_BENCH_MACHINE="${model:-unknown CPU}, $(nproc --all) CPUs, Linux $(uname -r), $(wine --version) \
(1-minute load average at start $(cut -d' ' -f1 /proc/loadavg)); veloq tree $(git describe --always --dirty 2>/dev/null || echo unknown)"
# Wine passes the Unix environment on to the program.
export WINEDLLOVERRIDES
log "wine $EXE ${args[*]}  [$VELOQ_BENCH_MACHINE]"
set +e
wine "$EXE" "${args[@]}"
status=$?
set -e
log "1-minute load average at the end: $(cut -d' ' -f1 /proc/loadavg)"
# Let the Wine server exit by itself rather than kill it under another run.
wineserver -w >/dev/null 2>&1 || true
exit "$status"
