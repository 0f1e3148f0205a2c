//! The shared cache of decoded prompts: keyed by path, invalidated by modification time or length,
//! one decode per file version however many calls ask at once, least recently used evicted first.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::SystemTime;

use super::{PromptError, decode_file};

type Outcome = Result<Arc<[i16]>, PromptError>;

/// Decoded prompts shared by every call: keyed by path, invalidated when the file's modification time or length changes.
/// Concurrent first requests for one path decode it once (others wait for that decode).
///
/// The map sits behind one short-lived lock; decoding happens outside it, in a per-entry
/// [`OnceLock`] that the requests for one file version share. Errors are not kept: the next
/// request tries again (the file may have been fixed).
pub struct PromptCache {
    max_bytes: usize,
    inner: Mutex<Inner>,
    /// Decodes started, for tests and metrics.
    decodes: AtomicUsize,
}

#[derive(Default)]
struct Inner {
    slots: HashMap<PathBuf, Slot>,
    /// Sum of `Slot::bytes` over decoded entries.
    bytes: usize,
    /// Logical clock for least-recently-used order.
    tick: u64,
}

struct Slot {
    version: Version,
    cell: Arc<OnceLock<Outcome>>,
    last_used: u64,
    /// Counted against the budget once the decode is done.
    bytes: Option<usize>,
}

/// What identifies one version of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    modified: Option<SystemTime>,
    len: u64,
}

impl PromptCache {
    /// A cache holding at most `max_bytes` of decoded audio (2 bytes a sample); beyond that the least
    /// recently used entries are evicted. Callers still holding an evicted prompt keep their `Arc`.
    pub fn new(max_bytes: usize) -> Self {
        PromptCache {
            max_bytes,
            inner: Mutex::new(Inner::default()),
            decodes: AtomicUsize::new(0),
        }
    }

    /// The decoded prompt at `path`, decoding it if it is not cached or the file changed.
    /// Blocking (stat, and on a miss the whole decode): run it on a blocking thread.
    pub fn get(&self, path: &Path) -> Result<Arc<[i16]>, PromptError> {
        let version = match std::fs::metadata(path) {
            Ok(meta) => Version {
                modified: meta.modified().ok(),
                len: meta.len(),
            },
            Err(e) => {
                // Gone or unreadable: forget what was cached for it.
                self.forget(path);
                return Err(PromptError::io(path, e));
            }
        };
        let cell = self.cell_for(path, version);
        let outcome = cell
            .get_or_init(|| {
                self.decodes.fetch_add(1, Ordering::Relaxed);
                decode_file(path).map(Arc::from)
            })
            .clone();
        self.settle(path, &cell, &outcome);
        outcome
    }

    /// Entries held (decoded, or being decoded), for metrics and tests.
    pub fn len(&self) -> usize {
        self.lock().slots.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of decoded audio held.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Decodes started since the cache was made.
    #[cfg(test)]
    pub(crate) fn decodes(&self) -> usize {
        self.decodes.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing under this lock can panic half-way through an update; a poisoned lock is still sound.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The shared decode cell for this file version, creating (and replacing a stale) slot if needed.
    fn cell_for(&self, path: &Path, version: Version) -> Arc<OnceLock<Outcome>> {
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        if let Some(slot) = inner.slots.get_mut(path)
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
        if let Some(stale) = inner.slots.insert(path.to_path_buf(), slot) {
            inner.bytes -= stale.bytes.unwrap_or(0);
        }
        cell
    }

    /// After a decode: account for its size and evict, or drop the slot if the decode failed.
    fn settle(&self, path: &Path, cell: &Arc<OnceLock<Outcome>>, outcome: &Outcome) {
        let mut inner = self.lock();
        let Some(slot) = inner.slots.get_mut(path) else {
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
                inner.evict(self.max_bytes);
            }
            Err(_) => {
                inner.slots.remove(path);
            }
        }
    }

    fn forget(&self, path: &Path) {
        let mut inner = self.lock();
        if let Some(slot) = inner.slots.remove(path) {
            inner.bytes -= slot.bytes.unwrap_or(0);
        }
    }
}

impl Inner {
    /// Evicts decoded entries, least recently used first, until the budget holds.
    fn evict(&mut self, max_bytes: usize) {
        while self.bytes > max_bytes {
            let oldest = self
                .slots
                .iter()
                .filter(|(_, slot)| slot.bytes.is_some())
                .min_by_key(|(_, slot)| slot.last_used)
                .map(|(path, _)| path.clone());
            let Some(path) = oldest else { break };
            if let Some(slot) = self.slots.remove(&path) {
                self.bytes -= slot.bytes.unwrap_or(0);
                tracing::debug!(path = %path.display(), "prompt evicted from the cache");
            }
        }
    }
}

impl std::fmt::Debug for PromptCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.lock();
        f.debug_struct("PromptCache")
            .field("max_bytes", &self.max_bytes)
            .field("entries", &inner.slots.len())
            .field("bytes", &inner.bytes)
            .finish()
    }
}
