//! Running a checked pipeline: rings and journal, spawning, supervision, control, shutdown.
//!
//! - Every handler gets a ring (memfd) and the entity journal (memfd). The reader gets the
//!   journal and the rings of the handlers that read its channel; a chained handler (`"out"`
//!   in its block) gets the rings of the handlers that read its output channel (one ring per
//!   edge of the pipeline tree; `SF_OUT_RINGS`), and when it finishes or fails for good
//!   those rings are closed, so the handlers downstream drain them and finish in tree order.
//!   Children run in their own process group (a terminal's Ctrl-C reaches only the launcher,
//!   which shuts down in order) and die with the launcher (`PR_SET_PDEATHSIG`, set by each
//!   child).
//! - A handler that exits with an error or a signal is restarted after a backoff, unless its
//!   restart policy says otherwise or it exceeded its restart limit (then it is *failed*: the
//!   reader stops feeding it and the others go on). The restarted process resumes after the
//!   last record acknowledged in its ring and rebuilds its entity tables from the journal.
//! - A handler that dies while handling a record (the ring's `inflight_seq` above its
//!   `handled_seq`) `poison_after` times in a row on the same record is restarted with that
//!   record marked to be skipped and written to the dead-letter file.
//! - The watchdog kills a handler that makes no progress while records wait for it.
//! - The reader is restarted the same way; it skips what each ring already holds.
//! - First SIGINT/SIGTERM/SIGHUP (or `ctl stop`): the reader stops, handlers drain and clean
//!   up; a handler that dies meanwhile (or was waiting to be restarted) is not restarted.
//!   Second: everything is killed.

use std::collections::VecDeque;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::{CommandExt as _, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use command_fds::{CommandFdExt, FdMapping};
use serde_json::{Value, json};
use sf_processor::codec::WIRE_VERSION;
use sf_processor::exit::RunStatus;
use sf_processor::handler::{EXIT_FINISHED_WITH_ERRORS, env};
use sf_processor::journal::{self, JournalKeeper};
use sf_processor::logging::LOG_ENV;
use sf_processor::ring::{RingMonitor, RingSegment};
use sf_processor::snapshot;

use crate::control::{self, Request};
use crate::plan::{HandlerSpec, Input, Overflow, Plan, RestartPolicy};
use crate::progress::{self, InputProgress};
use crate::service::{SERVICE_VARS, Service};

/// How often the supervisor looks at its children when nothing happens (control requests
/// and signals wake it at once). 50 ms: an idle pipeline's launcher wakes 20 times a second
/// (at 10 ms it took ~0.7 % of a core on its own, `bench/run.sh`).
const POLL: Duration = Duration::from_millis(50);
/// How long a handler asked to stop (restart by request) may take before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// The reader's restart limit: 5 within 10 s, with the handlers' default backoff.
const READER_RESTART_LIMIT: usize = 5;
const READER_RESTART_WINDOW: Duration = Duration::from_secs(10);

/// A supervisor event.
#[derive(Debug)]
pub enum Event {
    /// A control request.
    Control(Request),
    /// SIGINT or SIGTERM.
    Signal(i32),
}

/// Where a supervised process stands.
#[derive(Debug, Clone, PartialEq)]
enum State {
    Running,
    /// Waiting to be restarted.
    Backoff {
        until: Instant,
    },
    /// Asked to stop (SIGTERM); killed at `kill_at`; restarted on exit if `restart`.
    Stopping {
        restart: bool,
        kill_at: Instant,
    },
    /// Finished its work.
    Done,
    /// Gave up on it.
    Failed(String),
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            State::Running => "running",
            State::Backoff { .. } => "restarting",
            State::Stopping { .. } => "stopping",
            State::Done => "done",
            State::Failed(_) => "failed",
        }
    }

    fn finished(&self) -> bool {
        matches!(self, State::Done | State::Failed(_))
    }
}

/// Restart bookkeeping shared by the reader and the handlers.
#[derive(Debug)]
struct Restarts {
    recent: VecDeque<Instant>,
    total: u32,
    backoff: Duration,
}

impl Restarts {
    fn new(initial: Duration) -> Self {
        Restarts {
            recent: VecDeque::new(),
            total: 0,
            backoff: initial,
        }
    }

    /// Records a restart if the limit allows; returns the backoff to wait, or `None` when the
    /// limit is reached.
    fn allow(
        &mut self,
        now: Instant,
        limit: usize,
        window: Duration,
        max: Duration,
    ) -> Option<Duration> {
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= limit {
            return None;
        }
        self.recent.push_back(now);
        self.total += 1;
        let wait = self.backoff;
        self.backoff = (self.backoff * 2).min(max);
        Some(wait)
    }
}

/// One supervised handler.
#[derive(Debug)]
struct Slot {
    spec: HandlerSpec,
    ring: RingSegment,
    monitor: RingMonitor,
    /// Its snapshot store (a memfd): kept across its processes, given to no other handler.
    snapshots: OwnedFd,
    /// Records that went to the dead-letter file instead of it.
    dead_lettered: u64,
    child: Option<Child>,
    state: State,
    restarts: Restarts,
    /// Record the last crashes happened on, and how many in a row.
    crash_seq: u64,
    crash_streak: u32,
    /// Record to skip in the next processes, and why.
    skip: Option<(u64, String)>,
    /// Watchdog: (inflight_seq, handled_count) and when it last changed.
    progress: (u64, u64),
    progress_at: Instant,
    /// Rate: handled_count at `rate_at`, and records/s over the last interval.
    rate_count: u64,
    rate_at: Instant,
    rate: f64,
    /// The rings of its output channel were closed (it finished or failed for good).
    outputs_closed: bool,
    /// The last status line the handler reported (`handler_sdk::status::report`).
    report: Option<String>,
    /// When its current process was started, and whether it attached to its ring since.
    spawned_at: Instant,
    attached: bool,
    /// Its current process was killed for not attaching in time.
    attach_timed_out: bool,
    /// Processes in a row that ended before attaching (reset by one that attaches).
    failed_starts: u32,
}

#[derive(Debug)]
struct ReaderSlot {
    child: Option<Child>,
    state: State,
    restarts: Restarts,
}

/// How a run ended.
#[derive(Debug)]
pub struct Outcome {
    failures: Vec<String>,
    /// Why the run is partial, with the status each reason gives.
    partial: Vec<(RunStatus, String)>,
    interrupted: bool,
    output_closed: bool,
    /// The reader read everything, but some input file gave no record at all.
    files_without_records: bool,
}

