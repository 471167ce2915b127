//! Entity tables and the context of a record, built as the reference `sysflowreader` does
//! (`sf-processor` `core/processor/reader.go` and `core/cache/tables.go`):
//!
//! - containers by `id`, pods by `id`, processes by [`Oid`], files by [`Foid`]; the last record
//!   of an entity wins;
//! - a header starts a new generation of the tables; lookups fall back to the previous
//!   generation, so records of a new trace file still resolve entities written in the previous
//!   file (the reference keeps the two last generations);
//! - a flow or event gets its process by `procOID`, the process's container by `containerId`,
//!   the container's pod by `podId`, its file by `fileOID` and its new file by `newFileOID`;
//!   the ancestors follow `poid`.
//!
//! Tables hash with foldhash (fast, seeded per process), and a record's references are each
//! looked up once: the [`Context`] keeps what the lookup found.

use std::cell::Cell;

use foldhash::HashMap;

use crate::chain::{Emission, Policy};
use crate::model::{Container, File, Foid, Oid, Pod, Process, Record, SfHeader};

/// One generation of entity tables.
#[derive(Debug, Default, Clone)]
struct Generation {
    containers: HashMap<String, Container>,
    pods: HashMap<String, Pod>,
    processes: HashMap<Oid, Process>,
    files: HashMap<Foid, File>,
}

/// Counters of references that did not resolve (a record naming an entity never seen).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MissingCounts {
    /// `procOID` with no process.
    pub processes: u64,
    /// `fileOID`/`newFileOID` with no file.
    pub files: u64,
    /// `containerId` with no container.
    pub containers: u64,
    /// `podId` with no pod.
    pub pods: u64,
}

/// The entity tables of one SysFlow stream, as a handler sees them.
#[derive(Debug, Default, Clone)]
pub struct EntityTables {
    header: Option<SfHeader>,
    current: Generation,
    previous: Generation,
    /// A `Cell` so that [`EntityTables::context`] can count while it hands out references.
    missing: Cell<MissingCounts>,
    /// See [`EntityTables::epoch`].
    epoch: u64,
}

/// The longest ancestor chain [`Context::ancestors`] follows; guards against `poid` cycles.
pub const MAX_ANCESTORS: usize = 256;

impl EntityTables {
    /// Empty tables.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores an entity record (header, container, pod, process, file). A header starts a new
    /// generation.
    ///
    /// Gives a flow or event record back unchanged (`Some`): those are not entities.
    pub fn store(&mut self, record: Record) -> Option<Record> {
        if matches!(
            record,
            Record::Header(_) | Record::Container(_) | Record::Pod(_) | Record::Process(_)
        ) {
            self.epoch += 1;
        }
        match record {
            Record::Header(h) => {
                self.previous = std::mem::take(&mut self.current);
                self.header = Some(h);
            }
            Record::Container(c) => {
                self.current.containers.insert(c.id.clone(), c);
            }
            Record::Pod(p) => {
                self.current.pods.insert(p.id.clone(), p);
            }
            Record::Process(p) => {
                self.current.processes.insert(p.oid, p);
            }
            Record::File(f) => {
                self.current.files.insert(f.oid, f);
            }
            other => return Some(other),
        }
        None
    }

    /// A counter that changes whenever a store could change what a record's process
    /// reference resolves to: its process, ancestors, container or pod (a header, container,
    /// pod or process stored; not a file). A handler that derives something from those
    /// (an encoded lineage, a joined ancestor list) may keep it while the epoch stays the same.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The last header seen.
    pub fn header(&self) -> Option<&SfHeader> {
        self.header.as_ref()
    }

    /// The process `oid`, from this generation or the previous one.
    pub fn process(&self, oid: &Oid) -> Option<&Process> {
        self.current
            .processes
            .get(oid)
            .or_else(|| self.previous.processes.get(oid))
    }

    /// The file `foid`, from this generation or the previous one.
    pub fn file(&self, foid: &Foid) -> Option<&File> {
        self.current
            .files
            .get(foid)
            .or_else(|| self.previous.files.get(foid))
    }

    /// The container `id`, from this generation or the previous one.
    pub fn container(&self, id: &str) -> Option<&Container> {
        self.current
            .containers
            .get(id)
            .or_else(|| self.previous.containers.get(id))
    }

    /// The pod `id`, from this generation or the previous one.
    pub fn pod(&self, id: &str) -> Option<&Pod> {
        self.current
            .pods
            .get(id)
            .or_else(|| self.previous.pods.get(id))
    }

