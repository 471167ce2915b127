//! The pipeline configuration: `pipeline.json` in the reference processor's format.
//!
//! ```json
//! {"pipeline":[{"processor":"sysflowreader","handler":"printer","in":"sysflow sysflowchan"}]}
//! ```
//!
//! Each block of `pipeline` becomes one handler process. Every key of the block is handed to
//! the handler as its configuration. The optional `drivers` section is kept as is for the
//! reader.
//!
//! # The reference's processors
//!
//! As in the reference, the blocks of its built-in processors need no `handler` key: the
//! processor names the handler ([`IMPLIED_HANDLERS`]: `"processor": "policyengine"` runs
//! `sf-handler-policy`, `"processor": "exporter"` runs `sf-handler-exporter`), and the block
//! is named by its processor in messages, `ctl` and environment overrides
//! (`POLICYENGINE_MODE`). The reference's reader block,
//! `{"processor": "sysflowreader", "handler": "flattener", "out": "flat flattenerchan"}`, is
//! the reader itself ([`ReaderBlock`]): the flat record is an internal format of the
//! reference, and our context already carries every attribute, so it starts no process; its
//! `out` channel is the reader's channel.
//!
//! # Chaining
//!
//! As in the reference, blocks are joined by channels: `"in": "<type> <channel>"` reads the
//! channel, `"out": "<type> <channel>"` writes it. The reader writes [`READER_CHANNEL`]
//! (`sysflow sysflowchan`), or the `out` of the reference's `flattener` reader block; a
//! block without `in` reads it. Every other channel has exactly one producing block, and may
//! have several consumers (fan-out). An object with a key twice is an error (the JSON
//! parser would keep the last one silently). The blocks must form a tree fed by the reader: [`parse`]
//! rejects an `in` that nobody produces, a channel produced twice, an `out` nobody reads,
//! a type that differs between the two ends of a channel, and cycles.
//!
//! ```json
//! {"pipeline":[
//!   {"processor":"sysflowreader","handler":"alert","in":"sysflow sysflowchan","out":"evt alertchan"},
//!   {"processor":"exporter","handler":"json","in":"evt alertchan"}]}
//! ```

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::handler::HandlerConfig;

/// Processors whose blocks need no `handler` key, with the handler each runs (its binary is
/// `sf-handler-<handler>`): the reference's built-in policy engine and exporter.
pub const IMPLIED_HANDLERS: [(&str, &str); 2] =
    [("policyengine", "policy"), ("exporter", "exporter")];

/// The reference's reader block with its `flattener` handler: the processor and handler names.
pub const FLATTENER: (&str, &str) = ("sysflowreader", "flattener");

/// A parsed pipeline file.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    /// Where it was read from.
    pub source: PathBuf,
    /// The handler blocks, in file order (without the reader's [`ReaderBlock`]).
    pub handlers: Vec<HandlerBlock>,
    /// The reference's reader block (`"handler": "flattener"`), if the file has one.
    pub reader: Option<ReaderBlock>,
    /// The `drivers` section, if any.
    pub drivers: Option<Value>,
}

/// The reference's reader block, `{"processor": "sysflowreader", "handler": "flattener",
/// "in": "sysflow sysflowchan", "out": "flat flattenerchan"}`: the reader, not a handler
/// process. Its `out` channel is the channel the reader writes.
#[derive(Debug, Clone, PartialEq)]
pub struct ReaderBlock {
    /// Position in the `pipeline` array.
    pub index: usize,
    /// The `out` key (`"flat flattenerchan"`), if any.
    pub output: Option<String>,
    /// The whole block.
    pub attributes: Map<String, Value>,
}

