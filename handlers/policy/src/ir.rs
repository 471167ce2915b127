//! The compiled form of a condition for one record type, and its evaluation.
//!
//! Every string comparison of the reference splits both sides on `,` and holds if any pair
//! of pieces does (`compareStr`). Literal sides are split once, here, when compiling; an
//! attribute's value is split (or scanned) when evaluating. `in` and `pmatch` hold if the
//! value matches any piece of any item (`FoldAny`): `in` lists are hash sets, `pmatch` lists
//! and multi-piece `contains` one Aho-Corasick automaton (a piece without `,` cannot match
//! across a `,` of the value, so the automaton runs over the whole value). Values are read
//! into reused buffers: evaluating allocates nothing once the buffers have grown.

use aho_corasick::AhoCorasick;
use handler_sdk::model::{Oid, RecordKind};
use rustc_hash::FxHashSet;

use crate::attrs::{Field, NAMED_OP_FLAGS, Rec};

/// A string operand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StrOperand {
    /// A literal (bounding quotes removed).
    Lit(Box<str>),
    /// An attribute.
    Field(Field),
    /// An attribute with a JSON-path suffix.
    Path(Field, Box<str>),
}

/// An integer operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntOperand {
    /// A literal (0 for text that is not a decimal number, as the reference's `MapInt`).
    Lit(i64),
    /// A numeric attribute.
    Field(Field),
}

/// A string operator (`!=` is `not =`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrOp {
    /// `=`, `in`.
    Eq,
    /// `contains`, `pmatch`.
    Contains,
    /// `icontains`.
    IContains,
    /// `startswith`.
    StartsWith,
    /// `endswith`.
    EndsWith,
}

/// An integer comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
}

impl Cmp {
    /// Applies the comparison.
    pub fn apply(self, l: i64, r: i64) -> bool {
        match self {
            Cmp::Lt => l < r,
            Cmp::Le => l <= r,
            Cmp::Gt => l > r,
            Cmp::Ge => l >= r,
        }
    }
}

/// The reference's `compareStr`: split both sides on `,`, true if any pair matches.
pub fn compare_str(l: &str, r: &str, op: StrOp) -> bool {
    l.split(',')
        .any(|a| r.split(',').any(|b| piece_matches(a, b, op)))
}

fn piece_matches(a: &str, b: &str, op: StrOp) -> bool {
    match op {
        StrOp::Eq => a == b,
        StrOp::Contains => a.contains(b),
        StrOp::IContains => a.to_lowercase().contains(&b.to_lowercase()),
        StrOp::StartsWith => a.starts_with(b),
        StrOp::EndsWith => a.ends_with(b),
    }
}

/// A set of literal pieces compared for equality.
#[derive(Debug, Clone)]
pub enum PieceSet {
    /// A few: compared one by one.
    Few(Box<[Box<str>]>),
    /// Many: hashed.
    Many(FxHashSet<Box<str>>),
}

impl PieceSet {
    /// The set of `pieces`.
    pub fn new(pieces: Vec<Box<str>>) -> Self {
        if pieces.len() <= 6 {
            PieceSet::Few(pieces.into())
        } else {
            PieceSet::Many(pieces.into_iter().collect())
        }
    }

    fn contains(&self, s: &str) -> bool {
        match self {
            PieceSet::Few(v) => v.iter().any(|p| &**p == s),
            PieceSet::Many(h) => h.contains(s),
        }
    }
}

