//! The context every handler sees is the one the official SysFlow tools compute.
//!
//! For every trace in `../shared/traces` that has an oracle (`../shared/oracle`, what the
//! official printer `sysprint -o json -K` prints, see `ORACLE.md`), `sf-launch` runs the
//! exporter on it (`format` `json`, the reference exporter's layout, with `json.extensions`
//! for the working directory, environment, network descriptor and trace path the reference's
//! layout drops), every line of its output must parse, and its records are compared with the
//! oracle's, in order, on every field `ORACLE.md` lists. A failure names the trace, the
//! field, how many records differ on it, and the first one with both values.
//!
//! The two sides do not write "nothing" the same way, so some values are mapped before they
//! are compared; each mapping is in [`our_value`] with its reason, and each one *checks* the
//! value it maps (a mapped value that is not the one the convention predicts shows up as a
//! difference). In short:
//!
//! - The printer writes a missing value as `""` or `null` and cannot tell an empty string
//!   from a missing one; the exporter leaves a section out when it does not apply. So `""`
//!   is read as `null` on both sides, and a key the exporter does not write is `null`.
//! - Where the reference JSON export writes a zero the printer writes `null`: `ret` of flows
//!   and k8s events, `endts` of events (and a k8s event's `endts`, which the reference sets
//!   to its `ts`), the `opflags` of a k8s event.
//! - The printer writes what the early layout (header 1000) lacks as `""`; our model holds
//!   the reference reader's defaults (`DESIGN.md`: `entry` false, header `ip` "NA").
//! - Encodings: our `opflags`/`openflags` are names (OR-ed back into the bitmap), `env` an
//!   array (the printer joins it with `;`), `container.type` has no `CT_` prefix, a network
//!   flow's fd is `net.fd` (the printer prints it as `file.fd`), and a few keys have the
//!   reference export's names (`nodename`, `namespace`, `restartcnt`, `message`,
//!   `meta.schema`, `meta.filename`).
//! - `proc.args`/`pproc.args` are compared trimmed on both sides: `ORACLE.md` says the
//!   printer prints `exeArgs` trimmed, as our reader stores them, but five oracle records are
//!   not trimmed (three in `1621959914` print `" "`, two in `k8s_small.sf` end with a
//!   space), so the printer's trimming is not reliable; every other byte must match.
//!
//! Where the reference exporter's layout itself says things differently from the printer
//! (each counted, and the counts printed; `handlers/exporter/README.md`):
//!
//! - `container.privileged` is 0/1 (the printer: false/true);
//! - a file event has `fd` 0 and `openflags` `["NONE"]` (the printer: nothing);
//! - open modes are the reference's names only: the collector's `TMPFILE` and `F_CREATED`
//!   bits (13, 14) are not named, so they are compared without them;
//! - a Unix socket's path `SRC->DST PATH` is split into `symlink` and `path`; file paths
//!   are trimmed of surrounding white space (as the reference reader does);
//! - a k8s event's message is written without the collector's trailing newline and NUL;
//! - a parent the stream never described still has a `pproc` section, with its OID's pid and
//!   creation time and "unknown" values (`""`, -1, false), where the printer prints nothing.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use common::*;

/// The one shared trace without an oracle: the official printer crashes on it (TRACES.md).
const NO_ORACLE: &str = "tcp-procflow-v1000.sf";

/// The January-2019 layout, which the official tools do not read (no oracle), and its
/// process events (`TRACES.md`); in `../shared/traces-2019` until moved into `traces`.
const JANUARY_2019: [(&str, usize); 2] =
    [("play-mon.1548965896", 143), ("play-mon.1548966016", 180)];

