//! One call leg's media, sans IO: paced sending of prompts or silence, receiving with a playout
//! buffer, DTMF in both directions (RFC 4733 and in-band), relaying to a bridged leg, the media
//! timeout, and the audio the recorder needs. The shell feeds datagrams and time
//! (`on_rtp`, `handle_timeout`) and drains [`MediaOutput`]s.

use super::dtmf::{self, DigitMerger, EventReceiver, InbandDetector, TelephoneEvent};
use super::g711::Law;
use super::pacing::Pacer;
use super::rtcp::{self, PeerReports};
use super::rtp::{Incoming, Outgoing, Received};
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Samples per second on every G.711 leg.
pub const RATE: u64 = 8000;
/// How long received audio waits for late or reordered packets before it is played out to the
/// detector and the recorder.
pub const PLAYOUT_DELAY: u64 = 480; // 60 ms
/// Received audio kept at most this far ahead of the playout point (bounded memory).
const MAX_BUFFERED: u64 = RATE * 2;
/// Window in which one key press heard as an RFC 4733 event and as a tone is one digit.
const DTMF_MERGE_WINDOW: u64 = RATE * 3 / 10;

/// Which way media flows, from our side (RFC 3264 §6.1: the answer mirrors the offer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
}

#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub law: Law,
    /// The telephone-event payload type both sides agreed on, if any.
    pub event_pt: Option<u8>,
    /// Where to send until the peer's first packet latches us (the SDP address).
    pub remote: Option<SocketAddr>,
    pub direction: Direction,
    /// No RTP from the peer for this long ends the call (suspended while the peer does not send).
    pub media_timeout: Duration,
    pub ptime: Duration,
}

/// Where a digit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigitSource {
    Rfc4733,
    Inband,
    /// A SIP INFO in the call's dialog (`application/dtmf-relay`, `application/dtmf`).
    SipInfo,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    Digit {
        digit: char,
        source: DigitSource,
        at_sample: u64,
    },
    /// The prompt given to `play` has been sent completely (or was stopped by barge-in).
    PlaybackFinished { interrupted: bool },
    /// No media from the peer for `media_timeout`.
    Timeout,
    /// The peer's address answers our packets with ICMP errors (port or host unreachable) and
    /// sends nothing: the phone is gone, or the address was never a phone. Nothing more is sent.
    Unreachable,
    /// Audio received from the peer, in order, at its call-clock position (for the recorder).
    Heard { at_sample: u64, samples: Vec<i16> },
    /// Audio we sent from a prompt, at its position (for the recorder's other channel).
    Played { at_sample: u64, samples: Vec<i16> },
}

