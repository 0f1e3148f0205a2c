//! The records path against a real SQLite file: what a killed node journaled comes back once,
//! and a database that refuses writes for a while delays records without losing them.

use super::*;
use crate::runtime::events::EventBus;

async fn store_in(dir: &Path) -> Store {
    Store::connect(&format!("sqlite://{}", dir.join("openline.db").display()))
        .await
        .unwrap()
}

fn started(leg: LegId, id: &str) -> RecordOp {
    let now = Utc::now();
    RecordOp::CallStarted {
        leg,
        call: NewCall {
            id: id.into(),
            node_id: "node-a".into(),
            direction: "inbound".into(),
            caller: "+380441234567".into(),
            caller_name: None,
            callee: "100".into(),
            started_at: now,
        },
        sip_leg: NewLeg {
            call_id: id.into(),
            sip_call_id: format!("sip-{id}"),
            direction: "inbound".into(),
            local_tag: None,
            remote_tag: None,
            remote_uri: "sip:caller@127.0.0.1".into(),
            remote_addr: Some("127.0.0.1:5062".into()),
            transport: "udp".into(),
            started_at: now,
        },
    }
}

fn ended(leg: LegId) -> RecordOp {
    RecordOp::CallEnded {
        leg,
        at: Utc::now(),
        disposition: "answered.caller_hangup".into(),
        hangup_by: Some("caller"),
        final_status: Some(200),
    }
}

async fn wait_applied(tx: &RecordsTx) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tx.backlog() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the writer never caught up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn records_journaled_by_a_node_killed_before_writing_them_are_replayed_at_the_next_start() {
    let temp = tempfile::tempdir().unwrap();
    let journal = temp.path().join("journal");
    let store = store_in(temp.path()).await;
    {
        // The node journals a whole call and dies before its writer runs.
        let (tx, _rx) = RecordsTx::open(&store, "node-a", &journal).await.unwrap();
        tx.send(started(1, "call-1")).unwrap();
        tx.send(RecordOp::CallRating { leg: 1, rating: 4 }).unwrap();
        tx.send(ended(1)).unwrap();
        assert_eq!(tx.backlog(), 3);
    }
    assert!(store.call("call-1").await.unwrap().is_none());

    let (tx, rx) = RecordsTx::open(&store, "node-a", &journal).await.unwrap();
    let (call, legs) = store.call("call-1").await.unwrap().expect("replayed");
    assert_eq!(call.disposition.as_deref(), Some("answered.caller_hangup"));
    assert_eq!(call.rating, Some(4));
    assert_eq!(legs.len(), 1);
    assert_eq!(legs[0].final_status, Some(200));
    assert_eq!(
        journal::segments(&journal).unwrap().len(),
        1,
        "replayed segments deleted"
    );
    // Numbering goes on after the replayed entries.
    let writer = tokio::spawn(run(store.clone(), rx, EventBus::new()));
    tx.send(started(2, "call-2")).unwrap();
    wait_applied(&tx).await;
    assert_eq!(store.records_applied("node-a").await.unwrap(), 4);
    drop(tx);
    writer.await.unwrap();
}

#[tokio::test]
async fn records_the_writer_committed_before_the_kill_are_not_written_twice() {
    let temp = tempfile::tempdir().unwrap();
    let journal = temp.path().join("journal");
    let store = store_in(temp.path()).await;
    {
        let (tx, rx) = RecordsTx::open(&store, "node-a", &journal).await.unwrap();
        let writer = tokio::spawn(run(store.clone(), rx, EventBus::new()));
        tx.send(started(1, "call-1")).unwrap();
        tx.send(ended(1)).unwrap();
        wait_applied(&tx).await;
        // Killed: the segment holding the committed entries is still on disk.
        writer.abort();
        let _ = writer.await;
    }
    assert!(!journal::segments(&journal).unwrap().is_empty());
    let (_tx, _rx) = RecordsTx::open(&store, "node-a", &journal).await.unwrap();
    assert_eq!(store.count_calls().await.unwrap(), 1);
    let (_, legs) = store.call("call-1").await.unwrap().unwrap();
    assert_eq!(legs.len(), 1, "the leg is not inserted again");
    assert!(
        !journal.join(journal::REJECTED_FILE).exists(),
        "nothing was replayed, so nothing was refused"
    );
}

#[tokio::test]
async fn a_locked_database_delays_records_without_dropping_any() {
    let temp = tempfile::tempdir().unwrap();
    let journal = temp.path().join("journal");
    let store = store_in(temp.path()).await;
    let (tx, rx) = RecordsTx::open(&store, "node-a", &journal).await.unwrap();
    let writer = tokio::spawn(run(store.clone(), rx, EventBus::new()));

    // Another process holds the write lock (a backup, a migration, a stuck admin shell).
    use sqlx::Connection;
    let url = format!("sqlite://{}", temp.path().join("openline.db").display());
    let mut other = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut other)
        .await
        .unwrap();

    tx.send(started(1, "call-1")).unwrap();
    tx.send(ended(1)).unwrap();
    // Past SQLite's busy timeout the write fails; the writer keeps the entries and retries.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(tx.backlog(), 2, "still waiting for the database");
    let busy = tx.writer_clock().busy_for().expect("busy with the batch");
    assert!(
        busy >= Duration::from_secs(5),
        "busy for {busy:?} (health reads this)"
    );

    sqlx::query("COMMIT").execute(&mut other).await.unwrap();
    wait_applied(&tx).await;
    assert_eq!(tx.writer_clock().busy_for(), None, "idle again");
    let (call, _) = store
        .call("call-1")
        .await
        .unwrap()
        .expect("written after the lock");
    assert_eq!(call.disposition.as_deref(), Some("answered.caller_hangup"));
    drop(tx);
    writer.await.unwrap();
}

#[tokio::test]
async fn a_record_the_database_refuses_for_good_is_set_aside_and_the_rest_of_its_batch_lands() {
    let temp = tempfile::tempdir().unwrap();
    let journal = temp.path().join("journal");
    let store = store_in(temp.path()).await;
    let (tx, rx) = RecordsTx::open(&store, "node-a", &journal).await.unwrap();
    tx.send(started(1, "call-1")).unwrap();
    // A recording's end for an unknown recording changes nothing (0 rows; not an error).
    tx.send(RecordOp::RecordingFinished {
        id: "rec-x".into(),
        duration_ms: 1,
        size_bytes: 1,
        at: Utc::now(),
    })
    .unwrap();
    tx.send(started(2, "call-2")).unwrap();
    {
        let mut state = tx.sender.lock().unwrap();
        state
            .legs
            .insert(9, ("no-such-call".into(), "sip-9".into()));
    }
    // A recording of a call that does not exist breaks the foreign key: refused for good.
    tx.send(RecordOp::RecordingStarted {
        leg: 9,
        id: "rec-9".into(),
        path: "recordings/rec-9.wav".into(),
        at: Utc::now(),
    })
    .unwrap();
    tx.send(ended(2)).unwrap();
    let writer = tokio::spawn(run(store.clone(), rx, EventBus::new()));
    wait_applied(&tx).await;
    assert_eq!(store.count_calls().await.unwrap(), 2);
    let (call, _) = store.call("call-2").await.unwrap().unwrap();
    assert!(
        call.ended_at.is_some(),
        "entries after the refused one land"
    );
    let rejected = std::fs::read_to_string(journal.join(journal::REJECTED_FILE)).unwrap();
    assert_eq!(rejected.lines().count(), 1, "{rejected}");
    assert!(rejected.contains("rec-9"), "{rejected}");
    drop(tx);
    writer.await.unwrap();
}
