//! The reference's semantics the engine keeps, and the reference bug it does not copy
//! (doubled flow counters), on records built with the SDK's entity tables.

use handler_sdk::EntityTables;
use handler_sdk::model::*;
use sf_policy::ancestry::{AncestryCache, Lineage};
use sf_policy::attrs::{Event, Rec};
use sf_policy::compiler::{Options, compile_sources};
use sf_policy::ir::Scratch;

fn process(hpid: i64, parent: Option<i64>, exe: &str, args: &str, state: ObjectState) -> Record {
    Record::Process(Process {
        state,
        oid: Oid { create_ts: 1, hpid },
        poid: parent.map(|p| Oid {
            create_ts: 1,
            hpid: p,
        }),
        ts: 1,
        exe: exe.into(),
        exe_args: args.into(),
        uid: 33,
        user_name: "www-data".into(),
        gid: 33,
        group_name: "www-data".into(),
        tty: false,
        container_id: None,
        entry: false,
        cwd: String::new(),
        env: vec![],
    })
}

fn file_flow(hpid: i64, rbytes: i64) -> FileFlow {
    FileFlow {
        proc_oid: Oid { create_ts: 1, hpid },
        ts: 5,
        tid: hpid,
        op_flags: op_flags::OPEN | op_flags::READ_RECV,
        open_flags: 1,
        end_ts: 6,
        file_oid: Foid([7; 20]),
        fd: 3,
        num_r_recv_ops: 1,
        num_w_send_ops: 0,
        num_r_recv_bytes: rbytes,
        num_w_send_bytes: 0,
    }
}

fn tables() -> EntityTables {
    let mut t = EntityTables::new();
    for r in [
        Record::Header(SfHeader {
            version: 5,
            exporter: "h".into(),
            ip: "NA".into(),
            filename: "/x/1669702292".into(),
        }),
        process(
            1,
            None,
            "/usr/sbin/apache2",
            "-k start",
            ObjectState::Created,
        ),
        process(
            2,
            Some(1),
            "/bin/bash",
            "-c cat /etc/passwd",
            ObjectState::Created,
        ),
        Record::File(File {
            state: ObjectState::Created,
            oid: Foid([7; 20]),
            ts: 1,
            restype: 'f' as i32,
            path: "\"/etc/passwd\"".into(),
            container_id: None,
        }),
    ] {
        assert!(t.store(r).is_none());
    }
    t
}

/// The rules of `src` that hold for a file flow of pid 2 reading `rbytes` bytes.
fn matches(src: &str, rbytes: i64) -> Vec<String> {
    let set = compile_sources(&[("t.yaml".into(), src.into())], Options::default()).unwrap();
    let t = tables();
    let ff = file_flow(2, rbytes);
    let rec = Record::FileFlow(ff.clone());
    let ctx = t.context_for(9, &rec);
    let r = Rec {
        kind: RecordKind::FileFlow,
        ev: Event::file_flow(&ff),
        ctx,
        lineage: Lineage::Current(ctx),
    };
    let mut matched = Vec::new();
    assert!(
        set.evaluate(&r, &mut Scratch::new(), &mut matched),
        "not dropped"
    );
    matched
        .iter()
        .map(|i| set.rules[*i as usize].policy.id.clone())
        .collect()
}

fn rule(name: &str, cond: &str) -> String {
    format!("- rule: {name}\n  desc: d\n  condition: {cond}\n  priority: low\n")
}

#[test]
fn flow_counters_are_the_records_own_not_doubled_as_in_the_reference() {
    // The reference sums the file and network slots of its flat record, which are the same
    // slot: it sees 1200 bytes here, and `ttps.yaml`'s `sf.flow.rbytes > 1024` would hold.
    let src = rule("big", "sf.flow.rbytes > 1024")
        + &rule("exact", "sf.flow.rbytes = 600 and sf.flow.rops = 1");
    assert_eq!(matches(&src, 600), ["exact"]);
    assert_eq!(matches(&src, 1025), ["big"]);
}

#[test]
fn comparisons_split_on_commas_pmatch_is_containment_numbers_default_to_zero() {
    let src = [
        rule("split", "sf.proc.aname = apache2"),
        rule("split-rhs", "sf.proc.name = \"sh,bash\""),
        rule("pmatch", "sf.proc.exe pmatch (ash, nothing)"),
        rule("zero", "sf.proc.name < 1 and sf.proc.name >= 0"),
        rule(
            "exists",
            "sf.file.path exists and not sf.net.sport exists and sf.res exists",
        ),
        rule(
            "quotes",
            "sf.file.path = /etc/passwd and fd.name = passwd and sf.file.directory = /etc",
        ),
        rule(
            "opflags",
            "sf.opflags = READ and not sf.opflags = RECV and evt.type in (OPEN)",
        ),
        rule("unknown", "sf.res = sf.res"),
        rule("not-equal", "sf.proc.aname != bash"),
    ]
    .concat();
    assert_eq!(
        matches(&src, 1),
        [
            "split",
            "split-rhs",
            "pmatch",
            "zero",
            "exists",
            "quotes",
            "opflags",
            "unknown"
        ]
    );
}

