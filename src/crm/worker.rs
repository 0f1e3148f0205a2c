//! The CRM worker (shell): listens on the event bus and, for every call that ends, matches the
//! other party's number to a contact or lead (creating the lead when it is new) and writes the call
//! entry on its timeline; with CRM sync on, it also queues the call's webhook events.
//!
//! It never runs on the SIP task's path: it reads the bus after the records writer has stored the
//! row. At start, and whenever it fell behind the bus or a write failed, it backfills: every ended
//! call without a link (crash-closed calls, calls from before an upgrade) is handled the same way.

use std::time::Duration;

use chrono::Utc;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;

use crate::crm::entry;
use crate::crm::phone::DefaultCountry;
use crate::crm::sync::{self, SyncSettings};
use crate::runtime::events::Event;
use crate::store::{CallRecord, Store, StoreError};

/// What the worker needs to know.
#[derive(Debug, Clone)]
pub struct CrmSettings {
    pub country: DefaultCountry,
    pub sync: Option<SyncSettings>,
}

/// How long after a failed write the worker backfills again.
const RETRY_BACKFILL: Duration = Duration::from_secs(30);
/// Calls handled per backfill query.
const BACKFILL_BATCH: i64 = 200;

/// Runs until `shutdown` is cancelled or the bus closes.
pub async fn run(
    store: Store,
    mut events: broadcast::Receiver<Event>,
    settings: CrmSettings,
    shutdown: CancellationToken,
) {
    let mut behind = !backfill(&store, &settings).await;
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(RETRY_BACKFILL), if behind => {
                behind = !backfill(&store, &settings).await;
                continue;
            }
            e = events.recv() => e,
        };
        let result = match event {
            Ok(Event::CallEnded { call_id, .. }) => call_ended(&store, &settings, &call_id).await,
            Ok(Event::CallStarted { call_id, .. }) => match &settings.sync {
                Some(sync) => call_started(&store, sync, &call_id).await,
                None => Ok(()),
            },
            Ok(_) => Ok(()),
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "CRM worker fell behind the event bus; backfilling");
                behind = !backfill(&store, &settings).await;
                Ok(())
            }
            Err(RecvError::Closed) => break,
        };
        if let Err(e) = result {
            metrics::counter!("openline_crm_errors_total").increment(1);
            tracing::warn!(error = %e, "CRM update failed; will backfill");
            behind = true;
        }
    }
}

async fn call_started(store: &Store, sync: &SyncSettings, call_id: &str) -> Result<(), StoreError> {
    if let Some((call, _)) = store.call(call_id).await? {
        sync::enqueue_register(store, sync, &call, Utc::now()).await?;
    }
    Ok(())
}

async fn call_ended(
    store: &Store,
    settings: &CrmSettings,
    call_id: &str,
) -> Result<(), StoreError> {
    match store.call(call_id).await? {
        Some((call, _)) => link(store, settings, &call, true).await,
        None => Ok(()),
    }
}

/// Puts one ended call on its person's timeline (and queues its sync events when `sync_it`).
pub async fn link(
    store: &Store,
    settings: &CrmSettings,
    call: &CallRecord,
    sync_it: bool,
) -> Result<(), StoreError> {
    let now = Utc::now();
    match entry::party_number(call, settings.country) {
        None => {
            store.link_call(&call.id, None, None, now).await?;
        }
        Some(e164) => {
            let found = store
                .match_or_create_lead(&e164, &entry::new_lead(call, &e164), now)
                .await?;
            if found.created {
                metrics::counter!("openline_crm_leads_created_total").increment(1);
                tracing::info!(lead = %found.person_id, number = %e164, "new lead from a call");
            }
            let transfers = transfers_of(store, &call.id).await?;
            let item = entry::call_entry(call, &found.person_id, &e164, transfers);
            store
                .link_call(&call.id, Some(&found.person_id), Some(&item), now)
                .await?;
        }
    }
    if sync_it && let Some(sync) = &settings.sync {
        sync::enqueue_call(store, sync, call, now).await?;
    }
    Ok(())
}

/// Event kinds that tell a call's transfers.
const TRANSFER_EVENTS: [&str; 3] = ["transfer", "transfer_connected", "transfer_failed"];

/// A call's transfer events for its timeline entry: each event's detail with its `event` kind
/// and `at`.
async fn transfers_of(store: &Store, call_id: &str) -> Result<Vec<serde_json::Value>, StoreError> {
    let events = store.call_events(call_id).await?;
    Ok(events
        .into_iter()
        .filter(|e| TRANSFER_EVENTS.contains(&e.kind.as_str()))
        .map(|e| {
            let mut detail: serde_json::Value =
                serde_json::from_str(&e.detail).unwrap_or_else(|_| serde_json::json!({}));
            if let Some(map) = detail.as_object_mut() {
                map.insert("event".into(), e.kind.clone().into());
                map.insert("at".into(), serde_json::json!(e.at));
            }
            detail
        })
        .collect())
}

/// Handles every ended call without a link. Returns false when a write failed.
async fn backfill(store: &Store, settings: &CrmSettings) -> bool {
    let recent = Utc::now() - chrono::Duration::hours(24);
    let mut handled = 0u64;
    loop {
        let calls = match store.unlinked_ended_calls(BACKFILL_BATCH).await {
            Ok(calls) => calls,
            Err(e) => {
                tracing::warn!(error = %e, "CRM backfill query failed");
                return false;
            }
        };
        if calls.is_empty() {
            break;
        }
        for call in &calls {
            // Old calls reach the timelines but are not pushed to the external CRM.
            let sync_it = call.ended_at.is_some_and(|at| at > recent);
            if let Err(e) = link(store, settings, call, sync_it).await {
                tracing::warn!(error = %e, call = %call.id, "CRM backfill failed");
                return false;
            }
            handled += 1;
        }
    }
    if handled > 0 {
        tracing::info!(calls = handled, "CRM backfill put ended calls on timelines");
    }
    true
}
