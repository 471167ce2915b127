//! The reader: decodes SysFlow Avro input into [`sf_processor::model::Record`]s and publishes
//! them into the handler rings.
#![deny(missing_docs)]

pub mod avro;
pub mod container;
pub mod driver;
pub mod fast;
pub mod generate;
pub mod in_process;
pub mod socket;
