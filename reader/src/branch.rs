//! The branch table of a trace: for each branch of the writer's `rec` union, the writer's
//! record name and the model record type it resolves to (by name and shape, see
//! `fast/resolve.rs`). Built once per file or socket connection; the union index of a datum
//! picks its branch.

use sf_processor::model::RecordKind;

/// One branch of the `rec` union of a writer's `sysflow.SysFlow` schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Branch {
    /// The writer's full record name, e.g. `sysflow.flow.FileFlow` (or the Avro type for a
    /// branch that is not a record, e.g. `string`).
    pub name: String,
    /// The model record type this branch resolves to; `None` for a branch that resolves to
    /// none (a datum of it is reported as
    /// [`DecodeError::UnknownBranch`](crate::error::DecodeError::UnknownBranch)). The earliest
    /// layouts' `sysflow.flow.ProcessFlow` with the fields of a process event resolves to
    /// [`RecordKind::ProcessEvent`].
    pub kind: Option<RecordKind>,
}

impl Branch {
    /// The record name without its namespace (`FileFlow`), as errors print it.
    pub fn simple_name(&self) -> &str {
        self.name.rsplit('.').next().unwrap_or(&self.name)
    }
}

/// The branches of the `rec` union of one writer schema, in union order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchTable {
    branches: Vec<Branch>,
}

impl BranchTable {
    /// A table of these branches, in union order.
    pub fn new(branches: Vec<Branch>) -> Self {
        BranchTable { branches }
    }

    /// The branch at a union index.
    pub fn get(&self, index: u32) -> Option<&Branch> {
        self.branches.get(usize::try_from(index).ok()?)
    }

    /// Every branch, in union order.
    pub fn branches(&self) -> &[Branch] {
        &self.branches
    }

    /// The union index of the first branch that resolves to `kind`.
    pub fn index_of(&self, kind: RecordKind) -> Option<u32> {
        let i = self.branches.iter().position(|b| b.kind == Some(kind))?;
        u32::try_from(i).ok()
    }
}
