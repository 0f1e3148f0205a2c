//! Kernel receive timestamps for the benchmark clients' UDP sockets (Linux): setsockopt(SOL_SOCKET,
//! SO_TIMESTAMPNS) and the SCM_TIMESTAMPNS control message (struct timespec, CLOCK_REALTIME) that
//! recvmsg then returns with each datagram. On loopback the stamp is taken inside the sender's
//! `sendto`, so it tells when a packet was sent, free of the receiving client's own scheduling.
//! Shared by bench/media_load.rs and bench/queue_operators.rs through `#[path]` (bench/ files are
//! examples, not a crate).

use std::mem::MaybeUninit;
use std::os::fd::AsRawFd;
use tokio::net::UdpSocket;

const SOL_SOCKET: i32 = 1;
const SO_TIMESTAMPNS: i32 = 35;
unsafe extern "C" {
    fn setsockopt(fd: i32, level: i32, name: i32, value: *const std::ffi::c_void, len: u32) -> i32;
}

pub fn enable_kernel_timestamps(socket: &UdpSocket) -> bool {
    let on: i32 = 1;
    // SAFETY: a valid fd and a pointer to an i32 of the given length.
    unsafe {
        setsockopt(
            socket.as_raw_fd(),
            SOL_SOCKET,
            SO_TIMESTAMPNS,
            (&raw const on).cast(),
            4,
        ) == 0
    }
}

/// One datagram and its kernel receive time in ns since the Unix epoch (0 when absent).
pub fn recv_with_timestamp(socket: &UdpSocket, buf: &mut [u8]) -> std::io::Result<(usize, i128)> {
    let sock = socket2::SockRef::from(socket);
    let mut control = [MaybeUninit::<u8>::uninit(); 64];
    // SAFETY: MaybeUninitSlice only needs the buffer to stay borrowed for the call.
    let mut bufs = [socket2::MaybeUninitSlice::new(unsafe {
        std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<MaybeUninit<u8>>(), buf.len())
    })];
    let mut msg = socket2::MsgHdrMut::new()
        .with_buffers(&mut bufs)
        .with_control(&mut control);
    let n = sock.recvmsg(&mut msg, 0)?;
    let control_len = msg.control_len();
    // struct cmsghdr { size_t len; int level; int type; } then the data, 8-byte aligned (x86_64).
    let mut ts_ns = 0i128;
    let mut off = 0usize;
    while off + 16 <= control_len {
        // SAFETY: the kernel wrote control_len bytes.
        let bytes: &[u8] =
            unsafe { std::slice::from_raw_parts(control.as_ptr().cast(), control_len) };
        let len = usize::from_ne_bytes(bytes[off..off + 8].try_into().expect("8"));
        let level = i32::from_ne_bytes(bytes[off + 8..off + 12].try_into().expect("4"));
        let kind = i32::from_ne_bytes(bytes[off + 12..off + 16].try_into().expect("4"));
        if level == SOL_SOCKET && kind == SO_TIMESTAMPNS && off + 32 <= control_len {
            let sec = i64::from_ne_bytes(bytes[off + 16..off + 24].try_into().expect("8"));
            let nsec = i64::from_ne_bytes(bytes[off + 24..off + 32].try_into().expect("8"));
            ts_ns = i128::from(sec) * 1_000_000_000 + i128::from(nsec);
        }
        if len < 16 {
            break;
        }
        off += (len + 7) & !7;
    }
    Ok((n, ts_ns))
}
