//! The wait shared by every receive style: take messages as they become ready until the
//! wanted count is reached or the wait is over (never returning early with a partial
//! batch), ending promptly at broker shutdown.

use super::lease::Lease;
use super::queue::Queue;
use super::Queues;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// What a wait collected.
pub(crate) struct Collected {
    pub lease: Lease,
    /// Expired messages met (and dropped) on the way.
    pub expired: usize,
}

/// Counts a consumer as waiting for as long as it lives.
struct Waiting<'a>(&'a Queue);

impl<'a> Waiting<'a> {
    fn new(queue: &'a Queue) -> Self {
        queue.lock().consumers += 1;
        Self(queue)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.consumers = st.consumers.saturating_sub(1);
    }
}

impl Queues {
    /// Takes up to `max` messages from `queue`, waiting at most `wait` for the count to
    /// fill. If the caller goes away mid-wait, the lease returns what was taken.
    pub(crate) async fn collect(
        &self,
        queue: &Arc<Queue>,
        max: usize,
        wait: Duration,
    ) -> Collected {
        let deadline = Instant::now() + wait;
        let _waiting = Waiting::new(queue);
        let mut lease = Lease::new(queue.clone());
        let mut expired = 0;
        loop {
            let notified = queue.signal().notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            expired += self.take_now(queue, max - lease.len(), &mut lease);
            if lease.len() >= max {
                break;
            }
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(deadline) => break,
                () = self.shutdown.cancelled() => break,
            }
        }
        Collected { lease, expired }
    }
}
