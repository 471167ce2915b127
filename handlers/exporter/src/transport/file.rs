//! `file`: records appended to `file.path`, one per line.
//!
//! The path is opened with `O_APPEND | O_CREAT` (mode 0600: records hold command lines and
//! environments) and never truncated, deleted or replaced: a restarted exporter continues
//! the file, and a FIFO or a character device (`/dev/null`, `/dev/stdout`) is written as it is. (The reference deletes
//! the path before opening it: pointed at `/dev/null`, it replaced the device with a regular
//! file.) [`Transport::reopen`] closes and opens the path again, for logrotate.
//!
//! A regular file only ever holds whole lines: a last line without its newline, which a
//! predecessor killed in the middle of its `write(2)` left, is cut off when the file is
//! opened (its record was not acknowledged, so it comes again, whole); a write that fails
//! part way through a record (a full disk, `EFBIG`) cuts the part it wrote and keeps the
//! record, with every later one, for the next try. Nothing is lost and nothing is repeated
//! by a failed write; only a kill repeats what was written since the last commit.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt as _;

use super::{Batch, Cursor, Transport, TransportError};
use crate::config::FileSettings;

/// The file transport.
#[derive(Debug)]
pub struct FileTransport {
    settings: FileSettings,
    file: Option<File>,
    /// The path is a regular file (torn lines can be cut), not a FIFO or a device.
    regular: bool,
    /// Bytes written since the last `fsync`.
    unsynced: bool,
}

impl FileTransport {
    /// Opens `settings.path` for appending.
    ///
    /// # Errors
    /// When it cannot be opened (the message names the path).
    pub fn open(settings: FileSettings) -> Result<Self, TransportError> {
        let mut t = FileTransport {
            settings,
            file: None,
            regular: false,
            unsynced: false,
        };
        t.file = Some(t.open_path()?);
        Ok(t)
    }

    /// Opens the path for appending (and, a regular file, reading: to cut a torn last line).
    fn open_path(&mut self) -> Result<File, TransportError> {
        let path = &self.settings.path;
        let err = |e: &std::io::Error| TransportError::io(path, e);
        // A FIFO or a device is opened write-only, as it is (never for reading: a FIFO
        // opened read-write would never see its reader go).
        self.regular = match std::fs::metadata(path) {
            Ok(m) => m.is_file(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => return Err(err(&e)),
        };
        let file = OpenOptions::new()
            .mode(0o600)
            .append(true)
            .create(true)
            .read(self.regular)
            .open(path)
            .map_err(|e| err(&e))?;
        if self.regular {
            handler_sdk::output::cut_torn_line(&file).map_err(|e| err(&e))?;
        }
        Ok(file)
    }
}

impl Transport for FileTransport {
    fn send(&mut self, batch: &Batch, cursor: &mut Cursor) -> Result<(), TransportError> {
        let path = &self.settings.path;
        let file = match self.file.as_mut() {
            Some(f) => f,
            None => return Err(TransportError(format!("{path}: not open"))),
        };
        while cursor.bytes < batch.buf.len() {
            match file.write(&batch.buf[cursor.bytes..]) {
                Ok(0) => {
                    return Err(TransportError(format!("{path}: write returned 0 bytes")));
                }
                Ok(n) => {
                    cursor.bytes += n;
                    self.unsynced = true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Records whose newline was written; the one after may be in part.
                    let whole = batch.ends.partition_point(|end| *end < cursor.bytes);
                    cursor.records = whole;
                    let start = if whole == 0 {
                        0
                    } else {
                        batch.ends[whole - 1] + 1
                    };
                    let partial = (cursor.bytes - start) as u64;
                    if partial > 0 && self.regular {
                        // Cut it: the file keeps whole lines, the record goes again whole.
                        match file.metadata().and_then(|m| {
                            let keep = m.len().saturating_sub(partial);
                            file.set_len(keep)
                        }) {
                            Ok(()) => cursor.bytes = start,
                            Err(cut) => handler_sdk::log::error!(
                                "{path}: cannot cut the part of a line a failed write left: {cut}"
                            ),
                        }
                    }
                    return Err(TransportError::io(path, &e));
                }
            }
        }
        cursor.records = batch.len();
        Ok(())
    }

