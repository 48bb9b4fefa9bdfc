//! Open file descriptions: what an fd refers to, with its offset and status
//! flags, shared by dup'ed fds and across fork.

use super::{path::Dentry, DirEntry, Stat};
use crate::errno::{Errno, KResult};
use crate::kernel::task::Task;
use crate::kernel::waiter::WaitQueue;
use std::any::Any;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

pub const POLLIN: u32 = libc::POLLIN as u32;
pub const POLLOUT: u32 = libc::POLLOUT as u32;
pub const POLLERR: u32 = libc::POLLERR as u32;
pub const POLLHUP: u32 = libc::POLLHUP as u32;
pub const POLLNVAL: u32 = libc::POLLNVAL as u32;
pub const POLLRDNORM: u32 = libc::POLLRDNORM as u32;
pub const POLLWRNORM: u32 = libc::POLLWRNORM as u32;

/// What a kind of open file does. `off` is the file position for seekable
/// files and ignored by the others.
pub trait FileOps: Send + Sync + Any {
    fn read(&self, _t: &Task, _f: &File, _buf: &mut [u8], _off: u64) -> KResult<usize> {
        Err(Errno::EINVAL)
    }
    fn write(&self, _t: &Task, _f: &File, _buf: &[u8], _off: u64) -> KResult<usize> {
        Err(Errno::EINVAL)
    }
    fn seekable(&self) -> bool {
        false
    }
    fn stat(&self) -> KResult<Stat>;
    fn readdir(&self) -> KResult<Vec<DirEntry>> {
        Err(Errno::ENOTDIR)
    }
    fn ioctl(&self, _t: &Task, _f: &File, _cmd: u32, _arg: u64) -> KResult<u64> {
        Err(Errno::ENOTTY)
    }
    /// Ready events among `mask` (POLL* bits), without blocking.
    fn readiness(&self, mask: u32) -> u32 {
        mask & (POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM)
    }
    /// The queue notified when readiness may have changed.
    fn queue(&self) -> Option<&WaitQueue> {
        None
    }
    /// A host fd whose readiness is this file's (host-backed files).
    fn host_fd(&self) -> Option<RawFd> {
        None
    }
    fn truncate(&self, _len: u64) -> KResult<()> {
        Err(Errno::EINVAL)
    }
    /// Files whose offset lives in a host file description seek there.
    fn host_seek(&self, _off: i64, _whence: i32) -> Option<KResult<u64>> {
        None
    }
    fn fsync(&self) -> KResult<()> {
        Ok(())
    }
    /// For MAP_SHARED: the file's own pages `off..off+len` (page-aligned
    /// offset) in the memory file, so mappings share them. None: this file
    /// cannot (the mapping gets a copy).
    fn shared_mapping(&self, _off: u64, _len: u64) -> Option<KResult<Vec<crate::mm::MapRun>>> {
        None
    }
    /// The socket interface, for files that are sockets.
    fn as_socket(&self) -> Option<&dyn crate::net::socket::Socket> {
        None
    }
    fn as_any(&self) -> &dyn Any;
}

pub struct File {
    pub ops: Arc<dyn FileOps>,
    flags: AtomicU32,
    pub pos: Mutex<u64>,
    pub dentry: Option<Arc<Dentry>>,
    /// The directory listing getdents walks, taken when reading starts at
    /// offset 0, so entries removed or added meanwhile never shift it.
    pub dir_snapshot: Mutex<Option<Arc<Vec<DirEntry>>>>,
    /// Which advisory locks (vfs::lock::HOLDS_* bits) this description may
    /// hold, so the last reference releases them.
    pub lock_state: AtomicU8,
    /// F_SETOWN/FIOSETOWN: the process (> 0) or process group (< 0) that
    /// would get SIGIO, and F_SETSIG's signal (0: SIGIO).
    pub owner: std::sync::atomic::AtomicI32,
    pub owner_sig: std::sync::atomic::AtomicI32,
    /// The O_ASYNC registration on the file's wait queue (`fasync`).
    pub fasync: Mutex<Option<Arc<crate::kernel::fasync::Fasync>>>,
}

impl File {
    pub fn new(ops: Arc<dyn FileOps>, flags: u32, dentry: Option<Arc<Dentry>>) -> Arc<File> {
        Arc::new(File {
            ops,
            flags: AtomicU32::new(
                flags
                    & !(libc::O_CLOEXEC as u32
                        | libc::O_CREAT as u32
                        | libc::O_EXCL as u32
                        | libc::O_TRUNC as u32
                        | libc::O_NOCTTY as u32),
            ),
            pos: Mutex::new(0),
            dentry,
            dir_snapshot: Mutex::new(None),
            lock_state: AtomicU8::new(0),
            owner: std::sync::atomic::AtomicI32::new(0),
            owner_sig: std::sync::atomic::AtomicI32::new(0),
            fasync: Mutex::new(None),
        })
    }

