//! The sandbox's network interfaces and routes as the netstack sees them,
//! for netlink (`ip addr`, getifaddrs), ioctls and /proc/net.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const IFF_UP: u32 = libc::IFF_UP as u32;
pub const IFF_LOOPBACK: u32 = libc::IFF_LOOPBACK as u32;
pub const IFF_RUNNING: u32 = libc::IFF_RUNNING as u32;
pub const IFF_LOWER_UP: u32 = 0x10000;
pub const ARPHRD_LOOPBACK: u16 = 772;
pub const ARPHRD_ETHER: u16 = 1;
pub const RT_SCOPE_UNIVERSE: u8 = 0;
pub const RT_SCOPE_LINK: u8 = 253;
pub const RT_SCOPE_HOST: u8 = 254;
pub const RT_TABLE_MAIN: u8 = 254;
pub const RT_TABLE_LOCAL: u8 = 255;
pub const RTN_UNICAST: u8 = 1;
pub const RTN_LOCAL: u8 = 2;
pub const RTN_BROADCAST: u8 = 3;
pub const RTPROT_KERNEL: u8 = 2;

#[derive(Clone, Debug)]
pub struct IfAddr {
    pub ip: IpAddr,
    pub prefix: u8,
    pub scope: u8,
}

#[derive(Clone, Debug)]
pub struct Interface {
    pub index: u32,
    pub name: String,
    /// IFF_* flags.
    pub flags: u32,
    pub mtu: u32,
    /// ARPHRD_* link type.
    pub kind: u16,
    pub mac: [u8; 6],
    pub broadcast: [u8; 6],
    pub txqlen: u32,
    pub addrs: Vec<IfAddr>,
}

#[derive(Clone, Debug)]
pub struct Route {
    pub dst: IpAddr,
    pub dst_len: u8,
    /// RTN_* route type.
    pub kind: u8,
    pub scope: u8,
    pub table: u8,
    pub protocol: u8,
    pub oif: u32,
    pub prefsrc: Option<IpAddr>,
    pub gateway: Option<IpAddr>,
    /// RTA_PRIORITY (IPv6 routes always carry one).
    pub priority: Option<u32>,
}

/// The loopback interface, as a fresh network namespace has it once `lo`
/// is up.
pub fn loopback() -> Interface {
    Interface {
        index: 1,
        name: "lo".into(),
        flags: IFF_UP | IFF_LOOPBACK | IFF_RUNNING | IFF_LOWER_UP,
        mtu: 65536,
        kind: ARPHRD_LOOPBACK,
        mac: [0; 6],
        broadcast: [0; 6],
        txqlen: 1000,
        addrs: vec![
            IfAddr {
                ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
                prefix: 8,
                scope: RT_SCOPE_HOST,
            },
            IfAddr {
                ip: IpAddr::V6(Ipv6Addr::LOCALHOST),
                prefix: 128,
                scope: RT_SCOPE_HOST,
            },
        ],
    }
}

pub const RTPROT_BOOT: u8 = 3;

/// The container's interface the stack took over (`link`), as the host
/// had it.
pub fn ethernet(c: &super::link::LinkConfig) -> Interface {
    Interface {
        index: 2,
        name: c.name.clone(),
        flags: IFF_UP
            | IFF_RUNNING
            | IFF_LOWER_UP
            | libc::IFF_BROADCAST as u32
            | libc::IFF_MULTICAST as u32,
        mtu: c.mtu,
        kind: ARPHRD_ETHER,
        mac: c.mac,
        broadcast: [0xff; 6],
        txqlen: c.txqlen,
        addrs: std::iter::once(IfAddr {
            ip: IpAddr::V4(c.ip),
            prefix: c.prefix,
            scope: RT_SCOPE_UNIVERSE,
        })
        .chain(c.ip6.iter().map(|&(ip, prefix)| IfAddr {
            ip: IpAddr::V6(ip),
            prefix,
            scope: if super::link::is_link_local6(ip) {
                RT_SCOPE_LINK
            } else {
                RT_SCOPE_UNIVERSE
            },
        }))
        .collect(),
    }
}

/// The interfaces of the sentry's network stack.
pub fn interfaces() -> Vec<Interface> {
    let mut v = vec![loopback()];
    if let Some(c) = super::link::configured() {
        v.push(ethernet(c));
    }
    v
}

/// The taken-over interface's default route through `gw` (of its family).
fn default_route(gw: IpAddr, priority: Option<u32>) -> Route {
    Route {
        dst: match gw {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        },
        dst_len: 0,
        kind: RTN_UNICAST,
        scope: RT_SCOPE_UNIVERSE,
        table: RT_TABLE_MAIN,
        protocol: RTPROT_BOOT,
        oif: 2,
        prefsrc: None,
        gateway: Some(gw),
        priority,
    }
}

