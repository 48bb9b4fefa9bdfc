//! Overlay filesystem: a read-only lower tree (the image, from the gofer)
//! under a writable upper tree in memory (tmpfs), so a container can change
//! its root freely while the image on the host is never written.
//!
//! Like Linux overlayfs: lookups prefer the upper layer; the first change to
//! a lower file copies it up (its parent directories first); deleting a
//! lower name leaves a whiteout; a directory re-created over a deleted lower
//! one is opaque. Renaming a directory copies up its whole lower tree first
//! and makes it opaque (Linux overlayfs needs redirect_dir for this, and
//! gives EXDEV without it; a memory upper makes the deep copy cheap enough).
//! Whiteouts and opacity live in memory, beside the memory upper.

use super::tmpfs::TmpfsInode;
use crate::errno::{Errno, KResult};
use crate::kernel::task::{current, lock};
use crate::vfs::file::FileOps;
use crate::vfs::{DirEntry, File, Inode, Stat, Timespec};
use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};

struct OverlayFs {
    id: usize,
    dev: u64,
    /// Whiteouts and opacity per upper directory (keyed by the upper
    /// inode, which is kept alive here so the key is never reused). Nodes
    /// come and go with the caches; this state must not.
    dirs: Mutex<HashMap<usize, DirState>>,
}

struct DirState {
    _keep: Arc<dyn Inode>,
    whiteouts: HashSet<Vec<u8>>,
    opaque: bool,
}

const OVERLAYFS_SUPER_MAGIC: u64 = 0x794c_7630;

fn key(i: &Arc<dyn Inode>) -> usize {
    Arc::as_ptr(i) as *const () as usize
}

pub struct OverlayNode {
    me: Weak<OverlayNode>,
    fs: Arc<OverlayFs>,
    parent: Option<Arc<OverlayNode>>,
    name: Vec<u8>,
    lower: Option<Arc<dyn Inode>>,
    upper: Mutex<Option<Arc<dyn Inode>>>,
    /// Live child nodes, so every path to a file shares its copy-up state.
    children: Mutex<HashMap<Vec<u8>, Weak<OverlayNode>>>,
}

/// Builds an overlay of `upper` (an empty tmpfs root) over `lower`.
pub fn new_overlay(lower: Arc<dyn Inode>, upper: Arc<dyn Inode>) -> Arc<dyn Inode> {
    let fs = Arc::new(OverlayFs {
        id: super::new_fs_id(),
        dev: super::new_anon_dev(),
        dirs: Mutex::new(HashMap::new()),
    });
    if let (Ok(ls), Some(t)) = (lower.stat(), upper.as_any().downcast_ref::<TmpfsInode>()) {
        // The root takes the image root's attributes.
        let _ = t.set_mode(ls.mode & 0o7777);
        let _ = t.set_owner(Some(ls.uid), Some(ls.gid));
        let _ = t.set_times(Some(ls.atime), Some(ls.mtime));
    }
    Arc::new_cyclic(|me| OverlayNode {
        me: me.clone(),
        fs,
        parent: None,
        name: Vec::new(),
        lower: Some(lower),
        upper: Mutex::new(Some(upper)),
        children: Mutex::new(HashMap::new()),
    })
}

fn is_dir(i: &Arc<dyn Inode>) -> bool {
    i.stat().map(|s| s.is_dir()).unwrap_or(false)
}

fn as_node(i: &Arc<dyn Inode>) -> KResult<&OverlayNode> {
    i.as_any().downcast_ref::<OverlayNode>().ok_or(Errno::EXDEV)
}

impl OverlayNode {
    fn upper(&self) -> Option<Arc<dyn Inode>> {
        lock(&self.upper).clone()
    }

    fn top(&self) -> KResult<Arc<dyn Inode>> {
        self.upper()
            .or_else(|| self.lower.clone())
            .ok_or(Errno::ENOENT)
    }

    /// Runs `f` on this directory's persistent state (it needs an upper).
    fn with_state<R>(&self, f: impl FnOnce(&mut DirState) -> R) -> Option<R> {
        let u = self.upper()?;
        let mut dirs = lock(&self.fs.dirs);
        let st = dirs.entry(key(&u)).or_insert_with(|| DirState {
            _keep: u.clone(),
            whiteouts: HashSet::new(),
            opaque: false,
        });
        Some(f(st))
    }

    fn is_whiteout(&self, name: &[u8]) -> bool {
        self.upper().is_some_and(|u| {
            lock(&self.fs.dirs)
                .get(&key(&u))
                .is_some_and(|d| d.whiteouts.contains(name))
        })
    }

