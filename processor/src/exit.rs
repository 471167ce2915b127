//! Exit statuses, defined once: those of `sf-launch` ([`RunStatus`], the table the README's
//! *Exit status* section gives) and those a handler or reader process gives the launcher
//! (the `HANDLER_*` constants).

/// How a pipeline run ended: the exit status of `sf-launch`.
///
/// When several apply, the status is the first of this order: [`RunStatus::OutputClosed`],
/// [`RunStatus::Interrupted`], then the lowest number among 1 to 6; the last line on standard
/// error names every one that applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum RunStatus {
    /// 0: the reader read the whole input (bad input reported and skipped) and every handler
    /// handled all of it, with its state intact.
    Complete,
    /// 1: a process failed for good (crash loop past its restart limit, restart policy
    /// `never`, could not start), a handler finished with errors (its methods returned
    /// errors, or its output could not be written), or input could not be delivered.
    Failed,
    /// 2: the pipeline could not start (pipeline file, handler, setting, input path,
    /// dead-letter file); nothing was started.
    CouldNotStart,
    /// 3: input errors: everything ran, but some input file gave no record at all (not a
    /// trace, or every record of it failed; the reader's closing warning names it).
    InputError,
    /// 4: a stateful handler was restarted without a usable snapshot of its state after
    /// records had been acknowledged: its results lack what it had counted before.
    StateLost,
    /// 5: records that crashed a handler `poison_after` times in a row went to the
    /// dead-letter file instead of the handler.
    DeadLettered,
    /// 6: a handler with `"overflow": "drop"` dropped flows or events.
    Dropped,
    /// 130: a second Ctrl-C (or SIGTERM, SIGHUP) killed every process.
    Interrupted,
    /// 141: standard output was a pipe nobody reads any more (`sf-launch … | head`).
    OutputClosed,
}

impl RunStatus {
    /// The process exit status.
    pub const fn code(self) -> u8 {
        match self {
            RunStatus::Complete => 0,
            RunStatus::Failed => 1,
            RunStatus::CouldNotStart => 2,
            RunStatus::InputError => 3,
            RunStatus::StateLost => 4,
            RunStatus::DeadLettered => 5,
            RunStatus::Dropped => 6,
            RunStatus::Interrupted => 130,
            RunStatus::OutputClosed => 141,
        }
    }

    /// The status of a run to which all of `statuses` apply (see the precedence above);
    /// [`RunStatus::Complete`] when none does.
    pub fn worst(statuses: impl IntoIterator<Item = RunStatus>) -> RunStatus {
        let rank = |s: &RunStatus| match s {
            RunStatus::OutputClosed => 0,
            RunStatus::Interrupted => 1,
            RunStatus::Complete => u8::MAX,
            other => 1 + other.code(),
        };
        statuses
            .into_iter()
            .min_by_key(rank)
            .unwrap_or(RunStatus::Complete)
    }
}

/// A handler process handled its whole input (or was asked to stop) and ran `cleanup`.
pub const HANDLER_DONE: u8 = 0;
/// A handler or reader process could not start (environment, configuration, `init`,
/// attaching): the launcher does not restart it.
pub const HANDLER_COULD_NOT_START: u8 = 2;
/// The launcher aborted the pipeline (a handler's view), or nobody was left to publish to
/// (the reader's).
pub const HANDLER_ABORTED: u8 = 3;
/// A handler process handled its whole input, but with errors: some handler methods returned
/// errors, some output could not be written or committed. The launcher does not restart it
/// and reports the run as failed ([`RunStatus::Failed`]).
pub const HANDLER_FINISHED_WITH_ERRORS: u8 = 4;
/// A handler process stopped because its output failed (a commit failed) and its block says
/// `"commit_failure": "fail"`: the launcher does not restart it and reports the run as
/// failed ([`RunStatus::Failed`]); what it did not acknowledge was not written.
pub const HANDLER_OUTPUT_FAILED: u8 = 5;
/// The reader read its whole input, but some input file gave no record at all; the launcher
/// ends the run with [`RunStatus::InputError`].
pub const READER_FILES_WITHOUT_RECORDS: u8 = 6;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_closed_output_then_interruption_then_the_lowest_number() {
        use RunStatus::*;
        assert_eq!(RunStatus::worst([]), Complete);
        assert_eq!(RunStatus::worst([Dropped, DeadLettered]), DeadLettered);
        assert_eq!(RunStatus::worst([Dropped, StateLost, Failed]), Failed);
        assert_eq!(RunStatus::worst([InputError, StateLost]), InputError);
        assert_eq!(RunStatus::worst([Failed, Interrupted]), Interrupted);
        assert_eq!(RunStatus::worst([Interrupted, OutputClosed]), OutputClosed);
        assert_eq!(
            [
                Complete,
                Failed,
                CouldNotStart,
                InputError,
                StateLost,
                DeadLettered,
                Dropped,
                Interrupted,
                OutputClosed
            ]
            .map(RunStatus::code),
            [0, 1, 2, 3, 4, 5, 6, 130, 141]
        );
    }
}
