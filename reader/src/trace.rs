//! Reading a SysFlow trace: the entry point. The container framing of [`crate::container`]
//! (header, blocks, sync markers, deflate; damage located to the byte and survived) and our
//! decoder ([`crate::fast::SysFlowDecoder`], the file's writer schema resolved against the
//! reader schema) give the records of one file, in file order.
//!
//! # Errors
//!
//! Every [`DecodeError`] names the input (file path or socket name) and where it is: the byte
//! offset in the file, and for a record its 0-based index in the input, the byte offset of its
//! Avro block, the writer's record name and the field, e.g.
//! `k8s.sf: record 812 (Container, block at byte 33670): field "type": unknown ContainerType symbol "CT_PODMAN"`.
//! A record that cannot be decoded is reported and skipped: the records before and after it
//! are still delivered. A damaged block (truncated, wrong sync marker, corrupt size or deflate
//! data, undecodable datum) is reported and skipped, and reading goes on with the next sound
//! block; a truncated last block ends the file ([`DecodeError::ends_stream`]).
//! [`TraceReader::skipped`] counts what was skipped. Writer fields that cannot be resolved
//! are reported once, at open ([`TraceFile::unresolved`]). Nothing here panics on any input,
//! or allocates more than the largest block allows.
//!
//! # Example
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let reader = sf_reader::trace::open("trace.sf".as_ref())?;
//! for note in reader.file().unresolved() {
//!     eprintln!("{}: {note}", reader.file().name());
//! }
//! for record in reader {
//!     match record {
//!         Ok(record) => println!("{}", record.kind()),
//!         Err(e) => eprintln!("{e}"),
//!     }
//! }
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::fs::File as FsFile;
use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::Arc;

use sf_processor::model::Record;

use crate::branch::BranchTable;
use crate::container::{Container, Header, HeaderError};
use crate::error::{DataProblem, DatumError, DatumProblem, DecodeError, Position, Unresolved};
use crate::fast::{SchemaError, SysFlowDecoder};

/// What is known about a trace once its Avro header has been read.
#[derive(Debug, Clone)]
pub struct TraceFile {
    name: Arc<str>,
    codec: &'static str,
    header_len: u64,
    schema_json: String,
    branches: BranchTable,
    unresolved: Vec<Unresolved>,
}

impl TraceFile {
    /// The name of the input, as given to [`open`] (the path) or [`TraceReader::new`]; every
    /// error starts with it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Avro codec of the data blocks (`"deflate"` or `"null"`), from the header's
    /// `avro.codec` metadata (`"null"` when absent).
    pub fn codec(&self) -> &str {
        self.codec
    }

    /// Length of the Avro header in bytes (the first data block starts there).
    pub fn header_len(&self) -> u64 {
        self.header_len
    }

    /// The writer schema embedded in the file, as its JSON text.
    pub fn schema_json(&self) -> &str {
        &self.schema_json
    }

    /// The branches of the writer's `rec` union and the record type each resolves to.
    pub fn branches(&self) -> &BranchTable {
        &self.branches
    }

    /// The writer fields that cannot be resolved against the reader schema (their records
    /// get the reader's default in their place), to be reported once for the file.
    pub fn unresolved(&self) -> &[Unresolved] {
        &self.unresolved
    }
}

/// Opens `path` and reads its Avro header and writer schema.
///
/// # Errors
/// A [`DecodeError`] naming the path: the file cannot be opened, is empty, is not an Avro
/// object container file, has a truncated or malformed header or an unsupported codec, or is
/// an Avro file whose schema is not `sysflow.SysFlow`.
pub fn open(path: &Path) -> Result<TraceReader<BufReader<FsFile>>, DecodeError> {
    let name = path.display().to_string();
    let file = FsFile::open(path).map_err(|source| DecodeError::Open {
        file: name.clone(),
        source,
    })?;
    // container.rs reads 64 KiB at a time: a smaller buffer is bypassed (no extra copy).
    TraceReader::new(BufReader::new(file), name)
}

