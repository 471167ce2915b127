//! The SysFlow data model: the twelve record types of the SysFlow schema (version 5), mapped to
//! Rust with the schema's field names in snake case.
//!
//! Source: the SysFlow Avro schema (`sysflow.avsc`, `sysflow.entity.*`, `sysflow.flow.*`,
//! `sysflow.event.*`, `sysflow.type.*`). Older schema versions are mapped onto this one by the
//! reader with the reference defaults (see `DESIGN.md`, Input).
//!
//! Units: every timestamp (`ts`, `end_ts`, `Oid::create_ts`) is **nanoseconds since the Unix
//! epoch**, even where an old schema declares `logicalType: timestamp-millis`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Process identifier that survives PID reuse: the host PID plus the process creation time.
///
/// Schema: `sysflow.type.OID { createTS: long, hpid: long }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Oid {
    /// Process creation time, nanoseconds since the epoch (`createTS`).
    pub create_ts: i64,
    /// Host PID (`hpid`).
    pub hpid: i64,
}

impl fmt::Display for Oid {
    /// Formats like Go's `%v` of the reference `*sfgo.OID` (`&{createTS hpid}`), which the
    /// reference printer prints for process flows.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "&{{{} {}}}", self.create_ts, self.hpid)
    }
}

/// File identifier: a SHA-1 over the file's path and host, 20 bytes.
///
/// Schema: `sysflow.type.FOID`, `fixed` of size 20.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Foid(pub [u8; 20]);

impl fmt::Display for Foid {
    /// Lower-case hex, 40 characters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Declares a SysFlow Avro enum with its schema symbols, in schema order.
macro_rules! sysflow_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $($(#[$vmeta:meta])* $variant:ident = $symbol:literal),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in schema symbol order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The Avro symbol of this value, as written in the schema.
            pub fn symbol(self) -> &'static str {
                match self {
                    $($name::$variant => $symbol),+
                }
            }

            /// The value for an Avro symbol, or `None` if the symbol is not one of this enum's.
            pub fn from_symbol(symbol: &str) -> Option<Self> {
                match symbol {
                    $($symbol => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.symbol())
            }
        }
    };
}

sysflow_enum! {
    /// State of an entity record. Schema: `sysflow.type.SFObjectState`.
    ObjectState {
        /// First time the entity is written.
        Created = "CREATED",
        /// The entity changed (e.g. a process after `exec`).
        Modified = "MODIFIED",
        /// Re-emitted at the start of a new trace file.
        Reup = "REUP",
    }
}

sysflow_enum! {
    /// Container runtime. Schema: `sysflow.type.ContainerType`.
    ContainerType {
        /// Docker.
        Docker = "CT_DOCKER",
        /// LXC.
        Lxc = "CT_LXC",
        /// libvirt LXC.
        LibvirtLxc = "CT_LIBVIRT_LXC",
        /// Mesos.
        Mesos = "CT_MESOS",
        /// rkt.
        Rkt = "CT_RKT",
        /// Custom runtime.
        Custom = "CT_CUSTOM",
        /// CRI.
        Cri = "CT_CRI",
        /// containerd.
        Containerd = "CT_CONTAINERD",
        /// CRI-O.
        Crio = "CT_CRIO",
        /// BPM.
        Bpm = "CT_BPM",
    }
}

sysflow_enum! {
    /// Kubernetes component of a [`K8sEvent`]. Schema: `sysflow.type.K8sComponent`.
    K8sComponent {
        /// Nodes.
        Nodes = "K8S_NODES",
        /// Namespaces.
        Namespaces = "K8S_NAMESPACES",
        /// Pods.
        Pods = "K8S_PODS",
        /// Replication controllers.
        ReplicationControllers = "K8S_REPLICATIONCONTROLLERS",
        /// Services.
        Services = "K8S_SERVICES",
        /// Events.
        Events = "K8S_EVENTS",
        /// Replica sets.
        ReplicaSets = "K8S_REPLICASETS",
        /// Daemon sets.
        DaemonSets = "K8S_DAEMONSETS",
        /// Deployments.
        Deployments = "K8S_DEPLOYMENTS",
        /// Unknown component.
        Unknown = "K8S_UNKNOWN",
    }
}

sysflow_enum! {
    /// Action of a [`K8sEvent`]. Schema: `sysflow.type.K8sAction`.
    K8sAction {
        /// Component added.
        Added = "K8S_COMPONENT_ADDED",
        /// Component modified.
        Modified = "K8S_COMPONENT_MODIFIED",
        /// Component deleted.
        Deleted = "K8S_COMPONENT_DELETED",
        /// Component error.
        Error = "K8S_COMPONENT_ERROR",
        /// Component does not exist.
        Nonexistent = "K8S_COMPONENT_NONEXISTENT",
        /// Unknown action.
        Unknown = "K8S_COMPONENT_UNKNOWN",
    }
}

