//! /proc/<pid>/ and /proc/<pid>/task/<tid>/: one process's (or thread's)
//! status, memory map, command line, limits, namespaces and links to its
//! executable, working directory and root.

use super::{
    dir, fds, file, ino_of, link, parse_int, rw_file, system, Builder, DirOps, Kind, Node, Owner,
    ProcFs, ProcInfo, ProcRef, Table, USER_HZ,
};
use crate::errno::{Errno, KResult};
use crate::kernel::signal::{NSIG, SIG_DFL, SIG_IGN};
use crate::kernel::task::{current, lock, Task, RLIM_INFINITY};
use crate::kernel::Kernel;
use crate::mm::memory_file::{page_up, PAGE};
use crate::mm::{MemoryManager, PROT_EXEC, PROT_READ, PROT_WRITE};
use crate::vfs::{Dentry, DirEntry, FsContext, Inode};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// What one /proc/<pid> (or task/<tid>) directory is about.
#[derive(Clone)]
pub(super) struct View {
    pub fs: Arc<ProcFs>,
    pub p: ProcRef,
    /// Some(tid): one thread's view (task/<tid>/, or /proc/<tid> for a
    /// thread that does not lead its group); None: the whole process.
    pub tid: Option<i32>,
    /// The directory's path inside /proc (for inode numbers).
    pub key: String,
    pub owner: Owner,
}

impl View {
    pub fn info(&self, k: &Kernel) -> KResult<ProcInfo> {
        self.p.info(k)
    }

    pub fn key_of(&self, name: &str) -> String {
        format!("{}/{}", self.key, name)
    }

    /// The thread the view is about (ENOENT once it is gone; None for a
    /// zombie's group view).
    pub(super) fn task_of<'a>(&self, info: &'a ProcInfo) -> KResult<Option<&'a Arc<Task>>> {
        match self.tid {
            Some(t) => info.thread(t).map(Some).ok_or(Errno::ENOENT),
            None => Ok(info.main()),
        }
    }
}

/// The inode number of /proc/<pid> (`task_of`: None) or of
/// /proc/<tgid>/task/<tid> (`task_of`: Some(tgid)).
pub(super) fn pid_dir_ino(pid: i32, task_of: Option<i32>) -> u64 {
    match task_of {
        Some(tgid) => ino_of(&format!("{tgid}/task/{pid}")),
        None => ino_of(&pid.to_string()),
    }
}

/// The directory of process `p`; with `tid`, of that thread (`in_task`:
/// as /proc/<tgid>/task/<tid>, else as /proc/<tid>).
pub(super) fn new_pid_dir(
    fs: &Arc<ProcFs>,
    p: ProcRef,
    tid: Option<(i32, std::sync::Weak<Task>)>,
    in_task: bool,
) -> Arc<Node> {
    let (key, owner, tid) = match tid {
        Some((t, w)) => (
            if in_task {
                format!("{}/task/{}", p.tgid, t)
            } else {
                t.to_string()
            },
            Owner::Thread(p.clone(), t, w),
            Some(t),
        ),
        None => (p.tgid.to_string(), Owner::Proc(p.clone()), None),
    };
    let v = View {
        fs: fs.clone(),
        p,
        tid,
        key: key.clone(),
        owner: owner.clone(),
    };
    dir(fs, &key, 0o555, &owner, Table::new(entries(&v, in_task)))
}

type GenFn = fn(&View, &Arc<Kernel>) -> KResult<Vec<u8>>;

fn gen_entry(v: &View, name: &'static str, g: GenFn) -> (&'static str, Builder) {
    let v = v.clone();
    (
        name,
        Box::new(move || {
            let v2 = v.clone();
            file(&v.fs, &v.key_of(name), &v.owner, move |k| g(&v2, k))
        }),
    )
}

fn link_entry(v: &View, name: &'static str, g: GenFn) -> (&'static str, Builder) {
    let v = v.clone();
    (
        name,
        Box::new(move || {
            let v2 = v.clone();
            link(&v.fs, &v.key_of(name), &v.owner, move |k| g(&v2, k))
        }),
    )
}

fn entries(v: &View, in_task: bool) -> Vec<(&'static str, Builder)> {
    let mut e: Vec<(&'static str, Builder)> = vec![
        gen_entry(v, "auxv", gen_auxv),
        gen_entry(v, "cgroup", |_, _| Ok(b"0::/\n".to_vec())),
    ];
    if in_task {
        e.push(gen_entry(v, "children", gen_children));
    }
    e.push(gen_entry(v, "cmdline", gen_cmdline));
    {
        let v = v.clone();
        e.push((
            "comm",
            Box::new(move || {
                let (v1, v2) = (v.clone(), v.clone());
                rw_file(
                    &v.fs,
                    &v.key_of("comm"),
                    &v.owner,
                    move |k| gen_comm(&v1, k),
                    move |k, buf| put_comm(&v2, k, buf),
                )
            }),
        ));
    }
    e.push(link_entry(v, "cwd", gen_cwd));
    e.push(gen_entry(v, "environ", gen_environ));
    e.push(link_entry(v, "exe", gen_exe));
    {
        let v = v.clone();
        e.push(("fd", Box::new(move || fds::new_fd_dir(&v))));
    }
    {
        let v = v.clone();
        e.push(("fdinfo", Box::new(move || fds::new_fdinfo_dir(&v))));
    }
    e.push(gen_entry(v, "limits", gen_limits));
    e.push(gen_entry(v, "loginuid", |_, _| Ok(b"4294967295".to_vec())));
    e.push(gen_entry(v, "maps", gen_maps));
    e.push(gen_entry(v, "mountinfo", |_, k| Ok(system::mountinfo(k))));
    e.push(gen_entry(v, "mounts", |_, k| Ok(system::mounts(k))));
    {
        let v = v.clone();
        e.push(("ns", Box::new(move || new_ns_dir(&v))));
    }
    e.push(gen_entry(v, "oom_score", |_, _| Ok(b"0\n".to_vec())));
    {
        let v = v.clone();
        e.push((
            "oom_score_adj",
            Box::new(move || {
                let (v1, v2) = (v.clone(), v.clone());
                rw_file(
                    &v.fs,
                    &v.key_of("oom_score_adj"),
                    &v.owner,
                    move |k| {
                        let info = v1.info(k)?;
                        Ok(
                            format!("{}\n", info.tg.oom_score_adj.load(Ordering::Relaxed))
                                .into_bytes(),
                        )
                    },
                    move |k, buf| {
                        let n = parse_int(buf)?;
                        if !(-1000..=1000).contains(&n) {
                            return Err(Errno::EINVAL);
                        }
                        let info = v2.info(k)?;
                        info.tg.oom_score_adj.store(n as i32, Ordering::Relaxed);
                        Ok(())
                    },
                )
            }),
        ));
    }
    e.push(link_entry(v, "root", gen_root));
    e.push(gen_entry(v, "sessionid", |_, _| Ok(b"4294967295".to_vec())));
    e.push(gen_entry(v, "smaps", gen_smaps));
    e.push(gen_entry(v, "smaps_rollup", gen_smaps_rollup));
    e.push(gen_entry(v, "stat", gen_stat));
    e.push(gen_entry(v, "statm", gen_statm));
    e.push(gen_entry(v, "status", gen_status));
    if !in_task {
        let v = v.clone();
        e.push((
            "task",
            Box::new(move || {
                dir(
                    &v.fs,
                    &v.key_of("task"),
                    0o555,
                    &v.owner,
                    TaskDir { v: v.clone() },
                )
            }),
        ));
    }
    e.push(gen_entry(v, "wchan", |_, _| Ok(b"0".to_vec())));
    e
}

