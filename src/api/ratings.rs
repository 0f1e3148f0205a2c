//! `/api/v1/ratings`: callers' post-call ratings, newest first, and each operator's average.
//! Admins and managers see everyone's; an operator token sees only the calls it took.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::params::Params;
use super::{ApiError, ApiState, Caller};
use crate::store::{RatingAverage, RatingFilter, RatingRecord};

#[derive(Serialize, ToSchema)]
pub struct RatingView {
    call_id: String,
    /// The extension that talked to the caller; null when no operator took the call.
    operator: Option<String>,
    /// The queue the caller waited in.
    queue: Option<String>,
    /// 1–5.
    rating: i32,
    caller: String,
    started_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct AverageView {
    operator: String,
    /// Rated calls.
    count: i64,
    /// Their mean rating, rounded to two decimals.
    average: f64,
}

#[derive(Serialize, ToSchema)]
pub struct RatingsPage {
    ratings: Vec<RatingView>,
    /// Per operator, over every rating the filter matches (`limit` does not apply).
    averages: Vec<AverageView>,
}

impl From<RatingRecord> for RatingView {
    fn from(r: RatingRecord) -> Self {
        RatingView {
            call_id: r.call_id,
            operator: r.operator,
            queue: r.queue,
            rating: r.rating,
            caller: r.caller,
            started_at: r.started_at,
        }
    }
}

impl From<RatingAverage> for AverageView {
    fn from(a: RatingAverage) -> Self {
        AverageView {
            operator: a.operator,
            count: a.count,
            average: (a.average * 100.0).round() / 100.0,
        }
    }
}

/// Rated calls, newest first, and the average rating of each operator.
#[utoipa::path(get, path = "/api/v1/ratings", tag = "ratings",
    params(
        ("operator" = Option<String>, Query, description = "calls this extension took (operator tokens: their own)"),
        ("since" = Option<String>, Query, description = "RFC 3339; calls that started at or after"),
        ("until" = Option<String>, Query, description = "RFC 3339; calls that started before"),
        ("limit" = Option<i64>, Query, description = "ratings listed, 1..1000, default 100"),
    ),
    responses(
        (status = 200, body = RatingsPage),
        (status = 400, description = "request.invalid_query"),
        (status = 401, description = "auth.missing_token / auth.invalid_token"),
        (status = 403, description = "auth.forbidden: an operator token asking for another's"),
    ))]
pub async fn list(
    caller: Caller,
    State(state): State<ApiState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<RatingsPage>, ApiError> {
    let p = Params::new(query, &["operator", "since", "until", "limit"])?;
    let mut operator = p.text("operator");
    if let Some(own) = caller.call_scope() {
        if operator.as_deref().is_some_and(|o| o != own) {
            return Err(ApiError::forbidden(
                "auth.forbidden",
                "operator tokens see only their own ratings",
            ));
        }
        operator = Some(own.to_owned());
    }
    let filter = RatingFilter {
        operator,
        since: p.time("since")?,
        until: p.time("until")?,
        limit: p.limit()?,
    };
    let store = state.store();
    let ratings = store.ratings(&filter).await?;
    let averages = store.rating_averages(&filter).await?;
    Ok(Json(RatingsPage {
        ratings: ratings.into_iter().map(RatingView::from).collect(),
        averages: averages.into_iter().map(AverageView::from).collect(),
    }))
}
