//! Pseudo-terminals: /dev/ptmx, the devpts directory /dev/pts and
//! /dev/tty, with Linux's pty semantics.
//!
//! Each open of a ptmx node creates a pty pair: the open file is the
//! master, and /dev/pts/N (N from TIOCGPTN) appears until the master is
//! closed; opening it (once unlocked with TIOCSPTLCK, or through
//! TIOCGPTPEER) gives a slave end. Both ends share one line discipline
//! (`tty.rs`) and one termios, as on Linux, where the master's termios
//! ioctls act on the slave.
//!
//! Job control: the pty remembers the session it is the controlling
//! terminal of (by session id, together with the session leader's thread
//! group so a reused id never inherits it) and its foreground process
//! group. ISIG characters, TIOCSWINSZ and TIOCSIG signal that group;
//! background reads get SIGTTIN, background termios changes (and writes
//! under TOSTOP) SIGTTOU. /dev/tty opens the caller's session's terminal.
//!
//! Closing the master hangs the slave up: its reads return 0, writes and
//! ioctls EIO, the session loses its controlling terminal and its leader
//! gets SIGHUP and SIGCONT. Closing the last slave makes master reads
//! return EIO once drained (and poll report POLLHUP).

use super::tty::{self, Ldisc, Termios};
use super::{check_open, lock, new_anon_dev, new_fs_id, next_ino, PathFile};
use crate::errno::{Errno, KResult};
use crate::kernel::signal::{bit, SigInfo, SIG_IGN, SI_KERNEL};
use crate::kernel::task::{current, Task, ThreadGroup};
use crate::kernel::waiter::WaitQueue;
use crate::kernel::Kernel;
use crate::vfs::file::{POLLERR, POLLHUP, POLLIN, POLLOUT, POLLRDNORM, POLLWRNORM};
use crate::vfs::{dtype_of_mode, makedev, DirEntry, File, FileOps, Inode, Stat, Timespec};
use std::any::Any;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// The "tty" group: what devpts mounted with gid=5 gives slave nodes.
pub const TTY_GID: u32 = 5;
/// Slave node permissions (devpts mode=620).
pub const PTS_MODE: u32 = 0o620;
const UNIX98_PTY_SLAVE_MAJOR: u32 = 136;
const TTYAUX_MAJOR: u32 = 5;
/// /proc/sys/kernel/pty/max.
pub const PTY_MAX: u32 = 4096;

// ioctl commands (x86-64).
const TCGETS: u32 = 0x5401;
const TCSETS: u32 = 0x5402;
const TCSETSW: u32 = 0x5403;
const TCSETSF: u32 = 0x5404;
const TCGETA: u32 = 0x5405;
const TCSETA: u32 = 0x5406;
const TCSETAW: u32 = 0x5407;
const TCSETAF: u32 = 0x5408;
const TCSBRK: u32 = 0x5409;
const TCXONC: u32 = 0x540A;
const TCFLSH: u32 = 0x540B;
const TIOCEXCL: u32 = 0x540C;
const TIOCNXCL: u32 = 0x540D;
const TIOCSCTTY: u32 = 0x540E;
const TIOCGPGRP: u32 = 0x540F;
const TIOCSPGRP: u32 = 0x5410;
const TIOCOUTQ: u32 = 0x5411;
const TIOCSTI: u32 = 0x5412;
const TIOCGWINSZ: u32 = 0x5413;
const TIOCSWINSZ: u32 = 0x5414;
const FIONREAD: u32 = 0x541B;
const TIOCPKT: u32 = 0x5420;
const TIOCNOTTY: u32 = 0x5422;
const TIOCSETD: u32 = 0x5423;
const TIOCGETD: u32 = 0x5424;
const TCSBRKP: u32 = 0x5425;
const TIOCSBRK: u32 = 0x5427;
const TIOCCBRK: u32 = 0x5428;
const TIOCGSID: u32 = 0x5429;
const TCGETS2: u32 = 0x802C_542A;
const TCSETS2: u32 = 0x402C_542B;
const TCSETSW2: u32 = 0x402C_542C;
const TCSETSF2: u32 = 0x402C_542D;
const TIOCGPTN: u32 = 0x8004_5430;
const TIOCSPTLCK: u32 = 0x4004_5431;
const TIOCGDEV: u32 = 0x8004_5432;
const TIOCSIG: u32 = 0x4004_5436;
const TIOCGPKT: u32 = 0x8004_5438;
const TIOCGPTLCK: u32 = 0x8004_5439;
const TIOCGEXCL: u32 = 0x8004_5440;
const TIOCGPTPEER: u32 = 0x5441;
const TIOCGLCKTRMIOS: u32 = 0x5456;
const TIOCSLCKTRMIOS: u32 = 0x5457;

// TCXONC and TCFLSH arguments.
const TCOOFF: u64 = 0;
const TCOON: u64 = 1;
const TCIOFF: u64 = 2;
const TCION: u64 = 3;
const TCIFLUSH: u64 = 0;
const TCOFLUSH: u64 = 1;
const TCIOFLUSH: u64 = 2;

/// Mutable attributes of a node.
#[derive(Clone)]
struct Meta {
    perm: u32,
    uid: u32,
    gid: u32,
    atime: Timespec,
    mtime: Timespec,
    ctime: Timespec,
}

impl Meta {
    fn new(perm: u32, uid: u32, gid: u32) -> Meta {
        let now = Timespec::now();
        Meta {
            perm,
            uid,
            gid,
            atime: now,
            mtime: now,
            ctime: now,
        }
    }

    fn stat(&self, dev: u64, ino: u64, fmt: u32, rdev: u64) -> Stat {
        Stat {
            dev,
            ino,
            mode: fmt | self.perm,
            nlink: if fmt == libc::S_IFDIR { 2 } else { 1 },
            uid: self.uid,
            gid: self.gid,
            rdev,
            size: 0,
            blksize: 1024,
            blocks: 0,
            atime: self.atime,
            mtime: self.mtime,
            ctime: self.ctime,
        }
    }

    fn set_mode(&mut self, mode: u32) {
        self.perm = mode & 0o7777;
        self.ctime = Timespec::now();
    }

    fn set_owner(&mut self, uid: Option<u32>, gid: Option<u32>) {
        if let Some(u) = uid {
            self.uid = u;
        }
        if let Some(g) = gid {
            self.gid = g;
        }
        self.ctime = Timespec::now();
    }

    fn set_times(&mut self, atime: Option<Timespec>, mtime: Option<Timespec>) {
        if atime.is_none() && mtime.is_none() {
            return;
        }
        if let Some(a) = atime {
            self.atime = a;
        }
        if let Some(m) = mtime {
            self.mtime = m;
        }
        self.ctime = Timespec::now();
    }
}

