//! Driving the emulator's under-load layer (`tests/support/aws_under_load.py`)
//! from tests: fault rules on named calls, the scale of AWS's request
//! quotas, the lag of ListSecrets, and stack states moto never reaches
//! (those from `tests/support/emulator.py`). All go through the emulator's control endpoints on its own port,
//! which are never faulted or throttled themselves.

#![allow(dead_code)]

use serde_json::{json, Value};

use super::moto::Emulator;

/// What a fault rule does to a request it picks, each in the service's own
/// wire shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The service's throttling error (`ThrottlingException`,
    /// `TooManyRequestsException` or `Throttling`), as an empty quota bucket
    /// answers.
    Throttle,
    /// HTTP 500 (`InternalServiceError`, `ServiceException`, `ServiceFailure`,
    /// `InternalServerErrorException` or `InternalFailure`).
    ServerError,
    /// HTTP 503 (`ServiceUnavailable` or `ServiceUnavailableException`).
    Unavailable,
    /// The connection is reset before the request reaches moto: the call did
    /// not happen.
    ResetBefore,
    /// moto handles the request, then the connection is reset instead of
    /// answering: the call happened and its answer is lost.
    ResetAfter,
}

impl Fault {
    /// The kind's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Throttle => "throttle",
            Fault::ServerError => "server_error",
            Fault::Unavailable => "unavailable",
            Fault::ResetBefore => "reset_before",
            Fault::ResetAfter => "reset_after",
        }
    }
}

/// One fault rule. The first rule that matches a request decides it; a rule
/// that has injected its `times` faults no longer matches.
#[derive(Clone, Debug)]
pub struct FaultRule {
    service: String,
    call: String,
    fault: Fault,
    share: f64,
    skip: u64,
    times: Option<u64>,
}

impl FaultRule {
    /// Every request to `call` of `service` (`"*"` for any) gets `fault`.
    /// `service` is the SigV4 signing name (`secretsmanager`, `lambda`, `iam`,
    /// `cloudformation`, `serverlessrepo`, `sts`), `call` the API operation
    /// name (`AddPermission`).
    pub fn on(service: &str, call: &str, fault: Fault) -> FaultRule {
        FaultRule {
            service: service.to_owned(),
            call: call.to_owned(),
            fault,
            share: 1.0,
            skip: 0,
            times: None,
        }
    }

    /// Each matching request is faulted with this probability (drawn from
    /// the seed given to [`Emulator::set_faults`]).
    pub fn share(mut self, share: f64) -> FaultRule {
        self.share = share;
        self
    }

    /// The first `requests` matching requests go through untouched.
    pub fn skip(mut self, requests: u64) -> FaultRule {
        self.skip = requests;
        self
    }

    /// At most `faults` faults from this rule.
    pub fn times(mut self, faults: u64) -> FaultRule {
        self.times = Some(faults);
        self
    }

    fn to_json(&self) -> Value {
        json!({
            "service": self.service,
            "call": self.call,
            "fault": self.fault.as_str(),
            "share": self.share,
            "skip": self.skip,
            "times": self.times,
        })
    }
}

/// One signed request as the emulator's layer logged it, in arrival order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedRequest {
    /// 1 for the emulator's first request, then one more per request.
    pub n: u64,
    /// `"service:call"`, as in [`Emulator::fault_counts`].
    pub call: String,
    /// Made by a rotation function with its role's credentials, not by the
    /// provider or the test.
    pub function: bool,
    /// `None` while it is being handled; then the fault that answered it
    /// (`"throttle"`, `"reset_before"`, ...), `"quota"` for an empty bucket,
    /// `"reset_after"`, or moto's status (`"200"`).
    pub answer: Option<String>,
}

impl Emulator {
    /// The number of the last request the emulator's layer has seen (0:
    /// none yet).
    pub fn last_request(&self) -> u64 {
        self.control("GET", "/_rdsrot/requests?after=0", "")["last"]
            .as_u64()
            .expect("the request log's last number")
    }

