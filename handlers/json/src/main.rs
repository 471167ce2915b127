//! `json`: writes one JSON object per flow and event record (and per entity record when
//! asked), one per line, to standard output or to a file, in the layout of the SysFlow
//! processor's JSON export (`sf-processor` `core/exporter/encoders/json.go`, JSON schema
//! version 5).
//!
//! ```json
//! {"processor": "sysflowreader", "handler": "json", "in": "sysflow sysflowchan",
//!  "file": "/var/log/sysflow.jsonl", "entities": false}
//! ```
//!
//! - `file` (optional): the file to append the lines to (created if missing, never
//!   truncated, so a restarted handler continues it); standard output when absent, empty or
//!   `-`.
//! - `entities` (default `false`): also write header, container, pod, process and file
//!   records.
//! - `buffer` (default 65536): bytes of lines kept before they are written. Lines are written
//!   when the buffer is full and at every commit (the SDK's: before it acknowledges records,
//!   at least once a second while records arrive, when idle, at the end); `0` writes every
//!   line as it is made. A handler killed by a signal loses what its buffer held, and its
//!   restart writes those lines again: records are acknowledged only once their lines were
//!   written, so the file has every record (a few may be there twice), whatever `buffer`.
//! - `fsync` (default `false`): a file is also `fsync`ed (`fdatasync`) at every commit, so
//!   that what was acknowledged survives a crash of the machine, not only of the handler.
//! - `seq` (default `false`): add `"seq"`, the record's sequence number in the stream (an
//!   extension: the reference has none), so that a consumer can tell records apart and drop
//!   the few a restarted handler writes twice.
//!
//! A line torn by a kill in the middle of its `write(2)` (a file only: what reached standard
//! output stays there) is cut off when the next process opens the file: its record was not
//! acknowledged, so the line comes again, whole. A write that fails (a full disk) loses
//! nothing either: the lines stay buffered, records are not acknowledged, and the SDK
//! commits again later; at the end of the input, lines still unwritten fail the run.
//!
//! # Chained: policies
//!
//! Downstream of a handler that annotates records, such as `alert` with an `"out"` channel
//! (`resources/pipelines/pipeline.alert.json`), a record that carries policies (the rules
//! it matched) gets the reference exporter's keys after its sections: `"policies"`, one
//! `{"id", "desc", "priority"}` object per rule, then `"tags"`, the rules' tags, when there
//! are any:
//!
//! ```json
//! {"processor": "sysflowreader", "handler": "alert", "in": "sysflow sysflowchan", "out": "evt alertchan", "rules": [...]},
//! {"processor": "exporter", "handler": "json", "in": "evt alertchan", "seq": true}
//! ```
//!
//! ```text
//! {"version":5,"endts":0,"opflags":["EXEC"],"ret":0,"ts":1669702299671000026,"type":"PE","container":{...},"meta":{...},"node":{...},"pproc":{...},"proc":{...,"exe":"/bin/bash",...},"seq":52,"policies":[{"id":"shell-from-web-server","desc":"a shell started under a web server","priority":2}]}
//! ```
//!
//! # Layout
//!
//! Every object starts with `"version":5` and the record's `endts`, `opflags`, `ret`, `ts`
//! and `type` (`PE`, `PF`, `FF`, `FE`, `NF`, `NE`, `KE`), followed by these sections, in this
//! order, each only where it applies:
//!
//! | section | when | keys |
//! |---|---|---|
//! | `container` | the process runs in a known container | `id`, `image`, `imageid`, `name`, `privileged`, `type` (`DOCKER`, `CRIO`, ...) |
//! | `file` | file flows and events | `directory`, `fd`*, `is_open_read`*, `is_open_write`*, `name`, `newdirectory`, `newname`, `newoid`, `newpath`, `oid`, `openflags`* (names), `path`, `type` (letter) |
//! | `flow` | file and network flows | `rbytes`, `rops`, `wbytes`, `wops` |
//! | `k8s` | k8s events | `action`, `kind`, `message` |
//! | `meta` | always | `filename`, `schema`, `tracename` |
//! | `net` | network flows and events | `dip`, `dport`, `fd`*, `ip` (`[sip, dip]`), `port` (`[sport, dport]`), `proto`, `sip`, `sport` |
//! | `node` | always | `id` (exporter), `ip` |
//! | `pf` | process flows | `nerrors`, `nexits`, `nthreads` |
//! | `pod` | the container's pod is known | `hostip` (array), `id`, `internalip` (array), `name`, `namespace`, `nodename`, `restartcnt`, `services`, `ts` |
//! | `pproc` | the parent process is known | `args`, `cmdline`, `createts`, `cwd`, `entry`, `env` (array), `exe`, `gid`, `group`, `name`, `pid`, `tty`, `uid`, `user` |
//! | `proc` | all but k8s events | `acmdline`, `aexe`, `aname`, `apid` (the process and its ancestors), `args`, `cmdline`, `createts`, `cwd`, `entry`, `env` (array), `exe`, `gid`, `group`, `name`, `pid`, `tid`, `tty`, `uid`, `user` |
//!
//! (* file flows only for `file`, network flows only for `net`.) Timestamps are nanoseconds
//! since the epoch; IPv4 addresses are dotted quads; `opflags` and `openflags` are the
//! reference's names (`["OPEN", "READ", "CLOSE"]`, `["RDONLY", "CLOEXEC"]`; a network flow's
//! reads and writes are `RECV` and `SEND`). One line per kind, as written for the shared
//! traces (long sections elided with `...`):
//!
//! ```text
//! {"version":5,"endts":0,"opflags":["EXEC"],"ret":0,"ts":1553543280704111050,"type":"PE","meta":{"filename":"","schema":1000,"tracename":""},"node":{"id":"tests","ip":"NA"},"pproc":{"args":"","cmdline":"/usr/bin/bash","createts":0,"cwd":"","entry":false,"env":[],"exe":"/usr/bin/bash","gid":1000,"group":"ccsi","name":"bash","pid":7955,"tty":true,"uid":1000,"user":"ccsi"},"proc":{"acmdline":["./server","/usr/bin/bash",...],"aexe":["./server","/usr/bin/bash",...],"aname":["server","bash",...],"apid":[13823,7955,...],"args":"","cmdline":"./server","createts":0,"cwd":"","entry":false,"env":[],"exe":"./server","gid":-1,"group":"","name":"server","pid":13823,"tid":13823,"tty":true,"uid":-1,"user":""}}
//! {"version":5,"endts":1553543280704242055,"opflags":["OPEN","CLOSE"],"ret":0,"ts":1553543280704232185,"type":"FF","file":{"directory":"/etc","fd":3,"is_open_read":true,"is_open_write":false,"name":"ld.so.cache","newdirectory":"","newname":"","newoid":"","newpath":"","oid":"8d57b8c634ff3c042c2d003a93f46a7bc6cc86da","openflags":["RDONLY","CLOEXEC"],"path":"/etc/ld.so.cache","type":"f"},"flow":{"rbytes":0,"rops":0,"wbytes":0,"wops":0},"meta":{...},"node":{...},"pproc":{...},"proc":{...}}
//! {"version":5,"endts":0,"opflags":["MKDIR"],"ret":0,"ts":1554914834718229740,"type":"FE","file":{"directory":"/tmp","name":"testing_dir","newdirectory":"","newname":"","newoid":"","newpath":"","oid":"916afa22696236e887df5f1e5025c2adee44e3c9","path":"/tmp/testing_dir","type":"?"},"meta":{...},"node":{...},"pproc":{...},"proc":{...}}
//! {"version":5,"endts":1553543292823002683,"opflags":["CONNECT","SEND","RECV","TRUNCATE"],"ret":0,"ts":1553543282832225890,"type":"NF","flow":{"rbytes":80,"rops":1,"wbytes":80,"wops":1},"meta":{...},"net":{"dip":"127.0.0.1","dport":8080,"fd":3,"ip":["127.0.0.1","127.0.0.1"],"port":[40556,8080],"proto":6,"sip":"127.0.0.1","sport":40556},"node":{...},"pproc":{...},"proc":{...}}
//! {"version":5,"endts":1647544504410939817,"opflags":[],"ret":0,"ts":1647544504410939817,"type":"KE","k8s":{"action":"K8S_COMPONENT_MODIFIED","kind":"K8S_PODS","message":"{\"apiVersion\":\"v1\",...}\n\u0000"},"meta":{"filename":"/mnt/data/1647544455","schema":4,"tracename":"1647544455"},"node":{"id":"minikube","ip":"192.168.59.100"}}
//! ```
//!
//! In a container, `container` and `pod` come before `file`:
//! `"container":{"id":"8f2eec3f3cf3","image":"sha256:a4ca...:v1.8.6","imageid":"a4ca...","name":"k8s_coredns_...","privileged":false,"type":"DOCKER"}`,
//! `"pod":{"hostip":["192.168.59.100"],"id":"60244c1a-...","internalip":["172.17.0.2"],"name":"coredns-64897985d-n4jjl","namespace":"kube-system","nodename":"minikube","restartcnt":0,"services":[{"id":"2136...","name":"kube-dns","namespace":"kube-system","clusterIP":["10.96.0.10"],"ports":[{"port":53,"targetport":53,"nodeport":0,"proto":"UDP"}]}],"ts":1647542837829249000}`.
//! A process flow (`PF`) has `pf` (`nerrors`, `nexits`, `nthreads`) and no `tid`; a network
//! event (`NE`) has `net` without `fd`.
//!
//! With `entities`, entity records are objects too, with `type` `H`, `C`, `PD`, `P` or `F`,
//! `state` (processes and files), `ts` (pods, processes, files) and their own section
//! (`container`, `pod`, `proc` with `pproc`, `file`), plus `node` and `meta`.
//!
//! # Differences from the reference export
//!
//! - The output is always valid JSON: a pod's `hostip`, `internalip` and services'
//!   `clusterIP` are JSON arrays with commas (the reference writes `["a""b"]` for two IPs).
//! - Process flows (`PF`, with `pf`) and network events (`NE`) are written: the reference
//!   reader drops them. `ret` is also given for network events.
//! - Extensions the reference has no key for: `cwd` and `env` of `proc` and `pproc` (schema 5),
//!   `net.fd`, `meta.filename` (the whole path; `tracename` is its last component); two
//!   open modes the collector sets and the reference leaves unnamed, `TMPFILE` (1 << 13) and
//!   `F_CREATED` (1 << 14), so that `openflags` loses no bit.
//! - `container.privileged` is a JSON boolean (the reference writes 0 or 1).
//! - `pproc` appears when the parent process entity is known (the reference writes a `pproc`
//!   with the `poid`'s PID and empty names when the parent entity is missing).
//! - No `oid` hashes for processes, no `symlink` keys, and a file event has no `fd`,
//!   `openflags`, `is_open_*` (the reference writes 0 and `["NONE"]`). An empty path's
//!   `name` and `directory` are `""` (Go's `filepath` gives `.`); `cmdline` has no trailing
//!   space when there are no arguments.
//! - No `policies` or `tags`: there is no policy engine here.

