//! AF_NETLINK, NETLINK_ROUTE: enough of rtnetlink for getifaddrs(3),
//! if_nameindex(3) and `ip addr` / `ip link` / `ip route` to describe the
//! sandbox's interfaces (`net::iface`). Requests that would change them
//! (RTM_NEW*/DEL*/SET*) are refused with EOPNOTSUPP in an NLMSG_ERROR.
//!
//! With `--network=host`, the socket is a host NETLINK_ROUTE socket that
//! only ever carries RTM_GET* requests: the guest sees the host's
//! interfaces and cannot change them.

use super::iface::{self, Interface, Route};
use super::socket::{
    deadline, int_opt, read_int_opt, wait_errno, CommonOpts, RecvMsg, SendControl, Socket,
};
use crate::errno::{Errno, KResult};
use crate::fs::{lock, next_ino};
use crate::kernel::task::Task;
use crate::kernel::waiter::WaitQueue;
use crate::vfs::file::{POLLIN, POLLOUT, POLLRDNORM, POLLWRNORM};
use crate::vfs::{File, FileOps, Stat, Timespec};
use std::any::Any;
use std::collections::{HashSet, VecDeque};
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex, OnceLock};

const NLMSG_HDRLEN: usize = 16;
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_MULTI: u16 = 2;
const NLM_F_ACK: u16 = 4;
const NLM_F_DUMP: u16 = 0x300;
const RTM_BASE: u16 = 16;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;
const RTM_GETNEIGH: u16 = 30;
const IFLA_ADDRESS: u16 = 1;
const IFLA_BROADCAST: u16 = 2;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_QDISC: u16 = 6;
const IFLA_TXQLEN: u16 = 13;
const IFLA_OPERSTATE: u16 = 16;
const IFLA_LINKMODE: u16 = 17;
const IFLA_GROUP: u16 = 27;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_LABEL: u16 = 3;
const IFA_BROADCAST: u16 = 4;
const IFA_CACHEINFO: u16 = 6;
const IFA_FLAGS: u16 = 8;
const IFA_F_PERMANENT: u32 = 0x80;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_PREFSRC: u16 = 7;
const RTA_TABLE: u16 = 15;
const RTA_PREF: u16 = 20;
/// IF_OPER_UNKNOWN: what loopback reports.
const IF_OPER_UNKNOWN: u8 = 0;
const SOL_NETLINK: i32 = 270;
const NETLINK_EXT_ACK: i32 = 11;
const NETLINK_GET_STRICT_CHK: i32 = 12;
const NETLINK_CAP_ACK: i32 = 10;
const SOCKADDR_NL_LEN: usize = 12;
/// The most bytes of messages one datagram of a dump carries.
const DUMP_CHUNK: usize = 4096;
const DEFAULT_BUF: usize = 212992;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn nl_sockaddr(pid: u32, groups: u32) -> Vec<u8> {
    let mut b = vec![0u8; SOCKADDR_NL_LEN];
    b[..2].copy_from_slice(&(libc::AF_NETLINK as u16).to_le_bytes());
    b[4..8].copy_from_slice(&pid.to_le_bytes());
    b[8..12].copy_from_slice(&groups.to_le_bytes());
    b
}

/// (pid, groups) from a sockaddr_nl.
fn parse_sockaddr(sa: &[u8]) -> KResult<(u32, u32)> {
    if sa.len() < SOCKADDR_NL_LEN {
        return Err(Errno::EINVAL);
    }
    if u16::from_le_bytes([sa[0], sa[1]]) != libc::AF_NETLINK as u16 {
        return Err(Errno::EINVAL);
    }
    let w = |i: usize| u32::from_le_bytes([sa[i], sa[i + 1], sa[i + 2], sa[i + 3]]);
    Ok((w(4), w(8)))
}

/// Builds one netlink message.
struct Msg {
    buf: Vec<u8>,
}

impl Msg {
    fn new(ty: u16, flags: u16, seq: u32, pid: u32) -> Msg {
        let mut buf = vec![0u8; NLMSG_HDRLEN];
        buf[4..6].copy_from_slice(&ty.to_le_bytes());
        buf[6..8].copy_from_slice(&flags.to_le_bytes());
        buf[8..12].copy_from_slice(&seq.to_le_bytes());
        buf[12..16].copy_from_slice(&pid.to_le_bytes());
        Msg { buf }
    }

