//! Socket system calls. This layer copies addresses, data and ancillary
//! data between guest memory and the `net::socket::Socket` of the file;
//! the address families do the rest.

use super::sys_file::{gather, get_file, install, iovecs, scatter, sigpipe, MAX_RW};
use super::Args;
use crate::errno::{Errno, KResult};
use crate::kernel::task::CurrentTask;
use crate::net::socket::{socket_of, RecvMsg, SendControl, Socket, Ucred};
use crate::net::{self, unix};
use crate::vfs::{File, FileOps};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// sizeof(struct sockaddr_storage): the longest address bind/connect take.
const SOCKADDR_MAX: u32 = 128;
/// SCM_MAX_FD: the most fds one SCM_RIGHTS message carries.
const SCM_MAX_FD: usize = 253;
const CMSG_HDR: usize = 16;
const MSGHDR_SIZE: u64 = 56;
const MMSGHDR_SIZE: u64 = 64;
/// UIO_MAXIOV: the most messages one sendmmsg/recvmmsg handles.
const MMSG_MAX: u64 = 1024;

fn cmsg_align(n: usize) -> usize {
    (n + 7) & !7
}

/// SOCK_NONBLOCK/SOCK_CLOEXEC as (O_ flags, cloexec).
fn sock_flags(flags: i32) -> (u32, bool) {
    let mut fl = libc::O_RDWR as u32;
    if flags & libc::SOCK_NONBLOCK != 0 {
        fl |= libc::O_NONBLOCK as u32;
    }
    (fl, flags & libc::SOCK_CLOEXEC != 0)
}

/// Splits socket(2)'s type argument into (type, flags); EINVAL for
/// unknown flag bits.
fn split_type(ty_flags: i32) -> KResult<(i32, i32)> {
    let flags = ty_flags & !0xf;
    if flags & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    Ok((ty_flags & 0xf, flags))
}

fn new_file(ops: Arc<dyn FileOps>, flags: i32) -> Arc<File> {
    File::new(ops, sock_flags(flags).0, None)
}

pub fn socket(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let (domain, ty_flags, proto) = (a[0] as i32, a[1] as i32, a[2] as i32);
    let (ty, flags) = split_type(ty_flags)?;
    let ops = net::new_socket(&t.task, domain, ty, proto)?;
    install(t, new_file(ops, flags), sock_flags(flags).1)
}

pub fn socketpair(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let (domain, ty_flags, proto, addr) = (a[0] as i32, a[1] as i32, a[2] as i32, a[3]);
    let (ty, flags) = split_type(ty_flags)?;
    if domain != libc::AF_UNIX {
        return Err(if matches!(domain, libc::AF_INET | libc::AF_INET6) {
            Errno::EOPNOTSUPP
        } else {
            Errno::EAFNOSUPPORT
        });
    }
    let (x, y) = unix::new_pair(&t.task, ty, proto)?;
    let cloexec = sock_flags(flags).1;
    let fx = install(t, new_file(x, flags), cloexec)?;
    let fy = match install(t, new_file(y, flags), cloexec) {
        Ok(fd) => fd,
        Err(e) => {
            let _ = t.fd_table().remove(fx as i32);
            return Err(e);
        }
    };
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&(fx as i32).to_le_bytes());
    b[4..].copy_from_slice(&(fy as i32).to_le_bytes());
    if let Err(e) = t.mm.copy_out(addr, &b) {
        let _ = t.fd_table().remove(fx as i32);
        let _ = t.fd_table().remove(fy as i32);
        return Err(e);
    }
    Ok(0)
}

/// A sockaddr the guest passes in (bind, connect, sendto).
fn read_addr(t: &CurrentTask, addr: u64, len: u64) -> KResult<Vec<u8>> {
    let len = len as u32;
    if len > SOCKADDR_MAX || (len as i32) < 0 {
        return Err(Errno::EINVAL);
    }
    let mut b = vec![0u8; len as usize];
    t.mm.copy_in(addr, &mut b)?;
    Ok(b)
}

