//! Name resolution and compilation: policy files to a [`PolicySet`], rules and drop filters
//! compiled once per record type.
//!
//! Names resolve as in the reference's compiler (`policy/falco/compiler.go`):
//!
//! - files are read in order; each file is first scanned for its lists and macros (so a rule
//!   may use a macro defined further down), then walked in order, each list and macro
//!   definition replacing an earlier one of the same name from there on (`append` is
//!   ignored: the later definition wins);
//! - a rule's or filter's macros and lists are resolved when the walk reaches it, with the
//!   definitions in force then, recursively;
//! - an undefined macro is a logged error and the term is false; an unknown attribute is a
//!   literal string; a list item or `in (...)` value that is not a list is a literal value.
//!   Each is reported once per name, and is a start error in strict mode;
//! - a cycle between macros (or lists) is always a start error (the reference overflows its
//!   stack).
//!
//! Each rule is then compiled for each record type ([`crate::attrs::KINDS`]): `sf.type`,
//! `prefilter`, and the attributes a record type does not have are known, and fold away, so
//! a file-flow record only runs what can hold for a file flow.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use handler_sdk::EntityTables;
use handler_sdk::Policy;
use handler_sdk::model::{K8sAction, K8sComponent, K8sEvent, Record, RecordKind};

use crate::ancestry::Lineage;
use crate::attrs::{self, Event, Field, KINDS, Rec, Source, ValueType};
use crate::ir::{Cmp, Finder, IntOperand, Matcher, Node, PieceSet, StrOp, StrOperand, Test};
use crate::parser::{self, Atom, BinOp, Decl, Expr, ListOp, RuleDecl, Term, trim_bounding_quotes};

/// How serious a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Logged; the policy runs as the reference runs it.
    Warning,
    /// Logged as an error by the reference too (an undefined macro); the term is false.
    Error,
}

/// Something a policy does that the engine accepts as the reference does, but that is
/// probably a mistake (an unknown attribute, an undefined list or macro, an unknown priority).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// How serious.
    pub level: Level,
    /// `FILE:LINE:COL`.
    pub location: String,
    /// What.
    pub message: String,
    /// Whether strict mode refuses it.
    pub strict: bool,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// Why policies could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// A file or directory could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// No `.yaml`/`.yml` file under the path.
    #[error("{0}: no policy file (.yaml or .yml) found")]
    NoFiles(PathBuf),
    /// A syntax error.
    #[error("{file}:{error}")]
    Syntax {
        /// The file.
        file: String,
        /// Where and what.
        error: parser::SyntaxError,
    },
    /// Macros or lists that refer to each other in a cycle.
    #[error("{location}: {what} cycle: {path}")]
    Cycle {
        /// `FILE:LINE:COL` of the reference that closes the cycle.
        location: String,
        /// `macro` or `list`.
        what: &'static str,
        /// `a -> b -> a`.
        path: String,
    },
    /// Strict mode: the diagnostics it refuses.
    #[error("strict mode: {} problem(s): {}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Strict(Vec<Diagnostic>),
}

/// Compilation options.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Refuse unknown attributes, undefined lists and macros, unknown priorities and enabled
    /// flags, and actions.
    pub strict: bool,
}

/// A rule as the engine keeps it.
#[derive(Debug, Clone)]
pub struct RuleInfo {
    /// What matching records are annotated with: name, description, priority, tags.
    pub policy: Policy,
    /// `FILE:LINE` of its declaration.
    pub location: String,
}

/// The rules and filters that can hold for one record type.
#[derive(Debug, Clone, Default)]
pub struct KindProgram {
    /// Enabled drop filters (not folded to false).
    pub filters: Box<[Node]>,
    /// Enabled, applicable rules, in file order.
    pub rules: Box<[CompiledRule]>,
    /// Number of [`Test::Shared`] slots its conditions use.
    pub slots: usize,
    /// Number of [`Node::PerProcess`] slots its conditions use.
    pub process_slots: usize,
}

/// A rule compiled for one record type.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    /// Index into [`PolicySet::rules`].
    pub index: u32,
    /// opFlags bits of which one must be set for `condition` to hold (`None`: no such
    /// requirement); checked before evaluating it.
    pub op_flags: Option<i32>,
    /// The condition.
    pub condition: Node,
}

