//! End-to-end tests: `sf-launch` with the real reader and handler binaries on real traces.
//! Each test has its own temp dir (which also tags its processes) and checks that no process
//! and no shared-memory segment is left behind.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use common::*;

/// The reference printer's messages for `tcp.sf`, in order (issue 2).
const TCP_PRINTER: [&str; 10] = [
    "ProcEvt ./server, 13823",
    "FileFlow ./server, 3",
    "FileFlow ./server, 3",
    "ProcEvt ./client, 13824",
    "FileFlow ./client, 3",
    "FileFlow ./client, 3",
    "NetworkFlow ./client, 8080",
    "ProcEvt ./client, 13824",
    "NetworkFlow ./server, 8080",
    "ProcEvt ./server, 13823",
];

#[test]
fn printer_pipeline_prints_the_reference_output_for_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let run = launch(
        dir.path(),
        &[
            &"resources/pipelines/pipeline.printer.json",
            &"resources/traces/tcp.sf",
        ],
    );
    assert!(run.status.success(), "sf-launch failed: {run:?}");
    assert_eq!(
        run.info_messages(),
        TCP_PRINTER,
        "stdout was:\n{}",
        run.stdout
    );
    // The reference logger's prefix: level, date, time, source location.
    let first = run
        .stdout
        .lines()
        .find(|l| l.starts_with("INFO: "))
        .unwrap();
    let fields: Vec<&str> = first.splitn(5, ' ').collect();
    assert_eq!(fields[1].len(), "2026/11/30".len(), "{first}");
    assert_eq!(fields[1].matches('/').count(), 2, "{first}");
    assert_eq!(fields[2].matches(':').count(), 2, "{first}");
    assert!(
        fields[3].starts_with("printer.rs:") && fields[3].ends_with(':'),
        "{first}"
    );
    assert_eq!(run.stderr, "", "nothing on stderr for a good run");
    assert_clean(dir.path());
}

/// The README's first command: the production pipeline (the reference's layout: flattener
/// reader block, `policyengine` with the example rules, `exporter` to the terminal) on the
/// shellshock trace prints the attack's four matching records with their rules.
#[test]
fn the_readme_production_pipeline_prints_the_shellshock_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let run = launch(
        dir.path(),
        &[
            &"resources/pipelines/pipeline.policy.json",
            &"resources/traces/shellshock.sf",
        ],
    );
    assert!(run.status.success(), "sf-launch failed: {run:?}");
    let alerts: Vec<(String, String, Vec<String>)> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect(l);
            let ids = v["policies"]
                .as_array()
                .expect(l)
                .iter()
                .map(|p| p["id"].as_str().unwrap().to_owned())
                .collect();
            (
                v["type"].as_str().unwrap().to_owned(),
                v["proc"]["exe"].as_str().unwrap().to_owned(),
                ids,
            )
        })
        .collect();
    let want = [
        (
            "PE",
            "/usr/lib/cgi-bin/vulnerable",
            &["Program started in a container"][..],
        ),
        (
            "PE",
            "/bin/bash",
            &["Shell under a web server", "Program started in a container"][..],
        ),
        ("PE", "/bin/cat", &["Program started in a container"][..]),
        (
            "FF",
            "/bin/cat",
            &["Sensitive file read under a web server"][..],
        ),
    ];
    let want: Vec<(String, String, Vec<String>)> = want
        .iter()
        .map(|(t, e, ids)| {
            (
                t.to_string(),
                e.to_string(),
                ids.iter().map(|s| s.to_string()).collect(),
            )
        })
        .collect();
    assert_eq!(alerts, want, "stdout was:\n{}", run.stdout);
    assert!(
        run.stdout.contains("4 alerts, 4 emitted"),
        "the engine's closing counters: {}",
        run.stdout
    );
    assert_clean(dir.path());
}

