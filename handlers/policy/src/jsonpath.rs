//! The JSON-path suffix of attributes (`sf.ke.message[items.0.namespace]`,
//! `sf.pod.services[0.clusterip.0]`): the reference applies GJSON's `Get` to the attribute's
//! JSON text. This is the subset of GJSON's path syntax that such suffixes use: keys and
//! array indices separated by `.` (`\.` for a dot inside a key), and `#` for an array's
//! length. The result reads as GJSON's `String()`: a string without its quotes, a number or
//! `true`/`false` as written, an object or array as JSON, and nothing (`""`) for `null`, a
//! missing key, or text that is not JSON.
//! The text is read from its first `{` or `[` to the end of that value.

use serde_json::Value;

/// Writes GJSON's `Get(json, path).String()` into `out` (cleared first).
pub fn get(json: &str, path: &str, out: &mut String) {
    out.clear();
    // As GJSON: the first object or array of the text; what follows it (the collector's
    // k8s messages end with a line feed and a NUL) is not read.
    let Some(start) = json.find(['{', '[']) else {
        return;
    };
    let Some(Ok(root)) = serde_json::Deserializer::from_str(&json[start..])
        .into_iter::<Value>()
        .next()
    else {
        return;
    };
    let mut cur = &root;
    let mut parts = Vec::new();
    let mut part = String::new();
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    part.push(n);
                }
            }
            '.' => parts.push(std::mem::take(&mut part)),
            c => part.push(c),
        }
    }
    parts.push(part);
    let mut length = None;
    for p in &parts {
        let next = match cur {
            Value::Object(m) => m.get(p.as_str()),
            Value::Array(a) if p == "#" => {
                length = Some(a.len());
                None
            }
            Value::Array(a) => p.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        };
        match next {
            Some(v) => cur = v,
            None => {
                if let Some(n) = length {
                    out.push_str(&n.to_string());
                }
                return;
            }
        }
    }
    match cur {
        Value::Null => {}
        Value::String(s) => out.push_str(s),
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_indices_and_lengths() {
        let json = r#"{"items":[{"namespace":"robot-shop","n":3,"ok":true,"o":{"a":1}}],"x":null}"#;
        let mut out = String::new();
        for (path, want) in [
            ("items.0.namespace", "robot-shop"),
            ("items.0.n", "3"),
            ("items.0.ok", "true"),
            ("items.0.o", r#"{"a":1}"#),
            ("items.#", "1"),
            ("items.1.namespace", ""),
            ("x", ""),
            ("nope", ""),
        ] {
            get(json, path, &mut out);
            assert_eq!(out, want, "{path}");
        }
        get("{\"a\":{\"b\":\"c\"}}\n\u{0}", "a.b", &mut out);
        assert_eq!(out, "c", "text after the value is not read");
        get("bash,sh", "2", &mut out);
        assert_eq!(out, "", "not JSON: nothing, as GJSON");
    }
}
