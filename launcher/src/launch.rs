//! Checking a pipeline before anything starts, then spawning and watching its processes.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use command_fds::{CommandFdExt, FdMapping};
use sf_processor::codec::WIRE_VERSION;
use sf_processor::logging::{LOG_ENV, LogLevel};
use sf_processor::pipeline::{self, HandlerBlock, Pipeline};
use sf_processor::ring::{RingMonitor, RingSegment};

/// Default size of a handler's ring.
pub const DEFAULT_RING_BYTES: usize = 4 << 20;

/// Prefix of a handler binary's file name: handler `printer` is `sf-handler-printer`.
pub const HANDLER_BIN_PREFIX: &str = "sf-handler-";

/// The ring descriptor's number in a handler process.
const HANDLER_RING_FD: i32 = 3;

/// How often the launcher looks at its children.
const POLL: Duration = Duration::from_millis(10);

/// A checked pipeline: every binary found, the input present. Nothing runs yet.
#[derive(Debug)]
pub struct Plan {
    pipeline: Pipeline,
    input: PathBuf,
    reader: PathBuf,
    handlers: Vec<PlannedHandler>,
    log: LogLevel,
    ring_bytes: usize,
}

#[derive(Debug)]
struct PlannedHandler {
    block: HandlerBlock,
    binary: PathBuf,
    /// Unique name in messages: the handler name, with its block index when it repeats.
    label: String,
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The directory of the running `sf-launch`, where the reader and shipped handlers live.
fn own_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find the sf-launch executable")?;
    Ok(exe.parent().map(Path::to_owned).unwrap_or_default())
}

/// The shipped handlers next to sf-launch, for hints.
fn known_handlers(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix(HANDLER_BIN_PREFIX))
                .map(str::to_owned)
        })
        .filter(|n| !n.contains('.') && !n.contains('-'))
        .collect();
    names.sort();
    names.dedup();
    names
}

fn find_handler(block: &HandlerBlock, pipeline: &Pipeline, dir: &Path) -> anyhow::Result<PathBuf> {
    let at = |key: &str| format!("{}: {}.{key}", pipeline.source.display(), block.json_path());
    if let Some(v) = block.attributes.get("binary") {
        let Some(path) = v.as_str() else {
            bail!(
                "{}: expected a string (path of the handler binary)",
                at("binary")
            )
        };
        let base = pipeline.source.parent().unwrap_or(Path::new("."));
        let path = base.join(path);
        if !is_executable(&path) {
            bail!(
                "{}: {} is not an executable file",
                at("binary"),
                path.display()
            );
        }
        return Ok(path);
    }
    let file = format!("{HANDLER_BIN_PREFIX}{}", block.handler);
    let beside = dir.join(&file);
    if is_executable(&beside) {
        return Ok(beside);
    }
    if let Some(found) = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(&file))
        .find(|p| is_executable(p))
    {
        return Ok(found);
    }
    let known = known_handlers(dir);
    bail!(
        "{}: unknown handler {:?}: no executable {file:?} next to sf-launch ({}) or on PATH; build or install it, or set \"binary\" in the block to its path{}",
        at("handler"),
        block.handler,
        dir.display(),
        if known.is_empty() {
            String::new()
        } else {
            format!(" (available: {})", known.join(", "))
        }
    )
}

impl Plan {
    /// Checks everything that can be checked before spawning: the pipeline file, every
    /// handler binary, the reader binary, the input path.
    ///
    /// # Errors
    /// A one-line message saying what is wrong and where.
    pub fn new(
        pipeline_path: &Path,
        input: Option<&Path>,
        log: LogLevel,
        ring_bytes: usize,
    ) -> anyhow::Result<Plan> {
        let pipeline = pipeline::load(pipeline_path)?;
        let dir = own_dir()?;
        let mut handlers = Vec::new();
        for block in &pipeline.handlers {
            let binary = find_handler(block, &pipeline, &dir)?;
            let repeats = pipeline
                .handlers
                .iter()
                .filter(|b| b.handler == block.handler)
                .count()
                > 1;
            let label = if repeats {
                format!("{}[{}]", block.handler, block.index)
            } else {
                block.handler.clone()
            };
            handlers.push(PlannedHandler {
                block: block.clone(),
                binary,
                label,
            });
        }
        let reader = dir.join("sf-reader");
        if !is_executable(&reader) {
            bail!(
                "the reader executable {} is missing: build the workspace (cargo build --release)",
                reader.display()
            );
        }
        let Some(input) = input else {
            bail!(
                "no input: give a trace file or directory after the pipeline file (sf-launch PIPELINE.json PATH)"
            );
        };
        if !input.exists() {
            bail!("trace path {} does not exist", input.display());
        }
        Ok(Plan {
            pipeline,
            input: input.to_owned(),
            reader,
            handlers,
            log,
            ring_bytes,
        })
    }

