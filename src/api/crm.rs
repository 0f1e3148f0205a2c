//! `/api/v1/leads` and `/api/v1/contacts`: lists with filters and paging, one person, creation
//! (numbers normalised to E.164), lead → contact conversion, timelines, and GDPR erasure.
//! Admins and managers read and write; erasure is for admins; operator tokens get 403.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::params::{Params, is_id, json_body};
use super::{ApiError, ApiState, Caller, idempotency};
use crate::crm::normalize;
use crate::store::{NewPerson, PersonFilter, PersonKind, PersonRecord, TimelineRecord};

#[derive(Serialize, ToSchema)]
pub struct PersonPage {
    #[schema(value_type = Vec<Object>)]
    items: Vec<PersonRecord>,
    next_before: Option<String>,
}

/// A lead or contact to create. At least one of name, phones or e-mails.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPersonBody {
    name: Option<String>,
    /// A lead's subject.
    title: Option<String>,
    company: Option<String>,
    /// In any notation; stored as E.164 (the default country reads national numbers).
    #[serde(default)]
    phones: Vec<String>,
    #[serde(default)]
    emails: Vec<String>,
    /// The responsible operator's extension.
    responsible: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TimelinePage {
    #[schema(value_type = Vec<Object>)]
    entries: Vec<TimelineEntryView>,
    next_before: Option<String>,
}

#[derive(Serialize)]
pub struct TimelineEntryView {
    #[serde(flatten)]
    entry: TimelineRecord,
    /// The call's newest complete recording, for call entries.
    recording_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ErasureView {
    erased: String,
    calls_anonymised: u64,
    recordings_deleted: usize,
}

fn not_found(kind: PersonKind) -> ApiError {
    match kind {
        PersonKind::Lead => ApiError::not_found("lead.not_found", "no lead with that id"),
        PersonKind::Contact => ApiError::not_found("contact.not_found", "no contact with that id"),
    }
}

/// The person with `id` if it is of `kind`.
async fn find(state: &ApiState, kind: PersonKind, id: &str) -> Result<PersonRecord, ApiError> {
    if !is_id(id) {
        return Err(not_found(kind));
    }
    state
        .store()
        .person(id)
        .await?
        .filter(|p| p.kind == kind)
        .ok_or_else(|| not_found(kind))
}

async fn list(
    caller: Caller,
    state: ApiState,
    kind: PersonKind,
    query: HashMap<String, String>,
) -> Result<Json<PersonPage>, ApiError> {
    caller.staff("read the CRM")?;
    let p = Params::new(
        query,
        &["number", "responsible", "since", "until", "limit", "before"],
    )?;
    let number = match p.text("number") {
        Some(n) => Some(normalize(&n, state.options().country).map_err(|e| {
            ApiError::bad_request("request.invalid_query", &format!("number: {e}"))
        })?),
        None => None,
    };
    let filter = PersonFilter {
        kind: Some(kind),
        number,
        responsible: p.text("responsible"),
        since: p.time("since")?,
        until: p.time("until")?,
        before_id: p.cursor("before")?,
        limit: p.limit()?,
    };
    let items = state.store().people(&filter).await?;
    let full = items.len() as i64 == filter.limit.unwrap_or(100);
    let next_before = items.last().filter(|_| full).map(|p| p.id.clone());
    Ok(Json(PersonPage { items, next_before }))
}

async fn create(
    caller: Caller,
    state: ApiState,
    kind: PersonKind,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.staff("create CRM entries")?;
    let route = format!("POST /api/v1/{}s", kind.as_str());
    let work = || async {
        let b: NewPersonBody = json_body(&body)?;
        let person = validate(&state, kind, b).await?;
        let record = state.store().create_person(&person, Utc::now()).await?;
        Ok((StatusCode::CREATED, Json(record)).into_response())
    };
    idempotency::once(&state, &caller, &headers, &route, &body, work).await
}

async fn validate(
    state: &ApiState,
    kind: PersonKind,
    b: NewPersonBody,
) -> Result<NewPerson, ApiError> {
    let text = |field: &str, v: Option<String>| -> Result<Option<String>, ApiError> {
        let v = v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        match v {
            Some(s) if s.chars().count() > 200 || s.chars().any(char::is_control) => {
                Err(ApiError::invalid_body(&format!(
                    "{field}: at most 200 characters, no control characters"
                )))
            }
            v => Ok(v),
        }
    };
    let country = state.options().country;
    let mut phones = Vec::new();
    for raw in b.phones.iter().take(20) {
        phones.push(
            normalize(raw, country)
                .map_err(|e| ApiError::bad_request("crm.invalid_phone", &e.to_string()))?,
        );
    }
    let mut emails = Vec::new();
    for raw in b.emails.iter().take(20) {
        let email = raw.trim().to_lowercase();
        let valid = email.len() <= 254
            && email.split('@').count() == 2
            && email.split('@').all(|part| !part.is_empty())
            && !email
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "<>\"".contains(c));
        if !valid {
            return Err(ApiError::bad_request(
                "crm.invalid_email",
                &format!("{raw:?} is not an e-mail address"),
            ));
        }
        emails.push(email);
    }
    let name = text("name", b.name)?;
    if name.is_none() && phones.is_empty() && emails.is_empty() {
        return Err(ApiError::invalid_body("give a name, a phone or an e-mail"));
    }
    let responsible = text("responsible", b.responsible)?;
    if let Some(ext) = &responsible
        && state.store().operator(ext).await?.is_none()
    {
        return Err(ApiError::bad_request(
            "crm.unknown_operator",
            "responsible names no operator's extension",
        ));
    }
    Ok(NewPerson {
        kind,
        name,
        title: text("title", b.title)?,
        company: text("company", b.company)?,
        source: "api".into(),
        responsible,
        phones,
        emails,
    })
}