    fn bytes(&mut self, b: &[u8]) -> &mut Msg {
        self.buf.extend_from_slice(b);
        self.buf.resize(align4(self.buf.len()), 0);
        self
    }

    fn attr(&mut self, ty: u16, data: &[u8]) -> &mut Msg {
        let len = 4 + data.len();
        self.buf.extend_from_slice(&(len as u16).to_le_bytes());
        self.buf.extend_from_slice(&ty.to_le_bytes());
        self.bytes(data)
    }

    fn attr_str(&mut self, ty: u16, s: &str) -> &mut Msg {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.attr(ty, &v)
    }

    fn finish(mut self) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&len.to_le_bytes());
        self.buf
    }
}

fn ip_bytes(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn family_of(ip: &IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => libc::AF_INET as u8,
        IpAddr::V6(_) => libc::AF_INET6 as u8,
    }
}

fn link_msg(i: &Interface, flags: u16, seq: u32, pid: u32) -> Vec<u8> {
    let mut m = Msg::new(RTM_NEWLINK, flags, seq, pid);
    let mut ifi = [0u8; 16];
    ifi[2..4].copy_from_slice(&i.kind.to_le_bytes());
    ifi[4..8].copy_from_slice(&(i.index as i32).to_le_bytes());
    ifi[8..12].copy_from_slice(&i.flags.to_le_bytes());
    m.bytes(&ifi)
        .attr_str(IFLA_IFNAME, &i.name)
        .attr(IFLA_TXQLEN, &i.txqlen.to_le_bytes())
        .attr(IFLA_OPERSTATE, &[IF_OPER_UNKNOWN])
        .attr(IFLA_LINKMODE, &[0])
        .attr(IFLA_MTU, &i.mtu.to_le_bytes())
        .attr(IFLA_GROUP, &0u32.to_le_bytes())
        .attr_str(IFLA_QDISC, "noqueue")
        .attr(IFLA_ADDRESS, &i.mac)
        .attr(IFLA_BROADCAST, &i.broadcast);
    m.finish()
}

fn addr_msgs(i: &Interface, family: u8, flags: u16, seq: u32, pid: u32) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for a in &i.addrs {
        let fam = family_of(&a.ip);
        if family != 0 && family != fam {
            continue;
        }
        let mut m = Msg::new(RTM_NEWADDR, flags, seq, pid);
        let mut ifa = [0u8; 8];
        ifa[0] = fam;
        ifa[1] = a.prefix;
        ifa[2] = IFA_F_PERMANENT as u8;
        ifa[3] = a.scope;
        ifa[4..8].copy_from_slice(&i.index.to_le_bytes());
        m.bytes(&ifa).attr(IFA_ADDRESS, &ip_bytes(&a.ip));
        if fam == libc::AF_INET as u8 {
            m.attr(IFA_LOCAL, &ip_bytes(&a.ip));
            if let (IpAddr::V4(v4), true) = (a.ip, i.kind == super::iface::ARPHRD_ETHER) {
                if a.prefix < 31 {
                    let mask = if a.prefix == 0 {
                        0
                    } else {
                        u32::MAX << (32 - a.prefix as u32)
                    };
                    let b = std::net::Ipv4Addr::from(u32::from(v4) | !mask);
                    m.attr(IFA_BROADCAST, &b.octets());
                }
            }
            m.attr_str(IFA_LABEL, &i.name);
        }
        // ifa_cacheinfo: preferred and valid "forever", created/updated 0.
        let mut ci = [0u8; 16];
        ci[..8].copy_from_slice(&[0xff; 8]);
        m.attr(IFA_FLAGS, &IFA_F_PERMANENT.to_le_bytes())
            .attr(IFA_CACHEINFO, &ci);
        out.push(m.finish());
    }
    out
}

