//! `noop`: a handler that counts the records it receives and does nothing else, for the
//! pipeline benchmark (`bench/run.sh`). The SDK still decodes every frame, keeps the entity
//! tables and builds every record's context; only the handler's own work is nil.
//!
//! ```text
//! cargo build --release -p handler-sdk --features in-process --example noop
//! # as a pipeline handler: "binary": "target/release/examples/noop" in its block
//! target/release/examples/noop --in-process [--copies N] TRACE
//! ```
//!
//! With `--copies N`, N no-op handlers are called in one process (each with its own entity
//! tables), the in-process counterpart of N handler processes. Prints `noop: N records` on
//! standard error at the end (once per copy).

use std::process::ExitCode;

use handler_sdk::in_process::{InProcessArgs, USAGE, run_in_process};
use handler_sdk::prelude::*;

/// Counts records; entities too (`entities_enabled`), so every record reaches it.
#[derive(Debug, Default)]
struct Noop {
    records: u64,
}

impl Noop {
    fn count(&mut self) -> HandlerResult {
        self.records += 1;
        Ok(())
    }
}

impl Handler for Noop {
    fn config_keys() -> Option<ConfigKeys> {
        Some(ConfigKeys::new(&[]))
    }

    fn entities_enabled(&self) -> bool {
        true
    }
    fn handle_header(&mut self, _: &Context<'_>, _: &SfHeader) -> HandlerResult {
        self.count()
    }
    fn handle_container(&mut self, _: &Context<'_>, _: &Container) -> HandlerResult {
        self.count()
    }
    fn handle_pod(&mut self, _: &Context<'_>, _: &Pod) -> HandlerResult {
        self.count()
    }
    fn handle_process(&mut self, _: &Context<'_>, _: &Process) -> HandlerResult {
        self.count()
    }
    fn handle_file(&mut self, _: &Context<'_>, _: &File) -> HandlerResult {
        self.count()
    }
    fn handle_process_event(&mut self, _: &Context<'_>, _: &ProcessEvent) -> HandlerResult {
        self.count()
    }
    fn handle_process_flow(&mut self, _: &Context<'_>, _: &ProcessFlow) -> HandlerResult {
        self.count()
    }
    fn handle_file_flow(&mut self, _: &Context<'_>, _: &FileFlow) -> HandlerResult {
        self.count()
    }
    fn handle_file_event(&mut self, _: &Context<'_>, _: &FileEvent) -> HandlerResult {
        self.count()
    }
    fn handle_network_flow(&mut self, _: &Context<'_>, _: &NetworkFlow) -> HandlerResult {
        self.count()
    }
    fn handle_network_event(&mut self, _: &Context<'_>, _: &NetworkEvent) -> HandlerResult {
        self.count()
    }
    fn handle_k8s_event(&mut self, _: &Context<'_>, _: &K8sEvent) -> HandlerResult {
        self.count()
    }
    fn cleanup(&mut self) {
        eprintln!("noop: {} records", self.records);
    }
}

fn main() -> ExitCode {
    match InProcessArgs::from_env() {
        None => handler_sdk::run(Noop::default()),
        Some(Ok(args)) => {
            let handlers = (0..args.copies).map(|_| Noop::default()).collect();
            run_in_process(&args, handlers)
        }
        Some(Err(e)) => {
            eprintln!("{e}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
