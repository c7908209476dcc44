//! The provider functions (`provider::rdsrot::<name>`, Terraform 1.8 and
//! later), one module each. They are pure: no AWS call, no configuration,
//! the same answer as the resource gives for the same input.
//!
//! - `rotation_interval_days`: the rotation interval that
//!   `max_credential_age_days` sets;
//! - `template_application_id`: the Serverless Application Repository
//!   application a `rotation_type` deploys, in a region's partition.

mod rotation_interval_days;
mod template_application_id;

pub use rotation_interval_days::RotationIntervalDays;
pub use template_application_id::TemplateApplicationId;

use crate::tf::{FunctionError, Value};

/// The whole number passed as argument `index`, named `name` in the error.
fn whole_number(arguments: &[Value], index: usize, name: &str) -> Result<i64, FunctionError> {
    match arguments.get(index) {
        Some(Value::Number(n)) => n.as_i64().ok_or_else(|| {
            FunctionError::argument(
                index,
                format!("{name} must be a whole number; got {}.", number_text(n)),
            )
        }),
        _ => Err(FunctionError::argument(
            index,
            format!("{name} is required."),
        )),
    }
}

/// The string passed as argument `index`, named `name` in the error.
fn text<'a>(arguments: &'a [Value], index: usize, name: &str) -> Result<&'a str, FunctionError> {
    arguments
        .get(index)
        .and_then(Value::as_str)
        .ok_or_else(|| FunctionError::argument(index, format!("{name} is required.")))
}

fn number_text(n: &crate::tf::Number) -> String {
    match n {
        crate::tf::Number::Int(i) => i.to_string(),
        crate::tf::Number::Float(f) => f.to_string(),
        crate::tf::Number::Big(s) => s.clone(),
    }
}
