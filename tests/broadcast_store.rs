//! The broadcasts repository on SQLite and PostgreSQL: claims are exclusive even when two nodes
//! claim at once (`FOR UPDATE SKIP LOCKED` on PostgreSQL), finishing an attempt moves its
//! recipient on exactly once, crash repair finds what a dead node left, and the counts add up.

mod common;

use std::collections::HashSet;
use std::path::PathBuf;

use chrono::{DateTime, Duration, Utc};
use openline::store::{
    AttemptEnd, ClaimedAttempt, NewBroadcast, NewRecipient, RecipientNext, Store,
};

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
        two_nodes_claiming_at_once_never_share_a_recipient,
        finishing_moves_the_recipient_on_once,
        crash_repair_finds_open_attempts_and_expired_leases,
        progress_cancel_and_state_changes,
    );
}

fn t0() -> DateTime<Utc> {
    "2026-12-02T10:00:00Z".parse().unwrap()
}

/// A running campaign with `n` callable recipients (+38044123NNNN) and one invalid row.
async fn campaign(store: &Store, n: usize) -> Result<String, openline::store::StoreError> {
    let id = uuid::Uuid::now_v7().to_string();
    let mut recipients: Vec<NewRecipient> = (0..n)
        .map(|i| NewRecipient {
            position: i as i64 + 1,
            raw_number: format!("+38044123{i:04}"),
            e164: Some(format!("+38044123{i:04}")),
            name: Some(format!("Person {i}")),
            person_id: None,
            zones: "Europe/Kyiv".into(),
            next_attempt_at: Some(t0()),
            done: None,
            error: None,
        })
        .collect();
    recipients.push(NewRecipient {
        position: n as i64 + 1,
        raw_number: "hello".into(),
        e164: None,
        name: None,
        person_id: None,
        zones: String::new(),
        next_attempt_at: None,
        done: Some("invalid_number".into()),
        error: Some("\"hello\" is not a phone number".into()),
    });
    store
        .create_broadcast(
            &NewBroadcast {
                id: id.clone(),
                name: "Test".into(),
                state: "running".into(),
                trunk: "carrier".into(),
                caller_id: None,
                concurrency: 10,
                cps: 5.0,
                settings: "{}".into(),
                created_by: Some("manager".into()),
                created_at: t0(),
            },
            &recipients,
        )
        .await?;
    Ok(id)
}

fn end(claim: &ClaimedAttempt, outcome: &str, at: DateTime<Utc>) -> AttemptEnd {
    AttemptEnd {
        attempt_id: claim.attempt_id.clone(),
        recipient_id: claim.recipient_id,
        call_id: Some(format!("call-{}", claim.attempt_id)),
        ended_at: at,
        outcome: outcome.into(),
        ..AttemptEnd::default()
    }
}