/// task/: one directory per live thread.
struct TaskDir {
    v: View,
}

impl DirOps for TaskDir {
    fn list(&self, k: &Arc<Kernel>) -> KResult<Vec<DirEntry>> {
        let info = self.v.info(k)?;
        let mut tids: Vec<i32> = info.threads.iter().map(|t| t.tid).collect();
        if let Some(t) = self.v.tid {
            // /proc/<tid>/task of a non-leader shows that thread only.
            tids.retain(|&x| x == t);
        }
        Ok(tids
            .into_iter()
            .map(|t| DirEntry {
                ino: pid_dir_ino(t, Some(info.tgid)),
                d_type: libc::DT_DIR,
                name: t.to_string().into_bytes(),
            })
            .collect())
    }

    fn lookup(&self, k: &Arc<Kernel>, name: &[u8]) -> KResult<Arc<dyn Inode>> {
        let tid = super::root::parse_pid(name).ok_or(Errno::ENOENT)?;
        if self.v.tid.is_some_and(|t| t != tid) {
            return Err(Errno::ENOENT);
        }
        let info = self.v.info(k)?;
        let t = info.thread(tid).ok_or(Errno::ENOENT)?;
        Ok(new_pid_dir(
            &self.v.fs,
            self.v.p.clone(),
            Some((tid, Arc::downgrade(t))),
            true,
        ))
    }
}

// ---------------------------------------------------------------------------
// Namespaces.
// ---------------------------------------------------------------------------

/// Our namespaces, one of each kind, with the inode numbers Linux gives
/// its initial ones (the sandbox is the only world the guest sees).
const NAMESPACES: &[(&str, &str, u64)] = &[
    ("cgroup", "cgroup", 0xEFFF_FFFB),
    ("ipc", "ipc", 0xEFFF_FFFF),
    ("mnt", "mnt", 0xEFFF_FFF8),
    ("net", "net", 0xEFFF_FFF9),
    ("pid", "pid", 0xEFFF_FFFC),
    ("pid_for_children", "pid", 0xEFFF_FFFC),
    ("time", "time", 0xEFFF_FFFA),
    ("time_for_children", "time", 0xEFFF_FFFA),
    ("user", "user", 0xEFFF_FFFD),
    ("uts", "uts", 0xEFFF_FFFE),
];

struct NsDir {
    v: View,
}

fn new_ns_dir(v: &View) -> Arc<Node> {
    dir(
        &v.fs,
        &v.key_of("ns"),
        0o511,
        &v.owner,
        NsDir { v: v.clone() },
    )
}

impl NsDir {
    fn link_node(&self, name: &str, target: String) -> Arc<Node> {
        link(
            &self.v.fs,
            &self.v.key_of(&format!("ns/{name}")),
            &self.v.owner,
            move |_| Ok(target.clone().into_bytes()),
        )
    }
}

impl DirOps for NsDir {
    fn list(&self, _k: &Arc<Kernel>) -> KResult<Vec<DirEntry>> {
        Ok(NAMESPACES
            .iter()
            .map(|(name, kind, inum)| {
                let n = self.link_node(name, format!("{kind}:[{inum}]"));
                DirEntry {
                    ino: n.ino(),
                    d_type: n.dtype(),
                    name: name.as_bytes().to_vec(),
                }
            })
            .collect())
    }

    fn lookup(&self, _k: &Arc<Kernel>, name: &[u8]) -> KResult<Arc<dyn Inode>> {
        if let Some((n, kind, inum)) = NAMESPACES.iter().find(|(n, _, _)| n.as_bytes() == name) {
            return Ok(self.link_node(n, format!("{kind}:[{inum}]")));
        }
        // Following a link ("pid:[4026531836]", relative to this
        // directory) reaches the namespace itself: a file whose inode
        // number is the namespace's, for stat -L and comparisons.
        let inum = NAMESPACES
            .iter()
            .find(|(_, kind, inum)| format!("{kind}:[{inum}]").as_bytes() == name)
            .map(|(_, _, inum)| *inum)
            .ok_or(Errno::ENOENT)?;
        Ok(Node::new(
            &self.v.fs,
            inum,
            0o444,
            self.v.owner.clone(),
            Kind::File(Box::new(|_| Ok(Vec::new())), None),
        ))
    }
}

