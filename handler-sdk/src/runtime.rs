//! The handler process's main loop: attach to the ring, decode frames, dispatch.

use std::os::fd::RawFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sf_processor::codec;
use sf_processor::handler::{DispatchStats, Dispatcher, Handler, HandlerConfig};
use sf_processor::logging;
use sf_processor::ring::{self, Consumer, Next};
use sf_processor::tables::MissingCounts;

/// Environment variable holding the number of the inherited ring file descriptor.
pub const ENV_RING_FD: &str = "SF_RING_FD";
/// Environment variable holding the handler's name (its `handler` key).
pub const ENV_NAME: &str = "SF_HANDLER_NAME";
/// Environment variable holding the handler's pipeline block as JSON.
pub const ENV_CONFIG: &str = "SF_HANDLER_CONFIG";
/// Environment variable holding the launcher's PID: the handler exits if its parent is not it.
pub const ENV_LAUNCHER_PID: &str = "SF_LAUNCHER_PID";

/// How long a wait for the next frame lasts before the loop checks for shutdown again.
const WAIT_SLICE: Duration = Duration::from_millis(200);

/// Why a handler process could not run.
#[derive(Debug)]
pub enum RunError {
    /// Not started by `sf-launch`, or started with a bad environment.
    Environment(String),
    /// The handler's `init` failed.
    Init(String),
    /// The ring could not be attached (e.g. an incompatible wire version).
    Attach(String),
    /// The launcher aborted the ring (the reader failed).
    Aborted,
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Environment(m) => write!(f, "{m}"),
            RunError::Init(m) => write!(f, "init failed: {m}"),
            RunError::Attach(m) => write!(f, "cannot attach to the ring: {m}"),
            RunError::Aborted => write!(f, "the pipeline was aborted before the end of the input"),
        }
    }
}

impl std::error::Error for RunError {}

/// Runs `handler` as a pipeline handler process and returns the process exit status: 0 after
/// the whole input was handled and `cleanup()` ran, 2 when the process could not start (not
/// under `sf-launch`, bad configuration, `init` error, incompatible ring), 3 when the launcher
/// aborted the pipeline.
///
/// Call it from `main`; see the crate example.
pub fn run<H: Handler>(handler: H) -> ExitCode {
    static NEVER: AtomicBool = AtomicBool::new(false);
    logging::init(None);
    let name = std::env::var(ENV_NAME).unwrap_or_else(|_| "handler".into());
    let status = match run_with_shutdown(handler, &NEVER) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{name}: {e}");
            match e {
                RunError::Aborted => ExitCode::from(3),
                _ => ExitCode::from(2),
            }
        }
    };
    log::logger().flush();
    status
}

fn env_fd() -> Result<RawFd, RunError> {
    let raw = std::env::var(ENV_RING_FD).map_err(|_| {
        RunError::Environment(format!(
            "{ENV_RING_FD} is not set: this is a SysFlow handler binary, start it with sf-launch PIPELINE.json PATH"
        ))
    })?;
    raw.parse().map_err(|_| {
        RunError::Environment(format!(
            "{ENV_RING_FD}={raw:?} is not a file descriptor number"
        ))
    })
}

fn env_config() -> Result<HandlerConfig, RunError> {
    let name = std::env::var(ENV_NAME).unwrap_or_default();
    let attributes = match std::env::var(ENV_CONFIG) {
        Err(_) => serde_json::Map::new(),
        Ok(text) => serde_json::from_str(&text).map_err(|e| {
            RunError::Environment(format!("{ENV_CONFIG} is not a JSON object: {e}"))
        })?,
    };
    Ok(HandlerConfig { name, attributes })
}

/// Dies with the launcher: asks the kernel for SIGTERM when the parent exits, then checks the
/// parent did not exit before that request.
fn follow_launcher() {
    if let Err(e) = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM) {
        log::warn!("cannot set the parent-death signal: {e}");
    }
    if let Some(expected) = std::env::var(ENV_LAUNCHER_PID)
        .ok()
        .and_then(|p| p.parse::<i32>().ok())
        && nix::unistd::getppid().as_raw() != expected
    {
        log::error!("the launcher (pid {expected}) is gone; exiting");
        log::logger().flush();
        std::process::exit(3);
    }
}

