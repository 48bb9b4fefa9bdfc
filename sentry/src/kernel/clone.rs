//! clone/clone3/fork/vfork: new tasks, sharing or copying mm, fd table, fs
//! context and signal handlers as the flags say, each on its own host thread.

use super::task::{lock, CurrentTask, Task, ThreadGroup};
use super::ProcEntry;
use crate::errno::{Errno, KResult};
use platform::PendingContext;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

pub const CLONE_VM: u64 = libc::CLONE_VM as u64;
pub const CLONE_FS: u64 = libc::CLONE_FS as u64;
pub const CLONE_FILES: u64 = libc::CLONE_FILES as u64;
pub const CLONE_SIGHAND: u64 = libc::CLONE_SIGHAND as u64;
pub const CLONE_PIDFD: u64 = libc::CLONE_PIDFD as u64;
pub const CLONE_PTRACE: u64 = libc::CLONE_PTRACE as u64;
pub const CLONE_VFORK: u64 = libc::CLONE_VFORK as u64;
pub const CLONE_PARENT: u64 = libc::CLONE_PARENT as u64;
pub const CLONE_THREAD: u64 = libc::CLONE_THREAD as u64;
pub const CLONE_NEWNS: u64 = libc::CLONE_NEWNS as u64;
pub const CLONE_SYSVSEM: u64 = libc::CLONE_SYSVSEM as u64;
pub const CLONE_SETTLS: u64 = libc::CLONE_SETTLS as u64;
pub const CLONE_PARENT_SETTID: u64 = libc::CLONE_PARENT_SETTID as u64;
pub const CLONE_CHILD_CLEARTID: u64 = libc::CLONE_CHILD_CLEARTID as u64;
pub const CLONE_DETACHED: u64 = libc::CLONE_DETACHED as u64;
pub const CLONE_UNTRACED: u64 = libc::CLONE_UNTRACED as u64;
pub const CLONE_CHILD_SETTID: u64 = libc::CLONE_CHILD_SETTID as u64;
pub const CLONE_IO: u64 = libc::CLONE_IO as u64;
/// Namespace flags we do not create (yet): refused with EINVAL.
pub const CLONE_NEW_ANY: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET) as u64;

#[derive(Clone, Copy, Debug, Default)]
pub struct CloneArgs {
    pub flags: u64,
    pub stack: u64,
    pub parent_tid: u64,
    pub child_tid: u64,
    pub tls: u64,
    pub exit_signal: i32,
}

enum NewContext {
    Thread(Box<dyn PendingContext>),
    AddressSpace,
}

