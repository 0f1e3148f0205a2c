//! HTTP API tests against the running server: health, metrics, tokens and roles, JSON errors.

mod common;

use common::*;

#[test]
fn health_and_metrics_need_no_token() {
    let server = Server::start("");
    let (status, body) = server.request("GET", "/healthz", None);
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
    assert_eq!(
        body["checks"],
        serde_json::json!({ "sip": true, "database": true, "records": true }),
        "{body}"
    );
    let peer = UdpPeer::new(server.sip);
    peer.send(options(peer.port(), "metrics").as_bytes());
    peer.expect("200 OK");
    let (status, text) = server.text("/metrics");
    assert_eq!(status, 200);
    assert!(
        text.contains("openline_sip_messages_received_total"),
        "{text}"
    );
}

#[test]
fn tokens_and_roles() {
    let server = Server::start("");
    let cases: &[(Option<&str>, u16, Option<&str>)] = &[
        (None, 401, Some("auth.missing_token")),
        (
            Some("not-a-real-token-at-all"),
            401,
            Some("auth.invalid_token"),
        ),
        // Operators see the calls of their own extension (none here).
        (Some(OPERATOR_TOKEN), 200, None),
        (Some(MANAGER_TOKEN), 200, None),
        (Some(ADMIN_TOKEN), 200, None),
    ];
    for (token, expected, code) in cases {
        let (status, body) = server.request("GET", "/api/v1/calls", *token);
        assert_eq!(status, *expected, "{token:?}: {body}");
        if let Some(code) = code {
            assert_eq!(body["error"]["code"], *code, "{body}");
            assert!(body["error"]["message"].is_string());
        }
    }
}

#[test]
fn bad_requests_get_json_errors_with_stable_codes() {
    let server = Server::start("");
    let cases = [
        (
            "/api/v1/calls?since=yesterday",
            400,
            "request.invalid_query",
        ),
        ("/api/v1/calls?limit=0", 400, "request.invalid_query"),
        ("/api/v1/calls?colour=blue", 400, "request.invalid_query"),
        ("/api/v1/calls/not-a-uuid", 404, "call.not_found"),
        (
            "/api/v1/calls/01890a5d-ac96-774b-bcce-b302099a8057",
            404,
            "call.not_found",
        ),
        ("/api/v1/nothing-here", 404, "route.not_found"),
    ];
    for (path, expected, code) in cases {
        let (status, body) = server.get(path);
        assert_eq!(status, expected, "{path}: {body}");
        assert_eq!(body["error"]["code"], code, "{path}: {body}");
    }
}

#[test]
fn call_list_filters_and_pages() {
    let server = Server::start("");
    let peer = UdpPeer::new(server.sip);
    for i in 0..3 {
        let id = format!("page-{i}");
        let ok = invite(&peer, &id, &format!("20{i}"));
        ack(&peer, &id, &ok);
    }
    server.wait_for_calls("", "3 calls", |c| c.len() == 3);
    let (_, body) = server.get("/api/v1/calls?limit=2");
    let first_page = body["calls"].as_array().unwrap().clone();
    assert_eq!(first_page.len(), 2);
    let cursor = body["next_before"]
        .as_str()
        .expect("a cursor when the page is full");
    let (_, body) = server.get(&format!("/api/v1/calls?limit=2&before={cursor}"));
    let second = body["calls"].as_array().unwrap();
    assert_eq!(second.len(), 1);
    assert!(second[0]["id"].as_str() < first_page[1]["id"].as_str());
    let (_, body) = server.get("/api/v1/calls?number=201");
    let only = body["calls"].as_array().unwrap();
    assert_eq!(only.len(), 1);
    assert_eq!(only[0]["callee"], "201");
    let (_, body) = server.get("/api/v1/calls?since=2999-01-01T00:00:00Z");
    assert_eq!(body["calls"].as_array().unwrap().len(), 0);
}

/// 2026-05-01 10:00 UTC plus `minutes`.
fn at(minutes: i64) -> chrono::DateTime<chrono::Utc> {
    let t0 = chrono::DateTime::parse_from_rfc3339("2026-05-01T10:00:00Z").unwrap();
    t0.to_utc() + chrono::Duration::minutes(minutes)
}

