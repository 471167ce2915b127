#!/usr/bin/env bash
# Benchmarks, one table each; every temporary file goes into one directory removed at exit.
#
# Reader decode: builds release, generates a SysFlow trace of RECORDS records (default
# 5,000,000, deflate, as the collector writes) with sf-gen (tools/sf-gen), then times decoding
# it with the reader's decoder (sf_reader::trace), apache-avro's generic reader and the tests'
# oracle (apache-avro plus a mapping, tools/sf-oracle) (median of RUNS runs, interleaved) and
# prints one table: records/s, MB/s of file and of Avro data, ratio to apache-avro's generic
# reader.
#
# Ring: ring-bench (processor/examples/ring-bench.rs) between two processes: frames/s and MB/s
# for 64, 128, 256 and 1024-byte payloads (RING_FRAMES frames, median of RING_RUNS runs),
# hand-off latency p50/p99/p99.9/max with a busy and a sleeping consumer, and, when strace is
# installed, the futex and sched_yield calls per million 128-byte frames with both sides busy.
#
# Pipeline: sf-launch (release) with 1, 2 and 4 no-op handler processes
# (handler-sdk/examples/noop.rs) on the same generated trace, against the same no-op handlers
# called in one process (`noop --in-process --copies N`): records/s (median of PIPE_RUNS
# interleaved runs, wall clock from start to exit of sf-launch or of the in-process run), their
# ratio; peak RSS of the reader and of one handler process (VmHWM from /proc/PID/status,
# sampled every 0.1 s, the last sample before the process exits) and of the in-process run
# (getrusage of the child, /usr/bin/time); the entity journal's size; then the CPU of an idle
# pipeline (`sf-launch --socket`, no collector) over IDLE_S seconds, utime+stime of the
# launcher and all its children from /proc/PID/stat.
#
# Delivery (bench/commit.sh): the CPU time handlers spend in commits and snapshots per million
# records with the default settings, against the CPU of the whole pipeline (json, stats).
#
#   bench/run.sh                          # all of them, about 17 minutes on 2 cores
#   BENCH=ring bench/run.sh               # only the ring (BENCH=decode, pipeline, idle, commit: only those)
#   RECORDS=1000000 CODEC=null RUNS=3 RING_FRAMES=5000000 RING_RUNS=3 PIPE_RUNS=3 bench/run.sh
#
# Timing is wall-clock: on a shared machine, run it when it is quiet and quote the medians.
set -euo pipefail
cd "$(dirname "$0")/.."

BENCH=${BENCH:-all}
RECORDS=${RECORDS:-5000000}
CODEC=${CODEC:-deflate}
RUNS=${RUNS:-5}
SEED=${SEED:-1}
RING_FRAMES=${RING_FRAMES:-10000000}
RING_RUNS=${RING_RUNS:-5}
PIPE_RUNS=${PIPE_RUNS:-3}
IDLE_S=${IDLE_S:-10}
TARGET_DIR=${CARGO_TARGET_DIR:-target}

case $BENCH in
all | decode | ring | pipeline | idle | commit) ;;
*)
    echo "BENCH must be all, decode, ring, pipeline, idle or commit" >&2
    exit 2
    ;;
esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sf-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start; $(rustc --version)"

generate() {
    if [[ ! -e $tmp/trace.sf ]]; then
        timeout 1800 cargo build --release --quiet -p sf-gen --bin sf-gen
        echo "== generating $RECORDS records ($CODEC, seed $SEED)" >&2
        timeout 900 "$TARGET_DIR/release/sf-gen" --records "$RECORDS" --codec "$CODEC" \
            --seed "$SEED" --counts "$tmp/trace.counts.json" "$tmp/trace.sf" >&2
    fi
}

if [[ $BENCH == all || $BENCH == decode ]]; then
    echo "== building the decoders (release)" >&2
    timeout 1800 cargo build --release --quiet -p sf-gen --bin sf-gen
    timeout 1800 cargo build --release --quiet -p sf-reader --example decode-bench
    generate

    echo "== decoding, $RUNS runs per decoder" >&2
    timeout 3600 "$TARGET_DIR/release/examples/decode-bench" --runs "$RUNS" "$tmp/trace.sf"
fi

if [[ $BENCH == all || $BENCH == pipeline ]]; then
    . "$(dirname "$0")/pipeline.sh"
fi

if [[ $BENCH == all || $BENCH == pipeline || $BENCH == idle ]]; then
    . "$(dirname "$0")/idle.sh"
fi

if [[ $BENCH == all || $BENCH == commit ]]; then
    . "$(dirname "$0")/commit.sh"
fi

if [[ $BENCH == all || $BENCH == ring ]]; then
    echo "== building the ring bench (release)" >&2
    timeout 1800 cargo build --release --quiet -p sf-processor --example ring-bench
    ring_bench=$TARGET_DIR/release/examples/ring-bench

    echo "== ring: throughput ($RING_RUNS runs per size) and latency" >&2
    echo
    timeout 1200 "$ring_bench" --frames "$RING_FRAMES" --runs "$RING_RUNS" | grep -v '^machine:'

    if command -v strace >/dev/null; then
        echo "== ring: system calls under strace, 128-byte frames" >&2
        timeout 600 strace -f -c -e trace=futex,sched_yield -o "$tmp/strace.txt" \
            "$ring_bench" --mode throughput --sizes 128 --frames "$RING_FRAMES" --runs 1 \
            >/dev/null
        # strace -c: "% time seconds usecs/call calls [errors] syscall"
        calls() { awk -v s="$1" '$NF == s { print $4 }' "$tmp/strace.txt" | head -1; }
        futex=$(calls futex)
        yields=$(calls sched_yield)
        echo
        echo "ring system calls with both sides busy — 128-byte frames, $RING_FRAMES frames, one run under strace -f (all processes, start-up included)"
        printf '| %-12s | %9s | %17s |\n' "system call" "calls" "per million frames"
        printf '|%s|%s|%s|\n' "--------------" "-----------" "-------------------"
        for row in "futex ${futex:-0}" "sched_yield ${yields:-0}"; do
            awk -v frames="$RING_FRAMES" -v row="$row" 'BEGIN {
                split(row, f, " ")
                printf "| %-12s | %9d | %17.1f |\n", f[1], f[2], f[2] * 1e6 / frames
            }'
        done
    else
        echo "(strace not installed: no system call counts; apt-get install strace)" >&2
    fi
fi
