//! `stats`: counts the records it receives per SysFlow record type (entities included) and
//! prints them as a table on standard output when the input ends:
//!
//! ```text
//! stats: records received
//! SFHeader          1
//! Process          10
//! ...
//! total            23
//! ```
//!
//! Types with no record are left out. Pipeline block:
//! `{"processor":"sysflowreader","handler":"stats","in":"sysflow sysflowchan"}`.

use std::io::Write;

use handler_sdk::prelude::*;

/// Counts per [`RecordKind`], indexed like `RecordKind::ALL`.
#[derive(Default)]
struct Stats {
    counts: [u64; 12],
}

impl Stats {
    fn count(&mut self, kind: RecordKind) -> HandlerResult {
        self.counts[kind as usize] += 1;
        Ok(())
    }

    fn table(&self) -> String {
        let mut out = String::from("stats: records received\n");
        for kind in RecordKind::ALL {
            let n = self.counts[kind as usize];
            if n > 0 {
                out.push_str(&format!("{:<14}{n:>10}\n", kind.name()));
            }
        }
        out.push_str(&format!(
            "{:<14}{:>10}\n",
            "total",
            self.counts.iter().sum::<u64>()
        ));
        out
    }
}

impl Handler for Stats {
    fn entities_enabled(&self) -> bool {
        true
    }
    fn handle_header(&mut self, _: &Context<'_>, _: &SfHeader) -> HandlerResult {
        self.count(RecordKind::Header)
    }
    fn handle_container(&mut self, _: &Context<'_>, _: &Container) -> HandlerResult {
        self.count(RecordKind::Container)
    }
    fn handle_pod(&mut self, _: &Context<'_>, _: &Pod) -> HandlerResult {
        self.count(RecordKind::Pod)
    }
    fn handle_process(&mut self, _: &Context<'_>, _: &Process) -> HandlerResult {
        self.count(RecordKind::Process)
    }
    fn handle_file(&mut self, _: &Context<'_>, _: &File) -> HandlerResult {
        self.count(RecordKind::File)
    }
    fn handle_process_event(&mut self, _: &Context<'_>, _: &ProcessEvent) -> HandlerResult {
        self.count(RecordKind::ProcessEvent)
    }
    fn handle_process_flow(&mut self, _: &Context<'_>, _: &ProcessFlow) -> HandlerResult {
        self.count(RecordKind::ProcessFlow)
    }
    fn handle_file_flow(&mut self, _: &Context<'_>, _: &FileFlow) -> HandlerResult {
        self.count(RecordKind::FileFlow)
    }
    fn handle_file_event(&mut self, _: &Context<'_>, _: &FileEvent) -> HandlerResult {
        self.count(RecordKind::FileEvent)
    }
    fn handle_network_flow(&mut self, _: &Context<'_>, _: &NetworkFlow) -> HandlerResult {
        self.count(RecordKind::NetworkFlow)
    }
    fn handle_network_event(&mut self, _: &Context<'_>, _: &NetworkEvent) -> HandlerResult {
        self.count(RecordKind::NetworkEvent)
    }
    fn handle_k8s_event(&mut self, _: &Context<'_>, _: &K8sEvent) -> HandlerResult {
        self.count(RecordKind::K8sEvent)
    }

    fn cleanup(&mut self) {
        // One write, so the table stays in one piece next to other processes' output.
        let _ = std::io::stdout().lock().write_all(self.table().as_bytes());
    }
}

fn main() -> std::process::ExitCode {
    handler_sdk::run(Stats::default())
}
