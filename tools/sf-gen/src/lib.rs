//! `sf-gen`: synthetic but realistic SysFlow traces (schema 5), for tests and benchmarks, with
//! its own Avro writer (the datums are checked against apache-avro's encoding in the tests).
//!
//! [`Generator`] simulates a host running a few containers: it yields a stream of
//! [`Record`]s that a SysFlow collector could have written, and [`write_trace`] writes them as
//! an Avro object container file with the schema-5 writer schema of the real collector
//! ([`SCHEMA_V5`], copied from the header of `tcp-client-server-v5.sf`) in blocks of about
//! 80 KB, as the collector writes them. [`to_value`] gives the same datums as `apache-avro`
//! `Value`s, for tests.
//!
//! # What the stream looks like
//!
//! - an `SFHeader` first; then, per container, its `Pod` (with `pods`) and its `Container`;
//!   then the host processes (`systemd`, `containerd-shim`, `sshd`, a shell) and one entry
//!   process per container, parents before children;
//! - then a random mix of actions, each producing one or two records. The weights (per mille
//!   of actions) are chosen so that the record proportions come close to the shared traces:
//!
//!   | action | records | weight |
//!   |---|---|---|
//!   | file flow of a live process on a known file | `FileFlow` | 674 |
//!   | network flow | `NetworkFlow` | 150 |
//!   | a new file is opened | `File` | 100 |
//!   | clone | `Process` (CREATED) + `ProcessEvent` CLONE | 7 |
//!   | exec | `Process` (MODIFIED) 7 times in 10, + `ProcessEvent` EXEC | 7 |
//!   | exit (only while more than 8 processes live) | `ProcessEvent` EXIT | 7 |
//!   | setuid / setns | `ProcessEvent` | 15 |
//!   | file event (mkdir, unlink, symlink, rename) | `FileEvent` (a rename's target `File` first) | 20 |
//!   | network event (connect, accept) | `NetworkEvent` | 10 |
//!   | process flow | `ProcessFlow` | 10 |
//!   | with `pods`: a Kubernetes event | `K8sEvent` | 1 |
//!
//!   which gives about File 10 %, Process 1.2 %, FileFlow 66 %, NetworkFlow 15 %,
//!   ProcessEvent 3.6 %, FileEvent 2 %, NetworkEvent 1 %, ProcessFlow 1 %.
//! - every flow and event refers only to processes and files written earlier (so its context
//!   always resolves), and a process's events stop at its exit.
//! - timestamps are nanoseconds, increasing; FOIDs are 20 bytes derived from the path and the
//!   container (a stand-in for the collector's SHA-1); IPv4 addresses are in network byte order.
//!
//! The stream is a pure function of the [`GenConfig`]: the same seed gives the same bytes.

#![deny(missing_docs)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write;

use apache_avro::Schema;
use apache_avro::types::Value;
use sf_processor::model::{
    Container, ContainerType, File, FileEvent, FileFlow, Foid, K8sAction, K8sComponent, K8sEvent,
    NetworkEvent, NetworkFlow, ObjectState, Oid, Pod, Port, Process, ProcessEvent, ProcessFlow,
    Record, RecordKind, Service, SfHeader, op_flags,
};

/// The SysFlow schema-5 writer schema, exactly as the collector writes it in a trace's header
/// (`resources/schemas/sysflow-v5.avsc`).
pub const SCHEMA_V5: &str = include_str!("../../../resources/schemas/sysflow-v5.avsc");

/// Uncompressed size at which a data block is closed, as the collector does (~80 KB).
pub const BLOCK_SIZE: usize = 80_000;

/// The codec of the generated file's data blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GenCodec {
    /// Deflate (what the collector writes).
    #[default]
    Deflate,
    /// No compression.
    Null,
}

impl GenCodec {
    /// The Avro name of the codec (`"deflate"`, `"null"`).
    pub fn name(self) -> &'static str {
        match self {
            GenCodec::Deflate => "deflate",
            GenCodec::Null => "null",
        }
    }
}

impl std::str::FromStr for GenCodec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "deflate" => Ok(GenCodec::Deflate),
            "null" => Ok(GenCodec::Null),
            other => Err(format!("unknown codec {other:?} (deflate or null)")),
        }
    }
}

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenConfig {
    /// Number of records in all, header and entities included.
    pub records: u64,
    /// Seed of the pseudo-random choices.
    pub seed: u64,
    /// Number of containers (0: every process on the host).
    pub containers: u32,
    /// Whether every container belongs to a Kubernetes pod (adds `Pod` entities, the `podId`
    /// of containers and a few `K8sEvent`s).
    pub pods: bool,
    /// Codec of the data blocks.
    pub codec: GenCodec,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            records: 10_000,
            seed: 1,
            containers: 4,
            pods: false,
            codec: GenCodec::Deflate,
        }
    }
}

/// Number of records written, per type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Records per kind, indexed like [`RecordKind::ALL`].
    pub by_kind: [u64; 12],
}

impl Counts {
    /// Counts one record.
    pub fn add(&mut self, kind: RecordKind) {
        if let Some(n) = self.by_kind.get_mut(kind_index(kind)) {
            *n += 1;
        }
    }

    /// The number of records of `kind`.
    pub fn get(&self, kind: RecordKind) -> u64 {
        self.by_kind.get(kind_index(kind)).copied().unwrap_or(0)
    }

    /// The number of records in all.
    pub fn total(&self) -> u64 {
        self.by_kind.iter().sum()
    }