/// Copies a sockaddr out to (addr, *lenp): truncated to the guest's
/// length, which is then set to the full length.
fn write_addr(t: &CurrentTask, addr: u64, lenp: u64, sa: &[u8]) -> KResult<()> {
    let len = t.mm.read_u32(lenp)? as i32;
    if len < 0 {
        return Err(Errno::EINVAL);
    }
    let n = (len as usize).min(sa.len());
    if n > 0 {
        t.mm.copy_out(addr, &sa[..n])?;
    }
    t.mm.write_u32(lenp, sa.len() as u32)
}

fn sock(f: &File) -> KResult<&dyn Socket> {
    socket_of(f)
}

pub fn bind(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let f = get_file(t, a[0])?;
    let s = sock(&f)?;
    let addr = read_addr(t, a[1], a[2])?;
    s.bind(&t.task, &addr)?;
    Ok(0)
}

pub fn listen(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let f = get_file(t, a[0])?;
    sock(&f)?.listen(&t.task, a[1] as i32)?;
    Ok(0)
}

pub fn connect(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let f = get_file(t, a[0])?;
    let s = sock(&f)?;
    let addr = read_addr(t, a[1], a[2])?;
    s.connect(&t.task, &addr, f.nonblocking())?;
    Ok(0)
}

fn do_accept(t: &mut CurrentTask, a: &Args, flags: i32) -> KResult<u64> {
    if flags & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    let f = get_file(t, a[0])?;
    let s = sock(&f)?;
    if a[1] != 0 {
        // A bad length fails before a connection is taken.
        if (t.mm.read_u32(a[2])? as i32) < 0 {
            return Err(Errno::EINVAL);
        }
    }
    let (ops, peer) = s.accept(&t.task, f.nonblocking())?;
    let fd = install(t, new_file(ops, flags), sock_flags(flags).1)?;
    if a[1] != 0 {
        if let Err(e) = write_addr(t, a[1], a[2], &peer) {
            let _ = t.fd_table().remove(fd as i32);
            return Err(e);
        }
    }
    Ok(fd)
}

pub fn accept(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    do_accept(t, a, 0)
}

pub fn accept4(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    do_accept(t, a, a[3] as i32)
}

pub fn getsockname(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let f = get_file(t, a[0])?;
    let sa = sock(&f)?.sockname()?;
    write_addr(t, a[1], a[2], &sa)?;
    Ok(0)
}

pub fn getpeername(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let f = get_file(t, a[0])?;
    let sa = sock(&f)?.peername()?;
    write_addr(t, a[1], a[2], &sa)?;
    Ok(0)
}

pub fn shutdown(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let f = get_file(t, a[0])?;
    sock(&f)?.shutdown(&t.task, a[1] as i32)?;
    Ok(0)
}

/// Parses msg_control for sendmsg: SCM_RIGHTS fds become files,
/// SCM_CREDENTIALS are checked against the sender's credentials.
fn read_control(t: &CurrentTask, addr: u64, len: u64) -> KResult<SendControl> {
    let mut ctl = SendControl::default();
    if len == 0 {
        return Ok(ctl);
    }
    if len > i32::MAX as u64 {
        return Err(Errno::ENOBUFS);
    }
    let mut buf = vec![0u8; len as usize];
    t.mm.copy_in(addr, &mut buf)?;
    let mut off = 0;
    while buf.len() - off >= CMSG_HDR {
        let h = &buf[off..];
        let clen = u64::from_le_bytes(h[..8].try_into().map_err(|_| Errno::EINVAL)?) as usize;
        let level = i32::from_le_bytes(h[8..12].try_into().map_err(|_| Errno::EINVAL)?);
        let ty = i32::from_le_bytes(h[12..16].try_into().map_err(|_| Errno::EINVAL)?);
        if clen < CMSG_HDR || clen > buf.len() - off {
            return Err(Errno::EINVAL);
        }
        let data = &h[CMSG_HDR..clen];
        if level == libc::SOL_SOCKET {
            match ty {
                libc::SCM_RIGHTS => {
                    let n = data.len() / 4;
                    if n == 0 || ctl.rights.len() + n > SCM_MAX_FD {
                        return Err(Errno::EINVAL);
                    }
                    for c in data.chunks_exact(4) {
                        let fd = i32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                        ctl.rights.push(t.fd_table().get(fd)?);
                    }
                }
                libc::SCM_CREDENTIALS => {
                    if data.len() != 12 {
                        return Err(Errno::EINVAL);
                    }
                    let word = |i: usize| {
                        u32::from_le_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]])
                    };
                    let cred = Ucred {
                        pid: word(0) as i32,
                        uid: word(4),
                        gid: word(8),
                    };
                    check_creds(t, cred)?;
                    ctl.creds = Some(cred);
                }
                _ => return Err(Errno::EINVAL),
            }
        }
        off += cmsg_align(clen).min(buf.len() - off);
    }
    Ok(ctl)
}

