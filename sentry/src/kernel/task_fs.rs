//! A task's view of the filesystem: resolving paths relative to its root,
//! working directory or a directory fd.

use super::task::{lock, Task};
use crate::errno::{Errno, KResult};
use crate::vfs::{Dentry, File};
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
        let fs = self.fs_context();
        let fs = lock(&fs);
        self.kernel.vfs.lookup(&fs, &start, path, follow)
    }

    pub fn lookup_parent_at(&self, dirfd: i32, path: &[u8]) -> KResult<(Arc<Dentry>, Vec<u8>)> {
        let start = self.start_dir(dirfd, path)?;
        let fs = self.fs_context();
        let fs = lock(&fs);
        self.kernel.vfs.lookup_parent(&fs, &start, path)
    }

    /// Opens an existing file by path for reading (exec, the loader).
    pub fn open_for_exec(&self, dirfd: i32, path: &[u8], empty_ok: bool) -> KResult<Arc<File>> {
        let d = self.lookup_at(dirfd, path, true, empty_ok)?;
        let st = d.inode.stat()?;
        if st.is_dir() {
            return Err(Errno::EACCES);
        }
        if st.file_type() != libc::S_IFREG || st.mode & 0o111 == 0 {
            return Err(Errno::EACCES);
        }
        let ops = d.inode.clone().open(libc::O_RDONLY as u32)?;
        Ok(File::new(ops, libc::O_RDONLY as u32, Some(d)))
    }
}
