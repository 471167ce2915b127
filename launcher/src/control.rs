//! The control socket of a running pipeline, and the `sf-launch ctl` client.
//!
//! The socket is a Unix stream socket in the Linux abstract namespace, named
//! `sf-launch.<uid>.<pid>`: it has no file, so nothing is left behind whatever kills the
//! launcher. Only the owner may use it: every connection's peer credentials (`SO_PEERCRED`)
//! are checked and other users are refused.
//!
//! Protocol: one JSON request line, one JSON reply line. Requests: `{"cmd":"status"}` (the
//! processes, and the entity journal: `"journal": {"bytes", "entries", "generations",
//! "dropped"}`), `{"cmd":"restart","name":"printer"}`, `{"cmd":"reopen","name":"exporter"}`,
//! `{"cmd":"stop"}`, and from handlers `{"cmd":"report","name":"exporter","pid":123,
//! "status":"..."}` (their status line, `handler_sdk::status::report`). Replies:
//! `{"ok":true,...}` or
//! `{"ok":false,"error":"..."}`.

use std::io::{BufRead, BufReader, Read as _, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

/// A control request, handed to the supervisor with the connection to answer on.
#[derive(Debug)]
pub struct Request {
    /// The request object.
    pub body: Value,
    /// The client's connection: the supervisor writes the reply itself, so a reply to `stop`
    /// is on its way before the launcher exits.
    pub reply: UnixStream,
}

impl Request {
    /// Writes `reply` as one JSON line (one write: a local socket takes it at once).
    pub fn answer(mut self, reply: &Value) {
        let _ = self.reply.write_all(format!("{reply}\n").as_bytes());
    }
}

/// The longest request line the launcher reads (requests are a few dozen bytes).
const MAX_REQUEST: u64 = 64 * 1024;

/// How long `ctl` waits for the launcher's reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(15);

fn socket_name(uid: u32, pid: u32) -> String {
    sf_processor::handler::env::control_socket_name(uid, pid)
}

fn uid() -> u32 {
    nix::unistd::getuid().as_raw()
}

/// Binds this launcher's control socket and serves it on a thread, forwarding requests to
/// `to_supervisor`.
///
/// # Errors
/// When the socket cannot be bound.
pub fn serve(to_supervisor: mpsc::Sender<Request>) -> anyhow::Result<()> {
    let name = socket_name(uid(), std::process::id());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).context("control socket name")?;
    let listener = UnixListener::bind_addr(&addr)
        .with_context(|| format!("cannot bind the control socket @{name}"))?;
    std::thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                // One thread per connection: a client that sends slowly (or not at all)
                // delays nobody else.
                let to_supervisor = to_supervisor.clone();
                let spawned = std::thread::Builder::new()
                    .name("control-conn".into())
                    .spawn(move || {
                        if let Err(e) = handle(conn, &to_supervisor) {
                            log::debug!("control connection: {e:#}");
                        }
                    });
                if let Err(e) = spawned {
                    log::warn!("control connection dropped: {e}");
                }
            }
        })?;
    Ok(())
}

fn handle(conn: UnixStream, to_supervisor: &mpsc::Sender<Request>) -> anyhow::Result<()> {
    let creds = nix::sys::socket::getsockopt(&conn, nix::sys::socket::sockopt::PeerCredentials)?;
    let mut writer = conn.try_clone()?;
    if creds.uid() != uid() {
        writeln!(
            writer,
            "{}",
            json!({"ok": false, "error": "permission denied: not the pipeline's owner"})
        )?;
        bail!("refused a connection from uid {}", creds.uid());
    }
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut line = String::new();
    // A request is one short JSON line; read no more than that, whatever the client sends.
    BufReader::new(conn.take(MAX_REQUEST)).read_line(&mut line)?;
    let body: Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| json!({"cmd": "invalid", "error": e.to_string()}));
    to_supervisor
        .send(Request {
            body,
            reply: writer,
        })
        .context("the supervisor is gone")?;
    Ok(())
}

