//! `/api/v1/broadcasts` (voice campaigns), for admins and managers: the list, one campaign with
//! its progress and ETA, its recipients, and start/pause/resume/cancel. Creating one (JSON or a
//! multipart upload) is [`creation`]; the message's audio conversion is in `audio`.

mod audio;
pub mod creation;

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::Utc;
use serde::Serialize;
use utoipa::ToSchema;

use super::params::{Params, is_id};
use super::{ApiError, ApiState, Caller};
use crate::broadcast::StoredSettings;
use crate::runtime::broadcasts::{Control, ControlError};
use crate::store::{BroadcastProgress, BroadcastRecord, RecipientRecord};

/// A campaign with its counts.
#[derive(Serialize, ToSchema)]
pub struct BroadcastView {
    #[serde(flatten)]
    #[schema(value_type = Object)]
    record: BroadcastRecord,
    #[schema(value_type = Object)]
    settings: Option<StoredSettings>,
    #[schema(value_type = Object)]
    progress: BroadcastProgress,
    /// Seconds until every recipient is done at the pace of the last five minutes.
    eta_secs: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct BroadcastPage {
    #[schema(value_type = Vec<Object>)]
    items: Vec<BroadcastView>,
    next_before: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct RecipientPage {
    #[schema(value_type = Vec<Object>)]
    items: Vec<RecipientRecord>,
    next_after: Option<i64>,
}

fn not_found() -> ApiError {
    ApiError::not_found("broadcast.not_found", "no broadcast with that id")
}

fn invalid(message: &str) -> ApiError {
    ApiError::bad_request("broadcast.invalid", message)
}

async fn find(state: &ApiState, id: &str) -> Result<BroadcastRecord, ApiError> {
    if !is_id(id) {
        return Err(not_found());
    }
    state.store().broadcast(id).await?.ok_or_else(not_found)
}

async fn view(state: &ApiState, record: BroadcastRecord) -> Result<BroadcastView, ApiError> {
    let now = Utc::now();
    let progress = state.store().broadcast_progress(&record.id, now).await?;
    let remaining = progress.pending + progress.calling;
    let eta_secs = match (record.state.as_str(), progress.recent_attempts) {
        ("running", recent) if recent > 0 && remaining > 0 => {
            Some((remaining as f64 * 300.0 / recent as f64).ceil() as u64)
        }
        _ => None,
    };
    let settings = serde_json::from_str(&record.settings).ok();
    Ok(BroadcastView {
        record,
        settings,
        progress,
        eta_secs,
    })
}

#[utoipa::path(get, path = "/api/v1/broadcasts", tag = "broadcasts",
    params(("state" = Option<String>, Query, description = "draft, running, paused, cancelled or completed"),
           ("limit" = Option<i64>, Query), ("before" = Option<String>, Query)),
    responses((status = 200, body = BroadcastPage)))]
pub async fn list(
    caller: Caller,
    State(state): State<ApiState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<BroadcastPage>, ApiError> {
    caller.staff("read broadcasts")?;
    let p = Params::new(query, &["state", "limit", "before"])?;
    let limit = p.limit()?.unwrap_or(50);
    let records = state
        .store()
        .broadcasts(
            p.text("state").as_deref(),
            p.cursor("before")?.as_deref(),
            limit,
        )
        .await?;
    let full = records.len() as i64 == limit;
    let next_before = records.last().filter(|_| full).map(|r| r.id.clone());
    let mut items = Vec::with_capacity(records.len());
    for record in records {
        items.push(view(&state, record).await?);
    }
    Ok(Json(BroadcastPage { items, next_before }))
}

#[utoipa::path(get, path = "/api/v1/broadcasts/{id}", tag = "broadcasts",
    responses((status = 200, body = BroadcastView), (status = 404, description = "No such broadcast")))]
pub async fn get_one(
    caller: Caller,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<BroadcastView>, ApiError> {
    caller.staff("read broadcasts")?;
    let record = find(&state, &id).await?;
    Ok(Json(view(&state, record).await?))
}

#[utoipa::path(get, path = "/api/v1/broadcasts/{id}/recipients", tag = "broadcasts",
    params(("state" = Option<String>, Query, description = "pending, calling or done"),
           ("outcome" = Option<String>, Query), ("limit" = Option<i64>, Query),
           ("after" = Option<i64>, Query, description = "next_after of the previous page")),
    responses((status = 200, body = RecipientPage)))]
pub async fn recipients_of(
    caller: Caller,
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<RecipientPage>, ApiError> {
    caller.staff("read broadcasts")?;
    find(&state, &id).await?;
    let p = Params::new(query, &["state", "outcome", "limit", "after"])?;
    let limit = p.limit()?.unwrap_or(100);
    let after = match p.text("after") {
        Some(a) => Some(a.parse::<i64>().map_err(|_| {
            ApiError::bad_request("request.invalid_query", "after must be a number")
        })?),
        None => None,
    };
    let items = state
        .store()
        .broadcast_recipients(
            &id,
            p.text("state").as_deref(),
            p.text("outcome").as_deref(),
            after,
            limit,
        )
        .await?;
    let full = items.len() as i64 == limit;
    // Pages follow the list's order (the row position), not the row id.
    let next_after = items.last().filter(|_| full).map(|r| r.position);
    Ok(Json(RecipientPage { items, next_after }))
}

#[utoipa::path(post, path = "/api/v1/broadcasts/{id}/{action}", tag = "broadcasts",
    params(("action" = String, Path, description = "start, pause, resume or cancel")),
    responses((status = 200, body = BroadcastView), (status = 409, description = "Not in a state for that")))]
pub async fn control(
    caller: Caller,
    State(state): State<ApiState>,
    Path((id, action)): Path<(String, String)>,
) -> Result<Json<BroadcastView>, ApiError> {
    caller.staff("control broadcasts")?;
    let control = match action.as_str() {
        "start" => Control::Start,
        "pause" => Control::Pause,
        "resume" => Control::Resume,
        "cancel" => Control::Cancel,
        _ => return Err(ApiError::not_found("route.not_found", "no such endpoint")),
    };
    find(&state, &id).await?;
    let record = apply(&state, &id, control).await?;
    Ok(Json(view(&state, record).await?))
}

async fn apply(state: &ApiState, id: &str, control: Control) -> Result<BroadcastRecord, ApiError> {
    let handle = state.options().broadcasts.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "broadcast.unavailable",
            "broadcasts are not running on this node",
        )
    })?;
    handle.control(id, control).await.map_err(|e| match e {
        ControlError::NotFound => not_found(),
        ControlError::WrongState { .. } => {
            ApiError::conflict("broadcast.wrong_state", &e.to_string())
        }
        ControlError::Invalid(_) => invalid(&e.to_string()),
        ControlError::Store(e) => e.into(),
        ControlError::Stopped => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "broadcast.unavailable",
            "the node is shutting down",
        ),
    })
}
