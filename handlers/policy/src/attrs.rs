//! The attribute table: every attribute name the reference's policy engine knows (its
//! `sf.*` names and the Falco names it maps, `source/flatrecord/fieldmapper.go` v0.7.0), what
//! each one reads from a record and its context, and how its value reads as a string, a
//! number or "exists". All attribute access of the engine is in this module.
//!
//! Values follow the reference's mappers:
//!
//! - a string value has one leading and one trailing quote removed (`MapStr`); a number reads
//!   as its decimal digits, `sf.proc.tty` and `sf.proc.entry` as `true`/`false`, a boolean
//!   as `true`/`false`;
//! - names are Go's `filepath.Base` (`sf.proc.name`, `fd.name`: `"."` without a path),
//!   directories Go's `filepath.Dir` (`"."` without a path);
//! - lists of values (`sf.opflags`, `sf.proc.aname`, `sf.net.ip`, `sf.net.port`) are joined
//!   with `,`, which the comparisons split again;
//! - as a number (`<`, `>`, ...), only a numeric attribute has a value; anything else is 0;
//! - "exists" is a non-zero value: a non-empty string (before quotes are removed), a non-zero
//!   number, `true`.
//!
//! Where the reference reads a value of another record type from the shared slots of its
//! flat record (a file event's `sf.file.fd` is its new file's state; a file flow's
//! `sf.net.sip` its open flags; every flow's `sf.flow.*` counters twice their value), the
//! attribute here has the zero value of a record type it does not apply to, and the counters
//! are the record's own (see the README's differences).

use std::fmt::Write;

use handler_sdk::Context;
use handler_sdk::gopath as paths;
use handler_sdk::model::{
    File, FileEvent, FileFlow, K8sEvent, NetworkEvent, NetworkFlow, Oid, Process, ProcessEvent,
    ProcessFlow, RecordKind, op_flags,
};

use crate::ancestry::{Lineage, ProcView};

/// How an attribute's value is typed, which decides how it compares (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// A string.
    Str,
    /// A 64-bit integer.
    Int,
    /// An integer that reads as `true`/`false` as a string (`sf.proc.tty`, `sf.proc.entry`).
    IntBool,
    /// A boolean.
    Bool,
    /// The parent's 32-bit ids (`sf.pproc.uid`, `sf.pproc.gid`): a number as a string, 0 as a
    /// number (the reference's `MapInt` only takes 64-bit values).
    Int32,
    /// The parent's `tty`/`entry`: `true`/`false`, or `0` when there is no parent.
    ParentBool,
    /// A pod's IP or service array (`sf.pod.hostip+`, ...): empty as a string, 0 as a number,
    /// exists with a pod.
    Array,
}

/// What an attribute depends on, which decides what can be folded when rules are compiled
/// for one record type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Only the record type (`sf.type`, `evt.dir`).
    Kind,
    /// The record's own fields, for the record types in the mask ([`Field::applies`]).
    Event,
    /// The record's context: process, ancestors, container, pod, file, header.
    Context,
}

macro_rules! fields {
    ($($(#[$m:meta])* $v:ident = $t:ident, $s:ident, [$($name:literal),+];)+) => {
        /// One attribute: what it reads. Several names can read the same field.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Field { $($(#[$m])* $v),+ }

        impl Field {
            /// The value type.
            pub fn value_type(self) -> ValueType {
                match self { $(Field::$v => ValueType::$t),+ }
            }
            /// What the value depends on.
            pub fn source(self) -> Source {
                match self { $(Field::$v => Source::$s),+ }
            }
            /// Every name of every field: (name, field).
            pub const NAMES: &'static [(&'static str, Field)] = &[$($(($name, Field::$v)),+),+];
        }
    };
}

