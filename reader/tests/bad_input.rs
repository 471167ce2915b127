//! Every kind of bad input the issue lists, at the reader level: the exact error (file and
//! byte offset), the records still delivered, and the counts of what was skipped.
//!
//! Damage is made either in copies of the shared traces (block layouts below, from the files)
//! or in containers built here byte by byte, so every expected offset is known.
//!
//! `k8s_small.sf`: header 6130 bytes, six deflate blocks:
//!
//! | block at byte | records | count+size bytes | data bytes | sync marker at |
//! |---|---|---|---|---|
//! | 6130   | 1091 | 5 | 27519 | 33654 |
//! | 33670  | 1281 | 5 | 26198 | 59873 |
//! | 59889  | 1306 | 5 | 22507 | 82401 |
//! | 82417  | 1136 | 5 | 24860 | 107282 |
//! | 107298 | 1092 | 5 | 24551 | 131854 |
//! | 131870 | 267  | 4 | 7549  | 139423 |

use std::io::{Cursor, Write};
use std::path::PathBuf;

use apache_avro::types::Value;
use apache_avro::{Schema, to_avro_datum};
use sf_processor::codec::{self, WIRE_VERSION};
use sf_processor::model::{Record, RecordKind};
use sf_processor::ring::{Consumer, Next, Producer, RingSegment};
use sf_reader::driver::{self, Overflow, Publisher, ReadSummary, Target};
use sf_reader::error::DecodeError;
use sf_reader::trace::{Skipped, TraceReader};

fn shared_dir() -> PathBuf {
    std::env::var_os("SF_SHARED_DIR").map_or_else(|| PathBuf::from("/work/shared"), PathBuf::from)
}

