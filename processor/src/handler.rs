//! The handler trait (one method per SysFlow record type) and the [`Dispatcher`] that keeps
//! the entity tables and calls a handler with each record's [`Context`].
//!
//! Follows the reference `plugins.SFHandler` (`HandleHeader`, `HandleContainer`, ...,
//! `IsEntityEnabled`, `Init`, `Cleanup`), with two differences: process flows and network
//! events are delivered (the reference reader drops them), and a handler method's error is
//! counted and logged with the record's sequence number, never fatal.

use std::error::Error;
use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::chain::{Emission, Policy};
use crate::model::{
    Container, File, FileEvent, FileFlow, K8sEvent, NetworkEvent, NetworkFlow, Pod, Process,
    ProcessEvent, ProcessFlow, Record, RecordKind, SfHeader,
};
use crate::tables::{Context, EntityTables, Refs};

mod lenient;

/// The environment through which `sf-launch` hands a handler process its ring, journal and
/// configuration (read by the handler SDK's `run`).
pub mod env {
    /// Number of the inherited ring file descriptor.
    pub const RING_FD: &str = "SF_RING_FD";
    /// Number of the inherited entity-journal file descriptor.
    pub const JOURNAL_FD: &str = "SF_JOURNAL_FD";
    /// The handler's name (its `handler` key).
    pub const NAME: &str = "SF_HANDLER_NAME";
    /// The handler's pipeline block, as JSON.
    pub const CONFIG: &str = "SF_HANDLER_CONFIG";
    /// The launcher's PID: a handler whose parent is not it exits.
    pub const LAUNCHER_PID: &str = "SF_LAUNCHER_PID";
    /// A record to skip (its sequence number), after the handler crashed on it repeatedly.
    pub const SKIP_SEQ: &str = "SF_SKIP_SEQ";
    /// Why that record is skipped, e.g. `killed by signal 11 (SIGSEGV) 3 times in a row`.
    pub const SKIP_REASON: &str = "SF_SKIP_REASON";
    /// The dead-letter file (JSON lines) the skipped record is appended to.
    pub const DEAD_LETTER: &str = "SF_DEAD_LETTER";
    /// The rings of a chained handler's output channel, one per consuming handler:
    /// `NAME=FD[:drop],...` (the consumer's label, the inherited descriptor, its overflow
    /// policy), as the reader's `--ring` arguments.
    pub const OUT_RINGS: &str = "SF_OUT_RINGS";
    /// Number of the inherited descriptor of the handler's snapshot store
    /// ([`crate::snapshot`]).
    pub const SNAPSHOT_FD: &str = "SF_SNAPSHOT_FD";
    /// Where the handler's block is, for messages: `pipeline.json: pipeline[0]`.
    pub const BLOCK: &str = "SF_BLOCK";

    /// The abstract Unix socket name of the control socket of launcher `pid` run by user
    /// `uid` (`sf-launch.<uid>.<pid>`): `sf-launch ctl` and handlers' status reports use it.
    pub fn control_socket_name(uid: u32, pid: u32) -> String {
        format!("sf-launch.{uid}.{pid}")
    }
}

/// What a handler method returns: an error is logged with the record's sequence number and
/// counted; the pipeline goes on.
pub type HandlerResult = Result<(), Box<dyn Error + Send + Sync>>;

/// What [`Handler::snapshot`] returns: `Ok(Some(bytes))`, the state of a stateful handler;
/// `Ok(None)`, a stateless handler; `Err`, no snapshot could be made now (nothing new is
/// acknowledged, the SDK tries again later).
pub type SnapshotResult = Result<Option<Vec<u8>>, Box<dyn Error + Send + Sync>>;

/// The exit status of a handler process that handled its whole input, but with errors: some
/// handler methods returned errors, or some output could not be written or committed. The
/// launcher does not restart it and reports the pipeline as failed (exit 1). (The table of
/// exit statuses is [`crate::exit`].)
pub const EXIT_FINISHED_WITH_ERRORS: u8 = crate::exit::HANDLER_FINISHED_WITH_ERRORS;

/// Bytes every binary built on the handler SDK carries: the launcher looks for them before it
/// runs a handler binary with `--check-config` (a binary without them is not asked, and its
/// keys are not checked).
pub const CHECK_CONFIG_MARKER: &[u8] = b"sf-handler-sdk: answers --check-config, version 1";

