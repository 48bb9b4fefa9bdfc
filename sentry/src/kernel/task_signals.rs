//! Sending and delivering signals: queueing with Linux's ignore rules, group
//! stop and continue, group exit on fatal signals, and handler frames on the
//! guest stack (with FP state) undone by rt_sigreturn.

use super::signal::*;
use super::task::{lock, CurrentTask, Task, ThreadGroup};
use super::Kernel;
use crate::errno::{Errno, KResult};
use std::sync::atomic::Ordering;
use std::sync::Arc;

fn is_stop_signal(sig: i32) -> bool {
    matches!(
        sig,
        libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU
    )
}

/// The wait status of a death by `sig`.
pub fn killed_status(sig: i32) -> i32 {
    sig & 0x7f
}

impl Kernel {
    /// Sends a process-directed signal.
    pub fn send_to_group(&self, tg: &Arc<ThreadGroup>, info: SigInfo) {
        self.send(tg, None, info)
    }

    /// Sends a thread-directed signal.
    pub fn send_to_task(&self, task: &Arc<Task>, info: SigInfo) {
        self.send(&task.tg, Some(task), info)
    }

    fn send(&self, tg: &Arc<ThreadGroup>, task: Option<&Arc<Task>>, info: SigInfo) {
        let sig = info.signo();
        if !valid(sig) || tg.exiting().is_some() {
            return;
        }
        if sig == SIGKILL {
            self.kill_group(tg, SIGKILL);
            return;
        }
        let threads = self.ts().threads_of(tg.tgid);
        if sig == SIGCONT {
            self.continue_group(tg, &threads);
        }
        if is_stop_signal(sig) {
            lock(&tg.pending).remove(bit(SIGCONT));
            for t in &threads {
                lock(&t.sig).pending.remove(bit(SIGCONT));
            }
        }
        let act = tg.action(sig);
        let ignored = act.handler == SIG_IGN
            || (act.handler == SIG_DFL
                && matches!(
                    default_action(sig),
                    DefaultAction::Ignore | DefaultAction::Continue
                ));
        // A thread in rt_sigtimedwait for `sig` takes it although it is
        // blocked (Linux unblocks the waited set for the wait).
        let blocked_by = |t: &Arc<Task>| {
            let s = lock(&t.sig);
            s.mask & !s.sigwait & bit(sig) != 0
        };
        match task {
            Some(t) => {
                if ignored && !blocked_by(t) {
                    return;
                }
                lock(&t.sig).pending.enqueue(info);
                t.kick();
            }
            None => {
                if ignored && !threads.iter().all(blocked_by) {
                    return;
                }
                lock(&tg.pending).enqueue(info);
                // Wake one thread that can take it (the first unblocked).
                if let Some(t) = threads.iter().find(|t| !blocked_by(t)) {
                    t.kick();
                }
            }
        }
        crate::fs::signalfd::signal_queue().notify_all();
    }

    /// Kills every thread of `tg` (SIGKILL or a fatal default action).
    pub fn kill_group(&self, tg: &Arc<ThreadGroup>, sig: i32) {
        self.group_exit(tg, killed_status(sig));
    }

    /// Starts a group exit with wait status `status` (first one wins).
    pub fn group_exit(&self, tg: &Arc<ThreadGroup>, status: i32) {
        {
            let mut g = lock(&tg.group_exit);
            if g.is_none() {
                *g = Some(status);
            }
        }
        tg.stopped.store(false, Ordering::SeqCst);
        tg.stop_wq.notify_all();
        for t in self.ts().threads_of(tg.tgid) {
            t.killed.store(true, Ordering::SeqCst);
            t.kick();
        }
    }

