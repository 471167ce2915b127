//! Schema resolution: each file's writer schema against our one reader schema
//! (`resources/schemas/sysflow-reader.avsc`: the SysFlow schema 5 with a default for every
//! field and the aliases older writers need), by the rules of the Avro specification
//! ("Schema Resolution"), built once per file (or socket connection) into a decode plan.
//!
//! # The rules
//!
//! - **Records** match by unqualified name or by one of the reader record's aliases. Their
//!   fields match **by name**, or by one of the reader field's aliases; a reader field the
//!   writer lacks gets the reader's **default**; a writer field the reader lacks is
//!   **skipped**.
//! - **Enums** match by name or alias (`ActionType` is an alias of `SFObjectState`), their
//!   values **by symbol**: a writer symbol the reader lacks reads as the reader enum's default
//!   (`K8S_UNKNOWN`, `K8S_COMPONENT_UNKNOWN`) or, without one, is a field problem of the datum
//!   that holds it (the datum is skipped). **Fixed** types match by name and size.
//! - **Promotions**: `int` is read where the reader has a `long`, `bytes` where it has a
//!   `string`. Nothing else changes type (a `long` is never narrowed to an `int`).
//! - **Unions**: a writer union is resolved branch by branch (a branch that cannot be read is
//!   a field problem of the datums that use it); a writer value read by a reader union goes to
//!   the first reader branch it matches.
//! - **The `rec` union's branches** go by name *and shape*: the earliest layouts name their
//!   process events `sysflow.flow.ProcessFlow`, a name that is today a real process flow, so
//!   the reader's `ProcessEvent` has that name as an alias, and a writer branch is resolved
//!   against every reader record it matches by name or alias; the one that takes the most
//!   writer fields wins, then the one that skips the fewest, then the one of the same name.
//!   (The specification takes the first match; that would read every process flow as an
//!   event.)
//! - **Renamed fields whose meaning changed** are one entry each of [`RENAMED`]: the
//!   January-2019 layout's `Process.type` (enum `ActionType`) is `state`, its process events'
//!   `type` (enum `EventType`: `CLONE`, `EXEC`, `EXIT`) is `opFlags` (`OP_CLONE`, `OP_EXEC`,
//!   `OP_EXIT`). An entry names the writer's enum too, so that no other `type` is taken.
//! - A writer field whose type cannot be read as its reader field's (the reader's default is
//!   used instead) is **reported once per file** ([`Unresolved`]), not once per record.

use std::sync::OnceLock;

use serde_json::Value as Json;
use sf_processor::model::{Foid, op_flags};

use super::decode::{Slots, V};
use super::exact;
use super::plan::{self, BranchPlan, Collect, Read, RecKind, RecPlan, Step, TopPlan};
use super::schema::{Def, FieldDef, Schema, Ty, simple};
use crate::branch::Branch;
use crate::error::Unresolved;

/// The reader schema's JSON text.
pub const READER_SCHEMA: &str = include_str!("../../../resources/schemas/sysflow-reader.avsc");

/// How the value of a renamed field is converted.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Convert {
    /// By the ordinary rules (the writer's enum resolves against the reader's by symbol).
    Resolve,
    /// A writer enum read as an `int`: the value of each symbol.
    Flags(&'static [(&'static str, i32)]),
}

/// A reader field that an older writer called otherwise, with another meaning or type.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Renamed {
    /// The reader record.
    pub(crate) record: RecKind,
    /// The reader field.
    pub(crate) field: &'static str,
    /// The writer's field name.
    pub(crate) writer_field: &'static str,
    /// The writer field's type: an enum of this (unqualified) name.
    pub(crate) writer_enum: &'static str,
    /// How its value is read.
    pub(crate) convert: Convert,
}

/// The renamed fields of the layouts we know (the January-2019 layout's, see `TRACES.md`).
pub(crate) const RENAMED: &[Renamed] = &[
    Renamed {
        record: RecKind::Process,
        field: "state",
        writer_field: "type",
        writer_enum: "ActionType",
        convert: Convert::Resolve,
    },
    Renamed {
        record: RecKind::ProcessEvent,
        field: "opFlags",
        writer_field: "type",
        writer_enum: "EventType",
        convert: Convert::Flags(&[
            ("CLONE", op_flags::CLONE),
            ("EXEC", op_flags::EXEC),
            ("EXIT", op_flags::EXIT),
        ]),
    },
];

