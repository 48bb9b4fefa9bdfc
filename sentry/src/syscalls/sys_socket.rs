//! Socket system calls for connected AF_UNIX pairs (socketpair(2)).
//! socket(2) itself is not implemented yet (ENOSYS): there is no bind,
//! connect or listen, so every socket here comes from socketpair.

use super::sys_file::{get_file, install, iovecs, sigpipe, MAX_RW};
use super::Args;
use crate::errno::{Errno, KResult};
use crate::kernel::task::CurrentTask;
use crate::net::unix::{self, UnixEndpoint};
use crate::vfs::File;

fn endpoint(f: &File) -> KResult<&UnixEndpoint> {
    f.ops
        .as_any()
        .downcast_ref::<UnixEndpoint>()
        .ok_or(Errno::ENOTSOCK)
}

pub fn socketpair(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let (domain, ty_flags, proto, addr) = (a[0] as i32, a[1] as i32, a[2] as i32, a[3]);
    if domain != libc::AF_UNIX {
        return Err(Errno::EAFNOSUPPORT);
    }
    let flags = ty_flags & (libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC);
    let ty = ty_flags & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC);
    if !matches!(
        ty,
        libc::SOCK_STREAM | libc::SOCK_SEQPACKET | libc::SOCK_DGRAM
    ) {
        return Err(Errno::ESOCKTNOSUPPORT);
    }
    if proto != 0 {
        return Err(Errno::EPROTONOSUPPORT);
    }
    let c = t.creds();
    let (x, y) = unix::new_pair(ty, c.fsuid, c.fsgid);
    let mut fl = libc::O_RDWR as u32;
    if flags & libc::SOCK_NONBLOCK != 0 {
        fl |= libc::O_NONBLOCK as u32;
    }
    let cloexec = flags & libc::SOCK_CLOEXEC != 0;
    let fx = install(t, File::new(x, fl, None), cloexec)?;
    let fy = match install(t, File::new(y, fl, None), cloexec) {
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

fn do_send(t: &CurrentTask, f: &File, buf: &[u8], flags: i32) -> KResult<u64> {
    let ep = endpoint(f)?;
    let nonblock = f.nonblocking() || flags & libc::MSG_DONTWAIT != 0;
    let r = ep.send(&t.task, buf, nonblock);
    if flags & libc::MSG_NOSIGNAL != 0 {
        return Ok(r? as u64);
    }
    Ok(sigpipe(t, r)? as u64)
}

/// Receives into a staging buffer of `len` bytes; returns (data, recv).
fn do_recv(t: &CurrentTask, f: &File, len: usize, flags: i32) -> KResult<(Vec<u8>, unix::Recv)> {
    let ep = endpoint(f)?;
    if flags & libc::MSG_OOB != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    let nonblock = f.nonblocking() || flags & libc::MSG_DONTWAIT != 0;
    let mut buf = vec![0u8; len.min(MAX_RW)];
    let r = ep.recv(
        &t.task,
        &mut buf,
        nonblock,
        flags & libc::MSG_PEEK != 0,
        flags & libc::MSG_WAITALL != 0,
    )?;
    buf.truncate(r.copied);
    Ok((buf, r))
}

/// The value recv returns: the full packet length under MSG_TRUNC
/// (packets only), else what was copied.
fn recv_ret(ep: &UnixEndpoint, r: &unix::Recv, flags: i32) -> u64 {
    if flags & libc::MSG_TRUNC != 0 && ep.sock_type() != libc::SOCK_STREAM {
        r.full as u64
    } else {
        r.copied as u64
    }
}

/// A sender address is never reported: pair endpoints are unnamed, and
/// Linux then sets the address length to 0.
fn no_addr(t: &CurrentTask, addrlen: u64) -> KResult<()> {
    if addrlen != 0 {
        t.mm.write_u32(addrlen, 0)?;
    }
    Ok(())
}

pub fn sendto(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let f = get_file(t, a[0])?;
    endpoint(&f)?;
    if a[4] != 0 {
        return Err(Errno::EISCONN);
    }
    let mut buf = vec![0u8; (a[2] as usize).min(MAX_RW)];
    t.mm.copy_in(a[1], &mut buf)?;
    do_send(t, &f, &buf, a[3] as i32)
}

pub fn recvfrom(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let f = get_file(t, a[0])?;
    let flags = a[3] as i32;
    let (buf, r) = do_recv(t, &f, a[2] as usize, flags)?;
    t.mm.copy_out(a[1], &buf)?;
    if a[4] != 0 {
        no_addr(t, a[5])?;
    }
    Ok(recv_ret(endpoint(&f)?, &r, flags))
}

struct MsgHdr {
    name: u64,
    iov: u64,
    iovlen: u64,
    controllen: u64,
}

fn read_msghdr(t: &CurrentTask, addr: u64) -> KResult<MsgHdr> {
    Ok(MsgHdr {
        name: t.mm.read_u64(addr)?,
        iov: t.mm.read_u64(addr + 16)?,
        iovlen: t.mm.read_u64(addr + 24)?,
        controllen: t.mm.read_u64(addr + 40)?,
    })
}

pub fn sendmsg(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let f = get_file(t, a[0])?;
    endpoint(&f)?;
    let m = read_msghdr(t, a[1])?;
    if m.name != 0 && t.mm.read_u32(a[1] + 8)? != 0 {
        return Err(Errno::EISCONN);
    }
    if m.controllen != 0 {
        // Ancillary data (SCM_RIGHTS, SCM_CREDENTIALS) is not supported.
        return Err(Errno::EINVAL);
    }
    let iov = iovecs(t, m.iov, m.iovlen)?;
    let mut buf = Vec::new();
    for &(base, len) in &iov {
        let n = len.min(MAX_RW - buf.len());
        let start = buf.len();
        buf.resize(start + n, 0);
        t.mm.copy_in(base, &mut buf[start..])?;
        if buf.len() >= MAX_RW {
            break;
        }
    }
    do_send(t, &f, &buf, a[2] as i32)
}

pub fn recvmsg(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let f = get_file(t, a[0])?;
    let flags = a[2] as i32;
    endpoint(&f)?;
    let m = read_msghdr(t, a[1])?;
    let iov = iovecs(t, m.iov, m.iovlen)?;
    let total: usize = iov.iter().map(|v| v.1).sum();
    let (buf, r) = do_recv(t, &f, total, flags)?;
    let mut done = 0;
    for &(base, len) in &iov {
        if done >= buf.len() {
            break;
        }
        let n = len.min(buf.len() - done);
        t.mm.copy_out(base, &buf[done..done + n])?;
        done += n;
    }
    let mut out_flags = 0;
    if r.full > r.copied {
        out_flags |= libc::MSG_TRUNC;
    }
    t.mm.write_u32(a[1] + 8, 0)?; // msg_namelen: unnamed peer
    t.mm.write_u64(a[1] + 40, 0)?; // msg_controllen: no ancillary data
    t.mm.write_u32(a[1] + 48, out_flags as u32)?;
    Ok(recv_ret(endpoint(&f)?, &r, flags))
}

pub fn shutdown(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let f = get_file(t, a[0])?;
    endpoint(&f)?.shutdown(a[1] as i32)?;
    Ok(0)
}

/// getsockname/getpeername: an unnamed AF_UNIX address (family only).
fn unnamed(t: &CurrentTask, a: &Args) -> KResult<u64> {
    let f = get_file(t, a[0])?;
    endpoint(&f)?;
    let len = t.mm.read_u32(a[2])? as i32;
    if len < 0 {
        return Err(Errno::EINVAL);
    }
    let fam = (libc::AF_UNIX as u16).to_le_bytes();
    let n = (len as usize).min(2);
    t.mm.copy_out(a[1], &fam[..n])?;
    t.mm.write_u32(a[2], 2)?;
    Ok(0)
}

pub fn getsockname(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    unnamed(t, a)
}

pub fn getpeername(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    unnamed(t, a)
}

pub fn getsockopt(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let f = get_file(t, a[0])?;
    let ep = endpoint(&f)?;
    let (level, name, val, lenp) = (a[1] as i32, a[2] as i32, a[3], a[4]);
    let len = t.mm.read_u32(lenp)? as i32;
    if len < 0 {
        return Err(Errno::EINVAL);
    }
    if level != libc::SOL_SOCKET {
        return Err(Errno::EOPNOTSUPP);
    }
    let (snd, rcv) = ep.bufs();
    let v: i32 = match name {
        libc::SO_TYPE => ep.sock_type(),
        libc::SO_DOMAIN => libc::AF_UNIX,
        libc::SO_PROTOCOL => 0,
        libc::SO_ERROR => 0,
        libc::SO_SNDBUF => snd as i32,
        libc::SO_RCVBUF => rcv as i32,
        libc::SO_ACCEPTCONN => 0,
        libc::SO_PASSCRED => ep.passcred() as i32,
        _ => return Err(Errno::ENOPROTOOPT),
    };
    let n = (len as usize).min(4);
    t.mm.copy_out(val, &v.to_le_bytes()[..n])?;
    t.mm.write_u32(lenp, n as u32)?;
    Ok(0)
}

pub fn setsockopt(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let f = get_file(t, a[0])?;
    let ep = endpoint(&f)?;
    let (level, name, val, len) = (a[1] as i32, a[2] as i32, a[3], a[4] as i32);
    if level != libc::SOL_SOCKET {
        return Err(Errno::EOPNOTSUPP);
    }
    if !matches!(name, libc::SO_SNDBUF | libc::SO_RCVBUF | libc::SO_PASSCRED) {
        return Err(Errno::ENOPROTOOPT);
    }
    if len < 4 {
        return Err(Errno::EINVAL);
    }
    let v = t.mm.read_u32(val)?;
    match name {
        libc::SO_SNDBUF => ep.set_buf(true, v),
        libc::SO_RCVBUF => ep.set_buf(false, v),
        _ => ep.set_passcred(v != 0),
    }
    Ok(0)
}
