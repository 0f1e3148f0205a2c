//! `/api/v1/queues`: the live state of every queue (waiting callers, members and their derived
//! states), and its members changed live by admins (until the next start: the config file's
//! `members` are what a start uses). The SIP task owns that state; the API asks it over its
//! command channel.

use axum::Json;
use axum::extract::{Path, State};
use tokio::sync::oneshot;

use super::sip_access::SipAccess;
use super::{ApiError, ApiState, Caller};
use crate::queue::Presence;
use crate::runtime::acd::{MembersEdit, MembersError, OperatorSnapshot, QueueSnapshot};
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
    pub async fn set_status(
        &self,
        ext: &str,
        status: Presence,
        reason: Option<String>,
    ) -> Option<bool> {
        self.ask(|reply| AcdRequest::SetStatus {
            ext: ext.to_string(),
            status,
            reason,
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

/// `PUT /api/v1/queues/{name}/members`.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MembersBody {
    /// Extensions in ring order (`in_order` rings them so).
    members: Vec<String>,
}

/// `POST /api/v1/queues/{name}/members`.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberBody {
    extension: String,
}

#[utoipa::path(put, path = "/api/v1/queues/{name}/members", tag = "queues",
    request_body = MembersBody,
    responses((status = 200, body = QueueSnapshot),
              (status = 404, description = "queue.not_found"),
              (status = 422, description = "queue.unknown_operator / queue.invalid_members")))]
pub async fn put_members(
    caller: Caller,
    state: State<ApiState>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<QueueSnapshot>, ApiError> {
    let b: MembersBody = super::params::json_body(&body)?;
    edit(caller, state, name, MembersEdit::Replace(b.members)).await
}

#[utoipa::path(post, path = "/api/v1/queues/{name}/members", tag = "queues",
    request_body = MemberBody,
    responses((status = 200, body = QueueSnapshot),
              (status = 404, description = "queue.not_found"),
              (status = 409, description = "queue.already_member"),
              (status = 422, description = "queue.unknown_operator")))]
pub async fn add_member(
    caller: Caller,
    state: State<ApiState>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<QueueSnapshot>, ApiError> {
    let b: MemberBody = super::params::json_body(&body)?;
    edit(caller, state, name, MembersEdit::Add(b.extension)).await
}

#[utoipa::path(delete, path = "/api/v1/queues/{name}/members/{ext}", tag = "queues",
    responses((status = 200, body = QueueSnapshot),
              (status = 404, description = "queue.not_found / queue.not_member"),
              (status = 422, description = "queue.invalid_members (the last member)")))]
pub async fn remove_member(
    caller: Caller,
    state: State<ApiState>,
    Path((name, ext)): Path<(String, String)>,
) -> Result<Json<QueueSnapshot>, ApiError> {
    edit(caller, state, name, MembersEdit::Remove(ext)).await
}

/// Admins change members; the answer is the queue as it is after the change.
async fn edit(
    caller: Caller,
    State(state): State<ApiState>,
    name: String,
    edit: MembersEdit,
) -> Result<Json<QueueSnapshot>, ApiError> {
    caller.admin("change queue members")?;
    let acd = state.options().acd.as_ref().ok_or_else(unavailable)?;
    let result = acd
        .ask(|reply| AcdRequest::EditMembers {
            queue: name.clone(),
            edit,
            reply,
        })
        .await
        .ok_or_else(unavailable)?;
    let unprocessable = |code, message: &str| {
        ApiError::new(axum::http::StatusCode::UNPROCESSABLE_ENTITY, code, message)
    };
    match result {
        Ok(_) => {}
        Err(e @ MembersError::NoSuchQueue) => {
            return Err(ApiError::not_found("queue.not_found", &e.to_string()));
        }
        Err(e @ MembersError::NotMember(_)) => {
            return Err(ApiError::not_found("queue.not_member", &e.to_string()));
        }
        Err(e @ MembersError::AlreadyMember(_)) => {
            return Err(ApiError::conflict("queue.already_member", &e.to_string()));
        }
        Err(e @ MembersError::UnknownOperator(_)) => {
            return Err(unprocessable("queue.unknown_operator", &e.to_string()));
        }
        Err(e @ MembersError::Invalid(_)) => {
            return Err(unprocessable("queue.invalid_members", &e.to_string()));
        }
    }
    snapshots(&state)
        .await?
        .into_iter()
        .find(|q| q.name == name)
        .map(Json)
        .ok_or_else(|| ApiError::not_found("queue.not_found", "no queue with that name"))
}