/// A packet received on one leg, for the bridged leg to send on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relay {
    Audio {
        law: Law,
        position: u64,
        marker: bool,
        payload: bytes::Bytes,
    },
    Event {
        position: u64,
        marker: bool,
        event: TelephoneEvent,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaOutput {
    Rtp {
        to: SocketAddr,
        bytes: Vec<u8>,
    },
    /// To the peer's RTCP port (RTP port + 1, RFC 3550 §11).
    Rtcp {
        to: SocketAddr,
        bytes: Vec<u8>,
    },
    Event(MediaEvent),
    Relay(Relay),
}

enum Mode {
    Idle,
    Playing {
        samples: Arc<[i16]>,
        pos: usize,
        barge_in: bool,
    },
    Bridged,
}

/// The most live audio waiting to be sent: 200 ms.
const MAX_FEED: usize = 1600;

/// A scheduled RFC 4733 packet of a key press we send.
struct EventPacket {
    due: Instant,
    position: u32,
    marker: bool,
    event: TelephoneEvent,
}

/// ICMP errors in a row, with no packet from the peer, over at least `UNREACHABLE_FOR`, after
/// which the stream stops: a phone that closes its port a moment before its BYE arrives is not
/// a call that failed.
const UNREACHABLE_AFTER: u32 = 3;
const UNREACHABLE_FOR: Duration = Duration::from_secs(1);
/// A gap this long between errors starts a new run (scattered errors are not a closed port).
const UNREACHABLE_GAP: Duration = Duration::from_secs(3);

pub struct MediaSession {
    config: SessionConfig,
    /// The peer has shown it wants this stream (ACK or a packet); nothing is sent before.
    confirmed: bool,
    t0: Instant,
    pacer: Pacer,
    out: Outgoing,
    incoming: Incoming,
    mode: Mode,
    /// Received audio by call-clock position, waiting for playout.
    playout: BTreeMap<u64, Vec<i16>>,
    played_until: u64,
    events_in: EventReceiver,
    inband: InbandDetector,
    inband_base: u64,
    merger: DigitMerger,
    events_out: VecDeque<EventPacket>,
    tone_out: VecDeque<i16>,
    /// Live audio to send (a mix for a supervised call), played out on the pacing grid while no
    /// prompt plays and the session is not relaying.
    feed: VecDeque<i16>,
    /// Received audio and key events are passed on (`MediaOutput::Relay`) for the other leg of a
    /// bridge: while bridged, and while sending a mix with the bridge still up.
    relaying: bool,
    last_activity: Instant,
    timed_out: bool,
    /// ICMP errors since the peer's last packet, and when the first of them came.
    unreachable_errors: u32,
    first_unreachable: Option<Instant>,
    last_unreachable: Option<Instant>,
    unreachable: bool,
    record: bool,
    peer_reports: PeerReports,
    next_report: Instant,
    /// NTP time at `t0`, for sender reports (the shell reads the wall clock, not this core).
    ntp_t0: u64,
    outputs: VecDeque<MediaOutput>,
    frame: Vec<i16>,
    encoded: Vec<u8>,
}

impl MediaSession {
    /// `t0` is the call's media start (shared by both legs of a bridge); `ssrc`, `seq0` and `ts0`
    /// are random values from the shell.
    pub fn new(
        t0: Instant,
        now: Instant,
        config: SessionConfig,
        ssrc: u32,
        seq0: u16,
        ts0: u32,
    ) -> Self {
        MediaSession {
            pacer: Pacer::joining(t0, config.ptime, now),
            out: Outgoing::new(ssrc, seq0, ts0),
            incoming: Incoming::default(),
            mode: Mode::Idle,
            playout: BTreeMap::new(),
            played_until: position_at(t0, now),
            events_in: EventReceiver::new(),
            inband: InbandDetector::new(),
            inband_base: position_at(t0, now),
            merger: DigitMerger::new(DTMF_MERGE_WINDOW),
            events_out: VecDeque::new(),
            tone_out: VecDeque::new(),
            feed: VecDeque::new(),
            relaying: false,
            last_activity: now,
            timed_out: false,
            unreachable_errors: 0,
            first_unreachable: None,
            last_unreachable: None,
            unreachable: false,
            record: false,
            peer_reports: PeerReports::default(),
            next_report: now + rtcp::INTERVAL,
            ntp_t0: 0,
            outputs: VecDeque::new(),
            confirmed: true,
            frame: Vec::with_capacity(160),
            encoded: Vec::with_capacity(160),
            config,
            t0,
        }
    }

    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The wall clock at `t0` as NTP time, for the timestamps of our sender reports.
    pub fn set_ntp_origin(&mut self, ntp_t0: u64) {
        self.ntp_t0 = ntp_t0;
    }

    /// Emit `Heard`/`Played` audio for a recorder.
    pub fn set_recording(&mut self, on: bool) {
        self.record = on;
    }

    /// A new offer/answer (re-INVITE): new parameters, and the peer may latch again.
    pub fn renegotiate(&mut self, now: Instant, config: SessionConfig) {
        // A new description (a new address, a resume): errors about the old one do not count.
        self.reset_unreachable();
        self.unreachable = false;
        self.config = config;
        self.incoming.unlatch();
        self.last_activity = now;
        self.timed_out = false;
        self.out.mark_talkspurt();
    }

    pub fn local_ssrc(&self) -> u32 {
        self.out.ssrc()
    }

    pub fn latched(&self) -> Option<SocketAddr> {
        self.incoming.latched()
    }

    pub fn incoming(&self) -> &Incoming {
        &self.incoming
    }

    pub fn outgoing(&self) -> &Outgoing {
        &self.out
    }

    pub fn skipped_packets(&self) -> u64 {
        self.pacer.skipped
    }

    /// Sends `samples` (8 kHz mono) from the next frame on; a digit stops it when `barge_in`.
    pub fn play(&mut self, samples: Arc<[i16]>, barge_in: bool) {
        self.finish_playback(true);
        self.mode = Mode::Playing {
            samples,
            pos: 0,
            barge_in,
        };
        self.out.mark_talkspurt();
    }

    pub fn stop_playback(&mut self) {
        self.finish_playback(true);
        self.mode = Mode::Idle;
    }

    /// From now on this leg sends what the bridged leg relays to it, and relays what it receives.
    pub fn bridge(&mut self) {
        self.finish_playback(true);
        self.feed.clear();
        self.mode = Mode::Bridged;
        self.relaying = true;
        self.out.mark_talkspurt();
    }

    /// Live audio to send after what is queued (see `feed`); more than `MAX_FEED` waiting (the
    /// producer's clock runs ahead) drops the oldest, so the delay stays bounded.
    pub fn feed(&mut self, samples: &[i16]) {
        self.feed.extend(samples);
        let excess = self.feed.len().saturating_sub(MAX_FEED);
        self.feed.drain(..excess);
    }

    pub fn unbridge(&mut self) {
        self.relaying = false;
        if matches!(self.mode, Mode::Bridged) {
            self.mode = Mode::Idle;
            self.out.mark_talkspurt();
        }
    }

    /// Still bridged for what it receives (passed on as `Relay`), but what it sends is the
    /// `feed` (a mix) instead of the other leg's packets: a supervised leg that hears two voices.
    pub fn send_mix(&mut self) {
        self.finish_playback(true);
        if matches!(self.mode, Mode::Bridged) {
            self.out.mark_talkspurt();
        }
        self.mode = Mode::Idle;
        self.relaying = true;
    }

    fn finish_playback(&mut self, interrupted: bool) {
        if matches!(self.mode, Mode::Playing { .. }) {
            self.mode = Mode::Idle;
            self.emit(MediaEvent::PlaybackFinished { interrupted });
        }
    }

    /// Sends one key press: RFC 4733 events when negotiated, else an in-band tone.
    pub fn send_digit(&mut self, now: Instant, digit: char) {
        if self.config.event_pt.is_none() {
            self.tone_out.extend(dtmf::tone(digit, 100, 8000));
            self.tone_out.extend(std::iter::repeat_n(0, 480)); // inter-digit pause
            return;
        }
        let Some(burst) = dtmf::event_burst(digit, 100, 20, 10) else {
            return;
        };
        let position = (self
            .pacer
            .next_deadline()
            .saturating_duration_since(self.t0)
            .as_nanos()
            * u128::from(RATE)
            / 1_000_000_000) as u32;
        let start = self.pacer.next_deadline().max(now);
        for ((offset, event), marker) in
            burst.offsets_ms.iter().zip(burst.events).zip(burst.markers)
        {
            self.events_out.push_back(EventPacket {
                due: start + Duration::from_millis(u64::from(*offset)),
                position,
                marker,
                event,
            });
        }
    }

    pub fn poll_output(&mut self) -> Option<MediaOutput> {
        self.outputs.pop_front()
    }

    /// The next instant the session must be woken.
    pub fn poll_timeout(&self) -> Instant {
        let mut next = self.pacer.next_deadline().min(self.next_report);
        if let Some(e) = self.events_out.front() {
            next = next.min(e.due);
        }
        next
    }

    fn emit(&mut self, event: MediaEvent) {
        self.outputs.push_back(MediaOutput::Event(event));
    }

    fn destination(&self) -> Option<SocketAddr> {
        if !self.confirmed || self.unreachable {
            return None;
        }
        self.incoming.latched().or(self.config.remote)
    }

    /// An answered INVITE's media: nothing is sent until the caller's ACK ([`Self::confirm`])
    /// or its first packet shows the address really asked for it, so a forged INVITE cannot
    /// point our stream at someone else (RFC 3261 §13.3.1.4 gives the ACK 32 s to arrive).
    pub fn hold_until_confirmed(&mut self) {
        self.confirmed = false;
    }

    /// The socket reported an ICMP error for a packet we sent (the shell sees it on its next
    /// receive or send). A run of them over a second with no packet from the peer between them
    /// stops the stream: one can be a phone's NAT blinking, a second of them is a closed port.
    pub fn on_unreachable(&mut self, now: Instant) {
        if self.unreachable {
            return;
        }
        if self
            .last_unreachable
            .is_some_and(|last| now.saturating_duration_since(last) >= UNREACHABLE_GAP)
        {
            self.reset_unreachable();
        }
        self.last_unreachable = Some(now);
        self.unreachable_errors += 1;
        let first = *self.first_unreachable.get_or_insert(now);
        if self.unreachable_errors >= UNREACHABLE_AFTER
            && now.saturating_duration_since(first) >= UNREACHABLE_FOR
        {
            self.unreachable = true;
            self.emit(MediaEvent::Unreachable);
        }
    }

    fn reset_unreachable(&mut self) {
        self.unreachable_errors = 0;
        self.first_unreachable = None;
        self.last_unreachable = None;
    }

    /// The peer confirmed the session (its ACK).
    pub fn confirm(&mut self) {
        self.confirmed = true;
    }

    /// The first packet latches only if it comes from the SDP address or `signalling` (the
    /// address the SIP messages come from: a phone behind NAT sends from there).
    pub fn allow_sources(&mut self, signalling: Option<std::net::IpAddr>) {
        let ips: Vec<std::net::IpAddr> = self
            .config
            .remote
            .map(|a| a.ip())
            .into_iter()
            .chain(signalling)
            .filter(|ip| !ip.is_unspecified())
            .collect();
        if !ips.is_empty() {
            self.incoming.allow_only(ips);
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        for n in self.pacer.due(now) {
            self.send_frame(n);
        }
        while self.events_out.front().is_some_and(|e| e.due <= now) {
            if let (Some(e), Some(pt), Some(to)) = (
                self.events_out.pop_front(),
                self.config.event_pt,
                self.destination(),
            ) {
                let bytes =
                    self.out
                        .packet_with_marker(pt, e.position, e.marker, &e.event.to_bytes());
                self.outputs.push_back(MediaOutput::Rtp { to, bytes });
            }
        }
        self.play_out(position_at(self.t0, now));
        if now >= self.next_report {
            self.next_report = now + rtcp::INTERVAL;
            self.send_report(now);
        }
        let expecting = self.config.direction.receives();
        if expecting
            && !self.timed_out
            && now.saturating_duration_since(self.last_activity) >= self.config.media_timeout
        {
            self.timed_out = true;
            self.emit(MediaEvent::Timeout);
        }
        if !expecting {
            // On hold the peer sends nothing; the timer restarts when it resumes.
            self.last_activity = now;
        }
    }

    /// One frame on the pacing grid: prompt, tone or silence (nothing while bridged: the other leg's
    /// packets are relayed as they come).
    fn send_frame(&mut self, n: u64) {
        let position = n * self.config.ptime.as_millis() as u64 * RATE / 1000;
        let samples_per_frame = (self.config.ptime.as_millis() as u64 * RATE / 1000) as usize;
        self.frame.clear();
        let mut played = false;
        let mut finished = false;
        match &mut self.mode {
            Mode::Bridged => return,
            Mode::Playing { samples, pos, .. } => {
                let end = (*pos + samples_per_frame).min(samples.len());
                self.frame.extend_from_slice(&samples[*pos..end]);
                *pos = end;
                finished = end >= samples.len();
                played = true;
            }
            Mode::Idle => {
                let take = samples_per_frame.min(self.feed.len());
                self.frame.extend(self.feed.drain(..take));
            }
        }
        if !self.tone_out.is_empty() {
            self.frame.clear();
            let take = samples_per_frame.min(self.tone_out.len());
            self.frame.extend(self.tone_out.drain(..take));
        }
        self.frame.resize(samples_per_frame, 0);
        if played && self.record {
            let samples = self.frame.clone();
            self.emit(MediaEvent::Played {
                at_sample: position,
                samples,
            });
        }
        if finished {
            self.mode = Mode::Idle;
            self.emit(MediaEvent::PlaybackFinished { interrupted: false });
        }
        if !self.config.direction.sends() {
            return;
        }
        let Some(to) = self.destination() else { return };
        self.encoded.clear();
        self.config.law.encode_into(&self.frame, &mut self.encoded);
        let bytes = self
            .out
            .packet(self.config.law.payload_type(), position, &self.encoded);
        self.outputs.push_back(MediaOutput::Rtp { to, bytes });
    }

    /// A datagram on the RTP port.
    pub fn on_rtp(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        let now_position = position_at(self.t0, now);
        let Ok(packet) = self.incoming.on_datagram(now_position, from, datagram) else {
            return;
        };
        self.confirmed = true; // it sends to us from an address we accept: it wants the stream
        // It sends again (a phone back after a roam): the stream resumes.
        self.reset_unreachable();
        self.unreachable = false;
        self.last_activity = now;
        self.timed_out = false;
        if Some(packet.payload_type) == self.config.event_pt {
            self.on_event_packet(packet);
            return;
        }
        let law = match packet.payload_type {
            0 => Law::Ulaw,
            8 => Law::Alaw,
            _ => return, // comfort noise and anything unnegotiated
        };
        if self.relaying {
            self.outputs.push_back(MediaOutput::Relay(Relay::Audio {
                law,
                position: packet.position,
                marker: packet.marker,
                payload: packet.payload.clone(),
            }));
        }
        if packet.position < self.played_until || packet.position > now_position + MAX_BUFFERED {
            return; // too late for playout, or absurdly early
        }
        let mut pcm = Vec::with_capacity(packet.payload.len());
        law.decode_into(&packet.payload, &mut pcm);
        self.playout.insert(packet.position, pcm);
    }

    /// RTCP from the peer (its address must match the latched one) is a sign of life too.
    pub fn on_rtcp(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        if self.incoming.latched().is_some_and(|a| a.ip() != from.ip()) {
            return;
        }
        if self.peer_reports.on_datagram(now, datagram) {
            self.last_activity = now;
        }
    }

    fn send_report(&mut self, now: Instant) {
        let Some(rtp_to) = self.destination() else {
            return;
        };
        let to = SocketAddr::new(rtp_to.ip(), rtp_to.port().wrapping_add(1));
        let ntp = rtcp::ntp_at(self.ntp_t0, self.t0, now);
        let peer_ssrc = self.incoming.ssrc();
        if let Some(bytes) = rtcp::report(
            now,
            ntp,
            &self.out,
            peer_ssrc,
            &mut self.incoming.stats,
            &self.peer_reports,
        ) {
            self.outputs.push_back(MediaOutput::Rtcp { to, bytes });
        }
    }

    fn on_event_packet(&mut self, packet: Received) {
        let Some(event) = TelephoneEvent::parse(&packet.payload) else {
            return;
        };
        if self.relaying {
            self.outputs.push_back(MediaOutput::Relay(Relay::Event {
                position: packet.position,
                marker: packet.marker,
                event,
            }));
        }
        if let Some(digit) = self
            .events_in
            .on_event(packet.timestamp, packet.marker, event)
            && let Some(digit) = self.merger.rfc4733(digit, packet.position)
        {
            self.digit(digit, DigitSource::Rfc4733, packet.position);
        }
    }

    /// A key press that came by signalling (SIP INFO) at `now`: merged with the media paths'
    /// reports of the same press, then reported like them. Returns whether it was a new press (a
    /// bridged call passes it on to the other leg only then).
    pub fn on_info_digit(&mut self, now: Instant, digit: char) -> bool {
        let at_sample = position_at(self.t0, now);
        match self.merger.sip_info(digit, at_sample) {
            Some(digit) => {
                self.digit(digit, DigitSource::SipInfo, at_sample);
                true
            }
            None => false,
        }
    }

    fn digit(&mut self, digit: char, source: DigitSource, at_sample: u64) {
        self.emit(MediaEvent::Digit {
            digit,
            source,
            at_sample,
        });
        if let Mode::Playing { barge_in: true, .. } = self.mode {
            self.finish_playback(true);
            self.mode = Mode::Idle;
        }
    }

    /// Releases received audio that has waited `PLAYOUT_DELAY`, in order, to the in-band detector
    /// and the recorder; gaps (lost packets) are silence.
    fn play_out(&mut self, now_position: u64) {
        let until = now_position.saturating_sub(PLAYOUT_DELAY);
        while let Some(entry) = self.playout.first_entry() {
            let position = *entry.key();
            if position + entry.get().len() as u64 > until {
                break;
            }
            let samples = entry.remove();
            if position > self.played_until {
                // Lost packets are silence to the detector, so its clock stays the call's.
                let gap = (position - self.played_until) as usize;
                self.detect_gap(gap, position);
            }
            let start = position.max(self.played_until);
            let skip = (start - position) as usize;
            if skip < samples.len() {
                self.detect(&samples[skip..]);
                if self.record {
                    self.emit(MediaEvent::Heard {
                        at_sample: start,
                        samples: samples[skip..].to_vec(),
                    });
                }
            }
            self.played_until = position + samples.len() as u64;
        }
        if self.played_until + MAX_BUFFERED < until {
            // Nothing received for a long while: move the playout point on.
            self.played_until = until;
            self.restart_detector(until);
        }
    }

    fn restart_detector(&mut self, at: u64) {
        self.inband = InbandDetector::new();
        self.inband_base = at;
    }

    /// `gap` samples of silence before `next`; a long gap restarts the detector instead.
    fn detect_gap(&mut self, gap: usize, next: u64) {
        if gap as u64 > PLAYOUT_DELAY * 4 {
            self.restart_detector(next);
        } else {
            self.detect(&vec![0; gap]);
        }
    }

    fn detect(&mut self, samples: &[i16]) {
        for hit in self.inband.push(samples) {
            let at_sample = self.inband_base + hit.start_sample;
            if let Some(digit) = self.merger.inband(hit.digit, at_sample) {
                self.digit(digit, DigitSource::Inband, at_sample);
            }
        }
    }

    /// A packet the bridged leg received, sent on this leg with our SSRC, sequence and clock
    /// (transcoded when the laws differ; telephone-events move to our payload type).
    pub fn relay(&mut self, packet: &Relay) {
        if !self.config.direction.sends() {
            return;
        }
        let Some(to) = self.destination() else { return };
        let bytes = match packet {
            Relay::Audio {
                law,
                position,
                marker,
                payload,
            } => {
                let marker = self.out.take_marker() || *marker;
                if *law == self.config.law {
                    self.out.packet_with_marker(
                        law.payload_type(),
                        *position as u32,
                        marker,
                        payload,
                    )
                } else {
                    self.encoded.clear();
                    law.transcode(self.config.law, payload, &mut self.encoded);
                    let encoded = std::mem::take(&mut self.encoded);
                    let b = self.out.packet_with_marker(
                        self.config.law.payload_type(),
                        *position as u32,
                        marker,
                        &encoded,
                    );
                    self.encoded = encoded;
                    b
                }
            }
            Relay::Event {
                position,
                marker,
                event,
            } => {
                // A peer without telephone-event hears nothing of the other's key presses; the IVR
                // still sees them on the leg they came from.
                let Some(pt) = self.config.event_pt else {
                    return;
                };
                self.out
                    .packet_with_marker(pt, *position as u32, *marker, &event.to_bytes())
            }
        };
        self.outputs.push_back(MediaOutput::Rtp { to, bytes });
    }
}

/// Call-clock position (8 kHz samples since `t0`) of an instant.
pub fn position_at(t0: Instant, now: Instant) -> u64 {
    (now.saturating_duration_since(t0).as_nanos() * u128::from(RATE) / 1_000_000_000) as u64
}

#[cfg(test)]
mod tests;
