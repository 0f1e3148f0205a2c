//! Media session tests in virtual time: pacing and timestamps across pauses, digits both ways,
//! barge-in, latching, hold and the media timeout, relaying between bridged legs.

use super::*;
use crate::media::rtp::Outgoing;
use rtc_rtp::Packet;
use rtc_shared::marshal::Unmarshal;

const PEER: &str = "127.0.0.1:40000";
const MS20: Duration = Duration::from_millis(20);

fn config(law: Law, event_pt: Option<u8>) -> SessionConfig {
    SessionConfig {
        law,
        event_pt,
        remote: Some(PEER.parse().unwrap()),
        direction: Direction::SendRecv,
        media_timeout: Duration::from_secs(60),
        ptime: MS20,
    }
}

fn session(t0: Instant, law: Law, event_pt: Option<u8>) -> MediaSession {
    MediaSession::new(t0, t0, config(law, event_pt), 0xabcd, 100, 50_000)
}

/// Drains outputs: (RTP packets parsed, events).
fn drain(s: &mut MediaSession) -> (Vec<Packet>, Vec<MediaEvent>, Vec<Relay>) {
    let (mut rtp, mut events, mut relays) = (Vec::new(), Vec::new(), Vec::new());
    while let Some(out) = s.poll_output() {
        match out {
            MediaOutput::Rtp { bytes, .. } => {
                rtp.push(Packet::unmarshal(&mut bytes.as_slice()).unwrap())
            }
            MediaOutput::Event(e) => events.push(e),
            MediaOutput::Relay(r) => relays.push(r),
            MediaOutput::Rtcp { .. } => {}
        }
    }
    (rtp, events, relays)
}

/// Advances `s` frame by frame from `from` to `to`.
fn run(s: &mut MediaSession, from: Instant, to: Instant) -> (Vec<Packet>, Vec<MediaEvent>) {
    let (mut rtp, mut events) = (Vec::new(), Vec::new());
    let mut now = from;
    while now <= to {
        s.handle_timeout(now);
        let (r, e, _) = drain(s);
        rtp.extend(r);
        events.extend(e);
        now = s.poll_timeout().max(now + Duration::from_micros(1));
    }
    (rtp, events)
}

#[test]
fn prompt_pacing_and_timestamps_across_a_pause() {
    let t0 = Instant::now();
    let mut s = session(t0, Law::Ulaw, Some(101));
    let prompt: Arc<[i16]> = (0..800).map(|i| (i * 10) as i16).collect::<Vec<_>>().into();
    s.play(prompt.clone(), false);
    let (rtp, events) = run(&mut s, t0, t0 + Duration::from_millis(199));
    assert_eq!(rtp.len(), 10, "one packet per 20 ms");
    for (n, p) in rtp.iter().enumerate() {
        assert_eq!(p.header.timestamp, 50_000 + 160 * n as u32);
        assert_eq!(p.header.sequence_number, 100 + n as u16);
        assert_eq!(p.header.payload_type, 0);
        assert_eq!(p.payload.len(), 160);
        assert_eq!(
            p.header.marker,
            n == 0,
            "marker on the talk-spurt start only"
        );
    }
    assert_eq!(
        events,
        vec![MediaEvent::PlaybackFinished { interrupted: false }],
        "800 samples = 5 frames"
    );
    // A pause of 10 s with silence, then the prompt again: still on the grid, marker set.
    let later = t0 + Duration::from_secs(10);
    let (silence, _) = run(
        &mut s,
        t0 + Duration::from_millis(200),
        later - Duration::from_millis(1),
    );
    assert!(
        silence.iter().all(|p| p.payload.iter().all(|b| *b == 0xff)),
        "µ-law silence"
    );
    s.play(prompt, false);
    let (rtp, _) = run(&mut s, later, later + Duration::from_millis(19));
    assert_eq!(rtp.len(), 1);
    assert_eq!(rtp[0].header.timestamp, 50_000 + 160 * 500);
    assert!(rtp[0].header.marker);
}

