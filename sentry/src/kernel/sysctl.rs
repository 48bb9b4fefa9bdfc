//! The sysctls the sandbox honours: values the kernel acts on, read and
//! written by the guest through /proc/sys (root only) and set from the
//! container's config (`linux.sysctl`) at boot. A key not listed here is
//! not settable: the container's config naming it is refused instead of
//! ignored.

use super::task::lock;
use super::Kernel;
use crate::errno::{Errno, KResult};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

/// net.core.somaxconn: the largest listen backlog.
static SOMAXCONN: AtomicU32 = AtomicU32::new(4096);
/// net.ipv4.ip_unprivileged_port_start: the first port an unprivileged
/// process may bind.
static UNPRIVILEGED_PORT_START: AtomicU32 = AtomicU32::new(1024);
/// net.ipv4.ping_group_range: the groups that may create ICMP echo
/// sockets. Linux's default "1 0" is an empty range.
static PING_GROUP_RANGE: Mutex<(u32, u32)> = Mutex::new((1, 0));
/// kernel.domainname (uname's domainname, setdomainname(2)).
static DOMAINNAME: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// The keys `set` accepts, dotted as in config.json and sysctl(8).
pub const KEYS: &[&str] = &[
    "kernel.domainname",
    "kernel.hostname",
    "net.core.somaxconn",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ping_group_range",
];

pub fn somaxconn() -> usize {
    SOMAXCONN.load(Ordering::Relaxed) as usize
}

pub fn unprivileged_port_start() -> u32 {
    UNPRIVILEGED_PORT_START.load(Ordering::Relaxed)
}

/// Whether binding `port` needs privilege (CAP_NET_BIND_SERVICE).
pub fn port_is_privileged(port: u16) -> bool {
    port != 0 && u32::from(port) < unprivileged_port_start()
}

/// Whether a process in group `gid` (or with `groups`) may create ping
/// sockets.
pub fn ping_allowed(gid: u32, groups: &[u32]) -> bool {
    let (lo, hi) = *lock(&PING_GROUP_RANGE);
    std::iter::once(&gid)
        .chain(groups)
        .any(|g| (lo..=hi).contains(g))
}

/// uname's domainname: "(none)" until one is set, as on Linux.
pub fn domainname() -> Vec<u8> {
    let d = lock(&DOMAINNAME);
    if d.is_empty() {
        b"(none)".to_vec()
    } else {
        d.clone()
    }
}

/// setdomainname(2) and kernel.domainname: at most 64 bytes.
pub fn set_domainname(name: &[u8]) -> KResult<()> {
    if name.len() > 64 {
        return Err(Errno::EINVAL);
    }
    *lock(&DOMAINNAME) = name.to_vec();
    Ok(())
}

/// The text /proc/sys shows for `key` (with the newline), None for a key
/// not listed in KEYS.
pub fn get(kernel: &Kernel, key: &str) -> Option<Vec<u8>> {
    let mut v = match key {
        "kernel.domainname" => domainname(),
        "kernel.hostname" => lock(&kernel.hostname).clone(),
        "net.core.somaxconn" => somaxconn().to_string().into_bytes(),
        "net.ipv4.ip_unprivileged_port_start" => unprivileged_port_start().to_string().into_bytes(),
        "net.ipv4.ping_group_range" => {
            let (lo, hi) = *lock(&PING_GROUP_RANGE);
            format!("{lo}\t{hi}").into_bytes()
        }
        _ => return None,
    };
    v.push(b'\n');
    Some(v)
}

/// Sets `key` from what a write to its /proc/sys file (or the config)
/// gives: EINVAL for a value Linux would refuse, ENOENT for a key not in
/// KEYS. The caller checks privilege.
pub fn set(kernel: &Kernel, key: &str, value: &[u8]) -> KResult<()> {
    match key {
        "kernel.domainname" => set_domainname(first_line(value)),
        "kernel.hostname" => {
            let name = first_line(value);
            if name.len() > 64 {
                return Err(Errno::EINVAL);
            }
            *lock(&kernel.hostname) = name.to_vec();
            Ok(())
        }
        // An empty write changes nothing, as on Linux.
        _ if value.iter().all(u8::is_ascii_whitespace) && KEYS.contains(&key) => Ok(()),
        _ => {
            let parsed = parse(key, value)?;
            apply(parsed);
            Ok(())
        }
    }
}

