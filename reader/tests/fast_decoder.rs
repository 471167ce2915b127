//! The fast decoder (`sf_reader::fast`) against the apache-avro based reader (`sf_reader::avro`),
//! the reference: the same records on every shared trace, on generated traces (both codecs,
//! every record type) and on writer schemas altered to exercise the mapping (missing fields,
//! wrong types, unknown branches and symbols, int/long conversions, bytes FOIDs); clear errors
//! on damaged input; and no panic on random damage.
//!
//! The shared traces live in `/work/shared` (override with `SF_SHARED_DIR`).

use std::io::Cursor;
use std::path::PathBuf;

use apache_avro::types::Value;
use apache_avro::{Codec, DeflateSettings, Schema, Writer};
use proptest::prelude::*;
use serde_json::{Value as Json, json};
use sf_processor::model::{Record, RecordKind};
use sf_reader::avro::{self, DecodeError, FieldProblem, TraceReader};
use sf_reader::fast::{self, DatumProblem, FastError, FastReader, SysFlowDecoder};
use sf_reader::generate::{self, GenCodec, GenConfig, Generator};

fn shared_dir() -> PathBuf {
    std::env::var_os("SF_SHARED_DIR").map_or_else(|| PathBuf::from("/work/shared"), PathBuf::from)
}

fn shared_traces() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(shared_dir().join("traces"))
        .expect("traces dir")
        .map(|e| e.expect("entry").path())
        .collect();
    paths.sort();
    assert!(paths.len() >= 15, "the shared traces");
    paths
}

fn fast_items(bytes: &[u8]) -> Result<Vec<Result<Record, FastError>>, FastError> {
    FastReader::new(Cursor::new(bytes), "x.sf".to_owned()).map(Iterator::collect)
}

fn avro_items(bytes: &[u8]) -> Result<Vec<Result<Record, DecodeError>>, DecodeError> {
    TraceReader::new(Cursor::new(bytes), "x.sf".to_owned()).map(Iterator::collect)
}

// ----------------------------------------------------------------------------------------
// Same records as the reference
// ----------------------------------------------------------------------------------------

#[test]
fn every_shared_trace_decodes_to_the_same_records_as_apache_avro() {
    for path in shared_traces() {
        let expected: Vec<Record> = avro::open(&path)
            .unwrap_or_else(|e| panic!("{e}"))
            .map(|r| r.unwrap_or_else(|e| panic!("{e}")))
            .collect();
        let reader = fast::open(&path).unwrap_or_else(|e| panic!("{e}"));
        let reference = avro::open(&path).expect("open");
        assert_eq!(reader.codec(), reference.file().codec());
        assert_eq!(reader.header_len(), reference.file().header_len());
        assert_eq!(
            reader.decoder().branches(),
            reference.file().branches().branches(),
            "{}: branch table",
            path.display()
        );
        let ours: Vec<Record> = reader
            .map(|r| r.unwrap_or_else(|e| panic!("{e}")))
            .collect();
        assert_eq!(ours.len(), expected.len(), "{}", path.display());
        for (i, (a, b)) in ours.iter().zip(&expected).enumerate() {
            assert_eq!(a, b, "{}: record {i}", path.display());
        }
    }
}

/// The trace reader (container framing with resync, as the reader process uses it) gives the
/// same records and the same skip counts with the fast decoder as with apache-avro.
#[test]
fn the_trace_reader_gives_the_same_records_with_either_decoder() {
    for path in shared_traces() {
        let with = |decoder| {
            let mut reader = avro::open_with(&path, decoder).unwrap_or_else(|e| panic!("{e}"));
            let records: Vec<Record> = reader
                .by_ref()
                .map(|r| r.unwrap_or_else(|e| panic!("{e}")))
                .collect();
            (records, reader.skipped(), reader.records_read())
        };
        let fast = with(avro::Decoder::Fast);
        let reference = with(avro::Decoder::Avro);
        assert!(!fast.0.is_empty(), "{}", path.display());
        assert!(fast == reference, "{}", path.display());
    }
}

