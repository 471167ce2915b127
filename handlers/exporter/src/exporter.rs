//! The exporter handler: encodes every flow and event into the current [`Batch`] and sends
//! the batch to its transport when it holds `buffer + 1` records (the reference's count) and
//! at every commit of the SDK ([`Handler::commit`]: before the SDK acknowledges records to
//! the stage upstream; every 1,000 records, every second, when the input pauses, at the
//! end). A record counts as delivered, and may be acknowledged, once the transport has it:
//! `write(2)` returned (file, terminal; with `file.fsync`, `fsync(2)` too), the TCP or TLS
//! socket took it, the UDP datagram was sent, Kafka acknowledged it (its delivery report).
//!
//! **A transport that is down** is retried by the SDK, which is in charge of the backoff:
//! [`Handler::commit`] tries once and fails, the SDK acknowledges nothing, tries again after
//! 50 ms, doubling up to 5 s, and meanwhile keeps handling the records its ring holds (they
//! wait in the batch, unsent: while down, records are not sent one by one, only at the
//! commits). Once the ring is full the stage upstream waits (or drops flows and events, with
//! `"overflow": "drop"`): nothing is lost. A remote destination (syslog, Kafka) fails with
//! [`DestinationDown`], which the SDK waits for at the end of the input too, until the
//! transport takes everything or the handler is asked to stop; a file that cannot be written
//! (a full disk) is tried 5 times more at the end, then the run fails, as any handler's
//! output.
//! The state goes to `sf-launch ctl status` through [`handler_sdk::status::report`] at every
//! try, which also tells the watchdog the handler is alive.

use std::time::Instant;

use handler_sdk::DestinationDown;
use handler_sdk::prelude::*;

use crate::config::{Export, Format, KafkaKey, Settings};
use crate::json::Extensions;
use crate::transport::file::FileTransport;
use crate::transport::kafka::KafkaTransport;
use crate::transport::syslog::SyslogTransport;
use crate::transport::{Batch, Cursor, Null, Terminal, Transport, TransportError};
use crate::view::View;
use crate::{ecs, json};

/// Which keys the handler's block has: the exporter's, or those of the `json` handler it
/// replaces ([`Settings::from_json_handler`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Keys {
    #[default]
    Exporter,
    JsonHandler,
}

/// A transport outage: since when, why, and how many tries failed.
#[derive(Debug)]
struct Down {
    since: Instant,
    why: String,
    tries: u64,
}

/// The exporter handler.
#[derive(Default)]
pub struct Exporter {
    keys: Keys,
    settings: Option<Settings>,
    transport: Option<Box<dyn Transport>>,
    /// Records encoded and not yet taken by the transport.
    batch: Batch,
    /// How far the transport took `batch` (a send that failed part way).
    cursor: Cursor,
    /// The transport took records that [`Transport::commit`] did not confirm yet.
    uncommitted: bool,
    down: Option<Down>,
    exported: u64,
    /// The JSON sections that depend on the process only, encoded once per process.
    sections: json::SectionCache,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter")
            .field("settings", &self.settings)
            .field("batch", &self.batch.len())
            .field("exported", &self.exported)
            .finish()
    }
}

/// The transport for `export`.
///
/// # Errors
/// When it cannot be set up (a file that cannot be opened, a bad TLS or Kafka setting).
pub fn open_transport(export: &Export) -> Result<Box<dyn Transport>, TransportError> {
    Ok(match export {
        Export::Terminal => Box::new(Terminal),
        Export::Null => Box::new(Null),
        Export::File(f) => Box::new(FileTransport::open(f.clone())?),
        Export::Syslog(s) => Box::new(SyslogTransport::new(s.clone())?),
        Export::Kafka(k) => Box::new(KafkaTransport::new(k)?),
    })
}

impl Exporter {
    /// An exporter with these settings and transport (for tests; the pipeline calls
    /// [`Handler::init`]).
    pub fn with(settings: Settings, transport: Box<dyn Transport>) -> Self {
        Exporter {
            settings: Some(settings),
            transport: Some(transport),
            ..Exporter::default()
        }
    }

    /// The exporter run as the `json` handler (`sf-handler-json`): its block has that
    /// handler's keys ([`Settings::from_json_handler`]).
    pub fn json_handler() -> Self {
        Exporter {
            keys: Keys::JsonHandler,
            ..Exporter::default()
        }
    }

    /// Records the transport took so far.
    pub fn exported(&self) -> u64 {
        self.exported
    }

