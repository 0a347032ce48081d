//! The batch consumer: pulls lines from each route's batch queue only while the route has
//! spare capacity, so interactive requests keep their latency and bursts wait in the
//! broker instead of at the providers.
//!
//! - [`line`]: one delivery of one line, to a stored result, retry or dead letter.
//! - [`results`]: stores what lines produce, batched.
//! - [`jobs`]: follows the jobs channel (cancellations, job sizes).
//! - [`metrics`]: the batch series, and the queue depth poller lives here too.
//!
//! Each route gets a few pull loops ("slots"), each on its own QueuesDownstream stream:
//! wait for spare capacity, take up to that many lines in one transaction, work them
//! concurrently, settle them, repeat. A broken stream is reopened; its unsettled lines go
//! back to the queue by themselves.

pub mod jobs;
pub mod line;
pub mod metrics;
pub mod results;

use crate::kubemq::client::Error as ClientError;
use crate::kubemq::queues::{Downstream, QueueClient};
use crate::protocol::batch as job;
use crate::routing::Router;
use futures::future::join_all;
use line::Settle;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// How a worker consumes batch lines.
#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// Most lines this worker works on at once, over all routes.
    pub max_in_flight: usize,
    /// Pull loops per route.
    pub slots_per_route: usize,
    /// Most lines one pull takes.
    pub max_per_pull: usize,
    /// Longest wait for capacity once a line is in hand, before it goes back untried.
    pub reserve_wait: Duration,
    /// Longest provider call for a line (the endpoint's own timeout may be shorter).
    pub call_timeout: Duration,
}

impl Default for BatchOptions {
    fn default() -> Self {
        Self {
            max_in_flight: 64,
            slots_per_route: 2,
            max_per_pull: 32,
            reserve_wait: Duration::from_secs(30),
            call_timeout: Duration::from_secs(600),
        }
    }
}

/// How often a slot looks again when its route has no spare capacity.
const IDLE_POLL: Duration = Duration::from_millis(10);
/// How long one pull waits for lines (the broker's minimum). A pull returns early only
/// once it holds all it asked for, so this is the most a partial pull waits.
const PULL_WAIT: Duration = Duration::from_secs(1);
/// After an empty pull the slot asks for one line and waits this long: the broker
/// answers the moment one arrives, and an idle worker makes a few calls a minute.
const IDLE_WAIT: Duration = Duration::from_secs(10);

/// Runs the batch consumer until `stop` is cancelled; then takes no more lines, finishes
/// and settles the ones in hand, and returns. No line is taken before `ready` resolves
/// (the cluster share of the limits is known by then).
pub async fn run(
    queues: QueueClient,
    router: Arc<Router>,
    jobs: jobs::Watcher,
    options: BatchOptions,
    ready: impl std::future::Future<Output = ()>,
    stop: CancellationToken,
) {
    metrics::describe();
    tokio::select! {
        () = stop.cancelled() => return,
        () = ready => {}
    }
    let store = results::Store::start(queues.clone());
    let permits = Arc::new(Semaphore::new(options.max_in_flight.max(1)));
    let mut loops = Vec::new();
    for route in router.routes() {
        loops.push(tokio::spawn(depth_poller(
            queues.clone(),
            route.name.clone(),
            stop.clone(),
        )));
        for _ in 0..options.slots_per_route.max(1) {
            let slot = Slot {
                queues: queues.clone(),
                router: router.clone(),
                store: store.clone(),
                jobs: jobs.clone(),
                permits: permits.clone(),
                options: options.clone(),
                queue: job::line_queue(&route.name),
                route: route.name.clone(),
            };
            loops.push(tokio::spawn(slot.run(stop.clone())));
        }
    }
    join_all(loops).await;
}

/// One pull loop of one route.
struct Slot {
    queues: QueueClient,
    router: Arc<Router>,
    store: results::Store,
    jobs: jobs::Watcher,
    permits: Arc<Semaphore>,
    options: BatchOptions,
    route: String,
    queue: String,
}

