//! SIP messages: parsing bytes into typed requests and responses, and the answer to bad input
//! (RFC 3261 §7, §8.2.2, §18.3; the RFC 4475 torture cases).
//!
//! Parsing is one pass: framing (Content-Length), line unfolding, compact names, then the fields every
//! layer above keys on (Via, From, To, Call-ID, CSeq, Max-Forwards) are parsed once into typed values.
//! A message we cannot accept becomes a [`ParseError`]: either a [`Rejection`] the endpoint answers
//! statelessly (400, 505, 501 …), or a silent drop when no answer is possible.

pub mod build;
pub mod grammar;
pub mod headers;

use bytes::Bytes;
pub use grammar::{NameAddr, Via};
pub use headers::{Header, Headers};

/// Largest message we accept on any transport; larger ones get 413 (TCP) or are dropped (UDP).
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024;

/// Most header fields a message may carry (each element of a Via/Contact/Route list counts).
/// Real requests carry 10–40; a 64 KiB message of tiny headers would otherwise cost thousands
/// of allocations to parse and keep. Beyond it a request gets 400 "Too Many Header Fields".
pub const MAX_HEADER_FIELDS: usize = 256;

/// A request method (RFC 3261 §7.1: case-sensitive tokens; extension methods are kept as written).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Register,
    Info,
    Prack,
    Update,
    Subscribe,
    Notify,
    Refer,
    Message,
    Publish,
    Extension(String),
}