    /// Spawns the handlers and the reader, and waits until all have finished.
    ///
    /// # Errors
    /// When a ring cannot be created or a process cannot be spawned; the processes already
    /// spawned are killed.
    pub fn run(self) -> anyhow::Result<Outcome> {
        let mut rings = Vec::new();
        for h in &self.handlers {
            let seg = RingSegment::create(
                &format!("sf-ring-{}", h.label),
                self.ring_bytes,
                WIRE_VERSION,
            )
            .with_context(|| format!("cannot create the ring of handler {}", h.label))?;
            let monitor = RingMonitor::attach(seg.fd())
                .with_context(|| format!("cannot map the ring of {}", h.label))?;
            rings.push((seg, monitor));
        }
        let mut procs = Processes::default();
        let launcher_pid = std::process::id().to_string();
        for (h, (seg, _)) in self.handlers.iter().zip(&rings) {
            let config = serde_json::Value::Object(h.block.attributes.clone()).to_string();
            let mut cmd = Command::new(&h.binary);
            cmd.env("SF_RING_FD", HANDLER_RING_FD.to_string())
                .env("SF_HANDLER_NAME", &h.block.handler)
                .env("SF_HANDLER_CONFIG", config)
                .env("SF_LAUNCHER_PID", &launcher_pid)
                .env(LOG_ENV, self.log.to_string())
                .stdin(Stdio::null())
                .fd_mappings(vec![FdMapping {
                    parent_fd: seg.fd().try_clone_to_owned()?,
                    child_fd: HANDLER_RING_FD,
                }])?;
            let child = cmd.spawn().with_context(|| {
                format!("cannot start handler {} ({})", h.label, h.binary.display())
            })?;
            log::debug!("handler {} started: pid {}", h.label, child.id());
            procs.handlers.push(Watched {
                label: h.label.clone(),
                child,
                status: None,
            });
        }
        let mut cmd = Command::new(&self.reader);
        let mut mappings = Vec::new();
        for (i, (h, (seg, _))) in self.handlers.iter().zip(&rings).enumerate() {
            let child_fd = HANDLER_RING_FD + i as i32;
            cmd.arg("--ring").arg(format!("{}={child_fd}", h.label));
            mappings.push(FdMapping {
                parent_fd: seg.fd().try_clone_to_owned()?,
                child_fd,
            });
        }
        cmd.arg("--log")
            .arg(self.log.to_string())
            .arg(&self.input)
            .stdin(Stdio::null())
            .fd_mappings(mappings)?;
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start the reader ({})", self.reader.display()))?;
        log::debug!("reader started: pid {}", child.id());
        procs.reader = Some(Watched {
            label: "reader".into(),
            child,
            status: None,
        });
        drop(cmd);
        log::debug!(
            "pipeline {} running on {}",
            self.pipeline.source.display(),
            self.input.display()
        );

        // Watch until everybody is done.
        loop {
            let mut running = 0;
            if let Some(r) = procs.reader.as_mut()
                && r.status.is_none()
            {
                match r.child.try_wait()? {
                    Some(status) => {
                        r.status = Some(status);
                        // Bad input is reported by the reader and does not fail it.
                        if status.success() {
                            log::debug!("reader finished: {}", describe(status));
                        } else {
                            log::error!(
                                "reader failed: {}; stopping the handlers",
                                describe(status)
                            );
                            for (_, monitor) in &rings {
                                monitor.abort();
                            }
                        }
                    }
                    None => running += 1,
                }
            }
            for (h, (_, monitor)) in procs.handlers.iter_mut().zip(&rings) {
                if h.status.is_some() {
                    continue;
                }
                match h.child.try_wait()? {
                    Some(status) => {
                        h.status = Some(status);
                        // Whatever happened, nobody reads this ring any more.
                        monitor.mark_consumer_gone();
                        if status.success() {
                            log::debug!("handler {} finished", h.label);
                        } else {
                            log::error!(
                                "handler {} (pid {}) failed: {}",
                                h.label,
                                h.child.id(),
                                describe(status)
                            );
                        }
                    }
                    None => running += 1,
                }
            }
            if running == 0 {
                break;
            }
            std::thread::sleep(POLL);
        }
        Ok(procs.outcome())
    }
}

/// `exit status 3` or `killed by signal 9 (SIGKILL)`.
fn describe(status: ExitStatus) -> String {
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

#[derive(Debug)]
struct Watched {
    label: String,
    child: Child,
    status: Option<ExitStatus>,
}

/// The spawned processes; any still running when this is dropped (an error path) are killed
/// and reaped, so no process outlives the launcher.
#[derive(Debug, Default)]
struct Processes {
    reader: Option<Watched>,
    handlers: Vec<Watched>,
}

impl Processes {
    fn outcome(&mut self) -> Outcome {
        let mut failures = Vec::new();
        if let Some(r) = &self.reader {
            match r.status {
                Some(s) if s.success() => {}
                Some(s) => failures.push(format!("the reader failed ({})", describe(s))),
                None => failures.push("the reader did not finish".into()),
            }
        }
        for h in &self.handlers {
            match h.status {
                Some(s) if s.success() => {}
                Some(s) => failures.push(format!("handler {} failed ({})", h.label, describe(s))),
                None => failures.push(format!("handler {} did not finish", h.label)),
            }
        }
        Outcome { failures }
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for w in self.handlers.iter_mut().chain(self.reader.as_mut()) {
            if w.status.is_none() && matches!(w.child.try_wait(), Ok(None)) {
                let _ = w.child.kill();
                let _ = w.child.wait();
            }
        }
    }
}

/// How a run ended.
#[derive(Debug)]
pub struct Outcome {
    failures: Vec<String>,
}

impl Outcome {
    /// Every process finished successfully.
    pub fn is_success(&self) -> bool {
        self.failures.is_empty()
    }

    /// One line listing what failed.
    pub fn describe_failures(&self) -> String {
        self.failures.join("; ")
    }
}
