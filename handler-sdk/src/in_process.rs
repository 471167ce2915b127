//! In-process mode (cargo feature `in-process`): the handler called in the reader's own
//! process, on a trace file or directory, without `sf-launch`, rings or serialization.
//!
//! With the feature on, every handler binary built on [`run`](crate::run) accepts
//!
//! ```text
//! sf-handler-NAME --in-process TRACE
//! ```
//!
//! and runs the same code as under `sf-launch` (same drivers, same entity tables and context,
//! same `init`, `idle`-free handler calls, `cleanup`), reading its configuration from the same
//! environment (`SF_HANDLER_CONFIG`, `<HANDLER>_<KEY>` overrides; the name defaults to the
//! binary's, `sf-handler-NAME`). It is the baseline the pipeline is measured against
//! (`bench/run.sh`). At the end one line goes to standard error:
//! `in-process: 23 records, 1 handler(s), 0.004 s, 5750 records/s`.
//!
//! A handler that can be built more than once can run several copies in one process, each
//! with its own entity tables, every record going to each in turn: see [`run_in_process`]
//! and the `noop` example of this crate (`--copies N`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use sf_processor::handler::{Handler, HandlerConfig};
use sf_processor::logging;
use sf_reader::{driver, in_process};

/// The command line of in-process mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InProcessArgs {
    /// The trace file or directory.
    pub path: PathBuf,
    /// Copies of the handler to call, each with its own tables (default 1).
    pub copies: usize,
}

/// The usage line.
pub const USAGE: &str = "usage: sf-handler-NAME --in-process [--copies N] TRACE";

impl InProcessArgs {
    /// The in-process command line of this process: `None` when its first argument is not
    /// `--in-process` (a pipeline handler), else the arguments or what is wrong with them.
    pub fn from_env() -> Option<Result<InProcessArgs, String>> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        (args.first().map(String::as_str) == Some("--in-process")).then(|| Self::parse(&args[1..]))
    }

    /// Parses the arguments after `--in-process`.
    ///
    /// # Errors
    /// A message saying which argument is wrong.
    pub fn parse(args: &[String]) -> Result<InProcessArgs, String> {
        let mut copies = 1;
        let mut path = None;
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--copies" => {
                    copies = it
                        .next()
                        .and_then(|n| n.parse().ok())
                        .filter(|n| *n > 0)
                        .ok_or("--copies needs a number of at least 1")?;
                }
                other if other.starts_with("--") => {
                    return Err(format!("unknown option {other}"));
                }
                other if path.is_none() => path = Some(PathBuf::from(other)),
                other => return Err(format!("unexpected argument {other:?}")),
            }
        }
        Ok(InProcessArgs {
            path: path.ok_or("no TRACE given")?,
            copies,
        })
    }
}

/// The handler's configuration from the environment, as under `sf-launch`; the name defaults
/// to the binary's (`sf-handler-stats` → `stats`).
fn config() -> Result<HandlerConfig, String> {
    let mut config = crate::runtime::env_config().map_err(|e| e.to_string())?;
    if config.name.is_empty() {
        let exe = std::env::args().next().unwrap_or_default();
        let base = exe.rsplit('/').next().unwrap_or_default();
        config.name = base.strip_prefix("sf-handler-").unwrap_or(base).to_owned();
        // The `<HANDLER>_<KEY>` overrides depend on the name: apply them now it is known.
        for (key, var) in crate::config::apply_env_overrides(&mut config, std::env::vars()) {
            config.overrides.insert(key, var);
        }
    }
    Ok(config)
}

/// The exit status when some input file gave no record at all (not a trace, or every
/// record of it failed), as `sf-launch`'s.
pub const EXIT_FILE_WITHOUT_RECORDS: u8 = sf_processor::exit::RunStatus::InputError.code();

