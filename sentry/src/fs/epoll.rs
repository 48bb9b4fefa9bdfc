//! epoll instances: an interest list of (fd, file) pairs checked for
//! readiness on each wait. Entries hold the file weakly, so closing the last
//! fd of a file drops it from every epoll set as on Linux.
//!
//! Edge-triggered entries are reported once per wait-up from the file's wait
//! queue and then only after the readiness changes; EPOLLONESHOT disables an
//! entry after one report until EPOLL_CTL_MOD.

use crate::errno::{Errno, KResult};
use crate::kernel::task::{lock, Task};
use crate::kernel::waiter::WaitQueue;
use crate::vfs::file::{FileOps, POLLERR, POLLHUP, POLLIN};
use crate::vfs::{File, Stat};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

const EPOLLET: u32 = 1 << 31;
const EPOLLONESHOT: u32 = 1 << 30;
const EPOLLEXCLUSIVE: u32 = 1 << 28;
const EPOLLWAKEUP: u32 = 1 << 29;

#[derive(Clone, Copy, Debug, Default)]
pub struct EpollEvent {
    pub events: u32,
    pub data: u64,
}

struct Interest {
    file: Weak<File>,
    ev: EpollEvent,
    disabled: bool,
    /// Readiness last reported for an edge-triggered entry.
    last: u32,
}

pub struct Epoll {
    /// Keyed by (fd, file identity), like Linux's (fd, struct file) pairs.
    interest: Mutex<BTreeMap<(i32, usize), Interest>>,
    queue: WaitQueue,
    ino: u64,
}

impl Epoll {
    pub fn new_file() -> Arc<File> {
        let ep = Arc::new(Epoll {
            interest: Mutex::new(BTreeMap::new()),
            queue: WaitQueue::new(),
            ino: crate::fs::next_ino(),
        });
        File::new(Arc::new(EpollFile(ep)), libc::O_RDWR as u32, None)
    }

    pub fn from_file(f: &File) -> Option<Arc<Epoll>> {
        f.ops
            .as_any()
            .downcast_ref::<EpollFile>()
            .map(|e| e.0.clone())
    }

    fn key(fd: i32, f: &Arc<File>) -> (i32, usize) {
        (fd, Arc::as_ptr(f) as usize)
    }

    pub fn add(&self, fd: i32, f: &Arc<File>, ev: EpollEvent) -> KResult<()> {
        if Epoll::from_file(f).is_some() && ev.events & EPOLLEXCLUSIVE != 0 {
            return Err(Errno::EINVAL);
        }
        let mut m = lock(&self.interest);
        m.retain(|_, i| i.file.strong_count() > 0);
        let k = Self::key(fd, f);
        if m.contains_key(&k) {
            return Err(Errno::EEXIST);
        }
        m.insert(
            k,
            Interest {
                file: Arc::downgrade(f),
                ev: EpollEvent {
                    events: ev.events & !EPOLLWAKEUP,
                    data: ev.data,
                },
                disabled: false,
                last: 0,
            },
        );
        drop(m);
        self.queue.notify_all();
        Ok(())
    }

    pub fn modify(&self, fd: i32, f: &Arc<File>, ev: EpollEvent) -> KResult<()> {
        let mut m = lock(&self.interest);
        let i = m.get_mut(&Self::key(fd, f)).ok_or(Errno::ENOENT)?;
        if ev.events & EPOLLEXCLUSIVE != 0 || i.ev.events & EPOLLEXCLUSIVE != 0 {
            return Err(Errno::EINVAL);
        }
        i.ev = EpollEvent {
            events: ev.events & !EPOLLWAKEUP,
            data: ev.data,
        };
        i.disabled = false;
        i.last = 0;
        drop(m);
        self.queue.notify_all();
        Ok(())
    }

    pub fn remove(&self, fd: i32, f: &Arc<File>) -> KResult<()> {
        lock(&self.interest)
            .remove(&Self::key(fd, f))
            .map(|_| ())
            .ok_or(Errno::ENOENT)
    }

    /// Collects ready events (at most `max`), updating ET/ONESHOT state.
    fn collect(&self, max: usize, consume: bool) -> Vec<EpollEvent> {
        let mut out = Vec::new();
        let mut m = lock(&self.interest);
        m.retain(|_, i| i.file.strong_count() > 0);
        for i in m.values_mut() {
            if out.len() >= max {
                break;
            }
            if i.disabled {
                continue;
            }
            let Some(f) = i.file.upgrade() else { continue };
            let want = (i.ev.events & 0xffff) | POLLERR | POLLHUP;
            let ready = f.ops.readiness(want) & want;
            if i.ev.events & EPOLLET != 0 {
                if ready == 0 {
                    i.last = 0;
                    continue;
                }
                if ready & !i.last == 0 {
                    continue;
                }
                if consume {
                    i.last = ready;
                }
            } else if ready == 0 {
                continue;
            }
            if consume && i.ev.events & EPOLLONESHOT != 0 {
                i.disabled = true;
            }
            out.push(EpollEvent {
                events: ready,
                data: i.ev.data,
            });
        }
        out
    }

    /// Forgets what edge-triggered entries last reported, so that the next
    /// wake-up of their files reports them again.
    fn rearm_edges(&self) {
        for i in lock(&self.interest).values_mut() {
            i.last = 0;
        }
    }

    pub fn wait(
        &self,
        t: &Task,
        max: usize,
        deadline: Option<Instant>,
    ) -> KResult<Vec<EpollEvent>> {
        let files: Vec<Arc<File>> = lock(&self.interest)
            .values()
            .filter_map(|i| i.file.upgrade())
            .collect();
        let mut queues: Vec<&WaitQueue> = files.iter().filter_map(|f| f.ops.queue()).collect();
        queues.push(&self.queue);
        let host: Vec<(i32, i16)> = files
            .iter()
            .filter_map(|f| f.ops.host_fd())
            .map(|fd| (fd, (libc::POLLIN | libc::POLLOUT) as i16))
            .collect();
        let first = self.collect(max, true);
        if !first.is_empty() || deadline.is_some_and(|d| d <= Instant::now()) {
            return Ok(first);
        }
        let mut woke = false;
        let r = t.block_until(&queues, &host, deadline, || {
            if woke {
                // A file's queue fired: edge-triggered entries may report again.
                self.rearm_edges();
            }
            woke = true;
            let v = self.collect(max, true);
            (!v.is_empty()).then_some(Ok(v))
        });
        match r {
            Err(e) if e == Errno::ETIMEDOUT => Ok(Vec::new()),
            r => r,
        }
    }
}

struct EpollFile(Arc<Epoll>);

impl FileOps for EpollFile {
    fn stat(&self) -> KResult<Stat> {
        Ok(Stat {
            ino: self.0.ino,
            mode: 0o600,
            nlink: 1,
            blksize: 4096,
            ..Default::default()
        })
    }
    fn readiness(&self, mask: u32) -> u32 {
        if !self.0.collect(1, false).is_empty() {
            mask & POLLIN
        } else {
            0
        }
    }
    fn queue(&self) -> Option<&WaitQueue> {
        Some(&self.0.queue)
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
