//! Ring tests on real memfd segments (not runnable under Miri: they map files).
#![cfg(not(miri))]

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::memfd::{MFdFlags, memfd_create};
use sf_processor::ring::{
    Consumer, Next, Producer, PushError, RING_LAYOUT_VERSION, RING_MAGIC, RingError, RingMonitor,
    RingSegment,
};

const WIRE: u32 = 4;
const LONG: Option<Duration> = Some(Duration::from_secs(30));

fn payload(seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seq.wrapping_mul(131).wrapping_add(i as u64) % 253) as u8)
        .collect()
}

fn dup(segment: &RingSegment) -> OwnedFd {
    segment
        .fd()
        .try_clone_to_owned()
        .expect("dup of the segment fd")
}

/// Lines of /proc/self/maps that map the memfd named `name`.
fn maps_of(name: &str) -> Vec<String> {
    let needle = format!("/memfd:{name} ");
    std::fs::read_to_string("/proc/self/maps")
        .expect("/proc/self/maps")
        .lines()
        .filter(|line| line.contains(&needle))
        .map(str::to_owned)
        .collect()
}

#[test]
fn ring_round_trip_between_threads() {
    let segment = RingSegment::create("sf-ring-test-roundtrip", 16 * 1024, WIRE).unwrap();
    let mut producer = Producer::attach(dup(&segment), WIRE).unwrap();
    let mut consumer = Consumer::attach(segment.into_fd(), WIRE).unwrap();
    assert_eq!(producer.capacity(), 16 * 1024);
    let writer = thread::spawn(move || {
        for seq in 0..20_000u64 {
            producer
                .push(seq, &payload(seq, (seq % 700) as usize))
                .unwrap();
        }
        producer.close();
    });
    for seq in 0..20_000u64 {
        match consumer.next(LONG).unwrap() {
            Next::Frame(frame) => {
                assert_eq!(frame.seq, seq);
                assert_eq!(frame.payload, payload(seq, (seq % 700) as usize).as_slice());
            }
            other => panic!("frame {seq} missing: {other:?}"),
        }
    }
    assert!(matches!(consumer.next(LONG).unwrap(), Next::Closed));
    writer.join().unwrap();
}

#[test]
fn ring_segment_is_private_named_and_sealed() {
    let segment = RingSegment::create("sf-ring-test-named", 5000, WIRE).unwrap();
    let link = std::fs::read_link(format!("/proc/self/fd/{}", segment.fd().as_raw_fd())).unwrap();
    assert!(
        link.to_string_lossy()
            .starts_with("/memfd:sf-ring-test-named"),
        "{link:?}"
    );
    let stat = nix::sys::stat::fstat(segment.fd()).unwrap();
    assert_eq!(stat.st_mode & 0o777, 0o600);
    assert_eq!(
        stat.st_size,
        4096 + 8192,
        "capacity rounded up to a power of two"
    );
    // Sealed: it can neither shrink nor grow.
    assert!(nix::unistd::ftruncate(segment.fd(), 4096).is_err());
    assert!(nix::unistd::ftruncate(segment.fd(), 1 << 20).is_err());
    assert_eq!(segment.monitor().unwrap().capacity(), 8192);
}

#[test]
fn ring_consumer_maps_data_read_only() {
    let name = "sf-ring-test-readonly";
    let segment = RingSegment::create(name, 8192, WIRE).unwrap();
    let consumer = Consumer::attach(dup(&segment), WIRE).unwrap();
    let maps = maps_of(name);
    assert_eq!(maps.len(), 2, "{maps:#?}");
    // `ADDR-ADDR PERMS OFFSET ...`
    let fields = |line: &str| -> (String, String) {
        let mut parts = line.split_whitespace().skip(1);
        (
            parts.next().unwrap().to_owned(),
            parts.next().unwrap().to_owned(),
        )
    };
    let mut perms: Vec<_> = maps.iter().map(|line| fields(line)).collect();
    perms.sort();
    assert_eq!(
        perms,
        [
            ("r--s".to_owned(), "00001000".to_owned()),
            ("rw-s".to_owned(), "00000000".to_owned())
        ]
    );
    drop(consumer);
    assert!(maps_of(name).is_empty(), "unmapped on drop");

    let producer = Producer::attach(segment.into_fd(), WIRE).unwrap();
    let perms: Vec<_> = maps_of(name).iter().map(|line| fields(line).0).collect();
    assert_eq!(perms, ["rw-s", "rw-s"]);
    drop(producer);
}

#[test]
fn ring_wire_version_mismatch_names_both_versions() {
    let segment = RingSegment::create("sf-ring-test-wire", 4096, 12).unwrap();
    let err = Consumer::attach(dup(&segment), 13).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("wire version 12") && text.contains("wire version 13"),
        "{text}"
    );
    let err = Producer::attach(dup(&segment), 11).unwrap_err();
    assert!(
        matches!(
            err,
            RingError::WireVersion {
                found: 12,
                expected: 11
            }
        ),
        "{err}"
    );
    // A monitor does not care about the wire version.
    assert_eq!(
        RingMonitor::attach(segment.fd()).unwrap().wire_version(),
        12
    );
}