    fn continue_group(&self, tg: &Arc<ThreadGroup>, threads: &[Arc<Task>]) {
        let stop_set =
            bit(libc::SIGSTOP) | bit(libc::SIGTSTP) | bit(libc::SIGTTIN) | bit(libc::SIGTTOU);
        lock(&tg.pending).remove(stop_set);
        for t in threads {
            lock(&t.sig).pending.remove(stop_set);
        }
        if tg.stopped.swap(false, Ordering::SeqCst) {
            let parent = {
                let mut ts = self.ts();
                let e = ts.procs.get_mut(&tg.tgid);
                e.map(|e| {
                    e.cont_report = true;
                    e.stop_report = None;
                    e.parent
                })
            };
            if let Some(p) = parent {
                self.notify_parent(p, tg.tgid, CLD_CONTINUED, libc::SIGCONT, true);
            }
            tg.stop_wq.notify_all();
        }
    }

    /// Tells parent `ppid` that child `pid` changed state: SIGCHLD (unless
    /// SA_NOCLDSTOP for stop/continue) and a wake-up of its waiters.
    pub fn notify_parent(&self, ppid: i32, pid: i32, code: i32, status: i32, stop_or_cont: bool) {
        let ptg = match self.ts().procs.get(&ppid) {
            Some(e) => e.tg.clone(),
            None => return,
        };
        let act = ptg.action(SIGCHLD);
        if !(stop_or_cont && act.flags & SA_NOCLDSTOP != 0) {
            self.send_to_group(&ptg, SigInfo::child(code, pid, 0, status));
        }
        ptg.child_wq.notify_all();
    }
}

impl CurrentTask {
    /// Runs before every return to the guest: acts on pending signals, group
    /// stops and exits. Returns the wait status when the task must exit.
    pub fn check_signals(&mut self) -> Option<i32> {
        let mut handled = false;
        loop {
            if let Some(s) = self.tg.exiting() {
                return Some(s);
            }
            if self.killed.load(Ordering::SeqCst) {
                return Some(
                    self.tg
                        .exiting()
                        .unwrap_or(self.thread_exit_status.load(Ordering::SeqCst)),
                );
            }
            if self.tg.stopped.load(Ordering::SeqCst) {
                let tg = self.tg.clone();
                let _ = self.task.block_until(&[&tg.stop_wq], &[], None, || {
                    (!tg.stopped.load(Ordering::SeqCst) || tg.exiting().is_some()).then_some(Ok(()))
                });
                continue;
            }
            let info = {
                let mut s = lock(&self.sig);
                let mask = s.mask;
                match s.pending.dequeue(mask) {
                    Some(i) => Some(i),
                    None => {
                        drop(s);
                        lock(&self.tg.pending).dequeue(mask)
                    }
                }
            };
            let Some(info) = info else { break };
            let sig = info.signo();
            let act = self.tg.action(sig);
            if sig == SIGKILL {
                self.kernel.kill_group(&self.tg.clone(), SIGKILL);
                continue;
            }
            if act.handler == SIG_IGN {
                continue;
            }
            if act.handler == SIG_DFL {
                match default_action(sig) {
                    DefaultAction::Ignore | DefaultAction::Continue => continue,
                    DefaultAction::Stop => {
                        self.group_stop(sig);
                        continue;
                    }
                    DefaultAction::Term | DefaultAction::Core => {
                        self.kernel.kill_group(&self.tg.clone(), sig);
                        continue;
                    }
                }
            }
            if self.setup_frame(&info, &act).is_err() {
                // No room for a frame: Linux kills with SIGSEGV.
                self.kernel.kill_group(&self.tg.clone(), libc::SIGSEGV);
                continue;
            }
            handled = true;
            break;
        }
        if !handled {
            if let Some(e) = self.restart.take() {
                self.do_restart(e, true);
            }
            let saved = lock(&self.sig).saved_mask.take();
            if let Some(m) = saved {
                lock(&self.sig).mask = m;
            }
        }
        None
    }

    fn do_restart(&mut self, e: Errno, restart: bool) {
        if restart {
            self.regs.rip -= 2;
            self.regs.rax = self.regs.orig_rax;
        } else {
            let _ = e;
            self.regs.rax = (-(Errno::EINTR.0 as i64)) as u64;
        }
    }

