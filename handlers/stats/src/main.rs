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
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Bytes {
    read: u64,
    written: u64,
}

impl Bytes {
    fn total(self) -> u64 {
        self.read + self.written
    }
}

/// One (process, executable) and its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Row {
    pid: i64,
    /// Index into [`PerProcess::exes`].
    exe: u32,
    bytes: Bytes,
    /// The next row of the same PID (`u32::MAX`: none).
    next: u32,
}

/// Bytes per process: host PID and executable (a process that execs another program has one
/// row per program). The rows lie in one vector, executables are stored once: a snapshot
/// reads them in order instead of chasing a pointer per process.
#[derive(Debug, Default, PartialEq, Eq)]
struct PerProcess {
    rows: Vec<Row>,
    /// First row of each PID.
    by_pid: HashMap<i64, u32>,
    exes: Vec<String>,
    exe_ids: HashMap<String, u32>,
}

impl PerProcess {
    fn add(&mut self, pid: i64, exe: &str, read: i64, written: i64) {
        let mut at = self.by_pid.get(&pid).copied();
        let mut last = None;
        while let Some(i) = at.filter(|&i| i != u32::MAX) {
            let row = &self.rows[i as usize];
            if self.exes[row.exe as usize] == exe {
                break;
            }
            last = Some(i);
            at = Some(row.next);
        }
        let i = match at.filter(|&i| i != u32::MAX) {
            Some(i) => i,
            None => {
                let i = self.rows.len() as u32;
                let exe = self.intern(exe);
                self.rows.push(Row {
                    pid,
                    exe,
                    bytes: Bytes::default(),
                    next: u32::MAX,
                });
                match last {
                    Some(l) => self.rows[l as usize].next = i,
                    None => {
                        self.by_pid.insert(pid, i);
                    }
                }
                i
            }
        };
        let b = &mut self.rows[i as usize].bytes;
        // Counters are never negative in a sound trace; a negative one counts as 0.
        b.read += read.max(0) as u64;
        b.written += written.max(0) as u64;
    }

    fn intern(&mut self, exe: &str) -> u32 {
        if let Some(&id) = self.exe_ids.get(exe) {
            return id;
        }
        let id = self.exes.len() as u32;
        self.exes.push(exe.to_owned());
        self.exe_ids.insert(exe.to_owned(), id);
        id
    }

    /// The `n` processes with the most bytes, most first (ties: lower PID, then exe, first).
    fn top(&self, n: usize) -> Vec<(i64, &str, Bytes)> {
        let mut all: Vec<(i64, &str, Bytes)> = self
            .rows
            .iter()
            .map(|r| (r.pid, self.exes[r.exe as usize].as_str(), r.bytes))
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

    /// Appends the table to a snapshot: the executables (count, then length and bytes of
    /// each), then the rows (count, then `pid, exe index, read, written` of each).
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.exes.len() as u32).to_le_bytes());
        for exe in &self.exes {
            out.extend_from_slice(&(exe.len() as u32).to_le_bytes());
            out.extend_from_slice(exe.as_bytes());
        }
        out.extend_from_slice(&(self.rows.len() as u32).to_le_bytes());
        for r in &self.rows {
            out.extend_from_slice(&r.pid.to_le_bytes());
            out.extend_from_slice(&r.exe.to_le_bytes());
            out.extend_from_slice(&r.bytes.read.to_le_bytes());
            out.extend_from_slice(&r.bytes.written.to_le_bytes());
        }
    }

    /// The table [`PerProcess::encode`] wrote at the front of `r`.
    fn decode(r: &mut Reader<'_>) -> Result<PerProcess, String> {
        let mut table = PerProcess::default();
        for _ in 0..r.u32()? {
            let len = r.u32()? as usize;
            let exe = std::str::from_utf8(r.take(len)?)
                .map_err(|e| format!("stats snapshot: an executable is not UTF-8: {e}"))?;
            table.intern(exe);
        }
        for _ in 0..r.u32()? {
            let pid = r.u64()? as i64;
            let exe = r.u32()?;
            let exe = table
                .exes
                .get(exe as usize)
                .ok_or_else(|| format!("stats snapshot: executable {exe} out of range"))?
                .clone();
            let (read, written) = (r.u64()?, r.u64()?);
            // Rows come back in their order, so each PID's rows keep theirs.
            let before = table.rows.len();
            table.add(pid, &exe, 0, 0);
            if table.rows.len() == before {
                return Err(format!("stats snapshot: process {pid} {exe} twice"));
            }
            let b = &mut table.rows[before].bytes;
            (b.read, b.written) = (read, written);
        }
        Ok(table)
    }
}

/// What the handler counts: its snapshot (kept by the launcher across restarts, so tables
/// after a crash are those of a handler never killed).
#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    /// Records per [`RecordKind`], indexed like `RecordKind::ALL`.
    records: [u64; 12],
    file: PerProcess,
    network: PerProcess,
}

/// Version byte of [`Counts::encode`]'s format.
const SNAPSHOT_VERSION: u8 = 1;

impl Counts {
    /// The snapshot: a version byte, the 12 record counts, then the file and the network
    /// table ([`PerProcess::encode`]); integers little-endian, fixed width. A snapshot is
    /// taken every few megabytes of input and this state grows with every process, so it is
    /// written in one pass over contiguous rows (a serde encoding of per-process maps took
    /// ten times as long on a million generated records, `bench/run.sh`).
    fn encode(&self) -> Vec<u8> {
        let rows = self.file.rows.len() + self.network.rows.len();
        let mut out = Vec::with_capacity(128 + rows * 28);
        out.push(SNAPSHOT_VERSION);
        for n in self.records {
            out.extend_from_slice(&n.to_le_bytes());
        }
        self.file.encode(&mut out);
        self.network.encode(&mut out);
        out
    }

    /// The counts [`Counts::encode`] made `bytes` from.
    fn decode(bytes: &[u8]) -> Result<Counts, String> {
        let mut r = Reader(bytes);
        let version = r.take(1)?[0];
        if version != SNAPSHOT_VERSION {
            return Err(format!(
                "stats snapshot of format {version}, this build reads {SNAPSHOT_VERSION}"
            ));
        }
        let mut records = [0u64; 12];
        for n in &mut records {
            *n = r.u64()?;
        }
        let file = PerProcess::decode(&mut r)?;
        let network = PerProcess::decode(&mut r)?;
        if !r.0.is_empty() {
            return Err(format!("stats snapshot: {} bytes left over", r.0.len()));
        }
        Ok(Counts {
            records,
            file,
            network,
        })
    }
}

/// Reads a snapshot from the front.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!(
                "stats snapshot cut short: {n} bytes wanted, {} left",
                self.0.len()
            ));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, String> {
        let mut raw = [0u8; 8];
        raw.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(raw))
    }
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
    fn config_keys() -> Option<ConfigKeys> {
        Some(ConfigKeys::of::<Config>())
    }

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
        Ok(Some(self.counts.encode()))
    }

    fn restore(&mut self, snapshot: &[u8]) -> HandlerResult {
        self.counts = Counts::decode(snapshot)?;
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
        assert_eq!(
            t.restore(&bytes[..bytes.len() - 1])
                .unwrap_err()
                .to_string(),
            "stats snapshot cut short: 8 bytes wanted, 7 left"
        );
        let mut other = bytes.clone();
        other[0] = 9;
        assert_eq!(
            t.restore(&other).unwrap_err().to_string(),
            "stats snapshot of format 9, this build reads 1"
        );
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
