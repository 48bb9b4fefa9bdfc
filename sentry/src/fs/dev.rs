//! /dev: a fixed directory of the character devices programs expect (null,
//! zero, full, random, urandom; tty, ptmx and the pts directory from
//! devpts.rs), the /proc/self/fd symlinks (fd, stdin, stdout, stderr) and
//! a writable tmpfs at shm. The directory itself is
//! read-only; device nodes accept chmod/chown/utimes like devtmpfs nodes.

use super::{
    check_open, devpts, lock, new_anon_dev, new_fs_id, next_ino, ro_create_error, tmpfs, DirFile,
    PathFile,
};
use crate::errno::{Errno, KResult};
use crate::kernel::task::Task;
use crate::vfs::{dtype_of_mode, makedev, DirEntry, File, FileOps, Inode, Stat, Timespec};
use std::any::Any;
use std::sync::{Arc, Mutex};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DevKind {
    Null,
    Zero,
    Full,
    Random,
    URandom,
}

impl DevKind {
    fn minor(self) -> u32 {
        match self {
            DevKind::Null => 3,
            DevKind::Zero => 5,
            DevKind::Full => 7,
            DevKind::Random => 8,
            DevKind::URandom => 9,
        }
    }
}

/// Mutable attributes of a node (devices and symlinks).
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
    fn new(perm: u32) -> Meta {
        let now = Timespec::now();
        Meta {
            perm,
            uid: 0,
            gid: 0,
            atime: now,
            mtime: now,
            ctime: now,
        }
    }
}

enum NodeKind {
    Dev(DevKind),
    Symlink(&'static [u8]),
}

/// A device node or symlink in /dev.
pub struct DevNode {
    ino: u64,
    dev: u64,
    fs_id: usize,
    kind: NodeKind,
    meta: Mutex<Meta>,
}

impl DevNode {
    fn fmt(&self) -> u32 {
        match self.kind {
            NodeKind::Dev(_) => libc::S_IFCHR,
            NodeKind::Symlink(_) => libc::S_IFLNK,
        }
    }
}

impl Inode for DevNode {
    fn stat(&self) -> KResult<Stat> {
        let m = lock(&self.meta).clone();
        let (rdev, size) = match self.kind {
            NodeKind::Dev(k) => (makedev(1, k.minor()), 0),
            NodeKind::Symlink(t) => (0, t.len() as u64),
        };
        Ok(Stat {
            dev: self.dev,
            ino: self.ino,
            mode: self.fmt() | m.perm,
            nlink: 1,
            uid: m.uid,
            gid: m.gid,
            rdev,
            size,
            blksize: 4096,
            blocks: 0,
            atime: m.atime,
            mtime: m.mtime,
            ctime: m.ctime,
        })
    }

    fn readlink(&self) -> KResult<Vec<u8>> {
        match self.kind {
            NodeKind::Symlink(t) => Ok(t.to_vec()),
            NodeKind::Dev(_) => Err(Errno::EINVAL),
        }
    }

    fn open(self: Arc<Self>, flags: u32) -> KResult<Arc<dyn FileOps>> {
        let perm = lock(&self.meta).perm;
        if check_open(self.fmt() | perm, flags)? {
            return Ok(PathFile::open(self));
        }
        match self.kind {
            NodeKind::Dev(kind) => Ok(Arc::new(DevFile { kind, node: self })),
            NodeKind::Symlink(_) => Err(Errno::ELOOP),
        }
    }

    fn set_mode(&self, mode: u32) -> KResult<()> {
        let mut m = lock(&self.meta);
        m.perm = mode & 0o7777;
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
        m.perm &= !libc::S_ISUID;
        if m.perm & libc::S_IXGRP != 0 {
            m.perm &= !libc::S_ISGID;
        }
        m.ctime = Timespec::now();
        Ok(())
    }

