//! Feeds arbitrary bytes to the msgpack and JSON decoders under a few schema
//! types. Neither may panic, and whatever decodes must survive an encode and
//! decode again unchanged (sets compared without order).

#![no_main]

mod tf;

/// The resource schema, compiled from its source like the codec (its only
/// dependency is `crate::tf`).
#[path = "../../src/rotation/schema.rs"]
#[allow(dead_code)]
mod rotation_schema;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tf::types::Type;

fn object(fields: &[(&str, Type)]) -> Type {
    Type::Object(
        fields
            .iter()
            .map(|(k, t)| (k.to_string(), t.clone()))
            .collect::<BTreeMap<_, _>>(),
    )
}

/// The state type of `rdsrot_rotation`, from the resource's own schema.
fn rotation_type() -> Type {
    rotation_schema::schema().block.value_type()
}

/// Every kind of type at once, with dynamic slots at two depths.
fn rich_type() -> Type {
    object(&[
        ("d", Type::Dynamic),
        ("m", Type::map(Type::list(Type::Dynamic))),
        (
            "s",
            Type::set(object(&[("n", Type::Number), ("b", Type::Bool)])),
        ),
        (
            "t",
            Type::Tuple(vec![Type::String, Type::Number, Type::set(Type::String)]),
        ),
    ])
}

fn types() -> &'static [Type] {
    static TYPES: OnceLock<Vec<Type>> = OnceLock::new();
    TYPES.get_or_init(|| {
        vec![
            rotation_type(),
            rich_type(),
            Type::Dynamic,
            Type::list(Type::Number),
        ]
    })
}

fuzz_target!(|data: &[u8]| {
    for ty in types() {
        if let Ok(value) = tf::msgpack::decode(data, ty) {
            let bytes = tf::msgpack::encode(&value, ty).expect("a decoded value encodes");
            let again = tf::msgpack::decode(&bytes, ty).expect("our own encoding decodes");
            assert!(
                again.same_as(&value),
                "msgpack round trip changed {value:?} into {again:?}"
            );
        }
        if let Ok(value) = tf::json::decode(data, ty) {
            let bytes = tf::json::encode(&value, ty).expect("a decoded value encodes");
            let again = tf::json::decode(&bytes, ty).expect("our own encoding decodes");
            assert!(
                again.same_as(&value),
                "JSON round trip changed {value:?} into {again:?}"
            );
        }
    }
});
