//! Signal system calls: sigaction, masks, kill family, sigsuspend, sigwait,
//! sigaltstack, rt_sigreturn, pause, and interval timers/alarm.

use super::sys_thread::read_duration;
use super::{Args, EJUSTRETURN};
use crate::errno::{Errno, KResult};
use crate::kernel::signal::*;
use crate::kernel::task::{lock, CurrentTask, Task};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn sig_arg(v: u64) -> KResult<i32> {
    let s = v as i32;
    if valid(s) {
        Ok(s)
    } else {
        Err(Errno::EINVAL)
    }
}

pub fn rt_sigaction(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let sig = sig_arg(a[0])?;
    if a[3] != 8 {
        return Err(Errno::EINVAL);
    }
    let new = if a[1] != 0 {
        let mut b = [0u8; 32];
        t.mm.copy_in(a[1], &mut b)?;
        Some(SigAction::from_bytes(&b))
    } else {
        None
    };
    if new.is_some() && (sig == SIGKILL || sig == SIGSTOP) {
        return Err(Errno::EINVAL);
    }
    let h = lock(&t.tg.sighand).clone();
    let old = {
        let mut acts = lock(&h);
        let old = acts[(sig - 1) as usize];
        if let Some(mut n) = new {
            n.mask &= !UNBLOCKABLE;
            acts[(sig - 1) as usize] = n;
        }
        old
    };
    if let Some(n) = new {
        // Setting SIG_IGN (or SIG_DFL for an ignore-by-default signal)
        // discards pending instances.
        if n.handler == SIG_IGN
            || (n.handler == SIG_DFL && default_action(sig) == DefaultAction::Ignore)
        {
            lock(&t.tg.pending).remove(bit(sig));
            for th in t.kernel.ts().threads_of(t.tgid()) {
                lock(&th.sig).pending.remove(bit(sig));
            }
        }
    }
    if a[2] != 0 {
        t.mm.copy_out(a[2], &old.to_bytes())?;
    }
    Ok(0)
}

pub fn rt_sigprocmask(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    if a[3] != 8 {
        return Err(Errno::EINVAL);
    }
    let new = if a[1] != 0 {
        Some(t.mm.read_u64(a[1])?)
    } else {
        None
    };
    let old = lock(&t.sig).mask;
    if let Some(set) = new {
        let m = match a[0] as i32 {
            libc::SIG_BLOCK => old | set,
            libc::SIG_UNBLOCK => old & !set,
            libc::SIG_SETMASK => set,
            _ => return Err(Errno::EINVAL),
        };
        lock(&t.sig).mask = m & !UNBLOCKABLE;
    }
    if a[2] != 0 {
        t.mm.write_u64(a[2], old)?;
    }
    Ok(0)
}

pub fn rt_sigreturn(t: &mut CurrentTask, _a: &Args) -> KResult<u64> {
    if t.sigreturn().is_err() {
        t.kernel.kill_group(&t.tg.clone(), libc::SIGSEGV);
    }
    Err(EJUSTRETURN)
}

pub fn rt_sigpending(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let mine = lock(&t.sig).pending.mask | lock(&t.tg.pending).mask;
    let blocked = lock(&t.sig).mask;
    t.mm.write_u64(a[0], mine & blocked)?;
    Ok(0)
}

pub fn rt_sigsuspend(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    if a[1] != 8 {
        return Err(Errno::EINVAL);
    }
    let mask = t.mm.read_u64(a[0])? & !UNBLOCKABLE;
    {
        let mut s = lock(&t.sig);
        s.saved_mask = Some(s.mask);
        s.mask = mask;
    }
    let _ = t.task.sleep_until(None);
    Err(Errno::ERESTARTNOHAND)
}

pub fn pause(t: &mut CurrentTask, _a: &Args) -> KResult<u64> {
    let _ = t.task.sleep_until(None);
    Err(Errno::ERESTARTNOHAND)
}