/// One handler block of `pipeline`.
#[derive(Debug, Clone, PartialEq)]
pub struct HandlerBlock {
    /// Position in the `pipeline` array.
    pub index: usize,
    /// The `processor` key (`"sysflowreader"` in the reference format).
    pub processor: String,
    /// The block's name in messages, `ctl` and environment overrides: its `handler` key, or
    /// for a block of one of the [`IMPLIED_HANDLERS`]' processors without one, the processor
    /// (`"policyengine"`).
    pub handler: String,
    /// The handler whose binary runs (`sf-handler-<binary>`): the `handler` key, or the
    /// processor's implied handler (`"policy"` for `"policyengine"`).
    pub binary: String,
    /// The `in` key: input channel, e.g. `"sysflow sysflowchan"`.
    pub input: String,
    /// The `out` key: output channel, e.g. `"evt alertchan"`.
    pub output: Option<String>,
    /// Index (in [`Pipeline::handlers`]) of the block whose output this block reads; `None`
    /// when it reads the reader's channel.
    pub upstream: Option<usize>,
    /// Indexes of the blocks that read this block's output, in file order (empty without
    /// `out`).
    pub downstream: Vec<usize>,
    /// The whole block, for the handler's `init`.
    pub attributes: Map<String, Value>,
}

impl HandlerBlock {
    /// The JSON path of this block, for messages: `pipeline[1]`.
    pub fn json_path(&self) -> String {
        format!("pipeline[{}]", self.index)
    }

    /// The channel name of `in` (its second word): `sysflowchan`.
    pub fn input_channel(&self) -> &str {
        channel_parts(&self.input).1
    }

    /// The channel name of `out`, if any.
    pub fn output_channel(&self) -> Option<&str> {
        self.output.as_deref().map(|o| channel_parts(o).1)
    }

    /// The handler's configuration as `init` receives it.
    pub fn config(&self) -> HandlerConfig {
        HandlerConfig::new(self.handler.clone(), self.attributes.clone())
    }
}

/// A pipeline file that cannot be used; the message names the file and the JSON path.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The file could not be read.
    #[error("{path}: cannot read pipeline file: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// Not JSON.
    #[error("{path}: line {line}, column {column}: malformed JSON: {message}")]
    Json {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// An object with the same key twice (the JSON parser would keep the last one).
    #[error(
        "{path}: line {line}, column {column}: duplicate key {key} in {object}: a key may appear once"
    )]
    Duplicate {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The key, quoted.
        key: String,
        /// The JSON path of the object (`pipeline[0]`).
        object: String,
    },
    /// JSON of the wrong shape.
    #[error("{path}: {json_path}: {message}")]
    Shape {
        /// The file.
        path: PathBuf,
        /// Where in the document, e.g. `pipeline[0].handler`.
        json_path: String,
        /// What is wrong and what was expected.
        message: String,
    },
}

/// Reads and checks a pipeline file.
///
/// # Errors
/// [`PipelineError`] naming the file and, for a bad shape, the JSON path.
pub fn load(path: &Path) -> Result<Pipeline, PipelineError> {
    let text = std::fs::read_to_string(path).map_err(|error| PipelineError::Read {
        path: path.to_owned(),
        error,
    })?;
    parse(&text, path)
}

