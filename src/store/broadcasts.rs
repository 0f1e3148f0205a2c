//! Broadcasts repository: campaigns, their recipients and attempts, and the do-not-call list.
//!
//! Restart safety lives here. A recipient is *claimed* before its INVITE: in one transaction
//! its row becomes `calling` with a lease (node, expiry), its attempt count goes up and an
//! attempt row is opened. PostgreSQL picks the rows with `FOR UPDATE SKIP LOCKED`, so several
//! nodes claiming at once split a campaign instead of sharing recipients; SQLite has one writer,
//! so the same statements are serialised anyway. An attempt is *finished* in one transaction
//! with its recipient's next state (retry at a time, done with an outcome, or requeued without
//! counting after a trunk's 503). A crash leaves attempts open and recipients leased: the node
//! closes its own at start ([`Store::open_attempts`] + [`Store::finish_attempt`]), survivors
//! close those whose lease ran out. Finishing an attempt that is already closed changes
//! nothing, so a late outcome never undoes a repair.

use super::{Store, StoreError, builder, query_err};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// A campaign as created.
#[derive(Debug, Clone)]
pub struct NewBroadcast {
    pub id: String,
    pub name: String,
    pub state: String,
    pub trunk: String,
    pub caller_id: Option<String>,
    pub concurrency: i64,
    pub cps: f64,
    /// JSON of `broadcast::StoredSettings`.
    pub settings: String,
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A campaign as stored.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct BroadcastRecord {
    pub id: String,
    pub name: String,
    /// `draft` | `running` | `paused` | `cancelled` | `completed`.
    pub state: String,
    pub trunk: String,
    pub caller_id: Option<String>,
    pub concurrency: i64,
    pub cps: f64,
    #[serde(skip)]
    pub settings: String,
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// A recipient as created: due at `next_attempt_at`, or already `done` (an invalid number).
#[derive(Debug, Clone)]
pub struct NewRecipient {
    pub position: i64,
    pub raw_number: String,
    pub e164: Option<String>,
    pub name: Option<String>,
    pub person_id: Option<String>,
    pub zones: String,
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// `Some(outcome)`: done at once (`invalid_number`), with `error` saying why.
    pub done: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct RecipientRecord {
    pub id: i64,
    pub position: i64,
    pub raw_number: String,
    pub e164: Option<String>,
    pub name: Option<String>,
    pub person_id: Option<String>,
    pub zones: String,
    /// `pending` | `calling` | `done`.
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub outcome: Option<String>,
    pub sip_status: Option<i32>,
    pub digit: Option<String>,
    pub error: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// A recipient claimed for a call, with the attempt opened for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedAttempt {
    pub attempt_id: String,
    pub broadcast_id: String,
    pub recipient_id: i64,
    /// 1 for the recipient's first call.
    pub attempt: i64,
    pub e164: String,
    pub name: Option<String>,
    pub person_id: Option<String>,
    pub zones: String,
    /// The number is on the do-not-call list: finish it without a call.
    pub do_not_call: bool,
}

/// An attempt left open (a crash, an expired lease).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OpenAttempt {
    pub attempt_id: String,
    pub broadcast_id: String,
    pub recipient_id: i64,
    pub attempt: i64,
    pub node_id: String,
    pub call_id: Option<String>,
}

/// How an attempt ended.
#[derive(Debug, Clone, Default)]
pub struct AttemptEnd {
    pub attempt_id: String,
    pub recipient_id: i64,
    pub call_id: Option<String>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: DateTime<Utc>,
    /// An outcome code, or `trunk_congested`, `released`, `crashed`.
    pub outcome: String,
    pub sip_status: Option<i32>,
    pub amd: Option<String>,
    pub amd_reason: Option<String>,
    pub message: Option<String>,
    pub digit: Option<String>,
}

/// What becomes of the recipient after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum RecipientNext {
    /// Called again at `at`; this attempt counted.
    Retry { at: DateTime<Utc> },
    /// Called again at `at` as if this attempt never happened (a trunk's 503, a claim given
    /// back unused, a window that closed before the INVITE).
    Requeue { at: DateTime<Utc> },
    /// Finished with `outcome`.
    Done { outcome: String },
}

/// Counts of one campaign.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BroadcastProgress {
    pub total: i64,
    pub pending: i64,
    /// Claimed by a node: being called, or about to be (claims run ahead of the pace).
    pub calling: i64,
    /// Calls placed and not over yet (the INVITE has gone).
    pub in_flight: i64,
    pub done: i64,
    /// Final outcomes of the recipients done.
    pub outcomes: BTreeMap<String, i64>,
    /// Calls made (attempts with a result).
    pub attempts: i64,
    /// Recipients who pressed a digit, by digit.
    pub digits: BTreeMap<String, i64>,
    /// Attempts that ended in the last five minutes (the pace, for the ETA).
    pub recent_attempts: i64,
    /// When the next pending recipient is due.
    pub next_due: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct DoNotCallRecord {
    pub e164: String,
    pub reason: String,
    pub broadcast_id: Option<String>,
    pub call_id: Option<String>,
    pub added_at: DateTime<Utc>,
}

const SELECT_BROADCAST: &str = "SELECT id, name, state, trunk, caller_id, concurrency, cps, \
     settings, created_by, created_at, started_at, finished_at, updated_at FROM broadcasts";

const SELECT_RECIPIENT: &str = "SELECT id, position, raw_number, e164, name, person_id, zones, \
     state, attempts, next_attempt_at, outcome, sip_status, digit, error, updated_at \
     FROM broadcast_recipients";

/// Rows per multi-row INSERT (well under SQLite's bound-parameter limit).
const INSERT_CHUNK: usize = 500;

impl Store {
    /// Stores a campaign and all its recipients in one transaction.
    pub async fn create_broadcast(
        &self,
        b: &NewBroadcast,
        recipients: &[NewRecipient],
    ) -> Result<(), StoreError> {
        on_writer!(self, pool => async {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO broadcasts (id, name, state, trunk, caller_id, concurrency, cps, \
                     settings, created_by, created_at, started_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $10)",
            )
            .bind(&b.id)
            .bind(&b.name)
            .bind(&b.state)
            .bind(&b.trunk)
            .bind(&b.caller_id)
            .bind(b.concurrency)
            .bind(b.cps)
            .bind(&b.settings)
            .bind(&b.created_by)
            .bind(b.created_at)
            .bind((b.state == "running").then_some(b.created_at))
            .execute(&mut *tx)
            .await?;
            for chunk in recipients.chunks(INSERT_CHUNK) {
                let mut qb = builder(pool, "INSERT INTO broadcast_recipients (broadcast_id, position, \
                     raw_number, e164, name, person_id, zones, state, next_attempt_at, outcome, \
                     error, updated_at) ");
                qb.push_values(chunk, |mut row, r| {
                    row.push_bind(&b.id)
                        .push_bind(r.position)
                        .push_bind(&r.raw_number)
                        .push_bind(&r.e164)
                        .push_bind(&r.name)
                        .push_bind(&r.person_id)
                        .push_bind(&r.zones)
                        .push_bind(if r.done.is_some() { "done" } else { "pending" })
                        .push_bind(r.next_attempt_at.filter(|_| r.done.is_none()))
                        .push_bind(&r.done)
                        .push_bind(&r.error)
                        .push_bind(b.created_at);
                });
                qb.build().execute(&mut *tx).await?;
            }
            tx.commit().await
        }
        .await)
        .map_err(query_err("create_broadcast"))
    }