/// The oracle fields compared: `ORACLE.md`'s, in its order, and a few more the oracle holds
/// and our json writes: the parent's `tty`, `entry`, `cwd` and `env` (schema 5 gives the
/// working directory and environment of the parent where the process's are empty), and
/// `file.type` (`ORACLE.md` explains its letter).
const FIELDS: &[&str] = &[
    "type",
    "ts_uts",
    "endts_uts",
    "opflags_bitmap",
    "ret",
    "proc.pid",
    "proc.tid",
    "proc.uid",
    "proc.user",
    "proc.gid",
    "proc.group",
    "proc.exe",
    "proc.args",
    "proc.tty",
    "proc.entry",
    "proc.createts",
    "proc.cwd",
    "proc.env",
    "pproc.pid",
    "pproc.exe",
    "pproc.args",
    "pproc.uid",
    "pproc.user",
    "pproc.gid",
    "pproc.group",
    "pproc.createts",
    "pproc.tty",
    "pproc.entry",
    "pproc.cwd",
    "pproc.env",
    "file.fd",
    "file.path",
    "file.newpath",
    "file.openflags",
    "file.type",
    "net.proto",
    "net.sip",
    "net.sport",
    "net.dip",
    "net.dport",
    "flow.rbytes",
    "flow.rops",
    "flow.wbytes",
    "flow.wops",
    "container.id",
    "container.name",
    "container.image",
    "container.imageid",
    "container.type",
    "container.privileged",
    "pod.id",
    "pod.name",
    "pod.nname",
    "pod.ns",
    "pod.hostip",
    "pod.internalip",
    "pod.rstrtcnt",
    "node.id",
    "node.ip",
    "filename",
    "schema",
    "k8s.action",
    "k8s.kind",
    "k8s.msg",
];

/// The opFlags bits by the names our json writes (`RECV`/`SEND` are a network flow's
/// `READ`/`WRITE`).
const OP_FLAG_BITS: &[(&str, i64)] = &[
    ("CLONE", 1 << 0),
    ("EXEC", 1 << 1),
    ("EXIT", 1 << 2),
    ("SETUID", 1 << 3),
    ("SETNS", 1 << 4),
    ("ACCEPT", 1 << 5),
    ("CONNECT", 1 << 6),
    ("OPEN", 1 << 7),
    ("READ", 1 << 8),
    ("RECV", 1 << 8),
    ("WRITE", 1 << 9),
    ("SEND", 1 << 9),
    ("CLOSE", 1 << 10),
    ("TRUNCATE", 1 << 11),
    ("SHUTDOWN", 1 << 12),
    ("MMAP", 1 << 13),
    ("DIGEST", 1 << 14),
    ("MKDIR", 1 << 15),
    ("RMDIR", 1 << 16),
    ("LINK", 1 << 17),
    ("UNLINK", 1 << 18),
    ("SYMLINK", 1 << 19),
    ("RENAME", 1 << 20),
];

/// The openFlags bits by the names our json writes (`RDWR` is both `RDONLY` and `WRONLY`).
const OPEN_FLAG_BITS: &[(&str, i64)] = &[
    ("NONE", 0),
    ("RDONLY", 1 << 0),
    ("WRONLY", 1 << 1),
    ("RDWR", 3),
    ("CREAT", 1 << 2),
    ("APPEND", 1 << 3),
    ("DSYNC", 1 << 4),
    ("EXCL", 1 << 5),
    ("NONBLOCK", 1 << 6),
    ("SYNC", 1 << 7),
    ("TRUNC", 1 << 8),
    ("DIRECT", 1 << 9),
    ("DIRECTORY", 1 << 10),
    ("LARGEFILE", 1 << 11),
    ("CLOEXEC", 1 << 12),
    ("TMPFILE", 1 << 13),
    ("F_CREATED", 1 << 14),
];

/// The value at a dotted path, `Null` where any part is missing.
fn get<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.')
        .try_fold(v, |v, key| v.get(key))
        .unwrap_or(&Value::Null)
}

/// A value our json must have for a convention to apply, read as `null`; any other value is
/// kept (as a string saying what was expected) so that it shows up as a difference.
fn null_if(ours: &Value, expected: &Value, why: &str) -> Value {
    if ours == expected {
        Value::Null
    } else {
        Value::String(format!("{ours} (expected {expected}: {why})"))
    }
}

thread_local! {
    /// How often each difference of the reference exporter's layout was mapped.
    static NAMED: std::cell::RefCell<BTreeMap<&'static str, usize>> =
        const { std::cell::RefCell::new(BTreeMap::new()) };
}