/// Substring search for one or many literal pieces (none of them empty: an empty piece is
/// contained in everything and is folded away when compiling).
#[derive(Debug, Clone)]
pub enum Finder {
    /// One piece.
    One(Box<memchr::memmem::Finder<'static>>),
    /// Many pieces, one automaton (and the pieces it was built from).
    Many(AhoCorasick, Box<[Box<str>]>),
}

impl Finder {
    /// A finder of any of `pieces` (non-empty, non-empty pieces).
    ///
    /// # Panics
    /// Never for pieces of policy files (an automaton of that size always builds).
    pub fn new(pieces: &[Box<str>]) -> Self {
        if pieces.len() == 1 {
            Finder::One(Box::new(
                memchr::memmem::Finder::new(pieces[0].as_bytes()).into_owned(),
            ))
        } else {
            Finder::Many(
                AhoCorasick::new(pieces.iter().map(|p| p.as_bytes()))
                    .expect("an Aho-Corasick automaton of policy literals"),
                pieces.into(),
            )
        }
    }

    /// The pieces searched for.
    pub fn pieces(&self) -> Vec<&str> {
        match self {
            // The needle was made from a `&str`.
            Finder::One(f) => vec![std::str::from_utf8(f.needle()).unwrap_or_default()],
            Finder::Many(_, p) => p.iter().map(|p| &**p).collect(),
        }
    }

    fn is_match(&self, s: &str) -> bool {
        match self {
            Finder::One(f) => f.find(s.as_bytes()).is_some(),
            Finder::Many(ac, _) => ac.is_match(s),
        }
    }
}

/// A comparison of a value with literal pieces.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// A piece of the value equals one of these.
    Eq(PieceSet),
    /// The value contains one of these.
    Contains(Finder),
    /// The value, lower-cased, contains one of these (lower-cased).
    IContains(Finder),
    /// A piece of the value starts with one of these.
    StartsWith(Box<[Box<str>]>),
    /// A piece of the value ends with one of these.
    EndsWith(Box<[Box<str>]>),
}

impl Matcher {
    /// The operator and the literal pieces (lower-cased for [`Matcher::IContains`]): what
    /// the matcher was built from, for merging the matchers of one operand.
    pub fn parts(&self) -> (StrOp, Vec<&str>) {
        match self {
            Matcher::Eq(PieceSet::Few(v)) => (StrOp::Eq, v.iter().map(|p| &**p).collect()),
            Matcher::Eq(PieceSet::Many(h)) => (StrOp::Eq, h.iter().map(|p| &**p).collect()),
            Matcher::Contains(f) => (StrOp::Contains, f.pieces()),
            Matcher::IContains(f) => (StrOp::IContains, f.pieces()),
            Matcher::StartsWith(v) => (StrOp::StartsWith, v.iter().map(|p| &**p).collect()),
            Matcher::EndsWith(v) => (StrOp::EndsWith, v.iter().map(|p| &**p).collect()),
        }
    }

    fn matches(&self, v: &str, lower: &mut String) -> bool {
        match self {
            Matcher::Eq(set) => {
                if !v.as_bytes().contains(&b',') {
                    return set.contains(v);
                }
                v.split(',').any(|p| set.contains(p))
            }
            Matcher::Contains(f) => f.is_match(v),
            Matcher::IContains(f) => {
                if v.bytes().any(|b| b.is_ascii_uppercase() || !b.is_ascii()) {
                    lower.clear();
                    if v.is_ascii() {
                        lower.push_str(v);
                        lower.make_ascii_lowercase();
                    } else {
                        lower.push_str(&v.to_lowercase());
                    }
                    f.is_match(lower)
                } else {
                    f.is_match(v)
                }
            }
            Matcher::StartsWith(ps) => v
                .split(',')
                .any(|piece| ps.iter().any(|p| piece.starts_with(&**p))),
            Matcher::EndsWith(ps) => v
                .split(',')
                .any(|piece| ps.iter().any(|p| piece.ends_with(&**p))),
        }
    }
}