fn generated(config: &GenConfig) -> Vec<u8> {
    let mut bytes = Vec::new();
    generate::write_trace(config, &mut bytes).expect("generate");
    bytes
}

#[test]
fn generated_traces_decode_to_the_generated_records_with_both_codecs() {
    for (codec, pods, seed) in [
        (GenCodec::Deflate, false, 1),
        (GenCodec::Null, true, 2),
        (GenCodec::Deflate, true, 3),
    ] {
        let config = GenConfig {
            records: 25_000,
            seed,
            containers: 3,
            pods,
            codec,
        };
        let bytes = generated(&config);
        let expected: Vec<Record> = Generator::new(&config).collect();
        let ours: Vec<Record> = fast_items(&bytes)
            .expect("open")
            .into_iter()
            .map(|r| r.unwrap_or_else(|e| panic!("{e}")))
            .collect();
        assert!(ours == expected, "{codec:?}: decoded records differ");
        let reference: Vec<Record> = avro_items(&bytes)
            .expect("open")
            .into_iter()
            .map(|r| r.expect("reference"))
            .collect();
        assert!(ours == reference, "{codec:?}: differs from apache-avro");
        if pods {
            for kind in RecordKind::ALL {
                assert!(ours.iter().any(|r| r.kind() == kind), "{kind} covered");
            }
        }
    }
}

#[test]
fn a_block_decodes_on_its_own() {
    // One generated datum per record type, concatenated: a block of `count` datums.
    let decoder = SysFlowDecoder::from_schema_json(generate::SCHEMA_V5).expect("schema");
    let config = GenConfig {
        records: 3_000,
        pods: true,
        ..GenConfig::default()
    };
    let records: Vec<Record> = Generator::new(&config).collect();
    let mut block = Vec::new();
    for r in &records {
        generate::encode_record(r, &mut block);
    }
    let mut blocks = decoder.decode_block(&block, records.len() as u64);
    let decoded: Vec<Record> = blocks.by_ref().map(|r| r.expect("datum")).collect();
    assert!(decoded == records);
    assert_eq!(blocks.position(), block.len());

    // A datum at a time, by offset.
    let mut pos = 0;
    for r in records.iter().take(50) {
        assert_eq!(&decoder.decode_datum(&block, &mut pos).expect("datum"), r);
    }

    // Bytes after the last datum.
    block.push(0);
    let last = decoder
        .decode_block(&block, records.len() as u64)
        .last()
        .expect("an item");
    let err = last.expect_err("trailing byte");
    assert_eq!(err.problem, DatumProblem::TrailingBytes(1));
    assert!(err.ends_block());
}

// ----------------------------------------------------------------------------------------
// Altered writer schemas: the same records and the same errors as the reference
// ----------------------------------------------------------------------------------------

fn v5_schema() -> Json {
    serde_json::from_str(generate::SCHEMA_V5).expect("schema json")
}

fn branch_json<'a>(schema: &'a mut Json, name: &str) -> &'a mut Json {
    schema["fields"][0]["type"]
        .as_array_mut()
        .expect("rec union")
        .iter_mut()
        .find(|b| b["name"] == name)
        .unwrap_or_else(|| panic!("branch {name}"))
}

fn field_json<'a>(schema: &'a mut Json, branch: &str, field: &str) -> &'a mut Json {
    branch_json(schema, branch)["fields"]
        .as_array_mut()
        .expect("fields")
        .iter_mut()
        .find(|f| f["name"] == field)
        .unwrap_or_else(|| panic!("field {branch}.{field}"))
}

fn remove_fields(schema: &mut Json, branch: &str, names: &[&str]) {
    branch_json(schema, branch)["fields"]
        .as_array_mut()
        .expect("fields")
        .retain(|f| !names.contains(&f["name"].as_str().unwrap_or_default()));
}