fields! {
    /// `sf.type`: `PE`, `PF`, `FF`, `FE`, `NF`, `NE`, `KE`.
    Type = Str, Kind, ["sf.type", "evt.rawres"];
    /// `evt.dir`: always `>,<`.
    Dir = Str, Kind, ["evt.dir"];
    /// `sf.ts` (ns).
    Ts = Int, Event, ["sf.ts", "evt.rawtime"];
    /// `sf.endts` (ns; a k8s event's is its `ts`).
    EndTs = Int, Event, ["sf.endts"];
    /// Thread id.
    Tid = Int, Event, ["sf.proc.tid", "proc.tid"];
    /// The opFlags names, joined with `,` (`SEND`/`RECV` for network flows).
    OpFlags = Str, Event, ["sf.opflags", "evt.type"];
    /// Return code of process, file and network events.
    Ret = Int, Event, ["sf.ret"];
    /// File descriptor of a file or network flow.
    Fd = Int, Event, ["sf.file.fd", "fd.num"];
    /// Bytes read or received (the record's own, not doubled).
    RBytes = Int, Event, ["sf.flow.rbytes"];
    /// Read or receive operations.
    ROps = Int, Event, ["sf.flow.rops"];
    /// Bytes written or sent.
    WBytes = Int, Event, ["sf.flow.wbytes"];
    /// Write or send operations.
    WOps = Int, Event, ["sf.flow.wops"];
    /// Open flags names, joined with `,` (`NONE` for 0).
    OpenFlags = Str, Event, ["sf.file.openflags"];
    /// Opened with write access.
    IsOpenWrite = Bool, Event, ["sf.file.is_open_write", "evt.is_open_write"];
    /// Opened with read access.
    IsOpenRead = Bool, Event, ["sf.file.is_open_read", "evt.is_open_read"];
    /// IP protocol number.
    Proto = Int, Event, ["sf.net.proto", "fd.proto", "fd.lproto", "fd.l4proto", "fd.rproto", "fd.sproto", "fd.cproto"];
    /// Source port.
    SPort = Int, Event, ["sf.net.sport", "fd.sport"];
    /// Destination port.
    DPort = Int, Event, ["sf.net.dport", "fd.dport"];
    /// `sport,dport`.
    Port = Str, Event, ["sf.net.port", "fd.port"];
    /// Source IP, dotted quad.
    SIp = Str, Event, ["sf.net.sip", "fd.sip"];
    /// Destination IP, dotted quad.
    DIp = Str, Event, ["sf.net.dip", "fd.dip"];
    /// `sip,dip`.
    Ip = Str, Event, ["sf.net.ip", "fd.ip"];
    /// K8s event action symbol.
    KeAction = Str, Event, ["sf.ke.action"];
    /// K8s event component symbol.
    KeKind = Str, Event, ["sf.ke.kind"];
    /// K8s event message (JSON).
    KeMessage = Str, Event, ["sf.ke.message"];
    /// xxHash of the process's pid and creation time, hex.
    ProcOid = Str, Context, ["sf.proc.oid"];
    /// Host PID.
    ProcPid = Int, Context, ["sf.proc.pid", "proc.pid"];
    /// Executable's base name.
    ProcName = Str, Context, ["sf.proc.name", "proc.name"];
    /// Executable.
    ProcExe = Str, Context, ["sf.proc.exe", "proc.exe"];
    /// Arguments.
    ProcArgs = Str, Context, ["sf.proc.args", "proc.args"];
    /// User id.
    ProcUid = Int, Context, ["sf.proc.uid", "proc.uid", "evt.arg.uid"];
    /// User name.
    ProcUser = Str, Context, ["sf.proc.user", "user.name", "proc.user"];
    /// Group id.
    ProcGid = Int, Context, ["sf.proc.gid", "proc.gid"];
    /// Group name.
    ProcGroup = Str, Context, ["sf.proc.group", "proc.group"];
    /// Creation time (ns).
    ProcCreateTs = Int, Context, ["sf.proc.createts"];
    /// TTY attached.
    ProcTty = IntBool, Context, ["sf.proc.tty"];
    /// Container entry point.
    ProcEntry = IntBool, Context, ["sf.proc.entry"];
    /// `exe + " " + args`.
    ProcCmdline = Str, Context, ["sf.proc.cmdline", "proc.cmdline"];
    /// Names of the process and its ancestors, joined with `,`.
    AName = Str, Context, ["sf.proc.aname", "proc.aname"];
    /// Executables of the process and its ancestors.
    AExe = Str, Context, ["sf.proc.aexe"];
    /// Command lines of the process and its ancestors (`exe args`, or `exe` alone).
    ACmdline = Str, Context, ["sf.proc.acmdline"];
    /// PIDs of the process and its ancestors.
    APid = Str, Context, ["sf.proc.apid", "proc.apid"];
    /// xxHash of the parent's pid and creation time (from the process's `poid`).
    PprocOid = Str, Context, ["sf.pproc.oid"];
    /// The parent's PID (from `poid`).
    PprocPid = Int, Context, ["sf.pproc.pid", "proc.ppid"];
    /// The parent's creation time (from `poid`; the reference also gives it for `proc.createtime`).
    PprocCreateTs = Int, Context, ["sf.pproc.createts", "proc.pcreatetime", "proc.createtime"];
    /// The parent's name.
    PprocName = Str, Context, ["sf.pproc.name", "proc.pname"];
    /// The parent's executable.
    PprocExe = Str, Context, ["sf.pproc.exe", "proc.pexe"];
    /// The parent's arguments.
    PprocArgs = Str, Context, ["sf.pproc.args", "proc.pargs"];
    /// The parent's user id.
    PprocUid = Int32, Context, ["sf.pproc.uid", "proc.puid"];
    /// The parent's user name.
    PprocUser = Str, Context, ["sf.pproc.user", "proc.puser"];
    /// The parent's group id.
    PprocGid = Int32, Context, ["sf.pproc.gid", "proc.pgid"];
    /// The parent's group name.
    PprocGroup = Str, Context, ["sf.pproc.group", "proc.pgroup"];
    /// The parent's TTY (the reference also gives it for `proc.tty`).
    PprocTty = ParentBool, Context, ["sf.pproc.tty", "proc.ptty", "proc.tty"];
    /// The parent's entry flag.
    PprocEntry = ParentBool, Context, ["sf.pproc.entry"];
    /// The parent's command line (`exe args`, or `exe` alone).
    PprocCmdline = Str, Context, ["sf.pproc.cmdline", "proc.pcmdline"];
    /// Base name of the file's path as written.
    FileName = Str, Context, ["sf.file.name", "fd.name", "fd.filename"];
    /// The file's path (a socket description's path part).
    FilePath = Str, Context, ["sf.file.path"];
    /// A socket description's link part.
    FileSymlink = Str, Context, ["sf.file.symlink"];
    /// The file's FOID, hex.
    FileOid = Str, Context, ["sf.file.oid"];
    /// Directory of the path.
    FileDirectory = Str, Context, ["sf.file.directory", "fd.directory"];
    /// The resource type as a character (`f`, `d`, `4`, `u`, `p`, ...).
    FileType = Str, Context, ["sf.file.type", "fd.typechar"];
    /// The new file's base name (file events).
    NewName = Str, Context, ["sf.file.newname"];
    /// The new file's path.
    NewPath = Str, Context, ["sf.file.newpath"];
    /// The new file's link part.
    NewSymlink = Str, Context, ["sf.file.newsymlink"];
    /// The new file's FOID, hex.
    NewOid = Str, Context, ["sf.file.newoid"];
    /// The new file's directory.
    NewDirectory = Str, Context, ["sf.file.newdirectory"];
    /// Container id.
    ContId = Str, Context, ["sf.container.id", "container.id"];
    /// Container name.
    ContName = Str, Context, ["sf.container.name", "container.name"];
    /// Image id.
    ContImageId = Str, Context, ["sf.container.imageid", "container.image.id"];
    /// Image.
    ContImage = Str, Context, ["sf.container.image", "container.image"];
    /// Runtime without `CT_` (`DOCKER`, `CRIO`, ...); empty without a container.
    ContType = Str, Context, ["sf.container.type", "container.type"];
    /// Privileged: 1 or 0.
    ContPrivileged = Int, Context, ["sf.container.privileged", "container.privileged"];
    /// Pod time (ns).
    PodTs = Int, Context, ["sf.pod.ts"];
    /// Pod id.
    PodId = Str, Context, ["sf.pod.id"];
    /// Pod name.
    PodName = Str, Context, ["sf.pod.name"];
    /// Node name.
    PodNodeName = Str, Context, ["sf.pod.nodename"];
    /// Namespace.
    PodNamespace = Str, Context, ["sf.pod.namespace"];
    /// Restart count.
    PodRestartCnt = Int, Context, ["sf.pod.restartcnt"];
    /// Host IPs as the reference writes them (`["1.2.3.4""5.6.7.8"]`).
    PodHostIp = Str, Context, ["sf.pod.hostip"];
    /// Internal IPs, same layout.
    PodInternalIp = Str, Context, ["sf.pod.internalip"];
    /// Services as JSON.
    PodServices = Str, Context, ["sf.pod.services"];
    /// Host IP array.
    PodHostIpArray = Array, Context, ["sf.pod.hostip+"];
    /// Internal IP array.
    PodInternalIpArray = Array, Context, ["sf.pod.internalip+"];
    /// Service array.
    PodServicesArray = Array, Context, ["sf.pod.services+"];
    /// The header's exporter.
    NodeId = Str, Context, ["sf.node.id"];
    /// The header's IP.
    NodeIp = Str, Context, ["sf.node.ip"];
    /// The header's schema version.
    Schema = Int, Context, ["sf.meta.schema"];
    /// Base name of the header's file name.
    TraceName = Str, Context, ["sf.meta.tracename"];
}

