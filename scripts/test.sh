#!/usr/bin/env bash
# The one test command of veloq.
#
#   scripts/test.sh
#
# 1. Linux leg: the whole workspace test suite (unit, integration, doc
#    tests) on the io_uring driver, plus the formatting, lint and docs gates;
#    then the unit and integration tests again on the epoll fallback driver
#    (VELOQ_DRIVER=epoll).
# 2. Windows leg: the same suite cross-compiled for x86_64-pc-windows-gnu
#    and run under Wine on the IOCP driver (scripts/test-windows.sh installs
#    what it needs).
#
# VELOQ_SKIP_WINDOWS=1 skips the Windows leg for Linux-only development.
# CI (CI=true) never skips it.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "format check"
cargo fmt --all -- --check

step "clippy (-D warnings)"
cargo clippy --workspace --all-targets -- -D warnings

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

step "Linux leg: cargo test (io_uring driver)"
cargo test --workspace

step "Linux leg: unit + integration tests on the epoll driver (VELOQ_DRIVER=epoll)"
VELOQ_DRIVER=epoll cargo test -p veloq --tests

if [ "${VELOQ_SKIP_WINDOWS:-0}" = "1" ] && [ "${CI:-}" != "true" ]; then
    step "Windows leg skipped (VELOQ_SKIP_WINDOWS=1)"
    exit 0
fi

step "Windows leg: clippy (-D warnings) for x86_64-pc-windows-gnu"
scripts/test-windows.sh --clippy

step "Windows leg: cargo test under Wine (IOCP driver)"
scripts/test-windows.sh
