//! DynamicValue / RawState JSON encoding, driven by the schema type.
//!
//! Terraform hands us JSON only for stored state (`RawState.json` in
//! UpgradeResourceState and friends), written with the schema of the time.
//! The shapes match msgpack's: null is `null`, an object is a JSON object
//! (missing attributes read as null, as Terraform's own decoder does), a
//! `dynamic` slot is `{"value": .., "type": ..}`. JSON has no unknown values.
//!
//! The parser is our own so that numbers keep every digit (Terraform numbers
//! are arbitrary precision) and so nesting depth is bounded.

use std::collections::BTreeMap;

use super::codec::{
    exact_int, infer_type, parse_decimal, quoted, value_kind, DecodeError, Path, Step, MAX_DEPTH,
};
use super::types::Type;
use super::value::{Number, Value};

/// Decodes JSON bytes as a value of type `ty`; missing object attributes
/// become null, as Terraform's decoder does. Never panics.
pub fn decode(bytes: &[u8], ty: &Type) -> Result<Value, DecodeError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| DecodeError(format!("JSON is not valid UTF-8: {e}")))?;
    let mut parser = Parser { text, pos: 0 };
    parser.skip_ws();
    let tree = parser.value(0)?;
    parser.skip_ws();
    if parser.pos != text.len() {
        return Err(parser.err("unexpected text after the JSON value"));
    }
    let mut path = Path::default();
    convert(&tree, ty, &mut path)
}

/// Encodes a wholly known value as JSON of type `ty`.
pub fn encode(value: &Value, ty: &Type) -> Result<Vec<u8>, DecodeError> {
    let mut out = String::with_capacity(64);
    let mut path = Path::default();
    write_value(&mut out, value, ty, &mut path)?;
    Ok(out.into_bytes())
}

// ---------------------------------------------------------------------------
// Parsing into a small tree that keeps number text

enum Json {
    Null,
    Bool(bool),
    /// The number exactly as written.
    Number(String),
    String(String),
    Array(Vec<Json>),
    /// In document order; duplicates are caught when converting.
    Object(Vec<(String, Json)>),
}

