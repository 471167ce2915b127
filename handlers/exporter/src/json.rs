//! The reference exporter's `json` format (JSON schema version 5): one object per flow or
//! event, written as `sf-processor`'s `encoders/json.go` writes it from the flat record's
//! exported fields (`flatrecord/fieldmapper.go`), keys in its order.
//!
//! ```text
//! {"version":5,"endts":…,"opflags":[…],"ret":…,"ts":…,"type":"FF",
//!  "container":{…},"file":{…},"flow":{…},"meta":{…},"net":{…},"node":{…},"pod":{…},
//!  "pproc":{…},"proc":{…},"policies":[{"id":…,"desc":…,"priority":…}],"tags":[…]}
//! ```
//!
//! Sections, each only where it applies (as the reference): `container` when the process runs
//! in a container, `file` for file flows and events, `flow` for file and network flows, `net`
//! for network flows (and network events, an extension), `pod` when the container's pod is
//! known, `pproc` when the process has a parent OID, `proc` always; a k8s event has `k8s`,
//! `meta` and `node` only. Where this differs from the reference, and why, is listed in the
//! crate's README ("Differences from the reference").

use handler_sdk::gopath;
use handler_sdk::model::{Oid, Process, RecordKind, op_flags, open_flag_names, open_flags};

use crate::jw;
use crate::view::View;

/// The `version` of every object: the reference export's JSON schema version.
pub const JSON_SCHEMA_VERSION: u32 = 5;

/// The reference's process `oid` key: xxHash64 (seed 0) of the decimal PID followed by the
/// decimal creation time, as 16 lower-case hex digits (`mapOID`).
pub fn oid_hash(hpid: i64, create_ts: i64) -> String {
    let mut buf = itoa::Buffer::new();
    let mut text = Vec::with_capacity(40);
    text.extend_from_slice(buf.format(hpid).as_bytes());
    text.extend_from_slice(buf.format(create_ts).as_bytes());
    format!("{:016x}", xxhash_rust::xxh64::xxh64(&text, 0))
}

/// `exe` and `args` joined by a space, the space left out without arguments: the reference's
/// `acmdline` entries and `pproc.cmdline` (from its process tree).
pub fn tree_cmdline(p: &Process) -> String {
    if p.exe_args.is_empty() {
        p.exe.clone()
    } else {
        format!("{} {}", p.exe, p.exe_args)
    }
}

/// The open modes' names as the reference knows them: `open_flag_names` without the two bits
/// it leaves unnamed (`TMPFILE`, `F_CREATED`).
pub fn reference_open_flags(flags: i32) -> impl Iterator<Item = &'static str> {
    let known = flags & !(open_flags::TMPFILE | open_flags::F_CREATED);
    let none = flags == 0;
    open_flag_names(known)
        .into_iter()
        .filter(move |n| none || *n != "NONE")
}

/// The value written for a uid or gid the stream never gave (the process entity is unknown):
/// the collector's own "unknown", -1 (the reference writes 0, which reads as root).
pub const UNKNOWN_ID: i32 = -1;

fn key(out: &mut Vec<u8>, first: bool, name: &str) {
    if !first {
        out.push(b',');
    }
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

fn open_section(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":{");
}

/// Keys the reference's layout has no room for, written only when asked (the exporter's
/// `json.extensions` key; the reference's layout is the default): data the trace has and
/// the reference drops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Extensions {
    /// `proc.cwd`, `proc.env`, `pproc.cwd`, `pproc.env` (the process's working directory
    /// and environment, schema 5: `env` an array of `KEY=VALUE` strings), `net.fd` (a
    /// network flow's descriptor) and `meta.filename` (the trace file's whole path; the
    /// reference has only its last component, `tracename`).
    pub on: bool,
}

