//! `/api/v1/calls`: the call list with filters and keyset paging, and one call with its legs, its
//! recordings and the lead or contact it was put on.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::params::{Params, is_id};
use super::{ApiError, ApiState, Caller};
use crate::store::{CallFilter, CallRecord, LegRecord, PersonKind, RecordingRecord};

/// A call as the API shows it (INTERFACE.md); fields of later subsystems are null until they exist.
#[derive(Serialize, ToSchema)]
pub struct CallView {
    id: String,
    /// `inbound` | `outbound` | `internal`.
    direction: String,
    caller: String,
    /// As the caller's phone sent it: untrusted text, escape it when showing it.
    caller_name: Option<String>,
    callee: String,
    started_at: DateTime<Utc>,
    answered_at: Option<DateTime<Utc>>,
    ended_at: Option<DateTime<Utc>>,
    duration_ms: Option<i64>,
    /// Stable dotted code, e.g. `answered.caller_hangup`.
    disposition: Option<String>,
    hangup_by: Option<String>,
    node_id: String,
    /// The IVR flow that answered the call.
    flow_id: Option<String>,
    /// The IVR nodes the call passed, in order, with the keys pressed at each:
    /// `[{ "flow": "main", "node": "menu", "digits": "1" }]`.
    #[schema(value_type = Option<Vec<Object>>)]
    flow_path: Option<serde_json::Value>,
    /// The queue the caller waited in (the last one, after an overflow).
    queue: Option<String>,
    /// The extension that talked to the caller from the queue.
    operator: Option<String>,
    /// Time waited in the queue until bridged to the operator or until the caller left.
    wait_ms: Option<i64>,
    /// The caller's post-call rating, 1–5.
    rating: Option<u8>,
    /// The newest complete recording, for `/api/v1/recordings/{id}`.
    recording_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    legs: Option<Vec<LegRecord>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    recordings: Option<Vec<RecordingRecord>>,
    /// The lead or contact the call is on (single-call view).
    #[serde(skip_serializing_if = "Option::is_none")]
    person: Option<PersonRef>,
    /// What happened during the call, in order: digits (with their source), recording alerts,
    /// media timeouts (single-call view).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    events: Option<Vec<serde_json::Value>>,
}

#[derive(Serialize, ToSchema)]
pub struct PersonRef {
    id: String,
    kind: PersonKind,
}

