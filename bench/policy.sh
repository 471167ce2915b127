#!/usr/bin/env bash
# Policy engine benchmark: records/s through reader -> sf-handler-policy (alert mode) ->
# exporter (json) to /dev/null, and CPU seconds of the policy process per record, for the reference's
# `distribution` and `runtimeintegrity` sets (../shared/reference/policies) on two inputs:
#   mon:   120 trace files, 40 copies of each of the three mon traces (1,984,800 records; the
#          input the reference was measured on: 20,000 records/s with distribution)
#   gen:   a 2,000,000-record sf-gen trace
# and, as the SDK's own cost, the same pipeline with `enrich` mode and no policies (the
# engine passes every record on without evaluating anything).
# Usage: bench/policy.sh [RUNS]   (default 3; medians; prints load averages per run)
#        INPUTS="mon" SETS="distribution" bench/policy.sh 1   (a subset)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
INPUTS=${INPUTS:-mon gen}
SETS=${SETS:-distribution runtimeintegrity none}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "== building (release)" >&2
timeout 1800 cargo build --release --quiet -p sf-launch -p sf-reader -p sf-gen -p sf-handler-policy -p sf-handler-exporter --bins
launch=$TARGET_DIR/release/sf-launch
mkdir -p "$tmp/mon"
for i in $(seq -w 0 39); do
    for t in mon.1531776682 mon.1531776712 mon.1531776742; do
        ln -s "$(realpath ../shared/traces/$t.sf)" "$tmp/mon/$i-$t"
    done
done
[[ " $INPUTS " == *" gen "* ]] && "$TARGET_DIR/release/sf-gen" --records 2000000 "$tmp/gen.sf" >/dev/null
declare -A RECORDS=([mon]=1984800 [gen]=2000000)
input() { case $1 in mon) echo "$tmp/mon" ;; gen) echo "$tmp/gen.sf" ;; esac; }

pipeline() { # set mode -> file
    local engine
    if [[ $1 == none ]]; then
        engine='{"processor":"policyengine","in":"flat flattenerchan","out":"evt eventchan","mode":"enrich"}'
    else
        engine="{\"processor\":\"policyengine\",\"in\":\"flat flattenerchan\",\"out\":\"evt eventchan\",\"policies\":\"$(realpath ../shared/reference/policies/$1)\",\"mode\":\"alert\"}"
    fi
    cat >"$tmp/p-$1.json" <<END
{"pipeline":[
 {"processor":"sysflowreader","handler":"flattener","in":"sysflow sysflowchan","out":"flat flattenerchan"},
 $engine,
 {"processor":"exporter","in":"evt eventchan","export":"file","format":"json","file.path":"/dev/null"}]}
END
    echo "$tmp/p-$1.json"
}

# CPU seconds (utime + stime) of the launcher's sf-handler-policy child, last sample before exit.
# Once the child is found, sampling uses shell builtins only (no fork per sample), so the
# sampler itself does not take CPU from the pipeline it measures. The last sample is at most
# 50 ms before the process exits: the CPU figure can be low by that much (about 2 % of a 2 s run).
cpu_of_policy() {
    local launcher=$1 out=$2 pid='' hz stat
    hz=$(getconf CLK_TCK)
    while kill -0 "$launcher" 2>/dev/null; do
        if [[ -z $pid ]]; then
            # ps exits 1 while the launcher has no child yet; under `set -e -o pipefail`
            # that would end the sampler, so its status is ignored.
            pid=$( (ps --ppid "$launcher" -o pid=,comm= || true) | awk '$2 == "sf-handler-poli" || $2 == "sf-handler-policy" {print $1; exit}')
            [[ -z $pid ]] && { sleep 0.02; continue; }
        fi
        # (stderr first: the process may have exited since the last sample)
        if read -ra stat 2>/dev/null <"/proc/$pid/stat"; then
            echo "$((stat[13] + stat[14])) $hz" >"$out"
        fi
        sleep 0.05
    done
}

median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
: >"$tmp/results.txt"
for run in $(seq "$RUNS"); do
    for in in $INPUTS; do
        for set in $SETS; do
            p=$(pipeline $set)
            l=$(cut -d' ' -f1-3 /proc/loadavg)
            t0=$(date +%s%N)
            "$launch" --log warn "$p" "$(input $in)" >"$tmp/out" 2>"$tmp/err" &
            lp=$!
            cpu_of_policy "$lp" "$tmp/cpu" &
            wait "$lp" || { cat "$tmp/err" >&2; exit 1; }
            t1=$(date +%s%N)
            wait
            [[ -s $tmp/cpu ]] || { echo "no CPU sample of the policy process" >&2; exit 1; }
            read -r ticks hz <"$tmp/cpu"
            rm -f "$tmp/cpu"
            n=${RECORDS[$in]}
            rate=$(awk -v n="$n" -v ns=$((t1 - t0)) 'BEGIN {printf "%.0f", n / (ns / 1e9)}')
            us=$(awk -v t="$ticks" -v hz="$hz" -v n="$n" 'BEGIN {printf "%.3f", t / hz / n * 1e6}')
            echo "$in $set $rate $us" >>"$tmp/results.txt"
            echo "   run $run: $in $set: $rate records/s, policy process $us us CPU/record, load $l" >&2
        done
    done
done
echo "input set records/s(median) policy-CPU-us/record(median)"
for in in $INPUTS; do
    for set in $SETS; do
        r=$(awk -v i=$in -v s=$set '$1 == i && $2 == s {print $3}' "$tmp/results.txt" | median)
        u=$(awk -v i=$in -v s=$set '$1 == i && $2 == s {print $4}' "$tmp/results.txt" | median)
        echo "$in $set $r $u"
    done
done
