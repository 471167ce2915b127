//! A minimal Avro schema model, parsed from a schema's JSON text (`serde_json`): a trace's
//! writer schema, or our reader schema (`resources/schemas/sysflow-reader.avsc`).
//!
//! What resolution and decoding need: the types, record fields in order with their `aliases`
//! and `default`, enum symbols and enum `default`, fixed sizes, the `aliases` of named types,
//! and named-type references resolved by full name (Avro's namespace rules: a name with a dot
//! is a full name, otherwise it takes the `namespace` attribute or the enclosing namespace;
//! aliases of a named type are resolved the same way). `doc` and `logicalType` are ignored:
//! SysFlow timestamps are raw `long`s whatever logical type an old writer declared.
//!
//! Names must be Avro names (`[A-Za-z_][A-Za-z0-9_]*`, dotted for full names), as the
//! specification requires; a schema with another name is refused with its JSON path.

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
    /// Symbols, and the enum's `default` symbol (used by a reader for a writer's symbol it
    /// does not have).
    Enum {
        symbols: Vec<String>,
        default: Option<String>,
    },
    Fixed(usize),
}

/// A record field: name, aliases, type and default (its JSON value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldDef {
    pub(crate) name: String,
    pub(crate) aliases: Vec<String>,
    pub(crate) ty: Ty,
    pub(crate) default: Option<Json>,
}

/// A named type: full name, aliases (full names) and definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Named {
    pub(crate) fullname: String,
    pub(crate) aliases: Vec<String>,
    pub(crate) def: Def,
}

/// The part of a full name after its last dot.
pub(crate) fn simple(fullname: &str) -> &str {
    fullname.rsplit('.').next().unwrap_or(fullname)
}

impl Named {
    /// The name without its namespace.
    pub(crate) fn simple_name(&self) -> &str {
        simple(&self.fullname)
    }

    /// Whether a writer's named type called `writer` (a full name) is this reader type by
    /// the specification's rule: the same unqualified name, or one of this type's aliases
    /// (compared unqualified too, as names are).
    pub(crate) fn answers_to(&self, writer: &str) -> bool {
        let w = simple(writer);
        self.simple_name() == w || self.aliases.iter().any(|a| a == writer || simple(a) == w)
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
        Schema::from_json(&json)
    }