/// Counts one use of the layout difference `name` when `mapped` differs from `original`,
/// and returns `mapped`.
fn named(name: &'static str, original: &Value, mapped: Value) -> Value {
    if &mapped != original {
        NAMED.with(|n| *n.borrow_mut().entry(name).or_default() += 1);
    }
    mapped
}

/// The open modes the reference exporter's layout does not name (`TMPFILE`, `F_CREATED`).
const UNNAMED_OPEN_FLAGS: i64 = (1 << 13) | (1 << 14);

/// The oracle's value for `field`, mapped where the reference exporter's layout cannot say
/// it (see the module documentation).
fn oracle_value(oracle: &Value, field: &str) -> Value {
    let v = get(oracle, field);
    match field {
        "file.openflags" => match v.as_i64() {
            Some(bits) => named(
                "open modes TMPFILE, F_CREATED not named",
                v,
                json!(bits & !UNNAMED_OPEN_FLAGS),
            ),
            None => v.clone(),
        },
        // The reference reader trims white space around file paths.
        "file.path" | "file.newpath" => match v.as_str() {
            Some(p) => named("file path trimmed", v, json!(p.trim())),
            None => v.clone(),
        },
        "k8s.msg" => match v.as_str() {
            Some(m) if m.ends_with("\n\0") => named(
                "k8s message without the trailing newline and NUL",
                v,
                json!(m.trim_end_matches(['\n', '\0'])),
            ),
            _ => v.clone(),
        },
        _ => v.clone(),
    }
}

/// Whether `ours` has a `pproc` section for a parent the stream never described: its OID's
/// pid and creation time, "unknown" for the rest.
fn unknown_parent(ours: &Value) -> bool {
    get(ours, "pproc.exe") == "" && get(ours, "pproc.user") == "" && get(ours, "pproc.uid") == -1
}

/// OR of the bits of `names` (a JSON array of strings), or a string naming what is wrong.
fn bits(names: &Value, table: &[(&str, i64)]) -> Value {
    let Some(names) = names.as_array() else {
        return names.clone();
    };
    let mut bits = 0;
    for name in names {
        match table.iter().find(|(n, _)| Some(*n) == name.as_str()) {
            Some((_, bit)) => bits |= bit,
            None => return Value::String(format!("unknown flag name {name}")),
        }
    }
    json!(bits)
}