/// A handler's configuration: its block of `pipeline.json` (every key, including `handler`,
/// `in`, `out`), after `<HANDLER>_<KEY>` environment overrides.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HandlerConfig {
    /// The handler's name (`handler` key of its block, e.g. `"printer"`).
    pub name: String,
    /// The block's attributes, as JSON values.
    pub attributes: Map<String, Value>,
    /// Where the block is, for messages (`pipeline.json: pipeline[0]`); empty when unknown.
    pub location: String,
    /// Attributes set by `<HANDLER>_<KEY>` environment variables: key -> variable name.
    pub overrides: std::collections::BTreeMap<String, String>,
}

impl HandlerConfig {
    /// The attribute `key` as a string, if it is one.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).and_then(Value::as_str)
    }

    /// Deserializes the whole block into the handler's own configuration type `T` (any
    /// `serde::Deserialize` type, typically a struct with `#[serde(default)]` fields).
    ///
    /// The block's keys include `handler`, `processor`, `in` and the launcher's supervision
    /// keys: a `T` with `#[serde(deny_unknown_fields)]` must declare them (or flatten them
    /// away); a `T` without it simply ignores them.
    ///
    /// Strings are taken for numbers, booleans, arrays and objects where `T` asks for those
    /// (`"top": "5"` for a `u32`, `"ports": "[80, 443]"` for a `Vec<u16>`), as in the
    /// reference, where every attribute is a string, and as a `<HANDLER>_<KEY>` environment
    /// override always is.
    ///
    /// ```
    /// # use sf_processor::handler::HandlerConfig;
    /// #[derive(Debug, serde::Deserialize)]
    /// struct Config {
    ///     #[serde(default)]
    ///     top: u32,
    /// }
    /// let block = serde_json::json!({"handler": "stats", "top": "5"});
    /// let config = HandlerConfig::new("stats", block.as_object().unwrap().clone());
    /// assert_eq!(config.parse::<Config>().unwrap().top, 5);
    ///
    /// let block = serde_json::json!({"handler": "stats", "top": "five"});
    /// let config = HandlerConfig::new("stats", block.as_object().unwrap().clone());
    /// assert_eq!(
    ///     config.parse::<Config>().unwrap_err().to_string(),
    ///     "handler \"stats\": bad configuration: top: invalid type: string \"five\", expected u32"
    /// );
    /// ```
    ///
    /// # Errors
    /// [`ConfigError`] naming the handler and the offending key (its path in the block, such
    /// as `rules[1].ports[0]`) when the block does not match `T`.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        let value = lenient::Lenient(Value::Object(self.attributes.clone()));
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            // The top-level key the error is under: did the environment set it?
            let top = path.split(['.', '[']).next().unwrap_or_default();
            ConfigError {
                handler: self.name.clone(),
                location: self.location.clone(),
                env_var: self.overrides.get(top).cloned(),
                key: (path != ".").then_some(path),
                message: e.into_inner().to_string(),
            }
        })
    }

    /// A configuration for handler `name` with these attributes.
    pub fn new(name: impl Into<String>, attributes: Map<String, Value>) -> Self {
        HandlerConfig {
            name: name.into(),
            attributes,
            ..HandlerConfig::default()
        }
    }
}

/// The keys a handler takes in its pipeline block, declared by [`Handler::config_keys`], so
/// that a misspelt key is an error at start instead of a setting silently not applied.
///
/// The launcher's keys (`processor`, `handler`, `in`, `out`, `binary`, the supervision keys)
/// and the SDK's (`commit_records`, `commit_ms`, `commit_failure`) are always allowed: see
/// [`crate::pipeline::BLOCK_KEYS`], [`crate::pipeline::SUPERVISION_KEYS`],
/// [`crate::pipeline::SDK_KEYS`].
///
/// ```
/// # use sf_processor::handler::ConfigKeys;
/// #[derive(serde::Deserialize)]
/// #[serde(default)]
/// #[derive(Default)]
/// struct Config {
///     top: usize,
///     file: String,
/// }
/// let keys = ConfigKeys::of::<Config>().ignored("jsontype", "the reference's; not used here");
/// assert_eq!(keys.keys(), ["top", "file"]);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ConfigKeys {
    keys: Vec<&'static str>,
    ignored: Vec<(&'static str, &'static str)>,
    check: Option<ValueCheck>,
}

/// A check of a block's values against a handler's configuration type.
type ValueCheck = fn(&HandlerConfig) -> Result<(), ConfigError>;

