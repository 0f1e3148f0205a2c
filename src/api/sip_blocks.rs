//! `/api/v1/sip/blocks` (admins): the addresses and (address, user) pairs blocked for failed
//! digest attempts, with when each block ends, and lifting them (an office locked out by a
//! misconfigured phone should not wait out the cool-down). Lives in the SIP task, so it is
//! asked over its command channel; the gauges are `openline_sip_auth_blocks{kind}`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::sip_access::SipAccess;
use super::sip_access::unavailable;
use super::{ApiError, ApiState, Caller};
use crate::runtime::sip_task::{AuthBlockView, SipCommand};

#[derive(Serialize, ToSchema)]
pub struct BlockList {
    /// `ip`, `user` (null: the whole address), `until`.
    #[schema(value_type = Vec<Object>)]
    items: Vec<AuthBlockView>,
}

fn access(state: &ApiState) -> Result<&SipAccess, ApiError> {
    state.options().sip.as_ref().ok_or_else(unavailable)
}

#[utoipa::path(get, path = "/api/v1/sip/blocks", tag = "admin",
    responses((status = 200, body = BlockList)))]
pub async fn list(
    caller: Caller,
    State(state): State<ApiState>,
) -> Result<Json<BlockList>, ApiError> {
    caller.admin("read the SIP block list")?;
    let items = access(&state)?
        .ask(SipCommand::AuthBlocks)
        .await
        .ok_or_else(unavailable)?;
    Ok(Json(BlockList { items }))
}

#[utoipa::path(delete, path = "/api/v1/sip/blocks/{ip}", tag = "admin",
    responses((status = 204, description = "Lifted"), (status = 404, description = "Not blocked"),
              (status = 400, description = "Not an IP address")))]
pub async fn lift(
    caller: Caller,
    State(state): State<ApiState>,
    Path(ip): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.admin("lift SIP blocks")?;
    let ip: std::net::IpAddr = ip
        .parse()
        .map_err(|_| ApiError::bad_request("sip.invalid_ip", "an IPv4 or IPv6 address"))?;
    let lifted = access(&state)?
        .ask(|reply| SipCommand::LiftBlocks(ip, reply))
        .await
        .ok_or_else(unavailable)?;
    if lifted == 0 {
        return Err(ApiError::not_found(
            "sip.not_blocked",
            "no block or failure count for this address",
        ));
    }
    Ok(StatusCode::NO_CONTENT)
}
