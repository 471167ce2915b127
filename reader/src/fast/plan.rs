//! Decode plans: what resolution (`resolve.rs`) builds once per writer schema, and the
//! builders that turn a record's resolved values into the model.
//!
//! A plan says, for every branch of the writer's `rec` union, which reader record it is and,
//! for each writer field in writer order, how to read it and which reader field (slot) it
//! fills, or that it is skipped; reader fields the writer lacks get the reader schema's
//! default. The slots of a record are the fields of the reader schema's record, in its order,
//! which is the order of the model struct's fields: each builder below lists them (a unit test
//! checks that the lists and `resources/schemas/sysflow-reader.avsc` agree).

use sf_processor::model::{
    Container, File, FileEvent, FileFlow, K8sEvent, NetworkEvent, NetworkFlow, Oid, Pod, Port,
    Process, ProcessEvent, ProcessFlow, RecordKind, Service, SfHeader,
};

use super::decode::{R, Slots, V, missing};
use super::exact::Layout;
use super::schema::Ty;
use crate::branch::Branch;

/// The reader schema's records: the twelve record types and the three nested ones.
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
    /// Every reader record.
    pub(crate) const ALL: [RecKind; 15] = [
        RecKind::Header,
        RecKind::Container,
        RecKind::Pod,
        RecKind::Process,
        RecKind::File,
        RecKind::ProcessEvent,
        RecKind::ProcessFlow,
        RecKind::FileFlow,
        RecKind::FileEvent,
        RecKind::NetworkFlow,
        RecKind::NetworkEvent,
        RecKind::K8sEvent,
        RecKind::Oid,
        RecKind::Service,
        RecKind::Port,
    ];

    /// The reader schema's name of the record, without namespace.
    pub(crate) fn name(self) -> &'static str {
        match self.record_kind() {
            Some(kind) => kind.name(),
            None => match self {
                RecKind::Oid => "OID",
                RecKind::Service => "Service",
                _ => "Port",
            },
        }
    }

    /// The reader record called `simple` (no namespace).
    pub(crate) fn from_name(simple: &str) -> Option<RecKind> {
        RecKind::ALL.into_iter().find(|k| k.name() == simple)
    }

    /// The model record type, for the twelve top-level records.
    pub(crate) fn record_kind(self) -> Option<RecordKind> {
        Some(match self {
            RecKind::Header => RecordKind::Header,
            RecKind::Container => RecordKind::Container,
            RecKind::Pod => RecordKind::Pod,
            RecKind::Process => RecordKind::Process,
            RecKind::File => RecordKind::File,
            RecKind::ProcessEvent => RecordKind::ProcessEvent,
            RecKind::ProcessFlow => RecordKind::ProcessFlow,
            RecKind::FileFlow => RecordKind::FileFlow,
            RecKind::FileEvent => RecordKind::FileEvent,
            RecKind::NetworkFlow => RecordKind::NetworkFlow,
            RecKind::NetworkEvent => RecordKind::NetworkEvent,
            RecKind::K8sEvent => RecordKind::K8sEvent,
            RecKind::Oid | RecKind::Service | RecKind::Port => return None,
        })
    }

    /// The reader fields the builder takes, in slot order.
    pub(crate) fn fields(self) -> &'static [&'static str] {
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

/// Declares a builder: the model record from the slots, one line per model field in reader
/// field order (`SLOT field: "readerName", getter;`), and the list of reader field names.
macro_rules! builder {
    ($fields:ident, $build:ident -> $ty:ident {
        $($slot:literal $field:ident: $name:literal, $get:ident;)+
    }) => {
        const $fields: &[&str] = &[$($name),+];

        pub(crate) fn $build(s: &mut Slots) -> R<$ty> {
            Ok($ty {
                $($field: s.$get($slot, $name)?.ok_or_else(|| missing($name))?,)+
            })
        }
    };
}

builder!(HEADER, build_header -> SfHeader {
    0 version: "version", long;
    1 exporter: "exporter", string;
    2 ip: "ip", string;
    3 filename: "filename", string;
});

builder!(CONTAINER, build_container -> Container {
    0 id: "id", string;
    1 name: "name", string;
    2 image: "image", string;
    3 imageid: "imageid", string;
    4 r#type: "type", container_type;
    5 privileged: "privileged", boolean;
    6 pod_id: "podId", opt_string;
});

builder!(POD, build_pod -> Pod {
    0 ts: "ts", long;
    1 id: "id", string;
    2 name: "name", string;
    3 node_name: "nodeName", string;
    4 host_ip: "hostIP", longs;
    5 internal_ip: "internalIP", longs;
    6 namespace: "namespace", string;
    7 restart_count: "restartCount", long;
    8 labels: "labels", pairs;
    9 selectors: "selectors", pairs;
    10 services: "services", services;
});

builder!(SERVICE, build_service -> Service {
    0 name: "name", string;
    1 id: "id", string;
    2 namespace: "namespace", string;
    3 port_list: "portList", ports;
    4 cluster_ip: "clusterIP", longs;
});

builder!(PORT, build_port -> Port {
    0 port: "port", int;
    1 target_port: "targetPort", int;
    2 node_port: "nodePort", int;
    3 proto: "proto", string;
});

// `exe` and `exeArgs` are trimmed of surrounding white space, as the reference reader does
// (`strings.TrimSpace`).
builder!(PROCESS, build_process -> Process {
    0 state: "state", state;
    1 oid: "oid", oid;
    2 poid: "poid", opt_oid;
    3 ts: "ts", long;
    4 exe: "exe", trimmed;
    5 exe_args: "exeArgs", trimmed;
    6 uid: "uid", int;
    7 user_name: "userName", string;
    8 gid: "gid", int;
    9 group_name: "groupName", string;
    10 tty: "tty", boolean;
    11 container_id: "containerId", opt_string;
    12 entry: "entry", boolean;
    13 cwd: "cwd", string;
    14 env: "env", strings;
});

builder!(OID, build_oid -> Oid {
    0 create_ts: "createTS", long;
    1 hpid: "hpid", long;
});

builder!(FILE, build_file -> File {
    0 state: "state", state;
    1 oid: "oid", foid;
    2 ts: "ts", long;
    3 restype: "restype", int;
    4 path: "path", string;
    5 container_id: "containerId", opt_string;
});

builder!(PROCESS_EVENT, build_process_event -> ProcessEvent {
    0 proc_oid: "procOID", oid;
    1 ts: "ts", long;
    2 tid: "tid", long;
    3 op_flags: "opFlags", int;
    4 args: "args", strings;
    5 ret: "ret", int;
});

builder!(PROCESS_FLOW, build_process_flow -> ProcessFlow {
    0 proc_oid: "procOID", oid;
    1 ts: "ts", long;
    2 num_threads_cloned: "numThreadsCloned", long;
    3 op_flags: "opFlags", int;
    4 end_ts: "endTs", long;
    5 num_threads_exited: "numThreadsExited", long;
    6 num_clone_errors: "numCloneErrors", long;
});

builder!(FILE_FLOW, build_file_flow -> FileFlow {
    0 proc_oid: "procOID", oid;
    1 ts: "ts", long;
    2 tid: "tid", long;
    3 op_flags: "opFlags", int;
    4 open_flags: "openFlags", int;
    5 end_ts: "endTs", long;
    6 file_oid: "fileOID", foid;
    7 fd: "fd", int;
    8 num_r_recv_ops: "numRRecvOps", long;
    9 num_w_send_ops: "numWSendOps", long;
    10 num_r_recv_bytes: "numRRecvBytes", long;
    11 num_w_send_bytes: "numWSendBytes", long;
});

builder!(FILE_EVENT, build_file_event -> FileEvent {
    0 proc_oid: "procOID", oid;
    1 ts: "ts", long;
    2 tid: "tid", long;
    3 op_flags: "opFlags", int;
    4 file_oid: "fileOID", foid;
    5 ret: "ret", int;
    6 new_file_oid: "newFileOID", opt_foid;
});

builder!(NETWORK_FLOW, build_network_flow -> NetworkFlow {
    0 proc_oid: "procOID", oid;
    1 ts: "ts", long;
    2 tid: "tid", long;
    3 op_flags: "opFlags", int;
    4 end_ts: "endTs", long;
    5 sip: "sip", int;
    6 sport: "sport", int;
    7 dip: "dip", int;
    8 dport: "dport", int;
    9 proto: "proto", int;
    10 fd: "fd", int;
    11 num_r_recv_ops: "numRRecvOps", long;
    12 num_w_send_ops: "numWSendOps", long;
    13 num_r_recv_bytes: "numRRecvBytes", long;
    14 num_w_send_bytes: "numWSendBytes", long;
});

builder!(NETWORK_EVENT, build_network_event -> NetworkEvent {
    0 proc_oid: "procOID", oid;
    1 ts: "ts", long;
    2 tid: "tid", long;
    3 op_flags: "opFlags", int;
    4 sip: "sip", int;
    5 sport: "sport", int;
    6 dip: "dip", int;
    7 dport: "dport", int;
    8 proto: "proto", int;
    9 ret: "ret", int;
});

builder!(K8S_EVENT, build_k8s_event -> K8sEvent {
    0 kind: "kind", k8s_component;
    1 action: "action", k8s_action;
    2 ts: "ts", long;
    3 message: "message", string;
});

// ---------------------------------------------------------------------------------------------
// Compiled reads
// ---------------------------------------------------------------------------------------------

/// How to read one writer value into one reader value (see [`V`]).
#[derive(Debug, Clone)]
pub(crate) enum Read {
    /// Writer `long`, reader `long`.
    Long,
    /// Writer `int`, reader `long` (promotion).
    IntAsLong,
    /// Writer `int`, reader `int`.
    Int,
    Bool,
    /// Writer `string`, reader `string`.
    Str,
    /// Writer `bytes`, reader `string` (promotion): must be UTF-8.
    BytesAsStr,
    /// Writer `fixed(20)`, reader FOID.
    Fixed20,
    /// Writer enum, reader enum: the reader's symbol index by the writer's (`None`: a symbol
    /// the reader has not, and the reader enum has no default).
    Sym {
        map: Box<[Option<u8>]>,
        symbols: Box<[Box<str>]>,
        enum_name: Box<str>,
    },
    /// Writer enum, reader `int`, by a table of [`super::resolve::RENAMED`]: the value by the
    /// writer's symbol index (`None`: a symbol the table has not).
    SymAsInt {
        map: Box<[Option<i32>]>,
        symbols: Box<[Box<str>]>,
        enum_name: Box<str>,
    },
    /// Writer `null`, reader union with `null`.
    Null,
    /// Writer union: one read per branch.
    Union(Box<[Read]>),
    /// Writer array, reader array.
    Array(Box<Read>, Collect),
    /// Writer map, reader `map<string>`.
    Map(Box<Read>),
    /// Writer record with exactly the fields `createTS: long, hpid: long` (every SysFlow
    /// version), reader OID: read straight.
    Oid2,
    /// Writer record, reader record: through its plan.
    Record(Box<RecPlan>),
    /// A writer field the reader has not: skipped (by the step's writer type).
    Skip,
    /// A branch of a writer union that cannot be read as the reader's type: skipped, then
    /// reported as a field problem of the datum.
    Mismatch {
        ty: Ty,
        expected: Box<str>,
        found: Box<str>,
    },
}

/// What an array's items are collected into (by the reader's item type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Collect {
    Strings,
    Longs,
    Services,
    Ports,
}

