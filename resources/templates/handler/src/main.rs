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
}

fn main() -> std::process::ExitCode {
    handler_sdk::run(Example::default())
}
