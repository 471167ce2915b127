//! The handler process's main loop: attach to the ring, rebuild the entity tables from the
//! journal when resuming, decode frames, dispatch, report progress.

use std::io::Write;
use std::os::fd::RawFd;
use std::os::unix::fs::OpenOptionsExt as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sf_processor::chain::Emission;
use sf_processor::codec;
use sf_processor::handler::{
    CHECK_CONFIG_MARKER, DispatchStats, Dispatcher, EXIT_FINISHED_WITH_ERRORS, Handler,
    HandlerConfig, KeyProblem, env,
};
use sf_processor::journal::JournalReader;
use sf_processor::logging;
use sf_processor::publish::{Overflow, Publisher, Target};
use sf_processor::ring::{Consumer, Next, Producer, RingSegment};
use sf_processor::snapshot::SnapshotStore;
use sf_processor::tables::MissingCounts;

/// Environment variable holding the number of the inherited ring file descriptor.
pub const ENV_RING_FD: &str = env::RING_FD;
/// Environment variable holding the number of the inherited entity-journal descriptor.
pub const ENV_JOURNAL_FD: &str = env::JOURNAL_FD;
/// Environment variable holding the number of the inherited snapshot-store descriptor.
pub const ENV_SNAPSHOT_FD: &str = env::SNAPSHOT_FD;
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
    /// A commit failed and the block says `"commit_failure": "fail"`.
    OutputFailed(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Environment(m) => write!(f, "{m}"),
            RunError::Init(m) => write!(f, "init failed: {m}"),
            RunError::Attach(m) => write!(f, "cannot attach to the pipeline: {m}"),
            RunError::Aborted => write!(f, "the pipeline was aborted before the end of the input"),
            RunError::OutputFailed(m) => write!(
                f,
                "its output failed ({m}) and its block says \"commit_failure\": \"fail\": stopping; what was not acknowledged was not written"
            ),
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
    // The bytes the launcher looks for in the binary before asking `--check-config`.
    std::hint::black_box(CHECK_CONFIG_MARKER);
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == "--check-config")
    {
        return check_config::<H>();
    }
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
                RunError::OutputFailed(_) => {
                    ExitCode::from(sf_processor::exit::HANDLER_OUTPUT_FAILED)
                }
                _ => ExitCode::from(2),
            }
        }
    };
    log::logger().flush();
    status
}

/// `sf-handler-X --check-config`, run by the launcher before anything starts: checks the
/// block (in the environment, as for a start) against the handler's
/// [`Handler::config_keys`] and the SDK's own keys, without attaching or calling `init`, and
/// prints one JSON line: `{"sdk": 1, "keys": [...] or null, "errors": [{"key": ..., "message":
/// ...}], "warnings": [...]}`. Exit status 0 when it could answer.
fn check_config<H: Handler>() -> ExitCode {
    let reply = match env_config() {
        Err(e) => serde_json::json!({"sdk": 1, "keys": null,
            "errors": [KeyProblem { key: None, message: e.to_string() }], "warnings": []}),
        Ok(config) => {
            let (keys, errors, warnings) = check_block::<H>(&config);
            serde_json::json!({"sdk": 1, "keys": keys, "errors": errors, "warnings": warnings})
        }
    };
    println!("{reply}");
    ExitCode::SUCCESS
}

/// The declared keys (`None`: not declared), the errors and the warnings of `config`: the
/// SDK's keys' values, then the handler's keys.
fn check_block<H: Handler>(
    config: &HandlerConfig,
) -> (Option<Vec<&'static str>>, Vec<KeyProblem>, Vec<String>) {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    if let Err(e) = CommitPolicy::from_config(config, 0) {
        errors.push(e);
    }
    let declared = H::config_keys();
    if let Some(keys) = &declared {
        match keys.check(config) {
            Ok(w) => warnings = w,
            Err(e) => errors.extend(e),
        }
    }
    (declared.map(|k| k.keys().to_vec()), errors, warnings)
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
        .mode(0o600)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
    if let Err(e) = written {
        log::error!("{name}: cannot write the dead-letter file {path}: {e}");
    }
}