async fn timeline(
    caller: Caller,
    state: ApiState,
    kind: PersonKind,
    id: String,
    query: HashMap<String, String>,
) -> Result<Json<TimelinePage>, ApiError> {
    caller.staff("read the CRM")?;
    let p = Params::new(query, &["limit", "before"])?;
    find(&state, kind, &id).await?;
    let limit = p.limit()?.unwrap_or(100);
    let store = state.store();
    let entries = store
        .timeline(&id, p.cursor("before")?.as_deref(), limit)
        .await?;
    let full = entries.len() as i64 == limit;
    let next_before = entries.last().filter(|_| full).map(|e| e.id.clone());
    let call_ids: Vec<String> = entries.iter().filter_map(|e| e.call_id.clone()).collect();
    let recordings = store.latest_recordings(&call_ids).await?;
    let entries = entries
        .into_iter()
        .map(|entry| TimelineEntryView {
            recording_id: entry
                .call_id
                .as_ref()
                .and_then(|c| recordings.get(c).cloned()),
            entry,
        })
        .collect();
    Ok(Json(TimelinePage {
        entries,
        next_before,
    }))
}

async fn erase(
    caller: Caller,
    state: ApiState,
    kind: PersonKind,
    id: String,
) -> Result<Json<ErasureView>, ApiError> {
    caller.admin("erase CRM entries")?;
    find(&state, kind, &id).await?;
    let erasure = state
        .store()
        .erase_person(&id)
        .await?
        .ok_or_else(|| not_found(kind))?;
    let data_dir = &state.options().data_dir;
    for path in &erasure.recording_paths {
        let file = crate::store::RecordingRecord::relative_file(data_dir, path);
        crate::runtime::retention::remove_data_file(data_dir, file).await;
    }
    tracing::info!(person = %id, calls = erasure.calls_anonymised, "erased a CRM person (GDPR)");
    Ok(Json(ErasureView {
        erased: id,
        calls_anonymised: erasure.calls_anonymised,
        recordings_deleted: erasure.recording_paths.len(),
    }))
}