fn peer_packet(sender: &mut Outgoing, pt: u8, position: u64, payload: &[u8]) -> Vec<u8> {
    sender.packet_with_marker(pt, position as u32, false, payload)
}

fn send_event_press(
    s: &mut MediaSession,
    sender: &mut Outgoing,
    t: Instant,
    pt: u8,
    digit: char,
    position: u32,
) {
    let burst = dtmf::event_burst(digit, 120, 20, 10).unwrap();
    for ((offset, event), marker) in burst.offsets_ms.iter().zip(burst.events).zip(burst.markers) {
        let bytes = sender.packet_with_marker(pt, position, marker, &event.to_bytes());
        s.on_rtp(
            t + Duration::from_millis(u64::from(*offset)),
            PEER.parse().unwrap(),
            &bytes,
        );
    }
}

#[test]
fn rfc4733_digits_on_payload_type_101_and_96_are_one_digit_per_press() {
    for pt in [101u8, 96] {
        let t0 = Instant::now();
        let mut s = session(t0, Law::Ulaw, Some(pt));
        let mut peer = Outgoing::new(9, 0, 0);
        send_event_press(&mut s, &mut peer, t0, pt, '5', 0);
        send_event_press(
            &mut s,
            &mut peer,
            t0 + Duration::from_millis(400),
            pt,
            '5',
            3200,
        );
        send_event_press(
            &mut s,
            &mut peer,
            t0 + Duration::from_millis(800),
            pt,
            '#',
            6400,
        );
        let digits: Vec<char> = drain(&mut s)
            .1
            .into_iter()
            .filter_map(|e| match e {
                MediaEvent::Digit {
                    digit,
                    source: DigitSource::Rfc4733,
                    ..
                } => Some(digit),
                _ => None,
            })
            .collect();
        assert_eq!(digits, vec!['5', '5', '#'], "pt {pt}");
    }
}

/// Sends 8 kHz audio to the session as the peer would: 20 ms packets at their due time.
fn send_audio(
    s: &mut MediaSession,
    peer: &mut Outgoing,
    t0: Instant,
    start_ms: u64,
    audio: &[i16],
    law: Law,
) {
    for (i, frame) in audio.chunks(160).enumerate() {
        let at = t0 + Duration::from_millis(start_ms + 20 * i as u64);
        let mut payload = Vec::new();
        law.encode_into(frame, &mut payload);
        let position = start_ms * 8 + 160 * i as u64;
        s.on_rtp(
            at,
            PEER.parse().unwrap(),
            &peer_packet(peer, law.payload_type(), position, &payload),
        );
        s.handle_timeout(at);
    }
}

#[test]
fn inband_digits_are_detected_after_the_playout_delay() {
    let t0 = Instant::now();
    let mut s = session(t0, Law::Alaw, None);
    let mut peer = Outgoing::new(9, 0, 0);
    let mut audio = Vec::new();
    for digit in ['1', '9', '*'] {
        audio.extend(dtmf::tone(digit, 80, 6000));
        audio.extend(std::iter::repeat_n(0i16, 640));
    }
    audio.extend(std::iter::repeat_n(0i16, 1600));
    send_audio(&mut s, &mut peer, t0, 0, &audio, Law::Alaw);
    let digits: Vec<(char, u64)> = drain(&mut s)
        .1
        .into_iter()
        .filter_map(|e| match e {
            MediaEvent::Digit {
                digit,
                source: DigitSource::Inband,
                at_sample,
            } => Some((digit, at_sample)),
            _ => None,
        })
        .collect();
    assert_eq!(digits.iter().map(|d| d.0).collect::<String>(), "19*");
    // Placed on the call clock where the tone began (within a detection block).
    assert!(digits[1].1.abs_diff(1280) < 240, "{digits:?}");
}

