//! One flow or event with its context, in the terms of the reference's flat record
//! (`sfgo.FlatRecord` as its flattener fills it): what both encoders read.

use handler_sdk::Policy;
use handler_sdk::model::{
    Container, File, FileEvent, FileFlow, Foid, K8sEvent, NetworkEvent, NetworkFlow, Oid, Pod,
    Process, ProcessEvent, ProcessFlow, RecordKind, SfHeader,
};
use handler_sdk::{Ancestors, Context};

/// Flow counters (`numRRecvOps`, `numWSendOps`, `numRRecvBytes`, `numWSendBytes`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Read or receive operations.
    pub rops: i64,
    /// Write or send operations.
    pub wops: i64,
    /// Bytes read or received.
    pub rbytes: i64,
    /// Bytes written or sent.
    pub wbytes: i64,
}

/// A connection: IPv4 addresses as SysFlow stores them (network byte order in an `int`),
/// ports and IANA protocol number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Conn {
    /// Source address.
    pub sip: i32,
    /// Source port.
    pub sport: i32,
    /// Destination address.
    pub dip: i32,
    /// Destination port.
    pub dport: i32,
    /// IANA protocol number (6 TCP, 17 UDP).
    pub proto: i32,
}

/// Thread counters of a process flow (an extension: the reference reader drops process flows).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThreadCounters {
    /// `numThreadsCloned`.
    pub cloned: i64,
    /// `numThreadsExited`.
    pub exited: i64,
    /// `numCloneErrors`.
    pub errors: i64,
}

/// A k8s event's message as the reference exports it: the collector's trailing newline and
/// NUL (a C string's end) left out, so that the JSON text parses.
pub fn k8s_message(message: &str) -> &str {
    message.trim_end_matches(['\n', '\0'])
}

/// A flow or event and everything the exporter writes about it.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    /// The record's kind.
    pub kind: RecordKind,
    /// `ts`, nanoseconds.
    pub ts: i64,
    /// The reference's `sf.endts`: a flow's `endTs`, a k8s event's `ts`, 0 otherwise.
    pub endts: i64,
    /// Thread id (0 where the record has none).
    pub tid: i64,
    /// `opFlags` (0 for k8s events).
    pub op_flags: i32,
    /// The reference's `sf.ret`: the return code of process and file events, 0 otherwise.
    pub ret: i64,
    /// The record's process OID (`procOID`); zero for k8s events.
    pub oid: Oid,
    /// The process entity, when known.
    pub process: Option<&'a Process>,
    /// Its ancestors, parent first.
    pub ancestors: Ancestors<'a>,
    /// The tables' [`EntityTables::epoch`](handler_sdk::EntityTables::epoch) when the view
    /// was made: what depends on the process, its ancestors, container and pod is the same
    /// for two views of one process OID with one epoch.
    pub epoch: u64,
    /// The process's container and pod.
    pub container: Option<&'a Container>,
    /// The container's pod.
    pub pod: Option<&'a Pod>,
    /// The trace header.
    pub header: Option<&'a SfHeader>,
    /// File flows and events: the file's FOID and entity.
    pub file_oid: Option<Foid>,
    /// The file entity.
    pub file: Option<&'a File>,
    /// File events: the second file (rename, link target).
    pub new_file_oid: Option<Foid>,
    /// Its entity.
    pub new_file: Option<&'a File>,
    /// File and network flows: the descriptor.
    pub fd: i32,
    /// File flows: the open modes.
    pub open_flags: i32,
    /// File and network flows.
    pub counters: Counters,
    /// Network flows and events.
    pub conn: Option<Conn>,
    /// Process flows.
    pub threads: Option<ThreadCounters>,
    /// K8s events.
    pub k8s: Option<&'a K8sEvent>,
    /// The policies upstream stages matched on the record.
    pub policies: &'a [Policy],
}

impl<'a> View<'a> {
    fn base(ctx: &Context<'a>, kind: RecordKind) -> View<'a> {
        View {
            kind,
            ts: 0,
            endts: 0,
            tid: 0,
            op_flags: 0,
            ret: 0,
            oid: Oid {
                create_ts: 0,
                hpid: 0,
            },
            process: ctx.process(),
            ancestors: ctx.ancestors(),
            epoch: ctx.tables().epoch(),
            container: ctx.container(),
            pod: ctx.pod(),
            header: ctx.header(),
            file_oid: None,
            file: None,
            new_file_oid: None,
            new_file: None,
            fd: 0,
            open_flags: 0,
            counters: Counters::default(),
            conn: None,
            threads: None,
            k8s: None,
            policies: ctx.policies(),
        }
    }

    /// The PID written for the process: the entity's, else the record's OID.
    pub fn pid(&self) -> i64 {
        self.process.map_or(self.oid.hpid, |p| p.oid.hpid)
    }

    /// The process creation time written: the entity's, else the record's OID.
    pub fn createts(&self) -> i64 {
        self.process.map_or(self.oid.create_ts, |p| p.oid.create_ts)
    }

    /// The parent entity, when known: the first of the [`ancestors`](View::ancestors), looked
    /// up only by what needs it (the per-process sections, encoded once per process).
    pub fn parent(&self) -> Option<&'a Process> {
        let mut ancestors = self.ancestors;
        ancestors.next()
    }