impl ConfigKeys {
    /// Exactly these keys.
    pub fn new(keys: &[&'static str]) -> Self {
        ConfigKeys {
            keys: keys.to_vec(),
            ..ConfigKeys::default()
        }
    }

    /// The fields of the handler's configuration type `T` (a struct deriving
    /// `serde::Deserialize`: its field names, renamed as serde renames them), and a check
    /// of the block's values against `T` that runs without the handler (`sf-launch check`).
    /// A type whose fields serde cannot list (a map, a `#[serde(flatten)]` struct) gives no
    /// keys: add them with [`ConfigKeys::and`].
    pub fn of<T: DeserializeOwned>() -> Self {
        ConfigKeys {
            keys: struct_fields::<T>(),
            ignored: Vec::new(),
            check: Some(|config| config.parse::<T>().map(drop)),
        }
    }

    /// These keys too.
    pub fn and(mut self, keys: &[&'static str]) -> Self {
        self.keys.extend_from_slice(keys);
        self
    }

    /// A key the handler accepts but does not use (a key of the reference's we have no use
    /// for), with why: a block that sets it gets a warning instead of an error.
    pub fn ignored(mut self, key: &'static str, why: &'static str) -> Self {
        self.ignored.push((key, why));
        self
    }

    /// Checks the block's values with the handler's own parser, for a handler whose
    /// configuration is not one serde type (it reads keys by hand): `check` runs after the
    /// key check, in `sf-launch check` and before the pipeline starts, and its error is
    /// reported as a start error naming the key.
    pub fn checked_by(mut self, check: fn(&HandlerConfig) -> Result<(), ConfigError>) -> Self {
        self.check = Some(check);
        self
    }

    /// The keys the handler uses.
    pub fn keys(&self) -> &[&'static str] {
        &self.keys
    }

    /// The keys accepted and ignored, with why.
    pub fn ignored_keys(&self) -> &[(&'static str, &'static str)] {
        &self.ignored
    }

    /// Checks `config` (the whole block): every key is the launcher's, the SDK's or the
    /// handler's (an unknown key is an error naming it, with the likeliest key meant), and
    /// its values fit the handler's type when the keys came from [`ConfigKeys::of`].
    /// Returns the warnings (ignored keys set).
    ///
    /// # Errors
    /// Every problem found (`restartlimit`: `unknown key (did you mean "restart_limit"?)`).
    pub fn check(&self, config: &HandlerConfig) -> Result<Vec<String>, Vec<KeyProblem>> {
        use crate::pipeline::{BLOCK_KEYS, SDK_KEYS, SUPERVISION_KEYS, did_you_mean};
        let known = || {
            BLOCK_KEYS
                .iter()
                .chain(&SUPERVISION_KEYS)
                .chain(&SDK_KEYS)
                .chain(&self.keys)
                .chain(self.ignored.iter().map(|(k, _)| k))
                .copied()
        };
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        for key in config.attributes.keys() {
            if let Some((_, why)) = self.ignored.iter().find(|(k, _)| k == key) {
                warnings.push(format!("{key}: accepted but has no effect here ({why})"));
            } else if !known().any(|k| k == key) {
                errors.push(KeyProblem::at(
                    key,
                    match did_you_mean(key, known()) {
                        Some(k) => format!("unknown key (did you mean {k:?}?)"),
                        None => format!(
                            "unknown key (handler {:?} takes {})",
                            config.name,
                            if self.keys.is_empty() {
                                "no keys of its own".to_owned()
                            } else {
                                self.keys
                                    .iter()
                                    .map(|k| format!("{k:?}"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            }
                        ),
                    },
                ));
            }
        }
        if errors.is_empty()
            && let Some(check) = self.check
            && let Err(e) = check(config)
        {
            errors.push(KeyProblem::from(&e));
        }
        if errors.is_empty() {
            Ok(warnings)
        } else {
            Err(errors)
        }
    }
}

/// A problem with a handler's block: the key's path in the block (`None`: the block as a
/// whole, e.g. a missing key, which the message names) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyProblem {
    /// The key's path (`restartlimit`, `rules[1].dport[0]`), with the environment variable
    /// that set it, if one did (`top (set by STATS_TOP)`).
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl KeyProblem {
    /// A problem of `key`.
    pub fn at(key: &str, message: impl Into<String>) -> Self {
        KeyProblem {
            key: Some(key.to_owned()),
            message: message.into(),
        }
    }
}

impl From<&ConfigError> for KeyProblem {
    fn from(e: &ConfigError) -> Self {
        KeyProblem {
            key: e.key().map(|k| match &e.env_var {
                Some(var) => format!("{k} (set by {var})"),
                None => k.to_owned(),
            }),
            message: e.message().to_owned(),
        }
    }
}

impl fmt::Display for KeyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(k) => write!(f, "{k}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// The field names of struct `T` as serde's derive declares them: asks `T` to deserialize
/// from a deserializer that only records what `deserialize_struct` is given.
fn struct_fields<T: DeserializeOwned>() -> Vec<&'static str> {
    struct Fields(Option<&'static [&'static str]>);
    #[derive(Debug)]
    struct Stop;
    impl fmt::Display for Stop {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("stop")
        }
    }
    impl Error for Stop {}
    impl serde::de::Error for Stop {
        fn custom<M: fmt::Display>(_: M) -> Self {
            Stop
        }
    }
    impl<'de> serde::Deserializer<'de> for &mut Fields {
        type Error = Stop;
        fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            self.0 = Some(fields);
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    let mut fields = Fields(None);
    let _ = T::deserialize(&mut fields);
    fields.0.map(<[&str]>::to_vec).unwrap_or_default()
}

/// A handler's block does not match its configuration type (see [`HandlerConfig::parse`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    handler: String,
    location: String,
    env_var: Option<String>,
    key: Option<String>,
    message: String,
}

impl ConfigError {
    /// A problem of `config`'s block found by the handler's own parser: `key` is the key's
    /// path (`None`: the block as a whole), `message` what is wrong. The environment
    /// variable that set the key, if one did, is named in the message.
    pub fn new(config: &HandlerConfig, key: Option<&str>, message: impl Into<String>) -> Self {
        let top = key.map(|k| k.split(['.', '[']).next().unwrap_or_default());
        ConfigError {
            handler: config.name.clone(),
            location: config.location.clone(),
            env_var: key
                .and_then(|k| {
                    config
                        .overrides
                        .get(k)
                        .or_else(|| config.overrides.get(top?))
                })
                .cloned(),
            key: key.map(str::to_owned),
            message: message.into(),
        }
    }

    /// The handler's name.
    pub fn handler(&self) -> &str {
        &self.handler
    }

    /// The path of the offending key in the block (`top`, `rules[1].ports[0]`), or `None`
    /// when the problem is the block as a whole (e.g. a missing key: the message names it).
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// What is wrong, in serde's words (`invalid type: string "x", expected u32`,
    /// ``missing field `file` ``, ``unknown field `prot`, expected one of ...``).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "handler {:?}: bad configuration: ", self.handler)?;
        if !self.location.is_empty() {
            write!(f, "{}", self.location)?;
            if self.key.is_some() {
                f.write_str(".")?;
            } else {
                f.write_str(": ")?;
            }
        }
        if let Some(key) = &self.key {
            write!(f, "{key}")?;
            if let Some(var) = &self.env_var {
                write!(f, " (set by {var})")?;
            }
            f.write_str(": ")?;
        }
        f.write_str(&self.message)
    }
}

impl Error for ConfigError {}

/// A SysFlow handler: one method per record type, all with empty defaults.
///
/// Entity methods (`handle_header`, `handle_container`, `handle_pod`, `handle_process`,
/// `handle_file`) are called only when [`Handler::entities_enabled`] returns `true`; the
/// entity tables are maintained either way, so every flow and event gets its full context.
#[allow(unused_variables)]
pub trait Handler {
    /// Called once before the first record with the handler's pipeline block.
    ///
    /// # Errors
    /// An error stops the handler before it reads anything (exit status 2).
    fn init(&mut self, config: &HandlerConfig) -> HandlerResult {
        Ok(())
    }