pub fn rt_sigtimedwait(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    if a[3] != 8 {
        return Err(Errno::EINVAL);
    }
    let set = t.mm.read_u64(a[0])? & !UNBLOCKABLE;
    let deadline = if a[2] != 0 {
        Some(Instant::now() + read_duration(t, a[2])?)
    } else {
        None
    };
    let task = t.task.clone();
    let take = || -> Option<SigInfo> {
        let mut s = lock(&task.sig);
        if let Some(i) = s.pending.dequeue(!set) {
            return Some(i);
        }
        drop(s);
        lock(&task.tg.pending).dequeue(!set)
    };
    // The waited-for signals stay blocked, but a process-directed one must
    // be able to pick this thread: senders look at `sigwait`.
    lock(&task.sig).sigwait = set;
    let r = loop {
        if let Some(i) = take() {
            break Ok(i);
        }
        match t.task.block_until(&[], &[], deadline, || {
            let pending = lock(&task.sig).pending.mask | lock(&task.tg.pending).mask;
            (pending & set != 0).then_some(Ok(()))
        }) {
            Ok(()) => continue,
            Err(e) if e == Errno::ETIMEDOUT => break Err(Errno::EAGAIN),
            Err(_) => break Err(Errno::EINTR),
        }
    };
    lock(&task.sig).sigwait = 0;
    let info = r?;
    if a[1] != 0 {
        t.mm.copy_out(a[1], &info.0)?;
    }
    Ok(info.signo() as u64)
}

pub fn sigaltstack(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let cur = lock(&t.sig).altstack;
    let on = cur.flags & SS_DISABLE == 0 && t.regs.rsp > cur.sp && t.regs.rsp <= cur.sp + cur.size;
    if a[1] != 0 {
        let mut b = [0u8; 24];
        b[..8].copy_from_slice(&cur.sp.to_le_bytes());
        let fl = if cur.flags & SS_DISABLE != 0 {
            SS_DISABLE
        } else if on {
            SS_ONSTACK
        } else {
            cur.flags & SS_AUTODISARM
        };
        b[8..12].copy_from_slice(&fl.to_le_bytes());
        b[16..24].copy_from_slice(&cur.size.to_le_bytes());
        t.mm.copy_out(a[1], &b)?;
    }
    if a[0] != 0 {
        if on {
            return Err(Errno::EPERM);
        }
        let sp = t.mm.read_u64(a[0])?;
        let flags = t.mm.read_u32(a[0] + 8)? as i32;
        let size = t.mm.read_u64(a[0] + 16)?;
        if flags & !(SS_DISABLE | SS_AUTODISARM) != 0 {
            return Err(Errno::EINVAL);
        }
        if flags & SS_DISABLE == 0 && size < 2048 {
            return Err(Errno::ENOMEM);
        }
        lock(&t.sig).altstack = if flags & SS_DISABLE != 0 {
            AltStack {
                flags: SS_DISABLE,
                ..Default::default()
            }
        } else {
            AltStack { sp, flags, size }
        };
    }
    Ok(0)
}

fn sender_info(t: &CurrentTask, sig: i32, code: i32) -> SigInfo {
    SigInfo::from_sender(sig, code, t.tgid(), t.creds().ruid)
}

/// check_kill_permission: the sender's real or effective uid is the
/// target's real or saved uid, or the sender has CAP_KILL; SIGCONT may go
/// to any process of the sender's session.
fn may_signal(t: &CurrentTask, ts: &crate::kernel::TaskSet, tgid: i32, sig: i32) -> bool {
    let me = t.creds();
    if me.capable(crate::kernel::caps::CAP_KILL) {
        return true;
    }
    let Some(e) = ts.procs.get(&tgid) else {
        return false;
    };
    if sig == libc::SIGCONT && ts.procs.get(&t.tgid()).is_some_and(|m| m.sid == e.sid) {
        return true;
    }
    let Some(target) = e.threads.iter().find_map(|tid| ts.tasks.get(tid)) else {
        // Every thread gone (a zombie): nothing to refuse.
        return true;
    };
    let c = target.creds();
    [me.ruid, me.euid]
        .iter()
        .any(|u| *u == c.ruid || *u == c.suid)
}

/// The sandbox's init is protected from its own namespace (SIGNAL_UNKILLABLE):
/// a signal sent by a guest process to PID 1 is dropped when PID 1 has no
/// handler for it, and SIGKILL and SIGSTOP always are. Signals from outside
/// (`runsc kill`) and faults still reach it.
/// A signal PID 1 blocks is kept (its handler may change before it is
/// unblocked), as Linux's sig_ignored does.
fn init_ignores(t: &CurrentTask, tg: &crate::kernel::task::ThreadGroup, sig: i32) -> bool {
    if tg.tgid != 1 {
        return false;
    }
    if sig == libc::SIGKILL || sig == libc::SIGSTOP {
        return true;
    }
    if tg.action(sig).handler != crate::kernel::signal::SIG_DFL {
        return false;
    }
    let leader = t.kernel.ts().tasks.get(&1).cloned();
    let blocked = leader.is_some_and(|l| {
        let s = lock(&l.sig);
        (s.mask | s.saved_mask.unwrap_or(0)) & crate::kernel::signal::bit(sig) != 0
    });
    !blocked
}

