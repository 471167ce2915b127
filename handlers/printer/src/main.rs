//! `printer`: logs one line per process event, process flow, file flow, file event, network
//! flow and network event, as the reference printer handler (`sf-processor`
//! `plugins/handlers/printer`) does:
//!
//! ```text
//! INFO: 2026/11/30 08:30:00 printer.rs:43: ProcEvt ./server, 13823
//! ```
//!
//! Pipeline block: `{"processor":"sysflowreader","handler":"printer","in":"sysflow sysflowchan"}`.

mod printer;

fn main() -> std::process::ExitCode {
    handler_sdk::run(printer::Printer)
}
