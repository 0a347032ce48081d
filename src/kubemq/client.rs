//! A small reconnecting KubeMQ client for the worker and `ask`: one connection actor
//! owning the gRPC channel, unary calls (ping, send request, send response, send event)
//! and query and event subscriptions that resubscribe with backoff after the broker goes
//! away and comes back (an events-store subscription continues after the last event it
//! delivered).
//!
//! Works the same against a real KubeMQ server and the embedded broker.

use super::kubemq_client::KubemqClient;
use super::subscribe::{EventsStoreType, SubscribeType};
use super::{Empty, EventReceive, PingResult, Request, Response, Subscribe};
use backon::{BackoffBuilder, ExponentialBuilder};
use futures::Stream;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinSet;
use tonic::transport::{Channel, Endpoint};

/// What went wrong, for callers to match on (never on the text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The address is unusable or the broker could not be reached in time.
    Connect,
    /// The broker went away or is not ready; trying again later may work.
    Unavailable,
    /// The call or the request's own timeout expired (KubeMQ error 301).
    TimedOut,
    /// The broker refused the call (validation, shutdown mode, …); the text says why.
    Rejected,
    /// This client was shut down.
    Closed,
}

/// A failed client operation: a kind plus the broker's or transport's text.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{detail}")]
pub struct Error {
    kind: ErrorKind,
    detail: String,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
        }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    fn closed() -> Self {
        Self::new(ErrorKind::Closed, "the KubeMQ client was shut down")
    }

    /// Classifies a gRPC status. No wildcard: a new code must pick its kind.
    pub(crate) fn from_status(status: &tonic::Status) -> Self {
        use tonic::Code;
        let message = status.message();
        let kind = match status.code() {
            Code::Internal if message.starts_with("Error 301") => ErrorKind::TimedOut,
            Code::DeadlineExceeded => ErrorKind::TimedOut,
            Code::Unavailable | Code::Unknown | Code::Cancelled | Code::Aborted => {
                ErrorKind::Unavailable
            }
            Code::Ok
            | Code::InvalidArgument
            | Code::NotFound
            | Code::AlreadyExists
            | Code::PermissionDenied
            | Code::ResourceExhausted
            | Code::FailedPrecondition
            | Code::OutOfRange
            | Code::Unimplemented
            | Code::Internal
            | Code::DataLoss
            | Code::Unauthenticated => ErrorKind::Rejected,
        };
        let detail = if message.is_empty() {
            format!("broker call failed: {:?}", status.code())
        } else {
            message.to_owned()
        };
        Self::new(kind, detail)
    }
}

/// How to reach the broker.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `host:port` of the broker's gRPC listener.
    pub address: String,
    /// Sent as ClientID on every call.
    pub client_id: String,
    /// Longest wait for the first successful ping; `None` waits until it works.
    pub connect_timeout: Option<Duration>,
    /// First and longest delay between reconnect or resubscribe attempts.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl ClientOptions {
    pub fn new(address: impl Into<String>, client_id: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            client_id: client_id.into(),
            connect_timeout: Some(Duration::from_secs(5)),
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
        }
    }

    fn backoff(&self) -> impl Iterator<Item = Duration> {
        ExponentialBuilder::default()
            .with_min_delay(self.min_backoff)
            .with_max_delay(self.max_backoff)
            .with_jitter()
            .without_max_times()
            .build()
    }
}

/// Lifecycle of the connection and its subscriptions, for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A subscription reached the broker (again).
    Subscribed { channel: String },
    /// A subscription's stream ended; it is retried with backoff.
    SubscriptionLost { channel: String, reason: String },
    /// The broker refused a subscription; it is not retried.
    SubscriptionRejected { channel: String, reason: String },
}

/// Work for the connection actor: the subscriptions it owns.
enum Command {
    Subscribe {
        subscribe: Subscribe,
        deliver: mpsc::Sender<Request>,
        active: Arc<AtomicBool>,
    },
    SubscribeToEvents {
        subscribe: Subscribe,
        deliver: mpsc::Sender<EventReceive>,
        active: Arc<AtomicBool>,
    },
}

