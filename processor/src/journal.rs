//! The entity journal: the entity records (header, container, pod, process, file) the reader
//! published, with their sequence numbers, in a memfd that the launcher creates and hands to
//! the reader, which appends to it. It rebuilds the entity tables of a handler that starts
//! after a crash.
//!
//! A handler that starts after a crash resumes in the middle of the stream; before its first
//! record (sequence number `S`) it replays the journal's entries with a sequence number below
//! `S` into its entity tables, so its records get exactly the context they would have had if
//! it had never crashed: the same operations, in the same order, as the original stream.
//!
//! # Bounded: compaction
//!
//! The tables of a handler hold two generations (a header starts a new one and drops the one
//! before the previous, see [`crate::tables`]). A handler that will resume after sequence
//! number `A` (the last record it acknowledged: [`crate::ring::RingMonitor::acked_seq`])
//! needs the entries from the header *before* the last header below `A + 1`; nothing older
//! changes its tables. The launcher ([`JournalKeeper`]) keeps track of the headers in the
//! journal and, once every handler that may still start again has acknowledged a new
//! header, drops what no handler can need: it advances the journal's first live entry and
//! frees the memory below it (`fallocate(FALLOC_FL_PUNCH_HOLE)`: the offsets of the live
//! entries do not change, the pages below are given back). A socket with a collector that
//! reconnects every few minutes keeps at most three generations.
//!
//! # Who holds what
//!
//! The launcher and the reader hold the journal itself. A handler never does: when the
//! launcher starts a handler process it gives it a **copy** of the live entries in a memfd of
//! its own, sealed against writing, shrinking and growing ([`JournalKeeper::sealed_copy`]),
//! which the handler reads once before its first record and closes. So no handler can
//! change the entries from which the others rebuild their tables, and no handler's replay
//! races with a compaction.
//!
//! Like the rings, the journal is a memfd: the kernel frees it when the last process holding
//! it exits, so nothing is left behind whatever dies.
//!
//! # Layout (version 2)
//!
//! A 4096-byte file header page `{ magic: [u8; 8] = "SFJRNL\0\0", version: u32 = 2, wire: u32,
//! last_header: u64 }` (little-endian; `wire` is [`crate::codec::WIRE_VERSION`];
//! `last_header` is the offset of the last header entry the reader appended, 0 before the
//! first, where a restarted reader looks for the end), then entries from offset 4096:
//! `{ len: u32, flags: u32, seq: u64, payload: [u8; len] }`, where `flags` has
//! [`ENTRY_HEADER_RECORD`] for an `SFHeader` and `payload` is the record in the codec's
//! encoding. Entries are in increasing `seq` order. Each entry is written with one `pwrite`,
//! before the record is published into any ring, so every entry below a published sequence
//! number is complete.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileExt, MetadataExt};

const MAGIC: [u8; 8] = *b"SFJRNL\0\0";
const VERSION: u32 = 2;
/// Offset of the first entry: the file header has a page of its own.
const FIRST_ENTRY: u64 = 4096;
const PAGE: u64 = 4096;
const LAST_HEADER_AT: u64 = 16;
const ENTRY_HEADER: usize = 16;
/// Largest entry payload accepted when reading back (a record is far smaller).
const MAX_ENTRY: u32 = 64 << 20;
/// Bytes read at a time when scanning.
const CHUNK: usize = 256 << 10;

/// `flags` bit of an entry holding an `SFHeader` (a generation starts there).
pub const ENTRY_HEADER_RECORD: u32 = 1;

/// A journal that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// A system call failed.
    #[error("entity journal: {what}: {error}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The OS error.
        error: io::Error,
    },
    /// The file is not a journal of this version and wire version.
    #[error("entity journal: {0}")]
    Format(String),
}

fn io(what: &'static str) -> impl FnOnce(io::Error) -> JournalError {
    move |error| JournalError::Io { what, error }
}

fn errno(what: &'static str) -> impl FnOnce(nix::errno::Errno) -> JournalError {
    move |e| JournalError::Io {
        what,
        error: e.into(),
    }
}

