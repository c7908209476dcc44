//! The rdsrot provider: its configuration schema, the AWS clients built
//! from it, and what every part shares (the clients, cancellation, the
//! one-time credentials message). What it serves is listed in `parts`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

use tokio_util::sync::CancellationToken;

use crate::aws::endpoint::{self, EndpointHost};
use crate::aws::{Clients, Endpoints};
use crate::logging;
use crate::rotation::validate::{check_arn, check_url};
use crate::tf::*;

const ENDPOINT_SERVICES: [&str; 7] = [
    "secretsmanager",
    "lambda",
    "iam",
    "cloudformation",
    "serverlessrepo",
    "sts",
    "logs",
];

#[derive(Default)]
pub struct RdsrotProvider {
    clients: RwLock<Option<Clients>>,
    cancel: CancellationToken,
    /// Set once "no AWS credentials" has been reported by this process, so
    /// that a plan of many resources says it once.
    no_credentials_reported: AtomicBool,
}

impl RdsrotProvider {
    pub fn new() -> Self {
        RdsrotProvider::default()
    }

    /// A provider already configured with these clients (for embedding the
    /// resource logic without a ConfigureProvider call, e.g. in tests).
    pub fn with_clients(clients: Clients) -> Self {
        RdsrotProvider {
            clients: RwLock::new(Some(clients)),
            ..Default::default()
        }
    }

    /// "No AWS credentials found", the first time this process meets it.
    /// One error fails the whole refresh or plan, so the other resources of
    /// the same run need not repeat it (a read then keeps the state it had,
    /// which Terraform does not use once the run has failed). Apply still
    /// reports it on every resource: there, silence would read as success.
    pub(crate) fn no_credentials_once(&self) -> Diagnostics {
        if self.no_credentials_reported.swap(true, Ordering::SeqCst) {
            Diagnostics::new()
        } else {
            no_credentials_diagnostic().into()
        }
    }

    /// The configured clients; `None` before ConfigureProvider.
    pub fn clients(&self) -> Option<Clients> {
        self.clients
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn configured(&self) -> Result<Clients, Diagnostics> {
        self.clients().ok_or_else(|| {
            Diagnostic::error(
                "Provider not configured",
                "The rdsrot provider was asked to act on a resource before it was configured.",
            )
            .into()
        })
    }

    /// Cancelled by StopProvider: every deadline of a part derives from it.
    pub(crate) fn cancellation(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// The provider configuration's own checks.
    pub(crate) fn validate_config(&self, config: &Value) -> Diagnostics {
        validate_provider(config).1
    }

    /// Builds the AWS clients from the configuration; makes no network call.
    pub(crate) async fn configure_clients(&self, config: &Value) -> Diagnostics {
        let (pc, checked) = validate_provider(config);
        // Its warnings were given by ValidateProviderConfig already, which
        // Terraform calls first with the same values; twice would be noise.
        let mut diags: Diagnostics = checked
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .cloned()
            .collect();
        diags.extend(unknown_settings(config));
        if diags.has_errors() {
            return diags;
        }
        let Some(region) = resolve_region(&pc).await else {
            return Diagnostic::error(
                "No AWS region",
                "Set the provider's `region`, or AWS_REGION, or a region in the AWS profile.",
            )
            .at(AttributePath::root("region"))
            .into();
        };
        let sdk = build_sdk_config(&pc, region).await;
        let mut clients = Clients::new(&sdk, &pc.endpoints);
        if let Some(n) = pc.max_retries {
            clients = clients.with_max_attempts(u32::try_from(n).unwrap_or(0).saturating_add(1));
        }
        logging::debug("provider", "configured AWS clients");
        *self.clients.write().unwrap_or_else(|p| p.into_inner()) = Some(clients);
        diags
    }
}

/// Whether `region` has the shape of an AWS region name.
pub fn check_region(region: &str) -> Result<(), String> {
    let ok = !region.is_empty()
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!("{region:?} is not an AWS region name."))
    }
}

