//! A cap on open connections per listener. A connection over the cap is accepted and
//! closed at once (the client sees a reset, not a hang), counted in
//! `llm_router_connections_refused_total`, and logged at most once a second.

use futures::Stream;
use parking_lot::Mutex;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// What the connection series' names start with (every listener has them).
pub const FAMILY_PREFIX: &str = "llm_router_connections_";
/// Connections refused because a listener was at its cap, by listener.
pub const REFUSED: &str = "llm_router_connections_refused_total";
/// Connections closed because they sent nothing within the first-byte deadline.
pub const SILENT: &str = "llm_router_connections_silent_total";
/// Connections open now, by listener.
pub const OPEN: &str = "llm_router_connections_open";

/// How many connections one listener may hold open at once.
#[derive(Clone)]
pub struct ConnCap {
    slots: Arc<Semaphore>,
    max: usize,
    listener: &'static str,
    last_warning: Arc<Mutex<Option<Instant>>>,
}

impl ConnCap {
    /// `listener` names the port in metrics and logs (`grpc`, `rest`, `gateway`, ...).
    pub fn new(listener: &'static str, max: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max.max(1))),
            max: max.max(1),
            listener,
            last_warning: Arc::new(Mutex::new(None)),
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Holds a slot for `io` while it lives, or returns `None` (and drops `io`, closing
    /// it) when every slot is taken.
    pub fn admit<S>(&self, io: S) -> Option<Capped<S>> {
        match self.slots.clone().try_acquire_owned() {
            Ok(permit) => {
                let open = metrics::gauge!(OPEN, "listener" => self.listener);
                open.increment(1.0);
                Some(Capped {
                    io,
                    _slot: Slot {
                        _permit: permit,
                        open,
                    },
                })
            }
            Err(_) => {
                metrics::counter!(REFUSED, "listener" => self.listener).increment(1);
                self.warn();
                None
            }
        }
    }

    fn warn(&self) {
        let mut last = self.last_warning.lock();
        if !matches!(*last, Some(t) if t.elapsed() < Duration::from_secs(1)) {
            *last = Some(Instant::now());
            tracing::warn!(
                listener = self.listener,
                max = self.max,
                "connection refused: {} connections are open, the most this listener takes; raise its --max-connections or find the client holding them",
                self.max
            );
        }
    }
}

/// Gives the slot back and lowers the open-connections gauge when the connection ends.
struct Slot {
    _permit: OwnedSemaphorePermit,
    open: metrics::Gauge,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.decrement(1.0);
    }
}

/// A connection holding one of its listener's slots.
pub struct Capped<S> {
    io: S,
    _slot: Slot,
}

impl<S> Capped<S> {
    pub fn get_ref(&self) -> &S {
        &self.io
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Capped<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Capped<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

impl tonic::transport::server::Connected for Capped<TcpStream> {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

/// The next admitted connection, with `TCP_NODELAY` set (without it every small reply
/// waits for the peer's delayed ACK, about 40 ms). Accept errors (out of file
/// descriptors, a reset during the handshake) are logged and waited out, never returned:
/// one bad moment must not stop a server.
pub async fn accept(listener: &TcpListener, cap: &ConnCap) -> Capped<TcpStream> {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                if let Some(capped) = cap.admit(stream) {
                    return capped;
                }
            }
            Err(e) => {
                tracing::warn!(
                    listener = cap.listener,
                    "accept failed: {e}; retrying in 50 ms"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Admitted connections as a stream, for tonic's `serve_with_incoming_shutdown`. A
/// connection is handed over only once its first byte has arrived, within
/// `first_byte`: HTTP/2 has no request-head deadline of its own, so without this a client
/// that opens sockets and sends nothing would hold every slot. The wait runs per
/// connection, so one silent client never delays another.
pub fn incoming(
    listener: TcpListener,
    cap: ConnCap,
    first_byte: Duration,
) -> impl Stream<Item = io::Result<Capped<TcpStream>>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let conn = tokio::select! {
                conn = accept(&listener, &cap) => conn,
                // The server stopped and dropped the stream: stop accepting.
                () = tx.closed() => return,
            };
            let (tx, listener_name) = (tx.clone(), cap.listener);
            tokio::spawn(async move {
                let mut byte = [0u8; 1];
                let peeked = tokio::time::timeout(first_byte, conn.get_ref().peek(&mut byte));
                match peeked.await {
                    Ok(Ok(n)) if n > 0 => {
                        let _ = tx.send(Ok(conn)).await;
                    }
                    Ok(_) => {}
                    Err(_) => {
                        metrics::counter!(SILENT, "listener" => listener_name).increment(1);
                    }
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_comes_back_when_its_connection_ends() {
        let cap = ConnCap::new("test", 2);
        let a = cap.admit(1).expect("first fits");
        let _b = cap.admit(2).expect("second fits");
        assert!(cap.admit(3).is_none(), "third is over the cap");
        drop(a);
        assert!(cap.admit(4).is_some(), "a freed slot is reused");
    }
}