async fn two_nodes_claiming_at_once_never_share_a_recipient(
    store: Store,
    _: PathBuf,
) -> TestResult {
    let id = campaign(&store, 200).await?;
    store
        .add_do_not_call("+380441230007", "manual", t0())
        .await?;
    let lease = t0() + Duration::seconds(60);
    let mut tasks = Vec::new();
    for node in ["node-a", "node-b", "node-a", "node-b"] {
        let (store, id) = (store.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let claimed = store.claim_recipients(&id, node, t0(), 7, lease).await?;
                if claimed.is_empty() {
                    return Ok::<_, openline::store::StoreError>(mine);
                }
                mine.extend(claimed);
            }
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    let ids: HashSet<i64> = all.iter().map(|c| c.recipient_id).collect();
    assert_eq!(all.len(), 200, "every callable recipient claimed");
    assert_eq!(ids.len(), 200, "no recipient claimed twice");
    assert!(all.iter().all(|c| c.attempt == 1));
    let flagged: Vec<&str> = all
        .iter()
        .filter(|c| c.do_not_call)
        .map(|c| c.e164.as_str())
        .collect();
    assert_eq!(flagged, ["+380441230007"]);
    // Nothing is due any more; a claim before the due time finds nothing either.
    assert!(
        store
            .claim_recipients(&id, "node-c", t0(), 10, lease)
            .await?
            .is_empty()
    );
    let progress = store.broadcast_progress(&id, t0()).await?;
    assert_eq!(
        (progress.calling, progress.pending, progress.done),
        (200, 0, 1)
    );
    Ok(())
}

async fn finishing_moves_the_recipient_on_once(store: Store, _: PathBuf) -> TestResult {
    let id = campaign(&store, 4).await?;
    let lease = t0() + Duration::seconds(60);
    let claimed = store
        .claim_recipients(&id, "node-a", t0(), 4, lease)
        .await?;
    assert_eq!(claimed.len(), 4);
    let later = t0() + Duration::minutes(10);
    let (busy, congested, human, opted) = (&claimed[0], &claimed[1], &claimed[2], &claimed[3]);

    assert!(
        store
            .finish_attempt(
                &end(busy, "busy", t0()),
                &RecipientNext::Retry { at: later },
                None
            )
            .await?
    );
    assert!(
        !store
            .finish_attempt(
                &end(busy, "human", t0()),
                &RecipientNext::Done {
                    outcome: "human".into()
                },
                None
            )
            .await?,
        "a closed attempt is not finished again"
    );
    store
        .finish_attempt(
            &end(congested, "trunk_congested", t0()),
            &RecipientNext::Requeue { at: t0() },
            None,
        )
        .await?;
    store
        .finish_attempt(
            &end(human, "human", t0()),
            &RecipientNext::Done {
                outcome: "human".into(),
            },
            None,
        )
        .await?;
    let mut out = end(opted, "opted_out", t0());
    out.digit = Some("9".into());
    store
        .finish_attempt(
            &out,
            &RecipientNext::Done {
                outcome: "opted_out".into(),
            },
            Some((&opted.e164, &id)),
        )
        .await?;

    let rows = store
        .broadcast_recipients(&id, None, None, None, 100)
        .await?;
    let by_number = |n: &str| {
        rows.iter()
            .find(|r| r.e164.as_deref() == Some(n))
            .unwrap()
            .clone()
    };
    let r = by_number(&busy.e164);
    assert_eq!(
        (r.state.as_str(), r.attempts, r.outcome.as_deref()),
        ("pending", 1, Some("busy"))
    );
    assert_eq!(r.next_attempt_at, Some(later));
    let r = by_number(&congested.e164);
    assert_eq!(
        (r.state.as_str(), r.attempts),
        ("pending", 0),
        "a 503 does not count"
    );
    let r = by_number(&human.e164);
    assert_eq!(
        (r.state.as_str(), r.outcome.as_deref()),
        ("done", Some("human"))
    );
    let r = by_number(&opted.e164);
    assert_eq!(
        (r.outcome.as_deref(), r.digit.as_deref()),
        (Some("opted_out"), Some("9"))
    );
    assert!(store.is_do_not_call(&opted.e164).await?);
    assert!(!store.is_do_not_call(&human.e164).await?);
    // A late report of an opt-out on an attempt a repair closed first still lists the number.
    assert!(
        !store
            .finish_attempt(
                &end(human, "opted_out", t0()),
                &RecipientNext::Done {
                    outcome: "opted_out".into()
                },
                Some((&human.e164, &id)),
            )
            .await?
    );
    assert!(store.is_do_not_call(&human.e164).await?);

    // The busy one is due again at `later` (not before), as attempt 2; the congested one now.
    let again = store
        .claim_recipients(&id, "node-a", t0(), 10, lease)
        .await?;
    assert_eq!(
        again.iter().map(|c| c.e164.as_str()).collect::<Vec<_>>(),
        [congested.e164.as_str()]
    );
    assert_eq!(again[0].attempt, 1);
    let again = store
        .claim_recipients(&id, "node-a", later, 10, lease)
        .await?;
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].e164.as_str(), again[0].attempt),
        (busy.e164.as_str(), 2)
    );
    let attempts = store.recipient_attempts(busy.recipient_id).await?;
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].1.as_deref(), Some("busy"));
    assert_eq!(attempts[1].1, None, "the second is still open");
    Ok(())
}