impl Slot {
    async fn run(self, stop: CancellationToken) {
        let mut stream: Option<Downstream> = None;
        let mut failures = 0u32;
        let mut idle = false;
        let mut size = PullSize::new(self.options.max_per_pull);
        while !stop.is_cancelled() {
            if !self.router.has_spare(&self.route) {
                pause(&stop, IDLE_POLL).await;
                continue;
            }
            let Some(taken) = self.take_permits(size.now(), &stop).await else {
                break;
            };
            let pulled = self.pull(&mut stream, taken, idle, &stop).await;
            match pulled {
                Ok(pull) => {
                    failures = 0;
                    idle = pull.lines == 0;
                    size.after(&pull);
                }
                Err(e) => {
                    stream = None;
                    failures += 1;
                    retry_later(&self.route, &e, failures, &stop).await;
                }
            }
        }
    }

    /// One pull of up to `taken` lines (the permits already taken, all returned here):
    /// get, work, settle; returns how many lines it got. An `idle` pull (the last one was
    /// empty) asks for one line and waits longer.
    async fn pull(
        &self,
        stream: &mut Option<Downstream>,
        taken: usize,
        idle: bool,
        stop: &CancellationToken,
    ) -> Result<Pulled, ClientError> {
        let mut returned = 0;
        let result = async {
            if stream.as_ref().is_some_and(Downstream::is_worn) {
                *stream = None;
            }
            let ds = stream.get_or_insert_with(|| self.queues.downstream());
            let (want, wait) = if idle {
                (1, IDLE_WAIT)
            } else {
                (taken, PULL_WAIT)
            };
            // A long idle wait holds only the one permit it may use.
            self.permits.add_permits(taken - want);
            returned = taken - want;
            let max = i32::try_from(want).unwrap_or(i32::MAX);
            let transaction = tokio::select! {
                () = stop.cancelled() => return Ok(Pulled::default()),
                t = ds.get(&self.queue, max, wait) => t?,
            };
            // Permits beyond the lines received go back at once, the rest after the work.
            let lines = transaction.messages.len().min(want);
            self.permits.add_permits(want - lines);
            returned += want - lines;
            let settles = self.work(&transaction.messages).await;
            let mut acks = Vec::new();
            let mut requeues = Vec::new();
            let mut left = false;
            let mut pulled = Pulled { lines, untried: 0 };
            for (m, settle) in transaction.messages.iter().zip(settles) {
                let seq = m
                    .attributes
                    .as_ref()
                    .map_or(0, |a| i64::try_from(a.sequence).unwrap_or(i64::MAX));
                match settle {
                    Settle::Ack => acks.push(seq),
                    Settle::Requeue => {
                        requeues.push(seq);
                        pulled.untried += 1;
                    }
                    Settle::Leave => left = true,
                }
            }
            ds.ack(&transaction.id, acks).await?;
            ds.requeue(&transaction.id, requeues, &self.queue).await?;
            // Gives back lines left unsettled, and any a real KubeMQ added to the open
            // transaction after answering the get.
            ds.close(&transaction.id).await?;
            if left {
                // A closed stream certainly gives back everything it held.
                *stream = None;
            }
            Ok(pulled)
        }
        .await;
        self.permits.add_permits(taken - returned);
        result
    }

    /// Waits for one in-flight permit, then takes as many more as are free (up to `most`)
    /// without waiting. Returns how many it took; they are returned by the caller.
    async fn take_permits(&self, most: usize, stop: &CancellationToken) -> Option<usize> {
        let first = tokio::select! {
            () = stop.cancelled() => return None,
            p = self.permits.acquire() => p.ok()?,
        };
        first.forget();
        let mut taken = 1;
        while taken < most {
            match self.permits.try_acquire() {
                Ok(p) => {
                    p.forget();
                    taken += 1;
                }
                Err(_) => break,
            }
        }
        Some(taken)
    }

    async fn work(&self, messages: &[crate::kubemq::QueueMessage]) -> Vec<Settle> {
        let cancelled = |job: &str| self.jobs.is_cancelled(job);
        let cx = line::Context {
            router: &self.router,
            store: &self.store,
            route: &self.route,
            cancelled: &cancelled,
            reserve_wait: self.options.reserve_wait,
            call_timeout: self.options.call_timeout,
        };
        join_all(messages.iter().map(|m| line::handle(&cx, m))).await
    }
}

/// What one pull got: lines received, and how many of them went back untried because the
/// route had no capacity for them within the reserve wait.
#[derive(Debug, Default, Clone, Copy)]
struct Pulled {
    lines: usize,
    untried: usize,
}

