//! Encode/decode speed of a realistic `rdsrot_rotation` state, in ns per
//! operation. Run with `cargo bench --bench values`; nothing here asserts a
//! speed.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

use rdsrot::tf::{json, msgpack, Type, Value};

fn object_type(fields: &[(&str, Type)]) -> Type {
    Type::Object(
        fields
            .iter()
            .map(|(k, t)| (k.to_string(), t.clone()))
            .collect::<BTreeMap<_, _>>(),
    )
}

fn rotation_state() -> (Type, Value) {
    let rules_ty = object_type(&[
        ("automatically_after_days", Type::Number),
        ("schedule_expression", Type::String),
        ("max_credential_age_days", Type::Number),
        ("duration", Type::String),
    ]);
    let timeouts_ty = object_type(&[
        ("create", Type::String),
        ("update", Type::String),
        ("delete", Type::String),
    ]);
    let string_attrs = [
        ("id", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:app/db-AbCdEf"),
        ("secret_id", "app/db"),
        ("secret_arn", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:app/db-AbCdEf"),
        ("rotation_type", "postgresql_multi_user"),
        ("rotation_lambda_arn", "arn:aws:lambda:eu-west-1:123456789012:function:rdsrot-app-db"),
        ("rotation_lambda_role_arn", "arn:aws:iam::123456789012:role/serverlessrepo-rdsrot-app-db-RotationRole"),
        ("stack_id", "arn:aws:cloudformation:eu-west-1:123456789012:stack/serverlessrepo-rdsrot-app-db/0f1e2d3c"),
        ("template_version", "1.1.671"),
        ("function_name", "rdsrot-app-db"),
        ("endpoint", "https://secretsmanager.eu-west-1.amazonaws.com"),
        ("master_secret_arn", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:app/master-XyZ123"),
        ("permission_statement_id", "rdsrot-secretsmanager-invoke"),
    ];
    let mut fields: Vec<(&str, Type)> = string_attrs
        .iter()
        .map(|(k, _)| (*k, Type::String))
        .collect();
    fields.extend([
        ("master_secret_kms_key_arn", Type::String),
        ("kms_key_arn", Type::String),
        ("exclude_characters", Type::String),
        ("vpc_subnet_ids", Type::set(Type::String)),
        ("vpc_security_group_ids", Type::set(Type::String)),
        ("rotate_immediately", Type::Bool),
        ("enabled", Type::Bool),
        ("rotation_rules", Type::list(rules_ty)),
        ("timeouts", timeouts_ty),
    ]);
    let ty = object_type(&fields);

    let mut value: Vec<(&str, Value)> = string_attrs
        .iter()
        .map(|(k, v)| (*k, Value::string(*v)))
        .collect();
    value.extend([
        (
            "vpc_subnet_ids",
            Value::string_set(["subnet-0a1b2c3d", "subnet-4e5f6a7b", "subnet-8c9d0e1f"]),
        ),
        (
            "vpc_security_group_ids",
            Value::string_set(["sg-0123456789abcdef0"]),
        ),
        ("rotate_immediately", Value::Bool(true)),
        ("enabled", Value::Bool(true)),
        (
            "rotation_rules",
            Value::List(vec![Value::object([
                ("automatically_after_days", Value::int(45)),
                ("max_credential_age_days", Value::int(90)),
                ("duration", Value::string("3h")),
            ])]),
        ),
    ]);
    (ty, Value::object(value))
}

fn bench(name: &str, iterations: u32, mut op: impl FnMut()) {
    for _ in 0..iterations / 10 {
        op();
    }
    let start = Instant::now();
    for _ in 0..iterations {
        op();
    }
    let per_op = start.elapsed().as_nanos() / iterations as u128;
    println!("{name:<24} {per_op:>8} ns/op");
}

fn main() {
    let (ty, value) = rotation_state();
    let packed = msgpack::encode(&value, &ty).expect("the sample state fits its type");
    let text = json::encode(&value, &ty).expect("the sample state is wholly known");
    println!(
        "state: {} bytes msgpack, {} bytes JSON",
        packed.len(),
        text.len()
    );
    let n = 20_000;
    bench("msgpack encode", n, || {
        black_box(msgpack::encode(black_box(&value), &ty).ok());
    });
    bench("msgpack decode", n, || {
        black_box(msgpack::decode(black_box(&packed), &ty).ok());
    });
    bench("json encode", n, || {
        black_box(json::encode(black_box(&value), &ty).ok());
    });
    bench("json decode", n, || {
        black_box(json::decode(black_box(&text), &ty).ok());
    });
}