    /// The keys this handler takes in its pipeline block (`None`, the default: not declared,
    /// every key is accepted as before). With `Some`, a block key that is neither the
    /// launcher's, the SDK's nor the handler's is an error before the pipeline starts
    /// (`sf-launch check` and `sf-launch` ask the binary with `--check-config`), with the
    /// likeliest key meant: `ConfigKeys::of::<Config>()` for a typed configuration.
    fn config_keys() -> Option<ConfigKeys>
    where
        Self: Sized,
    {
        None
    }

    /// Whether entity records are passed to the handler (reference: `IsEntityEnabled`).
    fn entities_enabled(&self) -> bool {
        false
    }

    /// A trace header (`SFHeader`); the entity tables start a new generation.
    fn handle_header(&mut self, ctx: &Context<'_>, header: &SfHeader) -> HandlerResult {
        Ok(())
    }
    /// A container entity.
    fn handle_container(&mut self, ctx: &Context<'_>, container: &Container) -> HandlerResult {
        Ok(())
    }
    /// A pod entity.
    fn handle_pod(&mut self, ctx: &Context<'_>, pod: &Pod) -> HandlerResult {
        Ok(())
    }
    /// A process entity; `ctx.process()` is the process itself.
    fn handle_process(&mut self, ctx: &Context<'_>, process: &Process) -> HandlerResult {
        Ok(())
    }
    /// A file entity; `ctx.file()` is the file itself.
    fn handle_file(&mut self, ctx: &Context<'_>, file: &File) -> HandlerResult {
        Ok(())
    }
    /// A process event.
    fn handle_process_event(&mut self, ctx: &Context<'_>, event: &ProcessEvent) -> HandlerResult {
        Ok(())
    }
    /// A process flow.
    fn handle_process_flow(&mut self, ctx: &Context<'_>, flow: &ProcessFlow) -> HandlerResult {
        Ok(())
    }
    /// A file flow.
    fn handle_file_flow(&mut self, ctx: &Context<'_>, flow: &FileFlow) -> HandlerResult {
        Ok(())
    }
    /// A file event.
    fn handle_file_event(&mut self, ctx: &Context<'_>, event: &FileEvent) -> HandlerResult {
        Ok(())
    }
    /// A network flow.
    fn handle_network_flow(&mut self, ctx: &Context<'_>, flow: &NetworkFlow) -> HandlerResult {
        Ok(())
    }
    /// A network event.
    fn handle_network_event(&mut self, ctx: &Context<'_>, event: &NetworkEvent) -> HandlerResult {
        Ok(())
    }
    /// A Kubernetes event.
    fn handle_k8s_event(&mut self, ctx: &Context<'_>, event: &K8sEvent) -> HandlerResult {
        Ok(())
    }

