//! The JSON layout of one record: plain structs deriving `Serialize`, filled from a record
//! and its [`Context`]. Keys and nesting follow the reference JSON export (`sf-processor`
//! `core/exporter/encoders/json.go`, field names from `core/policyengine/source/flatrecord`);
//! the differences are listed in the crate documentation.

use handler_sdk::model::{
    Container, File, FileEvent, FileFlow, K8sEvent, NetworkEvent, NetworkFlow, Pod, Process,
    ProcessEvent, ProcessFlow, RecordKind, SfHeader, ipv4_dotted, op_flags, open_flag_names,
};
use handler_sdk::{Context, Policy};
use serde::Serialize;

/// The `version` of every object: the reference export's JSON schema version.
pub const JSON_SCHEMA_VERSION: u32 = 5;

/// One output object. Top-level keys come first, then the sections in the reference's
/// order; a section that does not apply to the record is left out.
#[derive(Debug, Serialize)]
pub struct Line<'a> {
    /// Always [`JSON_SCHEMA_VERSION`].
    pub version: u32,
    /// Entity records only: `CREATED`, `MODIFIED` or `REUP` (processes and files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<&'static str>,
    /// End time, nanoseconds: flows' `endTs`, a k8s event's `ts`, 0 for other events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endts: Option<i64>,
    /// Names of the `opFlags` bits, e.g. `["OPEN", "READ", "CLOSE"]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opflags: Option<Vec<&'static str>>,
    /// Return code of events (process, file, network); 0 for flows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ret: Option<i64>,
    /// Time of the record, nanoseconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ts: Option<i64>,
    /// Record type code: `PE`, `PF`, `FF`, `FE`, `NF`, `NE`, `KE`; entities `H`, `C`, `PD`,
    /// `P`, `F`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The process's container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerSection<'a>>,
    /// File flows and events: the file (and the new file of a rename or link).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<FileSection<'a>>,
    /// File and network flows: the counters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow: Option<FlowSection>,
    /// Kubernetes events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k8s: Option<K8sSection<'a>>,
    /// The trace: schema version and file name (from the header).
    pub meta: MetaSection<'a>,
    /// Network flows and events: the connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub net: Option<NetSection>,
    /// The exporting host (from the header).
    pub node: NodeSection<'a>,
    /// Process flows: thread counters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pf: Option<PfSection>,
    /// The container's pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodSection<'a>>,
    /// The process's parent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pproc: Option<PprocSection<'a>>,
    /// The record's process.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proc: Option<ProcSection<'a>>,
}

/// A line with the record's sequence number (`seq` setting) and the policies (rules)
/// upstream handlers matched on it, as the reference exporter writes them after the record's
/// sections: `"policies": [{"id", "desc", "priority"}, ...]`, then `"tags"`, the tags of
/// every policy in order. Keys without a value are left out.
#[derive(Debug, Serialize)]
pub struct Annotated<'a, L> {
    /// The record's own line.
    #[serde(flatten)]
    pub line: &'a L,
    /// The record's sequence number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// One entry per policy.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<PolicyEntry<'a>>,
    /// The policies' tags (left out when there are none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<&'a str>,
}

/// One entry of `policies`.
#[derive(Debug, Serialize)]
pub struct PolicyEntry<'a> {
    /// The rule's name.
    pub id: &'a str,
    /// Its description.
    pub desc: &'a str,
    /// Its priority (0 low, 1 medium, 2 high).
    pub priority: i64,
}

impl<'a, L: Serialize> Annotated<'a, L> {
    /// `line` with `seq` and `policies`.
    pub fn new(line: &'a L, seq: Option<u64>, policies: &'a [Policy]) -> Self {
        Annotated {
            line,
            seq,
            policies: policies
                .iter()
                .map(|p| PolicyEntry {
                    id: &p.id,
                    desc: &p.desc,
                    priority: p.priority,
                })
                .collect(),
            tags: policies
                .iter()
                .flat_map(|p| p.tags.iter().map(String::as_str))
                .collect(),
        }
    }
}