fn route_msg(r: &Route, flags: u16, seq: u32, pid: u32) -> Vec<u8> {
    let mut m = Msg::new(RTM_NEWROUTE, flags, seq, pid);
    let rt = [
        family_of(&r.dst),
        r.dst_len,
        0,
        0,
        r.table,
        r.protocol,
        r.scope,
        r.kind,
        0,
        0,
        0,
        0,
    ];
    m.bytes(&rt)
        .attr(RTA_TABLE, &(r.table as u32).to_le_bytes());
    // A default route carries no destination, as Linux sends it.
    if r.dst_len != 0 {
        m.attr(RTA_DST, &ip_bytes(&r.dst));
    }
    if let Some(p) = r.priority {
        m.attr(RTA_PRIORITY, &p.to_le_bytes());
    }
    if let Some(s) = &r.prefsrc {
        m.attr(RTA_PREFSRC, &ip_bytes(s));
    }
    if let Some(g) = &r.gateway {
        m.attr(RTA_GATEWAY, &ip_bytes(g));
    }
    m.attr(RTA_OIF, &r.oif.to_le_bytes());
    if matches!(r.dst, IpAddr::V6(_)) {
        // ICMPV6_ROUTER_PREF_MEDIUM
        m.attr(RTA_PREF, &[0]);
    }
    m.finish()
}

/// The attributes of a message body after a fixed header of `fixed`
/// bytes: (type, data) pairs.
fn attrs(body: &[u8], fixed: usize) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut off = align4(fixed);
    while off + 4 <= body.len() {
        let len = u16::from_le_bytes([body[off], body[off + 1]]) as usize;
        let ty = u16::from_le_bytes([body[off + 2], body[off + 3]]) & 0x3fff;
        if len < 4 || off + len > body.len() {
            break;
        }
        out.push((ty, &body[off + 4..off + len]));
        off += align4(len);
    }
    out
}

struct State {
    port: u32,
    groups: u32,
    /// Datagrams waiting to be read.
    recv: VecDeque<Vec<u8>>,
    rcvbuf: usize,
    sndbuf: usize,
    ext_ack: bool,
    strict: bool,
    cap_ack: bool,
    passcred: bool,
    opts: CommonOpts,
}

pub struct NetlinkSocket {
    ty: i32,
    ino: u64,
    uid: u32,
    gid: u32,
    ctime: Timespec,
    st: Mutex<State>,
    queue: WaitQueue,
    /// `--network=host`: the host socket requests go to.
    host: Option<OwnedFd>,
}

/// Port ids in use (Linux: per network namespace).
fn ports() -> &'static Mutex<HashSet<u32>> {
    static P: OnceLock<Mutex<HashSet<u32>>> = OnceLock::new();
    P.get_or_init(Default::default)
}

/// socket(AF_NETLINK, ty, proto).
pub fn new_socket(t: &Task, ty: i32, proto: i32) -> KResult<Arc<dyn FileOps>> {
    if !matches!(ty, libc::SOCK_RAW | libc::SOCK_DGRAM) {
        return Err(Errno::ESOCKTNOSUPPORT);
    }
    if proto != libc::NETLINK_ROUTE {
        return Err(Errno::EPROTONOSUPPORT);
    }
    let host = if super::network_mode() == super::NetworkMode::Host {
        // SAFETY: socket(2) with constant arguments; the fd is ours.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(Errno::last());
        }
        // SAFETY: fd is a fresh socket we own.
        Some(unsafe { OwnedFd::from_raw_fd(fd) })
    } else {
        None
    };
    let c = t.creds();
    Ok(Arc::new(NetlinkSocket {
        ty,
        ino: next_ino(),
        uid: c.fsuid,
        gid: c.fsgid,
        ctime: Timespec::now(),
        st: Mutex::new(State {
            port: 0,
            groups: 0,
            recv: VecDeque::new(),
            rcvbuf: DEFAULT_BUF,
            sndbuf: DEFAULT_BUF,
            ext_ack: false,
            strict: false,
            cap_ack: false,
            passcred: false,
            opts: CommonOpts::default(),
        }),
        queue: WaitQueue::new(),
        host,
    }))
}

impl NetlinkSocket {
    /// The port id, binding one (the thread group id first, as Linux
    /// does, then unique negative ones) if unbound.
    fn port(&self, t: &Task) -> u32 {
        let mut s = lock(&self.st);
        if s.port != 0 {
            return s.port;
        }
        let mut p = lock(ports());
        let mut id = t.tgid() as u32;
        let mut next = 0x8000_0000u32;
        while p.contains(&id) {
            next = next.wrapping_add(1);
            id = next;
        }
        p.insert(id);
        s.port = id;
        id
    }

    fn host_fd(&self) -> Option<i32> {
        self.host.as_ref().map(|f| f.as_raw_fd())
    }

