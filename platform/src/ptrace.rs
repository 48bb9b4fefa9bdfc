//! The ptrace platform: guest threads run as threads of "stub" processes
//! driven with PTRACE_SYSEMU, so every guest system call stops in the sentry
//! instead of reaching the host.
//!
//! A stub process starts as a fork of the sentry's stub factory thread, with
//! everything but the stub code page unmapped and every fd but the memory
//! file closed. Guest memory is mapped into it by injecting mmap calls that run
//! the stub code (`syscall; int3`). Each guest thread has its own stub thread,
//! traced by the sentry thread that runs that guest thread (ptrace binds a
//! tracee to one tracer thread).

use crate::{
    Context, Event, FaultInfo, Interrupter, PendingContext, Platform, PlatformError, Prot, Regs,
    Result,
};
use nix::errno::Errno;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

/// The host signal used to kick a running stub thread back to its tracer.
pub const INTERRUPT_SIGNAL: i32 = libc::SIGUSR2;

// Stub code layout (one page at `stub_addr`):
//   INJECT: syscall; int3                 -- injected calls trap back to us
//   CLONE:  syscall; test rax,rax; jz loop; int3
//   LOOP:   mov eax, SYS_pause; syscall; jmp LOOP   -- new threads wait here
const INJECT_OFF: u64 = 0;
const CLONE_OFF: u64 = 3;
const LOOP_OFF: u64 = 11;
const STUB_CODE: [u8; 20] = [
    0x0f, 0x05, 0xcc, // INJECT
    0x0f, 0x05, 0x48, 0x85, 0xc0, 0x74, 0x01, 0xcc, // CLONE
    0xb8, 0x22, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xeb, 0xf7, // LOOP (pause = 34)
];
const STUB_SIZE: u64 = 4096;
/// Top of the x86-64 user address space with 4-level paging.
const USER_TOP: u64 = 0x7fff_ffff_f000;

const PTRACE_SYSEMU: libc::c_uint = 31;
const NT_X86_XSTATE: libc::c_int = 0x202;

/// The ptrace platform. One per sentry.
#[derive(Debug)]
pub struct PtracePlatform {
    stub_addr: u64,
    memfd: i32,
    xstate_size: usize,
    factory: Mutex<mpsc::Sender<mpsc::Sender<std::result::Result<Forked, Errno>>>>,
    /// Stubs go into a user namespace of their own with these uid_map and
    /// gid_map contents and become its root (see `set_stub_user_namespace`).
    stub_userns: OnceLock<(String, String)>,
}

impl PtracePlatform {
    /// Sets up the stub code page in the sentry (inherited by every stub) and
    /// the factory thread that forks stubs. `memfd` is the memory file every
    /// stub maps guest memory from; it keeps its number in the stubs.
    pub fn new(memfd: i32) -> Result<Arc<PtracePlatform>> {
        let stub_addr = reserve_stub_page()?;
        // The interrupt signal is ignored process-wide (the sentry never
        // uses it), and stubs inherit that: a traced stub thread still stops
        // for it (ptrace sees ignored signals), but one that is no longer
        // traced — a thread detached on its way out with a kick pending —
        // must not be killed by it, taking its whole address space along.
        // SAFETY: setting a signal disposition to SIG_IGN.
        unsafe { libc::signal(INTERRUPT_SIGNAL, libc::SIG_IGN) };
        let (tx, rx) = mpsc::channel::<mpsc::Sender<std::result::Result<Forked, Errno>>>();
        std::thread::Builder::new()
            .name("stub-factory".into())
            .spawn(move || {
                for reply in rx {
                    let _ = reply.send(fork_stub(stub_addr));
                }
            })
            .map_err(|e| PlatformError::Other(format!("spawning stub factory: {e}")))?;
        Ok(Arc::new(PtracePlatform {
            stub_addr,
            memfd,
            xstate_size: xstate_size(),
            factory: Mutex::new(tx),
            stub_userns: OnceLock::new(),
        }))
    }