pub(crate) fn provider_schema() -> Schema {
    let s = Type::String;
    let endpoint_attrs = ENDPOINT_SERVICES
        .iter()
        .map(|svc| {
            Attribute::optional(
                svc,
                s.clone(),
                &format!(
                    "Endpoint URL for {svc}, e.g. a local emulator. Overrides \
`AWS_ENDPOINT_URL` and the service's own `AWS_ENDPOINT_URL_*` variable."
                ),
            )
        })
        .collect();
    Schema {
        version: 0,
        block: Block {
            description: "Turns on AWS Secrets Manager rotation for RDS database secrets. \
Credentials come from the standard AWS chain (environment, shared files, SSO, container or \
instance roles)."
                .into(),
            attributes: vec![
                Attribute::optional(
                    "region",
                    s.clone(),
                    "AWS region. Defaults to `AWS_REGION` / `AWS_DEFAULT_REGION` or the profile's \
region.",
                ),
                Attribute::optional(
                    "profile",
                    s.clone(),
                    "Named profile of the shared AWS config and credentials files.",
                ),
                Attribute::optional(
                    "max_retries",
                    Type::Number,
                    "How many times the SDK retries a throttled or failed call (0 or more).",
                ),
            ],
            block_types: vec![
                NestedBlock {
                    type_name: "assume_role".into(),
                    nesting: Nesting::Single,
                    min_items: 0,
                    max_items: 0,
                    block: Block {
                        description: "Assume this IAM role with the default credentials.".into(),
                        attributes: vec![
                            Attribute::required(
                                "role_arn",
                                s.clone(),
                                "ARN of the role to assume.",
                            ),
                            Attribute::optional(
                                "session_name",
                                s.clone(),
                                "Session name of the assumed role.",
                            ),
                            Attribute::optional(
                                "external_id",
                                s.clone(),
                                "External ID the role's trust policy requires.",
                            ),
                        ],
                        ..Default::default()
                    },
                },
                NestedBlock {
                    type_name: "endpoints".into(),
                    nesting: Nesting::Single,
                    min_items: 0,
                    max_items: 0,
                    block: Block {
                        description: "Per-service endpoint URLs.".into(),
                        attributes: endpoint_attrs,
                        ..Default::default()
                    },
                },
            ],
            deprecated: false,
        },
    }
}

/// The provider configuration, decoded.
#[derive(Debug, Default, Clone, PartialEq)]
struct ProviderConfig {
    region: Option<String>,
    profile: Option<String>,
    max_retries: Option<i64>,
    role_arn: Option<String>,
    session_name: Option<String>,
    external_id: Option<String>,
    endpoints: Endpoints,
}

fn validate_provider(config: &Value) -> (ProviderConfig, Diagnostics) {
    let mut d = Diagnostics::new();
    let text = |v: &Value| v.as_str().map(str::to_string);
    let mut pc = ProviderConfig {
        region: text(config.get("region")),
        profile: text(config.get("profile")),
        ..Default::default()
    };
    if let Value::Number(n) = config.get("max_retries") {
        match n.as_i64() {
            Some(i) if (0..=100).contains(&i) => pc.max_retries = Some(i),
            _ => d.push(
                Diagnostic::error(
                    "Invalid max_retries",
                    "max_retries must be a whole number from 0 to 100.",
                )
                .at(AttributePath::root("max_retries")),
            ),
        }
    }
    if let Some(r) = &pc.region {
        if let Err(e) = check_region(r) {
            d.push(Diagnostic::error("Invalid region", e).at(AttributePath::root("region")));
        }
    }
    let ar = config.get("assume_role");
    if let Some(arn) = text(ar.get("role_arn")) {
        if let Err(e) = check_arn(&arn, "iam", &["role/"]) {
            d.push(
                Diagnostic::error("Invalid role_arn", e)
                    .at(AttributePath::root("assume_role").attr("role_arn")),
            );
        }
        pc.role_arn = Some(arn);
    }
    pc.session_name = text(ar.get("session_name"));
    pc.external_id = text(ar.get("external_id"));
    let ep = config.get("endpoints");
    for svc in ENDPOINT_SERVICES {
        let Some(url) = text(ep.get(svc)) else {
            continue;
        };
        let at = AttributePath::root("endpoints").attr(svc);
        match check_url(&url).and_then(|()| check_endpoint_transport(&url)) {
            Err(e) => d.push(Diagnostic::error("Invalid endpoint URL", e).at(at)),
            Ok(EndpointHost::OutsideAws(host)) => d.push(
                Diagnostic::warning(
                    "Endpoint outside AWS",
                    format!(
                        "`{at}` sends this service's calls, signed with your AWS credentials \
and carrying secret values, to {host:?}, which is not an AWS domain (amazonaws.com, \
amazonaws.com.cn, api.aws). Make sure that host is yours to trust."
                    ),
                )
                .at(at),
            ),
            Ok(EndpointHost::Loopback | EndpointHost::Aws) => {}
        }
        let slot = match svc {
            "secretsmanager" => &mut pc.endpoints.secretsmanager,
            "lambda" => &mut pc.endpoints.lambda,
            "iam" => &mut pc.endpoints.iam,
            "cloudformation" => &mut pc.endpoints.cloudformation,
            "serverlessrepo" => &mut pc.endpoints.serverlessrepo,
            "logs" => &mut pc.endpoints.logs,
            _ => &mut pc.endpoints.sts,
        };
        *slot = Some(url);
    }
    (pc, d)
}