/// The reader schema, parsed, with every field's default as a value.
#[derive(Debug)]
pub(crate) struct ReaderSchema {
    pub(crate) schema: Schema,
    /// The branches of its `rec` union, in order: the named type and its record.
    branches: Vec<(usize, RecKind)>,
    /// By named type: the record's kind and its fields' defaults, in slot order.
    records: Vec<Option<(RecKind, Vec<V>)>>,
}

/// The reader schema, parsed once per process.
///
/// # Errors
/// Why [`READER_SCHEMA`] does not load (a build problem the unit tests rule out).
pub(crate) fn reader_schema() -> Result<&'static ReaderSchema, String> {
    static READER: OnceLock<Result<ReaderSchema, String>> = OnceLock::new();
    READER
        .get_or_init(|| ReaderSchema::parse(READER_SCHEMA))
        .as_ref()
        .map_err(|e| format!("the reader schema does not load: {e}"))
}

/// The fields of `sysflow.SysFlow` split around `rec`, and `rec`'s union branches.
type TopFields<'s> = (&'s [FieldDef], &'s [Ty], &'s [FieldDef]);

/// Checks that `schema` is the record `sysflow.SysFlow` with a `rec` union (the words of the
/// errors name what is not).
pub(crate) fn top_fields(schema: &Schema) -> Result<TopFields<'_>, String> {
    let Ty::Named(root) = schema.root else {
        return Err(format!(
            "the writer schema is {}, not the record sysflow.SysFlow",
            schema.describe(&schema.root)
        ));
    };
    let Some(top) = schema.get(root) else {
        return Err("the writer schema's root type is undefined".to_owned());
    };
    let Def::Record(fields) = &top.def else {
        return Err(format!(
            "the writer schema is {}, not the record sysflow.SysFlow",
            schema.describe(&schema.root)
        ));
    };
    if top.fullname != "sysflow.SysFlow" && top.fullname != "SysFlow" {
        return Err(format!(
            "the writer schema is the record {}, not sysflow.SysFlow",
            top.fullname
        ));
    }
    let Some(rec_index) = fields.iter().position(|f| f.name == "rec") else {
        return Err("the record sysflow.SysFlow has no field `rec`".to_owned());
    };
    let (before, rest) = fields.split_at(rec_index);
    let Some((rec, after)) = rest.split_first() else {
        return Err("the record sysflow.SysFlow has no field `rec`".to_owned());
    };
    let Ty::Union(arms) = &rec.ty else {
        return Err(format!(
            "field `rec` of sysflow.SysFlow is {}, not a union",
            schema.describe(&rec.ty)
        ));
    };
    Ok((before, arms, after))
}

impl ReaderSchema {
    fn parse(json: &str) -> Result<ReaderSchema, String> {
        let schema = Schema::parse(json)?;
        let arms: Vec<Ty> = top_fields(&schema)?.1.to_vec();
        let mut records: Vec<Option<(RecKind, Vec<V>)>> = vec![None; schema.named.len()];
        for (i, named) in schema.named.iter().enumerate().skip(1) {
            let Def::Record(fields) = &named.def else {
                continue;
            };
            let kind = RecKind::from_name(named.simple_name())
                .ok_or_else(|| format!("record {} is no model record", named.fullname))?;
            let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
            if names != kind.fields() {
                return Err(format!(
                    "record {} has the fields {names:?}, its builder takes {:?}",
                    named.fullname,
                    kind.fields()
                ));
            }
            if let Some(slot) = records.get_mut(i) {
                *slot = Some((kind, Vec::new()));
            }
        }
        let mut reader = ReaderSchema {
            schema,
            branches: Vec::new(),
            records,
        };
        // Defaults, innermost records first (a default OID is built from OID's defaults).
        for kind in [RecKind::Oid, RecKind::Port, RecKind::Service] {
            reader.fill_defaults(kind)?;
        }
        for kind in RecKind::ALL {
            if kind.record_kind().is_some() {
                reader.fill_defaults(kind)?;
            }
        }
        let mut branches = Vec::new();
        for arm in &arms {
            let Ty::Named(i) = arm else {
                return Err("a branch of `rec` is not a record".to_owned());
            };
            let kind = reader
                .kind_of(*i)
                .ok_or_else(|| "a branch of `rec` is not a record".to_owned())?;
            if kind.record_kind().is_none() {
                return Err(format!("branch {} is no record type", kind.name()));
            }
            branches.push((*i, kind));
        }
        reader.branches = branches;
        Ok(reader)
    }