/// Our json's value for the oracle field `field` of a record, mapped to the oracle's
/// conventions (see the module documentation).
fn our_value(ours: &Value, field: &str) -> Value {
    let kind = ours["type"].as_str().unwrap_or_default();
    // The early layout (header 1000/1001) has no `entry` and no header `ip`.
    let early = get(ours, "meta.schema").as_i64().unwrap_or(0) >= 1000;
    match field {
        "ts_uts" => ours["ts"].clone(),
        // The reference export writes 0 for the end of an event and a k8s event's own `ts`;
        // the printer writes null for both.
        "endts_uts" => match kind {
            "PE" | "FE" | "NE" => null_if(&ours["endts"], &json!(0), "an event has no end"),
            "KE" => null_if(
                &ours["endts"],
                &ours["ts"],
                "a k8s event ends when it starts",
            ),
            _ => ours["endts"].clone(),
        },
        // Names back into the bitmap; a k8s event has no opFlags: [] here, "" in the oracle.
        "opflags_bitmap" => match kind {
            "KE" => null_if(&ours["opflags"], &json!([]), "a k8s event has no opFlags"),
            _ => bits(&ours["opflags"], OP_FLAG_BITS),
        },
        // Flows (and k8s events) have no return code: the reference export writes 0, the
        // printer null.
        "ret" => match kind {
            "FF" | "NF" | "PF" | "KE" => null_if(&ours["ret"], &json!(0), "no return code"),
            _ => ours["ret"].clone(),
        },
        // The printer prints `""` where the early layout has no `entry`; our model's default
        // for a missing `entry` is false (DESIGN.md).
        "proc.entry" | "pproc.entry" if early && !get(ours, field).is_null() => null_if(
            get(ours, field),
            &json!(false),
            "the early layout has no entry",
        ),
        // The printer joins the environment with ';'.
        "proc.env" | "pproc.env" => match get(ours, field).as_array() {
            Some(vars) => Value::String(
                vars.iter()
                    .map(|v| v.as_str().unwrap_or("<not a string>"))
                    .collect::<Vec<_>>()
                    .join(";"),
            ),
            None => Value::Null,
        },
        // The printer prints a network flow's descriptor under `file`.
        "file.fd" if kind == "NF" => get(ours, "net.fd").clone(),
        // The reference's layout gives a file event a descriptor and open modes it has not.
        "file.fd" if kind == "FE" => named(
            "file event fd 0",
            get(ours, field),
            null_if(
                get(ours, field),
                &json!(0),
                "a file event has no descriptor",
            ),
        ),
        "file.openflags" if kind == "FE" => named(
            "file event openflags [\"NONE\"]",
            get(ours, field),
            null_if(
                get(ours, field),
                &json!(["NONE"]),
                "a file event has no open modes",
            ),
        ),
        "file.openflags" => bits(get(ours, "file.openflags"), OPEN_FLAG_BITS),
        // A Unix socket's `SRC->DST PATH`, split by the reference into `symlink` and `path`.
        "file.path" => match get(ours, "file.symlink").as_str() {
            Some(sym) if !sym.is_empty() => named(
                "socket path split into symlink and path",
                get(ours, field),
                json!(format!("{sym} {}", get(ours, field).as_str().unwrap_or(""))),
            ),
            _ => get(ours, field).clone(),
        },
        "container.privileged" => match get(ours, field).as_i64() {
            Some(0) => named("privileged 0/1", get(ours, field), json!(false)),
            Some(1) => named("privileged 0/1", get(ours, field), json!(true)),
            _ => get(ours, field).clone(),
        },
        // A parent never described: the printer prints nothing.
        "pproc.pid" | "pproc.createts" if unknown_parent(ours) => named(
            "unknown parent's pproc section",
            get(ours, field),
            Value::Null,
        ),
        "pproc.uid" | "pproc.gid" if unknown_parent(ours) => named(
            "unknown parent's pproc section",
            get(ours, field),
            null_if(get(ours, field), &json!(-1), "an unknown parent's id"),
        ),
        "pproc.tty" | "pproc.entry" if unknown_parent(ours) => named(
            "unknown parent's pproc section",
            get(ours, field),
            null_if(get(ours, field), &json!(false), "an unknown parent's flag"),
        ),
        // The reference export drops the schema symbol's `CT_` prefix; the printer keeps it.
        "container.type" => match get(ours, "container.type").as_str() {
            Some(t) => Value::String(format!("CT_{t}")),
            None => Value::Null,
        },
        // The same values under the reference export's names.
        "pod.nname" => get(ours, "pod.nodename").clone(),
        "pod.ns" => get(ours, "pod.namespace").clone(),
        "pod.rstrtcnt" => get(ours, "pod.restartcnt").clone(),
        "k8s.msg" => get(ours, "k8s.message").clone(),
        "filename" => get(ours, "meta.filename").clone(),
        "schema" => get(ours, "meta.schema").clone(),
        // The early layout's header has no `ip`: the printer prints `""`, our model holds the
        // reference reader's default "NA" (DESIGN.md).
        "node.ip" if early => null_if(get(ours, "node.ip"), &json!("NA"), "no ip before schema 2"),
        other => get(ours, other).clone(),
    }
}

/// What both sides mean by a value: `""` is "missing" (the printer cannot tell them apart),
/// and `args` are trimmed (see the module documentation).
fn canonical(field: &str, v: Value) -> Value {
    match v {
        Value::String(s) if field == "proc.args" || field == "pproc.args" => {
            let t = s.trim();
            if t.is_empty() {
                Value::Null
            } else {
                Value::String(t.to_owned())
            }
        }
        Value::String(s) if s.is_empty() => Value::Null,
        other => other,
    }
}