mod encode;

use std::io::Write;

use handler_sdk::prelude::*;
use serde::Serialize;
use serde_json::Value;

/// Default size of the line buffer, bytes.
const DEFAULT_BUFFER: usize = 64 * 1024;

/// Where the lines go: each `write` is one `write(2)`, no buffer in between.
enum Output {
    /// A duplicate of descriptor 1 (not `std::io::Stdout`, whose line buffer could hold
    /// bytes a failed write reported as not taken).
    Stdout(std::fs::File),
    File(std::fs::File),
}

impl Output {
    fn write_some(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Output::Stdout(f) | Output::File(f) => f.write(buf),
        }
    }
}

/// Lines waiting to be written, and the output. Bytes leave `pending` only once `write(2)`
/// took them, so a failed or partial write loses nothing.
struct Lines {
    out: Output,
    pending: Vec<u8>,
    /// Bytes that trigger a write (the `buffer` setting; 0: every line).
    limit: usize,
    fsync: bool,
    /// A write failed since the last commit: leave the retries to the commits.
    failing: bool,
}

impl Lines {
    fn push(&mut self, line: &[u8]) {
        self.pending.extend_from_slice(line);
        if self.pending.len() >= self.limit.max(1) && !self.failing && self.write_out().is_err() {
            self.failing = true;
        }
    }

