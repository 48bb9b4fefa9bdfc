//! Path and metadata system calls: stat family, access, readlink, cwd,
//! mkdir/unlink/rename/link/symlink, chmod/chown, utimensat, statfs.

use super::sys_file::get_file;
use super::{path_arg, Args};
use crate::errno::{Errno, KResult};
use crate::kernel::task::{lock, CurrentTask};
use crate::kernel::task_fs::AT_FDCWD;
use crate::vfs::{Dentry, Inode, Stat, Timespec};
use std::sync::Arc;

const AT_SYMLINK_NOFOLLOW: u64 = libc::AT_SYMLINK_NOFOLLOW as u64;
const AT_EMPTY_PATH: u64 = libc::AT_EMPTY_PATH as u64;
const AT_REMOVEDIR: u64 = libc::AT_REMOVEDIR as u64;
const AT_SYMLINK_FOLLOW: u64 = libc::AT_SYMLINK_FOLLOW as u64;

fn write_stat(t: &CurrentTask, addr: u64, st: &Stat) -> KResult<u64> {
    t.mm.copy_out(addr, &st.to_linux())?;
    Ok(0)
}

fn stat_at(t: &CurrentTask, dirfd: i32, path: &[u8], flags: u64) -> KResult<Stat> {
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | libc::AT_NO_AUTOMOUNT as u64 | 0x6000) != 0 {
        return Err(Errno::EINVAL);
    }
    if path.is_empty() && flags & AT_EMPTY_PATH != 0 && dirfd != AT_FDCWD {
        return t.fd_table().get(dirfd)?.ops.stat();
    }
    let d = t.lookup_at(
        dirfd,
        path,
        flags & AT_SYMLINK_NOFOLLOW == 0,
        flags & AT_EMPTY_PATH != 0,
    )?;
    d.inode.stat()
}

pub fn stat(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let p = path_arg(t, a[0])?;
    let st = stat_at(t, AT_FDCWD, &p, 0)?;
    write_stat(t, a[1], &st)
}

pub fn lstat(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let p = path_arg(t, a[0])?;
    let st = stat_at(t, AT_FDCWD, &p, AT_SYMLINK_NOFOLLOW)?;
    write_stat(t, a[1], &st)
}

pub fn fstat(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let st = get_file(t, a[0])?.ops.stat()?;
    write_stat(t, a[1], &st)
}

pub fn newfstatat(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let p = path_arg(t, a[1])?;
    let st = stat_at(t, a[0] as i32, &p, a[3])?;
    write_stat(t, a[2], &st)
}

pub fn statx(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let p = path_arg(t, a[1])?;
    let st = stat_at(t, a[0] as i32, &p, a[2] & !0x6000)?;
    t.mm.copy_out(a[4], &st.to_statx())?;
    Ok(0)
}

fn access_at(t: &CurrentTask, dirfd: i32, path: &[u8], mode: u64, flags: u64) -> KResult<u64> {
    if mode & !7 != 0
        || flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | libc::AT_EACCESS as u64) != 0
    {
        return Err(Errno::EINVAL);
    }
    let d = t.lookup_at(
        dirfd,
        path,
        flags & AT_SYMLINK_NOFOLLOW == 0,
        flags & AT_EMPTY_PATH != 0,
    )?;
    let st = d.inode.stat()?;
    if mode & 2 != 0
        && matches!(
            st.file_type(),
            libc::S_IFREG | libc::S_IFDIR | libc::S_IFLNK
        )
        && t.kernel.vfs.flags_of(&d).readonly
    {
        return Err(Errno::EROFS);
    }
    let c = t.creds();
    let uid = if flags & libc::AT_EACCESS as u64 != 0 {
        c.euid
    } else {
        c.ruid
    };
    let gid = if flags & libc::AT_EACCESS as u64 != 0 {
        c.egid
    } else {
        c.rgid
    };
    if !c.may_as(&st, mode as u32, uid, gid) {
        return Err(Errno::EACCES);
    }
    Ok(0)
}

