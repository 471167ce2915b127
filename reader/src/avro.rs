//! Avro decoding of SysFlow traces, every schema version, into [`Record`]s.
//!
//! # How a trace is decoded
//!
//! A SysFlow trace file is an Avro object container file whose writer schema is the record
//! `sysflow.SysFlow { rec: union { SFHeader, Container, Process, ... } }`. The schema has changed
//! over the years (headers 1000/1001, 2, 3, 4, 5): the union's branches come in a different order,
//! records gained fields (`ip`, `filename`, `entry`, `cwd`, `env`, `podId`, `openFlags`, `fd`, ...),
//! and the earliest layout calls its process events `sysflow.flow.ProcessFlow`.
//!
//! So nothing here depends on positions. The container framing (header, blocks, sync markers,
//! deflate) is read by [`crate::container`], which locates and survives damage; each datum is
//! decoded with the file's **own writer schema** (`apache-avro`), and mapped onto the current
//! model **by name**:
//!
//! 1. Once per file, a [`BranchTable`] gives, for each branch of the `rec` union, the writer's
//!    record name and the [`RecordKind`] it maps to (simple name, namespace ignored; a
//!    `ProcessFlow` with the fields of a process event, `args` and no `endTs`, is a
//!    [`RecordKind::ProcessEvent`]).
//! 2. For each datum, the union index picks the branch, and one **mapping table** per record
//!    type (the functions in the "Mapping tables" section of this file, one line per model field)
//!    fills the model from the writer's fields by name. A line is either `f.req(NAME, CONVERT)`
//!    (a field every version has) or `f.or(NAME, CONVERT, DEFAULT)` (a field older versions lack,
//!    with the reference default: `ip` "NA", `filename` "", `entry` false, `podId` None, `cwd` "",
//!    `env` [], `openFlags` 0, `fd` 0). A renamed field is one entry: `f.req(["new", "old"], ..)`;
//!    a renamed enum symbol is one entry in `RENAMED_SYMBOLS`. Fields the model does not know are
//!    ignored.
//!
//! Conversions are lenient where it costs nothing and strict where it matters:
//! - timestamps are the raw `i64` whatever the declared logical type (`timestamp-millis` on
//!   fields that hold nanoseconds is a known quirk of old writers): every timestamp is
//!   nanoseconds;
//! - an `int` field accepts an Avro `long` that fits, a `long` field accepts an `int`;
//! - a value inside a union (`["null", T]`) is unwrapped where the model wants a plain `T`;
//! - enums are mapped by symbol name (never by index), FOIDs must be `fixed(20)`;
//! - `Process.exe` and `Process.exeArgs` are trimmed of surrounding white space, as the
//!   reference reader does (`strings.TrimSpace`);
//! - Pod `labels` and `selectors`: `apache-avro` decodes Avro maps into a `HashMap`, which loses
//!   the writer's order, so they are **sorted by key** (deterministic output).
//!
//! # Errors
//!
//! Every [`DecodeError`] names the input (file path or socket name) and where it is: the byte
//! offset in the file, and for a record its 0-based index in the input, the byte offset of its
//! Avro block, the writer's record name and the field, e.g.
//! `k8s.sf: record 812 (FileFlow, block at byte 33670): field "fileOID": expected fixed(20), found string`.
//! A record that cannot be mapped is reported and skipped: the records before and after it are
//! still delivered. A damaged block (truncated, wrong sync marker, corrupt size or deflate
//! data, undecodable datum) is reported and skipped, and reading goes on with the next sound
//! block; a truncated last block ends the file ([`DecodeError::ends_stream`]).
//! [`TraceReader::skipped`] counts what was skipped. Nothing here panics on any input, or
//! allocates more than the largest block allows; as a last line of defence, a panic inside the
//! Avro decoder is caught and reported as an undecodable datum.

use std::collections::HashMap;
use std::fmt;
use std::fs::File as FsFile;
use std::io::{self, BufReader, Read};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;

use apache_avro::headers::HeaderBuilder;
use apache_avro::schema::{Name, RecordSchema};
use apache_avro::types::Value;
use apache_avro::{GenericSingleObjectReader, Schema};
use sf_processor::model::{
    Container, ContainerType, File, FileEvent, FileFlow, Foid, K8sAction, K8sComponent, K8sEvent,
    NetworkEvent, NetworkFlow, ObjectState, Oid, Pod, Port, Process, ProcessEvent, ProcessFlow,
    Record, RecordKind, Service, SfHeader,
};

use crate::container::{BlockError, Container as AvroContainer, Header, HeaderError};
use crate::fast::{self, DatumProblem, SysFlowDecoder};
// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

/// What is known about a trace once its Avro header has been read.
#[derive(Debug, Clone)]
pub struct TraceFile {
    name: Arc<str>,
    codec: String,
    header_len: u64,
    writer_schema: Schema,
    branches: BranchTable,
}

impl TraceFile {
    /// The name of the input, as given to [`open`] (the path) or [`TraceReader::new`]; every
    /// error starts with it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Avro codec of the data blocks (`"deflate"`, `"null"`, ...), from the header's
    /// `avro.codec` metadata (`"null"` when absent).
    pub fn codec(&self) -> &str {
        &self.codec
    }

    /// Length of the Avro header in bytes (the first data block starts there).
    pub fn header_len(&self) -> u64 {
        self.header_len
    }

    /// The writer schema embedded in the file.
    pub fn writer_schema(&self) -> &Schema {
        &self.writer_schema
    }

    /// The branches of the writer's `rec` union and the record kind each maps to.
    pub fn branches(&self) -> &BranchTable {
        &self.branches
    }
}

/// One branch of the `rec` union of a writer's `sysflow.SysFlow` schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Branch {
    /// The writer's full record name, e.g. `sysflow.flow.FileFlow` (or the Avro type for a
    /// branch that is not a record, e.g. `string`).
    pub name: String,
    /// The model record type this branch maps to; `None` for a branch this reader does not know
    /// (a datum of it is reported as [`DecodeError::UnknownBranch`]).
    pub kind: Option<RecordKind>,
}

impl Branch {
    /// The record name without its namespace (`FileFlow`), as errors print it.
    pub fn simple_name(&self) -> &str {
        self.name.rsplit('.').next().unwrap_or(&self.name)
    }
}

/// The branches of the `rec` union of one writer schema, in union order: maps the union index
/// of a datum to the record type to decode. Built once per file (or per socket connection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchTable {
    branches: Vec<Branch>,
}

impl BranchTable {
    /// Builds the table from a writer schema, which must be the record `sysflow.SysFlow` with a
    /// field `rec` that is a union. On error, says why the schema is not a SysFlow schema.
    pub fn from_schema(schema: &Schema) -> Result<Self, String> {
        let Schema::Record(top) = schema else {
            return Err(format!(
                "the writer schema is {}, not the record sysflow.SysFlow",
                schema_kind(schema)
            ));
        };
        let namespace_ok = top
            .name
            .namespace
            .as_deref()
            .is_none_or(|ns| ns == "sysflow");
        if top.name.name != "SysFlow" || !namespace_ok {
            return Err(format!(
                "the writer schema is the record {}, not sysflow.SysFlow",
                top.name.fullname(None)
            ));
        }
        let Some(rec) = top.fields.iter().find(|f| f.name == "rec") else {
            return Err("the record sysflow.SysFlow has no field `rec`".to_owned());
        };
        let Schema::Union(union) = &rec.schema else {
            return Err(format!(
                "field `rec` of sysflow.SysFlow is {}, not a union",
                schema_kind(&rec.schema)
            ));
        };
        let mut definitions = HashMap::new();
        collect_records(schema, &mut definitions);
        let branches = union
            .variants()
            .iter()
            .map(|variant| match variant {
                Schema::Record(record) => classify(&record.name, Some(record)),
                Schema::Ref { name } => {
                    classify(name, definitions.get(&name.fullname(None)).copied())
                }
                other => Branch {
                    name: schema_kind(other),
                    kind: None,
                },
            })
            .collect();
        Ok(BranchTable { branches })
    }

