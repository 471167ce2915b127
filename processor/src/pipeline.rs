//! The pipeline configuration: `pipeline.json` in the reference processor's format.
//!
//! ```json
//! {"pipeline":[{"processor":"sysflowreader","handler":"printer","in":"sysflow sysflowchan"}]}
//! ```
//!
//! Each block of `pipeline` with a `handler` becomes one handler process. Every key of the
//! block is handed to the handler as its configuration. The optional `drivers` section is kept
//! as is for the reader.

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
    /// The whole block, for the handler's `init`.
    pub attributes: Map<String, Value>,
}

impl HandlerBlock {
    /// The JSON path of this block, for messages: `pipeline[1]`.
    pub fn json_path(&self) -> String {
        format!("pipeline[{}]", self.index)
    }

    /// The handler's configuration as `init` receives it.
    pub fn config(&self) -> HandlerConfig {
        HandlerConfig {
            name: self.handler.clone(),
            attributes: self.attributes.clone(),
        }
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
        handlers.push(HandlerBlock {
            index,
            processor,
            handler,
            input,
            attributes: attrs.clone(),
        });
    }
    Ok(Pipeline {
        source: path.to_owned(),
        handlers,
        drivers: root.get("drivers").cloned(),
    })
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