/// Compiled policies.
#[derive(Debug, Clone)]
pub struct PolicySet {
    /// Every rule, in file order (disabled ones too, never matched).
    pub rules: Vec<RuleInfo>,
    /// Per record type, in [`KINDS`] order.
    pub programs: Vec<KindProgram>,
    /// What was reported while compiling.
    pub diagnostics: Vec<Diagnostic>,
    /// Counts: (files, rules, macros, lists, filters).
    pub counts: (usize, usize, usize, usize, usize),
}

impl PolicySet {
    /// The program for records of `kind` (`None` for entities).
    pub fn program(&self, kind: RecordKind) -> Option<&KindProgram> {
        attrs::kind_index(kind).map(|i| &self.programs[i])
    }

    /// Whether any enabled drop filter holds for `rec`, and else the rules that hold, in
    /// order, into `matched` (cleared first). Returns `false` when the record is dropped.
    pub fn evaluate(
        &self,
        rec: &Rec<'_>,
        sc: &mut crate::ir::Scratch,
        matched: &mut Vec<u32>,
    ) -> bool {
        matched.clear();
        let Some(p) = self.program(rec.kind) else {
            return true;
        };
        sc.next_record(p.slots);
        if p.process_slots > 0 {
            sc.next_process(
                rec.ctx.process().map(|p| p.oid),
                rec.kind,
                rec.ctx.tables().epoch(),
                p.process_slots,
            );
        }
        if p.filters.iter().any(|f| f.eval(rec, sc)) {
            return false;
        }
        let flags = rec.ev.op_flags;
        matched.extend(
            p.rules
                .iter()
                .filter(|r| r.op_flags.is_none_or(|m| flags & m != 0) && r.condition.eval(rec, sc))
                .map(|r| r.index),
        );
        true
    }
}