/// When the SDK commits (the block keys `commit_records`, `commit_ms`; the ring's size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CommitPolicy {
    /// Records handled since the last commit that trigger one (`None`: the default, which
    /// depends on whether the handler keeps state).
    records: Option<u64>,
    /// Time since the last commit after which records handled trigger one.
    interval: Duration,
    /// The ring's capacity in bytes: unacknowledged bytes past half of it (7/8 for a
    /// stateful handler) trigger a commit, so the producer has room while the handler
    /// keeps up with it.
    capacity: u64,
    /// The block's `"overflow": "drop"`: the producer drops what does not fit, so held
    /// frames must not eat the ring (a commit once a quarter of it waits).
    drop: bool,
    /// The block's `"commit_failure": "fail"`: a failed commit stops the process (exit
    /// status 5) instead of being retried.
    fail: bool,
}

/// Default of the block key `commit_records` for a stateless handler: the duplicates a crash
/// leaves are bounded by this batch. A stateful handler, whose every commit costs a
/// snapshot of its state, commits by default when 7/8 of its ring wait for an
/// acknowledgement, after `commit_ms`, and when its input pauses.
pub const DEFAULT_COMMIT_RECORDS: u64 = 1_000;
/// Default of the block key `commit_ms`.
pub const DEFAULT_COMMIT_MS: u64 = 1_000;
/// Final commits tried at the end of the input before the output counts as lost.
const FINAL_COMMIT_TRIES: u32 = 5;
/// First delay before a failed commit is tried again (doubled up to [`MAX_RETRY`]).
const FIRST_RETRY: Duration = Duration::from_millis(50);
const MAX_RETRY: Duration = Duration::from_secs(5);
/// Commit failures are logged at most this often (the first at once).
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(10);

/// A [`Handler::commit`] error that says the destination is unreachable for now (a syslog
/// server down, a Kafka cluster not acknowledging), as opposed to output that failed: the
/// SDK retries such a commit with its backoff for as long as it takes, at the end of the
/// input too (where another error counts as lost output after 5 tries), until the commit
/// succeeds or the process is asked to stop (SIGTERM: `sf-launch ctl restart`, a second
/// Ctrl-C). The pipeline meanwhile waits (its ring fills), so nothing is lost.
///
/// ```
/// # use handler_sdk::DestinationDown;
/// let e: Box<dyn std::error::Error + Send + Sync> =
///     DestinationDown("syslog tcp localhost:514: Connection refused".into()).into();
/// assert!(e.is::<DestinationDown>());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationDown(pub String);

impl std::fmt::Display for DestinationDown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DestinationDown {}

impl CommitPolicy {
    /// The SDK's keys of `config`, with their ranges: `commit_records` 1 to 10^9,
    /// `commit_ms` 1 to 3,600,000, `commit_failure` `retry` or `fail`.
    fn from_config(config: &HandlerConfig, ring_capacity: usize) -> Result<Self, KeyProblem> {
        #[derive(serde::Deserialize)]
        struct Keys {
            #[serde(default)]
            commit_records: Option<u64>,
            #[serde(default)]
            commit_ms: Option<u64>,
            #[serde(default)]
            commit_failure: Option<String>,
            #[serde(default)]
            overflow: Option<serde_json::Value>,
        }
        let keys: Keys = config.parse().map_err(|e| KeyProblem::from(&e))?;
        let range = |key: &str, v: Option<u64>, max: u64, unit: &str| match v {
            Some(n) if !(1..=max).contains(&n) => Err(KeyProblem::at(
                key,
                format!("{n} is out of range (1 to {max}{unit})"),
            )),
            _ => Ok(v),
        };
        let records = range("commit_records", keys.commit_records, 1_000_000_000, "")?;
        let ms = range("commit_ms", keys.commit_ms, 3_600_000, " ms")?;
        let fail = match keys.commit_failure.as_deref() {
            None | Some("retry") => false,
            Some("fail") => true,
            Some(other) => {
                return Err(KeyProblem::at(
                    "commit_failure",
                    format!("expected \"retry\" or \"fail\", found {other:?}"),
                ));
            }
        };
        Ok(CommitPolicy {
            records,
            interval: Duration::from_millis(ms.unwrap_or(DEFAULT_COMMIT_MS)),
            capacity: ring_capacity as u64,
            drop: keys.overflow.as_ref().and_then(serde_json::Value::as_str) == Some("drop"),
            fail,
        })
    }
}

/// What the commits of one process cost (logged at `debug` when it ends; `bench/run.sh`
/// reads it): CPU time of the thread (not wall time: a descheduled process is not
/// charged).
#[derive(Debug, Default)]
struct CommitCost {
    commits: u64,
    failures: u64,
    snapshots: u64,
    snapshot_bytes: u64,
    cpu: Duration,
}

/// CPU time of this thread so far.
fn thread_cpu() -> Duration {
    use nix::time::{ClockId, clock_gettime};
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).map_or(Duration::ZERO, Duration::from)
}

