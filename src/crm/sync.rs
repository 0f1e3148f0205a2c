//! CRM sync (shell): queues each call's Bitrix24 external-telephony events in the persistent
//! outbox and delivers them to the configured webhook, in order per call, with retries and
//! exponential backoff. Every attempt of an event carries its id in `Idempotency-Key`, so a
//! receiver that processed a request but whose answer was lost drops the repeat.
//!
//! Order per call: `register` first (its answer holds the external CALL_ID), then `finish` and
//! `attachRecord`, which wait until the CALL_ID is known.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::config::CrmSyncConfig;
use crate::crm::bitrix;
use crate::crm::phone::{DefaultCountry, normalize};
use crate::store::{CallRecord, OutboxEvent, Store, StoreError};

/// Recordings larger than this are not sent (FILE_CONTENT travels base64 in one JSON body).
const MAX_ATTACH_BYTES: u64 = 64 << 20;
/// How often the outbox is looked at when nothing is due.
const POLL: Duration = Duration::from_millis(500);
/// Events delivered per outbox query.
const BATCH: i64 = 50;

/// The sync configuration with everything resolved.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// Base URL ending in `/`; `METHOD.json` is appended.
    pub url: String,
    pub default_user_id: u64,
    pub users: BTreeMap<String, u64>,
    pub line_number: Option<String>,
    pub retry_min: Duration,
    pub retry_max: Duration,
    pub give_up_after: Duration,
    pub timeout: Duration,
    pub data_dir: PathBuf,
    pub country: DefaultCountry,
}

impl SyncSettings {
    pub fn new(c: &CrmSyncConfig, data_dir: PathBuf, country: DefaultCountry) -> SyncSettings {
        let mut url = c.url.clone();
        if !url.ends_with('/') {
            url.push('/');
        }
        SyncSettings {
            url,
            default_user_id: c.default_user_id,
            users: c.users.clone(),
            line_number: c.line_number.clone(),
            retry_min: c.retry_min,
            retry_max: c.retry_max,
            give_up_after: c.give_up_after,
            timeout: c.timeout,
            data_dir,
            country,
        }
    }

    /// The Bitrix24 user a call is registered for: its operator's, else the default.
    fn user_id(&self, operator: Option<&str>) -> u64 {
        operator
            .and_then(|ext| self.users.get(ext).copied())
            .unwrap_or(self.default_user_id)
    }

    /// Delay before attempt `attempts + 1`: `retry_min` doubled per attempt, capped.
    pub fn backoff(&self, attempts: i64) -> Duration {
        let factor = 1u32 << attempts.clamp(0, 20);
        self.retry_min.saturating_mul(factor).min(self.retry_max)
    }
}

/// Queues `register` for a call (once). Internal calls (operator to colleague) are not the
/// CRM's business: nothing is queued for them.
pub async fn enqueue_register(
    store: &Store,
    s: &SyncSettings,
    call: &CallRecord,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if call.direction == "internal" {
        return Ok(());
    }
    let raw = if call.direction == "outbound" {
        &call.callee
    } else {
        &call.caller
    };
    let number = normalize(raw, s.country).unwrap_or_else(|_| raw.clone());
    let payload = bitrix::register(call, &number, s.user_id(None), s.line_number.as_deref());
    store
        .enqueue_outbox(
            &format!("register:{}", call.id),
            &call.id,
            bitrix::REGISTER,
            &payload,
            now,
        )
        .await?;
    Ok(())
}

/// Queues everything of an ended call: `register` (if the start was missed), `finish`, and an
/// `attachRecord` per complete recording (recordings completed later queue theirs in the store).
pub async fn enqueue_call(
    store: &Store,
    s: &SyncSettings,
    call: &CallRecord,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if call.direction == "internal" {
        return Ok(());
    }
    enqueue_register(store, s, call, now).await?;
    // The operator who talked (mapped through `[crm_sync] users`) and the caller's rating.
    let rating = call.rating.and_then(|r| u8::try_from(r).ok());
    let finish = bitrix::finish(call, s.user_id(call.operator.as_deref()), rating);
    store
        .enqueue_outbox(
            &format!("finish:{}", call.id),
            &call.id,
            bitrix::FINISH,
            &finish,
            now,
        )
        .await?;
    for rec in store.recordings_for_call(&call.id).await? {
        if rec.status == "complete" {
            store
                .enqueue_outbox(
                    &format!("attach:{}", rec.id),
                    &call.id,
                    bitrix::ATTACH_RECORD,
                    &serde_json::json!({}),
                    now,
                )
                .await?;
        }
    }
    Ok(())
}