/// How record `index` of `trace` differs from the oracle's on `field`, if it does.
fn field_difference(
    trace: &str,
    index: usize,
    ours: &Value,
    oracle: &Value,
    field: &str,
) -> Option<String> {
    let mine = canonical(field, our_value(ours, field));
    let theirs = canonical(field, oracle_value(oracle, field));
    (mine != theirs).then(|| {
        format!(
            "{trace}: record {index} (line {}, type {}): field {field}: json {mine} != oracle {theirs}",
            index + 1,
            oracle["type"]
        )
    })
}

/// The first field on which record `index` of `trace` differs from the oracle's.
fn first_difference(trace: &str, index: usize, ours: &Value, oracle: &Value) -> Option<String> {
    FIELDS
        .iter()
        .find_map(|field| field_difference(trace, index, ours, oracle, field))
}

fn read_oracle(path: &Path) -> Vec<Value> {
    let file = std::fs::File::open(path)
        .unwrap_or_else(|e| panic!("{}: {e} (the tests need ../shared)", path.display()));
    BufReader::new(flate2::read::GzDecoder::new(file))
        .lines()
        .enumerate()
        .map(|(i, line)| {
            let line = line.unwrap_or_else(|e| panic!("{}: line {}: {e}", path.display(), i + 1));
            // `str::parse` runs serde_json's own (optimised) instance of the parser.
            line.parse::<Value>()
                .unwrap_or_else(|e| panic!("{}: line {}: {e}", path.display(), i + 1))
        })
        .collect()
}

/// Every shared trace (`traces`, and `traces-2019` while it is there), in name order, with
/// its oracle file if it has one.
fn shared_traces() -> Vec<(PathBuf, Option<PathBuf>)> {
    let mut traces: Vec<PathBuf> = std::fs::read_dir(shared().join("traces"))
        .expect("../shared/traces")
        .map(|e| e.expect("a trace").path())
        .collect();
    if let Ok(entries) = std::fs::read_dir(shared().join("traces-2019")) {
        traces.extend(entries.map(|e| e.expect("a trace").path()));
    }
    traces.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    // Moved into traces/ but left in traces-2019/ too: once.
    traces.dedup_by(|a, b| a.file_name() == b.file_name());
    traces
        .into_iter()
        .map(|t| {
            let name = t.file_name().unwrap().to_string_lossy().into_owned();
            let oracle = shared()
                .join("oracle")
                .join(format!("{name}.sysprint.jsonl.gz"));
            (t, oracle.exists().then_some(oracle))
        })
        .collect()
}

/// Records whose process's and parent's `cwd` and `env` are not empty:
/// (proc.cwd, proc.env, pproc.cwd, pproc.env). The oracle joins `env` into a string, our
/// json writes an array.
fn cwd_env_counts(records: &[Value]) -> [usize; 4] {
    let filled = |v: &Value| match v {
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        _ => false,
    };
    ["proc.cwd", "proc.env", "pproc.cwd", "pproc.env"]
        .map(|field| records.iter().filter(|r| filled(get(r, field))).count())
}

