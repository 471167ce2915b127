//! A fast decoder specialised for the SysFlow schemas: Avro binary straight into
//! [`Record`]s, without `apache-avro`'s generic `Value`.
//!
//! # How it works
//!
//! 1. **Once per file** (or socket connection), [`SysFlowDecoder::from_schema_json`] parses the
//!    writer schema's JSON text (`serde_json`), resolves the branches of the `rec` union by
//!    record name and builds one **decode plan** per branch: the writer's fields in writer
//!    order, each with how to read it (its Avro type and the conversion the model needs) and
//!    the model field it fills, or "skip" for a field the model does not know. Fields an older
//!    layout lacks get the same defaults as `avro.rs`, and the earliest layout's
//!    `sysflow.flow.ProcessFlow` (fields `args`, `ret`, no `endTs`) is decoded as a
//!    [`ProcessEvent`](sf_processor::model::ProcessEvent), as `avro.rs` does: both follow the
//!    same mapping tables, so both give the same records (the tests check it on every shared
//!    trace).
//!    A branch whose writer record is exactly a layout the collector writes today (every flow
//!    and event since schema 2; header, container and process of schema 5) also gets a
//!    straight-line decoder (`exact.rs`) that reads the fields in order into the struct with
//!    no plan to interpret; the plan stays its reference, and names the field of any error.
//! 2. **Per datum**, the decoder follows the plan over the bytes of one decompressed Avro block
//!    (a `&[u8]` holding `count` datums, see [`SysFlowDecoder::decode_block`]): zigzag varints,
//!    strings, bytes, fixed, arrays and maps in blocks (negative block counts included),
//!    unions, enums. It sits on top of any container-framing code; [`FastReader`] is a minimal
//!    one (header, blocks, deflate and null codecs) so it runs end to end.
//!
//! # Errors
//!
//! Every error says what and where: the record type, the field path (`procOID.createTS`,
//! `services[0].portList[1].port`) and the byte offset in the block; [`FastError`] adds the
//! file, the record's index and the block's offset in the file. Two kinds:
//! - a **field problem** ([`DatumProblem::Field`], [`DatumProblem::UnknownBranch`]): the datum
//!   is well-formed Avro that does not map onto the model (a `long` out of `int` range, an
//!   unknown enum symbol, a required field missing from the writer's record). The datum is
//!   skipped and decoding goes on with the next one;
//! - **damaged data** (anything else: truncated, an impossible length, a bad union index,
//!   invalid UTF-8...): the rest of the block cannot be found, so decoding of the block stops
//!   ([`DatumError::ends_block`]).
//!
//! Nothing panics on any input, and nothing is allocated for a length or count larger than
//! the bytes left in the block (array and map vectors grow with the items actually decoded).
//!
//! # Differences from `avro.rs` on bad input
//!
//! On well-formed input both give the same records and the same field errors. On damaged
//! input they may stop at different places: this decoder does not check the UTF-8 or boolean
//! bytes of fields it skips, reports bytes left after a block's last datum, and goes on after
//! a block of zero datums (apache-avro stops there).
//!
//! # Example
//!
//! ```no_run
//! use sf_reader::fast;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! for record in fast::open("trace.sf".as_ref())? {
//!     match record {
//!         Ok(record) => println!("{}", record.kind()),
//!         Err(e) => eprintln!("{e}"),
//!     }
//! }
//! # Ok(())
//! # }
//! ```

mod decode;
mod exact;
mod file;
mod plan;
mod schema;

use std::fmt;
use std::sync::Arc;

use sf_processor::model::Record;

use crate::avro::{Branch, FieldProblem};

pub use file::{FastError, FastReader, MAX_BLOCK_BYTES, MAX_HEADER_BYTES, open};

/// What is wrong with a datum.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DatumProblem {
    /// A field that does not map onto the model (wrong type, out of range, unknown symbol,
    /// missing). The datum is skipped; the next one is decoded.
    Field(FieldProblem),
    /// The datum is of a union branch that is not a SysFlow record type this reader knows.
    /// The datum is skipped; the next one is decoded.
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

