//! `POST /api/v1/config/reload` (admins): the config file is read again and what can change
//! live changes (see `runtime::reload`); SIGHUP does the same.

use super::sip_access::unavailable;
use super::{ApiError, ApiState, auth::Caller};
use crate::runtime::reload::{ReloadError, ReloadReport};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

#[utoipa::path(post, path = "/api/v1/config/reload", tag = "config",
    responses((status = 200, body = ReloadReport,
               description = "applied, failed (with why) and restart_needed, each a list of texts"),
              (status = 403, description = "auth.forbidden (admins only)"),
              (status = 409, description = "config.no_file (started without --config)"),
              (status = 422, description = "config.invalid (file:line:column: what is wrong; nothing changed)")))]
pub async fn reload(
    caller: Caller,
    State(state): State<ApiState>,
) -> Result<Json<ReloadReport>, ApiError> {
    caller.admin("reload the config")?;
    let reloader = state.options().reload.as_ref().ok_or_else(unavailable)?;
    match reloader.reload().await {
        Ok(report) => Ok(Json(report)),
        Err(e @ ReloadError::NoFile) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "config.no_file",
            &e.to_string(),
        )),
        Err(ReloadError::Invalid(message)) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "config.invalid",
            &message,
        )),
        Err(ReloadError::Unavailable) => Err(unavailable()),
    }
}