/// The commits of one handler process: when they are due, retries, snapshots.
struct Committer {
    name: String,
    policy: CommitPolicy,
    /// Records handled (dispatched or skipped) since the last acknowledgement.
    pending: u64,
    last_commit: Instant,
    /// After a failure: not before this, and the next delay.
    retry_at: Option<Instant>,
    retry_delay: Duration,
    failures_in_a_row: u64,
    logged_at: Option<Instant>,
    /// The last commit failed with [`DestinationDown`].
    destination_down: bool,
    /// Learnt from the first `snapshot` call (or a restored snapshot).
    stateful: Option<bool>,
    /// Sequence number the last snapshot written or restored covers.
    snapshot_seq: u64,
    store: Option<SnapshotStore>,
    warned_no_store: bool,
    cost: CommitCost,
    /// A commit failed with `"commit_failure": "fail"`: the process stops.
    fatal: Option<String>,
}

impl Committer {
    fn new(name: &str, policy: CommitPolicy, store: Option<SnapshotStore>) -> Self {
        Committer {
            name: name.to_owned(),
            policy,
            pending: 0,
            last_commit: Instant::now(),
            retry_at: None,
            retry_delay: FIRST_RETRY,
            failures_in_a_row: 0,
            logged_at: None,
            destination_down: false,
            stateful: None,
            snapshot_seq: 0,
            store,
            warned_no_store: false,
            cost: CommitCost::default(),
            fatal: None,
        }
    }

    /// Gives the handler the snapshot its previous process left, before the first record;
    /// returns the sequence number it covers (0: none). Counts the state as lost when a
    /// stateful handler resumes after acknowledged records without one.
    fn restore<H: Handler>(&mut self, handler: &mut H, acknowledged: u64) -> u64 {
        let name = self.name.clone();
        let Some(store) = self.store.as_mut() else {
            return 0;
        };
        let why = match store.latest() {
            Ok(Some(snap)) => match handler.restore(&snap.data) {
                Ok(()) => {
                    log::debug!(
                        "{name}: state restored from its snapshot of record {} ({} bytes)",
                        snap.seq,
                        snap.data.len()
                    );
                    self.stateful = Some(true);
                    self.snapshot_seq = snap.seq;
                    return snap.seq;
                }
                Err(e) => format!(
                    "its snapshot of record {} cannot be restored: {e}",
                    snap.seq
                ),
            },
            Ok(None) => "no snapshot of its state was found".to_owned(),
            Err(e) => format!("its snapshot cannot be read: {e}"),
        };
        // Lost only if records were acknowledged and the handler keeps state at all.
        if acknowledged > 0 && matches!(handler.snapshot(), Ok(Some(_))) {
            log::error!(
                "{name}: handler state lost: {why}; the records acknowledged before this restart are not in its results"
            );
            if let Err(e) = self
                .store
                .as_mut()
                .map_or(Ok(()), SnapshotStore::mark_state_lost)
            {
                log::error!("{name}: {e}");
            }
        }
        0
    }

    /// Whether to commit on catching up with the producer: a stateless handler always (its
    /// output goes out while the input pauses, at the cost of a flush), a stateful one only
    /// when a commit is due anyway (each snapshot costs in proportion to its state); when
    /// the pause lasts (the next idle tick) both do.
    fn due_when_idle(&self, consumer: &Consumer) -> bool {
        self.stateful != Some(true) || self.due_with(consumer, true)
    }

    /// Whether a commit is due after a record (the clock is read every 256 records).
    fn due(&self, consumer: &Consumer) -> bool {
        self.due_with(consumer, self.pending.is_multiple_of(256))
    }

    fn due_with(&self, consumer: &Consumer, read_clock: bool) -> bool {
        if self.retry_at.is_some_and(|at| Instant::now() < at) {
            return false;
        }
        let stateful = self.stateful == Some(true);
        let records = match self.policy.records {
            Some(n) => n,
            None if stateful => u64::MAX,
            None => DEFAULT_COMMIT_RECORDS,
        };
        let bytes = if self.policy.drop {
            self.policy.capacity / 4
        } else if stateful {
            self.policy.capacity / 8 * 7
        } else {
            self.policy.capacity / 2
        };
        self.pending >= records
            || consumer.unacknowledged() >= bytes
            || (read_clock && self.last_commit.elapsed() >= self.policy.interval)
    }

