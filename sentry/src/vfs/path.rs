//! Dentries, the mount table and path walk.
//!
//! A dentry is a name in its parent: walking ".." follows the parent, so a
//! mount's root sits under the dentry it covers and `..` leaves the mount the
//! way Linux does. The walk resolves symlinks itself (at most 40).

use super::Inode;
use crate::errno::{Errno, KResult};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub const MAX_SYMLINKS: u32 = 40;
pub const PATH_MAX: usize = 4096;

pub struct Dentry {
    pub name: Vec<u8>,
    pub parent: Option<Arc<Dentry>>,
    pub inode: Arc<dyn Inode>,
}

impl Dentry {
    pub fn root(inode: Arc<dyn Inode>) -> Arc<Dentry> {
        Arc::new(Dentry {
            name: Vec::new(),
            parent: None,
            inode,
        })
    }

    /// The absolute path of this dentry.
    pub fn path(&self) -> Vec<u8> {
        let mut parts: Vec<&[u8]> = Vec::new();
        let mut cur = self;
        while let Some(p) = &cur.parent {
            parts.push(&cur.name);
            cur = p;
        }
        if parts.is_empty() {
            return b"/".to_vec();
        }
        let mut out = Vec::new();
        for p in parts.iter().rev() {
            out.push(b'/');
            out.extend_from_slice(p);
        }
        out
    }

    pub fn is_dir(&self) -> bool {
        self.inode.stat().map(|s| s.is_dir()).unwrap_or(false)
    }
}

/// Per-task filesystem context: root, working directory, umask.
pub struct FsContext {
    pub root: Arc<Dentry>,
    pub cwd: Arc<Dentry>,
    pub umask: u32,
}

/// Per-mount options (MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MountFlags {
    pub readonly: bool,
    pub nosuid: bool,
    pub nodev: bool,
    pub noexec: bool,
}

impl MountFlags {
    /// From mount(2) flags.
    pub fn from_ms(flags: u64) -> MountFlags {
        MountFlags {
            readonly: flags & libc::MS_RDONLY != 0,
            nosuid: flags & libc::MS_NOSUID != 0,
            nodev: flags & libc::MS_NODEV != 0,
            noexec: flags & libc::MS_NOEXEC != 0,
        }
    }

    /// As /proc/mounts spells them.
    pub fn options(&self) -> String {
        let mut s = String::from(if self.readonly { "ro" } else { "rw" });
        for (on, name) in [
            (self.nosuid, ",nosuid"),
            (self.nodev, ",nodev"),
            (self.noexec, ",noexec"),
        ] {
            if on {
                s.push_str(name);
            }
        }
        s
    }
}

/// One entry of the mount table, as /proc/<pid>/mounts lists it.
#[derive(Clone)]
pub struct MountPoint {
    /// Absolute path of the mount point ("/" for the root).
    pub path: Vec<u8>,
    pub fstype: &'static str,
    pub readonly: bool,
    pub flags: MountFlags,
    /// The mounted filesystem's root.
    pub root: Arc<dyn Inode>,
}

struct Mount {
    root: Arc<dyn Inode>,
    fstype: &'static str,
    flags: MountFlags,
    /// Mount order, for listing.
    seq: u64,
}

/// Whether absolute `path` is `dir` or lies below it.
fn is_under(path: &[u8], dir: &[u8]) -> bool {
    dir == b"/" || path == dir || (path.starts_with(dir) && path.get(dir.len()) == Some(&b'/'))
}

pub struct Vfs {
    /// The root of the mount tree (pivot_root replaces it).
    root: Mutex<Arc<Dentry>>,
    /// Mount points by absolute path → the mounted filesystem.
    mounts: Mutex<HashMap<Vec<u8>, Mount>>,
    /// The root filesystem's type and options.
    root_fs: Mutex<(&'static str, MountFlags)>,
}

impl Vfs {
    pub fn new(root: Arc<dyn Inode>) -> Vfs {
        Vfs {
            root: Mutex::new(Dentry::root(root)),
            mounts: Mutex::new(HashMap::new()),
            root_fs: Mutex::new(("rootfs", MountFlags::default())),
        }
    }