/// Decodes SysFlow datums of one writer schema. Build it once per file (or connection).
#[derive(Debug, Clone)]
pub struct SysFlowDecoder {
    schema: schema::Schema,
    top: plan::TopPlan,
    branches: Vec<Branch>,
    /// The branches' simple names, shared by errors.
    names: Vec<Arc<str>>,
    /// Whether branches of a known layout use their straight-line decoder (`exact.rs`).
    exact: bool,
}

impl SysFlowDecoder {
    /// Parses a writer schema (the JSON text of a trace header's `avro.schema`) and builds the
    /// decode plans.
    ///
    /// # Errors
    /// A message saying why the text is not a SysFlow schema: not JSON, not a valid Avro
    /// schema (with the JSON path of the problem), or not the record `sysflow.SysFlow` with a
    /// `rec` union.
    pub fn from_schema_json(json: &str) -> Result<Self, String> {
        let schema = schema::Schema::parse(json)?;
        let top = plan::top_plan(&schema)?;
        let branches: Vec<Branch> = top.branches.iter().map(|b| b.info.clone()).collect();
        let names = branches.iter().map(|b| b.simple_name().into()).collect();
        Ok(SysFlowDecoder {
            schema,
            top,
            branches,
            names,
            exact: true,
        })
    }

    /// The branches of the writer's `rec` union, in union order, with the record type each
    /// maps to (as `avro::BranchTable` gives them).
    pub fn branches(&self) -> &[Branch] {
        &self.branches
    }

    /// Decodes the datum that starts at `*pos` in `block` and moves `*pos` past it.
    ///
    /// # Errors
    /// A [`DatumError`]. After a field problem (`!ends_block()`), `*pos` is past the datum,
    /// ready for the next one; after damaged data (`ends_block()`), `*pos` is unchanged.
    #[inline]
    pub fn decode_datum(&self, block: &[u8], pos: &mut usize) -> Result<Record, DatumError> {
        let start = *pos;
        let mut cx = decode::Cx {
            buf: block,
            pos: start,
            schema: &self.schema,
        };
        let mut branch = None;
        match cx.datum(&self.top, &mut branch, self.exact) {
            Ok(record) => {
                *pos = cx.pos;
                Ok(record)
            }
            Err(fail) => {
                let mut error = self.error(start, branch, *fail);
                if !error.ends_block() {
                    // Step over the datum: its bytes are still well-formed Avro, or not.
                    let mut skip = decode::Cx {
                        buf: block,
                        pos: start,
                        schema: &self.schema,
                    };
                    match skip.skip_datum(&self.top) {
                        Ok(()) => *pos = skip.pos,
                        Err(damage) => error = self.error(start, branch, *damage),
                    }
                }
                Err(error)
            }
        }
    }

    /// The records of one decompressed block holding `count` datums.
    pub fn decode_block<'a>(&'a self, block: &'a [u8], count: u64) -> BlockRecords<'a> {
        BlockRecords {
            decoder: self,
            block,
            pos: 0,
            left: count,
            done: false,
        }
    }

    fn error(&self, start: usize, branch: Option<usize>, fail: decode::Fail) -> DatumError {
        DatumError {
            datum_offset: start,
            offset: fail.offset.unwrap_or(start),
            record_type: branch.and_then(|b| self.names.get(b).cloned()),
            field: fail.path,
            problem: fail.problem,
        }
    }
}

/// The records of one block, in order: `Ok(record)` per datum, `Err` for a datum that could
/// not be decoded. After damaged data (an error that [`ends_block`](DatumError::ends_block)),
/// the iteration ends; bytes left after the last datum are reported as
/// [`DatumProblem::TrailingBytes`].
#[derive(Debug)]
pub struct BlockRecords<'a> {
    decoder: &'a SysFlowDecoder,
    block: &'a [u8],
    pos: usize,
    left: u64,
    done: bool,
}

