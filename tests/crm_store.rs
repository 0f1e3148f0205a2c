//! CRM storage tests (acceptance 1 of the CRM issue), each on SQLite and on PostgreSQL with a fresh
//! database: unknown caller → one lead with the call on its timeline; 50 concurrent
//! match-or-create attempts → one lead; a contact's call lands on the contact; conversion keeps
//! the timeline; notations match; erasure; plus recordings, sessions, idempotency keys, the sync
//! outbox and the retention sweep.

mod common;

use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use openline::config::RetentionConfig;
use openline::crm::DefaultCountry;
use openline::crm::worker::{CrmSettings, link};
use openline::store::{
    CallRecord, ERASED, IdempotencyState, NewCall, NewLeg, NewPerson, NewRecording, PersonFilter,
    PersonKind, Store,
};
use serde_json::json;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

macro_rules! both {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $name() {
            crate::common::on_both(crate::$name).await;
        }
    )*};
}

mod on_sqlite_and_postgres {
    both!(
        unknown_caller_gets_one_lead_with_the_call,
        fifty_concurrent_attempts_make_one_lead,
        a_contacts_call_lands_on_the_contact,
        conversion_keeps_the_timeline,
        notations_of_one_number_match,
        erasure_removes_the_person_and_recordings,
        crash_closed_calls_are_backfilled,
        recordings_lifecycle,
        sessions_and_idempotency_keys,
        outbox_events,
        a_rated_queue_call_finishes_with_its_operators_user_and_vote,
        retention_sweep,
        people_lists_filter_and_page,
    );
}

fn settings() -> CrmSettings {
    CrmSettings {
        country: DefaultCountry::parse("UA").expect("UA"),
        sync: None,
    }
}

/// Stores an inbound call from `caller` that ended, and returns its row.
async fn ended_call(store: &Store, caller: &str, name: Option<&str>) -> CallRecord {
    let started_at = Utc::now();
    let id = uuid::Uuid::now_v7().to_string();
    store
        .insert_call(&NewCall {
            id: id.clone(),
            node_id: "node-a".into(),
            direction: "inbound".into(),
            caller: caller.into(),
            caller_name: name.map(str::to_owned),
            callee: "100".into(),
            started_at,
        })
        .await
        .expect("insert call");
    store
        .insert_leg(&NewLeg {
            call_id: id.clone(),
            sip_call_id: format!("{id}@test"),
            direction: "inbound".into(),
            local_tag: None,
            remote_tag: None,
            remote_uri: format!("sip:{caller}@127.0.0.1"),
            remote_addr: Some("127.0.0.1:5070".into()),
            transport: "udp".into(),
            started_at,
        })
        .await
        .expect("insert leg");
    store
        .call_ended(
            &id,
            started_at + Duration::seconds(3),
            "answered.caller_hangup",
            Some("caller"),
        )
        .await
        .expect("end call");
    store.call(&id).await.expect("call").expect("exists").0
}

fn person(kind: PersonKind, name: &str, phones: &[&str]) -> NewPerson {
    NewPerson {
        kind,
        name: Some(name.into()),
        title: None,
        company: None,
        source: "api".into(),
        responsible: None,
        phones: phones.iter().map(|p| p.to_string()).collect(),
        emails: vec![format!("{}@example.com", name.to_lowercase())],
    }
}

async fn leads(store: &Store) -> Vec<openline::store::PersonRecord> {
    store
        .people(&PersonFilter {
            kind: Some(PersonKind::Lead),
            ..PersonFilter::default()
        })
        .await
        .expect("people")
}

