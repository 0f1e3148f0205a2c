//! The records writer task and the start-up replay: batches of journaled entries applied in one
//! transaction with the checkpoint, retried while the database is unavailable (never dropped),
//! and an entry the database refuses for good set aside in `rejected.jsonl` with the reason.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::journal;
use super::{RecordsRx, Shared};
use crate::runtime::events::{Event, EventBus};
use crate::store::{Checkpoint, RecordEntry, Store, StoreError};

/// Entries taken from the queue at once: when the writer falls behind, batches grow, and each
/// is one transaction.
const BATCH: usize = 1024;
/// The first pause after a failed write; it doubles up to `MAX_PAUSE` while failures go on.
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const MAX_PAUSE: Duration = Duration::from_secs(5);
/// The journal is fsynced at most this often (once per batch under load).
const SYNC_EVERY: Duration = Duration::from_millis(50);
/// Replay logs its progress every this many entries.
const REPLAY_PROGRESS: usize = 10_000;

/// The journal could not be replayed; the server does not start, and the journal stays.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("records journal {path}: {source}")]
    Journal {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("records journal checkpoint: {0}")]
    Store(#[from] StoreError),
}

/// Runs until every `RecordsTx` is dropped and the queue is empty. Each entry committed is
/// published on `events` afterwards (the CRM worker and the event WebSocket listen there).
pub async fn run(store: Store, mut rx: RecordsRx, events: EventBus) {
    let shared = rx.shared.clone();
    // Fsyncs on its own clock, so entries journaled while a commit waits out the database
    // reach the disk too.
    let syncer = tokio::spawn(sync_while_appending(shared.clone()));
    while let Some(first) = rx.entries.recv().await {
        let mut batch = Vec::with_capacity(BATCH.min(64));
        batch.push(first);
        while batch.len() < BATCH {
            match rx.entries.try_recv() {
                Ok(entry) => batch.push(entry),
                Err(_) => break,
            }
        }
        let through = batch.last().map_or(0, |(seq, _)| *seq);
        let (seqs, entries): (Vec<u64>, Vec<RecordEntry>) = coalesce(batch).into_iter().unzip();
        shared.writer.start();
        let changed = commit(
            &store,
            &shared.node_id,
            &shared.dir,
            through,
            &seqs,
            &entries,
        )
        .await;
        shared.writer.stop();
        shared
            .applied
            .store(through, std::sync::atomic::Ordering::Release);
        metrics::counter!("openline_records_written_total").increment(entries.len() as u64);
        metrics::gauge!("openline_records_backlog").set(
            shared
                .appended
                .load(std::sync::atomic::Ordering::Acquire)
                .saturating_sub(through) as f64,
        );
        for (entry, changed) in entries.iter().zip(changed) {
            if let Some(changed) = changed {
                for event in events_of(entry, changed) {
                    events.publish(event);
                }
            }
        }
        delete_applied_segments(&shared, through);
    }
    syncer.abort();
    // Every entry is in the database: the journal has nothing a restart would need.
    let files = shared
        .journal
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .all_segments();
    for path in files {
        let _ = std::fs::remove_file(path);
    }
}

/// Fsyncs the open segment every `SYNC_EVERY` while entries are being appended.
async fn sync_while_appending(shared: std::sync::Arc<Shared>) {
    let mut synced = shared.appended.load(std::sync::atomic::Ordering::Acquire);
    let mut tick = tokio::time::interval(SYNC_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let appended = shared.appended.load(std::sync::atomic::Ordering::Acquire);
        if appended != synced {
            sync_journal(&shared).await;
            synced = appended;
        }
    }
}

