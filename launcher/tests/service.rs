//! Running as a service and being watched: `sd_notify` to a real datagram socket standing in
//! for systemd, `ctl reload`, the progress line on a real pseudo-terminal, the input's
//! position in `ctl status`, and `--perf-log`.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

fn probe_block(file: &Path) -> serde_json::Value {
    json!({"handler": "probe", "file": file})
}

/// With `NOTIFY_SOCKET` (and `WATCHDOG_USEC`) set as systemd sets them, the launcher says
/// READY=1 once its processes attached, pings the watchdog, says STOPPING=1 on a stop; its
/// children do not see the variables.
#[test]
fn systemd_hears_ready_watchdog_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let notify = dir.path().join("notify.sock");
    let systemd = UnixDatagram::bind(&notify).unwrap();
    systemd
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let sock = dir.path().join("sysflow.sock");
    let pipeline = write_blocks(dir.path(), &[probe_block(&dir.path().join("p.tsv"))]);
    let child = spawn_launch_env(
        dir.path(),
        &[("NOTIFY_SOCKET", &notify), ("WATCHDOG_USEC", &"200000")],
        &[&"--socket", &sock, &pipeline],
    );
    let launcher = child.id();
    let mut heard: Vec<String> = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(30);
    while heard
        .iter()
        .filter(|m| m.trim_end() == "WATCHDOG=1")
        .count()
        < 3
        || !heard.iter().any(|m| m.starts_with("READY=1"))
    {
        assert!(Instant::now() < deadline, "heard only {heard:?}");
        if let Ok(n) = systemd.recv(&mut buf) {
            heard.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    let ready = heard.iter().find(|m| m.starts_with("READY=1")).unwrap();
    assert_eq!(
        ready,
        &format!(
            "READY=1\nSTATUS=1 handler running on socket {}\n",
            sock.display()
        )
    );
    // Ready: the socket is there to connect to.
    assert!(sock.exists());
    for pid in children_of(launcher) {
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        assert!(
            !env.windows(13).any(|w| w == b"NOTIFY_SOCKET"),
            "pid {pid} inherited NOTIFY_SOCKET"
        );
    }
    let (code, _, err) = ctl(launcher, &["stop"]);
    assert_eq!(code, Some(0), "{err}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !heard.iter().any(|m| m.starts_with("STOPPING=1")) {
        assert!(Instant::now() < deadline, "heard only {heard:?}");
        if let Ok(n) = systemd.recv(&mut buf) {
            heard.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    let run = wait_with_watchdog(child, "sf-launch");
    assert!(run.status.success(), "{run:?}");
    assert_clean(dir.path());
}

/// `ctl reload` restarts the handler whose block changed with its new block, and refuses a
/// change of the pipeline's shape or a bad block, naming why.
#[test]
fn reload_restarts_the_changed_handlers_and_refuses_a_new_shape() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("sysflow.sock");
    let (a, b) = (dir.path().join("a.tsv"), dir.path().join("b.tsv"));
    let pipeline = write_blocks(dir.path(), &[probe_block(&a)]);
    let child = spawn_launch(dir.path(), &[&"--socket", &sock, &pipeline]);
    let launcher = child.id();
    wait_for("the socket", Duration::from_secs(30), || sock.exists());
    let messages = datums(&root().join("resources/traces/tcp.sf"));
    send_connection(&sock, &messages);
    wait_for("10 lines in a.tsv", Duration::from_secs(30), || {
        probe_lines(&a).len() == 10
    });
    write_blocks(dir.path(), &[probe_block(&b)]);
    let (code, out, err) = ctl(launcher, &["reload"]);
    assert_eq!(
        (code, out),
        (
            Some(0),
            format!(
                "reloaded {}: restarting probe with the new block\n",
                pipeline.display()
            )
        ),
        "{err}"
    );
    wait_for("the probe restarted", Duration::from_secs(30), || {
        status(launcher)["probe"]["restarts"] == 1
            && status(launcher)["probe"]["state"] == "running"
    });
    send_connection(&sock, &messages);
    wait_for("10 lines in b.tsv", Duration::from_secs(30), || {
        probe_lines(&b).len() == 10
    });
    assert_eq!(probe_lines(&a).len(), 10);
    // Nothing changed: nothing restarted.
    let (code, out, _) = ctl(launcher, &["reload"]);
    assert_eq!(
        (code, out),
        (
            Some(0),
            format!(
                "reloaded {}: no handler block changed\n",
                pipeline.display()
            )
        )
    );
    // Another shape, a bad key: refused, the pipeline goes on as it was.
    write_blocks(
        dir.path(),
        &[probe_block(&b), probe_block(&dir.path().join("c.tsv"))],
    );
    let (code, _, err) = ctl(launcher, &["reload"]);
    assert_eq!(
        (code, err),
        (
            Some(1),
            format!(
                "sf-launch ctl: error: reload of {} refused: the pipeline's shape changed (blocks, handlers, binaries, channels, ring_size or overflow): restart sf-launch to apply it\n",
                pipeline.display()
            )
        )
    );
    std::fs::write(
        &pipeline,
        json!({"pipeline": [{"handler": "probe", "file": b, "restartlimit": 1}]}).to_string(),
    )
    .unwrap();
    let (code, _, err) = ctl(launcher, &["reload"]);
    assert_eq!(
        (code, err),
        (
            Some(1),
            format!(
                "sf-launch ctl: error: reload of {0} refused: {0}: pipeline[0].restartlimit: unknown key (did you mean \"restart_limit\"?)\n",
                pipeline.display()
            )
        )
    );
    let (code, _, err) = ctl(launcher, &["stop"]);
    assert_eq!(code, Some(0), "{err}");
    let run = wait_with_watchdog(child, "sf-launch");
    assert!(run.status.success(), "{run:?}");
    assert_clean(dir.path());
}

/// A reader held back by a slow handler on a small ring: `ctl status` shows its position in
/// the input files and their total, and `--perf-log 1` logs rate lines while it runs.
#[test]
fn status_shows_the_input_position_and_perf_log_logs_rates() {
    let dir = tempfile::tempdir().unwrap();
    let input = copies_dir(dir.path(), &shared().join("traces/k8s_small.sf"), 10);
    let total: u64 = 10
        * std::fs::metadata(shared().join("traces/k8s_small.sf"))
            .unwrap()
            .len();
    let pipeline = write_blocks(
        dir.path(),
        &[
            json!({"handler": "probe", "file": dir.path().join("p.tsv"), "sleep_us": 100,
                 "ring_size": 65536}),
        ],
    );
    let child = spawn_launch(dir.path(), &[&"--perf-log", &"1", &pipeline, &input]);
    let launcher = child.id();
    let mut seen = None;
    wait_for(
        "a position inside the input",
        Duration::from_secs(60),
        || {
            let Some(s) = try_status(launcher) else {
                return false;
            };
            let i = &s["reader"]["input"];
            let (p, t) = (i["position"].as_u64(), i["total"].as_u64());
            if t == Some(total) && p.is_some_and(|p| p > 0 && p < total) {
                seen = Some(i.clone());
                return true;
            }
            false
        },
    );
    let (code, table, _) = ctl(launcher, &["status"]);
    assert_eq!(code, Some(0));
    let reader = table.lines().find(|l| l.starts_with("reader")).unwrap();
    assert!(reader.contains(" of 1.4 MB ("), "{table}");
    let run = wait_with_watchdog(child, "sf-launch");
    assert!(run.status.success(), "{run:?}");
    let messages = run.info_messages();
    let perf: Vec<&String> = messages
        .iter()
        .filter(|m| m.starts_with("perf: "))
        .collect();
    assert!(!perf.is_empty(), "{}", run.stdout);
    assert!(
        perf[0].contains(" records/s over the last 1 s; input ") && perf[0].contains("; probe "),
        "{perf:?} {seen:?}"
    );
    assert_clean(dir.path());
}

/// On a terminal (a real pseudo-terminal as standard error) a run on files shows a progress
/// line; `--quiet` and a standard error that is not a terminal show none.
#[test]
fn a_terminal_gets_a_progress_line_unless_quiet() {
    use std::io::Read as _;
    let dir = tempfile::tempdir().unwrap();
    let input = copies_dir(dir.path(), &shared().join("traces/k8s_small.sf"), 10);
    let pipeline = write_blocks(
        dir.path(),
        &[
            json!({"handler": "probe", "file": dir.path().join("p.tsv"), "sleep_us": 50,
                 "ring_size": 65536}),
        ],
    );
    let mut shown = Vec::new();
    for quiet in [false, true] {
        let pty = nix::pty::openpty(None, None).unwrap();
        let mut cmd = std::process::Command::new(sf_launch());
        cmd.env("SF_TEST_TAG", dir.path());
        if quiet {
            cmd.arg("--quiet");
        }
        let child = cmd
            .arg(&pipeline)
            .arg(&input)
            .current_dir(root())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::from(pty.slave))
            .spawn()
            .unwrap();
        // Our copy of the terminal's other end: the reader sees its end once the child's
        // copies are gone.
        drop(cmd);
        let mut master = std::fs::File::from(pty.master);
        let reader = std::thread::spawn(move || {
            let mut text = Vec::new();
            // EIO once the last writer of the terminal is gone.
            let _ = master.read_to_end(&mut text);
            String::from_utf8_lossy(&text).into_owned()
        });
        let mut child = child;
        wait_for("sf-launch", WATCHDOG, || {
            child.try_wait().unwrap().is_some()
        });
        shown.push(reader.join().unwrap());
    }
    assert!(
        shown[0].contains(" records, ") && shown[0].contains("ETA") && shown[0].contains(" MiB ("),
        "{:?}",
        shown[0]
    );
    assert!(!shown[1].contains("ETA"), "{:?}", shown[1]);
    assert_clean(dir.path());
}
