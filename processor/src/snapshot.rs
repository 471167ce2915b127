//! The snapshot store of one stateful handler: the latest snapshot of its state
//! ([`Handler::snapshot`](crate::handler::Handler::snapshot)) with the sequence number of the
//! last record it covers, in a memfd the launcher creates per handler and hands to every
//! process of that handler (never to another handler). Like the entity journal it survives
//! the handler's processes, not the launcher.
//!
//! Only the handler's current process writes it. A process killed in the middle of a write
//! must never leave something that is taken for a snapshot, so the store has two slots used
//! in turn: a new snapshot goes into the slot that does not hold the newest valid one, data
//! first, then its descriptor; each descriptor and its data carry CRC-32 checksums, and a slot
//! whose checksums do not match is not a snapshot. The newest valid slot (highest generation)
//! is the snapshot.
//!
//! # Layout (version 1, little-endian)
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `"SFSNAP\0\0"` |
//! | 8 | 4 | version = 1 |
//! | 16 | 8 | `state_lost`: restarts of this handler that found no usable snapshot although records had been acknowledged (written by the handler, read by the launcher) |
//! | 64, 128 | 64 each | slot descriptors: `generation: u64, seq: u64, offset: u64, len: u64, data_crc: u32, desc_crc: u32` (CRC-32 of the 36 bytes before it) |
//! | 4096 | ... | slot data, at the offsets the descriptors give |
//!
//! A slot's data goes before the other slot's data when it fits there, else after it, so the
//! file holds at most about twice the largest snapshot.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;

const MAGIC: [u8; 8] = *b"SFSNAP\0\0";
const VERSION: u32 = 1;
const STATE_LOST_AT: u64 = 16;
const SLOT_AT: [u64; 2] = [64, 128];
const DESC_LEN: usize = 40;
const DATA_START: u64 = 4096;

/// A snapshot store that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A system call failed.
    #[error("snapshot store: {what}: {error}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The OS error.
        error: io::Error,
    },
    /// The file is not a snapshot store of this version.
    #[error("snapshot store: {0}")]
    Format(String),
}

fn io_err(what: &'static str) -> impl FnOnce(io::Error) -> SnapshotError {
    move |error| SnapshotError::Io { what, error }
}

/// Creates an empty snapshot store memfd (mode 0600, close-on-exec) named `name`.
///
/// # Errors
/// [`SnapshotError::Io`] when the memfd cannot be created or written.
pub fn create(name: &str) -> Result<OwnedFd, SnapshotError> {
    use nix::sys::memfd::{MFdFlags, memfd_create};
    let fd = memfd_create(name, MFdFlags::MFD_CLOEXEC).map_err(|e| SnapshotError::Io {
        what: "memfd_create",
        error: e.into(),
    })?;
    nix::sys::stat::fchmod(&fd, nix::sys::stat::Mode::from_bits_truncate(0o600)).map_err(|e| {
        SnapshotError::Io {
            what: "fchmod",
            error: e.into(),
        }
    })?;
    let file = File::from(fd);
    // The whole first page: header and both (empty) slot descriptors.
    let mut header = [0u8; DATA_START as usize];
    header[..8].copy_from_slice(&MAGIC);
    header[8..12].copy_from_slice(&VERSION.to_le_bytes());
    file.write_all_at(&header, 0)
        .map_err(io_err("writing the header"))?;
    Ok(file.into())
}

/// One slot's descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Desc {
    generation: u64,
    seq: u64,
    offset: u64,
    len: u64,
    data_crc: u32,
}

impl Desc {
    fn encode(&self) -> [u8; DESC_LEN] {
        let mut raw = [0u8; DESC_LEN];
        raw[0..8].copy_from_slice(&self.generation.to_le_bytes());
        raw[8..16].copy_from_slice(&self.seq.to_le_bytes());
        raw[16..24].copy_from_slice(&self.offset.to_le_bytes());
        raw[24..32].copy_from_slice(&self.len.to_le_bytes());
        raw[32..36].copy_from_slice(&self.data_crc.to_le_bytes());
        let crc = crc32fast::hash(&raw[..36]);
        raw[36..40].copy_from_slice(&crc.to_le_bytes());
        raw
    }

    /// `None` for an empty or torn descriptor.
    fn decode(raw: &[u8; DESC_LEN]) -> Option<Desc> {
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&raw[i..i + 8]);
            u64::from_le_bytes(b)
        };
        let u32_at = |i: usize| u32::from_le_bytes([raw[i], raw[i + 1], raw[i + 2], raw[i + 3]]);
        let desc = Desc {
            generation: u64_at(0),
            seq: u64_at(8),
            offset: u64_at(16),
            len: u64_at(24),
            data_crc: u32_at(32),
        };
        (desc.generation > 0
            && desc.offset >= DATA_START
            && u32_at(36) == crc32fast::hash(&raw[..36]))
        .then_some(desc)
    }

    fn end(&self) -> u64 {
        self.offset + self.len
    }
}