    fn is_opaque(&self) -> bool {
        self.upper()
            .is_some_and(|u| lock(&self.fs.dirs).get(&key(&u)).is_some_and(|d| d.opaque))
    }

    fn set_whiteout(&self, name: &[u8], on: bool) {
        self.with_state(|d| {
            if on {
                d.whiteouts.insert(name.to_vec());
            } else {
                d.whiteouts.remove(name);
            }
        });
    }

    /// The lower directory's entry `name`, unless hidden.
    fn lower_child(&self, name: &[u8]) -> Option<Arc<dyn Inode>> {
        if self.is_opaque() || self.is_whiteout(name) {
            return None;
        }
        let l = self.lower.as_ref()?;
        if !is_dir(l) {
            return None;
        }
        l.lookup(name).ok()
    }

    fn child(self: &Arc<Self>, name: &[u8]) -> KResult<Arc<OverlayNode>> {
        if let Some(c) = lock(&self.children).get(name).and_then(|w| w.upgrade()) {
            return Ok(c);
        }
        let upper = self.upper().and_then(|u| u.lookup(name).ok());
        let mut lower = self.lower_child(name);
        if let Some(u) = &upper {
            // A non-directory upper hides the lower; two directories merge.
            if !is_dir(u) || lower.as_ref().is_some_and(|l| !is_dir(l)) {
                lower = None;
            }
        }
        if upper.is_none() && lower.is_none() {
            return Err(Errno::ENOENT);
        }
        // A directory re-created over a deleted lower one hides it.
        let opaque = upper
            .as_ref()
            .is_some_and(|u| lock(&self.fs.dirs).get(&key(u)).is_some_and(|d| d.opaque));
        let node = Arc::new_cyclic(|me| OverlayNode {
            me: me.clone(),
            fs: self.fs.clone(),
            parent: Some(self.clone()),
            name: name.to_vec(),
            lower: if opaque { None } else { lower },
            upper: Mutex::new(upper),
            children: Mutex::new(HashMap::new()),
        });
        let mut ch = lock(&self.children);
        ch.retain(|_, w| w.strong_count() > 0);
        ch.insert(name.to_vec(), Arc::downgrade(&node));
        Ok(node)
    }

    /// Gives this node an upper copy (copying its parents first).
    fn copy_up(&self) -> KResult<Arc<dyn Inode>> {
        if let Some(u) = self.upper() {
            return Ok(u);
        }
        let parent = self.parent.as_ref().ok_or(Errno::EIO)?;
        let pu = parent.copy_up()?;
        let lower = self.lower.clone().ok_or(Errno::ENOENT)?;
        let st = lower.stat()?;
        let mut up = lock(&self.upper);
        if let Some(u) = up.clone() {
            return Ok(u);
        }
        let new: Arc<dyn Inode> = match st.file_type() {
            libc::S_IFDIR => {
                pu.mkdir(&self.name, st.mode, st.uid, st.gid)?;
                pu.lookup(&self.name)?
            }
            libc::S_IFREG => {
                let u = pu.create(&self.name, st.mode, st.uid, st.gid)?;
                copy_data(&lower, &u)?;
                u
            }
            libc::S_IFLNK => {
                let target = lower.readlink()?;
                pu.symlink(&self.name, &target, st.uid, st.gid)?;
                pu.lookup(&self.name)?
            }
            _ => return Err(Errno::EOPNOTSUPP),
        };
        let _ = new.set_owner(Some(st.uid), Some(st.gid));
        if st.file_type() != libc::S_IFLNK {
            let _ = new.set_mode(st.mode & 0o7777);
        }
        // Extended attributes come along where both layers keep them.
        if let Ok(names) = lower.listxattr() {
            for n in names {
                if let Ok(v) = lower.getxattr(&n) {
                    let _ = new.setxattr(&n, &v, 0);
                }
            }
        }
        let _ = new.set_times(Some(st.atime), Some(st.mtime));
        *up = Some(new.clone());
        Ok(new)
    }

    /// Before a directory moves: copies up everything it shows, then
    /// makes it opaque, so at its new name it neither loses its lower
    /// content nor merges with a lower directory found there.
    fn copy_up_tree(self: &Arc<Self>) -> KResult<()> {
        let up = self.copy_up()?;
        if self.lower.is_some() && !self.is_opaque() {
            for e in self.merged()? {
                let c = self.child(&e.name)?;
                if c.stat()?.is_dir() {
                    c.copy_up_tree()?;
                } else {
                    c.copy_up()?;
                }
            }
        }
        lock(&self.fs.dirs)
            .entry(key(&up))
            .or_insert_with(|| DirState {
                _keep: up.clone(),
                whiteouts: HashSet::new(),
                opaque: false,
            })
            .opaque = true;
        Ok(())
    }

