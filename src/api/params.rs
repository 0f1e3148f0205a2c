//! Query strings and JSON bodies, read strictly: unknown query keys, bad times, limits out of
//! range and bodies that are not the JSON an endpoint takes are 400s with stable codes.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;

use super::ApiError;

/// A query string's parameters, checked against the keys an endpoint knows.
pub struct Params(HashMap<String, String>);

impl Params {
    pub fn new(map: HashMap<String, String>, known: &[&str]) -> Result<Params, ApiError> {
        if let Some(unknown) = map.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(invalid(&format!("unknown query parameter {unknown:?}")));
        }
        Ok(Params(map))
    }

    /// A non-empty text value.
    pub fn text(&self, key: &str) -> Option<String> {
        self.0
            .get(key)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// An RFC 3339 time.
    pub fn time(&self, key: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
        self.text(key)
            .map(|v| {
                DateTime::parse_from_rfc3339(&v)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| invalid(&format!("{key} must be an RFC 3339 time")))
            })
            .transpose()
    }

    /// `limit` in 1..=1000.
    pub fn limit(&self) -> Result<Option<i64>, ApiError> {
        self.0
            .get("limit")
            .map(|v| {
                v.parse::<i64>()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| invalid("limit must be 1..1000"))
            })
            .transpose()
    }

    /// A paging cursor: an id as the API hands them out (UUID text).
    pub fn cursor(&self, key: &str) -> Result<Option<String>, ApiError> {
        self.text(key)
            .map(|v| {
                uuid::Uuid::parse_str(&v)
                    .map(|_| v)
                    .map_err(|_| invalid(&format!("{key} must be an id from a previous page")))
            })
            .transpose()
    }
}

fn invalid(message: &str) -> ApiError {
    ApiError::bad_request("request.invalid_query", message)
}

/// Parses a JSON body into `T`; anything else is `request.invalid_body` naming what is wrong.
pub fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError::invalid_body("send a JSON body"));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::invalid_body(&format!("invalid JSON: {e}")))
}

/// Whether an id from a path looks like one of ours (UUID text); others are simply not found.
pub fn is_id(id: &str) -> bool {
    uuid::Uuid::parse_str(id).is_ok()
}