impl Method {
    pub fn parse(token: &str) -> Method {
        match token {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "REGISTER" => Method::Register,
            "INFO" => Method::Info,
            "PRACK" => Method::Prack,
            "UPDATE" => Method::Update,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "REFER" => Method::Refer,
            "MESSAGE" => Method::Message,
            "PUBLISH" => Method::Publish,
            other => Method::Extension(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Info => "INFO",
            Method::Prack => "PRACK",
            Method::Update => "UPDATE",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Extension(s) => s,
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed request with its key fields typed.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub uri: String,
    pub headers: Headers,
    pub body: Bytes,
    pub top_via: Via,
    pub from: NameAddr,
    pub to: NameAddr,
    pub call_id: String,
    pub cseq: u32,
    pub max_forwards: Option<u32>,
}

/// A parsed response with its key fields typed.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Headers,
    pub body: Bytes,
    pub top_via: Via,
    pub call_id: String,
    pub cseq: u32,
    pub cseq_method: Method,
    pub to_tag: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Message {
    Request(Request),
    Response(Response),
}

/// A request we answer statelessly with an error, built from its raw headers.
#[derive(Debug, Clone)]
pub struct Rejection {
    pub status: u16,
    pub reason: String,
    /// Extra headers for the answer (`Unsupported`, `Accept`, …).
    pub extra: Vec<(String, String)>,
    /// The request's headers as received, for copying Via/From/To/Call-ID/CSeq (§8.2.6.2).
    pub head: Headers,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ParseError {
    #[error("dropped: {0}")]
    Drop(&'static str),
    #[error("rejected with {}: {}", .0.status, .0.reason)]
    Reject(Box<Rejection>),
}

fn reject(status: u16, reason: &str, head: &Headers) -> ParseError {
    if head.get("Via").is_none() {
        // Without a Via a response cannot be routed (§18.2.2); the rest is copied as far as present.
        return ParseError::Drop("malformed request without Via");
    }
    ParseError::Reject(Box::new(Rejection {
        status,
        reason: reason.to_string(),
        extra: Vec::new(),
        head: head.clone(),
    }))
}

/// Where the head ends and the body starts, and the declared Content-Length if any.
/// Used by the TCP framer before a whole message is in hand.
pub fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// A Content-Length that cannot frame a stream: not a number, negative, or given twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unreadable Content-Length")]
pub struct BadContentLength;

/// Reads the Content-Length of a head (full or compact name).
pub fn head_content_length(head: &[u8]) -> Result<Option<usize>, BadContentLength> {
    let text = std::str::from_utf8(head).map_err(|_| BadContentLength)?;
    let mut found = None;
    for line in text.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.eq_ignore_ascii_case("Content-Length") || name.eq_ignore_ascii_case("l") {
            if found.is_some() {
                return Err(BadContentLength);
            }
            found = Some(
                value
                    .trim()
                    .parse::<usize>()
                    .map_err(|_| BadContentLength)?,
            );
        }
    }
    Ok(found)
}

/// Parses one whole message (a UDP datagram, or a message the TCP framer cut out).
pub fn parse(input: &[u8]) -> Result<Message, ParseError> {
    // §7.5: CRLFs before the start line are ignored (they are also keep-alives).
    let start = input
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .ok_or(ParseError::Drop("keep-alive or empty datagram"))?;
    let input = &input[start..];
    if input.len() > MAX_MESSAGE_SIZE {
        return Err(ParseError::Drop("message too large"));
    }
    let (head_bytes, body, blank_line) = match find_head_end(input) {
        Some(end) => (&input[..end - 4], &input[end..], true),
        None => (input, &input[input.len()..], false),
    };
    let (head_text, valid_utf8) = match std::str::from_utf8(head_bytes) {
        Ok(text) => (std::borrow::Cow::Borrowed(text), true),
        Err(_) => (String::from_utf8_lossy(head_bytes), false),
    };
    let mut lines = unfold(&head_text).into_iter();
    let start_line = lines.next().unwrap_or_default();
    let mut head = Headers::default();
    let mut bad_line = false;
    let mut too_many = false;
    for line in lines {
        if head.len() >= MAX_HEADER_FIELDS {
            too_many = true;
            break;
        }
        match line.split_once(':') {
            Some((name, value)) if grammar::is_token(name.trim_end()) => {
                let name = headers::canonical_name(name.trim_end());
                let value = value.trim();
                if matches!(name.as_str(), "Via" | "Contact" | "Route" | "Record-Route") {
                    for part in headers::split_list(value) {
                        if head.len() >= MAX_HEADER_FIELDS {
                            too_many = true;
                            break;
                        }
                        head.push(&name, part);
                    }
                } else {
                    head.push(&name, value);
                }
            }
            _ => bad_line = true,
        }
    }
    let is_response = start_line.starts_with("SIP/");
    if too_many {
        if is_response {
            return Err(ParseError::Drop("response with too many header fields"));
        }
        return Err(reject(400, "Too Many Header Fields", &head));
    }
    if is_response {
        return parse_response(&start_line, head, body, valid_utf8 && !bad_line);
    }
    if !valid_utf8 {
        return Err(reject(400, "Invalid UTF-8 in Header", &head));
    }
    if bad_line {
        return Err(reject(400, "Malformed Header Line", &head));
    }
    if !blank_line {
        return Err(reject(400, "Missing Empty Line After Headers", &head));
    }
    parse_request(&start_line, head, body)
}

/// Splits the head into lines, joining folded continuation lines (§7.3.1) with one space.
fn unfold(head: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for raw in head.split("\r\n") {
        if raw.starts_with([' ', '\t'])
            && let Some(last) = lines.last_mut()
        {
            last.push(' ');
            last.push_str(raw.trim());
            continue;
        }
        lines.push(raw.to_string());
    }
    lines
}

fn body_by_length(head: &Headers, body: &[u8]) -> Result<Bytes, &'static str> {
    let mut lengths = head.get_all("Content-Length");
    let Some(value) = lengths.next() else {
        return Ok(Bytes::copy_from_slice(body));
    };
    if lengths.next().is_some() {
        return Err("Multiple Content-Length Values");
    }
    let len: usize = value.trim().parse().map_err(|_| "Bad Content-Length")?;
    if len > body.len() {
        return Err("Content-Length Larger Than Message");
    }
    // Extra octets after the declared body are noise (RFC 4475 §3.1.1.8).
    Ok(Bytes::copy_from_slice(&body[..len]))
}

fn parse_request(start_line: &str, head: Headers, body: &[u8]) -> Result<Message, ParseError> {
    let parts: Vec<&str> = start_line.split(' ').collect();
    let [method, uri, version] = parts.as_slice() else {
        return Err(reject(400, "Malformed Request-Line", &head));
    };
    if !grammar::is_token(method) || uri.is_empty() {
        return Err(reject(400, "Malformed Request-Line", &head));
    }
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        // By bytes: a version token with a multi-byte character in its first four bytes
        // must not be sliced as text (a fuzzer found that panic).
        let looks_like_sip =
            version.len() > 4 && version.as_bytes()[..4].eq_ignore_ascii_case(b"SIP/");
        return Err(if looks_like_sip {
            reject(505, "Version Not Supported", &head)
        } else {
            reject(400, "Malformed Request-Line", &head)
        });
    }
    for required in ["Via", "From", "To", "Call-ID", "CSeq"] {
        if head.get(required).is_none() {
            return Err(reject(
                400,
                &format!("Missing Required Header: {required}"),
                &head,
            ));
        }
    }
    for single in headers::SINGLE_VALUED {
        if head.count(single) > 1 {
            return Err(reject(400, &format!("Multiple {single} Values"), &head));
        }
    }
    let body = body_by_length(&head, body).map_err(|why| reject(400, why, &head))?;
    let (cseq, cseq_method) = grammar::parse_cseq(head.get("CSeq").unwrap_or_default())
        .map_err(|why| reject(400, &format!("Bad CSeq: {why}"), &head))?;
    let method = Method::parse(method);
    if let Method::Extension(_) = method {
        // Unknown methods are answered 501 even when their CSeq disagrees (RFC 4475 §3.1.2.18).
        return Err(reject(501, "Not Implemented", &head));
    }
    if cseq_method != method.as_str() {
        return Err(reject(400, "CSeq Method Does Not Match Request", &head));
    }
    let vias: Result<Vec<Via>, _> = head.get_all("Via").map(Via::parse).collect();
    let top_via = match vias {
        Ok(mut vias) if !vias.is_empty() => vias.swap_remove(0),
        Ok(_) => return Err(reject(400, "Missing Via", &head)),
        Err(why) => return Err(reject(400, &format!("Bad Via: {why}"), &head)),
    };
    let from = NameAddr::parse(head.get("From").unwrap_or_default())
        .map_err(|why| reject(400, &format!("Bad From: {why}"), &head))?;
    let to = NameAddr::parse(head.get("To").unwrap_or_default())
        .map_err(|why| reject(400, &format!("Bad To: {why}"), &head))?;
    for contact in head.get_all("Contact").filter(|c| *c != "*") {
        NameAddr::parse(contact)
            .map_err(|why| reject(400, &format!("Bad Contact: {why}"), &head))?;
    }
    let max_forwards = match head.get("Max-Forwards") {
        Some(v) => Some(
            v.trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n <= 255)
                .ok_or_else(|| reject(400, "Bad Max-Forwards", &head))?,
        ),
        None => None,
    };
    check_request_uri(uri).map_err(|why| reject(400, why, &head))?;
    let call_id = head.get("Call-ID").unwrap_or_default().trim().to_string();
    if call_id.is_empty() || call_id.chars().any(char::is_whitespace) {
        return Err(reject(400, "Bad Call-ID", &head));
    }
    Ok(Message::Request(Request {
        method,
        uri: uri.to_string(),
        top_via,
        from,
        to,
        call_id,
        cseq,
        max_forwards,
        headers: head,
        body,
    }))
}

/// The Request-URI must be an absolute URI; SIP URIs go through `rsip`'s URI grammar.
fn check_request_uri(uri: &str) -> Result<(), &'static str> {
    let scheme = grammar::uri_scheme(uri).ok_or("Malformed Request-URI")?;
    if scheme == "sip" || scheme == "sips" {
        if uri.contains('?') {
            // RFC 3261 §19.1.5: headers are not allowed in a Request-URI.
            return Err("Escaped Headers In Request-URI");
        }
        rsip::Uri::try_from(uri).map_err(|_| "Malformed Request-URI")?;
    }
    Ok(())
}

