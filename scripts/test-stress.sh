#!/usr/bin/env bash
# Load and churn at full size (issue 10, item 6), on io_uring and on epoll:
# the #[ignore]d tests of veloq/tests/load_churn.rs. The ordinary suite runs
# the same code at 300 connections (plus the 8-entry ring and the accept
# loop at 64 descriptors); this runs 18,000 connections from a child
# process, three cycles, on one worker and on two, checking that every
# connection succeeds, descriptors return to their baseline and RSS with
# every connection open grows at most 5 % from cycle 1 to cycle 3. Each
# test prints its timings and the RSS per idle connection.
#
#   scripts/test-stress.sh            # both drivers
#   scripts/test-stress.sh epoll      # one driver
#
# The descriptor hard limit must allow 18,000 connections per process
# (the tests raise the soft limit to the hard one); on these machines it is
# 20,000.
set -euo pipefail
cd "$(dirname "$0")/.."

start=$SECONDS
drivers=("$@")
[ ${#drivers[@]} -gt 0 ] || drivers=(io_uring epoll)

hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt 18100 ]; then
    echo "descriptor hard limit $hard is below 18,100: cannot run 18,000 connections" >&2
    exit 1
fi

bin=$(cargo test -p veloq --no-run --test load_churn --message-format=json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)

for driver in "${drivers[@]}"; do
    for test in churn_18000_connections_one_worker churn_18000_connections_two_workers; do
        printf '\n==> %s (%s)\n' "$test" "$driver"
        t0=$SECONDS
        log=$(mktemp)
        if ! VELOQ_DRIVER=$driver timeout --kill-after=10 480 \
            "$bin" --ignored --exact "$test" --nocapture --test-threads=1 >"$log" 2>&1; then
            cat "$log"
            rm -f "$log"
            echo "FAILED: $test ($driver); exit 124 means it hung" >&2
            exit 1
        fi
        grep -oE '(churn [0-9]|test result).*' "$log" || true
        rm -f "$log"
        echo "    [$driver, $((SECONDS - t0)) s]"
    done
done
printf '\n==> load and churn passed in %s s\n' "$((SECONDS - start))"