/// One test of a record.
#[derive(Debug, Clone)]
pub enum Test {
    /// An attribute compared with literal pieces.
    Match(StrOperand, Box<Matcher>),
    /// Two operands compared, at least one an attribute.
    Dyn(StrOperand, StrOp, StrOperand),
    /// An integer comparison.
    Int(IntOperand, Cmp, IntOperand),
    /// A numeric attribute's decimal text equals one of these numbers.
    IntIn(Field, Box<[i64]>),
    /// The attribute has a non-zero value.
    Exists(Field),
    /// A boolean attribute (`sf.file.is_open_write`, `sf.proc.tty`, `sf.pproc.tty`, ...)
    /// compared with literals: the outcome for each of its texts, decided when compiling.
    Bool {
        /// The attribute.
        field: Field,
        /// Whether the text `true` is one of the pieces.
        if_true: bool,
        /// Whether `false` is.
        if_false: bool,
        /// Whether `0` is (a parent's flag without a parent reads `0`).
        if_no_parent: bool,
    },
    /// `sf.file.openflags = X` / `in (...)`: one of the flags named is set (all bits of
    /// `masks[i]`), or, with `none`, there is no flag (the name `NONE`).
    OpenFlags {
        /// The bits of each name.
        masks: Box<[i32]>,
        /// Whether `NONE` was one of the pieces.
        none: bool,
    },
    /// A test that occurs more than once in the program of a record type: evaluated once
    /// per record, the outcome kept in [`Scratch`] slot `slot`.
    Shared {
        /// The slot.
        slot: u32,
        /// The test.
        test: Box<Test>,
    },
}

/// A compiled condition.
#[derive(Debug, Clone)]
pub enum Node {
    /// Known when compiling.
    Const(bool),
    /// All of.
    And(Box<[Node]>),
    /// Any of.
    Or(Box<[Node]>),
    /// Not.
    Not(Box<Node>),
    /// `sf.opflags = X` / `in (...)`: one of the bits of `mask` is set, or, with `none`, no
    /// named bit is (the empty name). A node of its own, not a [`Test`]: most rules start
    /// with it, and it is read without following a pointer.
    Flags {
        /// The bits named.
        mask: i32,
        /// Whether the empty name was one of the pieces.
        none: bool,
    },
    /// A test.
    Test(Box<Test>),
    /// A condition on the record's process, ancestors, container, pod, header and record
    /// type only ([`Node::per_process`]): evaluated once per process and entity-table epoch,
    /// its outcome kept in the [`Scratch`] under `slot` ([`Scratch::next_process`]).
    PerProcess {
        /// Index among the program's per-process slots.
        slot: u32,
        /// The condition.
        node: Box<Node>,
    },
}

/// Reused buffers of an evaluation, and the outcomes of [`Test::Shared`] tests for the
/// record being evaluated.
#[derive(Debug, Default)]
pub struct Scratch {
    a: String,
    b: String,
    lower: String,
    path: String,
    /// The record number of the current record ([`Scratch::next_record`]).
    record: u32,
    /// Per slot: the record number its outcome is of, and the outcome.
    shared: Vec<(u32, bool)>,
    /// The entity-table epoch the per-process outcomes are of.
    memo_epoch: u64,
    /// Per (process, record type): where its per-process outcomes start in `memo_outcomes`.
    memo: rustc_hash::FxHashMap<(Option<Oid>, RecordKind), usize>,
    /// Per-process outcomes: 0 not known yet, 1 false, 2 true.
    memo_outcomes: Vec<u8>,
    /// Where the current record's process's outcomes start.
    memo_base: usize,
}

impl Scratch {
    /// The most per-process outcomes kept before they are all forgotten (a bound on memory,
    /// reached only by streams with very many processes in one epoch).
    pub const MAX_PER_PROCESS_OUTCOMES: usize = 4 << 20;