    /// From now on each stub (the host process that runs guest code) makes
    /// a user namespace with these maps (uid_map and gid_map text, as
    /// written to /proc/PID/uid_map) and becomes its root, so guest code
    /// runs as the mapped host ids without privilege on the host. Set once,
    /// before the first address space.
    pub fn set_stub_user_namespace(&self, uid_map: String, gid_map: String) -> Result<()> {
        self.stub_userns
            .set((uid_map, gid_map))
            .map_err(|_| PlatformError::Other("stub user namespace already set".into()))
    }

    fn fork_stub(&self) -> Result<Forked> {
        let (tx, rx) = mpsc::channel();
        self.factory
            .lock()
            .map_err(|_| PlatformError::Other("stub factory lock poisoned".into()))?
            .send(tx)
            .map_err(|_| PlatformError::Other("stub factory gone".into()))?;
        rx.recv()
            .map_err(|_| PlatformError::Other("stub factory gone".into()))?
            .map_err(|e| PlatformError::host("fork", e))
    }
}

fn reserve_stub_page() -> Result<u64> {
    static STUB: OnceLock<u64> = OnceLock::new();
    if let Some(a) = STUB.get() {
        return Ok(*a);
    }
    // Highest free candidate below the top of the address space; the guest
    // gets everything beneath it.
    let mut cand = 0x7ffe_0000_0000u64;
    while cand > 0x7f00_0000_0000 {
        // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping; we
        // own the new page.
        let p = unsafe {
            libc::mmap(
                cand as *mut libc::c_void,
                STUB_SIZE as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            )
        };
        if p != libc::MAP_FAILED && p as u64 == cand {
            // SAFETY: p is a fresh writable page of STUB_SIZE bytes.
            unsafe {
                std::ptr::copy_nonoverlapping(STUB_CODE.as_ptr(), p as *mut u8, STUB_CODE.len());
                libc::mprotect(p, STUB_SIZE as usize, libc::PROT_READ | libc::PROT_EXEC);
            }
            let _ = STUB.set(cand);
            return Ok(cand);
        }
        if p != libc::MAP_FAILED {
            // SAFETY: an old kernel ignored NOREPLACE and gave another address; undo it.
            unsafe { libc::munmap(p, STUB_SIZE as usize) };
        }
        cand -= 1 << 30;
    }
    Err(PlatformError::Other("no room for the stub page".into()))
}

extern "C" {
    /// glibc (2.35+): where this thread's rseq area sits relative to the
    /// thread pointer, and its size (0 when rseq is not registered).
    static __rseq_offset: isize;
    static __rseq_size: u32;
}

/// The signature glibc registers rseq with on x86.
const RSEQ_SIG: u32 = 0x5305_3053;

/// A fresh stub and the rseq registration it inherited (address, length).
struct Forked {
    pid: i32,
    rseq: (u64, u32),
}

/// Forks a stub from the factory thread. The child only jumps into the stub's
/// pause loop; its tracer finishes the set-up by injection.
fn fork_stub(stub_addr: u64) -> std::result::Result<Forked, Errno> {
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // The fork child inherits this thread's rseq registration, whose area
    // lives in memory the stub unmaps: the kernel would then fault the stub
    // on every return to user mode. Work out the area to unregister it.
    // SAFETY: reading glibc's exported rseq variables and fs:0 (the TCB self
    // pointer on x86-64).
    let (rseq_addr, rseq_len) = unsafe {
        let tp: u64;
        std::arch::asm!("mov {}, fs:0", out(reg) tp);
        let len = __rseq_size;
        (
            tp.wrapping_add(__rseq_offset as u64),
            if len == 0 { 0 } else { len.max(32) },
        )
    };
    // SAFETY: raw fork; the child makes only raw system calls and then
    // jumps into the stub page, never returning into Rust code.
    let pid = unsafe { libc::syscall(libc::SYS_fork) };
    if pid == 0 {
        // SAFETY: raw syscalls with integer arguments. Dying with the
        // sentry must not depend on the tracer's set-up having run.
        unsafe {
            libc::syscall(
                libc::SYS_prctl,
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL,
                0,
                0,
                0,
            );
            if rseq_len != 0 {
                libc::syscall(libc::SYS_rseq, rseq_addr, rseq_len, 1, RSEQ_SIG);
            }
            if libc::syscall(libc::SYS_getppid) != parent as i64 {
                libc::syscall(libc::SYS_exit_group, 1);
            }
        }
        // SAFETY: the stub page is mapped at stub_addr in this (copied)
        // address space; the loop only makes pause calls.
        unsafe {
            std::arch::asm!("jmp {0}", in(reg) stub_addr + LOOP_OFF, options(noreturn));
        }
    }
    if pid < 0 {
        return Err(Errno::last());
    }
    Ok(Forked {
        pid: pid as i32,
        rseq: (rseq_addr, rseq_len),
    })
}