/// Linux's new_encode_dev (TIOCGDEV).
fn encode_dev(major: u32, minor: u32) -> u32 {
    (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
}

// ---------------------------------------------------------------------------
// Sessions and process groups.
// ---------------------------------------------------------------------------

/// The session a pty is the controlling terminal of.
#[derive(Clone)]
struct Session {
    sid: i32,
    /// The leader's thread group: the association ends with it (a later
    /// session reusing the id does not inherit the terminal).
    leader: Weak<ThreadGroup>,
}

/// The calling process's ids.
struct Caller {
    tgid: i32,
    pgid: i32,
    sid: i32,
}

impl Caller {
    fn leader(&self) -> bool {
        self.tgid == self.sid
    }
}

fn caller(t: &Task) -> Option<Caller> {
    let ts = t.kernel.ts();
    let e = ts.procs.get(&t.tgid())?;
    Some(Caller {
        tgid: t.tgid(),
        pgid: e.pgid,
        sid: e.sid,
    })
}

fn session_alive(k: &Kernel, s: &Session) -> bool {
    let Some(leader) = s.leader.upgrade() else {
        return false;
    };
    let ts = k.ts();
    ts.procs
        .get(&s.sid)
        .is_some_and(|e| e.sid == s.sid && e.zombie.is_none() && Arc::ptr_eq(&e.tg, &leader))
}

/// Sends `sig` to every live process of group `pgid` (kill_pgrp).
fn signal_pgrp(k: &Kernel, pgid: i32, sig: i32) {
    if pgid <= 0 {
        return;
    }
    let tgs: Vec<Arc<ThreadGroup>> = k
        .ts()
        .procs
        .values()
        .filter(|e| e.pgid == pgid && e.zombie.is_none())
        .map(|e| e.tg.clone())
        .collect();
    for tg in tgs {
        k.send_to_group(&tg, SigInfo::new(sig, SI_KERNEL));
    }
}

/// Whether group `pgid` is orphaned: no member has a parent in another
/// group of the same session (POSIX; such groups must not be stopped by
/// terminal signals).
fn pgrp_orphaned(k: &Kernel, pgid: i32, sid: i32) -> bool {
    let ts = k.ts();
    !ts.procs.values().any(|e| {
        e.pgid == pgid
            && e.zombie.is_none()
            && ts
                .procs
                .get(&e.parent)
                .is_some_and(|p| p.pgid != pgid && p.sid == sid)
    })
}

/// Every pty ever created, to find a session's controlling terminal.
static ALL_PTYS: Mutex<Vec<Weak<Pty>>> = Mutex::new(Vec::new());

/// The controlling terminal of session `sid`.
fn find_ctty(k: &Arc<Kernel>, sid: i32) -> Option<Arc<Pty>> {
    let all: Vec<Arc<Pty>> = {
        let mut g = lock(&ALL_PTYS);
        g.retain(|w| w.strong_count() > 0);
        g.iter().filter_map(|w| w.upgrade()).collect()
    };
    all.into_iter()
        .find(|p| std::ptr::eq(p.kernel.as_ptr(), Arc::as_ptr(k)) && p.ctty_sid(k) == Some(sid))
}

/// What /proc/<pid>/stat reports for a process of session `sid`: its
/// controlling terminal's device number (new_encode_dev, the tty_nr
/// field), the terminal's foreground process group (tpgid) and its name
/// ("pts/N"); None without a controlling terminal.
pub fn session_tty(k: &Arc<Kernel>, sid: i32) -> Option<(u32, i32, String)> {
    let p = find_ctty(k, sid)?;
    let fg = p.st().fg_pgrp;
    Some((
        encode_dev(UNIX98_PTY_SLAVE_MAJOR + p.index / 256, p.index % 256),
        fg,
        format!("pts/{}", p.index),
    ))
}

/// The session leader `leader` exited (Linux's disassociate_ctty(1) for a
/// pty): its session loses its controlling terminal and the foreground
/// process group gets SIGHUP. Meant to be called from process exit; until
/// then a dead leader's terminal is merely treated as nobody's.
pub fn session_leader_exited(k: &Kernel, leader: &Arc<ThreadGroup>) {
    let all: Vec<Arc<Pty>> = {
        let g = lock(&ALL_PTYS);
        g.iter().filter_map(|w| w.upgrade()).collect()
    };
    for p in all {
        let fg = {
            let mut st = p.st();
            let ours = st
                .session
                .as_ref()
                .is_some_and(|s| std::ptr::eq(s.leader.as_ptr(), Arc::as_ptr(leader)));
            if !ours {
                continue;
            }
            st.session = None;
            std::mem::take(&mut st.fg_pgrp)
        };
        signal_pgrp(k, fg, libc::SIGHUP);
    }
}

// ---------------------------------------------------------------------------
// The pty pair.
// ---------------------------------------------------------------------------

struct PtyState {
    ld: Ldisc,
    master_open: bool,
    /// Open slave file descriptions.
    slave_count: usize,
    /// The last slave was closed (Linux's TTY_OTHER_CLOSED on the master).
    slave_closed: bool,
    /// TIOCSPTLCK: slave opens fail with EIO while set.
    locked: bool,
    /// Foreground process group (0: none).
    fg_pgrp: i32,
    session: Option<Session>,
    /// TIOCPKT.
    packet: bool,
    /// TIOCEXCL.
    excl: bool,
    /// Master output stopped with TCXONC(TCOOFF) on the master.
    master_stopped: bool,
}

pub struct Pty {
    index: u32,
    devpts: Arc<DevPts>,
    kernel: Weak<Kernel>,
    state: Mutex<PtyState>,
    /// Notified on every change, for both ends.
    queue: WaitQueue,
    /// The /dev/pts/N node's attributes.
    meta: Mutex<Meta>,
}

impl Drop for Pty {
    fn drop(&mut self) {
        // The index is free again once both ends are gone.
        lock(&self.devpts.ptys).remove(&self.index);
    }
}

impl Pty {
    fn st(&self) -> MutexGuard<'_, PtyState> {
        lock(&self.state)
    }

    pub fn index(&self) -> u32 {
        self.index
    }

    fn rdev(&self) -> u64 {
        makedev(UNIX98_PTY_SLAVE_MAJOR + self.index / 256, self.index % 256)
    }

    fn slave_stat(&self) -> Stat {
        lock(&self.meta).stat(
            self.devpts.dev,
            self.index as u64 + 3,
            libc::S_IFCHR,
            self.rdev(),
        )
    }

    /// The session this is the controlling terminal of, if still alive.
    fn ctty_sid(&self, k: &Kernel) -> Option<i32> {
        let s = self.st().session.clone()?;
        session_alive(k, &s).then_some(s.sid)
    }

    fn is_ctty_of(&self, k: &Kernel, c: &Caller) -> bool {
        self.ctty_sid(k) == Some(c.sid)
    }

    /// Signals the foreground process group.
    fn signal_fg(&self, k: &Kernel, sig: i32) {
        let fg = self.st().fg_pgrp;
        signal_pgrp(k, fg, sig);
    }

    fn deliver(&self, t: &Task, sigs: &mut tty::Signals) {
        for sig in sigs.drain(..) {
            self.signal_fg(&t.kernel, sig);
        }
    }

    /// Opens a slave end (the Linux rules of pty_open and
    /// tty_open_proc_set_tty).
    fn open_slave(
        self: &Arc<Self>,
        flags: u32,
        node: Arc<dyn Inode>,
        t: Option<&Task>,
    ) -> KResult<Arc<SlaveFile>> {
        let privileged = t
            .map(|t| t.creds().capable(crate::kernel::caps::CAP_SYS_ADMIN))
            .unwrap_or(true);
        {
            let mut st = self.st();
            if !st.master_open || st.locked {
                return Err(Errno::EIO);
            }
            if st.excl && !privileged {
                return Err(Errno::EBUSY);
            }
            st.slave_count += 1;
            st.slave_closed = false;
        }
        self.queue.notify_all();
        let f = Arc::new(SlaveFile {
            pty: self.clone(),
            node,
        });
        let readable = flags & libc::O_ACCMODE as u32 != libc::O_WRONLY as u32;
        if flags & libc::O_NOCTTY as u32 == 0 && readable {
            if let Some(t) = t {
                self.maybe_become_ctty(t);
            }
        }
        Ok(f)
    }

    /// A session leader without a controlling terminal opening a terminal
    /// that is nobody's acquires it.
    fn maybe_become_ctty(&self, t: &Task) {
        let Some(c) = caller(t) else { return };
        if !c.leader() || find_ctty(&t.kernel, c.sid).is_some() {
            return;
        }
        let mut st = self.st();
        if st
            .session
            .as_ref()
            .is_some_and(|s| session_alive(&t.kernel, s))
        {
            return;
        }
        st.session = Some(Session {
            sid: c.sid,
            leader: Arc::downgrade(&t.tg),
        });
        st.fg_pgrp = c.pgid;
    }

    /// Linux's tty_check_change: a background process of the terminal's
    /// session gets `sig` (SIGTTOU, or SIGTTIN for reads) unless it
    /// ignores or blocks it; orphaned groups get EIO instead.
    fn job_check(&self, t: &Task, sig: i32) -> KResult<()> {
        let Some(c) = caller(t) else { return Ok(()) };
        if !self.is_ctty_of(&t.kernel, &c) {
            return Ok(());
        }
        let fg = self.st().fg_pgrp;
        if fg == 0 || fg == c.pgid {
            return Ok(());
        }
        let blocked = lock(&t.sig).mask & bit(sig) != 0;
        if blocked || t.tg.action(sig).handler == SIG_IGN {
            return if sig == libc::SIGTTIN {
                Err(Errno::EIO)
            } else {
                Ok(())
            };
        }
        if pgrp_orphaned(&t.kernel, c.pgid, c.sid) {
            return Err(Errno::EIO);
        }
        signal_pgrp(&t.kernel, c.pgid, sig);
        Err(Errno::ERESTARTSYS)
    }

    /// The master was closed: hang the slave up.
    fn hangup(&self) {
        let session = {
            let mut st = self.st();
            st.master_open = false;
            st.fg_pgrp = 0;
            st.session.take()
        };
        self.queue.notify_all();
        let (Some(k), Some(s)) = (self.kernel.upgrade(), session) else {
            return;
        };
        if !session_alive(&k, &s) {
            return;
        }
        if let Some(leader) = s.leader.upgrade() {
            k.send_to_group(&leader, SigInfo::new(libc::SIGHUP, SI_KERNEL));
            k.send_to_group(&leader, SigInfo::new(libc::SIGCONT, SI_KERNEL));
        }
    }

    fn copy_out(t: &Task, arg: u64, b: &[u8]) -> KResult<u64> {
        t.mm().copy_out(arg, b)?;
        Ok(0)
    }

    fn put_int(t: &Task, arg: u64, v: i32) -> KResult<u64> {
        t.mm().write_u32(arg, v as u32)?;
        Ok(0)
    }

    fn set_termios(&self, t: &Task, new: Termios, flush: bool) {
        let mut sigs = Vec::new();
        {
            let mut st = self.st();
            if flush {
                st.ld.flush_input();
            }
            st.ld.set_termios(new, &mut sigs);
        }
        self.queue.notify_all();
        self.deliver(t, &mut sigs);
    }

    /// The ioctls both ends serve. `master` tells which end `f` is; as on
    /// Linux, the termios, window size and job-control state are the
    /// slave's either way.
    fn ioctl(&self, t: &Task, f: &File, master: bool, cmd: u32, arg: u64) -> KResult<u64> {
        let mm = t.mm();
        match cmd {
            TCGETS => Self::copy_out(t, arg, &self.st().ld.termios.to_bytes()),
            TCGETS2 => Self::copy_out(t, arg, &self.st().ld.termios.to_bytes2()),
            TCGETA => Self::copy_out(t, arg, &self.st().ld.termios.to_termio()),
            TCSETS | TCSETSW | TCSETSF | TCSETS2 | TCSETSW2 | TCSETSF2 | TCSETA | TCSETAW
            | TCSETAF => {
                self.job_check(t, libc::SIGTTOU)?;
                let size = match cmd {
                    TCSETS | TCSETSW | TCSETSF => tty::TERMIOS_SIZE,
                    TCSETA | TCSETAW | TCSETAF => tty::TERMIO_SIZE,
                    _ => tty::TERMIOS2_SIZE,
                };
                let mut b = vec![0u8; size];
                mm.copy_in(arg, &mut b)?;
                let old = self.st().ld.termios;
                let new = if size == tty::TERMIO_SIZE {
                    old.with_termio(&b)
                } else {
                    old.with_bytes(&b)
                };
                let flush = matches!(cmd, TCSETSF | TCSETSF2 | TCSETAF);
                self.set_termios(t, new, flush);
                Ok(0)
            }
            TIOCGWINSZ => Self::copy_out(t, arg, &self.st().ld.winsize),
            TIOCSWINSZ => {
                let mut b = [0u8; 8];
                mm.copy_in(arg, &mut b)?;
                let changed = {
                    let mut st = self.st();
                    let changed = st.ld.winsize != b;
                    st.ld.winsize = b;
                    changed
                };
                if changed {
                    self.signal_fg(&t.kernel, libc::SIGWINCH);
                }
                Ok(0)
            }
            FIONREAD => {
                let st = self.st();
                let n = if master {
                    st.ld.outq.len()
                } else {
                    st.ld.slave_inq()
                };
                drop(st);
                Self::put_int(t, arg, n.min(i32::MAX as usize) as i32)
            }
            // Linux's ptys keep nothing in a driver output buffer.
            TIOCOUTQ => Self::put_int(t, arg, 0),
            TCFLSH => {
                if !master {
                    self.job_check(t, libc::SIGTTOU)?;
                }
                if arg > TCIOFLUSH {
                    return Err(Errno::EINVAL);
                }
                {
                    let mut st = self.st();
                    let (inp, out) = (arg != TCOFLUSH, arg != TCIFLUSH);
                    if master {
                        if inp {
                            st.ld.flush_output();
                        }
                        if out {
                            st.ld.flush_pending();
                        }
                    } else {
                        if inp {
                            st.ld.flush_input();
                        }
                        if out {
                            st.ld.flush_output_flip();
                        }
                    }
                    let mut sigs = Vec::new();
                    st.ld.process_input(&mut sigs);
                }
                self.queue.notify_all();
                Ok(0)
            }
            TCXONC => {
                if !master {
                    self.job_check(t, libc::SIGTTOU)?;
                }
                let mut sigs = Vec::new();
                {
                    let mut st = self.st();
                    match (arg, master) {
                        (TCOOFF, false) => {
                            st.ld.stopped = true;
                            st.ld.tco_stopped = true;
                        }
                        (TCOON, false) => {
                            st.ld.stopped = false;
                            st.ld.tco_stopped = false;
                        }
                        (TCOOFF, true) => st.master_stopped = true,
                        (TCOON, true) => st.master_stopped = false,
                        (TCIOFF | TCION, _) => {
                            let i = if arg == TCIOFF {
                                tty::VSTOP
                            } else {
                                tty::VSTART
                            };
                            let c = st.ld.termios.cc[i];
                            if c != 0 {
                                if master {
                                    st.ld.master_write(&[c], &mut sigs);
                                } else {
                                    st.ld.outq.push_back(c);
                                }
                            }
                        }
                        _ => return Err(Errno::EINVAL),
                    }
                }
                self.queue.notify_all();
                self.deliver(t, &mut sigs);
                Ok(0)
            }
            TCSBRK | TCSBRKP | TIOCSBRK | TIOCCBRK => Ok(0),
            TIOCSCTTY => self.tiocsctty(t, f, arg),
            TIOCNOTTY => {
                let c = caller(t).ok_or(Errno::ESRCH)?;
                if master || !self.is_ctty_of(&t.kernel, &c) {
                    return Err(Errno::ENOTTY);
                }
                if c.leader() {
                    let fg = {
                        let mut st = self.st();
                        st.session = None;
                        std::mem::take(&mut st.fg_pgrp)
                    };
                    signal_pgrp(&t.kernel, fg, libc::SIGHUP);
                    signal_pgrp(&t.kernel, fg, libc::SIGCONT);
                }
                // A non-leader would lose its controlling terminal alone;
                // the association here is per session, so it keeps it.
                Ok(0)
            }
            TIOCGPGRP => {
                let c = caller(t).ok_or(Errno::ESRCH)?;
                if !master && !self.is_ctty_of(&t.kernel, &c) {
                    return Err(Errno::ENOTTY);
                }
                let fg = self.st().fg_pgrp;
                Self::put_int(t, arg, fg)
            }
            TIOCGSID => {
                let c = caller(t).ok_or(Errno::ESRCH)?;
                if !master && !self.is_ctty_of(&t.kernel, &c) {
                    return Err(Errno::ENOTTY);
                }
                let sid = self.ctty_sid(&t.kernel).ok_or(Errno::ENOTTY)?;
                Self::put_int(t, arg, sid)
            }
            TIOCSPGRP => {
                match self.job_check(t, libc::SIGTTOU) {
                    Err(e) if e == Errno::EIO => return Err(Errno::ENOTTY),
                    r => r?,
                }
                let pgrp = mm.read_u32(arg)? as i32;
                if pgrp < 0 {
                    return Err(Errno::EINVAL);
                }
                let c = caller(t).ok_or(Errno::ESRCH)?;
                if !self.is_ctty_of(&t.kernel, &c) {
                    return Err(Errno::ENOTTY);
                }
                let sid_of = {
                    let ts = t.kernel.ts();
                    ts.procs.values().find(|e| e.pgid == pgrp).map(|e| e.sid)
                };
                match sid_of {
                    None => Err(Errno::ESRCH),
                    Some(s) if s != c.sid => Err(Errno::EPERM),
                    Some(_) => {
                        self.st().fg_pgrp = pgrp;
                        Ok(0)
                    }
                }
            }
            TIOCEXCL | TIOCNXCL => {
                self.st().excl = cmd == TIOCEXCL;
                Ok(0)
            }
            TIOCGEXCL => {
                let v = self.st().excl as i32;
                Self::put_int(t, arg, v)
            }
            TIOCGETD => Self::put_int(t, arg, 0),
            TIOCSETD => match mm.read_u32(arg)? {
                0 => Ok(0),
                _ => Err(Errno::EINVAL),
            },
            TIOCSTI => {
                let mut b = [0u8; 1];
                mm.copy_in(arg, &mut b)?;
                if !t.creds().capable(crate::kernel::caps::CAP_SYS_ADMIN) {
                    let c = caller(t).ok_or(Errno::ESRCH)?;
                    if master || !self.is_ctty_of(&t.kernel, &c) {
                        return Err(Errno::EPERM);
                    }
                }
                let mut sigs = Vec::new();
                {
                    let mut st = self.st();
                    if master {
                        st.ld.outq.push_back(b[0]);
                    } else {
                        st.ld.simulate_input(b[0], &mut sigs);
                    }
                }
                self.queue.notify_all();
                self.deliver(t, &mut sigs);
                Ok(0)
            }
            TIOCGDEV => {
                let v = encode_dev(UNIX98_PTY_SLAVE_MAJOR + self.index / 256, self.index % 256);
                Self::put_int(t, arg, v as i32)
            }
            TIOCGLCKTRMIOS => Self::copy_out(t, arg, &[0u8; tty::TERMIOS_SIZE]),
            TIOCSLCKTRMIOS => {
                if !t.creds().capable(crate::kernel::caps::CAP_SYS_ADMIN) {
                    return Err(Errno::EPERM);
                }
                Ok(0)
            }
            _ => Err(Errno::ENOTTY),
        }
    }

    /// TIOCSCTTY (tiocsctty): a session leader without a controlling
    /// terminal makes this one its own; `arg` 1 lets a privileged caller
    /// steal it from another session.
    fn tiocsctty(&self, t: &Task, f: &File, arg: u64) -> KResult<u64> {
        let c = caller(t).ok_or(Errno::ESRCH)?;
        if c.leader() && self.is_ctty_of(&t.kernel, &c) {
            return Ok(0);
        }
        if !c.leader() || find_ctty(&t.kernel, c.sid).is_some() {
            return Err(Errno::EPERM);
        }
        let privileged = t.creds().capable(crate::kernel::caps::CAP_SYS_ADMIN);
        let mut st = self.st();
        if st
            .session
            .as_ref()
            .is_some_and(|s| session_alive(&t.kernel, s))
            && !(arg == 1 && privileged)
        {
            return Err(Errno::EPERM);
        }
        if !f.readable() && !privileged {
            return Err(Errno::EPERM);
        }
        st.session = Some(Session {
            sid: c.sid,
            leader: Arc::downgrade(&t.tg),
        });
        st.fg_pgrp = c.pgid;
        Ok(0)
    }
}

