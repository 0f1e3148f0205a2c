//! Live call control. `/api/v1/calls/{id}/supervise`: a supervisor listens, whispers or barges in
//! (see `runtime::calls::supervise`). `/api/v1/calls/{id}/transfer`: a blind transfer of the caller to another
//! operator, a queue or an external number (see `runtime::calls::transfer`).
//!
//! `/api/v1/calls/{id}/recording/pause|resume`: the operator on a call (or a manager) keeps a
//! stretch out of its recording, for card numbers and other details that must not be stored. The
//! paused stretch is silence in the file, named in its comment, and on the call's events
//! (`recording_paused` / `recording_resumed` with `at_ms` and `recording_ms`). Asking again for the
//! state the recording is in changes nothing and answers the same.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::params::{is_id, json_body};
use super::sip_access::unavailable;
use super::{ApiError, ApiState, Caller};
use crate::runtime::call_task::RecordingState;
use crate::runtime::call_task::SuperviseMode;
use crate::runtime::calls::{
    RecordingControl, SuperviseControl, SuperviseError, SuperviseOutcome, TransferAction,
    TransferControl, TransferError,
};
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

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferBody {
    /// An operator's extension, a queue's name, or the dialplan's external prefix + a number
    /// (looked up in that order).
    to: String,
    /// Consult first: the caller waits on hold while the operator talks with the target, then
    /// `…/transfer/complete` or `…/transfer/cancel`. Not to a queue.
    #[serde(default)]
    attended: bool,
}

#[derive(Serialize, ToSchema)]
pub struct TransferView {
    call_id: String,
    /// `operator`, `queue` or `external`.
    kind: &'static str,
    /// The extension, the queue, or the number as it goes to the trunk.
    to: String,
}

/// The longest `to` taken (an extension, a queue name or a dialled number).
const MAX_TARGET_LEN: usize = 64;

#[utoipa::path(post, path = "/api/v1/calls/{id}/transfer", tag = "calls",
    request_body = TransferBody,
    responses((status = 202, body = TransferView, description = "the caller is on the way to the target (attended: the target rings for the operator); the call's events say how it went"),
              (status = 400, description = "request.invalid_body / transfer.invalid_target"),
              (status = 403, description = "transfer.external_not_allowed"),
              (status = 404, description = "call.not_live: no such call up (an operator: not theirs) / transfer.unknown_target"),
              (status = 409, description = "call.not_bridged / transfer.in_progress / transfer.same_operator / transfer.not_from_operator / transfer.attended_to_queue / transfer.attended_to_flow / transfer.target_unreachable"),
              (status = 503, description = "transfer.trunk_busy")))]
pub async fn transfer(
    caller: Caller,
    state: State<ApiState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<TransferView>), ApiError> {
    let b: TransferBody = json_body(&body)?;
    let to = b.to.trim().to_string();
    if to.is_empty()
        || to.len() > MAX_TARGET_LEN
        || !to
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+*#-_.".contains(c))
    {
        return Err(ApiError::bad_request(
            "transfer.invalid_target",
            "to is an extension, a queue name or a number (letters, digits, + * # - _ .; at most 64)",
        ));
    }
    let action = match b.attended {
        true => TransferAction::Consult { to },
        false => TransferAction::Blind { to },
    };
    ask_transfer(caller, state, id, action).await
}

#[utoipa::path(post, path = "/api/v1/calls/{id}/transfer/complete", tag = "calls",
    responses((status = 202, body = TransferView, description = "the consulted target has the caller; the operator's leg ends"),
              (status = 404, description = "call.not_live"),
              (status = 409, description = "transfer.no_consultation / transfer.consult_not_answered")))]
pub async fn complete(
    caller: Caller,
    state: State<ApiState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<TransferView>), ApiError> {
    ask_transfer(caller, state, id, TransferAction::Complete).await
}

#[utoipa::path(post, path = "/api/v1/calls/{id}/transfer/cancel", tag = "calls",
    responses((status = 202, body = TransferView, description = "the target's leg ends; the caller is back with the operator"),
              (status = 404, description = "call.not_live"),
              (status = 409, description = "transfer.no_consultation")))]
pub async fn cancel(
    caller: Caller,
    state: State<ApiState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<TransferView>), ApiError> {
    ask_transfer(caller, state, id, TransferAction::Cancel).await
}

