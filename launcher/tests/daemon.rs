//! A pipeline left running (issue 15), end to end with real processes: the entity journal
//! stays bounded over collector reconnections, repeated errors give a bounded number of log
//! lines, a handler that never attaches fails its starts, no process outlives a SIGKILLed
//! launcher, descriptors and files are closed to others, and log lines reach a redirected
//! standard output while the pipeline runs.

mod common;

use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::sys::socket::{MsgFlags, send};
use nix::unistd::Pid;
use serde_json::json;

/// Entities of k8s_small.sf (TRACES.md: SFHeader 1, Container 23, Pod 19, Process 217, File
/// 666), which a connection sending it adds to the journal.
const K8S_ENTITIES: u64 = 926;
const K8S_RECORDS: usize = 6173;

fn journal(launcher: u32) -> serde_json::Value {
    status_reply_json(launcher).expect("ctl status")["journal"].clone()
}

/// Twelve connections of the collector, each sending k8s_small.sf's records: the journal
/// keeps the last two generations, its memory does not grow with the connections, and a
/// handler killed after the compaction still rebuilds its context from what is kept.
#[test]
fn the_journal_stays_bounded_over_collector_reconnections() {
    let dir = tempfile::tempdir().unwrap();
    let trace = shared().join("traces/k8s_small.sf");
    let block =
        |file: &str| json!({"handler": "probe", "entities": true, "file": dir.path().join(file)});
    // What the probe writes for two copies of the trace read from files: the context of
    // every record of a first connection, and of any later one (whose records also see
    // the entities of the connection before, the previous generation).
    let sub = dir.path().join("file-run");
    std::fs::create_dir(&sub).unwrap();
    let copies = copies_dir(&sub, &trace, 2);
    let run = launch(
        dir.path(),
        &[&write_blocks(&sub, &[block("file.tsv")]), &copies],
    );
    assert!(run.status.success(), "{run:?}");
    let expected = probe_lines(&dir.path().join("file.tsv"));
    assert_eq!(expected.len(), 2 * K8S_RECORDS);
    let want_for = |seq: u64| {
        let i = (seq as usize - 1) % K8S_RECORDS;
        if seq as usize <= K8S_RECORDS {
            &expected[i]
        } else {
            &expected[K8S_RECORDS + i]
        }
    };

    let sock = dir.path().join("sysflow.sock");
    let out = dir.path().join("socket.tsv");
    let pipeline = write_blocks(dir.path(), &[block("socket.tsv")]);
    let child = spawn_launch(dir.path(), &[&"--socket", &sock, &pipeline]);
    let launcher = child.id();
    wait_for("the reader's socket", Duration::from_secs(30), || {
        sock.exists()
    });
    let messages = datums(&trace);
    let mut first_generation_bytes = 0;
    const CONNECTIONS: u64 = 12;
    for c in 1..=CONNECTIONS {
        send_connection(&sock, &messages);
        let lines = c as usize * K8S_RECORDS;
        wait_for("the connection's records", Duration::from_secs(60), || {
            probe_lines(&out).len() >= lines
        });
        // Every entity of the connection is journaled, the older generations dropped.
        let want = (
            K8S_ENTITIES * c.min(2),
            (c.saturating_sub(2)) * K8S_ENTITIES,
        );
        wait_for("the compaction", Duration::from_secs(30), || {
            let j = journal(launcher);
            (j["entries"].as_u64(), j["dropped"].as_u64()) == (Some(want.0), Some(want.1))
        });
        let j = journal(launcher);
        if c == 1 {
            first_generation_bytes = j["bytes"].as_u64().unwrap();
        }
        assert!(
            j["bytes"].as_u64().unwrap() <= 2 * first_generation_bytes + 8192,
            "connection {c}: {j} (one generation: {first_generation_bytes} bytes)"
        );
    }
    let j = journal(launcher);
    assert_eq!(j["generations"], 2, "{j}");
    assert_eq!(j["dropped"], (CONNECTIONS - 2) * K8S_ENTITIES, "{j}");

    // Half of one more connection, a kill, the other half: the restarted probe rebuilds the
    // tables of the records before its restart point from the compacted journal.
    let c = collector(&sock);
    let half = messages.len() / 2;
    for m in &messages[..half] {
        send(c.as_raw_fd(), m, MsgFlags::empty()).unwrap();
    }
    let before = CONNECTIONS as usize * K8S_RECORDS + half;
    wait_for("half a connection", Duration::from_secs(60), || {
        probe_lines(&out).len() >= before
    });
    let probe = status(launcher)["probe"]["pid"].as_u64().unwrap() as i32;
    kill(Pid::from_raw(probe), Signal::SIGKILL).unwrap();
    wait_for("the probe restarted", Duration::from_secs(30), || {
        status(launcher)["probe"]["pid"]
            .as_u64()
            .is_some_and(|p| p as i32 != probe)
    });
    for m in &messages[half..] {
        send(c.as_raw_fd(), m, MsgFlags::empty()).unwrap();
    }
    drop(c);
    let total = (CONNECTIONS as usize + 1) * K8S_RECORDS;
    wait_for("the last connection", Duration::from_secs(60), || {
        probe_lines(&out)
            .last()
            .is_some_and(|l| l.seq == total as u64)
    });
    let (code, _, err) = ctl(launcher, &["stop"]);
    assert_eq!(code, Some(0), "{err}");
    let run = wait_with_watchdog(child, "sf-launch");
    assert!(run.status.success(), "{run:?}");
    let got = probe_lines(&out);
    let mut seen = vec![false; total];
    for line in &got {
        let want = want_for(line.seq);
        assert_eq!(
            line.rest, want.rest,
            "record {} has another context than the file's record {}",
            line.seq, want.seq
        );
        seen[line.seq as usize - 1] = true;
    }
    assert!(seen.iter().all(|s| *s), "a record is missing");
    assert_clean(dir.path());
}

