//! The exporter block's keys, with the reference's names and defaults (`sf-processor`
//! `docs/CONFIG.md`, `core/exporter/commons`), parsed strictly: where the reference silently
//! falls back (an unknown `export` becomes `terminal`, an unknown `format` `json`, a bad port
//! 0), this is a start error naming the key.

use std::collections::BTreeMap;

use handler_sdk::HandlerConfig;
use serde_json::Value;

/// Where records go (`export`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Export {
    /// Standard output, one record per line (`terminal`, the default).
    Terminal,
    /// Appended to `file.path` (`file`).
    File(FileSettings),
    /// A syslog server (`syslog`).
    Syslog(SyslogSettings),
    /// A Kafka topic (`kafka`).
    Kafka(KafkaSettings),
    /// Nowhere (`null`): records are encoded and dropped.
    Null,
}

/// `file` transport keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSettings {
    /// `file.path` (default `./export.out`).
    pub path: String,
    /// `file.fsync` (default false): `fsync(2)` at every commit, not only `write(2)`.
    pub fsync: bool,
}

/// `syslog.proto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// `tcp` (the default).
    Tcp,
    /// `udp`.
    Udp,
    /// `tls` (also `tcp+tls`, the spelling of the reference's template).
    Tls,
}

impl Proto {
    /// The key's value.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Tls => "tls",
        }
    }
}

/// `syslog` transport keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogSettings {
    /// `syslog.proto`.
    pub proto: Proto,
    /// `syslog.tag` (default `sysflow`): the message's MSGID field, as srslog writes it.
    pub tag: String,
    /// `syslog.source`: the HOSTNAME field; empty: the socket's local address.
    pub source: String,
    /// `syslog.host` (default `localhost`).
    pub host: String,
    /// `syslog.port` (default 514).
    pub port: u16,
    /// `syslog.framing`: `false` (the default, as the reference) sends each message followed
    /// by a newline; `true` (`octet-counting`) prefixes `LEN ` as RFC 6587 3.4.1 (TCP, TLS).
    pub octet_counting: bool,
    /// `syslog.tls.ca`: PEM file of the certificate authorities to trust (default: the
    /// system's).
    pub tls_ca: Option<String>,
    /// `syslog.tls.verify` (default true): `false` accepts any certificate, as the reference
    /// does.
    pub tls_verify: bool,
    /// `syslog.tls.servername`: the name the certificate must carry (default `syslog.host`).
    pub tls_server_name: Option<String>,
}

/// Which part of a record is a Kafka message's key (`kafka.key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KafkaKey {
    /// No key (the default): librdkafka spreads the messages over the partitions.
    None,
    /// The node (the trace header's `exporter`): one node's records stay in order.
    Node,
    /// The container id (empty on the host).
    Container,
    /// The process (its OID hash, as `proc.oid`).
    Process,
}

/// `kafka` transport keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSettings {
    /// `kafka.config`: librdkafka properties (`bootstrap.servers` required), on top of
    /// `client.id=sf-exporter` and `acks=all`.
    pub config: BTreeMap<String, String>,
    /// `kafka.topic` (required).
    pub topic: String,
    /// `kafka.key`.
    pub key: KafkaKey,
}

/// `format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The reference's JSON layout, schema version 5 (the default).
    Json,
    /// ECS 8.2.
    Ecs,
}

/// Every setting of an exporter block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `export`.
    pub export: Export,
    /// `format`.
    pub format: Format,
    /// `buffer` (default 0): records kept before they are exported together; a batch goes
    /// out when it holds `buffer + 1` records, as the reference counts (`counter >
    /// EventBuffer`), when no record waits, and at the end.
    pub buffer: usize,
    /// `version`: ECS `agent.version` (default `0.7.0`, the reference release whose output
    /// format this is).
    pub version: String,
    /// `seq` (default false, an extension): each record's object ends with `"seq": N`, its
    /// sequence number in the stream, so that a consumer can drop the copies a restarted
    /// exporter sends again (delivery is at-least-once).
    pub seq: bool,
    /// `json.extensions` (default false, format `json` only): the keys the reference's
    /// layout drops (`proc`/`pproc` `cwd` and `env`, `net.fd`, `meta.filename`).
    pub extensions: bool,
}

/// The version of the reference release whose output this exporter reproduces: the default
/// ECS `agent.version`.
pub const REFERENCE_VERSION: &str = "0.7.0";

