//! ICMP sockets on the sandbox's stack: echo ("ping") sockets,
//! socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP) and AF_INET6/IPPROTO_ICMPV6,
//! and raw ICMP sockets (SOCK_RAW, CAP_NET_RAW).
//!
//! Both sit on a smoltcp raw socket of their IP version and protocol, so
//! each sees every ICMP packet the stack receives (smoltcp itself answers
//! echo requests). A ping socket keeps the echo replies whose identifier
//! is its "port" (bound explicitly or on first send, as Linux's
//! ping_get_port) and hands out the ICMP header and payload; sending
//! rewrites the identifier to that port and fills the checksum. A raw
//! socket hands out every packet (IPv4 with its IP header, IPv6 without,
//! as Linux's raw sockets); it sends what the guest wrote behind an IP
//! header we build (IPv6: with the ICMPv6 checksum filled in, as Linux
//! does for raw ICMPv6).
//!
//! Creating a ping socket is allowed as Linux's ping_init_sock decides:
//! the caller's effective or a supplementary group must be within
//! net.ipv4.ping_group_range (default "1 0": nobody), else EACCES.

use super::{bindable, canonical, route, source_for, stack, Binding, Inner, PROTO_ICMP};
use crate::errno::{Errno, KResult};
use crate::fs::{lock, next_ino};
use crate::kernel::task::Task;
use crate::kernel::waiter::WaitQueue;
use crate::net::inet::{format_sockaddr, is_unspec, parse_sockaddr, unspecified};
use crate::net::socket::{
    deadline, int_opt, read_int_opt, wait_errno, CommonOpts, RecvMsg, SendControl, Socket,
};
use crate::vfs::file::{POLLERR, POLLIN, POLLOUT, POLLRDNORM, POLLWRNORM};
use crate::vfs::{File, FileOps, Stat, Timespec};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::raw;
use smoltcp::wire::{IpProtocol, IpVersion};
use std::any::Any;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

/// Payload space of each of a socket's queues.
const ICMP_BUF_SIZE: usize = 256 * 1024;
const QUEUE_PACKETS: usize = 128;

const ICMP_ECHOREPLY: u8 = 0;
const ICMP_ECHO: u8 = 8;
const ICMPV6_ECHO_REQUEST: u8 = 128;
const ICMPV6_ECHO_REPLY: u8 = 129;
/// ICMPV6_FILTER (setsockopt level IPPROTO_ICMPV6 on raw sockets).
const ICMPV6_FILTER: i32 = 1;
/// ICMP_FILTER (level SOL_RAW on raw IPv4 ICMP sockets).
const ICMP_FILTER: i32 = 1;
const SOL_RAW: i32 = 255;

/// Whether `t` may create a ping socket (ping_init_sock).
fn may_ping(t: &Task) -> bool {
    let c = t.creds();
    crate::kernel::sysctl::ping_allowed(c.egid, &c.groups)
}

