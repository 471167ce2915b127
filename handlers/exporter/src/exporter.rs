//! The exporter handler: encodes every flow and event into the current [`Batch`], exports the
//! batch when it holds `buffer + 1` records (the reference's count), when no record waits and
//! at the end, and retries a transport that is down, with backoff, until it takes the batch:
//! meanwhile the handler does not return, its ring fills and the pipeline upstream waits
//! (or drops, with `"overflow": "drop"`), so nothing is lost. Its state goes to
//! `sf-launch ctl status` through [`handler_sdk::status::report`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use handler_sdk::prelude::*;

use crate::config::{Export, Format, KafkaKey, Settings};
use crate::transport::file::FileTransport;
use crate::transport::kafka::KafkaTransport;
use crate::transport::syslog::SyslogTransport;
use crate::transport::{Batch, Cursor, Null, Terminal, Transport};
use crate::view::View;
use crate::{ecs, json};

/// First wait before a failed export is tried again; doubled after each failure.
const BACKOFF_INITIAL: Duration = Duration::from_millis(100);
/// Longest wait between two tries.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How often what was sent is committed (Kafka: delivery reports awaited) while records flow.
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);

/// The exporter handler.
pub struct Exporter {
    settings: Option<Settings>,
    transport: Option<Box<dyn Transport>>,
    batch: Batch,
    cursor: Cursor,
    last_commit: Instant,
    uncommitted: bool,
    /// When the transport went down, and why (`None`: up).
    down: Option<(Instant, String)>,
    /// Set by SIGTERM: stop retrying a transport that is down.
    shutdown: Arc<AtomicBool>,
    exported: u64,
    lost: u64,
}

impl Default for Exporter {
    fn default() -> Self {
        Exporter {
            settings: None,
            transport: None,
            batch: Batch::default(),
            cursor: Cursor::default(),
            last_commit: Instant::now(),
            uncommitted: false,
            down: None,
            shutdown: Arc::new(AtomicBool::new(false)),
            exported: 0,
            lost: 0,
        }
    }
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
pub fn open_transport(
    export: &Export,
) -> Result<Box<dyn Transport>, crate::transport::TransportError> {
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

    /// Records exported so far (taken by the transport).
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
        match settings.format {
            Format::Json => json::encode(&mut self.batch.buf, view),
            Format::Ecs => ecs::encode(&mut self.batch.buf, view, &settings.version),
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
        if self.batch.len() > settings.buffer {
            self.flush()?;
        }
        Ok(())
    }

    /// Exports the batch, retrying while the transport fails (unless it does not retry or the
    /// pipeline is stopping).
    fn flush(&mut self) -> HandlerResult {
        if self.batch.is_empty() {
            return Ok(());
        }
        let Some(transport) = self.transport.as_mut() else {
            return Err("exporter: not initialised".into());
        };
        let mut wait = BACKOFF_INITIAL;
        let mut tries = 0u64;
        loop {
            match transport.send(&self.batch, &mut self.cursor) {
                Ok(()) => break,
                Err(e) if !transport.retries() => {
                    let lost = self.batch.len() - self.cursor.records;
                    self.lost += lost as u64;
                    self.batch.clear();
                    self.cursor = Cursor::default();
                    return Err(format!("{e}: {lost} records not exported").into());
                }
                Err(e) => {
                    tries += 1;
                    let waiting = self.batch.len() - self.cursor.records;
                    let message = e.to_string();
                    if self.down.is_none() {
                        log::warn!(
                            "exporter: {message}; retrying with backoff, {waiting} records wait (the pipeline waits too)"
                        );
                        self.down = Some((Instant::now(), message.clone()));
                    }
                    handler_sdk::status::report(&format!(
                        "down: {message}; try {tries}, next in {wait:?}; {waiting} records wait"
                    ));
                    if sleep_unless(&self.shutdown, wait) {
                        self.lost += waiting as u64;
                        self.batch.clear();
                        self.cursor = Cursor::default();
                        return Err(format!(
                            "{message}: stopping with {waiting} records not exported"
                        )
                        .into());
                    }
                    wait = (wait * 2).min(BACKOFF_MAX);
                    if let Err(e) = transport.reconnect() {
                        log::debug!("exporter: {e}");
                    }
                }
            }
        }
        self.exported += self.batch.len() as u64;
        self.batch.clear();
        self.cursor = Cursor::default();
        self.uncommitted = true;
        if let Some((since, _)) = self.down.take() {
            let text = format!(
                "{}: up again after {:.1} s",
                transport.describe(),
                since.elapsed().as_secs_f64()
            );
            log::info!("exporter: {text}");
            handler_sdk::status::report(&text);
        }
        if self.last_commit.elapsed() >= COMMIT_INTERVAL {
            self.commit()?;
        }
        Ok(())
    }

    /// Makes what was exported durable, retrying as [`Exporter::flush`] does.
    fn commit(&mut self) -> HandlerResult {
        if !self.uncommitted {
            return Ok(());
        }
        let Some(transport) = self.transport.as_mut() else {
            return Ok(());
        };
        let mut wait = BACKOFF_INITIAL;
        while let Err(e) = transport.commit() {
            log::warn!("exporter: {e}");
            handler_sdk::status::report(&format!("down: {e}"));
            if sleep_unless(&self.shutdown, wait) {
                return Err(format!("{e}: stopping before it was delivered").into());
            }
            wait = (wait * 2).min(BACKOFF_MAX);
        }
        self.uncommitted = false;
        self.last_commit = Instant::now();
        Ok(())
    }

    fn reopen(&mut self) {
        if let Err(e) = self.flush() {
            log::error!("exporter: {e}");
        }
        if let Some(t) = self.transport.as_mut() {
            match t.reopen() {
                Ok(()) => log::info!("exporter: {} reopened", t.describe()),
                Err(e) => log::error!("exporter: reopen: {e}"),
            }
        }
    }
}

/// Sleeps `wait`, in slices, unless `flag` is set; returns whether it is.
fn sleep_unless(flag: &AtomicBool, wait: Duration) -> bool {
    let until = Instant::now() + wait;
    loop {
        if flag.load(Ordering::Relaxed) {
            return true;
        }
        let now = Instant::now();
        if now >= until {
            return false;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(50)));
    }
}