    fn kind_of(&self, named: usize) -> Option<RecKind> {
        self.records.get(named)?.as_ref().map(|(k, _)| *k)
    }

    fn index_of(&self, kind: RecKind) -> Option<usize> {
        self.records
            .iter()
            .position(|r| r.as_ref().is_some_and(|(k, _)| *k == kind))
    }

    fn fill_defaults(&mut self, kind: RecKind) -> Result<(), String> {
        let index = self
            .index_of(kind)
            .ok_or_else(|| format!("no record {}", kind.name()))?;
        let Some(Def::Record(fields)) = self.schema.get(index).map(|n| &n.def) else {
            return Err(format!("no record {}", kind.name()));
        };
        let mut values = Vec::with_capacity(fields.len());
        for f in fields {
            let json = f
                .default
                .as_ref()
                .ok_or_else(|| format!("{}.{} has no default", kind.name(), f.name))?;
            let value = self
                .default_value(&f.ty, json)
                .map_err(|e| format!("{}.{}: default {json}: {e}", kind.name(), f.name))?;
            values.push(value);
        }
        if let Some(Some((_, defaults))) = self.records.get_mut(index) {
            *defaults = values;
        }
        Ok(())
    }

    /// The value of a default (JSON, as the specification encodes defaults) of type `ty`.
    fn default_value(&self, ty: &Ty, json: &Json) -> Result<V, String> {
        let wrong = || Err("not a value of the field's type".to_owned());
        Ok(match (ty, json) {
            (Ty::Null, Json::Null) => V::Null,
            (Ty::Boolean, Json::Bool(b)) => V::Bool(*b),
            (Ty::Int, Json::Number(n)) => match n.as_i64().and_then(|n| i32::try_from(n).ok()) {
                Some(n) => V::Int(n),
                None => return wrong(),
            },
            (Ty::Long, Json::Number(n)) => match n.as_i64() {
                Some(n) => V::Long(n),
                None => return wrong(),
            },
            (Ty::String, Json::String(s)) => V::Str(s.clone()),
            // A union's default is a value of its first branch.
            (Ty::Union(arms), _) => match arms.first() {
                Some(first) => self.default_value(first, json)?,
                None => return wrong(),
            },
            (Ty::Array(items), Json::Array(values)) => {
                let values = values
                    .iter()
                    .map(|v| self.default_value(items, v))
                    .collect::<Result<Vec<_>, _>>()?;
                match self.collect_of(items) {
                    Some(Collect::Strings) => V::Strings(
                        values
                            .into_iter()
                            .map(|v| match v {
                                V::Str(s) => Ok(s),
                                _ => Err("not a string".to_owned()),
                            })
                            .collect::<Result<_, _>>()?,
                    ),
                    Some(Collect::Longs) => V::Longs(
                        values
                            .into_iter()
                            .map(|v| match v {
                                V::Long(l) => Ok(l),
                                _ => Err("not a long".to_owned()),
                            })
                            .collect::<Result<_, _>>()?,
                    ),
                    // Only empty lists of records are used as defaults.
                    Some(Collect::Services) if values.is_empty() => V::Services(Vec::new()),
                    Some(Collect::Ports) if values.is_empty() => V::Ports(Vec::new()),
                    _ => return wrong(),
                }
            }
            (Ty::Map(values), Json::Object(map)) if **values == Ty::String => {
                let mut pairs = map
                    .iter()
                    .map(|(k, v)| match v {
                        Json::String(s) => Ok((k.clone(), s.clone())),
                        _ => Err("a map value is not a string".to_owned()),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                pairs.sort();
                V::Pairs(pairs)
            }
            (Ty::Named(i), _) => match (self.schema.get(*i).map(|n| &n.def), json) {
                (Some(Def::Enum { symbols, .. }), Json::String(s)) => {
                    match symbols.iter().position(|x| x == s) {
                        Some(i) => V::Sym(u8::try_from(i).map_err(|_| "too many symbols")?),
                        None => return wrong(),
                    }
                }
                (Some(Def::Fixed(20)), Json::String(s)) => {
                    // Avro encodes a fixed default as a string of code points 0-255.
                    let bytes = s
                        .chars()
                        .map(|c| u8::try_from(u32::from(c)).ok())
                        .collect::<Option<Vec<u8>>>()
                        .and_then(|b| <[u8; 20]>::try_from(b).ok());
                    match bytes {
                        Some(id) => V::Foid(Foid(id)),
                        None => return wrong(),
                    }
                }
                (Some(Def::Record(fields)), Json::Object(map)) => {
                    let kind = self.kind_of(*i).ok_or("not a model record")?;
                    let mut slots = Slots::new();
                    for (slot, f) in fields.iter().enumerate() {
                        let v = match map.get(&f.name).or(f.default.as_ref()) {
                            Some(v) => self.default_value(&f.ty, v)?,
                            None => return Err(format!("no value for {}", f.name)),
                        };
                        slots.set(u8::try_from(slot).map_err(|_| "too many fields")?, v);
                    }
                    let s = &mut slots;
                    match kind {
                        RecKind::Oid => {
                            V::Oid(plan::build_oid(s).map_err(|f| f.problem.to_string())?)
                        }
                        RecKind::Service => V::Service(Box::new(
                            plan::build_service(s).map_err(|f| f.problem.to_string())?,
                        )),
                        RecKind::Port => V::Port(Box::new(
                            plan::build_port(s).map_err(|f| f.problem.to_string())?,
                        )),
                        _ => return wrong(),
                    }
                }
                _ => return wrong(),
            },
            _ => return wrong(),
        })
    }

    /// What an array of reader items `items` is collected into.
    fn collect_of(&self, items: &Ty) -> Option<Collect> {
        match items {
            Ty::String => Some(Collect::Strings),
            Ty::Long => Some(Collect::Longs),
            Ty::Named(i) => match self.kind_of(*i)? {
                RecKind::Service => Some(Collect::Services),
                RecKind::Port => Some(Collect::Ports),
                _ => None,
            },
            _ => None,
        }
    }

    /// The reader fields' defaults of the record at named index `i`.
    fn defaults(&self, i: usize) -> &[V] {
        self.records
            .get(i)
            .and_then(Option::as_ref)
            .map_or(&[], |(_, d)| d.as_slice())
    }
}

/// How well a writer record fits a reader record: writer fields taken, writer fields
/// skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fit {
    taken: usize,
    skipped: usize,
}

/// A writer type that cannot be read as a reader type.
#[derive(Debug)]
struct Mismatch {
    expected: String,
    found: String,
}

/// What resolution gives for one writer schema.
#[derive(Debug)]
pub(crate) struct Resolution {
    pub(crate) top: TopPlan,
    pub(crate) unresolved: Vec<Unresolved>,
}

/// Resolves the writer schema `writer` against the reader schema.
///
/// # Errors
/// Why `writer` is not a SysFlow schema (not the record `sysflow.SysFlow` with a `rec`
/// union), or why the reader schema does not load.
pub(crate) fn resolve(writer: &Schema) -> Result<Resolution, String> {
    resolve_with(writer, reader_schema()?)
}

/// [`resolve`] against another reader schema (one with the model's records).
fn resolve_with(writer: &Schema, reader: &ReaderSchema) -> Result<Resolution, String> {
    let (before, arms, after) = top_fields(writer)?;
    let mut unresolved = Vec::new();
    let mut branches = Vec::with_capacity(arms.len());
    for arm in arms {
        let (branch, notes) = branch_plan(writer, reader, arm);
        branches.push(branch);
        unresolved.extend(notes);
    }
    Ok(Resolution {
        top: TopPlan {
            before: before.iter().map(|f| f.ty.clone()).collect(),
            branches,
            after: after.iter().map(|f| f.ty.clone()).collect(),
        },
        unresolved,
    })
}

/// The plan of one branch of the writer's `rec` union: against every reader record it
/// matches by name or alias, the best fit (see the module's rules).
fn branch_plan(writer: &Schema, reader: &ReaderSchema, arm: &Ty) -> (BranchPlan, Vec<Unresolved>) {
    let record = match arm {
        Ty::Named(i) => writer.get(*i).and_then(|n| match &n.def {
            Def::Record(fields) => Some((n, fields)),
            _ => None,
        }),
        _ => None,
    };
    let unknown = |name: String| BranchPlan {
        info: Branch { name, kind: None },
        ty: arm.clone(),
        plan: None,
        layout: None,
    };
    let Some((named, fields)) = record else {
        return (unknown(writer.describe(arm)), Vec::new());
    };
    let mut best: Option<(Fit, bool, RecPlan, Vec<Unresolved>)> = None;
    for &(ri, kind) in &reader.branches {
        let Some(r) = reader.schema.get(ri) else {
            continue;
        };
        if !r.answers_to(&named.fullname) {
            continue;
        }
        let same_name = r.simple_name() == named.simple_name();
        let mut resolver = Resolver {
            writer,
            reader,
            record_type: kind.name(),
            path: Vec::new(),
            notes: Vec::new(),
        };
        let (plan, fit) = resolver.record(fields, ri, kind);
        let better = match &best {
            None => true,
            Some((b, b_same, ..)) => {
                (fit.taken, std::cmp::Reverse(fit.skipped), same_name)
                    > (b.taken, std::cmp::Reverse(b.skipped), *b_same)
            }
        };
        if better {
            best = Some((fit, same_name, plan, resolver.notes));
        }
    }
    let Some((_, _, plan, notes)) = best else {
        return (unknown(named.fullname.clone()), Vec::new());
    };
    let kind = plan.target.record_kind();
    let layout = kind.and_then(|k| exact::layout(writer, k, fields));
    (
        BranchPlan {
            info: Branch {
                name: named.fullname.clone(),
                kind,
            },
            ty: arm.clone(),
            plan: Some(plan),
            layout,
        },
        notes,
    )
}

/// Resolves the records of one branch, collecting what cannot be resolved.
struct Resolver<'a> {
    writer: &'a Schema,
    reader: &'a ReaderSchema,
    /// The reader record of the branch, for notes.
    record_type: &'static str,
    /// Writer field names from the branch's record down to the field being resolved.
    path: Vec<String>,
    notes: Vec<Unresolved>,
}

