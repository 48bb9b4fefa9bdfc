//! The gofer server: owns the root directory fd and the per-connection
//! fid table, and answers one request per packet.
//!
//! Confinement: every fid holds an `O_PATH` fd, and the only way to get
//! a new one is `openat(dir_fd, name, O_PATH | O_NOFOLLOW)` with a name
//! that was validated to be a single component (no `/`, not `.` or
//! `..`). Symlinks are never followed (a walk to a symlink yields the
//! link itself), so nothing reachable through the protocol lies outside
//! the root directory tree.
//!
//! Writes (on a writable server) keep the same rule: every new entry is
//! made relative to a directory fid's fd with a validated name, with
//! calls that never follow a symlink in the last component
//! (`O_CREAT | O_EXCL | O_NOFOLLOW`, `mkdirat`, `symlinkat`, `mknodat`,
//! `linkat` without `AT_SYMLINK_FOLLOW`, `unlinkat`, `renameat2`), and
//! attribute changes act on a fid's own `O_PATH` fd (`AT_EMPTY_PATH`, or
//! the fd's `/proc/self/fd/N` magic link, which names that very inode and
//! never a path). Symlink fids are refused where acting on them would
//! mean following them (chmod, truncate, reopen).

use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use nix::errno::Errno;
use nix::fcntl::{fcntl, AtFlags, FcntlArg, OFlag};
use nix::sys::socket::{getsockopt, sockopt, SockType};
use nix::sys::stat::{fstatat, Mode};
use nix::unistd::{lseek, Whence};
use tracing::{debug, warn};

use crate::protocol::{
    self, decode_request, dirent_len, encode_response, DirEntry, Fid, Reply, Request, SetAttr,
    Stat, Statfs, MAX_MESSAGE, READDIR_FIXED_LEN, RESPONSE_HEADER_LEN, SETATTR_ATIME, SETATTR_GID,
    SETATTR_MODE, SETATTR_MTIME, SETATTR_SIZE, SETATTR_UID,
};
use crate::transport::{peer_closed, recv_msg, send_msg};

/// Most fids one connection may hold at once; one more gives `EMFILE`.
pub const MAX_FIDS: usize = 1 << 16;

/// The kernel's `O_LARGEFILE` bit. libc defines `O_LARGEFILE` as 0 on
/// 64-bit targets, but a guest may still pass the kernel's value.
#[cfg(target_arch = "x86_64")]
const KERNEL_O_LARGEFILE: i32 = 0o100000;
#[cfg(target_arch = "aarch64")]
const KERNEL_O_LARGEFILE: i32 = 0o400000;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const KERNEL_O_LARGEFILE: i32 = libc::O_LARGEFILE;

/// Flags accepted by Open whatever the mode.
const OPEN_READ_FLAGS: i32 = libc::O_DIRECTORY
    | libc::O_NONBLOCK
    | libc::O_CLOEXEC
    | libc::O_NOFOLLOW
    | libc::O_NOATIME
    | libc::O_NOCTTY
    | libc::O_DIRECT
    | libc::O_SYNC
    | libc::O_DSYNC
    | libc::O_LARGEFILE
    | KERNEL_O_LARGEFILE;

/// Flags that modify the file or create one.
const OPEN_WRITE_FLAGS: i32 =
    libc::O_TRUNC | libc::O_APPEND | libc::O_CREAT | libc::O_EXCL | libc::O_TMPFILE;

/// Checks Open flags and returns the flags to pass to `openat`.
///
/// - unknown bits, `O_PATH`, or access mode 3: `EINVAL`;
/// - on a read-only server, write access or any of `O_TRUNC`, `O_APPEND`,
///   `O_CREAT`, `O_EXCL`, `O_TMPFILE`: `EROFS`;
/// - on a writable server, `O_CREAT`/`O_EXCL`/`O_TMPFILE`: `EINVAL`
///   (creating files is the Create op).
///
/// The result always has `O_NOFOLLOW | O_CLOEXEC | O_NOCTTY` added and
/// `O_LARGEFILE` removed (the kernel sets it itself on 64-bit).
pub fn check_open_flags(flags: i32, read_only: bool) -> Result<i32, Errno> {
    let acc = flags & libc::O_ACCMODE;
    let rest = flags & !libc::O_ACCMODE;
    if acc == libc::O_ACCMODE || rest & !(OPEN_READ_FLAGS | OPEN_WRITE_FLAGS) != 0 {
        return Err(Errno::EINVAL);
    }
    let writes = acc != libc::O_RDONLY
        || rest & (libc::O_TRUNC | libc::O_APPEND | libc::O_CREAT | libc::O_EXCL) != 0
        || rest & libc::O_TMPFILE == libc::O_TMPFILE;
    if writes && read_only {
        return Err(Errno::EROFS);
    }
    if rest & (libc::O_CREAT | libc::O_EXCL) != 0 || rest & libc::O_TMPFILE == libc::O_TMPFILE {
        return Err(Errno::EINVAL);
    }
    Ok((flags & !KERNEL_O_LARGEFILE & !libc::O_LARGEFILE)
        | libc::O_NOFOLLOW
        | libc::O_CLOEXEC
        | libc::O_NOCTTY)
}

