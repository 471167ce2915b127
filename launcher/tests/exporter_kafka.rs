//! The exporter's Kafka transport against librdkafka's mock cluster (`rdkafka`'s
//! `MockCluster`: the Kafka protocol implemented in this test process, on loopback ports):
//! every record produced by the pipeline is consumed back, also when the exporter is killed
//! while it produces.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use common::*;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::{Value, json};

fn file_export(dir: &std::path::Path, trace: &std::path::Path, format: &str) -> Vec<String> {
    let out = dir.join(format!("file.{format}"));
    let p = write_blocks(
        dir,
        &[
            json!({"processor": "exporter", "in": "sysflow sysflowchan", "export": "file", "format": format, "file.path": out}),
        ],
    );
    let run = launch(dir, &[&p, &trace]);
    assert!(run.status.success(), "{run:?}");
    std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_record_is_produced_and_consumed_back() {
    let dir = tempfile::tempdir().unwrap();
    let trace = shared().join("traces/k8s_small.sf");
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("sysflow", 3, 1).expect("topic");
    let servers = cluster.bootstrap_servers();
    for format in ["json", "ecs"] {
        let want = file_export(dir.path(), &trace, format);
        let topic = format!("sysflow-{format}");
        cluster.create_topic(&topic, 3, 1).expect("topic");
        let p = write_blocks(
            dir.path(),
            &[
                json!({"processor": "exporter", "in": "sysflow sysflowchan", "export": "kafka",
                "format": format, "kafka.topic": topic, "kafka.key": "node", "kafka.compression": "lz4",
                "kafka.config": {"bootstrap.servers": servers, "linger.ms": "5"}, "buffer": "50"}),
            ],
        );
        let run = launch(dir.path(), &[&p, &trace]);
        assert!(run.status.success(), "{format}: {run:?}");

        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &servers)
            .set("group.id", format!("test-{format}"))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        consumer.subscribe(&[&topic]).unwrap();
        let mut got = Vec::new();
        let mut keys = BTreeMap::<String, usize>::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while got.len() < want.len() {
            assert!(
                Instant::now() < deadline,
                "{format}: consumed {} of {} records within 60 s",
                got.len(),
                want.len()
            );
            if let Some(m) = consumer.poll(Duration::from_millis(200)) {
                let m = m.expect("message");
                let payload = String::from_utf8(m.payload().unwrap().to_vec()).unwrap();
                let _: Value = payload.parse().expect("a JSON record");
                *keys
                    .entry(String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned())
                    .or_default() += 1;
                got.push(payload);
            }
        }
        // Nothing more than the records.
        assert!(consumer.poll(Duration::from_millis(500)).is_none());
        assert_eq!(
            keys,
            BTreeMap::from([("minikube".to_owned(), want.len())]),
            "key: the node"
        );
        let mut want = want;
        got.sort();
        want.sort();
        assert!(
            got == want,
            "{format}: the messages are the records the file transport writes"
        );
    }
    assert_clean(dir.path());
}

#[test]
fn an_invalid_kafka_property_is_a_start_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_blocks(
        dir.path(),
        &[
            json!({"processor": "exporter", "in": "sysflow sysflowchan", "export": "kafka",
            "kafka.topic": "t", "kafka.config": {"bootstrap.servers": "127.0.0.1:1", "no.such.thing": "1"}}),
        ],
    );
    let run = launch(dir.path(), &[&p, &shared().join("traces/tcp.sf")]);
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    assert!(
        run.stderr.contains(
            "\"kafka.config.no.such.thing\": No such configuration property: \"no.such.thing\""
        ),
        "{}",
        run.stderr
    );
    assert_clean(dir.path());
}

/// The sequence number an exporter's `"seq": true` puts at the end of a record.
fn seq_of(record: &str) -> u64 {
    let (_, tail) = record.rsplit_once(",\"seq\":").expect("a seq key");
    tail.trim_end_matches('}').parse().expect("seq")
}

