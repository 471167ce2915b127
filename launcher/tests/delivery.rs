//! Delivered means delivered: acknowledgement follows durable output, and stateful handlers
//! keep their state across crashes. Real processes killed for real, on a generated trace.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;

/// Settings of a handler the test kills over and over: restarted at once, without limit, and
/// never taken for a poison record's victim (kills can land twice on one record).
fn victim(block: serde_json::Value) -> serde_json::Value {
    let mut block = block;
    for (k, v) in json!({"restart_limit": 1000, "restart_window_s": 1, "backoff_initial_ms": 1,
                          "backoff_max_ms": 20, "poison_after": 1000})
    .as_object()
    .unwrap()
    {
        block[k] = v.clone();
    }
    block
}

/// What `sf-handler-stats --in-process TRACE` prints (with `STATS_TOP=top`): the tables of a
/// stats handler nobody killed.
fn stats_in_process(trace: &Path, top: usize) -> String {
    let out = Command::new(sf_launch().with_file_name("sf-handler-stats"))
        .arg("--in-process")
        .arg(trace)
        .env("STATS_TOP", top.to_string())
        .env("SF_LOG", "error")
        .stdin(Stdio::null())
        .output()
        .expect("run stats in process");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The last whole set of stats tables in `stdout` (a killed process may have left part of
/// one before it): from the last `stats: records received` to the end of the network table.
fn last_tables(stdout: &str) -> String {
    let start = stdout
        .rfind("stats: records received\n")
        .expect("stats tables in the output");
    let mut out = String::new();
    let mut network = false;
    for line in stdout[start..].lines() {
        if network && !line.starts_with(' ') {
            break;
        }
        network |= line.starts_with("stats: top ") && line.ends_with(" by network bytes");
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The value of the `"seq"` key of a json line.
fn seq_of(line: &str) -> u64 {
    let at = line.rfind(",\"seq\":").expect("a seq key") + 7;
    let digits: String = line[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().expect("seq")
}

/// Reads a json output file: per sequence number how often it is there, and whether every
/// copy is the same line. Fails on a line that is not whole. `on_line` sees every first
/// copy.
fn read_json_lines(path: &Path, mut on_line: impl FnMut(u64, &str)) -> BTreeMap<u64, u32> {
    let hasher = BuildHasherDefault::<DefaultHasher>::default();
    let mut copies: BTreeMap<u64, (u32, u64)> = BTreeMap::new();
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for (i, line) in BufReader::with_capacity(1 << 20, file).lines().enumerate() {
        let line = line.unwrap();
        assert!(
            line.starts_with("{\"version\":5,") && line.ends_with('}'),
            "{}: line {} is not a whole object: {:.200}",
            path.display(),
            i + 1,
            line
        );
        let seq = seq_of(&line);
        let hash = hasher.hash_one(&line);
        let entry = copies.entry(seq).or_insert((0, hash));
        assert_eq!(entry.1, hash, "record {seq} written twice, differently");
        if entry.0 == 0 {
            on_line(seq, &line);
        }
        entry.0 += 1;
    }
    copies.into_iter().map(|(s, (n, _))| (s, n)).collect()
}

/// The sequence numbers of `counts` missing from `1..=expected` range's `want`, and the
/// duplicates (copies beyond the first).
fn missing_and_duplicates(counts: &BTreeMap<u64, u32>, want: &BTreeSet<u64>) -> (Vec<u64>, u64) {
    let missing = want
        .iter()
        .filter(|s| !counts.contains_key(s))
        .copied()
        .collect();
    let duplicates = counts.values().map(|n| u64::from(*n) - 1).sum();
    (missing, duplicates)
}

/// A million records through the exporter, stats and the chain alert -> json, each of them
/// killed while the run goes on (the exporter, to a file with `buffer` 100, at least 20
/// times, each time after its file grew; stats 3 times and once restarted with `ctl
/// restart`; both stages of the chain 5 times, `json` being the exporter under the json
/// handler's name and keys): the exporter's file has every flow and event, whole lines only,
/// duplicates bounded by one commit batch per kill; stats' tables are those of a stats never
/// killed; the chain exports every alert, and alert's counters (its snapshot) count each
/// alert once.
#[test]
fn handlers_killed_during_a_million_records_lose_nothing_and_keep_their_state() {
    const RECORDS: u64 = 1_000_000;
    const JSON_KILLS: usize = 22;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let trace = generate(d, RECORDS, 42);
    let exported = d.join("all.jsonl");
    let alerts = d.join("alerts.jsonl");
    let pipeline = write_blocks(
        d,
        &[
            victim(json!({"processor": "exporter", "in": "sysflow sysflowchan",
                          "export": "file", "format": "json", "file.path": exported,
                          "seq": true, "buffer": 100})),
            victim(json!({"processor": "sysflowreader", "handler": "stats",
                          "in": "sysflow sysflowchan"})),
            victim(json!({"processor": "sysflowreader", "handler": "alert",
                          "in": "sysflow sysflowchan", "out": "evt alertchan",
                          "rules": [{"name": "exec", "kinds": ["ProcessEvent"], "opflags": ["EXEC"]}]})),
            victim(
                json!({"processor": "exporter", "handler": "json", "in": "evt alertchan",
                          "file": alerts, "seq": true}),
            ),
        ],
    );
    // `debug`: alert's counts at the end.
    let child = spawn_launch(d, &[&"--log", &"debug", &pipeline, &trace]);
    let launcher = child.id();
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let killers = std::thread::scope(|scope| {
        let json = scope.spawn(|| {
            let mut last = 0;
            sigkill_repeatedly_when(
                launcher,
                "sf-handler-exporter",
                "all.jsonl",
                JSON_KILLS,
                Duration::from_secs(300),
                || {
                    // Kill only a life that wrote something since the last kill.
                    let now = size(&exported);
                    let grew = now > last;
                    if grew {
                        last = now;
                    }
                    grew
                },
            )
        });
        let stats = scope.spawn(|| {
            let killed = sigkill_repeatedly(
                launcher,
                "sf-handler-stats",
                "stats",
                3,
                Duration::from_secs(300),
            );
            // A new process, running (not the killed one the launcher has not reaped yet).
            let last = u64::from(*killed.1.last().unwrap());
            wait_for("stats running again", Duration::from_secs(60), || {
                try_status(launcher).is_some_and(|s| {
                    s["stats"]["state"] == "running"
                        && s["stats"]["pid"].as_u64().is_some_and(|p| p != last)
                })
            });
            let (code, out, err) = ctl(launcher, &["restart", "stats"]);
            assert_eq!(
                (code, out.as_str()),
                (Some(0), "handler stats is restarting\n"),
                "{err}"
            );
            killed
        });
        let alert = scope.spawn(|| {
            sigkill_repeatedly(
                launcher,
                "sf-handler-alert",
                "exec",
                5,
                Duration::from_secs(300),
            )
        });
        let json2 = scope.spawn(|| {
            sigkill_repeatedly(
                launcher,
                "sf-handler-json",
                "alerts.jsonl",
                5,
                Duration::from_secs(300),
            )
        });
        [json, stats, alert, json2].map(|t| t.join().expect("killer thread"))
    });
    let run = wait_with_watchdog(child, "sf-launch");
    let seeds: Vec<u64> = killers.iter().map(|(seed, _)| *seed).collect();
    assert!(run.status.success(), "seeds {seeds:?}: {}", run.stderr);
    for (seed, pids) in &killers {
        for pid in pids {
            assert!(
                run.stderr
                    .contains(&format!("(pid {pid}) killed by signal 9 (SIGKILL)")),
                "seed {seed}: kill of {pid} not reported"
            );
        }
    }

    // stats: the tables of a stats never killed.
    let reference = stats_in_process(&trace, 10);
    assert_eq!(
        last_tables(&run.stdout),
        last_tables(&reference),
        "seed {}",
        seeds[1]
    );

    // json: every flow and event, each copy of a record the same line.
    let counts = parse_stats_table(&reference);
    let flows_and_events: u64 = counts
        .iter()
        .filter(|(k, _)| !["SFHeader", "Container", "Pod", "Process", "File"].contains(&k.as_str()))
        .map(|(_, n)| n)
        .sum();
    let mut execs = BTreeSet::new();
    let copies = read_json_lines(&exported, |seq, line| {
        let flags = &line[line.find("\"opflags\":[").unwrap()..];
        let flags = &flags[..flags.find(']').unwrap()];
        if line.contains("\"type\":\"PE\"") && flags.contains("\"EXEC\"") {
            execs.insert(seq);
        }
    });
    assert_eq!(
        copies.len() as u64,
        flows_and_events,
        "seed {}: distinct records in the json file",
        seeds[0]
    );
    assert!(copies.keys().all(|s| (1..=RECORDS).contains(s)));
    let (missing, duplicates) = missing_and_duplicates(&copies, &copies.keys().copied().collect());
    assert!(missing.is_empty());
    let json_kills = killers[0].1.len() as u64;
    println!(
        "exporter: {json_kills} kills, {} records, 0 missing, {duplicates} duplicates",
        copies.len()
    );
    // At most one uncommitted batch per kill (the stateless default, 1,000 records).
    assert!(
        duplicates <= json_kills * handler_sdk::DEFAULT_COMMIT_RECORDS,
        "seed {}: {duplicates} duplicates for {json_kills} kills",
        seeds[0]
    );

    // The chain: every exec exported once or more, nothing else; alert counted each once.
    assert!(execs.len() > 1000, "{} execs", execs.len());
    let alerted = read_json_lines(&alerts, |seq, line| {
        assert!(
            line.ends_with(&format!(
                ",\"policies\":[{{\"id\":\"exec\",\"desc\":\"\",\"priority\":0}}],\"seq\":{seq}}}"
            )),
            "{line:.300}"
        );
    });
    let want = execs.clone();
    let (missing, duplicates) = missing_and_duplicates(&alerted, &want);
    assert_eq!(
        missing,
        Vec::<u64>::new(),
        "seeds {:?}: alerts missing downstream",
        &seeds[2..]
    );
    assert_eq!(alerted.len(), want.len(), "only the execs");
    println!(
        "alert -> json: {} + {} kills, {} alerts, 0 missing, {duplicates} duplicates",
        killers[2].1.len(),
        killers[3].1.len(),
        want.len()
    );
    let counted = format!("alert: {n} alerts (exec {n})", n = want.len());
    assert!(
        run.stdout.contains(&counted),
        "expected {counted:?}: {}",
        run.stdout
            .lines()
            .filter(|l| l.contains("alert: "))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_clean(d);
}

/// `stats` killed while it writes its final tables (its standard output, a pipe this test
/// stops reading, is full): the next process gets the final state back from its snapshot
/// and prints the whole tables again, after the part the killed one wrote; the run is
/// complete (exit 0).
#[test]
fn stats_killed_while_printing_its_final_tables_prints_them_again_whole() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Big tables: every process (a few thousand) in both, far more than a pipe holds.
    let top = 1_000_000;
    let trace = generate(d, 300_000, 7);
    let pipeline = write_blocks(
        d,
        &[
            json!({"processor": "sysflowreader", "handler": "stats", "in": "sysflow sysflowchan",
                 "top": top, "backoff_initial_ms": 1}),
        ],
    );
    // Only the tables go to standard output.
    let mut child = spawn_launch(d, &[&"--log", &"error", &pipeline, &trace]);
    let launcher = child.id();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert_eq!(first, "stats: records received\n");
    // It is in `cleanup`, blocked in the write of its tables: kill it there.
    let stats = child_with(launcher, "sf-handler-stats", "stats").expect("the stats process");
    kill(Pid::from_raw(stats as i32), Signal::SIGKILL).unwrap();
    let reading = std::thread::spawn(move || {
        let mut rest = String::new();
        out.read_to_string(&mut rest).unwrap();
        rest
    });
    let run = wait_with_watchdog(child, "sf-launch");
    let stdout = first + &reading.join().unwrap();
    assert!(run.status.success(), "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "handler stats (pid {stats}) killed by signal 9 (SIGKILL)"
        )),
        "{}",
        run.stderr
    );
    let reference = stats_in_process(&trace, top);
    assert!(reference.len() > 200_000, "{} bytes", reference.len());
    // A part of the first copy, then the whole tables.
    assert_eq!(stdout.matches("stats: records received\n").count(), 2);
    assert!(stdout.len() < 2 * reference.len());
    assert_eq!(last_tables(&stdout), last_tables(&reference));
    assert!(stdout.ends_with(&reference), "the second copy is whole");
    assert_clean(d);
}

/// The descriptor number the handler `pid` has its snapshot store at.
fn snapshot_fd_of(pid: u32) -> u32 {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    environ
        .split(|b| *b == 0)
        .filter_map(|v| std::str::from_utf8(v).ok())
        .find_map(|v| v.strip_prefix("SF_SNAPSHOT_FD="))
        .expect("SF_SNAPSHOT_FD")
        .parse()
        .unwrap()
}

/// A stateful handler restarted after records were acknowledged, with no usable snapshot
/// (its store is wiped while it is stopped, then it is killed): the restarted process says
/// its state is lost, its tables count only what came after, and the run ends with exit
/// status 4 and a last line saying so.
#[test]
fn a_stateful_handler_restarted_without_its_snapshot_makes_the_run_partial() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fifo = mkfifo(d);
    let pipeline = write_blocks(
        d,
        &[
            json!({"processor": "sysflowreader", "handler": "stats", "in": "sysflow sysflowchan",
                 "backoff_initial_ms": 1}),
        ],
    );
    let child = spawn_launch(d, &[&pipeline, &fifo]);
    let launcher = child.id();
    // The whole trace, and the input stays open: stats handles it and commits when idle.
    let writer = feed_fifo(&fifo, &root().join("resources/traces/tcp.sf"));
    let stats = child_with(launcher, "sf-handler-stats", "stats").expect("the stats process");
    // Its ring, through the launcher, which holds the memfd (the handler mapped it and
    // closed its descriptor).
    let ring = std::fs::read_dir(format!("/proc/{launcher}/fd"))
        .unwrap()
        .flatten()
        .find(|e| {
            std::fs::read_link(e.path())
                .is_ok_and(|t| t.to_string_lossy() == "/memfd:sf-ring-stats (deleted)")
        })
        .map(|e| std::fs::File::open(e.path()).unwrap())
        .expect("the ring of stats");
    let acknowledged = || {
        // `read_pos`, at byte 128 of the ring header (processor/src/ring.rs).
        let mut raw = [0u8; 8];
        ring.read_exact_at(&mut raw, 128).unwrap();
        u64::from_ne_bytes(raw)
    };
    wait_for("stats to acknowledge", Duration::from_secs(30), || {
        acknowledged() > 0
    });
    // Stopped, its snapshot store wiped (both slot descriptors), then killed.
    kill(Pid::from_raw(stats as i32), Signal::SIGSTOP).unwrap();
    let store = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/{stats}/fd/{}", snapshot_fd_of(stats)))
        .unwrap();
    store.write_all_at(&[0; 128], 64).unwrap();
    kill(Pid::from_raw(stats as i32), Signal::SIGKILL).unwrap();
    wait_for("stats to be restarted", Duration::from_secs(30), || {
        child_with(launcher, "sf-handler-stats", "stats").is_some_and(|p| p != stats)
    });
    drop(writer);
    let run = wait_with_watchdog(child, "sf-launch");
    assert_eq!(run.status.code(), Some(4), "{run:?}");
    assert!(
        run.stderr.contains(
            "stats: handler state lost: no snapshot of its state was found; the records acknowledged before this restart are not in its results"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(
        run.stderr.lines().last(),
        Some(
            "sf-launch: partial run: handler stats lost its state (1 restart without a usable snapshot, see above)"
        ),
        "{}",
        run.stderr
    );
    // What the lost state had counted is missing from the tables.
    assert_eq!(parse_stats_table(&run.stdout), BTreeMap::new());
    assert_clean(d);
}
