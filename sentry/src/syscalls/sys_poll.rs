//! Readiness system calls: poll/ppoll, select/pselect6, epoll.

use super::sys_file::{get_file, install};
use super::sys_thread::read_duration;
use super::Args;
use crate::errno::{Errno, KResult};
use crate::fs::epoll::{Epoll, EpollEvent};
use crate::kernel::task::{lock, CurrentTask};
use crate::kernel::waiter::WaitQueue;
use crate::vfs::file::{POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT, POLLRDNORM, POLLWRNORM};
use crate::vfs::File;
use std::sync::Arc;
use std::time::{Duration, Instant};

const POLLPRI: u32 = libc::POLLPRI as u32;
const POLLRDBAND: u32 = libc::POLLRDBAND as u32;
const POLLWRBAND: u32 = libc::POLLWRBAND as u32;

/// Waits until one of `files` is ready for its events; returns revents.
/// `None` entries (bad fds) report POLLNVAL.
pub fn wait_ready(
    t: &CurrentTask,
    files: &[(Option<Arc<File>>, u32)],
    deadline: Option<Instant>,
) -> KResult<Vec<u32>> {
    let queues: Vec<&WaitQueue> = files
        .iter()
        .filter_map(|(f, _)| f.as_ref().and_then(|f| f.ops.queue()))
        .collect();
    let host: Vec<(i32, i16)> = files
        .iter()
        .filter_map(|(f, ev)| {
            f.as_ref()
                .and_then(|f| f.ops.host_fd())
                .map(|fd| (fd, (*ev & 0xffff) as i16))
        })
        .collect();
    let check = || {
        let rev: Vec<u32> = files
            .iter()
            .map(|(f, ev)| match f {
                None => POLLNVAL,
                Some(f) => f.ops.readiness(*ev | POLLERR | POLLHUP) & (*ev | POLLERR | POLLHUP),
            })
            .collect();
        rev.iter().any(|&r| r != 0).then_some(Ok(rev))
    };
    if deadline.is_some_and(|d| d <= Instant::now()) {
        return Ok(check()
            .map(|r| r.unwrap_or_default())
            .unwrap_or_else(|| vec![0; files.len()]));
    }
    match t.task.block_until(&queues, &host, deadline, check) {
        Err(e) if e == Errno::ETIMEDOUT => Ok(vec![0; files.len()]),
        r => r,
    }
}

fn do_poll(t: &CurrentTask, addr: u64, nfds: u64, deadline: Option<Instant>) -> KResult<u64> {
    if nfds > t.rlimit(libc::RLIMIT_NOFILE as i32) {
        return Err(Errno::EINVAL);
    }
    let mut raw = vec![0u8; nfds as usize * 8];
    t.mm.copy_in(addr, &mut raw)?;
    let mut files = Vec::with_capacity(nfds as usize);
    for c in raw.chunks(8) {
        let fd = i32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        let ev = u16::from_le_bytes([c[4], c[5]]) as u32;
        // Negative fds are ignored (revents 0).
        let f = if fd < 0 {
            None
        } else {
            t.fd_table().get(fd).ok()
        };
        files.push((f, if fd < 0 { 0 } else { ev }));
    }
    // Entries with fd < 0 must not report POLLNVAL.
    let neg: Vec<bool> = raw
        .chunks(8)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) < 0)
        .collect();
    // Only the entries with fd >= 0 are waited on (a negative fd must not
    // end the wait with its would-be POLLNVAL).
    let live: Vec<(Option<Arc<File>>, u32)> = files
        .into_iter()
        .zip(&neg)
        .filter(|(_, &n)| !n)
        .map(|(f, _)| f)
        .collect();
    let live_rev = wait_ready(t, &live, deadline)?;
    let mut it = live_rev.into_iter();
    let rev: Vec<u32> = neg
        .iter()
        .map(|&n| if n { 0 } else { it.next().unwrap_or(0) })
        .collect();
    let mut n = 0;
    for (i, c) in raw.chunks_mut(8).enumerate() {
        let r = if neg[i] { 0 } else { rev[i] };
        c[6..8].copy_from_slice(&(r as u16).to_le_bytes());
        if r != 0 {
            n += 1;
        }
    }
    t.mm.copy_out(addr, &raw)?;
    Ok(n)
}

