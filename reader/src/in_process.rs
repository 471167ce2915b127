//! Handlers called in the reader's own process: the same drivers, the same [`Dispatcher`]
//! (entity tables, context building, handler calls) as a handler process, without rings or
//! serialization. The baseline the multi-process pipeline is measured against, and a way to
//! run a handler on a trace without `sf-launch` (the handler SDK's `--in-process`).
//!
//! ```no_run
//! use std::sync::atomic::AtomicBool;
//! use sf_processor::handler::Handler;
//! use sf_reader::in_process;
//!
//! struct Count;
//! impl Handler for Count {}
//!
//! let files = sf_reader::driver::input_files("trace.sf".as_ref()).unwrap();
//! let run = in_process::run(&files, vec![Count, Count], &AtomicBool::new(false));
//! println!("{} records", run.summary.total());
//! ```

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use sf_processor::handler::{DispatchStats, Dispatcher, Handler};
use sf_processor::model::Record;

use crate::driver::{self, NoConsumers, ReadSummary, Sink};

/// Handlers fed in the reader's process: every record goes to each of them in turn, in
/// input order, with the same sequence numbers a pipeline would give it (from 1). Each
/// dispatcher keeps its own entity tables, as each handler process does.
#[derive(Debug)]
pub struct Dispatchers<H> {
    dispatchers: Vec<Dispatcher<H>>,
    seq: u64,
}

impl<H: Handler> Dispatchers<H> {
    /// Dispatchers over initialised handlers (`init` already called).
    pub fn new(handlers: Vec<H>) -> Self {
        Dispatchers {
            dispatchers: handlers.into_iter().map(Dispatcher::new).collect(),
            seq: 0,
        }
    }

    /// Calls every handler's `commit()` (a failure counts as lost output) and `cleanup()`,
    /// and returns the handlers with their counters.
    pub fn finish(self) -> Vec<(H, DispatchStats)> {
        self.dispatchers
            .into_iter()
            .map(|mut d| {
                d.commit_output("commit");
                d.finish()
            })
            .collect()
    }
}

impl<H: Handler> Sink for Dispatchers<H> {
    /// Each handler but the last gets a copy of the record (as each handler process decodes
    /// its own), the last one the record itself.
    fn deliver(&mut self, record: Record) -> Result<(), NoConsumers> {
        self.seq += 1;
        let Some((last, others)) = self.dispatchers.split_last_mut() else {
            return Err(NoConsumers);
        };
        for d in others {
            d.dispatch(self.seq, record.clone());
        }
        last.dispatch(self.seq, record);
        Ok(())
    }

    fn delivered(&self) -> u64 {
        self.seq
    }
}

/// What [`run`] did.
#[derive(Debug)]
pub struct InProcessRun<H> {
    /// Each handler after `cleanup()`, with its counters, in the order given.
    pub handlers: Vec<(H, DispatchStats)>,
    /// What the driver read and skipped (as the reader process logs it).
    pub summary: ReadSummary,
}

/// Reads `files` (as [`driver::read`]: bad input reported and skipped) and calls every
/// handler of `handlers` (already initialised) with every record, then their `cleanup()`.
/// Stops between two records once `stop` is set.
pub fn run<H: Handler>(files: &[PathBuf], handlers: Vec<H>, stop: &AtomicBool) -> InProcessRun<H> {
    let mut sink = Dispatchers::new(handlers);
    let mut summary = ReadSummary::default();
    // `NoConsumers` only when there is no handler at all: nothing to report then.
    let _: Result<(), NoConsumers> = driver::read(files, &mut sink, &mut summary, stop);
    InProcessRun {
        handlers: sink.finish(),
        summary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sf_processor::handler::HandlerResult;
    use sf_processor::model::{FileFlow, RecordKind};
    use sf_processor::tables::Context;

    /// Counts file flows, and those whose process and file resolved.
    #[derive(Debug, Default)]
    struct FileFlows {
        seen: u64,
        resolved: u64,
        last_seq: u64,
    }

    impl Handler for FileFlows {
        fn handle_file_flow(&mut self, ctx: &Context<'_>, _: &FileFlow) -> HandlerResult {
            self.seen += 1;
            if ctx.process().is_some() && ctx.file().is_some() {
                self.resolved += 1;
            }
            assert!(ctx.seq() > self.last_seq);
            self.last_seq = ctx.seq();
            Ok(())
        }
    }

    #[test]
    fn every_handler_gets_every_record_with_its_context() {
        let trace = std::env::var_os("SF_SHARED_DIR")
            .map_or_else(|| "/work/shared".into(), PathBuf::from)
            .join("traces/k8s_small.sf");
        let stop = AtomicBool::new(false);
        let run = run(
            &[trace],
            vec![FileFlows::default(), FileFlows::default()],
            &stop,
        );
        assert_eq!(run.summary.total(), 6173);
        let flows = run.summary.published[RecordKind::FileFlow as usize];
        assert!(flows > 0);
        for (handler, stats) in &run.handlers {
            assert_eq!(stats.received, run.summary.published);
            assert_eq!(handler.seen, flows);
            assert_eq!(handler.resolved, flows, "every file flow has its context");
            assert!(handler.last_seq <= run.summary.total());
        }
    }
}