fn new_memfd(name: &str, wire: u32, sealable: bool) -> Result<File, JournalError> {
    use nix::sys::memfd::{MFdFlags, memfd_create};
    let mut flags = MFdFlags::MFD_CLOEXEC;
    if sealable {
        flags |= MFdFlags::MFD_ALLOW_SEALING;
    }
    let fd = memfd_create(name, flags).map_err(errno("memfd_create"))?;
    nix::sys::stat::fchmod(&fd, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .map_err(errno("fchmod"))?;
    let file = File::from(fd);
    let mut header = [0u8; 24];
    header[..8].copy_from_slice(&MAGIC);
    header[8..12].copy_from_slice(&VERSION.to_le_bytes());
    header[12..16].copy_from_slice(&wire.to_le_bytes());
    file.write_all_at(&header, 0)
        .map_err(io("writing the header"))?;
    file.set_len(FIRST_ENTRY)
        .map_err(io("sizing the header page"))?;
    Ok(file)
}

/// Creates an empty journal memfd (mode 0600, close-on-exec) named `name` for records of wire
/// version `wire`.
///
/// # Errors
/// [`JournalError::Io`] when the memfd cannot be created or written.
pub fn create(name: &str, wire: u32) -> Result<OwnedFd, JournalError> {
    Ok(new_memfd(name, wire, false)?.into())
}

fn check_header(file: &File, wire: u32) -> Result<u64, JournalError> {
    let mut header = [0u8; 24];
    file.read_exact_at(&mut header, 0)
        .map_err(io("reading the header"))?;
    if header[..8] != MAGIC {
        return Err(JournalError::Format(
            "not an entity journal (bad magic)".into(),
        ));
    }
    let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    let found = u32::from_le_bytes([header[12], header[13], header[14], header[15]]);
    if version != VERSION {
        return Err(JournalError::Format(format!(
            "layout version {version}, this build reads {VERSION}"
        )));
    }
    if found != wire {
        return Err(JournalError::Format(format!(
            "wire version {found}, this build reads {wire}"
        )));
    }
    let mut last = [0u8; 8];
    last.copy_from_slice(&header[16..24]);
    Ok(u64::from_le_bytes(last))
}

/// One entry's place, as a scan finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct EntryAt {
    offset: u64,
    seq: u64,
    flags: u32,
    len: u32,
}

impl EntryAt {
    fn end(&self) -> u64 {
        self.offset + ENTRY_HEADER as u64 + u64::from(self.len)
    }
}

/// Reads complete entries from `file` starting at `from`, in chunks, calling `f(entry,
/// payload)` for each while `keep(seq)` holds; stops at the end of the file, at a partial
/// entry (a writer that died, or one still writing) or at one that cannot be (a length too
/// large, a sequence number not above the previous one). Returns the offset after the last
/// entry passed to `f`.
fn scan(
    file: &File,
    from: u64,
    mut keep: impl FnMut(u64) -> bool,
    mut f: impl FnMut(EntryAt, &[u8]),
) -> Result<u64, JournalError> {
    let size = file.metadata().map_err(io("fstat"))?.len();
    let mut offset = from;
    let mut buf: Vec<u8> = Vec::new();
    // Bytes of `buf` start at file offset `buf_at`.
    let mut buf_at = from;
    let mut last_seq = 0u64;
    loop {
        // Make sure the entry header and its payload are in `buf`.
        let need_header = offset + ENTRY_HEADER as u64;
        if need_header > size {
            return Ok(offset);
        }
        let fill = |buf: &mut Vec<u8>, buf_at: &mut u64, upto: u64| -> Result<(), JournalError> {
            if upto <= *buf_at + buf.len() as u64 && offset >= *buf_at {
                return Ok(());
            }
            let want = (upto - offset).max(CHUNK as u64).min(size - offset) as usize;
            buf.resize(want, 0);
            file.read_exact_at(buf, offset)
                .map_err(io("reading entries"))?;
            *buf_at = offset;
            Ok(())
        };
        fill(&mut buf, &mut buf_at, need_header)?;
        let at = (offset - buf_at) as usize;
        let head = &buf[at..at + ENTRY_HEADER];
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let flags = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        let mut seq_bytes = [0u8; 8];
        seq_bytes.copy_from_slice(&head[8..16]);
        let seq = u64::from_le_bytes(seq_bytes);
        let entry = EntryAt {
            offset,
            seq,
            flags,
            len,
        };
        if len > MAX_ENTRY || seq <= last_seq || entry.end() > size || !keep(seq) {
            return Ok(offset);
        }
        fill(&mut buf, &mut buf_at, entry.end())?;
        let at = (offset - buf_at) as usize + ENTRY_HEADER;
        f(entry, &buf[at..at + len as usize]);
        last_seq = seq;
        offset = entry.end();
    }
}