/// The latest snapshot found in a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Sequence number of the last record the snapshot covers.
    pub seq: u64,
    /// The handler's bytes.
    pub data: Vec<u8>,
}

/// A handler's view of its snapshot store: reads the latest snapshot, writes new ones.
#[derive(Debug)]
pub struct SnapshotStore {
    file: File,
    /// The valid descriptors, by slot.
    slots: [Option<Desc>; 2],
}

impl SnapshotStore {
    /// Opens the store `fd` and reads its slot descriptors (data is checked by
    /// [`SnapshotStore::latest`]).
    ///
    /// # Errors
    /// [`SnapshotError`] when `fd` is not a snapshot store of this version or cannot be read.
    pub fn attach(fd: OwnedFd) -> Result<Self, SnapshotError> {
        let file = File::from(fd);
        let mut header = [0u8; 12];
        file.read_exact_at(&mut header, 0)
            .map_err(io_err("reading the header"))?;
        if header[..8] != MAGIC {
            return Err(SnapshotError::Format(
                "not a snapshot store (bad magic)".into(),
            ));
        }
        let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
        if version != VERSION {
            return Err(SnapshotError::Format(format!(
                "layout version {version}, this build reads {VERSION}"
            )));
        }
        let mut store = SnapshotStore {
            file,
            slots: [None, None],
        };
        for (i, at) in SLOT_AT.into_iter().enumerate() {
            let mut raw = [0u8; DESC_LEN];
            store
                .file
                .read_exact_at(&mut raw, at)
                .map_err(io_err("reading a slot descriptor"))?;
            store.slots[i] = Desc::decode(&raw);
        }
        Ok(store)
    }

    /// The slot holding the newest valid descriptor.
    fn newest(&self) -> Option<usize> {
        (0..2)
            .filter(|&i| self.slots[i].is_some())
            .max_by_key(|&i| self.slots[i].map(|d| d.generation))
    }

    /// The newest snapshot whose data is whole (checksum), or `None` when the store holds
    /// none (a slot torn by a process killed while writing it is passed over).
    ///
    /// # Errors
    /// [`SnapshotError::Io`] when the data cannot be read.
    pub fn latest(&mut self) -> Result<Option<Snapshot>, SnapshotError> {
        let mut order: Vec<usize> = (0..2).filter(|&i| self.slots[i].is_some()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(self.slots[i].map(|d| d.generation)));
        let size = self
            .file
            .metadata()
            .map_err(io_err("reading the size"))?
            .len();
        for i in order {
            let Some(desc) = self.slots[i] else { continue };
            if desc.end() > size {
                self.slots[i] = None;
                continue;
            }
            let mut data = vec![0u8; desc.len as usize];
            self.file
                .read_exact_at(&mut data, desc.offset)
                .map_err(io_err("reading a snapshot"))?;
            if crc32fast::hash(&data) == desc.data_crc {
                return Ok(Some(Snapshot {
                    seq: desc.seq,
                    data,
                }));
            }
            // Torn data: not a snapshot, and its slot is the one to write next.
            self.slots[i] = None;
        }
        Ok(None)
    }

    /// Stores `data` as the snapshot covering the records up to sequence number `seq`. The
    /// previous snapshot stays whole until this one is: a process killed in the middle
    /// leaves the previous one as the latest.
    ///
    /// # Errors
    /// [`SnapshotError::Io`] when the memfd cannot be written (e.g. out of memory).
    pub fn write(&mut self, seq: u64, data: &[u8]) -> Result<(), SnapshotError> {
        let keep = self.newest();
        let target = keep.map_or(0, |k| 1 - k);
        let kept = keep.and_then(|k| self.slots[k]);
        let len = data.len() as u64;
        let offset = match kept {
            Some(k) if DATA_START + len > k.offset => k.end().next_multiple_of(4096),
            _ => DATA_START,
        };
        let desc = Desc {
            generation: kept.map_or(0, |k| k.generation) + 1,
            seq,
            offset,
            len,
            data_crc: crc32fast::hash(data),
        };
        // The slot is invalid from the moment its data is overwritten.
        self.slots[target] = None;
        self.file
            .write_all_at(data, offset)
            .map_err(io_err("writing a snapshot"))?;
        self.file
            .write_all_at(&desc.encode(), SLOT_AT[target])
            .map_err(io_err("writing a slot descriptor"))?;
        self.slots[target] = Some(desc);
        // Give back what neither slot uses any more (after a snapshot that shrank).
        let end = kept.map_or(desc.end(), |k| k.end().max(desc.end()));
        let size = self
            .file
            .metadata()
            .map_err(io_err("reading the size"))?
            .len();
        if size > end + (1 << 20) {
            self.file
                .set_len(end)
                .map_err(io_err("shrinking the store"))?;
        }
        Ok(())
    }