// ---------------------------------------------------------------------------
// The sandbox console's end (console.rs): a master the sentry drives for
// the host terminal, not a guest fd.
// ---------------------------------------------------------------------------

impl Pty {
    /// Notified on every change of either end.
    pub fn queue(&self) -> &WaitQueue {
        &self.queue
    }

    /// Output waiting for the master side.
    pub fn has_output(&self) -> bool {
        !self.st().ld.outq.is_empty()
    }

    /// A master read: takes output for the host terminal.
    pub fn take_output(&self, buf: &mut [u8]) -> usize {
        let n = self.st().ld.master_read(buf);
        if n > 0 {
            self.queue.notify_all();
        }
        n
    }

    /// A master write: input typed at the host terminal. Returns the bytes
    /// accepted; the signals its ISIG characters make go to the
    /// foreground process group.
    pub fn put_input(&self, buf: &[u8]) -> usize {
        let mut sigs = Vec::new();
        let n = self.st().ld.master_write(buf, &mut sigs);
        if n > 0 {
            self.queue.notify_all();
        }
        if let Some(k) = self.kernel.upgrade() {
            for sig in sigs {
                self.signal_fg(&k, sig);
            }
        }
        n
    }

    /// TIOCSWINSZ: a changed size sends SIGWINCH to the foreground group.
    pub fn set_winsize(&self, ws: [u8; 8]) {
        let changed = {
            let mut st = self.st();
            let changed = st.ld.winsize != ws;
            st.ld.winsize = ws;
            changed
        };
        if changed {
            if let Some(k) = self.kernel.upgrade() {
                self.signal_fg(&k, libc::SIGWINCH);
            }
        }
    }

