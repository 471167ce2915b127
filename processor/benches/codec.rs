//! The wire codec chosen by measurement: encode and decode time and encoded size of realistic
//! SysFlow records (a file flow, a network flow, a process with its environment, a file) with
//! the project's codec (`postcard`, through `sf_processor::codec`) and the candidates
//! `bitcode` (through serde, a drop-in for the model's derives, and through its own derive)
//! and `wincode` (bincode's wire format, its own derive).
//!
//! The candidates with their own derive run on mirror types below (same fields, same types,
//! same order as `sf_processor::model`): using them for real would mean deriving their traits
//! on the model. Encoding goes into one reused buffer, as the reader does; decoding reads a
//! byte slice, as a handler reads a ring frame.
//!
//! ```text
//! cargo bench -p sf-processor --bench codec
//! ```
//!
//! The encoded sizes are printed once before the timings.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group};
use sf_processor::codec;
use sf_processor::model::{
    File, FileFlow, Foid, NetworkFlow, ObjectState, Oid, Process, Record, op_flags,
};

/// The same shapes as the model, with the candidates' own derives.
mod mirror {
    use bitcode::{Decode, Encode};
    use wincode::{SchemaRead, SchemaWrite};

    #[derive(Debug, Clone, PartialEq, Encode, Decode, SchemaWrite, SchemaRead)]
    pub struct Oid {
        pub create_ts: i64,
        pub hpid: i64,
    }

    #[derive(Debug, Clone, PartialEq, Encode, Decode, SchemaWrite, SchemaRead)]
    pub struct Foid(pub [u8; 20]);

    #[derive(Debug, Clone, PartialEq, Encode, Decode, SchemaWrite, SchemaRead)]
    pub enum ObjectState {
        Created,
        Modified,
        Reup,
    }

    #[derive(Debug, Clone, PartialEq, Encode, Decode, SchemaWrite, SchemaRead)]
    pub struct Process {
        pub state: ObjectState,
        pub oid: Oid,
        pub poid: Option<Oid>,
        pub ts: i64,
        pub exe: String,
        pub exe_args: String,
        pub uid: i32,
        pub user_name: String,
        pub gid: i32,
        pub group_name: String,
        pub tty: bool,
        pub container_id: Option<String>,
        pub entry: bool,
        pub cwd: String,
        pub env: Vec<String>,
    }

    #[derive(Debug, Clone, PartialEq, Encode, Decode, SchemaWrite, SchemaRead)]
    pub struct File {
        pub state: ObjectState,
        pub oid: Foid,
        pub ts: i64,
        pub restype: i32,
        pub path: String,
        pub container_id: Option<String>,
    }

    #[derive(Debug, Clone, PartialEq, Encode, Decode, SchemaWrite, SchemaRead)]
    pub struct FileFlow {
        pub proc_oid: Oid,
        pub ts: i64,
        pub tid: i64,
        pub op_flags: i32,
        pub open_flags: i32,
        pub end_ts: i64,
        pub file_oid: Foid,
        pub fd: i32,
        pub num_r_recv_ops: i64,
        pub num_w_send_ops: i64,
        pub num_r_recv_bytes: i64,
        pub num_w_send_bytes: i64,
    }

    #[derive(Debug, Clone, PartialEq, Encode, Decode, SchemaWrite, SchemaRead)]
    pub struct NetworkFlow {
        pub proc_oid: Oid,
        pub ts: i64,
        pub tid: i64,
        pub op_flags: i32,
        pub end_ts: i64,
        pub sip: i32,
        pub sport: i32,
        pub dip: i32,
        pub dport: i32,
        pub proto: i32,
        pub fd: i32,
        pub num_r_recv_ops: i64,
        pub num_w_send_ops: i64,
        pub num_r_recv_bytes: i64,
        pub num_w_send_bytes: i64,
    }

    /// The four variants of `Record` measured here, at their positions in the model's enum
    /// (the tag values differ from the model's only for the variants left out).
    #[derive(Debug, Clone, PartialEq, Encode, Decode, SchemaWrite, SchemaRead)]
    pub enum Record {
        Process(Process),
        File(File),
        FileFlow(FileFlow),
        NetworkFlow(NetworkFlow),
    }
}