/// The reader's side: appends entity records.
#[derive(Debug)]
pub struct JournalWriter {
    file: File,
    end: u64,
    last_seq: u64,
    buf: Vec<u8>,
}

impl JournalWriter {
    /// Opens the journal `fd` for appending. If a previous writer left entries (the reader
    /// was restarted), appending resumes after the last complete one (found from the last
    /// header entry on, which compaction never frees), and a partial entry it left at the
    /// end is cut off.
    ///
    /// # Errors
    /// [`JournalError`] when `fd` is not a journal of wire version `wire` or cannot be read.
    pub fn attach(fd: OwnedFd, wire: u32) -> Result<Self, JournalError> {
        let file = File::from(fd);
        let last_header = check_header(&file, wire)?;
        let from = if last_header >= FIRST_ENTRY {
            last_header
        } else {
            FIRST_ENTRY
        };
        let mut last_seq = 0;
        let end = scan(&file, from, |_| true, |e, _| last_seq = e.seq)?;
        file.set_len(end).map_err(io("cutting a partial entry"))?;
        Ok(JournalWriter {
            file,
            end,
            last_seq,
            buf: Vec::new(),
        })
    }

    /// Sequence number of the last entry (0 when empty).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Appends the entity record `payload` (codec encoding) with sequence number `seq`
    /// (`header`: it is an `SFHeader`, the start of a generation); does nothing if an entry
    /// with that or a later sequence number is already there (a restarted reader re-reading
    /// its input).
    ///
    /// # Errors
    /// [`JournalError::Io`] when the write fails.
    pub fn append(&mut self, seq: u64, header: bool, payload: &[u8]) -> Result<(), JournalError> {
        if seq <= self.last_seq {
            return Ok(());
        }
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|l| *l <= MAX_ENTRY)
            .ok_or_else(|| {
                JournalError::Format(format!("record {seq} is too large for the journal"))
            })?;
        let flags = if header { ENTRY_HEADER_RECORD } else { 0 };
        self.buf.clear();
        self.buf.extend_from_slice(&len.to_le_bytes());
        self.buf.extend_from_slice(&flags.to_le_bytes());
        self.buf.extend_from_slice(&seq.to_le_bytes());
        self.buf.extend_from_slice(payload);
        self.file
            .write_all_at(&self.buf, self.end)
            .map_err(io("appending an entry"))?;
        if header {
            // After the entry: a restarted writer scans from a complete header.
            self.file
                .write_all_at(&self.end.to_le_bytes(), LAST_HEADER_AT)
                .map_err(io("recording the last header"))?;
        }
        self.end += self.buf.len() as u64;
        self.last_seq = seq;
        Ok(())
    }
}

/// A handler's side: replays entries into its entity tables (from the sealed copy the
/// launcher gave it).
#[derive(Debug)]
pub struct JournalReader {
    file: File,
}

impl JournalReader {
    /// Opens the journal `fd` for reading.
    ///
    /// # Errors
    /// [`JournalError`] when `fd` is not a journal of wire version `wire`.
    pub fn attach(fd: OwnedFd, wire: u32) -> Result<Self, JournalError> {
        let file = File::from(fd);
        check_header(&file, wire)?;
        Ok(JournalReader { file })
    }