impl BlockRecords<'_> {
    /// Bytes of the block decoded so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Datums of the block not decoded yet.
    pub fn remaining(&self) -> u64 {
        self.left
    }
}

impl Iterator for BlockRecords<'_> {
    type Item = Result<Record, DatumError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.left == 0 {
            self.done = true;
            let trailing = self.block.len().saturating_sub(self.pos);
            return (trailing > 0).then(|| {
                Err(DatumError {
                    datum_offset: self.pos,
                    offset: self.pos,
                    record_type: None,
                    field: String::new(),
                    problem: DatumProblem::TrailingBytes(trailing as u64),
                })
            });
        }
        self.left -= 1;
        let item = self.decoder.decode_datum(self.block, &mut self.pos);
        if let Err(e) = &item
            && e.ends_block()
        {
            self.done = true;
        }
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            (0, Some(0))
        } else {
            (0, usize::try_from(self.left.saturating_add(1)).ok())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared_traces() -> Vec<std::path::PathBuf> {
        let dir = std::env::var_os("SF_SHARED_DIR")
            .map_or_else(|| "/work/shared".into(), std::path::PathBuf::from)
            .join("traces");
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .expect("the shared traces")
            .map(|e| e.expect("entry").path())
            .collect();
        paths.sort();
        paths
    }

    fn decode_all(mut reader: FastReader<impl std::io::Read>, exact: bool) -> Vec<Record> {
        reader.decoder.exact = exact;
        reader
            .map(|r| r.unwrap_or_else(|e| panic!("{e}")))
            .collect()
    }

    /// The straight-line decoders of `exact.rs` and the generic plans give the same records.
    #[test]
    fn exact_layouts_and_generic_plans_agree_on_every_shared_trace() {
        let mut exact_branches = 0;
        for path in shared_traces() {
            let reader = open(&path).expect("open");
            exact_branches += reader
                .decoder
                .top
                .branches
                .iter()
                .filter(|b| b.layout.is_some())
                .count();
            let exact = decode_all(reader, true);
            let generic = decode_all(open(&path).expect("open"), false);
            assert!(!exact.is_empty());
            assert!(exact == generic, "{}", path.display());
        }
        assert!(
            exact_branches > 50,
            "{exact_branches} branches with a known layout"
        );
    }

    #[test]
    fn exact_layouts_cover_the_schema_5_flows_and_events() {
        let decoder = SysFlowDecoder::from_schema_json(crate::generate::SCHEMA_V5).expect("v5");
        let exact: Vec<&str> = decoder
            .top
            .branches
            .iter()
            .filter(|b| b.layout.is_some())
            .map(|b| b.info.simple_name())
            .collect();
        assert_eq!(
            exact,
            [
                "SFHeader",
                "Container",
                "Process",
                "File",
                "ProcessEvent",
                "NetworkFlow",
                "FileFlow",
                "FileEvent",
                "NetworkEvent",
                "ProcessFlow"
            ]
        );
    }

    #[test]
    fn damaged_data_in_an_exact_layout_is_reported_with_its_field() {
        let decoder = SysFlowDecoder::from_schema_json(crate::generate::SCHEMA_V5).expect("v5");
        // A FileFlow (branch 6) cut in its fileOID.
        let mut block = vec![12u8, 2, 4, 6, 8, 10, 0, 12];
        block.extend_from_slice(&[7; 5]);
        let err = decoder.decode_datum(&block, &mut 0).expect_err("cut");
        assert_eq!(err.field, "fileOID");
        assert_eq!(err.offset, 8);
        assert_eq!(
            err.to_string(),
            "FileFlow field \"fileOID\" at byte 8 of the block (datum at byte 0): truncated: needs 20 bytes, 5 left in the block"
        );
        // A Process (branch 2) whose state index is out of range.
        let err = decoder.decode_datum(&[4, 6], &mut 0).expect_err("state");
        assert_eq!(
            err.to_string(),
            "Process field \"state\" at byte 1 of the block (datum at byte 0): enum index 3 out of range (3 symbols)"
        );
    }
}
