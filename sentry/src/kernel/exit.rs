//! Exit and wait: thread exit (CLONE_CHILD_CLEARTID wake-up), the last thread
//! turning its group into a zombie, reparenting to PID 1, SIGCHLD, and
//! wait4/waitid reaping.

use super::signal::*;
use super::task::{lock, CurrentTask};
use super::{Kernel, TaskSet};
use crate::errno::{Errno, KResult};
use crate::vfs::FdTable;
use std::sync::atomic::Ordering;

pub const INIT_PID: i32 = 1;

/// What wait4/waitid found.
pub struct WaitResult {
    pub pid: i32,
    pub status: i32,
    pub code: i32,
    pub uid: u32,
}

impl CurrentTask {
    /// Ends this thread; the last thread out ends the process with `status`
    /// (a wait status) unless a group exit already chose one.
    pub fn exit(self, status: i32) {
        self.release_vfork_parent();
        let ctid = self.clear_child_tid.swap(0, Ordering::SeqCst);
        if ctid != 0 && self.mm.write_u32(ctid, 0).is_ok() {
            if let Ok(key) = self.kernel.futexes.key(&self.mm, ctid, false) {
                self.kernel.futexes.wake(key, 1, u32::MAX);
            }
        }
        let kernel = self.kernel.clone();
        let tg = self.tg.clone();
        let tid = self.tid;
        let cpu = self.cpu_time_ns();
        self.task.set_interrupter(None);
        // Release the platform context before the mm (the stub may go).
        let CurrentTask { task, ctx, .. } = self;
        ctx.release();
        *lock(&task.fds) = FdTable::new();
        tg.dead_cpu_ns.fetch_add(cpu, Ordering::Relaxed);
        let last = {
            let mut ts = kernel.ts();
            ts.tasks.remove(&tid);
            match ts.procs.get_mut(&tg.tgid) {
                Some(e) => {
                    e.threads.retain(|&t| t != tid);
                    e.threads.is_empty()
                }
                None => true,
            }
        };
        if last {
            // POSIX record locks die with their process.
            crate::vfs::lock::release_process(&tg);
            // A session leader's exit hangs up its controlling terminal.
            crate::fs::devpts::session_leader_exited(&kernel, &tg);
            let status = tg.exiting().unwrap_or(status);
            kernel.process_exit(tg.tgid, status);
        }
        drop(task);
    }

    /// A CLONE_VFORK child released its parent (exec or exit).
    pub fn release_vfork_parent(&self) {
        if let Some(p) = lock(&self.vfork_parent).take() {
            self.vfork_done.store(true, Ordering::SeqCst);
            p.waiter.notify();
        }
    }
}

impl Kernel {
    /// The last thread of `tgid` is gone: become a zombie and tell the parent.
    pub fn process_exit(&self, tgid: i32, status: i32) {
        tracing::debug!(tgid, status, "process exit");
        let tg = match self.ts().procs.get(&tgid) {
            Some(e) => e.tg.clone(),
            None => return,
        };
        if let Some((id, _, _)) = lock(&tg.itimer_real).take() {
            self.timers.cancel(id);
        }
        let (parent, exit_signal, orphans_to_init) = {
            let mut ts = self.ts();
            let Some(e) = ts.procs.get_mut(&tgid) else {
                return;
            };
            e.zombie = Some(status);
            let children = std::mem::take(&mut e.children);
            let parent = e.parent;
            let exit_signal = e.exit_signal;
            let mut zombie_orphans = false;
            if tgid != INIT_PID {
                for c in &children {
                    if let Some(ce) = ts.procs.get_mut(c) {
                        ce.parent = INIT_PID;
                        zombie_orphans |= ce.zombie.is_some();
                    }
                }
                if let Some(init) = ts.procs.get_mut(&INIT_PID) {
                    init.children.extend(children);
                }
            }
            (parent, exit_signal, zombie_orphans)
        };
        if tgid == INIT_PID {
            // The sandbox ends with its init; nothing else may outlive it.
            let others: Vec<_> = self.ts().procs.values().map(|e| e.tg.clone()).collect();
            for o in others {
                if o.tgid != INIT_PID {
                    self.kill_group(&o, SIGKILL);
                }
            }
            self.finish(status);
            return;
        }
        if orphans_to_init {
            if let Some(init) = self.ts().procs.get(&INIT_PID) {
                init.tg.child_wq.notify_all();
            }
        }
        let ptg = self.ts().procs.get(&parent).map(|e| e.tg.clone());
        let Some(ptg) = ptg else {
            self.ts().procs.remove(&tgid);
            self.parentless_exit(tgid, status);
            return;
        };
        let act = ptg.action(SIGCHLD);
        if exit_signal == SIGCHLD && (act.handler == SIG_IGN || act.flags & SA_NOCLDWAIT != 0) {
            // The parent does not want zombies: reap now.
            let mut ts = self.ts();
            ts.procs.remove(&tgid);
            if let Some(p) = ts.procs.get_mut(&parent) {
                p.children.retain(|&c| c != tgid);
            }
            drop(ts);
            ptg.child_wq.notify_all();
            return;
        }
        let (code, st) = if status & 0x7f == 0 {
            (CLD_EXITED, (status >> 8) & 0xff)
        } else {
            (CLD_KILLED, status & 0x7f)
        };
        if valid(exit_signal) {
            self.send_to_group(&ptg, SigInfo::child(code, tgid, 0, st));
        }
        ptg.child_wq.notify_all();
    }
}