/// 20,000 messages that are not SysFlow datums: one error line per 10 s instead of 20,000,
/// and the total at the end; the records after them arrive.
#[test]
fn a_garbage_flood_on_the_socket_gives_a_bounded_number_of_log_lines() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("sysflow.sock");
    let out = dir.path().join("probe.tsv");
    let pipeline = write_blocks(dir.path(), &[json!({"handler": "probe", "file": out})]);
    let child = spawn_launch(dir.path(), &[&"--socket", &sock, &pipeline]);
    let launcher = child.id();
    wait_for("the reader's socket", Duration::from_secs(30), || {
        sock.exists()
    });
    let started = Instant::now();
    let c = collector(&sock);
    const GARBAGE: usize = 20_000;
    for i in 0..GARBAGE {
        send(
            c.as_raw_fd(),
            format!("\x7fgarbage {i}").as_bytes(),
            MsgFlags::empty(),
        )
        .unwrap();
    }
    for m in datums(&shared().join("traces/tcp-client-server-v5.sf")) {
        send(c.as_raw_fd(), &m, MsgFlags::empty()).unwrap();
    }
    drop(c);
    // The flows and events of the trace (the probe writes no entity).
    wait_for(
        "the records after the garbage",
        Duration::from_secs(60),
        || probe_lines(&out).len() == 10,
    );
    let (code, _, err) = ctl(launcher, &["stop"]);
    assert_eq!(code, Some(0), "{err}");
    let run = wait_with_watchdog(child, "sf-launch");
    let elapsed = started.elapsed().as_secs();
    assert!(run.status.success(), "{run:?}");
    let logged = run
        .stderr
        .lines()
        .filter(|l| l.contains("not a SysFlow datum"))
        .count();
    assert!(
        logged >= 1 && logged as u64 <= 1 + elapsed / 10,
        "{logged} lines in {elapsed} s"
    );
    assert!(
        run.stderr
            .contains("connection 1, message 1: not a SysFlow datum"),
        "{}",
        run.stderr
    );
    let total = format!(
        "repeated errors: socket: messages not SysFlow datums: {GARBAGE} in all, {} not logged",
        GARBAGE - logged
    );
    assert!(run.stdout.contains(&total), "{total}: {}", run.stdout);
    assert!(
        run.stdout.lines().count() + run.stderr.lines().count() < 30,
        "{run:?}"
    );
    assert_clean(dir.path());
}