/// How a writer field was matched to a reader field.
#[derive(Debug, Clone, Copy)]
enum Via {
    Name,
    Renamed(&'static Renamed),
}

impl Resolver<'_> {
    /// The plan of writer record `fields` onto reader record `ri` (of kind `kind`).
    fn record(&mut self, fields: &[FieldDef], ri: usize, kind: RecKind) -> (RecPlan, Fit) {
        let reader = self.reader;
        let r_fields: &[FieldDef] = match reader.schema.get(ri).map(|n| &n.def) {
            Some(Def::Record(f)) => f,
            _ => &[],
        };
        let mut claimed: Vec<Option<(usize, Via)>> = vec![None; fields.len()];
        let free = |claimed: &[Option<(usize, Via)>], i: usize| {
            claimed.get(i).is_some_and(Option::is_none)
        };
        for (j, rf) in r_fields.iter().enumerate() {
            let by_name = (0..fields.len())
                .find(|&i| free(&claimed, i) && fields[i].name == rf.name)
                .or_else(|| {
                    (0..fields.len()).find(|&i| {
                        free(&claimed, i) && rf.aliases.iter().any(|a| *a == fields[i].name)
                    })
                })
                .map(|i| (i, Via::Name));
            let found = by_name.or_else(|| {
                RENAMED
                    .iter()
                    .filter(|ren| ren.record == kind && ren.field == rf.name)
                    .find_map(|ren| {
                        (0..fields.len())
                            .find(|&i| {
                                free(&claimed, i)
                                    && fields[i].name == ren.writer_field
                                    && self.is_enum_named(&fields[i].ty, ren.writer_enum)
                            })
                            .map(|i| (i, Via::Renamed(ren)))
                    })
            });
            if let Some((i, via)) = found
                && let Some(c) = claimed.get_mut(i)
            {
                *c = Some((j, via));
            }
        }
        let mut filled = vec![false; r_fields.len()];
        let mut fit = Fit {
            taken: 0,
            skipped: 0,
        };
        let mut steps = Vec::with_capacity(fields.len());
        for (field, claim) in fields.iter().zip(&claimed) {
            let resolved = claim.and_then(|(j, via)| {
                let rf = r_fields.get(j)?;
                self.path.push(field.name.clone());
                let read = match via {
                    Via::Name => self.value(&field.ty, &rf.ty),
                    Via::Renamed(ren) => self.renamed(ren, &field.ty, &rf.ty),
                };
                let read = match read {
                    Ok(read) => Some((j, read)),
                    Err(m) => {
                        self.notes.push(Unresolved {
                            record_type: self.record_type.to_owned(),
                            field: self.path.join("."),
                            expected: m.expected,
                            found: m.found,
                        });
                        None
                    }
                };
                self.path.pop();
                read
            });
            let (read, slot) = match resolved {
                Some((j, read)) => {
                    if let Some(f) = filled.get_mut(j) {
                        *f = true;
                    }
                    fit.taken += 1;
                    (read, u8::try_from(j).ok())
                }
                None => {
                    fit.skipped += 1;
                    (Read::Skip, None)
                }
            };
            steps.push(Step {
                read,
                ty: field.ty.clone(),
                slot,
                name: field.name.as_str().into(),
            });
        }
        let defaults = reader
            .defaults(ri)
            .iter()
            .enumerate()
            .filter(|(j, _)| !filled.get(*j).copied().unwrap_or(true))
            .filter_map(|(j, v)| Some((u8::try_from(j).ok()?, v.clone())))
            .collect();
        (
            RecPlan {
                target: kind,
                steps: steps.into(),
                defaults,
            },
            fit,
        )
    }