    /// Empty buffers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Selects the per-process outcomes ([`Node::PerProcess`]) of `process` (the record's
    /// resolved process, `None` when the tables do not know it) for records of type `kind`,
    /// with `slots` of them, in entity-table `epoch`: a new epoch forgets every outcome.
    /// The outcomes belong to one compiled program: a new program needs a new `Scratch`.
    pub fn next_process(
        &mut self,
        process: Option<Oid>,
        kind: RecordKind,
        epoch: u64,
        slots: usize,
    ) {
        if self.memo_epoch != epoch || self.memo_outcomes.len() > Self::MAX_PER_PROCESS_OUTCOMES {
            self.memo_epoch = epoch;
            self.memo.clear();
            self.memo_outcomes.clear();
        }
        let outcomes = &mut self.memo_outcomes;
        self.memo_base = *self.memo.entry((process, kind)).or_insert_with(|| {
            let base = outcomes.len();
            outcomes.resize(base + slots, 0);
            base
        });
    }

    /// Starts the evaluation of a record whose program has `slots` shared tests: outcomes
    /// kept for the previous record no longer count.
    pub fn next_record(&mut self, slots: usize) {
        if self.shared.len() < slots {
            self.shared.resize(slots, (0, false));
        }
        self.record = self.record.wrapping_add(1);
        if self.record == 0 {
            // After 2^32 records: forget every stamp, so none can match by accident.
            self.shared.iter_mut().for_each(|s| s.0 = 0);
            self.record = 1;
        }
    }
}

fn operand<'b>(
    rec: &'b Rec<'_>,
    o: &'b StrOperand,
    buf: &'b mut String,
    path: &'b mut String,
) -> &'b str {
    match o {
        StrOperand::Lit(s) => s,
        StrOperand::Field(f) => rec.str_value(*f, buf),
        StrOperand::Path(f, p) => {
            if f.value_type() != crate::attrs::ValueType::Str {
                return rec.str_value(*f, buf);
            }
            let raw = rec.raw_str(*f, buf);
            if raw.is_empty() || p.is_empty() {
                return crate::parser::trim_bounding_quotes(raw);
            }
            crate::jsonpath::get(raw, p, path);
            path
        }
    }
}

fn int_operand(rec: &Rec<'_>, o: IntOperand) -> i64 {
    match o {
        IntOperand::Lit(v) => v,
        IntOperand::Field(f) => rec.int_value(f),
    }
}

impl Node {
    /// Evaluates the condition on `rec`.
    pub fn eval(&self, rec: &Rec<'_>, sc: &mut Scratch) -> bool {
        match self {
            Node::Const(b) => *b,
            Node::And(all) => all.iter().all(|n| n.eval(rec, sc)),
            Node::Or(any) => any.iter().any(|n| n.eval(rec, sc)),
            Node::Not(n) => !n.eval(rec, sc),
            Node::Flags { mask, none } => {
                let flags = rec.ev.op_flags;
                flags & mask != 0 || (*none && flags & NAMED_OP_FLAGS == 0)
            }
            Node::Test(t) => t.eval(rec, sc),
            Node::PerProcess { slot, node } => {
                let i = sc.memo_base + *slot as usize;
                match sc.memo_outcomes[i] {
                    1 => false,
                    2 => true,
                    _ => {
                        let outcome = node.eval(rec, sc);
                        sc.memo_outcomes[i] = 1 + u8::from(outcome);
                        outcome
                    }
                }
            }
        }
    }

    /// Whether the condition's outcome is the same for every record of type `kind` whose
    /// process reference resolves to the same process in one entity-table epoch: every test
    /// reads only attributes that [`Field::per_process`] says so of.
    pub fn per_process(&self, kind: RecordKind) -> bool {
        match self {
            Node::Const(_) => true,
            Node::And(v) | Node::Or(v) => v.iter().all(|n| n.per_process(kind)),
            Node::Not(n) => n.per_process(kind),
            Node::Flags { .. } => false,
            Node::Test(t) => t.per_process(kind),
            Node::PerProcess { .. } => true,
        }
    }

