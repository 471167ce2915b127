//! The tests' oracle: SysFlow traces read with apache-avro, independently of `sf_reader`.
//!
//! apache-avro's generic reader decodes each datum with the file's own writer schema (its
//! container framing, its datum decoder) into a `Value`, and the mapping tables below (one
//! function per record type, one line per model field, written apart from `sf_reader`'s
//! reader schema and resolution) fill the model **by name**, with the defaults and renames of
//! every layout we know: fields older layouts lack get the reference defaults (`ip` "NA",
//! `filename` "", `entry` false, `podId` None, `cwd` "", `env` [], `openFlags` 0, `fd` 0,
//! `privileged` false, `tty` false), the earliest layouts' `sysflow.flow.ProcessFlow` with the
//! fields of a process event (`args`, no `endTs`) is a process event, and the January-2019
//! layout's `type` fields are `state` (Process) and `opFlags` (`CLONE`, `EXEC`, `EXIT`: the
//! `OP_*` bits). Pod labels and selectors come out of a `HashMap`: sorted by key.
//!
//! It is lenient where `sf_reader` follows the Avro specification (an `int` field takes a
//! `long` that fits, a FOID 20 `bytes`, an enum a `string`): compare the two on files both
//! read the same way (every shared trace, generated traces).
//!
//! [`datums`] splits a file into the bytes of its datums, as the collector sends them on its
//! socket (one datum per message).
#![deny(missing_docs)]

use std::io::{Cursor, Read};
use std::path::Path;

use apache_avro::Schema;
use apache_avro::types::Value;
use sf_processor::model::{
    Container, ContainerType, File, FileEvent, FileFlow, Foid, K8sAction, K8sComponent, K8sEvent,
    NetworkEvent, NetworkFlow, ObjectState, Oid, Pod, Port, Process, ProcessEvent, ProcessFlow,
    Record, RecordKind, Service, SfHeader, op_flags,
};

/// What is wrong with one field of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldProblem {
    /// The writer's record lacks a field that every SysFlow version has.
    Missing,
    /// The value has another Avro type than the model needs.
    WrongType {
        /// The type the model needs, e.g. `fixed(20)`.
        expected: &'static str,
        /// The type found, e.g. `string`.
        found: String,
    },
    /// An enum symbol the model does not know.
    UnknownSymbol {
        /// The schema's enum name, e.g. `ContainerType`.
        enum_name: &'static str,
        /// The symbol found.
        symbol: String,
    },
    /// A number that does not fit the model's type.
    OutOfRange {
        /// The model's type, e.g. `int`.
        expected: &'static str,
        /// The value found.
        value: i64,
    },
}

impl std::fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FieldProblem::Missing => f.write_str("missing from the writer's record"),
            FieldProblem::WrongType { expected, found } => {
                write!(f, "expected {expected}, found {found}")
            }
            FieldProblem::UnknownSymbol { enum_name, symbol } => {
                write!(f, "unknown {enum_name} symbol {symbol:?}")
            }
            FieldProblem::OutOfRange { expected, value } => {
                write!(f, "{value} does not fit in {expected}")
            }
        }
    }
}

/// One branch of the writer's `rec` union: its full name and the record type it maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Branch {
    /// The writer's full record name (or the Avro type of a branch that is no record).
    pub name: String,
    /// The model record type; `None` for a branch the oracle does not know.
    pub kind: Option<RecordKind>,
}

/// The branches of the `rec` union of a writer schema `sysflow.SysFlow`.
///
/// # Errors
/// When the schema is not a record with a union field `rec`.
pub fn branches(schema: &Schema) -> Result<Vec<Branch>, String> {
    let Schema::Record(top) = schema else {
        return Err("the writer schema is not a record".to_owned());
    };
    let Some(rec) = top.fields.iter().find(|f| f.name == "rec") else {
        return Err("no field rec".to_owned());
    };
    let Schema::Union(union) = &rec.schema else {
        return Err("rec is not a union".to_owned());
    };
    let mut definitions = std::collections::HashMap::new();
    collect_records(schema, &mut definitions);
    Ok(union
        .variants()
        .iter()
        .map(|variant| {
            let record = match variant {
                Schema::Record(r) => Some(r),
                Schema::Ref { name } => definitions.get(&name.fullname(None)).copied(),
                _ => None,
            };
            match record {
                Some(r) => {
                    let has = |field: &str| r.fields.iter().any(|f| f.name == field);
                    let kind = match RecordKind::from_name(&r.name.name) {
                        Some(RecordKind::ProcessFlow) if has("args") && !has("endTs") => {
                            Some(RecordKind::ProcessEvent)
                        }
                        kind => kind,
                    };
                    Branch {
                        name: r.name.fullname(None),
                        kind,
                    }
                }
                None => Branch {
                    name: format!("{variant:?}"),
                    kind: None,
                },
            }
        })
        .collect())
}