// ---------------------------------------------------------------------------
// Memory.
// ---------------------------------------------------------------------------

/// One mapping as /proc shows it (adjacent VMAs Linux would have merged
/// are shown merged).
#[derive(Clone)]
struct MapEntry {
    start: u64,
    end: u64,
    prot: i32,
    shared: bool,
    growsdown: bool,
    name: Option<Arc<str>>,
    file_off: u64,
    /// Bytes of the range that are backed by allocated memory.
    rss: u64,
}

impl MapEntry {
    fn is_file(&self) -> bool {
        self.name.as_deref().is_some_and(|n| !n.starts_with('['))
    }
    fn is_stack(&self) -> bool {
        self.growsdown || self.name.as_deref() == Some("[stack]")
    }
    fn size(&self) -> u64 {
        self.end - self.start
    }
    fn perms(&self) -> String {
        let mut s = String::with_capacity(4);
        s.push(if self.prot & PROT_READ != 0 { 'r' } else { '-' });
        s.push(if self.prot & PROT_WRITE != 0 {
            'w'
        } else {
            '-'
        });
        s.push(if self.prot & PROT_EXEC != 0 { 'x' } else { '-' });
        s.push(if self.shared { 's' } else { 'p' });
        s
    }
}

struct MmSnapshot {
    maps: Vec<MapEntry>,
    brk_start: u64,
    arg_start: u64,
    arg_end: u64,
    env_start: u64,
    env_end: u64,
    exe: Option<Arc<str>>,
}

