//! Chained handlers end to end: a block with `"out"` feeds the blocks whose `"in"` names its
//! channel. The shipped reader -> alert -> json pipeline, a fan-out tree, a middle handler
//! killed under load, and the start errors of a bad tree. Real processes, each test in its
//! own temp dir, under the watchdog; nothing may be left behind.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

/// Every line of `text` parsed as one JSON object.
fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {e}: {l:?}"));
            assert!(v.is_object(), "not an object: {l}");
            v
        })
        .collect()
}

/// The alert block of `resources/pipelines/pipeline.alert.json`, with or without its `out`.
fn shipped_alert_block(chained: bool) -> Value {
    let text = std::fs::read_to_string(root().join("resources/pipelines/pipeline.alert.json"))
        .expect("pipeline.alert.json");
    let doc: Value = serde_json::from_str(&text).unwrap();
    let mut block = doc["pipeline"][0].clone();
    assert_eq!(block["handler"], "alert");
    if !chained {
        block.as_object_mut().unwrap().remove("out");
    }
    block
}

#[test]
fn the_chained_alert_pipeline_writes_the_alerts_of_the_standalone_handler_as_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let trace = shared().join("traces/shellshock.sf");
    let run = launch(
        dir.path(),
        &[&"resources/pipelines/pipeline.alert.json", &trace],
    );
    assert!(run.status.success(), "{run:?}");
    assert_eq!(run.stderr, "");
    let lines = json_lines(&run.stdout);

    // The shell the web server spawned, and what it read, with their rules.
    let by_seq: BTreeMap<u64, &Value> = lines
        .iter()
        .map(|l| (l["seq"].as_u64().expect("seq"), l))
        .collect();
    assert_eq!(by_seq.len(), lines.len(), "a record written twice");
    let shell = by_seq[&52];
    assert_eq!(
        shell["policies"],
        json!([{"id": "shell-from-web-server", "desc": "a shell started under a web server",
            "priority": 3}])
    );
    assert_eq!(shell["type"], "PE");
    assert_eq!(shell["opflags"], json!(["EXEC"]));
    assert_eq!(shell["proc"]["exe"], "/bin/bash");
    assert_eq!(shell["proc"]["args"], "-c cat /etc/passwd");
    assert_eq!(shell["proc"]["pid"], 16681);
    assert_eq!(shell["pproc"]["exe"], "/usr/lib/cgi-bin/vulnerable");
    assert_eq!(shell["container"]["name"], "apache");
    assert_eq!(shell["ts"], 1669702299671000026_i64);
    let read = by_seq[&81];
    assert_eq!(read["policies"][0]["id"], "read-sensitive-file");
    assert_eq!(read["policies"][0]["priority"], 2);
    assert_eq!(read["type"], "FF");
    assert_eq!(read["proc"]["exe"], "/bin/cat");
    assert_eq!(read["proc"]["args"], "/etc/passwd");
    assert_eq!(read["proc"]["pid"], 16681);
    assert_eq!(read["file"]["path"], "/etc/passwd");
    assert_eq!(read["flow"]["rbytes"], 761);

    // The same alerts as the alert handler raises on its own: (rule, seq) pairs.
    let chained: BTreeSet<(String, u64)> = lines
        .iter()
        .flat_map(|l| {
            let seq = l["seq"].as_u64().unwrap();
            l["policies"]
                .as_array()
                .expect("every line carries its rules")
                .iter()
                .map(move |p| (p["id"].as_str().unwrap().to_owned(), seq))
        })
        .collect();
    let standalone = write_blocks(dir.path(), &[shipped_alert_block(false)]);
    let run = launch(dir.path(), &[&standalone, &trace]);
    assert!(run.status.success(), "{run:?}");
    let alone: BTreeSet<(String, u64)> = json_lines(&run.stdout)
        .iter()
        .map(|a| {
            (
                a["rule"].as_str().unwrap().to_owned(),
                a["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(chained, alone);
    assert_eq!(
        alone,
        BTreeSet::from([
            ("shell-from-web-server".to_owned(), 52),
            ("read-sensitive-file".to_owned(), 81)
        ])
    );
    assert_clean(dir.path());
}

fn probe_block(dir: &Path, name: &str, extra: Value) -> Value {
    let mut block = json!({"processor": "sysflowreader", "handler": "probe",
        "file": dir.join(format!("{name}.tsv"))});
    for (k, v) in extra.as_object().unwrap() {
        block[k] = v.clone();
    }
    block
}

fn is_entity(line: &ProbeLine) -> bool {
    ["SFHeader", "Container", "Pod", "Process", "File"]
        .iter()
        .any(|k| line.rest.starts_with(&format!("{k}\t")))
}

fn lines_of(dir: &Path, name: &str) -> Vec<ProbeLine> {
    probe_lines(&dir.join(format!("{name}.tsv")))
}

#[test]
fn a_fan_out_tree_delivers_the_same_records_with_the_same_context_to_both_consumers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let trace = shared().join("traces/k8s_small.sf");
    // reader -> mid -> (a, b); reader -> direct (the context straight from the reader).
    let pipeline = write_blocks(
        d,
        &[
            probe_block(d, "mid", json!({"out": "sysflow midchan", "tag": "mid"})),
            probe_block(d, "a", json!({"in": "sysflow midchan", "entities": true})),
            probe_block(d, "direct", json!({"entities": true})),
            probe_block(d, "b", json!({"in": "sysflow midchan", "entities": true})),
        ],
    );
    let run = launch(d, &[&pipeline, &trace]);
    assert!(run.status.success(), "{run:?}");
    let (a, b) = (lines_of(d, "a"), lines_of(d, "b"));
    let direct = lines_of(d, "direct");
    assert_eq!(a, b, "the two consumers saw different records");
    // Every record the reader published (entities forwarded by the SDK), the flows and
    // events annotated by mid, each with the context the reader's direct consumer saw.
    let want: Vec<ProbeLine> = direct
        .iter()
        .map(|l| ProbeLine {
            seq: l.seq,
            rest: if is_entity(l) {
                l.rest.clone()
            } else {
                format!("{}\tmid", l.rest)
            },
        })
        .collect();
    assert_eq!(a.len(), 6173, "k8s_small.sf has 6173 records");
    assert_eq!(a, want);
    // mid saw the flows and events with the reader's context and no policies.
    let flows: Vec<ProbeLine> = direct.into_iter().filter(|l| !is_entity(l)).collect();
    assert_eq!(lines_of(d, "mid"), flows);
    assert_clean(d);
}

const RECORDS: u64 = 200_000;
const KILLS: usize = 5;

#[test]
fn killing_the_middle_handler_loses_nothing_downstream_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let trace = d.join("generated.sf");
    let generated = Command::new(sf_launch().with_file_name("sf-gen"))
        .args(["--records", &RECORDS.to_string(), "--seed", "7", "--pods"])
        .arg(&trace)
        .output()
        .expect("run sf-gen");
    assert!(
        generated.status.success(),
        "sf-gen: {}",
        String::from_utf8_lossy(&generated.stderr)
    );
    let restarts = json!({"restart_limit": 1000, "restart_window_s": 1,
        "backoff_initial_ms": 1, "backoff_max_ms": 20});
    let mut mid = probe_block(d, "mid", json!({"out": "sysflow midchan", "tag": "mid"}));
    for (k, v) in restarts.as_object().unwrap() {
        mid[k] = v.clone();
    }
    // reader -> mid -> down; reader -> direct (what every record looks like).
    let pipeline = write_blocks(
        d,
        &[
            mid,
            probe_block(d, "down", json!({"in": "sysflow midchan"})),
            probe_block(d, "direct", json!({})),
        ],
    );
    let child = spawn_launch(d, &[&pipeline, &trace]);
    let launcher = child.id();

    // ctl status shows the chain.
    let mut status = None;
    wait_for("ctl status", Duration::from_secs(20), || {
        status = try_status(launcher);
        status.is_some()
    });
    let status = status.unwrap();
    assert_eq!(status["probe[0]"]["input"], "reader", "{status:?}");
    assert_eq!(status["probe[1]"]["input"], "probe[0]", "{status:?}");

    let (seed, killed) = sigkill_repeatedly(
        launcher,
        "sf-handler-probe",
        "mid.tsv",
        KILLS,
        Duration::from_secs(120),
    );
    // And one restart on request, once the launcher has seen the last kill (else the request
    // would take the dead process for a live one to stop).
    wait_for(
        "the restarts after the kills",
        Duration::from_secs(20),
        || {
            try_status(launcher)
                .is_none_or(|s| s["probe[0]"]["restarts"].as_u64() >= Some(KILLS as u64))
        },
    );
    let (code, out, err) = ctl(launcher, &["restart", "probe[0]"]);
    assert!(
        code == Some(0) || err.contains("has finished its input") || err.contains("no pipeline"),
        "seed {seed}: ctl restart: {out} {err}"
    );
    let run = wait_with_watchdog(child, "sf-launch");
    assert!(run.status.success(), "seed {seed}: {}", run.stderr);
    for pid in &killed {
        assert!(
            run.stderr
                .contains(&format!("(pid {pid}) killed by signal 9 (SIGKILL)")),
            "seed {seed}: kill of {pid} not reported: {}",
            run.stderr
        );
    }

    let direct = lines_of(d, "direct");
    let down = lines_of(d, "down");
    let seqs: Vec<u64> = down.iter().map(|l| l.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "seed {seed}: the downstream handler saw a record twice or out of order"
    );
    let want: Vec<ProbeLine> = direct
        .iter()
        .map(|l| ProbeLine {
            seq: l.seq,
            rest: format!("{}\tmid", l.rest),
        })
        .collect();
    assert!(
        want.len() as u64 > RECORDS / 2,
        "{} flows and events",
        want.len()
    );
    if down != want {
        let have: BTreeSet<u64> = seqs.iter().copied().collect();
        let missing: Vec<u64> = want
            .iter()
            .map(|l| l.seq)
            .filter(|s| !have.contains(s))
            .take(10)
            .collect();
        panic!(
            "seed {seed}: downstream differs: {} lines instead of {}, missing {missing:?}...",
            down.len(),
            want.len()
        );
    }
    assert_clean(d);
}

#[test]
fn a_stuck_middle_handler_is_killed_by_the_watchdog_and_its_poison_record_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let trace = root().join("resources/traces/tcp.sf");
    // Record 20 of tcp.sf is a network flow: the middle handler hangs on it every time.
    let poison = 20;
    let pipeline = write_blocks(
        d,
        &[
            probe_block(
                d,
                "mid",
                json!({"out": "sysflow midchan", "tag": "mid", "hang_on_seq": poison,
                    "watchdog_ms": 300, "poison_after": 2, "backoff_initial_ms": 10}),
            ),
            probe_block(d, "down", json!({"in": "sysflow midchan"})),
            probe_block(d, "direct", json!({})),
        ],
    );
    let dead_letter = d.join("dead.jsonl");
    let run = launch(d, &[&"--dead-letter", &dead_letter, &pipeline, &trace]);
    // Partial: record 20 never reached the middle stage (exit status 5, last line).
    assert_eq!(run.status.code(), Some(5), "{run:?}");
    assert_eq!(
        run.stderr.lines().last().unwrap_or_default(),
        format!(
            "sf-launch: partial run: handler probe[0]: 1 record went to the dead-letter file {}",
            dead_letter.display()
        )
    );
    assert_eq!(
        run.stderr
            .matches("made no progress for 300ms while records wait (stuck on record 20)")
            .count(),
        2,
        "{}",
        run.stderr
    );
    let dead = std::fs::read_to_string(&dead_letter).expect("dead-letter file");
    let dead: Value = serde_json::from_str(dead.trim_end()).expect("one dead-letter line");
    assert_eq!(
        (&dead["handler"], &dead["seq"]),
        (&json!("probe"), &json!(poison))
    );
    let want: Vec<ProbeLine> = lines_of(d, "direct")
        .into_iter()
        .filter(|l| l.seq != poison)
        .map(|l| ProbeLine {
            seq: l.seq,
            rest: format!("{}\tmid", l.rest),
        })
        .collect();
    assert_eq!(want.len(), 9, "tcp.sf has 10 flows and events");
    assert_eq!(
        lines_of(d, "down"),
        want,
        "every other record, once, in order"
    );
    assert_clean(d);
}

