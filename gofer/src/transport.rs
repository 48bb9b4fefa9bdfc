//! Packet I/O on the `SOCK_SEQPACKET` socket shared by client and
//! server: one message per packet, host fds attached with `SCM_RIGHTS`.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{
    recvmsg, sendmsg, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag,
    SockType,
};

/// Most fds the kernel passes with one message (`SCM_MAX_FD`). The
/// receive buffer has room for all of them, so `MSG_CTRUNC` (which would
/// keep nix from iterating, leaking the fds that were installed) cannot
/// happen for fds; the receiver closes whatever it did not expect.
const SCM_MAX_FD: usize = 253;

/// Creates a connected `SOCK_SEQPACKET` Unix socket pair (close-on-exec).
pub fn socketpair() -> Result<(OwnedFd, OwnedFd), Errno> {
    nix::sys::socket::socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
}

/// Sends one message, with `fd` attached if given. `EPIPE` is returned
/// (never raised as `SIGPIPE`) if the peer is gone.
pub fn send_msg(sock: BorrowedFd<'_>, msg: &[u8], fd: Option<BorrowedFd<'_>>) -> Result<(), Errno> {
    let iov = [IoSlice::new(msg)];
    let raw: [RawFd; 1] = [fd.map_or(-1, |f| f.as_raw_fd())];
    let rights = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage<'_>] = if fd.is_some() { &rights } else { &[] };
    loop {
        match sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(n) if n == msg.len() => return Ok(()),
            // A seqpacket send is all or nothing; anything else is broken.
            Ok(_) => return Err(Errno::EIO),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// What [`recv_msg`] got.
#[derive(Debug)]
pub struct Received {
    /// Bytes stored in the buffer.
    pub len: usize,
    /// The packet was longer than the buffer (`MSG_TRUNC`).
    pub truncated: bool,
    /// Fds that came with the packet, owned (closed on drop).
    pub fds: Vec<OwnedFd>,
    /// Control data did not fit (`MSG_CTRUNC`); should not happen.
    pub fds_truncated: bool,
}

/// Receives one packet into `buf`. A `len` of 0 is either an empty
/// packet or end of stream; [`peer_closed`] tells which.
pub fn recv_msg(sock: BorrowedFd<'_>, buf: &mut [u8]) -> Result<Received, Errno> {
    let mut cmsg = nix::cmsg_space!([RawFd; SCM_MAX_FD]);
    loop {
        let mut iov = [IoSliceMut::new(buf)];
        let msg = match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(msg) => msg,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        };
        let mut fds = Vec::new();
        // Take ownership of every received fd first, so that they are
        // closed on any error below.
        if let Ok(iter) = msg.cmsgs() {
            for c in iter {
                if let ControlMessageOwned::ScmRights(raw) = c {
                    for r in raw {
                        // SAFETY: the kernel has just installed `r` in our
                        // fd table for this message; nothing else refers to
                        // it, so we are its sole owner.
                        fds.push(unsafe { OwnedFd::from_raw_fd(r) });
                    }
                }
            }
        }
        return Ok(Received {
            len: msg.bytes,
            truncated: msg.flags.contains(MsgFlags::MSG_TRUNC),
            fds,
            fds_truncated: msg.flags.contains(MsgFlags::MSG_CTRUNC),
        });
    }
}

/// True if the peer has closed or shut down its sending side: used to
/// tell end of stream from an empty packet after a 0-byte receive.
pub fn peer_closed(sock: BorrowedFd<'_>) -> bool {
    // nix's PollFlags lacks POLLRDHUP (set when the peer only shut down
    // its writing side), so call poll(2) directly.
    let mut pfd = libc::pollfd {
        fd: sock.as_raw_fd(),
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: `pfd` is a valid pollfd array of length 1 that outlives the
    // call, and its fd is borrowed open for the call's duration.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    if n < 0 {
        // Cannot tell: treat as closed so the caller does not spin.
        return true;
    }
    pfd.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
}
