//! Random types and values conforming to them, for property tests of the
//! codecs.

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;

use super::types::Type;
use super::value::{Number, Value};

/// A type up to a few levels deep. `dynamic` appears only when
/// `allow_dynamic`: the concrete type inside a dynamic value never holds
/// `dynamic` itself.
pub fn arb_type(allow_dynamic: bool) -> BoxedStrategy<Type> {
    let leaf = if allow_dynamic {
        prop_oneof![
            Just(Type::Bool),
            Just(Type::Number),
            Just(Type::String),
            Just(Type::Dynamic)
        ]
        .boxed()
    } else {
        prop_oneof![Just(Type::Bool), Just(Type::Number), Just(Type::String)].boxed()
    };
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(Type::list),
            inner.clone().prop_map(Type::set),
            inner.clone().prop_map(Type::map),
            btree_map("[a-z_]{1,8}", inner.clone(), 0..4).prop_map(Type::Object),
            vec(inner, 0..4).prop_map(Type::Tuple),
        ]
    })
    .boxed()
}

/// Any number form the codecs must carry: i64, finite f64 and decimals
/// beyond both.
pub fn arb_number() -> BoxedStrategy<Number> {
    prop_oneof![
        any::<i64>().prop_map(Number::Int),
        // Small ints exercise every msgpack int width and the fixints.
        (-40i64..140).prop_map(Number::Int),
        (-70_000i64..70_000).prop_map(Number::Int),
        prop_oneof![
            any::<f64>().prop_filter("finite", |f| f.is_finite()),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(0.1),
            Just(-0.0),
            Just(1e300),
        ]
        .prop_map(Number::Float),
        "-?[1-9][0-9]{19,40}".prop_map(Number::Big),
        "-?[1-9][0-9]{0,3}\\.[0-9]{16,30}[1-9]".prop_map(Number::Big),
    ]
    .boxed()
}

/// A value of type `ty`, possibly null, and possibly (when `with_unknown`)
/// unknown at any level.
pub fn arb_value(ty: &Type, with_unknown: bool) -> BoxedStrategy<Value> {
    let known = arb_known(ty, with_unknown);
    if with_unknown {
        prop_oneof![1 => Just(Value::Null), 1 => Just(Value::Unknown), 6 => known].boxed()
    } else {
        prop_oneof![1 => Just(Value::Null), 6 => known].boxed()
    }
}

fn arb_known(ty: &Type, with_unknown: bool) -> BoxedStrategy<Value> {
    match ty {
        Type::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        Type::Number => arb_number().prop_map(Value::Number).boxed(),
        Type::String => any::<String>().prop_map(Value::String).boxed(),
        Type::List(elem) => vec(arb_value(elem, with_unknown), 0..4)
            .prop_map(Value::List)
            .boxed(),
        Type::Set(elem) => vec(arb_value(elem, with_unknown), 0..4)
            .prop_map(Value::Set)
            .boxed(),
        Type::Map(elem) => btree_map(any::<String>(), arb_value(elem, with_unknown), 0..4)
            .prop_map(Value::Map)
            .boxed(),
        Type::Object(attrs) => {
            let names: Vec<String> = attrs.keys().cloned().collect();
            let values: Vec<_> = attrs.values().map(|t| arb_value(t, with_unknown)).collect();
            values
                .prop_map(move |vs| Value::Object(names.iter().cloned().zip(vs).collect()))
                .boxed()
        }
        Type::Tuple(elems) => elems
            .iter()
            .map(|t| arb_value(t, with_unknown))
            .collect::<Vec<_>>()
            .prop_map(Value::Tuple)
            .boxed(),
        Type::Dynamic => arb_type(false)
            .prop_flat_map(move |t| {
                arb_value(&t, with_unknown)
                    .prop_map(move |v| Value::Dynamic(t.clone(), Box::new(v)))
            })
            .boxed(),
    }
}

/// A type together with a value of it.
pub fn arb_typed_value(with_unknown: bool) -> BoxedStrategy<(Type, Value)> {
    arb_type(true)
        .prop_flat_map(move |t| {
            let v = arb_value(&t, with_unknown);
            (Just(t), v)
        })
        .boxed()
}
