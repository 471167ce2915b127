//! Crash isolation: restarts, resume without loss, poison records, watchdog, overflow policy,
//! control commands. Each test runs real processes under a watchdog in its own temp dir and
//! checks that nothing is left behind.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;

fn sigkill(pid: u32) {
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
}

fn probe(
    dir: &Path,
    name: &str,
    extra: serde_json::Value,
) -> (serde_json::Value, std::path::PathBuf) {
    let file = dir.join(format!("{name}.tsv"));
    let mut block = json!({"processor": "sysflowreader", "handler": "probe", "file": file});
    for (k, v) in extra.as_object().unwrap() {
        block[k] = v.clone();
    }
    (block, file)
}

/// Sequence numbers of the flows and events of `trace` (the probe without entities).
fn flow_seqs(dir: &Path, trace: &Path) -> Vec<u64> {
    let sub = dir.join("reference");
    std::fs::create_dir_all(&sub).unwrap();
    let (block, file) = probe(&sub, "ref", json!({}));
    let pipeline = write_blocks(&sub, &[block]);
    let run = launch(dir, &[&pipeline, &trace]);
    assert!(run.status.success(), "{run:?}");
    probe_lines(&file).iter().map(|l| l.seq).collect()
}

#[test]
fn a_killed_handler_is_restarted_and_resumes_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = mkfifo(dir.path());
    let child = spawn_launch(
        dir.path(),
        &[&"resources/pipelines/pipeline.printer.json", &fifo],
    );
    let launcher = child.id();
    let mut writer = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    let printer = child_with(launcher, "sf-handler-printer", "printer").expect("printer child");
    sigkill(printer);
    wait_for(
        "the printer to be restarted",
        Duration::from_secs(30),
        || child_with(launcher, "sf-handler-printer", "printer").is_some_and(|p| p != printer),
    );
    writer
        .write_all(&std::fs::read(root().join("resources/traces/tcp.sf")).unwrap())
        .unwrap();
    drop(writer);
    let run = wait_with_watchdog(child, "sf-launch");
    assert!(run.status.success(), "{run:?}");
    assert_eq!(
        run.info_messages()
            .iter()
            .filter(|m| !m.starts_with("restarting"))
            .count(),
        10,
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains(&format!(
            "handler printer (pid {printer}) killed by signal 9 (SIGKILL)"
        )),
        "{}",
        run.stderr
    );
    assert_clean(dir.path());
}

#[test]
fn a_record_that_crashes_a_handler_three_times_goes_to_the_dead_letter_file() {
    let dir = tempfile::tempdir().unwrap();
    let trace = root().join("resources/traces/tcp.sf");
    let flows = flow_seqs(dir.path(), &trace);
    assert_eq!(flows.len(), 10, "tcp.sf has 10 flows and events");
    let poison = flows[4];
    let (block, file) = probe(
        dir.path(),
        "crashy",
        json!({"crash_on_seq": poison, "backoff_initial_ms": 10}),
    );
    let pipeline = write_blocks(dir.path(), &[block]);
    let dead_letter = dir.path().join("dead.jsonl");
    let run = launch(
        dir.path(),
        &[&"--dead-letter", &dead_letter, &pipeline, &trace],
    );
    // A partial run: one record did not reach the handler.
    assert_eq!(run.status.code(), Some(5), "{run:?}");
    assert_eq!(
        run.stderr.lines().last(),
        Some(
            format!(
                "sf-launch: partial run: handler probe: 1 record went to the dead-letter file {}",
                dead_letter.display()
            )
            .as_str()
        ),
        "{}",
        run.stderr
    );
    let seen: BTreeSet<u64> = probe_lines(&file).iter().map(|l| l.seq).collect();
    let want: BTreeSet<u64> = flows.iter().copied().filter(|s| *s != poison).collect();
    assert_eq!(seen, want, "every other record handled");
    let dead = std::fs::read_to_string(&dead_letter).expect("dead-letter file");
    let lines: Vec<serde_json::Value> = dead
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{dead}");
    assert_eq!(lines[0]["handler"], "probe");
    assert_eq!(lines[0]["seq"], poison);
    assert_eq!(
        lines[0]["reason"],
        "killed by signal 6 (SIGABRT) 3 times in a row"
    );
    assert!(lines[0]["record"].is_object(), "{dead}");
    assert_eq!(
        run.stderr
            .matches(&format!("while handling record {poison}"))
            .count(),
        3,
        "{}",
        run.stderr
    );
    assert_clean(dir.path());
}

