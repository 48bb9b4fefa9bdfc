//! /proc/<pid>/fd/ (one symlink per open fd) and fdinfo/ (position, flags
//! and mount of each).
//!
//! Linux's fd links are "magic": opening one opens the file the fd refers
//! to, even one without a path (a pipe, the host's stdio). Our path walk
//! resolves links by their text, so a file without a path gets a name
//! ("pipe:[12]", "host:[34]") that this directory also answers to: the
//! walk of /dev/stderr → /proc/self/fd/2 → "host:[34]" comes back here and
//! finds the open file by that name.

use super::pid::View;
use super::{dir, ino_of, system, DirOps, Kind, Node, ProcFs};
use crate::errno::{Errno, KResult};
use crate::fs::eventfd::EventFd;
use crate::fs::{check_open, PathFile};
use crate::kernel::task::lock;
use crate::kernel::Kernel;
use crate::vfs::{DirEntry, FdTable, File, FileOps, Inode, Stat};
use std::any::Any;
use std::sync::{Arc, Weak};

/// The kernel's O_LARGEFILE, which Linux adds to every open of a path on
/// 64-bit (fdinfo shows it).
const O_LARGEFILE: u32 = 0o100000;

pub(super) fn new_fd_dir(v: &View) -> Arc<Node> {
    dir(
        &v.fs,
        &v.key_of("fd"),
        0o500,
        &v.owner,
        FdDir { v: v.clone() },
    )
}

pub(super) fn new_fdinfo_dir(v: &View) -> Arc<Node> {
    dir(
        &v.fs,
        &v.key_of("fdinfo"),
        0o555,
        &v.owner,
        FdInfoDir { v: v.clone() },
    )
}

/// The fd table of the view's thread (None: a zombie, whose files are
/// closed).
fn fd_table(v: &View, k: &Kernel) -> KResult<Option<Arc<FdTable>>> {
    let info = v.info(k)?;
    if info.zombie.is_some() {
        return Ok(None);
    }
    Ok(v.task_of(&info)?.map(|t| t.fd_table()))
}

fn file_at(v: &View, k: &Kernel, fd: i32) -> KResult<Arc<File>> {
    fd_table(v, k)?
        .ok_or(Errno::ENOENT)?
        .get(fd)
        .map_err(|_| Errno::ENOENT)
}

fn parse_fd(name: &[u8]) -> Option<i32> {
    if name.is_empty() || name.len() > 10 || (name[0] == b'0' && name.len() > 1) {
        return None;
    }
    if !name.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(name).ok()?.parse().ok()
}

/// What an fd's link shows: the file's path, or for a file without one
/// the name Linux gives such files.
pub(super) fn fd_target(f: &File) -> Vec<u8> {
    match &f.dentry {
        Some(d) => match d.inode.as_any().downcast_ref::<FdReopen>() {
            Some(m) => m.label.clone(),
            None => d.path(),
        },
        None => anon_label(f),
    }
}

fn anon_label(f: &File) -> Vec<u8> {
    let ops = &*f.ops;
    let ino = ops.stat().map(|s| s.ino).unwrap_or(0);
    if crate::fs::pipe::pipe_of(ops).is_some() {
        return format!("pipe:[{ino}]").into_bytes();
    }
    if ops.as_any().is::<EventFd>() {
        return b"anon_inode:[eventfd]".to_vec();
    }
    if crate::fs::epoll::Epoll::from_file(f).is_some() {
        return b"anon_inode:[eventpoll]".to_vec();
    }
    let fmt = ops.stat().map(|s| s.file_type()).unwrap_or(0);
    let label = match fmt {
        libc::S_IFIFO => format!("pipe:[{ino}]"),
        libc::S_IFSOCK => format!("socket:[{ino}]"),
        // The sandbox's stdio and other host files handed in without a
        // path inside the sandbox (gVisor names them the same way).
        _ if ops.host_fd().is_some() => format!("host:[{ino}]"),
        _ => "anon_inode:[unknown]".to_string(),
    };
    label.into_bytes()
}

struct FdDir {
    v: View,
}

fn fd_link(v: &View, fd: i32, f: &File) -> Arc<Node> {
    // lr-x------ for a read-only fd, l-wx------ write-only, lrwx------ both.
    let perm = match (f.readable(), f.writable()) {
        (true, true) => 0o700,
        (false, true) => 0o300,
        _ => 0o500,
    };
    let v2 = v.clone();
    Node::new(
        &v.fs,
        ino_of(&v.key_of(&format!("fd/{fd}"))),
        perm,
        v.owner.clone(),
        Kind::Link(Box::new(move |k| Ok(fd_target(&*file_at(&v2, k, fd)?)))),
    )
    .with_size(64)
}

/// One entry per open fd of the viewed task, for fd/ and fdinfo/.
fn fd_entries(v: &View, k: &Arc<Kernel>, dir: &str, d_type: u8) -> KResult<Vec<DirEntry>> {
    let Some(t) = fd_table(v, k)? else {
        return Ok(Vec::new());
    };
    Ok(t.fds()
        .into_iter()
        .map(|fd| DirEntry {
            ino: ino_of(&v.key_of(&format!("{dir}/{fd}"))),
            d_type,
            name: fd.to_string().into_bytes(),
        })
        .collect())
}

