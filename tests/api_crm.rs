//! API tests of the CRM issue (acceptance 2) against the real binary: every endpoint by role
//! (401/403), malformed bodies, Idempotency-Key, recordings with Range and a path-traversal
//! attempt, session cookie and CSRF, the OpenAPI description, and calls reaching timelines
//! (also after a crash).

mod common;

use common::*;
use serde_json::{Value, json};

fn auth(token: &str) -> String {
    format!("Bearer {token}")
}

/// `send` with a bearer token (or none) and a JSON body.
fn call_api(
    server: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> HttpResponse {
    let bearer = token.map(auth);
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(b) = &bearer {
        headers.push(("Authorization", b.as_str()));
    }
    send(server.http, method, path, &headers, body.as_bytes())
}

/// One call from 044 123 45 67 (national notation) that ended and reached a lead; returns
/// (call id, lead id).
fn call_with_lead(server: &Server) -> (String, String) {
    place_call(server.sip, "lead-call", "0441234567", "Olena", "100");
    let leads = wait_for_json(server, "/api/v1/leads", "the lead", |b| {
        b["items"].as_array().is_some_and(|a| a.len() == 1)
    });
    let lead = leads["items"][0]["id"].as_str().unwrap().to_string();
    let calls = server.wait_for_calls("", "the call", |c| c.len() == 1);
    (calls[0]["id"].as_str().unwrap().to_string(), lead)
}

#[test]
fn every_endpoint_by_role() {
    let server = Server::start("");
    let (call, lead) = call_with_lead(&server);
    let recording = add_recording(&server, &call, 1, None);
    let contact_body = r#"{"name":"Role test","phones":["+380 67 000 11 22"]}"#;
    // (method, path, body, expected for [none, bad token, operator, manager, admin])
    let cases: Vec<(&str, String, &str, [u16; 5])> = vec![
        ("GET", "/api/v1/calls".into(), "", [401, 401, 200, 200, 200]),
        (
            "GET",
            format!("/api/v1/calls/{call}"),
            "",
            [401, 401, 404, 200, 200],
        ),
        (
            "GET",
            format!("/api/v1/recordings/{recording}"),
            "",
            [401, 401, 404, 200, 200],
        ),
        ("GET", "/api/v1/leads".into(), "", [401, 401, 403, 200, 200]),
        (
            "GET",
            format!("/api/v1/leads/{lead}"),
            "",
            [401, 401, 403, 200, 200],
        ),
        (
            "GET",
            format!("/api/v1/leads/{lead}/timeline"),
            "",
            [401, 401, 403, 200, 200],
        ),
        (
            "GET",
            "/api/v1/contacts".into(),
            "",
            [401, 401, 403, 200, 200],
        ),
        (
            "POST",
            "/api/v1/contacts".into(),
            contact_body,
            [401, 401, 403, 201, 201],
        ),
        (
            "POST",
            "/api/v1/leads".into(),
            r#"{"name":"Lead by hand"}"#,
            [401, 401, 403, 201, 201],
        ),
        (
            "GET",
            "/api/v1/operators".into(),
            "",
            [401, 401, 200, 200, 200],
        ),
        (
            "PUT",
            "/api/v1/operators/102/status".into(),
            r#"{"status":"away"}"#,
            [401, 401, 403, 200, 200],
        ),
        (
            "PUT",
            "/api/v1/operators/101/status".into(),
            r#"{"status":"online"}"#,
            [401, 401, 200, 200, 200],
        ),
        (
            "GET",
            "/api/v1/ratings".into(),
            "",
            [401, 401, 200, 200, 200],
        ),
        (
            "GET",
            "/api/v1/session".into(),
            "",
            [401, 401, 200, 200, 200],
        ),
        (
            "GET",
            "/api/v1/events".into(),
            "",
            [401, 401, 400, 400, 400],
        ),
        (
            "DELETE",
            format!("/api/v1/leads/{lead}"),
            "",
            [401, 401, 403, 403, 200],
        ),
        ("GET", "/healthz".into(), "", [200, 200, 200, 200, 200]),
        ("GET", "/metrics".into(), "", [200, 200, 200, 200, 200]),
        (
            "GET",
            "/api/v1/openapi.json".into(),
            "",
            [200, 200, 200, 200, 200],
        ),
        ("GET", "/".into(), "", [200, 200, 200, 200, 200]),
    ];
    let tokens = [
        None,
        Some("not-a-real-token-at-all"),
        Some(OPERATOR_TOKEN),
        Some(MANAGER_TOKEN),
        Some(ADMIN_TOKEN),
    ];
    for (method, path, body, expected) in &cases {
        for (token, want) in tokens.iter().zip(expected) {
            let r = call_api(&server, method, path, *token, body);
            assert_eq!(
                r.status,
                *want,
                "{method} {path} as {token:?}: {}",
                r.text()
            );
            if r.status >= 400 && !path.ends_with("/events") {
                let body = r.json();
                assert!(body["error"]["code"].is_string(), "{method} {path}: {body}");
                assert!(body["error"]["message"].is_string());
            }
            if r.status == 403 {
                assert_eq!(r.json()["error"]["code"], "auth.forbidden");
            }
        }
    }
}

#[test]
fn operators_see_only_their_own_calls() {
    let server = Server::start("");
    place_call(server.sip, "to-100", "+380441230001", "A", "100");
    place_call(server.sip, "to-101", "+380441230002", "B", "101");
    server.wait_for_calls("", "two calls", |c| c.len() == 2);
    let r = call_api(&server, "GET", "/api/v1/calls", Some(OPERATOR_TOKEN), "");
    let calls = r.json()["calls"].as_array().cloned().unwrap();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["callee"], "101");
    let id = calls[0]["id"].as_str().unwrap();
    let r = call_api(
        &server,
        "GET",
        &format!("/api/v1/calls/{id}"),
        Some(OPERATOR_TOKEN),
        "",
    );
    assert_eq!(r.status, 200);
    let r = call_api(
        &server,
        "GET",
        "/api/v1/calls?number=+380441230001",
        Some(OPERATOR_TOKEN),
        "",
    );
    assert_eq!(r.json()["calls"].as_array().unwrap().len(), 0);
    let r = call_api(
        &server,
        "GET",
        "/api/v1/operators",
        Some(OPERATOR_TOKEN),
        "",
    );
    let ops = r.json();
    assert_eq!(ops.as_array().unwrap().len(), 1);
    assert_eq!(ops[0]["extension"], "101");
    // Filters of the calls list.
    let (_, body) = server.get("/api/v1/calls?disposition=ivr&direction=inbound");
    assert_eq!(body["calls"].as_array().unwrap().len(), 2);
    let (_, body) = server.get("/api/v1/calls?disposition=cancelled");
    assert_eq!(body["calls"].as_array().unwrap().len(), 0);
    // `operator` is who took the call from a queue; a call dialled to 101 is found by number.
    let (_, body) = server.get("/api/v1/calls?operator=101");
    assert_eq!(body["calls"].as_array().unwrap().len(), 0);
    let (_, body) = server.get("/api/v1/calls?number=101");
    assert_eq!(body["calls"].as_array().unwrap().len(), 1);
    let (_, body) = server.get("/api/v1/calls?queue=sales");
    assert_eq!(body["calls"].as_array().unwrap().len(), 0);
}

