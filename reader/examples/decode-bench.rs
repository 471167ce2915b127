//! Times decoding one SysFlow trace with each decoder and prints one table: the reader's
//! (`sf_reader::trace`: container framing and our decoder, with schema resolution),
//! `apache-avro`'s generic reader (`Reader`, one `Value` per datum) and the tests' oracle
//! (`sf_oracle`: apache-avro plus a mapping onto the model by name). Used by `bench/run.sh`.
//!
//! ```text
//! cargo run --release -p sf-reader --example decode-bench -- [--runs N] [--only fast|apache|oracle] TRACE
//! ```
//!
//! Every decoder reads the file from the start (page cache warm after the first run) and
//! touches every record; the runs are interleaved (one run of each decoder per round) so that
//! noise from other processes spreads over all of them; the median of the runs is reported.

use std::fs::File;
use std::hint::black_box;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

struct Decoder {
    key: &'static str,
    name: &'static str,
    run: fn(&Path) -> Result<u64, String>,
}

fn run_fast(path: &Path) -> Result<u64, String> {
    let mut n = 0u64;
    for record in sf_reader::trace::open(path).map_err(|e| e.to_string())? {
        black_box(record.map_err(|e| e.to_string())?);
        n += 1;
    }
    Ok(n)
}

fn run_apache_value(path: &Path) -> Result<u64, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let reader = apache_avro::Reader::new(BufReader::with_capacity(256 << 10, file))
        .map_err(|e| e.to_string())?;
    let mut n = 0u64;
    for value in reader {
        black_box(value.map_err(|e| e.to_string())?);
        n += 1;
    }
    Ok(n)
}

fn run_oracle(path: &Path) -> Result<u64, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let reader = apache_avro::Reader::new(BufReader::with_capacity(256 << 10, file))
        .map_err(|e| e.to_string())?;
    let branches = sf_oracle::branches(reader.writer_schema())?;
    let mut n = 0u64;
    for value in reader {
        let value = value.map_err(|e| e.to_string())?;
        black_box(sf_oracle::record_from_value(value, &branches)?);
        n += 1;
    }
    Ok(n)
}

const DECODERS: &[Decoder] = &[
    Decoder {
        key: "fast",
        name: "sf_reader::trace (ours)",
        run: run_fast,
    },
    Decoder {
        key: "apache",
        name: "apache-avro Reader (Value)",
        run: run_apache_value,
    },
    Decoder {
        key: "oracle",
        name: "sf_oracle (Value + mapping)",
        run: run_oracle,
    },
];

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// Bytes of Avro datum data in the file (the blocks once inflated).
fn datum_bytes(path: &Path) -> Result<u64, String> {
    let mut reader = sf_reader::trace::open(path).map_err(|e| e.to_string())?;
    for record in reader.by_ref() {
        record.map_err(|e| e.to_string())?;
    }
    Ok(reader.block_bytes_read())
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut runs = 5usize;
    let mut path = None;
    let mut only = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--only" => match args.next() {
                Some(key) if DECODERS.iter().any(|d| d.key == key) => only = Some(key),
                _ => {
                    eprintln!("decode-bench: --only needs fast, apache or oracle");
                    return ExitCode::from(2);
                }
            },
            "--runs" => match args.next().and_then(|r| r.parse().ok()) {
                Some(r) if r > 0 => runs = r,
                _ => {
                    eprintln!("decode-bench: --runs needs a positive number");
                    return ExitCode::from(2);
                }
            },
            _ if path.is_none() => path = Some(PathBuf::from(arg)),
            other => {
                eprintln!("decode-bench: unexpected argument {other:?}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(path) = path else {
        eprintln!("usage: decode-bench [--runs N] [--only fast|apache|oracle] TRACE");
        return ExitCode::from(2);
    };
    let file_bytes = match std::fs::metadata(&path) {
        Ok(m) => m.len(),
        Err(e) => {
            eprintln!("decode-bench: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    if let Some(key) = only {
        // One decoder, no table: for profilers.
        let Some(d) = DECODERS.iter().find(|d| d.key == key) else {
            return ExitCode::from(2);
        };
        for _ in 0..runs {
            let start = Instant::now();
            match (d.run)(&path) {
                Ok(n) => println!(
                    "{}: {n} records in {:.3} s",
                    d.name,
                    start.elapsed().as_secs_f64()
                ),
                Err(e) => {
                    eprintln!("decode-bench: {}: {e}", d.name);
                    return ExitCode::FAILURE;
                }
            }
        }
        return ExitCode::SUCCESS;
    }
    let data_bytes = match datum_bytes(&path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("decode-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); DECODERS.len()];
    let mut counts = vec![0u64; DECODERS.len()];
    for round in 0..runs {
        for (i, d) in DECODERS.iter().enumerate() {
            let start = Instant::now();
            match (d.run)(&path) {
                Ok(n) => counts[i] = n,
                Err(e) => {
                    eprintln!("decode-bench: {}: {e}", d.name);
                    return ExitCode::FAILURE;
                }
            }
            let secs = start.elapsed().as_secs_f64();
            eprintln!("round {}/{runs}: {:<34} {secs:>8.3} s", round + 1, d.name);
            times[i].push(secs);
        }
    }
    if counts.iter().any(|&c| c != counts[0]) {
        eprintln!("decode-bench: the decoders disagree on the record count: {counts:?}");
        return ExitCode::FAILURE;
    }
    let medians: Vec<f64> = times.into_iter().map(median).collect();
    let reference = medians[1];
    println!(
        "{} — {} records, {:.1} MB file, {:.1} MB of Avro data, median of {runs} runs",
        path.display(),
        counts[0],
        file_bytes as f64 / 1e6,
        data_bytes as f64 / 1e6
    );
    println!(
        "| {:<34} | {:>9} | {:>10} | {:>11} | {:>12} | {:>14} |",
        "decoder", "median s", "records/s", "MB/s (file)", "MB/s (data)", "vs apache-avro"
    );
    println!(
        "|{:-<36}|{:->11}|{:->12}|{:->13}|{:->14}|{:->16}|",
        "", "", "", "", "", ""
    );
    for (d, secs) in DECODERS.iter().zip(&medians) {
        println!(
            "| {:<34} | {:>9.3} | {:>9.2}M | {:>11.1} | {:>12.1} | {:>13.2}x |",
            d.name,
            secs,
            counts[0] as f64 / secs / 1e6,
            file_bytes as f64 / secs / 1e6,
            data_bytes as f64 / secs / 1e6,
            reference / secs
        );
    }
    ExitCode::SUCCESS
}
