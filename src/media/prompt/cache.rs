//! The shared cache of decoded prompts: keyed by path, invalidated by modification time or length,
//! one decode per file version however many calls ask at once, least recently used evicted first
//! (the mechanism is [`AudioCache`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use super::{PromptError, decode_file};
use crate::media::cache::AudioCache;

/// Decoded prompts shared by every call: keyed by path, invalidated when the file's modification time or length changes.
/// Concurrent first requests for one path decode it once (others wait for that decode).
/// Errors are not kept: the next request tries again (the file may have been fixed).
pub struct PromptCache {
    max_bytes: usize,
    cache: AudioCache<PathBuf, Version, PromptError>,
    /// Decodes started, for tests and metrics.
    decodes: AtomicUsize,
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
            cache: AudioCache::new(max_bytes),
            decodes: AtomicUsize::new(0),
        }
    }

    /// The decoded prompt at `path`, decoding it if it is not cached or the file changed.
    /// Blocking (stat, and on a miss the whole decode): run it on a blocking thread.
    pub fn get(&self, path: &Path) -> Result<Arc<[i16]>, PromptError> {
        let key = path.to_path_buf();
        let version = match std::fs::metadata(path) {
            Ok(meta) => Version {
                modified: meta.modified().ok(),
                len: meta.len(),
            },
            Err(e) => {
                // Gone or unreadable: forget what was cached for it.
                self.cache.forget(&key);
                return Err(PromptError::io(path, e));
            }
        };
        self.cache.get_or_produce(&key, version, || {
            self.decodes.fetch_add(1, Ordering::Relaxed);
            decode_file(path).map(Arc::from)
        })
    }

    /// Entries held (decoded, or being decoded), for metrics and tests.
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }

    /// Bytes of decoded audio held.
    pub fn bytes(&self) -> usize {
        self.cache.bytes()
    }

    /// Decodes started since the cache was made.
    #[cfg(test)]
    pub(crate) fn decodes(&self) -> usize {
        self.decodes.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for PromptCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PromptCache")
            .field("max_bytes", &self.max_bytes)
            .field("entries", &self.cache.len())
            .field("bytes", &self.cache.bytes())
            .finish()
    }
}
