//! The live drivers end to end. Socket: a test collector sends every shared trace as its
//! collector wrote it, one Avro datum per `SOCK_SEQPACKET` message (the file's own bytes, in
//! the file's layout: no schema on the socket), one connection per trace; the handler must
//! receive the same records with the same context as from the files, bad messages are
//! skipped, and each connection's layout is said on the log.

mod common;

use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt};
use std::time::Duration;

use common::*;
use nix::sys::socket::{MsgFlags, send};
use serde_json::json;

/// Every shared trace (`traces/`, and `traces-2019/` while it is there), in name order.
fn every_trace() -> Vec<std::path::PathBuf> {
    let mut traces = Vec::new();
    for dir in ["traces", "traces-2019"] {
        if let Ok(entries) = std::fs::read_dir(shared().join(dir)) {
            traces.extend(entries.map(|e| e.unwrap().path()));
        }
    }
    traces.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    traces.dedup_by(|a, b| a.file_name() == b.file_name());
    assert!(traces.len() >= 17, "{traces:?}");
    traces
}

#[test]
fn every_shared_trace_sent_datum_by_datum_arrives_like_from_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let traces = every_trace();
    let block =
        |file: &str| json!({"handler": "probe", "entities": true, "file": dir.path().join(file)});

    // Reference: the same traces from the files, in the same order, in one run.
    let input = dir.path().join("input");
    std::fs::create_dir(&input).unwrap();
    for t in &traces {
        std::os::unix::fs::symlink(t, input.join(t.file_name().unwrap())).unwrap();
    }
    let sub = dir.path().join("file-run");
    std::fs::create_dir(&sub).unwrap();
    let from_file = write_blocks(&sub, &[block("file.tsv")]);
    let run = launch(dir.path(), &[&from_file, &input]);
    assert!(run.status.success(), "{run:?}");
    // Compared whole: some paths hold a newline, so lines are not records.
    let expected = std::fs::read_to_string(dir.path().join("file.tsv")).unwrap();
    let all: Vec<Vec<Vec<u8>>> = traces.iter().map(|t| datums(t)).collect();
    let records: usize = all.iter().map(Vec::len).sum();
    assert!(records > 70_000, "{records}");

    let sock = dir.path().join("sysflow.sock");
    let pipeline = write_blocks(dir.path(), &[block("socket.tsv")]);
    let child = spawn_launch(dir.path(), &[&"--socket", &sock, &pipeline]);
    let launcher = child.id();
    wait_for("the reader's socket", Duration::from_secs(30), || {
        sock.exists()
    });
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the socket is the owner's only");

    for (i, messages) in all.iter().enumerate() {
        let c = collector(&sock);
        if i == 0 {
            // Bad messages are reported and skipped; they take no sequence number.
            send(c.as_raw_fd(), b"\x7fnot a datum", MsgFlags::empty()).unwrap();
            send(c.as_raw_fd(), &vec![0u8; 160 << 10], MsgFlags::empty()).unwrap();
            // A zero-length message is not the end of the connection.
            send(c.as_raw_fd(), b"", MsgFlags::empty()).unwrap();
        }
        for m in messages {
            send(c.as_raw_fd(), m, MsgFlags::empty()).unwrap();
        }
        drop(c); // the collector disconnects; the next connection starts with its header
    }
    wait_for(
        &format!("{records} records through the socket"),
        Duration::from_secs(90),
        || try_status(launcher).is_some_and(|s| s["probe"]["handled"] == records as u64),
    );
    let (code, _, err) = ctl(launcher, &["stop"]);
    assert_eq!(code, Some(0), "{err}");
    let run = wait_with_watchdog(child, "sf-launch");
    assert!(run.status.success(), "{run:?}");

    // Same sequence numbers, kinds and context, record for record.
    let got = std::fs::read_to_string(dir.path().join("socket.tsv")).unwrap();
    if got != expected {
        let (n, (a, b)) = got
            .lines()
            .zip(expected.lines())
            .enumerate()
            .find(|(_, (a, b))| a != b)
            .unwrap_or((0, ("(lengths differ)", "")));
        panic!("line {} differs from the file's: {a:?} != {b:?}", n + 1);
    }
    assert!(
        run.stderr
            .contains("connection 1, message 1: not a SysFlow datum"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(
            "connection 1, message 2: 163840 bytes, larger than the 131072-byte message limit (--max-message); skipped"
        ),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("connection 1, message 3: empty message; skipped"),
        "{}",
        run.stderr
    );
    // Each connection's layout, chosen from its header and first datums, is on the log.
    let layout_of = |name: &str| {
        let c = traces
            .iter()
            .position(|t| t.file_name().unwrap() == name)
            .unwrap_or_else(|| panic!("{name}"))
            + 1;
        let prefix = format!("connection {c}: layout ");
        run.info_messages()
            .into_iter()
            .find_map(|m| {
                m.split_once(&prefix)
                    .map(|(_, rest)| rest.split(' ').next().unwrap_or_default().to_owned())
            })
            .unwrap_or_else(|| panic!("no layout line for {name}:\n{}", run.stdout))
    };
    for (name, layout) in [
        ("play-mon.1548965896", "v1000-2019-01"),
        ("play-mon.1548966016", "v1000-2019-01"),
        ("tcp-procflow-v1000.sf", "v1000-2018-12"),
        ("mon.1531776682.sf", "v1000-2018-07"),
        ("httpd.sf", "v2"),
        ("1621959914", "v3"),
        ("k8s_small.sf", "v4"),
        ("filesat-v5.sf", "v5"),
    ] {
        assert_eq!(layout_of(name), layout, "{name}");
    }
    assert!(!sock.exists(), "the socket file is removed at the end");
    assert_clean(dir.path());
}

