//! Records writer throughput: how many call-record entries per second the writer commits to a
//! SQLite file (WAL, one writer), and what journaling one entry costs the call path.
//!
//! Each synthetic call is the entries a short IVR call makes: call + leg started, answered, three
//! flow-path updates (coalesced when they share a batch), a rating, ended: 7 entries. All calls'
//! entries are sent as fast as the sender can journal them, with the writer running; the
//! throughput is entries committed over the time from the first send until the backlog is 0.
//!
//! ```text
//! cargo run --release --example records_writer -- --calls 20000 --runs 3 --dir /tmp
//! ```
//! Prints one line per run and the medians.

use chrono::Utc;
use openline::runtime::events::EventBus;
use openline::runtime::records::{RecordOp, RecordsTx, run};
use openline::store::{NewCall, NewLeg, Store};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const ENTRIES_PER_CALL: u64 = 7;

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_owned())
}

fn call_ops(leg: u64) -> Vec<RecordOp> {
    let id = uuid::Uuid::now_v7().to_string();
    let now = Utc::now();
    let flow = |n: u64| RecordOp::CallFlow {
        leg,
        flow: "main".into(),
        path: serde_json::json!([{"flow": "main", "node": format!("n{n}"), "digits": "1"}]),
    };
    vec![
        RecordOp::CallStarted {
            leg,
            call: NewCall {
                id: id.clone(),
                node_id: "bench".into(),
                direction: "inbound".into(),
                caller: format!("+38044{:07}", leg % 10_000_000),
                caller_name: None,
                callee: "100".into(),
                started_at: now,
            },
            sip_leg: NewLeg {
                call_id: id,
                sip_call_id: format!("bench-{leg}@127.0.0.1"),
                direction: "inbound".into(),
                local_tag: Some("ol".into()),
                remote_tag: Some("sipp".into()),
                remote_uri: "sip:sipp@127.0.0.1:5061".into(),
                remote_addr: Some("127.0.0.1:5061".into()),
                transport: "udp".into(),
                started_at: now,
            },
        },
        RecordOp::CallAnswered { leg, at: now },
        flow(1),
        flow(2),
        flow(3),
        RecordOp::CallRating { leg, rating: 5 },
        RecordOp::CallEnded {
            leg,
            at: now,
            disposition: "ivr.completed".into(),
            hangup_by: Some("caller"),
            final_status: Some(200),
        },
        RecordOp::Forget { leg },
    ]
}

struct Run {
    entries_per_s: f64,
    send_us_per_entry: f64,
}

async fn one_run(dir: &std::path::Path, calls: u64) -> Run {
    let data = tempfile::tempdir_in(dir).expect("temp dir");
    let store = Store::connect(&format!(
        "sqlite://{}",
        data.path().join("bench.db").display()
    ))
    .await
    .expect("store");
    let (tx, rx) = RecordsTx::open(&store, "bench", &data.path().join("journal"))
        .await
        .expect("journal");
    let writer = tokio::spawn(run(store.clone(), rx, EventBus::new()));
    let ops: Vec<Vec<RecordOp>> = (0..calls).map(call_ops).collect();
    let started = Instant::now();
    let mut send_time = Duration::ZERO;
    for (i, call) in ops.into_iter().enumerate() {
        let t = Instant::now();
        for op in call {
            tx.send(op).expect("send");
        }
        send_time += t.elapsed();
        // Let the writer run between senders, as the SIP task and call tasks do.
        if i % 64 == 0 {
            tokio::task::yield_now().await;
        }
    }
    while tx.backlog() > 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = started.elapsed();
    drop(tx);
    writer.await.expect("writer");
    assert_eq!(store.count_calls().await.expect("count") as u64, calls);
    store.close().await;
    let entries = calls * ENTRIES_PER_CALL;
    Run {
        entries_per_s: entries as f64 / elapsed.as_secs_f64(),
        send_us_per_entry: send_time.as_secs_f64() * 1e6 / entries as f64,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let calls: u64 = arg("--calls", "20000").parse().expect("--calls");
    let runs: usize = arg("--runs", "3").parse().expect("--runs");
    let dir = PathBuf::from(arg("--dir", "/tmp"));
    let mut rates = Vec::new();
    let mut sends = Vec::new();
    for n in 1..=runs {
        let r = one_run(&dir, calls).await;
        println!(
            "run {n}: {calls} calls, {:.0} entries/s committed, {:.2} µs to journal one entry",
            r.entries_per_s, r.send_us_per_entry
        );
        rates.push(r.entries_per_s);
        sends.push(r.send_us_per_entry);
    }
    println!(
        "median of {runs}: {:.0} entries/s, {:.2} µs per journaled entry",
        median(rates),
        median(sends)
    );
}
