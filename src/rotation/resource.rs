//! The `rdsrot_rotation` resource as the provider serves it: the RPC glue
//! between the protocol's requests and the rotation's steps (timeouts and
//! cancellation, partial state after a failed step, private state, and the
//! diagnostics of each outcome).

use std::time::Duration;

use crate::aws::Deadline;
use crate::parts::Resource;
use crate::provider::{no_credentials_diagnostic, RdsrotProvider};
use crate::tf::*;

use super::apply::{self, StepError};
use super::model::{Attr, Rotation};
use super::plan::{plan, PlanContext};
use super::private::Private;
use super::schedule::parse_timeout;
use super::schema::TYPE_NAME;
use super::{plan_checks, read, validate};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
const READ_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// The resource type `rdsrot_rotation`.
#[derive(Debug, Default, Clone, Copy)]
pub struct RotationResource;

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
    let summary = match &e.summary {
        Some(own) => format!("{verb} rotation: {own}"),
        None => format!("{verb} rotation failed while {}", e.step.describe()),
    };
    let d = Diagnostic::error(summary, format!("{}\n\nSecret: {secret}.", e.cause));
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

impl Resource for RotationResource {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn schema(&self) -> Schema {
        super::schema::schema()
    }

    fn validate(&self, config: &Value) -> Diagnostics {
        validate::validate(&Rotation::from_value(config))
    }

    fn upgrade(&self, req: UpgradeRequest) -> (Value, Diagnostics) {
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

    async fn read(&self, provider: &RdsrotProvider, req: ReadRequest) -> ReadResponse {
        if req.current_state.is_null() {
            return ReadResponse::default();
        }
        let clients = match provider.configured() {
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
        let deadline = Deadline::new("read", READ_TIMEOUT, provider.cancellation());
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
                    provider.no_credentials_once()
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

    async fn plan(&self, provider: &RdsrotProvider, req: PlanRequest) -> PlanResponse {
        let clients = provider.clients();
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
            let deadline = Deadline::new("plan", READ_TIMEOUT, provider.cancellation());
            let planned_model = Rotation::from_value(&planned.state);
            let looked_up = async {
                let mut d =
                    plan_checks::check(&clients, &deadline, &config, prior.as_ref()).await?;
                if !d.has_errors() {
                    d.extend(
                        plan_checks::function_name(
                            &clients,
                            &deadline,
                            &planned_model,
                            prior.as_ref(),
                        )
                        .await?,
                    );
                }
                Ok(d)
            };
            let checked = tokio::select! {
                r = looked_up => r,
                e = deadline.expired() => Err(e),
            };
            match checked {
                Ok(d) => planned.diagnostics.extend(d),
                Err(e) if e.is_no_credentials() => {
                    planned.diagnostics.extend(provider.no_credentials_once());
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

    async fn apply(&self, provider: &RdsrotProvider, req: ApplyRequest) -> ApplyResponse {
        let clients = match provider.configured() {
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
                provider.cancellation(),
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
            provider.cancellation(),
        );
        // Before the first step: a secret the template cannot use stops the
        // apply with nothing made.
        let checked = match apply::preflight(&clients, &planned, prior.as_ref(), &deadline).await {
            Ok(d) => d,
            Err(e) => {
                let diagnostics = if e.is_no_credentials() {
                    no_credentials_diagnostic().into()
                } else {
                    Diagnostic::error(format!("{verb} rotation stopped"), e.to_string()).into()
                };
                return ApplyResponse {
                    new_state: req.prior_state,
                    private: req.planned_private,
                    diagnostics,
                };
            }
        };
        if checked.has_errors() {
            return ApplyResponse {
                new_state: req.prior_state,
                private: req.planned_private,
                diagnostics: checked,
            };
        }
        let outcome = apply::converge(&clients, &planned, prior.as_ref(), private, &deadline).await;
        let mut checked = checked;
        for w in &outcome.warnings {
            checked.push(Diagnostic::warning(w.summary.clone(), w.detail.clone()));
        }
        let Some(err) = outcome.error else {
            return ApplyResponse {
                new_state: outcome.state.to_value(),
                private: outcome.private.encode(),
                diagnostics: checked,
            };
        };
        let secret = outcome
            .state
            .secret_arn
            .as_deref()
            .or(planned.secret_id.as_deref())
            .unwrap_or("?")
            .to_string();
        let nothing_made = prior.is_none() && !outcome.private.holds_anything();
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
            diagnostics: {
                let mut d = checked;
                d.push(step_diagnostic(verb, &secret, &err));
                d
            },
        }
    }

    async fn import(&self, provider: &RdsrotProvider, id: &str) -> ImportResponse {
        let clients = match provider.configured() {
            Ok(c) => c,
            Err(d) => {
                return ImportResponse {
                    diagnostics: d,
                    ..Default::default()
                }
            }
        };
        let deadline = Deadline::new("import", READ_TIMEOUT, provider.cancellation());
        let imported = tokio::select! {
            r = read::import(&clients, &deadline, id) => r,
            e = deadline.expired() => Err(e),
        };
        // The imported resource takes on the identity that marks the stack
        // it takes on (see `stack`), so that its destroy removes the stack.
        let imported = match imported {
            Ok((state, mut private)) => {
                match super::stack::marked_user(&clients, &deadline, &private).await {
                    Ok(mark) => {
                        private.instance = mark;
                        Ok((state, private))
                    }
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        match imported {
            Ok((state, private)) => ImportResponse {
                imported: vec![ImportedResource {
                    type_name: TYPE_NAME.to_string(),
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_error_says_what_failed_in_the_summary_and_why_in_the_detail() {
        let e = StepError {
            step: apply::Step::TurnOnRotation,
            cause: "InvalidRequestException: A previous rotation isn't complete.".into(),
            attribute: Some(AttributePath::root("rotation_rules")),
            no_credentials: false,
            summary: None,
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
        let block = super::super::schema::schema().block;
        assert_eq!(
            state.as_object().map(|o| o.len()),
            Some(block.attributes.len() + block.block_types.len())
        );
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
}
