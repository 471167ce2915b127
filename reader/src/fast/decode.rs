//! The decoding engine: Avro binary straight into the model, following a plan.
//!
//! A datum is read field by field in writer order; each field's value lands in the slot of
//! its reader field ([`Slots`]), the reader fields the writer lacks get their defaults, and
//! the model record is built from the slots by its builder (`plan.rs`).
//! Nothing here can panic or allocate more than the block holds: every length and count is
//! checked against the bytes left before anything is allocated.

use sf_processor::model::{
    ContainerType, Foid, K8sAction, K8sComponent, ObjectState, Oid, Port, Record, Service,
};

use super::plan::{self, Collect, Read, RecKind, RecPlan, TopPlan};
use super::schema::{Def, Schema, Ty};
use crate::error::{DatumProblem, FieldProblem};

/// Deepest nesting of writer types followed when skipping (a recursive schema can nest
/// forever; SysFlow's nest 4 deep).
const MAX_DEPTH: u32 = 64;

/// Most items reserved ahead in an array or map (see [`Cx::block_count`]).
const MAX_RESERVE: u64 = 4096;

/// Packs the 7-bit groups of the little-endian bytes of `word` (high bits ignored) into one
/// number: byte 0 gives bits 0-6, byte 1 bits 7-13, ... byte 7 bits 49-55.
#[inline]
fn pack7(word: u64) -> u64 {
    let x = word & 0x7f7f_7f7f_7f7f_7f7f;
    let x = (x & 0x007f_007f_007f_007f) | ((x & 0x7f00_7f00_7f00_7f00) >> 1);
    let x = (x & 0x0000_3fff_0000_3fff) | ((x & 0x3fff_0000_3fff_0000) >> 2);
    (x & 0x0000_0000_0fff_ffff) | ((x & 0x0fff_ffff_0000_0000) >> 4)
}

/// The result of every decoding step.
pub(crate) type R<T> = Result<T, Box<Fail>>;

/// What went wrong, where: the byte offset in the block (when known) and the field path,
/// built as the error goes up (`procOID.createTS`, `services[0].portList[1].port`).
#[derive(Debug)]
pub(crate) struct Fail {
    pub(crate) offset: Option<usize>,
    pub(crate) path: String,
    pub(crate) problem: DatumProblem,
}

impl Fail {
    /// A field problem (the datum is still well-formed Avro).
    pub(crate) fn field(field: &str, problem: FieldProblem) -> Box<Fail> {
        Box::new(Fail {
            offset: None,
            path: field.to_owned(),
            problem: DatumProblem::Field(problem),
        })
    }

    fn in_field(mut self: Box<Self>, field: &str) -> Box<Self> {
        self.path = if self.path.is_empty() {
            field.to_owned()
        } else if self.path.starts_with('[') {
            format!("{field}{}", self.path)
        } else {
            format!("{field}.{}", self.path)
        };
        self
    }

    fn in_item(mut self: Box<Self>, index: u64) -> Box<Self> {
        self.path = if self.path.is_empty() || self.path.starts_with('[') {
            format!("[{index}]{}", self.path)
        } else {
            format!("[{index}].{}", self.path)
        };
        self
    }
}

/// A slot left empty: cannot happen, as every reader field has a default (the unit tests
/// check the reader schema); kept as an error rather than a panic.
pub(crate) fn missing(field: &'static str) -> Box<Fail> {
    Fail::field(field, FieldProblem::Missing)
}

/// A decoded reader value.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) enum V {
    /// Nothing yet.
    #[default]
    Unset,
    Null,
    Long(i64),
    Int(i32),
    Bool(bool),
    Str(String),
    Foid(Foid),
    /// Index of a reader enum's symbol, which is the index in the model enum's `ALL` (the
    /// reader schema's enums have the model's symbols in the model's order).
    Sym(u8),
    Oid(Oid),
    Service(Box<Service>),
    Port(Box<Port>),
    Strings(Vec<String>),
    Longs(Vec<i64>),
    Services(Vec<Service>),
    Ports(Vec<Port>),
    Pairs(Vec<(String, String)>),
}

/// The values of one record's model fields, by slot (see the mapping tables).
#[derive(Debug)]
pub(crate) struct Slots([V; 16]);

