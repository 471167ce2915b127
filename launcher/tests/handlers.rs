//! The shipped `stats` and `alert` handlers end to end: `sf-launch` with the real reader and
//! handler binaries on shared traces, outputs checked against `TRACES.md` and the oracle.
//! Each test has its own temp dir (which also tags its processes) and checks that no process
//! is left behind.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// The `n` processes with most bytes in the oracle's file flows (`FF`) or network flows
/// (`NF`), as the stats handler ranks them: (total, read, written, pid, exe).
fn oracle_top(records: &[Value], kind: &str, n: usize) -> Vec<(u64, u64, u64, i64, String)> {
    let mut sums: BTreeMap<(i64, String), (u64, u64)> = BTreeMap::new();
    for r in records.iter().filter(|r| r["type"] == kind) {
        let key = (
            r["proc"]["pid"].as_i64().unwrap(),
            r["proc"]["exe"].as_str().unwrap().to_owned(),
        );
        let e = sums.entry(key).or_default();
        e.0 += r["flow"]["rbytes"].as_u64().unwrap();
        e.1 += r["flow"]["wbytes"].as_u64().unwrap();
    }
    let mut rows: Vec<_> = sums
        .into_iter()
        .map(|((pid, exe), (r, w))| (r + w, r, w, pid, exe))
        .collect();
    rows.sort_by(|a, b| b.0.cmp(&a.0).then(a.3.cmp(&b.3)).then(a.4.cmp(&b.4)));
    rows.truncate(n);
    rows
}

#[test]
fn stats_on_k8s_small_counts_as_traces_md_and_ranks_processes_as_the_oracle() {
    let dir = tempfile::tempdir().unwrap();
    let trace = shared().join("traces/k8s_small.sf");
    let run = launch(
        dir.path(),
        &[&"resources/pipelines/pipeline.stats.json", &trace],
    );
    assert!(run.status.success(), "{run:?}");
    assert_eq!(run.stderr, "");
    let want = &expected_counts()["k8s_small.sf"];
    assert_eq!(&parse_stats_table(&run.stdout), want, "{}", run.stdout);
    assert!(
        run.stdout.contains("\ntotal               6173\n"),
        "{}",
        run.stdout
    );
    let oracle = oracle("k8s_small.sf");
    let file = parse_stats_top(&run.stdout, "file");
    let network = parse_stats_top(&run.stdout, "network");
    assert_eq!(file.len(), 10, "{}", run.stdout);
    assert_eq!(file, oracle_top(&oracle, "FF", 10), "{}", run.stdout);
    assert_eq!(network, oracle_top(&oracle, "NF", 10), "{}", run.stdout);
    // Spot check, in case the oracle and the handler were both wrong the same way.
    assert_eq!(
        file[0],
        (1946804, 1946788, 16, 59792, "/usr/local/bin/node".into())
    );
    assert_eq!(
        network[0],
        (
            1024877,
            391495,
            633382,
            3839,
            "/usr/local/bin/kube-apiserver".into()
        )
    );
    assert_clean(dir.path());
}

#[test]
fn stats_settings_come_from_the_environment_as_handler_key_variables() {
    let dir = tempfile::tempdir().unwrap();
    let trace = shared().join("traces/k8s_small.sf");
    let run = launch_env(
        dir.path(),
        &[("STATS_TOP", &"3")],
        &[&"resources/pipelines/pipeline.stats.json", &trace],
    );
    assert!(run.status.success(), "{run:?}");
    assert!(
        run.stdout
            .contains("stats: top 3 processes by file bytes\n"),
        "{}",
        run.stdout
    );
    assert_eq!(parse_stats_top(&run.stdout, "file").len(), 3);
    assert_eq!(parse_stats_top(&run.stdout, "network").len(), 3);

    // A bad value is a start error (the handler checks its block before anything starts:
    // `--check-config`), naming the file, the key, the variable that set it and the value.
    let pipeline = write_blocks(
        dir.path(),
        &[json!({"handler": "stats", "restart": "never", "top": 5})],
    );
    let run = launch_env(
        dir.path(),
        &[("STATS_TOP", &"many")],
        &[&pipeline, &"resources/traces/tcp.sf"],
    );
    assert_eq!(run.status.code(), Some(2), "{run:?}");
    assert_eq!(
        run.stderr,
        format!(
            "sf-launch: error: {}: pipeline[0].top (set by STATS_TOP): invalid type: string \"many\", expected usize\n",
            pipeline.display()
        )
    );
    assert_eq!(run.stdout, "", "nothing started");
    assert_clean(dir.path());
}

