//! /proc/net: the sandbox's network state in Linux's formats (unix,
//! if_inet6, route, tcp/tcp6/udp/udp6).

use super::{dir, file, Node, Owner, ProcFs, Table};
use crate::net::iface::{self, IFF_LOOPBACK};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

/// /proc/net/unix: one row per AF_UNIX socket.
fn unix() -> Vec<u8> {
    let mut s = String::from("Num       RefCount Protocol Flags    Type St Inode Path\n");
    for e in crate::net::unix::proc_entries() {
        // __SO_ACCEPTCON; SS_UNCONNECTED (1) / SS_CONNECTED (3).
        let flags = if e.listening { 0x10000 } else { 0 };
        let st = if e.connected { 3 } else { 1 };
        let _ = write!(
            s,
            "0000000000000000: 00000002 00000000 {flags:08X} {:04X} {st:02X} {:5}",
            e.ty, e.ino
        );
        if let Some(p) = e.path {
            s.push(' ');
            s.push_str(&String::from_utf8_lossy(&p));
        }
        s.push('\n');
    }
    s.into_bytes()
}

/// /proc/net/if_inet6: address, index, prefix, scope, flags, name.
fn if_inet6() -> Vec<u8> {
    let mut s = String::new();
    for i in iface::interfaces() {
        for a in &i.addrs {
            if let IpAddr::V6(ip) = a.ip {
                let hex: String = ip.octets().iter().map(|b| format!("{b:02x}")).collect();
                // Linux's scope column: 0x10 host, 0x20 link, 0 global.
                let scope = match a.scope {
                    iface::RT_SCOPE_HOST => 0x10,
                    iface::RT_SCOPE_LINK => 0x20,
                    _ => 0,
                };
                let _ = writeln!(
                    s,
                    "{hex} {:02x} {:02x} {scope:02x} 80 {:>8}",
                    i.index, a.prefix, i.name
                );
            }
        }
    }
    s.into_bytes()
}

/// /proc/net/dev: per-interface counters (the taken-over interface's
/// frames; loopback's are not counted).
fn dev() -> Vec<u8> {
    let mut s = String::from(
        "Inter-|   Receive                                                |  Transmit\n \
         face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n",
    );
    for i in iface::interfaces() {
        let [rp, rb, tp, tb] = if i.flags & IFF_LOOPBACK != 0 {
            [0; 4]
        } else {
            crate::net::link::counters()
        };
        let _ = writeln!(
            s,
            "{:>6}:{rb:>8} {rp:>7}    0    0    0     0          0         0 {tb:>8} {tp:>7}    0    0    0     0       0          0",
            i.name
        );
    }
    s.into_bytes()
}

/// /proc/net/route: the IPv4 main table (little-endian hex, as Linux).
fn route() -> Vec<u8> {
    let mut s = String::from(
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT                                                       \n",
    );
    let ifs = iface::interfaces();
    for r in iface::routes() {
        let (IpAddr::V4(dst), true) = (r.dst, r.table == iface::RT_TABLE_MAIN) else {
            continue;
        };
        let Some(i) = ifs.iter().find(|i| i.index == r.oif) else {
            continue;
        };
        if i.flags & IFF_LOOPBACK != 0 {
            continue;
        }
        let mask = if r.dst_len == 0 {
            0
        } else {
            u32::MAX << (32 - r.dst_len as u32)
        };
        let gw = match r.gateway {
            Some(IpAddr::V4(g)) => u32::from(g),
            _ => 0,
        };
        // RTF_UP, RTF_GATEWAY.
        let flags = 1 | if gw != 0 { 2 } else { 0 };
        let _ = writeln!(
            s,
            "{}\t{:08X}\t{:08X}\t{:04X}\t0\t0\t{}\t{:08X}\t0\t0\t0                                                                            ",
            i.name,
            u32::from(dst).swap_bytes(),
            gw.swap_bytes(),
            flags,
            r.priority.unwrap_or(0),
            mask.swap_bytes()
        );
    }
    s.into_bytes()
}

/// /proc/net/tcp, tcp6, udp, udp6 (0..=3): the sandbox stack's sockets,
/// or with `--network=host` the host's own files (the guest's sockets are
/// host sockets there; all of the host namespace's show).
fn inet(which: usize) -> Vec<u8> {
    use crate::net::{netstack::procnet, network_mode, NetworkMode};
    let name = ["tcp", "tcp6", "udp", "udp6"][which];
    if network_mode() == NetworkMode::Host {
        return std::fs::read(format!("/proc/net/{name}")).unwrap_or_default();
    }
    match which {
        0 => procnet::tcp(false),
        1 => procnet::tcp(true),
        2 => procnet::udp(false),
        _ => procnet::udp(true),
    }
}

pub(super) fn new_net(fs: &Arc<ProcFs>) -> Arc<Node> {
    let f1 = fs.clone();
    let f2 = fs.clone();
    let f3 = fs.clone();
    let f4 = fs.clone();
    let (f5, f6, f7, f8) = (fs.clone(), fs.clone(), fs.clone(), fs.clone());
    dir(
        fs,
        "net",
        0o555,
        &Owner::Kernel,
        Table::new(vec![
            (
                "dev",
                Box::new(move || file(&f4, "net/dev", &Owner::Kernel, |_| Ok(dev()))),
            ),
            (
                "if_inet6",
                Box::new(move || file(&f1, "net/if_inet6", &Owner::Kernel, |_| Ok(if_inet6()))),
            ),
            (
                "route",
                Box::new(move || file(&f2, "net/route", &Owner::Kernel, |_| Ok(route()))),
            ),
            (
                "tcp",
                Box::new(move || file(&f5, "net/tcp", &Owner::Kernel, |_| Ok(inet(0)))),
            ),
            (
                "tcp6",
                Box::new(move || file(&f6, "net/tcp6", &Owner::Kernel, |_| Ok(inet(1)))),
            ),
            (
                "udp",
                Box::new(move || file(&f7, "net/udp", &Owner::Kernel, |_| Ok(inet(2)))),
            ),
            (
                "udp6",
                Box::new(move || file(&f8, "net/udp6", &Owner::Kernel, |_| Ok(inet(3)))),
            ),
            (
                "unix",
                Box::new(move || file(&f3, "net/unix", &Owner::Kernel, |_| Ok(unix()))),
            ),
        ]),
    )
}
