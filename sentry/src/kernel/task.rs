//! Tasks (guest threads) and thread groups (guest processes), and the loop
//! that runs a task on its own host thread: switch into the guest, serve its
//! system call or fault, deliver signals, repeat.

use super::signal::{AltStack, SigAction, SigQueue, NSIG};
use super::waiter::{WaitQueue, Waiter};
use super::{Creds, Kernel};
use crate::errno::{Errno, KResult};
use crate::mm::MemoryManager;
use crate::vfs::{FdTable, FsContext};
use platform::{Context, Event, Interrupter, Regs};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

pub const RLIMIT_COUNT: usize = 16;
pub const RLIM_INFINITY: u64 = u64::MAX;

/// Signal handlers, shared by the threads of a group (CLONE_SIGHAND).
pub type SigHand = Arc<Mutex<[SigAction; NSIG]>>;

pub struct ThreadGroup {
    pub tgid: i32,
    pub sighand: Mutex<SigHand>,
    /// Process-directed pending signals.
    pub pending: Mutex<SigQueue>,
    /// Notified when a child of this group changes state (wait4).
    pub child_wq: WaitQueue,
    pub rlimits: Mutex<[[u64; 2]; RLIMIT_COUNT]>,
    /// Wait status of a group exit in progress (exit_group or fatal signal).
    pub group_exit: Mutex<Option<i32>>,
    pub stopped: AtomicBool,
    pub stop_wq: WaitQueue,
    /// ITIMER_REAL: (timer id, interval).
    pub itimer_real: Mutex<Option<(u64, Instant, std::time::Duration)>>,
    /// CPU time (ns) of exited threads, and of waited-for children.
    pub dead_cpu_ns: AtomicU64,
    pub children_cpu_ns: AtomicU64,
    pub start: Instant,
    /// What /proc shows for a zombie, whose tasks are gone: the name and
    /// credentials of the leader (or of the last thread seen exiting).
    pub exit_info: Mutex<Option<(Vec<u8>, Creds)>>,
    /// /proc/<pid>/oom_score_adj (stored, not acted upon: the host's OOM
    /// killer sees the sandbox as a whole).
    pub oom_score_adj: AtomicI32,
}

pub fn default_rlimits() -> [[u64; 2]; RLIMIT_COUNT] {
    let mut r = [[RLIM_INFINITY; 2]; RLIMIT_COUNT];
    r[libc::RLIMIT_STACK as usize] = [8 << 20, RLIM_INFINITY];
    r[libc::RLIMIT_NOFILE as usize] = [1024, 1 << 20];
    r[libc::RLIMIT_CORE as usize] = [0, RLIM_INFINITY];
    r[libc::RLIMIT_NPROC as usize] = [1 << 20, 1 << 20];
    r[libc::RLIMIT_SIGPENDING as usize] = [1 << 16, 1 << 16];
    r[libc::RLIMIT_MEMLOCK as usize] = [8 << 20, 8 << 20];
    r[libc::RLIMIT_MSGQUEUE as usize] = [819_200, 819_200];
    r[libc::RLIMIT_NICE as usize] = [0, 0];
    r[libc::RLIMIT_RTPRIO as usize] = [0, 0];
    r
}

impl ThreadGroup {
    pub fn new(tgid: i32, sighand: SigHand, rlimits: [[u64; 2]; RLIMIT_COUNT]) -> Arc<ThreadGroup> {
        Arc::new(ThreadGroup {
            tgid,
            sighand: Mutex::new(sighand),
            pending: Mutex::new(SigQueue::default()),
            child_wq: WaitQueue::new(),
            rlimits: Mutex::new(rlimits),
            group_exit: Mutex::new(None),
            stopped: AtomicBool::new(false),
            stop_wq: WaitQueue::new(),
            itimer_real: Mutex::new(None),
            dead_cpu_ns: AtomicU64::new(0),
            children_cpu_ns: AtomicU64::new(0),
            start: Instant::now(),
            exit_info: Mutex::new(None),
            // A new group is made by fork on the forking task's thread:
            // inherit its value as Linux does (init starts at 0).
            oom_score_adj: AtomicI32::new(
                current()
                    .map(|t| t.tg.oom_score_adj.load(Ordering::Relaxed))
                    .unwrap_or(0),
            ),
        })
    }

