//! The reference exporter's `ecs` format: one Elastic Common Schema 8.2 document per flow or
//! event, as `sf-processor` v0.7.0's `encoders/ecs.go` builds it (Go serializes its maps
//! with sorted keys; the top-level keys follow its `ECSRecord` struct), for the index mapping
//! of `resources/mappings/ecs_mapping.json`.
//!
//! ```text
//! {"@timestamp":"2019-03-25T19:48:02.831617203Z","agent":{"type":"SysFlow","version":"0.7.0"},
//!  "ecs":{"version":"8.2"},"event":{"action":"file-access","category":"file",…},
//!  "host":{"id":…,"ip":…},"container":{…},"orchestrator":{…},"pod":{…},"service":[…],
//!  "file":{…},"sf_file_action":{…},"network":{…},"source":{…},"destination":{…},
//!  "process":{…},"user":{…},"tags":[…]}
//! ```

use std::borrow::Cow;

use base64::Engine as _;
use handler_sdk::gopath;
use handler_sdk::model::{K8sAction, Process, RecordKind, op_flags};
use sha1::{Digest, Sha1};

use crate::json::{UNKNOWN_ID, tree_cmdline};
use crate::jw;
use crate::view::{Conn, View};

/// `ecs.version`.
pub const ECS_VERSION: &str = "8.2";

/// `agent.type`.
pub const AGENT_TYPE: &str = "SysFlow";

/// Formats nanoseconds since the epoch as Go's `time.RFC3339Nano` in UTC (the reference's
/// `ToIsoTimeStr`): `2019-03-25T19:48:02.83222589Z`, trailing zeros of the fraction left
/// out, no fraction for a whole second.
pub fn iso_time(out: &mut Vec<u8>, ns: i64) {
    let secs = ns.div_euclid(1_000_000_000);
    let frac = ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let two = |out: &mut Vec<u8>, n: i64| {
        out.push(b'0' + (n / 10) as u8);
        out.push(b'0' + (n % 10) as u8);
    };
    jw::int(out, y);
    out.push(b'-');
    two(out, m);
    out.push(b'-');
    two(out, d);
    out.push(b'T');
    two(out, sod / 3600);
    out.push(b':');
    two(out, sod / 60 % 60);
    out.push(b':');
    two(out, sod % 60);
    if frac != 0 {
        let mut digits = [0u8; 9];
        let mut f = frac;
        for d in digits.iter_mut().rev() {
            *d = b'0' + (f % 10) as u8;
            f /= 10;
        }
        let len = 9 - digits.iter().rev().take_while(|d| **d == b'0').count();
        out.push(b'.');
        out.extend_from_slice(&digits[..len]);
    }
    out.push(b'Z');
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day) (H. Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The Community ID (version 1, seed 0) of a connection, as `gommunityid` computes it for
/// the reference: `1:` and the base64 SHA-1 of seed, addresses, protocol, a zero byte and
/// ports, the smaller endpoint first.
pub fn community_id(c: &Conn) -> String {
    let ip = |v: i32| (v as u32).to_le_bytes();
    let (mut a, mut b) = ((ip(c.sip), c.sport as u16), (ip(c.dip), c.dport as u16));
    if (a.0, a.1) > (b.0, b.1) {
        std::mem::swap(&mut a, &mut b);
    }
    let mut h = Sha1::new();
    h.update(0u16.to_be_bytes());
    h.update(a.0);
    h.update(b.0);
    h.update([c.proto as u8, 0]);
    h.update(a.1.to_be_bytes());
    h.update(b.1.to_be_bytes());
    format!(
        "1:{}",
        base64::engine::general_purpose::STANDARD.encode(h.finalize())
    )
}

/// `sfgo.GetProto`: the transport's name for an IANA number, `""` for others.
fn proto_name(iana: i32) -> &'static str {
    match iana {
        6 => "tcp",
        17 => "udp",
        1 => "icmp",
        254 => "raw",
        _ => "",
    }
}

