//! Decode plans: built once per writer schema, they say for every branch of the `rec` union how
//! to read each writer field and where it goes in the model.
//!
//! The mapping tables (one per model record, one line per model field) are those of
//! `avro.rs`: fields are matched **by name**, fields an old layout lacks get the same defaults
//! (`ip` "NA", `filename` "", `entry` false, `podId` null, `cwd` "", `env` [], `openFlags` 0,
//! `fd` 0, `newFileOID` null), writer fields the model does not know are skipped, and the
//! same conversions are allowed (an `int` where the model has a `long` and the reverse when it
//! fits, a value inside a union, an enum by symbol or a string, a FOID as `fixed(20)` or 20
//! `bytes`).

use sf_processor::model::{
    Container, File, FileEvent, FileFlow, K8sEvent, NetworkEvent, NetworkFlow, Oid, Pod, Port,
    Process, ProcessEvent, ProcessFlow, RecordKind, Service, SfHeader,
};

use super::decode::{Fail, R, Slots, missing};
use super::exact::{self, Layout};
use super::schema::{Def, Schema, Ty};
use crate::avro::Branch;

/// What the model wants for one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    /// `long` (timestamps too: nanoseconds whatever the logical type).
    Long,
    /// `int`.
    Int,
    Bool,
    Str,
    /// A string trimmed of surrounding white space (`exe`, `exeArgs`).
    Trimmed,
    /// `fixed(20)`.
    Foid,
    Sym(SymKind),
    /// A nested record, through its mapping table.
    Rec(RecKind),
    /// `["null", T]`.
    Opt(&'static Want),
    Arr(&'static Want),
    /// `map<string>`, sorted by key.
    StrMap,
}

impl Want {
    /// The type the model needs, as errors name it (same words as `avro.rs`).
    pub(crate) fn expected(self) -> &'static str {
        match self {
            Want::Long => "long",
            Want::Int => "int",
            Want::Bool => "boolean",
            Want::Str | Want::Trimmed => "string",
            Want::Foid => "fixed(20)",
            Want::Sym(_) => "enum",
            Want::Rec(_) => "record",
            Want::Opt(inner) => inner.expected(),
            Want::Arr(_) => "array",
            Want::StrMap => "map",
        }
    }
}

/// The model enums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SymKind {
    State,
    ContainerType,
    K8sComponent,
    K8sAction,
}

impl SymKind {
    /// The schema's enum name, for errors.
    pub(crate) fn enum_name(self) -> &'static str {
        match self {
            SymKind::State => "SFObjectState",
            SymKind::ContainerType => "ContainerType",
            SymKind::K8sComponent => "K8sComponent",
            SymKind::K8sAction => "K8sAction",
        }
    }

    /// The index of `symbol` in the model enum's `ALL`.
    pub(crate) fn index_of(self, symbol: &str) -> Option<u8> {
        use sf_processor::model::{ContainerType, K8sAction, K8sComponent, ObjectState};
        let i = match self {
            SymKind::State => ObjectState::from_symbol(symbol)
                .and_then(|v| ObjectState::ALL.iter().position(|x| *x == v)),
            SymKind::ContainerType => ContainerType::from_symbol(symbol)
                .and_then(|v| ContainerType::ALL.iter().position(|x| *x == v)),
            SymKind::K8sComponent => K8sComponent::from_symbol(symbol)
                .and_then(|v| K8sComponent::ALL.iter().position(|x| *x == v)),
            SymKind::K8sAction => K8sAction::from_symbol(symbol)
                .and_then(|v| K8sAction::ALL.iter().position(|x| *x == v)),
        }?;
        u8::try_from(i).ok()
    }
}

/// The model records: the twelve record types and the three nested ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecKind {
    Header,
    Container,
    Pod,
    Process,
    File,
    ProcessEvent,
    ProcessFlow,
    FileFlow,
    FileEvent,
    NetworkFlow,
    NetworkEvent,
    K8sEvent,
    Oid,
    Service,
    Port,
}