/// A handler that fails on every one of 6,173 records: one line per record kind, the totals
/// at the end, and the run says it finished with errors.
#[test]
fn a_handler_failing_on_every_record_gives_a_bounded_number_of_log_lines() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = write_blocks(
        dir.path(),
        &[
            json!({"handler": "probe", "file": dir.path().join("p.tsv"), "entities": true,
                 "fail_from_seq": 1}),
        ],
    );
    let started = Instant::now();
    let run = launch(
        dir.path(),
        &[&pipeline, &shared().join("traces/k8s_small.sf")],
    );
    let elapsed = started.elapsed().as_secs();
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    let logged: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("handler error on record"))
        .collect();
    // Ten kinds in the trace (TRACES.md), one line each per 10 s.
    assert!(
        logged.len() >= 10 && logged.len() as u64 <= 10 * (1 + elapsed / 10),
        "{} lines in {elapsed} s: {logged:?}",
        logged.len()
    );
    let file_flows = logged.iter().filter(|l| l.contains("(FileFlow)")).count();
    assert!(
        run.stdout.contains(&format!(
            "handler errors on FileFlow records: 3383 in all, {} not logged",
            3383 - file_flows
        )),
        "{}",
        run.stdout
    );
    assert_eq!(
        run.stderr.lines().last(),
        Some(
            "sf-launch: error: handler probe failed (finished with errors, see its messages above)"
        )
    );
    assert_clean(dir.path());
}

/// A handler binary that never attaches to its ring (a script that execs `sleep`) is killed
/// after `attach_timeout_ms`, and after `restart_limit` restarts that all failed the same way
/// the handler is failed: the pipeline ends instead of restarting it for ever.
#[test]
fn a_handler_that_never_attaches_fails_its_starts_and_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let sleeper = script(dir.path(), "sf-handler-sleeper", "exec sleep 600");
    let pipeline = write_blocks(
        dir.path(),
        &[
            json!({"handler": "sleeper", "binary": sleeper, "attach_timeout_ms": 300,
                 "restart_limit": 2, "backoff_initial_ms": 10}),
        ],
    );
    let run = launch(dir.path(), &[&pipeline, &"resources/traces/tcp.sf"]);
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    let timeouts = run
        .stderr
        .lines()
        .filter(|l| {
            l.contains("did not attach to its ring within 300ms: killing it (a failed start)")
        })
        .count();
    assert_eq!(timeouts, 3, "{}", run.stderr);
    assert_eq!(
        run.stderr.lines().last(),
        Some(
            "sf-launch: error: handler sleeper failed (did not attach to its ring within 300ms; 3 failed starts in a row: giving up)"
        ),
        "{}",
        run.stderr
    );
    assert_clean(dir.path());
}

/// SIGKILL to the launcher while a handler that is not built on the SDK runs (it never asks
/// for the parent-death signal itself): the death signal the launcher set between `fork`
/// and `exec` takes it, and nothing of the pipeline is left.
#[test]
fn no_process_outlives_a_sigkilled_launcher() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = mkfifo(dir.path());
    let sleeper = script(dir.path(), "sf-handler-sleeper", "exec sleep 600");
    let pipeline = write_blocks(
        dir.path(),
        &[
            json!({"handler": "sleeper", "binary": sleeper, "attach_timeout_ms": 0,
                 "watchdog_ms": 0}),
        ],
    );
    let child = spawn_launch(dir.path(), &[&pipeline, &fifo]);
    let launcher = child.id();
    let writer = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    wait_for("the sleeping handler", Duration::from_secs(30), || {
        children_of(launcher)
            .into_iter()
            .any(|p| exe_of(p).is_some_and(|e| e.ends_with("sleep")))
    });
    kill(Pid::from_raw(launcher as i32), Signal::SIGKILL).unwrap();
    let _ = wait_with_watchdog(child, "sf-launch");
    drop(writer);
    assert_no_process_left(dir.path(), Duration::from_secs(5));
    assert_eq!(shm_segments(), Vec::<String>::new());
}

