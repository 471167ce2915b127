//! The policy engine as a [`Handler`]: configuration, alert and enrich modes, counters,
//! reloading.
//!
//! Each flow and event is checked against the drop filters, then against every rule for its
//! record type, in file order. In `alert` mode a record that matches rules is emitted
//! annotated with them (`ctx.emit`); in `enrich` mode every record that no filter drops is
//! emitted, the matching ones annotated. A record a filter drops is never emitted (in both
//! modes, as the reference).
//!
//! With `"monitor": "local"`, a thread checks the policy files every `monitor.interval`
//! seconds (by content) and compiles them again when they changed; the handler swaps the new
//! rules in between two records, so no record is lost or handled twice. A reload that fails
//! keeps the running rules and logs why.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use handler_sdk::prelude::*;

use crate::ancestry::{AncestorMode, AncestryCache, Lineage};
use crate::attrs::{Event, Rec};
use crate::compiler::{self, Level, Options, PolicySet};
use crate::ir::Scratch;

/// The block's keys (the reference's, plus `strict` and `ancestors`).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default)]
pub struct Config {
    /// A policy file or a directory of them (`.yaml`, `.yml`, recursively). Required in
    /// `alert` mode; in `enrich` mode without it every record is passed on.
    pub policies: Option<String>,
    /// `alert` (default) or `enrich`.
    pub mode: String,
    /// `falco` (default); `sigma` is not supported yet.
    pub language: String,
    /// `none` (default) or `local`: reload the policies when the files change.
    pub monitor: String,
    /// Seconds between two checks of the files with `monitor: local` (default 30).
    #[serde(rename = "monitor.interval")]
    pub monitor_interval: f64,
    /// The reference's worker count: accepted, not used (one record at a time, in order).
    pub concurrency: Option<serde_json::Value>,
    /// The reference's action plugins directory: accepted, not used.
    pub actiondir: Option<String>,
    /// Unknown attributes, undefined lists and macros, unknown priorities, actions: start
    /// errors instead of warnings.
    pub strict: bool,
    /// `current` (default) or `first-seen` (as the reference's cache): which versions of
    /// the process and its ancestors `proc.aname`, `sf.pproc.*` ... read (see `ancestry`;
    /// on the shared traces both give the same alerts for every set).
    pub ancestors: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            policies: None,
            mode: "alert".into(),
            language: "falco".into(),
            monitor: "none".into(),
            monitor_interval: 30.0,
            concurrency: None,
            actiondir: None,
            strict: false,
            ancestors: "current".into(),
        }
    }
}

/// Counters of the engine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Flows and events checked.
    pub records: u64,
    /// Records a drop filter dropped.
    pub dropped: u64,
    /// Records that matched at least one rule.
    pub alerts: u64,
    /// Records emitted (alerts, or every kept record in enrich mode).
    pub emitted: u64,
    /// Rule set swaps after a reload.
    pub reloads: u64,
}

/// The policy engine handler.
#[derive(Debug, Default)]
pub struct PolicyHandler {
    set: Option<PolicySet>,
    enrich: bool,
    mode: Option<AncestorMode>,
    ancestry: AncestryCache,
    scratch: Scratch,
    matched: Vec<u32>,
    /// Hits per rule of the running set (same order as its rules).
    hits: Vec<u64>,
    counters: Counters,
    report: Arc<AtomicBool>,
    reload: Option<Reload>,
}