#[test]
fn reader_and_printer_run_as_separate_processes() {
    // The trace arrives through a FIFO, so the reader blocks on it while the test looks at
    // the process tree, with no timing assumption.
    let dir = tempfile::tempdir().unwrap();
    let fifo = mkfifo(dir.path());
    let child = spawn_launch(
        dir.path(),
        &[&"resources/pipelines/pipeline.printer.json", &fifo],
    );
    let launcher = child.id();
    // Opening the FIFO for writing waits until the reader opened it for reading.
    let mut writer = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    let kids = children_of(launcher);
    let exes: BTreeMap<String, u32> = kids
        .iter()
        .filter_map(|p| Some((exe_of(*p)?.file_name()?.to_string_lossy().into_owned(), *p)))
        .collect();
    let (Some(reader), Some(printer)) = (exes.get("sf-reader"), exes.get("sf-handler-printer"))
    else {
        drop(writer);
        let _ = wait_with_watchdog(child, "sf-launch");
        panic!(
            "expected an sf-reader and an sf-handler-printer child of sf-launch, found {exes:?}"
        );
    };
    assert_ne!(reader, printer);
    assert_ne!(*reader, launcher);
    writer
        .write_all(&std::fs::read(root().join("resources/traces/tcp.sf")).unwrap())
        .unwrap();
    drop(writer);
    let run = wait_with_watchdog(child, "sf-launch");
    assert!(run.status.success(), "{run:?}");
    assert_eq!(run.info_messages(), TCP_PRINTER);
    assert_clean(dir.path());
}