    /// Makes this the controlling terminal of the session `leader` leads
    /// (its id `sid`), with `pgid` in the foreground: what a session
    /// leader's TIOCSCTTY does.
    pub fn set_controlling(&self, sid: i32, leader: &Arc<ThreadGroup>, pgid: i32) {
        let mut st = self.st();
        st.session = Some(Session {
            sid,
            leader: Arc::downgrade(leader),
        });
        st.fg_pgrp = pgid;
    }
}

impl DevPts {
    /// A new, unlocked pty pair whose master the sentry holds (the
    /// console); the slave node belongs to `uid`.
    pub fn new_console(&self, kernel: &Arc<Kernel>, uid: u32) -> KResult<Arc<MasterFile>> {
        let pty = self.new_pty(uid, Arc::downgrade(kernel))?;
        pty.st().locked = false;
        Ok(Arc::new(MasterFile {
            pty,
            node: self.ptmx_node(),
        }))
    }
}

// ---------------------------------------------------------------------------
// The two ends.
// ---------------------------------------------------------------------------

/// The master end (an open of /dev/ptmx).
pub struct MasterFile {
    pty: Arc<Pty>,
    /// The ptmx node it was opened through (what fstat shows).
    node: Arc<dyn Inode>,
}

impl MasterFile {
    pub fn pty(&self) -> &Arc<Pty> {
        &self.pty
    }
}

