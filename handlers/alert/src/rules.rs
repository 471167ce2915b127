//! The rules of the alert handler: their configuration schema and how a record is matched.
//!
//! A rule is a set of conditions, all of which must hold; a condition is a list, which holds
//! when any of its items does; a condition left out always holds. See `README.md`.

use std::collections::HashSet;

use handler_sdk::prelude::*;
use serde::Deserialize;

/// The flow and event kinds a rule can name in `kinds` (entities are never alerted on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum Kind {
    /// Process events (clone, exec, exit, setuid, setns).
    ProcessEvent,
    /// Process flows.
    ProcessFlow,
    /// File flows.
    FileFlow,
    /// File events (mkdir, unlink, rename, ...).
    FileEvent,
    /// Network flows.
    NetworkFlow,
    /// Network events.
    NetworkEvent,
    /// Kubernetes events.
    K8sEvent,
}

impl Kind {
    /// The record kind.
    pub fn record_kind(self) -> RecordKind {
        match self {
            Kind::ProcessEvent => RecordKind::ProcessEvent,
            Kind::ProcessFlow => RecordKind::ProcessFlow,
            Kind::FileFlow => RecordKind::FileFlow,
            Kind::FileEvent => RecordKind::FileEvent,
            Kind::NetworkFlow => RecordKind::NetworkFlow,
            Kind::NetworkEvent => RecordKind::NetworkEvent,
            Kind::K8sEvent => RecordKind::K8sEvent,
        }
    }
}

/// An opFlags name of the reference (`EXEC`, `WRITE`, `SEND`, ...), as its bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpFlag(pub i32);

impl<'de> Deserialize<'de> for OpFlag {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        op_flags::from_name(&name).map(OpFlag).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown opFlags name {name:?}, expected one of {}",
                op_flags::names((1 << 21) - 1).join(", ") + ", SEND, RECV"
            ))
        })
    }
}

/// A pattern on a path or command line: `*` stands for any characters (`/` included), `?`
/// for one character; every other character stands for itself. `/etc/*` matches everything
/// under `/etc`, `*/bash` any `bash`, `/bin/sh` only `/bin/sh`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(String);

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let p = String::deserialize(d)?;
        if p.is_empty() {
            return Err(serde::de::Error::custom(
                "empty pattern (use \"*\" for anything)",
            ));
        }
        Ok(Pattern(p))
    }
}

impl Pattern {
    /// A pattern from its text.
    #[cfg(test)]
    pub fn new(p: &str) -> Self {
        Pattern(p.to_owned())
    }

    /// Whether `text` matches the whole pattern.
    pub fn matches(&self, text: &str) -> bool {
        glob(self.0.as_bytes(), text)
    }
}

/// Length of the UTF-8 character of `t` starting at byte `i`.
fn char_len_at(t: &str, i: usize) -> usize {
    t.get(i..)
        .and_then(|s| s.chars().next())
        .map_or(1, char::len_utf8)
}

/// Wildcard match with one backtracking point (linear in practice, never exponential).
fn glob(p: &[u8], text: &str) -> bool {
    let t = text.as_bytes();
    let (mut pi, mut ti) = (0, 0);
    // After the last `*`: the pattern position following it, the text position it reached.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                pi += 1;
                star = Some((pi, ti));
                continue;
            }
            Some(b'?') => {
                pi += 1;
                ti += char_len_at(text, ti);
                continue;
            }
            Some(&c) if c == t[ti] => {
                pi += 1;
                ti += 1;
                continue;
            }
            _ => {}
        }
        let Some((sp, st)) = star else {
            return false;
        };
        // Let the last `*` take one more character and try again from there.
        let st = st + char_len_at(text, st);
        star = Some((sp, st));
        (pi, ti) = (sp, st);
    }
    p[pi.min(p.len())..].iter().all(|&c| c == b'*')
}

fn any(patterns: &[Pattern], text: &str) -> bool {
    patterns.iter().any(|p| p.matches(text))
}

