//! Decoding speed of one generated SysFlow trace (schema 5): the reader's
//! (`sf_reader::trace`), `apache-avro`'s generic reader (one `Value` per datum) and the tests'
//! oracle (`sf_oracle`, apache-avro plus a mapping onto the model); plus our decoder on one
//! in-memory block, without file reading or inflating.
//!
//! Sizes are kept small so that `cargo test --benches` stays quick; `bench/run.sh` measures
//! a 5-million-record trace end to end.
//!
//! ```text
//! cargo bench -p sf-reader --bench decode
//! ```

use std::fs::File;
use std::hint::black_box;
use std::io::BufReader;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sf_gen::{GenCodec, GenConfig, Generator};
use sf_processor::model::Record;
use sf_reader::fast;

const RECORDS: u64 = 20_000;

fn config(codec: GenCodec) -> GenConfig {
    GenConfig {
        records: RECORDS,
        seed: 42,
        containers: 4,
        pods: false,
        codec,
    }
}

fn write(dir: &Path, codec: GenCodec) -> std::path::PathBuf {
    let path = dir.join(format!("bench-{}.sf", codec.name()));
    let file = File::create(&path).expect("create the trace");
    sf_gen::write_trace(&config(codec), std::io::BufWriter::new(file)).expect("generate");
    path
}

fn fast_file(path: &Path) -> u64 {
    let mut n = 0;
    for r in sf_reader::trace::open(path).expect("open") {
        black_box(r.expect("record"));
        n += 1;
    }
    n
}

fn apache_values(path: &Path) -> u64 {
    let file = BufReader::new(File::open(path).expect("open"));
    let mut n = 0;
    for v in apache_avro::Reader::new(file).expect("header") {
        black_box(v.expect("value"));
        n += 1;
    }
    n
}

fn oracle(path: &Path) -> u64 {
    let records = sf_oracle::read(path).expect("oracle");
    black_box(records).len() as u64
}

fn decode(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    for codec in [GenCodec::Deflate, GenCodec::Null] {
        let path = write(dir.path(), codec);
        let mut group = c.benchmark_group(format!("decode {RECORDS} records, {}", codec.name()));
        group.throughput(Throughput::Elements(RECORDS));
        group.sample_size(10);
        group.bench_function("sf_reader::trace", |b| b.iter(|| fast_file(&path)));
        group.bench_function("apache-avro Reader (Value)", |b| {
            b.iter(|| apache_values(&path))
        });
        group.bench_function("sf_oracle (Value + mapping)", |b| b.iter(|| oracle(&path)));
        group.finish();
    }

    // One block in memory: the decoder alone.
    let records: Vec<Record> = Generator::new(&config(GenCodec::Null)).collect();
    let mut block = Vec::new();
    for r in &records {
        sf_gen::encode_record(r, &mut block);
    }
    let decoder = fast::SysFlowDecoder::from_schema_json(sf_gen::SCHEMA_V5).expect("schema");
    let mut group = c.benchmark_group("decode one in-memory block");
    group.throughput(Throughput::Elements(RECORDS));
    group.sample_size(20);
    group.bench_function("SysFlowDecoder::decode_block", |b| {
        b.iter(|| {
            let mut n = 0u64;
            for r in decoder.decode_block(&block, RECORDS) {
                black_box(r.expect("record"));
                n += 1;
            }
            n
        })
    });
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