impl RecKind {
    fn of(kind: RecordKind) -> RecKind {
        match kind {
            RecordKind::Header => RecKind::Header,
            RecordKind::Container => RecKind::Container,
            RecordKind::Pod => RecKind::Pod,
            RecordKind::Process => RecKind::Process,
            RecordKind::File => RecKind::File,
            RecordKind::ProcessEvent => RecKind::ProcessEvent,
            RecordKind::ProcessFlow => RecKind::ProcessFlow,
            RecordKind::FileFlow => RecKind::FileFlow,
            RecordKind::FileEvent => RecKind::FileEvent,
            RecordKind::NetworkFlow => RecKind::NetworkFlow,
            RecordKind::NetworkEvent => RecKind::NetworkEvent,
            RecordKind::K8sEvent => RecKind::K8sEvent,
        }
    }

    fn table(self) -> &'static [FieldSpec] {
        match self {
            RecKind::Header => HEADER,
            RecKind::Container => CONTAINER,
            RecKind::Pod => POD,
            RecKind::Process => PROCESS,
            RecKind::File => FILE,
            RecKind::ProcessEvent => PROCESS_EVENT,
            RecKind::ProcessFlow => PROCESS_FLOW,
            RecKind::FileFlow => FILE_FLOW,
            RecKind::FileEvent => FILE_EVENT,
            RecKind::NetworkFlow => NETWORK_FLOW,
            RecKind::NetworkEvent => NETWORK_EVENT,
            RecKind::K8sEvent => K8S_EVENT,
            RecKind::Oid => OID,
            RecKind::Service => SERVICE,
            RecKind::Port => PORT,
        }
    }
}

/// One model field: its slot in [`Slots`], its writer names (current first), what it wants,
/// and whether every schema version has it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FieldSpec {
    pub(crate) slot: u8,
    pub(crate) names: &'static [&'static str],
    pub(crate) want: Want,
    pub(crate) required: bool,
}

/// Declares a mapping table and the function that builds the model record from the slots.
/// One line per model field: `SLOT field: ["writerName", "olderName"] WANT, getter;` for a
/// field every version has, `... getter = DEFAULT;` for a field older versions lack.
macro_rules! mapping {
    ($table:ident, $build:ident -> $ty:ident {
        $($slot:literal $field:ident: [$first:literal $(, $older:literal)*] $want:expr, $get:ident $(= $default:expr)?;)+
    }) => {
        pub(crate) const $table: &[FieldSpec] = &[$(FieldSpec {
            slot: $slot,
            names: &[$first $(, $older)*],
            want: $want,
            required: mapping!(@required $($default)?),
        }),+];

        pub(crate) fn $build(s: &mut Slots) -> R<$ty> {
            Ok($ty {
                $($field: mapping!(@get s, $slot, $first, $get $(, $default)?),)+
            })
        }
    };
    (@required) => { true };
    (@required $default:expr) => { false };
    (@get $s:ident, $slot:literal, $name:literal, $get:ident) => {
        $s.$get($slot, $name)?.ok_or_else(|| missing($name))?
    };
    (@get $s:ident, $slot:literal, $name:literal, $get:ident, $default:expr) => {
        $s.$get($slot, $name)?.unwrap_or_else(|| $default)
    };
}

const OID_W: Want = Want::Rec(RecKind::Oid);
const STATE: Want = Want::Sym(SymKind::State);

mapping!(HEADER, build_header -> SfHeader {
    0 version: ["version"] Want::Long, long;
    1 exporter: ["exporter"] Want::Str, string;
    2 ip: ["ip"] Want::Str, string = "NA".to_owned(); // schema 2+
    3 filename: ["filename"] Want::Str, string = String::new(); // schema 3+
});

mapping!(CONTAINER, build_container -> Container {
    0 id: ["id"] Want::Str, string;
    1 name: ["name"] Want::Str, string;
    2 image: ["image"] Want::Str, string;
    3 imageid: ["imageid"] Want::Str, string;
    4 r#type: ["type"] Want::Sym(SymKind::ContainerType), container_type;
    5 privileged: ["privileged"] Want::Bool, boolean;
    6 pod_id: ["podId"] Want::Opt(&Want::Str), opt_string = None; // schema 4+
});

