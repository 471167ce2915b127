//! A minimal Avro schema model, parsed from the writer schema's JSON text (`serde_json`).
//!
//! Only what decoding needs: the types, record field names and order, enum symbols, fixed
//! sizes, and named-type references resolved by full name (Avro's namespace rules: a name with
//! a dot is a full name, otherwise it takes the `namespace` attribute or the enclosing
//! namespace). Attributes such as `default`, `doc`, `aliases`, `logicalType` are ignored:
//! SysFlow timestamps are raw `long`s whatever logical type an old writer declared.

use std::collections::HashMap;

use serde_json::Value as Json;

/// An Avro type of the writer schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ty {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    /// A record, enum or fixed: index into [`Schema::named`].
    Named(usize),
    Array(Box<Ty>),
    Map(Box<Ty>),
    Union(Vec<Ty>),
    /// A reference not resolved yet (only while parsing): candidate full names, in order.
    Ref(Vec<String>),
}

/// A named type's definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Def {
    Record(Vec<FieldDef>),
    Enum(Vec<String>),
    Fixed(usize),
}

/// A record field: name and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldDef {
    pub(crate) name: String,
    pub(crate) ty: Ty,
}

/// A named type: full name and definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Named {
    pub(crate) fullname: String,
    pub(crate) def: Def,
}

impl Named {
    /// The name without its namespace.
    pub(crate) fn simple_name(&self) -> &str {
        self.fullname.rsplit('.').next().unwrap_or(&self.fullname)
    }
}

/// A parsed writer schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Schema {
    pub(crate) named: Vec<Named>,
    pub(crate) root: Ty,
}

impl Schema {
    /// Parses the JSON text of a writer schema. The error says what is wrong and where (the
    /// JSON path of the offending part, e.g. `fields[0].type[3].fields[2]`).
    pub(crate) fn parse(text: &str) -> Result<Schema, String> {
        let json: Json =
            serde_json::from_str(text).map_err(|e| format!("the schema is not JSON: {e}"))?;
        let mut parser = Parser {
            named: Vec::new(),
            by_name: HashMap::new(),
        };
        let mut root = parser.ty(&json, None, "")?;
        let Parser { mut named, by_name } = parser;
        resolve(&mut root, &by_name)?;
        for n in &mut named {
            if let Def::Record(fields) = &mut n.def {
                for f in fields {
                    resolve(&mut f.ty, &by_name)
                        .map_err(|e| format!("{} field {:?}: {e}", n.fullname, f.name))?;
                }
            }
        }
        Ok(Schema { named, root })
    }

    /// The definition of a named type.
    pub(crate) fn get(&self, index: usize) -> Option<&Named> {
        self.named.get(index)
    }

    /// A short description of a type, for messages: `long`, `record sysflow.type.OID`,
    /// `fixed(20)`, `array`, ...
    pub(crate) fn describe(&self, ty: &Ty) -> String {
        match ty {
            Ty::Null => "null".to_owned(),
            Ty::Boolean => "boolean".to_owned(),
            Ty::Int => "int".to_owned(),
            Ty::Long => "long".to_owned(),
            Ty::Float => "float".to_owned(),
            Ty::Double => "double".to_owned(),
            Ty::Bytes => "bytes".to_owned(),
            Ty::String => "string".to_owned(),
            Ty::Named(i) => match self.get(*i) {
                Some(Named {
                    fullname,
                    def: Def::Record(_),
                }) => format!("record {fullname}"),
                Some(Named {
                    fullname,
                    def: Def::Enum(_),
                }) => format!("enum {fullname}"),
                Some(Named {
                    def: Def::Fixed(size),
                    ..
                }) => format!("fixed({size})"),
                None => "unknown type".to_owned(),
            },
            Ty::Array(_) => "array".to_owned(),
            Ty::Map(_) => "map".to_owned(),
            Ty::Union(_) => "union".to_owned(),
            Ty::Ref(names) => names.first().cloned().unwrap_or_default(),
        }
    }
}

struct Parser {
    named: Vec<Named>,
    by_name: HashMap<String, usize>,
}

fn primitive(name: &str) -> Option<Ty> {
    Some(match name {
        "null" => Ty::Null,
        "boolean" => Ty::Boolean,
        "int" => Ty::Int,
        "long" => Ty::Long,
        "float" => Ty::Float,
        "double" => Ty::Double,
        "bytes" => Ty::Bytes,
        "string" => Ty::String,
        _ => return None,
    })
}

