//! Blocking: every task owns a Waiter (an eventfd) it sleeps on; wait queues
//! of kernel objects (pipes, futexes, child exits, …) hold the waiters to wake.
//! Sleeping is a host ppoll on the eventfd plus any host fds being waited for,
//! so signals, kernel events and host I/O all end one sleep.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub struct Waiter {
    efd: OwnedFd,
}

impl Waiter {
    pub fn new() -> std::io::Result<Arc<Waiter>> {
        // SAFETY: plain eventfd creation.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fd is new and ours.
        Ok(Arc::new(Waiter {
            efd: unsafe { OwnedFd::from_raw_fd(fd) },
        }))
    }

    pub fn notify(&self) {
        let one: u64 = 1;
        // SAFETY: writing 8 bytes from a live u64 to our eventfd.
        unsafe {
            libc::write(
                self.efd.as_raw_fd(),
                &one as *const u64 as *const libc::c_void,
                8,
            )
        };
    }

    /// Consumes pending notifications.
    pub fn clear(&self) {
        let mut v: u64 = 0;
        // SAFETY: reading 8 bytes into a live u64 from our nonblocking eventfd.
        unsafe {
            libc::read(
                self.efd.as_raw_fd(),
                &mut v as *mut u64 as *mut libc::c_void,
                8,
            )
        };
    }

    /// Sleeps until notified, a host fd in `host` is ready (its revents are
    /// filled in), or `deadline` passes. Returns false on timeout.
    pub fn sleep(&self, host: &mut [libc::pollfd], deadline: Option<Instant>) -> bool {
        let mut fds = Vec::with_capacity(host.len() + 1);
        fds.push(libc::pollfd {
            fd: self.efd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        fds.extend_from_slice(host);
        let ts = deadline.map(|d| {
            let left = d.saturating_duration_since(Instant::now());
            libc::timespec {
                tv_sec: left.as_secs() as i64,
                tv_nsec: left.subsec_nanos() as i64,
            }
        });
        let tsp = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: fds is a live array of pollfd of the given length; tsp is
        // null or points at a live timespec.
        let n = unsafe {
            libc::ppoll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                tsp,
                std::ptr::null(),
            )
        };
        for (h, f) in host.iter_mut().zip(&fds[1..]) {
            h.revents = f.revents;
        }
        if fds[0].revents != 0 {
            self.clear();
        }
        n != 0
    }
}

#[derive(Default)]
pub struct WaitQueue {
    waiters: Mutex<Vec<Arc<Waiter>>>,
    /// Counts notifications, so a watcher that was not waiting (an epoll
    /// edge-triggered entry) can tell that an event happened meanwhile.
    generation: std::sync::atomic::AtomicU64,
    /// O_ASYNC files announced here (`fasync`), and whether there are any
    /// (so notifications without them take no lock).
    asyncs: Mutex<Vec<Arc<super::fasync::Fasync>>>,
    has_async: std::sync::atomic::AtomicBool,
}

impl WaitQueue {
    pub fn new() -> WaitQueue {
        WaitQueue::default()
    }

    pub fn add(&self, w: &Arc<Waiter>) {
        self.waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(w.clone());
    }

    pub fn remove(&self, w: &Arc<Waiter>) {
        let mut v = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = v.iter().position(|x| Arc::ptr_eq(x, w)) {
            v.swap_remove(i);
        }
    }

    /// How many times the queue was notified so far.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Registers an O_ASYNC file: every notification raises it.
    pub fn add_async(&self, r: &Arc<super::fasync::Fasync>) {
        let mut v = self.asyncs.lock().unwrap_or_else(|p| p.into_inner());
        v.push(r.clone());
        self.has_async
            .store(true, std::sync::atomic::Ordering::Release);
    }

    pub fn remove_async(&self, r: &Arc<super::fasync::Fasync>) {
        let mut v = self.asyncs.lock().unwrap_or_else(|p| p.into_inner());
        v.retain(|x| !Arc::ptr_eq(x, r));
        self.has_async
            .store(!v.is_empty(), std::sync::atomic::Ordering::Release);
    }

    pub fn notify_all(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        if self.has_async.load(std::sync::atomic::Ordering::Acquire) {
            let regs = {
                let mut v = self.asyncs.lock().unwrap_or_else(|p| p.into_inner());
                // Files closed without turning O_ASYNC off leave.
                v.retain(|r| r.alive());
                v.clone()
            };
            super::fasync::raise(regs);
        }
        for w in self
            .waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            w.notify();
        }
    }
}

/// Host fds to include in a sleep: (fd, poll events).
pub type HostWait = (RawFd, i16);
