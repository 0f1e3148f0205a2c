//! RTP streams of one call leg (RFC 3550 §5, §8; RFC 3551 8 kHz clocks): our outgoing stream and the
//! receiving side of the peer's — symmetric-RTP latching, SSRC changes, the mapping of the peer's
//! timestamps onto the call's media clock, and the counters RTCP reports need.
//!
//! Every position here is in 8 kHz samples since the call's media started (the "call clock"), so a
//! prompt, a relayed packet and a recording all agree on time.

use bytes::Bytes;
use rtc_rtp::{Header, Packet};
use rtc_shared::marshal::{Marshal, MarshalSize, Unmarshal};
use std::net::SocketAddr;

/// Our stream towards the peer: our SSRC, sequence numbers and timestamps (RFC 3550 §5.1).
#[derive(Debug, Clone)]
pub struct Outgoing {
    ssrc: u32,
    seq: u16,
    ts0: u32,
    marker_pending: bool,
    pub packets_sent: u32,
    pub octets_sent: u32,
    /// The RTP timestamp of the last packet sent (for RTCP SR).
    pub last_timestamp: u32,
}

impl Outgoing {
    /// Random initial values (§5.1) come from the caller so tests can fix them.
    pub fn new(ssrc: u32, seq0: u16, ts0: u32) -> Self {
        Outgoing {
            ssrc,
            seq: seq0,
            ts0,
            marker_pending: true,
            packets_sent: 0,
            octets_sent: 0,
            last_timestamp: ts0,
        }
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The next packet starts a talk-spurt (RFC 3551 §4.1: marker on the first packet after silence
    /// or a source change).
    pub fn mark_talkspurt(&mut self) {
        self.marker_pending = true;
    }

    /// Takes the pending talk-spurt marker (for packets whose marker is decided elsewhere).
    pub fn take_marker(&mut self) -> bool {
        std::mem::take(&mut self.marker_pending)
    }

    /// Serialises one packet whose first sample sits at `position` on the call clock.
    pub fn packet(&mut self, payload_type: u8, position: u64, payload: &[u8]) -> Vec<u8> {
        let marker = std::mem::take(&mut self.marker_pending);
        self.packet_with_marker(payload_type, position as u32, marker, payload)
    }

    /// A packet with an explicit timestamp offset and marker (telephone-events keep one timestamp
    /// for a whole key press, RFC 4733 §2.5.1.2).
    pub fn packet_with_marker(
        &mut self,
        payload_type: u8,
        position: u32,
        marker: bool,
        payload: &[u8],
    ) -> Vec<u8> {
        let timestamp = self.ts0.wrapping_add(position);
        let packet = Packet {
            header: Header {
                version: 2,
                marker,
                payload_type,
                sequence_number: self.seq,
                timestamp,
                ssrc: self.ssrc,
                ..Header::default()
            },
            payload: Bytes::copy_from_slice(payload),
        };
        self.seq = self.seq.wrapping_add(1);
        self.packets_sent = self.packets_sent.wrapping_add(1);
        self.octets_sent = self.octets_sent.wrapping_add(payload.len() as u32);
        self.last_timestamp = timestamp;
        let mut out = vec![0u8; packet.marshal_size()];
        match packet.marshal_to(&mut out) {
            Ok(n) => out.truncate(n),
            Err(_) => out.clear(), // cannot happen with a buffer of marshal_size
        }
        out
    }
}

/// Why a received packet was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    NotRtp,
    /// From another address than the latched one (the RTP Bleed hole stays closed).
    WrongSource,
}

/// A packet accepted from the peer, placed on the call clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub payload_type: u8,
    pub marker: bool,
    pub timestamp: u32,
    pub sequence: u16,
    pub ssrc: u32,
    /// Where the packet's first sample sits on the call clock.
    pub position: u64,
    pub payload: Bytes,
}

