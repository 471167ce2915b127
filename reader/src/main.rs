//! `sf-reader`: the reader process of a pipeline. Started by `sf-launch`, which hands it one
//! ring file descriptor per handler; reads the trace file or directory and publishes every
//! record into every ring, then closes the rings.
//!
//! Exit status: 0 when the whole input was read (bad input — a damaged block, a record that
//! cannot be decoded, a field that cannot be resolved — is reported, skipped and summed up in
//! a closing warning, and does not change it), 2 on a usage or start-up error, 3 when no
//! handler is left to publish to, 4 when some records were larger than a ring's largest
//! frame and could not be delivered, 5 when the whole input was read but some file gave no
//! record at all (not a trace, or every record of it failed: `sf-launch` exits 3 then).
//! Killed by a signal or another status: the launcher restarts it, and it resumes after what
//! each ring already holds.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sf_processor::codec::WIRE_VERSION;
use sf_processor::handler::env;
use sf_processor::journal::JournalWriter;
use sf_processor::logging::{self, LogLevel};
use sf_processor::ring::{Producer, RingSegment};
use sf_reader::driver::{self, Overflow, Publisher, ReadSummary, Target};
use sf_reader::socket::{self, Listener, SocketOptions};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// The exit status for an input with a file from which no record could be decoded.
const EXIT_FILE_WITHOUT_RECORDS: u8 = sf_processor::exit::READER_FILES_WITHOUT_RECORDS;

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
    /// With --socket: read every connection in this writer layout (v5, v4, v3, v2,
    /// v1000-2018-07, v1000-2018-12, v1000-2019-01) instead of choosing it from the header's
    /// version and the first datums.
    #[arg(long, value_name = "LAYOUT", requires = "socket", value_parser = parse_layout)]
    socket_layout: Option<&'static sf_reader::layout::Layout>,
    /// With --socket: the largest message accepted, in bytes (1 KiB to 16 MiB); larger ones
    /// are reported and skipped.
    #[arg(long, value_name = "BYTES", requires = "socket", default_value_t = socket::MAX_MESSAGE, value_parser = parse_max_message)]
    max_message: usize,
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

fn parse_layout(name: &str) -> Result<&'static sf_reader::layout::Layout, String> {
    sf_reader::layout::find(name)
}

fn parse_max_message(bytes: &str) -> Result<usize, String> {
    let n: usize = bytes
        .parse()
        .map_err(|e| format!("not a number of bytes: {e}"))?;
    if socket::MAX_MESSAGE_RANGE.contains(&n) {
        Ok(n)
    } else {
        Err(format!(
            "{n} bytes is out of range ({} to {})",
            socket::MAX_MESSAGE_RANGE.start(),
            socket::MAX_MESSAGE_RANGE.end()
        ))
    }
}

fn run(args: Args) -> ExitCode {
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
            let options = SocketOptions {
                max_message: args.max_message,
                layout: args.socket_layout,
            };
            socket::serve(&listener, &mut publisher, &stop, &options).map(|s| {
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
            driver::follow(path, &mut publisher, &mut summary, &stop)
        }
        (None, Some(path)) => match driver::input_files(path) {
            Ok(files) => driver::read(&files, &mut publisher, &mut summary, &stop),
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
    logging::repeat_summary();
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
        Ok(()) if summary.files_without_records() > 0 => ExitCode::from(EXIT_FILE_WITHOUT_RECORDS),
        Ok(()) => ExitCode::SUCCESS,
    }
}
