//! Publication of records into the rings: one [`Target`] per ring (its overflow policy, and
//! resuming after what a previous producer published), and the [`Publisher`] that serializes
//! each record once, journals entities and pushes it into every ring.
//!
//! Used by the reader (`sf-reader`) and by the handler SDK for a handler's output rings.

use std::collections::VecDeque;

use crate::codec;
use crate::journal::JournalWriter;
use crate::model::{Record, RecordKind};
use crate::ring::{Producer, PushError};

/// What to do with a record when a handler's ring is full (the `overflow` key of its block).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Wait for the handler (lossless; the default).
    #[default]
    Block,
    /// Drop flows and events (counted in the ring header); entities are queued in the reader
    /// and delivered as soon as there is room, never dropped.
    Drop,
}

/// One handler's ring as the reader publishes into it.
#[derive(Debug)]
pub struct Target {
    producer: Producer,
    name: String,
    overflow: Overflow,
    /// Records up to this sequence number are already in the ring (a restarted reader).
    skip_until: u64,
    /// Entities waiting for room (overflow `drop` only).
    pending: VecDeque<(u64, Vec<u8>)>,
    dropped: u64,
}

impl Target {
    /// A ring named `name` (the handler's label) with its overflow policy. Records the ring
    /// already holds (`Producer::published_seq`) are not published again.
    pub fn new(producer: Producer, name: String, overflow: Overflow) -> Self {
        let skip_until = producer.published_seq();
        if skip_until > 0 {
            log::debug!("ring of {name}: resuming after record {skip_until}");
        }
        Target {
            producer,
            name,
            overflow,
            skip_until,
            pending: VecDeque::new(),
            dropped: 0,
        }
    }

    /// Delivers queued entities while there is room; true when none is left.
    fn drain_pending(&mut self) -> Result<bool, PushError> {
        while let Some((seq, payload)) = self.pending.front() {
            if !self.producer.try_push(*seq, payload)? {
                return Ok(false);
            }
            self.pending.pop_front();
        }
        Ok(true)
    }

    fn push(&mut self, seq: u64, payload: &[u8], entity: bool) -> Result<(), PushError> {
        if seq <= self.skip_until {
            return Ok(());
        }
        match self.overflow {
            Overflow::Block => self.producer.push(seq, payload),
            Overflow::Drop => {
                let clear = self.drain_pending()?;
                if clear && self.producer.try_push(seq, payload)? {
                    return Ok(());
                }
                if entity {
                    self.pending.push_back((seq, payload.to_vec()));
                } else {
                    self.dropped += 1;
                    self.producer.count_dropped(1);
                }
                Ok(())
            }
        }
    }

    /// Delivers queued entities, waiting for room: the end of the input.
    fn finish(&mut self) -> Result<(), PushError> {
        while let Some((seq, payload)) = self.pending.pop_front() {
            self.producer.push(seq, &payload)?;
        }
        Ok(())
    }
}

/// Publishes records to every handler ring, with sequence numbers, and entity records to
/// the entity journal first.
#[derive(Debug)]
pub struct Publisher {
    rings: Vec<Option<Target>>,
    journal: Option<JournalWriter>,
    seq: u64,
    buf: Vec<u8>,
    undeliverable: u64,
}

/// The rings are all gone (every consumer died or the launcher aborted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoConsumers;

impl Publisher {
    /// A publisher over `rings`, journaling entities into `journal` when given.
    pub fn new(rings: Vec<Target>, journal: Option<JournalWriter>) -> Self {
        Publisher {
            rings: rings.into_iter().map(Some).collect(),
            journal,
            seq: 0,
            buf: Vec::with_capacity(4096),
            undeliverable: 0,
        }
    }