/// `container`: the container entity.
#[derive(Debug, Serialize)]
pub struct ContainerSection<'a> {
    /// Container id.
    pub id: &'a str,
    /// Image name.
    pub image: &'a str,
    /// Image id.
    pub imageid: &'a str,
    /// Container name.
    pub name: &'a str,
    /// Privileged container.
    pub privileged: bool,
    /// Runtime without the `CT_` prefix, e.g. `DOCKER`.
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// `file`: the file entity of a file flow or event (or a file entity itself).
#[derive(Debug, Serialize)]
pub struct FileSection<'a> {
    /// Directory of `path` (as Go's `filepath.Dir`; `""` for an empty path).
    pub directory: &'a str,
    /// File descriptor (file flows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fd: Option<i32>,
    /// Opened for reading (file flows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_open_read: Option<bool>,
    /// Opened for writing (file flows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_open_write: Option<bool>,
    /// Last component of `path`.
    pub name: &'a str,
    /// Directory of `newpath` (flows and events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newdirectory: Option<&'a str>,
    /// Last component of `newpath` (flows and events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newname: Option<&'a str>,
    /// FOID of the new file, 40 hex digits, `""` when none (flows and events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newoid: Option<String>,
    /// Path of the new file (rename/link target), `""` when none (flows and events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newpath: Option<&'a str>,
    /// FOID of the file, 40 hex digits.
    pub oid: String,
    /// Names of the open modes, e.g. `["RDONLY", "CLOEXEC"]` (file flows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub openflags: Option<Vec<&'static str>>,
    /// Path.
    pub path: &'a str,
    /// Resource type letter: `f`, `d`, `4`, `6`, `u`, `p`, `?`, ... (`""` for an unknown file).
    #[serde(rename = "type")]
    pub kind: String,
}

/// `flow`: counters of a file or network flow.
#[derive(Debug, Serialize)]
pub struct FlowSection {
    /// Bytes read or received.
    pub rbytes: i64,
    /// Read or receive operations.
    pub rops: i64,
    /// Bytes written or sent.
    pub wbytes: i64,
    /// Write or send operations.
    pub wops: i64,
}

/// `k8s`: a Kubernetes event.
#[derive(Debug, Serialize)]
pub struct K8sSection<'a> {
    /// Action symbol, e.g. `K8S_COMPONENT_ADDED`.
    pub action: &'static str,
    /// Component symbol, e.g. `K8S_PODS`.
    pub kind: &'static str,
    /// The message (JSON text from the Kubernetes API), verbatim.
    pub message: &'a str,
}

/// `meta`: the trace the record comes from.
#[derive(Debug, Serialize)]
pub struct MetaSection<'a> {
    /// The header's `filename`, in full (`""` before schema 3).
    pub filename: &'a str,
    /// The header's schema `version`: 1000/1001, 2, 3, 4, 5 (0 before any header).
    pub schema: i64,
    /// Last component of `filename`, as the reference's `tracename`.
    pub tracename: &'a str,
}

/// `net`: the connection of a network flow or event.
#[derive(Debug, Serialize)]
pub struct NetSection {
    /// Destination IPv4, dotted quad.
    pub dip: String,
    /// Destination port.
    pub dport: i32,
    /// Socket file descriptor (network flows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fd: Option<i32>,
    /// `[sip, dip]`.
    pub ip: [String; 2],
    /// `[sport, dport]`.
    pub port: [i32; 2],
    /// IP protocol number: 6 TCP, 17 UDP, ...
    pub proto: i32,
    /// Source IPv4, dotted quad.
    pub sip: String,
    /// Source port.
    pub sport: i32,
}

/// `node`: the exporting host.
#[derive(Debug, Serialize)]
pub struct NodeSection<'a> {
    /// The header's `exporter` (host name).
    pub id: &'a str,
    /// The header's `ip` (`"NA"` before schema 2).
    pub ip: &'a str,
}

/// `pf`: thread counters of a process flow.
#[derive(Debug, Serialize)]
pub struct PfSection {
    /// Clone errors (`numCloneErrors`).
    pub nerrors: i64,
    /// Threads exited (`numThreadsExited`).
    pub nexits: i64,
    /// Threads cloned (`numThreadsCloned`).
    pub nthreads: i64,
}

/// `pod`: the pod entity (schema 4+).
#[derive(Debug, Serialize)]
pub struct PodSection<'a> {
    /// Host IPs, dotted quads.
    pub hostip: Vec<String>,
    /// Pod id.
    pub id: &'a str,
    /// Internal IPs, dotted quads.
    pub internalip: Vec<String>,
    /// Pod name.
    pub name: &'a str,
    /// Namespace.
    pub namespace: &'a str,
    /// Node name.
    pub nodename: &'a str,
    /// Restart count.
    pub restartcnt: i64,
    /// Services.
    pub services: Vec<ServiceJson<'a>>,
    /// Time of the pod record, nanoseconds.
    pub ts: i64,
}

/// One service of a pod.
#[derive(Debug, Serialize)]
pub struct ServiceJson<'a> {
    /// Service id.
    pub id: &'a str,
    /// Service name.
    pub name: &'a str,
    /// Namespace.
    pub namespace: &'a str,
    /// Cluster IPs, dotted quads.
    #[serde(rename = "clusterIP")]
    pub cluster_ip: Vec<String>,
    /// Ports.
    pub ports: Vec<PortJson<'a>>,
}

/// One port of a service.
#[derive(Debug, Serialize)]
pub struct PortJson<'a> {
    /// Service port.
    pub port: i32,
    /// Target port.
    pub targetport: i32,
    /// Node port.
    pub nodeport: i32,
    /// Protocol name.
    pub proto: &'a str,
}

