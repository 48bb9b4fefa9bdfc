//! The gofer-backed filesystem (the container root, read-only for now):
//! inodes are gofer fids; opening a file gets a host fd donated by the
//! gofer, served by host::HostFile.
//!
//! Attributes, lookups, symlink targets and listings are cached for the
//! inode's life. That is correct because the root is read-only and the
//! sandbox is its only user: nothing can change it under us.
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
use gofer::protocol::Fid;
use std::any::Any;
use std::collections::{HashMap, VecDeque};
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
    stat: Stat,
    /// Looked-up children, weakly (see the module comment).
    children: Mutex<HashMap<Vec<u8>, Weak<GoferInode>>>,
    link: Mutex<Option<Vec<u8>>>,
    listing: Mutex<Option<Vec<DirEntry>>>,
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
    });
    Ok(Arc::new(GoferInode::new(fs, fid, &st)))
}

/// The flags passed on to the gofer's open: the access mode, O_NONBLOCK
/// and O_DIRECTORY. Everything else is either handled here (O_CREAT,
/// O_EXCL, O_TRUNC: no writes on this filesystem), belongs to our open
/// file description (O_APPEND, O_ASYNC, O_DIRECT, O_NOATIME, O_SYNC…) or
/// to our fd (O_CLOEXEC), and the gofer refuses most of them.
fn gofer_open_flags(flags: u32) -> i32 {
    let keep = (libc::O_ACCMODE | libc::O_NONBLOCK | libc::O_DIRECTORY) as u32;
    (flags & keep) as i32
}

impl GoferInode {
    fn new(fs: Arc<GoferFs>, fid: Fid, st: &gofer::protocol::Stat) -> GoferInode {
        GoferInode {
            fs,
            fid,
            stat: stat_from_gofer(st),
            children: Mutex::new(HashMap::new()),
            link: Mutex::new(None),
            listing: Mutex::new(None),
        }
    }

    /// statfs(2) of the filesystem holding this file.
    pub fn statfs(&self) -> KResult<gofer::protocol::Statfs> {
        self.fs.call(|c| c.statfs(self.fid))
    }

    fn lookup_cached(&self, name: &[u8]) -> KResult<Arc<GoferInode>> {
        if !self.stat.is_dir() {
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
    fn stat(&self) -> KResult<Stat> {
        Ok(self.stat.clone())
    }

    fn lookup(&self, name: &[u8]) -> KResult<Arc<dyn Inode>> {
        Ok(self.lookup_cached(name)?)
    }

    fn readlink(&self) -> KResult<Vec<u8>> {
        if !self.stat.is_symlink() {
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
        if check_open(self.stat.mode, flags)? {
            return Ok(PathFile::open(self));
        }
        if self.stat.is_dir() {
            // Listing comes from the cached readdir; no host fd needed.
            return Ok(DirFile::open(self));
        }
        // Read-only filesystem: write access, or truncating a regular file
        // (even opened read-only), is EROFS.
        let trunc = flags & libc::O_TRUNC as u32 != 0 && self.stat.file_type() == libc::S_IFREG;
        if wants_write(flags) || trunc {
            return Err(Errno::EROFS);
        }
        let fd = self
            .fs
            .call(|c| c.open(self.fid, gofer_open_flags(flags)))?;
        Ok(HostFile::new(fd))
    }

    fn readdir(&self) -> KResult<Vec<DirEntry>> {
        if !self.stat.is_dir() {
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

    // Creating: EEXIST for a name that exists, else EROFS (filename_create()
    // order); removing: EROFS (the mount is checked before the lookup).
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
    fn rename(&self, _name: &[u8], new_dir: &Arc<dyn Inode>, _new_name: &[u8]) -> KResult<()> {
        if new_dir.fs_id() != self.fs.id {
            return Err(Errno::EXDEV);
        }
        Err(self.dir_write_error())
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
        std::thread::spawn(move || gofer::serve(root, b, true));
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