/// Cloneable handle to one broker connection. The connection (and every subscription)
/// ends when the last handle is dropped.
///
/// Unary calls run in the caller's own task on a clone of the generated client: handing
/// them to the actor and back cost two task hops per call, on the worker's reply path.
#[derive(Clone)]
pub struct Client {
    grpc: KubemqClient<Channel>,
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<Event>,
    client_id: Arc<str>,
}

/// HTTP/2 keep-alive pings, to notice a broker that vanished without closing the
/// connection. grpc-go servers (a real KubeMQ) allow one ping per 5 minutes while a
/// stream is open (none at all, for two hours, while none is) and answer a third early
/// ping with GOAWAY `too_many_pings`, which fails every call on the connection. So: a
/// ping only after 5 minutes and 10 s of silence, and never on a connection without
/// streams. A broker process that dies closes its sockets, which is noticed at once.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(310);

/// A generated client for `address` (`host:port`) whose connection is made on the first
/// call and remade after the broker goes away.
pub(crate) fn lazy_grpc(address: &str) -> Result<KubemqClient<Channel>, Error> {
    let endpoint = Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| Error::new(ErrorKind::Connect, format!("bad broker address: {e}")))?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .tcp_keepalive(Some(Duration::from_secs(60)))
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(Duration::from_secs(20))
        .keep_alive_while_idle(false);
    Ok(KubemqClient::new(endpoint.connect_lazy()).max_decoding_message_size(usize::MAX))
}

impl Client {
    /// Connects and pings, retrying with backoff for up to `options.connect_timeout`.
    pub async fn connect(options: ClientOptions) -> Result<Self, Error> {
        let grpc = lazy_grpc(&options.address)?;
        let (commands, rx) = mpsc::channel(1024);
        let (events, _) = broadcast::channel(256);
        let client = Self {
            grpc: grpc.clone(),
            commands,
            events: events.clone(),
            client_id: options.client_id.clone().into(),
        };
        let handler = ConnectionHandler {
            grpc,
            events,
            options: options.clone(),
            subscriptions: JoinSet::new(),
        };
        // The handler's lifetime is bounded by the handles: it exits when the last drops.
        tokio::spawn(handler.run(rx));
        client.first_ping(&options).await?;
        Ok(client)
    }

    async fn first_ping(&self, options: &ClientOptions) -> Result<(), Error> {
        let attempts = async {
            let mut delays = options.backoff();
            for attempt in 0u32.. {
                match self.ping().await {
                    Ok(_) => return Ok(()),
                    Err(e) if e.kind() == ErrorKind::Unavailable => {
                        // Say it once at warn level, then keep quiet while retrying.
                        if attempt == 0 {
                            tracing::warn!(
                                "broker {} not reachable yet, retrying: {e}",
                                options.address
                            );
                        } else {
                            tracing::debug!("broker {} not reachable yet: {e}", options.address);
                        }
                    }
                    Err(e) => return Err(e),
                }
                let delay = delays.next().unwrap_or(options.max_backoff);
                tokio::time::sleep(delay).await;
            }
            Err(Error::new(ErrorKind::Connect, "gave up connecting"))
        };
        match options.connect_timeout {
            None => attempts.await,
            Some(limit) => tokio::time::timeout(limit, attempts).await.map_err(|_| {
                Error::new(
                    ErrorKind::Connect,
                    format!(
                        "cannot reach the KubeMQ broker at {} within {}s",
                        options.address,
                        limit.as_secs_f32()
                    ),
                )
            })?,
        }
    }