/// The loop behind [`run`], with the logger left to the caller and a shutdown flag: when
/// `shutdown` becomes true the handler stops at the next frame boundary (within about
/// 200 ms when idle), runs `cleanup()` and returns.
///
/// # Errors
/// [`RunError`] when the process cannot start or the pipeline was aborted.
pub fn run_with_shutdown<H: Handler>(
    mut handler: H,
    shutdown: &AtomicBool,
) -> Result<DispatchStats, RunError> {
    let raw_fd = env_fd()?;
    let config = env_config()?;
    follow_launcher();
    handler
        .init(&config)
        .map_err(|e| RunError::Init(e.to_string()))?;
    let fd = ring::RingSegment::open_inherited(raw_fd)
        .map(ring::RingSegment::into_fd)
        .map_err(|e| RunError::Attach(e.to_string()))?;
    let mut consumer =
        Consumer::attach(fd, codec::WIRE_VERSION).map_err(|e| RunError::Attach(e.to_string()))?;
    let mut dispatcher = Dispatcher::new(handler);
    let mut decode_errors = 0u64;
    let mut aborted = false;
    while !shutdown.load(Ordering::Relaxed) {
        // Poll first; flush the log and wait only when the ring is empty.
        let mut waited = false;
        let next = loop {
            let timeout = if waited {
                Some(WAIT_SLICE)
            } else {
                Some(Duration::ZERO)
            };
            match consumer.next(timeout) {
                Ok(Next::TimedOut) if !waited => {
                    log::logger().flush();
                    consumer.commit();
                    waited = true;
                }
                other => break other,
            }
        };
        match next {
            Ok(Next::Frame(frame)) => match codec::decode(frame.payload) {
                Ok(record) => dispatcher.dispatch(frame.seq, record),
                Err(e) => {
                    decode_errors += 1;
                    log::error!("record {}: {e}; skipped", frame.seq);
                }
            },
            Ok(Next::TimedOut) => {}
            Ok(Next::Closed) => break,
            Ok(Next::Aborted) => {
                aborted = true;
                break;
            }
            Err(e) => {
                log::error!("ring error: {e}");
                aborted = true;
                break;
            }
        }
    }
    consumer.commit();
    let missing = dispatcher.tables().missing();
    if let Some(warning) = describe_missing(&missing) {
        log::warn!("{}: {warning}", config.name);
    }
    let (_, stats) = dispatcher.finish();
    log::debug!(
        "{}: {} records, {} handler errors, {decode_errors} undecodable frames, unresolved references: {missing:?}",
        config.name,
        stats.total(),
        stats.handler_errors
    );
    if aborted {
        Err(RunError::Aborted)
    } else {
        Ok(stats)
    }
}

/// The closing warning about references that never resolved, `None` when every one did:
/// `3 references to entities never seen (processes 2, files 1); their records were handled
/// without that context`.
fn describe_missing(missing: &MissingCounts) -> Option<String> {
    let parts: Vec<String> = [
        ("processes", missing.processes),
        ("files", missing.files),
        ("containers", missing.containers),
        ("pods", missing.pods),
    ]
    .into_iter()
    .filter(|(_, n)| *n > 0)
    .map(|(what, n)| format!("{what} {n}"))
    .collect();
    let total = missing.processes + missing.files + missing.containers + missing.pods;
    (total > 0).then(|| {
        format!(
            "{total} reference{} to entities never seen ({}); their records were handled without that context",
            if total == 1 { "" } else { "s" },
            parts.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_references_are_summed_up_by_kind() {
        assert_eq!(describe_missing(&MissingCounts::default()), None);
        let missing = MissingCounts {
            processes: 2,
            files: 1,
            ..MissingCounts::default()
        };
        assert_eq!(
            describe_missing(&missing).as_deref(),
            Some(
                "3 references to entities never seen (processes 2, files 1); their records were handled without that context"
            )
        );
    }
}
