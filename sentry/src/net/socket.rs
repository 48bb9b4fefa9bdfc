//! The socket interface every address family implements, and what the
//! socket system calls hand across it. The syscall layer
//! (`syscalls/sys_socket.rs`) copies addresses, data and ancillary data
//! in and out of guest memory; a `Socket` only sees byte slices, files and
//! credentials, and blocks (or not) on its own wait queues.

use crate::errno::{Errno, KResult};
use crate::kernel::task::Task;
use crate::vfs::{File, FileOps};
use std::sync::Arc;

/// SCM_CREDENTIALS / SO_PEERCRED contents (struct ucred).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ucred {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
}

impl Ucred {
    pub fn to_bytes(self) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[..4].copy_from_slice(&self.pid.to_le_bytes());
        b[4..8].copy_from_slice(&self.uid.to_le_bytes());
        b[8..].copy_from_slice(&self.gid.to_le_bytes());
        b
    }

    /// The sending task's own credentials (thread-group id, effective ids).
    pub fn of(t: &Task) -> Ucred {
        let c = t.creds();
        Ucred {
            pid: t.tgid(),
            uid: c.euid,
            gid: c.egid,
        }
    }
}

/// Ancillary data given to sendmsg, already checked and resolved by the
/// syscall layer (fds turned into files, credentials validated).
#[derive(Default)]
pub struct SendControl {
    pub rights: Vec<Arc<File>>,
    /// Explicit SCM_CREDENTIALS; None means "the sender's own" where the
    /// family attaches credentials anyway (SO_PASSCRED on the receiver).
    pub creds: Option<Ucred>,
}

/// Ancillary data a receive produced, for the syscall layer to install
/// and copy out.
#[derive(Default)]
pub struct RecvControl {
    pub rights: Vec<Arc<File>>,
    pub creds: Option<Ucred>,
    /// Other control messages, in order: (cmsg_level, cmsg_type, data)
    /// (timestamps, IP_PKTINFO, IP_TOS, IPV6_PKTINFO, ...).
    pub other: Vec<(i32, i32, Vec<u8>)>,
}

/// SO_TIMESTAMPNS (and its SCM_TIMESTAMPNS cmsg type).
pub const SO_TIMESTAMPNS: i32 = 35;

/// The receive timestamp control message SO_TIMESTAMP/SO_TIMESTAMPNS ask
/// for: SCM_TIMESTAMP (struct timeval) or SCM_TIMESTAMPNS (timespec), of
/// `ns` nanoseconds since the epoch.
pub fn timestamp_cmsg(ns: bool, at_ns: i64) -> (i32, i32, Vec<u8>) {
    let sec = at_ns.div_euclid(1_000_000_000);
    let sub = at_ns.rem_euclid(1_000_000_000);
    let mut b = sec.to_le_bytes().to_vec();
    if ns {
        b.extend_from_slice(&sub.to_le_bytes());
        (libc::SOL_SOCKET, SO_TIMESTAMPNS, b)
    } else {
        b.extend_from_slice(&(sub / 1000).to_le_bytes());
        (libc::SOL_SOCKET, libc::SO_TIMESTAMP, b)
    }
}

/// The result of one recvmsg.
#[derive(Default)]
pub struct RecvMsg {
    /// Bytes copied into the caller's buffer.
    pub copied: usize,
    /// The whole datagram's length (equals `copied` for streams): what
    /// recv returns under MSG_TRUNC.
    pub full: usize,
    /// The sender's address as a sockaddr, when the family reports one.
    pub addr: Option<Vec<u8>>,
    pub control: RecvControl,
}

/// One socket: the file behind a socket fd answers `as_socket()` with
/// this. Addresses are raw `struct sockaddr` bytes as the guest passed
/// them (the family checks their length and contents). `nonblock` comes
/// from O_NONBLOCK or MSG_DONTWAIT. Blocking calls wait with
/// `Task::block_until`, so signals interrupt them (ERESTARTSYS).
pub trait Socket: Send + Sync {
    fn family(&self) -> i32;
    fn sock_type(&self) -> i32;
    fn protocol(&self) -> i32;

    fn bind(&self, t: &Task, addr: &[u8]) -> KResult<()>;
    fn listen(&self, t: &Task, backlog: i32) -> KResult<()>;
    /// A new connection: its file operations (a socket too) and the
    /// peer's address.
    fn accept(&self, t: &Task, nonblock: bool) -> KResult<(Arc<dyn FileOps>, Vec<u8>)>;
    fn connect(&self, t: &Task, addr: &[u8], nonblock: bool) -> KResult<()>;
    /// getsockname(2) as a sockaddr.
    fn sockname(&self) -> KResult<Vec<u8>>;
    /// getpeername(2) as a sockaddr; ENOTCONN when not connected.
    fn peername(&self) -> KResult<Vec<u8>>;

