//! File descriptor system calls: open/close/read/write and friends, dup,
//! fcntl (with record locks), flock, pipes, ioctl, getdents, eventfd.

use super::{path_arg, Args};
use crate::errno::{Errno, KResult};
use crate::fs;
use crate::kernel::signal::SigInfo;
use crate::kernel::task::{lock, CurrentTask};
use crate::kernel::task_fs::AT_FDCWD;
use crate::vfs::file::FileOps;
use crate::vfs::lock::{self as flocks, LockType, Requester};
use crate::vfs::{dtype_of_mode, File, Stat};
use std::sync::Arc;

/// Largest single transfer we stage through the sentry at once; larger
/// requests are short reads/writes, which Linux allows.
pub(crate) const MAX_RW: usize = 16 << 20;

fn fd_arg(a: u64) -> i32 {
    a as i32
}

pub fn get_file(t: &CurrentTask, fd: u64) -> KResult<Arc<File>> {
    t.fd_table().get(fd_arg(fd))
}

fn nofile(t: &CurrentTask) -> usize {
    t.rlimit(libc::RLIMIT_NOFILE as i32).min(1 << 20) as usize
}

pub fn install(t: &CurrentTask, f: Arc<File>, cloexec: bool) -> KResult<u64> {
    Ok(t.fd_table().install_from(f, cloexec, 0, nofile(t))? as u64)
}

/// Sends SIGPIPE for EPIPE from a write, as Linux does.
pub(crate) fn sigpipe(t: &CurrentTask, r: KResult<usize>) -> KResult<usize> {
    if r == Err(Errno::EPIPE) {
        t.kernel.send_to_task(
            &t.task,
            SigInfo::new(libc::SIGPIPE, crate::kernel::signal::SI_USER),
        );
    }
    r
}

pub fn read(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let f = get_file(t, a[0])?;
    let n = (a[2] as usize).min(MAX_RW);
    let mut buf = vec![0u8; n];
    let got = f.read(&t.task, &mut buf)?;
    t.mm.copy_out(a[1], &buf[..got])?;
    Ok(got as u64)
}

pub fn write(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let f = get_file(t, a[0])?;
    let n = (a[2] as usize).min(MAX_RW);
    let mut buf = vec![0u8; n];
    t.mm.copy_in(a[1], &mut buf)?;
    let r = f.write(&t.task, &buf);
    modified(&f, &r);
    Ok(sigpipe(t, r)? as u64)
}