/// What a [`TraceReader`] has skipped so far: damaged blocks and records it could not deliver.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Skipped {
    /// Blocks skipped whole (truncated, wrong sync marker, corrupt size or compressed data).
    pub blocks: u64,
    /// Of those, the blocks whose record count could not be read.
    pub uncounted_blocks: u64,
    /// Records not delivered, as far as counts tell: those of skipped blocks, the rest of a
    /// block after an undecodable datum, and single records that could not be decoded.
    pub records: u64,
    /// Of those, records of a union branch that resolves to no SysFlow record type.
    pub unknown_type: u64,
    /// Errors reported (one per [`DecodeError`] yielded).
    pub errors: u64,
}

impl Skipped {
    /// Whether nothing was skipped and no error reported.
    pub fn is_empty(&self) -> bool {
        *self == Skipped::default()
    }
}

/// The current block's inflated data and how far its datums were read.
#[derive(Debug, Default)]
struct CurrentBlock {
    data: Vec<u8>,
    /// Byte index in `data` of the next datum.
    cursor: usize,
    /// Datums of the block not read yet.
    left: u64,
    /// Datums in the block.
    count: u64,
}

/// Iterates over the records of one SysFlow Avro object container file (or stream).
///
/// Yields `Ok(record)` per datum, in file order. A datum that cannot be decoded yields an
/// `Err` and the iteration goes on with the next datum. A damaged block (truncated, wrong sync
/// marker, corrupt size or compressed data, undecodable datum) yields one `Err` naming its
/// byte offset, after every record before the damage, and the iteration goes on with the next
/// sound block (see [`crate::container`]); an error that ends the input
/// ([`DecodeError::ends_stream`]) is the last item. [`TraceReader::skipped`] counts what was
/// skipped.
pub struct TraceReader<R: Read> {
    file: TraceFile,
    container: Container<R>,
    decoder: SysFlowDecoder,
    block: CurrentBlock,
    /// Index of the next datum in the input (the datums of skipped blocks counted, when their
    /// count is known).
    next_record: u64,
    /// Byte offset of the current block.
    block_offset: u64,
    /// Bytes of datum data in the blocks read so far (inflated).
    data_bytes: u64,
    skipped: Skipped,
    done: bool,
}

impl<R: Read> fmt::Debug for TraceReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceReader")
            .field("file", &self.file.name)
            .field("codec", &self.file.codec)
            .field("next_record", &self.next_record)
            .field("bytes_read", &self.bytes_read())
            .field("skipped", &self.skipped)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

fn header_error(file: &str, error: HeaderError) -> DecodeError {
    let file = file.to_owned();
    match error {
        HeaderError::Empty => DecodeError::Empty { file },
        HeaderError::BadMagic { found } => DecodeError::BadMagic { file, found },
        HeaderError::UnsupportedCodec { codec, at } => DecodeError::UnsupportedCodec {
            file,
            codec,
            offset: at,
        },
        problem => DecodeError::Header { file, problem },
    }
}

/// The writer schema's JSON text (`avro.schema`) and its byte offset in the file.
fn schema_text(header: &Header) -> Result<(String, u64), HeaderError> {
    let Some(entry) = header.get("avro.schema") else {
        return Err(HeaderError::Malformed {
            at: 4,
            reason: "the metadata has no avro.schema".to_owned(),
        });
    };
    match std::str::from_utf8(&entry.value) {
        Ok(text) => Ok((text.to_owned(), entry.offset)),
        Err(e) => Err(HeaderError::Malformed {
            at: entry.offset,
            reason: format!("avro.schema is not UTF-8: {e}"),
        }),
    }
}

