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
#![deny(missing_docs)]

mod runtime;

pub use runtime::{
    ENV_CONFIG, ENV_DEAD_LETTER, ENV_JOURNAL_FD, ENV_LAUNCHER_PID, ENV_NAME, ENV_RING_FD,
    ENV_SKIP_REASON, ENV_SKIP_SEQ, RunError, run, run_with_shutdown,
};
pub use sf_processor::handler::{DispatchStats, Handler, HandlerConfig, HandlerResult};
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
    pub use crate::{Context, Handler, HandlerConfig, HandlerResult};
}