impl Drop for MasterFile {
    fn drop(&mut self) {
        self.pty.hangup();
    }
}

/// A slave end (an open of /dev/pts/N, TIOCGPTPEER or /dev/tty).
pub struct SlaveFile {
    pty: Arc<Pty>,
    /// The node it was opened through (what fstat shows).
    node: Arc<dyn Inode>,
}

impl SlaveFile {
    pub fn pty(&self) -> &Arc<Pty> {
        &self.pty
    }
}

impl Drop for SlaveFile {
    fn drop(&mut self) {
        {
            let mut st = self.pty.st();
            st.slave_count -= 1;
            if st.slave_count == 0 {
                st.slave_closed = true;
            }
        }
        self.pty.queue.notify_all();
    }
}

fn partial(done: usize, e: Errno) -> KResult<usize> {
    if done > 0 {
        Ok(done)
    } else {
        Err(e)
    }
}

impl FileOps for MasterFile {
    fn read(&self, t: &Task, f: &File, buf: &mut [u8], _off: u64) -> KResult<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let pty = &self.pty;
        t.block_until(&[&pty.queue], &[], None, || {
            let mut st = pty.st();
            if !st.ld.outq.is_empty() {
                let n = if st.packet {
                    buf[0] = 0; // TIOCPKT_DATA
                    1 + st.ld.master_read(&mut buf[1..])
                } else {
                    st.ld.master_read(buf)
                };
                drop(st);
                pty.queue.notify_all();
                return Some(Ok(n));
            }
            if st.slave_closed {
                return Some(Err(Errno::EIO));
            }
            if f.nonblocking() {
                return Some(Err(Errno::EAGAIN));
            }
            None
        })
    }

    fn write(&self, t: &Task, f: &File, buf: &[u8], _off: u64) -> KResult<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let pty = &self.pty;
        let mut written = 0;
        let r = t.block_until(&[&pty.queue], &[], None, || {
            let mut sigs = Vec::new();
            let mut st = pty.st();
            let n = if st.master_stopped {
                0
            } else {
                st.ld.master_write(&buf[written..], &mut sigs)
            };
            written += n;
            drop(st);
            if n > 0 {
                pty.queue.notify_all();
            }
            pty.deliver(t, &mut sigs);
            if written == buf.len() {
                return Some(Ok(written));
            }
            if f.nonblocking() {
                return Some(partial(written, Errno::EAGAIN));
            }
            None
        });
        match r {
            Err(e) if e.is_restart() && written > 0 => Ok(written),
            r => r,
        }
    }

    fn stat(&self) -> KResult<Stat> {
        self.node.stat()
    }

    fn ioctl(&self, t: &Task, f: &File, cmd: u32, arg: u64) -> KResult<u64> {
        let pty = &self.pty;
        match cmd {
            TIOCGPTN => Pty::put_int(t, arg, pty.index as i32),
            TIOCSPTLCK => {
                let v = t.mm().read_u32(arg)?;
                pty.st().locked = v != 0;
                Ok(0)
            }
            TIOCGPTLCK => {
                let v = pty.st().locked as i32;
                Pty::put_int(t, arg, v)
            }
            TIOCGPTPEER => self.open_peer(t, arg as u32),
            TIOCPKT => {
                let v = t.mm().read_u32(arg)?;
                pty.st().packet = v != 0;
                Ok(0)
            }
            TIOCGPKT => {
                let v = pty.st().packet as i32;
                Pty::put_int(t, arg, v)
            }
            TIOCSIG => {
                let sig = arg as i32;
                if !matches!(sig, libc::SIGINT | libc::SIGQUIT | libc::SIGTSTP) {
                    return Err(Errno::EINVAL);
                }
                pty.signal_fg(&t.kernel, sig);
                Ok(0)
            }
            _ => pty.ioctl(t, f, true, cmd, arg),
        }
    }

    fn readiness(&self, mask: u32) -> u32 {
        let st = self.pty.st();
        let mut r = 0;
        if !st.ld.outq.is_empty() {
            r |= POLLIN | POLLRDNORM;
        }
        if !st.master_stopped && st.ld.pending_room() > 0 {
            r |= POLLOUT | POLLWRNORM;
        }
        r &= mask;
        if st.slave_closed {
            r |= POLLHUP;
        }
        r
    }

    fn queue(&self) -> Option<&WaitQueue> {
        Some(&self.pty.queue)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl MasterFile {
    /// TIOCGPTPEER: opens the slave and installs it as a new fd.
    fn open_peer(&self, t: &Task, flags: u32) -> KResult<u64> {
        let allowed =
            (libc::O_ACCMODE | libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC) as u32;
        if flags & !allowed != 0 {
            return Err(Errno::EINVAL);
        }
        // The file gets the /dev/pts/N path (readlink of /proc/self/fd,
        // ttyname) when that names this very pty.
        let path = format!("/dev/pts/{}", self.pty.index);
        let dentry = {
            let fsc = t.fs_context();
            let fs = lock(&fsc);
            t.kernel
                .vfs
                .lookup(&fs, &fs.root.clone(), path.as_bytes(), true)
                .ok()
        }
        .filter(|d| {
            d.inode
                .as_any()
                .downcast_ref::<PtsNode>()
                .is_some_and(|n| Arc::ptr_eq(&n.pty, &self.pty))
        });
        let node: Arc<dyn Inode> = match &dentry {
            Some(d) => d.inode.clone(),
            None => Arc::new(PtsNode {
                pty: self.pty.clone(),
            }),
        };
        let ops = self.pty.open_slave(flags, node, Some(t))?;
        let file = File::new(ops, flags, dentry);
        let nofile = t.rlimit(libc::RLIMIT_NOFILE as i32).min(1 << 20) as usize;
        let cloexec = flags & libc::O_CLOEXEC as u32 != 0;
        Ok(t.fd_table().install_from(file, cloexec, 0, nofile)? as u64)
    }
}

impl FileOps for SlaveFile {
    fn read(&self, t: &Task, f: &File, buf: &mut [u8], _off: u64) -> KResult<usize> {
        let pty = &self.pty;
        if !pty.st().master_open {
            return Ok(0);
        }
        if buf.is_empty() {
            return Ok(0);
        }
        pty.job_check(t, libc::SIGTTIN)?;
        let (canon, vmin, vtime) = {
            let st = pty.st();
            let tio = &st.ld.termios;
            (
                st.ld.canon(),
                tio.cc[tty::VMIN] as usize,
                tio.cc[tty::VTIME] as u64,
            )
        };
        let tenths = |n: u64| Duration::from_millis(n * 100);
        // n_tty_read's minimum / inter-byte time / overall timeout.
        let (minimum, inter, mut deadline, no_wait) = if canon {
            (0, None, None, false)
        } else if vmin > 0 {
            (vmin, (vtime > 0).then(|| tenths(vtime)), None, false)
        } else {
            (1, None, Some(Instant::now() + tenths(vtime)), vtime == 0)
        };
        let mut got = 0usize;
        loop {
            let r = t.block_until(&[&pty.queue], &[], deadline, || {
                let mut sigs = Vec::new();
                let mut st = pty.st();
                if !st.master_open {
                    return Some(Ok(true));
                }
                if st.ld.slave_readable(false) {
                    let done = if st.ld.canon() {
                        got += st.ld.read_canon(&mut buf[got..]);
                        true
                    } else {
                        got += st.ld.read_raw(&mut buf[got..]);
                        got >= minimum || got == buf.len()
                    };
                    st.ld.process_input(&mut sigs);
                    drop(st);
                    pty.queue.notify_all();
                    pty.deliver(t, &mut sigs);
                    return Some(Ok(done));
                }
                if no_wait || got > 0 && f.nonblocking() {
                    return Some(Ok(true));
                }
                if f.nonblocking() {
                    return Some(Err(Errno::EAGAIN));
                }
                None
            });
            match r {
                Ok(true) => break,
                Ok(false) => {
                    if let Some(d) = inter {
                        deadline = Some(Instant::now() + d);
                    }
                }
                Err(e) if e == Errno::ETIMEDOUT => break,
                Err(e) => return partial(got, e),
            }
        }
        Ok(got)
    }

    fn write(&self, t: &Task, f: &File, buf: &[u8], _off: u64) -> KResult<usize> {
        let pty = &self.pty;
        let tostop = {
            let st = pty.st();
            if !st.master_open {
                return Err(Errno::EIO);
            }
            st.ld.termios.l(tty::TOSTOP)
        };
        if tostop {
            pty.job_check(t, libc::SIGTTOU)?;
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let mut written = 0;
        let r = t.block_until(&[&pty.queue], &[], None, || {
            let mut st = pty.st();
            if !st.master_open {
                return Some(partial(written, Errno::EIO));
            }
            let n = if st.ld.stopped {
                0
            } else {
                st.ld.slave_write(&buf[written..])
            };
            written += n;
            drop(st);
            if n > 0 {
                pty.queue.notify_all();
            }
            if written == buf.len() {
                return Some(Ok(written));
            }
            if f.nonblocking() {
                return Some(partial(written, Errno::EAGAIN));
            }
            None
        });
        match r {
            Err(e) if e.is_restart() && written > 0 => Ok(written),
            r => r,
        }
    }

    fn stat(&self) -> KResult<Stat> {
        self.node.stat()
    }

    fn ioctl(&self, t: &Task, f: &File, cmd: u32, arg: u64) -> KResult<u64> {
        if !self.pty.st().master_open {
            // hung_up_tty_ioctl
            return Err(if cmd == TIOCSPGRP {
                Errno::ENOTTY
            } else {
                Errno::EIO
            });
        }
        self.pty.ioctl(t, f, false, cmd, arg)
    }

    fn readiness(&self, mask: u32) -> u32 {
        let st = self.pty.st();
        if !st.master_open {
            return (mask & (POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM)) | POLLERR | POLLHUP;
        }
        let mut r = 0;
        if st.ld.slave_readable(true) {
            r |= POLLIN | POLLRDNORM;
        }
        if !st.ld.stopped && st.ld.output_room() > 0 {
            r |= POLLOUT | POLLWRNORM;
        }
        r & mask
    }

    fn queue(&self) -> Option<&WaitQueue> {
        Some(&self.pty.queue)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

// ---------------------------------------------------------------------------
// The filesystem: /dev/pts, its nodes, /dev/ptmx and /dev/tty.
// ---------------------------------------------------------------------------

/// One devpts instance: the /dev/pts directory and its ptys.
pub struct DevPts {
    this: Weak<DevPts>,
    dev: u64,
    fs_id: usize,
    meta: Mutex<Meta>,
    /// /dev/pts/ptmx's attributes.
    ptmx_meta: Arc<Mutex<Meta>>,
    /// Allocated indices (a pty keeps its index until both ends are gone).
    ptys: Mutex<BTreeMap<u32, Weak<Pty>>>,
}

impl DevPts {
    pub fn new() -> Arc<DevPts> {
        Arc::new_cyclic(|this| DevPts {
            this: this.clone(),
            dev: new_anon_dev(),
            fs_id: new_fs_id(),
            meta: Mutex::new(Meta::new(0o755, 0, 0)),
            ptmx_meta: Arc::new(Mutex::new(Meta::new(0o666, 0, 0))),
            ptys: Mutex::new(BTreeMap::new()),
        })
    }

    fn arc(&self) -> Arc<DevPts> {
        self.this.upgrade().expect("devpts in use")
    }

    /// A new pty pair for a task with fsuid `uid`.
    fn new_pty(&self, uid: u32, kernel: Weak<Kernel>) -> KResult<Arc<Pty>> {
        let mut m = lock(&self.ptys);
        let index = (0..PTY_MAX)
            .find(|i| !m.contains_key(i))
            .ok_or(Errno::ENOSPC)?;
        let pty = Arc::new(Pty {
            index,
            devpts: self.arc(),
            kernel,
            state: Mutex::new(PtyState {
                ld: Ldisc::new(),
                master_open: true,
                slave_count: 0,
                slave_closed: false,
                locked: true,
                fg_pgrp: 0,
                session: None,
                packet: false,
                excl: false,
                master_stopped: false,
            }),
            queue: WaitQueue::new(),
            meta: Mutex::new(Meta::new(PTS_MODE, uid, TTY_GID)),
        });
        m.insert(index, Arc::downgrade(&pty));
        drop(m);
        let mut all = lock(&ALL_PTYS);
        all.retain(|w| w.strong_count() > 0);
        all.push(Arc::downgrade(&pty));
        drop(all);
        Ok(pty)
    }

    /// The ptys whose master is open (what the directory lists).
    fn live(&self) -> Vec<Arc<Pty>> {
        let weak: Vec<Weak<Pty>> = lock(&self.ptys).values().cloned().collect();
        weak.iter()
            .filter_map(|w| w.upgrade())
            .filter(|p| p.st().master_open)
            .collect()
    }

    fn ptmx_node(&self) -> Arc<dyn Inode> {
        Arc::new(PtmxNode {
            devpts: self.arc(),
            ino: 2,
            dev: self.dev,
            fs_id: self.fs_id,
            meta: self.ptmx_meta.clone(),
        })
    }
}

/// /dev/ptmx, in /dev (with /dev's device and its own inode) — the pts
/// directory's ptmx is made on lookup.
pub fn ptmx_node(devpts: &Arc<DevPts>, dev: u64, fs_id: usize) -> Arc<dyn Inode> {
    Arc::new(PtmxNode {
        devpts: devpts.clone(),
        ino: next_ino(),
        dev,
        fs_id,
        meta: Arc::new(Mutex::new(Meta::new(0o666, 0, TTY_GID))),
    })
}

/// /dev/tty: the caller's controlling terminal.
pub fn tty_node(dev: u64, fs_id: usize) -> Arc<dyn Inode> {
    Arc::new(TtyNode {
        ino: next_ino(),
        dev,
        fs_id,
        meta: Mutex::new(Meta::new(0o666, 0, TTY_GID)),
    })
}

impl Inode for DevPts {
    fn stat(&self) -> KResult<Stat> {
        Ok(lock(&self.meta).stat(self.dev, 1, libc::S_IFDIR, 0))
    }

    fn lookup(&self, name: &[u8]) -> KResult<Arc<dyn Inode>> {
        if name == b"ptmx" {
            return Ok(self.ptmx_node());
        }
        let s = std::str::from_utf8(name).map_err(|_| Errno::ENOENT)?;
        if s.is_empty() || (s.len() > 1 && s.starts_with('0')) {
            return Err(Errno::ENOENT);
        }
        let index: u32 = s.parse().map_err(|_| Errno::ENOENT)?;
        let weak = lock(&self.ptys).get(&index).cloned();
        let pty = weak.and_then(|w| w.upgrade()).ok_or(Errno::ENOENT)?;
        if !pty.st().master_open {
            return Err(Errno::ENOENT);
        }
        Ok(Arc::new(PtsNode { pty }))
    }

    fn open(self: Arc<Self>, flags: u32) -> KResult<Arc<dyn FileOps>> {
        let perm = lock(&self.meta).perm;
        if check_open(libc::S_IFDIR | perm, flags)? {
            return Ok(PathFile::open(self));
        }
        Ok(super::DirFile::open(self))
    }

    fn readdir(&self) -> KResult<Vec<DirEntry>> {
        let mut v = vec![DirEntry {
            ino: 2,
            d_type: dtype_of_mode(libc::S_IFCHR),
            name: b"ptmx".to_vec(),
        }];
        v.extend(self.live().into_iter().map(|p| DirEntry {
            ino: p.index as u64 + 3,
            d_type: dtype_of_mode(libc::S_IFCHR),
            name: p.index.to_string().into_bytes(),
        }));
        Ok(v)
    }

    fn dir_write_error(&self) -> Errno {
        Errno::EPERM
    }

    fn set_mode(&self, mode: u32) -> KResult<()> {
        lock(&self.meta).set_mode(mode);
        Ok(())
    }

    fn set_owner(&self, uid: Option<u32>, gid: Option<u32>) -> KResult<()> {
        lock(&self.meta).set_owner(uid, gid);
        Ok(())
    }

    fn set_times(&self, atime: Option<Timespec>, mtime: Option<Timespec>) -> KResult<()> {
        lock(&self.meta).set_times(atime, mtime);
        Ok(())
    }

    fn truncate(&self, _len: u64) -> KResult<()> {
        Err(Errno::EISDIR)
    }

    fn fs_id(&self) -> usize {
        self.fs_id
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// /dev/pts/N.
pub struct PtsNode {
    pty: Arc<Pty>,
}

impl Inode for PtsNode {
    fn stat(&self) -> KResult<Stat> {
        Ok(self.pty.slave_stat())
    }

    fn open(self: Arc<Self>, flags: u32) -> KResult<Arc<dyn FileOps>> {
        let perm = lock(&self.pty.meta).perm;
        if check_open(libc::S_IFCHR | perm, flags)? {
            return Ok(PathFile::open(self));
        }
        let t = current();
        let pty = self.pty.clone();
        Ok(pty.open_slave(flags, self, t.as_deref())?)
    }

    fn set_mode(&self, mode: u32) -> KResult<()> {
        lock(&self.pty.meta).set_mode(mode);
        Ok(())
    }

    fn set_owner(&self, uid: Option<u32>, gid: Option<u32>) -> KResult<()> {
        lock(&self.pty.meta).set_owner(uid, gid);
        Ok(())
    }

    fn set_times(&self, atime: Option<Timespec>, mtime: Option<Timespec>) -> KResult<()> {
        lock(&self.pty.meta).set_times(atime, mtime);
        Ok(())
    }

    fn truncate(&self, _len: u64) -> KResult<()> {
        Ok(())
    }

    fn fs_id(&self) -> usize {
        self.pty.devpts.fs_id
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A ptmx node (5,2): every open is a new pty's master.
pub struct PtmxNode {
    devpts: Arc<DevPts>,
    ino: u64,
    dev: u64,
    fs_id: usize,
    meta: Arc<Mutex<Meta>>,
}

impl Inode for PtmxNode {
    fn stat(&self) -> KResult<Stat> {
        Ok(lock(&self.meta).stat(self.dev, self.ino, libc::S_IFCHR, makedev(TTYAUX_MAJOR, 2)))
    }

    fn open(self: Arc<Self>, flags: u32) -> KResult<Arc<dyn FileOps>> {
        let perm = lock(&self.meta).perm;
        if check_open(libc::S_IFCHR | perm, flags)? {
            return Ok(PathFile::open(self));
        }
        let t = current();
        let uid = t.as_ref().map(|t| t.creds().fsuid).unwrap_or(0);
        let kernel = t
            .as_ref()
            .map(|t| Arc::downgrade(&t.kernel))
            .unwrap_or_default();
        let pty = self.devpts.new_pty(uid, kernel)?;
        Ok(Arc::new(MasterFile { pty, node: self }))
    }

    fn set_mode(&self, mode: u32) -> KResult<()> {
        lock(&self.meta).set_mode(mode);
        Ok(())
    }

    fn set_owner(&self, uid: Option<u32>, gid: Option<u32>) -> KResult<()> {
        lock(&self.meta).set_owner(uid, gid);
        Ok(())
    }

    fn set_times(&self, atime: Option<Timespec>, mtime: Option<Timespec>) -> KResult<()> {
        lock(&self.meta).set_times(atime, mtime);
        Ok(())
    }

    fn truncate(&self, _len: u64) -> KResult<()> {
        Ok(())
    }

    fn fs_id(&self) -> usize {
        self.fs_id
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// /dev/tty (5,0).
pub struct TtyNode {
    ino: u64,
    dev: u64,
    fs_id: usize,
    meta: Mutex<Meta>,
}

impl Inode for TtyNode {
    fn stat(&self) -> KResult<Stat> {
        Ok(lock(&self.meta).stat(self.dev, self.ino, libc::S_IFCHR, makedev(TTYAUX_MAJOR, 0)))
    }

    fn open(self: Arc<Self>, flags: u32) -> KResult<Arc<dyn FileOps>> {
        let perm = lock(&self.meta).perm;
        if check_open(libc::S_IFCHR | perm, flags)? {
            return Ok(PathFile::open(self));
        }
        let t = current().ok_or(Errno::ENXIO)?;
        let c = caller(&t).ok_or(Errno::ENXIO)?;
        let pty = find_ctty(&t.kernel, c.sid).ok_or(Errno::ENXIO)?;
        Ok(pty.open_slave(flags | libc::O_NOCTTY as u32, self, Some(&t))?)
    }

    fn set_mode(&self, mode: u32) -> KResult<()> {
        lock(&self.meta).set_mode(mode);
        Ok(())
    }

    fn set_owner(&self, uid: Option<u32>, gid: Option<u32>) -> KResult<()> {
        lock(&self.meta).set_owner(uid, gid);
        Ok(())
    }

    fn set_times(&self, atime: Option<Timespec>, mtime: Option<Timespec>) -> KResult<()> {
        lock(&self.meta).set_times(atime, mtime);
        Ok(())
    }

    fn truncate(&self, _len: u64) -> KResult<()> {
        Ok(())
    }

    fn fs_id(&self) -> usize {
        self.fs_id
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RW: u32 = libc::O_RDWR as u32 | libc::O_NOCTTY as u32;

    fn master_of(ops: &Arc<dyn FileOps>) -> Arc<Pty> {
        ops.as_any()
            .downcast_ref::<MasterFile>()
            .unwrap()
            .pty
            .clone()
    }

    #[test]
    fn ptmx_creates_numbered_pairs() {
        let pts = DevPts::new();
        let ptmx = ptmx_node(&pts, 7, 7);
        let st = ptmx.stat().unwrap();
        assert_eq!(st.mode, libc::S_IFCHR | 0o666);
        assert_eq!(st.rdev, makedev(5, 2));
        let m0 = ptmx.clone().open(RW).unwrap();
        let m1 = pts.lookup(b"ptmx").unwrap().open(RW).unwrap();
        let (p0, p1) = (master_of(&m0), master_of(&m1));
        assert_eq!((p0.index(), p1.index()), (0, 1));
        let names: Vec<_> = pts.readdir().unwrap().into_iter().map(|e| e.name).collect();
        assert_eq!(names, vec![b"ptmx".to_vec(), b"0".to_vec(), b"1".to_vec()]);
        let n0 = pts.lookup(b"0").unwrap();
        let s = n0.stat().unwrap();
        assert_eq!(s.mode, libc::S_IFCHR | PTS_MODE);
        assert_eq!((s.gid, s.ino, s.rdev), (TTY_GID, 3, makedev(136, 0)));
        assert_eq!(pts.lookup(b"00").err(), Some(Errno::ENOENT));
        assert_eq!(pts.lookup(b"5").err(), Some(Errno::ENOENT));
        // Locked until TIOCSPTLCK.
        assert_eq!(n0.clone().open(RW).err(), Some(Errno::EIO));
        p0.st().locked = false;
        let s0 = n0.clone().open(RW).unwrap();
        assert_eq!(s0.stat().unwrap().ino, 3);
        // Closing the master removes the entry; the index stays taken
        // while the slave is open, then is reused.
        drop(m0);
        assert_eq!(pts.lookup(b"0").err(), Some(Errno::ENOENT));
        assert_eq!(
            s0.readiness(POLLIN | POLLOUT),
            POLLIN | POLLOUT | POLLERR | POLLHUP
        );
        let m2 = ptmx.clone().open(RW).unwrap();
        assert_eq!(master_of(&m2).index(), 2);
        drop((s0, p0, n0));
        let m3 = ptmx.clone().open(RW).unwrap();
        assert_eq!(master_of(&m3).index(), 0);
        drop((m1, p1));
        assert_eq!(pts.readdir().unwrap().len(), 3);
    }

    #[test]
    fn readiness_and_slave_close() {
        let pts = DevPts::new();
        let m = pts.lookup(b"ptmx").unwrap().open(RW).unwrap();
        let p = master_of(&m);
        p.st().locked = false;
        let all = POLLIN | POLLOUT;
        assert_eq!(m.readiness(all), POLLOUT);
        let s = pts.lookup(b"0").unwrap().open(RW).unwrap();
        assert_eq!(s.readiness(all), POLLOUT);
        p.st().ld.slave_write(b"x");
        assert_eq!(m.readiness(all), POLLIN | POLLOUT);
        let mut sigs = Vec::new();
        p.st().ld.master_write(b"y\n", &mut sigs);
        assert_eq!(s.readiness(all), POLLIN | POLLOUT);
        drop(s);
        assert_eq!(m.readiness(all) & POLLHUP, POLLHUP);
        // Reopening clears the hang-up.
        let _s = pts.lookup(b"0").unwrap().open(RW).unwrap();
        assert_eq!(m.readiness(all) & POLLHUP, 0);
    }

    #[test]
    fn tty_without_task_is_enxio() {
        let t = tty_node(1, 1);
        assert_eq!(t.stat().unwrap().rdev, makedev(5, 0));
        assert_eq!(t.open(RW).err(), Some(Errno::ENXIO));
    }
}
