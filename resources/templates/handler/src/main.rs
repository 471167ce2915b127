//! A SysFlow handler: logs every program a process executes, with its command line and its
//! parent, and counts them. Copy this crate, rename it, and change the handler.
//!
//! Pipeline block (every key is optional but `handler`):
//!
//! ```json
//! {"processor": "sysflowreader", "handler": "example", "in": "sysflow sysflowchan",
//!  "exe_prefix": "/bin/"}
//! ```
//!
//! `EXAMPLE_EXE_PREFIX=/usr/ sf-launch ...` overrides `exe_prefix` from the environment.

use handler_sdk::prelude::*;

/// The handler's block of pipeline.json, typed. Keys it does not name (`handler`,
/// `processor`, `in`, the launcher's supervision keys) are ignored.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct Config {
    /// Only executables whose path starts with this (all when empty).
    exe_prefix: String,
}

/// The handler's state: whatever it needs across records.
#[derive(Debug, Default)]
struct Example {
    config: Config,
    execs: u64,
}

impl Handler for Example {
    /// The keys of this handler's block (besides the launcher's and the SDK's): a misspelt
    /// key is then an error before the pipeline starts, with the key meant.
    fn config_keys() -> Option<ConfigKeys> {
        Some(ConfigKeys::of::<Config>())
    }

    /// Called once, before the first record, with the handler's block.
    fn init(&mut self, config: &HandlerConfig) -> HandlerResult {
        // A bad block stops the handler with the key at fault:
        // handler "example": bad configuration: exe_prefix: invalid type: ...
        self.config = config.parse()?;
        Ok(())
    }

    /// One call per process event (clone, exec, exit, ...), with the record's context.
    fn handle_process_event(&mut self, ctx: &Context<'_>, pe: &ProcessEvent) -> HandlerResult {
        if pe.op_flags & op_flags::EXEC == 0 {
            return Ok(());
        }
        // An Err is logged with the record's sequence number and counted; the next record
        // comes all the same.
        let process = ctx.process().ok_or("exec of a process never described")?;
        if !process.exe.starts_with(&self.config.exe_prefix) {
            return Ok(());
        }
        self.execs += 1;
        let parent = ctx.parent().map_or("?", |p| p.exe.as_str());
        log::info!(
            "record {}: {} runs {} (parent {parent})",
            ctx.seq(),
            process.pid(),
            process.cmdline().trim_end()
        );
        Ok(())
    }

    /// Called once after the last record.
    fn cleanup(&mut self) {
        log::info!("{} programs executed", self.execs);
    }

    // Delivery. The SDK acknowledges records only after a commit; its log lines are flushed
    // by the SDK itself, so this handler needs no `commit`. One that writes output of its own
    // (a file, a socket) makes it durable there: `fn commit(&mut self) -> HandlerResult`
    // flushes its buffers (an `Err` means "not yet": nothing is acknowledged, the SDK tries
    // again). See handler-sdk/README.md, "Delivery and state".

    /// Its count is its state: the SDK stores this snapshot at every commit, and gives it
    /// back to a process restarted after a crash (`restore`), so the total at the end counts
    /// every exec once. A handler without state leaves both methods out.
    fn snapshot(&mut self) -> SnapshotResult {
        handler_sdk::snapshot::encode(&self.execs).map(Some)
    }

    fn restore(&mut self, snapshot: &[u8]) -> HandlerResult {
        self.execs = handler_sdk::snapshot::decode(snapshot)?;
        Ok(())
    }
}

fn main() -> std::process::ExitCode {
    handler_sdk::run(Example::default())
}
