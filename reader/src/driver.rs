//! The file driver and the publication of records into the handler rings.
//!
//! Input is a trace file or a directory of them (every regular file in it, in name order:
//! collector files have no extension), read once ([`read`]) or followed ([`follow`]: new
//! files are read as the collector completes them). Every record gets the next sequence
//! number (from 1) and is published, serialized once, into every handler's ring.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use sf_processor::model::{Record, RecordKind};

use crate::trace::{self, Skipped};

/// The trace files of `path`: itself if it is a file, else the regular files directly in it,
/// sorted by name, hidden files (names starting with `.`) left out. An empty directory is
/// reported with a warning.
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
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        match std::fs::metadata(&p) {
            Ok(m) if m.is_file() => files.push(p),
            Ok(m) => log::info!(
                "{}: skipped: {}",
                p.display(),
                if m.is_dir() {
                    "a directory"
                } else {
                    "not a regular file"
                }
            ),
            Err(e) => log::info!("{}: skipped: {e}", p.display()),
        }
    }
    files.sort();
    if files.is_empty() {
        log::warn!("{}: no trace file in this directory", path.display());
    }
    Ok(files)
}

/// What the reader did, for its closing log lines.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReadSummary {
    /// Files read to their end without any error.
    pub files_ok: usize,
    /// Files read with errors: damaged blocks or records skipped, fields not resolved (their
    /// other records were published; see [`FileDamage::records`] for whether any was).
    pub files_damaged: Vec<FileDamage>,
    /// Files rejected at open (not read at all): file name and why, e.g.
    /// `("notes.txt", "not an Avro file (wrong magic at byte 0)")`.
    pub files_skipped: Vec<(String, String)>,
    /// Records published, per kind (indexed like `RecordKind::ALL`).
    pub published: [u64; 12],
}

/// What was skipped in one file that could be opened.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileDamage {
    /// The file's name.
    pub name: String,
    /// What its reader skipped.
    pub skipped: Skipped,
    /// Records published from it.
    pub records: u64,
    /// Its writer fields that could not be resolved (`Process.exe`), whose records got the
    /// reader's default in their place.
    pub unresolved: Vec<String>,
    /// Whether reading it was cut short by a stop request.
    pub interrupted: bool,
}

impl FileDamage {
    /// Whether no record at all could be decoded from the file, read to its end.
    pub fn no_record(&self) -> bool {
        self.records == 0 && !self.interrupted && self.skipped.errors > 0
    }
}

impl ReadSummary {
    /// Files from which no record could be decoded: rejected at open, or read to the end with
    /// errors and no record. An input error the reader's exit status reports ([`READER_FILES_WITHOUT_RECORDS`](sf_processor::exit::READER_FILES_WITHOUT_RECORDS), which
    /// `sf-launch` turns into its 3).
    pub fn files_without_records(&self) -> usize {
        self.files_skipped.len() + self.files_damaged.iter().filter(|d| d.no_record()).count()
    }

    /// Records published in all.
    pub fn total(&self) -> u64 {
        self.published.iter().sum()
    }

    /// Files with errors, rejected or damaged.
    pub fn files_failed(&self) -> usize {
        self.files_skipped.len() + self.files_damaged.len()
    }

    /// Files seen.
    pub fn files(&self) -> usize {
        self.files_ok + self.files_failed()
    }
}

/// How many errors of one file are logged one by one; the rest are counted and summed up.
pub const MAX_ERRORS_LOGGED_PER_FILE: u64 = 20;

/// Publication into the rings lives in `sf_processor::publish` (shared with the handler
/// SDK, which publishes into the rings of chained handlers).
pub use sf_processor::publish::{NoConsumers, Overflow, Publisher, Target};

/// Where a driver ([`read`], [`follow`], [`crate::socket::serve`]) delivers the records it decodes,
/// in input order: the rings of a pipeline ([`Publisher`]) or handlers called in the reader's
/// own process ([`crate::in_process::Dispatchers`]).
pub trait Sink {
    /// Delivers the next record (it gets the next sequence number).
    ///
    /// # Errors
    /// [`NoConsumers`] when nobody is left to deliver to: the driver stops.
    fn deliver(&mut self, record: Record) -> Result<(), NoConsumers>;