    /// Called when no record is waiting: each time the handler catches up with the reader,
    /// then about every 200 ms while no record arrives (the handler SDK's `run` loop); under
    /// a steady stream that can be often, so it should be cheap when it has nothing to do. For work that must not wait
    /// for the next record: flushing buffered output, reporting after a signal. Never called
    /// while records are waiting, so a handler that must react under load also checks at its
    /// records. Keep it short: a record that arrives meanwhile waits for it.
    fn idle(&mut self) {}

    /// Makes durable the output of every record handled so far: flushes buffers and
    /// `write(2)`s them (and `fsync`s, if the handler's settings ask), hands them to the
    /// transport and waits until it has taken them.
    ///
    /// The SDK calls it before it acknowledges records to the producer, in batches (when the
    /// unacknowledged records fill half of the ring, after `commit_records` records or
    /// `commit_ms` milliseconds), when idle, and before `cleanup`. Only acknowledged records
    /// are left behind by a restart: a handler killed after a record was handled but before
    /// the next commit gets that record again, so output written but not committed is
    /// written again (duplicates bounded by one batch), and output never written is never
    /// lost. The SDK flushes the process's log lines itself (the `log` crate's logger) before
    /// it acknowledges, so a handler that writes only log lines needs no `commit`.
    ///
    /// # Errors
    /// `Err`: the output is not durable yet; nothing new is acknowledged, the SDK logs it
    /// (rate-limited) and calls `commit` again later (with a growing delay, at most every
    /// 5 s), and a restarted process redoes the records. At the end of the input a `commit`
    /// that still fails after a few tries counts as lost output (exit status 4).
    fn commit(&mut self) -> HandlerResult {
        Ok(())
    }

    /// A stateful handler's state as of the records handled so far (the SDK calls it at a
    /// commit point, right after [`Handler::commit`]), as bytes of the handler's choosing
    /// (`handler_sdk::snapshot::encode` serializes a `serde` value). The SDK stores the
    /// latest snapshot with the sequence number of the last record it covers; a restarted
    /// process gets it in [`Handler::restore`] and resumes after that record, so its results
    /// are those of a process that was never killed.
    ///
    /// `Ok(None)` (the default): the handler keeps no state across restarts (a restarted
    /// process starts empty, as before this method existed). A handler is *stateful* when it
    /// returns `Some`: it must do so at every call.
    ///
    /// # Errors
    /// `Err`: no snapshot now; nothing new is acknowledged and the SDK tries again later, as
    /// for a failed [`Handler::commit`].
    fn snapshot(&mut self) -> SnapshotResult {
        Ok(None)
    }