/// `flags:` of `/proc/PID/fdinfo/FD`, octal.
fn fd_flags(pid: u32, fd: &str) -> u32 {
    let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).unwrap();
    let flags = info
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .unwrap()
        .trim();
    u32::from_str_radix(flags, 8).unwrap()
}

/// Every descriptor of `pid` above 2: (number, target, mode of the file).
fn descriptors(pid: u32) -> Vec<(String, String, u32)> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let fd = e.file_name().into_string().ok()?;
            (fd.parse::<u32>().ok()? > 2).then_some(())?;
            let target = std::fs::read_link(e.path()).ok()?.display().to_string();
            let mode = std::fs::metadata(e.path()).ok()?.permissions().mode() & 0o7777;
            Some((fd, target, mode))
        })
        .collect()
}

/// What the processes of a running pipeline hold, from /proc: every descriptor above 2 is
/// close-on-exec, shared memory and created files are the owner's only (0600), a handler
/// holds no descriptor of the entity journal once it has rebuilt its tables, and only the
/// reader holds the journal.
#[test]
fn descriptors_and_files_are_closed_to_others() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = mkfifo(dir.path());
    let probe_out = dir.path().join("probe.tsv");
    let json_out = dir.path().join("out.jsonl");
    let dead_letter = dir.path().join("dead.jsonl");
    let pipeline = write_blocks(
        dir.path(),
        &[
            json!({"handler": "probe", "file": probe_out, "crash_on_seq": 5, "poison_after": 1, "entities": true,
                   "backoff_initial_ms": 10}),
            json!({"handler": "json", "file": json_out}),
        ],
    );
    let child = spawn_launch(
        dir.path(),
        &[&"--dead-letter", &dead_letter, &pipeline, &fifo],
    );
    let launcher = child.id();
    let writer = feed_fifo(&fifo, &root().join("resources/traces/tcp.sf"));
    wait_for(
        "both handlers at the end of tcp.sf",
        Duration::from_secs(30),
        || {
            try_status(launcher).is_some_and(|s| {
                s["probe"]["lag"] == 0 && s["json"]["lag"] == 0 && s["json"]["handled"] == 23
            })
        },
    );
    let s = status(launcher);
    let pid = |name: &str| s[name]["pid"].as_u64().unwrap() as u32;
    for (name, p) in [
        ("launcher", launcher),
        ("reader", pid("reader")),
        ("probe", pid("probe")),
        ("json", pid("json")),
    ] {
        let fds = descriptors(p);
        for (fd, target, mode) in &fds {
            assert_ne!(
                fd_flags(p, fd) & nix::libc::O_CLOEXEC as u32,
                0,
                "{name}: descriptor {fd} ({target}) is inherited by the programs it starts"
            );
            if target.starts_with("/memfd:") || target.starts_with(dir.path().to_str().unwrap()) {
                assert_eq!(*mode, 0o600, "{name}: {target} has mode {mode:o}");
            }
        }
        let journal = fds
            .iter()
            .filter(|(_, t, _)| t.starts_with("/memfd:sf-journal"))
            .count();
        match name {
            "probe" | "json" => {
                assert_eq!(journal, 0, "{name} holds the journal: {fds:?}");
                // Its ring is mapped (the descriptor is closed once mapped): the header page
                // read-write, the records read-only; nothing of the journal is mapped.
                let maps = std::fs::read_to_string(format!("/proc/{p}/maps")).unwrap();
                let mut ring: Vec<&str> = maps
                    .lines()
                    .filter(|l| l.ends_with(&format!("/memfd:sf-ring-{name} (deleted)")))
                    .map(|l| l.split_whitespace().nth(1).unwrap())
                    .collect();
                ring.sort_unstable();
                assert_eq!(ring, ["r--s", "rw-s"], "{name}: {maps}");
                assert!(!maps.contains("sf-journal"), "{name}: {maps}");
            }
            _ => assert_eq!(journal, 1, "{name}: {fds:?}"),
        }
    }
    for file in [&probe_out, &json_out, &dead_letter] {
        let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
    }
    drop(writer);
    let run = wait_with_watchdog(child, "sf-launch");
    assert_eq!(run.status.code(), Some(5), "{run:?}");
    assert_clean(dir.path());
}