    /// The branch at a union index.
    pub fn get(&self, index: u32) -> Option<&Branch> {
        self.branches.get(usize::try_from(index).ok()?)
    }

    /// Every branch, in union order.
    pub fn branches(&self) -> &[Branch] {
        &self.branches
    }
}

/// Opens `path` and reads its Avro header + writer schema.
///
/// Errors name the path: the file cannot be opened, is empty, is not an Avro object container
/// file, has a truncated or malformed header or an unsupported codec, or is an Avro file whose
/// schema is not `sysflow.SysFlow`.
pub fn open(path: &Path) -> Result<TraceReader<BufReader<FsFile>>, DecodeError> {
    let name = path.display().to_string();
    let file = FsFile::open(path).map_err(|source| DecodeError::Open {
        file: name.clone(),
        source,
    })?;
    TraceReader::new(BufReader::new(file), name)
}

/// Which datum decoder a [`TraceReader`] uses on the blocks [`crate::container`] frames. Both
/// give the same records and the same errors on well-formed blocks (the tests check it on
/// every shared trace); they differ only in the reason given for damaged data inside a block.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Decoder {
    /// [`crate::fast::SysFlowDecoder`], built once per file from its writer schema: the
    /// reader process's decoder.
    #[default]
    Fast,
    /// `apache-avro`'s generic reader and the mapping tables of this module: the reference
    /// the fast decoder is checked against.
    Avro,
}

impl Decoder {
    /// `"fast"` or `"avro"`.
    pub fn name(self) -> &'static str {
        match self {
            Decoder::Fast => "fast",
            Decoder::Avro => "avro",
        }
    }
}

impl std::str::FromStr for Decoder {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fast" => Ok(Decoder::Fast),
            "avro" => Ok(Decoder::Avro),
            other => Err(format!("unknown decoder {other:?} (fast or avro)")),
        }
    }
}

/// [`open`] with the datum decoder `decoder`: same framing, header checks and errors.
///
/// # Errors
/// As [`open`]; with [`Decoder::Fast`], also a writer schema the fast decoder cannot plan
/// ([`DecodeError::NotSysFlow`]).
pub fn open_with(
    path: &Path,
    decoder: Decoder,
) -> Result<TraceReader<BufReader<FsFile>>, DecodeError> {
    let name = path.display().to_string();
    let file = FsFile::open(path).map_err(|source| DecodeError::Open {
        file: name.clone(),
        source,
    })?;
    // container.rs reads 64 KiB at a time: a smaller buffer is bypassed (no extra copy).
    TraceReader::with_decoder(BufReader::new(file), name, decoder)
}

/// What a [`TraceReader`] has skipped so far: damaged blocks and records it could not deliver.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Skipped {
    /// Blocks skipped whole (truncated, wrong sync marker, corrupt size or compressed data).
    pub blocks: u64,
    /// Of those, the blocks whose record count could not be read.
    pub uncounted_blocks: u64,
    /// Records not delivered, as far as counts tell: those of skipped blocks, the rest of a
    /// block after an undecodable datum, and single records that could not be mapped.
    pub records: u64,
    /// Of those, records of a union branch this reader does not know.
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
/// Yields `Ok(record)` per datum, in file order. A datum that cannot be mapped yields an `Err`
/// and the iteration goes on with the next datum. A damaged block (truncated, wrong sync
/// marker, corrupt size or compressed data, undecodable datum) yields one `Err` naming its byte
/// offset, after every record before the damage, and the iteration goes on with the next
/// sound block (see [`crate::container`]); an error that ends the input
/// ([`DecodeError::ends_stream`]) is the last item. [`TraceReader::skipped`] counts what was
/// skipped.
pub struct TraceReader<R: Read> {
    file: TraceFile,
    container: AvroContainer<R>,
    datums: Datums,
    block: CurrentBlock,
    /// Index of the next datum in the input (the datums of skipped blocks counted, when their
    /// count is known).
    next_record: u64,
    /// Byte offset of the current block.
    block_offset: u64,
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

/// The datum decoder of a [`TraceReader`].
enum Datums {
    Avro(Box<GenericSingleObjectReader>),
    Fast(SysFlowDecoder),
}

/// The datum reader's "single object" header: none (container datums carry no header).
struct NoHeader;

impl HeaderBuilder for NoHeader {
    fn build_header(&self) -> Vec<u8> {
        Vec::new()
    }
}

impl<R: Read> TraceReader<R> {
    /// Reads the Avro header and writer schema from `source`; `name` (a path, a socket name)
    /// is what errors will call this input.
    ///
    /// # Errors
    /// The input is empty, not an Avro object container, has a truncated or malformed header
    /// or an unsupported codec, or its writer schema is not `sysflow.SysFlow`.
    pub fn new(source: R, name: String) -> Result<Self, DecodeError> {
        Self::with_decoder(source, name, Decoder::Avro)
    }

    /// [`TraceReader::new`] with the datum decoder `decoder`. The header is checked the same
    /// way whatever the decoder (so a file is refused with the same message by both).
    ///
    /// # Errors
    /// As [`TraceReader::new`]; with [`Decoder::Fast`], also a writer schema the fast decoder
    /// cannot plan ([`DecodeError::NotSysFlow`]).
    pub fn with_decoder(source: R, name: String, decoder: Decoder) -> Result<Self, DecodeError> {
        limit_allocations();
        let container = AvroContainer::open(source).map_err(|e| header_error(&name, e))?;
        let header = container.header();
        let (writer_schema, schema_at) =
            writer_schema(header).map_err(|problem| DecodeError::Header {
                file: name.clone(),
                problem,
            })?;
        let not_sysflow = |reason: String| DecodeError::NotSysFlow {
            file: name.clone(),
            reason,
            offset: schema_at,
        };
        let branches = BranchTable::from_schema(&writer_schema).map_err(not_sysflow)?;
        if let Some(path) = zero_size_array(&writer_schema) {
            return Err(not_sysflow(format!(
                "arrays of items that take no bytes ({path}) are not SysFlow"
            )));
        }
        let datums =
            GenericSingleObjectReader::new_with_header_builder(writer_schema.clone(), NoHeader)
                .map_err(|e| not_sysflow(format!("the writer schema cannot be resolved: {e}")))?;
        let datums = match decoder {
            Decoder::Avro => Datums::Avro(Box::new(datums)),
            Decoder::Fast => {
                let json = header
                    .get("avro.schema")
                    .and_then(|entry| std::str::from_utf8(&entry.value).ok())
                    .unwrap_or_default();
                let fast = SysFlowDecoder::from_schema_json(json).map_err(|e| {
                    not_sysflow(format!("the fast decoder cannot plan the schema: {e}"))
                })?;
                Datums::Fast(fast)
            }
        };
        let file = TraceFile {
            codec: header.codec.name().to_owned(),
            header_len: header.len,
            writer_schema,
            branches,
            name: name.into(),
        };
        Ok(TraceReader {
            block_offset: file.header_len,
            file,
            container,
            datums,
            block: CurrentBlock::default(),
            next_record: 0,
            skipped: Skipped::default(),
            done: false,
        })
    }

    /// The trace: name, codec, writer schema, branch table.
    pub fn file(&self) -> &TraceFile {
        &self.file
    }

    /// Number of datums read or skipped so far (mapped or not; the records of a skipped block
    /// are counted when its count could be read), which is also the index of the next one.
    pub fn records_read(&self) -> u64 {
        self.next_record
    }