fn collect_records<'s>(
    schema: &'s Schema,
    out: &mut std::collections::HashMap<String, &'s apache_avro::schema::RecordSchema>,
) {
    match schema {
        Schema::Record(record) => {
            out.insert(record.name.fullname(None), record);
            for field in &record.fields {
                collect_records(&field.schema, out);
            }
        }
        Schema::Array(array) => collect_records(&array.items, out),
        Schema::Map(map) => collect_records(&map.types, out),
        Schema::Union(union) => {
            for variant in union.variants() {
                collect_records(variant, out);
            }
        }
        _ => {}
    }
}

/// The record of one `sysflow.SysFlow` datum.
///
/// # Errors
/// What does not map onto the model: `Process field "exe": expected string, found int`, or an
/// unknown branch.
pub fn record_from_value(value: Value, branches: &[Branch]) -> Result<Record, String> {
    let Value::Record(fields) = value else {
        return Err(format!("not a record: {}", describe(&value)));
    };
    let Some((_, Value::Union(index, inner))) = fields.into_iter().find(|(n, _)| n == "rec") else {
        return Err("no union field rec".to_owned());
    };
    let Some(branch) = usize::try_from(index).ok().and_then(|i| branches.get(i)) else {
        return Err(format!("union index {index} out of range"));
    };
    let Some(kind) = branch.kind else {
        return Err(format!("unknown record type {}", branch.name));
    };
    let simple = branch
        .name
        .rsplit('.')
        .next()
        .unwrap_or(&branch.name)
        .to_owned();
    let Value::Record(fields) = *inner else {
        return Err(format!("{simple}: not a record"));
    };
    let mut f = Fields::new(fields);
    let record = match kind {
        RecordKind::Header => header(&mut f).map(Record::Header),
        RecordKind::Container => container(&mut f).map(Record::Container),
        RecordKind::Pod => pod(&mut f).map(Record::Pod),
        RecordKind::Process => process(&mut f).map(Record::Process),
        RecordKind::File => file(&mut f).map(Record::File),
        RecordKind::ProcessEvent => process_event(&mut f).map(Record::ProcessEvent),
        RecordKind::ProcessFlow => process_flow(&mut f).map(Record::ProcessFlow),
        RecordKind::FileFlow => file_flow(&mut f).map(Record::FileFlow),
        RecordKind::FileEvent => file_event(&mut f).map(Record::FileEvent),
        RecordKind::NetworkFlow => network_flow(&mut f).map(Record::NetworkFlow),
        RecordKind::NetworkEvent => network_event(&mut f).map(Record::NetworkEvent),
        RecordKind::K8sEvent => k8s_event(&mut f).map(Record::K8sEvent),
    };
    record.map_err(|bad| format!("{simple} field \"{}\": {}", bad.path, bad.problem))
}