/// Linux's scm_check_creds: a sender may claim its own pid and any of its
/// real/effective/saved ids; CAP_SYS_ADMIN lets it claim any pid,
/// CAP_SETUID any uid, CAP_SETGID any gid.
fn check_creds(t: &CurrentTask, c: Ucred) -> KResult<()> {
    use crate::kernel::caps::{CAP_SETGID, CAP_SETUID, CAP_SYS_ADMIN};
    let cr = t.creds();
    let pid_ok = c.pid == t.task.tgid() || cr.capable(CAP_SYS_ADMIN);
    let uid_ok = [cr.ruid, cr.euid, cr.suid].contains(&c.uid) || cr.capable(CAP_SETUID);
    let gid_ok = [cr.rgid, cr.egid, cr.sgid].contains(&c.gid) || cr.capable(CAP_SETGID);
    if !pid_ok || !uid_ok || !gid_ok {
        return Err(Errno::EPERM);
    }
    Ok(())
}

/// Writes received ancillary data to msg_control like Linux's put_cmsg
/// and scm_detach_fds: credentials first, then as many fds as fit.
/// Returns (bytes used, MSG_CTRUNC or 0).
fn write_control(
    t: &CurrentTask,
    addr: u64,
    space: u64,
    m: RecvMsg,
    cloexec: bool,
) -> KResult<(u64, i32)> {
    let space = space.min(i32::MAX as u64) as usize;
    let mut out: Vec<u8> = Vec::new();
    let mut trunc = 0;
    let put = |out: &mut Vec<u8>, level: i32, ty: i32, data: &[u8], trunc: &mut i32| {
        let left = space - out.len();
        if left < CMSG_HDR {
            *trunc = libc::MSG_CTRUNC;
            return;
        }
        let full = CMSG_HDR + data.len();
        let clen = full.min(left);
        if clen < full {
            *trunc = libc::MSG_CTRUNC;
        }
        out.extend_from_slice(&(clen as u64).to_le_bytes());
        out.extend_from_slice(&level.to_le_bytes());
        out.extend_from_slice(&ty.to_le_bytes());
        out.extend_from_slice(&data[..clen - CMSG_HDR]);
        let pad = cmsg_align(clen).min(left) - clen;
        out.extend(std::iter::repeat(0).take(pad));
    };
    if let Some(c) = m.control.creds {
        put(
            &mut out,
            libc::SOL_SOCKET,
            libc::SCM_CREDENTIALS,
            &c.to_bytes(),
            &mut trunc,
        );
    }
    if !m.control.rights.is_empty() {
        let left = space - out.len();
        let fit = left.saturating_sub(CMSG_HDR) / 4;
        if fit < m.control.rights.len() {
            trunc = libc::MSG_CTRUNC;
        }
        let mut fds = Vec::new();
        for f in m.control.rights.into_iter().take(fit) {
            match install(t, f, cloexec) {
                Ok(fd) => fds.extend_from_slice(&(fd as i32).to_le_bytes()),
                Err(_) => {
                    trunc = libc::MSG_CTRUNC;
                    break;
                }
            }
        }
        if !fds.is_empty() {
            put(
                &mut out,
                libc::SOL_SOCKET,
                libc::SCM_RIGHTS,
                &fds,
                &mut trunc,
            );
        }
    }
    for (level, ty, data) in &m.control.other {
        put(&mut out, *level, *ty, data, &mut trunc);
    }
    if !out.is_empty() {
        t.mm.copy_out(addr, &out)?;
    }
    Ok((out.len() as u64, trunc))
}

struct MsgHdr {
    name: u64,
    namelen: u32,
    iov: u64,
    iovlen: u64,
    control: u64,
    controllen: u64,
}

