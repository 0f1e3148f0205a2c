//! A call's media set-up inside the call layer: the offer negotiated, an RTP port bound, our
//! local address towards the peer, the media session's configuration, and re-offers (hold,
//! resume, a new address) on answered calls.

use super::*;

impl Calls {
    /// A re-INVITE offer on an answered call: hold, resume or a new address.
    pub fn reoffer(&mut self, endpoint: &mut Endpoint, now: Instant, leg: LegId, offer: &[u8]) {
        if self.outbound.contains_key(&leg) {
            self.reoffer_outbound(endpoint, now, leg, offer);
            return;
        }
        let Some(active) = self.active.get_mut(&leg) else {
            endpoint.reject_reinvite(now, leg, 481, "Call/Transaction Does Not Exist");
            return;
        };
        let negotiated = match sdp::negotiate(offer) {
            Ok(n) => n,
            Err(_) => {
                endpoint.reject_reinvite(now, leg, 488, "Not Acceptable Here");
                return;
            }
        };
        let (Some(port), Some(task)) = (active.port, active.task.as_ref()) else {
            endpoint.reject_reinvite(now, leg, 491, "Request Pending");
            return;
        };
        let _ = task.send(CallCommand::Renegotiate(session_config(
            Some(&negotiated),
            self.config.media_timeout,
        )));
        // The same session, the same address (also when the peer holds with c=0.0.0.0).
        let public_ip = self.config.public_ip;
        let origin = active.sdp_origin.map(sdp::Origin::next).unwrap_or_else(|| {
            let ip = public_ip
                .or(active.peer_ip.map(local_ip_towards))
                .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
            sdp::Origin::new(ip, Utc::now().timestamp_micros().unsigned_abs())
        });
        active.sdp_origin = Some(origin);
        let answer = sdp::write(&origin, port, Some(&negotiated));
        active.negotiated = Some(negotiated);
        endpoint.answer_reinvite(now, leg, Bytes::from(answer));
    }

    /// Our side of the caller's media: the offer negotiated, an RTP port bound and the SDP
    /// answer written (sent when the call is answered). False when the call was refused.
    pub(super) fn prepare_media(
        &mut self,
        endpoint: &mut Endpoint,
        now: Instant,
        call: &IncomingCall,
    ) -> bool {
        let negotiated = if call.offer.is_empty() {
            None
        } else {
            match sdp::negotiate(&call.offer) {
                Ok(n) => Some(n),
                Err(e) => {
                    tracing::info!(error = %e, "no usable media offer");
                    endpoint.reject(now, call.leg, 488, "Not Acceptable Here");
                    return false;
                }
            }
        };
        let Some((port, sockets)) = self.bind_rtp() else {
            // The node is full by its port range: as `node_full`, the caller may come back.
            tracing::warn!("no free RTP port");
            metrics::counter!("openline_calls_refused_total", "reason" => "rtp_ports").increment(1);
            endpoint.reject_with(
                now,
                call.leg,
                503,
                "Service Unavailable",
                &[("Retry-After", "5")],
            );
            return false;
        };
        let local_ip = self
            .config
            .public_ip
            .unwrap_or_else(|| self.local_ip_for(call.peer.addr.ip()));
        let origin = sdp::Origin::new(local_ip, Utc::now().timestamp_micros().unsigned_abs());
        let answer = sdp::write(&origin, port, negotiated.as_ref());
        if let Some(active) = self.active.get_mut(&call.leg) {
            active.sdp_origin = Some(origin);
            active.port = Some(port);
            active.sockets = Some(sockets);
            active.negotiated = negotiated;
            active.answer_sdp = Some(Bytes::from(answer));
        }
        true
    }

    pub(super) fn local_ip_for(&mut self, peer: IpAddr) -> IpAddr {
        if self.local_ips.len() > 10_000 {
            self.local_ips.clear(); // bounded: scanners must not grow it forever
        }
        *self
            .local_ips
            .entry(peer)
            .or_insert_with(|| local_ip_towards(peer))
    }

    /// An even port whose RTP and RTCP sockets both bind; ports in use elsewhere are skipped.
    pub(super) fn bind_rtp(&mut self) -> Option<(u16, (std::net::UdpSocket, std::net::UdpSocket))> {
        for _ in 0..8 {
            let port = self.ports.allocate()?;
            let bind = |p: u16| -> std::io::Result<std::net::UdpSocket> {
                let s = std::net::UdpSocket::bind(SocketAddr::new(self.config.rtp_bind, p))?;
                s.set_nonblocking(true)?;
                Ok(s)
            };
            match (bind(port), bind(port + 1)) {
                (Ok(rtp), Ok(rtcp)) => {
                    crate::runtime::icmp::report_errors(&rtp);
                    return Some((port, (rtp, rtcp)));
                }
                _ => {
                    tracing::debug!(port, "RTP port busy, trying another");
                    self.ports.release(port);
                }
            }
        }
        None
    }
}

pub(super) fn session_config(
    negotiated: Option<&Negotiated>,
    media_timeout: Duration,
) -> SessionConfig {
    use crate::media::g711::Law;
    use crate::media::session::Direction;
    match negotiated {
        Some(n) => SessionConfig {
            law: n.law,
            event_pt: n.telephone_event,
            remote: n.remote(),
            direction: n.direction,
            media_timeout,
            ptime: Duration::from_millis(20),
        },
        // Late offer: we offered PCMU and telephone-event 101; the ACK's answer is not read yet,
        // so we send PCMU to whoever sends to us first.
        None => SessionConfig {
            law: Law::Ulaw,
            event_pt: Some(101),
            remote: None,
            direction: Direction::SendRecv,
            media_timeout,
            ptime: Duration::from_millis(20),
        },
    }
}

/// The local address of the interface that routes to `peer` (no packet is sent: a UDP connect only
/// asks the kernel for the route). Falls back to loopback.
pub fn local_ip_towards(peer: IpAddr) -> IpAddr {
    let bind: SocketAddr = if peer.is_ipv6() {
        SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0))
    };
    std::net::UdpSocket::bind(bind)
        .and_then(|s| {
            s.connect((peer, 9))?;
            s.local_addr()
        })
        .map(|a| a.ip())
        .ok()
        .filter(|ip| !ip.is_unspecified())
        .unwrap_or(if peer.is_ipv6() {
            IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
        } else {
            IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
        })
}
