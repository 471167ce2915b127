//! The `json` binary refuses to run outside `sf-launch`, with a message that says how to run
//! it. (Having an integration test also makes `cargo test --workspace` build the binary that
//! the launcher's end-to-end tests start.)

use std::process::Command;

#[test]
fn outside_the_launcher_it_explains_itself_and_exits_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_sf-handler-json"))
        .env_remove("SF_RING_FD")
        .env("SF_HANDLER_NAME", "json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(out.stdout, b"");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.ends_with(": json: SF_RING_FD is not set: this is a SysFlow handler binary, start it with sf-launch PIPELINE.json PATH\n"),
        "{err}"
    );
}