async fn crash_repair_finds_open_attempts_and_expired_leases(
    store: Store,
    _: PathBuf,
) -> TestResult {
    let id = campaign(&store, 6).await?;
    let lease = t0() + Duration::seconds(60);
    let a = store
        .claim_recipients(&id, "node-a", t0(), 3, lease)
        .await?;
    let b = store
        .claim_recipients(&id, "node-b", t0(), 3, lease)
        .await?;
    assert!(
        store
            .attempt_dialled(&a[0].attempt_id, "call-a0", "node-a", t0())
            .await?
    );
    // Regression (review): the INVITE went even when the claim was no longer ours.
    assert!(
        !store
            .attempt_dialled(&a[1].attempt_id, "call-a1", "node-b", t0())
            .await?,
        "another node's claim"
    );
    assert!(
        !store
            .attempt_dialled(&a[1].attempt_id, "call-a1", "node-a", lease)
            .await?,
        "a lease that ran out"
    );

    let mine = store.open_attempts(Some("node-a"), t0(), 100).await?;
    assert_eq!(mine.len(), 3);
    let dialled: Vec<Option<&str>> = mine.iter().map(|o| o.call_id.as_deref()).collect();
    assert_eq!(dialled.iter().filter(|c| c.is_some()).count(), 1);
    assert!(dialled.contains(&Some("call-a0")));

    // Before the leases run out nobody else may repair them; node-b renews, node-a does not.
    assert!(
        store
            .open_attempts(None, t0() + Duration::seconds(30), 100)
            .await?
            .is_empty()
    );
    assert_eq!(
        store
            .renew_leases("node-b", t0() + Duration::seconds(120))
            .await?,
        3
    );
    let expired = store
        .open_attempts(None, t0() + Duration::seconds(90), 100)
        .await?;
    let nodes: HashSet<&str> = expired.iter().map(|o| o.node_id.as_str()).collect();
    assert_eq!(expired.len(), 3);
    assert_eq!(nodes, HashSet::from(["node-a"]));

    // Repaired: the dialled one counts, the others are given back uncounted.
    for o in &expired {
        let claim = a.iter().find(|c| c.attempt_id == o.attempt_id).unwrap();
        let (outcome, next) = if o.call_id.is_some() {
            ("crashed", RecipientNext::Retry { at: t0() })
        } else {
            ("released", RecipientNext::Requeue { at: t0() })
        };
        store
            .finish_attempt(&end(claim, outcome, t0()), &next, None)
            .await?;
    }
    let again = store
        .claim_recipients(&id, "node-b", t0(), 10, lease)
        .await?;
    let mut attempts: Vec<i64> = again.iter().map(|c| c.attempt).collect();
    attempts.sort();
    assert_eq!(attempts, [1, 1, 2]);
    assert!(
        b.iter()
            .all(|c| again.iter().all(|g| g.recipient_id != c.recipient_id))
    );
    Ok(())
}