    /// Whether writer type `ty` is an enum whose unqualified name is `name`.
    fn is_enum_named(&self, ty: &Ty, name: &str) -> bool {
        matches!(ty, Ty::Named(i) if self.writer.get(*i).is_some_and(|n| {
            matches!(n.def, Def::Enum { .. }) && n.simple_name() == name
        }))
    }

    fn mismatch(&self, writer: &Ty, reader: &Ty) -> Mismatch {
        Mismatch {
            expected: self.reader.schema.describe(reader),
            found: self.writer.describe(writer),
        }
    }

    /// The read of a renamed field (an entry of [`RENAMED`]).
    fn renamed(&mut self, ren: &Renamed, writer: &Ty, reader: &Ty) -> Result<Read, Mismatch> {
        match ren.convert {
            Convert::Resolve => self.value(writer, reader),
            Convert::Flags(table) => match writer {
                Ty::Named(i) => match self.writer.get(*i) {
                    Some(n) if matches!(n.def, Def::Enum { .. }) && *reader == Ty::Int => {
                        let Def::Enum { symbols, .. } = &n.def else {
                            return Err(self.mismatch(writer, reader));
                        };
                        Ok(Read::SymAsInt {
                            map: symbols
                                .iter()
                                .map(|s| table.iter().find(|(t, _)| t == s).map(|(_, v)| *v))
                                .collect(),
                            symbols: symbols.iter().map(|s| s.as_str().into()).collect(),
                            enum_name: n.simple_name().into(),
                        })
                    }
                    _ => Err(self.mismatch(writer, reader)),
                },
                _ => Err(self.mismatch(writer, reader)),
            },
        }
    }

