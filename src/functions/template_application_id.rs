//! `template_application_id(rotation_type, region)`: the Serverless
//! Application Repository application that `rdsrot_rotation` deploys for a
//! `rotation_type` in a region, from the repository of that region's
//! partition.

use crate::parts::ProviderFunction;
use crate::provider::check_region;
use crate::rotation::template;
use crate::rotation::validate::ROTATION_TYPES;
use crate::tf::{Function, FunctionError, Parameter, Type, Value};

use super::text;

#[derive(Debug, Default, Clone, Copy)]
pub struct TemplateApplicationId;

impl ProviderFunction for TemplateApplicationId {
    fn name(&self) -> &'static str {
        "template_application_id"
    }

    fn definition(&self) -> Function {
        Function {
            parameters: vec![
                Parameter::new(
                    "rotation_type",
                    Type::String,
                    "A `rotation_type` of `rdsrot_rotation`, e.g. `postgresql_multi_user`.",
                ),
                Parameter::new(
                    "region",
                    Type::String,
                    "The region the rotation runs in, e.g. `eu-west-1`; it picks the partition.",
                ),
            ],
            variadic_parameter: None,
            return_type: Type::String,
            summary: "The rotation template's Serverless Application Repository ARN".into(),
            description: "The ARN of the Serverless Application Repository application that \
`rdsrot_rotation` deploys for `rotation_type` in `region`. AWS publishes the rotation templates \
from one account and home region per partition (`aws`, `aws-cn`, `aws-us-gov`), so the ARN \
names that home region, not `region` itself."
                .into(),
            deprecation_message: String::new(),
        }
    }

    fn call(&self, arguments: &[Value]) -> Result<Value, FunctionError> {
        let rotation_type = text(arguments, 0, "rotation_type")?;
        let region = text(arguments, 1, "region")?;
        check_region(region).map_err(|e| FunctionError::argument(1, e))?;
        template::find(rotation_type)
            .map(|t| Value::string(t.application_arn(region)))
            .ok_or_else(|| {
                FunctionError::argument(
                    0,
                    format!(
                        "rotation_type {rotation_type:?} is not one of {}.",
                        ROTATION_TYPES.join(", ")
                    ),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(rotation_type: &str, region: &str) -> Result<Value, FunctionError> {
        TemplateApplicationId.call(&[Value::string(rotation_type), Value::string(region)])
    }

    #[test]
    fn the_arn_is_the_one_the_resource_deploys() {
        for t in ROTATION_TYPES {
            for region in ["us-east-1", "eu-west-1", "cn-northwest-1", "us-gov-east-1"] {
                assert_eq!(
                    call(t, region),
                    Ok(Value::string(
                        template::find(t)
                            .expect("known type")
                            .application_arn(region)
                    )),
                    "{t} in {region}"
                );
            }
        }
        assert_eq!(
            call("postgresql_multi_user", "eu-west-1"),
            Ok(Value::string(
                "arn:aws:serverlessrepo:us-east-1:297356227824:applications/\
SecretsManagerRDSPostgreSQLRotationMultiUser"
            ))
        );
        assert_eq!(
            call("generic", "cn-north-1"),
            Ok(Value::string(
                "arn:aws-cn:serverlessrepo:cn-north-1:193023089310:applications/\
SecretsManagerRotationTemplate"
            ))
        );
    }

    #[test]
    fn bad_arguments_name_the_argument() {
        let e = call("oracle_something", "us-east-1").expect_err("type");
        assert_eq!(e.argument, Some(0));
        assert!(e.text.contains("\"oracle_something\"") && e.text.contains("generic"));
        let e = call("generic", "US East").expect_err("region");
        assert_eq!(e.argument, Some(1));
        assert!(e.text.contains("\"US East\""));
        let e = call("generic", "").expect_err("empty region");
        assert_eq!(e.argument, Some(1));
    }
}
