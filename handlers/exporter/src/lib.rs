//! The SysFlow exporter as a handler: `sf-handler-exporter`, run for every pipeline block
//! `"processor": "exporter"`. It writes each flow and event it gets (with the policies an
//! upstream policy engine annotated it with) in the reference processor's `json` or `ecs`
//! format to the terminal, a file, a syslog server (UDP, TCP, TLS), a Kafka topic or nowhere,
//! with the reference's keys and defaults ([`config`]). The crate's README lists every key and
//! where the output differs from the reference's, and why.
#![deny(missing_docs)]

pub mod config;
pub mod ecs;
pub mod exporter;
pub mod json;
pub mod jw;
pub mod transport;
pub mod view;

pub use exporter::Exporter;
