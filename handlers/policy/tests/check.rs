//! `sf-handler-policy --check`: the reference's policy sets compile, with the reference's
//! lenient reading reported; strict mode and bad policies are start errors (exit 2) that
//! name the file, line and column. Also: the binary refuses to run outside `sf-launch`.

#[path = "../../standalone_check.rs"]
mod standalone_check;

use std::path::{Path, PathBuf};
use std::process::Command;

fn policies(set: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/reference/policies")
        .join(set)
}

fn check(args: &[&dyn AsRef<std::ffi::OsStr>]) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sf-handler-policy"));
    cmd.arg("--check");
    for a in args {
        cmd.arg(a);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn outside_the_launcher_it_explains_itself_and_exits_2() {
    standalone_check::refuses_to_run_outside_the_launcher(
        env!("CARGO_BIN_EXE_sf-handler-policy"),
        "policy",
    );
}

#[test]
fn the_reference_sets_compile_and_their_lenient_names_are_reported() {
    for (set, counts) in [
        (
            "runtimeintegrity",
            "4 files, 79 rules, 115 macros, 157 lists, 1 filters",
        ),
        (
            "distribution",
            "1 files, 21 rules, 84 macros, 42 lists, 1 filters",
        ),
        (
            "tests",
            "17 files, 84 rules, 302 macros, 115 lists, 0 filters",
        ),
    ] {
        let (code, out, err) = check(&[&policies(set)]);
        assert_eq!(code, Some(0), "{set}: {err}");
        let first = out.lines().next().unwrap();
        assert!(first.contains(&format!(": {counts}, ")), "{set}: {first}");
    }
    let (_, out, _) = check(&[&policies("runtimeintegrity")]);
    for name in [
        "unknown attribute \"sf.proc.username\"",
        "unknown attribute \"sf.file.typechar\"",
        "unknown attribute \"sf.net.mask\"",
        "undefined list \"pkg_mgmt_binaries\"",
        "undefined list \"dev_creation_binaries\"",
        "action \"podname\" ignored",
    ] {
        assert_eq!(out.matches(name).count(), 1, "{name} once in:\n{out}");
    }
    let (_, out, _) = check(&[&policies("tests")]);
    let unknown = out.matches("unknown attribute").count();
    assert!(
        unknown >= 40,
        "tests/falco.yaml has ~40 unknown attributes, {unknown} reported:\n{out}"
    );
}

#[test]
fn strict_mode_refuses_what_lenient_mode_reports() {
    let (code, out, err) = check(&[&"--strict", &policies("runtimeintegrity")]);
    assert_eq!(code, Some(2), "{out}");
    assert!(err.contains("strict mode: 10 problem(s): "), "{err}");
    assert!(
        err.contains("runtimeintegrity.yaml:467:29: unknown attribute \"sf.proc.username\""),
        "{err}"
    );
    let (code, _, err) = check(&[&"--strict", &policies("distribution")]);
    assert_eq!(code, Some(0), "distribution is clean: {err}");
}

#[test]
fn bad_policies_are_errors_with_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "- rule: r\n  desc: d\n  condition: sf.proc.name = \n  priority: low\n",
    )
    .unwrap();
    let (code, _, err) = check(&[&bad]);
    assert_eq!(code, Some(2));
    assert_eq!(
        err.trim_end(),
        format!(
            "{0}: {0}:4:3: expected a value or an attribute, found \"priority\" (in rule \"r\")",
            bad.display()
        )
    );
    let cycle = dir.path().join("cycle.yaml");
    std::fs::write(&cycle, "- macro: a\n  condition: b\n- macro: b\n  condition: sf.type = PE and a\n- rule: r\n  desc: d\n  condition: a\n").unwrap();
    let (code, _, err) = check(&[&cycle]);
    assert_eq!(code, Some(2));
    assert!(
        err.ends_with("cycle.yaml:4:31: macro cycle: a -> b -> a\n"),
        "{err}"
    );
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    std::fs::write(empty.join("notes.txt"), "not a policy").unwrap();
    let (code, _, err) = check(&[&empty]);
    assert_eq!(code, Some(2));
    assert!(
        err.ends_with("empty: no policy file (.yaml or .yml) found\n"),
        "{err}"
    );
}