/// `openat(2)` returning an owned fd.
fn openat(dir: BorrowedFd<'_>, name: &[u8], flags: i32) -> Result<OwnedFd, Errno> {
    let fd: RawFd = nix::fcntl::openat(
        Some(dir.as_raw_fd()),
        name,
        OFlag::from_bits_retain(flags),
        Mode::empty(),
    )?;
    // SAFETY: `fd` was just returned by a successful openat(2); nothing
    // else refers to it, so we are its sole owner.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A name or path as a C string (names were validated: no NUL).
fn cstr(b: &[u8]) -> Result<CString, Errno> {
    CString::new(b).map_err(|_| Errno::EINVAL)
}

/// `/proc/self/fd/N`: a magic link to the very file `fd` refers to.
fn proc_fd_path(fd: BorrowedFd<'_>) -> CString {
    // Digits only: no NUL can occur.
    CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap_or_default()
}

/// Maps a libc return value (-1 and errno on failure) to a `Result`.
fn check(r: libc::c_int) -> Result<(), Errno> {
    Errno::result(r).map(drop)
}

/// Like [`check`] for calls returning a size.
fn check_size(r: libc::ssize_t) -> Result<usize, Errno> {
    let n = Errno::result(r)?;
    usize::try_from(n).map_err(|_| Errno::EIO)
}

/// `openat(2)` with a creation mode, returning an owned fd.
fn openat_mode(dir: BorrowedFd<'_>, name: &[u8], flags: i32, mode: u32) -> Result<OwnedFd, Errno> {
    let name = cstr(name)?;
    // SAFETY: `name` is a valid C string for the duration of the call.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags, mode) };
    let fd = Errno::result(fd)?;
    // SAFETY: `fd` was just returned by a successful openat(2); nothing
    // else refers to it, so we are its sole owner.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `unlinkat(2)`.
fn unlinkat(dir: BorrowedFd<'_>, name: &[u8], flags: i32) -> Result<(), Errno> {
    let name = cstr(name)?;
    // SAFETY: `name` is a valid C string for the duration of the call.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) })
}

/// `fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)`:
/// changes the owner of the file `fd` (any kind, `O_PATH` included)
/// itself. `u32::MAX` leaves an id unchanged.
fn chown_fd(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> Result<(), Errno> {
    // SAFETY: the path is a static empty C string.
    check(unsafe {
        libc::fchownat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            uid,
            gid,
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}

/// fchmodat2(2), the same number on every architecture (Linux 6.6+).
const SYS_FCHMODAT2: libc::c_long = 452;

/// Sets the permission bits of the file `fd` (an `O_PATH` fd that is not
/// a symlink) exactly: `fchmodat2(fd, "", AT_EMPTY_PATH)`, or on older
/// kernels `chmod` of its `/proc/self/fd` magic link.
fn chmod_fd(fd: BorrowedFd<'_>, mode: u32) -> Result<(), Errno> {
    // SAFETY: plain integer arguments and a static empty C string.
    let r = unsafe {
        libc::syscall(
            SYS_FCHMODAT2,
            fd.as_raw_fd(),
            c"".as_ptr(),
            mode,
            libc::AT_EMPTY_PATH,
        )
    };
    match Errno::result(r) {
        Ok(_) => Ok(()),
        Err(Errno::ENOSYS) | Err(Errno::EINVAL) => {
            let path = proc_fd_path(fd);
            // SAFETY: `path` is a valid C string for the duration of the call.
            check(unsafe { libc::chmod(path.as_ptr(), mode) })
        }
        Err(e) => Err(e),
    }
}

/// `renameat2(2)` (through syscall(2): not every libc wraps it).
fn renameat2(
    old_dir: BorrowedFd<'_>,
    old: &[u8],
    new_dir: BorrowedFd<'_>,
    new: &[u8],
    flags: u32,
) -> Result<(), Errno> {
    let (old, new) = (cstr(old)?, cstr(new)?);
    // SAFETY: both names are valid C strings for the duration of the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            old_dir.as_raw_fd(),
            old.as_ptr(),
            new_dir.as_raw_fd(),
            new.as_ptr(),
            flags,
        )
    };
    Errno::result(r).map(drop)
}

/// Valid nanoseconds for a timestamp: a real value or the two specials.
fn valid_nsec(nsec: i64) -> bool {
    (0..1_000_000_000).contains(&nsec) || nsec == libc::UTIME_NOW || nsec == libc::UTIME_OMIT
}

/// `fstatat(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)`: works on
/// `O_PATH` fds, including ones that refer to a symlink.
fn stat_fd(fd: BorrowedFd<'_>) -> Result<Stat, Errno> {
    let st = fstatat(
        Some(fd.as_raw_fd()),
        "",
        AtFlags::AT_EMPTY_PATH | AtFlags::AT_SYMLINK_NOFOLLOW,
    )?;
    Ok(Stat::from(&st))
}

/// `getdents64(2)` into `buf`; returns the number of bytes filled.
fn getdents64(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: `buf` is a valid, writable buffer of `buf.len()` bytes that
    // outlives the call, and `fd` is an open fd borrowed for its duration.
    let n = unsafe {
        libc::syscall(
            libc::SYS_getdents64,
            fd.as_raw_fd(),
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    let n = Errno::result(n)?;
    usize::try_from(n).map_err(|_| Errno::EIO)
}

/// One parsed `linux_dirent64`.
struct RawDirent<'a> {
    ino: u64,
    off: i64,
    d_type: u8,
    name: &'a [u8],
}

/// Parses a `getdents64` buffer, bounds-checking everything.
fn parse_dirents(buf: &[u8]) -> impl Iterator<Item = Result<RawDirent<'_>, Errno>> {
    const FIXED: usize = 8 + 8 + 2 + 1; // d_ino, d_off, d_reclen, d_type
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        if pos >= buf.len() {
            return None;
        }
        let rec = buf.get(pos..pos + FIXED)?;
        let ino = u64::from_ne_bytes(rec[0..8].try_into().ok()?);
        let off = i64::from_ne_bytes(rec[8..16].try_into().ok()?);
        let reclen = u16::from_ne_bytes(rec[16..18].try_into().ok()?) as usize;
        let d_type = rec[18];
        let Some(name_area) = (reclen >= FIXED)
            .then(|| buf.get(pos + FIXED..pos + reclen))
            .flatten()
        else {
            pos = buf.len();
            return Some(Err(Errno::EIO));
        };
        let name_len = name_area
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(name_area.len());
        pos += reclen;
        Some(Ok(RawDirent {
            ino,
            off,
            d_type,
            name: &name_area[..name_len],
        }))
    })
}

/// Where a fid was reached from: its directory and its name there.
struct ParentRef {
    /// `O_PATH` fd of the directory.
    fd: Arc<OwnedFd>,
    name: Vec<u8>,
    /// The directory's identity, to find the fids a rename moves.
    dev: u64,
    ino: u64,
}

struct FidEntry {
    /// `O_PATH` fd of the file itself.
    fd: Arc<OwnedFd>,
    /// The directory it was walked from (or created in) and its name
    /// there; kept up to date by our renames. Used to re-open
    /// non-directories without following symlinks when `/proc` is
    /// unavailable, and to hard-link them without `CAP_DAC_READ_SEARCH`.
    /// `None` for an attach (root) fid.
    parent: Option<ParentRef>,
    /// Cached stat at walk time; the file type of an inode never changes.
    stat: Stat,
    /// Lazily opened `O_RDONLY | O_DIRECTORY` fd used by Readdir.
    dir: Option<OwnedFd>,
}

/// What Mkdir, Symlink and Mknod make.
enum Make {
    Dir { mode: u32 },
    Symlink { target: Vec<u8> },
    Node { mode: u32 },
}

struct Server {
    root: Arc<OwnedFd>,
    read_only: bool,
    /// Connect may reach host Unix sockets in the tree.
    host_uds: bool,
    /// Running as root: new files get the owner the client asks for.
    is_root: bool,
    fids: HashMap<Fid, FidEntry>,
    next_fid: Fid,
    dents: Vec<u8>,
}

impl Server {
    fn new(root: OwnedFd, read_only: bool, host_uds: bool) -> Server {
        Server {
            root: Arc::new(root),
            read_only,
            host_uds,
            is_root: nix::unistd::geteuid().is_root(),
            fids: HashMap::new(),
            next_fid: 1,
            dents: vec![0u8; 32 * 1024],
        }
    }

    fn entry(&self, fid: Fid) -> Result<&FidEntry, Errno> {
        self.fids.get(&fid).ok_or(Errno::EBADF)
    }

    fn insert(&mut self, entry: FidEntry) -> Result<Fid, Errno> {
        if self.fids.len() >= MAX_FIDS {
            return Err(Errno::EMFILE);
        }
        let fid = self.next_fid;
        self.next_fid = self.next_fid.checked_add(1).ok_or(Errno::EMFILE)?;
        self.fids.insert(fid, entry);
        Ok(fid)
    }

    /// Handles one request; an `Ok` may carry an fd to donate.
    fn handle(&mut self, req: Request) -> Result<(Reply, Option<OwnedFd>), Errno> {
        if self.read_only && req.op().modifies() {
            return Err(Errno::EROFS);
        }
        match req {
            Request::Attach => {
                let stat = stat_fd(self.root.as_fd())?;
                let fid = self.insert(FidEntry {
                    fd: self.root.clone(),
                    parent: None,
                    stat,
                    dir: None,
                })?;
                Ok((Reply::Attach { fid, stat }, None))
            }
            Request::Walk { dir, name } => {
                // The decoder already validated `name`; check again here
                // because confinement depends on it.
                protocol::validate_name(&name)?;
                let pe = self.entry(dir)?;
                let (parent, pstat) = (pe.fd.clone(), pe.stat);
                self.room()?;
                let fd = openat(
                    parent.as_fd(),
                    &name,
                    libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                )?;
                let (fid, stat) = self.insert_child(&parent, &pstat, name, fd)?;
                Ok((Reply::Walk { fid, stat }, None))
            }
            Request::Stat { fid } => {
                let stat = stat_fd(self.entry(fid)?.fd.as_fd())?;
                Ok((Reply::Stat(stat), None))
            }
            Request::Open { fid, flags } => {
                let fd = self.open(fid, flags)?;
                Ok((Reply::Open, Some(fd)))
            }
            Request::Readdir { fid, cookie } => self.readdir(fid, cookie).map(|r| (r, None)),
            Request::Readlink { fid } => {
                let e = self.entry(fid)?;
                if !e.stat.is_symlink() {
                    return Err(Errno::EINVAL);
                }
                let target = nix::fcntl::readlinkat(Some(e.fd.as_raw_fd()), "")?;
                Ok((
                    Reply::Readlink(std::os::unix::ffi::OsStringExt::into_vec(target)),
                    None,
                ))
            }
            Request::Statfs { fid } => {
                let s = nix::sys::statfs::fstatfs(self.entry(fid)?.fd.as_fd())?;
                // Field types differ between architectures; the casts only
                // widen to the wire's u64.
                #[allow(clippy::unnecessary_cast)]
                let reply = Statfs {
                    f_type: s.filesystem_type().0 as u64,
                    f_bsize: s.block_size() as u64,
                    f_blocks: s.blocks() as u64,
                    f_bfree: s.blocks_free() as u64,
                    f_bavail: s.blocks_available() as u64,
                    f_files: s.files() as u64,
                    f_ffree: s.files_free() as u64,
                    f_namelen: s.maximum_name_length() as u64,
                };
                Ok((Reply::Statfs(reply), None))
            }
            Request::Clunk { fid } => {
                self.fids.remove(&fid).ok_or(Errno::EBADF)?;
                Ok((Reply::Clunk, None))
            }
            Request::Create {
                dir,
                name,
                flags,
                mode,
                uid,
                gid,
            } => {
                let (fid, stat, fd) = self.create(dir, name, flags, mode, uid, gid)?;
                Ok((Reply::Create { fid, stat }, Some(fd)))
            }
            Request::Mkdir {
                dir,
                name,
                mode,
                uid,
                gid,
            } => {
                let (fid, stat) = self.make(dir, name, Make::Dir { mode }, uid, gid)?;
                Ok((Reply::Mkdir { fid, stat }, None))
            }
            Request::Symlink {
                dir,
                name,
                target,
                uid,
                gid,
            } => {
                let (fid, stat) = self.make(dir, name, Make::Symlink { target }, uid, gid)?;
                Ok((Reply::Symlink { fid, stat }, None))
            }
            Request::Mknod {
                dir,
                name,
                mode,
                rdev: _,
                uid,
                gid,
            } => {
                let (fid, stat) = self.make(dir, name, Make::Node { mode }, uid, gid)?;
                Ok((Reply::Mknod { fid, stat }, None))
            }
            Request::Link { dir, name, target } => {
                let stat = self.link(dir, &name, target)?;
                Ok((Reply::Link(stat), None))
            }
            Request::Unlink { dir, name, flags } => {
                protocol::validate_name(&name)?;
                if flags != 0 && flags != libc::AT_REMOVEDIR as u32 {
                    return Err(Errno::EINVAL);
                }
                let (pfd, _) = self.dir(dir)?;
                unlinkat(pfd.as_fd(), &name, flags as i32)?;
                Ok((Reply::Unlink, None))
            }
            Request::Rename {
                old_dir,
                old_name,
                new_dir,
                new_name,
                flags,
            } => {
                self.rename(old_dir, &old_name, new_dir, &new_name, flags)?;
                Ok((Reply::Rename, None))
            }
            Request::SetAttr { fid, attr } => {
                let stat = self.setattr(fid, &attr)?;
                Ok((Reply::SetAttr(stat), None))
            }
            Request::Connect { fid, sock_type } => {
                let fd = self.connect(fid, sock_type)?;
                Ok((Reply::Connect, Some(fd)))
            }
            Request::Fsync { fid } => {
                let e = self.entry(fid)?;
                let fd = match e.stat.file_type() {
                    libc::S_IFDIR => openat(
                        e.fd.as_fd(),
                        b".",
                        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                    )?,
                    libc::S_IFREG => self.open(fid, libc::O_RDONLY | libc::O_NONBLOCK)?,
                    _ => return Err(Errno::EINVAL),
                };
                nix::unistd::fsync(fd.as_raw_fd())?;
                Ok((Reply::Fsync, None))
            }
            Request::GetXattr { fid, name } => {
                let v = self.getxattr(fid, &name)?;
                Ok((Reply::GetXattr(v), None))
            }
            Request::SetXattr {
                fid,
                name,
                value,
                flags,
            } => {
                self.setxattr(fid, &name, &value, flags)?;
                Ok((Reply::SetXattr, None))
            }
            Request::ListXattr { fid } => {
                let v = self.listxattr(fid)?;
                Ok((Reply::ListXattr(v), None))
            }
            Request::RemoveXattr { fid, name } => {
                self.removexattr(fid, &name)?;
                Ok((Reply::RemoveXattr, None))
            }
        }
    }

    /// `EMFILE` if the fid table is full: checked before creating a file,
    /// so that a full table never leaves a new file without a fid.
    fn room(&self) -> Result<(), Errno> {
        if self.fids.len() >= MAX_FIDS {
            return Err(Errno::EMFILE);
        }
        Ok(())
    }

    /// The fd and (walk-time) stat of directory fid `dir`.
    fn dir(&self, dir: Fid) -> Result<(Arc<OwnedFd>, Stat), Errno> {
        let e = self.entry(dir)?;
        if !e.stat.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        Ok((e.fd.clone(), e.stat))
    }

    /// Adds a fid for `fd`, the `O_PATH` fd of `name` in directory `parent`.
    fn insert_child(
        &mut self,
        parent: &Arc<OwnedFd>,
        pstat: &Stat,
        name: Vec<u8>,
        fd: OwnedFd,
    ) -> Result<(Fid, Stat), Errno> {
        let stat = stat_fd(fd.as_fd())?;
        let fid = self.insert(FidEntry {
            fd: Arc::new(fd),
            parent: Some(ParentRef {
                fd: parent.clone(),
                name,
                dev: pstat.st_dev,
                ino: pstat.st_ino,
            }),
            stat,
            dir: None,
        })?;
        Ok((fid, stat))
    }

    /// The owner a new entry of directory `pfd` gets, and whether the
    /// directory is set-group-ID: there, as on Linux, the group is the
    /// directory's (and new directories inherit the bit).
    fn new_owner(&self, pfd: &OwnedFd, uid: u32, gid: u32) -> Result<(u32, u32, bool), Errno> {
        let pst = stat_fd(pfd.as_fd())?;
        if pst.st_mode & libc::S_ISGID != 0 {
            Ok((uid, pst.st_gid, true))
        } else {
            Ok((uid, gid, false))
        }
    }

    /// Create: a new regular file, opened with `flags`.
    fn create(
        &mut self,
        dir: Fid,
        name: Vec<u8>,
        flags: i32,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<(Fid, Stat, OwnedFd), Errno> {
        protocol::validate_name(&name)?;
        if flags & libc::O_DIRECTORY != 0 {
            // (O_TMPFILE includes O_DIRECTORY.)
            return Err(Errno::EINVAL);
        }
        let oflags = check_open_flags(
            flags & !(libc::O_CREAT | libc::O_EXCL | libc::O_TRUNC),
            false,
        )?;
        let (pfd, pstat) = self.dir(dir)?;
        self.room()?;
        let (uid, gid, _) = self.new_owner(&pfd, uid, gid)?;
        let perm = mode & 0o7777;
        let fd = openat_mode(
            pfd.as_fd(),
            &name,
            oflags | libc::O_CREAT | libc::O_EXCL,
            perm,
        )?;
        // From here on, a failure removes the file again: O_EXCL made it ours.
        let finish = || -> Result<OwnedFd, Errno> {
            if self.is_root {
                nix::unistd::fchown(
                    fd.as_raw_fd(),
                    Some(nix::unistd::Uid::from_raw(uid)),
                    Some(nix::unistd::Gid::from_raw(gid)),
                )?;
            }
            // After the chown, which may clear set-ID bits; exact, whatever
            // our umask took away.
            nix::sys::stat::fchmod(fd.as_raw_fd(), Mode::from_bits_retain(perm))?;
            let path_fd = openat(
                pfd.as_fd(),
                &name,
                libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )?;
            let (a, b) = (stat_fd(fd.as_fd())?, stat_fd(path_fd.as_fd())?);
            if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino) {
                return Err(Errno::ESTALE);
            }
            Ok(path_fd)
        };
        match finish() {
            Ok(path_fd) => {
                let (fid, stat) = self.insert_child(&pfd, &pstat, name, path_fd)?;
                Ok((fid, stat, fd))
            }
            Err(e) => {
                let _ = unlinkat(pfd.as_fd(), &name, 0);
                Err(e)
            }
        }
    }

    /// Mkdir, Symlink, Mknod: makes the entry, then gives it its owner and
    /// exact mode through a fresh `O_PATH` fd. On failure after the entry
    /// was made, it is removed again.
    fn make(
        &mut self,
        dir: Fid,
        name: Vec<u8>,
        what: Make,
        uid: u32,
        gid: u32,
    ) -> Result<(Fid, Stat), Errno> {
        protocol::validate_name(&name)?;
        let (pfd, pstat) = self.dir(dir)?;
        // Checks that need no syscall come first.
        let (ftype, perm) = match &what {
            Make::Dir { mode } => (libc::S_IFDIR, mode & 0o7777),
            Make::Symlink { target } => {
                protocol::validate_symlink_target(target)?;
                (libc::S_IFLNK, 0o777)
            }
            Make::Node { mode } => {
                let t = match mode & libc::S_IFMT {
                    0 | libc::S_IFREG => libc::S_IFREG,
                    libc::S_IFIFO => libc::S_IFIFO,
                    libc::S_IFSOCK => libc::S_IFSOCK,
                    libc::S_IFCHR | libc::S_IFBLK => return Err(Errno::EPERM),
                    _ => return Err(Errno::EINVAL),
                };
                (t, mode & 0o7777)
            }
        };
        self.room()?;
        let (uid, gid, sgid_dir) = self.new_owner(&pfd, uid, gid)?;
        let cname = cstr(&name)?;
        let raw_dir = pfd.as_raw_fd();
        // SAFETY (all three): `cname` and `ctarget` are valid C strings
        // for the duration of the calls.
        let r = match &what {
            Make::Dir { .. } => unsafe { libc::mkdirat(raw_dir, cname.as_ptr(), perm) },
            Make::Symlink { target } => {
                let ctarget = cstr(target)?;
                unsafe { libc::symlinkat(ctarget.as_ptr(), raw_dir, cname.as_ptr()) }
            }
            Make::Node { .. } => unsafe { libc::mknodat(raw_dir, cname.as_ptr(), ftype | perm, 0) },
        };
        check(r)?;
        let perm = if ftype == libc::S_IFDIR && sgid_dir {
            perm | libc::S_ISGID
        } else {
            perm
        };
        let finish = || -> Result<OwnedFd, Errno> {
            let fd = openat(
                pfd.as_fd(),
                &name,
                libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )?;
            if stat_fd(fd.as_fd())?.file_type() != ftype {
                // Replaced meanwhile (not by us): leave it alone.
                return Err(Errno::ESTALE);
            }
            if self.is_root {
                chown_fd(fd.as_fd(), uid, gid)?;
            }
            if ftype != libc::S_IFLNK {
                chmod_fd(fd.as_fd(), perm)?;
            }
            Ok(fd)
        };
        match finish() {
            Ok(fd) => self.insert_child(&pfd, &pstat, name, fd),
            Err(e) => {
                if e != Errno::ESTALE {
                    let flags = if ftype == libc::S_IFDIR {
                        libc::AT_REMOVEDIR
                    } else {
                        0
                    };
                    let _ = unlinkat(pfd.as_fd(), &name, flags);
                }
                Err(e)
            }
        }
    }

    /// Connect: a new host socket connected to the socket file of `fid`
    /// (reached through its O_PATH fd's /proc link, so the path is the one
    /// already confined to the root).
    fn connect(&self, fid: Fid, sock_type: i32) -> Result<OwnedFd, Errno> {
        let e = self.entry(fid)?;
        if !self.host_uds || e.stat.file_type() != libc::S_IFSOCK {
            return Err(Errno::ECONNREFUSED);
        }
        if sock_type != libc::SOCK_STREAM && sock_type != libc::SOCK_SEQPACKET {
            return Err(Errno::EPROTOTYPE);
        }
        // SAFETY: socket(2) with constant arguments; the fd is ours.
        let raw = unsafe { libc::socket(libc::AF_UNIX, sock_type | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(Errno::last());
        }
        // SAFETY: raw is a fresh fd nobody else owns.
        let sock = unsafe { OwnedFd::from_raw_fd(raw) };
        let path = proc_fd_path(e.fd.as_fd());
        let bytes = path.as_bytes_with_nul();
        // SAFETY: sockaddr_un is plain data; zeroed is a valid value.
        let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        sa.sun_family = libc::AF_UNIX as libc::sa_family_t;
        if bytes.len() > sa.sun_path.len() {
            return Err(Errno::ENAMETOOLONG);
        }
        for (d, s) in sa.sun_path.iter_mut().zip(bytes) {
            *d = *s as libc::c_char;
        }
        let len = (std::mem::size_of::<libc::sa_family_t>() + bytes.len()) as libc::socklen_t;
        // SAFETY: connect with a sockaddr_un we filled and its length.
        let r = unsafe {
            libc::connect(
                sock.as_raw_fd(),
                &sa as *const libc::sockaddr_un as *const libc::sockaddr,
                len,
            )
        };
        check(r)?;
        Ok(sock)
    }

    /// Link: a new name `name` in `dir` for the file of fid `target`.
    fn link(&mut self, dir: Fid, name: &[u8], target: Fid) -> Result<Stat, Errno> {
        protocol::validate_name(name)?;
        let (pfd, _) = self.dir(dir)?;
        let te = self.entry(target)?;
        // Linux looks the new name up first: an existing name is EEXIST
        // even when the target is a directory.
        if te.stat.is_dir() {
            return Err(
                if fstatat(Some(pfd.as_raw_fd()), name, AtFlags::AT_SYMLINK_NOFOLLOW).is_ok() {
                    Errno::EEXIST
                } else {
                    Errno::EPERM
                },
            );
        }
        let cname = cstr(name)?;
        let tfd = te.fd.clone();
        // 1. linkat(fd, "", AT_EMPTY_PATH): needs CAP_DAC_READ_SEARCH, else ENOENT.
        // SAFETY: valid C strings for the duration of the calls below.
        let r = unsafe {
            libc::linkat(
                tfd.as_raw_fd(),
                c"".as_ptr(),
                pfd.as_raw_fd(),
                cname.as_ptr(),
                libc::AT_EMPTY_PATH,
            )
        };
        let mut res = check(r);
        // 2. The fd's /proc magic link, followed: the same inode.
        if matches!(res, Err(Errno::ENOENT) | Err(Errno::EPERM)) && !te.stat.is_symlink() {
            let path = proc_fd_path(tfd.as_fd());
            // SAFETY: as above.
            let r = unsafe {
                libc::linkat(
                    libc::AT_FDCWD,
                    path.as_ptr(),
                    pfd.as_raw_fd(),
                    cname.as_ptr(),
                    libc::AT_SYMLINK_FOLLOW,
                )
            };
            res = check(r);
        }
        // 3. By the name it was reached by, checking the result is the
        // same file.
        if matches!(res, Err(Errno::ENOENT) | Err(Errno::EPERM)) {
            if let Some(p) = &te.parent {
                let old = cstr(&p.name)?;
                // SAFETY: as above.
                let r = unsafe {
                    libc::linkat(
                        p.fd.as_raw_fd(),
                        old.as_ptr(),
                        pfd.as_raw_fd(),
                        cname.as_ptr(),
                        0,
                    )
                };
                res = check(r);
                if res.is_ok() {
                    let same = fstatat(Some(pfd.as_raw_fd()), name, AtFlags::AT_SYMLINK_NOFOLLOW)
                        .map(|s| Stat::from(&s))
                        .map(|s| (s.st_dev, s.st_ino) == (te.stat.st_dev, te.stat.st_ino))
                        .unwrap_or(false);
                    if !same {
                        let _ = unlinkat(pfd.as_fd(), name, 0);
                        res = Err(Errno::ESTALE);
                    }
                }
            }
        }
        res?;
        stat_fd(tfd.as_fd())
    }

    fn rename(
        &mut self,
        old_dir: Fid,
        old_name: &[u8],
        new_dir: Fid,
        new_name: &[u8],
        flags: u32,
    ) -> Result<(), Errno> {
        protocol::validate_name(old_name)?;
        protocol::validate_name(new_name)?;
        let known = libc::RENAME_NOREPLACE | libc::RENAME_EXCHANGE;
        if flags & !known != 0 || flags == known {
            return Err(Errno::EINVAL);
        }
        let (ofd, ost) = self.dir(old_dir)?;
        let (nfd, nst) = self.dir(new_dir)?;
        renameat2(ofd.as_fd(), old_name, nfd.as_fd(), new_name, flags)?;
        // Keep the fids' parent references pointing at their files.
        let exchange = flags & libc::RENAME_EXCHANGE != 0;
        let old_id = (ost.st_dev, ost.st_ino);
        let new_id = (nst.st_dev, nst.st_ino);
        for e in self.fids.values_mut() {
            let Some(p) = &mut e.parent else { continue };
            let id = (p.dev, p.ino);
            let to = if id == old_id && p.name == old_name {
                Some((&nfd, new_name, new_id))
            } else if exchange && id == new_id && p.name == new_name {
                Some((&ofd, old_name, old_id))
            } else {
                None
            };
            if let Some((fd, name, (dev, ino))) = to {
                *p = ParentRef {
                    fd: fd.clone(),
                    name: name.to_vec(),
                    dev,
                    ino,
                };
            }
        }
        Ok(())
    }

    fn setattr(&mut self, fid: Fid, a: &SetAttr) -> Result<Stat, Errno> {
        let e = self.entry(fid)?;
        let (fd, ftype) = (e.fd.clone(), e.stat.file_type());
        // Validate everything before changing anything.
        if a.mask & SETATTR_MODE != 0 && ftype == libc::S_IFLNK {
            return Err(Errno::EOPNOTSUPP);
        }
        if a.mask & SETATTR_SIZE != 0 {
            match ftype {
                libc::S_IFREG => {}
                libc::S_IFDIR => return Err(Errno::EISDIR),
                _ => return Err(Errno::EINVAL),
            }
            if i64::try_from(a.size).is_err() {
                return Err(Errno::EINVAL);
            }
        }
        if (a.mask & SETATTR_ATIME != 0 && !valid_nsec(a.atime_nsec))
            || (a.mask & SETATTR_MTIME != 0 && !valid_nsec(a.mtime_nsec))
        {
            return Err(Errno::EINVAL);
        }

        if a.mask & (SETATTR_UID | SETATTR_GID) != 0 {
            let uid = if a.mask & SETATTR_UID != 0 {
                a.uid
            } else {
                u32::MAX
            };
            let gid = if a.mask & SETATTR_GID != 0 {
                a.gid
            } else {
                u32::MAX
            };
            chown_fd(fd.as_fd(), uid, gid)?;
        }
        if a.mask & SETATTR_MODE != 0 {
            chmod_fd(fd.as_fd(), a.mode & 0o7777)?;
        }
        if a.mask & SETATTR_SIZE != 0 {
            let w = self.open(fid, libc::O_WRONLY | libc::O_NONBLOCK)?;
            nix::unistd::ftruncate(&w, a.size as i64)?;
        }
        if a.mask & (SETATTR_ATIME | SETATTR_MTIME) != 0 {
            let ts = |on: bool, sec: i64, nsec: i64| {
                if on {
                    libc::timespec {
                        tv_sec: sec as libc::time_t,
                        tv_nsec: nsec as libc::c_long,
                    }
                } else {
                    libc::timespec {
                        tv_sec: 0,
                        tv_nsec: libc::UTIME_OMIT,
                    }
                }
            };
            let times = [
                ts(a.mask & SETATTR_ATIME != 0, a.atime_sec, a.atime_nsec),
                ts(a.mask & SETATTR_MTIME != 0, a.mtime_sec, a.mtime_nsec),
            ];
            // SAFETY: `times` is a live array of two timespecs and the
            // path a static empty C string.
            let r = unsafe {
                libc::utimensat(
                    fd.as_raw_fd(),
                    c"".as_ptr(),
                    times.as_ptr(),
                    libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
                )
            };
            match check(r) {
                // Kernels before AT_EMPTY_PATH support in utimensat: the
                // magic link (not for symlinks, which it would follow).
                Err(Errno::EINVAL) if ftype != libc::S_IFLNK => {
                    let path = proc_fd_path(fd.as_fd());
                    // SAFETY: as above, with a valid C string path.
                    check(unsafe {
                        libc::utimensat(libc::AT_FDCWD, path.as_ptr(), times.as_ptr(), 0)
                    })?;
                }
                r => r?,
            }
        }
        stat_fd(fd.as_fd())
    }

    /// Only the `user.` namespace is served (see the protocol docs).
    fn check_xattr_name(name: &[u8]) -> Result<CString, Errno> {
        protocol::validate_xattr_name(name)?;
        if !name.starts_with(b"user.") {
            return Err(Errno::EOPNOTSUPP);
        }
        cstr(name)
    }

    /// Runs an xattr call on fid `fid`'s file: through its `/proc/self/fd`
    /// magic link, or, without `/proc`, on a read-only reopen.
    fn xattr_call(
        &mut self,
        fid: Fid,
        by_path: impl Fn(&CString) -> libc::ssize_t,
        by_fd: impl Fn(RawFd) -> libc::ssize_t,
    ) -> Result<usize, Errno> {
        let e = self.entry(fid)?;
        let ftype = e.stat.file_type();
        let path = proc_fd_path(e.fd.as_fd());
        match check_size(by_path(&path)) {
            Err(Errno::ENOENT) => {}
            r => return r,
        }
        let fd = match ftype {
            libc::S_IFDIR => openat(
                e.fd.as_fd(),
                b".",
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )?,
            libc::S_IFREG => self.open(fid, libc::O_RDONLY | libc::O_NONBLOCK)?,
            _ => return Err(Errno::EOPNOTSUPP),
        };
        check_size(by_fd(fd.as_raw_fd()))
    }

    fn getxattr(&mut self, fid: Fid, name: &[u8]) -> Result<Vec<u8>, Errno> {
        let cname = Self::check_xattr_name(name)?;
        if self.entry(fid)?.stat.is_symlink() {
            return Err(Errno::ENODATA);
        }
        let mut buf = vec![0u8; MAX_MESSAGE - RESPONSE_HEADER_LEN - 4];
        let (ptr, len) = (buf.as_mut_ptr(), buf.len());
        let r = self.xattr_call(
            fid,
            // SAFETY: `ptr` is live and writable for `len` bytes, and the
            // strings are valid C strings, for the duration of the calls.
            |p| unsafe { libc::getxattr(p.as_ptr(), cname.as_ptr(), ptr.cast(), len) },
            |fd| unsafe { libc::fgetxattr(fd, cname.as_ptr(), ptr.cast(), len) },
        );
        match r {
            // Bigger than a reply can carry.
            Err(Errno::ERANGE) => Err(Errno::E2BIG),
            Err(e) => Err(e),
            Ok(n) => {
                buf.truncate(n);
                Ok(buf)
            }
        }
    }

    fn setxattr(&mut self, fid: Fid, name: &[u8], value: &[u8], flags: u32) -> Result<(), Errno> {
        let cname = Self::check_xattr_name(name)?;
        let known = (libc::XATTR_CREATE | libc::XATTR_REPLACE) as u32;
        if flags & !known != 0 {
            return Err(Errno::EINVAL);
        }
        if self.entry(fid)?.stat.is_symlink() {
            return Err(Errno::EPERM);
        }
        let (ptr, len, fl) = (value.as_ptr(), value.len(), flags as i32);
        self.xattr_call(
            fid,
            // SAFETY: `value` is live and readable for `len` bytes, and
            // the strings are valid C strings, for the duration of the calls.
            |p| unsafe { libc::setxattr(p.as_ptr(), cname.as_ptr(), ptr.cast(), len, fl) as _ },
            |fd| unsafe { libc::fsetxattr(fd, cname.as_ptr(), ptr.cast(), len, fl) as _ },
        )
        .map(drop)
    }

    fn listxattr(&mut self, fid: Fid) -> Result<Vec<u8>, Errno> {
        if self.entry(fid)?.stat.is_symlink() {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; MAX_MESSAGE - RESPONSE_HEADER_LEN - 4];
        let (ptr, len) = (buf.as_mut_ptr(), buf.len());
        let n = self
            .xattr_call(
                fid,
                // SAFETY: `ptr` is live and writable for `len` bytes, and
                // the path a valid C string, for the duration of the calls.
                |p| unsafe { libc::listxattr(p.as_ptr(), ptr.cast(), len) },
                |fd| unsafe { libc::flistxattr(fd, ptr.cast(), len) },
            )
            .map_err(|e| if e == Errno::ERANGE { Errno::E2BIG } else { e })?;
        let mut out = Vec::new();
        for name in buf.get(..n).unwrap_or(&[]).split(|&b| b == 0) {
            if name.starts_with(b"user.") {
                out.extend_from_slice(name);
                out.push(0);
            }
        }
        Ok(out)
    }

    fn removexattr(&mut self, fid: Fid, name: &[u8]) -> Result<(), Errno> {
        let cname = Self::check_xattr_name(name)?;
        if self.entry(fid)?.stat.is_symlink() {
            return Err(Errno::EPERM);
        }
        self.xattr_call(
            fid,
            // SAFETY: the strings are valid C strings for the duration of
            // the calls.
            |p| unsafe { libc::removexattr(p.as_ptr(), cname.as_ptr()) as _ },
            |fd| unsafe { libc::fremovexattr(fd, cname.as_ptr()) as _ },
        )
        .map(drop)
    }

    fn open(&mut self, fid: Fid, flags: i32) -> Result<OwnedFd, Errno> {
        let e = self.entry(fid)?;
        let mut oflags = check_open_flags(flags, self.read_only)?;
        let ftype = e.stat.file_type();
        if ftype == libc::S_IFLNK {
            return Err(Errno::ELOOP);
        }
        if ftype == libc::S_IFDIR {
            // "." of the directory's own O_PATH fd is the directory itself.
            return openat(e.fd.as_fd(), b".", oflags);
        }
        // Opening a FIFO for reading blocks until a writer appears (and
        // for writing until a reader does): never block the gofer. The
        // caller's O_NONBLOCK choice is restored on the new fd below.
        let added_nonblock = ftype == libc::S_IFIFO && oflags & libc::O_NONBLOCK == 0;
        if added_nonblock {
            oflags |= libc::O_NONBLOCK;
        }
        // (A write-only non-blocking FIFO open without a reader fails
        // with ENXIO; that is what the caller gets.)
        //
        // First through the fid's /proc/self/fd magic link: it names the
        // fid's inode itself (never a symlink: those were refused above),
        // even after a rename or unlink. O_NOFOLLOW would refuse the magic
        // link itself.
        let fd = match openat(
            self.root.as_fd(),
            proc_fd_path(e.fd.as_fd()).as_bytes(),
            oflags & !libc::O_NOFOLLOW,
        ) {
            // No /proc: by the name it was reached by, without following.
            Err(Errno::ENOENT) => {
                let Some(p) = &e.parent else {
                    // Only attach fids lack a parent, and the root is a
                    // directory.
                    return Err(Errno::EBADF);
                };
                openat(p.fd.as_fd(), &p.name, oflags)?
            }
            r => r?,
        };
        // The name may have been replaced since the walk: make sure the
        // new fd is the same inode as the fid.
        let now = stat_fd(fd.as_fd())?;
        if now.st_dev != e.stat.st_dev || now.st_ino != e.stat.st_ino {
            return Err(Errno::ESTALE);
        }
        if added_nonblock {
            let fl = fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)?;
            let fl = OFlag::from_bits_retain(fl) & !OFlag::O_NONBLOCK;
            fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(fl))?;
        }
        Ok(fd)
    }

    fn readdir(&mut self, fid: Fid, cookie: u64) -> Result<Reply, Errno> {
        let e = self.fids.get_mut(&fid).ok_or(Errno::EBADF)?;
        if !e.stat.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        if e.dir.is_none() {
            let fd = openat(
                e.fd.as_fd(),
                b".",
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )?;
            e.dir = Some(fd);
        }
        let dir = e.dir.as_ref().ok_or(Errno::EIO)?;
        // Cookies are the kernel's d_off values, passed through bit for bit.
        lseek(dir.as_raw_fd(), cookie as i64, Whence::SeekSet)?;

        let mut entries = Vec::new();
        let mut used = RESPONSE_HEADER_LEN + READDIR_FIXED_LEN;
        let mut next_cookie = cookie;
        let end = 'fill: loop {
            let n = getdents64(dir.as_fd(), &mut self.dents)?;
            if n == 0 {
                break 'fill true;
            }
            let buf = self.dents.get(..n).ok_or(Errno::EIO)?;
            for d in parse_dirents(buf) {
                let d = d?;
                if d.name == b"." || d.name == b".." {
                    next_cookie = d.off as u64;
                    continue;
                }
                if protocol::validate_name(d.name).is_err() {
                    warn!(name = ?String::from_utf8_lossy(d.name), "skipping unencodable dirent");
                    next_cookie = d.off as u64;
                    continue;
                }
                let len = dirent_len(d.name.len());
                if used + len > MAX_MESSAGE {
                    break 'fill false;
                }
                used += len;
                entries.push(DirEntry {
                    ino: d.ino,
                    d_type: d.d_type,
                    name: d.name.to_vec(),
                });
                next_cookie = d.off as u64;
            }
        };
        Ok(Reply::Readdir {
            entries,
            next_cookie,
            end,
        })
    }
}

