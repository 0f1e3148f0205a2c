//! Voice broadcasts end to end: campaigns created through the HTTP API (multipart upload of a
//! WAV message and a CSV of numbers), called by the real server through a trunk that is SIPp
//! (tests/data/sipp/broadcast_trunk.xml): it answers, is busy, never answers or sends 503
//! depending on the number, and logs every INVITE it sees. What the tests check comes from that
//! log: calls per number, INVITEs per second, calls in flight.

mod common;

use common::*;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A Wednesday noon in Kyiv: inside the default calling window.
const WEDNESDAY_NOON_KYIV: &str = "2026-12-02T10:00:00Z";

/// The SIPp trunk stand-in.
struct Trunk {
    sipp: Child,
    port: u16,
    log: PathBuf,
}

impl Trunk {
    /// `burst`: how many of the first INVITEs get 503; `digits`: a pcap played after answering.
    fn start(dir: &Path, burst: u32, digits: &Path) -> Trunk {
        Self::start_with(dir, burst, digits, true)
    }

    /// `echo`: send what we play back to us (off when the pcap is the far end's speech).
    fn start_with(dir: &Path, burst: u32, digits: &Path, echo: bool) -> Trunk {
        let port = free_port();
        let media = free_media_port();
        let log = dir.join(format!("trunk_{port}.log"));
        let sipp = Command::new("sipp")
            .current_dir(dir)
            .args([
                "-sf",
                data_path("sipp/broadcast_trunk.xml").to_str().unwrap(),
            ])
            .args(["-i", "127.0.0.1", "-p", &port.to_string()])
            .args(["-mp", &media.to_string()])
            .args(if echo { &["-rtp_echo"][..] } else { &[][..] })
            .args(["-key", "burst", &burst.to_string()])
            .args(["-key", "digits", digits.to_str().unwrap()])
            .args(["-nostdin", "-trace_logs", "-log_file"])
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp must be installed (scripts/test.sh installs Debian's sip-tester)");
        Trunk { sipp, port, log }
    }

    fn config(&self, name: &str, max_cps: u32) -> String {
        format!(
            "[[trunks]]\nname = \"{name}\"\nproxy = \"127.0.0.1:{}\"\nmax_cps = {max_cps}\n",
            self.port
        )
    }

    fn seen(&self) -> Seen {
        Seen::parse(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }
}

impl Drop for Trunk {
    fn drop(&mut self) {
        let _ = self.sipp.kill();
        let _ = self.sipp.wait();
    }
}

/// What the trunk's log says.
#[derive(Debug, Default)]
struct Seen {
    /// (clock tick ms, number, call-id) per INVITE, in order.
    invites: Vec<(u64, String, String)>,
    /// Clock tick of each call's end.
    ends: HashMap<String, u64>,
}

impl Seen {
    fn parse(text: &str) -> Seen {
        let mut seen = Seen::default();
        for line in text.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.as_slice() {
                [tick, "INVITE", number, call_id] => seen.invites.push((
                    tick.parse().unwrap(),
                    number.trim_end_matches('@').to_string(),
                    call_id.to_string(),
                )),
                [tick, "END", call_id] => {
                    seen.ends.insert(call_id.to_string(), tick.parse().unwrap());
                }
                _ => {}
            }
        }
        seen
    }

    fn per_number(&self, skip: usize) -> BTreeMap<String, Vec<u64>> {
        let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for (tick, number, _) in self.invites.iter().skip(skip) {
            out.entry(number.clone()).or_default().push(*tick);
        }
        out
    }

    /// The most INVITEs within any 1000 ms.
    fn max_per_second(&self) -> usize {
        let ticks: Vec<u64> = self.invites.iter().map(|(t, _, _)| *t).collect();
        let mut best = 0;
        let mut start = 0;
        for end in 0..ticks.len() {
            while ticks[end] - ticks[start] >= 1000 {
                start += 1;
            }
            best = best.max(end - start + 1);
        }
        best
    }

    /// The most calls up at once (an INVITE not yet ended), from the trunk's side.
    fn max_in_flight(&self) -> usize {
        let mut events: Vec<(u64, i32)> = Vec::new();
        for (tick, _, call_id) in &self.invites {
            events.push((*tick, 1));
            if let Some(end) = self.ends.get(call_id) {
                events.push((*end, -1));
            }
        }
        // At one tick, ends before starts: a slot freed and taken within a millisecond.
        events.sort();
        let (mut now, mut best) = (0i32, 0i32);
        for (_, delta) in events {
            now += delta;
            best = best.max(now);
        }
        best as usize
    }
}

/// A pcap file of RTP packets as SIPp's play_pcap_audio replays them (Ethernet/IPv4/UDP; SIPp
/// sends the RTP to the media address of our SDP at the packets' pace).
struct Pcap {
    out: Vec<u8>,
    seq: u16,
}

impl Pcap {
    fn new() -> Pcap {
        let mut out = Vec::new();
        out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&4u16.to_le_bytes());
        out.extend_from_slice(&0i32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&65535u32.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes()); // Ethernet
        Pcap { out, seq: 0 }
    }