/// Largest jump between a packet's timestamp and the newest one of its stream (10 s) that is still
/// followed; beyond it (a stream restarted without a new SSRC) the stream is placed at "now".
const MAX_TIMESTAMP_JUMP: i64 = 8000 * 10;
/// How far the newest packets of a stream may sit behind the call clock (100 ms) before the stream
/// is placed at "now" again: its timestamps lag real time (a phone that stopped sending during a
/// mute and went on with its old timestamps, a slow clock). Left alone, everything after such a
/// stall arrives "in the past" and the recorder, which writes out silence 200 ms behind the
/// clock, drops all of it.
const MAX_LAG: i64 = 800;
/// How far ahead of the call clock the newest packets may sit (1 s) before the stream is placed
/// again (a fast clock over hours).
const MAX_LEAD: i64 = 8000;
/// How long (500 ms of call clock) the newest packets must stay off the clock, every one of them,
/// before the stream is placed again: a burst after a jitter spike lags only for its first few
/// packets and must not move the stream (that would put everything after it ahead of the clock).
const OFF_CLOCK_SUSTAIN: i64 = 4000;

/// The peer's stream as we receive it.
#[derive(Debug, Clone, Default)]
pub struct Incoming {
    latched: Option<SocketAddr>,
    /// When not empty, the only addresses the first packet may come from (the SDP address, the
    /// signalling source for NAT): a stranger cannot hijack the stream by sending first.
    allowed: Vec<std::net::IpAddr>,
    ssrc: Option<u32>,
    /// (peer timestamp, call-clock position) of the reference packet of the current SSRC.
    base: Option<(u32, u64)>,
    /// The newest timestamp seen on the current SSRC.
    newest: Option<u32>,
    /// Since when (call clock) every newest packet has been off the clock (`MAX_LAG`/`MAX_LEAD`).
    off_clock_since: Option<i64>,
    pub stats: ReceiveStats,
    pub refused: u64,
}

/// RFC 3550 §6.4.1 / Appendix A.3 receive counters.
#[derive(Debug, Clone, Default)]
pub struct ReceiveStats {
    pub packets: u64,
    pub base_seq: u32,
    pub max_seq: u16,
    pub cycles: u32,
    pub started: bool,
    /// Interarrival jitter in timestamp units, ×16 as in A.8.
    pub jitter_q4: u32,
    last_transit: Option<i64>,
    pub expected_prior: u32,
    pub received_prior: u32,
}

impl ReceiveStats {
    fn update(&mut self, seq: u16, arrival_ts: i64, rtp_ts: u32) {
        self.packets += 1;
        if !self.started {
            self.started = true;
            self.base_seq = u32::from(seq);
            self.max_seq = seq;
        } else {
            let delta = seq.wrapping_sub(self.max_seq);
            if delta < 0x8000 {
                if seq < self.max_seq {
                    self.cycles = self.cycles.wrapping_add(1 << 16);
                }
                self.max_seq = seq;
            }
        }
        let transit = arrival_ts - i64::from(rtp_ts);
        if let Some(last) = self.last_transit {
            let d = (transit - last).unsigned_abs() as u32;
            // J += (|D| - J) / 16, kept ×16 (A.8).
            self.jitter_q4 = self
                .jitter_q4
                .wrapping_add(d.saturating_sub((self.jitter_q4 + 8) >> 4));
        }
        self.last_transit = Some(transit);
    }

    pub fn extended_max(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }

    pub fn expected(&self) -> u32 {
        self.extended_max()
            .wrapping_sub(self.base_seq)
            .wrapping_add(1)
    }

    pub fn lost(&self) -> i64 {
        i64::from(self.expected()) - self.packets as i64
    }
}

impl Incoming {
    /// Forget the latched address: after a (re)negotiation the next packets latch again.
    pub fn unlatch(&mut self) {
        self.latched = None;
    }

    pub fn latched(&self) -> Option<SocketAddr> {
        self.latched
    }

