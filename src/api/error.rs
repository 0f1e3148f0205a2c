//! The one error shape of the API: `{ "error": { "code": "queue.not_found", "message": "…" } }`.
//! Codes are stable and dotted; messages are for people.

use crate::store::StoreError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: &str) -> Self {
        ApiError {
            status,
            code,
            message: message.to_string(),
        }
    }

    pub fn bad_request(code: &'static str, message: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized(code: &'static str, message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn forbidden(code: &'static str, message: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    pub fn not_found(code: &'static str, message: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn conflict(code: &'static str, message: &str) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// A request body that is not the JSON the endpoint takes.
    pub fn invalid_body(message: &str) -> Self {
        Self::bad_request("request.invalid_body", message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NumberTaken => {
                return Self::conflict(
                    "crm.number_taken",
                    "a lead with this number exists already; convert it or add the number to a contact",
                );
            }
            StoreError::PersonNotFound { .. } | StoreError::NumberNotFound { .. } => {
                return Self::not_found("crm.not_found", "no such lead or contact");
            }
            StoreError::RecordingNotFound { .. } => {
                return Self::not_found("recording.not_found", "no recording with that id");
            }
            _ => {}
        }
        tracing::error!(error = %e, "storage error in API");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage.unavailable",
            "the database is not available; try again",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": { "code": self.code, "message": self.message } });
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
