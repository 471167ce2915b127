//! The log format of every pipeline process, as the reference processor's logger writes it
//! (`sf-apis/go/logger`: Go's `log` with `Ldate | Ltime | Lshortfile` and a level prefix):
//!
//! ```text
//! INFO: 2026/11/30 08:30:00 printer.rs:52: ProcEvt ./server, 13823
//! ```
//!
//! Trace, debug, info and warning lines go to standard output, errors to standard error, as
//! in the reference. Lines are buffered and written whole, in writes of at most 4096 bytes
//! (`PIPE_BUF`), so lines of several processes sharing one pipe never interleave mid-line.
//! A buffered line waits at most [`FLUSH_DELAY`] (a background thread writes it, so a line
//! reaches a redirected standard output while the process runs, even if it then blocks);
//! call `log::logger().flush()` before exiting, and where order with other output matters.
//!
//! # Repeated errors
//!
//! An error that can repeat without bound (a garbage message on the socket, a handler failing
//! on every record) is logged with [`limited!`](crate::limited): one line per *kind* per
//! [`REPEAT_INTERVAL`], the next one saying how many were not logged meanwhile, and
//! [`repeat_summary`] at the end of the process gives the totals of every kind that was cut.

use std::collections::HashMap;
use std::io::Write;
use std::os::fd::AsFd as _;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Log, Metadata, Record};

/// The environment variable through which the launcher passes `--log` to its children.
pub const LOG_ENV: &str = "SF_LOG";

/// Largest write that a pipe delivers atomically (`PIPE_BUF` on Linux).
const ATOMIC_WRITE: usize = 4096;

/// Longest time a buffered log line waits before a background thread writes it.
pub const FLUSH_DELAY: Duration = Duration::from_millis(100);

/// Lines of one kind of repeated error ([`limited!`](crate::limited)) are at most one per
/// this interval.
pub const REPEAT_INTERVAL: Duration = Duration::from_secs(10);

/// A `--log` level as the reference spells it: `trace|debug|info|warn|error|quiet`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLevel(pub LevelFilter);

impl FromStr for LogLevel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let f = match s.to_ascii_lowercase().as_str() {
            "trace" => LevelFilter::Trace,
            "debug" => LevelFilter::Debug,
            "info" => LevelFilter::Info,
            "warn" | "warning" => LevelFilter::Warn,
            "error" => LevelFilter::Error,
            "quiet" | "off" => LevelFilter::Off,
            other => {
                return Err(format!(
                    "unknown log level {other:?}: expected one of trace, debug, info, warn, error, quiet"
                ));
            }
        };
        Ok(LogLevel(f))
    }
}

impl std::fmt::Display for LogLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self.0 {
            LevelFilter::Off => "quiet",
            LevelFilter::Error => "error",
            LevelFilter::Warn => "warn",
            LevelFilter::Info => "info",
            LevelFilter::Debug => "debug",
            LevelFilter::Trace => "trace",
        };
        f.write_str(s)
    }
}

struct Buffers {
    out: Vec<u8>,
    /// Unix second of `stamp`.
    second: u64,
    stamp: String,
}

/// The reference-format logger. Install it with [`init`].
struct SfLogger {
    level: LevelFilter,
    buffers: Mutex<Buffers>,
}

/// Set by [`exit_on_closed_stdout`].
static EXIT_ON_CLOSED_STDOUT: AtomicBool = AtomicBool::new(false);

/// Makes this process end as SIGPIPE's default action would (killed by signal 13) when it
/// finds its standard output is a pipe nobody reads any more: on a failed log write, and
/// whenever [`check_closed_stdout`] is called. Handler processes ask for it (the SDK does), so
/// that `sf-launch … | head` ends like any Unix filter; the launcher and the reader do not
/// (for them a lost line is not worth dying for).
pub fn exit_on_closed_stdout() {
    EXIT_ON_CLOSED_STDOUT.store(true, Ordering::Relaxed);
}

/// Whether standard output is a pipe or socket whose reading end is closed: `poll` reports
/// `POLLERR` on the writing end of such a pipe (`POLLHUP` for a socket). A terminal, a file
/// or /dev/null never is. One `poll` system call, no wait.
pub fn stdout_closed() -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let stdout = std::io::stdout();
    let mut fds = [PollFd::new(stdout.as_fd(), PollFlags::empty())];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
        && fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLERR | PollFlags::POLLHUP))
}