fn oid(hpid: i64) -> Oid {
    Oid {
        create_ts: 1_700_000_000_123_456_789 + hpid * 1_000,
        hpid,
    }
}

/// Realistic records, as the collector writes them: nanosecond timestamps, 20-byte FOIDs, a
/// containerised process with a typical environment.
fn records() -> Vec<(&'static str, Record)> {
    let ts = 1_700_000_123_456_789_012;
    let file_flow = FileFlow {
        proc_oid: oid(23_456),
        ts,
        tid: 23_461,
        op_flags: op_flags::OPEN | op_flags::READ_RECV | op_flags::CLOSE,
        open_flags: 0o100_000,
        end_ts: ts + 1_234_567,
        file_oid: Foid([0x3c; 20]),
        fd: 7,
        num_r_recv_ops: 12,
        num_w_send_ops: 0,
        num_r_recv_bytes: 49_152,
        num_w_send_bytes: 0,
    };
    let network_flow = NetworkFlow {
        proc_oid: oid(23_456),
        ts,
        tid: 23_462,
        op_flags: op_flags::CONNECT | op_flags::WRITE_SEND | op_flags::READ_RECV,
        end_ts: ts + 98_765_432,
        sip: 0x0a00_0205,
        sport: 51_234,
        dip: 0x5db8_d822,
        dport: 443,
        proto: 6,
        fd: 12,
        num_r_recv_ops: 40,
        num_w_send_ops: 9,
        num_r_recv_bytes: 183_320,
        num_w_send_bytes: 2_113,
    };
    let env = [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOSTNAME=web-7d9f8b6c5-x2x8k",
        "HOME=/root",
        "LANG=C.UTF-8",
        "KUBERNETES_SERVICE_HOST=10.96.0.1",
        "KUBERNETES_SERVICE_PORT=443",
        "NGINX_VERSION=1.25.3",
        "TERM=xterm",
    ];
    let process = Process {
        state: ObjectState::Created,
        oid: oid(23_456),
        poid: Some(oid(23_401)),
        ts,
        exe: "/usr/bin/curl".into(),
        exe_args: "-sS --max-time 5 https://api.example.com/v1/health".into(),
        uid: 1000,
        user_name: "app".into(),
        gid: 1000,
        group_name: "app".into(),
        tty: false,
        container_id: Some("3f4e2a1b9c8d".into()),
        entry: false,
        cwd: "/srv/app".into(),
        env: env.iter().map(|s| s.to_string()).collect(),
    };
    let file = File {
        state: ObjectState::Created,
        oid: Foid([0x3c; 20]),
        ts,
        restype: i32::from(b'f'),
        path: "/srv/app/config/settings.yaml".into(),
        container_id: Some("3f4e2a1b9c8d".into()),
    };
    vec![
        ("FileFlow", Record::FileFlow(file_flow)),
        ("NetworkFlow", Record::NetworkFlow(network_flow)),
        ("Process (8 env vars)", Record::Process(process)),
        ("File", Record::File(file)),
    ]
}

fn m_oid(o: &Oid) -> mirror::Oid {
    mirror::Oid {
        create_ts: o.create_ts,
        hpid: o.hpid,
    }
}

fn m_state(s: ObjectState) -> mirror::ObjectState {
    match s {
        ObjectState::Created => mirror::ObjectState::Created,
        ObjectState::Modified => mirror::ObjectState::Modified,
        ObjectState::Reup => mirror::ObjectState::Reup,
    }
}