    /// The ClientID this client sends.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Lifecycle events from now on.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    pub async fn ping(&self) -> Result<PingResult, Error> {
        let result = self.grpc.clone().ping(Empty {}).await;
        result
            .map(tonic::Response::into_inner)
            .map_err(|s| Error::from_status(&s))
    }

    /// Sends a command or query and waits for its response (at most its Timeout plus a
    /// grace period, so a vanished broker cannot leave the caller waiting forever).
    pub async fn send_request(&self, request: Request) -> Result<Response, Error> {
        send_request(&mut self.grpc.clone(), request).await
    }

    /// Answers a command or query received on a subscription.
    pub async fn send_response(&self, response: Response) -> Result<(), Error> {
        let result = self.grpc.clone().send_response(response).await;
        result.map(|_| ()).map_err(|s| Error::from_status(&s))
    }

    /// Publishes an event (`event.store` false) or an events-store message (true). A
    /// broker that does not take it (`Sent=false`) is [`ErrorKind::Rejected`].
    pub async fn send_event(&self, event: super::Event) -> Result<(), Error> {
        send_event(&mut self.grpc.clone(), event).await
    }

    /// Subscribes to events or events store with a full `Subscribe`. The stream survives
    /// broker restarts like [`Self::subscribe_to_queries`]; an events-store subscription
    /// resumes at the sequence after the last one delivered (before any delivery, at the
    /// original start position), so nothing is lost or repeated.
    pub async fn subscribe_to_events(
        &self,
        subscribe: Subscribe,
    ) -> Result<EventSubscription, Error> {
        self.subscribe(subscribe, |subscribe, deliver, active| {
            Command::SubscribeToEvents {
                subscribe,
                deliver,
                active,
            }
        })
        .await
    }

    /// Subscribes to queries on `channel` within `group`. The stream survives broker
    /// restarts (resubscribing with backoff) and ends only when the broker refuses the
    /// subscription, or when it or the client is dropped.
    pub async fn subscribe_to_queries(
        &self,
        channel: &str,
        group: &str,
    ) -> Result<Subscription, Error> {
        let subscribe = Subscribe {
            subscribe_type_data: SubscribeType::Queries as i32,
            client_id: self.client_id.to_string(),
            channel: channel.to_owned(),
            group: group.to_owned(),
            ..Subscribe::default()
        };
        self.subscribe_to_requests(subscribe).await
    }

    /// Subscribes with a full `Subscribe` (commands or queries).
    pub async fn subscribe_to_requests(&self, subscribe: Subscribe) -> Result<Subscription, Error> {
        self.subscribe(subscribe, |subscribe, deliver, active| Command::Subscribe {
            subscribe,
            deliver,
            active,
        })
        .await
    }

    /// Hands a subscription to the connection actor and returns its receiving end.
    async fn subscribe<T>(
        &self,
        subscribe: Subscribe,
        command: impl FnOnce(Subscribe, mpsc::Sender<T>, Arc<AtomicBool>) -> Command,
    ) -> Result<Subscription<T>, Error> {
        let (deliver, items) = mpsc::channel(256);
        let active = Arc::new(AtomicBool::new(false));
        let channel = subscribe.channel.clone();
        self.commands
            .send(command(subscribe, deliver, active.clone()))
            .await
            .map_err(|_| Error::closed())?;
        Ok(Subscription {
            channel,
            items,
            active,
        })
    }
}

/// Requests (or events) arriving on one subscription.
pub struct Subscription<T = Request> {
    channel: String,
    items: mpsc::Receiver<T>,
    /// Set by the subscription task while its stream to the broker is open; read by
    /// readiness checks.
    active: Arc<AtomicBool>,
}

/// Events arriving on one events or events-store subscription.
pub type EventSubscription = Subscription<EventReceive>;

impl<T> Subscription<T> {
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Whether the subscription currently has a live stream to the broker.
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// A flag that follows [`Self::is_active`] after the subscription is moved.
    pub fn active_flag(&self) -> Arc<AtomicBool> {
        self.active.clone()
    }
}

impl<T> Stream for Subscription<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.items.poll_recv(cx)
    }
}

/// The connection actor: owns every subscription task, which ends with it.
struct ConnectionHandler {
    grpc: KubemqClient<Channel>,
    events: broadcast::Sender<Event>,
    options: ClientOptions,
    /// One task per subscription; dropping the set (handler exit) ends them all.
    subscriptions: JoinSet<()>,
}