/// One writer field of a record: how to read it and the reader slot it fills (`None`: the
/// reader has no such field, or cannot take its type; skipped).
#[derive(Debug, Clone)]
pub(crate) struct Step {
    pub(crate) read: Read,
    pub(crate) ty: Ty,
    pub(crate) slot: Option<u8>,
    pub(crate) name: Box<str>,
}

/// The plan of one writer record onto one reader record.
#[derive(Debug, Clone)]
pub(crate) struct RecPlan {
    pub(crate) target: RecKind,
    pub(crate) steps: Box<[Step]>,
    /// The reader fields no writer field fills, with the reader schema's default.
    pub(crate) defaults: Box<[(u8, V)]>,
}

/// One branch of the writer's `rec` union.
#[derive(Debug, Clone)]
pub(crate) struct BranchPlan {
    pub(crate) info: Branch,
    pub(crate) ty: Ty,
    /// `None` for a branch that resolves to no reader record.
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

/// A value of a slot that is not what its builder takes (a reader schema out of step with
/// the builders; the unit tests rule it out): reported as a field problem, not a panic.
pub(crate) fn wrong_slot(field: &'static str, expected: &'static str) -> Box<super::decode::Fail> {
    super::decode::Fail::field(
        field,
        crate::error::FieldProblem::WrongType {
            expected: expected.into(),
            found: "another type".into(),
        },
    )
}