/// The operation bits of `opFlags` (schema: `sysflow.type` `OP_*`), as the SysFlow collector
/// sets them; a record's `op_flags` is a bitwise OR of these.
pub mod op_flags {
    /// `clone`/`fork`.
    pub const CLONE: i32 = 1 << 0;
    /// `execve`.
    pub const EXEC: i32 = 1 << 1;
    /// Process or thread exit.
    pub const EXIT: i32 = 1 << 2;
    /// `setuid` family.
    pub const SETUID: i32 = 1 << 3;
    /// `setns`.
    pub const SETNS: i32 = 1 << 4;
    /// `accept`.
    pub const ACCEPT: i32 = 1 << 5;
    /// `connect`.
    pub const CONNECT: i32 = 1 << 6;
    /// `open`.
    pub const OPEN: i32 = 1 << 7;
    /// Read or receive.
    pub const READ_RECV: i32 = 1 << 8;
    /// Write or send.
    pub const WRITE_SEND: i32 = 1 << 9;
    /// `close`.
    pub const CLOSE: i32 = 1 << 10;
    /// `truncate`.
    pub const TRUNCATE: i32 = 1 << 11;
    /// `shutdown`.
    pub const SHUTDOWN: i32 = 1 << 12;
    /// `mmap`.
    pub const MMAP: i32 = 1 << 13;
    /// Digest.
    pub const DIGEST: i32 = 1 << 14;
    /// `mkdir`.
    pub const MKDIR: i32 = 1 << 15;
    /// `rmdir`.
    pub const RMDIR: i32 = 1 << 16;
    /// `link`.
    pub const LINK: i32 = 1 << 17;
    /// `unlink`.
    pub const UNLINK: i32 = 1 << 18;
    /// `symlink`.
    pub const SYMLINK: i32 = 1 << 19;
    /// `rename`.
    pub const RENAME: i32 = 1 << 20;

    use super::RecordKind;

    /// The reference's names of each bit, in the reference's order (`sf-apis`
    /// `sfgo.GetOpFlags`); a bit with two names (read or receive, write or send) is listed
    /// once per name.
    const NAMES: [(i32, &str); 23] = [
        (MKDIR, "MKDIR"),
        (RMDIR, "RMDIR"),
        (LINK, "LINK"),
        (SYMLINK, "SYMLINK"),
        (UNLINK, "UNLINK"),
        (RENAME, "RENAME"),
        (CLONE, "CLONE"),
        (EXEC, "EXEC"),
        (EXIT, "EXIT"),
        (SETUID, "SETUID"),
        (OPEN, "OPEN"),
        (ACCEPT, "ACCEPT"),
        (CONNECT, "CONNECT"),
        (CLOSE, "CLOSE"),
        (WRITE_SEND, "WRITE"),
        (WRITE_SEND, "SEND"),
        (READ_RECV, "READ"),
        (READ_RECV, "RECV"),
        (SETNS, "SETNS"),
        (MMAP, "MMAP"),
        (SHUTDOWN, "SHUTDOWN"),
        (TRUNCATE, "TRUNCATE"),
        (DIGEST, "DIGEST"),
    ];

    /// The names of the bits set in `flags`, spelled and ordered as the reference's
    /// `sfgo.GetOpFlags` does (`MKDIR`, `RMDIR`, `LINK`, `SYMLINK`, `UNLINK`, `RENAME`,
    /// `CLONE`, `EXEC`, `EXIT`, `SETUID`, `OPEN`, `ACCEPT`, `CONNECT`, `CLOSE`, `WRITE`,
    /// `READ`, `SETNS`, `MMAP`, `SHUTDOWN`, `TRUNCATE`, `DIGEST`), with the file names of the
    /// shared bits: `WRITE` and `READ`. Use [`names_for`] for a network flow (`SEND`, `RECV`).
    ///
    /// ```
    /// use sf_processor::model::op_flags;
    /// assert_eq!(op_flags::names(op_flags::OPEN | op_flags::READ_RECV | op_flags::CLOSE),
    ///            ["OPEN", "CLOSE", "READ"]);
    /// ```
    pub fn names(flags: i32) -> Vec<&'static str> {
        names_with(flags, false)
    }

    /// The names of the bits set in `flags` for a record of `kind`: as [`names`], except
    /// that a [`RecordKind::NetworkFlow`] says `SEND` and `RECV` where other records say
    /// `WRITE` and `READ`, as the reference does (it tests for its `NF` record type only).
    pub fn names_for(flags: i32, kind: RecordKind) -> Vec<&'static str> {
        names_with(flags, kind == RecordKind::NetworkFlow)
    }

    fn names_with(flags: i32, network: bool) -> Vec<&'static str> {
        NAMES
            .iter()
            .filter(|(bit, name)| {
                let net_name = matches!(*name, "SEND" | "RECV");
                let shared = *bit == WRITE_SEND || *bit == READ_RECV;
                flags & bit != 0 && (!shared || net_name == network)
            })
            .map(|(_, name)| *name)
            .collect()
    }

    /// The bit a reference name stands for: any name [`names`] or [`names_for`] gives
    /// (`READ` and `RECV` are both [`READ_RECV`], `WRITE` and `SEND` both [`WRITE_SEND`]),
    /// in upper case; `None` for any other string.
    pub fn from_name(name: &str) -> Option<i32> {
        NAMES.iter().find(|(_, n)| *n == name).map(|(bit, _)| *bit)
    }
}

