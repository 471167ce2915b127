#!/usr/bin/env bash
# Reader decode benchmark: builds release, generates a SysFlow trace of RECORDS records
# (default 5,000,000, deflate, as the collector writes) into a temporary directory (removed at
# exit), then times decoding it with each decoder (median of RUNS runs, interleaved) and prints
# one table: records/s, MB/s of file and of Avro data, ratio to apache-avro's generic reader.
#
#   bench/run.sh                          # 5M records, deflate, 5 runs
#   RECORDS=1000000 CODEC=null RUNS=3 bench/run.sh
#
# Timing is wall-clock: on a shared machine, run it when it is quiet and quote the medians.
set -euo pipefail
cd "$(dirname "$0")/.."

RECORDS=${RECORDS:-5000000}
CODEC=${CODEC:-deflate}
RUNS=${RUNS:-5}
SEED=${SEED:-1}
TARGET_DIR=${CARGO_TARGET_DIR:-target}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sf-decode-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "== building (release)" >&2
timeout 1800 cargo build --release --quiet -p sf-reader --bin sf-gen --example decode-bench

echo "== generating $RECORDS records ($CODEC, seed $SEED)" >&2
timeout 900 "$TARGET_DIR/release/sf-gen" --records "$RECORDS" --codec "$CODEC" --seed "$SEED" \
    --counts "$tmp/trace.counts.json" "$tmp/trace.sf"

echo "== decoding, $RUNS runs per decoder" >&2
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start; $(rustc --version)"
timeout 3600 "$TARGET_DIR/release/examples/decode-bench" --runs "$RUNS" "$tmp/trace.sf"