/// The mirror of one of the records of [`records`].
fn to_mirror(record: &Record) -> mirror::Record {
    match record {
        Record::FileFlow(f) => mirror::Record::FileFlow(mirror::FileFlow {
            proc_oid: m_oid(&f.proc_oid),
            ts: f.ts,
            tid: f.tid,
            op_flags: f.op_flags,
            open_flags: f.open_flags,
            end_ts: f.end_ts,
            file_oid: mirror::Foid(f.file_oid.0),
            fd: f.fd,
            num_r_recv_ops: f.num_r_recv_ops,
            num_w_send_ops: f.num_w_send_ops,
            num_r_recv_bytes: f.num_r_recv_bytes,
            num_w_send_bytes: f.num_w_send_bytes,
        }),
        Record::NetworkFlow(n) => mirror::Record::NetworkFlow(mirror::NetworkFlow {
            proc_oid: m_oid(&n.proc_oid),
            ts: n.ts,
            tid: n.tid,
            op_flags: n.op_flags,
            end_ts: n.end_ts,
            sip: n.sip,
            sport: n.sport,
            dip: n.dip,
            dport: n.dport,
            proto: n.proto,
            fd: n.fd,
            num_r_recv_ops: n.num_r_recv_ops,
            num_w_send_ops: n.num_w_send_ops,
            num_r_recv_bytes: n.num_r_recv_bytes,
            num_w_send_bytes: n.num_w_send_bytes,
        }),
        Record::Process(p) => mirror::Record::Process(mirror::Process {
            state: m_state(p.state),
            oid: m_oid(&p.oid),
            poid: p.poid.as_ref().map(m_oid),
            ts: p.ts,
            exe: p.exe.clone(),
            exe_args: p.exe_args.clone(),
            uid: p.uid,
            user_name: p.user_name.clone(),
            gid: p.gid,
            group_name: p.group_name.clone(),
            tty: p.tty,
            container_id: p.container_id.clone(),
            entry: p.entry,
            cwd: p.cwd.clone(),
            env: p.env.clone(),
        }),
        Record::File(f) => mirror::Record::File(mirror::File {
            state: m_state(f.state),
            oid: mirror::Foid(f.oid.0),
            ts: f.ts,
            restype: f.restype,
            path: f.path.clone(),
            container_id: f.container_id.clone(),
        }),
        other => panic!("no mirror for {other:?}"),
    }
}

// The codecs, each as the pipeline would use it: encode into a reused buffer, decode a slice.
// Not inlined, so that callgrind gives instructions per call (see the README).

#[inline(never)]
fn postcard_encode(r: &Record, buf: &mut Vec<u8>) {
    codec::encode(r, buf).expect("postcard encode");
}

#[inline(never)]
fn postcard_decode(bytes: &[u8]) -> Record {
    codec::decode(bytes).expect("postcard decode")
}

#[inline(never)]
fn bitcode_serde_encode(r: &Record, buf: &mut Vec<u8>) {
    // bitcode's serde API has no encode-into-buffer: one Vec per record.
    *buf = bitcode::serialize(r).expect("bitcode serde encode");
}

#[inline(never)]
fn bitcode_serde_decode(bytes: &[u8]) -> Record {
    bitcode::deserialize(bytes).expect("bitcode serde decode")
}

#[inline(never)]
fn bitcode_encode(r: &mirror::Record, buffer: &mut bitcode::Buffer, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(buffer.encode(r));
}

#[inline(never)]
fn bitcode_decode(buffer: &mut bitcode::Buffer, bytes: &[u8]) -> mirror::Record {
    buffer.decode(bytes).expect("bitcode decode")
}

#[inline(never)]
fn wincode_encode(r: &mirror::Record, buf: &mut Vec<u8>) {
    buf.clear();
    wincode::serialize_into(wincode::io::Cursor::new(&mut *buf), r).expect("wincode encode");
}

#[inline(never)]
fn wincode_decode(bytes: &[u8]) -> mirror::Record {
    wincode::deserialize(bytes).expect("wincode decode")
}

/// Checks that every codec round-trips every record, prints the encoded sizes.
fn check_and_print_sizes(records: &[(&str, Record)]) {
    eprintln!(
        "| {:<20} | {:>8} | {:>14} | {:>15} | {:>15} |",
        "record", "postcard", "bitcode (serde)", "bitcode (derive)", "wincode (derive)"
    );
    let mut buf = Vec::new();
    let mut buffer = bitcode::Buffer::new();
    for (name, r) in records {
        let m = to_mirror(r);
        postcard_encode(r, &mut buf);
        let postcard = buf.len();
        assert_eq!(&postcard_decode(&buf), r);
        bitcode_serde_encode(r, &mut buf);
        let bitcode_serde = buf.len();
        assert_eq!(&bitcode_serde_decode(&buf), r);
        bitcode_encode(&m, &mut buffer, &mut buf);
        let bitcode_derive = buf.len();
        assert_eq!(bitcode_decode(&mut buffer, &buf), m);
        wincode_encode(&m, &mut buf);
        let wincode = buf.len();
        assert_eq!(wincode_decode(&buf), m);
        eprintln!(
            "| {name:<20} | {postcard:>6} B | {bitcode_serde:>12} B | {bitcode_derive:>14} B | {wincode:>14} B |"
        );
    }
}

