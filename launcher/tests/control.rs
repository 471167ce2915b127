//! The launcher's controls beyond the happy path: a second signal kills everything at once, and
//! `ctl` without `--pid` refuses to guess among several pipelines. Each test runs real processes
//! under a watchdog in its own temp dir and checks that nothing is left behind.

mod common;

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::Duration;

/// `ctl status --json` of pipeline `pid` as one JSON value.
fn status_reply(pid: u32) -> Option<serde_json::Value> {
    let (code, out, _) = ctl(pid, &["status", "--json"]);
    (code == Some(0)).then(|| serde_json::from_str(&out).expect("status JSON"))
}

#[test]
fn a_second_signal_kills_every_process_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let trace = root().join("resources/traces/tcp.sf");
    // A handler stuck for ever on the first record (no watchdog): a first signal cannot end the
    // run, since the handlers drain what was read; only the second can.
    let file = dir.path().join("probe.tsv");
    let pipeline = write_blocks(
        dir.path(),
        &[
            json!({"processor": "sysflowreader", "handler": "probe", "file": file,
                 "entities": true, "hang_on_seq": 1}),
        ],
    );
    let child = spawn_launch(dir.path(), &[&pipeline, &trace]);
    let launcher = child.id();
    wait_for(
        "the reader to finish and the probe to hang",
        Duration::from_secs(30),
        || {
            status_reply(launcher).is_some_and(|r| {
                let p = &r["processes"];
                p[0]["state"] == "done" && p[1]["state"] == "running" && p[1]["lag"] == 23
            })
        },
    );
    let term = || kill(Pid::from_raw(launcher as i32), Signal::SIGTERM).unwrap();
    term();
    wait_for(
        "the launcher to be stopping",
        Duration::from_secs(30),
        || status_reply(launcher).is_some_and(|r| r["stopping"] == true),
    );
    // The table says so too.
    let (code, out, _) = ctl(launcher, &["status"]);
    assert_eq!(code, Some(0));
    assert!(
        out.starts_with("stopping: the handlers finish the records already read\n"),
        "{out}"
    );
    term();
    let run = wait_with_watchdog(child, "sf-launch");
    assert_eq!(run.status.code(), Some(130), "{run:?}");
    let info = run.info_messages();
    assert!(
        info.iter().any(|m| m
            == "signal SIGTERM: stopping; the handlers finish the records already read (again to kill)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.lines().any(|l| l.starts_with("WARN: ")
            && l.ends_with(": second signal (SIGTERM): killing every process")),
        "{}",
        run.stdout
    );
    assert!(
        probe_lines(&file).is_empty(),
        "the probe never got past record 1"
    );
    assert_clean(dir.path());
}

#[test]
fn ctl_without_pid_names_every_running_pipeline_and_touches_none() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = write_pipeline(dir.path(), &["stats"]);
    // Two pipelines waiting on their FIFOs.
    let fifos = [dir.path().join("in1"), dir.path().join("in2")];
    for f in &fifos {
        nix::unistd::mkfifo(f, nix::sys::stat::Mode::S_IRWXU).unwrap();
    }
    let children: Vec<_> = fifos
        .iter()
        .map(|f| spawn_launch(dir.path(), &[&pipeline, f]))
        .collect();
    let pids: Vec<u32> = children.iter().map(|c| c.id()).collect();
    for &pid in &pids {
        wait_for("the control socket", Duration::from_secs(30), || {
            try_status(pid).is_some()
        });
    }
    for action in [&["status"][..], &["stop"], &["restart", "stats"]] {
        let out = Command::new(sf_launch())
            .arg("ctl")
            .args(action)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{action:?}: {err}");
        // Other tests may run pipelines at the same time: at least these two are listed.
        let first = err.lines().next().unwrap_or_default();
        assert!(
            first.ends_with(" pipelines are running; choose one with --pid:"),
            "{err}"
        );
        for pid in &pids {
            assert!(
                err.lines()
                    .any(|l| l.starts_with(&format!("  pid {pid}: ")) && l.contains("sf-launch")),
                "pid {pid} not listed: {err}"
            );
        }
    }
    // Neither pipeline was stopped or restarted by the refused commands.
    for &pid in &pids {
        let s = status(pid);
        assert_eq!(s["stats"]["state"], "running");
        assert_eq!(s["stats"]["restarts"], 0);
    }
    // End both runs: tcp.sf through each FIFO.
    let tcp = std::fs::read(root().join("resources/traces/tcp.sf")).unwrap();
    for f in &fifos {
        std::fs::write(f, &tcp).unwrap();
    }
    for child in children {
        let run = wait_with_watchdog(child, "sf-launch");
        assert!(run.status.success(), "{run:?}");
        assert_eq!(parse_stats_table(&run.stdout).values().sum::<u64>(), 23);
    }
    assert_clean(dir.path());
}