/// Parses pipeline text read from `path`.
///
/// # Errors
/// See [`load`].
pub fn parse(text: &str, path: &Path) -> Result<Pipeline, PipelineError> {
    let doc = parse_json(text).map_err(|(e, at)| {
        let message = e.to_string();
        let message = message.split(" at line ").next().unwrap_or_default();
        match message.strip_prefix(DUPLICATE) {
            Some(key) => PipelineError::Duplicate {
                path: path.to_owned(),
                line: e.line(),
                column: e.column(),
                key: key.to_owned(),
                object: at.unwrap_or_else(|| "the top-level object".into()),
            },
            None => PipelineError::Json {
                path: path.to_owned(),
                line: e.line(),
                column: e.column(),
                message: message.to_owned(),
            },
        }
    })?;
    let shape = |json_path: String, message: String| PipelineError::Shape {
        path: path.to_owned(),
        json_path,
        message,
    };
    let Value::Object(root) = doc else {
        return Err(shape(
            "$".into(),
            format!(
                "expected an object with a \"pipeline\" array, found {}",
                kind(&doc)
            ),
        ));
    };
    let blocks = match root.get("pipeline") {
        Some(Value::Array(a)) => a,
        Some(other) => {
            return Err(shape(
                "pipeline".into(),
                format!("expected an array of blocks, found {}", kind(other)),
            ));
        }
        None => {
            return Err(shape(
                "$".into(),
                "missing key \"pipeline\" (an array of handler blocks)".into(),
            ));
        }
    };
    if blocks.is_empty() {
        return Err(shape("pipeline".into(), "no blocks: add one such as {\"processor\":\"sysflowreader\",\"handler\":\"printer\",\"in\":\"sysflow sysflowchan\"}".into()));
    }
    let mut handlers = Vec::new();
    let mut reader: Option<ReaderBlock> = None;
    for (index, block) in blocks.iter().enumerate() {
        let at = |key: &str| {
            format!(
                "pipeline[{index}]{}{key}",
                if key.is_empty() { "" } else { "." }
            )
        };
        let Value::Object(attrs) = block else {
            return Err(shape(
                at(""),
                format!("expected an object, found {}", kind(block)),
            ));
        };
        let string = |key: &str| -> Result<Option<String>, PipelineError> {
            match attrs.get(key) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(shape(
                    at(key),
                    format!("expected a string, found {}", kind(other)),
                )),
            }
        };
        let processor = string("processor")?.unwrap_or_default();
        let (handler, binary) = match string("handler")? {
            Some(handler) => (handler.clone(), handler),
            None => match IMPLIED_HANDLERS.iter().find(|(p, _)| *p == processor) {
                Some((p, h)) => ((*p).to_owned(), (*h).to_owned()),
                None => {
                    return Err(shape(
                        at(""),
                        format!(
                            "missing key \"handler\"{}: every block names the handler binary to run, e.g. \"handler\": \"printer\" (blocks of processor {} need none)",
                            if processor.is_empty() {
                                String::new()
                            } else {
                                format!(" (processor {processor:?})")
                            },
                            IMPLIED_HANDLERS
                                .iter()
                                .map(|(p, _)| format!("{p:?}"))
                                .collect::<Vec<_>>()
                                .join(" or ")
                        ),
                    ));
                }
            },
        };
        if handler.trim().is_empty() {
            return Err(shape(at("handler"), "empty handler name".into()));
        }
        if (processor.as_str(), handler.as_str()) == FLATTENER {
            if reader.is_some() {
                return Err(shape(
                    at("handler"),
                    "a second reader block: a pipeline has one \"flattener\" block".into(),
                ));
            }
            check_reader_block(attrs).map_err(|(key, message)| shape(at(&key), message))?;
            reader = Some(ReaderBlock {
                index,
                output: string("out")?,
                attributes: attrs.clone(),
            });
            continue;
        }
        let input = string("in")?.unwrap_or_else(|| "sysflow sysflowchan".into());
        let output = string("out")?;
        for (key, value) in [("in", Some(&input)), ("out", output.as_ref())] {
            if let Some(v) = value
                && v.split_whitespace().count() != 2
            {
                return Err(shape(
                    at(key),
                    format!(
                        "expected \"<type> <channel>\" (two words, e.g. \"sysflow sysflowchan\"), found {v:?}"
                    ),
                ));
            }
        }
        handlers.push(HandlerBlock {
            index,
            processor,
            handler,
            binary,
            input,
            output,
            upstream: None,
            downstream: Vec::new(),
            attributes: attrs.clone(),
        });
    }
    if handlers.is_empty() {
        return Err(shape(
            "pipeline".into(),
            "no handler block: the reader block needs at least one block reading its channel"
                .into(),
        ));
    }
    // A driver the reader does not have, before the channels it would feed are looked for.
    for (i, d) in root
        .get("drivers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if let Some(name) = d.get("driver").and_then(Value::as_str)
            && name.starts_with("otel")
        {
            return Err(shape(
                format!("drivers[{i}].driver"),
                format!(
                    "{name:?} (OpenTelemetry records from Kafka) is not supported: this pipeline reads SysFlow traces (a file, a directory, or --socket)"
                ),
            ));
        }
    }
    let reader_channel = reader.as_ref().and_then(|r| r.output.clone());
    link(&mut handlers, reader_channel.as_deref())
        .map_err(|(json_path, message)| shape(json_path, message))?;
    Ok(Pipeline {
        source: path.to_owned(),
        handlers,
        reader,
        drivers: root.get("drivers").cloned(),
    })
}

