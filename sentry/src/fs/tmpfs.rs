//! tmpfs: the in-memory filesystem (directories, regular files, symlinks)
//! with Linux's metadata rules: nlink counting, timestamps, setgid
//! directories, rename(2) replacement rules, and a size limit so a guest
//! cannot exhaust the sentry's memory.
//!
//! Locking: every namespace change (create, mkdir, symlink, link, unlink,
//! rmdir, rename) first takes the filesystem's `ns` mutex, so the only code
//! that holds two directory locks at once is serialized and cannot
//! deadlock. Readers (lookup, readdir, stat) take one directory lock and
//! never wait for another while holding it. `meta` and the parent pointer
//! are leaf locks: nothing is acquired while holding them.

use super::{check_open, lock, new_anon_dev, new_fs_id, next_ino, DirFile, PathFile};
use crate::errno::{Errno, KResult};
use crate::kernel::task::Task;
use crate::mm::memory_file::{global as global_memory_file, Extent};
use crate::mm::MapRun;
use crate::vfs::{DirEntry, File, FileOps, Inode, Stat, Timespec};
use std::any::Any;
use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// File data is kept in pages so holes cost nothing (as on Linux, where a
/// truncate up or a write far past EOF allocates only the touched pages)
/// and st_blocks counts what is really allocated.
const PAGE: usize = 4096;
/// Linux's tmpfs counts this many bytes per directory entry in a
/// directory's st_size ("." and ".." included).
const BOGO_DIRENT_SIZE: u64 = 20;
/// MAX_LFS_FILESIZE on 64-bit Linux.
const MAX_FILE_SIZE: u64 = i64::MAX as u64;
const NAME_MAX: usize = 255;
const PATH_MAX: usize = 4096;
const PERM_MASK: u32 = 0o7777;
/// XATTR_NAME_MAX and XATTR_SIZE_MAX.
const XATTR_NAME_MAX: usize = 255;
const XATTR_SIZE_MAX: usize = 64 * 1024;
const XATTR_CREATE: i32 = 1;
const XATTR_REPLACE: i32 = 2;

/// Checks an xattr name: its length and a namespace Linux's tmpfs keeps.
fn xattr_name_ok(name: &[u8]) -> KResult<()> {
    if name.is_empty() || name.len() > XATTR_NAME_MAX {
        return Err(Errno::ERANGE);
    }
    let known = [&b"user."[..], b"trusted.", b"security."];
    match known.iter().find(|p| name.starts_with(p)) {
        // A bare prefix names nothing.
        Some(p) if name.len() == p.len() => Err(Errno::EINVAL),
        Some(_) => Ok(()),
        None => Err(Errno::EOPNOTSUPP),
    }
}

/// One mounted instance.
struct FsInfo {
    id: usize,
    dev: u64,
    /// Serializes namespace changes (see the module comment).
    ns: Mutex<()>,
    /// Pages of file data allocated, against `max_pages` (ENOSPC beyond).
    used_pages: AtomicU64,
    max_pages: u64,
}

impl FsInfo {
    /// Reserves one page of the budget; false when the filesystem is full.
    fn reserve_page(&self) -> bool {
        self.used_pages
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                (u < self.max_pages).then_some(u + 1)
            })
            .is_ok()
    }

    fn release_pages(&self, n: u64) {
        self.used_pages.fetch_sub(n, Ordering::Relaxed);
    }
}

/// Linux's default tmpfs size: half of physical memory.
fn default_max_bytes() -> u64 {
    // SAFETY: sysconf only reads system configuration.
    let (pages, psize) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    if pages <= 0 || psize <= 0 {
        return 1 << 30;
    }
    (pages as u64).saturating_mul(psize as u64) / 2
}

#[derive(Clone)]
struct Meta {
    /// Permission bits only (07777); the type is `TmpfsInode::fmt`.
    perm: u32,
    uid: u32,
    gid: u32,
    nlink: u64,
    atime: Timespec,
    mtime: Timespec,
    ctime: Timespec,
    /// Extended attributes (`user.`, `trusted.`, `security.`).
    xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    /// An O_TMPFILE file (without O_EXCL): may be linked at nlink 0.
    linkable: bool,
}

struct DirData {
    children: BTreeMap<Vec<u8>, Arc<dyn Inode>>,
    /// Set once the directory is removed: nothing may be created in it
    /// any more (ENOENT, as Linux's IS_DEADDIR).
    dead: bool,
}

#[derive(Default)]
struct FileData {
    size: u64,
    /// Page index → PAGE bytes. Missing pages read as zeros.
    pages: BTreeMap<u64, Page>,
}

/// One page of file data: on the sentry's heap, or, once the file has
/// been mapped MAP_SHARED, in the memory file, where guest mappings see
/// the same bytes as read(2) and write(2).
enum Page {
    Heap(Box<[u8]>),
    /// Page `index` of a run of the memory file.
    Mem(Arc<Extent>, u64),
}

impl Page {
    fn new() -> Page {
        Page::Heap(vec![0u8; PAGE].into_boxed_slice())
    }

    fn ptr(&self) -> *const u8 {
        match self {
            Page::Heap(b) => b.as_ptr(),
            Page::Mem(e, i) => e.mf.ptr(e.off + i * PAGE as u64),
        }
    }

    fn ptr_mut(&mut self) -> *mut u8 {
        match self {
            Page::Heap(b) => b.as_mut_ptr(),
            Page::Mem(e, i) => e.mf.ptr(e.off + *i * PAGE as u64),
        }
    }

    /// Copies bytes `at..at+dst.len()` of the page out (`at + len <= PAGE`).
    fn read(&self, at: usize, dst: &mut [u8]) {
        let n = dst.len().min(PAGE.saturating_sub(at));
        // SAFETY: the page is PAGE bytes (heap box or memory-file page kept
        // alive by its extent); at+n <= PAGE and dst holds n bytes. Guests
        // may write a shared page concurrently: bytes, no references.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr().add(at), dst.as_mut_ptr(), n) }
    }

    /// Copies `src` into the page at `at` (`at + len <= PAGE`).
    fn write(&mut self, at: usize, src: &[u8]) {
        let n = src.len().min(PAGE.saturating_sub(at));
        // SAFETY: as in `read`, the other way.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr_mut().add(at), n) }
    }

    /// Zeroes the page from `at` to its end.
    fn zero_from(&mut self, at: usize) {
        if at < PAGE {
            // SAFETY: at < PAGE; the page is PAGE bytes.
            unsafe { std::ptr::write_bytes(self.ptr_mut().add(at), 0, PAGE - at) }
        }
    }

    fn is_mem(&self) -> bool {
        matches!(self, Page::Mem(..))
    }
}

enum Kind {
    Dir(Mutex<DirData>),
    File(Mutex<FileData>),
    Symlink(Vec<u8>),
    /// A named pipe: every open joins this one pipe.
    Fifo(Arc<crate::fs::pipe::Pipe>),
    /// A socket's name (bind(2) of an AF_UNIX path): opening it fails
    /// with ENXIO; connect finds the socket by the node's identity.
    Socket,
}

pub struct TmpfsInode {
    ino: u64,
    /// S_IFMT bits; a file never changes type.
    fmt: u32,
    fs: Arc<FsInfo>,
    /// Ourselves, to hand out Arcs from &self (lookup of ".").
    me: Weak<TmpfsInode>,
    /// The containing directory, for directories (lookup of "..", and the
    /// "is the target under the source" check of rename).
    parent: Mutex<Weak<TmpfsInode>>,
    meta: Mutex<Meta>,
    kind: Kind,
}

