//! Store tests: each runs on SQLite (a temp file) and on PostgreSQL (a fresh database per test).
//!
//! PostgreSQL runs when `OPENLINE_TEST_POSTGRES_URL` is set (see `scripts/test-postgres.sh`); with
//! `OPENLINE_REQUIRE_POSTGRES=1` and no URL the PostgreSQL variants fail instead of skipping.

use std::error::Error;
use std::future::Future;

use chrono::{DateTime, Duration, TimeZone, Utc};
use openline::store::{
    ApiTokenRecord, Backend, BindingRecord, CallFilter, DISPOSITION_CRASHED, NewCall, NewLeg,
    OperatorRecord, RatingAverage, RatingFilter, Revoked, Store, StoreError,
};
use sqlx::Connection;

type TestResult = Result<(), Box<dyn Error + Send + Sync>>;

/// A store under test and the URL it was opened with.
#[derive(Clone)]
struct Db {
    store: Store,
    url: String,
}

async fn run_sqlite<F, Fut>(test: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = TestResult>,
{
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("openline.db").display());
    run_on(Backend::Sqlite, url, test).await;
}

async fn run_postgres<F, Fut>(test: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = TestResult>,
{
    let Ok(base_url) = std::env::var("OPENLINE_TEST_POSTGRES_URL") else {
        if std::env::var("OPENLINE_REQUIRE_POSTGRES").as_deref() == Ok("1") {
            panic!("OPENLINE_REQUIRE_POSTGRES=1 but OPENLINE_TEST_POSTGRES_URL is not set");
        }
        eprintln!("skipped: OPENLINE_TEST_POSTGRES_URL is not set");
        return;
    };
    // A fresh database per test, so tests run in parallel and migrations start from nothing.
    let name = format!("openline_t_{}", uuid::Uuid::now_v7().simple());
    let mut admin = sqlx::PgConnection::connect(&base_url)
        .await
        .expect("connect to OPENLINE_TEST_POSTGRES_URL");
    let create = format!("CREATE DATABASE {name}");
    sqlx::query(sqlx::AssertSqlSafe(create))
        .execute(&mut admin)
        .await
        .expect("create test database");
    run_on(Backend::Postgres, with_database(&base_url, &name), test).await;
    let drop = format!("DROP DATABASE {name} WITH (FORCE)");
    sqlx::query(sqlx::AssertSqlSafe(drop))
        .execute(&mut admin)
        .await
        .expect("drop test database");
}

/// Opens the store at `url`, runs `test` on it and closes it; a failure panics naming the backend.
async fn run_on<F, Fut>(backend: Backend, url: String, test: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = TestResult>,
{
    let store = Store::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("{backend}: connect: {e}"));
    assert_eq!(store.backend(), backend);
    let result = test(Db {
        store: store.clone(),
        url,
    })
    .await;
    store.close().await;
    if let Err(e) = result {
        panic!("{backend}: {e}");
    }
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (main, query) = match url.split_once('?') {
        Some((main, query)) => (main, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_end = main.find("://").map_or(0, |i| i + 3);
    let host_part = match main[authority_end..].find('/') {
        Some(slash) => &main[..authority_end + slash],
        None => main,
    };
    format!("{host_part}/{name}{query}")
}

/// Declares `mod NAME { sqlite, postgres }` test pairs for `async fn NAME(db: Db) -> TestResult`.
macro_rules! store_tests {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                crate::run_sqlite(super::$name).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                crate::run_postgres(super::$name).await;
            }
        }
    )*};
}

store_tests!(
    migrations_apply_twice,
    operator_upsert_keeps_status,
    bindings_upsert_remove_expire,
    call_lifecycle,
    legs_lifecycle,
    orphaned_calls_closed_for_this_node_only,
    call_list_filters_and_paging,
    concurrent_calls_never_fail,
    api_tokens,
    api_tokens_created_listed_and_revoked,
    operator_status_reason_and_time,
    call_queue_outcome_and_filters,
    ratings_and_averages,
);

/// Asserts that `$value` matches `$pattern`, printing the value when it does not.
macro_rules! assert_matches {
    ($value:expr, $pattern:pat) => {{
        let value = $value;
        assert!(matches!(value, $pattern), "{value:?}");
    }};
}

