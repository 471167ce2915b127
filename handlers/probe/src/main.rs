//! `probe`: a diagnostic handler. It appends one line per record to a file, with the record's
//! sequence number and resolved context, and can misbehave on purpose (crash, hang, slow down)
//! so that a pipeline's supervision settings can be tried out:
//!
//! ```json
//! {"handler": "probe", "file": "/tmp/probe.tsv", "entities": false,
//!  "crash_on_seq": 1200, "hang_on_seq": 0, "sleep_us": 0}
//! ```
//!
//! Each line is `seq kind exe pid parent-exe container pod file new-file`, tab-separated
//! (`-` for an absent value), written with one `write(2)` as the record is handled, so its
//! output is durable when the method returns and it needs no `commit`: a record
//! acknowledged is in the file, and the records of the batch a killed process had not
//! committed are written again by the next one (duplicates, never a gap). A line torn by a
//! kill in the middle of its write is cut off when the next process starts.
//!
//! - `file` (required): where to append the lines.
//! - `entities` (default false): also write entity records.
//! - `crash_on_seq`: abort (SIGABRT) when handling that record, every time.
//! - `hang_on_seq`: sleep forever when handling that record, every time.
//! - `sleep_us`: sleep that long on every record (a slow handler).
//! - `fail_from_seq`: return a handler error for every record from that one on (its line is
//!   not written): a handler failing on every record, for the log's rate limit.
//! - with `"out"` (chained): every flow and event it handles is emitted on its output
//!   channel, annotated with a policy whose `id` is `tag` (default `probe`).
//!
//! A record that comes with policies (from an upstream handler) gets one more column: their
//! ids, comma-separated.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt as _;
use std::time::Duration;

use handler_sdk::prelude::*;

#[derive(Debug, serde::Deserialize)]
struct Config {
    file: String,
    #[serde(default)]
    entities: bool,
    #[serde(default)]
    crash_on_seq: u64,
    #[serde(default)]
    hang_on_seq: u64,
    #[serde(default)]
    sleep_us: u64,
    #[serde(default)]
    fail_from_seq: u64,
    #[serde(default)]
    tag: Option<String>,
}

#[derive(Default)]
struct Probe {
    out: Option<std::fs::File>,
    entities: bool,
    crash_on_seq: u64,
    hang_on_seq: u64,
    sleep: Duration,
    /// Records from this sequence number on get a handler error (0: none).
    fail_from_seq: u64,
    /// The policy emitted records are annotated with (chained only).
    policy: Option<Policy>,
}

fn or_dash(s: Option<&str>) -> &str {
    match s {
        Some(s) if !s.is_empty() => s,
        _ => "-",
    }
}

impl Probe {
    fn record(&mut self, ctx: &Context<'_>, kind: RecordKind) -> HandlerResult {
        let seq = ctx.seq();
        if seq == self.crash_on_seq {
            std::process::abort();
        }
        if seq == self.hang_on_seq {
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        if !self.sleep.is_zero() {
            std::thread::sleep(self.sleep);
        }
        if self.fail_from_seq > 0 && seq >= self.fail_from_seq {
            return Err(
                format!("probe: fails on purpose from record {}", self.fail_from_seq).into(),
            );
        }
        let policies = if ctx.policies().is_empty() {
            String::new()
        } else {
            let ids: Vec<&str> = ctx.policies().iter().map(|p| p.id.as_str()).collect();
            format!("\t{}", ids.join(","))
        };
        let line = format!(
            "{seq}\t{kind}\t{}\t{}\t{}\t{}\t{}\t{}\t{}{policies}\n",
            or_dash(ctx.process().map(|p| p.exe.as_str())),
            ctx.process().map_or(-1, |p| p.oid.hpid),
            or_dash(ctx.parent().map(|p| p.exe.as_str())),
            or_dash(ctx.container().map(|c| c.id.as_str())),
            or_dash(ctx.pod().map(|p| p.name.as_str())),
            or_dash(ctx.file().map(|f| f.path.as_str())),
            or_dash(ctx.new_file().map(|f| f.path.as_str())),
        );
        let out = self.out.as_mut().ok_or("probe: not initialised")?;
        out.write_all(line.as_bytes())?;
        if let Some(p) = &self.policy
            && !kind.is_entity()
        {
            ctx.emit([p.clone()]);
        }
        Ok(())
    }
}

impl Handler for Probe {
    fn config_keys() -> Option<ConfigKeys> {
        Some(ConfigKeys::of::<Config>())
    }