async fn unknown_caller_gets_one_lead_with_the_call(
    store: Store,
    _: std::path::PathBuf,
) -> TestResult {
    let call = ended_call(&store, "+380 44 123-45-67", Some("Olena")).await;
    link(&store, &settings(), &call, false).await?;
    // A repeat (the backfill after a restart) changes nothing.
    link(&store, &settings(), &call, false).await?;
    let leads = leads(&store).await;
    assert_eq!(leads.len(), 1, "{leads:?}");
    let lead = &leads[0];
    assert_eq!(lead.phones, vec!["+380441234567"]);
    assert_eq!(lead.source, "telephony");
    assert_eq!(
        lead.title.as_deref(),
        Some("Incoming call from +380441234567")
    );
    let timeline = store.timeline(&lead.id, None, 100).await?;
    assert_eq!(timeline.len(), 1);
    assert_eq!(timeline[0].kind, "call");
    assert_eq!(timeline[0].call_id.as_deref(), Some(call.id.as_str()));
    assert_eq!(timeline[0].data["number"], "+380441234567");
    assert_eq!(timeline[0].data["disposition"], "answered.caller_hangup");
    assert_eq!(store.call_person(&call.id).await?, Some(lead.id.clone()));
    Ok(())
}

async fn fifty_concurrent_attempts_make_one_lead(
    store: Store,
    _: std::path::PathBuf,
) -> TestResult {
    let lead = person(PersonKind::Lead, "Race", &["+380501112233"]);
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let store = store.clone();
        let lead = lead.clone();
        tasks.push(tokio::spawn(async move {
            store
                .match_or_create_lead("+380501112233", &lead, Utc::now())
                .await
        }));
    }
    let mut ids = std::collections::HashSet::new();
    let mut created = 0;
    for task in tasks {
        let found = task.await??;
        created += usize::from(found.created);
        ids.insert(found.person_id);
    }
    assert_eq!(ids.len(), 1, "every attempt got the same lead");
    assert_eq!(created, 1, "exactly one attempt created it");
    assert_eq!(leads(&store).await.len(), 1);
    Ok(())
}

async fn a_contacts_call_lands_on_the_contact(store: Store, _: std::path::PathBuf) -> TestResult {
    let contact = store
        .create_person(
            &person(PersonKind::Contact, "Taras", &["+380441234567"]),
            Utc::now(),
        )
        .await?;
    // A lead with the same number exists too: the contact wins.
    store
        .create_person(
            &person(PersonKind::Lead, "Old lead", &["+380441234567"]),
            Utc::now(),
        )
        .await?;
    let call = ended_call(&store, "044 123 4567", None).await;
    link(&store, &settings(), &call, false).await?;
    assert_eq!(store.call_person(&call.id).await?, Some(contact.id.clone()));
    assert_eq!(store.timeline(&contact.id, None, 10).await?.len(), 1);
    assert_eq!(leads(&store).await.len(), 1, "no new lead");
    Ok(())
}

async fn conversion_keeps_the_timeline(store: Store, _: std::path::PathBuf) -> TestResult {
    let first = ended_call(&store, "+380671234567", None).await;
    link(&store, &settings(), &first, false).await?;
    let lead_id = store.call_person(&first.id).await?.expect("on a lead");
    let contact = store
        .convert_lead(&lead_id, Utc::now())
        .await?
        .expect("converted");
    assert_eq!(contact.id, lead_id);
    assert_eq!(contact.kind, PersonKind::Contact);
    assert!(contact.converted_at.is_some());
    assert!(
        store.convert_lead(&lead_id, Utc::now()).await?.is_none(),
        "twice is a no-op"
    );
    let second = ended_call(&store, "0671234567", None).await;
    link(&store, &settings(), &second, false).await?;
    let timeline = store.timeline(&lead_id, None, 10).await?;
    assert_eq!(timeline.len(), 2, "old and new call on the contact");
    assert_eq!(timeline[0].call_id.as_deref(), Some(second.id.as_str()));
    assert!(leads(&store).await.is_empty());
    Ok(())
}