pub fn pread64(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let f = get_file(t, a[0])?;
    if (a[3] as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    let mut buf = vec![0u8; (a[2] as usize).min(MAX_RW)];
    let got = f.pread(&t.task, &mut buf, a[3])?;
    t.mm.copy_out(a[1], &buf[..got])?;
    Ok(got as u64)
}

pub fn pwrite64(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let f = get_file(t, a[0])?;
    if (a[3] as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    let mut buf = vec![0u8; (a[2] as usize).min(MAX_RW)];
    t.mm.copy_in(a[1], &mut buf)?;
    let r = f.pwrite(&t.task, &buf, a[3]);
    modified(&f, &r);
    Ok(sigpipe(t, r)? as u64)
}

/// IN_MODIFY after a write that wrote something.
fn modified(f: &File, r: &KResult<usize>) {
    if matches!(r, Ok(n) if *n > 0) {
        fs::inotify::notify_file(f, fs::inotify::IN_MODIFY);
    }
}

pub(crate) fn iovecs(t: &CurrentTask, addr: u64, cnt: u64) -> KResult<Vec<(u64, usize)>> {
    if cnt > 1024 {
        return Err(Errno::EINVAL);
    }
    let mut v = Vec::with_capacity(cnt as usize);
    let mut total: usize = 0;
    for i in 0..cnt {
        let base = t.mm.read_u64(addr + i * 16)?;
        let len = t.mm.read_u64(addr + i * 16 + 8)?;
        if len > isize::MAX as u64 {
            return Err(Errno::EINVAL);
        }
        total = total.saturating_add(len as usize);
        v.push((base, len as usize));
    }
    if total > isize::MAX as usize {
        return Err(Errno::EINVAL);
    }
    Ok(v)
}

/// Gathers the guest's iovecs into one buffer (at most MAX_RW bytes).
pub(crate) fn gather(t: &CurrentTask, iov: &[(u64, usize)]) -> KResult<Vec<u8>> {
    let mut buf = Vec::new();
    for &(base, len) in iov {
        let n = len.min(MAX_RW - buf.len());
        let start = buf.len();
        buf.resize(start + n, 0);
        t.mm.copy_in(base, &mut buf[start..])?;
        if buf.len() >= MAX_RW {
            break;
        }
    }
    Ok(buf)
}

/// Scatters `data` over the guest's iovecs.
pub(crate) fn scatter(t: &CurrentTask, iov: &[(u64, usize)], data: &[u8]) -> KResult<()> {
    let mut done = 0;
    for &(base, len) in iov {
        if done >= data.len() {
            break;
        }
        let n = len.min(data.len() - done);
        t.mm.copy_out(base, &data[done..done + n])?;
        done += n;
    }
    Ok(())
}

fn do_readv(t: &CurrentTask, f: &File, iov: &[(u64, usize)], off: Option<u64>) -> KResult<u64> {
    let total: usize = iov.iter().map(|v| v.1).sum::<usize>().min(MAX_RW);
    let mut buf = vec![0u8; total];
    let got = match off {
        Some(o) => f.pread(&t.task, &mut buf, o)?,
        None => f.read(&t.task, &mut buf)?,
    };
    scatter(t, iov, &buf[..got])?;
    Ok(got as u64)
}

fn do_writev(t: &CurrentTask, f: &File, iov: &[(u64, usize)], off: Option<u64>) -> KResult<u64> {
    let buf = gather(t, iov)?;
    let r = match off {
        Some(o) => f.pwrite(&t.task, &buf, o),
        None => f.write(&t.task, &buf),
    };
    modified(f, &r);
    Ok(sigpipe(t, r)? as u64)
}

pub fn readv(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let f = get_file(t, a[0])?;
    let iov = iovecs(t, a[1], a[2])?;
    do_readv(t, &f, &iov, None)
}

pub fn writev(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let f = get_file(t, a[0])?;
    let iov = iovecs(t, a[1], a[2])?;
    do_writev(t, &f, &iov, None)
}

pub fn preadv(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let f = get_file(t, a[0])?;
    let iov = iovecs(t, a[1], a[2])?;
    do_readv(t, &f, &iov, Some(a[3]))
}

pub fn pwritev(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let f = get_file(t, a[0])?;
    let iov = iovecs(t, a[1], a[2])?;
    do_writev(t, &f, &iov, Some(a[3]))
}

/// O_TMPFILE: an unnamed regular file in directory `path`. It is made as a
/// hidden entry and unlinked at once, so it has no name (linkat with
/// AT_EMPTY_PATH may give it one later, unless O_EXCL).
fn open_tmpfile(t: &CurrentTask, dirfd: i32, path: &[u8], flags: u32, mode: u32) -> KResult<u64> {
    let o = |x: i32| x as u32;
    let acc = flags & o(libc::O_ACCMODE);
    if acc != o(libc::O_WRONLY) && acc != o(libc::O_RDWR) {
        return Err(Errno::EINVAL);
    }
    let dir = t.lookup_at(dirfd, path, true, false)?;
    if !dir.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    t.may_modify_dir(&dir)?;
    let umask = lock(&t.fs_context()).umask;
    let c = t.creds();
    let perm = (mode & 0o7777 & !umask) | libc::S_IFREG;
    let linkable = flags & o(libc::O_EXCL) == 0;
    match dir.inode.tmpfile(perm, c.fsuid, c.fsgid, linkable) {
        Ok(inode) => {
            let ops = inode.clone().open(acc)?;
            let dentry = Arc::new(crate::vfs::Dentry {
                name: b"#tmpfile".to_vec(),
                parent: Some(dir.clone()),
                inode,
            });
            let keep = flags & !(o(libc::O_TMPFILE) | o(libc::O_CREAT) | o(libc::O_TRUNC));
            let f = File::new(ops, keep | acc, Some(dentry));
            return install(t, f, flags & o(libc::O_CLOEXEC) != 0);
        }
        Err(e) if e != Errno::EOPNOTSUPP => return Err(e),
        // Other filesystems: a hidden name, unlinked at once (it cannot be
        // linked back later).
        Err(_) => {}
    }
    let mut rnd = [0u8; 8];
    // SAFETY: getrandom into a live 8-byte buffer.
    unsafe { libc::getrandom(rnd.as_mut_ptr() as *mut libc::c_void, 8, 0) };
    let name = format!(".#tmpfile-{:016x}", u64::from_le_bytes(rnd)).into_bytes();
    let inode = dir.inode.create(
        &name,
        (mode & 0o7777 & !umask) | libc::S_IFREG,
        c.fsuid,
        c.fsgid,
    )?;
    let ops = inode.clone().open(acc);
    dir.inode.unlink(&name)?;
    let ops = ops?;
    let dentry = Arc::new(crate::vfs::Dentry {
        name,
        parent: Some(dir.clone()),
        inode,
    });
    let keep = flags & !(o(libc::O_TMPFILE) | o(libc::O_CREAT) | o(libc::O_TRUNC));
    let f = File::new(ops, keep | acc, Some(dentry));
    install(t, f, flags & o(libc::O_CLOEXEC) != 0)
}

pub fn do_open(t: &CurrentTask, dirfd: i32, path: &[u8], flags: u32, mode: u32) -> KResult<u64> {
    let o = |x: i32| x as u32;
    let cloexec = flags & o(libc::O_CLOEXEC) != 0;
    if flags & o(libc::O_TMPFILE) == o(libc::O_TMPFILE) {
        return open_tmpfile(t, dirfd, path, flags, mode);
    }
    let acc = flags & o(libc::O_ACCMODE);
    if acc == 3 {
        return Err(Errno::EINVAL);
    }
    let follow = flags & o(libc::O_NOFOLLOW) == 0;
    let mut created = false;
    let dentry = if flags & o(libc::O_CREAT) != 0 {
        let (mut dir, mut name) = match t.lookup_parent_at(dirfd, path) {
            Ok(x) => x,
            Err(e) if e == Errno::EEXIST => return Err(Errno::EISDIR),
            Err(e) => return Err(e),
        };
        let fsctx = t.fs_context();
        // A trailing symlink is followed unless O_NOFOLLOW or O_EXCL, and
        // a dangling one creates its target (up to 40 links, as Linux).
        let mut hops = 0;
        let found = loop {
            match t.kernel.vfs.child(&dir, &name) {
                Ok(existing) if existing.inode.stat()?.is_symlink() => {
                    if flags & o(libc::O_EXCL) != 0 {
                        break Ok(existing);
                    }
                    if !follow {
                        return Err(Errno::ELOOP);
                    }
                    hops += 1;
                    if hops > 40 {
                        return Err(Errno::ELOOP);
                    }
                    let target = existing.inode.readlink()?;
                    let (d, n) = match t.kernel.vfs.lookup_parent(&t.fs_snapshot(), &dir, &target) {
                        Ok(x) => x,
                        Err(e) if e == Errno::EEXIST => return Err(Errno::EISDIR),
                        Err(e) => return Err(e),
                    };
                    (dir, name) = (d, n);
                }
                r => break r,
            }
        };
        match found {
            Ok(existing) => {
                if flags & o(libc::O_EXCL) != 0 {
                    return Err(Errno::EEXIST);
                }
                existing
            }
            Err(e) if e == Errno::ENOENT => {
                t.may_modify_dir(&dir)?;
                let umask = lock(&fsctx).umask;
                let c = t.creds();
                let inode = dir.inode.create(
                    &name,
                    (mode & 0o7777 & !umask) | libc::S_IFREG,
                    c.fsuid,
                    c.fsgid,
                )?;
                created = true;
                fs::inotify::notify(&dir.inode, None, fs::inotify::IN_CREATE, &name, 0);
                Arc::new(crate::vfs::Dentry {
                    name: name.clone(),
                    parent: Some(dir.clone()),
                    inode,
                })
            }
            Err(e) => return Err(e),
        }
    } else {
        t.lookup_at(dirfd, path, follow, false)?
    };
    let st = dentry.inode.stat()?;
    if flags & o(libc::O_PATH) != 0 {
        let f = File::new(
            fs::PathFile::open(dentry.inode.clone()),
            flags & (o(libc::O_PATH) | o(libc::O_DIRECTORY) | o(libc::O_NOFOLLOW)),
            Some(dentry),
        );
        return install(t, f, cloexec);
    }
    if st.is_symlink() {
        return Err(Errno::ELOOP);
    }
    if flags & o(libc::O_DIRECTORY) != 0 && !st.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    if st.is_dir() && (acc != o(libc::O_RDONLY) || flags & o(libc::O_CREAT) != 0) {
        return Err(Errno::EISDIR);
    }
    // Permission to open for the requested access (a file this open just
    // created is the creator's whatever its mode).
    let want = match acc {
        x if x == o(libc::O_RDONLY) => 4,
        x if x == o(libc::O_WRONLY) => 2,
        _ => 6,
    } | if flags & o(libc::O_TRUNC) != 0 { 2 } else { 0 };
    // Mount options: nodev refuses device nodes; a read-only mount refuses
    // writing its files (devices, FIFOs and sockets are not its data).
    let ft = st.file_type();
    let is_dev = matches!(ft, libc::S_IFCHR | libc::S_IFBLK);
    if (is_dev || want & 2 != 0) && !created {
        let mf = t.kernel.vfs.flags_of(&dentry);
        if is_dev && mf.nodev {
            return Err(Errno::EACCES);
        }
        if want & 2 != 0 && mf.readonly && matches!(ft, libc::S_IFREG | libc::S_IFDIR) {
            return Err(Errno::EROFS);
        }
    }
    if !created && !t.creds().may(&st, want) {
        return Err(Errno::EACCES);
    }
    // Linux truncates even for O_RDONLY|O_TRUNC (the open needs write access).
    if flags & o(libc::O_TRUNC) != 0 && st.file_type() == libc::S_IFREG {
        dentry.inode.truncate(0)?;
        if !created {
            fs::inotify::notify_dentry(&dentry, fs::inotify::IN_MODIFY);
        }
    }
    let ops = dentry.inode.clone().open(flags)?;
    let f = File::new(ops, flags, Some(dentry));
    install(t, f, cloexec)
}

pub fn open(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let p = path_arg(t, a[0])?;
    do_open(t, AT_FDCWD, &p, a[1] as u32, a[2] as u32)
}

pub fn openat(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let p = path_arg(t, a[1])?;
    do_open(t, a[0] as i32, &p, a[2] as u32, a[3] as u32)
}

pub fn creat(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let p = path_arg(t, a[0])?;
    do_open(
        t,
        AT_FDCWD,
        &p,
        (libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC) as u32,
        a[1] as u32,
    )
}

pub fn close(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let f = t.fd_table().remove(fd_arg(a[0]))?;
    closed(t, f);
    Ok(0)
}

/// An fd of `f` was closed by this process: POSIX record locks of the
/// process on that file go (whichever fd set them), then the reference.
fn closed(t: &CurrentTask, f: Arc<File>) {
    flocks::on_close(&t.tg, &f);
    drop(f);
}

pub fn close_range(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let (first, last, flags) = (a[0] as u32, a[1] as u32, a[2] as u32);
    const CLOSE_RANGE_UNSHARE: u32 = 2;
    const CLOSE_RANGE_CLOEXEC: u32 = 4;
    if first > last || flags & !(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    if flags & CLOSE_RANGE_UNSHARE != 0 {
        let copy = t.fd_table().fork();
        *lock(&t.task.fds) = copy;
    }
    let cloexec = flags & CLOSE_RANGE_CLOEXEC != 0;
    // The files about to close, for the POSIX lock rule (only looked up
    // when some lock exists).
    let victims: Vec<Arc<File>> = if !cloexec && flocks::any_locks() {
        let fds = t.fd_table();
        fds.fds()
            .into_iter()
            .filter(|&fd| fd as u32 >= first && fd as u32 <= last)
            .filter_map(|fd| fds.get(fd).ok())
            .collect()
    } else {
        Vec::new()
    };
    t.fd_table().close_range(first, last, cloexec);
    for f in victims {
        closed(t, f);
    }
    Ok(0)
}

pub fn lseek(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let f = get_file(t, a[0])?;
    f.seek(a[1] as i64, a[2] as i32)
}

pub fn dup(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let f = get_file(t, a[0])?;
    install(t, f, false)
}

pub fn dup2(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let f = get_file(t, a[0])?;
    if a[0] as i32 == a[1] as i32 {
        return Ok(a[1] as i32 as u64);
    }
    let old = t.fd_table().install_at(a[1] as i32, f, false, nofile(t))?;
    if let Some(old) = old {
        closed(t, old);
    }
    Ok(a[1] as i32 as u64)
}

pub fn dup3(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let flags = a[2] as i32;
    if flags & !libc::O_CLOEXEC != 0 || a[0] as i32 == a[1] as i32 {
        return Err(Errno::EINVAL);
    }
    let f = get_file(t, a[0])?;
    let old = t
        .fd_table()
        .install_at(a[1] as i32, f, flags & libc::O_CLOEXEC != 0, nofile(t))?;
    if let Some(old) = old {
        closed(t, old);
    }
    Ok(a[1] as i32 as u64)
}

/// fcntl commands and `struct f_owner_ex` types the libc crate lacks.
const F_SETSIG: i32 = 10;
const F_GETSIG: i32 = 11;
const F_SETOWN_EX: i32 = 15;
const F_GETOWN_EX: i32 = 16;
const F_OWNER_TID: i32 = 0;
const F_OWNER_PID: i32 = 1;
const F_OWNER_PGRP: i32 = 2;

pub fn fcntl(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let fd = fd_arg(a[0]);
    let f = t.fd_table().get(fd)?;
    match a[1] as i32 {
        libc::F_DUPFD | libc::F_DUPFD_CLOEXEC => {
            let min = a[2] as i32;
            if min < 0 || min as usize >= nofile(t) {
                return Err(Errno::EINVAL);
            }
            Ok(t.fd_table()
                .install_from(f, a[1] as i32 == libc::F_DUPFD_CLOEXEC, min, nofile(t))?
                as u64)
        }
        libc::F_GETFD => Ok(if t.fd_table().get_cloexec(fd)? {
            libc::FD_CLOEXEC as u64
        } else {
            0
        }),
        libc::F_SETFD => {
            t.fd_table()
                .set_cloexec(fd, a[2] & libc::FD_CLOEXEC as u64 != 0)?;
            Ok(0)
        }
        libc::F_GETFL => Ok(f.flags() as u64),
        libc::F_SETFL => {
            f.set_status_flags(a[2] as u32);
            crate::kernel::fasync::update(&t.kernel, &f, fd);
            Ok(0)
        }
        // The SIGIO owner and signal, used by O_ASYNC (`kernel::fasync`).
        libc::F_SETOWN => {
            f.owner
                .store(a[2] as i32, std::sync::atomic::Ordering::Relaxed);
            Ok(0)
        }
        libc::F_GETOWN => Ok(f.owner.load(std::sync::atomic::Ordering::Relaxed) as i64 as u64),
        F_SETOWN_EX => {
            let ty = t.mm.read_u32(a[2])? as i32;
            let pid = t.mm.read_u32(a[2] + 4)? as i32;
            let v = match ty {
                F_OWNER_TID | F_OWNER_PID => pid,
                F_OWNER_PGRP => -pid,
                _ => return Err(Errno::EINVAL),
            };
            f.owner.store(v, std::sync::atomic::Ordering::Relaxed);
            Ok(0)
        }
        F_GETOWN_EX => {
            let v = f.owner.load(std::sync::atomic::Ordering::Relaxed);
            let (ty, pid) = if v < 0 {
                (F_OWNER_PGRP, -v)
            } else {
                (F_OWNER_PID, v)
            };
            t.mm.write_u32(a[2], ty as u32)?;
            t.mm.write_u32(a[2] + 4, pid as u32)?;
            Ok(0)
        }
        F_SETSIG => {
            if a[2] > 64 {
                return Err(Errno::EINVAL);
            }
            f.owner_sig
                .store(a[2] as i32, std::sync::atomic::Ordering::Relaxed);
            Ok(0)
        }
        F_GETSIG => Ok(f.owner_sig.load(std::sync::atomic::Ordering::Relaxed) as u64),
        libc::F_GETPIPE_SZ => fs::pipe::pipe_of(&*f.ops)
            .map(|p| p.capacity() as u64)
            .ok_or(Errno::EBADF),
        libc::F_SETPIPE_SZ => {
            let p = fs::pipe::pipe_of(&*f.ops).ok_or(Errno::EBADF)?;
            p.set_capacity(
                a[2],
                t.creds().capable(crate::kernel::caps::CAP_SYS_RESOURCE),
            )
            .map(|n| n as u64)
        }
        cmd @ (libc::F_SETLK
        | libc::F_SETLKW
        | libc::F_GETLK
        | libc::F_OFD_SETLK
        | libc::F_OFD_SETLKW
        | libc::F_OFD_GETLK) => record_lock(t, &f, cmd, a[2]),
        _ => Err(Errno::EINVAL),
    }
}

/// fcntl's record-lock commands. `struct flock` on x86-64 (32 bytes):
/// l_type i16 @0, l_whence i16 @2, l_start i64 @8, l_len i64 @16,
/// l_pid i32 @24.
fn record_lock(t: &CurrentTask, f: &Arc<File>, cmd: i32, addr: u64) -> KResult<u64> {
    // O_PATH descriptors only serve the fd-level commands.
    if f.flags() & libc::O_PATH as u32 != 0 {
        return Err(Errno::EBADF);
    }
    let mut b = [0u8; 32];
    t.mm.copy_in(addr, &mut b)?;
    let l_type = i16::from_le_bytes([b[0], b[1]]);
    let l_whence = i16::from_le_bytes([b[2], b[3]]);
    let l_start = i64::from_le_bytes(b[8..16].try_into().unwrap_or([0; 8]));
    let l_len = i64::from_le_bytes(b[16..24].try_into().unwrap_or([0; 8]));
    let l_pid = i32::from_le_bytes(b[24..28].try_into().unwrap_or([0; 4]));
    let ofd = matches!(
        cmd,
        libc::F_OFD_SETLK | libc::F_OFD_SETLKW | libc::F_OFD_GETLK
    );
    let getlk = cmd == libc::F_GETLK || cmd == libc::F_OFD_GETLK;
    // The checks in Linux's order (fcntl_getlk / fcntl_setlk).
    let typ = LockType::from_l_type(l_type)?;
    if getlk && typ.is_none() {
        return Err(Errno::EINVAL);
    }
    let (start, end) = flocks::resolve_range(
        l_whence,
        l_start,
        l_len,
        // Files without a position (pipes) count from 0.
        || Ok(f.seek(0, libc::SEEK_CUR).unwrap_or(0) as i64),
        || f.ops.stat().map(|s| s.size as i64),
    )?;
    if !getlk {
        // Setting a lock needs the matching access mode.
        match typ {
            Some(LockType::Read) if !f.readable() => return Err(Errno::EBADF),
            Some(LockType::Write) if !f.writable() => return Err(Errno::EBADF),
            _ => {}
        }
    }
    // OFD requests must come with l_pid 0 (reserved for future use).
    if ofd && l_pid != 0 {
        return Err(Errno::EINVAL);
    }
    let req = if ofd {
        Requester::ofd(f)
    } else {
        Requester::posix(&t.task)
    };
    if let (true, Some(typ)) = (getlk, typ) {
        match flocks::test_lock(&t.task, f, &req, typ, start, end) {
            None => b[0..2].copy_from_slice(&(libc::F_UNLCK as i16).to_le_bytes()),
            Some(c) => {
                let len = if c.end == flocks::OFFSET_MAX {
                    0
                } else {
                    c.end - c.start + 1
                };
                b[0..2].copy_from_slice(&c.typ.l_type().to_le_bytes());
                b[2..4].copy_from_slice(&(libc::SEEK_SET as i16).to_le_bytes());
                b[8..16].copy_from_slice(&c.start.to_le_bytes());
                b[16..24].copy_from_slice(&len.to_le_bytes());
                b[24..28].copy_from_slice(&c.pid.to_le_bytes());
            }
        }
        t.mm.copy_out(addr, &b)?;
        return Ok(0);
    }
    let wait = cmd == libc::F_SETLKW || cmd == libc::F_OFD_SETLKW;
    flocks::set_lock(&t.task, f, &req, typ, start, end, wait)?;
    Ok(0)
}

/// flock(2): whole-file locks owned by the open file description.
pub fn flock(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    const LOCK_MAND: u32 = 32;
    let f = get_file(t, a[0])?;
    if f.flags() & libc::O_PATH as u32 != 0 {
        return Err(Errno::EBADF);
    }
    let op = a[1] as u32;
    // LOCK_MAND is ignored since Linux 5.15 (with a warning).
    if op & LOCK_MAND != 0 {
        return Ok(0);
    }
    let typ = match op & !(libc::LOCK_NB as u32) {
        x if x == libc::LOCK_SH as u32 => Some(LockType::Read),
        x if x == libc::LOCK_EX as u32 => Some(LockType::Write),
        x if x == libc::LOCK_UN as u32 => None,
        _ => return Err(Errno::EINVAL),
    };
    if typ.is_some() && !f.readable() && !f.writable() {
        return Err(Errno::EBADF);
    }
    flocks::flock(&t.task, &f, typ, op & libc::LOCK_NB as u32 == 0)?;
    Ok(0)
}

pub fn ioctl(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let fd = fd_arg(a[0]);
    let f = t.fd_table().get(fd)?;
    match a[1] as u32 as u64 {
        x if x == libc::FIONBIO => {
            let on = t.mm.read_u32(a[2])? != 0;
            let fl = f.flags();
            let nb = libc::O_NONBLOCK as u32;
            f.set_status_flags(if on { fl | nb } else { fl & !nb });
            Ok(0)
        }
        x if x == libc::FIOASYNC => {
            let on = t.mm.read_u32(a[2])? != 0;
            let fl = f.flags();
            let asy = libc::O_ASYNC as u32;
            f.set_status_flags(if on { fl | asy } else { fl & !asy });
            crate::kernel::fasync::update(&t.kernel, &f, fd);
            Ok(0)
        }
        // FIOSETOWN and SIOCSPGRP take an int like F_SETOWN; the GET forms
        // write it back.
        0x8901 | 0x8902 => {
            let v = t.mm.read_u32(a[2])? as i32;
            f.owner.store(v, std::sync::atomic::Ordering::Relaxed);
            Ok(0)
        }
        0x8903 | 0x8904 => {
            let v = f.owner.load(std::sync::atomic::Ordering::Relaxed);
            t.mm.write_u32(a[2], v as u32)?;
            Ok(0)
        }
        x if x == libc::FIOCLEX => t.fd_table().set_cloexec(fd, true).map(|_| 0),
        x if x == libc::FIONCLEX => t.fd_table().set_cloexec(fd, false).map(|_| 0),
        cmd => f.ops.ioctl(&t.task, &f, cmd as u32, a[2]),
    }
}

pub fn pipe(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    do_pipe(t, a[0], 0)
}

pub fn pipe2(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    do_pipe(t, a[0], a[1] as u32)
}

fn do_pipe(t: &CurrentTask, addr: u64, flags: u32) -> KResult<u64> {
    if flags & !((libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_DIRECT) as u32) != 0 {
        return Err(Errno::EINVAL);
    }
    let (r, w) = fs::pipe::new_pipe();
    let nb = flags & libc::O_NONBLOCK as u32;
    let cloexec = flags & libc::O_CLOEXEC as u32 != 0;
    let rf = File::new(r, libc::O_RDONLY as u32 | nb, None);
    let wf = File::new(w, libc::O_WRONLY as u32 | nb, None);
    let fds = t.fd_table();
    let rfd = fds.install_from(rf, cloexec, 0, nofile(t))?;
    let wfd = match fds.install_from(wf, cloexec, 0, nofile(t)) {
        Ok(x) => x,
        Err(e) => {
            let _ = fds.remove(rfd);
            return Err(e);
        }
    };
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&rfd.to_le_bytes());
    b[4..].copy_from_slice(&wfd.to_le_bytes());
    if let Err(e) = t.mm.copy_out(addr, &b) {
        let _ = fds.remove(rfd);
        let _ = fds.remove(wfd);
        return Err(e);
    }
    Ok(0)
}

pub fn fsync(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    get_file(t, a[0])?.ops.fsync().map(|_| 0)
}

pub fn sync(_t: &mut CurrentTask, _a: &Args) -> KResult<u64> {
    Ok(0)
}

pub fn fadvise64(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let f = get_file(t, a[0])?;
    if !f.ops.seekable() {
        return Err(Errno::ESPIPE);
    }
    if a[3] > 5 {
        return Err(Errno::EINVAL);
    }
    // Advice only: our page cache is the host's.
    Ok(0)
}

pub fn ftruncate(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let f = get_file(t, a[0])?;
    if (a[1] as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    if !f.writable() {
        return Err(Errno::EINVAL);
    }
    f.ops.truncate(a[1])?;
    fs::inotify::notify_file(&f, fs::inotify::IN_MODIFY);
    Ok(0)
}

fn dir_listing(f: &File) -> KResult<Vec<crate::vfs::DirEntry>> {
    let d = f.dentry.as_ref().ok_or(Errno::ENOTDIR)?;
    let st = f.ops.stat()?;
    if !st.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    let parent_ino = d
        .parent
        .as_ref()
        .and_then(|p| p.inode.stat().ok())
        .map(|s| s.ino)
        .unwrap_or(st.ino);
    let mut v = vec![
        crate::vfs::DirEntry {
            ino: st.ino,
            d_type: libc::DT_DIR,
            name: b".".to_vec(),
        },
        crate::vfs::DirEntry {
            ino: parent_ino,
            d_type: libc::DT_DIR,
            name: b"..".to_vec(),
        },
    ];
    v.extend(f.ops.readdir()?);
    Ok(v)
}

fn do_getdents(t: &CurrentTask, a: &Args, old: bool) -> KResult<u64> {
    let f = get_file(t, a[0])?;
    let cap = a[2] as usize;
    let mut pos = lock(&f.pos);
    let entries = {
        let mut snap = lock(&f.dir_snapshot);
        match snap.as_ref() {
            Some(e) if *pos != 0 => e.clone(),
            _ => {
                let e = Arc::new(dir_listing(&f)?);
                *snap = Some(e.clone());
                e
            }
        }
    };
    let mut out = Vec::new();
    let mut i = *pos as usize;
    while i < entries.len() {
        let e = &entries[i];
        let reclen = if old {
            (8 + 8 + 2 + e.name.len() + 2 + 7) & !7
        } else {
            (8 + 8 + 2 + 1 + e.name.len() + 1 + 7) & !7
        };
        if out.len() + reclen > cap {
            break;
        }
        let start = out.len();
        out.extend_from_slice(&e.ino.to_le_bytes());
        out.extend_from_slice(&((i + 1) as i64).to_le_bytes());
        out.extend_from_slice(&(reclen as u16).to_le_bytes());
        if old {
            out.extend_from_slice(&e.name);
            out.push(0);
            out.resize(start + reclen - 1, 0);
            out.push(e.d_type);
        } else {
            out.push(e.d_type);
            out.extend_from_slice(&e.name);
            out.push(0);
            out.resize(start + reclen, 0);
        }
        i += 1;
    }
    if out.is_empty() && i < entries.len() {
        return Err(Errno::EINVAL);
    }
    t.mm.copy_out(a[1], &out)?;
    *pos = i as u64;
    Ok(out.len() as u64)
}

pub fn getdents64(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    do_getdents(t, a, false)
}

pub fn getdents(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    do_getdents(t, a, true)
}

pub fn sendfile(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let out = get_file(t, a[0])?;
    let inp = get_file(t, a[1])?;
    let count = (a[3] as usize).min(MAX_RW);
    let mut buf = vec![0u8; count];
    let n = if a[2] != 0 {
        let off = t.mm.read_u64(a[2])?;
        let n = inp.pread(&t.task, &mut buf, off)?;
        t.mm.write_u64(a[2], off + n as u64)?;
        n
    } else {
        inp.read(&t.task, &mut buf)?
    };
    let r = out.write(&t.task, &buf[..n]);
    Ok(sigpipe(t, r)? as u64)
}

pub fn eventfd(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    do_eventfd(t, a[0], 0)
}

pub fn eventfd2(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    do_eventfd(t, a[0], a[1] as u32)
}

fn do_eventfd(t: &CurrentTask, init: u64, flags: u32) -> KResult<u64> {
    const EFD_SEMAPHORE: u32 = 1;
    if flags & !((libc::O_CLOEXEC | libc::O_NONBLOCK) as u32 | EFD_SEMAPHORE) != 0 {
        return Err(Errno::EINVAL);
    }
    let ops = fs::eventfd::new_eventfd(init as u32 as u64, flags & EFD_SEMAPHORE != 0);
    let f = File::new(
        ops,
        libc::O_RDWR as u32 | (flags & libc::O_NONBLOCK as u32),
        None,
    );
    install(t, f, flags & libc::O_CLOEXEC as u32 != 0)
}

pub fn dtype(st: &Stat) -> u8 {
    dtype_of_mode(st.mode)
}

pub fn signalfd(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    do_signalfd(t, a[0] as i32, a[1], a[2], 0)
}

pub fn signalfd4(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    do_signalfd(t, a[0] as i32, a[1], a[2], a[3] as u32)
}

fn do_signalfd(t: &CurrentTask, fd: i32, mask_addr: u64, size: u64, flags: u32) -> KResult<u64> {
    use fs::signalfd::SignalFd;
    if flags & !((libc::O_CLOEXEC | libc::O_NONBLOCK) as u32) != 0 || size != 8 {
        return Err(Errno::EINVAL);
    }
    let mask = t.mm.read_u64(mask_addr)?;
    if fd != -1 {
        let f = t.fd_table().get(fd)?;
        let s = f
            .ops
            .as_any()
            .downcast_ref::<SignalFd>()
            .ok_or(Errno::EINVAL)?;
        s.set_mask(mask);
        return Ok(fd as u64);
    }
    let f = File::new(
        fs::signalfd::new_signalfd(mask),
        libc::O_RDWR as u32 | (flags & libc::O_NONBLOCK as u32),
        None,
    );
    install(t, f, flags & libc::O_CLOEXEC as u32 != 0)
}

pub fn timerfd_create(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let clock = a[0] as i32;
    let flags = a[1] as u32;
    if flags & !((libc::O_CLOEXEC | libc::O_NONBLOCK) as u32) != 0 {
        return Err(Errno::EINVAL);
    }
    match clock {
        libc::CLOCK_REALTIME | libc::CLOCK_MONOTONIC | libc::CLOCK_BOOTTIME => {}
        libc::CLOCK_REALTIME_ALARM | libc::CLOCK_BOOTTIME_ALARM => return Err(Errno::EPERM),
        _ => return Err(Errno::EINVAL),
    }
    let f = File::new(
        fs::timerfd::new_timerfd(&t.kernel, clock),
        libc::O_RDWR as u32 | (flags & libc::O_NONBLOCK as u32),
        None,
    );
    install(t, f, flags & libc::O_CLOEXEC as u32 != 0)
}

fn timerfd_of(t: &CurrentTask, fd: u64) -> KResult<Arc<File>> {
    let f = get_file(t, fd)?;
    if f.ops.as_any().is::<fs::timerfd::TimerFd>() {
        Ok(f)
    } else {
        Err(Errno::EINVAL)
    }
}

fn itimerspec_bytes(value: std::time::Duration, interval: std::time::Duration) -> [u8; 32] {
    let mut b = [0u8; 32];
    for (i, d) in [interval, value].iter().enumerate() {
        b[i * 16..i * 16 + 8].copy_from_slice(&(d.as_secs() as i64).to_le_bytes());
        b[i * 16 + 8..i * 16 + 16].copy_from_slice(&(d.subsec_nanos() as i64).to_le_bytes());
    }
    b
}

pub fn timerfd_settime(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    const TFD_TIMER_ABSTIME: u32 = 1;
    const TFD_TIMER_CANCEL_ON_SET: u32 = 2;
    use super::sys_thread::read_duration;
    use std::time::Instant;
    let flags = a[1] as u32;
    if flags & !(TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET) != 0 {
        return Err(Errno::EINVAL);
    }
    let f = timerfd_of(t, a[0])?;
    let tf = f
        .ops
        .as_any()
        .downcast_ref::<fs::timerfd::TimerFd>()
        .ok_or(Errno::EINVAL)?;
    let interval = read_duration(t, a[2])?;
    let value = read_duration(t, a[2] + 16)?;
    let first = if value.is_zero() {
        None
    } else if flags & TFD_TIMER_ABSTIME != 0 {
        let now = super::sys_time::host_clock(tf.clock());
        Some(Instant::now() + value.saturating_sub(now))
    } else {
        Some(Instant::now() + value)
    };
    let (old_v, old_i) = tf.set(first, interval);
    if a[3] != 0 {
        t.mm.copy_out(a[3], &itimerspec_bytes(old_v, old_i))?;
    }
    Ok(0)
}

pub fn timerfd_gettime(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let f = timerfd_of(t, a[0])?;
    let tf = f
        .ops
        .as_any()
        .downcast_ref::<fs::timerfd::TimerFd>()
        .ok_or(Errno::EINVAL)?;
    let (v, i) = tf.get();
    t.mm.copy_out(a[1], &itimerspec_bytes(v, i))?;
    Ok(0)
}

pub fn inotify_init(t: &mut CurrentTask, _a: &Args) -> KResult<u64> {
    do_inotify_init(t, 0)
}

pub fn inotify_init1(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    do_inotify_init(t, a[0] as u32)
}

fn do_inotify_init(t: &CurrentTask, flags: u32) -> KResult<u64> {
    if flags & !((libc::O_CLOEXEC | libc::O_NONBLOCK) as u32) != 0 {
        return Err(Errno::EINVAL);
    }
    let ops: Arc<dyn FileOps> = fs::inotify::new_inotify();
    let f = File::new(
        ops,
        libc::O_RDONLY as u32 | (flags & libc::O_NONBLOCK as u32),
        None,
    );
    install(t, f, flags & libc::O_CLOEXEC as u32 != 0)
}

fn inotify_of(f: &File) -> KResult<&fs::inotify::Inotify> {
    f.ops
        .as_any()
        .downcast_ref::<fs::inotify::Inotify>()
        .ok_or(Errno::EINVAL)
}

pub fn inotify_add_watch(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    use fs::inotify::*;
    let mask = a[2] as u32;
    if mask & !IN_VALID_MASK != 0 || mask & IN_ALL_EVENTS == 0 {
        return Err(Errno::EINVAL);
    }
    if mask & IN_MASK_ADD != 0 && mask & IN_MASK_CREATE != 0 {
        return Err(Errno::EINVAL);
    }
    let f = get_file(t, a[0])?;
    let p = path_arg(t, a[1])?;
    let d = t.lookup_at(AT_FDCWD, &p, mask & IN_DONT_FOLLOW == 0, false)?;
    let ino = inotify_of(&f)?;
    let st = d.inode.stat()?;
    if mask & IN_ONLYDIR != 0 && !st.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    if !t.creds().may(&st, 4) {
        return Err(Errno::EACCES);
    }
    Ok(ino.add_watch(&d.inode, mask)? as u64)
}

pub fn inotify_rm_watch(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let f = get_file(t, a[0])?;
    inotify_of(&f)?.rm_watch(a[1] as i32)?;
    Ok(0)
}