macro_rules! getter {
    ($name:ident -> $ty:ty, $expected:literal, $($pat:pat => $val:expr),+) => {
        pub(crate) fn $name(&mut self, slot: usize, field: &'static str) -> R<Option<$ty>> {
            match self.take(slot) {
                V::Unset => Ok(None),
                $($pat => Ok(Some($val)),)+
                _ => Err(plan::wrong_slot(field, $expected)),
            }
        }
    };
}

/// `s` without surrounding white space (Go's `strings.TrimSpace`; Rust's `trim` uses the
/// same Unicode `White_Space` set), reusing its allocation when nothing is trimmed.
fn trim(s: String) -> String {
    let trimmed = s.trim();
    if trimmed.len() == s.len() {
        s
    } else {
        trimmed.to_owned()
    }
}

fn symbol<T: Copy>(all: &[T], index: u8) -> Option<T> {
    all.get(usize::from(index)).copied()
}

impl Slots {
    pub(crate) fn new() -> Self {
        Slots([const { V::Unset }; 16])
    }

    /// The slots of a record whose writer lacks some reader fields: their defaults.
    fn with_defaults(defaults: &[(u8, V)]) -> Self {
        let mut slots = Slots::new();
        for (slot, value) in defaults {
            slots.set(*slot, value.clone());
        }
        slots
    }

    pub(crate) fn set(&mut self, slot: u8, value: V) {
        if let Some(s) = self.0.get_mut(usize::from(slot)) {
            *s = value;
        }
    }

    fn take(&mut self, slot: usize) -> V {
        self.0.get_mut(slot).map(std::mem::take).unwrap_or_default()
    }

    getter!(long -> i64, "long", V::Long(v) => v);
    getter!(int -> i32, "int", V::Int(v) => v);
    getter!(boolean -> bool, "boolean", V::Bool(v) => v);
    getter!(string -> String, "string", V::Str(v) => v);
    getter!(trimmed -> String, "string", V::Str(v) => trim(v));
    getter!(foid -> Foid, "fixed(20)", V::Foid(v) => v);
    getter!(opt_foid -> Option<Foid>, "fixed(20)", V::Foid(v) => Some(v), V::Null => None);
    getter!(oid -> Oid, "record", V::Oid(v) => v);
    getter!(opt_oid -> Option<Oid>, "record", V::Oid(v) => Some(v), V::Null => None);
    getter!(opt_string -> Option<String>, "string", V::Str(v) => Some(v), V::Null => None);
    getter!(strings -> Vec<String>, "array", V::Strings(v) => v);
    getter!(longs -> Vec<i64>, "array", V::Longs(v) => v);
    getter!(pairs -> Vec<(String, String)>, "map", V::Pairs(v) => v);
    getter!(services -> Vec<Service>, "array", V::Services(v) => v);
    getter!(ports -> Vec<Port>, "array", V::Ports(v) => v);

    fn sym<T: Copy>(&mut self, slot: usize, field: &'static str, all: &[T]) -> R<Option<T>> {
        match self.take(slot) {
            V::Unset => Ok(None),
            V::Sym(i) => symbol(all, i)
                .map(Some)
                .ok_or_else(|| plan::wrong_slot(field, "enum")),
            _ => Err(plan::wrong_slot(field, "enum")),
        }
    }

    pub(crate) fn state(&mut self, slot: usize, field: &'static str) -> R<Option<ObjectState>> {
        self.sym(slot, field, ObjectState::ALL)
    }

    pub(crate) fn container_type(
        &mut self,
        slot: usize,
        field: &'static str,
    ) -> R<Option<ContainerType>> {
        self.sym(slot, field, ContainerType::ALL)
    }

    pub(crate) fn k8s_component(
        &mut self,
        slot: usize,
        field: &'static str,
    ) -> R<Option<K8sComponent>> {
        self.sym(slot, field, K8sComponent::ALL)
    }

    pub(crate) fn k8s_action(&mut self, slot: usize, field: &'static str) -> R<Option<K8sAction>> {
        self.sym(slot, field, K8sAction::ALL)
    }
}

/// A cursor over one decompressed block.
#[derive(Debug)]
pub(crate) struct Cx<'a> {
    pub(crate) buf: &'a [u8],
    pub(crate) pos: usize,
    pub(crate) schema: &'a Schema,
}

impl<'a> Cx<'a> {
    fn fail_at(&self, at: usize, problem: DatumProblem) -> Box<Fail> {
        Box::new(Fail {
            offset: Some(at),
            path: String::new(),
            problem,
        })
    }