/// Session tokens and secret values travel in these requests.
fn check_endpoint_transport(url: &str) -> Result<EndpointHost, String> {
    endpoint::classify(
        url,
        "the provider's calls carry session tokens and secret values",
    )
}

/// Settings whose value is not known yet (they come from a resource not
/// created yet). Validation lets them pass, but the clients are built from
/// them: treating one as unset would quietly talk to another region,
/// account or endpoint, so configuring with one is an error.
fn unknown_settings(config: &Value) -> Diagnostics {
    let mut paths = Vec::new();
    for name in ["region", "profile", "max_retries"] {
        if config.get(name).is_unknown() {
            paths.push(AttributePath::root(name));
        }
    }
    for (block, names) in [
        (
            "assume_role",
            &["role_arn", "session_name", "external_id"][..],
        ),
        ("endpoints", &ENDPOINT_SERVICES[..]),
    ] {
        let b = config.get(block);
        if b.is_unknown() {
            paths.push(AttributePath::root(block));
            continue;
        }
        for name in names {
            if b.get(name).is_unknown() {
                paths.push(AttributePath::root(block).attr(name));
            }
        }
    }
    let mut d = Diagnostics::new();
    for path in paths {
        d.push(
            Diagnostic::error(
                "Provider setting not known until apply",
                format!(
                    "`{path}` depends on a value Terraform knows only after apply, but the \
provider needs it to set up its AWS clients before planning. Use a value known at plan time \
(a literal, a variable, or a data source), or apply the resource it depends on first with \
`-target`."
                ),
            )
            .at(path),
        );
    }
    d
}

/// The region from the configuration, else the environment or the shared
/// files; never from instance metadata (that would be a network call).
async fn resolve_region(pc: &ProviderConfig) -> Option<aws_config::Region> {
    use aws_config::environment::region::EnvironmentVariableRegionProvider;
    use aws_config::meta::region::RegionProviderChain;
    use aws_config::profile::region::ProfileFileRegionProvider;

    if let Some(r) = &pc.region {
        return Some(aws_config::Region::new(r.clone()));
    }
    let mut profile_region = ProfileFileRegionProvider::builder();
    if let Some(p) = &pc.profile {
        profile_region = profile_region.profile_name(p);
    }
    RegionProviderChain::first_try(EnvironmentVariableRegionProvider::new())
        .or_else(profile_region.build())
        .region()
        .await
}