    /// The names this directory shows: upper, then lower minus whiteouts.
    fn merged(&self) -> KResult<Vec<DirEntry>> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        if let Some(u) = self.upper() {
            for e in u.readdir()? {
                seen.insert(e.name.clone());
                out.push(e);
            }
        }
        if !self.is_opaque() {
            if let Some(l) = self.lower.as_ref().filter(|l| is_dir(l)) {
                let wo = self.with_state(|d| d.whiteouts.clone()).unwrap_or_default();
                for e in l.readdir()? {
                    if !seen.contains(&e.name) && !wo.contains(&e.name) {
                        out.push(e);
                    }
                }
            }
        }
        Ok(out)
    }

    /// After creating a non-directory `name` in the upper dir.
    fn created(&self, name: &[u8]) {
        self.set_whiteout(name, false);
        lock(&self.children).remove(name);
    }

    fn exists(self: &Arc<Self>, name: &[u8]) -> bool {
        self.child(name).is_ok()
    }

    /// Removes `name` (already checked to exist) from both layers' view.
    fn remove(self: &Arc<Self>, name: &[u8], dir: bool) -> KResult<()> {
        let c = self.child(name)?;
        if dir && !c.merged()?.is_empty() {
            return Err(Errno::ENOTEMPTY);
        }
        let had_lower = c.lower.is_some() || self.lower_child(name).is_some();
        let u = self.copy_up()?;
        if c.upper().is_some() {
            if dir {
                u.rmdir(name)?;
            } else {
                u.unlink(name)?;
            }
        }
        if had_lower {
            self.set_whiteout(name, true);
        }
        lock(&self.children).remove(name);
        Ok(())
    }
}

/// Copies a lower file's bytes into its new upper copy.
fn copy_data(from: &Arc<dyn Inode>, to: &Arc<dyn Inode>) -> KResult<()> {
    let dst = to.as_any().downcast_ref::<TmpfsInode>().ok_or(Errno::EIO)?;
    let task = current().ok_or(Errno::EIO)?;
    let ops = from.clone().open(libc::O_RDONLY as u32)?;
    let f = File::new(ops, libc::O_RDONLY as u32, None);
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0u64;
    loop {
        let n = f.ops.read(&task, &f, &mut buf, off)?;
        if n == 0 {
            return Ok(());
        }
        dst.write_at(&buf[..n], off)?;
        off += n as u64;
    }
}

impl Inode for OverlayNode {
    fn stat(&self) -> KResult<Stat> {
        let mut st = self.top()?.stat()?;
        st.dev = self.fs.dev;
        // A copied-up object keeps its lower inode number, as on overlayfs:
        // programs (fts, cp, find) compare numbers across the copy-up.
        if let Some(l) = self.lower.as_ref().and_then(|l| l.stat().ok()) {
            st.ino = l.ino;
            if st.is_dir() {
                // Directory sizes and link counts are the image's (the
                // memory upper's own are filesystem-specific).
                st.size = l.size;
                st.blocks = l.blocks;
                st.nlink = l.nlink;
            }
        }
        Ok(st)
    }

    fn lookup(&self, name: &[u8]) -> KResult<Arc<dyn Inode>> {
        Ok(self.self_arc()?.child(name)?)
    }

    fn readlink(&self) -> KResult<Vec<u8>> {
        self.top()?.readlink()
    }

    fn open(self: Arc<Self>, flags: u32) -> KResult<Arc<dyn FileOps>> {
        let top = self.top()?;
        if is_dir(&top) {
            return Ok(super::DirFile::open(self));
        }
        let acc = flags & libc::O_ACCMODE as u32;
        let writes = acc != libc::O_RDONLY as u32 || flags & libc::O_TRUNC as u32 != 0;
        let inner = if writes {
            self.copy_up()?.open(flags)?
        } else {
            top.open(flags)?
        };
        Ok(Arc::new(OverlayFile {
            inner,
            dev: self.fs.dev,
            ino: self.lower_ino(),
        }))
    }

    fn readdir(&self) -> KResult<Vec<DirEntry>> {
        self.merged()
    }

    fn create(&self, name: &[u8], mode: u32, uid: u32, gid: u32) -> KResult<Arc<dyn Inode>> {
        let me = self.self_arc()?;
        if me.exists(name) {
            return Err(Errno::EEXIST);
        }
        let u = self.copy_up()?;
        u.create(name, mode, uid, gid)?;
        self.created(name);
        Ok(me.child(name)?)
    }

