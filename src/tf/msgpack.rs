//! DynamicValue msgpack encoding, driven by the schema type.
//!
//! Terraform sends every request value as msgpack and reads ours the same way.
//! The rules (cty's msgpack form) in short:
//! - null is `nil` whatever the type; an unknown value is an extension. We
//!   write ext type 0 with one zero byte (`d4 00 00`); on decode *any*
//!   extension, including refined unknowns (type 12 with a map payload),
//!   reads as unknown, because cty has added extension types over time.
//! - numbers arrive as any int width, float32/64 or a decimal string.
//! - an object is a map keyed by attribute name; Terraform 1.0.3 insists on
//!   every attribute being present, so the encoder writes all of them.
//! - a `dynamic` slot holds `[type JSON as bin, value]`.
//!
//! The reader and writer are small and hand-written: the subset of msgpack
//! Terraform uses is tiny, and owning it lets the decoder bound recursion and
//! preallocation against hostile input.

use std::collections::BTreeMap;
use std::fmt;

use super::codec::{exact_int, infer_type, parse_decimal, quoted, value_kind, Path, Step};
pub use super::codec::{DecodeError, MAX_DEPTH};
use super::types::Type;
use super::value::{Number, Value};

/// Decodes `bytes` as a value of type `ty`. Never panics.
pub fn decode(bytes: &[u8], ty: &Type) -> Result<Value, DecodeError> {
    let mut reader = Reader {
        bytes,
        pos: 0,
        path: Path::default(),
    };
    let value = reader.value(ty, 0)?;
    if reader.pos != bytes.len() {
        return Err(DecodeError(format!(
            "{} trailing bytes after the value",
            bytes.len() - reader.pos
        )));
    }
    Ok(value)
}

/// Encodes `value` as type `ty`, writing nil for null and ext 0 for unknown.
///
/// Object attributes absent from the value are written as nil. A value that
/// does not fit the type is an error naming where it does not fit. A plain
/// (non-`Dynamic`) value in a `dynamic` slot gets the type it evidently has;
/// when that is ambiguous (an empty list, say) it is an error.
pub fn encode(value: &Value, ty: &Type) -> Result<Vec<u8>, DecodeError> {
    let mut writer = Writer {
        out: Vec::with_capacity(64),
        path: Path::default(),
    };
    writer.value(value, ty)?;
    Ok(writer.out)
}

// ---------------------------------------------------------------------------
// Reader

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: Path,
}

/// What a msgpack marker introduces, for error messages.
/// How many elements to reserve room for when a header announces `n`.
/// Every element takes at least one byte, so never more than the input
/// left; and since one `Value` is tens of bytes, never more than a fixed
/// number either: a 256 MiB message announcing 256 million elements must
/// not reserve gigabytes before the first element is read. Beyond it the
/// vector grows as elements really arrive.
fn preallocation(n: usize, remaining_input: usize) -> usize {
    const MAX_PREALLOCATED_ELEMENTS: usize = 4096;
    n.min(remaining_input).min(MAX_PREALLOCATED_ELEMENTS)
}

fn marker_kind(m: u8) -> &'static str {
    match m {
        0x00..=0x7f | 0xe0..=0xff | 0xcc..=0xd3 => "int",
        0x80..=0x8f | 0xde | 0xdf => "map",
        0x90..=0x9f | 0xdc | 0xdd => "array",
        0xa0..=0xbf | 0xd9..=0xdb => "string",
        0xc0 => "nil",
        0xc2 | 0xc3 => "bool",
        0xc4..=0xc6 => "bin",
        0xc7..=0xc9 | 0xd4..=0xd8 => "extension",
        0xca | 0xcb => "float",
        _ => "reserved byte 0xc1",
    }
}

impl<'a> Reader<'a> {
    fn err(&self, msg: impl fmt::Display) -> DecodeError {
        self.path.error(msg)
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(self.err(format!(
                "unexpected end of input (needed {n} more bytes at offset {}, {} left)",
                self.pos,
                self.remaining()
            )));
        }
        let slice = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(slice)
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn peek(&self) -> Result<u8, DecodeError> {
        self.bytes
            .get(self.pos)
            .copied()
            .ok_or_else(|| self.err("unexpected end of input"))
    }