    /// Whether a writer value of type `writer` goes to reader union branch `reader`.
    fn matches(&self, writer: &Ty, reader: &Ty) -> bool {
        match (writer, reader) {
            (Ty::Named(w), Ty::Named(r)) => {
                match (self.writer.get(*w), self.reader.schema.get(*r)) {
                    (Some(w), Some(r)) => {
                        let same_kind = match (&w.def, &r.def) {
                            (Def::Record(_), Def::Record(_))
                            | (Def::Enum { .. }, Def::Enum { .. }) => true,
                            (Def::Fixed(a), Def::Fixed(b)) => a == b,
                            _ => false,
                        };
                        same_kind && r.answers_to(&w.fullname)
                    }
                    _ => false,
                }
            }
            (Ty::Array(_), Ty::Array(_)) | (Ty::Map(_), Ty::Map(_)) => true,
            (Ty::Int, Ty::Long) | (Ty::Bytes, Ty::String) => true,
            (w, r) => w == r && !matches!(w, Ty::Union(_) | Ty::Named(_) | Ty::Ref(_)),
        }
    }

    /// How to read a writer value of type `writer` as the reader's type `reader`.
    fn value(&mut self, writer: &Ty, reader: &Ty) -> Result<Read, Mismatch> {
        match (writer, reader) {
            (Ty::Union(arms), _) => {
                let reads: Vec<Read> = arms
                    .iter()
                    .map(|arm| {
                        self.value(arm, reader).unwrap_or_else(|m| Read::Mismatch {
                            ty: arm.clone(),
                            expected: m.expected.into(),
                            found: m.found.into(),
                        })
                    })
                    .collect();
                if reads.iter().all(|r| matches!(r, Read::Mismatch { .. })) {
                    return Err(self.mismatch(writer, reader));
                }
                Ok(Read::Union(reads.into()))
            }
            (_, Ty::Union(arms)) => match arms.iter().find(|arm| self.matches(writer, arm)) {
                Some(arm) => self.value(writer, arm),
                None => Err(self.mismatch(writer, reader)),
            },
            (Ty::Null, Ty::Null) => Ok(Read::Null),
            (Ty::Long, Ty::Long) => Ok(Read::Long),
            (Ty::Int, Ty::Long) => Ok(Read::IntAsLong),
            (Ty::Int, Ty::Int) => Ok(Read::Int),
            (Ty::Boolean, Ty::Boolean) => Ok(Read::Bool),
            (Ty::String, Ty::String) => Ok(Read::Str),
            (Ty::Bytes, Ty::String) => Ok(Read::BytesAsStr),
            (Ty::Array(w), Ty::Array(r)) => {
                let collect = self
                    .reader
                    .collect_of(r)
                    .ok_or_else(|| self.mismatch(writer, reader))?;
                Ok(Read::Array(Box::new(self.value(w, r)?), collect))
            }
            (Ty::Map(w), Ty::Map(r)) if **r == Ty::String => {
                Ok(Read::Map(Box::new(self.value(w, r)?)))
            }
            (Ty::Named(wi), Ty::Named(ri)) => self.named(*wi, *ri, writer, reader),
            _ => Err(self.mismatch(writer, reader)),
        }
    }