/// A block the exporter cannot start with; the message names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A key's value is not one of those it takes.
    #[error("\"{key}\": {value:?} is not one of {expected}")]
    Unknown {
        /// The key.
        key: String,
        /// Its value.
        value: String,
        /// What it takes.
        expected: &'static str,
    },
    /// A value the reference knows, not supported here.
    #[error("\"{key}\": {value:?} ({what}) is not supported by this exporter ({supported})")]
    Unsupported {
        /// The key.
        key: String,
        /// Its value.
        value: String,
        /// What it is.
        what: &'static str,
        /// What is.
        supported: &'static str,
    },
    /// A value of the wrong type or shape.
    #[error("\"{key}\": {message}")]
    Invalid {
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A required key is missing.
    #[error("\"{key}\" is required with {with}")]
    Missing {
        /// The key.
        key: &'static str,
        /// For what.
        with: &'static str,
    },
}

/// The keys of an exporter block the exporter reads (every one, for the json handler's
/// block too), for the launcher's check of unknown keys ([`config_keys`]).
pub const KEYS: &[&str] = &[
    "export",
    "format",
    "buffer",
    "version",
    "seq",
    "json.extensions",
    "file.path",
    "file.fsync",
    "syslog.proto",
    "syslog.host",
    "syslog.port",
    "syslog.tag",
    "syslog.source",
    "syslog.framing",
    "syslog.tls.ca",
    "syslog.tls.verify",
    "syslog.tls.servername",
    "kafka.config",
    "kafka.topic",
    "kafka.key",
    "kafka.compression",
    "kafka.encoding",
    // The json handler's own keys (an error in an exporter block: see `from_config`).
    "file",
    "fsync",
    "entities",
    // The names older references read (an error naming today's: see `from_config`).
    "proto",
    "host",
    "port",
    "tag",
    "source",
    "path",
    "flat",
];

/// Keys of the reference's for transports this exporter does not have (`es`, `findings`):
/// accepted with a warning, so that the block's error is the one that says so (`"export":
/// "es" ... is not supported`), not an unknown key.
const FOREIGN_KEYS: &[&str] = &[
    "es.addresses",
    "es.index",
    "es.username",
    "es.password",
    "es.bulk.numWorkers",
    "es.bulk.flushBuffer",
    "es.bulk.flushTimeout",
    "findings.apikey",
    "findings.url",
    "findings.accountid",
    "findings.provider",
    "findings.note",
    "findings.region",
    "findings.sqlqueryurl",
    "findings.sqlquerycrn",
    "findings.s3region",
    "findings.s3bucket",
    "findings.path",
    "findings.pool.capacity",
    "findings.pool.maxage",
    "sa.apikey",
    "sa.url",
    "sa.accountid",
    "sa.provider",
    "sa.note",
    "sa.sqlqueryurl",
    "sa.sqlquerycrn",
    "region",
];

/// The exporter's keys for [`handler_sdk::Handler::config_keys`]: [`KEYS`], the reference's
/// keys it accepts and does not use (a warning each: the reference's secrets vault, its
/// build labels, the `es`/`findings` transports' settings), and a check of the values by
/// the exporter's own parser (the json handler's when the block says `"handler": "json"`),
/// so that `sf-launch check` reports a bad value before anything starts.
pub fn config_keys() -> handler_sdk::ConfigKeys {
    let mut keys = handler_sdk::ConfigKeys::new(KEYS)
        .ignored(
            "vault.secrets",
            "the reference's secrets vault, for the es and findings credentials",
        )
        .ignored("vault.path", "the reference's secrets vault")
        .ignored("jsonschemaversion", "a label of the reference's builds")
        .ignored("buildnumber", "a label of the reference's builds");
    for key in FOREIGN_KEYS {
        keys = keys.ignored(
            key,
            "a setting of the es and findings transports, not supported here",
        );
    }
    keys.checked_by(|config| {
        let parsed = if config.get_str("handler") == Some("json") {
            Settings::from_json_handler(config)
        } else {
            Settings::from_config(config)
        };
        parsed.map(drop).map_err(|e| {
            let text = e.to_string();
            match &e {
                // "\"key\" is required with ...": the block as a whole.
                ConfigError::Missing { .. } => handler_sdk::ConfigError::new(config, None, text),
                ConfigError::Unknown { key, .. }
                | ConfigError::Unsupported { key, .. }
                | ConfigError::Invalid { key, .. } => {
                    let prefix = format!("\"{key}\": ");
                    let reason = text.strip_prefix(&prefix).unwrap_or(&text);
                    handler_sdk::ConfigError::new(config, Some(key), reason)
                }
            }
        })
    })
}