fn read_msghdr(t: &CurrentTask, addr: u64) -> KResult<MsgHdr> {
    let mut b = [0u8; MSGHDR_SIZE as usize];
    t.mm.copy_in(addr, &mut b)?;
    let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
    Ok(MsgHdr {
        name: u64_at(0),
        namelen: u32::from_le_bytes(b[8..12].try_into().unwrap_or([0; 4])),
        iov: u64_at(16),
        iovlen: u64_at(24),
        control: u64_at(32),
        controllen: u64_at(40),
    })
}

fn nonblocking(f: &File, flags: i32) -> bool {
    f.nonblocking() || flags & libc::MSG_DONTWAIT != 0
}

/// One send: EPIPE raises SIGPIPE unless MSG_NOSIGNAL.
fn send_one(
    t: &CurrentTask,
    f: &File,
    data: &[u8],
    to: Option<&[u8]>,
    ctl: SendControl,
    flags: i32,
) -> KResult<u64> {
    let s = sock(f)?;
    let r = s.sendmsg(&t.task, data, to, ctl, flags, nonblocking(f, flags));
    if flags & libc::MSG_NOSIGNAL != 0 {
        return Ok(r? as u64);
    }
    Ok(sigpipe(t, r)? as u64)
}

fn recv_one(t: &CurrentTask, f: &File, len: usize, flags: i32) -> KResult<(Vec<u8>, RecvMsg)> {
    let s = sock(f)?;
    let mut buf = vec![0u8; len.min(MAX_RW)];
    let m = s.recvmsg(&t.task, &mut buf, flags, nonblocking(f, flags))?;
    buf.truncate(m.copied);
    Ok((buf, m))
}

/// What recv returns: the full datagram length under MSG_TRUNC (not for
/// streams), else what was copied.
fn recv_ret(s: &dyn Socket, m: &RecvMsg, flags: i32) -> u64 {
    if flags & libc::MSG_TRUNC != 0 && s.sock_type() != libc::SOCK_STREAM {
        m.full as u64
    } else {
        m.copied as u64
    }
}

pub fn sendto(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let f = get_file(t, a[0])?;
    sock(&f)?;
    let to = if a[4] != 0 {
        Some(read_addr(t, a[4], a[5])?)
    } else {
        None
    };
    let mut buf = vec![0u8; (a[2] as usize).min(MAX_RW)];
    t.mm.copy_in(a[1], &mut buf)?;
    send_one(
        t,
        &f,
        &buf,
        to.as_deref(),
        SendControl::default(),
        a[3] as i32,
    )
}

pub fn recvfrom(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let f = get_file(t, a[0])?;
    let flags = a[3] as i32;
    let (buf, m) = recv_one(t, &f, a[2] as usize, flags)?;
    t.mm.copy_out(a[1], &buf)?;
    if a[4] != 0 {
        match &m.addr {
            Some(sa) => write_addr(t, a[4], a[5], sa)?,
            None => t.mm.write_u32(a[5], 0)?,
        }
    }
    Ok(recv_ret(sock(&f)?, &m, flags))
}

fn do_sendmsg(t: &CurrentTask, f: &File, hdr: u64, flags: i32) -> KResult<u64> {
    sock(f)?;
    let m = read_msghdr(t, hdr)?;
    let to = if m.name != 0 && m.namelen != 0 {
        Some(read_addr(t, m.name, m.namelen as u64)?)
    } else {
        None
    };
    let iov = iovecs(t, m.iov, m.iovlen)?;
    let ctl = read_control(t, m.control, m.controllen)?;
    let buf = gather(t, &iov)?;
    send_one(t, f, &buf, to.as_deref(), ctl, flags)
}

fn do_recvmsg(t: &CurrentTask, f: &File, hdr: u64, flags: i32) -> KResult<u64> {
    let s = sock(f)?;
    let m = read_msghdr(t, hdr)?;
    let iov = iovecs(t, m.iov, m.iovlen)?;
    let total: usize = iov.iter().map(|v| v.1).sum();
    let (buf, r) = recv_one(t, f, total, flags & !libc::MSG_CMSG_CLOEXEC)?;
    scatter(t, &iov, &buf)?;
    let ret = recv_ret(s, &r, flags);
    let mut out_flags = 0;
    if r.full > r.copied {
        out_flags |= libc::MSG_TRUNC;
    }
    if m.name != 0 {
        match &r.addr {
            Some(sa) => {
                let n = (m.namelen as usize).min(sa.len());
                t.mm.copy_out(m.name, &sa[..n])?;
                t.mm.write_u32(hdr + 8, sa.len() as u32)?;
            }
            None => t.mm.write_u32(hdr + 8, 0)?,
        }
    }
    let (used, ctrunc) = write_control(
        t,
        m.control,
        m.controllen,
        r,
        flags & libc::MSG_CMSG_CLOEXEC != 0,
    )?;
    t.mm.write_u64(hdr + 40, used)?;
    t.mm.write_u32(hdr + 48, (out_flags | ctrunc) as u32)?;
    Ok(ret)
}

