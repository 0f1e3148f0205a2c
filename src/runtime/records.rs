//! The records writer: one task that writes call rows, leg rows and bindings, so the SIP loop never
//! waits on the database and SQLite sees a single writer. Writes are retried; a record that still
//! cannot be written is logged with its content, never silently lost.

use crate::runtime::events::{Event, EventBus};
use crate::sip::dialog::LegId;
use crate::store::{BindingRecord, NewCall, NewLeg, Store, StoreError};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Debug, Clone)]
pub enum RecordOp {
    CallStarted {
        leg: LegId,
        call: NewCall,
        sip_leg: NewLeg,
    },
    CallAnswered {
        leg: LegId,
        at: DateTime<Utc>,
    },
    CallEnded {
        leg: LegId,
        at: DateTime<Utc>,
        disposition: String,
        hangup_by: Option<&'static str>,
        final_status: Option<i32>,
    },
    CallEvent {
        leg: LegId,
        at: DateTime<Utc>,
        kind: &'static str,
        detail: serde_json::Value,
    },
    /// The IVR flow of the call and its path so far (JSON).
    CallFlow {
        leg: LegId,
        flow: String,
        path: serde_json::Value,
    },
    CallRating {
        leg: LegId,
        rating: u8,
    },
    /// The voice broadcast that placed the call, and its attempt's result (JSON; null until
    /// the call ends).
    CallBroadcast {
        leg: LegId,
        broadcast_id: String,
        result: serde_json::Value,
    },
    /// A leg we placed for a call (an operator rung by the flow).
    LegStarted {
        caller_leg: LegId,
        leg: LegId,
        sip_call_id: String,
        remote_uri: String,
        remote_addr: String,
        transport: &'static str,
    },
    LegAnswered {
        leg: LegId,
        at: DateTime<Utc>,
    },
    LegEnded {
        leg: LegId,
        at: DateTime<Utc>,
        status: Option<i32>,
    },
    RecordingStarted {
        leg: LegId,
        id: String,
        /// Relative to the data directory.
        path: String,
        at: DateTime<Utc>,
    },
    RecordingFinished {
        id: String,
        duration_ms: i64,
        size_bytes: i64,
        at: DateTime<Utc>,
    },
    RecordingFailed {
        id: String,
        error: String,
        at: DateTime<Utc>,
    },
    /// The caller joined a queue (again, on overflow into another).
    CallQueued {
        leg: LegId,
        queue: String,
        position: usize,
        at: DateTime<Utc>,
    },
    /// The caller left the queue: bridged to `operator`, abandoned or overflowed, after `waited`.
    CallQueueOutcome {
        leg: LegId,
        queue: String,
        operator: Option<String>,
        waited: Duration,
        /// `answered` | `abandoned` | `overflow`.
        outcome: &'static str,
    },
    /// The server changed an operator's status (missed rings).
    OperatorStatus {
        ext: String,
        status: &'static str,
        reason: Option<String>,
        at: DateTime<Utc>,
    },
    BindingUpsert(BindingRecord),
    BindingRemove {
        extension: String,
        contact_uri: String,
    },
    /// The call's media task has finished: nothing more will be written for this leg.
    Forget {
        leg: LegId,
    },
}

pub type RecordsTx = mpsc::UnboundedSender<RecordOp>;