/// The policy files at `path`: the file itself, or every `.yaml`/`.yml` file under the
/// directory, recursively, in the order of a walk that visits each directory's entries by
/// name (as Go's `filepath.Walk`, which the reference uses).
///
/// # Errors
/// [`CompileError::Io`] when the path or a directory cannot be read,
/// [`CompileError::NoFiles`] when a directory has no policy file.
pub fn policy_files(path: &Path) -> Result<Vec<PathBuf>, CompileError> {
    let io = |p: &Path| {
        let p = p.to_owned();
        move |source| CompileError::Io { path: p, source }
    };
    let meta = std::fs::metadata(path).map_err(io(path))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), CompileError> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|source| CompileError::Io {
                path: dir.to_owned(),
                source,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for e in entries {
            if e.is_dir() {
                walk(&e, out)?;
            } else if matches!(e.extension().and_then(|x| x.to_str()), Some("yaml" | "yml")) {
                out.push(e);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(path, &mut out)?;
    if out.is_empty() {
        return Err(CompileError::NoFiles(path.to_owned()));
    }
    Ok(out)
}

/// Compiles the policy files at `path` (see [`policy_files`]).
///
/// # Errors
/// See [`CompileError`].
pub fn compile_path(path: &Path, opts: Options) -> Result<PolicySet, CompileError> {
    let mut sources = Vec::new();
    for f in policy_files(path)? {
        let text = std::fs::read(&f).map_err(|source| CompileError::Io {
            path: f.clone(),
            source,
        })?;
        sources.push((
            f.display().to_string(),
            String::from_utf8_lossy(&text).into_owned(),
        ));
    }
    compile_sources(&sources, opts)
}

/// A condition with its macros and lists resolved: attributes and values still as written.
#[derive(Debug)]
enum RExpr {
    Const(bool),
    Any(Vec<Rc<RExpr>>),
    All(Vec<Rc<RExpr>>),
    Not(Rc<RExpr>),
    Exists(String),
    Bin(String, BinOp, String),
    List(String, ListOp, Rc<[String]>),
}

struct MacroDef {
    expr: Expr,
    file: usize,
}

struct Resolver<'a> {
    files: &'a [(String, String)],
    file: usize,
    lists: HashMap<String, Rc<Vec<String>>>,
    macros: HashMap<String, Rc<MacroDef>>,
    memo: HashMap<String, Rc<RExpr>>,
    diags: Vec<Diagnostic>,
    reported: std::collections::HashSet<(&'static str, String)>,
}

const ATTRIBUTE_PREFIXES: [&str; 11] = [
    "sf.",
    "proc.",
    "fd.",
    "evt.",
    "container.",
    "user.",
    "group.",
    "thread.",
    "k8s.",
    "ka.",
    "ext.",
];

impl Resolver<'_> {
    fn location(&self, line: u32, col: u32) -> String {
        format!("{}:{line}:{col}", self.files[self.file].0)
    }

    fn report(
        &mut self,
        kind: &'static str,
        name: &str,
        level: Level,
        loc: String,
        message: String,
        strict: bool,
    ) {
        if self.reported.insert((kind, name.to_owned())) {
            self.diags.push(Diagnostic {
                level,
                location: loc,
                message,
                strict,
            });
        }
    }

    fn define_list(&mut self, name: &str, items: &[String]) {
        self.lists.insert(name.to_owned(), Rc::new(items.to_vec()));
        self.memo.clear();
    }

    fn define_macro(&mut self, name: &str, expr: &Expr) {
        let def = MacroDef {
            expr: expr.clone(),
            file: self.file,
        };
        self.macros.insert(name.to_owned(), Rc::new(def));
        self.memo.clear();
    }

    fn check_attribute(&mut self, a: &Atom, lhs: bool) {
        if a.tok != crate::lexer::Tok::Id || !a.text.contains('.') {
            return;
        }
        let base = a.text.split('[').next().unwrap_or(&a.text);
        if attrs::lookup(&a.text).is_some() || attrs::lookup(base).is_some() {
            return;
        }
        let looks = if lhs {
            ATTRIBUTE_PREFIXES.iter().any(|p| a.text.starts_with(p))
        } else {
            a.text.starts_with("sf.")
        };
        if looks {
            let loc = self.location(a.line, a.col);
            self.report(
                "attribute",
                &a.text,
                Level::Warning,
                loc,
                format!("unknown attribute {:?}: compared as the literal string {:?}, as the reference does", a.text, trim_bounding_quotes(&a.text)),
                true,
            );
        }
    }

    /// A bare lower-case word with `_`, as list names are written (`shell_binaries`):
    /// values such as `rhn_check` or `WRITE_SEND` inside lists are not reported.
    fn looks_like_list_name(s: &str) -> bool {
        s.contains('_')
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    }

    fn reduce_list(
        &mut self,
        s: &str,
        at: (u32, u32),
        stack: &mut Vec<String>,
    ) -> Result<Vec<String>, CompileError> {
        let Some(items) = self.lists.get(s).cloned() else {
            // Only a value written in the `in (...)` itself is reported, not list items.
            if stack.is_empty() && Self::looks_like_list_name(s) {
                let loc = self.location(at.0, at.1);
                self.report("list", s, Level::Warning, loc, format!("undefined list {s:?}: taken as the literal value {s:?}, as the reference does"), true);
            }
            return Ok(vec![trim_bounding_quotes(s).to_owned()]);
        };
        if stack.iter().any(|n| n == s) {
            stack.push(s.to_owned());
            return Err(CompileError::Cycle {
                location: self.location(at.0, at.1),
                what: "list",
                path: stack.join(" -> "),
            });
        }
        stack.push(s.to_owned());
        let mut out = Vec::new();
        for v in items.iter() {
            out.extend(self.reduce_list(v, at, stack)?);
        }
        stack.pop();
        Ok(out)
    }

    fn expr(&mut self, e: &Expr, stack: &mut Vec<String>) -> Result<Rc<RExpr>, CompileError> {
        let mut any = Vec::new();
        for all in &e.any {
            let mut terms = Vec::new();
            for t in all {
                terms.push(self.term(t, stack)?);
            }
            any.push(if terms.len() == 1 {
                terms.pop().unwrap_or_else(|| Rc::new(RExpr::Const(true)))
            } else {
                Rc::new(RExpr::All(terms))
            });
        }
        Ok(if any.len() == 1 {
            any.pop().unwrap_or_else(|| Rc::new(RExpr::Const(false)))
        } else {
            Rc::new(RExpr::Any(any))
        })
    }

    fn term(&mut self, t: &Term, stack: &mut Vec<String>) -> Result<Rc<RExpr>, CompileError> {
        Ok(match t {
            Term::Macro(a) => {
                let name = &a.text;
                if let Some(r) = self.memo.get(name) {
                    return Ok(Rc::clone(r));
                }
                let Some(def) = self.macros.get(name).cloned() else {
                    let loc = self.location(a.line, a.col);
                    self.report(
                        "macro",
                        name,
                        Level::Error,
                        loc,
                        format!("undefined macro {name:?}: the term is false, as in the reference"),
                        true,
                    );
                    return Ok(Rc::new(RExpr::Const(false)));
                };
                if stack.iter().any(|n| n == name) {
                    stack.push(name.clone());
                    return Err(CompileError::Cycle {
                        location: self.location(a.line, a.col),
                        what: "macro",
                        path: stack.join(" -> "),
                    });
                }
                stack.push(name.clone());
                let saved = self.file;
                self.file = def.file;
                let r = self.expr(&def.expr, stack);
                self.file = saved;
                stack.pop();
                let r = r?;
                self.memo.insert(name.clone(), Rc::clone(&r));
                r
            }
            Term::Not(t) => Rc::new(RExpr::Not(self.term(t, stack)?)),
            Term::Paren(e) => self.expr(e, stack)?,
            Term::Exists(a) => {
                self.check_attribute(a, true);
                Rc::new(RExpr::Exists(a.text.clone()))
            }
            Term::Binary(l, op, r) => {
                self.check_attribute(l, true);
                self.check_attribute(r, false);
                Rc::new(RExpr::Bin(l.text.clone(), *op, r.text.clone()))
            }
            Term::List(l, op, atoms) => {
                self.check_attribute(l, true);
                let mut items = Vec::new();
                for a in atoms {
                    items.extend(self.reduce_list(&a.text, (a.line, a.col), &mut Vec::new())?);
                }
                Rc::new(RExpr::List(l.text.clone(), *op, items.into()))
            }
        })
    }
}

/// Go's `strconv.ParseInt(s, 10, 64)`.
fn go_parse_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Go's `strconv.ParseBool`.
fn go_parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// The reference's priority names: low/medium/high; debug, info, informational, notice are
/// low, warning medium, error, critical, emergency high; anything else (`alert` included,
/// which the reference's switch lacks) low with a warning. Numbered as the reference's
/// exporter writes them (`../shared/reference/out`): low 1, medium 2, high 3.
fn priority(name: &str) -> Option<i64> {
    match name.to_lowercase().as_str() {
        "low" | "debug" | "info" | "informational" | "notice" => Some(1),
        "medium" | "warning" => Some(2),
        "high" | "error" | "critical" | "emergency" => Some(3),
        _ => None,
    }
}

/// Compiles policy `sources` (file name, text), in order.
///
/// # Errors
/// See [`CompileError`].
pub fn compile_sources(
    sources: &[(String, String)],
    opts: Options,
) -> Result<PolicySet, CompileError> {
    let mut r = Resolver {
        files: sources,
        file: 0,
        lists: HashMap::new(),
        macros: HashMap::new(),
        memo: HashMap::new(),
        diags: Vec::new(),
        reported: Default::default(),
    };
    struct Pending {
        rule: Option<(RuleInfo, Option<Vec<String>>, bool)>,
        cond: Rc<RExpr>,
    }
    let mut pending: Vec<Pending> = Vec::new();
    let (mut n_rules, mut n_macros, mut n_lists, mut n_filters) = (0, 0, 0, 0);
    for (fi, (name, text)) in sources.iter().enumerate() {
        r.file = fi;
        let decls = parser::parse(text).map_err(|error| CompileError::Syntax {
            file: name.clone(),
            error,
        })?;
        // The reference's first pass over the file: its lists and macros.
        for d in &decls {
            match &d.decl {
                Decl::List { name, items } => r.define_list(name, items),
                Decl::Macro { name, condition } => r.define_macro(name, condition),
                _ => {}
            }
        }
        for d in &decls {
            let loc = r.location(d.line, d.col);
            match &d.decl {
                Decl::List { name, items } => {
                    n_lists += 1;
                    r.define_list(name, items);
                }
                Decl::Macro { name, condition } => {
                    n_macros += 1;
                    r.define_macro(name, condition);
                }
                Decl::Required => {}
                Decl::Filter {
                    condition, enabled, ..
                } => {
                    n_filters += 1;
                    let cond = r.expr(condition, &mut Vec::new())?;
                    if enabled_flag(&mut r, enabled.as_deref(), &loc) {
                        pending.push(Pending { rule: None, cond });
                    }
                }
                Decl::Rule(rule) => {
                    n_rules += 1;
                    let cond = match &rule.condition {
                        Some(c) => r.expr(c, &mut Vec::new())?,
                        None => Rc::new(RExpr::Const(false)),
                    };
                    let info = rule_info(&mut r, rule, &loc);
                    let enabled = enabled_flag(&mut r, rule.enabled.as_deref(), &loc);
                    pending.push(Pending {
                        rule: Some((info, rule.prefilter.clone(), enabled)),
                        cond,
                    });
                }
            }
        }
    }
    if opts.strict {
        let refused: Vec<Diagnostic> = r.diags.iter().filter(|d| d.strict).cloned().collect();
        if !refused.is_empty() {
            return Err(CompileError::Strict(refused));
        }
    }
    // Lower each rule and filter for each record type.
    let tables = EntityTables::new();
    let dummy = Record::K8sEvent(K8sEvent {
        kind: K8sComponent::Unknown,
        action: K8sAction::Unknown,
        ts: 0,
        message: String::new(),
    });
    let ctx = tables.context_for(0, &dummy);
    let mut rules = Vec::new();
    type Lists = (Vec<Node>, Vec<(u32, Node)>);
    let mut programs: Vec<Lists> = KINDS.iter().map(|_| Default::default()).collect();
    for p in pending {
        let rule_index = p.rule.as_ref().map(|_| rules.len() as u32);
        for (ki, kind) in KINDS.iter().enumerate() {
            let zero = Rec {
                kind: *kind,
                ev: Event::default(),
                ctx,
                lineage: Lineage::FirstSeen(&[]),
            };
            let applies = match &p.rule {
                None => true,
                Some((_, pf, enabled)) => {
                    *enabled
                        && pf.as_ref().is_none_or(|pf| {
                            pf.is_empty() || pf.iter().any(|t| t == kind.type_code())
                        })
                }
            };
            if !applies {
                continue;
            }
            let node = lower(&p.cond, &zero);
            if matches!(node, Node::Const(false)) {
                continue;
            }
            match rule_index {
                Some(i) => programs[ki].1.push((i, node)),
                None => programs[ki].0.push(node),
            }
        }
        if let Some((info, _, _)) = p.rule {
            rules.push(info);
        }
    }
    Ok(PolicySet {
        rules,
        programs: programs
            .into_iter()
            .zip(crate::attrs::KINDS)
            .map(|((mut f, mut r), kind)| {
                let process_slots = crate::ir::per_process_conditions(
                    f.iter_mut().chain(r.iter_mut().map(|(_, n)| n)).collect(),
                    kind,
                );
                let slots = crate::ir::share_tests(
                    f.iter_mut().chain(r.iter_mut().map(|(_, n)| n)).collect(),
                );
                let rules = r
                    .into_iter()
                    .map(|(index, condition)| CompiledRule {
                        index,
                        op_flags: condition.required_op_flags(),
                        condition,
                    })
                    .collect();
                KindProgram {
                    filters: f.into(),
                    rules,
                    slots,
                    process_slots,
                }
            })
            .collect(),
        diagnostics: r.diags,
        counts: (sources.len(), n_rules, n_macros, n_lists, n_filters),
    })
}

fn enabled_flag(r: &mut Resolver<'_>, text: Option<&str>, loc: &str) -> bool {
    let Some(t) = text else {
        return true;
    };
    let flag = trim_bounding_quotes(t);
    go_parse_bool(flag).unwrap_or_else(|| {
        r.report(
            "enabled",
            &format!("{loc}{flag}"),
            Level::Warning,
            loc.to_owned(),
            format!("unrecognized enabled flag {flag:?}: enabled, as the reference does"),
            true,
        );
        true
    })
}

fn rule_info(r: &mut Resolver<'_>, rule: &RuleDecl, loc: &str) -> RuleInfo {
    let prio = match &rule.priority {
        None => 0,
        Some(p) => priority(p).unwrap_or_else(|| {
            r.report(
                "priority",
                p,
                Level::Warning,
                loc.to_owned(),
                format!("unrecognized priority {p:?}: low, as the reference does"),
                true,
            );
            1
        }),
    };
    for a in rule.actions.iter().flatten() {
        r.report(
            "action",
            a,
            Level::Warning,
            loc.to_owned(),
            format!("action {a:?} ignored: actions are Go plugins of the reference"),
            true,
        );
    }
    RuleInfo {
        policy: Policy {
            id: rule.name.clone(),
            desc: rule.desc.clone(),
            priority: prio,
            tags: rule.tags.clone().unwrap_or_default(),
        },
        location: loc.rsplit_once(':').map_or(loc, |(a, _)| a).to_owned(),
    }
}

/// Whether field `f` has the same value on every record of `zero.kind`.
fn foldable(f: Field, kind: RecordKind) -> bool {
    match f.source() {
        Source::Kind => true,
        Source::Event => !f.applies(kind),
        Source::Context => false,
    }
}

fn str_operand(text: &str, zero: &Rec<'_>) -> StrOperand {
    let op = match text.split_once('[') {
        Some((base, rest)) if attrs::lookup(base).is_some() => {
            let f = attrs::lookup(base).unwrap_or(Field::Type);
            let path = &rest[..rest.len().saturating_sub(1)];
            StrOperand::Path(f, path.into())
        }
        _ => match attrs::lookup(text) {
            Some(f) => StrOperand::Field(f),
            None => StrOperand::Lit(trim_bounding_quotes(text).into()),
        },
    };
    match &op {
        StrOperand::Field(f) | StrOperand::Path(f, _) if foldable(*f, zero.kind) => {
            let mut sc = crate::ir::Scratch::new();
            StrOperand::Lit(crate::ir::operand_value(zero, &op, &mut sc).into())
        }
        _ => op,
    }
}

fn int_operand(text: &str, zero: &Rec<'_>) -> IntOperand {
    match attrs::lookup(text) {
        Some(f) if matches!(f.value_type(), ValueType::Int | ValueType::IntBool) => {
            if foldable(f, zero.kind) {
                IntOperand::Lit(zero.int_value(f))
            } else {
                IntOperand::Field(f)
            }
        }
        _ => IntOperand::Lit(go_parse_int(text).unwrap_or(0)),
    }
}

fn dedup(pieces: Vec<&str>) -> Vec<Box<str>> {
    let mut out: Vec<Box<str>> = Vec::new();
    for p in pieces {
        if !out.iter().any(|o| &**o == p) {
            out.push(p.into());
        }
    }
    out
}

/// Merges the terms of one `or` that compare the same operand with the same operator
/// (`a startswith X or a startswith Y` is `a startswith (X, Y)`; `sf.opflags = A or
/// sf.opflags = B` one mask), and, with `negated`, the terms of one `and` that are such
/// comparisons negated (`not a = X and not a = Y` is `not a in (X, Y)`). Exact, because
/// every matcher holds when any piece of the value matches any literal; the value is then
/// read and scanned once instead of once per term. A merged term takes the place of the
/// first term of its group.
fn merge_matchers(nodes: Vec<Node>, kind: RecordKind, negated: bool) -> Vec<Node> {
    struct Group {
        operand: StrOperand,
        op: StrOp,
        pieces: Vec<Box<str>>,
        at: usize,
        terms: usize,
    }
    fn as_match(n: &Node, negated: bool) -> Option<(&StrOperand, &Matcher)> {
        let t = match (n, negated) {
            (Node::Test(t), false) => t,
            (Node::Not(inner), true) => match &**inner {
                Node::Test(t) => t,
                _ => return None,
            },
            _ => return None,
        };
        match &**t {
            Test::Match(o, m) => Some((o, m)),
            _ => None,
        }
    }
    let mut out: Vec<Node> = Vec::with_capacity(nodes.len());
    let mut groups: Vec<Group> = Vec::new();
    let mut flags: Option<(usize, i32, bool, usize)> = None;
    for n in nodes {
        if let Some((o, m)) = as_match(&n, negated) {
            let (op, pieces) = m.parts();
            if let Some(g) = groups.iter_mut().find(|g| g.operand == *o && g.op == op) {
                g.pieces.extend(pieces.into_iter().map(Box::from));
                g.terms += 1;
                continue;
            }
            groups.push(Group {
                operand: o.clone(),
                op,
                pieces: pieces.into_iter().map(Box::from).collect(),
                at: out.len(),
                terms: 1,
            });
        } else if !negated && let Node::Flags { mask, none } = n {
            match &mut flags {
                Some((_, m, o, terms)) => {
                    *m |= mask;
                    *o |= none;
                    *terms += 1;
                    continue;
                }
                None => flags = Some((out.len(), mask, none, 1)),
            }
        }
        out.push(n);
    }
    for g in groups.into_iter().filter(|g| g.terms > 1) {
        let node = matcher(
            g.operand,
            g.op,
            g.pieces.iter().map(|p| &**p).collect(),
            kind,
        );
        out[g.at] = if negated {
            Node::Not(Box::new(node))
        } else {
            node
        };
    }
    if let Some((at, mask, none, terms)) = flags
        && terms > 1
    {
        out[at] = Node::Flags { mask, none };
    }
    out
}

/// `lhs op any-of pieces`, `lhs` not a literal.
fn matcher(lhs: StrOperand, op: StrOp, pieces: Vec<&str>, kind: RecordKind) -> Node {
    if pieces.is_empty() {
        return Node::Const(false);
    }
    let test = |t: Test| Node::Test(Box::new(t));
    match op {
        StrOp::Eq => {
            if lhs == StrOperand::Field(Field::OpFlags) {
                let mut mask = 0;
                let mut none = false;
                for p in &pieces {
                    match attrs::op_flag_bit(p, kind) {
                        Some(bit) => mask |= bit,
                        None if p.is_empty() => none = true,
                        None => {}
                    }
                }
                if mask == 0 && !none {
                    return Node::Const(false);
                }
                return Node::Flags { mask, none };
            }
            if let StrOperand::Field(f) = lhs
                && matches!(
                    f.value_type(),
                    ValueType::Bool | ValueType::IntBool | ValueType::ParentBool
                )
            {
                let has = |t: &str| pieces.contains(&t);
                return test(Test::Bool {
                    field: f,
                    if_true: has("true"),
                    if_false: has("false"),
                    if_no_parent: f.value_type() == ValueType::ParentBool && has("0"),
                });
            }
            if lhs == StrOperand::Field(Field::OpenFlags) && !foldable(Field::OpenFlags, kind) {
                let masks: Vec<i32> = pieces
                    .iter()
                    .filter_map(|p| attrs::open_flag_bits(p))
                    .collect();
                let none = pieces.contains(&"NONE");
                if masks.is_empty() && !none {
                    return Node::Const(false);
                }
                return test(Test::OpenFlags {
                    masks: masks.into(),
                    none,
                });
            }
            if let StrOperand::Field(f) = lhs
                && f.value_type() == ValueType::Int
            {
                let vals: Vec<i64> = pieces
                    .iter()
                    .filter_map(|p| p.parse::<i64>().ok().filter(|v| v.to_string() == *p))
                    .collect();
                if vals.is_empty() {
                    return Node::Const(false);
                }
                return test(Test::IntIn(f, vals.into()));
            }
            test(Test::Match(
                lhs,
                Box::new(Matcher::Eq(PieceSet::new(dedup(pieces)))),
            ))
        }
        _ if pieces.iter().any(|p| p.is_empty()) => Node::Const(true),
        StrOp::Contains => test(Test::Match(
            lhs,
            Box::new(Matcher::Contains(Finder::new(&dedup(pieces)))),
        )),
        StrOp::IContains => {
            let lower: Vec<String> = pieces.iter().map(|p| p.to_lowercase()).collect();
            let lower = dedup(lower.iter().map(String::as_str).collect());
            test(Test::Match(
                lhs,
                Box::new(Matcher::IContains(Finder::new(&lower))),
            ))
        }
        StrOp::StartsWith => test(Test::Match(
            lhs,
            Box::new(Matcher::StartsWith(dedup(pieces).into())),
        )),
        StrOp::EndsWith => test(Test::Match(
            lhs,
            Box::new(Matcher::EndsWith(dedup(pieces).into())),
        )),
    }
}

fn str_op(op: BinOp) -> Option<StrOp> {
    Some(match op {
        BinOp::Eq | BinOp::Neq => StrOp::Eq,
        BinOp::Contains => StrOp::Contains,
        BinOp::IContains => StrOp::IContains,
        BinOp::StartsWith => StrOp::StartsWith,
        BinOp::EndsWith => StrOp::EndsWith,
        _ => return None,
    })
}

/// Lowers a resolved condition for the record type of `zero` (a record of that type with
/// every field zero, for folding).
fn lower(e: &RExpr, zero: &Rec<'_>) -> Node {
    match e {
        RExpr::Const(b) => Node::Const(*b),
        RExpr::Any(v) => {
            let mut out = Vec::new();
            for n in v.iter().map(|x| lower(x, zero)) {
                match n {
                    Node::Const(true) => return Node::Const(true),
                    Node::Const(false) => {}
                    n => out.push(n),
                }
            }
            let mut out = merge_matchers(out, zero.kind, false);
            match out.len() {
                0 => Node::Const(false),
                1 => out.pop().unwrap_or(Node::Const(false)),
                _ => Node::Or(out.into()),
            }
        }
        RExpr::All(v) => {
            let mut out = Vec::new();
            for n in v.iter().map(|x| lower(x, zero)) {
                match n {
                    Node::Const(false) => return Node::Const(false),
                    Node::Const(true) => {}
                    n => out.push(n),
                }
            }
            let mut out = merge_matchers(out, zero.kind, true);
            match out.len() {
                0 => Node::Const(true),
                1 => out.pop().unwrap_or(Node::Const(true)),
                _ => Node::And(out.into()),
            }
        }
        RExpr::Not(n) => match lower(n, zero) {
            Node::Const(b) => Node::Const(!b),
            n => Node::Not(Box::new(n)),
        },
        RExpr::Exists(text) => match attrs::lookup(text) {
            None => Node::Const(true),
            Some(f) if foldable(f, zero.kind) => Node::Const(zero.exists(f, &mut String::new())),
            Some(f) => Node::Test(Box::new(Test::Exists(f))),
        },
        RExpr::Bin(l, op, r) => {
            let cmp = match op {
                BinOp::Lt => Some(Cmp::Lt),
                BinOp::Le => Some(Cmp::Le),
                BinOp::Gt => Some(Cmp::Gt),
                BinOp::Ge => Some(Cmp::Ge),
                _ => None,
            };
            if let Some(c) = cmp {
                let (a, b) = (int_operand(l, zero), int_operand(r, zero));
                return match (a, b) {
                    (IntOperand::Lit(x), IntOperand::Lit(y)) => Node::Const(c.apply(x, y)),
                    _ => Node::Test(Box::new(Test::Int(a, c, b))),
                };
            }
            let sop = str_op(*op).unwrap_or(StrOp::Eq);
            let (a, b) = (str_operand(l, zero), str_operand(r, zero));
            let node = match (&a, &b) {
                (StrOperand::Lit(x), StrOperand::Lit(y)) => {
                    Node::Const(crate::ir::compare_str(x, y, sop))
                }
                (_, StrOperand::Lit(y)) => {
                    let y = y.clone();
                    matcher(a, sop, y.split(',').collect(), zero.kind)
                }
                _ => Node::Test(Box::new(Test::Dyn(a, sop, b))),
            };
            if *op == BinOp::Neq {
                match node {
                    Node::Const(b) => Node::Const(!b),
                    n => Node::Not(Box::new(n)),
                }
            } else {
                node
            }
        }
        RExpr::List(l, op, items) => {
            let sop = match op {
                ListOp::In => StrOp::Eq,
                ListOp::PMatch => StrOp::Contains,
            };
            let pieces: Vec<&str> = items.iter().flat_map(|i| i.split(',')).collect();
            match str_operand(l, zero) {
                StrOperand::Lit(x) => {
                    Node::Const(items.iter().any(|i| crate::ir::compare_str(&x, i, sop)))
                }
                a => matcher(a, sop, pieces, zero.kind),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_numbers_and_flags() {
        assert_eq!(go_parse_int("+5"), Some(5));
        assert_eq!(go_parse_int("-12"), Some(-12));
        assert_eq!(go_parse_int("1.5"), None);
        assert_eq!(go_parse_int("\"5\""), None);
        assert_eq!(go_parse_bool("True"), Some(true));
        assert_eq!(go_parse_bool("yes"), None);
        assert_eq!(priority("WARNING"), Some(2));
        assert_eq!(priority("alert"), None);
        assert_eq!(priority("Emergency"), Some(3));
    }
}