    /// Mounts `fs_root` (a filesystem of type `fstype`) at absolute `path`.
    pub fn mount(&self, path: &[u8], fs_root: Arc<dyn Inode>, fstype: &'static str) {
        self.mount_with_flags(path, fs_root, fstype, MountFlags::default())
    }

    /// As `mount`, with options.
    pub fn mount_with_flags(
        &self,
        path: &[u8],
        fs_root: Arc<dyn Inode>,
        fstype: &'static str,
        flags: MountFlags,
    ) {
        let mut m = self.mounts.lock().unwrap_or_else(|p| p.into_inner());
        let seq = m.values().map(|x| x.seq + 1).max().unwrap_or(0);
        m.insert(
            path.to_vec(),
            Mount {
                root: fs_root,
                fstype,
                flags,
                seq,
            },
        );
    }

    /// Changes the options of the mount at absolute `path` (MS_REMOUNT);
    /// EINVAL if nothing is mounted there.
    pub fn remount(&self, path: &[u8], flags: MountFlags) -> KResult<()> {
        if path == b"/" {
            self.root_fs.lock().unwrap_or_else(|p| p.into_inner()).1 = flags;
            return Ok(());
        }
        let mut m = self.mounts.lock().unwrap_or_else(|p| p.into_inner());
        let mount = m.get_mut(path).ok_or(Errno::EINVAL)?;
        mount.flags = flags;
        Ok(())
    }

    /// The root of the mount tree.
    pub fn root(&self) -> Arc<Dentry> {
        self.root.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Removes the mount at absolute `path` and every mount below it
    /// (umount with MNT_DETACH); EINVAL if `path` is no mount point,
    /// EBUSY without `detach` when mounts sit below it.
    pub fn unmount_tree(&self, path: &[u8], detach: bool) -> KResult<()> {
        let mut m = self.mounts.lock().unwrap_or_else(|p| p.into_inner());
        if !m.contains_key(path) {
            return Err(Errno::EINVAL);
        }
        let below: Vec<Vec<u8>> = m
            .keys()
            .filter(|k| k.as_slice() != path && is_under(k, path))
            .cloned()
            .collect();
        if !below.is_empty() && !detach {
            return Err(Errno::EBUSY);
        }
        for k in below {
            m.remove(&k);
        }
        m.remove(path);
        Ok(())
    }

    /// pivot_root(2): the mount at `new_root` (an absolute path, a mount
    /// point) becomes the root, and the old root is mounted at `put_old`
    /// (an absolute path at or below `new_root`), with every other mount
    /// moved along. Returns (old root dentry, new root dentry) so callers
    /// can move processes' roots and working directories.
    pub fn pivot_root(
        &self,
        new_root: &[u8],
        put_old: &[u8],
    ) -> KResult<(Arc<Dentry>, Arc<Dentry>)> {
        if new_root == b"/" || !is_under(put_old, new_root) {
            return Err(Errno::EINVAL);
        }
        let mut m = self.mounts.lock().unwrap_or_else(|p| p.into_inner());
        let mut root_fs = self.root_fs.lock().unwrap_or_else(|p| p.into_inner());
        let mut root = self.root.lock().unwrap_or_else(|p| p.into_inner());
        let new = m.remove(new_root).ok_or(Errno::EINVAL)?;
        // `put_old` seen from the new root.
        let rel = |p: &[u8]| -> Vec<u8> {
            let r = &p[new_root.len()..];
            if r.is_empty() {
                b"/".to_vec()
            } else {
                r.to_vec()
            }
        };
        let old_at = rel(put_old);
        let join = |base: &[u8], p: &[u8]| -> Vec<u8> {
            let mut v = base.to_vec();
            if v != b"/" {
                v.extend_from_slice(p);
                v
            } else {
                p.to_vec()
            }
        };
        let seq0 = m.values().map(|x| x.seq + 1).max().unwrap_or(0);
        let mut next = HashMap::new();
        next.insert(
            old_at.clone(),
            Mount {
                root: root.inode.clone(),
                fstype: root_fs.0,
                flags: root_fs.1,
                seq: seq0,
            },
        );
        for (p, mount) in m.drain() {
            let np = if is_under(&p, new_root) {
                rel(&p)
            } else {
                join(&old_at, &p)
            };
            next.insert(np, mount);
        }
        *m = next;
        *root_fs = (new.fstype, new.flags);
        let old_root = root.clone();
        *root = Dentry::root(new.root);
        Ok((old_root, root.clone()))
    }

    /// Whether the root filesystem refuses writes.
    pub fn root_read_only(&self) -> bool {
        self.root_fs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .readonly
    }

    /// Whether absolute `path` is a mount point.
    pub fn is_mount_point(&self, path: &[u8]) -> bool {
        path == b"/"
            || self
                .mounts
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains_key(path)
    }

    /// The options of the mount `d` lies on (the deepest mount point
    /// above it).
    pub fn flags_of(&self, d: &Dentry) -> MountFlags {
        let root = self.root_fs.lock().unwrap_or_else(|p| p.into_inner()).1;
        let m = self.mounts.lock().unwrap_or_else(|p| p.into_inner());
        if m.is_empty() {
            return root;
        }
        let path = d.path();
        m.iter()
            .filter(|(p, _)| is_under(&path, p))
            .max_by_key(|(p, _)| p.len())
            .map_or(root, |(_, x)| x.flags)
    }

    /// The type of the filesystem `d` lies on (the deepest mount above it).
    pub fn fstype_of(&self, d: &Dentry) -> &'static str {
        let root = self.root_fs.lock().unwrap_or_else(|p| p.into_inner()).0;
        let m = self.mounts.lock().unwrap_or_else(|p| p.into_inner());
        let path = d.path();
        m.iter()
            .filter(|(p, _)| is_under(&path, p))
            .max_by_key(|(p, _)| p.len())
            .map_or(root, |(_, x)| x.fstype)
    }