impl Field {
    /// Whether the field has one value for every record of type `kind` whose process
    /// reference resolves to the same process, in one entity-table epoch (see
    /// `EntityTables::epoch`): the record type, fields records of `kind` do not have, and
    /// what the context gives but the files (the process and its lineage, container, pod,
    /// header).
    pub fn per_process(self, kind: RecordKind) -> bool {
        use Field::*;
        match self.source() {
            Source::Kind => true,
            Source::Event => !self.applies(kind),
            Source::Context => !matches!(
                self,
                FileName
                    | FilePath
                    | FileSymlink
                    | FileOid
                    | FileDirectory
                    | FileType
                    | NewName
                    | NewPath
                    | NewSymlink
                    | NewOid
                    | NewDirectory
            ),
        }
    }
}

/// The field named `name`, if the reference has a mapper for it.
pub fn lookup(name: &str) -> Option<Field> {
    Field::NAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
}

/// All record types a policy is compiled for: the flows and events.
pub const KINDS: [RecordKind; 7] = [
    RecordKind::ProcessEvent,
    RecordKind::ProcessFlow,
    RecordKind::FileFlow,
    RecordKind::FileEvent,
    RecordKind::NetworkFlow,
    RecordKind::NetworkEvent,
    RecordKind::K8sEvent,
];

/// The position of `kind` in [`KINDS`] (entities: `None`).
pub fn kind_index(kind: RecordKind) -> Option<usize> {
    KINDS.iter().position(|k| *k == kind)
}