pub fn access(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let p = path_arg(t, a[0])?;
    access_at(t, AT_FDCWD, &p, a[1], 0)
}

pub fn faccessat(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let p = path_arg(t, a[1])?;
    access_at(t, a[0] as i32, &p, a[2], 0)
}

pub fn faccessat2(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let p = path_arg(t, a[1])?;
    access_at(t, a[0] as i32, &p, a[2], a[3])
}

fn readlink_at(t: &CurrentTask, dirfd: i32, path: &[u8], buf: u64, size: u64) -> KResult<u64> {
    if (size as i64) <= 0 {
        return Err(Errno::EINVAL);
    }
    let d = t.lookup_at(dirfd, path, false, true)?;
    let target = d.inode.readlink()?;
    let n = target.len().min(size as usize);
    t.mm.copy_out(buf, &target[..n])?;
    Ok(n as u64)
}

pub fn readlink(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let p = path_arg(t, a[0])?;
    readlink_at(t, AT_FDCWD, &p, a[1], a[2])
}

pub fn readlinkat(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let p = path_arg(t, a[1])?;
    readlink_at(t, a[0] as i32, &p, a[2], a[3])
}

pub fn getcwd(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let fs = t.fs_context();
    let mut p = lock(&fs).cwd.path();
    p.push(0);
    if p.len() > a[1] as usize {
        return Err(Errno::ERANGE);
    }
    t.mm.copy_out(a[0], &p)?;
    Ok(p.len() as u64)
}

fn set_cwd(t: &CurrentTask, d: Arc<Dentry>) -> KResult<u64> {
    if !d.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    let st = d.inode.stat()?;
    if !t.creds().may(&st, 1) {
        return Err(Errno::EACCES);
    }
    let fs = t.fs_context();
    lock(&fs).cwd = d;
    Ok(0)
}

pub fn chdir(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let p = path_arg(t, a[0])?;
    let d = t.lookup_at(AT_FDCWD, &p, true, false)?;
    set_cwd(t, d)
}

pub fn fchdir(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let f = get_file(t, a[0])?;
    let d = f.dentry.clone().ok_or(Errno::ENOTDIR)?;
    set_cwd(t, d)
}

fn mkdir_at(t: &CurrentTask, dirfd: i32, path: &[u8], mode: u64) -> KResult<u64> {
    let (dir, name) = t.lookup_parent_at(dirfd, path)?;
    if t.kernel.vfs.child(&dir, &name).is_ok() {
        return Err(Errno::EEXIST);
    }
    t.may_modify_dir(&dir)?;
    let umask = lock(&t.fs_context()).umask;
    let c = t.creds();
    dir.inode.mkdir(
        &name,
        (mode as u32 & 0o7777 & !umask) | libc::S_IFDIR,
        c.fsuid,
        c.fsgid,
    )?;
    crate::fs::inotify::notify(
        &dir.inode,
        None,
        crate::fs::inotify::IN_CREATE | crate::fs::inotify::IN_ISDIR,
        &name,
        0,
    );
    Ok(0)
}

pub fn mkdir(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let p = path_arg(t, a[0])?;
    mkdir_at(t, AT_FDCWD, &p, a[1])
}

pub fn mkdirat(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let p = path_arg(t, a[1])?;
    mkdir_at(t, a[0] as i32, &p, a[2])
}

