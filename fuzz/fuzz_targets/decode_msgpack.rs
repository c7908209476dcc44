//! Feeds arbitrary bytes to the msgpack and JSON decoders under a few schema
//! types. Neither may panic, and whatever decodes must survive an encode and
//! decode again unchanged (sets compared without order).

#![no_main]

mod tf;

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

/// The state type of `rdsrot_rotation`: attributes plus the
/// `rotation_rules` (list) and `timeouts` (single) blocks.
fn rotation_type() -> Type {
    let rules = object(&[
        ("automatically_after_days", Type::Number),
        ("schedule_expression", Type::String),
        ("max_credential_age_days", Type::Number),
        ("duration", Type::String),
    ]);
    let timeouts = object(&[
        ("create", Type::String),
        ("update", Type::String),
        ("delete", Type::String),
    ]);
    object(&[
        ("id", Type::String),
        ("secret_id", Type::String),
        ("secret_arn", Type::String),
        ("rotation_type", Type::String),
        ("rotation_lambda_arn", Type::String),
        ("rotation_lambda_role_arn", Type::String),
        ("stack_id", Type::String),
        ("template_version", Type::String),
        ("function_name", Type::String),
        ("endpoint", Type::String),
        ("master_secret_arn", Type::String),
        ("master_secret_kms_key_arn", Type::String),
        ("kms_key_arn", Type::String),
        ("exclude_characters", Type::String),
        ("vpc_subnet_ids", Type::set(Type::String)),
        ("vpc_security_group_ids", Type::set(Type::String)),
        ("rotate_immediately", Type::Bool),
        ("enabled", Type::Bool),
        ("permission_statement_id", Type::String),
        ("rotation_rules", Type::list(rules)),
        ("timeouts", timeouts),
    ])
}

/// Every kind of type at once, with dynamic slots at two depths.
fn rich_type() -> Type {
    object(&[
        ("d", Type::Dynamic),
        ("m", Type::map(Type::list(Type::Dynamic))),
        ("s", Type::set(object(&[("n", Type::Number), ("b", Type::Bool)]))),
        ("t", Type::Tuple(vec![Type::String, Type::Number, Type::set(Type::String)])),
    ])
}

fn types() -> &'static [Type] {
    static TYPES: OnceLock<Vec<Type>> = OnceLock::new();
    TYPES.get_or_init(|| vec![rotation_type(), rich_type(), Type::Dynamic, Type::list(Type::Number)])
}

fuzz_target!(|data: &[u8]| {
    for ty in types() {
        if let Ok(value) = tf::msgpack::decode(data, ty) {
            let bytes = tf::msgpack::encode(&value, ty).expect("a decoded value encodes");
            let again = tf::msgpack::decode(&bytes, ty).expect("our own encoding decodes");
            assert!(again.same_as(&value), "msgpack round trip changed {value:?} into {again:?}");
        }
        if let Ok(value) = tf::json::decode(data, ty) {
            let bytes = tf::json::encode(&value, ty).expect("a decoded value encodes");
            let again = tf::json::decode(&bytes, ty).expect("our own encoding decodes");
            assert!(again.same_as(&value), "JSON round trip changed {value:?} into {again:?}");
        }
    }
});