pub fn poll(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let ms = a[2] as i32;
    let deadline = (ms >= 0).then(|| Instant::now() + Duration::from_millis(ms as u64));
    do_poll(t, a[0], a[1], deadline).map_err(|e| {
        if e == Errno::ERESTARTSYS {
            Errno::ERESTARTNOHAND
        } else {
            e
        }
    })
}

/// Installs a temporary signal mask (ppoll, pselect6, epoll_pwait).
fn swap_mask(t: &CurrentTask, addr: u64, size: u64) -> KResult<()> {
    if addr == 0 {
        return Ok(());
    }
    if size != 8 {
        return Err(Errno::EINVAL);
    }
    let m = t.mm.read_u64(addr)? & !crate::kernel::signal::UNBLOCKABLE;
    let mut s = lock(&t.sig);
    s.saved_mask = Some(s.mask);
    s.mask = m;
    Ok(())
}

pub fn ppoll(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let deadline = if a[2] != 0 {
        Some(Instant::now() + read_duration(t, a[2])?)
    } else {
        None
    };
    swap_mask(t, a[3], a[4])?;
    let r = do_poll(t, a[0], a[1], deadline);
    finish_masked(t, r)
}

/// After a call with a temporary mask: EINTR keeps it until the handler
/// frame is built; anything else restores it now.
fn finish_masked(t: &CurrentTask, r: KResult<u64>) -> KResult<u64> {
    match r {
        Err(e) if e == Errno::ERESTARTSYS || e == Errno::EINTR => Err(Errno::ERESTARTNOHAND),
        r => {
            let saved = lock(&t.sig).saved_mask.take();
            if let Some(m) = saved {
                lock(&t.sig).mask = m;
            }
            r
        }
    }
}

fn do_select(
    t: &CurrentTask,
    nfds: u64,
    rd: u64,
    wr: u64,
    ex: u64,
    deadline: Option<Instant>,
) -> KResult<u64> {
    if nfds as i32 > 1 << 20 || (nfds as i32) < 0 {
        return Err(Errno::EINVAL);
    }
    let n = nfds as usize;
    let bytes = n.div_ceil(64) * 8;
    let read_set = |addr: u64| -> KResult<Vec<u8>> {
        let mut b = vec![0u8; bytes];
        if addr != 0 {
            t.mm.copy_in(addr, &mut b)?;
        }
        Ok(b)
    };
    let (r, w, e) = (read_set(rd)?, read_set(wr)?, read_set(ex)?);
    let isset = |s: &[u8], i: usize| s[i / 8] & (1 << (i % 8)) != 0;
    let in_set = POLLRDNORM | POLLRDBAND | POLLIN | POLLHUP | POLLERR;
    let out_set = POLLWRBAND | POLLWRNORM | POLLOUT | POLLERR;
    let mut files = Vec::new();
    let mut idx = Vec::new();
    for i in 0..n {
        let mut ev = 0;
        if isset(&r, i) {
            ev |= in_set;
        }
        if isset(&w, i) {
            ev |= out_set;
        }
        if isset(&e, i) {
            ev |= POLLPRI;
        }
        if ev != 0 {
            let f = t.fd_table().get(i as i32).map_err(|_| Errno::EBADF)?;
            files.push((Some(f), ev));
            idx.push(i);
        }
    }
    let rev = wait_ready(t, &files, deadline)?;
    let (mut ro, mut wo, mut eo) = (vec![0u8; bytes], vec![0u8; bytes], vec![0u8; bytes]);
    let mut count = 0;
    for (k, &i) in idx.iter().enumerate() {
        let set = |s: &mut Vec<u8>| s[i / 8] |= 1 << (i % 8);
        if isset(&r, i) && rev[k] & in_set != 0 {
            set(&mut ro);
            count += 1;
        }
        if isset(&w, i) && rev[k] & out_set != 0 {
            set(&mut wo);
            count += 1;
        }
        if isset(&e, i) && rev[k] & POLLPRI != 0 {
            set(&mut eo);
            count += 1;
        }
    }
    for (addr, s) in [(rd, &ro), (wr, &wo), (ex, &eo)] {
        if addr != 0 {
            t.mm.copy_out(addr, s)?;
        }
    }
    Ok(count)
}

