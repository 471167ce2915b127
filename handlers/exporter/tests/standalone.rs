//! The `exporter` binary refuses to run outside `sf-launch` and says how to run it.

#[path = "../../standalone_check.rs"]
mod standalone_check;

#[test]
fn outside_the_launcher_it_explains_itself_and_exits_2() {
    standalone_check::refuses_to_run_outside_the_launcher(
        env!("CARGO_BIN_EXE_sf-handler-exporter"),
        "exporter",
    );
}