/// Appends the JSON object of `v` (no newline) to `out`, with the [`Extensions`] asked for.
///
/// The sections that depend on the process OID only (`container`, `pod`, `pproc`, `proc` but
/// its `tid`) are copied from `cache` when it has them for this process and epoch: the same
/// bytes, encoded once per process instead of once per record.
pub fn encode(out: &mut Vec<u8>, v: &View<'_>, ext: Extensions, cache: &mut SectionCache) {
    out.extend_from_slice(b"{\"version\":5,\"endts\":");
    jw::int(out, v.endts);
    out.extend_from_slice(b",\"opflags\":");
    jw::str_array(out, op_flags::names_for(v.op_flags, v.kind));
    out.extend_from_slice(b",\"ret\":");
    jw::int(out, v.ret);
    out.extend_from_slice(b",\"ts\":");
    jw::int(out, v.ts);
    out.extend_from_slice(b",\"type\":\"");
    out.extend_from_slice(v.kind.type_code().as_bytes());
    out.push(b'"');
    if let Some(k) = v.k8s {
        open_section(out, "k8s");
        key(out, true, "action");
        jw::string(out, k.action.symbol());
        key(out, false, "kind");
        jw::string(out, k.kind.symbol());
        key(out, false, "message");
        jw::string(out, crate::view::k8s_message(&k.message));
        out.push(b'}');
        meta_node(out, v, ext);
    } else {
        sections(out, v, ext, cache);
    }
    if !v.policies.is_empty() {
        out.extend_from_slice(b",\"policies\":[");
        for (i, p) in v.policies.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"id\":");
            jw::string(out, &p.id);
            out.extend_from_slice(b",\"desc\":");
            jw::string(out, &p.desc);
            out.extend_from_slice(b",\"priority\":");
            jw::int(out, p.priority);
            out.push(b'}');
        }
        out.push(b']');
        if v.policies.iter().any(|p| !p.tags.is_empty()) {
            out.extend_from_slice(b",\"tags\":");
            jw::str_array(
                out,
                v.policies
                    .iter()
                    .flat_map(|p| p.tags.iter().map(String::as_str)),
            );
        }
    }
    out.push(b'}');
}

/// The encoded process-dependent sections of the processes seen in one
/// [`EntityTables::epoch`](handler_sdk::EntityTables::epoch), for the JSON layout and the ECS
/// one (`crate::ecs::encode`): emptied when the epoch moves, when the layout or the
/// [`Extensions`] change, or past [`SectionCache::MAX_BYTES`].
#[derive(Debug, Default)]
pub struct SectionCache {
    epoch: u64,
    variant: u8,
    /// Per process OID: where its three fragments start and end in `bytes`.
    spans: foldhash::HashMap<Oid, [usize; 4]>,
    bytes: Vec<u8>,
    hits: u64,
    misses: u64,
}

impl SectionCache {
    /// The most bytes the cache holds before it starts again (a bound, not a target: one
    /// process's fragments are a few KiB).
    pub const MAX_BYTES: usize = 8 << 20;

    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// (records whose sections came from the cache, records that filled it).
    pub fn counts(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }

    /// The `container` fragment, the `pod`..`pid` fragment and the fragment after `tid`, of
    /// `v`'s process.
    fn fragments(&mut self, v: &View<'_>, ext: Extensions) -> [&[u8]; 3] {
        self.fragments_with(v, u8::from(ext.on), |b| {
            container_section(b, v);
            let container = b.len();
            process_head(b, v, ext);
            let head = b.len();
            process_tail(b, v);
            (container, head)
        })
    }

    /// The three fragments of `v`'s process in layout `variant` (one per format and
    /// extension setting; a new variant empties the cache), `encode` writing them on a miss
    /// and returning where the second and the third start.
    pub(crate) fn fragments_with(
        &mut self,
        v: &View<'_>,
        variant: u8,
        encode: impl FnOnce(&mut Vec<u8>) -> (usize, usize),
    ) -> [&[u8]; 3] {
        if self.epoch != v.epoch || self.variant != variant || self.bytes.len() > Self::MAX_BYTES {
            self.epoch = v.epoch;
            self.variant = variant;
            self.spans.clear();
            self.bytes.clear();
        }
        let s = match self.spans.get(&v.oid) {
            Some(s) => {
                self.hits += 1;
                *s
            }
            None => {
                self.misses += 1;
                let start = self.bytes.len();
                let (second, third) = encode(&mut self.bytes);
                let s = [start, second, third, self.bytes.len()];
                self.spans.insert(v.oid, s);
                s
            }
        };
        let b = &self.bytes;
        [&b[s[0]..s[1]], &b[s[1]..s[2]], &b[s[2]..s[3]]]
    }
}