/// Trace header: the first record of every trace file and of every collector connection.
///
/// Schema: `sysflow.entity.SFHeader`. `ip` is `"NA"` and `filename` is `""` where the
/// writer's schema lacks them (headers before version 2/3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SfHeader {
    /// Schema version of the trace (`version`): 1000/1001 (early), 2, 3, 4, 5.
    pub version: i64,
    /// Exporter identifier, typically the host name (`exporter`).
    pub exporter: String,
    /// Exporter IP address (`ip`), `"NA"` when unknown.
    pub ip: String,
    /// Trace file name (`filename`).
    pub filename: String,
}

/// Container entity. Schema: `sysflow.entity.Container`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    /// Container id (`id`).
    pub id: String,
    /// Container name (`name`).
    pub name: String,
    /// Image name (`image`).
    pub image: String,
    /// Image id (`imageid`).
    pub imageid: String,
    /// Runtime (`type`).
    pub r#type: ContainerType,
    /// Privileged container (`privileged`).
    pub privileged: bool,
    /// Owning pod (`podId`, schema 4+; `None` before).
    pub pod_id: Option<String>,
}

/// A service port of a [`Service`]. Schema: `sysflow.entity.Port`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    /// Service port (`port`).
    pub port: i32,
    /// Target port (`targetPort`).
    pub target_port: i32,
    /// Node port (`nodePort`).
    pub node_port: i32,
    /// Protocol name (`proto`).
    pub proto: String,
}

/// A Kubernetes service of a [`Pod`]. Schema: `sysflow.entity.Service`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// Service name (`name`).
    pub name: String,
    /// Service id (`id`).
    pub id: String,
    /// Namespace (`namespace`).
    pub namespace: String,
    /// Ports (`portList`).
    pub port_list: Vec<Port>,
    /// Cluster IPs, IPv4 in network byte order (`clusterIP`).
    pub cluster_ip: Vec<i64>,
}

/// Pod entity (schema 4+). Schema: `sysflow.entity.Pod`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pod {
    /// Time of the record, nanoseconds (`ts`).
    pub ts: i64,
    /// Pod id (`id`).
    pub id: String,
    /// Pod name (`name`).
    pub name: String,
    /// Node name (`nodeName`).
    pub node_name: String,
    /// Host IPs, IPv4 in network byte order (`hostIP`).
    pub host_ip: Vec<i64>,
    /// Internal IPs, IPv4 in network byte order (`internalIP`).
    pub internal_ip: Vec<i64>,
    /// Namespace (`namespace`).
    pub namespace: String,
    /// Restart count (`restartCount`).
    pub restart_count: i64,
    /// Labels (`labels`), sorted by key (Avro maps carry no order).
    pub labels: Vec<(String, String)>,
    /// Selectors (`selectors`), sorted by key.
    pub selectors: Vec<(String, String)>,
    /// Services (`services`).
    pub services: Vec<Service>,
}

