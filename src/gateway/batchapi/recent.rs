//! A map that keeps at most `cap` entries, forgetting the oldest first: the views' memory
//! is bounded however many records (real or forged) their channels hold.

use std::collections::{BTreeMap, HashMap};

/// Entries by id, in the order their ids were first inserted.
#[derive(Debug, Clone)]
pub struct Recent<V> {
    entries: HashMap<String, (u64, V)>,
    /// Insertion number → id; the first is the oldest.
    order: BTreeMap<u64, String>,
    next: u64,
    cap: usize,
}

impl<V> Recent<V> {
    pub fn new(cap: usize) -> Self {
        Self {
            entries: HashMap::new(),
            order: BTreeMap::new(),
            next: 0,
            cap: cap.max(1),
        }
    }

    /// Inserts `id` (replacing keeps its age); gives back the oldest entry when that made
    /// one too many.
    pub fn insert(&mut self, id: String, value: V) -> Option<(String, V)> {
        if let Some((_, old)) = self.entries.get_mut(&id) {
            *old = value;
            return None;
        }
        self.order.insert(self.next, id.clone());
        self.entries.insert(id, (self.next, value));
        self.next += 1;
        if self.entries.len() <= self.cap {
            return None;
        }
        let (_, oldest) = self.order.pop_first()?;
        let (_, value) = self.entries.remove(&oldest)?;
        Some((oldest, value))
    }

    pub fn get(&self, id: &str) -> Option<&V> {
        self.entries.get(id).map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut V> {
        self.entries.get_mut(id).map(|(_, v)| v)
    }

    pub fn contains(&self, id: &str) -> bool {
        self.entries.contains_key(id)
    }

    pub fn remove(&mut self, id: &str) -> Option<V> {
        let (age, value) = self.entries.remove(id)?;
        self.order.remove(&age);
        Some(value)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry, newest first.
    pub fn newest_first(&self) -> impl Iterator<Item = &V> {
        self.order.values().rev().filter_map(|id| self.get(id))
    }

    /// The entries older than `id`, newest first (all of them if `id` is not here).
    pub fn older_than(&self, id: Option<&str>) -> impl Iterator<Item = &V> {
        let before = match id {
            Some(id) => self.entries.get(id).map_or(0, |(age, _)| *age),
            None => self.next,
        };
        self.order
            .range(..before)
            .rev()
            .filter_map(|(_, id)| self.get(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_goes_first_and_pages_run_newest_first() {
        let mut r = Recent::new(3);
        for (i, id) in ["a", "b", "c"].iter().enumerate() {
            assert_eq!(r.insert((*id).to_owned(), i), None);
        }
        assert_eq!(
            r.insert("b".into(), 10),
            None,
            "a replacement is no new entry"
        );
        assert_eq!(r.insert("d".into(), 3), Some(("a".into(), 0)));
        assert_eq!(r.newest_first().copied().collect::<Vec<_>>(), [3, 2, 10]);
        assert_eq!(r.older_than(Some("c")).copied().collect::<Vec<_>>(), [10]);
        assert_eq!(r.older_than(Some("gone")).count(), 0);
        assert_eq!(r.remove("c"), Some(2));
        assert_eq!((r.len(), r.contains("c")), (2, false));
    }
}
