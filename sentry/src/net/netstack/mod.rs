//! The sentry's own TCP/IP stack for AF_INET/AF_INET6 sockets
//! (`--network=sandbox`, the default, and `--network=none`): one smoltcp
//! `Interface` on a loopback device holding 127.0.0.1/8 and ::1/128, so
//! guest traffic never reaches a host socket.
//!
//! One `Stack` per sandbox, created with the first inet socket. Its lock
//! guards the interface, the device, smoltcp's socket set, the port
//! tables and the listeners' pools. Every socket operation runs under
//! it and then *pumps* the stack: polls the interface until the loopback
//! device is empty, so a send, a connect or a close is carried through to
//! the receiving socket before the call returns. A timer thread
//! ("netstack") polls again when smoltcp asks to (retransmits,
//! keep-alives, TIME-WAIT), and operations wake it when they move that
//! time earlier.
//!
//! After each pump the stack compares every smoltcp socket's (state,
//! receive queue, send queue) with the last pump's and wakes the wait
//! queue of the guest socket watching it (`Watch`), so blocked calls,
//! poll and epoll see every change. It also records how a connection
//! ended (reset, refused) for SO_ERROR and the errno of the next call.
//!
//! Lock order: a guest socket's own state lock, then the stack lock, then
//! wait queues (notified only after the stack lock is dropped).
//!
//! Buffers are fixed when a smoltcp socket is created (`BUF_SIZE` each
//! way for TCP, `UDP_BUF_SIZE` for UDP): SO_RCVBUF/SO_SNDBUF report them,
//! and what a set asks as Linux would, but do not resize them.

pub mod icmp;
pub mod procnet;
pub mod tcp;
pub mod udp;

use crate::errno::{Errno, KResult};
use crate::fs::lock;
use crate::kernel::task::Task;
use crate::kernel::waiter::WaitQueue;
use crate::vfs::FileOps;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp::State as TcpState;
use smoltcp::socket::{tcp as stcp, Socket as AnySocket};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, IpEndpoint, IpListenEndpoint};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

/// Each TCP socket's receive and send buffer. Loopback throughput is
/// bound by how often sender and receiver must take turns: 1 MiB moved
/// 200 MB in one stream at ~3 GB/s where 256 KiB gave ~250 MB/s, for a
/// few MB more resident memory with 100 connections (pages are touched
/// only as data flows). smoltcp scales the window to match.
pub const BUF_SIZE: usize = 1024 * 1024;
/// The payload space of each of a UDP socket's queues (about Linux's
/// default receive buffer).
pub const UDP_BUF_SIZE: usize = 256 * 1024;
/// The loopback device's MTU: the largest IPv4 packet.
pub const MTU: usize = 65535;
/// net.ipv4.ip_local_port_range.
pub const EPHEMERAL: std::ops::RangeInclusive<u16> = 32768..=60999;
/// net.core.somaxconn: the largest listen backlog, and the most
/// connections a listener holds before accept.
pub const SOMAXCONN: usize = 4096;
/// The most smoltcp sockets a listener keeps in LISTEN. Each costs its
/// buffers, and the pool is refilled after every pump, so a few catch
/// every SYN; the accept queue itself may grow to SOMAXCONN.
const POOL_MAX: usize = 8;
/// How long a connection closed by the guest may linger in smoltcp
/// without progress before it is dropped.
const ORPHAN_TIMEOUT: Duration = Duration::from_secs(60);

pub const PROTO_TCP: usize = 0;
pub const PROTO_UDP: usize = 1;
/// Ping sockets' identifiers.
pub const PROTO_ICMP: usize = 2;

/// socket(AF_INET/AF_INET6, ty, proto) on the sandbox's stack.
pub fn new_socket(t: &Task, family: i32, ty: i32, proto: i32) -> KResult<Arc<dyn FileOps>> {
    match ty {
        libc::SOCK_STREAM => {
            if proto != 0 && proto != libc::IPPROTO_TCP {
                return Err(Errno::EPROTONOSUPPORT);
            }
            Ok(tcp::TcpSocket::new(t, family))
        }
        libc::SOCK_DGRAM if is_icmp(family, proto) => {
            Ok(icmp::IcmpSocket::create(t, family, false)?)
        }
        libc::SOCK_DGRAM => {
            if proto != 0 && proto != libc::IPPROTO_UDP {
                return Err(Errno::EPROTONOSUPPORT);
            }
            Ok(udp::UdpSocket::new(t, family))
        }
        // Raw sockets need CAP_NET_RAW first (inet_create), whatever the
        // protocol; ICMP is the one we serve.
        libc::SOCK_RAW if !t.creds().capable(crate::kernel::caps::CAP_NET_RAW) => Err(Errno::EPERM),
        libc::SOCK_RAW if is_icmp(family, proto) => Ok(icmp::IcmpSocket::create(t, family, true)?),
        libc::SOCK_RAW => Err(Errno::EPROTONOSUPPORT),
        _ => Err(Errno::ESOCKTNOSUPPORT),
    }
}

/// IPPROTO_ICMP for IPv4, IPPROTO_ICMPV6 for IPv6.
fn is_icmp(family: i32, proto: i32) -> bool {
    (family == libc::AF_INET && proto == libc::IPPROTO_ICMP)
        || (family == libc::AF_INET6 && proto == libc::IPPROTO_ICMPV6)
}

/// A unique id per guest socket: owner of port bindings and listeners.
pub fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The stack's device: a loopback queue (what the interface transmits to
/// one of our own addresses, it receives), plus, once the container's
/// interface was taken over, its Ethernet layer: packets to other
/// addresses leave through it, and frames arriving on it join the queue.
struct Loopback {
    queue: VecDeque<Vec<u8>>,
    eth: Option<super::link::Eth>,
    /// Arrival times (CLOCK_REALTIME ns) of the last STAMPS packets the
    /// stack took in, by the id smoltcp carries in their metadata
    /// (SO_TIMESTAMP).
    stamps: Vec<(u32, i64)>,
    next_id: u32,
}

/// How many arrival times are remembered: a datagram left unread behind
/// more than this many newer packets reports its reading time.
const STAMPS: usize = 4096;

fn realtime_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

impl Loopback {
    /// When the packet with metadata id `id` arrived.
    pub fn arrival(&self, id: u32) -> i64 {
        match self.stamps.get(id as usize % STAMPS) {
            Some(&(i, t)) if i == id && t != 0 => t,
            _ => realtime_ns(),
        }
    }
}