/// Why the connection actor stopped.
#[derive(Debug)]
enum ExitReason {
    AllHandlesDropped,
}

impl ConnectionHandler {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let reason = loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.start(command),
                    None => break ExitReason::AllHandlesDropped,
                },
                Some(_) = self.subscriptions.join_next(), if !self.subscriptions.is_empty() => {}
            }
        };
        tracing::debug!(?reason, address = %self.options.address, "KubeMQ client closed");
    }

    fn start(&mut self, command: Command) {
        let grpc = self.grpc.clone();
        match command {
            Command::Subscribe {
                subscribe,
                deliver,
                active,
            } => {
                let task = self.subscription(grpc, subscribe, deliver, active);
                self.subscriptions.spawn(task.run());
            }
            Command::SubscribeToEvents {
                subscribe,
                deliver,
                active,
            } => {
                let task = self.subscription(grpc, subscribe, deliver, active);
                self.subscriptions.spawn(task.run());
            }
        }
    }

    fn subscription<T: Feed>(
        &self,
        grpc: KubemqClient<Channel>,
        subscribe: Subscribe,
        deliver: mpsc::Sender<T>,
        active: Arc<AtomicBool>,
    ) -> SubscriptionTask<T> {
        SubscriptionTask {
            grpc,
            subscribe,
            deliver,
            active,
            events: self.events.clone(),
            options: self.options.clone(),
            was_lost: false,
        }
    }
}

/// Extra time over a request's own Timeout before the call gives up on the broker.
const REQUEST_GRACE: Duration = Duration::from_secs(2);

async fn send_request(
    grpc: &mut KubemqClient<Channel>,
    request: Request,
) -> Result<Response, Error> {
    let timeout = Duration::from_millis(u64::try_from(request.timeout.max(0)).unwrap_or(0));
    let call = grpc.send_request(request);
    match tokio::time::timeout(timeout + REQUEST_GRACE, call).await {
        Ok(result) => result
            .map(|r| r.into_inner())
            .map_err(|s| Error::from_status(&s)),
        Err(_) => Err(Error::new(
            ErrorKind::TimedOut,
            format!(
                "no answer from the broker within {}s",
                (timeout + REQUEST_GRACE).as_secs_f32()
            ),
        )),
    }
}

/// Longest wait for the broker to take an event.
const EVENT_TIMEOUT: Duration = Duration::from_secs(5);

async fn send_event(grpc: &mut KubemqClient<Channel>, event: super::Event) -> Result<(), Error> {
    let result = match tokio::time::timeout(EVENT_TIMEOUT, grpc.send_event(event)).await {
        Ok(result) => result.map_err(|s| Error::from_status(&s))?.into_inner(),
        Err(_) => {
            return Err(Error::new(
                ErrorKind::TimedOut,
                format!(
                    "no answer from the broker within {}s",
                    EVENT_TIMEOUT.as_secs()
                ),
            ))
        }
    };
    if result.sent {
        return Ok(());
    }
    let detail = if result.error.is_empty() {
        "the broker did not take the event".to_owned()
    } else {
        result.error
    };
    Err(Error::new(ErrorKind::Rejected, detail))
}

/// What a subscription delivers: how to open its stream, and where to resume after one.
trait Feed: Send + Sized + 'static {
    fn open(grpc: KubemqClient<Channel>, subscribe: Subscribe) -> Opening<Self>;

    /// Moves `subscribe`'s start position past this item, if the stream can resume.
    fn resume_after(&self, _subscribe: &mut Subscribe) {}
}

type Opening<T> = Pin<
    Box<dyn Future<Output = Result<tonic::Response<tonic::Streaming<T>>, tonic::Status>> + Send>,
>;

impl Feed for Request {
    fn open(mut grpc: KubemqClient<Channel>, subscribe: Subscribe) -> Opening<Self> {
        Box::pin(async move { grpc.subscribe_to_requests(subscribe).await })
    }
}

