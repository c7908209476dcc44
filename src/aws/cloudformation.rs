//! CloudFormation: the stack a Serverless Application Repository change set
//! creates or updates.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use super::error::{classify, AwsError, OptionalExt};
use super::pacing::Quota;
use super::retry::{READ, STACK_CHANGE};
use super::wait::{poll_until, Deadline, Poll};
use super::Clients;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackInfo {
    pub id: String,
    pub name: String,
    pub status: String,
    pub status_reason: Option<String>,
    pub outputs: BTreeMap<String, String>,
    pub parameters: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
}

impl StackInfo {
    /// Still changing. A stack whose change set was just executed may show
    /// REVIEW_IN_PROGRESS for a moment before CREATE_IN_PROGRESS.
    pub fn is_in_progress(&self) -> bool {
        self.status.ends_with("_IN_PROGRESS")
    }
    /// A first creation that failed: it can only be deleted.
    pub fn is_failed_creation(&self) -> bool {
        matches!(
            self.status.as_str(),
            "ROLLBACK_COMPLETE" | "ROLLBACK_FAILED" | "CREATE_FAILED"
        )
    }
    /// A settled stack whose resources are usable.
    pub fn is_healthy(&self) -> bool {
        matches!(
            self.status.as_str(),
            "CREATE_COMPLETE" | "UPDATE_COMPLETE" | "IMPORT_COMPLETE"
        )
    }
}

/// The stack by name or id; `None` when it does not exist or was deleted.
pub async fn find_stack(
    c: &Clients,
    d: &Deadline,
    stack: &str,
) -> Result<Option<StackInfo>, AwsError> {
    let out = c
        .call(d, &READ, Quota::Unpublished, || async {
            c.cloudformation
                .describe_stacks()
                .stack_name(stack)
                .send()
                .await
                .map_err(classify)
        })
        .await
        .or_not_found()?;
    let Some(s) = out.as_ref().and_then(|o| o.stacks().first()) else {
        return Ok(None);
    };
    let status = s
        .stack_status()
        .map(|st| st.as_str().to_string())
        .unwrap_or_default();
    if status == "DELETE_COMPLETE" {
        return Ok(None);
    }
    Ok(Some(StackInfo {
        id: s.stack_id().unwrap_or_default().to_string(),
        name: s.stack_name().unwrap_or_default().to_string(),
        status,
        status_reason: s.stack_status_reason().map(str::to_string),
        outputs: s
            .outputs()
            .iter()
            .filter_map(|o| Some((o.output_key()?.to_string(), o.output_value()?.to_string())))
            .collect(),
        parameters: s
            .parameters()
            .iter()
            .filter_map(|p| {
                Some((
                    p.parameter_key()?.to_string(),
                    p.parameter_value().unwrap_or_default().to_string(),
                ))
            })
            .collect(),
        tags: s
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
            .collect(),
    }))
}

/// What a change set came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeSetOutcome {
    Ready,
    /// The template and parameters equal what the stack runs.
    NoChanges,
}

/// Waits for the change set to be created. A change set that failed because
/// it changes nothing is reported as `NoChanges`: CloudFormation says so
/// only in its status reason text.
pub async fn wait_change_set_created(
    c: &Clients,
    change_set: &str,
    stack: &str,
    deadline: &Deadline,
) -> Result<ChangeSetOutcome, AwsError> {
    poll_until(deadline, || async {
        let out = c
            .call(deadline, &READ, Quota::Unpublished, || async {
                c.cloudformation
                    .describe_change_set()
                    .change_set_name(change_set)
                    .stack_name(stack)
                    .send()
                    .await
                    .map_err(classify)
            })
            .await?;
        let status = out.status().map(|s| s.as_str()).unwrap_or_default();
        match status {
            "CREATE_COMPLETE" => Ok(Poll::Ready(ChangeSetOutcome::Ready)),
            "FAILED" => {
                let reason = out.status_reason().unwrap_or_default();
                if reason.contains("didn't contain changes") || reason.contains("No updates") {
                    Ok(Poll::Ready(ChangeSetOutcome::NoChanges))
                } else {
                    Err(AwsError::Failed(format!("change set failed: {reason}")))
                }
            }
            _ => Ok(Poll::Pending),
        }
    })
    .await
}

pub async fn delete_change_set(
    c: &Clients,
    d: &Deadline,
    change_set: &str,
    stack: &str,
) -> Result<(), AwsError> {
    c.call(d, &STACK_CHANGE, Quota::Unpublished, || async {
        c.cloudformation
            .delete_change_set()
            .change_set_name(change_set)
            .stack_name(stack)
            .send()
            .await
            .map_err(classify)
    })
    .await
    .or_not_found()?;
    Ok(())
}