impl<R: Read> TraceReader<R> {
    /// Reads the Avro header and writer schema from `source` and resolves the schema; `name`
    /// (a path, a socket name) is what errors will call this input.
    ///
    /// # Errors
    /// The input is empty, not an Avro object container, has a truncated or malformed header
    /// (its `avro.schema` not a valid Avro schema included) or an unsupported codec, or its
    /// writer schema is not `sysflow.SysFlow`.
    pub fn new(source: R, name: String) -> Result<Self, DecodeError> {
        let container = Container::open(source).map_err(|e| header_error(&name, e))?;
        let header = container.header();
        let (schema_json, schema_at) =
            schema_text(header).map_err(|problem| DecodeError::Header {
                file: name.clone(),
                problem,
            })?;
        let decoder = SysFlowDecoder::parse(&schema_json).map_err(|e| match e {
            SchemaError::NotJson(reason) => DecodeError::Header {
                file: name.clone(),
                problem: HeaderError::Malformed {
                    at: schema_at,
                    reason: format!("avro.schema is not JSON: {reason}"),
                },
            },
            SchemaError::Invalid(reason) => DecodeError::Header {
                file: name.clone(),
                problem: HeaderError::Malformed {
                    at: schema_at,
                    reason: format!("avro.schema is not a valid Avro schema: {reason}"),
                },
            },
            SchemaError::NotSysFlow(reason) => DecodeError::NotSysFlow {
                file: name.clone(),
                reason,
                offset: schema_at,
            },
        })?;
        let file = TraceFile {
            codec: header.codec.name(),
            header_len: header.len,
            schema_json,
            branches: decoder.branches().clone(),
            unresolved: decoder.unresolved().to_vec(),
            name: name.into(),
        };
        Ok(TraceReader {
            block_offset: file.header_len,
            file,
            container,
            decoder,
            block: CurrentBlock::default(),
            next_record: 0,
            data_bytes: 0,
            skipped: Skipped::default(),
            done: false,
        })
    }

    /// The trace: name, codec, writer schema, branch table, unresolved fields.
    pub fn file(&self) -> &TraceFile {
        &self.file
    }

    /// The decoder built for the file's writer schema.
    pub fn decoder(&self) -> &SysFlowDecoder {
        &self.decoder
    }

    /// Number of datums read or skipped so far (decoded or not; the records of a skipped block
    /// are counted when its count could be read), which is also the index of the next one.
    pub fn records_read(&self) -> u64 {
        self.next_record
    }

    /// Number of bytes of the input consumed so far: the header and every block read or
    /// skipped.
    pub fn bytes_read(&self) -> u64 {
        self.container.offset()
    }

    /// Bytes of Avro datum data in the sound blocks read so far (inflated, for `deflate`).
    pub fn block_bytes_read(&self) -> u64 {
        self.data_bytes
    }

    /// What was skipped so far.
    pub fn skipped(&self) -> Skipped {
        self.skipped
    }

    /// Whether every datum of the current block has been returned: the next call to `next`
    /// reads from the input, and may wait for it (a FIFO, a file still being written). A
    /// driver makes what it delivered visible then.
    pub fn block_done(&self) -> bool {
        self.block.left == 0
    }

    fn position_of(&self, record: u64) -> Position {
        Position {
            source: Arc::clone(&self.file.name),
            record,
            block_offset: Some(self.block_offset),
        }
    }

    /// Ends the current block after a problem with its data: its remaining datums are
    /// skipped.
    fn abandon_block(&mut self, problem: DataProblem) -> DecodeError {
        let at = self.position_of(self.next_record);
        let left = self.block.left;
        self.skipped.records += left;
        self.next_record += left;
        self.block.left = 0;
        self.block.cursor = self.block.data.len();
        DecodeError::BlockData { at, problem }
    }

    /// The next datum of the current block, or `None` when the block is used up.
    #[inline]
    fn next_in_block(&mut self) -> Option<Result<Record, DecodeError>> {
        let block = &mut self.block;
        if block.left == 0 {
            let trailing = block.data.len().saturating_sub(block.cursor);
            block.cursor = block.data.len();
            if trailing > 0 {
                let problem = DataProblem::Trailing {
                    bytes: trailing as u64,
                    count: block.count,
                };
                return Some(Err(self.abandon_block(problem)));
            }
            return None;
        }
        if block.cursor >= block.data.len() {
            let problem = DataProblem::Short {
                decoded: block.count - block.left,
                count: block.count,
            };
            return Some(Err(self.abandon_block(problem)));
        }
        let mut pos = block.cursor;
        match self.decoder.decode_datum(&block.data, &mut pos) {
            Ok(record) => {
                block.cursor = pos;
                block.left -= 1;
                self.next_record += 1;
                Some(Ok(record))
            }
            Err(e) => Some(Err(self.datum_error(e, pos))),
        }
    }