async fn notations_of_one_number_match(store: Store, _: std::path::PathBuf) -> TestResult {
    for notation in [
        "+380 44 123-45-67",
        "044 123 4567",
        "380441234567",
        "(044) 123-45-67",
    ] {
        let call = ended_call(&store, notation, None).await;
        link(&store, &settings(), &call, false).await?;
    }
    let leads = leads(&store).await;
    assert_eq!(leads.len(), 1, "{leads:?}");
    let timeline = store.timeline(&leads[0].id, None, 10).await?;
    assert_eq!(timeline.len(), 4);
    // Paging: two entries, then the rest after the cursor.
    let page = store.timeline(&leads[0].id, None, 2).await?;
    let rest = store
        .timeline(&leads[0].id, Some(page[1].id.as_str()), 10)
        .await?;
    assert_eq!(page.len() + rest.len(), 4);
    assert!(rest.iter().all(|e| page.iter().all(|p| p.id != e.id)));
    // Extensions and names never become CRM entries.
    let internal = ended_call(&store, "101", None).await;
    link(&store, &settings(), &internal, false).await?;
    assert_eq!(store.call_person(&internal.id).await?, None);
    Ok(())
}

async fn write_wav(dir: &Path, rel: &str) {
    let path = dir.join(rel);
    tokio::fs::create_dir_all(path.parent().expect("parent"))
        .await
        .expect("mkdir");
    tokio::fs::write(&path, b"RIFF....WAVEfmt ")
        .await
        .expect("write");
}

async fn recording_for(store: &Store, call: &CallRecord, rel: &str) -> String {
    let id = uuid::Uuid::now_v7().to_string();
    store
        .insert_recording(&NewRecording {
            id: id.clone(),
            call_id: call.id.clone(),
            path: rel.into(),
            format: "wav".into(),
            channels: 1,
            sample_rate: 8000,
            created_at: call.started_at,
        })
        .await
        .expect("insert recording");
    store
        .recording_completed(&id, 3000, 16, Utc::now())
        .await
        .expect("complete");
    id
}

async fn erasure_removes_the_person_and_recordings(
    store: Store,
    dir: std::path::PathBuf,
) -> TestResult {
    let call = ended_call(&store, "+380631112233", Some("Secret Name")).await;
    link(&store, &settings(), &call, false).await?;
    let other = ended_call(&store, "+380631119999", Some("Someone else")).await;
    link(&store, &settings(), &other, false).await?;
    let rel = format!("recordings/{}.wav", call.id);
    write_wav(&dir, &rel).await;
    let rec = recording_for(&store, &call, &rel).await;
    let person_id = store.call_person(&call.id).await?.expect("linked");

    let erasure = store.erase_person(&person_id).await?.expect("erased");
    assert_eq!(erasure.calls_anonymised, 1);
    assert_eq!(erasure.recording_paths, vec![rel]);
    assert!(store.person(&person_id).await?.is_none());
    assert!(store.timeline(&person_id, None, 10).await?.is_empty());
    assert!(store.recording(&rec).await?.is_none());
    let numbers = store
        .people(&PersonFilter {
            number: Some("+380631112233".into()),
            ..PersonFilter::default()
        })
        .await?;
    assert!(numbers.is_empty());
    let (kept, legs) = store
        .call(&call.id)
        .await?
        .expect("call stays for statistics");
    assert_eq!(kept.caller, ERASED);
    assert_eq!(kept.caller_name, None);
    assert_eq!(kept.duration_ms, call.duration_ms);
    assert_eq!(kept.disposition, call.disposition);
    assert!(
        legs.iter()
            .all(|l| l.remote_uri == ERASED && l.remote_addr.is_none())
    );
    let (untouched, _) = store.call(&other.id).await?.expect("other call");
    assert_eq!(untouched.caller, "+380631119999");
    assert!(store.erase_person(&person_id).await?.is_none());
    Ok(())
}

