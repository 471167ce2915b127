//! `stats`: counts the records it receives per SysFlow record type (entities included) and
//! the bytes each process read and wrote in files and on the network, and prints them as
//! tables on standard output when the input ends, and whenever it gets SIGUSR1:
//!
//! ```text
//! stats: records received
//! SFHeader               1
//! Process               10
//! ...
//! total                 23
//! stats: top 10 processes by file bytes
//!          total           read        written      pid  exe
//!            761            761              0    16681  /bin/cat
//! stats: top 10 processes by network bytes
//!          total           read        written      pid  exe
//! ```
//!
//! Types with no record are left out of the first table. A process is its host PID and
//! executable (a process that execs another program gets a second row); its bytes are the
//! sums of `numRRecvBytes` (read) and `numWSendBytes` (written) of its file flows, or of its
//! network flows. See `README.md` for the pipeline block.
//!
//! It is stateful: its counts are its snapshot (`Handler::snapshot`), which the launcher
//! keeps, so a `stats` killed or restarted mid-run (or while printing its final tables)
//! prints the tables a never-killed one would.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use handler_sdk::prelude::*;

/// The block's settings.
#[derive(Debug, serde::Deserialize)]
#[serde(default)]
struct Config {
    /// Rows of each process table; 0 leaves the process tables out.
    top: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config { top: 10 }
    }
}

/// Bytes read and written.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Bytes {
    read: u64,
    written: u64,
}

impl Bytes {
    fn total(self) -> u64 {
        self.read + self.written
    }
}

/// Bytes per process: host PID, then one entry per executable seen with that PID.
#[derive(Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct PerProcess(HashMap<i64, Vec<(String, Bytes)>>);

impl PerProcess {
    fn add(&mut self, pid: i64, exe: &str, read: i64, written: i64) {
        let exes = self.0.entry(pid).or_default();
        let i = match exes.iter().position(|(e, _)| e == exe) {
            Some(i) => i,
            None => {
                exes.push((exe.to_owned(), Bytes::default()));
                exes.len() - 1
            }
        };
        let b = &mut exes[i].1;
        // Counters are never negative in a sound trace; a negative one counts as 0.
        b.read += read.max(0) as u64;
        b.written += written.max(0) as u64;
    }

    /// The `n` processes with the most bytes, most first (ties: lower PID, then exe, first).
    fn top(&self, n: usize) -> Vec<(i64, &str, Bytes)> {
        let mut all: Vec<(i64, &str, Bytes)> = self
            .0
            .iter()
            .flat_map(|(pid, exes)| exes.iter().map(|(e, b)| (*pid, e.as_str(), *b)))
            .collect();
        all.sort_by(|a, b| {
            b.2.total()
                .cmp(&a.2.total())
                .then(a.0.cmp(&b.0))
                .then(a.1.cmp(b.1))
        });
        all.truncate(n);
        all
    }
}

/// What the handler counts: its snapshot (kept by the launcher across restarts, so tables
/// after a crash are those of a handler never killed).
#[derive(Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Counts {
    /// Records per [`RecordKind`], indexed like `RecordKind::ALL`.
    records: [u64; 12],
    file: PerProcess,
    network: PerProcess,
}

/// The stats handler.
#[derive(Debug, Default)]
struct Stats {
    counts: Counts,
    top: usize,
    /// Set by SIGUSR1: print the tables at the next record or idle tick.
    report: Arc<AtomicBool>,
}

impl Stats {
    fn count(&mut self, kind: RecordKind) -> HandlerResult {
        self.counts.records[kind as usize] += 1;
        self.report_if_asked();
        Ok(())
    }

    fn report_if_asked(&mut self) {
        if self.report.load(Ordering::Relaxed) && self.report.swap(false, Ordering::Relaxed) {
            self.print();
        }
    }

    fn print(&self) {
        // One write, so the tables stay in one piece next to other processes' output; a
        // failed write shows in the exit status.
        handler_sdk::logging::print(self.tables().as_bytes());
    }

    fn tables(&self) -> String {
        let mut out = String::from("stats: records received\n");
        for kind in RecordKind::ALL {
            let n = self.counts.records[kind as usize];
            if n > 0 {
                out.push_str(&format!("{:<14}{n:>10}\n", kind.name()));
            }
        }
        out.push_str(&format!(
            "{:<14}{:>10}\n",
            "total",
            self.counts.records.iter().sum::<u64>()
        ));
        if self.top > 0 {
            for (what, table) in [
                ("file", &self.counts.file),
                ("network", &self.counts.network),
            ] {
                out.push_str(&format!(
                    "stats: top {} processes by {what} bytes\n{:>14} {:>14} {:>14} {:>8}  exe\n",
                    self.top, "total", "read", "written", "pid"
                ));
                for (pid, exe, b) in table.top(self.top) {
                    out.push_str(&format!(
                        "{:>14} {:>14} {:>14} {pid:>8}  {exe}\n",
                        b.total(),
                        b.read,
                        b.written
                    ));
                }
            }
        }
        out
    }
}