mapping!(POD, build_pod -> Pod {
    0 ts: ["ts"] Want::Long, long;
    1 id: ["id"] Want::Str, string;
    2 name: ["name"] Want::Str, string;
    3 node_name: ["nodeName"] Want::Str, string;
    4 host_ip: ["hostIP"] Want::Arr(&Want::Long), longs;
    5 internal_ip: ["internalIP"] Want::Arr(&Want::Long), longs;
    6 namespace: ["namespace"] Want::Str, string;
    7 restart_count: ["restartCount"] Want::Long, long;
    8 labels: ["labels"] Want::StrMap, pairs;
    9 selectors: ["selectors"] Want::StrMap, pairs;
    10 services: ["services"] Want::Arr(&Want::Rec(RecKind::Service)), services;
});

mapping!(SERVICE, build_service -> Service {
    0 name: ["name"] Want::Str, string;
    1 id: ["id"] Want::Str, string;
    2 namespace: ["namespace"] Want::Str, string;
    3 port_list: ["portList"] Want::Arr(&Want::Rec(RecKind::Port)), ports;
    4 cluster_ip: ["clusterIP"] Want::Arr(&Want::Long), longs;
});

mapping!(PORT, build_port -> Port {
    0 port: ["port"] Want::Int, int;
    1 target_port: ["targetPort"] Want::Int, int;
    2 node_port: ["nodePort"] Want::Int, int;
    3 proto: ["proto"] Want::Str, string;
});

mapping!(PROCESS, build_process -> Process {
    0 state: ["state"] STATE, state;
    1 oid: ["oid"] OID_W, oid;
    2 poid: ["poid"] Want::Opt(&OID_W), opt_oid;
    3 ts: ["ts"] Want::Long, long;
    4 exe: ["exe"] Want::Trimmed, string;
    5 exe_args: ["exeArgs"] Want::Trimmed, string;
    6 uid: ["uid"] Want::Int, int;
    7 user_name: ["userName"] Want::Str, string;
    8 gid: ["gid"] Want::Int, int;
    9 group_name: ["groupName"] Want::Str, string;
    10 tty: ["tty"] Want::Bool, boolean;
    11 container_id: ["containerId"] Want::Opt(&Want::Str), opt_string;
    12 entry: ["entry"] Want::Bool, boolean = false; // schema 2+
    13 cwd: ["cwd"] Want::Str, string = String::new(); // schema 5
    14 env: ["env"] Want::Arr(&Want::Str), strings = Vec::new(); // schema 5
});

mapping!(OID, build_oid -> Oid {
    0 create_ts: ["createTS"] Want::Long, long;
    1 hpid: ["hpid"] Want::Long, long;
});

mapping!(FILE, build_file -> File {
    0 state: ["state"] STATE, state;
    1 oid: ["oid"] Want::Foid, foid;
    2 ts: ["ts"] Want::Long, long;
    3 restype: ["restype"] Want::Int, int;
    4 path: ["path"] Want::Str, string;
    5 container_id: ["containerId"] Want::Opt(&Want::Str), opt_string;
});

mapping!(PROCESS_EVENT, build_process_event -> ProcessEvent {
    0 proc_oid: ["procOID"] OID_W, oid;
    1 ts: ["ts"] Want::Long, long;
    2 tid: ["tid"] Want::Long, long;
    3 op_flags: ["opFlags"] Want::Int, int;
    4 args: ["args"] Want::Arr(&Want::Str), strings;
    5 ret: ["ret"] Want::Int, int;
});

mapping!(PROCESS_FLOW, build_process_flow -> ProcessFlow {
    0 proc_oid: ["procOID"] OID_W, oid;
    1 ts: ["ts"] Want::Long, long;
    2 num_threads_cloned: ["numThreadsCloned"] Want::Long, long;
    3 op_flags: ["opFlags"] Want::Int, int;
    4 end_ts: ["endTs"] Want::Long, long;
    5 num_threads_exited: ["numThreadsExited"] Want::Long, long;
    6 num_clone_errors: ["numCloneErrors"] Want::Long, long;
});

mapping!(FILE_FLOW, build_file_flow -> FileFlow {
    0 proc_oid: ["procOID"] OID_W, oid;
    1 ts: ["ts"] Want::Long, long;
    2 tid: ["tid"] Want::Long, long;
    3 op_flags: ["opFlags"] Want::Int, int;
    4 open_flags: ["openFlags"] Want::Int, int = 0; // not in the earliest layout
    5 end_ts: ["endTs"] Want::Long, long;
    6 file_oid: ["fileOID"] Want::Foid, foid;
    7 fd: ["fd"] Want::Int, int;
    8 num_r_recv_ops: ["numRRecvOps"] Want::Long, long;
    9 num_w_send_ops: ["numWSendOps"] Want::Long, long;
    10 num_r_recv_bytes: ["numRRecvBytes"] Want::Long, long;
    11 num_w_send_bytes: ["numWSendBytes"] Want::Long, long;
});