    /// Number of entities in the current generation: (containers, pods, processes, files).
    pub fn len(&self) -> (usize, usize, usize, usize) {
        let g = &self.current;
        (
            g.containers.len(),
            g.pods.len(),
            g.processes.len(),
            g.files.len(),
        )
    }

    /// Whether no entity and no header was stored yet.
    pub fn is_empty(&self) -> bool {
        self.header.is_none() && self.len() == (0, 0, 0, 0)
    }

    /// References that did not resolve so far.
    pub fn missing(&self) -> MissingCounts {
        self.missing.get()
    }

    /// Resolves `refs` (counting references that do not resolve) into the [`Context`] of the
    /// record with sequence number `seq`. Each reference is looked up once (in this
    /// generation, then the previous one).
    pub fn context(&self, seq: u64, refs: Refs) -> Context<'_> {
        let t: &EntityTables = self;
        let mut missing = t.missing.get();
        let process = refs.process.and_then(|oid| {
            let p = t.process(&oid);
            if p.is_none() {
                missing.processes += 1;
                log::debug!("no process entity for OID {oid}");
            }
            p
        });
        let mut file_of = |foid: Foid| {
            let f = t.file(&foid);
            if f.is_none() {
                missing.files += 1;
                log::debug!("no file entity for FOID {foid}");
            }
            f
        };
        let file = refs.file.and_then(&mut file_of);
        let new_file = refs.new_file.and_then(&mut file_of);
        // The container: given (file and container entities), else the process's.
        let container_id = refs
            .container
            .as_deref()
            .or_else(|| process.and_then(|p| p.container_id.as_deref()));
        let container = container_id.and_then(|id| {
            let c = t.container(id);
            if c.is_none() {
                missing.containers += 1;
                log::debug!("no container entity for ID {id}");
            }
            c
        });
        let pod_id = refs
            .pod
            .as_deref()
            .or_else(|| container.and_then(|c| c.pod_id.as_deref()));
        let pod = pod_id.and_then(|id| {
            let p = t.pod(id);
            if p.is_none() {
                missing.pods += 1;
                log::debug!("no pod entity for ID {id}");
            }
            p
        });
        t.missing.set(missing);
        Context {
            seq,
            tables: t,
            policies: &[],
            emission: None,
            process,
            container,
            pod,
            file,
            new_file,
        }
    }

    /// The [`Context`] of `record` (which, for an entity, must already be stored).
    pub fn context_for(&self, seq: u64, record: &Record) -> Context<'_> {
        self.context(seq, Refs::of(record))
    }
}

/// The entity references of one record, taken before the record is stored or handled:
/// `procOID`, `fileOID`, `newFileOID`, and for entities the entity itself.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Refs {
    /// The process (`procOID`, or a process entity's `oid`).
    pub process: Option<Oid>,
    /// The file (`fileOID`, or a file entity's `oid`).
    pub file: Option<Foid>,
    /// The second file (`newFileOID`).
    pub new_file: Option<Foid>,
    /// A container given explicitly (a file entity's `containerId`, a container's `id`);
    /// otherwise the process's container is used.
    pub container: Option<String>,
    /// A pod given explicitly (a pod entity's `id`); otherwise the container's pod is used.
    pub pod: Option<String>,
}

impl Refs {
    /// The references `record` makes.
    pub fn of(record: &Record) -> Refs {
        let mut r = Refs::default();
        match record {
            Record::Header(_) | Record::K8sEvent(_) => {}
            Record::Container(c) => r.container = Some(c.id.clone()),
            Record::Pod(p) => r.pod = Some(p.id.clone()),
            Record::Process(p) => r.process = Some(p.oid),
            Record::File(f) => {
                r.file = Some(f.oid);
                r.container = f.container_id.clone();
            }
            Record::ProcessEvent(e) => r.process = Some(e.proc_oid),
            Record::ProcessFlow(f) => r.process = Some(f.proc_oid),
            Record::NetworkFlow(f) => r.process = Some(f.proc_oid),
            Record::NetworkEvent(e) => r.process = Some(e.proc_oid),
            Record::FileFlow(f) => {
                r.process = Some(f.proc_oid);
                r.file = Some(f.file_oid);
            }
            Record::FileEvent(e) => {
                r.process = Some(e.proc_oid);
                r.file = Some(e.file_oid);
                r.new_file = e.new_file_oid;
            }
        }
        r
    }
}