/// Process entity. Schema: `sysflow.entity.Process`.
///
/// `entry` is `false`, `cwd` is `""` and `env` is empty where the writer's schema lacks them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    /// Entity state (`state`).
    pub state: ObjectState,
    /// Process identifier (`oid`).
    pub oid: Oid,
    /// Parent process identifier (`poid`).
    pub poid: Option<Oid>,
    /// Time of the record, nanoseconds (`ts`).
    pub ts: i64,
    /// Executable path (`exe`), trimmed of surrounding white space as the reference reader does.
    pub exe: String,
    /// Arguments (`exeArgs`), trimmed as the reference reader does.
    pub exe_args: String,
    /// User id (`uid`).
    pub uid: i32,
    /// User name (`userName`).
    pub user_name: String,
    /// Group id (`gid`).
    pub gid: i32,
    /// Group name (`groupName`).
    pub group_name: String,
    /// Attached to a terminal (`tty`).
    pub tty: bool,
    /// Container id (`containerId`), `None` on the host.
    pub container_id: Option<String>,
    /// Container entry point (`entry`, schema 3+).
    pub entry: bool,
    /// Working directory (`cwd`, schema 5).
    pub cwd: String,
    /// Environment, `KEY=VALUE` strings (`env`, schema 5).
    pub env: Vec<String>,
}

impl Process {
    /// The command line as the reference policy engine's `proc.cmdline`: the executable, a
    /// space, the arguments (`exe + " " + exeArgs`; so a process without arguments has a
    /// trailing space, as in the reference).
    pub fn cmdline(&self) -> String {
        format!("{} {}", self.exe, self.exe_args)
    }

    /// The host PID (`oid.hpid`).
    pub fn pid(&self) -> i64 {
        self.oid.hpid
    }
}

/// File entity. Schema: `sysflow.entity.File`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct File {
    /// Entity state (`state`).
    pub state: ObjectState,
    /// File identifier (`oid`).
    pub oid: Foid,
    /// Time of the record, nanoseconds (`ts`).
    pub ts: i64,
    /// Resource type (`restype`): a character code such as `'f'`, `'d'`, `'4'` (IPv4 socket).
    pub restype: i32,
    /// Path (`path`).
    pub path: String,
    /// Container id (`containerId`).
    pub container_id: Option<String>,
}

/// Process event (clone, exec, exit, setuid, setns). Schema: `sysflow.event.ProcessEvent`.
///
/// The earliest layout (header 1000) names this record `sysflow.flow.ProcessFlow`; the reader
/// delivers those as process events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessEvent {
    /// The acting process (`procOID`).
    pub proc_oid: Oid,
    /// Time of the event, nanoseconds (`ts`).
    pub ts: i64,
    /// Thread id (`tid`).
    pub tid: i64,
    /// Operation, see [`op_flags`] (`opFlags`).
    pub op_flags: i32,
    /// Arguments (`args`).
    pub args: Vec<String>,
    /// Return code (`ret`).
    pub ret: i32,
}

/// Process flow: thread clone/exit counts over an interval. Schema: `sysflow.flow.ProcessFlow`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessFlow {
    /// The process (`procOID`).
    pub proc_oid: Oid,
    /// Start of the interval, nanoseconds (`ts`).
    pub ts: i64,
    /// Threads cloned (`numThreadsCloned`).
    pub num_threads_cloned: i64,
    /// Operations, see [`op_flags`] (`opFlags`).
    pub op_flags: i32,
    /// End of the interval, nanoseconds (`endTs`).
    pub end_ts: i64,
    /// Threads exited (`numThreadsExited`).
    pub num_threads_exited: i64,
    /// Clone errors (`numCloneErrors`).
    pub num_clone_errors: i64,
}

/// File flow: operations of one process on one open file over an interval.
/// Schema: `sysflow.flow.FileFlow`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileFlow {
    /// The process (`procOID`).
    pub proc_oid: Oid,
    /// Start of the interval, nanoseconds (`ts`).
    pub ts: i64,
    /// Thread id (`tid`).
    pub tid: i64,
    /// Operations, see [`op_flags`] (`opFlags`).
    pub op_flags: i32,
    /// `open(2)` flags (`openFlags`; 0 where the writer's schema lacks it).
    pub open_flags: i32,
    /// End of the interval, nanoseconds (`endTs`).
    pub end_ts: i64,
    /// The file (`fileOID`).
    pub file_oid: Foid,
    /// File descriptor (`fd`).
    pub fd: i32,
    /// Read operations (`numRRecvOps`).
    pub num_r_recv_ops: i64,
    /// Write operations (`numWSendOps`).
    pub num_w_send_ops: i64,
    /// Bytes read (`numRRecvBytes`).
    pub num_r_recv_bytes: i64,
    /// Bytes written (`numWSendBytes`).
    pub num_w_send_bytes: i64,
}