    /// Removes the mount at absolute `path`; false if nothing is mounted there.
    pub fn unmount(&self, path: &[u8]) -> bool {
        self.mounts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(path)
            .is_some()
    }

    /// Records what the root filesystem is, for the mount table.
    pub fn set_root_fstype(&self, fstype: &'static str, readonly: bool) {
        let mut r = self.root_fs.lock().unwrap_or_else(|p| p.into_inner());
        r.0 = fstype;
        r.1.readonly = readonly;
    }

    /// The mount table: the root first, then each mount in mount order.
    pub fn mount_points(&self) -> Vec<MountPoint> {
        let (fstype, flags) = *self.root_fs.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = vec![MountPoint {
            path: b"/".to_vec(),
            fstype,
            readonly: flags.readonly,
            flags,
            root: self.root().inode.clone(),
        }];
        let m = self.mounts.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<(&Vec<u8>, &Mount)> = m.iter().collect();
        v.sort_by_key(|(_, x)| x.seq);
        out.extend(v.into_iter().map(|(p, x)| MountPoint {
            path: p.clone(),
            fstype: x.fstype,
            readonly: x.flags.readonly,
            flags: x.flags,
            root: x.root.clone(),
        }));
        out
    }

    /// The child `name` of `dir`, crossing into a mount if one covers it.
    pub fn child(&self, dir: &Arc<Dentry>, name: &[u8]) -> KResult<Arc<Dentry>> {
        let mounted = {
            let m = self.mounts.lock().unwrap_or_else(|p| p.into_inner());
            if m.is_empty() {
                None
            } else {
                let mut p = dir.path();
                if p.len() > 1 {
                    p.push(b'/');
                } else {
                    p.clear();
                    p.push(b'/');
                }
                p.extend_from_slice(name);
                m.get(&p).map(|x| x.root.clone())
            }
        };
        let inode = match mounted {
            Some(i) => i,
            None => dir.inode.lookup(name)?,
        };
        Ok(Arc::new(Dentry {
            name: name.to_vec(),
            parent: Some(dir.clone()),
            inode,
        }))
    }