    fn group_stop(&mut self, sig: i32) {
        let tg = self.tg.clone();
        if tg.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        let parent = {
            let mut ts = self.kernel.ts();
            ts.procs.get_mut(&tg.tgid).map(|e| {
                e.stop_report = Some(sig);
                e.cont_report = false;
                e.parent
            })
        };
        if let Some(p) = parent {
            self.kernel
                .notify_parent(p, tg.tgid, CLD_STOPPED, sig, true);
        }
        for t in self.kernel.ts().threads_of(tg.tgid) {
            t.kick();
        }
    }

    /// Builds an rt_sigframe on the guest stack and points the guest at the
    /// handler.
    fn setup_frame(&mut self, info: &SigInfo, act: &SigAction) -> KResult<()> {
        let sig = info.signo();
        if let Some(e) = self.restart.take() {
            let restart = e == Errno::ERESTARTNOINTR
                || (e == Errno::ERESTARTSYS && act.flags & SA_RESTART != 0);
            self.do_restart(e, restart);
        }
        let fp = self.ctx.fp_state().map_err(|_| Errno::EFAULT)?;
        let (old_mask, alt) = {
            let mut s = lock(&self.sig);
            (s.saved_mask.take().unwrap_or(s.mask), s.altstack)
        };
        let on_alt = alt.flags & SS_DISABLE == 0
            && self.regs.rsp > alt.sp
            && self.regs.rsp <= alt.sp + alt.size;
        let mut sp = if act.flags & SA_ONSTACK != 0
            && alt.flags & SS_DISABLE == 0
            && !on_alt
            && alt.size > 0
        {
            alt.sp + alt.size
        } else {
            self.regs.rsp.wrapping_sub(128)
        };
        sp = sp.wrapping_sub(fp.len() as u64 + 4) & !63;
        let fp_addr = sp;
        let frame = ((fp_addr - FRAME_SIZE) & !15) - 8;
        let mm = self.mm.clone();

        let mut fpbuf = fp.clone();
        if fpbuf.len() >= 512 {
            let xfeatures = if fpbuf.len() >= 520 {
                u64::from_le_bytes(fpbuf[512..520].try_into().unwrap_or([0; 8]))
            } else {
                3
            };
            fpbuf[464..468].copy_from_slice(&FP_XSTATE_MAGIC1.to_le_bytes());
            fpbuf[468..472].copy_from_slice(&(fp.len() as u32 + 4).to_le_bytes());
            fpbuf[472..480].copy_from_slice(&xfeatures.to_le_bytes());
            fpbuf[480..484].copy_from_slice(&(fp.len() as u32).to_le_bytes());
        }
        mm.copy_out(fp_addr, &fpbuf)?;
        mm.copy_out(fp_addr + fp.len() as u64, &FP_XSTATE_MAGIC2.to_le_bytes())?;

        let mut f = vec![0u8; FRAME_SIZE as usize];
        f[0..8].copy_from_slice(&act.restorer.to_le_bytes());
        let uc = UC_OFF as usize;
        f[uc..uc + 8].copy_from_slice(&UC_FP_XSTATE.to_le_bytes());
        f[uc + 16..uc + 24].copy_from_slice(&alt.sp.to_le_bytes());
        let ss_flags = if alt.flags & SS_DISABLE != 0 {
            SS_DISABLE
        } else if on_alt {
            SS_ONSTACK
        } else {
            0
        };
        f[uc + 24..uc + 28].copy_from_slice(&ss_flags.to_le_bytes());
        f[uc + 32..uc + 40].copy_from_slice(&alt.size.to_le_bytes());
        let (trapno, cr2) = if matches!(sig, libc::SIGSEGV | libc::SIGBUS) {
            (
                14u64,
                u64::from_le_bytes(info.0[16..24].try_into().unwrap_or([0; 8])),
            )
        } else {
            (0, 0)
        };
        let mctx = encode_mcontext(&self.regs, fp_addr, old_mask, trapno, 0, cr2);
        let m = uc + MCTX_OFF as usize;
        f[m..m + 256].copy_from_slice(&mctx);
        let sm = uc + SIGMASK_OFF as usize;
        f[sm..sm + 8].copy_from_slice(&old_mask.to_le_bytes());
        f[INFO_OFF as usize..INFO_OFF as usize + 128].copy_from_slice(&info.0);
        mm.copy_out(frame, &f)?;

        self.regs.rip = act.handler;
        self.regs.rsp = frame;
        self.regs.rdi = sig as u64;
        self.regs.rsi = frame + INFO_OFF;
        self.regs.rdx = frame + UC_OFF;
        self.regs.rax = 0;
        self.regs.eflags &= !(0x100 | 0x400); // TF, DF
        let mut s = lock(&self.sig);
        s.mask = old_mask | act.mask;
        if act.flags & SA_NODEFER == 0 {
            s.mask |= bit(sig);
        }
        s.mask &= !UNBLOCKABLE;
        drop(s);
        if act.flags & SA_RESETHAND != 0 {
            let h = lock(&self.tg.sighand).clone();
            lock(&h)[(sig - 1) as usize] = SigAction::default();
        }
        Ok(())
    }