/// File event (mkdir, unlink, rename, ...). Schema: `sysflow.event.FileEvent`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEvent {
    /// The process (`procOID`).
    pub proc_oid: Oid,
    /// Time of the event, nanoseconds (`ts`).
    pub ts: i64,
    /// Thread id (`tid`).
    pub tid: i64,
    /// Operation, see [`op_flags`] (`opFlags`).
    pub op_flags: i32,
    /// The file (`fileOID`).
    pub file_oid: Foid,
    /// Return code (`ret`).
    pub ret: i32,
    /// Second file of the event, e.g. a rename target (`newFileOID`).
    pub new_file_oid: Option<Foid>,
}

/// Network flow: operations of one process on one connection over an interval.
/// Schema: `sysflow.flow.NetworkFlow`.
///
/// `sip`/`dip` are IPv4 addresses in network byte order stored in an `int`: the dotted quad
/// is the low byte first (16777343 is 127.0.0.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkFlow {
    /// The process (`procOID`).
    pub proc_oid: Oid,
    /// Start of the interval, nanoseconds (`ts`).
    pub ts: i64,
    /// Thread id (`tid`).
    pub tid: i64,
    /// Operations, see [`op_flags`] (`opFlags`).
    pub op_flags: i32,
    /// End of the interval, nanoseconds (`endTs`).
    pub end_ts: i64,
    /// Source IPv4, network byte order (`sip`).
    pub sip: i32,
    /// Source port (`sport`).
    pub sport: i32,
    /// Destination IPv4, network byte order (`dip`).
    pub dip: i32,
    /// Destination port (`dport`).
    pub dport: i32,
    /// IP protocol number (`proto`): 6 TCP, 17 UDP.
    pub proto: i32,
    /// File descriptor (`fd`; 0 where the writer's schema lacks it).
    pub fd: i32,
    /// Receive operations (`numRRecvOps`).
    pub num_r_recv_ops: i64,
    /// Send operations (`numWSendOps`).
    pub num_w_send_ops: i64,
    /// Bytes received (`numRRecvBytes`).
    pub num_r_recv_bytes: i64,
    /// Bytes sent (`numWSendBytes`).
    pub num_w_send_bytes: i64,
}

/// Network event. Schema: `sysflow.event.NetworkEvent`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkEvent {
    /// The process (`procOID`).
    pub proc_oid: Oid,
    /// Time of the event, nanoseconds (`ts`).
    pub ts: i64,
    /// Thread id (`tid`).
    pub tid: i64,
    /// Operation, see [`op_flags`] (`opFlags`).
    pub op_flags: i32,
    /// Source IPv4, network byte order (`sip`).
    pub sip: i32,
    /// Source port (`sport`).
    pub sport: i32,
    /// Destination IPv4, network byte order (`dip`).
    pub dip: i32,
    /// Destination port (`dport`).
    pub dport: i32,
    /// IP protocol number (`proto`).
    pub proto: i32,
    /// Return code (`ret`).
    pub ret: i32,
}

/// Kubernetes event (schema 4+). Schema: `sysflow.event.K8sEvent`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct K8sEvent {
    /// Component (`kind`).
    pub kind: K8sComponent,
    /// Action (`action`).
    pub action: K8sAction,
    /// Time of the event, nanoseconds (`ts`).
    pub ts: i64,
    /// Message (`message`), JSON text from the Kubernetes API.
    pub message: String,
}

/// One SysFlow record: the `rec` union of `sysflow.SysFlow`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// [`SfHeader`] entity.
    Header(SfHeader),
    /// [`Container`] entity.
    Container(Container),
    /// [`Pod`] entity.
    Pod(Pod),
    /// [`Process`] entity.
    Process(Process),
    /// [`File`] entity.
    File(File),
    /// [`ProcessEvent`].
    ProcessEvent(ProcessEvent),
    /// [`ProcessFlow`].
    ProcessFlow(ProcessFlow),
    /// [`FileFlow`].
    FileFlow(FileFlow),
    /// [`FileEvent`].
    FileEvent(FileEvent),
    /// [`NetworkFlow`].
    NetworkFlow(NetworkFlow),
    /// [`NetworkEvent`].
    NetworkEvent(NetworkEvent),
    /// [`K8sEvent`].
    K8sEvent(K8sEvent),
}

/// The kind of a [`Record`], for counting and routing without the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RecordKind {
    /// `SFHeader`.
    Header,
    /// `Container`.
    Container,
    /// `Pod`.
    Pod,
    /// `Process`.
    Process,
    /// `File`.
    File,
    /// `ProcessEvent`.
    ProcessEvent,
    /// `ProcessFlow`.
    ProcessFlow,
    /// `FileFlow`.
    FileFlow,
    /// `FileEvent`.
    FileEvent,
    /// `NetworkFlow`.
    NetworkFlow,
    /// `NetworkEvent`.
    NetworkEvent,
    /// `K8sEvent`.
    K8sEvent,
}