/// `meta.filename` of the [`Extensions`]: written before `schema`, in key order.
fn meta_filename(out: &mut Vec<u8>, v: &View<'_>, ext: Extensions) -> bool {
    if ext.on {
        key(out, true, "filename");
        jw::string(out, v.header.map_or("", |h| h.filename.as_str()));
    }
    !ext.on
}

fn meta_node(out: &mut Vec<u8>, v: &View<'_>, ext: Extensions) {
    let h = v.header;
    open_section(out, "meta");
    let first = meta_filename(out, v, ext);
    key(out, first, "schema");
    jw::int(out, h.map_or(0, |h| h.version));
    key(out, false, "tracename");
    jw::string(out, gopath::base(h.map_or("", |h| h.filename.as_str())));
    out.push(b'}');
    open_section(out, "node");
    key(out, true, "id");
    jw::string(out, h.map_or("", |h| h.exporter.as_str()));
    key(out, false, "ip");
    jw::string(out, h.map_or("", |h| h.ip.as_str()));
    out.push(b'}');
}

fn sections(out: &mut Vec<u8>, v: &View<'_>, ext: Extensions, cache: &mut SectionCache) {
    // What depends on the process OID only comes from the cache (encoded there on a miss).
    let [container, head, tail] = cache.fragments(v, ext);
    out.extend_from_slice(container);
    if matches!(v.kind, RecordKind::FileFlow | RecordKind::FileEvent) {
        file_section(out, v);
    }
    if matches!(v.kind, RecordKind::FileFlow | RecordKind::NetworkFlow) {
        let c = v.counters;
        open_section(out, "flow");
        key(out, true, "rbytes");
        jw::int(out, c.rbytes);
        key(out, false, "rops");
        jw::int(out, c.rops);
        key(out, false, "wbytes");
        jw::int(out, c.wbytes);
        key(out, false, "wops");
        jw::int(out, c.wops);
        out.push(b'}');
    }
    let h = v.header;
    open_section(out, "meta");
    let first = meta_filename(out, v, ext);
    key(out, first, "schema");
    jw::int(out, h.map_or(0, |h| h.version));
    key(out, false, "tracename");
    jw::string(out, gopath::base(h.map_or("", |h| h.filename.as_str())));
    out.push(b'}');
    if let Some(c) = v.conn {
        open_section(out, "net");
        key(out, true, "dip");
        jw::ipv4(out, i64::from(c.dip));
        key(out, false, "dport");
        jw::int(out, c.dport);
        if ext.on && v.kind == RecordKind::NetworkFlow {
            key(out, false, "fd");
            jw::int(out, v.fd);
        }
        key(out, false, "ip");
        out.push(b'[');
        jw::ipv4(out, i64::from(c.sip));
        out.push(b',');
        jw::ipv4(out, i64::from(c.dip));
        out.push(b']');
        key(out, false, "port");
        jw::int_array(out, [i64::from(c.sport), i64::from(c.dport)]);
        key(out, false, "proto");
        jw::int(out, c.proto);
        key(out, false, "sip");
        jw::ipv4(out, i64::from(c.sip));
        key(out, false, "sport");
        jw::int(out, c.sport);
        out.push(b'}');
    }
    open_section(out, "node");
    key(out, true, "id");
    jw::string(out, h.map_or("", |h| h.exporter.as_str()));
    key(out, false, "ip");
    jw::string(out, h.map_or("", |h| h.ip.as_str()));
    out.push(b'}');
    if let Some(t) = v.threads {
        open_section(out, "pf");
        key(out, true, "nerrors");
        jw::int(out, t.errors);
        key(out, false, "nexits");
        jw::int(out, t.exited);
        key(out, false, "nthreads");
        jw::int(out, t.cloned);
        out.push(b'}');
    }
    out.extend_from_slice(head);
    if v.kind != RecordKind::ProcessFlow {
        key(out, false, "tid");
        jw::int(out, v.tid);
    }
    out.extend_from_slice(tail);
}