/// Queue calls as the queue runtime records them, straight into the server's database:
/// (minute, callee, queue, operator, wait_ms, rating). Returns the call ids in that order.
fn seed_queue_calls(server: &Server) -> Vec<String> {
    type Row = (
        i64,
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
        i64,
        Option<i32>,
    );
    let rows: [Row; 6] = [
        (0, "100", Some("sales"), Some("101"), 5_000, Some(4)),
        (1, "100", Some("sales"), Some("101"), 7_000, Some(5)),
        (2, "100", Some("support"), Some("101"), 1_000, Some(4)),
        (3, "100", Some("support"), Some("102"), 2_000, Some(2)),
        (4, "100", Some("sales"), None, 30_000, None), // the caller gave up waiting
        (5, "101", None, None, 0, None),               // dialled 101 directly
    ];
    with_store(server, None, |store| async move {
        let mut ids = Vec::new();
        for (minute, callee, queue, operator, wait_ms, rating) in rows {
            let started_at = at(minute);
            let ts = uuid::Timestamp::from_unix(uuid::NoContext, started_at.timestamp() as u64, 0);
            let id = uuid::Uuid::new_v7(ts).to_string();
            let call = openline::store::NewCall {
                id: id.clone(),
                node_id: "seed".into(),
                direction: "inbound".into(),
                caller: format!("+38044123000{minute}"),
                caller_name: None,
                callee: callee.into(),
                started_at,
            };
            store.insert_call(&call).await.expect("insert call");
            if let Some(queue) = queue {
                store.set_call_queue(&id, queue).await.expect("queue");
                let outcome = store.set_call_queue_outcome(&id, operator, wait_ms);
                outcome.await.expect("queue outcome");
            }
            if let Some(rating) = rating {
                store.set_call_rating(&id, rating).await.expect("rating");
            }
            ids.push(id);
        }
        ids
    })
}

/// The ids at these indexes, in this order.
fn sel(ids: &[String], at: &[usize]) -> Vec<String> {
    at.iter().map(|&i| ids[i].clone()).collect()
}

/// The ids of a call list answer.
fn ids(body: &serde_json::Value) -> Vec<String> {
    let calls = body["calls"].as_array().expect("calls");
    calls
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn calls_by_queue_and_operator() {
    let server = Server::start("");
    let c = seed_queue_calls(&server);
    let (status, body) = server.get("/api/v1/calls?queue=sales");
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids(&body), sel(&c, &[4, 1, 0]));
    let first = &body["calls"][2];
    assert_eq!(
        (
            &first["queue"],
            &first["operator"],
            &first["wait_ms"],
            &first["rating"]
        ),
        (&"sales".into(), &"101".into(), &5_000.into(), &4.into())
    );
    assert!(body["calls"][0]["operator"].is_null(), "{body}");
    let (_, body) = server.get("/api/v1/calls?operator=101");
    assert_eq!(ids(&body), sel(&c, &[2, 1, 0]), "taken from a queue");
    let (_, body) = server.get("/api/v1/calls?queue=support&operator=102");
    assert_eq!(ids(&body), sel(&c, &[3]));
    let (_, body) = server.get("/api/v1/calls?rating=2");
    assert_eq!(ids(&body), sel(&c, &[3]));
    let (status, body) = server.get("/api/v1/calls?rating=6");
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &"request.invalid_query".into())
    );

    // An operator token sees the calls it took from a queue and the ones it was a party to.
    let (_, body) = server.request("GET", "/api/v1/calls", Some(OPERATOR_TOKEN));
    assert_eq!(ids(&body), sel(&c, &[5, 2, 1, 0]));
    let (_, body) = server.request("GET", "/api/v1/calls?queue=sales", Some(OPERATOR_TOKEN));
    assert_eq!(ids(&body), sel(&c, &[1, 0]));
    let (_, body) = server.request("GET", "/api/v1/calls?operator=102", Some(OPERATOR_TOKEN));
    assert_eq!(ids(&body), Vec::<String>::new());
    let one =
        |id: &str| server.request("GET", &format!("/api/v1/calls/{id}"), Some(OPERATOR_TOKEN));
    assert_eq!(one(&c[0]).0, 200);
    assert_eq!(one(&c[3]).0, 404, "102's call");
}