/// The Internet checksum of `parts` concatenated (each of even length
/// but the last).
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for p in parts {
        let mut chunks = p.chunks_exact(2);
        for c in &mut chunks {
            sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        if let [last] = chunks.remainder() {
            sum += u32::from(*last) << 8;
        }
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Fills the checksum of the ICMP message `m` (ICMPv6: with the pseudo
/// header of `src` and `dst`).
fn fill_icmp_checksum(m: &mut [u8], src: IpAddr, dst: IpAddr) {
    if m.len() < 4 {
        return;
    }
    m[2] = 0;
    m[3] = 0;
    let sum = match (src, dst) {
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut ph = Vec::with_capacity(40);
            ph.extend_from_slice(&s.octets());
            ph.extend_from_slice(&d.octets());
            ph.extend_from_slice(&(m.len() as u32).to_be_bytes());
            ph.extend_from_slice(&[0, 0, 0, 58]);
            checksum(&[&ph, m])
        }
        _ => checksum(&[m]),
    };
    m[2..4].copy_from_slice(&sum.to_be_bytes());
}

/// One packet as the raw smoltcp socket received it, taken apart.
struct Packet<'a> {
    src: IpAddr,
    dst: IpAddr,
    /// The IPv4 header (empty for IPv6).
    header: &'a [u8],
    /// TTL or hop limit.
    hops: u8,
    icmp: &'a [u8],
}

fn parse_packet(p: &[u8]) -> Option<Packet<'_>> {
    match p.first()? >> 4 {
        4 => {
            let hl = usize::from(p[0] & 0xf) * 4;
            if hl < 20 || p.len() < hl {
                return None;
            }
            let a = |i: usize| Ipv4Addr::new(p[i], p[i + 1], p[i + 2], p[i + 3]);
            Some(Packet {
                src: IpAddr::V4(a(12)),
                dst: IpAddr::V4(a(16)),
                header: &p[..hl],
                hops: p[8],
                icmp: &p[hl..],
            })
        }
        6 => {
            if p.len() < 40 {
                return None;
            }
            let a = |i: usize| {
                let b: [u8; 16] = p[i..i + 16].try_into().unwrap_or([0; 16]);
                Ipv6Addr::from(b)
            };
            Some(Packet {
                src: IpAddr::V6(a(8)),
                dst: IpAddr::V6(a(24)),
                header: &[],
                hops: p[7],
                icmp: &p[40..],
            })
        }
        _ => None,
    }
}

struct St {
    h: Option<SocketHandle>,
    /// Ping sockets: the bound address and identifier.
    bound: Option<SocketAddr>,
    /// connect()ed destination (the port is not used).
    peer: Option<IpAddr>,
    opts: CommonOpts,
    ttl: i32,
    tos: i32,
    hops: i32,
    tclass: i32,
    err: i32,
    /// ICMP_FILTER / ICMPV6_FILTER: a set bit drops that type.
    filter: [u32; 8],
    /// IPV6_RECVHOPLIMIT / IPV6_2292HOPLIMIT: each packet's hop limit as
    /// an IPV6_HOPLIMIT / IPV6_2292HOPLIMIT control message.
    recvhoplimit: bool,
    hoplimit2292: bool,
}

const IPV6_RECVHOPLIMIT: i32 = 51;
const IPV6_HOPLIMIT: i32 = 52;
const IPV6_2292HOPLIMIT: i32 = 8;
/// IPV6_CHECKSUM (level SOL_RAW): ICMPv6 is always checksummed at 2.
const IPV6_CHECKSUM: i32 = 7;

pub struct IcmpSocket {
    family: i32,
    raw: bool,
    id: u64,
    ino: u64,
    uid: u32,
    gid: u32,
    ctime: Timespec,
    queue: Arc<WaitQueue>,
    st: Mutex<St>,
}

type Attempt<T> = Option<KResult<T>>;

impl IcmpSocket {
    /// socket(family, SOCK_DGRAM or SOCK_RAW, IPPROTO_ICMP/IPPROTO_ICMPV6).
    pub fn create(t: &Task, family: i32, raw: bool) -> KResult<Arc<IcmpSocket>> {
        if raw && !t.creds().capable(crate::kernel::caps::CAP_NET_RAW) {
            return Err(Errno::EPERM);
        }
        if !raw && !may_ping(t) {
            return Err(Errno::EACCES);
        }
        let c = t.creds();
        let s = Arc::new(IcmpSocket {
            family,
            raw,
            id: super::next_id(),
            ino: next_ino(),
            uid: c.fsuid,
            gid: c.fsgid,
            ctime: Timespec::now(),
            queue: Arc::new(WaitQueue::new()),
            st: Mutex::new(St {
                h: None,
                bound: None,
                peer: None,
                opts: CommonOpts::default(),
                ttl: 64,
                tos: 0,
                hops: 64,
                tclass: 0,
                err: 0,
                filter: [0; 8],
                recvhoplimit: false,
                hoplimit2292: false,
            }),
        });
        if raw {
            // A raw socket receives from its creation on.
            let mut g = lock(&s.st);
            stack().with(|n| s.open(&mut g, n));
        }
        Ok(s)
    }

