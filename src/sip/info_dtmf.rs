//! Key presses carried in SIP INFO bodies, the legacy way many phones and JsSIP send DTMF:
//! `application/dtmf-relay` (`Signal=5` / `Duration=160` lines, Cisco's format) and `application/dtmf`
//! (the digit alone). RFC 6086 info packages are not negotiated: like every PBX we accept these
//! bodies in any INFO of a confirmed dialog.

/// What an INFO's body says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InfoBody {
    /// One key press (`0-9 * # A-D`, upper case).
    Digit(char),
    /// An INFO with no body (some phones use it as a keep-alive).
    Empty,
    /// A body type we do not take: answered 415 with the types we do.
    Unsupported,
}

/// An INFO body of a DTMF type that does not name one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadDtmfBody;

/// The `Accept` of a 415 to an INFO.
pub const ACCEPTED_TYPES: &str = "application/dtmf-relay, application/dtmf";

/// Reads an INFO body given its Content-Type (parameters and case ignored).
pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<InfoBody, BadDtmfBody> {
    let media_type = content_type
        .map(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let text = || std::str::from_utf8(body).map_err(|_| BadDtmfBody);
    match media_type.as_str() {
        "application/dtmf-relay" => dtmf_relay(text()?).map(InfoBody::Digit),
        "application/dtmf" => character(text()?.trim()).map(InfoBody::Digit),
        _ if body.iter().all(u8::is_ascii_whitespace) => Ok(InfoBody::Empty),
        _ => Ok(InfoBody::Unsupported),
    }
}

/// `Signal=5\r\nDuration=160\r\n`: keys case-insensitive, spaces around `=` allowed, lines in any
/// order; only `Signal` matters (the duration of a key press does not change what it means).
fn dtmf_relay(text: &str) -> Result<char, BadDtmfBody> {
    let mut signal = None;
    for line in text.lines() {
        let Some((name, value)) = line.split_once('=') else {
            if line.trim().is_empty() {
                continue;
            }
            return Err(BadDtmfBody);
        };
        if name.trim().eq_ignore_ascii_case("signal") {
            if signal.is_some() {
                return Err(BadDtmfBody); // two keys in one INFO: which one?
            }
            signal = Some(key(value.trim())?);
        }
    }
    signal.ok_or(BadDtmfBody)
}

/// A `Signal` value: one key, or the RFC 4733 event codes 10–15 some gateways write for `* # A-D`.
fn key(value: &str) -> Result<char, BadDtmfBody> {
    match value {
        "10" => Ok('*'),
        "11" => Ok('#'),
        "12" => Ok('A'),
        "13" => Ok('B'),
        "14" => Ok('C'),
        "15" => Ok('D'),
        _ => character(value),
    }
}

/// One key as itself: `0-9 * # A-D` (letters in either case).
fn character(value: &str) -> Result<char, BadDtmfBody> {
    let mut chars = value.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if matches!(c.to_ascii_uppercase(), '0'..='9' | '*' | '#' | 'A'..='D') => {
            Ok(c.to_ascii_uppercase())
        }
        _ => Err(BadDtmfBody),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RELAY: Option<&str> = Some("application/dtmf-relay");
    const DTMF: Option<&str> = Some("application/dtmf");

    #[test]
    fn bodies() {
        type Expected = Result<InfoBody, BadDtmfBody>;
        let cases: &[(&str, Option<&str>, &[u8], Expected)] = &[
            (
                "cisco relay",
                RELAY,
                b"Signal=5\r\nDuration=160\r\n",
                Ok(InfoBody::Digit('5')),
            ),
            (
                "spaces, lower case, duration first",
                Some("Application/DTMF-Relay; charset=utf-8"),
                b"duration = 250\nsignal = #\n",
                Ok(InfoBody::Digit('#')),
            ),
            (
                "star as event code",
                RELAY,
                b"Signal=10\r\n",
                Ok(InfoBody::Digit('*')),
            ),
            (
                "lower-case a",
                RELAY,
                b"Signal=a\r\n",
                Ok(InfoBody::Digit('A')),
            ),
            ("plain dtmf", DTMF, b"7", Ok(InfoBody::Digit('7'))),
            (
                "plain dtmf with newline",
                DTMF,
                b"9\r\n",
                Ok(InfoBody::Digit('9')),
            ),
            ("no body, no type", None, b"", Ok(InfoBody::Empty)),
            (
                "no body, other type",
                Some("text/plain"),
                b"",
                Ok(InfoBody::Empty),
            ),
            (
                "other type",
                Some("application/media_control+xml"),
                b"<x/>",
                Ok(InfoBody::Unsupported),
            ),
            (
                "body without type",
                None,
                b"Signal=5",
                Ok(InfoBody::Unsupported),
            ),
            (
                "no signal line",
                RELAY,
                b"Duration=160\r\n",
                Err(BadDtmfBody),
            ),
            (
                "two signals",
                RELAY,
                b"Signal=1\r\nSignal=2\r\n",
                Err(BadDtmfBody),
            ),
            ("not a key", RELAY, b"Signal=E\r\n", Err(BadDtmfBody)),
            ("two characters", DTMF, b"12", Err(BadDtmfBody)),
            (
                "event code out of range",
                RELAY,
                b"Signal=16\r\n",
                Err(BadDtmfBody),
            ),
            ("garbage line", RELAY, b"hello\r\n", Err(BadDtmfBody)),
            ("empty dtmf body", DTMF, b"", Err(BadDtmfBody)),
            ("not utf-8", DTMF, b"\xff", Err(BadDtmfBody)),
        ];
        for (name, content_type, body, expected) in cases {
            assert_eq!(parse(*content_type, body), *expected, "{name}");
        }
    }
}
