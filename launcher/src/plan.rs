//! Checking a pipeline before anything starts: the pipeline file, every handler binary and
//! its supervision settings, the reader binary, the input path.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::Value;
use sf_processor::handler::{CHECK_CONFIG_MARKER, KeyProblem, env};
use sf_processor::logging::{LOG_ENV, LogLevel};
use sf_processor::pipeline::{
    self, BLOCK_KEYS, HandlerBlock, Pipeline, SDK_KEYS, SUPERVISION_KEYS, did_you_mean,
};

/// Default size of a handler's ring.
pub const DEFAULT_RING_BYTES: usize = 4 << 20;
/// Smallest ring accepted: records larger than half a ring cannot be delivered.
pub const MIN_RING_BYTES: usize = 64 << 10;
/// Largest ring accepted.
pub const MAX_RING_BYTES: usize = 1 << 30;

fn check_ring_size(bytes: usize, what: &str) -> anyhow::Result<()> {
    if !(MIN_RING_BYTES..=MAX_RING_BYTES).contains(&bytes) {
        bail!(
            "{what}: ring size of {bytes} bytes is out of range ({MIN_RING_BYTES} to {MAX_RING_BYTES} bytes)"
        );
    }
    Ok(())
}

/// Prefix of a handler binary's file name: handler `printer` is `sf-handler-printer`.
pub const HANDLER_BIN_PREFIX: &str = "sf-handler-";

/// When a handler that exited is started again (`restart` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    /// After any exit before the end of its input.
    Always,
    /// After a crash or a non-zero exit (the default).
    OnFailure,
    /// Never: a crash marks the handler failed.
    Never,
}

/// What to do when a handler's ring is full (`overflow` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// The reader waits (lossless; the default).
    Block,
    /// Flows and events are dropped and counted; entities are never dropped.
    Drop,
}

/// Supervision settings of one handler, from its pipeline block.
#[derive(Debug, Clone, PartialEq)]
pub struct Supervision {
    /// `restart`: `always`, `on-failure` (default), `never`.
    pub restart: RestartPolicy,
    /// `restart_limit` (default 5) restarts within `restart_window_s` (default 10 s), as
    /// systemd's `StartLimitBurst`/`StartLimitIntervalSec`; past it the handler is failed.
    pub restart_limit: u32,
    /// See `restart_limit`.
    pub restart_window: Duration,
    /// `backoff_initial_ms` (default 100): delay before the first restart, doubled after
    /// each crash up to `backoff_max_ms` (default 5000).
    pub backoff_initial: Duration,
    /// See `backoff_initial`.
    pub backoff_max: Duration,
    /// `watchdog_ms` (default 60000, 0 = off): a handler that makes no progress for this long
    /// while records wait for it is killed and restarted.
    pub watchdog: Option<Duration>,
    /// `attach_timeout_ms` (default 30000, 0 = off): a handler process that has not attached
    /// to its ring this long after it was started is killed; it counts as a failed start.
    pub attach_timeout: Option<Duration>,
    /// `poison_after` (default 3): crashes in a row on the same record after which the record
    /// is written to the dead-letter file and skipped.
    pub poison_after: u32,
    /// `overflow`: `block` (default) or `drop`.
    pub overflow: Overflow,
    /// `ring_size` in bytes (default: `--ring-size`).
    pub ring_bytes: usize,
}

/// One checked handler block.
#[derive(Debug, Clone)]
pub struct HandlerSpec {
    /// The block.
    pub block: HandlerBlock,
    /// The executable.
    pub binary: PathBuf,
    /// Unique name in messages and `ctl`: the handler name, with its block index when the
    /// same handler appears twice (`printer[1]`).
    pub label: String,
    /// Supervision settings.
    pub supervision: Supervision,
}

/// Where the records come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A trace file or a directory of them; with `follow`, the directory is watched for new
    /// files.
    Path {
        /// The file or directory.
        path: PathBuf,
        /// Keep watching the directory.
        follow: bool,
    },
    /// The collector's live stream on a Unix socket the reader creates.
    Socket(PathBuf),
}

