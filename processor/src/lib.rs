//! `sf-processor`: the library every process of the pipeline shares.
//!
//! - [`model`]: the SysFlow data model (twelve record types, OID, FOID, enums);
//! - [`codec`]: the wire codec of records in ring frames;
//! - [`chain`]: what chained handlers pass on besides records (matched policies);
//! - [`publish`]: publication of records into rings, with overflow policy and resume;
//! - [`ring`]: the lock-free shared-memory ring between a producer and a consumer process
//!   (the only module with `unsafe` code);
//! - [`tables`]: the entity tables and the context of a record, built as the reference
//!   `sysflowreader` does;
//! - [`handler`]: the handler trait and the dispatch of records to it;
//! - [`journal`]: the entity journal that rebuilds a restarted handler's tables;
//! - [`snapshot`]: a stateful handler's snapshot store, which gives a restarted handler its
//!   state back;
//! - [`exit`]: the exit statuses of `sf-launch` and of the processes it runs;
//! - [`gopath`]: Go's path functions as the reference applies them to SysFlow paths;
//! - [`pipeline`]: the pipeline configuration (`pipeline.json`);
//! - [`logging`]: the log format shared by all processes.
#![deny(missing_docs)]

pub mod chain;
pub mod codec;
pub mod exit;
pub mod gopath;
pub mod handler;
pub mod journal;
pub mod logging;
pub mod model;
pub mod pipeline;
pub mod publish;
pub mod ring;
pub mod snapshot;
pub mod tables;
