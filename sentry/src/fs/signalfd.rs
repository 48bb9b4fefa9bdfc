//! signalfd(2): a file that reads the caller's pending signals in its mask
//! as `struct signalfd_siginfo` records instead of delivering them.

use super::eventfd::anon_inode_stat;
use super::lock;
use crate::errno::{Errno, KResult};
use crate::kernel::signal::{bit, SigInfo, SIGKILL, SIGSTOP};
use crate::kernel::task::{current, Task};
use crate::kernel::waiter::WaitQueue;
use crate::vfs::file::{POLLIN, POLLRDNORM};
use crate::vfs::{File, FileOps, Stat};
use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// Size of `struct signalfd_siginfo`.
pub const SIGINFO_SIZE: usize = 128;

/// Notified whenever a signal is queued anywhere, so pollers of signalfds
/// (which depend on the polling task) re-check.
pub fn signal_queue() -> &'static WaitQueue {
    static Q: OnceLock<WaitQueue> = OnceLock::new();
    Q.get_or_init(WaitQueue::new)
}

pub struct SignalFd {
    mask: AtomicU64,
}

/// SIGKILL and SIGSTOP are silently dropped from a signalfd's mask.
fn clean(mask: u64) -> u64 {
    mask & !(bit(SIGKILL) | bit(SIGSTOP))
}

pub fn new_signalfd(mask: u64) -> Arc<dyn FileOps> {
    Arc::new(SignalFd {
        mask: AtomicU64::new(clean(mask)),
    })
}

impl SignalFd {
    pub fn mask(&self) -> u64 {
        self.mask.load(Ordering::SeqCst)
    }

    pub fn set_mask(&self, mask: u64) {
        self.mask.store(clean(mask), Ordering::SeqCst);
        signal_queue().notify_all();
    }

    /// Takes one signal in the mask pending for `t` (thread queue first).
    fn dequeue(&self, t: &Task) -> Option<SigInfo> {
        let blocked = !self.mask();
        if let Some(i) = lock(&t.sig).pending.dequeue(blocked) {
            return Some(i);
        }
        lock(&t.tg.pending).dequeue(blocked)
    }

    fn pending_for(&self, t: &Task) -> bool {
        let m = self.mask();
        lock(&t.sig).pending.mask & m != 0 || lock(&t.tg.pending).mask & m != 0
    }
}

/// Converts a `siginfo_t` to a `struct signalfd_siginfo`, following the
/// layout Linux picks from the signal and code (siginfo_layout).
pub fn to_signalfd_siginfo(info: &SigInfo) -> [u8; SIGINFO_SIZE] {
    let s = &info.0;
    let u32_at = |o: usize| u32::from_le_bytes(s[o..o + 4].try_into().unwrap_or([0; 4]));
    let u64_at = |o: usize| u64::from_le_bytes(s[o..o + 8].try_into().unwrap_or([0; 8]));
    let mut out = [0u8; SIGINFO_SIZE];
    let mut put32 = |o: usize, v: u32| out[o..o + 4].copy_from_slice(&v.to_le_bytes());
    let signo = info.signo();
    let code = info.code();
    put32(0, signo as u32);
    put32(4, u32_at(4));
    put32(8, code as u32);
    enum L {
        Kill,
        Timer,
        Poll,
        Fault,
        Chld,
        Rt,
    }
    const SI_KERNEL: i32 = crate::kernel::signal::SI_KERNEL;
    let layout = if code == 0 || code == SI_KERNEL {
        L::Kill
    } else if code > 0 {
        match signo {
            libc::SIGCHLD => L::Chld,
            libc::SIGILL | libc::SIGFPE | libc::SIGSEGV | libc::SIGBUS | libc::SIGTRAP => L::Fault,
            libc::SIGPOLL => L::Poll,
            _ => L::Kill,
        }
    } else if code == -2 {
        L::Timer
    } else if code == -5 {
        L::Poll
    } else {
        L::Rt
    };
    let mut w64: Vec<(usize, u64)> = Vec::new();
    match layout {
        L::Kill => {
            put32(12, u32_at(16));
            put32(16, u32_at(20));
        }
        L::Rt => {
            put32(12, u32_at(16));
            put32(16, u32_at(20));
            put32(44, u32_at(24));
            w64.push((48, u64_at(24)));
        }
        L::Timer => {
            put32(24, u32_at(16));
            put32(32, u32_at(20));
            put32(44, u32_at(24));
            w64.push((48, u64_at(24)));
        }
        L::Poll => {
            put32(28, u64_at(16) as u32);
            put32(20, u32_at(24));
        }
        L::Fault => {
            w64.push((72, u64_at(16)));
        }
        L::Chld => {
            put32(12, u32_at(16));
            put32(16, u32_at(20));
            put32(40, u32_at(24));
            w64.push((56, u64_at(32)));
            w64.push((64, u64_at(40)));
        }
    }
    for (o, v) in w64 {
        out[o..o + 8].copy_from_slice(&v.to_le_bytes());
    }
    out
}

impl FileOps for SignalFd {
    fn read(&self, t: &Task, f: &File, buf: &mut [u8], _off: u64) -> KResult<usize> {
        if buf.len() < SIGINFO_SIZE {
            return Err(Errno::EINVAL);
        }
        let first = match self.dequeue(t) {
            Some(i) => i,
            None if f.nonblocking() => return Err(Errno::EAGAIN),
            None => t.block_until(&[signal_queue()], &[], None, || self.dequeue(t).map(Ok))?,
        };
        buf[..SIGINFO_SIZE].copy_from_slice(&to_signalfd_siginfo(&first));
        let mut n = SIGINFO_SIZE;
        while buf.len() - n >= SIGINFO_SIZE {
            match self.dequeue(t) {
                Some(i) => {
                    buf[n..n + SIGINFO_SIZE].copy_from_slice(&to_signalfd_siginfo(&i));
                    n += SIGINFO_SIZE;
                }
                None => break,
            }
        }
        Ok(n)
    }

    fn stat(&self) -> KResult<Stat> {
        Ok(anon_inode_stat())
    }

    fn readiness(&self, mask: u32) -> u32 {
        match current() {
            Some(t) if self.pending_for(&t) => (POLLIN | POLLRDNORM) & mask,
            _ => 0,
        }
    }

    fn queue(&self) -> Option<&WaitQueue> {
        Some(signal_queue())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_drops_kill_and_stop() {
        let f = new_signalfd(u64::MAX);
        let s = f.as_any().downcast_ref::<SignalFd>().unwrap();
        assert_eq!(s.mask() & (bit(SIGKILL) | bit(SIGSTOP)), 0);
        assert_ne!(s.mask() & bit(libc::SIGUSR1), 0);
    }

    #[test]
    fn converts_kill_and_child() {
        let i = SigInfo::from_sender(libc::SIGUSR1, 0, 42, 1000);
        let b = to_signalfd_siginfo(&i);
        assert_eq!(u32::from_le_bytes(b[0..4].try_into().unwrap()), 10);
        assert_eq!(u32::from_le_bytes(b[12..16].try_into().unwrap()), 42);
        assert_eq!(u32::from_le_bytes(b[16..20].try_into().unwrap()), 1000);
        let c = SigInfo::child(1, 7, 0, 3);
        let b = to_signalfd_siginfo(&c);
        assert_eq!(u32::from_le_bytes(b[12..16].try_into().unwrap()), 7);
        assert_eq!(i32::from_le_bytes(b[40..44].try_into().unwrap()), 3);
        assert_eq!(i32::from_le_bytes(b[8..12].try_into().unwrap()), 1);
    }
}
