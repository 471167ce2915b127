//! The handler template (`resources/templates/handler`) as a user takes it: copied into a
//! directory of its own, pointed at the SDK, built with nothing but `handler-sdk` from this
//! checkout, then run under `sf-launch` by path and by name on a shared trace.
//!
//! Build cost. The copy is built with `CARGO_TARGET_DIR=target/template-test`: a target
//! directory of its own, since the template crate is its own workspace with its own profile
//! (nothing of `target/debug` could be reused), and a fixed one rather than one inside the
//! temp dir, so that only the first run compiles the SDK and its dependencies (measured: 55 s
//! of CPU, 2 min 10 s of wall time on the 2-core machine while other builds ran) and later
//! runs rebuild only the copied crate (2 s). The workspace's
//! `Cargo.lock` is copied beside the template's manifest, so the build uses the versions the
//! workspace was tested with and needs no registry lookup.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// Longest the template's build may take (a first build on a busy machine included).
const BUILD_WATCHDOG: Duration = Duration::from_secs(15 * 60);

/// The SDK dependency line of the template's manifest, as shipped.
const SDK_LINE: &str = r#"handler-sdk = { path = "../../../handler-sdk" }"#;

/// Copies the template's sources (not a `target/` or `Cargo.lock` left by an in-place
/// build) into `dest`.
fn copy_template(dest: &Path) {
    let src = root().join("resources/templates/handler");
    std::fs::create_dir_all(dest.join("src")).unwrap();
    for file in ["Cargo.toml", "README.md", "src/main.rs"] {
        std::fs::copy(src.join(file), dest.join(file))
            .unwrap_or_else(|e| panic!("{}: {e}", src.join(file).display()));
    }
    let listed: Vec<_> = std::fs::read_dir(src.join("src"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        listed,
        ["main.rs"],
        "the template's sources changed: copy them all"
    );
}

/// Builds the crate in `dir` and returns its binary.
fn build(dir: &Path) -> PathBuf {
    let target = root().join("target/template-test");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut child = Command::new(cargo)
        .args(["build", "--quiet"])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", &target)
        // Not the outer cargo's jobserver or settings meant for the workspace.
        .env_remove("CARGO_MAKEFLAGS")
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run cargo");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > BUILD_WATCHDOG {
            child.kill().unwrap();
            panic!("watchdog: the template did not build within {BUILD_WATCHDOG:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output().unwrap();
    assert!(
        status.success(),
        "the template does not build: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("template built in {:?}", start.elapsed());
    let exe = target.join("debug/sf-handler-example");
    assert!(exe.exists(), "{} missing", exe.display());
    exe
}

/// The messages the template logs for shellshock.sf: each exec with its command line and
/// parent (values as in the oracle), then the count.
const SHELLSHOCK_EXECS: [&str; 3] = [
    "record 37: 16680 runs /usr/lib/cgi-bin/vulnerable /usr/lib/cgi-bin/vulnerable (parent /usr/lib/apache2/mpm-worker/apache2)",
    "record 52: 16681 runs /bin/bash -c cat /etc/passwd (parent /usr/lib/cgi-bin/vulnerable)",
    "record 78: 16681 runs /bin/cat /etc/passwd (parent /usr/lib/cgi-bin/vulnerable)",
];

#[test]
fn a_crate_made_from_the_template_builds_with_the_sdk_alone_and_runs_under_sf_launch() {
    let dir = tempfile::tempdir().unwrap();
    let krate = dir.path().join("my-handler");
    copy_template(&krate);

    // Its only pipeline dependency is the SDK, pointed at this checkout's.
    let manifest_path = krate.join("Cargo.toml");
    let manifest = std::fs::read_to_string(&manifest_path).unwrap();
    assert_eq!(manifest.matches(SDK_LINE).count(), 1, "{manifest}");
    for crate_name in ["sf-processor", "sf-reader", "sf-launch"] {
        assert!(!manifest.contains(crate_name), "{crate_name} in {manifest}");
    }
    assert!(
        manifest.contains("\n[workspace]\n"),
        "a workspace of its own"
    );
    let sdk = root().join("handler-sdk").canonicalize().unwrap();
    let manifest = manifest.replace(
        SDK_LINE,
        &format!("handler-sdk = {{ path = {:?} }}", sdk.display().to_string()),
    );
    std::fs::write(&manifest_path, manifest).unwrap();
    std::fs::copy(root().join("Cargo.lock"), krate.join("Cargo.lock")).unwrap();
    let exe = build(&krate);

    // By path ("binary" in the block).
    let trace = shared().join("traces/shellshock.sf");
    let pipeline = write_blocks(
        dir.path(),
        &[json!({"processor": "sysflowreader", "handler": "example", "binary": exe})],
    );
    let run = launch(dir.path(), &[&pipeline, &trace]);
    assert!(run.status.success(), "{run:?}");
    assert_eq!(run.stderr, "");
    let mut want: Vec<String> = SHELLSHOCK_EXECS.iter().map(|s| s.to_string()).collect();
    want.push("3 programs executed".into());
    assert_eq!(run.info_messages(), want, "{}", run.stdout);
    assert!(
        run.stdout.lines().all(|l| l.contains(" main.rs:")),
        "log lines name the template's source: {}",
        run.stdout
    );

    // By name (sf-handler-example on PATH), with a setting from the environment.
    let pipeline = write_blocks(
        dir.path(),
        &[json!({"processor": "sysflowreader", "handler": "example"})],
    );
    let path = std::env::join_paths(std::iter::once(exe.parent().unwrap().to_owned()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    let run = launch_env(
        dir.path(),
        &[("PATH", &path), ("EXAMPLE_EXE_PREFIX", &"/bin/")],
        &[&pipeline, &trace],
    );
    assert!(run.status.success(), "{run:?}");
    let mut want: Vec<String> = SHELLSHOCK_EXECS[1..]
        .iter()
        .map(|s| s.to_string())
        .collect();
    want.push("2 programs executed".into());
    assert_eq!(run.info_messages(), want, "{}", run.stdout);
    assert_no_process_left(dir.path(), Duration::from_secs(5));
}