pub fn kill(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let pid = a[0] as i32;
    let sig = a[1] as i32;
    if sig != 0 && !valid(sig) {
        return Err(Errno::EINVAL);
    }
    let k = t.kernel.clone();
    let (targets, refused) = {
        let ts = k.ts();
        let my_pgid = ts.procs.get(&t.tgid()).map(|e| e.pgid).unwrap_or(0);
        let live = |e: &&crate::kernel::ProcEntry| e.zombie.is_none();
        let found: Vec<_> = match pid {
            p if p > 0 => ts
                .procs
                .get(&p)
                .filter(live)
                .map(|e| vec![e.tg.clone()])
                .ok_or(Errno::ESRCH)?,
            0 => ts
                .procs
                .values()
                .filter(live)
                .filter(|e| e.pgid == my_pgid)
                .map(|e| e.tg.clone())
                .collect(),
            -1 => ts
                .procs
                .values()
                .filter(live)
                .filter(|e| e.tg.tgid != 1 && e.tg.tgid != t.tgid())
                .map(|e| e.tg.clone())
                .collect(),
            p => ts
                .procs
                .values()
                .filter(live)
                .filter(|e| e.pgid == -p)
                .map(|e| e.tg.clone())
                .collect(),
        };
        let all = found.len();
        let allowed: Vec<_> = found
            .into_iter()
            .filter(|tg| may_signal(t, &ts, tg.tgid, sig))
            .collect();
        let refused = allowed.len() < all;
        (allowed, refused)
    };
    if targets.is_empty() {
        return Err(if refused { Errno::EPERM } else { Errno::ESRCH });
    }
    if sig != 0 {
        for tg in targets {
            if !init_ignores(t, &tg, sig) {
                k.send_to_group(&tg, sender_info(t, sig, SI_USER));
            }
        }
    }
    Ok(0)
}

fn find_task(t: &CurrentTask, tgid: Option<i32>, tid: i32) -> KResult<Arc<Task>> {
    let task = t.kernel.ts().tasks.get(&tid).cloned().ok_or(Errno::ESRCH)?;
    if tgid.is_some_and(|g| g != task.tgid()) {
        return Err(Errno::ESRCH);
    }
    Ok(task)
}

fn send_thread(t: &CurrentTask, tgid: Option<i32>, tid: i32, sig: i32) -> KResult<u64> {
    if tid <= 0 || tgid.is_some_and(|g| g <= 0) || (sig != 0 && !valid(sig)) {
        return Err(Errno::EINVAL);
    }
    let target = find_task(t, tgid, tid)?;
    if !may_signal(t, &t.kernel.ts(), target.tgid(), sig) {
        return Err(Errno::EPERM);
    }
    if sig != 0 && !init_ignores(t, &target.tg, sig) {
        t.kernel
            .send_to_task(&target, sender_info(t, sig, SI_TKILL));
    }
    Ok(0)
}

pub fn tkill(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    send_thread(t, None, a[0] as i32, a[1] as i32)
}

pub fn tgkill(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    send_thread(t, Some(a[0] as i32), a[1] as i32, a[2] as i32)
}

pub fn rt_sigqueueinfo(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let sig = sig_arg(a[1])?;
    let mut b = [0u8; 128];
    t.mm.copy_in(a[2], &mut b)?;
    let mut info = SigInfo::from_bytes(&b);
    info.0[0..4].copy_from_slice(&sig.to_le_bytes());
    if info.code() >= 0 || info.code() == SI_TKILL {
        return Err(Errno::EPERM);
    }
    let tg = t
        .kernel
        .ts()
        .procs
        .get(&(a[0] as i32))
        .map(|e| e.tg.clone())
        .ok_or(Errno::ESRCH)?;
    if !init_ignores(t, &tg, sig) {
        t.kernel.send_to_group(&tg, info);
    }
    Ok(0)
}

