//! procfs: the sandbox's /proc, generated from kernel data structures (the
//! task set, thread groups, memory managers, fd tables, the mount table)
//! and, for host facts, host system calls (sysinfo(2), cpuid) — never from
//! the host's own /proc, which the sentry cannot open under its seccomp
//! filter and which would show the host instead of the sandbox.
//!
//! Only the sandbox's PID namespace is visible: the first guest process is
//! PID 1, and /proc lists its thread groups (live and zombie).
//!
//! Files are generated when opened (a snapshot, like Linux's seq_file) and
//! read from that snapshot, so a reader sees one consistent state however
//! small its reads. They report size 0 as on Linux. Per-process entries
//! belong to the process's effective uid/gid and vanish (ENOENT) once the
//! process is reaped; an entry keeps the identity of the thread group it
//! was looked up for, so a reused PID never revives an old dentry.
//!
//! Layout: `root` (the /proc directory and /proc/self), `pid` (per-process
//! and per-thread directories), `fds` (fd/ and fdinfo/), `system`
//! (meminfo, cpuinfo, stat, …), `sys` (/proc/sys).

mod cgroup;
mod fds;
mod net;
mod pid;
mod root;
mod sys;
mod system;

use super::{check_open, new_anon_dev, new_fs_id, wants_write, DirFile, PathFile};
use crate::errno::{Errno, KResult};
use crate::kernel::task::{lock, Task, ThreadGroup};
use crate::kernel::{Creds, Kernel};
use crate::vfs::{dtype_of_mode, DirEntry, File, FileOps, Inode, Stat, Timespec};
use std::any::Any;
use std::sync::{Arc, Weak};
use std::time::Instant;

/// USER_HZ: the unit of the clock ticks /proc reports.
pub const USER_HZ: u64 = 100;

/// The /proc filesystem of `kernel`, to be mounted at /proc.
pub fn new_procfs(kernel: &Arc<Kernel>) -> Arc<dyn Inode> {
    root::new_root(&ProcFs::new(kernel, PROC_SUPER_MAGIC))
}

/// The container's cgroup as the guest sees it, to be mounted at
/// /sys/fs/cgroup (see `cgroup`).
pub fn new_cgroupfs(kernel: &Arc<Kernel>) -> Arc<dyn Inode> {
    cgroup::new_root(&ProcFs::new(kernel, CGROUP2_SUPER_MAGIC))
}

impl ProcFs {
    /// A new instance (its own device and inode space) over `kernel`.
    fn new(kernel: &Arc<Kernel>, magic: u64) -> Arc<ProcFs> {
        let since_boot = kernel.boot.elapsed();
        let now = Timespec::now();
        let boot_ns = (now.sec as i128 * 1_000_000_000 + now.nsec as i128)
            .saturating_sub(since_boot.as_nanos() as i128);
        Arc::new(ProcFs {
            kernel: Arc::downgrade(kernel),
            id: new_fs_id(),
            dev: new_anon_dev(),
            boot_wall: Timespec {
                sec: (boot_ns.div_euclid(1_000_000_000)) as i64,
                nsec: (boot_ns.rem_euclid(1_000_000_000)) as i64,
            },
            boot_id: random_uuid(),
            magic,
        })
    }
}

/// One mounted procfs.
pub(crate) struct ProcFs {
    /// Weak: the kernel owns the mount table that holds us.
    kernel: Weak<Kernel>,
    id: usize,
    dev: u64,
    /// Wall-clock time of the kernel's start (btime, inode times).
    boot_wall: Timespec,
    /// /proc/sys/kernel/random/boot_id: fixed for this boot.
    boot_id: String,
    /// statfs's f_type: PROC_SUPER_MAGIC, or CGROUP2_SUPER_MAGIC for the
    /// cgroup view.
    magic: u64,
}

const PROC_SUPER_MAGIC: u64 = 0x9fa0;
const CGROUP2_SUPER_MAGIC: u64 = 0x6367_7270;

impl ProcFs {
    fn kernel(&self) -> KResult<Arc<Kernel>> {
        self.kernel.upgrade().ok_or(Errno::ENOENT)
    }

    /// The wall-clock time of `t` (an instant after the kernel's start).
    fn wall_time(&self, k: &Kernel, t: Instant) -> Timespec {
        let d = t.saturating_duration_since(k.boot);
        let ns = self.boot_wall.nsec as u64 + d.subsec_nanos() as u64;
        Timespec {
            sec: self.boot_wall.sec + d.as_secs() as i64 + (ns / 1_000_000_000) as i64,
            nsec: (ns % 1_000_000_000) as i64,
        }
    }
}

