//! What `/healthz` reports and what keeps the process honest: the SIP task and the records
//! writer set a flag while they run; a SIP task that ends before shutdown was asked for (a
//! panic, a bug) stops the whole process with an error, so a supervisor (systemd, Kubernetes)
//! restarts it instead of leaving HTTP up with no SIP behind it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Liveness of the node's long-running tasks, shared with the API.
#[derive(Debug, Clone, Default)]
pub struct Health {
    sip: Arc<AtomicBool>,
    records: Arc<AtomicBool>,
    writer: Option<crate::runtime::records::WriterClock>,
}

/// A records writer that has tried to commit one batch for this long makes the node unhealthy
/// (nothing is lost, but the database is not keeping up or is down).
pub const RECORDS_STALLED_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

impl Health {
    /// Watches the records writer's progress as well as its task.
    pub fn watch_writer(&mut self, clock: crate::runtime::records::WriterClock) {
        self.writer = Some(clock);
    }

    /// The writer runs and is not stuck on one batch for `RECORDS_STALLED_AFTER`.
    pub fn records_healthy(&self) -> bool {
        self.records_running()
            && self
                .writer
                .as_ref()
                .and_then(|w| w.busy_for())
                .is_none_or(|busy| busy < RECORDS_STALLED_AFTER)
    }

    pub fn sip_running(&self) -> bool {
        self.sip.load(Ordering::Relaxed)
    }

    pub fn records_running(&self) -> bool {
        self.records.load(Ordering::Relaxed)
    }

    /// Runs `task` as the SIP task: the flag is up while it runs and drops when it ends,
    /// however it ends.
    pub fn spawn_sip<F>(&self, task: F) -> JoinHandle<()>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        spawn_flagged(self.sip.clone(), task)
    }

    /// The same for the records writer.
    pub fn spawn_records<F>(&self, task: F) -> JoinHandle<()>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        spawn_flagged(self.records.clone(), task)
    }
}

/// Clears the flag when dropped: after the task returns and also when it panics.
struct Lowered(Arc<AtomicBool>);

impl Drop for Lowered {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

fn spawn_flagged<F>(flag: Arc<AtomicBool>, task: F) -> JoinHandle<()>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    flag.store(true, Ordering::Relaxed);
    // Made here and moved in: dropped with the future even if it never ran.
    let lowered = Lowered(flag);
    tokio::spawn(async move {
        let _lowered = lowered;
        task.await;
    })
}

/// How waiting for shutdown ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Woken {
    /// Shutdown was asked for (a signal).
    Shutdown,
    /// The SIP task ended first: `Some(reason)` of a panic, `None` when it returned.
    SipDied(Option<String>),
}

/// Waits for shutdown, or for the SIP task to end before it (then it cannot be awaited again).
pub async fn wait(shutdown: &CancellationToken, sip: &mut JoinHandle<()>) -> Woken {
    tokio::select! {
        _ = shutdown.cancelled() => Woken::Shutdown,
        ended = sip => Woken::SipDied(ended.err().map(|e| {
            match e.try_into_panic() {
                Ok(panic) => panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".into()),
                Err(e) => e.to_string(),
            }
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_sip_task_wakes_the_process_and_lowers_its_flag() {
        let health = Health::default();
        let shutdown = CancellationToken::new();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let mut sip = health.spawn_sip(async move {
            let _ = rx.await;
            panic!("bug in the SIP task");
        });
        assert!(health.sip_running());
        tx.send(()).unwrap();
        let woken = wait(&shutdown, &mut sip).await;
        assert_eq!(woken, Woken::SipDied(Some("bug in the SIP task".into())));
        assert!(!health.sip_running());
    }

    #[tokio::test]
    async fn shutdown_wakes_it_while_the_sip_task_runs() {
        let health = Health::default();
        let shutdown = CancellationToken::new();
        let mut sip = health.spawn_sip(std::future::pending());
        shutdown.cancel();
        assert_eq!(wait(&shutdown, &mut sip).await, Woken::Shutdown);
        assert!(health.sip_running());
        sip.abort();
        let _ = (&mut sip).await;
        assert!(!health.sip_running(), "an aborted task lowers its flag too");
    }
}