async fn crash_closed_calls_are_backfilled(store: Store, _: std::path::PathBuf) -> TestResult {
    let id = uuid::Uuid::now_v7().to_string();
    store
        .insert_call(&NewCall {
            id: id.clone(),
            node_id: "node-crash".into(),
            direction: "inbound".into(),
            caller: "+380931234567".into(),
            caller_name: None,
            callee: "100".into(),
            started_at: Utc::now(),
        })
        .await?;
    assert_eq!(
        store.close_orphaned_calls("node-crash", Utc::now()).await?,
        1
    );
    let unlinked = store.unlinked_ended_calls(100).await?;
    assert_eq!(unlinked.len(), 1);
    link(&store, &settings(), &unlinked[0], false).await?;
    assert!(store.unlinked_ended_calls(100).await?.is_empty());
    let person = store.call_person(&id).await?.expect("on a lead");
    let timeline = store.timeline(&person, None, 10).await?;
    assert_eq!(timeline[0].data["disposition"], "system.crashed");
    Ok(())
}

async fn recordings_lifecycle(store: Store, _: std::path::PathBuf) -> TestResult {
    let call = ended_call(&store, "+380441234567", None).await;
    let id = uuid::Uuid::now_v7().to_string();
    store
        .insert_recording(&NewRecording {
            id: id.clone(),
            call_id: call.id.clone(),
            path: "recordings/a.wav".into(),
            format: "wav".into(),
            channels: 2,
            sample_rate: 8000,
            created_at: Utc::now(),
        })
        .await?;
    let rec = store.recording(&id).await?.expect("row");
    assert_eq!(rec.status, "recording");
    assert!(
        store
            .latest_recordings(std::slice::from_ref(&call.id))
            .await?
            .is_empty()
    );
    store
        .recording_completed(&id, 1234, 5678, Utc::now())
        .await?;
    let rec = store.recording(&id).await?.expect("row");
    assert_eq!(
        (rec.status.as_str(), rec.duration_ms, rec.size_bytes),
        ("complete", Some(1234), Some(5678))
    );
    assert_eq!(
        store
            .latest_recordings(std::slice::from_ref(&call.id))
            .await?
            .get(&call.id),
        Some(&id)
    );
    let failed = uuid::Uuid::now_v7().to_string();
    store
        .insert_recording(&NewRecording {
            id: failed.clone(),
            call_id: call.id.clone(),
            path: "recordings/b.wav".into(),
            format: "wav".into(),
            channels: 1,
            sample_rate: 8000,
            created_at: Utc::now(),
        })
        .await?;
    store
        .recording_failed(&failed, "media.disk_full", Utc::now())
        .await?;
    let all = store.recordings_for_call(&call.id).await?;
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].error.as_deref(), Some("media.disk_full"));
    assert!(
        store
            .recording_completed("nope", 1, 1, Utc::now())
            .await
            .is_err()
    );
    assert!(rec.file_in(Path::new("/data")).is_some());
    let mut evil = rec.clone();
    evil.path = "../etc/passwd".into();
    assert!(evil.file_in(Path::new("/data")).is_none());
    evil.path = "/etc/passwd".into();
    assert!(evil.file_in(Path::new("/data")).is_none());
    Ok(())
}

