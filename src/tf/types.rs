//! Terraform's type system (cty types) and their JSON form.

use super::codec::quoted;
use std::collections::BTreeMap;

/// A cty type, as it appears in a schema and in `dynamic` values.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Type {
    Bool,
    Number,
    String,
    /// Any type, decided at run time (`"dynamic"`).
    Dynamic,
    List(Box<Type>),
    Set(Box<Type>),
    Map(Box<Type>),
    Object(BTreeMap<String, Type>),
    Tuple(Vec<Type>),
}

impl Type {
    pub fn list(element: Type) -> Type {
        Type::List(Box::new(element))
    }
    pub fn set(element: Type) -> Type {
        Type::Set(Box::new(element))
    }
    pub fn map(element: Type) -> Type {
        Type::Map(Box::new(element))
    }

    /// The compact type JSON Terraform expects in `Schema.Attribute.type`,
    /// e.g. `"string"` or `["set","string"]`.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::{json, Value as J};
        match self {
            Type::Bool => J::from("bool"),
            Type::Number => J::from("number"),
            Type::String => J::from("string"),
            Type::Dynamic => J::from("dynamic"),
            Type::List(e) => json!(["list", e.to_json()]),
            Type::Set(e) => json!(["set", e.to_json()]),
            Type::Map(e) => json!(["map", e.to_json()]),
            Type::Object(attrs) => {
                let fields: serde_json::Map<String, J> = attrs
                    .iter()
                    .map(|(k, t)| (k.clone(), t.to_json()))
                    .collect();
                json!(["object", fields])
            }
            Type::Tuple(elems) => {
                json!(["tuple", elems.iter().map(Type::to_json).collect::<Vec<_>>()])
            }
        }
    }

    pub fn to_json_bytes(&self) -> Vec<u8> {
        self.to_json().to_string().into_bytes()
    }

    /// Parses type JSON. Accepts the optional third element of newer object
    /// types (the list of optional attribute names) and ignores it.
    pub fn from_json(json: &serde_json::Value) -> Result<Type, String> {
        use serde_json::Value as J;
        match json {
            J::String(s) => match s.as_str() {
                "bool" => Ok(Type::Bool),
                "number" => Ok(Type::Number),
                "string" => Ok(Type::String),
                "dynamic" => Ok(Type::Dynamic),
                other => Err(format!("unknown primitive type {}", quoted(other))),
            },
            J::Array(parts) if parts.len() >= 2 => {
                let kind = parts[0].as_str().ok_or("type kind must be a string")?;
                match kind {
                    "list" => Ok(Type::list(Type::from_json(&parts[1])?)),
                    "set" => Ok(Type::set(Type::from_json(&parts[1])?)),
                    "map" => Ok(Type::map(Type::from_json(&parts[1])?)),
                    "object" => {
                        let fields = parts[1].as_object().ok_or("object type needs a map")?;
                        let mut attrs = BTreeMap::new();
                        for (k, v) in fields {
                            attrs.insert(k.clone(), Type::from_json(v)?);
                        }
                        Ok(Type::Object(attrs))
                    }
                    "tuple" => {
                        let elems = parts[1].as_array().ok_or("tuple type needs a list")?;
                        Ok(Type::Tuple(
                            elems
                                .iter()
                                .map(Type::from_json)
                                .collect::<Result<_, _>>()?,
                        ))
                    }
                    other => Err(format!("unknown type kind {}", quoted(other))),
                }
            }
            other => Err(format!("not a type: {}", quoted(&other.to_string()))),
        }
    }
}