fn itimer_remaining(t: &CurrentTask) -> (Duration, Duration) {
    match *lock(&t.tg.itimer_real) {
        Some((_, deadline, interval)) => (
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_micros(1)),
            interval,
        ),
        None => (Duration::ZERO, Duration::ZERO),
    }
}

/// Arms ITIMER_REAL: SIGALRM to the process at `value`, then every
/// `interval`.
fn arm_real(t: &CurrentTask, value: Duration, interval: Duration) {
    let tg = t.tg.clone();
    let kernel = t.kernel.clone();
    let old = lock(&tg.itimer_real).take();
    if let Some((id, _, _)) = old {
        kernel.timers.cancel(id);
    }
    if value.is_zero() {
        return;
    }
    type Slot = Option<(u64, Instant, Duration)>;
    /// Schedules the expiry at `at` and records it in `slot` (the caller
    /// holds the thread group's itimer lock, so a concurrent setitimer
    /// either sees this expiry and cancels it, or replaced it first).
    fn schedule(
        kernel: Arc<crate::kernel::Kernel>,
        tg: Arc<crate::kernel::task::ThreadGroup>,
        slot: &mut Slot,
        at: Instant,
        interval: Duration,
    ) {
        let k2 = kernel.clone();
        let tg2 = tg.clone();
        let id = kernel.timers.schedule(
            at,
            Box::new(move || {
                let mut slot = lock(&tg2.itimer_real);
                // Disarmed or re-armed meanwhile: this expiry is void.
                if !matches!(*slot, Some((_, a, _)) if a == at) {
                    return;
                }
                *slot = None;
                k2.send_to_group(&tg2, SigInfo::new(libc::SIGALRM, SI_KERNEL));
                if !interval.is_zero() && tg2.exiting().is_none() {
                    schedule(k2.clone(), tg2.clone(), &mut slot, at + interval, interval);
                }
            }),
        );
        *slot = Some((id, at, interval));
    }
    let mut slot = lock(&tg.itimer_real);
    schedule(
        kernel.clone(),
        tg.clone(),
        &mut slot,
        Instant::now() + value,
        interval,
    );
}

fn timeval_bytes(d: Duration) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&(d.as_secs() as i64).to_le_bytes());
    b[8..].copy_from_slice(&(d.subsec_micros() as i64).to_le_bytes());
    b
}

pub fn getitimer(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let (value, interval) = match a[0] as i32 {
        libc::ITIMER_REAL => itimer_remaining(t),
        libc::ITIMER_VIRTUAL | libc::ITIMER_PROF => return Err(Errno::EINVAL),
        _ => return Err(Errno::EINVAL),
    };
    let mut b = [0u8; 32];
    b[..16].copy_from_slice(&timeval_bytes(interval));
    b[16..].copy_from_slice(&timeval_bytes(value));
    t.mm.copy_out(a[1], &b)?;
    Ok(0)
}

fn read_timeval(t: &CurrentTask, addr: u64) -> KResult<Duration> {
    let sec = t.mm.read_u64(addr)? as i64;
    let usec = t.mm.read_u64(addr + 8)? as i64;
    if sec < 0 || !(0..1_000_000).contains(&usec) {
        return Err(Errno::EINVAL);
    }
    Ok(Duration::new(sec as u64, (usec * 1000) as u32))
}

pub fn setitimer(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    if a[0] as i32 != libc::ITIMER_REAL {
        // Virtual and profiling timers need guest CPU-time accounting.
        return Err(Errno::EINVAL);
    }
    let (old_v, old_i) = itimer_remaining(t);
    if a[1] != 0 {
        let interval = read_timeval(t, a[1])?;
        let value = read_timeval(t, a[1] + 16)?;
        arm_real(t, value, interval);
    }
    if a[2] != 0 {
        let mut b = [0u8; 32];
        b[..16].copy_from_slice(&timeval_bytes(old_i));
        b[16..].copy_from_slice(&timeval_bytes(old_v));
        t.mm.copy_out(a[2], &b)?;
    }
    Ok(0)
}

pub fn alarm(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let (old, _) = itimer_remaining(t);
    arm_real(t, Duration::from_secs(a[0] as u32 as u64), Duration::ZERO);
    // Remaining seconds, rounded to nearest (at least 1 if pending).
    let mut secs = old.as_secs();
    if old.subsec_micros() >= 500_000 {
        secs += 1;
    }
    if secs == 0 && !old.is_zero() {
        secs = 1;
    }
    Ok(secs)
}