    /// Calls `f(seq, payload)` for every entry with a sequence number below `before`, in
    /// order; returns how many.
    ///
    /// # Errors
    /// [`JournalError::Io`] when reading fails.
    pub fn replay_before(
        &self,
        before: u64,
        mut f: impl FnMut(u64, &[u8]),
    ) -> Result<u64, JournalError> {
        let mut n = 0;
        scan(
            &self.file,
            FIRST_ENTRY,
            |seq| seq < before,
            |e, p| {
                n += 1;
                f(e.seq, p)
            },
        )?;
        Ok(n)
    }
}

/// What [`JournalKeeper::status`] reports (`ctl status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JournalStatus {
    /// Bytes of memory the journal holds (its allocated pages).
    pub bytes: u64,
    /// Live entries (entities a restarted handler may replay).
    pub entries: u64,
    /// Generations (headers) among them.
    pub generations: u64,
    /// Entries dropped by compaction so far.
    pub dropped: u64,
}

/// A header entry the keeper saw: where a generation starts.
#[derive(Debug, Clone, Copy)]
struct Generation {
    seq: u64,
    offset: u64,
    /// Entries scanned before it (so live entries = scanned - this, at the first kept one).
    entries_before: u64,
}

/// The launcher's side: follows what the reader appends, compacts, and makes the sealed
/// copies handlers replay from.
#[derive(Debug)]
pub struct JournalKeeper {
    file: File,
    wire: u32,
    /// Offset after the last entry scanned, and its sequence number.
    scanned_end: u64,
    scanned_seq: u64,
    scanned_entries: u64,
    /// The first live entry (entries below were dropped), with the entry count before it.
    start: u64,
    start_entries: u64,
    /// Pages below this offset have been given back.
    freed_to: u64,
    /// Header entries at and after `start`, in order.
    generations: VecDeque<Generation>,
}

impl JournalKeeper {
    /// Follows the journal `fd` (the launcher's own descriptor; the keeper owns this one).
    ///
    /// # Errors
    /// [`JournalError`] when `fd` is not a journal of wire version `wire`.
    pub fn new(fd: OwnedFd, wire: u32) -> Result<Self, JournalError> {
        let file = File::from(fd);
        check_header(&file, wire)?;
        Ok(JournalKeeper {
            file,
            wire,
            scanned_end: FIRST_ENTRY,
            scanned_seq: 0,
            scanned_entries: 0,
            start: FIRST_ENTRY,
            start_entries: 0,
            freed_to: FIRST_ENTRY,
            generations: VecDeque::new(),
        })
    }

    /// The journal's descriptor (for the reader process).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// Reads the entries appended since the last call, up to sequence number `published`
    /// (the reader published it into a ring, so every entry up to it is complete), noting
    /// where generations start.
    ///
    /// # Errors
    /// [`JournalError::Io`] when the journal cannot be read.
    pub fn follow(&mut self, published: u64) -> Result<(), JournalError> {
        if published <= self.scanned_seq {
            return Ok(());
        }
        let mut seen = Vec::new();
        let mut count = 0u64;
        let floor = self.scanned_seq;
        let mut last = floor;
        let end = scan(
            &self.file,
            self.scanned_end,
            |seq| seq <= published && seq > floor,
            |e, _| {
                if e.flags & ENTRY_HEADER_RECORD != 0 {
                    seen.push((e.seq, e.offset, count));
                }
                count += 1;
                last = e.seq;
            },
        )?;
        for (seq, offset, n) in seen {
            self.generations.push_back(Generation {
                seq,
                offset,
                entries_before: self.scanned_entries + n,
            });
        }
        self.scanned_entries += count;
        self.scanned_end = end;
        self.scanned_seq = last;
        Ok(())
    }

