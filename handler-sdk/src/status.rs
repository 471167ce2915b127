//! A handler's status line in `sf-launch ctl status`, and requests to reopen its output.
//!
//! [`report`] sends one line of text (`down: syslog tcp localhost:514: Connection refused`)
//! to the launcher, which shows it in the `STATUS` column of `ctl status` (and `"status"` of
//! `ctl status --json`) until the next report or a restart of the handler. A report also
//! counts as progress for the watchdog: a handler that waits for its destination and says so
//! at least once per `watchdog_ms` is not killed as stuck.
//!
//! `sf-launch ctl reopen NAME` sends the handler SIGUSR2; the SDK catches it in every handler
//! (so that it never kills one) and [`reopen_requested`] tells the handler, once per request
//! (the exporter then closes its file and opens the path again, for logrotate).

use std::io::{BufRead, BufReader, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixStream};
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sf_processor::handler::env;

/// How long a report may take (the launcher answers within one supervisor tick).
const REPORT_TIMEOUT: Duration = Duration::from_secs(2);

/// The longest status line sent, in bytes; longer ones are cut.
pub const MAX_STATUS: usize = 512;

/// Sends `text` as this handler's status line to the launcher; `false` when there is no
/// launcher (in-process mode, a test) or it did not take it (the text is then only logged at
/// debug level). Blocks for at most two seconds.
pub fn report(text: &str) -> bool {
    let mut end = text.len().min(MAX_STATUS);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let text = &text[..end];
    let sent = send(text);
    if let Err(e) = &sent {
        log::debug!("status not reported ({e}): {text}");
    }
    sent.is_ok()
}

fn send(text: &str) -> std::io::Result<()> {
    let launcher: u32 = std::env::var(env::LAUNCHER_PID)
        .ok()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| std::io::Error::other("not under sf-launch"))?;
    let uid = nix::unistd::getuid().as_raw();
    let name = env::control_socket_name(uid, launcher);
    let addr = SocketAddr::from_abstract_name(name.as_bytes())?;
    let mut stream = UnixStream::connect_addr(&addr)?;
    stream.set_read_timeout(Some(REPORT_TIMEOUT))?;
    stream.set_write_timeout(Some(REPORT_TIMEOUT))?;
    let request = serde_json::json!({
        "cmd": "report",
        "name": std::env::var(env::NAME).unwrap_or_default(),
        "pid": std::process::id(),
        "status": text,
    });
    stream.write_all(format!("{request}\n").as_bytes())?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply)?;
    let reply: serde_json::Value = serde_json::from_str(&reply).map_err(std::io::Error::other)?;
    if reply["ok"] == serde_json::Value::Bool(true) {
        Ok(())
    } else {
        Err(std::io::Error::other(
            reply["error"].as_str().unwrap_or("refused").to_owned(),
        ))
    }
}

fn reopen_flag() -> &'static Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// Catches SIGUSR2 as a reopen request (called by [`run`](crate::run) for every handler).
pub(crate) fn catch_reopen_signal() {
    if let Err(e) =
        signal_hook::flag::register(signal_hook::consts::SIGUSR2, Arc::clone(reopen_flag()))
    {
        log::warn!("cannot handle SIGUSR2: {e}");
    }
}

/// Whether a reopen was requested (`sf-launch ctl reopen NAME`, or SIGUSR2) since the last
/// call: `true` once per request.
pub fn reopen_requested() -> bool {
    reopen_flag().swap(false, Ordering::Relaxed)
}