#[test]
fn every_record_of_every_trace_has_the_official_tools_context() {
    let traces = shared_traces();
    assert_eq!(
        traces.len(),
        17,
        "TRACES.md lists 15 traces, and 2 in traces-2019"
    );
    let without: Vec<String> = traces
        .iter()
        .filter(|(_, o)| o.is_none())
        .map(|(t, _)| t.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        without,
        [JANUARY_2019[0].0, JANUARY_2019[1].0, NO_ORACLE],
        "traces without an oracle"
    );

    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut summary = Vec::new();
    let mut totals: BTreeMap<&str, usize> = BTreeMap::new();
    for (trace, oracle) in &traces {
        let name = trace.file_name().unwrap().to_string_lossy().into_owned();
        // Every line of every trace's output parses (json_output fails the test otherwise).
        let ours = json_output(dir.path(), trace);
        let Some(oracle) = oracle else {
            let kinds: Vec<&str> = ours.iter().filter_map(|r| r["type"].as_str()).collect();
            if let Some((_, events)) = JANUARY_2019.iter().find(|(n, _)| *n == name) {
                // Process events only, each a clone, an exec or an exit with its process.
                assert_eq!(kinds, vec!["PE"; *events], "{name}");
                for r in &ours {
                    let flags = r["opflags"].clone();
                    assert!(
                        [json!(["CLONE"]), json!(["EXEC"]), json!(["EXIT"])].contains(&flags),
                        "{name}: {r}"
                    );
                    assert!(
                        get(r, "proc.exe").as_str().is_some_and(|e| !e.is_empty()),
                        "{name}: {r}"
                    );
                }
            } else {
                // The earliest layout: four process events (written as ProcessFlow) and two
                // network flows (TRACES.md).
                assert_eq!(kinds, ["PE", "PE", "NF", "PE", "NF", "PE"], "{name}");
            }
            summary.push(format!("{name}: {} records, no oracle", ours.len()));
            continue;
        };
        let theirs = read_oracle(oracle);
        if ours.len() != theirs.len() {
            failures.push(format!(
                "{name}: {} flow/event records in the json output, {} in the oracle",
                ours.len(),
                theirs.len()
            ));
        }
        let mut per_field: BTreeMap<&str, (usize, String)> = BTreeMap::new();
        for (i, (o, t)) in ours.iter().zip(&theirs).enumerate() {
            for field in FIELDS {
                if let Some(diff) = field_difference(&name, i, o, t, field) {
                    let e = per_field.entry(field).or_insert((0, diff));
                    e.0 += 1;
                }
            }
        }
        for (field, (n, first)) in per_field {
            failures.push(format!("{n} records differ on {field}; the first: {first}"));
        }
        // Schema 5 carries the working directory and environment: they must arrive.
        if get(&theirs[0], "schema") == &json!(5) {
            let want = cwd_env_counts(&theirs);
            assert!(
                want[0] + want[2] > 0 && want[1] + want[3] > 0,
                "{name}: the oracle has no cwd/env to check: {want:?}"
            );
            assert_eq!(
                cwd_env_counts(&ours),
                want,
                "{name}: records with a non-empty proc.cwd, proc.env, pproc.cwd, pproc.env: json vs oracle"
            );
        }
        let counts = NAMED.with(|n| std::mem::take(&mut *n.borrow_mut()));
        summary.push(format!(
            "{name}: {} records x {} fields compared; layout differences mapped: {counts:?}",
            theirs.len(),
            FIELDS.len()
        ));
        for (k, v) in counts {
            *totals.entry(k).or_default() += v;
        }
    }
    eprintln!("{}\nin all: {totals:?}", summary.join("\n"));
    // Each layout difference is there, as often as it shows on these traces (counted, not
    // assumed): values mapped over all traces (the unknown parents: 103 records of
    // k8s_small.sf x 6 fields).
    let want: BTreeMap<&str, usize> = [
        ("privileged 0/1", 55_227),
        ("file event fd 0", 305),
        ("file event openflags [\"NONE\"]", 305),
        ("open modes TMPFILE, F_CREATED not named", 264),
        ("socket path split into symlink and path", 50),
        ("k8s message without the trailing newline and NUL", 4),
        ("file path trimmed", 23),
        ("unknown parent's pproc section", 618),
    ]
    .into_iter()
    .collect();
    assert_eq!(totals, want, "layout differences mapped");
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn schema_5_traces_deliver_cwd_and_env() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["tcp-client-server-v5.sf", "filesat-v5.sf"] {
        let ours = json_output(dir.path(), &shared().join("traces").join(name));
        let first = &ours[0];
        assert_eq!(get(first, "meta.schema"), &json!(5), "{name}");
        let [_, env, pcwd, penv] = cwd_env_counts(&ours);
        // In both traces the collector saw the processes' environment and their parents'
        // working directory and environment (the processes' own cwd is empty, as in the
        // oracle).
        assert!(
            env > 0 && pcwd > 0 && penv > 0,
            "{name}: env in {env}, parent cwd in {pcwd}, parent env in {penv} records"
        );
        let pe = ours.iter().find(|r| r["type"] == "PE").expect("a PE");
        for section in ["proc", "pproc"] {
            let vars = get(pe, &format!("{section}.env"));
            assert!(
                vars.as_array().is_some_and(|vars| !vars.is_empty()
                    && vars
                        .iter()
                        .all(|v| v.as_str().is_some_and(|s| s.contains('=')))),
                "{name}: {section}.env is KEY=VALUE strings: {pe}"
            );
        }
        assert!(
            get(pe, "pproc.cwd")
                .as_str()
                .is_some_and(|s| s.starts_with('/')),
            "{name}: {pe}"
        );
    }
}