/// The `container` section (when the process runs in one).
fn container_section(out: &mut Vec<u8>, v: &View<'_>) {
    if let Some(c) = v.container.filter(|c| !c.id.is_empty()) {
        open_section(out, "container");
        key(out, true, "id");
        jw::string(out, &c.id);
        key(out, false, "image");
        jw::string(out, &c.image);
        key(out, false, "imageid");
        jw::string(out, &c.imageid);
        key(out, false, "name");
        jw::string(out, &c.name);
        key(out, false, "privileged");
        jw::int(out, i32::from(c.privileged));
        key(out, false, "type");
        jw::string(out, c.r#type.short_name());
        out.push(b'}');
    }
}

/// The `pod` and `pproc` sections and the `proc` section up to its `pid`: everything from
/// `pod` to `tid`, which depends on the process OID and the tables only.
fn process_head(out: &mut Vec<u8>, v: &View<'_>, ext: Extensions) {
    if let Some(p) = v.pod.filter(|p| !p.id.is_empty()) {
        open_section(out, "pod");
        key(out, true, "hostip");
        ip_array(out, &p.host_ip);
        key(out, false, "id");
        jw::string(out, &p.id);
        key(out, false, "internalip");
        ip_array(out, &p.internal_ip);
        key(out, false, "name");
        jw::string(out, &p.name);
        key(out, false, "namespace");
        jw::string(out, &p.namespace);
        key(out, false, "nodename");
        jw::string(out, &p.node_name);
        key(out, false, "restartcnt");
        jw::int(out, p.restart_count);
        key(out, false, "services");
        out.push(b'[');
        for (i, s) in p.services.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'{');
            key(out, true, "id");
            jw::string(out, &s.id);
            key(out, false, "name");
            jw::string(out, &s.name);
            key(out, false, "namespace");
            jw::string(out, &s.namespace);
            key(out, false, "clusterIP");
            ip_array(out, &s.cluster_ip);
            key(out, false, "ports");
            out.push(b'[');
            for (j, port) in s.port_list.iter().enumerate() {
                if j > 0 {
                    out.push(b',');
                }
                out.push(b'{');
                key(out, true, "port");
                jw::int(out, port.port);
                key(out, false, "targetport");
                jw::int(out, port.target_port);
                key(out, false, "nodeport");
                jw::int(out, port.node_port);
                key(out, false, "proto");
                jw::string(out, &port.proto);
                out.push(b'}');
            }
            out.extend_from_slice(b"]}");
        }
        out.extend_from_slice(b"]");
        key(out, false, "ts");
        jw::int(out, p.ts);
        out.push(b'}');
    }
    if let Some(poid) = v.poid().filter(|o| o.hpid != 0) {
        open_section(out, "pproc");
        let p = v.parent();
        key(out, true, "args");
        jw::string(out, p.map_or("", |p| p.exe_args.as_str()));
        key(out, false, "cmdline");
        jw::string(out, &p.map(tree_cmdline).unwrap_or_default());
        key(out, false, "createts");
        jw::int(out, poid.create_ts);
        if ext.on {
            key(out, false, "cwd");
            jw::string(out, p.map_or("", |p| p.cwd.as_str()));
        }
        key(out, false, "entry");
        jw::boolean(out, p.is_some_and(|p| p.entry));
        if ext.on {
            key(out, false, "env");
            jw::str_array(
                out,
                p.into_iter().flat_map(|p| p.env.iter().map(String::as_str)),
            );
        }
        key(out, false, "exe");
        jw::string(out, p.map_or("", |p| p.exe.as_str()));
        key(out, false, "gid");
        jw::int(out, p.map_or(UNKNOWN_ID, |p| p.gid));
        key(out, false, "group");
        jw::string(out, p.map_or("", |p| p.group_name.as_str()));
        key(out, false, "name");
        jw::string(out, p.map_or("", |p| gopath::base(&p.exe)));
        key(out, false, "oid");
        jw::string(out, &oid_hash(poid.hpid, poid.create_ts));
        key(out, false, "pid");
        jw::int(out, poid.hpid);
        key(out, false, "tty");
        jw::boolean(out, p.is_some_and(|p| p.tty));
        key(out, false, "uid");
        jw::int(out, p.map_or(UNKNOWN_ID, |p| p.uid));
        key(out, false, "user");
        jw::string(out, p.map_or("", |p| p.user_name.as_str()));
        out.push(b'}');
    }
    proc_head(out, v, ext);
}

