//! SDP offer/answer for audio calls (RFC 4566 syntax, RFC 3264 offer/answer): G.711 µ-law/A-law and
//! RFC 4733 telephone-events on whatever payload type the peer chose.
//!
//! Only what an answer needs is read from the offer; everything else is ignored as RFC 3264 allows.

use crate::media::g711::Law;
use crate::media::session::Direction;
use std::fmt::Write;
use std::net::{IpAddr, SocketAddr};

fn law_name(law: Law) -> &'static str {
    match law {
        Law::Ulaw => "PCMU",
        Law::Alaw => "PCMA",
    }
}

/// What we agreed with the peer for one audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub law: Law,
    /// The peer's telephone-event payload type, if it offered one (we answer with the same).
    pub telephone_event: Option<u8>,
    pub remote_ip: Option<IpAddr>,
    pub remote_port: u16,
    pub ptime: u32,
    /// Our direction in the answer: the mirror of the offer's (RFC 3264 §6.1).
    pub direction: Direction,
}

impl Negotiated {
    /// Where the peer said it receives, unless it put 0.0.0.0 / port 0 there (hold, RFC 3264 §8.4).
    pub fn remote(&self) -> Option<SocketAddr> {
        let ip = self.remote_ip.filter(|ip| !ip.is_unspecified())?;
        (self.remote_port != 0).then(|| SocketAddr::new(ip, self.remote_port))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("no audio stream in the offer")]
    NoAudio,
    #[error("no codec in common (we support PCMU and PCMA)")]
    NoCommonCodec,
    #[error("malformed SDP: {0}")]
    Malformed(&'static str),
}

/// Reads the first audio stream of an offer and picks the peer's most preferred codec we support.
pub fn negotiate(offer: &[u8]) -> Result<Negotiated, SdpError> {
    let text = std::str::from_utf8(offer).map_err(|_| SdpError::Malformed("not UTF-8"))?;
    let mut session_ip = None;
    let mut media: Option<(u16, Vec<u8>)> = None;
    let mut media_ip = None;
    let mut rtpmaps: Vec<(u8, String)> = Vec::new();
    let mut ptime = 20;
    let mut in_audio = false;
    let mut session_direction = Direction::SendRecv;
    let mut media_direction = None;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("m=") {
            if media.is_some() {
                in_audio = false;
                continue; // only the first audio stream is used
            }
            let mut parts = rest.split_whitespace();
            in_audio = parts.next() == Some("audio");
            if in_audio {
                let port = parts
                    .next()
                    .and_then(|p| p.split('/').next())
                    .and_then(|p| p.parse::<u16>().ok())
                    .ok_or(SdpError::Malformed("bad media port"))?;
                let _proto = parts.next();
                let pts = parts.filter_map(|p| p.parse::<u8>().ok()).collect();
                media = Some((port, pts));
            }
        } else if let Some(rest) = line.strip_prefix("c=") {
            let ip = rest
                .split_whitespace()
                .nth(2)
                .and_then(|a| a.split('/').next())
                .and_then(|a| a.parse::<IpAddr>().ok());
            if media.is_some() && in_audio {
                media_ip = ip;
            } else if media.is_none() {
                session_ip = ip;
            }
        } else if let Some(direction) = parse_direction(line) {
            // The offerer's direction; ours is its mirror.
            if media.is_some() && in_audio {
                media_direction = Some(direction);
            } else if media.is_none() {
                session_direction = direction;
            }
        } else if in_audio {
            if let Some(rest) = line.strip_prefix("a=rtpmap:") {
                let mut parts = rest.splitn(2, ' ');
                if let (Some(pt), Some(encoding)) = (parts.next(), parts.next())
                    && let Ok(pt) = pt.parse::<u8>()
                {
                    rtpmaps.push((pt, encoding.to_ascii_lowercase()));
                }
            } else if let Some(rest) = line.strip_prefix("a=ptime:") {
                ptime = rest.trim().parse().unwrap_or(20);
            }
        }
    }
    let (port, pts) = media.ok_or(SdpError::NoAudio)?;
    let encoding = |pt: u8| {
        rtpmaps
            .iter()
            .find(|(p, _)| *p == pt)
            .map(|(_, e)| e.as_str())
    };
    // Static payload types 0 and 8 only: a dynamic PCMU mapping would need the peer to accept
    // our static one back, which RFC 3264 does not promise.
    let law = pts
        .iter()
        .find_map(|&pt| match pt {
            0 => Some(Law::Ulaw),
            8 => Some(Law::Alaw),
            _ => None,
        })
        .ok_or(SdpError::NoCommonCodec)?;
    let telephone_event = pts
        .iter()
        .copied()
        .find(|&pt| encoding(pt).is_some_and(|e| e.starts_with("telephone-event/8000")));
    let offered = media_direction.unwrap_or(session_direction);
    let remote_ip = media_ip.or(session_ip);
    let held_by_address = remote_ip.is_some_and(|ip| ip.is_unspecified());
    let direction = match offered {
        _ if held_by_address => Direction::Inactive, // RFC 2543-style hold: c=0.0.0.0
        Direction::SendRecv => Direction::SendRecv,
        Direction::SendOnly => Direction::RecvOnly,
        Direction::RecvOnly => Direction::SendOnly,
        Direction::Inactive => Direction::Inactive,
    };
    Ok(Negotiated {
        law,
        telephone_event,
        remote_ip,
        remote_port: port,
        ptime,
        direction,
    })
}