fn write_values(schema: &Json, data: &[Value]) -> Vec<u8> {
    let schema = Schema::parse(schema).expect("schema");
    let mut writer = Writer::with_codec(
        &schema,
        Vec::new(),
        Codec::Deflate(DeflateSettings::default()),
    );
    for datum in data {
        writer.append_value_ref(datum).expect("append");
    }
    writer.into_inner().expect("flush")
}

/// Generated records of every type as apache-avro values of the v5 schema, passed through
/// `alter` (which may rewrite the `rec` record's fields to fit an altered schema).
fn values(mut alter: impl FnMut(RecordKind, &mut Vec<(String, Value)>)) -> Vec<Value> {
    let config = GenConfig {
        records: 2_000,
        pods: true,
        seed: 5,
        ..GenConfig::default()
    };
    Generator::new(&config)
        .map(|r| {
            let mut v = generate::to_value(&r);
            if let Value::Record(top) = &mut v
                && let Some((_, Value::Union(_, inner))) = top.first_mut()
                && let Value::Record(fields) = inner.as_mut()
            {
                alter(r.kind(), fields);
            }
            v
        })
        .collect()
}

/// Both readers give the same records, and errors at the same records with the same field
/// and problem. Returns the number of field errors.
fn assert_same_as_reference(bytes: &[u8]) -> usize {
    let ours = fast_items(bytes).expect("fast open");
    let theirs = avro_items(bytes).expect("reference open");
    assert_eq!(ours.len(), theirs.len(), "items");
    let mut errors = 0;
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        match (a, b) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "record {i}"),
            (
                Err(FastError::Datum { error, record, .. }),
                Err(DecodeError::Field {
                    field,
                    problem,
                    record_type,
                    at,
                }),
            ) => {
                assert_eq!(*record, at.record);
                assert_eq!(error.field, &**field, "record {i}");
                assert_eq!(
                    error.problem,
                    DatumProblem::Field(problem.clone()),
                    "record {i}"
                );
                assert_eq!(error.record_type.as_deref(), Some(&**record_type));
                assert!(!error.ends_block());
                errors += 1;
            }
            (
                Err(FastError::Datum { error, .. }),
                Err(DecodeError::UnknownBranch { index, name, .. }),
            ) => {
                assert_eq!(
                    error.problem,
                    DatumProblem::UnknownBranch {
                        index: *index,
                        name: name.clone()
                    }
                );
                errors += 1;
            }
            (a, b) => panic!("record {i}: fast {a:?}, reference {b:?}"),
        }
    }
    errors
}

#[test]
fn older_layouts_get_the_same_defaults() {
    let mut schema = v5_schema();
    remove_fields(&mut schema, "Process", &["entry", "cwd", "env"]);
    remove_fields(&mut schema, "SFHeader", &["ip", "filename"]);
    remove_fields(&mut schema, "Container", &["podId"]);
    remove_fields(&mut schema, "FileFlow", &["openFlags"]);
    remove_fields(&mut schema, "NetworkFlow", &["fd"]);
    remove_fields(&mut schema, "FileEvent", &["newFileOID"]);
    let data = values(|kind, fields| {
        let gone: &[&str] = match kind {
            RecordKind::Process => &["entry", "cwd", "env"],
            RecordKind::Header => &["ip", "filename"],
            RecordKind::Container => &["podId"],
            RecordKind::FileFlow => &["openFlags"],
            RecordKind::NetworkFlow => &["fd"],
            RecordKind::FileEvent => &["newFileOID"],
            _ => &[],
        };
        fields.retain(|(n, _)| !gone.contains(&n.as_str()));
    });
    let bytes = write_values(&schema, &data);
    assert_eq!(assert_same_as_reference(&bytes), 0);
}