impl Loopback {
    /// Where an emitted packet goes: back in (ours) or out the interface.
    fn deliver(&mut self, p: Vec<u8>) {
        if let Some(eth) = &mut self.eth {
            if p.len() >= 20 && p[0] >> 4 == 4 {
                let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
                if eth.is_remote(dst) {
                    eth.output(p);
                    return;
                }
            }
            if p.len() >= 40 && p[0] >> 4 == 6 {
                let mut d = [0u8; 16];
                d.copy_from_slice(&p[24..40]);
                if eth.is_remote6(Ipv6Addr::from(d)) {
                    eth.output(p);
                    return;
                }
            }
        }
        self.queue.push_back(p);
    }
}

struct RxToken(Vec<u8>, u32);
struct TxToken<'a>(&'a mut Loopback);

impl smoltcp::phy::RxToken for RxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }

    fn meta(&self) -> smoltcp::phy::PacketMeta {
        let mut m = smoltcp::phy::PacketMeta::default();
        m.id = self.1;
        m
    }
}

impl smoltcp::phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut b = vec![0u8; len];
        let r = f(&mut b);
        self.0.deliver(b);
        r
    }
}

impl Device for Loopback {
    type RxToken<'a> = RxToken;
    type TxToken<'a> = TxToken<'a>;

    fn receive(
        &mut self,
        _now: smoltcp::time::Instant,
    ) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let p = self.queue.pop_front()?;
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        if self.stamps.len() < STAMPS {
            self.stamps.resize(STAMPS, (0, 0));
        }
        self.stamps[id as usize % STAMPS] = (id, realtime_ns());
        Some((RxToken(p, id), TxToken(self)))
    }

    fn transmit(&mut self, _now: smoltcp::time::Instant) -> Option<Self::TxToken<'_>> {
        Some(TxToken(self))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ip;
        c.max_transmission_unit = MTU;
        // Packets on loopback never leave memory: checksums would only
        // cost time. Ones leaving through the interface get theirs in
        // `link::Eth`; received ones were checked by the host kernel
        // (and may carry partial checksums from offload).
        c.checksum = ChecksumCapabilities::ignored();
        c
    }
}

/// A port in use: by a bound socket, a listener, or a connection.
#[derive(Clone, Debug)]
pub struct Binding {
    pub id: u64,
    /// As bound; unspecified for "any".
    pub ip: IpAddr,
    pub v6only: bool,
    /// SO_REUSEADDR.
    pub reuse: bool,
    /// SO_REUSEPORT: sockets that all set it share the port, listeners
    /// included (the first listener's pool takes the connections: no
    /// load balancing).
    pub reuseport: bool,
    pub listening: bool,
}

/// IPv4-mapped IPv6 addresses as IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

impl Binding {
    /// Whether packets to `ip` (canonical, specified) reach this binding.
    fn covers(&self, ip: IpAddr) -> bool {
        let mine = canonical(self.ip);
        if !mine.is_unspecified() {
            return mine == ip;
        }
        match (self.ip, ip) {
            (IpAddr::V4(_), ip) => ip.is_ipv4(),
            (IpAddr::V6(_), IpAddr::V6(_)) => true,
            (IpAddr::V6(m), IpAddr::V4(_)) => m.to_ipv4_mapped().is_some() || !self.v6only,
        }
    }

    fn overlaps(&self, o: &Binding) -> bool {
        let (a, b) = (canonical(self.ip), canonical(o.ip));
        match (a.is_unspecified(), b.is_unspecified()) {
            (false, false) => a == b,
            (true, false) => self.covers(b),
            (false, true) => o.covers(a),
            (true, true) => match (a, b) {
                (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => true,
                (IpAddr::V4(_), IpAddr::V6(_)) => !o.v6only,
                (IpAddr::V6(_), IpAddr::V4(_)) => !self.v6only,
            },
        }
    }
}

/// What the stack remembers of a smoltcp socket a guest socket watches.
struct Watch {
    queue: Weak<WaitQueue>,
    last: (u8, usize, usize),
    state: TcpState,
    /// How the connection ended, for the owner to report once.
    ended: Option<Errno>,
}

/// A listening guest socket's pool of smoltcp sockets: smoltcp serves
/// one connection per listening socket, so `pool` keeps `backlog + 1` of
/// them (at most POOL_MAX) in LISTEN, and each one a SYN took moves to
/// `embryos`, the accept queue. Unlike Linux, connections beyond the
/// backlog are queued rather than left to retry their SYN.
struct Listener {
    eps: Vec<IpListenEndpoint>,
    backlog: usize,
    pool: Vec<SocketHandle>,
    embryos: VecDeque<SocketHandle>,
    queue: Weak<WaitQueue>,
    nodelay: bool,
    keepalive: Option<Duration>,
}

pub struct Inner {
    pub iface: Interface,
    dev: Loopback,
    pub sockets: SocketSet<'static>,
    watch: HashMap<SocketHandle, Watch>,
    binds: [HashMap<u16, Vec<Binding>>; 3],
    next_port: [u16; 3],
    /// TCP sockets the guest closed, left to finish their FIN or RST.
    orphans: Vec<SocketHandle>,
    listeners: HashMap<u64, Listener>,
    epoch: std::time::Instant,
    /// When the timer thread will next poll (None: not planned).
    timer_at: Option<std::time::Instant>,
    kicked: bool,
}

pub struct Stack {
    inner: Mutex<Inner>,
    kick: Condvar,
}

/// The sandbox's stack, created (with its timer thread) on first use.
pub fn stack() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    static THREAD: OnceLock<()> = OnceLock::new();
    let s = STACK.get_or_init(Stack::new);
    THREAD.get_or_init(|| {
        let _ = std::thread::Builder::new()
            .name("netstack".into())
            .spawn(move || s.timer_loop());
    });
    s
}

fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

pub fn tcp_socket() -> stcp::Socket<'static> {
    let mut s = stcp::Socket::new(
        stcp::SocketBuffer::new(vec![0u8; BUF_SIZE]),
        stcp::SocketBuffer::new(vec![0u8; BUF_SIZE]),
    );
    // On loopback an ACK costs nothing and a delayed one stalls Nagle.
    s.set_ack_delay(None);
    s
}