    /// Answers one request message; pushes the reply datagrams.
    fn handle(&self, port: u32, msg: &[u8], out: &mut Vec<Vec<u8>>) {
        let ty = u16::from_le_bytes([msg[4], msg[5]]);
        let flags = u16::from_le_bytes([msg[6], msg[7]]);
        let seq = u32::from_le_bytes([msg[8], msg[9], msg[10], msg[11]]);
        let body = &msg[NLMSG_HDRLEN..];
        if flags & NLM_F_REQUEST == 0 || ty == NLMSG_NOOP || ty < RTM_BASE {
            return;
        }
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let family = body.first().copied().unwrap_or(0);
        let result: Result<Vec<Vec<u8>>, Errno> = match ty {
            RTM_GETLINK if dump => Ok(iface::interfaces()
                .iter()
                .map(|i| link_msg(i, NLM_F_MULTI, seq, port))
                .collect()),
            RTM_GETLINK => {
                let index = body
                    .get(4..8)
                    .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .unwrap_or(0);
                let name = attrs(body, 16)
                    .into_iter()
                    .find(|(t, _)| *t == IFLA_IFNAME)
                    .map(|(_, d)| d.split(|&c| c == 0).next().unwrap_or(&[]).to_vec());
                iface::interfaces()
                    .into_iter()
                    .find(|i| {
                        (index > 0 && i.index as i32 == index)
                            || name.as_deref() == Some(i.name.as_bytes())
                    })
                    .map(|i| vec![link_msg(&i, 0, seq, port)])
                    .ok_or(Errno::ENODEV)
            }
            RTM_GETADDR if dump => Ok(iface::interfaces()
                .iter()
                .flat_map(|i| addr_msgs(i, family, NLM_F_MULTI, seq, port))
                .collect()),
            RTM_GETROUTE if dump => Ok(iface::routes()
                .iter()
                .filter(|r| family == 0 || family_of(&r.dst) == family)
                .map(|r| route_msg(r, NLM_F_MULTI, seq, port))
                .collect()),
            // The loopback-only stack has no neighbours.
            RTM_GETNEIGH if dump => Ok(Vec::new()),
            _ => Err(Errno::EOPNOTSUPP),
        };
        match result {
            Ok(msgs) if dump => {
                let mut done = Msg::new(NLMSG_DONE, NLM_F_MULTI, seq, port);
                done.bytes(&0i32.to_le_bytes());
                let mut dgram = Vec::new();
                for m in msgs.into_iter().chain(std::iter::once(done.finish())) {
                    if !dgram.is_empty() && dgram.len() + m.len() > DUMP_CHUNK {
                        out.push(std::mem::take(&mut dgram));
                    }
                    dgram.extend_from_slice(&m);
                }
                out.push(dgram);
            }
            Ok(msgs) => {
                out.extend(msgs);
                if flags & NLM_F_ACK != 0 {
                    out.push(self.error_msg(port, msg, 0));
                }
            }
            Err(e) => out.push(self.error_msg(port, msg, e.0)),
        }
    }

    /// NLMSG_ERROR for `req`: the whole request after an error (unless
    /// NETLINK_CAP_ACK), only its header for an ack.
    fn error_msg(&self, port: u32, req: &[u8], errno: i32) -> Vec<u8> {
        let seq = u32::from_le_bytes([req[8], req[9], req[10], req[11]]);
        let cap = lock(&self.st).cap_ack;
        let mut m = Msg::new(NLMSG_ERROR, if errno == 0 { 0x100 } else { 0 }, seq, port);
        let mut body = (-errno).to_le_bytes().to_vec();
        if errno == 0 || cap {
            body.extend_from_slice(&req[..NLMSG_HDRLEN]);
        } else {
            body.extend_from_slice(req);
        }
        m.bytes(&body);
        m.finish()
    }

