//! The per-queue depth and byte limits: whether one more sent message fits.
//!
//! Only sends are refused. Moves the broker makes itself (redelivery, dead-lettering,
//! requeue, delay release) always go through, so a limit never loses a message that was
//! already accepted; a queue can therefore end up above its limit, and then refuses sends
//! until consumers bring it back under.

use super::queue::Tally;
use crate::broker::config::QueueLimits;
use crate::broker::errors::QueueFull;

/// Whether a message of `bytes` body bytes fits into `queue`, which holds `held` (ready,
/// delayed, in flight and being stored: all of it is on disk and can become ready again).
pub(crate) fn admit(
    queue: &str,
    held: Tally,
    bytes: i64,
    limits: &QueueLimits,
) -> Result<(), QueueFull> {
    let count = held.count as u64;
    if limits.max_queue_depth > 0 && count >= limits.max_queue_depth {
        return Err(QueueFull::Depth {
            queue: queue.to_owned(),
            held: count,
            limit: limits.max_queue_depth,
        });
    }
    let (have, adding) = (held.bytes.max(0) as u64, bytes.max(0) as u64);
    if limits.max_queue_bytes > 0 && have + adding > limits.max_queue_bytes {
        return Err(QueueFull::Bytes {
            queue: queue.to_owned(),
            held: have,
            adding,
            limit: limits.max_queue_bytes,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(depth: u64, bytes: u64) -> QueueLimits {
        QueueLimits {
            max_queue_depth: depth,
            max_queue_bytes: bytes,
            ..QueueLimits::default()
        }
    }

    fn held(count: usize, bytes: i64) -> Tally {
        Tally { count, bytes }
    }

    #[test]
    fn depth_limit_admits_up_to_the_limit() {
        assert!(admit("q", held(2, 0), 1, &limits(3, 0)).is_ok());
        let full = admit("q", held(3, 0), 1, &limits(3, 0)).map_err(|e| e.to_string());
        assert_eq!(
            full,
            Err("Error 139: queue q is full: 3 messages held, limit 3; consume from it or raise --max-queue-depth".to_owned())
        );
    }

    #[test]
    fn byte_limit_counts_the_new_body() {
        assert!(admit("q", held(1, 6), 4, &limits(0, 10)).is_ok());
        let full = admit("q", held(1, 6), 5, &limits(0, 10)).map_err(|e| e.to_string());
        assert_eq!(
            full,
            Err("Error 140: queue q is full: 6 body bytes held and this message adds 5, limit 10; consume from it or raise --max-queue-bytes".to_owned())
        );
    }

    #[test]
    fn zero_means_unlimited() {
        assert!(admit("q", held(usize::MAX / 2, i64::MAX / 2), 1, &limits(0, 0)).is_ok());
    }
}