    fn packet(&mut self, at_ms: u32, pt: u8, marker: bool, ts: u32, payload: &[u8]) {
        let mut rtp = vec![0x80, pt | if marker { 0x80 } else { 0 }];
        rtp.extend_from_slice(&self.seq.to_be_bytes());
        rtp.extend_from_slice(&ts.to_be_bytes());
        rtp.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        rtp.extend_from_slice(payload);
        self.seq = self.seq.wrapping_add(1);
        let udp_len = 8 + rtp.len();
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1,
        ];
        ip[2..4].copy_from_slice(&((20 + udp_len) as u16).to_be_bytes());
        let sum: u32 = ip
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum();
        let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&[0x08, 0x00]);
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&4000u16.to_be_bytes());
        frame.extend_from_slice(&6000u16.to_be_bytes());
        frame.extend_from_slice(&(udp_len as u16).to_be_bytes());
        frame.extend_from_slice(&[0, 0]);
        frame.extend_from_slice(&rtp);
        self.out.extend_from_slice(&(at_ms / 1000).to_le_bytes());
        self.out
            .extend_from_slice(&((at_ms % 1000) * 1000).to_le_bytes());
        self.out
            .extend_from_slice(&(frame.len() as u32).to_le_bytes());
        self.out
            .extend_from_slice(&(frame.len() as u32).to_le_bytes());
        self.out.extend_from_slice(&frame);
    }

    /// 8 kHz samples as PCMU, 20 ms a packet, from `at_ms`; the time after them.
    fn audio(&mut self, at_ms: u32, samples: &[i16]) -> u32 {
        let mut at = at_ms;
        for (i, chunk) in samples.chunks(160).enumerate() {
            let mut frame = chunk.to_vec();
            frame.resize(160, 0);
            let ts = at_ms * 8 + i as u32 * 160;
            self.packet(at, 0, i == 0, ts, &common::rtp::ulaw(&frame));
            at += 20;
        }
        at
    }

    fn write(self, path: &Path) -> PathBuf {
        std::fs::write(path, self.out).expect("pcap");
        path.to_path_buf()
    }
}

/// 200 ms of PCMU silence, then `digit` (if any) as an RFC 4733 telephone-event (payload type
/// 101).
fn digits_pcap(dir: &Path, digit: Option<char>) -> PathBuf {
    let mut pcap = Pcap::new();
    let after = pcap.audio(0, &[0; 1600]);
    if let Some(digit) = digit {
        let event = match digit {
            '0'..='9' => digit as u8 - b'0',
            '*' => 10,
            _ => 11,
        };
        let ts = after * 8;
        for k in 1..=5u32 {
            let d = ((k * 160) as u16).to_be_bytes();
            pcap.packet(after + k * 20, 101, k == 1, ts, &[event, 10, d[0], d[1]]);
        }
        for k in 0..3u32 {
            let d = 960u16.to_be_bytes();
            pcap.packet(
                after + 120 + k * 20,
                101,
                false,
                ts,
                &[event, 0x80 | 10, d[0], d[1]],
            );
        }
    }
    let name = match digit {
        Some(d) => format!("digit_{}.pcap", if d == '#' { 'h' } else { d }),
        None => "silence.pcap".to_string(),
    };
    pcap.write(&dir.join(name))
}

/// A fixture WAV (8 kHz mono) from tests/data/amd as the far end's speech.
fn speech_pcap(dir: &Path, fixture: &str) -> PathBuf {
    let reader = hound::WavReader::open(data_path(&format!("amd/{fixture}"))).expect("fixture");
    let samples: Vec<i16> = reader.into_samples::<i16>().map(|s| s.unwrap()).collect();
    let mut pcap = Pcap::new();
    pcap.audio(0, &samples);
    pcap.write(&dir.join(fixture.replace(".wav", ".pcap")))
}

