//! `POST /api/v1/broadcasts`: a campaign created in one request, JSON or `multipart/form-data`
//! with a `campaign` part (the same JSON), an optional `message` part (audio in any format the
//! media engine reads, converted once to 8 kHz WAV under the data directory) and an optional
//! `recipients` part (a CSV file). Every listed row that cannot be called is stored as
//! `invalid_number` and reported with its row; numbers nobody in the CRM has become leads.
//! Campaigns are created as drafts unless `start` is true; the dispatcher does the calling.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::audio::{convert_audio, remove_audio};
use super::{BroadcastView, apply, find, invalid, view};
use crate::api::params::{is_id, json_body};
use crate::api::{ApiError, ApiState, Caller, idempotency};
use crate::broadcast::recipients::{self, Checked, Duplicate, Listed, Rejected};
use crate::broadcast::{AmdMode, Message, StoredSettings};
use crate::runtime::broadcasts::Control;
use crate::store::{NewBroadcast, NewPerson, NewRecipient, PersonFilter, PersonKind};

/// A campaign to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBroadcastBody {
    name: String,
    /// A trunk from the config; the only one when there is one.
    trunk: Option<String>,
    /// The number recipients see (the trunk's own when absent).
    caller_id: Option<String>,
    /// Calls in flight at once (default 10).
    concurrency: Option<i64>,
    /// New calls per second (default: the trunk's `max_cps`; the trunk's cap always holds).
    cps: Option<f64>,
    /// What recipients hear; absent in a multipart request that has a `message` part.
    #[schema(value_type = Option<Object>)]
    message: Option<MessageBody>,
    /// An IVR flow run after the message (press 1 to confirm, 2 for an operator…).
    answer_flow: Option<String>,
    /// The digit that puts the number on the do-not-call list.
    opt_out_digit: Option<String>,
    /// Local days → hours, as a flow's business hours (default `daily: 09:00-20:00`).
    window: Option<BTreeMap<String, String>>,
    /// Judge the window in this zone for everyone (default: each number's own zones).
    timezone: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    retry: RetryBody,
    /// Default 30 s.
    max_ring_secs: Option<u64>,
    /// `off` (default), `hangup` or `leave_message`.
    #[schema(value_type = Option<String>)]
    amd: Option<AmdMode>,
    /// Absent in a multipart request that has a `recipients` part.
    #[schema(value_type = Option<Object>)]
    recipients: Option<RecipientsBody>,
    /// Start calling at once (else the campaign is a draft until `POST …/start`).
    #[serde(default)]
    start: bool,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum MessageBody {
    Text {
        text: String,
        voice: Option<String>,
    },
    /// A file in the sounds directory.
    Sound {
        file: String,
    },
}

/// Retry delays per outcome in seconds; an outcome without a delay is not retried.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryBody {
    max_attempts: u32,
    busy_secs: Option<u64>,
    no_answer_secs: Option<u64>,
    failed_secs: Option<u64>,
    machine_secs: Option<u64>,
}