    /// Drops the entries no handler can need when every handler that may still start again
    /// has acknowledged up to sequence number `acked` at least (the smallest of their
    /// [`acked_seq`](crate::ring::RingMonitor::acked_seq)s): keeps the generation of the
    /// last header at or below `acked` and the one before it, frees the pages below.
    /// Returns how many entries were dropped.
    ///
    /// # Errors
    /// [`JournalError::Io`] when the memory cannot be given back.
    pub fn compact(&mut self, acked: u64) -> Result<u64, JournalError> {
        // A handler resuming after `acked` replays the entries below its first record
        // (> acked): its tables hold the generation of the last header <= acked, and the
        // previous one.
        let Some(last) = self.generations.iter().rposition(|g| g.seq <= acked) else {
            return Ok(0);
        };
        if last == 0 {
            return Ok(0);
        }
        let keep = self.generations[last - 1];
        if keep.offset <= self.start {
            return Ok(0);
        }
        let dropped = keep.entries_before - self.start_entries;
        self.generations.drain(..last - 1);
        self.start = keep.offset;
        self.start_entries = keep.entries_before;
        // Whole pages only, and never the header page.
        let free_to = keep.offset / PAGE * PAGE;
        if free_to > self.freed_to {
            use nix::fcntl::{FallocateFlags, fallocate};
            fallocate(
                &self.file,
                FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE,
                self.freed_to as i64,
                (free_to - self.freed_to) as i64,
            )
            .map_err(errno("freeing dropped entries (fallocate)"))?;
            self.freed_to = free_to;
        }
        Ok(dropped)
    }

    /// A copy of the live entries scanned so far (call [`JournalKeeper::follow`] first) in
    /// a new memfd named `name`, sealed against writing, shrinking and growing: what a
    /// handler process replays from (it cannot change it, nor the journal).
    ///
    /// # Errors
    /// [`JournalError::Io`] when the memfd cannot be created, written or sealed.
    pub fn sealed_copy(&self, name: &str) -> Result<OwnedFd, JournalError> {
        let copy = new_memfd(name, self.wire, true)?;
        let mut buf = vec![0u8; CHUNK.min((self.scanned_end - self.start) as usize)];
        let mut at = self.start;
        let mut to = FIRST_ENTRY;
        while at < self.scanned_end {
            let n = buf.len().min((self.scanned_end - at) as usize);
            self.file
                .read_exact_at(&mut buf[..n], at)
                .map_err(io("reading entries to copy"))?;
            copy.write_all_at(&buf[..n], to)
                .map_err(io("writing the copy"))?;
            at += n as u64;
            to += n as u64;
        }
        use nix::fcntl::{FcntlArg, SealFlag, fcntl};
        fcntl(
            &copy,
            FcntlArg::F_ADD_SEALS(
                SealFlag::F_SEAL_WRITE
                    | SealFlag::F_SEAL_SHRINK
                    | SealFlag::F_SEAL_GROW
                    | SealFlag::F_SEAL_SEAL,
            ),
        )
        .map_err(errno("sealing the copy"))?;
        Ok(copy.into())
    }