    /// Writes every pending byte; on failure keeps what was not written.
    fn write_out(&mut self) -> std::io::Result<()> {
        let mut done = 0;
        let result = loop {
            if done == self.pending.len() {
                break Ok(());
            }
            match self.out.write_some(&self.pending[done..]) {
                Ok(0) => break Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        self.pending.drain(..done);
        result
    }

    /// Everything written (and synced, with `fsync`, for a file).
    fn commit(&mut self) -> std::io::Result<()> {
        self.write_out()?;
        self.failing = false;
        if self.fsync
            && let Output::File(f) = &self.out
        {
            f.sync_data()?;
        }
        Ok(())
    }
}

/// The handler's settings, from its pipeline block.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Settings {
    /// `None`: standard output.
    file: Option<String>,
    entities: bool,
    buffer: usize,
    seq: bool,
    fsync: bool,
}

/// A boolean attribute: a JSON boolean, or the strings `true`/`false` (as an environment
/// override gives).
fn bool_attr(value: Option<&Value>, key: &str) -> Result<Option<bool>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s == "true" => Ok(Some(true)),
        Some(Value::String(s)) if s == "false" => Ok(Some(false)),
        Some(other) => Err(format!("\"{key}\" must be true or false, not {other}")),
    }
}

/// A byte count: a non-negative JSON integer or a string of one.
fn size_attr(value: Option<&Value>, key: &str) -> Result<Option<usize>, String> {
    let parsed = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_u64().and_then(|n| usize::try_from(n).ok()),
        Some(Value::String(s)) => s.trim().parse().ok(),
        Some(_) => None,
    };
    match parsed {
        Some(n) => Ok(Some(n)),
        None => Err(format!(
            "\"{key}\" must be a number of bytes, not {}",
            value.map_or(String::new(), Value::to_string)
        )),
    }
}