fn unlink_at(t: &CurrentTask, dirfd: i32, path: &[u8], flags: u64) -> KResult<u64> {
    if flags & !AT_REMOVEDIR != 0 {
        return Err(Errno::EINVAL);
    }
    let (dir, name) = match t.lookup_parent_at(dirfd, path) {
        Err(e) if e == Errno::EEXIST => {
            return Err(if flags & AT_REMOVEDIR != 0 {
                Errno::EINVAL
            } else {
                Errno::EISDIR
            })
        }
        r => r?,
    };
    let child = t.kernel.vfs.child(&dir, &name)?;
    t.may_delete(&dir, &child)?;
    if flags & AT_REMOVEDIR != 0 {
        if !child.inode.stat()?.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        dir.inode.rmdir(&name)?;
        crate::fs::inotify::notify(
            &dir.inode,
            None,
            crate::fs::inotify::IN_DELETE | crate::fs::inotify::IN_ISDIR,
            &name,
            0,
        );
        crate::fs::inotify::notify_self(&child.inode, crate::fs::inotify::IN_DELETE_SELF);
    } else {
        let st = child.inode.stat()?;
        if st.is_dir() {
            return Err(Errno::EISDIR);
        }
        dir.inode.unlink(&name)?;
        crate::fs::inotify::notify(&dir.inode, None, crate::fs::inotify::IN_DELETE, &name, 0);
        if st.nlink <= 1 {
            crate::fs::inotify::notify_self(&child.inode, crate::fs::inotify::IN_DELETE_SELF);
        } else {
            crate::fs::inotify::notify_self(&child.inode, crate::fs::inotify::IN_ATTRIB);
        }
    }
    Ok(0)
}

pub fn unlink(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let p = path_arg(t, a[0])?;
    unlink_at(t, AT_FDCWD, &p, 0)
}

pub fn unlinkat(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let p = path_arg(t, a[1])?;
    unlink_at(t, a[0] as i32, &p, a[2])
}

pub fn rmdir(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let p = path_arg(t, a[0])?;
    unlink_at(t, AT_FDCWD, &p, AT_REMOVEDIR)
}

fn rename_at(
    t: &CurrentTask,
    olddir: i32,
    old: &[u8],
    newdir: i32,
    new: &[u8],
    flags: u64,
) -> KResult<u64> {
    const RENAME_NOREPLACE: u64 = libc::RENAME_NOREPLACE as u64;
    const RENAME_EXCHANGE: u64 = libc::RENAME_EXCHANGE as u64;
    const RENAME_WHITEOUT: u64 = libc::RENAME_WHITEOUT as u64;
    if flags & !(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT) != 0
        || (flags & RENAME_EXCHANGE != 0 && flags & (RENAME_NOREPLACE | RENAME_WHITEOUT) != 0)
    {
        return Err(Errno::EINVAL);
    }
    if flags & RENAME_WHITEOUT != 0 {
        // Whiteout character devices are for overlayfs upper layers,
        // which live in the sentry; a guest cannot make them.
        return Err(if t.creds().capable(crate::kernel::caps::CAP_MKNOD) {
            Errno::EINVAL
        } else {
            Errno::EPERM
        });
    }
    let (od, on) = t.lookup_parent_at(olddir, old).map_err(|e| {
        if e == Errno::EEXIST {
            Errno::EBUSY
        } else {
            e
        }
    })?;
    let (nd, nn) = t.lookup_parent_at(newdir, new).map_err(|e| {
        if e == Errno::EEXIST {
            Errno::EBUSY
        } else {
            e
        }
    })?;
    let src = t.kernel.vfs.child(&od, &on)?;
    let dst = t.kernel.vfs.child(&nd, &nn).ok();
    if flags & RENAME_NOREPLACE != 0 && dst.is_some() {
        return Err(Errno::EEXIST);
    }
    if flags & RENAME_EXCHANGE != 0 && dst.is_none() {
        return Err(Errno::ENOENT);
    }
    // lock_rename's traps: a source above the new parent cannot move
    // there (EINVAL); a target above the old parent is "not empty".
    if is_ancestor_or_self(&src, &nd)? {
        return Err(Errno::EINVAL);
    }
    if let Some(d) = &dst {
        if is_ancestor_or_self(d, &od)? {
            return Err(if flags & RENAME_EXCHANGE != 0 {
                Errno::EINVAL
            } else {
                Errno::ENOTEMPTY
            });
        }
    }
    t.may_delete(&od, &src)?;
    match &dst {
        Some(d) => t.may_delete(&nd, d)?,
        None => t.may_modify_dir(&nd)?,
    }
    if od.inode.fs_id() != nd.inode.fs_id() {
        return Err(Errno::EXDEV);
    }
    if flags & RENAME_EXCHANGE != 0 {
        od.inode.exchange(&on, &nd.inode, &nn)?;
        // Both names changed: report each as a move.
        renamed(&od, &on, &nd, &nn, &src, None);
        if let Some(d) = &dst {
            renamed(&nd, &nn, &od, &on, d, None);
        }
        return Ok(0);
    }
    od.inode.rename(&on, &nd.inode, &nn)?;
    renamed(&od, &on, &nd, &nn, &src, dst.as_ref());
    Ok(0)
}

