//! Bad input and hand-made traces: every record type (the shared traces have no NetworkEvent,
//! ProcessFlow or rename FileEvent), schema variants (missing fields, unknown branches and
//! symbols, non-SysFlow schemas), damaged files (empty, wrong magic, truncated, corrupt): a
//! clear error, no panic, and the records before the damage delivered.
//!
//! The shared traces live in `/work/shared` (override with `SF_SHARED_DIR`).

use std::io::Cursor;
use std::path::PathBuf;

use apache_avro::types::Value;
use apache_avro::{Codec, DeflateSettings, Schema, Writer};
use serde_json::{Value as Json, json};
use sf_processor::model::{
    Container, ContainerType, File, FileEvent, FileFlow, Foid, K8sAction, K8sComponent, K8sEvent,
    NetworkEvent, NetworkFlow, ObjectState, Oid, Pod, Port, Process, ProcessEvent, ProcessFlow,
    Record, RecordKind, Service, SfHeader,
};
use sf_reader::branch::BranchTable;
use sf_reader::error::DecodeError;
use sf_reader::trace::{self, TraceReader};

fn shared_dir() -> PathBuf {
    std::env::var_os("SF_SHARED_DIR").map_or_else(|| PathBuf::from("/work/shared"), PathBuf::from)
}

fn trace_bytes(name: &str) -> Vec<u8> {
    let path = shared_dir().join("traces").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Decodes `bytes` in memory: the header result, then every item.
fn decode_bytes(bytes: &[u8], name: &str) -> Result<Vec<Result<Record, DecodeError>>, DecodeError> {
    TraceReader::new(Cursor::new(bytes), name.to_owned()).map(Iterator::collect)
}

/// Decodes a whole shared trace, which must be clean.
fn clean_records(name: &str) -> Vec<Record> {
    decode_bytes(&trace_bytes(name), name)
        .expect("header")
        .into_iter()
        .map(|r| r.expect("clean trace"))
        .collect()
}

fn write_file(bytes: &[u8]) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().expect("tempfile");
    std::fs::write(file.path(), bytes).expect("write");
    file
}

// ----------------------------------------------------------------------------------------
// Damaged files
// ----------------------------------------------------------------------------------------

#[test]
fn empty_file_is_an_error_naming_it() {
    let file = write_file(b"");
    let err = trace::open(file.path()).expect_err("empty");
    assert!(matches!(err, DecodeError::Empty { .. }), "{err:?}");
    let path = file.path().display().to_string();
    assert_eq!(
        err.to_string(),
        format!("{path}: empty file (not an Avro object container file)")
    );
    assert!(err.ends_stream());
}