#[test]
fn a_closed_stdout_stops_the_pipeline_like_a_unix_filter() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    // 8 copies of k8s_small: far more lines than a pipe buffer holds.
    let input = copies_dir(dir.path(), &shared().join("traces/k8s_small.sf"), 8);
    let pipeline = write_pipeline(dir.path(), &["printer", "stats"]);
    let mut child = spawn_launch(dir.path(), &[&pipeline, &input]);
    // `sf-launch … | head -1`: read one line, then close the pipe.
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.starts_with("INFO: "), "{first}");
    drop(stdout);
    let run = wait_with_watchdog(child, "sf-launch");
    // As a filter killed by SIGPIPE: 128 + 13, nothing restarted, nothing reported as failed.
    assert_eq!(run.status.code(), Some(141), "{run:?}");
    // A crash would be an ERROR line naming the printer (restarts are logged on the closed
    // stdout, so only stderr can tell).
    assert!(!run.stderr.contains("handler printer"), "{}", run.stderr);
    assert!(!run.stderr.contains("SIGPIPE"), "{}", run.stderr);
    assert_clean(dir.path());
}

#[test]
fn a_stop_ends_even_when_a_handler_keeps_crashing() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = mkfifo(dir.path());
    // Crashes on the header every time, restarted without limit (restart_window_s 0) and never
    // quarantining the record: only a stop can end this.
    let file = dir.path().join("probe.tsv");
    let pipeline = write_blocks(
        dir.path(),
        &[
            json!({"processor": "sysflowreader", "handler": "probe", "file": file,
                 "entities": true, "crash_on_seq": 1, "poison_after": 1000000,
                 "restart_window_s": 0, "backoff_initial_ms": 10, "backoff_max_ms": 20}),
        ],
    );
    let child = spawn_launch(dir.path(), &[&pipeline, &fifo]);
    let launcher = child.id();
    let writer = feed_fifo(&fifo, &root().join("resources/traces/tcp.sf"));
    wait_for("three restarts", Duration::from_secs(30), || {
        try_status(launcher).is_some_and(|s| s["probe"]["restarts"].as_u64() >= Some(3))
    });
    // A restart asked for while stopping is refused.
    kill(Pid::from_raw(launcher as i32), Signal::SIGTERM).unwrap();
    wait_for(
        "the launcher to be stopping",
        Duration::from_secs(30),
        || status_reply(launcher).is_some_and(|r| r["stopping"] == true),
    );
    let (code, _, err) = ctl(launcher, &["restart", "probe"]);
    assert_eq!(
        (code, err.as_str()),
        (
            Some(1),
            "sf-launch ctl: error: the pipeline is stopping: no restarts\n"
        )
    );
    let run = wait_with_watchdog(child, "sf-launch");
    drop(writer);
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    let last = run.stderr.lines().last().unwrap_or_default();
    assert!(
        last == "sf-launch: error: handler probe failed (not restarted: the pipeline stopped)"
            || last
                == "sf-launch: error: handler probe failed (killed by signal 6 (SIGABRT) while the pipeline was stopping)",
        "{}",
        run.stderr
    );
    assert_clean(dir.path());
}

