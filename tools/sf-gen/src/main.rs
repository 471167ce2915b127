//! `sf-gen`: writes a synthetic but realistic SysFlow trace (schema 5) for tests and
//! benchmarks. See the `sf_gen` library for what the trace holds.
//!
//! Prints the per-type counts to standard error; `--counts FILE` also writes them as JSON
//! (`{"records": N, "by_type": {"FileFlow": n, ...}}`).

use std::io::BufWriter;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use clap::Parser;
use sf_gen::{GenCodec, GenConfig, write_trace};

/// Writes a synthetic SysFlow trace of N records (schema 5).
#[derive(Debug, Parser)]
#[command(name = "sf-gen", version)]
struct Args {
    /// Number of records in all (header and entities included).
    #[arg(long)]
    records: u64,
    /// Codec of the data blocks: deflate or null.
    #[arg(long, default_value = "deflate")]
    codec: GenCodec,
    /// Seed of the pseudo-random choices: the same seed writes the same file.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Number of containers.
    #[arg(long, default_value_t = 4)]
    containers: u32,
    /// Put every container in a Kubernetes pod (Pod entities and a few K8sEvents).
    #[arg(long)]
    pods: bool,
    /// Also write the per-type counts as JSON to this file.
    #[arg(long, value_name = "FILE")]
    counts: Option<PathBuf>,
    /// The trace file to write.
    out: PathBuf,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sf-gen: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let config = GenConfig {
        records: args.records,
        seed: args.seed,
        containers: args.containers,
        pods: args.pods,
        codec: args.codec,
    };
    let start = Instant::now();
    let file = std::fs::File::create(&args.out)
        .with_context(|| format!("{}: cannot create", args.out.display()))?;
    let counts = write_trace(&config, BufWriter::with_capacity(1 << 20, file))
        .with_context(|| format!("{}: cannot write", args.out.display()))?;
    let bytes = std::fs::metadata(&args.out).map(|m| m.len()).unwrap_or(0);
    eprint!("{}", counts.table());
    eprintln!(
        "wrote {} ({} records, {} bytes, codec {}) in {:.2} s",
        args.out.display(),
        counts.total(),
        bytes,
        config.codec.name(),
        start.elapsed().as_secs_f64()
    );
    if let Some(path) = &args.counts {
        let json = serde_json::to_string_pretty(&counts.to_json())?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("{}: cannot write the counts", path.display()))?;
    }
    Ok(())
}