#[test]
fn wrong_magic_is_an_error() {
    let mut bytes = trace_bytes("tcp.sf");
    bytes[3] = 2;
    let err = decode_bytes(&bytes, "tcp.sf").expect_err("wrong magic");
    assert!(matches!(err, DecodeError::BadMagic { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        r#"tcp.sf: not an Avro object container file (wrong magic at byte 0: found "Obj\x02", expected "Obj\x01")"#
    );

    let err = decode_bytes(b"{\"json\": true}\n", "x.json").expect_err("not avro");
    assert!(matches!(err, DecodeError::BadMagic { .. }), "{err:?}");
    // Shorter than the magic, and not a prefix of it.
    let err = decode_bytes(b"ab", "ab.txt").expect_err("not avro");
    assert_eq!(
        err.to_string(),
        r#"ab.txt: not an Avro object container file (wrong magic at byte 0: found "ab", expected "Obj\x01")"#
    );
}

#[test]
fn truncated_header_is_an_error() {
    let bytes = trace_bytes("tcp.sf");
    for cut in [1, 3, 4, 5, 100, 4000, 4332] {
        let err = decode_bytes(&bytes[..cut], "tcp.sf").expect_err("truncated header");
        assert!(
            matches!(err, DecodeError::Header { .. }),
            "cut {cut}: {err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!("tcp.sf: bad Avro header: the file ends at byte {cut}, inside the Avro header")
        );
        let bytes_word = if cut == 1 { "byte" } else { "bytes" };
        assert_eq!(
            err.brief(),
            format!("truncated Avro header ({cut} {bytes_word})")
        );
    }
}

#[test]
fn truncated_file_returns_the_records_of_complete_blocks_then_one_error() {
    let name = "k8s_small.sf";
    let full = clean_records(name);
    let bytes = trace_bytes(name);
    // Blocks start at 6130 (1091 records), 33670 (1281), 59889 (1306), ...
    let file = write_file(&bytes[..70_000]);
    let mut reader = trace::open(file.path()).expect("header intact");
    let mut records = Vec::new();
    let err = loop {
        match reader.next().expect("an error before the end") {
            Ok(record) => records.push(record),
            Err(e) => break e,
        }
    };
    assert_eq!(records.len(), 1091 + 1281);
    assert_eq!(records[..], full[..records.len()]);
    assert!(err.ends_stream());
    let DecodeError::Block { record, error, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!((*record, error.offset), (2372, 59_889));
    let path = file.path().display().to_string();
    assert_eq!(
        err.to_string(),
        format!(
            "{path}: block at byte 59889: truncated: the file ends at byte 70000, inside the block; its 1306 records are lost; end of the file"
        )
    );
    assert!(reader.next().is_none(), "nothing after the end");
    assert!(reader.next().is_none());
    let skipped = reader.skipped();
    assert_eq!(
        (skipped.blocks, skipped.records, skipped.errors),
        (1, 1306, 1)
    );
}

#[test]
fn every_truncation_of_a_small_trace_is_handled() {
    let bytes = trace_bytes("tcp.sf");
    let full = clean_records("tcp.sf");
    for cut in 0..bytes.len() {
        match decode_bytes(&bytes[..cut], "tcp.sf") {
            Err(e) => {
                assert!(cut < 4333, "cut {cut}: {e}");
                assert!(e.ends_stream(), "cut {cut}: {e}");
            }
            // Exactly the header: a valid container without blocks.
            Ok(items) if cut == 4333 => assert!(items.is_empty()),
            Ok(items) => {
                // One block: nothing decodes, one error.
                assert_eq!(items.len(), 1, "cut {cut}");
                let Err(e) = &items[0] else {
                    panic!("cut {cut}: {:?}", items[0])
                };
                assert!(
                    e.to_string().starts_with(&format!(
                        "tcp.sf: block at byte 4333: truncated: the file ends at byte {cut}, inside the block; its "
                    )),
                    "cut {cut}: {e}"
                );
                assert!(e.ends_stream());
            }
        }
    }
    assert_eq!(
        decode_bytes(&bytes, "tcp.sf").expect("full").len(),
        full.len()
    );
}

#[test]
fn damaged_deflate_data_costs_the_rest_of_its_block_only() {
    let name = "k8s_small.sf";
    let full = clean_records(name);
    let mut bytes = trace_bytes(name);
    // Inside the compressed data of the third block (59889, records 2372..3678). Avro's
    // deflate has no checksum: this damage inflates, to data that is right up to the damage
    // and garbage after it; the records before the garbage are delivered.
    for b in &mut bytes[65_000..65_016] {
        *b ^= 0x5a;
    }
    let items = decode_bytes(&bytes, name).expect("header intact");
    let errors: Vec<String> = items
        .iter()
        .filter_map(|i| i.as_ref().err().map(ToString::to_string))
        .collect();
    assert_eq!(
        errors,
        [
            "k8s_small.sf: record 2586 (block at byte 59889): undecodable datum at byte 12877 of the block's data: union index 2906 out of range (12 branches); 1092 records of the block skipped"
        ]
    );
    let records: Vec<&Record> = items.iter().filter_map(|i| i.as_ref().ok()).collect();
    // 214 records of the third block before the undecodable one: the first ones are right,
    // the last ones decode from garbage (no checksum can tell).
    let tail = full.len() - 3678;
    assert_eq!(records.len(), 2586 + tail);
    assert!(records[..2372].iter().copied().eq(&full[..2372]));
    assert!(records[2586..].iter().copied().eq(&full[3678..]));
}

// Random damage: see tests/fuzz.rs (proptest), which replaces the earlier loop here.

// ----------------------------------------------------------------------------------------
// Generated traces
// ----------------------------------------------------------------------------------------

/// The writer schema of the schema-5 trace, as JSON, to write traces with or to alter.
fn v5_schema_json() -> Json {
    let bytes = trace_bytes("filesat-v5.sf");
    let reader = TraceReader::new(Cursor::new(bytes), "filesat-v5.sf".into()).expect("open");
    serde_json::from_str(reader.file().schema_json()).expect("schema as JSON")
}

/// The record definition named `name` among the branches of the `rec` union.
fn branch_json<'a>(schema: &'a mut Json, name: &str) -> &'a mut Json {
    schema["fields"][0]["type"]
        .as_array_mut()
        .expect("rec union")
        .iter_mut()
        .find(|b| b["name"] == name)
        .unwrap_or_else(|| panic!("branch {name}"))
}

fn write_trace(schema: &Json, data: &[Value]) -> Vec<u8> {
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

fn index_of(table: &BranchTable, simple_name: &str) -> u32 {
    let i = table
        .branches()
        .iter()
        .position(|b| b.simple_name() == simple_name)
        .unwrap_or_else(|| panic!("branch {simple_name}"));
    u32::try_from(i).expect("index")
}

/// A `sysflow.SysFlow` datum whose `rec` is the record `fields` of branch `branch`.
fn datum(table: &BranchTable, branch: &str, fields: Vec<(&str, Value)>) -> Value {
    let fields = fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    Value::Record(vec![(
        "rec".to_owned(),
        Value::Union(index_of(table, branch), Box::new(Value::Record(fields))),
    )])
}

fn v_oid(oid: Oid) -> Value {
    Value::Record(vec![
        ("createTS".into(), Value::Long(oid.create_ts)),
        ("hpid".into(), Value::Long(oid.hpid)),
    ])
}

fn v_str(s: &str) -> Value {
    Value::String(s.to_owned())
}

fn v_some(v: Value) -> Value {
    Value::Union(1, Box::new(v))
}

fn v_none() -> Value {
    Value::Union(0, Box::new(Value::Null))
}

fn v_longs(v: &[i64]) -> Value {
    Value::Array(v.iter().map(|x| Value::Long(*x)).collect())
}

const OID: Oid = Oid {
    create_ts: 1_700_000_000_123_456_789,
    hpid: 4242,
};
const PARENT: Oid = Oid {
    create_ts: 1_600_000_000_000_000_001,
    hpid: 1,
};
const TS: i64 = 1_700_000_001_000_000_007;

/// One datum of every record type, and the record each must decode to.
fn every_record_type(table: &BranchTable) -> Vec<(Value, Record)> {
    let foid_a = Foid([0xaa; 20]);
    let foid_b = Foid([0xbb; 20]);
    let ip = 16_777_343; // 127.0.0.1
    vec![
        (
            datum(
                table,
                "SFHeader",
                vec![
                    ("version", Value::Long(5)),
                    ("exporter", v_str("host")),
                    ("ip", v_str("10.0.0.1")),
                    ("filename", v_str("/tmp/t.sf")),
                ],
            ),
            Record::Header(SfHeader {
                version: 5,
                exporter: "host".into(),
                ip: "10.0.0.1".into(),
                filename: "/tmp/t.sf".into(),
            }),
        ),
        (
            datum(
                table,
                "Pod",
                vec![
                    ("ts", Value::Long(TS)),
                    ("id", v_str("pod-1")),
                    ("name", v_str("web")),
                    ("nodeName", v_str("node")),
                    ("hostIP", v_longs(&[ip])),
                    ("internalIP", v_longs(&[ip, 0])),
                    ("namespace", v_str("default")),
                    ("restartCount", Value::Long(3)),
                    (
                        "labels",
                        Value::Map(
                            [("zeta", "1"), ("app", "web"), ("mid", "x")]
                                .into_iter()
                                .map(|(k, v)| (k.to_owned(), v_str(v)))
                                .collect(),
                        ),
                    ),
                    ("selectors", Value::Map(Default::default())),
                    (
                        "services",
                        Value::Array(vec![Value::Record(vec![
                            ("name".into(), v_str("svc")),
                            ("id".into(), v_str("svc-1")),
                            ("namespace".into(), v_str("default")),
                            (
                                "portList".into(),
                                Value::Array(vec![Value::Record(vec![
                                    ("port".into(), Value::Int(80)),
                                    ("targetPort".into(), Value::Int(8080)),
                                    ("nodePort".into(), Value::Int(30080)),
                                    ("proto".into(), v_str("TCP")),
                                ])]),
                            ),
                            ("clusterIP".into(), v_longs(&[ip])),
                        ])]),
                    ),
                ],
            ),
            Record::Pod(Pod {
                ts: TS,
                id: "pod-1".into(),
                name: "web".into(),
                node_name: "node".into(),
                host_ip: vec![ip],
                internal_ip: vec![ip, 0],
                namespace: "default".into(),
                restart_count: 3,
                labels: vec![
                    ("app".into(), "web".into()),
                    ("mid".into(), "x".into()),
                    ("zeta".into(), "1".into()),
                ],
                selectors: vec![],
                services: vec![Service {
                    name: "svc".into(),
                    id: "svc-1".into(),
                    namespace: "default".into(),
                    port_list: vec![Port {
                        port: 80,
                        target_port: 8080,
                        node_port: 30080,
                        proto: "TCP".into(),
                    }],
                    cluster_ip: vec![ip],
                }],
            }),
        ),
        (
            datum(
                table,
                "Container",
                vec![
                    ("id", v_str("c1")),
                    ("name", v_str("web")),
                    ("image", v_str("nginx")),
                    ("imageid", v_str("sha")),
                    ("type", Value::Enum(7, "CT_CONTAINERD".into())),
                    ("privileged", Value::Boolean(true)),
                    ("podId", v_some(v_str("pod-1"))),
                ],
            ),
            Record::Container(Container {
                id: "c1".into(),
                name: "web".into(),
                image: "nginx".into(),
                imageid: "sha".into(),
                r#type: ContainerType::Containerd,
                privileged: true,
                pod_id: Some("pod-1".into()),
            }),
        ),
        (
            datum(
                table,
                "Process",
                vec![
                    ("state", Value::Enum(1, "MODIFIED".into())),
                    ("oid", v_oid(OID)),
                    ("poid", v_some(v_oid(PARENT))),
                    ("ts", Value::Long(TS)),
                    ("exe", v_str(" /bin/sh\n")),
                    ("exeArgs", v_str("\t-c true ")),
                    ("uid", Value::Int(0)),
                    ("userName", v_str("root")),
                    ("gid", Value::Int(-1)),
                    ("groupName", v_str("")),
                    ("tty", Value::Boolean(false)),
                    ("containerId", v_some(v_str("c1"))),
                    ("entry", Value::Boolean(true)),
                    ("cwd", v_str("/")),
                    ("env", Value::Array(vec![v_str("A=1"), v_str("B=")])),
                ],
            ),
            Record::Process(Process {
                state: ObjectState::Modified,
                oid: OID,
                poid: Some(PARENT),
                ts: TS,
                exe: "/bin/sh".into(),
                exe_args: "-c true".into(),
                uid: 0,
                user_name: "root".into(),
                gid: -1,
                group_name: "".into(),
                tty: false,
                container_id: Some("c1".into()),
                entry: true,
                cwd: "/".into(),
                env: vec!["A=1".into(), "B=".into()],
            }),
        ),
        (
            datum(
                table,
                "File",
                vec![
                    ("state", Value::Enum(0, "CREATED".into())),
                    ("oid", Value::Fixed(20, foid_a.0.to_vec())),
                    ("ts", Value::Long(TS)),
                    ("restype", Value::Int('f' as i32)),
                    ("path", v_str("/etc/passwd")),
                    ("containerId", v_none()),
                ],
            ),
            Record::File(File {
                state: ObjectState::Created,
                oid: foid_a,
                ts: TS,
                restype: 'f' as i32,
                path: "/etc/passwd".into(),
                container_id: None,
            }),
        ),
        (
            datum(
                table,
                "ProcessEvent",
                vec![
                    ("procOID", v_oid(OID)),
                    ("ts", Value::Long(TS)),
                    ("tid", Value::Long(4243)),
                    ("opFlags", Value::Int(2)),
                    ("args", Value::Array(vec![v_str("-c"), v_str("true")])),
                    ("ret", Value::Int(0)),
                ],
            ),
            Record::ProcessEvent(ProcessEvent {
                proc_oid: OID,
                ts: TS,
                tid: 4243,
                op_flags: 2,
                args: vec!["-c".into(), "true".into()],
                ret: 0,
            }),
        ),
        (
            datum(
                table,
                "ProcessFlow",
                vec![
                    ("procOID", v_oid(OID)),
                    ("ts", Value::Long(TS)),
                    ("numThreadsCloned", Value::Long(5)),
                    ("opFlags", Value::Int(1 | 4)),
                    ("endTs", Value::Long(TS + 10)),
                    ("numThreadsExited", Value::Long(4)),
                    ("numCloneErrors", Value::Long(1)),
                ],
            ),
            Record::ProcessFlow(ProcessFlow {
                proc_oid: OID,
                ts: TS,
                num_threads_cloned: 5,
                op_flags: 5,
                end_ts: TS + 10,
                num_threads_exited: 4,
                num_clone_errors: 1,
            }),
        ),
        (
            datum(
                table,
                "FileFlow",
                vec![
                    ("procOID", v_oid(OID)),
                    ("ts", Value::Long(TS)),
                    ("tid", Value::Long(4243)),
                    ("opFlags", Value::Int(1 << 7)),
                    ("openFlags", Value::Int(0o101)),
                    ("endTs", Value::Long(TS + 1)),
                    ("fileOID", Value::Fixed(20, foid_a.0.to_vec())),
                    ("fd", Value::Int(3)),
                    ("numRRecvOps", Value::Long(1)),
                    ("numWSendOps", Value::Long(2)),
                    ("numRRecvBytes", Value::Long(3)),
                    ("numWSendBytes", Value::Long(4)),
                ],
            ),
            Record::FileFlow(FileFlow {
                proc_oid: OID,
                ts: TS,
                tid: 4243,
                op_flags: 1 << 7,
                open_flags: 0o101,
                end_ts: TS + 1,
                file_oid: foid_a,
                fd: 3,
                num_r_recv_ops: 1,
                num_w_send_ops: 2,
                num_r_recv_bytes: 3,
                num_w_send_bytes: 4,
            }),
        ),
        (
            datum(
                table,
                "FileEvent",
                vec![
                    ("procOID", v_oid(OID)),
                    ("ts", Value::Long(TS)),
                    ("tid", Value::Long(4243)),
                    ("opFlags", Value::Int(1 << 20)),
                    ("fileOID", Value::Fixed(20, foid_a.0.to_vec())),
                    ("ret", Value::Int(0)),
                    ("newFileOID", v_some(Value::Fixed(20, foid_b.0.to_vec()))),
                ],
            ),
            Record::FileEvent(FileEvent {
                proc_oid: OID,
                ts: TS,
                tid: 4243,
                op_flags: 1 << 20,
                file_oid: foid_a,
                ret: 0,
                new_file_oid: Some(foid_b),
            }),
        ),
        (
            datum(
                table,
                "NetworkFlow",
                vec![
                    ("procOID", v_oid(OID)),
                    ("ts", Value::Long(TS)),
                    ("tid", Value::Long(4243)),
                    ("opFlags", Value::Int(1 << 6)),
                    ("endTs", Value::Long(TS + 2)),
                    ("sip", Value::Int(ip as i32)),
                    ("sport", Value::Int(40000)),
                    ("dip", Value::Int(ip as i32)),
                    ("dport", Value::Int(8080)),
                    ("proto", Value::Int(6)),
                    ("fd", Value::Int(7)),
                    ("numRRecvOps", Value::Long(10)),
                    ("numWSendOps", Value::Long(20)),
                    ("numRRecvBytes", Value::Long(30)),
                    ("numWSendBytes", Value::Long(40)),
                ],
            ),
            Record::NetworkFlow(NetworkFlow {
                proc_oid: OID,
                ts: TS,
                tid: 4243,
                op_flags: 1 << 6,
                end_ts: TS + 2,
                sip: ip as i32,
                sport: 40000,
                dip: ip as i32,
                dport: 8080,
                proto: 6,
                fd: 7,
                num_r_recv_ops: 10,
                num_w_send_ops: 20,
                num_r_recv_bytes: 30,
                num_w_send_bytes: 40,
            }),
        ),
        (
            datum(
                table,
                "NetworkEvent",
                vec![
                    ("procOID", v_oid(OID)),
                    ("ts", Value::Long(TS)),
                    ("tid", Value::Long(4243)),
                    ("opFlags", Value::Int(1 << 5)),
                    ("sip", Value::Int(ip as i32)),
                    ("sport", Value::Int(8080)),
                    ("dip", Value::Int(-1_062_731_775)),
                    ("dport", Value::Int(40000)),
                    ("proto", Value::Int(17)),
                    ("ret", Value::Int(-111)),
                ],
            ),
            Record::NetworkEvent(NetworkEvent {
                proc_oid: OID,
                ts: TS,
                tid: 4243,
                op_flags: 1 << 5,
                sip: ip as i32,
                sport: 8080,
                dip: -1_062_731_775,
                dport: 40000,
                proto: 17,
                ret: -111,
            }),
        ),
        (
            datum(
                table,
                "K8sEvent",
                vec![
                    ("kind", Value::Enum(2, "K8S_PODS".into())),
                    ("action", Value::Enum(0, "K8S_COMPONENT_ADDED".into())),
                    ("ts", Value::Long(TS)),
                    ("message", v_str("{\"kind\":\"Pod\"}")),
                ],
            ),
            Record::K8sEvent(K8sEvent {
                kind: K8sComponent::Pods,
                action: K8sAction::Added,
                ts: TS,
                message: "{\"kind\":\"Pod\"}".into(),
            }),
        ),
    ]
}

/// The branch table the reader makes of a writer schema (from a trace of no datum).
fn table_of(schema: &Json) -> BranchTable {
    let bytes = write_trace(schema, &[]);
    TraceReader::new(Cursor::new(bytes), "t".into())
        .expect("a SysFlow schema")
        .file()
        .branches()
        .clone()
}

fn v5_table() -> BranchTable {
    table_of(&v5_schema_json())
}

#[test]
fn generated_trace_with_every_record_type_round_trips() {
    let table = v5_table();
    let cases = every_record_type(&table);
    let kinds: Vec<RecordKind> = cases.iter().map(|(_, r)| r.kind()).collect();
    let mut all = RecordKind::ALL.to_vec();
    all.sort();
    let mut sorted = kinds.clone();
    sorted.sort();
    assert_eq!(sorted, all, "every record type is generated");

    let data: Vec<Value> = cases.iter().map(|(v, _)| v.clone()).collect();
    let bytes = write_trace(&v5_schema_json(), &data);
    let file = write_file(&bytes);
    let reader = trace::open(file.path()).expect("open");
    assert_eq!(reader.file().codec(), "deflate");
    let decoded: Vec<Record> = reader.map(|r| r.expect("record")).collect();
    let expected: Vec<Record> = cases.into_iter().map(|(_, r)| r).collect();
    assert_eq!(decoded, expected);
}

/// `datum` without the named fields in its `rec` record.
fn without_fields(mut datum: Value, names: &[&str]) -> Value {
    if let Value::Record(top) = &mut datum
        && let Some((_, Value::Union(_, inner))) = top.first_mut()
        && let Value::Record(fields) = inner.as_mut()
    {
        fields.retain(|(name, _)| !names.contains(&name.as_str()));
    }
    datum
}

#[test]
fn missing_fields_get_the_reader_defaults() {
    let mut schema = v5_schema_json();
    // An older Process: no entry, cwd, env; a NetworkEvent without tid.
    let process = branch_json(&mut schema, "Process");
    process["fields"]
        .as_array_mut()
        .expect("fields")
        .retain(|f| !["entry", "cwd", "env"].contains(&f["name"].as_str().unwrap_or_default()));
    let event = branch_json(&mut schema, "NetworkEvent");
    event["fields"]
        .as_array_mut()
        .expect("fields")
        .retain(|f| f["name"] != "tid");

    let table = v5_table();
    let cases = every_record_type(&table);
    let case = |kind| {
        cases
            .iter()
            .find(|(_, r)| r.kind() == kind)
            .cloned()
            .expect("a case")
    };
    let (process_value, process) = case(RecordKind::Process);
    let (event_value, event) = case(RecordKind::NetworkEvent);
    let bytes = write_trace(
        &schema,
        &[
            without_fields(process_value, &["entry", "cwd", "env"]),
            without_fields(event_value, &["tid"]),
        ],
    );
    let reader = TraceReader::new(Cursor::new(&bytes), "old.sf".into()).expect("open");
    let defaulted = reader.decoder().defaulted();
    assert!(
        defaulted.contains(&(
            "sysflow.entity.Process".to_owned(),
            vec!["entry", "cwd", "env"]
        )),
        "{defaulted:?}"
    );
    assert!(
        defaulted.contains(&("sysflow.event.NetworkEvent".to_owned(), vec!["tid"])),
        "{defaulted:?}"
    );
    let items: Vec<Record> = reader.map(|r| r.expect("record")).collect();
    let (Record::Process(expected), Record::NetworkEvent(expected_event)) = (process, event) else {
        unreachable!()
    };
    assert_ne!(expected.cwd, "");
    assert_ne!(expected_event.tid, 0);
    assert_eq!(
        items,
        [
            Record::Process(Process {
                entry: false,
                cwd: String::new(),
                env: vec![],
                ..expected
            }),
            Record::NetworkEvent(NetworkEvent {
                tid: 0,
                ..expected_event
            })
        ]
    );
}

#[test]
fn an_unknown_union_branch_is_reported_by_name_and_skipped() {
    let mut schema = v5_schema_json();
    schema["fields"][0]["type"]
        .as_array_mut()
        .expect("union")
        .push(json!({
            "type": "record", "name": "Gizmo", "namespace": "sysflow.entity",
            "fields": [{"name": "x", "type": "int"}]
        }));
    let table = table_of(&schema);
    let gizmo = table.branches().last().expect("branch").clone();
    assert_eq!(
        (gizmo.name.as_str(), gizmo.kind),
        ("sysflow.entity.Gizmo", None)
    );
    let cases = every_record_type(&table);
    let bytes = write_trace(
        &schema,
        &[
            cases[0].0.clone(),
            datum(&table, "Gizmo", vec![("x", Value::Int(1))]),
            cases[4].0.clone(),
        ],
    );
    let items = decode_bytes(&bytes, "new.sf").expect("open");
    let err = items[1].as_ref().expect_err("gizmo");
    assert!(
        matches!(err, DecodeError::UnknownBranch { index: 12, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("new.sf: record 1 (block at byte "),
        "{err}"
    );
    assert!(
        err.to_string().ends_with(
            ": unknown record type sysflow.entity.Gizmo (branch 12 of the rec union); skipped"
        ),
        "{err}"
    );
    assert_eq!(items[2].as_ref().expect("next"), &cases[4].1);
}

#[test]
fn unknown_enum_symbol_is_a_field_error() {
    let mut schema = v5_schema_json();
    let container = branch_json(&mut schema, "Container");
    for field in container["fields"].as_array_mut().expect("fields") {
        if field["name"] == "type" {
            field["type"]["symbols"]
                .as_array_mut()
                .expect("symbols")
                .push(json!("CT_PODMAN"));
        }
    }
    let table = table_of(&schema);
    let bytes = write_trace(
        &schema,
        &[datum(
            &table,
            "Container",
            vec![
                ("id", v_str("c1")),
                ("name", v_str("web")),
                ("image", v_str("nginx")),
                ("imageid", v_str("sha")),
                ("type", Value::Enum(10, "CT_PODMAN".into())),
                ("privileged", Value::Boolean(false)),
                ("podId", v_none()),
            ],
        )],
    );
    let items = decode_bytes(&bytes, "x.sf").expect("open");
    let err = items[0].as_ref().expect_err("podman");
    assert!(
        err.to_string()
            .ends_with("field \"type\": unknown ContainerType symbol \"CT_PODMAN\""),
        "{err}"
    );
}

/// Byte offset of the `avro.schema` value in a container's header (apache-avro writes the
/// metadata map in hash order, so it varies).
fn schema_offset(bytes: &[u8]) -> u64 {
    sf_reader::container::Container::open(bytes)
        .expect("header")
        .header()
        .get("avro.schema")
        .expect("avro.schema")
        .offset
}

#[test]
fn a_non_sysflow_avro_file_is_rejected_at_open() {
    let schema = json!({"type": "record", "name": "Weather", "namespace": "test",
        "fields": [{"name": "station", "type": "string"}]});
    let bytes = write_trace(
        &schema,
        &[Value::Record(vec![("station".into(), v_str("x"))])],
    );
    let err = decode_bytes(&bytes, "weather.avro").expect_err("not sysflow");
    assert!(matches!(err, DecodeError::NotSysFlow { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "weather.avro: not a SysFlow trace: the writer schema is the record test.Weather, not sysflow.SysFlow (writer schema at byte {})",
            schema_offset(&bytes)
        )
    );
    assert_eq!(err.brief(), "not a SysFlow trace");

    let schema = json!({"type": "record", "name": "SysFlow", "namespace": "sysflow",
        "fields": [{"name": "rec", "type": "string"}]});
    let bytes = write_trace(&schema, &[]);
    let err = decode_bytes(&bytes, "odd.avro").expect_err("rec not a union");
    assert_eq!(
        err.to_string(),
        format!(
            "odd.avro: not a SysFlow trace: field `rec` of sysflow.SysFlow is string, not a union (writer schema at byte {})",
            schema_offset(&bytes)
        )
    );

    let bytes = write_trace(&json!("long"), &[Value::Long(1)]);
    let err = decode_bytes(&bytes, "long.avro").expect_err("not a record");
    assert!(
        err.to_string()
            .starts_with("long.avro: not a SysFlow trace: the writer schema is long"),
        "{err}"
    );
}

#[test]
fn union_branches_given_by_name_reference_are_resolved() {
    // The records are defined in an earlier field; the union only names them.
    let schema = json!({
        "type": "record", "name": "SysFlow", "namespace": "sysflow",
        "fields": [
            {"name": "defs", "type": {"type": "array", "items": {
                "type": "record", "name": "ProcessFlow", "namespace": "sysflow.flow",
                "fields": [
                    {"name": "procOID", "type": {"type": "record", "name": "OID", "namespace": "sysflow.type",
                        "fields": [{"name": "createTS", "type": "long"}, {"name": "hpid", "type": "long"}]}},
                    {"name": "ts", "type": "long"}, {"name": "tid", "type": "long"},
                    {"name": "opFlags", "type": "int"}, {"name": "args", "type": {"type": "array", "items": "string"}},
                    {"name": "ret", "type": "int"}
                ]}}},
            {"name": "rec", "type": ["sysflow.flow.ProcessFlow", "sysflow.type.OID"]}
        ]
    });
    let table = table_of(&schema);
    let kinds: Vec<_> = table
        .branches()
        .iter()
        .map(|b| (b.name.as_str(), b.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("sysflow.flow.ProcessFlow", Some(RecordKind::ProcessEvent)),
            ("sysflow.type.OID", None)
        ]
    );
}