/// A call-list filter; `since` and `until` are `t(ms)` offsets.
fn filter(span: Span, num: Option<&str>, limit: Option<i64>, before: Option<String>) -> CallFilter {
    let (since, until) = span;
    CallFilter {
        since: since.map(t),
        until: until.map(t),
        number: num.map(str::to_owned),
        limit,
        before_id: before,
        ..CallFilter::default()
    }
}

/// `since` and `until` of a `filter`, as `t(ms)` offsets.
type Span = (Option<i64>, Option<i64>);
/// No time bounds.
const ANY: Span = (None, None);
/// A minute in milliseconds.
const MIN: i64 = 60_000;

/// 2026-05-01 10:00:00 UTC plus `ms` milliseconds.
fn t(ms: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 10, 0, 0)
        .single()
        .expect("valid time")
        + Duration::milliseconds(ms)
}

/// A UUIDv7 string for a call that started at `at`, as the runtime makes them.
fn call_id(at: DateTime<Utc>) -> String {
    let ts = uuid::Timestamp::from_unix(
        uuid::NoContext,
        at.timestamp() as u64,
        at.timestamp_subsec_nanos(),
    );
    uuid::Uuid::new_v7(ts).to_string()
}

fn new_call(node: &str, caller: &str, callee: &str, started_at: DateTime<Utc>) -> NewCall {
    NewCall {
        id: call_id(started_at),
        node_id: node.into(),
        direction: "inbound".into(),
        caller: caller.into(),
        caller_name: Some("Caller".into()),
        callee: callee.into(),
        started_at,
    }
}

fn new_leg(call_id: &str, sip_call_id: &str, started_at: DateTime<Utc>) -> NewLeg {
    NewLeg {
        call_id: call_id.into(),
        sip_call_id: sip_call_id.into(),
        direction: "inbound".into(),
        local_tag: Some("lt1".into()),
        remote_tag: None,
        remote_uri: "sip:200@127.0.0.1:5070".into(),
        remote_addr: Some("127.0.0.1:5070".into()),
        transport: "udp".into(),
        started_at,
    }
}

fn operator(ext: &str, name: &str, status: &str) -> OperatorRecord {
    OperatorRecord {
        extension: ext.into(),
        name: name.into(),
        realm: "openline".into(),
        ha1_md5: format!("md5-{ext}-{name}"),
        ha1_sha256: format!("sha256-{ext}-{name}"),
        max_calls: 1,
        status: status.into(),
        status_reason: None,
        status_changed_at: Some(t(0)),
    }
}

async fn migrations_apply_twice(db: Db) -> TestResult {
    let call = new_call("n1", "100", "200", t(0));
    db.store.insert_call(&call).await?;
    // Connecting again re-runs the migrator: nothing to apply, data kept.
    for _ in 0..2 {
        let again = Store::connect(&db.url).await?;
        assert_eq!(again.count_calls().await?, 1);
        again.close().await;
    }
    assert_eq!(db.store.count_calls().await?, 1);
    Ok(())
}

async fn operator_upsert_keeps_status(db: Db) -> TestResult {
    let s = &db.store;
    for (ext, name, status) in [("101", "Olena", "online"), ("102", "Petro", "offline")] {
        s.upsert_operator(&operator(ext, name, status)).await?;
    }
    assert!(s.set_operator_status("101", "away", None, t(5_000)).await?);

    let mut changed = operator("101", "Olena K.", "online");
    changed.max_calls = 3;
    s.upsert_operator(&changed).await?;
    let got = s.operator("101").await?.ok_or("operator 101 missing")?;
    // Everything is updated except the status (and since when), which the upsert keeps.
    let (status, status_changed_at) = ("away".to_owned(), Some(t(5_000)));
    let want = OperatorRecord {
        status,
        status_changed_at,
        ..changed
    };
    assert_eq!(got, want);

    let all = s.operators().await?;
    let exts: Vec<_> = all.iter().map(|o| o.extension.as_str()).collect();
    assert_eq!(exts, ["101", "102"]);
    assert_eq!(all[1].status, "offline"); // a new operator takes the given status

    assert!(s.operator("999").await?.is_none());
    assert!(!s.set_operator_status("999", "online", None, t(0)).await?);
    let err = s.set_operator_status("101", "busy", None, t(0)).await.err();
    assert_matches!(err, Some(StoreError::InvalidValue { .. }));
    Ok(())
}