/// Asks the SIP task for `action` on call `id`, as the operator bridged to it or a manager.
async fn ask_transfer(
    caller: Caller,
    State(state): State<ApiState>,
    id: String,
    action: TransferAction,
) -> Result<(StatusCode, Json<TransferView>), ApiError> {
    if !is_id(&id) {
        return Err(transfer_error(TransferError::NotLive));
    }
    let sip = state.options().sip.as_ref().ok_or_else(unavailable)?;
    let operator = caller.call_scope().map(str::to_string);
    let answer = sip
        .ask(|reply| {
            SipCommand::Transfer(TransferControl {
                call_id: id.clone(),
                action,
                operator,
                reply,
            })
        })
        .await
        .ok_or_else(unavailable)?;
    match answer {
        Ok(target) => Ok((
            StatusCode::ACCEPTED,
            Json(TransferView {
                call_id: id,
                kind: target.kind(),
                to: target.name().to_string(),
            }),
        )),
        Err(e) => Err(transfer_error(e)),
    }
}

fn transfer_error(e: TransferError) -> ApiError {
    let message = e.to_string();
    let status = match e {
        TransferError::NotLive | TransferError::UnknownTarget => StatusCode::NOT_FOUND,
        TransferError::ExternalNotAllowed => StatusCode::FORBIDDEN,
        TransferError::TrunkBusy => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::CONFLICT,
    };
    ApiError::new(status, e.code(), &message)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuperviseBody {
    /// `listen` (hears both, heard by nobody), `whisper` (heard by the operator only) or `barge`
    /// (heard by both).
    #[schema(value_type = String)]
    mode: SuperviseMode,
    /// The supervisor's extension (`[[operators]] supervisor = true`); an operator's token may
    /// leave it out (itself).
    #[serde(default)]
    supervisor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SuperviseView {
    call_id: String,
    supervisor: String,
    #[schema(value_type = String)]
    mode: SuperviseMode,
    /// `ringing` (the supervisor's phone rings) or `changed` (the mode of a supervisor already
    /// on the call).
    state: &'static str,
}

#[utoipa::path(post, path = "/api/v1/calls/{id}/supervise", tag = "calls",
    request_body = SuperviseBody,
    responses((status = 202, body = SuperviseView),
              (status = 400, description = "request.invalid_body / supervise.supervisor_required"),
              (status = 403, description = "supervise.not_supervisor / supervise.not_yourself"),
              (status = 404, description = "call.not_live"),
              (status = 409, description = "call.not_bridged / supervise.own_call / supervise.busy / supervise.supervisor_busy / supervise.transfer_in_progress / supervise.unreachable")))]
pub async fn supervise(
    caller: Caller,
    State(state): State<ApiState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<SuperviseView>), ApiError> {
    let b: SuperviseBody = json_body(&body)?;
    let operator = caller.call_scope().map(str::to_string);
    let supervisor = b
        .supervisor
        .map(|s| s.trim().to_string())
        .or_else(|| operator.clone())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(
                "supervise.supervisor_required",
                "name the supervisor's extension",
            )
        })?;
    let error = |e: SuperviseError| {
        let status = match e {
            SuperviseError::NotLive => StatusCode::NOT_FOUND,
            SuperviseError::NotSupervisor | SuperviseError::NotYourself => StatusCode::FORBIDDEN,
            _ => StatusCode::CONFLICT,
        };
        ApiError::new(status, e.code(), &e.to_string())
    };
    if !is_id(&id) {
        return Err(error(SuperviseError::NotLive));
    }
    let sip = state.options().sip.as_ref().ok_or_else(unavailable)?;
    let answer = sip
        .ask(|reply| {
            SipCommand::Supervise(SuperviseControl {
                call_id: id.clone(),
                supervisor: supervisor.clone(),
                mode: b.mode,
                operator,
                reply,
            })
        })
        .await
        .ok_or_else(unavailable)?;
    let outcome = answer.map_err(error)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(SuperviseView {
            call_id: id,
            supervisor,
            mode: b.mode,
            state: match outcome {
                SuperviseOutcome::Ringing => "ringing",
                SuperviseOutcome::Changed => "changed",
            },
        }),
    ))
}