/// `pproc`: the parent process entity.
#[derive(Debug, Serialize)]
pub struct PprocSection<'a> {
    /// Arguments.
    pub args: &'a str,
    /// `exe args`.
    pub cmdline: String,
    /// Creation time (OID `createTS`), nanoseconds.
    pub createts: i64,
    /// Working directory (schema 5; `""` before).
    pub cwd: &'a str,
    /// Container entry point.
    pub entry: bool,
    /// Environment, `KEY=VALUE` strings (schema 5; `[]` before).
    pub env: &'a [String],
    /// Executable.
    pub exe: &'a str,
    /// Group id.
    pub gid: i32,
    /// Group name.
    pub group: &'a str,
    /// Last component of `exe`.
    pub name: &'a str,
    /// PID (OID `hpid`).
    pub pid: i64,
    /// Attached to a terminal.
    pub tty: bool,
    /// User id.
    pub uid: i32,
    /// User name.
    pub user: &'a str,
}

/// `proc`: the record's process entity, with its ancestry.
#[derive(Debug, Serialize)]
pub struct ProcSection<'a> {
    /// `exe args` of the process and each ancestor, the process first.
    pub acmdline: Vec<String>,
    /// Executables of the process and each ancestor.
    pub aexe: Vec<&'a str>,
    /// Executable names of the process and each ancestor.
    pub aname: Vec<&'a str>,
    /// PIDs of the process and each ancestor.
    pub apid: Vec<i64>,
    /// Arguments.
    pub args: &'a str,
    /// `exe args`.
    pub cmdline: String,
    /// Creation time (OID `createTS`), nanoseconds.
    pub createts: i64,
    /// Working directory (schema 5; `""` before).
    pub cwd: &'a str,
    /// Container entry point (schema 3+; `false` before).
    pub entry: bool,
    /// Environment, `KEY=VALUE` strings (schema 5; `[]` before).
    pub env: &'a [String],
    /// Executable.
    pub exe: &'a str,
    /// Group id.
    pub gid: i32,
    /// Group name.
    pub group: &'a str,
    /// Last component of `exe`.
    pub name: &'a str,
    /// PID (OID `hpid`).
    pub pid: i64,
    /// Thread id (records that carry one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tid: Option<i64>,
    /// Attached to a terminal.
    pub tty: bool,
    /// User id.
    pub uid: i32,
    /// User name.
    pub user: &'a str,
}

/// Last component of a path, as Go's `filepath.Base` (trailing slashes ignored; `/` for a
/// path of slashes), except that an empty path gives `""` (Go gives `.`).
pub fn base_name(path: &str) -> &str {
    if path.is_empty() {
        return "";
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/";
    }
    match trimmed.rfind('/') {
        Some(i) => &trimmed[i + 1..],
        None => trimmed,
    }
}

/// Directory of a path, as Go's `filepath.Dir` for clean paths (`.` when there is no slash,
/// `/` for a top-level entry), except that an empty path gives `""` (Go gives `.`).
pub fn dir_name(path: &str) -> &str {
    if path.is_empty() {
        return "";
    }
    match path.rfind('/') {
        None => ".",
        Some(i) => {
            let dir = path[..i].trim_end_matches('/');
            if dir.is_empty() { "/" } else { dir }
        }
    }
}

fn cmdline(p: &Process) -> String {
    if p.exe_args.is_empty() {
        p.exe.clone()
    } else {
        format!("{} {}", p.exe, p.exe_args)
    }
}

fn dotted(ips: &[i64]) -> Vec<String> {
    ips.iter().map(|ip| ipv4_dotted(*ip)).collect()
}

fn meta<'a>(h: Option<&'a SfHeader>) -> MetaSection<'a> {
    let filename = h.map_or("", |h| h.filename.as_str());
    MetaSection {
        filename,
        schema: h.map_or(0, |h| h.version),
        tracename: base_name(filename),
    }
}

fn node<'a>(h: Option<&'a SfHeader>) -> NodeSection<'a> {
    NodeSection {
        id: h.map_or("", |h| h.exporter.as_str()),
        ip: h.map_or("", |h| h.ip.as_str()),
    }
}

fn container_section(c: &Container) -> ContainerSection<'_> {
    ContainerSection {
        id: &c.id,
        image: &c.image,
        imageid: &c.imageid,
        name: &c.name,
        privileged: c.privileged,
        kind: c.r#type.short_name(),
    }
}

fn pod_section(p: &Pod) -> PodSection<'_> {
    PodSection {
        hostip: dotted(&p.host_ip),
        id: &p.id,
        internalip: dotted(&p.internal_ip),
        name: &p.name,
        namespace: &p.namespace,
        nodename: &p.node_name,
        restartcnt: p.restart_count,
        services: p
            .services
            .iter()
            .map(|s| ServiceJson {
                id: &s.id,
                name: &s.name,
                namespace: &s.namespace,
                cluster_ip: dotted(&s.cluster_ip),
                ports: s
                    .port_list
                    .iter()
                    .map(|p| PortJson {
                        port: p.port,
                        targetport: p.target_port,
                        nodeport: p.node_port,
                        proto: &p.proto,
                    })
                    .collect(),
            })
            .collect(),
        ts: p.ts,
    }
}

