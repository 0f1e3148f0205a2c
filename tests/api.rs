//! HTTP API tests against the running server: health, metrics, tokens and roles, JSON errors.

mod common;

use common::*;

#[test]
fn health_and_metrics_need_no_token() {
    let server = Server::start("");
    let (status, body) = server.request("GET", "/healthz", None);
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
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