macro_rules! person_endpoints {
    ($kind:expr, $plural:literal, $list:ident, $create:ident, $get:ident, $timeline:ident, $erase:ident) => {
        #[utoipa::path(get, path = concat!("/api/v1/", $plural), tag = "crm",
            params(
                ("number" = Option<String>, Query, description = "any notation"),
                ("responsible" = Option<String>, Query, description = "operator extension"),
                ("since" = Option<String>, Query), ("until" = Option<String>, Query),
                ("limit" = Option<i64>, Query), ("before" = Option<String>, Query),
            ),
            responses((status = 200, body = PersonPage), (status = 403, description = "auth.forbidden")))]
        pub async fn $list(
            caller: Caller,
            State(state): State<ApiState>,
            Query(query): Query<HashMap<String, String>>,
        ) -> Result<Json<PersonPage>, ApiError> {
            list(caller, state, $kind, query).await
        }

        #[utoipa::path(post, path = concat!("/api/v1/", $plural), tag = "crm",
            request_body = NewPersonBody,
            params(("Idempotency-Key" = Option<String>, Header)),
            responses(
                (status = 201, description = "created"),
                (status = 400, description = "request.invalid_body, crm.invalid_phone, crm.invalid_email"),
                (status = 409, description = "crm.number_taken, idempotency.in_progress"),
                (status = 422, description = "idempotency.key_reused"),
            ))]
        pub async fn $create(
            caller: Caller,
            State(state): State<ApiState>,
            headers: HeaderMap,
            body: Bytes,
        ) -> Result<Response, ApiError> {
            create(caller, state, $kind, headers, body).await
        }

        #[utoipa::path(get, path = concat!("/api/v1/", $plural, "/{id}"), tag = "crm",
            params(("id" = String, Path)),
            responses((status = 200, description = "the person"), (status = 404)))]
        pub async fn $get(
            caller: Caller,
            State(state): State<ApiState>,
            Path(id): Path<String>,
        ) -> Result<Json<PersonRecord>, ApiError> {
            caller.staff("read the CRM")?;
            Ok(Json(find(&state, $kind, &id).await?))
        }

        #[utoipa::path(get, path = concat!("/api/v1/", $plural, "/{id}/timeline"), tag = "crm",
            params(("id" = String, Path), ("limit" = Option<i64>, Query), ("before" = Option<String>, Query)),
            responses((status = 200, body = TimelinePage), (status = 404)))]
        pub async fn $timeline(
            caller: Caller,
            State(state): State<ApiState>,
            Path(id): Path<String>,
            Query(query): Query<HashMap<String, String>>,
        ) -> Result<Json<TimelinePage>, ApiError> {
            timeline(caller, state, $kind, id, query).await
        }

        /// GDPR erasure: numbers, e-mails, timeline and recordings go; calls stay anonymised.
        #[utoipa::path(delete, path = concat!("/api/v1/", $plural, "/{id}"), tag = "crm",
            params(("id" = String, Path)),
            responses((status = 200, body = ErasureView), (status = 403), (status = 404)))]
        pub async fn $erase(
            caller: Caller,
            State(state): State<ApiState>,
            Path(id): Path<String>,
        ) -> Result<Json<ErasureView>, ApiError> {
            erase(caller, state, $kind, id).await
        }
    };
}

person_endpoints!(
    PersonKind::Lead,
    "leads",
    list_leads,
    create_lead,
    get_lead,
    lead_timeline,
    erase_lead
);
person_endpoints!(
    PersonKind::Contact,
    "contacts",
    list_contacts,
    create_contact,
    get_contact,
    contact_timeline,
    erase_contact
);

/// Converts a lead into a contact; its id and timeline stay.
#[utoipa::path(post, path = "/api/v1/leads/{id}/convert", tag = "crm",
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, description = "the contact"), (status = 404, description = "lead.not_found")))]
pub async fn convert_lead(
    caller: Caller,
    State(state): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller.staff("convert leads")?;
    let route = format!("POST /api/v1/leads/{id}/convert");
    let work = || async {
        find(&state, PersonKind::Lead, &id).await?;
        let contact = state
            .store()
            .convert_lead(&id, Utc::now())
            .await?
            .ok_or_else(|| not_found(PersonKind::Lead))?;
        Ok(Json(contact).into_response())
    };
    idempotency::once(&state, &caller, &headers, &route, &[], work).await
}
