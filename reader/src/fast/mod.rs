//! Our Avro decoder, specialised for SysFlow: Avro binary straight into [`Record`]s, with
//! the writer schema of each file resolved against one reader schema.
//!
//! # How it works
//!
//! 1. **Once per file** (or socket connection), [`SysFlowDecoder::from_schema_json`] parses
//!    the writer schema's JSON text (`schema.rs`, on `serde_json`) and resolves it against the
//!    reader schema (`resources/schemas/sysflow-reader.avsc`: the current SysFlow schema with a
//!    default for every field and aliases) by the Avro specification's rules (`resolve.rs`,
//!    where the rules and our two departures from them are listed): it builds one **decode
//!    plan** per branch of the `rec` union, the writer's fields in writer order, each with
//!    how to read it and the reader field it fills, or "skip"; reader fields the writer lacks
//!    get their defaults. A writer field that cannot be resolved is reported once
//!    ([`SysFlowDecoder::unresolved`]).
//!    A branch whose writer record is exactly a layout the collector writes today (every flow
//!    and event since schema 2; header, container and process of schema 5) also gets a
//!    straight-line decoder (`exact.rs`) that reads the fields in order into the struct with
//!    no plan to interpret; the plan stays its reference, and names the field of any error.
//! 2. **Per datum**, the decoder follows the plan over the bytes of one decompressed Avro block
//!    (a `&[u8]` holding `count` datums, see [`SysFlowDecoder::decode_block`]): zigzag varints,
//!    strings, bytes, fixed, arrays and maps in blocks (negative block counts included),
//!    unions, enums. The container framing is [`crate::container`]'s, and
//!    [`crate::trace::TraceReader`] puts the two together.
//!
//! # Errors
//!
//! Every error says what and where: the record type, the field path (`procOID.createTS`,
//! `services[0].portList[1].port`) and the byte offset in the block ([`DatumError`]). Two
//! kinds:
//! - a **field problem** ([`DatumProblem::Field`], [`DatumProblem::UnknownBranch`]): the datum
//!   is well-formed Avro that the reader schema cannot take (an enum symbol the reader has
//!   not, a null where the reader has no null, a branch that is no SysFlow record). The datum
//!   is skipped and decoding goes on with the next one;
//! - **damaged data** (anything else: truncated, an impossible length, a bad union index,
//!   invalid UTF-8...): the rest of the block cannot be found, so decoding of the block stops
//!   ([`DatumError::ends_block`]).
//!
//! Nothing panics on any input, and nothing is allocated for a length or count larger than
//! the bytes left in the block (array and map vectors grow with the items actually decoded).
//! This decoder does not check the UTF-8 or boolean bytes of fields it skips.
//!
//! # Example
//!
//! ```
//! use sf_reader::fast::SysFlowDecoder;
//!
//! # fn main() -> Result<(), String> {
//! let schema = include_str!("../../../resources/schemas/sysflow-v1000-2019-01.avsc");
//! let decoder = SysFlowDecoder::from_schema_json(schema)?;
//! // A process event of the January-2019 layout (branch 3): EXEC, ts 7, procOID (1, 2),
//! // tid 2, no args, ret 0.
//! let datum = [6, 2, 14, 2, 4, 4, 0, 0];
//! let record = decoder.decode_datum(&datum, &mut 0).map_err(|e| e.to_string())?;
//! assert_eq!(record.kind().name(), "ProcessEvent");
//! # Ok(())
//! # }
//! ```

mod decode;
mod exact;
mod plan;
mod resolve;
mod schema;

use std::sync::Arc;

use sf_processor::model::Record;

use crate::branch::{Branch, BranchTable};
use crate::error::{DatumError, DatumProblem, Unresolved};

pub use resolve::READER_SCHEMA;

/// Why a writer schema cannot be decoded: the schema itself is not a valid Avro schema, or
/// it is not a SysFlow schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaError {
    /// Not JSON: the parser's message.
    NotJson(String),
    /// Not a valid Avro schema: what is wrong, with the JSON path of the problem.
    Invalid(String),
    /// A valid Avro schema that is not the record `sysflow.SysFlow` with a `rec` union, or
    /// whose arrays hold items that take no bytes.
    NotSysFlow(String),
}

impl std::fmt::Display for SchemaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SchemaError::NotJson(e) => write!(f, "the schema is not JSON: {e}"),
            SchemaError::Invalid(e) | SchemaError::NotSysFlow(e) => f.write_str(e),
        }
    }
}

/// Decodes SysFlow datums of one writer schema, resolved against the reader schema. Build it
/// once per file (or connection).
#[derive(Debug, Clone)]
pub struct SysFlowDecoder {
    schema: schema::Schema,
    top: plan::TopPlan,
    branches: BranchTable,
    /// The branches' simple names, shared by errors.
    names: Vec<Arc<str>>,
    unresolved: Vec<Unresolved>,
    /// Whether branches of a known layout use their straight-line decoder (`exact.rs`).
    exact: bool,
}