    /// Counts a restart that found no usable snapshot although records had been
    /// acknowledged: the handler's state is lost, and the launcher's exit status says so.
    ///
    /// # Errors
    /// [`SnapshotError::Io`] when the memfd cannot be written.
    pub fn mark_state_lost(&mut self) -> Result<(), SnapshotError> {
        let n = state_lost_in(&self.file)?;
        self.file
            .write_all_at(&(n + 1).to_le_bytes(), STATE_LOST_AT)
            .map_err(io_err("writing the state-lost count"))
    }
}

fn state_lost_in(file: &File) -> Result<u64, SnapshotError> {
    let mut raw = [0u8; 8];
    file.read_exact_at(&mut raw, STATE_LOST_AT)
        .map_err(io_err("reading the state-lost count"))?;
    Ok(u64::from_le_bytes(raw))
}

/// The launcher's view: how many restarts of the handler whose store is `fd` lost its state
/// ([`SnapshotStore::mark_state_lost`]).
///
/// # Errors
/// [`SnapshotError::Io`] when the memfd cannot be read.
pub fn state_lost(fd: std::os::fd::BorrowedFd<'_>) -> Result<u64, SnapshotError> {
    let file = File::from(fd.try_clone_to_owned().map_err(io_err("dup"))?);
    state_lost_in(&file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dup(fd: &OwnedFd) -> OwnedFd {
        fd.try_clone().unwrap()
    }

    #[test]
    fn an_empty_store_has_no_snapshot_and_the_newest_write_wins() {
        let fd = create("sf-snapshot-test").unwrap();
        let mut store = SnapshotStore::attach(dup(&fd)).unwrap();
        assert_eq!(store.latest().unwrap(), None);
        for (seq, data) in [(10u64, &b"first"[..]), (20, b"second, longer"), (30, b"3")] {
            store.write(seq, data).unwrap();
        }
        // A new process of the handler sees the last one.
        let mut again = SnapshotStore::attach(dup(&fd)).unwrap();
        assert_eq!(
            again.latest().unwrap(),
            Some(Snapshot {
                seq: 30,
                data: b"3".to_vec()
            })
        );
        again.write(40, &[7; 10_000]).unwrap();
        again.write(50, &[8; 3]).unwrap();
        again.write(60, &[9; 20_000]).unwrap();
        let latest = SnapshotStore::attach(dup(&fd)).unwrap().latest().unwrap();
        assert_eq!(latest.map(|s| (s.seq, s.data)), Some((60, vec![9; 20_000])));
    }

    #[test]
    fn a_torn_write_is_never_taken_for_a_snapshot() {
        let fd = create("sf-snapshot-test").unwrap();
        let file = File::from(dup(&fd));
        let mut store = SnapshotStore::attach(dup(&fd)).unwrap();
        store.write(5, b"five").unwrap();
        store.write(9, b"nine").unwrap();
        // The next write goes to the slot of "five" (slot 0): a process killed after half
        // its data, before the descriptor...
        let five = Desc::decode(&{
            let mut raw = [0u8; DESC_LEN];
            file.read_exact_at(&mut raw, SLOT_AT[0]).unwrap();
            raw
        })
        .unwrap();
        file.write_all_at(b"XX", five.offset).unwrap();
        let mut after = SnapshotStore::attach(dup(&fd)).unwrap();
        assert_eq!(after.latest().unwrap().map(|s| s.seq), Some(9));
        // ... or one killed in the middle of the descriptor of slot 1: slot 0 is torn too,
        // so nothing is left.
        file.write_all_at(&[0xff; 8], SLOT_AT[1] + 20).unwrap();
        let mut after = SnapshotStore::attach(dup(&fd)).unwrap();
        assert_eq!(after.latest().unwrap(), None);
        // Writing works again on a store with torn slots.
        after.write(12, b"twelve").unwrap();
        let mut again = SnapshotStore::attach(dup(&fd)).unwrap();
        assert_eq!(again.latest().unwrap().map(|s| s.seq), Some(12));
    }

    #[test]
    fn state_lost_is_counted_for_the_launcher() {
        let fd = create("sf-snapshot-test").unwrap();
        assert_eq!(state_lost(std::os::fd::AsFd::as_fd(&fd)).unwrap(), 0);
        let mut store = SnapshotStore::attach(dup(&fd)).unwrap();
        store.mark_state_lost().unwrap();
        store.mark_state_lost().unwrap();
        assert_eq!(state_lost(std::os::fd::AsFd::as_fd(&fd)).unwrap(), 2);
    }

    #[test]
    fn another_file_is_refused() {
        let file = tempfile::tempfile().unwrap();
        file.write_all_at(b"SFJRNL\0\0\x01\0\0\0", 0).unwrap();
        let err = SnapshotStore::attach(file.into()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "snapshot store: not a snapshot store (bad magic)"
        );
    }
}
