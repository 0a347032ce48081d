//! Connection resets. axum 0.7 gives handlers no handle on their TCP connection, so when
//! resets are configured the public socket is served by this relay: it accepts, connects
//! to the axum server on an internal loopback port and copies bytes both ways. A handler
//! that draws a reset names its connection (its peer address is the relay's outbound
//! socket) and the relay drops the client's socket with `SO_LINGER 0`, i.e. a TCP RST,
//! before any byte of a response can pass.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// The relay between the public socket and the axum server.
pub(super) struct Relay {
    inner: SocketAddr,
    /// Live connections by the local address of their inner socket (what axum reports as
    /// the peer).
    conns: Mutex<HashMap<SocketAddr, Conn>>,
}

/// The two signals of one relayed connection.
#[derive(Clone)]
struct Conn {
    /// Cancelled by a handler: reset this connection.
    reset: CancellationToken,
    /// Cancelled by the relay once the client's socket is gone; the handler waits for it
    /// so that its own (dummy) response cannot race the reset.
    closed: CancellationToken,
}

impl Relay {
    pub fn new(inner: SocketAddr) -> Self {
        Self {
            inner,
            conns: Mutex::new(HashMap::new()),
        }
    }

    /// Resets the connection whose inner socket is `peer`; the token fires once it is gone.
    pub fn reset(&self, peer: SocketAddr) -> Option<CancellationToken> {
        let conn = self.conns.lock().get(&peer).cloned()?;
        conn.reset.cancel();
        Some(conn.closed)
    }

    /// Accepts on `public` until `shutdown`.
    pub async fn run(self: Arc<Self>, public: TcpListener, shutdown: CancellationToken) {
        loop {
            let accepted = tokio::select! {
                () = shutdown.cancelled() => return,
                accepted = public.accept() => accepted,
            };
            match accepted {
                // Each pipe ends at shutdown at the latest, so none outlives the sim.
                Ok((client, _)) => drop(tokio::spawn(self.clone().pipe(client, shutdown.clone()))),
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    async fn pipe(self: Arc<Self>, mut client: TcpStream, shutdown: CancellationToken) {
        let Ok(mut upstream) = TcpStream::connect(self.inner).await else {
            return;
        };
        let Ok(key) = upstream.local_addr() else {
            return;
        };
        let _ = (client.set_nodelay(true), upstream.set_nodelay(true));
        let conn = Conn {
            reset: CancellationToken::new(),
            closed: CancellationToken::new(),
        };
        self.conns.lock().insert(key, conn.clone());
        let reset = tokio::select! {
            biased;
            () = conn.reset.cancelled() => true,
            () = shutdown.cancelled() => false,
            _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => false,
        };
        self.conns.lock().remove(&key);
        if reset {
            abort(&client);
        }
        drop(client);
        conn.closed.cancel();
    }
}

/// Makes the coming close send RST instead of FIN.
fn abort(stream: &TcpStream) {
    #[expect(
        deprecated,
        reason = "a zero linger never blocks: close just sends RST"
    )]
    let _ = stream.set_linger(Some(Duration::ZERO));
}
