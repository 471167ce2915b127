//! `sf-handler-exporter`: the exporter handler (see the crate documentation and README).

fn main() -> std::process::ExitCode {
    handler_sdk::run(sf_exporter::Exporter::default())
}