/// How one delivery attempt went.
enum Outcome {
    Delivered(Value),
    /// Worth trying again later.
    Retry(String),
    /// Refused for good.
    Refused(String),
    /// Waiting for the call's register answer.
    NotYet,
}

/// Delivers due outbox events until `shutdown` is cancelled.
pub async fn run(store: Store, s: SyncSettings, shutdown: CancellationToken) {
    // rustls without a bundled provider: ring is the one we ship (no aws-lc, no OpenSSL).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = match reqwest::Client::builder().timeout(s.timeout).build() {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "CRM sync disabled: cannot build the HTTP client");
            return;
        }
    };
    tracing::info!("CRM sync running");
    while !shutdown.is_cancelled() {
        let due = match store.due_outbox(Utc::now(), BATCH).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "CRM sync cannot read the outbox");
                Vec::new()
            }
        };
        for event in &due {
            if shutdown.is_cancelled() {
                return;
            }
            if let Err(e) = deliver(&store, &s, &client, event).await {
                tracing::warn!(error = %e, event = %event.id, "CRM sync cannot update the outbox");
            }
        }
        if (due.len() as i64) < BATCH {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }
}

async fn deliver(
    store: &Store,
    s: &SyncSettings,
    client: &reqwest::Client,
    event: &OutboxEvent,
) -> Result<(), StoreError> {
    let now = Utc::now();
    let age = (now - event.created_at).to_std().unwrap_or_default();
    let outcome = if age > s.give_up_after {
        Outcome::Refused(format!("given up after {}s", age.as_secs()))
    } else {
        attempt(store, s, client, event).await?
    };
    match outcome {
        Outcome::Delivered(answer) => {
            if event.method == bitrix::REGISTER {
                match bitrix::call_id_of(&answer) {
                    Some(external) => {
                        store
                            .set_sync_external_id(&event.call_id, &external, now)
                            .await?
                    }
                    None => {
                        let error = "register answer without result.CALL_ID";
                        return store.outbox_failed(&event.id, error, now).await;
                    }
                }
            }
            metrics::counter!("openline_crm_sync_delivered_total").increment(1);
            store.outbox_delivered(&event.id, now).await
        }
        Outcome::Retry(error) => {
            metrics::counter!("openline_crm_sync_retries_total").increment(1);
            let next = now + s.backoff(event.attempts);
            tracing::debug!(event = %event.id, %error, "CRM sync attempt failed; retrying");
            store.outbox_retry(&event.id, &error, next).await
        }
        Outcome::NotYet => {
            let next = now + s.retry_min;
            store
                .outbox_retry(&event.id, "waiting for register", next)
                .await
        }
        Outcome::Refused(error) => {
            metrics::counter!("openline_crm_sync_failed_total").increment(1);
            tracing::warn!(event = %event.id, method = %event.method, %error, "CRM sync event given up");
            store.outbox_failed(&event.id, &error, now).await
        }
    }
}

