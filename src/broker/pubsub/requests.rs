//! Commands and queries: SendRequest fans a request out to responders and waits for the
//! first response, SendResponse completes it, SubscribeToRequests registers responders.

use super::registry::{Registration, Registry, SubStream};
use super::stats::{Counters, Kind};
use super::PubSub;
use crate::broker::errors::KubeMqError;
use crate::broker::ids::{nuid, random_alnum};
use crate::broker::{metrics, validate};
use crate::kubemq::request::RequestType;
use crate::kubemq::subscribe::SubscribeType;
use crate::kubemq::{Request, Response, Subscribe};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// A caller waiting for the first response on its reply channel.
struct Waiter {
    tx: oneshot::Sender<Response>,
    counters: Arc<Counters>,
}

const SHARDS: usize = 16;

/// Callers waiting for a response, by reply channel. Sharded so that concurrent
/// requests and responses rarely meet on one lock.
pub struct Pending {
    shards: [Mutex<HashMap<String, Waiter>>; SHARDS],
    /// Set at shutdown, before every shard is emptied; checked under the shard lock by
    /// [`Pending::insert`], so no waiter can slip in after the emptying.
    closed: AtomicBool,
}

impl Default for Pending {
    fn default() -> Self {
        Self {
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            closed: AtomicBool::new(false),
        }
    }
}

impl Pending {
    fn shard(&self, reply: &str) -> &Mutex<HashMap<String, Waiter>> {
        let hash = reply.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        &self.shards[(hash % SHARDS as u64) as usize]
    }

    /// Registers a waiter; false once the broker is shutting down.
    fn insert(&self, reply: String, waiter: Waiter) -> bool {
        let mut shard = self.shard(&reply).lock();
        if self.closed.load(Ordering::Acquire) {
            return false;
        }
        shard.insert(reply, waiter);
        true
    }

    /// Ends every wait at shutdown: callers get 409 instead of waiting out their timeout.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        for shard in &self.shards {
            shard.lock().clear();
        }
    }

    fn take(&self, reply: &str) -> Option<Waiter> {
        self.shard(reply).lock().remove(reply)
    }
}

