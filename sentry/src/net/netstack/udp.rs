//! UDP sockets (SOCK_DGRAM) on the sandbox's stack: a smoltcp UDP socket
//! bound on first bind, connect or send; connect sets a default peer and
//! filters what is received, as on Linux.

use super::procnet::{ProcRow, ProcSocket, TCP_CLOSE, TCP_ESTABLISHED};
use super::{
    bindable, canonical, from_endpoint, listen_addr, route, stack, to_endpoint, Binding, Inner,
    PROTO_UDP, UDP_BUF_SIZE,
};
use crate::errno::{Errno, KResult};
use crate::fs::{lock, next_ino};
use crate::kernel::task::Task;
use crate::kernel::waiter::WaitQueue;
use crate::net::inet::{format_sockaddr, is_unspec, parse_sockaddr, unspecified};
use crate::net::socket::{
    deadline, int_opt, read_int_opt, wait_errno, CommonOpts, RecvMsg, SendControl, Socket,
    SO_TIMESTAMPNS,
};
use crate::net::unix::{MAX_BUF, MIN_RCVBUF, MIN_SNDBUF};
use crate::vfs::file::{POLLERR, POLLHUP, POLLIN, POLLOUT, POLLRDNORM, POLLWRNORM};
use crate::vfs::{File, FileOps, Stat, Timespec};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::udp;
use smoltcp::wire::IpListenEndpoint;
use std::any::Any;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

const RCV_SHUTDOWN: u8 = 1;
const SEND_SHUTDOWN: u8 = 2;
/// The largest UDP payload over IPv4 (65535 less IP and UDP headers).
pub const MAX_PAYLOAD_V4: usize = 65507;
/// Over IPv6 on our loopback: the MTU less the IPv6 and UDP headers (we
/// do not fragment, so this is below Linux's 65527).
pub const MAX_PAYLOAD_V6: usize = super::MTU - 48;
/// Datagrams each queue holds.
const QUEUE_PACKETS: usize = 256;

struct St {
    bound: Option<SocketAddr>,
    h: Option<SocketHandle>,
    peer: Option<SocketAddr>,
    opts: CommonOpts,
    v6only: bool,
    shut: u8,
    err: i32,
    sndbuf: usize,
    rcvbuf: usize,
    tos: i32,
    ttl: i32,
    tclass: i32,
    hops: i32,
    /// SO_TIMESTAMPNS (with `opts.timestamp`): nanosecond timestamps.
    ts_ns: bool,
    /// IP_PKTINFO, IP_RECVTOS, IPV6_RECVPKTINFO.
    pktinfo: bool,
    recvtos: bool,
    recvpktinfo6: bool,
    /// IP_RECVERR / IPV6_RECVERR: stored; the stack reports no ICMP
    /// errors, so the error queue stays empty.
    recverr: bool,
    recverr6: bool,
}

/// Socket options the libc crate lacks.
const IPV6_RECVPKTINFO: i32 = 49;
const IPV6_PKTINFO: i32 = 50;
const IPV6_RECVERR: i32 = 25;

/// The control messages a datagram from `from` to `to` (arrived at
/// `at_ns`) carries for the options in `s`, in Linux's order: the
/// timestamp, then the IPv4 ones (IP_PKTINFO, IP_TOS) or IPV6_PKTINFO.
fn recv_control(
    s: &St,
    family: i32,
    from: SocketAddr,
    to: IpAddr,
    at_ns: i64,
) -> Vec<(i32, i32, Vec<u8>)> {
    let mut v = Vec::new();
    if s.opts.timestamp {
        v.push(crate::net::socket::timestamp_cmsg(s.ts_ns, at_ns));
    }
    let ifindex = super::ifindex_from(from.ip());
    let to = canonical(to);
    if family == libc::AF_INET6 && s.recvpktinfo6 {
        let a = match to {
            IpAddr::V4(a) => a.to_ipv6_mapped(),
            IpAddr::V6(a) => a,
        };
        let mut b = a.octets().to_vec();
        b.extend_from_slice(&ifindex.to_le_bytes());
        v.push((libc::IPPROTO_IPV6, IPV6_PKTINFO, b));
    }
    if let IpAddr::V4(a) = to {
        if s.pktinfo {
            // in_pktinfo: ifindex, spec_dst (the local address a reply
            // comes from: the destination, for unicast), addr.
            let mut b = ifindex.to_le_bytes().to_vec();
            b.extend_from_slice(&a.octets());
            b.extend_from_slice(&a.octets());
            v.push((libc::IPPROTO_IP, libc::IP_PKTINFO, b));
        }
        if s.recvtos {
            // Our stack sends every packet with TOS 0.
            v.push((libc::IPPROTO_IP, libc::IP_TOS, vec![0]));
        }
    }
    v
}

