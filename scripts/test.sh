#!/usr/bin/env bash
# The one test command of veloq.
#
#   scripts/test.sh
#
# 1. Linux leg: the whole workspace test suite (unit, integration, doc
#    tests) on the io_uring driver, plus the formatting, lint and docs gates;
#    then the unit and integration tests again on the epoll fallback driver
#    (VELOQ_DRIVER=epoll). Then the proofs under stress (issue 10): loom
#    models (scripts/test-loom.sh), strace fault injection
#    (scripts/test-faults.sh), 18,000-connection churn from a child process
#    (scripts/test-stress.sh) and the suite under AddressSanitizer
#    (scripts/test-asan.sh).
# 2. Windows leg: the same suite cross-compiled for x86_64-pc-windows-gnu
#    and run under Wine on the IOCP driver (scripts/test-windows.sh installs
#    what it needs).
#
# VELOQ_SKIP_WINDOWS=1 skips the Windows leg for Linux-only development.
# CI (CI=true) never skips it.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# The poll-based compatibility layer (veloq::compat) and the hyper glue are
# behind features; their tests run in a build of their own with them on.
COMPAT_FEATURES="futures-io,tokio,hyper"

step "format check"
cargo fmt --all -- --check

step "clippy (-D warnings)"
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy -p veloq --all-targets --features "$COMPAT_FEATURES" -- -D warnings

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
RUSTDOCFLAGS="-D warnings" cargo doc -p veloq --no-deps --quiet --features "$COMPAT_FEATURES"

step "Linux leg: cargo test (io_uring driver)"
cargo test --workspace
# The hyper tests also talk to curl, a client nobody here wrote.
command -v curl >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null
}
cargo test -p veloq --features "$COMPAT_FEATURES" --test compat --test compat_alloc --test tls --test hyper --test https
cargo test -p veloq --features "$COMPAT_FEATURES" --doc -- compat hyper

step "Linux leg: unit + integration tests on the epoll driver (VELOQ_DRIVER=epoll)"
VELOQ_DRIVER=epoll cargo test -p veloq --tests
VELOQ_DRIVER=epoll cargo test -p veloq --features "$COMPAT_FEATURES" --test compat --test compat_alloc --test tls --test hyper --test https

step "Linux leg: loom models of the cross-thread state machines (--cfg loom)"
scripts/test-loom.sh

step "Linux leg: fault injection with strace (transient faults, then hard ones)"
scripts/test-faults.sh

step "Linux leg: load and churn, 18,000 connections from a child process"
scripts/test-stress.sh

step "Linux leg: unit + integration tests under AddressSanitizer (io_uring, then epoll)"
scripts/test-asan.sh

if [ "${VELOQ_SKIP_WINDOWS:-0}" = "1" ] && [ "${CI:-}" != "true" ]; then
    step "Windows leg skipped (VELOQ_SKIP_WINDOWS=1)"
    exit 0
fi

step "Windows leg: clippy (-D warnings) for x86_64-pc-windows-gnu"
scripts/test-windows.sh --clippy
scripts/test-windows.sh --clippy --features "$COMPAT_FEATURES"

step "Windows leg: cargo test under Wine (IOCP driver)"
scripts/test-windows.sh
scripts/test-windows.sh --test compat --test compat_alloc --test hyper --test tls --test https --features "$COMPAT_FEATURES"
