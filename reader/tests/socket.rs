//! The socket driver on every layout: each shared trace sent datum by datum as its collector
//! wrote it (the file's own bytes, one `SOCK_SEQPACKET` message per datum, one connection
//! per trace), which the driver must decode into the records of the file, choosing each
//! connection's layout from its header and first datums; a forced layout; the message limit.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::net::{AddressFamily, SendFlags, SocketAddrUnix, SocketFlags, SocketType};
use sf_processor::model::Record;
use sf_reader::driver::{NoConsumers, Sink};
use sf_reader::socket::{self, Listener, SocketOptions, SocketSummary};

fn shared_dir() -> PathBuf {
    std::env::var_os("SF_SHARED_DIR").map_or_else(|| PathBuf::from("/work/shared"), PathBuf::from)
}

/// Every trace of `traces/` and `traces-2019/`, in name order.
fn every_trace() -> Vec<PathBuf> {
    let mut paths = Vec::new();
    for dir in ["traces", "traces-2019"] {
        if let Ok(entries) = std::fs::read_dir(shared_dir().join(dir)) {
            paths.extend(entries.map(|e| e.expect("entry").path()));
        }
    }
    paths.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    // Moved into traces/ but left in traces-2019/ too: once.
    paths.dedup_by(|a, b| a.file_name() == b.file_name());
    assert!(paths.len() >= 17, "{paths:?}");
    paths
}

/// Collects what the driver delivers.
#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<Record>>>);

impl Sink for Collect {
    fn deliver(&mut self, record: Record) -> Result<(), NoConsumers> {
        self.0.lock().expect("lock").push(record);
        Ok(())
    }

    fn delivered(&self) -> u64 {
        self.0.lock().expect("lock").len() as u64
    }
}

/// The driver serving on a socket in `dir`, on its own thread.
struct Server {
    path: PathBuf,
    records: Collect,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<SocketSummary>>,
}

impl Server {
    fn start(dir: &Path, options: SocketOptions) -> Server {
        let path = dir.join("sysflow.sock");
        let listener = Listener::bind(&path).expect("bind");
        let records = Collect::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (mut sink, flag) = (records.clone(), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            socket::serve(&listener, &mut sink, &flag, &options).expect("a sink")
        });
        Server {
            path,
            records,
            stop,
            thread: Some(thread),
        }
    }

    /// Waits (with a deadline) until `n` records arrived, then stops the driver.
    fn finish(self, n: usize) -> (Vec<Record>, SocketSummary) {
        self.finish_when(|records| records.len() >= n)
    }

    /// Sends, on a connection of its own, the header of a schema-5 trace (the driver serves
    /// one connection after the other: once it arrives, everything sent before was read),
    /// waits for it, stops the driver and returns what came before it.
    fn finish_after_sentinel(self) -> (Vec<Record>, SocketSummary) {
        let v5 = shared_dir().join("traces/tcp-client-server-v5.sf");
        let header = sf_oracle::datums(&std::fs::read(v5).expect("trace")).expect("datums");
        send_all(&self.path, &header[..1]);
        let (mut records, mut summary) = self.finish_when(
            |records| matches!(records.last(), Some(Record::Header(h)) if h.version == 5),
        );
        assert!(
            matches!(records.pop(), Some(Record::Header(h)) if h.version == 5),
            "the sentinel came last"
        );
        summary.records -= 1;
        summary.connections -= 1;
        (records, summary)
    }

    fn finish_when(mut self, done: impl Fn(&[Record]) -> bool) -> (Vec<Record>, SocketSummary) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done(&self.records.0.lock().expect("lock")) {
            assert!(
                Instant::now() < deadline,
                "the records did not arrive within 60 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop.store(true, Ordering::Relaxed);
        let summary = self
            .thread
            .take()
            .expect("running")
            .join()
            .expect("the driver");
        let records = std::mem::take(&mut *self.records.0.lock().expect("lock"));
        (records, summary)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Connects like the collector does.
fn collector(path: &Path) -> OwnedFd {
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .expect("socket");
    rustix::net::connect(&fd, &SocketAddrUnix::new(path).expect("address")).expect("connect");
    fd
}

fn send_all(path: &Path, messages: &[Vec<u8>]) {
    let c = collector(path);
    for m in messages {
        rustix::net::send(&c, m, SendFlags::empty()).expect("send");
    }
}

fn file_records(path: &Path) -> Vec<Record> {
    sf_reader::trace::open(path)
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|r| r.unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

#[test]
fn every_shared_trace_sent_datum_by_datum_gives_the_records_of_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), SocketOptions::default());
    let mut expected = Vec::new();
    for trace in every_trace() {
        let bytes = std::fs::read(&trace).expect("trace");
        let datums = sf_oracle::datums(&bytes).expect("datums");
        let records = file_records(&trace);
        assert_eq!(datums.len(), records.len(), "{}", trace.display());
        // One connection per trace, one after the other (the driver serves one at a time).
        send_all(&server.path, &datums);
        expected.extend(records);
    }
    let (got, summary) = server.finish(expected.len());
    assert_eq!(summary.undecodable, 0);
    assert_eq!(summary.connections, every_trace().len() as u64);
    assert_eq!(got.len(), expected.len());
    if let Some(i) = (0..got.len()).find(|&i| got[i] != expected[i]) {
        panic!("record {i}: {:?} != {:?}", got[i], expected[i]);
    }
    assert!(got.len() > 70_000, "{}", got.len());
}