#[test]
fn a_failed_downstream_handler_does_not_block_its_producer() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // More than a 64 KiB ring holds: the middle handler would wait for room forever if the
    // failed handler's ring were not given up.
    let trace = shared().join("traces/k8s_small.sf");
    let pipeline = write_blocks(
        d,
        &[
            probe_block(d, "mid", json!({"out": "sysflow midchan"})),
            probe_block(
                d,
                "down",
                json!({"in": "sysflow midchan", "crash_on_seq": 303, "restart": "never",
                    "ring_size": 65536}),
            ),
            probe_block(d, "direct", json!({})),
        ],
    );
    let run = launch(d, &[&pipeline, &trace]);
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    assert_eq!(
        run.stderr.lines().last().unwrap_or_default(),
        "sf-launch: error: handler probe[1] failed (killed by signal 6 (SIGABRT), restart policy never)"
    );
    // Its ring filled up, and the middle handler gave it up rather than wait.
    assert!(
        run.stderr
            .contains("handler probe[1] is gone; it gets no more records"),
        "{}",
        run.stderr
    );
    // The middle handler went through the whole input.
    let direct = lines_of(d, "direct");
    assert!(direct.len() > 4000, "{} flows and events", direct.len());
    assert_eq!(lines_of(d, "mid"), direct);
    assert_clean(d);
}