    fn mkdir(&self, name: &[u8], mode: u32, uid: u32, gid: u32) -> KResult<()> {
        let me = self.self_arc()?;
        if me.exists(name) {
            return Err(Errno::EEXIST);
        }
        let u = self.copy_up()?;
        u.mkdir(name, mode, uid, gid)?;
        let over_whiteout = self.is_whiteout(name);
        self.set_whiteout(name, false);
        lock(&self.children).remove(name);
        if over_whiteout {
            // The new directory must not show the deleted one's contents.
            let c = u.lookup(name)?;
            let mut dirs = lock(&self.fs.dirs);
            dirs.entry(key(&c))
                .or_insert_with(|| DirState {
                    _keep: c.clone(),
                    whiteouts: HashSet::new(),
                    opaque: false,
                })
                .opaque = true;
        }
        Ok(())
    }

    fn symlink(&self, name: &[u8], target: &[u8], uid: u32, gid: u32) -> KResult<()> {
        let me = self.self_arc()?;
        if me.exists(name) {
            return Err(Errno::EEXIST);
        }
        self.copy_up()?.symlink(name, target, uid, gid)?;
        self.created(name);
        Ok(())
    }

    fn mknod(&self, name: &[u8], mode: u32, rdev: u64, uid: u32, gid: u32) -> KResult<()> {
        let me = self.self_arc()?;
        if me.exists(name) {
            return Err(Errno::EEXIST);
        }
        self.copy_up()?.mknod(name, mode, rdev, uid, gid)?;
        self.created(name);
        Ok(())
    }

    fn unlink(&self, name: &[u8]) -> KResult<()> {
        let me = self.self_arc()?;
        let c = me.child(name)?;
        if c.stat()?.is_dir() {
            return Err(Errno::EISDIR);
        }
        me.remove(name, false)
    }

    fn rmdir(&self, name: &[u8]) -> KResult<()> {
        let me = self.self_arc()?;
        let c = me.child(name)?;
        if !c.stat()?.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        me.remove(name, true)
    }

    fn link(&self, name: &[u8], target: &Arc<dyn Inode>) -> KResult<()> {
        let me = self.self_arc()?;
        if me.exists(name) {
            return Err(Errno::EEXIST);
        }
        let t = as_node(target)?;
        let tu = t.copy_up()?;
        self.copy_up()?.link(name, &tu)?;
        self.created(name);
        Ok(())
    }

    fn rename(&self, name: &[u8], new_dir: &Arc<dyn Inode>, new_name: &[u8]) -> KResult<()> {
        let me = self.self_arc()?;
        let nd = as_node(new_dir)?.self_arc()?;
        let src = me.child(name)?;
        let src_dir = src.stat()?.is_dir();
        if let Ok(dst) = nd.child(new_name) {
            let dst_dir = dst.stat()?.is_dir();
            match (src_dir, dst_dir) {
                (true, false) => return Err(Errno::ENOTDIR),
                (false, true) => return Err(Errno::EISDIR),
                (true, true) if !dst.merged()?.is_empty() => return Err(Errno::ENOTEMPTY),
                _ => {}
            }
            if dst.upper().is_none() || (dst_dir && dst.lower.is_some()) {
                // Only a lower entry there: hide it, then the upper rename
                // lands in an empty slot.
                nd.remove(new_name, dst_dir)?;
            }
        }
        if src_dir {
            src.copy_up_tree()?;
        } else {
            src.copy_up()?;
        }
        let from_upper = self.copy_up()?;
        let to_upper = nd.copy_up()?;
        let had_lower = me.lower_child(name).is_some();
        from_upper.rename(name, &to_upper, new_name)?;
        if had_lower {
            self.set_whiteout(name, true);
        }
        nd.set_whiteout(new_name, false);
        lock(&self.children).remove(name);
        lock(&nd.children).remove(new_name);
        Ok(())
    }

    /// RENAME_EXCHANGE of two entries. Both are copied up (directories
    /// deeply, and made opaque, as for rename) and swapped in the upper
    /// layer; both names keep existing, so no whiteouts change.
    fn exchange(&self, name: &[u8], new_dir: &Arc<dyn Inode>, new_name: &[u8]) -> KResult<()> {
        let me = self.self_arc()?;
        let nd = as_node(new_dir)?.self_arc()?;
        let a = me.child(name)?;
        let b = nd.child(new_name)?;
        for node in [&a, &b] {
            if node.stat()?.is_dir() {
                node.copy_up_tree()?;
            } else {
                node.copy_up()?;
            }
        }
        let from_upper = self.copy_up()?;
        let to_upper = nd.copy_up()?;
        from_upper.exchange(name, &to_upper, new_name)?;
        lock(&self.children).remove(name);
        lock(&nd.children).remove(new_name);
        Ok(())
    }

