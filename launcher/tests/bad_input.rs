//! End-to-end: `sf-launch` on bad input. A directory that mixes good traces with every kind of
//! bad file is read to the end, every good record reaches the handler, each bad file is
//! reported by name and byte offset, and the run exits 3, as files gave no record at all (a
//! directory whose files each gave records, some damaged, exits 0). Records that reference
//! entities never seen are handled without that context and summed up in one warning.

mod common;

use std::collections::BTreeMap;
use std::io::Cursor;

use apache_avro::types::Value;
use apache_avro::{Codec, DeflateSettings, Schema, Writer};
use common::*;

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(root().join("resources/traces").join(name)).expect("sample trace")
}

/// The writer schema and the datums of a trace, read with apache-avro (independently of the
/// reader under test).
fn values_of(bytes: &[u8]) -> (Schema, Vec<Value>) {
    let reader = apache_avro::Reader::new(Cursor::new(bytes)).expect("avro");
    let schema = reader.writer_schema().clone();
    let values = reader.map(|v| v.expect("datum")).collect();
    (schema, values)
}

/// The simple record name of the `rec` branch of each datum of a trace: its record types,
/// in file order.
fn record_types(bytes: &[u8]) -> Vec<String> {
    let (schema, values) = values_of(bytes);
    let Schema::Record(top) = &schema else {
        panic!("not a record schema")
    };
    let Schema::Union(union) = &top.fields[0].schema else {
        panic!("rec is not a union")
    };
    values
        .iter()
        .map(|v| {
            let Value::Record(fields) = v else {
                panic!("datum")
            };
            let Value::Union(i, _) = &fields[0].1 else {
                panic!("rec")
            };
            match &union.variants()[*i as usize] {
                Schema::Record(r) => r.name.name.clone(),
                other => panic!("branch {other:?}"),
            }
        })
        .collect()
}

fn count_types<'a>(types: impl IntoIterator<Item = &'a String>, into: &mut BTreeMap<String, u64>) {
    for t in types {
        *into.entry(t.clone()).or_insert(0) += 1;
    }
}

fn write_trace(schema: &Schema, values: &[Value]) -> Vec<u8> {
    let mut writer = Writer::with_codec(
        schema,
        Vec::new(),
        Codec::Deflate(DeflateSettings::default()),
    );
    for v in values {
        writer.append_value_ref(v).expect("append");
    }
    writer.into_inner().expect("flush")
}

/// `datum` (a `sysflow.SysFlow` value) with its record's field `name` replaced.
fn with_field(mut datum: Value, name: &str, value: Value) -> Value {
    if let Value::Record(top) = &mut datum
        && let Some((_, Value::Union(_, inner))) = top.first_mut()
        && let Value::Record(fields) = inner.as_mut()
    {
        for (field, v) in fields.iter_mut() {
            if field == name {
                *v = value.clone();
            }
        }
    }
    datum
}

/// The field `name` of a datum's record.
fn field(datum: &Value, name: &str) -> Value {
    if let Value::Record(top) = datum
        && let Some((_, Value::Union(_, inner))) = top.first()
        && let Value::Record(fields) = inner.as_ref()
    {
        for (field, v) in fields {
            if field == name {
                return v.clone();
            }
        }
    }
    panic!("no field {name}")
}

fn branch_index(datum: &Value) -> u32 {
    let Value::Record(top) = datum else {
        panic!("datum")
    };
    let Value::Union(i, _) = &top[0].1 else {
        panic!("rec")
    };
    *i
}