fn ip_array(out: &mut Vec<u8>, ips: &[i64]) {
    out.push(b'[');
    for (i, ip) in ips.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        jw::ipv4(out, *ip);
    }
    out.push(b']');
}

fn file_section(out: &mut Vec<u8>, v: &View<'_>) {
    let raw = v.file.map_or("", |f| f.path.trim());
    let (mut symlink, mut new_symlink, mut buf) = (String::new(), String::new(), String::new());
    let path = gopath::parse_sym_path(raw, &mut symlink);
    let new_raw = v.new_file.map_or("", |f| f.path.trim());
    let new_path = gopath::parse_sym_path(new_raw, &mut new_symlink);
    let flow = v.kind == RecordKind::FileFlow;
    open_section(out, "file");
    key(out, true, "directory");
    jw::string(out, gopath::dir(path, &mut buf));
    key(out, false, "fd");
    jw::int(out, if flow { v.fd } else { 0 });
    key(out, false, "is_open_read");
    jw::boolean(out, v.open_flags & open_flags::RDONLY != 0);
    key(out, false, "is_open_write");
    jw::boolean(out, v.open_flags & open_flags::WRONLY != 0);
    key(out, false, "name");
    jw::string(out, gopath::base(raw));
    key(out, false, "newdirectory");
    jw::string(out, gopath::dir(new_path, &mut buf));
    key(out, false, "newname");
    jw::string(out, gopath::base(new_raw));
    key(out, false, "newoid");
    out.push(b'"');
    if let Some(f) = v.new_file {
        hex(out, &f.oid.0);
    }
    out.push(b'"');
    key(out, false, "newpath");
    jw::string(out, new_raw);
    key(out, false, "newsymlink");
    jw::string(out, &new_symlink);
    key(out, false, "oid");
    out.push(b'"');
    if let Some(foid) = v.file.map(|f| f.oid).or(v.file_oid) {
        hex(out, &foid.0);
    }
    out.push(b'"');
    key(out, false, "openflags");
    jw::str_array(out, reference_open_flags(v.open_flags));
    key(out, false, "path");
    jw::string(out, path);
    key(out, false, "symlink");
    jw::string(out, &symlink);
    key(out, false, "type");
    jw::string(out, &v.file.map(|f| f.type_letter()).unwrap_or_default());
    out.push(b'}');
}

fn hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(HEX[(b >> 4) as usize]);
        out.push(HEX[(b & 0xF) as usize]);
    }
}