/// The exporter killed 5 times while it produces a generated trace of 40,000 records to the
/// mock cluster (each life killed once it handled 2,000 more records): every flow and event
/// is consumed back, each copy of a record the same message; the duplicates (messages
/// produced, or acknowledged by the cluster, but not yet committed to the SDK when the kill
/// came) are counted, at most one commit batch (1,000 records) per kill.
#[test]
fn an_exporter_killed_while_it_produces_loses_no_record() {
    const KILLS: usize = 5;
    // The mock cluster keeps the last 5 MB of each partition: enough of them hold the run
    // (about 60 MB of messages, each to a random partition: no sticky batches), and the low
    // watermarks say whether any was trimmed.
    const PARTITIONS: i32 = 64;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let trace = generate(d, 40_000, 11);
    // What the file transport writes for the trace: every flow and event, by sequence number.
    let file = d.join("file.jsonl");
    let p = write_blocks(
        d,
        &[
            json!({"processor": "exporter", "in": "sysflow sysflowchan", "export": "file",
                 "file.path": file, "seq": true}),
        ],
    );
    let run = launch(d, &[&p, &trace]);
    assert!(run.status.success(), "{run:?}");
    let want: HashMap<u64, String> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| (seq_of(l), l.to_owned()))
        .collect();
    assert!(want.len() > 30_000, "{} flows and events", want.len());

    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster
        .create_topic("killed", PARTITIONS, 1)
        .expect("topic");
    let servers = cluster.bootstrap_servers();
    let p = write_blocks(
        d,
        &[
            json!({"processor": "exporter", "in": "sysflow sysflowchan", "export": "kafka",
                 "kafka.topic": "killed", "kafka.config": {"bootstrap.servers": servers, "linger.ms": "5",
                                  "sticky.partitioning.linger.ms": "0"},
                 "seq": true, "buffer": 50,
                 "restart_limit": 1000, "restart_window_s": 1, "backoff_initial_ms": 1,
                 "backoff_max_ms": 20, "poison_after": 1000}),
        ],
    );
    let child = spawn_launch(d, &[&p, &trace]);
    let launcher = child.id();
    let mut last = 0;
    let mut asked = Instant::now();
    let (seed, killed) = sigkill_repeatedly_when(
        launcher,
        "sf-handler-exporter",
        "killed",
        KILLS,
        Duration::from_secs(300),
        || {
            if asked.elapsed() < Duration::from_millis(10) {
                return false;
            }
            asked = Instant::now();
            let handled = try_status(launcher)
                .and_then(|s| s.get("exporter").and_then(|e| e["handled"].as_u64()))
                .unwrap_or(0);
            let ready = handled >= last + 2_000;
            if ready {
                last = handled;
            }
            ready
        },
    );
    let run = wait_with_watchdog(child, "sf-launch");
    assert!(run.status.success(), "seed {seed}: {}", run.stderr);
    for pid in &killed {
        assert!(
            run.stderr
                .contains(&format!("(pid {pid}) killed by signal 9 (SIGKILL)")),
            "seed {seed}: kill of {pid} not reported"
        );
    }

    // Everything the cluster has: until a second passes without a message.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &servers)
        .set("group.id", "test-killed")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    // Every partition from its start (not a group subscription, whose assignment by the
    // mock cluster's coordinator is not what this test is about).
    let mut partitions = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        partitions
            .add_partition_offset("killed", p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&partitions).unwrap();
    // Nothing trimmed by the mock's retention: a record missing below is a record lost.
    let mut largest = 0;
    for p in 0..PARTITIONS {
        let (low, high) = consumer
            .fetch_watermarks("killed", p, Duration::from_secs(10))
            .unwrap();
        assert_eq!(
            low, 0,
            "the mock cluster trimmed partition {p}: more partitions"
        );
        largest = largest.max(high);
    }
    println!("kafka: the largest of {PARTITIONS} partitions holds {largest} messages");

    let mut copies: HashMap<u64, u32> = HashMap::new();
    let mut quiet_since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(120);
    while quiet_since.elapsed() < Duration::from_secs(1) || copies.len() < want.len() {
        assert!(
            Instant::now() < deadline,
            "seed {seed}: {} of {} records consumed within 120 s",
            copies.len(),
            want.len()
        );
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.expect("message");
            let payload = std::str::from_utf8(m.payload().unwrap()).unwrap();
            let seq = seq_of(payload);
            assert_eq!(
                want.get(&seq).map(String::as_str),
                Some(payload),
                "seed {seed}: record {seq} as the file transport writes it"
            );
            *copies.entry(seq).or_default() += 1;
            quiet_since = Instant::now();
        }
    }
    let missing: BTreeSet<u64> = want
        .keys()
        .filter(|s| !copies.contains_key(s))
        .copied()
        .collect();
    assert_eq!(missing, BTreeSet::new(), "seed {seed}: records missing");
    let duplicates: u64 = copies.values().map(|n| u64::from(*n) - 1).sum();
    println!(
        "kafka: {} kills, {} records, 0 missing, {duplicates} duplicates",
        killed.len(),
        copies.len()
    );
    assert!(
        duplicates <= KILLS as u64 * handler_sdk::DEFAULT_COMMIT_RECORDS,
        "seed {seed}: {duplicates} duplicates for {KILLS} kills"
    );
    assert_clean(d);
}
