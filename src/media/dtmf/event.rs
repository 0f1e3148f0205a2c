//! RFC 4733 telephone-events: the §2.3 payload, the receiver's one-digit-per-press rule (§2.5.2), and
//! the sender's packets for one key press (§2.5.1).

use super::{SAMPLE_RATE, digit_for_event, event_for_digit};

/// RFC 4733 §2.3 event payload (§3.2 for the DTMF codes):
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |     event     |E|R| volume    |          duration             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code; 0-15 are the DTMF digits (see [`super::digit_for_event`]).
    pub event: u8,
    /// E bit: this packet ends the event.
    pub end: bool,
    /// Power level in -dBm0 (0..=63); only the low 6 bits are sent.
    pub volume: u8,
    /// Duration so far, in timestamp units (8 kHz by default), from the event's RTP timestamp.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Parses a telephone-event payload. It is a sequence of 4-byte reports; a packet carrying
    /// several (RFC 4733 §2.5.1.5) yields the last, the newest. Empty payloads and lengths that are not
    /// a multiple of 4 are rejected. The R bit is ignored, as §2.3.3 requires.
    pub fn parse(payload: &[u8]) -> Option<TelephoneEvent> {
        if payload.is_empty() || !payload.len().is_multiple_of(4) {
            return None;
        }
        let [event, flags, d_hi, d_lo] = *payload.last_chunk::<4>()?;
        Some(TelephoneEvent {
            event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3F,
            duration: u16::from_be_bytes([d_hi, d_lo]),
        })
    }

    /// The 4-byte payload, with R = 0 and the volume's low 6 bits.
    pub fn to_bytes(&self) -> [u8; 4] {
        let [d_hi, d_lo] = self.duration.to_be_bytes();
        let flags = if self.end { 0x80 } else { 0 } | (self.volume & 0x3F);
        [self.event, flags, d_hi, d_lo]
    }
}

/// How far back (in timestamp units) a timestamp counts as a late packet of an earlier event rather
/// than a new stream: 2^18 is 32 s at 8 kHz, 5 s at 48 kHz; reordering is never that deep.
const REORDER_WINDOW: u32 = 1 << 18;
/// A segment whose last duration reached this is a long event about to continue (§2.5.1.3).
const LONG_SEGMENT: u16 = 0x8000;
/// Allowance for lost updates when deciding that a new timestamp continues the same event.
const CONTINUATION_SLACK: u32 = 1600;

#[derive(Debug, Clone, Copy)]
struct Current {
    timestamp: u32,
    event: u8,
    ended: bool,
    /// Longest duration seen for this timestamp.
    duration: u16,
}

/// Receiving side of RFC 4733: one digit per key press whatever the packet repetition.
///
/// A packet starts a new press when its (RTP timestamp, event code) differs from the current event's,
/// except for:
/// - a late packet of an earlier event (timestamp behind the current one, within 2^18 units): ignored;
/// - the next segment of a long event (§2.5.1.3: same code, no marker, the previous segment not ended,
///   and the new timestamp within the previous segment's reach, i.e. its duration, or 0xFFFF for a
///   full segment, plus a little slack for lost updates). This also absorbs senders that wrongly step
///   the timestamp during one event.
///
/// A marker on a packet of the event in progress (same timestamp and code) is a retransmitted start and
/// is not a new press; a marker on a new timestamp always is. Repeated updates, the three end packets and
/// duplicates never produce a second digit; a press whose start packets were lost produces its digit on
/// the first packet seen, even if that is an end packet. Non-DTMF events are tracked but produce nothing.
#[derive(Debug, Clone, Default)]
pub struct EventReceiver {
    current: Option<Current>,
}

impl EventReceiver {
    pub fn new() -> Self {
        EventReceiver { current: None }
    }

    /// Feed every telephone-event packet with its RTP timestamp and marker bit. Returns the digit
    /// exactly once per key press, on the first packet seen of that press.
    pub fn on_event(
        &mut self,
        rtp_timestamp: u32,
        marker: bool,
        event: TelephoneEvent,
    ) -> Option<char> {
        if let Some(cur) = self.current.as_mut() {
            // Serial-number arithmetic (RFC 1982 style): the reinterpretation as i32 is the point.
            let delta = rtp_timestamp.wrapping_sub(cur.timestamp) as i32;
            if delta == 0 && event.event == cur.event {
                cur.ended |= event.end;
                cur.duration = cur.duration.max(event.duration);
                return None;
            }
            if delta < 0 && delta.unsigned_abs() <= REORDER_WINDOW {
                return None;
            }
            if delta > 0 && !marker && event.event == cur.event && !cur.ended {
                let reach = if cur.duration >= LONG_SEGMENT {
                    u32::from(u16::MAX)
                } else {
                    u32::from(cur.duration)
                };
                if delta.unsigned_abs() <= reach + CONTINUATION_SLACK {
                    *cur = Current {
                        timestamp: rtp_timestamp,
                        event: event.event,
                        ended: event.end,
                        duration: event.duration,
                    };
                    return None;
                }
            }
        }
        self.current = Some(Current {
            timestamp: rtp_timestamp,
            event: event.event,
            ended: event.end,
            duration: event.duration,
        });
        digit_for_event(event.event)
    }
}

