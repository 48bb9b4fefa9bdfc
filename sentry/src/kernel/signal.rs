//! Signal data: sets, actions, queues, siginfo, and the x86-64 signal frame
//! the guest's handlers run on.

pub const NSIG: usize = 64;
pub const SIGKILL: i32 = libc::SIGKILL;
pub const SIGSTOP: i32 = libc::SIGSTOP;
pub const SIGCHLD: i32 = libc::SIGCHLD;
pub const SIGCONT: i32 = libc::SIGCONT;

pub const SIG_DFL: u64 = 0;
pub const SIG_IGN: u64 = 1;

pub const SA_NOCLDSTOP: u64 = 1;
pub const SA_NOCLDWAIT: u64 = 2;
pub const SA_SIGINFO: u64 = 4;
pub const SA_ONSTACK: u64 = 0x0800_0000;
pub const SA_RESTART: u64 = 0x1000_0000;
pub const SA_NODEFER: u64 = 0x4000_0000;
pub const SA_RESETHAND: u64 = 0x8000_0000;
pub const SA_RESTORER: u64 = 0x0400_0000;

pub const SI_USER: i32 = 0;
pub const SI_KERNEL: i32 = 0x80;
pub const SI_TKILL: i32 = -6;
pub const CLD_EXITED: i32 = 1;
pub const CLD_KILLED: i32 = 2;
pub const CLD_DUMPED: i32 = 3;
pub const CLD_STOPPED: i32 = 5;
pub const CLD_CONTINUED: i32 = 6;

pub fn bit(sig: i32) -> u64 {
    1u64 << (sig - 1)
}

/// Signals that can be neither caught, blocked nor ignored.
pub const UNBLOCKABLE: u64 = (1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1));

pub fn valid(sig: i32) -> bool {
    (1..=NSIG as i32).contains(&sig)
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SigAction {
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: u64,
}

impl SigAction {
    /// The kernel's `struct sigaction` layout on x86-64 (32 bytes).
    pub fn from_bytes(b: &[u8; 32]) -> SigAction {
        let u = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
        SigAction {
            handler: u(0),
            flags: u(8),
            restorer: u(16),
            mask: u(24),
        }
    }
    pub fn to_bytes(&self) -> [u8; 32] {
        let mut b = [0u8; 32];
        b[0..8].copy_from_slice(&self.handler.to_le_bytes());
        b[8..16].copy_from_slice(&self.flags.to_le_bytes());
        b[16..24].copy_from_slice(&self.restorer.to_le_bytes());
        b[24..32].copy_from_slice(&self.mask.to_le_bytes());
        b
    }
}

/// What a signal does when its action is SIG_DFL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultAction {
    Term,
    Core,
    Ignore,
    Stop,
    Continue,
}

pub fn default_action(sig: i32) -> DefaultAction {
    use libc::*;
    match sig {
        SIGCHLD | SIGURG | SIGWINCH => DefaultAction::Ignore,
        SIGCONT => DefaultAction::Continue,
        SIGSTOP | SIGTSTP | SIGTTIN | SIGTTOU => DefaultAction::Stop,
        SIGQUIT | SIGILL | SIGTRAP | SIGABRT | SIGBUS | SIGFPE | SIGSEGV | SIGSYS | SIGXCPU
        | SIGXFSZ => DefaultAction::Core,
        _ => DefaultAction::Term,
    }
}

/// A `siginfo_t` (128 bytes).
#[derive(Clone, Copy)]
pub struct SigInfo(pub [u8; 128]);

impl SigInfo {
    pub fn new(signo: i32, code: i32) -> SigInfo {
        let mut b = [0u8; 128];
        b[0..4].copy_from_slice(&signo.to_le_bytes());
        b[8..12].copy_from_slice(&code.to_le_bytes());
        SigInfo(b)
    }
    pub fn signo(&self) -> i32 {
        i32::from_le_bytes([self.0[0], self.0[1], self.0[2], self.0[3]])
    }
    pub fn code(&self) -> i32 {
        i32::from_le_bytes([self.0[8], self.0[9], self.0[10], self.0[11]])
    }
    fn put(&mut self, off: usize, v: &[u8]) {
        self.0[off..off + v.len()].copy_from_slice(v);
    }
    /// kill/tgkill: sender pid and uid.
    pub fn from_sender(signo: i32, code: i32, pid: i32, uid: u32) -> SigInfo {
        let mut s = SigInfo::new(signo, code);
        s.put(16, &pid.to_le_bytes());
        s.put(20, &uid.to_le_bytes());
        s
    }
    pub fn child(code: i32, pid: i32, uid: u32, status: i32) -> SigInfo {
        let mut s = SigInfo::from_sender(SIGCHLD, code, pid, uid);
        s.put(24, &status.to_le_bytes());
        s
    }
    pub fn fault(signo: i32, code: i32, addr: u64) -> SigInfo {
        let mut s = SigInfo::new(signo, code);
        s.put(16, &addr.to_le_bytes());
        s
    }
    /// Copies the guest-supplied siginfo of rt_sigqueueinfo.
    pub fn from_bytes(b: &[u8]) -> SigInfo {
        let mut s = [0u8; 128];
        let n = b.len().min(128);
        s[..n].copy_from_slice(&b[..n]);
        SigInfo(s)
    }
}