/// Stable inode numbers: a hash of the entry's path inside /proc, so the
/// same entry looked up twice has the same number (find, fts and du
/// compare them) without a table that grows with every PID ever seen.
/// 1 is the root's, as on Linux.
pub(crate) fn ino_of(key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // Keep it positive as a signed 64-bit number (some programs print
    // st_ino as an off_t) and clear of 0 and 1.
    (h >> 1).max(2)
}

/// Fresh random bytes from the host.
pub(crate) fn random_bytes(buf: &mut [u8]) {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: getrandom writes at most the given length into buf.
        let n = unsafe {
            libc::getrandom(
                buf[done..].as_mut_ptr() as *mut libc::c_void,
                buf.len() - done,
                0,
            )
        };
        if n <= 0 {
            if n < 0 && Errno::last() == Errno::EINTR {
                continue;
            }
            break;
        }
        done += n as usize;
    }
}

/// A random (version 4) UUID in its text form.
pub(crate) fn random_uuid() -> String {
    let mut b = [0u8; 16];
    random_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: Vec<String> = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        h[0..4].concat(),
        h[4..6].concat(),
        h[6..8].concat(),
        h[8..10].concat(),
        h[10..16].concat()
    )
}

/// A thread group as /proc saw it when the entry was looked up: its PID
/// and its identity (PIDs are reused; thread groups are not).
#[derive(Clone)]
pub(crate) struct ProcRef {
    pub tgid: i32,
    tg: Weak<ThreadGroup>,
}

/// A consistent copy of what the task set knows about a process, taken
/// under the task-set lock and used without it.
pub(crate) struct ProcInfo {
    pub tgid: i32,
    pub tg: Arc<ThreadGroup>,
    pub ppid: i32,
    pub pgid: i32,
    pub sid: i32,
    /// The wait status of a zombie.
    pub zombie: Option<i32>,
    pub exit_signal: i32,
    pub children: Vec<i32>,
    /// Live threads, in creation order.
    pub threads: Vec<Arc<Task>>,
}

impl ProcRef {
    pub fn new(tgid: i32, tg: &Arc<ThreadGroup>) -> ProcRef {
        ProcRef {
            tgid,
            tg: Arc::downgrade(tg),
        }
    }

    /// The process's state, or ENOENT once it has been reaped.
    pub fn info(&self, k: &Kernel) -> KResult<ProcInfo> {
        let ts = k.ts();
        let e = ts.procs.get(&self.tgid).ok_or(Errno::ENOENT)?;
        if !std::ptr::eq(Arc::as_ptr(&e.tg), self.tg.as_ptr()) {
            return Err(Errno::ENOENT);
        }
        Ok(ProcInfo {
            tgid: self.tgid,
            tg: e.tg.clone(),
            ppid: e.parent,
            pgid: e.pgid,
            sid: e.sid,
            zombie: e.zombie,
            exit_signal: e.exit_signal,
            children: e.children.clone(),
            threads: ts.threads_of(self.tgid),
        })
    }

    fn exists(&self, k: &Kernel) -> bool {
        let ts = k.ts();
        ts.procs
            .get(&self.tgid)
            .is_some_and(|e| std::ptr::eq(Arc::as_ptr(&e.tg), self.tg.as_ptr()))
    }
}

impl ProcInfo {
    /// The thread `tid`, if it is one of ours and alive.
    pub fn thread(&self, tid: i32) -> Option<&Arc<Task>> {
        self.threads.iter().find(|t| t.tid == tid)
    }

    /// The thread that speaks for the process: the leader, or (when the
    /// leader has exited before the others) the first live thread.
    pub fn main(&self) -> Option<&Arc<Task>> {
        self.thread(self.tgid).or(self.threads.first())
    }

    /// The thread a view is about: `tid` for a task/<tid> view, else main.
    pub fn task(&self, tid: Option<i32>) -> Option<&Arc<Task>> {
        match tid {
            Some(t) => self.thread(t),
            None => self.main(),
        }
    }

    pub fn comm_of(&self, task: Option<&Arc<Task>>) -> Vec<u8> {
        match task {
            Some(t) => lock(&t.comm).clone(),
            None => lock(&self.tg.exit_info)
                .as_ref()
                .map(|(c, _)| c.clone())
                .unwrap_or_default(),
        }
    }

    pub fn creds_of(&self, task: Option<&Arc<Task>>) -> Creds {
        match task {
            Some(t) => t.creds(),
            None => lock(&self.tg.exit_info)
                .as_ref()
                .map(|(_, c)| c.clone())
                .unwrap_or_default(),
        }
    }
}