/// How many lines a slot asks for. A pull larger than the route can serve within the
/// reserve wait sends lines back untried, and every one is a re-publish on the broker; so
/// the size halves after a pull with untried lines and grows by one after a pull without.
#[derive(Debug)]
struct PullSize {
    now: usize,
    most: usize,
}

impl PullSize {
    fn new(most: usize) -> Self {
        let most = most.max(1);
        Self { now: most, most }
    }

    fn now(&self) -> usize {
        self.now
    }

    fn after(&mut self, pull: &Pulled) {
        if pull.untried > 0 {
            self.now = (self.now / 2).max(1);
        } else if pull.lines >= self.now {
            self.now = (self.now + 1).min(self.most);
        }
    }
}

async fn pause(stop: &CancellationToken, d: Duration) {
    tokio::select! {
        () = stop.cancelled() => {}
        () = tokio::time::sleep(d) => {}
    }
}

/// Backs off after the broker refused or dropped a pull: 100 ms doubling to 5 s.
async fn retry_later(route: &str, e: &ClientError, failures: u32, stop: &CancellationToken) {
    if failures == 1 {
        tracing::warn!(route, "batch queue unavailable, retrying: {e}");
    }
    let delay = Duration::from_millis(100u64 << failures.min(6)).min(Duration::from_secs(5));
    pause(stop, delay).await;
}

/// How often a route's queue depth is read while lines wait, and while none do (an idle
/// worker's broker calls are documented in docs/kubemq.md).
const DEPTH_BUSY: Duration = Duration::from_secs(5);
const DEPTH_IDLE: Duration = Duration::from_secs(15);

/// Every few seconds: a route's queue depth and the age of its oldest line.
async fn depth_poller(queues: QueueClient, route: String, stop: CancellationToken) {
    let queue = job::line_queue(&route);
    while !stop.is_cancelled() {
        let mut every = DEPTH_IDLE;
        if let Ok(info) = queues.info(&queue).await {
            let age = if info.waiting > 0 {
                every = DEPTH_BUSY;
                oldest_age(&queues, &queue).await
            } else {
                0.0
            };
            metrics::queue(&route, info.waiting, age);
        }
        pause(&stop, every).await;
    }
}

async fn oldest_age(queues: &QueueClient, queue: &str) -> f64 {
    let Ok(head) = queues.peek(queue, 1).await else {
        return 0.0;
    };
    let stored_ns = head
        .first()
        .and_then(|m| m.attributes.as_ref())
        .map_or(0, |a| a.timestamp);
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    if stored_ns <= 0 {
        return 0.0;
    }
    (now_ns - stored_ns).max(0) as f64 / 1e9
}

/// The batch consumer's command-line switches, shared by `worker` and `up`.
#[derive(clap::Args, Debug, Clone)]
pub struct BatchFlags {
    /// Serve interactive requests only; leave batch lines to other replicas.
    #[arg(long)]
    pub no_batch: bool,
    /// Most batch lines this worker works on at once (interactive requests always come
    /// first at the endpoints' limits).
    #[arg(long, env = "LLM_ROUTER_BATCH_MAX_IN_FLIGHT", default_value_t = 64)]
    pub batch_max_in_flight: usize,
}

impl BatchFlags {
    pub fn options(&self) -> Option<BatchOptions> {
        (!self.no_batch).then(|| BatchOptions {
            max_in_flight: self.batch_max_in_flight.max(1),
            ..BatchOptions::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_size_halves_on_untried_lines_and_grows_back_on_full_pulls() {
        let mut size = PullSize::new(32);
        assert_eq!(size.now(), 32);
        size.after(&Pulled {
            lines: 32,
            untried: 20,
        });
        assert_eq!(size.now(), 16);
        for _ in 0..10 {
            size.after(&Pulled {
                lines: 3,
                untried: 1,
            });
        }
        assert_eq!(size.now(), 1, "never below one line");
        size.after(&Pulled {
            lines: 0,
            untried: 0,
        });
        assert_eq!(size.now(), 1, "an empty pull says nothing about capacity");
        for _ in 0..100 {
            let now = size.now();
            size.after(&Pulled {
                lines: now,
                untried: 0,
            });
        }
        assert_eq!(size.now(), 32, "never above the configured most");
    }
}