impl DirOps for FdDir {
    fn list(&self, k: &Arc<Kernel>) -> KResult<Vec<DirEntry>> {
        fd_entries(&self.v, k, "fd", libc::DT_LNK)
    }

    fn lookup(&self, k: &Arc<Kernel>, name: &[u8]) -> KResult<Arc<dyn Inode>> {
        if let Some(fd) = parse_fd(name) {
            let f = file_at(&self.v, k, fd)?;
            return Ok(fd_link(&self.v, fd, &f));
        }
        // A pathless file's name, reached by following one of our links.
        let t = fd_table(&self.v, k)?.ok_or(Errno::ENOENT)?;
        for fd in t.fds() {
            let Ok(f) = t.get(fd) else { continue };
            let pathless = match &f.dentry {
                None => true,
                Some(d) => d.inode.as_any().is::<FdReopen>(),
            };
            if pathless && fd_target(&f) == name {
                return Ok(Arc::new(FdReopen {
                    fs: self.v.fs.clone(),
                    file: Arc::downgrade(&f),
                    label: name.to_vec(),
                }));
            }
        }
        Err(Errno::ENOENT)
    }
}

/// Opening a pathless file through its fd link. Holds the file weakly, so
/// that a reopened pipe end does not keep the original end open.
pub(super) struct FdReopen {
    fs: Arc<ProcFs>,
    file: Weak<File>,
    label: Vec<u8>,
}

impl FdReopen {
    fn file(&self) -> KResult<Arc<File>> {
        self.file.upgrade().ok_or(Errno::ENOENT)
    }
}

impl Inode for FdReopen {
    fn stat(&self) -> KResult<Stat> {
        self.file()?.ops.stat()
    }

    fn open(self: Arc<Self>, flags: u32) -> KResult<Arc<dyn FileOps>> {
        let f = self.file()?;
        let st = f.ops.stat()?;
        // Anonymous inodes have no file type bits: treat them as files.
        let mode = if st.file_type() == 0 {
            libc::S_IFREG | st.mode
        } else {
            st.mode
        };
        if check_open(mode, flags)? {
            return Ok(PathFile::open(self));
        }
        if let Some(p) = crate::fs::pipe::pipe_of(&*f.ops) {
            // As Linux reopens a pipe: a new end of the access asked for.
            return Ok(match flags & libc::O_ACCMODE as u32 {
                a if a == libc::O_RDONLY as u32 => p.open_reader(),
                a if a == libc::O_WRONLY as u32 => p.open_writer(),
                _ => f.ops.clone(),
            });
        }
        if f.ops.as_socket().is_some() {
            // Sockets cannot be reopened, host-backed (hostinet) or not.
            return Err(Errno::ENXIO);
        }
        if f.ops.host_fd().is_some() {
            // The host's stdio: the same host file, with the new
            // description's own flags.
            return Ok(f.ops.clone());
        }
        // eventfd, epoll: Linux cannot reopen anonymous inodes either.
        Err(Errno::ENXIO)
    }

    fn truncate(&self, _len: u64) -> KResult<()> {
        // `> /dev/stdout`: never truncate the host's file (the sandbox's
        // output) through a reopen; pipes ignore O_TRUNC anyway.
        Ok(())
    }

    fn fs_id(&self) -> usize {
        self.fs.id
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

struct FdInfoDir {
    v: View,
}

fn gen_fdinfo(v: &View, k: &Kernel, fd: i32) -> KResult<Vec<u8>> {
    let t = fd_table(v, k)?.ok_or(Errno::ENOENT)?;
    let f = t.get(fd).map_err(|_| Errno::ENOENT)?;
    let mut flags = f.flags();
    if t.get_cloexec(fd).unwrap_or(false) {
        flags |= libc::O_CLOEXEC as u32;
    }
    let mut mnt_id = 0;
    if let Some(d) = &f.dentry {
        if !d.inode.as_any().is::<FdReopen>() {
            flags |= O_LARGEFILE;
            mnt_id = system::mount_id_of(k, &d.path());
        }
    }
    let pos = match f.ops.host_seek(0, libc::SEEK_CUR) {
        Some(Ok(p)) => p,
        _ => *lock(&f.pos),
    };
    let ino = f.ops.stat().map(|s| s.ino).unwrap_or(0);
    let mut s = format!("pos:\t{pos}\nflags:\t0{flags:o}\nmnt_id:\t{mnt_id}\nino:\t{ino}\n");
    if let Some(e) = f.ops.as_any().downcast_ref::<EventFd>() {
        s.push_str(&format!("eventfd-count: {:16x}\n", e.count()));
    }
    Ok(s.into_bytes())
}

impl DirOps for FdInfoDir {
    fn list(&self, k: &Arc<Kernel>) -> KResult<Vec<DirEntry>> {
        fd_entries(&self.v, k, "fdinfo", libc::DT_REG)
    }

    fn lookup(&self, k: &Arc<Kernel>, name: &[u8]) -> KResult<Arc<dyn Inode>> {
        let fd = parse_fd(name).ok_or(Errno::ENOENT)?;
        file_at(&self.v, k, fd)?;
        let v = self.v.clone();
        Ok(super::file(
            &self.v.fs,
            &self.v.key_of(&format!("fdinfo/{fd}")),
            &self.v.owner,
            move |k| gen_fdinfo(&v, k, fd),
        ))
    }
}