fn codecs(c: &mut Criterion) {
    let records = records();
    check_and_print_sizes(&records);
    for (name, record) in &records {
        let m = to_mirror(record);
        let mut group = c.benchmark_group(format!("codec {name}"));
        group.throughput(Throughput::Elements(1));

        let mut buf = Vec::with_capacity(1024);
        group.bench_function("postcard encode", |b| {
            b.iter(|| postcard_encode(black_box(record), &mut buf))
        });
        postcard_encode(record, &mut buf);
        group.bench_function("postcard decode", |b| {
            b.iter(|| postcard_decode(black_box(&buf)))
        });

        group.bench_function("bitcode (serde) encode", |b| {
            b.iter(|| bitcode_serde_encode(black_box(record), &mut buf))
        });
        bitcode_serde_encode(record, &mut buf);
        group.bench_function("bitcode (serde) decode", |b| {
            b.iter(|| bitcode_serde_decode(black_box(&buf)))
        });

        let mut buffer = bitcode::Buffer::new();
        let mut out = Vec::with_capacity(1024);
        group.bench_function("bitcode (derive) encode", |b| {
            b.iter(|| bitcode_encode(black_box(&m), &mut buffer, &mut out))
        });
        bitcode_encode(&m, &mut buffer, &mut out);
        group.bench_function("bitcode (derive) decode", |b| {
            b.iter(|| bitcode_decode(&mut buffer, black_box(&out)))
        });

        group.bench_function("wincode (derive) encode", |b| {
            b.iter(|| wincode_encode(black_box(&m), &mut buf))
        });
        wincode_encode(&m, &mut buf);
        group.bench_function("wincode (derive) decode", |b| {
            b.iter(|| wincode_decode(black_box(&buf)))
        });
        group.finish();
    }
}

/// `SF_CODEC_COUNT=I` (I = 0..3, the record of [`records`]): every codec encodes and decodes
/// that record [`COUNT_CALLS`] times, for instruction counts per call under callgrind (the
/// inclusive count of each `*_encode` / `*_decode` function divided by the calls).
const COUNT_CALLS: usize = 100_000;

fn count_mode(index: usize) {
    let records = records();
    let Some((name, record)) = records.get(index) else {
        eprintln!("SF_CODEC_COUNT must be 0..{}", records.len() - 1);
        std::process::exit(2);
    };
    let m = to_mirror(record);
    // One output buffer per codec, reused from call to call.
    let mut bufs: [Vec<u8>; 4] = Default::default();
    let mut buffer = bitcode::Buffer::new();
    for _ in 0..COUNT_CALLS {
        postcard_encode(black_box(record), &mut bufs[0]);
        black_box(postcard_decode(black_box(&bufs[0])));
        bitcode_serde_encode(black_box(record), &mut bufs[1]);
        black_box(bitcode_serde_decode(black_box(&bufs[1])));
        bitcode_encode(black_box(&m), &mut buffer, &mut bufs[2]);
        black_box(bitcode_decode(&mut buffer, black_box(&bufs[2])));
        wincode_encode(black_box(&m), &mut bufs[3]);
        black_box(wincode_decode(black_box(&bufs[3])));
    }
    eprintln!(
        "sizes: postcard {} bitcode_serde {} bitcode {} wincode {}",
        bufs[0].len(),
        bufs[1].len(),
        bufs[2].len(),
        bufs[3].len()
    );
    eprintln!("{name}: {COUNT_CALLS} calls of each codec function");
}

criterion_group!(benches, codecs);

fn main() {
    if let Ok(index) = std::env::var("SF_CODEC_COUNT") {
        count_mode(index.parse().unwrap_or(usize::MAX));
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
