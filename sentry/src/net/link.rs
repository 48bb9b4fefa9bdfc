//! The container's network interface, taken over by the sentry's stack
//! (`--network=sandbox` with a network namespace from the OCI spec), as
//! gVisor does it: at start, in the sandbox's network namespace, read each
//! Ethernet interface's MAC, MTU, IPv4 address and the default route,
//! remove the address from the host's interface (so the host kernel no
//! longer answers for it: it would reset the guest's connections), and
//! open an AF_PACKET socket on it. From then on the sentry's stack is the
//! only one using that address: `Eth` below is its Ethernet layer (ARP,
//! framing, checksums), the netstack carries IP packets.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

static LINK: std::sync::OnceLock<LinkConfig> = std::sync::OnceLock::new();

/// The interface the stack took over, if any (set once, before the guest
/// runs).
pub fn configured() -> Option<&'static LinkConfig> {
    LINK.get()
}

pub(crate) fn set_configured(c: LinkConfig) -> bool {
    LINK.set(c).is_ok()
}

/// The taken interface's counters for /proc/net/dev: received packets and
/// bytes (frames for us), sent packets and bytes.
pub static RX_PACKETS: AtomicU64 = AtomicU64::new(0);
pub static RX_BYTES: AtomicU64 = AtomicU64::new(0);
pub static TX_PACKETS: AtomicU64 = AtomicU64::new(0);
pub static TX_BYTES: AtomicU64 = AtomicU64::new(0);

/// (rx packets, rx bytes, tx packets, tx bytes).
pub fn counters() -> [u64; 4] {
    [&RX_PACKETS, &RX_BYTES, &TX_PACKETS, &TX_BYTES].map(|c| c.load(Ordering::Relaxed))
}

/// What the host's interface was, as the netstack now holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkConfig {
    pub name: String,
    /// The host's interface index (the packet socket is bound to it).
    pub host_index: i32,
    pub mac: [u8; 6],
    pub mtu: u32,
    pub txqlen: u32,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    /// IPv6 addresses (global and link-local) with their prefix lengths,
    /// and the IPv6 default gateway.
    pub ip6: Vec<(Ipv6Addr, u8)>,
    pub gateway6: Option<Ipv6Addr>,
}

impl LinkConfig {
    pub fn netmask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix as u32)
        }
    }

    pub fn in_subnet(&self, a: Ipv4Addr) -> bool {
        u32::from(a) & self.netmask() == u32::from(self.ip) & self.netmask()
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.ip) | !self.netmask())
    }

    /// Whether `a` is one of our IPv6 addresses.
    pub fn has_ip6(&self, a: Ipv6Addr) -> bool {
        self.ip6.iter().any(|&(x, _)| x == a)
    }

    /// Whether an IPv6 destination is on the link (link-local, or in one
    /// of our prefixes).
    pub fn on_link6(&self, a: Ipv6Addr) -> bool {
        is_link_local6(a)
            || self.ip6.iter().any(|&(x, p)| {
                let m = if p == 0 {
                    0
                } else {
                    u128::MAX << (128 - p.min(128) as u32)
                };
                u128::from(x) & m == u128::from(a) & m
            })
    }

    /// The address we send to `dst` from: link-local for link-local
    /// destinations, else a global one.
    pub fn source6(&self, dst: Ipv6Addr) -> Option<Ipv6Addr> {
        let ll = is_link_local6(dst);
        self.ip6
            .iter()
            .map(|&(a, _)| a)
            .find(|&a| is_link_local6(a) == ll)
            .or_else(|| self.ip6.first().map(|&(a, _)| a))
    }

    /// Whether IPv6 destination `a` is reachable through the interface.
    pub fn routes6(&self, a: Ipv6Addr) -> bool {
        !self.ip6.is_empty() && (self.on_link6(a) || self.gateway6.is_some())
    }
}