/// Applies the journal's entries beyond the database's checkpoint for `node_id` and deletes
/// the segments; returns the last sequence number used (the next run continues after it).
pub async fn replay(store: &Store, node_id: &str, dir: &Path) -> Result<u64, ReplayError> {
    let applied = store.records_applied(node_id).await?;
    let journal_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ReplayError::Journal { path, source }
    };
    let files = journal::segments(dir).map_err(journal_err(dir))?;
    let mut last = applied;
    let mut replayed = 0;
    for path in &files {
        let read = journal::read_segment(path).map_err(journal_err(path))?;
        for (line, error) in &read.unreadable {
            metrics::counter!("openline_records_journal_unreadable_total").increment(1);
            tracing::error!(path = %path.display(), line, %error, "unreadable records journal line skipped");
        }
        last = read
            .entries
            .iter()
            .map(|(seq, _)| *seq)
            .fold(last, u64::max);
        let pending: Vec<_> = read
            .entries
            .into_iter()
            .filter(|(seq, _)| *seq > applied)
            .collect();
        let (seqs, entries): (Vec<u64>, Vec<RecordEntry>) = pending.into_iter().unzip();
        for (seqs, chunk) in seqs.chunks(BATCH).zip(entries.chunks(BATCH)) {
            let through = seqs.last().copied().unwrap_or(applied);
            commit(store, node_id, dir, through, seqs, chunk).await;
            let before = replayed;
            replayed += chunk.len();
            if replayed / REPLAY_PROGRESS > before / REPLAY_PROGRESS {
                tracing::info!(replayed, "replaying the records journal");
            }
        }
    }
    if replayed > 0 {
        tracing::warn!(
            replayed,
            "records journal replayed: these records were not in the database when the node stopped"
        );
    }
    for path in &files {
        std::fs::remove_file(path).map_err(journal_err(path))?;
    }
    Ok(last)
}

/// Commits `entries` (journal numbers `seqs`) with the checkpoint `through`, waiting out a database that is unavailable.
/// Returns the rows each entry changed, `None` for an entry the database refused for good (set
/// aside in the rejected file, the batch's other entries committed without it).
async fn commit(
    store: &Store,
    node_id: &str,
    dir: &Path,
    through: u64,
    seqs: &[u64],
    entries: &[RecordEntry],
) -> Vec<Option<u64>> {
    let checkpoint = |applied_seq| {
        Some(Checkpoint {
            node_id,
            applied_seq,
        })
    };
    let mut pause = FIRST_PAUSE;
    loop {
        match store.apply_records(checkpoint(through), entries).await {
            Ok(changed) => return changed.into_iter().map(Some).collect(),
            Err(e) if e.is_permanent() => break,
            Err(e) => wait_out(&e, &mut pause).await,
        }
    }
    // Some entry breaks a constraint: apply them one by one to find it and keep the rest.
    let mut changed = Vec::with_capacity(entries.len());
    for (index, (seq, entry)) in seqs.iter().zip(entries).enumerate() {
        let applied_seq = if index + 1 == entries.len() {
            through
        } else {
            *seq
        };
        loop {
            match store
                .apply_records(checkpoint(applied_seq), std::slice::from_ref(entry))
                .await
            {
                Ok(rows) => {
                    changed.push(rows.first().copied());
                    break;
                }
                Err(e) if e.is_permanent() => {
                    set_aside(dir, *seq, entry, &e);
                    while let Err(e) = store.apply_records(checkpoint(applied_seq), &[]).await {
                        wait_out(&e, &mut pause).await;
                    }
                    changed.push(None);
                    break;
                }
                Err(e) => wait_out(&e, &mut pause).await,
            }
        }
    }
    changed
}

async fn wait_out(error: &StoreError, pause: &mut Duration) {
    metrics::counter!("openline_record_write_failures_total").increment(1);
    tracing::warn!(%error, retry_in_ms = pause.as_millis() as u64, "records write failed; retrying (nothing is dropped)");
    tokio::time::sleep(*pause).await;
    *pause = (*pause * 2).min(MAX_PAUSE);
}

fn set_aside(dir: &Path, seq: u64, entry: &RecordEntry, error: &StoreError) {
    metrics::counter!("openline_records_rejected_total").increment(1);
    tracing::error!(%error, seq, record = ?entry, file = journal::REJECTED_FILE, "the database refused a record; kept in the rejected file");
    if let Err(io) = journal::reject(dir, seq, entry, &error.to_string()) {
        tracing::error!(error = %io, seq, record = ?entry, "cannot write the rejected record's file");
    }
}

async fn sync_journal(shared: &Shared) {
    let handle = {
        let journal = shared.journal.lock().unwrap_or_else(|e| e.into_inner());
        journal.sync_handle().ok()
    };
    if let Some(file) = handle {
        let synced = tokio::task::spawn_blocking(move || file.sync_data()).await;
        if let Ok(Err(error)) = synced {
            tracing::warn!(%error, "records journal fsync failed");
        }
    }
}

fn delete_applied_segments(shared: &Shared, through: u64) {
    let done = {
        let mut journal = shared.journal.lock().unwrap_or_else(|e| e.into_inner());
        journal.applied_segments(through)
    };
    for path in done {
        if let Err(error) = std::fs::remove_file(&path) {
            tracing::warn!(%error, path = %path.display(), "cannot delete an applied journal segment");
        }
    }
}