#[test]
fn a_handler_stuck_on_a_record_is_killed_by_the_watchdog_and_the_run_completes() {
    let dir = tempfile::tempdir().unwrap();
    let trace = root().join("resources/traces/tcp.sf");
    let flows = flow_seqs(dir.path(), &trace);
    let stuck = flows[2];
    let (block, file) = probe(
        dir.path(),
        "sleepy",
        json!({"hang_on_seq": stuck, "watchdog_ms": 300, "backoff_initial_ms": 10}),
    );
    let pipeline = write_blocks(dir.path(), &[block]);
    let dead_letter = dir.path().join("dead.jsonl");
    let run = launch(
        dir.path(),
        &[&"--dead-letter", &dead_letter, &pipeline, &trace],
    );
    assert_eq!(run.status.code(), Some(5), "{run:?}");
    assert!(
        run.stderr.contains(&format!(
            "made no progress for 300ms while records wait (stuck on record {stuck}): killing it"
        )),
        "{}",
        run.stderr
    );
    let seen: BTreeSet<u64> = probe_lines(&file).iter().map(|l| l.seq).collect();
    assert_eq!(seen.len(), flows.len() - 1);
    assert!(!seen.contains(&stuck));
    assert!(
        std::fs::read_to_string(&dead_letter)
            .unwrap()
            .contains("\"reason\":\"killed by signal 9 (SIGKILL) 3 times in a row\"")
    );
    assert_clean(dir.path());
}

#[test]
fn ctl_restart_restarts_only_that_handler_with_no_loss() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = mkfifo(dir.path());
    let pipeline = write_pipeline(dir.path(), &["printer", "stats"]);
    let child = spawn_launch(dir.path(), &[&pipeline, &fifo]);
    let launcher = child.id();
    let mut writer = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    let before = status(launcher);
    let (printer, stats) = (
        before["printer"]["pid"].clone(),
        before["stats"]["pid"].clone(),
    );
    assert!(printer.is_u64() && stats.is_u64(), "{before:?}");
    let (code, out, err) = ctl(launcher, &["restart", "printer"]);
    assert_eq!(
        (code, out.as_str()),
        (Some(0), "handler printer is restarting\n"),
        "{err}"
    );
    wait_for("the printer to run again", Duration::from_secs(30), || {
        let now = status(launcher);
        now["printer"]["state"] == "running"
            && now["printer"]["pid"] != printer
            && now["printer"]["pid"].is_u64()
    });
    let after = status(launcher);
    assert_eq!(after["stats"]["pid"], stats, "stats untouched");
    assert_eq!(after["stats"]["restarts"], 0);
    assert_eq!(after["printer"]["restarts"], 1);
    let (code, _, err) = ctl(launcher, &["restart", "nosuch"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        err,
        "sf-launch ctl: error: no handler named \"nosuch\" (handlers: printer, stats)\n"
    );
    writer
        .write_all(&std::fs::read(root().join("resources/traces/tcp.sf")).unwrap())
        .unwrap();
    drop(writer);
    let run = wait_with_watchdog(child, "sf-launch");
    assert!(run.status.success(), "{run:?}");
    let printed: Vec<String> = run
        .info_messages()
        .into_iter()
        .filter(|m| m.contains(", "))
        .collect();
    assert_eq!(printed.len(), 10, "{}", run.stdout);
    assert_eq!(parse_stats_table(&run.stdout).values().sum::<u64>(), 23);
    assert_clean(dir.path());
}

#[test]
fn a_killed_reader_is_restarted_and_every_record_is_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let input = copies_dir(dir.path(), &root().join("resources/traces/k8s_small.sf"), 8);
    let total = 8 * 6173u64;
    // A small ring and a slow probe keep the reader in the middle of its input.
    let (block, file) = probe(
        dir.path(),
        "all",
        json!({"entities": true, "ring_size": 65536, "sleep_us": 20}),
    );
    let pipeline = write_blocks(dir.path(), &[block]);
    let child = spawn_launch(dir.path(), &[&pipeline, &input]);
    let launcher = child.id();
    wait_for(
        "the probe to handle records",
        Duration::from_secs(60),
        || probe_lines(&file).len() > 1000,
    );
    let reader = children_of(launcher)
        .into_iter()
        .find(|p| exe_of(*p).is_some_and(|e| e.ends_with("sf-reader")))
        .expect("reader child");
    sigkill(reader);
    let run = wait_with_watchdog(child, "sf-launch");
    assert!(run.status.success(), "{run:?}");
    assert!(
        run.stderr.contains(&format!(
            "reader (pid {reader}) killed by signal 9 (SIGKILL); restarting"
        )),
        "{}",
        run.stderr
    );
    let lines = probe_lines(&file);
    let seqs: Vec<u64> = lines.iter().map(|l| l.seq).collect();
    assert_eq!(
        seqs,
        (1..=total).collect::<Vec<_>>(),
        "every record exactly once, in order"
    );
    assert_clean(dir.path());
}

