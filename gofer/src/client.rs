//! The sentry's side of the gofer connection.
//!
//! [`Client`] is `Send + Sync`: each call sends one request and waits for
//! its reply while holding a mutex around the socket, so calls from many
//! threads are serialized. Errors the guest should see are Linux errnos
//! from the gofer; a broken or garbage reply (or a dead gofer) is `EIO`,
//! logged with `tracing::warn`.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Mutex;

use nix::errno::Errno;
use tracing::warn;

use crate::protocol::{
    decode_response, encode_request, validate_name, validate_symlink_target, validate_xattr_name,
    Op, ProtoError, Reply, Request, MAX_MESSAGE, MAX_XATTR_VALUE,
};
pub use crate::protocol::{DirEntry, Fid, SetAttr, Stat, Statfs};
use crate::transport::{recv_msg, send_msg};

/// Replies with a stale tag (left over from an interrupted exchange) that
/// are skipped before giving up with `EIO`.
const MAX_STALE_REPLIES: usize = 8;

struct Inner {
    sock: OwnedFd,
    next_tag: u32,
    buf: Vec<u8>,
}

/// A connection to a gofer server.
pub struct Client {
    inner: Mutex<Inner>,
}

/// One page of a directory listing, see [`Client::readdir_page`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirPage {
    pub entries: Vec<DirEntry>,
    /// Cookie to pass to get the next page.
    pub next_cookie: u64,
    /// No entries follow this page.
    pub end: bool,
}

fn broken(what: &str, err: impl std::fmt::Display) -> Errno {
    warn!(%err, "gofer client: {what}");
    Errno::EIO
}

