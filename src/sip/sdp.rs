//! SDP offer/answer for audio calls (RFC 4566 syntax, RFC 3264 offer/answer): G.711 µ-law/A-law and
//! RFC 4733 telephone-events on whatever payload type the peer chose.
//!
//! Only what an answer needs is read from the offer; everything else is ignored as RFC 3264 allows.
//! The answer has one `m=` line per offered stream, in order (§6): the first audio stream we can
//! take is answered, every other one (video, a second audio, an unknown kind) is refused with
//! port 0. A session's `o=` keeps its id and address and bumps its version with every new
//! description (§8), and our `c=` stays the address we first advertised, also when the peer
//! holds with `c=0.0.0.0`.
//!
//! A maintained SDP crate was weighed (`sdp`, `webrtc-sdp`): both reject offers real phones send
//! (missing `s=`/`t=`, stray whitespace), which this reader takes, and the offer/answer logic
//! would still be ours; the reader stays until WebRTC brings a second use.

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

/// An offered `m=` line as the answer must echo it when refusing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferedStream {
    pub media: String,
    pub proto: String,
    pub formats: String,
}

/// Our `o=` line across a session's descriptions: same id and address, a version that grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub session_id: u64,
    pub version: u64,
    /// The address we advertise in `o=` and `c=`.
    pub ip: IpAddr,
}

impl Origin {
    /// A new session's origin (NTP-style id from the clock, as RFC 4566 suggests).
    pub fn new(ip: IpAddr, now_micros: u64) -> Origin {
        Origin {
            session_id: now_micros,
            version: now_micros,
            ip,
        }
    }

