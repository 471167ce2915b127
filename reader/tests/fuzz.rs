//! Fuzzing, on the stable toolchain, with proptest: the trace decoder over mutated real traces
//! (bit flips, overwrites, truncations, insertions, deletions, duplicated blocks, corrupt block
//! headers), schema resolution over altered writer schemas (fields removed, swapped, renamed
//! or retyped, records renamed, enum symbols changed) read against real data, and the frame
//! codec over arbitrary bytes and mutated valid frames.
//!
//! Properties: no panic; no hang (each input is decoded on its own thread and must finish
//! within [`TIME_LIMIT`]); bounded memory (the peak resident set grows by at most
//! [`MEMORY_LIMIT`] while an input is decoded); well-formed results (every error names the
//! input, nothing follows an error that ends the input); and resynchronization: one flipped
//! bit inside a block costs at most that block, every record of every other block is
//! delivered.
//!
//! The number of cases per property is `PROPTEST_CASES` (default: a few dozen, seconds in
//! `cargo test`). Long runs, as recorded in `reader/FUZZING.md`:
//!
//! ```sh
//! PROPTEST_CASES=20000 cargo test --release -p sf-reader --test fuzz -- --nocapture
//! ```
//!
//! Each property prints its case count, duration, slowest input and largest memory growth.

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use apache_avro::{Codec, Writer};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::Value as Json;
use sf_processor::codec;
use sf_processor::model::Record;
use sf_reader::container::Container;
use sf_reader::trace::TraceReader;

/// Longest one input may take to decode before it counts as a hang (generous: debug builds on
/// a loaded two-core machine; a clean k8s_small.sf takes well under a second).
const TIME_LIMIT: Duration = Duration::from_secs(20);

/// Most the peak resident set may grow while one input is decoded.
const MEMORY_LIMIT: u64 = 512 << 20;

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn config(default_cases: u32) -> Config {
    Config {
        cases: cases(default_cases),
        failure_persistence: None,
        max_shrink_time: 120_000,
        ..Config::default()
    }
}

fn shared_dir() -> PathBuf {
    std::env::var_os("SF_SHARED_DIR").map_or_else(|| PathBuf::from("/work/shared"), PathBuf::from)
}

// ---------------------------------------------------------------------------------------------
// Corpus
// ---------------------------------------------------------------------------------------------

/// A clean trace, its block layout and its records.
struct Trace {
    name: String,
    bytes: Vec<u8>,
    /// Per block: byte range, index of its first record, record count.
    blocks: Vec<(std::ops::Range<usize>, usize, usize)>,
    records: Vec<Record>,
}

fn layout(bytes: &[u8]) -> Vec<(std::ops::Range<usize>, usize, usize)> {
    let mut container = Container::open(bytes).expect("clean header");
    let mut data = Vec::new();
    let mut blocks = Vec::new();
    let mut first = 0;
    while let Some(block) = container.next_block(&mut data) {
        let block = block.expect("clean block");
        let count = block.count as usize;
        blocks.push((block.offset as usize..block.end as usize, first, count));
        first += count;
    }
    blocks
}

fn trace(name: String, bytes: Vec<u8>) -> Trace {
    let records = TraceReader::new(Cursor::new(&bytes), name.clone())
        .expect("clean")
        .map(|r| r.expect("clean record"))
        .collect();
    Trace {
        blocks: layout(&bytes),
        name,
        bytes,
        records,
    }
}

/// `bytes` rewritten with the null codec: the fuzzer then reaches the datum decoder directly.
fn with_null_codec(bytes: &[u8]) -> Vec<u8> {
    let reader = apache_avro::Reader::new(Cursor::new(bytes)).expect("avro");
    let schema = reader.writer_schema().clone();
    let mut writer = Writer::with_codec(&schema, Vec::new(), Codec::Null);
    for value in reader {
        writer
            .append_value_ref(&value.expect("datum"))
            .expect("append");
    }
    writer.into_inner().expect("flush")
}