#[test]
fn merged_specialised_and_shared_tests_keep_their_meaning() {
    // The compiler merges `or`s of one operand (and `and`s of negated ones), reads
    // openflags and booleans as bits, and evaluates a test used by several rules once per
    // record: none of it may change an outcome. The flow: pid 2 (bash, parent apache2, no
    // tty) opens /etc/passwd read-only (openflags 1 = RDONLY).
    let shared = "sf.proc.exe contains bash and sf.proc.name pmatch (ba, zz)";
    let src = [
        rule("of-rdonly", "sf.file.openflags = RDONLY"),
        rule("of-creat-none", "sf.file.openflags in (CREAT, NONE)"),
        rule(
            "of-or",
            "sf.file.openflags = CREAT or sf.file.openflags = RDONLY",
        ),
        rule("read-true", "sf.file.is_open_read = true"),
        rule("read-false", "sf.file.is_open_read = false"),
        rule("write-in-false", "sf.file.is_open_write in (false, x)"),
        rule("ptty-false", "sf.pproc.tty = false"),
        rule("ptty-zero", "sf.pproc.tty = 0"),
        rule(
            "starts-etc",
            "sf.file.path startswith /usr or sf.file.path startswith /etc",
        ),
        rule(
            "starts-var",
            "sf.file.path startswith /usr or sf.file.path startswith /var",
        ),
        rule(
            "mixed-or",
            "sf.proc.name = zsh or sf.proc.name in (sh, ksh) or sf.proc.name contains as",
        ),
        rule(
            "not-bash",
            "not sf.proc.name = bash and not sf.proc.name = sh",
        ),
        rule(
            "not-zsh",
            "not sf.proc.name = zsh and not sf.proc.name = sh",
        ),
        rule("opflags-or", "sf.opflags = EXEC or sf.opflags = OPEN"),
        rule(
            "shared-1",
            &format!("{shared} and sf.file.path = /etc/passwd"),
        ),
        rule("shared-2", &format!("{shared} and sf.file.path = /x")),
        rule("shared-3", &format!("not ({shared}) or fd.name = passwd")),
    ]
    .concat();
    assert_eq!(
        matches(&src, 1),
        [
            "of-rdonly",
            "of-or",
            "read-true",
            "write-in-false",
            "ptty-false",
            "starts-etc",
            "mixed-or",
            "not-zsh",
            "opflags-or",
            "shared-1",
            "shared-3"
        ]
    );
    // The same rules one by one (nothing shared between rules) agree.
    let one_by_one: Vec<String> = src
        .split("- rule: ")
        .filter(|r| !r.is_empty())
        .flat_map(|r| matches(&format!("- rule: {r}"), 1))
        .collect();
    assert_eq!(one_by_one, matches(&src, 1));
}

#[test]
fn later_macros_replace_earlier_ones_append_is_ignored_undefined_macros_are_false() {
    let src = "- macro: m\n  condition: sf.type = PE\n".to_string()
        + &rule("before", "m")
        + "- macro: m\n  condition: sf.type = FF\n  append: true\n"
        + &rule("after", "m")
        + &rule("undefined", "not_defined or sf.type = PE")
        + "- macro: m\n  condition: sf.type = NE\n";
    // `before` sees the file's last definition (the reference's first pass), `after` the
    // one above it.
    assert_eq!(matches(&src, 1), ["after"]);
    let set = compile_sources(&[("t.yaml".into(), src)], Options::default()).unwrap();
    assert_eq!(set.diagnostics.len(), 1);
    assert_eq!(
        set.diagnostics[0].to_string(),
        "t.yaml:16:14: undefined macro \"not_defined\": the term is false, as in the reference"
    );
}

#[test]
fn priorities_tags_enabled_and_prefilter() {
    let src = "- rule: a\n  desc: d\n  condition: sf.type = FF\n  priority: WARNING\n  tags: [x, 'mitre:T1']\n\
               - rule: b\n  desc: d\n  condition: sf.type = FF\n  priority: alert\n  enabled: false\n\
               - rule: c\n  desc: d\n  condition: sf.type = FF\n  priority: critical\n  prefilter: [PE]\n";
    let set = compile_sources(&[("t.yaml".into(), src.into())], Options::default()).unwrap();
    let p: Vec<(i64, Vec<String>)> = set
        .rules
        .iter()
        .map(|r| (r.policy.priority, r.policy.tags.clone()))
        .collect();
    assert_eq!(
        p,
        [
            (2, vec!["x".into(), "mitre:T1".into()]),
            (1, vec![]),
            (3, vec![])
        ]
    );
    assert_eq!(
        matches(src, 1),
        ["a"],
        "b is disabled, c applies to process events only"
    );
    assert!(
        set.diagnostics[0]
            .to_string()
            .ends_with("unrecognized priority \"alert\": low, as the reference does")
    );
}

#[test]
fn first_seen_lineage_keeps_the_pre_exec_image_as_the_reference_current_reads_the_exec() {
    let mut t = tables();
    let mut cache = AncestryCache::new();
    let oid = Oid {
        create_ts: 1,
        hpid: 2,
    };
    let ff = file_flow(2, 1);
    let aexe = |l: Lineage<'_>| l.iter().map(|p| p.exe().to_owned()).collect::<Vec<_>>();
    {
        let ctx = t.context_for(9, &Record::FileFlow(ff.clone()));
        assert_eq!(
            aexe(cache.lineage(oid, &ctx)),
            ["/bin/bash", "/usr/sbin/apache2"]
        );
    }
    // pid 2 execs `cat`.
    assert!(
        t.store(process(
            2,
            Some(1),
            "/bin/cat",
            "/etc/passwd",
            ObjectState::Modified
        ))
        .is_none()
    );
    let ctx = t.context_for(10, &Record::FileFlow(ff));
    assert_eq!(
        aexe(cache.lineage(oid, &ctx)),
        ["/bin/bash", "/usr/sbin/apache2"],
        "first seen"
    );
    assert_eq!(
        aexe(Lineage::Current(ctx)),
        ["/bin/cat", "/usr/sbin/apache2"],
        "current"
    );
    cache.clear();
    assert_eq!(
        aexe(cache.lineage(oid, &ctx)),
        ["/bin/cat", "/usr/sbin/apache2"],
        "after a header"
    );
}