#[test]
fn a_press_heard_both_ways_is_one_digit_and_stops_a_prompt() {
    let t0 = Instant::now();
    let mut s = session(t0, Law::Ulaw, Some(101));
    let long: Arc<[i16]> = vec![1000i16; 8000 * 5].into();
    s.play(long, true);
    let mut peer = Outgoing::new(9, 0, 0);
    // The phone sends the tone in-band AND as RFC 4733 events for the same press.
    send_event_press(&mut s, &mut peer, t0, 101, '7', 0);
    let mut audio = dtmf::tone('7', 100, 6000);
    audio.extend(std::iter::repeat_n(0i16, 2400));
    send_audio(&mut s, &mut peer, t0, 0, &audio, Law::Ulaw);
    let events = drain(&mut s).1;
    let digits: Vec<&MediaEvent> = events
        .iter()
        .filter(|e| matches!(e, MediaEvent::Digit { .. }))
        .collect();
    assert_eq!(digits.len(), 1, "{events:?}");
    assert!(
        events.contains(&MediaEvent::PlaybackFinished { interrupted: true }),
        "barge-in"
    );
}

#[test]
fn never_relatches_mid_call_and_times_out_without_media_unless_on_hold() {
    let t0 = Instant::now();
    let mut s = session(t0, Law::Ulaw, None);
    let mut peer = Outgoing::new(9, 0, 0);
    s.on_rtp(
        t0,
        PEER.parse().unwrap(),
        &peer_packet(&mut peer, 0, 0, &[0xff; 160]),
    );
    let intruder: SocketAddr = "127.0.0.1:40666".parse().unwrap();
    s.on_rtp(t0, intruder, &peer_packet(&mut peer, 0, 160, &[0xff; 160]));
    assert_eq!(s.latched(), Some(PEER.parse().unwrap()));
    s.handle_timeout(t0 + MS20);
    let (rtp_out, _, _) = drain(&mut s);
    assert!(!rtp_out.is_empty());
    // 59 s of silence from the peer: nothing yet; at 60 s the timeout fires once.
    let (_, events) = run(&mut s, t0 + MS20, t0 + Duration::from_secs(59));
    assert!(!events.contains(&MediaEvent::Timeout));
    let (_, events) = run(
        &mut s,
        t0 + Duration::from_secs(59),
        t0 + Duration::from_secs(61),
    );
    assert_eq!(
        events.iter().filter(|e| **e == MediaEvent::Timeout).count(),
        1
    );
    // On hold (we only send; the peer is silent by agreement) no timeout however long.
    let t1 = t0 + Duration::from_secs(100);
    let mut held = config(Law::Ulaw, None);
    held.direction = Direction::SendOnly;
    s.renegotiate(t1, held);
    let (_, events) = run(&mut s, t1, t1 + Duration::from_secs(300));
    assert!(!events.contains(&MediaEvent::Timeout));
    // Inactive: nothing is sent either.
    let mut inactive = config(Law::Ulaw, None);
    inactive.direction = Direction::Inactive;
    let t2 = t1 + Duration::from_secs(301);
    s.renegotiate(t2, inactive);
    let (rtp, events) = run(&mut s, t2, t2 + Duration::from_secs(5));
    assert!(rtp.is_empty() && !events.contains(&MediaEvent::Timeout));
}

