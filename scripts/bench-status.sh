#!/usr/bin/env bash
# Runs every scenario of BENCHMARKS.md's status table with the limits measured beside it, one after another in one
# sitting, on both stores. Each run prints one JSON line and one readable line; all of them also go to $OUT.
#
#   TEST_DATABASE_URL=postgres://bench:bench@127.0.0.1:5432/postgres scripts/bench-status.sh
#
# PostgreSQL figures need a server of your own with fsync on (the throwaway cluster of the tests runs with fsync off,
# and the runs say which they had in "durability"). Nothing else should build or test on the machine meanwhile.
# About 20 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${TEST_DATABASE_URL:?set TEST_DATABASE_URL to a PostgreSQL server with fsync on (see BENCHMARKS.md)}"
OUT=${OUT:-target/bench-status.jsonl}
cargo build --release -p bench -p campaignd
mkdir -p "$(dirname "$OUT")"
: >"$OUT"

run() {
    echo "== bench $* ($(date -u +%H:%M:%S), load $(cut -d' ' -f1 /proc/loadavg))" >&2
    target/release/bench "$@" | tee -a "$OUT"
}

for store in sqlite postgres; do
    run upload --size 1000000 --store "$store"
    run limit-insert --size 1000000 --store "$store"
    run reconcile --size 200000 --store "$store"
    run limit-facts --size 200000 --store "$store"
    run callbacks --size 20000 --rate 5000 --concurrency 64 --store "$store"
    run limit-ingest --size 100000 --store "$store"
    run campaigns --size 10000 --store "$store"
    run idle-process --size 100 --secs 30 --store "$store"
done
# No store.
run limit-normalize --size 1000000
run limit-sim-upload --size 1000000
# The simulator as a sandbox: ten million orders need about 3 GB of memory and 2-3 minutes.
run sim-sandbox --size 10000000
run limit-http --size 20000 --rate 5000 --concurrency 64
# What pipelining buys when the platform is 50 ms away.
run upload --size 200000 --in-flight 1 --latency-ms 50
run upload --size 200000 --in-flight 4 --latency-ms 50
run reconcile --size 100000 --in-flight 1 --latency-ms 50
run reconcile --size 100000 --in-flight 4 --latency-ms 50
echo "figures in $OUT" >&2