    /// Makes the output of every record handled so far durable (`Handler::commit`, the log,
    /// the output rings, the snapshot of a stateful handler), then acknowledges them.
    /// `force`: even while a failed commit waits for its retry time.
    fn commit<H: Handler>(
        &mut self,
        dispatcher: &mut Dispatcher<H>,
        consumer: &mut Consumer,
        outputs: &mut Option<Publisher>,
        last_seq: u64,
        force: bool,
    ) -> Result<(), String> {
        if consumer.unacknowledged() == 0 && self.pending == 0 {
            return Ok(());
        }
        if !force && self.retry_at.is_some_and(|at| Instant::now() < at) {
            return Err("waiting to retry".into());
        }
        let started = thread_cpu();
        let result = self.make_durable(dispatcher, outputs, last_seq);
        match &result {
            Ok(()) => {
                consumer.commit();
                self.pending = 0;
                self.last_commit = Instant::now();
                self.retry_at = None;
                self.retry_delay = FIRST_RETRY;
                if self.failures_in_a_row > 0 {
                    log::info!(
                        "{}: commit succeeded after {} failures",
                        self.name,
                        self.failures_in_a_row
                    );
                }
                self.failures_in_a_row = 0;
                self.cost.commits += 1;
            }
            Err(e) if self.policy.fail => {
                self.cost.failures += 1;
                self.fatal = Some(e.clone());
            }
            Err(e) => {
                self.cost.failures += 1;
                self.failures_in_a_row += 1;
                self.retry_at = Some(Instant::now() + self.retry_delay);
                self.retry_delay = (self.retry_delay * 2).min(MAX_RETRY);
                // A handler writing to a closed stdout (`| head`) ends here, as a filter does.
                logging::check_closed_stdout();
                if self
                    .logged_at
                    .is_none_or(|t| t.elapsed() >= FAILURE_LOG_EVERY)
                {
                    self.logged_at = Some(Instant::now());
                    log::error!(
                        "{}: commit failed: {e} ({} in a row; {} records not acknowledged, retrying in {:?})",
                        self.name,
                        self.failures_in_a_row,
                        self.pending,
                        self.retry_delay
                    );
                }
            }
        }
        self.cost.cpu += thread_cpu().saturating_sub(started);
        result
    }

    fn make_durable<H: Handler>(
        &mut self,
        dispatcher: &mut Dispatcher<H>,
        outputs: &mut Option<Publisher>,
        last_seq: u64,
    ) -> Result<(), String> {
        let committed = dispatcher.handler_mut().commit();
        self.destination_down = committed.as_ref().is_err_and(|e| e.is::<DestinationDown>());
        committed.map_err(|e| e.to_string())?;
        // The handler's log lines are output too (the printer's are all it has).
        log::logger().flush();
        // What was emitted is published before the records it came from are acknowledged.
        if let Some(out) = outputs {
            out.flush();
        }
        if self.stateful == Some(false) || last_seq <= self.snapshot_seq {
            return Ok(());
        }
        match dispatcher
            .handler_mut()
            .snapshot()
            .map_err(|e| format!("snapshot: {e}"))?
        {
            None if self.stateful == Some(true) => {
                Err("snapshot() returned None from a handler that keeps state".into())
            }
            None => {
                self.stateful = Some(false);
                Ok(())
            }
            Some(data) => {
                self.stateful = Some(true);
                let Some(store) = self.store.as_mut() else {
                    if !self.warned_no_store {
                        self.warned_no_store = true;
                        log::warn!(
                            "{}: no snapshot store (not started by sf-launch?): its state is not kept across restarts",
                            self.name
                        );
                    }
                    return Ok(());
                };
                // Before the acknowledgement: a process killed between the two resumes at
                // the old position and skips the records the snapshot covers.
                store.write(last_seq, &data).map_err(|e| e.to_string())?;
                self.snapshot_seq = last_seq;
                self.cost.snapshots += 1;
                self.cost.snapshot_bytes += data.len() as u64;
                Ok(())
            }
        }
    }

