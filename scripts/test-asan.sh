#!/usr/bin/env bash
# The AddressSanitizer leg: veloq's unit and integration tests built with
# -Zsanitizer=address and run on the io_uring driver, then again on the
# epoll driver (VELOQ_DRIVER=epoll). Any ASan or LeakSanitizer report fails
# the run. Leaks that tests make on purpose are suppressed by name in
# scripts/lsan.supp, each with its reason.
#
# Usage: scripts/test-asan.sh [extra cargo test args, e.g. --test tcp_echo]
#
# -Zsanitizer is a nightly flag; RUSTC_BOOTSTRAP=1 lets the installed stable
# toolchain accept it (std itself is not rebuilt: the sanitizer runtime
# instruments veloq and the tests, and intercepts malloc/free everywhere).
# The build has its own target dir (target-asan), so it never invalidates
# the normal build's artifacts.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

HOST=x86_64-unknown-linux-gnu
export RUSTC_BOOTSTRAP=1
export RUSTFLAGS="-Zsanitizer=address"
export CARGO_TARGET_DIR="$REPO/target-asan"
# detect_leaks: LeakSanitizer runs at exit of every test binary.
# abort_on_error=0 / exitcode: a report makes the binary exit non-zero,
# so cargo test fails on it.
# fast_unwind_on_malloc=0: allocation stacks by the DWARF unwinder, so
# they keep every frame (the frame-pointer unwinder drops the callers of
# std's precompiled functions, which have no frame pointers), and the
# by-name suppressions in lsan.supp find the function they name.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=86:fast_unwind_on_malloc=0"
export LSAN_OPTIONS="suppressions=$REPO/scripts/lsan.supp:print_suppressions=0:exitcode=87"

# The property tests run fewer cases here (each is several times slower
# under ASan); the plain Linux leg runs them in full.
export PROPTEST_CASES="${PROPTEST_CASES:-64}"

log() { printf '[test-asan] %s (%ss)\n' "$*" "$SECONDS" >&2; }

# --target keeps RUSTFLAGS away from build scripts and proc macros (the
# sanitizer runtime cannot be linked into the proc-macro dylib).
log "io_uring driver"
cargo test -p veloq --tests --no-fail-fast --target "$HOST" "$@"
log "epoll driver (VELOQ_DRIVER=epoll)"
VELOQ_DRIVER=epoll cargo test -p veloq --tests --no-fail-fast --target "$HOST" "$@"
log "no ASan or LSan reports"