#[test]
fn crm_writes_idempotency_and_malformed_bodies() {
    let server = Server::start("");
    let post = |body: &str, key: Option<&str>| {
        let bearer = auth(MANAGER_TOKEN);
        let mut headers = vec![
            ("Authorization", bearer.as_str()),
            ("Content-Type", "application/json"),
        ];
        if let Some(key) = key {
            headers.push(("Idempotency-Key", key));
        }
        send(
            server.http,
            "POST",
            "/api/v1/contacts",
            &headers,
            body.as_bytes(),
        )
    };
    let body = r#"{"name":"Taras","company":"Acme","phones":["044 765 4321"],"emails":["Taras@Example.com"],"responsible":"101"}"#;
    let first = post(body, Some("create-taras-1"));
    assert_eq!(first.status, 201, "{}", first.text());
    let contact = first.json();
    assert_eq!(contact["kind"], "contact");
    assert_eq!(contact["phones"], json!(["+380447654321"]));
    assert_eq!(contact["emails"], json!(["taras@example.com"]));
    let again = post(body, Some("create-taras-1"));
    assert_eq!(again.status, 201);
    assert_eq!(
        again.json()["id"],
        contact["id"],
        "replayed, not created twice"
    );
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    let other = post(r#"{"name":"Someone else"}"#, Some("create-taras-1"));
    assert_eq!(other.status, 422);
    assert_eq!(other.json()["error"]["code"], "idempotency.key_reused");
    let bad_key = post(body, Some("has space"));
    assert_eq!(
        bad_key.json()["error"]["code"],
        "request.invalid_idempotency_key"
    );

    let malformed = [
        ("", "request.invalid_body"),
        ("{", "request.invalid_body"),
        ("[]", "request.invalid_body"),
        (r#"{"name": 5}"#, "request.invalid_body"),
        (r#"{"nickname":"x"}"#, "request.invalid_body"),
        ("{}", "request.invalid_body"),
        (r#"{"phones":["not a number"]}"#, "crm.invalid_phone"),
        (r#"{"phones":["101"]}"#, "crm.invalid_phone"),
        (r#"{"emails":["no-at-sign"]}"#, "crm.invalid_email"),
        (
            r#"{"name":"x","responsible":"999"}"#,
            "crm.unknown_operator",
        ),
        ("\u{0}\u{1}garbage", "request.invalid_body"),
    ];
    for (body, code) in malformed {
        let r = post(body, None);
        assert_eq!(r.status, 400, "{body:?}: {}", r.text());
        assert_eq!(r.json()["error"]["code"], code, "{body:?}");
    }
    let r = call_api(
        &server,
        "PUT",
        "/api/v1/operators/101/status",
        Some(ADMIN_TOKEN),
        r#"{"status":"asleep"}"#,
    );
    assert_eq!(r.json()["error"]["code"], "operator.invalid_status");
    let r = call_api(
        &server,
        "PUT",
        "/api/v1/operators/101/status",
        Some(ADMIN_TOKEN),
        "status=away",
    );
    assert_eq!(r.json()["error"]["code"], "request.invalid_body");
    let r = call_api(
        &server,
        "PUT",
        "/api/v1/operators/999/status",
        Some(ADMIN_TOKEN),
        r#"{"status":"away"}"#,
    );
    assert_eq!(r.status, 404);
    let r = call_api(
        &server,
        "PATCH",
        "/api/v1/contacts",
        Some(ADMIN_TOKEN),
        "{}",
    );
    assert_eq!(r.status, 405);
    assert_eq!(r.json()["error"]["code"], "request.method_not_allowed");

    // A call from the contact's number (other notation) lands on the contact, not on a new lead.
    let id = contact["id"].as_str().unwrap();
    place_call(server.sip, "contact-call", "380447654321", "Taras", "100");
    let timeline = wait_for_json(
        &server,
        &format!("/api/v1/contacts/{id}/timeline"),
        "entry",
        |b| b["entries"].as_array().is_some_and(|e| e.len() == 1),
    );
    assert_eq!(timeline["entries"][0]["data"]["number"], "+380447654321");
    let (_, leads) = server.get("/api/v1/leads");
    assert_eq!(leads["items"].as_array().unwrap().len(), 0);
    let (status, found) = server.get("/api/v1/contacts?number=044%20765%204321");
    assert_eq!(status, 200);
    assert_eq!(found["items"][0]["id"], id);
    let (status, body) = server.get("/api/v1/contacts?number=abc");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("request.invalid_query"))
    );
    let (status, _) = server.get(&format!("/api/v1/leads/{id}"));
    assert_eq!(status, 404, "a contact is not a lead");
}

#[test]
fn lead_conversion_and_erasure_over_the_api() {
    let server = Server::start("");
    let (call, lead) = call_with_lead(&server);
    let recording = add_recording(&server, &call, 1, None);
    let (_, view) = server.get(&format!("/api/v1/calls/{call}"));
    assert_eq!(view["recording_id"], recording.as_str());
    assert_eq!(view["person"]["id"], lead.as_str());
    let (_, timeline) = server.get(&format!("/api/v1/leads/{lead}/timeline"));
    assert_eq!(timeline["entries"][0]["recording_id"], recording.as_str());
    assert_eq!(timeline["entries"][0]["data"]["caller_name"], "Olena");

    let r = call_api(
        &server,
        "POST",
        &format!("/api/v1/leads/{lead}/convert"),
        Some(MANAGER_TOKEN),
        "",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["kind"], "contact");
    let (_, timeline) = server.get(&format!("/api/v1/contacts/{lead}/timeline"));
    assert_eq!(
        timeline["entries"].as_array().unwrap().len(),
        1,
        "timeline kept"
    );
    let r = call_api(
        &server,
        "POST",
        &format!("/api/v1/leads/{lead}/convert"),
        Some(MANAGER_TOKEN),
        "",
    );
    assert_eq!(r.status, 404);

    let wav = server.dir.join(format!("data/recordings/{recording}.wav"));
    assert!(wav.exists());
    let r = call_api(
        &server,
        "DELETE",
        &format!("/api/v1/contacts/{lead}"),
        Some(ADMIN_TOKEN),
        "",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["recordings_deleted"], 1);
    assert!(!wav.exists(), "recording file deleted");
    let (status, _) = server.get(&format!("/api/v1/contacts/{lead}"));
    assert_eq!(status, 404);
    let (status, _) = server.get(&format!("/api/v1/recordings/{recording}"));
    assert_eq!(status, 404);
    let (_, view) = server.get(&format!("/api/v1/calls/{call}"));
    assert_eq!(view["caller"], "erased");
    assert_eq!(view["caller_name"], Value::Null);
    assert!(view["duration_ms"].is_number(), "statistics stay");
}

#[test]
fn recordings_with_range_and_no_path_traversal() {
    let server = Server::start("");
    place_call(server.sip, "rec-call", "+380441112233", "R", "100");
    let calls = server.wait_for_calls("", "the call", |c| c.len() == 1);
    let call = calls[0]["id"].as_str().unwrap().to_string();
    let id = add_recording(&server, &call, 2, None);
    let wav = wav_bytes(2);
    let len = wav.len();
    let bearer = auth(MANAGER_TOKEN);
    let get = |range: Option<&str>| {
        let mut headers = vec![("Authorization", bearer.as_str())];
        if let Some(range) = range {
            headers.push(("Range", range));
        }
        send(
            server.http,
            "GET",
            &format!("/api/v1/recordings/{id}"),
            &headers,
            b"",
        )
    };
    let whole = get(None);
    assert_eq!(whole.status, 200);
    assert_eq!(whole.header("content-type"), Some("audio/wav"));
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    assert_eq!(whole.body, wav);
    let cases: Vec<(&str, usize, usize)> = vec![
        ("bytes=0-99", 0, 99),
        ("bytes=100-", 100, len - 1),
        ("bytes=-10", len - 10, len - 1),
        ("bytes=44-44", 44, 44),
        ("bytes=10-99999999", 10, len - 1),
    ];
    for (range, start, end) in cases {
        let r = get(Some(range));
        assert_eq!(r.status, 206, "{range}");
        assert_eq!(r.body, wav[start..=end], "{range}: exact bytes");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {start}-{end}/{len}").as_str())
        );
        assert_eq!(
            r.header("content-length"),
            Some((end - start + 1).to_string().as_str())
        );
    }
    for range in [format!("bytes={len}-"), "bytes=-0".to_string()] {
        let r = get(Some(&range));
        assert_eq!(r.status, 416, "{range}");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes */{len}").as_str())
        );
        assert_eq!(r.json()["error"]["code"], "recording.range_not_satisfiable");
    }
    assert_eq!(
        get(Some("bytes=0-1,4-5")).status,
        200,
        "several ranges: the whole file"
    );

    // Path traversal: ids are looked up, never joined into a path.
    for path in [
        "/api/v1/recordings/..%2F..%2F..%2Fetc%2Fpasswd",
        "/api/v1/recordings/%2Fetc%2Fpasswd",
        "/api/v1/recordings/../../etc/passwd",
        "/api/v1/recordings/openline.db",
        "/api/v1/recordings/..%2Fopenline.db",
    ] {
        let r = send(
            server.http,
            "GET",
            path,
            &[("Authorization", bearer.as_str())],
            b"",
        );
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        assert!(!r.text().contains("root:"), "{path}");
    }
    // Even a row whose path escapes the data directory is not served.
    let evil = uuid::Uuid::now_v7().to_string();
    let url = format!("sqlite://{}", server.dir.join("data/openline.db").display());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let store = openline::store::Store::connect(&url).await.unwrap();
            store
                .insert_recording(&openline::store::NewRecording {
                    id: evil.clone(),
                    call_id: call.clone(),
                    path: "../openline.toml".into(),
                    format: "wav".into(),
                    channels: 1,
                    sample_rate: 8000,
                    created_at: chrono::Utc::now(),
                })
                .await
                .unwrap();
            store
                .recording_completed(&evil, 1, 1, chrono::Utc::now())
                .await
                .unwrap();
            store.close().await;
        });
    let r = send(
        server.http,
        "GET",
        &format!("/api/v1/recordings/{evil}"),
        &[("Authorization", bearer.as_str())],
        b"",
    );
    assert_eq!(r.status, 404);
    assert!(!r.text().contains("api_tokens"));
}