    fn be<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut buf = [0u8; N];
        buf.copy_from_slice(self.take(N)?);
        Ok(buf)
    }

    fn len_u8(&mut self) -> Result<usize, DecodeError> {
        Ok(self.byte()? as usize)
    }
    fn len_u16(&mut self) -> Result<usize, DecodeError> {
        Ok(u16::from_be_bytes(self.be()?) as usize)
    }
    fn len_u32(&mut self) -> Result<usize, DecodeError> {
        Ok(u32::from_be_bytes(self.be()?) as usize)
    }

    /// Consumes an extension if one is next; any extension is an unknown.
    fn skip_extension(&mut self) -> Result<bool, DecodeError> {
        let marker = self.peek()?;
        let payload = match marker {
            0xd4 => 1,
            0xd5 => 2,
            0xd6 => 4,
            0xd7 => 8,
            0xd8 => 16,
            0xc7..=0xc9 => {
                self.pos += 1;
                match marker {
                    0xc7 => self.len_u8()?,
                    0xc8 => self.len_u16()?,
                    _ => self.len_u32()?,
                }
            }
            _ => return Ok(false),
        };
        if (0xd4..=0xd8).contains(&marker) {
            self.pos += 1;
        }
        // The type byte, then the payload, whose content we ignore: an
        // unknown's refinements do not change what a provider may plan.
        self.take(1 + payload)?;
        Ok(true)
    }

    fn value(&mut self, ty: &Type, depth: usize) -> Result<Value, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(self.err(format!("value nested more than {MAX_DEPTH} levels deep")));
        }
        let marker = self.peek()?;
        if marker == 0xc0 {
            self.pos += 1;
            return Ok(Value::Null);
        }
        if self.skip_extension()? {
            return Ok(Value::Unknown);
        }
        match ty {
            Type::Bool => match self.byte()? {
                0xc2 => Ok(Value::Bool(false)),
                0xc3 => Ok(Value::Bool(true)),
                m => Err(self.expected("bool", m)),
            },
            Type::Number => self.number().map(Value::Number),
            Type::String => self.string().map(Value::String),
            Type::List(elem) => {
                let n = self.array_len("list")?;
                Ok(Value::List(self.elements(n, elem, depth)?))
            }
            Type::Set(elem) => {
                let n = self.array_len("set")?;
                Ok(Value::Set(self.elements(n, elem, depth)?))
            }
            Type::Tuple(elems) => {
                let n = self.array_len("tuple")?;
                if n != elems.len() {
                    return Err(self.err(format!(
                        "tuple needs exactly {} elements, got {n}",
                        elems.len()
                    )));
                }
                let mut items = Vec::with_capacity(n);
                for (i, t) in elems.iter().enumerate() {
                    self.path.push(Step::Index(i));
                    items.push(self.value(t, depth + 1)?);
                    self.path.pop();
                }
                Ok(Value::Tuple(items))
            }
            Type::Map(elem) => {
                let n = self.map_len("map")?;
                let mut entries = BTreeMap::new();
                for _ in 0..n {
                    let key = self.string()?;
                    self.path.push(Step::Key(key.clone()));
                    let v = self.value(elem, depth + 1)?;
                    self.path.pop();
                    if entries.insert(key, v).is_some() {
                        return Err(self.err("map has a duplicate key"));
                    }
                }
                Ok(Value::Map(entries))
            }
            Type::Object(attrs) => {
                let n = self.map_len("object")?;
                let mut fields = BTreeMap::new();
                for _ in 0..n {
                    let key = self.string()?;
                    let Some(attr_ty) = attrs.get(&key) else {
                        return Err(self.err(format!("unsupported attribute {}", quoted(&key))));
                    };
                    self.path.push(Step::Attr(key.clone()));
                    let v = self.value(attr_ty, depth + 1)?;
                    self.path.pop();
                    if fields.contains_key(&key) {
                        return Err(self.err(format!("attribute {} appears twice", quoted(&key))));
                    }
                    fields.insert(key, v);
                }
                for name in attrs.keys() {
                    if !fields.contains_key(name) {
                        fields.insert(name.clone(), Value::Null);
                    }
                }
                Ok(Value::Object(fields))
            }
            Type::Dynamic => {
                let n = self.array_len("dynamic value")?;
                if n != 2 {
                    return Err(self.err(format!(
                        "dynamic value must be a [type, value] pair, got {n} elements"
                    )));
                }
                let type_json = match self.byte()? {
                    m @ (0xc4..=0xc6) => {
                        let n = match m {
                            0xc4 => self.len_u8()?,
                            0xc5 => self.len_u16()?,
                            _ => self.len_u32()?,
                        };
                        self.take(n)?
                    }
                    m => {
                        // Terraform writes bin, but its decoder accepts str.
                        self.pos -= 1;
                        match self.str_bytes() {
                            Ok(b) => b,
                            Err(_) => return Err(self.expected("type JSON (bin or string)", m)),
                        }
                    }
                };
                let json: serde_json::Value = serde_json::from_slice(type_json)
                    .map_err(|e| self.err(format!("dynamic value's type is not JSON: {e}")))?;
                let inner_ty = Type::from_json(&json)
                    .map_err(|e| self.err(format!("dynamic value's type is invalid: {e}")))?;
                if inner_ty == Type::Dynamic {
                    return Err(self.err("dynamic value's type cannot itself be \"dynamic\""));
                }
                let inner = self.value(&inner_ty, depth + 1)?;
                Ok(Value::Dynamic(inner_ty, Box::new(inner)))
            }
        }
    }

    fn expected(&self, what: &str, marker: u8) -> DecodeError {
        self.err(format!("expected {what}, got {}", marker_kind(marker)))
    }

    fn elements(&mut self, n: usize, elem: &Type, depth: usize) -> Result<Vec<Value>, DecodeError> {
        let mut items = Vec::with_capacity(preallocation(n, self.remaining()));
        for i in 0..n {
            self.path.push(Step::Index(i));
            items.push(self.value(elem, depth + 1)?);
            self.path.pop();
        }
        Ok(items)
    }

    fn array_len(&mut self, what: &str) -> Result<usize, DecodeError> {
        match self.byte()? {
            m @ 0x90..=0x9f => Ok((m & 0x0f) as usize),
            0xdc => self.len_u16(),
            0xdd => self.len_u32(),
            m => Err(self.expected(what, m)),
        }
    }

    fn map_len(&mut self, what: &str) -> Result<usize, DecodeError> {
        match self.byte()? {
            m @ 0x80..=0x8f => Ok((m & 0x0f) as usize),
            0xde => self.len_u16(),
            0xdf => self.len_u32(),
            m => Err(self.expected(what, m)),
        }
    }

    fn str_bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = match self.byte()? {
            m @ 0xa0..=0xbf => (m & 0x1f) as usize,
            0xd9 => self.len_u8()?,
            0xda => self.len_u16()?,
            0xdb => self.len_u32()?,
            m => return Err(self.expected("string", m)),
        };
        self.take(n)
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let bytes = self.str_bytes()?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_string()),
            Err(_) => Err(self.err("string is not valid UTF-8")),
        }
    }

    fn number(&mut self) -> Result<Number, DecodeError> {
        let m = self.byte()?;
        let n = match m {
            0x00..=0x7f => Number::Int(m as i64),
            0xe0..=0xff => Number::Int(m as i8 as i64),
            0xcc => Number::Int(self.byte()? as i64),
            0xcd => Number::Int(u16::from_be_bytes(self.be()?) as i64),
            0xce => Number::Int(u32::from_be_bytes(self.be()?) as i64),
            0xcf => {
                let u = u64::from_be_bytes(self.be()?);
                match i64::try_from(u) {
                    Ok(i) => Number::Int(i),
                    Err(_) => Number::Big(u.to_string()),
                }
            }
            0xd0 => Number::Int(i8::from_be_bytes(self.be()?) as i64),
            0xd1 => Number::Int(i16::from_be_bytes(self.be()?) as i64),
            0xd2 => Number::Int(i32::from_be_bytes(self.be()?) as i64),
            0xd3 => Number::Int(i64::from_be_bytes(self.be()?)),
            0xca => Number::Float(f32::from_be_bytes(self.be()?) as f64),
            0xcb => Number::Float(f64::from_be_bytes(self.be()?)),
            0xa0..=0xbf | 0xd9..=0xdb => {
                self.pos -= 1;
                let text = self.string()?;
                match parse_decimal(&text) {
                    Some(n) => n,
                    None => return Err(self.err(format!("{} is not a number", quoted(&text)))),
                }
            }
            m => return Err(self.expected("number", m)),
        };
        if let Number::Float(f) = n {
            if f.is_nan() {
                return Err(self.err("NaN is not a valid number"));
            }
        }
        Ok(n)
    }
}

