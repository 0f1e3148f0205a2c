//! No record lost: the server is killed (SIGKILL) while SIPp places 1,000 calls/s at it. The first
//! calls' rows are committed; then another process locks the database, so the rest cannot be;
//! after a restart every call SIPp completed has exactly one row: the committed ones are not
//! replayed a second time, the held-back ones come from the records journal. And while the
//! writer cannot keep up, new calls are refused with 503 rather than records lost.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Call-IDs SIPp logged as completed (200 to its BYE received).
fn completed_calls(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().strip_prefix("completed "))
        .map(str::to_owned)
        .collect()
}

fn start_sipp(server: &Server, work: &Path, log: &Path) -> Child {
    Command::new("sipp")
        .current_dir(work)
        .arg(server.sip.to_string())
        .arg("-sf")
        .arg(data_path("sipp/uac_logged.xml"))
        .args(["-r", "1000", "-m", "100000", "-d", "100", "-l", "2000"])
        .args(["-mp", &free_media_port().to_string()])
        .args(["-trace_logs", "-log_file"])
        .arg(log)
        .args(["-nostdin", "-timeout", "120", "-bg"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp must be installed (scripts/test.sh installs Debian's sip-tester)")
}

/// Another process's exclusive write lock on the server's SQLite file (a backup, a stuck admin
/// shell): every write waits on it; reads go on (WAL).
struct DbLock {
    runtime: tokio::runtime::Runtime,
    connection: Option<sqlx::SqliteConnection>,
}

impl DbLock {
    fn take(server: &Server) -> DbLock {
        use sqlx::Connection;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let file = server.dir.join("data").join("openline.db");
        let connection = runtime.block_on(async {
            let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", file.display()))
                .await
                .expect("open db");
            sqlx::query("BEGIN EXCLUSIVE")
                .execute(&mut c)
                .await
                .expect("lock");
            c
        });
        DbLock {
            runtime,
            connection: Some(connection),
        }
    }

    fn release(mut self) {
        let mut c = self.connection.take().unwrap();
        self.runtime.block_on(async {
            sqlx::query("COMMIT").execute(&mut c).await.expect("unlock");
        });
    }
}

/// Sends an INVITE for `call_id` and returns the server's final response to it.
fn final_response(peer: &UdpPeer, call_id: &str) -> String {
    let port = peer.port();
    let sdp = offer(7078, 101);
    peer.send(
        format!(
            "INVITE sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{call_id};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:caller@127.0.0.1>;tag=t{call_id}\r\nTo: <sip:100@127.0.0.1>\r\n\
             Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@127.0.0.1:{port}>\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        )
        .as_bytes(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let Some(msg) = peer.recv() else { continue };
        let code: u16 = msg
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        if msg.starts_with("SIP/2.0 ") && code >= 200 && header(&msg, "Call-ID") == Some(call_id) {
            return msg;
        }
    }
    panic!("no final response to {call_id}");
}

/// `SELECT sip_call_id, count(*)` over the inbound legs, and the number of call rows.
fn stored_calls(server: &Server) -> (HashMap<String, i64>, i64) {
    let file = server.dir.join("data").join("openline.db");
    let url = format!("sqlite://{}?mode=ro", file.display());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let pool = sqlx::SqlitePool::connect(&url).await.expect("open db");
            let legs: Vec<(String, i64)> = sqlx::query_as(
                "SELECT sip_call_id, COUNT(*) FROM call_legs WHERE direction = 'inbound' \
                 GROUP BY sip_call_id",
            )
            .fetch_all(&pool)
            .await
            .expect("legs");
            let calls: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM calls")
                .fetch_one(&pool)
                .await
                .expect("calls");
            (legs.into_iter().collect(), calls)
        })
}

#[test]
fn sigkill_during_a_1000_calls_per_second_sipp_run_loses_and_duplicates_no_completed_call() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), "", &[]);
    let work = tempfile::tempdir().unwrap();
    let log = work.path().join("completed.log");
    // `-bg` forks: the child we hold exits at once, SIPp runs on until it is told to stop.
    let mut launcher = start_sipp(&server, work.path(), &log);
    let _ = launcher.wait();

    let deadline = Instant::now() + Duration::from_secs(90);
    let wait_for = |n: usize| {
        while completed_calls(&log).len() < n {
            assert!(
                Instant::now() < deadline,
                "SIPp completed only {} calls in 90 s; server log:\n{}",
                completed_calls(&log).len(),
                server.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    // The first calls are written as they go (their journal checkpoint too) ...
    wait_for(100);
    let committed_before_lock = stored_calls(&server).1;
    let lock = DbLock::take(&server);
    // ... the rest are held back by the lock until the node dies.
    while completed_calls(&log).len() < 300 {
        assert!(
            Instant::now() < deadline,
            "SIPp completed only {} calls in 90 s; server log:\n{}",
            completed_calls(&log).len(),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server.kill();
    // Calls in flight now time out on SIPp's side; give it a moment, then stop it (SIGTERM makes
    // SIPp flush its log and exit).
    std::thread::sleep(Duration::from_millis(500));
    let _ = Command::new("pkill")
        .args(["-TERM", "-f", &format!("sipp {}", server.sip)])
        .status();
    std::thread::sleep(Duration::from_secs(1));
    let _ = Command::new("pkill")
        .args(["-KILL", "-f", &format!("sipp {}", server.sip)])
        .status();
    lock.release();

    let completed: Vec<String> = completed_calls(&log);
    let unique: HashSet<&String> = completed.iter().collect();
    assert_eq!(unique.len(), completed.len(), "SIPp logged a call twice");

    let server = Server::start_in(dir.path(), "", &[]);
    let (legs, calls) = stored_calls(&server);
    let log_text = server.log();
    assert!(
        committed_before_lock > 0,
        "nothing was committed before the lock"
    );
    assert!(
        log_text.contains("records journal replayed"),
        "the locked database held rows back, so the restart must replay them"
    );
    let missing: Vec<&String> = completed
        .iter()
        .filter(|id| !legs.contains_key(*id))
        .collect();
    let doubled: Vec<(&String, &i64)> = legs.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        missing.is_empty(),
        "{} of {} calls SIPp completed have no row, e.g. {:?}; log:\n{}",
        missing.len(),
        completed.len(),
        &missing[..missing.len().min(5)],
        log_text
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(doubled.is_empty(), "legs stored twice: {doubled:?}");
    assert_eq!(
        calls,
        legs.len() as i64,
        "one call row per inbound leg (the calls table has no duplicates either)"
    );
    assert!(
        legs.len() >= completed.len(),
        "the server also holds the calls SIPp had not completed when the node died"
    );
    eprintln!(
        "SIPp completed {} calls; {} call rows after the restart; replay: {}",
        completed.len(),
        calls,
        log_text
            .lines()
            .find(|l| l.contains("records journal replayed"))
            .unwrap_or_default()
    );
}

#[test]
fn while_the_records_writer_is_behind_new_calls_get_503_and_calls_up_are_still_recorded() {
    let mut server = Server::start("[calls]\nmax_records_backlog = 3\n");
    let lock = DbLock::take(&server);
    let peer = UdpPeer::new(server.sip);
    // The first call's start is journaled but cannot be committed: the backlog grows past 3
    // with its answer and flow path.
    let ok = invite(&peer, "backlog-1", "100");
    ack(&peer, "backlog-1", &ok);
    let refused = UdpPeer::new(server.sip);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut n = 0;
    loop {
        n += 1;
        let id = format!("backlog-refused-{n}");
        let reply = final_response(&refused, &id);
        if reply.starts_with("SIP/2.0 503") {
            break;
        }
        assert!(Instant::now() < deadline, "never refused: {reply}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(server.metric("openline_calls_refused_total{reason=\"records_backlog\"}") >= 1.0);
    bye(&peer, "backlog-1", &ok);
    lock.release();
    // The writer catches up; the held-back call is there with its end, and calls are taken again.
    let calls = server.wait_for_calls("&number=100", "the held-back call, ended", |c| {
        c.iter().any(|c| !c["ended_at"].is_null())
    });
    assert!(calls.iter().any(|c| c["disposition"].as_str().is_some()));
    let later = UdpPeer::new(server.sip);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        n += 1;
        let reply = final_response(&later, &format!("backlog-later-{n}"));
        if !reply.starts_with("SIP/2.0 503") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still refused after the writer caught up"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    server.kill();
}
