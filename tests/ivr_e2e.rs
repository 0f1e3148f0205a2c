//! IVR end to end: a real caller over 127.0.0.1 walks YAML flows with RFC 4733, in-band and SIP
//! INFO keys (SIPp), leaves a voicemail, goes through a webhook (answered and timed out), and flows
//! reload while a call is in them. The visited path is read back from the call record.

mod common;

use common::rtp::RtpPeer;
use common::*;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

struct Ivr {
    server: Server,
    flows: PathBuf,
    _temp: tempfile::TempDir,
}

fn ivr_server(flows: &[(&str, &str)], config: &str) -> Ivr {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("flows");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in flows {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let server = Server::start_in(temp.path(), config, &["--flows", dir.to_str().unwrap()]);
    Ivr {
        server,
        flows: dir,
        _temp: temp,
    }
}

/// One caller: INVITE, then `script` (audio and RFC 4733 keys) in real time; returns the 200 OK.
/// The caller's SIP peer and its RTP port (kept open by the test while the call lasts, as a
/// phone keeps it: a closed port answers our RTP with ICMP errors).
fn call(server: &Server, id: &str, audio: &[i16], keys: &[(usize, char)]) -> (UdpPeer, RtpPeer) {
    let sip = UdpPeer::new(server.sip);
    let mut rtp = RtpPeer::new();
    let ok = invite_with(&sip, id, "100", &offer(rtp.port(), 101));
    rtp.remote = Some(sdp_media_addr(&ok));
    ack(&sip, id, &ok);
    let events: Vec<(usize, char, u8)> = keys.iter().map(|(at, k)| (*at, *k, 101)).collect();
    rtp.converse(audio, &events);
    (sip, rtp)
}

/// The server ends the call: answer its BYE.
fn expect_bye(sip: &UdpPeer) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(msg) = sip.recv()
            && msg.starts_with("BYE ")
        {
            answer_ok(sip, &msg);
            return;
        }
    }
    panic!("the server did not hang up");
}

