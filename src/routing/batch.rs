//! Batch lines: capacity is reserved first (a target, its circuit admission, a slot and
//! rate budget), only when no interactive request is waiting for it; then exactly one
//! attempt is made. The queue retries a failed line, so there is no retry loop here.

use super::attempt::{self, AttemptError};
use super::circuit::{Admission, Rejected};
use super::failure::Failure;
use super::limits::{estimate_tokens, Budget, Busy};
use super::retry::Stop;
use super::table::{self, OwnedInFlight, Route, Target};
use super::{fatal_detail, pinned, Completion, Router};
use crate::provider::{FailureKind, LlmRequest, ProviderError};
use futures::future::select_all;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio::time::Instant;

/// Longest sleep between looks while nothing says when capacity frees up (a probe in
/// progress); slots, waiters and rate budgets wake a reservation themselves.
const RECHECK: Duration = Duration::from_secs(1);

/// Capacity held for one batch line: a target of the route, its circuit admission, a
/// concurrency slot and one request (plus estimated tokens) of rate budget. Dropping it
/// unused gives the slot back; the rate budget stays spent.
#[derive(Debug)]
pub struct Reservation {
    route: String,
    target: Target,
    admission: Admission,
    budget: Budget,
    _in_flight: OwnedInFlight,
}

impl Reservation {
    pub fn endpoint(&self) -> &str {
        &self.target.endpoint.name
    }
}

/// Why one batch attempt failed.
#[derive(Debug, Clone)]
pub struct BatchFailure {
    /// Whether the line should go back to the queue (connect errors, timeouts, 408, 429,
    /// 5xx, 401/403 (another target may take it next time), decode errors); false for
    /// 400, 404, 422 and other 4xx (the line itself is wrong).
    pub retryable: bool,
    /// The provider's Retry-After, when it sent one.
    pub retry_after: Option<Duration>,
    /// The provider's HTTP status, when there was one.
    pub status: Option<u16>,
    pub endpoint: String,
    /// What a person reads in the job's error file (same style as `RouteError` texts).
    pub message: String,
}

impl Router {
    /// Whether `route` could start a batch line now without waiting: some target has a
    /// circuit that admits calls, a free slot, rate budget not known to be spent, and no
    /// interactive request waiting for that endpoint. Cheap, takes nothing. Unknown route:
    /// false.
    pub fn has_spare(&self, route: &str) -> bool {
        self.route(route).is_some_and(|r| {
            r.tiers
                .iter()
                .flatten()
                .any(|t| !t.endpoint.circuit.is_open() && t.endpoint.limits.has_spare())
        })
    }

    /// Waits until a target of `route` (in priority order) can take one batch line without
    /// making an interactive request wait, then takes its capacity. Gives up (None) at
    /// `deadline`. Unknown route: None.
    pub async fn reserve(
        &self,
        route: &str,
        req: &LlmRequest,
        deadline: Instant,
    ) -> Option<Reservation> {
        self.reserve_pinned(route, req, deadline, None).await
    }

    /// [`Self::reserve`] at only the route's targets whose model is `pin`, when set.
    pub async fn reserve_pinned(
        &self,
        route: &str,
        req: &LlmRequest,
        deadline: Instant,
        pin: Option<&str>,
    ) -> Option<Reservation> {
        let table = self.route(route)?;
        let tokens = estimate_tokens(req);
        loop {
            // Registered before looking, so a release between the look and the sleep wakes us.
            let changed = changes(table);
            let wake = match try_reserve(table, req, tokens, pin) {
                Ok(reservation) => return Some(reservation),
                Err(wake) => wake,
            };
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            let until = wake
                .unwrap_or(now + RECHECK)
                .min(now + RECHECK)
                .min(deadline);
            tokio::select! {
                () = tokio::time::sleep_until(until) => {}
                _ = select_all(changed) => {}
            }
        }
    }

