//! How guest code runs and traps.
//!
//! The sentry decides everything a guest may do; a platform only runs guest
//! instructions until the guest makes a system call, faults, or is interrupted,
//! and mirrors the sentry's memory mappings into the host address space the guest
//! runs in. Kernel code talks to the traits here and never learns which backend
//! is underneath.
//!
//! Backends: `ptrace` (stub processes under PTRACE_SYSEMU).

pub mod ptrace;

use std::fmt;

/// General purpose registers of an x86-64 guest thread, in the kernel's
/// `user_regs_struct` layout.
pub type Regs = libc::user_regs_struct;

/// Why `Context::switch` returned to the sentry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The guest executed `syscall`; `regs.orig_rax` holds the number and `rip`
    /// points after the instruction. Nothing was executed on the host.
    Syscall,
    /// A synchronous fault raised by a guest instruction (SIGSEGV, SIGBUS,
    /// SIGFPE, SIGILL, SIGTRAP), with the host's siginfo fields.
    Fault(FaultInfo),
    /// The context was stopped from outside (`Interrupter::interrupt`).
    Interrupted,
}

/// A guest fault as the host reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultInfo {
    pub signo: i32,
    pub code: i32,
    pub addr: u64,
    /// Page-fault error bits when the host gave them (bit 1 = write, bit 4 = fetch).
    pub trapno: i32,
}

/// Errors of the platform itself (never guest-visible as such).
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("host call {call} failed: {errno}")]
    Host {
        call: &'static str,
        errno: nix::errno::Errno,
    },
    #[error("stub process died unexpectedly: {0}")]
    StubDied(String),
    #[error("{0}")]
    Other(String),
}

impl PlatformError {
    pub fn host(call: &'static str, errno: nix::errno::Errno) -> Self {
        PlatformError::Host { call, errno }
    }
}

pub type Result<T> = std::result::Result<T, PlatformError>;

/// Page protection bits, as in mmap(2).
pub type Prot = i32;

/// A platform: makes address spaces, each holding execution contexts.
pub trait Platform: Send + Sync + fmt::Debug {
    fn name(&self) -> &'static str;

    /// The highest guest address plus one: guest mappings must stay below it.
    fn max_user_address(&self) -> u64;

    /// Creates a new, empty address space with one context in it, owned by the
    /// calling thread (only that thread may drive it).
    fn new_address_space(&self) -> Result<Box<dyn Context>>;
}

/// One guest thread's execution context inside an address space.
///
/// A context is bound to the host thread that adopted it; all methods must be
/// called from that thread.
pub trait Context: Send {
    /// Runs the guest with `regs` until the next event; `regs` is updated with
    /// the guest's state at that event.
    fn switch(&mut self, regs: &mut Regs) -> Result<Event>;

    /// Reads the guest's extended FP state (XSAVE layout).
    fn fp_state(&mut self) -> Result<Vec<u8>>;
    /// Restores the guest's extended FP state from `fp_state` output.
    fn set_fp_state(&mut self, state: &[u8]) -> Result<()>;

    /// Maps `len` bytes of the memory file at `offset` at guest address `addr`
    /// (shared with the sentry's view of that file), replacing what was there.
    fn map(&mut self, addr: u64, len: u64, prot: Prot, offset: u64) -> Result<()>;
    /// Removes guest mappings in `[addr, addr+len)`.
    fn unmap(&mut self, addr: u64, len: u64) -> Result<()>;
    /// Changes the protection of guest mappings in `[addr, addr+len)`.
    fn protect(&mut self, addr: u64, len: u64, prot: Prot) -> Result<()>;

    /// Creates another context in the same address space; it must be adopted
    /// by the thread that will drive it.
    fn new_thread(&mut self) -> Result<Box<dyn PendingContext>>;

    /// A handle other threads may use to stop this context while it runs.
    fn interrupter(&self) -> Interrupter;

    /// Releases the context; when it was the last of its address space the
    /// address space goes too.
    fn release(self: Box<Self>);
}

/// A context made by `Context::new_thread`, not yet bound to a host thread.
pub trait PendingContext: Send {
    fn adopt(self: Box<Self>) -> Result<Box<dyn Context>>;
}

/// Stops a running context from another thread: the context's `switch`
/// returns `Event::Interrupted` (possibly spuriously, later: callers recheck).
#[derive(Debug, Clone, Copy)]
pub struct Interrupter {
    tgid: i32,
    tid: i32,
}

impl Interrupter {
    /// The host thread running the context (for CPU-time clocks).
    pub fn host_tid(&self) -> i32 {
        self.tid
    }

    pub fn interrupt(&self) {
        // SAFETY: tgkill with plain integer arguments; the worst outcome of a
        // stale tid is ESRCH.
        unsafe {
            libc::syscall(
                libc::SYS_tgkill,
                self.tgid,
                self.tid,
                ptrace::INTERRUPT_SIGNAL,
            );
        }
    }
}