    /// Called once, after `init` and before the first record, when the launcher holds a
    /// snapshot this handler's previous process made ([`Handler::snapshot`]): the handler
    /// takes back its state. The records the snapshot covers are not passed again (their
    /// entities still go into the entity tables).
    ///
    /// # Errors
    /// `Err` (e.g. the snapshot of another build's state type): logged; the handler goes on
    /// with the state `init` gave it, the records are passed again from the last
    /// acknowledged one, and the run ends with the *handler state lost* exit status.
    fn restore(&mut self, snapshot: &[u8]) -> HandlerResult {
        Ok(())
    }

    /// Called once on shutdown, after the last record (and after the last
    /// [`Handler::commit`]). Not called when the process is stopped to be restarted
    /// (`sf-launch ctl restart`, SIGTERM): the next process goes on with the records, and
    /// calls it at the end.
    fn cleanup(&mut self) {}
}

/// The kind of a handler error for [`crate::limited!`]: one per record kind.
fn handler_error_kind(kind: RecordKind) -> &'static str {
    const KINDS: [&str; 12] = [
        "handler errors on SFHeader records",
        "handler errors on Container records",
        "handler errors on Pod records",
        "handler errors on Process records",
        "handler errors on File records",
        "handler errors on ProcessEvent records",
        "handler errors on ProcessFlow records",
        "handler errors on FileFlow records",
        "handler errors on FileEvent records",
        "handler errors on NetworkFlow records",
        "handler errors on NetworkEvent records",
        "handler errors on K8sEvent records",
    ];
    KINDS[kind as usize]
}

/// Counters of one dispatcher: records received per kind and handler errors.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DispatchStats {
    /// Records received, indexed like [`RecordKind::ALL`].
    pub received: [u64; 12],
    /// Handler methods that returned an error.
    pub handler_errors: u64,
}

impl DispatchStats {
    /// Records received of `kind`.
    pub fn received(&self, kind: RecordKind) -> u64 {
        self.received[kind as usize]
    }

    /// Records received in all.
    pub fn total(&self) -> u64 {
        self.received.iter().sum()
    }
}

/// Keeps the entity tables of one stream and calls a [`Handler`] with each record and its
/// context, in stream order.
#[derive(Debug)]
pub struct Dispatcher<H> {
    handler: H,
    entities: bool,
    tables: EntityTables,
    stats: DispatchStats,
}

impl<H: Handler> Dispatcher<H> {
    /// A dispatcher for an initialised handler.
    pub fn new(handler: H) -> Self {
        let entities = handler.entities_enabled();
        Dispatcher {
            handler,
            entities,
            tables: EntityTables::new(),
            stats: DispatchStats::default(),
        }
    }

    /// Updates the tables with `record` and calls the handler method for its type.
    pub fn dispatch(&mut self, seq: u64, record: Record) {
        self.dispatch_chained(seq, record, &[], None);
    }