async fn progress_cancel_and_state_changes(store: Store, _: PathBuf) -> TestResult {
    let id = campaign(&store, 5).await?;
    let lease = t0() + Duration::seconds(60);
    let claimed = store
        .claim_recipients(&id, "node-a", t0(), 2, lease)
        .await?;
    let mut human = end(&claimed[0], "human", t0());
    human.digit = Some("1".into());
    store
        .finish_attempt(
            &human,
            &RecipientNext::Done {
                outcome: "human".into(),
            },
            None,
        )
        .await?;
    assert!(
        store
            .set_broadcast_state(&id, &["running"], "paused", t0())
            .await?
    );
    assert!(
        !store
            .attempt_dialled(&claimed[1].attempt_id, "call-x", "node-a", t0())
            .await?,
        "a campaign paused (on any node) dials no more"
    );
    assert!(
        !store
            .set_broadcast_state(&id, &["running"], "cancelled", t0())
            .await?,
        "only from the states given"
    );
    assert!(
        store
            .set_broadcast_state(&id, &["running", "paused"], "cancelled", t0())
            .await?
    );
    assert_eq!(store.cancel_pending_recipients(&id, t0()).await?, 3);
    // Regression (bench/broadcast_rate.sh): a claim given back after the cancel made its
    // recipient pending again, for ever.
    let released = AttemptEnd {
        call_id: None, // never dialled
        ..end(&claimed[1], "released", t0())
    };
    store
        .finish_attempt(&released, &RecipientNext::Requeue { at: t0() }, None)
        .await?;
    let p = store.broadcast_progress(&id, t0()).await?;
    assert_eq!((p.total, p.pending, p.calling, p.done), (6, 0, 0, 6));
    assert_eq!(p.outcomes.get("human"), Some(&1));
    assert_eq!(p.outcomes.get("cancelled"), Some(&4));
    assert_eq!(p.outcomes.get("invalid_number"), Some(&1));
    assert_eq!(p.digits.get("1"), Some(&1));
    assert_eq!(p.attempts, 1);
    let record = store.broadcast(&id).await?.unwrap();
    assert_eq!(record.state, "cancelled");
    assert_eq!(
        store.broadcasts(Some("cancelled"), None, 10).await?.len(),
        1
    );
    assert!(
        store
            .broadcasts(Some("running"), None, 10)
            .await?
            .is_empty()
    );
    Ok(())
}

/// Regression (review): a claim the dispatcher no longer tracked (its result could not be
/// written) had its lease renewed every 2 s for ever, so no node repaired it and the campaign
/// could never complete. The running dispatcher now gives such claims back itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dispatcher_repairs_claims_nobody_holds() {
    use openline::runtime::broadcasts::{DispatcherConfig, spawn};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("openline.db").display());
    let store = Store::connect(&url).await.expect("store");
    let id = campaign(&store, 2).await.expect("campaign");
    assert!(
        store
            .set_broadcast_state(&id, &["running"], "paused", t0())
            .await
            .unwrap()
    );
    let (sip_tx, _sip_rx) = tokio::sync::mpsc::channel(8);
    let (_reports_tx, reports_rx) = tokio::sync::mpsc::unbounded_channel();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let config = DispatcherConfig {
        node_id: "node-a".into(),
        lease: std::time::Duration::from_secs(60),
        trunks: Vec::new(),
        clock: openline::runtime::clock::Clock::default(),
    };
    let (_handle, task) = spawn(
        store.clone(),
        config,
        sip_tx,
        reports_rx,
        openline::runtime::events::EventBus::new(),
        shutdown.clone(),
    );
    // After the dispatcher started: a claim in its name that it never made.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let now = Utc::now();
    let orphan = store
        .claim_recipients(
            &id,
            "node-a",
            now + Duration::days(1),
            1,
            now + Duration::seconds(60),
        )
        .await
        .unwrap();
    assert_eq!(orphan.len(), 1);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let open = store
            .open_attempts(Some("node-a"), Utc::now(), 10)
            .await
            .unwrap();
        if open.is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still open: {open:?}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let rows = store
        .broadcast_recipients(&id, None, None, None, 10)
        .await
        .unwrap();
    let r = rows
        .iter()
        .find(|r| r.id == orphan[0].recipient_id)
        .unwrap();
    assert_eq!(
        (r.state.as_str(), r.attempts),
        ("pending", 0),
        "given back uncounted"
    );
    shutdown.cancel();
    drop(_reports_tx);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
    store.close().await;
}
