//! POSIX message queue system calls: mq_open, mq_unlink, mq_timedsend,
//! mq_timedreceive, mq_notify, mq_getsetattr (the queues themselves are
//! `kernel::mqueue`).

use super::sys_file::{get_file, install};
use super::Args;
use crate::errno::{Errno, KResult};
use crate::kernel::caps::{CAP_FOWNER, CAP_SYS_RESOURCE};
use crate::kernel::mqueue::{self, MqFile, Queue};
use crate::kernel::task::{lock, CurrentTask};
use crate::vfs::File;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The queue name: what glibc passes (the name without its leading '/').
fn name_arg(t: &CurrentTask, addr: u64) -> KResult<Vec<u8>> {
    let name = t.mm.read_cstring(addr, 4096)?;
    if name.len() > 255 {
        return Err(Errno::ENAMETOOLONG);
    }
    if name.is_empty() {
        return Err(Errno::ENOENT);
    }
    if name.contains(&b'/') || name == b"." || name == b".." {
        return Err(Errno::EACCES);
    }
    Ok(name)
}

/// struct mq_attr: mq_flags, mq_maxmsg, mq_msgsize, mq_curmsgs (longs).
fn read_attr(t: &CurrentTask, addr: u64) -> KResult<[i64; 4]> {
    let mut v = [0i64; 4];
    for (i, x) in v.iter_mut().enumerate() {
        *x = t.mm.read_u64(addr + 8 * i as u64)? as i64;
    }
    Ok(v)
}

/// An absolute CLOCK_REALTIME timeout as a deadline (None: wait forever).
fn deadline_arg(t: &CurrentTask, addr: u64) -> KResult<Option<Instant>> {
    if addr == 0 {
        return Ok(None);
    }
    let sec = t.mm.read_u64(addr)? as i64;
    let nsec = t.mm.read_u64(addr + 8)? as i64;
    if !(0..1_000_000_000).contains(&nsec) || sec < 0 {
        return Err(Errno::EINVAL);
    }
    let at = Duration::new(sec as u64, nsec as u32);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Ok(Some(Instant::now() + at.saturating_sub(now)))
}

/// The queue behind descriptor `fd`; EBADF for any other file.
fn queue_of(t: &CurrentTask, fd: u64) -> KResult<(Arc<File>, Arc<Queue>)> {
    let f = get_file(t, fd)?;
    let q = f
        .ops
        .as_any()
        .downcast_ref::<MqFile>()
        .map(|m| m.q.clone())
        .ok_or(Errno::EBADF)?;
    Ok((f, q))
}

pub fn mq_open(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let name = name_arg(t, a[0])?;
    let oflag = a[1] as i32;
    let acc = oflag & libc::O_ACCMODE;
    if acc == libc::O_ACCMODE {
        return Err(Errno::EINVAL);
    }
    let creds = t.creds();
    let q = match mqueue::lookup(&name) {
        Some(_) if oflag & libc::O_CREAT != 0 && oflag & libc::O_EXCL != 0 => {
            return Err(Errno::EEXIST)
        }
        Some(q) => q,
        None if oflag & libc::O_CREAT == 0 => return Err(Errno::ENOENT),
        None => {
            let (maxmsg, msgsize) = if a[3] == 0 {
                (mqueue::MSG_DEFAULT, mqueue::MSGSIZE_DEFAULT)
            } else {
                let attr = read_attr(t, a[3])?;
                (attr[1], attr[2])
            };
            let (msg_max, size_max) = if creds.capable(CAP_SYS_RESOURCE) {
                (mqueue::HARD_MSG_MAX, mqueue::HARD_MSGSIZE_MAX)
            } else {
                (mqueue::MSG_MAX, mqueue::MSGSIZE_MAX)
            };
            if maxmsg <= 0 || msgsize <= 0 || maxmsg > msg_max || msgsize > size_max {
                return Err(Errno::EINVAL);
            }
            let umask = lock(&t.fs_context()).umask;
            let q = Queue::new(
                maxmsg,
                msgsize,
                a[2] as u32 & 0o777 & !umask,
                creds.fsuid,
                creds.fsgid,
            );
            match mqueue::insert(&name, q) {
                Ok(q) => q,
                Err(_) if oflag & libc::O_EXCL != 0 => return Err(Errno::EEXIST),
                Err(existing) => existing,
            }
        }
    };
    // The creator gets the access it asked for; others are checked.
    let want = match acc {
        libc::O_RDONLY => 4,
        libc::O_WRONLY => 2,
        _ => 6,
    };
    if !creds.may(&q.stat_for_access(), want) {
        return Err(Errno::EACCES);
    }
    let f = File::new(
        Arc::new(MqFile { q }),
        (acc | (oflag & libc::O_NONBLOCK)) as u32,
        None,
    );
    install(t, f, oflag & libc::O_CLOEXEC != 0)
}