impl CurrentTask {
    pub fn do_clone(&mut self, a: CloneArgs) -> KResult<i32> {
        let f = a.flags;
        if f & CLONE_THREAD != 0 && f & CLONE_SIGHAND == 0 {
            return Err(Errno::EINVAL);
        }
        if f & CLONE_SIGHAND != 0 && f & CLONE_VM == 0 {
            return Err(Errno::EINVAL);
        }
        if f & CLONE_NEW_ANY != 0 || f & CLONE_PIDFD != 0 {
            return Err(Errno::EINVAL);
        }
        let kernel = self.kernel.clone();
        // The container's pids limit counts every task not yet reaped.
        if let Some(limit) = crate::boot::guest_pids_limit() {
            if kernel.ts().tasks.len() as u64 >= limit {
                return Err(Errno::EAGAIN);
            }
        }
        let mm = if f & CLONE_VM != 0 {
            self.mm.clone()
        } else {
            Arc::new(self.mm.fork()?)
        };
        let fds = if f & CLONE_FILES != 0 {
            self.fd_table()
        } else {
            self.fd_table().fork()
        };
        let fs = if f & CLONE_FS != 0 {
            self.fs_context()
        } else {
            let cur = self.fs_context();
            let c = lock(&cur);
            Arc::new(Mutex::new(crate::vfs::FsContext {
                root: c.root.clone(),
                cwd: c.cwd.clone(),
                umask: c.umask,
            }))
        };
        let fp = self.ctx.fp_state().map_err(|_| Errno::ENOMEM)?;
        let newctx = if f & CLONE_VM != 0 {
            NewContext::Thread(self.ctx.new_thread().map_err(|e| {
                tracing::error!("new stub thread: {e}");
                Errno::EAGAIN
            })?)
        } else {
            NewContext::AddressSpace
        };
        let mut regs = self.regs;
        regs.rax = 0;
        if a.stack != 0 {
            regs.rsp = a.stack;
        }
        if f & CLONE_SETTLS != 0 {
            regs.fs_base = a.tls;
        }
        let mask = lock(&self.sig).mask;
        let comm = lock(&self.comm).clone();
        let creds = self.creds();

        let child = {
            let mut ts = kernel.ts();
            let tid = ts.alloc_pid();
            let tg = if f & CLONE_THREAD != 0 {
                self.tg.clone()
            } else {
                let sighand = if f & CLONE_SIGHAND != 0 {
                    lock(&self.tg.sighand).clone()
                } else {
                    let cur = lock(&self.tg.sighand).clone();
                    let copy = *lock(&cur);
                    Arc::new(Mutex::new(copy))
                };
                let rl = *lock(&self.tg.rlimits);
                ThreadGroup::new(tid, sighand, rl)
            };
            let child = Task::new(
                tid,
                kernel.clone(),
                tg.clone(),
                mm.clone(),
                fds,
                fs,
                creds,
                mask,
                comm,
            )?;
            if f & CLONE_THREAD != 0 {
                if let Some(e) = ts.procs.get_mut(&tg.tgid) {
                    e.threads.push(tid);
                }
            } else {
                let me = self.tg.tgid;
                let (parent, pgid, sid) = match ts.procs.get(&me) {
                    Some(e) => (
                        if f & CLONE_PARENT != 0 { e.parent } else { me },
                        e.pgid,
                        e.sid,
                    ),
                    None => (me, me, me),
                };
                ts.procs.insert(
                    tid,
                    ProcEntry {
                        tg: tg.clone(),
                        parent,
                        children: Vec::new(),
                        threads: vec![tid],
                        pgid,
                        sid,
                        zombie: None,
                        exit_signal: a.exit_signal,
                        stop_report: None,
                        cont_report: false,
                    },
                );
                if let Some(p) = ts.procs.get_mut(&parent) {
                    p.children.push(tid);
                }
            }
            ts.tasks.insert(tid, child.clone());
            child
        };
        let tid = child.tid;
        if f & CLONE_PARENT_SETTID != 0 {
            let _ = self.mm.write_u32(a.parent_tid, tid as u32);
        }
        if f & CLONE_CHILD_SETTID != 0 {
            let _ = mm.write_u32(a.child_tid, tid as u32);
        }
        if f & CLONE_CHILD_CLEARTID != 0 {
            child.clear_child_tid.store(a.child_tid, Ordering::SeqCst);
        }
        if f & CLONE_VFORK != 0 {
            *lock(&child.vfork_parent) = Some(self.task.clone());
        }
        let platform = kernel.platform.clone();
        let child2 = child.clone();
        let spawn = std::thread::Builder::new()
            .name(format!("task-{tid}"))
            .spawn(move || {
                let ctx = match newctx {
                    NewContext::Thread(p) => p.adopt(),
                    NewContext::AddressSpace => platform.new_address_space(),
                };
                let mut ctx = match ctx {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::error!("starting task {}: {e}", child2.tid);
                        abandon(&child2);
                        return;
                    }
                };
                if f & CLONE_VM == 0 && mm.sync_all(ctx.as_mut()).is_err() {
                    abandon(&child2);
                    return;
                }
                let _ = ctx.set_fp_state(&fp);
                CurrentTask::new(child2, ctx, regs).run();
            });
        if spawn.is_err() {
            abandon(&child);
            return Err(Errno::EAGAIN);
        }
        if f & CLONE_VFORK != 0 {
            // Wait (killably) until the child execs or exits.
            let c = child.clone();
            loop {
                let r = self.task.block_until(&[], &[], None, || {
                    c.vfork_done.load(Ordering::SeqCst).then_some(Ok(()))
                });
                if r.is_ok() || self.killed.load(Ordering::SeqCst) || self.tg.exiting().is_some() {
                    break;
                }
                // A signal arrived: vfork waits are not interruptible except
                // by fatal signals, which show up as killed above.
                if c.vfork_done.load(Ordering::SeqCst) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        Ok(tid)
    }
}

/// A child that could not start: it leaves as if killed.
fn abandon(t: &Arc<Task>) {
    let kernel = t.kernel.clone();
    if let Some(p) = lock(&t.vfork_parent).take() {
        t.vfork_done.store(true, Ordering::SeqCst);
        p.waiter.notify();
    }
    let last = {
        let mut ts = kernel.ts();
        ts.tasks.remove(&t.tid);
        match ts.procs.get_mut(&t.tg.tgid) {
            Some(e) => {
                e.threads.retain(|&x| x != t.tid);
                e.threads.is_empty()
            }
            None => true,
        }
    };
    if last {
        kernel.process_exit(t.tg.tgid, libc::SIGKILL);
    }
}