#[test]
fn the_socket_layout_and_message_limit_are_settings() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("sysflow.sock");
    let pipeline = write_pipeline(dir.path(), &["stats"]);
    // Bad settings stop it before anything starts.
    let run = launch(
        dir.path(),
        &[&"--socket", &sock, &"--socket-layout", &"v6", &pipeline],
    );
    assert_eq!(run.status.code(), Some(2), "{run:?}");
    assert!(
        run.stderr.contains(
            "unknown SysFlow layout \"v6\" (known: v5, v4, v3, v2, v1000-2018-07, v1000-2018-12, v1000-2019-01)"
        ),
        "{}",
        run.stderr
    );
    let run = launch(
        dir.path(),
        &[&"--socket", &sock, &"--max-message", &"100", &pipeline],
    );
    assert_eq!(run.status.code(), Some(2), "{run:?}");
    assert!(
        run.stderr
            .contains("100 bytes is out of range (1024 to 16777216)"),
        "{}",
        run.stderr
    );
    let tcp = root().join("resources/traces/tcp.sf");
    let run = launch(dir.path(), &[&"--max-message", &"4096", &pipeline, &tcp]);
    assert_eq!(
        run.status.code(),
        Some(2),
        "--max-message needs --socket: {run:?}"
    );

    // The January-2019 layout forced, and a 2 KiB limit.
    let play = [
        "traces/play-mon.1548965896",
        "traces-2019/play-mon.1548965896",
    ]
    .iter()
    .map(|p| shared().join(p))
    .find(|p| p.exists())
    .expect("the January-2019 trace");
    let child = spawn_launch(
        dir.path(),
        &[
            &"--socket",
            &sock,
            &"--socket-layout",
            &"v1000-2019-01",
            &"--max-message",
            &"2048",
            &pipeline,
        ],
    );
    let launcher = child.id();
    wait_for("the reader's socket", Duration::from_secs(30), || {
        sock.exists()
    });
    let c = collector(&sock);
    send(c.as_raw_fd(), &[0u8; 4096], MsgFlags::empty()).unwrap();
    let messages = datums(&play);
    for m in &messages {
        send(c.as_raw_fd(), m, MsgFlags::empty()).unwrap();
    }
    drop(c);
    wait_for("237 records", Duration::from_secs(30), || {
        try_status(launcher).is_some_and(|s| s["stats"]["handled"] == 237)
    });
    let (code, _, err) = ctl(launcher, &["stop"]);
    assert_eq!(code, Some(0), "{err}");
    let run = wait_with_watchdog(child, "sf-launch");
    assert!(run.status.success(), "{run:?}");
    assert_eq!(messages.len(), 237);
    let counts = parse_stats_table(&run.stdout);
    assert_eq!(counts.get("ProcessEvent"), Some(&143), "{counts:?}");
    assert!(
        run.stdout
            .contains("connection 1: layout v1000-2019-01 (version 1000 of January 2019 (play-mon.1548965896)), as --socket-layout says"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains(
            "connection 1, message 1: 4096 bytes, larger than the 2048-byte message limit (--max-message); skipped"
        ),
        "{}",
        run.stderr
    );
    assert_clean(dir.path());
}