#[test]
fn sighup_stops_gracefully_and_sigusr1_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = mkfifo(dir.path());
    let pipeline = write_pipeline(dir.path(), &["stats"]);
    let child = spawn_launch(dir.path(), &[&pipeline, &fifo]);
    let launcher = child.id();
    // The writer stays open: the reader waits for more, as with a live input.
    let writer = feed_fifo(&fifo, &root().join("resources/traces/tcp.sf"));
    wait_for("23 records handled", Duration::from_secs(30), || {
        try_status(launcher).is_some_and(|s| s["stats"]["handled"] == 23)
    });
    kill(Pid::from_raw(launcher as i32), Signal::SIGUSR1).unwrap();
    // Still running and answering after SIGUSR1.
    wait_for("a status after SIGUSR1", Duration::from_secs(30), || {
        try_status(launcher).is_some_and(|s| s["stats"]["state"] == "running")
    });
    kill(Pid::from_raw(launcher as i32), Signal::SIGHUP).unwrap();
    let run = wait_with_watchdog(child, "sf-launch");
    drop(writer);
    assert!(run.status.success(), "{run:?}");
    assert!(
        run.stdout.lines().any(|l| l.ends_with(
            ": SIGUSR1 ignored: the launcher takes SIGINT, SIGTERM and SIGHUP; send it to a handler's pid (sf-launch ctl status lists them)"
        )),
        "{}",
        run.stdout
    );
    assert!(
        run.info_messages().iter().any(|m| m
            == "signal SIGHUP: stopping; the handlers finish the records already read (again to kill)"),
        "{}",
        run.stdout
    );
    // The stats handler drained and printed its table.
    assert_eq!(parse_stats_table(&run.stdout).values().sum::<u64>(), 23);
    assert_clean(dir.path());
}

#[test]
fn output_that_cannot_be_written_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let shellshock = shared().join("traces/shellshock.sf");
    let tcp = root().join("resources/traces/tcp.sf");
    let lost_log =
        "1 failed writes to standard output (first: No space left on device (os error 28))";
    // The exporter prints each of the 2 alerts to the terminal: both writes fail.
    let lost_alerts =
        "2 failed writes to standard output (first: No space left on device (os error 28))";
    for (pipeline, trace, handler, what) in [
        (
            "resources/pipelines/pipeline.printer.json",
            &tcp,
            "printer",
            lost_log,
        ),
        (
            "resources/pipelines/pipeline.stats.json",
            &tcp,
            "stats",
            lost_log,
        ),
        (
            "resources/pipelines/pipeline.alert.json",
            &shellshock,
            "exporter",
            lost_alerts,
        ),
    ] {
        // `sf-launch … >/dev/full`: every write fails with ENOSPC.
        let mut cmd = Command::new(sf_launch());
        cmd.arg(pipeline).arg(trace);
        let run = run_into_dev_full(cmd, dir.path(), "sf-launch");
        assert_eq!(run.status.code(), Some(1), "{handler}: {run:?}");
        assert!(
            run.stderr
                .contains(&format!(": {handler}: finished with {what}\n")),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr.ends_with(&format!(
                "sf-launch: error: handler {handler} failed (finished with errors, see its messages above)\n"
            )),
            "{}",
            run.stderr
        );
    }
    assert_clean(dir.path());
}

#[test]
fn status_shows_a_process_stopped_by_sigstop() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = mkfifo(dir.path());
    let pipeline = write_pipeline(dir.path(), &["stats"]);
    let child = spawn_launch(dir.path(), &[&pipeline, &fifo]);
    let launcher = child.id();
    let writer = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    let stats = status(launcher)["stats"]["pid"].as_u64().unwrap() as i32;
    kill(Pid::from_raw(stats), Signal::SIGSTOP).unwrap();
    wait_for("stats shown stopped", Duration::from_secs(30), || {
        status(launcher)["stats"]["state"] == "stopped"
    });
    kill(Pid::from_raw(stats), Signal::SIGCONT).unwrap();
    wait_for("stats shown running", Duration::from_secs(30), || {
        status(launcher)["stats"]["state"] == "running"
    });
    // A trace, not an empty input (a file that gives no record is an input error: exit 3).
    let mut writer = writer;
    std::io::Write::write_all(
        &mut writer,
        &std::fs::read(root().join("resources/traces/tcp.sf")).unwrap(),
    )
    .unwrap();
    drop(writer);
    let run = wait_with_watchdog(child, "sf-launch");
    assert!(run.status.success(), "{run:?}");
    assert_eq!(parse_stats_table(&run.stdout).values().sum::<u64>(), 23);
    assert_clean(dir.path());
}