fn parse_response(
    start_line: &str,
    head: Headers,
    body: &[u8],
    well_formed: bool,
) -> Result<Message, ParseError> {
    if !well_formed {
        return Err(ParseError::Drop("malformed response"));
    }
    let mut parts = start_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    let reason = parts.next().unwrap_or_default();
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        return Err(ParseError::Drop("response with unsupported version"));
    }
    let status = match code.parse::<u16>() {
        Ok(s) if code.len() == 3 && (100..700).contains(&s) => s,
        _ => return Err(ParseError::Drop("response with bad status code")),
    };
    let body = body_by_length(&head, body).map_err(|_| ParseError::Drop("bad Content-Length"))?;
    let (cseq, method) = grammar::parse_cseq(head.get("CSeq").unwrap_or_default())
        .map_err(|_| ParseError::Drop("response with bad CSeq"))?;
    let cseq_method = Method::parse(method);
    let top_via = head
        .get("Via")
        .and_then(|v| Via::parse(v).ok())
        .ok_or(ParseError::Drop("response with bad Via"))?;
    let call_id = head
        .get("Call-ID")
        .map(|c| c.trim().to_string())
        .ok_or(ParseError::Drop("response without Call-ID"))?;
    let to = head
        .get("To")
        .and_then(|t| NameAddr::parse(t).ok())
        .ok_or(ParseError::Drop("response with bad To"))?;
    Ok(Message::Response(Response {
        status,
        reason: reason.to_string(),
        top_via,
        call_id,
        cseq,
        cseq_method,
        to_tag: to.tag().map(str::to_string),
        headers: head,
        body,
    }))
}

#[cfg(test)]
mod tests;