/// Whether `a` is `b` or one of its ancestors (by file identity).
fn is_ancestor_or_self(a: &Dentry, b: &Arc<Dentry>) -> KResult<bool> {
    let st = a.inode.stat()?;
    if !st.is_dir() {
        return Ok(false);
    }
    let id = (st.dev, st.ino);
    let mut cur = Some(b.clone());
    while let Some(d) = cur {
        let s = d.inode.stat()?;
        if (s.dev, s.ino) == id {
            return Ok(true);
        }
        cur = d.parent.clone();
    }
    Ok(false)
}

/// inotify events of a successful rename.
fn renamed(
    od: &Dentry,
    on: &[u8],
    nd: &Dentry,
    nn: &[u8],
    src: &Dentry,
    dst: Option<&Arc<Dentry>>,
) {
    use crate::fs::inotify::*;
    if !active() {
        return;
    }
    let isdir = src.inode.stat().map(|s| s.is_dir()).unwrap_or(false);
    let dirbit = if isdir { IN_ISDIR } else { 0 };
    let cookie = next_cookie();
    notify(&od.inode, None, IN_MOVED_FROM | dirbit, on, cookie);
    notify(&nd.inode, None, IN_MOVED_TO | dirbit, nn, cookie);
    notify_self(&src.inode, IN_MOVE_SELF);
    if let Some(d) = dst {
        notify_self(&d.inode, IN_DELETE_SELF);
    }
}

pub fn rename(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let o = path_arg(t, a[0])?;
    let n = path_arg(t, a[1])?;
    rename_at(t, AT_FDCWD, &o, AT_FDCWD, &n, 0)
}

pub fn renameat(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let o = path_arg(t, a[1])?;
    let n = path_arg(t, a[3])?;
    rename_at(t, a[0] as i32, &o, a[2] as i32, &n, 0)
}

pub fn renameat2(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let o = path_arg(t, a[1])?;
    let n = path_arg(t, a[3])?;
    rename_at(t, a[0] as i32, &o, a[2] as i32, &n, a[4])
}

fn symlink_at(t: &CurrentTask, target: &[u8], dirfd: i32, path: &[u8]) -> KResult<u64> {
    if target.is_empty() {
        return Err(Errno::ENOENT);
    }
    let (dir, name) = t.lookup_parent_at(dirfd, path)?;
    if t.kernel.vfs.child(&dir, &name).is_ok() {
        return Err(Errno::EEXIST);
    }
    t.may_modify_dir(&dir)?;
    let c = t.creds();
    dir.inode.symlink(&name, target, c.fsuid, c.fsgid)?;
    crate::fs::inotify::notify(&dir.inode, None, crate::fs::inotify::IN_CREATE, &name, 0);
    Ok(0)
}

pub fn symlink(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let target = path_arg(t, a[0])?;
    let p = path_arg(t, a[1])?;
    symlink_at(t, &target, AT_FDCWD, &p)
}

pub fn symlinkat(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let target = path_arg(t, a[0])?;
    let p = path_arg(t, a[2])?;
    symlink_at(t, &target, a[1] as i32, &p)
}