#[test]
fn ratings_by_role_with_averages() {
    let server = Server::start("");
    let c = seed_queue_calls(&server);
    let (status, body) = server.get("/api/v1/ratings");
    assert_eq!(status, 200, "{body}");
    let rated: Vec<_> = body["ratings"].as_array().unwrap().iter().collect();
    let got: Vec<_> = rated
        .iter()
        .map(|r| {
            (
                r["call_id"].as_str().unwrap(),
                r["rating"].as_i64().unwrap(),
            )
        })
        .collect();
    let want = [
        (c[3].as_str(), 2),
        (c[2].as_str(), 4),
        (c[1].as_str(), 5),
        (c[0].as_str(), 4),
    ];
    assert_eq!(got, want, "newest first");
    assert_eq!(rated[0]["operator"], "102");
    assert_eq!(rated[0]["queue"], "support");
    assert_eq!(rated[0]["caller"], "+380441230003");
    assert_eq!(rated[0]["started_at"], "2026-05-01T10:03:00Z");
    let averages = serde_json::json!([
        { "operator": "101", "count": 3, "average": 4.33 },
        { "operator": "102", "count": 1, "average": 2.0 },
    ]);
    assert_eq!(body["averages"], averages);

    // Filters; the limit shortens the list but not the averages.
    let (_, body) = server.request("GET", "/api/v1/ratings?operator=102", Some(MANAGER_TOKEN));
    assert_eq!(body["ratings"].as_array().unwrap().len(), 1);
    assert_eq!(body["averages"], serde_json::json!([averages[1]]));
    let window = "since=2026-05-01T10:01:00Z&until=2026-05-01T10:03:00Z";
    let (_, body) = server.get(&format!("/api/v1/ratings?{window}"));
    let got: Vec<_> = body["ratings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["call_id"].clone())
        .collect();
    assert_eq!(got, [c[2].as_str(), c[1].as_str()]);
    assert_eq!(body["averages"][0]["average"], 4.5);
    let (_, body) = server.get("/api/v1/ratings?limit=1");
    assert_eq!(body["ratings"].as_array().unwrap().len(), 1);
    assert_eq!(body["averages"], averages);

    // An operator token: its own ratings only, and another's is forbidden.
    let (status, body) = server.request("GET", "/api/v1/ratings", Some(OPERATOR_TOKEN));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ratings"].as_array().unwrap().len(), 3);
    assert_eq!(body["averages"], serde_json::json!([averages[0]]));
    let (status, _) = server.request("GET", "/api/v1/ratings?operator=101", Some(OPERATOR_TOKEN));
    assert_eq!(status, 200);
    let (status, body) =
        server.request("GET", "/api/v1/ratings?operator=102", Some(OPERATOR_TOKEN));
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &"auth.forbidden".into())
    );
    let (status, body) = server.request("GET", "/api/v1/ratings", None);
    assert_eq!(
        (status, &body["error"]["code"]),
        (401, &"auth.missing_token".into())
    );

    for query in [
        "limit=0",
        "limit=x",
        "since=yesterday",
        "until=2026-13-01",
        "colour=blue",
    ] {
        let (status, body) = server.get(&format!("/api/v1/ratings?{query}"));
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["code"], "request.invalid_query", "{query}");
        assert!(body["error"]["message"].is_string());
    }
}

#[test]
fn operators_show_why_and_since_when() {
    let server = Server::start("");
    with_store(&server, None, |store| async move {
        let reason = Some("missed_rings:3");
        let set = store.set_operator_status("102", "away", reason, at(0));
        assert!(set.await.expect("set status"));
    });
    let (status, body) = server.get("/api/v1/operators");
    assert_eq!(status, 200, "{body}");
    let ops = body.as_array().unwrap();
    assert_eq!(ops[1]["extension"], "102");
    assert_eq!(ops[1]["status"], "away");
    assert_eq!(ops[1]["status_reason"], "missed_rings:3");
    assert_eq!(ops[1]["status_changed_at"], "2026-05-01T10:00:00Z");
    assert!(ops[0]["status_reason"].is_null());
    assert!(ops[0]["status_changed_at"].is_string(), "{body}");

    // A person setting the status clears the server's reason.
    let r = send(
        server.http,
        "PUT",
        "/api/v1/operators/102/status",
        &[("Authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        br#"{"status":"online"}"#,
    );
    let body = r.json();
    assert_eq!(r.status, 200, "{body}");
    assert_eq!(
        (&body["status"], &body["status_reason"]),
        (&"online".into(), &serde_json::Value::Null)
    );
    assert_ne!(body["status_changed_at"], "2026-05-01T10:00:00Z");
}

/// Regression (review of 832cd51): `/healthz` said "ok" whatever happened. With its PostgreSQL
/// database gone it answers 503 naming the database, and the node keeps answering.
#[test]
fn health_says_when_the_database_is_gone() {
    let Some(url) = postgres_database() else {
        return;
    };
    let temp = tempfile::tempdir().unwrap();
    let server = Server::start_with_database(temp.path(), "", &[], Some(&url));
    let (status, body) = server.request("GET", "/healthz", None);
    assert_eq!(
        (status, &body["status"]),
        (200, &serde_json::json!("ok")),
        "{body}"
    );
    let (base, name) = url.rsplit_once('/').unwrap();
    let admin_url = format!("{base}/postgres");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .expect("connect");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE {name} WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await
        .expect("drop the node's database");
    });
    let (status, body) = server.request("GET", "/healthz", None);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["checks"]["database"], false, "{body}");
    assert_eq!(body["checks"]["sip"], true, "{body}");
    let peer = UdpPeer::new(server.sip);
    peer.send(options(peer.port(), "still-up").as_bytes());
    peer.expect("200 OK");
}