    pub async fn broadcast(&self, id: &str) -> Result<Option<BroadcastRecord>, StoreError> {
        let sql = format!("{SELECT_BROADCAST} WHERE id = $1");
        on_reader!(self, pool => sqlx::query_as::<_, BroadcastRecord>(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(pool)
            .await)
        .map_err(query_err("broadcast"))
    }

    /// Campaigns newest first; `state` filters; `before` is the paging cursor (an id).
    pub async fn broadcasts(
        &self,
        state: Option<&str>,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<BroadcastRecord>, StoreError> {
        on_reader!(self, pool => {
            let mut qb = builder(pool, SELECT_BROADCAST);
            qb.push(" WHERE 1 = 1");
            if let Some(state) = state {
                qb.push(" AND state = ").push_bind(state);
            }
            if let Some(before) = before {
                qb.push(" AND id < ").push_bind(before);
            }
            qb.push(" ORDER BY id DESC LIMIT ").push_bind(limit.clamp(1, 1000));
            qb.build_query_as::<BroadcastRecord>().fetch_all(pool).await
        })
        .map_err(query_err("broadcasts"))
    }

    /// Moves a campaign from one of `from` to `to` (one atomic conditional update); false when
    /// it is not in one of those states. `running` sets `started_at` the first time; the end
    /// states set `finished_at`.
    pub async fn set_broadcast_state(
        &self,
        id: &str,
        from: &[&str],
        to: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let finished = matches!(to, "cancelled" | "completed");
        let n = on_writer!(self, pool => {
            let mut qb = builder(pool, "UPDATE broadcasts SET state = ");
            qb.push_bind(to).push(", updated_at = ").push_bind(now);
            if to == "running" {
                qb.push(", started_at = COALESCE(started_at, ").push_bind(now).push(")");
            }
            if finished {
                qb.push(", finished_at = ").push_bind(now);
            }
            qb.push(" WHERE id = ").push_bind(id).push(" AND state IN (");
            let mut list = qb.separated(", ");
            for state in from {
                list.push_bind(*state);
            }
            qb.push(")");
            qb.build().execute(pool).await.map(|d| d.rows_affected())
        })
        .map_err(query_err("set_broadcast_state"))?;
        Ok(n > 0)
    }

    /// Claims up to `max` recipients of the campaign that are due at `now`, for `node` until
    /// `lease_until`, opening an attempt for each (see the module doc).
    pub async fn claim_recipients(
        &self,
        broadcast_id: &str,
        node: &str,
        now: DateTime<Utc>,
        max: i64,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<ClaimedAttempt>, StoreError> {
        let lock = match self.backend() {
            super::Backend::Postgres => " FOR UPDATE OF r SKIP LOCKED",
            super::Backend::Sqlite => "",
        };
        let select = format!(
            "SELECT r.id, r.attempts, r.e164, r.name, r.person_id, r.zones, \
                 EXISTS (SELECT 1 FROM do_not_call d WHERE d.e164 = r.e164) \
             FROM broadcast_recipients r \
             WHERE r.broadcast_id = $1 AND r.state = 'pending' AND r.next_attempt_at <= $2 \
               AND r.e164 IS NOT NULL \
             ORDER BY r.next_attempt_at, r.position LIMIT $3{lock}"
        );
        type Row = (
            i64,
            i64,
            String,
            Option<String>,
            Option<String>,
            String,
            bool,
        );
        let claimed = on_writer!(self, pool => async {
            let mut tx = pool.begin().await?;
            let rows = sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(select.clone()))
                .bind(broadcast_id)
                .bind(now)
                .bind(max.max(0))
                .fetch_all(&mut *tx)
                .await?;
            if rows.is_empty() {
                tx.commit().await?;
                return Ok::<_, sqlx::Error>(Vec::new());
            }
            let mut qb = builder(pool, "UPDATE broadcast_recipients SET state = 'calling', \
                 attempts = attempts + 1, lease_owner = ");
            qb.push_bind(node)
                .push(", lease_until = ")
                .push_bind(lease_until)
                .push(", updated_at = ")
                .push_bind(now)
                .push(" WHERE state = 'pending' AND id IN (");
            let mut ids = qb.separated(", ");
            for row in &rows {
                ids.push_bind(row.0);
            }
            qb.push(")");
            qb.build().execute(&mut *tx).await?;
            let claimed: Vec<ClaimedAttempt> = rows
                .into_iter()
                .map(|(id, attempts, e164, name, person_id, zones, dnc)| ClaimedAttempt {
                    attempt_id: uuid::Uuid::now_v7().to_string(),
                    broadcast_id: broadcast_id.to_string(),
                    recipient_id: id,
                    attempt: attempts + 1,
                    e164,
                    name,
                    person_id,
                    zones,
                    do_not_call: dnc,
                })
                .collect();
            let mut qb = builder(pool, "INSERT INTO broadcast_attempts (id, broadcast_id, \
                 recipient_id, attempt, node_id, claimed_at) ");
            qb.push_values(&claimed, |mut row, c| {
                row.push_bind(&c.attempt_id)
                    .push_bind(&c.broadcast_id)
                    .push_bind(c.recipient_id)
                    .push_bind(c.attempt)
                    .push_bind(node)
                    .push_bind(now);
            });
            qb.build().execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(claimed)
        }
        .await)
        .map_err(query_err("claim_recipients"))?;
        Ok(claimed)
    }

    /// Closes an attempt and moves its recipient on, in one transaction; `opt_out` also puts
    /// the number on the do-not-call list. False when the attempt was closed already: then only
    /// the opt-out is written.
    pub async fn finish_attempt(
        &self,
        end: &AttemptEnd,
        next: &RecipientNext,
        opt_out: Option<(&str, &str)>,
    ) -> Result<bool, StoreError> {
        let (state, next_at, outcome, uncount) = match next {
            RecipientNext::Retry { at } => ("pending", Some(*at), end.outcome.as_str(), 0),
            RecipientNext::Requeue { at } => ("pending", Some(*at), end.outcome.as_str(), 1),
            RecipientNext::Done { outcome } => ("done", None, outcome.as_str(), 0),
        };
        // A requeued recipient keeps the outcome of its last counted attempt.
        let keep_outcome = matches!(next, RecipientNext::Requeue { .. });
        let finished = on_writer!(self, pool => async {
            let mut tx = pool.begin().await?;
            let closed = sqlx::query(
                "UPDATE broadcast_attempts SET call_id = COALESCE($2, call_id), answered_at = $3, \
                     ended_at = $4, outcome = $5, sip_status = $6, amd = $7, amd_reason = $8, \
                     message = $9, digit = $10 \
                 WHERE id = $1 AND ended_at IS NULL",
            )
            .bind(&end.attempt_id)
            .bind(&end.call_id)
            .bind(end.answered_at)
            .bind(end.ended_at)
            .bind(&end.outcome)
            .bind(end.sip_status)
            .bind(&end.amd)
            .bind(&end.amd_reason)
            .bind(&end.message)
            .bind(&end.digit)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            // The person asked not to be called: kept even when the attempt was closed already
            // (a repair got there first), so no later campaign calls them.
            if let Some((e164, broadcast_id)) = opt_out {
                sqlx::query(
                    "INSERT INTO do_not_call (e164, reason, broadcast_id, call_id, added_at) \
                     VALUES ($1, 'opt_out', $2, $3, $4) ON CONFLICT (e164) DO NOTHING",
                )
                .bind(e164)
                .bind(broadcast_id)
                .bind(&end.call_id)
                .bind(end.ended_at)
                .execute(&mut *tx)
                .await?;
            }
            if closed == 0 {
                tx.commit().await?;
                return Ok::<bool, sqlx::Error>(false);
            }
            // A recipient of a cancelled campaign is never due again: a retry or a claim given
            // back after the cancel ends it instead (with the attempt's outcome, or `cancelled`).
            sqlx::query(
                "UPDATE broadcast_recipients SET \
                     state = CASE WHEN $2 = 'pending' AND EXISTS (SELECT 1 FROM broadcasts b \
                         WHERE b.id = broadcast_recipients.broadcast_id AND b.state = 'cancelled') \
                         THEN 'done' ELSE $2 END, \
                     next_attempt_at = CASE WHEN EXISTS (SELECT 1 FROM broadcasts b \
                         WHERE b.id = broadcast_recipients.broadcast_id AND b.state = 'cancelled') \
                         THEN NULL ELSE $3 END, \
                     lease_owner = NULL, lease_until = NULL, attempts = attempts - $4, \
                     outcome = CASE WHEN $5 AND EXISTS (SELECT 1 FROM broadcasts b \
                         WHERE b.id = broadcast_recipients.broadcast_id AND b.state = 'cancelled') \
                         THEN 'cancelled' WHEN $5 THEN outcome ELSE $6 END, \
                     sip_status = CASE WHEN $5 THEN sip_status ELSE $7 END, \
                     digit = COALESCE($8, digit), updated_at = $9 \
                 WHERE id = $1",
            )
            .bind(end.recipient_id)
            .bind(state)
            .bind(next_at)
            .bind(uncount)
            .bind(keep_outcome)
            .bind(outcome)
            .bind(end.sip_status)
            .bind(&end.digit)
            .bind(end.ended_at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(true)
        }
        .await)
        .map_err(query_err("finish_attempt"))?;
        Ok(finished)
    }

    /// The attempt's INVITE is about to go, for call `call_id`: written before it is sent, so a
    /// crash repair knows which claims may have rung someone (they count) and which cannot have
    /// (they are given back). Only while the claim is still `node`'s — open, its lease not run
    /// out (no other node has taken the recipient over) — and the campaign still runs (paused
    /// or cancelled on another node); false means: do not dial.
    pub async fn attempt_dialled(
        &self,
        attempt_id: &str,
        call_id: &str,
        node: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        on_writer!(self, pool => sqlx::query(
            "UPDATE broadcast_attempts SET call_id = $2 \
             WHERE id = $1 AND ended_at IS NULL \
               AND EXISTS (SELECT 1 FROM broadcast_recipients r \
                   WHERE r.id = broadcast_attempts.recipient_id AND r.state = 'calling' \
                     AND r.lease_owner = $3 AND r.lease_until > $4) \
               AND EXISTS (SELECT 1 FROM broadcasts b \
                   WHERE b.id = broadcast_attempts.broadcast_id AND b.state = 'running')",
        )
        .bind(attempt_id)
        .bind(call_id)
        .bind(node)
        .bind(now)
        .execute(pool)
        .await
        .map(|d| d.rows_affected() == 1))
        .map_err(query_err("attempt_dialled"))
    }

    /// Pushes the lease of every recipient `node` is calling out to `until`.
    pub async fn renew_leases(&self, node: &str, until: DateTime<Utc>) -> Result<u64, StoreError> {
        on_writer!(self, pool => sqlx::query(
            "UPDATE broadcast_recipients SET lease_until = $2 \
             WHERE state = 'calling' AND lease_owner = $1",
        )
        .bind(node)
        .bind(until)
        .execute(pool)
        .await
        .map(|d| d.rows_affected()))
        .map_err(query_err("renew_leases"))
    }

    /// Open attempts of `node` (a crash of this node), or — with `node` `None` — open attempts
    /// whose recipient's lease ran out before `now` (a node that died), oldest first.
    pub async fn open_attempts(
        &self,
        node: Option<&str>,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<OpenAttempt>, StoreError> {
        on_writer!(self, pool => {
            let mut qb = builder(pool, "SELECT a.id AS attempt_id, a.broadcast_id, a.recipient_id, \
                 a.attempt, a.node_id, a.call_id FROM broadcast_attempts a \
                 JOIN broadcast_recipients r ON r.id = a.recipient_id WHERE a.ended_at IS NULL");
            match node {
                Some(node) => {
                    qb.push(" AND a.node_id = ").push_bind(node);
                }
                None => {
                    qb.push(" AND r.state = 'calling' AND r.lease_until < ").push_bind(now);
                }
            }
            qb.push(" ORDER BY a.id LIMIT ").push_bind(limit.clamp(1, 10_000));
            qb.build_query_as::<OpenAttempt>().fetch_all(pool).await
        })
        .map_err(query_err("open_attempts"))
    }

    /// Recipients not done yet (pending or being called).
    pub async fn broadcast_open_recipients(&self, broadcast_id: &str) -> Result<i64, StoreError> {
        on_writer!(self, pool => sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM broadcast_recipients WHERE broadcast_id = $1 AND state <> 'done'",
        )
        .bind(broadcast_id)
        .fetch_one(pool)
        .await)
        .map_err(query_err("broadcast_open_recipients"))
    }

    /// Every pending recipient of a cancelled campaign becomes done with `cancelled`.
    pub async fn cancel_pending_recipients(
        &self,
        broadcast_id: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        on_writer!(self, pool => sqlx::query(
            "UPDATE broadcast_recipients SET state = 'done', outcome = 'cancelled', \
                 next_attempt_at = NULL, updated_at = $2 \
             WHERE broadcast_id = $1 AND state = 'pending'",
        )
        .bind(broadcast_id)
        .bind(now)
        .execute(pool)
        .await
        .map(|d| d.rows_affected()))
        .map_err(query_err("cancel_pending_recipients"))
    }

    pub async fn broadcast_progress(
        &self,
        broadcast_id: &str,
        now: DateTime<Utc>,
    ) -> Result<BroadcastProgress, StoreError> {
        let recent = now - chrono::Duration::minutes(5);
        let (states, outcomes, digits, attempts, recent, next_due, in_flight) =
            on_reader!(self, pool => async {
            let states = sqlx::query_as::<_, (String, i64)>(
                "SELECT state, COUNT(*) FROM broadcast_recipients WHERE broadcast_id = $1 \
                 GROUP BY state",
            )
            .bind(broadcast_id)
            .fetch_all(pool)
            .await?;
            let outcomes = sqlx::query_as::<_, (String, i64)>(
                "SELECT outcome, COUNT(*) FROM broadcast_recipients \
                 WHERE broadcast_id = $1 AND state = 'done' AND outcome IS NOT NULL \
                 GROUP BY outcome",
            )
            .bind(broadcast_id)
            .fetch_all(pool)
            .await?;
            let digits = sqlx::query_as::<_, (String, i64)>(
                "SELECT digit, COUNT(*) FROM broadcast_recipients \
                 WHERE broadcast_id = $1 AND digit IS NOT NULL GROUP BY digit",
            )
            .bind(broadcast_id)
            .fetch_all(pool)
            .await?;
            let attempts = sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM broadcast_attempts WHERE broadcast_id = $1 \
                 AND ended_at IS NOT NULL AND call_id IS NOT NULL",
            )
            .bind(broadcast_id)
            .fetch_one(pool)
            .await?;
            let recent = sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM broadcast_attempts WHERE broadcast_id = $1 \
                 AND ended_at >= $2 AND call_id IS NOT NULL",
            )
            .bind(broadcast_id)
            .bind(recent)
            .fetch_one(pool)
            .await?;
            let next_due = sqlx::query_scalar::<_, Option<DateTime<Utc>>>(
                "SELECT MIN(next_attempt_at) FROM broadcast_recipients \
                 WHERE broadcast_id = $1 AND state = 'pending'",
            )
            .bind(broadcast_id)
            .fetch_one(pool)
            .await?;
            let in_flight = sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM broadcast_attempts WHERE broadcast_id = $1 \
                 AND ended_at IS NULL AND call_id IS NOT NULL",
            )
            .bind(broadcast_id)
            .fetch_one(pool)
            .await?;
            Ok::<_, sqlx::Error>((states, outcomes, digits, attempts, recent, next_due, in_flight))
        }
        .await)
            .map_err(query_err("broadcast_progress"))?;
        let count = |name: &str| {
            states
                .iter()
                .find(|(s, _)| s == name)
                .map_or(0, |(_, n)| *n)
        };
        Ok(BroadcastProgress {
            total: states.iter().map(|(_, n)| n).sum(),
            pending: count("pending"),
            calling: count("calling"),
            in_flight,
            done: count("done"),
            outcomes: outcomes.into_iter().collect(),
            attempts,
            digits: digits.into_iter().collect(),
            recent_attempts: recent,
            next_due,
        })
    }