    fn v6(&self) -> bool {
        self.family == libc::AF_INET6
    }

    fn open(&self, s: &mut St, n: &mut Inner) -> SocketHandle {
        if let Some(h) = s.h {
            return h;
        }
        let buf = || {
            raw::PacketBuffer::new(
                vec![raw::PacketMetadata::EMPTY; QUEUE_PACKETS],
                vec![0u8; ICMP_BUF_SIZE],
            )
        };
        let (ver, proto) = if self.v6() {
            (IpVersion::Ipv6, IpProtocol::Icmpv6)
        } else {
            (IpVersion::Ipv4, IpProtocol::Icmp)
        };
        let h = n
            .sockets
            .add(raw::Socket::new(Some(ver), Some(proto), buf(), buf()));
        n.watch(h, &self.queue);
        s.h = Some(h);
        h
    }

    /// Ping sockets: binds `addr` (identifier 0: a free one) and opens.
    fn bind_locked(&self, s: &mut St, n: &mut Inner, addr: SocketAddr) -> KResult<()> {
        let b = Binding {
            id: self.id,
            ip: addr.ip(),
            v6only: self.v6(),
            reuse: true,
            reuseport: true,
            listening: false,
        };
        let port = n.bind(PROTO_ICMP, b, addr.port())?;
        s.bound = Some(SocketAddr::new(addr.ip(), port));
        self.open(s, n);
        Ok(())
    }

    fn ensure_bound(&self, s: &mut St, n: &mut Inner) -> KResult<()> {
        if self.raw || s.bound.is_some() {
            self.open(s, n);
            return Ok(());
        }
        self.bind_locked(s, n, unspecified(self.family))
    }

    /// The destination of a send: the address given (its family checked
    /// as Linux's ping_v4_sendmsg/rawv6_sendmsg do) or the connected one.
    fn dest(&self, s: &St, to: Option<&[u8]>) -> KResult<IpAddr> {
        match to {
            Some(sa) => {
                let a = parse_sockaddr(self.family, sa)?;
                let ip = canonical(a.ip());
                if self.v6() != ip.is_ipv6() {
                    return Err(if self.v6() {
                        Errno::EINVAL
                    } else {
                        Errno::EAFNOSUPPORT
                    });
                }
                route(ip)
            }
            None => s.peer.ok_or(Errno::EDESTADDRREQ),
        }
    }

    /// The IP packet carrying `icmp` from `src` to `dst`.
    fn packet(&self, s: &St, src: IpAddr, dst: IpAddr, icmp: &[u8]) -> Vec<u8> {
        let mut p = Vec::with_capacity(40 + icmp.len());
        match (src, dst) {
            (IpAddr::V4(sa), IpAddr::V4(da)) => {
                let total = (20 + icmp.len()) as u16;
                p.extend_from_slice(&[0x45, s.tos as u8]);
                p.extend_from_slice(&total.to_be_bytes());
                // Identification 0, DF set, as Linux's ICMP echo.
                p.extend_from_slice(&[0, 0, 0x40, 0, s.ttl as u8, 1, 0, 0]);
                p.extend_from_slice(&sa.octets());
                p.extend_from_slice(&da.octets());
                let sum = checksum(&[&p]);
                p[10..12].copy_from_slice(&sum.to_be_bytes());
            }
            (IpAddr::V6(sa), IpAddr::V6(da)) => {
                let tc = s.tclass as u32 & 0xff;
                let word = (6u32 << 28) | (tc << 20);
                p.extend_from_slice(&word.to_be_bytes());
                p.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
                p.extend_from_slice(&[58, s.hops as u8]);
                p.extend_from_slice(&sa.octets());
                p.extend_from_slice(&da.octets());
            }
            _ => {}
        }
        p.extend_from_slice(icmp);
        p
    }