/// The context of one record: its sequence number, the header, its process and that
/// process's ancestors, container and pod, its file and new file. Entities a record does
/// not reference, or that were never seen, are `None`.
///
/// Mirrors the reference `plugins.CtxSysFlow` (`Header`, `Process`, `PTree`, `Container`,
/// `Pod`, `File`, `NewFile`).
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    seq: u64,
    tables: &'a EntityTables,
    process: Option<&'a Process>,
    container: Option<&'a Container>,
    pod: Option<&'a Pod>,
    file: Option<&'a File>,
    new_file: Option<&'a File>,
    policies: &'a [Policy],
    emission: Option<&'a Emission>,
}

impl<'a> Context<'a> {
    /// The record's sequence number in the stream (1 for the first record the reader
    /// published, counting every record, entities included).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The header of the trace or collector connection the record belongs to.
    pub fn header(&self) -> Option<&'a SfHeader> {
        self.tables.header()
    }

    /// The record's process (by `procOID`; for a process entity, the process itself).
    pub fn process(&self) -> Option<&'a Process> {
        self.process
    }

    /// The parent of the record's process (by `poid`), if known.
    pub fn parent(&self) -> Option<&'a Process> {
        self.ancestors().next()
    }

    /// The ancestors of the record's process, parent first, following `poid` until a process
    /// is unknown (at most [`MAX_ANCESTORS`], so a `poid` cycle cannot loop forever).
    pub fn ancestors(&self) -> Ancestors<'a> {
        Ancestors {
            tables: self.tables,
            next: self.process.and_then(|p| p.poid),
            left: MAX_ANCESTORS,
        }
    }

    /// The container of the record's process (or of a file entity's file).
    pub fn container(&self) -> Option<&'a Container> {
        self.container
    }

    /// The pod of that container (schema 4+).
    pub fn pod(&self) -> Option<&'a Pod> {
        self.pod
    }

    /// The record's file (by `fileOID`; for a file entity, the file itself).
    pub fn file(&self) -> Option<&'a File> {
        self.file
    }

    /// The second file of a file event (by `newFileOID`), e.g. a rename target.
    pub fn new_file(&self) -> Option<&'a File> {
        self.new_file
    }

    /// All entity tables, for lookups beyond the record's own context.
    pub fn tables(&self) -> &'a EntityTables {
        self.tables
    }

    /// The policies (rules) upstream handlers matched on this record, in the order they were
    /// added; empty for a record that comes straight from the reader. See [`crate::chain`].
    pub fn policies(&self) -> &'a [Policy] {
        self.policies
    }

    /// Whether this handler has an output channel (`"out"` in its block, with a consumer):
    /// whether [`Context::emit`] sends the record anywhere.
    pub fn has_output(&self) -> bool {
        self.emission.is_some()
    }

    /// Emits this flow or event on the handler's output channel, with its sequence number,
    /// annotated with the policies it came with ([`Context::policies`]) followed by
    /// `policies` (pass `[]` to forward it as it came). It is written once the handler
    /// method returns; calling `emit` again for the same record adds policies, it does not
    /// emit it twice. Without an output, and for entity records (which the SDK forwards by
    /// itself), it does nothing.
    ///
    /// ```
    /// # use sf_processor::chain::Policy;
    /// # use sf_processor::tables::Context;
    /// fn on_match(ctx: &Context<'_>) {
    ///     ctx.emit([Policy::new("shell-from-web-server", "a shell under a web server", 2)]);
    /// }
    /// ```
    pub fn emit(&self, policies: impl IntoIterator<Item = Policy>) {
        if let Some(e) = self.emission {
            e.request(self.policies, policies);
        }
    }

    /// This context with the policies the record carries and, for a handler with an output,
    /// the slot its [`Context::emit`] requests go to (used by the handler SDK).
    pub fn chained(self, policies: &'a [Policy], emission: Option<&'a Emission>) -> Self {
        Context {
            policies,
            emission,
            ..self
        }
    }
}

/// Iterator over a process's ancestors, parent first. See [`Context::ancestors`].
#[derive(Debug, Clone, Copy)]
pub struct Ancestors<'a> {
    tables: &'a EntityTables,
    next: Option<Oid>,
    left: usize,
}

impl<'a> Iterator for Ancestors<'a> {
    type Item = &'a Process;

    fn next(&mut self) -> Option<&'a Process> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let p = self.tables.process(&self.next?)?;
        self.next = p.poid;
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;

    fn proc(hpid: i64, parent: Option<i64>, container: Option<&str>) -> Process {
        Process {
            state: ObjectState::Created,
            oid: Oid {
                create_ts: 100,
                hpid,
            },
            poid: parent.map(|p| Oid {
                create_ts: 100,
                hpid: p,
            }),
            ts: 1,
            exe: format!("/bin/p{hpid}"),
            exe_args: String::new(),
            uid: 0,
            user_name: "root".into(),
            gid: 0,
            group_name: "root".into(),
            tty: false,
            container_id: container.map(str::to_owned),
            entry: false,
            cwd: String::new(),
            env: vec![],
        }
    }