    /// [`Dispatcher::dispatch`] for a record that carries `policies` from upstream handlers,
    /// in a handler whose [`Context::emit`] requests go to `emission` (`None`: no output).
    pub fn dispatch_chained(
        &mut self,
        seq: u64,
        record: Record,
        policies: &[Policy],
        emission: Option<&Emission>,
    ) {
        let record_kind = record.kind();
        self.stats.received[record_kind as usize] += 1;
        let refs = Refs::of(&record);
        let h = &mut self.handler;
        macro_rules! ctx {
            ($refs:expr) => {
                self.tables.context(seq, $refs).chained(policies, emission)
            };
        }
        let result = match record {
            Record::ProcessEvent(r) => h.handle_process_event(&ctx!(refs), &r),
            Record::ProcessFlow(r) => h.handle_process_flow(&ctx!(refs), &r),
            Record::FileFlow(r) => h.handle_file_flow(&ctx!(refs), &r),
            Record::FileEvent(r) => h.handle_file_event(&ctx!(refs), &r),
            Record::NetworkFlow(r) => h.handle_network_flow(&ctx!(refs), &r),
            Record::NetworkEvent(r) => h.handle_network_event(&ctx!(refs), &r),
            Record::K8sEvent(r) => h.handle_k8s_event(&ctx!(refs), &r),
            entity => {
                let kind = entity.kind();
                // Entities are stored whatever the handler wants: flows need them.
                // (`store` only gives back flows and events, matched above.)
                if self.tables.store(entity).is_some() {
                    return;
                }
                if !self.entities {
                    return;
                }
                let ctx = ctx!(refs.clone());
                let t = ctx.tables();
                match kind {
                    RecordKind::Header => t.header().map(|x| h.handle_header(&ctx, x)),
                    RecordKind::Container => refs
                        .container
                        .as_deref()
                        .and_then(|id| t.container(id))
                        .map(|x| h.handle_container(&ctx, x)),
                    RecordKind::Pod => refs
                        .pod
                        .as_deref()
                        .and_then(|id| t.pod(id))
                        .map(|x| h.handle_pod(&ctx, x)),
                    RecordKind::Process => ctx.process().map(|x| h.handle_process(&ctx, x)),
                    RecordKind::File => ctx.file().map(|x| h.handle_file(&ctx, x)),
                    _ => None,
                }
                .unwrap_or(Ok(()))
            }
        };
        if let Err(e) = result {
            // A handler writing to a closed stdout (`sf-launch … | head`) ends there, as a
            // Unix filter does, when its process asked for it.
            crate::logging::check_closed_stdout();
            self.stats.handler_errors += 1;
            // One line per record kind per interval: a handler failing on every record must
            // not flood the log (the totals come at the end).
            let n = self.stats.handler_errors;
            crate::limited!(
                error,
                handler_error_kind(record_kind),
                "handler error on record {seq} ({record_kind}): {e} ({n} handler errors so far)"
            );
        }
    }

    /// Stores an entity record replayed from the entity journal (a restarted handler
    /// rebuilding its tables): the handler is not called and nothing is counted. Flows and
    /// events are ignored.
    pub fn restore(&mut self, record: Record) {
        let _ = self.tables.store(record);
    }

    /// Stores an entity record without calling the handler, counting it as received (a
    /// record the handler must skip, e.g. one it crashed on).
    pub fn skip(&mut self, record: Record) {
        self.stats.received[record.kind() as usize] += 1;
        let _ = self.tables.store(record);
    }

    /// The handler.
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// The handler, mutably.
    pub fn handler_mut(&mut self) -> &mut H {
        &mut self.handler
    }

    /// The entity tables.
    pub fn tables(&self) -> &EntityTables {
        &self.tables
    }

    /// Counters so far.
    pub fn stats(&self) -> &DispatchStats {
        &self.stats
    }

    /// Calls the handler's [`Handler::commit`] and counts a failure as lost output
    /// ([`crate::logging::output_error`], as `WHAT: error`): the end of an input read
    /// without a ring (in process), before [`Dispatcher::finish`].
    pub fn commit_output(&mut self, what: &str) {
        if let Err(e) = self.handler.commit() {
            crate::logging::output_error(what, &e);
        }
    }