impl Stack {
    fn new() -> Stack {
        let mut dev = Loopback {
            queue: VecDeque::new(),
            eth: None,
            stamps: Vec::new(),
            next_id: 0,
        };
        let mut cfg = Config::new(HardwareAddress::Ip);
        cfg.random_seed = random_seed();
        let epoch = std::time::Instant::now();
        let mut iface = Interface::new(cfg, &mut dev, smoltcp::time::Instant::from_micros(0));
        iface.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8));
            let _ = a.push(IpCidr::new(IpAddress::Ipv6(Ipv6Addr::LOCALHOST), 128));
        });
        let start = EPHEMERAL.start() + (random_seed() % 28232) as u16;
        Stack {
            inner: Mutex::new(Inner {
                iface,
                dev,
                sockets: SocketSet::new(Vec::new()),
                watch: HashMap::new(),
                binds: [HashMap::new(), HashMap::new(), HashMap::new()],
                next_port: [start, start, start],
                orphans: Vec::new(),
                listeners: HashMap::new(),
                epoch,
                timer_at: None,
                kicked: false,
            }),
            kick: Condvar::new(),
        }
    }

    /// Runs `f` under the stack lock, then carries its packets through
    /// and wakes whoever may now proceed.
    pub fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let mut g = lock(&self.inner);
        let r = f(&mut g);
        let wake = g.pump();
        let kick = g.plan_timer();
        drop(g);
        for q in wake {
            q.notify_all();
        }
        if kick {
            self.kick.notify_one();
        }
        r
    }

    /// Runs `f` under the stack lock without polling (readiness checks).
    pub fn peek<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        f(&mut lock(&self.inner))
    }

    fn timer_loop(&self) {
        let mut g: MutexGuard<'_, Inner> = lock(&self.inner);
        loop {
            let wake = g.pump();
            let at = g.poll_at();
            g.timer_at = at;
            g.kicked = false;
            drop(g);
            for q in wake {
                q.notify_all();
            }
            g = lock(&self.inner);
            while !g.kicked {
                let now2 = std::time::Instant::now();
                let wait = match g.timer_at {
                    Some(at) if at <= now2 => break,
                    Some(at) => at - now2,
                    None => Duration::from_secs(3600),
                };
                g = self
                    .kick
                    .wait_timeout(g, wait)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
        }
    }
}

fn tcp_state_code(s: TcpState) -> u8 {
    match s {
        TcpState::Closed => 0,
        TcpState::Listen => 1,
        TcpState::SynSent => 2,
        TcpState::SynReceived => 3,
        TcpState::Established => 4,
        TcpState::FinWait1 => 5,
        TcpState::FinWait2 => 6,
        TcpState::CloseWait => 7,
        TcpState::Closing => 8,
        TcpState::LastAck => 9,
        TcpState::TimeWait => 10,
    }
}

/// How a connection that went from `from` to CLOSED ended, as Linux's
/// tcp_reset reports it (None: an orderly close).
fn end_errno(from: TcpState) -> Option<Errno> {
    match from {
        TcpState::SynSent => Some(Errno::ECONNREFUSED),
        TcpState::CloseWait => Some(Errno::EPIPE),
        TcpState::SynReceived | TcpState::Established | TcpState::FinWait1 | TcpState::FinWait2 => {
            Some(Errno::ECONNRESET)
        }
        _ => None,
    }
}

/// States in which the peer's FIN has arrived.
pub fn fin_received(s: TcpState) -> bool {
    matches!(
        s,
        TcpState::CloseWait | TcpState::LastAck | TcpState::Closing | TcpState::TimeWait
    )
}

pub fn to_endpoint(a: SocketAddr) -> IpEndpoint {
    IpEndpoint::new(IpAddress::from(canonical(a.ip())), a.port())
}

pub fn from_endpoint(e: IpEndpoint) -> SocketAddr {
    SocketAddr::new(IpAddr::from(e.addr), e.port)
}

/// The address a destination really is: the unspecified address means
/// this host (as on Linux), v4-mapped means IPv4. Reachable are our
/// loopback addresses and, once the container's interface was taken
/// over, IPv4 addresses on its subnet or (with a default route) any
/// (ENETUNREACH otherwise).
pub fn route(ip: IpAddr) -> KResult<IpAddr> {
    let ip = canonical(ip);
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() || v4 == Ipv4Addr::LOCALHOST => {
            Ok(IpAddr::V4(Ipv4Addr::LOCALHOST))
        }
        IpAddr::V6(v6) if v6.is_unspecified() || v6 == Ipv6Addr::LOCALHOST => {
            Ok(IpAddr::V6(Ipv6Addr::LOCALHOST))
        }
        IpAddr::V4(v4) if !v4.is_loopback() => match super::link::configured() {
            Some(c) if v4 == c.ip || c.in_subnet(v4) || c.gateway.is_some() => Ok(ip),
            _ => Err(Errno::ENETUNREACH),
        },
        IpAddr::V6(v6) if !v6.is_loopback() => match super::link::configured() {
            Some(c) if c.has_ip6(v6) || c.routes6(v6) => Ok(ip),
            _ => Err(Errno::ENETUNREACH),
        },
        _ => Err(Errno::ENETUNREACH),
    }
}

/// The source address a socket not bound to one sends to `dst` from.
pub fn source_for(dst: IpAddr) -> Option<IpAddr> {
    match route(dst).ok()? {
        IpAddr::V4(v4) if !v4.is_loopback() => super::link::configured().map(|c| IpAddr::V4(c.ip)),
        IpAddr::V4(_) => Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        IpAddr::V6(v6) if !v6.is_loopback() => {
            let c = super::link::configured()?;
            if c.has_ip6(v6) {
                return Some(IpAddr::V6(v6));
            }
            c.source6(v6).map(IpAddr::V6)
        }
        IpAddr::V6(_) => Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
    }
}

/// The index of the interface a packet from `src` arrived on: loopback
/// (1) for our own addresses, else the container's interface.
pub fn ifindex_from(src: IpAddr) -> i32 {
    let src = canonical(src);
    if src.is_loopback() || (bindable(src) && !src.is_unspecified()) {
        1
    } else {
        super::link::configured().map_or(1, |c| super::iface::ethernet(&c).index as i32)
    }
}

/// Whether `ip` may be bound here: unspecified or one of our addresses.
pub fn bindable(ip: IpAddr) -> bool {
    let ip = canonical(ip);
    ip.is_unspecified()
        || ip == IpAddr::V4(Ipv4Addr::LOCALHOST)
        || ip == Ipv6Addr::LOCALHOST
        || super::link::configured().is_some_and(|c| match ip {
            IpAddr::V4(v4) => v4 == c.ip,
            IpAddr::V6(v6) => c.has_ip6(v6),
        })
}

/// The smoltcp endpoint a UDP socket bound to `ip` receives on. With
/// loopback only, "any" of one family is that family's loopback address,
/// and a dual-stack "::" is both; with the container's interface, IPv4
/// "any" is any address (smoltcp's endpoints name one address or all).
pub fn listen_addr(ip: IpAddr, v6only: bool) -> Option<IpAddress> {
    let ip = canonical(ip);
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => match super::link::configured() {
            Some(_) => None,
            None => Some(IpAddress::v4(127, 0, 0, 1)),
        },
        // With IPv6 on the interface, a v6-only "::" is every address
        // (smoltcp cannot say "any IPv6"; IPv4 reaches it too).
        IpAddr::V6(v6) if v6.is_unspecified() => match super::link::configured() {
            Some(c) if !c.ip6.is_empty() => None,
            _ => v6only.then_some(IpAddress::Ipv6(Ipv6Addr::LOCALHOST)),
        },
        ip => Some(IpAddress::from(ip)),
    }
}