#[test]
fn reordered_fields_unknown_fields_and_int_long_conversions_map_by_name() {
    let mut schema = v5_schema();
    // FileFlow: fields reversed, an extra field of every kind of type, fd written as a long,
    // ts as an int, fileOID as bytes.
    let flow = branch_json(&mut schema, "FileFlow");
    let fields = flow["fields"].as_array_mut().expect("fields");
    fields.reverse();
    fields.push(json!({"name": "extra", "type": {"type": "record", "name": "Extra", "fields": [
        {"name": "f", "type": "float"}, {"name": "d", "type": "double"}, {"name": "b", "type": "bytes"},
        {"name": "m", "type": {"type": "map", "values": ["null", "string"]}},
        {"name": "a", "type": {"type": "array", "items": "boolean"}},
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["X", "Y"]}},
        {"name": "x", "type": {"type": "fixed", "name": "X3", "size": 3}}]}}));
    field_json(&mut schema, "FileFlow", "fd")["type"] = json!("long");
    field_json(&mut schema, "FileFlow", "tid")["type"] = json!("int");
    field_json(&mut schema, "FileFlow", "fileOID")["type"] = json!("bytes");
    // Process: a container id that is a plain string; state given as a string.
    field_json(&mut schema, "Process", "containerId")["type"] = json!(["string", "null"]);
    field_json(&mut schema, "File", "state")["type"] = json!("string");
    let data = values(|kind, fields| match kind {
        RecordKind::FileFlow => {
            fields.reverse();
            for (name, value) in fields.iter_mut() {
                match name.as_str() {
                    "fd" => {
                        if let Value::Int(fd) = value {
                            *value = Value::Long(i64::from(*fd));
                        }
                    }
                    "tid" => {
                        if let Value::Long(t) = value {
                            *value = Value::Int((*t % 1_000_000) as i32);
                        }
                    }
                    "fileOID" => {
                        if let Value::Fixed(_, b) = value {
                            *value = Value::Bytes(b.clone());
                        }
                    }
                    _ => {}
                }
            }
            fields.push((
                "extra".into(),
                Value::Record(vec![
                    ("f".into(), Value::Float(1.5)),
                    ("d".into(), Value::Double(2.5)),
                    ("b".into(), Value::Bytes(vec![1, 2, 3])),
                    (
                        "m".into(),
                        Value::Map(
                            [(
                                "k".to_owned(),
                                Value::Union(1, Box::new(Value::String("v".into()))),
                            )]
                            .into(),
                        ),
                    ),
                    ("a".into(), Value::Array(vec![Value::Boolean(true)])),
                    ("e".into(), Value::Enum(1, "Y".into())),
                    ("x".into(), Value::Fixed(3, vec![7, 8, 9])),
                ]),
            ));
        }
        RecordKind::Process => {
            for (name, value) in fields.iter_mut() {
                if name == "containerId" {
                    *value = match std::mem::replace(value, Value::Null) {
                        Value::Union(0, _) => Value::Union(1, Box::new(Value::Null)),
                        Value::Union(1, inner) => Value::Union(0, inner),
                        other => other,
                    }
                }
            }
        }
        RecordKind::File => {
            for (name, value) in fields.iter_mut() {
                if let ("state", Value::Enum(_, s)) = (name.as_str(), &*value) {
                    *value = Value::String(s.clone());
                }
            }
        }
        _ => {}
    });
    let bytes = write_values(&schema, &data);
    assert_eq!(assert_same_as_reference(&bytes), 0);
}

