//! The gofer-backed filesystem (the container root): inodes are gofer
//! fids; opening a file gets a host fd donated by the gofer, served by
//! host::HostFile. Whether it may be written is the gofer's decision: a
//! read-only gofer answers every change with EROFS, which the guest sees.
//!
//! Attributes, lookups, symlink targets and listings are cached. That is
//! correct because the sandbox is the only user of the tree: every change
//! goes through this file, which updates or invalidates what it changed:
//! - lookups (`children`): creating adds the new entry, removing drops
//!   it, renaming moves it (so a renamed file keeps its inode); there is
//!   no negative caching, so dropping an entry is always safe;
//! - listings: dropped on any change to the directory;
//! - attributes: replaced by what the gofer answers to a change of this
//!   inode (SetAttr, Link), or marked stale (re-read on the next stat) when
//!   an operation changes them as a side effect (a directory's mtime and
//!   nlink, a removed or replaced file's nlink). A regular file written
//!   through a host fd changes without us seeing it, so once this
//!   filesystem has been written to, the stat of a regular file that was
//!   opened for writing, or has other names (nlink > 1: its other inodes
//!   may have written), is re-read from the gofer every time;
//! - symlink targets never change.
//!
//! Every inode holds a gofer fid, and every fid an fd in the gofer, so the
//! cache must stay bounded: directories remember their children weakly,
//! and what keeps recently used inodes alive is a fixed-size ring of
//! strong references per filesystem (plus whatever dentries and open
//! directories hold). If the gofer still runs out of fds (EMFILE/ENFILE),
//! the ring is emptied, releasing every idle fid, and the call retried.

use super::host::HostFile;
use super::{check_open, lock, new_fs_id, ro_create_error, wants_write, DirFile, PathFile};
use crate::errno::{Errno, KResult};
use crate::vfs::{DirEntry, FileOps, Inode, Stat, Timespec};
use gofer::client::Client;
use gofer::protocol::{
    Fid, SetAttr, SETATTR_ATIME, SETATTR_GID, SETATTR_MODE, SETATTR_MTIME, SETATTR_SIZE,
    SETATTR_UID,
};
use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// How many recent lookups keep their inode (and fid) alive.
const HOT_INODES: usize = 1024;

/// One attached gofer filesystem. (The ring makes it live as long as the
/// sandbox: its inodes point back to it.)
struct GoferFs {
    client: Arc<Client>,
    id: usize,
    /// Recently looked-up inodes, oldest first; an inode may appear more
    /// than once (each hit pushes it again, so hot ones stay).
    hot: Mutex<VecDeque<Arc<GoferInode>>>,
    /// Something was changed, or a writable fd handed out, through this
    /// filesystem: from then on some regular files' attributes are re-read
    /// (see the module comment). Never set with a read-only gofer.
    dirty: AtomicBool,
}

impl GoferFs {
    fn keep_hot(&self, i: &Arc<GoferInode>) {
        let evicted = {
            let mut h = lock(&self.hot);
            h.push_back(i.clone());
            if h.len() > HOT_INODES {
                h.pop_front()
            } else {
                None
            }
        };
        // Clunking (in Drop) talks to the gofer: outside the lock.
        drop(evicted);
    }

    /// Releases every idle fid.
    fn flush_hot(&self) {
        let all = std::mem::take(&mut *lock(&self.hot));
        drop(all);
    }

    /// Runs a gofer call, retrying once after releasing idle fids if the
    /// gofer is out of fds.
    fn call<T>(&self, mut f: impl FnMut(&Client) -> Result<T, nix::errno::Errno>) -> KResult<T> {
        match f(&self.client) {
            Err(nix::errno::Errno::EMFILE | nix::errno::Errno::ENFILE) => {
                self.flush_hot();
                f(&self.client).map_err(Errno::from_nix)
            }
            r => r.map_err(Errno::from_nix),
        }
    }
}

pub struct GoferInode {
    fs: Arc<GoferFs>,
    fid: Fid,
    /// The file type bits (S_IFMT): they never change.
    ftype: u32,
    /// The attributes as last seen.
    stat: Mutex<Stat>,
    /// `stat` is out of date: re-read it on the next stat().
    stale: AtomicBool,
    /// A writable host fd of this (regular) file was handed out.
    written: AtomicBool,
    /// Looked-up children, weakly (see the module comment).
    children: Mutex<HashMap<Vec<u8>, Weak<GoferInode>>>,
    link: Mutex<Option<Vec<u8>>>,
    listing: Mutex<Option<Vec<DirEntry>>>,
    /// The read-write fd the gofer donated when it created this file,
    /// for the open that follows the creation: opening it again could be
    /// refused by the new file's own mode (a 0444 file, say) when the
    /// gofer is not root, where open(O_CREAT) must still succeed.
    created_fd: Mutex<Option<OwnedFd>>,
}

