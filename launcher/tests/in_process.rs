//! In-process mode (`sf-handler-NAME --in-process TRACE`, the handler SDK's `in-process`
//! feature) against the pipeline: the same handler code must see the same records with the
//! same context whichever way it runs.

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
            .starts_with("in-process: 6173 records, 1 handler(s), "),
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
/// included) over every shared trace (`traces/`, and `traces-2019/` while it is there): the
/// pipeline and in-process mode write the same file.
#[test]
fn every_shared_trace_gives_the_same_records_and_context_by_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let probe = |file: &Path| json!({"file": file, "entities": true});
    let mut inputs = vec![shared().join("traces")];
    if shared().join("traces-2019").is_dir() {
        inputs.push(shared().join("traces-2019"));
    }
    let mut lines = 0;
    for (i, traces) in inputs.iter().enumerate() {
        let from_pipeline = dir.path().join(format!("pipeline-{i}.tsv"));
        let mut block = probe(&from_pipeline);
        block["handler"] = json!("probe");
        let pipeline = write_blocks(dir.path(), &[block]);
        let run = launch(dir.path(), &[&pipeline, traces]);
        assert!(run.status.success(), "{}: {run:?}", traces.display());

        let alone = dir.path().join(format!("in-process-{i}.tsv"));
        let config = probe(&alone).to_string();
        let run = in_process(
            dir.path(),
            "probe",
            &[("SF_HANDLER_CONFIG", &config)],
            &[traces],
        );
        assert!(run.status.success(), "{}: {run:?}", traces.display());
        let want = std::fs::read_to_string(&from_pipeline).unwrap();
        let got = std::fs::read_to_string(&alone).unwrap();
        if got != want {
            let (n, (a, b)) = got
                .lines()
                .zip(want.lines())
                .enumerate()
                .find(|(_, (a, b))| a != b)
                .unwrap_or((0, ("(lengths differ)", "")));
            panic!(
                "{}: in-process differs from the pipeline at line {}: {a:?} != {b:?}",
                traces.display(),
                n + 1
            );
        }
        lines += want.lines().count();
    }
    // Every record of every trace (some paths hold a newline, so lines are not records).
    assert!(lines > 70_000, "{lines}");
    assert_no_process_left(dir.path(), Duration::from_secs(5));
}

#[test]
fn in_process_usage_errors_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    // There is one decoder: no --decoder any more.
    let run = in_process(
        dir.path(),
        "printer",
        &[],
        &[&"--decoder", &"avro", &"x.sf"],
    );
    assert_eq!(run.status.code(), Some(2), "{run:?}");
    assert!(
        run.stderr.starts_with("unknown option --decoder\nusage: "),
        "{}",
        run.stderr
    );
    // A file from which no record could be decoded: exit 3, as the launcher.
    let notes = dir.path().join("notes.sf");
    std::fs::write(&notes, "# not a trace\n").unwrap();
    let run = in_process(dir.path(), "printer", &[], &[&notes]);
    assert_eq!(run.status.code(), Some(3), "{run:?}");
    assert!(
        run.stdout.contains(
            "input errors in 1 of 1 files: 1 skipped (notes.sf: not an Avro file (wrong magic at byte 0))"
        ),
        "{}",
        run.stdout
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
