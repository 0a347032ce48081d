//! The concurrency cap of one endpoint: a semaphore whose size follows the cluster share.
//! Shrinking takes free permits away at once and retires busy ones as they come back, so
//! the cap is never exceeded for longer than the attempts already on the wire.

use super::NoBudget;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

#[derive(Debug)]
pub struct Slots {
    /// A request holds a permit for its whole attempt, so at most `max` attempts are on
    /// the wire; the rest queue in FIFO order.
    semaphore: Arc<Semaphore>,
    /// The current cap (the endpoint's share); written only by [`Slots::resize`].
    max: AtomicUsize,
    /// Permits a shrink could not take away because they were in use: the next ones
    /// released are forgotten instead of returned, until this is zero.
    debt: AtomicUsize,
    /// Woken whenever a slot is released, for batch reservations waiting for one.
    freed: Arc<Notify>,
}

/// One slot, held for one attempt; released (or retired, after a shrink) when dropped.
#[derive(Debug)]
pub struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    slots: Arc<Slots>,
}

impl Slots {
    pub fn new(max: usize, freed: Arc<Notify>) -> Arc<Self> {
        Arc::new(Self {
            semaphore: Arc::new(Semaphore::new(max)),
            max: AtomicUsize::new(max),
            debt: AtomicUsize::new(0),
            freed,
        })
    }

    pub fn max(&self) -> usize {
        self.max.load(Ordering::Acquire)
    }

    /// Whether a slot is free now.
    pub fn has_free(&self) -> bool {
        self.semaphore.available_permits() > 0
    }

    /// Waits for a slot until `deadline`.
    pub async fn acquire(self: &Arc<Self>, deadline: Instant) -> Result<Slot, NoBudget> {
        let acquire = Arc::clone(&self.semaphore).acquire_owned();
        match tokio::time::timeout_at(deadline, acquire).await {
            Ok(Ok(permit)) => Ok(self.slot(permit)),
            // Never closed; treat it like a slot that never freed up.
            Ok(Err(_)) | Err(_) => Err(NoBudget::Concurrency { max: self.max() }),
        }
    }

    /// A slot if one is free now.
    pub fn try_acquire(self: &Arc<Self>) -> Option<Slot> {
        let permit = Arc::clone(&self.semaphore).try_acquire_owned().ok()?;
        Some(self.slot(permit))
    }

    fn slot(self: &Arc<Self>, permit: OwnedSemaphorePermit) -> Slot {
        Slot {
            permit: Some(permit),
            slots: Arc::clone(self),
        }
    }

    /// Sets the cap to `max`. Callers serialize resizes.
    pub fn resize(&self, max: usize) {
        let old = self.max.swap(max, Ordering::AcqRel);
        if max < old {
            let cut = old - max;
            let taken = self.semaphore.forget_permits(cut);
            self.debt.fetch_add(cut - taken, Ordering::AcqRel);
        } else if max > old {
            let grow = max - old;
            let forgiven = take_up_to(&self.debt, grow);
            self.semaphore.add_permits(grow - forgiven);
            self.freed.notify_waiters();
        }
    }
}

/// Subtracts up to `n` from `counter` (not below zero); returns how much it took.
fn take_up_to(counter: &AtomicUsize, n: usize) -> usize {
    let before = counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| {
            Some(d.saturating_sub(n))
        })
        .unwrap_or(0);
    before.min(n)
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some(permit) = self.permit.take() else {
            return;
        };
        if take_up_to(&self.slots.debt, 1) == 1 {
            permit.forget();
        } else {
            drop(permit);
        }
        self.slots.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrinking_retires_busy_slots_as_they_come_back() {
        let slots = Slots::new(4, Arc::new(Notify::new()));
        let held: Vec<Slot> = (0..3).map(|_| slots.try_acquire().unwrap()).collect();
        slots.resize(2);
        assert!(!slots.has_free(), "the free one was taken away");
        drop(held);
        let again: Vec<Slot> = std::iter::from_fn(|| slots.try_acquire()).collect();
        assert_eq!(again.len(), 2, "two of the three came back");
        drop(again);
        slots.resize(5);
        let grown: Vec<Slot> = std::iter::from_fn(|| slots.try_acquire()).collect();
        assert_eq!(grown.len(), 5);
    }

    #[test]
    fn growing_first_forgives_the_debt() {
        let slots = Slots::new(2, Arc::new(Notify::new()));
        let held: Vec<Slot> = (0..2).map(|_| slots.try_acquire().unwrap()).collect();
        slots.resize(1);
        slots.resize(2);
        assert!(slots.try_acquire().is_none(), "both still busy");
        drop(held);
        let back: Vec<Slot> = std::iter::from_fn(|| slots.try_acquire()).collect();
        assert_eq!(back.len(), 2);
    }
}