/// The `proc` section up to its `pid` (`tid` follows).
fn proc_head(out: &mut Vec<u8>, v: &View<'_>, ext: Extensions) {
    let p = v.process;
    open_section(out, "proc");
    let chain = || p.into_iter().chain(v.ancestors);
    key(out, true, "acmdline");
    out.push(b'[');
    for (i, a) in chain().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        jw::string_body(out, &a.exe);
        if !a.exe_args.is_empty() {
            out.push(b' ');
            jw::string_body(out, &a.exe_args);
        }
        out.push(b'"');
    }
    out.push(b']');
    key(out, false, "aexe");
    jw::str_array(out, chain().map(|a| a.exe.as_str()));
    key(out, false, "aname");
    jw::str_array(out, chain().map(|a| gopath::base(&a.exe)));
    key(out, false, "apid");
    jw::int_array(out, chain().map(|a| a.oid.hpid));
    let exe = p.map_or("", |p| p.exe.as_str());
    let args = p.map_or("", |p| p.exe_args.as_str());
    key(out, false, "args");
    jw::string(out, args);
    key(out, false, "cmdline");
    out.push(b'"');
    jw::string_body(out, exe);
    out.push(b' ');
    jw::string_body(out, args);
    out.push(b'"');
    key(out, false, "createts");
    jw::int(out, v.createts());
    if ext.on {
        key(out, false, "cwd");
        jw::string(out, p.map_or("", |p| p.cwd.as_str()));
    }
    key(out, false, "entry");
    jw::boolean(out, p.is_some_and(|p| p.entry));
    if ext.on {
        key(out, false, "env");
        jw::str_array(
            out,
            p.into_iter().flat_map(|p| p.env.iter().map(String::as_str)),
        );
    }
    key(out, false, "exe");
    jw::string(out, exe);
    key(out, false, "gid");
    jw::int(out, p.map_or(UNKNOWN_ID, |p| p.gid));
    key(out, false, "group");
    jw::string(out, p.map_or("", |p| p.group_name.as_str()));
    key(out, false, "name");
    jw::string(out, gopath::base(exe));
    key(out, false, "oid");
    jw::string(out, &oid_hash(v.pid(), v.createts()));
    key(out, false, "pid");
    jw::int(out, v.pid());
}