    /// Sequence number of the last record delivered.
    fn delivered(&self) -> u64;

    /// Makes everything delivered so far visible (the end of a file, a quiet socket).
    fn flush(&mut self) {}
}

impl Sink for Publisher {
    fn deliver(&mut self, record: Record) -> Result<(), NoConsumers> {
        self.publish(&record)
    }

    fn delivered(&self) -> u64 {
        self.seq()
    }

    fn flush(&mut self) {
        Publisher::flush(self);
    }
}

/// Reads every trace file of `files` and delivers its records to `sink`. Bad input is
/// reported and skipped: a file that cannot be read at all is logged with the reason (which
/// names the file and where), a writer field that cannot be resolved is logged once per file,
/// a damaged block or a record that cannot be decoded is logged and skipped (at most
/// [`MAX_ERRORS_LOGGED_PER_FILE`] messages per file), and reading goes on; `summary` counts
/// what was skipped. Stops early, between two records, once `stop` is set.
///
/// # Errors
/// [`NoConsumers`] when there is nobody left to deliver to.
pub fn read(
    files: &[PathBuf],
    sink: &mut impl Sink,
    summary: &mut ReadSummary,
    stop: &AtomicBool,
) -> Result<(), NoConsumers> {
    for file in files {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        read_file(file, sink, summary, stop)?;
    }
    Ok(())
}

