# Idle pipeline, sourced by bench/run.sh (BENCH=all, pipeline or idle): CPU of sf-launch
# --socket with one no-op handler and no collector, over IDLE_S seconds.

timeout 1800 cargo build --release --quiet -p sf-launch -p sf-reader --bins
timeout 1800 cargo build --release --quiet -p handler-sdk --features in-process --example noop
launch=$TARGET_DIR/release/sf-launch
noop=$(realpath "$TARGET_DIR/release/examples/noop")
printf '{"pipeline":[{"processor":"sysflowreader","handler":"noop","binary":"%s","in":"sysflow sysflowchan"}]}\n' \
    "$noop" >"$tmp/idle.json"
echo "== idle pipeline: sf-launch --socket, 1 no-op handler, no collector, ${IDLE_S} s" >&2
"$launch" --log warn --socket "$tmp/idle.sock" "$tmp/idle.json" >/dev/null 2>&1 &
lp=$!
sleep 3
ticks() {
    local p sum=0
    for p in "$lp" $(ps --ppid "$lp" -o pid=); do
        # utime and stime: fields 14 and 15 of /proc/PID/stat (no space in these names)
        sum=$((sum + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    echo "$sum"
}
procs=$(($(ps --ppid "$lp" -o pid= | wc -l) + 1))
l=$(cut -d" " -f1 /proc/loadavg)
a=$(ticks)
sleep "$IDLE_S"
b=$(ticks)
kill -TERM "$lp"
wait "$lp" || true
hz=$(getconf CLK_TCK)
echo
echo "idle pipeline — sf-launch --socket with 1 no-op handler, no collector connected, $procs processes, ${IDLE_S} s, load $l"
printf '| %-28s | %-14s |\n' "CPU ticks (utime+stime)" "% of one core"
printf '|%s|%s|\n' ------------------------------ ----------------
awk -v t=$((b - a)) -v hz="$hz" -v s="$IDLE_S" 'BEGIN {printf "| %-28s | %13.2f%% |\n", t " of " hz "/s", t / hz / s * 100}'
