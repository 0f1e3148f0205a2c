//! A test RTP peer: sends paced G.711 audio and RFC 4733 events from its own socket, and collects
//! what the server sends back, placed by RTP timestamp.

use rtc_rtp::{Header, Packet};
use rtc_shared::marshal::{Marshal, Unmarshal};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

pub struct RtpPeer {
    pub socket: UdpSocket,
    pub remote: Option<SocketAddr>,
    seq: u16,
    ssrc: u32,
    /// Timestamp of our first sample.
    ts0: u32,
    /// When the first packet went out: later talk spurts are stamped by the time since, as a
    /// phone's clock runs on while it sends nothing (silence suppression, a pause in the test).
    first_sent: Option<Instant>,
}

/// What we received: (RTP timestamp, payload type, payload) in arrival order.
pub type Received = Vec<(u32, u8, Vec<u8>)>;

pub fn ulaw(samples: &[i16]) -> Vec<u8> {
    samples
        .iter()
        .map(|s| audio_codec_algorithms::encode_ulaw(*s))
        .collect()
}

pub fn unulaw(bytes: &[u8]) -> Vec<i16> {
    bytes
        .iter()
        .map(|b| audio_codec_algorithms::decode_ulaw(*b))
        .collect()
}

impl RtpPeer {
    pub fn new() -> RtpPeer {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind rtp");
        socket
            .set_read_timeout(Some(Duration::from_millis(2)))
            .expect("timeout");
        RtpPeer {
            socket,
            remote: None,
            seq: 1000,
            ssrc: 0x7e57_0001,
            ts0: 90_000,
            first_sent: None,
        }
    }

    pub fn port(&self) -> u16 {
        self.socket.local_addr().expect("addr").port()
    }

    fn send(&mut self, pt: u8, marker: bool, ts: u32, payload: &[u8]) {
        let packet = Packet {
            header: Header {
                version: 2,
                marker,
                payload_type: pt,
                sequence_number: self.seq,
                timestamp: ts,
                ssrc: self.ssrc,
                ..Header::default()
            },
            payload: bytes::Bytes::copy_from_slice(payload),
        };
        self.seq = self.seq.wrapping_add(1);
        let bytes = packet.marshal().expect("marshal");
        if let Some(remote) = self.remote {
            let _ = self.socket.send_to(&bytes, remote);
        }
    }

    /// Talks for `audio.len()` samples in real time: one 20 ms µ-law packet per frame, plus an
    /// RFC 4733 key press (`digit`, payload type) starting at each `events` sample offset.
    /// Returns everything received meanwhile and the instant the first packet went out.
    pub fn converse(&mut self, audio: &[i16], events: &[(usize, char, u8)]) -> (Received, Instant) {
        let start = Instant::now();
        let first = *self.first_sent.get_or_insert(start);
        // This spurt's first timestamp: the real time since the first packet, in whole frames.
        let elapsed = (start - first).as_millis() as u32 / 20 * 160;
        let spurt_ts = self.ts0.wrapping_add(elapsed);
        let mut received = Vec::new();
        let mut buf = [0u8; 2048];
        let frames = audio.len().div_ceil(160);
        for n in 0..frames {
            let due = start + Duration::from_millis(20 * n as u64);
            while Instant::now() < due {
                self.receive_into(&mut received, &mut buf);
            }
            let frame = &audio[n * 160..((n + 1) * 160).min(audio.len())];
            let ts = spurt_ts.wrapping_add((n * 160) as u32);
            self.send(0, n == 0, ts, &ulaw(frame));
            for &(at, digit, pt) in events {
                // RFC 4733: updates every 20 ms for 120 ms, then three end packets, one timestamp.
                let offset = n as i64 - (at / 160) as i64;
                if (0..9).contains(&offset) {
                    let event = dtmf_event(digit);
                    let duration = (160 * (offset.min(5) + 1)) as u16;
                    let end = offset >= 6;
                    let payload = [
                        event,
                        if end { 0x8a } else { 0x0a },
                        (duration >> 8) as u8,
                        duration as u8,
                    ];
                    let ts = spurt_ts.wrapping_add(at as u32);
                    self.send(pt, offset == 0, ts, &payload);
                }
            }
        }
        let tail = Instant::now() + Duration::from_millis(200);
        while Instant::now() < tail {
            self.receive_into(&mut received, &mut buf);
        }
        (received, start)
    }