macro_rules! ancestors {
    ($ctx:expr) => {
        &$ctx.ancestors().collect::<Vec<&Process>>()
    };
}

impl Handler for Exporter {
    fn init(&mut self, config: &HandlerConfig) -> HandlerResult {
        let settings = Settings::from_config(config)
            .map_err(|e| format!("{}: bad configuration: {e}", config.name))?;
        let transport =
            open_transport(&settings.export).map_err(|e| format!("{}: {e}", config.name))?;
        log::debug!("{}: exporting to {}", config.name, transport.describe());
        if let Err(e) =
            signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&self.shutdown))
        {
            log::warn!("{}: cannot watch SIGTERM: {e}", config.name);
        }
        let mut transport = transport;
        if matches!(settings.export, Export::Syslog(_))
            && let Err(e) = transport.reconnect()
        {
            log::warn!(
                "{}: {e}; records will wait, and the connection is retried with backoff",
                config.name
            );
            handler_sdk::status::report(&format!("down: {e}; retried at the first record"));
            self.down = Some((Instant::now(), e.to_string()));
        }
        self.settings = Some(settings);
        self.transport = Some(transport);
        Ok(())
    }

    fn handle_process_event(&mut self, ctx: &Context<'_>, e: &ProcessEvent) -> HandlerResult {
        self.export(ctx, &View::process_event(ctx, e, ancestors!(ctx)))
    }
    fn handle_process_flow(&mut self, ctx: &Context<'_>, f: &ProcessFlow) -> HandlerResult {
        self.export(ctx, &View::process_flow(ctx, f, ancestors!(ctx)))
    }
    fn handle_file_flow(&mut self, ctx: &Context<'_>, f: &FileFlow) -> HandlerResult {
        self.export(ctx, &View::file_flow(ctx, f, ancestors!(ctx)))
    }
    fn handle_file_event(&mut self, ctx: &Context<'_>, e: &FileEvent) -> HandlerResult {
        self.export(ctx, &View::file_event(ctx, e, ancestors!(ctx)))
    }
    fn handle_network_flow(&mut self, ctx: &Context<'_>, f: &NetworkFlow) -> HandlerResult {
        self.export(ctx, &View::network_flow(ctx, f, ancestors!(ctx)))
    }
    fn handle_network_event(&mut self, ctx: &Context<'_>, e: &NetworkEvent) -> HandlerResult {
        self.export(ctx, &View::network_event(ctx, e, ancestors!(ctx)))
    }
    fn handle_k8s_event(&mut self, ctx: &Context<'_>, e: &K8sEvent) -> HandlerResult {
        self.export(ctx, &View::k8s_event(ctx, e, &[]))
    }

    fn idle(&mut self) {
        if handler_sdk::reopen_requested() {
            self.reopen();
        }
        if let Err(e) = self.flush().and_then(|()| self.commit()) {
            log::error!("exporter: {e}");
        }
    }

    fn cleanup(&mut self) {
        if let Err(e) = self.flush().and_then(|()| self.commit()) {
            log::error!("exporter: {e}");
            handler_sdk::logging::output_error("exporter", &std::io::Error::other(e.to_string()));
        }
        if self.lost > 0 {
            handler_sdk::logging::output_error(
                "exporter",
                &std::io::Error::other(format!("{} records were not exported", self.lost)),
            );
        }
        log::debug!("exporter: {} records exported", self.exported);
    }
}