#[test]
fn field_problems_are_the_same_errors_and_decoding_goes_on() {
    let mut schema = v5_schema();
    field_json(&mut schema, "FileFlow", "fd")["type"] = json!("long");
    field_json(&mut schema, "FileEvent", "fileOID")["type"] = json!("string");
    field_json(&mut schema, "NetworkFlow", "sip")["type"] = json!(["null", "int"]);
    remove_fields(&mut schema, "NetworkEvent", &["tid"]);
    let container_type = field_json(&mut schema, "Container", "type");
    container_type["type"]["symbols"]
        .as_array_mut()
        .expect("symbols")
        .push(json!("CT_PODMAN"));
    schema["fields"][0]["type"]
        .as_array_mut()
        .expect("union")
        .push(
            json!({"type": "record", "name": "Gizmo", "namespace": "sysflow.entity",
            "fields": [{"name": "x", "type": {"type": "array", "items": "string"}}]}),
        );
    let mut n = 0u64;
    let mut data = values(|kind, fields| {
        n += 1;
        for (name, value) in fields.iter_mut() {
            match (kind, name.as_str()) {
                (RecordKind::FileFlow, "fd") => {
                    *value = Value::Long(if n.is_multiple_of(7) { 1 << 40 } else { 5 });
                }
                (RecordKind::FileEvent, "fileOID") => *value = Value::String("foid".into()),
                (RecordKind::NetworkFlow, "sip") => {
                    *value = if n.is_multiple_of(3) {
                        Value::Union(0, Box::new(Value::Null))
                    } else {
                        Value::Union(1, Box::new(Value::Int(16_777_343)))
                    };
                }
                (RecordKind::Container, "type") => {
                    *value = Value::Enum(10, "CT_PODMAN".into());
                }
                _ => {}
            }
        }
        if kind == RecordKind::NetworkEvent {
            fields.retain(|(name, _)| name != "tid");
        }
    });
    let gizmo = Value::Record(vec![(
        "rec".into(),
        Value::Union(
            12,
            Box::new(Value::Record(vec![(
                "x".into(),
                Value::Array(vec![Value::String("a".into())]),
            )])),
        ),
    )]);
    data.insert(3, gizmo.clone());
    data.push(gizmo);
    let bytes = write_values(&schema, &data);
    let errors = assert_same_as_reference(&bytes);
    assert!(errors > 100, "{errors} field errors");

    // The messages say what and where.
    let items = fast_items(&bytes).expect("open");
    let messages: Vec<String> = items
        .iter()
        .filter_map(|r| r.as_ref().err().map(ToString::to_string))
        .collect();
    let find = |needle: &str| {
        messages
            .iter()
            .find(|m| m.contains(needle))
            .unwrap_or_else(|| panic!("no message with {needle:?}"))
            .clone()
    };
    let m = find("fileOID");
    assert!(
        m.starts_with("x.sf: record ") && m.contains("FileEvent field \"fileOID\" at byte "),
        "{m}"
    );
    assert!(m.ends_with(": expected fixed(20), found string"), "{m}");
    assert!(find("does not fit in int").contains("field \"fd\""));
    assert!(find("sip").ends_with("expected int, found null"));
    assert!(find("tid").contains("NetworkEvent field \"tid\""));
    assert!(find("CT_PODMAN").contains("unknown ContainerType symbol \"CT_PODMAN\""));
    assert!(find("Gizmo").contains("unknown record type sysflow.entity.Gizmo (branch 12"));
}

#[test]
fn non_sysflow_and_broken_headers_are_rejected_with_the_reason() {
    let weather = json!({"type": "record", "name": "Weather", "namespace": "test",
        "fields": [{"name": "station", "type": "string"}]});
    let bytes = write_values(
        &weather,
        &[Value::Record(vec![(
            "station".into(),
            Value::String("x".into()),
        )])],
    );
    let err = fast_items(&bytes).expect_err("not sysflow");
    assert_eq!(
        err.to_string(),
        "x.sf: not a SysFlow trace: the writer schema is the record test.Weather, not sysflow.SysFlow"
    );
    assert!(matches!(fast_items(b""), Err(FastError::Empty { .. })));
    assert!(matches!(
        fast_items(b"{\"json\": 1}"),
        Err(FastError::BadMagic { .. })
    ));
    let trace = std::fs::read(shared_dir().join("traces/tcp.sf")).expect("tcp.sf");
    for cut in [5, 100, 4000, 4332] {
        let err = fast_items(&trace[..cut]).expect_err("truncated header");
        assert!(
            err.to_string()
                .starts_with("x.sf: bad Avro header at byte "),
            "{err}"
        );
    }
}

