//! The printer handler: the reference printer's log lines.

use handler_sdk::prelude::*;

/// The printer handler; it keeps no state.
pub struct Printer;

/// The record's process executable, or `""` when the process is unknown.
fn exe<'a>(ctx: &Context<'a>) -> &'a str {
    ctx.process().map_or("", |p| p.exe.as_str())
}

impl Handler for Printer {
    fn config_keys() -> Option<ConfigKeys> {
        // The reference printer takes no settings.
        Some(ConfigKeys::new(&[]))
    }

    fn handle_network_flow(&mut self, ctx: &Context<'_>, nf: &NetworkFlow) -> HandlerResult {
        log::info!("NetworkFlow {}, {}", exe(ctx), nf.dport);
        Ok(())
    }

    fn handle_file_flow(&mut self, ctx: &Context<'_>, ff: &FileFlow) -> HandlerResult {
        log::info!("FileFlow {}, {}", exe(ctx), ff.fd);
        Ok(())
    }

    fn handle_file_event(&mut self, ctx: &Context<'_>, fe: &FileEvent) -> HandlerResult {
        log::info!("FileEvt {}, {}", exe(ctx), fe.tid);
        Ok(())
    }

    fn handle_network_event(&mut self, ctx: &Context<'_>, ne: &NetworkEvent) -> HandlerResult {
        log::info!("NetEvt {}, {}", exe(ctx), ne.tid);
        Ok(())
    }

    fn handle_process_event(&mut self, ctx: &Context<'_>, pe: &ProcessEvent) -> HandlerResult {
        log::info!("ProcEvt {}, {}", exe(ctx), pe.tid);
        Ok(())
    }

    fn handle_process_flow(&mut self, ctx: &Context<'_>, pf: &ProcessFlow) -> HandlerResult {
        log::info!("ProcFlow {}, {}", exe(ctx), pf.proc_oid);
        Ok(())
    }

    fn cleanup(&mut self) {
        log::trace!("Calling Cleanup on Printer channel");
    }
}