#[test]
fn sigterm_stops_the_tree_in_order_and_every_stage_drains() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = copies_dir(d, &shared().join("traces/k8s_small.sf"), 40);
    // reader -> mid (slow) -> down; stats reads the reader's channel.
    let pipeline = write_blocks(
        d,
        &[
            probe_block(
                d,
                "mid",
                json!({"out": "sysflow midchan", "tag": "mid", "entities": true,
                    "ring_size": 65536, "sleep_us": 50}),
            ),
            probe_block(
                d,
                "down",
                json!({"in": "sysflow midchan", "entities": true}),
            ),
            json!({"processor": "sysflowreader", "handler": "stats"}),
        ],
    );
    let child = spawn_launch(d, &[&pipeline, &input]);
    let launcher = child.id();
    wait_for(
        "the middle handler to handle records",
        Duration::from_secs(60),
        || lines_of(d, "mid").len() > 500,
    );
    kill(Pid::from_raw(launcher as i32), Signal::SIGTERM).unwrap();
    let run = wait_with_watchdog(child, "sf-launch");
    assert!(run.status.success(), "{run:?}");
    // Every stage drained what its producer had published before the stop: the reader's
    // records reached stats and mid, and everything mid saw reached down.
    let counted: u64 = parse_stats_table(&run.stdout).values().sum();
    let mid = lines_of(d, "mid");
    assert!(counted < 40 * 6173, "stopped early: {counted}");
    assert_eq!(mid.len() as u64, counted);
    let want: Vec<ProbeLine> = mid
        .iter()
        .map(|l| ProbeLine {
            seq: l.seq,
            rest: if is_entity(l) {
                l.rest.clone()
            } else {
                format!("{}\tmid", l.rest)
            },
        })
        .collect();
    assert_eq!(lines_of(d, "down"), want);
    assert_clean(d);
}

