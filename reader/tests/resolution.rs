//! Schema resolution, rule by rule, on small files: generated records (`sf_gen`) written by
//! apache-avro with writer schemas altered from the collector's schema 5, read back through
//! `sf_reader::trace`, and compared with the records each rule says (computed here from the
//! generated ones, not by the reader under test). Then our decoder on blocks of its own, on
//! corrupt lengths, and on random damage, against apache-avro's reading (`sf_oracle`).

use std::io::Cursor;

use apache_avro::types::Value;
use apache_avro::{Codec, DeflateSettings, Schema, Writer};
use proptest::prelude::*;
use serde_json::{Value as Json, json};
use sf_gen::{GenCodec, GenConfig, Generator};
use sf_processor::model::{
    ContainerType, Foid, K8sComponent, ObjectState, Record, RecordKind, op_flags,
};
use sf_reader::error::{DatumProblem, DecodeError, FieldProblem, Unresolved};
use sf_reader::fast::SysFlowDecoder;
use sf_reader::trace::TraceReader;

fn shared_dir() -> std::path::PathBuf {
    std::env::var_os("SF_SHARED_DIR")
        .map_or_else(|| std::path::PathBuf::from("/work/shared"), Into::into)
}

/// What the reader makes of a trace: its records and errors in order, and the fields it
/// reported as unresolved at open.
fn decode(bytes: &[u8]) -> (Vec<Result<Record, DecodeError>>, Vec<Unresolved>) {
    let reader =
        TraceReader::new(Cursor::new(bytes), "x.sf".to_owned()).unwrap_or_else(|e| panic!("{e}"));
    let unresolved = reader.file().unresolved().to_vec();
    (reader.collect(), unresolved)
}

/// The records of a trace the reader reads without any error.
fn clean(bytes: &[u8]) -> Vec<Record> {
    let (items, unresolved) = decode(bytes);
    assert!(unresolved.is_empty(), "{unresolved:?}");
    items
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

fn generated_records(pods: bool) -> Vec<Record> {
    Generator::new(&GenConfig {
        records: 2_000,
        pods,
        seed: 5,
        ..GenConfig::default()
    })
    .collect()
}

fn v5_schema() -> Json {
    serde_json::from_str(sf_gen::SCHEMA_V5).expect("schema json")
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

/// `records` as apache-avro values of the v5 schema, each passed through `alter` (which may
/// rewrite the `rec` record's fields to fit an altered schema).
fn values(
    records: &[Record],
    mut alter: impl FnMut(&Record, &mut Vec<(String, Value)>),
) -> Vec<Value> {
    records
        .iter()
        .map(|r| {
            let mut v = sf_gen::to_value(r);
            if let Value::Record(top) = &mut v
                && let Some((_, Value::Union(_, inner))) = top.first_mut()
                && let Value::Record(fields) = inner.as_mut()
            {
                alter(r, fields);
            }
            v
        })
        .collect()
}

fn set(fields: &mut [(String, Value)], name: &str, value: Value) {
    let (_, v) = fields
        .iter_mut()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("field {name}"));
    *v = value;
}

// ----------------------------------------------------------------------------------------
// The rules
// ----------------------------------------------------------------------------------------

#[test]
fn reader_fields_the_writer_lacks_get_the_reader_schema_defaults() {
    let mut schema = v5_schema();
    let gone: &[(&str, &[&str])] = &[
        ("Process", &["tty", "entry", "cwd", "env"]),
        ("SFHeader", &["ip", "filename"]),
        ("Container", &["privileged", "podId"]),
        ("FileFlow", &["openFlags"]),
        ("NetworkFlow", &["fd"]),
        ("FileEvent", &["newFileOID"]),
    ];
    for (branch, fields) in gone {
        remove_fields(&mut schema, branch, fields);
    }
    let records = generated_records(true);
    // The generated values differ from the defaults, so the defaults show.
    assert!(
        records
            .iter()
            .any(|r| matches!(r, Record::Process(p) if !p.cwd.is_empty() && !p.env.is_empty()))
    );
    assert!(
        records
            .iter()
            .any(|r| matches!(r, Record::Container(c) if c.pod_id.is_some()))
    );
    assert!(
        records
            .iter()
            .any(|r| matches!(r, Record::Header(h) if h.ip != "NA" && !h.filename.is_empty()))
    );
    let data = values(&records, |r, fields| {
        let name = match r.kind() {
            RecordKind::Header => "SFHeader",
            kind => kind.name(),
        };
        if let Some((_, names)) = gone.iter().find(|(b, _)| *b == name) {
            fields.retain(|(n, _)| !names.contains(&n.as_str()));
        }
    });
    let expected: Vec<Record> = records
        .into_iter()
        .map(|mut r| {
            match &mut r {
                Record::Process(p) => {
                    (p.tty, p.entry, p.cwd, p.env) = (false, false, String::new(), Vec::new());
                }
                Record::Header(h) => (h.ip, h.filename) = ("NA".to_owned(), String::new()),
                Record::Container(c) => (c.privileged, c.pod_id) = (false, None),
                Record::FileFlow(f) => f.open_flags = 0,
                Record::NetworkFlow(f) => f.fd = 0,
                Record::FileEvent(e) => e.new_file_oid = None,
                _ => {}
            }
            r
        })
        .collect();
    let ours = clean(&write_values(&schema, &data));
    assert!(ours == expected, "defaults");
}

#[test]
fn fields_go_by_name_and_writer_fields_the_reader_lacks_are_skipped() {
    let mut schema = v5_schema();
    // FileFlow: fields reversed, and an extra field of every kind of type.
    let flow = branch_json(&mut schema, "FileFlow");
    let fields = flow["fields"].as_array_mut().expect("fields");
    fields.reverse();
    fields.push(json!({"name": "extra", "type": {"type": "record", "name": "Extra", "fields": [
        {"name": "f", "type": "float"}, {"name": "d", "type": "double"}, {"name": "b", "type": "bytes"},
        {"name": "m", "type": {"type": "map", "values": ["null", "string"]}},
        {"name": "a", "type": {"type": "array", "items": "boolean"}},
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["X", "Y"]}},
        {"name": "x", "type": {"type": "fixed", "name": "X3", "size": 3}}]}}));
    let records = generated_records(false);
    let data = values(&records, |r, fields| {
        if r.kind() == RecordKind::FileFlow {
            fields.reverse();
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
    });
    let ours = clean(&write_values(&schema, &data));
    assert!(ours == records);
    assert!(ours.iter().any(|r| r.kind() == RecordKind::FileFlow));
}