/// Ends a request's wait (response, timeout, cancel, shutdown): removes the waiter and
/// releases the responders it kept busy.
struct PendingGuard<'a> {
    pending: &'a Pending,
    reply: String,
    /// Unanswered-request counters of the subscribers the request went to.
    busy: Vec<Arc<AtomicUsize>>,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.pending.take(&self.reply);
        for counter in &self.busy {
            counter.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// The request's kind, after the checks of `SendRequest` in upstream order (206, 101,
/// 102/119/108/107, 109, 115, 116).
pub fn validate_request(req: &Request, max_timeout: Duration) -> Result<Kind, KubeMqError> {
    let kind = match RequestType::try_from(req.request_type_data) {
        Ok(RequestType::Command) => Kind::Commands,
        Ok(RequestType::Query) => Kind::Queries,
        _ => return Err(KubeMqError::InvalidRequestType),
    };
    validate::client_id(&req.client_id)?;
    validate::publish_channel(&req.channel)?;
    if req.timeout <= 0 {
        return Err(KubeMqError::TimeoutInvalid);
    }
    let max_ms = u64::try_from(max_timeout.as_millis()).unwrap_or(u64::MAX);
    if u64::try_from(req.timeout).unwrap_or(0) > max_ms {
        return Err(KubeMqError::TimeoutTooLong { max_ms });
    }
    if req.metadata.is_empty() && req.body.is_empty() {
        return Err(KubeMqError::RequestEmpty);
    }
    validate::metadata(&req.metadata, &req.tags)?;
    if !req.cache_key.is_empty() && req.cache_ttl <= 0 {
        return Err(KubeMqError::CacheTtlInvalid);
    }
    Ok(kind)
}

/// The reply address shape of the real server: `_INBOX.<22>.<8>`.
pub fn inbox() -> String {
    format!("_INBOX.{}.{}", nuid(), random_alnum(8))
}

/// What the caller gets: the responder's response minus `ReplyChannel`; commands also
/// lose `Body`, `Metadata` and `CacheHit`.
fn shape(kind: Kind, mut response: Response) -> Response {
    response.reply_channel.clear();
    if kind == Kind::Commands {
        response.body.clear();
        response.metadata.clear();
        response.cache_hit = false;
    }
    response
}

impl PubSub {
    fn request_registry(&self, kind: Kind) -> &Registry<Request> {
        if kind == Kind::Commands {
            &self.commands
        } else {
            &self.queries
        }
    }

    /// SendRequest: deliver, then wait up to `Timeout` ms for the first response.
    pub(super) async fn request(&self, mut req: Request) -> Result<Response, KubeMqError> {
        let kind = validate_request(&req, self.max_request_timeout)?;
        if req.request_id.is_empty() {
            req.request_id = nuid();
        }
        let reply = inbox();
        req.reply_channel.clone_from(&reply);
        let counters = self.book.channel(kind, &req.channel);
        let size = req.body.len() + req.metadata.len();
        counters.incoming(size);
        metrics::message_in(kind.name(), &req.channel, 1);
        let (tx, rx) = oneshot::channel();
        let waiter = Waiter {
            tx,
            counters: counters.clone(),
        };
        if !self.pending.insert(reply.clone(), waiter) {
            return Err(KubeMqError::ShuttingDown);
        }
        let mut guard = PendingGuard {
            pending: &self.pending,
            reply,
            busy: Vec::new(),
        };
        let timeout = Duration::from_millis(u64::try_from(req.timeout).unwrap_or(0));
        guard.busy = self.dispatch(kind, req, &counters, size);
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(response)) => Ok(shape(kind, response)),
            // The waiter was dropped: only [`Pending::close`] does that.
            Ok(Err(_)) => Err(KubeMqError::ShuttingDown),
            Err(_) => Err(KubeMqError::RequestTimeout),
        }
    }

    /// Delivers to the responders; returns their unanswered counters, raised by one
    /// until the request ends.
    fn dispatch(
        &self,
        kind: Kind,
        req: Request,
        counters: &Counters,
        size: usize,
    ) -> Vec<Arc<AtomicUsize>> {
        let registry = self.request_registry(kind);
        let targets = registry.route(&req.channel);
        if targets.is_empty() {
            return Vec::new();
        }
        let busy: Vec<_> = targets.iter().map(|t| t.unanswered.clone()).collect();
        for counter in &busy {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        let channel = req.channel.clone();
        let delivery = registry.deliver(targets, req);
        counters.outgoing(delivery.delivered, size);
        metrics::message_out(kind.name(), &channel, delivery.delivered as u64);
        busy
    }

    /// SendResponse: checks 101, the reply channel (102/119/108/107) and 117, then hands
    /// the response to its waiting caller, if any is still waiting.
    pub(super) fn respond(&self, response: Response) -> Result<(), KubeMqError> {
        validate::client_id(&response.client_id)?;
        validate::publish_channel(&response.reply_channel)?;
        if response.request_id.is_empty() {
            return Err(KubeMqError::RequestIdEmpty);
        }
        if let Some(waiter) = self.pending.take(&response.reply_channel) {
            waiter.counters.response();
            let _ = waiter.tx.send(response);
        }
        Ok(())
    }

    /// SubscribeToRequests: 207 unless commands or queries, then 101 and 102/119/108.
    /// Wildcards are allowed.
    pub(super) fn subscribe_requests(
        &self,
        sub: &Subscribe,
    ) -> Result<SubStream<Request, Registration<Request>>, KubeMqError> {
        let kind = match SubscribeType::try_from(sub.subscribe_type_data) {
            Ok(SubscribeType::Commands) => Kind::Commands,
            Ok(SubscribeType::Queries) => Kind::Queries,
            _ => return Err(KubeMqError::InvalidSubscribeType),
        };
        validate::client_id(&sub.client_id)?;
        validate::subscribe_channel(&sub.channel)?;
        if !validate::has_wildcard(&sub.channel) {
            self.book.channel(kind, &sub.channel).touch();
        }
        Ok(self.request_registry(kind).subscribe(
            &sub.channel,
            &sub.group,
            self.buffer,
            self.shutdown.clone(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbox_has_upstream_shape() {
        let r = inbox();
        let parts: Vec<&str> = r.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], "_INBOX");
        assert_eq!(parts[1].len(), 22);
        assert_eq!(parts[2].len(), 8);
    }
}
