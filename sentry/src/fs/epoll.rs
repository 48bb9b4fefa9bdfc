//! epoll instances: an interest list of (fd, file) pairs checked for
//! readiness on each wait. Entries hold the file weakly, so closing the last
//! fd of a file drops it from every epoll set as on Linux.
//!
//! Edge-triggered entries report when readiness gains bits or when the
//! file's wait queue was notified (new data, a state change) since the
//! last report, whether or not anyone was waiting then, as Linux's wake-up
//! callbacks mark an entry ready; EPOLLONESHOT disables an entry after one
//! report until EPOLL_CTL_MOD.
//!
//! Files backed by a host fd (hostinet sockets, host stdio) have no queue of
//! ours: their changes happen in the host kernel. Each instance watches
//! their host fds in a host epoll of its own, edge-triggered, and sleeps on
//! it: a host edge wakes the waiter and re-arms the entries of that fd, as a
//! wake-up of a file's queue does, so edge-triggered entries report again
//! when new data arrives and an idle socket costs no wake-ups.

use crate::errno::{Errno, KResult};
use crate::kernel::task::{lock, Task};
use crate::kernel::waiter::WaitQueue;
use crate::vfs::file::{FileOps, POLLERR, POLLHUP, POLLIN};
use crate::vfs::{File, Stat};
use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex, OnceLock, Weak};
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
    /// The file queue's notification count at that report.
    gen: u64,
    /// The file's host fd, if it has one.
    host_fd: Option<RawFd>,
    /// The host fd could not be watched in the host epoll (the host refuses
    /// some kinds of file): it is polled for the entry's events instead.
    poll_host: bool,
}

pub struct Epoll {
    /// Keyed by (fd, file identity), like Linux's (fd, struct file) pairs.
    interest: Mutex<BTreeMap<(i32, usize), Interest>>,
    queue: WaitQueue,
    ino: u64,
    /// The host epoll watching the host fds of the interest list, made on
    /// first need (None if the host refused to make one).
    host: OnceLock<Option<OwnedFd>>,
}

/// What a host fd is watched for: everything, since entries differ and a
/// host edge only re-arms them; each entry then checks its own events.
const HOST_EVENTS: u32 =
    (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLPRI | libc::EPOLLRDHUP | libc::EPOLLET) as u32;

impl Epoll {
    pub fn new_file() -> Arc<File> {
        let ep = Arc::new(Epoll {
            interest: Mutex::new(BTreeMap::new()),
            queue: WaitQueue::new(),
            ino: crate::fs::next_ino(),
            host: OnceLock::new(),
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
        let host_fd = f.ops.host_fd();
        let poll_host = host_fd.is_some_and(|h| !self.host_watch(h));
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
                gen: f.ops.queue().map_or(0, WaitQueue::generation),
                host_fd,
                poll_host,
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
        let mut m = lock(&self.interest);
        let gone = m.remove(&Self::key(fd, f)).ok_or(Errno::ENOENT)?;
        if let Some(h) = gone.host_fd {
            // The same host fd may be in the set under another guest fd.
            if !m.values().any(|i| i.host_fd == Some(h)) {
                self.host_unwatch(h);
            }
        }
        Ok(())
    }

    fn host_epoll(&self) -> Option<RawFd> {
        self.host
            .get_or_init(|| {
                // SAFETY: epoll_create1 with a flag; the result is a new fd.
                let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
                // SAFETY: fd is new and nothing else owns it.
                (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
            })
            .as_ref()
            .map(|f| f.as_raw_fd())
    }

    /// Watches host fd `h` in the host epoll; false if it cannot be.
    fn host_watch(&self, h: RawFd) -> bool {
        let Some(ep) = self.host_epoll() else {
            return false;
        };
        let mut ev = libc::epoll_event {
            events: HOST_EVENTS,
            u64: h as u64,
        };
        // SAFETY: ev is a live epoll_event; ep and h are open fds.
        let r = unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, h, &mut ev) };
        r == 0 || Errno::last() == Errno::EEXIST
    }

    fn host_unwatch(&self, h: RawFd) {
        if let Some(ep) = self.host.get().and_then(|o| o.as_ref()) {
            // SAFETY: EPOLL_CTL_DEL takes no event; an fd that is no longer
            // watched just fails.
            unsafe {
                libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_DEL, h, std::ptr::null_mut())
            };
        }
    }

    /// Takes the host edges that happened since the last call and re-arms
    /// the edge-triggered entries of those host fds.
    fn drain_host(&self) {
        let Some(ep) = self.host.get().and_then(|o| o.as_ref()) else {
            return;
        };
        const BATCH: usize = 64;
        let mut evs = [libc::epoll_event { events: 0, u64: 0 }; BATCH];
        loop {
            // SAFETY: evs is a live array of BATCH epoll_events; timeout 0.
            let n = unsafe { libc::epoll_wait(ep.as_raw_fd(), evs.as_mut_ptr(), BATCH as i32, 0) };
            if n <= 0 {
                return;
            }
            let mut m = lock(&self.interest);
            for e in &evs[..n as usize] {
                let h = e.u64 as RawFd;
                for i in m.values_mut().filter(|i| i.host_fd == Some(h)) {
                    i.last = 0;
                }
            }
            drop(m);
            if (n as usize) < BATCH {
                return;
            }
        }
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
            let gen = f.ops.queue().map_or(0, WaitQueue::generation);
            let ready = f.ops.readiness(want) & want;
            if i.ev.events & EPOLLET != 0 {
                if ready == 0 {
                    i.last = 0;
                    i.gen = gen;
                    continue;
                }
                if ready & !i.last == 0 && gen == i.gen {
                    continue;
                }
                if consume {
                    i.last = ready;
                    i.gen = gen;
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

    pub fn wait(
        &self,
        t: &Task,
        max: usize,
        deadline: Option<Instant>,
    ) -> KResult<Vec<EpollEvent>> {
        let (files, mut host): (Vec<Arc<File>>, Vec<(i32, i16)>) = {
            let m = lock(&self.interest);
            let files = m.values().filter_map(|i| i.file.upgrade()).collect();
            let host = m
                .values()
                .filter(|i| i.poll_host && !i.disabled)
                .filter_map(|i| i.host_fd.map(|h| (h, (i.ev.events & 0xffff) as i16)))
                .collect();
            (files, host)
        };
        let mut queues: Vec<&WaitQueue> = files.iter().filter_map(|f| f.ops.queue()).collect();
        queues.push(&self.queue);
        // Made now if no host fd was added yet: one may be added by another
        // thread while this one sleeps.
        if let Some(ep) = self.host_epoll() {
            host.push((ep, libc::POLLIN));
        }
        self.drain_host();
        let first = self.collect(max, true);
        if !first.is_empty() || deadline.is_some_and(|d| d <= Instant::now()) {
            return Ok(first);
        }
        let r = t.block_until(&queues, &host, deadline, || {
            self.drain_host();
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