#[test]
fn stats_prints_its_tables_on_sigusr1_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = mkfifo(dir.path());
    let mut child = spawn_launch(
        dir.path(),
        &[&"resources/pipelines/pipeline.stats.json", &fifo],
    );
    let launcher = child.id();
    // Lines of standard output as they come.
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // A whole trace, with the FIFO left open: the pipeline is then idle, not finished. (The
    // reader publishes in batches of up to 64 KiB and flushes the last one at the end of its
    // input, so the handler has most of the records, not all, until the FIFO is closed.)
    let trace = shared().join("traces/k8s_small.sf");
    let mut writer = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    writer.write_all(&std::fs::read(&trace).unwrap()).unwrap();
    writer.flush().unwrap();
    let stats = child_with(launcher, "sf-handler-stats", "stats").expect("stats child");
    // Ask until a table shows records (the first signals may come before any arrived).
    let start = Instant::now();
    let mut seen = Vec::new();
    let table = 'asking: loop {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no table with records after SIGUSR1 within 30 s; output: {seen:?}"
        );
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(stats as i32),
            nix::sys::signal::Signal::SIGUSR1,
        )
        .unwrap();
        while let Ok(line) = lines.recv_timeout(Duration::from_millis(500)) {
            seen.push(line);
            if seen.last().is_some_and(|l| l.starts_with("total ")) {
                let text = seen.join("\n") + "\n";
                seen.clear();
                if parse_stats_table(&text).values().sum::<u64>() > 0 {
                    break 'asking text;
                }
            }
        }
    };
    let at_signal = parse_stats_table(&table);
    // The handler goes on: still running, and prints the final tables when the input ends.
    assert!(children_of(launcher).contains(&stats));
    drop(writer);
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > WATCHDOG {
            child.kill().unwrap();
            panic!("watchdog: sf-launch did not finish within {WATCHDOG:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    reader.join().unwrap();
    let rest: Vec<String> = lines.try_iter().collect();
    assert!(status.success());
    let final_text = rest.join("\n") + "\n";
    // After any further SIGUSR1 tables, the final one: the whole trace.
    let last = final_text
        .rfind("stats: records received")
        .expect("final table");
    let at_end = parse_stats_table(&final_text[last..]);
    assert_eq!(&at_end, &expected_counts()["k8s_small.sf"], "{final_text}");
    for (kind, n) in &at_signal {
        assert!(
            at_end[kind] >= *n,
            "{kind}: {n} at the signal, {} at the end",
            at_end[kind]
        );
    }
    assert_clean(dir.path());
}

/// The alerts of one run: every line of `text` is one JSON object.
fn alerts(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect()
}

/// The rules of `resources/pipelines/pipeline.alert.json` in a standalone alert block (no
/// `out`: the alerts are written as lines; the chained pipeline is tested in `chain.rs`).
fn standalone_alert_pipeline(dir: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(root().join("resources/pipelines/pipeline.alert.json"))
        .expect("pipeline.alert.json");
    let doc: Value = serde_json::from_str(&text).unwrap();
    let mut block = doc["pipeline"][0].clone();
    assert_eq!(block["handler"], "alert");
    block.as_object_mut().unwrap().remove("out");
    write_blocks(dir, &[block])
}

#[test]
fn alert_on_shellshock_raises_the_web_shell_and_the_passwd_read() {
    let dir = tempfile::tempdir().unwrap();
    let trace = shared().join("traces/shellshock.sf");
    let pipeline = standalone_alert_pipeline(dir.path());
    let run = launch(dir.path(), &[&pipeline, &trace]);
    assert!(run.status.success(), "{run:?}");
    assert_eq!(run.stderr, "");
    let container = json!({"id": "cc5d46fa59b1", "name": "apache",
        "image": "vulnerables/cve-2014-6271:latest"});
    let parent = json!({"pid": 16680, "exe": "/usr/lib/cgi-bin/vulnerable",
        "args": "/usr/lib/cgi-bin/vulnerable"});
    // Values as in the oracle (records 26 and 46 of shellshock.sf.sysprint.jsonl.gz).
    assert_eq!(
        alerts(&run.stdout),
        [
            json!({
                "rule": "shell-from-web-server", "priority": "high",
                "desc": "a shell started under a web server",
                "seq": 52, "ts": 1669702299671000026_i64, "kind": "ProcessEvent",
                "opflags": ["EXEC"], "ret": 0,
                "proc": {"pid": 16681, "tid": 16681, "exe": "/bin/bash",
                    "args": "-c cat /etc/passwd", "cmdline": "/bin/bash -c cat /etc/passwd",
                    "uid": 33, "user": "<NA>", "createts": 1669702299670205264_i64},
                "pproc": parent, "container": container,
            }),
            json!({
                "rule": "read-sensitive-file", "priority": "medium",
                "desc": "accounts or credentials read",
                "seq": 81, "ts": 1669702299676281994_i64, "endts": 1669702299676368214_i64,
                "kind": "FileFlow", "opflags": ["OPEN", "CLOSE", "READ"],
                "proc": {"pid": 16681, "tid": 16681, "exe": "/bin/cat", "args": "/etc/passwd",
                    "cmdline": "/bin/cat /etc/passwd", "uid": 33, "user": "<NA>",
                    "createts": 1669702299670205264_i64},
                "pproc": parent, "container": container,
                "file": {"fd": 4, "path": "/etc/passwd"},
                "flow": {"rbytes": 761, "wbytes": 0},
            }),
        ],
        "{}",
        run.stdout
    );
    assert_clean(dir.path());
}

#[test]
fn alert_port_rule_writes_to_its_file_and_rules_can_come_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("alerts.jsonl");
    let pipeline = write_blocks(
        dir.path(),
        &[json!({"handler": "alert", "file": file,
            "rules": [{"name": "to-8080", "kinds": ["NetworkFlow"], "dport": [8080]}]})],
    );
    let run = launch(dir.path(), &[&pipeline, &"resources/traces/tcp.sf"]);
    assert!(run.status.success(), "{run:?}");
    assert_eq!(run.stdout, "", "alerts go to the file");
    let got = alerts(&std::fs::read_to_string(&file).unwrap());
    let net = json!({"proto": 6, "sip": "127.0.0.1", "sport": 40556, "dip": "127.0.0.1",
        "dport": 8080});
    assert_eq!(
        got,
        [
            json!({"rule": "to-8080", "seq": 20, "ts": 1553543282832225890_i64,
                "endts": 1553543292823002683_i64, "kind": "NetworkFlow",
                "opflags": ["CONNECT", "SEND", "RECV", "TRUNCATE"],
                "proc": {"pid": 13824, "tid": 13824, "exe": "./client", "args": "",
                    "cmdline": "./client ", "uid": -1, "user": "", "createts": 0},
                "pproc": {"pid": 7130, "exe": "/usr/bin/bash", "args": ""},
                "net": net, "flow": {"rbytes": 80, "wbytes": 80}}),
            json!({"rule": "to-8080", "seq": 22, "ts": 1553543282832196976_i64,
                "endts": 1553543293422794962_i64, "kind": "NetworkFlow",
                "opflags": ["ACCEPT", "SEND", "RECV", "TRUNCATE"],
                "proc": {"pid": 13823, "tid": 13823, "exe": "./server", "args": "",
                    "cmdline": "./server ", "uid": -1, "user": "", "createts": 0},
                "pproc": {"pid": 7955, "exe": "/usr/bin/bash", "args": ""},
                "net": net, "flow": {"rbytes": 80, "wbytes": 80}}),
        ]
    );

    // ALERT_RULES replaces the block's rules: only the client connects.
    std::fs::remove_file(&file).unwrap();
    let rules = r#"[{"name": "connect-8080", "opflags": ["CONNECT"], "dport": [8080]}]"#;
    let run = launch_env(
        dir.path(),
        &[("ALERT_RULES", &rules)],
        &[&pipeline, &"resources/traces/tcp.sf"],
    );
    assert!(run.status.success(), "{run:?}");
    let got = alerts(&std::fs::read_to_string(&file).unwrap());
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["rule"], "connect-8080");
    assert_eq!(got[0]["proc"]["exe"], "./client");
    assert_clean(dir.path());
}

#[test]
fn alert_with_a_bad_rule_stops_at_init_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = write_blocks(
        dir.path(),
        &[json!({"handler": "alert", "restart": "never",
            "rules": [{"name": "w", "opflags": ["WRTE"]}]})],
    );
    // A start error: the handler checks its block before anything starts (`--check-config`).
    let run = launch(dir.path(), &[&pipeline, &"resources/traces/tcp.sf"]);
    assert_eq!(run.status.code(), Some(2), "{run:?}");
    assert!(
        run.stderr.starts_with(&format!(
            "sf-launch: error: {}: pipeline[0].rules[0].opflags[0]: unknown opFlags name \"WRTE\", expected one of MKDIR, ",
            pipeline.display()
        )),
        "{}",
        run.stderr
    );
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert_eq!(run.stdout, "");
    assert_clean(dir.path());
}
