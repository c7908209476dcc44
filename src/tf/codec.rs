//! What the msgpack and JSON codecs share: the error type, paths for error
//! messages, decimal number parsing and the type inference for plain values
//! in `dynamic` slots.

use std::collections::BTreeMap;
use std::fmt;

use super::types::Type;
use super::value::{Number, Value};

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct DecodeError(pub String);

/// How deep values may nest before decoding gives up. Real schemas nest a
/// handful of levels; the limit only keeps hostile input off the stack.
pub const MAX_DEPTH: usize = 64;

// ---------------------------------------------------------------------------
// Paths in error messages

/// Where in a value we are, printed like `.rotation_rules[0].duration`.
#[derive(Default)]
pub(crate) struct Path(Vec<Step>);

pub(crate) enum Step {
    Attr(String),
    Index(usize),
    Key(String),
}

impl Path {
    pub(crate) fn push(&mut self, step: Step) {
        self.0.push(step);
    }
    pub(crate) fn pop(&mut self) {
        self.0.pop();
    }
    /// An error at the current path.
    pub(crate) fn error(&self, msg: impl fmt::Display) -> DecodeError {
        if self.0.is_empty() {
            DecodeError(msg.to_string())
        } else {
            DecodeError(format!("{self}: {msg}"))
        }
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for step in &self.0 {
            match step {
                Step::Attr(a) => write!(f, ".{a}")?,
                Step::Index(i) => write!(f, "[{i}]")?,
                Step::Key(k) => write!(f, "[{}]", quoted(k))?,
            }
        }
        Ok(())
    }
}

/// How many characters of an input string an error message may quote.
const QUOTE_LIMIT: usize = 40;

/// `text` quoted for an error message, cut short after `QUOTE_LIMIT`
/// characters: the string came from the request and may be long, or hold a
/// value that should not be copied whole into diagnostics and logs.
pub(crate) fn quoted(text: &str) -> String {
    match text.char_indices().nth(QUOTE_LIMIT) {
        None => format!("{text:?}"),
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
    }
}

/// A short name for a value's shape, for "expected X, got Y" messages.
pub(crate) fn value_kind(v: &Value) -> &'static str {
    match v {
        Value::Unknown => "unknown",
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::List(_) => "list",
        Value::Set(_) => "set",
        Value::Map(_) => "map",
        Value::Object(_) => "object",
        Value::Tuple(_) => "tuple",
        Value::Dynamic(..) => "dynamic value",
    }
}

// ---------------------------------------------------------------------------
// Numbers

/// Parses a decimal number as Terraform writes one (in a msgpack string or as
/// JSON number text): optional sign, digits, optional fraction and exponent.
///
/// Integers that fit i64 become `Int`. Other values become `Float` when f64
/// holds them without loss of the written digits (at most 15 significant
/// digits and finite); everything else is kept as normalised text in `Big`.
pub(crate) fn parse_decimal(text: &str) -> Option<Number> {
    let bytes = text.as_bytes();
    let mut i = 0;
    let negative = match bytes.first() {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let int_start = i;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = &text[int_start..i];
    if int_digits.is_empty() {
        return None;
    }
    let mut frac_digits = "";
    if i < bytes.len() && bytes[i] == b'.' {
        i += 1;
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = &text[start..i];
        if frac_digits.is_empty() {
            return None;
        }
    }
    let mut exponent = "";
    if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
        let start = i;
        i += 1;
        if i < bytes.len() && (bytes[i] == b'+' || bytes[i] == b'-') {
            i += 1;
        }
        let digits_start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == digits_start {
            return None;
        }
        exponent = &text[start..i];
    }
    if i != bytes.len() {
        return None;
    }

    // Normalised text: no '+', no redundant leading zeros, so that it is also
    // valid JSON number text.
    let trimmed_int = int_digits.trim_start_matches('0');
    let int_part = if trimmed_int.is_empty() {
        "0"
    } else {
        trimmed_int
    };
    let sign = if negative { "-" } else { "" };
    let mut normal = format!("{sign}{int_part}");
    if !frac_digits.is_empty() {
        normal.push('.');
        normal.push_str(frac_digits);
    }
    normal.push_str(exponent);

    if frac_digits.is_empty() && exponent.is_empty() {
        if let Ok(i) = normal.parse::<i64>() {
            return Some(Number::Int(i));
        }
        return Some(Number::Big(normal));
    }
    let significant = format!("{int_part}{frac_digits}");
    let significant = significant.trim_start_matches('0').trim_end_matches('0');
    if significant.len() <= 15 {
        if let Ok(f) = normal.parse::<f64>() {
            if f.is_finite() {
                return Some(Number::Float(f));
            }
        }
    }
    Some(Number::Big(normal))
}

