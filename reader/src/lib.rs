//! The reader: decodes SysFlow Avro input into [`sf_processor::model::Record`]s and publishes
//! them into the handler rings.
//!
//! - [`trace`]: the entry point for a trace file ([`trace::open`]): the container framing
//!   ([`container`]) and our decoder ([`fast`]: each file's writer schema resolved against one
//!   reader schema by the Avro specification's rules); [`error`] and [`branch`] hold what they
//!   report.
//! - [`layout`]: the writer schemas the collector has used, for the socket, where no schema
//!   travels.
//! - [`driver`] (files, directories, follow mode) and [`socket`] (the collector's live
//!   stream) deliver the records to a [`driver::Sink`]: the rings of a pipeline, or handlers
//!   called in process ([`in_process`]).
#![deny(missing_docs)]

pub mod branch;
pub mod container;
pub mod driver;
pub mod error;
pub mod fast;
pub mod in_process;
pub mod layout;
pub mod socket;
pub mod trace;
