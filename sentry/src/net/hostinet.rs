//! AF_INET/AF_INET6 sockets served by host sockets (`--network=host`):
//! TCP, UDP and ICMP "ping" sockets. The sentry makes each host socket
//! itself (always non-blocking and close-on-exec on the host) and hands the
//! host only bytes it copied: addresses, data, option values and interface
//! requests, never a guest pointer. The host is Linux, so what it answers
//! (errnos included) is what the guest gets.
//!
//! The guest's blocking semantics are ours: a blocking call tries the host
//! socket without waiting and, on EAGAIN, waits for host readiness in
//! `Task::block_until`, so signals interrupt it and SO_RCVTIMEO/SO_SNDTIMEO
//! (kept here, never set on the host socket) bound it. Options reach the
//! host only from an allow-list; anything with pointers inside, or that
//! needs privileges the guest does not have on the host, is refused.
//!
//! Not done yet: ancillary data. sendmsg with SCM_RIGHTS is EINVAL (as for
//! any inet socket) and recvmsg returns no control messages, even when an
//! option such as IP_PKTINFO or SO_TIMESTAMP asks for them. MSG_TRUNC on a
//! stream (discard) leaves zeros rather than the caller's bytes in its
//! buffer.

use super::inet;
use super::socket::{deadline, read_int_opt, wait_errno, CommonOpts, RecvMsg, SendControl, Socket};
use crate::errno::{Errno, KResult};
use crate::fs::host::poll_now;
use crate::fs::{lock, next_ino};
use crate::kernel::task::Task;
use crate::vfs::file::{POLLERR, POLLHUP};
use crate::vfs::{File, FileOps, Stat, Timespec};
use std::any::Any;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};

/// sizeof(struct sockaddr_storage).
const SOCKADDR_STORAGE: usize = 128;
/// The longest option value handed to or taken from the host (TCP_INFO is
/// about 250 bytes).
const MAX_OPT: usize = 512;
/// sizeof(struct ifreq) and sizeof(struct ifconf) on x86-64.
const IFREQ_SIZE: usize = 40;
const IFCONF_SIZE: usize = 16;
/// The most SIOCGIFCONF fills in one call (interfaces * IFREQ_SIZE).
const MAX_IFCONF: usize = 1024 * IFREQ_SIZE;

/// Linux's socket-level ioctls (x86-64 numbers) that reach the host.
mod ioctls {
    pub const SIOCINQ: u32 = 0x541b; // FIONREAD
    pub const SIOCOUTQ: u32 = 0x5411; // TIOCOUTQ
    pub const SIOCOUTQNSD: u32 = 0x894b;
    pub const SIOCATMARK: u32 = 0x8905;
    pub const SIOCGIFNAME: u32 = 0x8910;
    pub const SIOCGIFCONF: u32 = 0x8912;
    pub const SIOCGIFFLAGS: u32 = 0x8913;
    pub const SIOCGIFADDR: u32 = 0x8915;
    pub const SIOCGIFDSTADDR: u32 = 0x8917;
    pub const SIOCGIFBRDADDR: u32 = 0x8919;
    pub const SIOCGIFNETMASK: u32 = 0x891b;
    pub const SIOCGIFMETRIC: u32 = 0x891d;
    pub const SIOCGIFMTU: u32 = 0x8921;
    pub const SIOCGIFHWADDR: u32 = 0x8927;
    pub const SIOCGIFINDEX: u32 = 0x8933;
    pub const SIOCGIFTXQLEN: u32 = 0x8942;
}