mapping!(FILE_EVENT, build_file_event -> FileEvent {
    0 proc_oid: ["procOID"] OID_W, oid;
    1 ts: ["ts"] Want::Long, long;
    2 tid: ["tid"] Want::Long, long;
    3 op_flags: ["opFlags"] Want::Int, int;
    4 file_oid: ["fileOID"] Want::Foid, foid;
    5 ret: ["ret"] Want::Int, int;
    6 new_file_oid: ["newFileOID"] Want::Opt(&Want::Foid), opt_foid = None;
});

mapping!(NETWORK_FLOW, build_network_flow -> NetworkFlow {
    0 proc_oid: ["procOID"] OID_W, oid;
    1 ts: ["ts"] Want::Long, long;
    2 tid: ["tid"] Want::Long, long;
    3 op_flags: ["opFlags"] Want::Int, int;
    4 end_ts: ["endTs"] Want::Long, long;
    5 sip: ["sip"] Want::Int, int;
    6 sport: ["sport"] Want::Int, int;
    7 dip: ["dip"] Want::Int, int;
    8 dport: ["dport"] Want::Int, int;
    9 proto: ["proto"] Want::Int, int;
    10 fd: ["fd"] Want::Int, int = 0; // not in the earliest layout
    11 num_r_recv_ops: ["numRRecvOps"] Want::Long, long;
    12 num_w_send_ops: ["numWSendOps"] Want::Long, long;
    13 num_r_recv_bytes: ["numRRecvBytes"] Want::Long, long;
    14 num_w_send_bytes: ["numWSendBytes"] Want::Long, long;
});

mapping!(NETWORK_EVENT, build_network_event -> NetworkEvent {
    0 proc_oid: ["procOID"] OID_W, oid;
    1 ts: ["ts"] Want::Long, long;
    2 tid: ["tid"] Want::Long, long;
    3 op_flags: ["opFlags"] Want::Int, int;
    4 sip: ["sip"] Want::Int, int;
    5 sport: ["sport"] Want::Int, int;
    6 dip: ["dip"] Want::Int, int;
    7 dport: ["dport"] Want::Int, int;
    8 proto: ["proto"] Want::Int, int;
    9 ret: ["ret"] Want::Int, int;
});

mapping!(K8S_EVENT, build_k8s_event -> K8sEvent {
    0 kind: ["kind"] Want::Sym(SymKind::K8sComponent), k8s_component;
    1 action: ["action"] Want::Sym(SymKind::K8sAction), k8s_action;
    2 ts: ["ts"] Want::Long, long;
    3 message: ["message"] Want::Str, string;
});

// ---------------------------------------------------------------------------------------------
// Compiled reads
// ---------------------------------------------------------------------------------------------

/// How to read one writer value into one model value (see [`super::decode::V`]).
#[derive(Debug, Clone)]
pub(crate) enum Read {
    /// Writer `long`.
    Long,
    /// Writer `int` where the model has a `long`.
    IntAsLong,
    /// Writer `int`.
    Int,
    /// Writer `long` where the model has an `int`: out of range is a field problem.
    IntFromLong,
    Bool,
    Str,
    Trimmed,
    /// Writer `fixed(20)`.
    Fixed20,
    /// Writer `bytes` where the model has a FOID: must hold 20 bytes.
    Bytes20,
    /// Writer enum: model symbol index by writer symbol index (`None`: unknown symbol).
    Sym {
        kind: SymKind,
        map: Box<[Option<u8>]>,
        symbols: Box<[Box<str>]>,
    },
    /// Writer `string` where the model has an enum.
    SymStr(SymKind),
    /// Writer `null` where the model has an optional value.
    Null,
    /// Writer union: one read per branch.
    Union(Box<[Read]>),
    /// Writer array.
    Array(Box<Read>, Collect),
    /// Writer `map` of strings.
    Map(Box<Read>),
    /// Writer record with exactly the fields `createTS: long, hpid: long` (every SysFlow
    /// version): the OID, read straight.
    Oid2,
    /// Writer record, through a mapping table.
    Record(Box<RecPlan>),
    /// A writer field the model does not know: skipped (by the step's type).
    Skip,
    /// A writer type the model cannot take: skipped, then reported.
    Mismatch {
        ty: Ty,
        expected: &'static str,
        found: Box<str>,
    },
}