impl std::fmt::Display for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Input::Path {
                path,
                follow: false,
            } => write!(f, "{}", path.display()),
            Input::Path { path, follow: true } => write!(f, "{} (following)", path.display()),
            Input::Socket(s) => write!(f, "socket {}", s.display()),
        }
    }
}

/// A checked pipeline: every binary found, the input present. Nothing runs yet.
#[derive(Debug)]
pub struct Plan {
    /// The pipeline file.
    pub pipeline: Pipeline,
    /// The trace file or directory.
    pub input: Input,
    /// The reader executable.
    pub reader: PathBuf,
    /// The handlers, in block order.
    pub handlers: Vec<HandlerSpec>,
    /// Log level for every process.
    pub log: LogLevel,
    /// Where records skipped after repeated crashes are written.
    pub dead_letter: PathBuf,
    /// More options for the reader (`--socket-layout NAME`, `--max-message BYTES`).
    pub reader_options: Vec<String>,
    /// `--ring-size`: the ring size of a block without `ring_size`.
    pub ring_bytes: usize,
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
        // Relative to the pipeline file; "./" keeps a bare name from being looked up on PATH.
        let base = match pipeline.source.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
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
    let file = format!("{HANDLER_BIN_PREFIX}{}", block.binary);
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
        "{}: unknown handler {:?}{}: no executable {file:?} next to sf-launch ({}) or on PATH; build or install it, or set \"binary\" in the block to its path{}",
        if block.binary == block.handler {
            at("handler")
        } else {
            at("processor")
        },
        block.binary,
        if block.binary == block.handler {
            String::new()
        } else {
            format!(" (processor {:?})", block.processor)
        },
        dir.display(),
        if known.is_empty() {
            String::new()
        } else {
            format!(" (available: {})", known.join(", "))
        }
    )
}

/// Reads the supervision keys of `block`, with their defaults, each checked against its
/// range.
fn supervision(
    block: &HandlerBlock,
    pipeline: &Pipeline,
    default_ring: usize,
) -> anyhow::Result<Supervision> {
    let at = |key: &str| format!("{}: {}.{key}", pipeline.source.display(), block.json_path());
    let get = |key: &str| block.attributes.get(key);
    let uint = |key: &str, default: u64| -> anyhow::Result<u64> {
        match get(key) {
            None => Ok(default),
            Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64().unwrap_or(default)),
            // The reference passes every attribute as a string: accept "5" too.
            Some(Value::String(s)) if s.parse::<u64>().is_ok() => Ok(s.parse().unwrap_or(default)),
            Some(other) => bail!(
                "{}: expected a non-negative integer, found {other}",
                at(key)
            ),
        }
    };
    // A value in `lo..=hi` (or 0 where 0 means "off"), `unit` for the message.
    let ranged = |key: &str, default: u64, lo: u64, hi: u64, off: bool, unit: &str| {
        let v = uint(key, default)?;
        if (off && v == 0) || (lo..=hi).contains(&v) {
            return Ok(v);
        }
        let zero = if off { "0 (off), or " } else { "" };
        bail!(
            "{}: {v} is out of range ({zero}{lo} to {hi}{unit})",
            at(key)
        )
    };
    let restart = match get("restart").map(|v| v.as_str()) {
        None => RestartPolicy::OnFailure,
        Some(Some("always")) => RestartPolicy::Always,
        Some(Some("on-failure")) => RestartPolicy::OnFailure,
        Some(Some("never")) => RestartPolicy::Never,
        Some(_) => bail!(
            "{}: expected \"always\", \"on-failure\" or \"never\"",
            at("restart")
        ),
    };
    let overflow = match get("overflow").map(|v| v.as_str()) {
        None => Overflow::Block,
        Some(Some("block")) => Overflow::Block,
        Some(Some("drop")) => Overflow::Drop,
        Some(_) => bail!("{}: expected \"block\" or \"drop\"", at("overflow")),
    };
    const HOUR_MS: u64 = 3_600_000;
    let restart_limit = ranged("restart_limit", 5, 0, 10_000, false, "")?;
    let restart_window_s = ranged("restart_window_s", 10, 1, 86_400, true, " s")?;
    let backoff_initial_ms = ranged("backoff_initial_ms", 100, 1, HOUR_MS, false, " ms")?;
    let backoff_max_ms = match get("backoff_max_ms") {
        // Not given: at least the initial delay.
        None => 5_000.max(backoff_initial_ms),
        Some(_) => ranged("backoff_max_ms", 5_000, 1, HOUR_MS, false, " ms")?,
    };
    if backoff_max_ms < backoff_initial_ms {
        bail!(
            "{}: {backoff_max_ms} is below backoff_initial_ms ({backoff_initial_ms})",
            at("backoff_max_ms")
        );
    }
    let watchdog_ms = ranged("watchdog_ms", 60_000, 100, 24 * HOUR_MS, true, " ms")?;
    let attach_ms = ranged("attach_timeout_ms", 30_000, 100, HOUR_MS, true, " ms")?;
    let poison_after = ranged("poison_after", 3, 1, 1_000_000, false, "")?;
    let ring_bytes = usize::try_from(uint("ring_size", default_ring as u64)?).unwrap_or(usize::MAX);
    check_ring_size(ring_bytes, &at("ring_size"))?;
    let millis = |ms: u64| (ms > 0).then(|| Duration::from_millis(ms));
    Ok(Supervision {
        restart,
        restart_limit: restart_limit as u32,
        restart_window: Duration::from_secs(restart_window_s),
        backoff_initial: Duration::from_millis(backoff_initial_ms),
        backoff_max: Duration::from_millis(backoff_max_ms),
        watchdog: millis(watchdog_ms),
        attach_timeout: millis(attach_ms),
        poison_after: poison_after as u32,
        overflow,
        ring_bytes,
    })
}