// ---------------------------------------------------------------------------
// Writer

struct Writer {
    out: Vec<u8>,
    path: Path,
}

impl Writer {
    fn mismatch(&self, ty: &Type, value: &Value) -> DecodeError {
        self.path.error(format!(
            "expected {}, got {}",
            String::from_utf8_lossy(&ty.to_json_bytes()),
            value_kind(value)
        ))
    }

    fn value(&mut self, value: &Value, ty: &Type) -> Result<(), DecodeError> {
        match value {
            Value::Null => {
                self.out.push(0xc0);
                return Ok(());
            }
            Value::Unknown => {
                self.out.extend_from_slice(&[0xd4, 0x00, 0x00]);
                return Ok(());
            }
            _ => {}
        }
        match (ty, value) {
            (Type::Dynamic, Value::Dynamic(inner_ty, inner)) => {
                if *inner_ty == Type::Dynamic {
                    return Err(self
                        .path
                        .error("a dynamic value's type cannot be \"dynamic\""));
                }
                self.dynamic(inner_ty, inner)
            }
            (Type::Dynamic, v) => match infer_type(v, &mut self.path)? {
                Some(t) => self.dynamic(&t, v),
                None => Err(self.path.error("cannot tell the type of this value")),
            },
            // A dynamic wrapper around a value of exactly the expected type.
            (t, Value::Dynamic(inner_ty, inner)) if inner_ty == t => self.value(inner, t),
            (Type::Bool, Value::Bool(b)) => {
                self.out.push(if *b { 0xc3 } else { 0xc2 });
                Ok(())
            }
            (Type::Number, Value::Number(n)) => self.number(n),
            (Type::String, Value::String(s)) => self.str(s),
            // Lists and sets are both arrays; accept either shape for either
            // type so callers need not care which a schema chose.
            (Type::List(elem) | Type::Set(elem), Value::List(items) | Value::Set(items)) => {
                self.array_header(items.len())?;
                for (i, item) in items.iter().enumerate() {
                    self.path.push(Step::Index(i));
                    self.value(item, elem)?;
                    self.path.pop();
                }
                Ok(())
            }
            (Type::Tuple(elems), Value::Tuple(items) | Value::List(items)) => {
                if elems.len() != items.len() {
                    return Err(self.path.error(format!(
                        "tuple needs exactly {} elements, got {}",
                        elems.len(),
                        items.len()
                    )));
                }
                self.array_header(items.len())?;
                for (i, (item, t)) in items.iter().zip(elems).enumerate() {
                    self.path.push(Step::Index(i));
                    self.value(item, t)?;
                    self.path.pop();
                }
                Ok(())
            }
            (Type::Map(elem), Value::Map(entries) | Value::Object(entries)) => {
                self.map_header(entries.len())?;
                for (k, v) in entries {
                    self.str(k)?;
                    self.path.push(Step::Key(k.clone()));
                    self.value(v, elem)?;
                    self.path.pop();
                }
                Ok(())
            }
            (Type::Object(attrs), Value::Object(fields) | Value::Map(fields)) => {
                if let Some(extra) = fields.keys().find(|k| !attrs.contains_key(*k)) {
                    return Err(self.path.error(format!(
                        "unsupported attribute {} for this object type",
                        quoted(extra)
                    )));
                }
                self.map_header(attrs.len())?;
                for (name, attr_ty) in attrs {
                    self.str(name)?;
                    self.path.push(Step::Attr(name.clone()));
                    self.value(fields.get(name).unwrap_or(&Value::Null), attr_ty)?;
                    self.path.pop();
                }
                Ok(())
            }
            (t, v) => Err(self.mismatch(t, v)),
        }
    }