    /// Number of bytes of the input consumed so far: the header and every block read or
    /// skipped.
    pub fn bytes_read(&self) -> u64 {
        self.container.offset()
    }

    /// What was skipped so far.
    pub fn skipped(&self) -> Skipped {
        self.skipped
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

    /// Whether every datum of the current block has been returned: the next call to `next`
    /// reads from the input, and may wait for it (a FIFO, a file still being written). A
    /// driver makes what it delivered visible then.
    pub fn block_done(&self) -> bool {
        self.block.left == 0
    }

    /// The next datum of the current block, or `None` when the block is used up.
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
        let rest = block.data.get(block.cursor..).unwrap_or_default();
        if rest.is_empty() {
            let problem = DataProblem::Short {
                decoded: block.count - block.left,
                count: block.count,
            };
            return Some(Err(self.abandon_block(problem)));
        }
        let datums = match &self.datums {
            Datums::Avro(datums) => datums,
            Datums::Fast(fast) => {
                let mut pos = block.cursor;
                let decoded = fast.decode_datum(&block.data, &mut pos);
                return Some(self.fast_outcome(decoded, pos));
            }
        };
        let mut slice = rest;
        let decoded = catch_unwind(AssertUnwindSafe(|| datums.read_value(&mut slice)));
        let consumed = rest.len() - slice.len();
        let offset = block.cursor as u64;
        let value = match decoded {
            Ok(Ok(value)) if consumed > 0 => value,
            Ok(Ok(_)) => {
                let problem = DataProblem::Undecodable {
                    offset,
                    reason: "a datum that takes no bytes".into(),
                    left: block.left,
                };
                return Some(Err(self.abandon_block(problem)));
            }
            Ok(Err(e)) => {
                let problem = DataProblem::Undecodable {
                    offset,
                    reason: e.to_string().into(),
                    left: block.left,
                };
                return Some(Err(self.abandon_block(problem)));
            }
            Err(panic) => {
                let problem = DataProblem::Undecodable {
                    offset,
                    reason: format!(
                        "the Avro decoder panicked: {}",
                        panic_message(panic.as_ref())
                    )
                    .into(),
                    left: block.left,
                };
                return Some(Err(self.abandon_block(problem)));
            }
        };
        block.cursor += consumed;
        block.left -= 1;
        let record = self.next_record;
        self.next_record += 1;
        match datum_to_record(value, &self.file.branches) {
            Ok(record) => Some(Ok(record)),
            Err(e) => {
                self.skipped.records += 1;
                if matches!(e, DatumError::UnknownBranch { .. }) {
                    self.skipped.unknown_type += 1;
                }
                Some(Err(e.at(self.position_of(record))))
            }
        }
    }
}

impl<R: Read> TraceReader<R> {
    /// What the fast decoder gave for the datum at the block's cursor, which ends at `pos`.
    fn fast_outcome(
        &mut self,
        decoded: Result<Record, fast::DatumError>,
        pos: usize,
    ) -> Result<Record, DecodeError> {
        let error = match decoded {
            Ok(record) => {
                self.block.cursor = pos;
                self.block.left -= 1;
                self.next_record += 1;
                return Ok(record);
            }
            Err(e) if e.ends_block() => {
                let problem = DataProblem::Undecodable {
                    offset: e.datum_offset as u64,
                    reason: fast_reason(&e).into(),
                    left: self.block.left,
                };
                return Err(self.abandon_block(problem));
            }
            Err(e) => e,
        };
        // A datum that does not map onto the model: skipped, the next one follows.
        self.block.cursor = pos;
        self.block.left -= 1;
        let at = self.position_of(self.next_record);
        self.next_record += 1;
        self.skipped.records += 1;
        Err(match error.problem {
            DatumProblem::UnknownBranch { index, name } => {
                self.skipped.unknown_type += 1;
                DecodeError::UnknownBranch { at, index, name }
            }
            DatumProblem::Field(problem) => DecodeError::Field {
                at,
                record_type: error.record_type.unwrap_or_else(|| "?".into()),
                field: error.field.into(),
                problem,
            },
            other => DecodeError::Datum {
                at,
                reason: other.to_string(),
            },
        })
    }
}

/// The fast decoder's account of damaged data, for [`DataProblem::Undecodable`] (which gives
/// the datum's offset already): `FileFlow field "fileOID" at byte 8: truncated: ...`.
fn fast_reason(e: &fast::DatumError) -> String {
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
/// Converts one datum (a `sysflow.SysFlow` Value) given the branch table — usable later by a
/// socket driver that receives one Avro datum per message.
///
/// `source` and `record` (the datum's 0-based index in its input) only serve to name the datum
/// in errors.
pub fn record_from_value(
    value: Value,
    branches: &BranchTable,
    source: &str,
    record: u64,
) -> Result<Record, DecodeError> {
    datum_to_record(value, branches).map_err(|e| {
        e.at(Position {
            source: source.into(),
            record,
            block_offset: None,
        })
    })
}

/// Where a datum is: its input, its index and, for files, its Avro block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The input's name (file path or socket name).
    pub source: Arc<str>,
    /// 0-based index of the datum in the input.
    pub record: u64,
    /// Byte offset of the Avro block the datum is in (files only).
    pub block_offset: Option<u64>,
}

impl Position {
    /// `" (FileFlow, block at byte 42)"`, `" (FileFlow)"`, `" (block at byte 42)"` or `""`.
    fn note(&self, record_type: Option<&str>) -> String {
        match (record_type, self.block_offset) {
            (Some(t), Some(offset)) => format!(" ({t}, block at byte {offset})"),
            (Some(t), None) => format!(" ({t})"),
            (None, Some(offset)) => format!(" (block at byte {offset})"),
            (None, None) => String::new(),
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: record {}{}",
            self.source,
            self.record,
            self.note(None)
        )
    }
}

/// What is wrong with one field of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldProblem {
    /// The writer's record lacks a field that every SysFlow version has.
    Missing,
    /// The value has another Avro type than the model needs.
    WrongType {
        /// The type the model needs, e.g. `fixed(20)`.
        expected: &'static str,
        /// The type found, e.g. `string`.
        found: String,
    },
    /// An enum symbol the model does not know.
    UnknownSymbol {
        /// The schema's enum name, e.g. `ContainerType`.
        enum_name: &'static str,
        /// The symbol found.
        symbol: String,
    },
    /// A number that does not fit the model's type.
    OutOfRange {
        /// The model's type, e.g. `int`.
        expected: &'static str,
        /// The value found.
        value: i64,
    },
}

impl fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldProblem::Missing => f.write_str("missing from the writer's record"),
            FieldProblem::WrongType { expected, found } => {
                write!(f, "expected {expected}, found {found}")
            }
            FieldProblem::UnknownSymbol { enum_name, symbol } => {
                write!(f, "unknown {enum_name} symbol {symbol:?}")
            }
            FieldProblem::OutOfRange { expected, value } => {
                write!(f, "{value} does not fit in {expected}")
            }
        }
    }
}
/// What is wrong with the data of a sound block (its framing checked out).
#[derive(Debug)]
pub enum DataProblem {
    /// A datum does not decode with the writer schema; the block's remaining datums (this one
    /// included) are skipped.
    Undecodable {
        /// Byte offset of the datum in the block's inflated data.
        offset: u64,
        /// The Avro decoder's message.
        reason: Box<str>,
        /// Datums skipped, this one included.
        left: u64,
    },
    /// The data ends before the block's count of datums.
    Short {
        /// Datums decoded.
        decoded: u64,
        /// The block's count.
        count: u64,
    },
    /// Bytes follow the block's last datum (its count may be too small).
    Trailing {
        /// Bytes left over.
        bytes: u64,
        /// The block's count.
        count: u64,
    },
}