    fn set_times(&self, atime: Option<Timespec>, mtime: Option<Timespec>) -> KResult<()> {
        if atime.is_none() && mtime.is_none() {
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

    fn truncate(&self, _len: u64) -> KResult<()> {
        // truncate(2) of a character device succeeds and does nothing
        // (O_TRUNC on /dev/null is common: `> /dev/null`).
        match self.kind {
            NodeKind::Dev(_) => Ok(()),
            NodeKind::Symlink(_) => Err(Errno::EINVAL),
        }
    }

    fn fs_id(&self) -> usize {
        self.fs_id
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// An open device. Seekable like Linux's (lseek on /dev/null succeeds,
/// pread works); the offset is ignored.
pub struct DevFile {
    kind: DevKind,
    node: Arc<DevNode>,
}

impl DevFile {
    pub fn kind(&self) -> DevKind {
        self.kind
    }
}

/// Fills `buf` from the host's getrandom(2) (the CRNG: /dev/random no
/// longer blocks once it is seeded, which it is by the time we run).
fn fill_random(buf: &mut [u8]) -> KResult<usize> {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        // SAFETY: rest is a live, writable buffer of rest.len() bytes.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let e = Errno::last();
            if e == Errno::EINTR {
                continue;
            }
            return if done > 0 { Ok(done) } else { Err(e) };
        }
        done += n as usize;
    }
    Ok(done)
}

impl FileOps for DevFile {
    fn read(&self, _t: &Task, _f: &File, buf: &mut [u8], _off: u64) -> KResult<usize> {
        match self.kind {
            DevKind::Null => Ok(0),
            DevKind::Zero | DevKind::Full => {
                buf.fill(0);
                Ok(buf.len())
            }
            DevKind::Random | DevKind::URandom => fill_random(buf),
        }
    }

    fn write(&self, _t: &Task, _f: &File, buf: &[u8], _off: u64) -> KResult<usize> {
        match self.kind {
            // write_full() fails even for zero bytes.
            DevKind::Full => Err(Errno::ENOSPC),
            // Writes to random devices mix into the pool; accepted.
            _ => Ok(buf.len()),
        }
    }

    fn seekable(&self) -> bool {
        true
    }

    fn stat(&self) -> KResult<Stat> {
        self.node.stat()
    }

    fn truncate(&self, _len: u64) -> KResult<()> {
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The /dev directory.
pub struct DevDir {
    ino: u64,
    dev: u64,
    fs_id: usize,
    meta: Mutex<Meta>,
    /// In listing order.
    entries: Vec<(&'static [u8], Arc<dyn Inode>)>,
}

/// A new /dev.
pub fn new_devfs() -> Arc<dyn Inode> {
    let dev = new_anon_dev();
    let fs_id = new_fs_id();
    let pts = devpts::DevPts::new();
    let node = |kind: NodeKind, perm: u32| -> Arc<dyn Inode> {
        Arc::new(DevNode {
            ino: next_ino(),
            dev,
            fs_id,
            kind,
            meta: Mutex::new(Meta::new(perm)),
        })
    };
    let entries: Vec<(&'static [u8], Arc<dyn Inode>)> = vec![
        (b"null", node(NodeKind::Dev(DevKind::Null), 0o666)),
        (b"zero", node(NodeKind::Dev(DevKind::Zero), 0o666)),
        (b"full", node(NodeKind::Dev(DevKind::Full), 0o666)),
        (b"random", node(NodeKind::Dev(DevKind::Random), 0o666)),
        (b"urandom", node(NodeKind::Dev(DevKind::URandom), 0o666)),
        (b"tty", devpts::tty_node(dev, fs_id)),
        (b"ptmx", devpts::ptmx_node(&pts, dev, fs_id)),
        (b"pts", pts),
        // Its own tmpfs instance, as /dev/shm is a separate mount on Linux
        // (rename between it and /tmp is EXDEV there too).
        (b"shm", tmpfs::new_tmpfs(0o1777)),
        (b"fd", node(NodeKind::Symlink(b"/proc/self/fd"), 0o777)),
        (b"stdin", node(NodeKind::Symlink(b"/proc/self/fd/0"), 0o777)),
        (
            b"stdout",
            node(NodeKind::Symlink(b"/proc/self/fd/1"), 0o777),
        ),
        (
            b"stderr",
            node(NodeKind::Symlink(b"/proc/self/fd/2"), 0o777),
        ),
    ];
    Arc::new(DevDir {
        ino: next_ino(),
        dev,
        fs_id,
        meta: Mutex::new(Meta::new(0o755)),
        entries,
    })
}

impl DevDir {
    fn find(&self, name: &[u8]) -> Option<&Arc<dyn Inode>> {
        self.entries
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, i)| i)
    }

    fn subdirs(&self) -> u64 {
        self.entries
            .iter()
            .filter(|(_, i)| i.stat().map(|s| s.is_dir()).unwrap_or(false))
            .count() as u64
    }

    /// Removal in a read-only directory: ENOENT for a missing name (the
    /// lookup the syscall layer does first normally catches it), else EROFS.
    fn ro_remove_error(&self, name: &[u8]) -> Errno {
        if self.find(name).is_some() {
            Errno::EROFS
        } else {
            Errno::ENOENT
        }
    }
}

impl Inode for DevDir {
    fn stat(&self) -> KResult<Stat> {
        let m = lock(&self.meta).clone();
        Ok(Stat {
            dev: self.dev,
            ino: self.ino,
            mode: libc::S_IFDIR | m.perm,
            nlink: 2 + self.subdirs(),
            uid: m.uid,
            gid: m.gid,
            rdev: 0,
            size: (2 + self.entries.len() as u64) * 20,
            blksize: 4096,
            blocks: 0,
            atime: m.atime,
            mtime: m.mtime,
            ctime: m.ctime,
        })
    }

    fn lookup(&self, name: &[u8]) -> KResult<Arc<dyn Inode>> {
        self.find(name).cloned().ok_or(Errno::ENOENT)
    }

    fn open(self: Arc<Self>, flags: u32) -> KResult<Arc<dyn FileOps>> {
        let perm = lock(&self.meta).perm;
        if check_open(libc::S_IFDIR | perm, flags)? {
            return Ok(PathFile::open(self));
        }
        Ok(DirFile::open(self))
    }

    fn readdir(&self) -> KResult<Vec<DirEntry>> {
        Ok(self
            .entries
            .iter()
            .filter_map(|(name, i)| {
                let st = i.stat().ok()?;
                Some(DirEntry {
                    ino: st.ino,
                    d_type: dtype_of_mode(st.mode),
                    name: name.to_vec(),
                })
            })
            .collect())
    }

    fn create(&self, name: &[u8], _mode: u32, _uid: u32, _gid: u32) -> KResult<Arc<dyn Inode>> {
        Err(ro_create_error(self, name))
    }
    fn mkdir(&self, name: &[u8], _mode: u32, _uid: u32, _gid: u32) -> KResult<()> {
        Err(ro_create_error(self, name))
    }
    fn symlink(&self, name: &[u8], _target: &[u8], _uid: u32, _gid: u32) -> KResult<()> {
        Err(ro_create_error(self, name))
    }
    fn link(&self, name: &[u8], _target: &Arc<dyn Inode>) -> KResult<()> {
        Err(ro_create_error(self, name))
    }
    fn unlink(&self, name: &[u8]) -> KResult<()> {
        Err(self.ro_remove_error(name))
    }
    fn rmdir(&self, name: &[u8]) -> KResult<()> {
        Err(self.ro_remove_error(name))
    }
    fn rename(&self, name: &[u8], new_dir: &Arc<dyn Inode>, _new_name: &[u8]) -> KResult<()> {
        if new_dir.fs_id() != self.fs_id {
            return Err(Errno::EXDEV);
        }
        Err(self.ro_remove_error(name))
    }

    fn set_mode(&self, mode: u32) -> KResult<()> {
        let mut m = lock(&self.meta);
        m.perm = mode & 0o7777;
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
        m.ctime = Timespec::now();
        Ok(())
    }

    fn set_times(&self, atime: Option<Timespec>, mtime: Option<Timespec>) -> KResult<()> {
        if atime.is_none() && mtime.is_none() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let d = new_devfs();
        let st = d.stat().unwrap();
        assert_eq!(st.mode, libc::S_IFDIR | 0o755);
        assert_eq!(st.nlink, 4);
        for (name, minor) in [
            (&b"null"[..], 3),
            (b"zero", 5),
            (b"full", 7),
            (b"random", 8),
            (b"urandom", 9),
        ] {
            let n = d.lookup(name).unwrap();
            let s = n.stat().unwrap();
            assert_eq!(s.mode, libc::S_IFCHR | 0o666);
            assert_eq!(s.rdev, makedev(1, minor));
            assert_eq!(s.dev, st.dev);
            let f = n.clone().open(libc::O_RDWR as u32).unwrap();
            assert!(f.seekable());
            assert_eq!(
                f.readiness(crate::vfs::file::POLLIN),
                crate::vfs::file::POLLIN
            );
        }
        assert_eq!(
            d.lookup(b"stdout").unwrap().readlink().unwrap(),
            b"/proc/self/fd/1"
        );
        assert_eq!(
            d.lookup(b"fd").unwrap().readlink().unwrap(),
            b"/proc/self/fd"
        );
        let shm = d.lookup(b"shm").unwrap();
        assert_eq!(shm.stat().unwrap().mode, libc::S_IFDIR | 0o1777);
        assert_ne!(shm.fs_id(), d.fs_id());
        shm.create(b"x", 0o600, 0, 0).unwrap();
        let names: Vec<_> = d.readdir().unwrap().into_iter().map(|e| e.name).collect();
        assert_eq!(names.len(), 13);
        assert!(names.contains(&b"urandom".to_vec()));
        assert_eq!(d.lookup(b"nope").err(), Some(Errno::ENOENT));
    }

    #[test]
    fn read_only_dir() {
        let d = new_devfs();
        assert_eq!(d.create(b"null", 0o644, 0, 0).err(), Some(Errno::EEXIST));
        assert_eq!(d.create(b"new", 0o644, 0, 0).err(), Some(Errno::EROFS));
        assert_eq!(d.mkdir(b"shm", 0o755, 0, 0).err(), Some(Errno::EEXIST));
        assert_eq!(d.unlink(b"null").err(), Some(Errno::EROFS));
        assert_eq!(d.unlink(b"nope").err(), Some(Errno::ENOENT));
        assert_eq!(
            d.clone().open(libc::O_WRONLY as u32).err(),
            Some(Errno::EISDIR)
        );
        let null = d.lookup(b"null").unwrap();
        assert_eq!(null.lookup(b"x").err(), Some(Errno::ENOTDIR));
        null.set_mode(0o600).unwrap();
        assert_eq!(null.stat().unwrap().mode, libc::S_IFCHR | 0o600);
        null.truncate(0).unwrap();
    }

    #[test]
    fn random_fills() {
        let mut buf = [0u8; 64];
        assert_eq!(fill_random(&mut buf).unwrap(), 64);
        assert!(buf.iter().any(|&b| b != 0));
    }
}