/// After a failed write (a handler's error, say): if [`exit_on_closed_stdout`] was asked for
/// and standard output is closed, ends the process by SIGPIPE. Returns otherwise.
pub fn check_closed_stdout() {
    if EXIT_ON_CLOSED_STDOUT.load(Ordering::Relaxed) && stdout_closed() {
        let _ = signal_hook::low_level::emulate_default_handler(signal_hook::consts::SIGPIPE);
    }
}

/// Log writes to standard output that failed (a full disk, `>/dev/full`), and the first error.
static STDOUT_ERRORS: Tally = Tally::new();

/// A count of failed writes and the first one's text.
struct Tally(Mutex<(u64, String)>);

impl Tally {
    const fn new() -> Self {
        Tally(Mutex::new((0, String::new())))
    }

    fn add(&self, first: impl FnOnce() -> String) {
        if let Ok(mut t) = self.0.lock() {
            t.0 += 1;
            if t.1.is_empty() {
                t.1 = first();
            }
        }
    }

    fn get(&self) -> Option<(u64, String)> {
        let t = self.0.lock().ok()?;
        (t.0 > 0).then(|| t.clone())
    }
}

/// How many log writes to standard output failed, with the first error's text (`No space
/// left on device (os error 28)`); `None` when every write succeeded. A process's exit status
/// should say so: its output is incomplete.
pub fn stdout_errors() -> Option<(u64, String)> {
    STDOUT_ERRORS.get()
}

/// Failed writes of a handler's own output (a file, or stdout through its own buffer), and
/// the first error.
static OUTPUT_ERRORS: Tally = Tally::new();

/// Logs a failed write of a handler's own output (`what`: where it writes, e.g. `standard
/// output` or a file name) and counts it, so that the process's exit status says its output
/// is incomplete (see [`output_errors`]). For writes that do not go through a handler method
/// (whose errors are counted anyway), such as a final flush in `cleanup()`.
pub fn output_error(what: &str, e: &dyn std::fmt::Display) {
    log::error!("{what}: {e}");
    OUTPUT_ERRORS.add(|| format!("{what}: {e}"));
}

/// How many failed writes [`output_error`] counted, with the first one; `None` when none.
pub fn output_errors() -> Option<(u64, String)> {
    OUTPUT_ERRORS.get()
}

/// Everything that makes a handler process's output incomplete, as one phrase for its final
/// error line (`2 handler errors and 1 failed writes to standard output (first: …)`), or
/// `None`: handler errors (`handler_errors`), failed log writes to standard output
/// ([`stdout_errors`]) and failed output writes ([`output_errors`]).
pub fn output_problems(handler_errors: u64) -> Option<String> {
    let mut problems = Vec::new();
    if handler_errors > 0 {
        problems.push(format!("{handler_errors} handler errors"));
    }
    if let Some((n, first)) = stdout_errors() {
        problems.push(format!(
            "{n} failed writes to standard output (first: {first})"
        ));
    }
    if let Some((n, first)) = output_errors() {
        problems.push(format!("{n} failed output writes (first: {first})"));
    }
    (!problems.is_empty()).then(|| problems.join(" and "))
}

/// Writes `bytes` (whole lines: a table, a report) to standard output in one write, after the
/// log lines buffered so far, so that they keep their order; a failure counts in
/// [`stdout_errors`] as a log line's would.
pub fn print(bytes: &[u8]) {
    log::logger().flush();
    write_stdout(bytes);
}

fn write_stdout(bytes: &[u8]) {
    // One write per call: whole lines, at most ATOMIC_WRITE bytes unless a single line is
    // longer. Unless asked to die (handlers), a closed stdout loses the line.
    if let Err(e) = std::io::stdout().lock().write_all(bytes) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            check_closed_stdout();
        }
        STDOUT_ERRORS.add(|| e.to_string());
    }
}

