//! The policy engine (`sf-handler-policy`) against the reference's own outputs.
//!
//! For each policy set the reference was run with (`../shared/reference/README.md`:
//! `runtimeintegrity`, `distribution`, `tests` in alert mode, `runtimeintegrity` in enrich
//! mode) and each shared trace it has an output for, `sf-launch` runs the reference's
//! pipeline layout (its `flattener` reader block, a `policyengine` block without `handler`,
//! its exporter block last: `{"processor": "exporter", "in": "evt eventchan", "export":
//! "file", "format": "json", "file.path": ...}`) and the records written are compared with
//! the reference's as
//! multisets of (type, ts, tid, sorted policy ids). Every difference must be one the README
//! names, each checked here against the reference's own data:
//!
//! - **opFlags names cached per value** (`sfgo.GetOpFlags`): the reference names a value's
//!   bits once for the whole process, so a file flow whose opFlags value first came on a
//!   network flow reads `SEND`/`RECV` and never matches `sf.opflags = WRITE`/`READ`. A
//!   difference is explained by it when the reference's own enrich export names that
//!   record's opFlags that way (a file flow or event with `SEND`/`RECV`, a network flow with
//!   `READ`/`WRITE`). On `k8s_small.sf` this is 78 "File Modified" alerts of `distribution`
//!   that the reference misses.
//!
//! Also here: reloading the policies mid-stream (a FIFO-fed trace, the files changed
//! between two parts of it) and the start errors of bad policies.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use serde_json::{Value, json};

use common::*;

/// (policy set, mode, the reference's output folder).
const SETS: [(&str, &str, &str); 4] = [
    ("runtimeintegrity", "alert", "runtimeintegrity"),
    ("distribution", "alert", "distribution"),
    ("tests", "alert", "tests"),
    ("runtimeintegrity", "enrich", "enrich"),
];

type Key = (String, i64, Option<i64>, Vec<String>);

/// Opflags names per record (type, ts, tid) of the reference's enrich export.
type OpflagsNames = HashMap<(String, i64, Option<i64>), Vec<Vec<String>>>;

