//! Lock-free single-producer single-consumer ring of variable-size frames in shared memory.
//!
//! The reader process (the **producer**) publishes serialized records into one ring per handler
//! process (the **consumer**). A ring lives in a `memfd` created by the launcher
//! ([`RingSegment::create`]) and handed to the children by file descriptor, so the kernel frees it
//! when the last process holding it exits: nothing can leak in `/dev/shm`.
//!
//! This is the only module of the project with `unsafe` code: the mappings, the raw copies into
//! and out of the data region, and the hand-over of descriptors and lifetime to child
//! processes ([`take_inherited`], [`spawn_as_child`]). Every `unsafe` block carries a `// SAFETY:` comment and every
//! Acquire/Release pair a `// SYNC POINT:` comment naming its partner.
//!
//! # Segment layout (layout version 3)
//!
//! | offset | size | field | written by |
//! |---|---|---|---|
//! | 0 | 8 | `magic` = [`RING_MAGIC`] | creator |
//! | 8 | 4 | `layout_version` = [`RING_LAYOUT_VERSION`] | creator |
//! | 12 | 4 | `wire_version` (the codec version, opaque here) | creator |
//! | 16 | 4 | `header_size` (bytes of the header struct, 384) | creator |
//! | 20 | 4 | `data_offset` = [`RING_DATA_OFFSET`] (4096) | creator |
//! | 24 | 8 | `capacity` (data bytes, power of two, >= 4096) | creator |
//! | 32 | 4 | `producer_pid` (informational) | producer |
//! | 36 | 4 | `consumer_pid` (informational) | consumer |
//! | 64 | 8 | `write_pos` (bytes ever published, monotonic) | producer |
//! | 72 | 8 | `published_seq` (sequence number of the last frame published) | producer |
//! | 80 | 8 | `dropped` (frames the producer chose not to write, see [`Producer::count_dropped`]) | producer |
//! | 128 | 8 | `read_pos` (bytes ever acknowledged, monotonic) | consumer |
//! | 136 | 8 | `inflight_seq` (sequence number of the frame last returned by [`Consumer::next`]) | consumer |
//! | 144 | 8 | `handled_seq` (sequence number of the frame last released: handled) | consumer |
//! | 152 | 8 | `handled_count` (frames handled by every consumer so far) | consumer |
//! | 160 | 8 | `acked_seq` (sequence number of the last frame before `read_pos`: acknowledged) | consumer |
//! | 192 | 4 | `data_epoch` (futex word the consumer sleeps on) | producer, third party |
//! | 196 | 4 | `consumer_sleeping` (0/1) | consumer |
//! | 256 | 4 | `space_epoch` (futex word the producer sleeps on) | consumer, third party |
//! | 260 | 4 | `producer_sleeping` (0/1) | producer |
//! | 264 | 8 | `producer_wants` (read position the sleeping producer waits for) | producer |
//! | 320 | 4 | `state` flags: [`STATE_CLOSED`], [`STATE_ABORTED`], [`STATE_CONSUMER_GONE`] | all |
//! | 4096 | `capacity` | data region | producer |
//!
//! Every field is native-endian (the ring never leaves the machine), every group of fields
//! written by a different party sits on its own 64-byte cache line.
//!
//! # Frames
//!
//! A frame is a 16-byte header `{ len: u32, kind: u32, seq: u64 }` followed by `len` payload
//! bytes padded to a multiple of 8. Frames never straddle the end of the data region: when the
//! contiguous space left is too small, the producer writes a padding frame up to the end (kind
//! [`FRAME_KIND_PADDING`]), or, if fewer than 16 bytes remain, nothing (the consumer skips a tail
//! shorter than a frame header).
//!
//! # Protocol
//!
//! - The producer writes frames, then publishes `write_pos` with a Release store, in batches: on
//!   [`Producer::flush`], when more than [`Producer::flush_threshold`] bytes are unpublished, and
//!   before it blocks. **A producer that goes idle must call [`Producer::flush`]**, otherwise up
//!   to one batch stays invisible to the consumer.
//! - The consumer reads `write_pos` with an Acquire load only when its cached copy is exhausted,
//!   and publishes `read_pos` with a Release store in batches, always before it sleeps and as
//!   soon as the sleeping producer can make progress.
//! - A consumer that holds acknowledgements back ([`Consumer::hold_acknowledgements`], the
//!   handler SDK's, which acknowledges only what its handler made durable) releases frames
//!   only on [`Consumer::commit`]: `read_pos` is then the last commit, where a restarted
//!   consumer resumes, while `inflight_seq`, `handled_seq` and `handled_count` still follow
//!   every frame (progress, for the launcher's watchdog and poison detection).
//! - A side with nothing to do spins briefly, yields a few times, then sleeps on a futex (a
//!   non-private one: the word is shared between processes) with a timeout. The waiter loads the
//!   futex word (epoch), raises its sleeping flag, issues a SeqCst fence and re-checks its
//!   condition before sleeping; the other side, after publishing, issues a SeqCst fence and, if
//!   the flag is up, bumps the epoch and wakes. The two fences forbid the outcome where the waiter
//!   misses the publication and the publisher misses the flag.
//!
//! # Example
//!
//! ```
//! use sf_processor::ring::{Consumer, Next, Producer, RingSegment};
//! use std::time::Duration;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let segment = RingSegment::create("sf-ring-doc", 64 * 1024, 1)?;
//! let mut producer = Producer::attach(segment.fd().try_clone_to_owned()?, 1)?;
//! let mut consumer = Consumer::attach(segment.into_fd(), 1)?;
//!
//! producer.push(7, b"hello")?;
//! producer.close(); // flushes, then marks the ring closed
//!
//! match consumer.next(Some(Duration::from_secs(1)))? {
//!     Next::Frame(frame) => assert_eq!((frame.seq, frame.payload), (7, &b"hello"[..])),
//!     other => panic!("unexpected {other:?}"),
//! }
//! assert!(matches!(consumer.next(None)?, Next::Closed));
//! # Ok(())
//! # }
//! ```
#![deny(
    unsafe_op_in_unsafe_fn,
    clippy::undocumented_unsafe_blocks,
    clippy::missing_safety_doc,
    clippy::multiple_unsafe_ops_per_block
)]

use std::alloc::{self, Layout};
use std::cell::Cell;
use std::ffi::c_void;
use std::fmt;
use std::marker::PhantomData;
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::ptr::{self, NonNull};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, SealFlag, fcntl};
use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap};
use nix::sys::stat::{Mode, fchmod, fstat};
use nix::unistd::ftruncate;

/// Magic number at offset 0 of every ring segment (`"SF-RING\0"` read as a little-endian u64).
pub const RING_MAGIC: u64 = u64::from_le_bytes(*b"SF-RING\0");

/// Version of the segment layout described in the [module documentation](self); bumped on any
/// change of the header or frame format.
pub const RING_LAYOUT_VERSION: u32 = 3;

/// Length in bytes of a frame header (`len: u32`, `kind: u32`, `seq: u64`).
pub const FRAME_HEADER_LEN: usize = 16;

/// Offset in bytes of the data region from the start of the segment (one page after the header).
pub const RING_DATA_OFFSET: usize = 4096;

/// Smallest data capacity in bytes; smaller requests are rounded up to it.
pub const MIN_CAPACITY: usize = 4096;

/// Largest data capacity in bytes (4 GiB), so that every payload length fits a `u32`.
pub const MAX_CAPACITY: usize = 1 << 32;

/// Frame kind of a record frame.
pub const FRAME_KIND_RECORD: u32 = 1;

/// Frame kind of a padding frame (skipped by the consumer, runs to the end of the data region).
pub const FRAME_KIND_PADDING: u32 = 2;

/// State flag: the producer finished cleanly; the consumer drains what is left, then sees
/// [`Next::Closed`].
pub const STATE_CLOSED: u32 = 1;

/// State flag: set by a third party (the launcher, e.g. when the producer died); the consumer
/// stops at once ([`Next::Aborted`]) and the producer's pushes fail ([`PushError::Aborted`]).
pub const STATE_ABORTED: u32 = 2;

/// State flag: set by a third party when the consumer died; a producer that would block on a
/// full ring gets [`PushError::ConsumerGone`] instead. Cleared by [`Consumer::attach`].
pub const STATE_CONSUMER_GONE: u32 = 4;

/// Busy-wait iterations (`spin_loop` + re-check) before yielding.
const SPIN_LIMIT: u32 = 256;
/// `yield_now` iterations (+ re-check) before sleeping on the futex.
const YIELD_LIMIT: u32 = 8;
/// Longest single futex sleep: waits re-check their condition at least this often, so a wake-up
/// lost to a peer that died mid-protocol costs at most this much.
const WAIT_SLICE: Duration = Duration::from_millis(500);
/// Upper bound of the publication batch in bytes (the batch is also at most 1/8 of capacity).
const MAX_BATCH: u64 = 64 * 1024;

/// Error of creating, attaching or reading a ring.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RingError {
    /// A system call on the segment failed.
    #[error("{what}: {error}")]
    Io {
        /// The operation and its object, e.g. `mmap of the ring header (4096 bytes)`.
        what: String,
        /// The OS error.
        error: std::io::Error,
    },
    /// The requested data capacity is larger than [`MAX_CAPACITY`].
    #[error("ring data capacity of {requested} bytes is too large (at most {max} bytes)")]
    CapacityTooLarge {
        /// Requested capacity in bytes.
        requested: usize,
        /// [`MAX_CAPACITY`].
        max: usize,
    },
    /// The segment file is smaller than its header announces.
    #[error("ring segment is too small: {size} bytes, at least {needed} bytes needed")]
    TooSmall {
        /// Size of the segment in bytes.
        size: u64,
        /// Bytes the header page plus the announced data capacity need.
        needed: u64,
    },
    /// The segment file can shrink, so a mapping could fault: it was not made by
    /// [`RingSegment::create`].
    #[error("ring segment is not sealed against shrinking (not created by RingSegment::create)")]
    NotSealed,
    /// The first 8 bytes are not [`RING_MAGIC`].
    #[error("not a ring segment: magic {found:#018x}, expected {RING_MAGIC:#018x}")]
    BadMagic {
        /// The magic found at offset 0.
        found: u64,
    },
    /// The segment has another layout version than this build.
    #[error(
        "ring layout version mismatch: the segment has layout version {found}, this build \
         supports layout version {expected}"
    )]
    LayoutVersion {
        /// Layout version found in the segment.
        found: u32,
        /// [`RING_LAYOUT_VERSION`].
        expected: u32,
    },
    /// The ring carries records of another wire (codec) version than this process speaks.
    #[error(
        "ring wire version mismatch: the ring carries wire version {found}, this process speaks \
         wire version {expected}"
    )]
    WireVersion {
        /// Wire version written in the segment by its creator.
        found: u32,
        /// Wire version of this process.
        expected: u32,
    },
    /// A header field has an impossible value.
    #[error("bad ring header: {field} is {value}, {reason}")]
    BadHeader {
        /// Name of the field.
        field: &'static str,
        /// Its value.
        value: u64,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Positions or a frame header in shared memory are inconsistent (a peer broke the protocol).
    #[error("ring corrupt at byte position {position}: {what}")]
    Corrupt {
        /// Ring position (bytes since the start of the stream) of the inconsistency.
        position: u64,
        /// What is inconsistent.
        what: &'static str,
    },
}