fn binding(ext: &str, contact: &str, expires_at: DateTime<Utc>) -> BindingRecord {
    BindingRecord {
        extension: ext.into(),
        contact_uri: contact.into(),
        received: Some("192.0.2.7:5062".into()),
        transport: "udp".into(),
        call_id: format!("reg-{contact}"),
        cseq: 1,
        expires_at,
        user_agent: Some("baresip".into()),
        node_id: "n1".into(),
    }
}

async fn bindings_upsert_remove_expire(db: Db) -> TestResult {
    let s = &db.store;
    for (ext, host, expires_ms) in [("101", 1, 60_000), ("101", 2, 120_000), ("102", 3, 30_000)] {
        let contact = format!("sip:{ext}@10.0.0.{host}:5062");
        s.upsert_binding(&binding(ext, &contact, t(expires_ms)))
            .await?;
    }

    // Refresh: same (extension, contact) updates in place.
    let mut refreshed = binding("101", "sip:101@10.0.0.1:5062", t(300_000));
    refreshed.cseq = 2;
    refreshed.received = None;
    refreshed.transport = "tcp".into();
    s.upsert_binding(&refreshed).await?;
    let b101 = s.bindings("101").await?;
    assert_eq!(b101.len(), 2);
    assert_eq!(b101[0], refreshed, "latest expiry first, fields round-trip");
    assert_eq!(b101[1].expires_at, t(120_000));

    s.remove_binding("101", "sip:101@10.0.0.2:5062").await?;
    s.remove_binding("101", "sip:nobody@nowhere").await?;
    assert_eq!(s.bindings("101").await?, vec![refreshed.clone()]);

    // Expiry is inclusive of `now`.
    assert_eq!(s.delete_expired_bindings(t(30_000)).await?, 1);
    assert!(s.bindings("102").await?.is_empty());
    assert_eq!(s.delete_expired_bindings(t(30_000)).await?, 0);

    assert_eq!(s.remove_bindings("101").await?, 1);
    assert!(s.bindings("101").await?.is_empty());
    Ok(())
}

async fn call_lifecycle(db: Db) -> TestResult {
    let s = &db.store;
    let call = new_call("n1", "+380441234567", "100", t(250));
    s.insert_call(&call).await?;

    let (open, legs) = s.call(&call.id).await?.ok_or("call missing")?;
    assert!(legs.is_empty());
    assert_eq!(open.started_at, call.started_at);
    assert_eq!(open.caller_name.as_deref(), Some("Caller"));
    assert_eq!((open.ended_at, open.duration_ms), (None, None));

    s.call_answered(&call.id, t(3_250)).await?;
    s.call_answered(&call.id, t(9_999)).await?; // first answer wins
    let (id, caller) = (&call.id, Some("caller"));
    s.call_ended(id, t(65_750), "answered.completed", caller)
        .await?;
    s.call_ended(id, t(99_000), "system.crashed", None).await?; // idempotent: ignored

    let (done, _) = s.call(&call.id).await?.ok_or("call missing")?;
    assert_eq!(done.answered_at, Some(t(3_250)));
    assert_eq!(done.ended_at, Some(t(65_750)));
    assert_eq!(done.duration_ms, Some(65_500), "ended_at - started_at");
    assert_eq!(done.disposition.as_deref(), Some("answered.completed"));
    assert_eq!(done.hangup_by.as_deref(), Some("caller"));

    assert_eq!(s.call("0190a0a0-0000-7000-8000-0000000000").await?, None);
    let err = s.call_ended("no-such-call", t(1), "x.y", None).await.err();
    assert_matches!(err, Some(StoreError::CallNotFound { .. }));
    let err = s.call_answered("no-such-call", t(1)).await.err();
    assert_matches!(err, Some(StoreError::CallNotFound { .. }));
    assert_eq!(s.count_calls().await?, 1);
    Ok(())
}