/// One rule as written in the handler's block.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The rule's name, unique in the block; every alert carries it.
    pub name: String,
    /// A description, copied into the alerts.
    #[serde(default)]
    pub desc: Option<String>,
    /// A priority (free text such as `low`, `medium`, `high`), copied into the alerts; in
    /// emitted records, `low`, `medium`, `high` or a number are the policy's priority (0, 1,
    /// 2, the number, as the reference policy engine's `Priority` enumeration: `Low`,
    /// `Medium`, `High` = 0, 1, 2 in sf-processor's core/policyengine/engine/types.go),
    /// anything else 0.
    #[serde(default)]
    pub priority: Option<String>,
    /// Tags (e.g. MITRE ATT&CK technique IDs), copied into the alerts and emitted records.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Record kinds; empty: every flow and event.
    #[serde(default)]
    pub kinds: Vec<Kind>,
    /// The record's opFlags include one of these.
    #[serde(default)]
    pub opflags: Vec<OpFlag>,
    /// The process's executable matches one of these.
    #[serde(default)]
    pub exe: Vec<Pattern>,
    /// The process's executable matches none of these (an unknown process matches none).
    #[serde(default)]
    pub not_exe: Vec<Pattern>,
    /// The process's command line (`exe args`) matches one of these.
    #[serde(default)]
    pub cmdline: Vec<Pattern>,
    /// The parent's executable matches one of these.
    #[serde(default)]
    pub parent_exe: Vec<Pattern>,
    /// The executable of the parent or of an earlier ancestor matches one of these.
    #[serde(default)]
    pub ancestor_exe: Vec<Pattern>,
    /// The file's path, or a file event's new path, matches one of these.
    #[serde(default)]
    pub path: Vec<Pattern>,
    /// Neither the file's path nor the new path matches any of these.
    #[serde(default)]
    pub not_path: Vec<Pattern>,
    /// A network flow's or event's destination port is one of these.
    #[serde(default)]
    pub dport: Vec<u16>,
    /// A network flow's or event's source port is one of these.
    #[serde(default)]
    pub sport: Vec<u16>,
    /// `true`: the process runs in a container; `false`: on the host.
    #[serde(default)]
    pub container: Option<bool>,
}

/// What a rule looks at in one record, besides its context.
#[derive(Debug, Clone, Copy)]
pub struct Facts {
    /// The record's kind.
    pub kind: Kind,
    /// Its opFlags (0 for a K8s event).
    pub op_flags: i32,
    /// Source and destination ports of a network flow or event.
    pub ports: Option<(i32, i32)>,
}

/// A checked rule, ready to match.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The rule as written.
    pub rule: Rule,
    op_mask: i32,
}

impl Compiled {
    /// Whether the record with these facts and this context satisfies every condition.
    pub fn matches(&self, facts: &Facts, ctx: &Context<'_>) -> bool {
        let r = &self.rule;
        if !r.kinds.is_empty() && !r.kinds.contains(&facts.kind) {
            return false;
        }
        if self.op_mask != 0 && facts.op_flags & self.op_mask == 0 {
            return false;
        }
        let exe = ctx.process().map(|p| p.exe.as_str());
        if !r.exe.is_empty() && !exe.is_some_and(|e| any(&r.exe, e)) {
            return false;
        }
        if exe.is_some_and(|e| any(&r.not_exe, e)) {
            return false;
        }
        if !r.cmdline.is_empty() && !ctx.process().is_some_and(|p| any(&r.cmdline, &p.cmdline())) {
            return false;
        }
        if !r.parent_exe.is_empty() && !ctx.parent().is_some_and(|p| any(&r.parent_exe, &p.exe)) {
            return false;
        }
        if !r.ancestor_exe.is_empty() && !ctx.ancestors().any(|p| any(&r.ancestor_exe, &p.exe)) {
            return false;
        }
        let paths = || {
            ctx.file()
                .into_iter()
                .chain(ctx.new_file())
                .map(|f| f.path.as_str())
        };
        if !r.path.is_empty() && !paths().any(|p| any(&r.path, p)) {
            return false;
        }
        if paths().any(|p| any(&r.not_path, p)) {
            return false;
        }
        let port_in = |list: &[u16], port: i32| list.iter().any(|&p| i32::from(p) == port);
        if !r.dport.is_empty() && !facts.ports.is_some_and(|(_, d)| port_in(&r.dport, d)) {
            return false;
        }
        if !r.sport.is_empty() && !facts.ports.is_some_and(|(s, _)| port_in(&r.sport, s)) {
            return false;
        }
        if let Some(want) = r.container
            && ctx.container().is_some() != want
        {
            return false;
        }
        true
    }
}