impl Json {
    fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "bool",
            Json::Number(_) => "number",
            Json::String(_) => "string",
            Json::Array(_) => "array",
            Json::Object(_) => "object",
        }
    }
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn err(&self, msg: &str) -> DecodeError {
        DecodeError(format!("invalid JSON at byte {}: {msg}", self.pos))
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn literal(&mut self, word: &str, value: Json) -> Result<Json, DecodeError> {
        if self.text[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.err("unexpected character"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(self.err(&format!("nested more than {MAX_DEPTH} levels deep")));
        }
        match self.peek() {
            None => Err(self.err("unexpected end of input")),
            Some(b'n') => self.literal("null", Json::Null),
            Some(b't') => self.literal("true", Json::Bool(true)),
            Some(b'f') => self.literal("false", Json::Bool(false)),
            Some(b'"') => self.string().map(Json::String),
            Some(b'[') => {
                self.pos += 1;
                let mut items = Vec::new();
                self.skip_ws();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                    return Ok(Json::Array(items));
                }
                loop {
                    self.skip_ws();
                    items.push(self.value(depth + 1)?);
                    self.skip_ws();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(Json::Array(items));
                        }
                        _ => return Err(self.err("expected ',' or ']'")),
                    }
                }
            }
            Some(b'{') => {
                self.pos += 1;
                let mut fields = Vec::new();
                self.skip_ws();
                if self.peek() == Some(b'}') {
                    self.pos += 1;
                    return Ok(Json::Object(fields));
                }
                loop {
                    self.skip_ws();
                    if self.peek() != Some(b'"') {
                        return Err(self.err("expected a string key"));
                    }
                    let key = self.string()?;
                    self.skip_ws();
                    if self.peek() != Some(b':') {
                        return Err(self.err("expected ':'"));
                    }
                    self.pos += 1;
                    self.skip_ws();
                    let v = self.value(depth + 1)?;
                    fields.push((key, v));
                    self.skip_ws();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b'}') => {
                            self.pos += 1;
                            return Ok(Json::Object(fields));
                        }
                        _ => return Err(self.err("expected ',' or '}'")),
                    }
                }
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.err("unexpected character")),
        }
    }

    /// JSON number grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    fn number(&mut self) -> Result<Json, DecodeError> {
        let start = self.pos;
        let digits = |p: &mut Self| {
            let from = p.pos;
            while let Some(b'0'..=b'9') = p.peek() {
                p.pos += 1;
            }
            p.pos - from
        };
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let int_start = self.pos;
        let n = digits(self);
        if n == 0 || (n > 1 && self.text.as_bytes()[int_start] == b'0') {
            return Err(self.err("malformed number"));
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if digits(self) == 0 {
                return Err(self.err("malformed number"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if digits(self) == 0 {
                return Err(self.err("malformed number"));
            }
        }
        Ok(Json::Number(self.text[start..self.pos].to_string()))
    }

    fn hex4(&mut self) -> Result<u32, DecodeError> {
        let hex = self
            .text
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| self.err("truncated \\u escape"))?;
        let code = u32::from_str_radix(hex, 16).map_err(|_| self.err("bad \\u escape"))?;
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(self.err("bad \\u escape"));
        }
        self.pos += 4;
        Ok(code)
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        // Opening quote.
        self.pos += 1;
        let mut out = String::new();
        loop {
            let rest = &self.text[self.pos..];
            let Some(stop) = rest.find(['"', '\\']) else {
                return Err(self.err("unterminated string"));
            };
            let chunk = &rest[..stop];
            if chunk.bytes().any(|b| b < 0x20) {
                return Err(self.err("control character in string"));
            }
            out.push_str(chunk);
            self.pos += stop;
            if self.peek() == Some(b'"') {
                self.pos += 1;
                return Ok(out);
            }
            // A backslash escape.
            self.pos += 1;
            let Some(esc) = self.peek() else {
                return Err(self.err("unterminated escape"));
            };
            self.pos += 1;
            match esc {
                b'"' => out.push('"'),
                b'\\' => out.push('\\'),
                b'/' => out.push('/'),
                b'b' => out.push('\u{8}'),
                b'f' => out.push('\u{c}'),
                b'n' => out.push('\n'),
                b'r' => out.push('\r'),
                b't' => out.push('\t'),
                b'u' => {
                    let first = self.hex4()?;
                    let code = if (0xd800..0xdc00).contains(&first) {
                        if !self.text[self.pos..].starts_with("\\u") {
                            return Err(self.err("unpaired surrogate in \\u escape"));
                        }
                        self.pos += 2;
                        let second = self.hex4()?;
                        if !(0xdc00..0xe000).contains(&second) {
                            return Err(self.err("unpaired surrogate in \\u escape"));
                        }
                        0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00)
                    } else {
                        first
                    };
                    match char::from_u32(code) {
                        Some(c) => out.push(c),
                        None => return Err(self.err("unpaired surrogate in \\u escape")),
                    }
                }
                _ => return Err(self.err("unknown escape")),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Tree -> Value, against the type

fn convert(json: &Json, ty: &Type, path: &mut Path) -> Result<Value, DecodeError> {
    if let Json::Null = json {
        return Ok(Value::Null);
    }
    let mismatch =
        |path: &Path, what: &str| path.error(format!("expected {what}, got {}", json.kind()));
    match (ty, json) {
        (Type::Bool, Json::Bool(b)) => Ok(Value::Bool(*b)),
        (Type::Number, Json::Number(text)) => parse_decimal(text)
            .map(Value::Number)
            .ok_or_else(|| path.error(format!("{} is not a number", quoted(text)))),
        (Type::String, Json::String(s)) => Ok(Value::String(s.clone())),
        (Type::List(elem), Json::Array(items)) => Ok(Value::List(convert_all(items, elem, path)?)),
        (Type::Set(elem), Json::Array(items)) => Ok(Value::Set(convert_all(items, elem, path)?)),
        (Type::Tuple(elems), Json::Array(items)) => {
            if elems.len() != items.len() {
                return Err(path.error(format!(
                    "tuple needs exactly {} elements, got {}",
                    elems.len(),
                    items.len()
                )));
            }
            let mut out = Vec::with_capacity(items.len());
            for (i, (item, t)) in items.iter().zip(elems).enumerate() {
                path.push(Step::Index(i));
                out.push(convert(item, t, path)?);
                path.pop();
            }
            Ok(Value::Tuple(out))
        }
        (Type::Map(elem), Json::Object(fields)) => {
            let mut out = BTreeMap::new();
            for (k, v) in fields {
                path.push(Step::Key(k.clone()));
                let value = convert(v, elem, path)?;
                path.pop();
                if out.insert(k.clone(), value).is_some() {
                    return Err(path.error(format!("duplicate key {}", quoted(k))));
                }
            }
            Ok(Value::Map(out))
        }
        (Type::Object(attrs), Json::Object(fields)) => {
            let mut out = BTreeMap::new();
            for (k, v) in fields {
                let Some(attr_ty) = attrs.get(k) else {
                    return Err(path.error(format!("unsupported attribute {}", quoted(k))));
                };
                path.push(Step::Attr(k.clone()));
                let value = convert(v, attr_ty, path)?;
                path.pop();
                if out.insert(k.clone(), value).is_some() {
                    return Err(path.error(format!("attribute {} appears twice", quoted(k))));
                }
            }
            for name in attrs.keys() {
                if !out.contains_key(name) {
                    out.insert(name.clone(), Value::Null);
                }
            }
            Ok(Value::Object(out))
        }
        (Type::Dynamic, Json::Object(fields)) => {
            let mut type_json = None;
            let mut value_json = None;
            for (k, v) in fields {
                match k.as_str() {
                    "type" => type_json = Some(v),
                    "value" => value_json = Some(v),
                    other => {
                        return Err(path.error(format!(
                            "dynamic value has unexpected key {} (only \"type\" and \"value\")",
                            quoted(other)
                        )))
                    }
                }
            }
            let (Some(type_json), Some(value_json)) = (type_json, value_json) else {
                return Err(path.error("dynamic value needs both \"type\" and \"value\""));
            };
            let inner_ty = Type::from_json(&to_serde(type_json))
                .map_err(|e| path.error(format!("dynamic value's type is invalid: {e}")))?;
            if inner_ty == Type::Dynamic {
                return Err(path.error("dynamic value's type cannot itself be \"dynamic\""));
            }
            let inner = convert(value_json, &inner_ty, path)?;
            Ok(Value::Dynamic(inner_ty, Box::new(inner)))
        }
        (Type::Bool, _) => Err(mismatch(path, "bool")),
        (Type::Number, _) => Err(mismatch(path, "number")),
        (Type::String, _) => Err(mismatch(path, "string")),
        (Type::List(_), _) => Err(mismatch(path, "list (array)")),
        (Type::Set(_), _) => Err(mismatch(path, "set (array)")),
        (Type::Tuple(_), _) => Err(mismatch(path, "tuple (array)")),
        (Type::Map(_), _) => Err(mismatch(path, "map (object)")),
        (Type::Object(_), _) => Err(mismatch(path, "object")),
        (Type::Dynamic, _) => Err(mismatch(path, "dynamic value ({\"type\":..,\"value\":..})")),
    }
}

fn convert_all(items: &[Json], elem: &Type, path: &mut Path) -> Result<Vec<Value>, DecodeError> {
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        path.push(Step::Index(i));
        out.push(convert(item, elem, path)?);
        path.pop();
    }
    Ok(out)
}

/// Type JSON for `Type::from_json`. Only reached for the `type` of a dynamic
/// value, whose depth the parser has already bounded.
fn to_serde(json: &Json) -> serde_json::Value {
    use serde_json::Value as J;
    match json {
        Json::Null => J::Null,
        Json::Bool(b) => J::Bool(*b),
        // Type JSON never holds numbers; keep the text so errors show it.
        Json::Number(n) => J::String(n.clone()),
        Json::String(s) => J::String(s.clone()),
        Json::Array(items) => J::Array(items.iter().map(to_serde).collect()),
        Json::Object(fields) => J::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), to_serde(v)))
                .collect(),
        ),
    }
}

