//! A handler's configuration: its `pipeline.json` block with `<HANDLER>_<KEY>` environment
//! overrides applied, as the reference `sf-processor` does.
//!
//! # The override rule
//!
//! The reference (`driver/pipeline/plugincache.go`, `updateConfigFromEnv` and `getEnv`)
//! lower-cases every environment variable's name, splits it at the first `_`, and when the
//! part before it is the plugin's name, sets the attribute named by the rest to the variable's
//! value, a string; its latest version also turns the `_` of the rest into `.` (its attribute
//! names are dotted). Here, for the handler named `NAME`:
//!
//! - a variable whose name, lower-cased, starts with `NAME` lower-cased (each character that
//!   is not a letter or digit written `_`) followed by `_` overrides an attribute, so handler
//!   `alert` reads `ALERT_FILE`, handler `my-stats` reads `MY_STATS_TOP`;
//! - the attribute is the rest of the name, lower-cased (`ALERT_FILE` sets `file`,
//!   `PROBE_SLEEP_US` sets `sleep_us`); if the block has no such key but has the key with
//!   each `_` written `.`, that dotted key is set (the reference's rule for dotted names);
//! - a block of one of the reference's built-in processors without a `handler` key
//!   (`"processor": "policyengine"`, `"exporter"`: see
//!   [`IMPLIED_HANDLERS`]) is named by its
//!   processor, so its prefix is the processor's name, and every `_` of the rest stands for
//!   `.`, as in the reference's plugin cache: `POLICYENGINE_MODE` sets `mode`,
//!   `EXPORTER_SYSLOG_HOST` sets `syslog.host`, `EXPORTER_FILE_PATH` sets `file.path`;
//! - the value is the variable's value, as a JSON string: [`HandlerConfig::parse`] converts
//!   it where the handler's type asks for a number, a boolean, a list (`ALERT_RULES='[...]'`)
//!   or an object;
//! - the pipeline's own variables (`SF_RING_FD`, `SF_HANDLER_CONFIG`, ..., `SF_LOG`) never
//!   count as overrides.
//!
//! Overrides apply to the block the handler's `init` receives, in every process of the
//! handler (the launcher passes its environment to the handlers it starts), so
//! `ALERT_FILE=/tmp/alerts.jsonl sf-launch pipeline.json trace` sends the alerts there.

use serde_json::Value;
use sf_processor::handler::{HandlerConfig, env};
use sf_processor::logging::LOG_ENV;
use sf_processor::pipeline::IMPLIED_HANDLERS;

/// The pipeline's own environment variables, which are never overrides.
const PIPELINE_VARS: [&str; 11] = [
    env::RING_FD,
    env::JOURNAL_FD,
    env::NAME,
    env::CONFIG,
    env::LAUNCHER_PID,
    env::SKIP_SEQ,
    env::SKIP_REASON,
    env::DEAD_LETTER,
    env::OUT_RINGS,
    env::BLOCK,
    LOG_ENV,
];

/// The prefix of `name`'s override variables, lower-cased, `_` included: `alert_` for
/// `alert`, `my_stats_` for `my-stats`.
pub fn env_prefix(name: &str) -> String {
    let mut prefix: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    prefix.push('_');
    prefix
}