/// POST with a JSON body and a bearer token; (status, parsed JSON, the raw response).
fn post_json(server: &Server, path: &str, token: &str, body: &str) -> (u16, serde_json::Value) {
    let auth = format!("Bearer {token}");
    let r = send(
        server.http,
        "POST",
        path,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    );
    assert!(r.status != 201 || r.header("cache-control") == Some("no-store"));
    (r.status, r.json())
}

#[test]
fn tokens_created_through_the_api_work_until_revoked() {
    let server = Server::start("");
    // Only admins manage tokens.
    let (status, body) = post_json(
        &server,
        "/api/v1/tokens",
        MANAGER_TOKEN,
        r#"{"role":"manager","label":"x"}"#,
    );
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &"auth.forbidden".into())
    );
    let (status, _) = server.request("GET", "/api/v1/tokens", Some(MANAGER_TOKEN));
    assert_eq!(status, 403);

    let bad = [
        (r#"{"role":"root","label":"x"}"#, "token.invalid_role"),
        (r#"{"role":"manager","label":" "}"#, "request.invalid_body"),
        (
            r#"{"role":"manager","label":"config"}"#,
            "token.reserved_label",
        ),
        (
            r#"{"role":"operator","label":"x"}"#,
            "token.extension_required",
        ),
        (
            r#"{"role":"operator","extension":"999","label":"x"}"#,
            "token.unknown_operator",
        ),
        (
            r#"{"role":"manager","extension":"101","label":"x"}"#,
            "token.extension_not_allowed",
        ),
        (r#"{"role":"manager"}"#, "request.invalid_body"),
    ];
    for (body, code) in bad {
        let (status, answer) = post_json(&server, "/api/v1/tokens", ADMIN_TOKEN, body);
        assert_eq!(
            (status, &answer["error"]["code"]),
            (400, &code.into()),
            "{body}: {answer}"
        );
    }

    let (status, created) = post_json(
        &server,
        "/api/v1/tokens",
        ADMIN_TOKEN,
        r#"{"role":"operator","extension":"101","label":"Olena's laptop"}"#,
    );
    assert_eq!(status, 201, "{created}");
    let token = created["token"].as_str().unwrap().to_string();
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["role"], "operator");
    assert_eq!(created["extension"], "101");
    assert_eq!(created["from_config"], false);
    let (status, _) = server.request("GET", "/api/v1/calls", Some(&token));
    assert_eq!(status, 200, "the new token works");
    // Operator scope: it cannot manage tokens.
    let (status, _) = server.request("GET", "/api/v1/tokens", Some(&token));
    assert_eq!(status, 403);

    // The list shows it, never the token or its hash.
    let (status, list) = server.get("/api/v1/tokens");
    assert_eq!(status, 200);
    let text = list.to_string();
    assert!(!text.contains(&token), "{text}");
    assert!(!text.contains("sha256"), "{text}");
    let items = list["items"].as_array().unwrap();
    let mine = items.iter().find(|t| t["id"] == id).expect("listed");
    assert_eq!(mine["label"], "Olena's laptop");
    let config: Vec<_> = items.iter().filter(|t| t["from_config"] == true).collect();
    assert_eq!(config.len(), 3, "the test config's three tokens: {list}");

    // A browser session opened with the token ends with it.
    let r = send(
        server.http,
        "POST",
        "/api/v1/session",
        &[],
        format!(r#"{{"token":"{token}"}}"#).as_bytes(),
    );
    assert_eq!(r.status, 200);
    let cookie = r
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();

    let (status, _) = server.request("DELETE", &format!("/api/v1/tokens/{id}"), Some(ADMIN_TOKEN));
    assert_eq!(status, 204);
    let (status, body) = server.request("GET", "/api/v1/calls", Some(&token));
    assert_eq!(
        (status, &body["error"]["code"]),
        (401, &"auth.invalid_token".into())
    );
    let r = send(
        server.http,
        "GET",
        "/api/v1/calls",
        &[("Cookie", &cookie)],
        b"",
    );
    assert_eq!(r.status, 401, "the token's session ended with it");
    let (status, body) =
        server.request("DELETE", &format!("/api/v1/tokens/{id}"), Some(ADMIN_TOKEN));
    assert_eq!(
        (status, &body["error"]["code"]),
        (404, &"token.not_found".into())
    );

    // Config tokens are revoked in the file, not here.
    let config_id = config[0]["id"].as_i64().unwrap();
    let (status, body) = server.request(
        "DELETE",
        &format!("/api/v1/tokens/{config_id}"),
        Some(ADMIN_TOKEN),
    );
    assert_eq!(
        (status, &body["error"]["code"]),
        (409, &"token.from_config".into())
    );
}