/// A multipart/form-data body with a JSON `campaign`, a WAV `message` and a CSV `recipients`.
fn multipart(campaign: &serde_json::Value, wav: &[u8], csv: &str) -> (String, Vec<u8>) {
    let boundary = "openline-test-boundary-7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    let mut part = |name: &str, file: Option<&str>, content_type: &str, bytes: &[u8]| {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let file = file
            .map(|f| format!("; filename=\"{f}\""))
            .unwrap_or_default();
        body.extend_from_slice(
            format!(
                "Content-Disposition: form-data; name=\"{name}\"{file}\r\nContent-Type: {content_type}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    };
    part(
        "campaign",
        None,
        "application/json",
        campaign.to_string().as_bytes(),
    );
    part("message", Some("message.wav"), "audio/wav", wav);
    part("recipients", Some("list.csv"), "text/csv", csv.as_bytes());
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn create(server: &Server, campaign: &serde_json::Value, csv: &str) -> serde_json::Value {
    let (content_type, body) = multipart(campaign, &wav_bytes(1), csv);
    let auth = format!("Bearer {MANAGER_TOKEN}");
    let response = send(
        server.http,
        "POST",
        "/api/v1/broadcasts",
        &[("Authorization", &auth), ("Content-Type", &content_type)],
        &body,
    );
    assert_eq!(response.status, 201, "{}", response.text());
    response.json()
}

fn post(server: &Server, path: &str, json: &serde_json::Value) -> HttpResponse {
    let auth = format!("Bearer {MANAGER_TOKEN}");
    send(
        server.http,
        "POST",
        path,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        json.to_string().as_bytes(),
    )
}

/// Waits until the campaign reaches `state` (up to `within`).
fn wait_for_state(server: &Server, id: &str, state: &str, within: Duration) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        let (status, body) = server.get(&format!("/api/v1/broadcasts/{id}"));
        assert_eq!(status, 200, "{body}");
        if body["state"] == state {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "the broadcast did not become {state}: {body:#}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn all_recipients(server: &Server, id: &str) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let mut after = String::new();
    loop {
        let (status, page) = server.get(&format!(
            "/api/v1/broadcasts/{id}/recipients?limit=100{after}"
        ));
        assert_eq!(status, 200, "{page}");
        out.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_after"].as_i64() {
            Some(next) => after = format!("&after={next}"),
            None => return out,
        }
    }
}

fn created_id(created: &serde_json::Value) -> &str {
    created["id"].as_str().expect("the campaign's id")
}

/// The number's class in the trunk scenario, by its last digit.
fn expected_outcome(number: &str) -> &'static str {
    match number.chars().last() {
        Some('6' | '7') => "busy",
        Some('8') => "no_answer",
        _ => "human",
    }
}

/// `n` valid Kyiv numbers, +380 44 123 NNNN.
fn kyiv_numbers(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("+38044123{i:04}")).collect()
}

