//! The handler process's main loop: attach to the ring, rebuild the entity tables from the
//! journal when resuming, decode frames, dispatch, report progress.

use std::io::Write;
use std::os::fd::RawFd;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sf_processor::chain::Emission;
use sf_processor::codec;
use sf_processor::handler::{
    DispatchStats, Dispatcher, EXIT_FINISHED_WITH_ERRORS, Handler, HandlerConfig, env,
};
use sf_processor::journal::JournalReader;
use sf_processor::logging;
use sf_processor::publish::{Overflow, Publisher, Target};
use sf_processor::ring::{Consumer, Next, Producer, RingSegment};
use sf_processor::tables::MissingCounts;

/// Environment variable holding the number of the inherited ring file descriptor.
pub const ENV_RING_FD: &str = env::RING_FD;
/// Environment variable holding the number of the inherited entity-journal descriptor.
pub const ENV_JOURNAL_FD: &str = env::JOURNAL_FD;
/// Environment variable holding the handler's name (its `handler` key).
pub const ENV_NAME: &str = env::NAME;
/// Environment variable holding the handler's pipeline block as JSON.
pub const ENV_CONFIG: &str = env::CONFIG;
/// Environment variable holding the launcher's PID: the handler exits if its parent is not it.
pub const ENV_LAUNCHER_PID: &str = env::LAUNCHER_PID;
/// Environment variable naming a record to skip (its sequence number), set by the launcher
/// after the handler crashed on it repeatedly.
pub const ENV_SKIP_SEQ: &str = env::SKIP_SEQ;
/// Why that record is skipped (e.g. `killed by signal 11 (SIGSEGV) 3 times in a row`).
pub const ENV_SKIP_REASON: &str = env::SKIP_REASON;
/// The dead-letter file (JSON lines) a skipped record is appended to.
pub const ENV_DEAD_LETTER: &str = env::DEAD_LETTER;
/// The output rings of a chained handler (`NAME=FD[:drop],...`), set by the launcher when the
/// handler's block has an `"out"` channel.
pub const ENV_OUT_RINGS: &str = env::OUT_RINGS;

/// How long a wait for the next frame lasts before the loop checks for shutdown again.
const WAIT_SLICE: Duration = Duration::from_millis(200);

/// Why a handler process could not run.
#[derive(Debug)]
pub enum RunError {
    /// Not started by `sf-launch`, or started with a bad environment.
    Environment(String),
    /// The handler's `init` failed.
    Init(String),
    /// The ring or journal could not be attached (e.g. an incompatible wire version).
    Attach(String),
    /// The launcher aborted the pipeline (the reader failed for good).
    Aborted,
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Environment(m) => write!(f, "{m}"),
            RunError::Init(m) => write!(f, "init failed: {m}"),
            RunError::Attach(m) => write!(f, "cannot attach to the pipeline: {m}"),
            RunError::Aborted => write!(f, "the pipeline was aborted before the end of the input"),
        }
    }
}

impl std::error::Error for RunError {}