impl CallView {
    fn new(c: CallRecord, recording_id: Option<String>) -> Self {
        CallView {
            id: c.id,
            direction: c.direction,
            caller: c.caller,
            caller_name: c.caller_name,
            callee: c.callee,
            started_at: c.started_at,
            answered_at: c.answered_at,
            ended_at: c.ended_at,
            duration_ms: c.duration_ms,
            disposition: c.disposition,
            hangup_by: c.hangup_by,
            node_id: c.node_id,
            flow_id: c.flow_id,
            flow_path: c
                .flow_path
                .as_deref()
                .and_then(|p| serde_json::from_str(p).ok()),
            queue: c.queue,
            operator: c.operator,
            wait_ms: c.wait_ms,
            rating: c.rating.and_then(|r| u8::try_from(r).ok()),
            recording_id,
            legs: None,
            recordings: None,
            person: None,
            events: None,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct CallPage {
    calls: Vec<CallView>,
    /// Pass as `before` for the next page; null on the last page.
    next_before: Option<String>,
}

/// Newest first. Operator tokens see only calls where their extension is a party (caller,
/// callee, or the operator who took it from a queue).
#[utoipa::path(get, path = "/api/v1/calls", tag = "calls",
    params(
        ("since" = Option<String>, Query, description = "RFC 3339; calls that started at or after"),
        ("until" = Option<String>, Query, description = "RFC 3339; calls that started before"),
        ("number" = Option<String>, Query, description = "caller or callee exactly"),
        ("disposition" = Option<String>, Query, description = "e.g. `answered` or `cancelled.by_caller`"),
        ("direction" = Option<String>, Query, description = "inbound | outbound | internal"),
        ("queue" = Option<String>, Query, description = "calls that waited in this queue"),
        ("rating" = Option<u8>, Query, description = "calls the caller rated so, 1..5"),
        ("operator" = Option<String>, Query, description = "calls this extension took from a queue"),
        ("limit" = Option<i64>, Query, description = "1..1000, default 100"),
        ("before" = Option<String>, Query, description = "paging cursor (next_before)"),
    ),
    responses(
        (status = 200, body = CallPage),
        (status = 400, description = "request.invalid_query"),
        (status = 401, description = "auth.missing_token / auth.invalid_token"),
    ))]
pub async fn list(
    caller: Caller,
    State(state): State<ApiState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<CallPage>, ApiError> {
    let p = Params::new(
        query,
        &[
            "since",
            "until",
            "number",
            "limit",
            "before",
            "queue",
            "operator",
            "disposition",
            "direction",
            "rating",
        ],
    )?;
    let rating = p
        .text("rating")
        .map(|r| {
            r.parse::<i32>()
                .ok()
                .filter(|r| (1..=5).contains(r))
                .ok_or_else(|| {
                    ApiError::bad_request("request.invalid_query", "rating must be 1..5")
                })
        })
        .transpose()?;
    let filter = CallFilter {
        since: p.time("since")?,
        until: p.time("until")?,
        number: p.text("number"),
        limit: p.limit()?,
        before_id: p.cursor("before")?,
        disposition: p.text("disposition"),
        direction: p.text("direction"),
        queue: p.text("queue"),
        operator: p.text("operator"),
        rating,
        party: caller.call_scope().map(str::to_owned),
    };
    let store = state.store();
    let calls = store.calls(&filter).await?;
    let page_full = calls.len() as i64 == filter.effective_limit();
    let next_before = calls.last().filter(|_| page_full).map(|c| c.id.clone());
    let ids: Vec<String> = calls.iter().map(|c| c.id.clone()).collect();
    let mut recordings = store.latest_recordings(&ids).await?;
    let calls = calls
        .into_iter()
        .map(|c| {
            let rec = recordings.remove(&c.id);
            CallView::new(c, rec)
        })
        .collect();
    Ok(Json(CallPage { calls, next_before }))
}

/// One call with its legs (SIP Call-IDs, tags, addresses), recordings and CRM person.
#[utoipa::path(get, path = "/api/v1/calls/{id}", tag = "calls",
    params(("id" = String, Path, description = "call id (UUIDv7)")),
    responses(
        (status = 200, body = CallView),
        (status = 404, description = "call.not_found"),
    ))]
pub async fn get_one(
    caller: Caller,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<CallView>, ApiError> {
    let not_found = || ApiError::not_found("call.not_found", "no call with that id");
    if !is_id(&id) {
        return Err(not_found());
    }
    let store = state.store();
    let (call, legs) = store.call(&id).await?.ok_or_else(not_found)?;
    if !caller.sees_call(&call.caller, &call.callee, call.operator.as_deref()) {
        // Not the operator's call: the same answer as for a call that does not exist.
        return Err(not_found());
    }
    let recordings = store.recordings_for_call(&id).await?;
    let latest = recordings
        .iter()
        .rev()
        .find(|r| r.status == "complete")
        .map(|r| r.id.clone());
    let person = match store.call_person(&id).await? {
        Some(person_id) if caller.call_scope().is_none() => {
            store.person(&person_id).await?.map(|p| PersonRef {
                id: p.id,
                kind: p.kind,
            })
        }
        _ => None,
    };
    let events = store
        .call_events(&id)
        .await?
        .into_iter()
        .map(|e| {
            let detail = serde_json::from_str(&e.detail).unwrap_or(serde_json::Value::Null);
            serde_json::json!({ "at": e.at, "kind": e.kind, "detail": detail })
        })
        .collect();
    let mut view = CallView::new(call, latest);
    view.legs = Some(legs);
    view.recordings = Some(recordings);
    view.person = person;
    view.events = Some(events);
    Ok(Json(view))
}