#[test]
fn session_cookie_and_csrf() {
    let server = Server::start("");
    let r = send(
        server.http,
        "POST",
        "/api/v1/session",
        &[],
        br#"{"token":"wrong-token-wrong-token"}"#,
    );
    assert_eq!(r.status, 401);
    let body = format!(r#"{{"token":"{MANAGER_TOKEN}"}}"#);
    let r = send(server.http, "POST", "/api/v1/session", &[], body.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let set_cookie = r.header("set-cookie").expect("a cookie").to_string();
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let csrf = r.json()["csrf"].as_str().unwrap().to_string();
    assert!(!set_cookie.contains(MANAGER_TOKEN));

    let r = send(
        server.http,
        "GET",
        "/api/v1/calls",
        &[("Cookie", &cookie)],
        b"",
    );
    assert_eq!(r.status, 200);
    let r = send(
        server.http,
        "GET",
        "/api/v1/session",
        &[("Cookie", &cookie)],
        b"",
    );
    assert_eq!(r.json()["csrf"], csrf.as_str());
    assert_eq!(r.json()["role"], "manager");
    let contact = br#"{"name":"Via the page"}"#;
    let r = send(
        server.http,
        "POST",
        "/api/v1/contacts",
        &[("Cookie", &cookie)],
        contact,
    );
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"]["code"], "auth.csrf");
    let r = send(
        server.http,
        "POST",
        "/api/v1/contacts",
        &[("Cookie", &cookie), ("X-CSRF-Token", "forged")],
        contact,
    );
    assert_eq!(r.json()["error"]["code"], "auth.csrf");
    let r = send(
        server.http,
        "POST",
        "/api/v1/contacts",
        &[("Cookie", &cookie), ("X-CSRF-Token", &csrf)],
        contact,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let r = send(
        server.http,
        "DELETE",
        "/api/v1/session",
        &[("Cookie", &cookie), ("X-CSRF-Token", &csrf)],
        b"",
    );
    assert_eq!(r.status, 204);
    let r = send(
        server.http,
        "GET",
        "/api/v1/calls",
        &[("Cookie", &cookie)],
        b"",
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], "auth.session_expired");

    let page = send(server.http, "GET", "/", &[], b"");
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-security-policy")
            .unwrap()
            .contains("script-src 'self'")
    );
    assert!(page.text().contains("/static/app.js"));
}

#[test]
fn openapi_describes_every_route() {
    let server = Server::start("");
    let (status, doc) = server.request("GET", "/api/v1/openapi.json", None);
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().expect("paths");
    for (path, method) in [
        ("/api/v1/calls", "get"),
        ("/api/v1/calls/{id}", "get"),
        ("/api/v1/recordings/{id}", "get"),
        ("/api/v1/leads", "get"),
        ("/api/v1/leads", "post"),
        ("/api/v1/leads/{id}", "delete"),
        ("/api/v1/leads/{id}/timeline", "get"),
        ("/api/v1/leads/{id}/convert", "post"),
        ("/api/v1/contacts", "post"),
        ("/api/v1/contacts/{id}/timeline", "get"),
        ("/api/v1/operators", "get"),
        ("/api/v1/operators/{ext}/status", "put"),
        ("/api/v1/ratings", "get"),
        ("/api/v1/session", "post"),
        ("/api/v1/events", "get"),
        ("/healthz", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path}"
        );
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[test]
fn a_crash_closed_call_reaches_the_timeline_at_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), "", &[]);
    let peer = UdpPeer::new(server.sip);
    let port = peer.port();
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7078 RTP/AVP 0\r\n";
    let invite = format!(
        "INVITE sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKcrashcrm;rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:+380501234567@127.0.0.1>;tag=c1\r\nTo: <sip:100@127.0.0.1>\r\n\
         Call-ID: crash-crm\r\nCSeq: 1 INVITE\r\nContact: <sip:x@127.0.0.1:{port}>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    peer.request(&invite, "200 OK");
    server.wait_for_calls("", "the open call", |c| c.len() == 1);
    server.kill();
    let server = Server::start_in(dir.path(), "", &[]);
    let leads = wait_for_json(&server, "/api/v1/leads", "the lead", |b| {
        b["items"].as_array().is_some_and(|a| a.len() == 1)
    });
    assert_eq!(leads["items"][0]["phones"], json!(["+380501234567"]));
    let lead = leads["items"][0]["id"].as_str().unwrap();
    let (_, timeline) = server.get(&format!("/api/v1/leads/{lead}/timeline"));
    assert_eq!(
        timeline["entries"][0]["data"]["disposition"],
        "system.crashed"
    );
}
