//! The kernel proper: tasks and thread groups, the PID namespace, credentials,
//! signals, futexes, timers, exec, exit and wait.

pub mod caps;
pub mod clone;
pub mod exec;
pub mod exit;
pub mod fasync;
pub mod futex;
pub mod mqueue;
pub mod signal;
pub mod sysctl;
pub mod task;
pub mod task_fs;
pub mod task_signals;
pub mod timer;
pub mod waiter;

use crate::mm::memory_file::MemoryFile;
use crate::vfs::Vfs;
use platform::Platform;
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;
use task::Task;

/// Our kernel's identity, reported by uname(2) instead of the host's.
pub const SYSNAME: &str = "Linux";
pub const RELEASE: &str = "4.4.0-sentry";
pub const VERSION: &str = "#1 SMP Sun Jan 10 15:06:54 PST 2016";
pub const MACHINE: &str = "x86_64";

#[derive(Clone, Debug, Default)]
pub struct Creds {
    pub ruid: u32,
    pub euid: u32,
    pub suid: u32,
    pub fsuid: u32,
    pub rgid: u32,
    pub egid: u32,
    pub sgid: u32,
    pub fsgid: u32,
    pub groups: Vec<u32>,
    pub caps: caps::Caps,
}

impl Creds {
    pub fn root() -> Creds {
        Creds::default()
    }

    /// Whether the task holds `cap` (one of kernel::caps) in its
    /// effective set.
    pub fn capable(&self, cap: u32) -> bool {
        self.caps.has(cap)
    }

    /// Discretionary access check of `want` (4 read, 2 write, 1 exec or
    /// search) against a file's owner and mode, with the filesystem ids.
    /// CAP_DAC_OVERRIDE passes everything but executing a file with no
    /// execute bit at all; CAP_DAC_READ_SEARCH passes reading and
    /// searching directories.
    pub fn may(&self, st: &crate::vfs::Stat, want: u32) -> bool {
        self.may_as(st, want, self.fsuid, self.fsgid)
    }

    /// As `may`, for explicit ids (access(2) checks with the real ones:
    /// then the capabilities are the ones a real uid of 0 would have).
    pub fn may_as(&self, st: &crate::vfs::Stat, want: u32, uid: u32, gid: u32) -> bool {
        let caps = if uid == self.fsuid {
            self.caps.effective
        } else if uid == 0 {
            self.caps.permitted
        } else {
            0
        };
        if caps & caps::bit(caps::CAP_DAC_OVERRIDE) != 0
            && (want & 1 == 0 || st.is_dir() || st.mode & 0o111 != 0)
        {
            return true;
        }
        if caps & caps::bit(caps::CAP_DAC_READ_SEARCH) != 0
            && want & 2 == 0
            && (want & 1 == 0 || st.is_dir())
        {
            return true;
        }
        let bits = if st.uid == uid {
            (st.mode >> 6) & 7
        } else if st.gid == gid || self.groups.contains(&st.gid) {
            (st.mode >> 3) & 7
        } else {
            st.mode & 7
        };
        bits & want == want
    }

    /// The sticky-bit rule for removing or renaming `child` from `dir`.
    pub fn may_delete(&self, dir: &crate::vfs::Stat, child: &crate::vfs::Stat) -> bool {
        self.capable(caps::CAP_FOWNER)
            || dir.mode & libc::S_ISVTX == 0
            || self.fsuid == dir.uid
            || self.fsuid == child.uid
    }
}

/// Process-tree state of one thread group, under the task-set lock.
pub struct ProcEntry {
    pub tg: Arc<task::ThreadGroup>,
    pub parent: i32,
    pub children: Vec<i32>,
    pub threads: Vec<i32>,
    pub pgid: i32,
    pub sid: i32,
    /// Wait status once every thread has exited.
    pub zombie: Option<i32>,
    pub exit_signal: i32,
    pub stop_report: Option<i32>,
    pub cont_report: bool,
}

#[derive(Default)]
pub struct TaskSet {
    next_pid: i32,
    pub tasks: HashMap<i32, Arc<Task>>,
    pub procs: HashMap<i32, ProcEntry>,
}