/// Today's names of the keys older references read.
const OLD_NAMES: &[(&str, &str)] = &[
    ("proto", "syslog.proto"),
    ("host", "syslog.host"),
    ("port", "syslog.port"),
    ("tag", "syslog.tag"),
    ("source", "syslog.source"),
    ("path", "file.path"),
];

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// A string attribute; numbers and booleans are taken as their text (an environment
/// override is always a string, the reference's attributes always are).
fn text(a: &serde_json::Map<String, Value>, key: &str) -> Result<Option<String>, ConfigError> {
    match a.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(other) => Err(invalid(key, format!("must be a string, not {other}"))),
    }
}

fn flag(a: &serde_json::Map<String, Value>, key: &str, default: bool) -> Result<bool, ConfigError> {
    match text(a, key)?.as_deref().map(str::trim) {
        None => Ok(default),
        Some("true" | "on" | "yes") => Ok(true),
        Some("false" | "off" | "no") => Ok(false),
        Some(other) => Err(ConfigError::Unknown {
            key: key.into(),
            value: other.into(),
            expected: "true, false",
        }),
    }
}

impl Settings {
    /// Parses the exporter's block.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first key that is wrong.
    pub fn from_config(config: &HandlerConfig) -> Result<Settings, ConfigError> {
        let a = &config.attributes;
        for (old, new) in OLD_NAMES {
            if a.contains_key(*old) {
                return Err(invalid(
                    old,
                    format!("an older reference's name, not read by this one: write \"{new}\""),
                ));
            }
        }
        for (key, instead) in [
            ("file", "\"export\": \"file\" with \"file.path\""),
            ("fsync", "\"file.fsync\""),
            ("entities", "nothing: the exporter writes flows and events"),
        ] {
            if a.contains_key(key) {
                return Err(invalid(
                    key,
                    format!(
                        "a key of the json handler (\"handler\": \"json\"); the exporter's is {instead}"
                    ),
                ));
            }
        }
        if flag(a, "flat", false)? {
            return Err(ConfigError::Unsupported {
                key: "flat".into(),
                value: "true".into(),
                what: "the reference's flattened JSON layout",
                supported: "the nested layout is written",
            });
        }
        let format = match text(a, "format")?.as_deref() {
            None | Some("json") => Format::Json,
            Some("ecs") => Format::Ecs,
            Some(v @ ("occurrence" | "otel")) => {
                return Err(ConfigError::Unsupported {
                    key: "format".into(),
                    value: v.into(),
                    what: if v == "otel" {
                        "OpenTelemetry records"
                    } else {
                        "IBM Findings occurrences"
                    },
                    supported: "supported: json, ecs",
                });
            }
            Some(v) => {
                return Err(ConfigError::Unknown {
                    key: "format".into(),
                    value: v.into(),
                    expected: "json, ecs",
                });
            }
        };
        let buffer = match text(a, "buffer")? {
            None => 0,
            Some(s) => s.trim().parse().map_err(|_| {
                invalid("buffer", format!("must be a number of records, not {s:?}"))
            })?,
        };
        let export = match text(a, "export")?.as_deref() {
            None | Some("terminal") => Export::Terminal,
            Some("null") => Export::Null,
            Some("file") => Export::File(FileSettings {
                path: match text(a, "file.path")? {
                    None => "./export.out".into(),
                    Some(p) if p.is_empty() => {
                        return Err(invalid("file.path", "must not be empty"));
                    }
                    Some(p) => p,
                },
                fsync: flag(a, "file.fsync", false)?,
            }),
            Some("syslog") => Export::Syslog(syslog(a)?),
            Some("kafka") => Export::Kafka(kafka(a)?),
            Some(v @ ("es" | "findings" | "otel" | "otelkafka")) => {
                return Err(ConfigError::Unsupported {
                    key: "export".into(),
                    value: v.into(),
                    what: match v {
                        "es" => "Elasticsearch bulk ingestion",
                        "findings" => "IBM Findings API",
                        _ => "OpenTelemetry",
                    },
                    supported: "supported: terminal, file, syslog, kafka, null",
                });
            }
            Some(v) => {
                return Err(ConfigError::Unknown {
                    key: "export".into(),
                    value: v.into(),
                    expected: "terminal, file, syslog, kafka, null",
                });
            }
        };
        let extensions = flag(a, "json.extensions", false)?;
        if extensions && format != Format::Json {
            return Err(invalid(
                "json.extensions",
                "applies to \"format\": \"json\" only",
            ));
        }
        Ok(Settings {
            export,
            format,
            buffer,
            version: text(a, "version")?.unwrap_or_else(|| REFERENCE_VERSION.into()),
            seq: flag(a, "seq", false)?,
            extensions,
        })
    }

