//! The crash-isolation acceptance test: three handlers on a generated trace of a million
//! records, one of them SIGKILLed at random moments 50 times. Every handler must handle every
//! sequence number at least once; the killed one must see the same context for every record
//! as a handler that was never killed; the other two must see no gap and no duplicate.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::json;

const RECORDS: u64 = 1_000_000;
const KILLS: usize = 50;

#[test]
fn one_handler_killed_fifty_times_loses_nothing_and_disturbs_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("generated.sf");
    let generated = Command::new(sf_launch().with_file_name("sf-gen"))
        .args(["--records", &RECORDS.to_string(), "--seed", "42", "--pods"])
        .arg(&trace)
        .output()
        .expect("run sf-gen");
    assert!(
        generated.status.success(),
        "sf-gen: {}",
        String::from_utf8_lossy(&generated.stderr)
    );

    let probe = |name: &str, extra: serde_json::Value| {
        let mut block =
            json!({"handler": "probe", "entities": true, "file": dir.path().join(name)});
        for (k, v) in extra.as_object().unwrap() {
            block[k] = v.clone();
        }
        block
    };
    // Random kills can land on one record three times in a row (seen in CI: record 33001 of
    // seed 1796303660536132681), which the poison-record rule rightly dead-letters; this test
    // is about losing nothing, so that rule is out of its way.
    let victim_settings = json!({"restart_limit": 1000, "restart_window_s": 1, "backoff_initial_ms": 1, "backoff_max_ms": 20, "poison_after": 1000000});
    let pipeline = write_blocks(
        dir.path(),
        &[
            probe("a.tsv", json!({})),
            probe("b.tsv", json!({})),
            probe("victim.tsv", victim_settings),
        ],
    );
    let child = spawn_launch(dir.path(), &[&pipeline, &trace]);
    let launcher = child.id();

    let (seed, killed) = sigkill_repeatedly(
        launcher,
        "sf-handler-probe",
        "victim.tsv",
        KILLS,
        Duration::from_secs(600),
    );
    let run = wait_with_watchdog(child, "sf-launch");
    assert!(run.status.success(), "seed {seed}: {}", run.stderr);
    for pid in &killed {
        assert!(
            run.stderr
                .contains(&format!("(pid {pid}) killed by signal 9 (SIGKILL)")),
            "seed {seed}: kill of {pid} not reported"
        );
    }

    let a = probe_lines(&dir.path().join("a.tsv"));
    let b = probe_lines(&dir.path().join("b.tsv"));
    let all: Vec<u64> = (1..=RECORDS).collect();
    // The two others: every record exactly once, in order.
    assert_eq!(
        a.iter().map(|l| l.seq).collect::<Vec<_>>(),
        all,
        "handler a saw a gap or a duplicate"
    );
    assert_eq!(
        b.iter().map(|l| l.seq).collect::<Vec<_>>(),
        all,
        "handler b saw a gap or a duplicate"
    );
    assert_eq!(a, b);
    // The victim: every record at least once, each time with the undisturbed context.
    let reference: BTreeMap<u64, &str> = a.iter().map(|l| (l.seq, l.rest.as_str())).collect();
    let victim = probe_lines(&dir.path().join("victim.tsv"));
    let mut seen = vec![false; RECORDS as usize + 1];
    for line in &victim {
        assert_eq!(
            Some(&line.rest.as_str()),
            reference.get(&line.seq),
            "seed {seed}: record {} has another context in the killed handler",
            line.seq
        );
        seen[line.seq as usize] = true;
    }
    let missing: Vec<u64> = (1..=RECORDS)
        .filter(|s| !seen[*s as usize])
        .take(10)
        .collect();
    assert!(
        missing.is_empty(),
        "seed {seed}: the killed handler never handled {missing:?}..."
    );
    assert_no_process_left(dir.path(), Duration::from_secs(5));
    assert_eq!(shm_segments(), Vec::<String>::new());
}
