//! `sf-launch PIPELINE.json [PATH]`: runs a SysFlow pipeline as separate processes.
//!
//! Reads the pipeline file (reference `sf-processor` format), creates one shared-memory ring
//! per handler block (a memfd: the kernel frees it when the last process holding it exits, so
//! nothing is left in `/dev/shm` whatever dies), spawns one process per handler and one reader
//! process that publishes every record of PATH into every ring, then waits until every handler
//! has consumed the whole input.
//!
//! Exit status: 0 when the reader read everything and every handler finished (bad input, such
//! as a damaged block or a file that is not a trace, is reported and skipped by the reader and
//! does not change it); 1 when a process failed (the message names it); 2 when the pipeline
//! could not start (bad pipeline file, unknown handler, missing trace), before anything was
//! spawned.

mod launch;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sf_processor::logging::{self, LogLevel};

/// Runs a SysFlow pipeline: a reader process and one process per handler, connected by
/// shared-memory rings.
#[derive(Debug, Parser)]
#[command(name = "sf-launch", version, about)]
struct Args {
    /// Log level of every process: trace, debug, info, warn, error, quiet.
    #[arg(long, default_value = "info", value_name = "LEVEL")]
    log: LogLevel,
    /// Size of each handler's ring, in bytes (rounded up to a power of two).
    #[arg(long, default_value_t = launch::DEFAULT_RING_BYTES, value_name = "BYTES")]
    ring_size: usize,
    /// The pipeline file, e.g. resources/pipelines/pipeline.printer.json.
    pipeline: PathBuf,
    /// A SysFlow trace file or a directory of trace files.
    path: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    logging::init(Some(args.log));
    let plan = match launch::Plan::new(
        &args.pipeline,
        args.path.as_deref(),
        args.log,
        args.ring_size,
    ) {
        Ok(p) => p,
        Err(e) => {
            log::logger().flush();
            eprintln!("sf-launch: error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let status = match plan.run() {
        Ok(outcome) if outcome.is_success() => ExitCode::SUCCESS,
        Ok(outcome) => {
            log::logger().flush();
            eprintln!("sf-launch: error: {}", outcome.describe_failures());
            ExitCode::from(1)
        }
        Err(e) => {
            log::logger().flush();
            eprintln!("sf-launch: error: {e:#}");
            ExitCode::from(1)
        }
    };
    log::logger().flush();
    status
}
