//! `/api/v1/queues`: the live state of every queue (waiting callers, members and their derived
//! states). The SIP task owns that state; the API asks it over its command channel.

use axum::Json;
use axum::extract::{Path, State};
use tokio::sync::oneshot;

use super::sip_access::SipAccess;
use super::{ApiError, ApiState, Caller};
use crate::queue::Presence;
use crate::runtime::acd::{OperatorSnapshot, QueueSnapshot};
use crate::runtime::calls::AcdRequest;
use crate::runtime::sip_task::SipCommand;

/// A way to the ACD inside the SIP task.
#[derive(Clone, Debug)]
pub struct AcdAccess {
    sip: SipAccess,
}

impl AcdAccess {
    pub fn new(sip: SipAccess) -> Self {
        AcdAccess { sip }
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> AcdRequest) -> Option<T> {
        self.sip.ask(|reply| SipCommand::Acd(make(reply))).await
    }

    pub async fn queues(&self) -> Option<Vec<QueueSnapshot>> {
        self.ask(AcdRequest::Queues).await
    }

    pub async fn operators(&self) -> Option<Vec<OperatorSnapshot>> {
        self.ask(AcdRequest::Operators).await
    }

    /// Tells the queues about a status stored by the API.
    pub async fn set_status(&self, ext: &str, status: Presence) -> Option<bool> {
        self.ask(|reply| AcdRequest::SetStatus {
            ext: ext.to_string(),
            status,
            reply,
        })
        .await
    }
}

fn unavailable() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "queues.unavailable",
        "the call layer is not running",
    )
}

async fn snapshots(state: &ApiState) -> Result<Vec<QueueSnapshot>, ApiError> {
    let acd = state.options().acd.as_ref().ok_or_else(unavailable)?;
    acd.queues().await.ok_or_else(unavailable)
}

#[utoipa::path(get, path = "/api/v1/queues", tag = "queues",
    responses((status = 200, body = Vec<QueueSnapshot>)))]
pub async fn list(
    caller: Caller,
    State(state): State<ApiState>,
) -> Result<Json<Vec<QueueSnapshot>>, ApiError> {
    caller.staff("read queues")?;
    Ok(Json(snapshots(&state).await?))
}

#[utoipa::path(get, path = "/api/v1/queues/{name}", tag = "queues",
    params(("name" = String, Path, description = "queue name")),
    responses((status = 200, body = QueueSnapshot), (status = 404, description = "queue.not_found")))]
pub async fn get_one(
    caller: Caller,
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<QueueSnapshot>, ApiError> {
    caller.staff("read queues")?;
    snapshots(&state)
        .await?
        .into_iter()
        .find(|q| q.name == name)
        .map(Json)
        .ok_or_else(|| ApiError::not_found("queue.not_found", "no queue with that name"))
}