    /// The origin of the session's next description.
    pub fn next(self) -> Origin {
        Origin {
            version: self.version.wrapping_add(1),
            ..self
        }
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
    /// Every `m=` line of the offer, in order, and which one is the audio answered.
    pub streams: Vec<OfferedStream>,
    pub audio_index: usize,
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
    let mut streams: Vec<OfferedStream> = Vec::new();
    let mut audio_index = 0;
    let mut media_ip = None;
    let mut rtpmaps: Vec<(u8, String)> = Vec::new();
    let mut ptime = 20;
    let mut in_audio = false;
    let mut session_direction = Direction::SendRecv;
    let mut media_direction = None;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("m=") {
            let mut fields = rest.split_whitespace();
            let kind = fields.next().unwrap_or("");
            let _port = fields.next();
            streams.push(OfferedStream {
                media: kind.to_owned(),
                proto: fields.next().unwrap_or("RTP/AVP").to_owned(),
                formats: fields.collect::<Vec<_>>().join(" "),
            });
            if media.is_some() {
                in_audio = false;
                continue; // only the first audio stream is used
            }
            let mut parts = rest.split_whitespace();
            in_audio = parts.next() == Some("audio");
            if in_audio {
                audio_index = streams.len() - 1;
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
            // Session level only before the first m= line (a video section's c= is its own).
            if media.is_some() && in_audio {
                media_ip = ip;
            } else if streams.is_empty() {
                session_ip = ip;
            }
        } else if let Some(direction) = parse_direction(line) {
            // The offerer's direction; ours is its mirror.
            if media.is_some() && in_audio {
                media_direction = Some(direction);
            } else if streams.is_empty() {
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
        streams,
        audio_index,
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
pub fn write(origin: &Origin, port: u16, negotiated: Option<&Negotiated>) -> String {
    let local_ip = origin.ip;
    let family = if local_ip.is_ipv6() { "IP6" } else { "IP4" };
    let mut sdp = String::with_capacity(300);
    let _ = write!(
        sdp,
        "v=0\r\no=openline {} {} IN {family} {local_ip}\r\ns=openline\r\nc=IN {family} {local_ip}\r\nt=0 0\r\n",
        origin.session_id, origin.version
    );
    let Some(n) = negotiated.filter(|n| !n.streams.is_empty()) else {
        write_audio(&mut sdp, port, negotiated);
        return sdp;
    };
    for (index, stream) in n.streams.iter().enumerate() {
        if index == n.audio_index {
            write_audio(&mut sdp, port, Some(n));
        } else {
            // Refused (RFC 3264 §6): port 0, the offered formats echoed.
            let formats = if stream.formats.is_empty() {
                "0"
            } else {
                &stream.formats
            };
            let _ = write!(sdp, "m={} 0 {} {formats}\r\n", stream.media, stream.proto);
        }
    }
    sdp
}

/// Our audio `m=` section.
fn write_audio(sdp: &mut String, port: u16, negotiated: Option<&Negotiated>) {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
        m=audio 6000 RTP/AVP 8 0 96\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:96 telephone-event/8000\r\n";

    fn origin() -> Origin {
        Origin::new("127.0.0.1".parse().unwrap(), 7)
    }

    #[test]
    fn answers_with_the_callers_first_supported_codec_and_its_event_pt() {
        let n = negotiate(OFFER.as_bytes()).unwrap();
        assert_eq!(n.law, Law::Alaw);
        assert_eq!(n.direction, Direction::SendRecv);
        assert_eq!(n.telephone_event, Some(96));
        assert_eq!(n.remote_port, 6000);
        let answer = write(&origin(), 20000, Some(&n));
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
            let answer = write(&origin(), 20000, Some(&n));
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

    /// Regression (review of 832cd51): an offer of audio and video got an answer with one `m=`
    /// line, which RFC 3264 §6 forbids (the peer cannot tell which stream was answered).
    #[test]
    fn every_offered_stream_gets_an_m_line_and_the_ones_we_cannot_take_port_zero() {
        let offer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
            m=video 6002 RTP/AVP 96 97\r\na=rtpmap:96 VP8/90000\r\n\
            m=audio 6000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n\
            m=audio 6004 RTP/AVP 8\r\n\
            m=application 6006 UDP/BFCP *\r\n";
        let n = negotiate(offer.as_bytes()).unwrap();
        assert_eq!(n.audio_index, 1);
        let answer = write(&origin(), 20000, Some(&n));
        let m_lines: Vec<&str> = answer.lines().filter(|l| l.starts_with("m=")).collect();
        assert_eq!(
            m_lines,
            [
                "m=video 0 RTP/AVP 96 97",
                "m=audio 20000 RTP/AVP 0 101",
                "m=audio 0 RTP/AVP 8",
                "m=application 0 UDP/BFCP *",
            ]
        );
        // The attributes of our audio sit under its m= line, before the refused ones.
        let audio_at = answer.find("m=audio 20000").unwrap();
        let rtpmap_at = answer.find("a=rtpmap:0 PCMU/8000").unwrap();
        let refused_at = answer.find("m=audio 0").unwrap();
        assert!(audio_at < rtpmap_at && rtpmap_at < refused_at, "{answer}");
    }

    /// Review finding: in a video-first offer the video section's `c=` and `a=inactive` were
    /// read as session-wide, which made our audio inactive and aimed it at the video address.
    #[test]
    fn a_section_before_the_audio_one_does_not_set_the_sessions_address_or_direction() {
        let offer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
            m=video 6002 RTP/AVP 96\r\nc=IN IP4 192.0.2.99\r\na=inactive\r\n\
            m=audio 6000 RTP/AVP 0\r\n";
        let n = negotiate(offer.as_bytes()).unwrap();
        assert_eq!(n.direction, Direction::SendRecv);
        assert_eq!(n.remote(), Some("127.0.0.1:6000".parse().unwrap()));
    }

    /// Regression (review of 832cd51): every re-INVITE answer had a new session id and the
    /// same version, and a hold with `c=0.0.0.0` was answered with `c=127.0.0.1`.
    #[test]
    fn a_new_description_keeps_the_session_id_and_address_and_bumps_the_version() {
        let first = Origin::new("192.0.2.10".parse().unwrap(), 1_000);
        let held = OFFER.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0");
        let n = negotiate(held.as_bytes()).unwrap();
        let answer = write(&first.next(), 20000, Some(&n));
        assert!(
            answer.contains("o=openline 1000 1001 IN IP4 192.0.2.10\r\n"),
            "{answer}"
        );
        assert!(answer.contains("c=IN IP4 192.0.2.10\r\n"), "{answer}");
        assert!(!answer.contains("127.0.0.1"), "{answer}");
        assert!(answer.contains("a=inactive"), "{answer}");
        assert_eq!(first.next().next().version, 1_002);
    }
}
