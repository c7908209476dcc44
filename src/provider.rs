//! The rdsrot provider: its configuration schema, the AWS clients built
//! from it, and the routing of resource operations to `rdsrot_rotation`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::aws::arn::Arn;
use crate::aws::{Clients, Deadline, Endpoints};
use crate::logging;
use crate::rotation::apply::{self, StepError};
use crate::rotation::model::{Attr, Rotation};
use crate::rotation::plan::{plan, PlanContext};
use crate::rotation::private::Private;
use crate::rotation::schedule::parse_timeout;
use crate::rotation::{plan_checks, read, schema as rotation_schema, validate};
use crate::tf::*;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
const READ_TIMEOUT: Duration = Duration::from_secs(10 * 60);
const ENDPOINT_SERVICES: [&str; 6] = [
    "secretsmanager",
    "lambda",
    "iam",
    "cloudformation",
    "serverlessrepo",
    "sts",
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
    fn no_credentials_once(&self) -> Diagnostics {
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

    fn configured(&self) -> Result<Clients, Diagnostics> {
        self.clients().ok_or_else(|| {
            Diagnostic::error(
                "Provider not configured",
                "The rdsrot provider was asked to act on a resource before it was configured.",
            )
            .into()
        })
    }
}

fn provider_schema() -> Schema {
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
        let ok = !r.is_empty()
            && r.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !ok {
            d.push(
                Diagnostic::error(
                    "Invalid region",
                    format!("{r:?} is not an AWS region name."),
                )
                .at(AttributePath::root("region")),
            );
        }
    }
    let ar = config.get("assume_role");
    if let Some(arn) = text(ar.get("role_arn")) {
        let ok = Arn::parse(&arn).is_some_and(|a| {
            a.service == "iam" && a.resource.starts_with("role/") && a.resource.len() > 5
        });
        if !ok {
            d.push(
                Diagnostic::error(
                    "Invalid role_arn",
                    format!("{arn:?} is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)."),
                )
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
        let host_ok = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/') && !rest.contains(' '));
        if !host_ok {
            d.push(
                Diagnostic::error(
                    "Invalid endpoint URL",
                    format!("{url:?} must be an http:// or https:// URL with a host."),
                )
                .at(AttributePath::root("endpoints").attr(svc)),
            );
        }
        let slot = match svc {
            "secretsmanager" => &mut pc.endpoints.secretsmanager,
            "lambda" => &mut pc.endpoints.lambda,
            "iam" => &mut pc.endpoints.iam,
            "cloudformation" => &mut pc.endpoints.cloudformation,
            "serverlessrepo" => &mut pc.endpoints.serverlessrepo,
            _ => &mut pc.endpoints.sts,
        };
        *slot = Some(url);
    }
    (pc, d)
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

fn unknown_type(type_name: &str) -> Diagnostics {
    Diagnostic::error(
        "Unknown resource type",
        format!("This provider has no resource type {type_name:?}."),
    )
    .into()
}

fn is_ours(type_name: &str) -> bool {
    type_name == rotation_schema::TYPE_NAME
}

fn timeout_of(state: &Rotation, op: &str) -> Duration {
    let t = state.timeouts.known();
    let text = t.and_then(|t| match op {
        "create" => t.create.known(),
        "update" => t.update.known(),
        _ => t.delete.known(),
    });
    text.and_then(|s| parse_timeout(s).ok())
        .unwrap_or(DEFAULT_TIMEOUT)
}

/// A failed step: the summary says what failed; the detail says why (the
/// cause, which for our own checks includes what to do) and on which secret.
fn step_diagnostic(verb: &str, secret: &str, e: &StepError) -> Diagnostic {
    if e.no_credentials {
        return no_credentials_diagnostic();
    }
    let d = Diagnostic::error(
        format!("{verb} rotation failed while {}", e.step.describe()),
        format!("{}\n\nSecret: {secret}.", e.cause),
    );
    match &e.attribute {
        Some(p) => d.at(p.clone()),
        None => d,
    }
}

fn private_state_warning(warning: Option<String>) -> Diagnostics {
    warning
        .map(|w| Diagnostic::warning("Private state not fully readable", w).into())
        .unwrap_or_default()
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

impl Provider for RdsrotProvider {
    fn schema(&self) -> ProviderSchema {
        ProviderSchema {
            provider: provider_schema(),
            resources: vec![(
                rotation_schema::TYPE_NAME.to_string(),
                rotation_schema::schema(),
            )],
        }
    }

    fn validate_provider_config(&self, config: &Value) -> Diagnostics {
        validate_provider(config).1
    }

    async fn configure(&self, _terraform_version: &str, config: &Value) -> Diagnostics {
        let (pc, mut diags) = validate_provider(config);
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

    fn validate_resource_config(&self, type_name: &str, config: &Value) -> Diagnostics {
        if !is_ours(type_name) {
            return unknown_type(type_name);
        }
        validate::validate(&Rotation::from_value(config))
    }

    fn upgrade_resource_state(&self, req: UpgradeRequest) -> (Value, Diagnostics) {
        if !is_ours(&req.type_name) {
            return (Value::Null, unknown_type(&req.type_name));
        }
        if req.version != 0 {
            return (
                Value::Null,
                Diagnostic::error(
                    "Unsupported state version",
                    format!(
                        "State version {} is newer than this provider understands.",
                        req.version
                    ),
                )
                .into(),
            );
        }
        // Version 0 is the current schema: normalise through the model so
        // every attribute is present.
        if req.raw_state.is_null() {
            return (Value::Null, Diagnostics::new());
        }
        (
            Rotation::from_value(&req.raw_state).to_value(),
            Diagnostics::new(),
        )
    }

    async fn read_resource(&self, req: ReadRequest) -> ReadResponse {
        if !is_ours(&req.type_name) {
            return ReadResponse {
                diagnostics: unknown_type(&req.type_name),
                ..Default::default()
            };
        }
        if req.current_state.is_null() {
            return ReadResponse::default();
        }
        let clients = match self.configured() {
            Ok(c) => c,
            Err(d) => {
                return ReadResponse {
                    new_state: req.current_state,
                    private: req.private,
                    diagnostics: d,
                }
            }
        };
        let state = Rotation::from_value(&req.current_state);
        let (private, private_warning) = Private::decode(&req.private);
        let deadline = Deadline::new("read", READ_TIMEOUT, self.cancel.clone());
        let read = tokio::select! {
            r = Box::pin(read::read(&clients, &deadline, &state, &private)) => r,
            e = deadline.expired() => Err(e),
        };
        let mut response = match read {
            Ok((s, p)) => ReadResponse {
                new_state: s.to_value(),
                private: p.encode(),
                diagnostics: Diagnostics::new(),
            },
            Err(e) => ReadResponse {
                new_state: req.current_state,
                private: req.private,
                diagnostics: if e.is_no_credentials() {
                    self.no_credentials_once()
                } else {
                    Diagnostic::error(
                        "Reading rotation failed",
                        format!(
                            "{e}\n\nSecret: {}.",
                            state
                                .secret_arn
                                .as_deref()
                                .or(state.secret_id.as_deref())
                                .unwrap_or("?")
                        ),
                    )
                    .into()
                },
            },
        };
        response
            .diagnostics
            .extend(private_state_warning(private_warning));
        response
    }

    async fn plan_resource_change(&self, req: PlanRequest) -> PlanResponse {
        if !is_ours(&req.type_name) {
            return PlanResponse {
                diagnostics: unknown_type(&req.type_name),
                ..Default::default()
            };
        }
        let clients = self.clients();
        let region = clients.as_ref().and_then(|c| c.region.clone());
        // The refresh before this plan already warned about the record.
        let (private, _) = Private::decode(&req.prior_private);
        let mut planned = plan(
            &req.config,
            &req.prior_state,
            &private,
            &PlanContext {
                region: region.as_deref(),
            },
        );
        // The look-ups against AWS, once the configuration itself is valid.
        if let (Some(clients), false, false) = (
            clients,
            req.config.is_null(),
            planned.diagnostics.has_errors(),
        ) {
            let config = Rotation::from_value(&req.config);
            let prior =
                (!req.prior_state.is_null()).then(|| Rotation::from_value(&req.prior_state));
            let deadline = Deadline::new("plan", READ_TIMEOUT, self.cancel.clone());
            let checked = tokio::select! {
                r = plan_checks::check(&clients, &deadline, &config, prior.as_ref()) => r,
                e = deadline.expired() => Err(e),
            };
            match checked {
                Ok(d) => planned.diagnostics.extend(d),
                Err(e) if e.is_no_credentials() => {
                    planned.diagnostics.extend(self.no_credentials_once());
                }
                // Terraform asked to stop: it will not use this plan.
                Err(crate::aws::AwsError::Cancelled) => {}
                Err(e) => planned.diagnostics.push(Diagnostic::warning(
                    "Could not check the configuration against AWS at plan time",
                    format!("{e}. Apply checks again before it changes anything."),
                )),
            }
        }
        PlanResponse {
            planned_state: planned.state,
            requires_replace: planned.requires_replace,
            planned_private: req.prior_private,
            diagnostics: planned.diagnostics,
        }
    }

    async fn apply_resource_change(&self, req: ApplyRequest) -> ApplyResponse {
        if !is_ours(&req.type_name) {
            return ApplyResponse {
                diagnostics: unknown_type(&req.type_name),
                ..Default::default()
            };
        }
        let clients = match self.configured() {
            Ok(c) => c,
            Err(d) => {
                return ApplyResponse {
                    new_state: req.prior_state,
                    private: req.planned_private,
                    diagnostics: d,
                }
            }
        };
        // The refresh already warned about the record.
        let (private, _) = Private::decode(&req.planned_private);
        let prior = (!req.prior_state.is_null()).then(|| Rotation::from_value(&req.prior_state));

        if req.planned_state.is_null() {
            let Some(prior) = prior else {
                return ApplyResponse::default();
            };
            let budget = timeout_of(&prior, "delete");
            let deadline = Deadline::new(
                format!("delete (timeouts.delete = {budget:?})"),
                budget,
                self.cancel.clone(),
            );
            let (private, result) = apply::delete(&clients, &prior, private, &deadline).await;
            return match result {
                Ok(()) => ApplyResponse::default(),
                Err(e) => {
                    let secret = prior
                        .secret_arn
                        .as_deref()
                        .or(prior.secret_id.as_deref())
                        .unwrap_or("?")
                        .to_string();
                    ApplyResponse {
                        new_state: req.prior_state,
                        private: private.encode(),
                        diagnostics: step_diagnostic("Deleting", &secret, &e).into(),
                    }
                }
            };
        }

        let planned = Rotation::from_value(&req.planned_state);
        let (verb, op) = if prior.is_some() {
            ("Updating", "update")
        } else {
            ("Creating", "create")
        };
        let budget = timeout_of(&planned, op);
        let deadline = Deadline::new(
            format!("{op} (timeouts.{op} = {budget:?})"),
            budget,
            self.cancel.clone(),
        );
        let outcome = apply::converge(&clients, &planned, prior.as_ref(), private, &deadline).await;
        let Some(err) = outcome.error else {
            return ApplyResponse {
                new_state: outcome.state.to_value(),
                private: outcome.private.encode(),
                diagnostics: Diagnostics::new(),
            };
        };
        let secret = outcome
            .state
            .secret_arn
            .as_deref()
            .or(planned.secret_id.as_deref())
            .unwrap_or("?")
            .to_string();
        let p = &outcome.private;
        let nothing_made = prior.is_none()
            && p.stack.is_none()
            && p.permission.is_none()
            && p.role_policy.is_none()
            && p.original_vpc.is_none();
        let mut state = outcome.state;
        if state.enabled.is_unknown() {
            state.enabled = Attr::Null;
        }
        ApplyResponse {
            new_state: if nothing_made {
                Value::Null
            } else {
                state.to_value()
            },
            private: outcome.private.encode(),
            diagnostics: step_diagnostic(verb, &secret, &err).into(),
        }
    }

    async fn import_resource_state(&self, type_name: &str, id: &str) -> ImportResponse {
        if !is_ours(type_name) {
            return ImportResponse {
                diagnostics: unknown_type(type_name),
                ..Default::default()
            };
        }
        let clients = match self.configured() {
            Ok(c) => c,
            Err(d) => {
                return ImportResponse {
                    diagnostics: d,
                    ..Default::default()
                }
            }
        };
        let deadline = Deadline::new("import", READ_TIMEOUT, self.cancel.clone());
        let imported = tokio::select! {
            r = read::import(&clients, &deadline, id) => r,
            e = deadline.expired() => Err(e),
        };
        match imported {
            Ok((state, private)) => ImportResponse {
                imported: vec![ImportedResource {
                    type_name: type_name.to_string(),
                    state: state.to_value(),
                    private: private.encode(),
                }],
                diagnostics: Diagnostics::new(),
            },
            Err(e) if e.is_no_credentials() => ImportResponse {
                diagnostics: no_credentials_diagnostic().into(),
                ..Default::default()
            },
            Err(e) => ImportResponse {
                diagnostics: Diagnostic::error(
                    "Importing rotation failed",
                    format!("{e}\n\nImport ID: {id}."),
                )
                .at(AttributePath::root("secret_id"))
                .into(),
                ..Default::default()
            },
        }
    }

    fn stop(&self) {
        logging::info(
            "provider",
            "stop requested: cancelling in-flight operations",
        );
        self.cancel.cancel();
    }
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

    #[test]
    fn a_step_error_says_what_failed_in_the_summary_and_why_in_the_detail() {
        let e = StepError {
            step: apply::Step::TurnOnRotation,
            cause: "InvalidRequestException: A previous rotation isn't complete.".into(),
            attribute: Some(AttributePath::root("rotation_rules")),
            no_credentials: false,
        };
        let d = step_diagnostic("Creating", "arn:s", &e);
        assert_eq!(
            d.summary,
            "Creating rotation failed while turning rotation on"
        );
        assert!(
            d.detail.starts_with("InvalidRequestException"),
            "{}",
            d.detail
        );
        assert!(d.detail.contains("Secret: arn:s."));
        assert!(
            !d.detail.contains(&d.summary) && !d.detail.contains("turning rotation on"),
            "the detail repeats the summary: {}",
            d.detail
        );
        let no_credentials = StepError {
            no_credentials: true,
            ..e
        };
        assert_eq!(
            step_diagnostic("Creating", "arn:s", &no_credentials).summary,
            "No AWS credentials found"
        );
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

    #[test]
    fn upgrade_keeps_version_0_and_fills_every_attribute() {
        let p = RdsrotProvider::new();
        let raw = Value::object([("secret_id", Value::string("db"))]);
        let (state, d) = p.upgrade_resource_state(UpgradeRequest {
            type_name: "rdsrot_rotation".into(),
            version: 0,
            raw_state: raw,
        });
        assert!(d.is_empty());
        assert_eq!(state.get("secret_id").as_str(), Some("db"));
        assert_eq!(state.as_object().map(|o| o.len()), Some(22));
        let (_, d) = p.upgrade_resource_state(UpgradeRequest {
            type_name: "rdsrot_rotation".into(),
            version: 7,
            raw_state: Value::Null,
        });
        assert!(d.has_errors());
    }

    #[test]
    fn an_unreadable_private_state_gives_one_warning() {
        let warning = private_state_warning(Private::decode(b"{broken").1);
        assert_eq!(warning.iter().count(), 1);
        assert!(warning
            .iter()
            .all(|d| d.severity == Severity::Warning && d.detail.contains("unreadable")));
        assert!(private_state_warning(Private::decode(b"").1).is_empty());
    }

    #[tokio::test]
    async fn resource_calls_before_configure_are_clear_errors() {
        let p = RdsrotProvider::new();
        let r = p
            .read_resource(ReadRequest {
                type_name: "rdsrot_rotation".into(),
                current_state: Rotation::default().to_value(),
                private: vec![],
            })
            .await;
        assert!(r
            .diagnostics
            .iter()
            .any(|d| d.summary == "Provider not configured"));
        let r = p.import_resource_state("rdsrot_other", "x").await;
        assert!(r
            .diagnostics
            .iter()
            .any(|d| d.summary == "Unknown resource type"));
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