/// The smoltcp endpoints a TCP listener bound to `ip` listens on: IPv4
/// "any" is each of our IPv4 addresses, so it never takes IPv6
/// connections.
pub fn listen_addrs(ip: IpAddr, v6only: bool) -> Vec<Option<IpAddress>> {
    match canonical(ip) {
        IpAddr::V4(v4) if v4.is_unspecified() => {
            let mut v = vec![Some(IpAddress::v4(127, 0, 0, 1))];
            if let Some(c) = super::link::configured() {
                v.push(Some(IpAddress::Ipv4(c.ip)));
            }
            v
        }
        _ => vec![listen_addr(ip, v6only)],
    }
}

/// Gives the stack the container's interface (`link::take_interfaces`):
/// its address (first, so it is the source for off-link destinations),
/// the default route, and a thread that feeds it the frames arriving.
pub fn attach(cfg: super::link::LinkConfig, sock: super::link::PacketSocket) -> anyhow::Result<()> {
    if !super::link::set_configured(cfg.clone()) {
        anyhow::bail!("only one network interface is supported");
    }
    let sock = Arc::new(sock);
    let s = stack();
    s.with(|n| n.attach_eth(cfg.clone(), Box::new(sock.clone())));
    std::thread::Builder::new()
        .name("netstack-rx".into())
        .spawn(move || {
            let mut buf = vec![0u8; 65536 + 64];
            loop {
                sock.wait();
                let got = s.with(|n| {
                    // A bounded batch, so guests get the lock between.
                    let mut got = 0;
                    while got < 64 {
                        let Some(k) = sock.recv(&mut buf) else {
                            break;
                        };
                        n.ingress(&buf[..k]);
                        got += 1;
                    }
                    got
                });
                // Woken with nothing to read (an error was reported, the
                // interface went away): do not spin.
                if got == 0 {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        })
        .map_err(|e| anyhow::anyhow!("starting the netstack-rx thread: {e}"))?;
    Ok(())
}

impl Inner {
    /// Adds the interface's address (first, so it is the source for
    /// off-link destinations), its default route, and its Ethernet layer.
    fn attach_eth(&mut self, cfg: super::link::LinkConfig, sink: Box<dyn super::link::FrameSink>) {
        let ip = IpCidr::new(IpAddress::Ipv4(cfg.ip), cfg.prefix);
        self.iface.update_ip_addrs(|a| {
            let old: Vec<IpCidr> = a.iter().copied().collect();
            a.clear();
            let _ = a.push(ip);
            for c in old {
                let _ = a.push(c);
            }
        });
        if let Some(gw) = cfg.gateway {
            let _ = self.iface.routes_mut().add_default_ipv4_route(gw);
        }
        self.iface.update_ip_addrs(|a| {
            for &(ip6, prefix) in &cfg.ip6 {
                if a.push(IpCidr::new(IpAddress::Ipv6(ip6), prefix)).is_err() {
                    tracing::warn!("network: no room for IPv6 address {ip6}");
                }
            }
        });
        if let Some(gw) = cfg.gateway6 {
            let _ = self.iface.routes_mut().add_default_ipv6_route(gw);
        }
        let mut eth = super::link::Eth::new(cfg, sink);
        eth.prime();
        self.dev.eth = Some(eth);
    }

    /// One frame from the interface: its IPv4 packet joins the device's
    /// queue (the caller's pump carries it in).
    fn ingress(&mut self, frame: &[u8]) {
        if let Some(eth) = &mut self.dev.eth {
            if let Some(p) = eth.input(frame) {
                self.dev.queue.push_back(p);
            }
        }
    }

    /// When the packet smoltcp tagged with `id` arrived (ns since 1970).
    pub fn arrival(&self, id: u32) -> i64 {
        self.dev.arrival(id)
    }

    pub fn now(&self) -> smoltcp::time::Instant {
        smoltcp::time::Instant::from_micros(self.epoch.elapsed().as_micros() as i64)
    }

    fn poll_at(&mut self) -> Option<std::time::Instant> {
        let now = self.now();
        let d = self.iface.poll_delay(now, &self.sockets)?;
        Some(std::time::Instant::now() + Duration::from_micros(d.total_micros()))
    }

    /// After an operation: whether the timer thread must wake earlier.
    fn plan_timer(&mut self) -> bool {
        let Some(at) = self.poll_at() else {
            return false;
        };
        if self.timer_at.is_some_and(|t| t <= at) {
            return false;
        }
        self.timer_at = Some(at);
        self.kicked = true;
        true
    }

    /// Polls until the loopback device is drained, refills listeners,
    /// drops finished orphans; returns the wait queues to wake.
    fn pump(&mut self) -> Vec<Arc<WaitQueue>> {
        let now = self.now();
        // Each round's ingress may answer with more packets (ACKs,
        // window updates); a bound keeps a bug from spinning forever.
        for _ in 0..100_000 {
            self.iface.poll(now, &mut self.dev, &mut self.sockets);
            let mut more = !self.dev.queue.is_empty();
            // Data for a socket the guest closed is answered with RST, as
            // Linux does: the writer learns nobody will read it.
            for i in 0..self.orphans.len() {
                let k = self.tcp(self.orphans[i]);
                if k.recv_queue() > 0 && k.state() != TcpState::Closed {
                    k.abort();
                    more = true;
                }
            }
            if !more {
                break;
            }
        }
        self.refill_listeners();
        self.reap_orphans();
        self.changes()
    }

    fn changes(&mut self) -> Vec<Arc<WaitQueue>> {
        let mut wake: Vec<Arc<WaitQueue>> = Vec::new();
        for (h, s) in self.sockets.iter() {
            let Some(w) = self.watch.get_mut(&h) else {
                continue;
            };
            let now = match s {
                AnySocket::Tcp(t) => {
                    let st = t.state();
                    if st != w.state {
                        if st == TcpState::Closed && w.ended.is_none() {
                            w.ended = end_errno(w.state);
                        }
                        w.state = st;
                    }
                    (tcp_state_code(st), t.recv_queue(), t.send_queue())
                }
                AnySocket::Udp(u) => (0, u.recv_queue(), u.send_queue()),
                AnySocket::Raw(r) => (0, r.recv_queue(), r.send_queue()),
                #[allow(unreachable_patterns)]
                _ => continue,
            };
            if now != w.last {
                w.last = now;
                if let Some(q) = w.queue.upgrade() {
                    if !wake.iter().any(|x| Arc::ptr_eq(x, &q)) {
                        wake.push(q);
                    }
                }
            }
        }
        wake
    }

    /// Tells the stack that `q` watches socket `h`.
    pub fn watch(&mut self, h: SocketHandle, q: &Arc<WaitQueue>) {
        let (state, last) = match self.sockets.iter().find(|(x, _)| *x == h) {
            Some((_, AnySocket::Tcp(t))) => (
                t.state(),
                (tcp_state_code(t.state()), t.recv_queue(), t.send_queue()),
            ),
            Some((_, AnySocket::Udp(u))) => (TcpState::Closed, (0, u.recv_queue(), u.send_queue())),
            Some((_, AnySocket::Raw(r))) => (TcpState::Closed, (0, r.recv_queue(), r.send_queue())),
            _ => (TcpState::Closed, (0, 0, 0)),
        };
        let ended = self.watch.get(&h).and_then(|w| w.ended);
        self.watch.insert(
            h,
            Watch {
                queue: Arc::downgrade(q),
                last,
                state,
                ended,
            },
        );
    }

    /// How the connection on `h` ended, once.
    pub fn take_ended(&mut self, h: SocketHandle) -> Option<Errno> {
        self.watch.get_mut(&h).and_then(|w| w.ended.take())
    }

    pub fn tcp(&mut self, h: SocketHandle) -> &mut stcp::Socket<'static> {
        self.sockets.get_mut::<stcp::Socket>(h)
    }

    pub fn udp(&mut self, h: SocketHandle) -> &mut smoltcp::socket::udp::Socket<'static> {
        self.sockets.get_mut::<smoltcp::socket::udp::Socket>(h)
    }

    /// /proc/net/tcp rows of connections no guest socket holds: waiting
    /// in an accept queue, or closed by the guest and finishing.
    pub fn unowned_tcp_rows(&mut self) -> Vec<procnet::ProcRow> {
        let mut hs: Vec<SocketHandle> = self
            .listeners
            .values()
            .flat_map(|l| l.embryos.iter().copied())
            .collect();
        hs.extend(self.orphans.iter().copied());
        let mut v = Vec::new();
        for h in hs {
            let k = self.tcp(h);
            let (Some(l), Some(r)) = (k.local_endpoint(), k.remote_endpoint()) else {
                continue;
            };
            if matches!(k.state(), TcpState::Closed | TcpState::Listen) {
                continue;
            }
            let (local, remote) = (from_endpoint(l), from_endpoint(r));
            v.push(procnet::ProcRow {
                v6: local.is_ipv6(),
                local,
                remote,
                state: procnet::linux_state(k.state()),
                tx_queue: k.send_queue(),
                rx_queue: k.recv_queue(),
                uid: 0,
                ino: 0,
            });
        }
        v
    }

    pub fn raw(&mut self, h: SocketHandle) -> &mut smoltcp::socket::raw::Socket<'static> {
        self.sockets.get_mut::<smoltcp::socket::raw::Socket>(h)
    }

    /// Hands a TCP socket the guest closed to the stack: it finishes its
    /// FIN (or RST when `abort`) and goes when closed.
    pub fn orphan_tcp(&mut self, h: SocketHandle, abort: bool) {
        self.watch.remove(&h);
        let s = self.tcp(h);
        if abort {
            s.abort();
        } else {
            s.close();
        }
        s.set_timeout(Some(smoltcp::time::Duration::from_micros(
            ORPHAN_TIMEOUT.as_micros() as u64,
        )));
        self.orphans.push(h);
    }

    /// Drops a socket at once (nothing left to send).
    pub fn remove(&mut self, h: SocketHandle) {
        self.watch.remove(&h);
        self.sockets.remove(h);
    }

    fn reap_orphans(&mut self) {
        let mut i = 0;
        while i < self.orphans.len() {
            let h = self.orphans[i];
            // TIME-WAIT only guards against lost packets; a loopback
            // that just drained lost none.
            if matches!(self.tcp(h).state(), TcpState::Closed | TcpState::TimeWait) {
                self.orphans.swap_remove(i);
                self.sockets.remove(h);
            } else {
                i += 1;
            }
        }
    }

    fn port_busy(&mut self, proto: usize, port: u16) -> bool {
        if self.binds[proto].get(&port).is_some_and(|v| !v.is_empty()) {
            return true;
        }
        if proto == PROTO_TCP {
            let orphans = self.orphans.clone();
            for h in orphans {
                let s = self.tcp(h);
                if s.local_endpoint().is_some_and(|e| e.port == port)
                    || s.listen_endpoint().port == port
                {
                    return true;
                }
            }
        }
        false
    }

    /// Reserves `b` on `port` (0: an ephemeral port). EADDRINUSE as
    /// Linux: overlapping addresses conflict unless both sides set
    /// SO_REUSEADDR and (TCP) the other is not listening.
    pub fn bind(&mut self, proto: usize, b: Binding, port: u16) -> KResult<u16> {
        let port = if port == 0 {
            let span = (EPHEMERAL.end() - EPHEMERAL.start()) as u32 + 1;
            let mut found = None;
            for _ in 0..span {
                let p = self.next_port[proto];
                self.next_port[proto] = if p >= *EPHEMERAL.end() {
                    *EPHEMERAL.start()
                } else {
                    p + 1
                };
                if !self.port_busy(proto, p) {
                    found = Some(p);
                    break;
                }
            }
            found.ok_or(Errno::EADDRINUSE)?
        } else {
            if let Some(v) = self.binds[proto].get(&port) {
                for o in v {
                    if o.id == b.id || !o.overlaps(&b) {
                        continue;
                    }
                    let shared = (b.reuse && o.reuse && (proto == PROTO_UDP || !o.listening))
                        || (b.reuseport && o.reuseport);
                    if !shared {
                        return Err(Errno::EADDRINUSE);
                    }
                }
            }
            port
        };
        self.binds[proto].entry(port).or_default().push(b);
        Ok(port)
    }

    /// Records a port use that needs no check (an accepted connection
    /// shares its listener's port).
    pub fn add_binding(&mut self, proto: usize, b: Binding, port: u16) {
        self.binds[proto].entry(port).or_default().push(b);
    }

    /// What closing a datagram socket (UDP, ICMP) of protocol `proto`
    /// gives back: its smoltcp socket `h` and its port binding `bound`.
    pub fn release(
        &mut self,
        proto: usize,
        id: u64,
        h: Option<SocketHandle>,
        bound: Option<SocketAddr>,
    ) {
        if let Some(h) = h {
            self.remove(h);
        }
        if let Some(b) = bound {
            self.unbind(proto, id, b.port());
        }
    }

    pub fn unbind(&mut self, proto: usize, id: u64, port: u16) {
        if let Some(v) = self.binds[proto].get_mut(&port) {
            v.retain(|b| b.id != id);
            if v.is_empty() {
                self.binds[proto].remove(&port);
            }
        }
    }

    /// listen(): EADDRINUSE if another listener shares the port.
    pub fn set_listening(&mut self, id: u64, port: u16) -> KResult<()> {
        let v = self.binds[PROTO_TCP].get_mut(&port).ok_or(Errno::EINVAL)?;
        let me = v
            .iter()
            .find(|b| b.id == id)
            .cloned()
            .ok_or(Errno::EINVAL)?;
        if v.iter()
            .any(|o| o.id != id && o.listening && o.overlaps(&me) && !(o.reuseport && me.reuseport))
        {
            return Err(Errno::EADDRINUSE);
        }
        for b in v.iter_mut().filter(|b| b.id == id) {
            b.listening = true;
        }
        Ok(())
    }

    /// A listener that stopped keeps its port as a plain binding.
    pub fn set_not_listening(&mut self, id: u64) {
        for v in self.binds[PROTO_TCP].values_mut() {
            for b in v.iter_mut().filter(|b| b.id == id) {
                b.listening = false;
            }
        }
    }

    /// Starts (or resizes) the pool of listener `id`.
    pub fn listen(
        &mut self,
        id: u64,
        eps: Vec<IpListenEndpoint>,
        backlog: usize,
        q: &Arc<WaitQueue>,
        nodelay: bool,
        keepalive: Option<Duration>,
    ) {
        let l = self.listeners.entry(id).or_insert_with(|| Listener {
            eps,
            backlog,
            pool: Vec::new(),
            embryos: VecDeque::new(),
            queue: Arc::downgrade(q),
            nodelay,
            keepalive,
        });
        l.backlog = backlog;
        l.nodelay = nodelay;
        l.keepalive = keepalive;
        self.refill_listeners();
    }

    /// Closes listener `id`: connections not accepted are reset.
    pub fn unlisten(&mut self, id: u64) {
        let Some(l) = self.listeners.remove(&id) else {
            return;
        };
        for h in l.pool {
            self.remove(h);
        }
        for h in l.embryos {
            self.orphan_tcp(h, true);
        }
    }

    fn refill_listeners(&mut self) {
        let ids: Vec<u64> = self.listeners.keys().copied().collect();
        for id in ids {
            let Some(mut l) = self.listeners.remove(&id) else {
                continue;
            };
            // Sockets a SYN took join the accept queue in arrival order;
            // ones a RST sent back to LISTEN rejoin the pool; dead ones go.
            let mut i = 0;
            while i < l.pool.len() {
                if self.tcp(l.pool[i]).state() != TcpState::Listen {
                    l.embryos.push_back(l.pool.remove(i));
                } else {
                    i += 1;
                }
            }
            let mut keep = VecDeque::new();
            for h in std::mem::take(&mut l.embryos) {
                match self.tcp(h).state() {
                    TcpState::Listen => l.pool.push(h),
                    TcpState::Closed => self.remove(h),
                    _ => keep.push_back(h),
                }
            }
            l.embryos = keep;
            let want = (l.backlog + 1).min(POOL_MAX);
            for ep in l.eps.clone() {
                let mut have = 0;
                for &h in &l.pool {
                    if self.tcp(h).listen_endpoint() == ep {
                        have += 1;
                    }
                }
                while have < want && l.pool.len() + l.embryos.len() < SOMAXCONN {
                    let mut s = tcp_socket();
                    s.set_nagle_enabled(!l.nodelay);
                    s.set_keep_alive(
                        l.keepalive
                            .map(|d| smoltcp::time::Duration::from_micros(d.as_micros() as u64)),
                    );
                    if s.listen(ep).is_err() {
                        break;
                    }
                    let h = self.sockets.add(s);
                    if let Some(q) = l.queue.upgrade() {
                        self.watch(h, &q);
                    }
                    l.pool.push(h);
                    have += 1;
                }
            }
            self.listeners.insert(id, l);
        }
    }

    /// Whether listener `id` has a connection to accept.
    pub fn can_accept(&mut self, id: u64) -> bool {
        let Some(l) = self.listeners.get(&id) else {
            return false;
        };
        let hs: Vec<SocketHandle> = l.embryos.iter().copied().collect();
        hs.into_iter().any(|h| acceptable(self.tcp(h).state()))
    }

    /// How many connections listener `id` has ready to accept.
    pub fn accept_queue_len(&mut self, id: u64) -> usize {
        let Some(l) = self.listeners.get(&id) else {
            return 0;
        };
        let hs: Vec<SocketHandle> = l.embryos.iter().copied().collect();
        hs.into_iter()
            .filter(|&h| acceptable(self.tcp(h).state()))
            .count()
    }

    /// Takes listener `id`'s oldest established connection.
    pub fn accept(&mut self, id: u64) -> Option<SocketHandle> {
        let hs: Vec<SocketHandle> = self.listeners.get(&id)?.embryos.iter().copied().collect();
        let h = hs.into_iter().find(|&h| acceptable(self.tcp(h).state()))?;
        if let Some(l) = self.listeners.get_mut(&id) {
            l.embryos.retain(|&x| x != h);
        }
        Some(h)
    }
}