/// Runs `handler` as a pipeline handler process and returns the process exit status: 0 after
/// the whole input was handled (or the launcher asked it to stop with SIGTERM) and
/// `cleanup()` ran; 4 ([`EXIT_FINISHED_WITH_ERRORS`]) likewise but some handler methods
/// returned errors or some output could not be written (`>/dev/full`; see
/// [`logging::output_error`](crate::logging::output_error)); 2 when the process could not
/// start (not under `sf-launch`, bad configuration, `init` error, incompatible ring), 3 when
/// the launcher aborted the pipeline.
/// A handler whose standard output is a closed pipe (`sf-launch … | head`) is ended by
/// SIGPIPE, as a Unix filter is, at its next failed write; the launcher then stops the
/// pipeline instead of restarting it.
///
/// Call it from `main`; see the crate example.
pub fn run<H: Handler>(handler: H) -> ExitCode {
    #[cfg(feature = "in-process")]
    if let Some(args) = crate::in_process::InProcessArgs::from_env() {
        return crate::in_process::run_one(args, handler);
    }
    logging::init(None);
    // `sf-launch … | head`: a handler whose stdout is closed ends as by SIGPIPE.
    logging::exit_on_closed_stdout();
    let name = std::env::var(ENV_NAME).unwrap_or_else(|_| "handler".into());
    // `sf-launch ctl reopen NAME`: never fatal, whether or not the handler reopens anything.
    crate::status::catch_reopen_signal();
    let shutdown = Arc::new(AtomicBool::new(false));
    if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&shutdown))
    {
        log::warn!("{name}: cannot handle SIGTERM: {e}");
    }
    let status = match run_with_shutdown(handler, &shutdown) {
        Ok(stats) => {
            // The last lines first: their writes count too.
            log::logger().flush();
            // The input was handled, but not all of it well: say so in the exit status, as a
            // Unix filter does when a write fails (the launcher reports it, no restart).
            match logging::output_problems(stats.handler_errors) {
                None => ExitCode::SUCCESS,
                Some(problems) => {
                    log::error!("{name}: finished with {problems}");
                    ExitCode::from(EXIT_FINISHED_WITH_ERRORS)
                }
            }
        }
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

fn env_fd(var: &str) -> Result<Option<RawFd>, RunError> {
    let Ok(raw) = std::env::var(var) else {
        return Ok(None);
    };
    raw.parse().map(Some).map_err(|_| {
        RunError::Environment(format!("{var}={raw:?} is not a file descriptor number"))
    })
}

pub(crate) fn env_config() -> Result<HandlerConfig, RunError> {
    let name = std::env::var(ENV_NAME).unwrap_or_default();
    let attributes = match std::env::var(ENV_CONFIG) {
        Err(_) => serde_json::Map::new(),
        Ok(text) => serde_json::from_str(&text).map_err(|e| {
            RunError::Environment(format!("{ENV_CONFIG} is not a JSON object: {e}"))
        })?,
    };
    let mut config = HandlerConfig {
        name,
        attributes,
        location: std::env::var(env::BLOCK).unwrap_or_default(),
        ..HandlerConfig::default()
    };
    for (key, var) in crate::config::apply_env_overrides(&mut config, std::env::vars()) {
        log::debug!("{}: {key} set by the environment ({var})", config.name);
        config.overrides.insert(key, var);
    }
    Ok(config)
}

/// Dies with the launcher: asks the kernel for SIGKILL when the parent exits (nobody is left
/// to coordinate a clean stop), then checks the launcher did not exit before that request.
/// (The check asks whether the launcher's PID is alive rather than whether it is our parent,
/// so a handler started through a wrapper script works too.)
fn follow_launcher() {
    if let Err(e) = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL) {
        log::warn!("cannot set the parent-death signal: {e}");
    }
    if let Some(launcher) = std::env::var(ENV_LAUNCHER_PID)
        .ok()
        .and_then(|p| p.parse::<i32>().ok())
        && nix::sys::signal::kill(nix::unistd::Pid::from_raw(launcher), None)
            == Err(nix::errno::Errno::ESRCH)
    {
        log::error!("the launcher (pid {launcher}) is gone; exiting");
        log::logger().flush();
        std::process::exit(3);
    }
}

/// The output rings named by [`ENV_OUT_RINGS`], attached as their producer (resuming after
/// what a previous process of this handler published); `None` without an output.
fn env_outputs() -> Result<Option<Publisher>, RunError> {
    let Ok(list) = std::env::var(ENV_OUT_RINGS) else {
        return Ok(None);
    };
    let mut targets = Vec::new();
    for spec in list.split(',').filter(|s| !s.is_empty()) {
        let parsed = spec.split_once('=').and_then(|(name, rest)| {
            let (fd, overflow) = match rest.split_once(':') {
                None => (rest, Overflow::Block),
                Some((fd, "drop")) => (fd, Overflow::Drop),
                Some((fd, "block")) => (fd, Overflow::Block),
                Some(_) => return None,
            };
            Some((name, fd.parse::<RawFd>().ok()?, overflow))
        });
        let Some((name, fd, overflow)) = parsed else {
            return Err(RunError::Environment(format!(
                "{ENV_OUT_RINGS}: {spec:?} is not NAME=FD or NAME=FD:drop"
            )));
        };
        let producer = RingSegment::open_inherited(fd)
            .and_then(|seg| Producer::attach(seg.into_fd(), codec::WIRE_VERSION))
            .map_err(|e| RunError::Attach(format!("output ring of handler {name}: {e}")))?;
        targets.push(Target::new(producer, name.to_owned(), overflow));
    }
    Ok((!targets.is_empty()).then(|| Publisher::new(targets, None)))
}