impl Outcome {
    /// The exit status (see [`RunStatus`] for the precedence when several apply).
    pub fn status(&self) -> RunStatus {
        let mut all: Vec<RunStatus> = self.partial.iter().map(|(s, _)| *s).collect();
        if !self.failures.is_empty() {
            all.push(RunStatus::Failed);
        }
        if self.files_without_records {
            all.push(RunStatus::InputError);
        }
        if self.interrupted {
            all.push(RunStatus::Interrupted);
        }
        if self.output_closed {
            all.push(RunStatus::OutputClosed);
        }
        RunStatus::worst(all)
    }

    /// The last line for a run that is not complete (`None` when it is, or when the output
    /// was closed: like a filter killed by SIGPIPE, nothing more is said): `error: ...` for
    /// a failure, `partial run: ...` otherwise, naming everything that applies.
    pub fn last_line(&self) -> Option<String> {
        let status = self.status();
        if matches!(status, RunStatus::Complete | RunStatus::OutputClosed) {
            return None;
        }
        let mut reasons = self.failures.clone();
        if self.interrupted && self.failures.is_empty() {
            reasons.push("interrupted: every process was killed".into());
        }
        if self.files_without_records {
            reasons.push(
                "input errors: some input file gave no record (see the reader's warning above)"
                    .into(),
            );
        }
        reasons.extend(self.partial.iter().map(|(_, why)| why.clone()));
        let prefix = match status {
            RunStatus::Failed | RunStatus::Interrupted | RunStatus::InputError => "error",
            _ => "partial run",
        };
        Some(format!("{prefix}: {}", reasons.join("; ")))
    }
}

/// `SIGTERM` for 15; the number itself for a signal nix does not know.
fn signal_name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig)
        .map(|s| s.as_str().to_owned())
        .unwrap_or_else(|_| sig.to_string())
}

/// `exit status 3` or `killed by signal 9 (SIGKILL)`.
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(s)) => {
            let name = nix::sys::signal::Signal::try_from(s)
                .map(|s| s.as_str())
                .unwrap_or("?");
            format!("killed by signal {s} ({name})")
        }
        _ => "ended".into(),
    }
}

fn kill(child: &mut Child, signal: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal);
}

/// The running pipeline.
#[derive(Debug)]
pub struct Supervisor {
    plan: Plan,
    journal: JournalKeeper,
    slots: Vec<Slot>,
    reader: ReaderSlot,
    events: mpsc::Receiver<Event>,
    stopping: bool,
    /// Our standard output is a pipe nobody reads any more.
    output_closed: bool,
    launcher_pid: String,
    /// A problem of a reader that finished (input errors, undeliverable records).
    reader_problem: Option<String>,
    /// The reader exited with [`READER_EXIT_FILE_WITHOUT_RECORDS`].
    files_without_records: bool,
    /// The service manager (systemd), when it started us.
    service: Service,
    /// Where the reader is in its input files.
    input: InputProgress,
    sampled_at: Instant,
    /// The progress line on a terminal.
    bar: Option<indicatif::ProgressBar>,
    /// `--perf-log`: its period, when the last line was logged, records read then.
    perf_log: Option<Duration>,
    perf_at: Instant,
    perf_records: u64,
}

/// How a run shows its progress.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// A progress line on standard error (a terminal, not `--quiet`; file input only).
    pub progress_line: bool,
    /// `--perf-log SECONDS`: a rate line this often.
    pub perf_log: Option<Duration>,
}

/// The reader's exit status when it read everything but some input file gave no record.
const READER_EXIT_FILE_WITHOUT_RECORDS: i32 =
    sf_processor::exit::READER_FILES_WITHOUT_RECORDS as i32;