/// The token makes a replay after a lost answer the same request.
pub async fn execute_change_set(
    c: &Clients,
    d: &Deadline,
    change_set: &str,
    stack: &str,
    client_request_token: &str,
) -> Result<(), AwsError> {
    c.call(d, &STACK_CHANGE, Quota::Unpublished, || async {
        c.cloudformation
            .execute_change_set()
            .change_set_name(change_set)
            .stack_name(stack)
            .client_request_token(client_request_token)
            .send()
            .await
            .map_err(classify)
    })
    .await?;
    Ok(())
}

/// Waits until CloudFormation has finished executing the change set. Right
/// after ExecuteChangeSet the stack may still show the status of its
/// previous operation (UPDATE_COMPLETE from the last update), which must not
/// count as this one done: the change set's own execution status says when
/// it is. A change set no longer found (AWS cleans them up) leaves the
/// decision to the stack's status.
pub async fn wait_change_set_executed(
    c: &Clients,
    change_set: &str,
    stack: &str,
    deadline: &Deadline,
) -> Result<(), AwsError> {
    poll_until(deadline, || async {
        let out = c
            .call(deadline, &READ, Quota::Unpublished, || async {
                c.cloudformation
                    .describe_change_set()
                    .change_set_name(change_set)
                    .stack_name(stack)
                    .send()
                    .await
                    .map_err(classify)
            })
            .await
            .or_not_found()?;
        let Some(out) = out else {
            return Ok(Poll::Ready(()));
        };
        match out.execution_status().map(|s| s.as_str()) {
            Some("EXECUTE_COMPLETE" | "EXECUTE_FAILED" | "OBSOLETE") | None => Ok(Poll::Ready(())),
            _ => Ok(Poll::Pending),
        }
    })
    .await
}

/// Waits until the stack is no longer in progress; a stack that ends
/// unhealthy is an error carrying its failure reason.
pub async fn wait_stack_settled(
    c: &Clients,
    stack: &str,
    deadline: &Deadline,
) -> Result<StackInfo, AwsError> {
    let info = poll_until(deadline, || async {
        match find_stack(c, deadline, stack).await? {
            None => Err(AwsError::not_found(format!("stack {stack} disappeared"))),
            Some(s) if s.is_in_progress() => Ok(Poll::Pending),
            Some(s) => Ok(Poll::Ready(s)),
        }
    })
    .await?;
    if info.is_healthy() {
        return Ok(info);
    }
    let reason = stack_failure_reason(c, deadline, stack)
        .await
        .ok()
        .flatten()
        .or(info.status_reason.clone())
        .unwrap_or_else(|| "no reason given".into());
    Err(AwsError::Failed(format!(
        "stack {} ended in {}: {reason}",
        info.name, info.status
    )))
}

/// The earliest resource failure among the stack's events: AWS lists events
/// newest first, so it is the last one listed, and usually the root cause.
pub async fn stack_failure_reason(
    c: &Clients,
    d: &Deadline,
    stack: &str,
) -> Result<Option<String>, AwsError> {
    let out = c
        .call(d, &READ, Quota::Unpublished, || async {
            c.cloudformation
                .describe_stack_events()
                .stack_name(stack)
                .send()
                .await
                .map_err(classify)
        })
        .await?;
    Ok(out
        .stack_events()
        .iter()
        .filter(|e| {
            e.resource_status()
                .is_some_and(|s| s.as_str().ends_with("_FAILED"))
        })
        .filter_map(|e| {
            Some(format!(
                "{}: {}",
                e.logical_resource_id().unwrap_or("?"),
                e.resource_status_reason()?
            ))
        })
        .next_back())
}

/// The Lambda the stack made: its `RotationLambdaARN` output, or when
/// outputs are missing, its one `AWS::Lambda::Function` resource.
pub async fn find_stack_lambda(
    c: &Clients,
    d: &Deadline,
    stack: &StackInfo,
) -> Result<Option<String>, AwsError> {
    if let Some(arn) = stack.outputs.get("RotationLambdaARN") {
        return Ok(Some(arn.clone()));
    }
    let out = c
        .call(d, &READ, Quota::Unpublished, || async {
            c.cloudformation
                .describe_stack_resources()
                .stack_name(&stack.id)
                .send()
                .await
                .map_err(classify)
        })
        .await
        .or_not_found()?;
    Ok(out.and_then(|o| {
        o.stack_resources()
            .iter()
            .find(|r| r.resource_type() == Some("AWS::Lambda::Function"))
            .and_then(|r| r.physical_resource_id().map(str::to_string))
    }))
}