    /// [`Schema::parse`] of JSON already parsed.
    pub(crate) fn from_json(json: &Json) -> Result<Schema, String> {
        let mut parser = Parser {
            named: Vec::new(),
            by_name: HashMap::new(),
        };
        let mut root = parser.ty(json, None, "")?;
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

    /// The path (field names, dotted) of an array whose items may take no byte at all
    /// (`null`, an empty record, `fixed(0)`): a few bytes of such data could stand for
    /// millions of values, so a trace with such a schema is refused.
    pub(crate) fn zero_size_array(&self) -> Option<String> {
        let mut path = Vec::new();
        self.find_zero_size_array(&self.root, &mut path, 0)
    }

    fn find_zero_size_array(&self, ty: &Ty, path: &mut Vec<String>, depth: u32) -> Option<String> {
        if depth > 64 {
            return None;
        }
        match ty {
            Ty::Array(items) => {
                if self.min_size(items, 0) == 0 {
                    return Some(path.join("."));
                }
                self.find_zero_size_array(items, path, depth + 1)
            }
            Ty::Map(values) => self.find_zero_size_array(values, path, depth + 1),
            Ty::Union(arms) => arms
                .iter()
                .find_map(|arm| self.find_zero_size_array(arm, path, depth + 1)),
            Ty::Named(i) => match self.get(*i).map(|n| &n.def) {
                Some(Def::Record(fields)) => fields.iter().find_map(|field| {
                    path.push(field.name.clone());
                    let found = self.find_zero_size_array(&field.ty, path, depth + 1);
                    path.pop();
                    found
                }),
                _ => None,
            },
            _ => None,
        }
    }

    /// The fewest bytes a value of `ty` takes (records followed to a small depth).
    fn min_size(&self, ty: &Ty, depth: u32) -> u64 {
        if depth > 64 {
            return 1;
        }
        match ty {
            Ty::Null => 0,
            Ty::Named(i) => match self.get(*i).map(|n| &n.def) {
                Some(Def::Record(fields)) => fields
                    .iter()
                    .map(|f| self.min_size(&f.ty, depth + 1))
                    .fold(0, u64::saturating_add),
                Some(Def::Fixed(size)) => *size as u64,
                _ => 1,
            },
            _ => 1,
        }
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
                    ..
                }) => format!("record {fullname}"),
                Some(Named {
                    fullname,
                    def: Def::Enum { .. },
                    ..
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
            Json::String(name) => self.named_ref(name, namespace, path),
            Json::Array(items) => {
                let mut arms = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    arms.push(self.ty(item, namespace, &format!("{path}[{i}]"))?);
                }
                Ok(Ty::Union(arms))
            }
            Json::Object(obj) => {
                let at = |what: &str| at(path, what);
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
                        let (fullname, ns) = self.name(obj, namespace, path)?;
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
                        if let Some(bad) = symbols.iter().find(|s| !identifier(s)) {
                            return Err(at(&format!(
                                "enum {fullname}: invalid symbol \"{}\"",
                                bad.escape_debug()
                            )));
                        }
                        let default = match obj.get("default") {
                            None => None,
                            Some(Json::String(d)) if symbols.contains(d) => Some(d.clone()),
                            Some(other) => {
                                return Err(at(&format!(
                                    "enum {fullname}: default {other} is not one of its symbols"
                                )));
                            }
                        };
                        let aliases = aliases(obj, ns.as_deref(), path)?;
                        self.define(fullname, aliases, Def::Enum { symbols, default }, path)
                    }
                    "fixed" => {
                        let (fullname, ns) = self.name(obj, namespace, path)?;
                        let size = obj
                            .get("size")
                            .and_then(Json::as_u64)
                            .and_then(|s| usize::try_from(s).ok())
                            .ok_or_else(|| {
                                at(&format!("fixed {fullname} has no valid \"size\""))
                            })?;
                        let aliases = aliases(obj, ns.as_deref(), path)?;
                        self.define(fullname, aliases, Def::Fixed(size), path)
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
                    other => self.named_ref(other, namespace, path),
                }
            }
            other => Err(at(path, &format!("not a type: {other}"))),
        }
    }

    /// A primitive type name, or a reference to a named type.
    fn named_ref(&self, name: &str, namespace: Option<&str>, path: &str) -> Result<Ty, String> {
        if let Some(ty) = primitive(name) {
            return Ok(ty);
        }
        if !fullname_ok(name) {
            return Err(at(
                path,
                &format!("invalid type name \"{}\"", name.escape_debug()),
            ));
        }
        Ok(reference(name, namespace))
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
        if !fullname_ok(name) {
            return Err(at(
                path,
                &format!("invalid name \"{}\"", name.escape_debug()),
            ));
        }
        if let Some((ns, _)) = name.rsplit_once('.') {
            return Ok((name.to_owned(), Some(ns.to_owned())));
        }
        let ns = match obj.get("namespace") {
            Some(Json::String(ns)) if !ns.is_empty() && !fullname_ok(ns) => {
                return Err(at(
                    path,
                    &format!("invalid namespace \"{}\"", ns.escape_debug()),
                ));
            }
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

    fn define(
        &mut self,
        fullname: String,
        aliases: Vec<String>,
        def: Def,
        path: &str,
    ) -> Result<Ty, String> {
        if self.by_name.contains_key(&fullname) {
            return Err(format!("{path}: the name {fullname} is defined twice"));
        }
        self.named.push(Named {
            fullname: fullname.clone(),
            aliases,
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
        let type_aliases = aliases(obj, inner_ns.as_deref(), path)?;
        // Defined before its fields are parsed, so a field may refer to it.
        let ty = self.define(
            fullname.clone(),
            type_aliases,
            Def::Record(Vec::new()),
            path,
        )?;
        let Ty::Named(index) = ty else {
            return Err(format!("{path}: internal error defining {fullname}"));
        };
        let Some(fields_json) = obj.get("fields").and_then(Json::as_array) else {
            return Err(format!("{path}: record {fullname} has no \"fields\" array"));
        };
        let mut fields: Vec<FieldDef> = Vec::with_capacity(fields_json.len());
        for (i, field) in fields_json.iter().enumerate() {
            let here = format!("{path}.fields[{i}]");
            let Some(name) = field.get("name").and_then(Json::as_str) else {
                return Err(format!("{here}: a field of {fullname} without a \"name\""));
            };
            if !identifier(name) {
                return Err(format!(
                    "{here}: invalid field name \"{}\"",
                    name.escape_debug()
                ));
            }
            if fields.iter().any(|f| f.name == name) {
                return Err(format!("{here}: field {fullname}.{name} is defined twice"));
            }
            let Some(ty) = field.get("type") else {
                return Err(format!("{here}: field {fullname}.{name} has no \"type\""));
            };
            let ty = self.ty(ty, inner_ns.as_deref(), &format!("{here}.type"))?;
            let field_aliases = match field.get("aliases") {
                None => Vec::new(),
                Some(Json::Array(items)) => items
                    .iter()
                    .map(|a| a.as_str().filter(|a| identifier(a)).map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| format!("{here}: invalid \"aliases\" of field {name}"))?,
                Some(_) => return Err(format!("{here}: \"aliases\" is not an array")),
            };
            fields.push(FieldDef {
                name: name.to_owned(),
                aliases: field_aliases,
                ty,
                default: field.get("default").cloned(),
            });
        }
        if let Some(named) = self.named.get_mut(index) {
            named.def = Def::Record(fields);
        }
        Ok(ty)
    }
}

/// `what`, prefixed by the JSON path when there is one.
fn at(path: &str, what: &str) -> String {
    if path.is_empty() {
        what.to_owned()
    } else {
        format!("{path}: {what}")
    }
}

/// An Avro name: `[A-Za-z_][A-Za-z0-9_]*`.
fn identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A full name: dotted Avro names.
fn fullname_ok(s: &str) -> bool {
    s.split('.').all(identifier)
}

/// The `aliases` of a named type, as full names (a simple alias takes the type's namespace).
fn aliases(
    obj: &serde_json::Map<String, Json>,
    namespace: Option<&str>,
    path: &str,
) -> Result<Vec<String>, String> {
    let Some(value) = obj.get("aliases") else {
        return Ok(Vec::new());
    };
    let Some(items) = value.as_array() else {
        return Err(at(path, "\"aliases\" is not an array"));
    };
    items
        .iter()
        .map(|a| match a.as_str() {
            Some(a) if fullname_ok(a) && a.contains('.') => Ok(a.to_owned()),
            Some(a) if fullname_ok(a) => Ok(match namespace {
                Some(ns) => format!("{ns}.{a}"),
                None => a.to_owned(),
            }),
            _ => Err(at(path, &format!("invalid alias {a}"))),
        })
        .collect()
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