async fn legs_lifecycle(db: Db) -> TestResult {
    let s = &db.store;
    let call = new_call("n1", "101", "102", t(0));
    s.insert_call(&call).await?;
    let a = s.insert_leg(&new_leg(&call.id, "a@host", t(0))).await?;
    let b = s.insert_leg(&new_leg(&call.id, "b@host", t(40))).await?;
    assert_ne!(a, b);

    s.leg_answered(b, t(2_000), Some("rt-b")).await?;
    s.leg_answered(b, t(3_000), Some("late")).await?; // first answer wins
    s.leg_ended(b, t(10_000), Some(200)).await?;
    s.leg_ended(b, t(11_000), Some(500)).await?; // idempotent
    s.leg_ended(a, t(10_000), None).await?;

    let (_, legs) = s.call(&call.id).await?.ok_or("call missing")?;
    assert_eq!(
        (legs.len(), legs[0].id, legs[0].sip_call_id.as_str()),
        (2, a, "a@host")
    );
    assert_eq!((&legs[0].remote_tag, legs[0].final_status), (&None, None));
    assert_eq!(legs[1].remote_tag.as_deref(), Some("rt-b"));
    assert_eq!(legs[1].answered_at, Some(t(2_000)));
    assert_eq!(legs[1].ended_at, Some(t(10_000)));
    assert_eq!(legs[1].final_status, Some(200));
    assert_eq!(legs[1].local_tag.as_deref(), Some("lt1"));
    assert_eq!(legs[1].remote_addr.as_deref(), Some("127.0.0.1:5070"));

    let err = s.leg_ended(a + b + 1000, t(1), None).await.err();
    assert_matches!(err, Some(StoreError::LegNotFound { .. }));
    let err = s.insert_leg(&new_leg("nope", "x", t(0))).await.err();
    assert_matches!(err, Some(StoreError::Query { .. })); // foreign key
    Ok(())
}

async fn orphaned_calls_closed_for_this_node_only(db: Db) -> TestResult {
    let s = &db.store;
    let open_here = new_call("n1", "1", "2", t(0));
    let ended_here = new_call("n1", "3", "4", t(1_000));
    let open_elsewhere = new_call("n2", "5", "6", t(2_000));
    for c in [&open_here, &ended_here, &open_elsewhere] {
        s.insert_call(c).await?;
    }
    let leg_open = s.insert_leg(&new_leg(&open_here.id, "l1", t(0))).await?;
    let leg_done = s.insert_leg(&new_leg(&open_here.id, "l2", t(10))).await?;
    s.leg_ended(leg_done, t(500), Some(486)).await?;
    let leg_elsewhere = s
        .insert_leg(&new_leg(&open_elsewhere.id, "l3", t(0)))
        .await?;
    let completed = "answered.completed";
    s.call_ended(&ended_here.id, t(5_000), completed, None)
        .await?;

    assert_eq!(s.close_orphaned_calls("n1", t(60_000)).await?, 1);
    assert_eq!(s.close_orphaned_calls("n1", t(70_000)).await?, 0); // idempotent

    let (c, legs) = s.call(&open_here.id).await?.ok_or("missing")?;
    assert_eq!(c.disposition.as_deref(), Some(DISPOSITION_CRASHED));
    assert_eq!(c.hangup_by.as_deref(), Some("system"));
    assert_eq!(c.ended_at, Some(t(60_000)));
    assert_eq!(c.duration_ms, Some(60_000));
    let leg = |id| legs.iter().find(|l| l.id == id).ok_or("leg missing");
    assert_eq!(leg(leg_open)?.ended_at, Some(t(60_000)));
    // An ended leg keeps its end.
    assert_eq!(
        (leg(leg_done)?.ended_at, leg(leg_done)?.final_status),
        (Some(t(500)), Some(486))
    );

    let (c, _) = s.call(&ended_here.id).await?.ok_or("missing")?;
    assert_eq!(
        (c.disposition.as_deref(), c.ended_at),
        (Some(completed), Some(t(5_000)))
    );

    let (c, legs) = s.call(&open_elsewhere.id).await?.ok_or("missing")?;
    // Another node's calls are untouched.
    assert_eq!((c.ended_at, c.disposition), (None, None));
    assert_eq!((legs[0].id, legs[0].ended_at), (leg_elsewhere, None));
    Ok(())
}