    /// Whether the condition reads a string attribute (what a per-process outcome saves).
    fn reads_strings(&self) -> bool {
        match self {
            Node::And(v) | Node::Or(v) => v.iter().any(Node::reads_strings),
            Node::Not(n) => n.reads_strings(),
            Node::Test(t) => t.worth_sharing(),
            Node::Const(_) | Node::Flags { .. } | Node::PerProcess { .. } => false,
        }
    }

    /// opFlags bits of which at least one must be set for the condition to hold, or `None`
    /// when it can hold whatever the opFlags (used to skip rules without evaluating them).
    pub fn required_op_flags(&self) -> Option<i32> {
        match self {
            Node::Const(false) => Some(0),
            Node::Flags { mask, none: false } => Some(*mask),
            // Every conjunct must hold: the most selective one is a requirement.
            Node::And(all) => all
                .iter()
                .filter_map(Node::required_op_flags)
                .min_by_key(|m| m.count_ones()),
            // One alternative must hold: each must be restricted, any of them will do.
            Node::Or(any) => any
                .iter()
                .map(Node::required_op_flags)
                .try_fold(0, |acc, m| m.map(|m| acc | m)),
            Node::PerProcess { node, .. } => node.required_op_flags(),
            _ => None,
        }
    }

    /// Number of tests, for statistics.
    pub fn size(&self) -> usize {
        match self {
            Node::Const(_) => 0,
            Node::And(v) | Node::Or(v) => v.iter().map(Node::size).sum(),
            Node::Not(n) => n.size(),
            Node::Test(_) | Node::Flags { .. } => 1,
            Node::PerProcess { node, .. } => node.size(),
        }
    }
}

impl Test {
    fn eval(&self, rec: &Rec<'_>, sc: &mut Scratch) -> bool {
        match self {
            Test::Match(o, m) => {
                let Scratch { a, lower, path, .. } = sc;
                let v = operand(rec, o, a, path);
                m.matches(v, lower)
            }
            Test::Dyn(l, op, r) => {
                let Scratch {
                    a, b, path, lower, ..
                } = sc;
                let lv = operand(rec, l, a, path);
                // The second operand needs its own path buffer.
                let rv = operand(rec, r, b, lower);
                compare_str(lv, rv, *op)
            }
            Test::Int(l, c, r) => c.apply(int_operand(rec, *l), int_operand(rec, *r)),
            Test::IntIn(f, vals) => {
                let v = rec.int_value(*f);
                vals.contains(&v)
            }
            Test::Exists(f) => rec.exists(*f, &mut sc.a),
            Test::Bool {
                field,
                if_true,
                if_false,
                if_no_parent,
            } => match rec.bool_text(*field) {
                Some(true) => *if_true,
                Some(false) => *if_false,
                None => *if_no_parent,
            },
            Test::OpenFlags { masks, none } => {
                let flags = rec.ev.open_flags;
                (*none && flags == 0) || masks.iter().any(|m| flags & m == *m)
            }
            Test::Shared { slot, test } => {
                let i = *slot as usize;
                let (stamp, outcome) = sc.shared[i];
                if stamp == sc.record {
                    return outcome;
                }
                let outcome = test.eval(rec, sc);
                sc.shared[i] = (sc.record, outcome);
                outcome
            }
        }
    }

    /// See [`Node::per_process`].
    fn per_process(&self, kind: RecordKind) -> bool {
        let str_op = |o: &StrOperand| match o {
            StrOperand::Lit(_) => true,
            StrOperand::Field(f) | StrOperand::Path(f, _) => f.per_process(kind),
        };
        let int_op = |o: &IntOperand| match o {
            IntOperand::Lit(_) => true,
            IntOperand::Field(f) => f.per_process(kind),
        };
        match self {
            Test::Match(o, _) => str_op(o),
            Test::Dyn(a, _, b) => str_op(a) && str_op(b),
            Test::Int(a, _, b) => int_op(a) && int_op(b),
            Test::IntIn(f, _) | Test::Exists(f) | Test::Bool { field: f, .. } => {
                f.per_process(kind)
            }
            Test::OpenFlags { .. } => false,
            Test::Shared { test, .. } => test.per_process(kind),
        }
    }