fn pproc_section(p: &Process) -> PprocSection<'_> {
    PprocSection {
        args: &p.exe_args,
        cmdline: cmdline(p),
        createts: p.oid.create_ts,
        cwd: &p.cwd,
        entry: p.entry,
        env: &p.env,
        exe: &p.exe,
        gid: p.gid,
        group: &p.group_name,
        name: base_name(&p.exe),
        pid: p.oid.hpid,
        tty: p.tty,
        uid: p.uid,
        user: &p.user_name,
    }
}

/// The `proc` section of a record whose process OID is `oid` and thread `tid`: the process
/// entity's attributes when it is known; the OID's PID and creation time, and empty values,
/// when it is not.
fn proc_section<'a>(
    ctx: &Context<'a>,
    oid: handler_sdk::model::Oid,
    tid: Option<i64>,
) -> ProcSection<'a> {
    let chain: Vec<&'a Process> = ctx.process().into_iter().chain(ctx.ancestors()).collect();
    let p = ctx.process();
    ProcSection {
        acmdline: chain.iter().map(|p| cmdline(p)).collect(),
        aexe: chain.iter().map(|p| p.exe.as_str()).collect(),
        aname: chain.iter().map(|p| base_name(&p.exe)).collect(),
        apid: chain.iter().map(|p| p.oid.hpid).collect(),
        args: p.map_or("", |p| p.exe_args.as_str()),
        cmdline: p.map(cmdline).unwrap_or_default(),
        createts: oid.create_ts,
        cwd: p.map_or("", |p| p.cwd.as_str()),
        entry: p.is_some_and(|p| p.entry),
        env: p.map_or(&[], |p| p.env.as_slice()),
        exe: p.map_or("", |p| p.exe.as_str()),
        gid: p.map_or(0, |p| p.gid),
        group: p.map_or("", |p| p.group_name.as_str()),
        name: p.map_or("", |p| base_name(&p.exe)),
        pid: oid.hpid,
        tid,
        tty: p.is_some_and(|p| p.tty),
        uid: p.map_or(0, |p| p.uid),
        user: p.map_or("", |p| p.user_name.as_str()),
    }
}

fn file_section<'a>(f: &'a File) -> FileSection<'a> {
    FileSection {
        directory: dir_name(&f.path),
        fd: None,
        is_open_read: None,
        is_open_write: None,
        name: base_name(&f.path),
        newdirectory: None,
        newname: None,
        newoid: None,
        newpath: None,
        oid: f.oid.to_string(),
        openflags: None,
        path: &f.path,
        kind: f.type_letter(),
    }
}

/// The `file` section of a file flow or event: the file by `fileOID` (empty values when it
/// is unknown, but its FOID), and the new file by `newFileOID`.
fn flow_file_section<'a>(
    ctx: &Context<'a>,
    file_oid: handler_sdk::model::Foid,
    new_file_oid: Option<handler_sdk::model::Foid>,
) -> FileSection<'a> {
    let mut s = match ctx.file() {
        Some(f) => file_section(f),
        None => FileSection {
            directory: "",
            fd: None,
            is_open_read: None,
            is_open_write: None,
            name: "",
            newdirectory: None,
            newname: None,
            newoid: None,
            newpath: None,
            oid: file_oid.to_string(),
            openflags: None,
            path: "",
            kind: String::new(),
        },
    };
    let new_path = ctx.new_file().map_or("", |f| f.path.as_str());
    s.newdirectory = Some(dir_name(new_path));
    s.newname = Some(base_name(new_path));
    s.newoid = Some(new_file_oid.map(|o| o.to_string()).unwrap_or_default());
    s.newpath = Some(new_path);
    s
}

fn net_section(sip: i32, sport: i32, dip: i32, dport: i32, proto: i32) -> NetSection {
    let (s, d) = (ipv4_dotted(i64::from(sip)), ipv4_dotted(i64::from(dip)));
    NetSection {
        dip: d.clone(),
        dport,
        fd: None,
        ip: [s.clone(), d],
        port: [sport, dport],
        proto,
        sip: s,
        sport,
    }
}

/// What every flow and event line has: its type, process OID, thread, times, opFlags and
/// return code.
struct Head {
    kind: RecordKind,
    oid: handler_sdk::model::Oid,
    tid: Option<i64>,
    ts: i64,
    endts: i64,
    op_flags: i32,
    ret: i64,
}

