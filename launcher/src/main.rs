//! `sf-launch PIPELINE.json [PATH]`: runs a SysFlow pipeline as separate, supervised
//! processes; `sf-launch ctl status|restart NAME|reopen NAME|stop` controls a running one.
//!
//! Reads the pipeline file (reference `sf-processor` format), creates one shared-memory ring
//! per handler block and the entity journal (memfds: the kernel frees them when the last
//! process holding them exits, so nothing is left behind whatever dies), spawns one process per
//! handler and one reader process that publishes every record of PATH into every ring, and
//! supervises them until every handler has consumed the whole input.
//!
//! Exit status: the table of [`RunStatus`] (0 complete; 1 failed; 2 could not start; 3
//! input errors (a file gave no record); 4 handler state lost, 5 records dead-lettered, 6 records
//! dropped: a partial run; 130 interrupted; 141 output closed), with its last line on
//! standard error naming every reason that applies.

mod control;
mod plan;
mod progress;
mod service;
mod supervise;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde_json::json;
use sf_processor::exit::RunStatus;
use sf_processor::logging::{self, LogLevel};

/// Runs a SysFlow pipeline: a reader process and one process per handler, connected by
/// shared-memory rings, supervised.
#[derive(Debug, Parser)]
#[command(
    name = "sf-launch",
    version,
    about,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Log level of every process: trace, debug, info, warn, error, quiet.
    #[arg(long, default_value = "info", value_name = "LEVEL")]
    log: LogLevel,
    /// Size of each handler's ring, in bytes (rounded up to a power of two); a block's
    /// `ring_size` overrides it.
    #[arg(long, default_value_t = plan::DEFAULT_RING_BYTES, value_name = "BYTES")]
    ring_size: usize,
    /// Where records skipped after crashing a handler repeatedly are written (JSON lines).
    #[arg(long, default_value = "sf-deadletter.jsonl", value_name = "FILE")]
    dead_letter: PathBuf,
    /// The pipeline file, e.g. resources/pipelines/pipeline.printer.json.
    #[arg(required = true)]
    pipeline: Option<PathBuf>,
    /// Serve the collector's live stream on this Unix socket (created by the reader, mode
    /// 0600; `SOCK_SEQPACKET`, one Avro datum per message) instead of reading PATH.
    #[arg(long, value_name = "SOCKET")]
    socket: Option<PathBuf>,
    /// With a directory PATH: keep watching it and read each new trace file once complete.
    #[arg(long)]
    follow: bool,
    /// With --socket: read every collector connection in this writer layout (v5, v4, v3, v2,
    /// v1000-2018-07, v1000-2018-12, v1000-2019-01) instead of choosing it from the header's
    /// version and the first datums.
    #[arg(long, value_name = "LAYOUT", requires = "socket", value_parser = parse_layout)]
    socket_layout: Option<String>,
    /// With --socket: the largest message accepted, in bytes (1024 to 16777216; default
    /// 131072); larger ones are reported and skipped.
    #[arg(long, value_name = "BYTES", requires = "socket", value_parser = parse_max_message)]
    max_message: Option<usize>,
    /// No progress line (shown on standard error when it is a terminal and the input is a
    /// trace file or directory).
    #[arg(long)]
    quiet: bool,
    /// Log a rate line every SECONDS (records read, records/s, each handler's count and lag,
    /// the input's position), as the reference's `-perflog`.
    #[arg(long, value_name = "SECONDS")]
    perf_log: Option<u64>,
    /// A SysFlow trace file or a directory of trace files.
    path: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Checks a pipeline without starting anything (the reference's `-test`): the file,
    /// every handler binary and block (misspelt or unknown keys, values out of range),
    /// the input when given. Exit status 0 when it would start, 2 otherwise.
    Check {
        /// The pipeline file.
        pipeline: PathBuf,
        /// The input it would read: a trace file or directory.
        path: Option<PathBuf>,
        /// Or the socket it would serve.
        #[arg(long, value_name = "SOCKET", conflicts_with = "path")]
        socket: Option<PathBuf>,
        /// With a directory PATH: as `--follow` would.
        #[arg(long)]
        follow: bool,
        /// Size of each handler's ring, as for a run.
        #[arg(long, default_value_t = plan::DEFAULT_RING_BYTES, value_name = "BYTES")]
        ring_size: usize,
        /// The dead-letter file, as for a run.
        #[arg(long, default_value = "sf-deadletter.jsonl", value_name = "FILE")]
        dead_letter: PathBuf,
    },
    /// Controls a running pipeline of this user.
    Ctl {
        /// The sf-launch process to talk to (needed when several pipelines run).
        #[arg(long)]
        pid: Option<u32>,
        #[command(subcommand)]
        action: CtlAction,
    },
}