// ---------------------------------------------------------------------------
// Value -> JSON text

fn write_value(
    out: &mut String,
    value: &Value,
    ty: &Type,
    path: &mut Path,
) -> Result<(), DecodeError> {
    match (ty, value) {
        (_, Value::Null) => out.push_str("null"),
        (_, Value::Unknown) => return Err(path.error("an unknown value cannot be written as JSON")),
        (Type::Dynamic, Value::Dynamic(inner_ty, inner)) => {
            write_dynamic(out, inner_ty, inner, path)?
        }
        (Type::Dynamic, v) => match infer_type(v, path)? {
            Some(t) => write_dynamic(out, &t, v, path)?,
            None => return Err(path.error("cannot tell the type of this value")),
        },
        (t, Value::Dynamic(inner_ty, inner)) if inner_ty == t => write_value(out, inner, t, path)?,
        (Type::Bool, Value::Bool(b)) => out.push_str(if *b { "true" } else { "false" }),
        (Type::Number, Value::Number(n)) => write_number(out, n, path)?,
        (Type::String, Value::String(s)) => write_string(out, s),
        (Type::List(elem) | Type::Set(elem), Value::List(items) | Value::Set(items)) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                path.push(Step::Index(i));
                write_value(out, item, elem, path)?;
                path.pop();
            }
            out.push(']');
        }
        (Type::Tuple(elems), Value::Tuple(items) | Value::List(items)) => {
            if elems.len() != items.len() {
                return Err(path.error(format!(
                    "tuple needs exactly {} elements, got {}",
                    elems.len(),
                    items.len()
                )));
            }
            out.push('[');
            for (i, (item, t)) in items.iter().zip(elems).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                path.push(Step::Index(i));
                write_value(out, item, t, path)?;
                path.pop();
            }
            out.push(']');
        }
        (Type::Map(elem), Value::Map(entries) | Value::Object(entries)) => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, k);
                out.push(':');
                path.push(Step::Key(k.clone()));
                write_value(out, v, elem, path)?;
                path.pop();
            }
            out.push('}');
        }
        (Type::Object(attrs), Value::Object(fields) | Value::Map(fields)) => {
            if let Some(extra) = fields.keys().find(|k| !attrs.contains_key(*k)) {
                return Err(path.error(format!(
                    "unsupported attribute {} for this object type",
                    quoted(extra)
                )));
            }
            out.push('{');
            for (i, (name, attr_ty)) in attrs.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, name);
                out.push(':');
                path.push(Step::Attr(name.clone()));
                write_value(out, fields.get(name).unwrap_or(&Value::Null), attr_ty, path)?;
                path.pop();
            }
            out.push('}');
        }
        (t, v) => {
            return Err(path.error(format!(
                "expected {}, got {}",
                String::from_utf8_lossy(&t.to_json_bytes()),
                value_kind(v)
            )))
        }
    }
    Ok(())
}