    /// EPIPE is returned as is: the syscall layer raises SIGPIPE unless
    /// MSG_NOSIGNAL.
    fn sendmsg(
        &self,
        t: &Task,
        data: &[u8],
        to: Option<&[u8]>,
        control: SendControl,
        flags: i32,
        nonblock: bool,
    ) -> KResult<usize>;
    /// `flags`: MSG_PEEK, MSG_WAITALL, MSG_TRUNC, MSG_OOB… (the family
    /// refuses what it does not do).
    fn recvmsg(&self, t: &Task, buf: &mut [u8], flags: i32, nonblock: bool) -> KResult<RecvMsg>;
    fn shutdown(&self, t: &Task, how: i32) -> KResult<()>;

    /// Options other than the ones every socket answers the same way
    /// (SO_TYPE, SO_DOMAIN, SO_PROTOCOL, which the syscall layer does).
    /// Returns the value's bytes; the caller truncates to the guest's
    /// length.
    fn getsockopt(&self, t: &Task, level: i32, name: i32, len: usize) -> KResult<Vec<u8>>;
    fn setsockopt(&self, t: &Task, level: i32, name: i32, val: &[u8]) -> KResult<()>;
}

/// An int option value as getsockopt returns it.
pub fn int_opt(v: i32) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

/// Reads an int option value (setsockopt): Linux takes the first 4 bytes
/// and refuses shorter values.
pub fn read_int_opt(val: &[u8]) -> KResult<i32> {
    let b: [u8; 4] = val
        .get(..4)
        .and_then(|s| s.try_into().ok())
        .ok_or(Errno::EINVAL)?;
    Ok(i32::from_le_bytes(b))
}

/// The socket behind a file, or ENOTSOCK.
pub fn socket_of(f: &File) -> KResult<&dyn Socket> {
    f.ops.as_socket().ok_or(Errno::ENOTSOCK)
}

/// struct timeval as SO_RCVTIMEO/SO_SNDTIMEO carry it; None is "forever".
fn timeval_bytes(d: Option<std::time::Duration>) -> Vec<u8> {
    let d = d.unwrap_or_default();
    let mut b = (d.as_secs() as i64).to_le_bytes().to_vec();
    b.extend_from_slice(&(d.subsec_micros() as i64).to_le_bytes());
    b
}

fn read_timeval(val: &[u8]) -> KResult<Option<std::time::Duration>> {
    if val.len() < 16 {
        return Err(Errno::EINVAL);
    }
    let sec = i64::from_le_bytes(val[..8].try_into().map_err(|_| Errno::EINVAL)?);
    let usec = i64::from_le_bytes(val[8..16].try_into().map_err(|_| Errno::EINVAL)?);
    if !(0..1_000_000).contains(&usec) {
        return Err(Errno::EDOM);
    }
    if sec < 0 || (sec == 0 && usec == 0) {
        // Linux treats a negative time as "do not wait at all" only for
        // sec < 0 with a warning; zero means no timeout.
        return Ok(None);
    }
    Ok(Some(
        std::time::Duration::from_secs(sec as u64) + std::time::Duration::from_micros(usec as u64),
    ))
}

/// The SOL_SOCKET options whose meaning does not depend on the family:
/// stored and reported, with the timeouts used by the family's blocking
/// calls.
#[derive(Clone, Debug)]
pub struct CommonOpts {
    pub reuseaddr: bool,
    pub reuseport: bool,
    pub keepalive: bool,
    pub broadcast: bool,
    pub oobinline: bool,
    pub dontroute: bool,
    /// (l_onoff, l_linger)
    pub linger: (i32, i32),
    pub rcvtimeo: Option<std::time::Duration>,
    pub sndtimeo: Option<std::time::Duration>,
    pub rcvlowat: i32,
    pub priority: i32,
    pub mark: u32,
    pub timestamp: bool,
}

impl Default for CommonOpts {
    fn default() -> Self {
        CommonOpts {
            reuseaddr: false,
            reuseport: false,
            keepalive: false,
            broadcast: false,
            oobinline: false,
            dontroute: false,
            linger: (0, 0),
            rcvtimeo: None,
            sndtimeo: None,
            rcvlowat: 1,
            priority: 0,
            mark: 0,
            timestamp: false,
        }
    }
}