/// A misspelt launcher or SDK key, in any block (a handler may take any key of its own, but
/// one a letter or two from `restart_limit` is not one): `restartlimit: unknown key (did you
/// mean "restart_limit"?)`. The handler's own `declared` keys are never flagged.
fn misspelt_keys(block: &HandlerBlock, declared: &[String]) -> Vec<(String, String)> {
    let ours = || {
        BLOCK_KEYS
            .iter()
            .chain(&SUPERVISION_KEYS)
            .chain(&SDK_KEYS)
            .copied()
    };
    block
        .attributes
        .keys()
        .filter(|k| !ours().any(|o| o == k.as_str()) && !declared.contains(k))
        .filter_map(|k| {
            did_you_mean(k, ours())
                .map(|m| (k.clone(), format!("unknown key (did you mean {m:?}?)")))
        })
        .collect()
}

/// What a handler binary said about its block (`--check-config`).
#[derive(Debug, Default)]
struct Checked {
    /// The keys it takes (`None`: it declares none, every key is accepted).
    keys: Option<Vec<String>>,
    errors: Vec<KeyProblem>,
    warnings: Vec<String>,
}

/// How long a handler binary may take to answer `--check-config`.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether `binary` is built on the handler SDK (it carries
/// [`CHECK_CONFIG_MARKER`]) and so answers `--check-config`; a script or another program is
/// never run for a check.
fn answers_check_config(binary: &Path) -> bool {
    match std::fs::read(binary) {
        Ok(bytes) => memchr::memmem::find(&bytes, CHECK_CONFIG_MARKER).is_some(),
        Err(_) => false,
    }
}