/// Every datum of a trace (an Avro object container file's bytes), in file order, as a
/// record or what does not map.
///
/// # Errors
/// When apache-avro cannot read the file (framing, schema, a datum): the oracle is for files
/// it reads whole.
pub fn records(bytes: &[u8]) -> Result<Vec<Result<Record, String>>, String> {
    let reader = apache_avro::Reader::new(Cursor::new(bytes)).map_err(|e| e.to_string())?;
    let branches = branches(reader.writer_schema())?;
    reader
        .map(|v| {
            v.map(|v| record_from_value(v, &branches))
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// Every record of the trace at `path`.
///
/// # Errors
/// When the file cannot be read, or any datum cannot be read or mapped.
pub fn read(path: &Path) -> Result<Vec<Record>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    records(&bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The bytes of every datum of a trace, in file order: the file's blocks (null or deflate),
/// each cut into datums where apache-avro's decoder, with the writer schema, ends each one.
///
/// # Errors
/// When the container or a datum cannot be read.
pub fn datums(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let reader = apache_avro::Reader::new(Cursor::new(bytes)).map_err(|e| e.to_string())?;
    let schema = reader.writer_schema().clone();
    let mut pos = 4usize;
    let long = |pos: &mut usize| -> Result<i64, String> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = *bytes.get(*pos).ok_or("truncated")?;
            *pos += 1;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(((v >> 1) as i64) ^ -((v & 1) as i64));
            }
        }
        Err("bad varint".to_owned())
    };
    let mut codec = "null".to_owned();
    loop {
        let n = long(&mut pos)?;
        if n == 0 {
            break;
        }
        if n < 0 {
            long(&mut pos)?;
        }
        for _ in 0..n.unsigned_abs() {
            let len = usize::try_from(long(&mut pos)?).map_err(|e| e.to_string())?;
            let key = bytes.get(pos..pos + len).ok_or("truncated")?.to_vec();
            pos += len;
            let len = usize::try_from(long(&mut pos)?).map_err(|e| e.to_string())?;
            let value = bytes.get(pos..pos + len).ok_or("truncated")?.to_vec();
            pos += len;
            if key == b"avro.codec" {
                codec = String::from_utf8_lossy(&value).into_owned();
            }
        }
    }
    pos += 16;
    let mut out = Vec::new();
    while pos < bytes.len() {
        let count = long(&mut pos)?;
        let size = usize::try_from(long(&mut pos)?).map_err(|e| e.to_string())?;
        let raw = bytes.get(pos..pos + size).ok_or("truncated block")?;
        pos += size + 16;
        let mut data = Vec::new();
        match codec.as_str() {
            "null" => data.extend_from_slice(raw),
            "deflate" => {
                flate2::read::DeflateDecoder::new(raw)
                    .read_to_end(&mut data)
                    .map_err(|e| e.to_string())?;
            }
            other => return Err(format!("codec {other}")),
        }
        let mut rest: &[u8] = &data;
        for _ in 0..count {
            let before = rest.len();
            apache_avro::from_avro_datum(&schema, &mut rest, None).map_err(|e| e.to_string())?;
            let start = data.len() - before;
            out.push(data[start..data.len() - rest.len()].to_vec());
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Mapping tables: one per record type, one line per model field.
//   f.req(AVRO_NAME, CONVERT)          a field every schema version has;
//   f.or(AVRO_NAME, CONVERT, DEFAULT)  a field older versions lack, with the reference default.
// A renamed field: f.req(["newName", "oldName"], CONVERT).
// ---------------------------------------------------------------------------------------------

/// `sysflow.entity.SFHeader`.
fn header(f: &mut Fields) -> Conv<SfHeader> {
    Ok(SfHeader {
        version: f.req("version", long)?,
        exporter: f.req("exporter", string)?,
        ip: f.or("ip", string, "NA".to_owned())?, // schema 2+
        filename: f.or("filename", string, String::new())?, // schema 3+
    })
}

/// `sysflow.entity.Container`.
fn container(f: &mut Fields) -> Conv<Container> {
    Ok(Container {
        id: f.req("id", string)?,
        name: f.req("name", string)?,
        image: f.req("image", string)?,
        imageid: f.req("imageid", string)?,
        r#type: f.req("type", symbol::<ContainerType>)?,
        privileged: f.or("privileged", boolean, false)?, // not in the January-2019 layout
        pod_id: f.or("podId", nullable(string), None)?,  // schema 4+
    })
}

/// `sysflow.entity.Pod` (schema 4+).
fn pod(f: &mut Fields) -> Conv<Pod> {
    Ok(Pod {
        ts: f.req("ts", timestamp)?,
        id: f.req("id", string)?,
        name: f.req("name", string)?,
        node_name: f.req("nodeName", string)?,
        host_ip: f.req("hostIP", array(long))?,
        internal_ip: f.req("internalIP", array(long))?,
        namespace: f.req("namespace", string)?,
        restart_count: f.req("restartCount", long)?,
        labels: f.req("labels", string_map)?,
        selectors: f.req("selectors", string_map)?,
        services: f.req("services", array(record(service)))?,
    })
}

/// `sysflow.entity.Service`, inside a Pod.
fn service(f: &mut Fields) -> Conv<Service> {
    Ok(Service {
        name: f.req("name", string)?,
        id: f.req("id", string)?,
        namespace: f.req("namespace", string)?,
        port_list: f.req("portList", array(record(port)))?,
        cluster_ip: f.req("clusterIP", array(long))?,
    })
}

/// `sysflow.entity.Port`, inside a Service.
fn port(f: &mut Fields) -> Conv<Port> {
    Ok(Port {
        port: f.req("port", int)?,
        target_port: f.req("targetPort", int)?,
        node_port: f.req("nodePort", int)?,
        proto: f.req("proto", string)?,
    })
}

/// `sysflow.entity.Process`.
fn process(f: &mut Fields) -> Conv<Process> {
    Ok(Process {
        // The January-2019 layout calls it `type` (enum ActionType, the same symbols).
        state: f.req(["state", "type"], symbol::<ObjectState>)?,
        oid: f.req("oid", record(oid))?,
        poid: f.req("poid", nullable(record(oid)))?,
        ts: f.req("ts", timestamp)?,
        exe: f.req("exe", trimmed_string)?,
        exe_args: f.req("exeArgs", trimmed_string)?,
        uid: f.req("uid", int)?,
        user_name: f.req("userName", string)?,
        gid: f.req("gid", int)?,
        group_name: f.req("groupName", string)?,
        tty: f.or("tty", boolean, false)?, // not in the January-2019 layout
        container_id: f.req("containerId", nullable(string))?,
        entry: f.or("entry", boolean, false)?,    // schema 2+
        cwd: f.or("cwd", string, String::new())?, // schema 5
        env: f.or("env", array(string), Vec::new())?, // schema 5
    })
}

/// `sysflow.type.OID`.
fn oid(f: &mut Fields) -> Conv<Oid> {
    Ok(Oid {
        create_ts: f.req("createTS", timestamp)?,
        hpid: f.req("hpid", long)?,
    })
}

/// `sysflow.entity.File`.
fn file(f: &mut Fields) -> Conv<File> {
    Ok(File {
        state: f.req("state", symbol::<ObjectState>)?,
        oid: f.req("oid", foid)?,
        ts: f.req("ts", timestamp)?,
        restype: f.req("restype", int)?,
        path: f.req("path", string)?,
        container_id: f.req("containerId", nullable(string))?,
    })
}

/// `sysflow.event.ProcessEvent`, and the earliest layouts' `sysflow.flow.ProcessFlow` that has
/// its fields (the January-2019 one with `type`, enum EventType, for `opFlags`).
fn process_event(f: &mut Fields) -> Conv<ProcessEvent> {
    Ok(ProcessEvent {
        proc_oid: f.req("procOID", record(oid))?,
        ts: f.req("ts", timestamp)?,
        tid: f.req("tid", long)?,
        op_flags: f.req(["opFlags", "type"], event_type_or_int)?,
        args: f.req("args", array(string))?,
        ret: f.req("ret", int)?,
    })
}

/// `sysflow.flow.ProcessFlow` (schema 2+).
fn process_flow(f: &mut Fields) -> Conv<ProcessFlow> {
    Ok(ProcessFlow {
        proc_oid: f.req("procOID", record(oid))?,
        ts: f.req("ts", timestamp)?,
        num_threads_cloned: f.req("numThreadsCloned", long)?,
        op_flags: f.req("opFlags", int)?,
        end_ts: f.req("endTs", timestamp)?,
        num_threads_exited: f.req("numThreadsExited", long)?,
        num_clone_errors: f.req("numCloneErrors", long)?,
    })
}

/// `sysflow.flow.FileFlow`.
fn file_flow(f: &mut Fields) -> Conv<FileFlow> {
    Ok(FileFlow {
        proc_oid: f.req("procOID", record(oid))?,
        ts: f.req("ts", timestamp)?,
        tid: f.req("tid", long)?,
        op_flags: f.req("opFlags", int)?,
        open_flags: f.or("openFlags", int, 0)?, // not in the earliest layout
        end_ts: f.req("endTs", timestamp)?,
        file_oid: f.req("fileOID", foid)?,
        fd: f.req("fd", int)?,
        num_r_recv_ops: f.req("numRRecvOps", long)?,
        num_w_send_ops: f.req("numWSendOps", long)?,
        num_r_recv_bytes: f.req("numRRecvBytes", long)?,
        num_w_send_bytes: f.req("numWSendBytes", long)?,
    })
}

/// `sysflow.event.FileEvent`.
fn file_event(f: &mut Fields) -> Conv<FileEvent> {
    Ok(FileEvent {
        proc_oid: f.req("procOID", record(oid))?,
        ts: f.req("ts", timestamp)?,
        tid: f.req("tid", long)?,
        op_flags: f.req("opFlags", int)?,
        file_oid: f.req("fileOID", foid)?,
        ret: f.req("ret", int)?,
        new_file_oid: f.or("newFileOID", nullable(foid), None)?,
    })
}

/// `sysflow.flow.NetworkFlow`.
fn network_flow(f: &mut Fields) -> Conv<NetworkFlow> {
    Ok(NetworkFlow {
        proc_oid: f.req("procOID", record(oid))?,
        ts: f.req("ts", timestamp)?,
        tid: f.req("tid", long)?,
        op_flags: f.req("opFlags", int)?,
        end_ts: f.req("endTs", timestamp)?,
        sip: f.req("sip", int)?,
        sport: f.req("sport", int)?,
        dip: f.req("dip", int)?,
        dport: f.req("dport", int)?,
        proto: f.req("proto", int)?,
        fd: f.or("fd", int, 0)?, // not in the earliest layout
        num_r_recv_ops: f.req("numRRecvOps", long)?,
        num_w_send_ops: f.req("numWSendOps", long)?,
        num_r_recv_bytes: f.req("numRRecvBytes", long)?,
        num_w_send_bytes: f.req("numWSendBytes", long)?,
    })
}

/// `sysflow.event.NetworkEvent`.
fn network_event(f: &mut Fields) -> Conv<NetworkEvent> {
    Ok(NetworkEvent {
        proc_oid: f.req("procOID", record(oid))?,
        ts: f.req("ts", timestamp)?,
        tid: f.req("tid", long)?,
        op_flags: f.req("opFlags", int)?,
        sip: f.req("sip", int)?,
        sport: f.req("sport", int)?,
        dip: f.req("dip", int)?,
        dport: f.req("dport", int)?,
        proto: f.req("proto", int)?,
        ret: f.req("ret", int)?,
    })
}

/// `sysflow.event.K8sEvent` (schema 4+).
fn k8s_event(f: &mut Fields) -> Conv<K8sEvent> {
    Ok(K8sEvent {
        kind: f.req("kind", symbol::<K8sComponent>)?,
        action: f.req("action", symbol::<K8sAction>)?,
        ts: f.req("ts", timestamp)?,
        message: f.req("message", string)?,
    })
}

/// `opFlags`, or the January-2019 layout's `type` (enum EventType: CLONE, EXEC, EXIT).
fn event_type_or_int(value: Value) -> Conv<i32> {
    match value {
        Value::Enum(_, symbol) => match symbol.as_str() {
            "CLONE" => Ok(op_flags::CLONE),
            "EXEC" => Ok(op_flags::EXEC),
            "EXIT" => Ok(op_flags::EXIT),
            _ => Err(Bad::new(FieldProblem::UnknownSymbol {
                enum_name: "EventType",
                symbol,
            })),
        },
        other => int(other),
    }
}

// ---------------------------------------------------------------------------------------------
// Field access and value conversions
// ---------------------------------------------------------------------------------------------

/// A conversion failure, with the path of the field inside the record.
#[derive(Debug)]
struct Bad {
    path: String,
    problem: FieldProblem,
}

impl Bad {
    fn new(problem: FieldProblem) -> Self {
        Bad {
            path: String::new(),
            problem,
        }
    }

    fn wrong(expected: &'static str, found: &Value) -> Self {
        Bad::new(FieldProblem::WrongType {
            expected,
            found: describe(found),
        })
    }

    /// Prefixes the path with a field name.
    fn in_field(mut self, field: &str) -> Self {
        self.path = if self.path.is_empty() {
            field.to_owned()
        } else if self.path.starts_with('[') {
            format!("{field}{}", self.path)
        } else {
            format!("{field}.{}", self.path)
        };
        self
    }

    /// Prefixes the path with an array index.
    fn in_item(mut self, index: usize) -> Self {
        self.path = if self.path.is_empty() || self.path.starts_with('[') {
            format!("[{index}]{}", self.path)
        } else {
            format!("[{index}].{}", self.path)
        };
        self
    }
}

type Conv<T> = Result<T, Bad>;

/// The names a model field may have in a writer's record: the current name first, then older
/// ones.
trait FieldNames {
    fn names(&self) -> &[&'static str];
}

impl FieldNames for &'static str {
    fn names(&self) -> &[&'static str] {
        std::slice::from_ref(self)
    }
}

impl<const N: usize> FieldNames for [&'static str; N] {
    fn names(&self) -> &[&'static str] {
        self
    }
}

/// The fields of one writer record, taken by name.
struct Fields {
    fields: Vec<(String, Value)>,
    /// Where to start the next search: fields are usually taken in writer order.
    cursor: usize,
}

impl Fields {
    fn new(fields: Vec<(String, Value)>) -> Self {
        Fields { fields, cursor: 0 }
    }

    fn take(&mut self, names: &[&'static str]) -> Option<Value> {
        let len = self.fields.len();
        for name in names {
            let found = (0..len)
                .map(|i| (self.cursor + i) % len)
                .find(|&i| self.fields.get(i).is_some_and(|(field, _)| field == name));
            if let Some(i) = found
                && let Some((_, value)) = self.fields.get_mut(i)
            {
                self.cursor = i + 1;
                return Some(std::mem::replace(value, Value::Null));
            }
        }
        None
    }

    /// A field every schema version has.
    fn req<T>(
        &mut self,
        names: impl FieldNames,
        convert: impl FnOnce(Value) -> Conv<T>,
    ) -> Conv<T> {
        let names = names.names();
        let first = names.first().copied().unwrap_or_default();
        match self.take(names) {
            Some(value) => convert(value).map_err(|bad| bad.in_field(first)),
            None => Err(Bad::new(FieldProblem::Missing).in_field(first)),
        }
    }

    /// A field older schema versions lack: `default` when the writer's record has none.
    fn or<T>(
        &mut self,
        names: impl FieldNames,
        convert: impl FnOnce(Value) -> Conv<T>,
        default: T,
    ) -> Conv<T> {
        let names = names.names();
        let first = names.first().copied().unwrap_or_default();
        match self.take(names) {
            Some(value) => convert(value).map_err(|bad| bad.in_field(first)),
            None => Ok(default),
        }
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Boolean(_) => "boolean".to_owned(),
        Value::Int(_) => "int".to_owned(),
        Value::Long(_) => "long".to_owned(),
        Value::Float(_) => "float".to_owned(),
        Value::Double(_) => "double".to_owned(),
        Value::Bytes(b) => format!("bytes({})", b.len()),
        Value::String(_) => "string".to_owned(),
        Value::Fixed(n, _) => format!("fixed({n})"),
        Value::Enum(_, symbol) => format!("enum symbol {symbol:?}"),
        Value::Union(_, inner) => describe(inner),
        Value::Array(_) => "array".to_owned(),
        Value::Map(_) => "map".to_owned(),
        Value::Record(_) => "record".to_owned(),
        other => {
            // Logical types: the variant name is the clearest description.
            let debug = format!("{other:?}");
            debug.split('(').next().unwrap_or("value").to_owned()
        }
    }
}

// Every conversion also accepts its value inside a union (`["null", T]` where the model wants
// a plain `T`): the `Value::Union` arms.

/// A `long`, whatever logical type the writer declared (timestamps are nanoseconds even where
/// a writer says `timestamp-millis`), or an `int`.
fn long(value: Value) -> Conv<i64> {
    match value {
        Value::Long(v)
        | Value::TimestampMillis(v)
        | Value::TimestampMicros(v)
        | Value::TimestampNanos(v)
        | Value::LocalTimestampMillis(v)
        | Value::LocalTimestampMicros(v)
        | Value::LocalTimestampNanos(v)
        | Value::TimeMicros(v) => Ok(v),
        Value::Int(v) | Value::Date(v) | Value::TimeMillis(v) => Ok(i64::from(v)),
        Value::Union(_, inner) => long(*inner),
        other => Err(Bad::wrong("long", &other)),
    }
}

/// A timestamp: nanoseconds since the epoch, the raw `long` whatever the declared logical type.
fn timestamp(value: Value) -> Conv<i64> {
    long(value)
}

/// An `int`, or a `long` that fits.
fn int(value: Value) -> Conv<i32> {
    match value {
        Value::Int(v) => Ok(v),
        Value::Long(v) => i32::try_from(v).map_err(|_| {
            Bad::new(FieldProblem::OutOfRange {
                expected: "int",
                value: v,
            })
        }),
        Value::Union(_, inner) => int(*inner),
        other => Err(Bad::wrong("int", &other)),
    }
}

fn boolean(value: Value) -> Conv<bool> {
    match value {
        Value::Boolean(b) => Ok(b),
        Value::Union(_, inner) => boolean(*inner),
        other => Err(Bad::wrong("boolean", &other)),
    }
}

fn string(value: Value) -> Conv<String> {
    match value {
        Value::String(s) => Ok(s),
        Value::Union(_, inner) => string(*inner),
        other => Err(Bad::wrong("string", &other)),
    }
}

/// A string trimmed of surrounding white space (Go's `strings.TrimSpace`; Rust's `trim` uses
/// the same Unicode `White_Space` set).
fn trimmed_string(value: Value) -> Conv<String> {
    let s = string(value)?;
    let trimmed = s.trim();
    Ok(if trimmed.len() == s.len() {
        s
    } else {
        trimmed.to_owned()
    })
}

/// A FOID: `fixed(20)` (a 20-byte `bytes` is accepted too).
fn foid(value: Value) -> Conv<Foid> {
    match value {
        Value::Fixed(_, bytes) | Value::Bytes(bytes) if bytes.len() == 20 => {
            let mut id = [0u8; 20];
            id.copy_from_slice(&bytes);
            Ok(Foid(id))
        }
        Value::Union(_, inner) => foid(*inner),
        other => Err(Bad::wrong("fixed(20)", &other)),
    }
}

/// `["null", T]`: `None` for null.
fn nullable<T>(convert: impl FnOnce(Value) -> Conv<T>) -> impl FnOnce(Value) -> Conv<Option<T>> {
    move |value| match value {
        Value::Null => Ok(None),
        Value::Union(_, inner) if matches!(*inner, Value::Null) => Ok(None),
        other => convert(other).map(Some),
    }
}

fn array<T>(convert: impl Fn(Value) -> Conv<T>) -> impl Fn(Value) -> Conv<Vec<T>> {
    fn items<T>(convert: &impl Fn(Value) -> Conv<T>, value: Value) -> Conv<Vec<T>> {
        match value {
            Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, item)| convert(item).map_err(|bad| bad.in_item(i)))
                .collect(),
            Value::Union(_, inner) => items(convert, *inner),
            other => Err(Bad::wrong("array", &other)),
        }
    }
    move |value| items(&convert, value)
}

/// A nested record, through its mapping table.
fn record<T>(table: fn(&mut Fields) -> Conv<T>) -> impl Fn(Value) -> Conv<T> {
    fn fields<T>(table: fn(&mut Fields) -> Conv<T>, value: Value) -> Conv<T> {
        match value {
            Value::Record(values) => table(&mut Fields::new(values)),
            Value::Union(_, inner) => fields(table, *inner),
            other => Err(Bad::wrong("record", &other)),
        }
    }
    move |value| fields(table, value)
}

/// A `map<string>`, sorted by key (`apache-avro` decodes maps into a `HashMap`).
fn string_map(value: Value) -> Conv<Vec<(String, String)>> {
    match value {
        Value::Map(map) => {
            let mut pairs = map
                .into_iter()
                .map(|(key, value)| match string(value) {
                    Ok(v) => Ok((key, v)),
                    Err(bad) => Err(bad.in_field(&key)),
                })
                .collect::<Conv<Vec<_>>>()?;
            pairs.sort();
            Ok(pairs)
        }
        Value::Union(_, inner) => string_map(*inner),
        other => Err(Bad::wrong("map", &other)),
    }
}

/// A model enum, by Avro symbol.
trait Symbol: Sized {
    const ENUM_NAME: &'static str;
    fn from_symbol(symbol: &str) -> Option<Self>;
}

macro_rules! symbol_enums {
    ($($ty:ty => $name:literal),+ $(,)?) => {$(
        impl Symbol for $ty {
            const ENUM_NAME: &'static str = $name;
            fn from_symbol(symbol: &str) -> Option<Self> {
                <$ty>::from_symbol(symbol)
            }
        }
    )+};
}

symbol_enums! {
    ObjectState => "SFObjectState",
    ContainerType => "ContainerType",
    K8sComponent => "K8sComponent",
    K8sAction => "K8sAction",
}

fn symbol<T: Symbol>(value: Value) -> Conv<T> {
    match value {
        Value::Enum(_, symbol) | Value::String(symbol) => {
            T::from_symbol(&symbol).ok_or(Bad::new(FieldProblem::UnknownSymbol {
                enum_name: T::ENUM_NAME,
                symbol,
            }))
        }
        Value::Union(_, inner) => symbol(*inner),
        other => Err(Bad::wrong("enum", &other)),
    }
}
