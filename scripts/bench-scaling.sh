#!/usr/bin/env bash
# Multi-worker echo scaling (issue 5): for N = 1, 2, 4, 8 workers, an echo
# server (veloq, tokio multi_thread, monoio one runtime per thread) on CPUs
# 0..N-1 and N load clients (max(N,2) processes of the bench's epoll client,
# 128 connections in all) on CPUs CB..CB+CN-1; 1 KiB ping-pong, closed loop.
# Needs a machine with at least 16 CPUs for the defaults.
B=${B:-target/release/veloq-bench}   # build: cargo build --release -p veloq-bench
SECS=${SECS:-3}
CB=${CB:-8}   # first client CPU
CN=${CN:-8}   # client CPUs
NS=${NS:-1 2 4 8}
for N in $NS; do
  for rt in veloq tokio monoio; do
    cpus="0-$((N-1))"
    taskset -c "$cpus" "$B" serve-workers "$rt" "$N" > /tmp/srv.out &
    spid=$!
    for i in $(seq 1 50); do grep -q LISTENING /tmp/srv.out 2>/dev/null && break; sleep 0.1; done
    addr=$(sed -n 's/LISTENING //p' /tmp/srv.out)
    nc=$(( N < 8 ? N : 8 )); [ "$nc" -lt 2 ] && nc=2
    per=$(( 128 / nc ))
    pids=()
    for c in $(seq 0 $((nc-1))); do
      taskset -c $((CB + c % CN)) "$B" load "$addr" "$per" "$SECS" > /tmp/load.$c &
      pids+=($!)
    done
    wait "${pids[@]}"
    total=$(cat /tmp/load.* | awk '{s+=$1} END {printf "%.0f", s}')
    echo "workers=$N runtime=$rt clients=$nc conns=$((per*nc)) req/s=$total"
    rm -f /tmp/load.*
    kill $spid; wait $spid 2>/dev/null
  done
done
