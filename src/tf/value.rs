//! Values of Terraform's type system, including null and unknown.
//!
//! A `Value` carries no type of its own: the schema's `Type` drives encoding
//! and decoding (see `msgpack` and `json`). The one exception is a value held
//! in a `dynamic` slot, which must remember its concrete type to be written
//! back: that is `Value::Dynamic`.

use std::collections::BTreeMap;

use super::types::Type;

/// A Terraform number. Integers stay exact; numbers beyond i64/f64 keep their
/// decimal text.
#[derive(Debug, Clone)]
pub enum Number {
    Int(i64),
    Float(f64),
    /// A decimal that fits neither i64 nor f64 exactly, kept as text.
    Big(String),
}

impl Number {
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Number::Int(i) => Some(*i),
            Number::Float(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Some(*f as i64),
            Number::Float(_) => None,
            Number::Big(s) => s.parse().ok(),
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Number::Int(i) => Some(*i as f64),
            Number::Float(f) => Some(*f),
            Number::Big(s) => s.parse().ok(),
        }
    }
}

impl PartialEq for Number {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => a == b,
            (Number::Big(a), Number::Big(b)) => a == b,
            _ => match (self.as_f64(), other.as_f64()) {
                (Some(a), Some(b)) => a == b && self.as_i64() == other.as_i64(),
                _ => false,
            },
        }
    }
}

impl From<i64> for Number {
    fn from(i: i64) -> Self {
        Number::Int(i)
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub enum Value {
    /// Not known until apply (msgpack extension); never appears in state.
    Unknown,
    /// Absent; also what a request field Terraform left empty decodes to.
    #[default]
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    List(Vec<Value>),
    /// Elements in no particular order; equality of sets in `Value::eq` is
    /// order-sensitive, use `Value::same_as` to compare semantically.
    Set(Vec<Value>),
    Map(BTreeMap<String, Value>),
    Object(BTreeMap<String, Value>),
    Tuple(Vec<Value>),
    /// A value in a `dynamic` slot together with its concrete type.
    Dynamic(Type, Box<Value>),
}

impl Value {
    pub fn string(s: impl Into<String>) -> Value {
        Value::String(s.into())
    }
    pub fn int(i: i64) -> Value {
        Value::Number(Number::Int(i))
    }
    /// `Some(s)` as a string, `None` as null.
    pub fn opt_string(s: Option<impl Into<String>>) -> Value {
        s.map(|s| Value::String(s.into())).unwrap_or(Value::Null)
    }
    pub fn object<K: Into<String>>(fields: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Object(fields.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
    pub fn string_set<S: Into<String>>(items: impl IntoIterator<Item = S>) -> Value {
        Value::Set(items.into_iter().map(|s| Value::String(s.into())).collect())
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
    pub fn is_unknown(&self) -> bool {
        matches!(self, Value::Unknown)
    }
    /// True when neither this value nor anything inside it is unknown.
    pub fn is_wholly_known(&self) -> bool {
        match self {
            Value::Unknown => false,
            Value::List(v) | Value::Set(v) | Value::Tuple(v) => {
                v.iter().all(Value::is_wholly_known)
            }
            Value::Map(m) | Value::Object(m) => m.values().all(Value::is_wholly_known),
            Value::Dynamic(_, v) => v.is_wholly_known(),
            _ => true,
        }
    }

    /// An object's attribute; `Value::Null` when this is null or the
    /// attribute is absent, `Value::Unknown` when this is unknown.
    pub fn get(&self, name: &str) -> &Value {
        static NULL: Value = Value::Null;
        static UNKNOWN: Value = Value::Unknown;
        match self {
            Value::Object(m) | Value::Map(m) => m.get(name).unwrap_or(&NULL),
            Value::Unknown => &UNKNOWN,
            Value::Dynamic(_, v) => v.get(name),
            _ => &NULL,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Number(n) => n.as_i64(),
            _ => None,
        }
    }
    /// Elements of a list, set or tuple.
    pub fn elements(&self) -> Option<&[Value]> {
        match self {
            Value::List(v) | Value::Set(v) | Value::Tuple(v) => Some(v),
            _ => None,
        }
    }
    pub fn as_object(&self) -> Option<&BTreeMap<String, Value>> {
        match self {
            Value::Object(m) => Some(m),
            _ => None,
        }
    }

    /// Semantic equality: like `==`, but sets compare without regard to
    /// element order.
    pub fn same_as(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Set(a), Value::Set(b)) => {
                a.len() == b.len()
                    && a.iter().all(|x| b.iter().any(|y| x.same_as(y)))
                    && b.iter().all(|y| a.iter().any(|x| x.same_as(y)))
            }
            (Value::List(a), Value::List(b)) | (Value::Tuple(a), Value::Tuple(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same_as(y))
            }
            (Value::Map(a), Value::Map(b)) | (Value::Object(a), Value::Object(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .all(|(k, x)| b.get(k).is_some_and(|y| x.same_as(y)))
            }
            (Value::Dynamic(ta, a), Value::Dynamic(tb, b)) => ta == tb && a.same_as(b),
            _ => self == other,
        }
    }
}
