//! The exporter's syslog transport against a real `rsyslogd` (Debian package `rsyslog`, and
//! `rsyslog-gnutls` for TLS), started by each test on a loopback port with its own
//! configuration and work directory in the test's temp dir, in the foreground; the test reads
//! what it wrote.
//!
//! **UDP on loopback loses nothing only if the receiving socket has room**: a datagram that
//! arrives while rsyslogd's receive buffer is full (it was not scheduled, on a loaded
//! machine) is dropped by the kernel and counted in the socket's `drops` (`/proc/net/udp`).
//! With the default buffer (`net.core.rmem_default`, 208 KiB) a few hundred messages sent at
//! once can overflow it; that is how `udp_and_tcp_deliver_every_record_to_rsyslogd` once
//! failed under load. So rsyslogd's imudp asks for a 64 MiB buffer (`rcvbufSize`, forced
//! with `SO_RCVBUFFORCE` when it runs as root, as in CI), and every UDP test checks, on the
//! socket the test found to be rsyslogd's own (its inode among rsyslogd's descriptors, so
//! a port taken by someone else between `free_port` and rsyslogd's bind is caught too): every
//! message arrived or was counted as dropped (all UDP promises), and, as root, that none was
//! dropped.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const RSYSLOGD: &str = "/usr/sbin/rsyslogd";

/// A running rsyslogd, killed when dropped.
struct Rsyslogd {
    child: Child,
    out: PathBuf,
    /// `udp` or `tcp`, and the port it listens on.
    proto: &'static str,
    port: u16,
}

/// The receive buffer rsyslogd's imudp asks for (forced as root).
const UDP_RCVBUF: &str = "64m";

/// Whether this process runs as root (rsyslogd, started by it, can then force its buffer).
fn root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2))
            == Some("0")
    })
}

/// The socket of `/proc/net/{proto}` bound to 127.0.0.1:`port` (listening, for TCP):
/// (inode, drops; drops are counted for UDP only).
fn loopback_socket(proto: &str, port: u16) -> Option<(u64, u64)> {
    let table = std::fs::read_to_string(format!("/proc/net/{proto}")).ok()?;
    let local = format!("0100007F:{port:04X}");
    table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let listening = proto == "udp" || f.get(3) == Some(&"0A");
        (f.get(1) == Some(&local.as_str()) && listening).then(|| {
            (
                f.get(9).and_then(|i| i.parse().ok()).unwrap_or(0),
                match proto {
                    "udp" => f.get(12).and_then(|d| d.parse().ok()).unwrap_or(0),
                    _ => 0,
                },
            )
        })
    })
}

impl Rsyslogd {
    /// rsyslogd's own socket on its port (found among its descriptors): (inode, drops).
    fn socket(&self) -> Option<(u64, u64)> {
        let (inode, drops) = loopback_socket(self.proto, self.port)?;
        let want = format!("socket:[{inode}]");
        let fds = std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).ok()?;
        fds.filter_map(Result::ok)
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == want))
            .then_some((inode, drops))
    }

    /// Waits until rsyslogd's socket is bound (UDP) or listening (TCP).
    fn wait_ready(&self) {
        wait_for(
            "rsyslogd's socket on its port",
            Duration::from_secs(20),
            || self.socket().is_some(),
        );
    }

    /// Datagrams the kernel dropped at rsyslogd's UDP socket (its receive buffer was full).
    fn udp_drops(&self) -> u64 {
        self.socket().map_or(0, |(_, drops)| drops)
    }
}