fn read_file(
    file: &Path,
    sink: &mut impl Sink,
    summary: &mut ReadSummary,
    stop: &AtomicBool,
) -> Result<(), NoConsumers> {
    let name = file.file_name().map_or_else(
        || file.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut reader = match trace::open(file) {
        Ok(r) => r,
        Err(e) => {
            log::error!("{e}; file skipped");
            summary.files_skipped.push((name, e.brief()));
            return Ok(());
        }
    };
    let mut damage = FileDamage {
        name,
        ..FileDamage::default()
    };
    for note in reader.file().unresolved() {
        log::error!("{}: {note}", file.display());
        damage
            .unresolved
            .push(format!("{}.{}", note.record_type, note.field));
    }
    for (branch, fields) in reader.decoder().defaulted() {
        log::debug!(
            "{}: {branch}: {} not in the writer's record; the reader's defaults are used",
            file.display(),
            fields.join(", ")
        );
    }
    let mut errors = 0u64;
    while let Some(item) = reader.next() {
        if stop.load(Ordering::Relaxed) {
            log::info!("stopping: {} records published", sink.delivered());
            damage.interrupted = true;
            break;
        }
        match item {
            Ok(record) => {
                summary.published[record.kind() as usize] += 1;
                damage.records += 1;
                sink.deliver(record)?;
                if reader.block_done() {
                    // The next read may wait for more input (a FIFO, a live file): what
                    // was read must not wait with it.
                    sink.flush();
                }
            }
            Err(e) => {
                errors += 1;
                if errors <= MAX_ERRORS_LOGGED_PER_FILE {
                    log::error!("{e}");
                }
            }
        }
    }
    sink.flush();
    if errors > MAX_ERRORS_LOGGED_PER_FILE {
        log::error!(
            "{}: {} more errors not shown",
            file.display(),
            errors - MAX_ERRORS_LOGGED_PER_FILE
        );
    }
    damage.skipped = reader.skipped();
    if damage.no_record() {
        log::error!(
            "{}: no record could be decoded from this file",
            file.display()
        );
    }
    if damage.skipped.is_empty() && damage.unresolved.is_empty() {
        summary.files_ok += 1;
    } else {
        summary.files_damaged.push(damage);
    }
    Ok(())
}

/// How long the newest file of a followed directory must stay unchanged to count as complete.
pub const SETTLE: Duration = Duration::from_secs(10);

/// Follow mode: reads the directory's trace files in name order, then keeps watching it and
/// reads each new file once it is complete: when a newer file exists (the collector rotated),
/// or when it has not changed for [`SETTLE`]. Looks again every second; returns when `stop`
/// is set.
///
/// # Errors
/// [`NoConsumers`] when there is nobody left to deliver to.
pub fn follow(
    dir: &Path,
    sink: &mut impl Sink,
    summary: &mut ReadSummary,
    stop: &AtomicBool,
) -> Result<(), NoConsumers> {
    let mut done: BTreeSet<PathBuf> = BTreeSet::new();
    while !stop.load(Ordering::Relaxed) {
        let files = match input_files(dir) {
            Ok(f) => f,
            Err(e) => {
                log::error!("{e}");
                Vec::new()
            }
        };
        let newest = files.last().cloned();
        let ready: Vec<PathBuf> = files
            .into_iter()
            .filter(|f| !done.contains(f))
            .filter(|f| {
                Some(f) != newest.as_ref()
                    || std::fs::metadata(f)
                        .and_then(|m| m.modified())
                        .map(|t| SystemTime::now().duration_since(t).unwrap_or_default() >= SETTLE)
                        .unwrap_or(false)
            })
            .collect();
        if !ready.is_empty() {
            read(&ready, sink, summary, stop)?;
            done.extend(ready);
        }
        for _ in 0..5 {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    Ok(())
}

/// A one-line description of `summary`: `23 records from 1 file(s) (SFHeader 1, Process 10, ...)`.
pub fn describe(summary: &ReadSummary) -> String {
    let kinds: Vec<String> = RecordKind::ALL
        .iter()
        .filter(|k| summary.published[**k as usize] > 0)
        .map(|k| format!("{} {}", k.name(), summary.published[*k as usize]))
        .collect();
    format!(
        "{} records from {} file(s) ({}); {} file(s) with errors",
        summary.total(),
        summary.files(),
        kinds.join(", "),
        summary.files_failed()
    )
}

fn count(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// What was skipped in a damaged file: `1 block skipped (1281 records), 2 records skipped`.
fn describe_damage(s: &Skipped, unresolved: &[String]) -> String {
    let mut parts = Vec::new();
    let block_records = s.records.saturating_sub(s.unknown_type);
    if s.blocks > 0 {
        let records = match (s.uncounted_blocks, block_records) {
            (0, n) => count(n, "record", "records"),
            (_, 0) => "records unknown".to_owned(),
            (_, n) => format!("at least {}", count(n, "record", "records")),
        };
        parts.push(format!(
            "{} skipped ({records})",
            count(s.blocks, "block", "blocks")
        ));
    } else if block_records > 0 {
        parts.push(format!(
            "{} skipped",
            count(block_records, "record", "records")
        ));
    }
    if s.unknown_type > 0 {
        parts.push(format!(
            "{} of an unknown type skipped",
            count(s.unknown_type, "record", "records")
        ));
    }
    if !unresolved.is_empty() {
        parts.push(format!(
            "{} not resolved ({})",
            count(unresolved.len() as u64, "field", "fields"),
            unresolved.join(", ")
        ));
    }
    if parts.is_empty() {
        parts.push(count(s.errors, "error", "errors"));
    }
    parts.join(", ")
}

/// The closing warning about bad input, `None` when there was none:
///
/// ```text
/// input errors in 4 of 6 files: 2 skipped (empty.sf: empty file; notes.txt: not an Avro file (wrong magic at byte 0)); 1 with no record decoded (cut.sf: 1 block skipped (90 records)); 1 damaged (k8s_small.sf: 1 block skipped (1281 records)); 1371 records skipped in all
/// ```
pub fn input_errors(summary: &ReadSummary) -> Option<String> {
    if summary.files_failed() == 0 {
        return None;
    }
    let mut parts = Vec::new();
    if !summary.files_skipped.is_empty() {
        let list: Vec<String> = summary
            .files_skipped
            .iter()
            .map(|(name, why)| format!("{name}: {why}"))
            .collect();
        parts.push(format!(
            "{} skipped ({})",
            summary.files_skipped.len(),
            list.join("; ")
        ));
    }
    for (no_record, what) in [(true, "with no record decoded"), (false, "damaged")] {
        let list: Vec<String> = summary
            .files_damaged
            .iter()
            .filter(|d| d.no_record() == no_record)
            .map(|d| format!("{}: {}", d.name, describe_damage(&d.skipped, &d.unresolved)))
            .collect();
        if !list.is_empty() {
            parts.push(format!("{} {what} ({})", list.len(), list.join("; ")));
        }
    }
    let records: u64 = summary
        .files_damaged
        .iter()
        .map(|d| d.skipped.records)
        .sum();
    let uncounted = summary
        .files_damaged
        .iter()
        .any(|d| d.skipped.uncounted_blocks > 0);
    let mut line = format!(
        "input errors in {} of {} files: {}",
        summary.files_failed(),
        summary.files(),
        parts.join("; ")
    );
    if !summary.files_damaged.is_empty() {
        line.push_str(&match (uncounted, records) {
            (true, 0) => "; an unknown number of records skipped in all".to_owned(),
            (true, n) => format!(
                "; at least {} skipped in all",
                count(n, "record", "records")
            ),
            (false, n) => format!("; {} skipped in all", count(n, "record", "records")),
        });
    }
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_block_of_unknown_size_is_not_counted_as_zero_records() {
        let mut summary = ReadSummary {
            files_ok: 1,
            ..ReadSummary::default()
        };
        summary.files_damaged.push(damaged(
            "k8s",
            Skipped {
                blocks: 1,
                uncounted_blocks: 1,
                errors: 1,
                ..Skipped::default()
            },
        ));
        assert_eq!(
            input_errors(&summary).as_deref(),
            Some(
                "input errors in 1 of 2 files: 1 damaged (k8s: 1 block skipped (records unknown)); an unknown number of records skipped in all"
            )
        );
    }

    fn damaged(name: &str, skipped: Skipped) -> FileDamage {
        FileDamage {
            name: name.to_owned(),
            skipped,
            records: 1,
            ..FileDamage::default()
        }
    }

    #[test]
    fn a_file_with_no_record_decoded_and_unresolved_fields_are_input_errors() {
        let mut summary = ReadSummary {
            files_ok: 1,
            ..ReadSummary::default()
        };
        summary.files_damaged.push(FileDamage {
            name: "play".to_owned(),
            skipped: Skipped {
                records: 237,
                errors: 237,
                ..Skipped::default()
            },
            ..FileDamage::default()
        });
        summary.files_damaged.push(FileDamage {
            name: "odd".to_owned(),
            records: 12,
            unresolved: vec!["Process.exe".to_owned(), "Process.uid".to_owned()],
            ..FileDamage::default()
        });
        // Stopped before its first record: not a file without records.
        summary.files_damaged.push(FileDamage {
            name: "cut".to_owned(),
            skipped: Skipped {
                records: 1,
                errors: 1,
                ..Skipped::default()
            },
            interrupted: true,
            ..FileDamage::default()
        });
        assert_eq!(summary.files_without_records(), 1);
        assert_eq!(
            input_errors(&summary).as_deref(),
            Some(
                "input errors in 3 of 4 files: 1 with no record decoded (play: 237 records skipped); 2 damaged (odd: 2 fields not resolved (Process.exe, Process.uid); cut: 1 record skipped); 238 records skipped in all"
            )
        );
        summary
            .files_skipped
            .push(("notes.txt".into(), "not an Avro file".into()));
        assert_eq!(summary.files_without_records(), 2);
    }

    #[test]
    fn the_input_errors_line_sums_up_every_kind_of_damage() {
        let mut summary = ReadSummary {
            files_ok: 2,
            ..ReadSummary::default()
        };
        assert_eq!(input_errors(&summary), None);
        summary
            .files_skipped
            .push(("empty".into(), "empty file".into()));
        summary.files_damaged.push(damaged(
            "a",
            Skipped {
                blocks: 2,
                uncounted_blocks: 1,
                records: 10,
                errors: 2,
                ..Skipped::default()
            },
        ));
        summary.files_damaged.push(damaged(
            "b",
            Skipped {
                records: 7,
                unknown_type: 1,
                errors: 2,
                ..Skipped::default()
            },
        ));
        summary.files_damaged.push(damaged(
            "c",
            Skipped {
                errors: 1,
                ..Skipped::default()
            },
        ));
        assert_eq!(
            input_errors(&summary).as_deref(),
            Some(
                "input errors in 4 of 6 files: 1 skipped (empty: empty file); 3 damaged (a: 2 blocks skipped (at least 10 records); b: 6 records skipped, 1 record of an unknown type skipped; c: 1 error); at least 17 records skipped in all"
            )
        );
    }
}