/// Bytes of memory-file range `[off, off+len)` that hold allocated pages
/// (SEEK_DATA/SEEK_HOLE on the memory file): what the guest has touched
/// or the loader filled, i.e. its resident memory. Pages shared with
/// another process after fork count for both, as Linux's Rss does.
pub(super) fn resident_bytes(fd: i32, off: u64, len: u64) -> u64 {
    let end = off + len;
    let mut pos = off;
    let mut total = 0;
    while pos < end {
        // SAFETY: lseek on the memory file's fd with plain integers.
        let data = unsafe { libc::lseek(fd, pos as i64, libc::SEEK_DATA) };
        if data < 0 || data as u64 >= end {
            break;
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        let hole = if hole < 0 {
            end
        } else {
            (hole as u64).min(end)
        };
        total += hole - data as u64;
        pos = hole;
    }
    total
}

fn snapshot_mm(mm: &MemoryManager) -> MmSnapshot {
    let (vmas, snap) = {
        let st = mm.lock();
        let vmas: Vec<(MapEntry, Option<u64>)> = st
            .vmas
            .values()
            .map(|v| {
                (
                    MapEntry {
                        start: v.start,
                        end: v.end,
                        prot: v.prot,
                        shared: v.shared,
                        growsdown: v.growsdown,
                        name: v.name.clone(),
                        file_off: v.file_off,
                        rss: 0,
                    },
                    if v.reserved {
                        None
                    } else {
                        Some(v.ext.off + v.ext_off)
                    },
                )
            })
            .collect();
        (
            vmas,
            MmSnapshot {
                maps: Vec::new(),
                brk_start: st.brk_start,
                arg_start: st.arg_start,
                arg_end: st.arg_end,
                env_start: st.env_start,
                env_end: st.env_end,
                exe: st.exe.clone(),
            },
        )
    };
    // The host calls run without the mm lock.
    let fd = mm.mf.fd();
    let mut maps: Vec<MapEntry> = Vec::with_capacity(vmas.len());
    for (mut m, back) in vmas {
        m.rss = back.map_or(0, |b| resident_bytes(fd, b, m.end - m.start));
        if let Some(prev) = maps.last_mut() {
            let contiguous_file =
                !m.is_file() || prev.file_off + (prev.end - prev.start) == m.file_off;
            if prev.end == m.start
                && prev.prot == m.prot
                && prev.shared == m.shared
                && prev.growsdown == m.growsdown
                && prev.name == m.name
                && contiguous_file
            {
                prev.end = m.end;
                prev.rss += m.rss;
                continue;
            }
        }
        maps.push(m);
    }
    MmSnapshot { maps, ..snap }
}

/// Totals over a snapshot, in bytes, classified as Linux's status does.
#[derive(Default)]
struct MmTotals {
    vsize: u64,
    rss: u64,
    rss_anon: u64,
    rss_file: u64,
    rss_shmem: u64,
    data: u64,
    stack: u64,
    exe: u64,
    lib: u64,
    start_code: u64,
    end_code: u64,
    start_data: u64,
    end_data: u64,
    start_stack: u64,
}

fn totals(s: &MmSnapshot) -> MmTotals {
    let mut t = MmTotals::default();
    let exe = s.exe.as_deref();
    for m in &s.maps {
        t.vsize += m.size();
        t.rss += m.rss;
        if m.is_file() {
            t.rss_file += m.rss;
        } else if m.shared {
            t.rss_shmem += m.rss;
        } else {
            t.rss_anon += m.rss;
        }
        if m.is_stack() {
            t.stack += m.size();
            t.start_stack = t.start_stack.max(m.end);
        } else if m.prot & PROT_WRITE != 0 && !m.shared {
            t.data += m.size();
        }
        let own = m.is_file() && m.name.as_deref() == exe;
        if m.prot & PROT_EXEC != 0 && m.is_file() {
            if own {
                t.exe += m.size();
                if t.start_code == 0 {
                    t.start_code = m.start;
                }
                t.end_code = t.end_code.max(m.end);
            } else {
                t.lib += m.size();
            }
        }
        if own && m.prot & PROT_WRITE != 0 {
            if t.start_data == 0 {
                t.start_data = m.start;
            }
            t.end_data = t.end_data.max(m.end);
        }
    }
    t
}

/// The memory snapshot of the thread a view is about (None: a zombie).
fn view_mm(v: &View, k: &Kernel) -> KResult<Option<MmSnapshot>> {
    let info = v.info(k)?;
    if info.zombie.is_some() {
        return Ok(None);
    }
    Ok(v.task_of(&info)?.map(|t| snapshot_mm(&t.mm())))
}

/// (dev, ino) of the files mapped, looked up by path in the VFS.
fn file_ids(k: &Kernel, maps: &[MapEntry]) -> HashMap<Arc<str>, (u64, u64)> {
    let fsc = FsContext {
        root: k.vfs.root(),
        cwd: k.vfs.root(),
        umask: 0,
    };
    let mut out = HashMap::new();
    for m in maps.iter().filter(|m| m.is_file()) {
        let Some(name) = &m.name else { continue };
        if out.contains_key(name) {
            continue;
        }
        let ids = k
            .vfs
            .lookup(&fsc, &fsc.root, name.as_bytes(), true)
            .and_then(|d| d.inode.stat())
            .map(|s| (s.dev, s.ino))
            .unwrap_or((0, 0));
        out.insert(name.clone(), ids);
    }
    out
}

/// One maps line: `start-end perms offset dev inode`, the name in column 73.
fn map_line(out: &mut String, m: &MapEntry, ids: &HashMap<Arc<str>, (u64, u64)>) {
    let (dev, ino) = m
        .name
        .as_ref()
        .and_then(|n| ids.get(n))
        .copied()
        .unwrap_or((0, 0));
    let off = if m.is_file() { m.file_off } else { 0 };
    let start = out.len();
    let _ = write!(
        out,
        "{:08x}-{:08x} {} {:08x} {:02x}:{:02x} {} ",
        m.start,
        m.end,
        m.perms(),
        off,
        crate::vfs::major(dev),
        crate::vfs::minor(dev),
        ino
    );
    if let Some(n) = &m.name {
        let width = 25 + 6 * 8 - 1;
        while out.len() - start < width {
            out.push(' ');
        }
        out.push(' ');
        out.push_str(n);
    }
    out.push('\n');
}

fn gen_maps(v: &View, k: &Arc<Kernel>) -> KResult<Vec<u8>> {
    let Some(s) = view_mm(v, k)? else {
        return Ok(Vec::new());
    };
    let ids = file_ids(k, &s.maps);
    let mut out = String::new();
    for m in &s.maps {
        map_line(&mut out, m, &ids);
    }
    Ok(out.into_bytes())
}

fn kb_line(out: &mut String, name: &str, bytes: u64) {
    let _ = writeln!(out, "{:<16}{:>8} kB", format!("{name}:"), bytes >> 10);
}

/// The smaps counters of one mapping (or of a sum of them).
fn smaps_counters(out: &mut String, rss: u64, anon: u64, shared: u64) {
    let private = rss - shared;
    kb_line(out, "Rss", rss);
    kb_line(out, "Pss", rss);
    kb_line(out, "Pss_Dirty", rss);
    kb_line(out, "Shared_Clean", 0);
    kb_line(out, "Shared_Dirty", shared);
    kb_line(out, "Private_Clean", 0);
    kb_line(out, "Private_Dirty", private);
    kb_line(out, "Referenced", rss);
    kb_line(out, "Anonymous", anon);
    for name in [
        "KSM",
        "LazyFree",
        "AnonHugePages",
        "ShmemPmdMapped",
        "FilePmdMapped",
        "Shared_Hugetlb",
        "Private_Hugetlb",
        "Swap",
        "SwapPss",
        "Locked",
    ] {
        kb_line(out, name, 0);
    }
}

fn gen_smaps(v: &View, k: &Arc<Kernel>) -> KResult<Vec<u8>> {
    let Some(s) = view_mm(v, k)? else {
        return Ok(Vec::new());
    };
    let ids = file_ids(k, &s.maps);
    let mut out = String::new();
    for m in &s.maps {
        map_line(&mut out, m, &ids);
        kb_line(&mut out, "Size", m.size());
        kb_line(&mut out, "KernelPageSize", PAGE);
        kb_line(&mut out, "MMUPageSize", PAGE);
        // Every page is ours alone once touched (fork copies), except
        // in shared mappings; file mappings are private copies.
        let shared = if m.shared { m.rss } else { 0 };
        let anon = if m.is_file() || m.shared { 0 } else { m.rss };
        smaps_counters(&mut out, m.rss, anon, shared);
        let _ = writeln!(out, "{:<16}{:>8}", "THPeligible:", 0);
        let mut flags = String::new();
        for (bit, name) in [(PROT_READ, "rd"), (PROT_WRITE, "wr"), (PROT_EXEC, "ex")] {
            if m.prot & bit != 0 {
                flags.push_str(name);
                flags.push(' ');
            }
        }
        if m.shared {
            flags.push_str("sh ");
        }
        flags.push_str("mr mw me ");
        if m.is_stack() {
            flags.push_str("gd ");
        }
        if m.prot & PROT_WRITE != 0 && !m.shared {
            flags.push_str("ac ");
        }
        let _ = writeln!(out, "VmFlags: {flags}");
    }
    Ok(out.into_bytes())
}

fn gen_smaps_rollup(v: &View, k: &Arc<Kernel>) -> KResult<Vec<u8>> {
    let Some(s) = view_mm(v, k)? else {
        return Ok(Vec::new());
    };
    let (Some(first), Some(last)) = (s.maps.first(), s.maps.last()) else {
        return Ok(Vec::new());
    };
    let mut out = String::new();
    let rollup = MapEntry {
        start: first.start,
        end: last.end,
        prot: 0,
        shared: false,
        growsdown: false,
        name: Some("[rollup]".into()),
        file_off: 0,
        rss: 0,
    };
    map_line(&mut out, &rollup, &HashMap::new());
    let rss: u64 = s.maps.iter().map(|m| m.rss).sum();
    let shared: u64 = s.maps.iter().filter(|m| m.shared).map(|m| m.rss).sum();
    let anon: u64 = s
        .maps
        .iter()
        .filter(|m| !m.is_file() && !m.shared)
        .map(|m| m.rss)
        .sum();
    smaps_counters(&mut out, rss, anon, shared);
    Ok(out.into_bytes())
}

fn gen_statm(v: &View, k: &Arc<Kernel>) -> KResult<Vec<u8>> {
    let t = view_mm(v, k)?.map(|s| totals(&s)).unwrap_or_default();
    let pages = |b: u64| b / PAGE;
    Ok(format!(
        "{} {} {} {} 0 {} 0\n",
        pages(t.vsize),
        pages(t.rss),
        pages(t.rss_file + t.rss_shmem),
        pages(page_up(t.exe)),
        pages(t.data + t.stack)
    )
    .into_bytes())
}

/// Guest memory `[start, end)`, read regardless of protection; at most 1
/// MiB (more than ARG_MAX's share of the stack).
fn read_guest(mm: &MemoryManager, start: u64, end: u64) -> Vec<u8> {
    if end <= start {
        return Vec::new();
    }
    let mut buf = vec![0u8; (end - start).min(1 << 20) as usize];
    match mm.copy_in_force(start, &mut buf) {
        Ok(()) => buf,
        Err(_) => Vec::new(),
    }
}

fn gen_cmdline(v: &View, k: &Arc<Kernel>) -> KResult<Vec<u8>> {
    let info = v.info(k)?;
    if info.zombie.is_some() {
        return Ok(Vec::new());
    }
    let Some(t) = v.task_of(&info)? else {
        return Ok(Vec::new());
    };
    let mm = t.mm();
    let (as_, ae, es, ee) = {
        let st = mm.lock();
        (st.arg_start, st.arg_end, st.env_start, st.env_end)
    };
    let mut args = read_guest(&mm, as_, ae);
    if args.last().is_some_and(|&c| c != 0) {
        // The final NUL was overwritten (setproctitle): like Linux, the
        // command line then runs on into the environment area up to the
        // first NUL.
        if ee > es && es >= ae {
            args.extend(read_guest(&mm, ae, ee));
        }
        if let Some(i) = args.iter().position(|&c| c == 0) {
            args.truncate(i);
        }
    }
    Ok(args)
}

fn gen_environ(v: &View, k: &Arc<Kernel>) -> KResult<Vec<u8>> {
    let info = v.info(k)?;
    if info.zombie.is_some() {
        return Ok(Vec::new());
    }
    let Some(t) = v.task_of(&info)? else {
        return Ok(Vec::new());
    };
    let mm = t.mm();
    let (es, ee) = {
        let st = mm.lock();
        (st.env_start, st.env_end)
    };
    Ok(read_guest(&mm, es, ee))
}

fn gen_auxv(v: &View, k: &Arc<Kernel>) -> KResult<Vec<u8>> {
    let info = v.info(k)?;
    if info.zombie.is_some() {
        return Ok(Vec::new());
    }
    let Some(t) = v.task_of(&info)? else {
        return Ok(Vec::new());
    };
    let mut auxv = t.mm().lock().auxv.clone();
    if auxv.last().is_none_or(|&(k, _)| k != 0) {
        auxv.push((0, 0));
    }
    let mut out = Vec::with_capacity(auxv.len() * 16);
    for (a, b) in auxv {
        out.extend_from_slice(&a.to_le_bytes());
        out.extend_from_slice(&b.to_le_bytes());
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Links.
// ---------------------------------------------------------------------------

fn live_task(v: &View, k: &Kernel) -> KResult<Arc<Task>> {
    let info = v.info(k)?;
    if info.zombie.is_some() {
        return Err(Errno::ENOENT);
    }
    v.task_of(&info)?.cloned().ok_or(Errno::ENOENT)
}

fn gen_exe(v: &View, k: &Arc<Kernel>) -> KResult<Vec<u8>> {
    let t = live_task(v, k)?;
    let exe = t.mm().lock().exe.clone();
    exe.map(|e| e.as_bytes().to_vec()).ok_or(Errno::ENOENT)
}

/// (cwd, root, umask) of a task's filesystem context.
///
/// The path walk holds the walker's context lock while it resolves links,
/// so following /proc/<pid>/cwd must not simply wait for a context lock:
/// for the caller's own context (or a sibling thread's, which shares it)
/// the holder may be this very walk, and two processes walking through
/// each other's cwd links would wait for each other. So the lock is only
/// tried, for 20 ms on our own context (enough for a sibling thread's
/// walk) and 1 s on another's, and then we give up with EDEADLK.
pub(super) fn fs_of(t: &Task) -> KResult<(Arc<Dentry>, Arc<Dentry>, u32)> {
    let ctx = t.fs_context();
    let own = current().is_some_and(|c| Arc::ptr_eq(&c.fs_context(), &ctx));
    let patience = std::time::Duration::from_millis(if own { 20 } else { 1000 });
    let deadline = std::time::Instant::now() + patience;
    loop {
        match ctx.try_lock() {
            Ok(g) => return Ok((g.cwd.clone(), g.root.clone(), g.umask)),
            Err(std::sync::TryLockError::Poisoned(p)) => {
                let g = p.into_inner();
                return Ok((g.cwd.clone(), g.root.clone(), g.umask));
            }
            Err(std::sync::TryLockError::WouldBlock) => {
                if std::time::Instant::now() >= deadline {
                    return Err(Errno::EDEADLK);
                }
                std::thread::yield_now();
            }
        }
    }
}

fn gen_cwd(v: &View, k: &Arc<Kernel>) -> KResult<Vec<u8>> {
    let t = live_task(v, k)?;
    Ok(fs_of(&t)?.0.path())
}

fn gen_root(v: &View, k: &Arc<Kernel>) -> KResult<Vec<u8>> {
    let t = live_task(v, k)?;
    Ok(fs_of(&t)?.1.path())
}

// ---------------------------------------------------------------------------
// comm, children, limits.
// ---------------------------------------------------------------------------

fn gen_comm(v: &View, k: &Arc<Kernel>) -> KResult<Vec<u8>> {
    let info = v.info(k)?;
    let t = v.task_of(&info)?;
    let mut c = info.comm_of(t);
    c.push(b'\n');
    Ok(c)
}

/// Writing comm renames the thread (15 bytes at most, like prctl).
fn put_comm(v: &View, k: &Arc<Kernel>, buf: &[u8]) -> KResult<()> {
    let info = v.info(k)?;
    let t = v.task_of(&info)?.ok_or(Errno::ESRCH)?;
    let mut name = buf.to_vec();
    if let Some(i) = name.iter().position(|&c| c == 0 || c == b'\n') {
        name.truncate(i);
    }
    name.truncate(15);
    *lock(&t.comm) = name;
    Ok(())
}

/// task/<tid>/children: the process's children, listed under its leader
/// thread (we do not record which thread forked which child).
fn gen_children(v: &View, k: &Arc<Kernel>) -> KResult<Vec<u8>> {
    let info = v.info(k)?;
    if v.tid.is_some_and(|t| t != info.tgid) {
        return Ok(Vec::new());
    }
    let mut out = String::new();
    for c in &info.children {
        let _ = write!(out, "{c} ");
    }
    Ok(out.into_bytes())
}

const LIMITS: [(&str, &str); 16] = [
    ("Max cpu time", "seconds"),
    ("Max file size", "bytes"),
    ("Max data size", "bytes"),
    ("Max stack size", "bytes"),
    ("Max core file size", "bytes"),
    ("Max resident set", "bytes"),
    ("Max processes", "processes"),
    ("Max open files", "files"),
    ("Max locked memory", "bytes"),
    ("Max address space", "bytes"),
    ("Max file locks", "locks"),
    ("Max pending signals", "signals"),
    ("Max msgqueue size", "bytes"),
    ("Max nice priority", ""),
    ("Max realtime priority", ""),
    ("Max realtime timeout", "us"),
];

fn gen_limits(v: &View, k: &Arc<Kernel>) -> KResult<Vec<u8>> {
    let info = v.info(k)?;
    let rl = *lock(&info.tg.rlimits);
    Ok(format_limits(&rl).into_bytes())
}

pub(super) fn format_limits(rl: &[[u64; 2]]) -> String {
    let mut out = format!(
        "{:<25} {:<20} {:<20} {:<10}\n",
        "Limit", "Soft Limit", "Hard Limit", "Units"
    );
    let val = |x: u64| {
        if x == RLIM_INFINITY {
            "unlimited".to_string()
        } else {
            x.to_string()
        }
    };
    for (i, (name, unit)) in LIMITS.iter().enumerate() {
        let [soft, hard] = rl.get(i).copied().unwrap_or([RLIM_INFINITY; 2]);
        let _ = write!(out, "{:<25} {:<20} {:<20} ", name, val(soft), val(hard));
        if !unit.is_empty() {
            let _ = write!(out, "{unit:<10}");
        }
        out.push('\n');
    }
    out
}

// ---------------------------------------------------------------------------
// stat and status.
// ---------------------------------------------------------------------------

/// (state letter, name) as stat and status show it.
fn task_state(info: &ProcInfo, task: Option<&Arc<Task>>) -> (char, &'static str) {
    let Some(t) = task else {
        return ('Z', "zombie");
    };
    if info.zombie.is_some() {
        return ('Z', "zombie");
    }
    if info.tg.stopped.load(Ordering::SeqCst) {
        return ('T', "stopped");
    }
    if current().is_some_and(|c| Arc::ptr_eq(&c, t)) {
        return ('R', "running");
    }
    // Blocked in the sentry (a sleep, a wait, I/O) is "S"; running guest
    // code or serving a system call is "R".
    if t.sleeping.load(Ordering::Relaxed) {
        ('S', "sleeping")
    } else {
        ('R', "running")
    }
}

/// Signal masks: (thread pending, process pending, blocked, ignored, caught).
fn sig_masks(info: &ProcInfo, task: Option<&Arc<Task>>) -> (u64, u64, u64, u64, u64) {
    let (pend, blocked) = match task {
        Some(t) => {
            let s = lock(&t.sig);
            (s.pending.mask, s.mask)
        }
        None => (0, 0),
    };
    let shared = lock(&info.tg.pending).mask;
    let h = lock(&info.tg.sighand).clone();
    let acts = *lock(&h);
    let (mut ign, mut cgt) = (0u64, 0u64);
    for (i, a) in acts.iter().enumerate().take(NSIG) {
        if a.handler == SIG_IGN {
            ign |= 1 << i;
        } else if a.handler != SIG_DFL {
            cgt |= 1 << i;
        }
    }
    (pend, shared, blocked, ign, cgt)
}

/// CPU time of the view: the thread's, or the whole group's (live threads
/// plus those that exited). Guest CPU time is all user time: the sentry's
/// own work for the guest is not charged to it.
fn cpu_ns(v: &View, info: &ProcInfo, task: Option<&Arc<Task>>) -> u64 {
    if v.tid.is_some() {
        return task.map(|t| t.cpu_time_ns()).unwrap_or(0);
    }
    let live: u64 = info.threads.iter().map(|t| t.cpu_time_ns()).sum();
    live + info.tg.dead_cpu_ns.load(Ordering::Relaxed)
}

pub(super) fn ticks(ns: u64) -> u64 {
    ns / (1_000_000_000 / USER_HZ)
}

fn gen_stat(v: &View, k: &Arc<Kernel>) -> KResult<Vec<u8>> {
    let info = v.info(k)?;
    let task = v.task_of(&info)?;
    let (state, _) = task_state(&info, task);
    let comm = info.comm_of(task);
    let pid = v.tid.unwrap_or(info.tgid);
    let mm = if info.zombie.is_some() {
        None
    } else {
        task.map(|t| snapshot_mm(&t.mm()))
    };
    let tot = mm.as_ref().map(totals).unwrap_or_default();
    let (pend, shared, blocked, ign, cgt) = sig_masks(&info, task);
    let nice = task
        .map(|t| t.niceness.load(Ordering::Relaxed))
        .unwrap_or(0) as i64;
    let start = ticks(
        info.tg
            .start
            .saturating_duration_since(k.boot)
            .as_nanos()
            .min(u64::MAX as u128) as u64,
    );
    let exit_signal = if pid == info.tgid {
        info.exit_signal
    } else {
        -1
    };
    let rsslim = lock(&info.tg.rlimits)[libc::RLIMIT_RSS as usize][0];
    let (brk_start, arg_start, arg_end, env_start, env_end) = mm
        .as_ref()
        .map(|m| (m.brk_start, m.arg_start, m.arg_end, m.env_start, m.env_end))
        .unwrap_or_default();
    // The session's controlling terminal and its foreground group.
    let (tty_nr, tpgid) =
        crate::fs::devpts::session_tty(k, info.sid).map_or((0, -1), |(dev, fg, _)| (dev, fg));
    let mut s = String::with_capacity(256);
    let _ = write!(
        s,
        "{pid} ({}) {state} {} {} {} {tty_nr} {tpgid} {} 0 0 0 0 {} 0 {} 0 {} {} {} 0 {start} {} {} {rsslim} ",
        String::from_utf8_lossy(&comm),
        info.ppid,
        info.pgid,
        info.sid,
        0x0040_0000u32, // PF_RANDOMIZE, as Linux shows for ordinary tasks
        ticks(cpu_ns(v, &info, task)),
        ticks(info.tg.children_cpu_ns.load(Ordering::Relaxed)),
        20 + nice,
        nice,
        info.threads.len().max(1),
        tot.vsize,
        tot.rss / PAGE,
    );
    let _ = write!(
        s,
        "{} {} {} 0 0 {} {} {} {} 0 0 0 {exit_signal} 0 0 0 0 0 0 ",
        tot.start_code,
        tot.end_code,
        tot.start_stack,
        pend | shared,
        blocked,
        ign,
        cgt,
    );
    let _ = writeln!(
        s,
        "{} {} {brk_start} {arg_start} {arg_end} {env_start} {env_end} {}",
        tot.start_data,
        tot.end_data,
        info.zombie.unwrap_or(0)
    );
    Ok(s.into_bytes())
}

/// "Cpus_allowed" for `n` CPUs: a hex bitmap in 32-bit groups.
pub(super) fn cpu_mask(n: usize) -> String {
    let n = n.max(1);
    let words = n.div_ceil(32);
    let mut parts = Vec::new();
    for w in (0..words).rev() {
        let bits = (n - w * 32).min(32);
        let v: u64 = if bits == 32 {
            0xffff_ffff
        } else {
            (1u64 << bits) - 1
        };
        if w == words - 1 {
            parts.push(format!("{:0width$x}", v, width = bits.div_ceil(4)));
        } else {
            parts.push(format!("{v:08x}"));
        }
    }
    parts.join(",")
}

pub(super) fn cpu_list(n: usize) -> String {
    if n <= 1 {
        "0".into()
    } else {
        format!("0-{}", n - 1)
    }
}

fn gen_status(v: &View, k: &Arc<Kernel>) -> KResult<Vec<u8>> {
    let info = v.info(k)?;
    let task = v.task_of(&info)?;
    let (st, st_name) = task_state(&info, task);
    let comm = info.comm_of(task);
    let c = info.creds_of(task);
    let pid = v.tid.unwrap_or(info.tgid);
    let umask = task
        .and_then(|t| fs_of(t).ok())
        .map(|(_, _, u)| u)
        .unwrap_or(0o022);
    let fd_size = task
        .map(|t| t.fd_table().fds().last().map(|&f| f + 1).unwrap_or(0))
        .unwrap_or(0)
        .max(64) as usize;
    let fd_size = if info.zombie.is_some() {
        0
    } else {
        fd_size.next_power_of_two()
    };
    let mut s = String::with_capacity(1400);
    let _ = writeln!(s, "Name:\t{}", escape_comm(&comm));
    let _ = writeln!(s, "Umask:\t{umask:04o}");
    let _ = writeln!(s, "State:\t{st} ({st_name})");
    let _ = writeln!(s, "Tgid:\t{}", info.tgid);
    let _ = writeln!(s, "Ngid:\t0");
    let _ = writeln!(s, "Pid:\t{pid}");
    let _ = writeln!(s, "PPid:\t{}", info.ppid);
    let _ = writeln!(s, "TracerPid:\t0");
    let _ = writeln!(s, "Uid:\t{}\t{}\t{}\t{}", c.ruid, c.euid, c.suid, c.fsuid);
    let _ = writeln!(s, "Gid:\t{}\t{}\t{}\t{}", c.rgid, c.egid, c.sgid, c.fsgid);
    let _ = writeln!(s, "FDSize:\t{fd_size}");
    s.push_str("Groups:\t");
    let groups: Vec<String> = c.groups.iter().map(|g| g.to_string()).collect();
    s.push_str(&groups.join(" "));
    s.push_str(" \n");
    let _ = writeln!(s, "NStgid:\t{}", info.tgid);
    let _ = writeln!(s, "NSpid:\t{pid}");
    let _ = writeln!(s, "NSpgid:\t{}", info.pgid);
    let _ = writeln!(s, "NSsid:\t{}", info.sid);
    if info.zombie.is_none() {
        if let Some(t) = task {
            let tot = totals(&snapshot_mm(&t.mm()));
            let kb = |s: &mut String, name: &str, b: u64| {
                let _ = writeln!(s, "{name}:\t{:>8} kB", b >> 10);
            };
            // No peak or high-water mark is kept: they show the current
            // values.
            kb(&mut s, "VmPeak", tot.vsize);
            kb(&mut s, "VmSize", tot.vsize);
            kb(&mut s, "VmLck", 0);
            kb(&mut s, "VmPin", 0);
            kb(&mut s, "VmHWM", tot.rss);
            kb(&mut s, "VmRSS", tot.rss);
            kb(&mut s, "RssAnon", tot.rss_anon);
            kb(&mut s, "RssFile", tot.rss_file);
            kb(&mut s, "RssShmem", tot.rss_shmem);
            kb(&mut s, "VmData", tot.data);
            kb(&mut s, "VmStk", tot.stack);
            kb(&mut s, "VmExe", tot.exe);
            kb(&mut s, "VmLib", tot.lib);
            // Page tables are the host's, not ours to count.
            kb(&mut s, "VmPTE", 0);
            kb(&mut s, "VmSwap", 0);
            kb(&mut s, "HugetlbPages", 0);
        }
    }
    let _ = writeln!(s, "CoreDumping:\t0");
    let _ = writeln!(s, "THP_enabled:\t0");
    let _ = writeln!(s, "Threads:\t{}", info.threads.len().max(1));
    let (pend, shared, blocked, ign, cgt) = sig_masks(&info, task);
    let sigq_limit = lock(&info.tg.rlimits)[libc::RLIMIT_SIGPENDING as usize][0];
    let _ = writeln!(s, "SigQ:\t{}/{}", (pend | shared).count_ones(), sigq_limit);
    let _ = writeln!(s, "SigPnd:\t{pend:016x}");
    let _ = writeln!(s, "ShdPnd:\t{shared:016x}");
    let _ = writeln!(s, "SigBlk:\t{blocked:016x}");
    let _ = writeln!(s, "SigIgn:\t{ign:016x}");
    let _ = writeln!(s, "SigCgt:\t{cgt:016x}");
    let caps = c.caps;
    let _ = writeln!(s, "CapInh:\t{:016x}", caps.inheritable);
    let _ = writeln!(s, "CapPrm:\t{:016x}", caps.permitted);
    let _ = writeln!(s, "CapEff:\t{:016x}", caps.effective);
    let _ = writeln!(s, "CapBnd:\t{:016x}", caps.bounding);
    let _ = writeln!(s, "CapAmb:\t{:016x}", caps.ambient);
    let _ = writeln!(s, "NoNewPrivs:\t{}", u8::from(caps.no_new_privs));
    let _ = writeln!(s, "Seccomp:\t0");
    let _ = writeln!(s, "Seccomp_filters:\t0");
    let n = system::ncpus();
    let _ = writeln!(s, "Cpus_allowed:\t{}", cpu_mask(n));
    let _ = writeln!(s, "Cpus_allowed_list:\t{}", cpu_list(n));
    let _ = writeln!(s, "Mems_allowed:\t00000001");
    let _ = writeln!(s, "Mems_allowed_list:\t0");
    // Context switches are the host's business; we do not count them.
    let _ = writeln!(s, "voluntary_ctxt_switches:\t0");
    let _ = writeln!(s, "nonvoluntary_ctxt_switches:\t0");
    Ok(s.into_bytes())
}

/// Name: in status escapes "\\" and "\n" (Linux's proc_task_name).
fn escape_comm(c: &[u8]) -> String {
    let mut out = Vec::with_capacity(c.len());
    for &b in c {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            _ => out.push(b),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(start: u64, end: u64, prot: i32, name: Option<&str>) -> MapEntry {
        MapEntry {
            start,
            end,
            prot,
            shared: false,
            growsdown: false,
            name: name.map(Into::into),
            file_off: 0x2000,
            rss: end - start,
        }
    }

    #[test]
    fn maps_lines_look_like_linux() {
        let mut ids = HashMap::new();
        ids.insert(
            Arc::<str>::from("/usr/bin/cat"),
            (crate::vfs::makedev(0xfe, 0), 247030),
        );
        let mut s = String::new();
        map_line(
            &mut s,
            &entry(
                0x55e716a1e000,
                0x55e716a23000,
                PROT_READ | PROT_EXEC,
                Some("/usr/bin/cat"),
            ),
            &ids,
        );
        assert_eq!(
            s,
            "55e716a1e000-55e716a23000 r-xp 00002000 fe:00 247030                     /usr/bin/cat\n"
        );
        s.clear();
        map_line(
            &mut s,
            &entry(0x1000, 0x3000, PROT_READ | PROT_WRITE, None),
            &ids,
        );
        assert_eq!(s, "00001000-00003000 rw-p 00000000 00:00 0 \n");
        s.clear();
        let mut shared = entry(0x7f0000000000, 0x7f0000001000, PROT_READ, Some("[stack]"));
        shared.shared = true;
        map_line(&mut s, &shared, &ids);
        assert_eq!(
            s,
            "7f0000000000-7f0000001000 r--s 00000000 00:00 0                          [stack]\n"
        );
    }

    #[test]
    fn totals_classify_like_status() {
        let snap = MmSnapshot {
            maps: vec![
                entry(0x1000, 0x3000, PROT_READ | PROT_EXEC, Some("/bin/x")),
                entry(0x3000, 0x4000, PROT_READ | PROT_WRITE, Some("/bin/x")),
                entry(
                    0x10000,
                    0x12000,
                    PROT_READ | PROT_EXEC,
                    Some("/lib/libc.so"),
                ),
                entry(0x20000, 0x28000, PROT_READ | PROT_WRITE, Some("[heap]")),
                entry(0x40000, 0x50000, PROT_READ | PROT_WRITE, Some("[stack]")),
            ],
            brk_start: 0x20000,
            arg_start: 0,
            arg_end: 0,
            env_start: 0,
            env_end: 0,
            exe: Some("/bin/x".into()),
        };
        let t = totals(&snap);
        assert_eq!(t.vsize, 0x2000 + 0x1000 + 0x2000 + 0x8000 + 0x10000);
        assert_eq!(t.rss, t.vsize);
        assert_eq!(t.exe, 0x2000);
        assert_eq!(t.lib, 0x2000);
        assert_eq!(t.stack, 0x10000);
        assert_eq!(t.data, 0x1000 + 0x8000);
        assert_eq!(t.rss_file, 0x5000);
        assert_eq!(t.rss_anon, 0x18000);
        assert_eq!((t.start_code, t.end_code), (0x1000, 0x3000));
        assert_eq!((t.start_data, t.end_data), (0x3000, 0x4000));
    }
}