fn write_dynamic(
    out: &mut String,
    ty: &Type,
    value: &Value,
    path: &mut Path,
) -> Result<(), DecodeError> {
    if *ty == Type::Dynamic {
        return Err(path.error("a dynamic value's type cannot be \"dynamic\""));
    }
    out.push_str("{\"value\":");
    write_value(out, value, ty, path)?;
    out.push_str(",\"type\":");
    out.push_str(&ty.to_json().to_string());
    out.push('}');
    Ok(())
}

fn write_number(out: &mut String, n: &Number, path: &Path) -> Result<(), DecodeError> {
    match n {
        Number::Int(i) => out.push_str(&i.to_string()),
        Number::Float(f) if !f.is_finite() => {
            return Err(path.error(format!("{f} cannot be written as a JSON number")))
        }
        Number::Float(f) => match exact_int(*f) {
            Some(i) => out.push_str(&i.to_string()),
            // Debug prints the shortest text that reads back as the same
            // f64, always with a '.' or an exponent: valid JSON.
            None => out.push_str(&format!("{f:?}")),
        },
        Number::Big(text) => match parse_decimal(text) {
            // parse_decimal normalises to JSON number syntax; write that.
            Some(Number::Big(normal)) => out.push_str(&normal),
            Some(other) => write_number(out, &other, path)?,
            None => return Err(path.error(format!("{} is not a decimal number", quoted(text)))),
        },
    }
    Ok(())
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tf::testgen::{arb_type, arb_typed_value};
    use proptest::prelude::*;

    fn obj(fields: &[(&str, Type)]) -> Type {
        Type::Object(
            fields
                .iter()
                .map(|(k, t)| (k.to_string(), t.clone()))
                .collect(),
        )
    }

    fn dec(text: &str, t: &Type) -> Value {
        decode(text.as_bytes(), t).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn err(text: &str, t: &Type) -> String {
        match decode(text.as_bytes(), t) {
            Err(DecodeError(msg)) => msg,
            Ok(v) => panic!("{text} unexpectedly decoded to {v:?}"),
        }
    }

    fn enc(v: &Value, t: &Type) -> String {
        String::from_utf8(encode(v, t).unwrap_or_else(|e| panic!("{v:?}: {e}")))
            .expect("we write UTF-8")
    }

    #[test]
    fn errors_quote_only_a_short_snippet_of_input_strings() {
        let secret = format!("s3cr3t-{}", "9".repeat(200));
        let msg = err(
            &format!("{{\"{secret}\": 1}}"),
            &obj(&[("a", Type::Number)]),
        );
        assert!(msg.starts_with("unsupported attribute \"s3cr3t-"), "{msg}");
        assert!(!msg.contains(&secret), "{msg}");
        let msg = err(
            &format!("{{\"type\": \"{secret}\", \"value\": 1}}"),
            &Type::Dynamic,
        );
        assert!(!msg.contains(&secret), "{msg}");
        assert!(msg.len() < 120, "{msg}");
    }

    #[test]
    fn primitives() {
        assert_eq!(dec("true", &Type::Bool), Value::Bool(true));
        assert_eq!(
            dec(" \"a\\n\\u00e9\\ud83d\\ude00\" ", &Type::String),
            Value::string("a\né😀")
        );
        assert_eq!(dec("null", &Type::String), Value::Null);
        assert_eq!(dec("-12", &Type::Number), Value::int(-12));
        assert!(matches!(dec("0.5", &Type::Number), Value::Number(Number::Float(f)) if f == 0.5));
        assert!(
            matches!(dec("2E+3", &Type::Number), Value::Number(Number::Float(f)) if f == 2000.0)
        );
        assert_eq!(err("\"7\"", &Type::Number), "expected number, got string");
        assert_eq!(err("1", &Type::String), "expected string, got number");
    }

    #[test]
    fn big_numbers_keep_every_digit() {
        let big = "123456789012345678901234567890.000000000000000001";
        match dec(big, &Type::Number) {
            Value::Number(Number::Big(s)) => assert_eq!(s, big),
            other => panic!("{other:?}"),
        }
        let v = Value::Number(Number::Big(big.into()));
        assert_eq!(enc(&v, &Type::Number), big);
        assert_eq!(
            enc(&Value::Number(Number::Big("+007".into())), &Type::Number),
            "7"
        );
        assert_eq!(
            enc(&Value::Number(Number::Float(0.1)), &Type::Number),
            "0.1"
        );
        assert_eq!(enc(&Value::Number(Number::Float(3.0)), &Type::Number), "3");
        assert_eq!(
            enc(&Value::Number(Number::Float(1e300)), &Type::Number),
            "1e300"
        );
        assert!(encode(&Value::Number(Number::Float(f64::INFINITY)), &Type::Number).is_err());
    }

    #[test]
    fn objects_fill_missing_attributes_with_null_and_reject_unknown_keys() {
        let t = obj(&[
            ("secret_id", Type::String),
            ("rotate_immediately", Type::Bool),
        ]);
        assert_eq!(
            dec(r#"{"secret_id":"s"}"#, &t),
            Value::object([
                ("secret_id", Value::string("s")),
                ("rotate_immediately", Value::Null)
            ])
        );
        assert_eq!(
            err(r#"{"secret":"s"}"#, &t),
            "unsupported attribute \"secret\""
        );
        assert!(err(r#"{"secret_id":"a","secret_id":"b"}"#, &t).contains("appears twice"));
        // Every attribute is written, null for absent ones.
        assert_eq!(
            enc(&Value::object([("secret_id", Value::string("s"))]), &t),
            r#"{"rotate_immediately":null,"secret_id":"s"}"#
        );
    }

    #[test]
    fn errors_name_the_path() {
        let t = obj(&[(
            "rotation_rules",
            Type::list(obj(&[("duration", Type::String)])),
        )]);
        assert_eq!(
            err(r#"{"rotation_rules":[{"duration":true}]}"#, &t),
            ".rotation_rules[0].duration: expected string, got bool"
        );
    }

    #[test]
    fn collections() {
        let t = obj(&[
            ("l", Type::list(Type::Number)),
            ("s", Type::set(Type::String)),
            ("m", Type::map(Type::Bool)),
            ("t", Type::Tuple(vec![Type::String, Type::Bool])),
        ]);
        let text = r#"{"l":[1,2],"m":{"k":true},"s":["x"],"t":["a",false]}"#;
        let v = Value::object([
            ("l", Value::List(vec![Value::int(1), Value::int(2)])),
            ("m", Value::Map([("k".into(), Value::Bool(true))].into())),
            ("s", Value::string_set(["x"])),
            (
                "t",
                Value::Tuple(vec![Value::string("a"), Value::Bool(false)]),
            ),
        ]);
        assert_eq!(dec(text, &t), v);
        assert_eq!(enc(&v, &t), text);
        assert!(err(r#"{"t":["a"]}"#, &t).starts_with(".t: tuple needs exactly 2"));
    }

    #[test]
    fn dynamic_is_value_and_type() {
        let text = r#"{"value":["a"],"type":["list","string"]}"#;
        let v = Value::Dynamic(
            Type::list(Type::String),
            Box::new(Value::List(vec![Value::string("a")])),
        );
        assert_eq!(dec(text, &Type::Dynamic), v);
        assert_eq!(enc(&v, &Type::Dynamic), text);
        assert_eq!(
            dec(r#"{"type":"number","value":1}"#, &Type::Dynamic),
            Value::Dynamic(Type::Number, Box::new(Value::int(1)))
        );
        assert!(err(r#"{"value":1}"#, &Type::Dynamic).contains("both"));
        assert!(err(r#"{"value":1,"type":"number","x":2}"#, &Type::Dynamic).contains("\"x\""));
        assert!(err(r#"{"value":1,"type":"nope"}"#, &Type::Dynamic).contains("invalid"));
        assert_eq!(
            enc(&Value::string("x"), &Type::Dynamic),
            r#"{"value":"x","type":"string"}"#
        );
    }

    #[test]
    fn unknown_cannot_be_written() {
        let t = obj(&[("a", Type::String)]);
        let msg = encode(&Value::object([("a", Value::Unknown)]), &t)
            .expect_err("unknown")
            .0;
        assert_eq!(msg, ".a: an unknown value cannot be written as JSON");
    }

    #[test]
    fn strings_escape_control_characters() {
        let s = "q\"b\\n\n\t\u{1}é";
        let text = enc(&Value::string(s), &Type::String);
        assert_eq!(text, r#""q\"b\\n\n\t\u0001é""#);
        assert_eq!(
            serde_json::from_str::<String>(&text).expect("valid JSON"),
            s
        );
        assert_eq!(dec(&text, &Type::String), Value::string(s));
    }

    #[test]
    fn malformed_json_is_an_error() {
        for bad in [
            "",
            "nul",
            "[1,]",
            "{\"a\" 1}",
            "01",
            "1.",
            "-",
            "\"abc",
            "\"\\x\"",
            "\"\\ud800\"",
            "\"\\u12\"",
            "\"a\u{1}\"",
            "[1] x",
            "{,}",
            "+1",
            ".5",
            "1e",
        ] {
            assert!(decode(bad.as_bytes(), &Type::Dynamic).is_err(), "{bad:?}");
            assert!(
                decode(bad.as_bytes(), &Type::list(Type::Number)).is_err(),
                "{bad:?}"
            );
        }
        assert!(decode(b"\xff", &Type::String).is_err());
        let deep = "[".repeat(100_000);
        assert!(decode(deep.as_bytes(), &Type::list(Type::Number))
            .expect_err("deep")
            .0
            .contains("nested"));
    }

    /// True when the value holds an infinite number, which JSON cannot hold.
    fn has_infinity(v: &Value) -> bool {
        match v {
            Value::Number(Number::Float(f)) => !f.is_finite(),
            Value::List(v) | Value::Set(v) | Value::Tuple(v) => v.iter().any(has_infinity),
            Value::Map(m) | Value::Object(m) => m.values().any(has_infinity),
            Value::Dynamic(_, v) => has_infinity(v),
            _ => false,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn round_trips_known_values((ty, value) in arb_typed_value(false)) {
            prop_assume!(!has_infinity(&value));
            let bytes = encode(&value, &ty).map_err(|e| TestCaseError::fail(e.0))?;
            let text = String::from_utf8_lossy(&bytes).into_owned();
            prop_assert!(serde_json::from_slice::<serde_json::Value>(&bytes).is_ok(), "not JSON: {text}");
            let back = decode(&bytes, &ty).map_err(|e| TestCaseError::fail(format!("{e} in {text}")))?;
            prop_assert!(back.same_as(&value), "{value:?}\n -> {text}\n -> {back:?}");
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(
            ty in arb_type(true),
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let _ = decode(&bytes, &ty);
        }

        #[test]
        fn decoding_arbitrary_text_never_panics(ty in arb_type(true), text in "[\\[\\]{}\",:0-9a-z\\\\. -]{0,40}") {
            let _ = decode(text.as_bytes(), &ty);
        }
    }
}
