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

/// The ARN of the application named `application` in the partition of
/// `region`: AWS publishes the rotation applications from one account and
/// region per partition.
pub fn application_arn(application: &str, region: &str) -> String {
    let (partition, home, account) = match partition_of_region(region) {
        "aws-cn" => ("aws-cn", "cn-north-1", "193023089310"),
        "aws-us-gov" => ("aws-us-gov", "us-gov-west-1", "023102451235"),
        _ => ("aws", "us-east-1", "297356227824"),
    };
    format!("arn:{partition}:serverlessrepo:{home}:{account}:applications/{application}")
}

/// One version of an application, as the repository describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateVersion {
    pub semantic_version: String,
    /// The parameters the version's template declares, with their defaults.
    pub parameters: Vec<(String, Option<String>)>,
}

/// The version `version` of the application (the newest one with `None`),
/// from GetApplication. A version the application does not have is not
/// found, as the repository answers.
pub async fn template_version(
    c: &Clients,
    d: &Deadline,
    application_arn: &str,
    version: Option<&str>,
) -> Result<TemplateVersion, AwsError> {
    let out = c
        .call(d, &READ, Quota::Unpublished, || async {
            c.serverlessrepo
                .get_application()
                .application_id(application_arn)
                .set_semantic_version(version.map(str::to_string))
                .send()
                .await
                .map_err(classify)
        })
        .await?;
    let described = out.version().ok_or_else(|| {
        AwsError::Failed(format!(
            "the repository described {application_arn} without a version"
        ))
    })?;
    let semantic_version = described
        .semantic_version()
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .or_else(|| version.map(str::to_string))
        .ok_or_else(|| {
            AwsError::Failed(format!(
                "the repository described {application_arn} without its version number"
            ))
        })?;
    Ok(TemplateVersion {
        semantic_version,
        parameters: described
            .parameter_definitions()
            .iter()
            .filter_map(|p| Some((p.name()?.to_string(), p.default_value().map(str::to_string))))
            .collect(),
    })
}

/// The parameters the template version declares, with their defaults,
/// from the repository.
pub async fn template_parameters(
    c: &Clients,
    d: &Deadline,
    application_arn: &str,
    version: &str,
) -> Result<Vec<(String, Option<String>)>, AwsError> {
    Ok(template_version(c, d, application_arn, Some(version))
        .await?
        .parameters)
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
            application_arn("SecretsManagerRDSMySQLRotationSingleUser", "eu-west-1"),
            "arn:aws:serverlessrepo:us-east-1:297356227824:applications/SecretsManagerRDSMySQLRotationSingleUser"
        );
        assert_eq!(
            application_arn("SecretsManagerRotationTemplate", "cn-northwest-1"),
            "arn:aws-cn:serverlessrepo:cn-north-1:193023089310:applications/SecretsManagerRotationTemplate"
        );
        assert_eq!(
            application_arn("SecretsManagerMongoDBRotationMultiUser", "us-gov-east-1"),
            "arn:aws-us-gov:serverlessrepo:us-gov-west-1:023102451235:applications/SecretsManagerMongoDBRotationMultiUser"
        );
    }
}
