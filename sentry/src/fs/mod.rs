//! Filesystem implementations behind the VFS: tmpfs, /dev, pipes, host fds,
//! the gofer-backed root, eventfd; plus what they share: inode numbers,
//! filesystem ids, anonymous device numbers and the generic directory and
//! O_PATH open files.

pub mod console;
pub mod dev;
pub mod devpts;
pub mod epoll;
pub mod eventfd;
pub mod gofer;
pub mod host;
pub mod inotify;
pub mod overlay;
pub mod pipe;
pub mod proc;
pub mod signalfd;
pub mod sys;
pub mod timerfd;
pub mod tmpfs;
pub mod tty;

use crate::errno::{Errno, KResult};
use crate::kernel::task::Task;
use crate::vfs::{makedev, DirEntry, File, FileOps, Inode, Stat};
use std::any::Any;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Inode numbers are unique across every in-sentry filesystem (tmpfs, dev,
/// pipes, …); gofer files keep their host numbers. Starting at 1 like
/// Linux's get_next_ino(); 0 is never handed out (some programs treat
/// ino 0 as "deleted entry").
static NEXT_INO: AtomicU64 = AtomicU64::new(1);

pub fn next_ino() -> u64 {
    NEXT_INO.fetch_add(1, Ordering::Relaxed)
}

static NEXT_FS_ID: AtomicUsize = AtomicUsize::new(1);

/// A fresh id for one filesystem instance (Inode::fs_id): rename and link
/// between different ids give EXDEV.
pub fn new_fs_id() -> usize {
    NEXT_FS_ID.fetch_add(1, Ordering::Relaxed)
}

/// Linux gives in-memory filesystems "anonymous" device numbers with major
/// 0; minors below 16 are left alone here so they do not look like the
/// low numbers the host's early pseudo filesystems usually get.
static NEXT_ANON_MINOR: AtomicU32 = AtomicU32::new(16);

/// A fresh anonymous st_dev (major 0) for one filesystem instance.
pub fn new_anon_dev() -> u64 {
    makedev(0, NEXT_ANON_MINOR.fetch_add(1, Ordering::Relaxed))
}

/// Locks ignoring poison: a panicking holder leaves consistent-enough
/// filesystem state, and one guest thread's bug must not wedge the others.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The open file of a directory: getdents lists `readdir()` (the syscall
/// layer adds "." and ".."), read(2) gives EISDIR. Directories are seekable
/// so lseek(fd, 0, SEEK_SET) rewinds a listing as on Linux; the position is
/// the syscall layer's getdents cursor.
pub struct DirFile {
    inode: Arc<dyn Inode>,
}

impl DirFile {
    pub fn open(inode: Arc<dyn Inode>) -> Arc<dyn FileOps> {
        Arc::new(DirFile { inode })
    }

    pub fn inode(&self) -> &Arc<dyn Inode> {
        &self.inode
    }
}

impl FileOps for DirFile {
    fn read(&self, _t: &Task, _f: &File, _buf: &mut [u8], _off: u64) -> KResult<usize> {
        Err(Errno::EISDIR)
    }
    fn write(&self, _t: &Task, _f: &File, _buf: &[u8], _off: u64) -> KResult<usize> {
        // Unreachable through open(2) (write access to a directory is
        // EISDIR at open), kept for completeness.
        Err(Errno::EISDIR)
    }
    fn seekable(&self) -> bool {
        true
    }
    fn stat(&self) -> KResult<Stat> {
        self.inode.stat()
    }
    fn readdir(&self) -> KResult<Vec<DirEntry>> {
        self.inode.readdir()
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// An O_PATH open (or any open that only needs fstat): no data access.
/// File::read already refuses O_PATH files with EBADF; write gives EBADF
/// here for the same reason.
pub struct PathFile {
    inode: Arc<dyn Inode>,
}

impl PathFile {
    pub fn open(inode: Arc<dyn Inode>) -> Arc<dyn FileOps> {
        Arc::new(PathFile { inode })
    }

    pub fn inode(&self) -> &Arc<dyn Inode> {
        &self.inode
    }
}

impl FileOps for PathFile {
    fn read(&self, _t: &Task, _f: &File, _buf: &mut [u8], _off: u64) -> KResult<usize> {
        Err(Errno::EBADF)
    }
    fn write(&self, _t: &Task, _f: &File, _buf: &[u8], _off: u64) -> KResult<usize> {
        Err(Errno::EBADF)
    }
    fn stat(&self) -> KResult<Stat> {
        self.inode.stat()
    }
    fn ioctl(&self, _t: &Task, _f: &File, _cmd: u32, _arg: u64) -> KResult<u64> {
        Err(Errno::EBADF)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

pub(crate) fn is_opath(flags: u32) -> bool {
    flags & libc::O_PATH as u32 != 0
}

pub(crate) fn wants_write(flags: u32) -> bool {
    flags & libc::O_ACCMODE as u32 != libc::O_RDONLY as u32
}

/// The checks every filesystem's `open` starts with, given the object's
/// mode: O_PATH opens anything (even a symlink); otherwise a symlink is
/// ELOOP (the walk only hands us one under O_NOFOLLOW), O_DIRECTORY needs
/// a directory, and a directory cannot be opened for writing or with
/// O_CREAT (EISDIR). Returns true when the caller should hand out a
/// PathFile.
pub(crate) fn check_open(mode: u32, flags: u32) -> KResult<bool> {
    let fmt = mode & libc::S_IFMT;
    if flags & libc::O_DIRECTORY as u32 != 0 && fmt != libc::S_IFDIR {
        // Linux checks O_DIRECTORY before O_PATH: open(symlink,
        // O_PATH|O_NOFOLLOW|O_DIRECTORY) is ENOTDIR.
        return Err(Errno::ENOTDIR);
    }
    if is_opath(flags) {
        return Ok(true);
    }
    if fmt == libc::S_IFLNK {
        return Err(Errno::ELOOP);
    }
    if fmt == libc::S_IFDIR && (wants_write(flags) || flags & libc::O_CREAT as u32 != 0) {
        return Err(Errno::EISDIR);
    }
    Ok(false)
}

/// What creating `name` in a read-only directory gives: like Linux's
/// filename_create(), an existing name is EEXIST before the filesystem's
/// EROFS.
pub(crate) fn ro_create_error(dir: &dyn Inode, name: &[u8]) -> Errno {
    match dir.stat() {
        Ok(s) if !s.is_dir() => Errno::ENOTDIR,
        _ => match dir.lookup(name) {
            Ok(_) => Errno::EEXIST,
            Err(_) => Errno::EROFS,
        },
    }
}

/// Maps a host `struct stat` into ours.
pub(crate) fn stat_from_host(s: &libc::stat) -> Stat {
    Stat {
        dev: s.st_dev,
        ino: s.st_ino,
        mode: s.st_mode,
        nlink: s.st_nlink,
        uid: s.st_uid,
        gid: s.st_gid,
        rdev: s.st_rdev,
        size: s.st_size.max(0) as u64,
        blksize: s.st_blksize.max(0) as u64,
        blocks: s.st_blocks.max(0) as u64,
        atime: crate::vfs::Timespec {
            sec: s.st_atime,
            nsec: s.st_atime_nsec,
        },
        mtime: crate::vfs::Timespec {
            sec: s.st_mtime,
            nsec: s.st_mtime_nsec,
        },
        ctime: crate::vfs::Timespec {
            sec: s.st_ctime,
            nsec: s.st_ctime_nsec,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique() {
        let (a, b) = (next_ino(), next_ino());
        assert_ne!(a, b);
        assert_ne!(a, 0);
        assert_ne!(new_fs_id(), new_fs_id());
        let (d1, d2) = (new_anon_dev(), new_anon_dev());
        assert_ne!(d1, d2);
        assert_eq!(crate::vfs::major(d1), 0);
    }

    #[test]
    fn open_checks() {
        let dir = libc::S_IFDIR | 0o755;
        let reg = libc::S_IFREG | 0o644;
        let lnk = libc::S_IFLNK | 0o777;
        let ro = libc::O_RDONLY as u32;
        let wr = libc::O_WRONLY as u32;
        let d = libc::O_DIRECTORY as u32;
        let p = libc::O_PATH as u32;
        assert_eq!(check_open(dir, ro), Ok(false));
        assert_eq!(check_open(dir, wr), Err(Errno::EISDIR));
        assert_eq!(
            check_open(dir, ro | libc::O_CREAT as u32),
            Err(Errno::EISDIR)
        );
        assert_eq!(check_open(reg, ro | d), Err(Errno::ENOTDIR));
        assert_eq!(check_open(reg, wr), Ok(false));
        assert_eq!(check_open(lnk, ro), Err(Errno::ELOOP));
        assert_eq!(check_open(lnk, p), Ok(true));
        assert_eq!(check_open(lnk, p | d), Err(Errno::ENOTDIR));
    }
}