/// What an array's items are collected into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Collect {
    Strings,
    Longs,
    Services,
    Ports,
    /// Items of a type the model cannot take (each item reports the mismatch).
    Nothing,
}

/// One writer field of a record: how to read it and the model slot it fills (`None`: the model
/// does not know it, skip it).
#[derive(Debug, Clone)]
pub(crate) struct Step {
    pub(crate) read: Read,
    pub(crate) ty: Ty,
    pub(crate) slot: Option<u8>,
    pub(crate) name: Box<str>,
}

/// The plan of one writer record onto one model record.
#[derive(Debug, Clone)]
pub(crate) struct RecPlan {
    pub(crate) target: RecKind,
    pub(crate) steps: Box<[Step]>,
    /// A field every version has that this writer's record lacks: every datum of it fails.
    pub(crate) missing: Option<&'static str>,
}

/// One branch of the `rec` union.
#[derive(Debug, Clone)]
pub(crate) struct BranchPlan {
    pub(crate) info: Branch,
    pub(crate) ty: Ty,
    /// `None` for a branch that is not a known SysFlow record.
    pub(crate) plan: Option<RecPlan>,
    /// The branch's layout when it is exactly one the straight-line decoders know.
    pub(crate) layout: Option<Layout>,
}

/// The plan of a whole `sysflow.SysFlow` datum.
#[derive(Debug, Clone)]
pub(crate) struct TopPlan {
    /// Types of the fields of `sysflow.SysFlow` before `rec` (none in every known version).
    pub(crate) before: Vec<Ty>,
    pub(crate) branches: Vec<BranchPlan>,
    /// Types of the fields after `rec`.
    pub(crate) after: Vec<Ty>,
}

/// Builds the plan for a writer schema; on error, says why it is not a SysFlow schema (the
/// same words as `avro::BranchTable::from_schema`).
pub(crate) fn top_plan(schema: &Schema) -> Result<TopPlan, String> {
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
    let branches = arms.iter().map(|arm| branch_plan(schema, arm)).collect();
    Ok(TopPlan {
        before: before.iter().map(|f| f.ty.clone()).collect(),
        branches,
        after: after.iter().map(|f| f.ty.clone()).collect(),
    })
}

/// The record kind of a union branch, by the writer's record name (namespace ignored), with
/// the one layout quirk known: the earliest writers (header 1000) name their process events
/// `sysflow.flow.ProcessFlow` (fields `args`, `ret`, no `endTs`).
fn branch_plan(schema: &Schema, arm: &Ty) -> BranchPlan {
    let named = match arm {
        Ty::Named(i) => schema.get(*i),
        _ => None,
    };
    let Some((named, fields)) = named.and_then(|n| match &n.def {
        Def::Record(fields) => Some((n, fields)),
        _ => None,
    }) else {
        return BranchPlan {
            info: Branch {
                name: schema.describe(arm),
                kind: None,
            },
            ty: arm.clone(),
            plan: None,
            layout: None,
        };
    };
    let has = |name: &str| fields.iter().any(|f| f.name == name);
    let kind = match RecordKind::from_name(named.simple_name()) {
        Some(RecordKind::ProcessFlow) if has("args") && !has("endTs") => {
            Some(RecordKind::ProcessEvent)
        }
        kind => kind,
    };
    BranchPlan {
        info: Branch {
            name: named.fullname.clone(),
            kind,
        },
        ty: arm.clone(),
        plan: kind.map(|k| record_plan(schema, fields, RecKind::of(k))),
        layout: kind.and_then(|k| exact::layout(schema, k, fields)),
    }
}

