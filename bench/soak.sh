#!/usr/bin/env bash
# Soak: a pipeline left running on its socket while a collector reconnects again and again.
#
# Builds release, generates a trace of SOAK_RECORDS records (default 100,000) with sf-gen,
# starts `sf-launch --socket` with the `stats` and `printer` handlers (printer at --log warn:
# it handles every record, its lines are filtered), then runs launcher/examples/soak-collector
# .rs: SOAK_CONNECTIONS connections (default 1,000), each sending the whole trace (so 100M
# records by default). Every SOAK_SAMPLE_S seconds (default 20) it samples the resident set
# (VmRSS, /proc/PID/status) of every process and the entity journal (`sf-launch ctl status
# --json`: bytes held, live entities, generations, entities dropped), and prints one table
# row per sample, then the first and last samples side by side.
#
#   bench/soak.sh                                   # ~100M records, ~10 min on 2 cores
#   SOAK_RECORDS=20000 SOAK_CONNECTIONS=1000 bench/soak.sh   # 20M records, quicker
#
# Not run in CI. Everything temporary goes into one directory, removed at exit.
set -euo pipefail
cd "$(dirname "$0")/.."

SOAK_RECORDS=${SOAK_RECORDS:-100000}
SOAK_CONNECTIONS=${SOAK_CONNECTIONS:-1000}
SOAK_SAMPLE_S=${SOAK_SAMPLE_S:-20}
TARGET_DIR=${CARGO_TARGET_DIR:-target}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sf-soak.XXXXXX")
lp=
cleanup() {
    if [[ -n $lp ]] && kill -0 "$lp" 2>/dev/null; then
        kill -TERM "$lp" 2>/dev/null || true
        wait "$lp" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

timeout 3600 cargo build --release --quiet -p sf-launch -p sf-reader -p sf-handler-stats \
    -p sf-handler-printer --bins
timeout 3600 cargo build --release --quiet -p sf-launch --example soak-collector
rel=$TARGET_DIR/release
"$rel/sf-gen" --records "$SOAK_RECORDS" "$tmp/trace.sf" >/dev/null
printf '{"pipeline":[{"processor":"sysflowreader","handler":"stats","in":"sysflow sysflowchan"},{"processor":"sysflowreader","handler":"printer","in":"sysflow sysflowchan"}]}\n' \
    >"$tmp/soak.json"

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
echo "soak: $SOAK_CONNECTIONS connections x $SOAK_RECORDS records (sf-gen), handlers stats and printer"
"$rel/sf-launch" --log warn --socket "$tmp/soak.sock" "$tmp/soak.json" >"$tmp/launch.out" 2>"$tmp/launch.err" &
lp=$!
for _ in $(seq 100); do [[ -S $tmp/soak.sock ]] && break; sleep 0.1; done

"$rel/examples/soak-collector" "$tmp/soak.sock" "$tmp/trace.sf" "$SOAK_CONNECTIONS" 10 \
    2>"$tmp/collector.log" &
cp=$!

rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
sample() {
    local st conn
    st=$("$rel/sf-launch" ctl --pid "$lp" status --json 2>/dev/null) || return 0
    conn=$(tail -1 "$tmp/collector.log" 2>/dev/null | sed -n 's/^connection \([0-9]*\):.*/\1/p')
    python3 - "$st" "${conn:-0}" "$lp" "$(rss "$lp")" "$SECONDS" <<'PY'
import json, sys
st, conn, lp, lrss, secs = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
def rss(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    except (OSError, TypeError):
        pass
    return 0
procs = {p["name"]: p for p in st["processes"]}
j = st["journal"]
cells = [secs, conn, procs["reader"]["handled"], f"{int(lrss)/1024:.1f}"]
cells += [f"{rss(procs[n]['pid'])/1024:.1f}" for n in ("reader", "stats", "printer")]
cells += [f"{j['bytes']/1024:.0f}", j["entries"], j["generations"], j["dropped"]]
print("| " + " | ".join(str(c) for c in cells) + " |")
PY
}

echo
echo "| s | connections | records | launcher RSS MiB | reader RSS MiB | stats RSS MiB | printer RSS MiB | journal KiB held | live entities | generations | entities dropped |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
while kill -0 "$cp" 2>/dev/null; do
    sample | tee -a "$tmp/samples"
    for _ in $(seq "$SOAK_SAMPLE_S"); do
        kill -0 "$cp" 2>/dev/null || break
        sleep 1
    done
done
wait "$cp"
# Let the handlers catch up, then the last sample.
sleep 5
sample | tee -a "$tmp/samples"
tail -1 "$tmp/collector.log"
"$rel/sf-launch" ctl --pid "$lp" stop >/dev/null
wait "$lp" && status=0 || status=$?
lp=
echo "sf-launch exit status: $status"
echo
echo "first and last samples:"
head -1 "$tmp/samples"
tail -1 "$tmp/samples"