/// A connection accept() may hand out: the handshake is done.
fn acceptable(s: TcpState) -> bool {
    !matches!(
        s,
        TcpState::Listen | TcpState::SynReceived | TcpState::SynSent | TcpState::Closed
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_conflict_like_linux() {
        let b = |id, ip: &str, reuse| Binding {
            id,
            ip: ip.parse().unwrap(),
            v6only: false,
            reuse,
            reuseport: false,
            listening: false,
        };
        let any4 = b(1, "0.0.0.0", false);
        assert!(any4.overlaps(&b(2, "127.0.0.1", false)));
        assert!(any4.overlaps(&b(2, "::", false)));
        let mut v6o = b(2, "::", false);
        v6o.v6only = true;
        assert!(!any4.overlaps(&v6o));
        assert!(!b(1, "::1", false).overlaps(&b(2, "127.0.0.1", false)));
        assert!(b(1, "::ffff:127.0.0.1", false).overlaps(&b(2, "127.0.0.1", false)));
    }

    fn v4(port: u16) -> (IpAddress, u16) {
        (IpAddress::v4(127, 0, 0, 1), port)
    }

    #[test]
    fn tcp_connect_accept_transfer_and_close_without_a_guest() {
        let st = Stack::new();
        let q = Arc::new(WaitQueue::new());
        let b = Binding {
            id: 1,
            ip: "127.0.0.1".parse().unwrap(),
            v6only: false,
            reuse: false,
            reuseport: false,
            listening: false,
        };
        let (_port, client) = st.with(|n| {
            let port = n.bind(PROTO_TCP, b.clone(), 0).unwrap();
            assert!(EPHEMERAL.contains(&port));
            assert_eq!(n.bind(PROTO_TCP, b.clone(), port).map(|_| ()), Ok(()));
            let other = Binding { id: 2, ..b.clone() };
            assert_eq!(n.bind(PROTO_TCP, other, port), Err(Errno::EADDRINUSE));
            n.set_listening(1, port).unwrap();
            let ep = IpListenEndpoint {
                addr: Some(IpAddress::v4(127, 0, 0, 1)),
                port,
            };
            n.listen(1, vec![ep], 2, &q, false, None);
            let mut k = tcp_socket();
            k.connect(n.iface.context(), v4(port), 40000).unwrap();
            let h = n.sockets.add(k);
            n.watch(h, &q);
            (port, h)
        });
        // The handshake ran inside the pump of the call that started it.
        let server = st.with(|n| {
            assert_eq!(n.tcp(client).state(), TcpState::Established);
            assert!(n.can_accept(1));
            n.accept(1).unwrap()
        });
        assert!(st.peek(|n| !n.can_accept(1)));
        // The pool was refilled: backlog + 1 sockets still listen.
        assert_eq!(st.peek(|n| n.listeners[&1].pool.len()), 3);
        let data: Vec<u8> = (0..BUF_SIZE + 1000).map(|i| i as u8).collect();
        let mut got = Vec::new();
        let mut sent = 0;
        while got.len() < data.len() {
            sent += st.with(|n| n.tcp(client).send_slice(&data[sent..]).unwrap());
            let mut buf = vec![0u8; 100_000];
            let k = st.with(|n| n.tcp(server).recv_slice(&mut buf).unwrap());
            got.extend_from_slice(&buf[..k]);
        }
        assert_eq!(got, data);
        // The server closes: FIN to the client; data the client then
        // sends to the closed socket is answered with RST (EPIPE, as
        // Linux's tcp_reset reports it in CLOSE-WAIT).
        st.with(|n| n.orphan_tcp(server, false));
        assert_eq!(st.peek(|n| n.tcp(client).state()), TcpState::CloseWait);
        st.with(|n| n.tcp(client).send_slice(b"late").unwrap());
        assert_eq!(st.peek(|n| n.tcp(client).state()), TcpState::Closed);
        assert_eq!(st.peek(|n| n.take_ended(client)), Some(Errno::EPIPE));
        assert!(st.peek(|n| n.orphans.is_empty()));
        // Closing the listener takes its pool with it.
        st.with(|n| n.unlisten(1));
        assert_eq!(st.peek(|n| n.sockets.iter().count()), 1);
    }

    #[test]
    fn tcp_connect_to_a_closed_port_is_refused() {
        let st = Stack::new();
        let q = Arc::new(WaitQueue::new());
        let h = st.with(|n| {
            let mut k = tcp_socket();
            k.connect(n.iface.context(), v4(9), 40001).unwrap();
            let h = n.sockets.add(k);
            n.watch(h, &q);
            h
        });
        assert_eq!(st.peek(|n| n.tcp(h).state()), TcpState::Closed);
        assert_eq!(st.peek(|n| n.take_ended(h)), Some(Errno::ECONNREFUSED));
        assert_eq!(st.peek(|n| n.take_ended(h)), None);
    }

    #[test]
    fn udp_datagrams_carry_their_sender() {
        use smoltcp::socket::udp;
        let st = Stack::new();
        let sock = || {
            let buf =
                || udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 4], vec![0u8; 4096]);
            udp::Socket::new(buf(), buf())
        };
        let (a, b) = st.with(|n| {
            let mut a = sock();
            a.bind(v4(5000)).unwrap();
            let mut b = sock();
            b.bind(IpListenEndpoint {
                addr: None,
                port: 5001,
            })
            .unwrap();
            (n.sockets.add(a), n.sockets.add(b))
        });
        st.with(|n| {
            n.udp(b)
                .send_slice(b"ping", IpEndpoint::from(v4(5000)))
                .unwrap()
        });
        let (data, from) = st.peek(|n| {
            let (p, m) = n.udp(a).recv().unwrap();
            (p.to_vec(), m.endpoint)
        });
        assert_eq!(
            (&data[..], from),
            (&b"ping"[..], IpEndpoint::from(v4(5001)))
        );
    }

    /// One direction of a wire between two stacks' Ethernet layers: the
    /// frames a stack sent, until the test carries them over.
    type Wire = Arc<std::sync::Mutex<VecDeque<Vec<u8>>>>;
    struct Sink(Wire);
    impl crate::net::link::FrameSink for Sink {
        fn send(&mut self, f: &[u8]) {
            self.0.lock().unwrap().push_back(f.to_vec());
        }
    }

    /// The interface of test stack number `last` (10.0.0.last/24, MAC
    /// 02:00:00:00:00:last) with IPv6 addresses `ip6`.
    fn link_cfg(last: u8, ip6: Vec<(Ipv6Addr, u8)>) -> crate::net::link::LinkConfig {
        crate::net::link::LinkConfig {
            name: "eth0".into(),
            host_index: 2,
            mac: [2, 0, 0, 0, 0, last],
            mtu: 1500,
            txqlen: 0,
            ip: Ipv4Addr::new(10, 0, 0, last),
            prefix: 24,
            gateway: None,
            ip6,
            gateway6: None,
        }
    }

    /// Two stacks joined by their Ethernet layers (a wire of frames): ARP
    /// both ways, a handshake, data each way with valid checksums on the
    /// wire, and loopback still served beside it.
    #[test]
    fn tcp_between_two_stacks_over_ethernet_frames() {
        let cfg = |last: u8| link_cfg(last, Vec::new());
        let (a, b) = (Stack::new(), Stack::new());
        let (wa, wb): (Wire, Wire) = Default::default();
        a.with(|n| n.attach_eth(cfg(2), Box::new(Sink(wa.clone()))));
        b.with(|n| n.attach_eth(cfg(9), Box::new(Sink(wb.clone()))));
        // Carries frames until the wire is quiet; checks what is on it.
        let carry = || {
            for _ in 0..1000 {
                let fa: Vec<Vec<u8>> = wa.lock().unwrap().drain(..).collect();
                let fb: Vec<Vec<u8>> = wb.lock().unwrap().drain(..).collect();
                if fa.is_empty() && fb.is_empty() {
                    return;
                }
                for f in fa.iter().chain(fb.iter()) {
                    if f[12..14] == [8, 0] {
                        let ip = smoltcp::wire::Ipv4Packet::new_checked(&f[14..]).unwrap();
                        assert!(ip.verify_checksum());
                        let t = smoltcp::wire::TcpPacket::new_checked(ip.payload()).unwrap();
                        assert!(t.verify_checksum(
                            &IpAddress::Ipv4(ip.src_addr()),
                            &IpAddress::Ipv4(ip.dst_addr())
                        ));
                    }
                }
                b.with(|n| fa.iter().for_each(|f| n.ingress(f)));
                a.with(|n| fb.iter().for_each(|f| n.ingress(f)));
            }
            panic!("the wire never went quiet");
        };
        let q = Arc::new(WaitQueue::new());
        a.with(|n| {
            let eps = [IpAddress::v4(127, 0, 0, 1), IpAddress::v4(10, 0, 0, 2)]
                .map(|addr| IpListenEndpoint {
                    addr: Some(addr),
                    port: 80,
                })
                .to_vec();
            n.listen(1, eps, 4, &q, false, None);
        });
        let client = b.with(|n| {
            let mut k = tcp_socket();
            k.connect(n.iface.context(), (IpAddress::v4(10, 0, 0, 2), 80), 40000)
                .unwrap();
            let h = n.sockets.add(k);
            n.watch(h, &q);
            h
        });
        carry();
        assert_eq!(b.peek(|n| n.tcp(client).state()), TcpState::Established);
        let server = a.with(|n| n.accept(1)).expect("a connection to accept");
        assert_eq!(
            a.peek(|n| n.tcp(server).remote_endpoint()),
            Some(IpEndpoint::new(IpAddress::v4(10, 0, 0, 9), 40000))
        );
        let data: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let (mut sent, mut got) = (0, Vec::new());
        while got.len() < data.len() {
            sent += b.with(|n| n.tcp(client).send_slice(&data[sent..]).unwrap());
            carry();
            let mut buf = vec![0u8; 65536];
            let k = a.with(|n| n.tcp(server).recv_slice(&mut buf).unwrap());
            got.extend_from_slice(&buf[..k]);
            carry();
        }
        assert_eq!(got, data);
        a.with(|n| n.tcp(server).send_slice(b"back").unwrap());
        carry();
        let mut buf = [0u8; 16];
        let k = b.with(|n| n.tcp(client).recv_slice(&mut buf).unwrap());
        assert_eq!(&buf[..k], b"back");
        // Loopback on the same stack still works, and never hits the wire.
        let lo = a.with(|n| {
            let mut k = tcp_socket();
            k.connect(n.iface.context(), v4(80), 40001).unwrap();
            n.sockets.add(k)
        });
        assert_eq!(a.peek(|n| n.tcp(lo).state()), TcpState::Established);
        assert!(wa.lock().unwrap().is_empty());
    }

    /// IPv6 between two stacks over Ethernet frames: neighbor discovery
    /// both ways (solicited-node multicast, advertisements), a handshake
    /// and data with valid ICMPv6/TCP checksums on the wire, an echo
    /// request answered.
    #[test]
    fn ipv6_between_two_stacks_over_ethernet_frames() {
        let ip6 = |last: u16| Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, last);
        let cfg = |last: u8| {
            link_cfg(
                last,
                vec![
                    (ip6(u16::from(last)), 64),
                    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, u16::from(last)), 64),
                ],
            )
        };
        let (a, b) = (Stack::new(), Stack::new());
        let (wa, wb): (Wire, Wire) = Default::default();
        a.with(|n| n.attach_eth(cfg(2), Box::new(Sink(wa.clone()))));
        b.with(|n| n.attach_eth(cfg(9), Box::new(Sink(wb.clone()))));
        let kinds = std::cell::RefCell::new(Vec::new());
        let carry = || {
            for _ in 0..1000 {
                let fa: Vec<Vec<u8>> = wa.lock().unwrap().drain(..).collect();
                let fb: Vec<Vec<u8>> = wb.lock().unwrap().drain(..).collect();
                if fa.is_empty() && fb.is_empty() {
                    return;
                }
                for f in fa.iter().chain(fb.iter()) {
                    assert_eq!(f[12..14], [0x86, 0xdd]);
                    let ip = smoltcp::wire::Ipv6Packet::new_checked(&f[14..]).unwrap();
                    let (s, d) = (ip.src_addr(), ip.dst_addr());
                    match ip.next_header() {
                        smoltcp::wire::IpProtocol::Icmpv6 => {
                            let m = smoltcp::wire::Icmpv6Packet::new_checked(ip.payload()).unwrap();
                            assert!(m.verify_checksum(&s, &d));
                            kinds.borrow_mut().push(ip.payload()[0]);
                        }
                        smoltcp::wire::IpProtocol::Tcp => {
                            let t = smoltcp::wire::TcpPacket::new_checked(ip.payload()).unwrap();
                            assert!(t.verify_checksum(&IpAddress::Ipv6(s), &IpAddress::Ipv6(d)));
                        }
                        p => panic!("unexpected {p}"),
                    }
                }
                b.with(|n| fa.iter().for_each(|f| n.ingress(f)));
                a.with(|n| fb.iter().for_each(|f| n.ingress(f)));
            }
            panic!("the wire never went quiet");
        };
        let q = Arc::new(WaitQueue::new());
        a.with(|n| {
            let ep = IpListenEndpoint {
                addr: Some(IpAddress::Ipv6(ip6(2))),
                port: 80,
            };
            n.listen(1, vec![ep], 4, &q, false, None);
        });
        let client = b.with(|n| {
            let mut k = tcp_socket();
            k.connect(n.iface.context(), (IpAddress::Ipv6(ip6(2)), 80), 40000)
                .unwrap();
            let h = n.sockets.add(k);
            n.watch(h, &q);
            h
        });
        carry();
        assert_eq!(b.peek(|n| n.tcp(client).state()), TcpState::Established);
        // A solicitation and an advertisement each way at most.
        let k = kinds.borrow().clone();
        assert!(k.contains(&135) && k.contains(&136), "{k:?}");
        let server = a.with(|n| n.accept(1)).expect("a connection to accept");
        assert_eq!(
            a.peek(|n| n.tcp(server).remote_endpoint()),
            Some(IpEndpoint::new(IpAddress::Ipv6(ip6(9)), 40000))
        );
        b.with(|n| n.tcp(client).send_slice(b"over v6").unwrap());
        carry();
        let mut buf = [0u8; 16];
        let k = a.with(|n| n.tcp(server).recv_slice(&mut buf).unwrap());
        assert_eq!(&buf[..k], b"over v6");
    }

    #[test]
    fn routes_only_loopback() {
        assert_eq!(
            route("0.0.0.0".parse().unwrap()),
            Ok("127.0.0.1".parse().unwrap())
        );
        assert_eq!(
            route("::ffff:127.0.0.1".parse().unwrap()),
            Ok("127.0.0.1".parse().unwrap())
        );
        assert_eq!(route("10.0.0.1".parse().unwrap()), Err(Errno::ENETUNREACH));
        assert!(bindable("::".parse().unwrap()));
        assert!(!bindable("10.1.1.1".parse().unwrap()));
    }
}
