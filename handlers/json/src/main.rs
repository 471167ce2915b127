//! `json`: the exporter's `json` format under the name of the handler it replaced
//! (`sf-handler-json`, `"handler": "json"`): one object per flow and event, in the reference
//! exporter's layout (schema version 5), on standard output or appended to `file`. It runs
//! the exporter itself (`sf_exporter::Exporter::json_handler`), so there is one JSON code
//! path; its block keys are those of the exporter with the json handler's kept: `file` (a
//! path; absent, empty or `-`: standard output), `fsync`, `seq`, `buffer` (now records, as
//! the exporter counts them). `entities` is gone (a start error when `true`). See the
//! crate's README.

fn main() -> std::process::ExitCode {
    handler_sdk::run(sf_exporter::Exporter::json_handler())
}