    /// Walks `path` from `start` (relative paths) or `fs.root`.
    pub fn lookup(
        &self,
        fs: &FsContext,
        start: &Arc<Dentry>,
        path: &[u8],
        follow: bool,
    ) -> KResult<Arc<Dentry>> {
        let mut budget = MAX_SYMLINKS;
        self.walk(fs, start, path, follow, &mut budget)
    }

    fn walk(
        &self,
        fs: &FsContext,
        start: &Arc<Dentry>,
        path: &[u8],
        follow: bool,
        budget: &mut u32,
    ) -> KResult<Arc<Dentry>> {
        if path.is_empty() {
            return Err(Errno::ENOENT);
        }
        if path.len() >= PATH_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let mut cur = if path[0] == b'/' {
            fs.root.clone()
        } else {
            start.clone()
        };
        let comps: Vec<&[u8]> = path
            .split(|&c| c == b'/')
            .filter(|c| !c.is_empty())
            .collect();
        let trailing_slash = path.ends_with(b"/");
        // Search permission on every directory walked through, for the
        // calling task's credentials (root passes).
        let creds = crate::kernel::task::current()
            .map(|t| t.creds())
            .filter(|c| {
                !c.capable(crate::kernel::caps::CAP_DAC_OVERRIDE)
                    && !c.capable(crate::kernel::caps::CAP_DAC_READ_SEARCH)
            });
        for (i, comp) in comps.iter().enumerate() {
            let last = i + 1 == comps.len();
            if comp.len() > 255 {
                return Err(Errno::ENAMETOOLONG);
            }
            let cst = cur.inode.stat()?;
            if !cst.is_dir() {
                return Err(Errno::ENOTDIR);
            }
            if creds.as_ref().is_some_and(|c| !c.may(&cst, 1)) {
                return Err(Errno::EACCES);
            }
            if *comp == b"." {
                continue;
            }
            if *comp == b".." {
                if !Arc::ptr_eq(&cur, &fs.root) && cur.path() != fs.root.path() {
                    if let Some(p) = cur.parent.clone() {
                        cur = p;
                    }
                }
                continue;
            }
            let child = self.child(&cur, comp)?;
            let st = child.inode.stat()?;
            if st.is_symlink() && (!last || follow || trailing_slash) {
                if *budget == 0 {
                    return Err(Errno::ELOOP);
                }
                *budget -= 1;
                let target = child.inode.readlink()?;
                cur = self.walk(fs, &cur, &target, true, budget)?;
                continue;
            }
            cur = child;
        }
        if trailing_slash && !cur.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        Ok(cur)
    }

    /// Walks all but the last component: the parent directory and the final
    /// name (for create, unlink, rename…). A path ending in "/" or naming
    /// "." or ".." has no creatable last component.
    pub fn lookup_parent(
        &self,
        fs: &FsContext,
        start: &Arc<Dentry>,
        path: &[u8],
    ) -> KResult<(Arc<Dentry>, Vec<u8>)> {
        if path.is_empty() {
            return Err(Errno::ENOENT);
        }
        let trimmed: &[u8] = {
            let mut p = path;
            while p.len() > 1 && p.ends_with(b"/") {
                p = &p[..p.len() - 1];
            }
            p
        };
        let (dir_part, name) = match trimmed.iter().rposition(|&c| c == b'/') {
            Some(i) => (&trimmed[..i + 1], &trimmed[i + 1..]),
            None => (&b""[..], trimmed),
        };
        let dir = if dir_part.is_empty() {
            start.clone()
        } else {
            self.lookup(fs, start, dir_part, true)?
        };
        if !dir.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        if name.is_empty() || name == b"." || name == b".." {
            return Err(Errno::EEXIST);
        }
        if name.len() > 255 {
            return Err(Errno::ENAMETOOLONG);
        }
        Ok((dir, name.to_vec()))
    }
}