fn corpus() -> &'static [Trace] {
    static CORPUS: OnceLock<Vec<Trace>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let mut all = Vec::new();
        for name in [
            "tcp.sf",
            "tcp-procflow-v1000.sf",
            "filesat-v5.sf",
            "httpd.sf",
            "shellshock.sf",
            "k8s_small.sf",
            "play-mon.1548965896",
        ] {
            let mut path = shared_dir().join("traces").join(name);
            if !path.exists() {
                // The January-2019 layout, until it moves into traces/.
                path = shared_dir().join("traces-2019").join(name);
            }
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if matches!(name, "shellshock.sf" | "k8s_small.sf") {
                all.push(trace(format!("{name}.null"), with_null_codec(&bytes)));
            }
            all.push(trace(name.to_owned(), bytes));
        }
        all
    })
}

/// The traces with more than one block.
fn multi_block() -> Vec<&'static Trace> {
    corpus().iter().filter(|t| t.blocks.len() > 1).collect()
}

// ---------------------------------------------------------------------------------------------
// Mutations
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(Index, u8),
    Overwrite(Index, Vec<u8>),
    Truncate(Index),
    Insert(Index, Vec<u8>),
    Delete(Index, usize),
    /// A copy of a whole block (of the clean layout) inserted after it.
    DuplicateBlock(Index),
    /// A block's count or size replaced by another varint.
    BlockHeader(Index, bool, i64),
    /// A block's sync marker copied somewhere else.
    StraySync(Index, Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let bytes = prop::collection::vec(any::<u8>(), 1..24);
    prop_oneof![
        4 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        2 => (any::<Index>(), bytes.clone()).prop_map(|(i, b)| Mutation::Overwrite(i, b)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => (any::<Index>(), bytes).prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => (any::<Index>(), 1usize..4096).prop_map(|(i, n)| Mutation::Delete(i, n)),
        1 => any::<Index>().prop_map(Mutation::DuplicateBlock),
        2 => (
            any::<Index>(),
            any::<bool>(),
            prop_oneof![any::<i64>(), -2i64..70_000, Just(i64::MAX), Just(64 << 20)]
        )
            .prop_map(|(i, c, v)| Mutation::BlockHeader(i, c, v)),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::StraySync(a, b)),
    ]
}