fn trace_bytes(name: &str) -> Vec<u8> {
    let path = shared_dir().join("traces").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What decoding an input gave: records, error messages, skip counts.
#[derive(Debug)]
struct Decoded {
    records: Vec<Record>,
    errors: Vec<String>,
    skipped: Skipped,
    ended_by_error: bool,
}

/// What the reader gives for an input whose header is sound.
fn decode(bytes: &[u8], name: &str) -> Decoded {
    let mut reader = TraceReader::new(Cursor::new(bytes), name.to_owned()).expect("header");
    let mut out = Decoded {
        records: Vec::new(),
        errors: Vec::new(),
        skipped: Skipped::default(),
        ended_by_error: false,
    };
    for item in reader.by_ref() {
        match item {
            Ok(r) => out.records.push(r),
            Err(e) => {
                out.ended_by_error = e.ends_stream();
                out.errors.push(e.to_string());
            }
        }
    }
    out.skipped = reader.skipped();
    out
}

/// The header error.
fn open_error(bytes: &[u8], name: &str) -> DecodeError {
    TraceReader::new(Cursor::new(bytes), name.to_owned()).expect_err("a header error")
}

/// The records of a clean shared trace, which apache-avro reads the same (`sf_oracle`).
fn clean(name: &str) -> Vec<Record> {
    let d = decode(&trace_bytes(name), name);
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    let oracle = sf_oracle::read(&shared_dir().join("traces").join(name)).expect("oracle");
    assert_records(&d.records, &oracle);
    d.records
}

/// `full` without the records `skip` (a range of indices).
fn without(full: &[Record], skip: std::ops::Range<usize>) -> Vec<Record> {
    full[..skip.start]
        .iter()
        .chain(&full[skip.end..])
        .cloned()
        .collect()
}

fn skipped(blocks: u64, uncounted_blocks: u64, records: u64, errors: u64) -> Skipped {
    Skipped {
        blocks,
        uncounted_blocks,
        records,
        unknown_type: 0,
        errors,
    }
}

/// Asserts equality of two record lists without printing thousands of records.
fn assert_records(got: &[Record], want: &[Record]) {
    assert_eq!(got.len(), want.len(), "record counts");
    if let Some(i) = got.iter().zip(want).position(|(g, w)| g != w) {
        panic!("record {i} differs: {:?} != {:?}", got[i], want[i]);
    }
}

// ---------------------------------------------------------------------------------------------
// Containers built byte by byte
// ---------------------------------------------------------------------------------------------

/// An Avro long (zig-zag varint).
fn long(v: i64) -> Vec<u8> {
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

const SYNC: [u8; 16] = *b"0123456789abcdef";

/// A container header with these metadata entries (in order).
fn header(metadata: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = b"Obj\x01".to_vec();
    out.extend(long(metadata.len() as i64));
    for (k, v) in metadata {
        out.extend(long(k.len() as i64));
        out.extend(k.as_bytes());
        out.extend(long(v.len() as i64));
        out.extend(*v);
    }
    out.extend(long(0));
    out.extend(SYNC);
    out
}

/// A block: count, size, data, sync marker.
fn block(count: i64, data: &[u8]) -> Vec<u8> {
    let mut out = long(count);
    out.extend(long(data.len() as i64));
    out.extend(data);
    out.extend(SYNC);
    out
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("deflate");
    e.finish().expect("deflate")
}

/// The SysFlow schema 5 of `tcp-client-server-v5.sf` and its 23 records, each as the datum
/// bytes and the record it decodes to.
fn v5_datums() -> (String, Vec<(Vec<u8>, Record)>) {
    let bytes = trace_bytes("tcp-client-server-v5.sf");
    let reader = TraceReader::new(Cursor::new(&bytes), "v5".into()).expect("open");
    let json = reader.file().schema_json().to_owned();
    let schema = Schema::parse_str(&json).expect("schema");
    let records: Vec<Record> = reader.map(|r| r.expect("clean")).collect();
    let values: Vec<Value> = apache_avro::Reader::new(Cursor::new(&bytes))
        .expect("apache reader")
        .map(|v| v.expect("value"))
        .collect();
    let datums = values
        .into_iter()
        .map(|v| to_avro_datum(&schema, v).expect("encode"))
        .zip(records)
        .collect();
    (json, datums)
}

/// A null-codec SysFlow container with one block per slice of `datums`.
fn null_container(schema: &str, blocks: &[&[(Vec<u8>, Record)]]) -> (Vec<u8>, Vec<u64>) {
    let mut out = header(&[("avro.schema", schema.as_bytes()), ("avro.codec", b"null")]);
    let mut offsets = Vec::new();
    for b in blocks {
        offsets.push(out.len() as u64);
        let data: Vec<u8> = b.iter().flat_map(|(d, _)| d.clone()).collect();
        out.extend(block(b.len() as i64, &data));
    }
    (out, offsets)
}

// ---------------------------------------------------------------------------------------------
// Files that are not traces at all
// ---------------------------------------------------------------------------------------------

#[test]
fn empty_file() {
    let err = open_error(b"", "empty.sf");
    assert_eq!(
        err.to_string(),
        "empty.sf: empty file (not an Avro object container file)"
    );
    assert_eq!(err.brief(), "empty file");
    assert!(err.ends_stream());
}

#[test]
fn file_shorter_than_the_avro_header() {
    let err = open_error(b"Obj", "short.sf");
    assert_eq!(
        err.to_string(),
        "short.sf: bad Avro header: the file ends at byte 3, inside the Avro header"
    );
    assert_eq!(err.brief(), "truncated Avro header (3 bytes)");
    let bytes = trace_bytes("tcp.sf");
    let err = open_error(&bytes[..2000], "cut.sf");
    assert_eq!(
        err.to_string(),
        "cut.sf: bad Avro header: the file ends at byte 2000, inside the Avro header"
    );
    // The 16-byte sync marker cut.
    let err = open_error(&bytes[..4330], "cut.sf");
    assert_eq!(
        err.to_string(),
        "cut.sf: bad Avro header: the file ends at byte 4330, inside the Avro header"
    );
}

#[test]
fn wrong_magic() {
    let err = open_error(b"# notes\nnot a trace\n", "notes.txt");
    assert_eq!(
        err.to_string(),
        r##"notes.txt: not an Avro object container file (wrong magic at byte 0: found "# no", expected "Obj\x01")"##
    );
    assert_eq!(err.brief(), "not an Avro file (wrong magic at byte 0)");
    let err = open_error(b"\x89PNG\r\n", "image.png");
    assert_eq!(
        err.to_string(),
        r#"image.png: not an Avro object container file (wrong magic at byte 0: found "\x89PNG", expected "Obj\x01")"#
    );
}

#[test]
fn a_non_sysflow_avro_file() {
    let schema = r#"{"type":"record","name":"Weather","namespace":"test","fields":[{"name":"station","type":"string"}]}"#;
    let mut bytes = header(&[("avro.schema", schema.as_bytes())]);
    bytes.extend(block(1, b"\x02x"));
    let err = open_error(&bytes, "weather.avro");
    // Magic 4, map count 1, key length 1 + 11, value length 2: the schema is at byte 19.
    assert_eq!(
        err.to_string(),
        "weather.avro: not a SysFlow trace: the writer schema is the record test.Weather, not sysflow.SysFlow (writer schema at byte 19)"
    );
    assert_eq!(err.brief(), "not a SysFlow trace");
}

#[test]
fn a_schema_that_is_not_json_or_not_avro() {
    let bytes = header(&[("avro.schema", b"{not json")]);
    let err = open_error(&bytes, "bad.avro");
    assert!(
        err.to_string()
            .starts_with("bad.avro: bad Avro header: at byte 18: avro.schema is not JSON: "),
        "{err}"
    );
    let bytes = header(&[("avro.schema", br#"{"type":"nosuch"}"#)]);
    let err = open_error(&bytes, "bad.avro");
    assert!(
        err.to_string().starts_with(
            "bad.avro: bad Avro header: at byte 18: avro.schema is not a valid Avro schema: "
        ),
        "{err}"
    );
    let bytes = header(&[("avro.codec", b"null")]);
    let err = open_error(&bytes, "bad.avro");
    assert_eq!(
        err.to_string(),
        "bad.avro: bad Avro header: at byte 4: the metadata has no avro.schema"
    );
}

#[test]
fn a_schema_with_an_invalid_name_is_refused_without_a_panic() {
    // apache-avro 0.21's schema parser panics on this (found by fuzzing); ours checks names
    // as the specification has them.
    let bytes = header(&[(
        "avro.schema",
        br#"{"type":"record","name":"Sys\u000eFlow","fields":[]}"#,
    )]);
    let err = open_error(&bytes, "name.sf");
    assert_eq!(
        err.to_string(),
        r#"name.sf: bad Avro header: at byte 18: avro.schema is not a valid Avro schema: invalid name "Sys\u{e}Flow""#
    );
}

#[test]
fn an_unsupported_codec() {
    let (schema, _) = v5_datums();
    let bytes = header(&[
        ("avro.codec", b"snappy"),
        ("avro.schema", schema.as_bytes()),
    ]);
    let err = open_error(&bytes, "snappy.sf");
    // Magic 4, map count 1, key length 1 + 10, value length 1: the codec is at byte 17.
    assert_eq!(
        err.to_string(),
        "snappy.sf: unsupported Avro codec \"snappy\" (avro.codec at byte 17); this reader decodes null and deflate"
    );
    assert_eq!(err.brief(), "unsupported Avro codec \"snappy\"");
}

#[test]
fn a_malformed_metadata_map() {
    // A metadata value longer than the limit: refused before any allocation.
    let mut bytes = b"Obj\x01".to_vec();
    bytes.extend(long(1));
    bytes.extend(long(11));
    bytes.extend(b"avro.schema");
    bytes.extend(long(1 << 40));
    let err = open_error(&bytes, "huge.sf");
    assert_eq!(
        err.to_string(),
        "huge.sf: bad Avro header: at byte 17: metadata value length 1099511627776 is out of range (0 to 16 MiB)"
    );
    // A varint that never ends.
    let mut bytes = b"Obj\x01".to_vec();
    bytes.extend([0xff; 12]);
    let err = open_error(&bytes, "varint.sf");
    assert_eq!(
        err.to_string(),
        "varint.sf: bad Avro header: at byte 4: invalid varint in the metadata map"
    );
}

// ---------------------------------------------------------------------------------------------
// Damaged blocks in real traces
// ---------------------------------------------------------------------------------------------

#[test]
fn a_truncated_last_block() {
    let full = clean("k8s_small.sf");
    let bytes = trace_bytes("k8s_small.sf");
    let d = decode(&bytes[..135_000], "k8s_small.sf");
    assert_eq!(
        d.errors,
        [
            "k8s_small.sf: block at byte 131870: truncated: the file ends at byte 135000, inside the block; its 267 records are lost; end of the file"
        ]
    );
    assert!(d.ended_by_error);
    assert_records(&d.records, &full[..full.len() - 267]);
    assert_eq!(d.skipped, skipped(1, 0, 267, 1));

    // Cut inside the block's count and size: the count is known, the size not.
    let d = decode(&bytes[..131_872], "k8s_small.sf");
    assert_eq!(
        d.errors,
        [
            "k8s_small.sf: block at byte 131870: truncated: the file ends at byte 131872, inside the block; its 267 records are lost; end of the file"
        ]
    );
}

#[test]
fn a_block_whose_sync_marker_is_wrong() {
    let full = clean("k8s_small.sf");
    let mut bytes = trace_bytes("k8s_small.sf");
    bytes[59_873] ^= 0xff;
    bytes[59_880] ^= 0x01;
    let d = decode(&bytes, "k8s_small.sf");
    assert_eq!(
        d.errors,
        [
            "k8s_small.sf: block at byte 33670: wrong sync marker at byte 59873; its 1281 records are skipped, reading resumes at byte 59889"
        ]
    );
    assert!(!d.ended_by_error);
    assert_records(&d.records, &without(&full, 1091..1091 + 1281));
    assert_eq!(d.skipped, skipped(1, 0, 1281, 1));
}

#[test]
fn a_block_whose_size_is_wrong() {
    let full = clean("k8s_small.sf");
    let mut bytes = trace_bytes("k8s_small.sf");
    // The second block's size, 26198 (3 bytes), becomes 30000: the marker is not where the
    // size says, but inside the block's supposed extent.
    assert_eq!(bytes[33_672..33_675], long(26_198)[..]);
    bytes[33_672..33_675].copy_from_slice(&long(30_000));
    let d = decode(&bytes, "k8s_small.sf");
    assert_eq!(
        d.errors,
        [
            "k8s_small.sf: block at byte 33670: wrong sync marker at byte 63675; its 1281 records are skipped, reading resumes at byte 59889"
        ]
    );
    assert_records(&d.records, &without(&full, 1091..1091 + 1281));

    // A negative size (a non-minimal varint keeps the length): resynchronized on the marker.
    let mut bytes = trace_bytes("k8s_small.sf");
    bytes[33_672..33_675].copy_from_slice(&[0x81, 0x80, 0x00]);
    let d = decode(&bytes, "k8s_small.sf");
    assert_eq!(
        d.errors,
        [
            "k8s_small.sf: block at byte 33670: size -1 bytes is out of range (0 to 64 MiB); its 1281 records are skipped, reading resumes at byte 59889"
        ]
    );
    assert_records(&d.records, &without(&full, 1091..1091 + 1281));

    // A size that runs past the end of the file, on the fifth block: the marker after it
    // shows the file is not short.
    let mut bytes = trace_bytes("k8s_small.sf");
    assert_eq!(bytes[107_300..107_303], long(24_551)[..]);
    bytes[107_300..107_303].copy_from_slice(&[0xfe, 0xff, 0x7f]); // 1048575
    let d = decode(&bytes, "k8s_small.sf");
    assert_eq!(
        d.errors,
        [
            "k8s_small.sf: block at byte 107298: size 1048575 bytes runs past the end of the file (byte 139439); its 1092 records are skipped, reading resumes at byte 131870"
        ]
    );
    assert_records(&d.records, &without(&full, 5906 - 1092..5906));
}

#[test]
fn a_block_whose_count_is_absurd() {
    let full = clean("k8s_small.sf");
    let mut bytes = trace_bytes("k8s_small.sf");
    // The second block's count, 1281 (2 bytes), becomes -1.
    assert_eq!(bytes[33_670..33_672], long(1281)[..]);
    bytes[33_670..33_672].copy_from_slice(&[0x81, 0x00]);
    let d = decode(&bytes, "k8s_small.sf");
    assert_eq!(
        d.errors,
        [
            "k8s_small.sf: block at byte 33670: record count -1 is out of range (0 to 10000000); its records are skipped, reading resumes at byte 59889"
        ]
    );
    assert_records(&d.records, &without(&full, 1091..1091 + 1281));
    assert_eq!(d.skipped, skipped(1, 1, 0, 1));
}

#[test]
fn a_block_whose_deflate_data_is_corrupt() {
    let full = clean("k8s_small.sf");
    let mut bytes = trace_bytes("k8s_small.sf");
    // The first deflate block header of the second block's data gets the reserved type 3.
    bytes[33_675] |= 0b110;
    let d = decode(&bytes, "k8s_small.sf");
    assert_eq!(
        d.errors,
        [
            "k8s_small.sf: block at byte 33670: corrupt deflate data: corrupt deflate stream; its 1281 records are skipped, reading resumes at byte 59889"
        ]
    );
    assert_records(&d.records, &without(&full, 1091..1091 + 1281));
    assert_eq!(d.skipped, skipped(1, 0, 1281, 1));
}

#[test]
fn garbage_after_the_last_block() {
    let full = clean("tcp.sf");
    let mut bytes = trace_bytes("tcp.sf");
    bytes.extend([0xff; 40]);
    let d = decode(&bytes, "tcp.sf");
    assert_eq!(
        d.errors,
        [
            "tcp.sf: block at byte 4839: its header is not a valid count and size; its records are skipped; no sync marker follows, the rest of the file (to byte 4879) is skipped"
        ]
    );
    assert!(d.ended_by_error);
    assert_records(&d.records, &full);
    assert_eq!(d.skipped, skipped(1, 1, 0, 1));
}

#[test]
fn garbage_between_blocks_costs_the_next_block() {
    // Avro can only resynchronize on a sync marker, which ends a block: garbage before a
    // block costs that block too (as in Java's DataFileReader.sync).
    let full = clean("k8s_small.sf");
    let bytes = trace_bytes("k8s_small.sf");
    let mut damaged = bytes[..33_670].to_vec();
    damaged.extend([0xff; 10]);
    damaged.extend(&bytes[33_670..]);
    let d = decode(&damaged, "k8s_small.sf");
    assert_eq!(
        d.errors,
        [
            "k8s_small.sf: block at byte 33670: its header is not a valid count and size; its records are skipped, reading resumes at byte 59899"
        ]
    );
    assert_records(&d.records, &without(&full, 1091..1091 + 1281));
}

#[test]
fn a_duplicated_block_is_read_twice() {
    // Nothing in the container format tells a copied block from a new one.
    let full = clean("k8s_small.sf");
    let bytes = trace_bytes("k8s_small.sf");
    let mut copy = bytes[..59_889].to_vec();
    copy.extend(&bytes[33_670..]);
    let d = decode(&copy, "k8s_small.sf");
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(d.records.len(), full.len() + 1281);
}

#[test]
fn a_block_that_inflates_beyond_the_limit() {
    let (schema, datums) = v5_datums();
    let mut bytes = header(&[
        ("avro.schema", schema.as_bytes()),
        ("avro.codec", b"deflate"),
    ]);
    let bomb = deflate(&vec![0u8; (64 << 20) + 1]);
    let bomb_at = bytes.len();
    bytes.extend(block(1, &bomb));
    let next_at = bytes.len();
    let data: Vec<u8> = datums.iter().flat_map(|(d, _)| d.clone()).collect();
    bytes.extend(block(datums.len() as i64, &deflate(&data)));
    let d = decode(&bytes, "bomb.sf");
    assert_eq!(
        d.errors,
        [format!(
            "bomb.sf: block at byte {bomb_at}: its data inflates to more than 64 MiB; its 1 record is skipped, reading resumes at byte {next_at}"
        )]
    );
    assert_eq!(d.records.len(), datums.len());
}

// ---------------------------------------------------------------------------------------------
// Damaged data inside a sound block (null codec: bytes as they are)
// ---------------------------------------------------------------------------------------------

#[test]
fn an_undecodable_datum_costs_the_rest_of_its_block() {
    let (schema, datums) = v5_datums();
    let (first, second) = datums.split_at(10);
    let (mut bytes, offsets) = null_container(&schema, &[first, second]);
    // The union index of the 5th datum: 63 (there are 12 branches).
    let datum_at: usize = first[..4].iter().map(|(d, _)| d.len()).sum();
    let first_len: usize = first.iter().map(|(d, _)| d.len()).sum();
    let data_at = offsets[0] as usize + long(10).len() + long(first_len as i64).len();
    assert!(bytes[data_at + datum_at] < 2 * 12, "a branch index");
    bytes[data_at + datum_at] = 2 * 63;
    let d = decode(&bytes, "null.sf");
    assert_eq!(
        d.errors,
        [format!(
            "null.sf: record 4 (block at byte {}): undecodable datum at byte {datum_at} of the block's data: union index 63 out of range (12 branches); 6 records of the block skipped",
            offsets[0]
        )]
    );
    assert!(!d.ended_by_error);
    let want: Vec<Record> = first[..4]
        .iter()
        .chain(second)
        .map(|(_, r)| r.clone())
        .collect();
    assert_records(&d.records, &want);
    assert_eq!(d.skipped, skipped(0, 0, 6, 1));
}

#[test]
fn a_datum_with_an_absurd_length_is_refused_without_allocating() {
    let (schema, datums) = v5_datums();
    let branches = TraceReader::new(
        Cursor::new(trace_bytes("tcp-client-server-v5.sf")),
        "v5".into(),
    )
    .expect("open")
    .file()
    .branches()
    .clone();
    let container = branches
        .branches()
        .iter()
        .position(|b| b.simple_name() == "Container")
        .expect("a Container branch") as i64;
    // A Container whose `id` (its first field) claims 1 TiB.
    let mut data = long(container);
    data.extend(long(1 << 40));
    data.extend(b"web");
    let mut bytes = header(&[("avro.schema", schema.as_bytes())]);
    let at = bytes.len();
    bytes.extend(block(1, &data));
    let good: Vec<u8> = datums.iter().flat_map(|(d, _)| d.clone()).collect();
    bytes.extend(block(datums.len() as i64, &good));
    let d = decode(&bytes, "huge.sf");
    assert_eq!(
        d.errors,
        [format!(
            "huge.sf: record 0 (block at byte {at}): undecodable datum at byte 0 of the block's data: Container field \"id\" at byte 1: truncated: needs 1099511627776 bytes, 3 left in the block; 1 record of the block skipped"
        )]
    );
    assert_eq!(d.records.len(), datums.len());
}

#[test]
fn a_block_count_that_does_not_match_its_data() {
    let (schema, datums) = v5_datums();
    let data: Vec<u8> = datums[..3].iter().flat_map(|(d, _)| d.clone()).collect();
    let mut bytes = header(&[("avro.schema", schema.as_bytes())]);
    let short_at = bytes.len();
    bytes.extend(block(5, &data));
    let long_at = bytes.len();
    bytes.extend(block(2, &data));
    let over_at = bytes.len();
    bytes.extend(block(data.len() as i64 + 1, &data));
    let d = decode(&bytes, "count.sf");
    assert_eq!(
        d.errors,
        [
            format!(
                "count.sf: record 3 (block at byte {short_at}): the block's data ends after 3 of its 5 records; 2 records skipped"
            ),
            format!(
                "count.sf: record 7 (block at byte {long_at}): {} bytes of data left after the block's 2 records (ignored)",
                datums[2].0.len()
            ),
            format!(
                "count.sf: block at byte {over_at}: record count {} is more than its {} bytes of data can hold; its {} records are skipped, reading resumes at byte {}",
                data.len() + 1,
                data.len(),
                data.len() + 1,
                bytes.len()
            ),
        ]
    );
    assert_eq!(d.records.len(), 3 + 2);
}

#[test]
fn an_unknown_union_branch_is_skipped_and_counted() {
    let (schema, datums) = v5_datums();
    let mut json: serde_json::Value = serde_json::from_str(&schema).expect("json");
    json["fields"][0]["type"]
        .as_array_mut()
        .expect("union")
        .push(
            serde_json::json!({"type": "record", "name": "Gizmo", "namespace": "sysflow.entity",
            "fields": [{"name": "x", "type": "int"}]}),
        );
    let schema = json.to_string();
    let gizmo = vec![2 * 12, 2 * 21]; // branch 12, x = 21
    let mut data: Vec<u8> = datums[0].0.clone();
    data.extend(&gizmo);
    data.extend(&datums[1].0);
    let mut bytes = header(&[("avro.schema", schema.as_bytes())]);
    let at = bytes.len();
    bytes.extend(block(3, &data));
    let d = decode(&bytes, "gizmo.sf");
    assert_eq!(
        d.errors,
        [format!(
            "gizmo.sf: record 1 (block at byte {at}): unknown record type sysflow.entity.Gizmo (branch 12 of the rec union); skipped"
        )]
    );
    assert_eq!(d.records, [datums[0].1.clone(), datums[1].1.clone()]);
    assert_eq!(
        d.skipped,
        Skipped {
            records: 1,
            unknown_type: 1,
            errors: 1,
            ..Skipped::default()
        }
    );
}

#[test]
fn a_schema_with_arrays_of_nothing_is_refused() {
    // An array of nulls: a few bytes would decode to millions of values.
    let schema = r#"{"type":"record","name":"SysFlow","namespace":"sysflow","fields":[
        {"name":"rec","type":[{"type":"record","name":"Odd","fields":[
            {"name":"xs","type":{"type":"array","items":"null"}}]}]}]}"#;
    let bytes = header(&[("avro.schema", schema.as_bytes())]);
    let err = open_error(&bytes, "odd.sf");
    assert_eq!(
        err.to_string(),
        "odd.sf: not a SysFlow trace: arrays of items that take no bytes (rec.xs) are not SysFlow (writer schema at byte 19)"
    );
}

// ---------------------------------------------------------------------------------------------
// A directory mixing good and bad files, through the driver
// ---------------------------------------------------------------------------------------------

/// Runs the driver over `dir` into one ring drained by a thread; returns the summary and the
/// records the consumer received, by kind.
fn read_dir(dir: &std::path::Path) -> (ReadSummary, [u64; 12]) {
    let seg = RingSegment::create("bad-input-test", 1 << 20, WIRE_VERSION).expect("ring");
    let consumer_fd = seg.fd().try_clone_to_owned().expect("dup");
    let producer = Producer::attach(seg.into_fd(), WIRE_VERSION).expect("producer");
    let mut consumer = Consumer::attach(consumer_fd, WIRE_VERSION).expect("consumer");
    let drain = std::thread::spawn(move || {
        let mut counts = [0u64; 12];
        loop {
            match consumer.next(Some(std::time::Duration::from_secs(30))) {
                Ok(Next::Frame(frame)) => {
                    let record = codec::decode(frame.payload).expect("frame");
                    counts[record.kind() as usize] += 1;
                }
                Ok(Next::Closed) => return counts,
                other => panic!("ring: {other:?}"),
            }
        }
    });
    let files = driver::input_files(dir).expect("list");
    let mut publisher = Publisher::new(
        vec![Target::new(producer, "test".into(), Overflow::Block)],
        None,
    );
    let mut summary = ReadSummary::default();
    let stop = std::sync::atomic::AtomicBool::new(false);
    driver::read(&files, &mut publisher, &mut summary, &stop).expect("consumer alive");
    publisher.close();
    (summary, drain.join().expect("drain"))
}

#[test]
fn a_directory_mixing_good_and_bad_files_is_read_to_the_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    std::fs::write(p.join("a-empty.sf"), b"").expect("write");
    std::fs::write(p.join("b-notes.txt"), b"# notes\n").expect("write");
    std::fs::copy(shared_dir().join("traces/tcp.sf"), p.join("c-tcp.sf")).expect("copy");
    let mut k8s = trace_bytes("k8s_small.sf");
    k8s[59_873] ^= 0xff; // wrong sync marker after the second block
    std::fs::write(p.join("d-k8s.sf"), &k8s).expect("write");
    std::fs::create_dir(p.join("e-subdir")).expect("mkdir");
    std::fs::write(p.join("f-short.sf"), b"Obj\x01\x02").expect("write");

    let (summary, received) = read_dir(p);
    let total: u64 = received.iter().sum();
    assert_eq!(total, 23 + 6173 - 1281);
    assert_eq!(summary.total(), total);
    assert_eq!(summary.files_ok, 1);
    assert_eq!(
        driver::input_errors(&summary).as_deref(),
        Some(
            "input errors in 4 of 5 files: 3 skipped (a-empty.sf: empty file; b-notes.txt: not an Avro file (wrong magic at byte 0); f-short.sf: truncated Avro header (5 bytes)); 1 damaged (d-k8s.sf: 1 block skipped (1281 records)); 1281 records skipped in all"
        )
    );
    assert_eq!(received[RecordKind::Header as usize], 2);
}

#[test]
fn a_clean_directory_has_no_input_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        shared_dir().join("traces/tcp.sf"),
        dir.path().join("tcp.sf"),
    )
    .expect("copy");
    let (summary, received) = read_dir(dir.path());
    assert_eq!(received.iter().sum::<u64>(), 23);
    assert_eq!(driver::input_errors(&summary), None);
}