/// Maps the gofer's stat (the host's fstatat) into ours. Sizes the host
/// reports as negative (they never are) become 0.
pub fn stat_from_gofer(s: &gofer::protocol::Stat) -> Stat {
    Stat {
        dev: s.st_dev,
        ino: s.st_ino,
        mode: s.st_mode,
        nlink: s.st_nlink,
        uid: s.st_uid,
        gid: s.st_gid,
        rdev: s.st_rdev,
        size: s.st_size.max(0) as u64,
        blksize: s.st_blksize.max(0) as u64,
        blocks: s.st_blocks.max(0) as u64,
        atime: Timespec {
            sec: s.st_atime,
            nsec: s.st_atime_nsec,
        },
        mtime: Timespec {
            sec: s.st_mtime,
            nsec: s.st_mtime_nsec,
        },
        ctime: Timespec {
            sec: s.st_ctime,
            nsec: s.st_ctime_nsec,
        },
    }
}

/// Attaches to the gofer behind `client` and returns the root directory.
pub fn new_goferfs(client: Arc<Client>) -> KResult<Arc<dyn Inode>> {
    let (fid, st) = client.attach().map_err(Errno::from_nix)?;
    let fs = Arc::new(GoferFs {
        client,
        id: new_fs_id(),
        hot: Mutex::new(VecDeque::new()),
        dirty: AtomicBool::new(false),
    });
    Ok(Arc::new(GoferInode::new(fs, fid, &st)))
}

/// The flags passed on to the gofer's open: the access mode, O_NONBLOCK
/// and O_DIRECTORY. Everything else is either handled here (O_CREAT and
/// O_EXCL by the path walk and create(); O_TRUNC is added back by open()
/// for regular files), belongs to our open file description (O_APPEND,
/// O_ASYNC, O_DIRECT, O_NOATIME, O_SYNC…) or to our fd (O_CLOEXEC), and
/// the gofer refuses most of them.
fn gofer_open_flags(flags: u32) -> i32 {
    let keep = (libc::O_ACCMODE | libc::O_NONBLOCK | libc::O_DIRECTORY) as u32;
    (flags & keep) as i32
}

impl GoferInode {
    fn new(fs: Arc<GoferFs>, fid: Fid, st: &gofer::protocol::Stat) -> GoferInode {
        GoferInode {
            fs,
            fid,
            ftype: st.st_mode & libc::S_IFMT,
            stat: Mutex::new(stat_from_gofer(st)),
            stale: AtomicBool::new(false),
            written: AtomicBool::new(false),
            children: Mutex::new(HashMap::new()),
            link: Mutex::new(None),
            listing: Mutex::new(None),
            created_fd: Mutex::new(None),
        }
    }

    fn is_dir(&self) -> bool {
        self.ftype == libc::S_IFDIR
    }

    fn is_reg(&self) -> bool {
        self.ftype == libc::S_IFREG
    }

    /// Records attributes the gofer just reported for this inode.
    fn set_stat(&self, st: &gofer::protocol::Stat) {
        *lock(&self.stat) = stat_from_gofer(st);
    }

    /// Whether stat() must ask the gofer (see the module comment).
    fn must_refresh(&self) -> bool {
        if self.stale.swap(false, Ordering::AcqRel) {
            return true;
        }
        self.is_reg()
            && self.fs.dirty.load(Ordering::Acquire)
            && (self.written.load(Ordering::Acquire) || lock(&self.stat).nlink > 1)
    }

    /// This directory's entries changed: its listing and its own
    /// attributes (mtime, nlink) are out of date.
    fn dir_changed(&self) {
        *lock(&self.listing) = None;
        self.stale.store(true, Ordering::Release);
        self.fs.dirty.store(true, Ordering::Release);
    }

    /// Caches `child` as entry `name` of this directory (replacing what
    /// was there) and keeps it hot.
    fn add_child(&self, name: &[u8], child: &Arc<GoferInode>) {
        lock(&self.children).insert(name.to_vec(), Arc::downgrade(child));
        self.fs.keep_hot(child);
    }

    /// Forgets entry `name`, returning its inode if it is alive.
    fn take_child(&self, name: &[u8]) -> Option<Arc<GoferInode>> {
        let weak = lock(&self.children).remove(name);
        weak.and_then(|w| w.upgrade())
    }

    /// Common start of the operations that add an entry to this directory.
    fn check_new_entry(&self, name: &[u8]) -> KResult<()> {
        if !self.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        if name.len() > 255 {
            return Err(Errno::ENAMETOOLONG);
        }
        Ok(())
    }

    /// Runs an operation that adds `name` to this directory, giving a
    /// read-only gofer's EROFS the precedence Linux gives EEXIST.
    fn creating<T>(
        &self,
        name: &[u8],
        f: impl FnMut(&Client) -> Result<T, nix::errno::Errno>,
    ) -> KResult<T> {
        self.check_new_entry(name)?;
        match self.fs.call(f) {
            Err(Errno::EROFS) => Err(ro_create_error(self, name)),
            r => r,
        }
    }

    /// Adds the inode of a freshly made entry `name` (fid and stat from
    /// the gofer) to the caches.
    fn made(&self, name: &[u8], fid: Fid, st: &gofer::protocol::Stat) -> Arc<GoferInode> {
        let new = Arc::new(GoferInode::new(self.fs.clone(), fid, st));
        self.add_child(name, &new);
        self.dir_changed();
        new
    }

