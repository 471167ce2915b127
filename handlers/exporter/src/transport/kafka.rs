//! `kafka`: one message per record to `kafka.topic`, the value the record in the block's
//! `format` (JSON or ECS), the key chosen by `kafka.key`, through librdkafka (built from its
//! bundled sources, linked statically) with the properties of `kafka.config` (on top of
//! `client.id=sf-exporter`, `acks=all`; `kafka.compression` sets `compression.type`).
//!
//! A record counts as delivered when its delivery report says the cluster acknowledged it:
//! [`Transport::commit`] waits (up to 2 s a call) for the report of every message produced,
//! and fails while any is missing (the SDK then acknowledges nothing and tries again later;
//! librdkafka keeps sending meanwhile); messages whose delivery failed (their
//! `delivery.timeout.ms` ran out, say, while the cluster was down) are produced again, so
//! nothing is lost; a message may be delivered twice (a kill after it was produced and
//! before the SDK acknowledged it).

use std::sync::Mutex;
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};

use super::{Batch, Cursor, Transport, TransportError};
use crate::config::KafkaSettings;

/// How long one [`Transport::commit`] waits for the delivery reports of what was produced.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// A message whose delivery failed: key, value, and why.
type Failed = (Option<Vec<u8>>, Vec<u8>, String);

/// Collects failed deliveries to produce them again.
#[derive(Debug, Default)]
pub struct Reports {
    failed: Mutex<Vec<Failed>>,
    delivered: std::sync::atomic::AtomicU64,
}

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Err((e, msg)) => {
                let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
                failed.push((
                    msg.key().map(<[u8]>::to_vec),
                    msg.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                    e.to_string(),
                ));
            }
        }
    }
}

/// The Kafka transport.
pub struct KafkaTransport {
    producer: BaseProducer<Reports>,
    topic: String,
    servers: String,
}

impl std::fmt::Debug for KafkaTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaTransport")
            .field("topic", &self.topic)
            .field("servers", &self.servers)
            .finish()
    }
}

impl KafkaTransport {
    /// A producer for `settings`.
    ///
    /// # Errors
    /// An invalid `kafka.config` property (the message names it: `kafka.config.foo: No such
    /// configuration property: "foo"`).
    pub fn new(settings: &KafkaSettings) -> Result<Self, TransportError> {
        let mut config = ClientConfig::new();
        for (k, v) in &settings.config {
            config.set(k, v);
        }
        let producer = config
            .create_with_context(Reports::default())
            .map_err(|e| match e {
                KafkaError::ClientConfig(_, desc, key, _) => {
                    TransportError(format!("\"kafka.config.{key}\": {desc}"))
                }
                other => TransportError(format!("kafka.config: {other}")),
            })?;
        Ok(KafkaTransport {
            producer,
            topic: settings.topic.clone(),
            servers: settings
                .config
                .get("bootstrap.servers")
                .cloned()
                .unwrap_or_default(),
        })
    }

    /// Messages acknowledged by the cluster so far.
    pub fn delivered(&self) -> u64 {
        self.producer
            .context()
            .delivered
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Produces one message, waiting while librdkafka's queue is full, for 2 s at most (the
    /// cluster is not taking messages: the caller tries again later).
    fn produce(&self, key: Option<&[u8]>, value: &[u8]) -> Result<(), TransportError> {
        let until = std::time::Instant::now() + FLUSH_TIMEOUT;
        loop {
            let mut record = BaseRecord::to(&self.topic).payload(value);
            if let Some(k) = key {
                record = record.key(k);
            }
            match self.producer.send(record) {
                Ok(()) => {
                    self.producer.poll(Duration::ZERO);
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    if std::time::Instant::now() >= until {
                        return Err(TransportError(format!(
                            "{}: librdkafka's queue is full ({} messages wait for the cluster)",
                            self.describe(),
                            self.producer.in_flight_count()
                        )));
                    }
                    self.producer.poll(Duration::from_millis(100));
                }
                Err((e, _)) => {
                    return Err(TransportError(format!("{}: {e}", self.describe())));
                }
            }
        }
    }
}

impl Transport for KafkaTransport {
    fn send(&mut self, batch: &Batch, cursor: &mut Cursor) -> Result<(), TransportError> {
        while cursor.records < batch.len() {
            let i = cursor.records;
            let key = batch.keys.get(i).map(Vec::as_slice);
            self.produce(key, batch.record(i))?;
            cursor.records += 1;
            cursor.bytes = batch.ends[i] + 1;
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<(), TransportError> {
        if let Err(e) = self.producer.flush(FLUSH_TIMEOUT) {
            return Err(TransportError(format!(
                "{}: {} messages wait for the cluster's acknowledgement ({e})",
                self.describe(),
                self.producer.in_flight_count()
            )));
        }
        let failed = std::mem::take(
            &mut *self
                .producer
                .context()
                .failed
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        let Some((_, _, why)) = failed.last() else {
            return Ok(());
        };
        let why = why.clone();
        let n = failed.len();
        // Produce them again now; the caller retries the commit, which waits for them. Those
        // that cannot be produced yet stay in the list for the next commit.
        for (i, (key, value, _)) in failed.iter().enumerate() {
            if let Err(e) = self.produce(key.as_deref(), value) {
                self.producer
                    .context()
                    .failed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend(failed[i..].iter().cloned());
                return Err(e);
            }
        }
        Err(TransportError(format!(
            "{}: {n} messages not acknowledged ({why}); produced again",
            self.describe()
        )))
    }

    fn remote(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        format!("kafka {} topic {}", self.servers, self.topic)
    }
}
