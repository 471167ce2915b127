//! The live drivers end to end. Socket: a test collector sends a real trace's records, one Avro
//! datum per `SOCK_SEQPACKET` message, disconnects and reconnects; the handler must receive the
//! same records with the same context as from the file, and bad messages are skipped.

mod common;

use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use common::*;
use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr, connect, send, socket,
};
use serde_json::json;

/// Connects to the reader's socket like the collector does.
fn collector(path: &Path) -> std::os::fd::OwnedFd {
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    connect(fd.as_raw_fd(), &UnixAddr::new(path).unwrap()).unwrap();
    fd
}

fn datums(trace: &Path) -> Vec<Vec<u8>> {
    sf_reader::avro::open(trace)
        .unwrap()
        .map(|r| {
            let mut buf = Vec::new();
            sf_reader::generate::encode_record(&r.unwrap(), &mut buf);
            buf
        })
        .collect()
}

#[test]
fn records_sent_through_the_socket_arrive_like_records_read_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let trace = shared().join("traces/tcp-client-server-v5.sf");
    let block =
        |file: &str| json!({"handler": "probe", "entities": true, "file": dir.path().join(file)});

    // Reference: the same trace from the file.
    let sub = dir.path().join("file-run");
    std::fs::create_dir(&sub).unwrap();
    let from_file = write_blocks(&sub, &[block("file.tsv")]);
    let run = launch(dir.path(), &[&from_file, &trace]);
    assert!(run.status.success(), "{run:?}");
    let expected = probe_lines(&dir.path().join("file.tsv"));
    assert_eq!(expected.len(), 23);

    let sock = dir.path().join("sysflow.sock");
    let pipeline = write_blocks(dir.path(), &[block("socket.tsv")]);
    let child = spawn_launch(dir.path(), &[&"--socket", &sock, &pipeline]);
    let launcher = child.id();
    wait_for("the reader's socket", Duration::from_secs(30), || {
        sock.exists()
    });
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the socket is the owner's only");

    let messages = datums(&trace);
    for connection in 0..2 {
        let c = collector(&sock);
        if connection == 0 {
            // Bad messages are reported and skipped; they take no sequence number.
            send(c.as_raw_fd(), b"\x7fnot a datum", MsgFlags::empty()).unwrap();
            send(c.as_raw_fd(), &vec![0u8; 160 << 10], MsgFlags::empty()).unwrap();
            // A zero-length message is not the end of the connection.
            send(c.as_raw_fd(), b"", MsgFlags::empty()).unwrap();
        }
        for m in &messages {
            send(c.as_raw_fd(), m, MsgFlags::empty()).unwrap();
        }
        drop(c); // the collector disconnects; the second connection re-sends its header
    }
    let out = dir.path().join("socket.tsv");
    wait_for(
        "46 records through the socket",
        Duration::from_secs(60),
        || probe_lines(&out).len() == 46,
    );
    let (code, _, err) = ctl(launcher, &["stop"]);
    assert_eq!(code, Some(0), "{err}");
    let run = wait_with_watchdog(child, "sf-launch");
    assert!(run.status.success(), "{run:?}");

    let got = probe_lines(&out);
    for (i, line) in got.iter().enumerate() {
        let want = &expected[i % 23];
        assert_eq!(line.seq, i as u64 + 1);
        assert_eq!(
            line.rest, want.rest,
            "record {} differs from the file's record {}",
            line.seq, want.seq
        );
    }
    assert!(
        run.stderr
            .contains("connection 1, message 1: not a SysFlow datum"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(
            "connection 1, message 2: 163840 bytes, larger than the 131072-byte buffer; skipped"
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
    assert!(!sock.exists(), "the socket file is removed at the end");
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