impl fmt::Display for DataProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataProblem::Undecodable {
                offset,
                reason,
                left,
            } => write!(
                f,
                "undecodable datum at byte {offset} of the block's data: {reason}; {} skipped",
                plural(*left, "record of the block", "records of the block")
            ),
            DataProblem::Short { decoded, count } => write!(
                f,
                "the block's data ends after {decoded} of its {count} records; {} skipped",
                plural(count.saturating_sub(*decoded), "record", "records")
            ),
            DataProblem::Trailing { bytes, count } => write!(
                f,
                "{} of data left after the block's {} (ignored)",
                plural(*bytes, "byte", "bytes"),
                plural(*count, "record", "records")
            ),
        }
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// An error decoding a SysFlow input. Every variant names the input and, for a file, the byte
/// offset of the problem; see [`DecodeError::ends_stream`] for which ones end it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The file cannot be opened.
    #[error("{file}: cannot open: {source}")]
    Open {
        /// The path.
        file: String,
        /// The system error.
        source: io::Error,
    },
    /// The input is empty.
    #[error("{file}: empty file (not an Avro object container file)")]
    Empty {
        /// The input's name.
        file: String,
    },
    /// The input does not start with the Avro magic `Obj\x01`.
    #[error(
        "{file}: not an Avro object container file (wrong magic at byte 0: found \"{}\", expected \"Obj\\x01\")",
        .found.escape_ascii()
    )]
    BadMagic {
        /// The input's name.
        file: String,
        /// Its first bytes (up to four).
        found: Vec<u8>,
    },
    /// The Avro header is truncated or malformed, or its schema is not a valid Avro schema.
    #[error("{file}: bad Avro header: {problem}")]
    Header {
        /// The input's name.
        file: String,
        /// What is wrong, and where.
        problem: HeaderError,
    },
    /// The blocks use a codec this reader does not decode.
    #[error(
        "{file}: unsupported Avro codec \"{}\" (avro.codec at byte {offset}); this reader decodes null and deflate",
        .codec.escape_debug()
    )]
    UnsupportedCodec {
        /// The input's name.
        file: String,
        /// The codec's name.
        codec: String,
        /// Byte offset of the `avro.codec` value in the header.
        offset: u64,
    },
    /// A valid Avro file whose writer schema is not `sysflow.SysFlow` with a `rec` union.
    #[error("{file}: not a SysFlow trace: {reason} (writer schema at byte {offset})")]
    NotSysFlow {
        /// The input's name.
        file: String,
        /// What is wrong with the schema.
        reason: String,
        /// Byte offset of the `avro.schema` value in the header.
        offset: u64,
    },
    /// A damaged block (truncated, wrong sync marker, corrupt size or compressed data): it is
    /// skipped, and reading goes on after the next sync marker unless the damage ends the file.
    #[error("{file}: {error}")]
    Block {
        /// The input's name.
        file: Arc<str>,
        /// Index of the block's first record in the input.
        record: u64,
        /// The block's offset, the problem and what reading did.
        error: Box<BlockError>,
    },
    /// The data of a block does not hold the datums its count says; the rest of the block is
    /// skipped.
    #[error("{at}: {problem}")]
    BlockData {
        /// The first datum affected.
        at: Position,
        /// What is wrong.
        problem: DataProblem,
    },
    /// The datum is of a union branch that is not a SysFlow record type this reader knows.
    #[error(
        "{}: record {}{}: unknown record type {name} (branch {index} of the rec union); skipped",
        .at.source, .at.record, .at.note(None)
    )]
    UnknownBranch {
        /// Where.
        at: Position,
        /// The union index.
        index: u32,
        /// The writer's name of the branch.
        name: String,
    },
    /// The datum is not a `sysflow.SysFlow` record (possible only with [`record_from_value`]
    /// given a value of another schema).
    #[error("{at}: not a sysflow.SysFlow datum: {reason}")]
    Datum {
        /// Where.
        at: Position,
        /// What is wrong.
        reason: String,
    },
    /// A field of the record cannot be mapped onto the model.
    #[error(
        "{}: record {}{}: field \"{field}\": {problem}",
        .at.source, .at.record, .at.note(Some(record_type))
    )]
    Field {
        /// Where.
        at: Position,
        /// The writer's record name, without namespace (`FileFlow`).
        record_type: Arc<str>,
        /// The field, with its path inside nested records and arrays
        /// (`procOID.createTS`, `services[0].portList[1].port`).
        field: Arc<str>,
        /// What is wrong.
        problem: FieldProblem,
    },
}

impl DecodeError {
    /// Whether the input cannot be read any further after this error: it could not be opened,
    /// is not a SysFlow Avro file, or a damaged block ended it. After the other errors, which
    /// concern one block or one record, the iteration goes on.
    pub fn ends_stream(&self) -> bool {
        match self {
            DecodeError::Block { error, .. } => error.recovery.ends_input(),
            DecodeError::BlockData { .. }
            | DecodeError::UnknownBranch { .. }
            | DecodeError::Datum { .. }
            | DecodeError::Field { .. } => false,
            _ => true,
        }
    }

    /// Why a file was rejected at open, in a few words for a summary line:
    /// `empty file`, `not an Avro file (wrong magic at byte 0)`, `not a SysFlow trace`, ...
    pub fn brief(&self) -> String {
        match self {
            DecodeError::Open { source, .. } => format!("cannot open ({source})"),
            DecodeError::Empty { .. } => "empty file".to_owned(),
            DecodeError::BadMagic { .. } => "not an Avro file (wrong magic at byte 0)".to_owned(),
            DecodeError::Header {
                problem: HeaderError::Truncated { end },
                ..
            } => format!("truncated Avro header ({})", plural(*end, "byte", "bytes")),
            DecodeError::Header { .. } => "bad Avro header".to_owned(),
            DecodeError::UnsupportedCodec { codec, .. } => {
                format!("unsupported Avro codec \"{}\"", codec.escape_debug())
            }
            DecodeError::NotSysFlow { .. } => "not a SysFlow trace".to_owned(),
            DecodeError::Block { error, .. } => format!("damaged block at byte {}", error.offset),
            DecodeError::BlockData { at, .. } => {
                format!("damaged block at byte {}", at.block_offset.unwrap_or(0))
            }
            DecodeError::UnknownBranch { name, .. } => format!("unknown record type {name}"),
            DecodeError::Datum { .. } | DecodeError::Field { .. } => {
                "record that does not map to the model".to_owned()
            }
        }
    }
}
// ---------------------------------------------------------------------------------------------
// Header and schema
// ---------------------------------------------------------------------------------------------

/// Longest length prefix (string or bytes length, array or map block count) the Avro decoder
/// accepts in a datum: 4 MiB. The collector cannot write a longer string (Linux caps a
/// command line at 2 MiB); a corrupt length fails instead of allocating, and a corrupt
/// array count reserves at most 4 Mi values (untouched virtual memory, ~200 MiB) rather than
/// the 512 Mi of apache-avro's default, which could exhaust the address space of a small
/// machine and abort the process.
pub const MAX_DATUM_LENGTH: usize = 4 << 20;