pub struct UdpSocket {
    family: i32,
    id: u64,
    ino: u64,
    uid: u32,
    gid: u32,
    ctime: Timespec,
    queue: Arc<WaitQueue>,
    st: Mutex<St>,
}

type Attempt<T> = Option<KResult<T>>;

fn udp_socket() -> udp::Socket<'static> {
    let buf = || {
        udp::PacketBuffer::new(
            vec![udp::PacketMetadata::EMPTY; QUEUE_PACKETS],
            vec![0u8; UDP_BUF_SIZE],
        )
    };
    udp::Socket::new(buf(), buf())
}

fn same_addr(a: SocketAddr, b: SocketAddr) -> bool {
    canonical(a.ip()) == canonical(b.ip()) && a.port() == b.port()
}

impl UdpSocket {
    pub fn new(t: &Task, family: i32) -> Arc<UdpSocket> {
        let c = t.creds();
        let s = Arc::new(UdpSocket {
            family,
            id: super::next_id(),
            ino: next_ino(),
            uid: c.fsuid,
            gid: c.fsgid,
            ctime: Timespec::now(),
            queue: Arc::new(WaitQueue::new()),
            st: Mutex::new(St {
                bound: None,
                h: None,
                peer: None,
                opts: CommonOpts::default(),
                v6only: false,
                shut: 0,
                err: 0,
                sndbuf: UDP_BUF_SIZE,
                rcvbuf: UDP_BUF_SIZE,
                tos: 0,
                ttl: 64,
                tclass: 0,
                hops: 64,
                ts_ns: false,
                pktinfo: false,
                recvtos: false,
                recvpktinfo6: false,
                recverr: false,
                recverr6: false,
            }),
        });
        let w: std::sync::Weak<dyn ProcSocket> = Arc::downgrade(&s) as _;
        super::procnet::register(PROTO_UDP, w);
        s
    }

    /// Binds `addr` (port 0: ephemeral) and opens the smoltcp socket.
    fn bind_locked(&self, s: &mut St, n: &mut Inner, addr: SocketAddr) -> KResult<SocketHandle> {
        let b = Binding {
            id: self.id,
            ip: addr.ip(),
            v6only: s.v6only,
            reuse: s.opts.reuseaddr,
            reuseport: s.opts.reuseport,
            listening: false,
        };
        let port = n.bind(PROTO_UDP, b, addr.port())?;
        let mut k = udp_socket();
        let ep = IpListenEndpoint {
            addr: listen_addr(addr.ip(), s.v6only),
            port,
        };
        if k.bind(ep).is_err() {
            n.unbind(PROTO_UDP, self.id, port);
            return Err(Errno::EINVAL);
        }
        let h = n.sockets.add(k);
        n.watch(h, &self.queue);
        s.bound = Some(SocketAddr::new(addr.ip(), port));
        s.h = Some(h);
        Ok(h)
    }

    fn ensure_bound(&self, s: &mut St, n: &mut Inner) -> KResult<SocketHandle> {
        match s.h {
            Some(h) => Ok(h),
            None => self.bind_locked(s, n, unspecified(self.family)),
        }
    }

    fn do_bind(&self, t: &Task, sa: &[u8]) -> KResult<()> {
        let addr = parse_sockaddr(self.family, sa)?;
        if is_unspec(sa) && !addr.ip().is_unspecified() {
            return Err(Errno::EAFNOSUPPORT);
        }
        let mut g = lock(&self.st);
        let s = &mut *g;
        if s.h.is_some() {
            return Err(Errno::EINVAL);
        }
        if !bindable(addr.ip()) {
            return Err(Errno::EADDRNOTAVAIL);
        }
        if crate::kernel::sysctl::port_is_privileged(addr.port())
            && !t.creds().capable(crate::kernel::caps::CAP_NET_BIND_SERVICE)
        {
            return Err(Errno::EACCES);
        }
        stack().with(|n| self.bind_locked(s, n, addr))?;
        Ok(())
    }

