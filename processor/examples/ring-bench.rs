//! Cross-process benchmark of the shared-memory ring ([`sf_processor::ring`]): throughput by
//! frame size and hand-off latency, between two processes as in the pipeline (the producer is
//! this process, the consumer a re-execution of this binary). Used by `bench/run.sh`.
//!
//! ```text
//! cargo run --release -p sf-processor --example ring-bench -- [--mode all|throughput|latency]
//!     [--sizes 64,128,256,1024] [--frames N] [--runs K] [--ring-size BYTES]
//!     [--latency-runs K] [--latency-secs S] [--busy-interval-us US] [--sleep-interval-us US]
//!     [--in-process N]
//! ```
//!
//! - **Throughput**: for each payload size, the producer pushes `--frames` frames (default 10
//!   million) into a fresh ring of `--ring-size` bytes (default 4 MiB, the launcher's) as fast
//!   as it can, then closes it; the consumer checks every frame's sequence number, length and
//!   first word and reads every payload byte (a wrapping sum, so that the data really crosses
//!   to the consumer's core). The time runs from the producer's first push to the consumer
//!   seeing the end of the stream (both read `CLOCK_MONOTONIC`, which is system-wide). Frames/s
//!   and payload bytes/s are the median of `--runs` runs (default 5). The table also gives the
//!   voluntary context switches of the producer and the consumer thread per million frames
//!   (`getrusage(RUSAGE_THREAD)`): a futex sleep that really blocks is one.
//! - **Latency**: the producer stamps each 64-byte frame with `CLOCK_MONOTONIC`, pushes and
//!   flushes it, at a fixed rate: one frame every `--busy-interval-us` (default 20 µs, the
//!   consumer is kept busy) and one every `--sleep-interval-us` (default 2 ms, the consumer goes
//!   to sleep on the futex between frames). The consumer takes the difference with its own
//!   reading of the clock when `next` returns it. The percentiles are over the frames of
//!   `--latency-runs` runs (default 3) of `--latency-secs` seconds (default 2), the first 10
//!   frames of each run left out (start-up).
//!
//! - **Instructions**: `--in-process N` pushes and reads N frames of each size in one thread
//!   (no table), for `valgrind --tool=callgrind`: `bench/instructions.sh` divides the
//!   difference of two runs by the difference of N.
//!
//! To count system calls on the hot path, run the throughput mode under
//! `strace -f -c -e trace=futex,sched_yield` (as `bench/run.sh` does): nothing but the ring
//! makes futex calls here (the watchdog polls with `nanosleep`), apart from a handful at start
//! and exit.
//!
//! No process is left behind: the consumer dies with the producer (`PR_SET_PDEATHSIG`, and it
//! exits if its parent is already gone), the producer kills it on any failure and after a
//! watchdog delay, and a consumer that dies early aborts the ring so the producer never blocks
//! on it. The ring is a memfd: nothing is left on disk or in `/dev/shm` either.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::process::{Child, ChildStdout, Command, ExitCode, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::sys::resource::{UsageWho, getrusage};
use nix::time::{ClockId, clock_gettime};
use sf_processor::ring::{Consumer, Next, Producer, RingMonitor, RingSegment};

