# Pipeline benchmark, sourced by bench/run.sh (which sets tmp, RECORDS, TARGET_DIR, PIPE_RUNS,
# IDLE_S and generate): see the header of run.sh for what it measures and how.

echo "== building sf-launch, sf-reader and the no-op handler (release)" >&2
timeout 1800 cargo build --release --quiet -p sf-launch -p sf-reader --bins
timeout 1800 cargo build --release --quiet -p handler-sdk --features in-process --example noop
generate
launch=$TARGET_DIR/release/sf-launch
noop=$(realpath "$TARGET_DIR/release/examples/noop")

for n in 1 2 4; do
    blocks=$(for _ in $(seq "$n"); do
        printf '{"processor":"sysflowreader","handler":"noop","binary":"%s","in":"sysflow sysflowchan"}\n' "$noop"
    done | paste -sd,)
    echo "{\"pipeline\":[$blocks]}" >"$tmp/noop-$n.json"
done

median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
now_ns() { date +%s%N; }
load() { cut -d' ' -f1 /proc/loadavg; }

# Samples the launcher's children every 0.1 s while it runs: the last VmHWM (kB) of the reader
# and of the first handler, and the size of the entity journal (bytes), into $1.
sample() {
    local launcher=$1 out=$2 reader handler fd
    while kill -0 "$launcher" 2>/dev/null; do
        reader=$(ps --ppid "$launcher" -o pid=,comm= | awk '$2 == "sf-reader" {print $1; exit}')
        handler=$(ps --ppid "$launcher" -o pid=,comm= | awk '$2 == "noop" {print $1; exit}')
        if [[ -n $reader && -n $handler ]]; then
            fd=$( { tr '\0' ' ' <"/proc/$reader/cmdline"; } 2>/dev/null | sed -n 's/.*--journal \([0-9]*\).*/\1/p')
            {
                echo "reader $(awk '/^VmHWM/ {print $2}' "/proc/$reader/status" 2>/dev/null)"
                echo "handler $(awk '/^VmHWM/ {print $2}' "/proc/$handler/status" 2>/dev/null)"
                echo "journal $(stat -L -c %s "/proc/$reader/fd/$fd" 2>/dev/null)"
            } >"$out.new" && grep -q 'reader [0-9]' "$out.new" && grep -q 'handler [0-9]' "$out.new" \
                && mv "$out.new" "$out"
        fi
        sleep 0.1
    done
}

echo "== pipeline and in-process, $PIPE_RUNS interleaved runs of each" >&2
: >"$tmp/pipe.txt"
for run in $(seq "$PIPE_RUNS"); do
    for n in 1 2 4; do
        l=$(load)
        t0=$(now_ns)
        "$launch" --log warn "$tmp/noop-$n.json" "$tmp/trace.sf" >"$tmp/launch.out" 2>"$tmp/launch.err" &
        lp=$!
        [[ $n == 1 ]] && { sample "$lp" "$tmp/hwm-$run.txt" & }
        wait "$lp" || { echo "sf-launch failed:" >&2; cat "$tmp/launch.err" >&2; exit 1; }
        t1=$(now_ns)
        wait
        got=$(grep -c "^noop: $RECORDS records" "$tmp/launch.err" || true)
        [[ $got == "$n" ]] || { echo "expected $n handlers to get $RECORDS records:" >&2; cat "$tmp/launch.err" >&2; exit 1; }
        echo "pipeline $n $(((t1 - t0) / 1000)) $l" >>"$tmp/pipe.txt"
        echo "   run $run: pipeline, $n handler(s): $(((t1 - t0) / 1000000)) ms, load $l" >&2

        l=$(load)
        t0=$(now_ns)
        /usr/bin/time -f "maxrss %M" -o "$tmp/time-$n.txt" \
            "$noop" --in-process --copies "$n" "$tmp/trace.sf" >/dev/null 2>"$tmp/inproc.err"
        t1=$(now_ns)
        got=$(grep -c "^noop: $RECORDS records" "$tmp/inproc.err" || true)
        [[ $got == "$n" ]] || { echo "expected $n in-process handlers to get $RECORDS records:" >&2; cat "$tmp/inproc.err" >&2; exit 1; }
        echo "inproc $n $(((t1 - t0) / 1000)) $l $(awk '{print $2}' "$tmp/time-$n.txt")" >>"$tmp/pipe.txt"
        echo "   run $run: in-process, $n handler(s): $(((t1 - t0) / 1000000)) ms, load $l" >&2
    done
done

echo
echo "pipeline vs in-process — $RECORDS records ($(du -m "$tmp/trace.sf" | cut -f1) MB, ${CODEC:-deflate}), no-op handlers, median of $PIPE_RUNS interleaved runs (load average at the start of each run)"
printf '| %-8s | %-22s | %-22s | %-5s | %-17s | %-17s |\n' handlers "pipeline records/s" "in-process records/s" ratio "pipeline loads" "in-process loads"
printf '|%s|%s|%s|%s|%s|%s|\n' ---------- ------------------------ ------------------------ ------- ------------------- -------------------
for n in 1 2 4; do
    p=$(awk -v n="$n" '$1 == "pipeline" && $2 == n {print $3}' "$tmp/pipe.txt" | median)
    i=$(awk -v n="$n" '$1 == "inproc" && $2 == n {print $3}' "$tmp/pipe.txt" | median)
    pl=$(awk -v n="$n" '$1 == "pipeline" && $2 == n {printf "%s%s", s, $4; s = " "}' "$tmp/pipe.txt")
    il=$(awk -v n="$n" '$1 == "inproc" && $2 == n {printf "%s%s", s, $4; s = " "}' "$tmp/pipe.txt")
    awk -v n="$n" -v p="$p" -v i="$i" -v r="$RECORDS" -v pl="$pl" -v il="$il" 'BEGIN {
        printf "| %-8d | %22.0f | %22.0f | %5.2f | %-17s | %-17s |\n", n, r / p * 1e6, r / i * 1e6, i / p, pl, il
    }'
done

echo
echo "peak resident set (VmHWM; pipeline processes sampled every 0.1 s, last sample; in-process: getrusage) — median of $PIPE_RUNS runs"
printf '| %-36s | %10s |\n' process "peak RSS"
printf '|%s|%s|\n' -------------------------------------- ------------
mib() { awk -v v="$1" -v d="$2" 'BEGIN {printf "%7.1f MiB", v / d}'; }
v=$(cat "$tmp"/hwm-*.txt | awk '$1 == "reader" {print $2}' | median)
printf '| %-36s | %s |\n' "sf-reader (pipeline, 1 handler)" "$(mib "$v" 1024)"
v=$(cat "$tmp"/hwm-*.txt | awk '$1 == "handler" {print $2}' | median)
printf '| %-36s | %s |\n' "one no-op handler process" "$(mib "$v" 1024)"
for n in 1 4; do
    v=$(awk -v n="$n" '$1 == "inproc" && $2 == n {print $5}' "$tmp/pipe.txt" | median)
    printf '| %-36s | %s |\n' "in-process, $n no-op handler(s)" "$(mib "$v" 1024)"
done
j=$(cat "$tmp"/hwm-*.txt | awk '$1 == "journal" {print $2}' | median)
printf '| %-36s | %s |\n' "entity journal (memfd, not in RSS)" "$(mib "$j" 1048576)"
rm -f "$tmp/trace.sf"

