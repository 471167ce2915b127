//! The pipeline configuration: `pipeline.json` in the reference processor's format.
//!
//! ```json
//! {"pipeline":[{"processor":"sysflowreader","handler":"printer","in":"sysflow sysflowchan"}]}
//! ```
//!
//! Each block of `pipeline` with a `handler` becomes one handler process. Every key of the
//! block is handed to the handler as its configuration. The optional `drivers` section is kept
//! as is for the reader.
//!
//! # Chaining
//!
//! As in the reference, blocks are joined by channels: `"in": "<type> <channel>"` reads the
//! channel, `"out": "<type> <channel>"` writes it. The reader writes the channel of the
//! blocks whose `in` no block produces (`sysflowchan` in the reference's pipelines; a block
//! without `in` reads it too); every other channel has exactly one producing block, and may
//! have several consumers (fan-out). The blocks must form a tree fed by the reader: [`parse`]
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

/// A parsed pipeline file.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    /// Where it was read from.
    pub source: PathBuf,
    /// The handler blocks, in file order.
    pub handlers: Vec<HandlerBlock>,
    /// The `drivers` section, if any.
    pub drivers: Option<Value>,
}

/// One handler block of `pipeline`.
#[derive(Debug, Clone, PartialEq)]
pub struct HandlerBlock {
    /// Position in the `pipeline` array.
    pub index: usize,
    /// The `processor` key (`"sysflowreader"` in the reference format).
    pub processor: String,
    /// The `handler` key: the handler's name, which finds its binary.
    pub handler: String,
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
    let doc: Value = serde_json::from_str(text).map_err(|e| PipelineError::Json {
        path: path.to_owned(),
        line: e.line(),
        column: e.column(),
        message: e
            .to_string()
            .split(" at line ")
            .next()
            .unwrap_or_default()
            .to_owned(),
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
        let Some(handler) = string("handler")? else {
            return Err(shape(
                at(""),
                format!(
                    "missing key \"handler\"{}: every block names the handler binary to run, e.g. \"handler\": \"printer\"",
                    if processor.is_empty() {
                        String::new()
                    } else {
                        format!(" (processor {processor:?})")
                    }
                ),
            ));
        };
        if handler.trim().is_empty() {
            return Err(shape(at("handler"), "empty handler name".into()));
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
            input,
            output,
            upstream: None,
            downstream: Vec::new(),
            attributes: attrs.clone(),
        });
    }
    link(&mut handlers).map_err(|(json_path, message)| shape(json_path, message))?;
    Ok(Pipeline {
        source: path.to_owned(),
        handlers,
        drivers: root.get("drivers").cloned(),
    })
}

/// `("sysflow", "sysflowchan")` from `"sysflow sysflowchan"` (checked to be two words).
fn channel_parts(spec: &str) -> (&str, &str) {
    let mut words = spec.split_whitespace();
    (words.next().unwrap_or(""), words.next().unwrap_or(""))
}

/// Joins the blocks by channel (`upstream`, `downstream`) and checks that they form a tree
/// fed by the reader. Errors are (JSON path, message).
fn link(blocks: &mut [HandlerBlock]) -> Result<(), (String, String)> {
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
    // The reader's channel: the first `in` nobody produces.
    let reader = blocks
        .iter()
        .map(HandlerBlock::input_channel)
        .find(|c| !producer.contains_key(c));
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
            None if Some(channel) == reader => {}
            None => {
                return Err((
                    path(i, "in"),
                    format!(
                        "no block has channel {channel:?} as its \"out\" (the reader writes {:?})",
                        reader.unwrap_or_default()
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
            "p.json: pipeline[1]: missing key \"handler\" (processor \"sysflowreader\"): every block names the handler binary to run, e.g. \"handler\": \"printer\""
        );
        assert_eq!(
            err(r#"{"pipeline":[{"handler":7}]}"#),
            "p.json: pipeline[0].handler: expected a string, found a number"
        );
    }
}
