//! eventfd(2): a 64-bit counter file. write adds, read takes the whole
//! count (or 1 in semaphore mode), both block (or EAGAIN) when the counter
//! is at its limit or zero.

use super::lock;
use crate::errno::{Errno, KResult};
use crate::kernel::task::Task;
use crate::kernel::waiter::WaitQueue;
use crate::vfs::file::{POLLERR, POLLIN, POLLOUT, POLLRDNORM, POLLWRNORM};
use crate::vfs::{File, FileOps, Stat, Timespec};
use std::any::Any;
use std::sync::{Arc, Mutex, OnceLock};

/// The largest counter value (ULLONG_MAX - 1).
pub const EVENTFD_MAX: u64 = 0xffff_ffff_ffff_fffe;

pub struct EventFd {
    count: Mutex<u64>,
    semaphore: bool,
    queue: WaitQueue,
}

/// eventfd(initval, EFD_SEMAPHORE if `semaphore`). EFD_NONBLOCK and
/// EFD_CLOEXEC are the File's and the fd's.
pub fn new_eventfd(initval: u64, semaphore: bool) -> Arc<dyn FileOps> {
    Arc::new(EventFd {
        count: Mutex::new(initval),
        semaphore,
        queue: WaitQueue::new(),
    })
}

/// Like Linux, every anonymous-inode file (eventfd, and later epoll,
/// signalfd, timerfd…) shares one inode: same st_ino, mode 0600 with no
/// file type bits.
pub fn anon_inode_stat() -> Stat {
    static ANON: OnceLock<(u64, u64, Timespec)> = OnceLock::new();
    let &(dev, ino, t) =
        ANON.get_or_init(|| (super::new_anon_dev(), super::next_ino(), Timespec::now()));
    Stat {
        dev,
        ino,
        mode: 0o600,
        nlink: 1,
        uid: 0,
        gid: 0,
        rdev: 0,
        size: 0,
        blksize: 4096,
        blocks: 0,
        atime: t,
        mtime: t,
        ctime: t,
    }
}

impl EventFd {
    /// The current count (for /proc/<pid>/fdinfo's "eventfd-count").
    pub fn count(&self) -> u64 {
        *lock(&self.count)
    }

    pub fn is_semaphore(&self) -> bool {
        self.semaphore
    }

    /// Adds `n` without blocking, as the kernel's eventfd_signal() (for
    /// in-sentry producers): saturates at EVENTFD_MAX.
    pub fn signal(&self, n: u64) {
        {
            let mut c = lock(&self.count);
            *c = c.saturating_add(n).min(EVENTFD_MAX);
        }
        self.queue.notify_all();
    }

    fn try_read(&self) -> Option<u64> {
        let mut c = lock(&self.count);
        if *c == 0 {
            return None;
        }
        let v = if self.semaphore { 1 } else { *c };
        *c -= v;
        drop(c);
        self.queue.notify_all();
        Some(v)
    }

    fn try_add(&self, v: u64) -> bool {
        let mut c = lock(&self.count);
        // Room iff count + v <= EVENTFD_MAX, i.e. ULLONG_MAX - count > v.
        if u64::MAX - *c <= v {
            return false;
        }
        *c += v;
        drop(c);
        self.queue.notify_all();
        true
    }
}

impl FileOps for EventFd {
    fn read(&self, t: &Task, f: &File, buf: &mut [u8], _off: u64) -> KResult<usize> {
        let out = buf.get_mut(..8).ok_or(Errno::EINVAL)?;
        let v = match self.try_read() {
            Some(v) => v,
            None if f.nonblocking() => return Err(Errno::EAGAIN),
            None => t.block_until(&[&self.queue], &[], None, || self.try_read().map(Ok))?,
        };
        out.copy_from_slice(&v.to_ne_bytes());
        Ok(8)
    }

    fn write(&self, t: &Task, f: &File, buf: &[u8], _off: u64) -> KResult<usize> {
        let b: [u8; 8] = buf
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .ok_or(Errno::EINVAL)?;
        let v = u64::from_ne_bytes(b);
        if v == u64::MAX {
            return Err(Errno::EINVAL);
        }
        if !self.try_add(v) {
            if f.nonblocking() {
                return Err(Errno::EAGAIN);
            }
            t.block_until(&[&self.queue], &[], None, || {
                self.try_add(v).then_some(Ok(()))
            })?;
        }
        Ok(8)
    }

    fn stat(&self) -> KResult<Stat> {
        Ok(anon_inode_stat())
    }

    fn readiness(&self, mask: u32) -> u32 {
        let c = *lock(&self.count);
        let mut r = 0;
        if c > 0 {
            r |= POLLIN | POLLRDNORM;
        }
        if c < EVENTFD_MAX {
            r |= POLLOUT | POLLWRNORM;
        }
        r &= mask;
        // Only reachable through an overflowing eventfd_signal() on Linux;
        // kept for parity.
        if c == u64::MAX {
            r |= POLLERR;
        }
        r
    }

    fn queue(&self) -> Option<&WaitQueue> {
        Some(&self.queue)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: u32 = POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM;

    fn ev(ops: &Arc<dyn FileOps>) -> &EventFd {
        ops.as_any().downcast_ref::<EventFd>().unwrap()
    }

    #[test]
    fn counter_and_readiness() {
        let e = new_eventfd(0, false);
        assert_eq!(e.readiness(ALL), POLLOUT | POLLWRNORM);
        assert_eq!(ev(&e).try_read(), None);
        assert!(ev(&e).try_add(5));
        assert!(ev(&e).try_add(0));
        assert_eq!(e.readiness(ALL), ALL);
        assert_eq!(ev(&e).try_read(), Some(5));
        assert_eq!(ev(&e).count(), 0);
        assert!(ev(&e).try_add(EVENTFD_MAX));
        assert_eq!(e.readiness(ALL), POLLIN | POLLRDNORM);
        assert!(!ev(&e).try_add(1));
        assert!(ev(&e).try_add(0));
        let s = e.stat().unwrap();
        assert_eq!(s.mode, 0o600);
        assert_eq!(s.ino, new_eventfd(0, true).stat().unwrap().ino);
    }

    #[test]
    fn semaphore_mode() {
        let e = new_eventfd(3, true);
        assert!(ev(&e).is_semaphore());
        assert_eq!(ev(&e).try_read(), Some(1));
        assert_eq!(ev(&e).try_read(), Some(1));
        assert_eq!(ev(&e).try_read(), Some(1));
        assert_eq!(ev(&e).try_read(), None);
        ev(&e).signal(u64::MAX);
        assert_eq!(ev(&e).count(), EVENTFD_MAX);
    }
}