    /// The non-zero counts by schema record name (`"FileFlow"`), as `TRACES.md` lists them.
    pub fn by_name(&self) -> BTreeMap<String, u64> {
        RecordKind::ALL
            .iter()
            .map(|&k| (k.name().to_owned(), self.get(k)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// `{"records": N, "by_type": {"FileFlow": n, ...}}` (non-zero counts only).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "records": self.total(), "by_type": self.by_name() })
    }

    /// One line per non-zero type, with its share of the records.
    pub fn table(&self) -> String {
        let total = self.total().max(1) as f64;
        let mut out = String::new();
        for k in RecordKind::ALL {
            let n = self.get(k);
            if n > 0 {
                out.push_str(&format!(
                    "{:<13} {:>10} {:>6.2} %\n",
                    k.name(),
                    n,
                    n as f64 * 100.0 / total
                ));
            }
        }
        out.push_str(&format!("{:<13} {:>10}\n", "total", self.total()));
        out
    }
}

fn kind_index(kind: RecordKind) -> usize {
    RecordKind::ALL
        .iter()
        .position(|&k| k == kind)
        .unwrap_or_default()
}

/// An error writing a generated trace.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the trace after {records} records: {source}")]
pub struct GenError {
    /// Records written before the error.
    pub records: u64,
    /// The I/O error of the output.
    pub source: std::io::Error,
}

/// The parsed [`SCHEMA_V5`], for `apache-avro`.
///
/// # Errors
/// Only if the embedded schema text is broken (a build problem).
pub fn schema_v5() -> Result<Schema, apache_avro::Error> {
    Schema::parse_str(SCHEMA_V5)
}

/// Generates `config.records` records and writes them to `out` as a SysFlow trace file.
/// Returns the per-type counts.
///
/// The file is an Avro object container file: header with the metadata `avro.schema`
/// ([`SCHEMA_V5`], byte for byte) and `avro.codec`, then blocks of about [`BLOCK_SIZE`]
/// uncompressed bytes. The datums are encoded by [`encode_record`] (`apache-avro`'s `Writer`
/// takes about 20 s per million records here, most of it building and validating `Value`s; the
/// tests check that both encodings are byte for byte the same).
///
/// # Errors
/// [`GenError`] when writing to `out` fails.
pub fn write_trace<W: Write>(config: &GenConfig, out: W) -> Result<Counts, GenError> {
    let mut marker = [0u8; 16];
    let mut rng = Rng::new(config.seed ^ 0x5359_4e43_4d41_524b); // "SYNCMARK"
    for chunk in marker.chunks_mut(8) {
        let bytes = rng.next_u64().to_le_bytes();
        chunk.copy_from_slice(bytes.get(..chunk.len()).unwrap_or_default());
    }
    let mut writer = ContainerWriter::new(out, config.codec, marker);
    let mut counts = Counts::default();
    let fail = |records: u64| move |source| GenError { records, source };
    writer.header().map_err(fail(0))?;
    for record in Generator::new(config) {
        writer.append(&record).map_err(fail(counts.total()))?;
        counts.add(record.kind());
    }
    writer.finish().map_err(fail(counts.total()))?;
    Ok(counts)
}

/// Writes an Avro object container file of `sysflow.SysFlow` datums (schema 5).
struct ContainerWriter<W: Write> {
    out: W,
    codec: GenCodec,
    marker: [u8; 16],
    block: Vec<u8>,
    count: u64,
    frame: Vec<u8>,
}

impl<W: Write> ContainerWriter<W> {
    fn new(out: W, codec: GenCodec, marker: [u8; 16]) -> Self {
        ContainerWriter {
            out,
            codec,
            marker,
            block: Vec::with_capacity(BLOCK_SIZE + 4096),
            count: 0,
            frame: Vec::with_capacity(BLOCK_SIZE + 4096),
        }
    }

    fn header(&mut self) -> std::io::Result<()> {
        let mut h = b"Obj\x01".to_vec();
        put_long(&mut h, 2);
        put_bytes(&mut h, b"avro.schema");
        put_bytes(&mut h, SCHEMA_V5.as_bytes());
        put_bytes(&mut h, b"avro.codec");
        put_bytes(&mut h, self.codec.name().as_bytes());
        put_long(&mut h, 0);
        h.extend_from_slice(&self.marker);
        self.out.write_all(&h)
    }

    fn append(&mut self, record: &Record) -> std::io::Result<()> {
        encode_record(record, &mut self.block);
        self.count += 1;
        if self.block.len() >= BLOCK_SIZE {
            self.flush_block()?;
        }
        Ok(())
    }

    fn flush_block(&mut self) -> std::io::Result<()> {
        if self.count == 0 {
            return Ok(());
        }
        self.frame.clear();
        put_long(&mut self.frame, self.count as i64);
        match self.codec {
            GenCodec::Null => {
                put_long(&mut self.frame, self.block.len() as i64);
                self.out.write_all(&self.frame)?;
                self.out.write_all(&self.block)?;
            }
            GenCodec::Deflate => {
                let mut z = flate2::write::DeflateEncoder::new(
                    Vec::with_capacity(self.block.len() / 2),
                    flate2::Compression::default(),
                );
                z.write_all(&self.block)?;
                let compressed = z.finish()?;
                put_long(&mut self.frame, compressed.len() as i64);
                self.out.write_all(&self.frame)?;
                self.out.write_all(&compressed)?;
            }
        }
        self.out.write_all(&self.marker)?;
        self.block.clear();
        self.count = 0;
        Ok(())
    }

    fn finish(mut self) -> std::io::Result<()> {
        self.flush_block()?;
        self.out.flush()
    }
}

// ---------------------------------------------------------------------------------------------
// Record -> Avro binary (schema 5)
// ---------------------------------------------------------------------------------------------

fn put_long(buf: &mut Vec<u8>, v: i64) {
    let mut n = ((v << 1) ^ (v >> 63)) as u64;
    while n >= 0x80 {
        buf.push((n as u8) | 0x80);
        n >>= 7;
    }
    buf.push(n as u8);
}

fn put_bytes(buf: &mut Vec<u8>, bytes: &[u8]) {
    put_long(buf, bytes.len() as i64);
    buf.extend_from_slice(bytes);
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    put_bytes(buf, s.as_bytes());
}

fn put_bool(buf: &mut Vec<u8>, b: bool) {
    buf.push(u8::from(b));
}

fn put_oid(buf: &mut Vec<u8>, oid: Oid) {
    put_long(buf, oid.create_ts);
    put_long(buf, oid.hpid);
}

fn put_opt_str(buf: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => put_long(buf, 0),
        Some(s) => {
            put_long(buf, 1);
            put_str(buf, s);
        }
    }
}

/// An Avro array: one block of all the items, then the empty block.
fn put_array<T>(buf: &mut Vec<u8>, items: &[T], mut put: impl FnMut(&mut Vec<u8>, &T)) {
    if !items.is_empty() {
        put_long(buf, items.len() as i64);
        for item in items {
            put(buf, item);
        }
    }
    put_long(buf, 0);
}

fn put_enum<T: PartialEq>(buf: &mut Vec<u8>, all: &[T], value: T) {
    put_long(
        buf,
        all.iter().position(|v| *v == value).unwrap_or(0) as i64,
    );
}

/// Appends the Avro binary encoding of the `sysflow.SysFlow` datum of `record` for the
/// schema-5 writer schema [`SCHEMA_V5`] to `buf`.
pub fn encode_record(record: &Record, buf: &mut Vec<u8>) {
    put_long(buf, i64::from(branch_v5(record.kind())));
    match record {
        Record::Header(h) => {
            put_long(buf, h.version);
            put_str(buf, &h.exporter);
            put_str(buf, &h.ip);
            put_str(buf, &h.filename);
        }
        Record::Container(c) => {
            put_str(buf, &c.id);
            put_str(buf, &c.name);
            put_str(buf, &c.image);
            put_str(buf, &c.imageid);
            put_enum(buf, ContainerType::ALL, c.r#type);
            put_bool(buf, c.privileged);
            put_opt_str(buf, c.pod_id.as_deref());
        }
        Record::Pod(p) => {
            put_long(buf, p.ts);
            put_str(buf, &p.id);
            put_str(buf, &p.name);
            put_str(buf, &p.node_name);
            put_array(buf, &p.host_ip, |b, ip| put_long(b, *ip));
            put_array(buf, &p.internal_ip, |b, ip| put_long(b, *ip));
            put_str(buf, &p.namespace);
            put_long(buf, p.restart_count);
            for map in [&p.labels, &p.selectors] {
                put_array(buf, map, |b, (k, v)| {
                    put_str(b, k);
                    put_str(b, v);
                });
            }
            put_array(buf, &p.services, |b, svc| {
                put_str(b, &svc.name);
                put_str(b, &svc.id);
                put_str(b, &svc.namespace);
                put_array(b, &svc.port_list, |b, port| {
                    put_long(b, i64::from(port.port));
                    put_long(b, i64::from(port.target_port));
                    put_long(b, i64::from(port.node_port));
                    put_str(b, &port.proto);
                });
                put_array(b, &svc.cluster_ip, |b, ip| put_long(b, *ip));
            });
        }
        Record::Process(p) => {
            put_enum(buf, ObjectState::ALL, p.state);
            put_oid(buf, p.oid);
            match p.poid {
                None => put_long(buf, 0),
                Some(poid) => {
                    put_long(buf, 1);
                    put_oid(buf, poid);
                }
            }
            put_long(buf, p.ts);
            put_str(buf, &p.exe);
            put_str(buf, &p.exe_args);
            put_long(buf, i64::from(p.uid));
            put_str(buf, &p.user_name);
            put_long(buf, i64::from(p.gid));
            put_str(buf, &p.group_name);
            put_bool(buf, p.tty);
            put_opt_str(buf, p.container_id.as_deref());
            put_bool(buf, p.entry);
            put_str(buf, &p.cwd);
            put_array(buf, &p.env, |b, e| put_str(b, e));
        }
        Record::File(x) => {
            put_enum(buf, ObjectState::ALL, x.state);
            buf.extend_from_slice(&x.oid.0);
            put_long(buf, x.ts);
            put_long(buf, i64::from(x.restype));
            put_str(buf, &x.path);
            put_opt_str(buf, x.container_id.as_deref());
        }
        Record::ProcessEvent(e) => {
            put_oid(buf, e.proc_oid);
            put_long(buf, e.ts);
            put_long(buf, e.tid);
            put_long(buf, i64::from(e.op_flags));
            put_array(buf, &e.args, |b, a| put_str(b, a));
            put_long(buf, i64::from(e.ret));
        }
        Record::ProcessFlow(x) => {
            put_oid(buf, x.proc_oid);
            put_long(buf, x.ts);
            put_long(buf, x.num_threads_cloned);
            put_long(buf, i64::from(x.op_flags));
            put_long(buf, x.end_ts);
            put_long(buf, x.num_threads_exited);
            put_long(buf, x.num_clone_errors);
        }
        Record::FileFlow(x) => {
            put_oid(buf, x.proc_oid);
            put_long(buf, x.ts);
            put_long(buf, x.tid);
            put_long(buf, i64::from(x.op_flags));
            put_long(buf, i64::from(x.open_flags));
            put_long(buf, x.end_ts);
            buf.extend_from_slice(&x.file_oid.0);
            put_long(buf, i64::from(x.fd));
            put_long(buf, x.num_r_recv_ops);
            put_long(buf, x.num_w_send_ops);
            put_long(buf, x.num_r_recv_bytes);
            put_long(buf, x.num_w_send_bytes);
        }
        Record::FileEvent(e) => {
            put_oid(buf, e.proc_oid);
            put_long(buf, e.ts);
            put_long(buf, e.tid);
            put_long(buf, i64::from(e.op_flags));
            buf.extend_from_slice(&e.file_oid.0);
            put_long(buf, i64::from(e.ret));
            match e.new_file_oid {
                None => put_long(buf, 0),
                Some(f) => {
                    put_long(buf, 1);
                    buf.extend_from_slice(&f.0);
                }
            }
        }
        Record::NetworkFlow(x) => {
            put_oid(buf, x.proc_oid);
            put_long(buf, x.ts);
            put_long(buf, x.tid);
            put_long(buf, i64::from(x.op_flags));
            put_long(buf, x.end_ts);
            for v in [x.sip, x.sport, x.dip, x.dport, x.proto, x.fd] {
                put_long(buf, i64::from(v));
            }
            put_long(buf, x.num_r_recv_ops);
            put_long(buf, x.num_w_send_ops);
            put_long(buf, x.num_r_recv_bytes);
            put_long(buf, x.num_w_send_bytes);
        }
        Record::NetworkEvent(e) => {
            put_oid(buf, e.proc_oid);
            put_long(buf, e.ts);
            put_long(buf, e.tid);
            put_long(buf, i64::from(e.op_flags));
            for v in [e.sip, e.sport, e.dip, e.dport, e.proto, e.ret] {
                put_long(buf, i64::from(v));
            }
        }
        Record::K8sEvent(e) => {
            put_enum(buf, K8sComponent::ALL, e.kind);
            put_enum(buf, K8sAction::ALL, e.action);
            put_long(buf, e.ts);
            put_str(buf, &e.message);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Record -> apache-avro Value (schema 5)
// ---------------------------------------------------------------------------------------------

/// The union index of each record type in the `rec` union of [`SCHEMA_V5`].
fn branch_v5(kind: RecordKind) -> u32 {
    match kind {
        RecordKind::Header => 0,
        RecordKind::Container => 1,
        RecordKind::Process => 2,
        RecordKind::File => 3,
        RecordKind::ProcessEvent => 4,
        RecordKind::NetworkFlow => 5,
        RecordKind::FileFlow => 6,
        RecordKind::FileEvent => 7,
        RecordKind::NetworkEvent => 8,
        RecordKind::ProcessFlow => 9,
        RecordKind::Pod => 10,
        RecordKind::K8sEvent => 11,
    }
}

/// The `sysflow.SysFlow` datum of a record as an `apache-avro` [`Value`] of the schema-5
/// writer schema ([`encode_record`] writes the same bytes, faster).
pub fn to_value(record: &Record) -> Value {
    let fields = match record {
        Record::Header(h) => vec![
            f("version", Value::Long(h.version)),
            f("exporter", s(&h.exporter)),
            f("ip", s(&h.ip)),
            f("filename", s(&h.filename)),
        ],
        Record::Container(c) => vec![
            f("id", s(&c.id)),
            f("name", s(&c.name)),
            f("image", s(&c.image)),
            f("imageid", s(&c.imageid)),
            f(
                "type",
                enum_value(ContainerType::ALL, c.r#type, c.r#type.symbol()),
            ),
            f("privileged", Value::Boolean(c.privileged)),
            f("podId", opt(c.pod_id.as_deref().map(s))),
        ],
        Record::Pod(p) => vec![
            f("ts", Value::Long(p.ts)),
            f("id", s(&p.id)),
            f("name", s(&p.name)),
            f("nodeName", s(&p.node_name)),
            f("hostIP", longs(&p.host_ip)),
            f("internalIP", longs(&p.internal_ip)),
            f("namespace", s(&p.namespace)),
            f("restartCount", Value::Long(p.restart_count)),
            f("labels", map(&p.labels)),
            f("selectors", map(&p.selectors)),
            f(
                "services",
                Value::Array(p.services.iter().map(service_value).collect()),
            ),
        ],
        Record::Process(p) => vec![
            f("state", state(p.state)),
            f("oid", oid_value(p.oid)),
            f("poid", opt(p.poid.map(oid_value))),
            f("ts", Value::Long(p.ts)),
            f("exe", s(&p.exe)),
            f("exeArgs", s(&p.exe_args)),
            f("uid", Value::Int(p.uid)),
            f("userName", s(&p.user_name)),
            f("gid", Value::Int(p.gid)),
            f("groupName", s(&p.group_name)),
            f("tty", Value::Boolean(p.tty)),
            f("containerId", opt(p.container_id.as_deref().map(s))),
            f("entry", Value::Boolean(p.entry)),
            f("cwd", s(&p.cwd)),
            f("env", strings(&p.env)),
        ],
        Record::File(x) => vec![
            f("state", state(x.state)),
            f("oid", foid_value(x.oid)),
            f("ts", Value::Long(x.ts)),
            f("restype", Value::Int(x.restype)),
            f("path", s(&x.path)),
            f("containerId", opt(x.container_id.as_deref().map(s))),
        ],
        Record::ProcessEvent(e) => vec![
            f("procOID", oid_value(e.proc_oid)),
            f("ts", Value::Long(e.ts)),
            f("tid", Value::Long(e.tid)),
            f("opFlags", Value::Int(e.op_flags)),
            f("args", strings(&e.args)),
            f("ret", Value::Int(e.ret)),
        ],
        Record::ProcessFlow(x) => vec![
            f("procOID", oid_value(x.proc_oid)),
            f("ts", Value::Long(x.ts)),
            f("numThreadsCloned", Value::Long(x.num_threads_cloned)),
            f("opFlags", Value::Int(x.op_flags)),
            f("endTs", Value::Long(x.end_ts)),
            f("numThreadsExited", Value::Long(x.num_threads_exited)),
            f("numCloneErrors", Value::Long(x.num_clone_errors)),
        ],
        Record::FileFlow(x) => vec![
            f("procOID", oid_value(x.proc_oid)),
            f("ts", Value::Long(x.ts)),
            f("tid", Value::Long(x.tid)),
            f("opFlags", Value::Int(x.op_flags)),
            f("openFlags", Value::Int(x.open_flags)),
            f("endTs", Value::Long(x.end_ts)),
            f("fileOID", foid_value(x.file_oid)),
            f("fd", Value::Int(x.fd)),
            f("numRRecvOps", Value::Long(x.num_r_recv_ops)),
            f("numWSendOps", Value::Long(x.num_w_send_ops)),
            f("numRRecvBytes", Value::Long(x.num_r_recv_bytes)),
            f("numWSendBytes", Value::Long(x.num_w_send_bytes)),
        ],
        Record::FileEvent(e) => vec![
            f("procOID", oid_value(e.proc_oid)),
            f("ts", Value::Long(e.ts)),
            f("tid", Value::Long(e.tid)),
            f("opFlags", Value::Int(e.op_flags)),
            f("fileOID", foid_value(e.file_oid)),
            f("ret", Value::Int(e.ret)),
            f("newFileOID", opt(e.new_file_oid.map(foid_value))),
        ],
        Record::NetworkFlow(x) => vec![
            f("procOID", oid_value(x.proc_oid)),
            f("ts", Value::Long(x.ts)),
            f("tid", Value::Long(x.tid)),
            f("opFlags", Value::Int(x.op_flags)),
            f("endTs", Value::Long(x.end_ts)),
            f("sip", Value::Int(x.sip)),
            f("sport", Value::Int(x.sport)),
            f("dip", Value::Int(x.dip)),
            f("dport", Value::Int(x.dport)),
            f("proto", Value::Int(x.proto)),
            f("fd", Value::Int(x.fd)),
            f("numRRecvOps", Value::Long(x.num_r_recv_ops)),
            f("numWSendOps", Value::Long(x.num_w_send_ops)),
            f("numRRecvBytes", Value::Long(x.num_r_recv_bytes)),
            f("numWSendBytes", Value::Long(x.num_w_send_bytes)),
        ],
        Record::NetworkEvent(e) => vec![
            f("procOID", oid_value(e.proc_oid)),
            f("ts", Value::Long(e.ts)),
            f("tid", Value::Long(e.tid)),
            f("opFlags", Value::Int(e.op_flags)),
            f("sip", Value::Int(e.sip)),
            f("sport", Value::Int(e.sport)),
            f("dip", Value::Int(e.dip)),
            f("dport", Value::Int(e.dport)),
            f("proto", Value::Int(e.proto)),
            f("ret", Value::Int(e.ret)),
        ],
        Record::K8sEvent(e) => vec![
            f(
                "kind",
                enum_value(K8sComponent::ALL, e.kind, e.kind.symbol()),
            ),
            f(
                "action",
                enum_value(K8sAction::ALL, e.action, e.action.symbol()),
            ),
            f("ts", Value::Long(e.ts)),
            f("message", s(&e.message)),
        ],
    };
    Value::Record(vec![(
        "rec".to_owned(),
        Value::Union(branch_v5(record.kind()), Box::new(Value::Record(fields))),
    )])
}

fn f(name: &str, value: Value) -> (String, Value) {
    (name.to_owned(), value)
}

fn s(text: &str) -> Value {
    Value::String(text.to_owned())
}

fn opt(value: Option<Value>) -> Value {
    match value {
        None => Value::Union(0, Box::new(Value::Null)),
        Some(v) => Value::Union(1, Box::new(v)),
    }
}

fn enum_value<T: PartialEq>(all: &[T], value: T, symbol: &str) -> Value {
    let index = all.iter().position(|v| *v == value).unwrap_or_default();
    Value::Enum(u32::try_from(index).unwrap_or_default(), symbol.to_owned())
}

fn state(state: ObjectState) -> Value {
    enum_value(ObjectState::ALL, state, state.symbol())
}

fn oid_value(oid: Oid) -> Value {
    Value::Record(vec![
        f("createTS", Value::Long(oid.create_ts)),
        f("hpid", Value::Long(oid.hpid)),
    ])
}

fn foid_value(foid: Foid) -> Value {
    Value::Fixed(20, foid.0.to_vec())
}

fn strings(items: &[String]) -> Value {
    Value::Array(items.iter().map(|i| s(i)).collect())
}

fn longs(items: &[i64]) -> Value {
    Value::Array(items.iter().map(|&i| Value::Long(i)).collect())
}

fn map(pairs: &[(String, String)]) -> Value {
    Value::Map(pairs.iter().map(|(k, v)| (k.clone(), s(v))).collect())
}

fn service_value(service: &Service) -> Value {
    Value::Record(vec![
        f("name", s(&service.name)),
        f("id", s(&service.id)),
        f("namespace", s(&service.namespace)),
        f(
            "portList",
            Value::Array(
                service
                    .port_list
                    .iter()
                    .map(|p| {
                        Value::Record(vec![
                            f("port", Value::Int(p.port)),
                            f("targetPort", Value::Int(p.target_port)),
                            f("nodePort", Value::Int(p.node_port)),
                            f("proto", s(&p.proto)),
                        ])
                    })
                    .collect(),
            ),
        ),
        f("clusterIP", longs(&service.cluster_ip)),
    ])
}

// ---------------------------------------------------------------------------------------------
// The simulation
// ---------------------------------------------------------------------------------------------

/// A small, fast, deterministic pseudo-random generator (SplitMix64).
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
        }
    }

    /// Uniform index into a collection of `len` items (0 when empty).
    fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below(hi.abs_diff(lo) + 1) as i64
    }

    /// True with probability `per_mille / 1000`.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    /// An index skewed toward the end of `0..len` (recent items are hot), 0 when empty.
    fn recent(&mut self, len: usize) -> usize {
        if len == 0 {
            return 0;
        }
        // Most picks among the last 64, the rest uniform.
        if self.chance(800) {
            let window = len.min(64);
            len - 1 - self.index(window)
        } else {
            self.index(len)
        }
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        items.get(self.index(items.len()))
    }

    fn hex(&mut self, digits: usize) -> String {
        let mut out = String::with_capacity(digits);
        while out.len() < digits {
            out.push_str(&format!("{:016x}", self.next_u64()));
        }
        out.truncate(digits);
        out
    }
}

/// What a user process runs: executable, arguments, user.
struct Program {
    exe: &'static str,
    args: &'static [&'static str],
    user: (&'static str, i32),
    cwd: &'static str,
}

const PROGRAMS: &[Program] = &[
    Program {
        exe: "/usr/bin/bash",
        args: &["", "-c ./run.sh", "-l"],
        user: ("ccsi", 1000),
        cwd: "/home/ccsi/",
    },
    Program {
        exe: "/usr/sbin/nginx",
        args: &["-g daemon off;", "-c /etc/nginx/nginx.conf"],
        user: ("www-data", 33),
        cwd: "/",
    },
    Program {
        exe: "/usr/bin/python3.11",
        args: &[
            "manage.py runserver 0.0.0.0:8000",
            "-m pip list",
            "worker.py --queue high",
        ],
        user: ("ccsi", 1000),
        cwd: "/home/ccsi/workspace/app/",
    },
    Program {
        exe: "/usr/bin/curl",
        args: &[
            "-s http://10.0.0.12:8080/health",
            "-fsSL https://example.com/install.sh",
        ],
        user: ("root", 0),
        cwd: "/root/",
    },
    Program {
        exe: "/usr/lib/jvm/java-17-openjdk-amd64/bin/java",
        args: &[
            "-Xmx2g -jar /opt/app/service.jar",
            "-cp /opt/kafka/libs/* kafka.Kafka",
        ],
        user: ("app", 1001),
        cwd: "/opt/app/",
    },
    Program {
        exe: "/usr/local/bin/redis-server",
        args: &["*:6379", "/etc/redis/redis.conf"],
        user: ("redis", 999),
        cwd: "/data/",
    },
    Program {
        exe: "/usr/lib/postgresql/15/bin/postgres",
        args: &["-D /var/lib/postgresql/data", ""],
        user: ("postgres", 998),
        cwd: "/var/lib/postgresql/",
    },
    Program {
        exe: "/usr/bin/ls",
        args: &["-la", "--color=auto /var/log"],
        user: ("ccsi", 1000),
        cwd: "/home/ccsi/",
    },
    Program {
        exe: "/usr/bin/cat",
        args: &["/etc/passwd", "/proc/cpuinfo"],
        user: ("ccsi", 1000),
        cwd: "/home/ccsi/",
    },
    Program {
        exe: "/usr/bin/node",
        args: &["server.js", "/usr/lib/node_modules/npm/bin/npm-cli.js ci"],
        user: ("node", 1002),
        cwd: "/srv/app/",
    },
];

const IMAGES: &[(&str, &str)] = &[
    ("nginx:1.25", "nginx"),
    ("redis:7.2-alpine", "redis"),
    ("postgres:15", "postgres"),
    ("python:3.11-slim", "api"),
    ("eclipse-temurin:17-jre", "orders"),
    ("node:20-bookworm", "frontend"),
];

const LIBS: &[&str] = &[
    "/etc/ld.so.cache",
    "/usr/lib/x86_64-linux-gnu/libc.so.6",
    "/usr/lib/x86_64-linux-gnu/libssl.so.3",
    "/usr/lib/x86_64-linux-gnu/libcrypto.so.3",
    "/usr/lib/x86_64-linux-gnu/libz.so.1",
    "/usr/lib/x86_64-linux-gnu/libpthread.so.0",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/nsswitch.conf",
    "/etc/passwd",
    "/etc/group",
    "/etc/localtime",
    "/dev/null",
    "/dev/urandom",
];

const PORTS: &[i32] = &[80, 443, 5432, 6379, 8080, 8000, 9092, 53];

/// Typical sizes of one read or write, bytes.
const IO_SIZES: &[i64] = &[832, 4096, 4096, 1024, 8192, 512, 64, 65_536, 13];

/// A process the simulation knows.
#[derive(Debug, Clone)]
struct Proc {
    oid: Oid,
    poid: Option<Oid>,
    program: usize,
    container: Option<usize>,
    threads: i64,
}

/// A file the simulation has written an entity for.
#[derive(Debug, Clone, Copy)]
struct KnownFile {
    oid: Foid,
    container: Option<usize>,
}

/// A container the simulation has written an entity for.
#[derive(Debug, Clone)]
struct Ctr {
    id: String,
    ip: i32,
}

/// The simulation: yields the records of one trace, in order. See the module documentation.
#[derive(Debug)]
pub struct Generator {
    config: GenConfig,
    rng: Rng,
    /// Records yielded so far.
    emitted: u64,
    /// Records produced by the current action and not yet yielded.
    pending: VecDeque<Record>,
    clock: i64,
    next_pid: i64,
    containers: Vec<Ctr>,
    processes: Vec<Proc>,
    files: Vec<KnownFile>,
    /// Files by path and container, so a path opened again reuses its entity.
    file_ids: HashMap<(String, Option<usize>), usize>,
    next_file: u64,
    started: bool,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.exe)
    }
}

