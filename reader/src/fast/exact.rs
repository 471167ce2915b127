//! Straight-line decoders for the record layouts the collector writes today.
//!
//! When a writer record is **exactly** a known layout (same field names, same order, same
//! types; enums with the model's symbols in the model's order), resolution against the reader
//! schema is the identity, and its datums are decoded by a hand-written function that reads
//! the fields in order straight into the model struct, with no plan to interpret. The flows'
//! and events' layouts have not changed since schema 2, so this covers nearly every datum of a
//! real trace; any other layout goes through the generic plan, which gives the same records
//! (the unit tests check both paths on every shared trace).
//!
//! These functions report damaged data without a field path; the caller then decodes the
//! datum again with the generic plan, which finds the same error and names the field.

use sf_processor::model::{
    Container, ContainerType, File, FileEvent, FileFlow, NetworkEvent, NetworkFlow, ObjectState,
    Oid, Process, ProcessEvent, ProcessFlow, Record, RecordKind, SfHeader,
};

use super::decode::{Cx, R};
use super::schema::{Def, FieldDef, Schema, Ty};

/// A known layout: the branch's records are decoded by [`decode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// `SFHeader` of schema 3 to 5.
    Header,
    /// `Container` of schema 4 and 5.
    Container,
    /// `Process` of schema 5.
    Process,
    File,
    ProcessEvent,
    ProcessFlow,
    FileFlow,
    FileEvent,
    NetworkFlow,
    NetworkEvent,
}

/// The type of a field of a known layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Long,
    Int,
    Bool,
    Str,
    /// `sysflow.type.OID`: `{createTS: long, hpid: long}`.
    Oid,
    /// `["null", OID]`.
    OptOid,
    /// `["null", string]`.
    OptStr,
    /// `fixed(20)`.
    Foid,
    /// `["null", fixed(20)]`.
    OptFoid,
    /// `array<string>`.
    Strings,
    /// An enum with exactly these symbols, in this order.
    Enum(&'static [&'static str]),
}

use Shape::{Bool, Foid, Int, Long, Oid as OidS, OptFoid, OptOid, OptStr, Str, Strings};

const OBJECT_STATES: &[&str] = &["CREATED", "MODIFIED", "REUP"];
const CONTAINER_TYPES: &[&str] = &[
    "CT_DOCKER",
    "CT_LXC",
    "CT_LIBVIRT_LXC",
    "CT_MESOS",
    "CT_RKT",
    "CT_CUSTOM",
    "CT_CRI",
    "CT_CONTAINERD",
    "CT_CRIO",
    "CT_BPM",
];

const HEADER: &[(&str, Shape)] = &[
    ("version", Long),
    ("exporter", Str),
    ("ip", Str),
    ("filename", Str),
];
const CONTAINER: &[(&str, Shape)] = &[
    ("id", Str),
    ("name", Str),
    ("image", Str),
    ("imageid", Str),
    ("type", Shape::Enum(CONTAINER_TYPES)),
    ("privileged", Bool),
    ("podId", OptStr),
];
const PROCESS: &[(&str, Shape)] = &[
    ("state", Shape::Enum(OBJECT_STATES)),
    ("oid", OidS),
    ("poid", OptOid),
    ("ts", Long),
    ("exe", Str),
    ("exeArgs", Str),
    ("uid", Int),
    ("userName", Str),
    ("gid", Int),
    ("groupName", Str),
    ("tty", Bool),
    ("containerId", OptStr),
    ("entry", Bool),
    ("cwd", Str),
    ("env", Strings),
];
const FILE: &[(&str, Shape)] = &[
    ("state", Shape::Enum(OBJECT_STATES)),
    ("oid", Foid),
    ("ts", Long),
    ("restype", Int),
    ("path", Str),
    ("containerId", OptStr),
];
const PROCESS_EVENT: &[(&str, Shape)] = &[
    ("procOID", OidS),
    ("ts", Long),
    ("tid", Long),
    ("opFlags", Int),
    ("args", Strings),
    ("ret", Int),
];
const PROCESS_FLOW: &[(&str, Shape)] = &[
    ("procOID", OidS),
    ("ts", Long),
    ("numThreadsCloned", Long),
    ("opFlags", Int),
    ("endTs", Long),
    ("numThreadsExited", Long),
    ("numCloneErrors", Long),
];
const FILE_FLOW: &[(&str, Shape)] = &[
    ("procOID", OidS),
    ("ts", Long),
    ("tid", Long),
    ("opFlags", Int),
    ("openFlags", Int),
    ("endTs", Long),
    ("fileOID", Foid),
    ("fd", Int),
    ("numRRecvOps", Long),
    ("numWSendOps", Long),
    ("numRRecvBytes", Long),
    ("numWSendBytes", Long),
];
const FILE_EVENT: &[(&str, Shape)] = &[
    ("procOID", OidS),
    ("ts", Long),
    ("tid", Long),
    ("opFlags", Int),
    ("fileOID", Foid),
    ("ret", Int),
    ("newFileOID", OptFoid),
];
const NETWORK_FLOW: &[(&str, Shape)] = &[
    ("procOID", OidS),
    ("ts", Long),
    ("tid", Long),
    ("opFlags", Int),
    ("endTs", Long),
    ("sip", Int),
    ("sport", Int),
    ("dip", Int),
    ("dport", Int),
    ("proto", Int),
    ("fd", Int),
    ("numRRecvOps", Long),
    ("numWSendOps", Long),
    ("numRRecvBytes", Long),
    ("numWSendBytes", Long),
];
const NETWORK_EVENT: &[(&str, Shape)] = &[
    ("procOID", OidS),
    ("ts", Long),
    ("tid", Long),
    ("opFlags", Int),
    ("sip", Int),
    ("sport", Int),
    ("dip", Int),
    ("dport", Int),
    ("proto", Int),
    ("ret", Int),
];