/// Error of [`Producer::push`] and [`Producer::try_push`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// The payload is larger than the ring accepts ([`Producer::max_payload`]).
    #[error("record payload of {len} bytes is larger than the ring's maximum of {max} bytes")]
    TooLarge {
        /// Payload length in bytes.
        len: usize,
        /// Maximum payload length in bytes (capacity / 2 - 16).
        max: usize,
    },
    /// The ring is full and a third party marked its consumer gone ([`STATE_CONSUMER_GONE`]).
    #[error("the ring is full and its consumer is gone")]
    ConsumerGone,
    /// A third party aborted the ring ([`STATE_ABORTED`]).
    #[error("the ring was aborted")]
    Aborted,
    /// The consumer published an impossible position (a peer broke the protocol).
    #[error(
        "ring positions are inconsistent: consumer position {read_pos}, producer position \
         {write_pos}"
    )]
    Corrupt {
        /// Consumer position found in shared memory, in bytes.
        read_pos: u64,
        /// Producer position, in bytes.
        write_pos: u64,
    },
}

// ---------------------------------------------------------------------------------------------
// Shared header
// ---------------------------------------------------------------------------------------------

/// The shared header at offset 0 of a segment. Only atomics and never-accessed padding, so any
/// bit pattern is a valid value and a `&RingHeader` into memory other processes write is sound.
/// See the module documentation for the meaning of each field.
#[repr(C, align(64))]
struct RingHeader {
    // Line 0: identity, written once by the creator (pids: informational, by each side).
    magic: AtomicU64,
    layout_version: AtomicU32,
    wire_version: AtomicU32,
    header_size: AtomicU32,
    data_offset: AtomicU32,
    capacity: AtomicU64,
    producer_pid: AtomicU32,
    consumer_pid: AtomicU32,
    _identity_pad: [u8; 24],
    // Line 1: written by the producer only.
    write_pos: AtomicU64,
    published_seq: AtomicU64,
    dropped: AtomicU64,
    _write_pad: [u8; 40],
    // Line 2: written by the consumer only.
    read_pos: AtomicU64,
    inflight_seq: AtomicU64,
    handled_seq: AtomicU64,
    handled_count: AtomicU64,
    acked_seq: AtomicU64,
    _read_pad: [u8; 24],
    // Line 3: the consumer's wait for data.
    data_epoch: AtomicU32,
    consumer_sleeping: AtomicU32,
    _data_wait_pad: [u8; 56],
    // Line 4: the producer's wait for space.
    space_epoch: AtomicU32,
    producer_sleeping: AtomicU32,
    producer_wants: AtomicU64,
    _space_wait_pad: [u8; 48],
    // Line 5: state flags.
    state: AtomicU32,
    _state_pad: [u8; 60],
}

const HEADER_SIZE: usize = size_of::<RingHeader>();
const _: () = {
    assert!(HEADER_SIZE == 384);
    assert!(HEADER_SIZE <= RING_DATA_OFFSET);
    assert!(std::mem::offset_of!(RingHeader, capacity) == 24);
    assert!(std::mem::offset_of!(RingHeader, consumer_pid) == 36);
    assert!(std::mem::offset_of!(RingHeader, write_pos) == 64);
    assert!(std::mem::offset_of!(RingHeader, published_seq) == 72);
    assert!(std::mem::offset_of!(RingHeader, dropped) == 80);
    assert!(std::mem::offset_of!(RingHeader, read_pos) == 128);
    assert!(std::mem::offset_of!(RingHeader, inflight_seq) == 136);
    assert!(std::mem::offset_of!(RingHeader, handled_seq) == 144);
    assert!(std::mem::offset_of!(RingHeader, handled_count) == 152);
    assert!(std::mem::offset_of!(RingHeader, acked_seq) == 160);
    assert!(std::mem::offset_of!(RingHeader, data_epoch) == 192);
    assert!(std::mem::offset_of!(RingHeader, space_epoch) == 256);
    assert!(std::mem::offset_of!(RingHeader, producer_wants) == 264);
    assert!(std::mem::offset_of!(RingHeader, state) == 320);
};

impl RingHeader {
    /// Initialises a zeroed header. Called before any other party can see the segment.
    fn init(&self, capacity: usize, wire_version: u32) {
        self.layout_version
            .store(RING_LAYOUT_VERSION, Ordering::Relaxed);
        self.wire_version.store(wire_version, Ordering::Relaxed);
        self.header_size
            .store(HEADER_SIZE as u32, Ordering::Relaxed);
        self.data_offset
            .store(RING_DATA_OFFSET as u32, Ordering::Relaxed);
        self.capacity.store(capacity as u64, Ordering::Relaxed);
        // SYNC POINT: Release, pairs with the Acquire load of `magic` in `RingHeader::check`: a
        // checker that sees the magic sees the fields above (for in-process attachers; other
        // processes get the fd only after creation anyway).
        self.magic.store(RING_MAGIC, Ordering::Release);
    }

    /// Checks magic, layout version and geometry; returns the data capacity in bytes.
    /// `segment_len` is the size of the backing memory in bytes.
    fn check(&self, segment_len: u64) -> Result<usize, RingError> {
        // SYNC POINT: Acquire, pairs with the Release store of `magic` in `RingHeader::init`.
        let magic = self.magic.load(Ordering::Acquire);
        if magic != RING_MAGIC {
            return Err(RingError::BadMagic { found: magic });
        }
        let layout = self.layout_version.load(Ordering::Relaxed);
        if layout != RING_LAYOUT_VERSION {
            return Err(RingError::LayoutVersion {
                found: layout,
                expected: RING_LAYOUT_VERSION,
            });
        }
        let header_size = self.header_size.load(Ordering::Relaxed);
        if header_size as usize != HEADER_SIZE {
            return Err(RingError::BadHeader {
                field: "header_size",
                value: header_size.into(),
                reason: "expected 384",
            });
        }
        let data_offset = self.data_offset.load(Ordering::Relaxed);
        if data_offset as usize != RING_DATA_OFFSET {
            return Err(RingError::BadHeader {
                field: "data_offset",
                value: data_offset.into(),
                reason: "expected 4096",
            });
        }
        let capacity = self.capacity.load(Ordering::Relaxed);
        if !capacity.is_power_of_two()
            || capacity < MIN_CAPACITY as u64
            || capacity > MAX_CAPACITY as u64
        {
            return Err(RingError::BadHeader {
                field: "capacity",
                value: capacity,
                reason: "expected a power of two between 4096 and 2^32",
            });
        }
        let needed = RING_DATA_OFFSET as u64 + capacity;
        if segment_len < needed {
            return Err(RingError::TooSmall {
                size: segment_len,
                needed,
            });
        }
        Ok(capacity as usize)
    }