/// Checks a config.json sysctl before any sandbox exists: the error says
/// what is wrong with it.
pub fn validate(key: &str, value: &str) -> Result<(), String> {
    if !KEYS.contains(&key) {
        return Err(format!(
            "not supported in the sandbox (settable: {})",
            KEYS.join(", ")
        ));
    }
    match key {
        "kernel.domainname" | "kernel.hostname" => {
            if first_line(value.as_bytes()).len() > 64 {
                return Err("longer than 64 bytes".into());
            }
            Ok(())
        }
        _ => parse(key, value.as_bytes())
            .map(|_| ())
            .map_err(|_| format!("invalid value {value:?}")),
    }
}

/// A numeric sysctl's new value.
enum Parsed {
    Somaxconn(u32),
    PortStart(u32),
    PingGroups(u32, u32),
}

fn parse(key: &str, value: &[u8]) -> KResult<Parsed> {
    let text = std::str::from_utf8(value).map_err(|_| Errno::EINVAL)?;
    let nums: Vec<i64> = text
        .split_ascii_whitespace()
        .map(|w| w.parse::<i64>().map_err(|_| Errno::EINVAL))
        .collect::<KResult<_>>()?;
    let in_range = |v: i64, max: i64| {
        if (0..=max).contains(&v) {
            Ok(v as u32)
        } else {
            Err(Errno::EINVAL)
        }
    };
    match (key, nums.as_slice()) {
        // Like Linux's proc_dointvec: values past the first are ignored.
        ("net.core.somaxconn", [v, ..]) => Ok(Parsed::Somaxconn(in_range(*v, i32::MAX as i64)?)),
        ("net.ipv4.ip_unprivileged_port_start", [v, ..]) => {
            Ok(Parsed::PortStart(in_range(*v, 65535)?))
        }
        // Group ids up to 2^31-1, as Linux's proc handler bounds them; a
        // reversed range is the empty default.
        ("net.ipv4.ping_group_range", [lo, hi, ..]) => {
            let (lo, hi) = (
                in_range(*lo, i32::MAX as i64)?,
                in_range(*hi, i32::MAX as i64)?,
            );
            Ok(if lo > hi {
                Parsed::PingGroups(1, 0)
            } else {
                Parsed::PingGroups(lo, hi)
            })
        }
        (k, _) if KEYS.contains(&k) => Err(Errno::EINVAL),
        _ => Err(Errno::ENOENT),
    }
}

fn apply(p: Parsed) {
    match p {
        Parsed::Somaxconn(v) => SOMAXCONN.store(v, Ordering::Relaxed),
        Parsed::PortStart(v) => UNPRIVILEGED_PORT_START.store(v, Ordering::Relaxed),
        Parsed::PingGroups(lo, hi) => *lock(&PING_GROUP_RANGE) = (lo, hi),
    }
}

/// A string sysctl's value: up to the first newline or NUL.
fn first_line(v: &[u8]) -> &[u8] {
    let end = v
        .iter()
        .position(|&c| c == b'\n' || c == 0)
        .unwrap_or(v.len());
    &v[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_names_what_is_wrong() {
        assert!(validate("net.core.somaxconn", "128").is_ok());
        assert!(validate("net.ipv4.ping_group_range", "0 2147483647").is_ok());
        assert!(validate("net.ipv4.ip_unprivileged_port_start", "0").is_ok());
        assert!(validate("net.ipv4.ip_unprivileged_port_start", "70000")
            .unwrap_err()
            .contains("invalid value"));
        assert!(validate("net.ipv4.ping_group_range", "5")
            .unwrap_err()
            .contains("invalid value"));
        assert!(validate("kernel.shmmax", "1")
            .unwrap_err()
            .contains("not supported"));
        assert!(validate("kernel.domainname", &"x".repeat(65)).is_err());
    }

    #[test]
    fn parse_refuses_what_linux_refuses() {
        assert!(matches!(
            parse("net.core.somaxconn", b"-1\n"),
            Err(Errno::EINVAL)
        ));
        assert!(matches!(
            parse("net.core.somaxconn", b"abc"),
            Err(Errno::EINVAL)
        ));
        assert!(matches!(
            parse("net.core.somaxconn", b""),
            Err(Errno::EINVAL)
        ));
        assert!(matches!(parse("vm.nothing", b"1"), Err(Errno::ENOENT)));
        assert!(matches!(
            parse("net.ipv4.ping_group_range", b"0\t10\n"),
            Ok(Parsed::PingGroups(0, 10))
        ));
        assert!(matches!(
            parse("net.ipv4.ping_group_range", b"5 1"),
            Ok(Parsed::PingGroups(1, 0))
        ));
        assert!(matches!(
            parse("net.core.somaxconn", b"5 6"),
            Ok(Parsed::Somaxconn(5))
        ));
    }
}