    /// Removes entry `name` (`flags`: 0 or AT_REMOVEDIR).
    fn remove(&self, name: &[u8], flags: u32) -> KResult<()> {
        if !self.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        self.fs.call(|c| c.unlink(self.fid, name, flags))?;
        if let Some(gone) = self.take_child(name) {
            // Its nlink dropped (to 0 for a directory, which is empty).
            gone.stale.store(true, Ordering::Release);
            *lock(&gone.listing) = None;
        }
        self.dir_changed();
        Ok(())
    }

    /// Changes the attributes `attr.mask` selects and caches the result.
    fn setattr(&self, attr: SetAttr) -> KResult<()> {
        let st = self.fs.call(|c| c.setattr(self.fid, &attr))?;
        self.set_stat(&st);
        self.fs.dirty.store(true, Ordering::Release);
        Ok(())
    }

    /// statfs(2) of the filesystem holding this file.
    pub fn statfs(&self) -> KResult<gofer::protocol::Statfs> {
        self.fs.call(|c| c.statfs(self.fid))
    }

    fn lookup_cached(&self, name: &[u8]) -> KResult<Arc<GoferInode>> {
        if !self.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let cached = lock(&self.children).get(name).and_then(Weak::upgrade);
        if let Some(c) = cached {
            self.fs.keep_hot(&c);
            return Ok(c);
        }
        if name.len() > 255 {
            return Err(Errno::ENAMETOOLONG);
        }
        let (fid, st) = self.fs.call(|c| c.walk(self.fid, name))?;
        let new = Arc::new(GoferInode::new(self.fs.clone(), fid, &st));
        let kept = {
            let mut ch = lock(&self.children);
            match ch.get(name).and_then(Weak::upgrade) {
                // Another thread walked the same name meanwhile: keep
                // theirs; ours is clunked when `new` drops (after the lock).
                Some(theirs) => theirs,
                None => {
                    ch.insert(name.to_vec(), Arc::downgrade(&new));
                    new.clone()
                }
            }
        };
        drop(new);
        self.fs.keep_hot(&kept);
        Ok(kept)
    }
}

impl Drop for GoferInode {
    fn drop(&mut self) {
        // Failures are logged by the client; the fid is gone either way.
        let _ = self.fs.client.clunk(self.fid);
    }
}

impl Inode for GoferInode {
    /// The host filesystem's own numbers, as the gofer sees them.
    fn statfs(&self) -> KResult<crate::vfs::Statfs> {
        let h = GoferInode::statfs(self)?;
        let id = self.fs_id();
        Ok(crate::vfs::Statfs {
            fs_type: h.f_type,
            bsize: h.f_bsize,
            blocks: h.f_blocks,
            bfree: h.f_bfree,
            bavail: h.f_bavail,
            files: h.f_files,
            ffree: h.f_ffree,
            fsid: [id as u32, (id >> 32) as u32],
            namelen: h.f_namelen,
            frsize: h.f_bsize,
            flags: crate::vfs::ST_VALID,
        })
    }
    fn stat(&self) -> KResult<Stat> {
        if self.must_refresh() {
            match self.fs.call(|c| c.stat(self.fid)) {
                Ok(st) => self.set_stat(&st),
                Err(e) => {
                    self.stale.store(true, Ordering::Release);
                    return Err(e);
                }
            }
        }
        Ok(lock(&self.stat).clone())
    }

    fn lookup(&self, name: &[u8]) -> KResult<Arc<dyn Inode>> {
        Ok(self.lookup_cached(name)?)
    }

    fn readlink(&self) -> KResult<Vec<u8>> {
        if self.ftype != libc::S_IFLNK {
            return Err(Errno::EINVAL);
        }
        let mut l = lock(&self.link);
        if let Some(t) = &*l {
            return Ok(t.clone());
        }
        let t = self.fs.call(|c| c.readlink(self.fid))?;
        *l = Some(t.clone());
        Ok(t)
    }

    fn open(self: Arc<Self>, flags: u32) -> KResult<Arc<dyn FileOps>> {
        if check_open(self.ftype, flags)? {
            return Ok(PathFile::open(self));
        }
        if self.is_dir() {
            // Listing comes from the cached readdir; no host fd needed.
            return Ok(DirFile::open(self));
        }
        // Truncating a regular file needs write access even when opened
        // read-only (a read-only gofer refuses it with EROFS).
        let trunc = flags & libc::O_TRUNC as u32 != 0 && self.is_reg();
        let writes = wants_write(flags) || trunc;
        let created = if self.is_reg() {
            lock(&self.created_fd).take()
        } else {
            None
        };
        let from_create = created.is_some();
        let fd = match created {
            // Read-write, but our File enforces the access mode it was
            // opened with.
            Some(fd) => {
                if trunc {
                    nix::unistd::ftruncate(&fd, 0).map_err(Errno::from_nix)?;
                }
                fd
            }
            None => {
                let mut gflags = gofer_open_flags(flags);
                if trunc {
                    gflags |= libc::O_TRUNC;
                }
                self.fs.call(|c| c.open(self.fid, gflags))?
            }
        };
        if writes || from_create {
            if self.is_reg() {
                self.written.store(true, Ordering::Release);
            }
            self.stale.store(true, Ordering::Release);
            self.fs.dirty.store(true, Ordering::Release);
        }
        Ok(HostFile::new(fd))
    }

