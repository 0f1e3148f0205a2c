//! `/api/v1/tokens`: API tokens, for admins only. A new token is shown once, in the answer to
//! the POST that creates it (`Cache-Control: no-store`); the server keeps only its SHA-256, so a
//! lost token is revoked and a new one created. Revoking ends the token's browser sessions and
//! open event streams at once (they re-check their credential every few seconds).
//!
//! Tokens from the config file are listed (label `config`) but not revoked here: the file would
//! bring them back at the next start, so the answer says to take them out of the file. The last
//! admin token cannot be revoked either (nobody could manage tokens until a restart).
//!
//! The POST takes no `Idempotency-Key`: a replayed answer would have to store the token itself.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::params::json_body;
use super::{ApiError, ApiState, Caller};
use crate::config::Role;
use crate::runtime::token_hash;
use crate::store::{ApiTokenInfo, Revoked};

/// The label of tokens that come from the config file (reserved).
const CONFIG_LABEL: &str = "config";
const MAX_LABEL_CHARS: usize = 100;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTokenBody {
    /// `admin` | `manager` | `operator`.
    role: String,
    /// The operator's extension (operator tokens only).
    extension: Option<String>,
    /// What the token is for ("CRM sync", "Olena's laptop"): 1–100 characters.
    label: String,
}

#[derive(Serialize, ToSchema)]
pub struct TokenView {
    id: i64,
    role: String,
    extension: Option<String>,
    label: String,
    created_at: chrono::DateTime<Utc>,
    /// True for tokens from the config file (revoked by taking them out of it).
    from_config: bool,
}

impl From<ApiTokenInfo> for TokenView {
    fn from(t: ApiTokenInfo) -> Self {
        TokenView {
            from_config: t.label == CONFIG_LABEL,
            id: t.id,
            role: t.role,
            extension: t.extension,
            label: t.label,
            created_at: t.created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    view: TokenView,
    /// The bearer token. Shown only in this answer.
    token: String,
}

#[derive(Serialize, ToSchema)]
pub struct TokenList {
    items: Vec<TokenView>,
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "admin",
    responses((status = 200, body = TokenList)))]
pub async fn list(
    caller: Caller,
    State(state): State<ApiState>,
) -> Result<Json<TokenList>, ApiError> {
    caller.admin("list API tokens")?;
    let items = state.store().api_tokens().await?;
    Ok(Json(TokenList {
        items: items.into_iter().map(TokenView::from).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/tokens", tag = "admin", request_body = NewTokenBody,
    responses((status = 201, body = CreatedToken), (status = 400, description = "Invalid body")))]
pub async fn create(
    caller: Caller,
    State(state): State<ApiState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.admin("create API tokens")?;
    let b: NewTokenBody = json_body(&body)?;
    let role = Role::parse(&b.role).ok_or_else(|| {
        ApiError::bad_request("token.invalid_role", "role: admin, manager or operator")
    })?;
    let label = b.label.trim();
    if label.is_empty()
        || label.chars().count() > MAX_LABEL_CHARS
        || label.chars().any(char::is_control)
    {
        return Err(ApiError::invalid_body(
            "label: 1–100 characters, no control characters",
        ));
    }
    if label == CONFIG_LABEL {
        return Err(ApiError::bad_request(
            "token.reserved_label",
            "the label `config` names tokens from the config file",
        ));
    }
    let extension = match (role, b.extension.as_deref()) {
        (Role::Operator, Some(ext)) => {
            if state.store().operator(ext).await?.is_none() {
                return Err(ApiError::bad_request(
                    "token.unknown_operator",
                    &format!("no operator has extension {ext:?}"),
                ));
            }
            Some(ext)
        }
        (Role::Operator, None) => {
            return Err(ApiError::bad_request(
                "token.extension_required",
                "operator tokens need the operator's extension",
            ));
        }
        (_, Some(_)) => {
            return Err(ApiError::bad_request(
                "token.extension_not_allowed",
                "only operator tokens have an extension",
            ));
        }
        (_, None) => None,
    };
    let token = hex::encode(rand::random::<[u8; 24]>());
    let info = state
        .store()
        .create_api_token(
            &token_hash(&token),
            role.as_str(),
            extension,
            label,
            Utc::now(),
        )
        .await?;
    tracing::info!(id = info.id, role = %info.role, label = %info.label, "API token created");
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        Json(CreatedToken {
            view: info.into(),
            token,
        }),
    )
        .into_response())
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "admin",
    responses((status = 204, description = "Revoked"), (status = 404, description = "No such token"),
              (status = 409, description = "From the config file, or the last admin token")))]
pub async fn revoke(
    caller: Caller,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.admin("revoke API tokens")?;
    let not_found = || ApiError::not_found("token.not_found", "no API token has this id");
    let id: i64 = id.parse().map_err(|_| not_found())?;
    let store = state.store();
    let from_config = store
        .api_tokens()
        .await?
        .into_iter()
        .any(|t| t.id == id && t.label == CONFIG_LABEL);
    if from_config {
        return Err(ApiError::conflict(
            "token.from_config",
            "this token comes from the config file: take it out of the file, and it stops \
             working at the next start",
        ));
    }
    match store.revoke_api_token(id).await? {
        Revoked::Done => {
            tracing::info!(id, "API token revoked");
            Ok(StatusCode::NO_CONTENT)
        }
        Revoked::NotFound => Err(not_found()),
        Revoked::LastAdmin => Err(ApiError::conflict(
            "token.last_admin",
            "this is the only admin token: create another admin token first",
        )),
    }
}
