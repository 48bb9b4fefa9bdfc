//! O_ASYNC: SIGIO (or F_SETSIG's signal) to a file's owner (F_SETOWN) when
//! the file becomes readable or writable.
//!
//! One hook for every file type: a file with O_ASYNC registers with the
//! wait queue its readiness changes are announced on (`FileOps::queue`),
//! and each `WaitQueue::notify_all` raises its registrations. A raise
//! asks the file for its readiness and signals the owner when the file
//! gained readability (POLL_IN), writability (POLL_OUT), an error
//! (POLL_ERR) or a hang-up (POLL_HUP) since the last look.
//!
//! Notifiers may hold locks the readiness check takes (a socket's state
//! lock around a send), so on a task's thread the raise waits until the
//! system call ends (`flush`, from the syscall dispatcher); other sentry
//! threads (the netstack's) notify with no guest object locked and raise
//! at once.
//!
//! Unlike Linux, which signals on every arrival of data, more data
//! arriving on a file that is still readable signals nothing: readers
//! driven by SIGIO drain to EAGAIN, which re-arms the edge.

use super::signal::{SigInfo, SI_KERNEL};
use super::Kernel;
use crate::vfs::file::{POLLERR, POLLHUP, POLLIN, POLLOUT, POLLRDNORM, POLLWRNORM};

const POLLPRI: u32 = 0x2;
use crate::vfs::File;
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Weak};

/// si_code values of SIGIO/F_SETSIG signals (asm-generic/siginfo.h).
const POLL_IN: i32 = 1;
const POLL_OUT: i32 = 2;
const POLL_ERR: i32 = 4;
const POLL_HUP: i32 = 6;
const POLLWRBAND: u32 = 0x200;

/// What the readiness check asks for.
const WATCHED: u32 = POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM | POLLERR | POLLHUP | POLLPRI;

/// One O_ASYNC file on one wait queue.
pub struct Fasync {
    file: Weak<File>,
    fd: i32,
    kernel: Weak<Kernel>,
    /// The readiness seen last (the edge reference).
    last: AtomicU32,
}

impl Fasync {
    /// Whether the file is still open somewhere.
    pub fn alive(&self) -> bool {
        self.file.strong_count() > 0
    }
}

thread_local! {
    /// Set while a task's thread serves a system call: raises wait.
    static IN_SYSCALL: Cell<bool> = const { Cell::new(false) };
    static PENDING: RefCell<Vec<Arc<Fasync>>> = const { RefCell::new(Vec::new()) };
}

/// Marks the calling thread as serving a system call (true) or not.
pub fn set_in_syscall(on: bool) {
    IN_SYSCALL.with(|c| c.set(on));
}

/// Turns O_ASYNC delivery on or off for `f` (installed as `fd`) after
/// F_SETFL or FIOASYNC changed its flags.
pub fn update(kernel: &Arc<Kernel>, f: &Arc<File>, fd: i32) {
    let on = f.flags() & libc::O_ASYNC as u32 != 0;
    let Some(q) = f.ops.queue() else {
        if on {
            tracing::debug!("O_ASYNC on a file without a wait queue: no SIGIO");
        }
        return;
    };
    let mut slot = crate::fs::lock(&f.fasync);
    match (on, slot.as_ref()) {
        (true, None) => {
            let r = Arc::new(Fasync {
                file: Arc::downgrade(f),
                fd,
                kernel: Arc::downgrade(kernel),
                last: AtomicU32::new(f.ops.readiness(WATCHED)),
            });
            q.add_async(&r);
            *slot = Some(r);
        }
        (false, Some(r)) => {
            q.remove_async(r);
            *slot = None;
        }
        _ => {}
    }
}

/// A wait queue with registrations was notified.
pub fn raise(regs: Vec<Arc<Fasync>>) {
    if IN_SYSCALL.with(Cell::get) {
        PENDING.with(|p| {
            let mut p = p.borrow_mut();
            for r in regs {
                if !p.iter().any(|x| Arc::ptr_eq(x, &r)) {
                    p.push(r);
                }
            }
        });
    } else {
        for r in regs {
            deliver(&r);
        }
    }
}

/// Raises what the calling task's system call notified (its locks are
/// released by now).
pub fn flush() {
    let regs = PENDING.with(|p| std::mem::take(&mut *p.borrow_mut()));
    for r in regs {
        deliver(&r);
    }
}

fn deliver(r: &Fasync) {
    let (Some(f), Some(k)) = (r.file.upgrade(), r.kernel.upgrade()) else {
        return;
    };
    if f.flags() & libc::O_ASYNC as u32 == 0 {
        return;
    }
    let now = f.ops.readiness(WATCHED);
    let old = r.last.swap(now, Ordering::AcqRel);
    let gained = now & !old;
    let (code, band) = if gained & (POLLIN | POLLRDNORM) != 0 {
        (POLL_IN, POLLIN | POLLRDNORM)
    } else if gained & (POLLOUT | POLLWRNORM) != 0 {
        (POLL_OUT, POLLOUT | POLLWRNORM | POLLWRBAND)
    } else if gained & POLLERR != 0 {
        (POLL_ERR, POLLERR)
    } else if gained & POLLHUP != 0 {
        (POLL_HUP, POLLHUP | POLLERR)
    } else {
        return;
    };
    let owner = f.owner.load(Ordering::Relaxed);
    if owner == 0 {
        return;
    }
    let sig = f.owner_sig.load(Ordering::Relaxed);
    // F_SETSIG's signal carries the reason, band and fd; plain SIGIO is
    // sent as a kernel signal without them (Linux's send_sigio_to_task).
    let info = if sig != 0 {
        let mut i = SigInfo::new(sig, code);
        i.0[16..24].copy_from_slice(&i64::from(band).to_le_bytes());
        i.0[24..28].copy_from_slice(&r.fd.to_le_bytes());
        i
    } else {
        SigInfo::new(libc::SIGIO, SI_KERNEL)
    };
    let targets: Vec<_> = {
        let ts = k.ts();
        if owner > 0 {
            match ts.procs.get(&owner) {
                Some(e) if e.zombie.is_none() => vec![e.tg.clone()],
                _ => ts
                    .tasks
                    .get(&owner)
                    .map(|t| vec![t.tg.clone()])
                    .unwrap_or_default(),
            }
        } else {
            ts.procs
                .values()
                .filter(|e| e.zombie.is_none() && e.pgid == -owner)
                .map(|e| e.tg.clone())
                .collect()
        }
    };
    for tg in targets {
        k.send_to_group(&tg, info);
    }
}