    fn readdir(&self) -> KResult<Vec<DirEntry>> {
        if !self.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let mut l = lock(&self.listing);
        if let Some(v) = &*l {
            return Ok(v.clone());
        }
        let v: Vec<DirEntry> = self
            .fs
            .call(|c| c.readdir(self.fid))?
            .into_iter()
            .map(|e| DirEntry {
                ino: e.ino,
                d_type: e.d_type,
                name: e.name,
            })
            .collect();
        *l = Some(v.clone());
        Ok(v)
    }

    // With a read-only gofer, creating gives EEXIST for a name that exists,
    // else EROFS (filename_create() order); removing gives EROFS (the
    // mount is checked before the lookup).

    /// `mode` has the guest's umask applied already; the gofer sets it
    /// exactly.
    fn create(&self, name: &[u8], mode: u32, uid: u32, gid: u32) -> KResult<Arc<dyn Inode>> {
        let (fid, st, fd) = self.creating(name, |c| {
            c.create(self.fid, name, libc::O_RDWR, mode & 0o7777, uid, gid)
        })?;
        let new = self.made(name, fid, &st);
        *lock(&new.created_fd) = Some(fd);
        new.written.store(true, Ordering::Release);
        Ok(new)
    }

    fn mkdir(&self, name: &[u8], mode: u32, uid: u32, gid: u32) -> KResult<()> {
        let (fid, st) =
            self.creating(name, |c| c.mkdir(self.fid, name, mode & 0o7777, uid, gid))?;
        self.made(name, fid, &st);
        Ok(())
    }

    fn symlink(&self, name: &[u8], target: &[u8], uid: u32, gid: u32) -> KResult<()> {
        if target.is_empty() {
            return Err(Errno::ENOENT);
        }
        if target.len() >= libc::PATH_MAX as usize {
            return Err(Errno::ENAMETOOLONG);
        }
        let (fid, st) = self.creating(name, |c| c.symlink(self.fid, name, target, uid, gid))?;
        let new = self.made(name, fid, &st);
        *lock(&new.link) = Some(target.to_vec());
        Ok(())
    }

    fn mknod(&self, name: &[u8], mode: u32, rdev: u64, uid: u32, gid: u32) -> KResult<()> {
        let (fid, st) = self.creating(name, |c| c.mknod(self.fid, name, mode, rdev, uid, gid))?;
        self.made(name, fid, &st);
        Ok(())
    }

    fn link(&self, name: &[u8], target: &Arc<dyn Inode>) -> KResult<()> {
        let any: Arc<dyn Any + Send + Sync> = target.clone();
        let t = any
            .downcast::<GoferInode>()
            .ok()
            .filter(|t| Arc::ptr_eq(&t.fs, &self.fs))
            .ok_or(Errno::EXDEV)?;
        if t.is_dir() {
            return Err(Errno::EPERM);
        }
        let st = self.creating(name, |c| c.link(self.fid, name, t.fid))?;
        t.set_stat(&st);
        // The new name is the same file: the same inode.
        self.add_child(name, &t);
        self.dir_changed();
        Ok(())
    }

    fn unlink(&self, name: &[u8]) -> KResult<()> {
        self.remove(name, 0)
    }

    fn rmdir(&self, name: &[u8]) -> KResult<()> {
        self.remove(name, libc::AT_REMOVEDIR as u32)
    }

    fn rename(&self, name: &[u8], new_dir: &Arc<dyn Inode>, new_name: &[u8]) -> KResult<()> {
        let nd = new_dir
            .as_any()
            .downcast_ref::<GoferInode>()
            .filter(|n| Arc::ptr_eq(&n.fs, &self.fs) && Arc::ptr_eq(&n.fs.client, &self.fs.client))
            .ok_or(Errno::EXDEV)?;
        if !self.is_dir() || !nd.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        if new_name.len() > 255 {
            return Err(Errno::ENAMETOOLONG);
        }
        self.fs
            .call(|c| c.rename(self.fid, name, nd.fid, new_name, 0))?;
        let moved = self.take_child(name);
        let replaced = nd.take_child(new_name);
        if let Some(r) = &replaced {
            // Its nlink dropped (unless it was the moved file itself).
            r.stale.store(true, Ordering::Release);
            *lock(&r.listing) = None;
        }
        if let Some(m) = &moved {
            // ctime changed.
            m.stale.store(true, Ordering::Release);
            nd.add_child(new_name, m);
        }
        self.dir_changed();
        nd.dir_changed();
        Ok(())
    }