#[test]
fn a_directory_of_good_and_bad_files_is_read_to_the_end_and_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let traces = dir.path().join("traces");
    std::fs::create_dir(&traces).unwrap();
    let mut expected = BTreeMap::new();

    // Good traces: every sample.
    for name in [
        "k8s_small.sf",
        "shellshock.sf",
        "tcp-client-server-v5.sf",
        "tcp.sf",
    ] {
        let bytes = sample(name);
        std::fs::write(traces.join(name), &bytes).unwrap();
        count_types(&record_types(&bytes), &mut expected);
    }

    // k8s_small.sf: blocks at 6130 (1091 records), 33670 (1281), 59889 (1306), 82417 (1136),
    // 107298 (1092), 131870 (267); the second block's sync marker is at 59873 and its deflate
    // data starts at 33675.
    let k8s = sample("k8s_small.sf");
    let k8s_types = record_types(&k8s);
    let second_block = 1091..1091 + 1281;

    // Truncated in its last block: the first five blocks are delivered.
    std::fs::write(traces.join("k8s-truncated"), &k8s[..135_000]).unwrap();
    count_types(&k8s_types[..k8s_types.len() - 267], &mut expected);

    // A wrong sync marker after the second block: that block is skipped.
    let mut bad_sync = k8s.clone();
    bad_sync[59_873] ^= 0xff;
    std::fs::write(traces.join("k8s-bad-sync"), &bad_sync).unwrap();
    let mut corrupt = k8s.clone();
    corrupt[33_675] |= 0b110; // reserved deflate block type
    std::fs::write(traces.join("k8s-bad-deflate"), &corrupt).unwrap();
    for _ in 0..2 {
        count_types(
            k8s_types[..second_block.start]
                .iter()
                .chain(&k8s_types[second_block.end..]),
            &mut expected,
        );
    }

    // A record of a type the reader does not know, between two good ones.
    let (schema, values) = values_of(&sample("tcp.sf"));
    let mut json = serde_json::to_value(&schema).unwrap();
    json["fields"][0]["type"].as_array_mut().unwrap().push(
        serde_json::json!({"type": "record", "name": "Gizmo", "namespace": "sysflow.entity",
            "fields": [{"name": "x", "type": "int"}]}),
    );
    let gizmo_schema = Schema::parse(&json).unwrap();
    let branches = json["fields"][0]["type"].as_array().unwrap().len() as u32;
    let gizmo = Value::Record(vec![(
        "rec".into(),
        Value::Union(
            branches - 1,
            Box::new(Value::Record(vec![("x".into(), Value::Int(7))])),
        ),
    )]);
    let mut with_gizmo = values.clone();
    with_gizmo.insert(5, gizmo);
    std::fs::write(
        traces.join("tcp-gizmo"),
        write_trace(&gizmo_schema, &with_gizmo),
    )
    .unwrap();
    count_types(&record_types(&sample("tcp.sf")), &mut expected);

    // Files that are not traces.
    std::fs::write(traces.join("empty"), b"").unwrap();
    std::fs::write(traces.join("short"), b"Obj").unwrap();
    std::fs::write(traces.join("notes.txt"), b"# what is in this directory\n").unwrap();
    let weather = Schema::parse_str(
        r#"{"type":"record","name":"Weather","namespace":"test","fields":[{"name":"station","type":"string"}]}"#,
    )
    .unwrap();
    std::fs::write(
        traces.join("weather.avro"),
        write_trace(
            &weather,
            &[Value::Record(vec![(
                "station".into(),
                Value::String("x".into()),
            )])],
        ),
    )
    .unwrap();
    std::fs::create_dir(traces.join("subdir")).unwrap();

    let pipeline = write_pipeline(dir.path(), &["stats"]);
    let run = launch(dir.path(), &[&pipeline, &traces]);
    // Four files gave no record: an input error.
    assert_eq!(run.status.code(), Some(3), "{run:?}");
    assert!(
        run.stderr.ends_with(
            "sf-launch: error: input errors: some input file gave no record (see the reader's warning above)\n"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(parse_stats_table(&run.stdout), expected, "{}", run.stdout);

    let t = traces.display();
    let errors = [
        format!("{t}/empty: empty file (not an Avro object container file); file skipped"),
        format!(
            "{t}/k8s-bad-deflate: block at byte 33670: corrupt deflate data: corrupt deflate stream; its 1281 records are skipped, reading resumes at byte 59889"
        ),
        format!(
            "{t}/k8s-bad-sync: block at byte 33670: wrong sync marker at byte 59873; its 1281 records are skipped, reading resumes at byte 59889"
        ),
        format!(
            "{t}/k8s-truncated: block at byte 131870: truncated: the file ends at byte 135000, inside the block; its 267 records are lost; end of the file"
        ),
        format!(
            r##"{t}/notes.txt: not an Avro object container file (wrong magic at byte 0: found "# wh", expected "Obj\x01"); file skipped"##
        ),
        format!(
            "{t}/short: bad Avro header: the file ends at byte 3, inside the Avro header; file skipped"
        ),
    ];
    for e in &errors {
        assert!(
            run.stderr
                .lines()
                .any(|l| l.starts_with("ERROR: ") && l.ends_with(&format!(": {e}"))),
            "missing error line {e:?} in:\n{}",
            run.stderr
        );
    }
    // apache-avro writes the header's metadata in hash order: the block offset varies.
    let gizmo_prefix = format!("{t}/tcp-gizmo: record 5 (block at byte ");
    let gizmo_suffix = format!(
        "): unknown record type sysflow.entity.Gizmo (branch {} of the rec union); skipped",
        branches - 1
    );
    assert!(
        run.stderr.lines().any(|l| l
            .split_once(": ")
            .is_some_and(|(_, m)| m.contains(&gizmo_prefix) && l.ends_with(&gizmo_suffix))),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!("{t}/weather.avro: not a SysFlow trace: the writer schema is the record test.Weather, not sysflow.SysFlow (writer schema at byte ")),
        "{}",
        run.stderr
    );
    assert_eq!(
        run.stderr.matches("sf-launch: error").count(),
        1,
        "no other error: {}",
        run.stderr
    );

    let summary = "input errors in 8 of 12 files: 4 skipped (empty: empty file; notes.txt: not an Avro file (wrong magic at byte 0); short: truncated Avro header (3 bytes); weather.avro: not a SysFlow trace); 4 damaged (k8s-bad-deflate: 1 block skipped (1281 records); k8s-bad-sync: 1 block skipped (1281 records); k8s-truncated: 1 block skipped (267 records); tcp-gizmo: 1 record of an unknown type skipped); 2830 records skipped in all";
    let warnings: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("WARN: ") && l.contains("input errors"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", run.stdout);
    assert!(
        warnings[0].ends_with(&format!(": {summary}")),
        "{}",
        warnings[0]
    );
    assert_clean(dir.path());
}

#[test]
fn records_referencing_entities_never_seen_are_handled_and_summed_up() {
    let dir = tempfile::tempdir().unwrap();
    let (schema, values) = values_of(&sample("tcp-client-server-v5.sf"));
    let types = record_types(&sample("tcp-client-server-v5.sf"));
    let of_type = |t: &str| -> Vec<Value> {
        values
            .iter()
            .zip(&types)
            .filter(|(_, ty)| *ty == t)
            .map(|(v, _)| v.clone())
            .collect()
    };
    let header = of_type("SFHeader");
    let processes = of_type("Process");
    let files = of_type("File");
    let flow = of_type("FileFlow").remove(0);
    let event = of_type("ProcessEvent").remove(0);
    assert!(branch_index(&flow) != branch_index(&event));

    let unknown_oid = Value::Record(vec![
        ("createTS".into(), Value::Long(1)),
        ("hpid".into(), Value::Long(999_999)),
    ]);
    let unknown_foid = Value::Fixed(20, vec![0xee; 20]);
    let flow_unknown_process = with_field(flow.clone(), "procOID", unknown_oid.clone());
    let event_unknown_process = with_field(event.clone(), "procOID", unknown_oid);
    let flow_unknown_file = with_field(flow.clone(), "fileOID", unknown_foid);

    // The process of the untouched flow, for the printer's expected line.
    let flow_oid = field(&flow, "procOID");
    let exe = processes
        .iter()
        .find(|p| field(p, "oid") == flow_oid)
        .map(|p| match field(p, "exe") {
            Value::String(s) => s.trim().to_owned(),
            other => panic!("exe {other:?}"),
        })
        .expect("the flow's process is in the trace");
    let fd = match field(&flow, "fd") {
        Value::Int(fd) => fd,
        other => panic!("fd {other:?}"),
    };
    let tid = match field(&event, "tid") {
        Value::Long(t) => t,
        other => panic!("tid {other:?}"),
    };

    let mut data = header;
    data.extend(processes);
    data.extend(files);
    data.extend([
        flow_unknown_process,
        event_unknown_process,
        flow_unknown_file,
    ]);
    let trace = dir.path().join("orphans.sf");
    std::fs::write(&trace, write_trace(&schema, &data)).unwrap();

    let run = launch(
        dir.path(),
        &[&"resources/pipelines/pipeline.printer.json", &trace],
    );
    assert!(run.status.success(), "{run:?}");
    assert_eq!(
        run.info_messages(),
        [
            format!("FileFlow , {fd}"),
            format!("ProcEvt , {tid}"),
            format!("FileFlow {exe}, {fd}"),
        ]
    );
    let warning = "printer: 3 references to entities never seen (processes 2, files 1); their records were handled without that context";
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("WARN: ") && l.ends_with(&format!(": {warning}"))),
        "{}",
        run.stdout
    );
    assert_eq!(run.stderr, "", "nothing failed and nothing was restarted");
    assert_clean(dir.path());
}

#[test]
fn a_trace_from_which_no_record_decodes_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let tcp = sample("tcp.sf");
    let header = sf_reader::container::Container::open(&tcp[..])
        .unwrap()
        .header()
        .len as usize;
    // Its one block cut short: every record is lost.
    let trace = dir.path().join("tcp-cut");
    std::fs::write(&trace, &tcp[..header + 40]).unwrap();
    let pipeline = write_pipeline(dir.path(), &["stats"]);
    let run = launch(dir.path(), &[&pipeline, &trace]);
    assert_eq!(run.status.code(), Some(3), "{run:?}");
    assert!(
        run.stderr.contains(&format!(
            "{}: no record could be decoded from this file",
            trace.display()
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout.contains(
            ": input errors in 1 of 1 files: 1 with no record decoded (tcp-cut: 1 block skipped (23 records)); 23 records skipped in all"
        ),
        "{}",
        run.stdout
    );
    assert_eq!(parse_stats_table(&run.stdout).values().sum::<u64>(), 0);
    assert_clean(dir.path());
}