    fn export(&mut self, ctx: &Context<'_>, view: &View<'_>) -> HandlerResult {
        if handler_sdk::reopen_requested() {
            self.reopen();
        }
        let Some(settings) = &self.settings else {
            return Err("exporter: not initialised".into());
        };
        let buf = &mut self.batch.buf;
        match settings.format {
            Format::Json => json::encode(
                buf,
                view,
                Extensions {
                    on: settings.extensions,
                },
                &mut self.sections,
            ),
            Format::Ecs => ecs::encode(buf, view, &settings.version, &mut self.sections),
        }
        if settings.seq && buf.last() == Some(&b'}') {
            // The record's sequence number, last (an extension of both layouts).
            buf.pop();
            buf.extend_from_slice(b",\"seq\":");
            buf.extend_from_slice(itoa::Buffer::new().format(ctx.seq()).as_bytes());
            buf.push(b'}');
        }
        if let Export::Kafka(k) = &settings.export
            && k.key != KafkaKey::None
        {
            let key = match k.key {
                KafkaKey::Node => ctx.header().map_or("", |h| h.exporter.as_str()).into(),
                KafkaKey::Container => ctx.container().map_or("", |c| c.id.as_str()).into(),
                _ => json::oid_hash(view.pid(), view.createts()),
            };
            self.batch.keys.push(key.into_bytes());
        }
        self.batch.finish_record();
        // While the transport is down, only the commits try it (with the SDK's backoff).
        if self.batch.len() > settings.buffer && self.down.is_none() {
            // A failure is noted; the records wait in the batch for the next commit.
            let _ = self.send();
        }
        Ok(())
    }

    /// Sends what the batch holds (from the cursor on); once the transport took it all, the
    /// batch is emptied. A failure marks the transport down and keeps what was not taken.
    fn send(&mut self) -> Result<(), TransportError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let Some(transport) = self.transport.as_mut() else {
            return Err(TransportError("exporter: not initialised".into()));
        };
        if self.down.is_some()
            && let Err(e) = transport.reconnect()
        {
            self.note_down(&e);
            return Err(e);
        }
        match transport.send(&self.batch, &mut self.cursor) {
            Ok(()) => {
                self.exported += self.batch.len() as u64;
                self.batch.clear();
                self.cursor = Cursor::default();
                self.uncommitted = true;
                Ok(())
            }
            Err(e) => {
                self.note_down(&e);
                Err(e)
            }
        }
    }

    /// Records a failed try: logged at the first, reported to `ctl status` at every one.
    fn note_down(&mut self, e: &TransportError) {
        let waiting = self.batch.len() - self.cursor.records;
        let why = e.to_string();
        let down = self.down.get_or_insert_with(|| {
            log::warn!(
                "exporter: {why}; retried with backoff, {waiting} records wait (the pipeline waits too)"
            );
            Down {
                since: Instant::now(),
                why: why.clone(),
                tries: 0,
            }
        });
        down.tries += 1;
        down.why = why;
        handler_sdk::status::report(&format!(
            "down: {}; try {}, retried with backoff; {waiting} records wait",
            down.why, down.tries
        ));
    }

    /// The transport works again: say so once.
    fn note_up(&mut self) {
        if let Some(down) = self.down.take() {
            let text = format!(
                "{}: up again after {:.1} s ({} tries)",
                self.transport
                    .as_ref()
                    .map_or_else(String::new, |t| t.describe()),
                down.since.elapsed().as_secs_f64(),
                down.tries
            );
            log::info!("exporter: {text}");
            handler_sdk::status::report(&text);
        }
    }

    /// The commit error for `e`: [`DestinationDown`] for a remote destination.
    fn failed(&self, e: TransportError) -> Box<dyn std::error::Error + Send + Sync> {
        if self.transport.as_ref().is_some_and(|t| t.remote()) {
            DestinationDown(e.to_string()).into()
        } else {
            e.into()
        }
    }

    fn reopen(&mut self) {
        // What was encoded goes to the file being rotated away, if it can.
        let _ = self.send();
        if let Some(t) = self.transport.as_mut() {
            match t.reopen() {
                Ok(()) => log::info!("exporter: {} reopened", t.describe()),
                Err(e) => log::error!("exporter: reopen: {e}"),
            }
        }
    }
}

impl Handler for Exporter {
    fn config_keys() -> Option<ConfigKeys> {
        Some(crate::config::config_keys())
    }

    fn init(&mut self, config: &HandlerConfig) -> HandlerResult {
        let settings = match self.keys {
            Keys::Exporter => Settings::from_config(config),
            Keys::JsonHandler => Settings::from_json_handler(config),
        }
        .map_err(|e| format!("{}: bad configuration: {e}", config.name))?;
        let mut transport =
            open_transport(&settings.export).map_err(|e| format!("{}: {e}", config.name))?;
        log::debug!("{}: exporting to {}", config.name, transport.describe());
        if matches!(settings.export, Export::Syslog(_))
            && let Err(e) = transport.reconnect()
        {
            log::warn!(
                "{}: {e}; records will wait, and the connection is retried with backoff",
                config.name
            );
            handler_sdk::status::report(&format!("down: {e}; retried at the first commit"));
            self.down = Some(Down {
                since: Instant::now(),
                why: e.to_string(),
                tries: 1,
            });
        }
        self.settings = Some(settings);
        self.transport = Some(transport);
        Ok(())
    }