fn key(v: &Value) -> Key {
    let mut ids: Vec<String> = v["policies"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| p["id"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    (
        v["type"].as_str().unwrap_or("").to_owned(),
        v["ts"].as_i64().unwrap_or(0),
        v["proc"]["tid"].as_i64(),
        ids,
    )
}

fn read_gz(path: &Path) -> Vec<Value> {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    BufReader::new(flate2::read::GzDecoder::new(f))
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect()
}

fn multiset(values: &[Value]) -> BTreeMap<Key, i64> {
    let mut m = BTreeMap::new();
    for v in values {
        *m.entry(key(v)).or_insert(0) += 1;
    }
    m
}

fn policy_binary() -> PathBuf {
    let exe = sf_launch().with_file_name("sf-handler-policy");
    assert!(
        exe.exists(),
        "sf-handler-policy is not built next to sf-launch: run the tests with `cargo test --workspace`"
    );
    exe
}

/// Runs the reference's layout on `trace` and returns the exporter's records.
fn run_set(dir: &Path, set: &str, mode: &str, trace: &Path, extra: &[(&str, Value)]) -> Vec<Value> {
    let name = trace.file_name().unwrap().to_string_lossy().into_owned();
    let out = dir.join(format!("{set}-{mode}-{name}.jsonl"));
    // The exporter appends: a file of an earlier run must go.
    let _ = std::fs::remove_file(&out);
    let mut engine = json!({
        "processor": "policyengine", "in": "flat flattenerchan", "out": "evt eventchan",
        "policies": shared().join("reference/policies").join(set), "mode": mode,
    });
    for (k, v) in extra {
        engine[*k] = v.clone();
    }
    let pipeline = dir.join("pipeline.json");
    std::fs::write(
        &pipeline,
        json!({"pipeline": [
            {"processor": "sysflowreader", "handler": "flattener", "in": "sysflow sysflowchan", "out": "flat flattenerchan"},
            engine,
            {"processor": "exporter", "in": "evt eventchan", "export": "file", "format": "json", "file.path": out},
        ]})
        .to_string(),
    )
    .unwrap();
    let run = launch(dir, &[&"--log", &"error", &pipeline, &trace]);
    assert!(
        run.status.success(),
        "{set}/{mode} on {name}: sf-launch failed: {run:?}"
    );
    std::fs::read_to_string(&out)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Opflags names of each record (type, ts, tid) in the reference's enrich export.
fn reference_opflags(trace: &str) -> OpflagsNames {
    let mut m: HashMap<_, Vec<Vec<String>>> = HashMap::new();
    let path = shared().join(format!("reference/out/enrich/{trace}.jsonl.gz"));
    for v in read_gz(&path) {
        let names = v["opflags"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|n| n.as_str().unwrap_or("").to_owned())
                    .collect()
            })
            .unwrap_or_default();
        let (t, ts, tid, _) = key(&v);
        m.entry((t, ts, tid)).or_default().push(names);
    }
    m
}

/// Whether the reference's export names this record's opFlags with the other record type's
/// names (its `GetOpFlags` cache).
fn opflags_cache_explains(k: &Key, names: &OpflagsNames) -> bool {
    let (t, ts, tid, _) = k;
    let wrong: &[&str] = match t.as_str() {
        "FF" | "FE" | "PE" => &["SEND", "RECV"],
        "NF" => &["READ", "WRITE"],
        _ => return false,
    };
    names.get(&(t.clone(), *ts, *tid)).is_some_and(|all| {
        all.iter()
            .all(|n| n.iter().any(|x| wrong.contains(&x.as_str())))
    })
}

#[derive(Debug, Default)]
struct Figures {
    reference: i64,
    ours: i64,
    matched: i64,
    opflags_cache: i64,
    unexplained: Vec<String>,
}

#[test]
fn alerts_equal_the_reference_on_every_shared_trace_except_named_differences() {
    let _ = policy_binary();
    assert_exporter_built();
    let mut jobs = Vec::new();
    for (set, mode, refdir) in SETS {
        let dir = shared().join("reference/out").join(refdir);
        let mut traces: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter_map(|n| n.strip_suffix(".jsonl.gz").map(str::to_owned))
            .collect();
        traces.sort();
        assert_eq!(
            traces.len(),
            14,
            "{refdir}: 14 reference outputs (all traces but tcp-procflow-v1000.sf)"
        );
        for t in traces {
            jobs.push((set, mode, refdir, t));
        }
    }
    let jobs = Mutex::new(jobs);
    let results = Mutex::new(BTreeMap::new());
    let tmp = tempfile::tempdir().unwrap();
    std::thread::scope(|s| {
        for w in 0..3 {
            let (jobs, results, tmp) = (&jobs, &results, tmp.path());
            s.spawn(move || {
                let dir = tmp.join(format!("w{w}"));
                std::fs::create_dir_all(&dir).unwrap();
                loop {
                    let Some((set, mode, refdir, trace)) = jobs.lock().unwrap().pop() else {
                        break;
                    };
                    let ours = multiset(&run_set(
                        &dir,
                        set,
                        mode,
                        &shared().join("traces").join(&trace),
                        &[],
                    ));
                    let reference = multiset(&read_gz(
                        &shared().join(format!("reference/out/{refdir}/{trace}.jsonl.gz")),
                    ));
                    let mut f = Figures {
                        reference: reference.values().sum(),
                        ours: ours.values().sum(),
                        ..Figures::default()
                    };
                    let mut names = None;
                    let mut keys: Vec<&Key> = reference.keys().chain(ours.keys()).collect();
                    keys.sort();
                    keys.dedup();
                    for k in keys {
                        let (a, b) = (
                            ours.get(k).copied().unwrap_or(0),
                            reference.get(k).copied().unwrap_or(0),
                        );
                        f.matched += a.min(b);
                        if a == b {
                            continue;
                        }
                        let names = names.get_or_insert_with(|| reference_opflags(&trace));
                        if opflags_cache_explains(k, names) {
                            f.opflags_cache += (a - b).abs();
                        } else {
                            f.unexplained
                                .push(format!("ours {a}, reference {b}: {k:?}"));
                        }
                    }
                    results.lock().unwrap().insert((refdir, trace), f);
                }
            });
        }
    });
    let results = results.into_inner().unwrap();
    let mut table = String::from(
        "set            trace                      reference    ours  matched  opflags-cache\n",
    );
    let mut unexplained = Vec::new();
    let mut cache_total = 0;
    for ((refdir, trace), f) in &results {
        table.push_str(&format!(
            "{refdir:<14} {trace:<26} {:>9} {:>7} {:>8} {:>14}\n",
            f.reference, f.ours, f.matched, f.opflags_cache
        ));
        cache_total += f.opflags_cache;
        for u in &f.unexplained {
            unexplained.push(format!("{refdir}/{trace}: {u}"));
        }
    }
    eprintln!("{table}");
    assert!(
        unexplained.is_empty(),
        "differences no reason explains:\n{}\n{table}",
        unexplained.join("\n")
    );
    // The named difference is there, where the README says.
    let d = &results[&("distribution", "k8s_small.sf".to_string())];
    assert_eq!(
        (d.reference, d.ours, d.opflags_cache),
        (2773, 2851, 78),
        "{table}"
    );
    assert_eq!(cache_total, 78, "{table}");
}

/// `trace` cut after its first data block: the Avro header and first block, then the rest
/// (each block ends with the file's sync marker, its last 16 bytes).
fn split_after_first_block(trace: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let sync = &trace[trace.len() - 16..];
    let ends: Vec<usize> = (0..=trace.len() - 16)
        .filter(|&i| &trace[i..i + 16] == sync)
        .map(|i| i + 16)
        .collect();
    assert!(ends.len() >= 3, "the trace has at least two blocks");
    // ends[0]: the header's end; ends[1]: the first block's.
    (trace[..ends[1]].to_vec(), trace[ends[1]..].to_vec())
}

fn rule(name: &str) -> String {
    format!(
        "- rule: {name}\n  desc: every flow and event\n  condition: sf.type in (PE, FF, FE, NF)\n  priority: low\n"
    )
}

#[test]
fn a_reload_mid_stream_swaps_the_rules_between_two_records_and_loses_none() {
    let _ = policy_binary();
    assert_exporter_built();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let policies = dir.join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(policies.join("rules.yaml"), rule("v1")).unwrap();
    let out = dir.join("alerts.jsonl");
    let pipeline = write_blocks(
        dir,
        &[
            json!({"processor": "sysflowreader", "handler": "flattener", "in": "sysflow sysflowchan", "out": "flat flattenerchan"}),
            json!({"processor": "policyengine", "in": "flat flattenerchan", "out": "evt eventchan",
                   "policies": policies, "mode": "alert", "monitor": "local", "monitor.interval": "0.1"}),
            json!({"processor": "exporter", "in": "evt eventchan", "export": "file", "format": "json", "file.path": out, "seq": true}),
        ],
    );
    let trace = std::fs::read(shared().join("traces/mon.1531776682.sf")).unwrap();
    let (first, rest) = split_after_first_block(&trace);
    let fifo = mkfifo(dir);
    let mut launched = spawn_launch(dir, &[&pipeline, &fifo]);
    let stdout = launched.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let wait_line = |what: &str| -> String {
        let deadline = Instant::now() + WATCHDOG;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) if l.contains(what) => return l,
                Ok(_) => {}
                Err(_) => panic!("timed out waiting for a line with {what:?}"),
            }
        }
    };
    let mut writer = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    writer.write_all(&first).unwrap();
    writer.flush().unwrap();
    wait_for("the first block's alerts", WATCHDOG, || {
        std::fs::read_to_string(&out).is_ok_and(|t| t.lines().count() > 100)
    });
    std::fs::write(
        policies.join("rules.yaml"),
        "- rule: broken\n  desc: d\n  condition: sf.type = \n",
    )
    .unwrap();
    let failed = wait_line("policy reload failed");
    assert!(failed.contains("rules.yaml:3:23: expected a value or an attribute, found the end of the file (in rule \"broken\"); the running rules stay"), "{failed}");
    std::fs::write(policies.join("rules.yaml"), rule("v2")).unwrap();
    wait_line("policy reload: compiled 1 rules");
    // The counters on SIGUSR1.
    let pid = launched.id();
    let engine =
        child_with(pid, "sf-handler-policy", "policyengine").expect("the policy engine process");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(engine as i32),
        nix::sys::signal::Signal::SIGUSR1,
    )
    .unwrap();
    let counters = wait_line("policy engine counters: ");
    assert!(
        counters.contains(" dropped by filters, ") && counters.contains("\"v1\" "),
        "{counters}"
    );
    writer.write_all(&rest).unwrap();
    drop(writer);
    let swap = wait_line("policy reload: new rules in force from record ");
    let from: u64 = swap
        .split("from record ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{swap}"));
    let run = wait_with_watchdog(launched, "sf-launch");
    assert!(run.status.success(), "{run:?}");
    let lines: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Every flow and event once (TRACES.md: 537 + 17904 + 314), the rules of the time.
    assert_eq!(lines.len(), 18755);
    let mut seqs: Vec<u64> = lines.iter().map(|v| v["seq"].as_u64().unwrap()).collect();
    seqs.dedup();
    assert_eq!(seqs.len(), 18755, "no record twice");
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order");
    assert!(
        from > seqs[100] && from <= *seqs.last().unwrap(),
        "mid-stream: {from}"
    );
    for v in &lines {
        let seq = v["seq"].as_u64().unwrap();
        let want = if seq < from { "v1" } else { "v2" };
        assert_eq!(
            v["policies"][0]["id"], want,
            "record {seq} (rules swapped at {from})"
        );
    }
    assert_clean(dir);
}

#[test]
fn a_policy_that_does_not_compile_stops_the_pipeline_at_start_naming_file_line_and_column() {
    let _ = policy_binary();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "- list: l\n  items: [a b]\n").unwrap();
    let pipeline = write_blocks(
        dir,
        &[
            json!({"processor": "sysflowreader", "handler": "flattener", "in": "sysflow sysflowchan", "out": "flat flattenerchan"}),
            json!({"processor": "policyengine", "in": "flat flattenerchan", "out": "evt eventchan", "policies": bad}),
            json!({"processor": "exporter", "in": "evt eventchan", "export": "file", "file.path": dir.join("o.jsonl")}),
        ],
    );
    let run = launch(dir, &[&pipeline, &shared().join("traces/tcp.sf")]);
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    let want = format!(
        "policies: {0}:2:13: expected \",\" or \"]\" in the items, found \"b\" (in list \"l\")",
        bad.display()
    );
    assert!(run.stderr.contains(&want), "{want}\n{}", run.stderr);
    assert_clean(dir);
}