fn key(out: &mut Vec<u8>, first: bool, name: &str) {
    if !first {
        out.push(b',');
    }
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

fn iso(out: &mut Vec<u8>, ns: i64) {
    out.push(b'"');
    iso_time(out, ns);
    out.push(b'"');
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

/// Classification of a record: ECS `event.category`, `event.type`, `event.action`.
fn classify(v: &View<'_>) -> (&'static str, &'static str, String) {
    let f = v.op_flags;
    let has = |bit: i32| f & bit == bit;
    match v.kind {
        RecordKind::NetworkFlow => ("network", "connection", "network-connection-traffic".into()),
        RecordKind::NetworkEvent => ("network", "connection", "network-connection".into()),
        RecordKind::FileFlow => {
            let c = v.counters;
            let mut action = String::from("file-access");
            let mut kind = "access";
            if has(op_flags::READ_RECV) && (c.rbytes > 0 || c.rops > 0) {
                action.push_str("-read");
            }
            if has(op_flags::WRITE_SEND) && (c.wbytes > 0 || c.wops > 0) {
                kind = "change";
                action.push_str("-write");
            }
            ("file", kind, action)
        }
        RecordKind::FileEvent => {
            if has(op_flags::MKDIR) {
                ("directory", "creation", "directory-create".into())
            } else if has(op_flags::RMDIR) {
                ("directory", "deletion", "directory-delete".into())
            } else if has(op_flags::UNLINK) {
                ("file", "deletion", "file-delete".into())
            } else if has(op_flags::SYMLINK) || has(op_flags::LINK) {
                ("file", "change", "file-link".into())
            } else if has(op_flags::RENAME) {
                ("file", "change", "file-rename".into())
            } else {
                ("file", "change", "file-change".into())
            }
        }
        RecordKind::ProcessEvent | RecordKind::ProcessFlow => {
            let thread = v.pid() != v.tid;
            let kind = if v.kind == RecordKind::ProcessFlow {
                "info"
            } else if has(op_flags::EXIT) {
                if thread { "thread-exit" } else { "exit" }
            } else if has(op_flags::CLONE) || has(op_flags::EXEC) {
                if thread { "thread-start" } else { "start" }
            } else if has(op_flags::SETUID) {
                "change"
            } else {
                "start"
            };
            ("process", kind, format!("process-{kind}"))
        }
        _ => {
            let action = v.k8s.map(|k| k.action);
            let kind = match action {
                Some(K8sAction::Added) => "creation",
                Some(K8sAction::Deleted) => "deletion",
                Some(K8sAction::Modified) => "change",
                Some(K8sAction::Error) => "error",
                _ => "info",
            };
            (
                "orchestration",
                kind,
                action.map_or("", |a| a.symbol()).to_owned(),
            )
        }
    }
}

/// What gjson's `Get(json, path).String()` gives for `items.0.namespace`-like paths: a string
/// as is, other scalars as their JSON text, missing or null as `""`.
fn gjson_string(doc: &serde_json::Value, path: &[&str]) -> String {
    let mut v = doc;
    for p in path {
        let next = match v {
            serde_json::Value::Object(m) => m.get(*p),
            serde_json::Value::Array(a) => p.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        };
        match next {
            Some(n) => v = n,
            None => return String::new(),
        }
    }
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Appends the ECS document of `v` (no newline) to `out`; `agent_version` is
/// `agent.version`. What depends on the process only (`container`, `orchestrator`, `pod`,
/// `service`, `process` but its thread id, `user`) is copied from `cache` when it has it.
pub fn encode(
    out: &mut Vec<u8>,
    v: &View<'_>,
    agent_version: &str,
    cache: &mut crate::json::SectionCache,
) {
    out.extend_from_slice(b"{\"@timestamp\":");
    iso(out, v.ts);
    out.extend_from_slice(b",\"agent\":{\"type\":\"SysFlow\",\"version\":");
    jw::string(out, agent_version);
    out.extend_from_slice(b"},\"ecs\":{\"version\":\"8.2\"}");
    event(out, v);
    let h = v.header;
    out.extend_from_slice(b",\"host\":{\"id\":");
    jw::string(out, h.map_or("", |h| h.exporter.as_str()));
    out.extend_from_slice(b",\"ip\":");
    jw::string(out, h.map_or("", |h| h.ip.as_str()));
    out.push(b'}');
    if let Some(k) = v.k8s {
        let msg: serde_json::Value =
            serde_json::from_str(crate::view::k8s_message(&k.message)).unwrap_or_default();
        orchestrator(
            out,
            &gjson_string(&msg, &["items", "0", "namespace"]),
            &gjson_string(&msg, &["kind"]).to_lowercase(),
            &gjson_string(&msg, &["items", "0", "name"]),
        );
    } else {
        // What depends on the process only comes from the cache (encoded there on a miss).
        let [orchestration, process_head, process_tail] = cache.fragments_with(v, 2, |b| {
            container_and_pod(b, v);
            let head = b.len();
            process(b, v);
            let tail = b.len();
            b.extend_from_slice(b"}}");
            user(b, v.process);
            (head, tail)
        });
        out.extend_from_slice(orchestration);
        match v.kind {
            RecordKind::FileFlow | RecordKind::FileEvent => file(out, v),
            RecordKind::NetworkFlow | RecordKind::NetworkEvent => network(out, v),
            _ => {}
        }
        out.extend_from_slice(process_head);
        jw::int(out, v.tid);
        out.extend_from_slice(process_tail);
    }
    let tags: Vec<&str> = v
        .policies
        .iter()
        .flat_map(|p| p.tags.iter().map(String::as_str))
        .collect();
    if !tags.is_empty() {
        out.extend_from_slice(b",\"tags\":");
        jw::str_array(out, tags);
    }
    out.push(b'}');
}

/// `container`, `orchestrator`, `pod` and `service`: what the process's container and pod
/// give.
fn container_and_pod(out: &mut Vec<u8>, v: &View<'_>) {
    container(out, v);
    if let Some(p) = v.pod.filter(|p| !p.id.is_empty()) {
        orchestrator(out, &p.namespace, "pod", &p.name);
        out.extend_from_slice(b",\"pod\":{\"hostip\":");
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
        key(out, false, "ts");
        iso(out, p.ts);
        out.push(b'}');
        if !p.services.is_empty() {
            out.extend_from_slice(b",\"service\":[");
            for (i, s) in p.services.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"clusterip\":");
                ip_array(out, &s.cluster_ip);
                key(out, false, "id");
                jw::string(out, &s.id);
                key(out, false, "name");
                jw::string(out, &s.name);
                key(out, false, "namespace");
                jw::string(out, &s.namespace);
                out.extend_from_slice(b",\"ports\":[");
                for (j, port) in s.port_list.iter().enumerate() {
                    if j > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(b"{\"nodeport\":");
                    jw::int(out, port.node_port);
                    key(out, false, "port");
                    jw::int(out, port.port);
                    key(out, false, "proto");
                    jw::string(out, &port.proto);
                    key(out, false, "targetport");
                    jw::int(out, port.target_port);
                    out.push(b'}');
                }
                out.extend_from_slice(b"]}");
            }
            out.push(b']');
        }
    }
}

fn event(out: &mut Vec<u8>, v: &View<'_>) {
    let (category, kind, action) = classify(v);
    let start = v.ts;
    let end = if v.endts == 0 { start } else { v.endts };
    out.extend_from_slice(b",\"event\":{\"action\":");
    jw::string(out, &action);
    key(out, false, "category");
    jw::string(out, category);
    key(out, false, "duration");
    jw::int(out, end - start);
    key(out, false, "end");
    iso(out, end);
    out.extend_from_slice(b",\"kind\":\"event\"");
    if let Some(k) = v.k8s {
        key(out, false, "original");
        jw::string(out, crate::view::k8s_message(&k.message));
    }
    if !v.policies.is_empty() {
        key(out, false, "reason");
        out.push(b'"');
        for (i, p) in v.policies.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b", ");
            }
            jw::string_body(out, &p.id);
        }
        out.push(b'"');
        key(out, false, "severity");
        jw::int(out, v.policies.iter().map(|p| p.priority).fold(0, i64::max));
    }
    if matches!(v.kind, RecordKind::ProcessEvent | RecordKind::FileEvent) {
        key(out, false, "sf_ret");
        jw::int(out, v.ret);
    }
    key(out, false, "sf_type");
    jw::string(out, v.kind.type_code());
    key(out, false, "start");
    iso(out, start);
    key(out, false, "type");
    jw::string(out, kind);
    out.push(b'}');
}