#[derive(Debug)]
struct Reload {
    ready: Arc<AtomicBool>,
    rx: mpsc::Receiver<PolicySet>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn log_diagnostics(set: &PolicySet) {
    for d in &set.diagnostics {
        match d.level {
            Level::Warning => log::warn!("policy: {d}"),
            Level::Error => log::error!("policy: {d}"),
        }
    }
}

fn describe(set: &PolicySet) -> String {
    let (files, rules, macros, lists, filters) = set.counts;
    format!("{rules} rules, {macros} macros, {lists} lists, {filters} filters from {files} file(s)")
}

/// A fingerprint of the policy files: their paths and contents.
fn fingerprint(path: &std::path::Path) -> Result<u64, String> {
    use std::hash::{Hash, Hasher};
    let files = compiler::policy_files(path).map_err(|e| e.to_string())?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for f in files {
        f.hash(&mut h);
        std::fs::read(&f)
            .map_err(|e| format!("{}: {e}", f.display()))?
            .hash(&mut h);
    }
    Ok(h.finish())
}

fn start_monitor(path: PathBuf, opts: Options, interval: Duration) -> Reload {
    let ready = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let (r2, s2) = (Arc::clone(&ready), Arc::clone(&stop));
    let thread = std::thread::spawn(move || {
        let mut last = fingerprint(&path).ok();
        loop {
            let until = Instant::now() + interval;
            while Instant::now() < until {
                if s2.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50).min(interval));
            }
            let now = match fingerprint(&path) {
                Ok(f) => Some(f),
                Err(e) => {
                    if last.is_some() {
                        log::warn!("policy reload failed: {e}; the running rules stay");
                    }
                    last = None;
                    continue;
                }
            };
            if now == last {
                continue;
            }
            last = now;
            match compiler::compile_path(&path, opts) {
                Ok(set) => {
                    log_diagnostics(&set);
                    log::info!("policy reload: compiled {}", describe(&set));
                    if tx.send(set).is_err() {
                        return;
                    }
                    r2.store(true, Ordering::Release);
                }
                // A warning: the engine goes on with the running rules.
                Err(e) => log::warn!("policy reload failed: {e}; the running rules stay"),
            }
        }
    });
    Reload {
        ready,
        rx,
        stop,
        thread: Some(thread),
    }
}

impl PolicyHandler {
    /// A handler for a compiled set (tests; the launcher path goes through `init`).
    pub fn with_set(set: PolicySet, enrich: bool, mode: AncestorMode) -> Self {
        PolicyHandler {
            hits: vec![0; set.rules.len()],
            set: Some(set),
            enrich,
            mode: Some(mode),
            ..PolicyHandler::default()
        }
    }

    /// The counters so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Hits per rule: (rule name, hits), in rule order.
    pub fn hits(&self) -> Vec<(&str, u64)> {
        match &self.set {
            Some(s) => s
                .rules
                .iter()
                .zip(&self.hits)
                .map(|(r, h)| (r.policy.id.as_str(), *h))
                .collect(),
            None => Vec::new(),
        }
    }

    fn report_counters(&self, when: &str) {
        let c = &self.counters;
        let mut text = format!(
            "policy engine {when}: {} records, {} dropped by filters, {} alerts, {} emitted, {} reloads",
            c.records, c.dropped, c.alerts, c.emitted, c.reloads
        );
        for (name, hits) in self.hits() {
            if hits > 0 {
                text.push_str(&format!("; {name:?} {hits}"));
            }
        }
        log::info!("{text}");
    }

    fn swap_if_reloaded(&mut self, seq: u64) {
        let Some(r) = &self.reload else {
            return;
        };
        if !r.ready.load(Ordering::Acquire) {
            return;
        }
        r.ready.store(false, Ordering::Relaxed);
        let mut newest = None;
        while let Ok(s) = r.rx.try_recv() {
            newest = Some(s);
        }
        if let Some(set) = newest {
            // Hits carry over to the rules of the same name.
            let old = self.hits();
            let mut hits = vec![0; set.rules.len()];
            for (h, rule) in hits.iter_mut().zip(&set.rules) {
                *h = old
                    .iter()
                    .filter(|(n, _)| *n == rule.policy.id)
                    .map(|(_, c)| *c)
                    .sum();
            }
            self.hits = hits;
            log::info!(
                "policy reload: new rules in force from record {seq} ({})",
                describe(&set)
            );
            self.set = Some(set);
            // Per-process outcomes belong to the program they were evaluated with.
            self.scratch = Scratch::new();
            self.counters.reloads += 1;
        }
    }

