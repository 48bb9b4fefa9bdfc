//! timerfd(2): a file counting expirations of a timer run by the kernel's
//! Timers service. read takes the count; the file is readable while it is
//! non-zero.

use super::eventfd::anon_inode_stat;
use super::lock;
use crate::errno::{Errno, KResult};
use crate::kernel::task::Task;
use crate::kernel::waiter::WaitQueue;
use crate::kernel::Kernel;
use crate::vfs::file::{POLLIN, POLLRDNORM};
use crate::vfs::{File, FileOps, Stat};
use std::any::Any;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

#[derive(Default)]
struct State {
    /// Expirations not yet read.
    count: u64,
    /// Next expiry and interval while armed.
    armed: Option<(Instant, Duration)>,
    /// The pending kernel timer.
    timer_id: Option<u64>,
    /// Bumped by every settime, so stale callbacks do nothing.
    gen: u64,
}

impl State {
    /// Counts the expirations up to `now` (all overruns of a periodic timer).
    fn update(&mut self, now: Instant) -> bool {
        let Some((next, interval)) = self.armed else {
            return false;
        };
        if now < next {
            return false;
        }
        if interval.is_zero() {
            self.count = self.count.saturating_add(1);
            self.armed = None;
        } else {
            let late = (now - next).as_nanos() / interval.as_nanos();
            let n = late as u64 + 1;
            self.count = self.count.saturating_add(n);
            let adv = interval.as_nanos().saturating_mul(n as u128);
            let adv = Duration::from_nanos(adv.min(u64::MAX as u128) as u64);
            self.armed = Some((next + adv, interval));
        }
        true
    }
}

struct Inner {
    st: Mutex<State>,
    queue: WaitQueue,
}

pub struct TimerFd {
    clock: i32,
    inner: Arc<Inner>,
    kernel: Weak<Kernel>,
}

pub fn new_timerfd(kernel: &Arc<Kernel>, clock: i32) -> Arc<dyn FileOps> {
    Arc::new(TimerFd {
        clock,
        inner: Arc::new(Inner {
            st: Mutex::new(State::default()),
            queue: WaitQueue::new(),
        }),
        kernel: Arc::downgrade(kernel),
    })
}

/// Schedules the kernel timer for the state's next expiry.
fn schedule(kernel: &Weak<Kernel>, inner: &Arc<Inner>, st: &mut State) {
    let Some(k) = kernel.upgrade() else {
        return;
    };
    let Some((next, _)) = st.armed else {
        return;
    };
    let gen = st.gen;
    let w_inner = Arc::downgrade(inner);
    let w_kernel = kernel.clone();
    let id = k.timers.schedule(
        next,
        Box::new(move || {
            let Some(inner) = w_inner.upgrade() else {
                return;
            };
            let mut st = lock(&inner.st);
            if st.gen != gen {
                return;
            }
            st.timer_id = None;
            let fired = st.update(Instant::now());
            if st.armed.is_some() {
                schedule(&w_kernel, &inner, &mut st);
            }
            drop(st);
            if fired {
                inner.queue.notify_all();
            }
        }),
    );
    st.timer_id = Some(id);
}

impl TimerFd {
    pub fn clock(&self) -> i32 {
        self.clock
    }

    /// (time to next expiry, interval); zeros when disarmed.
    pub fn get(&self) -> (Duration, Duration) {
        let now = Instant::now();
        let mut st = lock(&self.inner.st);
        st.update(now);
        match st.armed {
            Some((next, interval)) => (
                next.saturating_duration_since(now)
                    .max(Duration::from_nanos(1)),
                interval,
            ),
            None => (Duration::ZERO, Duration::ZERO),
        }
    }

    /// Arms (or with a zero `value` disarms) the timer; `value` is the
    /// first expiry as an Instant already. Returns the old setting.
    pub fn set(&self, first: Option<Instant>, interval: Duration) -> (Duration, Duration) {
        let old = self.get();
        let mut st = lock(&self.inner.st);
        st.gen += 1;
        if let Some(id) = st.timer_id.take() {
            if let Some(k) = self.kernel.upgrade() {
                k.timers.cancel(id);
            }
        }
        st.count = 0;
        st.armed = first.map(|f| (f, interval));
        if st.armed.is_some() {
            schedule(&self.kernel, &self.inner, &mut st);
        }
        drop(st);
        self.inner.queue.notify_all();
        old
    }

    fn try_read(&self) -> Option<u64> {
        let mut st = lock(&self.inner.st);
        st.update(Instant::now());
        if st.count == 0 {
            return None;
        }
        Some(std::mem::take(&mut st.count))
    }
}

impl Drop for TimerFd {
    fn drop(&mut self) {
        let mut st = lock(&self.inner.st);
        st.gen += 1;
        st.armed = None;
        if let Some(id) = st.timer_id.take() {
            if let Some(k) = self.kernel.upgrade() {
                k.timers.cancel(id);
            }
        }
    }
}

impl FileOps for TimerFd {
    fn read(&self, t: &Task, f: &File, buf: &mut [u8], _off: u64) -> KResult<usize> {
        let out = buf.get_mut(..8).ok_or(Errno::EINVAL)?;
        let v = match self.try_read() {
            Some(v) => v,
            None if f.nonblocking() => return Err(Errno::EAGAIN),
            None => t.block_until(&[&self.inner.queue], &[], None, || self.try_read().map(Ok))?,
        };
        out.copy_from_slice(&v.to_ne_bytes());
        Ok(8)
    }

    fn stat(&self) -> KResult<Stat> {
        Ok(anon_inode_stat())
    }

    fn readiness(&self, mask: u32) -> u32 {
        let mut st = lock(&self.inner.st);
        st.update(Instant::now());
        if st.count > 0 {
            (POLLIN | POLLRDNORM) & mask
        } else {
            0
        }
    }

    fn queue(&self) -> Option<&WaitQueue> {
        Some(&self.inner.queue)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periodic_overruns_counted() {
        let t0 = Instant::now();
        let mut st = State {
            armed: Some((t0, Duration::from_millis(10))),
            ..Default::default()
        };
        assert!(!st.update(t0 - Duration::from_millis(1)));
        assert!(st.update(t0 + Duration::from_millis(35)));
        assert_eq!(st.count, 4);
        assert_eq!(st.armed.unwrap().0, t0 + Duration::from_millis(40));
        let mut one = State {
            armed: Some((t0, Duration::ZERO)),
            ..Default::default()
        };
        assert!(one.update(t0 + Duration::from_secs(1)));
        assert_eq!(one.count, 1);
        assert!(one.armed.is_none());
    }
}