impl Parser {
    /// Parses a type at JSON path `path`, with `namespace` the enclosing namespace.
    fn ty(&mut self, json: &Json, namespace: Option<&str>, path: &str) -> Result<Ty, String> {
        match json {
            Json::String(name) => Ok(primitive(name).unwrap_or_else(|| reference(name, namespace))),
            Json::Array(items) => {
                let mut arms = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    arms.push(self.ty(item, namespace, &format!("{path}[{i}]"))?);
                }
                Ok(Ty::Union(arms))
            }
            Json::Object(obj) => {
                let at = |what: &str| {
                    if path.is_empty() {
                        what.to_owned()
                    } else {
                        format!("{path}: {what}")
                    }
                };
                let Some(kind) = obj.get("type") else {
                    return Err(at("a type object without \"type\""));
                };
                let kind = match kind {
                    Json::String(kind) => kind.as_str(),
                    // {"type": {...}} or {"type": [...]}: the nested type.
                    nested => return self.ty(nested, namespace, &format!("{path}.type")),
                };
                match kind {
                    "record" | "error" => self.record(obj, namespace, path),
                    "enum" => {
                        let (fullname, _) = self.name(obj, namespace, path)?;
                        let symbols = obj
                            .get("symbols")
                            .and_then(Json::as_array)
                            .ok_or_else(|| {
                                at(&format!("enum {fullname} has no \"symbols\" array"))
                            })?
                            .iter()
                            .map(|s| s.as_str().map(str::to_owned))
                            .collect::<Option<Vec<_>>>()
                            .ok_or_else(|| {
                                at(&format!("enum {fullname}: a symbol is not a string"))
                            })?;
                        self.define(fullname, Def::Enum(symbols), path)
                    }
                    "fixed" => {
                        let (fullname, _) = self.name(obj, namespace, path)?;
                        let size = obj
                            .get("size")
                            .and_then(Json::as_u64)
                            .and_then(|s| usize::try_from(s).ok())
                            .ok_or_else(|| {
                                at(&format!("fixed {fullname} has no valid \"size\""))
                            })?;
                        self.define(fullname, Def::Fixed(size), path)
                    }
                    "array" => {
                        let items = obj
                            .get("items")
                            .ok_or_else(|| at("an array without \"items\""))?;
                        Ok(Ty::Array(Box::new(self.ty(
                            items,
                            namespace,
                            &format!("{path}.items"),
                        )?)))
                    }
                    "map" => {
                        let values = obj
                            .get("values")
                            .ok_or_else(|| at("a map without \"values\""))?;
                        Ok(Ty::Map(Box::new(self.ty(
                            values,
                            namespace,
                            &format!("{path}.values"),
                        )?)))
                    }
                    // A primitive with attributes (logicalType ...), or a reference.
                    other => Ok(primitive(other).unwrap_or_else(|| reference(other, namespace))),
                }
            }
            other => Err(format!(
                "{}not a type: {other}",
                if path.is_empty() {
                    String::new()
                } else {
                    format!("{path}: ")
                }
            )),
        }
    }

    /// The full name of a named type and the namespace its children inherit.
    fn name(
        &self,
        obj: &serde_json::Map<String, Json>,
        namespace: Option<&str>,
        path: &str,
    ) -> Result<(String, Option<String>), String> {
        let Some(name) = obj.get("name").and_then(Json::as_str) else {
            return Err(format!("{path}: a named type without a \"name\""));
        };
        if let Some((ns, _)) = name.rsplit_once('.') {
            return Ok((name.to_owned(), Some(ns.to_owned())));
        }
        let ns = match obj.get("namespace") {
            Some(Json::String(ns)) => Some(ns.as_str()),
            Some(Json::Null) => None,
            _ => namespace,
        }
        .filter(|ns| !ns.is_empty());
        Ok(match ns {
            Some(ns) => (format!("{ns}.{name}"), Some(ns.to_owned())),
            None => (name.to_owned(), None),
        })
    }

    fn define(&mut self, fullname: String, def: Def, path: &str) -> Result<Ty, String> {
        if self.by_name.contains_key(&fullname) {
            return Err(format!("{path}: the name {fullname} is defined twice"));
        }
        self.named.push(Named {
            fullname: fullname.clone(),
            def,
        });
        let index = self.named.len() - 1;
        self.by_name.insert(fullname, index);
        Ok(Ty::Named(index))
    }

    fn record(
        &mut self,
        obj: &serde_json::Map<String, Json>,
        namespace: Option<&str>,
        path: &str,
    ) -> Result<Ty, String> {
        let (fullname, inner_ns) = self.name(obj, namespace, path)?;
        // Defined before its fields are parsed, so a field may refer to it.
        let ty = self.define(fullname.clone(), Def::Record(Vec::new()), path)?;
        let Ty::Named(index) = ty else {
            return Err(format!("{path}: internal error defining {fullname}"));
        };
        let Some(fields_json) = obj.get("fields").and_then(Json::as_array) else {
            return Err(format!("{path}: record {fullname} has no \"fields\" array"));
        };
        let mut fields = Vec::with_capacity(fields_json.len());
        for (i, field) in fields_json.iter().enumerate() {
            let here = format!("{path}.fields[{i}]");
            let Some(name) = field.get("name").and_then(Json::as_str) else {
                return Err(format!("{here}: a field of {fullname} without a \"name\""));
            };
            let Some(ty) = field.get("type") else {
                return Err(format!("{here}: field {fullname}.{name} has no \"type\""));
            };
            let ty = self.ty(ty, inner_ns.as_deref(), &format!("{here}.type"))?;
            fields.push(FieldDef {
                name: name.to_owned(),
                ty,
            });
        }
        if let Some(named) = self.named.get_mut(index) {
            named.def = Def::Record(fields);
        }
        Ok(ty)
    }
}