#[test]
fn a_campaign_keeps_its_limits_retries_after_the_delays_and_ends_every_recipient() {
    let temp = tempfile::tempdir().unwrap();
    let silence = digits_pcap(temp.path(), None);
    let trunk = Trunk::start(temp.path(), 20, &silence);
    let mut server = Server::start_in(
        temp.path(),
        &trunk.config("carrier", 10),
        &["--clock-start", WEDNESDAY_NOON_KYIV],
    );
    let numbers = kyiv_numbers(300);
    let mut csv = String::from("name,number\n");
    for (i, n) in numbers.iter().enumerate() {
        csv.push_str(&format!("Person {i},{n}\n"));
    }
    csv.push_str("Nobody,hello\nShort,123\n");
    let campaign = serde_json::json!({
        "name": "Order ready",
        "trunk": "carrier",
        "concurrency": 30,
        "cps": 10,
        "retry": { "max_attempts": 3, "busy_secs": 3, "no_answer_secs": 3, "failed_secs": 3 },
        "max_ring_secs": 5,
        "start": true,
    });
    let created = create(&server, &campaign, &csv);
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["recipients"]["accepted"], 300, "{created:#}");
    let rejected: Vec<(i64, String)> = created["recipients"]["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["row"].as_i64().unwrap(),
                r["number"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        rejected,
        [(302, "hello".to_string()), (303, "123".to_string())],
        "invalid rows are reported with the CSV line"
    );
    assert_eq!(created["recipients"]["leads_created"], 300);

    let done = wait_for_state(&server, &id, "completed", Duration::from_secs(240));
    let outcomes = &done["progress"]["outcomes"];
    assert_eq!(outcomes["human"], 210, "{done:#}");
    assert_eq!(outcomes["busy"], 60, "{done:#}");
    assert_eq!(outcomes["no_answer"], 30, "{done:#}");
    assert_eq!(outcomes["invalid_number"], 2, "{done:#}");

    // The trunk's own view.
    let seen = trunk.seen();
    eprintln!(
        "trunk saw {} INVITEs, at most {} in one second, at most {} calls up at once",
        seen.invites.len(),
        seen.max_per_second(),
        seen.max_in_flight()
    );
    // The trunk's clock is when SIPp got to each INVITE, scheduling jitter included on a busy
    // two-core machine: one late INVITE can land in the next second's window. The pacer's exact
    // bound (never more than max_cps in any second) is proven in virtual time in
    // `broadcast::pacing`; here the rate must hold within that jitter.
    assert!(
        seen.max_per_second() <= 11,
        "more than 10 INVITEs (+1 for jitter) in one second: {}",
        seen.max_per_second()
    );
    assert!(
        seen.max_in_flight() <= 30,
        "more than 30 calls in flight: {}",
        seen.max_in_flight()
    );
    let calls = seen.per_number(20);
    for number in &numbers {
        let digits = number.trim_start_matches('+');
        let ticks = calls.get(digits).cloned().unwrap_or_default();
        let expected = match expected_outcome(number) {
            "human" => 1,
            _ => 3,
        };
        assert_eq!(
            ticks.len(),
            expected,
            "{number} ({}) was called {} times",
            expected_outcome(number),
            ticks.len()
        );
        for pair in ticks.windows(2) {
            // Busy: 3 s after the 486; no answer: 3 s after the 5 s of ringing.
            assert!(
                pair[1] - pair[0] >= 2900,
                "{number} called again after {} ms",
                pair[1] - pair[0]
            );
        }
    }
    assert_eq!(seen.invites.len(), 20 + 210 + 60 * 3 + 30 * 3);

    // Every recipient's outcome and every call on the person's timeline.
    let recipients = all_recipients(&server, &id);
    assert_eq!(recipients.len(), 302);
    let invites_per_number = seen.per_number(0);
    for r in &recipients {
        let Some(e164) = r["e164"].as_str() else {
            assert_eq!(r["outcome"], "invalid_number", "{r}");
            assert!(r["error"].as_str().is_some_and(|e| !e.is_empty()), "{r}");
            continue;
        };
        assert_eq!(r["state"], "done", "{r}");
        assert_eq!(r["outcome"], expected_outcome(e164), "{r}");
        let person = r["person_id"].as_str().expect("a lead for every number");
        let (status, timeline) = server.get(&format!("/api/v1/leads/{person}/timeline?limit=100"));
        assert_eq!(status, 200, "{timeline}");
        let entries: Vec<&serde_json::Value> = timeline["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "call")
            .collect();
        let sent = invites_per_number[e164.trim_start_matches('+')].len();
        assert_eq!(
            entries.len(),
            sent,
            "{e164}: one timeline entry per call the trunk saw: {timeline:#}"
        );
        assert!(
            entries
                .iter()
                .all(|e| e["data"]["broadcast_id"] == id.as_str()),
            "{e164}: {timeline:#}"
        );
    }
    assert_eq!(server.terminate().code(), Some(0));
}

#[test]
fn a_server_killed_mid_campaign_calls_nobody_beyond_the_rules_and_skips_nobody() {
    let temp = tempfile::tempdir().unwrap();
    let silence = digits_pcap(temp.path(), None);
    let trunk = Trunk::start(temp.path(), 0, &silence);
    let config = trunk.config("carrier", 10);
    let args = ["--clock-start", WEDNESDAY_NOON_KYIV];
    let mut server = Server::start_in(temp.path(), &config, &args);
    // Answered numbers only (last digits 0-5 and 9), so each is done after one good call.
    let numbers: Vec<String> = kyiv_numbers(60)
        .into_iter()
        .filter(|n| expected_outcome(n) == "human")
        .collect();
    let csv: String = numbers.iter().map(|n| format!("{n}\n")).collect();
    let campaign = serde_json::json!({
        "name": "Crash test",
        "concurrency": 8,
        "cps": 4,
        "retry": { "max_attempts": 2, "failed_secs": 1 },
        "start": true,
    });
    let created = create(&server, &campaign, &csv);
    let id = created["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    while trunk.seen().invites.len() < 12 {
        assert!(Instant::now() < deadline, "no calls were made");
        std::thread::sleep(Duration::from_millis(50));
    }
    server.kill();
    let at_kill = trunk.seen().invites.len();

    let mut server = Server::start_in(temp.path(), &config, &args);
    let done = wait_for_state(&server, &id, "completed", Duration::from_secs(120));
    let seen = trunk.seen();
    assert!(seen.invites.len() > at_kill, "the campaign resumed");
    let calls = seen.per_number(0);
    for number in &numbers {
        let n = calls
            .get(number.trim_start_matches('+'))
            .map_or(0, Vec::len);
        assert!(
            (1..=2).contains(&n),
            "{number} was called {n} times (1 or 2 allowed): {done:#}"
        );
    }
    let recipients = all_recipients(&server, &id);
    assert_eq!(recipients.len(), numbers.len());
    for r in &recipients {
        assert_eq!(r["state"], "done", "{r}");
        assert!(
            r["attempts"].as_i64().unwrap() <= 2,
            "attempts beyond the rule: {r}"
        );
    }
    let (_, body) = server.get(&format!("/api/v1/broadcasts/{id}"));
    let total: i64 = body["progress"]["outcomes"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_i64().unwrap())
        .sum();
    assert_eq!(total, numbers.len() as i64, "{body:#}");
    assert_eq!(server.terminate().code(), Some(0));
}

#[test]
fn nobody_is_called_outside_the_window_of_their_own_time_zone() {
    let temp = tempfile::tempdir().unwrap();
    let silence = digits_pcap(temp.path(), None);
    let trunk = Trunk::start(temp.path(), 0, &silence);
    // 08:59:52 in Kyiv, 06:59:52 in London, on a Wednesday.
    let spawned = Instant::now();
    let mut server = Server::start_in(
        temp.path(),
        &trunk.config("carrier", 10),
        &["--clock-start", "2026-12-02T06:59:52Z"],
    );
    let csv = "number,name,timezone\n+380441230001,Kyiv one,\n+380441230002,Kyiv two,\n\
               +442079460001,London,\n+380441230003,Kyiv but in London,Europe/London\n";
    let campaign = serde_json::json!({
        "name": "Window",
        "window": { "mon-fri": "09:00-20:00" },
        "start": true,
    });
    let created = create(&server, &campaign, csv);
    let id = created["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(40);
    let first_call = loop {
        if !trunk.seen().invites.is_empty() {
            break Instant::now();
        }
        assert!(Instant::now() < deadline, "nobody in Kyiv was called");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        first_call - spawned >= Duration::from_secs(8),
        "a call before 09:00 in Kyiv ({:?} after the clock started at 08:59:52)",
        first_call - spawned
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let recipients = all_recipients(&server, &id);
        let done: Vec<&str> = recipients
            .iter()
            .filter(|r| r["state"] == "done")
            .map(|r| r["e164"].as_str().unwrap())
            .collect();
        if done.len() == 2 {
            assert!(done.contains(&"+380441230001") && done.contains(&"+380441230002"));
            break;
        }
        assert!(Instant::now() < deadline, "{recipients:#?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // London opens at 09:00 UTC, two hours later: not called, due then.
    std::thread::sleep(Duration::from_secs(3));
    let seen = trunk.seen();
    let called: Vec<&str> = seen.invites.iter().map(|(_, n, _)| n.as_str()).collect();
    assert_eq!(called.len(), 2, "{called:?}");
    assert!(!called.contains(&"442079460001") && !called.contains(&"380441230003"));
    for r in all_recipients(&server, &id) {
        if r["e164"] == "+442079460001" || r["e164"] == "+380441230003" {
            assert_eq!(r["state"], "pending", "{r}");
            // Stored in real time: 09:00 UTC on the shown clock, two hours on.
            let due: chrono::DateTime<chrono::Utc> =
                r["next_attempt_at"].as_str().unwrap().parse().unwrap();
            let wait = due - chrono::Utc::now();
            assert!(
                wait > chrono::Duration::minutes(115) && wait <= chrono::Duration::minutes(120),
                "{r}"
            );
        }
    }
    let (_, body) = server.get(&format!("/api/v1/broadcasts/{id}"));
    assert_eq!(body["state"], "running", "{body:#}");
    assert_eq!(server.terminate().code(), Some(0));
}

#[test]
fn answer_digits_are_stored_and_the_opt_out_digit_keeps_the_number_out_of_later_campaigns() {
    let temp = tempfile::tempdir().unwrap();
    let press_1 = digits_pcap(temp.path(), Some('1'));
    let press_9 = digits_pcap(temp.path(), Some('9'));
    let confirms = Trunk::start(temp.path(), 0, &press_1);
    let opts_out = Trunk::start(temp.path(), 0, &press_9);
    let config = format!(
        "{}\n{}",
        confirms.config("confirms", 10),
        opts_out.config("opts-out", 10)
    );
    let mut server = Server::start_in(
        temp.path(),
        &config,
        &["--clock-start", WEDNESDAY_NOON_KYIV],
    );
    let campaign = |trunk: &str| {
        serde_json::json!({
            "name": format!("Through {trunk}"),
            "trunk": trunk,
            "opt_out_digit": "9",
            "start": true,
        })
    };
    let first = create(
        &server,
        &campaign("confirms"),
        "+380441230001\n+380441230002\n",
    );
    let second = create(
        &server,
        &campaign("opts-out"),
        "+380441230003\n+380441230004\n",
    );
    for created in [&first, &second] {
        let id = created["id"].as_str().unwrap();
        wait_for_state(&server, id, "completed", Duration::from_secs(60));
    }
    let digits = |created: &serde_json::Value| -> Vec<(String, String, String)> {
        all_recipients(&server, created["id"].as_str().unwrap())
            .iter()
            .map(|r| {
                (
                    r["e164"].as_str().unwrap().to_string(),
                    r["outcome"].as_str().unwrap().to_string(),
                    r["digit"].as_str().unwrap_or("-").to_string(),
                )
            })
            .collect()
    };
    assert_eq!(
        digits(&first),
        [
            ("+380441230001".into(), "human".into(), "1".into()),
            ("+380441230002".into(), "human".into(), "1".into())
        ]
    );
    assert_eq!(
        digits(&second),
        [
            ("+380441230003".into(), "opted_out".into(), "9".into()),
            ("+380441230004".into(), "opted_out".into(), "9".into())
        ]
    );
    let (status, list) = server.get("/api/v1/do-not-call");
    assert_eq!(status, 200, "{list}");
    let listed: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["e164"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["+380441230003", "+380441230004"]);

    // A later campaign to all four calls only those who did not opt out.
    let before = confirms.seen().invites.len();
    let later = create(
        &server,
        &campaign("confirms"),
        "+380441230001\n+380441230003\n+380441230004\n",
    );
    let id = later["id"].as_str().unwrap();
    wait_for_state(&server, id, "completed", Duration::from_secs(60));
    let outcomes: Vec<(String, String)> =
        digits(&later).into_iter().map(|(n, o, _)| (n, o)).collect();
    assert_eq!(
        outcomes,
        [
            ("+380441230001".into(), "human".into()),
            ("+380441230003".into(), "do_not_call".into()),
            ("+380441230004".into(), "do_not_call".into())
        ]
    );
    let new_calls: Vec<String> = confirms.seen().invites[before..]
        .iter()
        .map(|(_, n, _)| n.clone())
        .collect();
    assert_eq!(new_calls, ["380441230001"]);

    // The command line says the same.
    let output = Command::new(env!("CARGO_BIN_EXE_openline"))
        .args(["broadcast", "status", created_id(&first), "--watch"])
        .args(["--api", &format!("http://{}", server.http)])
        .env("OPENLINE_TOKEN", MANAGER_TOKEN)
        .output()
        .expect("openline broadcast status");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stdout.trim(),
        "Through confirms: completed, 2/2 done · in flight 0 · human 2"
    );
    let output = Command::new(env!("CARGO_BIN_EXE_openline"))
        .args(["broadcast", "status", created_id(&first)])
        .args([
            "--api",
            &format!("http://{}", server.http),
            "--token",
            "wrong",
        ])
        .output()
        .expect("openline broadcast status");
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // Taking a number off the list is for admins.
    let response = send(
        server.http,
        "DELETE",
        "/api/v1/do-not-call/+380441230003",
        &[("Authorization", &format!("Bearer {MANAGER_TOKEN}"))],
        b"",
    );
    assert_eq!(response.status, 403, "{}", response.text());
    assert_eq!(server.terminate().code(), Some(0));
}

#[test]
fn bad_campaigns_get_clear_refusals() {
    let temp = tempfile::tempdir().unwrap();
    let silence = digits_pcap(temp.path(), None);
    let trunk = Trunk::start(temp.path(), 0, &silence);
    let server = Server::start_in(temp.path(), &trunk.config("carrier", 10), &[]);
    let cases = [
        (
            serde_json::json!({ "name": "", "recipients": { "numbers": ["+380441230001"] },
            "message": { "kind": "text", "text": "hi" } }),
            "name",
        ),
        (
            serde_json::json!({ "name": "x", "trunk": "nope", "recipients": { "numbers": ["+380441230001"] },
            "message": { "kind": "text", "text": "hi" } }),
            "trunk",
        ),
        (
            serde_json::json!({ "name": "x", "recipients": { "numbers": [] },
            "message": { "kind": "text", "text": "hi" } }),
            "recipients",
        ),
        (
            serde_json::json!({ "name": "x", "recipients": { "numbers": ["+380441230001"] },
            "message": { "kind": "sound", "file": "../openline.toml" } }),
            "message.file",
        ),
        (
            serde_json::json!({ "name": "x", "recipients": { "numbers": ["+380441230001"] },
            "message": { "kind": "sound", "file": "main-menu.wav" }, "window": { "mon": "25:00-26:00" } }),
            "window",
        ),
        (
            serde_json::json!({ "name": "x", "recipients": { "numbers": ["+380441230001"] },
            "message": { "kind": "sound", "file": "main-menu.wav" }, "concurrency": 0 }),
            "concurrency",
        ),
        (
            serde_json::json!({ "name": "x", "recipients": { "numbers": ["+380441230001"] },
            "message": { "kind": "sound", "file": "main-menu.wav" }, "answer_flow": "missing" }),
            "answer_flow",
        ),
    ];
    for (body, field) in cases {
        let response = post(&server, "/api/v1/broadcasts", &body);
        assert_eq!(response.status, 400, "{body}: {}", response.text());
        let error = response.json();
        assert_eq!(error["error"]["code"], "broadcast.invalid", "{error}");
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with(field),
            "{field}: {error}"
        );
    }
    // Not a WAV at all, in the audio part.
    let campaign = serde_json::json!({ "name": "x" });
    let boundary = "b0undary";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"campaign\"\r\n\r\n{campaign}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"message\"; filename=\"m.wav\"\r\n\r\nnot audio at all\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"recipients\"; filename=\"l.csv\"\r\n\r\n+380441230001\r\n\
         --{boundary}--\r\n"
    );
    let response = send(
        server.http,
        "POST",
        "/api/v1/broadcasts",
        &[
            ("Authorization", &format!("Bearer {MANAGER_TOKEN}")),
            (
                "Content-Type",
                &format!("multipart/form-data; boundary={boundary}"),
            ),
        ],
        body.as_bytes(),
    );
    assert_eq!(response.status, 400, "{}", response.text());
    assert!(
        response.text().contains("cannot be read"),
        "{}",
        response.text()
    );
    // Operators cannot make campaigns; nothing was created by any of the above.
    let response = send(
        server.http,
        "GET",
        "/api/v1/broadcasts",
        &[("Authorization", &format!("Bearer {OPERATOR_TOKEN}"))],
        b"",
    );
    assert_eq!(response.status, 403);
    let (_, list) = server.get("/api/v1/broadcasts");
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");
    assert!(
        !temp.path().join("data/broadcasts").exists()
            || std::fs::read_dir(temp.path().join("data/broadcasts"))
                .unwrap()
                .next()
                .is_none(),
        "refused campaigns leave no audio behind"
    );
}

#[test]
fn answering_machines_are_told_from_people_and_get_the_message_after_their_beep() {
    let temp = tempfile::tempdir().unwrap();
    let greeting = speech_pcap(temp.path(), "machine_greeting_beep.wav");
    let hello = speech_pcap(temp.path(), "human_hello.wav");
    let machines = Trunk::start_with(temp.path(), 0, &greeting, false);
    let people = Trunk::start_with(temp.path(), 0, &hello, false);
    let config = format!(
        "{}\n{}",
        machines.config("machines", 10),
        people.config("people", 10)
    );
    let mut server = Server::start_in(
        temp.path(),
        &config,
        &["--clock-start", WEDNESDAY_NOON_KYIV],
    );
    let campaign = |trunk: &str, amd: &str| {
        serde_json::json!({
            "name": format!("{amd} via {trunk}"),
            "trunk": trunk,
            "amd": amd,
            "retry": { "max_attempts": 1 },
            "start": true,
        })
    };
    let left = create(
        &server,
        &campaign("machines", "leave_message"),
        "+380441230001\n",
    );
    let hung_up = create(&server, &campaign("machines", "hangup"), "+380441230002\n");
    let person = create(
        &server,
        &campaign("people", "leave_message"),
        "+380441230003\n",
    );
    let mut results = Vec::new();
    for created in [&left, &hung_up, &person] {
        let id = created_id(created);
        wait_for_state(&server, id, "completed", Duration::from_secs(60));
        let recipient = all_recipients(&server, id).remove(0);
        let person_id = recipient["person_id"].as_str().unwrap();
        let (_, timeline) = server.get(&format!("/api/v1/leads/{person_id}/timeline"));
        let entry = timeline["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["data"]["broadcast_id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no timeline entry: {timeline:#}"));
        let result = &entry["data"]["broadcast"];
        results.push((
            recipient["outcome"].as_str().unwrap().to_string(),
            result["amd"].as_str().unwrap_or("-").to_string(),
            result["message"].as_str().unwrap_or("-").to_string(),
            entry["data"]["disposition"].as_str().unwrap().to_string(),
        ));
    }
    let expected = [
        (
            "machine",
            "machine",
            "complete",
            "broadcast.left_on_machine",
        ),
        ("machine", "machine", "none", "broadcast.machine_hangup"),
        ("human", "human", "complete", "broadcast.delivered"),
    ];
    let expected: Vec<(String, String, String, String)> = expected
        .iter()
        .map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d.to_string()))
        .collect();
    assert_eq!(results, expected);
    assert_eq!(server.terminate().code(), Some(0));
}

const CONFIRM_FLOW: &str = "id: confirm
entry: menu
nodes:
  menu:
    menu: { play: main-menu.wav, timeout: 5s, retries: 1, options: { \"1\": thanks, \"2\": agents }, on_fail: thanks }
  thanks:
    play: thanks.wav
  agents:
    queue: sales
";

#[test]
fn pressing_2_in_the_answer_menu_reaches_a_queue_operator() {
    let temp = tempfile::tempdir().unwrap();
    let press_2 = digits_pcap(temp.path(), Some('2'));
    let trunk = Trunk::start(temp.path(), 0, &press_2);
    let flows = temp.path().join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    std::fs::write(flows.join("confirm.yaml"), CONFIRM_FLOW).unwrap();
    let config = format!(
        "{}\n[[queues]]\nname = \"sales\"\nmembers = [\"101\"]\nstrategy = \"all\"\nring_timeout = \"15s\"\n",
        trunk.config("carrier", 10)
    );
    let mut server = Server::start_in(
        temp.path(),
        &config,
        &[
            "--clock-start",
            WEDNESDAY_NOON_KYIV,
            "--flows",
            flows.to_str().unwrap(),
        ],
    );
    let mut phone = common::phone::Phone::register(server.sip, "101", "s3cret-101");
    let campaign = serde_json::json!({
        "name": "Confirm your order",
        "answer_flow": "confirm",
        "opt_out_digit": "9",
        "start": true,
    });
    let created = create(&server, &campaign, "+380441230001\n");
    let invite = phone
        .wait_for("INVITE ", Duration::from_secs(30))
        .expect("the operator's phone rings after the recipient pressed 2");
    assert!(
        header(&invite, "From").is_some_and(|f| f.contains("380441230001")),
        "the operator sees who it is: {invite}"
    );
    phone.ringing(&invite);
    let op_rtp = common::rtp::RtpPeer::new();
    phone.answer(&invite, op_rtp.port());
    std::thread::sleep(Duration::from_millis(500));
    phone.bye(&invite);

    let id = created_id(&created);
    wait_for_state(&server, id, "completed", Duration::from_secs(30));
    let recipient = all_recipients(&server, id).remove(0);
    assert_eq!(recipient["outcome"], "human", "{recipient}");
    assert_eq!(recipient["digit"], "2", "{recipient}");
    let person = recipient["person_id"].as_str().unwrap();
    let (_, timeline) = server.get(&format!("/api/v1/leads/{person}/timeline"));
    let entry = &timeline["entries"][0]["data"];
    assert_eq!(entry["queue"], "sales", "{timeline:#}");
    assert_eq!(entry["operator"], "101", "{timeline:#}");
    assert_eq!(entry["broadcast"]["digit"], "2", "{timeline:#}");
    let path: Vec<&str> = entry["flow_path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(path, ["menu", "agents"], "{timeline:#}");
    assert!(
        !server.get("/api/v1/do-not-call").1["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["e164"] == "+380441230001"),
        "pressing 2 is not an opt-out"
    );
    assert_eq!(server.terminate().code(), Some(0));
}

#[test]
fn pause_stops_new_calls_at_once_resume_goes_on_and_cancel_ends_the_rest() {
    let temp = tempfile::tempdir().unwrap();
    let silence = digits_pcap(temp.path(), None);
    let trunk = Trunk::start(temp.path(), 0, &silence);
    let mut server = Server::start_in(
        temp.path(),
        &trunk.config("carrier", 10),
        &["--clock-start", WEDNESDAY_NOON_KYIV],
    );
    let numbers: Vec<String> = kyiv_numbers(40)
        .into_iter()
        .filter(|n| expected_outcome(n) == "human")
        .take(20)
        .collect();
    let csv: String = numbers.iter().map(|n| format!("{n}\n")).collect();
    let campaign =
        serde_json::json!({ "name": "Paced", "concurrency": 2, "cps": 2, "start": true });
    let created = create(&server, &campaign, &csv);
    let id = created_id(&created).to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    while trunk.seen().invites.len() < 3 {
        assert!(Instant::now() < deadline, "no calls");
        std::thread::sleep(Duration::from_millis(20));
    }
    let paused = post(
        &server,
        &format!("/api/v1/broadcasts/{id}/pause"),
        &serde_json::json!({}),
    );
    assert_eq!(paused.status, 200, "{}", paused.text());
    assert_eq!(paused.json()["state"], "paused");
    std::thread::sleep(Duration::from_millis(300));
    let at_pause = trunk.seen().invites.len();
    // Calls already up finish; no new one starts.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = server.get(&format!("/api/v1/broadcasts/{id}"));
        if body["progress"]["calling"] == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "running calls did not finish: {body:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        trunk.seen().invites.len(),
        at_pause,
        "a call after the pause"
    );
    let again = post(
        &server,
        &format!("/api/v1/broadcasts/{id}/pause"),
        &serde_json::json!({}),
    );
    assert_eq!(again.status, 409, "{}", again.text());
    assert_eq!(again.json()["error"]["code"], "broadcast.wrong_state");

    let resumed = post(
        &server,
        &format!("/api/v1/broadcasts/{id}/resume"),
        &serde_json::json!({}),
    );
    assert_eq!(resumed.status, 200, "{}", resumed.text());
    let deadline = Instant::now() + Duration::from_secs(30);
    while trunk.seen().invites.len() < at_pause + 2 {
        assert!(Instant::now() < deadline, "resume did not call anyone");
        std::thread::sleep(Duration::from_millis(20));
    }
    let cancelled = post(
        &server,
        &format!("/api/v1/broadcasts/{id}/cancel"),
        &serde_json::json!({}),
    );
    assert_eq!(cancelled.status, 200, "{}", cancelled.text());
    let done = wait_for_state(&server, &id, "cancelled", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(300));
    let at_cancel = trunk.seen().invites.len();
    let deadline = Instant::now() + Duration::from_secs(20);
    let recipients = loop {
        let recipients = all_recipients(&server, &id);
        if recipients.iter().all(|r| r["state"] == "done") {
            break recipients;
        }
        assert!(Instant::now() < deadline, "{recipients:#?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        trunk.seen().invites.len(),
        at_cancel,
        "a call after the cancel"
    );
    let called = recipients
        .iter()
        .filter(|r| r["outcome"] == "human")
        .count();
    let cancelled = recipients
        .iter()
        .filter(|r| r["outcome"] == "cancelled")
        .count();
    assert_eq!(called, at_cancel, "{done:#}");
    assert_eq!(called + cancelled, numbers.len(), "{recipients:#?}");
    assert!(cancelled > 0);
    assert_eq!(server.terminate().code(), Some(0));
}
