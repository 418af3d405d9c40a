//! Validated tokens kept in memory, never stale.
//!
//! One process owns every token, so a validation can be remembered: the token's hash maps to
//! what it granted and to the store's identity epoch read *before* the rows were read
//! ([`store::Store::identity_epoch`]). Any committed change to an identity table (a revoked
//! token, a password change, a removed role, a disabled user or project, a deleted project),
//! whoever wrote it, moves the epoch on, and an entry from an older epoch is never used. The
//! expiry is checked on every hit. The cache holds at most [`TokenCache::CAPACITY`] entries and
//! forgets the least recently used first.

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use lru::LruCache;

use crate::service::TokenInfo;

struct Entry {
    epoch: u64,
    info: TokenInfo,
}

/// Hits, misses and size of the cache, for metrics and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenCacheStats {
    pub hits: u64,
    pub misses: u64,
    pub entries: usize,
}

pub(crate) struct TokenCache {
    entries: Mutex<LruCache<Vec<u8>, Entry>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl TokenCache {
    /// Live tokens remembered at once (a few hundred bytes each).
    pub const CAPACITY: usize = 4096;

    pub fn new() -> Self {
        Self::with_capacity(Self::CAPACITY)
    }

    pub fn with_capacity(capacity: usize) -> Self {
        let cap = NonZeroUsize::new(capacity.max(1)).expect("at least one");
        Self {
            entries: Mutex::new(LruCache::new(cap)),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// What the token with this hash granted, if it was validated at `epoch` (the current
    /// one) and has not expired by `now`.
    pub fn get(&self, hash: &[u8], epoch: u64, now: DateTime<Utc>) -> Option<TokenInfo> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let found = match entries.get(hash) {
            Some(e) if e.epoch == epoch && e.info.record.expires_at > now => Some(e.info.clone()),
            Some(_) => {
                entries.pop(hash);
                None
            }
            None => None,
        };
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Remembers a validation made from rows read at `epoch`.
    pub fn put(&self, hash: Vec<u8>, epoch: u64, info: TokenInfo) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.put(hash, Entry { epoch, info });
    }

    pub fn stats(&self) -> TokenCacheStats {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner()).len();
        TokenCacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries,
        }
    }
}