    /// Memory held, live entries and generations, entries dropped so far.
    pub fn status(&self) -> JournalStatus {
        let bytes = self.file.metadata().map(|m| m.blocks() * 512).unwrap_or(0);
        JournalStatus {
            bytes,
            entries: self.scanned_entries - self.start_entries,
            generations: self.generations.len() as u64,
            dropped: self.start_entries,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dup(fd: &OwnedFd) -> OwnedFd {
        fd.try_clone().unwrap()
    }

    #[test]
    fn append_then_replay_before_a_sequence_number() {
        let fd = create("sf-journal-test", 7).unwrap();
        let mut w = JournalWriter::attach(dup(&fd), 7).unwrap();
        for seq in [1u64, 2, 5, 9] {
            w.append(seq, seq == 1, format!("rec{seq}").as_bytes())
                .unwrap();
        }
        w.append(5, false, b"again").unwrap(); // already there: ignored
        let r = JournalReader::attach(dup(&fd), 7).unwrap();
        let mut seen = Vec::new();
        assert_eq!(
            r.replay_before(9, |s, p| seen
                .push((s, String::from_utf8(p.to_vec()).unwrap())))
                .unwrap(),
            3
        );
        assert_eq!(
            seen,
            vec![(1, "rec1".into()), (2, "rec2".into()), (5, "rec5".into())]
        );
    }

    #[test]
    fn a_restarted_writer_resumes_and_cuts_a_partial_entry() {
        let fd = create("sf-journal-test", 7).unwrap();
        let mut w = JournalWriter::attach(dup(&fd), 7).unwrap();
        w.append(2, true, b"hdr").unwrap();
        w.append(3, false, b"abc").unwrap();
        // A writer that died in the middle of an entry.
        let file = File::from(dup(&fd));
        let end = file.metadata().unwrap().len();
        file.write_all_at(
            &[200, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 1, 2],
            end,
        )
        .unwrap();
        let mut w = JournalWriter::attach(dup(&fd), 7).unwrap();
        assert_eq!(w.last_seq(), 3);
        w.append(4, false, b"d").unwrap();
        let mut seen = Vec::new();
        JournalReader::attach(dup(&fd), 7)
            .unwrap()
            .replay_before(u64::MAX, |s, p| seen.push((s, p.to_vec())))
            .unwrap();
        assert_eq!(
            seen,
            vec![
                (2, b"hdr".to_vec()),
                (3, b"abc".to_vec()),
                (4, b"d".to_vec())
            ]
        );
    }

    #[test]
    fn wrong_wire_version_is_refused_naming_both() {
        let fd = create("sf-journal-test", 7).unwrap();
        let err = JournalReader::attach(dup(&fd), 8).unwrap_err();
        assert_eq!(
            err.to_string(),
            "entity journal: wire version 7, this build reads 8"
        );
    }

    /// Five generations of 300 entities of 100 bytes: once every handler acknowledged the
    /// fifth header, the first three generations are dropped and their memory given back;
    /// a handler's copy replays the last two, and a restarted writer still finds the end.
    #[test]
    fn compaction_keeps_two_generations_and_frees_the_rest() {
        let fd = create("sf-journal-test", 7).unwrap();
        let mut w = JournalWriter::attach(dup(&fd), 7).unwrap();
        let mut keeper = JournalKeeper::new(dup(&fd), 7).unwrap();
        let mut seq = 0;
        let mut headers = Vec::new();
        for _generation in 0..5 {
            seq += 1;
            headers.push(seq);
            w.append(seq, true, &[1; 100]).unwrap();
            for _ in 0..300 {
                seq += 1;
                w.append(seq, false, &[2; 100]).unwrap();
            }
        }
        keeper.follow(seq).unwrap();
        let before = keeper.status();
        assert_eq!((before.entries, before.generations), (1505, 5));
        // A handler that acknowledged nothing past the fourth header holds everything from
        // the third on.
        assert_eq!(keeper.compact(headers[3]).unwrap(), 602);
        assert_eq!(keeper.compact(headers[4] - 1).unwrap(), 0);
        assert_eq!(keeper.compact(headers[4]).unwrap(), 301);
        let after = keeper.status();
        assert_eq!(
            (after.entries, after.generations, after.dropped),
            (602, 2, 903)
        );
        // 903 entries of 116 bytes freed, less the partial pages at the edges.
        assert!(
            after.bytes + 903 * 116 - 2 * PAGE <= before.bytes,
            "{before:?} {after:?}"
        );
        let copy = keeper.sealed_copy("sf-journal-copy").unwrap();
        let seals = nix::fcntl::fcntl(&copy, nix::fcntl::FcntlArg::F_GET_SEALS).unwrap();
        assert_ne!(seals & nix::libc::F_SEAL_WRITE, 0);
        let copy = File::from(copy);
        assert!(copy.write_all_at(b"x", FIRST_ENTRY).is_err(), "sealed");
        let mut seen = Vec::new();
        JournalReader::attach(copy.into(), 7)
            .unwrap()
            .replay_before(u64::MAX, |s, _| seen.push(s))
            .unwrap();
        assert_eq!(seen.len(), 602);
        assert_eq!(seen[0], headers[3]);
        // The writer restarted after compaction resumes at the end.
        let mut w = JournalWriter::attach(dup(&fd), 7).unwrap();
        assert_eq!(w.last_seq(), seq);
        w.append(seq + 1, false, b"more").unwrap();
        keeper.follow(seq + 1).unwrap();
        assert_eq!(keeper.status().entries, 603);
    }
}