    /// Recipients in the order given; `state` / `outcome` filter; `after` pages by position.
    pub async fn broadcast_recipients(
        &self,
        broadcast_id: &str,
        state: Option<&str>,
        outcome: Option<&str>,
        after: Option<i64>,
        limit: i64,
    ) -> Result<Vec<RecipientRecord>, StoreError> {
        on_reader!(self, pool => {
            let mut qb = builder(pool, SELECT_RECIPIENT);
            qb.push(" WHERE broadcast_id = ").push_bind(broadcast_id);
            if let Some(state) = state {
                qb.push(" AND state = ").push_bind(state);
            }
            if let Some(outcome) = outcome {
                qb.push(" AND outcome = ").push_bind(outcome);
            }
            if let Some(after) = after {
                qb.push(" AND position > ").push_bind(after);
            }
            qb.push(" ORDER BY position LIMIT ").push_bind(limit.clamp(1, 1000));
            qb.build_query_as::<RecipientRecord>().fetch_all(pool).await
        })
        .map_err(query_err("broadcast_recipients"))
    }

    /// The attempts of one recipient, first first: (attempt, outcome, sip status, call id).
    pub async fn recipient_attempts(
        &self,
        recipient_id: i64,
    ) -> Result<Vec<(i64, Option<String>, Option<i32>, Option<String>)>, StoreError> {
        on_reader!(self, pool => sqlx::query_as::<_, (i64, Option<String>, Option<i32>, Option<String>)>(
            "SELECT attempt, outcome, sip_status, call_id FROM broadcast_attempts \
             WHERE recipient_id = $1 ORDER BY claimed_at, id",
        )
        .bind(recipient_id)
        .fetch_all(pool)
        .await)
        .map_err(query_err("recipient_attempts"))
    }