    /// Latch only to a packet from one of `ips` (none given: to the first source).
    pub fn allow_only(&mut self, ips: Vec<std::net::IpAddr>) {
        self.allowed = ips;
    }

    /// The peer's current SSRC.
    pub fn ssrc(&self) -> Option<u32> {
        self.ssrc
    }

    /// Takes a datagram from `from` that arrived when the call clock read `now_position`.
    pub fn on_datagram(
        &mut self,
        now_position: u64,
        from: SocketAddr,
        datagram: &[u8],
    ) -> Result<Received, Refused> {
        // RTP version 2 and a payload type outside the RTCP range (RFC 5761 §4).
        let looks_like_rtp = datagram.len() >= 12
            && datagram[0] >> 6 == 2
            && !(72..=76).contains(&(datagram[1] & 0x7f));
        if !looks_like_rtp {
            self.refused += 1;
            return Err(Refused::NotRtp);
        }
        match self.latched {
            Some(addr) if addr != from => {
                self.refused += 1;
                return Err(Refused::WrongSource);
            }
            Some(_) => {}
            None if !self.allowed.is_empty() && !self.allowed.contains(&from.ip()) => {
                self.refused += 1;
                return Err(Refused::WrongSource);
            }
            None => self.latched = Some(from),
        }
        let mut buf = datagram;
        let packet = Packet::unmarshal(&mut buf).map_err(|_| {
            self.refused += 1;
            Refused::NotRtp
        })?;
        let h = &packet.header;
        if self.ssrc != Some(h.ssrc) {
            // A new SSRC from the latched source (a phone restarting its stream) is accepted and
            // placed at "now".
            self.ssrc = Some(h.ssrc);
            self.base = Some((h.timestamp, now_position));
            self.newest = None;
            self.off_clock_since = None;
            self.stats = ReceiveStats::default();
        }
        let jump = self
            .newest
            .map_or(0, |n| i64::from(h.timestamp.wrapping_sub(n) as i32));
        let newest = self.newest.is_none() || jump > 0;
        let (base_ts, base_pos) = self.base.unwrap_or((h.timestamp, now_position));
        let offset = i64::from(h.timestamp.wrapping_sub(base_ts) as i32);
        let placed = base_pos as i64 + offset;
        let now = now_position as i64;
        if newest {
            if placed + MAX_LAG < now || placed > now + MAX_LEAD {
                self.off_clock_since.get_or_insert(now);
            } else {
                self.off_clock_since = None;
            }
        }
        let sustained_off_clock = newest
            && self
                .off_clock_since
                .is_some_and(|since| now - since >= OFF_CLOCK_SUSTAIN);
        let position = if jump.abs() > MAX_TIMESTAMP_JUMP || placed < 0 || sustained_off_clock {
            self.base = Some((h.timestamp, now_position));
            self.off_clock_since = None;
            self.newest = Some(h.timestamp);
            now_position
        } else {
            if newest {
                self.newest = Some(h.timestamp);
            }
            placed as u64
        };
        self.stats
            .update(h.sequence_number, now_position as i64, h.timestamp);
        Ok(Received {
            payload_type: h.payload_type,
            marker: h.marker,
            timestamp: h.timestamp,
            sequence: h.sequence_number,
            ssrc: h.ssrc,
            position,
            payload: packet.payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn outgoing_packets_carry_our_ssrc_sequence_and_clock() {
        let mut out = Outgoing::new(0x1234_5678, 65535, 1000);
        let a = out.packet(0, 0, &[0xff; 160]);
        let b = out.packet(0, 160, &[0xff; 160]);
        let pa = Packet::unmarshal(&mut a.as_slice()).unwrap();
        let pb = Packet::unmarshal(&mut b.as_slice()).unwrap();
        assert!(pa.header.marker && !pb.header.marker);
        assert_eq!(pa.header.sequence_number, 65535);
        assert_eq!(pb.header.sequence_number, 0);
        assert_eq!(pb.header.timestamp - pa.header.timestamp, 160);
        assert_eq!(pa.header.ssrc, 0x1234_5678);
        assert_eq!(pa.payload.len(), 160);
    }

    /// Regression (review of 832cd51): the first packet from anyone latched the stream.
    #[test]
    fn latches_only_to_an_allowed_address() {
        let mut sender = Outgoing::new(7, 0, 5000);
        let mut rx = Incoming::default();
        rx.allow_only(vec![
            "10.0.0.1".parse().unwrap(),
            "192.0.2.7".parse().unwrap(),
        ]);
        let first = sender.packet(0, 0, &[0; 160]);
        assert_eq!(
            rx.on_datagram(800, addr("10.0.0.66:4000"), &first),
            Err(Refused::WrongSource)
        );
        assert_eq!(rx.latched(), None, "a stranger does not latch it");
        // NAT: the phone's packets come from its public (signalling) address, another port.
        assert!(rx.on_datagram(960, addr("192.0.2.7:31000"), &first).is_ok());
        assert_eq!(rx.latched(), Some(addr("192.0.2.7:31000")));
    }

    #[test]
    fn latches_to_the_first_source_and_never_relatches() {
        let mut sender = Outgoing::new(7, 0, 5000);
        let mut rx = Incoming::default();
        let first = sender.packet(0, 0, &[0; 160]);
        assert!(rx.on_datagram(800, addr("10.0.0.1:4000"), &first).is_ok());
        let attack = sender.packet(0, 160, &[0; 160]);
        assert_eq!(
            rx.on_datagram(960, addr("10.0.0.66:4000"), &attack),
            Err(Refused::WrongSource)
        );
        assert_eq!(rx.latched(), Some(addr("10.0.0.1:4000")));
        rx.unlatch();
        assert!(rx.on_datagram(1120, addr("10.0.0.2:4002"), &attack).is_ok());
    }

    #[test]
    fn positions_follow_the_peers_timestamps_and_rebase_on_a_new_ssrc() {
        let mut a = Outgoing::new(1, 0, 123_456);
        let mut rx = Incoming::default();
        let src = addr("127.0.0.1:9000");
        let p0 = rx
            .on_datagram(4000, src, &a.packet(0, 0, &[0; 160]))
            .unwrap();
        assert_eq!(p0.position, 4000);
        // Arrives late (jitter) but keeps its place by timestamp.
        let p1 = rx
            .on_datagram(4900, src, &a.packet(0, 160, &[0; 160]))
            .unwrap();
        assert_eq!(p1.position, 4160);
        let mut b = Outgoing::new(2, 0, 9);
        let p2 = rx
            .on_datagram(6000, src, &b.packet(0, 0, &[0; 160]))
            .unwrap();
        assert_eq!(p2.position, 6000);
        assert_eq!(p2.ssrc, 2);
    }

    /// Regression (call_control_e2e): a peer that stopped sending for seconds and went on with
    /// its timestamps where they were had all later audio placed seconds in the past, and the
    /// recorder (already past that point) dropped every packet: the rest of the call was silent.
    /// Review of that fix: a jitter spike must not move the stream, nor ten seconds of stream.
    #[test]
    fn a_stream_is_placed_again_only_when_it_stays_off_the_clock() {
        let src = addr("127.0.0.1:9000");
        let at = |rx: &mut Incoming, a: &mut Outgoing, now: u64, ts: u64| {
            rx.on_datagram(now, src, &a.packet(0, ts, &[0; 160]))
                .unwrap()
                .position
        };

        // A mute: two seconds of nothing, then timestamps where they were. The stream lags by
        // 2 s; after 500 ms of lagging packets it is placed at now.
        let (mut a, mut rx) = (Outgoing::new(1, 0, 77), Incoming::default());
        assert_eq!(at(&mut rx, &mut a, 1000, 0), 1000);
        let mut placed = Vec::new();
        for i in 1..=40u64 {
            placed.push(at(&mut rx, &mut a, 17_000 + i * 160, i * 160));
        }
        assert_eq!(placed[0], 1160, "one late packet is simply late");
        assert_eq!(
            placed[23],
            1000 + 24 * 160,
            "still followed after 480 ms of lag"
        );
        let rebased = placed
            .iter()
            .position(|p| *p > 10_000)
            .expect("placed again");
        assert_eq!(placed[rebased], 17_000 + (rebased as u64 + 1) * 160);
        assert_eq!(
            placed[39],
            placed[rebased] + (39 - rebased as u64) * 160,
            "then followed"
        );

        // A 300 ms jitter spike: a burst of late packets, then on time again. Nothing moves.
        let (mut a, mut rx) = (Outgoing::new(2, 0, 5), Incoming::default());
        let mut placed = Vec::new();
        for i in 0..100u64 {
            let sent = i * 160;
            // Packets 20..35 are held up and arrive together with packet 35 (300 ms late).
            let arrival = if (20..35).contains(&i) {
                35 * 160
            } else {
                sent
            };
            placed.push(at(&mut rx, &mut a, 5000 + arrival, sent));
        }
        let expected: Vec<u64> = (0..100u64).map(|i| 5000 + i * 160).collect();
        assert_eq!(placed, expected);

        // Twenty seconds of a steady stream: followed all along (it was re-based every 10 s).
        let (mut a, mut rx) = (Outgoing::new(3, 0, 9), Incoming::default());
        for i in 0..1000u64 {
            assert_eq!(
                at(&mut rx, &mut a, 300 + i * 160 + i % 3, i * 160),
                300 + i * 160
            );
        }

        // An old packet more than 100 ms late does not move the stream.
        let (mut a, mut rx) = (Outgoing::new(4, 0, 1), Incoming::default());
        assert_eq!(at(&mut rx, &mut a, 0, 0), 0);
        assert_eq!(at(&mut rx, &mut a, 320, 320), 320);
        assert_eq!(at(&mut rx, &mut a, 1400, 160), 160, "155 ms late, and old");
        assert_eq!(at(&mut rx, &mut a, 1440, 1440), 1440);

        // Timestamps jumping 20 s: placed at now at once.
        assert_eq!(at(&mut rx, &mut a, 1600, 1440 + 160_000), 1600);
        // Running more than a second ahead for 500 ms: placed again.
        let (mut a, mut rx) = (Outgoing::new(5, 0, 3), Incoming::default());
        assert_eq!(at(&mut rx, &mut a, 0, 0), 0);
        let mut last = 0;
        for i in 1..=40u64 {
            last = at(&mut rx, &mut a, i * 160, i * 160 + 9_000);
        }
        assert_eq!(last, 40 * 160, "the lead is gone");
    }

    #[test]
    fn rtcp_and_garbage_are_not_rtp() {
        let mut rx = Incoming::default();
        let src = addr("127.0.0.1:9000");
        assert_eq!(
            rx.on_datagram(0, src, &[0x80, 200, 0, 1]),
            Err(Refused::NotRtp)
        );
        let mut rr = vec![0x80u8, 201, 0, 1];
        rr.extend_from_slice(&[0; 8]);
        assert_eq!(rx.on_datagram(0, src, &rr), Err(Refused::NotRtp));
        assert_eq!(
            rx.on_datagram(0, src, b"hello world!"),
            Err(Refused::NotRtp)
        );
        assert!(rx.latched().is_none(), "garbage never latches");
    }

    #[test]
    fn loss_counters() {
        let mut a = Outgoing::new(1, 65534, 0);
        let mut rx = Incoming::default();
        let src = addr("127.0.0.1:9000");
        for i in 0..10u64 {
            let pkt = a.packet(0, i * 160, &[0; 160]);
            if i != 4 {
                rx.on_datagram(i * 160, src, &pkt).unwrap();
            }
        }
        assert_eq!(rx.stats.expected(), 10);
        assert_eq!(rx.stats.lost(), 1);
    }
}