    /// One attempt with the reserved capacity (the target's model replaces `req.model`),
    /// at most `timeout` (capped by the endpoint's own). No retries, no failover: the queue
    /// retries. Reported to the breaker, limits and metrics like any attempt.
    pub async fn complete_reserved(
        &self,
        reservation: Reservation,
        mut req: LlmRequest,
        timeout: Duration,
    ) -> Result<Completion, BatchFailure> {
        let Reservation {
            route,
            target,
            admission,
            budget,
            _in_flight,
        } = reservation;
        req.set_model(&target.model);
        let endpoint = &target.endpoint;
        let timeout = timeout.min(endpoint.timeout);
        match attempt::call(endpoint, admission, &budget, &req, timeout).await {
            Ok(response) => Ok(Completion {
                response,
                endpoint: endpoint.name.clone(),
                attempts: 1,
            }),
            Err(error) => Err(failure(&route, &target, error)),
        }
    }
}

type Changed<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// One wake-up per endpoint of the route, for when its budget may have freed up.
fn changes(route: &Route) -> Vec<Changed<'_>> {
    let mut changed: Vec<Changed<'_>> = route
        .tiers
        .iter()
        .flatten()
        .map(|t| Box::pin(t.endpoint.limits.changed().notified()) as Changed<'_>)
        .collect();
    // select_all needs at least one future; a route always has targets, but be safe.
    changed.push(Box::pin(std::future::pending()));
    changed
}

/// Capacity at the first target (in priority order) that has it now, or the earliest
/// instant one is known to free up (None: a wake-up will tell).
fn try_reserve(
    route: &Route,
    req: &LlmRequest,
    tokens: u32,
    pin: Option<&str>,
) -> Result<Reservation, Option<Instant>> {
    let mut wake: Option<Instant> = None;
    let mut sooner = |at: Instant| wake = Some(wake.map_or(at, |w| w.min(at)));
    for tier in &route.tiers {
        for target in pinned(table::order(tier, rand::random::<f64>), pin) {
            let endpoint = &target.endpoint;
            if endpoint.upstream.refusal(req).is_some() {
                continue;
            }
            let admission = match endpoint.circuit.admit() {
                Ok(admission) => admission,
                Err(Rejected::Open { retry_in }) => {
                    sooner(Instant::now() + retry_in);
                    continue;
                }
                Err(Rejected::Probing) => continue,
            };
            match endpoint.limits.try_take(tokens) {
                Ok(budget) => {
                    return Ok(Reservation {
                        route: route.name.clone(),
                        target: target.clone(),
                        admission,
                        budget,
                        _in_flight: table::assign_owned(endpoint),
                    })
                }
                Err(Busy::Until(at)) => sooner(at),
                Err(Busy::Interactive | Busy::Slots) => {}
            }
        }
    }
    Err(wake)
}

/// The failure as the batch consumer needs it.
fn failure(route: &str, target: &Target, error: AttemptError) -> BatchFailure {
    let endpoint = target.endpoint.name.clone();
    let AttemptError::Provider {
        error: provider, ..
    } = &error
    else {
        // `call` fails only with provider errors; anything else is worth another go.
        return BatchFailure {
            retryable: true,
            retry_after: None,
            status: None,
            message: format!("route '{route}': {endpoint} not tried"),
            endpoint,
        };
    };
    let retryable = match provider.kind() {
        FailureKind::Retryable | FailureKind::NextTarget => true,
        FailureKind::Fatal => matches!(provider, ProviderError::Decode(_)),
    };
    let detail = if retryable {
        Failure::new(target, error.clone(), 1, Stop::Exhausted, None).to_string()
    } else {
        fatal_detail(&endpoint, provider)
    };
    BatchFailure {
        retryable,
        retry_after: provider.retry_after(),
        status: match provider {
            ProviderError::Status { status, .. } => Some(*status),
            _ => None,
        },
        message: format!("route '{route}': {detail}"),
        endpoint,
    }
}