async fn attempt(
    store: &Store,
    s: &SyncSettings,
    client: &reqwest::Client,
    event: &OutboxEvent,
) -> Result<Outcome, StoreError> {
    let mut payload = event.payload.clone();
    if event.method != bitrix::REGISTER {
        let Some(external) = store.sync_external_id(&event.call_id).await? else {
            let register = store.outbox_for_call(&event.call_id).await?;
            let register_failed = register
                .iter()
                .any(|e| e.method == bitrix::REGISTER && e.status == "failed");
            return Ok(if register_failed {
                Outcome::Refused("the call's register event failed".into())
            } else {
                Outcome::NotYet
            });
        };
        payload["CALL_ID"] = Value::String(external);
    }
    if event.method == bitrix::ATTACH_RECORD {
        let recording_id = event.dedupe_key.trim_start_matches("attach:");
        let Some(rec) = store.recording(recording_id).await? else {
            return Ok(Outcome::Refused("the recording is gone".into()));
        };
        let Some(path) = rec.file_in(&s.data_dir) else {
            return Ok(Outcome::Refused("the recording path is not valid".into()));
        };
        match tokio::fs::metadata(&path).await {
            Ok(meta) if meta.len() > MAX_ATTACH_BYTES => {
                return Ok(Outcome::Refused(
                    "the recording is too large to send".into(),
                ));
            }
            Err(e) => return Ok(Outcome::Refused(format!("cannot read the recording: {e}"))),
            Ok(_) => {}
        }
        let bytes = match tokio::fs::read(&path).await {
            Ok(bytes) => bytes,
            Err(e) => return Ok(Outcome::Retry(format!("cannot read the recording: {e}"))),
        };
        payload["FILENAME"] = Value::String(format!("{}.wav", rec.call_id));
        payload["FILE_CONTENT"] =
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes));
    }
    Ok(post(client, s, event, &payload).await)
}

async fn post(
    client: &reqwest::Client,
    s: &SyncSettings,
    event: &OutboxEvent,
    payload: &Value,
) -> Outcome {
    let url = format!("{}{}.json", s.url, event.method);
    let response = client
        .post(url)
        .header("Idempotency-Key", &event.id)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(payload.to_string())
        .send()
        .await;
    let response = match response {
        Ok(r) => r,
        Err(e) => return Outcome::Retry(format!("request failed: {}", redacted(e, &s.url))),
    };
    let status = response.status();
    let body = match response.bytes().await {
        Ok(body) => body,
        Err(e) => return Outcome::Retry(format!("answer cut off: {}", redacted(e, &s.url))),
    };
    let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let error = bitrix::error_of(&answer);
    if status.is_success() && error.is_none() {
        Outcome::Delivered(answer)
    } else {
        let why = format!("HTTP {}: {}", status.as_u16(), error.unwrap_or_default());
        if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
            Outcome::Retry(why)
        } else {
            Outcome::Refused(why)
        }
    }
}

/// An HTTP error as it may be stored in the outbox and logged: without the webhook URL, whose
/// path carries the Bitrix24 webhook's secret (`/rest/1/SECRET/`), and with its cause.
fn redacted(e: reqwest::Error, url: &str) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    // A cause may still quote the URL: scrub it, with and without its scheme.
    let bare = url.split_once("://").map_or(url, |(_, rest)| rest);
    for secret in [
        url,
        url.trim_end_matches('/'),
        bare,
        bare.trim_end_matches('/'),
    ] {
        if secret.len() > 3 {
            text = text.replace(secret, "<crm url>");
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (review of 832cd51): the outbox row's error quoted the webhook URL with its
    /// secret.
    #[tokio::test]
    async fn delivery_errors_never_quote_the_webhook_url() {
        let url = "http://127.0.0.1:9/rest/1/s3cr3tw3bh00k/";
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::new();
        let e = client
            .post(format!("{url}telephony.externalcall.register.json"))
            .send()
            .await
            .expect_err("nothing listens on the discard port");
        assert!(
            e.to_string().contains("s3cr3tw3bh00k"),
            "the raw error has it: {e}"
        );
        let text = redacted(e, url);
        assert!(!text.contains("s3cr3tw3bh00k"), "{text}");
        assert!(!text.is_empty());
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let config: CrmSyncConfig = toml::from_str(
            "url = \"http://127.0.0.1:1/rest\"\nretry_min = \"1s\"\nretry_max = \"10s\"",
        )
        .expect("config");
        let s = SyncSettings::new(
            &config,
            PathBuf::from("data"),
            DefaultCountry::parse("UA").expect("UA"),
        );
        assert_eq!(s.url, "http://127.0.0.1:1/rest/");
        assert_eq!(s.backoff(0), Duration::from_secs(1));
        assert_eq!(s.backoff(2), Duration::from_secs(4));
        assert_eq!(s.backoff(50), Duration::from_secs(10));
        assert_eq!(s.user_id(Some("999")), 1);
    }
}