/// Sets [`MAX_DATUM_LENGTH`] as apache-avro's allocation limit (process-wide, taken once).
fn limit_allocations() {
    apache_avro::util::max_allocation_bytes(MAX_DATUM_LENGTH);
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

/// The writer schema of a container (`avro.schema`) and the byte offset of its JSON.
fn writer_schema(header: &Header) -> Result<(Schema, u64), HeaderError> {
    let Some(entry) = header.get("avro.schema") else {
        return Err(HeaderError::Malformed {
            at: 4,
            reason: "the metadata has no avro.schema".to_owned(),
        });
    };
    let malformed = |reason: String| HeaderError::Malformed {
        at: entry.offset,
        reason,
    };
    let json: serde_json::Value = serde_json::from_slice(&entry.value)
        .map_err(|e| malformed(format!("avro.schema is not JSON: {e}")))?;
    check_names(&json).map_err(malformed)?;
    let schema = catch_unwind(AssertUnwindSafe(|| Schema::parse(&json)))
        .map_err(|panic| {
            malformed(format!(
                "the Avro schema parser panicked on avro.schema: {}",
                panic_message(panic.as_ref())
            ))
        })?
        .map_err(|e| malformed(format!("avro.schema is not a valid Avro schema: {e}")))?;
    Ok((schema, entry.offset))
}

/// Checks every `name`, `namespace` and `aliases` entry of a schema's JSON before apache-avro
/// parses it: its parser panics (an `unwrap`) on some invalid names instead of returning an
/// error (found by fuzzing; apache-avro 0.21, `Name::parse`, `get_schema_type_name`,
/// aliases). Names must be dotted identifiers (`[A-Za-z_][A-Za-z0-9_]*`), as the Avro
/// specification requires.
fn check_names(json: &serde_json::Value) -> Result<(), String> {
    fn identifier(s: &str) -> bool {
        let mut chars = s.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    }
    fn fullname(s: &str) -> bool {
        let s = s.strip_prefix('.').unwrap_or(s);
        s.split('.').all(identifier)
    }
    let bad = |what: &str, s: &str| {
        Err(format!(
            "avro.schema has an invalid {what} \"{}\"",
            s.escape_debug()
        ))
    };
    match json {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("name", serde_json::Value::String(s)) if !fullname(s) => {
                        return bad("name", s);
                    }
                    ("namespace", serde_json::Value::String(s))
                        if !s.is_empty() && !fullname(s) =>
                    {
                        return bad("namespace", s);
                    }
                    ("aliases", serde_json::Value::Array(aliases)) => {
                        for alias in aliases {
                            if let serde_json::Value::String(s) = alias
                                && !fullname(s)
                            {
                                return bad("alias", s);
                            }
                        }
                    }
                    _ => check_names(value)?,
                }
            }
            Ok(())
        }
        serde_json::Value::Array(items) => items.iter().try_for_each(check_names),
        _ => Ok(()),
    }
}

/// The path of an array whose items may encode to no byte at all (`null`, an empty record):
/// a few bytes of such data would decode to millions of values, so such a schema is refused.
fn zero_size_array(schema: &Schema) -> Option<String> {
    let mut definitions = HashMap::new();
    collect_records(schema, &mut definitions);
    let mut path = Vec::new();
    find_zero_size_array(schema, &definitions, &mut path, 0)
}

fn find_zero_size_array(
    schema: &Schema,
    defs: &HashMap<String, &RecordSchema>,
    path: &mut Vec<String>,
    depth: usize,
) -> Option<String> {
    if depth > 64 {
        return None;
    }
    match schema {
        Schema::Array(array) => {
            if min_size(&array.items, defs, 0) == 0 {
                return Some(path.join("."));
            }
            find_zero_size_array(&array.items, defs, path, depth + 1)
        }
        Schema::Map(map) => find_zero_size_array(&map.types, defs, path, depth + 1),
        Schema::Union(union) => union
            .variants()
            .iter()
            .find_map(|v| find_zero_size_array(v, defs, path, depth + 1)),
        Schema::Record(record) => record.fields.iter().find_map(|field| {
            path.push(field.name.clone());
            let found = find_zero_size_array(&field.schema, defs, path, depth + 1);
            path.pop();
            found
        }),
        _ => None,
    }
}

/// The fewest bytes a value of `schema` takes (named references followed to a small depth).
fn min_size(schema: &Schema, defs: &HashMap<String, &RecordSchema>, depth: usize) -> u64 {
    if depth > 64 {
        return 1;
    }
    match schema {
        Schema::Null => 0,
        Schema::Record(record) => record
            .fields
            .iter()
            .map(|f| min_size(&f.schema, defs, depth + 1))
            .fold(0, u64::saturating_add),
        Schema::Ref { name } => defs.get(&name.fullname(None)).map_or(1, |record| {
            record
                .fields
                .iter()
                .map(|f| min_size(&f.schema, defs, depth + 1))
                .fold(0, u64::saturating_add)
        }),
        Schema::Fixed(fixed) => fixed.size as u64,
        _ => 1,
    }
}
fn collect_records<'s>(schema: &'s Schema, out: &mut HashMap<String, &'s RecordSchema>) {
    match schema {
        Schema::Record(record) => {
            out.insert(record.name.fullname(None), record);
            for field in &record.fields {
                collect_records(&field.schema, out);
            }
        }
        Schema::Array(array) => collect_records(&array.items, out),
        Schema::Map(map) => collect_records(&map.types, out),
        Schema::Union(union) => {
            for variant in union.variants() {
                collect_records(variant, out);
            }
        }
        _ => {}
    }
}

/// The record kind of a union branch, by the writer's record name (namespace ignored: the
/// names are [`RecordKind::name`]s), with the one layout quirk known: the earliest writers
/// (header 1000) name their process events `sysflow.flow.ProcessFlow` (fields `args`, `ret`,
/// no `endTs`).
fn classify(name: &Name, definition: Option<&RecordSchema>) -> Branch {
    let has = |field: &str| definition.is_some_and(|r| r.fields.iter().any(|f| f.name == field));
    let kind = match RecordKind::from_name(&name.name) {
        Some(RecordKind::ProcessFlow) if has("args") && !has("endTs") => {
            Some(RecordKind::ProcessEvent)
        }
        kind => kind,
    };
    Branch {
        name: name.fullname(None),
        kind,
    }
}

fn schema_kind(schema: &Schema) -> String {
    match schema {
        Schema::Record(r) => format!("record {}", r.name.fullname(None)),
        Schema::Enum(e) => format!("enum {}", e.name.fullname(None)),
        Schema::Fixed(f) => format!("fixed {}", f.name.fullname(None)),
        Schema::Ref { name } => name.fullname(None),
        Schema::Array(_) => "array".to_owned(),
        Schema::Map(_) => "map".to_owned(),
        Schema::Union(_) => "union".to_owned(),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_owned()
    }
}

// ---------------------------------------------------------------------------------------------
// Datum -> Record
// ---------------------------------------------------------------------------------------------

/// A datum error before it knows where it is.
enum DatumError {
    UnknownBranch { index: u32, name: String },
    Datum(String),
    Field { record_type: Arc<str>, bad: Bad },
}

impl DatumError {
    fn at(self, at: Position) -> DecodeError {
        match self {
            DatumError::UnknownBranch { index, name } => {
                DecodeError::UnknownBranch { at, index, name }
            }
            DatumError::Datum(reason) => DecodeError::Datum { at, reason },
            DatumError::Field { record_type, bad } => DecodeError::Field {
                at,
                record_type,
                field: bad.path.into(),
                problem: bad.problem,
            },
        }
    }
}