/// Who an entry belongs to, which decides its owner and its lifetime.
#[derive(Clone)]
pub(crate) enum Owner {
    /// System-wide: root's, there as long as the kernel.
    Kernel,
    /// A process's: its euid/egid; gone once it is reaped.
    Proc(ProcRef),
    /// One thread's (task/<tid>/…): gone once the thread exits.
    Thread(ProcRef, i32, Weak<Task>),
}

impl Owner {
    /// Whether the owner still exists.
    fn alive(&self, k: &Kernel) -> bool {
        match self {
            Owner::Kernel => true,
            Owner::Proc(p) => p.exists(k),
            Owner::Thread(_, tid, t) => k
                .ts()
                .tasks
                .get(tid)
                .is_some_and(|x| std::ptr::eq(Arc::as_ptr(x), t.as_ptr())),
        }
    }

    /// (uid, gid, creation time) of the owner's entries.
    fn attrs(&self, fs: &ProcFs, k: &Kernel) -> (u32, u32, Timespec) {
        let (p, tid) = match self {
            Owner::Kernel => return (0, 0, fs.boot_wall),
            Owner::Proc(p) => (p, None),
            Owner::Thread(p, tid, _) => (p, Some(*tid)),
        };
        match p.info(k) {
            Ok(info) => {
                let c = info.creds_of(info.task(tid));
                (c.euid, c.egid, fs.wall_time(k, info.tg.start))
            }
            Err(_) => (0, 0, fs.boot_wall),
        }
    }
}

/// Generates a file's content (or a symlink's target).
pub(crate) type Gen = Box<dyn Fn(&Arc<Kernel>) -> KResult<Vec<u8>> + Send + Sync>;
/// Applies a write to a writable file.
pub(crate) type Put = Box<dyn Fn(&Arc<Kernel>, &[u8]) -> KResult<()> + Send + Sync>;

/// A directory's contents.
pub(crate) trait DirOps: Send + Sync {
    fn list(&self, k: &Arc<Kernel>) -> KResult<Vec<DirEntry>>;
    fn lookup(&self, k: &Arc<Kernel>, name: &[u8]) -> KResult<Arc<dyn Inode>>;
}

pub(crate) enum Kind {
    Dir(Box<dyn DirOps>),
    File(Gen, Option<Put>),
    Link(Gen),
}

/// Every /proc entry: a directory, a generated file or a symlink.
pub(crate) struct Node {
    fs: Arc<ProcFs>,
    ino: u64,
    /// Permission bits; the type comes from `kind`.
    perm: u32,
    /// st_size (0 like Linux, except fd symlinks' 64).
    size: u64,
    owner: Owner,
    kind: Kind,
}

impl Node {
    pub fn new(fs: &Arc<ProcFs>, ino: u64, perm: u32, owner: Owner, kind: Kind) -> Arc<Node> {
        Arc::new(Node {
            fs: fs.clone(),
            ino,
            perm,
            size: 0,
            owner,
            kind,
        })
    }

    pub fn with_size(mut self: Arc<Self>, size: u64) -> Arc<Node> {
        if let Some(n) = Arc::get_mut(&mut self) {
            n.size = size;
        }
        self
    }

    fn fmt(&self) -> u32 {
        match self.kind {
            Kind::Dir(_) => libc::S_IFDIR,
            Kind::File(..) => libc::S_IFREG,
            Kind::Link(_) => libc::S_IFLNK,
        }
    }

    pub fn dtype(&self) -> u8 {
        dtype_of_mode(self.fmt())
    }

    pub fn ino(&self) -> u64 {
        self.ino
    }

    /// The kernel, if this entry still exists.
    fn live_kernel(&self) -> KResult<Arc<Kernel>> {
        let k = self.fs.kernel()?;
        if !self.owner.alive(&k) {
            return Err(Errno::ENOENT);
        }
        Ok(k)
    }

    fn writable(&self) -> bool {
        matches!(self.kind, Kind::File(_, Some(_)))
    }
}

impl Inode for Node {
    fn statfs(&self) -> KResult<crate::vfs::Statfs> {
        let mut st = crate::vfs::Statfs::synthetic(self.fs_id());
        st.fs_type = self.fs.magic;
        Ok(st)
    }