/// Runs `handlers` (not initialised yet: `init` is called on each with the configuration)
/// in this process over `args.path`, then their `cleanup()`, and returns the exit status: 0
/// when the input was read (bad input is reported and skipped, as by the reader), 4 when it
/// was but with handler errors or lost output (as [`run`](crate::run)), 3 when it was but
/// some file gave no record ([`EXIT_FILE_WITHOUT_RECORDS`], as `sf-launch`), 2 on a usage,
/// configuration or `init` error. Sets up logging as [`run`](crate::run) does; a closed
/// standard output ends the process as by SIGPIPE.
pub fn run_in_process<H: Handler>(args: &InProcessArgs, mut handlers: Vec<H>) -> ExitCode {
    logging::init(None);
    // As under the launcher: `| head` ends it as by SIGPIPE, lost output fails it.
    logging::exit_on_closed_stdout();
    let status = match run_handlers(args, &mut handlers) {
        Ok((errors, files_without_records)) => {
            log::logger().flush();
            match logging::output_problems(errors) {
                None if files_without_records > 0 => ExitCode::from(EXIT_FILE_WITHOUT_RECORDS),
                None => ExitCode::SUCCESS,
                Some(problems) => {
                    log::error!("finished with {problems}");
                    ExitCode::from(sf_processor::handler::EXIT_FINISHED_WITH_ERRORS)
                }
            }
        }
        Err(e) => {
            log::error!("{e}");
            ExitCode::from(2)
        }
    };
    log::logger().flush();
    status
}

/// Returns the handlers' errors, summed, and the number of input files that gave no record.
fn run_handlers<H: Handler>(
    args: &InProcessArgs,
    handlers: &mut Vec<H>,
) -> Result<(u64, usize), String> {
    let config = config()?;
    for h in handlers.iter_mut() {
        h.init(&config)
            .map_err(|e| format!("{}: init failed: {e}", config.name))?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&stop)) {
        log::warn!("{}: cannot handle SIGTERM: {e}", config.name);
    }
    let files = driver::input_files(&args.path)?;
    let count = handlers.len();
    let start = Instant::now();
    let run = in_process::run(&files, std::mem::take(handlers), &stop);
    let seconds = start.elapsed().as_secs_f64();
    log::debug!("{}", driver::describe(&run.summary));
    if let Some(warning) = driver::input_errors(&run.summary) {
        log::warn!("{warning}");
    }
    log::logger().flush();
    let records = run.summary.total();
    eprintln!(
        "in-process: {records} records, {count} handler(s), {seconds:.3} s, {:.0} records/s",
        records as f64 / seconds.max(1e-9)
    );
    Ok((
        run.handlers.iter().map(|(_, s)| s.handler_errors).sum(),
        run.summary.files_without_records(),
    ))
}

/// [`run`](crate::run)'s in-process branch: one copy of `handler`.
pub(crate) fn run_one<H: Handler>(args: Result<InProcessArgs, String>, handler: H) -> ExitCode {
    crate::status::catch_reopen_signal();
    match args {
        Ok(args) if args.copies == 1 => run_in_process(&args, vec![handler]),
        Ok(_) => {
            eprintln!("--copies: this handler binary runs one copy in process");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<InProcessArgs, String> {
        InProcessArgs::parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn the_command_line_is_parsed_with_defaults() {
        assert_eq!(
            parse(&["t.sf"]),
            Ok(InProcessArgs {
                path: "t.sf".into(),
                copies: 1
            })
        );
        let args = parse(&["--copies", "4", "dir"]).expect("ok");
        assert_eq!(args.copies, 4);
        assert_eq!(parse(&[]), Err("no TRACE given".into()));
        assert_eq!(
            parse(&["--copies", "0", "t"]),
            Err("--copies needs a number of at least 1".into())
        );
        // The decoder is no choice any more: ours, with schema resolution.
        assert_eq!(
            parse(&["--decoder", "avro", "t"]),
            Err("unknown option --decoder".into())
        );
        assert_eq!(parse(&["--x", "t"]), Err("unknown option --x".into()));
    }
}