async fn sessions_and_idempotency_keys(store: Store, _: std::path::PathBuf) -> TestResult {
    let now = Utc::now();
    store
        .insert_api_token("tokhash", "manager", None, "test")
        .await?;
    store
        .insert_session("sess", "tokhash", "csrf1", now, now + Duration::hours(1))
        .await?;
    let session = store.session("sess", now).await?.expect("session");
    assert_eq!(
        (session.token.role.as_str(), session.csrf.as_str()),
        ("manager", "csrf1")
    );
    assert!(
        store
            .session("sess", now + Duration::hours(2))
            .await?
            .is_none()
    );
    store.delete_session("sess").await?;
    assert!(store.session("sess", now).await?.is_none());

    assert_eq!(
        store.claim_idempotency_key("p", "k", "req", now).await?,
        IdempotencyState::Claimed
    );
    assert!(matches!(
        store.claim_idempotency_key("p", "k", "req", now).await?,
        IdempotencyState::InProgress { .. }
    ));
    store.finish_idempotency_key("p", "k", 201, "{}").await?;
    assert_eq!(
        store.claim_idempotency_key("p", "k", "req", now).await?,
        IdempotencyState::Done {
            request_sha256: "req".into(),
            status: 201,
            body: "{}".into()
        }
    );
    // Keys are per credential.
    assert_eq!(
        store
            .claim_idempotency_key("other", "k", "req", now)
            .await?,
        IdempotencyState::Claimed
    );
    store.release_idempotency_key("other", "k").await?;
    assert_eq!(
        store
            .claim_idempotency_key("other", "k", "req", now)
            .await?,
        IdempotencyState::Claimed
    );
    Ok(())
}

async fn outbox_events(store: Store, _: std::path::PathBuf) -> TestResult {
    let call = ended_call(&store, "+380441234567", None).await;
    let now = Utc::now();
    let payload = serde_json::json!({"PHONE_NUMBER": "+380441234567"});
    assert!(
        store
            .enqueue_outbox("register:x", &call.id, "m.register", &payload, now)
            .await?
    );
    assert!(
        !store
            .enqueue_outbox("register:x", &call.id, "m.register", &payload, now)
            .await?
    );
    let due = store.due_outbox(now, 10).await?;
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].payload, payload);
    store
        .outbox_retry(&due[0].id, "down", now + Duration::seconds(60))
        .await?;
    assert!(store.due_outbox(now, 10).await?.is_empty());
    let due_at = store.next_outbox_due().await?.map(|t| t.timestamp_millis());
    assert_eq!(
        due_at,
        Some((now + Duration::seconds(60)).timestamp_millis())
    );
    store.outbox_delivered(&due[0].id, now).await?;
    let events = store.outbox_for_call(&call.id).await?;
    assert_eq!((events[0].status.as_str(), events[0].attempts), ("done", 2));
    store.set_sync_external_id(&call.id, "ext-1", now).await?;
    store.set_sync_external_id(&call.id, "ext-2", now).await?;
    assert_eq!(
        store.sync_external_id(&call.id).await?.as_deref(),
        Some("ext-1")
    );
    Ok(())
}

/// Regression (review of 832cd51): `finish` was sent for the default user without `VOTE`,
/// ignoring the `[crm_sync] users` map and the caller's rating; the timeline entry had the queue,
/// operator and rating as null.
async fn a_rated_queue_call_finishes_with_its_operators_user_and_vote(
    store: Store,
    dir: std::path::PathBuf,
) -> TestResult {
    let call = ended_call(&store, "+380441234567", None).await;
    store.set_call_queue(&call.id, "sales").await?;
    store
        .set_call_queue_outcome(&call.id, Some("101"), 4200)
        .await?;
    store.set_call_rating(&call.id, 4).await?;
    let (call, _) = store.call(&call.id).await?.expect("the call");
    let sync = openline::crm::sync::SyncSettings {
        url: "http://127.0.0.1:9/rest/".into(),
        default_user_id: 1,
        users: [("101".to_string(), 42u64)].into(),
        line_number: None,
        retry_min: std::time::Duration::from_secs(1),
        retry_max: std::time::Duration::from_secs(60),
        give_up_after: std::time::Duration::from_secs(3600),
        timeout: std::time::Duration::from_secs(5),
        data_dir: dir,
        country: DefaultCountry::parse("UA").expect("UA"),
    };
    let crm = CrmSettings {
        country: DefaultCountry::parse("UA").expect("UA"),
        sync: Some(sync),
    };
    link(&store, &crm, &call, true).await?;
    let events = store.outbox_for_call(&call.id).await?;
    let finish = events
        .iter()
        .find(|e| e.method == "telephony.externalcall.finish")
        .expect("a finish event");
    assert_eq!(finish.payload["USER_ID"], 42, "{}", finish.payload);
    assert_eq!(finish.payload["VOTE"], 4, "{}", finish.payload);
    let person = store
        .match_number("+380441234567")
        .await?
        .expect("a lead for the caller");
    let timeline = store.timeline(&person.person_id, None, 10).await?;
    let data = &timeline[0].data;
    assert_eq!(
        (
            &data["queue"],
            &data["operator"],
            &data["rating"],
            &data["wait_ms"]
        ),
        (&json!("sales"), &json!("101"), &json!(4), &json!(4200)),
        "{data}"
    );
    Ok(())
}