/// Processes the simulation keeps alive at least (exits wait until there are more).
const MIN_PROCESSES: usize = 8;

impl Generator {
    /// A generator of the trace described by `config`.
    pub fn new(config: &GenConfig) -> Self {
        Generator {
            config: config.clone(),
            rng: Rng::new(config.seed),
            emitted: 0,
            pending: VecDeque::new(),
            clock: 1_700_000_000_000_000_000,
            next_pid: 1,
            containers: Vec::new(),
            processes: Vec::new(),
            files: Vec::new(),
            file_ids: HashMap::new(),
            next_file: 0,
            started: false,
        }
    }

    /// Advances the clock by up to 20 µs and returns it (nanoseconds).
    fn tick(&mut self) -> i64 {
        self.clock += self.rng.range(1, 20_000);
        self.clock
    }

    fn new_pid(&mut self) -> i64 {
        self.next_pid += self.rng.range(1, 40);
        self.next_pid
    }

    fn container_id(&self, container: Option<usize>) -> Option<String> {
        container.and_then(|c| self.containers.get(c).map(|c| c.id.clone()))
    }

    /// The records that open the trace: header, pods, containers, the first processes.
    fn start(&mut self) {
        self.pending.push_back(Record::Header(SfHeader {
            version: 5,
            exporter: "sf-gen-node-1".to_owned(),
            ip: "10.0.0.10".to_owned(),
            filename: format!("/var/lib/sysflow/trace-{}.sf", self.config.seed),
        }));
        for i in 0..self.config.containers {
            let (image, name) = self.rng.pick(IMAGES).copied().unwrap_or(("busybox", "app"));
            let id = self.rng.hex(64);
            let ip = i32::from_le_bytes([172, 17, 0, (2 + i % 250) as u8]);
            let pod_id = self.config.pods.then(|| {
                let uid = format!(
                    "{}-{}-{}-{}-{}",
                    self.rng.hex(8),
                    self.rng.hex(4),
                    self.rng.hex(4),
                    self.rng.hex(4),
                    self.rng.hex(12)
                );
                let pod = self.pod(&uid, name, i, ip);
                self.pending.push_back(Record::Pod(pod));
                uid
            });
            self.pending.push_back(Record::Container(Container {
                id: id.clone(),
                name: format!("{name}-{i}"),
                image: image.to_owned(),
                imageid: format!("sha256:{}", self.rng.hex(64)),
                r#type: if self.config.pods {
                    ContainerType::Cri
                } else {
                    ContainerType::Docker
                },
                privileged: self.rng.chance(100),
                pod_id,
            }));
            self.containers.push(Ctr { id, ip });
        }
        // Host processes: systemd <- containerd-shim, sshd <- bash.
        let systemd = self.spawn(None, None, "/usr/lib/systemd/systemd", "--system", false);
        let sshd = self.spawn(Some(systemd), None, "/usr/sbin/sshd", "-D", false);
        self.spawn(Some(sshd), None, "/usr/bin/bash", "-l", false);
        for c in 0..self.containers.len() {
            let shim = self.spawn(
                Some(systemd),
                None,
                "/usr/bin/containerd-shim-runc-v2",
                "-namespace k8s.io",
                false,
            );
            let program = self.rng.index(PROGRAMS.len());
            let (exe, args) = PROGRAMS.get(program).map_or(("/bin/sh", ""), |p| {
                (p.exe, p.args.first().copied().unwrap_or(""))
            });
            self.spawn(Some(shim), Some(c), exe, args, true);
        }
        for _ in 0..MIN_PROCESSES {
            self.clone_process();
        }
    }

    fn pod(&mut self, uid: &str, name: &str, i: u32, ip: i32) -> Pod {
        let namespace = "default".to_owned();
        Pod {
            ts: self.tick(),
            id: uid.to_owned(),
            name: format!("{name}-{}-{}", self.rng.hex(9), self.rng.hex(5)),
            node_name: "sf-gen-node-1".to_owned(),
            host_ip: vec![i64::from(i32::from_le_bytes([10, 0, 0, 10]))],
            internal_ip: vec![i64::from(ip)],
            namespace: namespace.clone(),
            restart_count: self.rng.range(0, 3),
            labels: vec![
                ("app".to_owned(), name.to_owned()),
                ("pod-template-hash".to_owned(), self.rng.hex(9)),
                ("tier".to_owned(), format!("tier-{}", i % 3)),
            ],
            selectors: vec![("app".to_owned(), name.to_owned())],
            services: vec![Service {
                name: name.to_owned(),
                id: self.rng.hex(32),
                namespace,
                port_list: vec![Port {
                    port: 80,
                    target_port: PORTS.get(i as usize % PORTS.len()).copied().unwrap_or(80),
                    node_port: 30_000 + (i as i32 % 2000),
                    proto: "TCP".to_owned(),
                }],
                cluster_ip: vec![i64::from(i32::from_le_bytes([10, 96, 0, (i % 250) as u8]))],
            }],
        }
    }

    /// Creates a process, queues its `Process` entity (CREATED) and returns its index.
    fn spawn(
        &mut self,
        parent: Option<usize>,
        container: Option<usize>,
        exe: &str,
        args: &str,
        entry: bool,
    ) -> usize {
        let ts = self.tick();
        let pid = self.new_pid();
        let oid = Oid {
            create_ts: ts,
            hpid: pid,
        };
        let poid = parent.and_then(|p| self.processes.get(p)).map(|p| p.oid);
        let program = PROGRAMS.iter().position(|p| p.exe == exe).unwrap_or(0);
        let (user, uid) = if exe.starts_with("/usr/lib/systemd")
            || exe.starts_with("/usr/sbin/sshd")
            || exe.contains("containerd")
        {
            ("root", 0)
        } else {
            PROGRAMS.get(program).map_or(("root", 0), |p| p.user)
        };
        let cwd = PROGRAMS.get(program).map_or("/", |p| p.cwd);
        let record = self.process_record(
            ObjectState::Created,
            oid,
            poid,
            (exe, args),
            (user, uid),
            cwd,
            container,
            entry,
        );
        self.pending.push_back(Record::Process(record));
        self.processes.push(Proc {
            oid,
            poid,
            program,
            container,
            threads: 1,
        });
        self.processes.len() - 1
    }

    #[allow(clippy::too_many_arguments)]
    fn process_record(
        &mut self,
        state: ObjectState,
        oid: Oid,
        poid: Option<Oid>,
        (exe, args): (&str, &str),
        (user, uid): (&str, i32),
        cwd: &str,
        container: Option<usize>,
        entry: bool,
    ) -> Process {
        let mut env = vec![
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
            format!("HOME={cwd}"),
            format!("USER={user}"),
            "LANG=C.UTF-8".to_owned(),
        ];
        if self.rng.chance(300) {
            env.push(format!("HOSTNAME={}", self.rng.hex(12)));
        }
        Process {
            state,
            oid,
            poid,
            ts: self.tick(),
            exe: exe.to_owned(),
            exe_args: args.to_owned(),
            uid,
            user_name: user.to_owned(),
            gid: uid,
            group_name: user.to_owned(),
            tty: container.is_none() && self.rng.chance(200),
            container_id: self.container_id(container),
            entry,
            cwd: cwd.to_owned(),
            env,
        }
    }

    /// A random live process (recent ones are busier).
    fn some_process(&mut self) -> usize {
        self.rng.recent(self.processes.len())
    }

    /// The thread id of a flow or event of process `p`.
    fn tid_of(&mut self, p: &Proc) -> i64 {
        p.oid.hpid + self.rng.below(p.threads.max(1) as u64) as i64
    }

    fn clone_process(&mut self) {
        let parent = self.some_process();
        let Some(p) = self.processes.get(parent).cloned() else {
            return;
        };
        let program = PROGRAMS.get(p.program);
        let exe = program.map_or("/usr/bin/bash", |prog| prog.exe);
        let args = program
            .and_then(|prog| self.rng.pick(prog.args).copied())
            .unwrap_or("");
        let child = self.spawn(Some(parent), p.container, exe, args, false);
        let child_oid = self.processes.get(child).map_or(p.oid, |c| c.oid);
        let ts = self.tick();
        let tid = self.tid_of(&p);
        self.pending.push_back(Record::ProcessEvent(ProcessEvent {
            proc_oid: child_oid,
            ts,
            tid,
            op_flags: op_flags::CLONE,
            args: Vec::new(),
            ret: 0,
        }));
    }

    fn exec(&mut self) {
        let i = self.some_process();
        let program = self.rng.index(PROGRAMS.len());
        let Some(prog) = PROGRAMS.get(program) else {
            return;
        };
        let args = self.rng.pick(prog.args).copied().unwrap_or("");
        let Some(p) = self.processes.get_mut(i) else {
            return;
        };
        p.program = program;
        let p = p.clone();
        if self.rng.chance(700) {
            let record = self.process_record(
                ObjectState::Modified,
                p.oid,
                p.poid,
                (prog.exe, args),
                prog.user,
                prog.cwd,
                p.container,
                false,
            );
            self.pending.push_back(Record::Process(record));
        }
        let ts = self.tick();
        let tid = self.tid_of(&p);
        let mut argv = vec![prog.exe.to_owned()];
        argv.extend(args.split_whitespace().map(str::to_owned));
        self.pending.push_back(Record::ProcessEvent(ProcessEvent {
            proc_oid: p.oid,
            ts,
            tid,
            op_flags: op_flags::EXEC,
            args: argv,
            ret: 0,
        }));
    }

    fn exit(&mut self) {
        if self.processes.len() <= MIN_PROCESSES {
            return self.other_process_event();
        }
        // Never the first processes (the host's and the containers' roots).
        let first = 3 + 2 * self.containers.len();
        let span = self.processes.len().saturating_sub(first);
        if span == 0 {
            return self.other_process_event();
        }
        let i = first + self.rng.index(span);
        let p = self.processes.swap_remove(i);
        let ts = self.tick();
        self.pending.push_back(Record::ProcessEvent(ProcessEvent {
            proc_oid: p.oid,
            ts,
            tid: p.oid.hpid,
            op_flags: op_flags::EXIT,
            args: Vec::new(),
            ret: if self.rng.chance(900) { 0 } else { 1 },
        }));
    }

    fn other_process_event(&mut self) {
        let i = self.some_process();
        let Some(p) = self.processes.get(i).cloned() else {
            return;
        };
        let ts = self.tick();
        let tid = self.tid_of(&p);
        let (flags, args) = if self.rng.chance(600) {
            (op_flags::SETUID, vec!["0".to_owned()])
        } else {
            (op_flags::SETNS, vec!["net".to_owned()])
        };
        self.pending.push_back(Record::ProcessEvent(ProcessEvent {
            proc_oid: p.oid,
            ts,
            tid,
            op_flags: flags,
            args,
            ret: if self.rng.chance(950) { 0 } else { -1 },
        }));
    }

    /// A new path for process `p`.
    fn new_path(&mut self, p: &Proc) -> (String, i32) {
        self.next_file += 1;
        let n = self.next_file;
        match self.rng.below(10) {
            0..=2 => (
                LIBS.get(self.rng.index(LIBS.len()))
                    .map_or_else(|| "/etc/hosts".to_owned(), |l| (*l).to_owned()),
                i32::from(b'f'),
            ),
            3 | 4 => (
                format!(
                    "/proc/{}/{}",
                    p.oid.hpid,
                    ["stat", "status", "cmdline", "maps"]
                        .get(self.rng.index(4))
                        .unwrap_or(&"stat")
                ),
                i32::from(b'f'),
            ),
            5 => (format!("/tmp/tmp{}", self.rng.hex(8)), i32::from(b'f')),
            6 => (
                format!("/var/log/app/worker-{}.log", n % 97),
                i32::from(b'f'),
            ),
            7 => (
                format!("/var/lib/postgresql/data/base/16384/{}", 2600 + n % 5000),
                i32::from(b'f'),
            ),
            8 => (
                format!("/home/ccsi/workspace/app/src/module_{n}.py"),
                i32::from(b'f'),
            ),
            _ => (format!("/srv/app/static/{n:x}"), i32::from(b'd')),
        }
    }

    /// The index of a File entity for `path` in `container`, queuing the entity if new.
    fn file_entity(&mut self, path: String, restype: i32, container: Option<usize>) -> usize {
        let key = (path, container);
        if let Some(&i) = self.file_ids.get(&key) {
            return i;
        }
        let oid = foid_of(&key.0, self.container_id(container).as_deref());
        let ts = self.tick();
        self.pending.push_back(Record::File(File {
            state: ObjectState::Created,
            oid: Foid(oid),
            ts,
            restype,
            path: key.0.clone(),
            container_id: self.container_id(container),
        }));
        self.files.push(KnownFile {
            oid: Foid(oid),
            container,
        });
        let i = self.files.len() - 1;
        self.file_ids.insert(key, i);
        i
    }

    fn new_file(&mut self) {
        let i = self.some_process();
        let Some(p) = self.processes.get(i).cloned() else {
            return;
        };
        let (path, restype) = self.new_path(&p);
        let before = self.pending.len();
        self.file_entity(path, restype, p.container);
        if self.pending.len() == before {
            // The path was known: open a fresh temporary file instead.
            let path = format!("/tmp/sf-gen-{}", self.next_file);
            self.file_entity(path, i32::from(b'f'), p.container);
        }
    }

    /// A known file, preferably of the same container as process `p`.
    fn some_file(&mut self, p: &Proc) -> Foid {
        for _ in 0..4 {
            let i = self.rng.recent(self.files.len());
            if let Some(f) = self.files.get(i)
                && f.container == p.container
            {
                return f.oid;
            }
        }
        let i = self.rng.recent(self.files.len());
        match self.files.get(i) {
            Some(f) => f.oid,
            None => {
                let i = self.file_entity("/etc/hosts".to_owned(), i32::from(b'f'), p.container);
                self.files.get(i).map_or(Foid([0; 20]), |f| f.oid)
            }
        }
    }

    fn file_flow(&mut self) {
        let i = self.some_process();
        let Some(p) = self.processes.get(i).cloned() else {
            return;
        };
        let file_oid = self.some_file(&p);
        let ts = self.tick();
        let tid = self.tid_of(&p);
        let (ops, open_flags) = match self.rng.below(10) {
            0..=4 => (
                op_flags::OPEN | op_flags::READ_RECV | op_flags::CLOSE,
                0x80000,
            ),
            5 | 6 => (op_flags::READ_RECV, 0),
            7 => (
                op_flags::OPEN | op_flags::WRITE_SEND | op_flags::CLOSE,
                0x241,
            ),
            8 => (op_flags::WRITE_SEND, 0),
            _ => (op_flags::OPEN | op_flags::MMAP | op_flags::CLOSE, 0x80000),
        };
        let reads = if ops & op_flags::READ_RECV != 0 {
            self.rng.range(1, 16)
        } else {
            0
        };
        let writes = if ops & op_flags::WRITE_SEND != 0 {
            self.rng.range(1, 8)
        } else {
            0
        };
        let end_ts = ts + self.rng.range(1_000, 200_000);
        let fd = self.rng.range(3, 24) as i32;
        let read_bytes = reads * self.rng.pick(IO_SIZES).copied().unwrap_or(4096);
        let write_bytes = writes * self.rng.pick(IO_SIZES).copied().unwrap_or(4096);
        self.pending.push_back(Record::FileFlow(FileFlow {
            proc_oid: p.oid,
            ts,
            tid,
            op_flags: ops,
            open_flags,
            end_ts,
            file_oid,
            fd,
            num_r_recv_ops: reads,
            num_w_send_ops: writes,
            num_r_recv_bytes: read_bytes,
            num_w_send_bytes: write_bytes,
        }));
    }

    /// Source and destination of a connection of process `p`: (sip, sport, dip, dport, proto).
    fn endpoints(&mut self, p: &Proc) -> (i32, i32, i32, i32, i32) {
        let local = p
            .container
            .and_then(|c| self.containers.get(c))
            .map_or(i32::from_le_bytes([10, 0, 0, 10]), |c| c.ip);
        let dport = self.rng.pick(PORTS).copied().unwrap_or(80);
        let dip = match self.rng.below(4) {
            0 => i32::from_le_bytes([127, 0, 0, 1]),
            1 => self
                .rng
                .pick(&self.containers)
                .map_or(i32::from_le_bytes([10, 0, 0, 12]), |c| c.ip),
            _ => i32::from_le_bytes([10, 0, self.rng.below(4) as u8, self.rng.range(2, 254) as u8]),
        };
        let sport = self.rng.range(32_768, 60_999) as i32;
        let proto = if dport == 53 { 17 } else { 6 };
        (local, sport, dip, dport, proto)
    }

    fn network_flow(&mut self) {
        let i = self.some_process();
        let Some(p) = self.processes.get(i).cloned() else {
            return;
        };
        let (sip, sport, dip, dport, proto) = self.endpoints(&p);
        let ts = self.tick();
        let tid = self.tid_of(&p);
        let ops = match self.rng.below(4) {
            0 => op_flags::CONNECT | op_flags::WRITE_SEND | op_flags::READ_RECV,
            1 => op_flags::ACCEPT | op_flags::READ_RECV | op_flags::WRITE_SEND,
            2 => op_flags::READ_RECV | op_flags::WRITE_SEND,
            _ => op_flags::WRITE_SEND | op_flags::READ_RECV | op_flags::CLOSE,
        };
        let reads = self.rng.range(1, 40);
        let writes = self.rng.range(1, 40);
        let end_ts = ts + self.rng.range(10_000, 1_000_000_000);
        let fd = self.rng.range(3, 200) as i32;
        let read_bytes = reads * self.rng.range(40, 16_384);
        let write_bytes = writes * self.rng.range(40, 4096);
        self.pending.push_back(Record::NetworkFlow(NetworkFlow {
            proc_oid: p.oid,
            ts,
            tid,
            op_flags: ops,
            end_ts,
            sip,
            sport,
            dip,
            dport,
            proto,
            fd,
            num_r_recv_ops: reads,
            num_w_send_ops: writes,
            num_r_recv_bytes: read_bytes,
            num_w_send_bytes: write_bytes,
        }));
    }

    fn network_event(&mut self) {
        let i = self.some_process();
        let Some(p) = self.processes.get(i).cloned() else {
            return;
        };
        let (sip, sport, dip, dport, proto) = self.endpoints(&p);
        let ts = self.tick();
        let tid = self.tid_of(&p);
        let flags = if self.rng.chance(500) {
            op_flags::CONNECT
        } else {
            op_flags::ACCEPT
        };
        self.pending.push_back(Record::NetworkEvent(NetworkEvent {
            proc_oid: p.oid,
            ts,
            tid,
            op_flags: flags,
            sip,
            sport,
            dip,
            dport,
            proto,
            ret: if self.rng.chance(900) { 0 } else { -111 },
        }));
    }

    fn file_event(&mut self) {
        let i = self.some_process();
        let Some(p) = self.processes.get(i).cloned() else {
            return;
        };
        let file_oid = self.some_file(&p);
        let (flags, new_file_oid) = match self.rng.below(4) {
            0 => (op_flags::MKDIR, None),
            1 => (op_flags::UNLINK, None),
            2 => (op_flags::SYMLINK, None),
            _ => {
                self.next_file += 1;
                let target = format!("/tmp/renamed-{}", self.next_file);
                let j = self.file_entity(target, i32::from(b'f'), p.container);
                (op_flags::RENAME, self.files.get(j).map(|f| f.oid))
            }
        };
        let ts = self.tick();
        let tid = self.tid_of(&p);
        self.pending.push_back(Record::FileEvent(FileEvent {
            proc_oid: p.oid,
            ts,
            tid,
            op_flags: flags,
            file_oid,
            ret: if self.rng.chance(950) { 0 } else { -2 },
            new_file_oid,
        }));
    }

    fn process_flow(&mut self) {
        let i = self.some_process();
        let Some(p) = self.processes.get_mut(i) else {
            return;
        };
        p.threads = (p.threads + 1).min(16);
        let p = p.clone();
        let ts = self.tick();
        let end_ts = ts + self.rng.range(1_000_000, 2_000_000_000);
        let cloned = self.rng.range(1, 8);
        self.pending.push_back(Record::ProcessFlow(ProcessFlow {
            proc_oid: p.oid,
            ts,
            num_threads_cloned: cloned,
            op_flags: op_flags::CLONE | op_flags::EXIT,
            end_ts,
            num_threads_exited: self.rng.range(0, cloned),
            num_clone_errors: i64::from(self.rng.chance(20)),
        }));
    }

    fn k8s_event(&mut self) {
        let ts = self.tick();
        let name = self.rng.hex(10);
        self.pending.push_back(Record::K8sEvent(K8sEvent {
            kind: K8sComponent::Pods,
            action: K8sAction::Modified,
            ts,
            message: format!(
                "{{\"kind\":\"Pod\",\"metadata\":{{\"name\":\"pod-{name}\",\"namespace\":\"default\"}}}}"
            ),
        }));
    }

    /// Runs one action of the mix (see the module documentation).
    fn step(&mut self) {
        let roll = self.rng.below(1000 + u64::from(self.config.pods));
        match roll {
            0..650 => self.file_flow(),
            650..800 => self.network_flow(),
            800..900 => self.new_file(),
            900..907 => self.clone_process(),
            907..914 => self.exec(),
            914..921 => self.exit(),
            921..936 => self.other_process_event(),
            936..956 => self.file_event(),
            956..966 => self.network_event(),
            966..976 => self.process_flow(),
            976..1000 => self.file_flow(),
            _ => self.k8s_event(),
        }
    }
}

