//! `alert`: raises an alert for every flow or event that matches one of the rules of its
//! pipeline block, and writes each alert as one JSON line to standard output or to its
//! `file`:
//!
//! ```json
//! {"handler": "alert", "file": "alerts.jsonl", "rules": [
//!   {"name": "shell-from-web-server", "priority": "high",
//!    "kinds": ["ProcessEvent"], "opflags": ["EXEC"], "exe": ["*/sh", "*/bash", "*/dash"],
//!    "ancestor_exe": ["*/httpd", "*/nginx", "*/apache2"]}]}
//! ```
//!
//! An alert names the rule and carries the record's sequence number, time, kind, opFlags and
//! context (process, parent, container, pod, file, network endpoints). Each line is written
//! with one `write(2)` as the record is handled. See `README.md` for the rule schema.
//!
//! With an output channel (`"out": "evt alertchan"` in its block), it is the first stage of a
//! chain instead: every record that matches is emitted on the channel, annotated with the
//! rules it matched as [`Policy`]s (id = rule name, `desc`, `priority`, `tags`), for a
//! downstream handler such as `json` to export; it writes lines only to a `file` given too.
//!
//! At the end it logs (at `debug`) how many alerts each rule raised (`alert: 3 alerts
//! (shell 2, ...)`);
//! those counters are its state, kept across restarts (`Handler::snapshot`).

mod alert;
mod rules;

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt as _;

use handler_sdk::prelude::*;

use crate::alert::Alert;
use crate::rules::{Compiled, Facts, Kind, Rule};

/// The block's settings.
#[derive(Debug, serde::Deserialize)]
struct Config {
    /// File the alerts are appended to; standard output when absent.
    #[serde(default)]
    file: Option<String>,
    /// The rules.
    rules: Vec<Rule>,
}

/// Where alert lines go (without an output channel, or with one and a `file`).
enum Sink {
    Stdout,
    File(std::fs::File),
}

impl Sink {
    /// Writes one alert as one line, with a single write.
    fn emit(&mut self, alert: &Alert<'_>) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(alert)?;
        line.push(b'\n');
        match self {
            Sink::Stdout => std::io::stdout().lock().write_all(&line),
            Sink::File(f) => f.write_all(&line),
        }
    }
}

/// The alert handler.
struct Alerter {
    rules: Vec<Compiled>,
    /// `None`: chained without a `file`, alerts are only emitted.
    sink: Option<Sink>,
    /// The block has an output channel: matched records are emitted with their rules.
    chained: bool,
    /// The rules as policies, in rule order.
    policies: Vec<Policy>,
    /// Alerts raised per rule, in rule order.
    raised: Vec<u64>,
}

impl Alerter {
    fn new() -> Self {
        Alerter {
            rules: Vec::new(),
            sink: Some(Sink::Stdout),
            chained: false,
            policies: Vec::new(),
            raised: Vec::new(),
        }
    }

    /// Matches the record against every rule: writes one alert line per rule that holds,
    /// and, chained, emits the record once with every rule that holds.
    fn check(&mut self, ctx: &Context<'_>, facts: Facts, record: alert::Fields) -> HandlerResult {
        let mut matched = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.matches(&facts, ctx) {
                self.raised[i] += 1;
                if self.chained {
                    matched.push(self.policies[i].clone());
                }
                if let Some(sink) = &mut self.sink {
                    let alert = Alert::new(&rule.rule, ctx, &facts, &record);
                    sink.emit(&alert)
                        .map_err(|e| format!("cannot write alert {:?}: {e}", rule.rule.name))?;
                }
            }
        }
        if !matched.is_empty() {
            ctx.emit(matched);
        }
        Ok(())
    }
}

impl Handler for Alerter {
    fn config_keys() -> Option<ConfigKeys> {
        Some(ConfigKeys::of::<Config>())
    }

    fn init(&mut self, config: &HandlerConfig) -> HandlerResult {
        let cfg: Config = config.parse()?;
        self.rules = rules::compile(cfg.rules)
            .map_err(|e| format!("handler {:?}: bad configuration: {e}", config.name))?;
        self.raised = vec![0; self.rules.len()];
        self.policies = self
            .rules
            .iter()
            .map(|c| Policy {
                id: c.rule.name.clone(),
                desc: c.rule.desc.clone().unwrap_or_default(),
                priority: c
                    .rule
                    .priority
                    .as_deref()
                    .and_then(Policy::priority_from_name)
                    .unwrap_or(0),
                tags: c.rule.tags.clone(),
            })
            .collect();
        self.chained = config.get_str("out").is_some();
        self.sink = match cfg.file {
            Some(path) => {
                let f = std::fs::File::options()
                    .create(true)
                    .mode(0o600)
                    .append(true)
                    .open(&path)
                    .map_err(|e| format!("{path}: {e}"))?;
                Some(Sink::File(f))
            }
            None if self.chained => None,
            None => Some(Sink::Stdout),
        };
        Ok(())
    }

