//! `sf-reader`: the reader process of a pipeline. Started by `sf-launch`, which hands it one
//! ring file descriptor per handler; reads the trace file or directory and publishes every
//! record into every ring, then closes the rings.
//!
//! Bad input is not a failure: a file that is not a SysFlow trace, a damaged block, a record
//! that cannot be decoded are each reported (an error naming the file and byte offset) and
//! skipped, the rest of the input is read, and a closing warning sums up what was skipped
//! (`input errors in 2 of 5 files: ...`).
//!
//! Exit status: 0 when the whole input was read (bad input reported and skipped), 2 on a
//! usage or start-up error (bad arguments, a ring that cannot be attached, an input path that
//! cannot be listed), 3 when no handler is left to publish to.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sf_processor::codec::WIRE_VERSION;
use sf_processor::logging::{self, LogLevel};
use sf_processor::ring::{Producer, RingSegment};
use sf_reader::driver::{self, Publisher, ReadSummary};

/// Reads SysFlow traces and publishes their records into handler rings.
#[derive(Debug, Parser)]
#[command(name = "sf-reader", version)]
struct Args {
    /// An inherited ring file descriptor to publish into, one per handler (`NAME=FD`).
    #[arg(long = "ring", value_name = "NAME=FD", required = true)]
    rings: Vec<String>,
    /// Log level: trace, debug, info, warn, error, quiet (default: $SF_LOG, else info).
    #[arg(long)]
    log: Option<LogLevel>,
    /// A trace file or a directory of trace files.
    path: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    logging::init(args.log);
    let status = run(args);
    log::logger().flush();
    status
}

fn run(args: Args) -> ExitCode {
    if let Err(e) = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM) {
        log::warn!("cannot set the parent-death signal: {e}");
    }
    let mut producers = Vec::new();
    let mut names = Vec::new();
    for spec in &args.rings {
        let Some((name, fd)) = spec
            .split_once('=')
            .and_then(|(n, f)| Some((n, f.parse().ok()?)))
        else {
            log::error!("--ring {spec:?}: expected NAME=FD");
            return ExitCode::from(2);
        };
        match RingSegment::open_inherited(fd)
            .and_then(|seg| Producer::attach(seg.into_fd(), WIRE_VERSION))
        {
            Ok(p) => producers.push(p),
            Err(e) => {
                log::error!("ring of handler {name} (fd {fd}): {e}");
                return ExitCode::from(2);
            }
        }
        names.push(name.to_owned());
    }
    let files = match driver::input_files(&args.path) {
        Ok(f) => f,
        Err(e) => {
            log::error!("{e}");
            return ExitCode::from(2);
        }
    };
    let mut publisher = Publisher::new(producers, names);
    let mut summary = ReadSummary::default();
    let outcome = driver::read_into(&files, &mut publisher, &mut summary);
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
        Ok(()) => ExitCode::SUCCESS,
    }
}