pub fn is_link_local6(a: Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

const ETH_HLEN: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_IPV6: u16 = 0x86dd;
/// ICMPv6 neighbor discovery messages (RFC 4861).
const ND_NEIGHBOR_SOLICIT: u8 = 135;
const ND_NEIGHBOR_ADVERT: u8 = 136;
const BROADCAST: [u8; 6] = [0xff; 6];
/// Packets held per next hop while its MAC is resolved.
const PENDING_MAX: usize = 64;

/// Holds `pkt` for next hop `hop` until its link address is known (ARP or
/// neighbor discovery; at most PENDING_MAX packets). True when a request
/// is due: none went out for it in the last ARP_RETRY.
fn hold_until_resolved<A: Eq + std::hash::Hash>(
    pending: &mut HashMap<A, (Vec<Vec<u8>>, Instant)>,
    hop: A,
    pkt: Vec<u8>,
) -> bool {
    let now = Instant::now();
    let e = pending
        .entry(hop)
        .or_insert_with(|| (Vec::new(), now - ARP_RETRY * 2));
    if e.0.len() < PENDING_MAX {
        e.0.push(pkt);
    }
    if now.duration_since(e.1) >= ARP_RETRY {
        e.1 = now;
        return true;
    }
    false
}
/// How often an unanswered ARP request is repeated (when there is
/// something to send).
const ARP_RETRY: Duration = Duration::from_secs(1);

/// Where the Ethernet layer's frames go: the packet socket, or a test's
/// queue.
pub trait FrameSink: Send {
    fn send(&mut self, frame: &[u8]);
}

/// The Ethernet layer of the taken-over interface: turns the stack's
/// outgoing IPv4 packets into frames (resolving next hops with ARP and
/// filling in checksums, which loopback packets never carry) and incoming
/// frames into IPv4 packets for the stack (answering ARP for our address).
pub struct Eth {
    pub cfg: LinkConfig,
    sink: Box<dyn FrameSink>,
    arp: HashMap<Ipv4Addr, [u8; 6]>,
    pending: HashMap<Ipv4Addr, (Vec<Vec<u8>>, Instant)>,
    /// The IPv6 neighbor cache and packets waiting for a resolution.
    ndp: HashMap<Ipv6Addr, [u8; 6]>,
    pending6: HashMap<Ipv6Addr, (Vec<Vec<u8>>, Instant)>,
}

/// The Ethernet multicast address of IPv6 multicast group `a`.
fn multicast_mac(a: Ipv6Addr) -> [u8; 6] {
    let o = a.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

/// The solicited-node multicast group of `a`.
fn solicited_node(a: Ipv6Addr) -> Ipv6Addr {
    let o = a.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

fn v6_at(p: &[u8], i: usize) -> Ipv6Addr {
    let mut b = [0u8; 16];
    b.copy_from_slice(&p[i..i + 16]);
    Ipv6Addr::from(b)
}

impl Eth {
    pub fn new(cfg: LinkConfig, sink: Box<dyn FrameSink>) -> Eth {
        Eth {
            cfg,
            sink,
            arp: HashMap::new(),
            pending: HashMap::new(),
            ndp: HashMap::new(),
            pending6: HashMap::new(),
        }
    }

    /// Whether an IPv6 destination leaves through this interface.
    pub fn is_remote6(&self, dst: Ipv6Addr) -> bool {
        !dst.is_loopback() && !dst.is_unspecified() && !self.cfg.has_ip6(dst)
    }

    /// An IPv6 packet (header + payload) in a frame to `mac`.
    fn send6(&mut self, mac: [u8; 6], pkt: &[u8]) {
        let f = self.frame(mac, ETHERTYPE_IPV6, pkt);
        self.sink.send(&f);
    }

    /// An ICMPv6 neighbor discovery message from `src` to `dst`, with its
    /// checksum and hop limit 255.
    fn nd_packet(src: Ipv6Addr, dst: Ipv6Addr, icmp: &[u8]) -> Vec<u8> {
        let mut p = Vec::with_capacity(40 + icmp.len());
        p.extend_from_slice(&[0x60, 0, 0, 0]);
        p.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
        p.extend_from_slice(&[58, 255]);
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&dst.octets());
        p.extend_from_slice(icmp);
        fill_checksums6(&mut p);
        p
    }

    /// Sends a neighbor solicitation for `target`.
    fn solicit(&mut self, target: Ipv6Addr) {
        let Some(src) = self.cfg.source6(target) else {
            return;
        };
        let mut m = vec![ND_NEIGHBOR_SOLICIT, 0, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(&target.octets());
        // Option 1: our link-layer address.
        m.extend_from_slice(&[1, 1]);
        m.extend_from_slice(&self.cfg.mac);
        let group = solicited_node(target);
        let p = Self::nd_packet(src, group, &m);
        self.send6(multicast_mac(group), &p);
    }

    /// Sends one IPv6 packet the stack emitted for a remote destination.
    fn output6(&mut self, mut pkt: Vec<u8>) {
        if pkt.len() < 40 {
            return;
        }
        fill_checksums6(&mut pkt);
        let dst = v6_at(&pkt, 24);
        if dst.is_multicast() {
            self.send6(multicast_mac(dst), &pkt);
            return;
        }
        let hop = if self.cfg.on_link6(dst) {
            dst
        } else {
            match self.cfg.gateway6 {
                Some(g) => g,
                None => return,
            }
        };
        if let Some(mac) = self.ndp.get(&hop).copied() {
            self.send6(mac, &pkt);
            return;
        }
        if hold_until_resolved(&mut self.pending6, hop, pkt) {
            self.solicit(hop);
        }
    }

    /// Learns that `ip` is at `mac`, sending what waited for it.
    fn learn6(&mut self, ip: Ipv6Addr, mac: [u8; 6]) {
        if ip.is_unspecified() || mac[0] & 1 != 0 {
            return;
        }
        self.ndp.insert(ip, mac);
        if let Some((held, _)) = self.pending6.remove(&ip) {
            for pkt in held {
                self.send6(mac, &pkt);
            }
        }
    }

    /// A received IPv6 packet: neighbor discovery is answered here; what
    /// is for one of our addresses goes to the stack.
    fn input6(&mut self, src_mac: [u8; 6], p: &[u8]) -> Option<Vec<u8>> {
        if p.len() < 40 || p[0] >> 4 != 6 {
            return None;
        }
        let total = 40 + u16::from_be_bytes([p[4], p[5]]) as usize;
        if total > p.len() {
            return None;
        }
        let p = &p[..total];
        let (src, dst) = (v6_at(p, 8), v6_at(p, 24));
        if src.is_loopback() || dst.is_loopback() {
            return None;
        }
        if p[6] == 58 && total >= 48 {
            let icmp = &p[40..];
            match icmp[0] {
                ND_NEIGHBOR_SOLICIT if p[7] == 255 && icmp.len() >= 24 => {
                    let target = v6_at(icmp, 8);
                    if !src.is_unspecified() {
                        let mac = nd_option(&icmp[24..], 1).unwrap_or(src_mac);
                        self.learn6(src, mac);
                    }
                    if self.cfg.has_ip6(target) {
                        // Solicited, override; to the all-nodes group for
                        // duplicate address detection (no source).
                        let (to, mac, flags) = if src.is_unspecified() {
                            let all = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
                            (all, multicast_mac(all), 0x20)
                        } else {
                            (src, src_mac, 0x60)
                        };
                        let mut m = vec![ND_NEIGHBOR_ADVERT, 0, 0, 0, flags, 0, 0, 0];
                        m.extend_from_slice(&target.octets());
                        m.extend_from_slice(&[2, 1]);
                        m.extend_from_slice(&self.cfg.mac);
                        let reply = Self::nd_packet(target, to, &m);
                        self.send6(mac, &reply);
                    }
                    return None;
                }
                ND_NEIGHBOR_ADVERT if p[7] == 255 && icmp.len() >= 24 => {
                    let target = v6_at(icmp, 8);
                    let mac = nd_option(&icmp[24..], 2).unwrap_or(src_mac);
                    self.learn6(target, mac);
                    return None;
                }
                // Router solicitations and advertisements, redirects: the
                // configuration is fixed at takeover.
                133..=137 => return None,
                _ => {}
            }
        }
        if !self.cfg.has_ip6(dst) {
            return None;
        }
        Some(p.to_vec())
    }

    /// Whether an IPv4 destination leaves through this interface (not one
    /// of our own addresses).
    pub fn is_remote(&self, dst: Ipv4Addr) -> bool {
        !dst.is_loopback() && dst != self.cfg.ip
    }

    fn next_hop(&self, dst: Ipv4Addr) -> Option<Ipv4Addr> {
        if self.cfg.in_subnet(dst) {
            Some(dst)
        } else {
            self.cfg.gateway
        }
    }

    fn frame(&self, dst: [u8; 6], ty: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::with_capacity((ETH_HLEN + payload.len()).max(60));
        f.extend_from_slice(&dst);
        f.extend_from_slice(&self.cfg.mac);
        f.extend_from_slice(&ty.to_be_bytes());
        f.extend_from_slice(payload);
        if f.len() < 60 {
            f.resize(60, 0);
        }
        f
    }

    fn arp_packet(&self, op: u16, tha: [u8; 6], tpa: Ipv4Addr) -> Vec<u8> {
        let mut a = Vec::with_capacity(28);
        a.extend_from_slice(&[0, 1, 8, 0, 6, 4]);
        a.extend_from_slice(&op.to_be_bytes());
        a.extend_from_slice(&self.cfg.mac);
        a.extend_from_slice(&self.cfg.ip.octets());
        a.extend_from_slice(&tha);
        a.extend_from_slice(&tpa.octets());
        a
    }

    fn request(&mut self, hop: Ipv4Addr) {
        let a = self.arp_packet(1, [0; 6], hop);
        let f = self.frame(BROADCAST, ETHERTYPE_ARP, &a);
        self.sink.send(&f);
    }

    /// Asks for the gateway's MAC ahead of the first packet.
    pub fn prime(&mut self) {
        if let Some(gw) = self.cfg.gateway {
            self.pending.insert(gw, (Vec::new(), Instant::now()));
            self.request(gw);
        }
    }

    /// Sends one IPv4 packet the stack emitted for a remote destination.
    pub fn output(&mut self, mut pkt: Vec<u8>) {
        if pkt.first().is_some_and(|b| b >> 4 == 6) {
            self.output6(pkt);
            return;
        }
        if pkt.len() < 20 || pkt[0] >> 4 != 4 {
            return;
        }
        fill_checksums(&mut pkt);
        let dst = Ipv4Addr::new(pkt[16], pkt[17], pkt[18], pkt[19]);
        if dst.is_broadcast() || dst == self.cfg.broadcast() {
            let f = self.frame(BROADCAST, ETHERTYPE_IPV4, &pkt);
            self.sink.send(&f);
            return;
        }
        let Some(hop) = self.next_hop(dst) else {
            return;
        };
        if let Some(mac) = self.arp.get(&hop).copied() {
            let f = self.frame(mac, ETHERTYPE_IPV4, &pkt);
            self.sink.send(&f);
            return;
        }
        if hold_until_resolved(&mut self.pending, hop, pkt) {
            self.request(hop);
        }
    }

    /// Takes one received frame: an IPv4 packet for the stack, or None
    /// (ARP, handled here; anything not for us).
    pub fn input(&mut self, f: &[u8]) -> Option<Vec<u8>> {
        if f.len() < ETH_HLEN || f[6..12] == self.cfg.mac {
            return None;
        }
        let dst = &f[0..6];
        let multicast6 = dst[0] == 0x33 && dst[1] == 0x33;
        if dst != self.cfg.mac && dst != BROADCAST && !multicast6 {
            return None;
        }
        RX_PACKETS.fetch_add(1, Ordering::Relaxed);
        RX_BYTES.fetch_add(f.len() as u64, Ordering::Relaxed);
        let ty = u16::from_be_bytes([f[12], f[13]]);
        let p = &f[ETH_HLEN..];
        match ty {
            ETHERTYPE_ARP => {
                self.arp_input(p);
                None
            }
            ETHERTYPE_IPV6 if !self.cfg.ip6.is_empty() => {
                let mut src = [0u8; 6];
                src.copy_from_slice(&f[6..12]);
                self.input6(src, p)
            }
            ETHERTYPE_IPV4 => {
                if p.len() < 20 || p[0] >> 4 != 4 {
                    return None;
                }
                let total = u16::from_be_bytes([p[2], p[3]]) as usize;
                if total < 20 || total > p.len() {
                    return None;
                }
                let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
                // Loopback addresses never arrive from a wire (martians).
                if dst.is_loopback() {
                    return None;
                }
                let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
                if src.is_loopback() {
                    return None;
                }
                Some(p[..total].to_vec())
            }
            _ => None,
        }
    }

    fn arp_input(&mut self, p: &[u8]) {
        if p.len() < 28 || p[0..6] != [0, 1, 8, 0, 6, 4] {
            return;
        }
        let op = u16::from_be_bytes([p[6], p[7]]);
        let mut sha = [0u8; 6];
        sha.copy_from_slice(&p[8..14]);
        let spa = Ipv4Addr::new(p[14], p[15], p[16], p[17]);
        let tpa = Ipv4Addr::new(p[24], p[25], p[26], p[27]);
        if !spa.is_unspecified() && sha != BROADCAST && sha[0] & 1 == 0 {
            self.arp.insert(spa, sha);
            if let Some((held, _)) = self.pending.remove(&spa) {
                for pkt in held {
                    let f = self.frame(sha, ETHERTYPE_IPV4, &pkt);
                    self.sink.send(&f);
                }
            }
        }
        if op == 1 && tpa == self.cfg.ip {
            let a = self.arp_packet(2, sha, spa);
            let f = self.frame(sha, ETHERTYPE_ARP, &a);
            self.sink.send(&f);
        }
    }
}

/// The stack emits packets without checksums (loopback needs none); what
/// leaves through a real interface gets them here: the IPv4 header's and
/// the TCP, UDP or ICMP one.
pub fn fill_checksums(pkt: &mut [u8]) {
    use smoltcp::wire::{Icmpv4Packet, IpAddress, IpProtocol, Ipv4Packet, TcpPacket, UdpPacket};
    let Ok(mut ip) = Ipv4Packet::new_checked(&mut pkt[..]) else {
        return;
    };
    ip.fill_checksum();
    let (src, dst) = (
        IpAddress::Ipv4(ip.src_addr()),
        IpAddress::Ipv4(ip.dst_addr()),
    );
    let proto = ip.next_header();
    // Fragments' checksums cover the whole datagram: not ours to fill.
    if ip.more_frags() || ip.frag_offset() != 0 {
        return;
    }
    let payload = ip.payload_mut();
    match proto {
        IpProtocol::Tcp if payload.len() >= 20 => {
            TcpPacket::new_unchecked(payload).fill_checksum(&src, &dst)
        }
        IpProtocol::Udp if payload.len() >= 8 => {
            UdpPacket::new_unchecked(payload).fill_checksum(&src, &dst)
        }
        IpProtocol::Icmp if payload.len() >= 8 => {
            Icmpv4Packet::new_unchecked(payload).fill_checksum()
        }
        _ => {}
    }
}

/// The link-layer address in neighbor discovery option `kind` (1:
/// source, 2: target) among `opts`.
fn nd_option(mut opts: &[u8], kind: u8) -> Option<[u8; 6]> {
    while opts.len() >= 8 {
        let len = usize::from(opts[1]) * 8;
        if len == 0 || len > opts.len() {
            return None;
        }
        if opts[0] == kind && len >= 8 {
            let mut m = [0u8; 6];
            m.copy_from_slice(&opts[2..8]);
            return Some(m);
        }
        opts = &opts[len..];
    }
    None
}

/// `fill_checksums` for IPv6 packets: the TCP, UDP or ICMPv6 checksum
/// (IPv6 has none in its header).
pub fn fill_checksums6(pkt: &mut [u8]) {
    use smoltcp::wire::{Icmpv6Packet, IpAddress, IpProtocol, Ipv6Packet, TcpPacket, UdpPacket};
    let Ok(mut ip) = Ipv6Packet::new_checked(&mut pkt[..]) else {
        return;
    };
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let proto = ip.next_header();
    let payload = ip.payload_mut();
    match proto {
        IpProtocol::Tcp if payload.len() >= 20 => TcpPacket::new_unchecked(payload)
            .fill_checksum(&IpAddress::Ipv6(src), &IpAddress::Ipv6(dst)),
        IpProtocol::Udp if payload.len() >= 8 => UdpPacket::new_unchecked(payload)
            .fill_checksum(&IpAddress::Ipv6(src), &IpAddress::Ipv6(dst)),
        IpProtocol::Icmpv6 if payload.len() >= 4 => {
            Icmpv6Packet::new_unchecked(payload).fill_checksum(&src, &dst)
        }
        _ => {}
    }
}

/// The packet socket bound to the host interface.
pub struct PacketSocket {
    fd: OwnedFd,
}

impl PacketSocket {
    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Receives one frame into `buf` (None: nothing waiting). Frames the
    /// socket sees going out (our own) are skipped.
    pub fn recv(&self, buf: &mut [u8]) -> Option<usize> {
        loop {
            // SAFETY: an all-zero sockaddr_ll is a valid value.
            let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: buf and sa are live buffers of the lengths given.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                    (&mut sa as *mut libc::sockaddr_ll).cast(),
                    &mut len,
                )
            };
            if n < 0 {
                if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return None;
            }
            let n = n as usize;
            if sa.sll_pkttype == libc::PACKET_OUTGOING as u8 || n > buf.len() {
                continue;
            }
            return Some(n);
        }
    }

    /// Waits until a frame arrives.
    pub fn wait(&self) {
        let mut p = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: p is one live pollfd.
        let r = unsafe { libc::poll(&mut p, 1, -1) };
        if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl FrameSink for std::sync::Arc<PacketSocket> {
    fn send(&mut self, frame: &[u8]) {
        TX_PACKETS.fetch_add(1, Ordering::Relaxed);
        TX_BYTES.fetch_add(frame.len() as u64, Ordering::Relaxed);
        // A full queue drops the frame, as a NIC would; TCP retransmits.
        // SAFETY: frame is a live buffer of frame.len() bytes.
        unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            );
        }
    }
}

fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: an all-zero ifreq is a valid value.
    let mut r: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in r
        .ifr_name
        .iter_mut()
        .zip(name.bytes().take(libc::IFNAMSIZ - 1))
    {
        *d = s as libc::c_char;
    }
    r
}