    /// The commit at the end: tried a few times, with pauses; while the handler says its
    /// destination is down ([`DestinationDown`]), until it succeeds or `shutdown` is set.
    fn commit_finally<H: Handler>(
        &mut self,
        dispatcher: &mut Dispatcher<H>,
        consumer: &mut Consumer,
        outputs: &mut Option<Publisher>,
        last_seq: u64,
        shutdown: &AtomicBool,
    ) -> Result<(), String> {
        let mut delay = FIRST_RETRY;
        let mut tries = 0;
        loop {
            tries += 1;
            match self.commit(dispatcher, consumer, outputs, last_seq, true) {
                Ok(()) => return Ok(()),
                Err(e) if self.fatal.is_some() => return Err(e),
                // A destination that is down is waited for until the stop request.
                Err(e)
                    if tries >= FINAL_COMMIT_TRIES
                        && (!self.destination_down || shutdown.load(Ordering::Relaxed)) =>
                {
                    return Err(e);
                }
                Err(_) => {
                    // In slices, so that a stop request ends the wait at once.
                    let until = Instant::now() + delay;
                    while Instant::now() < until && !shutdown.load(Ordering::Relaxed) {
                        std::thread::sleep(
                            until
                                .saturating_duration_since(Instant::now())
                                .min(Duration::from_millis(50)),
                        );
                    }
                    delay = (delay * 2).min(MAX_RETRY);
                }
            }
        }
    }

    fn log_cost(&self) {
        let c = &self.cost;
        log::debug!(
            "{}: {} commits ({} failed), {} snapshots ({} bytes), {:.3} ms of CPU in commits",
            self.name,
            c.commits,
            c.failures,
            c.snapshots,
            c.snapshot_bytes,
            c.cpu.as_secs_f64() * 1000.0
        );
    }
}

