//! Serves an axum router over capped connections. Each connection gets a deadline for
//! its request head (a slow-loris client that trickles headers is cut off) and for every
//! read of a request body that stalls, so a client cannot hold a slot by sending nothing.

use super::conn::{self, ConnCap};
use axum::body::Body;
use axum::Router;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::time::{Instant, Sleep};

/// The limits of one HTTP listener.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Connections open at once; more are closed as they arrive.
    pub max_connections: usize,
    /// Time a client has to send a request's head (line and headers), from its first
    /// byte or, on a kept-alive connection, from the end of the previous response.
    pub header_timeout: Duration,
    /// Longest wait for the next piece of a request body once it has started.
    pub body_stall_timeout: Duration,
}

impl HttpLimits {
    pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_BODY_STALL_TIMEOUT: Duration = Duration::from_secs(30);

    pub fn new(max_connections: usize) -> Self {
        Self {
            max_connections,
            header_timeout: Self::DEFAULT_HEADER_TIMEOUT,
            body_stall_timeout: Self::DEFAULT_BODY_STALL_TIMEOUT,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then waits for open requests
/// to finish. `name` labels the connection metrics.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    name: &'static str,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let cap = ConnCap::new(name, limits.max_connections);
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    tokio::pin!(shutdown);
    loop {
        let io = tokio::select! {
            io = conn::accept(&listener, &cap) => io,
            () = &mut shutdown => break,
        };
        let app = app.clone();
        let stall = limits.body_stall_timeout;
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let req = req.map(|body| Body::new(StallGuard::new(body, stall)));
            tower_service::Service::call(&mut app.clone(), req)
        });
        let connection = builder.serve_connection(TokioIo::new(io), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A client that goes away mid-request, or misses the head deadline, ends
            // only its own connection.
            if let Err(e) = connection.await {
                tracing::debug!(listener = name, "connection ended: {e}");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// A request body that fails when no frame arrives for `limit`: the handler sees a read
/// error (axum answers 400) and the connection closes, freeing its slot.
struct StallGuard {
    inner: Incoming,
    limit: Duration,
    /// Armed at the first read, so a handler that reads late is not cut off for it.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl StallGuard {
    fn new(inner: Incoming, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            deadline: None,
        }
    }
}

/// Why a request body was cut off.
#[derive(Debug, thiserror::Error)]
#[error("the request body stalled: nothing arrived for {0:?}")]
struct Stalled(Duration);

impl HttpBody for StallGuard {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let limit = this.limit;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                if let Some(deadline) = this.deadline.as_mut() {
                    deadline.as_mut().reset(Instant::now() + limit);
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => match this
                .deadline
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)))
                .as_mut()
                .poll(cx)
            {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(Stalled(this.limit))))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
