//! `sf-gen` and its library: generated traces read back with apache-avro (`sf_oracle`) and
//! with the reader (`sf_reader::trace`) give exactly the generated records, the counts the
//! generator reported, and flows and events that only refer to entities written before them.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::Command;

use sf_gen::{GenCodec, GenConfig, Generator, write_trace};
use sf_processor::model::{Foid, Oid, Record, RecordKind};

/// The records of a generated trace, as apache-avro reads them; the reader reads the same.
fn read_back(path: &Path) -> Vec<Record> {
    let records = sf_oracle::read(path).unwrap_or_else(|e| panic!("{e}"));
    let ours: Vec<Record> = sf_reader::trace::open(path)
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|r| r.unwrap_or_else(|e| panic!("{e}")))
        .collect();
    assert!(ours == records, "the reader and apache-avro differ");
    records
}

fn counts_of(records: &[Record]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for r in records {
        *counts.entry(r.kind().name().to_owned()).or_insert(0) += 1;
    }
    counts
}

/// Every flow's and event's process and files were written before it, a container before
/// the processes and files in it, a parent before its child.
fn assert_context_resolves(records: &[Record]) {
    let mut processes: HashSet<Oid> = HashSet::new();
    let mut files: HashSet<Foid> = HashSet::new();
    let mut containers: HashSet<String> = HashSet::new();
    let mut pods: HashSet<String> = HashSet::new();
    let proc_known = |oid: &Oid, processes: &HashSet<Oid>, i: usize| {
        assert!(processes.contains(oid), "record {i}: unknown process {oid}");
    };
    for (i, r) in records.iter().enumerate() {
        match r {
            Record::Header(_) => assert_eq!(i, 0, "the header comes first"),
            Record::Pod(p) => {
                pods.insert(p.id.clone());
            }
            Record::Container(c) => {
                if let Some(pod) = &c.pod_id {
                    assert!(pods.contains(pod), "record {i}: unknown pod {pod}");
                }
                containers.insert(c.id.clone());
            }
            Record::Process(p) => {
                if let Some(poid) = &p.poid {
                    proc_known(poid, &processes, i);
                }
                if let Some(c) = &p.container_id {
                    assert!(containers.contains(c), "record {i}: unknown container");
                }
                processes.insert(p.oid);
            }
            Record::File(f) => {
                if let Some(c) = &f.container_id {
                    assert!(containers.contains(c), "record {i}: unknown container");
                }
                files.insert(f.oid);
            }
            Record::ProcessEvent(e) => proc_known(&e.proc_oid, &processes, i),
            Record::ProcessFlow(f) => proc_known(&f.proc_oid, &processes, i),
            Record::FileFlow(f) => {
                proc_known(&f.proc_oid, &processes, i);
                assert!(files.contains(&f.file_oid), "record {i}: unknown file");
            }
            Record::FileEvent(e) => {
                proc_known(&e.proc_oid, &processes, i);
                assert!(files.contains(&e.file_oid), "record {i}: unknown file");
                if let Some(new) = &e.new_file_oid {
                    assert!(files.contains(new), "record {i}: unknown new file");
                }
            }
            Record::NetworkFlow(f) => proc_known(&f.proc_oid, &processes, i),
            Record::NetworkEvent(e) => proc_known(&e.proc_oid, &processes, i),
            Record::K8sEvent(_) => {}
        }
    }
}

fn check(config: &GenConfig) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("trace.sf");
    let counts = write_trace(config, std::fs::File::create(&path).expect("create")).expect("write");
    assert_eq!(counts.total(), config.records);

    let reader = sf_reader::trace::open(&path).expect("open");
    assert_eq!(reader.file().codec(), config.codec.name());
    let records = read_back(&path);
    let expected: Vec<Record> = Generator::new(config).collect();
    assert_eq!(records.len(), expected.len());
    assert!(
        records == expected,
        "decoded records differ from the generated ones"
    );
    assert_eq!(counts_of(&records), counts.by_name());
    assert_context_resolves(&records);
}

#[test]
fn deflate_trace_reads_back_with_its_counts() {
    check(&GenConfig {
        records: 30_000,
        seed: 7,
        containers: 3,
        pods: false,
        codec: GenCodec::Deflate,
    });
}

#[test]
fn null_codec_trace_with_pods_reads_back_with_its_counts() {
    check(&GenConfig {
        records: 30_000,
        seed: 11,
        containers: 5,
        pods: true,
        codec: GenCodec::Null,
    });
}

#[test]
fn host_only_and_tiny_traces_read_back() {
    for records in [1, 2, 5, 40] {
        check(&GenConfig {
            records,
            seed: records,
            containers: 0,
            pods: false,
            codec: GenCodec::Deflate,
        });
    }
}

#[test]
fn proportions_are_close_to_the_shared_traces() {
    let mut counts = BTreeMap::new();
    let config = GenConfig {
        records: 200_000,
        ..GenConfig::default()
    };
    for r in Generator::new(&config) {
        *counts.entry(r.kind()).or_insert(0u64) += 1;
    }
    let share = |k: RecordKind| counts.get(&k).copied().unwrap_or(0) as f64 / 200_000.0 * 100.0;
    let expect = [
        (RecordKind::File, 10.0),
        (RecordKind::Process, 1.2),
        (RecordKind::FileFlow, 66.0),
        (RecordKind::NetworkFlow, 15.0),
        (RecordKind::ProcessEvent, 3.6),
        (RecordKind::FileEvent, 2.0),
        (RecordKind::NetworkEvent, 1.0),
        (RecordKind::ProcessFlow, 1.0),
    ];
    for (kind, percent) in expect {
        let got = share(kind);
        assert!(
            (got - percent).abs() <= percent * 0.2 + 0.2,
            "{kind}: {got:.2} % (expected about {percent} %)"
        );
    }
}

#[test]
fn sf_gen_writes_the_trace_and_its_counts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trace = dir.path().join("gen.sf");
    let counts = dir.path().join("gen.counts.json");
    let out = Command::new(env!("CARGO_BIN_EXE_sf-gen"))
        .args([
            "--records",
            "5000",
            "--codec",
            "null",
            "--seed",
            "3",
            "--containers",
            "2",
        ])
        .arg("--counts")
        .arg(&counts)
        .arg(&trace)
        .output()
        .expect("run sf-gen");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("FileFlow"), "{stderr}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&counts).expect("counts")).expect("json");
    assert_eq!(json["records"], 5000);
    let by_type: BTreeMap<String, u64> =
        serde_json::from_value(json["by_type"].clone()).expect("by_type");
    let records = read_back(&trace);
    assert_eq!(counts_of(&records), by_type);
    assert_context_resolves(&records);

    // Same seed, same bytes.
    let again = dir.path().join("again.sf");
    let status = Command::new(env!("CARGO_BIN_EXE_sf-gen"))
        .args([
            "--records",
            "5000",
            "--codec",
            "null",
            "--seed",
            "3",
            "--containers",
            "2",
        ])
        .arg(&again)
        .output()
        .expect("run sf-gen")
        .status;
    assert!(status.success());
    assert_eq!(
        std::fs::read(&trace).expect("read"),
        std::fs::read(&again).expect("read")
    );
}

#[test]
fn sf_gen_rejects_an_unknown_codec() {
    let out = Command::new(env!("CARGO_BIN_EXE_sf-gen"))
        .args(["--records", "10", "--codec", "snappy", "/nonexistent/x.sf"])
        .output()
        .expect("run sf-gen");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown codec"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
