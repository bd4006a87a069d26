//! The answer cache: bounded in time (the TTL, at most [`MAX_TTL`]) and in size
//! ([`MAX_ENTRIES`]), safe to share between tasks.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Entries per cache; when full, expired entries go first, then the oldest half.
pub const MAX_ENTRIES: usize = 8192;
/// Longest time anything is cached, whatever its TTL says.
pub const MAX_TTL: Duration = Duration::from_secs(3600);

/// A map whose entries expire. `get` never returns an expired entry.
pub struct TtlCache<K, V> {
    map: Mutex<HashMap<K, (V, Instant)>>,
    capacity: usize,
}

impl<K, V> std::fmt::Debug for TtlCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TtlCache")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Default for TtlCache<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Hash + Eq + Clone, V: Clone> TtlCache<K, V> {
    /// A cache of [`MAX_ENTRIES`] entries.
    pub fn new() -> Self {
        Self::with_capacity(MAX_ENTRIES)
    }

    /// A cache of at most `capacity` entries (at least 2).
    pub fn with_capacity(capacity: usize) -> Self {
        TtlCache {
            map: Mutex::new(HashMap::new()),
            capacity: capacity.max(2),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, (V, Instant)>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value, if present and not expired.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut map = self.lock();
        match map.get(key) {
            Some((v, until)) if *until > Instant::now() => Some(v.clone()),
            Some(_) => {
                map.remove(key);
                None
            }
            None => None,
        }
    }

    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.lock().remove(key).map(|(v, _)| v)
    }

    /// Keep `value` until `valid_until`, but never longer than [`MAX_TTL`] from now.
    pub fn insert(&self, key: K, value: V, valid_until: Instant) {
        let now = Instant::now();
        let until = valid_until.min(now + MAX_TTL);
        let mut map = self.lock();
        if map.len() >= self.capacity && !map.contains_key(&key) {
            map.retain(|_, (_, u)| *u > now);
            if map.len() >= self.capacity {
                let mut ages: Vec<(K, Instant)> =
                    map.iter().map(|(k, (_, u))| (k.clone(), *u)).collect();
                ages.sort_by_key(|(_, u)| *u);
                for (k, _) in ages.into_iter().take(self.capacity / 2) {
                    map.remove(&k);
                }
            }
        }
        map.insert(key, (value, until));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_is_honoured_and_size_bounded() {
        let c: TtlCache<Box<str>, u32> = TtlCache::new();
        c.insert("a".into(), 1, Instant::now() + Duration::from_secs(60));
        c.insert("b".into(), 2, Instant::now());
        assert_eq!(c.get("a"), Some(1));
        assert_eq!(c.get("b"), None);
        for i in 0..(MAX_ENTRIES + 10) {
            c.insert(
                format!("k{i}").into(),
                0,
                Instant::now() + Duration::from_secs(60 + i as u64),
            );
        }
        assert!(c.len() <= MAX_ENTRIES);
    }

    #[test]
    fn a_huge_ttl_is_capped() {
        let c: TtlCache<u8, u8> = TtlCache::with_capacity(4);
        c.insert(1, 1, Instant::now() + Duration::from_secs(10 * 86_400));
        let until = c.lock().get(&1).map(|(_, u)| *u);
        assert!(until.is_some_and(|u| u <= Instant::now() + MAX_TTL));
    }
}