/// Environment variable carrying the inherited ring descriptor to the consumer process.
const FD_ENV: &str = "SF_RING_BENCH_FD";
/// Environment variable carrying the producer's pid, checked by the consumer.
const PARENT_ENV: &str = "SF_RING_BENCH_PARENT";
/// Wire version written in the bench rings (opaque to the ring).
const WIRE: u32 = 0x5246_4245;
/// Longest a consumer may live; the producer kills it then.
const WATCHDOG: Duration = Duration::from_secs(300);
/// Payload size of latency frames.
const LATENCY_PAYLOAD: usize = 64;
/// Frames left out at the start of each latency run.
const LATENCY_WARMUP: usize = 10;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        return match consumer_main(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ring-bench consumer: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let config = match Config::parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ring-bench: {e}");
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Some(frames) = config.in_process {
        return match in_process(&config, frames) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ring-bench: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match producer_main(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ring-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "usage: ring-bench [--mode all|throughput|latency] [--sizes 64,128,256,1024] \
                     [--frames N] [--runs K] [--ring-size BYTES] [--latency-runs K] \
                     [--latency-secs S] [--busy-interval-us US] [--sleep-interval-us US] \
                     [--in-process N]";

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct Config {
    throughput: bool,
    latency: bool,
    sizes: Vec<usize>,
    frames: u64,
    runs: usize,
    ring_size: usize,
    latency_runs: usize,
    latency_secs: f64,
    busy_interval: Duration,
    sleep_interval: Duration,
    /// `--in-process N`: N frames of each size through a ring in one thread, for instruction
    /// counts (callgrind), no table.
    in_process: Option<u64>,
}

impl Config {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut c = Config {
            throughput: true,
            latency: true,
            sizes: vec![64, 128, 256, 1024],
            frames: 10_000_000,
            runs: 5,
            ring_size: 4 << 20,
            latency_runs: 3,
            latency_secs: 2.0,
            busy_interval: Duration::from_micros(20),
            sleep_interval: Duration::from_millis(2),
            in_process: None,
        };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let mut value = || {
                it.next()
                    .map(String::as_str)
                    .ok_or_else(|| format!("{flag} needs a value"))
            };
            match flag.as_str() {
                "--mode" => match value()? {
                    "all" => (c.throughput, c.latency) = (true, true),
                    "throughput" => (c.throughput, c.latency) = (true, false),
                    "latency" => (c.throughput, c.latency) = (false, true),
                    other => return Err(format!("unknown mode {other:?}")),
                },
                "--sizes" => {
                    c.sizes = value()?
                        .split(',')
                        .map(|s| parse_positive(flag, s))
                        .collect::<Result<_, _>>()?;
                    if let Some(&small) = c.sizes.iter().find(|&&s| s < 8) {
                        return Err(format!("payload size {small} is below 8 bytes"));
                    }
                }
                "--frames" => c.frames = parse_positive(flag, value()?)?,
                "--runs" => c.runs = parse_positive(flag, value()?)?,
                "--ring-size" => c.ring_size = parse_positive(flag, value()?)?,
                "--latency-runs" => c.latency_runs = parse_positive(flag, value()?)?,
                "--latency-secs" => {
                    c.latency_secs = value()?
                        .parse::<f64>()
                        .ok()
                        .filter(|s| s.is_finite() && *s > 0.0)
                        .ok_or("--latency-secs needs a positive number")?
                }
                "--busy-interval-us" => {
                    c.busy_interval = Duration::from_micros(parse_positive(flag, value()?)?)
                }
                "--sleep-interval-us" => {
                    c.sleep_interval = Duration::from_micros(parse_positive(flag, value()?)?)
                }
                "--in-process" => c.in_process = Some(parse_positive(flag, value()?)?),
                other => return Err(format!("unexpected argument {other:?}")),
            }
        }
        Ok(c)
    }
}

fn parse_positive<T: std::str::FromStr + PartialOrd + Default>(
    flag: &str,
    text: &str,
) -> Result<T, String> {
    text.parse::<T>()
        .ok()
        .filter(|v| *v > T::default())
        .ok_or_else(|| format!("{flag} needs positive numbers, not {text:?}"))
}

// ---------------------------------------------------------------------------------------------
// Clocks and counters
// ---------------------------------------------------------------------------------------------

/// `CLOCK_MONOTONIC` in nanoseconds: the same clock in every process of the machine
/// (`std::time::Instant` does not promise that).
fn now_ns() -> u64 {
    let ts = clock_gettime(ClockId::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC is always there");
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}

/// (voluntary, involuntary) context switches of the calling thread so far.
fn context_switches() -> (u64, u64) {
    match getrusage(UsageWho::RUSAGE_THREAD) {
        Ok(u) => (
            u.voluntary_context_switches() as u64,
            u.involuntary_context_switches() as u64,
        ),
        Err(_) => (0, 0),
    }
}

fn word(bytes: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&bytes[..8]);
    u64::from_ne_bytes(w)
}

/// Wrapping sum of the payload's 8-byte words (and tail bytes): reads every byte.
fn checksum(payload: &[u8]) -> u64 {
    let mut chunks = payload.chunks_exact(8);
    let sum = chunks
        .by_ref()
        .fold(0u64, |acc, c| acc.wrapping_add(word(c)));
    chunks
        .remainder()
        .iter()
        .fold(sum, |acc, &b| acc.wrapping_add(u64::from(b)))
}

// ---------------------------------------------------------------------------------------------
// Consumer process
// ---------------------------------------------------------------------------------------------

fn consumer_main(args: &[String]) -> Result<(), String> {
    // Die with the producer; if it died before this line, its pid is not our parent's any more.
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
        .map_err(|e| format!("PR_SET_PDEATHSIG: {e}"))?;
    let parent: i32 = std::env::var(PARENT_ENV)
        .ok()
        .and_then(|p| p.parse().ok())
        .ok_or(format!("{PARENT_ENV} is not set to a pid"))?;
    if nix::unistd::getppid().as_raw() != parent {
        return Err("the producer is gone".into());
    }
    thread::spawn(|| {
        thread::sleep(WATCHDOG + Duration::from_secs(10));
        eprintln!("ring-bench consumer: watchdog, exiting");
        std::process::exit(3);
    });
    let fd: i32 = std::env::var(FD_ENV)
        .ok()
        .and_then(|p| p.parse().ok())
        .ok_or(format!("{FD_ENV} is not set to a descriptor"))?;
    let segment = RingSegment::open_inherited(fd).map_err(|e| e.to_string())?;
    let mut consumer = Consumer::attach(segment.into_fd(), WIRE).map_err(|e| e.to_string())?;
    let mut out = std::io::stdout().lock();
    let mut say = |line: String| {
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .map_err(|e| format!("writing to the producer: {e}"))
    };
    say("ready".into())?;
    match args {
        [mode, size] if mode == "throughput" => {
            let size: usize = size
                .parse()
                .ok()
                .filter(|&s| s >= 8)
                .ok_or(format!("bad size {size:?}"))?;
            let result = consume_throughput(&mut consumer, size)?;
            say(result)
        }
        [mode] if mode == "latency" => {
            let result = consume_latency(&mut consumer)?;
            say(result)
        }
        _ => Err(format!("bad consumer arguments {args:?}")),
    }
}

/// Reads frames until the ring is closed, checking each; returns the result line:
/// `frames payload_bytes end_ns voluntary_cs involuntary_cs checksum`.
fn consume_throughput(consumer: &mut Consumer, size: usize) -> Result<String, String> {
    let cs0 = context_switches();
    let (mut frames, mut bytes, mut sum) = (0u64, 0u64, 0u64);
    loop {
        match consumer.next(None).map_err(|e| e.to_string())? {
            Next::Frame(frame) => {
                if frame.seq != frames || frame.payload.len() != size {
                    return Err(format!(
                        "frame {frames}: got sequence number {} and {} bytes, expected {size}",
                        frame.seq,
                        frame.payload.len()
                    ));
                }
                if word(frame.payload) != frames {
                    return Err(format!(
                        "frame {frames}: payload does not start with its seq"
                    ));
                }
                sum = sum.wrapping_add(checksum(frame.payload));
                frames += 1;
                bytes += size as u64;
            }
            Next::Closed => break,
            Next::Aborted => return Err("the ring was aborted".into()),
            Next::TimedOut => {}
        }
    }
    let end = now_ns();
    let cs1 = context_switches();
    Ok(format!(
        "{frames} {bytes} {end} {} {} {sum}",
        cs1.0 - cs0.0,
        cs1.1 - cs0.1
    ))
}

/// Reads stamped frames until the ring is closed; returns the result line:
/// `voluntary_cs involuntary_cs frames latency_ns...` (the latencies in arrival order).
fn consume_latency(consumer: &mut Consumer) -> Result<String, String> {
    let cs0 = context_switches();
    let mut latencies = Vec::with_capacity(1 << 16);
    loop {
        match consumer.next(None).map_err(|e| e.to_string())? {
            Next::Frame(frame) => {
                let received = now_ns();
                if frame.payload.len() != LATENCY_PAYLOAD {
                    return Err(format!("latency frame of {} bytes", frame.payload.len()));
                }
                latencies.push(received.saturating_sub(word(frame.payload)));
            }
            Next::Closed => break,
            Next::Aborted => return Err("the ring was aborted".into()),
            Next::TimedOut => {}
        }
    }
    let cs1 = context_switches();
    let mut line = format!("{} {} {}", cs1.0 - cs0.0, cs1.1 - cs0.1, latencies.len());
    for l in latencies {
        line.push(' ');
        line.push_str(&l.to_string());
    }
    Ok(line)
}

// ---------------------------------------------------------------------------------------------
// Producer process: spawning and supervising the consumer
// ---------------------------------------------------------------------------------------------

/// How the consumer process ended.
#[derive(Debug)]
enum Ending {
    Exited(ExitStatus),
    KilledByWatchdog,
    Killed,
}

/// The consumer process with its supervisor thread, which aborts the ring if the consumer dies
/// before the ring is closed (so a blocked producer fails instead of hanging), kills it after
/// [`WATCHDOG`], and kills it when dropped before [`ConsumerProcess::wait`] (any failure path).
struct ConsumerProcess {
    stdout: BufReader<ChildStdout>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Ending>>,
}

impl ConsumerProcess {
    /// Starts the consumer on `segment` with `mode_args`, then waits for it to be attached.
    fn spawn(segment: &RingSegment, mode_args: &[String]) -> Result<Self, String> {
        let monitor = segment.monitor().map_err(|e| e.to_string())?;
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        // A duplicate without CLOEXEC, inherited by the child only while we hold it.
        let inheritable = nix::unistd::dup(segment.fd()).map_err(|e| format!("dup: {e}"))?;
        let mut child = Command::new(exe)
            .arg("--child")
            .args(mode_args)
            .env(FD_ENV, inheritable.as_raw_fd().to_string())
            .env(PARENT_ENV, std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawning the consumer: {e}"))?;
        drop(inheritable);
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err("the consumer has no stdout pipe".into());
        };
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            thread::spawn(move || supervise(child, &monitor, &stop))
        };
        let mut process = Self {
            stdout: BufReader::new(stdout),
            stop,
            thread: Some(thread),
        };
        match process.line()?.as_str() {
            "ready" => Ok(process),
            other => Err(format!("the consumer said {other:?} instead of ready")),
        }
    }

    /// The consumer's next line of output.
    fn line(&mut self) -> Result<String, String> {
        let mut line = String::new();
        match self.stdout.read_line(&mut line) {
            Ok(0) => Err("the consumer exited without an answer".into()),
            Ok(_) => Ok(line.trim_end().to_owned()),
            Err(e) => Err(format!("reading the consumer's output: {e}")),
        }
    }

    /// Waits for the consumer to exit on its own (or for the watchdog); `Ok` on success.
    fn wait(mut self) -> Result<(), String> {
        let ending = self
            .thread
            .take()
            .map(|t| t.join().unwrap_or(Ending::Killed));
        match ending {
            Some(Ending::Exited(status)) if status.success() => Ok(()),
            other => Err(format!("consumer ended badly: {other:?}")),
        }
    }
}

