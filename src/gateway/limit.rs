//! Per-caller request rate limit (GCRA from `governor`): one bucket per API key, or one
//! shared bucket when no keys are set. Beyond it: 429 with `Retry-After`.

use super::auth::Caller;
use super::error::ApiError;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};
use std::num::NonZeroU32;
use std::sync::Arc;

/// The limiter, or none when no limit is configured.
#[derive(Clone, Default)]
pub struct KeyLimit {
    limiter: Option<Arc<DefaultKeyedRateLimiter<Caller>>>,
}

impl KeyLimit {
    /// `per_second` requests a second per caller, with bursts of as many.
    pub fn new(per_second: Option<NonZeroU32>) -> Self {
        let limiter =
            per_second.map(|n| Arc::new(DefaultKeyedRateLimiter::keyed(Quota::per_second(n))));
        Self { limiter }
    }

    /// Takes one request from `caller`'s budget, or says how long until there is one.
    pub fn check(&self, caller: Caller) -> Result<(), ApiError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter
            .check_key(&caller)
            .map_err(|not_until| ApiError::KeyRateLimited {
                retry_after: not_until.wait_time_from(limiter.clock().now()),
            })
    }
}

/// Middleware, after [`super::auth::require_key`] (which says who the caller is).
pub async fn per_key(State(limit): State<KeyLimit>, req: Request, next: Next) -> Response {
    let caller = req
        .extensions()
        .get::<Caller>()
        .copied()
        .unwrap_or(Caller::Anonymous);
    match limit.check(caller) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_has_its_own_budget() {
        let limit = KeyLimit::new(NonZeroU32::new(2));
        assert!(limit.check(Caller::Key(0)).is_ok());
        assert!(limit.check(Caller::Key(0)).is_ok());
        let refused = limit.check(Caller::Key(0));
        assert!(
            matches!(refused, Err(ApiError::KeyRateLimited { retry_after }) if retry_after.as_millis() <= 500),
            "{refused:?}"
        );
        assert!(limit.check(Caller::Key(1)).is_ok());
    }

    #[test]
    fn no_limit_never_refuses() {
        let limit = KeyLimit::new(None);
        assert!((0..1000).all(|_| limit.check(Caller::Anonymous).is_ok()));
    }
}