impl RecordKind {
    /// Every kind, entities first, in the order of the `Record` enum.
    pub const ALL: [RecordKind; 12] = [
        RecordKind::Header,
        RecordKind::Container,
        RecordKind::Pod,
        RecordKind::Process,
        RecordKind::File,
        RecordKind::ProcessEvent,
        RecordKind::ProcessFlow,
        RecordKind::FileFlow,
        RecordKind::FileEvent,
        RecordKind::NetworkFlow,
        RecordKind::NetworkEvent,
        RecordKind::K8sEvent,
    ];

    /// The schema's record name (`SFHeader`, `ProcessEvent`, ...), as `TRACES.md` counts them.
    pub fn name(self) -> &'static str {
        match self {
            RecordKind::Header => "SFHeader",
            RecordKind::Container => "Container",
            RecordKind::Pod => "Pod",
            RecordKind::Process => "Process",
            RecordKind::File => "File",
            RecordKind::ProcessEvent => "ProcessEvent",
            RecordKind::ProcessFlow => "ProcessFlow",
            RecordKind::FileFlow => "FileFlow",
            RecordKind::FileEvent => "FileEvent",
            RecordKind::NetworkFlow => "NetworkFlow",
            RecordKind::NetworkEvent => "NetworkEvent",
            RecordKind::K8sEvent => "K8sEvent",
        }
    }

    /// The kind named `name` (as [`RecordKind::name`] spells it).
    pub fn from_name(name: &str) -> Option<Self> {
        RecordKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether this kind is an entity (header, container, pod, process, file), as opposed to
    /// a flow or event.
    pub fn is_entity(self) -> bool {
        matches!(
            self,
            RecordKind::Header
                | RecordKind::Container
                | RecordKind::Pod
                | RecordKind::Process
                | RecordKind::File
        )
    }
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Record {
    /// The kind of this record.
    pub fn kind(&self) -> RecordKind {
        match self {
            Record::Header(_) => RecordKind::Header,
            Record::Container(_) => RecordKind::Container,
            Record::Pod(_) => RecordKind::Pod,
            Record::Process(_) => RecordKind::Process,
            Record::File(_) => RecordKind::File,
            Record::ProcessEvent(_) => RecordKind::ProcessEvent,
            Record::ProcessFlow(_) => RecordKind::ProcessFlow,
            Record::FileFlow(_) => RecordKind::FileFlow,
            Record::FileEvent(_) => RecordKind::FileEvent,
            Record::NetworkFlow(_) => RecordKind::NetworkFlow,
            Record::NetworkEvent(_) => RecordKind::NetworkEvent,
            Record::K8sEvent(_) => RecordKind::K8sEvent,
        }
    }
}

/// Formats an IPv4 address stored as SysFlow does (network byte order in an `int`, so the
/// low byte is the first octet) as a dotted quad: `16777343` gives `"127.0.0.1"`.
pub fn ipv4_dotted(ip: i64) -> String {
    let b = (ip as u32).to_le_bytes();
    format!("{}.{}.{}.{}", b[0], b[1], b[2], b[3])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_is_low_byte_first() {
        assert_eq!(ipv4_dotted(16777343), "127.0.0.1");
        assert_eq!(ipv4_dotted(-1062731775), "1.0.168.192");
    }

    #[test]
    fn op_flag_names_follow_the_reference() {
        use op_flags::*;
        assert_eq!(names(0), Vec::<&str>::new());
        assert_eq!(names(EXEC), ["EXEC"]);
        // 9600 = OPEN | READ_RECV | CLOSE | MMAP (a library load in shellshock.sf).
        assert_eq!(names(9600), ["OPEN", "CLOSE", "READ", "MMAP"]);
        assert_eq!(
            names(RENAME | CLONE | WRITE_SEND | DIGEST),
            ["RENAME", "CLONE", "WRITE", "DIGEST"]
        );
        let all = (1 << 21) - 1;
        assert_eq!(names(all).len(), 21);
        assert_eq!(
            names_for(CONNECT | READ_RECV | WRITE_SEND, RecordKind::NetworkFlow),
            ["CONNECT", "SEND", "RECV"]
        );
        assert_eq!(
            names_for(READ_RECV, RecordKind::NetworkEvent),
            ["READ"],
            "the reference names only network flows SEND/RECV"
        );
        for name in names(all) {
            assert_eq!(names(from_name(name).unwrap()), [name]);
        }
        for name in names_for(all, RecordKind::NetworkFlow) {
            let bit = from_name(name).unwrap();
            assert_eq!(names_for(bit, RecordKind::NetworkFlow), [name]);
        }
        assert_eq!(from_name("RECV"), Some(READ_RECV));
        assert_eq!(from_name("exec"), None);
    }

    #[test]
    fn cmdline_is_exe_space_args() {
        let p = Process {
            state: ObjectState::Created,
            oid: Oid {
                create_ts: 1,
                hpid: 16681,
            },
            poid: None,
            ts: 1,
            exe: "/bin/bash".into(),
            exe_args: "-c cat /etc/passwd".into(),
            uid: 0,
            user_name: String::new(),
            gid: 0,
            group_name: String::new(),
            tty: false,
            container_id: None,
            entry: false,
            cwd: String::new(),
            env: vec![],
        };
        assert_eq!(p.cmdline(), "/bin/bash -c cat /etc/passwd");
        assert_eq!(p.pid(), 16681);
        let bare = Process {
            exe_args: String::new(),
            ..p
        };
        assert_eq!(bare.cmdline(), "/bin/bash ");
    }

    #[test]
    fn enum_symbols_round_trip() {
        for t in ContainerType::ALL {
            assert_eq!(ContainerType::from_symbol(t.symbol()), Some(*t));
        }
        assert_eq!(ContainerType::from_symbol("CT_PODMAN"), None);
        assert_eq!(
            K8sAction::from_symbol("K8S_COMPONENT_ADDED"),
            Some(K8sAction::Added)
        );
    }

    #[test]
    fn oid_prints_like_the_reference() {
        let oid = Oid {
            create_ts: 1_600_000_000_000_000_000,
            hpid: 42,
        };
        assert_eq!(oid.to_string(), "&{1600000000000000000 42}");
    }

    #[test]
    fn record_kind_names_are_schema_names() {
        for k in RecordKind::ALL {
            assert_eq!(RecordKind::from_name(k.name()), Some(k));
        }
    }
}

// Names and letters of the reference tools (`sf-apis` `sfgo`), for exports and printers.

impl RecordKind {
    /// The reference's short type code (`sfgo` `Ty*Str`): `H`, `C`, `PD`, `P`, `F`, `PE`,
    /// `PF`, `FF`, `FE`, `NF`, `NE`, `KE` (the `type` of the JSON export and of `sysprint`).
    pub fn type_code(self) -> &'static str {
        match self {
            RecordKind::Header => "H",
            RecordKind::Container => "C",
            RecordKind::Pod => "PD",
            RecordKind::Process => "P",
            RecordKind::File => "F",
            RecordKind::ProcessEvent => "PE",
            RecordKind::ProcessFlow => "PF",
            RecordKind::FileFlow => "FF",
            RecordKind::FileEvent => "FE",
            RecordKind::NetworkFlow => "NF",
            RecordKind::NetworkEvent => "NE",
            RecordKind::K8sEvent => "KE",
        }
    }
}

