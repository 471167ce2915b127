//! Support for the end-to-end tests: paths, running `sf-launch` under a watchdog, reading
//! `TRACES.md`, and checking that nothing is left behind.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Longest a single pipeline run may take before the watchdog kills it and fails the test.
pub const WATCHDOG: Duration = Duration::from_secs(120);

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// `../shared` beside the checkout (`SF_SHARED_DIR` overrides it, as in the reader's tests).
pub fn shared() -> PathBuf {
    std::env::var_os("SF_SHARED_DIR").map_or_else(|| root().join("../shared"), PathBuf::from)
}

/// The `sf-launch` binary; the reader and handlers are built beside it by `cargo test --workspace`.
pub fn sf_launch() -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_sf-launch"));
    for sibling in [
        "sf-reader",
        "sf-gen",
        "sf-handler-printer",
        "sf-handler-stats",
        "sf-handler-probe",
        "sf-handler-alert",
    ] {
        assert!(
            exe.with_file_name(sibling).exists(),
            "{sibling} is not built next to sf-launch: run the tests with `cargo test --workspace`"
        );
    }
    exe
}

/// A finished run.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The messages of the `INFO:` log lines, without the `INFO: date time file:line: ` prefix.
    pub fn info_messages(&self) -> Vec<String> {
        self.stdout
            .lines()
            .filter_map(|l| l.strip_prefix("INFO: "))
            .map(|rest| {
                // date, time, file:line:, message
                let mut parts = rest.splitn(4, ' ');
                let (_d, _t, _loc) = (parts.next(), parts.next(), parts.next());
                parts.next().unwrap_or("").to_owned()
            })
            .collect()
    }
}

/// Waits for `child` to exit, killing it and failing the test after [`WATCHDOG`].
pub fn wait_with_watchdog(child: impl Into<Child>, what: &str) -> Run {
    let mut child: Child = child.into();
    // A test that read stdout itself took it: then it reads as empty here.
    let mut out = child.stdout.take();
    let mut err = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(out) = out.as_mut() {
            out.read_to_string(&mut s).unwrap();
        }
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).unwrap();
        s
    });
    let pid = child.id();
    let waiter = std::thread::spawn(move || {
        let status = child.wait().unwrap();
        let _ = tx.send(());
        status
    });
    if rx.recv_timeout(WATCHDOG).is_err() {
        let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        panic!("watchdog: {what} did not finish within {WATCHDOG:?}; killed pid {pid}");
    }
    Run {
        status: waiter.join().unwrap(),
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    }
}