/// Which children a wait selects: wait4's pid argument.
#[derive(Clone, Copy)]
pub enum WaitTarget {
    Any,
    Pid(i32),
    Pgid(i32),
}

pub struct WaitOpts {
    pub target: WaitTarget,
    pub exited: bool,
    pub stopped: bool,
    pub continued: bool,
    pub nohang: bool,
    pub nowait: bool,
}

fn matches(ts: &TaskSet, target: WaitTarget, pid: i32) -> bool {
    match target {
        WaitTarget::Any => true,
        WaitTarget::Pid(p) => p == pid,
        WaitTarget::Pgid(g) => ts.procs.get(&pid).is_some_and(|e| e.pgid == g),
    }
}

impl CurrentTask {
    /// wait4/waitid: Ok(None) for WNOHANG with nothing ready.
    pub fn wait_child(&self, opts: &WaitOpts) -> KResult<Option<WaitResult>> {
        let tg = self.tg.clone();
        let kernel = self.kernel.clone();
        let me = tg.tgid;
        let r = self.task.block_until(&[&tg.child_wq], &[], None, || {
            let mut ts = kernel.ts();
            let children: Vec<i32> = ts
                .procs
                .get(&me)
                .map(|e| e.children.clone())
                .unwrap_or_default();
            let cands: Vec<i32> = children
                .into_iter()
                .filter(|&c| matches(&ts, opts.target, c))
                .collect();
            if cands.is_empty() {
                return Some(Err(Errno::ECHILD));
            }
            for c in cands {
                let Some(e) = ts.procs.get_mut(&c) else {
                    continue;
                };
                if let Some(status) = e.zombie {
                    if !opts.exited {
                        continue;
                    }
                    let code = if status & 0x7f == 0 {
                        CLD_EXITED
                    } else {
                        CLD_KILLED
                    };
                    if !opts.nowait {
                        let child_cpu = e.tg.dead_cpu_ns.load(Ordering::Relaxed)
                            + e.tg.children_cpu_ns.load(Ordering::Relaxed);
                        ts.procs.remove(&c);
                        if let Some(p) = ts.procs.get_mut(&me) {
                            p.children.retain(|&x| x != c);
                            p.tg.children_cpu_ns.fetch_add(child_cpu, Ordering::Relaxed);
                        }
                    }
                    return Some(Ok(Some(WaitResult {
                        pid: c,
                        status,
                        code,
                        uid: 0,
                    })));
                }
                if opts.stopped {
                    if let Some(sig) = e.stop_report {
                        if !opts.nowait {
                            e.stop_report = None;
                        }
                        return Some(Ok(Some(WaitResult {
                            pid: c,
                            status: 0x7f | (sig << 8),
                            code: CLD_STOPPED,
                            uid: 0,
                        })));
                    }
                }
                if opts.continued && e.cont_report {
                    if !opts.nowait {
                        e.cont_report = false;
                    }
                    return Some(Ok(Some(WaitResult {
                        pid: c,
                        status: 0xffff,
                        code: CLD_CONTINUED,
                        uid: 0,
                    })));
                }
            }
            if opts.nohang {
                return Some(Ok(None));
            }
            None
        });
        r
    }
}