    fn field_problem(&self, at: usize, problem: FieldProblem) -> Box<Fail> {
        self.fail_at(at, DatumProblem::Field(problem))
    }

    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// An Avro varint (at most 10 bytes; bits past the 64th are dropped, as `apache-avro`
    /// does).
    ///
    /// With 8 bytes or more left, the first 8 are loaded as one little-endian word: the
    /// varint ends at the first byte whose high bit is clear, and its 7-bit groups are
    /// packed with three shift-and-mask steps, so no loop runs for the usual 1 to 8 bytes.
    #[inline(always)]
    pub(crate) fn varint(&mut self) -> R<u64> {
        if let Some(&b) = self.buf.get(self.pos)
            && b < 0x80
        {
            self.pos += 1;
            return Ok(u64::from(b));
        }
        self.varint_multi()
    }

    /// A varint of 2 bytes or more (or at the end of the block).
    #[inline(always)]
    fn varint_multi(&mut self) -> R<u64> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        let Some(bytes) = rest.first_chunk::<8>() else {
            return self.varint_tail(rest);
        };
        let word = u64::from_le_bytes(*bytes);
        let stops = !word & 0x8080_8080_8080_8080;
        if stops != 0 {
            let bits = stops.trailing_zeros() + 1;
            let kept = if bits >= 64 {
                word
            } else {
                word & ((1u64 << bits) - 1)
            };
            self.pos += (bits / 8) as usize;
            return Ok(pack7(kept));
        }
        // 9 or 10 bytes: the first 8 carry 56 bits.
        let low = pack7(word);
        match (rest.get(8).copied(), rest.get(9).copied()) {
            (Some(b), _) if b < 0x80 => {
                self.pos += 9;
                Ok(low | (u64::from(b) << 56))
            }
            (Some(b), Some(c)) if c < 0x80 => {
                self.pos += 10;
                Ok(low | (u64::from(b & 0x7f) << 56) | (u64::from(c) << 63))
            }
            (Some(_), Some(_)) => Err(self.fail_at(self.pos, DatumProblem::BadVarint)),
            _ => self.varint_tail(rest),
        }
    }

    /// A varint near the end of the block, a byte at a time.
    #[cold]
    fn varint_tail(&mut self, rest: &[u8]) -> R<u64> {
        let mut value = 0u64;
        for (i, &b) in rest.iter().take(10).enumerate() {
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                self.pos += i + 1;
                return Ok(value);
            }
        }
        if rest.len() >= 10 {
            return Err(self.fail_at(self.pos, DatumProblem::BadVarint));
        }
        Err(self.fail_at(
            self.pos,
            DatumProblem::Truncated {
                needed: rest.len() as u64 + 1,
                remaining: rest.len() as u64,
            },
        ))
    }

    #[inline(always)]
    pub(crate) fn long(&mut self) -> R<i64> {
        let v = self.varint()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    #[inline(always)]
    pub(crate) fn int(&mut self) -> R<i32> {
        let at = self.pos;
        let v = self.long()?;
        match i32::try_from(v) {
            Ok(i) => Ok(i),
            Err(_) => Err(self.int_out_of_range(at, v)),
        }
    }

    #[cold]
    fn int_out_of_range(&self, at: usize, v: i64) -> Box<Fail> {
        self.fail_at(at, DatumProblem::IntOutOfRange(v))
    }

    /// A length (of bytes, a string, a fixed), at most the bytes left.
    #[inline]
    fn len(&mut self) -> R<usize> {
        let at = self.pos;
        let n = self.long()?;
        let Ok(n) = u64::try_from(n) else {
            return Err(self.fail_at(at, DatumProblem::NegativeLength(n)));
        };
        self.check_len(at, n)
    }

    fn check_len(&self, at: usize, n: u64) -> R<usize> {
        let remaining = self.remaining();
        match usize::try_from(n) {
            Ok(n) if n <= remaining => Ok(n),
            _ => Err(self.fail_at(
                at,
                DatumProblem::Truncated {
                    needed: n,
                    remaining: remaining as u64,
                },
            )),
        }
    }

    #[inline]
    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        let at = self.pos;
        let bytes = self
            .buf
            .get(self.pos..)
            .and_then(|rest| rest.get(..n))
            .ok_or_else(|| {
                self.fail_at(
                    at,
                    DatumProblem::Truncated {
                        needed: n as u64,
                        remaining: self.remaining() as u64,
                    },
                )
            })?;
        self.pos += n;
        Ok(bytes)
    }

    #[inline]
    pub(crate) fn str(&mut self) -> R<&'a str> {
        let at = self.pos;
        let n = self.len()?;
        let bytes = self.take(n)?;
        std::str::from_utf8(bytes).map_err(|_| self.fail_at(at, DatumProblem::InvalidUtf8))
    }

    pub(crate) fn boolean(&mut self) -> R<bool> {
        let at = self.pos;
        match self.take(1)?.first().copied() {
            Some(0) => Ok(false),
            Some(1) => Ok(true),
            other => Err(self.fail_at(at, DatumProblem::BadBool(other.unwrap_or(0)))),
        }
    }

    /// The count of the next block of an array or map (0: the end); a negative count is
    /// followed by the block's size in bytes. Every item takes at least one byte (unless its
    /// type is always empty), so a count larger than the bytes left is an error.
    pub(crate) fn block_count(&mut self, items_can_be_empty: bool) -> R<u64> {
        let at = self.pos;
        let n = self.long()?;
        let count = if n < 0 {
            self.long()?;
            n.unsigned_abs()
        } else {
            n.unsigned_abs()
        };
        if !items_can_be_empty && count > self.remaining() as u64 {
            return Err(self.fail_at(
                at,
                DatumProblem::Truncated {
                    needed: count,
                    remaining: self.remaining() as u64,
                },
            ));
        }
        Ok(count)
    }

    /// A union index, checked against the number of branches.
    pub(crate) fn union_index(&mut self, branches: usize) -> R<usize> {
        let at = self.pos;
        let i = self.long()?;
        usize::try_from(i)
            .ok()
            .filter(|&i| i < branches)
            .ok_or_else(|| self.fail_at(at, DatumProblem::BadUnionIndex { index: i, branches }))
    }

    /// A `fixed(20)` FOID.
    #[inline]
    pub(crate) fn foid(&mut self) -> R<Foid> {
        let at = self.pos;
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        match rest.first_chunk::<20>() {
            Some(id) => {
                self.pos += 20;
                Ok(Foid(*id))
            }
            None => Err(self.fail_at(
                at,
                DatumProblem::Truncated {
                    needed: 20,
                    remaining: rest.len() as u64,
                },
            )),
        }
    }

    /// An enum index that has no symbol (cannot happen after [`Cx::enum_index`]).
    pub(crate) fn damaged_enum(&self, index: i64, symbols: usize) -> Box<Fail> {
        self.fail_at(self.pos, DatumProblem::BadEnumIndex { index, symbols })
    }

    /// An enum symbol index, checked against the number of symbols.
    pub(crate) fn enum_index(&mut self, symbols: usize) -> R<usize> {
        let at = self.pos;
        let i = self.long()?;
        usize::try_from(i)
            .ok()
            .filter(|&i| i < symbols)
            .ok_or_else(|| self.fail_at(at, DatumProblem::BadEnumIndex { index: i, symbols }))
    }

    // -----------------------------------------------------------------------------------------
    // Reading into the model
    // -----------------------------------------------------------------------------------------

    fn read(&mut self, read: &Read) -> R<V> {
        Ok(match read {
            Read::Long => V::Long(self.long()?),
            Read::IntAsLong => V::Long(i64::from(self.int()?)),
            Read::Int => V::Int(self.int()?),
            Read::Bool => V::Bool(self.boolean()?),
            Read::Str => V::Str(self.str()?.to_owned()),
            Read::BytesAsStr => {
                let at = self.pos;
                let n = self.len()?;
                let bytes = self.take(n)?;
                match std::str::from_utf8(bytes) {
                    Ok(s) => V::Str(s.to_owned()),
                    Err(_) => {
                        return Err(self.field_problem(
                            at,
                            FieldProblem::WrongType {
                                expected: "string".into(),
                                found: "bytes that are not UTF-8".into(),
                            },
                        ));
                    }
                }
            }
            Read::Fixed20 => V::Foid(self.foid()?),
            Read::Sym {
                map,
                symbols,
                enum_name,
            } => {
                let at = self.pos;
                let i = self.enum_index(map.len())?;
                match map.get(i).copied().flatten() {
                    Some(m) => V::Sym(m),
                    None => {
                        return Err(self.field_problem(
                            at,
                            FieldProblem::UnknownSymbol {
                                enum_name: enum_name.clone(),
                                symbol: symbols.get(i).cloned().unwrap_or_default(),
                            },
                        ));
                    }
                }
            }
            Read::SymAsInt {
                map,
                symbols,
                enum_name,
            } => {
                let at = self.pos;
                let i = self.enum_index(map.len())?;
                match map.get(i).copied().flatten() {
                    Some(v) => V::Int(v),
                    None => {
                        return Err(self.field_problem(
                            at,
                            FieldProblem::UnknownSymbol {
                                enum_name: enum_name.clone(),
                                symbol: symbols.get(i).cloned().unwrap_or_default(),
                            },
                        ));
                    }
                }
            }
            Read::Null => V::Null,
            Read::Union(arms) => {
                let i = self.union_index(arms.len())?;
                match arms.get(i) {
                    Some(arm) => self.read(arm)?,
                    None => V::Unset,
                }
            }
            Read::Array(item, collect) => self.array(item, *collect)?,
            Read::Map(value) => self.map(value)?,
            Read::Oid2 => V::Oid(Oid {
                create_ts: self.long()?,
                hpid: self.long()?,
            }),
            Read::Record(plan) => self.nested(plan)?,
            Read::Skip => V::Unset,
            Read::Mismatch {
                ty,
                expected,
                found,
            } => {
                let at = self.pos;
                self.skip(ty, 1)?;
                return Err(self.field_problem(
                    at,
                    FieldProblem::WrongType {
                        expected: expected.clone(),
                        found: found.clone(),
                    },
                ));
            }
        })
    }

    fn array(&mut self, item: &Read, collect: Collect) -> R<V> {
        let mut out = match collect {
            Collect::Strings => V::Strings(Vec::new()),
            Collect::Longs => V::Longs(Vec::new()),
            Collect::Services => V::Services(Vec::new()),
            Collect::Ports => V::Ports(Vec::new()),
        };
        let mut index = 0u64;
        loop {
            let count = self.block_count(false)?;
            if count == 0 {
                return Ok(out);
            }
            // At most a few thousand ahead: an item takes one byte of input but up to a
            // hundred of memory, so the vector grows with the items actually decoded.
            let reserve = usize::try_from(count.min(MAX_RESERVE)).unwrap_or(0);
            match &mut out {
                V::Strings(v) => v.reserve(reserve),
                V::Longs(v) => v.reserve(reserve),
                V::Services(v) => v.reserve(reserve),
                V::Ports(v) => v.reserve(reserve),
                _ => {}
            }
            for _ in 0..count {
                let value = self.read(item).map_err(|f| f.in_item(index))?;
                match (&mut out, value) {
                    (V::Strings(v), V::Str(s)) => v.push(s),
                    (V::Longs(v), V::Long(l)) => v.push(l),
                    (V::Services(v), V::Service(s)) => v.push(*s),
                    (V::Ports(v), V::Port(p)) => v.push(*p),
                    _ => {
                        return Err(plan::wrong_slot("", "array item").in_item(index));
                    }
                }
                index += 1;
            }
        }
    }

    fn map(&mut self, value: &Read) -> R<V> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        loop {
            let count = self.block_count(false)?;
            if count == 0 {
                break;
            }
            pairs.reserve(usize::try_from(count.min(MAX_RESERVE)).unwrap_or(0));
            for _ in 0..count {
                let key = self.str()?;
                match self.read(value).map_err(|f| f.in_field(key))? {
                    V::Str(v) => pairs.push((key.to_owned(), v)),
                    _ => return Err(plan::wrong_slot("", "string").in_field(key)),
                }
            }
        }
        // As apache-avro's HashMap: the last value of a key wins; sorted by key.
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut unique: Vec<(String, String)> = Vec::with_capacity(pairs.len());
        for pair in pairs {
            match unique.last_mut() {
                Some(last) if last.0 == pair.0 => *last = pair,
                _ => unique.push(pair),
            }
        }
        Ok(V::Pairs(unique))
    }

    /// Reads the writer fields of a record into `slots`.
    fn record(&mut self, plan: &RecPlan, slots: &mut Slots) -> R<()> {
        for step in &plan.steps {
            match step.slot {
                Some(slot) => {
                    let value = self.read(&step.read).map_err(|f| f.in_field(&step.name))?;
                    slots.set(slot, value);
                }
                None => self.skip(&step.ty, 1).map_err(|f| f.in_field(&step.name))?,
            }
        }
        Ok(())
    }

    fn nested(&mut self, plan: &RecPlan) -> R<V> {
        let mut slots = Slots::with_defaults(&plan.defaults);
        self.record(plan, &mut slots)?;
        Ok(match plan.target {
            RecKind::Oid => V::Oid(plan::build_oid(&mut slots)?),
            RecKind::Service => V::Service(Box::new(plan::build_service(&mut slots)?)),
            RecKind::Port => V::Port(Box::new(plan::build_port(&mut slots)?)),
            _ => return Err(plan::wrong_slot("", "nested record")),
        })
    }

    /// Decodes one `sysflow.SysFlow` datum; `branch` gets the union index once it is read.
    /// With `exact`, a branch of a known layout is decoded by its straight-line decoder
    /// (`exact.rs`); on damaged data, the generic plan decodes the datum again to name the
    /// field.
    pub(crate) fn datum(
        &mut self,
        top: &TopPlan,
        branch: &mut Option<usize>,
        exact: bool,
    ) -> R<Record> {
        for ty in &top.before {
            self.skip(ty, 1)?;
        }
        let i = self.union_index(top.branches.len())?;
        *branch = Some(i);
        if exact && let Some(layout) = top.branches.get(i).and_then(|b| b.layout) {
            let fields = self.pos;
            if let Ok(record) = super::exact::decode(self, layout) {
                for ty in &top.after {
                    self.skip(ty, 1)?;
                }
                return Ok(record);
            }
            self.pos = fields;
        }
        let Some(plan) = top.branches.get(i).and_then(|b| b.plan.as_ref()) else {
            let name = top
                .branches
                .get(i)
                .map(|b| b.info.name.clone())
                .unwrap_or_default();
            return Err(Box::new(Fail {
                offset: None,
                path: String::new(),
                problem: DatumProblem::UnknownBranch {
                    index: u32::try_from(i).unwrap_or(u32::MAX),
                    name,
                },
            }));
        };
        let mut slots = Slots::with_defaults(&plan.defaults);
        self.record(plan, &mut slots)?;
        let s = &mut slots;
        let record = match plan.target {
            RecKind::Header => Record::Header(plan::build_header(s)?),
            RecKind::Container => Record::Container(plan::build_container(s)?),
            RecKind::Pod => Record::Pod(plan::build_pod(s)?),
            RecKind::Process => Record::Process(plan::build_process(s)?),
            RecKind::File => Record::File(plan::build_file(s)?),
            RecKind::ProcessEvent => Record::ProcessEvent(plan::build_process_event(s)?),
            RecKind::ProcessFlow => Record::ProcessFlow(plan::build_process_flow(s)?),
            RecKind::FileFlow => Record::FileFlow(plan::build_file_flow(s)?),
            RecKind::FileEvent => Record::FileEvent(plan::build_file_event(s)?),
            RecKind::NetworkFlow => Record::NetworkFlow(plan::build_network_flow(s)?),
            RecKind::NetworkEvent => Record::NetworkEvent(plan::build_network_event(s)?),
            RecKind::K8sEvent => Record::K8sEvent(plan::build_k8s_event(s)?),
            RecKind::Oid | RecKind::Service | RecKind::Port => {
                return Err(plan::wrong_slot("", "record"));
            }
        };
        for ty in &top.after {
            self.skip(ty, 1)?;
        }
        Ok(record)
    }

    /// Skips one `sysflow.SysFlow` datum (to step over a datum with a field problem).
    pub(crate) fn skip_datum(&mut self, top: &TopPlan) -> R<()> {
        for ty in &top.before {
            self.skip(ty, 1)?;
        }
        let i = self.union_index(top.branches.len())?;
        if let Some(branch) = top.branches.get(i) {
            self.skip(&branch.ty, 1)?;
        }
        for ty in &top.after {
            self.skip(ty, 1)?;
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Skipping
    // -----------------------------------------------------------------------------------------

    /// Skips one value of writer type `ty`.
    fn skip(&mut self, ty: &Ty, depth: u32) -> R<()> {
        if depth > MAX_DEPTH {
            return Err(self.fail_at(self.pos, DatumProblem::TooDeep(MAX_DEPTH)));
        }
        match ty {
            Ty::Null => {}
            Ty::Boolean => {
                self.boolean()?;
            }
            Ty::Int => {
                self.int()?;
            }
            Ty::Long => {
                self.long()?;
            }
            Ty::Float => {
                self.take(4)?;
            }
            Ty::Double => {
                self.take(8)?;
            }
            Ty::Bytes => {
                let n = self.len()?;
                self.take(n)?;
            }
            Ty::String => {
                self.str()?;
            }
            Ty::Named(i) => match self.schema.get(*i).map(|n| &n.def) {
                Some(Def::Record(fields)) => {
                    for field in fields {
                        self.skip(&field.ty, depth + 1)
                            .map_err(|f| f.in_field(&field.name))?;
                    }
                }
                Some(Def::Enum { symbols, .. }) => {
                    self.enum_index(symbols.len())?;
                }
                Some(Def::Fixed(size)) => {
                    let n = self.check_len(self.pos, *size as u64)?;
                    self.take(n)?;
                }
                None => return Err(self.fail_at(self.pos, DatumProblem::TooDeep(depth))),
            },
            Ty::Array(items) => {
                let empty = self.always_empty(items);
                let mut index = 0u64;
                loop {
                    let count = self.block_count(empty)?;
                    if count == 0 {
                        break;
                    }
                    if empty {
                        continue;
                    }
                    for _ in 0..count {
                        self.skip(items, depth + 1).map_err(|f| f.in_item(index))?;
                        index += 1;
                    }
                }
            }
            Ty::Map(values) => loop {
                let count = self.block_count(false)?;
                if count == 0 {
                    break;
                }
                for _ in 0..count {
                    let key = self.str()?;
                    self.skip(values, depth + 1).map_err(|f| f.in_field(key))?;
                }
            },
            Ty::Union(arms) => {
                let i = self.union_index(arms.len())?;
                if let Some(arm) = arms.get(i) {
                    self.skip(arm, depth + 1)?;
                }
            }
            Ty::Ref(_) => return Err(self.fail_at(self.pos, DatumProblem::TooDeep(depth))),
        }
        Ok(())
    }

    /// Whether every value of `ty` is encoded in zero bytes (null, `fixed(0)`; records are
    /// taken as non-empty, which only bounds their count by the bytes left).
    fn always_empty(&self, ty: &Ty) -> bool {
        match ty {
            Ty::Null => true,
            Ty::Named(i) => matches!(self.schema.get(*i).map(|n| &n.def), Some(Def::Fixed(0))),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Avro encoding of `v` (zigzag not applied), padded with `pad` bytes.
    fn encode(mut v: u64, pad: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
        out.extend(std::iter::repeat_n(0xaa, pad));
        out
    }

    /// A byte-at-a-time reference, as apache-avro reads varints.
    fn reference(bytes: &[u8]) -> Option<(u64, usize)> {
        let mut v = 0u64;
        for (i, &b) in bytes.iter().take(10).enumerate() {
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Some((v, i + 1));
            }
        }
        None
    }

    fn read(bytes: &[u8]) -> Option<(u64, usize)> {
        let schema = Schema {
            named: Vec::new(),
            root: Ty::Null,
        };
        let mut cx = Cx {
            buf: bytes,
            pos: 0,
            schema: &schema,
        };
        cx.varint().ok().map(|v| (v, cx.pos))
    }

    #[test]
    fn varints_of_every_length_match_the_byte_at_a_time_reading() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut values = vec![
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::MAX,
            u64::MAX - 1,
            1 << 63,
        ];
        for shift in 0..64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push(x >> shift);
            values.push(1u64 << shift);
        }
        for v in values {
            for pad in [0, 1, 3, 9, 12] {
                let bytes = encode(v, pad);
                assert_eq!(read(&bytes), Some((v, bytes.len() - pad)), "{v} pad {pad}");
                assert_eq!(read(&bytes), reference(&bytes));
            }
        }
        // Ten bytes whose last carries more than the 64th bit: dropped, as apache-avro does.
        let ten = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0, 0,
        ];
        assert_eq!(read(&ten), reference(&ten));
        assert_eq!(read(&ten), Some((u64::MAX, 10)));
        // Eleven bytes, or a varint cut by the end of the block.
        assert_eq!(read(&[0xff; 12]), None);
        assert_eq!(read(&[0x80; 5]), None);
        assert_eq!(
            read(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80]),
            None
        );
    }
}
