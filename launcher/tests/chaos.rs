//! The crash-isolation acceptance test: three handlers on a generated trace of a million
//! records, one of them SIGKILLed at random moments 50 times. Every handler must handle every
//! sequence number at least once; the killed one must see the same context for every record
//! as a handler that was never killed; the other two must see no gap and no duplicate.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;

const RECORDS: u64 = 1_000_000;
const KILLS: usize = 50;

/// xorshift64*: the kill moments, reproducible from the seed printed on failure.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

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
    let victim_settings = json!({"restart_limit": 1000, "restart_window_s": 1, "backoff_initial_ms": 1, "backoff_max_ms": 20});
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

    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut rng = Rng(seed);
    let mut killed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    while killed.len() < KILLS {
        assert!(
            Instant::now() < deadline,
            "seed {seed}: only {} kills before the deadline",
            killed.len()
        );
        let Some(victim) = child_with(launcher, "sf-handler-probe", "victim.tsv") else {
            // Between two lives (backoff), or the run is over.
            assert!(
                nix::sys::wait::waitpid(
                    Pid::from_raw(launcher as i32),
                    Some(nix::sys::wait::WaitPidFlag::WNOHANG)
                ) == Ok(nix::sys::wait::WaitStatus::StillAlive),
                "seed {seed}: the run ended after only {} kills",
                killed.len()
            );
            std::thread::sleep(Duration::from_millis(1));
            continue;
        };
        if killed.last() == Some(&victim) {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        std::thread::sleep(Duration::from_millis(rng.below(40)));
        if kill(Pid::from_raw(victim as i32), Signal::SIGKILL).is_ok() {
            killed.push(victim);
        }
    }
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