    fn handle_process_event(&mut self, ctx: &Context<'_>, e: &ProcessEvent) -> HandlerResult {
        self.export(ctx, &View::process_event(ctx, e))
    }
    fn handle_process_flow(&mut self, ctx: &Context<'_>, f: &ProcessFlow) -> HandlerResult {
        self.export(ctx, &View::process_flow(ctx, f))
    }
    fn handle_file_flow(&mut self, ctx: &Context<'_>, f: &FileFlow) -> HandlerResult {
        self.export(ctx, &View::file_flow(ctx, f))
    }
    fn handle_file_event(&mut self, ctx: &Context<'_>, e: &FileEvent) -> HandlerResult {
        self.export(ctx, &View::file_event(ctx, e))
    }
    fn handle_network_flow(&mut self, ctx: &Context<'_>, f: &NetworkFlow) -> HandlerResult {
        self.export(ctx, &View::network_flow(ctx, f))
    }
    fn handle_network_event(&mut self, ctx: &Context<'_>, e: &NetworkEvent) -> HandlerResult {
        self.export(ctx, &View::network_event(ctx, e))
    }
    fn handle_k8s_event(&mut self, ctx: &Context<'_>, e: &K8sEvent) -> HandlerResult {
        self.export(ctx, &View::k8s_event(ctx, e))
    }

    fn idle(&mut self) {
        if handler_sdk::reopen_requested() {
            self.reopen();
        }
    }

    /// Delivers every record handled so far: the batch sent, then the transport's own
    /// confirmation ([`Transport::commit`]: Kafka's delivery reports, `fsync`). A failure
    /// acknowledges nothing, and the SDK tries again; a remote destination's is
    /// [`DestinationDown`], waited for at the end of the input too.
    fn commit(&mut self) -> HandlerResult {
        if let Err(e) = self.send() {
            return Err(self.failed(e));
        }
        if self.uncommitted {
            let Some(transport) = self.transport.as_mut() else {
                return Err("exporter: not initialised".into());
            };
            if let Err(e) = transport.commit() {
                self.note_down(&e);
                return Err(self.failed(e));
            }
            self.uncommitted = false;
        }
        self.note_up();
        Ok(())
    }

    fn cleanup(&mut self) {
        // The SDK committed before: what is left could not be delivered (and was counted).
        if !self.batch.is_empty() {
            log::error!(
                "exporter: {} records not delivered",
                self.batch.len() - self.cursor.records
            );
        }
        let (hits, misses) = self.sections.counts();
        log::debug!(
            "exporter: {} records exported; process sections encoded {misses} times, copied {hits} times",
            self.exported
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A transport that refuses while `down` is set, and keeps what it took.
    #[derive(Default, Clone)]
    struct Flaky {
        down: Arc<Mutex<bool>>,
        took: Arc<Mutex<Vec<String>>>,
    }

    impl Transport for Flaky {
        fn send(&mut self, batch: &Batch, cursor: &mut Cursor) -> Result<(), TransportError> {
            if *self.down.lock().unwrap() {
                return Err(TransportError("flaky: Connection refused".into()));
            }
            while cursor.records < batch.len() {
                let r = batch.record(cursor.records);
                self.took
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(r).into_owned());
                cursor.records += 1;
            }
            Ok(())
        }
        fn remote(&self) -> bool {
            true
        }
        fn describe(&self) -> String {
            "flaky".into()
        }
    }

    fn k8s(h: &mut Exporter, n: i64) {
        let tables = EntityTables::new();
        let ke = K8sEvent {
            kind: K8sComponent::Pods,
            action: K8sAction::Deleted,
            ts: n,
            message: "m".into(),
        };
        let rec = Record::K8sEvent(ke.clone());
        h.handle_k8s_event(&tables.context_for(n as u64, &rec), &ke)
            .unwrap();
    }

    use handler_sdk::EntityTables;

    #[test]
    fn a_transport_down_fails_the_commit_and_keeps_every_record() {
        let flaky = Flaky::default();
        let settings = Settings::from_config(&HandlerConfig::new(
            "exporter",
            serde_json::json!({"buffer": 1, "seq": true})
                .as_object()
                .cloned()
                .unwrap(),
        ))
        .unwrap();
        let mut h = Exporter::with(settings, Box::new(flaky.clone()));
        k8s(&mut h, 1);
        k8s(&mut h, 2);
        assert_eq!(flaky.took.lock().unwrap().len(), 2, "buffer 1: sent at 2");
        *flaky.down.lock().unwrap() = true;
        for n in 3..=7 {
            k8s(&mut h, n);
        }
        let e = h.commit().unwrap_err();
        assert!(e.is::<DestinationDown>(), "{e}");
        assert_eq!(e.to_string(), "flaky: Connection refused");
        assert_eq!(h.commit().unwrap_err().to_string(), e.to_string());
        *flaky.down.lock().unwrap() = false;
        h.commit().unwrap();
        let took = flaky.took.lock().unwrap();
        let seqs: Vec<String> = took
            .iter()
            .map(|r| r.rsplit_once(",\"seq\":").unwrap().1.to_owned())
            .collect();
        assert_eq!(seqs, ["1}", "2}", "3}", "4}", "5}", "6}", "7}"]);
        assert_eq!(h.exported(), 7);
    }
}