#[test]
fn a_slow_downstream_handler_with_overflow_drop_never_blocks_its_producer() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let trace = shared().join("traces/k8s_small.sf");
    let pipeline = write_blocks(
        d,
        &[
            probe_block(
                d,
                "mid",
                json!({"out": "sysflow midchan", "entities": true}),
            ),
            probe_block(
                d,
                "down",
                json!({"in": "sysflow midchan", "entities": true, "overflow": "drop",
                    "ring_size": 65536, "sleep_us": 2000}),
            ),
        ],
    );
    let run = launch(d, &[&pipeline, &trace]);
    // Partial: the drops are in the exit status (6) and on the last line.
    assert_eq!(run.status.code(), Some(6), "{run:?}");
    let last = run.stderr.lines().last().unwrap_or_default().to_owned();
    assert!(
        last.starts_with("sf-launch: partial run: handler probe[1]: ")
            && last.ends_with(" records dropped (overflow policy drop)"),
        "{last}"
    );
    let mid = lines_of(d, "mid");
    assert_eq!(mid.len(), 6173, "the producer handled everything");
    // Downstream: every entity, some flows and events, in order; the loss is reported.
    let down = lines_of(d, "down");
    let entities = |lines: &[ProbeLine]| -> Vec<ProbeLine> {
        lines.iter().filter(|l| is_entity(l)).cloned().collect()
    };
    assert_eq!(
        entities(&down),
        entities(&mid),
        "entities are never dropped"
    );
    assert!(down.windows(2).all(|w| w[0].seq < w[1].seq));
    let dropped = 6173 - down.len();
    assert!(
        dropped > 0,
        "a 2 ms/record handler on a 64 KiB ring must drop"
    );
    let reported = format!("handler probe[1]: {dropped} records dropped (overflow policy drop)");
    assert!(
        run.stdout.contains(&reported),
        "expected {reported:?} in\n{}",
        run.stdout
    );
    assert_clean(d);
}