#[test]
fn int_is_promoted_to_long_and_a_field_of_another_type_is_reported_once_and_defaulted() {
    let mut schema = v5_schema();
    field_json(&mut schema, "FileFlow", "tid")["type"] = json!("int"); // promoted
    field_json(&mut schema, "FileFlow", "fd")["type"] = json!("long"); // never narrowed
    field_json(&mut schema, "File", "state")["type"] = json!("string"); // not an enum
    field_json(&mut schema, "FileEvent", "fileOID")["type"] = json!("bytes"); // not fixed
    let records = generated_records(false);
    let data = values(&records, |r, fields| {
        let take = |fields: &[(String, Value)], name: &str| {
            fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        match r {
            Record::FileFlow(f) => {
                set(fields, "tid", Value::Int((f.tid % 1_000_000) as i32));
                set(fields, "fd", Value::Long(i64::from(f.fd) + (1 << 40)));
            }
            Record::File(f) => set(fields, "state", Value::String(f.state.symbol().into())),
            Record::FileEvent(_) => {
                if let Some(Value::Fixed(_, b)) = take(fields, "fileOID") {
                    set(fields, "fileOID", Value::Bytes(b));
                }
            }
            _ => {}
        }
    });
    let (items, unresolved) = decode(&write_values(&schema, &data));
    let notes: Vec<String> = unresolved.iter().map(ToString::to_string).collect();
    assert_eq!(
        notes,
        [
            "File field \"state\": written as string, which cannot be read as the reader's enum sysflow.type.SFObjectState; the reader's default is used in every record",
            "FileFlow field \"fd\": written as long, which cannot be read as the reader's int; the reader's default is used in every record",
            "FileEvent field \"fileOID\": written as bytes, which cannot be read as the reader's fixed(20); the reader's default is used in every record",
        ]
    );
    let expected: Vec<Record> = records
        .into_iter()
        .map(|mut r| {
            match &mut r {
                Record::FileFlow(f) => (f.tid, f.fd) = (f.tid % 1_000_000, 0),
                Record::File(f) => f.state = ObjectState::Created,
                Record::FileEvent(e) => e.file_oid = Foid([0; 20]),
                _ => {}
            }
            r
        })
        .collect();
    // Reported once, at open: not once per record.
    let ours: Vec<Record> = items
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("{e}")))
        .collect();
    assert!(ours == expected);
    assert!(
        ours.iter()
            .any(|r| matches!(r, Record::FileFlow(f) if f.tid > 0))
    );
}