    /// --network=host: forwards GET requests only.
    fn host_send(&self, fd: i32, data: &[u8]) -> KResult<usize> {
        let mut off = 0;
        while off + NLMSG_HDRLEN <= data.len() {
            let len = u32::from_le_bytes([data[off], data[off + 1], data[off + 2], data[off + 3]])
                as usize;
            let ty = u16::from_le_bytes([data[off + 4], data[off + 5]]);
            if len < NLMSG_HDRLEN || off + len > data.len() {
                break;
            }
            if ty >= RTM_BASE && (ty - RTM_BASE) % 4 != 2 {
                return Err(Errno::EPERM);
            }
            off += align4(len);
        }
        let dst = nl_sockaddr(0, 0);
        // SAFETY: sendto from a live buffer to a 12-byte sockaddr_nl.
        let r = unsafe {
            libc::sendto(
                fd,
                data.as_ptr() as *const libc::c_void,
                data.len(),
                libc::MSG_NOSIGNAL,
                dst.as_ptr() as *const libc::sockaddr,
                dst.len() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(Errno::last());
        }
        Ok(r as usize)
    }

    fn try_recv(&self, buf: &mut [u8], peek: bool) -> Option<KResult<RecvMsg>> {
        if let Some(fd) = self.host_fd() {
            let mut flags = libc::MSG_DONTWAIT | libc::MSG_TRUNC;
            if peek {
                flags |= libc::MSG_PEEK;
            }
            // SAFETY: recv into a live buffer of buf.len() bytes.
            let r =
                unsafe { libc::recv(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), flags) };
            if r < 0 {
                let e = Errno::last();
                return if e == Errno::EAGAIN {
                    None
                } else {
                    Some(Err(e))
                };
            }
            let full = r as usize;
            return Some(Ok(RecvMsg {
                copied: full.min(buf.len()),
                full,
                addr: Some(nl_sockaddr(0, 0)),
                ..Default::default()
            }));
        }
        let mut s = lock(&self.st);
        let d = s.recv.front()?;
        let n = d.len().min(buf.len());
        buf[..n].copy_from_slice(&d[..n]);
        let full = d.len();
        if !peek {
            s.recv.pop_front();
        }
        Some(Ok(RecvMsg {
            copied: n,
            full,
            addr: Some(nl_sockaddr(0, 0)),
            ..Default::default()
        }))
    }
}

impl Drop for NetlinkSocket {
    fn drop(&mut self) {
        let port = self.st.get_mut().map(|s| s.port).unwrap_or(0);
        if port != 0 {
            lock(ports()).remove(&port);
        }
    }
}

impl Socket for NetlinkSocket {
    fn family(&self) -> i32 {
        libc::AF_NETLINK
    }

    fn sock_type(&self) -> i32 {
        self.ty
    }

    fn protocol(&self) -> i32 {
        libc::NETLINK_ROUTE
    }

    fn bind(&self, t: &Task, addr: &[u8]) -> KResult<()> {
        let (pid, groups) = parse_sockaddr(addr)?;
        if groups != 0 {
            // Multicast notifications never come: say so.
            return Err(Errno::EOPNOTSUPP);
        }
        if let Some(fd) = self.host_fd() {
            let sa = nl_sockaddr(pid, 0);
            // SAFETY: bind to a 12-byte sockaddr_nl we built.
            let r =
                unsafe { libc::bind(fd, sa.as_ptr() as *const libc::sockaddr, sa.len() as u32) };
            return if r < 0 { Err(Errno::last()) } else { Ok(()) };
        }
        if pid == 0 {
            self.port(t);
            return Ok(());
        }
        let mut s = lock(&self.st);
        if s.port == pid {
            return Ok(());
        }
        if s.port != 0 {
            return Err(Errno::EINVAL);
        }
        let mut p = lock(ports());
        if !p.insert(pid) {
            return Err(Errno::EADDRINUSE);
        }
        s.port = pid;
        s.groups = groups;
        Ok(())
    }

    fn listen(&self, _t: &Task, _backlog: i32) -> KResult<()> {
        Err(Errno::EOPNOTSUPP)
    }

    fn accept(&self, _t: &Task, _nonblock: bool) -> KResult<(Arc<dyn FileOps>, Vec<u8>)> {
        Err(Errno::EOPNOTSUPP)
    }

    fn connect(&self, t: &Task, addr: &[u8], _nonblock: bool) -> KResult<()> {
        let (pid, _) = parse_sockaddr(addr)?;
        if pid != 0 {
            // Only the kernel (port 0) answers here.
            return Err(Errno::ECONNREFUSED);
        }
        if self.host_fd().is_none() {
            self.port(t);
        }
        Ok(())
    }