/// The reader's INFO lines reach a standard output redirected to a file while it waits on
/// its socket, not when the pipeline stops.
#[test]
fn log_lines_reach_a_redirected_stdout_while_the_pipeline_runs() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("sysflow.sock");
    let log = dir.path().join("stdout.log");
    let pipeline = write_pipeline(dir.path(), &["printer"]);
    let child = std::process::Command::new(sf_launch())
        .env("SF_TEST_TAG", dir.path())
        .args([&"--socket" as &dyn AsRef<std::ffi::OsStr>, &sock, &pipeline])
        .current_dir(root())
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let launcher = child.id();
    let waiting = format!("{}: waiting for the collector", sock.display());
    wait_for(
        "the reader's line in the file",
        Duration::from_secs(30),
        || std::fs::read_to_string(&log).is_ok_and(|t| t.contains(&waiting)),
    );
    // A collector's records: the printer's lines too, while it runs.
    send_connection(&sock, &datums(&root().join("resources/traces/tcp.sf")));
    wait_for(
        "the printer's lines in the file",
        Duration::from_secs(30),
        || {
            std::fs::read_to_string(&log)
                .is_ok_and(|t| t.lines().filter(|l| l.contains("printer.rs")).count() == 10)
        },
    );
    assert!(
        nix::sys::wait::waitpid(
            Pid::from_raw(launcher as i32),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG)
        ) == Ok(nix::sys::wait::WaitStatus::StillAlive)
    );
    let (code, _, err) = ctl(launcher, &["stop"]);
    assert_eq!(code, Some(0), "{err}");
    let run = wait_with_watchdog(child, "sf-launch");
    assert!(run.status.success(), "{run:?}");
    assert_clean(dir.path());
}

