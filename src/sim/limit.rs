//! The requests-per-minute limit: a sliding-window log of admitted requests.

use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

const WINDOW: Duration = Duration::from_secs(60);

/// Admits at most `limit` requests in any 60 s window.
#[derive(Debug)]
pub(super) struct Window {
    limit: usize,
    /// When each admitted request inside the window arrived, oldest first.
    admitted: VecDeque<Instant>,
}

impl Window {
    pub fn new(limit: u32) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        Self {
            limit,
            admitted: VecDeque::with_capacity(limit.min(100_000)),
        }
    }

    /// Admits a request arriving at `now`, or says how long until there is room.
    pub fn try_admit(&mut self, now: Instant) -> Result<(), Duration> {
        while let Some(first) = self.admitted.front() {
            if now.duration_since(*first) < WINDOW {
                break;
            }
            self.admitted.pop_front();
        }
        if self.admitted.len() < self.limit {
            self.admitted.push_back(now);
            return Ok(());
        }
        let oldest = self.admitted.front().copied().unwrap_or(now);
        Err(WINDOW.saturating_sub(now.duration_since(oldest)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slides() {
        let t0 = Instant::now();
        let mut w = Window::new(2);
        assert_eq!(w.try_admit(t0), Ok(()));
        assert_eq!(w.try_admit(t0 + Duration::from_secs(10)), Ok(()));
        assert_eq!(
            w.try_admit(t0 + Duration::from_secs(20)),
            Err(Duration::from_secs(40))
        );
        assert_eq!(w.try_admit(t0 + Duration::from_secs(60)), Ok(()));
        assert_eq!(
            w.try_admit(t0 + Duration::from_secs(61)),
            Err(Duration::from_secs(9))
        );
        assert_eq!(Window::new(0).try_admit(t0), Err(WINDOW));
    }
}