fn same_inode(a: &TmpfsInode, b: &TmpfsInode) -> bool {
    std::ptr::eq(a, b)
}

fn as_tmpfs(i: &Arc<dyn Inode>) -> Option<&TmpfsInode> {
    i.as_any().downcast_ref::<TmpfsInode>()
}

fn fmt_of(i: &Arc<dyn Inode>) -> u32 {
    match as_tmpfs(i) {
        Some(t) => t.fmt,
        None => i.stat().map(|s| s.file_type()).unwrap_or(0),
    }
}

/// Checks a name about to be created. The path walk normally filters
/// these already; repeated here so the inode is safe on its own.
fn check_new_name(name: &[u8]) -> KResult<()> {
    if name.is_empty() {
        return Err(Errno::ENOENT);
    }
    if name == b"." || name == b".." {
        return Err(Errno::EEXIST);
    }
    if name.len() > NAME_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    if name.iter().any(|&c| c == b'/' || c == 0) {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// `a <= b` for timestamps.
fn ts_le(a: Timespec, b: Timespec) -> bool {
    (a.sec, a.nsec) <= (b.sec, b.nsec)
}

/// A new tmpfs whose root directory has permission bits `mode & 07777`,
/// owned by root, sized like Linux's default (half of RAM).
pub fn new_tmpfs(mode: u32) -> Arc<dyn Inode> {
    new_tmpfs_with(mode, 0, 0, None)
}

/// A new tmpfs with the root's owner and an optional size limit in bytes
/// (writes beyond it fail with ENOSPC).
pub fn new_tmpfs_with(mode: u32, uid: u32, gid: u32, max_bytes: Option<u64>) -> Arc<dyn Inode> {
    let max = max_bytes.unwrap_or_else(default_max_bytes);
    let fs = Arc::new(FsInfo {
        id: new_fs_id(),
        dev: new_anon_dev(),
        ns: Mutex::new(()),
        used_pages: AtomicU64::new(0),
        max_pages: max.div_ceil(PAGE as u64),
    });
    TmpfsInode::new_dir(&fs, mode, uid, gid, Weak::new())
}

impl TmpfsInode {
    /// A new inode of `kind` (which gives its type and initial link
    /// count: 2 for a directory, counting its "."), child of `parent` when
    /// a directory.
    fn new(
        fs: &Arc<FsInfo>,
        kind: Kind,
        perm: u32,
        uid: u32,
        gid: u32,
        parent: Weak<TmpfsInode>,
    ) -> Arc<TmpfsInode> {
        let (fmt, nlink) = match kind {
            Kind::Dir(_) => (libc::S_IFDIR, 2),
            Kind::File(_) => (libc::S_IFREG, 1),
            Kind::Symlink(_) => (libc::S_IFLNK, 1),
            Kind::Fifo(_) => (libc::S_IFIFO, 1),
            Kind::Socket => (libc::S_IFSOCK, 1),
        };
        let now = Timespec::now();
        Arc::new_cyclic(|me| TmpfsInode {
            ino: next_ino(),
            fmt,
            fs: fs.clone(),
            me: me.clone(),
            parent: Mutex::new(parent),
            meta: Mutex::new(Meta {
                perm: perm & PERM_MASK,
                uid,
                gid,
                nlink,
                atime: now,
                mtime: now,
                ctime: now,
                xattrs: BTreeMap::new(),
                linkable: false,
            }),
            kind,
        })
    }

    fn new_dir(
        fs: &Arc<FsInfo>,
        perm: u32,
        uid: u32,
        gid: u32,
        parent: Weak<TmpfsInode>,
    ) -> Arc<TmpfsInode> {
        let kind = Kind::Dir(Mutex::new(DirData {
            children: BTreeMap::new(),
            dead: false,
        }));
        TmpfsInode::new(fs, kind, perm, uid, gid, parent)
    }

    fn dir(&self) -> KResult<&Mutex<DirData>> {
        match &self.kind {
            Kind::Dir(d) => Ok(d),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn parent_dir(&self) -> Option<Arc<TmpfsInode>> {
        lock(&self.parent).upgrade()
    }

    fn is_dir(&self) -> bool {
        self.fmt == libc::S_IFDIR
    }

    /// Whether `self` is `other` or one of its ancestors.
    fn is_ancestor_of(&self, other: &TmpfsInode) -> bool {
        if same_inode(self, other) {
            return true;
        }
        let mut cur = other.parent_dir();
        while let Some(c) = cur {
            if same_inode(self, &c) {
                return true;
            }
            cur = c.parent_dir();
        }
        false
    }

    /// A directory's contents changed: mtime and ctime.
    fn touch_modified(&self, now: Timespec) {
        let mut m = lock(&self.meta);
        m.mtime = now;
        m.ctime = now;
    }

    fn touch_ctime(&self, now: Timespec) {
        lock(&self.meta).ctime = now;
    }

    /// relatime, Linux's default: atime moves only if it is not newer than
    /// mtime/ctime, or is a day old.
    fn touch_atime(&self) {
        let now = Timespec::now();
        let mut m = lock(&self.meta);
        if ts_le(m.atime, m.mtime) || ts_le(m.atime, m.ctime) || now.sec - m.atime.sec >= 24 * 3600
        {
            m.atime = now;
        }
    }

    fn add_nlink(&self, delta: i64) {
        let mut m = lock(&self.meta);
        m.nlink = m.nlink.saturating_add_signed(delta);
    }

    /// Owner and mode for a new entry of this directory: in a setgid
    /// directory entries take the directory's group, and subdirectories
    /// inherit the setgid bit (inode_init_owner()).
    fn inherit(&self, gid: u32, perm: u32, is_dir: bool) -> (u32, u32) {
        let m = lock(&self.meta);
        if m.perm & libc::S_ISGID != 0 {
            let perm = if is_dir { perm | libc::S_ISGID } else { perm };
            (m.gid, perm)
        } else {
            (gid, perm)
        }
    }

    /// Inserts a new child made by `make` under `name`: the shared part of
    /// create, mkdir and symlink.
    fn add_child(
        &self,
        name: &[u8],
        make: impl FnOnce() -> Arc<TmpfsInode>,
    ) -> KResult<Arc<TmpfsInode>> {
        let d = self.dir()?;
        check_new_name(name)?;
        let _ns = lock(&self.fs.ns);
        let mut dd = lock(d);
        if dd.dead {
            return Err(Errno::ENOENT);
        }
        if dd.children.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        let child = make();
        dd.children.insert(name.to_vec(), child.clone());
        if child.is_dir() {
            self.add_nlink(1);
        }
        self.touch_modified(Timespec::now());
        Ok(child)
    }

    /// Reads file data at `off` (0 at or past EOF).
    pub fn read_at(&self, buf: &mut [u8], off: u64) -> KResult<usize> {
        let data = match &self.kind {
            Kind::File(d) => d,
            Kind::Dir(_) => return Err(Errno::EISDIR),
            Kind::Symlink(_) | Kind::Fifo(_) | Kind::Socket => return Err(Errno::EINVAL),
        };
        if buf.is_empty() {
            return Ok(0);
        }
        let n = {
            let fd = lock(data);
            if off >= fd.size {
                0
            } else {
                let n = buf
                    .len()
                    .min((fd.size - off).min(usize::MAX as u64) as usize);
                let mut done = 0;
                while done < n {
                    let pos = off + done as u64;
                    let (idx, in_page) = (pos / PAGE as u64, (pos % PAGE as u64) as usize);
                    let chunk = (PAGE - in_page).min(n - done);
                    let dst = &mut buf[done..done + chunk];
                    match fd.pages.get(&idx) {
                        Some(p) => p.read(in_page, dst),
                        None => dst.fill(0),
                    }
                    done += chunk;
                }
                n
            }
        };
        self.touch_atime();
        Ok(n)
    }

    /// Writes file data at `off`, extending the file (the gap reads as
    /// zeros). Stops early when the filesystem is full (ENOSPC if nothing
    /// was written).
    pub fn write_at(&self, buf: &[u8], off: u64) -> KResult<usize> {
        let data = match &self.kind {
            Kind::File(d) => d,
            Kind::Dir(_) => return Err(Errno::EISDIR),
            Kind::Symlink(_) | Kind::Fifo(_) | Kind::Socket => return Err(Errno::EINVAL),
        };
        if buf.is_empty() {
            // Linux returns before touching the file for empty writes.
            return Ok(0);
        }
        // generic_write_check_limits(): EFBIG at the limit, else shorten.
        if off >= MAX_FILE_SIZE {
            return Err(Errno::EFBIG);
        }
        let n = buf
            .len()
            .min((MAX_FILE_SIZE - off).min(usize::MAX as u64) as usize);
        let mut done = 0;
        {
            let mut fd = lock(data);
            while done < n {
                let pos = off + done as u64;
                let (idx, in_page) = (pos / PAGE as u64, (pos % PAGE as u64) as usize);
                let chunk = (PAGE - in_page).min(n - done);
                let page = match fd.pages.entry(idx) {
                    Entry::Occupied(o) => o.into_mut(),
                    Entry::Vacant(v) => {
                        if !self.fs.reserve_page() {
                            break;
                        }
                        v.insert(Page::new())
                    }
                };
                page.write(in_page, &buf[done..done + chunk]);
                done += chunk;
            }
            fd.size = fd.size.max(off + done as u64);
        }
        if done == 0 {
            return Err(Errno::ENOSPC);
        }
        self.touch_modified(Timespec::now());
        Ok(done)
    }

    /// The file's pages `first..first+n` for a MAP_SHARED mapping, moved
    /// into the memory file where they are not yet (missing pages are
    /// allocated, counting against the size limit; pages past the end of
    /// the file read as zeros instead of raising SIGBUS). Runs of pages
    /// that are contiguous in the memory file come back as one run each.
    pub fn shared_runs(&self, first: u64, n: u64) -> KResult<Vec<MapRun>> {
        let data = match &self.kind {
            Kind::File(d) => d,
            _ => return Err(Errno::ENODEV),
        };
        let mf = global_memory_file()?;
        let mut fd = lock(data);
        let mut runs: Vec<MapRun> = Vec::new();
        let end = first.checked_add(n).ok_or(Errno::EOVERFLOW)?;
        let mut idx = first;
        while idx < end {
            if let Some(Page::Mem(ext, i)) = fd.pages.get(&idx) {
                let (ext, i) = (ext.clone(), *i);
                match runs.last_mut() {
                    Some(r)
                        if Arc::ptr_eq(&r.ext, &ext)
                            && r.ext_page + r.n == i
                            && r.first + r.n == idx - first =>
                    {
                        r.n += 1
                    }
                    _ => runs.push(MapRun {
                        first: idx - first,
                        n: 1,
                        ext,
                        ext_page: i,
                    }),
                }
                idx += 1;
                continue;
            }
            // A stretch of heap or missing pages: one new run for it.
            let mut stop = idx;
            while stop < end && !fd.pages.get(&stop).is_some_and(Page::is_mem) {
                stop += 1;
            }
            let count = stop - idx;
            let missing = (idx..stop).filter(|p| !fd.pages.contains_key(p)).count() as u64;
            let mut reserved = 0;
            while reserved < missing {
                if !self.fs.reserve_page() {
                    self.fs.release_pages(reserved);
                    return Err(Errno::ENOMEM);
                }
                reserved += 1;
            }
            let ext = Arc::new(Extent::new(&mf, count * PAGE as u64)?);
            for (k, p) in (idx..stop).enumerate() {
                let mut page = Page::Mem(ext.clone(), k as u64);
                if let Some(old) = fd.pages.get(&p) {
                    let mut b = vec![0u8; PAGE];
                    old.read(0, &mut b);
                    page.write(0, &b);
                }
                fd.pages.insert(p, page);
            }
            runs.push(MapRun {
                first: idx - first,
                n: count,
                ext,
                ext_page: 0,
            });
            idx = stop;
        }
        Ok(runs)
    }

    /// (pages of file data used, pages allowed) for this filesystem, for
    /// statfs(2).
    pub fn usage(&self) -> (u64, u64) {
        (
            self.fs.used_pages.load(Ordering::Relaxed),
            self.fs.max_pages,
        )
    }
}

impl Drop for TmpfsInode {
    fn drop(&mut self) {
        if let Kind::File(d) = &self.kind {
            let n = lock(d).pages.len() as u64;
            self.fs.release_pages(n);
        }
    }
}

impl Inode for TmpfsInode {
    /// Real accounting: the size limit and the pages in use.
    fn statfs(&self) -> KResult<crate::vfs::Statfs> {
        let (used, max) = self.usage();
        let mut st = crate::vfs::Statfs::synthetic(self.fs_id());
        st.blocks = max;
        st.bfree = max.saturating_sub(used);
        st.bavail = st.bfree;
        Ok(st)
    }
    fn stat(&self) -> KResult<Stat> {
        let m = lock(&self.meta).clone();
        let (size, blocks) = match &self.kind {
            Kind::Dir(d) => ((2 + lock(d).children.len() as u64) * BOGO_DIRENT_SIZE, 0),
            Kind::File(d) => {
                let d = lock(d);
                (d.size, d.pages.len() as u64 * (PAGE as u64 / 512))
            }
            Kind::Symlink(t) => (t.len() as u64, 0),
            Kind::Fifo(_) | Kind::Socket => (0, 0),
        };
        Ok(Stat {
            dev: self.fs.dev,
            ino: self.ino,
            mode: self.fmt | m.perm,
            nlink: m.nlink,
            uid: m.uid,
            gid: m.gid,
            rdev: 0,
            size,
            blksize: PAGE as u64,
            blocks,
            atime: m.atime,
            mtime: m.mtime,
            ctime: m.ctime,
        })
    }

    fn lookup(&self, name: &[u8]) -> KResult<Arc<dyn Inode>> {
        let d = self.dir()?;
        if name == b"." {
            return self
                .me
                .upgrade()
                .map(|i| i as Arc<dyn Inode>)
                .ok_or(Errno::ENOENT);
        }
        if name == b".." {
            let p = self.parent_dir().or_else(|| self.me.upgrade());
            return p.map(|i| i as Arc<dyn Inode>).ok_or(Errno::ENOENT);
        }
        if name.len() > NAME_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        lock(d).children.get(name).cloned().ok_or(Errno::ENOENT)
    }

    fn readlink(&self) -> KResult<Vec<u8>> {
        match &self.kind {
            Kind::Symlink(t) => {
                self.touch_atime();
                Ok(t.clone())
            }
            _ => Err(Errno::EINVAL),
        }
    }

    fn open(self: Arc<Self>, flags: u32) -> KResult<Arc<dyn FileOps>> {
        let perm = lock(&self.meta).perm;
        if check_open(self.fmt | perm, flags)? {
            return Ok(PathFile::open(self));
        }
        match &self.kind {
            Kind::Dir(_) => Ok(DirFile::open(self)),
            Kind::File(_) => Ok(Arc::new(TmpfsFile { inode: self })),
            Kind::Symlink(_) => Err(Errno::ELOOP),
            Kind::Fifo(p) => crate::fs::pipe::open_fifo(p, flags),
            Kind::Socket => Err(Errno::ENXIO),
        }
    }

    fn mknod(&self, name: &[u8], mode: u32, _rdev: u64, uid: u32, gid: u32) -> KResult<()> {
        match mode & libc::S_IFMT {
            0 | libc::S_IFREG => self.create(name, mode, uid, gid).map(|_| ()),
            libc::S_IFIFO => {
                let (gid, perm) = self.inherit(gid, mode & PERM_MASK, false);
                self.add_child(name, || {
                    let kind = Kind::Fifo(crate::fs::pipe::Pipe::new(uid, gid));
                    TmpfsInode::new(&self.fs, kind, perm, uid, gid, Weak::new())
                })?;
                Ok(())
            }
            libc::S_IFSOCK => {
                let (gid, perm) = self.inherit(gid, mode & PERM_MASK, false);
                self.add_child(name, || {
                    TmpfsInode::new(&self.fs, Kind::Socket, perm, uid, gid, Weak::new())
                })?;
                Ok(())
            }
            // Device nodes need CAP_MKNOD on the host's behalf.
            libc::S_IFCHR | libc::S_IFBLK => Err(Errno::EPERM),
            _ => Err(Errno::EINVAL),
        }
    }

    fn readdir(&self) -> KResult<Vec<DirEntry>> {
        let d = self.dir()?;
        let out = lock(d)
            .children
            .iter()
            .map(|(name, child)| {
                let (ino, fmt) = match as_tmpfs(child) {
                    Some(t) => (t.ino, t.fmt),
                    None => child
                        .stat()
                        .map(|s| (s.ino, s.file_type()))
                        .unwrap_or((0, 0)),
                };
                DirEntry {
                    ino,
                    d_type: crate::vfs::dtype_of_mode(fmt),
                    name: name.clone(),
                }
            })
            .collect();
        self.touch_atime();
        Ok(out)
    }

    fn create(&self, name: &[u8], mode: u32, uid: u32, gid: u32) -> KResult<Arc<dyn Inode>> {
        let (gid, perm) = self.inherit(gid, mode & PERM_MASK, false);
        let child = self.add_child(name, || {
            let kind = Kind::File(Mutex::new(FileData::default()));
            TmpfsInode::new(&self.fs, kind, perm, uid, gid, Weak::new())
        })?;
        Ok(child)
    }

    fn tmpfile(&self, mode: u32, uid: u32, gid: u32, linkable: bool) -> KResult<Arc<dyn Inode>> {
        let d = self.dir()?;
        if lock(d).dead {
            return Err(Errno::ENOENT);
        }
        let (gid, perm) = self.inherit(gid, mode & PERM_MASK, false);
        let kind = Kind::File(Mutex::new(FileData::default()));
        let f = TmpfsInode::new(&self.fs, kind, perm, uid, gid, Weak::new());
        {
            let mut m = lock(&f.meta);
            m.nlink = 0;
            m.linkable = linkable;
        }
        Ok(f)
    }

    fn mkdir(&self, name: &[u8], mode: u32, uid: u32, gid: u32) -> KResult<()> {
        let (gid, perm) = self.inherit(gid, mode & PERM_MASK, true);
        self.add_child(name, || {
            TmpfsInode::new_dir(&self.fs, perm, uid, gid, self.me.clone())
        })?;
        Ok(())
    }

    fn symlink(&self, name: &[u8], target: &[u8], uid: u32, gid: u32) -> KResult<()> {
        if target.is_empty() {
            return Err(Errno::ENOENT);
        }
        if target.len() >= PATH_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let (gid, _) = self.inherit(gid, 0, false);
        self.add_child(name, || {
            TmpfsInode::new(
                &self.fs,
                Kind::Symlink(target.to_vec()),
                0o777,
                uid,
                gid,
                Weak::new(),
            )
        })?;
        Ok(())
    }

    fn unlink(&self, name: &[u8]) -> KResult<()> {
        let d = self.dir()?;
        if name == b"." || name == b".." {
            return Err(Errno::EISDIR);
        }
        let _ns = lock(&self.fs.ns);
        let mut dd = lock(d);
        let child = dd.children.get(name).ok_or(Errno::ENOENT)?;
        if fmt_of(child) == libc::S_IFDIR {
            return Err(Errno::EISDIR);
        }
        let child = dd.children.remove(name).ok_or(Errno::ENOENT)?;
        let now = Timespec::now();
        if let Some(c) = as_tmpfs(&child) {
            c.add_nlink(-1);
            c.touch_ctime(now);
        }
        self.touch_modified(now);
        Ok(())
    }

    fn rmdir(&self, name: &[u8]) -> KResult<()> {
        let d = self.dir()?;
        match name {
            b"." => return Err(Errno::EINVAL),
            b".." => return Err(Errno::ENOTEMPTY),
            _ => {}
        }
        let _ns = lock(&self.fs.ns);
        let mut dd = lock(d);
        let child = dd.children.get(name).ok_or(Errno::ENOENT)?;
        let c = as_tmpfs(child).ok_or(Errno::ENOTDIR)?;
        let cd = c.dir()?;
        {
            let mut cdd = lock(cd);
            if !cdd.children.is_empty() {
                return Err(Errno::ENOTEMPTY);
            }
            cdd.dead = true;
        }
        let now = Timespec::now();
        {
            let mut m = lock(&c.meta);
            m.nlink = 0;
            m.ctime = now;
        }
        dd.children.remove(name);
        self.add_nlink(-1);
        self.touch_modified(now);
        Ok(())
    }

    fn link(&self, name: &[u8], target: &Arc<dyn Inode>) -> KResult<()> {
        let d = self.dir()?;
        check_new_name(name)?;
        let t = as_tmpfs(target)
            .filter(|t| Arc::ptr_eq(&t.fs, &self.fs))
            .ok_or(Errno::EXDEV)?;
        if t.is_dir() {
            return Err(Errno::EPERM);
        }
        let _ns = lock(&self.fs.ns);
        let mut dd = lock(d);
        if dd.dead {
            return Err(Errno::ENOENT);
        }
        if dd.children.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        let now = Timespec::now();
        {
            let mut m = lock(&t.meta);
            // An unlinked file cannot get a name back, unless it was made
            // by O_TMPFILE without O_EXCL.
            if m.nlink == 0 && !m.linkable {
                return Err(Errno::ENOENT);
            }
            m.linkable = false;
            m.nlink += 1;
            m.ctime = now;
        }
        dd.children.insert(name.to_vec(), target.clone());
        self.touch_modified(now);
        Ok(())
    }

    fn rename(&self, name: &[u8], new_dir: &Arc<dyn Inode>, new_name: &[u8]) -> KResult<()> {
        let d = self.dir()?;
        let nd_t = as_tmpfs(new_dir)
            .filter(|n| Arc::ptr_eq(&n.fs, &self.fs))
            .ok_or(Errno::EXDEV)?;
        let nd = nd_t.dir()?;
        for n in [name, new_name] {
            if n == b"." || n == b".." {
                return Err(Errno::EBUSY);
            }
        }
        check_new_name(new_name)?;
        if name.is_empty() {
            return Err(Errno::ENOENT);
        }
        let same_dir = same_inode(self, nd_t);
        let _ns = lock(&self.fs.ns);
        // Under `ns`, the order of these two locks cannot matter.
        let mut sg = lock(d);
        let mut dg = if same_dir { None } else { Some(lock(nd)) };

        let src = sg.children.get(name).cloned().ok_or(Errno::ENOENT)?;
        let src_t = as_tmpfs(&src).ok_or(Errno::EXDEV)?;
        let target = match &dg {
            Some(g) => {
                if g.dead {
                    return Err(Errno::ENOENT);
                }
                g.children.get(new_name).cloned()
            }
            None => sg.children.get(new_name).cloned(),
        };
        // Moving a directory under itself.
        if src_t.is_dir() && src_t.is_ancestor_of(nd_t) {
            return Err(Errno::EINVAL);
        }
        if let Some(tgt) = &target {
            let tgt_t = as_tmpfs(tgt).ok_or(Errno::EXDEV)?;
            // Replacing a directory that contains the source: it is not
            // empty. Also keeps us from locking `self` twice below.
            if tgt_t.is_ancestor_of(self) {
                return Err(Errno::ENOTEMPTY);
            }
            // Two names of one file: rename(2) does nothing.
            if same_inode(src_t, tgt_t) {
                return Ok(());
            }
            match (src_t.is_dir(), tgt_t.is_dir()) {
                (true, false) => return Err(Errno::ENOTDIR),
                (false, true) => return Err(Errno::EISDIR),
                (true, true) => {
                    // Not self or nd (nd's own entry cannot be nd; self was
                    // excluded above): safe to lock.
                    let mut tdd = lock(tgt_t.dir()?);
                    if !tdd.children.is_empty() {
                        return Err(Errno::ENOTEMPTY);
                    }
                    tdd.dead = true;
                }
                (false, false) => {}
            }
        }

        let now = Timespec::now();
        sg.children.remove(name);
        let tmap = match dg.as_mut() {
            Some(g) => &mut g.children,
            None => &mut sg.children,
        };
        let replaced = tmap.insert(new_name.to_vec(), src.clone());
        if let Some(old) = replaced.as_ref().and_then(as_tmpfs) {
            let mut m = lock(&old.meta);
            m.nlink = if old.is_dir() {
                0
            } else {
                m.nlink.saturating_sub(1)
            };
            m.ctime = now;
            drop(m);
            if old.is_dir() {
                nd_t.add_nlink(-1);
            }
        }
        if src_t.is_dir() && !same_dir {
            self.add_nlink(-1);
            nd_t.add_nlink(1);
            *lock(&src_t.parent) = nd_t.me.clone();
        }
        src_t.touch_ctime(now);
        self.touch_modified(now);
        if !same_dir {
            nd_t.touch_modified(now);
        }
        Ok(())
    }

    fn exchange(&self, name: &[u8], new_dir: &Arc<dyn Inode>, new_name: &[u8]) -> KResult<()> {
        let d = self.dir()?;
        let nd_t = as_tmpfs(new_dir)
            .filter(|n| Arc::ptr_eq(&n.fs, &self.fs))
            .ok_or(Errno::EXDEV)?;
        let nd = nd_t.dir()?;
        for n in [name, new_name] {
            if n == b"." || n == b".." || n.is_empty() {
                return Err(Errno::EBUSY);
            }
        }
        let same_dir = same_inode(self, nd_t);
        let _ns = lock(&self.fs.ns);
        let mut sg = lock(d);
        let mut dg = if same_dir { None } else { Some(lock(nd)) };
        let a = sg.children.get(name).cloned().ok_or(Errno::ENOENT)?;
        let b = match &dg {
            Some(g) => g.children.get(new_name).cloned(),
            None => sg.children.get(new_name).cloned(),
        }
        .ok_or(Errno::ENOENT)?;
        let (a_t, b_t) = (
            as_tmpfs(&a).ok_or(Errno::EXDEV)?,
            as_tmpfs(&b).ok_or(Errno::EXDEV)?,
        );
        if same_inode(a_t, b_t) {
            return Ok(());
        }
        // Neither may end up inside itself.
        if (a_t.is_dir() && a_t.is_ancestor_of(nd_t)) || (b_t.is_dir() && b_t.is_ancestor_of(self))
        {
            return Err(Errno::EINVAL);
        }
        sg.children.insert(name.to_vec(), b.clone());
        match dg.as_mut() {
            Some(g) => g.children.insert(new_name.to_vec(), a.clone()),
            None => sg.children.insert(new_name.to_vec(), a.clone()),
        };
        drop(sg);
        drop(dg);
        let now = Timespec::now();
        if !same_dir {
            // A directory changing parents moves its ".." link.
            let delta = a_t.is_dir() as i64 - b_t.is_dir() as i64;
            if delta != 0 {
                self.add_nlink(-delta);
                nd_t.add_nlink(delta);
            }
            if a_t.is_dir() {
                *lock(&a_t.parent) = nd_t.me.clone();
            }
            if b_t.is_dir() {
                *lock(&b_t.parent) = self.me.clone();
            }
            nd_t.touch_modified(now);
        }
        a_t.touch_ctime(now);
        b_t.touch_ctime(now);
        self.touch_modified(now);
        Ok(())
    }

    fn set_mode(&self, mode: u32) -> KResult<()> {
        let mut m = lock(&self.meta);
        m.perm = mode & PERM_MASK;
        m.ctime = Timespec::now();
        Ok(())
    }

    fn set_owner(&self, uid: Option<u32>, gid: Option<u32>) -> KResult<()> {
        let mut m = lock(&self.meta);
        if let Some(u) = uid {
            m.uid = u;
        }
        if let Some(g) = gid {
            m.gid = g;
        }
        // chown_common(): on anything but a directory, even a no-op chown
        // by root drops set-user-ID, and set-group-ID when it marks an
        // executable (with group exec; without it, it means mandatory
        // locking and stays).
        if !self.is_dir() {
            m.perm &= !libc::S_ISUID;
            if m.perm & libc::S_IXGRP != 0 {
                m.perm &= !libc::S_ISGID;
            }
        }
        m.ctime = Timespec::now();
        Ok(())
    }

    fn getxattr(&self, name: &[u8]) -> KResult<Vec<u8>> {
        xattr_name_ok(name)?;
        lock(&self.meta)
            .xattrs
            .get(name)
            .cloned()
            .ok_or(Errno::ENODATA)
    }

    fn setxattr(&self, name: &[u8], value: &[u8], flags: i32) -> KResult<()> {
        xattr_name_ok(name)?;
        if value.len() > XATTR_SIZE_MAX {
            return Err(Errno::E2BIG);
        }
        if flags & !(XATTR_CREATE | XATTR_REPLACE) != 0 {
            return Err(Errno::EINVAL);
        }
        let mut m = lock(&self.meta);
        match m.xattrs.entry(name.to_vec()) {
            Entry::Occupied(_) if flags & XATTR_CREATE != 0 => return Err(Errno::EEXIST),
            Entry::Vacant(_) if flags & XATTR_REPLACE != 0 => return Err(Errno::ENODATA),
            Entry::Occupied(mut o) => {
                o.insert(value.to_vec());
            }
            Entry::Vacant(v) => {
                v.insert(value.to_vec());
            }
        }
        m.ctime = Timespec::now();
        Ok(())
    }

    fn listxattr(&self) -> KResult<Vec<Vec<u8>>> {
        Ok(lock(&self.meta).xattrs.keys().cloned().collect())
    }

    fn removexattr(&self, name: &[u8]) -> KResult<()> {
        xattr_name_ok(name)?;
        let mut m = lock(&self.meta);
        m.xattrs.remove(name).ok_or(Errno::ENODATA)?;
        m.ctime = Timespec::now();
        Ok(())
    }

    fn set_times(&self, atime: Option<Timespec>, mtime: Option<Timespec>) -> KResult<()> {
        if atime.is_none() && mtime.is_none() {
            // Both UTIME_OMIT: Linux returns without touching ctime.
            return Ok(());
        }
        let mut m = lock(&self.meta);
        if let Some(a) = atime {
            m.atime = a;
        }
        if let Some(t) = mtime {
            m.mtime = t;
        }
        m.ctime = Timespec::now();
        Ok(())
    }

    fn truncate(&self, len: u64) -> KResult<()> {
        let data = match &self.kind {
            Kind::File(d) => d,
            Kind::Dir(_) => return Err(Errno::EISDIR),
            Kind::Symlink(_) | Kind::Fifo(_) | Kind::Socket => return Err(Errno::EINVAL),
        };
        if len > MAX_FILE_SIZE {
            return Err(Errno::EFBIG);
        }
        {
            let mut fd = lock(data);
            if len < fd.size {
                // Drop whole pages past the end, zero the tail of the last
                // one so a later extension reads zeros.
                let keep = len.div_ceil(PAGE as u64);
                let dropped = fd.pages.split_off(&keep);
                self.fs.release_pages(dropped.len() as u64);
                let tail = (len % PAGE as u64) as usize;
                if tail != 0 {
                    if let Some(p) = fd.pages.get_mut(&(len / PAGE as u64)) {
                        p.zero_from(tail);
                    }
                }
            }
            fd.size = len;
        }
        // do_truncate() always passes ATTR_MTIME|ATTR_CTIME.
        self.touch_modified(Timespec::now());
        Ok(())
    }

    fn fs_id(&self) -> usize {
        self.fs.id
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// An open regular tmpfs file.
pub struct TmpfsFile {
    inode: Arc<TmpfsInode>,
}

impl TmpfsFile {
    pub fn inode(&self) -> &Arc<TmpfsInode> {
        &self.inode
    }
}

impl FileOps for TmpfsFile {
    fn read(&self, _t: &Task, _f: &File, buf: &mut [u8], off: u64) -> KResult<usize> {
        self.inode.read_at(buf, off)
    }
    fn write(&self, _t: &Task, _f: &File, buf: &[u8], off: u64) -> KResult<usize> {
        self.inode.write_at(buf, off)
    }
    fn seekable(&self) -> bool {
        true
    }
    fn stat(&self) -> KResult<Stat> {
        self.inode.stat()
    }
    fn truncate(&self, len: u64) -> KResult<()> {
        self.inode.truncate(len)
    }

    fn shared_mapping(&self, off: u64, len: u64) -> Option<KResult<Vec<MapRun>>> {
        let page = PAGE as u64;
        Some(self.inode.shared_runs(off / page, len.div_ceil(page)))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Replaces the contents of tmpfs regular file `inode` (setting up files
/// without a task, and tests). EINVAL for anything else.
pub fn set_contents(inode: &dyn Inode, data: &[u8]) -> KResult<()> {
    let t = inode
        .as_any()
        .downcast_ref::<TmpfsInode>()
        .ok_or(Errno::EINVAL)?;
    t.truncate(0)?;
    let mut done = 0;
    while done < data.len() {
        done += t.write_at(&data[done..], done as u64)?;
    }
    Ok(())
}

/// The whole contents of tmpfs regular file `inode`.
pub fn contents(inode: &dyn Inode) -> KResult<Vec<u8>> {
    let t = inode
        .as_any()
        .downcast_ref::<TmpfsInode>()
        .ok_or(Errno::EINVAL)?;
    let size = t.stat()?.size;
    let mut out = vec![0u8; usize::try_from(size).map_err(|_| Errno::EFBIG)?];
    let n = t.read_at(&mut out, 0)?;
    out.truncate(n);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(d: &Arc<dyn Inode>) -> Vec<Vec<u8>> {
        d.readdir().unwrap().into_iter().map(|e| e.name).collect()
    }

    fn nlink(i: &Arc<dyn Inode>) -> u64 {
        i.stat().unwrap().nlink
    }

    #[test]
    fn root_and_create() {
        let root = new_tmpfs(0o1777);
        let st = root.stat().unwrap();
        assert_eq!(st.mode, libc::S_IFDIR | 0o1777);
        assert_eq!(st.nlink, 2);
        assert_eq!(st.size, 40);
        let f = root.create(b"a", 0o100644, 5, 6).unwrap();
        let fs = f.stat().unwrap();
        assert_eq!(fs.mode, libc::S_IFREG | 0o644);
        assert_eq!((fs.uid, fs.gid, fs.nlink, fs.size), (5, 6, 1, 0));
        assert_eq!(fs.dev, st.dev);
        assert_ne!(fs.ino, st.ino);
        assert_eq!(root.create(b"a", 0o644, 0, 0).err(), Some(Errno::EEXIST));
        assert_eq!(root.lookup(b"b").err(), Some(Errno::ENOENT));
        assert!(Arc::ptr_eq(&root.lookup(b"a").unwrap(), &f));
        assert_eq!(f.lookup(b"x").err(), Some(Errno::ENOTDIR));
        assert_eq!(f.create(b"x", 0o644, 0, 0).err(), Some(Errno::ENOTDIR));
        assert_eq!(root.stat().unwrap().size, 60);
        let e = root.readdir().unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].d_type, libc::DT_REG);
        assert_eq!(e[0].ino, fs.ino);
        assert_eq!(root.fs_id(), f.fs_id());
        assert_ne!(new_tmpfs(0o755).fs_id(), root.fs_id());
    }

    #[test]
    fn file_data_sparse_and_truncate() {
        let root = new_tmpfs(0o755);
        let f = root.create(b"f", 0o644, 0, 0).unwrap();
        let t = f.as_any().downcast_ref::<TmpfsInode>().unwrap();
        assert_eq!(t.write_at(b"hello", 0).unwrap(), 5);
        assert_eq!(t.write_at(b"xy", 10000).unwrap(), 2);
        let st = f.stat().unwrap();
        assert_eq!(st.size, 10002);
        assert_eq!(st.blocks, 16); // pages 0 and 2 only
        let data = contents(&*f).unwrap();
        assert_eq!(&data[..5], b"hello");
        assert!(data[5..10000].iter().all(|&b| b == 0));
        assert_eq!(&data[10000..], b"xy");
        let mut buf = [0u8; 10];
        assert_eq!(t.read_at(&mut buf, 10001).unwrap(), 1);
        assert_eq!(t.read_at(&mut buf, 20000).unwrap(), 0);
        // Shrinking then growing reads zeros where data was.
        f.truncate(3).unwrap();
        f.truncate(8).unwrap();
        assert_eq!(contents(&*f).unwrap(), b"hel\0\0\0\0\0");
        assert_eq!(f.stat().unwrap().blocks, 8);
        f.truncate(1 << 40).unwrap();
        assert_eq!(f.stat().unwrap().size, 1 << 40);
        assert_eq!(f.stat().unwrap().blocks, 8);
        assert_eq!(t.write_at(b"x", MAX_FILE_SIZE).err(), Some(Errno::EFBIG));
        assert_eq!(root.truncate(0).err(), Some(Errno::EISDIR));
        set_contents(&*f, b"new").unwrap();
        assert_eq!(contents(&*f).unwrap(), b"new");
    }

    #[test]
    fn size_limit() {
        let root = new_tmpfs_with(0o755, 0, 0, Some(2 * PAGE as u64));
        let f = root.create(b"f", 0o644, 0, 0).unwrap();
        let t = f.as_any().downcast_ref::<TmpfsInode>().unwrap();
        let big = vec![1u8; 3 * PAGE];
        assert_eq!(t.write_at(&big, 0).unwrap(), 2 * PAGE);
        assert_eq!(t.write_at(&big, 2 * PAGE as u64).err(), Some(Errno::ENOSPC));
        assert_eq!(t.usage(), (2, 2));
        root.unlink(b"f").unwrap();
        drop(f);
        let g = root.create(b"g", 0o644, 0, 0).unwrap();
        let t = g.as_any().downcast_ref::<TmpfsInode>().unwrap();
        assert_eq!(t.usage(), (0, 2));
    }

    #[test]
    fn times() {
        let root = new_tmpfs(0o755);
        let f = root.create(b"f", 0o644, 0, 0).unwrap();
        let old = Timespec { sec: 100, nsec: 5 };
        f.set_times(Some(old), Some(old)).unwrap();
        let st = f.stat().unwrap();
        assert_eq!((st.atime, st.mtime), (old, old));
        assert!(st.ctime.sec > 100);
        let t = f.as_any().downcast_ref::<TmpfsInode>().unwrap();
        t.write_at(b"x", 0).unwrap();
        let st = f.stat().unwrap();
        assert!(st.mtime.sec > 100 && st.mtime == st.ctime);
        let mut b = [0u8; 1];
        t.read_at(&mut b, 0).unwrap();
        assert!(f.stat().unwrap().atime.sec > 100);
        root.set_times(Some(old), Some(old)).unwrap();
        root.mkdir(b"d", 0o755, 0, 0).unwrap();
        assert!(root.stat().unwrap().mtime.sec > 100);
        f.set_times(None, None).unwrap();
    }

    #[test]
    fn modes_owner_setgid() {
        let root = new_tmpfs(0o755);
        let f = root.create(b"f", 0o6755, 0, 0).unwrap();
        f.set_mode(libc::S_IFREG | 0o6750).unwrap();
        assert_eq!(f.stat().unwrap().mode, libc::S_IFREG | 0o6750);
        f.set_owner(Some(1), None).unwrap();
        let st = f.stat().unwrap();
        assert_eq!((st.uid, st.gid, st.mode), (1, 0, libc::S_IFREG | 0o750));
        root.set_mode(0o2775).unwrap();
        root.set_owner(None, Some(50)).unwrap();
        assert_eq!(root.stat().unwrap().mode, libc::S_IFDIR | 0o2775);
        root.mkdir(b"sub", 0o755, 7, 7).unwrap();
        let sub = root.lookup(b"sub").unwrap().stat().unwrap();
        assert_eq!((sub.gid, sub.mode), (50, libc::S_IFDIR | 0o2755));
        let g = root.create(b"g", 0o644, 7, 7).unwrap().stat().unwrap();
        assert_eq!((g.uid, g.gid), (7, 50));
    }

    #[test]
    fn dirs_and_links() {
        let root = new_tmpfs(0o755);
        root.mkdir(b"d", 0o755, 0, 0).unwrap();
        assert_eq!(nlink(&root), 3);
        let d = root.lookup(b"d").unwrap();
        assert_eq!(nlink(&d), 2);
        assert!(Arc::ptr_eq(&d.lookup(b"..").unwrap(), &root));
        assert!(Arc::ptr_eq(&d.lookup(b".").unwrap(), &d));
        assert_eq!(root.mkdir(b"d", 0o755, 0, 0).err(), Some(Errno::EEXIST));
        d.mkdir(b"e", 0o755, 0, 0).unwrap();
        assert_eq!(nlink(&d), 3);
        let f = d.create(b"f", 0o644, 0, 0).unwrap();
        root.link(b"hard", &f).unwrap();
        assert_eq!(nlink(&f), 2);
        assert_eq!(root.link(b"dl", &d).err(), Some(Errno::EPERM));
        assert_eq!(root.link(b"hard", &f).err(), Some(Errno::EEXIST));
        let other = new_tmpfs(0o755);
        assert_eq!(other.link(b"x", &f).err(), Some(Errno::EXDEV));
        assert_eq!(root.unlink(b"d").err(), Some(Errno::EISDIR));
        assert_eq!(root.rmdir(b"hard").err(), Some(Errno::ENOTDIR));
        assert_eq!(root.rmdir(b"d").err(), Some(Errno::ENOTEMPTY));
        assert_eq!(root.rmdir(b"nope").err(), Some(Errno::ENOENT));
        d.unlink(b"f").unwrap();
        assert_eq!(nlink(&f), 1);
        root.unlink(b"hard").unwrap();
        assert_eq!(nlink(&f), 0);
        assert_eq!(root.link(b"again", &f).err(), Some(Errno::ENOENT));
        let e = d.lookup(b"e").unwrap();
        d.rmdir(b"e").unwrap();
        assert_eq!(nlink(&e), 0);
        assert_eq!(nlink(&d), 2);
        assert_eq!(e.create(b"x", 0o644, 0, 0).err(), Some(Errno::ENOENT));
        root.rmdir(b"d").unwrap();
        assert_eq!(nlink(&root), 2);
        assert!(names(&root).is_empty());
    }

    #[test]
    fn symlinks() {
        let root = new_tmpfs(0o755);
        root.symlink(b"l", b"/some/where", 3, 4).unwrap();
        let l = root.lookup(b"l").unwrap();
        let st = l.stat().unwrap();
        assert_eq!(st.mode, libc::S_IFLNK | 0o777);
        assert_eq!(st.size, 11);
        assert_eq!(l.readlink().unwrap(), b"/some/where");
        assert_eq!(root.readdir().unwrap()[0].d_type, libc::DT_LNK);
        assert_eq!(root.symlink(b"m", b"", 0, 0).err(), Some(Errno::ENOENT));
        assert_eq!(root.readlink().err(), Some(Errno::EINVAL));
        assert_eq!(
            l.clone().open(libc::O_RDONLY as u32).err(),
            Some(Errno::ELOOP)
        );
        assert!(l.clone().open(libc::O_PATH as u32).is_ok());
        assert_eq!(root.unlink(b"l"), Ok(()));
    }

    #[test]
    fn open_kinds() {
        let root = new_tmpfs(0o755);
        let f = root.create(b"f", 0o644, 0, 0).unwrap();
        let fo = f.clone().open(libc::O_RDWR as u32).unwrap();
        assert!(fo.seekable());
        assert!(fo.as_any().is::<TmpfsFile>());
        assert_eq!(fo.stat().unwrap().ino, f.stat().unwrap().ino);
        assert_eq!(
            f.clone().open(libc::O_DIRECTORY as u32).err(),
            Some(Errno::ENOTDIR)
        );
        assert_eq!(
            root.clone().open(libc::O_WRONLY as u32).err(),
            Some(Errno::EISDIR)
        );
        let d = root.clone().open(libc::O_RDONLY as u32).unwrap();
        assert_eq!(d.readdir().unwrap().len(), 1);
        fo.truncate(7).unwrap();
        assert_eq!(f.stat().unwrap().size, 7);
    }

    #[test]
    fn rename_rules() {
        let root = new_tmpfs(0o755);
        root.mkdir(b"a", 0o755, 0, 0).unwrap();
        root.mkdir(b"b", 0o755, 0, 0).unwrap();
        let a = root.lookup(b"a").unwrap();
        let b = root.lookup(b"b").unwrap();
        let f = a.create(b"f", 0o644, 0, 0).unwrap();
        b.create(b"g", 0o644, 0, 0).unwrap();
        root.create(b"file", 0o644, 0, 0).unwrap();

        // Missing source.
        assert_eq!(root.rename(b"nope", &root, b"x"), Err(Errno::ENOENT));
        // Dir over non-empty dir.
        assert_eq!(root.rename(b"a", &root, b"b"), Err(Errno::ENOTEMPTY));
        // Dir over file.
        assert_eq!(root.rename(b"a", &root, b"file"), Err(Errno::ENOTDIR));
        // File over dir.
        assert_eq!(root.rename(b"file", &root, b"a"), Err(Errno::EISDIR));
        // Dir into itself / its descendant.
        assert_eq!(root.rename(b"a", &a, b"x"), Err(Errno::EINVAL));
        a.mkdir(b"sub", 0o755, 0, 0).unwrap();
        let sub = a.lookup(b"sub").unwrap();
        assert_eq!(root.rename(b"a", &sub, b"x"), Err(Errno::EINVAL));
        // Over an ancestor of the source.
        assert_eq!(sub.rename(b".", &root, b"a").err(), Some(Errno::EBUSY));
        sub.create(b"s", 0o644, 0, 0).unwrap();
        assert_eq!(sub.rename(b"s", &root, b"a"), Err(Errno::ENOTEMPTY));
        sub.unlink(b"s").unwrap();
        // Cross-filesystem.
        let other = new_tmpfs(0o755);
        assert_eq!(a.rename(b"f", &other, b"f"), Err(Errno::EXDEV));
        // Target dir is a file.
        let file = root.lookup(b"file").unwrap();
        assert_eq!(a.rename(b"f", &file, b"x"), Err(Errno::ENOTDIR));

        // File over file across directories.
        let g = b.lookup(b"g").unwrap();
        a.rename(b"f", &b, b"g").unwrap();
        assert!(Arc::ptr_eq(&b.lookup(b"g").unwrap(), &f));
        assert_eq!(a.lookup(b"f").err(), Some(Errno::ENOENT));
        assert_eq!(nlink(&g), 0);
        assert_eq!(nlink(&f), 1);

        // Hard links to one file: no-op.
        b.link(b"h", &f).unwrap();
        b.rename(b"g", &b, b"h").unwrap();
        assert!(b.lookup(b"g").is_ok() && b.lookup(b"h").is_ok());
        // Same name: no-op.
        b.rename(b"g", &b, b"g").unwrap();

        // Dir over empty dir in another dir; link counts follow.
        b.mkdir(b"empty", 0o755, 0, 0).unwrap();
        let empty = b.lookup(b"empty").unwrap();
        assert_eq!((nlink(&root), nlink(&a), nlink(&b)), (4, 3, 3));
        a.rename(b"sub", &b, b"empty").unwrap();
        assert_eq!((nlink(&a), nlink(&b)), (2, 3));
        assert_eq!(nlink(&empty), 0);
        assert_eq!(empty.create(b"x", 0o644, 0, 0).err(), Some(Errno::ENOENT));
        assert!(Arc::ptr_eq(&sub.lookup(b"..").unwrap(), &b));
        assert!(Arc::ptr_eq(&b.lookup(b"empty").unwrap(), &sub));

        // Dir moved to a new name in another dir.
        b.rename(b"empty", &root, b"moved").unwrap();
        assert_eq!((nlink(&root), nlink(&b)), (5, 2));
        assert!(Arc::ptr_eq(&sub.lookup(b"..").unwrap(), &root));
        // Same-dir rename of a dir keeps counts.
        root.rename(b"moved", &root, b"m2").unwrap();
        assert_eq!(nlink(&root), 5);
        assert_eq!(
            names(&root),
            vec![
                b"a".to_vec(),
                b"b".to_vec(),
                b"file".to_vec(),
                b"m2".to_vec()
            ]
        );
        // Moving a directory's sibling into it is fine.
        root.rename(b"file", &a, b"file").unwrap();
        assert_eq!(names(&a), vec![b"file".to_vec()]);
    }
}

#[cfg(test)]
mod shared_tests {
    use super::*;

    #[test]
    fn shared_runs_move_pages_into_the_memory_file_once() {
        let root = new_tmpfs(0o755);
        let f = root.create(b"f", 0o644, 0, 0).expect("create");
        let t = f.as_any().downcast_ref::<TmpfsInode>().expect("tmpfs");
        t.write_at(b"hello", 0).expect("write");
        t.write_at(b"page2", 2 * PAGE as u64).expect("write");
        // Pages 0..4: the heap page 0, a hole, heap page 2, a hole: one run.
        let runs = t.shared_runs(0, 4).expect("runs");
        assert_eq!(runs.len(), 1);
        assert_eq!((runs[0].first, runs[0].n, runs[0].ext_page), (0, 4, 0));
        let mut b = [0u8; 5];
        assert_eq!(t.read_at(&mut b, 0).expect("read"), 5);
        assert_eq!(&b, b"hello");
        // The same pages again: the same run, nothing new allocated.
        let again = t.shared_runs(1, 2).expect("runs");
        assert_eq!(again.len(), 1);
        assert!(Arc::ptr_eq(&again[0].ext, &runs[0].ext));
        assert_eq!((again[0].first, again[0].n, again[0].ext_page), (0, 2, 1));
        // A write through the file is in the mapped page.
        t.write_at(b"X", 2 * PAGE as u64).expect("write");
        let mut m = [0u8; 1];
        // SAFETY: page 2 of the run is mapped in the sentry's view.
        unsafe {
            std::ptr::copy_nonoverlapping(
                runs[0].ext.mf.ptr(runs[0].ext.off + 2 * PAGE as u64),
                m.as_mut_ptr(),
                1,
            )
        };
        assert_eq!(&m, b"X");
        // Beyond the mapped pages, a new run.
        let more = t.shared_runs(3, 3).expect("runs");
        assert_eq!(more.len(), 2);
    }
}