impl Supervisor {
    /// Creates the rings and the journal, binds the control socket, starts the handlers and
    /// the reader.
    ///
    /// # Errors
    /// When a ring, the journal or the control socket cannot be created or a process cannot
    /// be spawned; what was spawned is killed.
    pub fn start(plan: Plan, options: RunOptions) -> anyhow::Result<Supervisor> {
        let (tx, events) = mpsc::channel();
        let control_tx = tx.clone();
        let (req_tx, req_rx) = mpsc::channel::<Request>();
        control::serve(req_tx)?;
        std::thread::Builder::new()
            .name("control-forward".into())
            .spawn(move || {
                for r in req_rx {
                    if control_tx.send(Event::Control(r)).is_err() {
                        break;
                    }
                }
            })?;
        // SIGHUP (terminal closed, ssh dropped) stops as SIGTERM does; SIGUSR1/2 are not for
        // the launcher (the stats handler takes SIGUSR1) and must not kill the pipeline.
        let mut signals = signal_hook::iterator::Signals::new([
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGHUP,
            signal_hook::consts::SIGUSR1,
            signal_hook::consts::SIGUSR2,
        ])
        .context("cannot handle SIGINT/SIGTERM")?;
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    if tx.send(Event::Signal(sig)).is_err() {
                        break;
                    }
                }
            })?;
        let journal = journal::create("sf-journal", WIRE_VERSION)
            .and_then(|fd| JournalKeeper::new(fd, WIRE_VERSION))
            .context("cannot create the entity journal")?;
        let mut slots = Vec::new();
        let now = Instant::now();
        for spec in &plan.handlers {
            let ring = RingSegment::create(
                &format!("sf-ring-{}", spec.label),
                spec.supervision.ring_bytes,
                WIRE_VERSION,
            )
            .with_context(|| format!("cannot create the ring of handler {}", spec.label))?;
            let monitor = ring
                .monitor()
                .with_context(|| format!("cannot map the ring of {}", spec.label))?;
            let snapshots =
                snapshot::create(&format!("sf-snapshot-{}", spec.label)).with_context(|| {
                    format!("cannot create the snapshot store of handler {}", spec.label)
                })?;
            slots.push(Slot {
                snapshots,
                dead_lettered: 0,
                restarts: Restarts::new(spec.supervision.backoff_initial),
                spec: spec.clone(),
                ring,
                monitor,
                child: None,
                state: State::Running,
                crash_seq: 0,
                crash_streak: 0,
                skip: None,
                progress: (0, 0),
                progress_at: now,
                rate_count: 0,
                rate_at: now,
                rate: 0.0,
                outputs_closed: false,
                report: None,
                spawned_at: now,
                attached: false,
                attach_timed_out: false,
                failed_starts: 0,
            });
        }
        let plan_input = plan.input.clone();
        let mut sup = Supervisor {
            reader: ReaderSlot {
                child: None,
                state: State::Running,
                restarts: Restarts::new(Duration::from_millis(100)),
            },
            plan,
            journal,
            slots,
            events,
            stopping: false,
            output_closed: false,
            launcher_pid: std::process::id().to_string(),
            reader_problem: None,
            files_without_records: false,
            service: Service::from_env(),
            input: InputProgress::new(&plan_input),
            sampled_at: now,
            bar: None,
            perf_log: options.perf_log,
            perf_at: now,
            perf_records: 0,
        };
        if options.progress_line && sup.input.measurable() {
            let bar = indicatif::ProgressBar::with_draw_target(
                Some(sup.input.total()),
                indicatif::ProgressDrawTarget::stderr_with_hz(4),
            );
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{msg} {bytes}/{total_bytes} ({percent}%), ETA {eta}",
            ) {
                bar.set_style(style);
            }
            sup.bar = Some(bar);
        }
        for i in 0..sup.slots.len() {
            sup.spawn_handler(i)?;
        }
        sup.spawn_reader()?;
        log::debug!(
            "pipeline {} running on {}",
            sup.plan.pipeline.source.display(),
            sup.plan.input
        );
        Ok(sup)
    }

    fn spawn_handler(&mut self, i: usize) -> anyhow::Result<()> {
        // Its own sealed copy of the journal's live entries, to rebuild its tables from.
        let published = self.reader_published();
        let label = self.slots[i].spec.label.clone();
        let journal_copy = self
            .journal
            .follow(published)
            .and_then(|()| self.journal.sealed_copy(&format!("sf-journal-{label}")))
            .with_context(|| format!("cannot copy the entity journal for handler {label}"))?;
        // The rings of the handlers reading its output, as fds 5, 6, ...
        let mut outputs = Vec::new();
        let mut out_mappings = Vec::new();
        for (n, &d) in self.slots[i].spec.block.downstream.iter().enumerate() {
            let consumer = &self.slots[d];
            let child_fd = 5 + n as i32;
            let policy = match consumer.spec.supervision.overflow {
                Overflow::Block => "",
                Overflow::Drop => ":drop",
            };
            outputs.push(format!("{}={child_fd}{policy}", consumer.spec.label));
            out_mappings.push(FdMapping {
                parent_fd: consumer.ring.fd().try_clone_to_owned()?,
                child_fd,
            });
        }
        let slot = &mut self.slots[i];
        // After the output rings: its snapshot store.
        let snapshot_fd = 5 + outputs.len() as i32;
        out_mappings.push(FdMapping {
            parent_fd: slot.snapshots.as_fd().try_clone_to_owned()?,
            child_fd: snapshot_fd,
        });
        let spec = &slot.spec;
        let config = Value::Object(spec.block.attributes.clone()).to_string();
        let mut cmd = Command::new(&spec.binary);
        cmd.env(env::SNAPSHOT_FD, snapshot_fd.to_string());
        if !outputs.is_empty() {
            cmd.env(env::OUT_RINGS, outputs.join(","));
        }
        cmd.env(env::RING_FD, "3")
            .env(env::JOURNAL_FD, "4")
            .env(env::NAME, &spec.block.handler)
            .env(
                env::BLOCK,
                format!(
                    "{}: {}",
                    self.plan.pipeline.source.display(),
                    spec.block.json_path()
                ),
            )
            .env(env::CONFIG, config)
            .env(env::LAUNCHER_PID, &self.launcher_pid)
            .env(LOG_ENV, self.plan.log.to_string())
            .stdin(Stdio::null())
            .process_group(0)
            .fd_mappings(
                vec![
                    FdMapping {
                        parent_fd: slot.ring.fd().try_clone_to_owned()?,
                        child_fd: 3,
                    },
                    FdMapping {
                        parent_fd: journal_copy,
                        child_fd: 4,
                    },
                ]
                .into_iter()
                .chain(out_mappings)
                .collect(),
            )?;
        if let Some((seq, reason)) = &slot.skip {
            cmd.env(env::SKIP_SEQ, seq.to_string())
                .env(env::SKIP_REASON, reason)
                .env(env::DEAD_LETTER, &self.plan.dead_letter);
        }
        // Fds 3 (ring), 4 (journal copy), the output rings, the snapshot store.
        sf_processor::ring::spawn_as_child(&mut cmd, snapshot_fd as u32 - 2);
        for var in SERVICE_VARS {
            cmd.env_remove(var);
        }
        // Attached once the new process has set its pid in the ring.
        slot.monitor.clear_consumer_pid();
        let child = cmd.spawn().with_context(|| {
            format!(
                "cannot start handler {} ({})",
                spec.label,
                spec.binary.display()
            )
        })?;
        log::debug!("handler {} started: pid {}", spec.label, child.id());
        slot.child = Some(child);
        slot.state = State::Running;
        slot.progress_at = Instant::now();
        slot.report = None;
        slot.spawned_at = slot.progress_at;
        slot.attached = false;
        slot.attach_timed_out = false;
        Ok(())
    }

    /// The last sequence number the reader published (into any ring of its channel).
    fn reader_published(&self) -> u64 {
        self.slots
            .iter()
            .filter(|s| s.spec.block.upstream.is_none())
            .map(|s| s.monitor.published_seq())
            .max()
            .unwrap_or(0)
    }

    /// Follows the journal and drops the generations no handler that may start again can
    /// need: the bound is the smallest record acknowledged by a handler not done or failed
    /// for good (one waiting to be restarted counts), each bounded by what its producer
    /// published (a handler's own word is not trusted further).
    fn keep_journal(&mut self) {
        let published = self.reader_published();
        if let Err(e) = self.journal.follow(published) {
            sf_processor::limited!(error, "entity journal: follow", "{e}");
            return;
        }
        let acked = self
            .slots
            .iter()
            .filter(|s| !s.state.finished())
            .map(|s| {
                s.monitor
                    .acked_seq()
                    .min(s.monitor.published_seq())
                    .min(published)
            })
            .min();
        let Some(acked) = acked else { return };
        match self.journal.compact(acked) {
            Ok(0) => {}
            Ok(n) => log::debug!(
                "entity journal: {n} entities dropped (every handler acknowledged record {acked}); {:?}",
                self.journal.status()
            ),
            Err(e) => sf_processor::limited!(error, "entity journal: compaction", "{e}"),
        }
    }

    fn spawn_reader(&mut self) -> anyhow::Result<()> {
        let mut cmd = Command::new(&self.plan.reader);
        let mut mappings = vec![FdMapping {
            parent_fd: self.journal.fd().try_clone_to_owned()?,
            child_fd: 3,
        }];
        cmd.arg("--journal").arg("3");
        // The handlers reading the reader's channel.
        let roots = self
            .slots
            .iter()
            .filter(|s| s.spec.block.upstream.is_none());
        for (i, slot) in roots.enumerate() {
            let child_fd = 4 + i as i32;
            let policy = match slot.spec.supervision.overflow {
                Overflow::Block => "",
                Overflow::Drop => ":drop",
            };
            cmd.arg("--ring")
                .arg(format!("{}={child_fd}{policy}", slot.spec.label));
            mappings.push(FdMapping {
                parent_fd: slot.ring.fd().try_clone_to_owned()?,
                child_fd,
            });
        }
        cmd.arg("--log").arg(self.plan.log.to_string());
        cmd.args(&self.plan.reader_options);
        match &self.plan.input {
            Input::Path { path, follow } => {
                if *follow {
                    cmd.arg("--follow");
                }
                cmd.arg("--").arg(path);
            }
            Input::Socket(socket) => {
                cmd.arg("--socket").arg(socket);
            }
        }
        let inherited = mappings.len() as u32;
        cmd.env(env::LAUNCHER_PID, &self.launcher_pid)
            .stdin(Stdio::null())
            .process_group(0)
            .fd_mappings(mappings)?;
        // Fds 3 (journal) and the rings.
        sf_processor::ring::spawn_as_child(&mut cmd, inherited);
        for var in SERVICE_VARS {
            cmd.env_remove(var);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start the reader ({})", self.plan.reader.display()))?;
        log::debug!("reader started: pid {}", child.id());
        self.reader.child = Some(child);
        self.reader.state = State::Running;
        Ok(())
    }

    /// Supervises until every process has finished.
    ///
    /// # Errors
    /// When a process cannot be waited for or restarted.
    pub fn run(mut self) -> anyhow::Result<Outcome> {
        loop {
            match self.events.recv_timeout(POLL) {
                Ok(Event::Control(req)) => self.answer(req),
                Ok(Event::Signal(sig))
                    if sig == signal_hook::consts::SIGUSR1
                        || sig == signal_hook::consts::SIGUSR2 =>
                {
                    log::warn!(
                        "{} ignored: the launcher takes SIGINT, SIGTERM and SIGHUP; send it to a handler's pid (sf-launch ctl status lists them)",
                        signal_name(sig)
                    );
                }
                Ok(Event::Signal(sig)) => {
                    let sig = signal_name(sig);
                    if self.stopping {
                        log::warn!("second signal ({sig}): killing every process");
                        self.kill_all();
                        return Ok(self.outcome(true));
                    }
                    log::info!(
                        "signal {sig}: stopping; the handlers finish the records already read (again to kill)"
                    );
                    self.begin_stop();
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(POLL),
            }
            self.poll_reader()?;
            for i in 0..self.slots.len() {
                self.poll_handler(i)?;
                self.close_outputs(i);
            }
            self.keep_journal();
            self.tell_service();
            self.show_progress();
            // The launcher's own lines appear as they happen, not at the end (above the
            // progress line).
            match &self.bar {
                Some(bar) => bar.suspend(|| log::logger().flush()),
                None => log::logger().flush(),
            }
            if !self.output_closed && sf_processor::logging::stdout_closed() {
                self.stop_for_closed_output();
            }
            if self.reader.state.finished() && self.slots.iter().all(|s| s.state.finished()) {
                break;
            }
        }
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        for s in &self.slots {
            let dropped = s.monitor.dropped();
            if dropped > 0 {
                log::warn!(
                    "handler {}: {dropped} records dropped (overflow policy drop)",
                    s.spec.label
                );
            }
        }
        Ok(self.outcome(false))
    }

    fn outcome(&self, interrupted: bool) -> Outcome {
        let mut failures = Vec::new();
        if let State::Failed(why) = &self.reader.state {
            failures.push(format!("the reader failed ({why})"));
        }
        failures.extend(self.reader_problem.clone());
        let mut partial = Vec::new();
        let plural = |n: u64| if n == 1 { "" } else { "s" };
        for s in &self.slots {
            let label = &s.spec.label;
            if let State::Failed(why) = &s.state {
                failures.push(format!("handler {label} failed ({why})"));
            }
            // Written by the handler: at most one per restart.
            match snapshot::state_lost(s.snapshots.as_fd())
                .map(|n| n.min(u64::from(s.restarts.total) + 1))
            {
                Ok(0) => {}
                Ok(n) => partial.push((
                    RunStatus::StateLost,
                    format!(
                        "handler {label} lost its state ({n} restart{} without a usable snapshot, see above)",
                        plural(n)
                    ),
                )),
                Err(e) => log::error!("handler {label}: {e}"),
            }
            if s.dead_lettered > 0 {
                let n = s.dead_lettered;
                partial.push((
                    RunStatus::DeadLettered,
                    format!(
                        "handler {label}: {n} record{} went to the dead-letter file {}",
                        plural(n),
                        self.plan.dead_letter.display()
                    ),
                ));
            }
            let dropped = s.monitor.dropped();
            if dropped > 0 {
                partial.push((
                    RunStatus::Dropped,
                    format!(
                        "handler {label}: {dropped} record{} dropped (overflow policy drop)",
                        plural(dropped)
                    ),
                ));
            }
        }
        Outcome {
            failures,
            partial,
            interrupted,
            output_closed: self.output_closed,
            files_without_records: self.files_without_records,
        }
    }

    fn kill_all(&mut self) {
        for child in self
            .slots
            .iter_mut()
            .filter_map(|s| s.child.as_mut())
            .chain(self.reader.child.as_mut())
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `sf-launch … | head`: what the handlers print has nowhere to go. Stops as a Unix filter
    /// stops on SIGPIPE: the reader stops, handlers writing to stdout end by SIGPIPE (the SDK
    /// asks for it) and are not restarted, the others finish what was read.
    fn stop_for_closed_output(&mut self) {
        if !self.output_closed {
            log::debug!("standard output closed: stopping");
            self.output_closed = true;
        }
        if !self.stopping {
            self.begin_stop();
        }
    }

    /// Stops reading; handlers finish what was read.
    fn begin_stop(&mut self) {
        self.stopping = true;
        self.service.stopping();
        match self.reader.state {
            State::Running => {
                if let Some(c) = self.reader.child.as_mut() {
                    kill(c, nix::sys::signal::Signal::SIGTERM);
                }
                // A reader blocked on its input (a FIFO, a socket) cannot see the request.
                self.reader.state = State::Stopping {
                    restart: false,
                    kill_at: Instant::now() + STOP_GRACE,
                };
            }
            State::Backoff { .. } => {
                self.reader.state = State::Done;
                self.close_rings();
            }
            _ => {}
        }
        // A stop must end: a handler waiting to be restarted is not restarted (it could crash
        // or hang for ever); what it did not handle is reported.
        for slot in &mut self.slots {
            if let State::Backoff { .. } = slot.state {
                log::warn!(
                    "handler {} was waiting to be restarted: not restarted, the pipeline is stopping",
                    slot.spec.label
                );
                slot.state = State::Failed("not restarted: the pipeline stopped".into());
                slot.monitor.mark_consumer_gone();
            }
        }
    }

    /// Marks the reader's rings closed on behalf of a reader that will not come back.
    fn close_rings(&self) {
        for s in self
            .slots
            .iter()
            .filter(|s| s.spec.block.upstream.is_none())
        {
            s.monitor.close();
        }
    }

    /// Marks the rings of a finished or failed handler's output channel closed (the SDK
    /// closes them itself when its input ends; not when it fails).
    fn close_outputs(&mut self, i: usize) {
        if self.slots[i].outputs_closed || !self.slots[i].state.finished() {
            return;
        }
        self.slots[i].outputs_closed = true;
        for d in self.slots[i].spec.block.downstream.clone() {
            self.slots[d].monitor.close();
        }
    }

    /// Whether a ring of handler `i`'s output channel is so full that the handler may be
    /// waiting for room (then it is not stuck: the watchdog leaves it alone).
    fn output_full(&self, i: usize) -> bool {
        self.slots[i].spec.block.downstream.iter().any(|&d| {
            let m = &self.slots[d].monitor;
            // Positions written by the handlers: untrusted, so no arithmetic that can wrap.
            let used = m.write_pos().saturating_sub(m.read_pos());
            !m.is_consumer_gone()
                && used.saturating_add(m.capacity() as u64 / 2) > m.capacity() as u64
        })
    }

    fn poll_reader(&mut self) -> anyhow::Result<()> {
        let now = Instant::now();
        match self.reader.state {
            State::Running | State::Stopping { .. } => {
                let Some(child) = self.reader.child.as_mut() else {
                    return Ok(());
                };
                let Some(status) = child.try_wait()? else {
                    if let State::Stopping { kill_at, .. } = self.reader.state
                        && now >= kill_at
                    {
                        log::warn!("the reader did not stop within {STOP_GRACE:?}: killing it");
                        kill(child, nix::sys::signal::Signal::SIGKILL);
                        self.reader.state = State::Stopping {
                            restart: false,
                            kill_at: now + STOP_GRACE,
                        };
                    }
                    return Ok(());
                };
                let pid = child.id();
                self.reader.child = None;
                let what = describe(status);
                let finished = |sup: &mut Self, state: State, problem: Option<String>| {
                    sup.reader.state = state;
                    sup.reader_problem = problem;
                    // Whatever the reader did not close, nothing more will come.
                    sup.close_rings();
                };
                if status.code() == Some(READER_EXIT_FILE_WITHOUT_RECORDS) {
                    self.files_without_records = true;
                }
                match status.code() {
                    _ if self.stopping => finished(self, State::Done, None),
                    // 3: nobody left to publish to; the handlers' states say why. 5: read
                    // everything, an input file gave no record (see `files_without_records`).
                    Some(0) | Some(3) | Some(READER_EXIT_FILE_WITHOUT_RECORDS) => {
                        finished(self, State::Done, None)
                    }
                    Some(4) => finished(
                        self,
                        State::Done,
                        Some("some records were larger than half a ring and were not delivered (see above): raise ring_size".into()),
                    ),
                    Some(2) => {
                        log::error!("reader (pid {pid}) could not start: {what}");
                        finished(self, State::Failed(format!("could not start: {what}")), None);
                    }
                    _ => match self.reader.restarts.allow(now, READER_RESTART_LIMIT, READER_RESTART_WINDOW, Duration::from_secs(5)) {
                        Some(wait) => {
                            log::error!("reader (pid {pid}) {what}; restarting in {wait:?}");
                            self.reader.state = State::Backoff { until: now + wait };
                        }
                        None => {
                            log::error!(
                                "reader (pid {pid}) {what}; {READER_RESTART_LIMIT} restarts within {READER_RESTART_WINDOW:?}: giving up"
                            );
                            finished(self, State::Failed(format!("{what}, restart limit reached")), None);
                        }
                    },
                }
            }
            State::Backoff { until } if now >= until => self.spawn_reader()?,
            _ => {}
        }
        Ok(())
    }

    fn poll_handler(&mut self, i: usize) -> anyhow::Result<()> {
        let now = Instant::now();
        let output_full = self.output_full(i);
        let slot = &mut self.slots[i];
        match slot.state.clone() {
            State::Running | State::Stopping { .. } => {
                let Some(child) = slot.child.as_mut() else {
                    return Ok(());
                };
                if let Some(status) = child.try_wait()? {
                    let pid = child.id();
                    slot.child = None;
                    return self.on_handler_exit(i, pid, status);
                }
                if let State::Stopping { kill_at, .. } = slot.state {
                    if now >= kill_at {
                        log::warn!(
                            "handler {} did not stop within {STOP_GRACE:?}: killing it",
                            slot.spec.label
                        );
                        kill(child, nix::sys::signal::Signal::SIGKILL);
                    }
                    return Ok(());
                }
                // Attached yet? A process that is not within its attach timeout is a failed
                // start (a binary that never attaches would otherwise be restarted for ever
                // by its watchdog, never reaching the restart limit).
                if !slot.attached {
                    if slot.monitor.consumer_attached() {
                        slot.attached = true;
                        slot.failed_starts = 0;
                    } else if let Some(limit) = slot.spec.supervision.attach_timeout
                        && now.duration_since(slot.spawned_at) > limit
                        && !slot.attach_timed_out
                    {
                        log::error!(
                            "handler {} (pid {}) did not attach to its ring within {limit:?}: killing it (a failed start)",
                            slot.spec.label,
                            child.id()
                        );
                        slot.attach_timed_out = true;
                        kill(child, nix::sys::signal::Signal::SIGKILL);
                        return Ok(());
                    }
                }
                // Rate, once a second.
                let count = slot.monitor.handled_count();
                let elapsed = now.duration_since(slot.rate_at);
                if elapsed >= Duration::from_secs(1) {
                    slot.rate = (count - slot.rate_count.min(count)) as f64 / elapsed.as_secs_f64();
                    slot.rate_count = count;
                    slot.rate_at = now;
                }
                // Watchdog.
                let key = (slot.monitor.inflight_seq(), count);
                if key != slot.progress || output_full {
                    slot.progress = key;
                    slot.progress_at = now;
                }
                let waiting = slot.monitor.published_seq() > slot.monitor.handled_seq();
                if let Some(limit) = slot.spec.supervision.watchdog
                    && waiting
                    && now.duration_since(slot.progress_at) > limit
                {
                    log::error!(
                        "handler {} (pid {}) made no progress for {limit:?} while records wait (stuck on record {}): killing it",
                        slot.spec.label,
                        child.id(),
                        slot.monitor.inflight_seq()
                    );
                    kill(child, nix::sys::signal::Signal::SIGKILL);
                    slot.progress_at = now;
                }
            }
            State::Backoff { until } if now >= until => self.spawn_handler(i)?,
            _ => {}
        }
        Ok(())
    }

    fn on_handler_exit(&mut self, i: usize, pid: u32, status: ExitStatus) -> anyhow::Result<()> {
        if status.signal() == Some(nix::libc::SIGPIPE)
            && (self.output_closed || sf_processor::logging::stdout_closed())
        {
            // It wrote to our stdout and nobody reads it (`| head`): not a crash, and a
            // restart could only die the same way.
            log::debug!(
                "handler {} stopped: its output was closed",
                self.slots[i].spec.label
            );
            self.stop_for_closed_output();
            self.slots[i].state = State::Done;
            self.slots[i].monitor.mark_consumer_gone();
            return Ok(());
        }
        let now = Instant::now();
        let dead_letter = self.plan.dead_letter.display().to_string();
        let slot = &mut self.slots[i];
        let label = slot.spec.label.clone();
        let what = describe(status);
        if let State::Stopping { restart: true, .. } = slot.state {
            log::info!(
                "handler {label} (pid {pid}) stopped ({what}); starting it again as requested"
            );
            return self.spawn_handler(i);
        }
        let fail = |slot: &mut Slot, why: String| {
            slot.state = State::Failed(why);
            // The reader stops feeding it; the others go on.
            slot.monitor.mark_consumer_gone();
        };
        let m = &slot.monitor;
        let complete = m.is_closed() && m.handled_seq() >= m.published_seq();
        if status.success() && (complete || self.stopping) {
            log::debug!("handler {label} finished");
            slot.state = State::Done;
            slot.monitor.mark_consumer_gone();
            return Ok(());
        }
        let what = if status.success() {
            format!("{what} before the end of its input")
        } else {
            what
        };
        if status.code() == Some(i32::from(EXIT_FINISHED_WITH_ERRORS)) {
            // It handled its input; restarting it would not undo the errors.
            fail(slot, "finished with errors, see its messages above".into());
            return Ok(());
        }
        if status.code() == Some(i32::from(sf_processor::exit::HANDLER_OUTPUT_FAILED)) {
            // Its block asked to fail rather than wait for its output to come back.
            fail(
                slot,
                "its output failed (\"commit_failure\": \"fail\"), see its messages above".into(),
            );
            return Ok(());
        }
        if status.code() == Some(2) {
            log::error!(
                "handler {label} (pid {pid}) could not start ({what}); see its message above"
            );
            fail(slot, format!("could not start: {what}"));
            return Ok(());
        }
        // A process that ended before attaching to its ring: a failed start, whatever
        // killed it; too many in a row and the handler is failed, window or not.
        let attached = slot.attached || slot.monitor.consumer_attached();
        if !attached && !self.stopping {
            slot.failed_starts += 1;
            let what = match slot.spec.supervision.attach_timeout {
                Some(limit) if slot.attach_timed_out => {
                    format!("did not attach to its ring within {limit:?}")
                }
                _ => format!("{what} before attaching to its ring"),
            };
            let limit = slot.spec.supervision.restart_limit;
            log::error!(
                "handler {label} (pid {pid}) {what} (failed start {} in a row)",
                slot.failed_starts
            );
            if slot.failed_starts > limit || slot.spec.supervision.restart == RestartPolicy::Never {
                let n = slot.failed_starts;
                let why = if slot.spec.supervision.restart == RestartPolicy::Never {
                    format!("{what}, restart policy never")
                } else {
                    format!(
                        "{what}; {n} failed start{} in a row: giving up",
                        if n == 1 { "" } else { "s" }
                    )
                };
                log::error!("handler {label}: {why}");
                fail(slot, why);
                return Ok(());
            }
            let sup = &slot.spec.supervision;
            let wait = slot
                .restarts
                .allow(now, usize::MAX, sup.restart_window, sup.backoff_max)
                .unwrap_or(sup.backoff_max);
            log::info!("restarting handler {label} in {wait:?}");
            slot.state = State::Backoff { until: now + wait };
            return Ok(());
        }
        // A crash. On a record?
        let (inflight, handled) = (slot.monitor.inflight_seq(), slot.monitor.handled_seq());
        if inflight > handled {
            if inflight == slot.crash_seq {
                slot.crash_streak += 1;
            } else {
                slot.crash_seq = inflight;
                slot.crash_streak = 1;
            }
            log::error!("handler {label} (pid {pid}) {what} while handling record {inflight}");
            let n = slot.spec.supervision.poison_after;
            if slot.crash_streak >= n {
                log::error!(
                    "record {inflight} crashed handler {label} {n} times in a row: it goes to {dead_letter} and is skipped"
                );
                slot.skip = Some((inflight, format!("{what} {n} times in a row")));
                slot.crash_streak = 0;
                slot.dead_lettered += 1;
            }
        } else {
            log::error!("handler {label} (pid {pid}) {what}");
            slot.crash_streak = 0;
        }
        if self.stopping {
            log::warn!("handler {label}: not restarted, the pipeline is stopping");
            fail(slot, format!("{what} while the pipeline was stopping"));
            return Ok(());
        }
        let sup = &slot.spec.supervision;
        if sup.restart == RestartPolicy::Never {
            fail(slot, format!("{what}, restart policy never"));
            return Ok(());
        }
        match slot.restarts.allow(
            now,
            sup.restart_limit as usize,
            sup.restart_window,
            sup.backoff_max,
        ) {
            Some(wait) => {
                log::info!("restarting handler {label} in {wait:?}");
                slot.state = State::Backoff { until: now + wait };
            }
            None => {
                let why = format!(
                    "{what}; {} restarts within {:?}: giving up",
                    sup.restart_limit, sup.restart_window
                );
                log::error!("handler {label}: {why}");
                fail(slot, why);
            }
        }
        Ok(())
    }

    fn answer(&mut self, req: Request) {
        let reply = match req.body["cmd"].as_str() {
            Some("status") => {
                let j = self.journal.status();
                json!({"ok": true, "stopping": self.stopping, "processes": self.status(),
                    "journal": {"bytes": j.bytes, "entries": j.entries,
                        "generations": j.generations, "dropped": j.dropped}})
            }
            Some("reload") => match self.reload() {
                Ok(msg) => json!({"ok": true, "message": msg}),
                Err(e) => json!({"ok": false, "error": e}),
            },
            Some("stop") => {
                if !self.stopping {
                    log::info!("stop requested: the handlers finish the records already read");
                    self.begin_stop();
                }
                json!({"ok": true})
            }
            Some("restart") => {
                let name = req.body["name"].as_str().unwrap_or_default().to_owned();
                match self.request_restart(&name) {
                    Ok(msg) => json!({"ok": true, "message": msg}),
                    Err(e) => json!({"ok": false, "error": e}),
                }
            }
            Some("reopen") => {
                let name = req.body["name"].as_str().unwrap_or_default().to_owned();
                match self.request_reopen(&name) {
                    Ok(msg) => json!({"ok": true, "message": msg}),
                    Err(e) => json!({"ok": false, "error": e}),
                }
            }
            Some("report") => self.take_report(&req.body),
            _ => json!({"ok": false, "error": format!("unknown request {}", req.body)}),
        };
        req.answer(&reply);
    }

    /// `ctl reopen NAME`: SIGUSR2 to the handler, which the SDK turns into a reopen request
    /// (the exporter reopens its file; other handlers ignore it).
    fn request_reopen(&mut self, name: &str) -> Result<String, String> {
        let Some(slot) = self.slots.iter_mut().find(|s| s.spec.label == name) else {
            let names: Vec<&str> = self.slots.iter().map(|s| s.spec.label.as_str()).collect();
            return Err(format!(
                "no handler named {name:?} (handlers: {})",
                names.join(", ")
            ));
        };
        match (&slot.state, slot.child.as_mut()) {
            (State::Running, Some(c)) => {
                let pid = c.id();
                kill(c, nix::sys::signal::Signal::SIGUSR2);
                Ok(format!(
                    "handler {name} (pid {pid}) asked to reopen its output"
                ))
            }
            _ => Err(format!("handler {name} is not running")),
        }
    }

    /// A status report of a handler (`{"cmd":"report","name":..,"pid":..,"status":..}`): kept
    /// for `ctl status` while the process that sent it runs, and counted as progress for
    /// the watchdog (a handler waiting for its destination says so and is not stuck).
    fn take_report(&mut self, body: &Value) -> Value {
        let (name, pid) = (body["name"].as_str(), body["pid"].as_u64());
        let Some(slot) = self.slots.iter_mut().find(|s| {
            Some(s.spec.label.as_str()) == name
                && s.child.as_ref().map(|c| u64::from(c.id())) == pid
        }) else {
            return json!({"ok": false, "error": "no running handler with that name and pid"});
        };
        let text: String = body["status"]
            .as_str()
            .unwrap_or_default()
            .chars()
            .take(512)
            .collect();
        log::debug!("handler {}: {text}", slot.spec.label);
        slot.report = Some(text);
        slot.progress_at = Instant::now();
        json!({"ok": true})
    }

    /// Samples the reader's position (4 times a second) for `ctl status`, the progress line
    /// and `--perf-log`.
    fn show_progress(&mut self) {
        let now = Instant::now();
        if now.duration_since(self.sampled_at) < Duration::from_millis(250) {
            return;
        }
        self.sampled_at = now;
        let done = self.reader.state == State::Done;
        self.input
            .sample(self.reader.child.as_ref().map(Child::id), done);
        let records = self.reader_published();
        if let Some(bar) = &self.bar {
            bar.set_length(self.input.total());
            bar.set_position(self.input.position());
            let rate = self.slots.iter().map(|s| s.rate).fold(0.0, f64::max);
            bar.set_message(format!("{records} records, {rate:.0} records/s,"));
        }
        if let Some(period) = self.perf_log
            && now.duration_since(self.perf_at) >= period
        {
            let secs = now.duration_since(self.perf_at).as_secs_f64();
            let rate = (records.saturating_sub(self.perf_records)) as f64 / secs;
            self.perf_at = now;
            self.perf_records = records;
            let handlers: Vec<String> = self
                .slots
                .iter()
                .map(|s| {
                    let m = &s.monitor;
                    format!(
                        "{} {} handled, lag {}",
                        s.spec.label,
                        m.handled_count(),
                        m.published_seq().saturating_sub(m.handled_seq())
                    )
                })
                .collect();
            let input = if self.input.measurable() {
                format!(
                    "; input {} of {} ({:.0} %)",
                    progress::bytes(self.input.position()),
                    progress::bytes(self.input.total()),
                    self.input.position() as f64 * 100.0 / self.input.total() as f64
                )
            } else {
                String::new()
            };
            log::info!(
                "perf: {records} records read, {rate:.0} records/s over the last {secs:.0} s{input}; {}",
                handlers.join("; ")
            );
        }
    }

    /// The service manager: `READY=1` once the reader and every handler attached (or
    /// finished), then the watchdog and the status line.
    fn tell_service(&mut self) {
        if !self.service.is_ready() {
            let reader_pid = self.reader.child.as_ref().map(Child::id);
            let reader_up = self.reader.state.finished()
                || self.slots.iter().any(|s| {
                    s.spec.block.upstream.is_none()
                        && reader_pid.is_some_and(|p| s.monitor.producer_pid() == p)
                });
            let socket_up = match &self.plan.input {
                Input::Socket(path) => path.exists() || self.reader.state.finished(),
                Input::Path { .. } => true,
            };
            let handlers_up = self
                .slots
                .iter()
                .all(|s| s.state.finished() || s.attached || s.monitor.consumer_attached());
            if reader_up && socket_up && handlers_up {
                let status = format!(
                    "{} handler{} running on {}",
                    self.slots.len(),
                    if self.slots.len() == 1 { "" } else { "s" },
                    self.plan.input
                );
                log::debug!("ready: {status}");
                self.service.ready(&status);
            }
        }
        let published = self.reader_published();
        let journal = self.journal.status();
        self.service.tick(|| {
            format!(
                "{published} records read; entity journal {} KiB, {} entities",
                journal.bytes / 1024,
                journal.entries
            )
        });
    }

    /// `ctl reload` (systemd's `ExecReload`): reads the pipeline file again, checks it as a
    /// start would, and restarts each handler whose block changed with its new block (it
    /// resumes where it stopped, as after `ctl restart`). The pipeline's shape (blocks,
    /// handlers, binaries, channels, ring sizes, overflow policies) cannot change: that
    /// needs a new start.
    fn reload(&mut self) -> Result<String, String> {
        if self.stopping {
            return Err("the pipeline is stopping: no reload".into());
        }
        let source = self.plan.pipeline.source.clone();
        let (input, socket, follow) = match &self.plan.input {
            Input::Path { path, follow } => (Some(path.clone()), None, *follow),
            Input::Socket(s) => (None, Some(s.clone()), false),
        };
        self.service.reloading();
        let result = Plan::new(
            &source,
            input.as_deref(),
            socket.as_deref(),
            follow,
            self.plan.log,
            self.plan.ring_bytes,
            self.plan.dead_letter.clone(),
        )
        .map_err(|p| format!("reload of {} refused: {p}", source.display()))
        .and_then(|new| self.apply_reload(new));
        self.service.reloaded(&match &result {
            Ok(m) => m.clone(),
            Err(e) => e.clone(),
        });
        match &result {
            Ok(m) => log::info!("{m}"),
            Err(e) => log::error!("{e}"),
        }
        result
    }

    fn apply_reload(&mut self, new: Plan) -> Result<String, String> {
        let shape = |h: &HandlerSpec| {
            (
                h.label.clone(),
                h.binary.clone(),
                h.block.input.clone(),
                h.block.output.clone(),
                h.block.upstream,
                h.block.downstream.clone(),
                h.supervision.ring_bytes,
                h.supervision.overflow,
            )
        };
        let old: Vec<_> = self.slots.iter().map(|s| shape(&s.spec)).collect();
        let now: Vec<_> = new.handlers.iter().map(shape).collect();
        if old != now {
            return Err(format!(
                "reload of {} refused: the pipeline's shape changed (blocks, handlers, binaries, channels, ring_size or overflow): restart sf-launch to apply it",
                new.pipeline.source.display()
            ));
        }
        let mut restarted = Vec::new();
        for (i, spec) in new.handlers.into_iter().enumerate() {
            if spec.block.attributes == self.slots[i].spec.block.attributes {
                continue;
            }
            let label = spec.label.clone();
            self.slots[i].spec = spec;
            if matches!(self.slots[i].state, State::Running) {
                self.request_restart(&label)?;
                restarted.push(label);
            } else if matches!(self.slots[i].state, State::Backoff { .. }) {
                // It starts with its new block when its backoff ends.
                restarted.push(label);
            }
        }
        self.plan.pipeline = new.pipeline;
        Ok(if restarted.is_empty() {
            format!(
                "reloaded {}: no handler block changed",
                self.plan.pipeline.source.display()
            )
        } else {
            format!(
                "reloaded {}: restarting {} with the new block{}",
                self.plan.pipeline.source.display(),
                restarted.join(", "),
                if restarted.len() == 1 { "" } else { "s" }
            )
        })
    }

    fn request_restart(&mut self, name: &str) -> Result<String, String> {
        if self.stopping {
            return Err("the pipeline is stopping: no restarts".into());
        }
        let Some(i) = self.slots.iter().position(|s| s.spec.label == name) else {
            let names: Vec<&str> = self.slots.iter().map(|s| s.spec.label.as_str()).collect();
            return Err(format!(
                "no handler named {name:?} (handlers: {})",
                names.join(", ")
            ));
        };
        let slot = &mut self.slots[i];
        match &slot.state {
            State::Running => {
                if let Some(c) = slot.child.as_mut() {
                    log::info!(
                        "restart of handler {name} requested: stopping pid {}",
                        c.id()
                    );
                    kill(c, nix::sys::signal::Signal::SIGTERM);
                }
                slot.state = State::Stopping {
                    restart: true,
                    kill_at: Instant::now() + STOP_GRACE,
                };
                slot.restarts.total += 1;
                Ok(format!("handler {name} is restarting"))
            }
            State::Backoff { .. } => {
                self.spawn_handler(i).map_err(|e| format!("{e:#}"))?;
                Ok(format!("handler {name} started"))
            }
            State::Stopping { .. } => Ok(format!("handler {name} is already restarting")),
            State::Done => Err(format!("handler {name} has finished its input")),
            State::Failed(why) => Err(format!("handler {name} has failed for this run ({why})")),
        }
    }

    fn status(&self) -> Vec<Value> {
        let pid = |c: &Option<Child>| c.as_ref().map(|c| c.id());
        let published = self
            .slots
            .iter()
            .filter(|s| s.spec.block.upstream.is_none())
            .map(|s| s.monitor.published_seq())
            .max()
            .unwrap_or(0);
        let mut out = vec![json!({
            "name": "reader",
            "pid": pid(&self.reader.child),
            "state": shown_state(&self.reader.state, pid(&self.reader.child)),
            "handled": published,
            "lag": null,
            "restarts": self.reader.restarts.total,
            "drops": null,
            "rate": null,
            "input": if self.input.measurable() {
                json!({"position": self.input.position(), "total": self.input.total(),
                       "eta_s": self.input.eta().map(|d| d.as_secs())})
            } else {
                Value::Null
            },
        })];
        for s in &self.slots {
            let m = &s.monitor;
            out.push(json!({
                "name": s.spec.label,
                "pid": pid(&s.child),
                "state": shown_state(&s.state, pid(&s.child)),
                "handled": m.handled_count(),
                "lag": m.published_seq().saturating_sub(m.handled_seq()),
                "restarts": s.restarts.total,
                "drops": m.dropped(),
                "rate": s.rate.round() as u64,
                "input": s.spec.block.upstream.map_or("reader", |u| self.slots[u].spec.label.as_str()),
                "status": s.report,
            }));
        }
        out
    }
}

/// The state `ctl status` shows: the supervisor's, except `stopped` for a running process
/// that is stopped by a signal (SIGSTOP, SIGTSTP) or a debugger (`T`/`t` in /proc/PID/stat).
fn shown_state(state: &State, pid: Option<u32>) -> &'static str {
    if let (State::Running, Some(pid)) = (state, pid)
        && let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        && let Some(after) = stat.rsplit_once(") ")
        && matches!(after.1.chars().next(), Some('T' | 't'))
    {
        return "stopped";
    }
    state.name()
}

impl Drop for Supervisor {
    /// No process outlives the launcher, even on an error path.
    fn drop(&mut self) {
        self.kill_all();
    }
}
