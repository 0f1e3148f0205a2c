//! Media end to end over real sockets: a caller dials in, hears the greeting prompt (decoded from a
//! 16 kHz WAV and resampled by the server), presses digits as RFC 4733 events (payload types 101 and
//! 96) and as in-band tones, and the call is recorded to a stereo WAV whose channels line up; a
//! SIGKILL during a recorded call leaves a WAV that opens and holds the audio up to the kill.

mod common;

use common::rtp::{RtpPeer, assemble, best_correlation, test_signal};
use common::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Writes the greeting: the test signal at 16 kHz (the server must resample it to 8 kHz).
fn write_greeting(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("greeting-16k.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(&path, spec).unwrap();
    for s in test_signal(16_000, 2.0, 0.0) {
        writer.write_sample(s).unwrap();
    }
    writer.finalize().unwrap();
    path
}

/// A flow that plays the greeting and then waits, collecting keys, until the caller hangs up.
const GREETING_FLOW: &str = "id: main
entry: hello
nodes:
  hello:
    play: greeting-16k.wav
    next: wait
  wait:
    gather: { var: keys, max_digits: 30, terminator: none, timeout: 60s, inter_digit_timeout: 60s, next: done, on_fail: done }
  done:
    hangup:
";

fn media_server(dir: &Path) -> Server {
    let sounds = dir.join("sounds");
    let flows = dir.join("flows");
    write_greeting(&sounds);
    std::fs::create_dir_all(&flows).unwrap();
    std::fs::write(flows.join("main.yaml"), GREETING_FLOW).unwrap();
    Server::start_in(
        dir,
        "[calls]\nrecord = true\n",
        &[
            "--flows",
            flows.to_str().unwrap(),
            "--sounds",
            sounds.to_str().unwrap(),
        ],
    )
}

fn call_events(server: &Server, call_id: &str) -> (String, Vec<serde_json::Value>) {
    let calls = server.wait_for_calls("", "the ended call with its events", |c| {
        c.iter().any(|c| !c["ended_at"].is_null())
    });
    let id = calls[0]["id"].as_str().unwrap().to_string();
    // Events are written by the media task as it finishes; poll until the recording is there.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, call) = server.get(&format!("/api/v1/calls/{id}"));
        let events = call["events"].as_array().cloned().unwrap_or_default();
        if events.iter().any(|e| e["kind"] == "recording") || Instant::now() > deadline {
            let _ = call_id;
            return (id, events);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn caller_hears_the_prompt_presses_digits_and_the_call_is_recorded_in_stereo() {
    let temp = tempfile::tempdir().unwrap();
    let server = media_server(temp.path());
    let sip = UdpPeer::new(server.sip);
    let mut rtp = RtpPeer::new();
    let ok = invite_with(&sip, "media-1", "100", &offer(rtp.port(), 101));
    let answered = Instant::now();
    rtp.remote = Some(sdp_media_addr(&ok));
    ack(&sip, "media-1", &ok);

    // 3 s of the caller's own voice (a different signal), a '4' as RFC 4733 at 2.2 s and an
    // in-band '8' at 2.6 s.
    let mut voice = test_signal(8000, 3.2, 2.0);
    for s in voice[20_800..22_400].iter_mut() {
        *s = 0;
    }
    let tone = openline::media::dtmf::tone('8', 100, 7000);
    voice[20_800..20_800 + tone.len()].copy_from_slice(&tone);
    let (received, started) = rtp.converse(&voice, &[(17_600, '4', 101)]);
    bye(&sip, "media-1", &ok);
    let call_length = answered.elapsed();

    // 1. The caller heard the prompt: correlation with the 8 kHz reference.
    let heard = assemble(&received);
    let reference = test_signal(8000, 2.0, 0.0);
    // The server's packets carry its call clock: `heard` starts at its first frame (the answer), so
    // the lag is where the prompt started on that clock (after the prompt was loaded).
    let (correlation, heard_lag) = best_correlation(&heard, &reference[..12_000], 4000);
    assert!(correlation >= 0.9, "prompt correlation {correlation:.3}");

    // 2. Digits from both paths are in the call's events.
    let (id, events) = call_events(&server, "media-1");
    let digits: Vec<(String, String)> = events
        .iter()
        .filter(|e| e["kind"] == "digit")
        .map(|e| {
            (
                e["detail"]["digit"].as_str().unwrap().to_string(),
                e["detail"]["source"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        digits,
        vec![
            ("4".into(), "rfc4733".into()),
            ("8".into(), "inband".into())
        ],
        "{events:#?}"
    );

    // 3. The recording: stereo, 8 kHz, 16 bit, the call's length, caller left, prompt right, aligned.
    let recording = events
        .iter()
        .find(|e| e["kind"] == "recording")
        .expect("recording event");
    let (_, call) = server.get(&format!("/api/v1/calls/{id}"));
    assert_eq!(
        call["recording_id"], recording["detail"]["recording_id"],
        "the recording lands on the call"
    );
    assert_eq!(call["recordings"][0]["status"], "complete");
    let path = server
        .dir
        .join("data")
        .join(recording["detail"]["path"].as_str().unwrap());
    let mut reader = hound::WavReader::open(&path).expect("valid WAV");
    let spec = reader.spec();
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (2, 8000, 16)
    );
    let samples: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
    let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
    let seconds = left.len() as f64 / 8000.0;
    let expected = call_length.as_secs_f64();
    assert!(
        (seconds - expected).abs() <= expected * 0.05,
        "recording {seconds:.2} s, call {expected:.2} s"
    );
    let (prompt_corr, prompt_lag) = best_correlation(&right, &reference[..12_000], 4000);
    assert!(
        prompt_corr > 0.9,
        "right channel is the prompt ({prompt_corr:.3})"
    );
    let (voice_corr, voice_lag) = best_correlation(&left, &voice[..12_000], 8000);
    assert!(
        voice_corr > 0.9,
        "left channel is the caller ({voice_corr:.3})"
    );
    // The caller started talking `started - answered` after the answer; the prompt started at
    // `heard_lag` on the server's clock. Both must sit there in the recording.
    let caller_offset = started.duration_since(answered).as_secs_f64() * 8000.0;
    let skew = (voice_lag as f64 - caller_offset) - (prompt_lag as f64 - heard_lag as f64);
    eprintln!(
        "prompt heard r={correlation:.3}; recording {seconds:.2}/{expected:.2} s; \
         right r={prompt_corr:.3} lag={prompt_lag} (heard at {heard_lag}); left r={voice_corr:.3} lag={voice_lag}; skew {:.1} ms",
        skew / 8.0
    );
    assert!(
        skew.abs() <= 320.0,
        "channels misaligned by {:.1} ms",
        skew / 8.0
    );
}

#[test]
fn rfc4733_on_payload_type_96_is_understood() {
    let temp = tempfile::tempdir().unwrap();
    let server = media_server(temp.path());
    let sip = UdpPeer::new(server.sip);
    let mut rtp = RtpPeer::new();
    let ok = invite_with(&sip, "media-96", "100", &offer(rtp.port(), 96));
    assert!(ok.contains("a=rtpmap:96 telephone-event/8000"), "{ok}");
    rtp.remote = Some(sdp_media_addr(&ok));
    ack(&sip, "media-96", &ok);
    let silence = vec![0i16; 8000];
    rtp.converse(&silence, &[(1600, '9', 96), (4800, '#', 96)]);
    bye(&sip, "media-96", &ok);
    let (_, events) = call_events(&server, "media-96");
    let digits: String = events
        .iter()
        .filter(|e| e["kind"] == "digit")
        .map(|e| e["detail"]["digit"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(digits, "9#", "{events:#?}");
}

#[test]
fn sigkill_during_a_recorded_call_leaves_a_wav_with_the_audio_up_to_the_kill() {
    let temp = tempfile::tempdir().unwrap();
    let mut server = media_server(temp.path());
    let sip = UdpPeer::new(server.sip);
    let mut rtp = RtpPeer::new();
    let ok = invite_with(&sip, "media-kill", "100", &offer(rtp.port(), 101));
    let answered = Instant::now();
    rtp.remote = Some(sdp_media_addr(&ok));
    ack(&sip, "media-kill", &ok);
    rtp.converse(&test_signal(8000, 3.0, 1.0), &[]);
    let before_kill = answered.elapsed();
    server.kill();

    let flows = temp.path().join("flows");
    let sounds = temp.path().join("sounds");
    let args = [
        "--flows",
        flows.to_str().unwrap(),
        "--sounds",
        sounds.to_str().unwrap(),
    ];
    let server = Server::start_in(temp.path(), "", &args);
    let calls = server.wait_for_calls("", "the crashed call", |c| c.len() == 1);
    assert_eq!(calls[0]["disposition"], "system.crashed");
    let id = calls[0]["id"].as_str().unwrap();
    let path = find_file(&server.dir.join("data/recordings"), &format!("{id}.wav"))
        .expect("recording file");
    let reader = hound::WavReader::open(&path).expect("the WAV opens after the crash");
    assert_eq!(reader.spec().channels, 2);
    let seconds = reader.duration() as f64 / 8000.0;
    let lost = before_kill.as_secs_f64() - seconds;
    assert!(
        lost <= 1.0,
        "recording holds {seconds:.2} s of a {:.2} s call",
        before_kill.as_secs_f64()
    );
    let (_, call) = server.get(&format!("/api/v1/calls/{id}"));
    let row = &call["recordings"][0];
    assert_eq!(row["status"], "complete", "repaired at start: {call:#}");
    let row_seconds = row["duration_ms"].as_i64().unwrap() as f64 / 1000.0;
    assert!(
        (row_seconds - seconds).abs() < 0.1,
        "{row_seconds} vs {seconds}"
    );
}

fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = find_file(&path, name) {
                return Some(found);
            }
        } else if path.file_name().is_some_and(|n| n == name) {
            return Some(path);
        }
    }
    None
}

#[test]
fn no_media_from_the_caller_ends_the_call_after_the_media_timeout() {
    let server = Server::start("[calls]\nmedia_timeout = \"2s\"\n");
    let sip = UdpPeer::new(server.sip);
    let mut rtp = RtpPeer::new();
    let ok = invite_with(&sip, "media-silent", "100", &offer(rtp.port(), 101));
    rtp.remote = Some(sdp_media_addr(&ok));
    ack(&sip, "media-silent", &ok);
    rtp.converse(&vec![0i16; 1600], &[]); // 200 ms of media, then nothing
    let deadline = Instant::now() + Duration::from_secs(15);
    let bye = loop {
        assert!(Instant::now() < deadline, "no BYE after the media timeout");
        if let Some(msg) = sip.recv()
            && msg.starts_with("BYE ")
        {
            break msg;
        }
    };
    answer_ok(&sip, &bye);
    let calls = server.wait_for_calls("", "the timed-out call", |c| {
        c.len() == 1 && !c[0]["ended_at"].is_null()
    });
    assert_eq!(
        calls[0]["disposition"], "failed.media_timeout",
        "{:#?}",
        calls[0]
    );
}

/// Regression (review of 832cd51): an unauthenticated INVITE was answered and its prompt sent
/// every 20 ms to whatever its SDP named, before any ACK — one forged INVITE made us flood any
/// address. Now nothing leaves before the ACK (or a packet from the caller); after it, the
/// prompt plays.
#[test]
fn no_media_leaves_toward_an_address_that_never_acked() {
    let temp = tempfile::tempdir().unwrap();
    let server = media_server(temp.path());
    let victim = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    victim
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let victim_port = victim.local_addr().unwrap().port();
    let sip = UdpPeer::new(server.sip);
    let ok = invite_with(&sip, "amp-1", "100", &offer(victim_port, 101));
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    let mut buf = [0u8; 2048];
    let quiet_until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < quiet_until {
        if let Ok((n, from)) = victim.recv_from(&mut buf) {
            panic!("{n} bytes of media from {from} before any ACK");
        }
    }
    ack(&sip, "amp-1", &ok);
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut packets = 0;
    while Instant::now() < deadline && packets < 10 {
        if victim.recv_from(&mut buf).is_ok() {
            packets += 1;
        }
    }
    assert_eq!(packets, 10, "after the ACK the prompt plays");
    bye(&sip, "amp-1", &ok);
}