impl Settings {
    fn from_config(config: &HandlerConfig) -> Result<Settings, String> {
        let a = &config.attributes;
        let file = match a.get("file") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() || s == "-" => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => return Err(format!("\"file\" must be a path, not {other}")),
        };
        Ok(Settings {
            file,
            entities: bool_attr(a.get("entities"), "entities")?.unwrap_or(false),
            buffer: size_attr(a.get("buffer"), "buffer")?.unwrap_or(DEFAULT_BUFFER),
            seq: bool_attr(a.get("seq"), "seq")?.unwrap_or(false),
            fsync: bool_attr(a.get("fsync"), "fsync")?.unwrap_or(false),
        })
    }
}

/// The json handler: serializes each record's line into `line`, then hands it whole to the
/// buffered output.
struct Json {
    entities: bool,
    seq: bool,
    out: Option<Lines>,
    /// Where the output goes, for messages.
    target: String,
    line: Vec<u8>,
    lines: u64,
}

impl Default for Json {
    fn default() -> Self {
        Json {
            entities: false,
            seq: false,
            out: None,
            target: "standard output".into(),
            line: Vec::with_capacity(4096),
            lines: 0,
        }
    }
}

impl Json {
    /// Buffers `line` (one JSON object and a newline), written when the buffer is full and
    /// at the next commit. A record that upstream handlers annotated gets the reference's
    /// `policies` and `tags` keys; with `seq`, every record gets its sequence number.
    fn emit(&mut self, ctx: &Context<'_>, line: &impl Serialize) -> HandlerResult {
        self.line.clear();
        if ctx.policies().is_empty() && !self.seq {
            serde_json::to_writer(&mut self.line, line)?;
        } else {
            let seq = self.seq.then(|| ctx.seq());
            serde_json::to_writer(
                &mut self.line,
                &encode::Annotated::new(line, seq, ctx.policies()),
            )?;
        }
        self.line.push(b'\n');
        let out = self.out.as_mut().ok_or("json: not initialised")?;
        out.push(&self.line);
        self.lines += 1;
        Ok(())
    }
}

impl Handler for Json {
    fn init(&mut self, config: &HandlerConfig) -> HandlerResult {
        let settings = Settings::from_config(config).map_err(|e| format!("json: {e}"))?;
        let output = match &settings.file {
            None => {
                use std::os::fd::AsFd as _;
                let fd = std::io::stdout()
                    .as_fd()
                    .try_clone_to_owned()
                    .map_err(|e| format!("json: standard output: {e}"))?;
                Output::Stdout(std::fs::File::from(fd))
            }
            Some(path) => {
                self.target = path.clone();
                let file = std::fs::File::options()
                    .create(true)
                    .append(true)
                    .read(true)
                    .open(path)
                    .map_err(|e| format!("json: {path}: {e}"))?;
                // A line a killed predecessor left half-written: its record comes again.
                handler_sdk::output::cut_torn_line(&file)
                    .map_err(|e| format!("json: {path}: {e}"))?;
                Output::File(file)
            }
        };
        self.out = Some(Lines {
            out: output,
            pending: Vec::with_capacity(settings.buffer.min(1 << 20)),
            limit: settings.buffer,
            fsync: settings.fsync,
            failing: false,
        });
        self.entities = settings.entities;
        self.seq = settings.seq;
        Ok(())
    }