/// As `broken`, but a gofer that went away (the sandbox shutting down)
/// is not worth a warning.
fn gone_or_broken(what: &str, err: Errno) -> Errno {
    if matches!(err, Errno::EPIPE | Errno::ECONNRESET) {
        tracing::debug!(%err, "gofer client: {what}");
        return Errno::EIO;
    }
    broken(what, err)
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

impl Client {
    /// Wraps a connected `SOCK_SEQPACKET` socket whose peer runs
    /// [`crate::serve`].
    pub fn new(sock: OwnedFd) -> Client {
        Client {
            inner: Mutex::new(Inner {
                sock,
                next_tag: 1,
                buf: vec![0u8; MAX_MESSAGE],
            }),
        }
    }

    /// One request/reply exchange.
    fn call(&self, req: &Request) -> Result<(Reply, Option<OwnedFd>), Errno> {
        let op = req.op();
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| broken("connection mutex poisoned", "a caller panicked"))?;
        let inner = &mut *inner;
        let tag = inner.next_tag;
        inner.next_tag = inner.next_tag.wrapping_add(1);
        let msg = encode_request(tag, req).map_err(|e| match e {
            ProtoError::BadName(errno) => errno,
            _ => Errno::EINVAL,
        })?;
        send_msg(inner.sock.as_fd(), &msg, None).map_err(|e| gone_or_broken("send failed", e))?;

        for _ in 0..=MAX_STALE_REPLIES {
            let got = recv_msg(inner.sock.as_fd(), &mut inner.buf)
                .map_err(|e| gone_or_broken("receive failed", e))?;
            let mut fds = got.fds;
            if got.len == 0 {
                return Err(broken("no reply", "connection closed"));
            }
            if got.truncated || got.fds_truncated {
                return Err(broken("bad reply", "truncated"));
            }
            let bytes = inner.buf.get(..got.len).ok_or(Errno::EIO)?;
            let resp = decode_response(bytes).map_err(|e| broken("bad reply", e))?;
            if resp.tag != tag {
                warn!(
                    expected = tag,
                    got = resp.tag,
                    "gofer client: skipping stale reply"
                );
                continue;
            }
            if resp.op != op as u8 {
                return Err(broken(
                    "bad reply",
                    format!("op {} for request op {}", resp.op, op as u8),
                ));
            }
            let reply = resp.result?;
            let fd = if op == Op::Open || op == Op::Create || op == Op::Connect {
                if fds.len() != 1 {
                    return Err(broken(
                        "bad reply",
                        format!("{op:?} reply with {} fds", fds.len()),
                    ));
                }
                fds.pop()
            } else {
                if !fds.is_empty() {
                    // Dropping them closes them.
                    warn!(count = fds.len(), "gofer client: unexpected fds in reply");
                }
                None
            };
            return Ok((reply, fd));
        }
        Err(broken("no reply", "too many stale replies"))
    }

    fn unexpected(reply: Reply) -> Errno {
        broken("bad reply", format!("unexpected payload {:?}", reply.op()))
    }

    /// Gets a fid for the root directory.
    pub fn attach(&self) -> Result<(Fid, Stat), Errno> {
        match self.call(&Request::Attach)?.0 {
            Reply::Attach { fid, stat } => Ok((fid, stat)),
            r => Err(Self::unexpected(r)),
        }
    }

    /// Looks up `name` in directory `dir` without following a symlink.
    ///
    /// `name` must be one component: `""`, `"."`, `".."` and names with
    /// `/` or NUL give `EINVAL` (checked here and by the server), names
    /// over 255 bytes `ENAMETOOLONG`.
    pub fn walk(&self, dir: Fid, name: &[u8]) -> Result<(Fid, Stat), Errno> {
        validate_name(name)?;
        let req = Request::Walk {
            dir,
            name: name.to_vec(),
        };
        match self.call(&req)?.0 {
            Reply::Walk { fid, stat } => Ok((fid, stat)),
            r => Err(Self::unexpected(r)),
        }
    }

    /// Current attributes of `fid` (symlinks not followed).
    pub fn stat(&self, fid: Fid) -> Result<Stat, Errno> {
        match self.call(&Request::Stat { fid })?.0 {
            Reply::Stat(stat) => Ok(stat),
            r => Err(Self::unexpected(r)),
        }
    }

    /// Opens `fid` with `open(2)` `flags` and returns the host fd
    /// (close-on-exec in this process). A symlink gives `ELOOP`; write
    /// access on a read-only gofer gives `EROFS`.
    pub fn open(&self, fid: Fid, flags: i32) -> Result<OwnedFd, Errno> {
        match self.call(&Request::Open { fid, flags })? {
            (Reply::Open, Some(fd)) => Ok(fd),
            (r, _) => Err(Self::unexpected(r)),
        }
    }

    /// One page of the listing of directory `fid`, starting at `cookie`
    /// (0 for the start). `.` and `..` are omitted.
    pub fn readdir_page(&self, fid: Fid, cookie: u64) -> Result<DirPage, Errno> {
        match self.call(&Request::Readdir { fid, cookie })?.0 {
            Reply::Readdir {
                entries,
                next_cookie,
                end,
            } => Ok(DirPage {
                entries,
                next_cookie,
                end,
            }),
            r => Err(Self::unexpected(r)),
        }
    }

    /// The whole listing of directory `fid`, without `.` and `..`.
    pub fn readdir(&self, fid: Fid) -> Result<Vec<DirEntry>, Errno> {
        let mut all = Vec::new();
        let mut cookie = 0;
        loop {
            let page = self.readdir_page(fid, cookie)?;
            let stuck = page.entries.is_empty() && page.next_cookie == cookie;
            all.extend(page.entries);
            if page.end {
                return Ok(all);
            }
            if stuck {
                return Err(broken("bad reply", "readdir made no progress"));
            }
            cookie = page.next_cookie;
        }
    }

    /// Target of symlink `fid`; `EINVAL` if it is not a symlink.
    pub fn readlink(&self, fid: Fid) -> Result<Vec<u8>, Errno> {
        match self.call(&Request::Readlink { fid })?.0 {
            Reply::Readlink(target) => Ok(target),
            r => Err(Self::unexpected(r)),
        }
    }

    /// Statistics of the file system holding `fid`.
    pub fn statfs(&self, fid: Fid) -> Result<Statfs, Errno> {
        match self.call(&Request::Statfs { fid })?.0 {
            Reply::Statfs(s) => Ok(s),
            r => Err(Self::unexpected(r)),
        }
    }

    /// Releases `fid`. Fds already opened from it stay valid.
    pub fn clunk(&self, fid: Fid) -> Result<(), Errno> {
        match self.call(&Request::Clunk { fid })?.0 {
            Reply::Clunk => Ok(()),
            r => Err(Self::unexpected(r)),
        }
    }

    /// Creates regular file `name` in directory `dir` (`EEXIST` if the name
    /// exists, even as a dangling symlink) with permission bits
    /// `mode & 0o7777` exactly (apply your umask first) and owner
    /// `uid`/`gid` (if the gofer runs as root). Returns its fid, its
    /// attributes and an fd opened with `flags` (an access mode plus
    /// read-class flags, as for [`Client::open`]; `O_CREAT`, `O_EXCL` and
    /// `O_TRUNC` are implied or ignored).
    pub fn create(
        &self,
        dir: Fid,
        name: &[u8],
        flags: i32,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<(Fid, Stat, OwnedFd), Errno> {
        validate_name(name)?;
        let req = Request::Create {
            dir,
            name: name.to_vec(),
            flags,
            mode,
            uid,
            gid,
        };
        match self.call(&req)? {
            (Reply::Create { fid, stat }, Some(fd)) => Ok((fid, stat, fd)),
            (r, _) => Err(Self::unexpected(r)),
        }
    }

    /// Creates directory `name` in `dir` with mode `mode & 0o7777` exactly
    /// (plus set-group-ID inherited from a set-group-ID `dir`).
    pub fn mkdir(
        &self,
        dir: Fid,
        name: &[u8],
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<(Fid, Stat), Errno> {
        validate_name(name)?;
        let req = Request::Mkdir {
            dir,
            name: name.to_vec(),
            mode,
            uid,
            gid,
        };
        match self.call(&req)?.0 {
            Reply::Mkdir { fid, stat } => Ok((fid, stat)),
            r => Err(Self::unexpected(r)),
        }
    }

    /// Creates symlink `name` in `dir` pointing to `target` (which is
    /// stored, never resolved, by the gofer).
    pub fn symlink(
        &self,
        dir: Fid,
        name: &[u8],
        target: &[u8],
        uid: u32,
        gid: u32,
    ) -> Result<(Fid, Stat), Errno> {
        validate_name(name)?;
        validate_symlink_target(target)?;
        let req = Request::Symlink {
            dir,
            name: name.to_vec(),
            target: target.to_vec(),
            uid,
            gid,
        };
        match self.call(&req)?.0 {
            Reply::Symlink { fid, stat } => Ok((fid, stat)),
            r => Err(Self::unexpected(r)),
        }
    }

    /// Makes `name` in `dir` a new hard link to the file of fid `target`
    /// (not a directory: `EPERM`). Returns the target's attributes after.
    pub fn link(&self, dir: Fid, name: &[u8], target: Fid) -> Result<Stat, Errno> {
        validate_name(name)?;
        let req = Request::Link {
            dir,
            name: name.to_vec(),
            target,
        };
        match self.call(&req)?.0 {
            Reply::Link(stat) => Ok(stat),
            r => Err(Self::unexpected(r)),
        }
    }

    /// Creates a FIFO, socket or regular file (by `mode`'s `S_IFMT`) with
    /// permission bits `mode & 0o7777` exactly. Device nodes give `EPERM`.
    pub fn mknod(
        &self,
        dir: Fid,
        name: &[u8],
        mode: u32,
        rdev: u64,
        uid: u32,
        gid: u32,
    ) -> Result<(Fid, Stat), Errno> {
        validate_name(name)?;
        let req = Request::Mknod {
            dir,
            name: name.to_vec(),
            mode,
            rdev,
            uid,
            gid,
        };
        match self.call(&req)?.0 {
            Reply::Mknod { fid, stat } => Ok((fid, stat)),
            r => Err(Self::unexpected(r)),
        }
    }

    /// Removes `name` from `dir`: a non-directory with `flags` 0, an empty
    /// directory with `AT_REMOVEDIR`. Fids of the removed file stay usable.
    pub fn unlink(&self, dir: Fid, name: &[u8], flags: u32) -> Result<(), Errno> {
        validate_name(name)?;
        let req = Request::Unlink {
            dir,
            name: name.to_vec(),
            flags,
        };
        match self.call(&req)?.0 {
            Reply::Unlink => Ok(()),
            r => Err(Self::unexpected(r)),
        }
    }

    /// `renameat2(2)` of `old_dir`/`old_name` to `new_dir`/`new_name`;
    /// `flags` is 0, `RENAME_NOREPLACE` or `RENAME_EXCHANGE`. Fids of the
    /// moved files keep working.
    pub fn rename(
        &self,
        old_dir: Fid,
        old_name: &[u8],
        new_dir: Fid,
        new_name: &[u8],
        flags: u32,
    ) -> Result<(), Errno> {
        validate_name(old_name)?;
        validate_name(new_name)?;
        let req = Request::Rename {
            old_dir,
            old_name: old_name.to_vec(),
            new_dir,
            new_name: new_name.to_vec(),
            flags,
        };
        match self.call(&req)?.0 {
            Reply::Rename => Ok(()),
            r => Err(Self::unexpected(r)),
        }
    }

    /// Changes the attributes `attr.mask` selects and returns the
    /// attributes after the change.
    pub fn setattr(&self, fid: Fid, attr: &SetAttr) -> Result<Stat, Errno> {
        match self.call(&Request::SetAttr { fid, attr: *attr })?.0 {
            Reply::SetAttr(stat) => Ok(stat),
            r => Err(Self::unexpected(r)),
        }
    }

    /// A host socket connected to the socket file of `fid` (a server
    /// allowing host sockets only; else `ECONNREFUSED`).
    pub fn connect(&self, fid: Fid, sock_type: i32) -> Result<OwnedFd, Errno> {
        match self.call(&Request::Connect { fid, sock_type })? {
            (Reply::Connect, Some(fd)) => Ok(fd),
            (r, _) => Err(Self::unexpected(r)),
        }
    }

    /// fsync(2) of a regular file or directory.
    pub fn fsync(&self, fid: Fid) -> Result<(), Errno> {
        match self.call(&Request::Fsync { fid })?.0 {
            Reply::Fsync => Ok(()),
            r => Err(Self::unexpected(r)),
        }
    }

    /// The value of extended attribute `name` (`user.` namespace only).
    pub fn getxattr(&self, fid: Fid, name: &[u8]) -> Result<Vec<u8>, Errno> {
        validate_xattr_name(name)?;
        let req = Request::GetXattr {
            fid,
            name: name.to_vec(),
        };
        match self.call(&req)?.0 {
            Reply::GetXattr(v) => Ok(v),
            r => Err(Self::unexpected(r)),
        }
    }

    /// Sets extended attribute `name` (`user.` namespace only); `flags` is
    /// 0, `XATTR_CREATE` or `XATTR_REPLACE`. Values over
    /// [`MAX_XATTR_VALUE`] bytes give `E2BIG`.
    pub fn setxattr(&self, fid: Fid, name: &[u8], value: &[u8], flags: u32) -> Result<(), Errno> {
        validate_xattr_name(name)?;
        if value.len() > MAX_XATTR_VALUE {
            return Err(Errno::E2BIG);
        }
        let req = Request::SetXattr {
            fid,
            name: name.to_vec(),
            value: value.to_vec(),
            flags,
        };
        match self.call(&req)?.0 {
            Reply::SetXattr => Ok(()),
            r => Err(Self::unexpected(r)),
        }
    }

    /// The names of the file's (`user.`) extended attributes.
    pub fn listxattr(&self, fid: Fid) -> Result<Vec<Vec<u8>>, Errno> {
        match self.call(&Request::ListXattr { fid })?.0 {
            Reply::ListXattr(v) => Ok(v
                .split(|&b| b == 0)
                .filter(|n| !n.is_empty())
                .map(<[u8]>::to_vec)
                .collect()),
            r => Err(Self::unexpected(r)),
        }
    }

    /// Removes extended attribute `name` (`user.` namespace only).
    pub fn removexattr(&self, fid: Fid, name: &[u8]) -> Result<(), Errno> {
        validate_xattr_name(name)?;
        let req = Request::RemoveXattr {
            fid,
            name: name.to_vec(),
        };
        match self.call(&req)?.0 {
            Reply::RemoveXattr => Ok(()),
            r => Err(Self::unexpected(r)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<Client>();
    }
}