pub fn sendmsg(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let f = get_file(t, a[0])?;
    do_sendmsg(t, &f, a[1], a[2] as i32)
}

pub fn recvmsg(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let f = get_file(t, a[0])?;
    do_recvmsg(t, &f, a[1], a[2] as i32)
}

pub fn sendmmsg(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let f = get_file(t, a[0])?;
    sock(&f)?;
    let (vec, vlen, flags) = (a[1], a[2].min(MMSG_MAX), a[3] as i32);
    let mut n = 0;
    while n < vlen {
        let hdr = vec + n * MMSGHDR_SIZE;
        match do_sendmsg(t, &f, hdr, flags) {
            Ok(sent) => t.mm.write_u32(hdr + MSGHDR_SIZE, sent as u32)?,
            Err(_) if n > 0 => break,
            Err(e) => return Err(e),
        }
        n += 1;
    }
    Ok(n)
}

pub fn recvmmsg(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let f = get_file(t, a[0])?;
    sock(&f)?;
    let (vec, vlen, mut flags) = (a[1], a[2].min(MMSG_MAX), a[3] as i32);
    let deadline = if a[4] != 0 {
        let sec = t.mm.read_u64(a[4])? as i64;
        let nsec = t.mm.read_u64(a[4] + 8)? as i64;
        if sec < 0 || !(0..1_000_000_000).contains(&nsec) {
            return Err(Errno::EINVAL);
        }
        Some(Instant::now() + Duration::new(sec as u64, nsec as u32))
    } else {
        None
    };
    let mut n = 0;
    while n < vlen {
        let hdr = vec + n * MMSGHDR_SIZE;
        match do_recvmsg(t, &f, hdr, flags & !libc::MSG_WAITFORONE) {
            Ok(got) => t.mm.write_u32(hdr + MSGHDR_SIZE, got as u32)?,
            Err(_) if n > 0 => break,
            Err(e) => return Err(e),
        }
        n += 1;
        if flags & libc::MSG_WAITFORONE != 0 {
            flags |= libc::MSG_DONTWAIT;
        }
        // Like Linux, the timeout is only looked at between datagrams.
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
    }
    Ok(n)
}

pub fn getsockopt(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let f = get_file(t, a[0])?;
    let s = sock(&f)?;
    let (level, name, val, lenp) = (a[1] as i32, a[2] as i32, a[3], a[4]);
    let len = t.mm.read_u32(lenp)? as i32;
    if len < 0 {
        return Err(Errno::EINVAL);
    }
    let v = match (level, name) {
        (libc::SOL_SOCKET, libc::SO_TYPE) => s.sock_type().to_le_bytes().to_vec(),
        (libc::SOL_SOCKET, libc::SO_DOMAIN) => s.family().to_le_bytes().to_vec(),
        (libc::SOL_SOCKET, libc::SO_PROTOCOL) => s.protocol().to_le_bytes().to_vec(),
        _ => s.getsockopt(&t.task, level, name, len as usize)?,
    };
    let n = (len as usize).min(v.len());
    t.mm.copy_out(val, &v[..n])?;
    t.mm.write_u32(lenp, n as u32)?;
    Ok(0)
}

pub fn setsockopt(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let f = get_file(t, a[0])?;
    let s = sock(&f)?;
    let (level, name, val, len) = (a[1] as i32, a[2] as i32, a[3], a[4] as i32);
    if len < 0 {
        return Err(Errno::EINVAL);
    }
    let mut b = vec![0u8; (len as usize).min(4096)];
    t.mm.copy_in(val, &mut b)?;
    s.setsockopt(&t.task, level, name, &b)?;
    Ok(0)
}
