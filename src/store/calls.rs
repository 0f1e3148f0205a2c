//! Calls repository: call records (CDRs) and their SIP legs, crash repair, and the call list.

use super::{
    CallFilter, CallRecord, LegRecord, NewCall, NewLeg, RecordEntry, Store, StoreError, builder,
    query_err,
};
use chrono::{DateTime, Utc};

/// Disposition of calls found open when their node starts again.
pub const DISPOSITION_CRASHED: &str = "system.crashed";

/// `SELECT` of every `CallRecord` column, followed by `$tail`.
macro_rules! select_call {
    ($tail:literal) => {
        concat!(
            "SELECT id, node_id, direction, caller, caller_name, callee, started_at, answered_at, \
             ended_at, duration_ms, disposition, hangup_by, flow_id, flow_path, rating, queue, \
             operator, wait_ms, broadcast_id, broadcast_result FROM calls",
            $tail
        )
    };
}

/// `text` with LIKE's wildcards escaped (by backslash).
fn like_escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// Milliseconds from `started_at` to `ended_at`, never negative (clocks may step back).
pub(super) fn duration_ms(started_at: DateTime<Utc>, ended_at: DateTime<Utc>) -> i64 {
    (ended_at - started_at).num_milliseconds().max(0)
}

impl Store {
    /// The caller's post-call rating, 1–5.
    pub async fn set_call_rating(&self, id: &str, rating: i32) -> Result<(), StoreError> {
        self.apply_record(RecordEntry::CallRating {
            call_id: id.to_owned(),
            rating,
        })
        .await
        .map(drop)
    }

    /// The caller joined `queue`. A later join (an overflow into another queue) overwrites it.
    pub async fn set_call_queue(&self, id: &str, queue: &str) -> Result<(), StoreError> {
        self.apply_record(RecordEntry::CallQueued {
            call_id: id.to_owned(),
            queue: queue.to_owned(),
            position: 0,
            at: Utc::now(),
        })
        .await
        .map(drop)
    }

    /// How the caller's wait in the queue ended: bridged to `operator` after `wait_ms`, or, with
    /// `operator` `None`, left the queue (hung up, timed out, overflowed nowhere) after `wait_ms`.
    /// A negative `wait_ms` is stored as 0.
    pub async fn set_call_queue_outcome(
        &self,
        id: &str,
        operator: Option<&str>,
        wait_ms: i64,
    ) -> Result<(), StoreError> {
        self.apply_record(RecordEntry::CallQueueOutcome {
            call_id: id.to_owned(),
            queue: String::new(),
            operator: operator.map(str::to_owned),
            wait_ms,
            outcome: String::new(),
            at: Utc::now(),
        })
        .await
        .map(drop)
    }

    /// Records a call as it starts.
    pub async fn insert_call(&self, c: &NewCall) -> Result<(), StoreError> {
        on_writer!(self, pool => insert_call_row!(pool, c).map(|done| done.rows_affected()))
            .map_err(query_err("insert_call"))?;
        Ok(())
    }

    /// Marks the call answered at `at`. The first answer wins; later ones change nothing.
    pub async fn call_answered(&self, id: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        let updated = on_writer!(self, pool => sqlx::query(
            "UPDATE calls SET answered_at = $2 WHERE id = $1 AND answered_at IS NULL",
        )
        .bind(id)
        .bind(at)
        .execute(pool)
        .await
        .map(|done| done.rows_affected()))
        .map_err(query_err("call_answered"))?;
        if updated == 0 && !self.call_exists(id).await? {
            return Err(StoreError::CallNotFound { id: id.to_owned() });
        }
        Ok(())
    }

