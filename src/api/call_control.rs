//! `/api/v1/calls/{id}/recording/pause|resume`: the operator on a call (or a manager) keeps a
//! stretch out of its recording, for card numbers and other details that must not be stored. The
//! paused stretch is silence in the file, named in its comment, and on the call's events
//! (`recording_paused` / `recording_resumed` with `at_ms` and `recording_ms`). Asking again for the
//! state the recording is in changes nothing and answers the same.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;

use super::params::is_id;
use super::sip_access::unavailable;
use super::{ApiError, ApiState, Caller};
use crate::runtime::call_task::RecordingState;
use crate::runtime::calls::RecordingControl;
use crate::runtime::sip_task::SipCommand;

#[derive(Serialize, ToSchema)]
pub struct RecordingStateView {
    /// `recording` or `paused`.
    #[schema(value_type = String)]
    recording: RecordingState,
}

#[utoipa::path(post, path = "/api/v1/calls/{id}/recording/pause", tag = "calls",
    responses((status = 200, body = RecordingStateView),
              (status = 404, description = "call.not_live: no such call up (an operator: not theirs)"),
              (status = 409, description = "call.not_recorded")))]
pub async fn pause(
    caller: Caller,
    state: State<ApiState>,
    id: Path<String>,
) -> Result<Json<RecordingStateView>, ApiError> {
    set_paused(caller, state, id, true).await
}

#[utoipa::path(post, path = "/api/v1/calls/{id}/recording/resume", tag = "calls",
    responses((status = 200, body = RecordingStateView),
              (status = 404, description = "call.not_live"),
              (status = 409, description = "call.not_recorded")))]
pub async fn resume(
    caller: Caller,
    state: State<ApiState>,
    id: Path<String>,
) -> Result<Json<RecordingStateView>, ApiError> {
    set_paused(caller, state, id, false).await
}

async fn set_paused(
    caller: Caller,
    State(state): State<ApiState>,
    Path(id): Path<String>,
    paused: bool,
) -> Result<Json<RecordingStateView>, ApiError> {
    let not_live = || ApiError::not_found("call.not_live", "no call with this id is up");
    if !is_id(&id) {
        return Err(not_live());
    }
    let sip = state.options().sip.as_ref().ok_or_else(unavailable)?;
    let operator = caller.call_scope().map(str::to_string);
    let answer = sip
        .ask(|reply| {
            SipCommand::Recording(RecordingControl {
                call_id: id,
                paused,
                operator,
                reply,
            })
        })
        .await
        .ok_or_else(unavailable)?;
    match answer {
        None => Err(not_live()),
        Some(RecordingState::NotRecording) => Err(ApiError::conflict(
            "call.not_recorded",
            "this call is not being recorded",
        )),
        Some(recording) => Ok(Json(RecordingStateView { recording })),
    }
}