#[derive(Debug, Subcommand)]
enum CtlAction {
    /// Per process: pid, state, records handled, lag behind the reader, restarts, drops, rate.
    Status {
        /// Print the reply as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Restarts one handler now (its binary is started again from its path, so a rebuilt
    /// binary is the one that runs); it resumes where it stopped.
    Restart {
        /// The handler's name, as `status` shows it.
        name: String,
    },
    /// Asks one handler to reopen its output (SIGUSR2): the exporter closes its file and
    /// opens the path again, for logrotate; other handlers ignore it.
    Reopen {
        /// The handler's name, as `status` shows it.
        name: String,
    },
    /// Stops the pipeline: the reader stops, the handlers finish what was read.
    Stop,
    /// Reads the pipeline file again and restarts each handler whose block changed, with its
    /// new block (it resumes where it stopped); the pipeline's shape cannot change.
    Reload,
}

fn main() -> ExitCode {
    // Descriptors inherited without close-on-exec are not passed on to the pipeline.
    sf_processor::ring::close_on_exec_from(3);
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Ctl { pid, action }) => ctl(pid, action),
        Some(Command::Check {
            pipeline,
            path,
            socket,
            follow,
            ring_size,
            dead_letter,
        }) => check(&pipeline, path, socket, follow, ring_size, dead_letter),
        None => run(cli.run),
    }
}

/// `sf-launch check`: every check of a start, nothing started.
fn check(
    pipeline: &std::path::Path,
    path: Option<PathBuf>,
    socket: Option<PathBuf>,
    follow: bool,
    ring_size: usize,
    dead_letter: PathBuf,
) -> ExitCode {
    logging::init(Some(LogLevel(log::LevelFilter::Warn)));
    // Without an input, check the pipeline as if it read a file that exists.
    let input = path.unwrap_or_else(|| pipeline.to_owned());
    let input = socket.is_none().then_some(input.as_path());
    match plan::Plan::new(
        pipeline,
        input,
        socket.as_deref(),
        follow,
        LogLevel(log::LevelFilter::Info),
        ring_size,
        dead_letter,
    ) {
        Ok(plan) => {
            log::logger().flush();
            let names: Vec<&str> = plan.handlers.iter().map(|h| h.label.as_str()).collect();
            println!(
                "{}: OK: {} handler{} ({})",
                pipeline.display(),
                names.len(),
                if names.len() == 1 { "" } else { "s" },
                names.join(", ")
            );
            ExitCode::SUCCESS
        }
        Err(problems) => {
            log::logger().flush();
            for p in &problems.0 {
                eprintln!("sf-launch: error: {p}");
            }
            ExitCode::from(RunStatus::CouldNotStart.code())
        }
    }
}

fn ctl(pid: Option<u32>, action: CtlAction) -> ExitCode {
    let request = match &action {
        CtlAction::Status { .. } => json!({"cmd": "status"}),
        CtlAction::Restart { name } => json!({"cmd": "restart", "name": name}),
        CtlAction::Reopen { name } => json!({"cmd": "reopen", "name": name}),
        CtlAction::Stop => json!({"cmd": "stop"}),
        CtlAction::Reload => json!({"cmd": "reload"}),
    };
    match control::call(pid, &request) {
        Ok(reply) => {
            match action {
                CtlAction::Status { json: true } => println!("{reply}"),
                CtlAction::Status { json: false } => print!("{}", control::status_table(&reply)),
                _ => {
                    if let Some(m) = reply["message"].as_str() {
                        println!("{m}");
                    }
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sf-launch ctl: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn parse_layout(name: &str) -> Result<String, String> {
    sf_reader::layout::find(name).map(|l| l.name.to_owned())
}

fn parse_max_message(bytes: &str) -> Result<usize, String> {
    let range = sf_reader::socket::MAX_MESSAGE_RANGE;
    match bytes.parse::<usize>() {
        Ok(n) if range.contains(&n) => Ok(n),
        Ok(n) => Err(format!(
            "{n} bytes is out of range ({} to {})",
            range.start(),
            range.end()
        )),
        Err(e) => Err(format!("not a number of bytes: {e}")),
    }
}

fn run(args: RunArgs) -> ExitCode {
    logging::init(Some(args.log));
    let Some(pipeline) = args.pipeline else {
        eprintln!("sf-launch: error: no pipeline file given");
        return ExitCode::from(RunStatus::CouldNotStart.code());
    };
    let mut reader_options = Vec::new();
    if let Some(layout) = &args.socket_layout {
        reader_options.extend(["--socket-layout".to_owned(), layout.clone()]);
    }
    if let Some(bytes) = args.max_message {
        reader_options.extend(["--max-message".to_owned(), bytes.to_string()]);
    }
    let plan = match plan::Plan::new(
        &pipeline,
        args.path.as_deref(),
        args.socket.as_deref(),
        args.follow,
        args.log,
        args.ring_size,
        args.dead_letter,
    ) {
        Ok(p) => p,
        Err(problems) => {
            log::logger().flush();
            for p in &problems.0 {
                eprintln!("sf-launch: error: {p}");
            }
            return ExitCode::from(RunStatus::CouldNotStart.code());
        }
    };
    let plan = plan::Plan {
        reader_options,
        ..plan
    };
    use std::io::IsTerminal as _;
    let options = supervise::RunOptions {
        progress_line: !args.quiet && std::io::stderr().is_terminal(),
        perf_log: args
            .perf_log
            .filter(|s| *s > 0)
            .map(std::time::Duration::from_secs),
    };
    let outcome = supervise::Supervisor::start(plan, options).and_then(supervise::Supervisor::run);
    log::logger().flush();
    match outcome {
        Ok(o) => {
            if let Some(line) = o.last_line() {
                eprintln!("sf-launch: {line}");
            }
            ExitCode::from(o.status().code())
        }
        Err(e) => {
            eprintln!("sf-launch: error: {e:#}");
            ExitCode::from(RunStatus::Failed.code())
        }
    }
}