/// Starts `sf-launch ARGS` with captured output. Every process of the run inherits
/// `SF_TEST_TAG=tag`, so [`processes_tagged`] finds them (use the test's temp dir).
pub fn spawn_launch(tag: &Path, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Launched {
    spawn_launch_env(tag, &[], args)
}

/// [`spawn_launch`] with more environment variables (`<HANDLER>_<KEY>` overrides, `PATH`).
pub fn spawn_launch_env(
    tag: &Path,
    envs: &[(&str, &dyn AsRef<std::ffi::OsStr>)],
    args: &[&dyn AsRef<std::ffi::OsStr>],
) -> Launched {
    let mut cmd = Command::new(sf_launch());
    cmd.env("SF_TEST_TAG", tag);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    for a in args {
        cmd.arg(a);
    }
    cmd.current_dir(root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Launched(Some(cmd.spawn().expect("spawn sf-launch")))
}

/// A running `sf-launch`: killed (and with it, through the parent-death signal, every process
/// of its pipeline) if the test fails before waiting for it.
#[derive(Debug)]
pub struct Launched(Option<Child>);

impl Drop for Launched {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl std::ops::Deref for Launched {
    type Target = Child;
    fn deref(&self) -> &Child {
        self.0
            .as_ref()
            .expect("the launcher was already waited for")
    }
}

impl std::ops::DerefMut for Launched {
    fn deref_mut(&mut self) -> &mut Child {
        self.0
            .as_mut()
            .expect("the launcher was already waited for")
    }
}

impl From<Launched> for Child {
    fn from(mut launched: Launched) -> Child {
        launched
            .0
            .take()
            .expect("the launcher was already waited for")
    }
}

/// Runs `sf-launch ARGS` to the end under the watchdog.
pub fn launch(tag: &Path, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Run {
    wait_with_watchdog(spawn_launch(tag, args), "sf-launch")
}

/// Runs `sf-launch ARGS` with more environment variables to the end under the watchdog.
pub fn launch_env(
    tag: &Path,
    envs: &[(&str, &dyn AsRef<std::ffi::OsStr>)],
    args: &[&dyn AsRef<std::ffi::OsStr>],
) -> Run {
    wait_with_watchdog(spawn_launch_env(tag, envs, args), "sf-launch")
}

/// Writes a pipeline file with one block per handler name into `dir`.
pub fn write_pipeline(dir: &Path, handlers: &[&str]) -> PathBuf {
    let blocks: Vec<serde_json::Value> = handlers
        .iter()
        .map(|h| serde_json::json!({"processor": "sysflowreader", "handler": h, "in": "sysflow sysflowchan"}))
        .collect();
    let path = dir.join("pipeline.json");
    std::fs::write(&path, serde_json::json!({ "pipeline": blocks }).to_string()).unwrap();
    path
}

/// PIDs of live processes whose command line or environment mentions `tag`.
pub fn processes_tagged(tag: &Path) -> Vec<u32> {
    let tag = tag.display().to_string();
    let me = std::process::id();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        // A zombie has an empty cmdline and environ: it is gone for our purpose.
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        let hay = [cmdline, environ].concat();
        if hay.windows(tag.len()).any(|w| w == tag.as_bytes()) {
            pids.push(pid);
        }
    }
    pids
}

/// Polls until no process mentions `tag`, failing after `limit`.
pub fn assert_no_process_left(tag: &Path, limit: Duration) {
    let start = Instant::now();
    loop {
        let left = processes_tagged(tag);
        if left.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "processes left behind after {limit:?}: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Entries of /dev/shm that a pipeline could have created (ours are memfds and never appear
/// there; this checks that stays true).
pub fn shm_segments() -> Vec<String> {
    std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.contains("sf"))
                .collect()
        })
        .unwrap_or_default()
}

/// Parent PID of `pid` (field 4 of /proc/PID/stat).
pub fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    after.split(' ').nth(1)?.parse().ok()
}

/// Executable path of `pid`.
pub fn exe_of(pid: u32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/exe")).ok()
}

/// Children of `pid`.
pub fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .filter(|p| parent_of(*p) == Some(pid))
        .collect()
}

/// Expected record counts per trace, parsed from `shared/TRACES.md`: file name -> (record
/// type -> count). The earliest layout's `ProcessFlow` records are counted as `ProcessEvent`,
/// as TRACES.md explains.
pub fn expected_counts() -> BTreeMap<String, BTreeMap<String, u64>> {
    let path = shared().join("TRACES.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the tests need ../shared beside the checkout)",
            path.display()
        )
    });
    let mut all = BTreeMap::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        // | file | header version | codec | records | by type |
        if cols.len() < 7 || cols[1] == "file" || cols[1].starts_with("---") {
            continue;
        }
        let (file, version, by_type) = (cols[1], cols[2], cols[5]);
        if file.is_empty() || version.parse::<u32>().is_err() {
            continue;
        }
        // Drop parenthesised remarks, which may contain commas.
        let mut clean = String::new();
        let mut depth = 0;
        for c in by_type.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                c if depth == 0 => clean.push(c),
                _ => {}
            }
        }
        let mut counts = BTreeMap::new();
        for item in clean.split(',') {
            let mut it = item.split_whitespace();
            let (Some(name), Some(n)) = (it.next(), it.next().and_then(|n| n.parse::<u64>().ok()))
            else {
                continue;
            };
            let name = if name == "ProcessFlow" && version == "1000" {
                "ProcessEvent"
            } else {
                name
            };
            *counts.entry(name.to_owned()).or_insert(0) += n;
        }
        let total: u64 = cols[4].parse().expect("records column");
        assert_eq!(
            counts.values().sum::<u64>(),
            total,
            "TRACES.md row for {file} does not add up"
        );
        all.insert(file.to_owned(), counts);
    }
    all
}

