//! The check every shipped handler's `tests/standalone.rs` runs (included with `#[path]`): the
//! binary refuses to run outside `sf-launch`, with a message that says how to run it. (Having
//! an integration test also makes `cargo test --workspace` build the binary that the
//! launcher's end-to-end tests start.)

use std::process::Command;

/// Runs `binary` as handler `name` without a ring and checks: exit status 2, nothing on
/// stdout, one reference-format ERROR line on stderr explaining how to start it.
pub fn refuses_to_run_outside_the_launcher(binary: &str, name: &str) {
    let out = Command::new(binary)
        .env_remove("SF_RING_FD")
        .env("SF_HANDLER_NAME", name)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(out.stdout, b"");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.ends_with(&format!(": {name}: SF_RING_FD is not set: this is a SysFlow handler binary, start it with sf-launch PIPELINE.json PATH\n")),
        "{err}"
    );
    assert!(err.starts_with("ERROR: "), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}
