//! The audio cache behind decoded prompts and synthesized speech: one producer run per key and
//! version however many calls ask at once, least recently used entries evicted beyond a byte
//! budget, failures not kept (the next request tries again).
//!
//! The map sits behind one short-lived lock; producing happens outside it, in a per-entry
//! [`OnceLock`] that the requests for one key and version share.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

type Outcome<E> = Result<Arc<[i16]>, E>;

pub struct AudioCache<K, V, E> {
    max_bytes: usize,
    inner: Mutex<Inner<K, V, E>>,
}

struct Inner<K, V, E> {
    slots: HashMap<K, Slot<V, E>>,
    /// Sum of `Slot::bytes` over finished entries.
    bytes: usize,
    /// Logical clock for least-recently-used order.
    tick: u64,
}

struct Slot<V, E> {
    /// What identifies the source's version (a file's mtime and length; `()` when it never changes).
    version: V,
    cell: Arc<OnceLock<Outcome<E>>>,
    last_used: u64,
    /// Counted against the budget once produced.
    bytes: Option<usize>,
}

impl<K: Hash + Eq + Clone, V: PartialEq + Copy, E: Clone> AudioCache<K, V, E> {
    /// A cache holding at most `max_bytes` of audio (2 bytes a sample). Callers still holding an
    /// evicted entry keep their `Arc`.
    pub fn new(max_bytes: usize) -> Self {
        AudioCache {
            max_bytes,
            inner: Mutex::new(Inner {
                slots: HashMap::new(),
                bytes: 0,
                tick: 0,
            }),
        }
    }

    /// The audio for `key` at `version`, running `produce` when it is not cached (or the version
    /// changed). Blocking while this or another caller produces it.
    pub fn get_or_produce(
        &self,
        key: &K,
        version: V,
        produce: impl FnOnce() -> Outcome<E>,
    ) -> Outcome<E> {
        let cell = self.cell_for(key, version);
        let outcome = cell.get_or_init(produce).clone();
        self.settle(key, &cell, &outcome);
        outcome
    }

    /// Drops what is cached for `key` (its source is gone).
    pub fn forget(&self, key: &K) {
        let mut inner = self.lock();
        if let Some(slot) = inner.slots.remove(key) {
            inner.bytes -= slot.bytes.unwrap_or(0);
        }
    }

    /// Entries held (produced, or being produced).
    pub fn len(&self) -> usize {
        self.lock().slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of audio held.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    fn lock(&self) -> MutexGuard<'_, Inner<K, V, E>> {
        // Nothing under this lock can panic half-way through an update; a poisoned lock is still sound.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The shared cell for this key and version, creating (or replacing a stale) slot if needed.
    fn cell_for(&self, key: &K, version: V) -> Arc<OnceLock<Outcome<E>>> {
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        if let Some(slot) = inner.slots.get_mut(key)
            && slot.version == version
        {
            slot.last_used = tick;
            return Arc::clone(&slot.cell);
        }
        let cell = Arc::new(OnceLock::new());
        let slot = Slot {
            version,
            cell: Arc::clone(&cell),
            last_used: tick,
            bytes: None,
        };
        if let Some(stale) = inner.slots.insert(key.clone(), slot) {
            inner.bytes -= stale.bytes.unwrap_or(0);
        }
        cell
    }

    /// After producing: account for the size and evict, or drop the slot if it failed.
    fn settle(&self, key: &K, cell: &Arc<OnceLock<Outcome<E>>>, outcome: &Outcome<E>) {
        let mut inner = self.lock();
        let max_bytes = self.max_bytes;
        let Some(slot) = inner.slots.get_mut(key) else {
            return;
        };
        if !Arc::ptr_eq(&slot.cell, cell) || slot.bytes.is_some() {
            return; // replaced by a newer version, or already settled by another caller
        }
        match outcome {
            Ok(samples) => {
                let bytes = std::mem::size_of_val::<[i16]>(samples);
                slot.bytes = Some(bytes);
                inner.bytes += bytes;
                inner.evict(max_bytes);
            }
            Err(_) => {
                inner.slots.remove(key);
            }
        }
    }
}

impl<K: Hash + Eq + Clone, V, E> Inner<K, V, E> {
    /// Evicts finished entries, least recently used first, until the budget holds.
    fn evict(&mut self, max_bytes: usize) {
        while self.bytes > max_bytes {
            let oldest = self
                .slots
                .iter()
                .filter(|(_, slot)| slot.bytes.is_some())
                .min_by_key(|(_, slot)| slot.last_used)
                .map(|(key, _)| key.clone());
            let Some(key) = oldest else { break };
            if let Some(slot) = self.slots.remove(&key) {
                self.bytes -= slot.bytes.unwrap_or(0);
            }
        }
    }
}
