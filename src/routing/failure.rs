//! How each target failed a request, and the error the caller reads: one clause per
//! target ("openai 503 after 3 attempts; backup timed out after 20s").

use super::attempt::AttemptError;
use super::circuit::Rejected;
use super::limits::NoBudget;
use super::retry::Stop;
use super::table::Target;
use super::RouteError;
use crate::provider::ProviderError;
use std::fmt;
use std::time::Duration;

/// One target's failure.
#[derive(Debug)]
pub struct Failure {
    endpoint: String,
    key_env: Option<String>,
    /// What ended the attempts at this target.
    error: AttemptError,
    attempts: u32,
    stop: Stop,
    /// The last provider error, when something else (the breaker, the budget, the
    /// deadline) ended the attempts after it.
    last: Option<ProviderError>,
}

impl Failure {
    /// What ended the attempts at this target.
    pub fn error(&self) -> &AttemptError {
        &self.error
    }

    pub fn new(
        target: &Target,
        error: AttemptError,
        attempts: u32,
        stop: Stop,
        last: Option<ProviderError>,
    ) -> Self {
        Self {
            endpoint: target.endpoint.name.clone(),
            key_env: target.endpoint.key_env.clone(),
            error,
            attempts,
            stop,
            last,
        }
    }

    /// A target the request never reached.
    pub fn not_tried(target: &Target) -> Self {
        Self::new(target, AttemptError::Deadline, 0, Stop::Deadline, None)
    }

    /// The attempts ended by running out of time: a provider timeout, or the deadline.
    fn timed_out(&self) -> bool {
        matches!(self.stop, Stop::Deadline)
            || matches!(self.error, AttemptError::Deadline)
            || matches!(
                &self.error,
                AttemptError::Provider {
                    error: ProviderError::Timeout(_),
                    ..
                }
            )
            || matches!(self.last, Some(ProviderError::Timeout(_)))
    }

    /// No call was made only because no budget was free in time.
    fn only_budget(&self) -> bool {
        matches!(self.error, AttemptError::NoBudget(_)) && self.attempts == 0
    }

    /// Why the attempts ended early, if they did.
    fn note(&self) -> Option<String> {
        match (&self.error, self.stop) {
            (AttemptError::Provider { .. }, Stop::RetryAfter(wait)) => {
                Some(format!("Retry-After {} is past the deadline", secs(wait)))
            }
            (AttemptError::Provider { .. }, Stop::Deadline) => Some("deadline reached".into()),
            (AttemptError::Provider { cut_short, .. }, Stop::Exhausted) => {
                cut_short.then(|| "deadline reached".into())
            }
            (AttemptError::Circuit(_), _) => Some("circuit opened".into()),
            (AttemptError::NoBudget(NoBudget::Rate { .. }), _) => {
                Some("no rate budget before the deadline".into())
            }
            (AttemptError::NoBudget(NoBudget::Concurrency { .. }), _) => {
                Some("no free concurrency slot before the deadline".into())
            }
            (AttemptError::Deadline, _) => Some("deadline reached".into()),
        }
    }

    fn after(&self) -> String {
        let s = if self.attempts == 1 { "" } else { "s" };
        format!("after {} attempt{s}", self.attempts)
    }

    /// The clause for a target that was called at least once.
    fn called(&self, f: &mut fmt::Formatter<'_>, error: &ProviderError) -> fmt::Result {
        let name = &self.endpoint;
        let mut notes: Vec<String> = Vec::new();
        match error {
            ProviderError::Status { status, .. } => {
                write!(f, "{name} {status} {}", self.after())?;
                if let (Some(var), 401 | 403) = (&self.key_env, status) {
                    notes.push(format!("check {var}"));
                }
            }
            ProviderError::Timeout(after) => {
                write!(f, "{name} timed out after {}", secs(*after))?;
                if self.attempts > 1 {
                    notes.push(format!("{} attempts", self.attempts));
                }
            }
            ProviderError::Connect(why) => {
                write!(f, "{name} cannot connect ({why}) {}", self.after())?
            }
            ProviderError::Decode(why) => write!(f, "{name} sent an unreadable answer ({why})")?,
            ProviderError::Unsupported(why) => write!(f, "{name} cannot take it: {why}")?,
        }
        notes.extend(self.note());
        if notes.is_empty() {
            Ok(())
        } else {
            write!(f, " ({})", notes.join(", "))
        }
    }

    /// The clause for a target that was never called.
    fn skipped(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = &self.endpoint;
        match &self.error {
            AttemptError::Circuit(Rejected::Open { retry_in }) => write!(
                f,
                "{name} skipped: circuit open after repeated failures, next probe in {}",
                secs(*retry_in)
            ),
            AttemptError::Circuit(Rejected::Probing) => {
                write!(
                    f,
                    "{name} skipped: circuit half-open, another request is probing it"
                )
            }
            AttemptError::NoBudget(NoBudget::Rate { wait }) => write!(
                f,
                "{name} rate-limited: budget frees up in {}, past the deadline",
                secs(*wait)
            ),
            AttemptError::NoBudget(NoBudget::Concurrency { max }) => write!(
                f,
                "{name} busy: all {max} concurrent slots taken until the deadline"
            ),
            AttemptError::Deadline | AttemptError::Provider { .. } => {
                write!(f, "{name} not tried: deadline reached")
            }
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.error, &self.last) {
            (AttemptError::Provider { error, .. }, _) => self.called(f, error),
            (_, Some(last)) => self.called(f, last),
            (_, None) => self.skipped(f),
        }
    }
}

/// The error for a request that no target answered.
pub fn give_up(route: &str, failures: &[Failure]) -> RouteError {
    if !failures.is_empty() && failures.iter().all(Failure::only_budget) {
        return RouteError::RateLimited {
            route: route.to_owned(),
        };
    }
    let summary: Vec<String> = failures.iter().map(ToString::to_string).collect();
    RouteError::AllFailed {
        route: route.to_owned(),
        summary: summary.join("; "),
        timed_out: failures.iter().any(Failure::timed_out),
    }
}

/// `20s`, `1.5s`, `250ms`: short and exact enough for a person.
pub fn secs(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::secs;
    use std::time::Duration;

    #[test]
    fn durations_read_well() {
        assert_eq!(secs(Duration::from_secs(20)), "20s");
        assert_eq!(secs(Duration::from_millis(19_800)), "19.8s");
        assert_eq!(secs(Duration::from_millis(250)), "250ms");
    }
}