/// The line of a flow or event with the common parts filled: type, times, opFlags, return
/// code, the process, its parent, container and pod, node and meta.
fn flow_line<'a>(ctx: &Context<'a>, head: Head) -> Line<'a> {
    let h = ctx.header();
    Line {
        version: JSON_SCHEMA_VERSION,
        state: None,
        endts: Some(head.endts),
        opflags: Some(op_flags::names_for(head.op_flags, head.kind)),
        ret: Some(head.ret),
        ts: Some(head.ts),
        kind: head.kind.type_code(),
        container: ctx.container().map(container_section),
        file: None,
        flow: None,
        k8s: None,
        meta: meta(h),
        net: None,
        node: node(h),
        pf: None,
        pod: ctx.pod().map(pod_section),
        pproc: ctx.parent().map(pproc_section),
        proc: Some(proc_section(ctx, head.oid, head.tid)),
    }
}

/// A process event: `proc`, `pproc`, `container`, `pod`; `ret` is the event's.
pub fn process_event<'a>(ctx: &Context<'a>, e: &ProcessEvent) -> Line<'a> {
    flow_line(
        ctx,
        Head {
            kind: RecordKind::ProcessEvent,
            oid: e.proc_oid,
            tid: Some(e.tid),
            ts: e.ts,
            endts: 0,
            op_flags: e.op_flags,
            ret: i64::from(e.ret),
        },
    )
}

/// A process flow: as a process event, plus `pf` (thread counters); `proc` has no `tid`.
pub fn process_flow<'a>(ctx: &Context<'a>, f: &ProcessFlow) -> Line<'a> {
    let mut line = flow_line(
        ctx,
        Head {
            kind: RecordKind::ProcessFlow,
            oid: f.proc_oid,
            tid: None,
            ts: f.ts,
            endts: f.end_ts,
            op_flags: f.op_flags,
            ret: 0,
        },
    );
    line.pf = Some(PfSection {
        nerrors: f.num_clone_errors,
        nexits: f.num_threads_exited,
        nthreads: f.num_threads_cloned,
    });
    line
}

/// A file flow: `file` (with `fd` and `openflags`) and `flow`.
pub fn file_flow<'a>(ctx: &Context<'a>, f: &FileFlow) -> Line<'a> {
    let mut line = flow_line(
        ctx,
        Head {
            kind: RecordKind::FileFlow,
            oid: f.proc_oid,
            tid: Some(f.tid),
            ts: f.ts,
            endts: f.end_ts,
            op_flags: f.op_flags,
            ret: 0,
        },
    );
    let mut file = flow_file_section(ctx, f.file_oid, None);
    file.fd = Some(f.fd);
    // The reference's `IsOpenRead`/`IsOpenWrite`: RDWR counts as both.
    file.is_open_read = Some(f.open_flags & 1 != 0);
    file.is_open_write = Some(f.open_flags & 2 != 0);
    file.openflags = Some(open_flag_names(f.open_flags));
    line.file = Some(file);
    line.flow = Some(FlowSection {
        rbytes: f.num_r_recv_bytes,
        rops: f.num_r_recv_ops,
        wbytes: f.num_w_send_bytes,
        wops: f.num_w_send_ops,
    });
    line
}

/// A file event: `file` (with the new file of a rename or link); `ret` is the event's.
pub fn file_event<'a>(ctx: &Context<'a>, e: &FileEvent) -> Line<'a> {
    let mut line = flow_line(
        ctx,
        Head {
            kind: RecordKind::FileEvent,
            oid: e.proc_oid,
            tid: Some(e.tid),
            ts: e.ts,
            endts: 0,
            op_flags: e.op_flags,
            ret: i64::from(e.ret),
        },
    );
    line.file = Some(flow_file_section(ctx, e.file_oid, e.new_file_oid));
    line
}

/// A network flow: `net` (with `fd`) and `flow`.
pub fn network_flow<'a>(ctx: &Context<'a>, f: &NetworkFlow) -> Line<'a> {
    let mut line = flow_line(
        ctx,
        Head {
            kind: RecordKind::NetworkFlow,
            oid: f.proc_oid,
            tid: Some(f.tid),
            ts: f.ts,
            endts: f.end_ts,
            op_flags: f.op_flags,
            ret: 0,
        },
    );
    let mut net = net_section(f.sip, f.sport, f.dip, f.dport, f.proto);
    net.fd = Some(f.fd);
    line.net = Some(net);
    line.flow = Some(FlowSection {
        rbytes: f.num_r_recv_bytes,
        rops: f.num_r_recv_ops,
        wbytes: f.num_w_send_bytes,
        wops: f.num_w_send_ops,
    });
    line
}

/// A network event: `net`; `ret` is the event's.
pub fn network_event<'a>(ctx: &Context<'a>, e: &NetworkEvent) -> Line<'a> {
    let mut line = flow_line(
        ctx,
        Head {
            kind: RecordKind::NetworkEvent,
            oid: e.proc_oid,
            tid: Some(e.tid),
            ts: e.ts,
            endts: 0,
            op_flags: e.op_flags,
            ret: i64::from(e.ret),
        },
    );
    line.net = Some(net_section(e.sip, e.sport, e.dip, e.dport, e.proto));
    line
}