impl Drop for Rsyslogd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    // Bound and released: the port is free for the test (loopback only).
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts rsyslogd in `dir` listening on 127.0.0.1:`port` with `input` (`imudp`, `imtcp`, or
/// `tls` for imtcp over gnutls), writing every raw message as a line to `dir/out.log`.
fn rsyslogd(dir: &Path, input: &str, port: u16) -> Rsyslogd {
    assert!(
        Path::new(RSYSLOGD).exists(),
        "rsyslogd is not installed: apt-get install rsyslog (see .ci/run)"
    );
    let work = dir.join("rsyslog-work");
    std::fs::create_dir_all(&work).unwrap();
    let out = dir.join("out.log");
    let (global, module, input_line) = match input {
        "imudp" => (
            String::new(),
            "module(load=\"imudp\")".to_owned(),
            format!(
                "input(type=\"imudp\" address=\"127.0.0.1\" port=\"{port}\" rcvbufSize=\"{UDP_RCVBUF}\")"
            ),
        ),
        "imtcp" => (
            String::new(),
            "module(load=\"imtcp\" maxSessions=\"10\")".to_owned(),
            format!("input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\")"),
        ),
        _ => (
            format!(
                "global(DefaultNetstreamDriver=\"gtls\" DefaultNetstreamDriverCAFile=\"{d}/ca.pem\" DefaultNetstreamDriverCertFile=\"{d}/server.pem\" DefaultNetstreamDriverKeyFile=\"{d}/server.key\")",
                d = dir.display()
            ),
            "module(load=\"imtcp\" StreamDriver.Name=\"gtls\" StreamDriver.Mode=\"1\" StreamDriver.AuthMode=\"anon\")".to_owned(),
            format!("input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\")"),
        ),
    };
    let conf = dir.join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            "global(workDirectory=\"{work}\")\n{global}\n{module}\n{input_line}\ntemplate(name=\"raw\" type=\"string\" string=\"%rawmsg%\\n\")\n*.* action(type=\"omfile\" file=\"{out}\" template=\"raw\")\n",
            work = work.display(),
            out = out.display()
        ),
    )
    .unwrap();
    let child = Command::new(RSYSLOGD)
        .args(["-n", "-f"])
        .arg(&conf)
        .arg("-i")
        .arg(dir.join("rsyslogd.pid"))
        .env("SF_TEST_TAG", dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start rsyslogd");
    Rsyslogd {
        child,
        out,
        proto: if input == "imudp" { "udp" } else { "tcp" },
        port,
    }
}

/// The messages rsyslogd wrote: (header fields, the record).
fn messages(out: &Path) -> Vec<(Vec<String>, Value)> {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (header, msg) = l
                .split_once(" - {")
                .unwrap_or_else(|| panic!("not an exporter message: {l}"));
            let record: Value = format!("{{{msg}")
                .parse()
                .unwrap_or_else(|e| panic!("message is not JSON ({e}): {l}"));
            (header.split(' ').map(str::to_owned).collect(), record)
        })
        .collect()
}

fn export_pipeline(dir: &Path, proto: &str, port: u16, extra: Value) -> PathBuf {
    let mut block = json!({"processor": "exporter", "in": "sysflow sysflowchan", "export": "syslog",
        "format": "json", "syslog.proto": proto, "syslog.host": "127.0.0.1",
        "syslog.port": port.to_string(), "syslog.tag": "sysflow"});
    for (k, v) in extra.as_object().unwrap() {
        block[k] = v.clone();
    }
    write_blocks(dir, &[block])
}

/// What our exporter writes to a file for `trace`, to compare the messages with.
fn file_export(dir: &Path, trace: &Path) -> Vec<Value> {
    let out = dir.join("file.jsonl");
    let p = write_blocks(
        dir,
        &[
            json!({"processor": "exporter", "in": "sysflow sysflowchan", "export": "file", "file.path": out}),
        ],
    );
    let run = launch(dir, &[&p, &trace]);
    assert!(run.status.success(), "{run:?}");
    let text = std::fs::read_to_string(&out).unwrap();
    text.lines().map(|l| l.parse().unwrap()).collect()
}

/// Waits until rsyslogd wrote `n` messages. Over UDP, a message may instead be dropped by
/// the kernel at rsyslogd's full receive buffer: every message is written or counted as
/// dropped (what UDP promises), and, with the buffer rsyslogd forces as root, none is.
fn wait_delivered(server: &Rsyslogd, n: usize) {
    wait_for("every message written", Duration::from_secs(30), || {
        messages(&server.out).len() + server.udp_drops() as usize >= n
    });
    let (got, drops) = (messages(&server.out).len(), server.udp_drops());
    assert_eq!(
        got + drops as usize,
        n,
        "{} messages written, {drops} dropped at the receive buffer",
        got
    );
    if root() {
        assert_eq!(
            drops, 0,
            "datagrams dropped with a {UDP_RCVBUF} receive buffer"
        );
    }
}

fn check_messages(got: &[(Vec<String>, Value)], want: &[Value], source: Option<&str>) {
    assert_eq!(got.len(), want.len(), "every record is one message");
    let pid = &got[0].0[4];
    for (header, _) in got {
        // <25>1 TIMESTAMP HOST APP PID TAG
        assert_eq!(header.len(), 6, "{header:?}");
        assert_eq!(header[0], "<25>1");
        let ts = &header[1];
        assert!(
            ts.len() >= 20 && ts.as_bytes()[10] == b'T' && !ts.contains('.'),
            "RFC 3339 to the second: {ts}"
        );
        match source {
            Some(s) => assert_eq!(header[2], s),
            None => assert!(
                header[2].starts_with("127.0.0.1:"),
                "local address: {}",
                header[2]
            ),
        }
        assert!(
            header[3].ends_with("sf-handler-exporter"),
            "APP: {}",
            header[3]
        );
        assert_eq!(&header[4], pid, "one process");
        assert_eq!(header[5], "sysflow", "TAG in the MSGID field");
    }
    let mut got: Vec<String> = got.iter().map(|(_, v)| v.to_string()).collect();
    let mut want: Vec<String> = want.iter().map(Value::to_string).collect();
    got.sort();
    want.sort();
    assert!(
        got == want,
        "the messages are the records the file transport writes"
    );
}