    fn entities_enabled(&self) -> bool {
        self.entities
    }
    fn handle_header(&mut self, ctx: &Context<'_>, h: &SfHeader) -> HandlerResult {
        self.emit(ctx, &encode::header(ctx, h))
    }
    fn handle_container(&mut self, ctx: &Context<'_>, c: &Container) -> HandlerResult {
        self.emit(ctx, &encode::container(ctx, c))
    }
    fn handle_pod(&mut self, ctx: &Context<'_>, p: &Pod) -> HandlerResult {
        self.emit(ctx, &encode::pod(ctx, p))
    }
    fn handle_process(&mut self, ctx: &Context<'_>, p: &Process) -> HandlerResult {
        self.emit(ctx, &encode::process(ctx, p))
    }
    fn handle_file(&mut self, ctx: &Context<'_>, f: &File) -> HandlerResult {
        self.emit(ctx, &encode::file(ctx, f))
    }
    fn handle_process_event(&mut self, ctx: &Context<'_>, e: &ProcessEvent) -> HandlerResult {
        self.emit(ctx, &encode::process_event(ctx, e))
    }
    fn handle_process_flow(&mut self, ctx: &Context<'_>, f: &ProcessFlow) -> HandlerResult {
        self.emit(ctx, &encode::process_flow(ctx, f))
    }
    fn handle_file_flow(&mut self, ctx: &Context<'_>, f: &FileFlow) -> HandlerResult {
        self.emit(ctx, &encode::file_flow(ctx, f))
    }
    fn handle_file_event(&mut self, ctx: &Context<'_>, e: &FileEvent) -> HandlerResult {
        self.emit(ctx, &encode::file_event(ctx, e))
    }
    fn handle_network_flow(&mut self, ctx: &Context<'_>, f: &NetworkFlow) -> HandlerResult {
        self.emit(ctx, &encode::network_flow(ctx, f))
    }
    fn handle_network_event(&mut self, ctx: &Context<'_>, e: &NetworkEvent) -> HandlerResult {
        self.emit(ctx, &encode::network_event(ctx, e))
    }
    fn handle_k8s_event(&mut self, ctx: &Context<'_>, e: &K8sEvent) -> HandlerResult {
        self.emit(ctx, &encode::k8s_event(ctx, e))
    }

    fn commit(&mut self) -> HandlerResult {
        let out = self.out.as_mut().ok_or("json: not initialised")?;
        out.commit()
            .map_err(|e| format!("{}: {e}", self.target).into())
    }

    fn cleanup(&mut self) {
        // The SDK committed before: nothing is left to write unless that failed (and was
        // counted as lost output).
        log::debug!("json: {} lines written to {}", self.lines, self.target);
    }
}

fn main() -> std::process::ExitCode {
    handler_sdk::run(Json::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(attrs: Value) -> HandlerConfig {
        HandlerConfig::new("json", attrs.as_object().cloned().unwrap_or_default())
    }

    #[test]
    fn settings_defaults_and_overrides() {
        let base =
            json!({"processor": "sysflowreader", "handler": "json", "in": "sysflow sysflowchan"});
        assert_eq!(
            Settings::from_config(&config(base)),
            Ok(Settings {
                file: None,
                entities: false,
                buffer: DEFAULT_BUFFER,
                seq: false,
                fsync: false
            })
        );
        assert_eq!(
            Settings::from_config(&config(
                json!({"file": "/tmp/x.jsonl", "entities": "true", "buffer": "0", "fsync": true})
            )),
            Ok(Settings {
                file: Some("/tmp/x.jsonl".into()),
                entities: true,
                buffer: 0,
                seq: false,
                fsync: true
            })
        );
        assert_eq!(
            Settings::from_config(&config(json!({"file": "-"}))).map(|s| s.file),
            Ok(None)
        );
    }

    #[test]
    fn bad_settings_name_the_key() {
        for (attrs, want) in [
            (
                json!({"entities": 1}),
                "\"entities\" must be true or false, not 1",
            ),
            (
                json!({"buffer": -5}),
                "\"buffer\" must be a number of bytes, not -5",
            ),
            (json!({"file": 3}), "\"file\" must be a path, not 3"),
        ] {
            assert_eq!(Settings::from_config(&config(attrs)), Err(want.to_owned()));
        }
    }

    #[test]
    fn lines_are_written_whole_at_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let mut h = Json::default();
        h.init(&config(json!({"file": path.to_str().unwrap()})))
            .unwrap();
        let mut tables = handler_sdk::EntityTables::new();
        let ke = K8sEvent {
            kind: K8sComponent::Pods,
            action: K8sAction::Deleted,
            ts: 1,
            message: "m".into(),
        };
        let rec = Record::K8sEvent(ke.clone());
        for _ in 0..3 {
            h.handle_k8s_event(&tables.context_for(1, &rec), &ke)
                .unwrap();
        }
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "",
            "still buffered"
        );
        h.commit().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3);
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["k8s"]["action"], "K8S_COMPONENT_DELETED");
        }
    }
}
