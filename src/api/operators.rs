//! `/api/v1/operators`: the operators and their presence (`online`, `away`, `offline`). Admins
//! and managers see and set everyone's; an operator token sees and sets only its own.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::params::json_body;
use super::{ApiError, ApiState, Caller};
use crate::runtime::acd::{OperatorSnapshot, parse_presence};
use crate::runtime::events::Event;
use crate::store::OperatorRecord;

#[derive(Serialize, ToSchema)]
pub struct OperatorView {
    extension: String,
    name: String,
    max_calls: i32,
    /// `online` | `away` | `offline`.
    status: String,
    /// Why: the server's code when it set the status (`missed_rings:3`), or the reason the person
    /// who paused the operator gave (`lunch`); null when none was given.
    status_reason: Option<String>,
    /// When the status last changed.
    status_changed_at: Option<DateTime<Utc>>,
    /// Live: `offline` | `away` | `ringing` | `talking` | `wrap-up` | `available` |
    /// `unregistered` (null when the call layer is not running).
    state: Option<String>,
    /// Live: a softphone is registered.
    registered: Option<bool>,
    /// Live: calls in progress.
    active_calls: Option<u32>,
    /// Live: rings missed in a row (the queue's `missed_rings_to_away` sets the operator away).
    missed_in_a_row: Option<u32>,
}

impl OperatorView {
    /// Adds the call layer's live view. The status stays the stored one: the database is where
    /// every status change lands (the server's own, such as away after missed rings, a moment
    /// after the queues act on it).
    fn with_live(mut self, live: Option<&OperatorSnapshot>) -> Self {
        if let Some(live) = live {
            self.state = Some(live.state.clone());
            self.registered = Some(live.registered);
            self.active_calls = Some(live.active_calls);
            self.missed_in_a_row = Some(live.missed_in_a_row);
        }
        self
    }
}

async fn live(state: &ApiState) -> Vec<OperatorSnapshot> {
    match &state.options().acd {
        Some(acd) => acd.operators().await.unwrap_or_default(),
        None => Vec::new(),
    }
}

impl From<OperatorRecord> for OperatorView {
    fn from(o: OperatorRecord) -> Self {
        OperatorView {
            extension: o.extension,
            name: o.name,
            max_calls: o.max_calls,
            status: o.status,
            status_reason: o.status_reason,
            status_changed_at: o.status_changed_at,
            state: None,
            registered: None,
            active_calls: None,
            missed_in_a_row: None,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusBody {
    /// `online` | `away` | `offline`.
    status: String,
    /// Why (`lunch`, `training`): with `away` or `offline` only, at most 100 characters.
    #[serde(default)]
    reason: Option<String>,
}

/// A person's reason for a pause, shown to managers: short, one line, trimmed.
fn pause_reason(status: &str, reason: Option<String>) -> Result<Option<String>, ApiError> {
    let Some(reason) = reason
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
    else {
        return Ok(None);
    };
    let invalid = |message: &str| Err(ApiError::bad_request("operator.invalid_reason", message));
    if status == "online" {
        return invalid("a reason goes with away or offline");
    }
    if reason.chars().count() > 100 || reason.chars().any(char::is_control) {
        return invalid("a reason is one line of at most 100 characters");
    }
    Ok(Some(reason))
}

#[utoipa::path(get, path = "/api/v1/operators", tag = "operators",
    responses((status = 200, body = Vec<OperatorView>)))]
pub async fn list(
    caller: Caller,
    State(state): State<ApiState>,
) -> Result<Json<Vec<OperatorView>>, ApiError> {
    let operators = state.store().operators().await?;
    let live = live(&state).await;
    Ok(Json(
        operators
            .into_iter()
            .filter(|o| caller.call_scope().is_none_or(|ext| ext == o.extension))
            .map(|o| {
                let snapshot = live.iter().find(|l| l.extension == o.extension);
                OperatorView::from(o).with_live(snapshot)
            })
            .collect(),
    ))
}

#[utoipa::path(put, path = "/api/v1/operators/{ext}/status", tag = "operators",
    request_body = StatusBody,
    params(("ext" = String, Path, description = "extension")),
    responses(
        (status = 200, body = OperatorView),
        (status = 400, description = "request.invalid_body / operator.invalid_status / operator.invalid_reason"),
        (status = 403, description = "an operator setting another's status"),
        (status = 404, description = "operator.not_found"),
    ))]
pub async fn set_status(
    caller: Caller,
    State(state): State<ApiState>,
    Path(ext): Path<String>,
    body: Bytes,
) -> Result<Json<OperatorView>, ApiError> {
    if let Some(own) = caller.call_scope()
        && own != ext
    {
        return Err(ApiError::forbidden(
            "auth.forbidden",
            "operator tokens set only their own status",
        ));
    }
    let b: StatusBody = json_body(&body)?;
    if !["online", "away", "offline"].contains(&b.status.as_str()) {
        return Err(ApiError::bad_request(
            "operator.invalid_status",
            "status is online, away or offline",
        ));
    }
    let reason = pause_reason(&b.status, b.reason)?;
    let store = state.store();
    let at = Utc::now();
    if !store
        .set_operator_status(&ext, &b.status, reason.as_deref(), at)
        .await?
    {
        return Err(ApiError::not_found(
            "operator.not_found",
            "no operator with that extension",
        ));
    }
    let op = store.operator(&ext).await?.ok_or_else(|| {
        ApiError::not_found("operator.not_found", "no operator with that extension")
    })?;
    if let (Some(acd), Some(presence)) = (&state.options().acd, parse_presence(&op.status)) {
        acd.set_status(&op.extension, presence, reason).await;
    }
    state.options().events.publish(Event::OperatorStatus {
        extension: op.extension.clone(),
        status: op.status.clone(),
        at,
    });
    let live = live(&state).await;
    let snapshot = live.iter().find(|l| l.extension == op.extension);
    Ok(Json(OperatorView::from(op).with_live(snapshot)))
}