#[test]
fn udp_and_tcp_deliver_every_record_to_rsyslogd() {
    let dir = tempfile::tempdir().unwrap();
    let trace = shared().join("traces/shellshock.sf");
    let want = file_export(dir.path(), &trace);
    assert_eq!(want.len(), 56);
    for (proto, input, source) in [("udp", "imudp", None), ("tcp", "imtcp", Some("node-7"))] {
        let sub = dir.path().join(proto);
        std::fs::create_dir(&sub).unwrap();
        let port = free_port();
        let server = rsyslogd(&sub, input, port);
        server.wait_ready();
        let extra = match source {
            Some(s) => json!({"syslog.source": s}),
            None => json!({}),
        };
        let p = export_pipeline(&sub, proto, port, extra);
        let run = launch(&sub, &[&p, &trace]);
        assert!(run.status.success(), "{proto}: {run:?}");
        wait_delivered(&server, want.len());
        check_messages(&messages(&server.out), &want, source);
        drop(server);
    }
    assert_clean(dir.path());
}

/// The server is down when the pipeline starts: the exporter warns, shows it in `ctl status`,
/// retries, and delivers everything once rsyslogd is up; octet counting as asked.
#[test]
fn an_unreachable_server_is_waited_for_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let trace = shared().join("traces/k8s_small.sf");
    let want = file_export(dir.path(), &trace);
    let port = free_port();
    let p = export_pipeline(
        dir.path(),
        "tcp",
        port,
        json!({"syslog.framing": "octet-counting", "buffer": "100"}),
    );
    let launched = spawn_launch(dir.path(), &[&p, &trace]);
    let pid = launched.id();
    wait_for(
        "the exporter to report the server down",
        Duration::from_secs(30),
        || {
            try_status(pid).is_some_and(|s| {
                s.get("exporter")
                    .and_then(|e| e["status"].as_str())
                    .is_some_and(|t| {
                        t.starts_with("down: syslog tcp 127.0.0.1:") && t.contains("refused")
                    })
            })
        },
    );
    let (code, table, _) = ctl(pid, &["status"]);
    assert_eq!(code, Some(0));
    assert!(
        table.contains("STATUS") && table.contains("down: syslog tcp"),
        "{table}"
    );
    let server = rsyslogd(dir.path(), "imtcp", port);
    let run = wait_with_watchdog(launched, "sf-launch");
    assert!(run.status.success(), "{run:?}");
    assert!(
        run.stdout.contains("retried with backoff"),
        "the outage was reported: {}",
        run.stdout
    );
    wait_delivered(&server, want.len());
    // rsyslogd takes the octet count off; the records are whole and all there.
    check_messages(&messages(&server.out), &want, None);
    drop(server);
    assert_clean(dir.path());
}

fn openssl(dir: &Path, args: &[&str]) {
    let ok = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl")
        .success();
    assert!(ok, "openssl {args:?}");
}