impl Field {
    /// Whether an [`Source::Event`] field is a field of records of `kind`; elsewhere it has
    /// its zero value.
    pub fn applies(self, kind: RecordKind) -> bool {
        use RecordKind::*;
        match self {
            Field::Ts => true,
            Field::EndTs => matches!(kind, FileFlow | NetworkFlow | ProcessFlow | K8sEvent),
            Field::Tid => matches!(
                kind,
                ProcessEvent | FileFlow | FileEvent | NetworkFlow | NetworkEvent
            ),
            Field::OpFlags => kind != K8sEvent,
            Field::Ret => matches!(kind, ProcessEvent | FileEvent | NetworkEvent),
            Field::Fd | Field::RBytes | Field::ROps | Field::WBytes | Field::WOps => {
                matches!(kind, FileFlow | NetworkFlow)
            }
            Field::OpenFlags | Field::IsOpenWrite | Field::IsOpenRead => kind == FileFlow,
            Field::Proto
            | Field::SPort
            | Field::DPort
            | Field::Port
            | Field::SIp
            | Field::DIp
            | Field::Ip => matches!(kind, NetworkFlow | NetworkEvent),
            Field::KeAction | Field::KeKind | Field::KeMessage => kind == K8sEvent,
            _ => true,
        }
    }
}

/// The fields of one flow or event the attributes read (zero where a record type has none).
#[derive(Debug, Clone, Copy, Default)]
pub struct Event<'a> {
    /// `ts`.
    pub ts: i64,
    /// `endTs` (a k8s event: its `ts`).
    pub end_ts: i64,
    /// `tid`.
    pub tid: i64,
    /// `opFlags`.
    pub op_flags: i32,
    /// `ret`.
    pub ret: i32,
    /// `fd`.
    pub fd: i32,
    /// `numRRecvBytes`.
    pub rbytes: i64,
    /// `numRRecvOps`.
    pub rops: i64,
    /// `numWSendBytes`.
    pub wbytes: i64,
    /// `numWSendOps`.
    pub wops: i64,
    /// `openFlags`.
    pub open_flags: i32,
    /// `sip`.
    pub sip: i32,
    /// `sport`.
    pub sport: i32,
    /// `dip`.
    pub dip: i32,
    /// `dport`.
    pub dport: i32,
    /// `proto`.
    pub proto: i32,
    /// The k8s event itself.
    pub k8s: Option<&'a K8sEvent>,
}

impl<'a> Event<'a> {
    /// A process event's fields.
    pub fn process_event(e: &ProcessEvent) -> Self {
        Event {
            ts: e.ts,
            tid: e.tid,
            op_flags: e.op_flags,
            ret: e.ret,
            ..Event::default()
        }
    }

    /// A process flow's fields.
    pub fn process_flow(f: &ProcessFlow) -> Self {
        Event {
            ts: f.ts,
            end_ts: f.end_ts,
            op_flags: f.op_flags,
            ..Event::default()
        }
    }

    /// A file flow's fields.
    pub fn file_flow(f: &FileFlow) -> Self {
        Event {
            ts: f.ts,
            end_ts: f.end_ts,
            tid: f.tid,
            op_flags: f.op_flags,
            fd: f.fd,
            rbytes: f.num_r_recv_bytes,
            rops: f.num_r_recv_ops,
            wbytes: f.num_w_send_bytes,
            wops: f.num_w_send_ops,
            open_flags: f.open_flags,
            ..Event::default()
        }
    }

    /// A file event's fields.
    pub fn file_event(e: &FileEvent) -> Self {
        Event {
            ts: e.ts,
            tid: e.tid,
            op_flags: e.op_flags,
            ret: e.ret,
            ..Event::default()
        }
    }

    /// A network flow's fields.
    pub fn network_flow(f: &NetworkFlow) -> Self {
        Event {
            ts: f.ts,
            end_ts: f.end_ts,
            tid: f.tid,
            op_flags: f.op_flags,
            fd: f.fd,
            rbytes: f.num_r_recv_bytes,
            rops: f.num_r_recv_ops,
            wbytes: f.num_w_send_bytes,
            wops: f.num_w_send_ops,
            sip: f.sip,
            sport: f.sport,
            dip: f.dip,
            dport: f.dport,
            proto: f.proto,
            ..Event::default()
        }
    }

    /// A network event's fields.
    pub fn network_event(e: &NetworkEvent) -> Self {
        Event {
            ts: e.ts,
            tid: e.tid,
            op_flags: e.op_flags,
            ret: e.ret,
            sip: e.sip,
            sport: e.sport,
            dip: e.dip,
            dport: e.dport,
            proto: e.proto,
            ..Event::default()
        }
    }

    /// A k8s event's fields.
    pub fn k8s_event(e: &'a K8sEvent) -> Self {
        Event {
            ts: e.ts,
            end_ts: e.ts,
            k8s: Some(e),
            ..Event::default()
        }
    }
}

/// One record as the rules see it: its type, own fields, context and lineage (the process
/// and its ancestors, see [`crate::ancestry`]).
#[derive(Debug, Clone, Copy)]
pub struct Rec<'a> {
    /// The record type.
    pub kind: RecordKind,
    /// Its fields.
    pub ev: Event<'a>,
    /// Its context.
    pub ctx: Context<'a>,
    /// The process and its ancestors.
    pub lineage: Lineage<'a>,
}