impl SysFlowDecoder {
    /// Parses a writer schema (the JSON text of a trace header's `avro.schema`) and resolves
    /// it against the reader schema.
    ///
    /// # Errors
    /// A message saying why the text is not a SysFlow schema: not JSON, not a valid Avro
    /// schema (with the JSON path of the problem), or not the record `sysflow.SysFlow` with a
    /// `rec` union. [`SysFlowDecoder::parse`] tells the first two from the last.
    pub fn from_schema_json(json: &str) -> Result<Self, String> {
        Self::parse(json).map_err(|e| e.to_string())
    }

    /// [`SysFlowDecoder::from_schema_json`], with the kind of error.
    ///
    /// # Errors
    /// [`SchemaError::NotJson`] or [`SchemaError::Invalid`] when `json` is no valid Avro
    /// schema, [`SchemaError::NotSysFlow`] when it is another one than SysFlow's.
    pub fn parse(json: &str) -> Result<Self, SchemaError> {
        let json: serde_json::Value =
            serde_json::from_str(json).map_err(|e| SchemaError::NotJson(e.to_string()))?;
        let schema = schema::Schema::from_json(&json).map_err(SchemaError::Invalid)?;
        let resolution = resolve::resolve(&schema).map_err(SchemaError::NotSysFlow)?;
        if let Some(path) = schema.zero_size_array() {
            return Err(SchemaError::NotSysFlow(format!(
                "arrays of items that take no bytes ({path}) are not SysFlow"
            )));
        }
        let top = resolution.top;
        let branches: Vec<Branch> = top.branches.iter().map(|b| b.info.clone()).collect();
        let names = branches.iter().map(|b| b.simple_name().into()).collect();
        Ok(SysFlowDecoder {
            schema,
            top,
            branches: BranchTable::new(branches),
            names,
            unresolved: resolution.unresolved,
            exact: true,
        })
    }

    /// The branches of the writer's `rec` union, in union order, with the record type each
    /// resolves to.
    pub fn branches(&self) -> &BranchTable {
        &self.branches
    }

    /// The writer fields that cannot be resolved against the reader schema (the reader's
    /// default takes their place in every record), in union and field order.
    pub fn unresolved(&self) -> &[Unresolved] {
        &self.unresolved
    }

    /// For each branch whose writer lacks reader fields: the writer's record name and those
    /// reader fields, which get their defaults (older layouts: `ip`, `filename`, `entry`,
    /// `cwd`, `env`, ...).
    pub fn defaulted(&self) -> Vec<(String, Vec<&'static str>)> {
        resolve::defaulted(&self.top)
    }

    /// Whether the datums of branch `index` are decoded by a straight-line decoder for a
    /// layout the collector writes today (the fast path), rather than by their plan.
    pub fn has_exact_layout(&self, index: u32) -> bool {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.top.branches.get(i))
            .is_some_and(|b| b.layout.is_some())
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
    use crate::container::Container;

    const SCHEMA_V5: &str = include_str!("../../../resources/schemas/sysflow-v5.avsc");

    fn shared_traces() -> Vec<std::path::PathBuf> {
        let shared = std::env::var_os("SF_SHARED_DIR")
            .map_or_else(|| "/work/shared".into(), std::path::PathBuf::from);
        let mut paths = Vec::new();
        for dir in ["traces", "traces-2019"] {
            let Ok(entries) = std::fs::read_dir(shared.join(dir)) else {
                continue;
            };
            paths.extend(entries.map(|e| e.expect("entry").path()));
        }
        paths.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        paths.dedup_by(|a, b| a.file_name() == b.file_name());
        assert!(paths.len() >= 15, "the shared traces");
        paths
    }

    /// Every record of a trace, with or without the straight-line decoders; the number of
    /// branches with a known layout.
    fn decode_all(path: &std::path::Path, exact: bool) -> (Vec<Record>, usize) {
        let file = std::fs::File::open(path).expect("open");
        let mut container = Container::open(std::io::BufReader::new(file)).expect("header");
        let json = container.header().get("avro.schema").expect("schema");
        let mut decoder =
            SysFlowDecoder::from_schema_json(std::str::from_utf8(&json.value).expect("UTF-8"))
                .expect("decoder");
        decoder.exact = exact;
        let layouts = decoder
            .top
            .branches
            .iter()
            .filter(|b| b.layout.is_some())
            .count();
        let mut records = Vec::new();
        let mut data = Vec::new();
        while let Some(block) = container.next_block(&mut data) {
            let block = block.expect("block");
            for r in decoder.decode_block(&data, block.count) {
                records.push(r.unwrap_or_else(|e| panic!("{}: {e}", path.display())));
            }
        }
        (records, layouts)
    }

    /// The straight-line decoders of `exact.rs` and the generic plans give the same records.
    #[test]
    fn exact_layouts_and_generic_plans_agree_on_every_shared_trace() {
        let mut exact_branches = 0;
        for path in shared_traces() {
            let (exact, layouts) = decode_all(&path, true);
            let (generic, _) = decode_all(&path, false);
            exact_branches += layouts;
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
        let decoder = SysFlowDecoder::from_schema_json(SCHEMA_V5).expect("v5");
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
        let decoder = SysFlowDecoder::from_schema_json(SCHEMA_V5).expect("v5");
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