    fn do_connect(&self, sa: &[u8]) -> KResult<()> {
        let mut g = lock(&self.st);
        let s = &mut *g;
        if is_unspec(sa) {
            s.peer = None;
            return Ok(());
        }
        let addr = parse_sockaddr(self.family, sa)?;
        let dst = route(addr.ip())?;
        if dst.is_ipv4() && self.family == libc::AF_INET6 && s.v6only {
            return Err(Errno::ENETUNREACH);
        }
        stack().with(|n| self.ensure_bound(s, n))?;
        s.peer = Some(SocketAddr::new(dst, addr.port()));
        Ok(())
    }

    fn dest(&self, s: &St, to: Option<&[u8]>) -> KResult<SocketAddr> {
        match to {
            Some(sa) => {
                let a = parse_sockaddr(self.family, sa)?;
                let dst = route(a.ip())?;
                if dst.is_ipv4() && self.family == libc::AF_INET6 && s.v6only {
                    return Err(Errno::ENETUNREACH);
                }
                if a.port() == 0 {
                    return Err(Errno::EINVAL);
                }
                Ok(SocketAddr::new(dst, a.port()))
            }
            None => s.peer.ok_or(Errno::EDESTADDRREQ),
        }
    }

    fn try_send(&self, data: &[u8], to: Option<&[u8]>) -> Attempt<usize> {
        let mut g = lock(&self.st);
        let s = &mut *g;
        if s.shut & SEND_SHUTDOWN != 0 {
            return Some(Err(Errno::EPIPE));
        }
        let dst = match self.dest(s, to) {
            Ok(d) => d,
            Err(e) => return Some(Err(e)),
        };
        let max = if dst.is_ipv4() {
            MAX_PAYLOAD_V4
        } else {
            MAX_PAYLOAD_V6
        };
        if data.len() > max {
            return Some(Err(Errno::EMSGSIZE));
        }
        stack().with(|n| {
            let h = match self.ensure_bound(s, n) {
                Ok(h) => h,
                Err(e) => return Some(Err(e)),
            };
            match n.udp(h).send_slice(data, to_endpoint(dst)) {
                Ok(()) => Some(Ok(data.len())),
                Err(udp::SendError::BufferFull) => None,
                Err(udp::SendError::Unaddressable) => Some(Err(Errno::EINVAL)),
            }
        })
    }

    fn do_send(&self, t: &Task, data: &[u8], to: Option<&[u8]>, nonblock: bool) -> KResult<usize> {
        if let Some(r) = self.try_send(data, to) {
            return r;
        }
        if nonblock {
            return Err(Errno::EAGAIN);
        }
        let timeo = lock(&self.st).opts.sndtimeo;
        t.block_until(&[&self.queue], &[], deadline(timeo), || {
            self.try_send(data, to)
        })
        .map_err(|e| wait_errno(e, timeo))
    }

    fn try_recv(&self, buf: &mut [u8], peek: bool) -> Attempt<RecvMsg> {
        let mut g = lock(&self.st);
        let s = &mut *g;
        let family = self.family;
        stack().with(|n| {
            if let Some(h) = s.h {
                let k = n.udp(h);
                while let Ok((p, m)) = k.peek() {
                    let from = from_endpoint(m.endpoint);
                    // smoltcp's "any address" endpoint takes both families:
                    // an AF_INET socket never sees IPv6, a v6-only one IPv4.
                    let other_family = match canonical(from.ip()) {
                        IpAddr::V6(_) => family == libc::AF_INET,
                        IpAddr::V4(_) => family == libc::AF_INET6 && s.v6only,
                    };
                    if other_family || s.peer.is_some_and(|peer| !same_addr(peer, from)) {
                        // Connected: datagrams from others are dropped.
                        let _ = k.recv();
                        continue;
                    }
                    let c = p.len().min(buf.len());
                    buf[..c].copy_from_slice(&p[..c]);
                    let full = p.len();
                    let to = m
                        .local_address
                        .map(IpAddr::from)
                        .unwrap_or(unspecified(family).ip());
                    let id = m.meta.id;
                    if !peek {
                        let _ = k.recv();
                    }
                    let other = recv_control(s, family, from, to, n.arrival(id));
                    return Some(Ok(RecvMsg {
                        copied: c,
                        full,
                        addr: Some(format_sockaddr(family, from)),
                        control: crate::net::socket::RecvControl {
                            other,
                            ..Default::default()
                        },
                    }));
                }
            }
            if s.err != 0 {
                return Some(Err(Errno(std::mem::take(&mut s.err))));
            }
            if s.shut & RCV_SHUTDOWN != 0 {
                return Some(Ok(RecvMsg::default()));
            }
            None
        })
    }

