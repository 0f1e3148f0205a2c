//! The records writer: one task that writes call rows, leg rows and bindings, so the SIP loop never
//! waits on the database and SQLite sees a single writer. Writes are retried; a record that still
//! cannot be written is logged with its content, never silently lost.

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

/// Runs until every sender is dropped and the queue is empty.
pub async fn run(store: Store, mut ops: mpsc::UnboundedReceiver<RecordOp>) {
    // Endpoint leg → (call id, leg row id).
    let mut legs: HashMap<LegId, (String, i64)> = HashMap::new();
    while let Some(op) = ops.recv().await {
        let description = format!("{op:?}");
        let mut attempt = 0;
        loop {
            match apply(&store, &mut legs, &op).await {
                Ok(()) => break,
                Err(e) if attempt < 5 => {
                    attempt += 1;
                    tracing::warn!(error = %e, attempt, "record write failed, retrying");
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
                Err(e) => {
                    metrics::counter!("openline_record_write_failures_total").increment(1);
                    tracing::error!(error = %e, record = %description, "record could not be written");
                    break;
                }
            }
        }
    }
}

async fn apply(
    store: &Store,
    legs: &mut HashMap<LegId, (String, i64)>,
    op: &RecordOp,
) -> Result<(), StoreError> {
    match op {
        RecordOp::CallStarted { leg, call, sip_leg } => {
            if !legs.contains_key(leg) {
                store.insert_call(call).await?;
                let leg_row = store.insert_leg(sip_leg).await?;
                legs.insert(*leg, (call.id.clone(), leg_row));
            }
        }
        RecordOp::CallAnswered { leg, at } => {
            if let Some((call_id, leg_row)) = legs.get(leg) {
                store.call_answered(call_id, *at).await?;
                store.leg_answered(*leg_row, *at, None).await?;
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
        RecordOp::BindingUpsert(binding) => store.upsert_binding(binding).await?,
        RecordOp::Forget { leg } => {
            legs.remove(leg);
        }
        RecordOp::BindingRemove {
            extension,
            contact_uri,
        } => store.remove_binding(extension, contact_uri).await?,
    }
    Ok(())
}