#[test]
fn follow_mode_reads_each_new_trace_file_once_complete() {
    let dir = tempfile::tempdir().unwrap();
    let watched = dir.path().join("spool");
    std::fs::create_dir(&watched).unwrap();
    let tcp = root().join("resources/traces/tcp.sf");
    // A file already complete: old enough to have settled.
    std::fs::copy(&tcp, watched.join("001")).unwrap();
    let old = std::time::SystemTime::now() - Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(watched.join("001"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    let child = spawn_launch(
        dir.path(),
        &[
            &"--follow",
            &"resources/pipelines/pipeline.printer.json",
            &watched,
        ],
    );
    let launcher = child.id();
    // The collector rotates: 002 appears (still being written: not read yet), then 003,
    // which completes 002.
    let handled = |want: usize| {
        wait_for(
            &format!("{want} printer lines"),
            Duration::from_secs(60),
            || {
                try_status(launcher)
                    .is_some_and(|s| s["printer"]["handled"].as_u64() == Some(want as u64))
            },
        )
    };
    handled(23); // every record of 001 (the printer prints its 10 flows and events)
    std::fs::copy(&tcp, watched.join(".002.tmp")).unwrap();
    std::fs::rename(watched.join(".002.tmp"), watched.join("002")).unwrap();
    std::fs::copy(&tcp, watched.join(".003.tmp")).unwrap();
    std::fs::rename(watched.join(".003.tmp"), watched.join("003")).unwrap();
    handled(46);
    let (code, _, err) = ctl(launcher, &["stop"]);
    assert_eq!(code, Some(0), "{err}");
    let run = wait_with_watchdog(child, "sf-launch");
    assert!(run.status.success(), "{run:?}");
    let printed: Vec<String> = run
        .info_messages()
        .into_iter()
        .filter(|m| m.contains(", "))
        .collect();
    assert_eq!(
        printed.len(),
        20,
        "001 and 002, not the unsettled 003: {}",
        run.stdout
    );
    assert_clean(dir.path());
}

#[test]
fn a_second_pipeline_does_not_take_over_a_live_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("sysflow.sock");
    let pipeline = write_pipeline(dir.path(), &["stats"]);
    let first = spawn_launch(dir.path(), &[&"--socket", &sock, &pipeline]);
    let launcher = first.id();
    wait_for("the reader's socket", Duration::from_secs(30), || {
        sock.exists()
    });
    let inode = std::fs::metadata(&sock).unwrap().ino();
    // The second one refuses, and leaves the first one's socket where it is.
    let second = launch(dir.path(), &[&"--socket", &sock, &pipeline]);
    assert_eq!(second.status.code(), Some(1), "{second:?}");
    assert!(
        second.stderr.contains(&format!(
            "{}: another process is listening on this socket (another sf-launch --socket?); not replacing it",
            sock.display()
        )),
        "{}",
        second.stderr
    );
    assert_eq!(std::fs::metadata(&sock).unwrap().ino(), inode);
    // The first one still gets what a collector sends.
    let c = collector(&sock);
    for m in datums(&root().join("resources/traces/tcp.sf")) {
        send(c.as_raw_fd(), &m, MsgFlags::empty()).unwrap();
    }
    drop(c);
    wait_for("23 records", Duration::from_secs(30), || {
        try_status(launcher).is_some_and(|s| s["stats"]["handled"] == 23)
    });
    let (code, _, err) = ctl(launcher, &["stop"]);
    assert_eq!(code, Some(0), "{err}");
    let run = wait_with_watchdog(first, "sf-launch");
    assert!(run.status.success(), "{run:?}");
    assert_eq!(parse_stats_table(&run.stdout).values().sum::<u64>(), 23);
    assert!(!sock.exists(), "the socket file is removed at the end");
    assert_clean(dir.path());
}
