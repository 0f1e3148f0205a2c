//! The HTTP API (axum): health, Prometheus metrics and the call records, behind bearer tokens with
//! roles. Every error is one JSON shape with a stable dotted code (see [`ApiError`]).

mod error;

pub use error::ApiError;

use crate::config::Role;
use crate::store::{CallFilter, CallRecord, LegRecord, Store};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Clone)]
pub struct ApiState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    metrics: PrometheusHandle,
    node_id: String,
}

impl ApiState {
    pub fn new(store: Store, metrics: PrometheusHandle, node_id: String) -> Self {
        ApiState {
            inner: Arc::new(Inner {
                store,
                metrics,
                node_id,
            }),
        }
    }
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/v1/calls", get(list_calls))
        .route("/api/v1/calls/{id}", get(get_call))
        .fallback(|| async { ApiError::not_found("route.not_found", "no such endpoint") })
        .with_state(state)
}

/// Who is calling the API, from `Authorization: Bearer TOKEN`.
pub struct Caller {
    pub role: Role,
    pub extension: Option<String>,
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                ApiError::unauthorized("auth.missing_token", "send Authorization: Bearer TOKEN")
            })?;
        let token = value
            .strip_prefix("Bearer ")
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized("auth.missing_token", "send Authorization: Bearer TOKEN")
            })?;
        let record = state
            .inner
            .store
            .api_token(&crate::runtime::token_hash(token))
            .await?
            .ok_or_else(|| {
                ApiError::unauthorized("auth.invalid_token", "unknown or revoked token")
            })?;
        let role = Role::parse(&record.role).ok_or_else(|| {
            ApiError::unauthorized("auth.invalid_token", "token has an unknown role")
        })?;
        Ok(Caller {
            role,
            extension: record.extension,
        })
    }
}

impl Caller {
    /// Call records are for admins and managers; an operator's own calls come with the queues.
    fn may_read_calls(&self) -> Result<(), ApiError> {
        match self.role {
            Role::Admin | Role::Manager => Ok(()),
            Role::Operator => Err(ApiError::forbidden(
                "auth.forbidden",
                "operator tokens cannot read the call list",
            )),
        }
    }
}

async fn healthz(State(state): State<ApiState>) -> Response {
    let body = serde_json::json!({ "status": "ok", "node": state.inner.node_id });
    (StatusCode::OK, Json(body)).into_response()
}

async fn metrics(State(state): State<ApiState>) -> Response {
    let mut response = state.inner.metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

/// A call as the API shows it (INTERFACE.md); fields of later subsystems are null until they exist.
#[derive(Serialize)]
struct CallView {
    id: String,
    direction: String,
    caller: String,
    caller_name: Option<String>,
    callee: String,
    started_at: DateTime<Utc>,
    answered_at: Option<DateTime<Utc>>,
    ended_at: Option<DateTime<Utc>>,
    duration_ms: Option<i64>,
    disposition: Option<String>,
    hangup_by: Option<String>,
    node_id: String,
    flow_path: Option<Vec<String>>,
    queue: Option<String>,
    operator: Option<String>,
    rating: Option<u8>,
    recording_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    legs: Option<Vec<LegRecord>>,
    /// What happened during the call (digits, recordings, media alerts), in order.
    #[serde(skip_serializing_if = "Option::is_none")]
    events: Option<Vec<serde_json::Value>>,
}

impl CallView {
    fn new(c: CallRecord, legs: Option<Vec<LegRecord>>) -> Self {
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
            flow_path: None,
            queue: None,
            operator: None,
            rating: None,
            recording_id: None,
            legs,
            events: None,
        }
    }
}

fn parse_time(
    params: &HashMap<String, String>,
    key: &str,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    params
        .get(key)
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    ApiError::bad_request(
                        "request.invalid_query",
                        &format!("{key} must be an RFC 3339 time"),
                    )
                })
        })
        .transpose()
}

async fn list_calls(
    caller: Caller,
    State(state): State<ApiState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    caller.may_read_calls()?;
    const KNOWN: &[&str] = &[
        "since", "until", "number", "limit", "before", "queue", "operator",
    ];
    if let Some(unknown) = params.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(ApiError::bad_request(
            "request.invalid_query",
            &format!("unknown query parameter {unknown:?}"),
        ));
    }
    let limit = params
        .get("limit")
        .map(|v| {
            v.parse::<i64>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| {
                    ApiError::bad_request("request.invalid_query", "limit must be 1..1000")
                })
        })
        .transpose()?;
    let filter = CallFilter {
        since: parse_time(&params, "since")?,
        until: parse_time(&params, "until")?,
        number: params.get("number").cloned(),
        limit,
        before_id: params.get("before").cloned(),
    };
    let calls = state.inner.store.calls(&filter).await?;
    let page_full = calls.len() as i64 == filter.limit.unwrap_or(100);
    let next_before = calls.last().filter(|_| page_full).map(|c| c.id.clone());
    let calls: Vec<CallView> = calls.into_iter().map(|c| CallView::new(c, None)).collect();
    Ok(Json(serde_json::json!({ "calls": calls, "next_before": next_before })).into_response())
}

async fn get_call(
    caller: Caller,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.may_read_calls()?;
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(ApiError::not_found(
            "call.not_found",
            "no call with that id",
        ));
    }
    let (call, legs) = state
        .inner
        .store
        .call(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("call.not_found", "no call with that id"))?;
    let events = state
        .inner
        .store
        .call_events(&id)
        .await?
        .into_iter()
        .map(|e| {
            let detail = serde_json::from_str(&e.detail).unwrap_or(serde_json::Value::Null);
            serde_json::json!({ "at": e.at, "kind": e.kind, "detail": detail })
        })
        .collect();
    let mut view = CallView::new(call, Some(legs));
    view.events = Some(events);
    Ok(Json(view).into_response())
}