#[test]
fn a_slow_drop_handler_never_blocks_the_others_and_reports_its_drops() {
    let dir = tempfile::tempdir().unwrap();
    let trace = shared().join("traces/k8s_small.sf");
    let (slow, file) = probe(
        dir.path(),
        "slow",
        json!({"entities": true, "overflow": "drop", "ring_size": 65536, "sleep_us": 2000}),
    );
    let stats = json!({"processor": "sysflowreader", "handler": "stats"});
    let pipeline = write_blocks(dir.path(), &[slow, stats]);
    let run = launch(dir.path(), &[&pipeline, &trace]);
    // A partial run, and says so (the count is checked below).
    assert_eq!(run.status.code(), Some(6), "{run:?}");
    // The block handler got everything.
    let counts = parse_stats_table(&run.stdout);
    assert_eq!(counts.values().sum::<u64>(), 6173, "{counts:?}");
    // The drop handler lost flows, never entities, and the loss is reported.
    let lines = probe_lines(&file);
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    for l in &lines {
        *kinds
            .entry(l.rest.split('\t').next().unwrap().to_owned())
            .or_default() += 1;
    }
    for (kind, n) in [
        ("SFHeader", 1),
        ("Container", 23),
        ("Pod", 19),
        ("Process", 217),
        ("File", 666),
    ] {
        assert_eq!(
            kinds.get(kind),
            Some(&n),
            "entities are never dropped: {kinds:?}"
        );
    }
    let handled = lines.len() as u64;
    assert!(
        handled < 6173,
        "a 2 ms/record handler on a 4 KiB ring must drop"
    );
    let reported = format!(
        "handler probe: {} records dropped (overflow policy drop)",
        6173 - handled
    );
    assert!(
        run.stdout.contains(&reported),
        "expected {reported:?} in\n{}",
        run.stdout
    );
    assert_eq!(
        run.stderr.lines().last(),
        Some(format!("sf-launch: partial run: {reported}").as_str()),
        "{}",
        run.stderr
    );
    assert_clean(dir.path());
}

#[test]
fn sigterm_stops_reading_lets_handlers_finish_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let input = copies_dir(
        dir.path(),
        &root().join("resources/traces/k8s_small.sf"),
        40,
    );
    let (slow, file) = probe(
        dir.path(),
        "slow",
        json!({"entities": true, "ring_size": 65536, "sleep_us": 50}),
    );
    let stats = json!({"processor": "sysflowreader", "handler": "stats"});
    let pipeline = write_blocks(dir.path(), &[slow, stats]);
    let child = spawn_launch(dir.path(), &[&pipeline, &input]);
    let launcher = child.id();
    wait_for(
        "the probe to handle records",
        Duration::from_secs(60),
        || probe_lines(&file).len() > 500,
    );
    kill(Pid::from_raw(launcher as i32), Signal::SIGTERM).unwrap();
    let run = wait_with_watchdog(child, "sf-launch");
    assert!(run.status.success(), "{run:?}");
    assert!(
        run.stdout
            .contains("stopping; the handlers finish the records already read"),
        "{}",
        run.stdout
    );
    // cleanup() ran: the stats table is there, with less than the whole input but every
    // record the probe saw.
    let counted: u64 = parse_stats_table(&run.stdout).values().sum();
    let probed = probe_lines(&file).len() as u64;
    assert!(counted < 40 * 6173, "stopped early: {counted}");
    // Both handlers drained exactly what the reader had published before it stopped.
    assert_eq!(probed, counted);
    assert_clean(dir.path());
}

#[test]
fn a_handler_past_its_restart_limit_is_failed_and_the_others_assert_clean() {
    let dir = tempfile::tempdir().unwrap();
    let trace = root().join("resources/traces/tcp.sf");
    let flows = flow_seqs(dir.path(), &trace);
    let (crashy, _) = probe(
        dir.path(),
        "crashy",
        json!({"crash_on_seq": flows[0], "poison_after": 100, "restart_limit": 2, "backoff_initial_ms": 10}),
    );
    let stats = json!({"processor": "sysflowreader", "handler": "stats"});
    let pipeline = write_blocks(dir.path(), &[crashy, stats]);
    let run = launch(dir.path(), &[&pipeline, &trace]);
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    assert_eq!(
        run.stderr.lines().last().unwrap_or_default(),
        "sf-launch: error: handler probe failed (killed by signal 6 (SIGABRT); 2 restarts within 10s: giving up)"
    );
    // The other handler was not disturbed.
    assert_eq!(parse_stats_table(&run.stdout).values().sum::<u64>(), 23);
    assert_clean(dir.path());
}