impl SfLogger {
    fn stamp(b: &mut Buffers) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if now != b.second || b.stamp.is_empty() {
            b.second = now;
            b.stamp = jiff::Zoned::now().strftime("%Y/%m/%d %H:%M:%S").to_string();
        }
    }
}

impl Log for SfLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        // Libraries' debug chatter (apache-avro's) is not ours to show.
        metadata.level() <= self.level
            && (metadata.level() <= Level::Info || !metadata.target().starts_with("apache_avro"))
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let prefix = match record.level() {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        };
        let file = record
            .file()
            .map(|f| f.rsplit('/').next().unwrap_or(f))
            .unwrap_or("?");
        let line = record.line().unwrap_or(0);
        let Ok(mut b) = self.buffers.lock() else {
            return;
        };
        SfLogger::stamp(&mut b);
        let text = format!("{prefix}: {} {file}:{line}: {}\n", b.stamp, record.args());
        if record.level() == Level::Error {
            // Keep order with what was logged before on stdout.
            write_stdout(&b.out);
            b.out.clear();
            let _ = std::io::stderr().lock().write_all(text.as_bytes());
            return;
        }
        if b.out.len() + text.len() > ATOMIC_WRITE {
            write_stdout(&b.out);
            b.out.clear();
        }
        let was_empty = b.out.is_empty();
        b.out.extend_from_slice(text.as_bytes());
        drop(b);
        if was_empty {
            FLUSHER.wake();
        }
    }

    fn flush(&self) {
        if let Ok(mut b) = self.buffers.lock()
            && !b.out.is_empty()
        {
            write_stdout(&b.out);
            b.out.clear();
        }
    }
}

/// Installs the reference-format logger at `level`; with `None`, the level comes from
/// [`LOG_ENV`] (default `info`). Does nothing if a logger is already installed.
pub fn init(level: Option<LogLevel>) {
    let level = level
        .or_else(|| std::env::var(LOG_ENV).ok().and_then(|v| v.parse().ok()))
        .unwrap_or(LogLevel(LevelFilter::Info));
    let logger = SfLogger {
        level: level.0,
        buffers: Mutex::new(Buffers {
            out: Vec::with_capacity(ATOMIC_WRITE),
            second: 0,
            stamp: String::new(),
        }),
    };
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(level.0);
        FLUSHER.start();
    }
}

/// The background writer of buffered lines: sleeps until a line is buffered into an empty
/// buffer, waits [`FLUSH_DELAY`] (more lines join the same write), then flushes. An idle
/// process never wakes it.
struct Flusher {
    pending: Mutex<bool>,
    wake: Condvar,
}

static FLUSHER: Flusher = Flusher {
    pending: Mutex::new(false),
    wake: Condvar::new(),
};

impl Flusher {
    fn start(&'static self) {
        let spawned = std::thread::Builder::new()
            .name("log-flush".into())
            .spawn(move || {
                loop {
                    let Ok(mut pending) = self.pending.lock() else {
                        return;
                    };
                    while !*pending {
                        pending = match self.wake.wait(pending) {
                            Ok(p) => p,
                            Err(_) => return,
                        };
                    }
                    *pending = false;
                    drop(pending);
                    std::thread::sleep(FLUSH_DELAY);
                    log::logger().flush();
                }
            });
        // Without the thread, lines still go out when the buffer fills and at each flush.
        let _ = spawned;
    }

    fn wake(&self) {
        if let Ok(mut pending) = self.pending.lock() {
            *pending = true;
            self.wake.notify_one();
        }
    }
}

/// One kind of repeated error: counts since its last line and in all.
#[derive(Debug)]
struct Repeat {
    last_line: Instant,
    /// Not logged since the last line.
    cut_since: u64,
    total: u64,
    cut_total: u64,
}

static REPEATS: Mutex<Option<HashMap<&'static str, Repeat>>> = Mutex::new(None);

/// The gate of [`limited!`](crate::limited): whether an error of `kind` is logged now, and
/// the end of its line. `Some("")` for the first of its kind, and for the first after
/// [`REPEAT_INTERVAL`] when none was cut meanwhile; `Some(" (N more like this in the last
/// 10 s were not logged)")` after cuts; `None`: not logged (counted for [`repeat_summary`]).
#[doc(hidden)]
pub fn repeat_gate(kind: &'static str) -> Option<String> {
    repeat_gate_at(kind, Instant::now(), REPEAT_INTERVAL)
}