    fn do_recv(&self, t: &Task, buf: &mut [u8], flags: i32, nonblock: bool) -> KResult<RecvMsg> {
        if flags & libc::MSG_OOB != 0 {
            return Err(Errno::EOPNOTSUPP);
        }
        if flags & libc::MSG_ERRQUEUE != 0 {
            // No ICMP errors are ever queued.
            return Err(Errno::EAGAIN);
        }
        let peek = flags & libc::MSG_PEEK != 0;
        if let Some(r) = self.try_recv(buf, peek) {
            return r;
        }
        if nonblock {
            return Err(Errno::EAGAIN);
        }
        let timeo = lock(&self.st).opts.rcvtimeo;
        t.block_until(&[&self.queue], &[], deadline(timeo), || {
            self.try_recv(buf, peek)
        })
        .map_err(|e| wait_errno(e, timeo))
    }

    /// FIONREAD: the next datagram's length.
    fn inq(&self) -> usize {
        let s = lock(&self.st);
        let Some(h) = s.h else {
            return 0;
        };
        stack().peek(|n| n.udp(h).peek().map(|(p, _)| p.len()).unwrap_or(0))
    }

    fn outq(&self) -> usize {
        let s = lock(&self.st);
        let Some(h) = s.h else {
            return 0;
        };
        stack().peek(|n| n.udp(h).send_queue())
    }
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        let s = self.st.get_mut().unwrap_or_else(|e| e.into_inner());
        let (h, bound, id) = (s.h, s.bound, self.id);
        if h.is_none() && bound.is_none() {
            return;
        }
        stack().with(|n| n.release(PROTO_UDP, id, h, bound));
    }
}

impl Socket for UdpSocket {
    fn family(&self) -> i32 {
        self.family
    }

    fn sock_type(&self) -> i32 {
        libc::SOCK_DGRAM
    }

    fn protocol(&self) -> i32 {
        libc::IPPROTO_UDP
    }

    fn bind(&self, t: &Task, addr: &[u8]) -> KResult<()> {
        self.do_bind(t, addr)
    }

    fn listen(&self, _t: &Task, _backlog: i32) -> KResult<()> {
        Err(Errno::EOPNOTSUPP)
    }

    fn accept(&self, _t: &Task, _nonblock: bool) -> KResult<(Arc<dyn FileOps>, Vec<u8>)> {
        Err(Errno::EOPNOTSUPP)
    }

    fn connect(&self, _t: &Task, addr: &[u8], _nonblock: bool) -> KResult<()> {
        self.do_connect(addr)
    }

    fn sockname(&self) -> KResult<Vec<u8>> {
        let s = lock(&self.st);
        let a = match (s.bound, s.peer) {
            // Connected: the source address the route chose.
            (Some(b), Some(p)) if b.ip().is_unspecified() => {
                SocketAddr::new(super::source_for(p.ip()).unwrap_or(b.ip()), b.port())
            }
            (Some(b), _) => b,
            (None, _) => unspecified(self.family),
        };
        Ok(format_sockaddr(self.family, a))
    }

    fn peername(&self) -> KResult<Vec<u8>> {
        let s = lock(&self.st);
        s.peer
            .map(|p| format_sockaddr(self.family, p))
            .ok_or(Errno::ENOTCONN)
    }

    fn sendmsg(
        &self,
        t: &Task,
        data: &[u8],
        to: Option<&[u8]>,
        _control: SendControl,
        _flags: i32,
        nonblock: bool,
    ) -> KResult<usize> {
        self.do_send(t, data, to, nonblock)
    }

    fn recvmsg(&self, t: &Task, buf: &mut [u8], flags: i32, nonblock: bool) -> KResult<RecvMsg> {
        self.do_recv(t, buf, flags, nonblock)
    }

