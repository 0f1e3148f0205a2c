//! CRM sync against a local HTTP server standing in for Bitrix24 (acceptance 4): register, finish
//! and attachRecord arrive with the right fields; while the stand-in is down calls queue up and
//! are delivered when it returns; a stand-in that drops the connection after processing a request
//! still ends with each event applied once (the event id travels in `Idempotency-Key`).

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use common::*;
use serde_json::{Value, json};

/// One request the stand-in processed for the first time.
#[derive(Debug, Clone)]
struct Applied {
    path: String,
    event_id: String,
    body: Value,
}

#[derive(Default)]
struct Crm {
    applied: Vec<Applied>,
    /// Event id → the answer given when it was applied (repeats get it again).
    answers: HashMap<String, Value>,
    requests: usize,
    /// Drop the connection, without answering, after applying an event the first time.
    drop_first_answer: bool,
}

/// A stand-in Bitrix24 REST endpoint on `addr`.
struct StandIn {
    crm: Arc<Mutex<Crm>>,
}

impl StandIn {
    fn start(listener: TcpListener, drop_first_answer: bool) -> StandIn {
        let crm = Arc::new(Mutex::new(Crm {
            drop_first_answer,
            ..Crm::default()
        }));
        let shared = crm.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let crm = shared.clone();
                std::thread::spawn(move || serve(stream, &crm));
            }
        });
        StandIn { crm }
    }

    fn applied(&self) -> Vec<Applied> {
        self.crm.lock().unwrap().applied.clone()
    }

    fn requests(&self) -> usize {
        self.crm.lock().unwrap().requests
    }

    fn wait_for(&self, what: &str, count: usize) -> Vec<Applied> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let applied = self.applied();
            if applied.len() >= count {
                return applied;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; applied: {applied:#?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn serve(stream: TcpStream, crm: &Mutex<Crm>) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut length = 0;
    let mut event_id = String::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "idempotency-key" => event_id = value.trim().to_string(),
                _ => {}
            }
        }
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (answer, drop_it) = {
        let mut crm = crm.lock().unwrap();
        crm.requests += 1;
        match crm.answers.get(&event_id) {
            Some(answer) => (answer.clone(), false),
            None => {
                let answer = if path.ends_with("telephony.externalcall.register.json") {
                    json!({"result": {"CALL_ID": format!("externalCall.{}", crm.applied.len() + 1)}})
                } else {
                    json!({"result": true})
                };
                crm.answers.insert(event_id.clone(), answer.clone());
                crm.applied.push(Applied {
                    path: path.clone(),
                    event_id,
                    body,
                });
                (answer, crm.drop_first_answer)
            }
        }
    };
    let mut stream = reader.into_inner();
    if drop_it {
        // Processed, but the answer is lost: the client must retry with the same event id.
        let _ = stream.shutdown(std::net::Shutdown::Both);
        return;
    }
    let text = answer.to_string();
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
}

fn sync_config(addr: SocketAddr) -> String {
    format!(
        "[crm_sync]\nurl = \"http://{addr}/rest/1/secret\"\ndefault_user_id = 7\nretry_min = \"100ms\"\nretry_max = \"400ms\"\n"
    )
}

fn by_method<'a>(applied: &'a [Applied], method: &str) -> Vec<&'a Applied> {
    applied
        .iter()
        .filter(|a| a.path.ends_with(&format!("/{method}.json")))
        .collect()
}