fn varint(v: i64) -> Vec<u8> {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    let mut out = Vec::new();
    loop {
        let b = (z & 0x7f) as u8;
        z >>= 7;
        if z == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

/// Where a mutation's position falls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Region {
    /// Anywhere in the file.
    All,
    /// After the header: most damage goes there (the header is a small part of the file,
    /// and a damaged header only ever rejects the file).
    Blocks,
    /// Inside the header (mostly its schema JSON).
    Header,
}

/// Applies `m` to `bytes` (positions relative to the current length, within `region`; block
/// positions from the clean layout, clamped).
fn apply(bytes: &mut Vec<u8>, m: &Mutation, region: Region, t: &Trace) {
    let len = bytes.len();
    let header_len = t
        .blocks
        .first()
        .map_or(len, |(range, _, _)| range.start.min(len));
    let (from, to) = match region {
        Region::All => (0, len),
        Region::Blocks => (header_len, len),
        Region::Header => (0, header_len),
    };
    let at = |i: &Index| {
        if to <= from {
            from.min(len)
        } else {
            from + i.index(to - from)
        }
    };
    match m {
        Mutation::FlipBit(i, bit) => {
            if let Some(b) = bytes.get_mut(at(i)) {
                *b ^= 1 << bit;
            }
        }
        Mutation::Overwrite(i, new) => {
            let start = at(i);
            for (k, b) in new.iter().enumerate() {
                if let Some(slot) = bytes.get_mut(start + k) {
                    *slot = *b;
                }
            }
        }
        Mutation::Truncate(i) => bytes.truncate(at(i)),
        Mutation::Insert(i, new) => {
            let start = at(i);
            bytes.splice(start..start, new.iter().copied());
        }
        Mutation::Delete(i, n) => {
            let start = at(i);
            let end = (start + n).min(len);
            bytes.drain(start..end);
        }
        Mutation::DuplicateBlock(i) => {
            if t.blocks.is_empty() {
                return;
            }
            let (range, _, _) = &t.blocks[i.index(t.blocks.len())];
            if range.end <= len {
                let copy = bytes[range.clone()].to_vec();
                bytes.splice(range.end..range.end, copy);
            }
        }
        Mutation::BlockHeader(i, count, value) => {
            if t.blocks.is_empty() {
                return;
            }
            let (range, _, _) = &t.blocks[i.index(t.blocks.len())];
            let Some(head) = bytes.get(range.start..) else {
                return;
            };
            // Skip the count to reach the size.
            let count_len = head.iter().position(|b| b & 0x80 == 0).map_or(1, |p| p + 1);
            let start = if *count {
                range.start
            } else {
                range.start + count_len
            };
            let old_len = bytes
                .get(start..)
                .and_then(|h| h.iter().position(|b| b & 0x80 == 0))
                .map_or(0, |p| p + 1);
            let end = (start + old_len).min(bytes.len());
            if start <= end {
                bytes.splice(start..end, varint(*value));
            }
        }
        Mutation::StraySync(from, to) => {
            if t.blocks.is_empty() || len < 16 {
                return;
            }
            let (range, _, _) = &t.blocks[from.index(t.blocks.len())];
            if let Some(marker) = bytes.get(range.end.saturating_sub(16)..range.end) {
                let marker = marker.to_vec();
                let start = to.index(len - 15);
                bytes[start..start + 16].copy_from_slice(&marker);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Running one input under watch
// ---------------------------------------------------------------------------------------------

/// What decoding one input gave.
#[derive(Debug, Default)]
struct Outcome {
    header_error: Option<String>,
    /// The records, when kept.
    records: Vec<Record>,
    /// Records delivered.
    count: usize,
    errors: Vec<(String, bool)>,
    elapsed: Duration,
    memory_growth: u64,
}

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resets the peak resident set (Linux `clear_refs` 5) and returns the current one, in bytes.
fn reset_peak_rss() -> Option<u64> {
    std::fs::write("/proc/self/clear_refs", "5").ok()?;
    Some(status_kib("VmRSS:")? * 1024)
}

/// Decodes `bytes` on its own thread; fails on a panic or when it takes over [`TIME_LIMIT`].
fn decode_watched(bytes: Vec<u8>, name: &str, keep_records: bool) -> Result<Outcome, String> {
    // One input at a time, so that the resident set measured is this input's.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let name = name.to_owned();
    let baseline = reset_peak_rss();
    let start = Instant::now();
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let mut out = Outcome::default();
        match TraceReader::new(Cursor::new(&bytes), name) {
            Err(e) => out.header_error = Some(e.to_string()),
            Ok(reader) => {
                for item in reader {
                    match item {
                        Ok(r) => {
                            out.count += 1;
                            if keep_records {
                                out.records.push(r);
                            }
                        }
                        Err(e) => out.errors.push((e.to_string(), e.ends_stream())),
                    }
                }
            }
        }
        let _ = tx.send(());
        out
    });
    if rx.recv_timeout(TIME_LIMIT).is_err() && !worker.is_finished() {
        // The thread is left running: the test fails anyway.
        return Err(format!("no result within {TIME_LIMIT:?}: a hang"));
    }
    let mut out = worker
        .join()
        .map_err(|_| "the decoder panicked".to_owned())?;
    out.elapsed = start.elapsed();
    if let (Some(base), Some(peak)) = (baseline, status_kib("VmHWM:")) {
        out.memory_growth = (peak * 1024).saturating_sub(base);
    }
    Ok(out)
}

/// Checks the shape of an outcome: errors name the input, nothing after an ending error,
/// time and memory within bounds.
fn check(out: &Outcome, name: &str) -> Result<(), TestCaseError> {
    prop_assert!(out.elapsed < TIME_LIMIT, "took {:?}", out.elapsed);
    prop_assert!(
        out.memory_growth <= MEMORY_LIMIT,
        "resident set grew by {} MiB",
        out.memory_growth >> 20
    );
    if let Some(e) = &out.header_error {
        prop_assert!(e.starts_with(&format!("{name}: ")), "{}", e);
        // A panic caught by the reader's last line of defence is still a finding.
        prop_assert!(!e.contains("panicked"), "{}", e);
    }
    for (i, (e, ends)) in out.errors.iter().enumerate() {
        prop_assert!(e.starts_with(&format!("{name}: ")), "{}", e);
        prop_assert!(!e.contains("panicked"), "{}", e);
        prop_assert!(
            !ends || i + 1 == out.errors.len(),
            "errors after an end: {:?}",
            out.errors
        );
    }
    Ok(())
}

/// Running maxima, printed at the end of a property.
#[derive(Debug, Default)]
struct Tally {
    cases: u64,
    header_errors: u64,
    with_errors: u64,
    clean: u64,
    slowest: Duration,
    most_memory: u64,
}

impl Tally {
    fn add(&mut self, out: &Outcome, what: &str, started: Instant) {
        self.cases += 1;
        if out.header_error.is_some() {
            self.header_errors += 1;
        } else if out.errors.is_empty() {
            self.clean += 1;
        } else {
            self.with_errors += 1;
        }
        self.slowest = self.slowest.max(out.elapsed);
        self.most_memory = self.most_memory.max(out.memory_growth);
        // A progress line every tenth of a long run.
        let total = u64::from(cases(0));
        if total >= 10_000 && self.cases.is_multiple_of(total / 10) {
            self.report(what, started);
        }
    }

    fn report(&self, what: &str, started: Instant) {
        eprintln!(
            "fuzz {what}: {} cases in {:.1?} ({} header errors, {} with errors, {} clean); slowest input {:.1?}; largest resident-set growth {} KiB",
            self.cases,
            started.elapsed(),
            self.header_errors,
            self.with_errors,
            self.clean,
            self.slowest,
            self.most_memory >> 10
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

#[test]
fn the_decoder_survives_any_damage_to_real_traces() {
    let corpus = corpus();
    let started = Instant::now();
    let tally = std::cell::RefCell::new(Tally::default());
    let strategy = (
        0..corpus.len(),
        prop::collection::vec(
            (
                mutation(),
                prop::bool::weighted(0.9)
                    .prop_map(|b| if b { Region::Blocks } else { Region::All }),
            ),
            1..6,
        ),
    );
    let mut runner = TestRunner::new(config(48));
    let result = runner.run(&strategy, |(which, mutations)| {
        let t = &corpus[which];
        let mut bytes = t.bytes.clone();
        for (m, region) in &mutations {
            apply(&mut bytes, m, *region, t);
        }
        let out = decode_watched(bytes, &t.name, false).map_err(TestCaseError::fail)?;
        check(&out, &t.name)?;
        // Records come from blocks, which hold at most their bytes' worth.
        prop_assert!(out.count <= 2 * t.records.len() + 10_000);
        tally
            .borrow_mut()
            .add(&out, "decoder (any damage)", started);
        Ok(())
    });
    tally.borrow().report("decoder (any damage)", started);
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn the_header_parser_survives_damage_to_the_schema() {
    // Bit flips and small overwrites inside the header mostly keep the schema JSON valid JSON,
    // which exercises the schema parser (apache-avro's panicked on some of it).
    let corpus = corpus();
    let started = Instant::now();
    let tally = std::cell::RefCell::new(Tally::default());
    let edit = prop_oneof![
        3 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        1 => (any::<Index>(), prop::collection::vec(any::<u8>(), 1..4))
            .prop_map(|(i, b)| Mutation::Overwrite(i, b)),
    ];
    let strategy = (0..corpus.len(), prop::collection::vec(edit, 1..4));
    let mut runner = TestRunner::new(config(48));
    let result = runner.run(&strategy, |(which, edits)| {
        let t = &corpus[which];
        let mut bytes = t.bytes.clone();
        for m in &edits {
            apply(&mut bytes, m, Region::Header, t);
        }
        let out = decode_watched(bytes, &t.name, false).map_err(TestCaseError::fail)?;
        check(&out, &t.name)?;
        tally.borrow_mut().add(&out, "header parser", started);
        Ok(())
    });
    tally.borrow().report("header parser", started);
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn one_flipped_bit_inside_a_block_costs_that_block_only() {
    let traces = multi_block();
    assert!(traces.len() >= 2, "multi-block traces in the corpus");
    let started = Instant::now();
    let tally = std::cell::RefCell::new(Tally::default());
    let strategy = (0..traces.len(), any::<Index>(), any::<Index>(), 0u8..8);
    let mut runner = TestRunner::new(config(24));
    let result = runner.run(&strategy, |(which, block, at, bit)| {
        let t = traces[which];
        let (range, first, count) = t.blocks[block.index(t.blocks.len())].clone();
        let mut bytes = t.bytes.clone();
        bytes[range.start + at.index(range.len())] ^= 1 << bit;
        let out = decode_watched(bytes, &t.name, true).map_err(TestCaseError::fail)?;
        check(&out, &t.name)?;
        prop_assert!(out.header_error.is_none());
        let before = &t.records[..first];
        let after = &t.records[first + count..];
        prop_assert!(
            out.records.starts_with(before) && out.records.ends_with(after),
            "records of other blocks lost: {} delivered, {} before and {} after the damaged block; errors {:?}",
            out.records.len(),
            before.len(),
            after.len(),
            out.errors
        );
        prop_assert!(out.records.len() <= before.len() + after.len() + 2 * count + 1);
        tally
            .borrow_mut()
            .add(&out, "decoder (one bit flipped in a block)", started);
        Ok(())
    });
    tally
        .borrow()
        .report("decoder (one bit flipped in a block)", started);
    if let Err(e) = result {
        panic!("{e}");
    }
}

// ---------------------------------------------------------------------------------------------
// Schema resolution
// ---------------------------------------------------------------------------------------------

/// A change to a writer schema's JSON.
#[derive(Debug, Clone)]
enum SchemaEdit {
    DeleteField(Index, Index),
    SwapFields(Index, Index, Index),
    SetType(Index, Index, Index),
    RenameField(Index, Index, Index),
    RenameRecord(Index, Index),
    ReverseSymbols(Index),
    AddSymbol(Index),
}

fn schema_edit() -> impl Strategy<Value = SchemaEdit> {
    let i = || any::<Index>();
    prop_oneof![
        1 => (i(), i()).prop_map(|(r, f)| SchemaEdit::DeleteField(r, f)),
        1 => (i(), i(), i()).prop_map(|(r, a, b)| SchemaEdit::SwapFields(r, a, b)),
        3 => (i(), i(), i()).prop_map(|(r, f, t)| SchemaEdit::SetType(r, f, t)),
        1 => (i(), i(), i()).prop_map(|(r, f, n)| SchemaEdit::RenameField(r, f, n)),
        1 => (i(), i()).prop_map(|(r, n)| SchemaEdit::RenameRecord(r, n)),
        1 => i().prop_map(SchemaEdit::ReverseSymbols),
        1 => i().prop_map(SchemaEdit::AddSymbol),
    ]
}

/// The JSON paths (as pointers) of every object of `json` with `"type": kind`.
fn pointers(json: &Json, kind: &str, at: String, out: &mut Vec<String>) {
    match json {
        Json::Object(map) => {
            if map.get("type").and_then(Json::as_str) == Some(kind) {
                out.push(at.clone());
            }
            for (k, v) in map {
                pointers(v, kind, format!("{at}/{k}"), out);
            }
        }
        Json::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                pointers(v, kind, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn edit_schema(json: &mut Json, edit: &SchemaEdit) {
    let mut records = Vec::new();
    pointers(json, "record", String::new(), &mut records);
    let mut enums = Vec::new();
    pointers(json, "enum", String::new(), &mut enums);
    let record = |r: &Index| (!records.is_empty()).then(|| records[r.index(records.len())].clone());
    const TYPES: [&str; 10] = [
        r#""int""#,
        r#""long""#,
        r#""string""#,
        r#""bytes""#,
        r#""boolean""#,
        r#""null""#,
        r#""float""#,
        r#""double""#,
        r#"["null", "int"]"#,
        r#"{"type": "array", "items": "long"}"#,
    ];
    const NAMES: [&str; 6] = ["type", "state", "opFlags", "fd", "args", "x"];
    const RECORDS: [&str; 6] = [
        "ProcessFlow",
        "ProcessEvent",
        "Process",
        "File",
        "OID",
        "Gizmo",
    ];
    match edit {
        SchemaEdit::DeleteField(r, f)
        | SchemaEdit::SetType(r, f, _)
        | SchemaEdit::RenameField(r, f, _)
        | SchemaEdit::SwapFields(r, f, _) => {
            let Some(ptr) = record(r) else { return };
            let Some(fields) = json
                .pointer_mut(&format!("{ptr}/fields"))
                .and_then(Json::as_array_mut)
            else {
                return;
            };
            if fields.is_empty() {
                return;
            }
            let i = f.index(fields.len());
            match edit {
                SchemaEdit::DeleteField(..) => {
                    fields.remove(i);
                }
                SchemaEdit::SwapFields(_, _, b) => {
                    let j = b.index(fields.len());
                    fields.swap(i, j);
                }
                SchemaEdit::SetType(_, _, t) => {
                    fields[i]["type"] =
                        serde_json::from_str(TYPES[t.index(TYPES.len())]).expect("type");
                }
                SchemaEdit::RenameField(_, _, n) => {
                    fields[i]["name"] = Json::from(NAMES[n.index(NAMES.len())]);
                }
                _ => {}
            }
        }
        SchemaEdit::RenameRecord(r, n) => {
            if let Some(ptr) = record(r)
                && let Some(obj) = json.pointer_mut(&ptr)
            {
                obj["name"] = Json::from(RECORDS[n.index(RECORDS.len())]);
            }
        }
        SchemaEdit::ReverseSymbols(e) | SchemaEdit::AddSymbol(e) => {
            if enums.is_empty() {
                return;
            }
            let ptr = &enums[e.index(enums.len())];
            if let Some(symbols) = json
                .pointer_mut(&format!("{ptr}/symbols"))
                .and_then(Json::as_array_mut)
            {
                if matches!(edit, SchemaEdit::ReverseSymbols(_)) {
                    symbols.reverse();
                } else {
                    symbols.push(Json::from("NEW_SYMBOL"));
                }
            }
        }
    }
}

/// `bytes` with another writer schema in its header (the blocks as they are).
fn with_schema(bytes: &[u8], schema: &str) -> Vec<u8> {
    let container = Container::open(bytes).expect("clean header");
    let header = container.header();
    let mut out = b"Obj\x01".to_vec();
    out.extend(varint(header.metadata.len() as i64));
    for entry in &header.metadata {
        let value = if entry.key == "avro.schema" {
            schema.as_bytes()
        } else {
            &entry.value[..]
        };
        out.extend(varint(entry.key.len() as i64));
        out.extend(entry.key.as_bytes());
        out.extend(varint(value.len() as i64));
        out.extend(value);
    }
    out.push(0);
    out.extend(header.sync);
    let start = usize::try_from(header.len).expect("header length");
    out.extend(&bytes[start..]);
    out
}

#[test]
fn schema_resolution_survives_altered_writer_schemas() {
    let corpus = corpus();
    let started = Instant::now();
    let tally = std::cell::RefCell::new(Tally::default());
    let strategy = (0..corpus.len(), prop::collection::vec(schema_edit(), 1..5));
    let mut runner = TestRunner::new(config(48));
    let result = runner.run(&strategy, |(which, edits)| {
        let t = &corpus[which];
        let container = Container::open(&t.bytes[..]).expect("clean header");
        let text = &container.header().get("avro.schema").expect("schema").value;
        let mut json: Json = serde_json::from_slice(text).expect("schema JSON");
        for edit in &edits {
            edit_schema(&mut json, edit);
        }
        let bytes = with_schema(&t.bytes, &json.to_string());
        let out = decode_watched(bytes, &t.name, false).map_err(TestCaseError::fail)?;
        check(&out, &t.name)?;
        prop_assert!(out.count <= 2 * t.records.len() + 10_000);
        tally.borrow_mut().add(&out, "schema resolution", started);
        Ok(())
    });
    tally.borrow().report("schema resolution", started);
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn an_unaltered_schema_written_anew_decodes_as_the_original() {
    // The fuzzer's header rewriting keeps everything else as it was.
    for t in corpus() {
        let container = Container::open(&t.bytes[..]).expect("clean header");
        let text = container
            .header()
            .get("avro.schema")
            .expect("schema")
            .value
            .clone();
        let bytes = with_schema(&t.bytes, std::str::from_utf8(&text).expect("UTF-8"));
        let out = decode_watched(bytes, &t.name, true).expect("decodes");
        assert!(
            out.errors.is_empty() && out.header_error.is_none(),
            "{}",
            t.name
        );
        assert!(out.records == t.records, "{}", t.name);
    }
}

/// Every record of the corpus, encoded as a frame payload.
fn frames() -> &'static [Vec<u8>] {
    static FRAMES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    FRAMES.get_or_init(|| {
        let mut all = Vec::new();
        for t in corpus() {
            for r in &t.records {
                let mut buf = Vec::new();
                codec::encode(r, &mut buf).expect("encode");
                all.push(buf);
            }
        }
        all
    })
}

/// Decodes a frame payload on a watched thread: no panic, bounded time; a payload that
/// decodes re-encodes to a payload that decodes to the same record.
fn check_frame(payload: Vec<u8>) -> Result<bool, TestCaseError> {
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let decoded = codec::decode(&payload).ok();
        let _ = tx.send(());
        decoded
    });
    if rx.recv_timeout(TIME_LIMIT).is_err() && !worker.is_finished() {
        return Err(TestCaseError::fail("frame decoder hang"));
    }
    let decoded = worker
        .join()
        .map_err(|_| TestCaseError::fail("the frame decoder panicked"))?;
    let Some(record) = decoded else {
        return Ok(false);
    };
    let mut again = Vec::new();
    codec::encode(&record, &mut again).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(codec::decode(&again).ok(), Some(record));
    Ok(true)
}

#[test]
fn the_frame_codec_survives_arbitrary_and_mutated_payloads() {
    let frames = frames();
    let started = Instant::now();
    let decoded = std::cell::Cell::new(0u64);
    let cases_run = std::cell::Cell::new(0u64);
    let payload = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        (
            any::<Index>(),
            prop::collection::vec((any::<Index>(), any::<u8>(), 0u8..4), 1..4),
        )
            .prop_map(move |(which, edits)| {
                let mut p = which.get(frames).clone();
                for (at, byte, kind) in edits {
                    let len = p.len().max(1);
                    let i = at.index(len);
                    match kind {
                        0 if i < p.len() => p[i] = byte,
                        1 if i < p.len() => p[i] ^= 1 << (byte % 8),
                        2 => p.truncate(i),
                        _ => p.insert(i.min(p.len()), byte),
                    }
                }
                p
            }),
    ];
    let mut runner = TestRunner::new(config(512));
    let total = u64::from(cases(0));
    let result = runner.run(&payload, |p| {
        cases_run.set(cases_run.get() + 1);
        if total >= 10_000 && cases_run.get().is_multiple_of(total / 10) {
            eprintln!(
                "fuzz frame codec: {} cases in {:.1?}",
                cases_run.get(),
                started.elapsed()
            );
        }
        if check_frame(p)? {
            decoded.set(decoded.get() + 1);
        }
        Ok(())
    });
    eprintln!(
        "fuzz frame codec: {} cases in {:.1?} ({} decoded to a record, the rest rejected)",
        cases_run.get(),
        started.elapsed(),
        decoded.get()
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}