/// Runs until every sender is dropped and the queue is empty. Each call row written is published
/// on `events` afterwards (the CRM worker and the event WebSocket listen there).
pub async fn run(store: Store, mut ops: mpsc::UnboundedReceiver<RecordOp>, events: EventBus) {
    // Endpoint leg → (call id, leg row id).
    let mut legs: HashMap<LegId, (String, i64)> = HashMap::new();
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(first) = ops.recv().await {
        batch.push(first);
        while batch.len() < BATCH {
            match ops.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        metrics::gauge!("openline_records_queued").set(ops.len() as f64);
        for op in coalesce(std::mem::take(&mut batch)) {
            write(&store, &mut legs, &events, op).await;
        }
    }
}

/// Ops taken from the queue at once: when the writer falls behind, batches grow and coalescing
/// saves the statements that would be overwritten anyway.
const BATCH: usize = 512;

/// Drops flow-path updates that a later update of the same call in the batch replaces.
fn coalesce(batch: Vec<RecordOp>) -> Vec<RecordOp> {
    let mut last_flow: HashMap<LegId, usize> = HashMap::new();
    for (i, op) in batch.iter().enumerate() {
        if let RecordOp::CallFlow { leg, .. } = op {
            last_flow.insert(*leg, i);
        }
    }
    batch
        .into_iter()
        .enumerate()
        .filter(|(i, op)| match op {
            RecordOp::CallFlow { leg, .. } => last_flow.get(leg) == Some(i),
            _ => true,
        })
        .map(|(_, op)| op)
        .collect()
}

/// Writes one op, retrying a few times; a record that still fails is logged with its content.
async fn write(
    store: &Store,
    legs: &mut HashMap<LegId, (String, i64)>,
    events: &EventBus,
    op: RecordOp,
) {
    let mut attempt = 0;
    loop {
        match apply(store, legs, &op).await {
            Ok(published) => {
                for event in published {
                    events.publish(event);
                }
                break;
            }
            Err(e) if attempt < 5 => {
                attempt += 1;
                tracing::warn!(error = %e, attempt, "record write failed, retrying");
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
            Err(e) => {
                metrics::counter!("openline_record_write_failures_total").increment(1);
                tracing::error!(error = %e, record = ?op, "record could not be written");
                break;
            }
        }
    }
}

async fn apply(
    store: &Store,
    legs: &mut HashMap<LegId, (String, i64)>,
    op: &RecordOp,
) -> Result<Vec<Event>, StoreError> {
    let mut event = None;
    let mut first = None;
    match op {
        RecordOp::CallStarted { leg, call, sip_leg } => {
            if !legs.contains_key(leg) {
                store.insert_call(call).await?;
                let leg_row = store.insert_leg(sip_leg).await?;
                legs.insert(*leg, (call.id.clone(), leg_row));
                event = Some(Event::CallStarted {
                    call_id: call.id.clone(),
                    direction: call.direction.clone(),
                    caller: call.caller.clone(),
                    caller_name: call.caller_name.clone(),
                    callee: call.callee.clone(),
                    at: call.started_at,
                });
            }
        }
        RecordOp::CallAnswered { leg, at } => {
            if let Some((call_id, leg_row)) = legs.get(leg) {
                store.call_answered(call_id, *at).await?;
                store.leg_answered(*leg_row, *at, None).await?;
                event = Some(Event::CallAnswered {
                    call_id: call_id.clone(),
                    operator: None,
                    at: *at,
                });
            }
        }
        RecordOp::CallEnded {
            leg,
            at,
            disposition,
            hangup_by,
            final_status,
        } => {
            if let Some((call_id, leg_row)) = legs.get(leg) {
                store.leg_ended(*leg_row, *at, *final_status).await?;
                store
                    .call_ended(call_id, *at, disposition, *hangup_by)
                    .await?;
                event = Some(Event::CallEnded {
                    call_id: call_id.clone(),
                    disposition: disposition.clone(),
                    hangup_by: hangup_by.map(str::to_owned),
                    at: *at,
                });
            }
        }
        RecordOp::CallEvent {
            leg,
            at,
            kind,
            detail,
        } => {
            if let Some((call_id, _)) = legs.get(leg) {
                store.insert_call_event(call_id, *at, kind, detail).await?;
            }
        }
        RecordOp::CallFlow { leg, flow, path } => {
            if let Some((call_id, _)) = legs.get(leg) {
                store
                    .set_call_flow(call_id, flow, &path.to_string())
                    .await?;
            }
        }
        RecordOp::CallRating { leg, rating } => {
            if let Some((call_id, _)) = legs.get(leg) {
                store.set_call_rating(call_id, i32::from(*rating)).await?;
            }
        }
        RecordOp::CallBroadcast {
            leg,
            broadcast_id,
            result,
        } => {
            if let Some((call_id, _)) = legs.get(leg) {
                store
                    .set_call_broadcast(call_id, broadcast_id, result)
                    .await?;
            }
        }
        RecordOp::LegStarted {
            caller_leg,
            leg,
            sip_call_id,
            remote_uri,
            remote_addr,
            transport,
        } => {
            if let Some((call_id, _)) = legs.get(caller_leg).cloned() {
                let row = store
                    .insert_leg(&crate::store::NewLeg {
                        call_id: call_id.clone(),
                        sip_call_id: sip_call_id.clone(),
                        direction: "outbound".into(),
                        local_tag: None,
                        remote_tag: None,
                        remote_uri: remote_uri.clone(),
                        remote_addr: Some(remote_addr.clone()),
                        transport: (*transport).into(),
                        started_at: Utc::now(),
                    })
                    .await?;
                legs.insert(*leg, (call_id, row));
            }
        }
        RecordOp::LegAnswered { leg, at } => {
            if let Some((_, row)) = legs.get(leg) {
                store.leg_answered(*row, *at, None).await?;
            }
        }
        RecordOp::LegEnded { leg, at, status } => {
            if let Some((_, row)) = legs.remove(leg) {
                store.leg_ended(row, *at, *status).await?;
            }
        }
        RecordOp::RecordingStarted { leg, id, path, at } => {
            if let Some((call_id, _)) = legs.get(leg) {
                store
                    .insert_recording(&crate::store::NewRecording {
                        id: id.clone(),
                        call_id: call_id.clone(),
                        path: path.clone(),
                        format: "wav".into(),
                        channels: 2,
                        sample_rate: 8000,
                        created_at: *at,
                    })
                    .await?;
            }
        }
        RecordOp::RecordingFinished {
            id,
            duration_ms,
            size_bytes,
            at,
        } => {
            store
                .recording_completed(id, *duration_ms, *size_bytes, *at)
                .await?
        }
        RecordOp::RecordingFailed { id, error, at } => {
            store.recording_failed(id, error, *at).await?
        }
        RecordOp::CallQueued {
            leg,
            queue,
            position,
            at,
        } => {
            if let Some((call_id, _)) = legs.get(leg) {
                store.set_call_queue(call_id, queue).await?;
                event = Some(Event::QueueJoined {
                    call_id: call_id.clone(),
                    queue: queue.clone(),
                    position: u32::try_from(*position).unwrap_or(u32::MAX),
                    at: *at,
                });
            }
        }
        RecordOp::CallQueueOutcome {
            leg,
            queue,
            operator,
            waited,
            outcome,
        } => {
            if let Some((call_id, _)) = legs.get(leg) {
                let wait_ms = i64::try_from(waited.as_millis()).unwrap_or(i64::MAX);
                store
                    .set_call_queue_outcome(call_id, operator.as_deref(), wait_ms)
                    .await?;
                // The operator who took the call answered it: their event stream follows it
                // from here (they did not see it start).
                if let Some(ext) = operator {
                    first = Some(Event::CallAnswered {
                        call_id: call_id.clone(),
                        operator: Some(ext.clone()),
                        at: Utc::now(),
                    });
                }
                event = Some(Event::QueueLeft {
                    call_id: call_id.clone(),
                    queue: queue.clone(),
                    reason: (*outcome).to_string(),
                    at: Utc::now(),
                });
            }
        }
        RecordOp::OperatorStatus {
            ext,
            status,
            reason,
            at,
        } => {
            if store
                .set_operator_status(ext, status, reason.as_deref(), *at)
                .await?
            {
                event = Some(Event::OperatorStatus {
                    extension: ext.clone(),
                    status: (*status).to_string(),
                    at: *at,
                });
            }
        }
        RecordOp::BindingUpsert(binding) => store.upsert_binding(binding).await?,
        RecordOp::Forget { leg } => {
            legs.remove(leg);
        }
        RecordOp::BindingRemove {
            extension,
            contact_uri,
        } => store.remove_binding(extension, contact_uri).await?,
    }
    Ok(first.into_iter().chain(event).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_last_flow_path_of_a_call_in_a_batch_is_written() {
        let flow = |leg, n: u64| RecordOp::CallFlow {
            leg,
            flow: "main".into(),
            path: serde_json::json!([n]),
        };
        let batch = vec![
            flow(1, 1),
            flow(2, 1),
            flow(1, 2),
            RecordOp::Forget { leg: 1 },
            flow(1, 3),
        ];
        let kept = coalesce(batch);
        assert_eq!(kept.len(), 3);
        assert!(matches!(&kept[0], RecordOp::CallFlow { leg: 2, .. }));
        assert!(matches!(&kept[1], RecordOp::Forget { leg: 1 }));
        assert!(
            matches!(&kept[2], RecordOp::CallFlow { leg: 1, path, .. } if path == &serde_json::json!([3]))
        );
    }
}