    fn exchange(&self, name: &[u8], new_dir: &Arc<dyn Inode>, new_name: &[u8]) -> KResult<()> {
        let nd = new_dir
            .as_any()
            .downcast_ref::<GoferInode>()
            .filter(|n| Arc::ptr_eq(&n.fs, &self.fs) && Arc::ptr_eq(&n.fs.client, &self.fs.client))
            .ok_or(Errno::EXDEV)?;
        if !self.is_dir() || !nd.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        self.fs
            .call(|c| c.rename(self.fid, name, nd.fid, new_name, libc::RENAME_EXCHANGE))?;
        let a = self.take_child(name);
        let b = nd.take_child(new_name);
        for (dir, n, child) in [(nd, new_name, &a), (self, name, &b)] {
            if let Some(c) = child {
                // ctime changed.
                c.stale.store(true, Ordering::Release);
                dir.add_child(n, c);
            }
        }
        self.dir_changed();
        nd.dir_changed();
        Ok(())
    }

    fn connect_host(&self, sock_type: i32) -> KResult<std::os::fd::OwnedFd> {
        self.fs.call(|c| c.connect(self.fid, sock_type))
    }

    fn getxattr(&self, name: &[u8]) -> KResult<Vec<u8>> {
        self.fs.call(|c| c.getxattr(self.fid, name))
    }

    fn setxattr(&self, name: &[u8], value: &[u8], flags: i32) -> KResult<()> {
        self.fs
            .call(|c| c.setxattr(self.fid, name, value, flags as u32))
    }

    fn listxattr(&self) -> KResult<Vec<Vec<u8>>> {
        self.fs.call(|c| c.listxattr(self.fid))
    }

    fn removexattr(&self, name: &[u8]) -> KResult<()> {
        self.fs.call(|c| c.removexattr(self.fid, name))
    }

    fn set_mode(&self, mode: u32) -> KResult<()> {
        self.setattr(SetAttr {
            mask: SETATTR_MODE,
            mode: mode & 0o7777,
            ..SetAttr::default()
        })
    }

    fn set_owner(&self, uid: Option<u32>, gid: Option<u32>) -> KResult<()> {
        let mut a = SetAttr::default();
        if let Some(uid) = uid {
            a.mask |= SETATTR_UID;
            a.uid = uid;
        }
        if let Some(gid) = gid {
            a.mask |= SETATTR_GID;
            a.gid = gid;
        }
        self.setattr(a)
    }

    /// `None` leaves a time unchanged (UTIME_OMIT).
    fn set_times(&self, atime: Option<Timespec>, mtime: Option<Timespec>) -> KResult<()> {
        let mut a = SetAttr::default();
        if let Some(t) = atime {
            a.mask |= SETATTR_ATIME;
            (a.atime_sec, a.atime_nsec) = (t.sec, t.nsec);
        }
        if let Some(t) = mtime {
            a.mask |= SETATTR_MTIME;
            (a.mtime_sec, a.mtime_nsec) = (t.sec, t.nsec);
        }
        self.setattr(a)
    }

    fn truncate(&self, len: u64) -> KResult<()> {
        if self.is_dir() {
            return Err(Errno::EISDIR);
        }
        // A file we just created and have not opened yet: truncate through
        // the fd we hold (reopening it could be refused by its mode).
        if let Some(fd) = &*lock(&self.created_fd) {
            let len = i64::try_from(len).map_err(|_| Errno::EINVAL)?;
            nix::unistd::ftruncate(fd, len).map_err(Errno::from_nix)?;
            self.stale.store(true, Ordering::Release);
            return Ok(());
        }
        self.setattr(SetAttr {
            mask: SETATTR_SIZE,
            size: len,
            ..SetAttr::default()
        })
    }

    fn fs_id(&self) -> usize {
        self.fs.id
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_mapping() {
        let g = gofer::protocol::Stat {
            st_dev: 0x803,
            st_ino: 1234,
            st_mode: libc::S_IFREG | 0o4755,
            st_nlink: 2,
            st_uid: 1000,
            st_gid: 100,
            st_rdev: 0,
            st_size: 4097,
            st_blksize: 4096,
            st_blocks: 16,
            st_atime: 1,
            st_atime_nsec: 2,
            st_mtime: 3,
            st_mtime_nsec: 4,
            st_ctime: 5,
            st_ctime_nsec: 6,
        };
        let s = stat_from_gofer(&g);
        assert_eq!(
            (s.dev, s.ino, s.mode, s.nlink),
            (0x803, 1234, libc::S_IFREG | 0o4755, 2)
        );
        assert_eq!(
            (s.uid, s.gid, s.size, s.blksize, s.blocks),
            (1000, 100, 4097, 4096, 16)
        );
        assert_eq!(s.atime, Timespec { sec: 1, nsec: 2 });
        assert_eq!(s.mtime, Timespec { sec: 3, nsec: 4 });
        assert_eq!(s.ctime, Timespec { sec: 5, nsec: 6 });
        let neg = gofer::protocol::Stat {
            st_size: -1,
            st_blocks: -5,
            ..g
        };
        let s = stat_from_gofer(&neg);
        assert_eq!((s.size, s.blocks), (0, 0));
    }

    /// A read-only gofer serving a fresh temporary tree, on its own thread.
    fn serve_tree() -> (std::path::PathBuf, Arc<dyn Inode>) {
        serve_tree_mode(true)
    }

    /// A gofer (read-only or writable) serving a fresh temporary tree.
    fn serve_tree_mode(read_only: bool) -> (std::path::PathBuf, Arc<dyn Inode>) {
        let dir = std::env::temp_dir().join(format!(
            "sentry-goferfs-test-{}-{}",
            std::process::id(),
            super::super::next_ino()
        ));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("file"), b"contents").unwrap();
        std::os::unix::fs::symlink("sub/../file", dir.join("link")).unwrap();
        let root: std::os::fd::OwnedFd = std::fs::File::open(&dir).unwrap().into();
        let (a, b) = gofer::socketpair().unwrap();
        std::thread::spawn(move || gofer::serve(root, b, read_only));
        let fs = new_goferfs(Arc::new(Client::new(a))).unwrap();
        (dir, fs)
    }