    /// The requests numbered after `n`, in the order they arrived.
    pub fn requests_after(&self, n: u64) -> Vec<LoggedRequest> {
        let log = self.control("GET", &format!("/_rdsrot/requests?after={n}"), "");
        log["requests"]
            .as_array()
            .expect("the request log's requests")
            .iter()
            .map(|r| LoggedRequest {
                n: r["n"].as_u64().expect("a request's number"),
                call: r["call"].as_str().expect("a request's call").to_owned(),
                function: r["function"].as_bool().unwrap_or(false),
                answer: r["answer"].as_str().map(str::to_owned),
            })
            .collect()
    }

    /// Replaces the fault rules (and zeroes the counts); `seed` makes the
    /// `share` draws repeatable for the same order of requests.
    pub fn set_faults(&self, seed: u64, rules: &[FaultRule]) {
        let body = json!({
            "seed": seed,
            "rules": rules.iter().map(FaultRule::to_json).collect::<Vec<_>>(),
        });
        self.control("POST", "/_rdsrot/faults", &body.to_string());
    }

    /// Removes every fault rule; the counts stay readable.
    pub fn clear_faults(&self) {
        self.control("DELETE", "/_rdsrot/faults", "");
    }

    /// The rules in force and, under `calls`, per `"service:call"`:
    /// `{"seen": N, "faults": {"throttle": N, ...}}`.
    pub fn fault_counts(&self) -> Value {
        self.control("GET", "/_rdsrot/faults", "")
    }

    /// AWS's request quotas times `scale` (1.0: AWS's real rates, the
    /// default; 0.0: no quotas). Every bucket starts full again and the
    /// quota counts restart at zero.
    pub fn set_quota_scale(&self, scale: f64) {
        self.control(
            "POST",
            "/_rdsrot/quotas",
            &json!({ "scale": scale }).to_string(),
        );
    }

    /// The scale and, under `classes`, per API class (`"lambda:GetPolicy"`):
    /// `{"rate", "scaled_rate", "admitted", "throttled"}`.
    pub fn quota_counts(&self) -> Value {
        self.control("GET", "/_rdsrot/quotas", "")
    }

    /// ListSecrets answers as of up to `seconds` ago, as AWS documents
    /// they may be (0: current, the default).
    pub fn set_list_secrets_lag(&self, seconds: f64) {
        self.control(
            "POST",
            "/_rdsrot/consistency",
            &json!({ "list_secrets_lag_seconds": seconds }).to_string(),
        );
    }

    /// How many ListSecrets answers were given again since the lag was set.
    pub fn list_secrets_replayed(&self) -> u64 {
        self.control("GET", "/_rdsrot/consistency", "")["list_secrets_replayed"]
            .as_u64()
            .unwrap_or(0)
    }

    /// How long Lambda takes, from now on, to create a function (`State:
    /// Pending` meanwhile) or apply a change to it (`LastUpdateStatus:
    /// InProgress`); another change meanwhile is refused with
    /// ResourceConflictException. 1 s unless set.
    pub fn set_lambda_change_seconds(&self, seconds: f64) {
        self.control(
            "POST",
            "/_rdsrot/lambda",
            &json!({ "change_seconds": seconds }).to_string(),
        );
    }

    /// Puts the stack (by name or id) in `status` now, as a failure AWS
    /// can leave it in and moto never does (`UPDATE_ROLLBACK_FAILED`,
    /// `DELETE_FAILED`, ...).
    pub fn set_stack_status(&self, stack: &str, status: &str) {
        self.control(
            "POST",
            "/_rdsrot/stacks",
            &json!({ "stack": stack, "status": status }).to_string(),
        );
    }

    /// The stack's next `times` DeleteStack calls leave it in
    /// `DELETE_FAILED` instead of deleting it.
    pub fn fail_stack_deletions(&self, stack: &str, times: u64) {
        self.control(
            "POST",
            "/_rdsrot/stacks",
            &json!({ "stack": stack, "fail_deletions": times }).to_string(),
        );
    }

    fn control(&self, method: &str, path: &str, body: &str) -> Value {
        let (status, answer) = self
            .http(method, path, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        assert_eq!(status, 200, "{method} {path} answered {status}: {answer}");
        serde_json::from_str(&answer)
            .unwrap_or_else(|e| panic!("{method} {path} answered no JSON ({e}): {answer}"))
    }
}