/// The packets of one key press (RFC 4733 §2.5.1), all sent with the same RTP timestamp.
///
/// Packet `i` is sent `offsets_ms[i]` after the first one, carries `events[i]` and has the RTP marker bit
/// `markers[i]` (only the first). The three vectors have the same length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventBurst {
    pub offsets_ms: Vec<u32>,
    pub events: Vec<TelephoneEvent>,
    pub markers: Vec<bool>,
}

/// The packets for `digit` held `duration_ms`, one every `packet_ms`:
/// updates at offsets 0, p, 2p… whose durations grow by `packet_ms` each (the first covers the first
/// packet interval), the last capped at `duration_ms`; the last one has the E bit and is sent three times
/// in all, at the packet interval (§2.5.1.4). Durations are in 8 kHz units. `volume` is in -dBm0 and is
/// clamped to 63 (10 is usual).
///
/// `None` for an unknown digit, a zero duration or packet interval, or a press longer than one
/// duration field can hold (8191 ms, §2.5.1.3 segments are not generated).
pub fn event_burst(
    digit: char,
    duration_ms: u32,
    packet_ms: u32,
    volume: u8,
) -> Option<EventBurst> {
    let event = event_for_digit(digit)?;
    if duration_ms == 0 || packet_ms == 0 {
        return None;
    }
    let ticks_per_ms = SAMPLE_RATE / 1000;
    let total = u16::try_from(duration_ms.checked_mul(ticks_per_ms)?).ok()?;
    let volume = volume.min(63);
    let updates = duration_ms.div_ceil(packet_ms);

    let mut burst = EventBurst {
        offsets_ms: Vec::new(),
        events: Vec::new(),
        markers: Vec::new(),
    };
    for i in 0..updates {
        let covered_ms = (i + 1).saturating_mul(packet_ms).min(duration_ms);
        let last = i + 1 == updates;
        // covered_ms <= duration_ms, whose tick count fits in u16.
        let duration = u16::try_from(covered_ms * ticks_per_ms).unwrap_or(total);
        let copies = if last { 3 } else { 1 };
        for copy in 0..copies {
            burst.offsets_ms.push((i + copy).saturating_mul(packet_ms));
            burst.events.push(TelephoneEvent {
                event,
                end: last,
                volume,
                duration,
            });
            burst.markers.push(i == 0 && copy == 0);
        }
    }
    Some(burst)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: u8, end: bool, duration: u16) -> TelephoneEvent {
        TelephoneEvent {
            event,
            end,
            volume: 10,
            duration,
        }
    }

    #[test]
    fn parse_reads_the_rfc_bit_layout() {
        // event 5, E=1, R=1 (ignored), volume 0x2A, duration 0x0320 = 800.
        let e = TelephoneEvent::parse(&[0x05, 0b1110_1010, 0x03, 0x20]).unwrap();
        assert_eq!(
            e,
            TelephoneEvent {
                event: 5,
                end: true,
                volume: 0x2A,
                duration: 800
            }
        );
        let e = TelephoneEvent::parse(&[0x0B, 0b0011_1111, 0xFF, 0xFF]).unwrap();
        assert_eq!(
            e,
            TelephoneEvent {
                event: 11,
                end: false,
                volume: 63,
                duration: 0xFFFF
            }
        );
        let e = TelephoneEvent::parse(&[0x00, 0b0100_0000, 0x00, 0x00]).unwrap();
        assert_eq!(
            e,
            TelephoneEvent {
                event: 0,
                end: false,
                volume: 0,
                duration: 0
            }
        );
    }

    #[test]
    fn emit_sets_e_clears_r_and_masks_volume() {
        assert_eq!(ev(5, true, 800).to_bytes(), [0x05, 0x8A, 0x03, 0x20]);
        assert_eq!(ev(1, false, 160).to_bytes(), [0x01, 0x0A, 0x00, 0xA0]);
        let loud = TelephoneEvent {
            event: 3,
            end: false,
            volume: 0xFF,
            duration: 1,
        };
        assert_eq!(loud.to_bytes(), [0x03, 0x3F, 0x00, 0x01]);
    }

    #[test]
    fn parse_and_emit_round_trip_on_every_flag_byte() {
        for flags in 0..=u8::MAX {
            for (event, duration) in [(0u8, 0u16), (11, 1), (15, 0x1234), (255, 0xFFFF)] {
                let [d_hi, d_lo] = duration.to_be_bytes();
                let bytes = [event, flags, d_hi, d_lo];
                let e = TelephoneEvent::parse(&bytes).unwrap();
                assert_eq!(e.to_bytes(), [event, flags & !0x40, d_hi, d_lo]);
                assert_eq!(TelephoneEvent::parse(&e.to_bytes()), Some(e));
            }
        }
    }

    #[test]
    fn short_or_ragged_payloads_are_rejected() {
        for len in [0usize, 1, 2, 3, 5, 6, 7, 9, 13] {
            assert_eq!(TelephoneEvent::parse(&vec![0x01; len]), None, "len {len}");
        }
    }

    #[test]
    fn several_reports_in_one_payload_yield_the_last() {
        let payload = [0x01, 0x8A, 0x03, 0x20, 0x02, 0x0A, 0x00, 0xA0];
        assert_eq!(TelephoneEvent::parse(&payload), Some(ev(2, false, 160)));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut rx = EventReceiver::new();
        for i in 0..20_000u32 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let bytes = state.to_le_bytes();
            let len = (state >> 60) as usize % 9;
            if let Some(e) = TelephoneEvent::parse(&bytes[..len]) {
                rx.on_event(i.wrapping_mul(97) ^ (state as u32), state & 1 == 1, e);
            }
        }
    }

    /// One packet fed to the receiver.
    #[derive(Clone, Copy)]
    struct Pkt {
        ts: u32,
        marker: bool,
        event: TelephoneEvent,
    }

    fn pkt(ts: u32, marker: bool, event: u8, end: bool, duration: u16) -> Pkt {
        Pkt {
            ts,
            marker,
            event: ev(event, end, duration),
        }
    }

    /// The packets a conforming sender emits for one press starting at `ts`.
    fn press(ts: u32, event: u8, duration_ms: u32) -> Vec<Pkt> {
        let digit = digit_for_event(event).unwrap();
        let b = event_burst(digit, duration_ms, 20, 10).unwrap();
        (0..b.events.len())
            .map(|i| Pkt {
                ts,
                marker: b.markers[i],
                event: b.events[i],
            })
            .collect()
    }

    fn digits(packets: &[Pkt]) -> String {
        let mut rx = EventReceiver::new();
        packets
            .iter()
            .filter_map(|p| rx.on_event(p.ts, p.marker, p.event))
            .collect()
    }

    /// A press longer than one duration field: §2.5.1.3 segments of 0xFFFF, each with a new timestamp,
    /// only the first marked, only the last ended.
    fn long_press(ts: u32, event: u8, total_ticks: u32) -> Vec<Pkt> {
        let mut out = Vec::new();
        let mut seg_ts = ts;
        let mut left = total_ticks;
        let mut first = true;
        loop {
            let seg_len = left.min(0xFFFF);
            let last_segment = left <= 0xFFFF;
            let mut d = 0u32;
            while d < seg_len {
                d = (d + 160).min(seg_len);
                let end = last_segment && d == seg_len;
                out.push(pkt(seg_ts, first, event, end, d as u16));
                first = false;
            }
            if last_segment {
                let end = *out.last().unwrap();
                out.push(end);
                out.push(end);
                return out;
            }
            seg_ts = seg_ts.wrapping_add(seg_len);
            left -= seg_len;
        }
    }

    #[test]
    fn receiver_table() {
        let mut reordered = press(1000, 5, 100);
        reordered.extend(press(3000, 6, 100));
        reordered.push(pkt(1000, false, 5, false, 480)); // a late update of the first press
        reordered.push(pkt(1000, true, 5, false, 160)); // and its start, very late

        let mut restarted = press(4000, 5, 60);
        restarted.extend(press(4000u32.wrapping_add(0x9000_0000), 5, 60)); // new stream, far away

        let cases: Vec<(&str, Vec<Pkt>, &str)> = vec![
            (
                "normal press: start, updates, three ends",
                press(1000, 5, 100),
                "5",
            ),
            (
                "two presses of the same digit",
                [press(1000, 5, 100), press(2600, 5, 100)].concat(),
                "55",
            ),
            (
                "two digits",
                [press(1000, 1, 80), press(2600, 2, 80)].concat(),
                "12",
            ),
            (
                "lost start: first packet seen is an end",
                press(1000, 9, 100).split_off(5),
                "9",
            ),
            (
                "only the end packets arrive",
                press(1000, 9, 100)[5..].to_vec(),
                "9",
            ),
            (
                "duplicated packets",
                press(1000, 3, 60).iter().flat_map(|&p| [p, p]).collect(),
                "3",
            ),
            (
                "long press of 10 s in segments",
                long_press(1000, 0, 80_000),
                "0",
            ),
            (
                "long press across the timestamp wrap",
                long_press(u32::MAX - 1000, 11, 160_000),
                "#",
            ),
            (
                "start packet retransmitted with marker",
                [
                    vec![
                        pkt(1000, true, 7, false, 160),
                        pkt(1000, true, 7, false, 160),
                    ],
                    press(1000, 7, 100),
                ]
                .concat(),
                "7",
            ),
            (
                "no marker on a new press still counts",
                [
                    press(1000, 4, 60),
                    vec![
                        pkt(3000, false, 4, false, 160),
                        pkt(3000, false, 4, true, 480),
                    ],
                ]
                .concat(),
                "44",
            ),
            (
                "marker starts a new press even where a continuation would fit",
                vec![
                    pkt(1000, true, 8, false, 160),
                    pkt(1000, false, 8, false, 320),
                    pkt(1320, true, 8, false, 160),
                ],
                "88",
            ),
            (
                "sender stepping the timestamp within one event",
                vec![
                    pkt(1000, true, 2, false, 160),
                    pkt(1160, false, 2, false, 320),
                    pkt(1320, false, 2, true, 480),
                ],
                "2",
            ),
            (
                "different code on the same timestamp is a new press",
                vec![
                    pkt(1000, true, 1, false, 160),
                    pkt(1000, false, 2, false, 320),
                ],
                "12",
            ),
            ("reordered packets of an old press", reordered, "56"),
            ("a new stream far from the old timestamps", restarted, "55"),
            (
                "non-DTMF events produce nothing",
                vec![
                    pkt(1000, true, 16, false, 160),
                    pkt(1000, false, 16, true, 320),
                ],
                "",
            ),
            (
                "duration 0 start packet",
                vec![pkt(1000, true, 1, false, 0), pkt(1000, false, 1, true, 400)],
                "1",
            ),
        ];
        for (name, packets, expected) in cases {
            assert_eq!(digits(&packets), expected, "{name}");
        }
    }

    #[test]
    fn burst_layout() {
        let b = event_burst('5', 100, 20, 10).unwrap();
        let durations: Vec<u16> = b.events.iter().map(|e| e.duration).collect();
        assert_eq!(durations, [160, 320, 480, 640, 800, 800, 800]);
        let ends: Vec<bool> = b.events.iter().map(|e| e.end).collect();
        assert_eq!(ends, [false, false, false, false, true, true, true]);
        assert_eq!(b.markers, [true, false, false, false, false, false, false]);
        assert_eq!(b.offsets_ms, [0, 20, 40, 60, 80, 100, 120]);
        assert!(b.events.iter().all(|e| e.event == 5 && e.volume == 10));
    }

    #[test]
    fn burst_with_a_partial_last_interval_and_a_single_packet() {
        let b = event_burst('#', 50, 20, 99).unwrap();
        let durations: Vec<u16> = b.events.iter().map(|e| e.duration).collect();
        assert_eq!(durations, [160, 320, 400, 400, 400]);
        assert!(b.events.iter().all(|e| e.event == 11 && e.volume == 63));

        let b = event_burst('1', 10, 20, 10).unwrap();
        assert_eq!(b.markers, [true, false, false]);
        assert!(b.events.iter().all(|e| e.end && e.duration == 80));
        assert_eq!(b.offsets_ms, [0, 20, 40]);
    }

    #[test]
    fn burst_rejects_what_it_cannot_send() {
        assert_eq!(event_burst('x', 100, 20, 10), None);
        assert_eq!(event_burst('1', 0, 20, 10), None);
        assert_eq!(event_burst('1', 100, 0, 10), None);
        assert_eq!(event_burst('1', 8192, 20, 10), None);
        assert_eq!(event_burst('1', u32::MAX, 20, 10), None);
        assert!(event_burst('1', 8191, 20, 10).is_some());
        assert!(event_burst('1', 100, u32::MAX, 10).is_some());
    }

    #[test]
    fn burst_round_trips_through_bytes_and_the_receiver() {
        for digit in "0123456789*#ABCD".chars() {
            let b = event_burst(digit, 120, 20, 10).unwrap();
            let mut rx = EventReceiver::new();
            let got: String = b
                .events
                .iter()
                .zip(&b.markers)
                .filter_map(|(e, &m)| {
                    rx.on_event(42, m, TelephoneEvent::parse(&e.to_bytes()).unwrap())
                })
                .collect();
            assert_eq!(got, digit.to_string());
        }
    }
}
