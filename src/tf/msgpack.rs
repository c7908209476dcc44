//! DynamicValue msgpack encoding, driven by the schema type.
//! (Implementation in progress: see the values issue.)

use super::types::Type;
use super::value::Value;

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct DecodeError(pub String);

/// Decodes `bytes` as a value of type `ty`. Never panics.
pub fn decode(bytes: &[u8], ty: &Type) -> Result<Value, DecodeError> {
    let _ = (bytes, ty);
    Err(DecodeError("msgpack decoding not built yet".into()))
}

/// Encodes `value` as type `ty`, writing nil for null and ext 0 for unknown.
pub fn encode(value: &Value, ty: &Type) -> Result<Vec<u8>, DecodeError> {
    let _ = (value, ty);
    Err(DecodeError("msgpack encoding not built yet".into()))
}