/// Checks the rules as a set (names present and unique) and compiles them.
///
/// # Errors
/// A message naming the rule (`rules[2]`) that is wrong.
pub fn compile(rules: Vec<Rule>) -> Result<Vec<Compiled>, String> {
    if rules.is_empty() {
        return Err("rules: no rules: add at least one, e.g. {\"name\": \"shell-in-container\", \"kinds\": [\"ProcessEvent\"], \"opflags\": [\"EXEC\"], \"exe\": [\"*/sh\", \"*/bash\"], \"container\": true}".into());
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(rules.len());
    for (i, rule) in rules.into_iter().enumerate() {
        if rule.name.trim().is_empty() {
            return Err(format!("rules[{i}].name: empty rule name"));
        }
        if !seen.insert(rule.name.clone()) {
            return Err(format!(
                "rules[{i}].name: a rule named {:?} comes earlier: names must be unique",
                rule.name
            ));
        }
        let op_mask = rule.opflags.iter().fold(0, |m, f| m | f.0);
        out.push(Compiled { rule, op_mask });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_wildcards() {
        let m = |p: &str, t: &str| Pattern::new(p).matches(t);
        assert!(m("/etc/*", "/etc/passwd"));
        assert!(m("/etc/*", "/etc/ssh/sshd_config"));
        assert!(!m("/etc/*", "/etc"));
        assert!(!m("/etc/*", "/var/etc/x"));
        assert!(m("*/bash", "/bin/bash"));
        assert!(!m("*/bash", "/bin/bashful"));
        assert!(m("/bin/sh", "/bin/sh"));
        assert!(!m("/bin/sh", "/bin/sh2"));
        assert!(m("*", ""));
        assert!(m("*a*b*c", "xxaxxbxxbxc"));
        assert!(!m("*a*b*c", "xxaxxbxxbx"));
        assert!(m("/tmp/?.sh", "/tmp/é.sh"));
        assert!(!m("/tmp/?.sh", "/tmp/ab.sh"));
        assert!(m("*é", "/x/café"));
        assert!(m("**", "anything"));
        assert!(!m("a", ""));
    }

    fn process(hpid: i64, parent: Option<i64>, exe: &str, container: Option<&str>) -> Record {
        Record::Process(Process {
            state: ObjectState::Created,
            oid: Oid { create_ts: 1, hpid },
            poid: parent.map(|p| Oid {
                create_ts: 1,
                hpid: p,
            }),
            ts: 1,
            exe: exe.into(),
            exe_args: "-c id".into(),
            uid: 33,
            user_name: String::new(),
            gid: 33,
            group_name: String::new(),
            tty: false,
            container_id: container.map(str::to_owned),
            entry: false,
            cwd: String::new(),
            env: vec![],
        })
    }

    fn rule(v: serde_json::Value) -> Compiled {
        compile(vec![serde_json::from_value(v).unwrap()])
            .unwrap()
            .remove(0)
    }

    #[test]
    fn conditions_all_hold_and_lists_take_any_item() {
        let mut t = handler_sdk::EntityTables::new();
        for p in [
            process(1, None, "/usr/sbin/apache2", None),
            process(2, Some(1), "/usr/lib/cgi-bin/run", None),
            process(3, Some(2), "/bin/bash", None),
        ] {
            assert!(t.store(p).is_none());
        }
        let exec = Record::ProcessEvent(ProcessEvent {
            proc_oid: Oid {
                create_ts: 1,
                hpid: 3,
            },
            ts: 5,
            tid: 3,
            op_flags: op_flags::EXEC,
            args: vec![],
            ret: 0,
        });
        let ctx = t.context_for(9, &exec);
        let facts = Facts {
            kind: Kind::ProcessEvent,
            op_flags: op_flags::EXEC,
            ports: None,
        };
        let yes = |v: serde_json::Value| rule(v).matches(&facts, &ctx);
        assert!(yes(serde_json::json!({"name": "r"})));
        assert!(yes(
            serde_json::json!({"name": "r", "kinds": ["FileFlow", "ProcessEvent"],
            "opflags": ["CLONE", "EXEC"], "exe": ["*/sh", "*/bash"],
            "ancestor_exe": ["*/nginx", "*/apache2"], "cmdline": ["* -c *"], "container": false})
        ));
        assert!(!yes(
            serde_json::json!({"name": "r", "kinds": ["FileFlow"]})
        ));
        assert!(!yes(serde_json::json!({"name": "r", "opflags": ["EXIT"]})));
        assert!(!yes(serde_json::json!({"name": "r", "exe": ["*/sh"]})));
        assert!(!yes(
            serde_json::json!({"name": "r", "not_exe": ["/bin/*"]})
        ));
        assert!(!yes(
            serde_json::json!({"name": "r", "parent_exe": ["*/apache2"]})
        ));
        assert!(yes(
            serde_json::json!({"name": "r", "parent_exe": ["*/run"]})
        ));
        assert!(
            !yes(serde_json::json!({"name": "r", "path": ["*"]})),
            "no file"
        );
        assert!(
            yes(serde_json::json!({"name": "r", "not_path": ["*"]})),
            "no file"
        );
        assert!(
            !yes(serde_json::json!({"name": "r", "dport": [80]})),
            "no ports"
        );
        assert!(!yes(serde_json::json!({"name": "r", "container": true})));
        let net = Facts {
            kind: Kind::NetworkFlow,
            op_flags: op_flags::CONNECT,
            ports: Some((40000, 4444)),
        };
        assert!(rule(serde_json::json!({"name": "r", "dport": [6667, 4444]})).matches(&net, &ctx));
        assert!(!rule(serde_json::json!({"name": "r", "sport": [4444]})).matches(&net, &ctx));
    }

    #[test]
    fn compile_checks_names() {
        let rule = |name: &str| -> Rule {
            serde_json::from_value(serde_json::json!({"name": name})).unwrap()
        };
        assert!(compile(vec![]).unwrap_err().starts_with("rules: no rules"));
        assert_eq!(
            compile(vec![rule("a"), rule("a")]).unwrap_err(),
            "rules[1].name: a rule named \"a\" comes earlier: names must be unique"
        );
        assert_eq!(
            compile(vec![rule(" ")]).unwrap_err(),
            "rules[0].name: empty rule name"
        );
    }

    #[test]
    fn rule_schema_errors() {
        let err = |v: serde_json::Value| serde_json::from_value::<Rule>(v).unwrap_err().to_string();
        assert!(
            err(serde_json::json!({"name": "a", "opflags": ["WRTE"]}))
                .starts_with("unknown opFlags name \"WRTE\", expected one of MKDIR, RMDIR")
        );
        assert!(
            err(serde_json::json!({"name": "a", "kinds": ["Process"]}))
                .starts_with("unknown variant `Process`, expected one of `ProcessEvent`")
        );
        assert!(err(serde_json::json!({"name": "a", "exe": [""]})).starts_with("empty pattern"));
        assert!(
            err(serde_json::json!({"name": "a", "port": [1]})).starts_with("unknown field `port`")
        );
        assert!(err(serde_json::json!({"name": "a", "dport": [70000]})).contains("70000"));
    }
}