    /// Calls the handler's `cleanup()` and returns it with the final counters.
    pub fn finish(mut self) -> (H, DispatchStats) {
        self.handler.cleanup();
        (self.handler, self.stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;

    #[derive(Default)]
    struct Recorder {
        entities: bool,
        seen: Vec<String>,
    }

    impl Handler for Recorder {
        fn entities_enabled(&self) -> bool {
            self.entities
        }
        fn handle_process(&mut self, ctx: &Context<'_>, p: &Process) -> HandlerResult {
            self.seen.push(format!("proc {} {}", ctx.seq(), p.exe));
            Ok(())
        }
        fn handle_process_event(&mut self, ctx: &Context<'_>, e: &ProcessEvent) -> HandlerResult {
            let exe = ctx.process().map_or("?", |p| p.exe.as_str());
            self.seen.push(format!("pe {} {exe} {}", ctx.seq(), e.tid));
            if e.tid == 13 {
                Err("unlucky".into())
            } else {
                Ok(())
            }
        }
    }

    fn process() -> Record {
        Record::Process(Process {
            state: ObjectState::Created,
            oid: Oid {
                create_ts: 1,
                hpid: 10,
            },
            poid: None,
            ts: 1,
            exe: "/bin/sh".into(),
            exe_args: String::new(),
            uid: 0,
            user_name: String::new(),
            gid: 0,
            group_name: String::new(),
            tty: false,
            container_id: None,
            entry: false,
            cwd: String::new(),
            env: vec![],
        })
    }

    fn event(tid: i64) -> Record {
        Record::ProcessEvent(ProcessEvent {
            proc_oid: Oid {
                create_ts: 1,
                hpid: 10,
            },
            ts: 2,
            tid,
            op_flags: op_flags::EXEC,
            args: vec![],
            ret: 0,
        })
    }

    #[test]
    fn entities_are_stored_but_only_passed_when_enabled() {
        for entities in [false, true] {
            let mut d = Dispatcher::new(Recorder {
                entities,
                ..Default::default()
            });
            d.dispatch(1, process());
            d.dispatch(2, event(11));
            let mut want = vec!["pe 2 /bin/sh 11".to_string()];
            if entities {
                want.insert(0, "proc 1 /bin/sh".into());
            }
            assert_eq!(d.handler().seen, want);
            assert_eq!(d.stats().received(RecordKind::Process), 1);
            assert_eq!(d.stats().total(), 2);
        }
    }

    #[test]
    fn handler_errors_are_counted_not_fatal() {
        let mut d = Dispatcher::new(Recorder::default());
        d.dispatch(1, process());
        d.dispatch(2, event(13));
        d.dispatch(3, event(14));
        assert_eq!(d.stats().handler_errors, 1);
        assert_eq!(d.handler().seen.len(), 2);
    }

    #[test]
    fn config_parse_names_the_bad_key() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Cfg {
            handler: String,
            limit: u32,
        }
        let mut cfg = HandlerConfig::new(
            "stats",
            serde_json::json!({"handler": "stats", "limit": "ten"})
                .as_object()
                .unwrap()
                .clone(),
        );
        let err = cfg.parse::<Cfg>().unwrap_err();
        assert_eq!(err.handler(), "stats");
        assert_eq!(err.key(), Some("limit"));
        assert_eq!(
            err.to_string(),
            "handler \"stats\": bad configuration: limit: invalid type: string \"ten\", expected u32"
        );
        // Under the launcher: where the block is, and which variable set the key.
        cfg.location = "p.json: pipeline[1]".into();
        assert_eq!(
            cfg.parse::<Cfg>().unwrap_err().to_string(),
            "handler \"stats\": bad configuration: p.json: pipeline[1].limit: invalid type: string \"ten\", expected u32"
        );
        cfg.overrides.insert("limit".into(), "STATS_LIMIT".into());
        assert_eq!(
            cfg.parse::<Cfg>().unwrap_err().to_string(),
            "handler \"stats\": bad configuration: p.json: pipeline[1].limit (set by STATS_LIMIT): invalid type: string \"ten\", expected u32"
        );
    }

    #[test]
    fn config_errors_name_nested_keys_unknown_keys_and_missing_keys() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Rule {
            name: String,
            #[serde(default)]
            ports: Vec<u16>,
        }
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Cfg {
            file: String,
            #[serde(default)]
            rules: Vec<Rule>,
        }
        let cfg =
            |v: serde_json::Value| HandlerConfig::new("alert", v.as_object().unwrap().clone());
        let err = cfg(serde_json::json!({"file": "x", "rules": [{"name": "a"}, {"name": "b", "ports": [80, "http"]}]}))
            .parse::<Cfg>()
            .unwrap_err();
        assert_eq!(err.key(), Some("rules[1].ports[1]"), "{err}");
        let err = cfg(serde_json::json!({"file": "x", "rules": [{"name": "a", "prots": [80]}]}))
            .parse::<Cfg>()
            .unwrap_err();
        assert_eq!(err.key(), Some("rules[0].prots"), "{err}");
        assert!(
            err.message().starts_with("unknown field `prots`, expected"),
            "{err}"
        );
        let err = cfg(serde_json::json!({"handler": "alert"}))
            .parse::<Cfg>()
            .unwrap_err();
        assert_eq!(err.key(), None);
        assert_eq!(
            err.to_string(),
            "handler \"alert\": bad configuration: missing field `file`"
        );
        // Strings stand for numbers, as in the reference and in environment overrides.
        let ok =
            cfg(serde_json::json!({"file": "x", "rules": [{"name": "a", "ports": ["80", 443]}]}))
                .parse::<Cfg>()
                .unwrap();
        assert_eq!(ok.rules[0].ports, [80, 443]);
    }
}
