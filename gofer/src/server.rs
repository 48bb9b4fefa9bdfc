//! The gofer server: owns the root directory fd and the per-connection
//! fid table, and answers one request per packet.
//!
//! Confinement: every fid holds an `O_PATH` fd, and the only way to get
//! a new one is `openat(dir_fd, name, O_PATH | O_NOFOLLOW)` with a name
//! that was validated to be a single component (no `/`, not `.` or
//! `..`). Symlinks are never followed (a walk to a symlink yields the
//! link itself), so nothing reachable through the protocol lies outside
//! the root directory tree.

use std::collections::HashMap;
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
    self, decode_request, dirent_len, encode_response, DirEntry, Fid, Reply, Request, Stat, Statfs,
    MAX_MESSAGE, READDIR_FIXED_LEN, RESPONSE_HEADER_LEN,
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
///   (creating files will be its own op).
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

struct FidEntry {
    /// `O_PATH` fd of the file itself.
    fd: Arc<OwnedFd>,
    /// `O_PATH` fd of the directory it was walked from, with `name`; used
    /// to re-open non-directories without following symlinks. `None` for
    /// an attach (root) fid.
    parent: Option<(Arc<OwnedFd>, Vec<u8>)>,
    /// Cached stat at walk time; the file type of an inode never changes.
    stat: Stat,
    /// Lazily opened `O_RDONLY | O_DIRECTORY` fd used by Readdir.
    dir: Option<OwnedFd>,
}

struct Server {
    root: Arc<OwnedFd>,
    read_only: bool,
    fids: HashMap<Fid, FidEntry>,
    next_fid: Fid,
    dents: Vec<u8>,
}

impl Server {
    fn new(root: OwnedFd, read_only: bool) -> Server {
        Server {
            root: Arc::new(root),
            read_only,
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
                let parent = self.entry(dir)?.fd.clone();
                if self.fids.len() >= MAX_FIDS {
                    return Err(Errno::EMFILE);
                }
                let fd = openat(
                    parent.as_fd(),
                    &name,
                    libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                )?;
                let stat = stat_fd(fd.as_fd())?;
                let fid = self.insert(FidEntry {
                    fd: Arc::new(fd),
                    parent: Some((parent, name)),
                    stat,
                    dir: None,
                })?;
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
        }
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
        let Some((parent, name)) = &e.parent else {
            // Only attach fids lack a parent, and the root is a directory.
            return Err(Errno::EBADF);
        };
        // Opening a FIFO for reading blocks until a writer appears (and
        // for writing until a reader does): never block the gofer. The
        // caller's O_NONBLOCK choice is restored on the new fd below.
        let added_nonblock = ftype == libc::S_IFIFO && oflags & libc::O_NONBLOCK == 0;
        if added_nonblock {
            oflags |= libc::O_NONBLOCK;
        }
        // (A write-only non-blocking FIFO open without a reader fails
        // with ENXIO; that is what the caller gets.)
        let fd = openat(parent.as_fd(), name, oflags)?;
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
/// write access gets `EROFS`. Malformed messages get an error reply
/// (`EINVAL`, or `ENOSYS` for an unknown op) and the loop goes on.
pub fn serve(root: OwnedFd, sock: OwnedFd, read_only: bool) -> anyhow::Result<()> {
    let root_stat = stat_fd(root.as_fd()).context("fstat gofer root")?;
    if !root_stat.is_dir() {
        bail!("gofer root is not a directory");
    }
    let ty = getsockopt(&sock, sockopt::SockType).context("getsockopt(SO_TYPE)")?;
    if ty != SockType::SeqPacket {
        bail!("gofer socket is {ty:?}, not SOCK_SEQPACKET");
    }

    let mut server = Server::new(root, read_only);
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
    serve(OwnedFd::from(root), sock, read_only)
}