    fn init(&mut self, config: &HandlerConfig) -> HandlerResult {
        #[derive(serde::Deserialize)]
        struct Only {
            file: Option<String>,
        }
        let cfg: Config = match config.parse::<Only>() {
            Ok(Only { file: None }) => {
                return Err("probe: the block needs \"file\": the path to write to".into());
            }
            _ => config.parse()?,
        };
        let file = std::fs::File::options()
            .create(true)
            .mode(0o600)
            .append(true)
            .read(true)
            .open(&cfg.file)
            .map_err(|e| format!("{}: {e}", cfg.file))?;
        // A line torn by a kill: its record was not acknowledged, it comes again.
        handler_sdk::output::cut_torn_line(&file).map_err(|e| format!("{}: {e}", cfg.file))?;
        self.out = Some(file);
        self.entities = cfg.entities;
        self.crash_on_seq = cfg.crash_on_seq;
        self.hang_on_seq = cfg.hang_on_seq;
        self.sleep = Duration::from_micros(cfg.sleep_us);
        self.fail_from_seq = cfg.fail_from_seq;
        if config.get_str("out").is_some() {
            let id = cfg.tag.unwrap_or_else(|| "probe".into());
            self.policy = Some(Policy::new(id, "seen by the probe", 0));
        }
        Ok(())
    }

    fn entities_enabled(&self) -> bool {
        self.entities
    }
    fn handle_header(&mut self, ctx: &Context<'_>, _: &SfHeader) -> HandlerResult {
        self.record(ctx, RecordKind::Header)
    }
    fn handle_container(&mut self, ctx: &Context<'_>, _: &Container) -> HandlerResult {
        self.record(ctx, RecordKind::Container)
    }
    fn handle_pod(&mut self, ctx: &Context<'_>, _: &Pod) -> HandlerResult {
        self.record(ctx, RecordKind::Pod)
    }
    fn handle_process(&mut self, ctx: &Context<'_>, _: &Process) -> HandlerResult {
        self.record(ctx, RecordKind::Process)
    }
    fn handle_file(&mut self, ctx: &Context<'_>, _: &File) -> HandlerResult {
        self.record(ctx, RecordKind::File)
    }
    fn handle_process_event(&mut self, ctx: &Context<'_>, _: &ProcessEvent) -> HandlerResult {
        self.record(ctx, RecordKind::ProcessEvent)
    }
    fn handle_process_flow(&mut self, ctx: &Context<'_>, _: &ProcessFlow) -> HandlerResult {
        self.record(ctx, RecordKind::ProcessFlow)
    }
    fn handle_file_flow(&mut self, ctx: &Context<'_>, _: &FileFlow) -> HandlerResult {
        self.record(ctx, RecordKind::FileFlow)
    }
    fn handle_file_event(&mut self, ctx: &Context<'_>, _: &FileEvent) -> HandlerResult {
        self.record(ctx, RecordKind::FileEvent)
    }
    fn handle_network_flow(&mut self, ctx: &Context<'_>, _: &NetworkFlow) -> HandlerResult {
        self.record(ctx, RecordKind::NetworkFlow)
    }
    fn handle_network_event(&mut self, ctx: &Context<'_>, _: &NetworkEvent) -> HandlerResult {
        self.record(ctx, RecordKind::NetworkEvent)
    }
    fn handle_k8s_event(&mut self, ctx: &Context<'_>, _: &K8sEvent) -> HandlerResult {
        self.record(ctx, RecordKind::K8sEvent)
    }
}

fn main() -> std::process::ExitCode {
    handler_sdk::run(Probe::default())
}
