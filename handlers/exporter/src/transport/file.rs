//! `file`: records appended to `file.path`, one per line.
//!
//! The path is opened with `O_APPEND | O_CREAT` (mode 0644 before the umask) and never
//! truncated, deleted or replaced: a restarted exporter continues the file, and a FIFO or a
//! character device (`/dev/null`, `/dev/stdout`) is written as it is. (The reference deletes
//! the path before opening it: pointed at `/dev/null`, it replaced the device with a regular
//! file.) [`Transport::reopen`] closes and opens the path again, for logrotate.

use std::fs::{File, OpenOptions};
use std::io::Write;

use super::{Batch, Cursor, Transport, TransportError};
use crate::config::FileSettings;

/// The file transport.
#[derive(Debug)]
pub struct FileTransport {
    settings: FileSettings,
    file: Option<File>,
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
            unsynced: false,
        };
        t.file = Some(t.open_path()?);
        Ok(t)
    }

    fn open_path(&self) -> Result<File, TransportError> {
        OpenOptions::new()
            .append(true)
            .create(true)
            .open(&self.settings.path)
            .map_err(|e| TransportError::io(&self.settings.path, &e))
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
                    cursor.records = batch.ends.partition_point(|end| *end < cursor.bytes);
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
            self.file = Some(self.open_path()?);
        }
        Ok(())
    }

    fn reopen(&mut self) -> Result<(), TransportError> {
        self.commit()?;
        self.file = None;
        self.file = Some(self.open_path()?);
        Ok(())
    }

    fn describe(&self) -> String {
        format!("file {}", self.settings.path)
    }
}
