//! Transport-level types shared by the sans-IO core and the socket shell (RFC 3261 §18).

use std::net::SocketAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    Udp,
    Tcp,
}

impl TransportKind {
    /// Reliable transports do not retransmit at the transaction layer (§17.1.1.2).
    pub fn is_reliable(self) -> bool {
        matches!(self, TransportKind::Tcp)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Udp => "udp",
            TransportKind::Tcp => "tcp",
        }
    }

    pub fn via_name(self) -> &'static str {
        match self {
            TransportKind::Udp => "UDP",
            TransportKind::Tcp => "TCP",
        }
    }
}

/// Identifies one accepted or opened TCP connection in the shell.
pub type ConnId = u64;

/// Where a message came from and where its answers go: always an address from the socket,
/// never a host name read from a message (the server resolves no names it reads).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    pub transport: TransportKind,
    pub addr: SocketAddr,
    /// The TCP connection the message arrived on; responses go back over it (§18.2.2).
    pub conn: Option<ConnId>,
}