    fn named(&mut self, wi: usize, ri: usize, writer: &Ty, reader: &Ty) -> Result<Read, Mismatch> {
        let (Some(w), Some(r)) = (self.writer.get(wi), self.reader.schema.get(ri)) else {
            return Err(self.mismatch(writer, reader));
        };
        if !r.answers_to(&w.fullname) {
            return Err(self.mismatch(writer, reader));
        }
        match (&w.def, &r.def) {
            (Def::Record(fields), Def::Record(_)) => {
                let Some(kind) = self.reader.kind_of(ri) else {
                    return Err(self.mismatch(writer, reader));
                };
                if kind == RecKind::Oid
                    && fields.len() == 2
                    && fields
                        .iter()
                        .zip(["createTS", "hpid"])
                        .all(|(f, name)| f.name == name && f.ty == Ty::Long)
                {
                    return Ok(Read::Oid2);
                }
                let (plan, _) = self.record(fields, ri, kind);
                Ok(Read::Record(Box::new(plan)))
            }
            (
                Def::Enum { symbols, .. },
                Def::Enum {
                    symbols: theirs,
                    default,
                },
            ) => {
                let fallback = default
                    .as_ref()
                    .and_then(|d| theirs.iter().position(|s| s == d));
                Ok(Read::Sym {
                    map: symbols
                        .iter()
                        .map(|s| {
                            theirs
                                .iter()
                                .position(|t| t == s)
                                .or(fallback)
                                .and_then(|i| u8::try_from(i).ok())
                        })
                        .collect(),
                    symbols: symbols.iter().map(|s| s.as_str().into()).collect(),
                    enum_name: simple(&w.fullname).into(),
                })
            }
            (Def::Fixed(20), Def::Fixed(20)) => Ok(Read::Fixed20),
            _ => Err(self.mismatch(writer, reader)),
        }
    }
}