fn orchestrator(out: &mut Vec<u8>, namespace: &str, resource_type: &str, name: &str) {
    out.extend_from_slice(b",\"orchestrator\":{\"namespace\":");
    jw::string(out, namespace);
    out.extend_from_slice(b",\"resource\":{\"name\":");
    jw::string(out, name);
    out.extend_from_slice(b",\"type\":");
    jw::string(out, resource_type);
    out.extend_from_slice(b"},\"type\":\"kubernetes\"}");
}

fn container(out: &mut Vec<u8>, v: &View<'_>) {
    let Some(c) = v.container.filter(|c| !c.id.is_empty()) else {
        return;
    };
    out.extend_from_slice(b",\"container\":{\"id\":");
    jw::string(out, &c.id);
    if !c.imageid.is_empty() {
        out.extend_from_slice(b",\"image\":{\"id\":");
        jw::string(out, &c.imageid);
        key(out, false, "name");
        jw::string(out, &c.image);
        out.push(b'}');
    }
    key(out, false, "name");
    jw::string(out, &c.name);
    key(out, false, "runtime");
    jw::string(out, c.r#type.short_name());
    key(out, false, "sf_privileged");
    jw::boolean(out, c.privileged);
    out.push(b'}');
}

fn file(out: &mut Vec<u8>, v: &View<'_>) {
    let raw = v.file.map_or("", |f| f.path.trim());
    let mut link = String::new();
    let path = gopath::parse_sym_path(raw, &mut link);
    let mut file_type = match v.file.map(|f| f.restype) {
        Some(t) if t == i32::from(b'f') => "file",
        Some(t) if t == i32::from(b'd') => "dir",
        Some(t) if t == i32::from(b'u') => "socket",
        Some(t) if t == i32::from(b'p') => "pipe",
        _ => "unknown",
    };
    if v.op_flags & op_flags::SYMLINK != 0 {
        file_type = "symlink";
    }
    let fd = if v.kind == RecordKind::FileFlow {
        v.fd
    } else {
        0
    };
    let (fpath, name): (Cow<'_, str>, Cow<'_, str>) = if path.is_empty() {
        (
            format!("/proc/{}/fd/{fd}", v.pid()).into(),
            fd.to_string().into(),
        )
    } else {
        (path.into(), gopath::base(path).into())
    };
    out.extend_from_slice(b",\"file\":{\"directory\":");
    if file_type == "dir" {
        jw::string(out, &fpath);
    } else {
        let mut buf = String::new();
        jw::string(out, gopath::dir(&fpath, &mut buf));
        key(out, false, "name");
        jw::string(out, &name);
        if fpath != name {
            key(out, false, "path");
            jw::string(out, &fpath);
        }
    }
    let linked = v.op_flags & (op_flags::SYMLINK | op_flags::LINK | op_flags::RENAME) != 0
        && v.op_flags & (op_flags::MKDIR | op_flags::RMDIR | op_flags::UNLINK) == 0;
    if v.kind == RecordKind::FileEvent && linked {
        key(out, false, "target_path");
        jw::string(out, v.new_file.map_or("", |f| f.path.trim()));
    }
    key(out, false, "type");
    jw::string(out, file_type);
    out.push(b'}');
    let c = v.counters;
    if v.kind == RecordKind::FileFlow && (c.rbytes > 0 || c.rops > 0 || c.wbytes > 0 || c.wops > 0)
    {
        out.extend_from_slice(b",\"sf_file_action\":{\"bytes_read\":");
        jw::int(out, c.rbytes);
        key(out, false, "bytes_written");
        jw::int(out, c.wbytes);
        key(out, false, "read_ops");
        jw::int(out, c.rops);
        key(out, false, "write_ops");
        jw::int(out, c.wops);
        out.push(b'}');
    }
}

fn network(out: &mut Vec<u8>, v: &View<'_>) {
    let Some(conn) = v.conn else { return };
    let c = v.counters;
    out.extend_from_slice(b",\"network\":{\"bytes\":");
    jw::int(out, c.rbytes + c.wbytes);
    key(out, false, "community_id");
    jw::string(out, &community_id(&conn));
    key(out, false, "iana_number");
    out.push(b'"');
    jw::int(out, conn.proto);
    out.push(b'"');
    key(out, false, "protocol");
    jw::string(out, proto_name(conn.proto));
    out.push(b'}');
    for (name, ip, port, bytes, packets) in [
        ("source", conn.sip, conn.sport, c.wbytes, c.wops),
        ("destination", conn.dip, conn.dport, c.rbytes, c.rops),
    ] {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":{\"address\":");
        jw::ipv4(out, i64::from(ip));
        key(out, false, "bytes");
        jw::int(out, bytes);
        key(out, false, "ip");
        jw::ipv4(out, i64::from(ip));
        key(out, false, "packets");
        jw::int(out, packets);
        key(out, false, "port");
        jw::int(out, port);
        out.push(b'}');
    }
}