    fn shutdown(&self, _t: &Task, how: i32) -> KResult<()> {
        let mode = match how {
            libc::SHUT_RD => RCV_SHUTDOWN,
            libc::SHUT_WR => SEND_SHUTDOWN,
            libc::SHUT_RDWR => RCV_SHUTDOWN | SEND_SHUTDOWN,
            _ => return Err(Errno::EINVAL),
        };
        let mut s = lock(&self.st);
        if s.peer.is_none() {
            return Err(Errno::ENOTCONN);
        }
        s.shut |= mode;
        drop(s);
        self.queue.notify_all();
        Ok(())
    }

    fn getsockopt(&self, _t: &Task, level: i32, name: i32, _len: usize) -> KResult<Vec<u8>> {
        let mut s = lock(&self.st);
        match level {
            libc::SOL_SOCKET => {
                match name {
                    libc::SO_TIMESTAMP => {
                        return Ok(int_opt((s.opts.timestamp && !s.ts_ns) as i32))
                    }
                    SO_TIMESTAMPNS => return Ok(int_opt((s.opts.timestamp && s.ts_ns) as i32)),
                    _ => {}
                }
                if let Some(v) = s.opts.get(name) {
                    return Ok(v);
                }
                Ok(match name {
                    libc::SO_ERROR => int_opt(std::mem::take(&mut s.err)),
                    libc::SO_SNDBUF => int_opt(s.sndbuf as i32),
                    libc::SO_RCVBUF => int_opt(s.rcvbuf as i32),
                    libc::SO_ACCEPTCONN => int_opt(0),
                    _ => return Err(Errno::ENOPROTOOPT),
                })
            }
            libc::IPPROTO_IP => Ok(int_opt(match name {
                libc::IP_TOS => s.tos,
                libc::IP_TTL => s.ttl,
                libc::IP_PKTINFO => s.pktinfo as i32,
                libc::IP_RECVTOS => s.recvtos as i32,
                libc::IP_RECVERR => s.recverr as i32,
                _ => return Err(Errno::ENOPROTOOPT),
            })),
            libc::IPPROTO_IPV6 if self.family == libc::AF_INET6 => Ok(int_opt(match name {
                libc::IPV6_V6ONLY => s.v6only as i32,
                IPV6_RECVPKTINFO => s.recvpktinfo6 as i32,
                IPV6_RECVERR => s.recverr6 as i32,
                libc::IPV6_TCLASS => s.tclass,
                libc::IPV6_UNICAST_HOPS => s.hops,
                _ => return Err(Errno::ENOPROTOOPT),
            })),
            _ => Err(Errno::ENOPROTOOPT),
        }
    }

    fn setsockopt(&self, _t: &Task, level: i32, name: i32, val: &[u8]) -> KResult<()> {
        let mut g = lock(&self.st);
        let s = &mut *g;
        match level {
            libc::SOL_SOCKET => {
                // SO_TIMESTAMP and SO_TIMESTAMPNS switch one flag and
                // pick the format (Linux's sock_set_timestamp).
                if name == libc::SO_TIMESTAMP || name == SO_TIMESTAMPNS {
                    let on = read_int_opt(val)? != 0;
                    s.opts.timestamp = on;
                    s.ts_ns = on && name == SO_TIMESTAMPNS;
                    return Ok(());
                }
                if let Some(r) = s.opts.set(name, val) {
                    return r;
                }
                let v = read_int_opt(val)?;
                let sz = (v.max(0) as usize).min(MAX_BUF) * 2;
                match name {
                    libc::SO_SNDBUF => s.sndbuf = sz.max(MIN_SNDBUF),
                    libc::SO_RCVBUF => s.rcvbuf = sz.max(MIN_RCVBUF),
                    _ => return Err(Errno::ENOPROTOOPT),
                }
            }
            libc::IPPROTO_IP => {
                let v = read_int_opt(val)?;
                match name {
                    libc::IP_TOS => s.tos = v & 0xff,
                    libc::IP_PKTINFO => s.pktinfo = v != 0,
                    libc::IP_RECVTOS => s.recvtos = v != 0,
                    // glibc's resolver sets it and gives up without it.
                    libc::IP_RECVERR => s.recverr = v != 0,
                    libc::IP_TTL if v == -1 => s.ttl = 64,
                    libc::IP_TTL if (1..=255).contains(&v) => s.ttl = v,
                    libc::IP_TTL => return Err(Errno::EINVAL),
                    _ => return Err(Errno::ENOPROTOOPT),
                }
            }
            libc::IPPROTO_IPV6 if self.family == libc::AF_INET6 => {
                let v = read_int_opt(val)?;
                match name {
                    libc::IPV6_V6ONLY => {
                        if s.bound.is_some() {
                            return Err(Errno::EINVAL);
                        }
                        s.v6only = v != 0;
                    }
                    IPV6_RECVPKTINFO => s.recvpktinfo6 = v != 0,
                    IPV6_RECVERR => s.recverr6 = v != 0,
                    libc::IPV6_TCLASS if (-1..=255).contains(&v) => s.tclass = v.max(0),
                    libc::IPV6_UNICAST_HOPS if (-1..=255).contains(&v) => {
                        s.hops = if v == -1 { 64 } else { v }
                    }
                    libc::IPV6_TCLASS | libc::IPV6_UNICAST_HOPS => return Err(Errno::EINVAL),
                    _ => return Err(Errno::ENOPROTOOPT),
                }
            }
            _ => return Err(Errno::ENOPROTOOPT),
        }
        Ok(())
    }
}