fn ioctl(fd: RawFd, req: libc::c_ulong, r: &mut libc::ifreq, what: &str) -> anyhow::Result<()> {
    // SAFETY: r is a live ifreq, which every SIOC[GS]IF* request takes.
    if unsafe { libc::ioctl(fd, req as _, r as *mut libc::ifreq) } < 0 {
        return Err(anyhow::anyhow!(
            "{what} of {}: {}",
            ifname(r),
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

fn ifname(r: &libc::ifreq) -> String {
    r.ifr_name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8 as char)
        .collect()
}

fn sin_addr(sa: &libc::sockaddr) -> Ipv4Addr {
    // SAFETY: sockaddr and sockaddr_in have the same size and the kernel
    // filled in an AF_INET address.
    let sin: libc::sockaddr_in = unsafe { std::mem::transmute_copy(sa) };
    Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr))
}

/// The names of the host's interfaces in our network namespace.
fn interface_names() -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    let text = std::fs::read_to_string("/proc/self/net/dev")
        .map_err(|e| anyhow::anyhow!("reading /proc/self/net/dev: {e}"))?;
    for l in text.lines().skip(2) {
        if let Some((name, _)) = l.split_once(':') {
            out.push(name.trim().to_string());
        }
    }
    Ok(out)
}

/// The IPv4 default gateway of `dev` in /proc/net/route (hex, host order
/// little-endian as the kernel prints it).
fn default_gateway(dev: &str) -> Option<Ipv4Addr> {
    let text = std::fs::read_to_string("/proc/self/net/route").ok()?;
    for l in text.lines().skip(1) {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 8 || f[0] != dev || f[1] != "00000000" || f[7] != "00000000" {
            continue;
        }
        let gw = u32::from_str_radix(f[2], 16).ok()?;
        if gw != 0 {
            return Some(Ipv4Addr::from(gw.swap_bytes()));
        }
    }
    None
}