fn process(out: &mut Vec<u8>, v: &View<'_>) {
    let p = v.process;
    let exe = p.map_or("", |p| p.exe.as_str());
    let args = p.map_or("", |p| p.exe_args.as_str());
    out.extend_from_slice(b",\"process\":{\"args\":");
    jw::string(out, args);
    out.extend_from_slice(b",\"command_line\":\"");
    jw::string_body(out, exe);
    out.push(b' ');
    jw::string_body(out, args);
    out.push(b'"');
    key(out, false, "executable");
    jw::string(out, exe);
    key(out, false, "name");
    jw::string(out, gopath::base(exe));
    let parent: Option<&Process> = v.parent();
    let poid = v.poid();
    let pexe = parent.map_or("", |p| p.exe.as_str());
    out.extend_from_slice(b",\"parent\":{\"args\":");
    jw::string(out, parent.map_or("", |p| p.exe_args.as_str()));
    key(out, false, "command_line");
    jw::string(out, &parent.map(tree_cmdline).unwrap_or_default());
    key(out, false, "executable");
    jw::string(out, pexe);
    key(out, false, "name");
    jw::string(out, gopath::base(pexe));
    key(out, false, "pid");
    jw::int(out, poid.map_or(0, |o| o.hpid));
    key(out, false, "start");
    iso(out, poid.map_or(0, |o| o.create_ts));
    out.push(b'}');
    key(out, false, "pid");
    jw::int(out, v.pid());
    key(out, false, "start");
    iso(out, v.createts());
    out.extend_from_slice(b",\"thread\":{\"id\":");
}