fn datum_to_record(value: Value, branches: &BranchTable) -> Result<Record, DatumError> {
    let Value::Record(fields) = value else {
        return Err(DatumError::Datum(format!(
            "expected a record, found {}",
            describe(&value)
        )));
    };
    let Some((_, rec)) = fields.into_iter().find(|(name, _)| name == "rec") else {
        return Err(DatumError::Datum(
            "the record has no field `rec`".to_owned(),
        ));
    };
    let Value::Union(index, inner) = rec else {
        return Err(DatumError::Datum(format!(
            "field `rec` is not a union but {}",
            describe(&rec)
        )));
    };
    let Some(branch) = branches.get(index) else {
        return Err(DatumError::Datum(format!(
            "union index {index} out of range ({} branches in the schema)",
            branches.branches.len()
        )));
    };
    let Some(kind) = branch.kind else {
        return Err(DatumError::UnknownBranch {
            index,
            name: branch.name.clone(),
        });
    };
    let field_error = |bad: Bad| DatumError::Field {
        record_type: branch.simple_name().into(),
        bad,
    };
    let Value::Record(fields) = *inner else {
        return Err(field_error(Bad::new(FieldProblem::WrongType {
            expected: "record",
            found: describe(&inner),
        })));
    };
    let mut f = Fields::new(fields);
    let record = match kind {
        RecordKind::Header => header(&mut f).map(Record::Header),
        RecordKind::Container => container(&mut f).map(Record::Container),
        RecordKind::Pod => pod(&mut f).map(Record::Pod),
        RecordKind::Process => process(&mut f).map(Record::Process),
        RecordKind::File => file(&mut f).map(Record::File),
        RecordKind::ProcessEvent => process_event(&mut f).map(Record::ProcessEvent),
        RecordKind::ProcessFlow => process_flow(&mut f).map(Record::ProcessFlow),
        RecordKind::FileFlow => file_flow(&mut f).map(Record::FileFlow),
        RecordKind::FileEvent => file_event(&mut f).map(Record::FileEvent),
        RecordKind::NetworkFlow => network_flow(&mut f).map(Record::NetworkFlow),
        RecordKind::NetworkEvent => network_event(&mut f).map(Record::NetworkEvent),
        RecordKind::K8sEvent => k8s_event(&mut f).map(Record::K8sEvent),
    };
    record.map_err(field_error)
}

// ---------------------------------------------------------------------------------------------
// Mapping tables: one per record type, one line per model field.
//   f.req(AVRO_NAME, CONVERT)          a field every schema version has;
//   f.or(AVRO_NAME, CONVERT, DEFAULT)  a field older versions lack, with the reference default.
// A renamed field: f.req(["newName", "oldName"], CONVERT).
// ---------------------------------------------------------------------------------------------

/// `sysflow.entity.SFHeader`.
fn header(f: &mut Fields) -> Conv<SfHeader> {
    Ok(SfHeader {
        version: f.req("version", long)?,
        exporter: f.req("exporter", string)?,
        ip: f.or("ip", string, "NA".to_owned())?, // schema 2+
        filename: f.or("filename", string, String::new())?, // schema 3+
    })
}

/// `sysflow.entity.Container`.
fn container(f: &mut Fields) -> Conv<Container> {
    Ok(Container {
        id: f.req("id", string)?,
        name: f.req("name", string)?,
        image: f.req("image", string)?,
        imageid: f.req("imageid", string)?,
        r#type: f.req("type", symbol::<ContainerType>)?,
        privileged: f.req("privileged", boolean)?,
        pod_id: f.or("podId", nullable(string), None)?, // schema 4+
    })
}

/// `sysflow.entity.Pod` (schema 4+).
fn pod(f: &mut Fields) -> Conv<Pod> {
    Ok(Pod {
        ts: f.req("ts", timestamp)?,
        id: f.req("id", string)?,
        name: f.req("name", string)?,
        node_name: f.req("nodeName", string)?,
        host_ip: f.req("hostIP", array(long))?,
        internal_ip: f.req("internalIP", array(long))?,
        namespace: f.req("namespace", string)?,
        restart_count: f.req("restartCount", long)?,
        labels: f.req("labels", string_map)?,
        selectors: f.req("selectors", string_map)?,
        services: f.req("services", array(record(service)))?,
    })
}

/// `sysflow.entity.Service`, inside a Pod.
fn service(f: &mut Fields) -> Conv<Service> {
    Ok(Service {
        name: f.req("name", string)?,
        id: f.req("id", string)?,
        namespace: f.req("namespace", string)?,
        port_list: f.req("portList", array(record(port)))?,
        cluster_ip: f.req("clusterIP", array(long))?,
    })
}

/// `sysflow.entity.Port`, inside a Service.
fn port(f: &mut Fields) -> Conv<Port> {
    Ok(Port {
        port: f.req("port", int)?,
        target_port: f.req("targetPort", int)?,
        node_port: f.req("nodePort", int)?,
        proto: f.req("proto", string)?,
    })
}

/// `sysflow.entity.Process`.
fn process(f: &mut Fields) -> Conv<Process> {
    Ok(Process {
        state: f.req("state", symbol::<ObjectState>)?,
        oid: f.req("oid", record(oid))?,
        poid: f.req("poid", nullable(record(oid)))?,
        ts: f.req("ts", timestamp)?,
        exe: f.req("exe", trimmed_string)?,
        exe_args: f.req("exeArgs", trimmed_string)?,
        uid: f.req("uid", int)?,
        user_name: f.req("userName", string)?,
        gid: f.req("gid", int)?,
        group_name: f.req("groupName", string)?,
        tty: f.req("tty", boolean)?,
        container_id: f.req("containerId", nullable(string))?,
        entry: f.or("entry", boolean, false)?,    // schema 2+
        cwd: f.or("cwd", string, String::new())?, // schema 5
        env: f.or("env", array(string), Vec::new())?, // schema 5
    })
}

/// `sysflow.type.OID`.
fn oid(f: &mut Fields) -> Conv<Oid> {
    Ok(Oid {
        create_ts: f.req("createTS", timestamp)?,
        hpid: f.req("hpid", long)?,
    })
}

/// `sysflow.entity.File`.
fn file(f: &mut Fields) -> Conv<File> {
    Ok(File {
        state: f.req("state", symbol::<ObjectState>)?,
        oid: f.req("oid", foid)?,
        ts: f.req("ts", timestamp)?,
        restype: f.req("restype", int)?,
        path: f.req("path", string)?,
        container_id: f.req("containerId", nullable(string))?,
    })
}

/// `sysflow.event.ProcessEvent`, and the earliest layout's `sysflow.flow.ProcessFlow` that has
/// the same fields.
fn process_event(f: &mut Fields) -> Conv<ProcessEvent> {
    Ok(ProcessEvent {
        proc_oid: f.req("procOID", record(oid))?,
        ts: f.req("ts", timestamp)?,
        tid: f.req("tid", long)?,
        op_flags: f.req("opFlags", int)?,
        args: f.req("args", array(string))?,
        ret: f.req("ret", int)?,
    })
}

/// `sysflow.flow.ProcessFlow` (schema 2+).
fn process_flow(f: &mut Fields) -> Conv<ProcessFlow> {
    Ok(ProcessFlow {
        proc_oid: f.req("procOID", record(oid))?,
        ts: f.req("ts", timestamp)?,
        num_threads_cloned: f.req("numThreadsCloned", long)?,
        op_flags: f.req("opFlags", int)?,
        end_ts: f.req("endTs", timestamp)?,
        num_threads_exited: f.req("numThreadsExited", long)?,
        num_clone_errors: f.req("numCloneErrors", long)?,
    })
}

/// `sysflow.flow.FileFlow`.
fn file_flow(f: &mut Fields) -> Conv<FileFlow> {
    Ok(FileFlow {
        proc_oid: f.req("procOID", record(oid))?,
        ts: f.req("ts", timestamp)?,
        tid: f.req("tid", long)?,
        op_flags: f.req("opFlags", int)?,
        open_flags: f.or("openFlags", int, 0)?, // not in the earliest layout
        end_ts: f.req("endTs", timestamp)?,
        file_oid: f.req("fileOID", foid)?,
        fd: f.req("fd", int)?,
        num_r_recv_ops: f.req("numRRecvOps", long)?,
        num_w_send_ops: f.req("numWSendOps", long)?,
        num_r_recv_bytes: f.req("numRRecvBytes", long)?,
        num_w_send_bytes: f.req("numWSendBytes", long)?,
    })
}