/// The reference's opFlags names in its order (`sfgo.GetOpFlags`): the file names `WRITE`
/// and `READ` of the shared bits; a network flow says `SEND` and `RECV` instead.
const OP_FLAG_NAMES: [(i32, &str); 21] = [
    (op_flags::MKDIR, "MKDIR"),
    (op_flags::RMDIR, "RMDIR"),
    (op_flags::LINK, "LINK"),
    (op_flags::SYMLINK, "SYMLINK"),
    (op_flags::UNLINK, "UNLINK"),
    (op_flags::RENAME, "RENAME"),
    (op_flags::CLONE, "CLONE"),
    (op_flags::EXEC, "EXEC"),
    (op_flags::EXIT, "EXIT"),
    (op_flags::SETUID, "SETUID"),
    (op_flags::OPEN, "OPEN"),
    (op_flags::ACCEPT, "ACCEPT"),
    (op_flags::CONNECT, "CONNECT"),
    (op_flags::CLOSE, "CLOSE"),
    (op_flags::WRITE_SEND, "WRITE"),
    (op_flags::READ_RECV, "READ"),
    (op_flags::SETNS, "SETNS"),
    (op_flags::MMAP, "MMAP"),
    (op_flags::SHUTDOWN, "SHUTDOWN"),
    (op_flags::TRUNCATE, "TRUNCATE"),
    (op_flags::DIGEST, "DIGEST"),
];

/// Every bit that has a name.
pub const NAMED_OP_FLAGS: i32 = (1 << 21) - 1;

/// The name of one opFlags bit for a record of `kind`.
fn op_flag_name(bit: i32, name: &'static str, kind: RecordKind) -> &'static str {
    if kind == RecordKind::NetworkFlow {
        match bit {
            op_flags::WRITE_SEND => return "SEND",
            op_flags::READ_RECV => return "RECV",
            _ => {}
        }
    }
    name
}

/// The opFlags bit `name` stands for on a record of `kind`, as the names of
/// [`op_flag_names`] go (`RECV` is a bit on network flows only, `READ` elsewhere).
pub fn op_flag_bit(name: &str, kind: RecordKind) -> Option<i32> {
    OP_FLAG_NAMES
        .iter()
        .map(|(bit, n)| (*bit, op_flag_name(*bit, n, kind)))
        .find(|(_, n)| *n == name)
        .map(|(bit, _)| bit)
}

/// The names of the bits of `flags` for a record of `kind`, in the reference's order.
pub fn op_flag_names(flags: i32, kind: RecordKind) -> impl Iterator<Item = &'static str> {
    OP_FLAG_NAMES
        .iter()
        .filter(move |(bit, _)| flags & bit != 0)
        .map(move |(bit, n)| op_flag_name(*bit, n, kind))
}

/// The reference's open-flags names in its order (`sfgo.GetOpenFlags`): `NONE` for 0; the
/// SDK's `TMPFILE` and `F_CREATED` have no name there.
fn open_flag_names(flags: i32) -> impl Iterator<Item = &'static str> {
    (flags == 0).then_some("NONE").into_iter().chain(
        OPEN_FLAG_NAMES
            .iter()
            .filter(move |(bits, _)| flags & bits == *bits)
            .map(|(_, n)| *n),
    )
}

/// The open-flags bits `name` stands for in `sf.file.openflags` (`None` for `NONE` and for
/// names the reference does not write).
pub fn open_flag_bits(name: &str) -> Option<i32> {
    OPEN_FLAG_NAMES
        .iter()
        .find(|(_, n)| *n == name)
        .map(|(bits, _)| *bits)
}

const OPEN_FLAG_NAMES: [(i32, &str); 14] = {
    use handler_sdk::model::open_flags::*;
    [
        (RDONLY, "RDONLY"),
        (WRONLY, "WRONLY"),
        (RDWR, "RDWR"),
        (CREAT, "CREAT"),
        (EXCL, "EXCL"),
        (TRUNC, "TRUNC"),
        (APPEND, "APPEND"),
        (NONBLOCK, "NONBLOCK"),
        (DSYNC, "DSYNC"),
        (DIRECT, "DIRECT"),
        (LARGEFILE, "LARGEFILE"),
        (DIRECTORY, "DIRECTORY"),
        (CLOEXEC, "CLOEXEC"),
        (SYNC, "SYNC"),
    ]
};

fn join_into(buf: &mut String, items: impl Iterator<Item = &'static str>) -> &str {
    for (i, s) in items.enumerate() {
        if i > 0 {
            buf.push(',');
        }
        buf.push_str(s);
    }
    buf
}

fn dotted(buf: &mut String, ip: i32) {
    let b = (ip as u32).to_le_bytes();
    let _ = write!(buf, "{}.{}.{}.{}", b[0], b[1], b[2], b[3]);
}

/// The reference's `mapOID`: xxHash64 of the decimal pid then the decimal creation time,
/// as 16 hex digits.
fn oid_hash(buf: &mut String, hpid: i64, create_ts: i64) {
    let mut h = xxhash_rust::xxh64::Xxh64::new(0);
    h.update(hpid.to_string().as_bytes());
    h.update(create_ts.to_string().as_bytes());
    let _ = write!(buf, "{:016x}", h.digest());
}