/// A Kubernetes event: `k8s`, `node` and `meta` only (as the reference); `endts` is its `ts`.
pub fn k8s_event<'a>(ctx: &Context<'a>, e: &'a K8sEvent) -> Line<'a> {
    let h = ctx.header();
    Line {
        version: JSON_SCHEMA_VERSION,
        state: None,
        endts: Some(e.ts),
        opflags: Some(Vec::new()),
        ret: Some(0),
        ts: Some(e.ts),
        kind: RecordKind::K8sEvent.type_code(),
        container: None,
        file: None,
        flow: None,
        k8s: Some(K8sSection {
            action: e.action.symbol(),
            kind: e.kind.symbol(),
            message: &e.message,
        }),
        meta: meta(h),
        net: None,
        node: node(h),
        pf: None,
        pod: None,
        pproc: None,
        proc: None,
    }
}

/// The line of an entity record: type, state, ts, `node`, `meta`; the caller adds the
/// entity's sections.
fn entity_line<'a>(
    ctx: &Context<'a>,
    kind: RecordKind,
    state: Option<&'static str>,
    ts: Option<i64>,
) -> Line<'a> {
    let h = ctx.header();
    Line {
        version: JSON_SCHEMA_VERSION,
        state,
        endts: None,
        opflags: None,
        ret: None,
        ts,
        kind: kind.type_code(),
        container: None,
        file: None,
        flow: None,
        k8s: None,
        meta: meta(h),
        net: None,
        node: node(h),
        pf: None,
        pod: None,
        pproc: None,
        proc: None,
    }
}

/// A header entity: `node` and `meta` (of this header).
pub fn header<'a>(ctx: &Context<'a>, _: &SfHeader) -> Line<'a> {
    entity_line(ctx, RecordKind::Header, None, None)
}

/// A container entity: `container`, and `pod` when its pod is known.
pub fn container<'a>(ctx: &Context<'a>, c: &'a Container) -> Line<'a> {
    let mut line = entity_line(ctx, RecordKind::Container, None, None);
    line.container = Some(container_section(c));
    line.pod = ctx.pod().map(pod_section);
    line
}

/// A pod entity: `pod`.
pub fn pod<'a>(ctx: &Context<'a>, p: &'a Pod) -> Line<'a> {
    let mut line = entity_line(ctx, RecordKind::Pod, None, Some(p.ts));
    line.pod = Some(pod_section(p));
    line
}

/// A process entity: `proc` (without `tid`), `pproc`, `container`, `pod`.
pub fn process<'a>(ctx: &Context<'a>, p: &Process) -> Line<'a> {
    let mut line = entity_line(ctx, RecordKind::Process, Some(p.state.symbol()), Some(p.ts));
    line.proc = Some(proc_section(ctx, p.oid, None));
    line.pproc = ctx.parent().map(pproc_section);
    line.container = ctx.container().map(container_section);
    line.pod = ctx.pod().map(pod_section);
    line
}