fn record_plan(schema: &Schema, fields: &[super::schema::FieldDef], target: RecKind) -> RecPlan {
    let table = target.table();
    // The model field each writer field fills, by name (current name first).
    let mut claimed: Vec<Option<&FieldSpec>> = vec![None; fields.len()];
    let mut missing = None;
    for spec in table {
        let found = spec.names.iter().find_map(|name| {
            (0..fields.len()).find(|&i| {
                fields.get(i).is_some_and(|f| f.name == *name)
                    && claimed.get(i).is_some_and(Option::is_none)
            })
        });
        match found {
            Some(i) => {
                if let Some(c) = claimed.get_mut(i) {
                    *c = Some(spec);
                }
            }
            None if spec.required && missing.is_none() => {
                missing = spec.names.first().copied();
            }
            None => {}
        }
    }
    let steps = fields
        .iter()
        .zip(claimed)
        .map(|(field, spec)| Step {
            read: match spec {
                Some(spec) => compile(schema, &field.ty, spec.want),
                None => Read::Skip,
            },
            ty: field.ty.clone(),
            slot: spec.map(|s| s.slot),
            name: field.name.as_str().into(),
        })
        .collect();
    RecPlan {
        target,
        steps,
        missing,
    }
}

fn mismatch(schema: &Schema, ty: &Ty, want: Want) -> Read {
    Read::Mismatch {
        ty: ty.clone(),
        expected: want.expected(),
        found: schema.describe(ty).into(),
    }
}

/// How to read a writer value of type `ty` into what the model wants.
fn compile(schema: &Schema, ty: &Ty, want: Want) -> Read {
    if let Ty::Union(arms) = ty {
        return Read::Union(arms.iter().map(|arm| compile(schema, arm, want)).collect());
    }
    let def = match ty {
        Ty::Named(i) => schema.get(*i).map(|n| &n.def),
        _ => None,
    };
    match (want, ty, def) {
        (Want::Opt(_), Ty::Null, _) => Read::Null,
        (Want::Opt(inner), _, _) => compile(schema, ty, *inner),
        (Want::Long, Ty::Long, _) => Read::Long,
        (Want::Long, Ty::Int, _) => Read::IntAsLong,
        (Want::Int, Ty::Int, _) => Read::Int,
        (Want::Int, Ty::Long, _) => Read::IntFromLong,
        (Want::Bool, Ty::Boolean, _) => Read::Bool,
        (Want::Str, Ty::String, _) => Read::Str,
        (Want::Trimmed, Ty::String, _) => Read::Trimmed,
        (Want::Foid, _, Some(Def::Fixed(20))) => Read::Fixed20,
        (Want::Foid, Ty::Bytes, _) => Read::Bytes20,
        (Want::Sym(kind), _, Some(Def::Enum(symbols))) => Read::Sym {
            kind,
            map: symbols.iter().map(|s| kind.index_of(s)).collect(),
            symbols: symbols.iter().map(|s| s.as_str().into()).collect(),
        },
        (Want::Sym(kind), Ty::String, _) => Read::SymStr(kind),
        (Want::Rec(RecKind::Oid), _, Some(Def::Record(fields)))
            if fields.len() == 2
                && fields
                    .iter()
                    .zip(["createTS", "hpid"])
                    .all(|(f, name)| f.name == name && f.ty == Ty::Long) =>
        {
            Read::Oid2
        }
        (Want::Rec(kind), _, Some(Def::Record(fields))) => {
            Read::Record(Box::new(record_plan(schema, fields, kind)))
        }
        (Want::Arr(item), Ty::Array(items), _) => {
            let collect = match item {
                Want::Str => Collect::Strings,
                Want::Long => Collect::Longs,
                Want::Rec(RecKind::Service) => Collect::Services,
                Want::Rec(RecKind::Port) => Collect::Ports,
                _ => Collect::Nothing,
            };
            Read::Array(Box::new(compile(schema, items, *item)), collect)
        }
        (Want::StrMap, Ty::Map(values), _) => {
            Read::Map(Box::new(compile(schema, values, Want::Str)))
        }
        _ => mismatch(schema, ty, want),
    }
}

/// A field problem found while building a record: used by the slot getters.
pub(crate) fn wrong_slot(field: &'static str, expected: &'static str) -> Box<Fail> {
    Fail::field(
        field,
        crate::avro::FieldProblem::WrongType {
            expected,
            found: "another type".to_owned(),
        },
    )
}
