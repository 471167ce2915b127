//! `sf-reader`: the reader process of a pipeline. Started by `sf-launch`, which hands it one
//! ring file descriptor per handler; reads the trace file or directory and publishes every
//! record into every ring, then closes the rings.
//!
//! Exit status: 0 when the whole input was read (bad input — a file that is not a trace, a
//! damaged block, a record that cannot be mapped — is reported, skipped and summed up in a
//! closing warning, and does not change it), 2 on a usage or start-up error, 3 when
//! no handler is left to publish to, 4 when some records were larger than a ring's largest
//! frame and could not be delivered. Killed by a signal or another status: the launcher
//! restarts it, and it resumes after what each ring already holds.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sf_processor::codec::WIRE_VERSION;
use sf_processor::handler::env;
use sf_processor::journal::JournalWriter;
use sf_processor::logging::{self, LogLevel};
use sf_processor::ring::{Producer, RingSegment};
use sf_reader::avro::Decoder;
use sf_reader::driver::{self, NoConsumers, Overflow, Publisher, ReadSummary, Target};
use sf_reader::socket::{self, Listener};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime};

/// Reads SysFlow traces and publishes their records into handler rings.
#[derive(Debug, Parser)]
#[command(name = "sf-reader", version)]
struct Args {
    /// An inherited ring file descriptor to publish into, one per handler, with the
    /// handler's overflow policy (`NAME=FD`, or `NAME=FD:drop`).
    #[arg(long = "ring", value_name = "NAME=FD[:drop]", required = true)]
    rings: Vec<String>,
    /// The inherited entity-journal file descriptor.
    #[arg(long, value_name = "FD")]
    journal: Option<i32>,
    /// Log level: trace, debug, info, warn, error, quiet (default: $SF_LOG, else info).
    #[arg(long)]
    log: Option<LogLevel>,
    /// Serve the collector's live stream on this Unix socket (`SOCK_SEQPACKET`, one Avro
    /// datum per message) instead of reading files.
    #[arg(long, value_name = "SOCKET", conflicts_with = "path")]
    socket: Option<PathBuf>,
    /// With a directory: keep watching it and read each new trace file once complete (a newer
    /// file exists, or it has not changed for 10 s).
    #[arg(long)]
    follow: bool,
    /// Datum decoder for trace files: `fast` (ours, the default) or `avro` (apache-avro's
    /// generic reader, the reference; slower). Default: `$SF_READER_DECODER`, else `fast`
    /// (so `SF_READER_DECODER=avro sf-launch ...` selects it for a whole pipeline). The
    /// socket is always read with `fast`.
    #[arg(long, value_name = "DECODER")]
    decoder: Option<Decoder>,
    /// A trace file or a directory of trace files.
    #[arg(required_unless_present = "socket")]
    path: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    logging::init(args.log);
    let status = run(args);
    log::logger().flush();
    status
}

/// The environment variable that chooses the decoder when `--decoder` is not given.
const DECODER_ENV: &str = "SF_READER_DECODER";