impl Default for RetryBody {
    /// Three calls at most: busy again after 10 min, no answer after 30 min, a failed call
    /// after 5 min; machines are not called again.
    fn default() -> Self {
        RetryBody {
            max_attempts: 3,
            busy_secs: Some(600),
            no_answer_secs: Some(1800),
            failed_secs: Some(300),
            machine_secs: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum RecipientsBody {
    /// Numbers in any notation.
    Numbers(Vec<String>),
    /// CSV text (as the multipart `recipients` part).
    Csv(String),
    /// CRM lead or contact ids; each is called on its first number.
    People(Vec<String>),
    /// CRM people by kind and responsible operator.
    Filter {
        kind: Option<String>,
        responsible: Option<String>,
    },
}

#[derive(Serialize, ToSchema)]
pub struct CreatedView {
    #[serde(flatten)]
    broadcast: BroadcastView,
    #[schema(value_type = Object)]
    recipients: ListReport,
}

#[derive(Serialize)]
struct ListReport {
    accepted: usize,
    rejected: Vec<Rejected>,
    duplicates: Vec<Duplicate>,
    leads_created: usize,
}

#[utoipa::path(post, path = "/api/v1/broadcasts", tag = "broadcasts",
    request_body(content = NewBroadcastBody, description = "JSON, or multipart/form-data with parts `campaign` (this JSON), `message` (audio) and `recipients` (CSV)"),
    responses((status = 201, body = CreatedView), (status = 400, description = "Invalid campaign")))]
pub async fn create(
    caller: Caller,
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.staff("create broadcasts")?;
    let work = || async {
        let upload = read_request(&headers, &body).await?;
        let created = create_campaign(&state, &caller, upload).await?;
        Ok((StatusCode::CREATED, Json(created)).into_response())
    };
    idempotency::once(
        &state,
        &caller,
        &headers,
        "POST /api/v1/broadcasts",
        &body,
        work,
    )
    .await
}

/// A create request taken apart.
struct Upload {
    campaign: NewBroadcastBody,
    /// The audio part: its file name and bytes.
    audio: Option<(String, Bytes)>,
    csv: Option<Bytes>,
}

async fn read_request(headers: &HeaderMap, body: &Bytes) -> Result<Upload, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("multipart/form-data") {
        return Ok(Upload {
            campaign: json_body(body)?,
            audio: None,
            csv: None,
        });
    }
    let boundary = multer::parse_boundary(content_type)
        .map_err(|e| ApiError::invalid_body(&format!("multipart: {e}")))?;
    let stream = futures_util::stream::once({
        let body = body.clone();
        async move { Ok::<Bytes, std::convert::Infallible>(body) }
    });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let (mut campaign, mut audio, mut csv) = (None, None, None);
    let bad = |e: multer::Error| ApiError::invalid_body(&format!("multipart: {e}"));
    while let Some(field) = multipart.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or_default().to_string();
        let file_name = field.file_name().unwrap_or_default().to_string();
        let bytes = field.bytes().await.map_err(bad)?;
        match name.as_str() {
            "campaign" => campaign = Some(json_body::<NewBroadcastBody>(&bytes)?),
            "message" => audio = Some((file_name, bytes)),
            "recipients" => csv = Some(bytes),
            other => {
                return Err(ApiError::invalid_body(&format!(
                    "multipart: unknown part {other:?} (campaign, message, recipients)"
                )));
            }
        }
    }
    let campaign =
        campaign.ok_or_else(|| ApiError::invalid_body("multipart: no `campaign` part"))?;
    Ok(Upload {
        campaign,
        audio,
        csv,
    })
}

