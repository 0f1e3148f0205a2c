//! Hands freed heap memory back to the kernel after a busy stretch. glibc's allocator keeps what a
//! burst of calls freed in its per-thread arenas, so after an overload the node's RSS stayed at the
//! burst's peak for good (measured: 25 MB idle, 362 MB peak, 368 MB an idle minute later), which
//! reads as a leak on any dashboard and leaves the box less room for the next burst.
//! `malloc_trim(0)` releases free pages of every arena; it runs off the async workers, every
//! 30 s, but not while the node sheds load (it holds each arena's lock while it walks it, which
//! would slow the calls up further); a trim over 20 ms is logged. Other allocators (musl,
//! jemalloc) return memory on their own: there it is a no-op.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const TRIM_EVERY: Duration = Duration::from_secs(30);

pub fn spawn_trimmer(
    overloaded: super::overload::Overloaded,
    token: CancellationToken,
    tracker: &TaskTracker,
) {
    tracker.spawn(async move {
        let mut every = tokio::time::interval(TRIM_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        loop {
            tokio::select! {
                _ = token.cancelled() => break,
                _ = every.tick() => {}
            }
            if overloaded.now() {
                continue;
            }
            let took = tokio::task::spawn_blocking(|| {
                let start = std::time::Instant::now();
                trim();
                start.elapsed()
            })
            .await
            .unwrap_or_default();
            if took > Duration::from_millis(20) {
                tracing::info!(ms = took.as_millis() as u64, "heap trim took long");
            }
        }
    });
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn trim() {
    // SAFETY: malloc_trim only walks the allocator's own arenas under their locks; it takes
    // no pointers from us.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