    /// rt_sigreturn: restores what setup_frame saved.
    pub fn sigreturn(&mut self) -> KResult<()> {
        let frame = self.regs.rsp.wrapping_sub(8);
        let mut f = vec![0u8; FRAME_SIZE as usize];
        self.mm.copy_in(frame, &mut f)?;
        let uc = UC_OFF as usize;
        let m = uc + MCTX_OFF as usize;
        let mut mctx = [0u8; 256];
        mctx.copy_from_slice(&f[m..m + 256]);
        let mut regs = self.regs;
        let fp_addr = decode_mcontext(&mctx, &mut regs);
        let sm = uc + SIGMASK_OFF as usize;
        let mask = u64::from_le_bytes(f[sm..sm + 8].try_into().unwrap_or([0; 8]));
        if fp_addr != 0 {
            let len = self.ctx.fp_state().map_err(|_| Errno::EFAULT)?.len();
            let mut fp = vec![0u8; len];
            self.mm.copy_in(fp_addr, &mut fp)?;
            self.ctx.set_fp_state(&fp).map_err(|_| Errno::EFAULT)?;
        }
        let alt_sp = u64::from_le_bytes(f[uc + 16..uc + 24].try_into().unwrap_or([0; 8]));
        let alt_flags = i32::from_le_bytes(f[uc + 24..uc + 28].try_into().unwrap_or([0; 4]));
        let alt_size = u64::from_le_bytes(f[uc + 32..uc + 40].try_into().unwrap_or([0; 8]));
        let mut s = lock(&self.sig);
        s.mask = mask & !UNBLOCKABLE;
        if s.altstack.flags & SS_ONSTACK == 0 {
            s.altstack = AltStack {
                sp: alt_sp,
                flags: alt_flags & !SS_ONSTACK,
                size: alt_size,
            };
        }
        drop(s);
        self.regs = regs;
        Ok(())
    }

    /// A guest instruction faulted: deliver the matching signal, forced
    /// (a blocked or ignored fault signal kills, as on Linux).
    pub fn handle_fault(&mut self, f: platform::FaultInfo) {
        let sig = f.signo;
        let info = SigInfo::fault(sig, f.code, f.addr);
        let blocked = lock(&self.sig).mask & bit(sig) != 0;
        let act = self.tg.action(sig);
        if blocked || act.handler == SIG_IGN {
            let h = lock(&self.tg.sighand).clone();
            lock(&h)[(sig - 1) as usize] = SigAction::default();
            lock(&self.sig).mask &= !bit(sig);
        }
        tracing::debug!(
            tid = self.tid,
            sig,
            addr = format_args!("{:#x}", f.addr),
            rip = format_args!("{:#x}", self.regs.rip),
            "guest fault"
        );
        lock(&self.sig).pending.enqueue(info);
    }
}