/// A record the launcher told this process to skip.
#[derive(Debug)]
struct Skip {
    seq: u64,
    reason: String,
    dead_letter: Option<String>,
}

fn env_skip() -> Option<Skip> {
    let seq = std::env::var(ENV_SKIP_SEQ).ok()?.parse().ok()?;
    Some(Skip {
        seq,
        reason: std::env::var(ENV_SKIP_REASON).unwrap_or_else(|_| "crashed the handler".into()),
        dead_letter: std::env::var(ENV_DEAD_LETTER).ok(),
    })
}

/// Appends the skipped record to the dead-letter file, one JSON object per line.
fn write_dead_letter(skip: &Skip, name: &str, record: &sf_processor::model::Record) {
    let line = serde_json::json!({
        "handler": name,
        "seq": skip.seq,
        "reason": skip.reason,
        "kind": record.kind().name(),
        "record": record,
    });
    log::error!(
        "{name}: record {} ({}) skipped: {}",
        skip.seq,
        record.kind(),
        skip.reason
    );
    let Some(path) = &skip.dead_letter else {
        return;
    };
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
    if let Err(e) = written {
        log::error!("{name}: cannot write the dead-letter file {path}: {e}");
    }
}

/// The loop behind [`run`], with the logger left to the caller and a shutdown flag: when
/// `shutdown` becomes true the handler stops at the next record boundary (within about
/// 200 ms when idle), runs `cleanup()` and returns.
///
/// A handler started after a crash resumes after the last record its predecessor
/// acknowledged (a few records may be seen twice: [`Context::seq`](crate::Context::seq) tells
/// them apart) and, before that first record, rebuilds its entity tables from the entity
/// journal, so every record has the context it would have had without the crash.
///
/// The handler's `init` receives its pipeline block with the `<HANDLER>_<KEY>` environment
/// overrides applied (see [`config`](crate::config)); [`Handler::idle`] is called while no
/// record waits; an error returned by a handler method is logged with the record's sequence
/// number and kind, counted, and the loop goes on.
///
/// A handler with an output channel (see the guide's *Chaining*) forwards every entity
/// record as it came, and each flow or event for which it called
/// [`Context::emit`](crate::Context::emit), with its sequence number and policies, into the
/// ring of every handler reading that channel. Its output is published before its input is
/// acknowledged, so a restarted handler never leaves a gap downstream; what a previous
/// process of it already published is not published again. When its input ends, it closes
/// its output rings, and the handlers downstream drain them and finish.
///
/// # Errors
/// [`RunError`] when the process cannot start or the pipeline was aborted.
pub fn run_with_shutdown<H: Handler>(
    mut handler: H,
    shutdown: &AtomicBool,
) -> Result<DispatchStats, RunError> {
    let Some(ring_fd) = env_fd(ENV_RING_FD)? else {
        return Err(RunError::Environment(format!(
            "{ENV_RING_FD} is not set: this is a SysFlow handler binary, start it with sf-launch PIPELINE.json PATH"
        )));
    };
    let journal_fd = env_fd(ENV_JOURNAL_FD)?;
    let config = env_config()?;
    let name = config.name.clone();
    let skip = env_skip();
    follow_launcher();
    handler
        .init(&config)
        .map_err(|e| RunError::Init(e.to_string()))?;
    let attach = |e: &dyn std::fmt::Display| RunError::Attach(e.to_string());
    let fd = RingSegment::open_inherited(ring_fd)
        .map_err(|e| attach(&e))?
        .into_fd();
    let mut consumer = Consumer::attach(fd, codec::WIRE_VERSION).map_err(|e| attach(&e))?;
    let journal = match journal_fd {
        None => None,
        Some(raw) => {
            let fd = RingSegment::open_inherited(raw)
                .map_err(|e| attach(&e))?
                .into_fd();
            Some(JournalReader::attach(fd, codec::WIRE_VERSION).map_err(|e| attach(&e))?)
        }
    };
    let mut outputs = env_outputs()?;
    let emission = outputs.as_ref().map(|_| Emission::new());
    let mut out_buf = Vec::new();
    let mut dispatcher = Dispatcher::new(handler);
    let mut decode_errors = 0u64;
    let mut aborted = false;
    let mut closed = false;
    // Sequence number of the last record dispatched by this process (0: none yet).
    let mut last_seq = 0u64;
    while !shutdown.load(Ordering::Relaxed) {
        // What was emitted becomes visible downstream before `next` acknowledges the records
        // it came from: a process killed after the acknowledgement has published it.
        if let Some(out) = &mut outputs {
            out.flush();
        }
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
                    dispatcher.handler_mut().idle();
                    log::logger().flush();
                    waited = true;
                }
                Ok(Next::TimedOut) if shutdown.load(Ordering::Relaxed) => break Ok(Next::TimedOut),
                Ok(Next::TimedOut) => {
                    dispatcher.handler_mut().idle();
                    log::logger().flush();
                }
                other => break other,
            }
        };
        let frame = match next {
            Ok(Next::Frame(frame)) => frame,
            Ok(Next::TimedOut) => continue,
            Ok(Next::Closed) => {
                closed = true;
                break;
            }
            Ok(Next::Aborted) => {
                aborted = true;
                break;
            }
            Err(e) => {
                log::error!("{name}: ring error: {e}");
                aborted = true;
                break;
            }
        };
        let seq = frame.seq;
        if seq <= last_seq {
            // Sent twice by a restarted reader: already handled.
            continue;
        }
        if last_seq == 0 {
            // First record of this process: rebuild the tables as they were before it.
            if let Some(j) = &journal {
                let replayed = j.replay_before(seq, |s, payload| match codec::decode(payload) {
                    Ok(record) => dispatcher.restore(record),
                    Err(e) => log::error!("{name}: journal entry {s}: {e}"),
                });
                match replayed {
                    Ok(0) => {}
                    Ok(n) => log::debug!(
                        "{name}: resuming at record {seq}; {n} entities restored from the journal"
                    ),
                    Err(e) => log::error!("{name}: {e}"),
                }
            }
        }
        last_seq = seq;
        let decoded = match codec::decode_frame(frame.payload) {
            Ok(d) => d,
            Err(e) => {
                decode_errors += 1;
                log::error!("{name}: record {seq}: {e}; skipped");
                continue;
            }
        };
        let kind = decoded.record.kind();
        if kind.is_entity()
            && let Some(out) = &mut outputs
            && out.forward(seq, kind, frame.payload).is_err()
        {
            log::error!(
                "{name}: no handler is left on the output channel; nothing more is emitted"
            );
            outputs = None;
        }
        match &skip {
            Some(s) if s.seq == seq => {
                write_dead_letter(s, &name, &decoded.record);
                dispatcher.skip(decoded.record);
            }
            _ => dispatcher.dispatch_chained(
                seq,
                decoded.record,
                &decoded.policies,
                emission.as_ref(),
            ),
        }
        // A flow or event the handler emitted: the record as it came, then its policies.
        if let Some(policies) = emission.as_ref().and_then(Emission::take)
            && !kind.is_entity()
            && let Some(out) = &mut outputs
        {
            out_buf.clear();
            out_buf.extend_from_slice(&frame.payload[..decoded.record_len]);
            match codec::encode_policies(&policies, &mut out_buf) {
                Ok(()) => {
                    if out.forward(seq, kind, &out_buf).is_err() {
                        log::error!(
                            "{name}: no handler is left on the output channel; nothing more is emitted"
                        );
                        outputs = None;
                    }
                }
                Err(e) => log::error!("{name}: record {seq}: cannot encode its policies: {e}"),
            }
        }
    }
    if let Some(mut out) = outputs {
        if closed {
            // The input is complete: so is the output.
            out.close();
        } else {
            out.flush();
        }
    }
    consumer.commit();
    let missing = dispatcher.tables().missing();
    if let Some(warning) = describe_missing(&missing) {
        log::warn!("{}: {warning}", config.name);
    }
    let (_, stats) = dispatcher.finish();
    if stats.handler_errors > 0 {
        log::warn!(
            "{name}: {} handler errors (the first ones are logged above with their records' sequence numbers)",
            stats.handler_errors
        );
    }
    log::debug!(
        "{name}: {} records, {} handler errors, {decode_errors} undecodable frames, unresolved references: {missing:?}",
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
