//! STS: credentials of an assumed role, for the provider's `assume_role`.

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_sts::config::{Credentials, SharedCredentialsProvider};

/// A credentials provider that assumes `role_arn` with the base
/// configuration's credentials, through `sts_endpoint` when given.
///
/// aws-config's own AssumeRoleProvider lets `AWS_ENDPOINT_URL` win over an
/// endpoint set in the SdkConfig, so it could not honour `endpoints.sts`.
/// Nothing is called until a request first needs credentials; the SDK's
/// identity cache then keeps them until they expire.
pub fn assumed_role_credentials(
    base: &aws_config::SdkConfig,
    sts_endpoint: Option<&str>,
    role_arn: &str,
    session_name: &str,
    external_id: Option<&str>,
) -> SharedCredentialsProvider {
    // The provider turns the SDK's retries off and retries whole calls
    // itself; AssumeRole runs inside another call's credentials look-up,
    // which that retry never sees, so it retries throttling and server
    // faults on its own.
    let mut conf = aws_sdk_sts::config::Builder::from(base)
        .retry_config(aws_sdk_sts::config::retry::RetryConfig::standard().with_max_attempts(3));
    if let Some(url) = sts_endpoint {
        conf = conf.endpoint_url(url);
    }
    let sts = aws_sdk_sts::Client::from_conf(conf.build());
    let role_arn = role_arn.to_string();
    let session_name = session_name.to_string();
    let external_id = external_id.map(str::to_string);
    SharedCredentialsProvider::new(aws_credential_types::credential_fn::provide_credentials_fn(
        move || {
            let sts = sts.clone();
            let role_arn = role_arn.clone();
            let session_name = session_name.clone();
            let external_id = external_id.clone();
            async move { assume_role(&sts, &role_arn, &session_name, external_id).await }
        },
    ))
}

async fn assume_role(
    sts: &aws_sdk_sts::Client,
    role_arn: &str,
    session_name: &str,
    external_id: Option<String>,
) -> aws_credential_types::provider::Result {
    let out = sts
        .assume_role()
        .role_arn(role_arn)
        .role_session_name(session_name)
        .set_external_id(external_id)
        .send()
        .await
        // Classified here, where the error's type is known, so that the
        // failed request this look-up was for is classified by its cause.
        .map_err(|e| CredentialsError::provider_error(super::error::classify(e)))?;
    let c = out.credentials().ok_or_else(|| {
        CredentialsError::provider_error(format!(
            "AssumeRole of {role_arn} returned no credentials"
        ))
    })?;
    let expiry = std::time::SystemTime::try_from(*c.expiration()).ok();
    Ok(Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_string()),
        expiry,
        "rdsrot-assume-role",
    ))
}
