//! RTCP for one leg (RFC 3550 §6): a sender or receiver report every few seconds with one reception
//! report block about the peer's stream, and the LSR/DLSR bookkeeping from the peer's sender reports.
//! Packets are (un)marshalled with `rtc-rtcp`, the companion of the RTP crate.

use super::rtp::{Outgoing, ReceiveStats};
use rtc_rtcp::receiver_report::ReceiverReport;
use rtc_rtcp::reception_report::ReceptionReport;
use rtc_rtcp::sender_report::SenderReport;
use std::time::{Duration, Instant};

/// How often we report (RFC 3550 §6.2 minimum interval for a two-party session).
pub const INTERVAL: Duration = Duration::from_secs(5);

/// What we keep about the peer's last sender report.
#[derive(Debug, Clone, Copy, Default)]
pub struct PeerReports {
    /// Middle 32 bits of the NTP timestamp of its last SR, and when it arrived.
    last_sr: Option<(u32, Instant)>,
    pub reports_received: u64,
}

impl PeerReports {
    /// Reads an RTCP datagram from the peer; false when it is not RTCP.
    pub fn on_datagram(&mut self, now: Instant, datagram: &[u8]) -> bool {
        let mut buf = datagram;
        let Ok(packets) = rtc_rtcp::packet::unmarshal(&mut buf) else {
            return false;
        };
        self.reports_received += 1;
        for packet in packets {
            if let Some(sr) = packet.as_any().downcast_ref::<SenderReport>() {
                self.last_sr = Some(((sr.ntp_time >> 16) as u32, now));
            }
        }
        true
    }
}

/// NTP time (RFC 3550 §4) of `now`, given the NTP time of `t0`.
pub fn ntp_at(ntp_t0: u64, t0: Instant, now: Instant) -> u64 {
    let d = now.saturating_duration_since(t0);
    let frac = ((u64::from(d.subsec_nanos())) << 32) / 1_000_000_000;
    ntp_t0.wrapping_add((d.as_secs() << 32) | frac)
}

/// NTP time of a wall-clock instant (seconds since 1900 in the high 32 bits).
pub fn ntp_from_unix(unix: Duration) -> u64 {
    const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
    let secs = unix.as_secs() + NTP_UNIX_OFFSET;
    let frac = ((u64::from(unix.subsec_nanos())) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// Our report: SR when we have sent media, else RR; with a block about the peer's stream.
pub fn report(
    now: Instant,
    ntp_now: u64,
    out: &Outgoing,
    peer_ssrc: Option<u32>,
    stats: &mut ReceiveStats,
    peer: &PeerReports,
) -> Option<Vec<u8>> {
    let reports: Vec<ReceptionReport> = peer_ssrc
        .filter(|_| stats.started)
        .map(|ssrc| {
            let expected = stats.expected();
            let expected_interval = expected.wrapping_sub(stats.expected_prior);
            let received = stats.packets as u32;
            let received_interval = received.wrapping_sub(stats.received_prior);
            stats.expected_prior = expected;
            stats.received_prior = received;
            let lost_interval = i64::from(expected_interval) - i64::from(received_interval);
            let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
                0
            } else {
                ((lost_interval << 8) / i64::from(expected_interval)).min(255) as u8
            };
            let (lsr, dlsr) = match peer.last_sr {
                Some((lsr, at)) => {
                    let d = now.saturating_duration_since(at);
                    (
                        lsr,
                        ((d.as_secs_f64() * 65536.0) as u64).min(u64::from(u32::MAX)) as u32,
                    )
                }
                None => (0, 0),
            };
            ReceptionReport {
                ssrc,
                fraction_lost,
                total_lost: (stats.lost().clamp(0, 0x7f_ffff)) as u32,
                last_sequence_number: stats.extended_max(),
                jitter: stats.jitter_q4 >> 4,
                last_sender_report: lsr,
                delay: dlsr,
            }
        })
        .into_iter()
        .collect();
    let packet: Box<dyn rtc_rtcp::packet::Packet> = if out.packets_sent > 0 {
        Box::new(SenderReport {
            ssrc: out.ssrc(),
            ntp_time: ntp_now,
            rtp_time: out.last_timestamp,
            packet_count: out.packets_sent,
            octet_count: out.octets_sent,
            reports,
            ..Default::default()
        })
    } else {
        Box::new(ReceiverReport {
            ssrc: out.ssrc(),
            reports,
            ..Default::default()
        })
    };
    rtc_rtcp::packet::marshal(&[packet])
        .ok()
        .map(|b| b.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_report_round_trip_gives_lsr_and_dlsr() {
        let t0 = Instant::now();
        let mut ours = Outgoing::new(11, 0, 0);
        let _ = ours.packet(0, 0, &[0; 160]);
        let mut stats = ReceiveStats::default();
        let peer = PeerReports::default();
        let ntp = ntp_from_unix(Duration::from_secs(1_800_000_000));
        let sr = report(t0, ntp, &ours, None, &mut stats, &peer).unwrap();
        // The peer reads our SR; 1.5 s later its report carries our LSR and a DLSR of 1.5 s.
        let mut theirs = PeerReports::default();
        assert!(theirs.on_datagram(t0, &sr));
        let out = Outgoing::new(22, 0, 0);
        let mut their_stats = ReceiveStats::default();
        let mut rtp = super::super::rtp::Incoming::default();
        let pkt = ours.packet(0, 160, &[0; 160]);
        rtp.on_datagram(0, "127.0.0.1:1".parse().unwrap(), &pkt)
            .unwrap();
        their_stats.clone_from(&rtp.stats);
        let rr = report(
            t0 + Duration::from_millis(1500),
            0,
            &out,
            Some(11),
            &mut their_stats,
            &theirs,
        )
        .unwrap();
        let parsed = rtc_rtcp::packet::unmarshal(&mut rr.as_slice()).unwrap();
        let rr = parsed[0]
            .as_any()
            .downcast_ref::<ReceiverReport>()
            .expect("an RR: no media sent");
        assert_eq!(rr.reports[0].ssrc, 11);
        assert_eq!(rr.reports[0].last_sender_report, (ntp >> 16) as u32);
        assert_eq!(rr.reports[0].delay, 98304); // 1.5 s in 1/65536 s
    }

    #[test]
    fn garbage_is_not_rtcp() {
        let mut p = PeerReports::default();
        assert!(!p.on_datagram(Instant::now(), b"hello"));
        assert!(!p.on_datagram(Instant::now(), &[]));
    }

    #[test]
    fn ntp_arithmetic() {
        let t0 = Instant::now();
        let base = ntp_from_unix(Duration::from_secs(0));
        assert_eq!(base >> 32, 2_208_988_800);
        let later = ntp_at(base, t0, t0 + Duration::from_millis(500));
        assert_eq!(later - base, 1 << 31);
    }
}