    /// Whether evaluating the test costs more than remembering its outcome: it reads a
    /// string attribute.
    fn worth_sharing(&self) -> bool {
        matches!(self, Test::Match(..) | Test::Dyn(..))
            || matches!(self, Test::Exists(f) if f.value_type() == crate::attrs::ValueType::Str)
    }
}

/// Makes every test that occurs more than once in `nodes` (the filters and rules of one
/// record type) a [`Test::Shared`] one, so that it is evaluated once per record however
/// many rules and macros use it. Tests are the same when their compiled forms print the
/// same. Returns the number of slots (for [`Scratch::next_record`]).
pub fn share_tests(mut nodes: Vec<&mut Node>) -> usize {
    fn visit(n: &mut Node, f: &mut impl FnMut(&mut Box<Test>)) {
        match n {
            Node::And(v) | Node::Or(v) => v.iter_mut().for_each(|c| visit(c, f)),
            Node::Not(c) | Node::PerProcess { node: c, .. } => visit(c, f),
            Node::Test(t) => f(t),
            Node::Const(_) | Node::Flags { .. } => {}
        }
    }
    let mut count: rustc_hash::FxHashMap<String, (usize, Option<u32>)> = Default::default();
    for n in nodes.iter_mut() {
        visit(n, &mut |t| {
            if t.worth_sharing() {
                count.entry(format!("{t:?}")).or_default().0 += 1;
            }
        });
    }
    let mut slots = 0u32;
    for n in nodes.iter_mut() {
        visit(n, &mut |t| {
            if !t.worth_sharing() {
                return;
            }
            let Some((uses, slot)) = count.get_mut(&format!("{t:?}")) else {
                return;
            };
            if *uses < 2 {
                return;
            }
            let slot = *slot.get_or_insert_with(|| {
                slots += 1;
                slots - 1
            });
            let test = std::mem::replace(t, Box::new(Test::Exists(Field::Type)));
            **t = Test::Shared { slot, test };
        });
    }
    slots as usize
}

/// The value of operand `o` on `rec`, owned (for folding when compiling).
pub(crate) fn operand_value(rec: &Rec<'_>, o: &StrOperand, sc: &mut Scratch) -> String {
    let Scratch { a, path, .. } = sc;
    operand(rec, o, a, path).to_owned()
}

/// Makes every largest sub-condition of `nodes` (the filters and rules of records of type
/// `kind`) that depends on the process only ([`Node::per_process`]) and reads a string
/// attribute a [`Node::PerProcess`] one, so that it is evaluated once per process and epoch
/// instead of once per record. Equal sub-conditions (same compiled form) share a slot.
/// Returns the number of slots (for [`Scratch::next_process`]).
pub fn per_process_conditions(nodes: Vec<&mut Node>, kind: RecordKind) -> usize {
    fn visit(n: &mut Node, kind: RecordKind, slots: &mut rustc_hash::FxHashMap<String, u32>) {
        if !matches!(n, Node::PerProcess { .. }) && n.per_process(kind) && n.reads_strings() {
            let next = slots.len() as u32;
            let slot = *slots.entry(format!("{n:?}")).or_insert(next);
            let node = std::mem::replace(n, Node::Const(false));
            *n = Node::PerProcess {
                slot,
                node: Box::new(node),
            };
            return;
        }
        match n {
            Node::And(v) | Node::Or(v) => v.iter_mut().for_each(|c| visit(c, kind, slots)),
            Node::Not(c) => visit(c, kind, slots),
            Node::Const(_) | Node::Flags { .. } | Node::Test(_) | Node::PerProcess { .. } => {}
        }
    }
    let mut slots = Default::default();
    for n in nodes {
        visit(n, kind, &mut slots);
    }
    slots.len()
}
