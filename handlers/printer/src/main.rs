//! `printer`: logs one line per process event, process flow, file flow, file event, network
//! flow and network event, as the reference printer handler (`sf-processor`
//! `plugins/handlers/printer`) does:
//!
//! ```text
//! INFO: 2026/11/30 08:30:00 printer.rs:43: ProcEvt ./server, 13823
//! ```
//!
//! Pipeline block: `{"processor":"sysflowreader","handler":"printer","in":"sysflow sysflowchan"}`.
//!
//! Its lines are log lines: the SDK flushes them (`write(2)` to standard output) before it
//! acknowledges their records, so the printer needs no `commit` of its own.

mod printer;

fn main() -> std::process::ExitCode {
    handler_sdk::run(printer::Printer)
}
