//! ICMP errors for our RTP: Linux reports "port unreachable" and "host unreachable" for an
//! unconnected UDP socket only with `IP_RECVERR` on; then the next receive or send on it fails
//! with the error, and the error's copy waits in the socket's error queue, which is drained here
//! so it cannot fill. The media core decides what a run of them means
//! (`MediaSession::on_unreachable`). `nix` gives the safe `setsockopt`/`recvmsg` wrappers
//! (this crate forbids `unsafe`); it was already in the tree.

use std::io;
use std::os::fd::{AsFd, AsRawFd};

use nix::sys::socket::{MsgFlags, SockaddrStorage, recvmsg, setsockopt, sockopt};

/// Asks the kernel to report ICMP errors for packets sent from `socket`.
pub fn report_errors(socket: &std::net::UdpSocket) {
    let ipv6 = socket.local_addr().is_ok_and(|a| a.is_ipv6());
    let done = if ipv6 {
        setsockopt(socket, sockopt::Ipv6RecvErr, &true)
    } else {
        setsockopt(socket, sockopt::Ipv4RecvErr, &true)
    };
    if let Err(e) = done {
        tracing::debug!(error = %e, "IP_RECVERR not available; ICMP errors will not stop media");
    }
}

/// Whether a socket error is an ICMP report that the peer cannot be reached.
pub fn is_unreachable(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
    ) || error.raw_os_error() == Some(nix::libc::EHOSTDOWN)
}

/// Empties the socket's error queue (each entry is one ICMP report and a copy of our packet).
pub fn drain_error_queue(socket: &impl AsFd) {
    let fd = socket.as_fd().as_raw_fd();
    let mut buf = [0u8; 512];
    for _ in 0..64 {
        let mut iov = [io::IoSliceMut::new(&mut buf)];
        let read = recvmsg::<SockaddrStorage>(
            fd,
            &mut iov,
            None,
            MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT,
        );
        if read.is_err() {
            break;
        }
    }
}