#[test]
fn a_file_with_no_decodable_record_and_a_field_that_does_not_resolve_are_input_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    let (schema, datums) = v5_datums();
    // Every datum of an unknown branch: nothing to deliver from this file.
    let mut json: serde_json::Value = serde_json::from_str(&schema).expect("json");
    json["fields"][0]["type"]
        .as_array_mut()
        .expect("union")
        .push(
            serde_json::json!({"type": "record", "name": "Gizmo", "namespace": "sysflow.entity",
            "fields": [{"name": "x", "type": "int"}]}),
        );
    let mut bytes = header(&[("avro.schema", json.to_string().as_bytes())]);
    bytes.extend(block(2, &[2 * 12, 2 * 21, 2 * 12, 2 * 22]));
    std::fs::write(p.join("g-gizmos.sf"), &bytes).expect("write");
    // The network flows' fd declared a long (its values encode as they would as an int): the
    // reader's int does not take a long, so fd is reported once and read as its default.
    let fd_long = schema.replace(
        r#"{"name":"proto","type":"int"},{"name":"fd","type":"int"}"#,
        r#"{"name":"proto","type":"int"},{"name":"fd","type":"long"}"#,
    );
    assert_ne!(fd_long, schema);
    let all: Vec<u8> = datums.iter().flat_map(|(d, _)| d.clone()).collect();
    let mut bytes = header(&[("avro.schema", fd_long.as_bytes())]);
    bytes.extend(block(datums.len() as i64, &all));
    std::fs::write(p.join("h-fd-long.sf"), &bytes).expect("write");
    std::fs::copy(shared_dir().join("traces/tcp.sf"), p.join("i-tcp.sf")).expect("copy");

    let (summary, received) = read_dir(p);
    assert_eq!(received.iter().sum::<u64>(), datums.len() as u64 + 23);
    assert_eq!(received[RecordKind::NetworkFlow as usize], 2 + 2);
    assert_eq!(summary.files_without_records(), 1);
    assert_eq!(
        driver::input_errors(&summary).as_deref(),
        Some(
            "input errors in 2 of 3 files: 1 with no record decoded (g-gizmos.sf: 2 records of an unknown type skipped); 1 damaged (h-fd-long.sf: 1 field not resolved (NetworkFlow.fd)); 2 records skipped in all"
        )
    );
    let reader = TraceReader::new(Cursor::new(&bytes), "h".into()).expect("open");
    assert_eq!(
        reader
            .file()
            .unresolved()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        [
            "NetworkFlow field \"fd\": written as long, which cannot be read as the reader's int; the reader's default is used in every record"
        ]
    );
    let flows: Vec<i32> = reader
        .filter_map(|r| match r.expect("record") {
            Record::NetworkFlow(f) => Some(f.fd),
            _ => None,
        })
        .collect();
    assert_eq!(flows, [0, 0]);
    // In the file itself, the flows have a descriptor.
    assert!(
        datums
            .iter()
            .any(|(_, r)| matches!(r, Record::NetworkFlow(f) if f.fd != 0))
    );
}
