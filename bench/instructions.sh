#!/usr/bin/env bash
# Instruction counts (valgrind --tool=callgrind), for comparisons that wall-clock time on a
# shared machine is too noisy for:
#
# - codec: instructions per call of encode and decode of each record of
#   processor/benches/codec.rs (SF_CODEC_COUNT mode: 100,000 calls of each function), for
#   postcard (the project's codec), bitcode (serde and derive) and wincode;
# - ring: instructions per frame of push + next, both sides in one thread
#   (ring-bench --in-process), from the difference of two runs (1M and 2M frames);
# - decode: instructions per record of the reader's decoding of a generated trace
#   (decode-bench --only fast: container framing, inflate, our decoder), from the difference
#   of one and two passes over a DECODE_RECORDS-record (default 200,000) deflate trace.
#
#   bench/instructions.sh            # all three, about 8 minutes
#   BENCH=codec bench/instructions.sh   # or ring, or decode
#
# Needs valgrind (apt-get install valgrind). Temporary files go into one directory removed at
# exit.
set -euo pipefail
cd "$(dirname "$0")/.."

BENCH=${BENCH:-all}
DECODE_RECORDS=${DECODE_RECORDS:-200000}
case $BENCH in
all | codec | ring | decode) ;;
*)
    echo "BENCH must be all, codec, ring or decode" >&2
    exit 2
    ;;
esac
TARGET_DIR=${CARGO_TARGET_DIR:-target}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sf-instructions.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

command -v valgrind >/dev/null || {
    echo "valgrind is not installed (apt-get install valgrind)" >&2
    exit 2
}

if [[ $BENCH == all || $BENCH == codec ]]; then
    echo "== building the codec bench (release)" >&2
    bench=$(timeout 1800 cargo bench -p sf-processor --bench codec --no-run 2>&1 |
        sed -n 's/.*Executable .*(\(.*\)).*/\1/p' | tail -1)
    [[ -x $bench ]] || {
        echo "no codec bench executable found" >&2
        exit 1
    }
    echo "codec: instructions per call (callgrind, 100,000 calls each; bytes: encoded size)"
    printf '| %-20s | %-9s | %8s | %8s | %8s |\n' record codec bytes encode decode
    printf '|%s|%s|%s|%s|%s|\n' ---------------------- ----------- ---------- ---------- ----------
    i=0
    for record in FileFlow NetworkFlow "Process (8 env vars)" File; do
        SF_CODEC_COUNT=$i timeout 900 valgrind --tool=callgrind \
            --callgrind-out-file="$tmp/codec.$i.cg" "$bench" >/dev/null 2>"$tmp/codec.$i.err"
        # "sizes: postcard 66 bitcode_serde 71 bitcode 56 wincode 108", then the counts.
        {
            grep '^sizes:' "$tmp/codec.$i.err"
            callgrind_annotate --inclusive=yes "$tmp/codec.$i.cg" 2>/dev/null |
                grep -E '=> .*codec::[a-z_]+_(encode|decode) \(100,000x\)' |
                sed -E 's/^ *([0-9,]+).*codec::([a-z_]+)_(encode|decode) .*/\2 \3 \1/' | tr -d ,
        } | awk -v record="$record" '
            /^sizes:/ { for (k = 2; k < NF; k += 2) size[$k] = $(k + 1); next }
            { n[$1 " " $2] = $3 / 100000 }
            END {
                split("postcard bitcode_serde bitcode wincode", order, " ")
                split("postcard bitcode-s bitcode-d wincode", names, " ")
                for (k = 1; k <= 4; k++)
                    printf "| %-20s | %-9s | %6d B | %8.0f | %8.0f |\n", record, names[k],
                        size[order[k]], n[order[k] " encode"], n[order[k] " decode"]
            }'
        i=$((i + 1))
    done
    echo "(bitcode-s: bitcode through serde; bitcode-d: bitcode's derive; wincode: its derive)"
fi

if [[ $BENCH == all || $BENCH == ring ]]; then
    echo "== building the ring bench (release)" >&2
    timeout 1800 cargo build --release --quiet -p sf-processor --example ring-bench
    echo
    echo "ring: instructions per frame, push + next in one thread (callgrind, 2M - 1M frames)"
    printf '| %9s | %22s |\n' "payload B" "instructions per frame"
    printf '|%s|%s|\n' ----------- ------------------------
    for size in 64 128 256 1024; do
        for n in 1000000 2000000; do
            timeout 900 valgrind --tool=callgrind --callgrind-out-file="$tmp/ring.$n.cg" \
                "$TARGET_DIR/release/examples/ring-bench" --in-process "$n" --sizes "$size" \
                >/dev/null 2>"$tmp/ring.$n.err"
        done
        ir() { sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$tmp/ring.$1.err"; }
        awk -v a="$(ir 1000000)" -v b="$(ir 2000000)" -v s="$size" \
            'BEGIN { printf "| %9d | %22.0f |\n", s, (b - a) / 1000000 }'
    done
fi

if [[ $BENCH == all || $BENCH == decode ]]; then
    echo "== building sf-gen and the decode bench (release)" >&2
    timeout 1800 cargo build --release --quiet -p sf-gen --bin sf-gen
    timeout 1800 cargo build --release --quiet -p sf-reader --example decode-bench
    timeout 900 "$TARGET_DIR/release/sf-gen" --records "$DECODE_RECORDS" --seed 1 "$tmp/trace.sf" \
        2>/dev/null
    for runs in 1 2; do
        timeout 900 valgrind --tool=callgrind --callgrind-out-file="$tmp/decode.$runs.cg" \
            "$TARGET_DIR/release/examples/decode-bench" --only fast --runs "$runs" "$tmp/trace.sf" \
            >/dev/null 2>"$tmp/decode.$runs.err"
    done
    ir() { sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$tmp/decode.$1.err"; }
    echo
    echo "decode: instructions per record, sf_reader::trace over a $DECODE_RECORDS-record deflate trace (callgrind, 2 - 1 passes)"
    awk -v a="$(ir 1)" -v b="$(ir 2)" -v n="$DECODE_RECORDS" \
        'BEGIN { printf "| instructions per record | %.0f |\n", (b - a) / n }'
fi