impl CommonOpts {
    /// getsockopt(SOL_SOCKET, name) if `name` is one of these options.
    pub fn get(&self, name: i32) -> Option<Vec<u8>> {
        Some(match name {
            libc::SO_REUSEADDR => int_opt(self.reuseaddr as i32),
            libc::SO_REUSEPORT => int_opt(self.reuseport as i32),
            libc::SO_KEEPALIVE => int_opt(self.keepalive as i32),
            libc::SO_BROADCAST => int_opt(self.broadcast as i32),
            libc::SO_OOBINLINE => int_opt(self.oobinline as i32),
            libc::SO_DONTROUTE => int_opt(self.dontroute as i32),
            libc::SO_TIMESTAMP => int_opt(self.timestamp as i32),
            libc::SO_LINGER => {
                let mut b = self.linger.0.to_le_bytes().to_vec();
                b.extend_from_slice(&self.linger.1.to_le_bytes());
                b
            }
            libc::SO_RCVTIMEO => timeval_bytes(self.rcvtimeo),
            libc::SO_SNDTIMEO => timeval_bytes(self.sndtimeo),
            libc::SO_RCVLOWAT => int_opt(self.rcvlowat),
            libc::SO_SNDLOWAT => int_opt(1),
            libc::SO_PRIORITY => int_opt(self.priority),
            libc::SO_MARK => int_opt(self.mark as i32),
            _ => return None,
        })
    }

    /// setsockopt(SOL_SOCKET, name): None if `name` is not one of these.
    pub fn set(&mut self, name: i32, val: &[u8]) -> Option<KResult<()>> {
        let flag = |v: &[u8]| read_int_opt(v).map(|i| i != 0);
        let r = match name {
            libc::SO_REUSEADDR => flag(val).map(|b| self.reuseaddr = b),
            libc::SO_REUSEPORT => flag(val).map(|b| self.reuseport = b),
            libc::SO_KEEPALIVE => flag(val).map(|b| self.keepalive = b),
            libc::SO_BROADCAST => flag(val).map(|b| self.broadcast = b),
            libc::SO_OOBINLINE => flag(val).map(|b| self.oobinline = b),
            libc::SO_DONTROUTE => flag(val).map(|b| self.dontroute = b),
            libc::SO_TIMESTAMP => flag(val).map(|b| self.timestamp = b),
            libc::SO_LINGER => {
                if val.len() < 8 {
                    Err(Errno::EINVAL)
                } else {
                    read_int_opt(val).and_then(|on| {
                        read_int_opt(&val[4..]).map(|secs| self.linger = ((on != 0) as i32, secs))
                    })
                }
            }
            libc::SO_RCVTIMEO => read_timeval(val).map(|d| self.rcvtimeo = d),
            libc::SO_SNDTIMEO => read_timeval(val).map(|d| self.sndtimeo = d),
            libc::SO_RCVLOWAT => read_int_opt(val).map(|v| self.rcvlowat = v.max(1)),
            // SO_SNDLOWAT cannot be changed on Linux.
            libc::SO_SNDLOWAT => Err(Errno::ENOPROTOOPT),
            libc::SO_PRIORITY => read_int_opt(val).map(|v| self.priority = v),
            libc::SO_MARK => read_int_opt(val).map(|v| self.mark = v as u32),
            _ => return None,
        };
        Some(r)
    }
}

/// The deadline for a blocking call under a SO_RCVTIMEO/SO_SNDTIMEO.
pub fn deadline(timeo: Option<std::time::Duration>) -> Option<std::time::Instant> {
    timeo.map(|d| std::time::Instant::now() + d)
}

/// Maps the end of a blocking socket wait like Linux: a timeout is EAGAIN,
/// and a signal is EINTR when a timeout was set (not restarted).
pub fn wait_errno(e: Errno, timeo: Option<std::time::Duration>) -> Errno {
    match e {
        Errno::ETIMEDOUT => Errno::EAGAIN,
        e if e.is_restart() && timeo.is_some() => Errno::EINTR,
        e => e,
    }
}

/// What fstat shows for a socket: an S_IFSOCK inode of the socket
/// filesystem, owned by its creator, all times its creation.
pub fn socket_stat(ino: u64, uid: u32, gid: u32, ctime: crate::vfs::Timespec) -> crate::vfs::Stat {
    crate::vfs::Stat {
        dev: super::unix::sockfs_dev(),
        ino,
        mode: libc::S_IFSOCK | 0o777,
        nlink: 1,
        uid,
        gid,
        rdev: 0,
        size: 0,
        blksize: 4096,
        blocks: 0,
        atime: ctime,
        mtime: ctime,
        ctime,
    }
}