impl FileOps for UdpSocket {
    fn read(&self, t: &Task, f: &File, buf: &mut [u8], _off: u64) -> KResult<usize> {
        Ok(self.do_recv(t, buf, 0, f.nonblocking())?.copied)
    }

    fn write(&self, t: &Task, f: &File, buf: &[u8], _off: u64) -> KResult<usize> {
        self.do_send(t, buf, None, f.nonblocking())
    }

    fn stat(&self) -> KResult<Stat> {
        Ok(crate::net::socket::socket_stat(
            self.ino, self.uid, self.gid, self.ctime,
        ))
    }

    fn ioctl(&self, t: &Task, _f: &File, cmd: u32, arg: u64) -> KResult<u64> {
        let n = match libc::c_ulong::from(cmd) {
            libc::FIONREAD => self.inq(),
            libc::TIOCOUTQ => self.outq(),
            _ => return crate::net::iface::ioctl(t, cmd, arg).unwrap_or(Err(Errno::ENOTTY)),
        };
        t.mm().write_u32(arg, n.min(i32::MAX as usize) as u32)?;
        Ok(0)
    }

    fn readiness(&self, mask: u32) -> u32 {
        let s = lock(&self.st);
        let mut r = 0;
        if let Some(h) = s.h {
            let (rx, tx) = stack().peek(|n| {
                let k = n.udp(h);
                (k.can_recv(), k.can_send())
            });
            if rx {
                r |= POLLIN | POLLRDNORM;
            }
            if tx {
                r |= POLLOUT | POLLWRNORM;
            }
        } else {
            r |= POLLOUT | POLLWRNORM;
        }
        if s.shut & RCV_SHUTDOWN != 0 {
            r |= POLLIN | POLLRDNORM;
        }
        if s.shut == RCV_SHUTDOWN | SEND_SHUTDOWN {
            r |= POLLHUP;
        }
        if s.err != 0 {
            r |= POLLERR;
        }
        r & (mask | POLLHUP | POLLERR)
    }

    fn queue(&self) -> Option<&WaitQueue> {
        Some(&self.queue)
    }

    fn as_socket(&self) -> Option<&dyn Socket> {
        Some(self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl ProcSocket for UdpSocket {
    fn proc_row(&self) -> Option<ProcRow> {
        let s = lock(&self.st);
        let bound = s.bound?;
        // Connected: the source address the route chose, as sockname.
        let local = match s.peer {
            Some(p) if bound.ip().is_unspecified() => SocketAddr::new(
                super::source_for(p.ip()).unwrap_or(bound.ip()),
                bound.port(),
            ),
            _ => bound,
        };
        let (rx, tx) = match s.h {
            Some(h) => stack().peek(|n| {
                let k = n.udp(h);
                (k.recv_queue(), k.send_queue())
            }),
            None => (0, 0),
        };
        Some(ProcRow {
            v6: self.family == libc::AF_INET6,
            local,
            remote: s
                .peer
                .unwrap_or_else(|| SocketAddr::new(unspecified(self.family).ip(), 0)),
            state: if s.peer.is_some() {
                TCP_ESTABLISHED
            } else {
                TCP_CLOSE
            },
            tx_queue: tx,
            rx_queue: rx,
            uid: self.uid,
            ino: self.ino,
        })
    }
}
