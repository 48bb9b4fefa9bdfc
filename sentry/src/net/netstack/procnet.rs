//! /proc/net/tcp, tcp6, udp, udp6 for the sandbox's stack: every guest
//! TCP and UDP socket registers here, and a read asks each live one for
//! its row (in Linux's terms: addresses, TCP state code, queues, owner,
//! inode). Connections no guest socket holds yet or any more (waiting in
//! an accept queue, closed and finishing) are rows of the stack itself,
//! with inode 0 as on Linux.

use super::{stack, PROTO_TCP, PROTO_UDP};
use crate::fs::lock;
use smoltcp::socket::tcp::State as TcpState;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Mutex, OnceLock, Weak};

/// Linux's TCP state numbers (include/net/tcp_states.h).
pub const TCP_ESTABLISHED: u8 = 1;
pub const TCP_CLOSE: u8 = 7;
pub const TCP_LISTEN: u8 = 10;

pub fn linux_state(s: TcpState) -> u8 {
    match s {
        TcpState::Established => 1,
        TcpState::SynSent => 2,
        TcpState::SynReceived => 3,
        TcpState::FinWait1 => 4,
        TcpState::FinWait2 => 5,
        TcpState::TimeWait => 6,
        TcpState::Closed => 7,
        TcpState::CloseWait => 8,
        TcpState::LastAck => 9,
        TcpState::Listen => 10,
        TcpState::Closing => 11,
    }
}

/// One line of /proc/net/{tcp,udp}{,6}.
#[derive(Clone, Debug)]
pub struct ProcRow {
    /// In the IPv6 file (AF_INET6 sockets; IPv4 addresses shown mapped).
    pub v6: bool,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub state: u8,
    pub tx_queue: usize,
    pub rx_queue: usize,
    pub uid: u32,
    pub ino: u64,
}

/// A guest socket that has a row (or not, when unbound).
pub trait ProcSocket: Send + Sync {
    fn proc_row(&self) -> Option<ProcRow>;
}

type Registry = Mutex<Vec<Weak<dyn ProcSocket>>>;

fn registry(proto: usize) -> &'static Registry {
    static REG: OnceLock<[Registry; 2]> = OnceLock::new();
    &REG.get_or_init(|| [Mutex::new(Vec::new()), Mutex::new(Vec::new())])[proto]
}

/// Lists a new socket of `proto` (PROTO_TCP/PROTO_UDP).
pub fn register(proto: usize, s: Weak<dyn ProcSocket>) {
    let mut r = lock(registry(proto));
    // Dropped sockets go when their slot would be needed.
    if r.len() >= 64 && r.len().is_power_of_two() {
        r.retain(|w| w.strong_count() > 0);
    }
    r.push(s);
}

fn rows(proto: usize) -> Vec<ProcRow> {
    let live: Vec<_> = {
        let mut r = lock(registry(proto));
        r.retain(|w| w.strong_count() > 0);
        r.iter().filter_map(Weak::upgrade).collect()
    };
    let mut v: Vec<ProcRow> = live.iter().filter_map(|s| s.proc_row()).collect();
    if proto == PROTO_TCP {
        v.extend(stack().peek(|n| n.unowned_tcp_rows()));
        // Linux walks the listening hash before the established one.
        v.sort_by_key(|r| (r.state != TCP_LISTEN, r.ino == 0, r.ino));
    } else {
        v.sort_by_key(|r| (bucket(r.local.port()), r.ino));
    }
    v
}

/// The hash slot Linux numbers UDP lines with.
fn bucket(port: u16) -> u16 {
    port & 0x3fff
}

fn v4_hex(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => format!("{:08X}", u32::from_le_bytes(a.octets())),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(m) => format!("{:08X}", u32::from_le_bytes(m.octets())),
            None => "00000000".into(),
        },
    }
}

fn v6_hex(ip: IpAddr) -> String {
    let a: Ipv6Addr = match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    };
    a.octets()
        .chunks_exact(4)
        .map(|w| format!("{:08X}", u32::from_le_bytes([w[0], w[1], w[2], w[3]])))
        .collect()
}

fn addr(v6: bool, a: SocketAddr) -> String {
    let ip = if v6 { v6_hex(a.ip()) } else { v4_hex(a.ip()) };
    format!("{ip}:{:04X}", a.port())
}

/// The text of /proc/net/tcp (v6 false) or tcp6.
pub fn tcp(v6: bool) -> Vec<u8> {
    let mut s = String::new();
    if v6 {
        s.push_str("  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n");
    } else {
        let _ = writeln!(s, "{:<149}", "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode");
    }
    for (i, r) in rows(PROTO_TCP)
        .into_iter()
        .filter(|r| r.v6 == v6)
        .enumerate()
    {
        // rto, ato, quick/pingpong, cwnd, ssthresh as Linux shows them
        // for a listener and a fresh loopback connection.
        let tail = if r.state == TCP_LISTEN {
            "100 0 0 10 0"
        } else {
            "20 4 30 10 -1"
        };
        let line = format!(
            "{i:4}: {} {} {:02X} {:08X}:{:08X} 00:00000000 00000000 {:5} {:8} {} {} 0000000000000000 {tail}",
            addr(v6, r.local),
            addr(v6, r.remote),
            r.state,
            r.tx_queue.min(u32::MAX as usize),
            r.rx_queue.min(u32::MAX as usize),
            r.uid,
            0,
            r.ino,
            if r.ino == 0 { 1 } else { 2 },
        );
        if v6 {
            let _ = writeln!(s, "{line}");
        } else {
            let _ = writeln!(s, "{line:<149}");
        }
    }
    s.into_bytes()
}

/// The text of /proc/net/udp (v6 false) or udp6.
pub fn udp(v6: bool) -> Vec<u8> {
    let mut s = String::new();
    if v6 {
        s.push_str("  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n");
    } else {
        let _ = writeln!(s, "{:<127}", "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops");
    }
    for r in rows(PROTO_UDP).into_iter().filter(|r| r.v6 == v6) {
        let line = format!(
            "{:5}: {} {} {:02X} {:08X}:{:08X} 00:00000000 00000000 {:5} {:8} {} 2 0000000000000000 0",
            bucket(r.local.port()),
            addr(v6, r.local),
            addr(v6, r.remote),
            r.state,
            r.tx_queue.min(u32::MAX as usize),
            r.rx_queue.min(u32::MAX as usize),
            r.uid,
            0,
            r.ino,
        );
        if v6 {
            let _ = writeln!(s, "{line}");
        } else {
            let _ = writeln!(s, "{line:<127}");
        }
    }
    s.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_print_in_host_byte_order() {
        let a: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(addr(false, a), "0100007F:1F90");
        let b: SocketAddr = "[::1]:22".parse().unwrap();
        assert_eq!(addr(true, b), "00000000000000000000000001000000:0016");
        assert_eq!(addr(true, a), "0000000000000000FFFF00000100007F:1F90");
    }
}