fn link_at(
    t: &CurrentTask,
    olddir: i32,
    old: &[u8],
    newdir: i32,
    new: &[u8],
    flags: u64,
) -> KResult<u64> {
    if flags & !(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let src = t.lookup_at(
        olddir,
        old,
        flags & AT_SYMLINK_FOLLOW != 0,
        flags & AT_EMPTY_PATH != 0,
    )?;
    // Linux's order: the new name (EEXIST), the mount (EXDEV), the
    // directory's permissions, then a directory target (EPERM).
    let (dir, name) = t.lookup_parent_at(newdir, new)?;
    if t.kernel.vfs.child(&dir, &name).is_ok() {
        return Err(Errno::EEXIST);
    }
    if dir.inode.fs_id() != src.inode.fs_id() {
        return Err(Errno::EXDEV);
    }
    t.may_modify_dir(&dir)?;
    if src.inode.stat()?.is_dir() {
        return Err(Errno::EPERM);
    }
    dir.inode.link(&name, &src.inode)?;
    crate::fs::inotify::notify_self(&src.inode, crate::fs::inotify::IN_ATTRIB);
    crate::fs::inotify::notify(&dir.inode, None, crate::fs::inotify::IN_CREATE, &name, 0);
    Ok(0)
}

pub fn link(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let o = path_arg(t, a[0])?;
    let n = path_arg(t, a[1])?;
    link_at(t, AT_FDCWD, &o, AT_FDCWD, &n, 0)
}

pub fn linkat(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let o = path_arg(t, a[1])?;
    let n = path_arg(t, a[3])?;
    link_at(t, a[0] as i32, &o, a[2] as i32, &n, a[4])
}

fn chmod_dentry(t: &CurrentTask, d: &Arc<Dentry>, mode: u64) -> KResult<u64> {
    t.may_change_attrs(d)?;
    d.inode.set_mode(mode as u32 & 0o7777)?;
    crate::fs::inotify::notify_dentry(d, crate::fs::inotify::IN_ATTRIB);
    Ok(0)
}

pub fn chmod(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let p = path_arg(t, a[0])?;
    chmod_dentry(t, &t.lookup_at(AT_FDCWD, &p, true, false)?, a[1])
}

pub fn fchmod(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let f = get_file(t, a[0])?;
    chmod_dentry(t, f.dentry.as_ref().ok_or(Errno::EINVAL)?, a[1])
}

pub fn fchmodat(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let p = path_arg(t, a[1])?;
    chmod_dentry(t, &t.lookup_at(a[0] as i32, &p, true, false)?, a[2])
}

fn owner(v: u64) -> Option<u32> {
    (v as u32 != u32::MAX).then_some(v as u32)
}

fn chown_at(
    t: &CurrentTask,
    dirfd: i32,
    path: &[u8],
    uid: u64,
    gid: u64,
    flags: u64,
) -> KResult<u64> {
    let d = t.lookup_at(
        dirfd,
        path,
        flags & AT_SYMLINK_NOFOLLOW == 0,
        flags & AT_EMPTY_PATH != 0,
    )?;
    t.writable_mount(&d)?;
    if !t.creds().capable(crate::kernel::caps::CAP_CHOWN) {
        return Err(Errno::EPERM);
    }
    d.inode.set_owner(owner(uid), owner(gid))?;
    crate::fs::inotify::notify_dentry(&d, crate::fs::inotify::IN_ATTRIB);
    Ok(0)
}

pub fn chown(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let p = path_arg(t, a[0])?;
    chown_at(t, AT_FDCWD, &p, a[1], a[2], 0)
}

pub fn lchown(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let p = path_arg(t, a[0])?;
    chown_at(t, AT_FDCWD, &p, a[1], a[2], AT_SYMLINK_NOFOLLOW)
}

pub fn fchown(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    chown_at(t, a[0] as i32, b"", a[1], a[2], AT_EMPTY_PATH)
}

pub fn fchownat(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let p = path_arg(t, a[1])?;
    chown_at(t, a[0] as i32, &p, a[2], a[3], a[4])
}

pub fn umask(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let fs = t.fs_context();
    let mut fs = lock(&fs);
    let old = fs.umask;
    fs.umask = a[0] as u32 & 0o777;
    Ok(old as u64)
}

pub fn truncate(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let p = path_arg(t, a[0])?;
    if (a[1] as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    let d = t.lookup_at(AT_FDCWD, &p, true, false)?;
    if d.inode.stat()?.is_dir() {
        return Err(Errno::EISDIR);
    }
    t.writable_mount(&d)?;
    d.inode.truncate(a[1])?;
    crate::fs::inotify::notify_dentry(&d, crate::fs::inotify::IN_MODIFY);
    Ok(0)
}

pub fn utimensat(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    const UTIME_NOW: i64 = (1 << 30) - 1;
    const UTIME_OMIT: i64 = (1 << 30) - 2;
    let d = if a[1] == 0 {
        t.lookup_at(a[0] as i32, b"", false, true)?
    } else {
        let p = path_arg(t, a[1])?;
        t.lookup_at(
            a[0] as i32,
            &p,
            a[3] & AT_SYMLINK_NOFOLLOW == 0,
            a[3] & AT_EMPTY_PATH != 0,
        )?
    };
    let now = Timespec::now();
    let (at, mt) = if a[2] == 0 {
        (Some(now), Some(now))
    } else {
        let mut b = [0u8; 32];
        t.mm.copy_in(a[2], &mut b)?;
        let get = |o: usize| -> KResult<Option<Timespec>> {
            let sec = i64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
            let nsec = i64::from_le_bytes(b[o + 8..o + 16].try_into().unwrap_or([0; 8]));
            match nsec {
                UTIME_NOW => Ok(Some(now)),
                UTIME_OMIT => Ok(None),
                n if (0..1_000_000_000).contains(&n) => Ok(Some(Timespec { sec, nsec })),
                _ => Err(Errno::EINVAL),
            }
        };
        (get(0)?, get(16)?)
    };
    t.writable_mount(&d)?;
    // Explicit times: owner or root. "Now": also anyone who may write.
    let c = t.creds();
    let st = d.inode.stat()?;
    if !c.capable(crate::kernel::caps::CAP_FOWNER) && c.fsuid != st.uid {
        let now_only = a[2] == 0;
        if !now_only || !c.may(&st, 2) {
            return Err(if now_only {
                Errno::EACCES
            } else {
                Errno::EPERM
            });
        }
    }
    d.inode.set_times(at, mt)?;
    crate::fs::inotify::notify_dentry(&d, crate::fs::inotify::IN_ATTRIB);
    Ok(0)
}

pub fn statfs(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let p = path_arg(t, a[0])?;
    let d = t.lookup_at(AT_FDCWD, &p, true, false)?;
    t.mm.copy_out(a[1], &d.inode.statfs()?.to_linux())
        .map(|_| 0)
}

pub fn fstatfs(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let f = get_file(t, a[0])?;
    let st = f
        .dentry
        .as_ref()
        .map_or(Ok(crate::vfs::Statfs::synthetic(0)), |d| d.inode.statfs())?;
    t.mm.copy_out(a[1], &st.to_linux()).map(|_| 0)
}

/// The *xattr family. Names are read from guest memory (ERANGE when empty
/// or over XATTR_NAME_MAX, as Linux's import_xattr_name()), checked as
/// xattr_permission() does, and handed to the target inode.
const XATTR_NAME_MAX: usize = 255;
const XATTR_SIZE_MAX: u64 = 64 * 1024;
const XATTR_LIST_MAX: u64 = 64 * 1024;
const XATTR_CREATE: i32 = 1;
const XATTR_REPLACE: i32 = 2;

/// How a *xattr call names its target.
#[derive(Clone, Copy)]
enum XattrTarget {
    Path,
    LPath,
    Fd,
}

fn xattr_inode(t: &CurrentTask, how: XattrTarget, arg: u64) -> KResult<Arc<dyn Inode>> {
    match how {
        XattrTarget::Fd => get_file(t, arg)?
            .dentry
            .as_ref()
            .map(|d| d.inode.clone())
            .ok_or(Errno::EBADF),
        XattrTarget::Path | XattrTarget::LPath => {
            let p = path_arg(t, arg)?;
            let follow = matches!(how, XattrTarget::Path);
            Ok(t.lookup_at(AT_FDCWD, &p, follow, false)?.inode.clone())
        }
    }
}

fn xattr_name(t: &CurrentTask, addr: u64) -> KResult<Vec<u8>> {
    if addr == 0 {
        return Err(Errno::EFAULT);
    }
    let n = t.mm.read_cstring(addr, XATTR_NAME_MAX).map_err(|e| {
        if e == Errno::ENAMETOOLONG {
            Errno::ERANGE
        } else {
            e
        }
    })?;
    if n.is_empty() || n.len() > XATTR_NAME_MAX {
        return Err(Errno::ERANGE);
    }
    Ok(n)
}

/// xattr_permission(): `write` for set/remove, otherwise read.
fn xattr_permission(
    t: &CurrentTask,
    inode: &Arc<dyn Inode>,
    name: &[u8],
    write: bool,
) -> KResult<()> {
    if name.starts_with(b"security.") || name.starts_with(b"system.") {
        return Ok(());
    }
    let c = t.creds();
    let denied = if write { Errno::EPERM } else { Errno::ENODATA };
    if name.starts_with(b"trusted.") {
        return if c.capable(crate::kernel::caps::CAP_SYS_ADMIN) {
            Ok(())
        } else {
            Err(denied)
        };
    }
    let st = inode.stat()?;
    if name.starts_with(b"user.") && !st.is_dir() && st.file_type() != libc::S_IFREG {
        return Err(denied);
    }
    if c.may(&st, if write { 2 } else { 4 }) {
        Ok(())
    } else {
        Err(Errno::EACCES)
    }
}

fn do_getxattr(t: &CurrentTask, how: XattrTarget, a: &Args) -> KResult<u64> {
    let inode = xattr_inode(t, how, a[0])?;
    let name = xattr_name(t, a[1])?;
    xattr_permission(t, &inode, &name, false)?;
    let v = inode.getxattr(&name)?;
    let size = a[3].min(XATTR_SIZE_MAX);
    if size != 0 {
        if v.len() as u64 > size {
            return Err(Errno::ERANGE);
        }
        t.mm.copy_out(a[2], &v)?;
    }
    Ok(v.len() as u64)
}

fn do_setxattr(t: &CurrentTask, how: XattrTarget, a: &Args) -> KResult<u64> {
    let flags = a[4] as i32;
    if flags & !(XATTR_CREATE | XATTR_REPLACE) != 0 {
        return Err(Errno::EINVAL);
    }
    let name = xattr_name(t, a[1])?;
    if a[3] > XATTR_SIZE_MAX {
        return Err(Errno::E2BIG);
    }
    let mut v = vec![0u8; a[3] as usize];
    if !v.is_empty() {
        t.mm.copy_in(a[2], &mut v)?;
    }
    let inode = xattr_inode(t, how, a[0])?;
    xattr_permission(t, &inode, &name, true)?;
    inode.setxattr(&name, &v, flags)?;
    Ok(0)
}

fn do_listxattr(t: &CurrentTask, how: XattrTarget, a: &Args) -> KResult<u64> {
    let inode = xattr_inode(t, how, a[0])?;
    let privileged = t.creds().capable(crate::kernel::caps::CAP_SYS_ADMIN);
    let mut out = Vec::new();
    for n in inode.listxattr()? {
        // simple_xattr_list(): trusted.* only for CAP_SYS_ADMIN.
        if n.starts_with(b"trusted.") && !privileged {
            continue;
        }
        out.extend_from_slice(&n);
        out.push(0);
    }
    let size = a[2].min(XATTR_LIST_MAX);
    if size != 0 {
        if out.len() as u64 > size {
            return Err(Errno::ERANGE);
        }
        t.mm.copy_out(a[1], &out)?;
    } else if out.len() as u64 > XATTR_LIST_MAX {
        return Err(Errno::E2BIG);
    }
    Ok(out.len() as u64)
}

fn do_removexattr(t: &CurrentTask, how: XattrTarget, a: &Args) -> KResult<u64> {
    let name = xattr_name(t, a[1])?;
    let inode = xattr_inode(t, how, a[0])?;
    xattr_permission(t, &inode, &name, true)?;
    inode.removexattr(&name)?;
    Ok(0)
}

pub fn getxattr(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    do_getxattr(t, XattrTarget::Path, a)
}
pub fn lgetxattr(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    do_getxattr(t, XattrTarget::LPath, a)
}
pub fn fgetxattr(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    do_getxattr(t, XattrTarget::Fd, a)
}
pub fn setxattr(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    do_setxattr(t, XattrTarget::Path, a)
}
pub fn lsetxattr(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    do_setxattr(t, XattrTarget::LPath, a)
}
pub fn fsetxattr(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    do_setxattr(t, XattrTarget::Fd, a)
}
pub fn listxattr(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    do_listxattr(t, XattrTarget::Path, a)
}
pub fn llistxattr(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    do_listxattr(t, XattrTarget::LPath, a)
}
pub fn flistxattr(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    do_listxattr(t, XattrTarget::Fd, a)
}
pub fn removexattr(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    do_removexattr(t, XattrTarget::Path, a)
}
pub fn lremovexattr(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    do_removexattr(t, XattrTarget::LPath, a)
}
pub fn fremovexattr(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    do_removexattr(t, XattrTarget::Fd, a)
}

fn mknod_at(t: &CurrentTask, dirfd: i32, path: &[u8], mode: u64, dev: u64) -> KResult<u64> {
    let mode = mode as u32;
    let fmt = mode & libc::S_IFMT;
    if !matches!(
        fmt,
        0 | libc::S_IFREG | libc::S_IFIFO | libc::S_IFCHR | libc::S_IFBLK | libc::S_IFSOCK
    ) {
        return Err(Errno::EINVAL);
    }
    let (dir, name) = t.lookup_parent_at(dirfd, path)?;
    if t.kernel.vfs.child(&dir, &name).is_ok() {
        return Err(Errno::EEXIST);
    }
    if matches!(fmt, libc::S_IFCHR | libc::S_IFBLK)
        && !t.creds().capable(crate::kernel::caps::CAP_MKNOD)
    {
        return Err(Errno::EPERM);
    }
    let fmt = if fmt == 0 { libc::S_IFREG } else { fmt };
    t.make_node(&dir, &name, fmt | (mode & 0o7777), dev)?;
    Ok(0)
}

pub fn mknod(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let p = path_arg(t, a[0])?;
    mknod_at(t, AT_FDCWD, &p, a[1], a[2])
}

pub fn mknodat(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let p = path_arg(t, a[1])?;
    mknod_at(t, a[0] as i32, &p, a[2], a[3])
}

/// chroot(2): the caller's root becomes `path` (CAP_SYS_CHROOT: root).
pub fn chroot(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let p = path_arg(t, a[0])?;
    let d = t.lookup_at(AT_FDCWD, &p, true, false)?;
    if !d.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    if !t.creds().capable(crate::kernel::caps::CAP_SYS_CHROOT) {
        return Err(Errno::EPERM);
    }
    let fs = t.fs_context();
    lock(&fs).root = d;
    Ok(0)
}