/// A reference to a named type: a dotted name is a full name; a simple name is looked up in
/// the enclosing namespace, then in the null namespace.
fn reference(name: &str, namespace: Option<&str>) -> Ty {
    if name.contains('.') {
        return Ty::Ref(vec![name.to_owned()]);
    }
    match namespace {
        Some(ns) if !ns.is_empty() => Ty::Ref(vec![format!("{ns}.{name}"), name.to_owned()]),
        _ => Ty::Ref(vec![name.to_owned()]),
    }
}

fn resolve(ty: &mut Ty, by_name: &HashMap<String, usize>) -> Result<(), String> {
    match ty {
        Ty::Ref(candidates) => {
            let found = candidates.iter().find_map(|c| by_name.get(c)).copied();
            match found {
                Some(index) => *ty = Ty::Named(index),
                None => {
                    return Err(format!(
                        "unknown type {:?}",
                        candidates.first().cloned().unwrap_or_default()
                    ));
                }
            }
        }
        Ty::Array(inner) | Ty::Map(inner) => resolve(inner, by_name)?,
        Ty::Union(arms) => {
            for arm in arms {
                resolve(arm, by_name)?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_and_references_resolve() {
        let schema = Schema::parse(
            r#"{"type":"record","namespace":"sysflow","name":"SysFlow","fields":[
                {"name":"rec","type":[
                  {"type":"record","namespace":"sysflow.type","name":"OID","fields":[
                    {"name":"createTS","type":{"type":"long","logicalType":"timestamp-millis"}},
                    {"name":"hpid","type":"long"}]},
                  {"type":"record","name":"sysflow.flow.X","fields":[
                    {"name":"a","type":"sysflow.type.OID"},
                    {"name":"b","type":["null","OID","sysflow.type.OID"]}]}]}]}"#,
        );
        // "OID" inside sysflow.flow.X is looked up as sysflow.flow.OID, then OID: not found.
        assert_eq!(
            schema.expect_err("unknown").as_str(),
            r#"sysflow.flow.X field "b": unknown type "sysflow.flow.OID""#
        );
        let schema = Schema::parse(
            r#"{"type":"record","namespace":"sysflow","name":"SysFlow","fields":[
                {"name":"rec","type":[
                  {"type":"record","namespace":"sysflow.type","name":"OID","fields":[
                    {"name":"createTS","type":{"type":"long","logicalType":"timestamp-millis"}},
                    {"name":"hpid","type":"long"}]},
                  {"type":"record","namespace":"sysflow.type","name":"Y","fields":[
                    {"name":"a","type":"OID"}, {"name":"f","type":{"type":"fixed","name":"F","size":20}}]}]}]}"#,
        )
        .expect("parse");
        let names: Vec<&str> = schema.named.iter().map(|n| n.fullname.as_str()).collect();
        assert_eq!(
            names,
            [
                "sysflow.SysFlow",
                "sysflow.type.OID",
                "sysflow.type.Y",
                "sysflow.type.F"
            ]
        );
        let Some(Named {
            def: Def::Record(fields),
            ..
        }) = schema.get(2)
        else {
            panic!("Y")
        };
        assert_eq!(fields[0].ty, Ty::Named(1));
        assert_eq!(fields[1].ty, Ty::Named(3));
        assert_eq!(schema.describe(&fields[1].ty), "fixed(20)");
    }

    #[test]
    fn bad_schemas_say_what_and_where() {
        assert!(
            Schema::parse("{")
                .expect_err("json")
                .starts_with("the schema is not JSON")
        );
        let err = Schema::parse(r#"{"type":"record","name":"R","fields":[{"name":"a"}]}"#)
            .expect_err("no type");
        assert_eq!(err, r#".fields[0]: field R.a has no "type""#);
        let err = Schema::parse(r#"["int", {"type":"enum","name":"E","symbols":[1]}]"#)
            .expect_err("symbol");
        assert_eq!(err, "[1]: enum E: a symbol is not a string");
        let err = Schema::parse(
            r#"[{"type":"fixed","name":"F","size":1},{"type":"fixed","name":"F","size":2}]"#,
        )
        .expect_err("twice");
        assert_eq!(err, "[1]: the name F is defined twice");
    }
}
