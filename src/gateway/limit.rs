//! Per-caller request rate limit (GCRA from `governor`): one bucket per API key, or one
//! shared bucket when no keys are set. Beyond it: 429 with `Retry-After`. And a cap on
//! requests in flight at once (streams included, until their last byte), so that
//! however many connections clients open, the gateway holds a bounded amount of work.

use super::auth::Caller;
use super::error::ApiError;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};
use http_body::{Body as HttpBody, Frame, SizeHint};
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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

/// The most requests answered at once.
#[derive(Clone)]
pub struct InFlight {
    slots: Arc<Semaphore>,
    max: usize,
}

impl InFlight {
    pub fn new(max: usize) -> Self {
        let max = max.max(1);
        Self {
            slots: Arc::new(Semaphore::new(max)),
            max,
        }
    }
}

/// Middleware: 429 when every slot is taken; otherwise the slot is held until the
/// response body (a whole answer or a stream) has been sent or dropped.
pub async fn in_flight(State(limit): State<InFlight>, req: Request, next: Next) -> Response {
    let Ok(slot) = limit.slots.clone().try_acquire_owned() else {
        return ApiError::Busy { max: limit.max }.into_response();
    };
    next.run(req)
        .await
        .map(|body| Body::new(Holding { body, _slot: slot }))
}

/// A response body that keeps its request's slot until it is done.
struct Holding {
    body: Body,
    _slot: OwnedSemaphorePermit,
}

impl HttpBody for Holding {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
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