async fn create_campaign(
    state: &ApiState,
    caller: &Caller,
    upload: Upload,
) -> Result<CreatedView, ApiError> {
    let options = state.options();
    let b = upload.campaign;
    let name = b.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(invalid("name: 1 to 200 characters, no control characters"));
    }
    let (trunk, trunk_cps) = match &b.trunk {
        Some(t) => options.trunks.iter().find(|(name, _)| name == t).cloned(),
        None if options.trunks.len() == 1 => options.trunks.first().cloned(),
        None => None,
    }
    .ok_or_else(|| invalid("trunk: name one of the trunks in the config"))?;
    if let Some(id) = &b.caller_id
        && (id.is_empty()
            || id.len() > 32
            || !id
                .chars()
                .enumerate()
                .all(|(i, c)| c.is_ascii_digit() || (i == 0 && c == '+')))
    {
        return Err(invalid("caller_id: digits, optionally after a +"));
    }
    let concurrency = b.concurrency.unwrap_or(10);
    if !(1..=1000).contains(&concurrency) {
        return Err(invalid("concurrency: 1 to 1000"));
    }
    let cps = b.cps.unwrap_or(trunk_cps);
    if !(0.2..=1000.0).contains(&cps) {
        return Err(invalid("cps: 0.2 to 1000"));
    }
    if let Some(flow) = &b.answer_flow {
        let known = options
            .flows
            .as_ref()
            .is_some_and(|f| f.current.borrow().get(flow).is_some());
        if !known {
            return Err(invalid("answer_flow: no flow with that id"));
        }
    }
    let opt_out_digit = match b.opt_out_digit.as_deref() {
        None => None,
        Some(d) if d.chars().count() == 1 => d.chars().next(),
        Some(_) => return Err(invalid("opt_out_digit: one of 0-9, * or #")),
    };
    let id = uuid::Uuid::now_v7().to_string();
    let message = match (b.message, upload.audio) {
        (Some(_), Some(_)) => {
            return Err(invalid("message: send text or a `message` part, not both"));
        }
        (None, None) => return Err(invalid("message: missing")),
        (Some(MessageBody::Text { text, voice }), None) => {
            if !options.tts {
                return Err(invalid(
                    "message: text-to-speech is not installed on this node; upload audio",
                ));
            }
            if let Some(v) = &voice
                && let Err(e) = crate::media::tts::check_voice_name("espeak-ng", v)
            {
                return Err(invalid(&format!("message.voice: {e}")));
            }
            Message::Text { text, voice }
        }
        (Some(MessageBody::Sound { file }), None) => {
            let valid = !file.is_empty()
                && !file.contains(['/', '\\'])
                && !file.starts_with('.')
                && !file.chars().any(char::is_control);
            if !valid {
                return Err(invalid("message.file: a file name in the sounds directory"));
            }
            let source = options.sounds.join(&file);
            let bytes = tokio::fs::read(&source)
                .await
                .map_err(|_| invalid("message.file: no such file in the sounds directory"))?;
            convert_audio(state, &id, &file, bytes.into()).await?
        }
        (None, Some((file_name, bytes))) => convert_audio(state, &id, &file_name, bytes).await?,
    };
    let stored = StoredSettings {
        message,
        answer_flow: b.answer_flow,
        opt_out_digit,
        window: b
            .window
            .unwrap_or_else(|| [("daily".to_string(), "09:00-20:00".to_string())].into()),
        timezone: b.timezone,
        max_attempts: b.retry.max_attempts,
        retry_busy_secs: b.retry.busy_secs,
        retry_no_answer_secs: b.retry.no_answer_secs,
        retry_failed_secs: b.retry.failed_secs,
        retry_machine_secs: b.retry.machine_secs,
        max_ring_secs: b.max_ring_secs.unwrap_or(30),
        amd: b.amd.unwrap_or_default(),
    };
    let checked_settings = stored.check();
    let settings = match checked_settings {
        Ok(_) => serde_json::to_string(&stored).map_err(|e| invalid(&e.to_string()))?,
        Err(e) => {
            remove_audio(state, &id).await;
            return Err(invalid(&e.to_string()));
        }
    };
    let listed = match list_recipients(state, b.recipients, upload.csv).await {
        Ok(listed) => listed,
        Err(e) => {
            remove_audio(state, &id).await;
            return Err(e);
        }
    };
    let country = options.country;
    let checked = tokio::task::spawn_blocking(move || recipients::check(listed, country))
        .await
        .map_err(|_| invalid("recipients: the list could not be checked"))?;
    // Stored times are real; the injected clock only judges calling windows.
    let now = Utc::now();
    let (rows, leads_created) = match stored_recipients(state, &checked, now).await {
        Ok(rows) => rows,
        Err(e) => {
            remove_audio(state, &id).await;
            return Err(e);
        }
    };
    let created_by = caller
        .extension
        .clone()
        .unwrap_or_else(|| caller.role.as_str().to_string());
    let new = NewBroadcast {
        id: id.clone(),
        name,
        state: "draft".into(),
        trunk,
        caller_id: b.caller_id,
        concurrency,
        cps,
        settings,
        created_by: Some(created_by),
        created_at: now,
    };
    if let Err(e) = state.store().create_broadcast(&new, &rows).await {
        remove_audio(state, &id).await;
        return Err(e.into());
    }
    tracing::info!(broadcast = %id, recipients = rows.len(), rejected = checked.rejected.len(),
        "broadcast created");
    let record = if b.start {
        apply(state, &id, Control::Start).await?
    } else {
        find(state, &id).await?
    };
    Ok(CreatedView {
        broadcast: view(state, record).await?,
        recipients: ListReport {
            accepted: checked.accepted.len(),
            rejected: checked.rejected.into_iter().map(|(_, r)| r).collect(),
            duplicates: checked.duplicates,
            leads_created,
        },
    })
}

