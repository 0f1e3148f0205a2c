//! Entry points of the fuzz targets (`fuzz/`, run with cargo-afl) and of the corpus replay test
//! (`tests/fuzz_corpus.rs`): one function per kind of untrusted input, each taking raw bytes and
//! driving the same code the server runs on them. None may panic, loop or allocate without bound,
//! whatever the bytes; what they return is irrelevant. RELIABILITY.md has the runs.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::media::g711::Law;
use crate::media::session::{Direction, MediaSession, SessionConfig};
use crate::sip::endpoint::{Endpoint, EndpointConfig};
use crate::sip::registrar::RegistrarConfig;
use crate::sip::transaction::TimerConfig;
use crate::sip::transport::{Peer, TransportKind};

/// A fuzz target: any bytes in, nothing out.
pub type Target = fn(&[u8]);

/// Every target, by the name its binary and corpus folder have.
pub const TARGETS: &[(&str, Target)] = &[
    ("sip_message", sip_message),
    ("sdp", sdp),
    ("digest", digest),
    ("rtp", rtp),
    ("ivr_yaml", ivr_yaml),
    ("config", config),
    ("http_json", http_json),
];

fn peer() -> Peer {
    Peer {
        transport: TransportKind::Udp,
        addr: SocketAddr::from(([192, 0, 2, 7], 5060)),
        conn: None,
    }
}

/// The SIP parser and the message layer: the bytes as one datagram to a fresh endpoint (an
/// operator 101 is known, so REGISTER and INVITE digest paths run), then the same bytes again
/// (a retransmission), then every timer until the endpoint is idle. A request's Refer-To goes
/// through the REFER parser too (the endpoint only reads it in a dialog, which a fresh one has
/// none of).
pub fn sip_message(data: &[u8]) {
    if let Ok(crate::sip::message::Message::Request(request)) = crate::sip::message::parse(data) {
        let _ = crate::sip::refer::parse_refer_to(request.headers.get_all("Refer-To"));
    }
    let mut endpoint = Endpoint::new(EndpointConfig {
        timers: TimerConfig::default(),
        registrar: RegistrarConfig::default(),
        advertised: "127.0.0.1:5060".into(),
        external_prefix: Some("9".into()),
        nonce_secret: [7; 32],
    });
    endpoint.registrar_mut().set_operator(
        "101",
        crate::sip::registrar::OperatorSecret {
            ha1_md5: "0".repeat(32),
            ha1_sha256: "0".repeat(64),
        },
    );
    let t0 = Instant::now();
    let utc = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
    endpoint.handle_packet(t0, utc, peer(), data);
    endpoint.handle_packet(t0 + Duration::from_millis(1), utc, peer(), data);
    let mut now = t0;
    for _ in 0..64 {
        while endpoint.poll_output().is_some() {}
        let Some(next) = endpoint.poll_timeout() else {
            break;
        };
        now = next.max(now + Duration::from_millis(1));
        endpoint.handle_timeout(now);
    }
}

/// An SDP offer: negotiated, and when usable, answered.
pub fn sdp(data: &[u8]) {
    if let Ok(negotiated) = crate::sip::sdp::negotiate(data) {
        let origin = crate::sip::sdp::Origin::new([127, 0, 0, 1].into(), 1);
        let _ = crate::sip::sdp::write(&origin, 20_000, Some(&negotiated));
    }
}

/// `WWW-Authenticate` / `Authorization` header values.
pub fn digest(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = crate::sip::auth::Challenge::parse(&text);
    let _ = crate::sip::auth::Credentials::parse(&text);
}

/// One datagram on a call's RTP port and on its RTCP port (RTP, RFC 4733 events, RTCP), into a
/// media session that expects PCMU with telephone-event 101 from the sender's address.
pub fn rtp(data: &[u8]) {
    let t0 = Instant::now();
    let from = SocketAddr::from(([127, 0, 0, 1], 40_000));
    let config = SessionConfig {
        law: Law::Ulaw,
        event_pt: Some(101),
        remote: Some(from),
        direction: Direction::SendRecv,
        media_timeout: Duration::from_secs(60),
        ptime: Duration::from_millis(20),
    };
    let mut session = MediaSession::new(t0, t0, config, 0xabcd, 100, 50_000);
    let _ = crate::media::dtmf::TelephoneEvent::parse(data);
    for i in 0..3u64 {
        let now = t0 + Duration::from_millis(20 * i);
        session.on_rtp(now, from, data);
        session.on_rtcp(now, from, data);
        session.handle_timeout(now);
        while session.poll_output().is_some() {}
    }
}

/// An IVR flow file as an admin writes it (every sound exists, text-to-speech is installed).
pub fn ivr_yaml(data: &[u8]) {
    let text = String::from_utf8_lossy(data).into_owned();
    let _ = crate::ivr::load_set(&[("fuzz.yaml".into(), text)], &|_| true, true);
}

/// The TOML config file: parsed and validated.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(file) = crate::config::FileConfig::parse(&text) {
        let _ = file.validate();
    }
}

/// HTTP request bodies: every JSON body the API reads, and the recipients CSV of a broadcast.
pub fn http_json(data: &[u8]) {
    crate::api::parse_request_bodies(data);
    let _ = crate::broadcast::recipients::read_csv(data);
}
