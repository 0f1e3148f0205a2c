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
              (status = 422, description = "config.invalid (a TOML error as file:line:column: what, a refused setting by name; nothing changed)")))]
pub async fn reload(
    caller: Caller,
    State(state): State<ApiState>,
) -> Result<Json<ReloadReport>, ApiError> {
    caller.admin("reload the config")?;
    let reloader = state.options().reload.clone().ok_or_else(unavailable)?;
    // Its own task: a client that goes away mid-reload does not cut it between the SIP task's
    // changes and the bookkeeping of what is in force.
    let reloaded = tokio::spawn(async move { reloader.reload().await })
        .await
        .map_err(|_| unavailable())?;
    match reloaded {
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