/// The kernel routes Linux derives from the interfaces' addresses: local
/// routes for each address and its subnet, the subnet broadcast, and (for
/// non-loopback interfaces) the subnet in the main table.
pub fn routes() -> Vec<Route> {
    let mut out = Vec::new();
    if let Some(c) = super::link::configured() {
        if let Some(gw) = c.gateway {
            out.push(default_route(IpAddr::V4(gw), None));
        }
        // IPv6: each prefix on the link (metric 256), the default route
        // (1024), as the kernel lists them.
        let mut seen = Vec::new();
        for &(ip, prefix) in &c.ip6 {
            let m = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix.min(128) as u32)
            };
            let net = (Ipv6Addr::from(u128::from(ip) & m), prefix);
            if seen.contains(&net) {
                continue;
            }
            seen.push(net);
            out.push(Route {
                dst: IpAddr::V6(net.0),
                dst_len: prefix,
                kind: RTN_UNICAST,
                scope: RT_SCOPE_UNIVERSE,
                table: RT_TABLE_MAIN,
                protocol: RTPROT_KERNEL,
                oif: 2,
                prefsrc: None,
                gateway: None,
                priority: Some(256),
            });
        }
        if let Some(gw) = c.gateway6 {
            out.push(default_route(IpAddr::V6(gw), Some(1024)));
        }
    }
    for i in interfaces() {
        for a in &i.addrs {
            match a.ip {
                IpAddr::V4(ip) => {
                    let bits = u32::from(ip);
                    let mask = if a.prefix == 0 {
                        0
                    } else {
                        u32::MAX << (32 - a.prefix as u32)
                    };
                    let net = Ipv4Addr::from(bits & mask);
                    let bcast = Ipv4Addr::from(bits | !mask);
                    let loopback = i.flags & IFF_LOOPBACK != 0;
                    let local = |dst: Ipv4Addr, len: u8| Route {
                        dst: IpAddr::V4(dst),
                        dst_len: len,
                        kind: RTN_LOCAL,
                        scope: RT_SCOPE_HOST,
                        table: RT_TABLE_LOCAL,
                        protocol: RTPROT_KERNEL,
                        oif: i.index,
                        prefsrc: Some(a.ip),
                        gateway: None,
                        priority: None,
                    };
                    if loopback {
                        out.push(local(net, a.prefix));
                    } else {
                        out.push(Route {
                            dst: IpAddr::V4(net),
                            dst_len: a.prefix,
                            kind: RTN_UNICAST,
                            scope: RT_SCOPE_LINK,
                            table: RT_TABLE_MAIN,
                            protocol: RTPROT_KERNEL,
                            oif: i.index,
                            prefsrc: Some(a.ip),
                            gateway: None,
                            priority: None,
                        });
                    }
                    out.push(local(ip, 32));
                    if a.prefix < 31 {
                        out.push(Route {
                            kind: RTN_BROADCAST,
                            scope: RT_SCOPE_LINK,
                            ..local(bcast, 32)
                        });
                    }
                }
                IpAddr::V6(ip) => out.push(Route {
                    dst: IpAddr::V6(ip),
                    dst_len: 128,
                    kind: RTN_LOCAL,
                    scope: RT_SCOPE_UNIVERSE,
                    table: RT_TABLE_LOCAL,
                    protocol: RTPROT_KERNEL,
                    oif: i.index,
                    prefsrc: None,
                    gateway: None,
                    priority: Some(0),
                }),
            }
        }
    }
    out
}

/// struct ifreq: 16 bytes of name, then a 24-byte union.
const IFREQ_SIZE: usize = 40;
/// struct ifconf on x86-64: int length, padding, pointer.
const IFCONF_SIZE: usize = 16;

fn sockaddr_in(ip: Ipv4Addr) -> [u8; 16] {
    let mut sa = [0u8; 16];
    sa[0..2].copy_from_slice(&(libc::AF_INET as u16).to_le_bytes());
    sa[4..8].copy_from_slice(&ip.octets());
    sa
}

fn first_v4(i: &Interface) -> Option<&IfAddr> {
    i.addrs.iter().find(|a| a.ip.is_ipv4())
}

fn mask(prefix: u8) -> Ipv4Addr {
    Ipv4Addr::from(if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix as u32)
    })
}

