//! SIP over UDP and TCP on one port (RFC 3261 §18): the sockets, TCP framing by Content-Length
//! (partial reads, pipelined messages, keep-alives), size limits, connection caps, and the
//! hand-off of every message to the endpoint task. No parsing beyond framing happens here.

use super::SipInput;
use super::tcp_limits::{ConnectionSlot, TcpLimits};
use crate::sip::message::{MAX_MESSAGE_SIZE, find_head_end, head_content_length};
use crate::sip::transport::{ConnId, Peer, TransportKind};
use bytes::{Bytes, BytesMut};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Largest head we wait for on TCP before giving up on a connection.
const MAX_HEAD: usize = 16 * 1024;
/// Connections idle this long without any message are closed (phones re-REGISTER or keep-alive).
const IDLE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Receive buffer asked for the UDP socket: a burst of requests (a registration storm after a
/// network blip, a flood) queues in the kernel instead of being dropped while the endpoint catches up.
const UDP_RECEIVE_BUFFER: usize = 8 * 1024 * 1024;

/// Binds UDP and TCP on the same address; with port 0 both get the same free port.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(UdpSocket, TcpListener)> {
    let mut last_error = None;
    for _ in 0..20 {
        let udp = UdpSocket::bind(addr).await?;
        // The kernel caps this at net.core.rmem_max; a smaller buffer is not an error.
        if let Err(e) = socket2::SockRef::from(&udp).set_recv_buffer_size(UDP_RECEIVE_BUFFER) {
            tracing::warn!(error = %e, "cannot enlarge the UDP receive buffer");
        }
        let bound = udp.local_addr()?;
        match TcpListener::bind(bound).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if addr.port() == 0 => last_error = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_error.unwrap_or_else(|| std::io::Error::other("no common UDP/TCP port")))
}

pub fn spawn_udp_reader(
    socket: Arc<UdpSocket>,
    inputs: mpsc::Sender<SipInput>,
    token: CancellationToken,
    tracker: &TaskTracker,
) {
    tracker.spawn(async move {
        let mut buf = vec![0u8; 65_535];
        loop {
            let received = tokio::select! {
                _ = token.cancelled() => break,
                r = socket.recv_from(&mut buf) => r,
            };
            match received {
                Ok((len, from)) if len > 0 => {
                    let peer = Peer {
                        transport: TransportKind::Udp,
                        addr: from,
                        conn: None,
                    };
                    let input = SipInput::Packet {
                        peer,
                        bytes: Bytes::copy_from_slice(&buf[..len]),
                    };
                    // A full queue means the endpoint is overloaded: drop like a congested network
                    // would, the sender retransmits.
                    if inputs.try_send(input).is_err() {
                        metrics::counter!("openline_sip_udp_dropped_total").increment(1);
                    }
                }
                Ok(_) => {}
                // ICMP errors from earlier sends surface here on Linux; they are not fatal.
                Err(e) => tracing::debug!(error = %e, "udp receive error"),
            }
        }
    });
}

/// What every TCP connection is held to.
#[derive(Debug, Clone)]
pub struct TcpPolicy {
    pub limits: TcpLimits,
    /// From a message's first byte until it is whole (`sip.tcp_message_timeout`).
    pub message_timeout: Duration,
}