    /// What to report for a datum the decoder could not decode; `pos` is past it after a
    /// field problem.
    #[cold]
    fn datum_error(&mut self, e: DatumError, pos: usize) -> DecodeError {
        if e.ends_block() {
            let problem = DataProblem::Undecodable {
                offset: e.datum_offset as u64,
                reason: datum_reason(&e).into(),
                left: self.block.left,
            };
            return self.abandon_block(problem);
        }
        // A datum the reader schema cannot take: skipped, the next one follows.
        self.block.cursor = pos;
        self.block.left -= 1;
        let at = self.position_of(self.next_record);
        self.next_record += 1;
        self.skipped.records += 1;
        match e.problem {
            DatumProblem::UnknownBranch { index, name } => {
                self.skipped.unknown_type += 1;
                DecodeError::UnknownBranch { at, index, name }
            }
            DatumProblem::Field(problem) => DecodeError::Field {
                at,
                record_type: e.record_type.unwrap_or_else(|| "?".into()),
                field: e.field.into(),
                problem,
            },
            // Every other problem ends the block (handled above).
            other => DecodeError::BlockData {
                at,
                problem: DataProblem::Undecodable {
                    offset: e.datum_offset as u64,
                    reason: other.to_string().into(),
                    left: 1,
                },
            },
        }
    }
}

/// The decoder's account of damaged data, for [`DataProblem::Undecodable`] (which gives the
/// datum's offset already): `FileFlow field "fileOID" at byte 8: truncated: ...`.
fn datum_reason(e: &DatumError) -> String {
    let mut out = String::new();
    if let Some(t) = &e.record_type {
        out.push_str(t);
        out.push(' ');
    }
    if !e.field.is_empty() {
        out.push_str(&format!("field \"{}\" ", e.field));
    }
    if e.offset != e.datum_offset || !out.is_empty() {
        out.push_str(&format!("at byte {}: ", e.offset));
    }
    out.push_str(&e.problem.to_string());
    out
}

impl<R: Read> Iterator for TraceReader<R> {
    type Item = Result<Record, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            if let Some(item) = self.next_in_block() {
                if item.is_err() {
                    self.skipped.errors += 1;
                }
                return Some(item);
            }
            match self.container.next_block(&mut self.block.data) {
                None => {
                    self.done = true;
                    return None;
                }
                Some(Ok(info)) => {
                    self.block_offset = info.offset;
                    self.block.cursor = 0;
                    self.block.left = info.count;
                    self.block.count = info.count;
                    self.data_bytes += self.block.data.len() as u64;
                }
                Some(Err(error)) => {
                    self.block_offset = error.offset;
                    self.block.cursor = self.block.data.len();
                    self.block.left = 0;
                    let records = error.recovery.records();
                    self.skipped.blocks += 1;
                    self.skipped.errors += 1;
                    match records {
                        Some(n) => self.skipped.records += n,
                        None => self.skipped.uncounted_blocks += 1,
                    }
                    let record = self.next_record;
                    self.next_record += records.unwrap_or(0);
                    if error.recovery.ends_input() {
                        self.done = true;
                    }
                    return Some(Err(DecodeError::Block {
                        file: Arc::clone(&self.file.name),
                        record,
                        error: Box::new(error),
                    }));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_error_stays_small() {
        // Result<Record, DecodeError> is returned per record; clippy's `result_large_err`
        // limit is 128 bytes.
        assert!(
            size_of::<DecodeError>() <= 128,
            "{}",
            size_of::<DecodeError>()
        );
    }

    #[test]
    fn a_trace_reader_can_move_to_another_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<TraceReader<BufReader<FsFile>>>();
    }
}