    fn header() -> Record {
        Record::Header(SfHeader {
            version: 5,
            exporter: "h".into(),
            ip: "NA".into(),
            filename: String::new(),
        })
    }

    fn pe(hpid: i64) -> Record {
        Record::ProcessEvent(ProcessEvent {
            proc_oid: Oid {
                create_ts: 100,
                hpid,
            },
            ts: 2,
            tid: hpid,
            op_flags: op_flags::EXEC,
            args: vec![],
            ret: 0,
        })
    }

    #[test]
    fn context_follows_process_container_pod_and_ancestors() {
        let mut t = EntityTables::new();
        assert!(t.store(header()).is_none());
        assert!(
            t.store(Record::Pod(Pod {
                ts: 0,
                id: "pod1".into(),
                name: "web".into(),
                node_name: "n".into(),
                host_ip: vec![],
                internal_ip: vec![],
                namespace: "default".into(),
                restart_count: 0,
                labels: vec![],
                selectors: vec![],
                services: vec![],
            }))
            .is_none()
        );
        assert!(
            t.store(Record::Container(Container {
                id: "c1".into(),
                name: "c".into(),
                image: "i".into(),
                imageid: "ii".into(),
                r#type: ContainerType::Docker,
                privileged: false,
                pod_id: Some("pod1".into()),
            }))
            .is_none()
        );
        for p in [
            proc(1, None, None),
            proc(2, Some(1), None),
            proc(3, Some(2), Some("c1")),
        ] {
            assert!(t.store(Record::Process(p)).is_none());
        }
        let rec = pe(3);
        let ctx = t.context_for(7, &rec);
        assert_eq!(ctx.seq(), 7);
        assert_eq!(ctx.process().unwrap().exe, "/bin/p3");
        assert_eq!(ctx.container().unwrap().id, "c1");
        assert_eq!(ctx.pod().unwrap().name, "web");
        let chain: Vec<i64> = ctx.ancestors().map(|p| p.oid.hpid).collect();
        assert_eq!(chain, vec![2, 1]);
        assert_eq!(ctx.parent().unwrap().oid.hpid, 2);
        assert_eq!(t.missing(), MissingCounts::default());
    }

    #[test]
    fn unknown_process_is_counted_and_none() {
        let t = EntityTables::new();
        let rec = pe(9);
        assert!(t.context_for(1, &rec).process().is_none());
        assert_eq!(t.missing().processes, 1);
    }

    #[test]
    fn the_epoch_moves_with_what_a_process_reference_resolves_to() {
        let mut t = EntityTables::new();
        let e0 = t.epoch();
        t.store(Record::Process(proc(1, None, Some("c1"))));
        let e1 = t.epoch();
        assert_ne!(e0, e1, "a process");
        t.store(Record::File(File {
            state: ObjectState::Created,
            oid: Foid([7; 20]),
            ts: 1,
            restype: i32::from(b'f'),
            path: "/etc/passwd".into(),
            container_id: None,
        }));
        assert_eq!(t.epoch(), e1, "a file changes no process's context");
        t.store(Record::Container(Container {
            id: "c1".into(),
            name: "web".into(),
            image: "nginx".into(),
            imageid: "sha".into(),
            r#type: ContainerType::Docker,
            privileged: false,
            pod_id: None,
        }));
        let e2 = t.epoch();
        assert_ne!(e2, e1, "a container");
        t.store(header());
        assert_ne!(t.epoch(), e2, "a header");
    }

    #[test]
    fn previous_generation_still_resolves_after_a_header() {
        let mut t = EntityTables::new();
        assert!(t.store(header()).is_none());
        assert!(t.store(Record::Process(proc(5, None, None))).is_none());
        assert!(t.store(header()).is_none());
        assert!(t.context_for(1, &pe(5)).process().is_some());
        assert!(t.store(header()).is_none());
        assert!(t.context_for(2, &pe(5)).process().is_none());
    }

    #[test]
    fn poid_cycle_terminates() {
        let mut t = EntityTables::new();
        assert!(t.store(Record::Process(proc(1, Some(2), None))).is_none());
        assert!(t.store(Record::Process(proc(2, Some(1), None))).is_none());
        let rec = pe(1);
        assert_eq!(t.context_for(1, &rec).ancestors().count(), MAX_ANCESTORS);
    }
}
