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
    decode_response, encode_request, validate_name, Op, ProtoError, Reply, Request, MAX_MESSAGE,
};
pub use crate::protocol::{DirEntry, Fid, Stat, Statfs};
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
        send_msg(inner.sock.as_fd(), &msg, None).map_err(|e| broken("send failed", e))?;

        for _ in 0..=MAX_STALE_REPLIES {
            let got = recv_msg(inner.sock.as_fd(), &mut inner.buf)
                .map_err(|e| broken("receive failed", e))?;
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
            let fd = if op == Op::Open {
                if fds.len() != 1 {
                    return Err(broken(
                        "bad reply",
                        format!("open reply with {} fds", fds.len()),
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