#[test]
fn damaged_blocks_end_the_file_after_the_records_before_them() {
    let name = "k8s_small.sf";
    let bytes = std::fs::read(shared_dir().join("traces").join(name)).expect("trace");
    let full: Vec<Record> = avro::open(&shared_dir().join("traces").join(name))
        .expect("open")
        .map(|r| r.expect("clean"))
        .collect();
    // Truncated in the third block (blocks at 6130, 33670, 59889).
    let items = fast_items(&bytes[..70_000]).expect("header");
    let (ok, err): (Vec<_>, Vec<_>) = items.into_iter().partition(Result::is_ok);
    assert_eq!(ok.len(), 1091 + 1281);
    assert!(
        ok.into_iter()
            .map(Result::unwrap)
            .eq(full.iter().take(2372).cloned())
    );
    assert_eq!(err.len(), 1);
    let err = err.into_iter().next().expect("one").expect_err("error");
    let message = err.to_string();
    assert!(
        message.starts_with("x.sf: block 2 at byte 59889: truncated: the block has ")
            && message.contains(&format!(
                "bytes, the input ends after {}",
                70_000 - 59_889 - varint_len(&bytes, 59_889)
            )),
        "{message}"
    );
    assert!(err.ends_stream());

    // Damaged deflate data in the third block.
    let mut damaged = bytes.clone();
    for b in &mut damaged[65_000..65_016] {
        *b ^= 0x5a;
    }
    let items = fast_items(&damaged).expect("header");
    let first_error = items.iter().position(Result::is_err).expect("an error");
    assert!(first_error >= 2372);
    assert!(items.last().expect("items").is_err());
    assert!(items.len() < full.len());
}

/// Bytes of the count and size varints of the block at `offset`.
fn varint_len(bytes: &[u8], offset: usize) -> usize {
    let mut pos = offset;
    for _ in 0..2 {
        while bytes[pos] >= 0x80 {
            pos += 1;
        }
        pos += 1;
    }
    pos - offset
}

