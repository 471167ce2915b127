# Cost of delivery, sourced by bench/run.sh (which sets tmp, TARGET_DIR, PIPE_RUNS): commits
# (Handler::commit, the log flush, the acknowledgement) and snapshots of stateful handlers,
# per million records, with the default settings, against the CPU of the whole pipeline.
#
# Each handler process measures the CPU time (CLOCK_THREAD_CPUTIME_ID) it spends in its
# commits, snapshots included, and logs it at the end at debug level
# (`NAME: N commits (F failed), S snapshots (B bytes), X ms of CPU in commits`); the pipeline's
# CPU is utime + stime of sf-launch and every process it ran (GNU time, which counts the
# children sf-launch waited for). Pipelines on a generated trace of COMMIT_RECORDS records
# (default 1,000,000): `json` (the exporter under the json handler's name, to /dev/null, so
# that its writes cost nothing and the share of the commits is the largest it can be) and
# `stats` (its counts are snapshotted).

COMMIT_RECORDS=${COMMIT_RECORDS:-1000000}
echo "== building sf-launch, sf-reader, sf-gen and the handlers (release)" >&2
timeout 1800 cargo build --release --quiet -p sf-launch -p sf-reader -p sf-gen -p sf-handler-json -p sf-handler-stats --bins
launch=$TARGET_DIR/release/sf-launch
timeout 900 "$TARGET_DIR/release/sf-gen" --records "$COMMIT_RECORDS" --seed 42 "$tmp/commit.sf" >&2

echo '{"pipeline":[{"processor":"sysflowreader","handler":"json","in":"sysflow sysflowchan","file":"/dev/null"}]}' >"$tmp/commit-json.json"
echo '{"pipeline":[{"processor":"sysflowreader","handler":"stats","in":"sysflow sysflowchan"}]}' >"$tmp/commit-stats.json"

echo "== commits and snapshots, $PIPE_RUNS runs per pipeline" >&2
: >"$tmp/commit.txt"
for run in $(seq "$PIPE_RUNS"); do
    for h in json stats; do
        l=$(cut -d' ' -f1 /proc/loadavg)
        /usr/bin/time -f "cpu %U %S" -o "$tmp/commit-time.txt" \
            "$launch" --log debug "$tmp/commit-$h.json" "$tmp/commit.sf" >"$tmp/commit.out" 2>"$tmp/commit.err" \
            || { echo "sf-launch failed:" >&2; cat "$tmp/commit.err" >&2; exit 1; }
        # "json: 1000 commits (0 failed), 0 snapshots (0 bytes), 50.224 ms of CPU in commits"
        line=$(grep -o "$h: [0-9]* commits .* ms of CPU in commits" "$tmp/commit.out")
        cpu=$(awk '$1 == "cpu" {print $2 + $3}' "$tmp/commit-time.txt")
        echo "$h $line cpu $cpu load $l" | awk '{print $1, $3, $7, $9, $11, $18, $20}' | tr -d '(' >>"$tmp/commit.txt"
        echo "   run $run: $h: $line; pipeline CPU $cpu s, load $l" >&2
    done
done

median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
echo
echo "cost of delivery — commits and snapshots, default settings, $COMMIT_RECORDS generated records, median of $PIPE_RUNS runs (CPU time in the handler's commits vs. the whole pipeline's CPU)"
printf '| %-8s | %8s | %9s | %15s | %19s | %22s | %17s | %6s |\n' handler commits snapshots "snapshot bytes" "commit CPU, ms" "per million records" "pipeline CPU, s" share
printf '|%s|%s|%s|%s|%s|%s|%s|%s|\n' ---------- ---------- ----------- ----------------- --------------------- ------------------------ ------------------- --------
for h in json stats; do
    # fields: handler commits snapshots bytes ms cpu load
    c=$(awk -v h="$h" '$1 == h {print $2}' "$tmp/commit.txt" | median)
    s=$(awk -v h="$h" '$1 == h {print $3}' "$tmp/commit.txt" | median)
    b=$(awk -v h="$h" '$1 == h {print ($3 ? $4 / $3 : 0)}' "$tmp/commit.txt" | median)
    ms=$(awk -v h="$h" '$1 == h {print $5}' "$tmp/commit.txt" | median)
    cpu=$(awk -v h="$h" '$1 == h {print $6}' "$tmp/commit.txt" | median)
    awk -v h="$h" -v c="$c" -v s="$s" -v b="$b" -v ms="$ms" -v cpu="$cpu" -v r="$COMMIT_RECORDS" 'BEGIN {
        printf "| %-8s | %8d | %9d | %15.0f | %19.1f | %22.1f | %17.2f | %5.2f%% |\n", h, c, s, b, ms, ms * 1e6 / r, cpu, ms / 10 / cpu
    }'
done
rm -f "$tmp/commit.sf"