    fn check(&mut self, ctx: &Context<'_>, kind: RecordKind, ev: Event<'_>, oid: Option<Oid>) {
        self.swap_if_reloaded(ctx.seq());
        if self.report.load(Ordering::Relaxed) && self.report.swap(false, Ordering::Relaxed) {
            self.report_counters("counters");
        }
        self.counters.records += 1;
        let Some(set) = &self.set else {
            // Enrich mode without policies: every record passes.
            self.counters.emitted += 1;
            ctx.emit([]);
            return;
        };
        let lineage = match (self.mode, oid) {
            (Some(AncestorMode::FirstSeen), Some(oid)) => self.ancestry.lineage(oid, ctx),
            (Some(AncestorMode::FirstSeen), None) => Lineage::FirstSeen(&[]),
            _ => Lineage::Current(*ctx),
        };
        let rec = Rec {
            kind,
            ev,
            ctx: *ctx,
            lineage,
        };
        if !set.evaluate(&rec, &mut self.scratch, &mut self.matched) {
            self.counters.dropped += 1;
            return;
        }
        if self.matched.is_empty() {
            if self.enrich {
                self.counters.emitted += 1;
                ctx.emit([]);
            }
            return;
        }
        self.counters.alerts += 1;
        self.counters.emitted += 1;
        for &i in &self.matched {
            self.hits[i as usize] += 1;
        }
        ctx.emit(
            self.matched
                .iter()
                .map(|&i| set.rules[i as usize].policy.clone()),
        );
    }
}

impl Handler for PolicyHandler {
    fn config_keys() -> Option<ConfigKeys> {
        Some(
            ConfigKeys::of::<Config>()
                .ignored(
                    "concurrency",
                    "the reference's worker count; records are checked one at a time, in order",
                )
                .ignored(
                    "actiondir",
                    "the reference's directory of Go action plugins; actions are not run",
                ),
        )
    }

    fn init(&mut self, config: &HandlerConfig) -> HandlerResult {
        let c: Config = config.parse()?;
        let key = |k: &str| {
            format!(
                "{}{k}",
                if config.location.is_empty() {
                    String::new()
                } else {
                    format!("{}.", config.location)
                }
            )
        };
        self.enrich = match c.mode.as_str() {
            "alert" => false,
            "enrich" => true,
            other => {
                return Err(format!(
                    "{}: {other:?} is not a mode: \"alert\" or \"enrich\"",
                    key("mode")
                )
                .into());
            }
        };
        match c.language.as_str() {
            "falco" => {}
            "sigma" => {
                return Err(format!(
                    "{}: \"sigma\" policies are not supported yet (only \"falco\")",
                    key("language")
                )
                .into());
            }
            other => {
                return Err(format!(
                    "{}: {other:?} is not a policy language: \"falco\"",
                    key("language")
                )
                .into());
            }
        }
        self.mode = Some(match c.ancestors.as_str() {
            "first-seen" => AncestorMode::FirstSeen,
            "current" => AncestorMode::Current,
            other => {
                return Err(format!(
                    "{}: {other:?}: \"first-seen\" or \"current\"",
                    key("ancestors")
                )
                .into());
            }
        });
        let monitor = match c.monitor.as_str() {
            "none" => false,
            "local" => true,
            other => {
                return Err(format!("{}: {other:?}: \"none\" or \"local\"", key("monitor")).into());
            }
        };
        if !(c.monitor_interval > 0.0 && c.monitor_interval.is_finite()) {
            return Err(format!(
                "{}: {} is not a number of seconds > 0",
                key("monitor.interval"),
                c.monitor_interval
            )
            .into());
        }
        if c.concurrency.is_some() {
            log::debug!(
                "policy: \"concurrency\" ignored: records are checked one at a time, in order"
            );
        }
        let opts = Options { strict: c.strict };
        let Some(path) = c.policies else {
            if self.enrich {
                log::info!(
                    "policy engine: enrich mode without policies: every record is passed on"
                );
                return Ok(());
            }
            return Err(format!(
                "{}: missing: the policy file or directory (required in alert mode)",
                key("policies")
            )
            .into());
        };
        let path = PathBuf::from(path);
        let set =
            compiler::compile_path(&path, opts).map_err(|e| format!("{}: {e}", key("policies")))?;
        log_diagnostics(&set);
        log::info!(
            "policy engine ({} mode): {}",
            if self.enrich { "enrich" } else { "alert" },
            describe(&set)
        );
        if config.get_str("out").is_none() {
            log::warn!(
                "policy engine: the block has no \"out\": matches are counted, not passed on"
            );
        }
        self.hits = vec![0; set.rules.len()];
        self.set = Some(set);
        if monitor {
            self.reload = Some(start_monitor(
                path,
                opts,
                Duration::from_secs_f64(c.monitor_interval),
            ));
        }
        signal_hook::flag::register(signal_hook::consts::SIGUSR1, Arc::clone(&self.report))?;
        Ok(())
    }