/// The known layout of a writer record mapped to `kind`, if it is exactly one.
pub(crate) fn layout(schema: &Schema, kind: RecordKind, fields: &[FieldDef]) -> Option<Layout> {
    let (layout, shape) = match kind {
        RecordKind::Header => (Layout::Header, HEADER),
        RecordKind::Container => (Layout::Container, CONTAINER),
        RecordKind::Process => (Layout::Process, PROCESS),
        RecordKind::File => (Layout::File, FILE),
        RecordKind::ProcessEvent => (Layout::ProcessEvent, PROCESS_EVENT),
        RecordKind::ProcessFlow => (Layout::ProcessFlow, PROCESS_FLOW),
        RecordKind::FileFlow => (Layout::FileFlow, FILE_FLOW),
        RecordKind::FileEvent => (Layout::FileEvent, FILE_EVENT),
        RecordKind::NetworkFlow => (Layout::NetworkFlow, NETWORK_FLOW),
        RecordKind::NetworkEvent => (Layout::NetworkEvent, NETWORK_EVENT),
        RecordKind::Pod | RecordKind::K8sEvent => return None,
    };
    let same = fields.len() == shape.len()
        && fields
            .iter()
            .zip(shape)
            .all(|(f, (name, s))| f.name == *name && is(schema, &f.ty, *s));
    same.then_some(layout)
}

fn def<'s>(schema: &'s Schema, ty: &Ty) -> Option<&'s Def> {
    match ty {
        Ty::Named(i) => schema.get(*i).map(|n| &n.def),
        _ => None,
    }
}

/// Whether writer type `ty` is exactly `shape`.
fn is(schema: &Schema, ty: &Ty, shape: Shape) -> bool {
    let optional = |inner: Shape| match ty {
        Ty::Union(arms) => {
            matches!(arms.as_slice(), [Ty::Null, t] if is(schema, t, inner))
        }
        _ => false,
    };
    match shape {
        Long => *ty == Ty::Long,
        Int => *ty == Ty::Int,
        Bool => *ty == Ty::Boolean,
        Str => *ty == Ty::String,
        OidS => matches!(
            def(schema, ty),
            Some(Def::Record(f)) if f.len() == 2
                && f.iter().zip(["createTS", "hpid"]).all(|(f, n)| f.name == n && f.ty == Ty::Long)
        ),
        Foid => matches!(def(schema, ty), Some(Def::Fixed(20))),
        OptOid => optional(OidS),
        OptStr => optional(Str),
        OptFoid => optional(Foid),
        Strings => matches!(ty, Ty::Array(items) if **items == Ty::String),
        Shape::Enum(symbols) => matches!(
            def(schema, ty),
            Some(Def::Enum { symbols: s, .. }) if s.len() == symbols.len() && s.iter().zip(symbols).all(|(a, b)| a == b)
        ),
    }
}

impl Cx<'_> {
    fn oid(&mut self) -> R<Oid> {
        Ok(Oid {
            create_ts: self.long()?,
            hpid: self.long()?,
        })
    }

    fn opt<T>(&mut self, read: impl FnOnce(&mut Self) -> R<T>) -> R<Option<T>> {
        match self.union_index(2)? {
            0 => Ok(None),
            _ => read(self).map(Some),
        }
    }

    fn string(&mut self) -> R<String> {
        self.str().map(str::to_owned)
    }

    fn trimmed(&mut self) -> R<String> {
        self.str().map(|s| s.trim().to_owned())
    }

    fn strings(&mut self) -> R<Vec<String>> {
        let mut out = Vec::new();
        loop {
            let count = self.block_count(false)?;
            if count == 0 {
                return Ok(out);
            }
            out.reserve(usize::try_from(count.min(4096)).unwrap_or(0));
            for _ in 0..count {
                out.push(self.string()?);
            }
        }
    }

    fn symbol<T: Copy>(&mut self, all: &[T]) -> R<T> {
        let i = self.enum_index(all.len())?;
        all.get(i)
            .copied()
            .ok_or_else(|| self.damaged_enum(i as i64, all.len()))
    }
}