/// Options passed through to the host, by level (Linux numbers). Values
/// are plain integers or flat structs (linger, ip_mreqn, ipv6_mreq,
/// tcp_info...), never pointers.
mod opts {
    pub const SOL_SOCKET: &[i32] = &[
        2,  // SO_REUSEADDR
        4,  // SO_ERROR (get)
        5,  // SO_DONTROUTE
        6,  // SO_BROADCAST
        7,  // SO_SNDBUF
        8,  // SO_RCVBUF
        9,  // SO_KEEPALIVE
        10, // SO_OOBINLINE
        12, // SO_PRIORITY
        13, // SO_LINGER
        15, // SO_REUSEPORT
        17, // SO_PEERCRED (get: no process behind an inet peer)
        18, // SO_RCVLOWAT
        19, // SO_SNDLOWAT
        29, // SO_TIMESTAMP
        30, // SO_ACCEPTCONN (get)
        35, // SO_TIMESTAMPNS
        49, // SO_INCOMING_CPU
    ];
    pub const IPPROTO_TCP: &[i32] = &[
        1,  // TCP_NODELAY
        2,  // TCP_MAXSEG
        3,  // TCP_CORK
        4,  // TCP_KEEPIDLE
        5,  // TCP_KEEPINTVL
        6,  // TCP_KEEPCNT
        7,  // TCP_SYNCNT
        8,  // TCP_LINGER2
        9,  // TCP_DEFER_ACCEPT
        10, // TCP_WINDOW_CLAMP
        11, // TCP_INFO (get)
        12, // TCP_QUICKACK
        13, // TCP_CONGESTION (set: see CONGESTION_ALLOWED)
        18, // TCP_USER_TIMEOUT
        23, // TCP_FASTOPEN
        25, // TCP_NOTSENT_LOWAT
        30, // TCP_FASTOPEN_CONNECT
    ];
    pub const IPPROTO_IP: &[i32] = &[
        1,  // IP_TOS
        2,  // IP_TTL
        8,  // IP_PKTINFO
        10, // IP_MTU_DISCOVER
        11, // IP_RECVERR
        12, // IP_RECVTTL
        13, // IP_RECVTOS
        14, // IP_MTU (get)
        15, // IP_FREEBIND
        20, // IP_RECVORIGDSTADDR
        24, // IP_BIND_ADDRESS_NO_PORT
        32, // IP_MULTICAST_IF
        33, // IP_MULTICAST_TTL
        34, // IP_MULTICAST_LOOP
        35, // IP_ADD_MEMBERSHIP
        36, // IP_DROP_MEMBERSHIP
        37, // IP_UNBLOCK_SOURCE
        38, // IP_BLOCK_SOURCE
        39, // IP_ADD_SOURCE_MEMBERSHIP
        40, // IP_DROP_SOURCE_MEMBERSHIP
        49, // IP_MULTICAST_ALL
    ];
    pub const IPPROTO_IPV6: &[i32] = &[
        16, // IPV6_UNICAST_HOPS
        17, // IPV6_MULTICAST_IF
        18, // IPV6_MULTICAST_HOPS
        19, // IPV6_MULTICAST_LOOP
        20, // IPV6_ADD_MEMBERSHIP
        21, // IPV6_DROP_MEMBERSHIP
        23, // IPV6_MTU_DISCOVER
        24, // IPV6_MTU (get)
        25, // IPV6_RECVERR
        26, // IPV6_V6ONLY
        49, // IPV6_RECVPKTINFO
        51, // IPV6_RECVHOPLIMIT
        66, // IPV6_RECVTCLASS
        67, // IPV6_TCLASS
    ];
    pub const IPPROTO_UDP: &[i32] = &[
        1, // UDP_CORK
    ];
    pub const TCP_CONGESTION: i32 = 13;
    pub const SO_PRIORITY: i32 = 12;
    pub const SO_SNDBUFFORCE: i32 = 32;
    pub const SO_RCVBUFFORCE: i32 = 33;
    pub const SO_MARK: i32 = 36;
    pub const IP_TRANSPARENT: i32 = 19;
    pub const IPV6_TRANSPARENT: i32 = 75;
    /// SO_PRIORITY values above this need CAP_NET_ADMIN.
    pub const MAX_UNPRIVILEGED_PRIORITY: i32 = 6;
    /// SO_RCVTIMEO_NEW / SO_SNDTIMEO_NEW: the same struct timeval on x86-64.
    pub const SO_RCVTIMEO_NEW: i32 = 66;
    pub const SO_SNDTIMEO_NEW: i32 = 67;
}

/// Congestion control algorithms an unprivileged Linux process may pick by
/// default (net.ipv4.tcp_allowed_congestion_control). The sentry may be
/// privileged on the host, where another name would load a kernel module.
const CONGESTION_ALLOWED: &[&[u8]] = &[b"reno", b"cubic"];

/// MSG_ flags a guest send may pass to the host.
const SEND_FLAGS: i32 = libc::MSG_OOB
    | libc::MSG_DONTROUTE
    | libc::MSG_EOR
    | libc::MSG_MORE
    | libc::MSG_CONFIRM
    | libc::MSG_FASTOPEN;
/// MSG_ flags a guest receive may pass to the host.
const RECV_FLAGS: i32 = libc::MSG_OOB | libc::MSG_PEEK | libc::MSG_TRUNC | libc::MSG_ERRQUEUE;

/// Whether the host answers `level`/`name` for the guest.
fn allowed(level: i32, name: i32) -> bool {
    let list = match level {
        libc::SOL_SOCKET => opts::SOL_SOCKET,
        libc::IPPROTO_TCP => opts::IPPROTO_TCP,
        libc::IPPROTO_IP => opts::IPPROTO_IP,
        libc::IPPROTO_IPV6 => opts::IPPROTO_IPV6,
        libc::IPPROTO_UDP => opts::IPPROTO_UDP,
        _ => return false,
    };
    list.contains(&name)
}

fn is_timeo(level: i32, name: i32) -> Option<i32> {
    if level != libc::SOL_SOCKET {
        return None;
    }
    match name {
        libc::SO_RCVTIMEO | opts::SO_RCVTIMEO_NEW => Some(libc::SO_RCVTIMEO),
        libc::SO_SNDTIMEO | opts::SO_SNDTIMEO_NEW => Some(libc::SO_SNDTIMEO),
        _ => None,
    }
}

/// Checks socket(2)'s type and protocol like Linux's inet_create for what
/// we serve: TCP, UDP (and UDP-Lite), ICMP echo sockets. Raw sockets need
/// CAP_NET_RAW, which the guest never has on the host: EPERM.
fn check_type(family: i32, ty: i32, proto: i32) -> KResult<()> {
    if !(0..11).contains(&ty) || !(0..256).contains(&proto) {
        return Err(Errno::EINVAL);
    }
    let ok = match ty {
        libc::SOCK_STREAM => matches!(proto, 0 | libc::IPPROTO_TCP),
        libc::SOCK_DGRAM => {
            matches!(proto, 0 | libc::IPPROTO_UDP | libc::IPPROTO_UDPLITE)
                || (family == libc::AF_INET && proto == libc::IPPROTO_ICMP)
                || (family == libc::AF_INET6 && proto == libc::IPPROTO_ICMPV6)
        }
        libc::SOCK_RAW => return Err(Errno::EPERM),
        _ => return Err(Errno::ESOCKTNOSUPPORT),
    };
    if ok {
        Ok(())
    } else {
        Err(Errno::EPROTONOSUPPORT)
    }
}