    fn connect_host(&self, sock_type: i32) -> KResult<std::os::fd::OwnedFd> {
        // Only a node still in the image (not copied up) can be a host
        // socket.
        match (self.upper(), &self.lower) {
            (None, Some(l)) => l.connect_host(sock_type),
            _ => Err(Errno::ECONNREFUSED),
        }
    }

    fn getxattr(&self, name: &[u8]) -> KResult<Vec<u8>> {
        self.top()?.getxattr(name)
    }

    fn setxattr(&self, name: &[u8], value: &[u8], flags: i32) -> KResult<()> {
        self.copy_up()?.setxattr(name, value, flags)
    }

    fn listxattr(&self) -> KResult<Vec<Vec<u8>>> {
        self.top()?.listxattr()
    }

    fn removexattr(&self, name: &[u8]) -> KResult<()> {
        self.copy_up()?.removexattr(name)
    }

    fn set_mode(&self, mode: u32) -> KResult<()> {
        self.copy_up()?.set_mode(mode)
    }

    fn set_owner(&self, uid: Option<u32>, gid: Option<u32>) -> KResult<()> {
        self.copy_up()?.set_owner(uid, gid)
    }

    fn set_times(&self, atime: Option<Timespec>, mtime: Option<Timespec>) -> KResult<()> {
        self.copy_up()?.set_times(atime, mtime)
    }

    fn truncate(&self, len: u64) -> KResult<()> {
        self.copy_up()?.truncate(len)
    }

    fn fs_id(&self) -> usize {
        self.fs.id
    }

    /// As on overlayfs: the upper (memory) layer's space, overlay's magic.
    fn statfs(&self) -> KResult<crate::vfs::Statfs> {
        let mut root = self.self_arc()?;
        while let Some(p) = root.parent.clone() {
            root = p;
        }
        let mut st = root.upper().ok_or(Errno::EIO)?.statfs()?;
        st.fs_type = OVERLAYFS_SUPER_MAGIC;
        st.fsid = [self.fs.id as u32, (self.fs.id >> 32) as u32];
        Ok(st)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl OverlayNode {
    fn lower_ino(&self) -> Option<u64> {
        self.lower
            .as_ref()
            .and_then(|l| l.stat().ok())
            .map(|s| s.ino)
    }

    fn self_arc(&self) -> KResult<Arc<OverlayNode>> {
        self.me.upgrade().ok_or(Errno::ENOENT)
    }
}

/// An open overlay file: the layer's file, with fstat reporting the
/// overlay's device like stat does (programs compare the two).
struct OverlayFile {
    inner: Arc<dyn FileOps>,
    dev: u64,
    ino: Option<u64>,
}

impl FileOps for OverlayFile {
    fn read(
        &self,
        t: &crate::kernel::task::Task,
        f: &File,
        buf: &mut [u8],
        off: u64,
    ) -> KResult<usize> {
        self.inner.read(t, f, buf, off)
    }
    fn write(
        &self,
        t: &crate::kernel::task::Task,
        f: &File,
        buf: &[u8],
        off: u64,
    ) -> KResult<usize> {
        self.inner.write(t, f, buf, off)
    }
    fn seekable(&self) -> bool {
        self.inner.seekable()
    }
    fn stat(&self) -> KResult<Stat> {
        let mut st = self.inner.stat()?;
        st.dev = self.dev;
        if let Some(ino) = self.ino {
            st.ino = ino;
        }
        Ok(st)
    }
    fn readdir(&self) -> KResult<Vec<DirEntry>> {
        self.inner.readdir()
    }
    fn ioctl(&self, t: &crate::kernel::task::Task, f: &File, cmd: u32, arg: u64) -> KResult<u64> {
        self.inner.ioctl(t, f, cmd, arg)
    }
    fn readiness(&self, mask: u32) -> u32 {
        self.inner.readiness(mask)
    }
    fn queue(&self) -> Option<&crate::kernel::waiter::WaitQueue> {
        self.inner.queue()
    }
    fn host_fd(&self) -> Option<std::os::fd::RawFd> {
        self.inner.host_fd()
    }
    fn truncate(&self, len: u64) -> KResult<()> {
        self.inner.truncate(len)
    }
    fn fsync(&self) -> KResult<()> {
        self.inner.fsync()
    }
    fn shared_mapping(&self, off: u64, len: u64) -> Option<KResult<Vec<crate::mm::MapRun>>> {
        self.inner.shared_mapping(off, len)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