    /// Closes the call at `at` with a disposition code and who hung up, and sets `duration_ms` to
    /// the whole call's length (`at - started_at`). Idempotent: a call already ended is left as is.
    pub async fn call_ended(
        &self,
        id: &str,
        at: DateTime<Utc>,
        disposition: &str,
        hangup_by: Option<&str>,
    ) -> Result<(), StoreError> {
        let started_at = on_writer!(self, pool => sqlx::query_scalar::<_, DateTime<Utc>>(
            "SELECT started_at FROM calls WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await)
        .map_err(query_err("call_ended"))?
        .ok_or_else(|| StoreError::CallNotFound { id: id.to_owned() })?;

        on_writer!(self, pool => sqlx::query(
            "UPDATE calls SET ended_at = $2, duration_ms = $3, disposition = $4, hangup_by = $5 \
             WHERE id = $1 AND ended_at IS NULL",
        )
        .bind(id)
        .bind(at)
        .bind(duration_ms(started_at, at))
        .bind(disposition)
        .bind(hangup_by)
        .execute(pool)
        .await
        .map(|done| done.rows_affected()))
        .map_err(query_err("call_ended"))?;
        Ok(())
    }

    /// Records a SIP leg of an existing call; returns the leg's id.
    pub async fn insert_leg(&self, l: &NewLeg) -> Result<i64, StoreError> {
        on_writer!(self, pool => sqlx::query_scalar::<_, i64>(
            "INSERT INTO call_legs (call_id, sip_call_id, direction, local_tag, remote_tag, \
                 remote_uri, remote_addr, transport, started_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(&l.call_id)
        .bind(&l.sip_call_id)
        .bind(&l.direction)
        .bind(&l.local_tag)
        .bind(&l.remote_tag)
        .bind(&l.remote_uri)
        .bind(&l.remote_addr)
        .bind(&l.transport)
        .bind(l.started_at)
        .fetch_one(pool)
        .await)
        .map_err(query_err("insert_leg"))
    }

    /// Marks the leg answered (first answer wins) and stores the remote tag when given.
    pub async fn leg_answered(
        &self,
        leg_id: i64,
        at: DateTime<Utc>,
        remote_tag: Option<&str>,
    ) -> Result<(), StoreError> {
        let updated = on_writer!(self, pool => sqlx::query(
            "UPDATE call_legs SET answered_at = $2, remote_tag = COALESCE($3, remote_tag) \
             WHERE id = $1 AND answered_at IS NULL",
        )
        .bind(leg_id)
        .bind(at)
        .bind(remote_tag)
        .execute(pool)
        .await
        .map(|done| done.rows_affected()))
        .map_err(query_err("leg_answered"))?;
        if updated == 0 && !self.leg_exists(leg_id).await? {
            return Err(StoreError::LegNotFound { id: leg_id });
        }
        Ok(())
    }

    /// Closes the leg with its final SIP status. Idempotent: an ended leg is left as is.
    pub async fn leg_ended(
        &self,
        leg_id: i64,
        at: DateTime<Utc>,
        final_status: Option<i32>,
    ) -> Result<(), StoreError> {
        let updated = on_writer!(self, pool => sqlx::query(
            "UPDATE call_legs SET ended_at = $2, final_status = $3 \
             WHERE id = $1 AND ended_at IS NULL",
        )
        .bind(leg_id)
        .bind(at)
        .bind(final_status)
        .execute(pool)
        .await
        .map(|done| done.rows_affected()))
        .map_err(query_err("leg_ended"))?;
        if updated == 0 && !self.leg_exists(leg_id).await? {
            return Err(StoreError::LegNotFound { id: leg_id });
        }
        Ok(())
    }

    /// Start-up repair: every call of this node left open by a crash is closed as `system.crashed`
    /// (and its open legs). Returns how many calls were closed. Other nodes' calls are untouched.
    pub async fn close_orphaned_calls(
        &self,
        node_id: &str,
        at: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let closed = on_writer!(self, pool => async {
            let mut tx = pool.begin().await?;
            let open = sqlx::query_as::<_, (String, DateTime<Utc>)>(
                "SELECT id, started_at FROM calls WHERE node_id = $1 AND ended_at IS NULL",
            )
            .bind(node_id)
            .fetch_all(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE call_legs SET ended_at = $2 \
                 WHERE ended_at IS NULL AND call_id IN \
                     (SELECT id FROM calls WHERE node_id = $1 AND ended_at IS NULL)",
            )
            .bind(node_id)
            .bind(at)
            .execute(&mut *tx)
            .await?;
            let mut closed = 0;
            for (id, started_at) in &open {
                closed += sqlx::query(
                    "UPDATE calls SET ended_at = $2, duration_ms = $3, disposition = $4, \
                         hangup_by = 'system' \
                     WHERE id = $1 AND ended_at IS NULL",
                )
                .bind(id)
                .bind(at)
                .bind(duration_ms(*started_at, at))
                .bind(DISPOSITION_CRASHED)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            tx.commit().await?;
            Ok::<u64, sqlx::Error>(closed)
        }
        .await)
        .map_err(query_err("close_orphaned_calls"))?;
        if closed > 0 {
            tracing::warn!(node_id, closed, "closed calls left open by a crash");
        }
        Ok(closed)
    }

    /// Calls matching the filter, newest first (by id: UUIDv7 sorts by start time), at most
    /// `f.effective_limit()`. `since` is inclusive, `until` exclusive, both on `started_at`.
    /// For the next page pass the last id returned as `before_id`.
    pub async fn calls(&self, f: &CallFilter) -> Result<Vec<CallRecord>, StoreError> {
        on_reader!(self, pool => {
            let mut qb = builder(pool, select_call!(""));
            let mut glue = " WHERE ";
            if let Some(since) = f.since {
                qb.push(glue).push("started_at >= ").push_bind(since);
                glue = " AND ";
            }
            if let Some(until) = f.until {
                qb.push(glue).push("started_at < ").push_bind(until);
                glue = " AND ";
            }
            if let Some(number) = &f.number {
                qb.push(glue).push("(caller = ").push_bind(number.clone());
                qb.push(" OR callee = ").push_bind(number.clone()).push(")");
                glue = " AND ";
            }
            if let Some(disposition) = &f.disposition {
                qb.push(glue).push("(disposition = ").push_bind(disposition.clone());
                qb.push(" OR disposition LIKE ").push_bind(format!("{}.%", like_escape(disposition)));
                qb.push(" ESCAPE '\\')");
                glue = " AND ";
            }
            if let Some(direction) = &f.direction {
                qb.push(glue).push("direction = ").push_bind(direction.clone());
                glue = " AND ";
            }
            if let Some(queue) = &f.queue {
                qb.push(glue).push("queue = ").push_bind(queue.clone());
                glue = " AND ";
            }
            if let Some(operator) = &f.operator {
                qb.push(glue).push("operator = ").push_bind(operator.clone());
                glue = " AND ";
            }
            if let Some(rating) = f.rating {
                qb.push(glue).push("rating = ").push_bind(rating);
                glue = " AND ";
            }
            if let Some(party) = &f.party {
                qb.push(glue).push("(caller = ").push_bind(party.clone());
                qb.push(" OR callee = ").push_bind(party.clone());
                qb.push(" OR operator = ").push_bind(party.clone()).push(")");
                glue = " AND ";
            }
            if let Some(before_id) = &f.before_id {
                qb.push(glue).push("id < ").push_bind(before_id.clone());
            }
            qb.push(" ORDER BY id DESC LIMIT ").push_bind(f.effective_limit());
            qb.build_query_as::<CallRecord>().fetch_all(pool).await
        })
        .map_err(query_err("calls"))
    }

    /// One call with its legs (in the order they started).
    pub async fn call(&self, id: &str) -> Result<Option<(CallRecord, Vec<LegRecord>)>, StoreError> {
        const CALL_SQL: &str = select_call!(" WHERE id = $1");
        let Some(call) = on_reader!(self, pool => sqlx::query_as::<_, CallRecord>(CALL_SQL)
            .bind(id)
            .fetch_optional(pool)
            .await)
        .map_err(query_err("call"))?
        else {
            return Ok(None);
        };
        let legs = on_reader!(self, pool => sqlx::query_as::<_, LegRecord>(
            "SELECT id, call_id, sip_call_id, direction, local_tag, remote_tag, remote_uri, \
                    remote_addr, transport, started_at, answered_at, ended_at, final_status \
             FROM call_legs WHERE call_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(pool)
        .await)
        .map_err(query_err("call_legs"))?;
        Ok(Some((call, legs)))
    }

    /// How many calls are stored.
    pub async fn count_calls(&self) -> Result<i64, StoreError> {
        on_reader!(self, pool => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM calls")
            .fetch_one(pool)
            .await)
        .map_err(query_err("count_calls"))
    }

    async fn call_exists(&self, id: &str) -> Result<bool, StoreError> {
        on_writer!(self, pool => sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM calls WHERE id = $1",
        )
        .bind(id)
        .fetch_one(pool)
        .await)
        .map(|n| n > 0)
        .map_err(query_err("call_exists"))
    }

    async fn leg_exists(&self, leg_id: i64) -> Result<bool, StoreError> {
        on_writer!(self, pool => sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM call_legs WHERE id = $1",
        )
        .bind(leg_id)
        .fetch_one(pool)
        .await)
        .map(|n| n > 0)
        .map_err(query_err("leg_exists"))
    }
}