impl Drop for ConsumerProcess {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.stop.store(true, Ordering::SeqCst);
            let _ = thread.join();
        }
    }
}

/// The supervisor loop. Polls with `nanosleep`, not a futex, so that futex counts under strace
/// are the ring's.
fn supervise(mut child: Child, monitor: &RingMonitor, stop: &AtomicBool) -> Ending {
    let deadline = Instant::now() + WATCHDOG;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                if !monitor.is_closed() {
                    monitor.abort();
                }
                return Ending::Exited(status);
            }
            Ok(None) => {}
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                monitor.abort();
                return Ending::Killed;
            }
        }
        if stop.load(Ordering::SeqCst) {
            let _ = child.kill();
            let _ = child.wait();
            monitor.abort();
            return Ending::Killed;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            monitor.abort();
            return Ending::KilledByWatchdog;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// A fresh ring with a consumer process attached to it, and this process's producer.
fn start(config: &Config, mode_args: &[String]) -> Result<(Producer, ConsumerProcess), String> {
    let segment =
        RingSegment::create("sf-ring-bench", config.ring_size, WIRE).map_err(|e| e.to_string())?;
    let consumer = ConsumerProcess::spawn(&segment, mode_args)?;
    let producer = Producer::attach(segment.into_fd(), WIRE).map_err(|e| e.to_string())?;
    Ok((producer, consumer))
}

// ---------------------------------------------------------------------------------------------
// Producer process: the measurements
// ---------------------------------------------------------------------------------------------

/// One throughput run.
#[derive(Debug, Clone, Copy)]
struct Run {
    secs: f64,
    /// Voluntary context switches of the producer and the consumer thread.
    producer_vcs: u64,
    consumer_vcs: u64,
    /// Involuntary ones (preemption: the machine is shared).
    producer_ics: u64,
    consumer_ics: u64,
}

fn throughput_run(config: &Config, size: usize) -> Result<Run, String> {
    let (mut producer, consumer) = start(config, &["throughput".into(), size.to_string()])?;
    let mut consumer = consumer;
    let mut payload = vec![0xA5u8; size];
    let cs0 = context_switches();
    let start = now_ns();
    for seq in 0..config.frames {
        payload[..8].copy_from_slice(&seq.to_ne_bytes());
        producer
            .push(seq, &payload)
            .map_err(|e| format!("push of frame {seq}: {e}"))?;
    }
    producer.close();
    let cs1 = context_switches();
    let line = consumer.line()?;
    consumer.wait()?;
    let fields: Vec<u64> = line
        .split(' ')
        .map(|f| {
            f.parse()
                .map_err(|_| format!("bad consumer result {line:?}"))
        })
        .collect::<Result<_, _>>()?;
    let [frames, bytes, end, vcs, ics, _sum] = fields[..] else {
        return Err(format!("bad consumer result {line:?}"));
    };
    if frames != config.frames || bytes != config.frames * size as u64 {
        return Err(format!(
            "the consumer got {frames} frames, {bytes} bytes; expected {}",
            config.frames
        ));
    }
    Ok(Run {
        secs: end.saturating_sub(start) as f64 / 1e9,
        producer_vcs: cs1.0 - cs0.0,
        consumer_vcs: vcs,
        producer_ics: cs1.1 - cs0.1,
        consumer_ics: ics,
    })
}

/// One latency run: a frame every `interval` for `config.latency_secs`; returns the consumer's
/// latencies in ns (warm-up left out) and its voluntary context switches.
fn latency_run(config: &Config, interval: Duration) -> Result<(Vec<u64>, u64), String> {
    let (mut producer, mut consumer) = start(config, &["latency".into()])?;
    let frames = ((config.latency_secs / interval.as_secs_f64()) as u64).max(100);
    let interval_ns = interval.as_nanos() as u64;
    let mut payload = [0u8; LATENCY_PAYLOAD];
    let start = now_ns() + interval_ns;
    for seq in 0..frames {
        let due = start + seq * interval_ns;
        // Sleep through long intervals (leaving 200 µs of timer slack), spin the rest.
        let now = now_ns();
        if due > now + 300_000 {
            thread::sleep(Duration::from_nanos(due - now - 200_000));
        }
        while now_ns() < due {
            std::hint::spin_loop();
        }
        payload[..8].copy_from_slice(&now_ns().to_ne_bytes());
        producer
            .push(seq, &payload)
            .map_err(|e| format!("push of frame {seq}: {e}"))?;
        producer.flush();
    }
    producer.close();
    let line = consumer.line()?;
    consumer.wait()?;
    let fields: Vec<u64> = line
        .split(' ')
        .map(|f| f.parse().map_err(|_| "bad consumer result".to_string()))
        .collect::<Result<_, _>>()?;
    let [vcs, _ics, count, ref latencies @ ..] = fields[..] else {
        return Err("short consumer result".into());
    };
    if count != frames || latencies.len() as u64 != frames {
        return Err(format!(
            "the consumer got {count} frames, expected {frames}"
        ));
    }
    Ok((
        latencies[LATENCY_WARMUP.min(latencies.len())..].to_vec(),
        vcs,
    ))
}

/// `frames` frames of each size pushed and read in one thread through a memfd ring, in rounds
/// of half a ring: the ring's own work per frame, for instruction counts under callgrind
/// (run it with two values of `frames` and divide the difference of the counts).
fn in_process(config: &Config, frames: u64) -> Result<(), String> {
    for &size in &config.sizes {
        let segment = RingSegment::create("sf-ring-bench", config.ring_size, WIRE)
            .map_err(|e| e.to_string())?;
        let fd = segment
            .fd()
            .try_clone_to_owned()
            .map_err(|e| e.to_string())?;
        let mut producer = Producer::attach(fd, WIRE).map_err(|e| e.to_string())?;
        let mut consumer = Consumer::attach(segment.into_fd(), WIRE).map_err(|e| e.to_string())?;
        let round = (config.ring_size as u64 / 2 / (16 + size as u64)).max(1);
        let mut payload = vec![0xA5u8; size];
        let (mut pushed, mut read) = (0u64, 0u64);
        while read < frames {
            let end = frames.min(pushed + round);
            for seq in pushed..end {
                payload[..8].copy_from_slice(&seq.to_ne_bytes());
                producer
                    .push(seq, &payload)
                    .map_err(|e| format!("push of frame {seq}: {e}"))?;
            }
            pushed = end;
            producer.flush();
            while read < pushed {
                match consumer
                    .next(Some(Duration::ZERO))
                    .map_err(|e| e.to_string())?
                {
                    Next::Frame(frame) if frame.seq == read && word(frame.payload) == read => {
                        read += 1
                    }
                    other => return Err(format!("frame {read}: {other:?}")),
                }
            }
        }
        println!("{size}-byte payloads: {frames} frames through one thread");
    }
    Ok(())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The `q` quantile (0..=1) of sorted values, nearest rank.
fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn per_million(count: u64, frames: u64) -> f64 {
    count as f64 * 1e6 / frames as f64
}

fn producer_main(config: &Config) -> Result<(), String> {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    println!(
        "machine: {} cores, load average {} at start",
        thread::available_parallelism().map_or(0, |n| n.get()),
        load.join(" ")
    );
    if config.throughput {
        throughput(config)?;
    }
    if config.latency {
        latency(config)?;
    }
    Ok(())
}

fn throughput(config: &Config) -> Result<(), String> {
    let mut rows = Vec::new();
    for &size in &config.sizes {
        let mut runs = Vec::new();
        for round in 0..config.runs {
            let run = throughput_run(config, size)?;
            eprintln!(
                "size {size}, run {}/{}: {:.3} s, {:.2}M frames/s",
                round + 1,
                config.runs,
                run.secs,
                config.frames as f64 / run.secs / 1e6
            );
            runs.push(run);
        }
        rows.push((size, runs));
    }
    println!(
        "ring throughput — 2 processes, {} MiB ring, {} frames per run, median of {} runs",
        config.ring_size >> 20,
        config.frames,
        config.runs
    );
    println!(
        "| {:>9} | {:>7} | {:>8} | {:>10} | {:>10} | {:>10} | {:>21} | {:>21} |",
        "payload B",
        "frame B",
        "median s",
        "frames/s",
        "MB/s (pay)",
        "MB/s (ring)",
        "vol. cs/M prod / cons",
        "invol. cs/M prod/cons"
    );
    println!(
        "|{:->11}|{:->9}|{:->10}|{:->12}|{:->12}|{:->12}|{:->23}|{:->23}|",
        "", "", "", "", "", "", "", ""
    );
    for (size, runs) in rows {
        let frame = 16 + size.div_ceil(8) * 8;
        let secs = median(runs.iter().map(|r| r.secs).collect());
        let med = |f: fn(&Run) -> u64| median(runs.iter().map(|r| f(r) as f64).collect()) as u64;
        let frames = config.frames;
        println!(
            "| {:>9} | {:>7} | {:>8.3} | {:>9.2}M | {:>10.0} | {:>11.0} | {:>10.1} / {:>8.1} | {:>10.1} / {:>8.1} |",
            size,
            frame,
            secs,
            frames as f64 / secs / 1e6,
            (frames * size as u64) as f64 / secs / 1e6,
            (frames * frame as u64) as f64 / secs / 1e6,
            per_million(med(|r| r.producer_vcs), frames),
            per_million(med(|r| r.consumer_vcs), frames),
            per_million(med(|r| r.producer_ics), frames),
            per_million(med(|r| r.consumer_ics), frames),
        );
    }
    Ok(())
}

fn latency(config: &Config) -> Result<(), String> {
    let cases = [
        ("busy", config.busy_interval),
        ("sleeping", config.sleep_interval),
    ];
    let mut rows = Vec::new();
    for (name, interval) in cases {
        let mut all = Vec::new();
        let mut switches = 0;
        for round in 0..config.latency_runs {
            let (latencies, vcs) = latency_run(config, interval)?;
            eprintln!(
                "latency {name}, run {}/{}: {} frames",
                round + 1,
                config.latency_runs,
                latencies.len()
            );
            switches += vcs;
            all.extend(latencies);
        }
        all.sort_unstable();
        rows.push((name, interval, switches, all));
    }
    println!(
        "ring hand-off latency — {LATENCY_PAYLOAD}-byte frames stamped with CLOCK_MONOTONIC, \
         pushed and flushed one at a time, {} runs of {} s",
        config.latency_runs, config.latency_secs
    );
    println!(
        "| {:<8} | {:>11} | {:>7} | {:>8} | {:>8} | {:>8} | {:>9} | {:>22} |",
        "consumer",
        "one frame/",
        "frames",
        "p50 µs",
        "p99 µs",
        "p99.9 µs",
        "max µs",
        "consumer vol. cs/frame"
    );
    println!(
        "|{:-<10}|{:->13}|{:->9}|{:->10}|{:->10}|{:->10}|{:->11}|{:->24}|",
        "", "", "", "", "", "", "", ""
    );
    for (name, interval, switches, all) in rows {
        let us = |q: f64| quantile(&all, q) as f64 / 1e3;
        println!(
            "| {:<8} | {:>8} µs | {:>7} | {:>8.1} | {:>8.1} | {:>8.1} | {:>9.1} | {:>22.2} |",
            name,
            interval.as_micros(),
            all.len(),
            us(0.5),
            us(0.99),
            us(0.999),
            us(1.0),
            switches as f64 / all.len().max(1) as f64,
        );
    }
    Ok(())
}