impl Feed for EventReceive {
    fn open(mut grpc: KubemqClient<Channel>, subscribe: Subscribe) -> Opening<Self> {
        Box::pin(async move { grpc.subscribe_to_events(subscribe).await })
    }

    /// Events store only: plain events are not kept, so there is nothing to resume.
    ///
    /// The resubscribe also gets its own ClientID: a broker resumes a known ClientID from
    /// its durable cursor, which counts events it handed to the broken stream but this
    /// client never received; a fresh ClientID makes it honour the sequence asked for.
    fn resume_after(&self, subscribe: &mut Subscribe) {
        let store = subscribe.subscribe_type_data == SubscribeType::EventsStore as i32;
        let Ok(next) = i64::try_from(self.sequence.saturating_add(1)) else {
            return;
        };
        if store && self.sequence > 0 {
            subscribe.events_store_type_data = EventsStoreType::StartAtSequence as i32;
            subscribe.events_store_type_value = next;
            let base = subscribe
                .client_id
                .split_once(RESUME_SUFFIX)
                .map_or(subscribe.client_id.as_str(), |(base, _)| base)
                .to_owned();
            subscribe.client_id = format!("{base}{RESUME_SUFFIX}{next}");
        }
    }
}

/// Marks the ClientID of an events-store resubscribe (see `resume_after`).
const RESUME_SUFFIX: &str = "~resume-";

/// How long a subscribe call may go without response headers before it counts as
/// established: grpc-go servers (real KubeMQ) send headers only with the first message.
const HEADERS_GRACE: Duration = Duration::from_millis(300);

/// Keeps one subscription alive: subscribe, forward, and on loss resubscribe with backoff.
struct SubscriptionTask<T> {
    grpc: KubemqClient<Channel>,
    /// What the next (re)subscribe sends; an events-store start position follows the
    /// deliveries, so a resubscribe continues where the stream broke off.
    subscribe: Subscribe,
    /// Closed when the subscriber drops its [`Subscription`]; the task then ends.
    deliver: mpsc::Sender<T>,
    active: Arc<AtomicBool>,
    events: broadcast::Sender<Event>,
    options: ClientOptions,
    /// Set when an established stream was lost, so the next success logs "resubscribed".
    was_lost: bool,
}

/// How one subscribe attempt ended.
enum StreamEnd {
    /// The subscriber went away.
    Dropped,
    /// The stream broke or ended; `delivered` says whether it had worked.
    Lost { reason: String, established: bool },
    /// The broker refused the subscription itself.
    Rejected(String),
}