#[test]
fn bridged_legs_relay_with_their_own_ssrc_sequence_and_payload_types() {
    let t0 = Instant::now();
    let mut caller = session(t0, Law::Ulaw, Some(101));
    let mut operator = MediaSession::new(t0, t0, config(Law::Alaw, Some(96)), 0x5555, 7, 1);
    caller.bridge();
    operator.bridge();
    let mut phone = Outgoing::new(42, 1000, 777);
    let mut ulaw = Vec::new();
    Law::Ulaw.encode_into(&[1000i16; 160], &mut ulaw);
    caller.on_rtp(
        t0,
        PEER.parse().unwrap(),
        &peer_packet(&mut phone, 0, 0, &ulaw),
    );
    caller.on_rtp(
        t0 + MS20,
        PEER.parse().unwrap(),
        &peer_packet(&mut phone, 0, 160, &ulaw),
    );
    send_event_press(
        &mut caller,
        &mut phone,
        t0 + Duration::from_millis(40),
        101,
        '3',
        320,
    );
    let (_, _, relays) = drain(&mut caller);
    assert!(relays.len() >= 3);
    for relay in &relays {
        operator.relay(relay);
    }
    let (out, _, _) = drain(&mut operator);
    assert!(
        out.iter().all(|p| p.header.ssrc == 0x5555),
        "the operator leg's own SSRC"
    );
    let seqs: Vec<u16> = out.iter().map(|p| p.header.sequence_number).collect();
    assert_eq!(seqs[..3], [7, 8, 9], "own contiguous sequence numbers");
    assert_eq!(out[0].header.payload_type, 8, "transcoded to A-law");
    assert_eq!(out[1].header.timestamp - out[0].header.timestamp, 160);
    let mut pcm = Vec::new();
    Law::Alaw.decode_into(&out[0].payload, &mut pcm);
    assert!(
        pcm.iter().all(|s| (s - 1000).abs() < 64),
        "same audio after transcoding"
    );
    assert!(
        out[2..].iter().all(|p| p.header.payload_type == 96),
        "telephone-event remapped 101 → 96"
    );
}

#[test]
fn heard_and_played_audio_carry_call_clock_positions_for_the_recorder() {
    let t0 = Instant::now();
    let mut s = session(t0, Law::Ulaw, None);
    s.set_recording(true);
    s.play(vec![500i16; 320].into(), false);
    let mut peer = Outgoing::new(9, 0, 3_000_000);
    // The caller starts talking 1 s into the call; packet 2 arrives before packet 1.
    let t1 = t0 + Duration::from_secs(1);
    let mut payload = Vec::new();
    Law::Ulaw.encode_into(&[2000i16; 160], &mut payload);
    let p0 = peer_packet(&mut peer, 0, 0, &payload);
    let p1 = peer_packet(&mut peer, 0, 160, &payload);
    let p2 = peer_packet(&mut peer, 0, 320, &payload);
    s.on_rtp(t1, PEER.parse().unwrap(), &p0);
    s.on_rtp(t1 + MS20, PEER.parse().unwrap(), &p2);
    s.on_rtp(t1 + MS20, PEER.parse().unwrap(), &p1);
    let (_, events) = run(&mut s, t0, t1 + Duration::from_millis(200));
    let played: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            MediaEvent::Played { at_sample, .. } => Some(*at_sample),
            _ => None,
        })
        .collect();
    assert_eq!(played, vec![0, 160]);
    let heard: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            MediaEvent::Heard { at_sample, .. } => Some(*at_sample),
            _ => None,
        })
        .collect();
    assert_eq!(
        heard,
        vec![8000, 8160, 8320],
        "in order, at the caller's clock position"
    );
}