async fn call_list_filters_and_paging(db: Db) -> TestResult {
    let s = &db.store;
    // 30 calls one minute apart, half of them with a fractional second to exercise text
    // timestamp ordering on SQLite ("…:00+00:00" vs "…:00.500+00:00").
    let mut ids = Vec::new();
    for i in 0..30_i64 {
        let at = t(i * MIN + if i % 2 == 1 { 500 } else { 0 });
        let caller = if i % 3 == 0 { "+15550001" } else { "+15550002" };
        let callee = if i % 5 == 0 { "+15550001" } else { "100" };
        let c = new_call("n1", caller, callee, at);
        ids.push(c.id.clone());
        s.insert_call(&c).await?;
    }
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    let list = |f: CallFilter| async move {
        s.calls(&f)
            .await
            .map(|v| v.into_iter().map(|c| c.id).collect::<Vec<_>>())
    };

    assert_eq!(list(CallFilter::default()).await?, newest_first);

    // since inclusive, until exclusive, on started_at.
    let window = list(filter((Some(10 * MIN), Some(20 * MIN)), None, None, None)).await?;
    assert_eq!(window, newest_first[10..20].to_vec());
    let since_half = list(filter(
        (Some(MIN + 400), Some(3 * MIN + 500)),
        None,
        None,
        None,
    ))
    .await?;
    assert_eq!(since_half, vec![ids[2].clone(), ids[1].clone()]);

    // number matches caller or callee exactly.
    let matching: Vec<String> = (0..30)
        .rev()
        .filter(|i| i % 3 == 0 || i % 5 == 0)
        .map(|i| ids[i].clone())
        .collect();
    let by_number = list(filter(ANY, Some("+15550001"), None, None)).await?;
    assert_eq!(by_number, matching);
    let none = list(filter(ANY, Some("+1555000"), None, None)).await?;
    assert!(none.is_empty(), "no prefix matching");
    // A value that would break naive string formatting is just a value.
    let hostile = list(filter(ANY, Some("' OR '1'='1"), None, None)).await?;
    assert!(hostile.is_empty());

    // limit clamps to 1..=1000.
    let one = list(filter(ANY, None, Some(0), None)).await?;
    assert_eq!(one, newest_first[..1].to_vec());
    let big = list(filter(ANY, None, Some(1_000_000), None)).await?;
    assert_eq!(big.len(), 30);

    // Keyset paging, combined with a filter.
    let mut pages = Vec::new();
    let mut cursor = None;
    loop {
        let page = list(filter((Some(5 * MIN), None), None, Some(7), cursor)).await?;
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 7);
        cursor = page.last().cloned();
        pages.extend(page);
    }
    assert_eq!(pages, newest_first[..25].to_vec());
    assert_eq!(s.count_calls().await?, 30);
    Ok(())
}