impl<T: Feed> SubscriptionTask<T> {
    async fn run(mut self) {
        let deliver = self.deliver.clone();
        let mut delays = self.options.backoff();
        loop {
            let end = tokio::select! {
                () = deliver.closed() => StreamEnd::Dropped,
                end = self.stream_once() => end,
            };
            self.active.store(false, Ordering::Release);
            let channel = self.subscribe.channel.clone();
            match end {
                StreamEnd::Dropped => return,
                StreamEnd::Rejected(reason) => {
                    tracing::error!(%channel, "broker refused the subscription: {reason}");
                    let _ = self
                        .events
                        .send(Event::SubscriptionRejected { channel, reason });
                    return;
                }
                StreamEnd::Lost {
                    reason,
                    established,
                } => {
                    if established {
                        tracing::warn!(%channel, "subscription lost, resubscribing: {reason}");
                        self.was_lost = true;
                        delays = self.options.backoff();
                    } else {
                        tracing::debug!(%channel, "subscribe failed, retrying: {reason}");
                    }
                    let _ = self
                        .events
                        .send(Event::SubscriptionLost { channel, reason });
                }
            }
            let delay = delays.next().unwrap_or(self.options.max_backoff);
            tokio::select! {
                () = deliver.closed() => return,
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// One subscription stream, from the subscribe call until it ends.
    async fn stream_once(&mut self) -> StreamEnd {
        let call = T::open(self.grpc.clone(), self.subscribe.clone());
        tokio::pin!(call);
        let started = tokio::select! {
            result = &mut call => result,
            () = tokio::time::sleep(HEADERS_GRACE) => {
                self.mark_active();
                call.await
            }
        };
        let mut stream = match started {
            Ok(response) => response.into_inner(),
            Err(status) => return self.end_with(&status, self.active.load(Ordering::Acquire)),
        };
        self.mark_active();
        loop {
            match stream.message().await {
                Ok(Some(item)) => {
                    // Safe before the send: if the send fails, the task ends for good.
                    item.resume_after(&mut self.subscribe);
                    if self.deliver.send(item).await.is_err() {
                        return StreamEnd::Dropped;
                    }
                }
                Ok(None) => {
                    return StreamEnd::Lost {
                        reason: "the broker ended the stream".to_owned(),
                        established: true,
                    }
                }
                Err(status) => return self.end_with(&status, true),
            }
        }
    }

    fn mark_active(&mut self) {
        if !self.active.swap(true, Ordering::AcqRel) {
            let channel = self.subscribe.channel.clone();
            if std::mem::take(&mut self.was_lost) {
                tracing::info!(%channel, "resubscribed");
            } else {
                tracing::debug!(%channel, "subscribed");
            }
            let _ = self.events.send(Event::Subscribed { channel });
        }
    }

    fn end_with(&self, status: &tonic::Status, established: bool) -> StreamEnd {
        let error = Error::from_status(status);
        // The broker in shutdown mode (409) refuses for now, not for good.
        let shutting_down = error.detail.starts_with("Error 409");
        if error.kind() == ErrorKind::Rejected && !shutting_down {
            StreamEnd::Rejected(error.detail)
        } else {
            StreamEnd::Lost {
                reason: error.detail,
                established,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_kinds() {
        let s = tonic::Status::internal("Error 301: timeout for request message");
        assert_eq!(Error::from_status(&s).kind(), ErrorKind::TimedOut);
        let s = tonic::Status::internal("Error 102: invalid channel value, cannot be empty");
        assert_eq!(Error::from_status(&s).kind(), ErrorKind::Rejected);
        let s = tonic::Status::unavailable("connection refused");
        assert_eq!(Error::from_status(&s).kind(), ErrorKind::Unavailable);
    }

    #[test]
    fn an_events_store_resubscribe_starts_after_the_last_delivered() {
        let store = Subscribe {
            subscribe_type_data: SubscribeType::EventsStore as i32,
            events_store_type_data: EventsStoreType::StartFromFirst as i32,
            client_id: "w1".into(),
            ..Subscribe::default()
        };
        let mut resume = store.clone();
        let delivered = |sequence| EventReceive {
            sequence,
            ..EventReceive::default()
        };
        delivered(7).resume_after(&mut resume);
        assert_eq!(
            (
                resume.events_store_type_data,
                resume.events_store_type_value
            ),
            (EventsStoreType::StartAtSequence as i32, 8)
        );
        // A fresh ClientID each time, so no durable cursor overrides the sequence.
        assert_eq!(resume.client_id, "w1~resume-8");
        delivered(9).resume_after(&mut resume);
        assert_eq!(resume.client_id, "w1~resume-10");
        let mut plain = Subscribe {
            subscribe_type_data: SubscribeType::Events as i32,
            ..Subscribe::default()
        };
        delivered(0).resume_after(&mut plain);
        delivered(7).resume_after(&mut plain);
        assert_eq!(
            plain.events_store_type_data, 0,
            "plain events do not resume"
        );
        let mut queries = store.clone();
        Request::default().resume_after(&mut queries);
        assert_eq!(queries, store);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let mut options = ClientOptions::new("127.0.0.1:1", "t");
        options.max_backoff = Duration::from_millis(400);
        let delays: Vec<_> = options.backoff().take(20).collect();
        assert_eq!(delays.len(), 20);
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(800)));
        assert!(delays[19] >= Duration::from_millis(400));
    }
}