/// The open-mode bits of a file flow's `openFlags`: SysFlow's own encoding (the collector
/// maps the kernel's `O_*` onto these), not the host's `O_*` values.
pub mod open_flags {
    /// Open for reading.
    pub const RDONLY: i32 = 1 << 0;
    /// Open for writing.
    pub const WRONLY: i32 = 1 << 1;
    /// Open for reading and writing (both bits).
    pub const RDWR: i32 = RDONLY | WRONLY;
    /// `O_CREAT`.
    pub const CREAT: i32 = 1 << 2;
    /// `O_APPEND`.
    pub const APPEND: i32 = 1 << 3;
    /// `O_DSYNC`.
    pub const DSYNC: i32 = 1 << 4;
    /// `O_EXCL`.
    pub const EXCL: i32 = 1 << 5;
    /// `O_NONBLOCK`.
    pub const NONBLOCK: i32 = 1 << 6;
    /// `O_SYNC`.
    pub const SYNC: i32 = 1 << 7;
    /// `O_TRUNC`.
    pub const TRUNC: i32 = 1 << 8;
    /// `O_DIRECT`.
    pub const DIRECT: i32 = 1 << 9;
    /// `O_DIRECTORY`.
    pub const DIRECTORY: i32 = 1 << 10;
    /// `O_LARGEFILE`.
    pub const LARGEFILE: i32 = 1 << 11;
    /// `O_CLOEXEC`.
    pub const CLOEXEC: i32 = 1 << 12;
    /// `O_TMPFILE` (the collector's driver, falco's `PPM_O_TMPFILE`; the reference does not
    /// name it).
    pub const TMPFILE: i32 = 1 << 13;
    /// The open created the file (falco's `PPM_O_F_CREATED`; the reference does not name it).
    pub const F_CREATED: i32 = 1 << 14;
}