/// The finished call whose path has `nodes` (in order) for `caller_id`.
fn finished_call(server: &Server, sip_call_id: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = server.get("/api/v1/calls?limit=100");
        for c in body["calls"].as_array().cloned().unwrap_or_default() {
            let (_, call) = server.get(&format!("/api/v1/calls/{}", c["id"].as_str().unwrap()));
            let ours = call["legs"][0]["sip_call_id"] == sip_call_id;
            if ours && !call["ended_at"].is_null() {
                return call;
            }
        }
        assert!(
            Instant::now() < deadline,
            "call {sip_call_id} did not finish"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn path_of(call: &serde_json::Value) -> Vec<(String, String)> {
    call["flow_path"]
        .as_array()
        .unwrap_or_else(|| panic!("no flow path: {call:#}"))
        .iter()
        .map(|s| {
            (
                s["node"].as_str().unwrap().to_string(),
                s["digits"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

const MENU: &str = "id: main
entry: menu
nodes:
  menu:
    menu:
      play: main-menu.wav
      timeout: 10s
      options: { \"1\": one, \"2\": two }
  one:
    play: goodbye.wav
  two:
    play: thanks.wav
";

#[test]
fn menu_keys_as_rfc4733_and_in_band_tones_are_in_the_call_path() {
    let ivr = ivr_server(&[("main.yaml", MENU)], "");
    // '2' as an RFC 4733 event while the menu prompt plays (barge-in).
    let (sip, _rtp) = call(&ivr.server, "ivr-event", &vec![0; 8000], &[(2400, '2')]);
    expect_bye(&sip);
    let record = finished_call(&ivr.server, "ivr-event");
    assert_eq!(record["flow_id"], "main");
    assert_eq!(
        path_of(&record),
        vec![("menu".into(), "2".into()), ("two".into(), String::new())]
    );
    assert_eq!(record["disposition"], "ivr.completed");

    // '1' as an in-band tone only.
    let mut audio = vec![0i16; 2400];
    audio.extend(openline::media::dtmf::tone('1', 100, 7000));
    audio.extend(vec![0i16; 8000]);
    let (sip, _rtp) = call(&ivr.server, "ivr-tone", &audio, &[]);
    expect_bye(&sip);
    let record = finished_call(&ivr.server, "ivr-tone");
    assert_eq!(
        path_of(&record),
        vec![("menu".into(), "1".into()), ("one".into(), String::new())]
    );
}

const TWO_LEVELS: &str = "id: main
entry: menu
nodes:
  menu:
    menu:
      play: main-menu.wav
      timeout: 10s
      options: { \"2\": billing }
  billing:
    menu:
      play: main-menu.wav
      timeout: 10s
      options: { \"1\": done }
  done:
    play: goodbye.wav
";

#[test]
fn sip_info_digits_from_sipp_drive_a_two_level_menu_and_a_bad_body_gets_400() {
    let ivr = ivr_server(&[("main.yaml", TWO_LEVELS)], "");
    let work = tempfile::tempdir().unwrap();
    let args: Vec<String> = [
        ivr.server.sip.to_string(),
        "-i".into(),
        "127.0.0.1".into(),
        "-mp".into(),
        free_media_port().to_string(),
        "-sf".into(),
        data_path("sipp/uac_info_dtmf.xml").display().to_string(),
        "-cid_str".into(),
        "info-dtmf-%u".into(),
        "-m".into(),
        "1".into(),
    ]
    .into();
    let (code, output) = sipp(work.path(), &args);
    assert_eq!(code, 0, "SIPp's INFO scenario failed:\n{output}");
    let record = finished_call(&ivr.server, "info-dtmf-1");
    assert_eq!(
        path_of(&record),
        vec![
            ("menu".into(), "2".into()),
            ("billing".into(), "1".into()),
            ("done".into(), String::new())
        ]
    );
    assert_eq!(record["disposition"], "ivr.completed");
    let digits: Vec<(String, String)> = record["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "digit")
        .map(|e| {
            let d = &e["detail"];
            (
                d["digit"].as_str().unwrap().into(),
                d["source"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        digits,
        vec![
            ("2".into(), "sip_info".into()),
            ("1".into(), "sip_info".into())
        ]
    );
}

#[test]
fn voicemail_leaves_a_wav_recording_on_the_call() {
    let flow = "id: main
entry: vm
nodes:
  vm:
    voicemail: { greeting: beep.wav, beep: false, max_length: 20s, next: saved }
  saved:
    play: voicemail-saved.wav
";
    let ivr = ivr_server(&[("main.yaml", flow)], "");
    // Speak for 2.5 s after the greeting, then press # to finish.
    let voice = common::rtp::test_signal(8000, 3.0, 3.0);
    let (sip, _rtp) = call(&ivr.server, "ivr-vm", &voice, &[(23_000, '#')]);
    expect_bye(&sip);
    let record = finished_call(&ivr.server, "ivr-vm");
    assert_eq!(record["disposition"], "voicemail.left", "{record:#}");
    let recordings = record["recordings"].as_array().unwrap();
    let vm = recordings
        .iter()
        .find(|r| r["status"] == "complete")
        .expect("a complete voicemail recording");
    let seconds = vm["duration_ms"].as_i64().unwrap() as f64 / 1000.0;
    assert!((1.5..3.5).contains(&seconds), "voicemail of {seconds} s");
    let id = vm["id"].as_str().unwrap();
    let (status, _) = http(
        ivr.server.http,
        "GET",
        &format!("/api/v1/recordings/{id}"),
        Some(ADMIN_TOKEN),
    );
    assert_eq!(status, 200);
}

/// A one-shot local HTTP server: answers `answer` after `delay`; returns the request it got.
fn webhook_server(answer: &'static str, delay: Duration) -> (u16, std::thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&request).contains("}") {
            let n = stream.read(&mut buf).unwrap_or(0);
            if n == 0 {
                break;
            }
            request.extend_from_slice(&buf[..n]);
        }
        std::thread::sleep(delay);
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
            answer.len()
        );
        String::from_utf8_lossy(&request).to_string()
    });
    (port, handle)
}

fn webhook_flow(port: u16) -> String {
    format!(
        "id: main
entry: ask
nodes:
  ask:
    webhook: {{ url: \"http://127.0.0.1:{port}/lookup?caller=${{caller}}\", timeout: 1s, next: normal, on_error: failed }}
  vip:
    play: thanks.wav
  normal:
    play: goodbye.wav
  failed:
    play: invalid.wav
"
    )
}

#[test]
fn webhook_answer_picks_the_next_node_and_a_timeout_takes_the_error_branch() {
    let (port, request) = webhook_server(
        "{\"next\": \"vip\", \"set\": {\"tier\": \"gold\"}}",
        Duration::ZERO,
    );
    let ivr = ivr_server(&[("main.yaml", &webhook_flow(port))], "");
    let (sip, _rtp) = call(&ivr.server, "ivr-hook", &vec![0; 4000], &[]);
    expect_bye(&sip);
    let record = finished_call(&ivr.server, "ivr-hook");
    assert_eq!(
        path_of(&record)
            .iter()
            .map(|s| s.0.as_str())
            .collect::<Vec<_>>(),
        ["ask", "vip"]
    );
    let request = request.join().unwrap();
    assert!(
        request.starts_with("POST /lookup?caller=caller "),
        "{request}"
    );
    assert!(request.contains("\"variables\""), "{request}");

    let (port, slow) = webhook_server("{\"next\": \"vip\"}", Duration::from_secs(3));
    std::fs::write(ivr.flows.join("main.yaml"), webhook_flow(port)).unwrap();
    wait_for_reload(&ivr.server, 1);
    let (sip, _rtp) = call(&ivr.server, "ivr-slow", &vec![0; 16000], &[]);
    expect_bye(&sip);
    let record = finished_call(&ivr.server, "ivr-slow");
    assert_eq!(
        path_of(&record)
            .iter()
            .map(|s| s.0.as_str())
            .collect::<Vec<_>>(),
        ["ask", "failed"]
    );
    let _ = slow.join();
}

/// Waits until the server has reloaded its flows `count` times (metrics), never a fixed sleep.
fn wait_for_reload(server: &Server, count: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, metrics) = server.text("/metrics");
        let reloads: u64 = metrics
            .lines()
            .filter(|l| l.starts_with("openline_flow_reloads_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum();
        if reloads >= count {
            return;
        }
        assert!(Instant::now() < deadline, "no flow reload seen");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn versioned(version: &str) -> String {
    format!(
        "id: main
entry: wait_{version}
nodes:
  wait_{version}:
    gather: {{ var: k, max_digits: 1, timeout: 20s, next: end_{version}, on_fail: end_{version} }}
  end_{version}:
    play: goodbye.wav
"
    )
}

#[test]
fn hot_reload_leaves_running_calls_alone_and_rejects_a_broken_edit() {
    let ivr = ivr_server(&[("main.yaml", &versioned("v1"))], "");
    // Call 1 enters v1 and waits in its gather while the file changes.
    let sip1 = UdpPeer::new(ivr.server.sip);
    let mut rtp1 = RtpPeer::new();
    let ok1 = invite_with(&sip1, "reload-1", "100", &offer(rtp1.port(), 101));
    rtp1.remote = Some(sdp_media_addr(&ok1));
    ack(&sip1, "reload-1", &ok1);
    rtp1.converse(&vec![0; 1600], &[]);

    std::fs::write(ivr.flows.join("main.yaml"), versioned("v2")).unwrap();
    wait_for_reload(&ivr.server, 1);
    let (sip2, _rtp2) = call(&ivr.server, "reload-2", &vec![0; 4000], &[(800, '5')]);
    expect_bye(&sip2);
    let second = finished_call(&ivr.server, "reload-2");
    assert_eq!(
        path_of(&second)[0].0,
        "wait_v2",
        "the next call sees the change"
    );

    // Call 1 finishes on the version it started with.
    rtp1.converse(&vec![0; 4000], &[(800, '7', 101)]);
    expect_bye(&sip1);
    let first = finished_call(&ivr.server, "reload-1");
    assert_eq!(
        path_of(&first),
        vec![
            ("wait_v1".into(), "7".into()),
            ("end_v1".into(), String::new())
        ]
    );

    // A broken edit is rejected and logged; v2 keeps serving.
    std::fs::write(
        ivr.flows.join("main.yaml"),
        "id: main\nentry: nowhere\nnodes:\n  a:\n    plya: x.wav\n",
    )
    .unwrap();
    wait_for_reload(&ivr.server, 2);
    assert!(
        ivr.server.log().contains("flow rejected"),
        "{}",
        ivr.server.log()
    );
    let (sip3, _rtp3) = call(&ivr.server, "reload-3", &vec![0; 4000], &[(800, '1')]);
    expect_bye(&sip3);
    let third = finished_call(&ivr.server, "reload-3");
    assert_eq!(path_of(&third)[0].0, "wait_v2");
}

#[test]
fn unrouted_numbers_get_404() {
    let ivr = ivr_server(&[("main.yaml", MENU)], "[routes]\n\"100\" = \"main\"\n");
    let sip = UdpPeer::new(ivr.server.sip);
    let port = sip.port();
    let msg = format!(
        "INVITE sip:555@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKunrouted;rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:caller@127.0.0.1>;tag=u\r\nTo: <sip:555@127.0.0.1>\r\nCall-ID: unrouted\r\n\
         CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    );
    sip.send(msg.as_bytes());
    sip.expect("404 Not Found");
}

#[test]
fn check_flows_reports_file_line_and_column() {
    let bin = env!("CARGO_BIN_EXE_openline");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let good = std::process::Command::new(bin)
        .args(["check-flows", "--sounds"])
        .arg(repo.join("sounds"))
        .arg(repo.join("ivr-flows"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&good.stdout);
    assert!(
        good.status.success(),
        "shipped flows must load clean:\n{out}"
    );
    assert!(out.contains("0 error(s)"), "{out}");

    let temp = tempfile::tempdir().unwrap();
    let broken = temp.path().join("broken.yaml");
    std::fs::write(
        &broken,
        "id: main\nentry: a\nnodes:\n  a:\n    play: hello.wav\n    next: b\n",
    )
    .unwrap();
    let bad = std::process::Command::new(bin)
        .args(["check-flows", "--sounds"])
        .arg(repo.join("sounds"))
        .arg(&broken)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{out}");
    let expected = format!("{}:5:11:", broken.display());
    assert!(out.contains(&expected), "wants {expected} in:\n{out}");
}

fn api(server: &Server, method: &str, path: &str, token: &str, body: &str) -> HttpResponse {
    let bearer = format!("Bearer {token}");
    let headers = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/yaml"),
    ];
    send(server.http, method, path, &headers, body.as_bytes())
}

#[test]
fn flows_api_lists_reads_and_replaces_a_flow_with_line_and_column_errors() {
    let ivr = ivr_server(&[("main.yaml", MENU)], "");
    let server = &ivr.server;
    let list = api(server, "GET", "/api/v1/flows", MANAGER_TOKEN, "");
    assert_eq!(list.status, 200);
    assert_eq!(list.json()[0]["id"], "main");
    assert_eq!(list.json()[0]["file"], "main.yaml");
    assert_eq!(
        api(server, "GET", "/api/v1/flows", OPERATOR_TOKEN, "").status,
        403
    );
    let one = api(server, "GET", "/api/v1/flows/main", MANAGER_TOKEN, "");
    assert_eq!(one.status, 200);
    assert_eq!(one.text(), MENU);
    assert_eq!(
        api(server, "GET", "/api/v1/flows/nope", MANAGER_TOKEN, "").status,
        404
    );

    // A broken text is refused with its line and column; nothing changes.
    let broken = MENU.replace("options: { \"1\": one", "options: { \"1\": nowhere");
    let refused = api(server, "PUT", "/api/v1/flows/main", ADMIN_TOKEN, &broken);
    assert_eq!(refused.status, 422, "{}", refused.text());
    assert_eq!(refused.json()["error"]["code"], "flow.invalid");
    let message = refused.json()["diagnostics"][0]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("main.yaml:8:23: option `1` of node `menu` points to `nowhere`"),
        "{message}"
    );
    assert_eq!(
        api(server, "PUT", "/api/v1/flows/main", MANAGER_TOKEN, MENU).status,
        403
    );
    let mismatch = api(server, "PUT", "/api/v1/flows/other", ADMIN_TOKEN, MENU);
    assert_eq!(mismatch.status, 400, "{}", mismatch.text());
    assert_eq!(
        std::fs::read_to_string(ivr.flows.join("main.yaml")).unwrap(),
        MENU
    );

    // A good text is written and served to the next call.
    let replaced = MENU.replace("two:\n    play: thanks.wav", "two:\n    play: goodbye.wav");
    let ok = api(server, "PUT", "/api/v1/flows/main", ADMIN_TOKEN, &replaced);
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(
        std::fs::read_to_string(ivr.flows.join("main.yaml")).unwrap(),
        replaced
    );
    wait_for_reload(server, 1);
    assert_eq!(
        api(server, "GET", "/api/v1/flows/main", MANAGER_TOKEN, "").text(),
        replaced
    );
}