    fn stat(&self) -> KResult<Stat> {
        let k = self.live_kernel()?;
        let (uid, gid, t) = self.owner.attrs(&self.fs, &k);
        let nlink = match &self.kind {
            Kind::Dir(d) => {
                2 + d
                    .list(&k)
                    .map(|v| v.iter().filter(|e| e.d_type == libc::DT_DIR).count())
                    .unwrap_or(0) as u64
            }
            _ => 1,
        };
        Ok(Stat {
            dev: self.fs.dev,
            ino: self.ino,
            mode: self.fmt() | self.perm,
            nlink,
            uid,
            gid,
            rdev: 0,
            size: self.size,
            blksize: 1024,
            blocks: 0,
            atime: t,
            mtime: t,
            ctime: t,
        })
    }

    fn lookup(&self, name: &[u8]) -> KResult<Arc<dyn Inode>> {
        match &self.kind {
            Kind::Dir(d) => {
                let k = self.live_kernel()?;
                if name == b"." || name == b".." || name.is_empty() {
                    return Err(Errno::ENOENT);
                }
                d.lookup(&k, name)
            }
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn readdir(&self) -> KResult<Vec<DirEntry>> {
        match &self.kind {
            Kind::Dir(d) => d.list(&self.live_kernel()?),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn readlink(&self) -> KResult<Vec<u8>> {
        match &self.kind {
            Kind::Link(g) => g(&self.live_kernel()?),
            _ => Err(Errno::EINVAL),
        }
    }

    fn open(self: Arc<Self>, flags: u32) -> KResult<Arc<dyn FileOps>> {
        if check_open(self.fmt() | self.perm, flags)? {
            return Ok(PathFile::open(self));
        }
        let k = self.live_kernel()?;
        if wants_write(flags) && !self.writable() {
            return Err(Errno::EACCES);
        }
        match &self.kind {
            Kind::Dir(_) => Ok(DirFile::open(self)),
            Kind::Link(_) => Err(Errno::ELOOP),
            Kind::File(gen, _) => {
                let readable = flags & libc::O_ACCMODE as u32 != libc::O_WRONLY as u32;
                let data = if readable { gen(&k)? } else { Vec::new() };
                let st = self.stat()?;
                Ok(Arc::new(SeqFile {
                    node: self,
                    data,
                    st,
                }))
            }
        }
    }

    fn truncate(&self, _len: u64) -> KResult<()> {
        // open(O_TRUNC) of a writable file (`echo 5 > oom_score_adj`) is
        // fine; the rest refuse writers.
        if self.writable() {
            Ok(())
        } else {
            Err(Errno::EACCES)
        }
    }

    fn create(&self, _name: &[u8], _mode: u32, _uid: u32, _gid: u32) -> KResult<Arc<dyn Inode>> {
        Err(self.no_create())
    }
    fn mkdir(&self, _name: &[u8], _mode: u32, _uid: u32, _gid: u32) -> KResult<()> {
        Err(self.no_create())
    }
    fn symlink(&self, _name: &[u8], _target: &[u8], _uid: u32, _gid: u32) -> KResult<()> {
        Err(self.no_create())
    }
    fn link(&self, _name: &[u8], _target: &Arc<dyn Inode>) -> KResult<()> {
        Err(self.no_create())
    }
    fn unlink(&self, _name: &[u8]) -> KResult<()> {
        Err(self.no_remove())
    }
    fn rmdir(&self, _name: &[u8]) -> KResult<()> {
        Err(self.no_remove())
    }
    fn rename(&self, _name: &[u8], _new_dir: &Arc<dyn Inode>, _new_name: &[u8]) -> KResult<()> {
        Err(self.no_remove())
    }
    fn set_mode(&self, _mode: u32) -> KResult<()> {
        Err(Errno::EPERM)
    }
    fn set_owner(&self, _uid: Option<u32>, _gid: Option<u32>) -> KResult<()> {
        Err(Errno::EPERM)
    }
    fn set_times(&self, _atime: Option<Timespec>, _mtime: Option<Timespec>) -> KResult<()> {
        Err(Errno::EPERM)
    }
    fn fs_id(&self) -> usize {
        self.fs.id
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Node {
    /// Linux: a directory without ->create is EACCES; a file is ENOTDIR.
    fn no_create(&self) -> Errno {
        match self.kind {
            Kind::Dir(_) => Errno::EACCES,
            _ => Errno::ENOTDIR,
        }
    }
    fn no_remove(&self) -> Errno {
        match self.kind {
            Kind::Dir(_) => Errno::EPERM,
            _ => Errno::ENOTDIR,
        }
    }
}

/// An open /proc file: the content generated at open.
struct SeqFile {
    node: Arc<Node>,
    data: Vec<u8>,
    /// The attributes at open, for fstat once the process is gone.
    st: Stat,
}

impl FileOps for SeqFile {
    fn read(&self, _t: &Task, _f: &File, buf: &mut [u8], off: u64) -> KResult<usize> {
        let off = off.min(self.data.len() as u64) as usize;
        let n = buf.len().min(self.data.len() - off);
        buf[..n].copy_from_slice(&self.data[off..off + n]);
        Ok(n)
    }
    fn write(&self, _t: &Task, _f: &File, buf: &[u8], _off: u64) -> KResult<usize> {
        match &self.node.kind {
            Kind::File(_, Some(put)) => {
                let k = self.node.live_kernel().map_err(|_| Errno::ESRCH)?;
                put(&k, buf)?;
                Ok(buf.len())
            }
            _ => Err(Errno::EBADF),
        }
    }
    fn seekable(&self) -> bool {
        true
    }
    fn stat(&self) -> KResult<Stat> {
        Ok(self.node.stat().unwrap_or_else(|_| self.st.clone()))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A directory of fixed names, each built on demand.
pub(crate) struct Table {
    entries: Vec<(&'static str, Builder)>,
}

pub(crate) type Builder = Box<dyn Fn() -> Arc<Node> + Send + Sync>;

impl Table {
    pub fn new(entries: Vec<(&'static str, Builder)>) -> Table {
        Table { entries }
    }
}

impl DirOps for Table {
    fn list(&self, _k: &Arc<Kernel>) -> KResult<Vec<DirEntry>> {
        Ok(self
            .entries
            .iter()
            .map(|(name, b)| {
                let n = b();
                DirEntry {
                    ino: n.ino,
                    d_type: n.dtype(),
                    name: name.as_bytes().to_vec(),
                }
            })
            .collect())
    }
    fn lookup(&self, _k: &Arc<Kernel>, name: &[u8]) -> KResult<Arc<dyn Inode>> {
        self.entries
            .iter()
            .find(|(n, _)| n.as_bytes() == name)
            .map(|(_, b)| b() as Arc<dyn Inode>)
            .ok_or(Errno::ENOENT)
    }
}

/// Builders for the common shapes of entry, keyed by their path in /proc
/// (which gives the inode number).
pub(crate) fn file(
    fs: &Arc<ProcFs>,
    key: &str,
    owner: &Owner,
    gen: impl Fn(&Arc<Kernel>) -> KResult<Vec<u8>> + Send + Sync + 'static,
) -> Arc<Node> {
    Node::new(
        fs,
        ino_of(key),
        0o444,
        owner.clone(),
        Kind::File(Box::new(gen), None),
    )
}

pub(crate) fn rw_file(
    fs: &Arc<ProcFs>,
    key: &str,
    owner: &Owner,
    gen: impl Fn(&Arc<Kernel>) -> KResult<Vec<u8>> + Send + Sync + 'static,
    put: impl Fn(&Arc<Kernel>, &[u8]) -> KResult<()> + Send + Sync + 'static,
) -> Arc<Node> {
    Node::new(
        fs,
        ino_of(key),
        0o644,
        owner.clone(),
        Kind::File(Box::new(gen), Some(Box::new(put))),
    )
}

pub(crate) fn link(
    fs: &Arc<ProcFs>,
    key: &str,
    owner: &Owner,
    gen: impl Fn(&Arc<Kernel>) -> KResult<Vec<u8>> + Send + Sync + 'static,
) -> Arc<Node> {
    Node::new(
        fs,
        ino_of(key),
        0o777,
        owner.clone(),
        Kind::Link(Box::new(gen)),
    )
}

pub(crate) fn dir(
    fs: &Arc<ProcFs>,
    key: &str,
    perm: u32,
    owner: &Owner,
    ops: impl DirOps + 'static,
) -> Arc<Node> {
    Node::new(
        fs,
        ino_of(key),
        perm,
        owner.clone(),
        Kind::Dir(Box::new(ops)),
    )
}

/// A file whose content is fixed text.
pub(crate) fn text(fs: &Arc<ProcFs>, key: &str, owner: &Owner, s: String) -> Arc<Node> {
    file(fs, key, owner, move |_| Ok(s.clone().into_bytes()))
}

/// Parses a decimal integer written to a /proc file ("5\n").
pub(crate) fn parse_int(buf: &[u8]) -> KResult<i64> {
    std::str::from_utf8(buf)
        .map_err(|_| Errno::EINVAL)?
        .trim()
        .parse::<i64>()
        .map_err(|_| Errno::EINVAL)
}

#[cfg(test)]
mod tests;