/// The record's process as (PID, executable); `?` for a process the stream never described.
fn process<'a>(ctx: &Context<'a>, oid: &Oid) -> (i64, &'a str) {
    (oid.hpid, ctx.process().map_or("?", |p| p.exe.as_str()))
}

impl Handler for Stats {
    fn init(&mut self, config: &HandlerConfig) -> HandlerResult {
        let cfg: Config = config.parse()?;
        self.top = cfg.top;
        signal_hook::flag::register(signal_hook::consts::SIGUSR1, Arc::clone(&self.report))?;
        Ok(())
    }

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
    fn handle_file_flow(&mut self, ctx: &Context<'_>, ff: &FileFlow) -> HandlerResult {
        let (pid, exe) = process(ctx, &ff.proc_oid);
        self.counts
            .file
            .add(pid, exe, ff.num_r_recv_bytes, ff.num_w_send_bytes);
        self.count(RecordKind::FileFlow)
    }
    fn handle_file_event(&mut self, _: &Context<'_>, _: &FileEvent) -> HandlerResult {
        self.count(RecordKind::FileEvent)
    }
    fn handle_network_flow(&mut self, ctx: &Context<'_>, nf: &NetworkFlow) -> HandlerResult {
        let (pid, exe) = process(ctx, &nf.proc_oid);
        self.counts
            .network
            .add(pid, exe, nf.num_r_recv_bytes, nf.num_w_send_bytes);
        self.count(RecordKind::NetworkFlow)
    }
    fn handle_network_event(&mut self, _: &Context<'_>, _: &NetworkEvent) -> HandlerResult {
        self.count(RecordKind::NetworkEvent)
    }
    fn handle_k8s_event(&mut self, _: &Context<'_>, _: &K8sEvent) -> HandlerResult {
        self.count(RecordKind::K8sEvent)
    }

    fn idle(&mut self) {
        self.report_if_asked();
    }

    fn snapshot(&mut self) -> SnapshotResult {
        handler_sdk::snapshot::encode(&self.counts).map(Some)
    }

    fn restore(&mut self, snapshot: &[u8]) -> HandlerResult {
        self.counts = handler_sdk::snapshot::decode(snapshot)?;
        Ok(())
    }

    fn cleanup(&mut self) {
        self.print();
    }
}

fn main() -> std::process::ExitCode {
    handler_sdk::run(Stats::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_sorts_by_total_then_pid_then_exe_and_splits_exes() {
        let mut p = PerProcess::default();
        p.add(7, "/bin/sh", 10, 0);
        p.add(7, "/bin/cat", 5, 5);
        p.add(3, "/bin/cat", 0, 10);
        p.add(9, "/x", 1, 1);
        p.add(9, "/x", -5, 2);
        let top: Vec<(i64, &str, u64)> = p
            .top(10)
            .into_iter()
            .map(|(p, e, b)| (p, e, b.total()))
            .collect();
        assert_eq!(
            top,
            [
                (3, "/bin/cat", 10),
                (7, "/bin/cat", 10),
                (7, "/bin/sh", 10),
                (9, "/x", 4)
            ]
        );
        assert_eq!(p.top(1).len(), 1);
    }

    #[test]
    fn a_restored_snapshot_gives_the_same_tables() {
        let mut s = Stats {
            top: 3,
            ..Default::default()
        };
        s.counts.records[RecordKind::NetworkFlow as usize] = 5;
        s.counts.network.add(42, "/usr/bin/curl", 100, 7);
        s.counts.file.add(7, "/bin/sh", 1, 2);
        let bytes = s.snapshot().unwrap().expect("stats keeps state");
        let mut t = Stats {
            top: 3,
            ..Default::default()
        };
        t.restore(&bytes).unwrap();
        assert_eq!(t.counts, s.counts);
        assert_eq!(t.tables(), s.tables());
        assert!(t.restore(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn tables_keep_the_counts_format_and_add_process_tables() {
        let mut s = Stats {
            top: 2,
            ..Default::default()
        };
        s.counts.records[RecordKind::FileFlow as usize] = 3;
        s.counts.file.add(16681, "/bin/cat", 761, 761);
        assert_eq!(
            s.tables(),
            "stats: records received\n\
             FileFlow               3\n\
             total                  3\n\
             stats: top 2 processes by file bytes\n\
             \x20        total           read        written      pid  exe\n\
             \x20         1522            761            761    16681  /bin/cat\n\
             stats: top 2 processes by network bytes\n\
             \x20        total           read        written      pid  exe\n"
        );
        s.top = 0;
        assert!(!s.tables().contains("top"));
    }
}