fn user(out: &mut Vec<u8>, p: Option<&Process>) {
    out.extend_from_slice(b",\"user\":{\"group\":{\"id\":");
    jw::int(out, p.map_or(UNKNOWN_ID, |p| p.gid));
    if let Some(g) = p.map(|p| p.group_name.as_str()).filter(|g| !g.is_empty()) {
        key(out, false, "name");
        jw::string(out, g);
    }
    out.extend_from_slice(b"},\"id\":");
    jw::int(out, p.map_or(UNKNOWN_ID, |p| p.uid));
    if let Some(u) = p.map(|p| p.user_name.as_str()).filter(|u| !u.is_empty()) {
        key(out, false, "name");
        jw::string(out, u);
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ns: i64) -> String {
        let mut out = Vec::new();
        iso_time(&mut out, ns);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn times_are_rfc3339_nano_in_utc() {
        assert_eq!(t(1553543282831617203), "2019-03-25T19:48:02.831617203Z");
        assert_eq!(t(1553543282832225890), "2019-03-25T19:48:02.83222589Z");
        assert_eq!(t(1647543075117498000), "2022-03-17T18:51:15.117498Z");
        assert_eq!(t(0), "1970-01-01T00:00:00Z");
        assert_eq!(t(951_782_400_000_000_000), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn community_ids_are_gommunityids() {
        // tcp-client-server-v5.sf, 127.0.0.1:40556 -> 127.0.0.1:8080 TCP, from
        // ../shared/reference/out/ecs.
        let lo = 16777343;
        let c = Conn {
            sip: lo,
            sport: 40556,
            dip: lo,
            dport: 8080,
            proto: 6,
        };
        assert_eq!(community_id(&c), "1:n6PUx/cWKt2XUB9aMcXLTdGmiOQ=");
        let back = Conn {
            sport: 8080,
            dport: 40556,
            ..c
        };
        assert_eq!(
            community_id(&back),
            community_id(&c),
            "direction does not matter"
        );
    }
}