    fn sockname(&self) -> KResult<Vec<u8>> {
        if let Some(fd) = self.host_fd() {
            let mut sa = [0u8; SOCKADDR_NL_LEN];
            let mut len = sa.len() as libc::socklen_t;
            // SAFETY: getsockname into a 12-byte buffer with its length.
            let r =
                unsafe { libc::getsockname(fd, sa.as_mut_ptr() as *mut libc::sockaddr, &mut len) };
            if r < 0 {
                return Err(Errno::last());
            }
            return Ok(sa.to_vec());
        }
        let s = lock(&self.st);
        Ok(nl_sockaddr(s.port, s.groups))
    }

    fn peername(&self) -> KResult<Vec<u8>> {
        Ok(nl_sockaddr(0, 0))
    }

    fn sendmsg(
        &self,
        t: &Task,
        data: &[u8],
        to: Option<&[u8]>,
        _control: SendControl,
        _flags: i32,
        _nonblock: bool,
    ) -> KResult<usize> {
        if let Some(sa) = to {
            let (pid, groups) = parse_sockaddr(sa)?;
            if pid != 0 || groups != 0 {
                return Err(Errno::EPERM);
            }
        }
        if let Some(fd) = self.host_fd() {
            return self.host_send(fd, data);
        }
        if data.len() > lock(&self.st).sndbuf {
            return Err(Errno::EMSGSIZE);
        }
        let port = self.port(t);
        let mut out = Vec::new();
        let mut off = 0;
        while off + NLMSG_HDRLEN <= data.len() {
            let len = u32::from_le_bytes([data[off], data[off + 1], data[off + 2], data[off + 3]])
                as usize;
            if len < NLMSG_HDRLEN || off + len > data.len() {
                break;
            }
            self.handle(port, &data[off..off + len], &mut out);
            off += align4(len);
        }
        if !out.is_empty() {
            let mut s = lock(&self.st);
            let queued: usize = s.recv.iter().map(Vec::len).sum();
            if queued > s.rcvbuf {
                // Linux drops the reply and reports ENOBUFS on the next
                // receive; refusing the request is the honest equivalent.
                return Err(Errno::ENOBUFS);
            }
            s.recv.extend(out);
            drop(s);
            self.queue.notify_all();
        }
        Ok(data.len())
    }

    fn recvmsg(&self, t: &Task, buf: &mut [u8], flags: i32, nonblock: bool) -> KResult<RecvMsg> {
        let peek = flags & libc::MSG_PEEK != 0;
        if let Some(r) = self.try_recv(buf, peek) {
            return r;
        }
        if nonblock {
            return Err(Errno::EAGAIN);
        }
        let timeo = lock(&self.st).opts.rcvtimeo;
        let host: Vec<(i32, i16)> = self
            .host_fd()
            .map(|fd| (fd, libc::POLLIN))
            .into_iter()
            .collect();
        t.block_until(&[&self.queue], &host, deadline(timeo), || {
            self.try_recv(buf, peek)
        })
        .map_err(|e| wait_errno(e, timeo))
    }

    fn shutdown(&self, _t: &Task, _how: i32) -> KResult<()> {
        Err(Errno::EOPNOTSUPP)
    }

    fn getsockopt(&self, _t: &Task, level: i32, name: i32, _len: usize) -> KResult<Vec<u8>> {
        let s = lock(&self.st);
        match level {
            libc::SOL_SOCKET => {
                if let Some(v) = s.opts.get(name) {
                    return Ok(v);
                }
                Ok(match name {
                    libc::SO_RCVBUF => int_opt(s.rcvbuf as i32),
                    libc::SO_SNDBUF => int_opt(s.sndbuf as i32),
                    libc::SO_PASSCRED => int_opt(s.passcred as i32),
                    libc::SO_ERROR => int_opt(0),
                    _ => return Err(Errno::ENOPROTOOPT),
                })
            }
            SOL_NETLINK => Ok(match name {
                NETLINK_EXT_ACK => int_opt(s.ext_ack as i32),
                NETLINK_GET_STRICT_CHK => int_opt(s.strict as i32),
                NETLINK_CAP_ACK => int_opt(s.cap_ack as i32),
                _ => return Err(Errno::ENOPROTOOPT),
            }),
            _ => Err(Errno::ENOPROTOOPT),
        }
    }

