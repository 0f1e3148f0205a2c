//! The IVR `dial` node end to end over real sockets. Dialing an extension with no live binding
//! takes the node's `on_fail` branch at once. (Ringing and bridging a registered operator is not
//! wired into the call layer yet; the SIP core's outbound legs are unit-tested in
//! src/sip/endpoint/uac_tests.rs.)

mod common;

use common::rtp::RtpPeer;
use common::*;
use std::time::{Duration, Instant};

const FLOW: &str = "id: main
entry: op
nodes:
  op:
    dial: { to: \"101\", timeout: 10s, next: after, on_fail: failed }
  after:
    play: thanks.wav
  failed:
    play: goodbye.wav
";

#[test]
fn dialing_an_unregistered_extension_takes_on_fail() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("flows");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("main.yaml"), FLOW).unwrap();
    let server = Server::start_in(temp.path(), "", &["--flows", dir.to_str().unwrap()]);

    let sip = UdpPeer::new(server.sip);
    let mut rtp = RtpPeer::new();
    let ok = invite_with(&sip, "dial-unregistered", "100", &offer(rtp.port(), 101));
    rtp.remote = Some(sdp_media_addr(&ok));
    ack(&sip, "dial-unregistered", &ok);
    rtp.converse(&vec![0; 1600], &[]);

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut hung_up = false;
    while !hung_up && Instant::now() < deadline {
        if let Some(msg) = sip.recv()
            && msg.starts_with("BYE ")
        {
            answer_ok(&sip, &msg);
            hung_up = true;
        }
    }
    assert!(hung_up, "the server did not hang up");

    let call = loop {
        let (_, body) = server.get("/api/v1/calls?limit=10");
        let found = body["calls"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .find_map(|c| {
                let (_, call) = server.get(&format!("/api/v1/calls/{}", c["id"].as_str().unwrap()));
                (call["legs"][0]["sip_call_id"] == "dial-unregistered"
                    && !call["ended_at"].is_null())
                .then_some(call)
            });
        if let Some(call) = found {
            break call;
        }
        assert!(Instant::now() < deadline, "the call did not finish");
        std::thread::sleep(Duration::from_millis(100));
    };
    let nodes: Vec<&str> = call["flow_path"]
        .as_array()
        .unwrap_or_else(|| panic!("no flow path: {call:#}"))
        .iter()
        .map(|s| s["node"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["op", "failed"], "{call:#}");
    assert!(
        server.log().contains("dial.not_registered"),
        "{}",
        server.log()
    );
}
