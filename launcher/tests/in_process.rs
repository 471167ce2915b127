//! In-process mode (`sf-handler-NAME --in-process TRACE`, the handler SDK's `in-process`
//! feature) against the pipeline, and the reader's two datum decoders against each other:
//! the same handler code must see the same records with the same context whichever way it
//! runs and whichever decoder read the trace.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::json;

fn handler_exe(name: &str) -> PathBuf {
    sf_launch().with_file_name(format!("sf-handler-{name}"))
}

/// Runs `sf-handler-NAME --in-process ARGS` under the watchdog.
fn in_process(
    tag: &Path,
    name: &str,
    envs: &[(&str, &str)],
    args: &[&dyn AsRef<std::ffi::OsStr>],
) -> Run {
    let mut cmd = Command::new(handler_exe(name));
    cmd.env("SF_TEST_TAG", tag).arg("--in-process");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    for a in args {
        cmd.arg(a);
    }
    let child = cmd
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the handler");
    wait_with_watchdog(child, name)
}

#[test]
fn stats_in_process_counts_and_ranks_as_the_pipeline_on_k8s_small() {
    let dir = tempfile::tempdir().unwrap();
    let trace = shared().join("traces/k8s_small.sf");
    let pipeline = launch(
        dir.path(),
        &[&"resources/pipelines/pipeline.stats.json", &trace],
    );
    assert!(pipeline.status.success(), "{pipeline:?}");
    let alone = in_process(dir.path(), "stats", &[], &[&trace]);
    assert!(alone.status.success(), "{alone:?}");
    assert!(
        alone
            .stderr
            .starts_with("in-process: 6173 records, 1 handler(s), decoder fast, "),
        "{}",
        alone.stderr
    );
    let counts = parse_stats_table(&alone.stdout);
    assert_eq!(
        counts,
        expected_counts()["k8s_small.sf"],
        "{}",
        alone.stdout
    );
    assert_eq!(counts, parse_stats_table(&pipeline.stdout));
    for what in ["file", "network"] {
        let top = parse_stats_top(&alone.stdout, what);
        assert_eq!(top.len(), 10, "{}", alone.stdout);
        assert_eq!(top, parse_stats_top(&pipeline.stdout, what));
    }
    assert_no_process_left(dir.path(), Duration::from_secs(5));
}

/// The probe's lines (sequence number, kind and full context of every record, entities
/// included) over every shared trace: the pipeline with either decoder and in-process mode
/// with either decoder all write the same file.
#[test]
fn every_shared_trace_gives_the_same_records_and_context_by_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let traces = shared().join("traces");
    let probe = |file: &Path| json!({"file": file, "entities": true});
    let mut outputs = Vec::new();
    for decoder in ["fast", "avro"] {
        let out = dir.path().join(format!("pipeline-{decoder}.tsv"));
        let mut block = probe(&out);
        block["handler"] = json!("probe");
        let pipeline = write_blocks(dir.path(), &[block]);
        let run = launch_env(
            dir.path(),
            &[("SF_READER_DECODER", &decoder)],
            &[&pipeline, &traces],
        );
        assert!(run.status.success(), "{decoder}: {run:?}");
        outputs.push((format!("pipeline, {decoder}"), out));

        let out = dir.path().join(format!("in-process-{decoder}.tsv"));
        let config = probe(&out).to_string();
        let run = in_process(
            dir.path(),
            "probe",
            &[("SF_HANDLER_CONFIG", &config)],
            &[&"--decoder", &decoder, &traces],
        );
        assert!(run.status.success(), "{decoder}: {run:?}");
        outputs.push((format!("in-process, {decoder}"), out));
    }
    let (first_name, first) = &outputs[0];
    let want = std::fs::read_to_string(first).unwrap();
    // Every record of every trace (some paths hold a newline, so lines are not records).
    assert!(want.lines().count() > 10_000, "{want}");
    for (name, path) in &outputs[1..] {
        let got = std::fs::read_to_string(path).unwrap();
        if got != want {
            let (i, (a, b)) = got
                .lines()
                .zip(want.lines())
                .enumerate()
                .find(|(_, (a, b))| a != b)
                .unwrap_or((0, ("(lengths differ)", "")));
            panic!(
                "{name} differs from {first_name} at line {}: {a:?} != {b:?}",
                i + 1
            );
        }
    }
    assert_no_process_left(dir.path(), Duration::from_secs(5));
}

#[test]
fn in_process_usage_errors_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let run = in_process(
        dir.path(),
        "printer",
        &[],
        &[&"--decoder", &"slow", &"x.sf"],
    );
    assert_eq!(run.status.code(), Some(2), "{run:?}");
    assert!(
        run.stderr
            .starts_with("unknown decoder \"slow\" (fast or avro)\nusage: "),
        "{}",
        run.stderr
    );
    let missing = dir.path().join("missing.sf");
    let run = in_process(dir.path(), "printer", &[], &[&missing]);
    assert_eq!(run.status.code(), Some(2), "{run:?}");
    assert!(
        run.stderr.contains("missing.sf: No such file"),
        "{}",
        run.stderr
    );
}

#[test]
fn in_process_takes_handler_key_variables_and_fails_on_lost_output() {
    let dir = tempfile::tempdir().unwrap();
    let k8s = shared().join("traces/k8s_small.sf");
    // No SF_HANDLER_NAME: the name comes from the binary, and STATS_TOP still applies.
    let run = in_process(dir.path(), "stats", &[("STATS_TOP", "1")], &[&k8s]);
    assert!(run.status.success(), "{run:?}");
    assert_eq!(
        parse_stats_top(&run.stdout, "file").len(),
        1,
        "{}",
        run.stdout
    );
    // Output that cannot be written: exit 4, as a handler process under the launcher.
    let mut cmd = Command::new(handler_exe("printer"));
    cmd.arg("--in-process")
        .arg(root().join("resources/traces/tcp.sf"));
    let run = run_into_dev_full(cmd, dir.path(), "printer");
    assert_eq!(run.status.code(), Some(4), "{run:?}");
    assert!(
        run.stderr.contains(
            ": finished with 1 failed writes to standard output (first: No space left on device (os error 28))\n"
        ),
        "{}",
        run.stderr
    );
    assert_clean(dir.path());
}