fn parse_direction(line: &str) -> Option<Direction> {
    match line {
        "a=sendrecv" => Some(Direction::SendRecv),
        "a=sendonly" => Some(Direction::SendOnly),
        "a=recvonly" => Some(Direction::RecvOnly),
        "a=inactive" => Some(Direction::Inactive),
        _ => None,
    }
}

fn direction_attribute(direction: Direction) -> &'static str {
    match direction {
        Direction::SendRecv => "a=sendrecv",
        Direction::SendOnly => "a=sendonly",
        Direction::RecvOnly => "a=recvonly",
        Direction::Inactive => "a=inactive",
    }
}

/// Our SDP: an answer to `negotiated`, or (None) an offer of everything we support.
pub fn write(
    local_ip: IpAddr,
    port: u16,
    session_id: u64,
    negotiated: Option<&Negotiated>,
) -> String {
    let family = if local_ip.is_ipv6() { "IP6" } else { "IP4" };
    let mut sdp = String::with_capacity(300);
    let _ = write!(
        sdp,
        "v=0\r\no=openline {session_id} {session_id} IN {family} {local_ip}\r\ns=openline\r\nc=IN {family} {local_ip}\r\nt=0 0\r\n"
    );
    let (laws, event_pt): (Vec<Law>, u8) = match negotiated {
        Some(n) => (vec![n.law], n.telephone_event.unwrap_or(101)),
        None => (vec![Law::Ulaw, Law::Alaw], 101),
    };
    let with_events = negotiated.is_none_or(|n| n.telephone_event.is_some());
    let mut pts: Vec<String> = laws.iter().map(|l| l.payload_type().to_string()).collect();
    if with_events {
        pts.push(event_pt.to_string());
    }
    let _ = write!(sdp, "m=audio {port} RTP/AVP {}\r\n", pts.join(" "));
    for law in &laws {
        let _ = write!(
            sdp,
            "a=rtpmap:{} {}/8000\r\n",
            law.payload_type(),
            law_name(*law)
        );
    }
    if with_events {
        let _ = write!(
            sdp,
            "a=rtpmap:{event_pt} telephone-event/8000\r\na=fmtp:{event_pt} 0-16\r\n"
        );
    }
    let direction = negotiated.map_or(Direction::SendRecv, |n| n.direction);
    let _ = write!(sdp, "a=ptime:20\r\n{}\r\n", direction_attribute(direction));
    sdp
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
        m=audio 6000 RTP/AVP 8 0 96\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:96 telephone-event/8000\r\n";

    #[test]
    fn answers_with_the_callers_first_supported_codec_and_its_event_pt() {
        let n = negotiate(OFFER.as_bytes()).unwrap();
        assert_eq!(n.law, Law::Alaw);
        assert_eq!(n.direction, Direction::SendRecv);
        assert_eq!(n.telephone_event, Some(96));
        assert_eq!(n.remote_port, 6000);
        let answer = write("127.0.0.1".parse().unwrap(), 20000, 7, Some(&n));
        assert!(answer.contains("m=audio 20000 RTP/AVP 8 96\r\n"));
        assert!(answer.contains("c=IN IP4 127.0.0.1\r\n"));
        assert!(!answer.contains("0.0.0.0"));
        assert!(answer.contains("a=sendrecv"));
    }

    #[test]
    fn hold_offers_get_mirrored_directions() {
        let cases = [
            ("a=sendonly", Direction::RecvOnly, "a=recvonly"),
            ("a=recvonly", Direction::SendOnly, "a=sendonly"),
            ("a=inactive", Direction::Inactive, "a=inactive"),
        ];
        for (attr, ours, written) in cases {
            let offer = format!("{OFFER}{attr}\r\n");
            let n = negotiate(offer.as_bytes()).unwrap();
            assert_eq!(n.direction, ours, "{attr}");
            let answer = write("127.0.0.1".parse().unwrap(), 20000, 1, Some(&n));
            assert!(answer.contains(written), "{answer}");
        }
        let old_style = OFFER.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0");
        let n = negotiate(old_style.as_bytes()).unwrap();
        assert_eq!(n.remote(), None);
        assert_eq!(n.direction, Direction::Inactive);
    }

    #[test]
    fn refuses_offers_without_g711() {
        let offer = OFFER.replace("RTP/AVP 8 0 96", "RTP/AVP 18");
        assert_eq!(negotiate(offer.as_bytes()), Err(SdpError::NoCommonCodec));
        assert_eq!(negotiate(b"v=0\r\n"), Err(SdpError::NoAudio));
    }
}