/// Drops flow-path updates that a later update of the same call in the batch replaces.
fn coalesce(batch: Vec<(u64, RecordEntry)>) -> Vec<(u64, RecordEntry)> {
    let mut last_flow = std::collections::HashMap::new();
    for (i, (_, entry)) in batch.iter().enumerate() {
        if let RecordEntry::CallFlow { call_id, .. } = entry {
            last_flow.insert(call_id.clone(), i);
        }
    }
    batch
        .into_iter()
        .enumerate()
        .filter(|(i, (_, entry))| match entry {
            RecordEntry::CallFlow { call_id, .. } => last_flow.get(call_id) == Some(i),
            _ => true,
        })
        .map(|(_, e)| e)
        .collect()
}

/// What the event bus hears about a committed entry that changed `changed` rows.
fn events_of(entry: &RecordEntry, changed: u64) -> Vec<Event> {
    match entry {
        RecordEntry::CallStarted { call, .. } if changed > 0 => vec![Event::CallStarted {
            call_id: call.id.clone(),
            direction: call.direction.clone(),
            caller: call.caller.clone(),
            caller_name: call.caller_name.clone(),
            callee: call.callee.clone(),
            at: call.started_at,
        }],
        RecordEntry::CallAnswered { call_id, at, .. } => vec![Event::CallAnswered {
            call_id: call_id.clone(),
            operator: None,
            at: *at,
        }],
        RecordEntry::CallEnded {
            call_id,
            at,
            disposition,
            hangup_by,
            ..
        } if changed > 0 => vec![Event::CallEnded {
            call_id: call_id.clone(),
            disposition: disposition.clone(),
            hangup_by: hangup_by.clone(),
            at: *at,
        }],
        RecordEntry::CallQueued {
            call_id,
            queue,
            position,
            at,
        } if changed > 0 => vec![Event::QueueJoined {
            call_id: call_id.clone(),
            queue: queue.clone(),
            position: *position,
            at: *at,
        }],
        RecordEntry::CallQueueOutcome {
            call_id,
            queue,
            operator,
            outcome,
            at,
            ..
        } if changed > 0 => {
            // The operator who took the call answered it: their event stream follows it from
            // here (they did not see it start).
            let answered = operator.as_ref().map(|ext| Event::CallAnswered {
                call_id: call_id.clone(),
                operator: Some(ext.clone()),
                at: *at,
            });
            answered
                .into_iter()
                .chain([Event::QueueLeft {
                    call_id: call_id.clone(),
                    queue: queue.clone(),
                    reason: outcome.clone(),
                    at: *at,
                }])
                .collect()
        }
        RecordEntry::OperatorStatus {
            extension,
            status,
            at,
            ..
        } if changed > 0 => vec![Event::OperatorStatus {
            extension: extension.clone(),
            status: status.clone(),
            at: *at,
        }],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_last_flow_path_of_a_call_in_a_batch_is_written() {
        let flow = |seq, call: &str, n: u64| {
            (
                seq,
                RecordEntry::CallFlow {
                    call_id: call.into(),
                    flow: "main".into(),
                    path: serde_json::json!([n]),
                },
            )
        };
        let rating = (
            4,
            RecordEntry::CallRating {
                call_id: "a".into(),
                rating: 5,
            },
        );
        let batch = vec![
            flow(1, "a", 1),
            flow(2, "b", 1),
            flow(3, "a", 2),
            rating.clone(),
            flow(5, "a", 3),
        ];
        let kept = coalesce(batch);
        assert_eq!(kept.len(), 3);
        assert!(matches!(&kept[0], (2, RecordEntry::CallFlow { call_id, .. }) if call_id == "b"));
        assert_eq!(kept[1], rating);
        assert!(
            matches!(&kept[2], (5, RecordEntry::CallFlow { path, .. }) if path == &serde_json::json!([3]))
        );
    }

    #[test]
    fn an_operator_taking_a_queue_call_is_told_it_was_answered_before_the_queue_left() {
        let entry = RecordEntry::CallQueueOutcome {
            call_id: "c".into(),
            queue: "sales".into(),
            operator: Some("1001".into()),
            wait_ms: 3000,
            outcome: "answered".into(),
            at: chrono::Utc::now(),
        };
        let events = events_of(&entry, 1);
        assert!(
            matches!(&events[0], Event::CallAnswered { operator: Some(op), .. } if op == "1001")
        );
        assert!(matches!(&events[1], Event::QueueLeft { reason, .. } if reason == "answered"));
        assert!(
            events_of(&entry, 0).is_empty(),
            "a call that is not there has no events"
        );
    }
}