    pub async fn is_do_not_call(&self, e164: &str) -> Result<bool, StoreError> {
        on_reader!(self, pool => sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM do_not_call WHERE e164 = $1",
        )
        .bind(e164)
        .fetch_one(pool)
        .await)
        .map(|n| n > 0)
        .map_err(query_err("is_do_not_call"))
    }

    /// Adds a number (true) or finds it there already (false).
    pub async fn add_do_not_call(
        &self,
        e164: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        on_writer!(self, pool => sqlx::query(
            "INSERT INTO do_not_call (e164, reason, added_at) VALUES ($1, $2, $3) \
             ON CONFLICT (e164) DO NOTHING",
        )
        .bind(e164)
        .bind(reason)
        .bind(now)
        .execute(pool)
        .await
        .map(|d| d.rows_affected() > 0))
        .map_err(query_err("add_do_not_call"))
    }

    pub async fn remove_do_not_call(&self, e164: &str) -> Result<bool, StoreError> {
        on_writer!(self, pool => sqlx::query("DELETE FROM do_not_call WHERE e164 = $1")
            .bind(e164)
            .execute(pool)
            .await
            .map(|d| d.rows_affected() > 0))
        .map_err(query_err("remove_do_not_call"))
    }

    /// The list in number order; `after` pages by number.
    pub async fn do_not_call_list(
        &self,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<DoNotCallRecord>, StoreError> {
        on_reader!(self, pool => {
            let mut qb = builder(pool, "SELECT e164, reason, broadcast_id, call_id, added_at \
                 FROM do_not_call");
            if let Some(after) = after {
                qb.push(" WHERE e164 > ").push_bind(after);
            }
            qb.push(" ORDER BY e164 LIMIT ").push_bind(limit.clamp(1, 1000));
            qb.build_query_as::<DoNotCallRecord>().fetch_all(pool).await
        })
        .map_err(query_err("do_not_call_list"))
    }
}