    pub fn action(&self, sig: i32) -> SigAction {
        let h = lock(&self.sighand).clone();
        let a = lock(&h)[(sig - 1) as usize];
        a
    }

    pub fn rlimit(&self, res: i32) -> u64 {
        lock(&self.rlimits)[res as usize][0]
    }

    pub fn exiting(&self) -> Option<i32> {
        *lock(&self.group_exit)
    }
}

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Per-thread signal state.
#[derive(Default)]
pub struct TaskSignals {
    pub mask: u64,
    pub pending: SigQueue,
    pub altstack: AltStack,
    /// The mask to restore after a temporary one (sigsuspend, ppoll, pselect).
    pub saved_mask: Option<u64>,
    /// Signals this thread waits for in rt_sigtimedwait: though blocked,
    /// a process-directed one may be given to this thread (Linux unblocks
    /// them for the wait).
    pub sigwait: u64,
}

pub struct Task {
    pub tid: i32,
    pub kernel: Arc<Kernel>,
    pub tg: Arc<ThreadGroup>,
    pub mm: Mutex<Arc<MemoryManager>>,
    pub fds: Mutex<Arc<FdTable>>,
    pub fs: Mutex<Arc<Mutex<FsContext>>>,
    pub creds: Mutex<Creds>,
    pub sig: Mutex<TaskSignals>,
    pub waiter: Arc<Waiter>,
    interrupter: Mutex<Option<Interrupter>>,
    pub clear_child_tid: AtomicU64,
    pub robust_list: AtomicU64,
    pub comm: Mutex<Vec<u8>>,
    /// Set when the task must exit at its next check (group exit, SIGKILL).
    pub killed: AtomicBool,
    /// A CLONE_VFORK parent waiting for us to exec or exit.
    pub vfork_parent: Mutex<Option<Arc<Task>>>,
    pub vfork_done: AtomicBool,
    /// The stub thread's host tid, for CPU-time clocks.
    pub host_tid: AtomicI32,
    pub niceness: AtomicI32,
    /// The wait status exit(2) left, used if this is the last thread.
    pub thread_exit_status: AtomicI32,
    /// Blocked in `block_until` (/proc shows "S"; otherwise "R").
    pub sleeping: AtomicBool,
    /// Time spent running guest code: (total ns, start of the current
    /// stint in ns since the kernel's start, 0 when not in the guest).
    guest_time: Mutex<(u64, u64)>,
}

/// Tasks created since start and the last tid handed out, for /proc/stat's
/// "processes" and /proc/loadavg's last pid.
pub static TASKS_CREATED: AtomicU64 = AtomicU64::new(0);
pub static LAST_TID: AtomicI32 = AtomicI32::new(0);