/// TLS with a certificate authority and a server certificate made by the test: verified
/// against `syslog.tls.ca`; without it (the system's authorities do not know this one) the
/// connection is refused and retried; `syslog.tls.verify: false` accepts it.
#[test]
fn tls_verifies_the_server_certificate() {
    if !Path::new("/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so").exists() {
        panic!("rsyslog-gnutls is not installed: apt-get install rsyslog-gnutls (see .ci/run)");
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=sf-test-ca",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        d.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
    let trace = shared().join("traces/tcp.sf");
    let want = file_export(d, &trace);
    let port = free_port();
    let server = rsyslogd(d, "tls", port);
    server.wait_ready();
    let ca = d.join("ca.pem");
    let p = export_pipeline(d, "tls", port, json!({"syslog.tls.ca": ca}));
    let run = launch(d, &[&p, &trace]);
    assert!(run.status.success(), "{run:?}");
    wait_delivered(&server, want.len());
    check_messages(&messages(&server.out), &want, None);
    drop(server);

    // Not trusted: the exporter refuses the server and says why in ctl status.
    let sub = d.join("untrusted");
    std::fs::create_dir(&sub).unwrap();
    for f in ["ca.pem", "server.pem", "server.key"] {
        std::fs::copy(d.join(f), sub.join(f)).unwrap();
    }
    let port = free_port();
    let server = rsyslogd(&sub, "tls", port);
    server.wait_ready();
    let p = export_pipeline(&sub, "tls", port, json!({}));
    let launched = spawn_launch(&sub, &[&p, &trace]);
    let pid = launched.id();
    wait_for("the certificate refused", Duration::from_secs(30), || {
        try_status(pid).is_some_and(|s| {
            s.get("exporter")
                .and_then(|e| e["status"].as_str())
                .is_some_and(|t| t.contains("certificate"))
        })
    });
    drop(launched);
    assert_eq!(
        messages(&server.out).len(),
        0,
        "nothing sent to an untrusted server"
    );
    drop(server);
    assert_clean(d);
}

/// The reference's own pipeline files (`../shared/reference/pipelines`) run with only their
/// paths and hosts adjusted (the policies path to `../shared/reference/policies/distribution`,
/// the syslog host and port to the test's rsyslogd): `pipeline.local.json` (syslog over
/// UDP), `pipeline.distribution.json` (syslog over TCP) and `pipeline.terminal.json`
/// (standard output), each flattener -> policy engine (`distribution`, alert) -> exporter, on
/// `k8s_small.sf`. Each delivers the same 2,851 alerts (the figure `policy.rs` checks
/// against the reference's own output), as the same records.
#[test]
fn the_reference_pipelines_run_with_only_paths_and_hosts_adjusted() {
    let dir = tempfile::tempdir().unwrap();
    let trace = shared().join("traces/k8s_small.sf");
    let policies = shared().join("reference/policies/distribution");
    let mut outputs: Vec<(&str, Vec<String>)> = Vec::new();
    for (file, input) in [
        ("pipeline.local.json", Some("imudp")),
        ("pipeline.distribution.json", Some("imtcp")),
        ("pipeline.terminal.json", None),
    ] {
        let original = std::fs::read_to_string(shared().join("reference/pipelines").join(file))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let sub = dir.path().join(file.trim_end_matches(".json"));
        std::fs::create_dir(&sub).unwrap();
        let port = free_port();
        let server = input.map(|i| rsyslogd(&sub, i, port));
        if let Some(s) = &server {
            s.wait_ready();
        }
        let adjusted = original
            .replace(
                "/etc/sysflow/policies/distribution/filter.yaml",
                &policies.join("filter.yaml").display().to_string(),
            )
            .replace(
                "/usr/local/sysflow/resources/policies",
                &policies.display().to_string(),
            )
            .replace(
                "\"syslog.host\": \"localhost\"",
                "\"syslog.host\": \"127.0.0.1\"",
            )
            .replace(
                "\"syslog.port\": \"514\"",
                &format!("\"syslog.port\": \"{port}\""),
            );
        // Nothing else changed: the same blocks, keys and values but those.
        let strip = |text: &str| -> Value {
            let mut v: Value = text.parse().unwrap();
            for b in v["pipeline"].as_array_mut().unwrap() {
                let b = b.as_object_mut().unwrap();
                for k in ["policies", "syslog.host", "syslog.port"] {
                    b.remove(k);
                }
            }
            v
        };
        assert_eq!(strip(&adjusted), strip(&original), "{file}");
        assert_ne!(adjusted, original, "{file}: its paths were adjusted");
        let pipeline = sub.join(file);
        std::fs::write(&pipeline, &adjusted).unwrap();
        // Errors only in the log: on the terminal, standard output holds the records alone.
        let run = launch(&sub, &[&"--log", &"error", &pipeline, &trace]);
        assert!(run.status.success(), "{file}: {run:?}");
        let records: Vec<String> = match &server {
            Some(s) => {
                wait_delivered(s, 2851);
                messages(&s.out)
                    .into_iter()
                    .map(|(_, v)| v.to_string())
                    .collect()
            }
            None => run
                .stdout
                .lines()
                .map(|l| {
                    l.parse::<Value>()
                        .unwrap_or_else(|e| panic!("{file}: not a record ({e}): {l}"))
                        .to_string()
                })
                .collect(),
        };
        let mut records = records;
        records.sort();
        outputs.push((file, records));
    }
    for (file, records) in &outputs {
        assert_eq!(records.len(), 2851, "{file}: alerts delivered");
        assert!(
            records == &outputs[0].1,
            "{file}: the same alerts as {}",
            outputs[0].0
        );
    }
    let first: Value = outputs[0].1[0].parse().unwrap();
    assert!(
        first["policies"].is_array(),
        "alerts carry their policies: {first}"
    );
    assert_clean(dir.path());
}