    /// Parses a block of the `json` handler (`"handler": "json"`, `sf-handler-json`): the
    /// exporter with `format` `json`, its keys taken as they were: `file` (a path: `export`
    /// `file` to it; absent, empty or `-`: `terminal`), `fsync` (`file.fsync`), `seq`,
    /// `buffer` (now records, as the exporter counts); every exporter key works too.
    /// `entities` is gone (the exporter writes flows and events, as the reference's does):
    /// `true` is a start error saying so.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first key that is wrong.
    pub fn from_json_handler(config: &HandlerConfig) -> Result<Settings, ConfigError> {
        let mut a = config.attributes.clone();
        if flag(&a, "entities", false)? {
            return Err(invalid(
                "entities",
                "entity records are no longer exported: the json handler is the exporter's json format, which writes flows and events as the reference's exporter does",
            ));
        }
        match text(&a, "format")?.as_deref() {
            None | Some("json") => {}
            Some(other) => {
                return Err(invalid(
                    "format",
                    format!(
                        "the json handler writes \"json\", not {other:?} (use the exporter block, \"processor\": \"exporter\" without \"handler\")"
                    ),
                ));
            }
        }
        if let Some(file) = text(&a, "file")? {
            if !a.contains_key("export") {
                let export = if file.is_empty() || file == "-" {
                    "terminal"
                } else {
                    "file"
                };
                a.insert("export".into(), Value::String(export.into()));
            }
            if !file.is_empty() && file != "-" {
                a.insert("file.path".into(), Value::String(file));
            }
        }
        if let Some(v) = a.get("fsync").cloned() {
            a.insert("file.fsync".into(), v);
        }
        for key in ["file", "fsync", "entities"] {
            a.remove(key);
        }
        Settings::from_config(&HandlerConfig::new(&config.name, a))
    }
}

fn syslog(a: &serde_json::Map<String, Value>) -> Result<SyslogSettings, ConfigError> {
    let proto = match text(a, "syslog.proto")?.as_deref() {
        None | Some("tcp") => Proto::Tcp,
        Some("udp") => Proto::Udp,
        Some("tls" | "tcp+tls") => Proto::Tls,
        Some(v) => {
            return Err(ConfigError::Unknown {
                key: "syslog.proto".into(),
                value: v.into(),
                expected: "tcp, udp, tls",
            });
        }
    };
    let port = match text(a, "syslog.port")? {
        None => 514,
        Some(p) => p
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| invalid("syslog.port", format!("must be a port number, not {p:?}")))?,
    };
    let octet_counting = match text(a, "syslog.framing")?.as_deref() {
        None | Some("none" | "newline") => false,
        Some("octet-counting") => true,
        Some(v) => {
            return Err(ConfigError::Unknown {
                key: "syslog.framing".into(),
                value: v.into(),
                expected: "none, octet-counting",
            });
        }
    };
    let host = text(a, "syslog.host")?.unwrap_or_else(|| "localhost".into());
    if host.is_empty() {
        return Err(invalid("syslog.host", "must not be empty"));
    }
    Ok(SyslogSettings {
        proto,
        tag: text(a, "syslog.tag")?.unwrap_or_else(|| "sysflow".into()),
        source: text(a, "syslog.source")?.unwrap_or_default(),
        host,
        port,
        octet_counting,
        tls_ca: text(a, "syslog.tls.ca")?.filter(|s| !s.is_empty()),
        tls_verify: flag(a, "syslog.tls.verify", true)?,
        tls_server_name: text(a, "syslog.tls.servername")?.filter(|s| !s.is_empty()),
    })
}