/// The IPv6 addresses of `dev` in /proc/net/if_inet6 (address, index,
/// prefix length, scope, flags, name; hex).
fn ipv6_addresses(dev: &str) -> Vec<(Ipv6Addr, u8)> {
    let Ok(text) = std::fs::read_to_string("/proc/self/net/if_inet6") else {
        return Vec::new();
    };
    let mut v = Vec::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 6 || f[5] != dev {
            continue;
        }
        let (Ok(a), Ok(p)) = (u128::from_str_radix(f[0], 16), u8::from_str_radix(f[2], 16)) else {
            continue;
        };
        // Global ones first: they are the source for routed traffic.
        let a = Ipv6Addr::from(a);
        if is_link_local6(a) {
            v.push((a, p));
        } else {
            v.insert(0, (a, p));
        }
    }
    v
}

/// The IPv6 default gateway of `dev` in /proc/net/ipv6_route
/// (destination, length, source, length, next hop, metric, counters,
/// flags, device).
fn default_gateway6(dev: &str) -> Option<Ipv6Addr> {
    let text = std::fs::read_to_string("/proc/self/net/ipv6_route").ok()?;
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 10 || f[9] != dev || f[1] != "00" || f[0].trim_start_matches('0') != "" {
            continue;
        }
        let gw = u128::from_str_radix(f[4], 16).ok()?;
        if gw != 0 {
            return Some(Ipv6Addr::from(gw));
        }
    }
    None
}