    /// Serializes `record` once, appends it to the journal if it is an entity, and pushes it
    /// into every live ring, blocking while a ring of overflow policy `block` is full. A ring
    /// whose consumer is gone for good is dropped with an error message.
    ///
    /// # Errors
    /// [`NoConsumers`] when no ring is left or the launcher aborted the pipeline.
    pub fn publish(&mut self, record: &Record) -> Result<(), NoConsumers> {
        self.seq += 1;
        if let Err(e) = codec::encode(record, &mut self.buf) {
            crate::limited!(
                error,
                "records that cannot be serialized",
                "record {}: cannot serialize: {e}; skipped",
                self.seq
            );
            return Ok(());
        }
        let entity = record.kind().is_entity();
        if entity && let Some(journal) = &mut self.journal {
            // Before any ring sees it: a handler resuming after this record finds it there.
            if let Err(e) = journal.append(self.seq, record.kind() == RecordKind::Header, &self.buf)
            {
                crate::limited!(
                    error,
                    "entity journal write failures",
                    "record {}: {e}; handlers restarted later may miss this entity",
                    self.seq
                );
            }
        }
        push_all(
            &mut self.rings,
            &mut self.undeliverable,
            self.seq,
            record.kind(),
            &self.buf,
        )
    }

    /// Pushes a frame payload serialized elsewhere, with its own sequence number, into every
    /// live ring, as [`Publisher::publish`] does (nothing is journaled and the numbering is
    /// not advanced): a chained handler forwarding a record it received.
    ///
    /// # Errors
    /// [`NoConsumers`] when no ring is left or the launcher aborted the pipeline.
    pub fn forward(
        &mut self,
        seq: u64,
        kind: RecordKind,
        payload: &[u8],
    ) -> Result<(), NoConsumers> {
        push_all(&mut self.rings, &mut self.undeliverable, seq, kind, payload)
    }

    /// Sequence number of the last record published.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Continues numbering after everything a previous reader published (rings and journal):
    /// for a live stream, which a restarted reader cannot read again.
    pub fn continue_numbering(&mut self) {
        let rings = self
            .rings
            .iter()
            .flatten()
            .map(|t| t.skip_until)
            .max()
            .unwrap_or(0);
        let journal = self.journal.as_ref().map_or(0, JournalWriter::last_seq);
        self.seq = self.seq.max(rings).max(journal);
    }

    /// Deliveries that failed because the record was larger than a ring's largest frame.
    pub fn undeliverable(&self) -> u64 {
        self.undeliverable
    }

    /// Makes everything pushed so far visible to the consumers.
    pub fn flush(&mut self) {
        for ring in self.rings.iter_mut().flatten() {
            ring.producer.flush();
        }
    }

    /// Delivers queued entities, flushes and closes every ring: the handlers drain them and
    /// finish. (The launcher reports the drops, which the ring headers count.)
    pub fn close(self) {
        for mut ring in self.rings.into_iter().flatten() {
            if let Err(e) = ring.finish() {
                log::error!("ring of handler {}: {e}", ring.name);
            }
            if ring.dropped > 0 {
                log::warn!(
                    "handler {}: {} records dropped (overflow policy drop)",
                    ring.name,
                    ring.dropped
                );
            }
            ring.producer.close();
        }
    }
}

/// Pushes one payload into every live ring; a ring whose consumer is gone for good is dropped
/// with an error message.
fn push_all(
    rings: &mut [Option<Target>],
    undeliverable: &mut u64,
    seq: u64,
    kind: RecordKind,
    payload: &[u8],
) -> Result<(), NoConsumers> {
    let entity = kind.is_entity();
    for slot in rings.iter_mut() {
        let Some(ring) = slot else { continue };
        match ring.push(seq, payload, entity) {
            Ok(()) => {}
            Err(PushError::ConsumerGone) => {
                log::error!("handler {} is gone; it gets no more records", ring.name);
                *slot = None;
            }
            Err(PushError::Aborted) => return Err(NoConsumers),
            Err(e @ PushError::TooLarge { .. }) => {
                *undeliverable += 1;
                crate::limited!(
                    error,
                    "records larger than a ring's largest frame",
                    "record {seq} ({kind}): {e}; skipped for handler {}",
                    ring.name
                );
            }
            Err(e) => {
                log::error!(
                    "ring of handler {}: {e}; it gets no more records",
                    ring.name
                );
                *slot = None;
            }
        }
    }
    if rings.iter().all(Option::is_none) {
        Err(NoConsumers)
    } else {
        Ok(())
    }
}