    fn setsockopt(&self, _t: &Task, level: i32, name: i32, val: &[u8]) -> KResult<()> {
        let mut s = lock(&self.st);
        match level {
            libc::SOL_SOCKET => {
                if let Some(r) = s.opts.set(name, val) {
                    return r;
                }
                let v = read_int_opt(val)?;
                match name {
                    libc::SO_RCVBUF | libc::SO_RCVBUFFORCE => {
                        s.rcvbuf = (v.max(0) as usize).min(DEFAULT_BUF) * 2
                    }
                    libc::SO_SNDBUF | libc::SO_SNDBUFFORCE => {
                        s.sndbuf = (v.max(0) as usize).min(DEFAULT_BUF) * 2
                    }
                    libc::SO_PASSCRED => s.passcred = v != 0,
                    _ => return Err(Errno::ENOPROTOOPT),
                }
            }
            SOL_NETLINK => {
                let v = read_int_opt(val)? != 0;
                match name {
                    NETLINK_EXT_ACK => s.ext_ack = v,
                    NETLINK_GET_STRICT_CHK => s.strict = v,
                    NETLINK_CAP_ACK => s.cap_ack = v,
                    _ => return Err(Errno::ENOPROTOOPT),
                }
            }
            _ => return Err(Errno::ENOPROTOOPT),
        }
        if let Some(fd) = self.host_fd() {
            if level == SOL_NETLINK {
                // SAFETY: setsockopt with a 4-byte value from `val`.
                unsafe {
                    libc::setsockopt(
                        fd,
                        level,
                        name,
                        val.as_ptr() as *const libc::c_void,
                        val.len().min(4) as u32,
                    )
                };
            }
        }
        Ok(())
    }
}

impl FileOps for NetlinkSocket {
    fn read(&self, t: &Task, f: &File, buf: &mut [u8], _off: u64) -> KResult<usize> {
        Ok(self.recvmsg(t, buf, 0, f.nonblocking())?.copied)
    }

    fn write(&self, t: &Task, f: &File, buf: &[u8], _off: u64) -> KResult<usize> {
        self.sendmsg(t, buf, None, SendControl::default(), 0, f.nonblocking())
    }

    fn stat(&self) -> KResult<Stat> {
        Ok(crate::net::socket::socket_stat(
            self.ino, self.uid, self.gid, self.ctime,
        ))
    }

    fn readiness(&self, mask: u32) -> u32 {
        let mut r = POLLOUT | POLLWRNORM;
        if let Some(fd) = self.host_fd() {
            let mut p = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one live pollfd, zero timeout.
            if unsafe { libc::poll(&mut p, 1, 0) } > 0 && p.revents & libc::POLLIN != 0 {
                r |= POLLIN | POLLRDNORM;
            }
        } else if !lock(&self.st).recv.is_empty() {
            r |= POLLIN | POLLRDNORM;
        }
        r & mask
    }

    fn queue(&self) -> Option<&WaitQueue> {
        Some(&self.queue)
    }

    fn host_fd(&self) -> Option<std::os::fd::RawFd> {
        NetlinkSocket::host_fd(self)
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
    fn link_message_layout() {
        let m = link_msg(&iface::loopback(), NLM_F_MULTI, 7, 42);
        assert_eq!(
            u32::from_le_bytes([m[0], m[1], m[2], m[3]]) as usize,
            m.len()
        );
        assert_eq!(u16::from_le_bytes([m[4], m[5]]), RTM_NEWLINK);
        assert_eq!(m.len() % 4, 0);
        let a = attrs(&m[NLMSG_HDRLEN..], 16);
        let name = a.iter().find(|(t, _)| *t == IFLA_IFNAME).map(|(_, d)| *d);
        assert_eq!(name, Some(&b"lo\0"[..]));
        let mtu = a
            .iter()
            .find(|(t, _)| *t == IFLA_MTU)
            .map(|(_, d)| d.to_vec());
        assert_eq!(mtu, Some(65536u32.to_le_bytes().to_vec()));
    }

    #[test]
    fn addresses_filter_by_family() {
        let lo = iface::loopback();
        assert_eq!(addr_msgs(&lo, 0, 0, 1, 1).len(), 2);
        assert_eq!(addr_msgs(&lo, libc::AF_INET as u8, 0, 1, 1).len(), 1);
        assert_eq!(addr_msgs(&lo, libc::AF_INET6 as u8, 0, 1, 1).len(), 1);
    }
}
