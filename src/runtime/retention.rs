//! The retention sweep: at start and then every `retention.sweep_every`, deletes recordings and
//! call rows older than their configured retention (files first, then rows) and the short-lived
//! rows (expired web sessions, old idempotency keys, finished CRM sync events). Every run is logged.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::config::RetentionConfig;
use crate::store::{Store, StoreError};

/// Rows handled per query.
const BATCH: i64 = 500;
/// Idempotency keys are kept this long.
const IDEMPOTENCY_KEYS: chrono::Duration = chrono::Duration::hours(24);
/// Delivered or given-up CRM sync events are kept this long.
const FINISHED_SYNC_EVENTS: chrono::Duration = chrono::Duration::days(30);

/// What one sweep deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub recordings: u64,
    pub calls: u64,
}

/// Runs sweeps until `shutdown` is cancelled.
pub async fn run(
    store: Store,
    config: RetentionConfig,
    data_dir: PathBuf,
    shutdown: CancellationToken,
) {
    loop {
        match sweep(&store, &config, &data_dir, Utc::now()).await {
            Ok(report) => tracing::info!(
                recordings = report.recordings,
                calls = report.calls,
                "retention sweep done"
            ),
            Err(e) => tracing::warn!(error = %e, "retention sweep failed; next run retries"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(config.sweep_every) => {}
        }
    }
}

/// One sweep at `now`.
pub async fn sweep(
    store: &Store,
    config: &RetentionConfig,
    data_dir: &Path,
    now: DateTime<Utc>,
) -> Result<SweepReport, StoreError> {
    let mut report = SweepReport::default();
    if let Some(age) = config.recordings {
        let cutoff = cutoff(now, age);
        loop {
            let batch = store.recordings_before(cutoff, BATCH).await?;
            let mut progress = false;
            for rec in &batch {
                if remove_data_file(data_dir, rec.file_in(data_dir)).await {
                    store.delete_recording(&rec.id).await?;
                    report.recordings += 1;
                    progress = true;
                }
            }
            if (batch.len() as i64) < BATCH || !progress {
                break;
            }
        }
    }
    if let Some(age) = config.calls {
        let cutoff = cutoff(now, age);
        loop {
            let (ids, paths) = store.calls_before(cutoff, BATCH).await?;
            for path in paths {
                let file = crate::store::RecordingRecord::relative_file(data_dir, &path);
                remove_data_file(data_dir, file).await;
            }
            report.calls += store.delete_calls(&ids).await?;
            if (ids.len() as i64) < BATCH {
                break;
            }
        }
    }
    store
        .sweep_short_lived(now, now - IDEMPOTENCY_KEYS, now - FINISHED_SYNC_EVENTS)
        .await?;
    Ok(report)
}

fn cutoff(now: DateTime<Utc>, age: Duration) -> DateTime<Utc> {
    now - chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX)
}

/// Deletes a file under the data directory; true when it is gone (or never existed).
pub async fn remove_data_file(data_dir: &Path, file: Option<PathBuf>) -> bool {
    let Some(file) = file else {
        tracing::warn!(dir = %data_dir.display(), "not deleting a file outside the data directory");
        return true;
    };
    match tokio::fs::remove_file(&file).await {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => {
            tracing::error!(file = %file.display(), error = %e, "cannot delete file");
            false
        }
    }
}
