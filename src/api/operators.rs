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
use crate::runtime::events::Event;
use crate::store::OperatorRecord;

#[derive(Serialize, ToSchema)]
pub struct OperatorView {
    extension: String,
    name: String,
    max_calls: i32,
    /// `online` | `away` | `offline`.
    status: String,
    /// Why, when the server set the status (`missed_rings:3`); null when a person set it.
    status_reason: Option<String>,
    /// When the status last changed.
    status_changed_at: Option<DateTime<Utc>>,
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
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusBody {
    /// `online` | `away` | `offline`.
    status: String,
}

#[utoipa::path(get, path = "/api/v1/operators", tag = "operators",
    responses((status = 200, body = Vec<OperatorView>)))]
pub async fn list(
    caller: Caller,
    State(state): State<ApiState>,
) -> Result<Json<Vec<OperatorView>>, ApiError> {
    let operators = state.store().operators().await?;
    Ok(Json(
        operators
            .into_iter()
            .filter(|o| caller.call_scope().is_none_or(|ext| ext == o.extension))
            .map(OperatorView::from)
            .collect(),
    ))
}

#[utoipa::path(put, path = "/api/v1/operators/{ext}/status", tag = "operators",
    request_body = StatusBody,
    params(("ext" = String, Path, description = "extension")),
    responses(
        (status = 200, body = OperatorView),
        (status = 400, description = "request.invalid_body / operator.invalid_status"),
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
    let store = state.store();
    let at = Utc::now();
    if !store.set_operator_status(&ext, &b.status, None, at).await? {
        return Err(ApiError::not_found(
            "operator.not_found",
            "no operator with that extension",
        ));
    }
    let op = store.operator(&ext).await?.ok_or_else(|| {
        ApiError::not_found("operator.not_found", "no operator with that extension")
    })?;
    state.options().events.publish(Event::OperatorStatus {
        extension: op.extension.clone(),
        status: op.status.clone(),
        at,
    });
    Ok(Json(OperatorView::from(op)))
}