    fn commit(&mut self) -> Result<(), TransportError> {
        if self.settings.fsync
            && self.unsynced
            && let Some(f) = &self.file
        {
            match f.sync_data() {
                Ok(()) => {}
                // A FIFO or a device cannot be synced: written is all there is.
                Err(e) if e.raw_os_error() == Some(22) => {}
                Err(e) => return Err(TransportError::io(&self.settings.path, &e)),
            }
            self.unsynced = false;
        }
        Ok(())
    }

    fn reconnect(&mut self) -> Result<(), TransportError> {
        if self.file.is_none() {
            let file = self.open_path()?;
            self.file = Some(file);
        }
        Ok(())
    }

    fn reopen(&mut self) -> Result<(), TransportError> {
        self.commit()?;
        self.file = None;
        let file = self.open_path()?;
        self.file = Some(file);
        Ok(())
    }

    fn describe(&self) -> String {
        format!("file {}", self.settings.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Environment variable that makes [`fsize_child`] run: the file it writes to.
    const CHILD: &str = "SF_EXPORTER_FSIZE_CHILD";

    /// A write that fails part way (the file-size limit, as a full disk would) leaves whole
    /// lines only, and the next send writes every record not written, once. Runs
    /// [`fsize_child`] in a process of its own (the limit is per process).
    #[test]
    fn a_write_failing_part_way_leaves_whole_lines_and_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "transport::file::tests::fsize_child",
                "--nocapture",
            ])
            .env(CHILD, &path)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{said}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(said.contains("fsize child: ok"), "{said}");
    }

    /// The child of the test above (does nothing unless [`CHILD`] is set).
    #[test]
    fn fsize_child() {
        use nix::sys::resource::{RLIM_INFINITY, Resource, setrlimit};
        let Some(path) = std::env::var_os(CHILD) else {
            return;
        };
        // Caught, so that a write past the limit fails with EFBIG instead of killing.
        signal_hook::flag::register(
            signal_hook::consts::SIGXFSZ,
            std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
        )
        .unwrap();
        let mut batch = Batch::default();
        for i in 0..30 {
            batch.buf.extend_from_slice(
                format!("{{\"record\":{i:02},\"pad\":\"{}\"}}", "x".repeat(70)).as_bytes(),
            );
            batch.finish_record();
        }
        let lines = |upto: usize| -> String {
            (0..upto)
                .map(|i| format!("{}\n", String::from_utf8_lossy(batch.record(i))))
                .collect()
        };
        setrlimit(Resource::RLIMIT_FSIZE, 1000, RLIM_INFINITY).unwrap();
        let mut t = FileTransport::open(FileSettings {
            path: path.to_string_lossy().into_owned(),
            fsync: false,
        })
        .unwrap();
        let mut cursor = Cursor::default();
        let e = t.send(&batch, &mut cursor).unwrap_err();
        assert!(e.to_string().contains("File too large"), "{e}");
        // 1,000 bytes were written: 10 lines of 93 bytes and 70 of the 11th, cut off.
        assert_eq!(
            cursor,
            Cursor {
                records: 10,
                bytes: 930
            }
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), lines(10));
        // A second try fails the same way, with nothing written twice.
        assert!(t.send(&batch, &mut cursor).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), lines(10));
        // Room again (a disk freed): every record, once, in order.
        setrlimit(Resource::RLIMIT_FSIZE, RLIM_INFINITY, RLIM_INFINITY).unwrap();
        t.send(&batch, &mut cursor).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), lines(30));
        // A torn last line (a kill in the middle of a write) is cut when the file is opened.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"record\":30,\"pa")
            .unwrap();
        drop(
            FileTransport::open(FileSettings {
                path: path.to_string_lossy().into_owned(),
                fsync: false,
            })
            .unwrap(),
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), lines(30));
        println!("fsize child: ok");
    }
}