pub fn spawn_tcp_acceptor(
    listener: TcpListener,
    inputs: mpsc::Sender<SipInput>,
    policy: TcpPolicy,
    token: CancellationToken,
    tracker: &TaskTracker,
) {
    let next_conn = Arc::new(AtomicU64::new(1));
    let connections = tracker.clone();
    tracker.spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = token.cancelled() => break,
                a = listener.accept() => a,
            };
            match accepted {
                Ok((stream, from)) => {
                    // Over a cap the connection is closed at once: answering costs nothing,
                    // and a peer that opens connections without end cannot take every fd.
                    let slot = match policy.limits.admit(from.ip()) {
                        Ok(slot) => slot,
                        Err(refusal) => {
                            metrics::counter!("openline_sip_tcp_refused_total", "reason" => refusal.as_str())
                                .increment(1);
                            tracing::debug!(peer = %from, reason = refusal.as_str(), "tcp connection refused");
                            drop(stream);
                            continue;
                        }
                    };
                    let conn = next_conn.fetch_add(1, Ordering::Relaxed);
                    let inputs = inputs.clone();
                    let token = token.clone();
                    let message_timeout = policy.message_timeout;
                    connections.spawn(async move {
                        connection(stream, conn, from, inputs, message_timeout, slot, token).await;
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "tcp accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
}

/// What the framer found at the front of a TCP buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    Incomplete,
    /// A whole message.
    Message(Bytes),
    /// A CRLFCRLF keep-alive ping (RFC 5626 §4.4.1), answered with CRLF.
    Ping,
    /// The head or the declared body is over the limit: answer 413 from the head, then close.
    TooLarge(Bytes),
    /// The Content-Length cannot be read, so the stream cannot be framed: answer 400, then close.
    Unframeable(Bytes),
}

/// Cuts the next message off the front of `buf`.
pub fn next_frame(buf: &mut BytesMut) -> Frame {
    loop {
        if buf.starts_with(b"\r\n\r\n") {
            let _ = buf.split_to(4);
            return Frame::Ping;
        }
        if buf.starts_with(b"\r\n") && buf.len() > 2 {
            let _ = buf.split_to(2);
            continue;
        }
        break;
    }
    let Some(head_end) = find_head_end(buf) else {
        if buf.len() > MAX_HEAD {
            return Frame::TooLarge(buf.split().freeze());
        }
        return Frame::Incomplete;
    };
    let length = match head_content_length(&buf[..head_end]) {
        Ok(length) => length.unwrap_or(0),
        Err(_) => return Frame::Unframeable(buf.split_to(head_end).freeze()),
    };
    // `Content-Length: 18446744073709551615` must not wrap around.
    let whole = match head_end.checked_add(length) {
        Some(whole) if whole <= MAX_MESSAGE_SIZE => whole,
        _ => return Frame::TooLarge(buf.split_to(head_end).freeze()),
    };
    if buf.len() < whole {
        return Frame::Incomplete;
    }
    Frame::Message(buf.split_to(whole).freeze())
}

async fn connection(
    stream: TcpStream,
    conn: ConnId,
    from: SocketAddr,
    inputs: mpsc::Sender<SipInput>,
    message_timeout: Duration,
    _slot: ConnectionSlot,
    token: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(256);
    if inputs
        .send(SipInput::TcpOpened {
            conn,
            tx: out_tx.clone(),
        })
        .await
        .is_err()
    {
        return;
    }
    let writer_task = tokio::spawn(async move {
        while let Some(bytes) = out_rx.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = writer.shutdown().await;
    });
    let peer = Peer {
        transport: TransportKind::Tcp,
        addr: from,
        conn: Some(conn),
    };
    let mut buf = BytesMut::with_capacity(4096);
    // When the message now in `buf` must be whole: set by its first byte, not moved by later ones.
    let mut message_deadline: Option<Instant> = None;
    'read: loop {
        let deadline = message_deadline.unwrap_or_else(|| Instant::now() + IDLE_TIMEOUT);
        let read = tokio::select! {
            _ = token.cancelled() => break,
            r = tokio::time::timeout_at(deadline, reader.read_buf(&mut buf)) => r,
        };
        match read {
            Ok(Ok(0)) | Ok(Err(_)) => break, // EOF or error
            Err(_) => {
                if message_deadline.is_some() {
                    metrics::counter!("openline_sip_tcp_message_timeouts_total").increment(1);
                    tracing::debug!(peer = %from, "tcp message not whole in time; connection closed");
                }
                break;
            }
            Ok(Ok(_)) => {}
        }
        loop {
            match next_frame(&mut buf) {
                Frame::Incomplete => break,
                Frame::Ping => {
                    let _ = out_tx.try_send(Bytes::from_static(b"\r\n"));
                    message_deadline = None;
                }
                Frame::Message(bytes) => {
                    if inputs.send(SipInput::Packet { peer, bytes }).await.is_err() {
                        break 'read;
                    }
                    // The next message's time starts with its own first byte.
                    message_deadline = None;
                }
                Frame::TooLarge(head) => {
                    let _ = inputs
                        .send(SipInput::Refuse {
                            peer,
                            head,
                            status: 413,
                        })
                        .await;
                    break 'read;
                }
                Frame::Unframeable(head) => {
                    let _ = inputs
                        .send(SipInput::Refuse {
                            peer,
                            head,
                            status: 400,
                        })
                        .await;
                    break 'read;
                }
            }
        }
        // What is left is the start of the next message (or CRLF keep-alive bytes, which are
        // idle time): its clock starts now unless it already runs.
        message_deadline = if buf.iter().all(|b| matches!(b, b'\r' | b'\n')) {
            None
        } else {
            message_deadline.or_else(|| Some(Instant::now() + message_timeout))
        };
    }
    let _ = inputs.send(SipInput::TcpClosed { conn }).await;
    drop(out_tx);
    // Let queued answers (e.g. the 413) reach the peer before the socket closes.
    let _ = tokio::time::timeout(Duration::from_secs(2), writer_task).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 5\r\n\r\nhello";

    #[test]
    fn frames_partial_and_pipelined_messages() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&MSG[..10]);
        assert_eq!(next_frame(&mut buf), Frame::Incomplete);
        buf.extend_from_slice(&MSG[10..]);
        buf.extend_from_slice(MSG);
        buf.extend_from_slice(&MSG[..MSG.len() - 1]);
        assert_eq!(
            next_frame(&mut buf),
            Frame::Message(Bytes::from_static(MSG))
        );
        assert_eq!(
            next_frame(&mut buf),
            Frame::Message(Bytes::from_static(MSG))
        );
        assert_eq!(next_frame(&mut buf), Frame::Incomplete);
        buf.extend_from_slice(b"o");
        assert_eq!(
            next_frame(&mut buf),
            Frame::Message(Bytes::from_static(MSG))
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn a_content_length_near_usize_max_is_too_large_not_an_overflow() {
        let head = format!(
            "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: {}\r\n\r\n",
            usize::MAX
        );
        let mut buf = BytesMut::from(head.as_bytes());
        assert!(matches!(next_frame(&mut buf), Frame::TooLarge(_)));
    }

    #[test]
    fn keepalives_and_limits() {
        let mut buf = BytesMut::from(&b"\r\n\r\n"[..]);
        assert_eq!(next_frame(&mut buf), Frame::Ping);
        let mut buf = BytesMut::from(&b"OPTIONS sip:a@b SIP/2.0\r\nl: 999999\r\n\r\n"[..]);
        assert!(matches!(next_frame(&mut buf), Frame::TooLarge(_)));
        let mut buf = BytesMut::from(&b"OPTIONS sip:a@b SIP/2.0\r\nl: -1\r\n\r\n"[..]);
        assert!(matches!(next_frame(&mut buf), Frame::Unframeable(_)));
        let mut buf = BytesMut::from(vec![b'a'; MAX_HEAD + 1].as_slice());
        assert!(matches!(next_frame(&mut buf), Frame::TooLarge(_)));
    }
}