/// Turns IPv6 off for `dev` in the host kernel: its addresses go (the
/// host no longer answers neighbor solicitations or resets connections
/// for them) and no new ones are configured; frames still reach our
/// packet socket.
fn disable_ipv6(dev: &str) -> anyhow::Result<()> {
    let path = format!("/proc/sys/net/ipv6/conf/{dev}/disable_ipv6");
    std::fs::write(&path, "1").map_err(|e| anyhow::anyhow!("writing {path}: {e}"))
}

/// Takes over the Ethernet interfaces of the current network namespace
/// that hold an IPv4 address: reads their configuration, removes the
/// address from the host's side and opens a packet socket on each.
/// Loopback stays the host's (the sentry has its own). An error names
/// what failed; nothing is left half-done on an interface whose packet
/// socket could not be opened (the address is only removed after).
pub fn take_interfaces() -> anyhow::Result<Vec<(LinkConfig, PacketSocket)>> {
    // SAFETY: socket(2) with plain integers.
    let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if s < 0 {
        anyhow::bail!(
            "opening a socket to query the interfaces: {}",
            std::io::Error::last_os_error()
        );
    }
    // SAFETY: s is a new descriptor that nothing else owns.
    let ctl = unsafe { OwnedFd::from_raw_fd(s) };
    let fd = ctl.as_raw_fd();
    let mut out = Vec::new();
    for name in interface_names()? {
        let mut r = ifreq(&name);
        ioctl(fd, libc::SIOCGIFFLAGS, &mut r, "SIOCGIFFLAGS")?;
        // SAFETY: SIOCGIFFLAGS filled the flags member.
        let flags = unsafe { r.ifr_ifru.ifru_flags } as i32;
        if flags & libc::IFF_LOOPBACK != 0 {
            continue;
        }
        let mut r = ifreq(&name);
        ioctl(fd, libc::SIOCGIFHWADDR, &mut r, "SIOCGIFHWADDR")?;
        // SAFETY: SIOCGIFHWADDR filled the hwaddr member.
        let hw = unsafe { r.ifr_ifru.ifru_hwaddr };
        if hw.sa_family != libc::ARPHRD_ETHER {
            tracing::warn!(
                "interface {name}: not Ethernet (type {}); left alone",
                hw.sa_family
            );
            continue;
        }
        let mut r = ifreq(&name);
        // SAFETY: ioctl on a live ifreq (see `ioctl`).
        if unsafe { libc::ioctl(fd, libc::SIOCGIFADDR as _, &mut r as *mut libc::ifreq) } < 0 {
            // No IPv4 address: nothing for our stack to serve.
            tracing::warn!("interface {name}: no IPv4 address; left alone");
            continue;
        }
        // SAFETY: SIOCGIFADDR filled the addr member.
        let ip = sin_addr(unsafe { &r.ifr_ifru.ifru_addr });
        let mut r = ifreq(&name);
        ioctl(fd, libc::SIOCGIFNETMASK, &mut r, "SIOCGIFNETMASK")?;
        // SAFETY: SIOCGIFNETMASK filled the netmask member.
        let mask = sin_addr(unsafe { &r.ifr_ifru.ifru_netmask });
        let prefix = u32::from(mask).leading_ones() as u8;
        let mut r = ifreq(&name);
        ioctl(fd, libc::SIOCGIFMTU, &mut r, "SIOCGIFMTU")?;
        // SAFETY: SIOCGIFMTU filled the mtu member.
        let mtu = unsafe { r.ifr_ifru.ifru_mtu } as u32;
        let mut r = ifreq(&name);
        ioctl(fd, libc::SIOCGIFINDEX, &mut r, "SIOCGIFINDEX")?;
        // SAFETY: SIOCGIFINDEX filled the ifindex member.
        let index = unsafe { r.ifr_ifru.ifru_ifindex };
        let mut r = ifreq(&name);
        ioctl(fd, libc::SIOCGIFTXQLEN, &mut r, "SIOCGIFTXQLEN")?;
        // SAFETY: SIOCGIFTXQLEN filled the qlen member (ifru_ivalue).
        let txqlen = unsafe { r.ifr_ifru.ifru_ifindex } as u32;
        let mut mac = [0u8; 6];
        for (d, s) in mac.iter_mut().zip(hw.sa_data.iter()) {
            *d = *s as u8;
        }
        let cfg = LinkConfig {
            name: name.clone(),
            host_index: index,
            mac,
            mtu,
            txqlen,
            ip,
            prefix,
            gateway: default_gateway(&name),
            ip6: ipv6_addresses(&name),
            gateway6: default_gateway6(&name),
        };
        if !out.is_empty() {
            tracing::warn!("interface {name}: only one interface is served; left to the host");
            continue;
        }
        let sock = open_packet_socket(&cfg)?;
        remove_addresses(fd, &name)?;
        if !cfg.ip6.is_empty() {
            disable_ipv6(&name)?;
        }
        tracing::info!("network: took over {name}: {cfg:?}");
        out.push((cfg, sock));
    }
    Ok(out)
}