/// Pending signals: one slot per standard signal, a queue for real-time ones.
#[derive(Default)]
pub struct SigQueue {
    pub mask: u64,
    items: Vec<SigInfo>,
}

impl SigQueue {
    pub fn enqueue(&mut self, info: SigInfo) {
        let sig = info.signo();
        if sig < 32 && self.mask & bit(sig) != 0 {
            return;
        }
        self.mask |= bit(sig);
        self.items.push(info);
    }

    /// Takes the lowest-numbered pending signal not in `blocked`.
    pub fn dequeue(&mut self, blocked: u64) -> Option<SigInfo> {
        let ready = self.mask & !blocked;
        if ready == 0 {
            return None;
        }
        // SIGKILL first, then lowest number.
        let sig = if ready & bit(SIGKILL) != 0 {
            SIGKILL
        } else {
            ready.trailing_zeros() as i32 + 1
        };
        let i = self.items.iter().position(|s| s.signo() == sig)?;
        let info = self.items.remove(i);
        if !self.items.iter().any(|s| s.signo() == sig) {
            self.mask &= !bit(sig);
        }
        Some(info)
    }

    pub fn remove(&mut self, set: u64) {
        self.items.retain(|s| set & bit(s.signo()) == 0);
        self.mask &= !set;
    }
}

/// sigaltstack state.
#[derive(Clone, Copy, Debug, Default)]
pub struct AltStack {
    pub sp: u64,
    pub flags: i32,
    pub size: u64,
}

pub const SS_ONSTACK: i32 = 1;
pub const SS_DISABLE: i32 = 2;
pub const SS_AUTODISARM: i32 = 1 << 31;

// Frame layout (x86-64 rt_sigframe): pretcode at sp, then ucontext, then
// siginfo; the XSAVE area sits above, 64-byte aligned.
pub const UC_OFF: u64 = 8;
pub const UC_SIZE: u64 = 304;
pub const INFO_OFF: u64 = UC_OFF + UC_SIZE;
pub const FRAME_SIZE: u64 = INFO_OFF + 128;
/// Offset of uc_mcontext inside the ucontext.
pub const MCTX_OFF: u64 = 40;
/// Offset of uc_sigmask inside the ucontext.
pub const SIGMASK_OFF: u64 = MCTX_OFF + 256;
pub const UC_FP_XSTATE: u64 = 1;
pub const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;
pub const FP_XSTATE_MAGIC2: u32 = 0x4650_5845;

/// Builds `struct sigcontext` (256 bytes) from registers.
pub fn encode_mcontext(
    r: &platform::Regs,
    fpstate: u64,
    oldmask: u64,
    trapno: u64,
    err: u64,
    cr2: u64,
) -> [u8; 256] {
    let vals: [u64; 18] = [
        r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, r.rdi, r.rsi, r.rbp, r.rbx, r.rdx,
        r.rax, r.rcx, r.rsp, r.rip, r.eflags,
    ];
    let mut b = [0u8; 256];
    for (i, v) in vals.iter().enumerate() {
        b[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
    }
    // cs, gs, fs, ss as four u16.
    let segs = (r.cs & 0xffff)
        | ((r.gs & 0xffff) << 16)
        | ((r.fs & 0xffff) << 32)
        | ((r.ss & 0xffff) << 48);
    b[144..152].copy_from_slice(&segs.to_le_bytes());
    b[152..160].copy_from_slice(&err.to_le_bytes());
    b[160..168].copy_from_slice(&trapno.to_le_bytes());
    b[168..176].copy_from_slice(&oldmask.to_le_bytes());
    b[176..184].copy_from_slice(&cr2.to_le_bytes());
    b[184..192].copy_from_slice(&fpstate.to_le_bytes());
    b
}

/// Restores registers from a guest `struct sigcontext`; returns the fpstate
/// pointer. Segment registers and privileged flags stay ours.
pub fn decode_mcontext(b: &[u8; 256], r: &mut platform::Regs) -> u64 {
    let u = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
    r.r8 = u(0);
    r.r9 = u(1);
    r.r10 = u(2);
    r.r11 = u(3);
    r.r12 = u(4);
    r.r13 = u(5);
    r.r14 = u(6);
    r.r15 = u(7);
    r.rdi = u(8);
    r.rsi = u(9);
    r.rbp = u(10);
    r.rbx = u(11);
    r.rdx = u(12);
    r.rax = u(13);
    r.rcx = u(14);
    r.rsp = u(15);
    r.rip = u(16);
    // Only the flags a guest may set (Linux FIX_EFLAGS: CF PF AF ZF SF TF DF OF RF AC).
    const USER_FLAGS: u64 = 0x0005_0dd5;
    r.eflags = (r.eflags & !USER_FLAGS) | (u(17) & USER_FLAGS);
    r.orig_rax = u64::MAX;
    u(23)
}
