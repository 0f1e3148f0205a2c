//! The call task's socket and task helpers: fire-and-forget sends that report the socket's
//! error (ICMP reports surface there), and `select!` branches that stay pending when there is
//! nothing to wait for.

use std::net::SocketAddr;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// A datagram (or a socket error) on the operator leg's socket, or nothing ever while no
/// operator is bridged.
pub(super) async fn recv_other(
    socket: Option<&UdpSocket>,
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr)> {
    match socket {
        Some(socket) => socket.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

/// Waits for a running task, or forever when there is none (a disabled `select!` branch).
pub(super) async fn until_done<T>(
    task: Option<&mut JoinHandle<T>>,
) -> Option<Result<T, tokio::task::JoinError>> {
    match task {
        Some(task) => Some(task.await),
        None => std::future::pending().await,
    }
}

/// Sends one datagram (fire and forget); the error the socket reported, if any: often an ICMP
/// report for an earlier packet, which the kernel hands to whichever call comes next.
pub(super) async fn send(
    socket: &UdpSocket,
    to: SocketAddr,
    bytes: &[u8],
) -> Option<std::io::Error> {
    match socket.try_send_to(bytes, to) {
        Ok(_) => None,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            socket.send_to(bytes, to).await.err()
        }
        Err(e) => Some(e),
    }
}
