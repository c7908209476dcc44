//! Interim: driving the emulator's fault layer (replaced by the full module).

use super::moto::Emulator;

#[derive(Clone, Copy, Debug)]
pub enum Fault {
    Throttle,
    ServerError,
    Unavailable,
    ResetBefore,
    ResetAfter,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Throttle => "throttle",
            Fault::ServerError => "server_error",
            Fault::Unavailable => "unavailable",
            Fault::ResetBefore => "reset_before",
            Fault::ResetAfter => "reset_after",
        }
    }
}

#[derive(Clone, Debug)]
pub struct FaultRule {
    service: String,
    call: String,
    fault: Fault,
    share: f64,
    skip: u32,
    times: Option<u32>,
}

impl FaultRule {
    pub fn on(service: &str, call: &str, fault: Fault) -> FaultRule {
        FaultRule {
            service: service.into(),
            call: call.into(),
            fault,
            share: 1.0,
            skip: 0,
            times: None,
        }
    }
    pub fn share(mut self, share: f64) -> FaultRule {
        self.share = share;
        self
    }
    pub fn skip(mut self, n: u32) -> FaultRule {
        self.skip = n;
        self
    }
    pub fn times(mut self, n: u32) -> FaultRule {
        self.times = Some(n);
        self
    }
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"service": self.service, "call": self.call, "fault": self.fault.name(),
            "share": self.share, "skip": self.skip, "times": self.times})
    }
}

impl Emulator {
    pub fn set_faults(&self, seed: u64, rules: &[FaultRule]) {
        let body = serde_json::json!({"seed": seed, "rules": rules.iter().map(FaultRule::to_json).collect::<Vec<_>>()});
        let (status, answer) = self
            .http("POST", "/_rdsrot/faults", &body.to_string())
            .expect("set faults");
        assert_eq!(status, 200, "{answer}");
    }
    pub fn clear_faults(&self) {
        let (status, answer) = self
            .http("DELETE", "/_rdsrot/faults", "")
            .expect("clear faults");
        assert_eq!(status, 200, "{answer}");
    }
    pub fn fault_counts(&self) -> serde_json::Value {
        let (_, answer) = self
            .http("GET", "/_rdsrot/faults", "")
            .expect("fault counts");
        serde_json::from_str(&answer).unwrap_or_default()
    }
}