#[test]
fn ring_bad_magic_and_layout_version() {
    let segment = RingSegment::create("sf-ring-test-magic", 4096, WIRE).unwrap();
    let file = File::from(dup(&segment));
    file.write_at(&0x1122_3344_5566_7788u64.to_ne_bytes(), 0)
        .unwrap();
    let err = Consumer::attach(dup(&segment), WIRE).unwrap_err();
    assert!(
        matches!(
            err,
            RingError::BadMagic {
                found: 0x1122_3344_5566_7788
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("0x1122334455667788"), "{err}");

    file.write_at(&RING_MAGIC.to_ne_bytes(), 0).unwrap();
    file.write_at(&99u32.to_ne_bytes(), 8).unwrap();
    let err = Producer::attach(dup(&segment), WIRE).unwrap_err();
    assert!(
        matches!(
            err,
            RingError::LayoutVersion {
                found: 99,
                expected: RING_LAYOUT_VERSION
            }
        ),
        "{err}"
    );

    file.write_at(&RING_LAYOUT_VERSION.to_ne_bytes(), 8)
        .unwrap();
    file.write_at(&12345u64.to_ne_bytes(), 24).unwrap();
    let err = RingMonitor::attach(segment.fd()).unwrap_err();
    assert!(
        matches!(
            err,
            RingError::BadHeader {
                field: "capacity",
                ..
            }
        ),
        "{err}"
    );

    file.write_at(&(1u64 << 20).to_ne_bytes(), 24).unwrap();
    let err = Consumer::attach(dup(&segment), WIRE).unwrap_err();
    assert!(
        matches!(err, RingError::TooSmall { size: 8192, .. }),
        "{err}"
    );
}

#[test]
fn ring_rejects_files_it_did_not_create() {
    let file = tempfile::tempfile().unwrap();
    file.set_len(8192).unwrap();
    let err = Consumer::attach(OwnedFd::from(file), WIRE).unwrap_err();
    assert!(matches!(err, RingError::NotSealed), "{err}");

    let fd = memfd_create("sf-ring-test-small", MFdFlags::MFD_CLOEXEC).unwrap();
    nix::unistd::ftruncate(&fd, 100).unwrap();
    let err = RingMonitor::attach(fd.as_fd()).unwrap_err();
    assert!(
        matches!(
            err,
            RingError::TooSmall {
                size: 100,
                needed: 4096
            }
        ),
        "{err}"
    );
}

#[test]
fn ring_bad_memfd_name_is_an_io_error() {
    let err = RingSegment::create("nul\0inside", 4096, WIRE).unwrap_err();
    assert!(matches!(err, RingError::Io { .. }), "{err}");
    assert!(err.to_string().contains("memfd_create"), "{err}");
    let err = RingSegment::create("big", usize::MAX, WIRE).unwrap_err();
    assert!(matches!(err, RingError::CapacityTooLarge { .. }), "{err}");
}

#[test]
fn ring_open_inherited_takes_the_descriptor_once_and_marks_it_close_on_exec() {
    use std::os::fd::IntoRawFd;
    let segment = RingSegment::create("sf-ring-test-inherited", 4096, WIRE).unwrap();
    let other = dup(&segment);
    // As a child sees it: a bare descriptor number nothing owns.
    let raw = other.into_raw_fd();
    nix::fcntl::fcntl(
        segment.fd(),
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .unwrap();
    let taken = RingSegment::open_inherited(raw).unwrap();
    let flags = nix::fcntl::fcntl(taken.fd(), nix::fcntl::FcntlArg::F_GETFD).unwrap();
    assert_eq!(flags & nix::libc::FD_CLOEXEC, nix::libc::FD_CLOEXEC);
    let again = RingSegment::open_inherited(raw).unwrap_err();
    assert_eq!(
        again.to_string(),
        format!(
            "inherited descriptor {raw} (taken already): Device or resource busy (os error 16)"
        )
    );
    let mut producer = Producer::attach(taken.into_fd(), WIRE).unwrap();
    let mut consumer = Consumer::attach(segment.into_fd(), WIRE).unwrap();
    producer.push(5, b"inherited").unwrap();
    producer.flush();
    match consumer.next(LONG).unwrap() {
        Next::Frame(frame) => assert_eq!((frame.seq, frame.payload), (5, &b"inherited"[..])),
        other => panic!("{other:?}"),
    }
    let err = RingSegment::open_inherited(987_654).unwrap_err();
    assert_eq!(
        err.to_string(),
        "inherited descriptor 987654: Bad file descriptor (os error 9)"
    );
    assert!(RingSegment::open_inherited(1).is_err(), "standard streams");
}

#[test]
fn ring_monitor_sees_positions_and_wakes_both_sides() {
    let segment = RingSegment::create("sf-ring-test-monitor", 4096, WIRE).unwrap();
    let monitor = segment.monitor().unwrap();
    let mut producer = Producer::attach(dup(&segment), WIRE).unwrap();
    let mut consumer = Consumer::attach(segment.into_fd(), WIRE).unwrap();
    assert_eq!(monitor.producer_pid(), std::process::id());
    assert_eq!(monitor.consumer_pid(), std::process::id());
    producer.push(1, &[1; 100]).unwrap();
    producer.flush();
    assert_eq!((monitor.write_pos(), monitor.read_pos()), (120, 0));
    assert!(matches!(consumer.next(LONG).unwrap(), Next::Frame(_)));
    // Fill the ring: the producer blocks until the consumer is marked gone.
    let writer = thread::spawn(move || {
        loop {
            if let Err(e) = producer.push(2, &[2; 1000]) {
                return e;
            }
        }
    });
    while monitor.write_pos() < 120 + 3 * 1016 {
        thread::yield_now();
    }
    monitor.mark_consumer_gone();
    assert!(matches!(writer.join().unwrap(), PushError::ConsumerGone));
    for _ in 0..3 {
        assert!(matches!(consumer.next(LONG).unwrap(), Next::Frame(_)));
    }
    // A consumer blocked on the empty ring is woken by abort.
    let reader = thread::spawn(move || matches!(consumer.next(None).unwrap(), Next::Aborted));
    monitor.abort();
    assert!(reader.join().unwrap());
    assert!(monitor.is_aborted() && !monitor.is_closed());
}

/// CPU time in nanoseconds of the calling thread, if the kernel reports it.
fn thread_cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

#[test]
fn ring_idle_consumer_sleeps_instead_of_spinning() {
    let segment = RingSegment::create("sf-ring-test-idle", 4096, WIRE).unwrap();
    let mut consumer = Consumer::attach(segment.into_fd(), WIRE).unwrap();
    let Some(before) = thread_cpu_ns() else {
        eprintln!("no /proc/thread-self/schedstat: skipped");
        return;
    };
    let started = Instant::now();
    assert!(matches!(
        consumer.next(Some(Duration::from_millis(300))).unwrap(),
        Next::TimedOut
    ));
    let waited = started.elapsed();
    let cpu = Duration::from_nanos(thread_cpu_ns().unwrap() - before);
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    // A spinning wait would burn ~300 ms; a futex sleep burns a few microseconds.
    assert!(
        cpu < Duration::from_millis(50),
        "idle wait used {cpu:?} of CPU"
    );
}

#[test]
fn ring_progress_counters_are_visible_to_the_monitor() {
    let segment = RingSegment::create("sf-ring-test-progress", 64 * 1024, WIRE).unwrap();
    let monitor = segment.monitor().unwrap();
    let mut producer = Producer::attach(dup(&segment), WIRE).unwrap();
    let mut consumer = Consumer::attach(dup(&segment), WIRE).unwrap();
    for seq in 1..=3 {
        producer.push(seq, b"x").unwrap();
    }
    assert_eq!(
        monitor.published_seq(),
        0,
        "nothing published before a flush"
    );
    producer.flush();
    assert_eq!(monitor.published_seq(), 3);
    producer.count_dropped(2);
    assert_eq!(monitor.dropped(), 2);
    let Next::Frame(f) = consumer.next(Some(Duration::from_secs(5))).unwrap() else {
        panic!("no frame")
    };
    assert_eq!(f.seq, 1);
    // Returned, not yet handled.
    assert_eq!((monitor.inflight_seq(), monitor.handled_seq()), (1, 0));
    let Next::Frame(f) = consumer.next(Some(Duration::from_secs(5))).unwrap() else {
        panic!("no frame")
    };
    assert_eq!(f.seq, 2);
    assert_eq!(
        (
            monitor.inflight_seq(),
            monitor.handled_seq(),
            monitor.handled_count()
        ),
        (2, 1, 1)
    );
    consumer.commit();
    assert_eq!(
        (
            monitor.inflight_seq(),
            monitor.handled_seq(),
            monitor.handled_count()
        ),
        (2, 2, 2)
    );
    // A new consumer starts with nothing in progress.
    drop(consumer);
    let _consumer = Consumer::attach(dup(&segment), WIRE).unwrap();
    assert_eq!((monitor.inflight_seq(), monitor.handled_seq()), (2, 2));
    // A restarted producer resumes with the published sequence number.
    drop(producer);
    let again = Producer::attach(dup(&segment), WIRE).unwrap();
    assert_eq!(again.published_seq(), 3);
}