    pub fn flags(&self) -> u32 {
        self.flags.load(Ordering::Relaxed)
    }

    /// F_SETFL: only O_APPEND, O_NONBLOCK, O_ASYNC, O_DIRECT, O_NOATIME change.
    pub fn set_status_flags(&self, new: u32) {
        let mutable =
            (libc::O_APPEND | libc::O_NONBLOCK | libc::O_ASYNC | libc::O_DIRECT | libc::O_NOATIME)
                as u32;
        let old = self.flags();
        self.flags
            .store((old & !mutable) | (new & mutable), Ordering::Relaxed);
    }

    pub fn nonblocking(&self) -> bool {
        self.flags() & libc::O_NONBLOCK as u32 != 0
    }

    pub fn readable(&self) -> bool {
        let acc = self.flags() & libc::O_ACCMODE as u32;
        acc == libc::O_RDONLY as u32 || acc == libc::O_RDWR as u32
    }

    pub fn writable(&self) -> bool {
        let acc = self.flags() & libc::O_ACCMODE as u32;
        acc == libc::O_WRONLY as u32 || acc == libc::O_RDWR as u32
    }

    fn lock_pos(&self) -> std::sync::MutexGuard<'_, u64> {
        self.pos.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// read(2): at and advancing the file position when seekable.
    pub fn read(&self, t: &Task, buf: &mut [u8]) -> KResult<usize> {
        if !self.readable() || self.flags() & libc::O_PATH as u32 != 0 {
            return Err(Errno::EBADF);
        }
        if self.ops.seekable() {
            let mut pos = self.lock_pos();
            let n = self.ops.read(t, self, buf, *pos)?;
            *pos += n as u64;
            Ok(n)
        } else {
            self.ops.read(t, self, buf, 0)
        }
    }

    pub fn write(&self, t: &Task, buf: &[u8]) -> KResult<usize> {
        if !self.writable() {
            return Err(Errno::EBADF);
        }
        if self.ops.seekable() {
            let mut pos = self.lock_pos();
            if self.flags() & libc::O_APPEND as u32 != 0 {
                *pos = self.ops.stat()?.size;
            }
            let n = self.ops.write(t, self, buf, *pos)?;
            *pos += n as u64;
            Ok(n)
        } else {
            self.ops.write(t, self, buf, 0)
        }
    }

    pub fn pread(&self, t: &Task, buf: &mut [u8], off: u64) -> KResult<usize> {
        if !self.readable() {
            return Err(Errno::EBADF);
        }
        if !self.ops.seekable() {
            return Err(Errno::ESPIPE);
        }
        self.ops.read(t, self, buf, off)
    }

    pub fn pwrite(&self, t: &Task, buf: &[u8], off: u64) -> KResult<usize> {
        if !self.writable() {
            return Err(Errno::EBADF);
        }
        if !self.ops.seekable() {
            return Err(Errno::ESPIPE);
        }
        self.ops.write(t, self, buf, off)
    }

    pub fn seek(&self, off: i64, whence: i32) -> KResult<u64> {
        if let Some(r) = self.ops.host_seek(off, whence) {
            return r;
        }
        if !self.ops.seekable() {
            return Err(Errno::ESPIPE);
        }
        let mut pos = self.lock_pos();
        let base = match whence {
            libc::SEEK_SET => 0i64,
            libc::SEEK_CUR => *pos as i64,
            libc::SEEK_END => self.ops.stat()?.size as i64,
            libc::SEEK_DATA => {
                let size = self.ops.stat()?.size as i64;
                if off >= size {
                    return Err(Errno::ENXIO);
                }
                0
            }
            libc::SEEK_HOLE => {
                let size = self.ops.stat()?.size as i64;
                if off >= size {
                    return Err(Errno::ENXIO);
                }
                *pos = size as u64;
                return Ok(*pos);
            }
            _ => return Err(Errno::EINVAL),
        };
        let new = base.checked_add(off).ok_or(Errno::EOVERFLOW)?;
        if new < 0 {
            return Err(Errno::EINVAL);
        }
        *pos = new as u64;
        Ok(*pos)
    }
}

impl Drop for File {
    fn drop(&mut self) {
        // flock and OFD locks belong to the open file description; POSIX
        // locks set through it go too (their owner has closed it).
        if *self.lock_state.get_mut() != 0 {
            super::lock::release_file(self);
        }
    }
}