/// The names of the open modes set in `openFlags` (see [`open_flags`]), in the reference's
/// order (`sfgo.GetOpenFlags`): `NONE` (no bit at all), `RDONLY`, `WRONLY`, `RDWR`, `CREAT`,
/// `EXCL`, `TRUNC`, `APPEND`, `NONBLOCK`, `DSYNC`, `DIRECT`, `LARGEFILE`, `DIRECTORY`,
/// `CLOEXEC`, `SYNC`, then two bits the collector sets that the reference leaves unnamed:
/// `TMPFILE`, `F_CREATED`. As in the reference, `RDWR` also names `RDONLY` and `WRONLY`:
/// 4097 (`RDONLY | CLOEXEC`) gives `["RDONLY", "CLOEXEC"]`. OR-ing the bits of the names gives
/// `flags` back, bits above `F_CREATED` excepted.
pub fn open_flag_names(flags: i32) -> Vec<&'static str> {
    use open_flags::*;
    let table: [(i32, &'static str); 16] = [
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
        (TMPFILE, "TMPFILE"),
        (F_CREATED, "F_CREATED"),
    ];
    let mut names: Vec<&'static str> = Vec::new();
    if flags == 0 {
        names.push("NONE");
    }
    names.extend(
        table
            .iter()
            .filter(|(bits, _)| flags & bits == *bits)
            .map(|(_, name)| *name),
    );
    names
}

impl ContainerType {
    /// The runtime's name without the schema's `CT_` prefix, as the reference JSON export
    /// writes it (`sfgo.GetContType`): `DOCKER`, `CRIO`, `LIBVIRT_LXC`, ...
    pub fn short_name(self) -> &'static str {
        let symbol = self.symbol();
        symbol.strip_prefix("CT_").unwrap_or(symbol)
    }
}

impl File {
    /// The resource type as the letter the reference prints (`sfgo.GetFileType`): `f` file,
    /// `d` directory, `4`/`6` IPv4/IPv6 socket, `u` Unix socket, `p` pipe, `?` unknown, ...;
    /// an empty string when `restype` is not a character.
    pub fn type_letter(&self) -> String {
        u32::try_from(self.restype)
            .ok()
            .and_then(char::from_u32)
            .map(String::from)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod reference_name_tests {
    use super::*;

    #[test]
    fn op_flag_names_follow_the_reference_order_and_record_kind() {
        let rw = op_flags::OPEN | op_flags::READ_RECV | op_flags::WRITE_SEND | op_flags::CLOSE;
        assert_eq!(
            op_flags::names_for(rw, RecordKind::FileFlow),
            ["OPEN", "CLOSE", "WRITE", "READ"]
        );
        assert_eq!(
            op_flags::names_for(rw, RecordKind::NetworkFlow),
            ["OPEN", "CLOSE", "SEND", "RECV"]
        );
        assert_eq!(
            op_flags::names_for(op_flags::EXEC, RecordKind::ProcessEvent),
            ["EXEC"]
        );
        assert!(op_flags::names_for(0, RecordKind::K8sEvent).is_empty());
        assert_eq!(
            op_flags::names_for(op_flags::RENAME | op_flags::MKDIR, RecordKind::FileEvent),
            ["MKDIR", "RENAME"]
        );
    }

    #[test]
    fn open_flag_names_follow_the_reference() {
        assert_eq!(open_flag_names(0), ["NONE"]);
        assert_eq!(open_flag_names(4097), ["RDONLY", "CLOEXEC"]);
        assert_eq!(
            open_flag_names(open_flags::RDWR | open_flags::CREAT),
            ["RDONLY", "WRONLY", "RDWR", "CREAT"]
        );
        assert_eq!(
            open_flag_names(13377),
            ["RDONLY", "NONBLOCK", "DIRECTORY", "CLOEXEC", "TMPFILE"]
        );
    }

    #[test]
    fn short_names_and_letters() {
        assert_eq!(ContainerType::Docker.short_name(), "DOCKER");
        assert_eq!(ContainerType::LibvirtLxc.short_name(), "LIBVIRT_LXC");
        assert_eq!(RecordKind::NetworkFlow.type_code(), "NF");
        let file = |restype| File {
            state: ObjectState::Created,
            oid: Foid([0; 20]),
            ts: 0,
            restype,
            path: String::new(),
            container_id: None,
        };
        assert_eq!(file(i32::from(b'f')).type_letter(), "f");
        assert_eq!(file(i32::from(b'?')).type_letter(), "?");
        assert_eq!(file(-1).type_letter(), "");
    }
}