fn xstate_size() -> usize {
    let r = std::arch::x86_64::__cpuid_count(0xd, 0);
    (r.ebx as usize).max(576)
}

impl Platform for PtracePlatform {
    fn name(&self) -> &'static str {
        "ptrace"
    }

    fn max_user_address(&self) -> u64 {
        self.stub_addr
    }

    fn new_address_space(&self) -> Result<Box<dyn Context>> {
        let forked = self.fork_stub()?;
        let pid = forked.pid;
        let proc = Arc::new(StubProcess {
            pid,
            contexts: AtomicUsize::new(1),
        });
        let mut ctx = StubContext::attach(proc, pid, self)?;
        if let Some((uid_map, gid_map)) = self.stub_userns.get() {
            ctx.enter_user_namespace(uid_map, gid_map)?;
        }
        ctx.initialize_process(self.memfd, forked.rseq)?;
        Ok(Box::new(ctx))
    }
}

#[derive(Debug)]
struct StubProcess {
    pid: i32,
    contexts: AtomicUsize,
}

/// A stub thread traced by the current host thread.
struct StubContext {
    proc: Arc<StubProcess>,
    tid: i32,
    stub_addr: u64,
    memfd: i32,
    xstate_size: usize,
    /// Registers captured at attach time: valid segment selectors and flags
    /// to build injected calls from.
    base: Regs,
    /// An interrupt consumed while injecting, reported at the next switch.
    pending_interrupt: bool,
    /// The CPU the stub thread is pinned to (-1: not yet).
    stub_cpu: i32,
}

fn ptrace(req: libc::c_uint, tid: i32, addr: u64, data: u64) -> std::result::Result<i64, Errno> {
    // SAFETY: every request used here takes integer or pointer arguments that
    // the callers point at live, correctly sized buffers.
    let r = unsafe {
        libc::ptrace(
            req,
            tid,
            addr as *mut libc::c_void,
            data as *mut libc::c_void,
        )
    };
    if r == -1 {
        let e = Errno::last();
        if e != Errno::UnknownErrno {
            return Err(e);
        }
    }
    Ok(r)
}

/// Waits for a state change of `tid`; returns the raw wait status.
fn wait_tid(tid: i32) -> Result<i32> {
    loop {
        let mut status = 0;
        // SAFETY: status is a valid out pointer.
        let r = unsafe { libc::waitpid(tid, &mut status, libc::__WALL) };
        if r == tid {
            return Ok(status);
        }
        let e = Errno::last();
        if r < 0 && e == Errno::EINTR {
            continue;
        }
        return Err(PlatformError::host("waitpid", e));
    }
}