    fn handle_process_event(&mut self, ctx: &Context<'_>, pe: &ProcessEvent) -> HandlerResult {
        let facts = Facts {
            kind: Kind::ProcessEvent,
            op_flags: pe.op_flags,
            ports: None,
        };
        self.check(ctx, facts, alert::Fields::tid(pe.ts, pe.tid).ret(pe.ret))
    }

    fn handle_process_flow(&mut self, ctx: &Context<'_>, pf: &ProcessFlow) -> HandlerResult {
        let facts = Facts {
            kind: Kind::ProcessFlow,
            op_flags: pf.op_flags,
            ports: None,
        };
        self.check(ctx, facts, alert::Fields::at(pf.ts).end(pf.end_ts))
    }

    fn handle_file_flow(&mut self, ctx: &Context<'_>, ff: &FileFlow) -> HandlerResult {
        let facts = Facts {
            kind: Kind::FileFlow,
            op_flags: ff.op_flags,
            ports: None,
        };
        let fields = alert::Fields::tid(ff.ts, ff.tid)
            .end(ff.end_ts)
            .fd(ff.fd)
            .bytes(ff.num_r_recv_bytes, ff.num_w_send_bytes);
        self.check(ctx, facts, fields)
    }

    fn handle_file_event(&mut self, ctx: &Context<'_>, fe: &FileEvent) -> HandlerResult {
        let facts = Facts {
            kind: Kind::FileEvent,
            op_flags: fe.op_flags,
            ports: None,
        };
        self.check(ctx, facts, alert::Fields::tid(fe.ts, fe.tid).ret(fe.ret))
    }

    fn handle_network_flow(&mut self, ctx: &Context<'_>, nf: &NetworkFlow) -> HandlerResult {
        let facts = Facts {
            kind: Kind::NetworkFlow,
            op_flags: nf.op_flags,
            ports: Some((nf.sport, nf.dport)),
        };
        let fields = alert::Fields::tid(nf.ts, nf.tid)
            .end(nf.end_ts)
            .net(nf.proto, nf.sip, nf.sport, nf.dip, nf.dport)
            .bytes(nf.num_r_recv_bytes, nf.num_w_send_bytes);
        self.check(ctx, facts, fields)
    }

    fn handle_network_event(&mut self, ctx: &Context<'_>, ne: &NetworkEvent) -> HandlerResult {
        let facts = Facts {
            kind: Kind::NetworkEvent,
            op_flags: ne.op_flags,
            ports: Some((ne.sport, ne.dport)),
        };
        let fields = alert::Fields::tid(ne.ts, ne.tid)
            .ret(ne.ret)
            .net(ne.proto, ne.sip, ne.sport, ne.dip, ne.dport);
        self.check(ctx, facts, fields)
    }

    fn handle_k8s_event(&mut self, ctx: &Context<'_>, ke: &K8sEvent) -> HandlerResult {
        let facts = Facts {
            kind: Kind::K8sEvent,
            op_flags: 0,
            ports: None,
        };
        self.check(ctx, facts, alert::Fields::at(ke.ts))
    }

    /// Its counters are its state: kept across restarts, so the totals at the end count
    /// every alert once.
    fn snapshot(&mut self) -> SnapshotResult {
        handler_sdk::snapshot::encode(&self.raised).map(Some)
    }

    fn restore(&mut self, snapshot: &[u8]) -> HandlerResult {
        let raised: Vec<u64> = handler_sdk::snapshot::decode(snapshot)?;
        if raised.len() != self.rules.len() {
            return Err(format!(
                "the snapshot counts {} rules, the block has {}",
                raised.len(),
                self.rules.len()
            )
            .into());
        }
        self.raised = raised;
        Ok(())
    }

    fn cleanup(&mut self) {
        let counts: Vec<String> = self
            .rules
            .iter()
            .zip(&self.raised)
            .map(|(r, n)| format!("{} {n}", r.rule.name))
            .collect();
        log::debug!(
            "alert: {} alerts ({})",
            self.raised.iter().sum::<u64>(),
            counts.join(", ")
        );
    }
}

fn main() -> std::process::ExitCode {
    handler_sdk::run(Alerter::new())
}