/// Asks a handler binary built on the SDK to check its block: `BINARY --check-config` with
/// the block in its environment, as it would get it at start.
fn check_config(spec: &HandlerSpec, pipeline: &Pipeline) -> anyhow::Result<Checked> {
    use std::io::Read as _;
    if !answers_check_config(&spec.binary) {
        return Ok(Checked::default());
    }
    let config = Value::Object(spec.block.attributes.clone()).to_string();
    let mut child = std::process::Command::new(&spec.binary)
        .arg("--check-config")
        .env(env::NAME, &spec.block.handler)
        .env(env::CONFIG, config)
        .env(
            env::BLOCK,
            format!("{}: {}", pipeline.source.display(), spec.block.json_path()),
        )
        .env(LOG_ENV, "error")
        .env_remove("NOTIFY_SOCKET")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("cannot run {} --check-config", spec.binary.display()))?;
    let mut out = child.stdout.take().context("its standard output")?;
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = out.read_to_string(&mut text);
        text
    });
    let deadline = std::time::Instant::now() + CHECK_TIMEOUT;
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "{} --check-config did not answer within {CHECK_TIMEOUT:?}",
                spec.binary.display()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let text = reader.join().unwrap_or_default();
    let reply: Value = serde_json::from_str(text.trim()).with_context(|| {
        format!(
            "{} --check-config gave no answer ({:?})",
            spec.binary.display(),
            text.trim()
        )
    })?;
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    };
    Ok(Checked {
        keys: reply["keys"].as_array().map(|_| strings(&reply["keys"])),
        errors: serde_json::from_value(reply["errors"].clone()).unwrap_or_default(),
        warnings: strings(&reply["warnings"]),
    })
}

/// Why a path cannot be used, in words: `does not exist`, `is a loop of symbolic links`,
/// `is a symbolic link to X, which does not exist`, or the system's message.
pub fn path_problem(path: &Path) -> Option<String> {
    match std::fs::metadata(path) {
        Ok(_) => None,
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
            Some("is a loop of symbolic links (too many levels of symbolic links)".into())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match std::fs::read_link(path) {
            Ok(target) => Some(format!(
                "is a symbolic link to {}, which does not exist",
                target.display()
            )),
            Err(_) => Some("does not exist".into()),
        },
        Err(e) => Some(e.to_string()),
    }
}

/// Every problem found while checking a pipeline, one message each.
#[derive(Debug)]
pub struct Problems(pub Vec<String>);

impl std::fmt::Display for Problems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl std::error::Error for Problems {}

impl Plan {
    /// Checks everything that can be checked before spawning: the pipeline file, every
    /// handler binary and setting (each binary built on the SDK checks its own keys:
    /// `--check-config`), the reader binary, the input path. Warnings (keys accepted and
    /// ignored) are logged.
    ///
    /// # Errors
    /// [`Problems`]: every problem found, one line each, saying what is wrong and where.
    pub fn new(
        pipeline_path: &Path,
        input: Option<&Path>,
        socket: Option<&Path>,
        follow: bool,
        log: LogLevel,
        ring_bytes: usize,
        dead_letter: PathBuf,
    ) -> Result<Plan, Problems> {
        let mut problems = Vec::new();
        let mut note = |r: anyhow::Result<()>| {
            if let Err(e) = r {
                problems.push(format!("{e:#}"));
            }
        };
        note(check_ring_size(ring_bytes, "--ring-size"));
        note(check_dead_letter(&dead_letter));
        let pipeline = match pipeline_path_problem(pipeline_path).map_or_else(
            || pipeline::load(pipeline_path).map_err(anyhow::Error::from),
            Err,
        ) {
            Ok(p) => Some(p),
            Err(e) => {
                note(Err(e));
                None
            }
        };
        let dir = match own_dir() {
            Ok(d) => d,
            Err(e) => return Err(Problems(vec![format!("{e:#}")])),
        };
        let mut handlers = Vec::new();
        if let Some(pipeline) = &pipeline {
            for block in &pipeline.handlers {
                match check_block(block, pipeline, &dir, ring_bytes) {
                    Ok(spec) => handlers.push(spec),
                    Err(errors) => problems.extend(errors),
                }
            }
        }
        let reader = dir.join("sf-reader");
        if !is_executable(&reader) {
            problems.push(format!(
                "the reader executable {} is missing: build the workspace (cargo build --release)",
                reader.display()
            ));
        }
        let input = match check_input(input, socket, follow) {
            Ok(i) => Some(i),
            Err(e) => {
                problems.push(format!("{e:#}"));
                None
            }
        };
        match (pipeline, input) {
            (Some(pipeline), Some(input)) if problems.is_empty() => Ok(Plan {
                pipeline,
                input,
                reader,
                handlers,
                log,
                dead_letter,
                ring_bytes,
                reader_options: Vec::new(),
            }),
            _ => Err(Problems(problems)),
        }
    }
}