pub fn mq_unlink(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let name = name_arg(t, a[0])?;
    let q = mqueue::lookup(&name).ok_or(Errno::ENOENT)?;
    // The queues' directory is sticky: the owner or CAP_FOWNER.
    let c = t.creds();
    if c.fsuid != q.uid && !c.capable(CAP_FOWNER) {
        return Err(Errno::EACCES);
    }
    mqueue::remove(&name).ok_or(Errno::ENOENT)?;
    Ok(0)
}

pub fn mq_timedsend(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let (f, q) = queue_of(t, a[0])?;
    if !f.writable() {
        return Err(Errno::EBADF);
    }
    let prio = a[3] as u32;
    if a[3] >= u64::from(mqueue::PRIO_MAX) {
        return Err(Errno::EINVAL);
    }
    let len = a[2] as i64;
    if len < 0 || len > q.msgsize {
        return Err(Errno::EMSGSIZE);
    }
    let mut data = vec![0u8; len as usize];
    t.mm.copy_in(a[1], &mut data)?;
    let deadline = deadline_arg(t, a[4])?;
    q.send(&t.task, &data, prio, f.nonblocking(), deadline)?;
    Ok(0)
}

pub fn mq_timedreceive(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let (f, q) = queue_of(t, a[0])?;
    if !f.readable() {
        return Err(Errno::EBADF);
    }
    let room = usize::try_from(a[2]).unwrap_or(usize::MAX);
    if (room as u64) < q.msgsize as u64 {
        return Err(Errno::EMSGSIZE);
    }
    let deadline = deadline_arg(t, a[4])?;
    let (msg, prio) = q.receive(&t.task, room, f.nonblocking(), deadline)?;
    t.mm.copy_out(a[1], &msg)?;
    if a[3] != 0 {
        t.mm.write_u32(a[3], prio)?;
    }
    Ok(msg.len() as u64)
}

pub fn mq_notify(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    const SIGEV_SIGNAL: i32 = 0;
    const SIGEV_NONE: i32 = 1;
    let (_f, q) = queue_of(t, a[0])?;
    if a[1] == 0 {
        q.set_notify(&t.tg, None)?;
        return Ok(0);
    }
    let value = t.mm.read_u64(a[1])?;
    let signo = t.mm.read_u32(a[1] + 8)? as i32;
    let how = t.mm.read_u32(a[1] + 12)? as i32;
    let signo = match how {
        SIGEV_NONE => None,
        SIGEV_SIGNAL if (1..=64).contains(&signo) => Some(signo),
        // SIGEV_THREAD (glibc's netlink helper) is not supported.
        _ => return Err(Errno::EINVAL),
    };
    q.set_notify(&t.tg, Some((signo, value)))?;
    Ok(0)
}

pub fn mq_getsetattr(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let (f, q) = queue_of(t, a[0])?;
    let new = if a[1] != 0 {
        let attr = read_attr(t, a[1])?;
        if attr[0] & !(libc::O_NONBLOCK as i64) != 0 {
            return Err(Errno::EINVAL);
        }
        Some(attr[0])
    } else {
        None
    };
    if a[2] != 0 {
        let old = [
            i64::from(f.flags() as i32 & libc::O_NONBLOCK),
            q.maxmsg,
            q.msgsize,
            q.cur_msgs(),
        ];
        let b: Vec<u8> = old.iter().flat_map(|v| v.to_le_bytes()).collect();
        t.mm.copy_out(a[2], &b)?;
    }
    if let Some(flags) = new {
        let keep = f.flags() & !(libc::O_NONBLOCK as u32);
        f.set_status_flags(keep | flags as u32);
    }
    Ok(0)
}