impl Task {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        tid: i32,
        kernel: Arc<Kernel>,
        tg: Arc<ThreadGroup>,
        mm: Arc<MemoryManager>,
        fds: Arc<FdTable>,
        fs: Arc<Mutex<FsContext>>,
        creds: Creds,
        mask: u64,
        comm: Vec<u8>,
    ) -> KResult<Arc<Task>> {
        TASKS_CREATED.fetch_add(1, Ordering::Relaxed);
        LAST_TID.store(tid, Ordering::Relaxed);
        Ok(Arc::new(Task {
            tid,
            kernel,
            tg,
            mm: Mutex::new(mm),
            fds: Mutex::new(fds),
            fs: Mutex::new(fs),
            creds: Mutex::new(creds),
            sig: Mutex::new(TaskSignals {
                mask,
                ..Default::default()
            }),
            waiter: Waiter::new().map_err(|_| Errno::ENOMEM)?,
            interrupter: Mutex::new(None),
            clear_child_tid: AtomicU64::new(0),
            robust_list: AtomicU64::new(0),
            comm: Mutex::new(comm),
            killed: AtomicBool::new(false),
            vfork_parent: Mutex::new(None),
            vfork_done: AtomicBool::new(false),
            host_tid: AtomicI32::new(0),
            niceness: AtomicI32::new(0),
            thread_exit_status: AtomicI32::new(libc::SIGKILL),
            sleeping: AtomicBool::new(false),
            guest_time: Mutex::new((0, 0)),
        }))
    }

    pub fn tgid(&self) -> i32 {
        self.tg.tgid
    }

    pub fn mm(&self) -> Arc<MemoryManager> {
        lock(&self.mm).clone()
    }

    pub fn fd_table(&self) -> Arc<FdTable> {
        lock(&self.fds).clone()
    }

    pub fn fs_context(&self) -> Arc<Mutex<FsContext>> {
        lock(&self.fs).clone()
    }

    pub fn creds(&self) -> Creds {
        lock(&self.creds).clone()
    }

    /// Wakes the task: from a sleep, or out of the guest.
    pub fn kick(&self) {
        self.waiter.notify();
        if let Some(i) = *lock(&self.interrupter) {
            i.interrupt();
        }
    }

    pub fn set_interrupter(&self, i: Option<Interrupter>) {
        *lock(&self.interrupter) = i;
    }

    /// Whether a signal is pending that would interrupt a sleep.
    pub fn interrupted(&self) -> bool {
        if self.killed.load(Ordering::SeqCst) || self.tg.exiting().is_some() {
            return true;
        }
        let s = lock(&self.sig);
        let blocked = s.mask;
        if s.pending.mask & !blocked != 0 {
            return true;
        }
        drop(s);
        lock(&self.tg.pending).mask & !blocked != 0
    }

    /// Sleeps until `cond` yields a result, re-checking whenever one of
    /// `queues` is notified or a host fd in `host` becomes ready.
    ///
    /// A pending signal ends the wait with ERESTARTSYS (callers that must
    /// not restart map it), a passed `deadline` with ETIMEDOUT.
    pub fn block_until<T>(
        &self,
        queues: &[&WaitQueue],
        host: &[(RawFd, i16)],
        deadline: Option<Instant>,
        mut cond: impl FnMut() -> Option<KResult<T>>,
    ) -> KResult<T> {
        for q in queues {
            q.add(&self.waiter);
        }
        let mut pfds: Vec<libc::pollfd> = host
            .iter()
            .map(|&(fd, ev)| libc::pollfd {
                fd,
                events: ev,
                revents: 0,
            })
            .collect();
        let result = loop {
            if let Some(r) = cond() {
                break r;
            }
            if self.interrupted() {
                break Err(Errno::ERESTARTSYS);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break Err(Errno::ETIMEDOUT);
            }
            // O_ASYNC signals this call raised go out before it sleeps:
            // the reader they wake may be what it waits for.
            super::fasync::flush();
            self.sleeping.store(true, Ordering::Relaxed);
            self.waiter.sleep(&mut pfds, deadline);
            self.sleeping.store(false, Ordering::Relaxed);
        };
        for q in queues {
            q.remove(&self.waiter);
        }
        result
    }

    /// Sleeps until `deadline` or a signal (nanosleep, pause).
    pub fn sleep_until(&self, deadline: Option<Instant>) -> KResult<()> {
        match self.block_until::<()>(&[], &[], deadline, || None) {
            Err(e) if e == Errno::ETIMEDOUT => Ok(()),
            r => r,
        }
    }

    pub fn rlimit(&self, res: i32) -> u64 {
        self.tg.rlimit(res)
    }

    /// CPU time consumed by this thread's guest code, in nanoseconds: the
    /// time it spent switched into the guest, as the sentry measures it.
    /// (The host's per-thread CPU clock of the stub thread cannot be read:
    /// Linux refuses thread CPU clocks of threads outside the caller's
    /// thread group with EINVAL, and stub threads live in stub processes.)
    /// An upper bound: it includes time the host kept the runnable stub
    /// thread waiting for a CPU.
    pub fn cpu_time_ns(&self) -> u64 {
        let (total, since) = *lock(&self.guest_time);
        if since == 0 {
            total
        } else {
            total + self.now_ns().saturating_sub(since)
        }
    }

    fn now_ns(&self) -> u64 {
        self.kernel.boot.elapsed().as_nanos() as u64
    }

    fn enter_guest(&self) {
        lock(&self.guest_time).1 = self.now_ns().max(1);
    }

    fn leave_guest(&self) {
        let now = self.now_ns();
        let mut g = lock(&self.guest_time);
        if g.1 != 0 {
            g.0 += now.saturating_sub(g.1);
            g.1 = 0;
        }
    }
}