async fn retention_sweep(store: Store, dir: std::path::PathBuf) -> TestResult {
    let old = ended_call(&store, "+380441234567", None).await;
    link(&store, &settings(), &old, false).await?;
    let rel = format!("recordings/{}.wav", old.id);
    write_wav(&dir, &rel).await;
    recording_for(&store, &old, &rel).await;
    let config = RetentionConfig {
        recordings: Some(std::time::Duration::from_secs(3600)),
        calls: Some(std::time::Duration::from_secs(7200)),
        sweep_every: std::time::Duration::from_secs(86_400),
    };
    let sweep = |at: DateTime<Utc>| {
        let store = store.clone();
        let config = config.clone();
        let dir = dir.clone();
        async move { openline::runtime::retention::sweep(&store, &config, &dir, at).await }
    };
    let report = sweep(Utc::now()).await?;
    assert_eq!((report.recordings, report.calls), (0, 0));
    let report = sweep(Utc::now() + Duration::minutes(90)).await?;
    assert_eq!((report.recordings, report.calls), (1, 0));
    assert!(!dir.join(&rel).exists(), "file deleted");
    let report = sweep(Utc::now() + Duration::hours(3)).await?;
    assert_eq!(report.calls, 1);
    assert!(store.call(&old.id).await?.is_none());
    // The timeline entry stays as a snapshot without its call.
    let lead = &leads(&store).await[0];
    let timeline = store.timeline(&lead.id, None, 10).await?;
    assert_eq!(timeline.len(), 1);
    assert_eq!(timeline[0].call_id, None);
    Ok(())
}

async fn people_lists_filter_and_page(store: Store, _: std::path::PathBuf) -> TestResult {
    for i in 0..5 {
        store
            .create_person(
                &person(
                    PersonKind::Contact,
                    &format!("C{i}"),
                    &[&format!("+38044123456{i}")],
                ),
                Utc::now(),
            )
            .await?;
    }
    let page = store
        .people(&PersonFilter {
            kind: Some(PersonKind::Contact),
            limit: Some(3),
            ..PersonFilter::default()
        })
        .await?;
    assert_eq!(page.len(), 3);
    assert_eq!(page[0].name.as_deref(), Some("C4"), "newest first");
    let rest = store
        .people(&PersonFilter {
            kind: Some(PersonKind::Contact),
            before_id: Some(page[2].id.clone()),
            ..PersonFilter::default()
        })
        .await?;
    assert_eq!(rest.len(), 2);
    let one = store
        .people(&PersonFilter {
            number: Some("+380441234562".into()),
            ..PersonFilter::default()
        })
        .await?;
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].emails, vec!["c2@example.com"]);
    // One lead per number.
    store
        .create_person(
            &person(PersonKind::Lead, "L", &["+380441230000"]),
            Utc::now(),
        )
        .await?;
    let again = store
        .create_person(
            &person(PersonKind::Lead, "L2", &["+380441230000"]),
            Utc::now(),
        )
        .await;
    assert!(
        matches!(again, Err(openline::store::StoreError::NumberTaken)),
        "{again:?}"
    );
    Ok(())
}