/// The rows of the recipient list, from the JSON body or the CSV part.
async fn list_recipients(
    state: &ApiState,
    body: Option<RecipientsBody>,
    csv: Option<Bytes>,
) -> Result<Vec<Listed>, ApiError> {
    let list_error = |e: recipients::ListError| invalid(&format!("recipients: {e}"));
    let listed = match (body, csv) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "recipients: send a list or a `recipients` part, not both",
            ));
        }
        (None, None) => return Err(invalid("recipients: missing")),
        (None, Some(csv)) => read_csv_off_runtime(csv).await?.map_err(list_error)?,
        (Some(RecipientsBody::Csv(text)), None) => read_csv_off_runtime(Bytes::from(text))
            .await?
            .map_err(list_error)?,
        (Some(RecipientsBody::Numbers(numbers)), None) => numbers
            .into_iter()
            .enumerate()
            .map(|(i, number)| Listed {
                row: i + 1,
                number,
                ..Listed::default()
            })
            .collect(),
        (Some(RecipientsBody::People(ids)), None) => {
            let mut listed = Vec::with_capacity(ids.len());
            for (i, id) in ids.into_iter().enumerate() {
                let person = if is_id(&id) {
                    state.store().person(&id).await?
                } else {
                    None
                };
                listed.push(match person {
                    Some(p) => person_row(i + 1, p),
                    None => Listed {
                        row: i + 1,
                        person_id: Some(id),
                        ..Listed::default()
                    },
                });
            }
            listed
        }
        (Some(RecipientsBody::Filter { kind, responsible }), None) => {
            let kind = match kind.as_deref() {
                None => None,
                Some("lead") => Some(PersonKind::Lead),
                Some("contact") => Some(PersonKind::Contact),
                Some(_) => return Err(invalid("recipients.filter.kind: lead or contact")),
            };
            let mut listed = Vec::new();
            let mut before_id = None;
            loop {
                let filter = PersonFilter {
                    kind,
                    responsible: responsible.clone(),
                    before_id: before_id.clone(),
                    limit: Some(1000),
                    ..PersonFilter::default()
                };
                let page = state.store().people(&filter).await?;
                let last = page.last().map(|p| p.id.clone());
                let len = page.len();
                for person in page {
                    let row = listed.len() + 1;
                    listed.push(person_row(row, person));
                }
                if listed.len() > recipients::MAX_RECIPIENTS {
                    return Err(list_error(recipients::ListError::TooLong));
                }
                if len < 1000 {
                    break;
                }
                before_id = last;
            }
            listed
        }
    };
    if listed.is_empty() {
        return Err(list_error(recipients::ListError::Empty));
    }
    if listed.len() > recipients::MAX_RECIPIENTS {
        return Err(list_error(recipients::ListError::TooLong));
    }
    Ok(listed)
}

/// Parsing a long CSV is CPU work: off the async workers, so SIP and RTP never wait on it.
async fn read_csv_off_runtime(
    csv: Bytes,
) -> Result<Result<Vec<Listed>, recipients::ListError>, ApiError> {
    tokio::task::spawn_blocking(move || recipients::read_csv(&csv))
        .await
        .map_err(|_| invalid("recipients: the list could not be read"))
}

fn person_row(row: usize, person: crate::store::PersonRecord) -> Listed {
    Listed {
        row,
        number: person.phones.first().cloned().unwrap_or_default(),
        name: person.name,
        timezone: None,
        person_id: Some(person.id),
    }
}

/// The rows to store: accepted numbers (matched to their CRM person, or a new lead) due now,
/// and rejected rows already done as `invalid_number`. Also how many leads were made.
async fn stored_recipients(
    state: &ApiState,
    checked: &Checked,
    now: DateTime<Utc>,
) -> Result<(Vec<NewRecipient>, usize), ApiError> {
    let mut rows = Vec::with_capacity(checked.accepted.len() + checked.rejected.len());
    let mut leads_created = 0;
    for accepted in &checked.accepted {
        let person_id = match &accepted.listed.person_id {
            Some(id) => id.clone(),
            None => {
                let lead = NewPerson {
                    kind: PersonKind::Lead,
                    name: accepted.listed.name.clone(),
                    title: None,
                    company: None,
                    source: "broadcast".into(),
                    responsible: None,
                    phones: vec![accepted.e164.clone()],
                    emails: Vec::new(),
                };
                let found = state
                    .store()
                    .match_or_create_lead(&accepted.e164, &lead, now)
                    .await?;
                leads_created += usize::from(found.created);
                found.person_id
            }
        };
        rows.push(NewRecipient {
            position: accepted.listed.row as i64,
            raw_number: accepted.listed.number.clone(),
            e164: Some(accepted.e164.clone()),
            name: accepted.listed.name.clone(),
            person_id: Some(person_id),
            zones: accepted.zones.clone(),
            next_attempt_at: Some(now),
            done: None,
            error: None,
        });
    }
    for (listed, rejected) in &checked.rejected {
        rows.push(NewRecipient {
            position: listed.row as i64,
            raw_number: listed.number.clone(),
            e164: None,
            name: listed.name.clone(),
            person_id: listed.person_id.clone(),
            zones: String::new(),
            next_attempt_at: None,
            done: Some("invalid_number".into()),
            error: Some(rejected.error.clone()),
        });
    }
    Ok((rows, leads_created))
}