/// Parses JSON text like `serde_json::from_str::<Value>`, except that an object with the
/// same key twice is an error (serde_json keeps the last one silently): the error, with the
/// JSON path of the object holding it when it is not the top level (`pipeline[0]`).
pub fn parse_json(text: &str) -> Result<Value, (serde_json::Error, Option<String>)> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize::<_, Checked>(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let at = (path != "." && !path.is_empty()).then_some(path);
        (e.into_inner(), at)
    })?;
    de.end().map_err(|e| (e, None))?;
    Ok(value.0)
}

const DUPLICATE: &str = "duplicate key ";

/// A JSON value whose objects have no duplicate keys.
struct Checked(Value);

impl<'de> serde::Deserialize<'de> for Checked {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl<'de> serde::de::Visitor<'de> for CheckedVisitor {
    type Value = Checked;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Checked, E> {
        Ok(Checked(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Checked, E> {
        Ok(Checked(Value::from(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Checked, E> {
        Ok(Checked(Value::from(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Checked, E> {
        Ok(Checked(Value::from(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Checked, E> {
        Ok(Checked(Value::String(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Checked, E> {
        Ok(Checked(Value::String(v)))
    }
    fn visit_unit<E>(self) -> Result<Checked, E> {
        Ok(Checked(Value::Null))
    }
    fn visit_none<E>(self) -> Result<Checked, E> {
        Ok(Checked(Value::Null))
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Checked, D::Error> {
        serde::Deserialize::deserialize(d)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        let mut items = Vec::new();
        while let Some(Checked(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Checked(Value::Array(items)))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format_args!("{DUPLICATE}{key:?}")));
            }
            let Checked(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Checked(Value::Object(out)))
    }
}

/// The reader's channel when the pipeline has no `flattener` reader block, as in the
/// reference: type `sysflow`, channel `sysflowchan`.
pub const READER_CHANNEL: &str = "sysflow sysflowchan";

/// Keys of a handler block that the launcher reads to build the pipeline.
pub const BLOCK_KEYS: [&str; 5] = ["processor", "handler", "in", "out", "binary"];

/// The supervision keys of a handler block (read by the launcher).
pub const SUPERVISION_KEYS: [&str; 10] = [
    "restart",
    "restart_limit",
    "restart_window_s",
    "backoff_initial_ms",
    "backoff_max_ms",
    "watchdog_ms",
    "attach_timeout_ms",
    "poison_after",
    "overflow",
    "ring_size",
];

/// The keys of a handler block that the handler SDK reads for every handler (commits).
pub const SDK_KEYS: [&str; 3] = ["commit_records", "commit_ms", "commit_failure"];

/// Keys of the reference's reader block (`"handler": "flattener"`).
pub const READER_BLOCK_KEYS: [&str; 6] = [
    "processor",
    "handler",
    "in",
    "out",
    "filter.enabled",
    "filter.maxage",
];

/// The key of `known` that `key` is most likely a misspelling of: the same letters and
/// digits in another case or with other separators (`restartlimit`, `Restart-Limit` for
/// `restart_limit`), or a letter away (keys of 3 to 5 letters: `topp` for `top`), or two
/// (longer keys).
pub fn did_you_mean<'a>(key: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let squash = |k: &str| -> String {
        k.chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect()
    };
    let want = squash(key);
    let mut best: Option<(usize, &str)> = None;
    for k in known {
        if k == key {
            continue;
        }
        let d = if squash(k) == want {
            0
        } else {
            edit_distance(&want, &squash(k))
        };
        let limit = match want.len() {
            0..=2 => 0,
            3..=5 => 1,
            _ => 2,
        };
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, k));
        }
    }
    best.map(|(_, k)| k)
}

/// Levenshtein distance between two short strings.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Checks the reader block's own keys: `out` is a channel, and the reference's time-decay rate
/// filter (`filter.enabled`) is not silently ignored. Errors are (key, message).
fn check_reader_block(attrs: &Map<String, Value>) -> Result<(), (String, String)> {
    for key in attrs.keys() {
        if !READER_BLOCK_KEYS.contains(&key.as_str()) {
            return Err((
                key.clone(),
                match did_you_mean(key, READER_BLOCK_KEYS) {
                    Some(k) => format!("unknown key of the reader block (did you mean {k:?}?)"),
                    None => format!(
                        "unknown key of the reader block (it has {})",
                        READER_BLOCK_KEYS.map(|k| format!("{k:?}")).join(", ")
                    ),
                },
            ));
        }
    }
    if let Some(out) = attrs.get("out") {
        match out.as_str() {
            Some(o) if o.split_whitespace().count() == 2 => {}
            _ => {
                return Err((
                    "out".into(),
                    format!(
                        "expected \"<type> <channel>\" (two words, e.g. \"flat flattenerchan\"), found {out}"
                    ),
                ));
            }
        }
    }
    match attrs.get("filter.enabled").map(|v| v.as_str()) {
        None | Some(Some("off")) => Ok(()),
        Some(Some("on")) => Err((
            "filter.enabled".into(),
            "the reference's rate filter (\"filter.enabled\": \"on\", with \"filter.maxage\") is not supported: every record is passed on; remove the key or set it to \"off\"".into(),
        )),
        Some(_) => Err((
            "filter.enabled".into(),
            "expected \"on\" or \"off\"".into(),
        )),
    }
}

/// `("sysflow", "sysflowchan")` from `"sysflow sysflowchan"` (checked to be two words).
fn channel_parts(spec: &str) -> (&str, &str) {
    let mut words = spec.split_whitespace();
    (words.next().unwrap_or(""), words.next().unwrap_or(""))
}

/// Joins the blocks by channel (`upstream`, `downstream`) and checks that they form a tree
/// fed by the reader, whose channel is `reader_channel` (the reader block's `out`, `"<type>
/// <channel>"`) or, without a reader block, [`READER_CHANNEL`]. Errors are (JSON path,
/// message).
fn link(blocks: &mut [HandlerBlock], reader_channel: Option<&str>) -> Result<(), (String, String)> {
    let path = |i: usize, key: &str| format!("pipeline[{}].{key}", blocks[i].index);
    // Who produces each channel.
    let mut producer: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, b) in blocks.iter().enumerate() {
        let Some(channel) = b.output_channel() else {
            continue;
        };
        if let Some(&first) = producer.get(channel) {
            return Err((
                path(i, "out"),
                format!(
                    "channel {channel:?} is already the output of pipeline[{}]: a channel has one producer",
                    blocks[first].index
                ),
            ));
        }
        producer.insert(channel, i);
    }
    // The reader's channel: the reader block's `out`.
    if let Some(channel) = reader_channel.map(|c| channel_parts(c).1)
        && let Some(&p) = producer.get(channel)
    {
        return Err((
            path(p, "out"),
            format!(
                "channel {channel:?} is the reader's (the \"out\" of its \"flattener\" block): a channel has one producer"
            ),
        ));
    }
    // Without a reader block, the reader writes the reference's channel.
    let reader_spec = reader_channel.unwrap_or(READER_CHANNEL);
    let (reader_type, reader) = channel_parts(reader_spec);
    let mut upstream = vec![None; blocks.len()];
    for (i, b) in blocks.iter().enumerate() {
        let channel = b.input_channel();
        match producer.get(channel) {
            Some(&p) => {
                let (out_type, in_type) = (
                    channel_parts(blocks[p].output.as_deref().unwrap_or_default()).0,
                    channel_parts(&b.input).0,
                );
                if out_type != in_type {
                    return Err((
                        path(i, "in"),
                        format!(
                            "channel {channel:?} has type {in_type:?} here but {out_type:?} in the \"out\" of pipeline[{}]",
                            blocks[p].index
                        ),
                    ));
                }
                upstream[i] = Some(p);
            }
            None if channel == reader => {
                let in_type = channel_parts(&b.input).0;
                if in_type != reader_type {
                    return Err((
                        path(i, "in"),
                        format!(
                            "channel {channel:?} has type {in_type:?} here but the reader writes {reader_spec:?}"
                        ),
                    ));
                }
            }
            None => {
                return Err((
                    path(i, "in"),
                    format!(
                        "no block has channel {channel:?} as its \"out\" (the reader writes {reader:?})"
                    ),
                ));
            }
        }
    }
    // Cycles: following `upstream` from any block must reach the reader.
    for start in 0..blocks.len() {
        let mut seen = vec![start];
        let mut at = start;
        while let Some(p) = upstream[at] {
            if let Some(pos) = seen.iter().position(|&s| s == p) {
                let cycle: Vec<String> = seen[pos..]
                    .iter()
                    .chain(std::iter::once(&p))
                    .map(|&i| format!("pipeline[{}]", blocks[i].index))
                    .collect();
                return Err((
                    path(p, "in"),
                    format!(
                        "the blocks form a cycle ({}, each reading the output of the next): a pipeline is a tree fed by the reader",
                        cycle.join(" <- ")
                    ),
                ));
            }
            seen.push(p);
            at = p;
        }
    }
    let mut downstream = vec![Vec::new(); blocks.len()];
    for (i, up) in upstream.iter().enumerate() {
        if let Some(p) = up {
            downstream[*p].push(i);
        }
    }
    for (i, b) in blocks.iter().enumerate() {
        if let Some(channel) = b.output_channel()
            && downstream[i].is_empty()
        {
            let out = b.output.as_deref().unwrap_or_default();
            return Err((
                path(i, "out"),
                format!(
                    "no block reads channel {channel:?}: add one with \"in\": {out:?}, or remove \"out\""
                ),
            ));
        }
    }
    for (i, b) in blocks.iter_mut().enumerate() {
        b.upstream = upstream[i];
        b.downstream = std::mem::take(&mut downstream[i]);
    }
    Ok(())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(text, Path::new("p.json")).unwrap_err().to_string()
    }

    #[test]
    fn reference_printer_pipeline_parses() {
        let p = parse(
            r#"{"pipeline":[{"processor":"sysflowreader","handler":"printer","in":"sysflow sysflowchan"}]}"#,
            Path::new("p.json"),
        )
        .unwrap();
        assert_eq!(p.handlers.len(), 1);
        assert_eq!(p.handlers[0].handler, "printer");
        assert_eq!(p.handlers[0].input, "sysflow sysflowchan");
        assert_eq!(
            p.handlers[0].config().get_str("processor"),
            Some("sysflowreader")
        );
    }

    #[test]
    fn blocks_are_joined_by_channel_into_a_tree() {
        let p = parse(
            r#"{"pipeline":[
                {"handler":"json","in":"evt alertchan"},
                {"handler":"alert","in":"sysflow sysflowchan","out":"evt alertchan"},
                {"handler":"printer","in":"sysflow sysflowchan"},
                {"handler":"stats","in":"evt alertchan"}]}"#,
            Path::new("p.json"),
        )
        .unwrap();
        let links: Vec<(Option<usize>, Vec<usize>)> = p
            .handlers
            .iter()
            .map(|b| (b.upstream, b.downstream.clone()))
            .collect();
        assert_eq!(
            links,
            [
                (Some(1), vec![]),
                (None, vec![0, 3]),
                (None, vec![]),
                (Some(1), vec![])
            ]
        );
        assert_eq!(p.handlers[1].output_channel(), Some("alertchan"));
        assert_eq!(p.handlers[0].input_channel(), "alertchan");
    }

    #[test]
    fn a_bad_tree_is_an_error_naming_the_key() {
        let reader = r#"{"handler":"printer","in":"sysflow sysflowchan"}"#;
        let blocks = |more: &str| format!(r#"{{"pipeline":[{reader},{more}]}}"#);
        assert_eq!(
            err(&blocks(r#"{"handler":"json","in":"evt alertchan"}"#)),
            "p.json: pipeline[1].in: no block has channel \"alertchan\" as its \"out\" (the reader writes \"sysflowchan\")"
        );
        assert_eq!(
            err(&blocks(
                r#"{"handler":"a","in":"evt c1","out":"evt c2"},{"handler":"b","in":"evt c2","out":"evt c1"}"#
            )),
            "p.json: pipeline[1].in: the blocks form a cycle (pipeline[1] <- pipeline[2] <- pipeline[1], each reading the output of the next): a pipeline is a tree fed by the reader"
        );
        assert_eq!(
            err(&blocks(
                r#"{"handler":"a","out":"evt c"},{"handler":"b","out":"evt c"},{"handler":"c","in":"evt c"}"#
            )),
            "p.json: pipeline[2].out: channel \"c\" is already the output of pipeline[1]: a channel has one producer"
        );
        assert_eq!(
            err(&blocks(r#"{"handler":"a","out":"evt c"}"#)),
            "p.json: pipeline[1].out: no block reads channel \"c\": add one with \"in\": \"evt c\", or remove \"out\""
        );
        assert_eq!(
            err(&blocks(
                r#"{"handler":"a","out":"evt c"},{"handler":"b","in":"flat c"}"#
            )),
            "p.json: pipeline[2].in: channel \"c\" has type \"flat\" here but \"evt\" in the \"out\" of pipeline[1]"
        );
        assert_eq!(
            err(&blocks(r#"{"handler":"a","out":"alertchan"}"#)),
            "p.json: pipeline[1].out: expected \"<type> <channel>\" (two words, e.g. \"sysflow sysflowchan\"), found \"alertchan\""
        );
    }

    /// The reference's production pipeline (`resources/pipelines/pipeline.local.json` of
    /// sf-processor): a flattener reader block, then blocks without `handler`.
    const REFERENCE_LOCAL: &str = r#"{"pipeline":[
        {"processor":"sysflowreader","handler":"flattener","in":"sysflow sysflowchan","out":"flat flattenerchan"},
        {"processor":"policyengine","in":"flat flattenerchan","out":"evt eventchan","policies":"/etc/sysflow/policies","mode":"alert"},
        {"processor":"exporter","in":"evt eventchan","export":"syslog","format":"json"}]}"#;

    #[test]
    fn the_reference_pipeline_runs_its_processors_and_the_flattener_is_the_reader() {
        let p = parse(REFERENCE_LOCAL, Path::new("p.json")).unwrap();
        let names: Vec<(&str, &str, usize)> = p
            .handlers
            .iter()
            .map(|b| (b.handler.as_str(), b.binary.as_str(), b.index))
            .collect();
        assert_eq!(
            names,
            [("policyengine", "policy", 1), ("exporter", "exporter", 2)]
        );
        let links: Vec<(Option<usize>, &[usize])> = p
            .handlers
            .iter()
            .map(|b| (b.upstream, b.downstream.as_slice()))
            .collect();
        assert_eq!(links, [(None, &[1][..]), (Some(0), &[][..])]);
        let reader = p.reader.unwrap();
        assert_eq!(
            (reader.index, reader.output.as_deref()),
            (0, Some("flat flattenerchan"))
        );
        // The block is named by its processor (messages, ctl, POLICYENGINE_MODE).
        assert_eq!(p.handlers[0].config().name, "policyengine");
    }

    #[test]
    fn reader_block_errors_name_the_key() {
        let with_reader = |reader: &str| {
            format!(
                r#"{{"pipeline":[{reader},{{"processor":"policyengine","in":"flat flattenerchan"}}]}}"#
            )
        };
        assert_eq!(
            err(&with_reader(
                r#"{"processor":"sysflowreader","handler":"flattener","out":"flat flattenerchan","filter.enabled":"on"}"#
            )),
            "p.json: pipeline[0].filter.enabled: the reference's rate filter (\"filter.enabled\": \"on\", with \"filter.maxage\") is not supported: every record is passed on; remove the key or set it to \"off\""
        );
        // "off" is the reference's default: accepted.
        parse(
            &with_reader(
                r#"{"processor":"sysflowreader","handler":"flattener","out":"flat flattenerchan","filter.enabled":"off"}"#,
            ),
            Path::new("p.json"),
        )
        .unwrap();
        // A handler reading another channel than the reader's.
        assert_eq!(
            err(
                r#"{"pipeline":[{"processor":"sysflowreader","handler":"flattener","out":"flat flattenerchan"},{"processor":"policyengine","in":"flat otherchan"}]}"#
            ),
            "p.json: pipeline[1].in: no block has channel \"otherchan\" as its \"out\" (the reader writes \"flattenerchan\")"
        );
        assert_eq!(
            err(
                r#"{"pipeline":[{"processor":"sysflowreader","handler":"flattener","out":"flat flattenerchan"}]}"#
            ),
            "p.json: pipeline: no handler block: the reader block needs at least one block reading its channel"
        );
    }

    #[test]
    fn duplicate_keys_are_an_error_naming_the_object() {
        assert_eq!(
            err(r#"{"pipeline":[{"handler":"printer","restart":"never","restart":"always"}]}"#),
            "p.json: line 1, column 61: duplicate key \"restart\" in pipeline[0]: a key may appear once"
        );
        assert_eq!(
            err(r#"{"pipeline":[{"handler":"printer"}],"pipeline":[]}"#),
            "p.json: line 1, column 46: duplicate key \"pipeline\" in the top-level object: a key may appear once"
        );
    }

    #[test]
    fn first_level_blocks_read_the_readers_channel() {
        assert_eq!(
            err(r#"{"pipeline":[{"handler":"printer","in":"sysflow otherchan"}]}"#),
            "p.json: pipeline[0].in: no block has channel \"otherchan\" as its \"out\" (the reader writes \"sysflowchan\")"
        );
        assert_eq!(
            err(r#"{"pipeline":[{"handler":"printer","in":"evt sysflowchan"}]}"#),
            "p.json: pipeline[0].in: channel \"sysflowchan\" has type \"evt\" here but the reader writes \"sysflow sysflowchan\""
        );
        // With the reference's reader block, its `out` is the reader's channel.
        assert_eq!(
            err(
                r#"{"pipeline":[{"processor":"sysflowreader","handler":"flattener","out":"flat flattenerchan"},{"processor":"policyengine","in":"sysflow sysflowchan"}]}"#
            ),
            "p.json: pipeline[1].in: no block has channel \"sysflowchan\" as its \"out\" (the reader writes \"flattenerchan\")"
        );
        assert_eq!(
            err(
                r#"{"pipeline":[{"processor":"sysflowreader","handler":"flattener","out":"flat flattenerchan","filter.maxag":"1"},{"processor":"policyengine","in":"flat flattenerchan"}]}"#
            ),
            "p.json: pipeline[0].filter.maxag: unknown key of the reader block (did you mean \"filter.maxage\"?)"
        );
    }

    #[test]
    fn misspellings_are_recognised() {
        let known = SUPERVISION_KEYS;
        assert_eq!(did_you_mean("restartlimit", known), Some("restart_limit"));
        assert_eq!(did_you_mean("Restart-Limit", known), Some("restart_limit"));
        assert_eq!(did_you_mean("watchdog_mss", known), Some("watchdog_ms"));
        assert_eq!(did_you_mean("backof_max_ms", known), Some("backoff_max_ms"));
        assert_eq!(did_you_mean("restart", known), None, "a known key");
        assert_eq!(did_you_mean("top", known), None);
        assert_eq!(did_you_mean("topp", ["top", "file"]), Some("top"));
        assert_eq!(did_you_mean("in", ["on", "out"]), None);
        assert_eq!(did_you_mean("rules", known), None);
    }

    #[test]
    fn errors_name_file_and_path() {
        assert_eq!(
            err("{\"pipeline\": [}"),
            "p.json: line 1, column 15: malformed JSON: expected value"
        );
        assert_eq!(
            err("{}"),
            "p.json: $: missing key \"pipeline\" (an array of handler blocks)"
        );
        assert_eq!(
            err("{\"pipeline\": {}}"),
            "p.json: pipeline: expected an array of blocks, found an object"
        );
        assert_eq!(
            err(r#"{"pipeline":[{"handler":"printer"},{"processor":"sysflowreader"}]}"#),
            "p.json: pipeline[1]: missing key \"handler\" (processor \"sysflowreader\"): every block names the handler binary to run, e.g. \"handler\": \"printer\" (blocks of processor \"policyengine\" or \"exporter\" need none)"
        );
        assert_eq!(
            err(r#"{"pipeline":[{"handler":7}]}"#),
            "p.json: pipeline[0].handler: expected a string, found a number"
        );
    }
}