    #[test]
    fn served_tree() {
        let (dir, root) = serve_tree();
        assert!(root.stat().unwrap().is_dir());
        let mut names: Vec<_> = root
            .readdir()
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec![b"file".to_vec(), b"link".to_vec(), b"sub".to_vec()]
        );
        let f = root.lookup(b"file").unwrap();
        assert!(
            Arc::ptr_eq(&f, &root.lookup(b"file").unwrap()),
            "lookups are cached"
        );
        let st = f.stat().unwrap();
        assert_eq!((st.file_type(), st.size), (libc::S_IFREG, 8));
        assert_eq!(root.lookup(b"nope").err(), Some(Errno::ENOENT));
        assert_eq!(f.lookup(b"x").err(), Some(Errno::ENOTDIR));
        let l = root.lookup(b"link").unwrap();
        assert_eq!(l.readlink().unwrap(), b"sub/../file");
        assert_eq!(l.readlink().unwrap(), b"sub/../file");
        assert_eq!(f.readlink().err(), Some(Errno::EINVAL));
        assert_eq!(
            l.clone().open(libc::O_RDONLY as u32).err(),
            Some(Errno::ELOOP)
        );

        // Opening: read-only works and is host-backed; writing is EROFS.
        let o = f
            .clone()
            .open((libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_LARGEFILE) as u32)
            .unwrap();
        assert!(o.seekable());
        assert_eq!(o.stat().unwrap().ino, st.ino);
        let fd = o.host_fd().unwrap();
        let mut b = [0u8; 16];
        // SAFETY: b is a live buffer; fd is open for the test's duration.
        let n = unsafe { libc::pread(fd, b.as_mut_ptr().cast(), b.len(), 0) };
        assert_eq!(&b[..n as usize], b"contents");
        assert_eq!(
            f.clone().open(libc::O_RDWR as u32).err(),
            Some(Errno::EROFS)
        );
        assert_eq!(
            f.clone().open(libc::O_TRUNC as u32).err(),
            Some(Errno::EROFS)
        );
        assert_eq!(
            f.clone().open(libc::O_DIRECTORY as u32).err(),
            Some(Errno::ENOTDIR)
        );
        let d = root.lookup(b"sub").unwrap();
        assert_eq!(
            d.clone().open(libc::O_WRONLY as u32).err(),
            Some(Errno::EISDIR)
        );
        assert!(d
            .clone()
            .open(libc::O_RDONLY as u32)
            .unwrap()
            .readdir()
            .unwrap()
            .is_empty());