/// `json.extensions` adds exactly its keys to the reference's layout, nothing else: the
/// same trace exported without it gives the same objects once they are taken out.
#[test]
fn the_extensions_only_add_their_keys() {
    let dir = tempfile::tempdir().unwrap();
    let trace = shared().join("traces/tcp-client-server-v5.sf");
    let extended = json_output(dir.path(), &trace);
    let plain_out = dir.path().join("plain.jsonl");
    let pipeline = write_blocks(
        dir.path(),
        &[
            json!({"processor": "exporter", "in": "sysflow sysflowchan", "export": "file",
                 "format": "json", "file.path": plain_out}),
        ],
    );
    let run = launch(dir.path(), &[&pipeline, &trace]);
    assert!(run.status.success(), "{run:?}");
    let plain: Vec<Value> = std::fs::read_to_string(&plain_out)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(plain.len(), extended.len());
    assert_eq!(plain.len(), 10);
    let mut added = BTreeMap::<String, usize>::new();
    for (p, e) in plain.iter().zip(&extended) {
        let mut e = e.clone();
        for (section, key) in [
            ("proc", "cwd"),
            ("proc", "env"),
            ("pproc", "cwd"),
            ("pproc", "env"),
            ("net", "fd"),
            ("meta", "filename"),
        ] {
            if let Some(s) = e.get_mut(section).and_then(Value::as_object_mut)
                && s.remove(key).is_some()
            {
                *added.entry(format!("{section}.{key}")).or_default() += 1;
            }
        }
        assert_eq!(&e, p);
    }
    // Every record has proc, pproc and meta sections; the 2 network flows a descriptor.
    assert_eq!(
        added,
        [
            ("meta.filename", 10),
            ("net.fd", 2),
            ("pproc.cwd", 10),
            ("pproc.env", 10),
            ("proc.cwd", 10),
            ("proc.env", 10)
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    );
    assert_clean(dir.path());
}

#[test]
fn a_difference_names_the_trace_record_field_and_both_values() {
    let ours = json!({"version": 5, "type": "NF", "ts": 5, "endts": 6, "opflags": ["CONNECT"],
                      "ret": 0, "net": {"sip": "10.0.0.1", "dip": "10.0.0.2", "fd": 4},
                      "meta": {"schema": 4}});
    let mut oracle = json!({"type": "NF", "ts_uts": 5, "endts_uts": 6, "opflags_bitmap": 64,
                            "ret": null, "net": {"sip": "10.0.0.1", "dip": "10.0.0.2"},
                            "file": {"fd": 4}, "schema": 4});
    assert_eq!(first_difference("t.sf", 7, &ours, &oracle), None);
    oracle["net"]["dip"] = json!("10.0.0.3");
    assert_eq!(
        first_difference("t.sf", 7, &ours, &oracle).as_deref(),
        Some(
            "t.sf: record 7 (line 8, type \"NF\"): field net.dip: json \"10.0.0.2\" != oracle \"10.0.0.3\""
        )
    );
    // A convention checks the value it maps: a flow's ret must be 0 to read as null.
    let mut odd = ours.clone();
    odd["ret"] = json!(3);
    oracle["net"]["dip"] = json!("10.0.0.2");
    let diff = first_difference("t.sf", 0, &odd, &oracle).unwrap_or_default();
    assert!(
        diff.contains("field ret: json \"3 (expected 0: no return code)\""),
        "{diff}"
    );
}
