//! mount(2) and umount2(2) for a privileged guest inside the sandbox: new
//! tmpfs and proc instances and bind mounts, in the sandbox's own mount
//! table (the host's mounts are never touched).

use super::{path_arg, Args};
use crate::errno::{Errno, KResult};
use crate::fs;
use crate::kernel::task::{lock, CurrentTask};
use crate::kernel::task_fs::AT_FDCWD;
use std::sync::Arc;

const MS_RDONLY: u64 = libc::MS_RDONLY;
const MS_REMOUNT: u64 = libc::MS_REMOUNT;
const MS_BIND: u64 = libc::MS_BIND;
const MS_REC: u64 = libc::MS_REC;
/// Propagation changes (MS_SHARED/PRIVATE/SLAVE/UNBINDABLE): our sandbox has
/// one mount namespace with no peers, so every mount is already private.
const MS_PROPAGATION: u64 =
    libc::MS_SHARED | libc::MS_PRIVATE | libc::MS_SLAVE | libc::MS_UNBINDABLE;
/// Flags that only qualify a new mount (not enforced yet; see the table).
const MS_QUALIFIERS: u64 = libc::MS_NOSUID
    | libc::MS_NODEV
    | libc::MS_NOEXEC
    | libc::MS_NOATIME
    | libc::MS_NODIRATIME
    | libc::MS_RELATIME
    | libc::MS_STRICTATIME
    | libc::MS_SILENT;

pub fn mount(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    if !t.creds().capable(crate::kernel::caps::CAP_SYS_ADMIN) {
        return Err(Errno::EPERM);
    }
    let flags = a[3] & !0xC0ED_0000u64; // MS_MGC_VAL in the top bits is ignored
    let target = path_arg(t, a[1])?;
    let dir = t.lookup_at(AT_FDCWD, &target, true, false)?;
    let where_ = dir.path();
    if flags & MS_PROPAGATION != 0 && flags & !(MS_PROPAGATION | MS_REC | libc::MS_SILENT) == 0 {
        return Ok(0);
    }
    let mflags = crate::vfs::path::MountFlags::from_ms(flags);
    if flags & MS_REMOUNT != 0 {
        // New per-mount options for an existing mount (with or without
        // MS_BIND; filesystem-specific data is not interpreted).
        if flags & !(MS_REMOUNT | MS_BIND | MS_RDONLY | MS_QUALIFIERS) != 0 {
            return Err(Errno::EINVAL);
        }
        t.kernel.vfs.remount(&where_, mflags)?;
        return Ok(0);
    }
    if flags & !(MS_BIND | MS_REC | MS_RDONLY | MS_QUALIFIERS) != 0 {
        return Err(Errno::EINVAL);
    }
    if flags & MS_BIND != 0 {
        let src = path_arg(t, a[0])?;
        let s = t.lookup_at(AT_FDCWD, &src, true, false)?;
        let src_is_dir = s.is_dir();
        if src_is_dir != dir.is_dir() {
            return Err(if src_is_dir {
                Errno::ENOTDIR
            } else {
                Errno::EISDIR
            });
        }
        t.kernel
            .vfs
            .mount_with_flags(&where_, s.inode.clone(), "bind", mflags);
        return Ok(0);
    }
    if !dir.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    let fstype = if a[2] == 0 {
        Vec::new()
    } else {
        t.mm.read_cstring(a[2], 256)?
    };
    let inode = match fstype.as_slice() {
        b"tmpfs" => fs::tmpfs::new_tmpfs(0o1777),
        b"proc" => fs::proc::new_procfs(&t.kernel),
        b"" => return Err(Errno::EINVAL),
        _ => return Err(Errno::ENODEV),
    };
    let name: &'static str = if fstype == b"tmpfs" { "tmpfs" } else { "proc" };
    t.kernel.vfs.mount_with_flags(&where_, inode, name, mflags);
    Ok(0)
}

pub fn umount2(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    if !t.creds().capable(crate::kernel::caps::CAP_SYS_ADMIN) {
        return Err(Errno::EPERM);
    }
    let flags = a[1] as i32;
    if flags & !(libc::MNT_FORCE | libc::MNT_DETACH | libc::MNT_EXPIRE | libc::UMOUNT_NOFOLLOW) != 0
    {
        return Err(Errno::EINVAL);
    }
    let target = path_arg(t, a[0])?;
    let d = t.lookup_at(AT_FDCWD, &target, flags & libc::UMOUNT_NOFOLLOW == 0, false)?;
    t.kernel
        .vfs
        .unmount_tree(&d.path(), flags & libc::MNT_DETACH != 0)?;
    Ok(0)
}

/// pivot_root(2): the mount at `new_root` becomes the root of the mount
/// tree and the old root moves to `put_old`; processes whose root or
/// working directory was the old root (or is the new root's directory)
/// follow.
pub fn pivot_root(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    if !t.creds().capable(crate::kernel::caps::CAP_SYS_ADMIN) {
        return Err(Errno::EPERM);
    }
    let nr = path_arg(t, a[0])?;
    let po = path_arg(t, a[1])?;
    let nd = t.lookup_at(AT_FDCWD, &nr, true, false)?;
    let od = t.lookup_at(AT_FDCWD, &po, true, false)?;
    if !nd.is_dir() || !od.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    // The caller must not be chrooted somewhere inside the tree.
    let my_root = lock(&t.fs_context()).root.clone();
    if !Arc::ptr_eq(&my_root, &t.kernel.vfs.root()) {
        return Err(Errno::EINVAL);
    }
    let (np, op) = (nd.path(), od.path());
    if !t.kernel.vfs.is_mount_point(&np) || np == b"/" {
        return Err(Errno::EINVAL);
    }
    let (old, new) = t.kernel.vfs.pivot_root(&np, &op)?;
    let tasks: Vec<_> = t.kernel.ts().tasks.values().cloned().collect();
    for task in tasks {
        let fs = task.fs_context();
        let mut fs = lock(&fs);
        if Arc::ptr_eq(&fs.root, &old) {
            fs.root = new.clone();
        }
        if Arc::ptr_eq(&fs.cwd, &old) || Arc::ptr_eq(&fs.cwd.inode, &new.inode) {
            fs.cwd = new.clone();
        }
    }
    Ok(0)
}