/// Decodes the fields of a record of a known layout (the union index is already read).
#[inline]
pub(crate) fn decode(cx: &mut Cx<'_>, layout: Layout) -> R<Record> {
    Ok(match layout {
        Layout::FileFlow => Record::FileFlow(FileFlow {
            proc_oid: cx.oid()?,
            ts: cx.long()?,
            tid: cx.long()?,
            op_flags: cx.int()?,
            open_flags: cx.int()?,
            end_ts: cx.long()?,
            file_oid: cx.foid()?,
            fd: cx.int()?,
            num_r_recv_ops: cx.long()?,
            num_w_send_ops: cx.long()?,
            num_r_recv_bytes: cx.long()?,
            num_w_send_bytes: cx.long()?,
        }),
        Layout::NetworkFlow => Record::NetworkFlow(NetworkFlow {
            proc_oid: cx.oid()?,
            ts: cx.long()?,
            tid: cx.long()?,
            op_flags: cx.int()?,
            end_ts: cx.long()?,
            sip: cx.int()?,
            sport: cx.int()?,
            dip: cx.int()?,
            dport: cx.int()?,
            proto: cx.int()?,
            fd: cx.int()?,
            num_r_recv_ops: cx.long()?,
            num_w_send_ops: cx.long()?,
            num_r_recv_bytes: cx.long()?,
            num_w_send_bytes: cx.long()?,
        }),
        Layout::File => Record::File(File {
            state: cx.symbol(ObjectState::ALL)?,
            oid: cx.foid()?,
            ts: cx.long()?,
            restype: cx.int()?,
            path: cx.string()?,
            container_id: cx.opt(Cx::string)?,
        }),
        Layout::ProcessEvent => Record::ProcessEvent(ProcessEvent {
            proc_oid: cx.oid()?,
            ts: cx.long()?,
            tid: cx.long()?,
            op_flags: cx.int()?,
            args: cx.strings()?,
            ret: cx.int()?,
        }),
        Layout::FileEvent => Record::FileEvent(FileEvent {
            proc_oid: cx.oid()?,
            ts: cx.long()?,
            tid: cx.long()?,
            op_flags: cx.int()?,
            file_oid: cx.foid()?,
            ret: cx.int()?,
            new_file_oid: cx.opt(Cx::foid)?,
        }),
        Layout::NetworkEvent => Record::NetworkEvent(NetworkEvent {
            proc_oid: cx.oid()?,
            ts: cx.long()?,
            tid: cx.long()?,
            op_flags: cx.int()?,
            sip: cx.int()?,
            sport: cx.int()?,
            dip: cx.int()?,
            dport: cx.int()?,
            proto: cx.int()?,
            ret: cx.int()?,
        }),
        Layout::ProcessFlow => Record::ProcessFlow(ProcessFlow {
            proc_oid: cx.oid()?,
            ts: cx.long()?,
            num_threads_cloned: cx.long()?,
            op_flags: cx.int()?,
            end_ts: cx.long()?,
            num_threads_exited: cx.long()?,
            num_clone_errors: cx.long()?,
        }),
        Layout::Process => Record::Process(Process {
            state: cx.symbol(ObjectState::ALL)?,
            oid: cx.oid()?,
            poid: cx.opt(Cx::oid)?,
            ts: cx.long()?,
            exe: cx.trimmed()?,
            exe_args: cx.trimmed()?,
            uid: cx.int()?,
            user_name: cx.string()?,
            gid: cx.int()?,
            group_name: cx.string()?,
            tty: cx.boolean()?,
            container_id: cx.opt(Cx::string)?,
            entry: cx.boolean()?,
            cwd: cx.string()?,
            env: cx.strings()?,
        }),
        Layout::Header => Record::Header(SfHeader {
            version: cx.long()?,
            exporter: cx.string()?,
            ip: cx.string()?,
            filename: cx.string()?,
        }),
        Layout::Container => Record::Container(Container {
            id: cx.string()?,
            name: cx.string()?,
            image: cx.string()?,
            imageid: cx.string()?,
            r#type: cx.symbol(ContainerType::ALL)?,
            privileged: cx.boolean()?,
            pod_id: cx.opt(Cx::string)?,
        }),
    })
}