    fn dynamic(&mut self, ty: &Type, value: &Value) -> Result<(), DecodeError> {
        self.out.push(0x92);
        let json = ty.to_json_bytes();
        self.bin(&json)?;
        self.value(value, ty)
    }

    fn number(&mut self, n: &Number) -> Result<(), DecodeError> {
        match n {
            Number::Int(i) => self.int(*i),
            Number::Float(f) if f.is_nan() => {
                return Err(self.path.error("NaN cannot be sent to Terraform"))
            }
            Number::Float(f) => match exact_int(*f) {
                Some(i) => self.int(i),
                None => {
                    self.out.push(0xcb);
                    self.out.extend_from_slice(&f.to_be_bytes());
                }
            },
            Number::Big(text) => {
                if parse_decimal(text).is_none() {
                    return Err(self
                        .path
                        .error(format!("{} is not a decimal number", quoted(text))));
                }
                self.str(text)?;
            }
        }
        Ok(())
    }

    fn int(&mut self, i: i64) {
        match i {
            0..=0x7f => self.out.push(i as u8),
            -32..=-1 => self.out.push(i as i8 as u8),
            0x80..=0xff => self.out.extend_from_slice(&[0xcc, i as u8]),
            0x100..=0xffff => {
                self.out.push(0xcd);
                self.out.extend_from_slice(&(i as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                self.out.push(0xce);
                self.out.extend_from_slice(&(i as u32).to_be_bytes());
            }
            -0x80..=-33 => self.out.extend_from_slice(&[0xd0, i as i8 as u8]),
            -0x8000..=-0x81 => {
                self.out.push(0xd1);
                self.out.extend_from_slice(&(i as i16).to_be_bytes());
            }
            -0x8000_0000..=-0x8001 => {
                self.out.push(0xd2);
                self.out.extend_from_slice(&(i as i32).to_be_bytes());
            }
            _ => {
                self.out.push(0xd3);
                self.out.extend_from_slice(&i.to_be_bytes());
            }
        }
    }

    fn str(&mut self, s: &str) -> Result<(), DecodeError> {
        let n = s.len();
        if n < 32 {
            self.out.push(0xa0 | n as u8);
        } else if n <= 0xff {
            self.out.extend_from_slice(&[0xd9, n as u8]);
        } else if n <= 0xffff {
            self.out.push(0xda);
            self.out.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            let n = u32::try_from(n).map_err(|_| self.path.error("string too long for msgpack"))?;
            self.out.push(0xdb);
            self.out.extend_from_slice(&n.to_be_bytes());
        }
        self.out.extend_from_slice(s.as_bytes());
        Ok(())
    }

    fn bin(&mut self, b: &[u8]) -> Result<(), DecodeError> {
        let n = b.len();
        if n <= 0xff {
            self.out.extend_from_slice(&[0xc4, n as u8]);
        } else if n <= 0xffff {
            self.out.push(0xc5);
            self.out.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            let n = u32::try_from(n).map_err(|_| self.path.error("type JSON too long"))?;
            self.out.push(0xc6);
            self.out.extend_from_slice(&n.to_be_bytes());
        }
        self.out.extend_from_slice(b);
        Ok(())
    }

    fn array_header(&mut self, n: usize) -> Result<(), DecodeError> {
        if n < 16 {
            self.out.push(0x90 | n as u8);
        } else if n <= 0xffff {
            self.out.push(0xdc);
            self.out.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            let n = u32::try_from(n).map_err(|_| self.path.error("too many elements"))?;
            self.out.push(0xdd);
            self.out.extend_from_slice(&n.to_be_bytes());
        }
        Ok(())
    }

    fn map_header(&mut self, n: usize) -> Result<(), DecodeError> {
        if n < 16 {
            self.out.push(0x80 | n as u8);
        } else if n <= 0xffff {
            self.out.push(0xde);
            self.out.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            let n = u32::try_from(n).map_err(|_| self.path.error("too many entries"))?;
            self.out.push(0xdf);
            self.out.extend_from_slice(&n.to_be_bytes());
        }
        Ok(())
    }
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

    /// A msgpack string header plus bytes.
    fn mp_str(s: &str) -> Vec<u8> {
        let mut w = Writer {
            out: Vec::new(),
            path: Path::default(),
        };
        w.str(s).expect("short test string");
        w.out
    }

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    fn num(bytes: &[u8]) -> Number {
        match decode(bytes, &Type::Number) {
            Ok(Value::Number(n)) => n,
            other => panic!("{bytes:02x?} decoded to {other:?}"),
        }
    }

    fn enc(v: &Value, t: &Type) -> Vec<u8> {
        encode(v, t).unwrap_or_else(|e| panic!("encoding {v:?} as {t:?}: {e}"))
    }

    fn err(bytes: &[u8], t: &Type) -> String {
        match decode(bytes, t) {
            Err(DecodeError(msg)) => msg,
            Ok(v) => panic!("{bytes:02x?} unexpectedly decoded to {v:?}"),
        }
    }

    #[test]
    fn integers_decode_from_every_width() {
        let cases: &[(&[u8], i64)] = &[
            (&[0x00], 0),
            (&[0x7f], 127),
            (&[0xff], -1),
            (&[0xe0], -32),
            (&[0xcc, 0xff], 255),
            (&[0xcd, 0x01, 0x00], 256),
            (&[0xce, 0x00, 0x01, 0x00, 0x00], 65536),
            (&[0xcf, 0, 0, 0, 1, 0, 0, 0, 0], 1 << 32),
            (&[0xd0, 0x80], -128),
            (&[0xd1, 0x80, 0x00], -32768),
            (&[0xd2, 0x80, 0, 0, 0], i32::MIN as i64),
            (&[0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0], i64::MIN),
            (
                &[0xd3, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                i64::MAX,
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(num(bytes), Number::Int(*want), "{bytes:02x?}");
        }
    }

    #[test]
    fn uint64_beyond_i64_stays_exact() {
        let n = num(&[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(n, Number::Big("18446744073709551615".into()));
        assert!(matches!(n, Number::Big(_)));
    }

    #[test]
    fn floats_decode_from_float32_and_float64() {
        assert_eq!(num(&[0xca, 0x3f, 0xc0, 0x00, 0x00]), Number::Float(1.5));
        assert!(matches!(
            num(&[0xca, 0x3f, 0xc0, 0x00, 0x00]),
            Number::Float(_)
        ));
        let mut b = vec![0xcb];
        b.extend_from_slice(&0.1f64.to_be_bytes());
        assert!(matches!(num(&b), Number::Float(f) if f == 0.1));
        let mut inf = vec![0xcb];
        inf.extend_from_slice(&f64::INFINITY.to_be_bytes());
        assert!(matches!(num(&inf), Number::Float(f) if f == f64::INFINITY));
        let mut nan = vec![0xcb];
        nan.extend_from_slice(&f64::NAN.to_be_bytes());
        assert!(err(&nan, &Type::Number).contains("NaN"));
    }

    #[test]
    fn errors_quote_only_a_short_snippet_of_input_strings() {
        let secret = format!("s3cr3t-{}", "x".repeat(200));
        let msg = err(&mp_str(&secret), &Type::Number);
        assert!(msg.contains("is not a number"), "{msg}");
        assert!(msg.contains("\"s3cr3t-"), "{msg}");
        assert!(!msg.contains(&secret), "{msg}");
        assert!(msg.len() < 80, "{msg}");

        let t = obj(&[("a", Type::String)]);
        let bytes = cat(&[&[0x81], &mp_str(&secret), &mp_str("v")]);
        let msg = err(&bytes, &t);
        assert!(msg.starts_with("unsupported attribute"), "{msg}");
        assert!(!msg.contains(&secret), "{msg}");

        let t = obj(&[("tags", Type::map(Type::Number))]);
        let bytes = cat(&[
            &[0x81],
            &mp_str("tags"),
            &[0x81],
            &mp_str(&secret),
            &mp_str("x"),
        ]);
        let msg = err(&bytes, &t);
        assert!(msg.starts_with(".tags[\"s3cr3t-"), "{msg}");
        assert!(!msg.contains(&secret), "{msg}");
    }

    #[test]
    fn numbers_decode_from_decimal_strings() {
        assert_eq!(num(&mp_str("42")), Number::Int(42));
        assert_eq!(num(&mp_str("-7")), Number::Int(-7));
        assert!(matches!(num(&mp_str("0.1")), Number::Float(f) if f == 0.1));
        let big = "123456789012345678901234567890";
        assert!(matches!(num(&mp_str(big)), Number::Big(s) if s == big));
        let precise = "3.14159265358979323846264338327950288";
        assert!(matches!(num(&mp_str(precise)), Number::Big(s) if s == precise));
        assert!(matches!(num(&mp_str("+0012")), Number::Int(12)));
        assert!(matches!(num(&mp_str("1e400")), Number::Big(s) if s == "1e400"));
        for bad in [
            "", "abc", "1.", ".5", "1e", "--1", "0x10", "NaN", "Infinity", "1 ",
        ] {
            let msg = err(&mp_str(bad), &Type::Number);
            assert!(msg.contains("is not a number"), "{bad:?}: {msg}");
        }
    }

    #[test]
    fn numbers_encode_in_the_smallest_int_form_or_float64_or_string() {
        let cases: &[(Number, &[u8])] = &[
            (Number::Int(0), &[0x00]),
            (Number::Int(127), &[0x7f]),
            (Number::Int(128), &[0xcc, 0x80]),
            (Number::Int(-1), &[0xff]),
            (Number::Int(-32), &[0xe0]),
            (Number::Int(-33), &[0xd0, 0xdf]),
            (Number::Int(-129), &[0xd1, 0xff, 0x7f]),
            (Number::Int(65535), &[0xcd, 0xff, 0xff]),
            (Number::Int(65536), &[0xce, 0x00, 0x01, 0x00, 0x00]),
            (Number::Int(-40000), &[0xd2, 0xff, 0xff, 0x63, 0xc0]),
            (Number::Int(1 << 40), &[0xd3, 0, 0, 1, 0, 0, 0, 0, 0]),
            (Number::Float(2.0), &[0x02]),
            (Number::Float(-0.0), &[0x00]),
            (Number::Float(1.5), &[0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0]),
            (
                Number::Big("1e400".into()),
                &[0xa5, b'1', b'e', b'4', b'0', b'0'],
            ),
        ];
        for (n, want) in cases {
            assert_eq!(
                enc(&Value::Number(n.clone()), &Type::Number),
                *want,
                "{n:?}"
            );
        }
        assert!(encode(&Value::Number(Number::Float(f64::NAN)), &Type::Number).is_err());
        assert!(encode(&Value::Number(Number::Big("twelve".into())), &Type::Number).is_err());
    }

    #[test]
    fn floats_holding_integers_are_ints_only_within_i64() {
        assert_eq!(exact_int(-9_223_372_036_854_775_808.0), Some(i64::MIN));
        assert_eq!(exact_int(9_223_372_036_854_775_808.0), None);
        assert_eq!(exact_int(4_611_686_018_427_387_904.0), Some(1 << 62));
        assert_eq!(exact_int(0.5), None);
        assert_eq!(exact_int(f64::INFINITY), None);
        // 2^63 as a float stays a float64 on the wire.
        let bytes = enc(
            &Value::Number(Number::Float(9_223_372_036_854_775_808.0)),
            &Type::Number,
        );
        assert_eq!(bytes[0], 0xcb);
    }

    #[test]
    fn strings_use_fixstr_then_str8_str16_str32() {
        assert_eq!(enc(&Value::string(""), &Type::String), [0xa0]);
        assert_eq!(enc(&Value::string("abc"), &Type::String), b"\xa3abc");
        let s31 = "x".repeat(31);
        assert_eq!(enc(&Value::string(&s31), &Type::String)[0], 0xbf);
        let s32 = "x".repeat(32);
        assert_eq!(enc(&Value::string(&s32), &Type::String)[..2], [0xd9, 32]);
        let s256 = "x".repeat(256);
        assert_eq!(enc(&Value::string(&s256), &Type::String)[..3], [0xda, 1, 0]);
        let s65536 = "x".repeat(65536);
        assert_eq!(
            enc(&Value::string(&s65536), &Type::String)[..5],
            [0xdb, 0, 1, 0, 0]
        );
        for s in [&s31, &s32, &s256, &s65536] {
            let bytes = enc(&Value::string(s.as_str()), &Type::String);
            assert_eq!(decode(&bytes, &Type::String), Ok(Value::string(s.as_str())));
        }
        // str32 holding a short string is still a string.
        assert_eq!(
            decode(b"\xdb\x00\x00\x00\x02hi", &Type::String),
            Ok(Value::string("hi"))
        );
        assert!(err(b"\xa2\xff\xfe", &Type::String).contains("UTF-8"));
        assert_eq!(err(&[0xc3], &Type::String), "expected string, got bool");
    }

    #[test]
    fn null_is_nil_for_every_type() {
        for t in [
            Type::Bool,
            Type::Number,
            Type::String,
            Type::Dynamic,
            Type::list(Type::String),
            obj(&[("a", Type::String)]),
        ] {
            assert_eq!(enc(&Value::Null, &t), [0xc0]);
            assert_eq!(decode(&[0xc0], &t), Ok(Value::Null));
        }
    }

    #[test]
    fn unknown_is_written_as_ext0_and_any_extension_reads_as_unknown() {
        assert_eq!(enc(&Value::Unknown, &Type::String), [0xd4, 0x00, 0x00]);
        let refined = [0xc7, 0x03, 0x0c, 0x81, 0x01, 0xc2]; // ext8 type 12 {1: false}
        let cases: &[&[u8]] = &[
            &[0xd4, 0x00, 0x00],
            &[0xd5, 0x05, 0x01, 0x02],
            &[0xd6, 0x7f, 1, 2, 3, 4],
            &[0xd7, 0x01, 1, 2, 3, 4, 5, 6, 7, 8],
            &[0xd8, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            &refined,
            &[0xc8, 0x00, 0x01, 0x0c, 0x80],
            &[0xc9, 0x00, 0x00, 0x00, 0x00, 0x00],
        ];
        for bytes in cases {
            for t in [
                Type::String,
                Type::Number,
                Type::Dynamic,
                obj(&[("a", Type::Bool)]),
            ] {
                assert_eq!(
                    decode(bytes, &t),
                    Ok(Value::Unknown),
                    "{bytes:02x?} as {t:?}"
                );
            }
        }
        // A refined unknown string with a prefix: {1: false, 2: "arn:"}.
        let mut prefixed = vec![0xc7, 0x00, 0x0c, 0x82, 0x01, 0xc2, 0x02];
        prefixed.extend(mp_str("arn:"));
        prefixed[1] = (prefixed.len() - 3) as u8;
        assert_eq!(decode(&prefixed, &Type::String), Ok(Value::Unknown));
        // A truncated extension is an error, not a panic.
        assert!(err(&[0xc7, 0x05, 0x0c, 0x80], &Type::String).contains("end of input"));
    }

    #[test]
    fn unknown_nested_in_list_and_object() {
        let t = Type::list(Type::Number);
        let bytes = [0x93, 0x01, 0xd4, 0x00, 0x00, 0x03];
        let v = Value::List(vec![Value::int(1), Value::Unknown, Value::int(3)]);
        assert_eq!(decode(&bytes, &t), Ok(v.clone()));
        assert_eq!(enc(&v, &t), bytes);

        let t = obj(&[("arn", Type::String), ("name", Type::String)]);
        let bytes = cat(&[
            &[0x82],
            &mp_str("arn"),
            &[0xd4, 0, 0],
            &mp_str("name"),
            &mp_str("x"),
        ]);
        let v = Value::object([("arn", Value::Unknown), ("name", Value::string("x"))]);
        assert_eq!(decode(&bytes, &t), Ok(v.clone()));
        assert_eq!(enc(&v, &t), bytes);
    }

    #[test]
    fn object_missing_attributes_read_as_null_and_are_always_written() {
        let t = obj(&[("a", Type::String), ("b", Type::Number), ("c", Type::Bool)]);
        let bytes = cat(&[&[0x81], &mp_str("b"), &[0x05]]);
        assert_eq!(
            decode(&bytes, &t),
            Ok(Value::object([
                ("a", Value::Null),
                ("b", Value::int(5)),
                ("c", Value::Null)
            ]))
        );
        // Terraform 1.0.3 requires every attribute: the encoder writes all
        // three, sorted, with nil for the absent ones.
        let written = enc(&Value::object([("b", Value::int(5))]), &t);
        let want = cat(&[
            &[0x83],
            &mp_str("a"),
            &[0xc0],
            &mp_str("b"),
            &[0x05],
            &mp_str("c"),
            &[0xc0],
        ]);
        assert_eq!(written, want);
    }

    #[test]
    fn object_unknown_or_duplicate_key_is_an_error_naming_it() {
        let t = obj(&[("secret_id", Type::String)]);
        let bytes = cat(&[&[0x81], &mp_str("secret_idd"), &mp_str("x")]);
        assert_eq!(err(&bytes, &t), "unsupported attribute \"secret_idd\"");
        let dup = cat(&[
            &[0x82],
            &mp_str("secret_id"),
            &mp_str("x"),
            &mp_str("secret_id"),
            &mp_str("y"),
        ]);
        assert!(err(&dup, &t).contains("appears twice"));
        let extra = Value::object([("secret_id", Value::string("x")), ("nope", Value::Null)]);
        let msg = encode(&extra, &t).expect_err("extra attribute").0;
        assert!(msg.contains("\"nope\""), "{msg}");
    }

    #[test]
    fn errors_name_the_path() {
        let t = obj(&[(
            "rotation_rules",
            Type::list(obj(&[("duration", Type::String)])),
        )]);
        let bytes = cat(&[
            &[0x81],
            &mp_str("rotation_rules"),
            &[0x91, 0x81],
            &mp_str("duration"),
            &[0xc3],
        ]);
        assert_eq!(
            err(&bytes, &t),
            ".rotation_rules[0].duration: expected string, got bool"
        );

        let t = obj(&[("tags", Type::map(Type::Number))]);
        let bytes = cat(&[
            &[0x81],
            &mp_str("tags"),
            &[0x81],
            &mp_str("env"),
            &mp_str("x"),
        ]);
        assert_eq!(err(&bytes, &t), ".tags[\"env\"]: \"x\" is not a number");

        let v = Value::object([(
            "tags",
            Value::Map([("env".into(), Value::Bool(true))].into()),
        )]);
        assert_eq!(
            encode(&v, &t),
            Err(DecodeError(
                ".tags[\"env\"]: expected \"number\", got bool".into()
            ))
        );
    }

    #[test]
    fn collections_map_set_and_tuple() {
        let set = Type::set(Type::String);
        let bytes = cat(&[&[0x92], &mp_str("b"), &mp_str("a")]);
        assert_eq!(decode(&bytes, &set), Ok(Value::string_set(["b", "a"])));

        let map = Type::map(Type::Bool);
        let bytes = cat(&[&[0x82], &mp_str("x"), &[0xc3], &mp_str("y"), &[0xc2]]);
        let v = Value::Map(
            [
                ("x".into(), Value::Bool(true)),
                ("y".into(), Value::Bool(false)),
            ]
            .into(),
        );
        assert_eq!(decode(&bytes, &map), Ok(v.clone()));
        assert_eq!(enc(&v, &map), bytes);

        let tuple = Type::Tuple(vec![Type::String, Type::Number]);
        let bytes = cat(&[&[0x92], &mp_str("a"), &[0x07]]);
        let v = Value::Tuple(vec![Value::string("a"), Value::int(7)]);
        assert_eq!(decode(&bytes, &tuple), Ok(v.clone()));
        assert_eq!(enc(&v, &tuple), bytes);
        assert!(err(&[0x91, 0x01], &tuple).contains("exactly 2 elements"));

        // array16 / map16 headers for 16 elements.
        let long = Value::List((0..16).map(Value::int).collect());
        let bytes = enc(&long, &Type::list(Type::Number));
        assert_eq!(bytes[..3], [0xdc, 0x00, 0x10]);
        assert_eq!(decode(&bytes, &Type::list(Type::Number)), Ok(long));
        assert_eq!(
            decode(&[0xdd, 0, 0, 0, 1, 0x01], &Type::list(Type::Number)),
            Ok(Value::List(vec![Value::int(1)]))
        );
        assert_eq!(decode(&[0xde, 0, 0], &map), Ok(Value::Map(BTreeMap::new())));
        assert_eq!(
            decode(&[0xdf, 0, 0, 0, 0], &map),
            Ok(Value::Map(BTreeMap::new()))
        );
        assert_eq!(err(&[0x81, 0x01, 0xc3], &map), "expected string, got int");
    }

    #[test]
    fn dynamic_reads_type_as_bin_or_str() {
        let ty_json = br#""string""#;
        let bin = cat(&[&[0x92, 0xc4, ty_json.len() as u8], ty_json, &mp_str("hi")]);
        let want = Value::Dynamic(Type::String, Box::new(Value::string("hi")));
        assert_eq!(decode(&bin, &Type::Dynamic), Ok(want.clone()));
        let str_form = cat(&[&[0x92, 0xa0 | ty_json.len() as u8], ty_json, &mp_str("hi")]);
        assert_eq!(decode(&str_form, &Type::Dynamic), Ok(want.clone()));
        assert_eq!(enc(&want, &Type::Dynamic), bin);

        let list_json = br#"["list","number"]"#;
        let bytes = cat(&[
            &[0x92, 0xc4, list_json.len() as u8],
            list_json,
            &[0x92, 0x01, 0xd4, 0, 0],
        ]);
        assert_eq!(
            decode(&bytes, &Type::Dynamic),
            Ok(Value::Dynamic(
                Type::list(Type::Number),
                Box::new(Value::List(vec![Value::int(1), Value::Unknown]))
            ))
        );

        assert!(
            err(&[0x92, 0xc4, 0x03, b'"', b'x', b'"', 0x01], &Type::Dynamic).contains("invalid")
        );
        assert!(err(&[0x92, 0xc4, 0x01, b'[', 0x01], &Type::Dynamic).contains("not JSON"));
        assert!(err(&[0x91, 0x01], &Type::Dynamic).contains("[type, value] pair"));
        assert!(err(&[0x92, 0x01, 0x01], &Type::Dynamic).contains("expected type JSON"));
        let dyn_json = br#""dynamic""#;
        let bytes = cat(&[&[0x92, 0xc4, dyn_json.len() as u8], dyn_json, &[0xc0]]);
        assert!(err(&bytes, &Type::Dynamic).contains("cannot itself be"));
    }

    #[test]
    fn plain_values_in_dynamic_slots_get_their_evident_type() {
        let v = Value::object([("n", Value::int(1)), ("tags", Value::string_set(["a"]))]);
        let bytes = enc(&v, &Type::Dynamic);
        let want_ty = obj(&[("n", Type::Number), ("tags", Type::set(Type::String))]);
        assert_eq!(
            decode(&bytes, &Type::Dynamic),
            Ok(Value::Dynamic(want_ty, Box::new(v)))
        );

        let msg = encode(&Value::List(vec![]), &Type::Dynamic)
            .expect_err("empty list")
            .0;
        assert!(msg.contains("cannot tell"), "{msg}");
        let mixed = Value::List(vec![Value::int(1), Value::string("a")]);
        assert!(encode(&mixed, &Type::Dynamic).is_err());
        let bad = Value::Dynamic(Type::Dynamic, Box::new(Value::Null));
        assert!(encode(&bad, &Type::Dynamic).is_err());
    }

    #[test]
    fn a_huge_element_count_reserves_a_bounded_amount() {
        assert_eq!(preallocation(3, 100), 3);
        assert_eq!(preallocation(1_000_000, 10), 10);
        assert_eq!(preallocation(256 << 20, 256 << 20), 4096);
        // A list header announcing 2^32 - 1 elements over 1 MiB of input is an
        // error about the input, decoded without reserving for the count.
        let mut bytes = vec![0xdd, 0xff, 0xff, 0xff, 0xff];
        bytes.extend(std::iter::repeat_n(0xc0, 1 << 20));
        assert!(decode(&bytes, &Type::List(Box::new(Type::String))).is_err());
    }

    #[test]
    fn hostile_input_is_an_error_not_a_crash() {
        // A length prefix promising four billion elements.
        let msg = err(
            &[0xdd, 0xff, 0xff, 0xff, 0xff, 0x01],
            &Type::list(Type::Number),
        );
        assert!(msg.contains("end of input"), "{msg}");
        let msg = err(&[0xdb, 0xff, 0xff, 0xff, 0xff], &Type::String);
        assert!(msg.contains("end of input"), "{msg}");
        // Nesting far deeper than the limit.
        let mut ty = Type::Number;
        for _ in 0..200 {
            ty = Type::list(ty);
        }
        let mut bytes = vec![0x91; 200];
        bytes.push(0x01);
        assert!(err(&bytes, &ty).contains("nested more than 64"));
        // Within the limit, deep nesting works.
        let mut ty = Type::Number;
        for _ in 0..MAX_DEPTH {
            ty = Type::list(ty);
        }
        let mut bytes = vec![0x91; MAX_DEPTH];
        bytes.push(0x01);
        assert!(decode(&bytes, &ty).is_ok());

        assert_eq!(err(&[], &Type::String), "unexpected end of input");
        assert!(err(&[0xc1], &Type::Bool).contains("reserved"));
        assert!(err(&[0xc3, 0xc3], &Type::Bool).contains("trailing"));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn round_trips_any_value((ty, value) in arb_typed_value(true)) {
            let bytes = encode(&value, &ty).map_err(|e| TestCaseError::fail(e.0))?;
            let back = decode(&bytes, &ty).map_err(|e| TestCaseError::fail(format!("{e} in {bytes:02x?}")))?;
            prop_assert!(back.same_as(&value), "{value:?}\n -> {bytes:02x?}\n -> {back:?}");
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(
            ty in arb_type(true),
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let _ = decode(&bytes, &ty);
        }

        #[test]
        fn decoding_mutated_encodings_never_panics(
            (ty, value) in arb_typed_value(true),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let mut bytes = encode(&value, &ty).map_err(|e| TestCaseError::fail(e.0))?;
            for (at, byte) in flips {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            let _ = decode(&bytes, &ty);
            let cut = bytes.len() / 2;
            let _ = decode(&bytes[..cut], &ty);
        }
    }
}