#[test]
fn a_forced_layout_reads_what_the_header_would_not_tell_and_refuses_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let play = {
        let moved = shared_dir().join("traces/play-mon.1548965896");
        if moved.exists() {
            moved
        } else {
            shared_dir().join("traces-2019/play-mon.1548965896")
        }
    };
    let datums = sf_oracle::datums(&std::fs::read(&play).expect("trace")).expect("datums");
    // Right: the January-2019 layout, forced.
    let options = SocketOptions {
        layout: Some(sf_reader::layout::find("v1000-2019-01").expect("layout")),
        ..SocketOptions::default()
    };
    let server = Server::start(dir.path(), options);
    send_all(&server.path, &datums);
    let (got, summary) = server.finish(datums.len());
    assert_eq!(got, file_records(&play));
    assert_eq!(summary.undecodable, 0);

    // Wrong: schema 5 forced on the same datums. Its header is a v5 header too short, its
    // processes decode with bytes left over: refused, message by message.
    let options = SocketOptions {
        layout: Some(sf_reader::layout::find("v5").expect("layout")),
        ..SocketOptions::default()
    };
    let server = Server::start(dir.path(), options);
    send_all(&server.path, &datums);
    let (got, summary) = server.finish_after_sentinel();
    assert_eq!(summary.records + summary.undecodable, datums.len() as u64);
    assert!(summary.undecodable > 100, "{summary:?}");
    assert!(got.len() < datums.len());
}

#[test]
fn messages_over_the_limit_are_skipped_and_the_limit_is_a_setting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trace = shared_dir().join("traces/tcp.sf");
    let datums = sf_oracle::datums(&std::fs::read(&trace).expect("trace")).expect("datums");
    let longest = datums.iter().map(Vec::len).max().expect("datums");
    assert!(longest > 40, "{longest}");
    let options = SocketOptions {
        max_message: longest - 1,
        ..SocketOptions::default()
    };
    let server = Server::start(dir.path(), options);
    send_all(&server.path, &datums);
    let over = datums.iter().filter(|d| d.len() > longest - 1).count();
    let (got, summary) = server.finish(datums.len() - over);
    assert_eq!(summary.oversized, over as u64);
    assert_eq!(got.len(), datums.len() - over);
    let want: Vec<Record> = file_records(&trace)
        .into_iter()
        .zip(&datums)
        .filter(|(_, d)| d.len() < longest)
        .map(|(r, _)| r)
        .collect();
    assert_eq!(got, want);
    // The default is 128 KiB.
    assert_eq!(SocketOptions::default().max_message, 128 << 10);
}

#[test]
fn datums_of_another_layout_than_the_header_says_are_refused() {
    // A header of version 5 followed by datums of the January-2019 layout: only v5 is in the
    // running, and it does not read them exactly.
    let dir = tempfile::tempdir().expect("tempdir");
    let v5 = shared_dir().join("traces/tcp-client-server-v5.sf");
    let v5_datums = sf_oracle::datums(&std::fs::read(&v5).expect("trace")).expect("datums");
    let play = [
        "traces/play-mon.1548965896",
        "traces-2019/play-mon.1548965896",
    ]
    .iter()
    .map(|p| shared_dir().join(p))
    .find(|p| p.exists())
    .expect("the January-2019 trace");
    let play_datums = sf_oracle::datums(&std::fs::read(&play).expect("trace")).expect("datums");
    let processes: Vec<Vec<u8>> = play_datums
        .iter()
        .zip(file_records(&play))
        .filter(|(_, r)| matches!(r, Record::Process(_)))
        .map(|(d, _)| d.clone())
        .take(5)
        .collect();
    let mut messages = vec![v5_datums[0].clone()];
    messages.extend(processes);
    let server = Server::start(dir.path(), SocketOptions::default());
    send_all(&server.path, &messages);
    let (got, summary) = server.finish_after_sentinel();
    assert_eq!(got.len(), 1, "the header only");
    assert!(matches!(got[0], Record::Header(ref h) if h.version == 5));
    assert_eq!(summary.undecodable, 5);
}
