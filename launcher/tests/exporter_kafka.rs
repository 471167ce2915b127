//! The exporter's Kafka transport against librdkafka's mock cluster (`rdkafka`'s
//! `MockCluster`: the Kafka protocol implemented in this test process, on loopback ports):
//! every record produced by the pipeline is consumed back.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use rdkafka::Message;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
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