    fn receive_into(&self, received: &mut Received, buf: &mut [u8]) {
        if let Ok((n, _)) = self.socket.recv_from(buf)
            && let Ok(p) = Packet::unmarshal(&mut &buf[..n])
        {
            received.push((
                p.header.timestamp,
                p.header.payload_type,
                p.payload.to_vec(),
            ));
        }
    }
}

fn dtmf_event(digit: char) -> u8 {
    match digit {
        '0'..='9' => digit as u8 - b'0',
        '*' => 10,
        '#' => 11,
        'A'..='D' => 12 + (digit as u8 - b'A'),
        _ => panic!("not a DTMF digit"),
    }
}

/// Places received µ-law audio by timestamp into one signal starting at the first packet's timestamp.
pub fn assemble(received: &Received) -> Vec<i16> {
    let audio: Vec<&(u32, u8, Vec<u8>)> = received.iter().filter(|(_, pt, _)| *pt == 0).collect();
    let Some(first) = audio.iter().map(|(ts, _, _)| *ts).min() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (ts, _, payload) in audio {
        let at = ts.wrapping_sub(first) as usize;
        if at > 8000 * 600 {
            continue;
        }
        if out.len() < at + payload.len() {
            out.resize(at + payload.len(), 0);
        }
        out[at..at + payload.len()].copy_from_slice(&unulaw(payload));
    }
    out
}

/// Best normalised cross-correlation of `needle` inside `haystack` over lags `0..max_lag`:
/// (correlation, lag in samples).
pub fn best_correlation(haystack: &[i16], needle: &[i16], max_lag: usize) -> (f64, usize) {
    let square = |x: i16| f64::from(x).powi(2);
    let needle_norm = needle.iter().map(|x| square(*x)).sum::<f64>().sqrt();
    let lags = max_lag.min(haystack.len().saturating_sub(needle.len()) + 1);
    if haystack.len() < needle.len() {
        return (0.0, 0);
    }
    // The window's energy slides with it (one sample in, one out) instead of being summed anew.
    let mut energy: f64 = haystack[..needle.len()].iter().map(|x| square(*x)).sum();
    let mut best = (0.0, 0);
    for lag in 0..lags {
        if lag > 0 {
            energy += square(haystack[lag + needle.len() - 1]) - square(haystack[lag - 1]);
        }
        let window = &haystack[lag..lag + needle.len()];
        let dot: f64 = window
            .iter()
            .zip(needle)
            .map(|(a, b)| f64::from(*a) * f64::from(*b))
            .sum();
        let denominator = energy.max(0.0).sqrt() * needle_norm;
        let c = if denominator > 0.0 {
            dot / denominator
        } else {
            0.0
        };
        if c > best.0 {
            best = (c, lag);
        }
    }
    best
}

/// A band-limited, non-periodic test signal (chirp plus amplitude-modulated tones) at `rate`, so a
/// correlation peak is unambiguous; the same function at 8 kHz is the reference after resampling.
pub fn test_signal(rate: u32, seconds: f64, seed: f64) -> Vec<i16> {
    let n = (f64::from(rate) * seconds) as usize;
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            let chirp = (2.0 * std::f64::consts::PI * (250.0 * t + 300.0 * t * t)).sin();
            let am = 0.5 + 0.5 * (2.0 * std::f64::consts::PI * 1.3 * t + seed).sin();
            let tones = am * (2.0 * std::f64::consts::PI * (700.0 + 100.0 * seed) * t).sin()
                + (1.0 - am) * (2.0 * std::f64::consts::PI * 1900.0 * t).sin();
            (6000.0 * (0.6 * chirp + 0.4 * tones)) as i16
        })
        .collect()
}