/// The SIOCGIF* interface queries on a socket of the sentry's stack
/// (what ifconfig and busybox ip ask), answered from `interfaces()`.
/// None: not an interface query.
pub fn ioctl(
    t: &crate::kernel::task::Task,
    cmd: u32,
    arg: u64,
) -> Option<crate::errno::KResult<u64>> {
    use crate::errno::Errno;
    const SIOCGIFNAME: u32 = 0x8910;
    const SIOCGIFCONF: u32 = 0x8912;
    const SIOCGIFFLAGS: u32 = 0x8913;
    const SIOCGIFADDR: u32 = 0x8915;
    const SIOCGIFBRDADDR: u32 = 0x8919;
    const SIOCGIFNETMASK: u32 = 0x891b;
    const SIOCGIFMETRIC: u32 = 0x891d;
    const SIOCGIFMTU: u32 = 0x8921;
    const SIOCGIFHWADDR: u32 = 0x8927;
    const SIOCGIFINDEX: u32 = 0x8933;
    const SIOCGIFTXQLEN: u32 = 0x8942;
    if !matches!(
        cmd,
        SIOCGIFNAME
            | SIOCGIFCONF
            | SIOCGIFFLAGS
            | SIOCGIFADDR
            | SIOCGIFBRDADDR
            | SIOCGIFNETMASK
            | SIOCGIFMETRIC
            | SIOCGIFMTU
            | SIOCGIFHWADDR
            | SIOCGIFINDEX
            | SIOCGIFTXQLEN
    ) {
        return None;
    }
    let ifs = interfaces();
    let r = (|| {
        if cmd == SIOCGIFCONF {
            let mut conf = [0u8; IFCONF_SIZE];
            t.mm().copy_in(arg, &mut conf)?;
            let len = i32::from_le_bytes([conf[0], conf[1], conf[2], conf[3]]);
            let mut p = [0u8; 8];
            p.copy_from_slice(&conf[8..16]);
            let ubuf = u64::from_le_bytes(p);
            if len < 0 {
                return Err(Errno::EINVAL);
            }
            let mut out = Vec::new();
            for i in &ifs {
                if let Some(a) = first_v4(i) {
                    let mut r = [0u8; IFREQ_SIZE];
                    let n = i.name.as_bytes();
                    r[..n.len().min(15)].copy_from_slice(&n[..n.len().min(15)]);
                    if let IpAddr::V4(v4) = a.ip {
                        r[16..32].copy_from_slice(&sockaddr_in(v4));
                    }
                    out.push(r);
                }
            }
            let n = if ubuf == 0 {
                out.len() * IFREQ_SIZE
            } else {
                let fit = (len as usize / IFREQ_SIZE).min(out.len());
                let bytes: Vec<u8> = out[..fit].iter().flatten().copied().collect();
                t.mm().copy_out(ubuf, &bytes)?;
                bytes.len()
            };
            t.mm().write_u32(arg, n as u32)?;
            return Ok(0);
        }
        let mut req = [0u8; IFREQ_SIZE];
        t.mm().copy_in(arg, &mut req)?;
        if cmd == SIOCGIFNAME {
            let idx = u32::from_le_bytes([req[16], req[17], req[18], req[19]]);
            let i = ifs.iter().find(|i| i.index == idx).ok_or(Errno::ENODEV)?;
            let mut name = [0u8; 16];
            let n = i.name.as_bytes();
            name[..n.len().min(15)].copy_from_slice(&n[..n.len().min(15)]);
            t.mm().copy_out(arg, &name)?;
            return Ok(0);
        }
        let name: Vec<u8> = req[..16].iter().copied().take_while(|&c| c != 0).collect();
        let i = ifs
            .iter()
            .find(|i| i.name.as_bytes() == &name[..])
            .ok_or(Errno::ENODEV)?;
        let mut u = [0u8; 24];
        match cmd {
            SIOCGIFFLAGS => u[0..2].copy_from_slice(&(i.flags as u16).to_le_bytes()),
            SIOCGIFADDR | SIOCGIFNETMASK | SIOCGIFBRDADDR => {
                let a = first_v4(i).ok_or(Errno::EADDRNOTAVAIL)?;
                let IpAddr::V4(ip) = a.ip else {
                    return Err(Errno::EADDRNOTAVAIL);
                };
                let v = match cmd {
                    SIOCGIFADDR => ip,
                    SIOCGIFNETMASK => mask(a.prefix),
                    _ if i.flags & IFF_LOOPBACK != 0 => Ipv4Addr::UNSPECIFIED,
                    _ => Ipv4Addr::from(u32::from(ip) | !u32::from(mask(a.prefix))),
                };
                u[..16].copy_from_slice(&sockaddr_in(v));
            }
            SIOCGIFMETRIC => {}
            SIOCGIFMTU => u[0..4].copy_from_slice(&i.mtu.to_le_bytes()),
            SIOCGIFHWADDR => {
                u[0..2].copy_from_slice(&i.kind.to_le_bytes());
                u[2..8].copy_from_slice(&i.mac);
            }
            SIOCGIFINDEX => u[0..4].copy_from_slice(&i.index.to_le_bytes()),
            SIOCGIFTXQLEN => u[0..4].copy_from_slice(&i.txqlen.to_le_bytes()),
            _ => return Err(Errno::ENOTTY),
        }
        t.mm().copy_out(arg + 16, &u)?;
        Ok(0)
    })();
    Some(r)
}