/// The reader fields each branch of a plan takes from their defaults, for a debug line:
/// `(writer's record name, reader fields)`, branches with none left out.
pub(crate) fn defaulted(top: &TopPlan) -> Vec<(String, Vec<&'static str>)> {
    top.branches
        .iter()
        .filter_map(|b| {
            let plan = b.plan.as_ref()?;
            let fields = plan.target.fields();
            let names: Vec<&'static str> = plan
                .defaults
                .iter()
                .filter_map(|(slot, _)| fields.get(usize::from(*slot)).copied())
                .collect();
            (!names.is_empty()).then(|| (b.info.name.clone(), names))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sf_processor::model::{Oid, RecordKind};

    #[test]
    fn the_reader_schema_loads_with_a_default_for_every_field_in_model_order() {
        let reader = reader_schema().expect("the reader schema");
        assert_eq!(reader.branches.len(), 12);
        let kinds: Vec<RecordKind> = reader
            .branches
            .iter()
            .filter_map(|(_, k)| k.record_kind())
            .collect();
        assert_eq!(kinds.len(), 12);
        for kind in RecKind::ALL {
            let i = reader.index_of(kind).expect("every record");
            assert_eq!(reader.defaults(i).len(), kind.fields().len(), "{kind:?}");
        }
        let process = reader.defaults(reader.index_of(RecKind::Process).expect("Process"));
        assert_eq!(process[0], V::Sym(0));
        assert_eq!(
            process[1],
            V::Oid(Oid {
                create_ts: 0,
                hpid: 0
            })
        );
        assert_eq!(process[2], V::Null);
        assert_eq!(process[14], V::Strings(Vec::new()));
        let header = reader.defaults(reader.index_of(RecKind::Header).expect("SFHeader"));
        assert_eq!(header[2], V::Str("NA".to_owned()));
        let file = reader.defaults(reader.index_of(RecKind::File).expect("File"));
        assert_eq!(file[1], V::Foid(Foid([0; 20])));
    }

    #[test]
    fn the_reader_schema_enums_are_the_model_enums() {
        use sf_processor::model::{ContainerType, K8sAction, K8sComponent, ObjectState};
        let reader = reader_schema().expect("the reader schema");
        let symbols = |name: &str| -> Vec<String> {
            reader
                .schema
                .named
                .iter()
                .find_map(|n| match &n.def {
                    Def::Enum { symbols, .. } if n.simple_name() == name => Some(symbols.clone()),
                    _ => None,
                })
                .unwrap_or_else(|| panic!("enum {name}"))
        };
        let model = |all: Vec<&str>| all.into_iter().map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(
            symbols("SFObjectState"),
            model(ObjectState::ALL.iter().map(|s| s.symbol()).collect())
        );
        assert_eq!(
            symbols("ContainerType"),
            model(ContainerType::ALL.iter().map(|s| s.symbol()).collect())
        );
        assert_eq!(
            symbols("K8sComponent"),
            model(K8sComponent::ALL.iter().map(|s| s.symbol()).collect())
        );
        assert_eq!(
            symbols("K8sAction"),
            model(K8sAction::ALL.iter().map(|s| s.symbol()).collect())
        );
    }

    /// A reader schema with an alias on `FileFlow.fd`, and a writer that calls it so.
    #[test]
    fn a_writer_field_matches_a_reader_field_by_its_alias() {
        let mut json: Json = serde_json::from_str(READER_SCHEMA).expect("json");
        let flow = json["fields"][0]["type"]
            .as_array_mut()
            .expect("union")
            .iter_mut()
            .find(|b| b["name"] == "FileFlow")
            .expect("FileFlow");
        flow["fields"][7]["aliases"] = serde_json::json!(["fileDescriptor"]);
        assert_eq!(flow["fields"][7]["name"], "fd");
        let reader = ReaderSchema::parse(&json.to_string()).expect("reader");
        let v5 = include_str!("../../../resources/schemas/sysflow-v5.avsc");
        let writer = Schema::parse(&v5.replace("\"fd\"", "\"fileDescriptor\"")).expect("writer");
        let resolution = resolve_with(&writer, &reader).expect("resolve");
        let flow = resolution.top.branches[6].plan.as_ref().expect("FileFlow");
        assert_eq!(flow.target, RecKind::FileFlow);
        let step = &flow.steps[7];
        assert_eq!((&*step.name, step.slot), ("fileDescriptor", Some(7)));
        assert!(flow.defaults.is_empty());
        // Without the alias, the field is skipped and `fd` takes its default.
        let resolution = resolve(&writer).expect("resolve");
        let flow = resolution.top.branches[6].plan.as_ref().expect("FileFlow");
        assert_eq!(flow.steps[7].slot, None);
        assert_eq!(
            flow.defaults.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            [7]
        );
        // The network flow's `fd` is renamed too, and keeps its default either way.
        let nf = resolution.top.branches[5]
            .plan
            .as_ref()
            .expect("NetworkFlow");
        assert_eq!(
            nf.defaults.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            [10]
        );
    }

    #[test]
    fn the_reader_schema_read_as_a_writer_schema_resolves_to_itself() {
        let writer = Schema::parse(READER_SCHEMA).expect("parse");
        let resolution = resolve(&writer).expect("resolve");
        assert!(resolution.unresolved.is_empty());
        for (i, b) in resolution.top.branches.iter().enumerate() {
            let plan = b.plan.as_ref().expect("a plan");
            assert!(plan.defaults.is_empty(), "branch {i}");
            assert_eq!(b.info.kind, plan.target.record_kind());
            for step in plan.steps.iter() {
                assert!(step.slot.is_some(), "{}", step.name);
            }
        }
        assert_eq!(
            resolution.top.branches[4].info.kind,
            Some(RecordKind::ProcessEvent)
        );
        assert_eq!(
            resolution.top.branches[9].info.kind,
            Some(RecordKind::ProcessFlow)
        );
    }
}