/// A pipeline file that is a loop of symbolic links (the reading error would only say "Too
/// many levels of symbolic links").
fn pipeline_path_problem(path: &Path) -> Option<anyhow::Error> {
    path_problem(path)
        .filter(|p| p.starts_with("is a loop"))
        .map(|p| anyhow::anyhow!("{}: cannot read pipeline file: it {p}", path.display()))
}

/// Checks one handler block: its binary, its supervision keys, misspelt keys, and what the
/// binary says of its block (`--check-config`). Errors are every problem found.
fn check_block(
    block: &HandlerBlock,
    pipeline: &Pipeline,
    dir: &Path,
    ring_bytes: usize,
) -> Result<HandlerSpec, Vec<String>> {
    let at = |key: &str| format!("{}: {}.{key}", pipeline.source.display(), block.json_path());
    let mut errors = Vec::new();
    let binary = find_handler(block, pipeline, dir).map_err(|e| format!("{e:#}"));
    let supervision = supervision(block, pipeline, ring_bytes).map_err(|e| format!("{e:#}"));
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
    let (binary, supervision) = match (binary, supervision) {
        (Ok(b), Ok(s)) => (b, s),
        (b, s) => {
            errors.extend(b.err());
            errors.extend(s.err());
            // Misspelt keys are worth saying even when the binary is missing.
            errors.extend(
                misspelt_keys(block, &[])
                    .into_iter()
                    .map(|(k, m)| format!("{}: {m}", at(&k))),
            );
            return Err(errors);
        }
    };
    let spec = HandlerSpec {
        block: block.clone(),
        binary,
        label,
        supervision,
    };
    let checked = match check_config(&spec, pipeline) {
        Ok(c) => c,
        Err(e) => {
            return Err(vec![format!(
                "{}: {}: {e:#}",
                pipeline.source.display(),
                block.json_path()
            )]);
        }
    };
    let declared = checked.keys.clone().unwrap_or_default();
    for (k, m) in misspelt_keys(block, &declared) {
        // The binary may have said the same of it.
        if !checked
            .errors
            .iter()
            .any(|e| e.key.as_deref() == Some(k.as_str()))
        {
            errors.push(format!("{}: {m}", at(&k)));
        }
    }
    let block_at = format!("{}: {}", pipeline.source.display(), block.json_path());
    errors.extend(checked.errors.iter().map(|e| match &e.key {
        Some(k) => format!("{}: {}", at(k), e.message),
        None => format!("{block_at}: {}", e.message),
    }));
    for w in &checked.warnings {
        log::warn!("{}", at(w));
    }
    if errors.is_empty() {
        Ok(spec)
    } else {
        Err(errors)
    }
}

/// Checks the input: a readable trace file or directory, or a socket whose directory exists.
fn check_input(input: Option<&Path>, socket: Option<&Path>, follow: bool) -> anyhow::Result<Input> {
    if let Some(socket) = socket {
        if input.is_some() {
            bail!("give either a trace PATH or --socket, not both");
        }
        let parent = socket
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if let Some(problem) = path_problem(parent) {
            bail!(
                "socket {}: directory {} {problem}",
                socket.display(),
                parent.display()
            );
        }
        if !parent.is_dir() {
            bail!(
                "socket {}: {} is not a directory",
                socket.display(),
                parent.display()
            );
        }
        return Ok(Input::Socket(socket.to_owned()));
    }
    let Some(input) = input else {
        bail!(
            "no input: give a trace file or directory after the pipeline file (sf-launch PIPELINE.json PATH), or --socket"
        );
    };
    if let Some(problem) = path_problem(input) {
        bail!("trace path {} {problem}", input.display());
    }
    // access(2), not open(2): opening a FIFO would wait for its writer.
    let mode = if input.is_dir() {
        nix::unistd::AccessFlags::R_OK | nix::unistd::AccessFlags::X_OK
    } else {
        nix::unistd::AccessFlags::R_OK
    };
    if let Err(e) = nix::unistd::access(input, mode) {
        bail!(
            "trace path {} cannot be read: {}",
            input.display(),
            std::io::Error::from(e)
        );
    }
    if follow && !input.is_dir() {
        bail!(
            "--follow watches a directory; {} is not one",
            input.display()
        );
    }
    Ok(Input::Path {
        path: input.to_owned(),
        follow,
    })
}