/// Applies the `<HANDLER>_<KEY>` overrides among `vars` (name, value pairs such as
/// `std::env::vars()`) to `config` (see the [module documentation](self) for the rule) and
/// returns the keys it set with the variables that set them, in `vars` order.
///
/// ```
/// use handler_sdk::config::apply_env_overrides;
/// use handler_sdk::HandlerConfig;
///
/// let block = serde_json::json!({"handler": "stats", "top": 10});
/// let mut config = HandlerConfig::new("stats", block.as_object().unwrap().clone());
/// let set = apply_env_overrides(&mut config, [("STATS_TOP".to_string(), "3".to_string())]);
/// assert_eq!(set, [("top".to_string(), "STATS_TOP".to_string())]);
/// assert_eq!(config.attributes["top"], "3");
/// ```
pub fn apply_env_overrides<I>(config: &mut HandlerConfig, vars: I) -> Vec<(String, String)>
where
    I: IntoIterator<Item = (String, String)>,
{
    let prefix = env_prefix(&config.name);
    // A built-in processor's block (no `handler` key): every `_` of the rest is a `.`.
    let processor_block = !config.attributes.contains_key("handler")
        && config
            .attributes
            .get("processor")
            .and_then(Value::as_str)
            .is_some_and(|p| {
                IMPLIED_HANDLERS
                    .iter()
                    .any(|(name, _)| *name == p && *name == config.name)
            });
    let mut set = Vec::new();
    for (var, value) in vars {
        if PIPELINE_VARS.contains(&var.as_str()) {
            continue;
        }
        let lower = var.to_ascii_lowercase();
        let Some(rest) = lower.strip_prefix(&prefix) else {
            continue;
        };
        if rest.is_empty() {
            continue;
        }
        let dotted = rest.replace('_', ".");
        let key = if processor_block
            || (!config.attributes.contains_key(rest) && config.attributes.contains_key(&dotted))
        {
            dotted
        } else {
            rest.to_owned()
        };
        config.attributes.insert(key.clone(), Value::String(value));
        set.push((key, var));
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn config(name: &str, block: Value) -> HandlerConfig {
        HandlerConfig::new(name, block.as_object().unwrap().clone())
    }

    #[test]
    fn handler_name_prefix_selects_and_rest_names_the_key() {
        let mut c = config("alert", json!({"handler": "alert", "file": "a.jsonl"}));
        let set = apply_env_overrides(
            &mut c,
            vars(&[
                ("ALERT_FILE", "/tmp/b.jsonl"),
                ("alert_Max_Rate", "5"),
                ("ALERTS_FILE", "no: another prefix"),
                ("STATS_TOP", "no: another handler"),
                ("ALERT_", "no: empty key"),
                ("ALERT", "no: no key"),
                ("PATH", "/bin"),
            ]),
        );
        assert_eq!(
            set,
            vars(&[("file", "ALERT_FILE"), ("max_rate", "alert_Max_Rate")])
        );
        assert_eq!(
            Value::Object(c.attributes),
            json!({"handler": "alert", "file": "/tmp/b.jsonl", "max_rate": "5"})
        );
    }

    #[test]
    fn names_with_dashes_and_dotted_keys() {
        assert_eq!(env_prefix("my-stats"), "my_stats_");
        let mut c = config("my-stats", json!({"es.addresses": "x", "top_n": 1}));
        apply_env_overrides(
            &mut c,
            vars(&[("MY_STATS_ES_ADDRESSES", "y"), ("MY_STATS_TOP_N", "2")]),
        );
        assert_eq!(
            Value::Object(c.attributes),
            json!({"es.addresses": "y", "top_n": "2"})
        );
    }

    #[test]
    fn a_processor_block_is_named_by_its_processor_and_every_underscore_is_a_dot() {
        let block = json!({"processor": "exporter", "in": "evt eventchan", "export": "syslog"});
        let mut c = config("exporter", block);
        let set = apply_env_overrides(
            &mut c,
            vars(&[
                ("EXPORTER_SYSLOG_HOST", "10.0.0.1"),
                ("EXPORTER_FILE_PATH", "/tmp/x"),
                ("EXPORTER_EXPORT", "file"),
                ("POLICYENGINE_MODE", "no: another block"),
            ]),
        );
        assert_eq!(
            set,
            vars(&[
                ("syslog.host", "EXPORTER_SYSLOG_HOST"),
                ("file.path", "EXPORTER_FILE_PATH"),
                ("export", "EXPORTER_EXPORT")
            ])
        );
        assert_eq!(c.attributes["syslog.host"], "10.0.0.1");
        // A block that names its handler keeps the handler's rule.
        let mut c = config(
            "alert",
            json!({"processor": "exporter", "handler": "alert"}),
        );
        apply_env_overrides(&mut c, vars(&[("ALERT_MAX_RATE", "5")]));
        assert_eq!(c.attributes["max_rate"], "5");
    }

    #[test]
    fn pipeline_variables_are_never_overrides() {
        let mut c = config("sf", json!({}));
        let set = apply_env_overrides(
            &mut c,
            vars(&[
                ("SF_RING_FD", "3"),
                ("SF_HANDLER_CONFIG", "{}"),
                ("SF_LOG", "debug"),
                ("SF_OTHER", "1"),
            ]),
        );
        assert_eq!(set, vars(&[("other", "SF_OTHER")]));
    }

    #[test]
    fn overrides_parse_into_typed_fields() {
        #[derive(serde::Deserialize)]
        struct Cfg {
            top: u32,
            ports: Vec<u16>,
            verbose: bool,
        }
        let mut c = config("stats", json!({"top": 10, "ports": [1], "verbose": false}));
        apply_env_overrides(
            &mut c,
            vars(&[
                ("STATS_TOP", "3"),
                ("STATS_PORTS", "[80, 443]"),
                ("STATS_VERBOSE", "true"),
            ]),
        );
        let cfg: Cfg = c.parse().unwrap();
        assert_eq!((cfg.top, cfg.ports, cfg.verbose), (3, vec![80, 443], true));
        apply_env_overrides(&mut c, vars(&[("STATS_TOP", "many")]));
        assert_eq!(
            c.parse::<Cfg>().err().unwrap().to_string(),
            "handler \"stats\": bad configuration: top: invalid type: string \"many\", expected u32"
        );
    }
}