impl TaskSet {
    pub fn alloc_pid(&mut self) -> i32 {
        loop {
            self.next_pid += 1;
            if self.next_pid > 4_194_304 {
                self.next_pid = 2;
            }
            let p = self.next_pid;
            if !self.tasks.contains_key(&p)
                && !self.procs.contains_key(&p)
                && !self.procs.values().any(|e| e.pgid == p || e.sid == p)
            {
                return p;
            }
        }
    }

    /// Live tasks of thread group `tgid`.
    pub fn threads_of(&self, tgid: i32) -> Vec<Arc<Task>> {
        self.procs
            .get(&tgid)
            .map(|e| {
                e.threads
                    .iter()
                    .filter_map(|t| self.tasks.get(t).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

pub struct Kernel {
    pub platform: Arc<dyn Platform>,
    pub mf: Arc<MemoryFile>,
    pub vfs: Arc<Vfs>,
    pub futexes: futex::Futexes,
    pub timers: timer::Timers,
    ts: Mutex<TaskSet>,
    pub hostname: Mutex<Vec<u8>>,
    pub strace: bool,
    pub boot: Instant,
    exit: (Mutex<Option<i32>>, Condvar),
    /// Wait statuses of processes started from outside with no parent
    /// (`runsc exec`), kept until `wait_parentless` collects them.
    parentless_exits: (Mutex<HashMap<i32, i32>>, Condvar),
}

impl Kernel {
    pub fn new(
        platform: Arc<dyn Platform>,
        mf: Arc<MemoryFile>,
        vfs: Arc<Vfs>,
        strace: bool,
    ) -> Arc<Kernel> {
        Arc::new(Kernel {
            platform,
            mf,
            vfs,
            futexes: futex::Futexes::default(),
            timers: timer::Timers::new(),
            ts: Mutex::new(TaskSet::default()),
            hostname: Mutex::new(b"sandbox".to_vec()),
            strace,
            boot: Instant::now(),
            exit: (Mutex::new(None), Condvar::new()),
            parentless_exits: (Mutex::new(HashMap::new()), Condvar::new()),
        })
    }

    pub fn ts(&self) -> MutexGuard<'_, TaskSet> {
        self.ts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// CPU time of a thread group: its live threads plus those that exited.
    pub fn group_cpu_ns(&self, tg: &task::ThreadGroup) -> u64 {
        let live: u64 = self
            .ts()
            .threads_of(tg.tgid)
            .iter()
            .map(|t| t.cpu_time_ns())
            .sum();
        live + tg.dead_cpu_ns.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Called when PID 1 exits: the sandbox is over.
    pub fn finish(&self, wait_status: i32) {
        let mut e = self.exit.0.lock().unwrap_or_else(|p| p.into_inner());
        if e.is_none() {
            *e = Some(wait_status);
        }
        self.exit.1.notify_all();
    }

    /// Blocks until PID 1 exits; returns its wait status.
    pub fn wait_for_init(&self) -> i32 {
        let mut e = self.exit.0.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(s) = *e {
                return s;
            }
            e = self.exit.1.wait(e).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// A process without a parent in the sandbox (one `runsc exec`
    /// started) exited with `wait_status`.
    pub fn parentless_exit(&self, tgid: i32, wait_status: i32) {
        let (m, cv) = &self.parentless_exits;
        m.lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tgid, wait_status);
        cv.notify_all();
    }

    /// Blocks until parentless process `tgid` exits (or the sandbox
    /// ends: then it was killed with the rest); returns its wait status.
    pub fn wait_parentless(&self, tgid: i32) -> i32 {
        let (m, cv) = &self.parentless_exits;
        let mut exits = m.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(s) = exits.remove(&tgid) {
                return s;
            }
            if self
                .exit
                .0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_some()
                && !self.ts().procs.contains_key(&tgid)
            {
                return libc::SIGKILL;
            }
            exits = cv
                .wait_timeout(exits, std::time::Duration::from_millis(100))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}
