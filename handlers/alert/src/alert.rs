//! An alert as written: one JSON object per line. Section and field names follow the
//! reference's JSON export (`proc.exe`, `pproc.pid`, `file.newpath`, `net.dport`, ...), so
//! alerts read like the records the `json` exporter writes.

use handler_sdk::prelude::*;
use serde::Serialize;

use crate::rules::{Facts, Rule};

/// The record's own values an alert carries besides its context; built per record kind.
#[derive(Debug, Default, Clone, Copy)]
pub struct Fields {
    ts: i64,
    end_ts: Option<i64>,
    tid: Option<i64>,
    ret: Option<i32>,
    fd: Option<i32>,
    net: Option<Net>,
    bytes: Option<(i64, i64)>,
}

#[derive(Debug, Clone, Copy)]
struct Net {
    proto: i32,
    sip: i32,
    sport: i32,
    dip: i32,
    dport: i32,
}

impl Fields {
    /// A record at time `ts` (nanoseconds).
    pub fn at(ts: i64) -> Self {
        Fields {
            ts,
            ..Default::default()
        }
    }

    /// A record at time `ts` by thread `tid`.
    pub fn tid(ts: i64, tid: i64) -> Self {
        Fields {
            tid: Some(tid),
            ..Fields::at(ts)
        }
    }

    /// With the end of a flow's interval.
    pub fn end(self, end_ts: i64) -> Self {
        Fields {
            end_ts: Some(end_ts),
            ..self
        }
    }

    /// With an event's return code.
    pub fn ret(self, ret: i32) -> Self {
        Fields {
            ret: Some(ret),
            ..self
        }
    }

    /// With a flow's file descriptor.
    pub fn fd(self, fd: i32) -> Self {
        Fields {
            fd: Some(fd),
            ..self
        }
    }

    /// With a network flow's or event's endpoints (IPv4 as SysFlow stores them).
    pub fn net(self, proto: i32, sip: i32, sport: i32, dip: i32, dport: i32) -> Self {
        Fields {
            net: Some(Net {
                proto,
                sip,
                sport,
                dip,
                dport,
            }),
            ..self
        }
    }

    /// With a flow's bytes read (received) and written (sent).
    pub fn bytes(self, read: i64, written: i64) -> Self {
        Fields {
            bytes: Some((read, written)),
            ..self
        }
    }
}

/// The record's process.
#[derive(Debug, Serialize)]
struct Proc<'a> {
    pid: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    tid: Option<i64>,
    exe: &'a str,
    args: &'a str,
    cmdline: String,
    uid: i32,
    user: &'a str,
    createts: i64,
}

/// Its parent.
#[derive(Debug, Serialize)]
struct ParentProc<'a> {
    pid: i64,
    exe: &'a str,
    args: &'a str,
}

#[derive(Debug, Serialize)]
struct ContainerRef<'a> {
    id: &'a str,
    name: &'a str,
    image: &'a str,
}

#[derive(Debug, Serialize)]
struct PodRef<'a> {
    id: &'a str,
    name: &'a str,
    ns: &'a str,
}

#[derive(Debug, Serialize)]
struct FileRef<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    fd: Option<i32>,
    path: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    newpath: Option<&'a str>,
}

#[derive(Debug, Serialize)]
struct NetRef {
    proto: i32,
    sip: String,
    sport: i32,
    dip: String,
    dport: i32,
}

#[derive(Debug, Serialize)]
struct FlowBytes {
    rbytes: i64,
    wbytes: i64,
}

/// One alert. Sections the record has no value for are left out.
#[derive(Debug, Serialize)]
pub struct Alert<'a> {
    /// The rule's name.
    rule: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    priority: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    desc: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    tags: &'a [String],
    /// The record's sequence number in the stream (a restarted handler may raise an alert
    /// twice: the sequence number tells duplicates apart).
    seq: u64,
    /// Time, nanoseconds since the epoch.
    ts: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    endts: Option<i64>,
    /// Schema name of the record type (`ProcessEvent`, `FileFlow`, ...).
    kind: &'static str,
    /// The reference's opFlags names.
    opflags: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ret: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    proc: Option<Proc<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pproc: Option<ParentProc<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    container: Option<ContainerRef<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pod: Option<PodRef<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<FileRef<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    net: Option<NetRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    flow: Option<FlowBytes>,
}

impl<'a> Alert<'a> {
    /// The alert `rule` raises on the record described by `facts` and `fields`.
    pub fn new(rule: &'a Rule, ctx: &Context<'a>, facts: &Facts, fields: &Fields) -> Self {
        let kind = facts.kind.record_kind();
        let file = ctx.file();
        let new_file = ctx.new_file();
        Alert {
            rule: &rule.name,
            priority: rule.priority.as_deref(),
            desc: rule.desc.as_deref(),
            tags: &rule.tags,
            seq: ctx.seq(),
            ts: fields.ts,
            endts: fields.end_ts,
            kind: kind.name(),
            opflags: op_flags::names_for(facts.op_flags, kind),
            ret: fields.ret,
            proc: ctx.process().map(|p| Proc {
                pid: p.oid.hpid,
                tid: fields.tid,
                exe: &p.exe,
                args: &p.exe_args,
                cmdline: p.cmdline(),
                uid: p.uid,
                user: &p.user_name,
                createts: p.oid.create_ts,
            }),
            pproc: ctx.parent().map(|p| ParentProc {
                pid: p.oid.hpid,
                exe: &p.exe,
                args: &p.exe_args,
            }),
            container: ctx.container().map(|c| ContainerRef {
                id: &c.id,
                name: &c.name,
                image: &c.image,
            }),
            pod: ctx.pod().map(|p| PodRef {
                id: &p.id,
                name: &p.name,
                ns: &p.namespace,
            }),
            file: (file.is_some() || fields.fd.is_some()).then(|| FileRef {
                fd: fields.fd,
                path: file.map(|f| f.path.as_str()),
                newpath: new_file.map(|f| f.path.as_str()),
            }),
            net: fields.net.map(|n| NetRef {
                proto: n.proto,
                sip: ipv4_dotted(n.sip.into()),
                sport: n.sport,
                dip: ipv4_dotted(n.dip.into()),
                dport: n.dport,
            }),
            flow: fields
                .bytes
                .map(|(rbytes, wbytes)| FlowBytes { rbytes, wbytes }),
        }
    }
}