/// The dead-letter file is written only when a record is quarantined, maybe hours into a
/// run: check now that it can be (its directory exists and is writable; an existing file is
/// writable), so that the record is not lost then.
fn check_dead_letter(path: &Path) -> anyhow::Result<()> {
    use nix::unistd::{AccessFlags, access};
    let what = |e: nix::errno::Errno| std::io::Error::from(e);
    if path.exists() {
        if path.is_dir() {
            bail!("--dead-letter {}: is a directory", path.display());
        }
        return access(path, AccessFlags::W_OK).map_err(|e| {
            anyhow::anyhow!(
                "--dead-letter {}: cannot be written: {}",
                path.display(),
                what(e)
            )
        });
    }
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !parent.is_dir() {
        bail!(
            "--dead-letter {}: directory {} does not exist",
            path.display(),
            parent.display()
        );
    }
    access(parent, AccessFlags::W_OK | AccessFlags::X_OK).map_err(|e| {
        anyhow::anyhow!(
            "--dead-letter {}: directory {} cannot be written: {}",
            path.display(),
            parent.display(),
            what(e)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(json: &str) -> (HandlerBlock, Pipeline) {
        let p = sf_processor::pipeline::parse(json, Path::new("p.json")).unwrap();
        (p.handlers[0].clone(), p)
    }

    #[test]
    fn supervision_defaults_are_systemd_like() {
        let (b, p) = block(r#"{"pipeline":[{"handler":"printer"}]}"#);
        let s = supervision(&b, &p, 1 << 20).unwrap();
        assert_eq!(s.restart, RestartPolicy::OnFailure);
        assert_eq!(
            (s.restart_limit, s.restart_window),
            (5, Duration::from_secs(10))
        );
        assert_eq!(s.watchdog, Some(Duration::from_secs(60)));
        assert_eq!(
            (s.poison_after, s.overflow, s.ring_bytes),
            (3, Overflow::Block, 1 << 20)
        );
    }

    #[test]
    fn supervision_keys_are_read_and_checked() {
        let (b, p) = block(
            r#"{"pipeline":[{"handler":"x","restart":"never","restart_limit":"50","watchdog_ms":0,"overflow":"drop","ring_size":65536}]}"#,
        );
        let s = supervision(&b, &p, 1 << 20).unwrap();
        assert_eq!(
            (s.restart, s.restart_limit, s.watchdog),
            (RestartPolicy::Never, 50, None)
        );
        assert_eq!((s.overflow, s.ring_bytes), (Overflow::Drop, 65536));
        let (b, p) = block(r#"{"pipeline":[{"handler":"x","ring_size":4096}]}"#);
        assert_eq!(
            supervision(&b, &p, 1 << 20).unwrap_err().to_string(),
            "p.json: pipeline[0].ring_size: ring size of 4096 bytes is out of range (65536 to 1073741824 bytes)"
        );
        let (b, p) = block(r#"{"pipeline":[{"handler":"x","restart":"sometimes"}]}"#);
        assert_eq!(
            supervision(&b, &p, 1).unwrap_err().to_string(),
            "p.json: pipeline[0].restart: expected \"always\", \"on-failure\" or \"never\""
        );
        let (b, p) = block(r#"{"pipeline":[{"handler":"x","watchdog_ms":-1}]}"#);
        assert_eq!(
            supervision(&b, &p, 1).unwrap_err().to_string(),
            "p.json: pipeline[0].watchdog_ms: expected a non-negative integer, found -1"
        );
    }
}
