//! Ratings repository: callers' post-call ratings (1–5), listed and averaged per operator.

use chrono::{DateTime, Utc};

use super::{RatingAverage, RatingFilter, RatingRecord, Store, StoreError, builder, query_err};

/// Appends the `WHERE` clause of a `RatingFilter` (rated calls only) to `qb`.
fn push_where<DB: sqlx::Database>(qb: &mut sqlx::QueryBuilder<DB>, f: &RatingFilter)
where
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> DateTime<Utc>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    qb.push(" WHERE rating IS NOT NULL");
    if let Some(operator) = &f.operator {
        qb.push(" AND operator = ").push_bind(operator.clone());
    }
    if let Some(since) = f.since {
        qb.push(" AND started_at >= ").push_bind(since);
    }
    if let Some(until) = f.until {
        qb.push(" AND started_at < ").push_bind(until);
    }
}

impl Store {
    /// Rated calls matching the filter, newest first (by id), at most `f.effective_limit()`.
    /// `since` is inclusive, `until` exclusive, both on `started_at`. Calls no operator took are
    /// listed too (with `operator` `None`) unless `f.operator` is set.
    pub async fn ratings(&self, f: &RatingFilter) -> Result<Vec<RatingRecord>, StoreError> {
        on_reader!(self, pool => {
            let mut qb = builder(
                pool,
                "SELECT id AS call_id, operator, queue, rating, caller, started_at FROM calls",
            );
            push_where(&mut qb, f);
            qb.push(" ORDER BY id DESC LIMIT ").push_bind(f.effective_limit());
            qb.build_query_as::<RatingRecord>().fetch_all(pool).await
        })
        .map_err(query_err("ratings"))
    }

    /// Per operator (by extension), how many calls matching the filter were rated and their mean
    /// rating. Covers every matching call (`f.limit` does not apply); calls no operator took are
    /// in no average.
    pub async fn rating_averages(
        &self,
        f: &RatingFilter,
    ) -> Result<Vec<RatingAverage>, StoreError> {
        on_reader!(self, pool => {
            let mut qb = builder(
                pool,
                "SELECT operator, COUNT(*) AS count, \
                     AVG(CAST(rating AS DOUBLE PRECISION)) AS average FROM calls",
            );
            push_where(&mut qb, f);
            qb.push(" AND operator IS NOT NULL GROUP BY operator ORDER BY operator");
            qb.build_query_as::<RatingAverage>().fetch_all(pool).await
        })
        .map_err(query_err("rating_averages"))
    }
}
