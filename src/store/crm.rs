//! CRM repository: leads and contacts (one table, `kind` tells which) with their E.164 numbers and
//! e-mails; matching a number to a person and the race-free match-or-create of a lead; conversion.
//!
//! "One lead per number" is a partial unique index (`crm_phones_one_lead_per_number`), and
//! match-or-create is an upsert on it (`ON CONFLICT … DO NOTHING`), never a check-then-insert, so
//! calls from one new number arriving at the same moment on any node end on one lead.

use super::{Store, StoreError, builder, query_err};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// Lead (new, unqualified) or contact (known client).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PersonKind {
    Lead,
    Contact,
}

impl PersonKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PersonKind::Lead => "lead",
            PersonKind::Contact => "contact",
        }
    }

    fn parse(s: &str) -> PersonKind {
        if s == "contact" {
            PersonKind::Contact
        } else {
            PersonKind::Lead
        }
    }
}

/// A lead or contact as it is created. Numbers must already be E.164 (`crm::phone::normalize`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPerson {
    pub kind: PersonKind,
    pub name: Option<String>,
    pub title: Option<String>,
    pub company: Option<String>,
    /// `telephony` (made for a call) | `api`.
    pub source: String,
    /// The responsible operator's extension.
    pub responsible: Option<String>,
    pub phones: Vec<String>,
    pub emails: Vec<String>,
}

/// A lead or contact as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PersonRecord {
    pub id: String,
    pub kind: PersonKind,
    pub name: Option<String>,
    pub title: Option<String>,
    pub company: Option<String>,
    pub source: String,
    pub responsible: Option<String>,
    pub phones: Vec<String>,
    pub emails: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub converted_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct PersonRow {
    id: String,
    kind: String,
    name: Option<String>,
    title: Option<String>,
    company: Option<String>,
    source: String,
    responsible: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    converted_at: Option<DateTime<Utc>>,
}

const SELECT_PERSON: &str = "SELECT id, kind, name, title, company, source, responsible, \
     created_at, updated_at, converted_at FROM crm_people";

/// Which people `Store::people` lists; newest first, keyset-paged by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PersonFilter {
    pub kind: Option<PersonKind>,
    /// Exactly this E.164 number.
    pub number: Option<String>,
    pub responsible: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub before_id: Option<String>,
    /// 1..=1000, default 100.
    pub limit: Option<i64>,
}

/// The person a number belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberMatch {
    pub person_id: String,
    pub kind: PersonKind,
    /// True when match-or-create made a new lead for it.
    pub created: bool,
}