/// Parses the `stats` handler's table: record type -> count (the `total` line excluded).
pub fn parse_stats_table(stdout: &str) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    let mut in_table = false;
    for line in stdout.lines() {
        if line == "stats: records received" {
            in_table = true;
            continue;
        }
        if !in_table {
            continue;
        }
        let mut it = line.split_whitespace();
        let (Some(name), Some(n)) = (it.next(), it.next().and_then(|n| n.parse::<u64>().ok()))
        else {
            break;
        };
        if name == "total" {
            break;
        }
        counts.insert(name.to_owned(), n);
    }
    counts
}

/// Parses the `stats` handler's process table titled `stats: top N processes by WHAT bytes`
/// (`what` is `file` or `network`): rows of (total, read, written, pid, exe), in order.
pub fn parse_stats_top(stdout: &str, what: &str) -> Vec<(u64, u64, u64, i64, String)> {
    let mut rows = Vec::new();
    let mut lines = stdout.lines();
    let title = format!(" processes by {what} bytes");
    if lines
        .by_ref()
        .find(|l| l.starts_with("stats: top ") && l.ends_with(&title))
        .is_none()
    {
        return rows;
    }
    let _columns = lines.next();
    for line in lines {
        let mut it = line.split_whitespace();
        let nums: Vec<Option<i64>> = (0..4)
            .map(|_| it.next().and_then(|n| n.parse().ok()))
            .collect();
        let (Some(total), Some(read), Some(written), Some(pid)) =
            (nums[0], nums[1], nums[2], nums[3])
        else {
            break;
        };
        // The executable is the rest of the line after the four numbers.
        let mut exe = line;
        for _ in 0..4 {
            exe = exe.trim_start();
            exe = &exe[exe.find(' ').unwrap_or(exe.len())..];
        }
        rows.push((
            total as u64,
            read as u64,
            written as u64,
            pid,
            exe.trim_start().to_owned(),
        ));
    }
    rows
}

/// The oracle of `trace` (`shared/oracle/TRACE.sysprint.jsonl.gz`): one JSON object per flow
/// or event, in file order.
pub fn oracle(trace: &str) -> Vec<serde_json::Value> {
    use std::io::BufRead;
    let path = shared()
        .join("oracle")
        .join(format!("{trace}.sysprint.jsonl.gz"));
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    std::io::BufReader::new(flate2::read::GzDecoder::new(file))
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect()
}

/// Polls `cond` every 10 ms until it holds, failing the test with `what` after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `sf-launch ctl --pid PID ARGS` and returns (exit code, stdout, stderr).
pub fn ctl(pid: u32, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(sf_launch())
        .arg("ctl")
        .arg("--pid")
        .arg(pid.to_string())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run sf-launch ctl");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `ctl status --json` of pipeline `pid`, or `None` while it cannot answer yet (its control
/// socket is bound a moment after it starts).
pub fn try_status(pid: u32) -> Option<BTreeMap<String, serde_json::Value>> {
    let (code, out, _) = ctl(pid, &["status", "--json"]);
    if code != Some(0) {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&out).ok()?;
    Some(
        v["processes"]
            .as_array()?
            .iter()
            .map(|p| (p["name"].as_str().unwrap_or_default().to_owned(), p.clone()))
            .collect(),
    )
}

/// `ctl status --json` of pipeline `pid`: name -> process object.
pub fn status(pid: u32) -> BTreeMap<String, serde_json::Value> {
    let (code, out, err) = ctl(pid, &["status", "--json"]);
    assert_eq!(code, Some(0), "ctl status failed: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("status JSON");
    v["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .map(|p| (p["name"].as_str().unwrap_or_default().to_owned(), p.clone()))
        .collect()
}

/// Writes a pipeline file with the given blocks (JSON objects) into `dir`.
pub fn write_blocks(dir: &Path, blocks: &[serde_json::Value]) -> PathBuf {
    let path = dir.join("pipeline.json");
    std::fs::write(&path, serde_json::json!({ "pipeline": blocks }).to_string()).unwrap();
    path
}

/// One line of the probe handler's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeLine {
    pub seq: u64,
    /// Everything after the sequence number: kind and context.
    pub rest: String,
}

/// Reads a probe output file.
pub fn probe_lines(path: &Path) -> Vec<ProbeLine> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let (seq, rest) = l.split_once('\t').expect("probe line");
            ProbeLine {
                seq: seq.parse().expect("probe seq"),
                rest: rest.to_owned(),
            }
        })
        .collect()
}

