//! The entity journal: every entity record (header, container, pod, process, file) the reader
//! published, with its sequence number, in an append-only memfd that the launcher creates and
//! hands to the reader (writer) and to every handler (reader).
//!
//! A handler that starts after a crash resumes in the middle of the stream; before its first
//! record (sequence number `S`) it replays the journal's entries with a sequence number below
//! `S` into its entity tables, so its records get exactly the context they would have had if
//! it had never crashed: the same operations, in the same order, as the original stream.
//!
//! Like the rings, the journal is a memfd: the kernel frees it when the last process holding
//! it exits, so nothing is left behind whatever dies.
//!
//! # Layout (version 1)
//!
//! A 16-byte file header `{ magic: [u8; 8] = "SFJRNL\0\0", version: u32 = 1, wire: u32 }`,
//! then entries `{ len: u32, seq: u64, payload: [u8; len] }` (little-endian), where `payload`
//! is the record in the codec's encoding (`wire` is [`crate::codec::WIRE_VERSION`]). Entries
//! are in increasing `seq` order. Each entry is written with one `pwrite`, before the record
//! is published into any ring, so every entry below a published sequence number is complete.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;

const MAGIC: [u8; 8] = *b"SFJRNL\0\0";
const VERSION: u32 = 1;
const FILE_HEADER: u64 = 16;
const ENTRY_HEADER: usize = 12;
/// Largest entry payload accepted when reading back (a record is far smaller).
const MAX_ENTRY: u32 = 64 << 20;

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

/// Creates an empty journal memfd (mode 0600, close-on-exec) named `name` for records of wire
/// version `wire`.
///
/// # Errors
/// [`JournalError::Io`] when the memfd cannot be created or written.
pub fn create(name: &str, wire: u32) -> Result<OwnedFd, JournalError> {
    use nix::sys::memfd::{MFdFlags, memfd_create};
    let fd = memfd_create(name, MFdFlags::MFD_CLOEXEC).map_err(|e| JournalError::Io {
        what: "memfd_create",
        error: e.into(),
    })?;
    nix::sys::stat::fchmod(&fd, nix::sys::stat::Mode::from_bits_truncate(0o600)).map_err(|e| {
        JournalError::Io {
            what: "fchmod",
            error: e.into(),
        }
    })?;
    let file = File::from(fd);
    let mut header = [0u8; FILE_HEADER as usize];
    header[..8].copy_from_slice(&MAGIC);
    header[8..12].copy_from_slice(&VERSION.to_le_bytes());
    header[12..16].copy_from_slice(&wire.to_le_bytes());
    file.write_all_at(&header, 0)
        .map_err(io("writing the header"))?;
    Ok(file.into())
}

fn check_header(file: &File, wire: u32) -> Result<(), JournalError> {
    let mut header = [0u8; FILE_HEADER as usize];
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
    Ok(())
}

/// Reads entries from `file` in order, calling `f(seq, payload)` for each complete entry
/// while `keep(seq)` holds. Returns the byte offset after the last entry read.
fn scan(
    file: &File,
    mut keep: impl FnMut(u64) -> bool,
    mut f: impl FnMut(u64, &[u8]),
) -> Result<u64, JournalError> {
    let mut r = BufReader::with_capacity(1 << 16, file);
    r.seek(SeekFrom::Start(FILE_HEADER))
        .map_err(io("seeking"))?;
    let mut offset = FILE_HEADER;
    let mut payload = Vec::new();
    loop {
        let mut head = [0u8; ENTRY_HEADER];
        match r.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(offset),
            Err(e) => {
                return Err(JournalError::Io {
                    what: "reading an entry",
                    error: e,
                });
            }
        }
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let mut seq_bytes = [0u8; 8];
        seq_bytes.copy_from_slice(&head[4..]);
        let seq = u64::from_le_bytes(seq_bytes);
        if len > MAX_ENTRY || !keep(seq) {
            return Ok(offset);
        }
        payload.resize(len as usize, 0);
        match r.read_exact(&mut payload) {
            Ok(()) => {}
            // A partial entry at the end: the writer died while writing it.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(offset),
            Err(e) => {
                return Err(JournalError::Io {
                    what: "reading an entry",
                    error: e,
                });
            }
        }
        f(seq, &payload);
        offset += ENTRY_HEADER as u64 + u64::from(len);
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
    /// was restarted), appending resumes after the last complete one, and a partial entry
    /// it left at the end is cut off.
    ///
    /// # Errors
    /// [`JournalError`] when `fd` is not a journal of wire version `wire` or cannot be read.
    pub fn attach(fd: OwnedFd, wire: u32) -> Result<Self, JournalError> {
        let file = File::from(fd);
        check_header(&file, wire)?;
        let mut last_seq = 0;
        let end = scan(&file, |_| true, |seq, _| last_seq = seq)?;
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

    /// Appends the entity record `payload` (codec encoding) with sequence number `seq`;
    /// does nothing if an entry with that or a later sequence number is already there (a
    /// restarted reader re-reading its input).
    ///
    /// # Errors
    /// [`JournalError::Io`] when the write fails.
    pub fn append(&mut self, seq: u64, payload: &[u8]) -> Result<(), JournalError> {
        if seq <= self.last_seq {
            return Ok(());
        }
        let len = u32::try_from(payload.len()).map_err(|_| {
            JournalError::Format(format!("record {seq} is too large for the journal"))
        })?;
        self.buf.clear();
        self.buf.extend_from_slice(&len.to_le_bytes());
        self.buf.extend_from_slice(&seq.to_le_bytes());
        self.buf.extend_from_slice(payload);
        self.file
            .write_all_at(&self.buf, self.end)
            .map_err(io("appending an entry"))?;
        self.end += self.buf.len() as u64;
        self.last_seq = seq;
        Ok(())
    }
}

/// A handler's side: replays entries into its entity tables.
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
            |seq| seq < before,
            |seq, p| {
                n += 1;
                f(seq, p)
            },
        )?;
        Ok(n)
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
            w.append(seq, format!("rec{seq}").as_bytes()).unwrap();
        }
        w.append(5, b"again").unwrap(); // already there: ignored
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
        w.append(3, b"abc").unwrap();
        // A writer that died in the middle of an entry.
        let file = File::from(dup(&fd));
        let end = file.metadata().unwrap().len();
        file.write_all_at(&[200, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 1, 2], end)
            .unwrap();
        let mut w = JournalWriter::attach(dup(&fd), 7).unwrap();
        assert_eq!(w.last_seq(), 3);
        w.append(4, b"d").unwrap();
        let mut seen = Vec::new();
        JournalReader::attach(dup(&fd), 7)
            .unwrap()
            .replay_before(u64::MAX, |s, p| seen.push((s, p.to_vec())))
            .unwrap();
        assert_eq!(seen, vec![(3, b"abc".to_vec()), (4, b"d".to_vec())]);
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
}
