//! The handler SDK: write a SysFlow handler as a standalone binary.
//!
//! Implement [`Handler`] (one method per record type, all optional), then call [`run`] from
//! `main`. Under `sf-launch`, `run` attaches to the shared-memory ring the launcher created
//! for this handler, keeps the entity tables, builds each record's [`Context`] (process,
//! ancestors, container, pod, file, new file, header, sequence number) the way the reference
//! `sysflowreader` does, and calls your methods in stream order.
//!
//! ```no_run
//! use handler_sdk::prelude::*;
//!
//! struct Printer;
//!
//! impl Handler for Printer {
//!     fn handle_process_event(&mut self, ctx: &Context<'_>, pe: &ProcessEvent) -> HandlerResult {
//!         let exe = ctx.process().map_or("", |p| p.exe.as_str());
//!         log::info!("ProcEvt {exe}, {}", pe.tid);
//!         Ok(())
//!     }
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     handler_sdk::run(Printer)
//! }
//! ```
//!
//! What the SDK gives a handler:
//!
//! - **Configuration.** `init` receives the handler's block of `pipeline.json` as a
//!   [`HandlerConfig`], with `<HANDLER>_<KEY>` environment overrides applied as in the
//!   reference ([`config`]); [`HandlerConfig::parse`] deserializes it into the handler's own
//!   `serde` type, and a mismatch is a [`ConfigError`] naming the handler and the key
//!   (`handler "alert": bad configuration: rules[0].dport: invalid type: ...`).
//! - **Context.** [`Context::seq`] (the record's sequence number in the stream),
//!   [`Context::header`], [`Context::process`], [`Context::parent`], [`Context::ancestors`],
//!   [`Context::container`], [`Context::pod`], [`Context::file`], [`Context::new_file`];
//!   helpers [`Process::cmdline`](model::Process::cmdline) (the reference's `proc.cmdline`),
//!   [`op_flags::names`](model::op_flags::names) (the reference's opFlags names) and
//!   [`ipv4_dotted`](model::ipv4_dotted) (SysFlow's IPv4 integers as dotted quads).
//! - **Errors never stop the pipeline.** An `Err` returned by a handler method is logged
//!   with the record's sequence number and kind and counted; the next record comes.
//! - **Chaining.** A handler whose block has `"out": "<type> <channel>"` feeds the handlers
//!   whose `"in"` names that channel: [`Context::emit`] passes the record being handled on,
//!   annotated with [`Policy`]s (the rules it matched), and the SDK forwards every entity
//!   record by itself; downstream, [`Context::policies`] lists them. A handler without
//!   `"out"` is unchanged.
//! - **Idle time.** [`Handler::idle`] is called when no record waits (each time the handler
//!   catches up with the reader, then every 200 ms or so), for work such as reporting after
//!   a signal.
//! - **Delivery.** Records are acknowledged only after [`Handler::commit`] made their output
//!   durable, so a restarted process redoes what was not (at-least-once, duplicates bounded
//!   by one batch, never a gap; a commit that fails is retried with backoff, and one that
//!   says its destination is down, [`DestinationDown`], is waited for at the end of the
//!   input too); a stateful handler's [`Handler::snapshot`] is kept by the
//!   launcher and given back to a restarted process ([`Handler::restore`], helpers in
//!   [`snapshot`]), so its results are those of a process never killed.
//!
//! The guide in this crate's `README.md` walks from `cargo new` to a running handler.
#![deny(missing_docs)]

pub mod config;
#[cfg(feature = "in-process")]
pub mod in_process;
pub mod output;
mod runtime;
pub mod snapshot;
pub mod status;

pub use runtime::{
    DEFAULT_COMMIT_MS, DEFAULT_COMMIT_RECORDS, DestinationDown, ENV_CONFIG, ENV_DEAD_LETTER,
    ENV_JOURNAL_FD, ENV_LAUNCHER_PID, ENV_NAME, ENV_OUT_RINGS, ENV_RING_FD, ENV_SKIP_REASON,
    ENV_SKIP_SEQ, ENV_SNAPSHOT_FD, RunError, run, run_with_shutdown,
};
pub use sf_processor::chain::Policy;
pub use sf_processor::handler::{
    ConfigError, ConfigKeys, DispatchStats, EXIT_FINISHED_WITH_ERRORS, Handler, HandlerConfig,
    HandlerResult, SnapshotResult,
};
pub use status::reopen_requested;

/// The process's log (the reference format, on standard output and error) and [`print`](
/// logging::print) for whole blocks of output (tables, reports) that must keep their order
/// with the log lines and count in the exit status when they cannot be written.
pub mod logging {
    pub use sf_processor::logging::{
        output_error, output_errors, print, stdout_closed, stdout_errors,
    };
}
/// Logs a repeated message at most once per kind every 10 s, with the count of those not
/// logged, and the totals at the end of the process: `handler_sdk::limited!(error,
/// "transport down", "cannot send: {e}")`.
pub use sf_processor::gopath;
pub use sf_processor::limited;
pub use sf_processor::model;
pub use sf_processor::tables::{Ancestors, Context, EntityTables};

pub use log;

/// Everything a handler needs: `use handler_sdk::prelude::*;` (including the `log` crate, so
/// `log::info!` works with no dependency but this one).
pub mod prelude {
    pub use crate::log;
    pub use crate::model::{
        Container, ContainerType, File, FileEvent, FileFlow, Foid, K8sAction, K8sComponent,
        K8sEvent, NetworkEvent, NetworkFlow, ObjectState, Oid, Pod, Process, ProcessEvent,
        ProcessFlow, Record, RecordKind, SfHeader, ipv4_dotted, op_flags,
    };
    pub use crate::{
        Ancestors, ConfigError, ConfigKeys, Context, Handler, HandlerConfig, HandlerResult, Policy,
        SnapshotResult,
    };
}
