//! The reader's errors: per datum ([`DatumError`], what the decoder found in a block), per
//! input ([`DecodeError`], with the file and where in it), and the writer fields that
//! resolution could not map ([`Unresolved`], reported once per file).

use std::fmt;
use std::io;
use std::sync::Arc;

use crate::container::{BlockError, HeaderError};

/// What is wrong with a datum.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DatumProblem {
    /// A value the reader schema cannot take (a union branch of another type, an enum symbol
    /// the reader has not). The datum is skipped; the next one is decoded.
    Field(FieldProblem),
    /// The datum is of a union branch that resolves to no SysFlow record type. The datum is
    /// skipped; the next one is decoded.
    UnknownBranch {
        /// The union index.
        index: u32,
        /// The writer's name of the branch.
        name: String,
    },
    /// A value runs past the end of the block.
    Truncated {
        /// Bytes (or, for an array or map block, items) the value needs.
        needed: u64,
        /// Bytes left in the block.
        remaining: u64,
    },
    /// A varint longer than 10 bytes.
    BadVarint,
    /// A negative length of bytes or string.
    NegativeLength(i64),
    /// An `int` value that does not fit in 32 bits.
    IntOutOfRange(i64),
    /// A string that is not UTF-8.
    InvalidUtf8,
    /// A boolean byte other than 0 or 1.
    BadBool(u8),
    /// A union index out of range.
    BadUnionIndex {
        /// The index read.
        index: i64,
        /// Branches of the union.
        branches: usize,
    },
    /// An enum index out of range.
    BadEnumIndex {
        /// The index read.
        index: i64,
        /// Symbols of the enum.
        symbols: usize,
    },
    /// Values nested deeper than this (a recursive writer schema).
    TooDeep(u32),
    /// Bytes left in the block after its `count` datums.
    TrailingBytes(u64),
}

impl fmt::Display for DatumProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatumProblem::Field(p) => p.fmt(f),
            DatumProblem::UnknownBranch { index, name } => {
                write!(
                    f,
                    "unknown record type {name} (branch {index} of the rec union)"
                )
            }
            DatumProblem::Truncated { needed, remaining } => write!(
                f,
                "truncated: needs {needed} bytes, {remaining} left in the block"
            ),
            DatumProblem::BadVarint => f.write_str("varint longer than 10 bytes"),
            DatumProblem::NegativeLength(n) => write!(f, "negative length {n}"),
            DatumProblem::IntOutOfRange(v) => write!(f, "int value {v} out of 32-bit range"),
            DatumProblem::InvalidUtf8 => f.write_str("string is not UTF-8"),
            DatumProblem::BadBool(b) => write!(f, "boolean byte {b} (0 or 1 expected)"),
            DatumProblem::BadUnionIndex { index, branches } => {
                write!(f, "union index {index} out of range ({branches} branches)")
            }
            DatumProblem::BadEnumIndex { index, symbols } => {
                write!(f, "enum index {index} out of range ({symbols} symbols)")
            }
            DatumProblem::TooDeep(depth) => {
                write!(f, "values nested deeper than {depth} levels")
            }
            DatumProblem::TrailingBytes(n) => {
                write!(f, "{n} bytes left in the block after its last datum")
            }
        }
    }
}

/// An error decoding one datum of a block: what, in which record type and field, where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatumError {
    /// Byte offset in the block where the datum starts.
    pub datum_offset: usize,
    /// Byte offset in the block where the problem was found (the datum's start for a problem
    /// found after its bytes were read, e.g. a missing field).
    pub offset: usize,
    /// The writer's record name of the datum's branch, without namespace (`FileFlow`), once
    /// known.
    pub record_type: Option<Arc<str>>,
    /// The field, with its path inside nested records, arrays and maps
    /// (`procOID.createTS`, `services[0].portList[1].port`); empty when not in a field.
    pub field: String,
    /// What is wrong.
    pub problem: DatumProblem,
}

impl DatumError {
    /// Whether the rest of the block cannot be decoded after this error (damaged data), as
    /// opposed to a datum that was skipped (a field problem or unknown branch).
    pub fn ends_block(&self) -> bool {
        !matches!(
            self.problem,
            DatumProblem::Field(_) | DatumProblem::UnknownBranch { .. }
        )
    }
}

impl fmt::Display for DatumError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(t) = &self.record_type {
            write!(f, "{t} ")?;
        }
        if !self.field.is_empty() {
            write!(f, "field \"{}\" ", self.field)?;
        }
        write!(f, "at byte {} of the block", self.offset)?;
        if self.offset != self.datum_offset {
            write!(f, " (datum at byte {})", self.datum_offset)?;
        }
        write!(f, ": {}", self.problem)
    }
}

impl std::error::Error for DatumError {}

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
    pub(crate) fn note(&self, record_type: Option<&str>) -> String {
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

/// What is wrong with one field of a datum: well-formed Avro that the reader schema cannot
/// take. The datum is skipped; the next one is decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldProblem {
    /// A value of a branch of a writer union that the reader's type cannot take (say a null
    /// where the reader has a `string`).
    WrongType {
        /// The reader's type, e.g. `string`.
        expected: Box<str>,
        /// The writer's type, e.g. `null`.
        found: Box<str>,
    },
    /// An enum symbol the reader's enum has not, and that has no default.
    UnknownSymbol {
        /// The writer's enum name, e.g. `ContainerType`.
        enum_name: Box<str>,
        /// The symbol found.
        symbol: Box<str>,
    },
    /// A reader field with no value: cannot happen with our reader schema, where every field
    /// has a default (kept as an error rather than a panic).
    Missing,
}

impl fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldProblem::Missing => f.write_str("no value and no default"),
            FieldProblem::WrongType { expected, found } => {
                write!(f, "expected {expected}, found {found}")
            }
            FieldProblem::UnknownSymbol { enum_name, symbol } => {
                write!(f, "unknown {enum_name} symbol {symbol:?}")
            }
        }
    }
}

/// A writer field that resolution against the reader schema cannot map: its type cannot be
/// read as the reader field's (say a `long` where the reader has an `int`, which the Avro
/// specification does not promote). Its bytes are skipped and the reader's default takes its
/// place in every record. Reported once per file (or connection), when it is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    /// The reader record of the writer's branch, e.g. `Process`.
    pub record_type: String,
    /// The writer's field, with its path inside nested records (`oid.createTS`).
    pub field: String,
    /// The reader field's type, e.g. `int`.
    pub expected: String,
    /// The writer field's type, e.g. `long`.
    pub found: String,
}

impl fmt::Display for Unresolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} field \"{}\": written as {}, which cannot be read as the reader's {}; the reader's default is used in every record",
            self.record_type, self.field, self.found, self.expected
        )
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
            DecodeError::Field { .. } => "record that does not map to the model".to_owned(),
        }
    }
}
