//! `rotation_interval_days(max_credential_age_days, strategy)`: the
//! rotation interval that keeps every credential younger than the given
//! age, by the same arithmetic as the resource's `max_credential_age_days`.

use crate::parts::ProviderFunction;
use crate::rotation::schedule::days_for_max_credential_age;
use crate::rotation::validate::ROTATION_TYPES;
use crate::tf::{Function, FunctionError, Parameter, Type, Value};

use super::{text, whole_number};

const STRATEGIES: [&str; 2] = ["single_user", "multi_user"];

#[derive(Debug, Default, Clone, Copy)]
pub struct RotationIntervalDays;

/// Whether `strategy` rotates with alternating users. A full
/// `rotation_type` is accepted too, so that a configuration can pass the
/// one it gives the resource; `generic` then counts as single-user, as it
/// does for the resource.
fn is_multi_user(strategy: &str) -> Option<bool> {
    if STRATEGIES.contains(&strategy) || ROTATION_TYPES.contains(&strategy) {
        Some(strategy.ends_with("multi_user"))
    } else {
        None
    }
}

impl ProviderFunction for RotationIntervalDays {
    fn name(&self) -> &'static str {
        "rotation_interval_days"
    }

    fn definition(&self) -> Function {
        Function {
            parameters: vec![
                Parameter::new(
                    "max_credential_age_days",
                    Type::Number,
                    "The oldest a credential may get, in days.",
                ),
                Parameter::new(
                    "strategy",
                    Type::String,
                    "`single_user` or `multi_user` (alternating users: also an existing Lambda or \
`generic` given a master secret), or a `rotation_type` of `rdsrot_rotation` (`generic` counts as \
single-user).",
                ),
            ],
            variadic_parameter: None,
            return_type: Type::Number,
            summary: "The rotation interval that keeps credentials younger than an age".into(),
            description: "The number of days between rotations that keeps every credential \
younger than `max_credential_age_days`, as `rotation_rules.max_credential_age_days` sets it. \
A rotation may run up to a day late (the end of its window), so each interval counts a day \
longer: one day less with a single user; with alternating users (`multi_user`), whose previous \
password stays valid one more interval, a day less than half. The result is between 1 and 1000."
                .into(),
            deprecation_message: String::new(),
        }
    }

    fn call(&self, arguments: &[Value]) -> Result<Value, FunctionError> {
        let max_age = whole_number(arguments, 0, "max_credential_age_days")?;
        let strategy = text(arguments, 1, "strategy")?;
        let multi_user = is_multi_user(strategy).ok_or_else(|| {
            FunctionError::argument(
                1,
                format!(
                    "strategy {strategy:?} is not single_user, multi_user or a rotation_type \
({}).",
                    ROTATION_TYPES.join(", ")
                ),
            )
        })?;
        days_for_max_credential_age(max_age, multi_user)
            .map(Value::int)
            .map_err(|e| FunctionError::argument(0, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tf::Number;

    fn call(max_age: Value, strategy: &str) -> Result<Value, FunctionError> {
        RotationIntervalDays.call(&[max_age, Value::string(strategy)])
    }

    #[test]
    fn a_day_less_than_half_for_multi_user_and_one_day_less_for_single_user() {
        assert_eq!(call(Value::int(90), "multi_user"), Ok(Value::int(44)));
        assert_eq!(call(Value::int(91), "multi_user"), Ok(Value::int(44)));
        assert_eq!(call(Value::int(90), "single_user"), Ok(Value::int(89)));
        assert_eq!(call(Value::int(2), "single_user"), Ok(Value::int(1)));
    }

    #[test]
    fn a_rotation_type_counts_as_its_strategy() {
        assert_eq!(
            call(Value::int(30), "postgresql_multi_user"),
            Ok(Value::int(14))
        );
        assert_eq!(
            call(Value::int(30), "mysql_single_user"),
            Ok(Value::int(29))
        );
        assert_eq!(call(Value::int(30), "generic"), Ok(Value::int(29)));
    }

    #[test]
    fn every_answer_matches_the_resource_arithmetic() {
        for age in [-5, 0, 1, 2, 3, 4, 60, 1001, 2001, 2002, 2003, 2004] {
            for (strategy, multi) in [("single_user", false), ("multi_user", true)] {
                let expected = days_for_max_credential_age(age, multi).map(Value::int);
                let got = call(Value::int(age), strategy).map_err(|e| e.text);
                assert_eq!(got.is_ok(), expected.is_ok(), "{age} {strategy}");
                if let Ok(v) = expected {
                    assert_eq!(got, Ok(v));
                }
            }
        }
    }

    #[test]
    fn bad_arguments_name_the_argument() {
        let e = call(Value::int(1), "multi_user").expect_err("0 days");
        assert_eq!(e.argument, Some(0));
        assert!(e.text.contains("max_credential_age_days = 1"), "{}", e.text);
        let e = call(Value::Number(Number::Float(30.5)), "single_user").expect_err("fraction");
        assert_eq!(e.argument, Some(0));
        assert!(e.text.contains("whole number") && e.text.contains("30.5"));
        let e = call(Value::int(30), "dual_user").expect_err("strategy");
        assert_eq!(e.argument, Some(1));
        assert!(e.text.contains("\"dual_user\"") && e.text.contains("multi_user"));
        let e = RotationIntervalDays
            .call(&[Value::int(30), Value::Null])
            .expect_err("null");
        assert_eq!(e.argument, Some(1));
    }

    #[test]
    fn the_definition_takes_a_number_and_a_string_and_returns_a_number() {
        let d = RotationIntervalDays.definition();
        let types: Vec<&Type> = d.parameters.iter().map(|p| &p.ty).collect();
        assert_eq!(types, [&Type::Number, &Type::String]);
        assert_eq!(d.return_type, Type::Number);
        assert!(d.variadic_parameter.is_none());
    }
}