/// The `proc` section after `tid`, closed.
fn process_tail(out: &mut Vec<u8>, v: &View<'_>) {
    let p = v.process;
    key(out, false, "tty");
    jw::boolean(out, p.is_some_and(|p| p.tty));
    key(out, false, "uid");
    jw::int(out, p.map_or(UNKNOWN_ID, |p| p.uid));
    key(out, false, "user");
    jw::string(out, p.map_or("", |p| p.user_name.as_str()));
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_oids_are_the_references_hashes() {
        // tcp.sf, ./client (pid 13824, createts 0) and its parent bash (7130), from
        // ../shared/reference/out/enrich/tcp.sf.jsonl.gz.
        assert_eq!(oid_hash(13824, 0), "45a4e44dad6b2511");
        assert_eq!(oid_hash(7130, 0), "c1e6d285f1e36acb");
    }

    #[test]
    fn open_flags_use_the_references_names_only() {
        let names: Vec<_> = reference_open_flags(4097).collect();
        assert_eq!(names, ["RDONLY", "CLOEXEC"]);
        let names: Vec<_> = reference_open_flags(open_flags::TMPFILE | 2).collect();
        assert_eq!(names, ["WRONLY"]);
        let names: Vec<_> = reference_open_flags(0).collect();
        assert_eq!(names, ["NONE"]);
    }

    fn process(hpid: i64, parent: Option<i64>, exe: &str) -> Process {
        use handler_sdk::model::ObjectState;
        Process {
            state: ObjectState::Created,
            oid: Oid {
                create_ts: 100,
                hpid,
            },
            poid: parent.map(|p| Oid {
                create_ts: 100,
                hpid: p,
            }),
            ts: 1,
            exe: exe.into(),
            exe_args: String::new(),
            uid: 0,
            user_name: "root".into(),
            gid: 0,
            group_name: "root".into(),
            tty: false,
            container_id: None,
            entry: false,
            cwd: String::new(),
            env: vec![],
        }
    }

    /// An exec of process `hpid` (created at 100) by thread `tid`.
    fn exec_event(hpid: i64, tid: i64) -> handler_sdk::model::ProcessEvent {
        handler_sdk::model::ProcessEvent {
            proc_oid: Oid {
                create_ts: 100,
                hpid,
            },
            ts: 5,
            tid,
            op_flags: op_flags::EXEC,
            args: vec![],
            ret: 0,
        }
    }

    /// The record's JSON, through `cache`, parsed.
    fn exported(
        tables: &handler_sdk::EntityTables,
        cache: &mut SectionCache,
        tid: i64,
    ) -> serde_json::Value {
        use handler_sdk::model::Record;
        let e = exec_event(2, tid);
        let ctx = tables.context_for(9, &Record::ProcessEvent(e.clone()));
        let mut out = Vec::new();
        encode(
            &mut out,
            &View::process_event(&ctx, &e),
            Extensions::default(),
            cache,
        );
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn cached_sections_follow_the_entities_they_were_encoded_from() {
        use handler_sdk::model::Record;
        let mut tables = handler_sdk::EntityTables::new();
        let mut cache = SectionCache::new();
        tables.store(Record::Process(process(1, None, "/sbin/init")));
        tables.store(Record::Process(process(2, Some(1), "/bin/sh")));
        let first = exported(&tables, &mut cache, 2);
        assert_eq!(
            first["proc"]["aexe"],
            serde_json::json!(["/bin/sh", "/sbin/init"])
        );
        assert_eq!(first["pproc"]["exe"], "/sbin/init");
        // Another record of the same process: copied, and only its own fields differ.
        let again = exported(&tables, &mut cache, 3);
        assert_eq!(again["proc"]["tid"], 3);
        assert_eq!(again["proc"]["aexe"], first["proc"]["aexe"]);
        assert_eq!(cache.counts(), (1, 1));
        // The process execs: its own entry changes.
        tables.store(Record::Process(process(2, Some(1), "/usr/bin/python")));
        let exec = exported(&tables, &mut cache, 2);
        assert_eq!(exec["proc"]["exe"], "/usr/bin/python");
        assert_eq!(exec["proc"]["aname"], serde_json::json!(["python", "init"]));
        // Its parent is written again: the child's lineage and pproc change with it.
        tables.store(Record::Process(process(1, None, "/lib/systemd/systemd")));
        let parent = exported(&tables, &mut cache, 2);
        assert_eq!(
            parent["proc"]["aexe"],
            serde_json::json!(["/usr/bin/python", "/lib/systemd/systemd"])
        );
        assert_eq!(parent["pproc"]["name"], "systemd");
        assert_eq!(cache.counts(), (1, 3));
        // The ECS layout through the same cache: its own fragments, the same entities.
        let e = exec_event(2, 7);
        let rec = handler_sdk::model::Record::ProcessEvent(e.clone());
        let ctx = tables.context_for(10, &rec);
        for _ in 0..2 {
            let mut out = Vec::new();
            crate::ecs::encode(&mut out, &View::process_event(&ctx, &e), "v", &mut cache);
            let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(doc["process"]["executable"], "/usr/bin/python");
            assert_eq!(
                doc["process"]["parent"]["executable"],
                "/lib/systemd/systemd"
            );
            assert_eq!(doc["process"]["thread"]["id"], 7);
        }
        assert_eq!(cache.counts(), (2, 4), "one ECS miss, then a hit");
    }

    #[test]
    fn a_full_cache_starts_again_and_still_gives_each_process_its_own_sections() {
        use handler_sdk::model::Record;
        let mut tables = handler_sdk::EntityTables::new();
        let mut cache = SectionCache::new();
        // Executables of 64 KiB, written six times in a process's fragments (acmdline, aexe,
        // aname, cmdline, exe, name): about 22 processes fill the cache.
        let long = |i: i64| format!("/x{i}/{}", "a".repeat(64 << 10));
        for i in 2..300 {
            tables.store(Record::Process(process(i, None, &long(i))));
        }
        for round in 0..2 {
            for i in 2..300 {
                let e = exec_event(i, i);
                let ctx = tables.context_for(9, &Record::ProcessEvent(e.clone()));
                let mut out = Vec::new();
                encode(
                    &mut out,
                    &View::process_event(&ctx, &e),
                    Extensions::default(),
                    &mut cache,
                );
                let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
                assert_eq!(doc["proc"]["exe"], long(i), "round {round}, pid {i}");
                assert_eq!(doc["proc"]["pid"], i);
                // At most one process's fragments past the bound.
                assert!(cache.bytes.len() <= SectionCache::MAX_BYTES + 8 * (65 << 10));
            }
        }
        let (hits, misses) = cache.counts();
        assert_eq!(hits + misses, 2 * 298);
        assert!(
            misses > 298,
            "the cache started again at least once: {misses} misses"
        );
    }
}