/// `sysflow.event.FileEvent`.
fn file_event(f: &mut Fields) -> Conv<FileEvent> {
    Ok(FileEvent {
        proc_oid: f.req("procOID", record(oid))?,
        ts: f.req("ts", timestamp)?,
        tid: f.req("tid", long)?,
        op_flags: f.req("opFlags", int)?,
        file_oid: f.req("fileOID", foid)?,
        ret: f.req("ret", int)?,
        new_file_oid: f.or("newFileOID", nullable(foid), None)?,
    })
}

/// `sysflow.flow.NetworkFlow`.
fn network_flow(f: &mut Fields) -> Conv<NetworkFlow> {
    Ok(NetworkFlow {
        proc_oid: f.req("procOID", record(oid))?,
        ts: f.req("ts", timestamp)?,
        tid: f.req("tid", long)?,
        op_flags: f.req("opFlags", int)?,
        end_ts: f.req("endTs", timestamp)?,
        sip: f.req("sip", int)?,
        sport: f.req("sport", int)?,
        dip: f.req("dip", int)?,
        dport: f.req("dport", int)?,
        proto: f.req("proto", int)?,
        fd: f.or("fd", int, 0)?, // not in the earliest layout
        num_r_recv_ops: f.req("numRRecvOps", long)?,
        num_w_send_ops: f.req("numWSendOps", long)?,
        num_r_recv_bytes: f.req("numRRecvBytes", long)?,
        num_w_send_bytes: f.req("numWSendBytes", long)?,
    })
}

/// `sysflow.event.NetworkEvent`.
fn network_event(f: &mut Fields) -> Conv<NetworkEvent> {
    Ok(NetworkEvent {
        proc_oid: f.req("procOID", record(oid))?,
        ts: f.req("ts", timestamp)?,
        tid: f.req("tid", long)?,
        op_flags: f.req("opFlags", int)?,
        sip: f.req("sip", int)?,
        sport: f.req("sport", int)?,
        dip: f.req("dip", int)?,
        dport: f.req("dport", int)?,
        proto: f.req("proto", int)?,
        ret: f.req("ret", int)?,
    })
}

/// `sysflow.event.K8sEvent` (schema 4+).
fn k8s_event(f: &mut Fields) -> Conv<K8sEvent> {
    Ok(K8sEvent {
        kind: f.req("kind", symbol::<K8sComponent>)?,
        action: f.req("action", symbol::<K8sAction>)?,
        ts: f.req("ts", timestamp)?,
        message: f.req("message", string)?,
    })
}

/// Enum symbols renamed between schema versions: (symbol in an older writer, symbol in the
/// model). Consulted only when the model does not know a symbol.
const RENAMED_SYMBOLS: &[(&str, &str)] = &[];

// ---------------------------------------------------------------------------------------------
// Field access and value conversions
// ---------------------------------------------------------------------------------------------

/// A conversion failure, with the path of the field inside the record.
#[derive(Debug)]
struct Bad {
    path: String,
    problem: FieldProblem,
}

impl Bad {
    fn new(problem: FieldProblem) -> Self {
        Bad {
            path: String::new(),
            problem,
        }
    }

    fn wrong(expected: &'static str, found: &Value) -> Self {
        Bad::new(FieldProblem::WrongType {
            expected,
            found: describe(found),
        })
    }

    /// Prefixes the path with a field name.
    fn in_field(mut self, field: &str) -> Self {
        self.path = if self.path.is_empty() {
            field.to_owned()
        } else if self.path.starts_with('[') {
            format!("{field}{}", self.path)
        } else {
            format!("{field}.{}", self.path)
        };
        self
    }

    /// Prefixes the path with an array index.
    fn in_item(mut self, index: usize) -> Self {
        self.path = if self.path.is_empty() || self.path.starts_with('[') {
            format!("[{index}]{}", self.path)
        } else {
            format!("[{index}].{}", self.path)
        };
        self
    }
}

type Conv<T> = Result<T, Bad>;

/// The names a model field may have in a writer's record: the current name first, then older
/// ones.
trait FieldNames {
    fn names(&self) -> &[&'static str];
}

impl FieldNames for &'static str {
    fn names(&self) -> &[&'static str] {
        std::slice::from_ref(self)
    }
}

impl<const N: usize> FieldNames for [&'static str; N] {
    fn names(&self) -> &[&'static str] {
        self
    }
}

/// The fields of one writer record, taken by name.
struct Fields {
    fields: Vec<(String, Value)>,
    /// Where to start the next search: fields are usually taken in writer order.
    cursor: usize,
}

impl Fields {
    fn new(fields: Vec<(String, Value)>) -> Self {
        Fields { fields, cursor: 0 }
    }

    fn take(&mut self, names: &[&'static str]) -> Option<Value> {
        let len = self.fields.len();
        for name in names {
            let found = (0..len)
                .map(|i| (self.cursor + i) % len)
                .find(|&i| self.fields.get(i).is_some_and(|(field, _)| field == name));
            if let Some(i) = found
                && let Some((_, value)) = self.fields.get_mut(i)
            {
                self.cursor = i + 1;
                return Some(std::mem::replace(value, Value::Null));
            }
        }
        None
    }

    /// A field every schema version has.
    fn req<T>(
        &mut self,
        names: impl FieldNames,
        convert: impl FnOnce(Value) -> Conv<T>,
    ) -> Conv<T> {
        let names = names.names();
        let first = names.first().copied().unwrap_or_default();
        match self.take(names) {
            Some(value) => convert(value).map_err(|bad| bad.in_field(first)),
            None => Err(Bad::new(FieldProblem::Missing).in_field(first)),
        }
    }

    /// A field older schema versions lack: `default` when the writer's record has none.
    fn or<T>(
        &mut self,
        names: impl FieldNames,
        convert: impl FnOnce(Value) -> Conv<T>,
        default: T,
    ) -> Conv<T> {
        let names = names.names();
        let first = names.first().copied().unwrap_or_default();
        match self.take(names) {
            Some(value) => convert(value).map_err(|bad| bad.in_field(first)),
            None => Ok(default),
        }
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Boolean(_) => "boolean".to_owned(),
        Value::Int(_) => "int".to_owned(),
        Value::Long(_) => "long".to_owned(),
        Value::Float(_) => "float".to_owned(),
        Value::Double(_) => "double".to_owned(),
        Value::Bytes(b) => format!("bytes({})", b.len()),
        Value::String(_) => "string".to_owned(),
        Value::Fixed(n, _) => format!("fixed({n})"),
        Value::Enum(_, symbol) => format!("enum symbol {symbol:?}"),
        Value::Union(_, inner) => describe(inner),
        Value::Array(_) => "array".to_owned(),
        Value::Map(_) => "map".to_owned(),
        Value::Record(_) => "record".to_owned(),
        other => {
            // Logical types: the variant name is the clearest description.
            let debug = format!("{other:?}");
            debug.split('(').next().unwrap_or("value").to_owned()
        }
    }
}

// Every conversion also accepts its value inside a union (`["null", T]` where the model wants
// a plain `T`): the `Value::Union` arms.

/// A `long`, whatever logical type the writer declared (timestamps are nanoseconds even where
/// a writer says `timestamp-millis`), or an `int`.
fn long(value: Value) -> Conv<i64> {
    match value {
        Value::Long(v)
        | Value::TimestampMillis(v)
        | Value::TimestampMicros(v)
        | Value::TimestampNanos(v)
        | Value::LocalTimestampMillis(v)
        | Value::LocalTimestampMicros(v)
        | Value::LocalTimestampNanos(v)
        | Value::TimeMicros(v) => Ok(v),
        Value::Int(v) | Value::Date(v) | Value::TimeMillis(v) => Ok(i64::from(v)),
        Value::Union(_, inner) => long(*inner),
        other => Err(Bad::wrong("long", &other)),
    }
}

/// A timestamp: nanoseconds since the epoch, the raw `long` whatever the declared logical type.
fn timestamp(value: Value) -> Conv<i64> {
    long(value)
}

/// An `int`, or a `long` that fits.
fn int(value: Value) -> Conv<i32> {
    match value {
        Value::Int(v) => Ok(v),
        Value::Long(v) => i32::try_from(v).map_err(|_| {
            Bad::new(FieldProblem::OutOfRange {
                expected: "int",
                value: v,
            })
        }),
        Value::Union(_, inner) => int(*inner),
        other => Err(Bad::wrong("int", &other)),
    }
}

fn boolean(value: Value) -> Conv<bool> {
    match value {
        Value::Boolean(b) => Ok(b),
        Value::Union(_, inner) => boolean(*inner),
        other => Err(Bad::wrong("boolean", &other)),
    }
}

fn string(value: Value) -> Conv<String> {
    match value {
        Value::String(s) => Ok(s),
        Value::Union(_, inner) => string(*inner),
        other => Err(Bad::wrong("string", &other)),
    }
}

/// A string trimmed of surrounding white space (Go's `strings.TrimSpace`; Rust's `trim` uses
/// the same Unicode `White_Space` set).
fn trimmed_string(value: Value) -> Conv<String> {
    let s = string(value)?;
    let trimmed = s.trim();
    Ok(if trimmed.len() == s.len() {
        s
    } else {
        trimmed.to_owned()
    })
}

/// A FOID: `fixed(20)` (a 20-byte `bytes` is accepted too).
fn foid(value: Value) -> Conv<Foid> {
    match value {
        Value::Fixed(_, bytes) | Value::Bytes(bytes) if bytes.len() == 20 => {
            let mut id = [0u8; 20];
            id.copy_from_slice(&bytes);
            Ok(Foid(id))
        }
        Value::Union(_, inner) => foid(*inner),
        other => Err(Bad::wrong("fixed(20)", &other)),
    }
}

/// `["null", T]`: `None` for null.
fn nullable<T>(convert: impl FnOnce(Value) -> Conv<T>) -> impl FnOnce(Value) -> Conv<Option<T>> {
    move |value| match value {
        Value::Null => Ok(None),
        Value::Union(_, inner) if matches!(*inner, Value::Null) => Ok(None),
        other => convert(other).map(Some),
    }
}

fn array<T>(convert: impl Fn(Value) -> Conv<T>) -> impl Fn(Value) -> Conv<Vec<T>> {
    fn items<T>(convert: &impl Fn(Value) -> Conv<T>, value: Value) -> Conv<Vec<T>> {
        match value {
            Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, item)| convert(item).map_err(|bad| bad.in_item(i)))
                .collect(),
            Value::Union(_, inner) => items(convert, *inner),
            other => Err(Bad::wrong("array", &other)),
        }
    }
    move |value| items(&convert, value)
}