#[test]
fn enums_resolve_by_symbol_with_the_reader_default_or_a_field_problem() {
    let mut schema = v5_schema();
    // The writer's ContainerType lists its symbols in another order, plus one the reader has
    // not; its K8sComponent has one more too (the reader's enum has a default for it).
    let ct = &mut field_json(&mut schema, "Container", "type")["type"];
    let symbols = ct["symbols"].as_array_mut().expect("symbols");
    symbols.reverse();
    symbols.push(json!("CT_PODMAN"));
    let podman = symbols.len() - 1;
    let reversed: Vec<String> = symbols
        .iter()
        .map(|s| s.as_str().expect("symbol").to_owned())
        .collect();
    let kc = &mut field_json(&mut schema, "K8sEvent", "kind")["type"];
    kc["symbols"]
        .as_array_mut()
        .expect("symbols")
        .push(json!("K8S_CRONJOBS"));
    let records = generated_records(true);
    let mut containers = 0;
    let mut k8s = 0;
    let data = values(&records, |r, fields| match r {
        Record::Container(c) => {
            containers += 1;
            let value = if containers == 2 {
                Value::Enum(podman as u32, "CT_PODMAN".into())
            } else {
                let i = reversed
                    .iter()
                    .position(|s| s == c.r#type.symbol())
                    .expect("symbol");
                Value::Enum(i as u32, c.r#type.symbol().into())
            };
            set(fields, "type", value);
        }
        Record::K8sEvent(_) => {
            k8s += 1;
            if k8s == 1 {
                set(fields, "kind", Value::Enum(10, "K8S_CRONJOBS".into()));
            }
        }
        _ => {}
    });
    assert!(containers >= 2 && k8s >= 1, "{containers} {k8s}");
    let (items, unresolved) = decode(&write_values(&schema, &data));
    assert!(unresolved.is_empty());
    let mut containers = 0;
    let mut k8s = 0;
    for (i, (item, want)) in items.iter().zip(&records).enumerate() {
        match (item, want) {
            (Err(e), Record::Container(_)) => {
                containers += 1;
                assert_eq!(containers, 2);
                let m = e.to_string();
                assert!(
                    m.starts_with(&format!("x.sf: record {i} (Container, block at byte "))
                        && m.ends_with(
                            "): field \"type\": unknown ContainerType symbol \"CT_PODMAN\""
                        ),
                    "{m}"
                );
                assert!(!e.ends_stream());
            }
            (Ok(Record::Container(got)), Record::Container(c)) => {
                containers += 1;
                assert_eq!(got, c);
            }
            (Ok(Record::K8sEvent(got)), Record::K8sEvent(e)) => {
                k8s += 1;
                let mut want = e.clone();
                if k8s == 1 {
                    want.kind = K8sComponent::Unknown;
                }
                assert_eq!(got, &want);
            }
            (Ok(got), want) => assert_eq!(got, want),
            (Err(e), _) => panic!("{e}"),
        }
    }
    assert_eq!(items.len(), records.len());
    assert!(containers > 2 && k8s > 0, "{containers} {k8s}");
    // Reordered symbols show: the generated containers are not all of the first symbol.
    assert!(
        records
            .iter()
            .any(|r| matches!(r, Record::Container(c) if c.r#type != ContainerType::Docker))
    );
}

#[test]
fn union_branches_resolve_one_by_one() {
    let mut schema = v5_schema();
    // The writer's containerId lists its branches the other way round; its sip may be null,
    // which the reader's int cannot take.
    field_json(&mut schema, "Process", "containerId")["type"] = json!(["string", "null"]);
    field_json(&mut schema, "NetworkFlow", "sip")["type"] = json!(["null", "int"]);
    let records = generated_records(false);
    let mut flows = 0;
    let data = values(&records, |r, fields| match r {
        Record::Process(p) => set(
            fields,
            "containerId",
            match &p.container_id {
                Some(id) => Value::Union(0, Box::new(Value::String(id.clone()))),
                None => Value::Union(1, Box::new(Value::Null)),
            },
        ),
        Record::NetworkFlow(f) => {
            flows += 1;
            let v = if flows % 3 == 0 {
                Value::Union(0, Box::new(Value::Null))
            } else {
                Value::Union(1, Box::new(Value::Int(f.sip)))
            };
            set(fields, "sip", v);
        }
        _ => {}
    });
    let (items, unresolved) = decode(&write_values(&schema, &data));
    assert!(unresolved.is_empty());
    let mut flows = 0;
    let mut nulls = 0;
    for (item, want) in items.iter().zip(&records) {
        if want.kind() == RecordKind::NetworkFlow {
            flows += 1;
        }
        match item {
            Ok(got) => assert_eq!(got, want),
            Err(DecodeError::Field {
                record_type,
                field,
                problem,
                ..
            }) => {
                nulls += 1;
                assert_eq!(flows % 3, 0);
                assert_eq!((&**record_type, &**field), ("NetworkFlow", "sip"));
                assert_eq!(
                    problem,
                    &FieldProblem::WrongType {
                        expected: "int".into(),
                        found: "null".into()
                    }
                );
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(nulls > 10, "{nulls}");
    assert_eq!(items.len(), records.len());
}

/// A writer schema of four branches (header, process, an event-like record, an unknown
/// record), and datums of it.
fn small_schema(event: Json) -> Json {
    let v5 = v5_schema();
    let union = v5["fields"][0]["type"].as_array().expect("union");
    json!({"type": "record", "name": "SysFlow", "namespace": "sysflow", "fields": [{"name": "rec", "type": [
        union[0], union[2], event,
        {"type": "record", "name": "Gizmo", "namespace": "sysflow.entity",
         "fields": [{"name": "x", "type": {"type": "array", "items": "string"}}]}]}]})
}

fn rec(index: u32, fields: Vec<(&str, Value)>) -> Value {
    Value::Record(vec![(
        "rec".into(),
        Value::Union(
            index,
            Box::new(Value::Record(
                fields.into_iter().map(|(n, v)| (n.to_owned(), v)).collect(),
            )),
        ),
    )])
}

fn oid(hpid: i64) -> Value {
    Value::Record(vec![
        ("createTS".into(), Value::Long(10)),
        ("hpid".into(), Value::Long(hpid)),
    ])
}

/// The header and first process of a generated trace, as values of [`small_schema`].
fn header_and_process() -> (Vec<Value>, Vec<Record>) {
    let records = generated_records(false);
    let header = records.first().expect("header").clone();
    let process = records
        .iter()
        .find(|r| r.kind() == RecordKind::Process)
        .expect("a process")
        .clone();
    let mut values = values(&[header.clone(), process.clone()], |_, _| {});
    if let Value::Record(top) = &mut values[1]
        && let Some((_, Value::Union(i, _))) = top.first_mut()
    {
        *i = 1;
    }
    (values, vec![header, process])
}

#[test]
fn the_rec_union_goes_by_name_and_shape() {
    let oid_ref = json!("sysflow.type.OID");
    let strings = json!({"type": "array", "items": "string"});
    // The earliest layout: process events named sysflow.flow.ProcessFlow.
    let event_like = json!({"type": "record", "name": "ProcessFlow", "namespace": "sysflow.flow", "fields": [
        {"name": "procOID", "type": oid_ref}, {"name": "ts", "type": "long"},
        {"name": "tid", "type": "long"}, {"name": "opFlags", "type": "int"},
        {"name": "args", "type": strings}, {"name": "ret", "type": "int"}]});
    // Today's process flow.
    let flow = json!({"type": "record", "name": "ProcessFlow", "namespace": "sysflow.flow", "fields": [
        {"name": "procOID", "type": oid_ref}, {"name": "ts", "type": "long"},
        {"name": "numThreadsCloned", "type": "long"}, {"name": "opFlags", "type": "int"},
        {"name": "endTs", "type": "long"}, {"name": "numThreadsExited", "type": "long"},
        {"name": "numCloneErrors", "type": "long"}]});
    let gizmo = rec(3, vec![("x", Value::Array(vec![]))]);

    let (mut data, mut expected) = header_and_process();
    data.push(rec(
        2,
        vec![
            ("procOID", oid(7)),
            ("ts", Value::Long(100)),
            ("tid", Value::Long(7)),
            ("opFlags", Value::Int(op_flags::EXEC)),
            ("args", Value::Array(vec![Value::String("-c".into())])),
            ("ret", Value::Int(0)),
        ],
    ));
    data.push(gizmo.clone());
    let bytes = write_values(&small_schema(event_like), &data);
    let reader = TraceReader::new(Cursor::new(&bytes), "early.sf".into()).expect("open");
    let kinds: Vec<Option<RecordKind>> = reader
        .file()
        .branches()
        .branches()
        .iter()
        .map(|b| b.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            Some(RecordKind::Header),
            Some(RecordKind::Process),
            Some(RecordKind::ProcessEvent),
            None
        ]
    );
    let items: Vec<_> = reader.collect();
    expected.push(Record::ProcessEvent(sf_processor::model::ProcessEvent {
        proc_oid: sf_processor::model::Oid {
            create_ts: 10,
            hpid: 7,
        },
        ts: 100,
        tid: 7,
        op_flags: op_flags::EXEC,
        args: vec!["-c".into()],
        ret: 0,
    }));
    for (item, want) in items.iter().zip(&expected) {
        assert_eq!(item.as_ref().expect("record"), want);
    }
    let last = items
        .last()
        .expect("the gizmo")
        .as_ref()
        .expect_err("unknown");
    assert!(
        last.to_string().ends_with(
            "unknown record type sysflow.entity.Gizmo (branch 3 of the rec union); skipped"
        ),
        "{last}"
    );

    // The same name with a process flow's fields is a process flow.
    let (mut data, _) = header_and_process();
    data.push(rec(
        2,
        vec![
            ("procOID", oid(7)),
            ("ts", Value::Long(100)),
            ("numThreadsCloned", Value::Long(3)),
            ("opFlags", Value::Int(op_flags::CLONE)),
            ("endTs", Value::Long(200)),
            ("numThreadsExited", Value::Long(2)),
            ("numCloneErrors", Value::Long(0)),
        ],
    ));
    let records = clean(&write_values(&small_schema(flow), &data));
    let Some(Record::ProcessFlow(pf)) = records.last() else {
        panic!("{records:?}")
    };
    assert_eq!(
        (pf.num_threads_cloned, pf.end_ts, pf.op_flags),
        (3, 200, op_flags::CLONE)
    );
}

#[test]
fn renamed_fields_whose_meaning_changed_come_from_the_mapping_table() {
    // The January-2019 layout: Process `type` (enum ActionType) for `state`, process events
    // `type` (enum EventType) for `opFlags`, first.
    let schema_2019: Json = serde_json::from_str(include_str!(
        "../../resources/schemas/sysflow-v1000-2019-01.avsc"
    ))
    .expect("schema");
    let mut with_setuid = schema_2019.clone();
    let event = &mut with_setuid["fields"][0]["type"][3];
    assert_eq!(event["name"], "ProcessFlow");
    event["fields"][0]["type"]["symbols"]
        .as_array_mut()
        .expect("EventType")
        .push(json!("SETUID"));
    let header = rec(
        0,
        vec![
            ("version", Value::Long(1000)),
            ("exporter", Value::String("play".into())),
        ],
    );
    let process = |state: (u32, &str)| {
        rec(
            2,
            vec![
                ("type", Value::Enum(state.0, state.1.into())),
                ("oid", oid(7)),
                ("poid", Value::Union(0, Box::new(Value::Null))),
                ("ts", Value::Long(5)),
                ("exe", Value::String(" /bin/sh ".into())),
                ("exeArgs", Value::String("-c x".into())),
                ("uid", Value::Int(0)),
                ("userName", Value::String("root".into())),
                ("gid", Value::Int(0)),
                ("groupName", Value::String("root".into())),
                ("containerId", Value::Union(0, Box::new(Value::Null))),
            ],
        )
    };
    let event = |t: (u32, &str)| {
        rec(
            3,
            vec![
                ("type", Value::Enum(t.0, t.1.into())),
                ("ts", Value::Long(6)),
                ("procOID", oid(7)),
                ("tid", Value::Long(7)),
                ("args", Value::Array(vec![])),
                ("ret", Value::Int(0)),
            ],
        )
    };
    let data = vec![
        header,
        process((0, "CREATED")),
        event((0, "CLONE")),
        process((1, "MODIFIED")),
        event((1, "EXEC")),
        event((2, "EXIT")),
        event((3, "SETUID")),
    ];
    let (items, unresolved) = decode(&write_values(&with_setuid, &data));
    assert!(unresolved.is_empty());
    let states: Vec<ObjectState> = items
        .iter()
        .filter_map(|r| match r {
            Ok(Record::Process(p)) => Some(p.state),
            _ => None,
        })
        .collect();
    assert_eq!(states, [ObjectState::Created, ObjectState::Modified]);
    let flags: Vec<i32> = items
        .iter()
        .filter_map(|r| match r {
            Ok(Record::ProcessEvent(e)) => Some(e.op_flags),
            _ => None,
        })
        .collect();
    assert_eq!(flags, [op_flags::CLONE, op_flags::EXEC, op_flags::EXIT]);
    let Some(Ok(Record::Process(p))) = items.get(1) else {
        panic!("{items:?}")
    };
    assert_eq!(
        (p.exe.as_str(), p.tty, p.state),
        ("/bin/sh", false, ObjectState::Created)
    );
    // A symbol the table has not: that datum is skipped.
    assert_eq!(items.len(), 7);
    let last = items.last().expect("items").as_ref().expect_err("SETUID");
    let m = last.to_string();
    assert!(
        m.starts_with("x.sf: record 6 (ProcessFlow, block at byte ")
            && m.ends_with("): field \"type\": unknown EventType symbol \"SETUID\""),
        "{m}"
    );
}

// ----------------------------------------------------------------------------------------
// Generated traces, blocks, corrupt data
// ----------------------------------------------------------------------------------------

fn generated(config: &GenConfig) -> Vec<u8> {
    let mut bytes = Vec::new();
    sf_gen::write_trace(config, &mut bytes).expect("generate");
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
        let ours = clean(&bytes);
        assert!(ours == expected, "{codec:?}: decoded records differ");
        let reference: Vec<Record> = sf_oracle::records(&bytes)
            .expect("oracle")
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
    let decoder = SysFlowDecoder::from_schema_json(sf_gen::SCHEMA_V5).expect("schema");
    let config = GenConfig {
        records: 3_000,
        pods: true,
        ..GenConfig::default()
    };
    let records: Vec<Record> = Generator::new(&config).collect();
    let mut block = Vec::new();
    for r in &records {
        sf_gen::encode_record(r, &mut block);
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
    let open = |bytes: &[u8]| TraceReader::new(Cursor::new(bytes.to_vec()), "x.sf".into());
    let err = open(&bytes).expect_err("not sysflow");
    assert!(
        err.to_string().starts_with(
            "x.sf: not a SysFlow trace: the writer schema is the record test.Weather, not sysflow.SysFlow (writer schema at byte "
        ),
        "{err}"
    );
    assert!(matches!(open(b""), Err(DecodeError::Empty { .. })));
    assert!(matches!(
        open(b"{\"json\": 1}"),
        Err(DecodeError::BadMagic { .. })
    ));
    let trace = std::fs::read(shared_dir().join("traces/tcp.sf")).expect("tcp.sf");
    for cut in [5, 100, 4000, 4332] {
        let err = open(&trace[..cut]).expect_err("truncated header");
        assert!(
            err.to_string()
                .starts_with("x.sf: bad Avro header: the file ends at byte "),
            "{err}"
        );
    }
}

#[test]
fn corrupt_lengths_are_bounded_by_the_block() {
    let decoder = SysFlowDecoder::from_schema_json(sf_gen::SCHEMA_V5).expect("schema");
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

/// Small traces and the length of their header (made once).
fn small_traces() -> &'static [(Vec<u8>, usize)] {
    static TRACES: std::sync::OnceLock<Vec<(Vec<u8>, usize)>> = std::sync::OnceLock::new();
    TRACES.get_or_init(|| {
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
                let header = TraceReader::new(Cursor::new(bytes.clone()), "x".into())
                    .expect("clean")
                    .file()
                    .header_len();
                (bytes, usize::try_from(header).expect("header length"))
            })
            .collect()
    })
}

proptest! {
    // 256 cases by default; PROPTEST_CASES=N for more.
    #![proptest_config(ProptestConfig::default())]

    /// Random byte changes and a truncation never panic, end the iteration, and, when both
    /// readers see nothing wrong, give the same records as apache-avro.
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
        if let Ok(reader) = TraceReader::new(Cursor::new(bytes.clone()), "x".into()) {
            let clean_open = reader.file().unresolved().is_empty();
            let items: Vec<_> = reader.take(100_000).collect();
            prop_assert!(items.len() < 100_000, "the iteration ends");
            let ours_clean = clean_open && items.iter().all(Result::is_ok);
            if let Ok(reference) = sf_oracle::records(&bytes)
                && ours_clean
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
        let decoder = SysFlowDecoder::from_schema_json(sf_gen::SCHEMA_V5).expect("schema");
        let items = decoder.decode_block(&block, count).take(2_000).count();
        prop_assert!(items <= count as usize + 1);
    }
}