#[test]
fn every_shared_trace_delivers_the_record_counts_of_traces_md() {
    let expected = expected_counts();
    assert!(expected.len() >= 15, "TRACES.md lists 15 traces");
    let dir = tempfile::tempdir().unwrap();
    let pipeline = write_pipeline(dir.path(), &["stats"]);
    let mut failures = Vec::new();
    for (file, want) in &expected {
        let trace = shared().join("traces").join(file);
        let run = launch(dir.path(), &[&pipeline, &trace]);
        assert!(run.status.success(), "{file}: {run:?}");
        let got = parse_stats_table(&run.stdout);
        if &got != want {
            failures.push(format!("{file}: got {got:?}, want {want:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_clean(dir.path());
}

/// The January-2019 layout (`TRACES.md`: neither the official tools nor the reference
/// processor read it), from `traces-2019/` or from `traces/` once moved there: every record
/// through the pipeline, its process events as process events.
#[test]
fn the_january_2019_layout_delivers_every_record_through_the_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = write_pipeline(dir.path(), &["stats"]);
    for (name, counts) in [
        ("play-mon.1548965896", [1, 3, 90, 143]),
        ("play-mon.1548966016", [1, 3, 109, 180]),
    ] {
        let moved = shared().join("traces").join(name);
        let trace = if moved.exists() {
            moved
        } else {
            shared().join("traces-2019").join(name)
        };
        let run = launch(dir.path(), &[&pipeline, &trace]);
        assert!(run.status.success(), "{name}: {run:?}");
        let want: BTreeMap<String, u64> = ["SFHeader", "Container", "Process", "ProcessEvent"]
            .iter()
            .zip(counts)
            .map(|(k, n)| ((*k).to_owned(), n))
            .collect();
        assert_eq!(parse_stats_table(&run.stdout), want, "{name}");
        assert!(!run.stdout.contains("input errors"), "{}", run.stdout);
    }
    assert_clean(dir.path());
}

#[test]
fn two_handler_blocks_get_two_processes_fed_by_one_reader() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = write_pipeline(dir.path(), &["printer", "stats"]);
    let run = launch(
        dir.path(),
        &[&"--log", &"info", &pipeline, &"resources/traces/tcp.sf"],
    );
    assert!(run.status.success(), "{run:?}");
    assert_eq!(run.info_messages(), TCP_PRINTER);
    let counts = parse_stats_table(&run.stdout);
    assert_eq!(counts.values().sum::<u64>(), 23, "{counts:?}");
    assert_eq!(counts.get("FileFlow"), Some(&4));
    assert_clean(dir.path());
}

#[test]
fn log_level_warn_silences_the_printer() {
    let dir = tempfile::tempdir().unwrap();
    let run = launch(
        dir.path(),
        &[
            &"--log",
            &"warn",
            &"resources/pipelines/pipeline.printer.json",
            &"resources/traces/tcp.sf",
        ],
    );
    assert!(run.status.success(), "{run:?}");
    assert_eq!(run.stdout, "");
    assert_clean(dir.path());
}

#[test]
fn a_directory_is_read_file_by_file_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    let traces = dir.path().join("traces");
    std::fs::create_dir(&traces).unwrap();
    // Names chosen so that name order is tcp first, then tcp-client-server-v5.
    std::fs::copy(root().join("resources/traces/tcp.sf"), traces.join("1")).unwrap();
    std::fs::copy(
        root().join("resources/traces/tcp-client-server-v5.sf"),
        traces.join("2"),
    )
    .unwrap();
    let run = launch(
        dir.path(),
        &[&"resources/pipelines/pipeline.printer.json", &traces],
    );
    assert!(run.status.success(), "{run:?}");
    let msgs = run.info_messages();
    assert_eq!(msgs.len(), 20, "{msgs:?}");
    assert_eq!(msgs[..10], TCP_PRINTER);
    assert_clean(dir.path());
}

fn start_error(args: &[&dyn AsRef<std::ffi::OsStr>]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let run = launch(dir.path(), args);
    assert_eq!(run.status.code(), Some(2), "{run:?}");
    assert_eq!(run.stdout, "", "nothing may start: {run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "one line: {:?}", run.stderr);
    assert_clean(dir.path());
    run.stderr.trim_end().to_owned()
}

#[test]
fn start_errors_are_one_line_and_nothing_is_spawned() {
    let dir = tempfile::tempdir().unwrap();
    let bad_json = dir.path().join("bad.json");
    std::fs::write(&bad_json, "{\"pipeline\": [ {\"handler\": \"printer\" ]}").unwrap();
    assert_eq!(
        start_error(&[&bad_json, &"resources/traces/tcp.sf"]),
        format!(
            "sf-launch: error: {}: line 1, column 38: malformed JSON: expected `,` or `}}`",
            bad_json.display()
        )
    );

    let unknown = write_pipeline(dir.path(), &["printer", "nosuch"]);
    let msg = start_error(&[&unknown, &"resources/traces/tcp.sf"]);
    assert!(
        msg.starts_with(&format!(
            "sf-launch: error: {}: pipeline[1].handler: unknown handler \"nosuch\": no executable \"sf-handler-nosuch\"",
            unknown.display()
        )),
        "{msg}"
    );
    let available = msg
        .split("(available: ")
        .nth(1)
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("no list of available handlers: {msg}"));
    let available: Vec<&str> = available.split(", ").collect();
    for shipped in [
        "alert", "exporter", "json", "policy", "printer", "probe", "stats",
    ] {
        assert!(available.contains(&shipped), "{shipped} missing: {msg}");
    }
    assert!(available.is_sorted(), "{msg}");

    assert_eq!(
        start_error(&[
            &"resources/pipelines/pipeline.printer.json",
            &"resources/traces/missing.sf"
        ]),
        "sf-launch: error: trace path resources/traces/missing.sf does not exist"
    );
    assert_eq!(
        start_error(&[
            &"resources/pipelines/missing.json",
            &"resources/traces/tcp.sf"
        ]),
        "sf-launch: error: resources/pipelines/missing.json: cannot read pipeline file: No such file or directory (os error 2)"
    );
}

#[test]
fn killing_the_launcher_takes_its_children_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = mkfifo(dir.path());
    let child = spawn_launch(
        dir.path(),
        &[&"resources/pipelines/pipeline.printer.json", &fifo],
    );
    let launcher = child.id();
    let writer = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    assert_eq!(children_of(launcher).len(), 2);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(launcher as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let _ = wait_with_watchdog(child, "sf-launch");
    drop(writer);
    // Within a second, nothing is left (the children get SIGKILL from the kernel).
    assert_no_process_left(dir.path(), Duration::from_secs(1));
    assert_eq!(shm_segments(), Vec::<String>::new());
}
