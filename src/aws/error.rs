//! One error type for every AWS call, classified once: not found,
//! retryable, or other. `SdkError` stops here.

use std::fmt;

// The SDK crates re-export the same smithy types; any one of them names them.
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// The object does not exist (or no longer counts as existing).
    NotFound,
    /// Throttling, a transient server fault, or a connection problem.
    Retryable,
    /// No credentials could be found: retrying cannot help, and the user
    /// needs to be told where the provider looked.
    NoCredentials,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AwsError {
    Api {
        kind: Kind,
        /// The AWS error code, e.g. `ResourceNotFoundException`.
        code: Option<String>,
        message: String,
    },
    /// A named operation timeout ran out.
    Timeout(String),
    /// Terraform asked the provider to stop.
    Cancelled,
    /// AWS answered, but not as expected (e.g. a change set that failed).
    Failed(String),
}

impl AwsError {
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            AwsError::Api {
                kind: Kind::NotFound,
                ..
            }
        )
    }
    pub fn is_no_credentials(&self) -> bool {
        matches!(
            self,
            AwsError::Api {
                kind: Kind::NoCredentials,
                ..
            }
        )
    }
    /// Throttling, a server fault or a lost connection: the same request
    /// may succeed if sent again.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            AwsError::Api {
                kind: Kind::Retryable,
                ..
            }
        )
    }
    /// AWS refused the call for its rate: the quota class is busy.
    pub fn is_throttling(&self) -> bool {
        matches!(
            self.code(),
            Some(
                "Throttling"
                    | "ThrottlingException"
                    | "TooManyRequestsException"
                    | "RequestLimitExceeded"
            )
        )
    }
    pub fn code(&self) -> Option<&str> {
        match self {
            AwsError::Api { code, .. } => code.as_deref(),
            _ => None,
        }
    }
    pub fn not_found(message: impl Into<String>) -> AwsError {
        AwsError::Api {
            kind: Kind::NotFound,
            code: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AwsError::Api { code, message, .. } => match code {
                Some(c) if message.is_empty() => write!(f, "{c}"),
                Some(c) => write!(f, "{c}: {message}"),
                None => write!(f, "{message}"),
            },
            AwsError::Timeout(what) => write!(f, "timed out: {what}"),
            AwsError::Cancelled => write!(f, "cancelled: Terraform asked the provider to stop"),
            AwsError::Failed(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for AwsError {}

/// Error codes that mean "no such object" across the five services.
const NOT_FOUND_CODES: &[&str] = &[
    "ResourceNotFoundException", // Secrets Manager, Lambda
    "NoSuchEntity",              // IAM
    "NotFoundException",         // Serverless Application Repository
    "ChangeSetNotFound",         // CloudFormation
    "ChangeSetNotFoundException",
    "StackNotFoundException",
];

/// Throttling and server faults, by the codes each service uses. Lambda's
/// `ResourceConflictException` is not here: it also means "statement
/// exists", so only the Lambda retry policies look at it (see `retry`).
const RETRYABLE_CODES: &[&str] = &[
    "Throttling",               // IAM, CloudFormation, STS
    "ThrottlingException",      // Secrets Manager
    "TooManyRequestsException", // Lambda, Serverless Application Repository
    "RequestLimitExceeded",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalFailure",
    "InternalServiceError",
    "InternalServiceErrorException",
    "InternalServerErrorException", // Serverless Application Repository
    "ServiceException",             // Lambda
    "ServiceFailure",               // IAM
];

/// The HTTP status of a service error's response, where there is one.
pub trait ResponseStatus {
    fn status_code(&self) -> Option<u16>;
}
impl ResponseStatus for aws_sdk_secretsmanager::config::http::HttpResponse {
    fn status_code(&self) -> Option<u16> {
        Some(self.status().as_u16())
    }
}
impl ResponseStatus for () {
    fn status_code(&self) -> Option<u16> {
        None
    }
}

pub fn classify<E, R>(err: SdkError<E, R>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug + ResponseStatus,
{
    match &err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            let code = e.code().map(str::to_string);
            let status = service.raw().status_code();
            let server_fault = status.is_some_and(|s| s >= 500);
            // An answer without code or message (an HTML error page, say)
            // still says what came back.
            let message = match e.message() {
                Some(m) if !m.is_empty() => m.to_string(),
                _ if code.is_none() => match status {
                    Some(s) => format!("HTTP {s} without an AWS error code"),
                    None => "an error without code or message".to_string(),
                },
                _ => String::new(),
            };
            let kind = match code.as_deref() {
                Some(c) if NOT_FOUND_CODES.contains(&c) => Kind::NotFound,
                Some(c) if RETRYABLE_CODES.contains(&c) => Kind::Retryable,
                // A 5xx without a code we know is still the server's fault.
                _ if server_fault => Kind::Retryable,
                // CloudFormation reports a missing stack only as a
                // ValidationError whose text says so: AWS gives nothing else.
                Some("ValidationError") if message.contains("does not exist") => Kind::NotFound,
                _ => Kind::Other,
            };
            AwsError::Api {
                kind,
                code,
                message,
            }
        }
        SdkError::DispatchFailure(_) if credentials_error(&err).is_some() => {
            credentials_error(&err)
                .map_or_else(|| AwsError::Failed(error_chain(&err)), credentials_failure)
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            AwsError::Api {
                kind: Kind::Retryable,
                code: None,
                message: error_chain(&err),
            }
        }
        _ => AwsError::Api {
            kind: Kind::Other,
            code: None,
            message: error_chain(&err),
        },
    }
}

/// The `CredentialsError` a request that never left failed on: the SDK
/// reports a failed credentials look-up as a dispatch failure caused by it.
fn credentials_error(
    err: &dyn std::error::Error,
) -> Option<&aws_credential_types::provider::error::CredentialsError> {
    let mut source = err.source();
    while let Some(s) = source {
        if let Some(c) = s.downcast_ref() {
            return Some(c);
        }
        source = s.source();
    }
    None
}

/// Only credentials that are nowhere to be found are `NoCredentials`, whose
/// diagnostic lists where the provider looked. A source that was found but
/// failed (an AssumeRole refused or throttled, an expired SSO session, a
/// `credential_process` that exits non-zero) keeps its cause: a throttled or
/// failing AssumeRole may pass when sent again, and any other is reported as
/// what it is.
fn credentials_failure(
    cause: &aws_credential_types::provider::error::CredentialsError,
) -> AwsError {
    use aws_credential_types::provider::error::CredentialsError;
    let message = format!("getting AWS credentials failed: {}", error_chain(cause));
    let kind = match cause {
        CredentialsError::CredentialsNotLoaded(_) => Kind::NoCredentials,
        CredentialsError::ProviderTimedOut(_) => Kind::Retryable,
        _ => match inner_aws_error(cause) {
            Some(AwsError::Api { kind, code, .. }) => {
                return AwsError::Api {
                    kind: kind.clone(),
                    code: code.clone(),
                    message,
                }
            }
            _ => Kind::Other,
        },
    };
    AwsError::Api {
        kind,
        code: None,
        message,
    }
}

/// An AWS call a credentials provider made (STS `AssumeRole`, see
/// `sts::assumed_role_credentials`), classified there.
fn inner_aws_error(err: &dyn std::error::Error) -> Option<&AwsError> {
    let mut source = err.source();
    while let Some(s) = source {
        if let Some(e) = s.downcast_ref::<AwsError>() {
            return Some(e);
        }
        source = s.source();
    }
    None
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// `Ok(None)` for a not-found error, so finders read naturally.
pub trait OptionalExt<T> {
    fn or_not_found(self) -> Result<Option<T>, AwsError>;
}

impl<T> OptionalExt<T> for Result<T, AwsError> {
    fn or_not_found(self) -> Result<Option<T>, AwsError> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_secretsmanager::error::ErrorMetadata;
    use aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretError;

    fn service_error(code: &str, message: &str) -> AwsError {
        let e = DescribeSecretError::generic(
            ErrorMetadata::builder().code(code).message(message).build(),
        );
        // The raw response plays no part in classification.
        classify(SdkError::service_error(e, ()))
    }

    #[test]
    fn classifies_by_error_code() {
        assert!(service_error("ResourceNotFoundException", "gone").is_not_found());
        assert!(service_error("NoSuchEntity", "").is_not_found());
        let throttled = service_error("ThrottlingException", "slow down");
        assert!(matches!(
            throttled,
            AwsError::Api {
                kind: Kind::Retryable,
                ..
            }
        ));
        let denied = service_error("AccessDeniedException", "no");
        assert_eq!(denied.code(), Some("AccessDeniedException"));
        assert!(matches!(
            denied,
            AwsError::Api {
                kind: Kind::Other,
                ..
            }
        ));
        assert_eq!(denied.to_string(), "AccessDeniedException: no");
    }

    #[test]
    fn an_error_without_code_or_message_still_says_something() {
        let e = DescribeSecretError::generic(ErrorMetadata::builder().build());
        let classified = classify(SdkError::service_error(e, ()));
        assert!(!classified.to_string().is_empty());
    }

    #[test]
    fn a_missing_stack_is_known_only_by_its_text() {
        let gone = service_error("ValidationError", "Stack with id s does not exist");
        assert!(gone.is_not_found());
        assert!(!service_error("ValidationError", "Template format error").is_not_found());
    }

    #[test]
    fn or_not_found_turns_absence_into_none() {
        let r: Result<(), AwsError> = Err(service_error("ResourceNotFoundException", ""));
        assert_eq!(r.or_not_found(), Ok(None));
        let r: Result<(), AwsError> = Err(service_error("AccessDeniedException", ""));
        assert!(r.or_not_found().is_err());
    }

    fn assume_role_refused(code: &str, message: &str) -> AwsError {
        use aws_credential_types::provider::error::CredentialsError;
        credentials_failure(&CredentialsError::provider_error(service_error(
            code, message,
        )))
    }

    #[test]
    fn only_missing_credentials_are_no_credentials() {
        use aws_credential_types::provider::error::CredentialsError;
        let none = credentials_failure(&CredentialsError::not_loaded("no providers in chain"));
        assert!(none.is_no_credentials());

        let denied = assume_role_refused(
            "AccessDenied",
            "User: arn:aws:iam::1:user/ci is not authorized to perform: sts:AssumeRole",
        );
        assert!(!denied.is_no_credentials() && !denied.is_transient());
        assert_eq!(denied.code(), Some("AccessDenied"));
        assert!(
            denied
                .to_string()
                .contains("not authorized to perform: sts:AssumeRole"),
            "{denied}"
        );

        let throttled = assume_role_refused("Throttling", "Rate exceeded");
        assert!(
            throttled.is_transient() && throttled.is_throttling(),
            "{throttled:?}"
        );

        let expired = credentials_failure(&CredentialsError::provider_error(
            "the SSO session has expired or is invalid",
        ));
        assert!(!expired.is_no_credentials() && !expired.is_transient());
        assert!(
            expired.to_string().contains("SSO session has expired"),
            "{expired}"
        );

        let slow = credentials_failure(&CredentialsError::provider_timed_out(
            std::time::Duration::from_secs(5),
        ));
        assert!(slow.is_transient());
    }
}