/// socket(family, ty, proto) for an inet family in host mode.
pub fn new_socket(t: &Task, family: i32, ty: i32, proto: i32) -> KResult<Arc<dyn FileOps>> {
    check_type(family, ty, proto)?;
    // SAFETY: socket(2) with plain integers.
    let fd = unsafe { libc::socket(family, ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: fd is a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let c = t.creds();
    Ok(Arc::new(HostinetSocket::new(
        fd, family, ty, proto, c.fsuid, c.fsgid,
    )))
}

pub struct HostinetSocket {
    fd: OwnedFd,
    family: i32,
    ty: i32,
    proto: i32,
    ino: u64,
    uid: u32,
    gid: u32,
    ctime: Timespec,
    /// Only SO_RCVTIMEO/SO_SNDTIMEO are used: every other option lives in
    /// the host socket.
    opts: Mutex<CommonOpts>,
}

/// A blocking call's SO_RCVTIMEO/SO_SNDTIMEO and the deadline it sets,
/// fixed when the call starts: waits for more room or data within one
/// call share it, as on Linux.
#[derive(Clone, Copy)]
struct Timeout {
    timeo: Option<std::time::Duration>,
    until: Option<std::time::Instant>,
}

impl Timeout {
    fn new(timeo: Option<std::time::Duration>) -> Timeout {
        Timeout {
            timeo,
            until: deadline(timeo),
        }
    }
}

/// Retries a host call interrupted by a host signal (the sentry's own
/// calls on a non-blocking socket do not wait, so this is rare).
fn retry(mut f: impl FnMut() -> isize) -> KResult<usize> {
    loop {
        let r = f();
        if r >= 0 {
            return Ok(r as usize);
        }
        let e = Errno::last();
        if e != Errno::EINTR {
            return Err(e);
        }
    }
}

/// A struct sockaddr_storage the host fills in, and the length it reports.
struct HostAddr {
    buf: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl HostAddr {
    fn new() -> HostAddr {
        HostAddr {
            // SAFETY: an all-zero sockaddr_storage is a valid value.
            buf: unsafe { std::mem::zeroed() },
            len: SOCKADDR_STORAGE as libc::socklen_t,
        }
    }

    fn ptr(&mut self) -> *mut libc::sockaddr {
        (&mut self.buf as *mut libc::sockaddr_storage).cast()
    }

    /// The address bytes the host wrote (at most the storage's size).
    fn bytes(&self) -> Vec<u8> {
        let n = (self.len as usize).min(SOCKADDR_STORAGE);
        // SAFETY: buf is a live sockaddr_storage of SOCKADDR_STORAGE bytes
        // and n does not exceed it.
        let all = unsafe {
            std::slice::from_raw_parts((&self.buf as *const libc::sockaddr_storage).cast::<u8>(), n)
        };
        all.to_vec()
    }
}

impl HostinetSocket {
    fn new(fd: OwnedFd, family: i32, ty: i32, proto: i32, uid: u32, gid: u32) -> HostinetSocket {
        HostinetSocket {
            fd,
            family,
            ty,
            proto,
            ino: next_ino(),
            uid,
            gid,
            ctime: Timespec::now(),
            opts: Mutex::new(CommonOpts::default()),
        }
    }

    fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn rcvtimeo(&self) -> Option<std::time::Duration> {
        lock(&self.opts).rcvtimeo
    }

    fn sndtimeo(&self) -> Option<std::time::Duration> {
        lock(&self.opts).sndtimeo
    }

    /// The sockaddr handed to the host for a guest address: checked and
    /// rebuilt with the inet helpers (EINVAL for a short address,
    /// EAFNOSUPPORT for a wrong family, as Linux). AF_UNSPEC (connect's
    /// "dissolve", bind's INADDR_ANY) goes as given: the host decides.
    fn host_sockaddr(&self, sa: &[u8]) -> KResult<Vec<u8>> {
        if inet::is_unspec(sa) {
            return Ok(sa.to_vec());
        }
        let a = inet::parse_sockaddr(self.family, sa)?;
        Ok(inet::format_sockaddr(self.family, a))
    }

    /// Runs `op`, a non-blocking host call, until it stops answering
    /// EAGAIN: at once when `nonblock`, else waiting for `events` on the
    /// host socket until `timeo` (EAGAIN) or a signal (ERESTARTSYS, or
    /// EINTR under a timeout).
    fn wait<T>(
        &self,
        t: &Task,
        events: i16,
        nonblock: bool,
        timeo: Timeout,
        mut op: impl FnMut() -> KResult<T>,
    ) -> KResult<T> {
        if nonblock {
            return op();
        }
        // The host call's own result is the inner one, so that a host
        // ETIMEDOUT (TCP_USER_TIMEOUT) is not mistaken for our deadline.
        t.block_until(&[], &[(self.raw(), events)], timeo.until, || match op() {
            Err(e) if e == Errno::EAGAIN => None,
            r => Some(Ok(r)),
        })
        .map_err(|e| wait_errno(e, timeo.timeo))?
    }

    fn host_bind(&self, sa: &[u8]) -> KResult<()> {
        // SAFETY: sa is a live buffer of sa.len() (<= 128) bytes.
        retry(|| unsafe {
            libc::bind(self.raw(), sa.as_ptr().cast(), sa.len() as libc::socklen_t) as isize
        })
        .map(|_| ())
    }

    fn host_connect(&self, sa: &[u8]) -> KResult<()> {
        // SAFETY: sa is a live buffer of sa.len() (<= 128) bytes.
        let r =
            unsafe { libc::connect(self.raw(), sa.as_ptr().cast(), sa.len() as libc::socklen_t) };
        if r < 0 {
            // A non-blocking connect is not restarted after EINTR: the
            // attempt goes on, as EINPROGRESS says.
            return Err(match Errno::last() {
                Errno::EINTR => Errno::EINPROGRESS,
                e => e,
            });
        }
        Ok(())
    }

    fn host_accept(&self) -> KResult<(OwnedFd, Vec<u8>)> {
        let mut a = HostAddr::new();
        let fd = retry(|| {
            // SAFETY: a.buf is a live sockaddr_storage and a.len its size.
            unsafe {
                libc::accept4(
                    self.raw(),
                    a.ptr(),
                    &mut a.len,
                    libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                ) as isize
            }
        })?;
        // SAFETY: accept4 returned a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        Ok((fd, a.bytes()))
    }

    /// getsockname/getpeername on the host socket.
    fn host_name(&self, peer: bool) -> KResult<Vec<u8>> {
        let mut a = HostAddr::new();
        retry(|| {
            // SAFETY: a.buf is a live sockaddr_storage and a.len its size.
            unsafe {
                if peer {
                    libc::getpeername(self.raw(), a.ptr(), &mut a.len) as isize
                } else {
                    libc::getsockname(self.raw(), a.ptr(), &mut a.len) as isize
                }
            }
        })?;
        Ok(a.bytes())
    }

    /// One non-blocking sendmsg of `data` to the host.
    fn host_send(&self, data: &[u8], to: Option<&[u8]>, flags: i32) -> KResult<usize> {
        let mut iov = libc::iovec {
            iov_base: data.as_ptr() as *mut libc::c_void,
            iov_len: data.len(),
        };
        // SAFETY: an all-zero msghdr is a valid value (no name, no control).
        let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
        m.msg_iov = &mut iov;
        m.msg_iovlen = 1;
        if let Some(sa) = to {
            m.msg_name = sa.as_ptr() as *mut libc::c_void;
            m.msg_namelen = sa.len() as libc::socklen_t;
        }
        let flags = flags | libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT;
        // SAFETY: m points at one iovec over `data` and, when set, at the
        // `to` address; the host only reads them, and all outlive the call.
        retry(|| unsafe { libc::sendmsg(self.raw(), &m, flags) as isize })
    }

    /// One non-blocking recvmsg into `buf`: (bytes the host returned,
    /// sender address if it gave one).
    fn host_recv(&self, buf: &mut [u8], flags: i32) -> KResult<(usize, Option<Vec<u8>>)> {
        let mut a = HostAddr::new();
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: an all-zero msghdr is a valid value (no control).
        let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
        m.msg_iov = &mut iov;
        m.msg_iovlen = 1;
        m.msg_name = a.ptr().cast();
        m.msg_namelen = a.len;
        let flags = flags | libc::MSG_DONTWAIT;
        // SAFETY: m points at one iovec over `buf` (writable) and at a
        // sockaddr_storage of msg_namelen bytes; both outlive the call.
        let n = retry(|| unsafe { libc::recvmsg(self.raw(), &mut m, flags) as isize })?;
        a.len = m.msg_namelen;
        let addr = (a.len > 0).then(|| a.bytes());
        Ok((n, addr))
    }

    fn host_getsockopt(&self, level: i32, name: i32, len: usize) -> KResult<Vec<u8>> {
        let mut v = vec![0u8; len.min(MAX_OPT)];
        let mut l = v.len() as libc::socklen_t;
        retry(|| {
            // SAFETY: v is live and writable for l bytes.
            unsafe {
                libc::getsockopt(self.raw(), level, name, v.as_mut_ptr().cast(), &mut l) as isize
            }
        })?;
        v.truncate((l as usize).min(v.len()));
        Ok(v)
    }

    fn host_setsockopt(&self, level: i32, name: i32, val: &[u8]) -> KResult<()> {
        retry(|| {
            // SAFETY: val is live and readable for val.len() bytes.
            unsafe {
                libc::setsockopt(
                    self.raw(),
                    level,
                    name,
                    val.as_ptr().cast(),
                    val.len() as libc::socklen_t,
                ) as isize
            }
        })
        .map(|_| ())
    }

    /// SO_ERROR, which reading clears.
    fn take_error(&self) -> KResult<i32> {
        let v = self.host_getsockopt(libc::SOL_SOCKET, libc::SO_ERROR, 4)?;
        let b: [u8; 4] = v.as_slice().try_into().map_err(|_| Errno::EIO)?;
        Ok(i32::from_ne_bytes(b))
    }

    /// A blocking connect that the host started: wait until it is done and
    /// report SO_ERROR's verdict. Like Linux, SO_SNDTIMEO bounds the wait
    /// and running out leaves the attempt going, with the error the host
    /// gave at first: EINPROGRESS, or EALREADY for a repeated connect.
    fn finish_connect(&self, t: &Task, pending: Errno) -> KResult<()> {
        let timeo = self.sndtimeo();
        let r = t.block_until(&[], &[(self.raw(), libc::POLLOUT)], deadline(timeo), || {
            if poll_now(self.raw(), libc::POLLOUT) == 0 {
                return None;
            }
            Some(Ok(match self.take_error() {
                Ok(0) => Ok(()),
                Ok(e) => Err(Errno(e)),
                Err(e) => Err(e),
            }))
        });
        match r {
            Ok(r) => r,
            Err(e) if e == Errno::ETIMEDOUT => Err(pending),
            Err(e) => Err(wait_errno(e, timeo)),
        }
    }

    fn do_send(
        &self,
        t: &Task,
        data: &[u8],
        to: Option<&[u8]>,
        flags: i32,
        nonblock: bool,
    ) -> KResult<usize> {
        let to = match to {
            // A stream ignores the address unless it connects with the data
            // (MSG_FASTOPEN), as Linux's TCP does.
            Some(sa) if self.ty != libc::SOCK_STREAM || flags & libc::MSG_FASTOPEN != 0 => {
                Some(self.host_sockaddr(sa)?)
            }
            _ => None,
        };
        let hflags = flags & SEND_FLAGS;
        let timeo = Timeout::new(self.sndtimeo());
        if self.ty != libc::SOCK_STREAM {
            return self.wait(t, libc::POLLOUT, nonblock, timeo, || {
                self.host_send(data, to.as_deref(), hflags)
            });
        }
        // A blocking stream send queues everything unless an error, a
        // signal or the timeout stops it; then the bytes sent so far count.
        let mut sent = 0;
        loop {
            let r = self.wait(t, libc::POLLOUT, nonblock, timeo, || {
                self.host_send(&data[sent..], to.as_deref(), hflags)
            });
            match r {
                Ok(n) => {
                    sent += n;
                    if sent >= data.len() || nonblock || n == 0 {
                        return Ok(sent);
                    }
                }
                Err(_) if sent > 0 => return Ok(sent),
                Err(e) => return Err(e),
            }
        }
    }

    fn do_recv(&self, t: &Task, buf: &mut [u8], flags: i32, nonblock: bool) -> KResult<RecvMsg> {
        let stream = self.ty == libc::SOCK_STREAM;
        let mut hflags = flags & RECV_FLAGS;
        if !stream {
            // The host reports the whole datagram's length.
            hflags |= libc::MSG_TRUNC;
        }
        // Urgent data and the error queue never wait on Linux.
        let nonblock = nonblock || flags & (libc::MSG_OOB | libc::MSG_ERRQUEUE) != 0;
        // Like Linux's tcp_recvmsg, a stream receive gathers until it has
        // `target` bytes: all of them under MSG_WAITALL, else SO_RCVLOWAT
        // (the host returns what it has at once since we never block it).
        let gather = stream && flags & (libc::MSG_PEEK | libc::MSG_OOB | libc::MSG_TRUNC) == 0;
        let target = if !gather {
            1
        } else if flags & libc::MSG_WAITALL != 0 {
            buf.len()
        } else {
            (lock(&self.opts).rcvlowat.max(1) as usize).min(buf.len())
        };
        let timeo = Timeout::new(self.rcvtimeo());
        let mut got = 0;
        loop {
            let r = self.wait(t, libc::POLLIN, nonblock, timeo, || {
                self.host_recv(&mut buf[got..], hflags)
            });
            match r {
                Ok((n, addr)) if !stream => {
                    return Ok(RecvMsg {
                        copied: n.min(buf.len()),
                        full: n,
                        addr,
                        ..Default::default()
                    })
                }
                Ok((n, _)) => {
                    got += n;
                    if n == 0 || got >= target || got >= buf.len() {
                        return Ok(RecvMsg {
                            copied: got,
                            full: got,
                            ..Default::default()
                        });
                    }
                }
                Err(_) if got > 0 => {
                    return Ok(RecvMsg {
                        copied: got,
                        full: got,
                        ..Default::default()
                    })
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// An ioctl whose argument is an int the host writes.
    fn ioctl_int(&self, t: &Task, cmd: u32, arg: u64) -> KResult<u64> {
        let mut n: libc::c_int = 0;
        // SAFETY: the listed requests write one int into n.
        if unsafe { libc::ioctl(self.raw(), cmd as libc::c_ulong, &mut n) } < 0 {
            return Err(Errno::last());
        }
        t.mm().write_u32(arg, n as u32)?;
        Ok(0)
    }

    /// An interface query on a struct ifreq copied in and out.
    fn ioctl_ifreq(&self, t: &Task, cmd: u32, arg: u64) -> KResult<u64> {
        let mut req = [0u8; IFREQ_SIZE];
        t.mm().copy_in(arg, &mut req)?;
        // SAFETY: the listed SIOCGIF* requests read and write one struct
        // ifreq (IFREQ_SIZE bytes, no pointers) in our local buffer.
        if unsafe { libc::ioctl(self.raw(), cmd as libc::c_ulong, req.as_mut_ptr()) } < 0 {
            return Err(Errno::last());
        }
        t.mm().copy_out(arg, &req)?;
        Ok(0)
    }

    /// SIOCGIFCONF: the guest's struct ifconf names a buffer in guest
    /// memory; the host fills one of ours (bounded), which is copied out.
    fn ioctl_ifconf(&self, t: &Task, arg: u64) -> KResult<u64> {
        let mut conf = [0u8; IFCONF_SIZE];
        t.mm().copy_in(arg, &mut conf)?;
        let len = i32::from_le_bytes([conf[0], conf[1], conf[2], conf[3]]);
        let ubuf = u64::from_le_bytes(conf[8..16].try_into().map_err(|_| Errno::EINVAL)?);
        if len < 0 {
            return Err(Errno::EINVAL);
        }
        let mut buf = vec![
            0u8;
            if ubuf == 0 {
                0
            } else {
                (len as usize).min(MAX_IFCONF)
            }
        ];
        #[repr(C)]
        struct IfConf {
            len: libc::c_int,
            buf: *mut u8,
        }
        let mut hc = IfConf {
            len: buf.len() as libc::c_int,
            buf: if ubuf == 0 {
                std::ptr::null_mut()
            } else {
                buf.as_mut_ptr()
            },
        };
        // SAFETY: hc is a struct ifconf whose buffer is ours, live and
        // writable for hc.len bytes (null asks only for the length).
        if unsafe { libc::ioctl(self.raw(), ioctls::SIOCGIFCONF as libc::c_ulong, &mut hc) } < 0 {
            return Err(Errno::last());
        }
        let n = (hc.len.max(0) as usize).min(if ubuf == 0 { usize::MAX } else { buf.len() });
        if ubuf != 0 && n > 0 {
            t.mm().copy_out(ubuf, &buf[..n])?;
        }
        t.mm().write_u32(arg, n as u32)?;
        Ok(0)
    }
}

impl Socket for HostinetSocket {
    fn family(&self) -> i32 {
        self.family
    }

    fn sock_type(&self) -> i32 {
        self.ty
    }

    fn protocol(&self) -> i32 {
        // What Linux reports for protocol 0.
        match (self.proto, self.ty) {
            (0, libc::SOCK_STREAM) => libc::IPPROTO_TCP,
            (0, libc::SOCK_DGRAM) => libc::IPPROTO_UDP,
            (p, _) => p,
        }
    }

    fn bind(&self, _t: &Task, addr: &[u8]) -> KResult<()> {
        let sa = self.host_sockaddr(addr)?;
        self.host_bind(&sa)
    }

    fn listen(&self, _t: &Task, backlog: i32) -> KResult<()> {
        // SAFETY: listen(2) with plain integers on our own socket.
        retry(|| unsafe { libc::listen(self.raw(), backlog) as isize }).map(|_| ())
    }

    fn accept(&self, t: &Task, nonblock: bool) -> KResult<(Arc<dyn FileOps>, Vec<u8>)> {
        let timeo = Timeout::new(self.rcvtimeo());
        let (fd, peer) = self.wait(t, libc::POLLIN, nonblock, timeo, || self.host_accept())?;
        let c = t.creds();
        let s = HostinetSocket::new(fd, self.family, self.ty, self.proto, c.fsuid, c.fsgid);
        Ok((Arc::new(s), peer))
    }

    fn connect(&self, t: &Task, addr: &[u8], nonblock: bool) -> KResult<()> {
        let sa = self.host_sockaddr(addr)?;
        match self.host_connect(&sa) {
            // A blocking connect waits, also when restarted after a
            // signal while the attempt goes on (the host says EALREADY).
            Err(e) if (e == Errno::EINPROGRESS || e == Errno::EALREADY) && !nonblock => {
                self.finish_connect(t, e)
            }
            r => r,
        }
    }

    fn sockname(&self) -> KResult<Vec<u8>> {
        self.host_name(false)
    }

    fn peername(&self) -> KResult<Vec<u8>> {
        self.host_name(true)
    }

    fn sendmsg(
        &self,
        t: &Task,
        data: &[u8],
        to: Option<&[u8]>,
        control: SendControl,
        flags: i32,
        nonblock: bool,
    ) -> KResult<usize> {
        // Linux's __scm_send: SCM_RIGHTS only on AF_UNIX.
        if !control.rights.is_empty() {
            return Err(Errno::EINVAL);
        }
        self.do_send(t, data, to, flags, nonblock)
    }

    fn recvmsg(&self, t: &Task, buf: &mut [u8], flags: i32, nonblock: bool) -> KResult<RecvMsg> {
        self.do_recv(t, buf, flags, nonblock)
    }

    fn shutdown(&self, _t: &Task, how: i32) -> KResult<()> {
        // SAFETY: shutdown(2) with plain integers on our own socket.
        retry(|| unsafe { libc::shutdown(self.raw(), how) as isize }).map(|_| ())
    }

    fn getsockopt(&self, _t: &Task, level: i32, name: i32, len: usize) -> KResult<Vec<u8>> {
        if let Some(n) = is_timeo(level, name) {
            return lock(&self.opts).get(n).ok_or(Errno::ENOPROTOOPT);
        }
        if !allowed(level, name) {
            return Err(Errno::ENOPROTOOPT);
        }
        self.host_getsockopt(level, name, len)
    }

    fn setsockopt(&self, t: &Task, level: i32, name: i32, val: &[u8]) -> KResult<()> {
        if let Some(n) = is_timeo(level, name) {
            return lock(&self.opts)
                .set(n, val)
                .unwrap_or(Err(Errno::ENOPROTOOPT));
        }
        // What needs CAP_NET_ADMIN on the host, which the guest never has
        // there (the sentry itself might).
        let needs_admin = match (level, name) {
            (libc::SOL_SOCKET, opts::SO_SNDBUFFORCE | opts::SO_RCVBUFFORCE | opts::SO_MARK) => true,
            (libc::SOL_SOCKET, opts::SO_PRIORITY) => {
                !(0..=opts::MAX_UNPRIVILEGED_PRIORITY).contains(&read_int_opt(val)?)
            }
            (libc::IPPROTO_IP, opts::IP_TRANSPARENT) => true,
            (libc::IPPROTO_IPV6, opts::IPV6_TRANSPARENT) => true,
            _ => false,
        };
        if needs_admin {
            return Err(Errno::EPERM);
        }
        if !allowed(level, name) {
            return Err(Errno::ENOPROTOOPT);
        }
        if level == libc::IPPROTO_TCP && name == opts::TCP_CONGESTION {
            let end = val.iter().position(|&c| c == 0).unwrap_or(val.len());
            if !CONGESTION_ALLOWED.contains(&&val[..end]) {
                // Never let a guest name make the host load a module: an
                // unprivileged Linux caller gets EPERM, a privileged one
                // ENOENT for an algorithm that is not there.
                return Err(if t.creds().capable(crate::kernel::caps::CAP_NET_ADMIN) {
                    Errno::ENOENT
                } else {
                    Errno::EPERM
                });
            }
        }
        self.host_setsockopt(level, name, val)?;
        if (level, name) == (libc::SOL_SOCKET, libc::SO_RCVLOWAT) {
            lock(&self.opts).rcvlowat = read_int_opt(val)?.max(1);
        }
        Ok(())
    }
}

impl FileOps for HostinetSocket {
    fn read(&self, t: &Task, f: &File, buf: &mut [u8], _off: u64) -> KResult<usize> {
        // Linux's sock_read_iter: an empty read returns at once.
        if buf.is_empty() {
            return Ok(0);
        }
        Ok(self.do_recv(t, buf, 0, f.nonblocking())?.copied)
    }

    fn write(&self, t: &Task, f: &File, buf: &[u8], _off: u64) -> KResult<usize> {
        self.do_send(t, buf, None, 0, f.nonblocking())
    }

    fn stat(&self) -> KResult<Stat> {
        Ok(crate::net::socket::socket_stat(
            self.ino, self.uid, self.gid, self.ctime,
        ))
    }

    fn ioctl(&self, t: &Task, _f: &File, cmd: u32, arg: u64) -> KResult<u64> {
        use ioctls::*;
        match cmd {
            SIOCINQ | SIOCOUTQ | SIOCOUTQNSD | SIOCATMARK => self.ioctl_int(t, cmd, arg),
            SIOCGIFNAME | SIOCGIFFLAGS | SIOCGIFADDR | SIOCGIFDSTADDR | SIOCGIFBRDADDR
            | SIOCGIFNETMASK | SIOCGIFMETRIC | SIOCGIFMTU | SIOCGIFHWADDR | SIOCGIFINDEX
            | SIOCGIFTXQLEN => self.ioctl_ifreq(t, cmd, arg),
            SIOCGIFCONF => self.ioctl_ifconf(t, arg),
            _ => Err(Errno::ENOTTY),
        }
    }

    fn readiness(&self, mask: u32) -> u32 {
        let r = poll_now(self.raw(), (mask & 0xffff) as i16) as u16 as u32;
        r & (mask | POLLERR | POLLHUP)
    }

    fn host_fd(&self) -> Option<RawFd> {
        Some(self.raw())
    }

    fn as_socket(&self) -> Option<&dyn Socket> {
        Some(self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vfs::file::{POLLIN, POLLOUT};

    #[test]
    fn types_and_protocols_like_linux() {
        use libc::*;
        assert_eq!(check_type(AF_INET, SOCK_STREAM, 0), Ok(()));
        assert_eq!(check_type(AF_INET6, SOCK_STREAM, IPPROTO_TCP), Ok(()));
        assert_eq!(check_type(AF_INET, SOCK_DGRAM, IPPROTO_UDP), Ok(()));
        assert_eq!(check_type(AF_INET, SOCK_DGRAM, IPPROTO_ICMP), Ok(()));
        assert_eq!(check_type(AF_INET6, SOCK_DGRAM, IPPROTO_ICMPV6), Ok(()));
        assert_eq!(
            check_type(AF_INET6, SOCK_DGRAM, IPPROTO_ICMP),
            Err(Errno::EPROTONOSUPPORT)
        );
        assert_eq!(
            check_type(AF_INET, SOCK_STREAM, IPPROTO_UDP),
            Err(Errno::EPROTONOSUPPORT)
        );
        assert_eq!(
            check_type(AF_INET, SOCK_RAW, IPPROTO_ICMP),
            Err(Errno::EPERM)
        );
        assert_eq!(
            check_type(AF_INET, SOCK_SEQPACKET, 0),
            Err(Errno::ESOCKTNOSUPPORT)
        );
        assert_eq!(check_type(AF_INET, 11, 0), Err(Errno::EINVAL));
        assert_eq!(check_type(AF_INET, SOCK_STREAM, 256), Err(Errno::EINVAL));
    }

    #[test]
    fn option_allow_list() {
        assert!(allowed(libc::SOL_SOCKET, libc::SO_REUSEADDR));
        assert!(allowed(libc::IPPROTO_TCP, libc::TCP_NODELAY));
        assert!(allowed(libc::IPPROTO_IPV6, libc::IPV6_V6ONLY));
        assert!(allowed(libc::IPPROTO_IP, libc::IP_TTL));
        // Pointers inside (a BPF program) or host privileges: never.
        assert!(!allowed(libc::SOL_SOCKET, libc::SO_ATTACH_FILTER));
        assert!(!allowed(libc::SOL_SOCKET, libc::SO_BINDTODEVICE));
        assert!(!allowed(libc::SOL_SOCKET, libc::SO_MARK));
        assert!(!allowed(libc::IPPROTO_IP, libc::IP_TRANSPARENT));
        assert!(!allowed(libc::IPPROTO_RAW, 1));
        assert_eq!(
            is_timeo(libc::SOL_SOCKET, libc::SO_RCVTIMEO),
            Some(libc::SO_RCVTIMEO)
        );
        assert_eq!(
            is_timeo(libc::SOL_SOCKET, opts::SO_SNDTIMEO_NEW),
            Some(libc::SO_SNDTIMEO)
        );
        assert_eq!(is_timeo(libc::IPPROTO_TCP, libc::SO_RCVTIMEO), None);
    }

    fn raw_socket(family: i32, ty: i32) -> HostinetSocket {
        // SAFETY: socket(2) with plain integers.
        let fd = unsafe { libc::socket(family, ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
        assert!(fd >= 0);
        // SAFETY: a new fd nothing else owns.
        HostinetSocket::new(unsafe { OwnedFd::from_raw_fd(fd) }, family, ty, 0, 0, 0)
    }

    #[test]
    fn host_calls_without_a_task() {
        // bind/listen/connect/accept and datagrams through the host helpers.
        let srv = raw_socket(libc::AF_INET, libc::SOCK_STREAM);
        let lo: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
        srv.host_bind(
            &srv.host_sockaddr(&inet::format_sockaddr(libc::AF_INET, lo))
                .unwrap(),
        )
        .unwrap();
        // SAFETY: listen on our own socket.
        assert_eq!(unsafe { libc::listen(srv.raw(), 4) }, 0);
        let name = srv.host_name(false).unwrap();
        let bound = inet::parse_sockaddr(libc::AF_INET, &name).unwrap();
        assert_ne!(bound.port(), 0);
        assert_eq!(srv.host_accept().err(), Some(Errno::EAGAIN));
        assert_eq!(srv.readiness(POLLIN), 0);
        let cl = raw_socket(libc::AF_INET, libc::SOCK_STREAM);
        match cl.host_connect(&name) {
            Ok(()) => {}
            Err(e) => assert_eq!(e, Errno::EINPROGRESS),
        }
        while srv.readiness(POLLIN) == 0 {
            std::thread::yield_now();
        }
        let (afd, peer) = srv.host_accept().unwrap();
        assert_eq!(peer.len(), inet::SOCKADDR_IN_LEN);
        let acc = HostinetSocket::new(afd, libc::AF_INET, libc::SOCK_STREAM, 0, 0, 0);
        assert_eq!(cl.take_error(), Ok(0));
        assert_eq!(cl.host_send(b"ping", None, 0), Ok(4));
        while acc.readiness(POLLIN) == 0 {
            std::thread::yield_now();
        }
        let mut b = [0u8; 16];
        let (n, addr) = acc.host_recv(&mut b, 0).unwrap();
        assert_eq!((&b[..n], addr), (&b"ping"[..], None));
        assert_eq!(acc.host_recv(&mut b, 0).err(), Some(Errno::EAGAIN));
        assert_ne!(acc.readiness(POLLOUT), 0);
        assert_eq!(
            acc.host_getsockopt(libc::IPPROTO_TCP, libc::TCP_NODELAY, 4),
            Ok(0i32.to_ne_bytes().to_vec())
        );

        let u1 = raw_socket(libc::AF_INET, libc::SOCK_DGRAM);
        let u2 = raw_socket(libc::AF_INET, libc::SOCK_DGRAM);
        u2.host_bind(&inet::format_sockaddr(libc::AF_INET, lo))
            .unwrap();
        let to = u2.host_name(false).unwrap();
        assert_eq!(u1.host_send(b"datagram", Some(&to), 0), Ok(8));
        while u2.readiness(POLLIN) == 0 {
            std::thread::yield_now();
        }
        let mut small = [0u8; 4];
        let (n, from) = u2.host_recv(&mut small, libc::MSG_TRUNC).unwrap();
        assert_eq!((n, &small), (8, b"data"));
        // u1 was bound implicitly to 0.0.0.0: the datagram came from its port.
        let from = inet::parse_sockaddr(libc::AF_INET, &from.unwrap()).unwrap();
        let mine = inet::parse_sockaddr(libc::AF_INET, &u1.host_name(false).unwrap()).unwrap();
        assert_eq!(from.port(), mine.port());
        // Wrong family and short addresses fail before the host sees them.
        assert_eq!(u1.host_sockaddr(&to[..8]).err(), Some(Errno::EINVAL));
        let six = inet::format_sockaddr(libc::AF_INET6, "[::1]:1".parse().unwrap());
        assert_eq!(u1.host_sockaddr(&six).err(), Some(Errno::EAFNOSUPPORT));
    }
}