fn kafka(a: &serde_json::Map<String, Value>) -> Result<KafkaSettings, ConfigError> {
    let mut config = BTreeMap::new();
    config.insert("client.id".to_owned(), "sf-exporter".to_owned());
    config.insert("acks".to_owned(), "all".to_owned());
    let map = match a.get("kafka.config") {
        None | Some(Value::Null) => {
            return Err(ConfigError::Missing {
                key: "kafka.config",
                with: "\"export\": \"kafka\" (an object with at least \"bootstrap.servers\")",
            });
        }
        Some(Value::Object(m)) => m.clone(),
        // An environment override, or a block written with string values only.
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => m,
            _ => {
                return Err(invalid(
                    "kafka.config",
                    format!("must be a JSON object, not {s:?}"),
                ));
            }
        },
        Some(other) => {
            return Err(invalid(
                "kafka.config",
                format!("must be an object, not {other}"),
            ));
        }
    };
    for (k, v) in map {
        let value = match v {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => {
                return Err(invalid(
                    &format!("kafka.config.{k}"),
                    format!("must be a string, number or boolean, not {other}"),
                ));
            }
        };
        config.insert(k, value);
    }
    if let Some(c) = text(a, "kafka.compression")? {
        config.insert("compression.type".into(), c);
    }
    if !config.contains_key("bootstrap.servers") {
        return Err(ConfigError::Missing {
            key: "kafka.config",
            with: "\"export\": \"kafka\" (it has no \"bootstrap.servers\")",
        });
    }
    let topic = text(a, "kafka.topic")?
        .filter(|t| !t.is_empty())
        .ok_or(ConfigError::Missing {
            key: "kafka.topic",
            with: "\"export\": \"kafka\"",
        })?;
    let key = match text(a, "kafka.key")?.as_deref() {
        None | Some("none") => KafkaKey::None,
        Some("node") => KafkaKey::Node,
        Some("container") => KafkaKey::Container,
        Some("proc" | "process") => KafkaKey::Process,
        Some(v) => {
            return Err(ConfigError::Unknown {
                key: "kafka.key".into(),
                value: v.into(),
                expected: "none, node, container, proc",
            });
        }
    };
    if let Some(enc) = text(a, "kafka.encoding")?
        && enc != "json"
    {
        return Err(ConfigError::Unsupported {
            key: "kafka.encoding".into(),
            value: enc,
            what: "protobuf OpenTelemetry messages",
            supported: "the value is the record in \"format\": json or ecs",
        });
    }
    Ok(KafkaSettings { config, topic, key })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Settings, ConfigError> {
        Settings::from_config(&HandlerConfig::new(
            "exporter",
            v.as_object().cloned().unwrap_or_default(),
        ))
    }

    #[test]
    fn defaults_are_the_references() {
        let s = parse(json!({"processor": "exporter", "in": "evt eventchan"})).unwrap();
        assert_eq!(s.export, Export::Terminal);
        assert_eq!(s.format, Format::Json);
        assert_eq!(s.buffer, 0);
        assert!(!s.seq && !s.extensions);
        let s = parse(json!({"export": "file"})).unwrap();
        assert_eq!(
            s.export,
            Export::File(FileSettings {
                path: "./export.out".into(),
                fsync: false
            })
        );
        let Export::Syslog(sys) = parse(json!({"export": "syslog"})).unwrap().export else {
            panic!("syslog")
        };
        assert_eq!(
            (
                sys.proto,
                sys.tag.as_str(),
                sys.host.as_str(),
                sys.port,
                sys.source.as_str()
            ),
            (Proto::Tcp, "sysflow", "localhost", 514, "")
        );
        assert!(sys.tls_verify && !sys.octet_counting);
    }

    #[test]
    fn the_reference_pipelines_string_values_parse() {
        let s = parse(
            json!({"export": "syslog", "format": "json", "syslog.proto": "udp",
            "syslog.tag": "sysflow", "syslog.host": "localhost", "syslog.port": "514",
            "buffer": "1000"}),
        )
        .unwrap();
        assert_eq!(s.buffer, 1000);
        let Export::Syslog(sys) = s.export else {
            panic!()
        };
        assert_eq!((sys.proto, sys.port), (Proto::Udp, 514));
    }

    #[test]
    fn bad_values_name_their_key() {
        for (block, want) in [
            (
                json!({"export": "es"}),
                "\"export\": \"es\" (Elasticsearch bulk ingestion) is not supported by this exporter (supported: terminal, file, syslog, kafka, null)",
            ),
            (
                json!({"export": "findings"}),
                "\"export\": \"findings\" (IBM Findings API) is not supported by this exporter (supported: terminal, file, syslog, kafka, null)",
            ),
            (
                json!({"export": "stdout"}),
                "\"export\": \"stdout\" is not one of terminal, file, syslog, kafka, null",
            ),
            (
                json!({"format": "xml"}),
                "\"format\": \"xml\" is not one of json, ecs",
            ),
            (
                json!({"format": "otel"}),
                "\"format\": \"otel\" (OpenTelemetry records) is not supported by this exporter (supported: json, ecs)",
            ),
            (
                json!({"export": "file", "file.path": ""}),
                "\"file.path\": must not be empty",
            ),
            (
                json!({"export": "syslog", "syslog.port": "syslog"}),
                "\"syslog.port\": must be a port number, not \"syslog\"",
            ),
            (
                json!({"export": "syslog", "syslog.proto": "sctp"}),
                "\"syslog.proto\": \"sctp\" is not one of tcp, udp, tls",
            ),
            (
                json!({"buffer": "lots"}),
                "\"buffer\": must be a number of records, not \"lots\"",
            ),
            (
                json!({"export": "kafka", "kafka.topic": "t"}),
                "\"kafka.config\" is required with \"export\": \"kafka\" (an object with at least \"bootstrap.servers\")",
            ),
            (
                json!({"export": "kafka", "kafka.config": {"bootstrap.servers": "h:9092"}}),
                "\"kafka.topic\" is required with \"export\": \"kafka\"",
            ),
            (
                json!({"export": "kafka", "kafka.topic": "t", "kafka.config": {"acks": "1"}}),
                "\"kafka.config\" is required with \"export\": \"kafka\" (it has no \"bootstrap.servers\")",
            ),
        ] {
            assert_eq!(
                parse(block.clone()).unwrap_err().to_string(),
                want,
                "{block}"
            );
        }
    }

    #[test]
    fn kafka_settings_merge_over_the_defaults() {
        let s = parse(
            json!({"export": "kafka", "format": "ecs", "kafka.topic": "alerts",
            "kafka.config": "{\"bootstrap.servers\": \"127.0.0.1:9092\", \"linger.ms\": 5}",
            "kafka.key": "node", "kafka.compression": "lz4"}),
        )
        .unwrap();
        let Export::Kafka(k) = s.export else { panic!() };
        assert_eq!(k.topic, "alerts");
        assert_eq!(k.key, KafkaKey::Node);
        assert_eq!(
            k.config
                .iter()
                .map(|(a, b)| format!("{a}={b}"))
                .collect::<Vec<_>>(),
            [
                "acks=all",
                "bootstrap.servers=127.0.0.1:9092",
                "client.id=sf-exporter",
                "compression.type=lz4",
                "linger.ms=5"
            ]
        );
    }

    #[test]
    fn json_handler_blocks_are_the_exporter_with_format_json() {
        let json_handler = |v: Value| {
            Settings::from_json_handler(&HandlerConfig::new(
                "json",
                v.as_object().cloned().unwrap_or_default(),
            ))
        };
        let s = json_handler(
            json!({"handler": "json", "file": "/tmp/a.jsonl", "fsync": true,
            "seq": "true", "buffer": 0}),
        )
        .unwrap();
        assert_eq!(
            s.export,
            Export::File(FileSettings {
                path: "/tmp/a.jsonl".into(),
                fsync: true
            })
        );
        assert!(s.seq && s.format == Format::Json && s.buffer == 0);
        for stdout in [json!({}), json!({"file": "-"}), json!({"file": ""})] {
            assert_eq!(json_handler(stdout).unwrap().export, Export::Terminal);
        }
        assert_eq!(
            json_handler(json!({"entities": true}))
                .unwrap_err()
                .to_string(),
            "\"entities\": entity records are no longer exported: the json handler is the exporter's json format, which writes flows and events as the reference's exporter does"
        );
        assert!(
            json_handler(json!({"format": "ecs"}))
                .unwrap_err()
                .to_string()
                .starts_with("\"format\": the json handler writes \"json\", not \"ecs\"")
        );
        // The exporter's own keys work too.
        let s = json_handler(json!({"export": "null", "json.extensions": true})).unwrap();
        assert!(s.export == Export::Null && s.extensions);
        assert_eq!(
            parse(json!({"format": "ecs", "json.extensions": true}))
                .unwrap_err()
                .to_string(),
            "\"json.extensions\": applies to \"format\": \"json\" only"
        );
    }
}