fn open_packet_socket(cfg: &LinkConfig) -> anyhow::Result<PacketSocket> {
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: socket(2) with plain integers.
    let s = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            proto as i32,
        )
    };
    if s < 0 {
        anyhow::bail!(
            "opening an AF_PACKET socket for {} (needs CAP_NET_RAW in the network namespace): {}",
            cfg.name,
            std::io::Error::last_os_error()
        );
    }
    // SAFETY: s is a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(s) };
    // SAFETY: an all-zero sockaddr_ll is a valid value.
    let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sa.sll_family = libc::AF_PACKET as u16;
    sa.sll_protocol = proto;
    sa.sll_ifindex = cfg.host_index;
    // SAFETY: sa is a live sockaddr_ll of the length given.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if r < 0 {
        anyhow::bail!(
            "binding the packet socket to {}: {}",
            cfg.name,
            std::io::Error::last_os_error()
        );
    }
    Ok(PacketSocket { fd })
}

/// Removes every IPv4 address from `name` on the host (setting 0.0.0.0
/// deletes one; its routes go with it).
fn remove_addresses(fd: RawFd, name: &str) -> anyhow::Result<()> {
    for _ in 0..64 {
        let mut r = ifreq(name);
        // SAFETY: ioctl on a live ifreq (see `ioctl`).
        if unsafe { libc::ioctl(fd, libc::SIOCGIFADDR as _, &mut r as *mut libc::ifreq) } < 0 {
            return Ok(());
        }
        let mut r = ifreq(name);
        r.ifr_ifru.ifru_addr.sa_family = libc::AF_INET as u16;
        ioctl(
            fd,
            libc::SIOCSIFADDR,
            &mut r,
            "removing the host's address (SIOCSIFADDR 0.0.0.0)",
        )?;
    }
    anyhow::bail!("{name}: addresses keep coming back")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    struct Q(Arc<Mutex<Vec<Vec<u8>>>>);
    impl FrameSink for Q {
        fn send(&mut self, f: &[u8]) {
            self.0.lock().unwrap().push(f.to_vec());
        }
    }

    fn cfg() -> LinkConfig {
        LinkConfig {
            name: "eth0".into(),
            host_index: 5,
            mac: [2, 0x42, 172, 17, 0, 2],
            mtu: 1500,
            txqlen: 0,
            ip: Ipv4Addr::new(172, 17, 0, 2),
            prefix: 16,
            gateway: Some(Ipv4Addr::new(172, 17, 0, 1)),
            ip6: Vec::new(),
            gateway6: None,
        }
    }

    fn ipv4_udp(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 32, 0, 0, 0x40, 0, 64, 17, 0, 0];
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p.extend_from_slice(&[0x30, 0x39, 0x00, 0x35, 0, 12, 0, 0, b'p', b'i', b'n', b'g']);
        p
    }

    #[test]
    fn frames_resolve_the_gateway_then_flow_both_ways() {
        let sent = Arc::new(Mutex::new(Vec::new()));
        let mut e = Eth::new(cfg(), Box::new(Q(sent.clone())));
        // Off-subnet: held while the gateway is asked for.
        e.output(ipv4_udp([172, 17, 0, 2], [8, 8, 8, 8]));
        {
            let s = sent.lock().unwrap();
            assert_eq!(s.len(), 1);
            let f = &s[0];
            assert_eq!(&f[0..6], &BROADCAST);
            assert_eq!(&f[12..14], &[8, 6]);
            assert_eq!(&f[14 + 24..14 + 28], &[172, 17, 0, 1]);
        }
        // The gateway answers: the held packet goes to its MAC, with
        // checksums filled in.
        let gw = [2, 0x42, 0x11, 0x22, 0x33, 0x44];
        let mut reply = Vec::new();
        reply.extend_from_slice(&cfg().mac);
        reply.extend_from_slice(&gw);
        reply.extend_from_slice(&[8, 6, 0, 1, 8, 0, 6, 4, 0, 2]);
        reply.extend_from_slice(&gw);
        reply.extend_from_slice(&[172, 17, 0, 1]);
        reply.extend_from_slice(&cfg().mac);
        reply.extend_from_slice(&[172, 17, 0, 2]);
        assert_eq!(e.input(&reply), None);
        {
            let s = sent.lock().unwrap();
            assert_eq!(s.len(), 2);
            let f = &s[1];
            assert_eq!(&f[0..6], &gw);
            assert_eq!(&f[12..14], &[8, 0]);
            let ip = smoltcp::wire::Ipv4Packet::new_checked(&f[14..]).unwrap();
            assert!(ip.verify_checksum());
            let udp = smoltcp::wire::UdpPacket::new_checked(ip.payload()).unwrap();
            assert!(udp.verify_checksum(
                &smoltcp::wire::IpAddress::Ipv4(ip.src_addr()),
                &smoltcp::wire::IpAddress::Ipv4(ip.dst_addr())
            ));
        }
        // A host's ARP request for our address is answered.
        let host = [2, 0x42, 0, 0, 0, 9];
        let mut req = Vec::new();
        req.extend_from_slice(&BROADCAST);
        req.extend_from_slice(&host);
        req.extend_from_slice(&[8, 6, 0, 1, 8, 0, 6, 4, 0, 1]);
        req.extend_from_slice(&host);
        req.extend_from_slice(&[172, 17, 0, 9]);
        req.extend_from_slice(&[0; 6]);
        req.extend_from_slice(&[172, 17, 0, 2]);
        assert_eq!(e.input(&req), None);
        {
            let s = sent.lock().unwrap();
            let f = &s[2];
            assert_eq!(&f[0..6], &host);
            assert_eq!(&f[14 + 6..14 + 8], &[0, 2]);
            assert_eq!(&f[14 + 14..14 + 18], &[172, 17, 0, 2]);
        }
        // An IPv4 frame to our MAC becomes a packet (Ethernet padding
        // trimmed); one to another MAC, or to a loopback address, does not.
        let pkt = ipv4_udp([172, 17, 0, 9], [172, 17, 0, 2]);
        let mut f = Vec::new();
        f.extend_from_slice(&cfg().mac);
        f.extend_from_slice(&host);
        f.extend_from_slice(&[8, 0]);
        f.extend_from_slice(&pkt);
        f.extend_from_slice(&[0; 14]);
        assert_eq!(e.input(&f), Some(pkt.clone()));
        let mut other = f.clone();
        other[0] = 0x12;
        assert_eq!(e.input(&other), None);
        let mut f2 = f.clone();
        f2[14 + 16] = 127;
        assert_eq!(e.input(&f2), None);
        // An on-link destination learnt from its ARP request goes
        // straight to its MAC.
        e.output(ipv4_udp([172, 17, 0, 2], [172, 17, 0, 9]));
        assert_eq!(&sent.lock().unwrap()[3][0..6], &host);
    }
}