/// Serves one connection until the peer closes it (then returns `Ok`).
///
/// `root` must be a directory (an `O_PATH` fd is enough); `sock` must be a
/// `SOCK_SEQPACKET` Unix socket. With `read_only`, every Open asking for
/// write access, and every op that changes the tree, gets `EROFS`. Malformed messages get an error reply
/// (`EINVAL`, or `ENOSYS` for an unknown op) and the loop goes on.
pub fn serve(root: OwnedFd, sock: OwnedFd, read_only: bool) -> anyhow::Result<()> {
    serve_with(root, sock, read_only, false)
}

/// As [`serve`]; with `host_uds`, Connect reaches host Unix sockets found
/// in the tree (gVisor's `--host-uds=open`).
pub fn serve_with(
    root: OwnedFd,
    sock: OwnedFd,
    read_only: bool,
    host_uds: bool,
) -> anyhow::Result<()> {
    let root_stat = stat_fd(root.as_fd()).context("fstat gofer root")?;
    if !root_stat.is_dir() {
        bail!("gofer root is not a directory");
    }
    let ty = getsockopt(&sock, sockopt::SockType).context("getsockopt(SO_TYPE)")?;
    if ty != SockType::SeqPacket {
        bail!("gofer socket is {ty:?}, not SOCK_SEQPACKET");
    }

    let mut server = Server::new(root, read_only, host_uds);
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let got = match recv_msg(sock.as_fd(), &mut buf) {
            Ok(got) => got,
            Err(Errno::ECONNRESET) => {
                debug!("gofer peer reset the connection");
                return Ok(());
            }
            Err(e) => return Err(e).context("gofer recvmsg"),
        };
        // Fds sent to the gofer are never used: close them now.
        if !got.fds.is_empty() {
            warn!(count = got.fds.len(), "closing fds sent to the gofer");
        }
        drop(got.fds);
        let msg = buf.get(..got.len).unwrap_or(&[]);
        if got.len == 0 && peer_closed(sock.as_fd()) {
            debug!("gofer peer closed the connection");
            return Ok(());
        }

        let (tag, op, result) = if got.truncated {
            let (tag, op) = protocol::peek_tag_op(msg);
            warn!(tag, op, "oversized gofer message");
            (tag, op, Err(Errno::EINVAL))
        } else {
            match decode_request(msg) {
                Ok((hdr, req)) => {
                    debug!(tag = hdr.tag, ?req, "gofer request");
                    (hdr.tag, hdr.op, server.handle(req))
                }
                Err(err) => {
                    let (tag, op) = protocol::peek_tag_op(msg);
                    warn!(tag, op, %err, "malformed gofer message");
                    (tag, op, Err(err.errno()))
                }
            }
        };

        let (reply, fd) = match result {
            Ok((reply, fd)) => (Ok(reply), fd),
            Err(e) => (Err(e), None),
        };
        if let Err(e) = &reply {
            debug!(tag, op, errno = %e, "gofer error reply");
        }
        let (bytes, fd) = match encode_response(tag, op, reply.as_ref().map_err(|e| *e)) {
            Ok(b) => (b, fd),
            Err(err) => {
                // Only a bug can get here (a reply is always sized to fit).
                warn!(tag, op, %err, "cannot encode gofer reply");
                match encode_response(tag, op, Err(Errno::EIO)) {
                    Ok(b) => (b, None),
                    Err(err) => bail!("cannot encode error reply: {err}"),
                }
            }
        };
        match send_msg(sock.as_fd(), &bytes, fd.as_ref().map(|f| f.as_fd())) {
            Ok(()) => {}
            Err(Errno::EPIPE) | Err(Errno::ECONNRESET) => {
                debug!("gofer peer went away");
                return Ok(());
            }
            Err(e) => return Err(e).context("gofer sendmsg"),
        }
    }
}

/// Opens `root_path` (`O_PATH | O_DIRECTORY`) and serves the connection on
/// `sock_fd`, which must be a `SOCK_SEQPACKET` Unix socket. Takes
/// ownership of `sock_fd`: it is closed when this returns.
pub fn run(root_path: &Path, sock_fd: RawFd, read_only: bool) -> anyhow::Result<()> {
    run_with(root_path, sock_fd, read_only, false)
}

/// As [`run`], with [`serve_with`]'s `host_uds`.
pub fn run_with(
    root_path: &Path,
    sock_fd: RawFd,
    read_only: bool,
    host_uds: bool,
) -> anyhow::Result<()> {
    // Reject a closed or bogus fd before taking ownership of it.
    fcntl(sock_fd, FcntlArg::F_GETFD).with_context(|| format!("gofer socket fd {sock_fd}"))?;
    // SAFETY: the caller hands `sock_fd` over to us (documented contract),
    // and F_GETFD just confirmed it is open.
    let sock = unsafe { OwnedFd::from_raw_fd(sock_fd) };
    let root = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(root_path)
        .with_context(|| format!("open gofer root {}", root_path.display()))?;
    serve_with(OwnedFd::from(root), sock, read_only, host_uds)
}