    fn check_wire(&self, expected: u32) -> Result<(), RingError> {
        let found = self.wire_version.load(Ordering::Relaxed);
        if found != expected {
            return Err(RingError::WireVersion { found, expected });
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Backing memory: memfd mappings or a heap block
// ---------------------------------------------------------------------------------------------

/// One `mmap` of a segment, unmapped on drop.
#[derive(Debug)]
struct Mmap {
    ptr: NonNull<c_void>,
    len: usize,
}

impl Mmap {
    fn new(
        fd: BorrowedFd<'_>,
        offset: usize,
        len: usize,
        prot: ProtFlags,
        what: &str,
    ) -> Result<Self, RingError> {
        let nz_len = NonZeroUsize::new(len).ok_or(RingError::BadHeader {
            field: "mapping length",
            value: 0,
            reason: "must not be zero",
        })?;
        let file_offset = offset as nix::libc::off_t;
        // SAFETY: a fresh MAP_SHARED mapping chosen by the kernel (no address hint) cannot alias
        // any Rust object; the caller checked that the file covers `offset..offset + len` and
        // the file is sealed against shrinking, so accesses cannot fault.
        let ptr = unsafe { mmap(None, nz_len, prot, MapFlags::MAP_SHARED, fd, file_offset) }
            .map_err(|e| {
                io_error(
                    format!("mmap of {what} ({len} bytes at offset {offset})"),
                    e,
                )
            })?;
        Ok(Self { ptr, len })
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` come from a successful mmap owned by this value; the owners of
        // references into the mapping (Producer, Consumer, RingMonitor) hold the Mmap, so none
        // outlives it.
        let result = unsafe { munmap(self.ptr, self.len) };
        if let Err(e) = result {
            log::warn!("munmap of a ring mapping ({} bytes) failed: {e}", self.len);
        }
    }
}

/// A heap block standing in for a segment (tests, Miri): page-aligned, zeroed.
#[derive(Debug)]
struct HeapBlock {
    ptr: NonNull<u8>,
    layout: Layout,
}

impl HeapBlock {
    fn new(len: usize) -> Self {
        let layout = Layout::from_size_align(len, RING_DATA_OFFSET).expect("heap ring layout");
        // SAFETY: `layout` has a non-zero size (at least one page plus the data capacity).
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout)
        };
        Self { ptr, layout }
    }
}

impl Drop for HeapBlock {
    fn drop(&mut self) {
        // SAFETY: allocated in `HeapBlock::new` with this layout; every mapping view of the block
        // holds an `Arc<HeapBlock>`, so none outlives it.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

// SAFETY: the block is plain memory; all concurrent access to it goes through `Shared`, which
// uses atomics for the header and the ring protocol for the data region.
unsafe impl Send for HeapBlock {}
// SAFETY: as above; `&HeapBlock` exposes nothing but the pointer.
unsafe impl Sync for HeapBlock {}

/// What keeps the memory of a [`Shared`] alive.
#[derive(Debug)]
enum Backing {
    /// Header-page mapping, then the data mapping if any.
    Mapped(#[allow(dead_code)] Vec<Mmap>),
    Heap(#[allow(dead_code)] Arc<HeapBlock>),
}

/// How a party maps the data region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DataAccess {
    /// Header page only (third parties).
    None,
    /// Read-only (consumers).
    ReadOnly,
    /// Read-write (producers).
    ReadWrite,
}

/// A view of a ring: the header and, except for monitors, the data region. The algorithm only
/// ever sees this, whatever the memory comes from.
#[derive(Debug)]
struct Shared {
    /// Header, valid for the life of `_backing`.
    header: NonNull<RingHeader>,
    /// Start of the data region (`capacity` bytes), dangling for a header-only view (a
    /// monitor's, which never touches data).
    data: NonNull<u8>,
    /// Data capacity in bytes, read once from the checked header (never re-read: a peer could
    /// change the shared copy).
    capacity: usize,
    _backing: Backing,
}

// SAFETY: the pointers stay valid wherever the value moves (the backing moves with it);
// the header is only accessed through atomics, the data region under the ring protocol.
unsafe impl Send for Shared {}
// SAFETY: `&Shared` gives access to the header atomics only; the data region is accessed
// through `&mut Producer` / `&mut Consumer`.
unsafe impl Sync for Shared {}

impl Shared {
    /// Maps a ring segment given by `fd`, checks its header, maps the data region as asked.
    fn map(fd: BorrowedFd<'_>, access: DataAccess) -> Result<Self, RingError> {
        let raw = fd.as_raw_fd();
        let stat = fstat(fd).map_err(|e| io_error(format!("fstat of ring segment fd {raw}"), e))?;
        let segment_len = u64::try_from(stat.st_size).unwrap_or(0);
        if segment_len < RING_DATA_OFFSET as u64 {
            return Err(RingError::TooSmall {
                size: segment_len,
                needed: RING_DATA_OFFSET as u64,
            });
        }
        let seals = match fcntl(fd, FcntlArg::F_GET_SEALS) {
            Ok(seals) => seals,
            // Files of file systems without sealing support (not a memfd).
            Err(Errno::EINVAL) => 0,
            Err(e) => return Err(io_error(format!("F_GET_SEALS of ring segment fd {raw}"), e)),
        };
        if !SealFlag::from_bits_truncate(seals).contains(SealFlag::F_SEAL_SHRINK) {
            return Err(RingError::NotSealed);
        }
        let header_map = Mmap::new(
            fd,
            0,
            RING_DATA_OFFSET,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            "the ring header",
        )?;
        let header = header_map.ptr.cast::<RingHeader>();
        // SAFETY: the mapping is page-aligned, RING_DATA_OFFSET >= size_of::<RingHeader>() bytes
        // long, read-write and lives in `header_map`, which outlives this borrow; RingHeader is
        // atomics and padding only, valid for any bit pattern.
        let capacity = unsafe { header.as_ref() }.check(segment_len)?;
        let mut maps = vec![header_map];
        let data = match access {
            DataAccess::None => NonNull::dangling(),
            DataAccess::ReadOnly | DataAccess::ReadWrite => {
                let prot = if access == DataAccess::ReadOnly {
                    ProtFlags::PROT_READ
                } else {
                    ProtFlags::PROT_READ | ProtFlags::PROT_WRITE
                };
                let data_map = Mmap::new(fd, RING_DATA_OFFSET, capacity, prot, "the ring data")?;
                let data = data_map.ptr.cast::<u8>();
                maps.push(data_map);
                data
            }
        };
        Ok(Self {
            header,
            data,
            capacity,
            _backing: Backing::Mapped(maps),
        })
    }

    /// A view of a heap block laid out as a segment.
    fn heap(block: &Arc<HeapBlock>) -> Result<Self, RingError> {
        let header = block.ptr.cast::<RingHeader>();
        // SAFETY: the block is page-aligned, larger than the header and kept alive by the clone
        // of the Arc stored below; RingHeader is valid for any bit pattern.
        let capacity = unsafe { header.as_ref() }.check(block.layout.size() as u64)?;
        // SAFETY: `check` verified that the block holds RING_DATA_OFFSET + capacity bytes.
        let data = unsafe { block.ptr.add(RING_DATA_OFFSET) };
        Ok(Self {
            header,
            data,
            capacity,
            _backing: Backing::Heap(Arc::clone(block)),
        })
    }

    fn header(&self) -> &RingHeader {
        // SAFETY: `header` points into memory kept alive by `_backing` for the life of `self`;
        // RingHeader is atomics and padding only, so shared access while other threads and
        // processes write it is sound.
        unsafe { self.header.as_ref() }
    }
}

fn io_error(what: String, errno: Errno) -> RingError {
    RingError::Io {
        what,
        error: std::io::Error::from(errno),
    }
}

// ---------------------------------------------------------------------------------------------
// Waiting: futex and deadlines
// ---------------------------------------------------------------------------------------------

/// Sleeps while `*word == expected`, at most `timeout`. Spurious returns are fine: callers loop.
fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    #[cfg(not(miri))]
    {
        use rustix::thread::futex;
        let ts = futex::Timespec {
            tv_sec: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: timeout.subsec_nanos() as _,
        };
        // Non-private: the word is shared between processes. EAGAIN (the word changed),
        // ETIMEDOUT and EINTR all mean "re-check", which every caller does.
        let _ = futex::wait(word, futex::Flags::empty(), expected, Some(&ts));
    }
    #[cfg(miri)]
    {
        let _ = (word, expected, timeout);
        std::thread::yield_now();
    }
}

/// Bumps the epoch `word` and wakes its sleepers.
fn wake(word: &AtomicU32) {
    word.fetch_add(1, Ordering::SeqCst);
    #[cfg(not(miri))]
    {
        use rustix::thread::futex;
        // A failure can only be EFAULT/EINVAL on a bad address, impossible on a live mapping;
        // sleepers re-check every WAIT_SLICE anyway.
        let _ = futex::wake(word, futex::Flags::empty(), i32::MAX as u32);
    }
}

#[derive(Clone, Copy, Debug)]
enum Deadline {
    Never,
    At(Instant),
}

impl Deadline {
    fn after(timeout: Option<Duration>) -> Self {
        match timeout.and_then(|t| Instant::now().checked_add(t)) {
            Some(at) => Self::At(at),
            None => Self::Never,
        }
    }

    /// Length of the next sleep slice, `None` when the deadline has passed.
    fn slice(self) -> Option<Duration> {
        match self {
            Self::Never => Some(WAIT_SLICE),
            Self::At(at) => {
                let left = at.saturating_duration_since(Instant::now());
                (!left.is_zero()).then(|| left.min(WAIT_SLICE))
            }
        }
    }
}

/// Outcome of a wait.
enum Wake<E> {
    Ready,
    Stop(E),
}

/// Waits for `check` to return `Some`: spins, yields, then sleeps on the futex `epoch` with
/// `sleeping` raised. `None` if `deadline` passed first.
fn wait_until<T>(
    epoch: &AtomicU32,
    sleeping: &AtomicU32,
    deadline: Deadline,
    mut check: impl FnMut() -> Option<T>,
) -> Option<T> {
    for _ in 0..SPIN_LIMIT {
        if let Some(found) = check() {
            return Some(found);
        }
        std::hint::spin_loop();
    }
    for _ in 0..YIELD_LIMIT {
        if let Some(found) = check() {
            return Some(found);
        }
        deadline.slice()?;
        std::thread::yield_now();
    }
    loop {
        let seen = epoch.load(Ordering::SeqCst);
        sleeping.store(1, Ordering::SeqCst);
        // SYNC POINT: SeqCst fence, pairs with the SeqCst fence the other side issues between
        // publishing its position and reading our sleeping flag (`Producer::publish` /
        // `Consumer::publish`): either it sees the flag and wakes us, or we see its position.
        fence(Ordering::SeqCst);
        if let Some(found) = check() {
            sleeping.store(0, Ordering::Relaxed);
            return Some(found);
        }
        let Some(slice) = deadline.slice() else {
            sleeping.store(0, Ordering::Relaxed);
            return None;
        };
        futex_wait(epoch, seen, slice);
        sleeping.store(0, Ordering::Relaxed);
        if let Some(found) = check() {
            return Some(found);
        }
    }
}

fn batch_threshold(capacity: usize) -> u64 {
    (capacity as u64 / 8).min(MAX_BATCH)
}

fn max_payload_for(capacity: usize) -> usize {
    capacity / 2 - FRAME_HEADER_LEN
}

const fn align8(len: u64) -> u64 {
    (len + 7) & !7
}

// ---------------------------------------------------------------------------------------------
// Segment
// ---------------------------------------------------------------------------------------------

/// A ring segment: the `memfd` holding a ring's header and data region, owned by its creator (the
/// launcher) until handed to the producer and consumer processes by file descriptor.
pub struct RingSegment {
    fd: OwnedFd,
}

impl fmt::Debug for RingSegment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingSegment")
            .field("fd", &self.fd.as_raw_fd())
            .finish()
    }
}

impl RingSegment {
    /// Creates a memfd named `name` (it shows in `/proc/PID/fd` as `/memfd:NAME`) of one header
    /// page plus `data_capacity` bytes rounded up to a power of two (at least [`MIN_CAPACITY`]),
    /// readable by the owning user only, sealed against resizing, and initialises its header
    /// with `wire_version` (the codec version every attacher must speak).
    ///
    /// # Errors
    ///
    /// [`RingError::CapacityTooLarge`] above [`MAX_CAPACITY`]; [`RingError::Io`] when
    /// `memfd_create` (e.g. a name with a NUL byte or longer than 249 bytes), `ftruncate`,
    /// `fchmod`, sealing or mapping fails.
    pub fn create(name: &str, data_capacity: usize, wire_version: u32) -> Result<Self, RingError> {
        let capacity = round_capacity(data_capacity)?;
        let fd = memfd_create(name, MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING)
            .map_err(|e| io_error(format!("memfd_create({name:?})"), e))?;
        fchmod(&fd, Mode::S_IRUSR | Mode::S_IWUSR)
            .map_err(|e| io_error(format!("fchmod 0600 of memfd {name:?}"), e))?;
        let len = RING_DATA_OFFSET + capacity;
        ftruncate(&fd, len as nix::libc::off_t)
            .map_err(|e| io_error(format!("ftruncate of memfd {name:?} to {len} bytes"), e))?;
        fcntl(
            &fd,
            FcntlArg::F_ADD_SEALS(
                SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SEAL,
            ),
        )
        .map_err(|e| io_error(format!("sealing memfd {name:?}"), e))?;
        let header_map = Mmap::new(
            fd.as_fd(),
            0,
            RING_DATA_OFFSET,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            "the ring header",
        )?;
        // SAFETY: a live page-aligned read-write mapping of a sealed file of `len` bytes, at
        // least one page long; RingHeader is valid for any bit pattern (here: zeros).
        unsafe { header_map.ptr.cast::<RingHeader>().as_ref() }.init(capacity, wire_version);
        drop(header_map);
        Ok(Self { fd })
    }

    /// The segment's file descriptor, e.g. to `dup` it for a child process.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Gives up the segment, returning its file descriptor.
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// Wraps the file descriptor of a segment (no check: attaching checks).
    pub fn from_fd(fd: OwnedFd) -> Self {
        Self { fd }
    }

    /// Takes the segment a parent process passed as descriptor number `raw_fd` (e.g. from a
    /// `--ring 3` argument or an `SF_RING_FD` variable) and marks it close-on-exec, so that
    /// no program this process starts inherits it. See [`take_inherited`].
    ///
    /// # Errors
    ///
    /// As [`take_inherited`].
    pub fn open_inherited(raw_fd: RawFd) -> Result<Self, RingError> {
        take_inherited(raw_fd).map(|fd| Self { fd })
    }

    /// A third-party view of this segment (header only).
    ///
    /// # Errors
    ///
    /// As [`RingMonitor::attach`].
    pub fn monitor(&self) -> Result<RingMonitor, RingError> {
        RingMonitor::attach(self.fd())
    }
}

fn round_capacity(requested: usize) -> Result<usize, RingError> {
    let too_large = RingError::CapacityTooLarge {
        requested,
        max: MAX_CAPACITY,
    };
    let capacity = requested
        .max(MIN_CAPACITY)
        .checked_next_power_of_two()
        .ok_or(too_large)?;
    if capacity > MAX_CAPACITY {
        return Err(RingError::CapacityTooLarge {
            requested,
            max: MAX_CAPACITY,
        });
    }
    Ok(capacity)
}

/// A ring in heap memory instead of a memfd, for tests that cannot map files (Miri). It runs the
/// same code as a segment: only the memory differs.
#[doc(hidden)]
#[derive(Debug)]
pub struct HeapSegment {
    block: Arc<HeapBlock>,
}

#[doc(hidden)]
impl HeapSegment {
    /// Allocates and initialises a heap ring of `data_capacity` bytes (rounded as in
    /// [`RingSegment::create`]).
    ///
    /// # Errors
    ///
    /// [`RingError::CapacityTooLarge`].
    pub fn new(data_capacity: usize, wire_version: u32) -> Result<Self, RingError> {
        let capacity = round_capacity(data_capacity)?;
        let block = HeapBlock::new(RING_DATA_OFFSET + capacity);
        // SAFETY: the block is page-aligned, zeroed and longer than the header; RingHeader is
        // valid for any bit pattern; the block lives while this borrow does.
        unsafe { block.ptr.cast::<RingHeader>().as_ref() }.init(capacity, wire_version);
        Ok(Self {
            block: Arc::new(block),
        })
    }

    /// Attaches a producer.
    ///
    /// # Errors
    ///
    /// As [`Producer::attach`].
    pub fn producer(&self, wire_version: u32) -> Result<Producer, RingError> {
        Producer::from_shared(Shared::heap(&self.block)?, wire_version)
    }

    /// Attaches a consumer.
    ///
    /// # Errors
    ///
    /// As [`Consumer::attach`].
    pub fn consumer(&self, wire_version: u32) -> Result<Consumer, RingError> {
        Consumer::from_shared(Shared::heap(&self.block)?, wire_version)
    }

    /// Attaches a monitor.
    ///
    /// # Errors
    ///
    /// As [`RingMonitor::attach`].
    pub fn monitor(&self) -> Result<RingMonitor, RingError> {
        Ok(RingMonitor {
            shared: Shared::heap(&self.block)?,
        })
    }

    /// Overwrites the magic number (to test attach checks).
    pub fn corrupt_magic(&self, magic: u64) {
        // SAFETY: the block is page-aligned, longer than the header and alive while `self` is;
        // RingHeader is atomics and padding only, valid for any bit pattern.
        unsafe { self.block.ptr.cast::<RingHeader>().as_ref() }
            .magic
            .store(magic, Ordering::SeqCst);
    }
}

/// A heap-backed producer/consumer pair with `capacity` data bytes (see [`HeapSegment`]).
///
/// # Panics
///
/// If `capacity` exceeds [`MAX_CAPACITY`].
#[doc(hidden)]
pub fn heap_ring(capacity: usize, wire_version: u32) -> (Producer, Consumer) {
    let segment = HeapSegment::new(capacity, wire_version).expect("heap ring capacity");
    let producer = segment.producer(wire_version).expect("fresh heap ring");
    let consumer = segment.consumer(wire_version).expect("fresh heap ring");
    (producer, consumer)
}

// ---------------------------------------------------------------------------------------------
// Producer
// ---------------------------------------------------------------------------------------------

/// The writing side of a ring. `Send`, not `Sync`: one thread writes at a time.
///
/// Invariants: `cached_read <= published <= write <= cached_read + capacity`, all multiples of
/// 8; `published` is the value of the shared `write_pos`.
pub struct Producer {
    shared: Shared,
    /// `capacity - 1`.
    mask: u64,
    /// Position (bytes since the stream start) where the next frame goes; unpublished past
    /// `published`.
    write: u64,
    /// Last value stored into the shared `write_pos`.
    published: u64,
    /// Last value loaded from the shared `read_pos`.
    cached_read: u64,
    /// Unpublished bytes that trigger a publication.
    threshold: u64,
    /// Sequence number of the last frame written (published or not).
    last_seq: u64,
    _not_sync: PhantomData<Cell<()>>,
}

impl fmt::Debug for Producer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("capacity", &self.shared.capacity)
            .field("write", &self.write)
            .field("published", &self.published)
            .field("cached_read", &self.cached_read)
            .finish()
    }
}

impl Producer {
    /// Maps the segment `fd` read-write, checks its magic, layout version and that it carries
    /// `wire_version`, records this process id as the producer's and resumes at the published
    /// producer position. The descriptor is closed once mapped.
    ///
    /// # Errors
    ///
    /// [`RingError::WireVersion`] (naming both versions), [`RingError::BadMagic`],
    /// [`RingError::LayoutVersion`], [`RingError::BadHeader`], [`RingError::TooSmall`],
    /// [`RingError::NotSealed`], [`RingError::Corrupt`] on inconsistent positions,
    /// [`RingError::Io`] when `fstat`/`mmap` fails.
    pub fn attach(fd: OwnedFd, wire_version: u32) -> Result<Self, RingError> {
        Self::from_shared(
            Shared::map(fd.as_fd(), DataAccess::ReadWrite)?,
            wire_version,
        )
    }

    fn from_shared(shared: Shared, wire_version: u32) -> Result<Self, RingError> {
        let h = shared.header();
        h.check_wire(wire_version)?;
        // SYNC POINT: Acquire, pairs with the Release store of `read_pos` in `Consumer::publish`.
        let read = h.read_pos.load(Ordering::Acquire);
        let write = h.write_pos.load(Ordering::Acquire);
        check_positions(read, write, shared.capacity)?;
        h.producer_pid.store(std::process::id(), Ordering::Relaxed);
        h.producer_sleeping.store(0, Ordering::Relaxed);
        let last_seq = h.published_seq.load(Ordering::Relaxed);
        let capacity = shared.capacity;
        Ok(Self {
            shared,
            mask: capacity as u64 - 1,
            write,
            published: write,
            cached_read: read,
            threshold: batch_threshold(capacity),
            last_seq,
            _not_sync: PhantomData,
        })
    }

    /// Data capacity of the ring in bytes.
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// Largest payload in bytes a frame can carry: capacity / 2 - 16.
    pub fn max_payload(&self) -> usize {
        max_payload_for(self.shared.capacity)
    }

    /// Unpublished bytes (frames written since the last publication) above which the producer
    /// publishes on its own: min(capacity / 8, 64 KiB).
    pub fn flush_threshold(&self) -> usize {
        self.threshold as usize
    }

    /// Producer position in bytes since the start of the stream, unpublished frames included.
    pub fn position(&self) -> u64 {
        self.write
    }

    /// Sequence number of the last frame published by this ring's producers so far, as the
    /// header records it (0 before the first): a restarted producer resumes after it.
    pub fn published_seq(&self) -> u64 {
        self.shared.header().published_seq.load(Ordering::Relaxed)
    }

    /// Counts `n` frames the caller chose not to write (overflow policy `drop`), for monitors.
    pub fn count_dropped(&mut self, n: u64) {
        let h = self.shared.header();
        h.dropped
            .store(h.dropped.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }

    /// Writes one frame, blocking while the ring is full (spinning briefly, then sleeping on the
    /// futex; the frames written so far are published before blocking). The frame becomes
    /// visible to the consumer at the next publication (see [`Producer::flush`]).
    ///
    /// # Errors
    ///
    /// [`PushError::TooLarge`] above [`Producer::max_payload`] (nothing written);
    /// [`PushError::Aborted`] once the ring is aborted; [`PushError::ConsumerGone`] when the
    /// ring is full and the consumer was marked gone; [`PushError::Corrupt`] when the consumer
    /// published an impossible position.
    pub fn push(&mut self, seq: u64, payload: &[u8]) -> Result<(), PushError> {
        loop {
            if self.try_push(seq, payload)? {
                return Ok(());
            }
            self.wait_for_space(self.needed(payload.len() as u64))?;
        }
    }

    /// Writes one frame if there is room: `Ok(false)` when the ring is full (nothing written,
    /// frames written so far published).
    ///
    /// # Errors
    ///
    /// As [`Producer::push`]; [`PushError::ConsumerGone`] only when the ring is full.
    pub fn try_push(&mut self, seq: u64, payload: &[u8]) -> Result<bool, PushError> {
        let max = self.max_payload();
        if payload.len() > max {
            return Err(PushError::TooLarge {
                len: payload.len(),
                max,
            });
        }
        let h = self.shared.header();
        if h.state.load(Ordering::Relaxed) & STATE_ABORTED != 0 {
            return Err(PushError::Aborted);
        }
        let needed = self.needed(payload.len() as u64);
        if !self.has_room(needed)? {
            self.flush();
            if self.shared.header().state.load(Ordering::Relaxed) & STATE_CONSUMER_GONE != 0 {
                return Err(PushError::ConsumerGone);
            }
            return Ok(false);
        }
        self.write_frame(seq, payload);
        self.last_seq = seq;
        if self.write - self.published >= self.threshold {
            self.publish();
        }
        Ok(true)
    }

    /// Publishes the producer position (Release) and wakes the consumer if it sleeps. Call it
    /// when the producer goes idle, or frames may stay invisible.
    pub fn flush(&mut self) {
        self.publish();
    }

    /// Flushes, then marks the ring closed and wakes the consumer, which drains what is left
    /// and then sees [`Next::Closed`].
    pub fn close(mut self) {
        self.publish();
        let h = self.shared.header();
        // SYNC POINT: Release (SeqCst), pairs with the Acquire load of `state` in
        // `Consumer::wait_for_data`: a consumer that sees CLOSED sees the final `write_pos`.
        h.state.fetch_or(STATE_CLOSED, Ordering::SeqCst);
        wake(&h.data_epoch);
    }

    /// Bytes a frame of `len` payload bytes takes at the current position, padding included.
    fn needed(&self, len: u64) -> u64 {
        let frame = FRAME_HEADER_LEN as u64 + align8(len);
        let tail = self.shared.capacity as u64 - (self.write & self.mask);
        if frame <= tail { frame } else { tail + frame }
    }

    fn has_room(&mut self, needed: u64) -> Result<bool, PushError> {
        let capacity = self.shared.capacity as u64;
        if self.write + needed - self.cached_read <= capacity {
            return Ok(true);
        }
        self.refresh_read()?;
        Ok(self.write + needed - self.cached_read <= capacity)
    }

    fn refresh_read(&mut self) -> Result<(), PushError> {
        // SYNC POINT: Acquire, pairs with the Release store of `read_pos` in
        // `Consumer::publish`: the consumer is done with the bytes before it, we may overwrite.
        let read = self.shared.header().read_pos.load(Ordering::Acquire);
        if read < self.cached_read || read > self.published || !read.is_multiple_of(8) {
            return Err(PushError::Corrupt {
                read_pos: read,
                write_pos: self.write,
            });
        }
        self.cached_read = read;
        Ok(())
    }

    /// Writes a frame at `write` (padding first if needed). The caller checked the room.
    fn write_frame(&mut self, seq: u64, payload: &[u8]) {
        let capacity = self.shared.capacity as u64;
        let frame = FRAME_HEADER_LEN as u64 + align8(payload.len() as u64);
        let mut offset = self.write & self.mask;
        let tail = capacity - offset;
        if frame > tail {
            if tail >= FRAME_HEADER_LEN as u64 {
                let pad_len = (tail - FRAME_HEADER_LEN as u64) as u32;
                self.write_bytes(offset, &frame_header(pad_len, FRAME_KIND_PADDING, 0));
            }
            self.write += tail;
            offset = 0;
        }
        self.write_bytes(
            offset,
            &frame_header(payload.len() as u32, FRAME_KIND_RECORD, seq),
        );
        self.write_bytes(offset + FRAME_HEADER_LEN as u64, payload);
        self.write += frame;
        debug_assert!(self.write - self.cached_read <= capacity);
    }

    /// Copies `bytes` to data offset `offset`, inside the free part of the ring.
    fn write_bytes(&mut self, offset: u64, bytes: &[u8]) {
        let offset = offset as usize;
        assert!(offset + bytes.len() <= self.shared.capacity);
        // SAFETY: the range lies inside the data region (assert above), mapped read-write for a
        // producer (or heap memory). It is in the free part of the ring, between the producer
        // position and the consumer's acknowledged position plus capacity: the consumer neither
        // reads it (it reads below the published write_pos only) nor holds a frame in it (it
        // holds frames at or after read_pos, below write_pos). So nobody accesses the range
        // concurrently, and `bytes` (the caller's memory or a consumer frame, which is in the
        // used part) cannot overlap it.
        unsafe {
            ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.shared.data.as_ptr().wrapping_add(offset),
                bytes.len(),
            );
        }
    }

    fn publish(&mut self) {
        if self.write == self.published {
            return;
        }
        let h = self.shared.header();
        // SYNC POINT: Release, pairs with the Acquire loads of `write_pos` in
        // `Consumer::refresh_write` and `Consumer::wait_for_data`: the frames before it are
        // visible to a consumer that sees the position.
        h.write_pos.store(self.write, Ordering::Release);
        // Informational (the launcher, a restarted producer): stored after `write_pos`, so a
        // producer dying between the two stores makes a successor re-send frames (which
        // consumers drop by sequence number), never skip one.
        h.published_seq.store(self.last_seq, Ordering::Relaxed);
        self.published = self.write;
        // SYNC POINT: SeqCst fence, pairs with the SeqCst fence in `wait_until` run by the
        // consumer between raising `consumer_sleeping` and re-checking `write_pos`.
        fence(Ordering::SeqCst);
        if h.consumer_sleeping.load(Ordering::Relaxed) != 0 {
            wake(&h.data_epoch);
        }
    }

    /// Blocks until `needed` bytes are free, the ring is aborted, or (when still full) the
    /// consumer is marked gone.
    fn wait_for_space(&mut self, needed: u64) -> Result<(), PushError> {
        self.publish();
        let capacity = self.shared.capacity as u64;
        // The consumer must reach `target` for the frame to fit; once asleep, we ask to be woken
        // only when a whole batch is free, so that a full ring does not ping-pong wake-ups.
        let target = self.write + needed - capacity;
        let wants = self.write + needed.max(self.threshold).min(capacity) - capacity;
        let h = self.shared.header();
        h.producer_wants.store(wants, Ordering::Relaxed);
        let outcome = wait_until(
            &h.space_epoch,
            &h.producer_sleeping,
            Deadline::Never,
            || {
                let state = h.state.load(Ordering::Acquire);
                if state & STATE_ABORTED != 0 {
                    return Some(Wake::Stop(PushError::Aborted));
                }
                // SYNC POINT: Acquire, pairs with the Release store of `read_pos` in
                // `Consumer::publish` (the value is re-loaded with Acquire by `refresh_read`).
                if h.read_pos.load(Ordering::Acquire) >= target {
                    return Some(Wake::Ready);
                }
                if state & STATE_CONSUMER_GONE != 0 {
                    return Some(Wake::Stop(PushError::ConsumerGone));
                }
                None
            },
        );
        match outcome {
            Some(Wake::Ready) | None => self.refresh_read(),
            Some(Wake::Stop(e)) => Err(e),
        }
    }
}

impl Drop for Producer {
    /// Publishes the frames written so far (a dropped producer does not close the ring).
    fn drop(&mut self) {
        self.publish();
    }
}

fn frame_header(len: u32, kind: u32, seq: u64) -> [u8; FRAME_HEADER_LEN] {
    let mut raw = [0; FRAME_HEADER_LEN];
    raw[0..4].copy_from_slice(&len.to_ne_bytes());
    raw[4..8].copy_from_slice(&kind.to_ne_bytes());
    raw[8..16].copy_from_slice(&seq.to_ne_bytes());
    raw
}

fn check_positions(read: u64, write: u64, capacity: usize) -> Result<(), RingError> {
    if read > write
        || write - read > capacity as u64
        || !read.is_multiple_of(8)
        || !write.is_multiple_of(8)
    {
        return Err(RingError::Corrupt {
            position: read,
            what: "consumer and producer positions are inconsistent",
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Consumer
// ---------------------------------------------------------------------------------------------

/// One record frame read from a ring.
#[derive(Clone, Copy)]
pub struct Frame<'a> {
    /// Record sequence number chosen by the producer.
    pub seq: u64,
    /// Serialized record, in the read-only mapping of the ring.
    pub payload: &'a [u8],
}

impl fmt::Debug for Frame<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame")
            .field("seq", &self.seq)
            .field("len", &self.payload.len())
            .finish()
    }
}

/// What [`Consumer::next`] found.
#[derive(Debug)]
pub enum Next<'a> {
    /// The next record frame.
    Frame(Frame<'a>),
    /// The producer closed the ring and every frame has been read.
    Closed,
    /// A third party aborted the ring (frames still unread are abandoned).
    Aborted,
    /// Nothing arrived within the timeout.
    TimedOut,
}

/// The reading side of a ring: maps the header page read-write and the data region read-only.
/// `Send`, not `Sync`.
///
/// Invariants: `published <= released <= pos <= cached_write <= published + capacity`, all
/// multiples of 8; `published` is the value of the shared `read_pos`.
pub struct Consumer {
    shared: Shared,
    /// `capacity - 1`.
    mask: u64,
    /// Position where the next frame is read (just after the frame last returned).
    pos: u64,
    /// Position before which everything may be overwritten (start of the frame last returned,
    /// or `pos` once `next` is called again).
    released: u64,
    /// Last value stored into the shared `read_pos`.
    published: u64,
    /// Last value loaded from the shared `write_pos`.
    cached_write: u64,
    /// Released-but-unpublished bytes that trigger a publication.
    threshold: u64,
    /// Sequence number of the frame last returned, until it is marked handled.
    current: Option<u64>,
    /// Sequence number of the last frame returned (0: none since the stream began).
    returned_seq: u64,
    /// Sequence number of the last frame before `released` (what `acked_seq` becomes).
    released_seq: u64,
    /// [`Consumer::hold_acknowledgements`]: `next` does not release frames, only `commit`
    /// does.
    hold: bool,
    _not_sync: PhantomData<Cell<()>>,
}

impl fmt::Debug for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("capacity", &self.shared.capacity)
            .field("pos", &self.pos)
            .field("published", &self.published)
            .field("cached_write", &self.cached_write)
            .finish()
    }
}

/// Outcome of the consumer's wait.
enum DataWake {
    Ready,
    Closed,
    Aborted,
}

impl Consumer {
    /// Maps the segment `fd` (header page read-write, data region read-only), checks its magic,
    /// layout version and that it carries `wire_version`, records this process id as the
    /// consumer's, clears [`STATE_CONSUMER_GONE`] and resumes at the acknowledged consumer
    /// position (so a restarted consumer sees again the frame its predecessor was processing).
    /// The descriptor is closed once mapped.
    ///
    /// # Errors
    ///
    /// [`RingError::WireVersion`] (naming both versions), [`RingError::BadMagic`],
    /// [`RingError::LayoutVersion`], [`RingError::BadHeader`], [`RingError::TooSmall`],
    /// [`RingError::NotSealed`], [`RingError::Corrupt`] on inconsistent positions,
    /// [`RingError::Io`] when `fstat`/`mmap` fails.
    pub fn attach(fd: OwnedFd, wire_version: u32) -> Result<Self, RingError> {
        Self::from_shared(Shared::map(fd.as_fd(), DataAccess::ReadOnly)?, wire_version)
    }

    fn from_shared(shared: Shared, wire_version: u32) -> Result<Self, RingError> {
        let h = shared.header();
        h.check_wire(wire_version)?;
        let read = h.read_pos.load(Ordering::Relaxed);
        // SYNC POINT: Acquire, pairs with the Release store of `write_pos` in
        // `Producer::publish`.
        let write = h.write_pos.load(Ordering::Acquire);
        check_positions(read, write, shared.capacity)?;
        h.consumer_pid.store(std::process::id(), Ordering::Relaxed);
        h.consumer_sleeping.store(0, Ordering::Relaxed);
        h.state.fetch_and(!STATE_CONSUMER_GONE, Ordering::SeqCst);
        // Nothing in progress in this consumer yet (a predecessor may have died mid-record).
        h.inflight_seq
            .store(h.handled_seq.load(Ordering::Relaxed), Ordering::Relaxed);
        let acked = h.acked_seq.load(Ordering::Relaxed);
        let capacity = shared.capacity;
        Ok(Self {
            returned_seq: acked,
            released_seq: acked,
            shared,
            mask: capacity as u64 - 1,
            pos: read,
            released: read,
            published: read,
            cached_write: write,
            threshold: batch_threshold(capacity),
            current: None,
            hold: false,
            _not_sync: PhantomData,
        })
    }

    /// Data capacity of the ring in bytes.
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// Returns the next frame, waiting up to `timeout` (`None`: forever) while the ring is
    /// empty: spinning briefly, then sleeping on the futex. The frame returned before is
    /// released (its space may be reused) by this call, unless acknowledgements are held
    /// back ([`Consumer::hold_acknowledgements`]); the borrow of `self` ends its use either
    /// way.
    ///
    /// Returns [`Next::Aborted`] as soon as the ring is aborted, even with frames left, and
    /// [`Next::Closed`] once the producer closed the ring and every frame was read.
    ///
    /// # Errors
    ///
    /// [`RingError::Corrupt`] when the producer published an impossible position or frame
    /// header (the consumer stays at the bad position).
    pub fn next(&mut self, timeout: Option<Duration>) -> Result<Next<'_>, RingError> {
        if !self.hold {
            self.released = self.pos;
            self.released_seq = self.returned_seq;
        }
        self.mark_handled();
        if self.shared.header().state.load(Ordering::Relaxed) & STATE_ABORTED != 0 {
            return Ok(Next::Aborted);
        }
        self.maybe_publish();
        let mut deadline = None;
        let capacity = self.shared.capacity as u64;
        let (start, seq, len) = loop {
            if self.pos == self.cached_write {
                self.refresh_write()?;
            }
            if self.pos == self.cached_write {
                let deadline = *deadline.get_or_insert_with(|| Deadline::after(timeout));
                match self.wait_for_data(deadline) {
                    Some(DataWake::Ready) => continue,
                    Some(DataWake::Closed) => return Ok(Next::Closed),
                    Some(DataWake::Aborted) => return Ok(Next::Aborted),
                    None => return Ok(Next::TimedOut),
                }
            }
            let offset = self.pos & self.mask;
            let tail = capacity - offset;
            let available = self.cached_write - self.pos;
            if tail < FRAME_HEADER_LEN as u64 {
                if tail > available {
                    return Err(self.corrupt("published position inside the end-of-region gap"));
                }
                self.pos += tail;
                continue;
            }
            if available < FRAME_HEADER_LEN as u64 {
                return Err(self.corrupt("published position inside a frame header"));
            }
            let (len, kind, seq) = self.read_frame_header(offset);
            match kind {
                FRAME_KIND_PADDING => {
                    if u64::from(len) + FRAME_HEADER_LEN as u64 != tail || tail > available {
                        return Err(self.corrupt("padding frame does not end the region"));
                    }
                    self.pos += tail;
                }
                FRAME_KIND_RECORD => {
                    let frame = FRAME_HEADER_LEN as u64 + align8(u64::from(len));
                    if len as usize > max_payload_for(self.shared.capacity)
                        || frame > tail
                        || frame > available
                    {
                        return Err(self.corrupt("record frame length out of bounds"));
                    }
                    let start = self.pos;
                    self.pos += frame;
                    break (start, seq, len as usize);
                }
                _ => return Err(self.corrupt("unknown frame kind")),
            }
        };
        // Paddings skipped and the previous frame are consumed; this frame is not yet.
        if !self.hold {
            self.released = start;
        }
        self.current = Some(seq);
        self.returned_seq = seq;
        self.shared
            .header()
            .inflight_seq
            .store(seq, Ordering::Relaxed);
        let offset = (start & self.mask) as usize + FRAME_HEADER_LEN;
        // SAFETY: `offset + len <= capacity` (checked against `tail` above), inside the data
        // mapping; the bytes were published by the producer's Release store of `write_pos`
        // that `refresh_write` Acquire-loaded, and the producer does not overwrite them until
        // `read_pos` passes `start`, which needs `&mut self` (`next`, `commit`, drop), so they
        // are immutable for the lifetime of the returned borrow (a trust assumption on the
        // peer process, which runs this same code).
        let payload = unsafe {
            std::slice::from_raw_parts(
                self.shared.data.as_ptr().wrapping_add(offset).cast_const(),
                len,
            )
        };
        Ok(Next::Frame(Frame { seq, payload }))
    }

    /// From now on, frames returned by [`Consumer::next`] stay unacknowledged until
    /// [`Consumer::commit`]: the producer does not overwrite them, and a consumer attaching
    /// after this one dies starts again at the first of them. `next` still marks each frame
    /// handled (`handled_seq`, `handled_count`: progress, which the launcher's watchdog and
    /// poison detection read), only the release waits. The caller must commit before the
    /// unacknowledged bytes ([`Consumer::unacknowledged`]) fill the ring, or the producer
    /// blocks until it does (it is woken by the commit).
    pub fn hold_acknowledgements(&mut self) {
        self.hold = true;
    }

    /// Bytes returned by [`Consumer::next`] (paddings included) and not yet acknowledged.
    pub fn unacknowledged(&self) -> u64 {
        self.pos - self.published
    }

    /// Acknowledges every frame returned so far, the last one included (it is handled: no
    /// borrow of it can be alive), and publishes the consumer position now, e.g. before a
    /// long pause or on shutdown.
    pub fn commit(&mut self) {
        self.released = self.pos;
        self.released_seq = self.returned_seq;
        self.mark_handled();
        self.publish();
    }

    /// Progress for monitors: the frame last returned is handled. `inflight_seq` (set when a
    /// frame is returned) above `handled_seq` means a record is being handled.
    fn mark_handled(&mut self) {
        if let Some(seq) = self.current.take() {
            let h = self.shared.header();
            h.handled_seq.store(seq, Ordering::Relaxed);
            h.handled_count.store(
                h.handled_count.load(Ordering::Relaxed) + 1,
                Ordering::Relaxed,
            );
        }
    }

    /// Read position in bytes since the start of the stream: just after the frame last
    /// returned.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Acknowledged position in bytes: the value of the shared `read_pos`, below which the
    /// producer may overwrite.
    pub fn acknowledged(&self) -> u64 {
        self.published
    }

    fn corrupt(&self, what: &'static str) -> RingError {
        RingError::Corrupt {
            position: self.pos,
            what,
        }
    }

    fn read_frame_header(&self, offset: u64) -> (u32, u32, u64) {
        let offset = offset as usize;
        assert!(offset + FRAME_HEADER_LEN <= self.shared.capacity);
        let mut raw = [0u8; FRAME_HEADER_LEN];
        // SAFETY: in bounds of the data mapping (assert above); the bytes are below the
        // Acquire-loaded `write_pos` and above our acknowledged `read_pos`, so the producer wrote
        // them before publishing and does not touch them now; `raw` is a local.
        unsafe {
            ptr::copy_nonoverlapping(
                self.shared.data.as_ptr().wrapping_add(offset).cast_const(),
                raw.as_mut_ptr(),
                FRAME_HEADER_LEN,
            );
        }
        let len = u32::from_ne_bytes([raw[0], raw[1], raw[2], raw[3]]);
        let kind = u32::from_ne_bytes([raw[4], raw[5], raw[6], raw[7]]);
        let seq = u64::from_ne_bytes([
            raw[8], raw[9], raw[10], raw[11], raw[12], raw[13], raw[14], raw[15],
        ]);
        (len, kind, seq)
    }

    fn refresh_write(&mut self) -> Result<(), RingError> {
        // SYNC POINT: Acquire, pairs with the Release store of `write_pos` in
        // `Producer::publish`: the frames below it are visible.
        let write = self.shared.header().write_pos.load(Ordering::Acquire);
        if write < self.cached_write
            || write - self.published > self.shared.capacity as u64
            || !write.is_multiple_of(8)
        {
            return Err(RingError::Corrupt {
                position: write,
                what: "producer position moved backwards, past the free space, or off 8 bytes",
            });
        }
        self.cached_write = write;
        Ok(())
    }

    /// Publishes when a batch is released, or when the sleeping producer can go on.
    fn maybe_publish(&mut self) {
        let unpublished = self.released - self.published;
        if unpublished == 0 {
            return;
        }
        let h = self.shared.header();
        // SYNC POINT: Acquire, pairs with the SeqCst (Release) store of `producer_sleeping` in
        // `wait_until` run by the producer: `producer_wants` stored before it is visible.
        let producer_waits = h.producer_sleeping.load(Ordering::Acquire) != 0
            && self.released >= h.producer_wants.load(Ordering::Relaxed);
        if unpublished >= self.threshold || producer_waits {
            self.publish();
        }
    }

    fn publish(&mut self) {
        if self.released == self.published {
            return;
        }
        let h = self.shared.header();
        // SYNC POINT: Release, pairs with the Acquire loads of `read_pos` in
        // `Producer::refresh_read` and `Producer::wait_for_space`: we are done reading the
        // bytes before it.
        h.read_pos.store(self.released, Ordering::Release);
        // After `read_pos`: a monitor may see an older `acked_seq` with the new position (a
        // lower bound, which is all it is used for), never a newer one with the old.
        h.acked_seq.store(self.released_seq, Ordering::Release);
        self.published = self.released;
        // SYNC POINT: SeqCst fence, pairs with the SeqCst fence in `wait_until` run by the
        // producer between raising `producer_sleeping` and re-checking `read_pos`.
        fence(Ordering::SeqCst);
        if h.producer_sleeping.load(Ordering::Relaxed) != 0 {
            wake(&h.space_epoch);
        }
    }

    /// Waits until the producer publishes past `pos`, closes or the ring is aborted. Publishes
    /// our position first (the producer may be waiting for it). `None` on timeout.
    fn wait_for_data(&mut self, deadline: Deadline) -> Option<DataWake> {
        self.publish();
        let pos = self.pos;
        let h = self.shared.header();
        let check = || {
            // SYNC POINT: Acquire, pairs with the SeqCst (Release) `fetch_or` of CLOSED in
            // `Producer::close`: seeing CLOSED, the `write_pos` load below sees the final value.
            let state = h.state.load(Ordering::Acquire);
            if state & STATE_ABORTED != 0 {
                return Some(DataWake::Aborted);
            }
            // SYNC POINT: Acquire, pairs with the Release store in `Producer::publish`
            // (re-loaded with Acquire by `refresh_write` before any frame is read).
            if h.write_pos.load(Ordering::Acquire) != pos {
                return Some(DataWake::Ready);
            }
            if state & STATE_CLOSED != 0 {
                return Some(DataWake::Closed);
            }
            None
        };
        if let Deadline::At(at) = deadline
            && at <= Instant::now()
        {
            return check();
        }
        wait_until(&h.data_epoch, &h.consumer_sleeping, deadline, check)
    }
}

impl Drop for Consumer {
    /// Publishes the consumer position (everything before the frame last returned).
    fn drop(&mut self) {
        self.publish();
    }
}

// ---------------------------------------------------------------------------------------------
// Monitor
// ---------------------------------------------------------------------------------------------

/// A third party's view of a ring (the launcher's): reads positions and flags, aborts the ring
/// or marks its consumer gone, and wakes both sides. Maps the header page only.
pub struct RingMonitor {
    shared: Shared,
}

impl fmt::Debug for RingMonitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingMonitor")
            .field("write_pos", &self.write_pos())
            .field("read_pos", &self.read_pos())
            .field("state", &self.state())
            .finish()
    }
}

impl RingMonitor {
    /// Maps the header page of the segment `fd` (read-write, for the flags) and checks its
    /// magic and layout version (not the wire version: a monitor reads no records). The
    /// descriptor stays the caller's.
    ///
    /// # Errors
    ///
    /// [`RingError::BadMagic`], [`RingError::LayoutVersion`], [`RingError::BadHeader`],
    /// [`RingError::TooSmall`], [`RingError::NotSealed`], [`RingError::Io`] when
    /// `fstat`/`mmap` fails.
    pub fn attach(fd: BorrowedFd<'_>) -> Result<Self, RingError> {
        Ok(Self {
            shared: Shared::map(fd, DataAccess::None)?,
        })
    }

    fn header(&self) -> &RingHeader {
        self.shared.header()
    }

    /// Published producer position, in bytes since the start of the stream.
    pub fn write_pos(&self) -> u64 {
        self.header().write_pos.load(Ordering::Relaxed)
    }

    /// Sequence number of the last frame the producer published.
    pub fn published_seq(&self) -> u64 {
        self.header().published_seq.load(Ordering::Relaxed)
    }

    /// Frames the producer chose not to write (overflow policy `drop`).
    pub fn dropped(&self) -> u64 {
        self.header().dropped.load(Ordering::Relaxed)
    }

    /// Sequence number of the frame the consumer last took ([`Consumer::next`]): above
    /// [`RingMonitor::handled_seq`] while a record is being handled.
    pub fn inflight_seq(&self) -> u64 {
        self.header().inflight_seq.load(Ordering::Relaxed)
    }

    /// Sequence number of the frame the consumer released last (handled: the next call of
    /// [`Consumer::next`] or [`Consumer::commit`] released it).
    pub fn handled_seq(&self) -> u64 {
        self.header().handled_seq.load(Ordering::Relaxed)
    }

    /// Frames handled by every consumer of this ring so far (duplicates after a restart
    /// included).
    pub fn handled_count(&self) -> u64 {
        self.header().handled_count.load(Ordering::Relaxed)
    }

    /// Acknowledged consumer position, in bytes since the start of the stream.
    pub fn read_pos(&self) -> u64 {
        self.header().read_pos.load(Ordering::Relaxed)
    }

    /// Sequence number of the last frame the consumer acknowledged (0: none): a consumer
    /// that attaches now resumes with a later one. Written by the consumer, so untrusted: at
    /// most a lower bound for an honest one.
    pub fn acked_seq(&self) -> u64 {
        self.header().acked_seq.load(Ordering::Acquire)
    }

    /// Clears the consumer's pid, before a new consumer process is started: it is
    /// [attached](RingMonitor::consumer_attached) once it has set its own.
    pub fn clear_consumer_pid(&self) {
        self.header().consumer_pid.store(0, Ordering::Relaxed);
    }

    /// Whether a consumer attached since [`RingMonitor::clear_consumer_pid`] (its pid is set).
    pub fn consumer_attached(&self) -> bool {
        self.consumer_pid() != 0
    }

    /// Data capacity of the ring in bytes (checked when attaching).
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// Wire (codec) version the ring carries.
    pub fn wire_version(&self) -> u32 {
        self.header().wire_version.load(Ordering::Relaxed)
    }

    /// Process id of the producer that attached last (0: none yet).
    pub fn producer_pid(&self) -> u32 {
        self.header().producer_pid.load(Ordering::Relaxed)
    }

    /// Process id of the consumer that attached last (0: none yet).
    pub fn consumer_pid(&self) -> u32 {
        self.header().consumer_pid.load(Ordering::Relaxed)
    }

    /// The state flags ([`STATE_CLOSED`], [`STATE_ABORTED`], [`STATE_CONSUMER_GONE`]).
    pub fn state(&self) -> u32 {
        self.header().state.load(Ordering::Relaxed)
    }

    /// Whether the producer closed the ring.
    pub fn is_closed(&self) -> bool {
        self.state() & STATE_CLOSED != 0
    }

    /// Whether the ring was aborted.
    pub fn is_aborted(&self) -> bool {
        self.state() & STATE_ABORTED != 0
    }

    /// Whether the consumer is marked gone (cleared when a consumer attaches).
    pub fn is_consumer_gone(&self) -> bool {
        self.state() & STATE_CONSUMER_GONE != 0
    }

    /// Sets [`STATE_ABORTED`] and wakes both sides: the consumer stops at once, the producer's
    /// pushes fail.
    pub fn abort(&self) {
        self.set_and_wake(STATE_ABORTED);
    }

    /// Sets [`STATE_CLOSED`] on behalf of a producer that died for good and wakes both sides:
    /// the consumer drains what was published and sees the end. (Frames the dead producer
    /// wrote but never published are not visible, so this is safe at any moment.)
    pub fn close(&self) {
        self.set_and_wake(STATE_CLOSED);
    }

    /// Sets [`STATE_CONSUMER_GONE`] and wakes both sides: a producer blocked on the full ring
    /// gets [`PushError::ConsumerGone`].
    pub fn mark_consumer_gone(&self) {
        self.set_and_wake(STATE_CONSUMER_GONE);
    }

    fn set_and_wake(&self, flag: u32) {
        let h = self.header();
        // SeqCst: ordered before the epoch bumps in `wake`, so a waiter that loaded the old
        // epoch either sees the flag on its re-check or is woken.
        h.state.fetch_or(flag, Ordering::SeqCst);
        wake(&h.data_epoch);
        wake(&h.space_epoch);
    }
}

// ---------------------------------------------------------------------------------------------
// Descriptors and process lifetime: the launcher's hand-over to its children
// ---------------------------------------------------------------------------------------------

/// Descriptor numbers [`take_inherited`] has taken in this process.
static TAKEN: std::sync::Mutex<Vec<RawFd>> = std::sync::Mutex::new(Vec::new());

/// Takes ownership of descriptor `raw_fd`, which the parent process (the launcher) left
/// open across `exec` and named in an argument or environment variable, and marks it
/// close-on-exec: the shared memory of the pipeline is never inherited by a program a
/// handler starts. Each number can be taken once per process.
///
/// Only for descriptor numbers handed over that way (as systemd's `LISTEN_FDS`): they are
/// open when the process starts and nothing else in it owns them.
///
/// # Errors
///
/// [`RingError::Io`] when `raw_fd` is below 3 (standard streams), is not open, or was taken
/// already.
pub fn take_inherited(raw_fd: RawFd) -> Result<OwnedFd, RingError> {
    let what = || format!("inherited descriptor {raw_fd}");
    if raw_fd < 3 {
        return Err(io_error(
            format!("{} (a standard stream)", what()),
            Errno::EBADF,
        ));
    }
    let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
    if taken.contains(&raw_fd) {
        return Err(io_error(
            format!("{} (taken already)", what()),
            Errno::EBUSY,
        ));
    }
    // SAFETY: the borrow lives for this one `fcntl` call, which only asks whether the
    // number is an open descriptor (EBADF otherwise); no object is created from it yet.
    let probe = fcntl(unsafe { BorrowedFd::borrow_raw(raw_fd) }, FcntlArg::F_GETFD);
    probe.map_err(|e| io_error(what(), e))?;
    taken.push(raw_fd);
    // SAFETY: the descriptor is open (checked above), was inherited from the launcher, which
    // named it for this use, and is claimed once per process (`TAKEN`): no other object of
    // this process owns it.
    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw_fd) };
    fcntl(&fd, FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC))
        .map_err(|e| io_error(format!("{}: setting close-on-exec", what()), e))?;
    Ok(fd)
}

/// Marks every descriptor from `first` on close-on-exec (`close_range(CLOSE_RANGE_CLOEXEC)`,
/// Linux 5.11; on older kernels it does nothing): a process calls it at its start so that
/// no descriptor it inherited without the flag is passed on to what it runs. One system
/// call, async-signal-safe.
pub fn close_on_exec_from(first: u32) {
    // SAFETY: a raw system call with integer arguments that only sets the close-on-exec
    // flag of descriptors (none is closed, no memory is touched); its failure (ENOSYS,
    // EINVAL on old kernels) is ignored.
    let _ = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_close_range,
            first,
            u32::MAX,
            nix::libc::CLOSE_RANGE_CLOEXEC,
        )
    };
}

/// Makes the process `cmd` starts die with the caller, and inherit no descriptor but the
/// standard streams and `3..3 + inherited` (the ones mapped for it, e.g. by
/// `command-fds`, whose hook must come first).
///
/// Between `fork` and `exec` the child (1) asks the kernel for SIGKILL when its parent dies
/// (`PR_SET_PDEATHSIG`, kept across `exec`), then checks that its parent is still the
/// caller, which closes the documented race of a parent that died before the request (the
/// child then fails to start); this covers a child not built on the handler SDK, and a
/// launcher killed before the child's first line; (2) marks every other descriptor
/// close-on-exec (`close_range(CLOSE_RANGE_CLOEXEC)`, Linux 5.11; older kernels skip it), so
/// that a descriptor the caller itself inherited without close-on-exec is not passed on.
///
/// The signal comes when the *thread* that spawned the child ends (Linux's rule): spawn
/// from a thread that lives as long as the process (the launcher's main thread).
pub fn spawn_as_child(cmd: &mut std::process::Command, inherited: u32) {
    use std::os::unix::process::CommandExt as _;
    let parent = nix::unistd::getpid();
    let hook = move || -> std::io::Result<()> {
        nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
            .map_err(std::io::Error::from)?;
        if nix::unistd::getppid() != parent {
            // The parent died before the request: nobody would stop this child.
            return Err(std::io::Error::from_raw_os_error(nix::libc::ESRCH));
        }
        close_on_exec_from(3 + inherited);
        Ok(())
    };
    // SAFETY: the hook runs in the child between `fork` and `exec`; it makes three system
    // calls (prctl, getppid, close_range), allocates nothing (the error is a raw OS error)
    // and takes no lock, so it is async-signal-safe as `pre_exec` requires.
    unsafe {
        cmd.pre_exec(hook);
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    const WIRE: u32 = 3;
    const LONG: Option<Duration> = Some(Duration::from_secs(30));

    /// Deterministic payload for `seq`: its first bytes are the seq, the rest a pattern.
    fn payload(seq: u64, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (seq.wrapping_mul(31).wrapping_add(i as u64 * 7) % 251) as u8)
            .collect()
    }

    fn expect_frame(next: Next<'_>) -> (u64, Vec<u8>) {
        match next {
            Next::Frame(f) => (f.seq, f.payload.to_vec()),
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    #[test]
    fn producer_and_consumer_are_send() {
        fn assert_send<T: Send>() {}
        assert_send::<Producer>();
        assert_send::<Consumer>();
        assert_send::<RingMonitor>();
    }

    #[test]
    fn header_layout() {
        assert_eq!(size_of::<RingHeader>(), 384);
        assert_eq!(align_of::<RingHeader>(), 64);
    }

    #[test]
    fn capacity_rounding_and_limits() {
        assert_eq!(round_capacity(0).unwrap(), 4096);
        assert_eq!(round_capacity(4097).unwrap(), 8192);
        assert_eq!(round_capacity(65536).unwrap(), 65536);
        let err = round_capacity(MAX_CAPACITY + 1).unwrap_err();
        assert!(matches!(err, RingError::CapacityTooLarge { .. }), "{err}");
        let (p, c) = heap_ring(100, WIRE);
        assert_eq!((p.capacity(), c.capacity()), (4096, 4096));
        assert_eq!(p.max_payload(), 2048 - 16);
        assert_eq!(p.flush_threshold(), 512);
    }

    #[test]
    fn ordering_across_threads() {
        let count: u64 = if cfg!(miri) { 300 } else { 20_000 };
        let (mut p, mut c) = heap_ring(4096, WIRE);
        let producer = thread::spawn(move || {
            for seq in 0..count {
                p.push(seq, &payload(seq, (seq % 300) as usize)).unwrap();
            }
            p.close();
        });
        for seq in 0..count {
            let (got_seq, bytes) = expect_frame(c.next(LONG).unwrap());
            assert_eq!(got_seq, seq);
            assert_eq!(
                bytes,
                payload(seq, (seq % 300) as usize),
                "payload of {seq}"
            );
        }
        assert!(matches!(c.next(LONG).unwrap(), Next::Closed));
        assert!(matches!(c.next(LONG).unwrap(), Next::Closed));
        producer.join().unwrap();
    }

    #[test]
    fn wrap_around_with_padding_frame_and_short_tail() {
        let (mut p, mut c) = heap_ring(4096, WIRE);
        let zero = Some(Duration::ZERO);
        // 2048 + 2040 bytes: the producer stops 8 bytes before the end.
        for (seq, len) in [(1, 2032), (2, 2024)] {
            assert!(p.try_push(seq, &payload(seq, len)).unwrap());
            p.flush();
            assert_eq!(
                expect_frame(c.next(zero).unwrap()),
                (seq, payload(seq, len))
            );
        }
        assert_eq!(c.position(), 4088);
        // The 8-byte tail is skipped without a padding frame.
        assert!(p.try_push(3, &payload(3, 5)).unwrap());
        assert_eq!(p.position(), 4096 + 24);
        p.flush();
        assert_eq!(expect_frame(c.next(zero).unwrap()), (3, payload(3, 5)));
        assert_eq!(c.position(), 4096 + 24);
        // Fill up to 32 bytes before the end: 4096 + 4064.
        assert!(p.try_push(4, &payload(4, 2032)).unwrap());
        assert!(p.try_push(5, &payload(5, 1976)).unwrap());
        assert_eq!(p.position(), 4096 + 4064);
        p.flush();
        assert_eq!(expect_frame(c.next(zero).unwrap()).0, 4);
        assert_eq!(expect_frame(c.next(zero).unwrap()).0, 5);
        // A 48-byte frame does not fit in 32 bytes: padding frame, then the frame at 0.
        assert!(p.try_push(6, &payload(6, 32)).unwrap());
        assert_eq!(p.position(), 2 * 4096 + 48);
        p.flush();
        assert_eq!(expect_frame(c.next(zero).unwrap()), (6, payload(6, 32)));
        assert_eq!(c.position(), 2 * 4096 + 48);
        assert!(matches!(c.next(zero).unwrap(), Next::TimedOut));
    }

    #[test]
    fn try_push_on_full_ring_writes_nothing() {
        let (mut p, mut c) = heap_ring(4096, WIRE);
        assert!(p.try_push(0, &[1; 2032]).unwrap());
        assert!(p.try_push(1, &[2; 2032]).unwrap());
        assert!(!p.try_push(2, &[]).unwrap(), "the ring is full");
        assert_eq!(p.position(), 4096);
        assert_eq!(expect_frame(c.next(LONG).unwrap()).0, 0);
        // The first frame is released only by the next call.
        assert!(!p.try_push(2, &[]).unwrap());
        assert_eq!(expect_frame(c.next(LONG).unwrap()).0, 1);
        c.commit();
        assert!(p.try_push(2, &[3; 8]).unwrap());
    }

    #[test]
    fn every_size_up_to_max() {
        let (mut p, mut c) = heap_ring(4096, WIRE);
        let max = p.max_payload();
        let sizes: Vec<usize> = if cfg!(miri) {
            vec![0, 1, 7, 8, 9, 15, 16, 17, max - 1, max]
        } else {
            (0..=max).collect()
        };
        let expected = sizes.clone();
        let producer = thread::spawn(move || {
            for (seq, len) in sizes.into_iter().enumerate() {
                p.push(seq as u64, &payload(seq as u64, len)).unwrap();
            }
            p.close();
        });
        for (seq, len) in expected.into_iter().enumerate() {
            let (got_seq, bytes) = expect_frame(c.next(LONG).unwrap());
            assert_eq!(got_seq, seq as u64);
            assert_eq!(bytes.len(), len);
            assert_eq!(bytes, payload(seq as u64, len));
        }
        assert!(matches!(c.next(LONG).unwrap(), Next::Closed));
        producer.join().unwrap();
    }

    #[test]
    fn too_large() {
        let (mut p, _c) = heap_ring(4096, WIRE);
        let err = p.push(1, &vec![0; 2033]).unwrap_err();
        assert!(matches!(
            err,
            PushError::TooLarge {
                len: 2033,
                max: 2032
            }
        ));
        assert!(err.to_string().contains("2033") && err.to_string().contains("2032"));
        assert_eq!(p.position(), 0);
    }

    #[test]
    fn close_then_drain() {
        let (mut p, mut c) = heap_ring(4096, WIRE);
        for seq in 0..10 {
            p.push(seq, &payload(seq, 40)).unwrap();
        }
        p.close();
        for seq in 0..10 {
            assert_eq!(expect_frame(c.next(LONG).unwrap()), (seq, payload(seq, 40)));
        }
        assert!(matches!(c.next(None).unwrap(), Next::Closed));
    }

    #[test]
    fn consumer_blocked_on_empty_ring_wakes_on_flush() {
        let (mut p, mut c) = heap_ring(4096, WIRE);
        let consumer = thread::spawn(move || expect_frame(c.next(None).unwrap()));
        // Whether the consumer is spinning or sleeping, the flush must reach it.
        p.push(9, b"late").unwrap();
        p.flush();
        assert_eq!(consumer.join().unwrap(), (9, b"late".to_vec()));
    }

    /// Waits until `flag` is raised by a thread that went to sleep on the futex.
    fn until_sleeping(flag: &AtomicU32) {
        while flag.load(Ordering::SeqCst) == 0 {
            thread::yield_now();
        }
    }

    #[test]
    fn sleeping_consumer_is_woken_by_the_producer() {
        let segment = HeapSegment::new(4096, WIRE).unwrap();
        let mut p = segment.producer(WIRE).unwrap();
        let mut c = segment.consumer(WIRE).unwrap();
        let monitor = segment.monitor().unwrap();
        let h = monitor.shared.header();
        let consumer = thread::spawn(move || expect_frame(c.next(None).unwrap()));
        until_sleeping(&h.consumer_sleeping);
        let epoch = h.data_epoch.load(Ordering::SeqCst);
        p.push(1, b"wake up").unwrap();
        p.flush();
        // The flush bumped the epoch and woke the consumer (not its timeout).
        assert_ne!(h.data_epoch.load(Ordering::SeqCst), epoch);
        assert_eq!(consumer.join().unwrap(), (1, b"wake up".to_vec()));
    }

    #[test]
    fn sleeping_producer_is_woken_by_the_consumer() {
        let segment = HeapSegment::new(4096, WIRE).unwrap();
        let mut p = segment.producer(WIRE).unwrap();
        let mut c = segment.consumer(WIRE).unwrap();
        let monitor = segment.monitor().unwrap();
        let h = monitor.shared.header();
        for seq in 0..4 {
            p.push(seq, &[0; 1000]).unwrap();
        }
        let producer = thread::spawn(move || {
            p.push(4, &[4; 1000]).unwrap();
            p.flush();
        });
        until_sleeping(&h.producer_sleeping);
        let epoch = h.space_epoch.load(Ordering::SeqCst);
        // The producer needs 1048 bytes free (32 of padding, 1016 of frame), i.e. the consumer
        // position at 1016: the second `next` releases frame 0, publishes and wakes it.
        for seq in 0..3 {
            assert_eq!(expect_frame(c.next(LONG).unwrap()).0, seq);
        }
        producer.join().unwrap();
        assert_ne!(h.space_epoch.load(Ordering::SeqCst), epoch);
        assert_eq!(expect_frame(c.next(LONG).unwrap()).0, 3);
        assert_eq!(expect_frame(c.next(LONG).unwrap()).0, 4);
    }

    #[test]
    fn timeout_on_empty_ring() {
        let (_p, mut c) = heap_ring(4096, WIRE);
        assert!(matches!(
            c.next(Some(Duration::ZERO)).unwrap(),
            Next::TimedOut
        ));
        assert!(matches!(
            c.next(Some(Duration::from_millis(20))).unwrap(),
            Next::TimedOut
        ));
    }

    #[test]
    fn unflushed_frames_stay_invisible() {
        let (mut p, mut c) = heap_ring(65536, WIRE);
        p.push(1, b"batched").unwrap();
        assert!(matches!(
            c.next(Some(Duration::ZERO)).unwrap(),
            Next::TimedOut
        ));
        p.flush();
        assert_eq!(expect_frame(c.next(LONG).unwrap()).0, 1);
    }

    #[test]
    fn aborted_stops_consumer_at_once_and_fails_pushes() {
        let segment = HeapSegment::new(4096, WIRE).unwrap();
        let mut p = segment.producer(WIRE).unwrap();
        let mut c = segment.consumer(WIRE).unwrap();
        let monitor = segment.monitor().unwrap();
        // A blocked consumer is woken.
        let consumer = thread::spawn(move || {
            let aborted = matches!(c.next(None).unwrap(), Next::Aborted);
            (aborted, c)
        });
        monitor.abort();
        let (aborted, mut c) = consumer.join().unwrap();
        assert!(aborted);
        // Frames left unread are abandoned.
        assert!(matches!(p.push(1, b"x"), Err(PushError::Aborted)));
        assert!(matches!(c.next(LONG).unwrap(), Next::Aborted));
        assert!(monitor.is_aborted());
    }

    #[test]
    fn aborted_consumer_skips_pending_frames() {
        let segment = HeapSegment::new(4096, WIRE).unwrap();
        let mut p = segment.producer(WIRE).unwrap();
        let mut c = segment.consumer(WIRE).unwrap();
        p.push(1, b"pending").unwrap();
        p.flush();
        segment.monitor().unwrap().abort();
        assert!(matches!(c.next(LONG).unwrap(), Next::Aborted));
    }

    #[test]
    fn consumer_gone_unblocks_a_blocked_push() {
        let segment = HeapSegment::new(4096, WIRE).unwrap();
        let mut p = segment.producer(WIRE).unwrap();
        let c = segment.consumer(WIRE).unwrap();
        let monitor = segment.monitor().unwrap();
        let producer = thread::spawn(move || {
            let mut seq = 0;
            loop {
                match p.push(seq, &[7; 1000]) {
                    Ok(()) => seq += 1,
                    Err(e) => return (seq, e, p),
                }
            }
        });
        // The consumer dies without reading (its drop acknowledges nothing).
        drop(c);
        // Wait until the producer is blocked (the ring is full), then mark the consumer gone.
        while monitor.write_pos() < 4 * 1016 {
            thread::yield_now();
        }
        monitor.mark_consumer_gone();
        let (pushed, err, mut p) = producer.join().unwrap();
        assert_eq!(pushed, 4);
        assert!(matches!(err, PushError::ConsumerGone), "{err}");
        // A new consumer clears the flag and resumes where the last one acknowledged.
        let mut c = segment.consumer(WIRE).unwrap();
        assert!(!monitor.is_consumer_gone());
        assert_eq!(expect_frame(c.next(LONG).unwrap()).0, 0);
        assert_eq!(expect_frame(c.next(LONG).unwrap()).0, 1);
        c.commit();
        p.push(4, &[7; 1000]).unwrap();
    }

    #[test]
    fn restarted_consumer_sees_the_unacknowledged_frame_again() {
        let segment = HeapSegment::new(4096, WIRE).unwrap();
        let mut p = segment.producer(WIRE).unwrap();
        for seq in 0..5 {
            p.push(seq, &payload(seq, 24)).unwrap();
        }
        p.flush();
        let mut c = segment.consumer(WIRE).unwrap();
        for seq in 0..3 {
            assert_eq!(expect_frame(c.next(LONG).unwrap()).0, seq);
        }
        drop(c); // was processing frame 2
        let mut c = segment.consumer(WIRE).unwrap();
        for seq in 2..5 {
            assert_eq!(expect_frame(c.next(LONG).unwrap()).0, seq);
        }
    }

    #[test]
    fn held_frames_stay_unacknowledged_until_commit_and_are_seen_again_after_a_crash() {
        let segment = HeapSegment::new(4096, WIRE).unwrap();
        let mut p = segment.producer(WIRE).unwrap();
        let monitor = segment.monitor().unwrap();
        for seq in 1..=7 {
            p.push(seq, &payload(seq, 500)).unwrap();
        }
        p.flush();
        let mut c = segment.consumer(WIRE).unwrap();
        c.hold_acknowledgements();
        for seq in 1..=3 {
            assert_eq!(expect_frame(c.next(LONG).unwrap()).0, seq);
        }
        // Progress is reported, acknowledgement is not.
        assert_eq!(expect_frame(c.next(LONG).unwrap()).0, 4);
        assert_eq!((monitor.handled_seq(), monitor.handled_count()), (3, 3));
        assert_eq!(monitor.read_pos(), 0);
        assert_eq!(c.unacknowledged(), 4 * 520);
        // The ring is full of held frames: the producer cannot write.
        assert!(!p.try_push(8, &payload(8, 500)).unwrap());
        c.commit();
        assert_eq!((monitor.read_pos(), c.unacknowledged()), (4 * 520, 0));
        assert_eq!(expect_frame(c.next(LONG).unwrap()).0, 5);
        assert!(matches!(
            c.next(Some(Duration::ZERO)).unwrap(),
            Next::Frame(_)
        ));
        // Killed before the next commit: a new consumer starts again at frame 5.
        drop(c);
        assert_eq!(
            monitor.read_pos(),
            4 * 520,
            "a drop acknowledges nothing held"
        );
        let mut c = segment.consumer(WIRE).unwrap();
        c.hold_acknowledgements();
        assert_eq!(expect_frame(c.next(LONG).unwrap()).0, 5);
        assert_eq!(expect_frame(c.next(LONG).unwrap()).0, 6);
    }

    #[test]
    fn a_producer_blocked_by_held_frames_is_woken_by_the_commit() {
        let (mut p, mut c) = heap_ring(4096, WIRE);
        c.hold_acknowledgements();
        let producer = thread::spawn(move || {
            for seq in 0..40 {
                p.push(seq, &payload(seq, 1000)).unwrap();
            }
            p.close();
        });
        let mut seen = 0;
        loop {
            match c.next(LONG).unwrap() {
                Next::Frame(f) => {
                    assert_eq!(f.seq, seen);
                    seen += 1;
                }
                Next::Closed => break,
                other => panic!("{other:?}"),
            }
            // Commit every second frame: the producer never has more than that room.
            if seen % 2 == 0 {
                c.commit();
            }
        }
        assert_eq!(seen, 40);
        producer.join().unwrap();
    }

    #[test]
    fn wrong_wire_version_names_both() {
        let segment = HeapSegment::new(4096, 7).unwrap();
        let err = segment.consumer(8).unwrap_err();
        assert!(matches!(
            err,
            RingError::WireVersion {
                found: 7,
                expected: 8
            }
        ));
        let text = err.to_string();
        assert!(
            text.contains("wire version 7") && text.contains("wire version 8"),
            "{text}"
        );
        let err = segment.producer(9).unwrap_err();
        assert!(matches!(
            err,
            RingError::WireVersion {
                found: 7,
                expected: 9
            }
        ));
    }

    #[test]
    fn wrong_magic() {
        let segment = HeapSegment::new(4096, WIRE).unwrap();
        segment.corrupt_magic(0xdead_beef);
        let err = segment.consumer(WIRE).unwrap_err();
        assert!(
            matches!(err, RingError::BadMagic { found: 0xdead_beef }),
            "{err}"
        );
        assert!(err.to_string().contains("0x00000000deadbeef"), "{err}");
        assert!(segment.producer(WIRE).is_err());
        assert!(segment.monitor().is_err());
    }

    #[test]
    fn corrupt_frame_header_is_an_error() {
        let segment = HeapSegment::new(4096, WIRE).unwrap();
        let mut p = segment.producer(WIRE).unwrap();
        let mut c = segment.consumer(WIRE).unwrap();
        p.push(1, b"12345678").unwrap();
        p.flush();
        // Bad kind.
        p.write_bytes(0, &frame_header(8, 99, 1));
        let err = c.next(LONG).unwrap_err();
        assert!(err.to_string().contains("unknown frame kind"), "{err}");
        // Length past the published position.
        p.write_bytes(0, &frame_header(64, FRAME_KIND_RECORD, 1));
        let err = c.next(LONG).unwrap_err();
        assert!(err.to_string().contains("record frame length"), "{err}");
    }

    #[test]
    fn monitor_reads_positions_and_pids() {
        let segment = HeapSegment::new(8192, WIRE).unwrap();
        let mut p = segment.producer(WIRE).unwrap();
        let mut c = segment.consumer(WIRE).unwrap();
        let monitor = segment.monitor().unwrap();
        assert_eq!(monitor.capacity(), 8192);
        assert_eq!(monitor.wire_version(), WIRE);
        assert_eq!(monitor.producer_pid(), std::process::id());
        assert_eq!(monitor.consumer_pid(), std::process::id());
        p.push(1, &[0; 100]).unwrap();
        assert_eq!(monitor.write_pos(), 0, "not yet published");
        p.flush();
        assert_eq!(monitor.write_pos(), 120);
        expect_frame(c.next(LONG).unwrap());
        assert!(matches!(
            c.next(Some(Duration::ZERO)).unwrap(),
            Next::TimedOut
        ));
        assert_eq!(monitor.read_pos(), 120, "published before waiting");
        p.close();
        assert!(monitor.is_closed());
        assert!(format!("{monitor:?}").contains("write_pos: 120"));
    }
}