pub fn select(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let deadline = if a[4] != 0 {
        let sec = t.mm.read_u64(a[4])? as i64;
        let usec = t.mm.read_u64(a[4] + 8)? as i64;
        if sec < 0 || !(0..1_000_000).contains(&usec) {
            return Err(Errno::EINVAL);
        }
        Some(Instant::now() + Duration::new(sec as u64, usec as u32 * 1000))
    } else {
        None
    };
    let r = do_select(t, a[0], a[1], a[2], a[3], deadline).map_err(|e| {
        if e == Errno::ERESTARTSYS {
            Errno::ERESTARTNOHAND
        } else {
            e
        }
    });
    if let (Some(d), true) = (deadline, a[4] != 0) {
        let left = d.saturating_duration_since(Instant::now());
        let _ = t.mm.write_u64(a[4], left.as_secs());
        let _ = t.mm.write_u64(a[4] + 8, left.subsec_micros() as u64);
    }
    r
}

pub fn pselect6(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let deadline = if a[4] != 0 {
        Some(Instant::now() + read_duration(t, a[4])?)
    } else {
        None
    };
    if a[5] != 0 {
        let ptr = t.mm.read_u64(a[5])?;
        let size = t.mm.read_u64(a[5] + 8)?;
        swap_mask(t, ptr, size)?;
    }
    let r = do_select(t, a[0], a[1], a[2], a[3], deadline);
    finish_masked(t, r)
}

fn get_epoll(t: &CurrentTask, fd: u64) -> KResult<(Arc<File>, Arc<Epoll>)> {
    let f = get_file(t, fd)?;
    let ep = Epoll::from_file(&f).ok_or(Errno::EINVAL)?;
    Ok((f, ep))
}

pub fn epoll_create(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    if a[0] as i32 <= 0 {
        return Err(Errno::EINVAL);
    }
    install(t, Epoll::new_file(), false)
}

pub fn epoll_create1(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    if a[0] as i32 & !libc::EPOLL_CLOEXEC != 0 {
        return Err(Errno::EINVAL);
    }
    install(t, Epoll::new_file(), a[0] as i32 & libc::EPOLL_CLOEXEC != 0)
}

pub fn epoll_ctl(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let (_ef, ep) = get_epoll(t, a[0])?;
    let fd = a[2] as i32;
    let target = t.fd_table().get(fd)?;
    if Arc::ptr_eq(&target, &_ef) {
        return Err(Errno::EINVAL);
    }
    // Regular files and directories are always ready: Linux refuses them.
    let st = target.ops.stat()?;
    if matches!(st.file_type(), libc::S_IFREG | libc::S_IFDIR) {
        return Err(Errno::EPERM);
    }
    let op = a[1] as i32;
    let ev = if op != libc::EPOLL_CTL_DEL {
        let events = t.mm.read_u32(a[3])?;
        let data = t.mm.read_u64(a[3] + 4)?;
        Some(EpollEvent { events, data })
    } else {
        None
    };
    match op {
        libc::EPOLL_CTL_ADD => ep.add(fd, &target, ev.unwrap_or_default())?,
        libc::EPOLL_CTL_MOD => ep.modify(fd, &target, ev.unwrap_or_default())?,
        libc::EPOLL_CTL_DEL => ep.remove(fd, &target)?,
        _ => return Err(Errno::EINVAL),
    }
    Ok(0)
}

fn do_epoll_wait(t: &CurrentTask, a: &Args, deadline: Option<Instant>) -> KResult<u64> {
    let max = a[2] as i32;
    if max <= 0 || max > (i32::MAX / 12) {
        return Err(Errno::EINVAL);
    }
    let (_f, ep) = get_epoll(t, a[0])?;
    let events = ep.wait(&t.task, max as usize, deadline)?;
    let mut b = Vec::with_capacity(events.len() * 12);
    for e in &events {
        b.extend_from_slice(&e.events.to_le_bytes());
        b.extend_from_slice(&e.data.to_le_bytes());
    }
    t.mm.copy_out(a[1], &b)?;
    Ok(events.len() as u64)
}

fn ms_deadline(ms: i32) -> Option<Instant> {
    (ms >= 0).then(|| Instant::now() + Duration::from_millis(ms as u64))
}

pub fn epoll_wait(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    do_epoll_wait(t, a, ms_deadline(a[3] as i32)).map_err(|e| {
        if e == Errno::ERESTARTSYS {
            Errno::EINTR
        } else {
            e
        }
    })
}

pub fn epoll_pwait(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    swap_mask(t, a[4], a[5])?;
    let r = do_epoll_wait(t, a, ms_deadline(a[3] as i32));
    finish_masked(t, r).map_err(|e| {
        if e == Errno::ERESTARTNOHAND {
            Errno::EINTR
        } else {
            e
        }
    })
}
