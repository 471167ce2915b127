//! The file driver and the publication of records into the handler rings.
//!
//! Input is a trace file or a directory of them (every regular file in it, in name order:
//! collector files have no extension). Every record gets the next sequence number (from 1)
//! and is published, serialized once, into every handler's ring.

use std::path::{Path, PathBuf};

use sf_processor::codec;
use sf_processor::model::{Record, RecordKind};
use sf_processor::ring::{Producer, PushError};

use crate::avro;

/// The trace files of `path`: itself if it is a file, else the regular files directly in it,
/// sorted by name.
///
/// # Errors
/// A message naming `path` when it does not exist or cannot be listed.
pub fn input_files(path: &Path) -> Result<Vec<PathBuf>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let entries = std::fs::read_dir(path)
        .map_err(|e| format!("{}: cannot list directory: {e}", path.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: cannot list directory: {e}", path.display()))?;
        let p = entry.path();
        if std::fs::metadata(&p).map(|m| m.is_file()).unwrap_or(false) {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

/// What the reader did, for its closing log line and exit status.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReadSummary {
    /// Files read to their end.
    pub files_ok: usize,
    /// Files that stopped early on an error (their records before the error were published).
    pub files_failed: usize,
    /// Records published, per kind (indexed like `RecordKind::ALL`).
    pub published: [u64; 12],
}

impl ReadSummary {
    /// Records published in all.
    pub fn total(&self) -> u64 {
        self.published.iter().sum()
    }
}

/// Publishes records to every handler ring, with sequence numbers.
#[derive(Debug)]
pub struct Publisher {
    rings: Vec<Option<Producer>>,
    names: Vec<String>,
    seq: u64,
    buf: Vec<u8>,
}

/// The rings are all gone (every consumer died or the launcher aborted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoConsumers;

impl Publisher {
    /// A publisher over `rings`, named for messages (`names[i]` for `rings[i]`).
    pub fn new(rings: Vec<Producer>, names: Vec<String>) -> Self {
        Publisher {
            rings: rings.into_iter().map(Some).collect(),
            names,
            seq: 0,
            buf: Vec::with_capacity(4096),
        }
    }

    /// Serializes `record` once and pushes it into every live ring, blocking while a ring is
    /// full. A ring whose consumer is gone is dropped with an error message.
    ///
    /// # Errors
    /// [`NoConsumers`] when no ring is left or the launcher aborted the pipeline.
    pub fn publish(&mut self, record: &Record) -> Result<(), NoConsumers> {
        self.seq += 1;
        if let Err(e) = codec::encode(record, &mut self.buf) {
            log::error!("record {}: cannot serialize: {e}; skipped", self.seq);
            return Ok(());
        }
        for (slot, name) in self.rings.iter_mut().zip(&self.names) {
            let Some(ring) = slot else { continue };
            match ring.push(self.seq, &self.buf) {
                Ok(()) => {}
                Err(PushError::ConsumerGone) => {
                    log::error!("handler {name} is gone; it gets no more records");
                    *slot = None;
                }
                Err(PushError::Aborted) => return Err(NoConsumers),
                Err(e @ PushError::TooLarge { .. }) => {
                    log::error!(
                        "record {} ({}): {e}; skipped for handler {name}",
                        self.seq,
                        record.kind()
                    );
                }
                Err(e) => {
                    log::error!("ring of handler {name}: {e}; it gets no more records");
                    *slot = None;
                }
            }
        }
        if self.rings.iter().all(Option::is_none) {
            Err(NoConsumers)
        } else {
            Ok(())
        }
    }

    /// Makes everything pushed so far visible to the consumers.
    pub fn flush(&mut self) {
        for ring in self.rings.iter_mut().flatten() {
            ring.flush();
        }
    }

    /// Flushes and closes every ring: the handlers drain them and finish.
    pub fn close(self) {
        for ring in self.rings.into_iter().flatten() {
            ring.close();
        }
    }
}

/// Reads every trace file of `path` and publishes its records. A file that fails midway is
/// reported with the error (which names the file and where) and the next file is read.
///
/// # Errors
/// [`NoConsumers`] when there is nobody left to publish to.
pub fn read_into(
    files: &[PathBuf],
    publisher: &mut Publisher,
    summary: &mut ReadSummary,
) -> Result<(), NoConsumers> {
    for file in files {
        let reader = match avro::open(file) {
            Ok(r) => r,
            Err(e) => {
                log::error!("{e}");
                summary.files_failed += 1;
                continue;
            }
        };
        let mut failed = false;
        for item in reader {
            match item {
                Ok(record) => {
                    summary.published[record.kind() as usize] += 1;
                    publisher.publish(&record)?;
                }
                Err(e) => {
                    log::error!("{e}");
                    failed = true;
                }
            }
        }
        publisher.flush();
        if failed {
            summary.files_failed += 1;
        } else {
            summary.files_ok += 1;
        }
    }
    Ok(())
}

/// A one-line description of `summary`: `23 records from 1 file (SFHeader 1, Process 10, ...)`.
pub fn describe(summary: &ReadSummary) -> String {
    let kinds: Vec<String> = RecordKind::ALL
        .iter()
        .filter(|k| summary.published[**k as usize] > 0)
        .map(|k| format!("{} {}", k.name(), summary.published[*k as usize]))
        .collect();
    format!(
        "{} records from {} file(s) ({}); {} file(s) with errors",
        summary.total(),
        summary.files_ok + summary.files_failed,
        kinds.join(", "),
        summary.files_failed
    )
}