/// A directory holding `copies` copies of `trace` (named 000, 001, ...), read in that order.
pub fn copies_dir(dir: &Path, trace: &Path, copies: usize) -> PathBuf {
    let out = dir.join("input");
    std::fs::create_dir_all(&out).unwrap();
    for i in 0..copies {
        std::fs::copy(trace, out.join(format!("{i:03}"))).unwrap();
    }
    out
}

/// The child of `launcher` running `exe_name` whose handler block mentions `needle`
/// (in its `SF_HANDLER_CONFIG`), if any.
pub fn child_with(launcher: u32, exe_name: &str, needle: &str) -> Option<u32> {
    children_of(launcher).into_iter().find(|p| {
        exe_of(*p).is_some_and(|e| e.ends_with(exe_name))
            && std::fs::read(format!("/proc/{p}/environ"))
                .map(|env| env.windows(needle.len()).any(|w| w == needle.as_bytes()))
                .unwrap_or(false)
    })
}

/// The `sf-handler-exporter` binary beside `sf-launch` (built by `cargo test --workspace`).
pub fn assert_exporter_built() {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_sf-launch")).with_file_name("sf-handler-exporter");
    assert!(
        exe.exists(),
        "sf-handler-exporter is not built next to sf-launch: run the tests with `cargo test --workspace`"
    );
}

/// Runs the exporter (`format` `json`, with `json.extensions`: the keys the reference's
/// layout drops) on `trace`, writing to `NAME.jsonl` in `dir`, and returns its output, one
/// parsed object per line. Fails the test, naming the trace and the line, if sf-launch fails
/// or a line is not a JSON object.
pub fn json_output(dir: &Path, trace: &Path) -> Vec<serde_json::Value> {
    assert_exporter_built();
    let name = trace.file_name().unwrap().to_string_lossy().into_owned();
    let out = dir.join(format!("{name}.jsonl"));
    let _ = std::fs::remove_file(&out);
    let pipeline = write_blocks(
        dir,
        &[serde_json::json!({
            "processor": "exporter", "in": "sysflow sysflowchan", "export": "file",
            "format": "json", "file.path": out, "json.extensions": true,
        })],
    );
    let run = launch(dir, &[&pipeline, &trace]);
    assert!(run.status.success(), "{name}: sf-launch failed: {run:?}");
    let text = std::fs::read_to_string(&out)
        .unwrap_or_else(|e| panic!("{name}: no json output {}: {e}", out.display()));
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "{name}: the last line is not whole"
    );
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            // `str::parse` runs serde_json's own (optimised) instance of the parser.
            let v: serde_json::Value = line.parse().unwrap_or_else(|e| {
                panic!("{name}: json line {} does not parse: {e}: {line}", i + 1)
            });
            assert!(
                v.is_object(),
                "{name}: json line {} is not an object",
                i + 1
            );
            v
        })
        .collect()
}