async fn concurrent_calls_never_fail(db: Db) -> TestResult {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200_i64 {
        let s = db.store.clone();
        tasks.spawn(async move {
            let c = new_call(&format!("n{}", i % 3), "100", "200", t(i));
            s.insert_call(&c).await?;
            s.call_answered(&c.id, t(i + 10)).await?;
            s.call_ended(&c.id, t(i + 1_000), "answered.completed", Some("callee"))
                .await?;
            // Reads interleave with the writes.
            s.calls(&filter(ANY, None, Some(5), None)).await?;
            Ok::<_, StoreError>(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined??;
    }
    assert_eq!(db.store.count_calls().await?, 200);
    let all = db.store.calls(&filter(ANY, None, Some(1000), None)).await?;
    assert!(all.iter().all(|c| c.duration_ms == Some(1_000)));
    Ok(())
}

async fn api_tokens(db: Db) -> TestResult {
    let s = &db.store;
    assert_eq!(s.api_token_count().await?, 0);
    let admin = "a".repeat(64);
    let op = "b".repeat(64);
    s.insert_api_token(&admin, "admin", None, "boot").await?;
    let (role, ext, label) = ("operator", Some("101"), "Olena's phone");
    s.insert_api_token(&op, role, ext, label).await?;
    assert_eq!(s.api_token_count().await?, 2);

    let got = s.api_token(&op).await?.ok_or("token missing")?;
    let (role, extension, label) = (role.into(), ext.map(Into::into), label.into());
    assert_eq!(
        got,
        ApiTokenRecord {
            role,
            extension,
            label
        }
    );
    let got = s.api_token(&admin).await?.ok_or("token missing")?;
    assert_eq!((got.role.as_str(), got.extension), ("admin", None));
    assert!(s.api_token(&"c".repeat(64)).await?.is_none());

    let dup = s.insert_api_token(&admin, "manager", None, "x").await.err();
    assert!(dup.as_ref().is_some_and(StoreError::is_unique_violation));
    assert_eq!(dup.map(|e| e.code()), Some("store.conflict"));
    let bad = s.insert_api_token(&op, "root", None, "x").await.err();
    assert_matches!(bad, Some(StoreError::InvalidValue { .. }));
    Ok(())
}

async fn api_tokens_created_listed_and_revoked(db: Db) -> TestResult {
    let s = &db.store;
    let first = s
        .create_api_token(&"a".repeat(64), "admin", None, "first", t(0))
        .await?;
    assert_eq!(
        (first.role.as_str(), first.label.as_str()),
        ("admin", "first")
    );
    assert_eq!(first.created_at, t(0));
    let op = s
        .create_api_token(&"b".repeat(64), "operator", Some("101"), "phone", t(1))
        .await?;
    assert_eq!(op.extension.as_deref(), Some("101"));
    assert_eq!(s.api_tokens().await?, vec![first.clone(), op.clone()]);
    assert_eq!(s.revoke_api_token(first.id).await?, Revoked::LastAdmin);
    assert_eq!(s.revoke_api_token(op.id).await?, Revoked::Done);
    assert_eq!(s.revoke_api_token(op.id).await?, Revoked::NotFound);
    assert!(s.api_token(&"b".repeat(64)).await?.is_none());
    let second = s
        .create_api_token(&"c".repeat(64), "admin", None, "second", t(2))
        .await?;
    assert_eq!(s.revoke_api_token(first.id).await?, Revoked::Done);
    assert_eq!(s.api_tokens().await?, vec![second]);
    Ok(())
}

async fn operator_status_reason_and_time(db: Db) -> TestResult {
    let s = &db.store;
    let mut fresh = operator("101", "Olena", "online");
    fresh.status_changed_at = None;
    s.upsert_operator(&fresh).await?;
    let got = s.operator("101").await?.ok_or("operator 101 missing")?;
    assert!(
        got.status_changed_at.is_some(),
        "a new operator's status starts now"
    );

    let state = |at: i64| async move {
        let o = s.operator("101").await?.ok_or("operator 101 missing")?;
        assert_eq!(o.status_changed_at, Some(t(at)), "{o:?}");
        Ok::<_, Box<dyn Error + Send + Sync>>((o.status, o.status_reason))
    };
    let missed = Some("missed_rings:3");
    assert!(
        s.set_operator_status("101", "away", missed, t(1_000))
            .await?
    );
    let want = ("away".to_owned(), Some("missed_rings:3".to_owned()));
    assert_eq!(state(1_000).await?, want);
    // The same status and reason again keep the time it started.
    assert!(
        s.set_operator_status("101", "away", missed, t(2_000))
            .await?
    );
    assert_eq!(state(1_000).await?, want);
    // A person confirming the status replaces the server's reason: a change.
    assert!(s.set_operator_status("101", "away", None, t(3_000)).await?);
    assert_eq!(state(3_000).await?, ("away".to_owned(), None));
    assert!(
        s.set_operator_status("101", "online", None, t(4_000))
            .await?
    );
    assert_eq!(state(4_000).await?, ("online".to_owned(), None));
    assert!(
        s.set_operator_status("101", "online", None, t(5_000))
            .await?
    );
    assert_eq!(state(4_000).await?, ("online".to_owned(), None));

    // Reloading the configuration keeps status, reason and time.
    assert!(
        s.set_operator_status("101", "away", missed, t(6_000))
            .await?
    );
    s.upsert_operator(&operator("101", "Olena K.", "online"))
        .await?;
    assert_eq!(state(6_000).await?, want);
    Ok(())
}

/// Inserts a call from `caller` to `callee` started at `t(at)`; returns its id.
async fn seed_call(s: &Store, caller: &str, callee: &str, at: i64) -> Result<String, StoreError> {
    let c = new_call("n1", caller, callee, t(at));
    s.insert_call(&c).await?;
    Ok(c.id)
}

async fn call_queue_outcome_and_filters(db: Db) -> TestResult {
    let s = &db.store;
    let bridged = seed_call(s, "+380441230001", "100", 0).await?;
    let overflowed = seed_call(s, "+380441230002", "100", MIN).await?;
    let abandoned = seed_call(s, "+380441230003", "100", 2 * MIN).await?;
    let direct = seed_call(s, "+380441230004", "101", 3 * MIN).await?;
    let internal = seed_call(s, "101", "102", 4 * MIN).await?;

    s.set_call_queue(&bridged, "sales").await?;
    s.set_call_queue_outcome(&bridged, Some("101"), 12_345)
        .await?;
    s.set_call_queue(&overflowed, "sales").await?;
    s.set_call_queue(&overflowed, "support").await?; // overflow: the last queue wins
    s.set_call_queue_outcome(&overflowed, Some("102"), 61_000)
        .await?;
    s.set_call_queue(&abandoned, "sales").await?;
    s.set_call_queue_outcome(&abandoned, None, -5).await?; // clock stepped back: 0
    s.set_call_rating(&bridged, 5).await?;
    s.set_call_rating(&overflowed, 2).await?;

    let (c, _) = s.call(&bridged).await?.ok_or("call missing")?;
    let got = (c.queue.as_deref(), c.operator.as_deref(), c.wait_ms);
    assert_eq!(got, (Some("sales"), Some("101"), Some(12_345)));
    let (c, _) = s.call(&overflowed).await?.ok_or("call missing")?;
    let got = (c.queue.as_deref(), c.operator.as_deref(), c.wait_ms);
    assert_eq!(got, (Some("support"), Some("102"), Some(61_000)));
    let (c, _) = s.call(&abandoned).await?.ok_or("call missing")?;
    assert_eq!(
        (c.queue.as_deref(), c.operator, c.wait_ms),
        (Some("sales"), None, Some(0))
    );
    let (c, _) = s.call(&direct).await?.ok_or("call missing")?;
    assert_eq!((c.queue, c.operator, c.wait_ms), (None, None, None));

    let list = |f: CallFilter| async move {
        s.calls(&f)
            .await
            .map(|v| v.into_iter().map(|c| c.id).collect::<Vec<_>>())
    };
    let text = |v: &str| Some(v.to_owned());
    let by_queue = CallFilter {
        queue: text("sales"),
        ..CallFilter::default()
    };
    assert_eq!(
        list(by_queue).await?,
        [abandoned.as_str(), bridged.as_str()]
    );
    let by_operator = CallFilter {
        operator: text("101"),
        ..CallFilter::default()
    };
    assert_eq!(list(by_operator).await?, [bridged.as_str()]);
    let both = CallFilter {
        queue: text("support"),
        operator: text("101"),
        ..CallFilter::default()
    };
    assert!(list(both).await?.is_empty());
    let by_rating = CallFilter {
        rating: Some(2),
        ..CallFilter::default()
    };
    assert_eq!(list(by_rating).await?, [overflowed.as_str()]);
    // An operator's own calls: caller, callee or the operator who took it from a queue.
    let party = CallFilter {
        party: text("101"),
        ..CallFilter::default()
    };
    assert_eq!(
        list(party).await?,
        [internal.as_str(), direct.as_str(), bridged.as_str()]
    );
    let party_and_number = CallFilter {
        party: text("101"),
        number: text("+380441230001"),
        ..CallFilter::default()
    };
    assert_eq!(list(party_and_number).await?, [bridged.as_str()]);
    Ok(())
}

async fn ratings_and_averages(db: Db) -> TestResult {
    let s = &db.store;
    // (minute, operator, queue, rating): 101 rated 4, 5, 4; 102 rated 2; one IVR-only rating;
    // one call 101 took but nobody rated.
    let calls = [
        (0, Some("101"), Some("sales"), Some(4)),
        (1, Some("102"), Some("support"), Some(2)),
        (2, Some("101"), Some("sales"), Some(5)),
        (3, None, None, Some(3)),
        (4, Some("101"), Some("sales"), None),
        (5, Some("101"), None, Some(4)),
    ];
    let mut ids = Vec::new();
    for (minute, operator, queue, rating) in calls {
        let id = seed_call(s, &format!("+38044123000{minute}"), "100", minute * MIN).await?;
        if let Some(queue) = queue {
            s.set_call_queue(&id, queue).await?;
        }
        s.set_call_queue_outcome(&id, operator, 1_000).await?;
        if let Some(rating) = rating {
            s.set_call_rating(&id, rating).await?;
        }
        ids.push(id);
    }

    let all = s.ratings(&RatingFilter::default()).await?;
    let got: Vec<_> = all.iter().map(|r| (r.call_id.as_str(), r.rating)).collect();
    let want = [
        (&ids[5], 4),
        (&ids[3], 3),
        (&ids[2], 5),
        (&ids[1], 2),
        (&ids[0], 4),
    ];
    let want: Vec<_> = want.iter().map(|(id, r)| (id.as_str(), *r)).collect();
    assert_eq!(got, want, "rated calls only, newest first");
    let first = &all[2];
    assert_eq!(first.operator.as_deref(), Some("101"));
    assert_eq!(first.queue.as_deref(), Some("sales"));
    assert_eq!(first.caller, "+380441230002");
    assert_eq!(first.started_at, t(2 * MIN));
    assert_eq!(
        (all[1].operator.as_deref(), all[1].queue.as_deref()),
        (None, None)
    );

    let averages = s.rating_averages(&RatingFilter::default()).await?;
    assert_eq!(
        averages.len(),
        2,
        "no average for calls no operator took: {averages:?}"
    );
    assert_eq!(
        (averages[0].operator.as_str(), averages[0].count),
        ("101", 3)
    );
    assert!(
        (averages[0].average - 13.0 / 3.0).abs() < 1e-9,
        "{averages:?}"
    );
    let want = RatingAverage {
        operator: "102".into(),
        count: 1,
        average: 2.0,
    };
    assert_eq!(averages[1], want);

    // Filters: operator, since inclusive, until exclusive; limit clamps the list only.
    let f = RatingFilter {
        operator: Some("101".into()),
        since: Some(t(2 * MIN)),
        until: Some(t(5 * MIN)),
        limit: None,
    };
    let got: Vec<_> = s
        .ratings(&f)
        .await?
        .into_iter()
        .map(|r| r.call_id)
        .collect();
    assert_eq!(got, [ids[2].clone()]);
    let averages = s.rating_averages(&f).await?;
    assert_eq!(
        (averages.len(), averages[0].count, averages[0].average),
        (1, 1, 5.0)
    );
    let f = RatingFilter {
        limit: Some(0),
        ..RatingFilter::default()
    };
    assert_eq!(s.ratings(&f).await?.len(), 1);
    assert_eq!(s.rating_averages(&f).await?[0].count, 3);
    let f = RatingFilter {
        operator: Some("' OR '1'='1".into()),
        ..RatingFilter::default()
    };
    assert!(s.ratings(&f).await?.is_empty());
    assert!(s.rating_averages(&f).await?.is_empty());
    Ok(())
}

// SQLite-only checks of how the store opens its file.

#[tokio::test]
async fn sqlite_accepts_dollar_placeholders() -> TestResult {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("p.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await?;
    // `$N` is positional in sqlx's SQLite driver: reused and out of order.
    let got: (String, i64) = sqlx::query_as("SELECT $2 || '-' || $1 || '-' || $2, $3 + $3")
        .bind("a")
        .bind("b")
        .bind(4_i64)
        .fetch_one(&mut conn)
        .await?;
    assert_eq!(got, ("b-a-b".to_owned(), 8));
    Ok(())
}

#[tokio::test]
async fn sqlite_creates_file_and_parent_dir_in_wal_mode() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("nested/deeper/openline.db");
    let url = format!("sqlite://{}", path.display());
    let store = Store::connect(&url).await?;
    assert!(path.exists());
    store.upsert_operator(&operator("1", "A", "online")).await?;
    let mut conn = sqlx::SqliteConnection::connect(&url).await?;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await?;
    assert_eq!(mode, "wal");
    // Timestamps are stored as RFC 3339 text.
    let created: String = sqlx::query_scalar("SELECT created_at FROM operators")
        .fetch_one(&mut conn)
        .await?;
    assert!(DateTime::parse_from_rfc3339(&created).is_ok(), "{created}");
    conn.close().await?;
    store.close().await;
    Ok(())
}

#[tokio::test]
async fn unsupported_urls_are_rejected() {
    let urls = [
        "mysql://localhost/x",
        "sqlite::memory:",
        "sqlite://:memory:",
        "",
    ];
    for url in urls {
        let err = Store::connect(url).await.err();
        assert_eq!(err.map(|e| e.code()), Some("store.invalid_url"), "{url}");
    }
}

#[test]
fn with_database_replaces_the_name() {
    let url = "postgresql://u:p@127.0.0.1:5432/openline_test?sslmode=disable";
    let want = "postgresql://u:p@127.0.0.1:5432/x?sslmode=disable";
    assert_eq!(with_database(url, "x"), want);
    assert_eq!(with_database("postgres://h:1", "x"), "postgres://h:1/x");
}