/// PIDs of the pipelines this user is running, from `/proc/net/unix`.
fn running_pipelines() -> Vec<u32> {
    let prefix = format!("@sf-launch.{}.", uid());
    let table = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    let mut pids: Vec<u32> = table
        .lines()
        .filter_map(|l| l.split_whitespace().nth(7))
        .filter_map(|path| path.strip_prefix(&prefix)?.parse().ok())
        .filter(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

fn describe_pid(pid: u32) -> String {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    format!("pid {pid}: {}", args.join(" "))
}

/// Sends `request` to the pipeline `pid` (or the only one this user runs) and returns the
/// reply.
///
/// # Errors
/// When no pipeline (or more than one, without `pid`) is running, or the exchange fails.
pub fn call(pid: Option<u32>, request: &Value) -> anyhow::Result<Value> {
    let pid = match pid {
        Some(p) => p,
        None => match running_pipelines().as_slice() {
            [] => bail!("no pipeline of this user is running"),
            [one] => *one,
            several => bail!(
                "{} pipelines are running; choose one with --pid:\n  {}",
                several.len(),
                several
                    .iter()
                    .map(|p| describe_pid(*p))
                    .collect::<Vec<_>>()
                    .join("\n  ")
            ),
        },
    };
    let name = socket_name(uid(), pid);
    let addr = SocketAddr::from_abstract_name(name.as_bytes())?;
    let mut stream = UnixStream::connect_addr(&addr).with_context(|| {
        format!("no pipeline with control socket @{name} (is sf-launch pid {pid} running?)")
    })?;
    stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
    writeln!(stream, "{request}")?;
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => anyhow::anyhow!(
                "no reply from sf-launch pid {pid} within {REPLY_TIMEOUT:?} (is it stopped or overloaded?)"
            ),
            _ => anyhow::anyhow!("reading the reply of sf-launch pid {pid}: {e}"),
        })?;
    let reply: Value = serde_json::from_str(&line)
        .with_context(|| format!("bad reply from pid {pid}: {line:?}"))?;
    if reply["ok"] != Value::Bool(true) {
        bail!("{}", reply["error"].as_str().unwrap_or("request failed"));
    }
    Ok(reply)
}

/// The reader's input column: `1.2 MB of 3.4 MB (35 %, ETA 12 s)`.
fn input_position(i: &serde_json::Map<String, Value>) -> String {
    let (Some(pos), Some(total)) = (i["position"].as_u64(), i["total"].as_u64()) else {
        return "-".into();
    };
    let eta = i["eta_s"]
        .as_u64()
        .map_or(String::new(), |s| format!(", ETA {s} s"));
    format!(
        "{} of {} ({:.0} %{eta})",
        crate::progress::bytes(pos),
        crate::progress::bytes(total),
        pos as f64 * 100.0 / total.max(1) as f64
    )
}

/// Formats a `status` reply as a table, after a line saying so when the pipeline is stopping
/// (a first SIGINT/SIGTERM or `ctl stop`: the handlers finish what was read).
pub fn status_table(reply: &Value) -> String {
    let mut out = String::new();
    if reply["stopping"] == Value::Bool(true) {
        out.push_str("stopping: the handlers finish the records already read\n");
    }
    out += &format!(
        "{:<16} {:>8} {:<10} {:>12} {:>10} {:>8} {:>10} {:>10}  {:<16} {}\n",
        "NAME", "PID", "STATE", "HANDLED", "LAG", "RESTARTS", "DROPS", "RATE/s", "INPUT", "STATUS"
    );
    let dash = |v: &Value| match v {
        Value::Null => "-".to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    for p in reply["processes"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{:<16} {:>8} {:<10} {:>12} {:>10} {:>8} {:>10} {:>10}  {:<16} {}\n",
            dash(&p["name"]),
            dash(&p["pid"]),
            dash(&p["state"]),
            dash(&p["handled"]),
            dash(&p["lag"]),
            dash(&p["restarts"]),
            dash(&p["drops"]),
            dash(&p["rate"]),
            match &p["input"] {
                Value::Object(i) => input_position(i),
                other => dash(other),
            },
            dash(&p["status"]),
        ));
    }
    let j = &reply["journal"];
    if let Some(bytes) = j["bytes"].as_u64() {
        out.push_str(&format!(
            "entity journal: {} entities in {} generation{}, {} bytes held ({} entities dropped so far)\n",
            dash(&j["entries"]),
            dash(&j["generations"]),
            if j["generations"].as_u64() == Some(1) { "" } else { "s" },
            bytes,
            dash(&j["dropped"]),
        ));
    }
    out
}