/// The task running on the current host thread, with what only that thread
/// touches: the platform context and the guest registers.
pub struct CurrentTask {
    pub task: Arc<Task>,
    pub ctx: Box<dyn Context>,
    pub regs: Regs,
    /// The mm, cached (only exec replaces it, on this thread).
    pub mm: Arc<MemoryManager>,
    /// The result of the last system call if it asked to be restarted.
    pub restart: Option<Errno>,
}

impl std::ops::Deref for CurrentTask {
    type Target = Task;
    fn deref(&self) -> &Task {
        &self.task
    }
}

/// Initial registers for a fresh guest thread.
pub fn initial_regs(entry: u64, sp: u64) -> Regs {
    // SAFETY: user_regs_struct is plain integers.
    let mut r: Regs = unsafe { std::mem::zeroed() };
    r.rip = entry;
    r.rsp = sp;
    r.cs = 0x33;
    r.ss = 0x2b;
    r.eflags = 0x202;
    r.orig_rax = u64::MAX;
    r
}

thread_local! {
    /// The task this host thread runs (each task has its own host thread).
    static CURRENT: std::cell::RefCell<Option<Arc<Task>>> = const { std::cell::RefCell::new(None) };
}

/// The task running on the calling host thread, for code that serves a
/// system call without being handed the task (e.g. procfs's /proc/self).
pub fn current() -> Option<Arc<Task>> {
    CURRENT.with(|c| c.borrow().clone())
}

impl CurrentTask {
    pub fn new(task: Arc<Task>, ctx: Box<dyn Context>, regs: Regs) -> CurrentTask {
        CURRENT.with(|c| *c.borrow_mut() = Some(task.clone()));
        task.set_interrupter(Some(ctx.interrupter()));
        let ir = ctx.interrupter();
        task.host_tid.store(ir.host_tid(), Ordering::Relaxed);
        let mm = task.mm();
        CurrentTask {
            task,
            ctx,
            regs,
            mm,
            restart: None,
        }
    }

    /// Runs the task until it exits.
    pub fn run(mut self) {
        loop {
            if let Some(status) = self.check_signals() {
                self.remember_for_zombie();
                self.exit(status);
                return;
            }
            self.task.enter_guest();
            let event = self.ctx.switch(&mut self.regs);
            self.task.leave_guest();
            match event {
                Ok(Event::Syscall) => crate::syscalls::dispatch(&mut self),
                Ok(Event::Fault(f)) => self.handle_fault(f),
                Ok(Event::Interrupted) => {}
                Err(e) => {
                    tracing::error!(tid = self.tid, "platform failure: {e}");
                    self.kernel.kill_group(&self.tg, libc::SIGKILL);
                }
            }
        }
    }

    /// Keeps what /proc shows of a zombie (its tasks are gone by then).
    fn remember_for_zombie(&self) {
        let mut info = lock(&self.tg.exit_info);
        if info.is_none() || self.tid == self.tgid() {
            *info = Some((lock(&self.comm).clone(), self.creds()));
        }
    }

    pub fn replace_context(&mut self, ctx: Box<dyn Context>) {
        self.task.set_interrupter(Some(ctx.interrupter()));
        self.task
            .host_tid
            .store(ctx.interrupter().host_tid(), Ordering::Relaxed);
        let old = std::mem::replace(&mut self.ctx, ctx);
        old.release();
    }
}