/// Builds the SDK configuration without any network call. With the region
/// already known, the default credentials chain looks nothing up until a
/// request first needs credentials.
async fn build_sdk_config(
    pc: &ProviderConfig,
    region: aws_config::Region,
) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).region(region);
    if let Some(p) = &pc.profile {
        loader = loader.profile_name(p);
    }
    // Retries are the provider's own, per call site (see `aws::retry`); the
    // SDK's would share one budget among all calls.
    loader = loader.retry_config(aws_config::retry::RetryConfig::disabled());
    // Bound every single call, so that one hanging connection cannot hold an
    // apply past its timeout: waits between calls are cancellable, a call in
    // flight is not.
    loader = loader.timeout_config(
        aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .operation_attempt_timeout(std::time::Duration::from_secs(60))
            .operation_timeout(std::time::Duration::from_secs(180))
            .build(),
    );
    let base = loader.load().await;
    let Some(role_arn) = &pc.role_arn else {
        return base;
    };
    let credentials = crate::aws::sts::assumed_role_credentials(
        &base,
        pc.endpoints.sts.as_deref(),
        role_arn,
        pc.session_name.as_deref().unwrap_or("rdsrot"),
        pc.external_id.as_deref(),
    );
    base.into_builder()
        .credentials_provider(credentials)
        .build()
}