impl Iterator for Generator {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        if self.emitted >= self.config.records {
            return None;
        }
        if !self.started {
            self.started = true;
            self.start();
        }
        while self.pending.is_empty() {
            self.step();
        }
        let record = self.pending.pop_front()?;
        self.emitted += 1;
        Some(record)
    }
}

/// 20 bytes derived from a file's path and container (a stand-in for the collector's SHA-1).
fn foid_of(path: &str, container: Option<&str>) -> [u8; 20] {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in path
        .bytes()
        .chain([0u8])
        .chain(container.unwrap_or("").bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut rng = Rng::new(h);
    let mut out = [0u8; 20];
    for chunk in out.chunks_mut(8) {
        let bytes = rng.next_u64().to_le_bytes();
        chunk.copy_from_slice(bytes.get(..chunk.len()).unwrap_or_default());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_records_other_seed_other_records() {
        let config = GenConfig {
            records: 500,
            ..GenConfig::default()
        };
        let a: Vec<Record> = Generator::new(&config).collect();
        let b: Vec<Record> = Generator::new(&config).collect();
        assert_eq!(a.len(), 500);
        assert_eq!(a, b);
        let c: Vec<Record> = Generator::new(&GenConfig { seed: 2, ..config }).collect();
        assert_ne!(a, c);
    }

    #[test]
    fn every_record_type_is_generated_and_encodes_as_apache_avro_does() {
        let schema = schema_v5().expect("schema");
        let config = GenConfig {
            records: 20_000,
            pods: true,
            ..GenConfig::default()
        };
        let mut seen = Counts::default();
        let mut ours = Vec::new();
        for record in Generator::new(&config) {
            seen.add(record.kind());
            let value = to_value(&record);
            assert!(value.validate(&schema), "{record:?}");
            ours.clear();
            encode_record(&record, &mut ours);
            let theirs = apache_avro::to_avro_datum(&schema, value.clone()).expect("encode");
            if ours != theirs {
                // Maps: apache-avro writes its HashMap's order; compare the decoded datums.
                let back = apache_avro::from_avro_datum(&schema, &mut ours.as_slice(), None)
                    .expect("decode ours");
                assert_eq!(back, value, "{record:?}");
                assert_eq!(record.kind(), RecordKind::Pod);
            }
        }
        for kind in RecordKind::ALL {
            assert!(seen.get(kind) > 0, "{kind} generated");
        }
    }
}