    fn try_send(&self, data: &[u8], to: Option<&[u8]>) -> Attempt<usize> {
        let mut g = lock(&self.st);
        let s = &mut *g;
        if data.len() > 0xffff {
            return Some(Err(Errno::EMSGSIZE));
        }
        let mut msg = data.to_vec();
        if !self.raw {
            // ping_common_sendmsg: an echo request with code 0 only.
            let want = if self.v6() {
                ICMPV6_ECHO_REQUEST
            } else {
                ICMP_ECHO
            };
            if msg.len() < 8 || msg[0] != want || msg[1] != 0 {
                return Some(Err(Errno::EINVAL));
            }
        }
        let dst = match self.dest(s, to) {
            Ok(d) => d,
            Err(e) => return Some(Err(e)),
        };
        let max = if self.v6() {
            super::MTU - 40
        } else {
            super::MTU - 20
        };
        if msg.len() > max {
            return Some(Err(Errno::EMSGSIZE));
        }
        stack().with(|n| {
            if let Err(e) = self.ensure_bound(s, n) {
                return Some(Err(e));
            }
            let bound_ip = s
                .bound
                .map(|b| canonical(b.ip()))
                .filter(|ip| !ip.is_unspecified());
            let Some(src) = bound_ip.or_else(|| source_for(dst)) else {
                return Some(Err(Errno::ENETUNREACH));
            };
            if let (false, Some(b)) = (self.raw, s.bound) {
                msg[4..6].copy_from_slice(&b.port().to_be_bytes());
            }
            if !self.raw || self.v6() {
                fill_icmp_checksum(&mut msg, src, dst);
            }
            let pkt = self.packet(s, src, dst, &msg);
            let h = self.open(s, n);
            match n.raw(h).send_slice(&pkt) {
                Ok(()) => Some(Ok(data.len())),
                Err(raw::SendError::BufferFull) => None,
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

    /// Whether this socket takes packet `p` (and what of it).
    fn wants<'a>(&self, s: &St, p: &Packet<'a>) -> Option<&'a [u8]> {
        let ty = *p.icmp.first()?;
        if self.raw {
            if s.filter[usize::from(ty >> 5)] & (1 << (ty & 31)) != 0 {
                return None;
            }
            return Some(p.icmp);
        }
        let b = s.bound?;
        let want = if self.v6() {
            ICMPV6_ECHO_REPLY
        } else {
            ICMP_ECHOREPLY
        };
        if p.icmp.len() < 8 || ty != want || p.icmp[4..6] != b.port().to_be_bytes() {
            return None;
        }
        let ip = canonical(b.ip());
        if !ip.is_unspecified() && ip != p.dst {
            return None;
        }
        Some(p.icmp)
    }

    fn try_recv(&self, buf: &mut [u8], peek: bool) -> Attempt<RecvMsg> {
        let mut g = lock(&self.st);
        let s = &mut *g;
        let Some(h) = s.h else {
            if s.err != 0 {
                return Some(Err(Errno(std::mem::take(&mut s.err))));
            }
            return None;
        };
        stack().with(|n| {
            let k = n.raw(h);
            while let Ok(p) = k.peek() {
                let Some(pk) = parse_packet(p) else {
                    let _ = k.recv();
                    continue;
                };
                let Some(icmp) = self.wants(s, &pk) else {
                    let _ = k.recv();
                    continue;
                };
                // What the guest gets: IPv4 raw sockets the header too.
                // smoltcp re-emitted the header without its checksum and
                // the loopback ICMP message may lack one: fill both.
                let mut out = Vec::with_capacity(pk.header.len() + icmp.len());
                if self.raw && !self.v6() {
                    out.extend_from_slice(pk.header);
                    out[10] = 0;
                    out[11] = 0;
                    let sum = checksum(&[&out]);
                    out[10..12].copy_from_slice(&sum.to_be_bytes());
                }
                let at = out.len();
                out.extend_from_slice(icmp);
                fill_icmp_checksum(&mut out[at..], pk.src, pk.dst);
                let c = out.len().min(buf.len());
                buf[..c].copy_from_slice(&out[..c]);
                let from = format_sockaddr(self.family, SocketAddr::new(pk.src, 0));
                let hops = pk.hops;
                if !peek {
                    let _ = k.recv();
                }
                let mut control = crate::net::socket::RecvControl::default();
                let h = i32::from(hops).to_le_bytes().to_vec();
                if self.v6() && s.hoplimit2292 {
                    control
                        .other
                        .push((libc::IPPROTO_IPV6, IPV6_2292HOPLIMIT, h.clone()));
                }
                if self.v6() && s.recvhoplimit {
                    control.other.push((libc::IPPROTO_IPV6, IPV6_HOPLIMIT, h));
                }
                return Some(Ok(RecvMsg {
                    copied: c,
                    full: out.len(),
                    addr: Some(from),
                    control,
                }));
            }
            if s.err != 0 {
                return Some(Err(Errno(std::mem::take(&mut s.err))));
            }
            None
        })
    }

    fn do_recv(&self, t: &Task, buf: &mut [u8], flags: i32, nonblock: bool) -> KResult<RecvMsg> {
        if flags & libc::MSG_OOB != 0 {
            return Err(Errno::EOPNOTSUPP);
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

    /// Drops queued packets this socket does not take, so readiness and
    /// FIONREAD see only its own.
    fn skip_unwanted(&self, s: &St, n: &mut Inner) -> Option<usize> {
        let h = s.h?;
        let k = n.raw(h);
        while let Ok(p) = k.peek() {
            let len = parse_packet(p).and_then(|pk| {
                self.wants(s, &pk).map(|m| {
                    m.len()
                        + if self.raw && !self.v6() {
                            pk.header.len()
                        } else {
                            0
                        }
                })
            });
            match len {
                Some(l) => return Some(l),
                None => {
                    let _ = k.recv();
                }
            }
        }
        None
    }
}

impl Drop for IcmpSocket {
    fn drop(&mut self) {
        let s = self.st.get_mut().unwrap_or_else(|e| e.into_inner());
        let (h, bound, id) = (s.h, s.bound, self.id);
        if h.is_none() && bound.is_none() {
            return;
        }
        stack().with(|n| n.release(PROTO_ICMP, id, h, bound));
    }
}

impl Socket for IcmpSocket {
    fn family(&self) -> i32 {
        self.family
    }

    fn sock_type(&self) -> i32 {
        if self.raw {
            libc::SOCK_RAW
        } else {
            libc::SOCK_DGRAM
        }
    }

    fn protocol(&self) -> i32 {
        if self.v6() {
            libc::IPPROTO_ICMPV6
        } else {
            libc::IPPROTO_ICMP
        }
    }

    fn bind(&self, _t: &Task, sa: &[u8]) -> KResult<()> {
        let addr = parse_sockaddr(self.family, sa)?;
        if is_unspec(sa) && !addr.ip().is_unspecified() {
            return Err(Errno::EAFNOSUPPORT);
        }
        if !bindable(addr.ip()) {
            return Err(Errno::EADDRNOTAVAIL);
        }
        let mut g = lock(&self.st);
        let s = &mut *g;
        if self.raw {
            // A raw socket's bind only picks its source address.
            s.bound = Some(SocketAddr::new(addr.ip(), 0));
            return Ok(());
        }
        if s.bound.is_some() {
            return Err(Errno::EINVAL);
        }
        stack().with(|n| self.bind_locked(s, n, addr))
    }

    fn listen(&self, _t: &Task, _backlog: i32) -> KResult<()> {
        Err(Errno::EOPNOTSUPP)
    }

    fn accept(&self, _t: &Task, _nonblock: bool) -> KResult<(Arc<dyn FileOps>, Vec<u8>)> {
        Err(Errno::EOPNOTSUPP)
    }

    fn connect(&self, _t: &Task, sa: &[u8], _nonblock: bool) -> KResult<()> {
        let mut g = lock(&self.st);
        let s = &mut *g;
        if is_unspec(sa) {
            s.peer = None;
            return Ok(());
        }
        let a = parse_sockaddr(self.family, sa)?;
        let dst = route(a.ip())?;
        stack().with(|n| self.ensure_bound(s, n))?;
        // Like ip4_datagram_connect, the source address is fixed now.
        if let (false, Some(b)) = (self.raw, s.bound) {
            if b.ip().is_unspecified() {
                if let Some(src) = source_for(dst) {
                    s.bound = Some(SocketAddr::new(src, b.port()));
                }
            }
        }
        s.peer = Some(dst);
        Ok(())
    }

    fn sockname(&self) -> KResult<Vec<u8>> {
        let s = lock(&self.st);
        let a = match (self.raw, s.bound) {
            // A raw socket's "port" is its protocol.
            (true, b) => SocketAddr::new(
                b.map(|b| b.ip()).unwrap_or(unspecified(self.family).ip()),
                self.protocol() as u16,
            ),
            (false, Some(b)) => b,
            (false, None) => unspecified(self.family),
        };
        Ok(format_sockaddr(self.family, a))
    }

    fn peername(&self) -> KResult<Vec<u8>> {
        // Linux's inet_getname wants a destination port, which ICMP
        // sockets never have.
        Err(Errno::ENOTCONN)
    }

    fn sendmsg(
        &self,
        t: &Task,
        data: &[u8],
        to: Option<&[u8]>,
        _control: SendControl,
        flags: i32,
        nonblock: bool,
    ) -> KResult<usize> {
        if flags & libc::MSG_OOB != 0 {
            return Err(Errno::EOPNOTSUPP);
        }
        self.do_send(t, data, to, nonblock)
    }

    fn recvmsg(&self, t: &Task, buf: &mut [u8], flags: i32, nonblock: bool) -> KResult<RecvMsg> {
        self.do_recv(t, buf, flags, nonblock)
    }

    fn shutdown(&self, _t: &Task, how: i32) -> KResult<()> {
        if !(libc::SHUT_RD..=libc::SHUT_RDWR).contains(&how) {
            return Err(Errno::EINVAL);
        }
        Err(Errno::ENOTCONN)
    }

    fn getsockopt(&self, _t: &Task, level: i32, name: i32, _len: usize) -> KResult<Vec<u8>> {
        let mut s = lock(&self.st);
        match level {
            libc::SOL_SOCKET => {
                if let Some(v) = s.opts.get(name) {
                    return Ok(v);
                }
                Ok(match name {
                    libc::SO_ERROR => int_opt(std::mem::take(&mut s.err)),
                    libc::SO_SNDBUF | libc::SO_RCVBUF => int_opt(ICMP_BUF_SIZE as i32),
                    libc::SO_ACCEPTCONN => int_opt(0),
                    _ => return Err(Errno::ENOPROTOOPT),
                })
            }
            libc::IPPROTO_IP if !self.v6() => Ok(int_opt(match name {
                libc::IP_TOS => s.tos,
                libc::IP_TTL => s.ttl,
                _ => return Err(Errno::ENOPROTOOPT),
            })),
            libc::IPPROTO_IPV6 if self.v6() => Ok(int_opt(match name {
                // Ping sockets are IPv6-only (ping_init_sock).
                libc::IPV6_V6ONLY => 1,
                libc::IPV6_TCLASS => s.tclass,
                libc::IPV6_UNICAST_HOPS => s.hops,
                IPV6_RECVHOPLIMIT => s.recvhoplimit as i32,
                IPV6_2292HOPLIMIT => s.hoplimit2292 as i32,
                _ => return Err(Errno::ENOPROTOOPT),
            })),
            SOL_RAW if self.raw && !self.v6() && name == ICMP_FILTER => {
                Ok(s.filter[0].to_le_bytes().to_vec())
            }
            libc::IPPROTO_ICMPV6 if self.raw && self.v6() && name == ICMPV6_FILTER => {
                Ok(s.filter.iter().flat_map(|w| w.to_le_bytes()).collect())
            }
            _ => Err(Errno::ENOPROTOOPT),
        }
    }

    fn setsockopt(&self, _t: &Task, level: i32, name: i32, val: &[u8]) -> KResult<()> {
        let mut g = lock(&self.st);
        let s = &mut *g;
        match level {
            libc::SOL_SOCKET => {
                if let Some(r) = s.opts.set(name, val) {
                    return r;
                }
                read_int_opt(val)?;
                match name {
                    // Recorded by Linux; our queues are fixed.
                    libc::SO_SNDBUF | libc::SO_RCVBUF => Ok(()),
                    _ => Err(Errno::ENOPROTOOPT),
                }
            }
            libc::IPPROTO_IP if !self.v6() => {
                let v = read_int_opt(val)?;
                match name {
                    libc::IP_TOS => s.tos = v & 0xff,
                    libc::IP_TTL if v == -1 => s.ttl = 64,
                    libc::IP_TTL if (1..=255).contains(&v) => s.ttl = v,
                    libc::IP_TTL => return Err(Errno::EINVAL),
                    _ => return Err(Errno::ENOPROTOOPT),
                }
                Ok(())
            }
            libc::IPPROTO_IPV6 if self.v6() => {
                let v = read_int_opt(val)?;
                match name {
                    libc::IPV6_TCLASS if (-1..=255).contains(&v) => s.tclass = v.max(0),
                    libc::IPV6_UNICAST_HOPS if (-1..=255).contains(&v) => {
                        s.hops = if v == -1 { 64 } else { v }
                    }
                    IPV6_RECVHOPLIMIT => s.recvhoplimit = v != 0,
                    IPV6_2292HOPLIMIT => s.hoplimit2292 = v != 0,
                    libc::IPV6_TCLASS | libc::IPV6_UNICAST_HOPS => return Err(Errno::EINVAL),
                    _ => return Err(Errno::ENOPROTOOPT),
                }
                Ok(())
            }
            SOL_RAW if self.raw && !self.v6() && name == ICMP_FILTER => {
                let b: [u8; 4] = val
                    .get(..4)
                    .and_then(|b| b.try_into().ok())
                    .ok_or(Errno::EINVAL)?;
                s.filter[0] = u32::from_le_bytes(b);
                Ok(())
            }
            SOL_RAW if self.raw && self.v6() && name == IPV6_CHECKSUM => {
                // rawv6: the offset must be even; ICMPv6 keeps its own.
                let v = read_int_opt(val)?;
                if v > 0 && v & 1 != 0 {
                    return Err(Errno::EINVAL);
                }
                Ok(())
            }
            libc::IPPROTO_ICMPV6 if self.raw && self.v6() && name == ICMPV6_FILTER => {
                // Linux takes up to 32 bytes; a shorter value sets a prefix.
                let mut f = [0u32; 8];
                for (i, c) in val.chunks(4).take(8).enumerate() {
                    let mut w = [0u8; 4];
                    w[..c.len()].copy_from_slice(c);
                    f[i] = u32::from_le_bytes(w);
                }
                s.filter = f;
                Ok(())
            }
            _ => Err(Errno::ENOPROTOOPT),
        }
    }
}

impl FileOps for IcmpSocket {
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
            libc::FIONREAD => {
                let s = lock(&self.st);
                stack().peek(|n| self.skip_unwanted(&s, n)).unwrap_or(0)
            }
            libc::TIOCOUTQ => 0,
            _ => return crate::net::iface::ioctl(t, cmd, arg).unwrap_or(Err(Errno::ENOTTY)),
        };
        t.mm().write_u32(arg, n.min(i32::MAX as usize) as u32)?;
        Ok(0)
    }

    fn readiness(&self, mask: u32) -> u32 {
        let s = lock(&self.st);
        let mut r = POLLOUT | POLLWRNORM;
        if stack().peek(|n| self.skip_unwanted(&s, n)).is_some() {
            r |= POLLIN | POLLRDNORM;
        }
        if s.err != 0 {
            r |= POLLERR;
        }
        r & (mask | POLLERR)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icmp_checksum_verifies() {
        let mut m = vec![8, 0, 0, 0, 0x12, 0x34, 0, 1, b'h', b'i', b'!'];
        fill_icmp_checksum(
            &mut m,
            "127.0.0.1".parse().unwrap(),
            "127.0.0.1".parse().unwrap(),
        );
        assert_eq!(checksum(&[&m]), 0);
    }
}