fn ip_array(buf: &mut String, ips: &[i64]) {
    buf.push('[');
    for ip in ips {
        buf.push('"');
        dotted(buf, *ip as i32);
        buf.push('"');
    }
    buf.push(']');
}

fn services_json(buf: &mut String, pod: &handler_sdk::model::Pod) {
    let v: Vec<serde_json::Value> = pod
        .services
        .iter()
        .map(|s| {
            serde_json::json!({
                "name": s.name, "id": s.id, "namespace": s.namespace,
                "portList": s.port_list.iter().map(|p| serde_json::json!({
                    "port": p.port, "targetPort": p.target_port, "nodePort": p.node_port, "proto": p.proto,
                })).collect::<Vec<_>>(),
                "clusterIP": s.cluster_ip,
            })
        })
        .collect();
    let _ = write!(buf, "{}", serde_json::Value::Array(v));
}

/// Strings read from a record: borrowed from it, or written into the caller's buffer.
impl<'a> Rec<'a> {
    fn process(&self) -> Option<&'a Process> {
        self.ctx.process()
    }

    fn file_for(&self, new: bool) -> Option<&'a File> {
        if new {
            (self.kind == RecordKind::FileEvent)
                .then(|| self.ctx.new_file())
                .flatten()
        } else {
            matches!(self.kind, RecordKind::FileFlow | RecordKind::FileEvent)
                .then(|| self.ctx.file())
                .flatten()
        }
    }

    /// The raw string of a string-typed field (before bounding quotes are removed), as the
    /// reference's mapper returns it; `buf` holds it when it is computed.
    pub fn raw_str<'b>(&'b self, f: Field, buf: &'b mut String) -> &'b str {
        buf.clear();
        if f.source() == Source::Event && !f.applies(self.kind) {
            return self.zero_str(f, buf);
        }
        let ev = &self.ev;
        match f {
            Field::Type => self.kind.type_code(),
            Field::Dir => ">,<",
            Field::OpFlags => join_into(buf, op_flag_names(ev.op_flags, self.kind)),
            Field::OpenFlags => join_into(buf, open_flag_names(ev.open_flags)),
            Field::Port => {
                let _ = write!(buf, "{},{}", ev.sport, ev.dport);
                buf
            }
            Field::SIp => {
                dotted(buf, ev.sip);
                buf
            }
            Field::DIp => {
                dotted(buf, ev.dip);
                buf
            }
            Field::Ip => {
                dotted(buf, ev.sip);
                buf.push(',');
                dotted(buf, ev.dip);
                buf
            }
            Field::KeAction => ev.k8s.map_or("", |k| k.action.symbol()),
            Field::KeKind => ev.k8s.map_or("", |k| k.kind.symbol()),
            Field::KeMessage => ev.k8s.map_or("", |k| k.message.as_str()),
            Field::ProcOid => match self.process() {
                Some(p) => {
                    oid_hash(buf, p.oid.hpid, p.oid.create_ts);
                    buf
                }
                None => {
                    oid_hash(buf, 0, 0);
                    buf
                }
            },
            Field::ProcName => paths::base(self.process().map_or("", |p| p.exe.trim())),
            Field::ProcExe => self.process().map_or("", |p| p.exe.trim()),
            Field::ProcArgs => self.process().map_or("", |p| p.exe_args.trim()),
            Field::ProcUser => self.process().map_or("", |p| p.user_name.as_str()),
            Field::ProcGroup => self.process().map_or("", |p| p.group_name.as_str()),
            Field::ProcCmdline => {
                if let Some(p) = self.process() {
                    buf.push_str(p.exe.trim());
                }
                buf.push(' ');
                if let Some(p) = self.process() {
                    buf.push_str(p.exe_args.trim());
                }
                buf
            }
            Field::AName => self.lineage_join(buf, |p, b| b.push_str(paths::base(p.exe()))),
            Field::AExe => self.lineage_join(buf, |p, b| b.push_str(p.exe())),
            Field::ACmdline => self.lineage_join(buf, |p, b| cmdline_short(p, b)),
            Field::APid => self.lineage_join(buf, |p, b| {
                let _ = write!(b, "{}", p.pid());
            }),
            Field::PprocOid => {
                let poid = self.process().and_then(|p| p.poid).unwrap_or(Oid {
                    create_ts: 0,
                    hpid: 0,
                });
                oid_hash(buf, poid.hpid, poid.create_ts);
                buf
            }
            Field::PprocName => self.lineage.nth(1).map_or("", |p| paths::base(p.exe())),
            Field::PprocExe => self.lineage.nth(1).map_or("", |p| p.exe()),
            Field::PprocArgs => self.lineage.nth(1).map_or("", |p| p.args()),
            Field::PprocUser => self.lineage.nth(1).map_or("", |p| p.user()),
            Field::PprocGroup => self.lineage.nth(1).map_or("", |p| p.group()),
            Field::PprocCmdline => match self.lineage.nth(1) {
                Some(p) => {
                    cmdline_short(p, buf);
                    buf
                }
                None => "",
            },
            Field::FileName => paths::base(self.file_for(false).map_or("", |f| f.path.trim())),
            Field::NewName => paths::base(self.file_for(true).map_or("", |f| f.path.trim())),
            Field::FilePath | Field::NewPath => {
                let path = self
                    .file_for(f == Field::NewPath)
                    .map_or("", |f| f.path.trim());
                let mut link = String::new();
                paths::parse_sym_path(path, &mut link)
            }
            Field::FileSymlink | Field::NewSymlink => {
                let path = self
                    .file_for(f == Field::NewSymlink)
                    .map_or("", |f| f.path.trim());
                paths::parse_sym_path(path, buf);
                buf
            }
            Field::FileDirectory | Field::NewDirectory => {
                let path = self
                    .file_for(f == Field::NewDirectory)
                    .map_or("", |f| f.path.trim());
                let mut link = String::new();
                let path = paths::parse_sym_path(path, &mut link);
                paths::dir(path, buf)
            }
            Field::FileOid | Field::NewOid => {
                if let Some(file) = self.file_for(f == Field::NewOid) {
                    let _ = write!(buf, "{}", file.oid);
                }
                buf
            }
            Field::FileType => {
                let restype = self.file_for(false).map_or(0, |f| f.restype);
                // Go's string(rune): an invalid code point is U+FFFD.
                buf.push(
                    u32::try_from(restype)
                        .ok()
                        .and_then(char::from_u32)
                        .unwrap_or('\u{FFFD}'),
                );
                buf
            }
            Field::ContId => self.ctx.container().map_or("", |c| c.id.as_str()),
            Field::ContName => self.ctx.container().map_or("", |c| c.name.trim()),
            Field::ContImageId => self.ctx.container().map_or("", |c| c.imageid.as_str()),
            Field::ContImage => self.ctx.container().map_or("", |c| c.image.trim()),
            Field::ContType => self.ctx.container().map_or("", |c| c.r#type.short_name()),
            Field::PodId => self.ctx.pod().map_or("", |p| p.id.as_str()),
            Field::PodName => self.ctx.pod().map_or("", |p| p.name.trim()),
            Field::PodNodeName => self.ctx.pod().map_or("", |p| p.node_name.trim()),
            Field::PodNamespace => self.ctx.pod().map_or("", |p| p.namespace.trim()),
            Field::PodHostIp => match self.ctx.pod() {
                Some(p) => {
                    ip_array(buf, &p.host_ip);
                    buf
                }
                None => "",
            },
            Field::PodInternalIp => match self.ctx.pod() {
                Some(p) => {
                    ip_array(buf, &p.internal_ip);
                    buf
                }
                None => "",
            },
            Field::PodServices => match self.ctx.pod() {
                Some(p) => {
                    services_json(buf, p);
                    buf
                }
                None => "",
            },
            Field::NodeId => self.ctx.header().map_or("", |h| h.exporter.as_str()),
            Field::NodeIp => self.ctx.header().map_or("", |h| h.ip.as_str()),
            Field::TraceName => paths::base(self.ctx.header().map_or("", |h| h.filename.as_str())),
            // Not strings: their decimal or boolean text.
            _ => {
                self.format_non_str(f, buf);
                buf
            }
        }
    }

    fn zero_str<'b>(&self, f: Field, buf: &'b mut String) -> &'b str {
        match f {
            Field::OpenFlags => "NONE",
            Field::Port => "0,0",
            Field::SIp | Field::DIp => "0.0.0.0",
            Field::Ip => "0.0.0.0,0.0.0.0",
            Field::OpFlags | Field::KeAction | Field::KeKind | Field::KeMessage => "",
            _ => {
                self.format_non_str(f, buf);
                buf
            }
        }
    }

    fn lineage_join<'b>(
        &self,
        buf: &'b mut String,
        mut each: impl FnMut(ProcView<'a>, &mut String),
    ) -> &'b str {
        for (i, p) in self.lineage.iter().enumerate() {
            if i > 0 {
                buf.push(',');
            }
            each(p, buf);
        }
        buf
    }

    fn format_non_str(&self, f: Field, buf: &mut String) {
        match f.value_type() {
            ValueType::Int | ValueType::Int32 => {
                let _ = write!(buf, "{}", self.int_raw(f));
            }
            ValueType::IntBool => buf.push_str(if self.int_raw(f) != 0 {
                "true"
            } else {
                "false"
            }),
            ValueType::Bool => buf.push_str(if self.bool_value(f) { "true" } else { "false" }),
            ValueType::ParentBool => match self.lineage.nth(1) {
                Some(_) => buf.push_str(if self.bool_value(f) { "true" } else { "false" }),
                None => buf.push('0'),
            },
            ValueType::Array | ValueType::Str => {}
        }
    }

    /// The value of an integer-like field (also the parent's 32-bit ids).
    pub fn int_raw(&self, f: Field) -> i64 {
        if f.source() == Source::Event && !f.applies(self.kind) {
            return 0;
        }
        let ev = &self.ev;
        let p = self.process();
        match f {
            Field::Ts => ev.ts,
            Field::EndTs => ev.end_ts,
            Field::Tid => ev.tid,
            Field::Ret => i64::from(ev.ret),
            Field::Fd => i64::from(ev.fd),
            Field::RBytes => ev.rbytes,
            Field::ROps => ev.rops,
            Field::WBytes => ev.wbytes,
            Field::WOps => ev.wops,
            Field::Proto => i64::from(ev.proto),
            Field::SPort => i64::from(ev.sport),
            Field::DPort => i64::from(ev.dport),
            Field::ProcPid => p.map_or(0, |p| p.oid.hpid),
            Field::ProcUid => p.map_or(0, |p| i64::from(p.uid)),
            Field::ProcGid => p.map_or(0, |p| i64::from(p.gid)),
            Field::ProcCreateTs => p.map_or(0, |p| p.oid.create_ts),
            Field::ProcTty => p.map_or(0, |p| i64::from(p.tty)),
            Field::ProcEntry => p.map_or(0, |p| i64::from(p.entry)),
            Field::PprocPid => p.and_then(|p| p.poid).map_or(0, |o| o.hpid),
            Field::PprocCreateTs => p.and_then(|p| p.poid).map_or(0, |o| o.create_ts),
            Field::PprocUid => self.lineage.nth(1).map_or(0, |p| i64::from(p.uid())),
            Field::PprocGid => self.lineage.nth(1).map_or(0, |p| i64::from(p.gid())),
            Field::ContPrivileged => self.ctx.container().map_or(0, |c| i64::from(c.privileged)),
            Field::PodTs => self.ctx.pod().map_or(0, |p| p.ts),
            Field::PodRestartCnt => self.ctx.pod().map_or(0, |p| p.restart_count),
            Field::Schema => self.ctx.header().map_or(0, |h| h.version),
            _ => 0,
        }
    }

    /// The value of a boolean-like attribute ([`ValueType::Bool`], [`ValueType::IntBool`],
    /// [`ValueType::ParentBool`]) as its text reads: `Some(true)` for `true`, `Some(false)`
    /// for `false`, `None` for a parent's flag without a parent (`0`).
    pub fn bool_text(&self, f: Field) -> Option<bool> {
        match f.value_type() {
            ValueType::IntBool => Some(self.int_raw(f) != 0),
            ValueType::ParentBool => self.lineage.nth(1).map(|_| self.bool_value(f)),
            _ => Some(self.bool_value(f)),
        }
    }

    fn bool_value(&self, f: Field) -> bool {
        if f.source() == Source::Event && !f.applies(self.kind) {
            return false;
        }
        use handler_sdk::model::open_flags::{RDONLY, WRONLY};
        match f {
            Field::IsOpenWrite => self.ev.open_flags & WRONLY != 0,
            Field::IsOpenRead => self.ev.open_flags & RDONLY != 0,
            Field::PprocTty => self.lineage.nth(1).is_some_and(|p| p.tty()),
            Field::PprocEntry => self.lineage.nth(1).is_some_and(|p| p.entry()),
            _ => false,
        }
    }

    /// The field as the reference's `MapInt` reads it: the value of a 64-bit integer field,
    /// 0 for anything else.
    pub fn int_value(&self, f: Field) -> i64 {
        match f.value_type() {
            ValueType::Int | ValueType::IntBool => self.int_raw(f),
            _ => 0,
        }
    }

    /// Whether the field has a non-zero value (the reference's `exists`).
    pub fn exists(&self, f: Field, buf: &mut String) -> bool {
        match f.value_type() {
            ValueType::Str => !self.raw_str(f, buf).is_empty(),
            ValueType::Int | ValueType::IntBool | ValueType::Int32 => self.int_raw(f) != 0,
            ValueType::Bool | ValueType::ParentBool => self.bool_value(f),
            ValueType::Array => self.ctx.pod().is_some(),
        }
    }

    /// The field as the reference's `MapStr` reads it (quotes trimmed from strings).
    pub fn str_value<'b>(&'b self, f: Field, buf: &'b mut String) -> &'b str {
        match f.value_type() {
            ValueType::Str => crate::parser::trim_bounding_quotes(self.raw_str(f, buf)),
            ValueType::Array => "",
            _ => {
                buf.clear();
                self.format_non_str(f, buf);
                buf
            }
        }
    }
}

/// `exe args`, or `exe` alone without arguments (the reference's cached command lines).
fn cmdline_short(p: ProcView<'_>, b: &mut String) {
    b.push_str(p.exe());
    if !p.args().is_empty() {
        b.push(' ');
        b.push_str(p.args());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_unique_and_found() {
        let mut seen = std::collections::HashSet::new();
        for (name, f) in Field::NAMES {
            assert!(seen.insert(*name), "{name} twice");
            assert_eq!(lookup(name), Some(*f));
        }
        assert_eq!(
            lookup("sf.res"),
            None,
            "the reference has no mapper for sf.res"
        );
        assert_eq!(lookup("container.image.repository"), None);
    }

    #[test]
    fn oid_hash_matches_the_reference_export() {
        // shellshock.sf: pid 16680 created at 1669702299666036282 is "92c7290e8b0d3ffd" in the
        // reference's JSON export (`proc.oid`).
        let mut buf = String::new();
        oid_hash(&mut buf, 16680, 1669702299666036282);
        assert_eq!(buf, "92c7290e8b0d3ffd");
    }
}