/// `sf-gen --records N --seed S` into `dir`.
pub fn generate(dir: &Path, records: u64, seed: u64) -> PathBuf {
    let trace = dir.join(format!("generated-{records}.sf"));
    let out = Command::new(sf_launch().with_file_name("sf-gen"))
        .args([
            "--records",
            &records.to_string(),
            "--seed",
            &seed.to_string(),
        ])
        .arg(&trace)
        .output()
        .expect("run sf-gen");
    assert!(
        out.status.success(),
        "sf-gen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    trace
}

/// A FIFO `trace.fifo` in `dir`: a trace fed through it keeps the reader blocked until the test
/// writes, so a test can look at a running pipeline without timing assumptions.
pub fn mkfifo(dir: &Path) -> PathBuf {
    let fifo = dir.join("trace.fifo");
    nix::unistd::mkfifo(
        &fifo,
        nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
    )
    .unwrap();
    fifo
}

/// The end of every end-to-end test: no process of the run (tagged with `tag`) is left after
/// 5 s, and nothing is left in /dev/shm (rings and the journal are memfds).
pub fn assert_clean(tag: &Path) {
    assert_no_process_left(tag, Duration::from_secs(5));
    assert_eq!(
        shm_segments(),
        Vec::<String>::new(),
        "segments left in /dev/shm"
    );
}

/// xorshift64*: kill moments reproducible from the seed printed on failure.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// SIGKILLs the child of `launcher` running `exe` with `needle` in its environment `kills`
/// times, each life at a random moment 0–40 ms after it is seen (a new seed per run, printed
/// in every failure), and returns the seed and the pids killed. Fails if `limit` passes or
/// the launcher exits first.
pub fn sigkill_repeatedly(
    launcher: u32,
    exe: &str,
    needle: &str,
    kills: usize,
    limit: Duration,
) -> (u64, Vec<u32>) {
    sigkill_repeatedly_when(launcher, exe, needle, kills, limit, || true)
}

/// [`sigkill_repeatedly`], but each life is killed only once `ready()` holds after it is
/// seen (e.g. its output file grew: the kill then lands while it writes).
pub fn sigkill_repeatedly_when(
    launcher: u32,
    exe: &str,
    needle: &str,
    kills: usize,
    limit: Duration,
    mut ready: impl FnMut() -> bool,
) -> (u64, Vec<u32>) {
    use nix::sys::signal::{Signal, kill};
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    use nix::unistd::Pid;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut rng = Rng(seed);
    let mut killed = Vec::new();
    let deadline = std::time::Instant::now() + limit;
    while killed.len() < kills {
        assert!(
            std::time::Instant::now() < deadline,
            "seed {seed}: only {} kills before the deadline",
            killed.len()
        );
        let Some(victim) = child_with(launcher, exe, needle) else {
            // Between two lives (backoff), or the run is over.
            assert!(
                waitpid(Pid::from_raw(launcher as i32), Some(WaitPidFlag::WNOHANG))
                    == Ok(WaitStatus::StillAlive),
                "seed {seed}: the run ended after only {} kills",
                killed.len()
            );
            std::thread::sleep(Duration::from_millis(1));
            continue;
        };
        if killed.last() == Some(&victim) || !ready() {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        std::thread::sleep(Duration::from_millis(rng.below(40)));
        if kill(Pid::from_raw(victim as i32), Signal::SIGKILL).is_ok() {
            killed.push(victim);
        }
    }
    (seed, killed)
}

/// Opens `fifo` for writing, writes `trace` into it and returns the writer, still open: the
/// reader has the whole trace and waits for more, as with a live input.
pub fn feed_fifo(fifo: &Path, trace: &Path) -> std::fs::File {
    let mut writer = std::fs::OpenOptions::new().write(true).open(fifo).unwrap();
    std::io::Write::write_all(&mut writer, &std::fs::read(trace).unwrap()).unwrap();
    writer
}

/// Runs `cmd` (tagged with `tag`) with its standard output on /dev/full, where every write
/// fails with ENOSPC, under the watchdog.
pub fn run_into_dev_full(mut cmd: Command, tag: &Path, what: &str) -> Run {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let child = cmd
        .env("SF_TEST_TAG", tag)
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(full)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_with_watchdog(child, what)
}

/// Connects to the reader's socket like the collector does (`SOCK_SEQPACKET`).
pub fn collector(path: &Path) -> std::os::fd::OwnedFd {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, connect, socket};
    use std::os::fd::AsRawFd;
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    connect(fd.as_raw_fd(), &UnixAddr::new(path).unwrap()).unwrap();
    fd
}

/// The records of `trace`, each as the collector sends it: one Avro binary datum, byte for
/// byte as in the file (cut by apache-avro, `sf_oracle`).
pub fn datums(trace: &Path) -> Vec<Vec<u8>> {
    sf_oracle::datums(&std::fs::read(trace).unwrap()).unwrap()
}

/// Sends every message on a new collector connection to `sock`, then disconnects.
pub fn send_connection(sock: &Path, messages: &[Vec<u8>]) {
    use nix::sys::socket::{MsgFlags, send};
    use std::os::fd::AsRawFd;
    let c = collector(sock);
    for m in messages {
        send(c.as_raw_fd(), m, MsgFlags::empty()).unwrap();
    }
}

/// `ctl status --json` of pipeline `pid`, the whole reply.
pub fn status_reply_json(pid: u32) -> Option<serde_json::Value> {
    let (code, out, _) = ctl(pid, &["status", "--json"]);
    if code != Some(0) {
        return None;
    }
    serde_json::from_str(&out).ok()
}

/// Writes an executable shell script `name` into `dir` (a handler that is not built on the
/// SDK).
pub fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}