#[test]
fn register_finish_and_attach_record_arrive_with_bitrix_fields() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let crm = StandIn::start(listener, false);
    let server = Server::start(&sync_config(addr));
    place_call(server.sip, "sync-1", "0441234567", "Olena", "100");
    let calls = server.wait_for_calls("", "the call", |c| {
        c.len() == 1 && !c[0]["ended_at"].is_null()
    });
    let call_id = calls[0]["id"].as_str().unwrap();
    crm.wait_for("register and finish", 2);
    let recording = add_recording(&server, call_id, 1, None);
    let applied = crm.wait_for("attachRecord", 3);

    let register = by_method(&applied, "telephony.externalcall.register");
    assert_eq!(register.len(), 1, "{applied:#?}");
    let r = &register[0].body;
    assert_eq!(
        register[0].path,
        "/rest/1/secret/telephony.externalcall.register.json"
    );
    assert_eq!(r["PHONE_NUMBER"], "+380441234567");
    assert_eq!(r["TYPE"], 2);
    assert_eq!(r["CRM_CREATE"], 1);
    assert_eq!(r["USER_ID"], 7);
    assert!(
        r["CALL_START_DATE"]
            .as_str()
            .is_some_and(|d| d.starts_with("20"))
    );
    let finish = by_method(&applied, "telephony.externalcall.finish");
    assert_eq!(finish.len(), 1);
    let f = &finish[0].body;
    assert_eq!(f["CALL_ID"], "externalCall.1");
    assert_eq!(f["STATUS_CODE"], 200);
    assert!(f["DURATION"].is_number());
    assert_eq!(f["USER_ID"], 7);
    let attach = by_method(&applied, "telephony.externalCall.attachRecord");
    assert_eq!(attach.len(), 1);
    let a = &attach[0].body;
    assert_eq!(a["CALL_ID"], "externalCall.1");
    assert_eq!(a["FILENAME"], format!("{call_id}.wav"));
    let content = base64::engine::general_purpose::STANDARD
        .decode(a["FILE_CONTENT"].as_str().unwrap())
        .unwrap();
    assert_eq!(content, wav_bytes(1), "recording {recording} sent whole");
    let ids: std::collections::HashSet<_> = applied.iter().map(|a| a.event_id.clone()).collect();
    assert_eq!(ids.len(), 3, "every event has its own id");
    assert!(ids.iter().all(|id| uuid::Uuid::parse_str(id).is_ok()));
}

#[test]
fn calls_queue_up_while_the_crm_is_down_and_arrive_when_it_returns() {
    // Reserve a port, then free it: nothing listens there until the stand-in starts.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let server = Server::start(&sync_config(addr));
    for (id, number) in [
        ("down-1", "+380441110001"),
        ("down-2", "+380441110002"),
        ("down-3", "+380441110003"),
    ] {
        place_call(server.sip, id, number, "Caller", "100");
    }
    server.wait_for_calls("", "three ended calls", |c| {
        c.len() == 3 && c.iter().all(|c| !c["ended_at"].is_null())
    });
    std::thread::sleep(Duration::from_millis(1500));
    let listener = TcpListener::bind(addr).expect("the port is free again");
    let crm = StandIn::start(listener, false);
    let applied = crm.wait_for("three calls' register and finish", 6);
    std::thread::sleep(Duration::from_millis(500));
    let applied_after = crm.applied();
    assert_eq!(
        applied_after.len(),
        6,
        "each event once: {applied_after:#?}"
    );
    let mut numbers: Vec<String> = by_method(&applied, "telephony.externalcall.register")
        .iter()
        .map(|a| a.body["PHONE_NUMBER"].as_str().unwrap().to_string())
        .collect();
    numbers.sort();
    assert_eq!(numbers, ["+380441110001", "+380441110002", "+380441110003"]);
    let finish_ids: std::collections::HashSet<String> =
        by_method(&applied, "telephony.externalcall.finish")
            .iter()
            .map(|a| a.body["CALL_ID"].as_str().unwrap().to_string())
            .collect();
    assert_eq!(
        finish_ids.len(),
        3,
        "each finish names its own registered call"
    );
    assert!(server.log().contains("CRM sync"), "the sync task ran");
}

#[test]
fn a_dropped_answer_is_retried_and_applied_once() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let crm = StandIn::start(listener, true);
    let server = Server::start(&sync_config(addr));
    place_call(server.sip, "drop-1", "+380671234567", "Caller", "100");
    crm.wait_for("register and finish", 2);
    // Retries of both events come back with the same ids and are answered from the first result.
    let deadline = Instant::now() + Duration::from_secs(20);
    while crm.requests() < 4 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(800));
    let applied = crm.applied();
    assert_eq!(applied.len(), 2, "applied once each: {applied:#?}");
    assert!(crm.requests() >= 4, "the lost answers were retried");
    let finish = by_method(&applied, "telephony.externalcall.finish");
    assert_eq!(finish[0].body["CALL_ID"], "externalCall.1");
    // Nothing is left to deliver: no more requests arrive.
    let before = crm.requests();
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(
        crm.requests(),
        before,
        "delivered events are not sent again"
    );
}
