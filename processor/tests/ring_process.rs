//! Cross-process ring test: this test binary re-executes itself as the producer process (the
//! `ring_child_producer` test, which does nothing unless the parent set `SF_RING_TEST_CHILD_FD`)
//! and the parent consumes. The memfd reaches the child as an inherited descriptor.
#![cfg(not(miri))]

use std::os::fd::AsRawFd;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::LazyLock;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use sf_processor::ring::{Consumer, Next, Producer, RingMonitor, RingSegment};

const CHILD_FD_ENV: &str = "SF_RING_TEST_CHILD_FD";
const PARENT_PID_ENV: &str = "SF_RING_TEST_PARENT_PID";
const WIRE: u32 = 2;
const FRAMES: u64 = 200_000;
const WATCHDOG: Duration = Duration::from_secs(60);

/// 64 KiB of pseudo-random bytes that payloads are cut from.
static PATTERN: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    (0..65_536)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
});

/// Payload of frame `seq`: mostly under 256 bytes, every 16th up to 8 KiB, cut from `PATTERN`
/// at an offset that depends on `seq`.
fn payload(seq: u64) -> &'static [u8] {
    let hash = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
    let len = if seq.is_multiple_of(16) {
        hash % 8192
    } else {
        hash % 256
    } as usize;
    let start = (seq.wrapping_mul(7919) % 32_768) as usize;
    &PATTERN[start..start + len]
}

/// The child side; a no-op unless run by `ring_producer_in_another_process`.
#[test]
fn ring_child_producer() {
    let Ok(fd) = std::env::var(CHILD_FD_ENV) else {
        return;
    };
    // Die with the parent, and on our own if something hangs.
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).unwrap();
    let parent: i32 = std::env::var(PARENT_PID_ENV).unwrap().parse().unwrap();
    if nix::unistd::getppid().as_raw() != parent {
        std::process::exit(2);
    }
    thread::spawn(|| {
        thread::sleep(WATCHDOG + Duration::from_secs(30));
        std::process::exit(3);
    });
    let segment = RingSegment::open_inherited(fd.parse().unwrap()).unwrap();
    let mut producer = Producer::attach(segment.into_fd(), WIRE).unwrap();
    for seq in 0..FRAMES {
        producer.push(seq, payload(seq)).unwrap();
    }
    producer.close();
}

/// How the child ended.
#[derive(Debug)]
enum Ending {
    Exited(ExitStatus),
    KilledByWatchdog,
    KilledOnPanic,
}

/// Owns the child in a supervisor thread: aborts the ring if the child dies before closing it
/// (as the launcher does), kills it after `WATCHDOG`, or when the test panics (on drop).
struct Supervisor {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<Ending>>,
}

impl Supervisor {
    fn start(mut child: Child, monitor: RingMonitor) -> Self {
        let (stop, stopped) = mpsc::channel();
        let thread = thread::spawn(move || {
            let deadline = Instant::now() + WATCHDOG;
            loop {
                if let Some(status) = child.try_wait().expect("try_wait") {
                    if !monitor.is_closed() {
                        monitor.abort();
                    }
                    return Ending::Exited(status);
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    monitor.abort();
                    return Ending::KilledByWatchdog;
                }
                match stopped.recv_timeout(Duration::from_millis(20)) {
                    Err(RecvTimeoutError::Timeout) => {}
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Ending::KilledOnPanic;
                    }
                }
            }
        });
        Self {
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Waits for the child to exit on its own (or for the watchdog).
    fn wait(mut self) -> Ending {
        self.thread
            .take()
            .unwrap()
            .join()
            .expect("supervisor thread")
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            drop(self.stop.take());
            let _ = thread.join();
        }
    }
}

#[test]
fn ring_producer_in_another_process() {
    if std::env::var_os(CHILD_FD_ENV).is_some() {
        return;
    }
    let segment = RingSegment::create("sf-ring-test-xprocess", 64 * 1024, WIRE).unwrap();
    let monitor = segment.monitor().unwrap();
    // A duplicate without CLOEXEC, inherited by the child only while we hold it.
    let inheritable = nix::unistd::dup(segment.fd()).unwrap();
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "ring_child_producer",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_FD_ENV, inheritable.as_raw_fd().to_string())
        .env(PARENT_PID_ENV, std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    drop(inheritable);
    let child_pid = child.id();
    let supervisor = Supervisor::start(child, monitor);

    let mut consumer = Consumer::attach(segment.into_fd(), WIRE).unwrap();
    let mut bytes = 0usize;
    for seq in 0..FRAMES {
        match consumer.next(None).unwrap() {
            Next::Frame(frame) => {
                assert_eq!(frame.seq, seq);
                assert!(
                    frame.payload == payload(seq),
                    "payload of frame {seq} differs ({} bytes)",
                    frame.payload.len()
                );
                bytes += frame.payload.len();
            }
            other => panic!("frame {seq}: {other:?} (producer died or watchdog fired)"),
        }
    }
    assert!(matches!(consumer.next(None).unwrap(), Next::Closed));
    let ending = supervisor.wait();
    assert!(
        matches!(ending, Ending::Exited(status) if status.success()),
        "child {child_pid}: {ending:?}"
    );
    assert!(bytes > 10_000_000, "{bytes} payload bytes");
}