/// The integer a float holds exactly, if it is one within i64.
pub(crate) fn exact_int(f: f64) -> Option<i64> {
    // 2^63 is the first float beyond i64; -2^63 is i64::MIN exactly.
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    if f.is_finite() && f.fract() == 0.0 && (-TWO_POW_63..TWO_POW_63).contains(&f) {
        Some(f as i64)
    } else {
        None
    }
}

// ---------------------------------------------------------------------------
// Type inference for plain values written into `dynamic` slots

/// The type a value evidently has, for writing it into a `dynamic` slot.
/// Null and unknown have no type of their own: `None`.
pub(crate) fn infer_type(value: &Value, path: &mut Path) -> Result<Option<Type>, DecodeError> {
    Ok(Some(match value {
        Value::Null | Value::Unknown => return Ok(None),
        Value::Bool(_) => Type::Bool,
        Value::Number(_) => Type::Number,
        Value::String(_) => Type::String,
        Value::Dynamic(t, _) => t.clone(),
        Value::Object(m) => {
            let mut attrs = BTreeMap::new();
            for (k, v) in m {
                path.push(Step::Attr(k.clone()));
                let t = infer_type(v, path)?.unwrap_or(Type::Dynamic);
                path.pop();
                attrs.insert(k.clone(), t);
            }
            Type::Object(attrs)
        }
        Value::Tuple(items) => {
            let mut elems = Vec::with_capacity(items.len());
            for (i, v) in items.iter().enumerate() {
                path.push(Step::Index(i));
                elems.push(infer_type(v, path)?.unwrap_or(Type::Dynamic));
                path.pop();
            }
            Type::Tuple(elems)
        }
        Value::List(items) => Type::list(common_element_type(items.iter(), "list", path)?),
        Value::Set(items) => Type::set(common_element_type(items.iter(), "set", path)?),
        Value::Map(m) => Type::map(common_element_type(m.values(), "map", path)?),
    }))
}

fn common_element_type<'a>(
    items: impl Iterator<Item = &'a Value>,
    what: &str,
    path: &mut Path,
) -> Result<Type, DecodeError> {
    let mut found: Option<Type> = None;
    for (i, v) in items.enumerate() {
        path.push(Step::Index(i));
        let t = infer_type(v, path)?;
        path.pop();
        match (&found, t) {
            (_, None) => {}
            (None, Some(t)) => found = Some(t),
            (Some(a), Some(b)) if *a == b => {}
            (Some(a), Some(b)) => {
                return Err(path.error(format!(
                    "cannot tell the type of this {what} for a dynamic attribute: elements are {} and {}",
                    String::from_utf8_lossy(&a.to_json_bytes()),
                    String::from_utf8_lossy(&b.to_json_bytes())
                )))
            }
        }
    }
    found.ok_or_else(|| {
        path.error(format!(
            "cannot tell the element type of this {what} for a dynamic attribute (it has no known, non-null elements): wrap it in Value::Dynamic"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_cuts_on_a_character_boundary() {
        assert_eq!(quoted("short"), "\"short\"");
        let exactly = "a".repeat(QUOTE_LIMIT);
        assert_eq!(quoted(&exactly), format!("{exactly:?}"));
        let long = "é".repeat(100);
        assert_eq!(quoted(&long), format!("{:?}…", "é".repeat(QUOTE_LIMIT)));
    }
}
