//! A task's view of the filesystem: resolving paths relative to its root,
//! working directory or a directory fd.

use super::task::{lock, Task};
use crate::errno::{Errno, KResult};
use crate::vfs::{Dentry, File, FsContext};
use std::sync::Arc;

pub const AT_FDCWD: i32 = -100;

impl Task {
    /// The directory a *at() call starts from.
    pub fn start_dir(&self, dirfd: i32, path: &[u8]) -> KResult<Arc<Dentry>> {
        if path.first() == Some(&b'/') || dirfd == AT_FDCWD {
            let fs = self.fs_context();
            let fs = lock(&fs);
            return Ok(fs.cwd.clone());
        }
        let f = self.fd_table().get(dirfd)?;
        let d = f.dentry.clone().ok_or(Errno::ENOTDIR)?;
        if !d.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        Ok(d)
    }

    /// Resolves `path` for a *at() call. `empty_ok` is AT_EMPTY_PATH.
    pub fn lookup_at(
        &self,
        dirfd: i32,
        path: &[u8],
        follow: bool,
        empty_ok: bool,
    ) -> KResult<Arc<Dentry>> {
        if path.is_empty() {
            if !empty_ok {
                return Err(Errno::ENOENT);
            }
            if dirfd == AT_FDCWD {
                let fs = self.fs_context();
                let fs = lock(&fs);
                return Ok(fs.cwd.clone());
            }
            let f = self.fd_table().get(dirfd)?;
            return f.dentry.clone().ok_or(Errno::EBADF);
        }
        let start = self.start_dir(dirfd, path)?;
        self.kernel
            .vfs
            .lookup(&self.fs_snapshot(), &start, path, follow)
    }

    /// The root, cwd and umask, copied out of the lock: a walk may reach
    /// procfs, which reads other tasks' (and our own) contexts.
    pub fn fs_snapshot(&self) -> FsContext {
        let fs = self.fs_context();
        let g = lock(&fs);
        FsContext {
            root: g.root.clone(),
            cwd: g.cwd.clone(),
            umask: g.umask,
        }
    }

    pub fn lookup_parent_at(&self, dirfd: i32, path: &[u8]) -> KResult<(Arc<Dentry>, Vec<u8>)> {
        let start = self.start_dir(dirfd, path)?;
        self.kernel
            .vfs
            .lookup_parent(&self.fs_snapshot(), &start, path)
    }

    /// Write and search permission on a directory about to change.
    /// EROFS when `d` lies on a read-only mount (checked before
    /// permissions, as Linux's mnt_want_write comes first).
    pub fn writable_mount(&self, d: &Dentry) -> KResult<()> {
        if self.kernel.vfs.flags_of(d).readonly {
            return Err(Errno::EROFS);
        }
        Ok(())
    }

    /// mknod for the caller: checks it may write `dir`, makes `name` with
    /// `mode`'s type and its permission bits less the umask, owned by the
    /// caller's filesystem ids, and reports IN_CREATE. The caller has
    /// checked the name is free.
    pub fn make_node(&self, dir: &Dentry, name: &[u8], mode: u32, dev: u64) -> KResult<()> {
        self.may_modify_dir(dir)?;
        let umask = lock(&self.fs_context()).umask;
        let c = self.creds();
        let perm = mode & 0o7777 & !umask;
        dir.inode
            .mknod(name, (mode & libc::S_IFMT) | perm, dev, c.fsuid, c.fsgid)?;
        crate::fs::inotify::notify(&dir.inode, None, crate::fs::inotify::IN_CREATE, name, 0);
        Ok(())
    }

    pub fn may_modify_dir(&self, dir: &Dentry) -> KResult<()> {
        self.writable_mount(dir)?;
        let c = self.creds();
        if !c.may(&dir.inode.stat()?, 3) {
            return Err(Errno::EACCES);
        }
        Ok(())
    }

    /// May `child` be removed from (or renamed out of) `dir`? Write and
    /// search on the directory, and the sticky-bit rule.
    pub fn may_delete(&self, dir: &Dentry, child: &Dentry) -> KResult<()> {
        self.may_modify_dir(dir)?;
        if !self
            .creds()
            .may_delete(&dir.inode.stat()?, &child.inode.stat()?)
        {
            return Err(Errno::EPERM);
        }
        Ok(())
    }

    /// Only the owner (or CAP_FOWNER) may change a file's mode or times.
    pub fn may_change_attrs(&self, d: &Dentry) -> KResult<()> {
        self.writable_mount(d)?;
        let c = self.creds();
        if !c.capable(crate::kernel::caps::CAP_FOWNER) && c.fsuid != d.inode.stat()?.uid {
            return Err(Errno::EPERM);
        }
        Ok(())
    }

    /// Opens an existing file by path for reading (exec, the loader).
    pub fn open_for_exec(&self, dirfd: i32, path: &[u8], empty_ok: bool) -> KResult<Arc<File>> {
        let d = self.lookup_at(dirfd, path, true, empty_ok)?;
        let st = d.inode.stat()?;
        if st.is_dir() {
            return Err(Errno::EACCES);
        }
        if st.file_type() != libc::S_IFREG || st.mode & 0o111 == 0 || !self.creds().may(&st, 1) {
            return Err(Errno::EACCES);
        }
        if self.kernel.vfs.flags_of(&d).noexec {
            return Err(Errno::EACCES);
        }
        let ops = d.inode.clone().open(libc::O_RDONLY as u32)?;
        Ok(File::new(ops, libc::O_RDONLY as u32, Some(d)))
    }
}