fn run(args: Args) -> ExitCode {
    let decoder = match args.decoder {
        Some(d) => d,
        None => match std::env::var(DECODER_ENV) {
            Err(_) => Decoder::default(),
            Ok(name) => match name.parse() {
                Ok(d) => d,
                Err(e) => {
                    log::error!("{DECODER_ENV}: {e}");
                    return ExitCode::from(2);
                }
            },
        },
    };
    log::debug!("decoder: {}", decoder.name());
    if let Err(e) = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL) {
        log::warn!("cannot set the parent-death signal: {e}");
    }
    // The launcher may have died before the request above.
    if let Some(launcher) = std::env::var(env::LAUNCHER_PID)
        .ok()
        .and_then(|p| p.parse::<i32>().ok())
        && nix::sys::signal::kill(nix::unistd::Pid::from_raw(launcher), None)
            == Err(nix::errno::Errno::ESRCH)
    {
        log::error!("the launcher (pid {launcher}) is gone; exiting");
        return ExitCode::from(3);
    }
    let stop = Arc::new(AtomicBool::new(false));
    if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&stop)) {
        log::warn!("cannot handle SIGTERM: {e}");
    }
    let mut targets = Vec::new();
    for spec in &args.rings {
        let parsed = spec.split_once('=').and_then(|(n, rest)| {
            let (fd, overflow) = match rest.split_once(':') {
                None => (rest, Overflow::Block),
                Some((fd, "drop")) => (fd, Overflow::Drop),
                Some((fd, "block")) => (fd, Overflow::Block),
                Some(_) => return None,
            };
            Some((n, fd.parse().ok()?, overflow))
        });
        let Some((name, fd, overflow)) = parsed else {
            log::error!("--ring {spec:?}: expected NAME=FD or NAME=FD:drop");
            return ExitCode::from(2);
        };
        match RingSegment::open_inherited(fd)
            .and_then(|seg| Producer::attach(seg.into_fd(), WIRE_VERSION))
        {
            Ok(p) => targets.push(Target::new(p, name.to_owned(), overflow)),
            Err(e) => {
                log::error!("ring of handler {name} (fd {fd}): {e}");
                return ExitCode::from(2);
            }
        }
    }
    let journal = match args.journal {
        None => None,
        Some(fd) => match RingSegment::open_inherited(fd)
            .map_err(|e| e.to_string())
            .and_then(|seg| {
                JournalWriter::attach(seg.into_fd(), WIRE_VERSION).map_err(|e| e.to_string())
            }) {
            Ok(j) => Some(j),
            Err(e) => {
                log::error!("entity journal (fd {fd}): {e}");
                return ExitCode::from(2);
            }
        },
    };
    let mut publisher = Publisher::new(targets, journal);
    let mut summary = ReadSummary::default();
    let outcome = match (&args.socket, &args.path) {
        (Some(socket), _) => {
            publisher.continue_numbering();
            let listener = match Listener::bind(socket) {
                Ok(l) => l,
                Err(e) => {
                    log::error!("{e}");
                    return ExitCode::from(2);
                }
            };
            socket::serve(&listener, &mut publisher, &stop).map(|s| {
                log::info!(
                    "{}: {} records from {} connection(s); {} messages not SysFlow, {} too large",
                    listener.path().display(),
                    s.records,
                    s.connections,
                    s.undecodable,
                    s.oversized
                );
            })
        }
        (None, Some(path)) if args.follow => {
            follow(path, decoder, &mut publisher, &mut summary, &stop)
        }
        (None, Some(path)) => match driver::input_files(path) {
            Ok(files) => driver::read_with(&files, decoder, &mut publisher, &mut summary, &stop),
            Err(e) => {
                log::error!("{e}");
                return ExitCode::from(2);
            }
        },
        (None, None) => {
            log::error!("no input: give a PATH or --socket");
            return ExitCode::from(2);
        }
    };
    let undeliverable = publisher.undeliverable();
    publisher.close();
    log::debug!("{}", driver::describe(&summary));
    if let Some(warning) = driver::input_errors(&summary) {
        log::warn!("{warning}");
    }
    match outcome {
        Err(driver::NoConsumers) => {
            log::error!(
                "no handler left to publish to; stopped after {} records",
                summary.total()
            );
            ExitCode::from(3)
        }
        Ok(()) if undeliverable > 0 => ExitCode::from(4),
        Ok(()) => ExitCode::SUCCESS,
    }
}

/// How long the newest file of a followed directory must stay unchanged to count as complete.
const SETTLE: Duration = Duration::from_secs(10);

/// Follow mode: reads the directory's trace files in name order, then keeps watching it and
/// reads each new file once it is complete: when a newer file exists (the collector rotated),
/// or when it has not changed for [`SETTLE`]. Returns when `stop` is set.
fn follow(
    dir: &Path,
    decoder: Decoder,
    publisher: &mut Publisher,
    summary: &mut ReadSummary,
    stop: &AtomicBool,
) -> Result<(), NoConsumers> {
    use std::sync::atomic::Ordering;
    let mut done: BTreeSet<PathBuf> = BTreeSet::new();
    while !stop.load(Ordering::Relaxed) {
        let files = match driver::input_files(dir) {
            Ok(f) => f,
            Err(e) => {
                log::error!("{e}");
                Vec::new()
            }
        };
        let newest = files.last().cloned();
        let ready: Vec<PathBuf> = files
            .into_iter()
            .filter(|f| !done.contains(f))
            .filter(|f| {
                Some(f) != newest.as_ref()
                    || std::fs::metadata(f)
                        .and_then(|m| m.modified())
                        .map(|t| SystemTime::now().duration_since(t).unwrap_or_default() >= SETTLE)
                        .unwrap_or(false)
            })
            .collect();
        if !ready.is_empty() {
            driver::read_with(&ready, decoder, publisher, summary, stop)?;
            done.extend(ready);
        }
        for _ in 0..5 {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    Ok(())
}