fn describe_status(status: i32) -> String {
    if libc::WIFEXITED(status) {
        format!("exited with {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("wait status {status:#x}")
    }
}

impl StubContext {
    /// Seizes stub thread `tid` and stops it.
    fn attach(proc: Arc<StubProcess>, tid: i32, p: &PtracePlatform) -> Result<StubContext> {
        Self::attach_raw(proc, tid, p.stub_addr, p.memfd, p.xstate_size)
    }

    fn attach_raw(
        proc: Arc<StubProcess>,
        tid: i32,
        stub_addr: u64,
        memfd: i32,
        xstate_size: usize,
    ) -> Result<StubContext> {
        ptrace(
            libc::PTRACE_SEIZE,
            tid,
            0,
            libc::PTRACE_O_TRACESYSGOOD as u64,
        )
        .map_err(|e| PlatformError::host("PTRACE_SEIZE", e))?;
        ptrace(libc::PTRACE_INTERRUPT, tid, 0, 0)
            .map_err(|e| PlatformError::host("PTRACE_INTERRUPT", e))?;
        loop {
            let status = wait_tid(tid)?;
            if !libc::WIFSTOPPED(status) {
                return Err(PlatformError::StubDied(describe_status(status)));
            }
            if status >> 16 == libc::PTRACE_EVENT_STOP {
                break;
            }
            // Some other stop (a signal) came first: suppress it and wait for ours.
            ptrace(libc::PTRACE_CONT, tid, 0, 0)
                .map_err(|e| PlatformError::host("PTRACE_CONT", e))?;
        }
        let mut ctx = StubContext {
            proc,
            tid,
            stub_addr,
            memfd,
            xstate_size,
            // SAFETY: user_regs_struct is plain integers; zero is a valid value.
            base: unsafe { std::mem::zeroed() },
            pending_interrupt: false,
            stub_cpu: -1,
        };
        ctx.base = ctx.get_regs()?;
        Ok(ctx)
    }

    /// First set-up of a freshly forked stub: leave only the stub page and
    /// the memory file behind.
    /// Moves the freshly forked (single-threaded) stub into a new user
    /// namespace with the given maps and makes it root there. Comes before
    /// the rest of the set-up: changing credentials clears the parent-death
    /// signal, which initialize_process sets.
    fn enter_user_namespace(&mut self, uid_map: &str, gid_map: &str) -> Result<()> {
        let pid = self.proc.pid;
        let fail = |what: &str, e: String| {
            PlatformError::Other(format!("stub user namespace: {what}: {e}"))
        };
        let r = self.inject(
            libc::SYS_unshare,
            [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0],
        )?;
        if r < 0 {
            return Err(fail("unshare", Errno::from_raw(-r as i32).to_string()));
        }
        for (file, text) in [("uid_map", uid_map), ("gid_map", gid_map)] {
            std::fs::write(format!("/proc/{pid}/{file}"), text)
                .map_err(|e| fail(file, e.to_string()))?;
        }
        for (nr, args, what) in [
            (libc::SYS_setgroups, [0u64, 0, 0, 0, 0, 0], "setgroups"),
            (libc::SYS_setresgid, [0, 0, 0, 0, 0, 0], "setresgid"),
            (libc::SYS_setresuid, [0, 0, 0, 0, 0, 0], "setresuid"),
        ] {
            let r = self.inject(nr, args)?;
            if r < 0 {
                return Err(fail(what, Errno::from_raw(-r as i32).to_string()));
            }
        }
        Ok(())
    }

    fn initialize_process(&mut self, memfd: i32, rseq: (u64, u32)) -> Result<()> {
        let check = |r: i64, what: &str| -> Result<()> {
            if r < 0 {
                Err(PlatformError::Other(format!(
                    "stub set-up {what} failed: {}",
                    Errno::from_raw(-r as i32)
                )))
            } else {
                Ok(())
            }
        };
        // The child may have been stopped before it could unregister its
        // inherited rseq area itself; EINVAL means it already had.
        if rseq.1 != 0 {
            let _ = self.inject(
                libc::SYS_rseq,
                [rseq.0, rseq.1 as u64, 1, RSEQ_SIG as u64, 0, 0],
            )?;
        }
        check(
            self.inject(
                libc::SYS_prctl,
                [
                    libc::PR_SET_PDEATHSIG as u64,
                    libc::SIGKILL as u64,
                    0,
                    0,
                    0,
                    0,
                ],
            )?,
            "prctl",
        )?;
        if memfd > 0 {
            check(
                self.inject(libc::SYS_close_range, [0, memfd as u64 - 1, 0, 0, 0, 0])?,
                "close_range",
            )?;
        }
        check(
            self.inject(
                libc::SYS_close_range,
                [memfd as u64 + 1, u32::MAX as u64, 0, 0, 0, 0],
            )?,
            "close_range",
        )?;
        check(
            self.inject(libc::SYS_munmap, [0, self.stub_addr, 0, 0, 0, 0])?,
            "munmap",
        )?;
        let hi = self.stub_addr + STUB_SIZE;
        check(
            self.inject(libc::SYS_munmap, [hi, USER_TOP - hi, 0, 0, 0, 0])?,
            "munmap",
        )?;
        Ok(())
    }

    fn get_regs(&self) -> Result<Regs> {
        // SAFETY: zeroed plain-integer struct, filled by the kernel.
        let mut regs: Regs = unsafe { std::mem::zeroed() };
        ptrace(
            libc::PTRACE_GETREGS,
            self.tid,
            0,
            &mut regs as *mut Regs as u64,
        )
        .map_err(|e| PlatformError::host("PTRACE_GETREGS", e))?;
        Ok(regs)
    }

    fn set_regs(&self, regs: &Regs) -> Result<()> {
        ptrace(
            libc::PTRACE_SETREGS,
            self.tid,
            0,
            regs as *const Regs as u64,
        )
        .map_err(|e| PlatformError::host("PTRACE_SETREGS", e))?;
        Ok(())
    }

    /// Runs one host system call in the stub and returns its raw result.
    fn inject_at(&mut self, off: u64, nr: i64, a: [u64; 6]) -> Result<i64> {
        let mut r = self.base;
        r.rip = self.stub_addr + off;
        r.rax = nr as u64;
        r.orig_rax = u64::MAX;
        r.rdi = a[0];
        r.rsi = a[1];
        r.rdx = a[2];
        r.r10 = a[3];
        r.r8 = a[4];
        r.r9 = a[5];
        self.set_regs(&r)?;
        ptrace(libc::PTRACE_CONT, self.tid, 0, 0)
            .map_err(|e| PlatformError::host("PTRACE_CONT", e))?;
        loop {
            let status = wait_tid(self.tid)?;
            if !libc::WIFSTOPPED(status) {
                return Err(PlatformError::StubDied(describe_status(status)));
            }
            let sig = libc::WSTOPSIG(status);
            if sig == libc::SIGTRAP && status >> 16 == 0 {
                return Ok(self.get_regs()?.rax as i64);
            }
            if sig == INTERRUPT_SIGNAL {
                self.pending_interrupt = true;
            } else if status >> 16 == 0
                && matches!(
                    sig,
                    libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGTRAP | libc::SIGFPE
                )
            {
                let r = self.get_regs()?;
                // SAFETY: siginfo_t is plain data filled by the kernel.
                let mut si: libc::siginfo_t = unsafe { std::mem::zeroed() };
                let _ = ptrace(
                    libc::PTRACE_GETSIGINFO,
                    self.tid,
                    0,
                    &mut si as *mut _ as u64,
                );
                // SAFETY: fault signals carry si_addr.
                let addr = unsafe { si.si_addr() } as u64;
                let maps =
                    std::fs::read_to_string(format!("/proc/{}/maps", self.tid)).unwrap_or_default();
                return Err(PlatformError::Other(format!(
                    "injected syscall {nr} faulted with signal {sig} (code {}, addr {addr:#x}) at rip {:#x}\n{maps}",
                    si.si_code, r.rip
                )));
            }
            // Anything else is a stray host signal (e.g. the terminal's
            // SIGINT to our process group) or a stop event: drop it.
            ptrace(libc::PTRACE_CONT, self.tid, 0, 0)
                .map_err(|e| PlatformError::host("PTRACE_CONT", e))?;
        }
    }

    /// Keeps the stub thread on the CPU its tracer runs on: a ptrace stop
    /// and resume between CPUs costs a cross-CPU wake-up each way (several
    /// times slower than on one CPU). The tracer itself stays free to move;
    /// the stub follows it.
    fn follow_cpu(&mut self) {
        // SAFETY: sched_getcpu has no preconditions.
        let cpu = unsafe { libc::sched_getcpu() };
        if cpu < 0 || cpu == self.stub_cpu {
            return;
        }
        // SAFETY: a zeroed cpu_set_t with one bit set, passed by pointer.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu as usize, &mut set);
            libc::sched_setaffinity(self.tid, std::mem::size_of::<libc::cpu_set_t>(), &set);
        }
        self.stub_cpu = cpu;
    }

    fn inject(&mut self, nr: i64, a: [u64; 6]) -> Result<i64> {
        self.inject_at(INJECT_OFF, nr, a)
    }

    fn inject_ok(&mut self, what: &'static str, nr: i64, a: [u64; 6]) -> Result<i64> {
        let r = self.inject(nr, a)?;
        if r < 0 && r > -4096 {
            return Err(PlatformError::host(what, Errno::from_raw(-r as i32)));
        }
        Ok(r)
    }
}

impl Context for StubContext {
    fn switch(&mut self, regs: &mut Regs) -> Result<Event> {
        if self.pending_interrupt {
            self.pending_interrupt = false;
            return Ok(Event::Interrupted);
        }
        self.follow_cpu();
        self.set_regs(regs)?;
        ptrace(PTRACE_SYSEMU, self.tid, 0, 0)
            .map_err(|e| PlatformError::host("PTRACE_SYSEMU", e))?;
        // One stop decides the event: every path below returns.
        {
            let status = wait_tid(self.tid)?;
            if !libc::WIFSTOPPED(status) {
                return Err(PlatformError::StubDied(describe_status(status)));
            }
            let sig = libc::WSTOPSIG(status);
            let event = status >> 16;
            if sig == (libc::SIGTRAP | 0x80) {
                *regs = self.get_regs()?;
                return Ok(Event::Syscall);
            }
            if event != 0 {
                // PTRACE_EVENT_STOP (group stop or interrupt): report as an interrupt.
                *regs = self.get_regs()?;
                return Ok(Event::Interrupted);
            }
            match sig {
                libc::SIGSEGV | libc::SIGBUS | libc::SIGFPE | libc::SIGILL | libc::SIGTRAP => {
                    // SAFETY: siginfo_t is plain data filled by the kernel.
                    let mut si: libc::siginfo_t = unsafe { std::mem::zeroed() };
                    ptrace(
                        libc::PTRACE_GETSIGINFO,
                        self.tid,
                        0,
                        &mut si as *mut _ as u64,
                    )
                    .map_err(|e| PlatformError::host("PTRACE_GETSIGINFO", e))?;
                    if si.si_code <= 0 {
                        // Sent by someone (kill/tkill), not raised by an
                        // instruction: not a guest fault. Drop it.
                        *regs = self.get_regs()?;
                        return Ok(Event::Interrupted);
                    }
                    *regs = self.get_regs()?;
                    // SAFETY: for the fault signals si_addr is the valid union member.
                    let addr = unsafe { si.si_addr() } as u64;
                    // The page-fault error code follows si_addr in the kernel's
                    // _sigfault layout only for SIGSEGV on x86 as `si_trapno`
                    // is absent; the sentry decides from its own VMAs instead.
                    Ok(Event::Fault(FaultInfo {
                        signo: sig,
                        code: si.si_code,
                        addr,
                        trapno: 0,
                    }))
                }
                _ => {
                    *regs = self.get_regs()?;
                    Ok(Event::Interrupted)
                }
            }
        }
    }

    fn fp_state(&mut self) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; self.xstate_size];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr() as *mut libc::c_void,
            iov_len: buf.len(),
        };
        ptrace(
            libc::PTRACE_GETREGSET,
            self.tid,
            NT_X86_XSTATE as u64,
            &mut iov as *mut _ as u64,
        )
        .map_err(|e| PlatformError::host("PTRACE_GETREGSET", e))?;
        buf.truncate(iov.iov_len);
        Ok(buf)
    }

    fn set_fp_state(&mut self, state: &[u8]) -> Result<()> {
        let mut buf = state.to_vec();
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr() as *mut libc::c_void,
            iov_len: buf.len(),
        };
        ptrace(
            libc::PTRACE_SETREGSET,
            self.tid,
            NT_X86_XSTATE as u64,
            &mut iov as *mut _ as u64,
        )
        .map_err(|e| PlatformError::host("PTRACE_SETREGSET", e))?;
        Ok(())
    }

    fn map(&mut self, addr: u64, len: u64, prot: Prot, offset: u64) -> Result<()> {
        let flags = (libc::MAP_SHARED | libc::MAP_FIXED) as u64;
        let r = self.inject_ok(
            "mmap",
            libc::SYS_mmap,
            [addr, len, prot as u64, flags, self.memfd as u64, offset],
        )?;
        if r as u64 != addr {
            return Err(PlatformError::Other(format!(
                "stub mmap at {addr:#x} landed at {r:#x}"
            )));
        }
        Ok(())
    }

    fn unmap(&mut self, addr: u64, len: u64) -> Result<()> {
        self.inject_ok("munmap", libc::SYS_munmap, [addr, len, 0, 0, 0, 0])
            .map(|_| ())
    }

    fn protect(&mut self, addr: u64, len: u64, prot: Prot) -> Result<()> {
        self.inject_ok(
            "mprotect",
            libc::SYS_mprotect,
            [addr, len, prot as u64, 0, 0, 0],
        )
        .map(|_| ())
    }

    fn new_thread(&mut self) -> Result<Box<dyn PendingContext>> {
        let flags = (libc::CLONE_VM
            | libc::CLONE_FS
            | libc::CLONE_FILES
            | libc::CLONE_SIGHAND
            | libc::CLONE_THREAD
            | libc::CLONE_SYSVSEM) as u64;
        let tid = self.inject_at(CLONE_OFF, libc::SYS_clone, [flags, 0, 0, 0, 0, 0])?;
        if tid <= 0 {
            return Err(PlatformError::host("clone", Errno::from_raw(-tid as i32)));
        }
        self.proc.contexts.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(PendingStubThread {
            proc: Some(self.proc.clone()),
            tid: tid as i32,
            stub_addr: self.stub_addr,
            memfd: self.memfd,
            xstate_size: self.xstate_size,
        }))
    }

    fn interrupter(&self) -> Interrupter {
        Interrupter {
            tgid: self.proc.pid,
            tid: self.tid,
        }
    }

    fn release(self: Box<Self>) {
        drop(self);
    }
}