        // Writes: EEXIST before EROFS; ENOTDIR on files.
        assert_eq!(root.create(b"file", 0o644, 0, 0).err(), Some(Errno::EEXIST));
        assert_eq!(root.create(b"new", 0o644, 0, 0).err(), Some(Errno::EROFS));
        assert_eq!(root.mkdir(b"sub", 0o755, 0, 0).err(), Some(Errno::EEXIST));
        assert_eq!(root.unlink(b"file").err(), Some(Errno::EROFS));
        assert_eq!(f.mkdir(b"x", 0o755, 0, 0).err(), Some(Errno::ENOTDIR));
        assert_eq!(f.set_mode(0o600).err(), Some(Errno::EROFS));
        let other = crate::fs::tmpfs::new_tmpfs(0o755);
        assert_eq!(root.rename(b"file", &other, b"x").err(), Some(Errno::EXDEV));
        assert_eq!(root.rename(b"file", &root, b"x").err(), Some(Errno::EROFS));
        let sf = root
            .as_any()
            .downcast_ref::<GoferInode>()
            .unwrap()
            .statfs()
            .unwrap();
        assert!(sf.f_bsize > 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn host_mode(p: &std::path::Path) -> u32 {
        use std::os::unix::fs::MetadataExt;
        std::fs::symlink_metadata(p).unwrap().mode()
    }

    fn names_of(d: &Arc<dyn Inode>) -> Vec<Vec<u8>> {
        let mut v: Vec<_> = d.readdir().unwrap().into_iter().map(|e| e.name).collect();
        v.sort();
        v
    }

    fn pwrite(fd: i32, b: &[u8], off: i64) {
        // SAFETY: b is a live buffer; fd is open for the call's duration.
        let n = unsafe { libc::pwrite(fd, b.as_ptr().cast(), b.len(), off) };
        assert_eq!(n, b.len() as isize);
    }

    fn pread_all(fd: i32) -> Vec<u8> {
        let mut b = vec![0u8; 4096];
        // SAFETY: b is a live buffer; fd is open for the call's duration.
        let n = unsafe { libc::pread(fd, b.as_mut_ptr().cast(), b.len(), 0) };
        assert!(n >= 0);
        b.truncate(n as usize);
        b
    }

    #[test]
    fn writes_reach_the_host_and_keep_caches_right() {
        let (dir, root) = serve_tree_mode(false);
        let root_nlink = root.stat().unwrap().nlink;
        assert_eq!(
            names_of(&root).len(),
            3,
            "listing cached before the changes"
        );

        // create: exact mode, cached as a child, listed.
        let new = root.create(b"new", 0o640, 0, 0).unwrap();
        assert_eq!(new.stat().unwrap().mode, libc::S_IFREG | 0o640);
        assert_eq!(host_mode(&dir.join("new")), libc::S_IFREG | 0o640);
        assert!(Arc::ptr_eq(&new, &root.lookup(b"new").unwrap()));
        assert!(names_of(&root).contains(&b"new".to_vec()));
        assert_eq!(root.create(b"new", 0o644, 0, 0).err(), Some(Errno::EEXIST));
        assert_eq!(root.create(b"sub", 0o644, 0, 0).err(), Some(Errno::EEXIST));

        // Writes through the fd show in stat().
        let o = new.clone().open(libc::O_RDWR as u32).unwrap();
        pwrite(o.host_fd().unwrap(), b"abc", 0);
        assert_eq!(new.stat().unwrap().size, 3);
        pwrite(o.host_fd().unwrap(), b"defg", 3);
        assert_eq!(new.stat().unwrap().size, 7);
        assert_eq!(std::fs::read(dir.join("new")).unwrap(), b"abcdefg");

        // mkdir: the parent's nlink (stale, re-read) goes up.
        root.mkdir(b"d", 0o2750 | libc::S_IFDIR, 0, 0).unwrap();
        let d = root.lookup(b"d").unwrap();
        assert_eq!(d.stat().unwrap().mode, libc::S_IFDIR | 0o2750);
        assert_eq!(root.stat().unwrap().nlink, root_nlink + 1);
        assert_eq!(root.mkdir(b"d", 0o755, 0, 0).err(), Some(Errno::EEXIST));
        assert_eq!(new.mkdir(b"x", 0o755, 0, 0).err(), Some(Errno::ENOTDIR));

        // symlink.
        root.symlink(b"l", b"new", 0, 0).unwrap();
        let l = root.lookup(b"l").unwrap();
        assert!(l.stat().unwrap().is_symlink());
        assert_eq!(l.readlink().unwrap(), b"new");
        assert_eq!(
            std::fs::read_link(dir.join("l")).unwrap().to_str(),
            Some("new")
        );
        assert_eq!(root.symlink(b"l", b"x", 0, 0).err(), Some(Errno::EEXIST));

        // link: same inode under both names; nlink follows.
        root.link(b"hard", &new).unwrap();
        assert_eq!(new.stat().unwrap().nlink, 2);
        assert!(Arc::ptr_eq(&new, &root.lookup(b"hard").unwrap()));
        assert_eq!(root.link(b"hard2", &d).err(), Some(Errno::EPERM));
        let other = crate::fs::tmpfs::new_tmpfs(0o755);
        assert_eq!(root.link(b"x", &other).err(), Some(Errno::EXDEV));
        root.unlink(b"hard").unwrap();
        assert_eq!(new.stat().unwrap().nlink, 1);
        assert_eq!(root.lookup(b"hard").err(), Some(Errno::ENOENT));
        assert!(!dir.join("hard").exists());

        // rename into d: the inode moves with its name, its fid still opens.
        root.rename(b"new", &d, b"moved").unwrap();
        assert_eq!(root.lookup(b"new").err(), Some(Errno::ENOENT));
        let moved = d.lookup(b"moved").unwrap();
        assert!(Arc::ptr_eq(&new, &moved));
        assert!(!names_of(&root).contains(&b"new".to_vec()));
        assert_eq!(names_of(&d), vec![b"moved".to_vec()]);
        let r = moved.clone().open(libc::O_RDONLY as u32).unwrap();
        assert_eq!(pread_all(r.host_fd().unwrap()), b"abcdefg");
        assert_eq!(root.rename(b"file", &other, b"x").err(), Some(Errno::EXDEV));
        assert_eq!(root.rename(b"nope", &d, b"x").err(), Some(Errno::ENOENT));
        // Over an existing file: the replaced inode is stale, then gone.
        let file = root.lookup(b"file").unwrap();
        d.rename(b"moved", &root, b"file").unwrap();
        assert_eq!(file.stat().unwrap().nlink, 0);
        assert!(Arc::ptr_eq(&root.lookup(b"file").unwrap(), &new));
        assert_eq!(std::fs::read(dir.join("file")).unwrap(), b"abcdefg");

        // Attributes.
        new.set_mode(0o604).unwrap();
        assert_eq!(new.stat().unwrap().mode, libc::S_IFREG | 0o604);
        assert_eq!(host_mode(&dir.join("file")), libc::S_IFREG | 0o604);
        if nix::unistd::geteuid().is_root() {
            new.set_owner(Some(1234), None).unwrap();
            let st = new.stat().unwrap();
            assert_eq!(st.uid, 1234);
            new.set_owner(None, Some(4321)).unwrap();
            assert_eq!(
                (new.stat().unwrap().uid, new.stat().unwrap().gid),
                (1234, 4321)
            );
        }
        let mt = new.stat().unwrap().mtime;
        let t = Timespec {
            sec: 1_000_000,
            nsec: 42,
        };
        new.set_times(Some(t), None).unwrap();
        let st = new.stat().unwrap();
        assert_eq!((st.atime, st.mtime), (t, mt));
        new.truncate(2).unwrap();
        assert_eq!(new.stat().unwrap().size, 2);
        assert_eq!(std::fs::read(dir.join("file")).unwrap(), b"ab");
        assert_eq!(d.truncate(0).err(), Some(Errno::EISDIR));
        // Opening with O_TRUNC empties it.
        new.clone()
            .open((libc::O_WRONLY | libc::O_TRUNC) as u32)
            .unwrap();
        assert_eq!(new.stat().unwrap().size, 0);
        // Symlinks have no mode of their own.
        assert_eq!(l.set_mode(0o600).err(), Some(Errno::EOPNOTSUPP));

        // unlink / rmdir.
        d.mkdir(b"inner", 0o755, 0, 0).unwrap();
        assert_eq!(root.rmdir(b"d").err(), Some(Errno::ENOTEMPTY));
        let nl = d.stat().unwrap().nlink;
        d.rmdir(b"inner").unwrap();
        assert_eq!(d.stat().unwrap().nlink, nl - 1);
        assert_eq!(root.unlink(b"d").err(), Some(Errno::EISDIR));
        root.rmdir(b"d").unwrap();
        assert_eq!(root.lookup(b"d").err(), Some(Errno::ENOENT));
        assert_eq!(root.stat().unwrap().nlink, root_nlink);
        root.unlink(b"l").unwrap();
        root.unlink(b"file").unwrap();
        assert_eq!(root.unlink(b"file").err(), Some(Errno::ENOENT));
        assert_eq!(names_of(&root), vec![b"link".to_vec(), b"sub".to_vec()]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn created_file_opens_through_its_creation_fd() {
        let (dir, root) = serve_tree_mode(false);
        // Mode 0444: only the creating open may write it.
        let f = root.create(b"ro", 0o444, 0, 0).unwrap();
        // As open(O_CREAT|O_TRUNC) does: truncate, then open.
        f.truncate(0).unwrap();
        let o = f.clone().open(libc::O_WRONLY as u32).unwrap();
        pwrite(o.host_fd().unwrap(), b"data", 0);
        assert_eq!(f.stat().unwrap().size, 4);
        assert_eq!(host_mode(&dir.join("ro")), libc::S_IFREG | 0o444);
        // Later opens go to the gofer.
        let r = f.clone().open(libc::O_RDONLY as u32).unwrap();
        assert_eq!(pread_all(r.host_fd().unwrap()), b"data");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn idle_inodes_are_released() {
        let (dir, root) = serve_tree();
        let many = dir.join("many");
        std::fs::create_dir(&many).unwrap();
        for i in 0..HOT_INODES + 10 {
            std::fs::write(many.join(format!("f{i}")), b"").unwrap();
        }
        let m = root.lookup(b"many").unwrap();
        let first = Arc::downgrade(&m.lookup(b"f0").unwrap());
        assert!(first.upgrade().is_some(), "kept by the ring");
        for i in 1..HOT_INODES + 10 {
            m.lookup(format!("f{i}").as_bytes()).unwrap();
        }
        assert!(first.upgrade().is_none(), "evicted and clunked");
        // Looked up again on demand.
        assert_eq!(m.lookup(b"f0").unwrap().stat().unwrap().size, 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn open_flags_are_filtered() {
        let all = (libc::O_RDONLY
            | libc::O_NONBLOCK
            | libc::O_CLOEXEC
            | libc::O_NOCTTY
            | libc::O_LARGEFILE
            | libc::O_APPEND
            | libc::O_ASYNC
            | libc::O_DIRECT
            | libc::O_NOATIME
            | libc::O_SYNC
            | libc::O_DSYNC
            | 0o100000) as u32; // kernel O_LARGEFILE on x86-64
        assert_eq!(gofer_open_flags(all), libc::O_NONBLOCK);
        assert_eq!(
            gofer_open_flags(libc::O_DIRECTORY as u32),
            libc::O_DIRECTORY
        );
    }
}