/// The loop behind [`run`], with the logger left to the caller and a shutdown flag: when
/// `shutdown` becomes true the handler stops at the next record boundary, commits and
/// returns without calling `cleanup()` (the launcher's `ctl restart`: the next process goes
/// on, and calls it at the end).
///
/// **Delivery.** Records are acknowledged to the producer only after a commit
/// ([`Handler::commit`], the process's log lines, the output rings, and for a stateful
/// handler its [`Handler::snapshot`]), in batches: after `commit_records` records (default
/// [`DEFAULT_COMMIT_RECORDS`]) or `commit_ms` milliseconds (default [`DEFAULT_COMMIT_MS`])
/// (block keys), when the unacknowledged records fill half of the ring, when idle, and at
/// the end of the input, before `cleanup()`; a stateful handler by default only when 7/8 of
/// its ring wait, after `commit_ms`, and when its input pauses (each commit costs it a
/// snapshot). A handler
/// started after a crash resumes after the last acknowledged record, so it may see again
/// the records of one batch (at-least-once: [`Context::seq`](crate::Context::seq) tells them
/// apart), never fewer. Before that first record it rebuilds its entity tables from the
/// entity journal, so every record has the context it would have had without the crash;
/// a stateful handler first gets its latest snapshot ([`Handler::restore`]), and the records
/// that snapshot covers are not passed again.
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
    let snapshot_fd = env_fd(ENV_SNAPSHOT_FD)?;
    let config = env_config()?;
    let name = config.name.clone();
    // The launcher checked the block already (`--check-config`); a second line for a binary
    // it could not ask.
    let (_, errors, warnings) = check_block::<H>(&config);
    if !errors.is_empty() {
        let at = if config.location.is_empty() {
            String::new()
        } else {
            format!("{}.", config.location)
        };
        return Err(RunError::Init(
            errors
                .iter()
                .map(|e| format!("{at}{e}"))
                .collect::<Vec<_>>()
                .join("; "),
        ));
    }
    for w in warnings {
        log::debug!("{name}: {w}");
    }
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
    consumer.hold_acknowledgements();
    let policy = CommitPolicy::from_config(&config, consumer.capacity())
        .map_err(|e| RunError::Init(e.to_string()))?;
    let mut journal = match journal_fd {
        None => None,
        Some(raw) => {
            let fd = RingSegment::open_inherited(raw)
                .map_err(|e| attach(&e))?
                .into_fd();
            Some(JournalReader::attach(fd, codec::WIRE_VERSION).map_err(|e| attach(&e))?)
        }
    };
    let store = match snapshot_fd {
        None => None,
        Some(raw) => {
            let fd = RingSegment::open_inherited(raw)
                .map_err(|e| attach(&e))?
                .into_fd();
            Some(SnapshotStore::attach(fd).map_err(|e| attach(&e))?)
        }
    };
    let mut committer = Committer::new(&name, policy, store);
    let restored_seq = committer.restore(&mut handler, consumer.acknowledged());
    let mut outputs = env_outputs()?;
    let emission = outputs.as_ref().map(|_| Emission::new());
    let mut out_buf = Vec::new();
    let mut dispatcher = Dispatcher::new(handler);
    let mut decode_errors = 0u64;
    let mut aborted = false;
    let mut closed = false;
    // Sequence number of the last record handled by this process (0: none yet).
    let mut last_seq = 0u64;
    let mut first = true;
    while !shutdown.load(Ordering::Relaxed) {
        // What was emitted becomes visible downstream at once (and always before the records
        // it came from are acknowledged: see `Committer::make_durable`).
        if let Some(out) = &mut outputs {
            out.flush();
        }
        // Poll first; commit, flush the log and wait only when the ring is empty.
        let mut waited = false;
        let next = loop {
            let timeout = if waited {
                Some(WAIT_SLICE)
            } else {
                Some(Duration::ZERO)
            };
            match consumer.next(timeout) {
                Ok(Next::TimedOut) => {
                    if (waited || committer.due_when_idle(&consumer))
                        && (committer.pending > 0 || consumer.unacknowledged() > 0)
                    {
                        let _ = committer.commit(
                            &mut dispatcher,
                            &mut consumer,
                            &mut outputs,
                            last_seq,
                            false,
                        );
                    }
                    if committer.fatal.is_some() || (waited && shutdown.load(Ordering::Relaxed)) {
                        break Ok(Next::TimedOut);
                    }
                    dispatcher.handler_mut().idle();
                    log::logger().flush();
                    waited = true;
                }
                other => break other,
            }
        };
        let frame = match next {
            Ok(Next::Frame(frame)) => frame,
            Ok(Next::TimedOut) if committer.fatal.is_some() => break,
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
        if first {
            first = false;
            // First record of this process: rebuild the tables as they were before it, then
            // close the copy of the journal the launcher made for this process (its memory
            // is freed).
            if let Some(j) = journal.take() {
                let replayed = j.replay_before(seq, |s, payload| match codec::decode(payload) {
                    Ok(record) => dispatcher.restore(record),
                    Err(e) => sf_processor::limited!(
                        error,
                        "undecodable journal entries",
                        "{name}: journal entry {s}: {e}"
                    ),
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
        committer.pending += 1;
        let decoded = match codec::decode_frame(frame.payload) {
            Ok(d) => d,
            Err(e) => {
                decode_errors += 1;
                sf_processor::limited!(
                    error,
                    "undecodable frames",
                    "{name}: record {seq}: {e}; skipped"
                );
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
            // In the snapshot the state was restored from: its entities only.
            _ if seq <= restored_seq => dispatcher.restore(decoded.record),
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
                Err(e) => sf_processor::limited!(
                    error,
                    "records whose policies cannot be encoded",
                    "{name}: record {seq}: cannot encode its policies: {e}"
                ),
            }
        }
        if committer.due(&consumer) {
            let _ = committer.commit(
                &mut dispatcher,
                &mut consumer,
                &mut outputs,
                last_seq,
                false,
            );
            if committer.fatal.is_some() {
                break;
            }
        }
    }
    if let Some(e) = committer.fatal.take() {
        // Nothing more is acknowledged: a restarted process (there is none: the launcher
        // marks this handler failed) would redo what was not written.
        committer.log_cost();
        return Err(RunError::OutputFailed(e));
    }
    // The end of the input, a stop request or an abort: make everything durable and
    // acknowledge it before `cleanup` (which may print the final results).
    if let Err(e) = committer.commit_finally(
        &mut dispatcher,
        &mut consumer,
        &mut outputs,
        last_seq,
        shutdown,
    ) {
        if closed {
            // The records stay unacknowledged, and their output is not all there.
            logging::output_error(&name, &e);
        } else {
            log::warn!(
                "{name}: stopping with {} records not acknowledged (the next process handles them again): {e}",
                committer.pending
            );
        }
    }
    committer.log_cost();
    if let Some(mut out) = outputs {
        if closed {
            // The input is complete: so is the output.
            out.close();
        } else {
            out.flush();
        }
    }
    let missing = dispatcher.tables().missing();
    if let Some(warning) = describe_missing(&missing) {
        log::warn!("{}: {warning}", config.name);
    }
    let stats = if closed || aborted {
        dispatcher.finish().1
    } else {
        // Stopped to be restarted: the next process goes on with the state and calls
        // `cleanup` at the end.
        log::debug!(
            "{name}: stopped before the end of its input; cleanup is left to the next process"
        );
        dispatcher.stats().clone()
    };
    if stats.handler_errors > 0 {
        log::warn!(
            "{name}: {} handler errors (the first ones are logged above with their records' sequence numbers)",
            stats.handler_errors
        );
    }
    logging::repeat_summary();
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