fn start_error(dir: &Path, blocks: &[Value]) -> String {
    let pipeline = write_blocks(dir, blocks);
    let run = launch(dir, &[&pipeline, &"resources/traces/tcp.sf"]);
    assert_eq!(run.status.code(), Some(2), "{run:?}");
    assert_eq!(run.stdout, "", "nothing may start: {run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "one line: {:?}", run.stderr);
    assert_clean(dir);
    run.stderr
        .trim_end()
        .replace(&pipeline.display().to_string(), "PIPELINE")
}

#[test]
fn a_bad_tree_is_a_one_line_start_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let printer = json!({"processor": "sysflowreader", "handler": "printer",
        "in": "sysflow sysflowchan"});
    assert_eq!(
        start_error(
            d,
            &[
                printer.clone(),
                json!({"handler": "json", "in": "evt alertchan"})
            ]
        ),
        "sf-launch: error: PIPELINE: pipeline[1].in: no block has channel \"alertchan\" as its \"out\" (the reader writes \"sysflowchan\")"
    );
    assert_eq!(
        start_error(
            d,
            &[
                printer.clone(),
                json!({"handler": "alert", "in": "evt c1", "out": "evt c2"}),
                json!({"handler": "json", "in": "evt c2", "out": "evt c1"}),
            ]
        ),
        "sf-launch: error: PIPELINE: pipeline[1].in: the blocks form a cycle (pipeline[1] <- pipeline[2] <- pipeline[1], each reading the output of the next): a pipeline is a tree fed by the reader"
    );
    assert_eq!(
        start_error(
            d,
            &[
                printer.clone(),
                json!({"handler": "alert", "out": "evt c"}),
                json!({"handler": "stats", "out": "evt c"}),
                json!({"handler": "json", "in": "evt c"}),
            ]
        ),
        "sf-launch: error: PIPELINE: pipeline[2].out: channel \"c\" is already the output of pipeline[1]: a channel has one producer"
    );
    assert_eq!(
        start_error(d, &[printer, json!({"handler": "alert", "out": "evt c"})]),
        "sf-launch: error: PIPELINE: pipeline[1].out: no block reads channel \"c\": add one with \"in\": \"evt c\", or remove \"out\""
    );
}