/// The one message for missing credentials, in place of the SDK's chain of
/// causes.
pub fn no_credentials_diagnostic() -> Diagnostic {
    Diagnostic::error(
        "No AWS credentials found",
        "The rdsrot provider found no AWS credentials. It looked, in order, at the environment \
variables (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE), the shared files \
(~/.aws/credentials and ~/.aws/config, or the provider's `profile`), SSO, web identity \
(AWS_WEB_IDENTITY_TOKEN_FILE), the container credentials endpoint and the instance role. Set one \
of them; see the Authentication section of the provider's documentation (docs/index.md#authentication).",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(fields: Vec<(&str, Value)>) -> Value {
        let mut base = vec![
            ("region", Value::Null),
            ("profile", Value::Null),
            ("max_retries", Value::Null),
            ("assume_role", Value::Null),
            ("endpoints", Value::Null),
        ];
        for (k, v) in fields {
            if let Some(slot) = base.iter_mut().find(|(n, _)| *n == k) {
                slot.1 = v;
            }
        }
        Value::object(base)
    }
    /// An `endpoints` block setting only the Secrets Manager endpoint.
    fn secretsmanager_endpoint(url: Value) -> Value {
        let mut fields = vec![("secretsmanager", url)];
        fields.extend(ENDPOINT_SERVICES[1..].iter().map(|s| (*s, Value::Null)));
        Value::object(fields)
    }
    fn paths(d: &Diagnostics) -> Vec<String> {
        d.iter()
            .map(|x| {
                x.attribute
                    .as_ref()
                    .map(|p| p.to_string())
                    .unwrap_or_default()
            })
            .collect()
    }

    #[test]
    fn provider_config_validation() {
        let p = RdsrotProvider::new();
        assert!(p.validate_provider_config(&config(vec![])).is_empty());
        let bad = config(vec![
            ("max_retries", Value::int(-1)),
            (
                "assume_role",
                Value::object([
                    ("role_arn", Value::string("arn:aws:iam::1:user/u")),
                    ("session_name", Value::Null),
                    ("external_id", Value::Null),
                ]),
            ),
            (
                "endpoints",
                Value::object([
                    ("secretsmanager", Value::string("localhost:4566")),
                    ("lambda", Value::string("http://127.0.0.1:5000")),
                    ("iam", Value::Null),
                    ("cloudformation", Value::Null),
                    ("serverlessrepo", Value::Null),
                    ("sts", Value::Null),
                    ("logs", Value::Null),
                ]),
            ),
        ]);
        assert_eq!(
            paths(&p.validate_provider_config(&bad)),
            [
                "max_retries",
                "assume_role.role_arn",
                "endpoints.secretsmanager"
            ]
        );
    }

    fn endpoint_diagnostics(url: &str) -> Vec<(Severity, String, String)> {
        let config = config(vec![(
            "endpoints",
            secretsmanager_endpoint(Value::string(url)),
        )]);
        RdsrotProvider::new()
            .validate_provider_config(&config)
            .iter()
            .map(|d| {
                let path = d.attribute.as_ref().map(|p| p.to_string());
                (d.severity, path.unwrap_or_default(), d.detail.clone())
            })
            .collect()
    }

    #[test]
    fn plain_http_endpoints_are_refused_unless_loopback() {
        for url in [
            "http://secretsmanager.us-east-1.amazonaws.com",
            "http://emulator.internal:4566",
            "http://127.0.0.2:5000",
            "http://user@localhost.evil.example/",
        ] {
            let found = endpoint_diagnostics(url);
            assert_eq!(found.len(), 1, "{url}: {found:?}");
            let (severity, path, detail) = &found[0];
            assert_eq!(*severity, Severity::Error, "{url}");
            assert_eq!(path, "endpoints.secretsmanager", "{url}");
            assert!(detail.contains("must use https://"), "{url}: {detail}");
        }
        for url in [
            "http://127.0.0.1:5000",
            "http://localhost:4566/",
            "http://LOCALHOST:4566",
            "http://[::1]:5000",
            "https://localhost",
        ] {
            assert_eq!(endpoint_diagnostics(url), [], "{url}");
        }
    }

    #[test]
    fn endpoints_outside_aws_domains_are_a_warning_naming_the_attribute() {
        for url in [
            "https://secretsmanager.us-east-1.amazonaws.com",
            "https://secretsmanager-fips.us-gov-west-1.amazonaws.com/",
            "https://secretsmanager.cn-north-1.amazonaws.com.cn",
            "https://secretsmanager.eu-west-1.api.aws",
            "https://vpce-0a1b.secretsmanager.eu-west-1.vpce.amazonaws.com:443",
        ] {
            assert_eq!(endpoint_diagnostics(url), [], "{url}");
        }
        for (url, host) in [
            ("https://secrets.example.com", "secrets.example.com"),
            (
                "https://amazonaws.com.example.net/x",
                "amazonaws.com.example.net",
            ),
            ("https://notamazonaws.com", "notamazonaws.com"),
        ] {
            let found = endpoint_diagnostics(url);
            assert_eq!(found.len(), 1, "{url}: {found:?}");
            let (severity, path, detail) = &found[0];
            assert_eq!(*severity, Severity::Warning, "{url}");
            assert_eq!(path, "endpoints.secretsmanager", "{url}");
            assert!(detail.contains("`endpoints.secretsmanager`"), "{detail}");
            assert!(detail.contains(&format!("{host:?}")), "{url}: {detail}");
        }
    }

    #[tokio::test]
    async fn configure_does_not_repeat_the_endpoint_warning() {
        let p = RdsrotProvider::new();
        let d = p
            .configure(
                "1.0.3",
                &config(vec![
                    ("region", Value::string("eu-west-1")),
                    (
                        "endpoints",
                        secretsmanager_endpoint(Value::string("https://secrets.example.com")),
                    ),
                ]),
            )
            .await;
        assert!(d.is_empty(), "{d:?}");
        assert!(p.clients().is_some());
    }

    #[tokio::test]
    async fn configure_refuses_settings_not_known_yet() {
        let p = RdsrotProvider::new();
        let d = p
            .configure(
                "1.0.3",
                &config(vec![
                    ("region", Value::Unknown),
                    ("endpoints", secretsmanager_endpoint(Value::Unknown)),
                ]),
            )
            .await;
        assert_eq!(paths(&d), ["region", "endpoints.secretsmanager"]);
        assert!(p.clients().is_none(), "no clients from a half-known config");
        // Validation still lets them pass: they may be known by plan.
        assert!(p
            .validate_provider_config(&config(vec![("region", Value::Unknown)]))
            .is_empty());
    }

    #[tokio::test]
    async fn configure_builds_clients_for_the_configured_region() {
        let p = RdsrotProvider::new();
        let d = p
            .configure(
                "1.0.3",
                &config(vec![
                    ("region", Value::string("eu-west-1")),
                    ("max_retries", Value::int(2)),
                    (
                        "endpoints",
                        secretsmanager_endpoint(Value::string("http://127.0.0.1:1")),
                    ),
                ]),
            )
            .await;
        assert!(d.is_empty(), "{d:?}");
        let c = p.clients().expect("configured");
        assert_eq!(c.region.as_deref(), Some("eu-west-1"));
    }
}
