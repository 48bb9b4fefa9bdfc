//! AF_INET/AF_INET6 addresses as the guest passes them (struct
//! sockaddr_in, sockaddr_in6), shared by every inet socket provider.

use crate::errno::{Errno, KResult};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

pub const SOCKADDR_IN_LEN: usize = 16;
pub const SOCKADDR_IN6_LEN: usize = 28;

fn family(sa: &[u8]) -> KResult<i32> {
    if sa.len() < 2 {
        return Err(Errno::EINVAL);
    }
    Ok(u16::from_le_bytes([sa[0], sa[1]]) as i32)
}

/// True for a sockaddr whose family is AF_UNSPEC (connect's "dissolve").
pub fn is_unspec(sa: &[u8]) -> bool {
    family(sa) == Ok(libc::AF_UNSPEC)
}

/// Parses a sockaddr for a socket of family `sock_family`. An AF_INET6
/// socket takes AF_INET6 addresses only (v4-mapped ones included); an
/// AF_INET socket takes AF_INET, and AF_UNSPEC with INADDR_ANY for bind
/// as Linux allows. Lengths and families are checked as Linux does
/// (EINVAL for a short address, EAFNOSUPPORT for a wrong family).
pub fn parse_sockaddr(sock_family: i32, sa: &[u8]) -> KResult<SocketAddr> {
    let fam = family(sa)?;
    match sock_family {
        libc::AF_INET => {
            if sa.len() < SOCKADDR_IN_LEN {
                return Err(Errno::EINVAL);
            }
            if fam != libc::AF_INET && fam != libc::AF_UNSPEC {
                return Err(Errno::EAFNOSUPPORT);
            }
            let port = u16::from_be_bytes([sa[2], sa[3]]);
            let ip = Ipv4Addr::new(sa[4], sa[5], sa[6], sa[7]);
            Ok(SocketAddr::V4(SocketAddrV4::new(ip, port)))
        }
        libc::AF_INET6 => {
            if fam != libc::AF_INET6 {
                return Err(if sa.len() < SOCKADDR_IN6_LEN - 4 {
                    Errno::EINVAL
                } else {
                    Errno::EAFNOSUPPORT
                });
            }
            // The old 24-byte sockaddr_in6 without scope id is accepted.
            if sa.len() < SOCKADDR_IN6_LEN - 4 {
                return Err(Errno::EINVAL);
            }
            let port = u16::from_be_bytes([sa[2], sa[3]]);
            let flow = u32::from_be_bytes([sa[4], sa[5], sa[6], sa[7]]);
            let mut ip = [0u8; 16];
            ip.copy_from_slice(&sa[8..24]);
            let scope = if sa.len() >= SOCKADDR_IN6_LEN {
                u32::from_le_bytes([sa[24], sa[25], sa[26], sa[27]])
            } else {
                0
            };
            Ok(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(ip),
                port,
                flow,
                scope,
            )))
        }
        _ => Err(Errno::EAFNOSUPPORT),
    }
}

/// Formats an address as the sockaddr a socket of family `sock_family`
/// reports: IPv4 addresses on an AF_INET6 socket appear v4-mapped.
pub fn format_sockaddr(sock_family: i32, addr: SocketAddr) -> Vec<u8> {
    match (sock_family, addr) {
        (libc::AF_INET, SocketAddr::V4(a)) => sockaddr_in(a),
        (libc::AF_INET, SocketAddr::V6(a)) => match a.ip().to_ipv4_mapped() {
            Some(ip) => sockaddr_in(SocketAddrV4::new(ip, a.port())),
            None => sockaddr_in6(a),
        },
        (_, SocketAddr::V4(a)) => {
            sockaddr_in6(SocketAddrV6::new(a.ip().to_ipv6_mapped(), a.port(), 0, 0))
        }
        (_, SocketAddr::V6(a)) => sockaddr_in6(a),
    }
}

fn sockaddr_in(a: SocketAddrV4) -> Vec<u8> {
    let mut b = vec![0u8; SOCKADDR_IN_LEN];
    b[..2].copy_from_slice(&(libc::AF_INET as u16).to_le_bytes());
    b[2..4].copy_from_slice(&a.port().to_be_bytes());
    b[4..8].copy_from_slice(&a.ip().octets());
    b
}

fn sockaddr_in6(a: SocketAddrV6) -> Vec<u8> {
    let mut b = vec![0u8; SOCKADDR_IN6_LEN];
    b[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_le_bytes());
    b[2..4].copy_from_slice(&a.port().to_be_bytes());
    b[4..8].copy_from_slice(&a.flowinfo().to_be_bytes());
    b[8..24].copy_from_slice(&a.ip().octets());
    b[24..28].copy_from_slice(&a.scope_id().to_le_bytes());
    b
}

/// The unspecified address of a family (what an unbound socket reports).
pub fn unspecified(sock_family: i32) -> SocketAddr {
    if sock_family == libc::AF_INET6 {
        SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0)
    } else {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_mapping() {
        let a: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let b = format_sockaddr(libc::AF_INET, a);
        assert_eq!(b.len(), 16);
        assert_eq!(parse_sockaddr(libc::AF_INET, &b), Ok(a));
        let m = format_sockaddr(libc::AF_INET6, a);
        assert_eq!(m.len(), 28);
        let back = parse_sockaddr(libc::AF_INET6, &m).unwrap();
        assert_eq!(back.to_string(), "[::ffff:127.0.0.1]:8080");
        assert_eq!(parse_sockaddr(libc::AF_INET, &b[..8]), Err(Errno::EINVAL));
        assert_eq!(parse_sockaddr(libc::AF_INET6, &b), Err(Errno::EINVAL));
        let mut wrong = b.clone();
        wrong[0] = libc::AF_INET6 as u8;
        assert_eq!(
            parse_sockaddr(libc::AF_INET, &wrong),
            Err(Errno::EAFNOSUPPORT)
        );
        let six: SocketAddr = "[::1]:53".parse().unwrap();
        assert_eq!(
            parse_sockaddr(libc::AF_INET6, &format_sockaddr(libc::AF_INET6, six)),
            Ok(six)
        );
    }
}
