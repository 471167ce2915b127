//! A record's lineage: its process followed by that process's ancestors, as the reference's
//! `proc.aname`, `aexe`, `acmdline`, `apid` and `sf.pproc.*` attributes read them.
//!
//! The reference computes this list (its "process tree") once per process: the first time a
//! flow or event of that process comes after a header, from the entity versions known at
//! that moment, and then keeps it (`core/cache/tables.go` `GetPtree`). So a process that
//! `exec`s later keeps its pre-exec image in `aexe[0]` and `aname[0]`, and its parent's
//! attributes stay those of the parent as it was then. [`AncestryCache`] reproduces that
//! ([`AncestorMode::FirstSeen`]); [`AncestorMode::Current`] reads the current versions of
//! the record's context instead. Which one the engine uses, and why, is in the crate README.
//!
//! The cache is public so that other handlers (the exporter's `proc.aname` ...) can follow
//! the same rule: call [`AncestryCache::clear`] at each header and
//! [`AncestryCache::lineage`] for each flow or event, in stream order.

use handler_sdk::Context;
use handler_sdk::model::{Oid, Process};
use rustc_hash::FxHashMap;

/// Which versions of the process and its ancestors the lineage attributes read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AncestorMode {
    /// As the reference: the versions at the process's first flow or event after a header.
    FirstSeen,
    /// The versions in the record's context now.
    Current,
}

/// The attributes of one process of a lineage, kept as they were when first seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcSnap {
    /// Executable (trimmed).
    pub exe: Box<str>,
    /// Arguments (trimmed).
    pub args: Box<str>,
    /// User id.
    pub uid: i32,
    /// User name.
    pub user: Box<str>,
    /// Group id.
    pub gid: i32,
    /// Group name.
    pub group: Box<str>,
    /// TTY attached.
    pub tty: bool,
    /// Container entry point.
    pub entry: bool,
    /// Host PID.
    pub pid: i64,
}

impl ProcSnap {
    /// The snapshot of `p`.
    pub fn of(p: &Process) -> Self {
        ProcSnap {
            exe: p.exe.trim().into(),
            args: p.exe_args.trim().into(),
            uid: p.uid,
            user: p.user_name.as_str().into(),
            gid: p.gid,
            group: p.group_name.as_str().into(),
            tty: p.tty,
            entry: p.entry,
            pid: p.oid.hpid,
        }
    }
}

/// One process of a lineage: a current entity or a kept snapshot.
#[derive(Debug, Clone, Copy)]
pub enum ProcView<'a> {
    /// The current version.
    Live(&'a Process),
    /// The version first seen.
    Snap(&'a ProcSnap),
}

impl<'a> ProcView<'a> {
    /// Executable.
    pub fn exe(self) -> &'a str {
        match self {
            ProcView::Live(p) => p.exe.trim(),
            ProcView::Snap(s) => &s.exe,
        }
    }
    /// Arguments.
    pub fn args(self) -> &'a str {
        match self {
            ProcView::Live(p) => p.exe_args.trim(),
            ProcView::Snap(s) => &s.args,
        }
    }
    /// User id.
    pub fn uid(self) -> i32 {
        match self {
            ProcView::Live(p) => p.uid,
            ProcView::Snap(s) => s.uid,
        }
    }
    /// User name.
    pub fn user(self) -> &'a str {
        match self {
            ProcView::Live(p) => &p.user_name,
            ProcView::Snap(s) => &s.user,
        }
    }
    /// Group id.
    pub fn gid(self) -> i32 {
        match self {
            ProcView::Live(p) => p.gid,
            ProcView::Snap(s) => s.gid,
        }
    }
    /// Group name.
    pub fn group(self) -> &'a str {
        match self {
            ProcView::Live(p) => &p.group_name,
            ProcView::Snap(s) => &s.group,
        }
    }
    /// TTY attached.
    pub fn tty(self) -> bool {
        match self {
            ProcView::Live(p) => p.tty,
            ProcView::Snap(s) => s.tty,
        }
    }
    /// Container entry point.
    pub fn entry(self) -> bool {
        match self {
            ProcView::Live(p) => p.entry,
            ProcView::Snap(s) => s.entry,
        }
    }
    /// Host PID.
    pub fn pid(self) -> i64 {
        match self {
            ProcView::Live(p) => p.oid.hpid,
            ProcView::Snap(s) => s.pid,
        }
    }
}

/// A record's process and its ancestors, process first.
#[derive(Debug, Clone, Copy)]
pub enum Lineage<'a> {
    /// Read from the context (current versions).
    Current(Context<'a>),
    /// Kept snapshots.
    FirstSeen(&'a [ProcSnap]),
}

impl<'a> Lineage<'a> {
    /// The `i`-th process: 0 the record's process, 1 its parent, ...
    pub fn nth(&self, i: usize) -> Option<ProcView<'a>> {
        match self {
            Lineage::FirstSeen(s) => s.get(i).map(ProcView::Snap),
            Lineage::Current(ctx) => {
                let p = ctx.process()?;
                if i == 0 {
                    Some(ProcView::Live(p))
                } else {
                    ctx.ancestors().nth(i - 1).map(ProcView::Live)
                }
            }
        }
    }

    /// Every process, the record's first.
    pub fn iter(&self) -> impl Iterator<Item = ProcView<'a>> + 'a {
        let (snaps, ctx) = match *self {
            Lineage::FirstSeen(s) => (Some(s), None),
            Lineage::Current(c) => (None, Some(c)),
        };
        let live = ctx.into_iter().flat_map(|c| {
            c.process()
                .into_iter()
                .chain(c.ancestors())
                .map(ProcView::Live)
        });
        snaps
            .into_iter()
            .flat_map(|s| s.iter().map(ProcView::Snap))
            .chain(live)
    }
}

/// The reference's per-process lineage cache (see the module docs). Cleared at each header;
/// holds one snapshot list per process seen since.
#[derive(Debug, Default)]
pub struct AncestryCache {
    snaps: FxHashMap<Oid, Box<[ProcSnap]>>,
}

impl AncestryCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets every lineage (call at each header, as the reference resets its tables).
    pub fn clear(&mut self) {
        self.snaps.clear();
    }

    /// Number of processes kept.
    pub fn len(&self) -> usize {
        self.snaps.len()
    }

    /// Whether no process is kept.
    pub fn is_empty(&self) -> bool {
        self.snaps.is_empty()
    }

    /// The lineage of the process `oid` of a record with context `ctx`: kept from the
    /// process's first record since the last [`clear`](Self::clear), else taken from `ctx`
    /// now and kept. A process the tables do not know has an empty lineage, and keeps it.
    pub fn lineage<'a>(&'a mut self, oid: Oid, ctx: &Context<'_>) -> Lineage<'a> {
        let snaps = self.snaps.entry(oid).or_insert_with(|| {
            ctx.process()
                .into_iter()
                .chain(ctx.ancestors())
                .map(ProcSnap::of)
                .collect()
        });
        Lineage::FirstSeen(snaps)
    }
}