    fn entities_enabled(&self) -> bool {
        // For the headers: the lineage cache starts again at each one.
        true
    }

    fn handle_header(&mut self, _ctx: &Context<'_>, _h: &SfHeader) -> HandlerResult {
        self.ancestry.clear();
        Ok(())
    }

    fn handle_process_event(&mut self, ctx: &Context<'_>, e: &ProcessEvent) -> HandlerResult {
        self.check(
            ctx,
            RecordKind::ProcessEvent,
            Event::process_event(e),
            Some(e.proc_oid),
        );
        Ok(())
    }

    fn handle_process_flow(&mut self, ctx: &Context<'_>, f: &ProcessFlow) -> HandlerResult {
        self.check(
            ctx,
            RecordKind::ProcessFlow,
            Event::process_flow(f),
            Some(f.proc_oid),
        );
        Ok(())
    }

    fn handle_file_flow(&mut self, ctx: &Context<'_>, f: &FileFlow) -> HandlerResult {
        self.check(
            ctx,
            RecordKind::FileFlow,
            Event::file_flow(f),
            Some(f.proc_oid),
        );
        Ok(())
    }

    fn handle_file_event(&mut self, ctx: &Context<'_>, e: &FileEvent) -> HandlerResult {
        self.check(
            ctx,
            RecordKind::FileEvent,
            Event::file_event(e),
            Some(e.proc_oid),
        );
        Ok(())
    }

    fn handle_network_flow(&mut self, ctx: &Context<'_>, f: &NetworkFlow) -> HandlerResult {
        self.check(
            ctx,
            RecordKind::NetworkFlow,
            Event::network_flow(f),
            Some(f.proc_oid),
        );
        Ok(())
    }

    fn handle_network_event(&mut self, ctx: &Context<'_>, e: &NetworkEvent) -> HandlerResult {
        self.check(
            ctx,
            RecordKind::NetworkEvent,
            Event::network_event(e),
            Some(e.proc_oid),
        );
        Ok(())
    }

    fn handle_k8s_event(&mut self, ctx: &Context<'_>, e: &K8sEvent) -> HandlerResult {
        self.check(ctx, RecordKind::K8sEvent, Event::k8s_event(e), None);
        Ok(())
    }

    fn idle(&mut self) {
        if self.report.load(Ordering::Relaxed) && self.report.swap(false, Ordering::Relaxed) {
            self.report_counters("counters");
        }
    }

    fn cleanup(&mut self) {
        if let Some(r) = &mut self.reload {
            r.stop.store(true, Ordering::Relaxed);
            if let Some(t) = r.thread.take() {
                let _ = t.join();
            }
        }
        self.report_counters("at the end");
    }
}