fn repeat_gate_at(kind: &'static str, now: Instant, interval: Duration) -> Option<String> {
    let mut repeats = REPEATS.lock().ok()?;
    let map = repeats.get_or_insert_with(HashMap::new);
    let Some(r) = map.get_mut(kind) else {
        map.insert(
            kind,
            Repeat {
                last_line: now,
                cut_since: 0,
                total: 1,
                cut_total: 0,
            },
        );
        return Some(String::new());
    };
    r.total += 1;
    if now.duration_since(r.last_line) < interval {
        r.cut_since += 1;
        r.cut_total += 1;
        return None;
    }
    let cut = std::mem::take(&mut r.cut_since);
    let secs = now.duration_since(r.last_line).as_secs();
    r.last_line = now;
    Some(if cut == 0 {
        String::new()
    } else {
        format!(" ({cut} more like this in the last {secs} s were not logged)",)
    })
}

/// The totals of every kind of repeated error of which some lines were not logged, one
/// phrase each, sorted by kind: `not a SysFlow datum: 20000 in all, 19998 not logged`.
pub fn repeat_totals() -> Vec<String> {
    let Ok(repeats) = REPEATS.lock() else {
        return Vec::new();
    };
    let mut out: Vec<String> = repeats
        .iter()
        .flatten()
        .filter(|(_, r)| r.cut_total > 0)
        .map(|(kind, r)| format!("{kind}: {} in all, {} not logged", r.total, r.cut_total))
        .collect();
    out.sort();
    out
}

/// Logs, as a warning, the totals of [`repeat_totals`] (nothing when no line was cut): the
/// end of a process that used [`limited!`](crate::limited).
pub fn repeat_summary() {
    let totals = repeat_totals();
    if !totals.is_empty() {
        log::warn!("repeated errors: {}", totals.join("; "));
    }
}

/// Logs like `log::error!` (or `warn`, ...), at most one line per `kind` per
/// [`REPEAT_INTERVAL`](crate::logging::REPEAT_INTERVAL); the first line after some were cut
/// says how many; [`repeat_summary`](crate::logging::repeat_summary) gives the totals.
/// `kind` is a `&'static str` naming the error, e.g. `"socket: not a SysFlow datum"`.
///
/// ```
/// sf_processor::limited!(error, "example: bad thing", "bad thing number {}", 1);
/// ```
#[macro_export]
macro_rules! limited {
    ($level:ident, $kind:expr, $($arg:tt)+) => {
        if let Some(tail) = $crate::logging::repeat_gate($kind) {
            $crate::logging::__log::$level!("{}{}", format_args!($($arg)+), tail);
        }
    };
}

#[doc(hidden)]
pub use log as __log;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_errors_are_one_line_per_interval_with_the_count_cut() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let gate = |at: u64| repeat_gate_at("test: repeated", t0 + s * at as u32, s * 10);
        assert_eq!(gate(0), Some(String::new()));
        assert_eq!(gate(1), None);
        assert_eq!(gate(9), None);
        assert_eq!(
            gate(10).as_deref(),
            Some(" (2 more like this in the last 10 s were not logged)")
        );
        assert_eq!(gate(25), Some(String::new()));
        assert_eq!(
            repeat_totals()
                .into_iter()
                .filter(|t| t.starts_with("test: repeated"))
                .collect::<Vec<_>>(),
            ["test: repeated: 5 in all, 2 not logged"]
        );
    }

    #[test]
    fn levels_parse_like_the_reference_flag() {
        assert_eq!("quiet".parse::<LogLevel>().unwrap().0, LevelFilter::Off);
        assert_eq!("TRACE".parse::<LogLevel>().unwrap().0, LevelFilter::Trace);
        let err = "loud".parse::<LogLevel>().unwrap_err();
        assert_eq!(
            err,
            "unknown log level \"loud\": expected one of trace, debug, info, warn, error, quiet"
        );
        assert_eq!(LogLevel(LevelFilter::Warn).to_string(), "warn");
    }
}
