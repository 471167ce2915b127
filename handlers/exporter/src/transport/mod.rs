//! Where encoded records go: standard output, a file, a syslog server, a Kafka topic, or
//! nowhere. Every transport sends a [`Batch`] from a [`Cursor`] on, advancing it past what
//! the destination accepted, so that a retry after an error sends neither a gap nor (for
//! files) a repeat; [`Transport::commit`] makes what was sent durable.
//!
//! Durable means: `write(2)` returned (file, terminal; with `file.fsync`, `fsync(2)` too),
//! the TCP or TLS socket took the message (syslog over TCP/TLS), the datagram was sent (UDP
//! has no acknowledgement: sent counts as delivered), Kafka acknowledged it (its delivery
//! report, `acks=all` by default).

pub mod file;
pub mod kafka;
pub mod syslog;

/// Records encoded for one export: each record's bytes followed by a newline in `buf`, its end
/// (before the newline) in `ends`, and, for Kafka, its message key.
#[derive(Debug, Default)]
pub struct Batch {
    /// The records, newline-terminated, back to back.
    pub buf: Vec<u8>,
    /// End offset in `buf` of each record, newline excluded.
    pub ends: Vec<usize>,
    /// Each record's message key (Kafka; empty when keys are not asked for).
    pub keys: Vec<Vec<u8>>,
}

impl Batch {
    /// Number of records.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// No record.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Record `i`'s bytes, without the newline.
    pub fn record(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] + 1 };
        &self.buf[start..self.ends[i]]
    }

    /// Ends the record whose bytes were appended to `buf` since the last one.
    pub fn finish_record(&mut self) {
        self.ends.push(self.buf.len());
        self.buf.push(b'\n');
    }

    /// Empties the batch, keeping its memory.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.ends.clear();
        self.keys.clear();
    }
}

/// How far a batch was sent: records accepted, and bytes of `buf` written (byte-stream
/// transports resume mid-record).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    /// Records the destination accepted.
    pub records: usize,
    /// Bytes of [`Batch::buf`] written.
    pub bytes: usize,
}

/// A transport failed; the message says what and where.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(pub String);

impl TransportError {
    /// `what: error`.
    pub fn io(what: &str, e: &std::io::Error) -> Self {
        TransportError(format!("{what}: {e}"))
    }
}

/// A destination for batches of records.
pub trait Transport {
    /// Sends the records of `batch` from `cursor` on, advancing it past what was accepted.
    ///
    /// # Errors
    /// When the destination failed; `cursor` says what was sent before it did.
    fn send(&mut self, batch: &Batch, cursor: &mut Cursor) -> Result<(), TransportError>;

    /// Makes everything sent so far durable (see the module documentation).
    ///
    /// # Errors
    /// When it cannot be; what was not delivered is sent again by the next call.
    fn commit(&mut self) -> Result<(), TransportError> {
        Ok(())
    }

    /// Gets ready to send again after an error (reconnects, reopens).
    ///
    /// # Errors
    /// When the destination is still unreachable.
    fn reconnect(&mut self) -> Result<(), TransportError> {
        Ok(())
    }

    /// Reopens the output on request (a file renamed by logrotate is closed, its path opened
    /// again); nothing for the others.
    ///
    /// # Errors
    /// When the path cannot be opened.
    fn reopen(&mut self) -> Result<(), TransportError> {
        Ok(())
    }

    /// Whether the destination is a service that can be down for a while and come back (a
    /// syslog server, a Kafka cluster): its failures are waited for, at the end of the input
    /// too ([`handler_sdk::DestinationDown`]). A local file's are output errors: retried
    /// while records come, at the end a few times, then the run fails.
    fn remote(&self) -> bool {
        false
    }

    /// The destination, for messages and `ctl status`: `syslog tcp localhost:514`.
    fn describe(&self) -> String;
}

/// `terminal`: standard output, through the SDK's `logging::print` (whole lines, in order
/// with the log; `write(2)` returned when `send` does). A write error is not retried but
/// counted (exit status 4); a closed pipe ends the process by SIGPIPE, as a Unix filter.
#[derive(Debug, Default)]
pub struct Terminal;

impl Transport for Terminal {
    fn send(&mut self, batch: &Batch, cursor: &mut Cursor) -> Result<(), TransportError> {
        // In order with the log lines; a failed write is counted in the exit status.
        handler_sdk::logging::print(&batch.buf[cursor.bytes..]);
        *cursor = Cursor {
            records: batch.len(),
            bytes: batch.buf.len(),
        };
        Ok(())
    }

    fn describe(&self) -> String {
        "terminal".into()
    }
}

/// `null`: records are encoded and dropped (to measure or debug the pipeline).
#[derive(Debug, Default)]
pub struct Null;

impl Transport for Null {
    fn send(&mut self, batch: &Batch, cursor: &mut Cursor) -> Result<(), TransportError> {
        *cursor = Cursor {
            records: batch.len(),
            bytes: batch.buf.len(),
        };
        Ok(())
    }

    fn describe(&self) -> String {
        "null".into()
    }
}