/// Regression (review of 832cd51): ICMP "port unreachable" for our packets did not stop the
/// stream, so a closed port (or an address that never was a phone) got RTP for the whole
/// media timeout.
#[test]
fn a_run_of_icmp_errors_without_a_packet_from_the_peer_stops_the_stream_once() {
    let t0 = crate::testing::t0();
    let mut s = session(t0, Law::Ulaw, None);
    let (rtp, _) = run(&mut s, t0, t0 + MS20 * 3);
    assert!(!rtp.is_empty(), "sending before the errors");
    // Errors for most of a second, then a packet from the peer (its NAT blinked): the count
    // starts again.
    let t1 = t0 + MS20 * 3;
    for i in 0..40 {
        s.on_unreachable(t1 + MS20 * i);
    }
    let mut peer = Outgoing::new(9, 0, 0);
    s.on_rtp(
        t1 + MS20 * 40,
        PEER.parse().unwrap(),
        &peer_packet(&mut peer, 0, 0, &[0xff; 160]),
    );
    let t2 = t1 + MS20 * 41;
    // Three quick errors are not yet a second of them.
    for i in 0..3 {
        s.on_unreachable(t2 + MS20 * i);
    }
    let (rtp, events) = run(&mut s, t2, t2 + MS20 * 5);
    assert!(!rtp.is_empty() && !events.contains(&MediaEvent::Unreachable));
    // A second of them: the event once, and nothing more is sent.
    s.on_unreachable(t2 + Duration::from_secs(1));
    s.on_unreachable(t2 + Duration::from_secs(1) + MS20);
    let t3 = t2 + Duration::from_secs(1) + MS20;
    let (rtp, events) = run(&mut s, t3, t3 + Duration::from_secs(5));
    assert!(rtp.is_empty(), "{} packets after unreachable", rtp.len());
    assert_eq!(
        events
            .iter()
            .filter(|e| **e == MediaEvent::Unreachable)
            .count(),
        1
    );
    // The phone sends again (back after a roam): the stream resumes.
    let t4 = t3 + Duration::from_secs(5);
    s.on_rtp(
        t4,
        PEER.parse().unwrap(),
        &peer_packet(&mut peer, 0, 160, &[0xff; 160]),
    );
    let (rtp, _) = run(&mut s, t4, t4 + MS20 * 5);
    assert!(!rtp.is_empty(), "resumed after the peer's packet");
}

#[test]
fn scattered_icmp_errors_are_not_a_run() {
    let t0 = crate::testing::t0();
    let mut s = session(t0, Law::Ulaw, None);
    // One error every 4 s for a minute: never three within a run.
    for i in 0..15 {
        s.on_unreachable(t0 + Duration::from_secs(4 * i));
    }
    let (rtp, events) = run(&mut s, t0, t0 + MS20 * 5);
    assert!(!rtp.is_empty() && !events.contains(&MediaEvent::Unreachable));
}

#[test]
fn a_leg_sending_a_mix_still_relays_what_it_hears_and_sends_the_feed_on_its_own_pacing() {
    let t0 = Instant::now();
    let mut operator = session(t0, Law::Ulaw, Some(101));
    operator.bridge();
    operator.send_mix();
    // What the operator's phone says is still passed on to the caller.
    let mut phone = Outgoing::new(42, 1000, 777);
    let mut ulaw = Vec::new();
    Law::Ulaw.encode_into(&[800i16; 160], &mut ulaw);
    operator.on_rtp(
        t0,
        PEER.parse().unwrap(),
        &peer_packet(&mut phone, 0, 0, &ulaw),
    );
    let (_, _, relays) = drain(&mut operator);
    assert_eq!(relays.len(), 1, "heard audio relayed while sending a mix");
    // What it sends is the feed, frame by frame, then silence when the feed runs dry.
    operator.feed(&[2000i16; 240]);
    let (sent, _) = run(&mut operator, t0, t0 + Duration::from_millis(60));
    let frames: Vec<Vec<i16>> = sent
        .iter()
        .map(|p| {
            let mut pcm = Vec::new();
            Law::Ulaw.decode_into(&p.payload, &mut pcm);
            pcm
        })
        .collect();
    assert!(frames.len() >= 3, "{} frames", frames.len());
    assert!(frames[0].iter().all(|s| (s - 2000).abs() < 64), "the feed");
    assert!(
        frames[1][..80].iter().all(|s| (s - 2000).abs() < 64),
        "its rest"
    );
    assert!(frames[1][80..].iter().all(|s| s.abs() < 8), "then silence");
    // Back to a plain bridge: the feed is dropped, nothing is sent but relays.
    operator.feed(&[2000i16; 160]);
    operator.bridge();
    let (sent, _) = run(
        &mut operator,
        t0 + Duration::from_millis(80),
        t0 + Duration::from_millis(140),
    );
    assert!(sent.is_empty(), "a bridged leg sends only what it relays");
    // A feed far ahead of the clock is cut to the newest 200 ms.
    operator.send_mix();
    operator.feed(&vec![1i16; 8000]);
    assert_eq!(operator.feed.len(), 1600);
}