/// A file entity: `file` (path, name, directory, oid, type) and `container`.
pub fn file<'a>(ctx: &Context<'a>, f: &'a File) -> Line<'a> {
    let mut line = entity_line(ctx, RecordKind::File, Some(f.state.symbol()), Some(f.ts));
    line.file = Some(file_section(f));
    line.container = ctx.container().map(container_section);
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use handler_sdk::EntityTables;
    use handler_sdk::model::*;
    use serde_json::json;

    fn process(hpid: i64, poid: Option<i64>, exe: &str, args: &str) -> Process {
        Process {
            state: ObjectState::Created,
            oid: Oid { create_ts: 7, hpid },
            poid: poid.map(|hpid| Oid { create_ts: 7, hpid }),
            ts: 1,
            exe: exe.into(),
            exe_args: args.into(),
            uid: 1000,
            user_name: "u".into(),
            gid: 100,
            group_name: "g".into(),
            tty: true,
            container_id: Some("c1".into()),
            entry: false,
            cwd: "/home/u".into(),
            env: vec!["A=1".into(), "B=2".into()],
        }
    }

    fn tables() -> EntityTables {
        let mut t = EntityTables::new();
        for r in [
            Record::Header(SfHeader {
                version: 4,
                exporter: "host".into(),
                ip: "10.0.0.1".into(),
                filename: "/data/trace1".into(),
            }),
            Record::Pod(Pod {
                ts: 3,
                id: "pod1".into(),
                name: "web".into(),
                node_name: "n1".into(),
                host_ip: vec![16777343, 16820416],
                internal_ip: vec![],
                namespace: "default".into(),
                restart_count: 2,
                labels: vec![],
                selectors: vec![],
                services: vec![],
            }),
            Record::Container(Container {
                id: "c1".into(),
                name: "web".into(),
                image: "nginx".into(),
                imageid: "sha".into(),
                r#type: ContainerType::Docker,
                privileged: false,
                pod_id: Some("pod1".into()),
            }),
            Record::Process(process(1, None, "/sbin/init", "")),
            Record::Process(process(20, Some(1), "/bin/sh", "-c ls")),
            Record::File(File {
                state: ObjectState::Created,
                oid: Foid([0xab; 20]),
                ts: 2,
                restype: i32::from(b'f'),
                path: "/tmp/a.txt".into(),
                container_id: Some("c1".into()),
            }),
        ] {
            assert!(t.store(r).is_none());
        }
        t
    }

    fn to_json(line: &Line<'_>) -> serde_json::Value {
        serde_json::to_value(line).unwrap()
    }

    #[test]
    fn a_file_flow_has_every_section_of_its_context() {
        let mut t = tables();
        let ff = FileFlow {
            proc_oid: Oid {
                create_ts: 7,
                hpid: 20,
            },
            ts: 10,
            tid: 21,
            op_flags: op_flags::OPEN | op_flags::READ_RECV | op_flags::CLOSE,
            open_flags: 4097,
            end_ts: 11,
            file_oid: Foid([0xab; 20]),
            fd: 3,
            num_r_recv_ops: 1,
            num_w_send_ops: 0,
            num_r_recv_bytes: 832,
            num_w_send_bytes: 0,
        };
        let rec = Record::FileFlow(ff.clone());
        let ctx = t.context_for(9, &rec);
        let v = to_json(&file_flow(&ctx, &ff));
        let ab = "ab".repeat(20);
        assert_eq!(
            v,
            json!({
                "version": 5, "endts": 11, "opflags": ["OPEN", "CLOSE", "READ"], "ret": 0,
                "ts": 10, "type": "FF",
                "container": {"id": "c1", "image": "nginx", "imageid": "sha", "name": "web",
                              "privileged": false, "type": "DOCKER"},
                "file": {"directory": "/tmp", "fd": 3, "is_open_read": true,
                         "is_open_write": false, "name": "a.txt", "newdirectory": "",
                         "newname": "", "newoid": "", "newpath": "", "oid": ab,
                         "openflags": ["RDONLY", "CLOEXEC"], "path": "/tmp/a.txt", "type": "f"},
                "flow": {"rbytes": 832, "rops": 1, "wbytes": 0, "wops": 0},
                "meta": {"filename": "/data/trace1", "schema": 4, "tracename": "trace1"},
                "node": {"id": "host", "ip": "10.0.0.1"},
                "pod": {"hostip": ["127.0.0.1", "192.168.0.1"], "id": "pod1", "internalip": [],
                        "name": "web", "namespace": "default", "nodename": "n1",
                        "restartcnt": 2, "services": [], "ts": 3},
                "pproc": {"args": "", "cmdline": "/sbin/init", "createts": 7, "cwd": "/home/u",
                          "entry": false, "env": ["A=1", "B=2"], "exe": "/sbin/init", "gid": 100, "group": "g", "name": "init",
                          "pid": 1, "tty": true, "uid": 1000, "user": "u"},
                "proc": {"acmdline": ["/bin/sh -c ls", "/sbin/init"],
                         "aexe": ["/bin/sh", "/sbin/init"], "aname": ["sh", "init"],
                         "apid": [20, 1], "args": "-c ls", "cmdline": "/bin/sh -c ls",
                         "createts": 7, "cwd": "/home/u", "entry": false, "env": ["A=1", "B=2"],
                         "exe": "/bin/sh", "gid": 100, "group": "g", "name": "sh", "pid": 20,
                         "tid": 21, "tty": true, "uid": 1000, "user": "u"}
            })
        );
    }

    #[test]
    fn keys_come_in_the_reference_order() {
        let mut t = tables();
        let pe = ProcessEvent {
            proc_oid: Oid {
                create_ts: 7,
                hpid: 20,
            },
            ts: 5,
            tid: 20,
            op_flags: op_flags::EXEC,
            args: vec![],
            ret: 0,
        };
        let rec = Record::ProcessEvent(pe.clone());
        let ctx = t.context_for(1, &rec);
        let text = serde_json::to_string(&process_event(&ctx, &pe)).unwrap();
        let keys: Vec<usize> = [
            "{\"version\":5,",
            "\"endts\":",
            "\"opflags\":[\"EXEC\"]",
            "\"ret\":",
            "\"ts\":",
            "\"type\":\"PE\"",
            "\"container\":",
            "\"meta\":",
            "\"node\":",
            "\"pod\":",
            "\"pproc\":",
            "\"proc\":",
        ]
        .iter()
        .map(|k| text.find(k).unwrap_or_else(|| panic!("{k} not in {text}")))
        .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert!(
            !text.contains("\"file\"") && !text.contains("\"net\""),
            "{text}"
        );
    }

    #[test]
    fn an_unknown_process_keeps_its_pid_and_has_no_parent_or_container() {
        let mut t = tables();
        let nf = NetworkFlow {
            proc_oid: Oid {
                create_ts: 9,
                hpid: 99,
            },
            ts: 1,
            tid: 100,
            op_flags: op_flags::CONNECT | op_flags::WRITE_SEND,
            end_ts: 2,
            sip: 16777343,
            sport: 5000,
            dip: 16777343,
            dport: 8080,
            proto: 6,
            fd: 4,
            num_r_recv_ops: 0,
            num_w_send_ops: 1,
            num_r_recv_bytes: 0,
            num_w_send_bytes: 10,
        };
        let rec = Record::NetworkFlow(nf.clone());
        let ctx = t.context_for(1, &rec);
        let v = to_json(&network_flow(&ctx, &nf));
        assert_eq!(v["opflags"], json!(["CONNECT", "SEND"]));
        assert_eq!(
            v["net"],
            json!({"dip": "127.0.0.1", "dport": 8080, "fd": 4,
                   "ip": ["127.0.0.1", "127.0.0.1"], "port": [5000, 8080], "proto": 6,
                   "sip": "127.0.0.1", "sport": 5000})
        );
        assert_eq!(v["proc"]["pid"], 99);
        assert_eq!(v["proc"]["createts"], 9);
        assert_eq!(v["proc"]["exe"], "");
        assert_eq!(v["proc"]["apid"], json!([]));
        for absent in ["pproc", "container", "pod", "file"] {
            assert!(v.get(absent).is_none(), "{absent} in {v}");
        }
    }

    #[test]
    fn a_k8s_event_has_only_k8s_node_and_meta() {
        let mut t = tables();
        let ke = K8sEvent {
            kind: K8sComponent::Pods,
            action: K8sAction::Added,
            ts: 42,
            message: "{\"kind\":\"Pod\"}\n\u{0}".into(),
        };
        let rec = Record::K8sEvent(ke.clone());
        let ctx = t.context_for(1, &rec);
        let text = serde_json::to_string(&k8s_event(&ctx, &ke)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v,
            json!({"version": 5, "endts": 42, "opflags": [], "ret": 0, "ts": 42, "type": "KE",
                   "k8s": {"action": "K8S_COMPONENT_ADDED", "kind": "K8S_PODS",
                           "message": "{\"kind\":\"Pod\"}\n\u{0}"},
                   "meta": {"filename": "/data/trace1", "schema": 4, "tracename": "trace1"},
                   "node": {"id": "host", "ip": "10.0.0.1"}})
        );
    }

    #[test]
    fn entities_have_their_own_sections() {
        let mut t = tables();
        let f = File {
            state: ObjectState::Modified,
            oid: Foid([1; 20]),
            ts: 8,
            restype: i32::from(b'd'),
            path: "/var/log/".into(),
            container_id: None,
        };
        assert!(t.store(Record::File(f.clone())).is_none());
        let rec = Record::File(f.clone());
        let ctx = t.context_for(1, &rec);
        let v = to_json(&file(&ctx, &f));
        assert_eq!(v["type"], "F");
        assert_eq!(v["state"], "MODIFIED");
        assert_eq!(v["file"]["name"], "log");
        assert_eq!(v["file"]["directory"], "/var/log");
        assert!(v.get("opflags").is_none() && v.get("proc").is_none(), "{v}");
    }

    #[test]
    fn policies_and_their_tags_follow_the_record_as_in_the_reference() {
        #[derive(Serialize)]
        struct L {
            version: u32,
        }
        let mut high = Policy::new("shell", "a shell", 2);
        high.tags = vec!["mitre:T1059".into(), "shell".into()];
        let policies = [high, Policy::new("other", "", 0)];
        let text =
            serde_json::to_string(&Annotated::new(&L { version: 5 }, Some(52), &policies)).unwrap();
        assert_eq!(
            text,
            r#"{"version":5,"seq":52,"policies":[{"id":"shell","desc":"a shell","priority":2},{"id":"other","desc":"","priority":0}],"tags":["mitre:T1059","shell"]}"#
        );
        let plain = serde_json::to_string(&Annotated::new(&L { version: 5 }, None, &[])).unwrap();
        assert_eq!(plain, r#"{"version":5}"#);
    }

    #[test]
    fn base_and_dir_names_follow_go_for_clean_paths() {
        for (path, base, dir) in [
            ("/tmp/a.txt", "a.txt", "/tmp"),
            ("./testing_dir", "testing_dir", "."),
            ("a", "a", "."),
            ("/a", "a", "/"),
            ("/", "/", "/"),
            ("a/b/", "b", "a/b"),
            ("", "", ""),
        ] {
            assert_eq!(base_name(path), base, "base of {path:?}");
            assert_eq!(dir_name(path), dir, "dir of {path:?}");
        }
    }
}
