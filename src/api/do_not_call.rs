//! `/api/v1/do-not-call`: the numbers no campaign calls (opt-outs land here on their own);
//! admins and managers read and add, only admins remove.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::params::{Params, json_body};
use super::{ApiError, ApiState, Caller};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DoNotCallBody {
    number: String,
    reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct DoNotCallPage {
    #[schema(value_type = Vec<Object>)]
    items: Vec<crate::store::DoNotCallRecord>,
    next_after: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/do-not-call", tag = "broadcasts",
    params(("after" = Option<String>, Query, description = "next_after of the previous page"),
           ("limit" = Option<i64>, Query)),
    responses((status = 200, body = DoNotCallPage)))]
pub async fn list(
    caller: Caller,
    State(state): State<ApiState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<DoNotCallPage>, ApiError> {
    caller.staff("read the do-not-call list")?;
    let p = Params::new(query, &["after", "limit"])?;
    let limit = p.limit()?.unwrap_or(100);
    let items = state
        .store()
        .do_not_call_list(p.text("after").as_deref(), limit)
        .await?;
    let full = items.len() as i64 == limit;
    let next_after = items.last().filter(|_| full).map(|r| r.e164.clone());
    Ok(Json(DoNotCallPage { items, next_after }))
}

fn normalized(state: &ApiState, number: &str) -> Result<String, ApiError> {
    crate::crm::normalize(number, state.options().country)
        .map_err(|e| ApiError::bad_request("crm.invalid_phone", &e.to_string()))
}

#[utoipa::path(post, path = "/api/v1/do-not-call", tag = "broadcasts", request_body = DoNotCallBody,
    responses((status = 201, description = "Added"), (status = 200, description = "Already listed")))]
pub async fn add(
    caller: Caller,
    State(state): State<ApiState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.staff("change the do-not-call list")?;
    let b: DoNotCallBody = json_body(&body)?;
    let e164 = normalized(&state, &b.number)?;
    let reason = b.reason.unwrap_or_else(|| "manual".into());
    if reason.chars().count() > 200 || reason.chars().any(char::is_control) {
        return Err(ApiError::invalid_body("reason: at most 200 characters"));
    }
    let added = state
        .store()
        .add_do_not_call(&e164, &reason, Utc::now())
        .await?;
    let status = if added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(serde_json::json!({ "e164": e164, "added": added })),
    )
        .into_response())
}

#[utoipa::path(delete, path = "/api/v1/do-not-call/{number}", tag = "broadcasts",
    responses((status = 204, description = "Removed"), (status = 404, description = "Not listed")))]
pub async fn remove(
    caller: Caller,
    State(state): State<ApiState>,
    Path(number): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.admin("remove numbers from the do-not-call list")?;
    let e164 = normalized(&state, &number)?;
    if state.store().remove_do_not_call(&e164).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(
            "do_not_call.not_found",
            "the number is not on the list",
        ))
    }
}
