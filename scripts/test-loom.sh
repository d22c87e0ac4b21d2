#!/usr/bin/env bash
# Loom model checks of veloq's cross-thread protocols: the park state
# machine, the scheduler's remote and injection queues, the eventfd's wake
# coalescing, mpsc, oneshot and the blocking pool's result hand-off (the
# `loom_tests` modules; `crate::loom` is the facade they swap in).
#
# The library is built with `--cfg loom` (loom's atomics, locks and
# threads replace std's) in its own target dir, in release as loom models
# run many thousands of interleavings. LOOM_MAX_PREEMPTIONS bounds how
# often one model run may preempt a thread (3 by default; every
# interleaving within that bound is explored).
#
# Usage: scripts/test-loom.sh [extra cargo test args, e.g. a test name]
set -euo pipefail
cd "$(dirname "$0")/.."

export RUSTFLAGS="${RUSTFLAGS:-} --cfg loom"
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}"
export CARGO_TARGET_DIR="${LOOM_TARGET_DIR:-target-loom}"

# Every model's name starts with `loom_`; nothing else in the crate runs
# under --cfg loom (its loom objects exist only inside a model).
cargo test -p veloq --lib --release "${@:-loom_}"
