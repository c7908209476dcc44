//! Serverless Application Repository: the rotation templates, and the
//! change set that deploys one as a CloudFormation stack.

use aws_sdk_serverlessapplicationrepository::types::{ParameterValue, Tag};

use super::arn::partition_of_region;
use super::error::{classify, AwsError};
use super::pacing::Quota;
use super::retry::{CHANGE_SET_CREATION, READ};
use super::wait::Deadline;
use super::Clients;

/// The repository deploys a change set's stack under this prefix followed by
/// the stack name it was given.
pub const STACK_NAME_PREFIX: &str = "serverlessrepo-";

/// The CloudFormation name of the stack deployed as `stack_name`.
pub fn deployed_stack_name(stack_name: &str) -> String {
    format!("{STACK_NAME_PREFIX}{stack_name}")
}

/// The SAR application behind each `rotation_type`.
pub fn application_name(rotation_type: &str) -> Option<&'static str> {
    Some(match rotation_type {
        "mysql_single_user" => "SecretsManagerRDSMySQLRotationSingleUser",
        "mysql_multi_user" => "SecretsManagerRDSMySQLRotationMultiUser",
        "postgresql_single_user" => "SecretsManagerRDSPostgreSQLRotationSingleUser",
        "postgresql_multi_user" => "SecretsManagerRDSPostgreSQLRotationMultiUser",
        "generic" => "SecretsManagerRotationTemplate",
        _ => return None,
    })
}

/// The `rotation_type` of an application ARN or name.
pub fn rotation_type_of_application(application: &str) -> Option<&'static str> {
    let name = application.rsplit('/').next()?;
    [
        "mysql_single_user",
        "mysql_multi_user",
        "postgresql_single_user",
        "postgresql_multi_user",
        "generic",
    ]
    .into_iter()
    .find(|t| application_name(t) == Some(name))
}

/// The application ARN in the partition of `region`: AWS publishes the
/// rotation applications from one account and region per partition.
pub fn application_arn(rotation_type: &str, region: &str) -> Option<String> {
    let name = application_name(rotation_type)?;
    let (partition, home, account) = match partition_of_region(region) {
        "aws-cn" => ("aws-cn", "cn-north-1", "193023089310"),
        "aws-us-gov" => ("aws-us-gov", "us-gov-west-1", "023102451235"),
        _ => ("aws", "us-east-1", "297356227824"),
    };
    Some(format!(
        "arn:{partition}:serverlessrepo:{home}:{account}:applications/{name}"
    ))
}

/// The parameters each template declares, for when the repository cannot
/// tell us (GetApplication denied or unavailable).
pub fn known_parameters(rotation_type: &str) -> &'static [&'static str] {
    const SINGLE: &[&str] = &[
        "endpoint",
        "functionName",
        "vpcSubnetIds",
        "vpcSecurityGroupIds",
        "excludeCharacters",
        "kmsKeyArn",
    ];
    const MULTI: &[&str] = &[
        "endpoint",
        "functionName",
        "vpcSubnetIds",
        "vpcSecurityGroupIds",
        "excludeCharacters",
        "kmsKeyArn",
        "masterSecretArn",
        "masterSecretKmsKeyArn",
    ];
    const GENERIC: &[&str] = &[
        "endpoint",
        "functionName",
        "vpcSubnetIds",
        "vpcSecurityGroupIds",
        "kmsKeyArn",
    ];
    match rotation_type {
        "generic" => GENERIC,
        t if t.ends_with("_multi_user") => MULTI,
        _ => SINGLE,
    }
}

/// The parameters the template version declares, with their defaults,
/// from the repository.
pub async fn template_parameters(
    c: &Clients,
    d: &Deadline,
    application_arn: &str,
    version: &str,
) -> Result<Vec<(String, Option<String>)>, AwsError> {
    let out = c
        .call(d, &READ, Quota::Unpublished, || async {
            c.serverlessrepo
                .get_application()
                .application_id(application_arn)
                .semantic_version(version)
                .send()
                .await
                .map_err(classify)
        })
        .await?;
    Ok(out
        .version()
        .map(|v| {
            v.parameter_definitions()
                .iter()
                .filter_map(|p| {
                    Some((p.name()?.to_string(), p.default_value().map(str::to_string)))
                })
                .collect()
        })
        .unwrap_or_default())
}

#[derive(Debug, Clone)]
pub struct ChangeSet {
    pub change_set_id: String,
    pub stack_id: String,
}

/// What a change set deploys.
#[derive(Debug, Clone, Copy)]
pub struct ChangeSetRequest<'a> {
    pub application_arn: &'a str,
    pub version: &'a str,
    /// The repository's stack name: the stack is `serverlessrepo-<this>`.
    pub stack_name: &'a str,
    pub parameters: &'a [(String, String)],
    pub tags: &'a [(String, String)],
    /// The same for every attempt of one deployment, so that a replay after
    /// a lost answer is the same request.
    pub client_token: &'a str,
}

/// Asks the repository for a change set that creates or updates the stack.
pub async fn create_change_set(
    c: &Clients,
    d: &Deadline,
    r: ChangeSetRequest<'_>,
) -> Result<ChangeSet, AwsError> {
    let out = c
        .call(d, &CHANGE_SET_CREATION, Quota::Unpublished, || async {
            let mut req = c
                .serverlessrepo
                .create_cloud_formation_change_set()
                .application_id(r.application_arn)
                .semantic_version(r.version)
                .stack_name(r.stack_name)
                .client_token(r.client_token)
                .capabilities("CAPABILITY_IAM")
                .capabilities("CAPABILITY_RESOURCE_POLICY");
            for (name, value) in r.parameters {
                req = req
                    .parameter_overrides(ParameterValue::builder().name(name).value(value).build());
            }
            for (key, value) in r.tags {
                req = req.tags(Tag::builder().key(key).value(value).build());
            }
            req.send().await.map_err(classify)
        })
        .await?;
    match (out.change_set_id(), out.stack_id()) {
        (Some(cs), Some(stack)) => Ok(ChangeSet {
            change_set_id: cs.to_string(),
            stack_id: stack.to_string(),
        }),
        _ => Err(AwsError::Failed(
            "the repository answered without a change set or stack id".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn application_arns_per_partition() {
        assert_eq!(
            application_arn("mysql_single_user", "eu-west-1").as_deref(),
            Some("arn:aws:serverlessrepo:us-east-1:297356227824:applications/SecretsManagerRDSMySQLRotationSingleUser")
        );
        assert_eq!(
            application_arn("generic", "cn-northwest-1").as_deref(),
            Some("arn:aws-cn:serverlessrepo:cn-north-1:193023089310:applications/SecretsManagerRotationTemplate")
        );
        assert!(
            application_arn("postgresql_multi_user", "us-gov-east-1").is_some_and(
                |a| a.starts_with("arn:aws-us-gov:serverlessrepo:us-gov-west-1:023102451235:")
            )
        );
        assert_eq!(application_arn("oracle", "us-east-1"), None);
    }

    #[test]
    fn rotation_type_from_application_arn() {
        for t in [
            "mysql_single_user",
            "mysql_multi_user",
            "postgresql_single_user",
            "postgresql_multi_user",
            "generic",
        ] {
            let arn = application_arn(t, "us-east-1").unwrap_or_default();
            assert_eq!(rotation_type_of_application(&arn), Some(t));
        }
        assert_eq!(rotation_type_of_application("arn:x/Other"), None);
    }
}