/// The id of the stack that holds the resource with this physical id (a
/// function's name, say), whatever the stack is called: how a Lambda set up
/// outside the provider leads back to the stack that made it. `None` when
/// no stack holds it.
pub async fn find_stack_holding(
    c: &Clients,
    d: &Deadline,
    physical_id: &str,
) -> Result<Option<String>, AwsError> {
    let out = c
        .call(d, &READ, Quota::Unpublished, || async {
            c.cloudformation
                .describe_stack_resources()
                .physical_resource_id(physical_id)
                .send()
                .await
                .map_err(classify)
        })
        .await
        .or_not_found()?;
    Ok(out.and_then(|o| {
        o.stack_resources()
            .iter()
            .find_map(|r| r.stack_id().map(str::to_string))
    }))
}

/// The physical ids of the stack's resources of one type, e.g.
/// `AWS::Lambda::Permission`.
pub async fn find_stack_resources_of_type(
    c: &Clients,
    d: &Deadline,
    stack_ref: &str,
    resource_type: &str,
) -> Result<Vec<String>, AwsError> {
    let out = c
        .call(d, &READ, Quota::Unpublished, || async {
            c.cloudformation
                .describe_stack_resources()
                .stack_name(stack_ref)
                .send()
                .await
                .map_err(classify)
        })
        .await
        .or_not_found()?;
    Ok(out
        .map(|o| {
            o.stack_resources()
                .iter()
                .filter(|r| r.resource_type() == Some(resource_type))
                .filter_map(|r| r.physical_resource_id().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

/// The names of the IAM roles the stack made (its `AWS::IAM::Role`
/// resources' physical ids).
pub async fn find_stack_roles(
    c: &Clients,
    d: &Deadline,
    stack_ref: &str,
) -> Result<Vec<String>, AwsError> {
    find_stack_resources_of_type(c, d, stack_ref, "AWS::IAM::Role").await
}

/// Deletes the stack and waits until it is gone. Not found counts as done.
pub async fn delete_stack(
    c: &Clients,
    stack: &str,
    client_request_token: &str,
    deadline: &Deadline,
) -> Result<(), AwsError> {
    // A stack still changing cannot be deleted: wait it out first.
    let Some(current) = wait_while_in_progress(c, stack, deadline).await? else {
        return Ok(());
    };
    // A stack whose deletion failed before is deleted again (AWS retries
    // the resources that failed); its old DELETE_FAILED may still show on
    // the first look after the call, so it counts only once the deletion was
    // seen under way, or after a few looks.
    let failed_before = current.status == "DELETE_FAILED";
    let looks = std::sync::atomic::AtomicU32::new(0);
    let seen_under_way = std::sync::atomic::AtomicBool::new(!failed_before);
    c.call(deadline, &STACK_CHANGE, Quota::Unpublished, || async {
        c.cloudformation
            .delete_stack()
            .stack_name(stack)
            .client_request_token(client_request_token)
            .send()
            .await
            .map_err(classify)
    })
    .await
    .or_not_found()?;
    let settled = poll_until(deadline, || async {
        match find_stack(c, deadline, stack).await? {
            None => Ok(Poll::Ready(None)),
            Some(s) if s.status == "DELETE_FAILED" => {
                let looked = looks.fetch_add(1, Ordering::Relaxed) + 1;
                if seen_under_way.load(Ordering::Relaxed) || looked > 3 {
                    Ok(Poll::Ready(Some(s)))
                } else {
                    Ok(Poll::Pending)
                }
            }
            Some(_) => {
                seen_under_way.store(true, Ordering::Relaxed);
                Ok(Poll::Pending)
            }
        }
    })
    .await?;
    match settled {
        None => Ok(()),
        Some(s) => Err(AwsError::Failed(format!(
            "deleting stack {} failed: {}",
            s.name,
            s.status_reason.unwrap_or_else(|| "no reason given".into())
        ))),
    }
}

/// Waits until the stack is not `*_IN_PROGRESS` (another deployment, a
/// rollback, or our own interrupted one); `None` when it does not exist.
/// A stack in REVIEW_IN_PROGRESS has a change set nobody executed: it is
/// settled as far as a new change set or a deletion is concerned.
pub async fn wait_while_in_progress(
    c: &Clients,
    stack: &str,
    deadline: &Deadline,
) -> Result<Option<StackInfo>, AwsError> {
    poll_until(deadline, || async {
        match find_stack(c, deadline, stack).await? {
            Some(s) if s.is_in_progress() && s.status != "REVIEW_IN_PROGRESS" => Ok(Poll::Pending),
            found => Ok(Poll::Ready(found)),
        }
    })
    .await
}