impl Drop for StubContext {
    fn drop(&mut self) {
        if self.proc.contexts.fetch_sub(1, Ordering::SeqCst) == 1 {
            // Last thread of the address space: the whole stub goes.
            // SAFETY: plain kill of our own stub process.
            unsafe { libc::kill(self.proc.pid, libc::SIGKILL) };
            let _ = wait_tid(self.tid);
        } else {
            // Let just this stub thread exit: point it at exit(0) and detach.
            let mut r = self.base;
            r.rip = self.stub_addr + INJECT_OFF;
            r.rax = libc::SYS_exit as u64;
            r.orig_rax = u64::MAX;
            r.rdi = 0;
            if self.set_regs(&r).is_ok() {
                let _ = ptrace(libc::PTRACE_DETACH, self.tid, 0, 0);
            }
        }
    }
}

struct PendingStubThread {
    proc: Option<Arc<StubProcess>>,
    tid: i32,
    stub_addr: u64,
    memfd: i32,
    xstate_size: usize,
}

impl PendingContext for PendingStubThread {
    fn adopt(mut self: Box<Self>) -> Result<Box<dyn Context>> {
        let proc = self
            .proc
            .take()
            .ok_or_else(|| PlatformError::Other("adopted twice".into()))?;
        match StubContext::attach_raw(
            proc.clone(),
            self.tid,
            self.stub_addr,
            self.memfd,
            self.xstate_size,
        ) {
            Ok(ctx) => Ok(Box::new(ctx)),
            Err(e) => {
                proc.contexts.fetch_sub(1, Ordering::SeqCst);
                Err(e)
            }
        }
    }
}

impl Drop for PendingStubThread {
    fn drop(&mut self) {
        if let Some(proc) = self.proc.take() {
            // Never adopted: the thread idles in the pause loop; kill the
            // stub if nobody else uses it.
            if proc.contexts.fetch_sub(1, Ordering::SeqCst) == 1 {
                // SAFETY: plain kill of our own stub process.
                unsafe { libc::kill(proc.pid, libc::SIGKILL) };
            }
        }
    }
}