    /// The parent's OID as the process entity names it.
    pub fn poid(&self) -> Option<Oid> {
        self.process.and_then(|p| p.poid)
    }

    /// A process event.
    pub fn process_event(ctx: &Context<'a>, e: &ProcessEvent) -> Self {
        View {
            ts: e.ts,
            tid: e.tid,
            op_flags: e.op_flags,
            ret: i64::from(e.ret),
            oid: e.proc_oid,
            ..View::base(ctx, RecordKind::ProcessEvent)
        }
    }

    /// A process flow (an extension: the reference reader drops them).
    pub fn process_flow(ctx: &Context<'a>, f: &ProcessFlow) -> Self {
        View {
            ts: f.ts,
            endts: f.end_ts,
            op_flags: f.op_flags,
            oid: f.proc_oid,
            threads: Some(ThreadCounters {
                cloned: f.num_threads_cloned,
                exited: f.num_threads_exited,
                errors: f.num_clone_errors,
            }),
            ..View::base(ctx, RecordKind::ProcessFlow)
        }
    }

    /// A file flow.
    pub fn file_flow(ctx: &Context<'a>, f: &FileFlow) -> Self {
        View {
            ts: f.ts,
            endts: f.end_ts,
            tid: f.tid,
            op_flags: f.op_flags,
            oid: f.proc_oid,
            file_oid: Some(f.file_oid),
            file: ctx.file(),
            fd: f.fd,
            open_flags: f.open_flags,
            counters: Counters {
                rops: f.num_r_recv_ops,
                wops: f.num_w_send_ops,
                rbytes: f.num_r_recv_bytes,
                wbytes: f.num_w_send_bytes,
            },
            ..View::base(ctx, RecordKind::FileFlow)
        }
    }

    /// A file event.
    pub fn file_event(ctx: &Context<'a>, e: &FileEvent) -> Self {
        View {
            ts: e.ts,
            tid: e.tid,
            op_flags: e.op_flags,
            ret: i64::from(e.ret),
            oid: e.proc_oid,
            file_oid: Some(e.file_oid),
            file: ctx.file(),
            new_file_oid: e.new_file_oid,
            new_file: ctx.new_file(),
            ..View::base(ctx, RecordKind::FileEvent)
        }
    }

    /// A network flow.
    pub fn network_flow(ctx: &Context<'a>, f: &NetworkFlow) -> Self {
        View {
            ts: f.ts,
            endts: f.end_ts,
            tid: f.tid,
            op_flags: f.op_flags,
            oid: f.proc_oid,
            fd: f.fd,
            counters: Counters {
                rops: f.num_r_recv_ops,
                wops: f.num_w_send_ops,
                rbytes: f.num_r_recv_bytes,
                wbytes: f.num_w_send_bytes,
            },
            conn: Some(Conn {
                sip: f.sip,
                sport: f.sport,
                dip: f.dip,
                dport: f.dport,
                proto: f.proto,
            }),
            ..View::base(ctx, RecordKind::NetworkFlow)
        }
    }

    /// A network event (an extension: the reference reader drops them); `ret` is given.
    pub fn network_event(ctx: &Context<'a>, e: &NetworkEvent) -> Self {
        View {
            ts: e.ts,
            tid: e.tid,
            op_flags: e.op_flags,
            ret: i64::from(e.ret),
            oid: e.proc_oid,
            conn: Some(Conn {
                sip: e.sip,
                sport: e.sport,
                dip: e.dip,
                dport: e.dport,
                proto: e.proto,
            }),
            ..View::base(ctx, RecordKind::NetworkEvent)
        }
    }

    /// A Kubernetes event: `endts` is its `ts`.
    pub fn k8s_event(ctx: &Context<'a>, e: &'a K8sEvent) -> Self {
        View {
            ts: e.ts,
            endts: e.ts,
            k8s: Some(e),
            process: None,
            container: None,
            pod: None,
            ..View::base(ctx, RecordKind::K8sEvent)
        }
    }
}
