//! A deserializer over a JSON value that also takes numbers, booleans, arrays and objects
//! written as strings, as the reference's configuration does: every attribute of a reference
//! `pipeline.json` block is a string (`"flat": "false"`, `"buffer": "1000"`), and a
//! `<HANDLER>_<KEY>` environment override always is one. A string is converted only where the
//! handler's type asks for something else; a string that does not convert is an
//! `invalid type` error, as without this.

use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{self, Deserializer, IntoDeserializer, Unexpected, Visitor};
use serde_json::{Map, Value};

type Error = serde_json::Error;

/// A JSON value to deserialize leniently (see the module documentation).
#[derive(Debug)]
pub(crate) struct Lenient(pub(crate) Value);

fn visit_array<'de, V: Visitor<'de>>(items: Vec<Value>, visitor: V) -> Result<V::Value, Error> {
    let mut seq = SeqDeserializer::new(items.into_iter().map(Lenient));
    let out = visitor.visit_seq(&mut seq)?;
    seq.end()?;
    Ok(out)
}

fn visit_object<'de, V: Visitor<'de>>(
    entries: Map<String, Value>,
    visitor: V,
) -> Result<V::Value, Error> {
    let mut map = MapDeserializer::new(entries.into_iter().map(|(k, v)| (k, Lenient(v))));
    let out = visitor.visit_map(&mut map)?;
    map.end()?;
    Ok(out)
}

/// A string holding JSON of the compound kind asked for (`[...]` or `{...}`), parsed.
fn parse_compound(s: &str, want_array: bool) -> Option<Value> {
    match serde_json::from_str::<Value>(s) {
        Ok(v @ Value::Array(_)) if want_array => Some(v),
        Ok(v @ Value::Object(_)) if !want_array => Some(v),
        _ => None,
    }
}

macro_rules! lenient_number {
    ($($method:ident => $parse:ty, $visit:ident;)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
                match self.0 {
                    Value::String(s) => match s.trim().parse::<$parse>() {
                        Ok(n) => visitor.$visit(n),
                        Err(_) => Err(de::Error::invalid_type(Unexpected::Str(&s), &visitor)),
                    },
                    other => other.$method(visitor),
                }
            }
        )*
    };
}

macro_rules! forward {
    ($($method:ident)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
                self.0.$method(visitor)
            }
        )*
    };
}

impl<'de> Deserializer<'de> for Lenient {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Array(a) => visit_array(a, visitor),
            Value::Object(o) => visit_object(o, visitor),
            other => other.deserialize_any(visitor),
        }
    }

    lenient_number! {
        deserialize_i8 => i64, visit_i64;
        deserialize_i16 => i64, visit_i64;
        deserialize_i32 => i64, visit_i64;
        deserialize_i64 => i64, visit_i64;
        deserialize_u8 => u64, visit_u64;
        deserialize_u16 => u64, visit_u64;
        deserialize_u32 => u64, visit_u64;
        deserialize_u64 => u64, visit_u64;
        deserialize_f32 => f64, visit_f64;
        deserialize_f64 => f64, visit_f64;
        deserialize_bool => bool, visit_bool;
    }

    forward! {
        deserialize_char deserialize_str deserialize_string deserialize_bytes
        deserialize_byte_buf deserialize_unit deserialize_identifier deserialize_ignored_any
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            other => visitor.visit_some(Lenient(other)),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.0.deserialize_unit_struct(name, visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Array(a) => visit_array(a, visitor),
            Value::String(s) => match parse_compound(&s, true) {
                Some(Value::Array(a)) => visit_array(a, visitor),
                _ => Err(de::Error::invalid_type(Unexpected::Str(&s), &visitor)),
            },
            other => other.deserialize_seq(visitor),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Object(o) => visit_object(o, visitor),
            Value::String(s) => match parse_compound(&s, false) {
                Some(Value::Object(o)) => visit_object(o, visitor),
                _ => Err(de::Error::invalid_type(Unexpected::Str(&s), &visitor)),
            },
            other => other.deserialize_map(visitor),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.0.deserialize_enum(name, variants, visitor)
    }
}

impl IntoDeserializer<'_, Error> for Lenient {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Inner {
        port: u16,
        on: bool,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Cfg {
        n: u32,
        f: f64,
        s: String,
        opt: Option<i64>,
        list: Vec<u16>,
        inner: Inner,
        many: Vec<Inner>,
    }

    #[test]
    fn strings_become_what_the_type_asks_for() {
        let v = json!({"n": "7", "f": "0.5", "s": "12", "opt": "-3", "list": "[1, 2]",
            "inner": {"port": "80", "on": "true"},
            "many": "[{\"port\": 1, \"on\": false}]"});
        let cfg = Cfg::deserialize(Lenient(v)).unwrap();
        assert_eq!(
            cfg,
            Cfg {
                n: 7,
                f: 0.5,
                s: "12".into(),
                opt: Some(-3),
                list: vec![1, 2],
                inner: Inner { port: 80, on: true },
                many: vec![Inner { port: 1, on: false }],
            }
        );
    }

    #[test]
    fn plain_json_is_unchanged_and_bad_strings_are_type_errors() {
        let v = json!({"n": 7, "f": 1, "s": "x", "opt": null, "list": [3],
            "inner": {"port": 80, "on": false}, "many": []});
        assert_eq!(Cfg::deserialize(Lenient(v)).unwrap().list, [3]);
        let err = u32::deserialize(Lenient(json!("ten"))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid type: string \"ten\", expected u32"
        );
        let err = u8::deserialize(Lenient(json!("300"))).unwrap_err();
        assert!(err.to_string().contains("300"), "{err}");
        let err = Vec::<u8>::deserialize(Lenient(json!("1,2"))).unwrap_err();
        assert!(
            err.to_string().starts_with("invalid type: string \"1,2\""),
            "{err}"
        );
    }
}