/// A nested record, through its mapping table.
fn record<T>(table: fn(&mut Fields) -> Conv<T>) -> impl Fn(Value) -> Conv<T> {
    fn fields<T>(table: fn(&mut Fields) -> Conv<T>, value: Value) -> Conv<T> {
        match value {
            Value::Record(values) => table(&mut Fields::new(values)),
            Value::Union(_, inner) => fields(table, *inner),
            other => Err(Bad::wrong("record", &other)),
        }
    }
    move |value| fields(table, value)
}

/// A `map<string>`, sorted by key (`apache-avro` decodes maps into a `HashMap`).
fn string_map(value: Value) -> Conv<Vec<(String, String)>> {
    match value {
        Value::Map(map) => {
            let mut pairs = map
                .into_iter()
                .map(|(key, value)| match string(value) {
                    Ok(v) => Ok((key, v)),
                    Err(bad) => Err(bad.in_field(&key)),
                })
                .collect::<Conv<Vec<_>>>()?;
            pairs.sort();
            Ok(pairs)
        }
        Value::Union(_, inner) => string_map(*inner),
        other => Err(Bad::wrong("map", &other)),
    }
}

/// A model enum, by Avro symbol.
trait Symbol: Sized {
    const ENUM_NAME: &'static str;
    fn from_symbol(symbol: &str) -> Option<Self>;
}

macro_rules! symbol_enums {
    ($($ty:ty => $name:literal),+ $(,)?) => {$(
        impl Symbol for $ty {
            const ENUM_NAME: &'static str = $name;
            fn from_symbol(symbol: &str) -> Option<Self> {
                <$ty>::from_symbol(symbol)
            }
        }
    )+};
}

symbol_enums! {
    ObjectState => "SFObjectState",
    ContainerType => "ContainerType",
    K8sComponent => "K8sComponent",
    K8sAction => "K8sAction",
}

fn symbol<T: Symbol>(value: Value) -> Conv<T> {
    match value {
        Value::Enum(_, symbol) | Value::String(symbol) => T::from_symbol(&symbol)
            .or_else(|| {
                RENAMED_SYMBOLS
                    .iter()
                    .find(|(old, _)| *old == symbol)
                    .and_then(|(_, new)| T::from_symbol(new))
            })
            .ok_or(Bad::new(FieldProblem::UnknownSymbol {
                enum_name: T::ENUM_NAME,
                symbol,
            })),
        Value::Union(_, inner) => symbol(*inner),
        other => Err(Bad::wrong("enum", &other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port_value(port: Value) -> Value {
        Value::Record(vec![
            ("port".into(), port),
            ("targetPort".into(), Value::Int(1)),
            ("nodePort".into(), Value::Int(2)),
            ("proto".into(), Value::String("TCP".into())),
        ])
    }

    #[test]
    fn nested_field_errors_have_a_path() {
        let service_value = Value::Record(vec![
            ("name".into(), Value::String("s".into())),
            ("id".into(), Value::String("i".into())),
            ("namespace".into(), Value::String("n".into())),
            (
                "portList".into(),
                Value::Array(vec![
                    port_value(Value::Int(80)),
                    port_value(Value::Long(1 << 40)),
                ]),
            ),
            ("clusterIP".into(), Value::Array(vec![])),
        ]);
        let mut f = Fields::new(vec![("services".into(), Value::Array(vec![service_value]))]);
        let bad = f
            .req("services", array(record(service)))
            .expect_err("out of range");
        assert_eq!(bad.path, "services[0].portList[1].port");
        assert_eq!(bad.problem.to_string(), "1099511627776 does not fit in int");
    }

    #[test]
    fn values_inside_unions_and_logical_timestamps_are_accepted() {
        let ts = Value::Union(
            1,
            Box::new(Value::TimestampMillis(1_553_543_280_704_111_050)),
        );
        assert_eq!(timestamp(ts).ok(), Some(1_553_543_280_704_111_050));
        assert_eq!(long(Value::TimestampNanos(7)).ok(), Some(7));
        assert_eq!(int(Value::Long(-3)).ok(), Some(-3));
        let none = Value::Union(0, Box::new(Value::Null));
        assert_eq!(nullable(string)(none).ok(), Some(None));
        let bad = foid(Value::Fixed(16, vec![0; 16])).expect_err("size");
        assert_eq!(
            bad.problem.to_string(),
            "expected fixed(20), found fixed(16)"
        );
    }

    #[test]
    fn fields_are_found_in_any_order_and_aliases_work() {
        let mut f = Fields::new(vec![
            ("b".into(), Value::Int(2)),
            ("old".into(), Value::Int(3)),
            ("a".into(), Value::Int(1)),
        ]);
        assert_eq!(f.req("a", int).ok(), Some(1));
        assert_eq!(f.req("b", int).ok(), Some(2));
        assert_eq!(f.req(["new", "old"], int).ok(), Some(3));
        assert_eq!(f.or("c", int, 9).ok(), Some(9));
        assert_eq!(f.req("d", int).expect_err("missing").path, "d");
    }

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
}