#[test]
fn corrupt_lengths_are_bounded_by_the_block() {
    let decoder = SysFlowDecoder::from_schema_json(generate::SCHEMA_V5).expect("schema");
    // A header datum (branch 0) whose exporter claims 2^62 bytes.
    let mut block = vec![0u8];
    block.push(2); // version 1
    block.extend_from_slice(&[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
    let err = decoder
        .decode_datum(&block, &mut 0)
        .expect_err("huge length");
    assert_eq!(
        err.to_string(),
        "SFHeader field \"exporter\" at byte 2 of the block (datum at byte 0): truncated: needs 4611686018427387903 bytes, 0 left in the block"
    );
    // A process event whose args array claims a billion items.
    let mut block = vec![8u8]; // branch 4: ProcessEvent
    block.extend_from_slice(&[2, 4, 6, 8, 10]); // procOID, ts, tid, opFlags
    block.extend_from_slice(&[0x80, 0xa8, 0xd6, 0xb9, 0x07]); // 1e9 items
    let err = decoder
        .decode_datum(&block, &mut 0)
        .expect_err("huge count");
    assert_eq!(err.field, "args");
    assert!(
        matches!(err.problem, DatumProblem::Truncated { .. }),
        "{err}"
    );
    // A union index out of range, an invalid UTF-8 string, a bad boolean.
    let err = decoder.decode_datum(&[0x7e], &mut 0).expect_err("union");
    assert_eq!(
        err.to_string(),
        "at byte 0 of the block: union index 63 out of range (12 branches)"
    );
    let err = decoder
        .decode_datum(&[0, 2, 2, 0xff], &mut 0)
        .expect_err("utf8");
    assert_eq!(err.problem, DatumProblem::InvalidUtf8);
    assert_eq!(err.field, "exporter");
    let mut block = vec![2u8]; // Container
    for _ in 0..4 {
        block.extend_from_slice(&[2, b'a']);
    }
    block.extend_from_slice(&[0, 7]);
    let err = decoder.decode_datum(&block, &mut 0).expect_err("bool");
    assert_eq!(
        err.to_string(),
        "Container field \"privileged\" at byte 10 of the block (datum at byte 0): boolean byte 7 (0 or 1 expected)"
    );
}

// ----------------------------------------------------------------------------------------
// Random damage
// ----------------------------------------------------------------------------------------

/// Small traces and the length of their header (made once).
fn small_traces() -> &'static [(Vec<u8>, usize)] {
    static TRACES: std::sync::OnceLock<Vec<(Vec<u8>, usize)>> = std::sync::OnceLock::new();
    TRACES.get_or_init(make_small_traces)
}

fn make_small_traces() -> Vec<(Vec<u8>, usize)> {
    let mut traces: Vec<Vec<u8>> = ["tcp.sf", "tcp-procflow-v1000.sf", "filesat-v5.sf"]
        .iter()
        .map(|n| std::fs::read(shared_dir().join("traces").join(n)).expect("trace"))
        .collect();
    for codec in [GenCodec::Null, GenCodec::Deflate] {
        traces.push(generated(&GenConfig {
            records: 300,
            pods: true,
            codec,
            ..GenConfig::default()
        }));
    }
    traces
        .into_iter()
        .map(|bytes| {
            let header = FastReader::new(Cursor::new(&bytes), "x".into())
                .expect("clean")
                .header_len();
            (bytes, usize::try_from(header).expect("header length"))
        })
        .collect()
}

proptest! {
    // 256 cases by default; PROPTEST_CASES=N for more (5,000 were run in release mode).
    #![proptest_config(ProptestConfig::default())]

    /// Random byte changes and a truncation never panic, end the iteration, and, when both
    /// readers see nothing wrong, give the same records as the reference.
    #[test]
    fn random_mutations_never_panic(
        which in 0usize..5,
        changes in proptest::collection::vec(
            (any::<prop::sample::Index>(), any::<u8>(), 0u8..8),
            1..8,
        ),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let traces = small_traces();
        let (mut bytes, header) = traces[which % traces.len()].clone();
        // Seven changes in eight past the header: changes to the schema text mostly make the
        // file fail at open, which tells little.
        for (at, value, region) in &changes {
            let i = if *region == 0 {
                at.index(bytes.len())
            } else {
                header + at.index(bytes.len() - header)
            };
            bytes[i] = *value;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        if let Ok(reader) = FastReader::new(Cursor::new(&bytes), "x".into()) {
            let items: Vec<_> = reader.take(100_000).collect();
            prop_assert!(items.len() < 100_000, "the iteration ends");
            let fast_clean = items.iter().all(Result::is_ok);
            if let Ok(reference) = avro_items(&bytes)
                && fast_clean
                && reference.iter().all(Result::is_ok)
            {
                let ours: Vec<Record> = items.into_iter().map(Result::unwrap).collect();
                let theirs: Vec<Record> = reference.into_iter().map(Result::unwrap).collect();
                prop_assert_eq!(ours, theirs);
            }
        }
    }

    /// Random bytes as a block never panic and never loop past the block.
    #[test]
    fn random_blocks_never_panic(block in proptest::collection::vec(any::<u8>(), 0..512), count in 0u64..1000) {
        let decoder = SysFlowDecoder::from_schema_json(generate::SCHEMA_V5).expect("schema");
        let items = decoder.decode_block(&block, count).take(2_000).count();
        prop_assert!(items <= count as usize + 1);
    }
}

#[test]
fn field_problem_enum_is_the_reference_one() {
    // The fast decoder reports field problems with the reference reader's type.
    let p = DatumProblem::Field(FieldProblem::Missing);
    assert_eq!(p.to_string(), "missing from the writer's record");
}