fn check(args: &[&dyn AsRef<std::ffi::OsStr>]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(sf_launch())
        .arg("check")
        .args(args)
        .current_dir(root())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Each misconfiguration of the issue, with its exact message, from `sf-launch check` (which
/// starts nothing) and from a start (exit 2, nothing started).
#[test]
fn misconfigurations_are_start_errors_with_the_key_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("pipeline.json");
    let cases: Vec<(String, String)> = vec![
        (
            r#"{"pipeline":[{"handler":"printer","restartlimit":3}]}"#.into(),
            format!(
                "{}: pipeline[0].restartlimit: unknown key (did you mean \"restart_limit\"?)",
                p.display()
            ),
        ),
        (
            r#"{"pipeline":[{"handler":"printer","backoff_initial_ms":99999999999999}]}"#.into(),
            format!(
                "{}: pipeline[0].backoff_initial_ms: 99999999999999 is out of range (1 to 3600000 ms)",
                p.display()
            ),
        ),
        (
            r#"{"pipeline":[{"handler":"printer","in":"sysflow otherchan"}]}"#.into(),
            format!(
                "{}: pipeline[0].in: no block has channel \"otherchan\" as its \"out\" (the reader writes \"sysflowchan\")",
                p.display()
            ),
        ),
        (
            r#"{"pipeline":[{"handler":"printer","restart":"never","restart":"always"}]}"#.into(),
            format!(
                "{}: line 1, column 61: duplicate key \"restart\" in pipeline[0]: a key may appear once",
                p.display()
            ),
        ),
        // A handler's own key, checked by the handler binary (`--check-config`).
        (
            r#"{"pipeline":[{"handler":"stats","topp":3}]}"#.into(),
            format!(
                "{}: pipeline[0].topp: unknown key (did you mean \"top\"?)",
                p.display()
            ),
        ),
        (
            r#"{"pipeline":[{"handler":"stats","top":"many"}]}"#.into(),
            format!(
                "{}: pipeline[0].top: invalid type: string \"many\", expected usize",
                p.display()
            ),
        ),
        (
            r#"{"pipeline":[{"handler":"printer","commit_ms":0}]}"#.into(),
            format!(
                "{}: pipeline[0].commit_ms: 0 is out of range (1 to 3600000 ms)",
                p.display()
            ),
        ),
    ];
    for (text, want) in &cases {
        std::fs::write(&p, text).unwrap();
        let (code, out, err) = check(&[&p]);
        assert_eq!(
            (code, out.as_str(), err.as_str()),
            (Some(2), "", format!("sf-launch: error: {want}\n").as_str()),
            "{text}"
        );
        let run = launch(dir.path(), &[&p, &"resources/traces/tcp.sf"]);
        assert_eq!(run.status.code(), Some(2), "{text}: {run:?}");
        assert_eq!(run.stderr, format!("sf-launch: error: {want}\n"), "{text}");
        assert_eq!(run.stdout, "", "{text}: nothing started");
    }
    // A symbolic link loop as the input.
    let a = dir.path().join("a.sf");
    let b = dir.path().join("b.sf");
    std::os::unix::fs::symlink(&b, &a).unwrap();
    std::os::unix::fs::symlink(&a, &b).unwrap();
    let pipeline = write_pipeline(dir.path(), &["printer"]);
    let want = format!(
        "sf-launch: error: trace path {} is a loop of symbolic links (too many levels of symbolic links)\n",
        a.display()
    );
    assert_eq!(
        check(&[&pipeline, &a]),
        (Some(2), String::new(), want.clone())
    );
    let run = launch(dir.path(), &[&pipeline, &a]);
    assert_eq!((run.status.code(), run.stderr), (Some(2), want));
    // Several problems: all of them, one line each.
    std::fs::write(
        &p,
        r#"{"pipeline":[{"handler":"printer","restartlimit":3},{"handler":"stats","watchdog_ms":5}]}"#,
    )
    .unwrap();
    let (code, _, err) = check(&[&p]);
    assert_eq!(code, Some(2));
    assert_eq!(
        err,
        format!(
            "sf-launch: error: {0}: pipeline[0].restartlimit: unknown key (did you mean \"restart_limit\"?)\nsf-launch: error: {0}: pipeline[1].watchdog_ms: 5 is out of range (0 (off), or 100 to 86400000 ms)\n",
            p.display()
        )
    );
    // What passes: a handler that declares nothing (a script) keeps any key of its own.
    let lenient = script(dir.path(), "sf-handler-lenient", "exec sleep 600");
    let ok = write_blocks(
        dir.path(),
        &[
            json!({"handler": "stats", "top": 3, "restart_limit": 2}),
            json!({"handler": "lenient", "binary": lenient, "anything": "goes"}),
        ],
    );
    assert_eq!(
        check(&[&ok, &"resources/traces/tcp.sf"]),
        (
            Some(0),
            format!("{}: OK: 2 handlers (stats, lenient)\n", ok.display()),
            String::new()
        )
    );
    assert_clean(dir.path());
}

/// The exporter and the policy engine declare their keys: a misspelt key, an older
/// reference's name or a json handler key in an exporter block is a start error naming it;
/// a reference key they accept and do not use is a warning; the reference's own pipeline
/// files pass or fail exactly on what is not supported.
#[test]
fn the_exporter_and_the_policy_engine_check_their_own_keys() {
    assert_exporter_built();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("pipeline.json");
    let exporter = |extra: &str| {
        format!(r#"{{"pipeline":[{{"processor":"exporter","in":"sysflow sysflowchan"{extra}}}]}}"#)
    };
    let policy = |extra: &str| {
        format!(
            r#"{{"pipeline":[{{"processor":"policyengine","in":"sysflow sysflowchan","mode":"enrich"{extra}}}]}}"#
        )
    };
    for (text, want) in [
        (
            exporter(r#","exprt":"file""#),
            "pipeline[0].exprt: unknown key (did you mean \"export\"?)",
        ),
        (
            exporter(r#","export":"syslog","host":"10.0.0.1""#),
            "pipeline[0].host: an older reference's name, not read by this one: write \"syslog.host\"",
        ),
        (
            exporter(r#","export":"file","file":"out.json""#),
            "pipeline[0].file: a key of the json handler (\"handler\": \"json\"); the exporter's is \"export\": \"file\" with \"file.path\"",
        ),
        (
            exporter(r#","export":"kafka""#),
            "pipeline[0]: \"kafka.config\" is required with \"export\": \"kafka\" (an object with at least \"bootstrap.servers\")",
        ),
        (
            exporter(r#","format":"otel""#),
            "pipeline[0].format: \"otel\" (OpenTelemetry records) is not supported by this exporter (supported: json, ecs)",
        ),
        (
            policy(r#","polices":"x.yaml""#),
            "pipeline[0].polices: unknown key (did you mean \"policies\"?)",
        ),
    ] {
        std::fs::write(&p, &text).unwrap();
        let want = format!("sf-launch: error: {}: {want}\n", p.display());
        assert_eq!(check(&[&p]), (Some(2), String::new(), want), "{text}");
    }
    for (text, warning) in [
        (
            exporter(r#","vault.path":"/run/vault""#),
            "pipeline[0].vault.path: accepted but has no effect here (the reference's secrets vault)",
        ),
        (
            policy(r#","concurrency":"4""#),
            "pipeline[0].concurrency: accepted but has no effect here (the reference's worker count; records are checked one at a time, in order)",
        ),
    ] {
        std::fs::write(&p, &text).unwrap();
        let (code, out, err) = check(&[&p]);
        assert_eq!((code, err.as_str()), (Some(0), ""), "{text}");
        // The log (warnings on standard output, as the reference logs), then the verdict.
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert!(
            lines[0].starts_with("WARN: ")
                && lines[0].ends_with(&format!("{}: {warning}", p.display())),
            "{text}: {out}"
        );
        assert!(
            lines[1].starts_with(&format!("{}: OK: 1 handler (", p.display())),
            "{out}"
        );
    }
    // The json handler's block keeps its keys.
    std::fs::write(
        &p,
        r#"{"pipeline":[{"handler":"json","file":"out.json","fsync":true}]}"#,
    )
    .unwrap();
    assert_eq!(
        check(&[&p]),
        (
            Some(0),
            format!("{}: OK: 1 handler (json)\n", p.display()),
            String::new()
        )
    );
    let reference = shared().join("reference/pipelines");
    for file in [
        "pipeline.local.json",
        "pipeline.distribution.json",
        "pipeline.terminal.json",
    ] {
        let (code, out, err) = check(&[&reference.join(file)]);
        assert_eq!((code, err.as_str()), (Some(0), ""), "{file}");
        assert!(
            out.ends_with(": OK: 2 handlers (policyengine, exporter)\n"),
            "{file}: {out}"
        );
    }
    let (code, _, err) = check(&[&reference.join("pipeline.elk.json")]);
    assert_eq!(code, Some(2));
    assert_eq!(
        err,
        format!(
            "sf-launch: error: {}: pipeline[2].export: \"es\" (Elasticsearch bulk ingestion) is not supported by this exporter (supported: terminal, file, syslog, kafka, null)\n",
            reference.join("pipeline.elk.json").display()
        )
    );
    assert_clean(dir.path());
}