impl Store {
    /// Creates a lead or contact with its numbers and e-mails. A lead whose number already has a
    /// lead fails with `StoreError::NumberTaken` (one lead per number).
    pub async fn create_person(
        &self,
        p: &NewPerson,
        now: DateTime<Utc>,
    ) -> Result<PersonRecord, StoreError> {
        let id = uuid::Uuid::now_v7().to_string();
        let result = on_writer!(self, pool => async {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO crm_people (id, kind, name, title, company, source, responsible, \
                     created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
            )
            .bind(&id)
            .bind(p.kind.as_str())
            .bind(&p.name)
            .bind(&p.title)
            .bind(&p.company)
            .bind(&p.source)
            .bind(&p.responsible)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            for e164 in dedup(&p.phones) {
                sqlx::query("INSERT INTO crm_phones (person_id, person_kind, e164) VALUES ($1, $2, $3)")
                    .bind(&id)
                    .bind(p.kind.as_str())
                    .bind(e164)
                    .execute(&mut *tx)
                    .await?;
            }
            for email in dedup(&p.emails) {
                sqlx::query("INSERT INTO crm_emails (person_id, email) VALUES ($1, $2)")
                    .bind(&id)
                    .bind(email)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await
        }
        .await)
        .map_err(query_err("create_person"));
        match result {
            Err(e) if e.is_unique_violation() => Err(StoreError::NumberTaken),
            Err(e) => Err(e),
            Ok(()) => self
                .person(&id)
                .await?
                .ok_or(StoreError::PersonNotFound { id }),
        }
    }

    /// One lead or contact with its numbers and e-mails.
    pub async fn person(&self, id: &str) -> Result<Option<PersonRecord>, StoreError> {
        let sql = format!("{SELECT_PERSON} WHERE id = $1");
        let row = on_reader!(self, pool => sqlx::query_as::<_, PersonRow>(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(pool)
            .await)
        .map_err(query_err("person"))?;
        match row {
            Some(row) => Ok(self.with_details(vec![row]).await?.pop()),
            None => Ok(None),
        }
    }

    /// People matching the filter, newest first.
    pub async fn people(&self, f: &PersonFilter) -> Result<Vec<PersonRecord>, StoreError> {
        let limit = f.limit.unwrap_or(100).clamp(1, 1000);
        let rows = on_reader!(self, pool => {
            let mut qb = builder(pool, SELECT_PERSON);
            qb.push(" WHERE 1 = 1");
            if let Some(kind) = f.kind {
                qb.push(" AND kind = ").push_bind(kind.as_str());
            }
            if let Some(number) = &f.number {
                qb.push(" AND id IN (SELECT person_id FROM crm_phones WHERE e164 = ")
                    .push_bind(number.clone())
                    .push(")");
            }
            if let Some(responsible) = &f.responsible {
                qb.push(" AND responsible = ").push_bind(responsible.clone());
            }
            if let Some(since) = f.since {
                qb.push(" AND created_at >= ").push_bind(since);
            }
            if let Some(until) = f.until {
                qb.push(" AND created_at < ").push_bind(until);
            }
            if let Some(before) = &f.before_id {
                qb.push(" AND id < ").push_bind(before.clone());
            }
            qb.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
            qb.build_query_as::<PersonRow>().fetch_all(pool).await
        })
        .map_err(query_err("people"))?;
        self.with_details(rows).await
    }

    async fn with_details(&self, rows: Vec<PersonRow>) -> Result<Vec<PersonRecord>, StoreError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let detail = |table: &'static str, column: &'static str| {
            let ids = ids.clone();
            async move {
                on_reader!(self, pool => {
                    let mut qb = builder(pool, "");
                    qb.push(format!("SELECT person_id, {column} FROM {table} WHERE person_id IN ("));
                    let mut list = qb.separated(", ");
                    for id in ids {
                        list.push_bind(id);
                    }
                    qb.push(format!(") ORDER BY {column}"));
                    qb.build_query_as::<(String, String)>().fetch_all(pool).await
                })
                .map_err(query_err("person_details"))
            }
        };
        let phones = detail("crm_phones", "e164").await?;
        let emails = detail("crm_emails", "email").await?;
        let pick = |list: &[(String, String)], id: &str| -> Vec<String> {
            list.iter()
                .filter(|(p, _)| p == id)
                .map(|(_, v)| v.clone())
                .collect()
        };
        Ok(rows
            .into_iter()
            .map(|r| PersonRecord {
                phones: pick(&phones, &r.id),
                emails: pick(&emails, &r.id),
                kind: PersonKind::parse(&r.kind),
                id: r.id,
                name: r.name,
                title: r.title,
                company: r.company,
                source: r.source,
                responsible: r.responsible,
                created_at: r.created_at,
                updated_at: r.updated_at,
                converted_at: r.converted_at,
            })
            .collect())
    }

    /// Who this E.164 number belongs to: a contact first (the oldest), then the lead.
    pub async fn match_number(&self, e164: &str) -> Result<Option<NumberMatch>, StoreError> {
        let found = on_reader!(self, pool => sqlx::query_as::<_, (String, String)>(
            "SELECT p.id, p.kind FROM crm_phones ph JOIN crm_people p ON p.id = ph.person_id \
             WHERE ph.e164 = $1 \
             ORDER BY CASE p.kind WHEN 'contact' THEN 0 ELSE 1 END, p.id LIMIT 1",
        )
        .bind(e164)
        .fetch_optional(pool)
        .await)
        .map_err(query_err("match_number"))?;
        Ok(found.map(|(person_id, kind)| NumberMatch {
            person_id,
            kind: PersonKind::parse(&kind),
            created: false,
        }))
    }

    /// The contact or lead for `e164`, or a new lead made from `lead` (source `telephony`) when
    /// the number is unknown. Concurrent calls for one new number create exactly one lead: the
    /// phone row is an upsert on the one-lead-per-number index, and the losers roll back and
    /// take the winner's lead.
    pub async fn match_or_create_lead(
        &self,
        e164: &str,
        lead: &NewPerson,
        now: DateTime<Utc>,
    ) -> Result<NumberMatch, StoreError> {
        if let Some(found) = self.match_number(e164).await? {
            return Ok(found);
        }
        let id = uuid::Uuid::now_v7().to_string();
        let inserted = on_writer!(self, pool => async {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO crm_people (id, kind, name, title, company, source, responsible, \
                     created_at, updated_at) VALUES ($1, 'lead', $2, $3, $4, $5, $6, $7, $7)",
            )
            .bind(&id)
            .bind(&lead.name)
            .bind(&lead.title)
            .bind(&lead.company)
            .bind(&lead.source)
            .bind(&lead.responsible)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let inserted = sqlx::query(
                "INSERT INTO crm_phones (person_id, person_kind, e164) VALUES ($1, 'lead', $2) \
                 ON CONFLICT (e164) WHERE person_kind = 'lead' DO NOTHING",
            )
            .bind(&id)
            .bind(e164)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 1 {
                tx.commit().await?;
            } else {
                tx.rollback().await?;
            }
            Ok::<bool, sqlx::Error>(inserted == 1)
        }
        .await)
        .map_err(query_err("match_or_create_lead"))?;
        if inserted {
            return Ok(NumberMatch {
                person_id: id,
                kind: PersonKind::Lead,
                created: true,
            });
        }
        self.match_number(e164)
            .await?
            .ok_or_else(|| StoreError::NumberNotFound {
                e164: e164.to_owned(),
            })
    }

    /// Turns a lead into a contact, keeping its id and so its timeline. `Ok(None)`: no lead with
    /// that id (it may be a contact already).
    pub async fn convert_lead(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<PersonRecord>, StoreError> {
        let converted = on_writer!(self, pool => async {
            let mut tx = pool.begin().await?;
            let n = sqlx::query(
                "UPDATE crm_people SET kind = 'contact', converted_at = $2, updated_at = $2 \
                 WHERE id = $1 AND kind = 'lead'",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query("UPDATE crm_phones SET person_kind = 'contact' WHERE person_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<bool, sqlx::Error>(n == 1)
        }
        .await)
        .map_err(query_err("convert_lead"))?;
        if converted {
            self.person(id).await
        } else {
            Ok(None)
        }
    }
}

/// `list` without repeats, first occurrence kept.
fn dedup(list: &[String]) -> Vec<&String> {
    let mut seen = std::collections::HashSet::new();
    list.iter().filter(|v| seen.insert(v.as_str())).collect()
}
