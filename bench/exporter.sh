#!/usr/bin/env bash
# Export speed: every record of 120 copies of the three mon traces (40 of each) through
# reader -> exporter (json, then ecs) to /dev/null, RUNS times each (default 3), with the
# load average before each run; bytes per run from one run to a file in $TMP.
#   bench/exporter.sh            BUFFER=1000 RUNS=3 by default
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
BUFFER=${BUFFER:-1000}
cargo build --release -q -p sf-launch -p sf-reader -p sf-handler-exporter
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/in"
for i in $(seq -w 1 40); do
    for t in mon.1531776682.sf mon.1531776712.sf mon.1531776742.sf; do
        ln -s "$(realpath ../shared/traces/$t)" "$tmp/in/$i.$t"
    done
done
for fmt in json ecs; do
    for out in "$tmp/out.$fmt" /dev/null; do
        echo "{\"pipeline\":[{\"processor\":\"exporter\",\"in\":\"sysflow sysflowchan\",\"export\":\"file\",\"format\":\"$fmt\",\"buffer\":\"$BUFFER\",\"file.path\":\"$out\"}]}" > "$tmp/p.json"
        if [ "$out" != /dev/null ]; then
            target/release/sf-launch --log warn "$tmp/p.json" "$tmp/in" >/dev/null
            bytes=$(stat -c %s "$out"); records=$(wc -l < "$out"); rm -f "$out"
            echo "$fmt: $records records, $bytes bytes per run"
            continue
        fi
        for r in $(seq 1 "$RUNS"); do
            load=$(cut -d' ' -f1-3 /proc/loadavg)
            s=$(date +%s.%N)
            target/release/sf-launch --log warn "$tmp/p.json" "$tmp/in" >/dev/null
            e=$(date +%s.%N)
            awk -v s="$s" -v e="$e" -v b="$bytes" -v n="$records" -v l="$load" -v f="$fmt" \
                'BEGIN { t = e - s; printf "%s run: %.2f s, %.0f records/s, %.0f MB/s (load %s)\n", f, t, n / t, b / t / 1e6, l }'
        done
    done
done
