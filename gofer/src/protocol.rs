//! Wire protocol between the sentry (client) and the gofer (server).
//!
//! Messages travel over a `SOCK_SEQPACKET` Unix socket, one request or
//! one response per packet, so the kernel preserves message boundaries
//! and no framing beyond the header is needed. Everything is
//! little-endian and hand-encoded.
//!
//! # Request
//!
//! ```text
//! magic u16 = 0x6f67 | version u8 = 1 | op u8 | tag u32 | payload_len u32 | payload
//! ```
//!
//! # Response
//!
//! ```text
//! magic u16 | version u8 | op u8 (echoed) | tag u32 (echoed) | payload_len u32 | status i32 | payload
//! ```
//!
//! `payload_len` always counts the bytes after the fixed header: for a
//! request the payload, for a response the payload *after* `status`.
//! `status` is 0 on success or a positive Linux errno; an error response
//! carries no payload. A whole message (header included) is at most
//! [`MAX_MESSAGE`] bytes, and `payload_len` must match the packet length
//! exactly: trailing or missing bytes make the message malformed.
//!
//! # Ops (version 1)
//!
//! | op | request payload | success payload |
//! |----|-----------------|-----------------|
//! | 1 Attach   | —                                   | fid u64, [`Stat`] |
//! | 2 Walk     | dir fid u64, name_len u16, name     | fid u64, [`Stat`] |
//! | 3 Stat     | fid u64                             | [`Stat`] |
//! | 4 Open     | fid u64, flags i32                  | — (one fd attached with `SCM_RIGHTS`) |
//! | 5 Readdir  | fid u64, cookie u64                 | next_cookie u64, end u8, count u32, count × {ino u64, d_type u8, name_len u16, name} |
//! | 6 Readlink | fid u64                             | len u32, target bytes |
//! | 7 Statfs   | fid u64                             | [`Statfs`] (8 × u64) |
//! | 8 Clunk    | fid u64                             | — |
//! | 9 Create   | dir u64, name, flags i32, mode u32, uid u32, gid u32 | fid u64, [`Stat`] (+ one fd) |
//! | 10 Mkdir   | dir u64, name, mode u32, uid u32, gid u32 | fid u64, [`Stat`] |
//! | 11 Symlink | dir u64, name, target_len u16, target, uid u32, gid u32 | fid u64, [`Stat`] |
//! | 12 Link    | dir u64, name, target fid u64       | [`Stat`] of the target, after linking |
//! | 13 Mknod   | dir u64, name, mode u32, rdev u64, uid u32, gid u32 | fid u64, [`Stat`] |
//! | 14 Unlink  | dir u64, name, flags u32            | — |
//! | 15 Rename  | old dir u64, old name, new dir u64, new name, flags u32 | — |
//! | 16 SetAttr | fid u64, [`SetAttr`] (mask u32, mode u32, uid u32, gid u32, size u64, atime sec i64 nsec i64, mtime sec i64 nsec i64) | [`Stat`] after the change |
//! | 17 Fsync   | fid u64                             | — |
//! | 18 GetXattr | fid u64, xattr name               | len u32, value |
//! | 19 SetXattr | fid u64, xattr name, flags u32, len u32, value | — |
//! | 20 ListXattr | fid u64                          | len u32, names (each NUL-terminated) |
//! | 21 RemoveXattr | fid u64, xattr name            | — |
//! | 22 Connect | fid u64, type i32 (SOCK_STREAM or SOCK_SEQPACKET) | — (a connected host socket attached) |
//!
//! Connect (added without a version change, like ops 9 to 21) connects a
//! new host AF_UNIX socket to the socket file of `fid` and donates it; a
//! server not started to allow host sockets answers `ECONNREFUSED`, as
//! does a fid that is no socket.
//!
//! Ops 9 to 21 modify the tree (Fsync, GetXattr and ListXattr excepted)
//! and are answered with `EROFS` by a read-only server. They were added without
//! changing [`VERSION`]: an older server answers them with `ENOSYS`.
//!
//! - Create makes a regular file with `O_CREAT | O_EXCL | O_NOFOLLOW`
//!   relative to the directory and donates an fd opened with `flags`
//!   (access mode and read-class flags, as for Open; `O_CREAT`, `O_EXCL`
//!   and `O_TRUNC` are implied or ignored). The permission bits of `mode`
//!   (`& 0o7777`) are applied exactly, whatever the gofer's umask: the
//!   client applies its own umask. `uid`/`gid` are applied when the
//!   server runs as root (and ignored otherwise); in a set-group-ID
//!   directory the new file takes the directory's group instead, and a
//!   new directory keeps the set-group-ID bit, as on Linux.
//! - Mknod makes FIFOs, sockets and regular files (`S_IFMT` 0 means
//!   regular); device nodes are refused with `EPERM`.
//! - Unlink flags: 0 or `AT_REMOVEDIR`. Rename flags: 0,
//!   `RENAME_NOREPLACE` or `RENAME_EXCHANGE` (others: `EINVAL`).
//! - SetAttr applies, in this order, owner (`SETATTR_UID`/`SETATTR_GID`),
//!   mode, size and times; timestamps take `UTIME_NOW`/`UTIME_OMIT` in
//!   their nsec field. Mask bits outside [`SETATTR_ALL`] are malformed.
//!   On a symlink, mode gives `EOPNOTSUPP` and size `EINVAL`.
//! - Xattr names are 1..=255 bytes without NUL (longer: `ERANGE`); only
//!   the `user.` namespace is served (others: `EOPNOTSUPP`, and ListXattr
//!   leaves them out), so a guest can never set `security.*` or
//!   `trusted.*` attributes on host files. SetXattr flags: 0,
//!   `XATTR_CREATE` or `XATTR_REPLACE`.
//! - Symlink targets are 1..=4095 bytes without NUL (empty: `ENOENT`,
//!   longer: `ENAMETOOLONG`).
//!
//! Open never follows a symlink (a symlink fid gives `ELOOP`) and accepts
//! only known flags (see [`crate::server::check_open_flags`]); on a
//! read-only server any write access, `O_TRUNC`, `O_APPEND` or `O_CREAT`
//! gives `EROFS` (on a writable one `O_CREAT`/`O_EXCL` are `EINVAL`: use
//! Create). Readdir cookies are opaque (0 = start); a listing too
//! big for one message takes several calls, and `.`/`..` are omitted.
//!
//! New ops get new numbers; a server answers an op it does not know with
//! `ENOSYS`, so a newer client can detect an older server. A message that
//! cannot be decoded (bad magic or version, wrong lengths, bad name) is
//! answered with `EINVAL` (`ENAMETOOLONG` for a name over 255 bytes).
//!
//! # Names
//!
//! A name is one Linux directory entry name: 1..=255 bytes, no `/`, no
//! NUL, and neither `.` nor `..`. Names are raw bytes, not necessarily
//! UTF-8. Every invalid name is refused with `EINVAL`, except an
//! over-long one which gets `ENAMETOOLONG`.

use nix::errno::Errno;

/// A file handle in a connection's fid table.
pub type Fid = u64;

/// `"go"` read as a little-endian u16.
pub const MAGIC: u16 = 0x6f67;
/// Protocol version spoken by this crate.
pub const VERSION: u8 = 1;
/// Size of the request header (and of the common part of a response header).
pub const HEADER_LEN: usize = 12;
/// Size of a response header: [`HEADER_LEN`] plus the `status` i32.
pub const RESPONSE_HEADER_LEN: usize = HEADER_LEN + 4;
/// Largest message, header included.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Longest file name.
pub const MAX_NAME: usize = 255;
/// Encoded size of [`Stat`].
pub const STAT_LEN: usize = 8 + 8 + 4 + 8 + 4 + 4 + 8 + 8 + 8 + 8 + 6 * 8;
/// Encoded size of [`Statfs`].
pub const STATFS_LEN: usize = 8 * 8;
/// Longest symlink target (`PATH_MAX` less the NUL).
pub const MAX_SYMLINK_TARGET: usize = 4095;
/// Longest extended attribute name (`XATTR_NAME_MAX`).
pub const MAX_XATTR_NAME: usize = 255;
/// Longest extended attribute value that fits in a SetXattr request with
/// the longest name (GetXattr replies have a little more room).
pub const MAX_XATTR_VALUE: usize = MAX_MESSAGE - HEADER_LEN - 8 - 2 - MAX_XATTR_NAME - 4 - 4;

/// SetAttr mask bits.
pub const SETATTR_MODE: u32 = 1 << 0;
pub const SETATTR_UID: u32 = 1 << 1;
pub const SETATTR_GID: u32 = 1 << 2;
pub const SETATTR_SIZE: u32 = 1 << 3;
pub const SETATTR_ATIME: u32 = 1 << 4;
pub const SETATTR_MTIME: u32 = 1 << 5;
/// Every valid SetAttr mask bit.
pub const SETATTR_ALL: u32 =
    SETATTR_MODE | SETATTR_UID | SETATTR_GID | SETATTR_SIZE | SETATTR_ATIME | SETATTR_MTIME;
/// Encoded size of [`SetAttr`].
pub const SETATTR_LEN: usize = 4 + 4 + 4 + 4 + 8 + 4 * 8;

/// Fixed part of a Readdir response payload (next_cookie, end, count).
pub const READDIR_FIXED_LEN: usize = 8 + 1 + 4;

/// Encoded size of one readdir entry whose name is `name_len` bytes long.
pub const fn dirent_len(name_len: usize) -> usize {
    8 + 1 + 2 + name_len
}

/// Operation codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Op {
    Attach = 1,
    Walk = 2,
    Stat = 3,
    Open = 4,
    Readdir = 5,
    Readlink = 6,
    Statfs = 7,
    Clunk = 8,
    Create = 9,
    Mkdir = 10,
    Symlink = 11,
    Link = 12,
    Mknod = 13,
    Unlink = 14,
    Rename = 15,
    SetAttr = 16,
    Fsync = 17,
    GetXattr = 18,
    SetXattr = 19,
    ListXattr = 20,
    RemoveXattr = 21,
    Connect = 22,
}

impl Op {
    /// Maps a wire op code to an [`Op`], or `None` if unknown.
    pub fn from_u8(v: u8) -> Option<Op> {
        Some(match v {
            1 => Op::Attach,
            2 => Op::Walk,
            3 => Op::Stat,
            4 => Op::Open,
            5 => Op::Readdir,
            6 => Op::Readlink,
            7 => Op::Statfs,
            8 => Op::Clunk,
            9 => Op::Create,
            10 => Op::Mkdir,
            11 => Op::Symlink,
            12 => Op::Link,
            13 => Op::Mknod,
            14 => Op::Unlink,
            15 => Op::Rename,
            16 => Op::SetAttr,
            17 => Op::Fsync,
            18 => Op::GetXattr,
            19 => Op::SetXattr,
            20 => Op::ListXattr,
            21 => Op::RemoveXattr,
            22 => Op::Connect,
            _ => return None,
        })
    }

    /// True for the ops that change the tree (refused by a read-only
    /// server).
    pub fn modifies(self) -> bool {
        matches!(
            self,
            Op::Create
                | Op::Mkdir
                | Op::Symlink
                | Op::Link
                | Op::Mknod
                | Op::Unlink
                | Op::Rename
                | Op::SetAttr
                | Op::SetXattr
                | Op::RemoveXattr
        )
    }
}

/// File attributes, as `fstatat(2)` reports them (without following symlinks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stat {
    pub st_dev: u64,
    pub st_ino: u64,
    pub st_mode: u32,
    pub st_nlink: u64,
    pub st_uid: u32,
    pub st_gid: u32,
    pub st_rdev: u64,
    pub st_size: i64,
    pub st_blksize: i64,
    pub st_blocks: i64,
    pub st_atime: i64,
    pub st_atime_nsec: i64,
    pub st_mtime: i64,
    pub st_mtime_nsec: i64,
    pub st_ctime: i64,
    pub st_ctime_nsec: i64,
}

impl Stat {
    /// The file type bits (`st_mode & S_IFMT`).
    pub fn file_type(&self) -> u32 {
        self.st_mode & libc::S_IFMT
    }

    pub fn is_dir(&self) -> bool {
        self.file_type() == libc::S_IFDIR
    }

    pub fn is_symlink(&self) -> bool {
        self.file_type() == libc::S_IFLNK
    }

    pub fn is_file(&self) -> bool {
        self.file_type() == libc::S_IFREG
    }
}

impl From<&libc::stat> for Stat {
    fn from(s: &libc::stat) -> Stat {
        // The casts only widen or reinterpret the architecture's field
        // types into the fixed wire types.
        #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
        Stat {
            st_dev: s.st_dev as u64,
            st_ino: s.st_ino as u64,
            st_mode: s.st_mode as u32,
            st_nlink: s.st_nlink as u64,
            st_uid: s.st_uid as u32,
            st_gid: s.st_gid as u32,
            st_rdev: s.st_rdev as u64,
            st_size: s.st_size as i64,
            st_blksize: s.st_blksize as i64,
            st_blocks: s.st_blocks as i64,
            st_atime: s.st_atime as i64,
            st_atime_nsec: s.st_atime_nsec as i64,
            st_mtime: s.st_mtime as i64,
            st_mtime_nsec: s.st_mtime_nsec as i64,
            st_ctime: s.st_ctime as i64,
            st_ctime_nsec: s.st_ctime_nsec as i64,
        }
    }
}

/// One directory entry. `.` and `..` are never sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub ino: u64,
    /// `DT_*` value from `getdents64(2)`.
    pub d_type: u8,
    pub name: Vec<u8>,
}

/// File-system statistics, as `fstatfs(2)` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Statfs {
    pub f_type: u64,
    pub f_bsize: u64,
    pub f_blocks: u64,
    pub f_bfree: u64,
    pub f_bavail: u64,
    pub f_files: u64,
    pub f_ffree: u64,
    pub f_namelen: u64,
}

/// What SetAttr changes: the fields whose `SETATTR_*` bit is in `mask`
/// (the others are ignored, and sent as 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SetAttr {
    pub mask: u32,
    /// Permission bits (`& 0o7777`; the file type is kept).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub atime_sec: i64,
    /// Nanoseconds, or `UTIME_NOW` / `UTIME_OMIT`.
    pub atime_nsec: i64,
    pub mtime_sec: i64,
    pub mtime_nsec: i64,
}

/// A decoded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Attach,
    Walk {
        dir: Fid,
        name: Vec<u8>,
    },
    Stat {
        fid: Fid,
    },
    Open {
        fid: Fid,
        flags: i32,
    },
    Readdir {
        fid: Fid,
        cookie: u64,
    },
    Readlink {
        fid: Fid,
    },
    Statfs {
        fid: Fid,
    },
    Clunk {
        fid: Fid,
    },
    Create {
        dir: Fid,
        name: Vec<u8>,
        flags: i32,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    Mkdir {
        dir: Fid,
        name: Vec<u8>,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    Symlink {
        dir: Fid,
        name: Vec<u8>,
        target: Vec<u8>,
        uid: u32,
        gid: u32,
    },
    Link {
        dir: Fid,
        name: Vec<u8>,
        target: Fid,
    },
    Mknod {
        dir: Fid,
        name: Vec<u8>,
        mode: u32,
        rdev: u64,
        uid: u32,
        gid: u32,
    },
    Unlink {
        dir: Fid,
        name: Vec<u8>,
        flags: u32,
    },
    Rename {
        old_dir: Fid,
        old_name: Vec<u8>,
        new_dir: Fid,
        new_name: Vec<u8>,
        flags: u32,
    },
    SetAttr {
        fid: Fid,
        attr: SetAttr,
    },
    Fsync {
        fid: Fid,
    },
    Connect {
        fid: Fid,
        sock_type: i32,
    },
    GetXattr {
        fid: Fid,
        name: Vec<u8>,
    },
    SetXattr {
        fid: Fid,
        name: Vec<u8>,
        value: Vec<u8>,
        flags: u32,
    },
    ListXattr {
        fid: Fid,
    },
    RemoveXattr {
        fid: Fid,
        name: Vec<u8>,
    },
}

impl Request {
    pub fn op(&self) -> Op {
        match self {
            Request::Attach => Op::Attach,
            Request::Walk { .. } => Op::Walk,
            Request::Stat { .. } => Op::Stat,
            Request::Open { .. } => Op::Open,
            Request::Readdir { .. } => Op::Readdir,
            Request::Readlink { .. } => Op::Readlink,
            Request::Statfs { .. } => Op::Statfs,
            Request::Clunk { .. } => Op::Clunk,
            Request::Create { .. } => Op::Create,
            Request::Mkdir { .. } => Op::Mkdir,
            Request::Symlink { .. } => Op::Symlink,
            Request::Link { .. } => Op::Link,
            Request::Mknod { .. } => Op::Mknod,
            Request::Unlink { .. } => Op::Unlink,
            Request::Rename { .. } => Op::Rename,
            Request::SetAttr { .. } => Op::SetAttr,
            Request::Fsync { .. } => Op::Fsync,
            Request::Connect { .. } => Op::Connect,
            Request::GetXattr { .. } => Op::GetXattr,
            Request::SetXattr { .. } => Op::SetXattr,
            Request::ListXattr { .. } => Op::ListXattr,
            Request::RemoveXattr { .. } => Op::RemoveXattr,
        }
    }
}

/// A successful response payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Attach {
        fid: Fid,
        stat: Stat,
    },
    Walk {
        fid: Fid,
        stat: Stat,
    },
    Stat(Stat),
    /// The fd itself travels out of band (`SCM_RIGHTS`).
    Open,
    Readdir {
        entries: Vec<DirEntry>,
        next_cookie: u64,
        end: bool,
    },
    Readlink(Vec<u8>),
    Statfs(Statfs),
    Clunk,
    /// The fd itself travels out of band (`SCM_RIGHTS`).
    Create {
        fid: Fid,
        stat: Stat,
    },
    Mkdir {
        fid: Fid,
        stat: Stat,
    },
    Symlink {
        fid: Fid,
        stat: Stat,
    },
    /// The target's attributes after linking.
    Link(Stat),
    Mknod {
        fid: Fid,
        stat: Stat,
    },
    Unlink,
    Rename,
    /// The attributes after the change.
    SetAttr(Stat),
    Fsync,
    Connect,
    GetXattr(Vec<u8>),
    SetXattr,
    /// The names, each NUL-terminated (as listxattr(2) gives them).
    ListXattr(Vec<u8>),
    RemoveXattr,
}

impl Reply {
    pub fn op(&self) -> Op {
        match self {
            Reply::Attach { .. } => Op::Attach,
            Reply::Walk { .. } => Op::Walk,
            Reply::Stat(_) => Op::Stat,
            Reply::Open => Op::Open,
            Reply::Readdir { .. } => Op::Readdir,
            Reply::Readlink(_) => Op::Readlink,
            Reply::Statfs(_) => Op::Statfs,
            Reply::Clunk => Op::Clunk,
            Reply::Create { .. } => Op::Create,
            Reply::Mkdir { .. } => Op::Mkdir,
            Reply::Symlink { .. } => Op::Symlink,
            Reply::Link(_) => Op::Link,
            Reply::Mknod { .. } => Op::Mknod,
            Reply::Unlink => Op::Unlink,
            Reply::Rename => Op::Rename,
            Reply::SetAttr(_) => Op::SetAttr,
            Reply::Fsync => Op::Fsync,
            Reply::Connect => Op::Connect,
            Reply::GetXattr(_) => Op::GetXattr,
            Reply::SetXattr => Op::SetXattr,
            Reply::ListXattr(_) => Op::ListXattr,
            Reply::RemoveXattr => Op::RemoveXattr,
        }
    }
}

/// Why a message could not be decoded or encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    #[error("message truncated")]
    Truncated,
    #[error("message larger than {MAX_MESSAGE} bytes")]
    TooLarge,
    #[error("bad magic {0:#06x}")]
    BadMagic(u16),
    #[error("unsupported protocol version {0}")]
    BadVersion(u8),
    #[error("unknown op {0}")]
    UnknownOp(u8),
    #[error("payload_len {declared} does not match the {actual} payload bytes received")]
    LengthMismatch { declared: u32, actual: usize },
    #[error("{0} trailing bytes after the payload")]
    TrailingBytes(usize),
    /// An invalid file name, symlink target or xattr name, with the
    /// errno the server answers.
    #[error("invalid name: {0}")]
    BadName(Errno),
    #[error("invalid status {0}")]
    BadStatus(i32),
    #[error("invalid field value")]
    BadValue,
}

impl ProtoError {
    /// The errno a server answers with for this decoding failure.
    pub fn errno(&self) -> Errno {
        match self {
            ProtoError::UnknownOp(_) => Errno::ENOSYS,
            ProtoError::BadName(e) => *e,
            _ => Errno::EINVAL,
        }
    }
}

/// Checks that `name` is a single, ordinary directory entry name.
///
/// Returns `EINVAL` for `""`, `"."`, `".."` and names containing `/` or
/// NUL, and `ENAMETOOLONG` for names over [`MAX_NAME`] bytes.
pub fn validate_name(name: &[u8]) -> Result<(), Errno> {
    if name.is_empty() || name == b"." || name == b".." {
        return Err(Errno::EINVAL);
    }
    if name.len() > MAX_NAME {
        return Err(Errno::ENAMETOOLONG);
    }
    if name.iter().any(|&b| b == b'/' || b == 0) {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// Checks a symlink target: `ENOENT` if empty, `ENAMETOOLONG` over
/// [`MAX_SYMLINK_TARGET`] bytes, `EINVAL` with a NUL.
pub fn validate_symlink_target(target: &[u8]) -> Result<(), Errno> {
    if target.is_empty() {
        return Err(Errno::ENOENT);
    }
    if target.len() > MAX_SYMLINK_TARGET {
        return Err(Errno::ENAMETOOLONG);
    }
    if target.contains(&0) {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// Checks an extended attribute name: `ERANGE` if empty or over
/// [`MAX_XATTR_NAME`] bytes (as Linux), `EINVAL` with a NUL.
pub fn validate_xattr_name(name: &[u8]) -> Result<(), Errno> {
    if name.is_empty() || name.len() > MAX_XATTR_NAME {
        return Err(Errno::ERANGE);
    }
    if name.contains(&0) {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// The fixed header shared by requests and responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub magic: u16,
    pub version: u8,
    pub op: u8,
    pub tag: u32,
    pub payload_len: u32,
}

impl Header {
    fn decode(buf: &[u8]) -> Result<Header, ProtoError> {
        let mut r = Reader::new(buf);
        Ok(Header {
            magic: r.u16()?,
            version: r.u8()?,
            op: r.u8()?,
            tag: r.u32()?,
            payload_len: r.u32()?,
        })
    }

    /// Checks magic and version.
    fn check(&self) -> Result<(), ProtoError> {
        if self.magic != MAGIC {
            return Err(ProtoError::BadMagic(self.magic));
        }
        if self.version != VERSION {
            return Err(ProtoError::BadVersion(self.version));
        }
        Ok(())
    }
}

/// Best-effort `(tag, op)` of a possibly malformed message, used to
/// address an error reply. Missing bytes read as 0.
pub fn peek_tag_op(buf: &[u8]) -> (u32, u8) {
    let op = buf.get(3).copied().unwrap_or(0);
    let tag = match buf.get(4..8) {
        Some(b) => u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        None => 0,
    };
    (tag, op)
}

/// Bounds-checked little-endian reader. Never panics.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], ProtoError> {
        if self.buf.len() < n {
            return Err(ProtoError::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ProtoError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, ProtoError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, ProtoError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, ProtoError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, ProtoError> {
        Ok(i32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, ProtoError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, ProtoError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    fn name(&mut self) -> Result<Vec<u8>, ProtoError> {
        let len = self.u16()? as usize;
        let name = self.bytes(len)?;
        validate_name(name).map_err(ProtoError::BadName)?;
        Ok(name.to_vec())
    }

    fn symlink_target(&mut self) -> Result<Vec<u8>, ProtoError> {
        let len = self.u16()? as usize;
        let target = self.bytes(len)?;
        validate_symlink_target(target).map_err(ProtoError::BadName)?;
        Ok(target.to_vec())
    }

    fn xattr_name(&mut self) -> Result<Vec<u8>, ProtoError> {
        let len = self.u16()? as usize;
        let name = self.bytes(len)?;
        validate_xattr_name(name).map_err(ProtoError::BadName)?;
        Ok(name.to_vec())
    }

    /// A u32 length followed by that many bytes.
    fn blob(&mut self) -> Result<Vec<u8>, ProtoError> {
        let len = self.u32()? as usize;
        Ok(self.bytes(len)?.to_vec())
    }

    fn setattr(&mut self) -> Result<SetAttr, ProtoError> {
        let a = SetAttr {
            mask: self.u32()?,
            mode: self.u32()?,
            uid: self.u32()?,
            gid: self.u32()?,
            size: self.u64()?,
            atime_sec: self.i64()?,
            atime_nsec: self.i64()?,
            mtime_sec: self.i64()?,
            mtime_nsec: self.i64()?,
        };
        if a.mask & !SETATTR_ALL != 0 {
            return Err(ProtoError::BadValue);
        }
        Ok(a)
    }

    fn stat(&mut self) -> Result<Stat, ProtoError> {
        Ok(Stat {
            st_dev: self.u64()?,
            st_ino: self.u64()?,
            st_mode: self.u32()?,
            st_nlink: self.u64()?,
            st_uid: self.u32()?,
            st_gid: self.u32()?,
            st_rdev: self.u64()?,
            st_size: self.i64()?,
            st_blksize: self.i64()?,
            st_blocks: self.i64()?,
            st_atime: self.i64()?,
            st_atime_nsec: self.i64()?,
            st_mtime: self.i64()?,
            st_mtime_nsec: self.i64()?,
            st_ctime: self.i64()?,
            st_ctime_nsec: self.i64()?,
        })
    }

    fn statfs(&mut self) -> Result<Statfs, ProtoError> {
        Ok(Statfs {
            f_type: self.u64()?,
            f_bsize: self.u64()?,
            f_blocks: self.u64()?,
            f_bfree: self.u64()?,
            f_bavail: self.u64()?,
            f_files: self.u64()?,
            f_ffree: self.u64()?,
            f_namelen: self.u64()?,
        })
    }

    fn finish(&self) -> Result<(), ProtoError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(ProtoError::TrailingBytes(self.buf.len()))
        }
    }
}

/// Little-endian writer into a growable buffer.
struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn name(&mut self, name: &[u8]) -> Result<(), ProtoError> {
        validate_name(name).map_err(ProtoError::BadName)?;
        // validate_name bounds the length to MAX_NAME, which fits in u16.
        self.u16(name.len() as u16);
        self.buf.extend_from_slice(name);
        Ok(())
    }

    fn stat(&mut self, s: &Stat) {
        self.u64(s.st_dev);
        self.u64(s.st_ino);
        self.u32(s.st_mode);
        self.u64(s.st_nlink);
        self.u32(s.st_uid);
        self.u32(s.st_gid);
        self.u64(s.st_rdev);
        self.i64(s.st_size);
        self.i64(s.st_blksize);
        self.i64(s.st_blocks);
        self.i64(s.st_atime);
        self.i64(s.st_atime_nsec);
        self.i64(s.st_mtime);
        self.i64(s.st_mtime_nsec);
        self.i64(s.st_ctime);
        self.i64(s.st_ctime_nsec);
    }

    fn symlink_target(&mut self, target: &[u8]) -> Result<(), ProtoError> {
        validate_symlink_target(target).map_err(ProtoError::BadName)?;
        // Bounded by MAX_SYMLINK_TARGET, which fits in u16.
        self.u16(target.len() as u16);
        self.buf.extend_from_slice(target);
        Ok(())
    }

    fn xattr_name(&mut self, name: &[u8]) -> Result<(), ProtoError> {
        validate_xattr_name(name).map_err(ProtoError::BadName)?;
        // Bounded by MAX_XATTR_NAME, which fits in u16.
        self.u16(name.len() as u16);
        self.buf.extend_from_slice(name);
        Ok(())
    }

    fn blob(&mut self, b: &[u8]) -> Result<(), ProtoError> {
        let len = u32::try_from(b.len()).map_err(|_| ProtoError::TooLarge)?;
        if b.len() > MAX_MESSAGE {
            return Err(ProtoError::TooLarge);
        }
        self.u32(len);
        self.buf.extend_from_slice(b);
        Ok(())
    }

    fn setattr(&mut self, a: &SetAttr) -> Result<(), ProtoError> {
        if a.mask & !SETATTR_ALL != 0 {
            return Err(ProtoError::BadValue);
        }
        self.u32(a.mask);
        self.u32(a.mode);
        self.u32(a.uid);
        self.u32(a.gid);
        self.u64(a.size);
        self.i64(a.atime_sec);
        self.i64(a.atime_nsec);
        self.i64(a.mtime_sec);
        self.i64(a.mtime_nsec);
        Ok(())
    }

    fn statfs(&mut self, s: &Statfs) {
        for v in [
            s.f_type,
            s.f_bsize,
            s.f_blocks,
            s.f_bfree,
            s.f_bavail,
            s.f_files,
            s.f_ffree,
            s.f_namelen,
        ] {
            self.u64(v);
        }
    }

    /// Patches `payload_len` (bytes after `header_len`) and checks the size.
    fn finish(mut self, header_len: usize) -> Result<Vec<u8>, ProtoError> {
        if self.buf.len() > MAX_MESSAGE {
            return Err(ProtoError::TooLarge);
        }
        let payload_len = (self.buf.len() - header_len) as u32;
        self.buf[8..12].copy_from_slice(&payload_len.to_le_bytes());
        Ok(self.buf)
    }
}

fn start(op: u8, tag: u32, capacity: usize) -> Writer {
    let mut w = Writer {
        buf: Vec::with_capacity(capacity),
    };
    w.u16(MAGIC);
    w.u8(VERSION);
    w.u8(op);
    w.u32(tag);
    w.u32(0); // payload_len, patched by finish()
    w
}

/// Encodes a request with the given tag.
pub fn encode_request(tag: u32, req: &Request) -> Result<Vec<u8>, ProtoError> {
    let mut w = start(req.op() as u8, tag, HEADER_LEN + 16 + MAX_NAME);
    match req {
        Request::Attach => {}
        Request::Walk { dir, name } => {
            w.u64(*dir);
            w.name(name)?;
        }
        Request::Open { fid, flags } => {
            w.u64(*fid);
            w.i32(*flags);
        }
        Request::Connect { fid, sock_type } => {
            w.u64(*fid);
            w.i32(*sock_type);
        }
        Request::Readdir { fid, cookie } => {
            w.u64(*fid);
            w.u64(*cookie);
        }
        Request::Stat { fid }
        | Request::Readlink { fid }
        | Request::Statfs { fid }
        | Request::Clunk { fid }
        | Request::Fsync { fid }
        | Request::ListXattr { fid } => w.u64(*fid),
        Request::Create {
            dir,
            name,
            flags,
            mode,
            uid,
            gid,
        } => {
            w.u64(*dir);
            w.name(name)?;
            w.i32(*flags);
            w.u32(*mode);
            w.u32(*uid);
            w.u32(*gid);
        }
        Request::Mkdir {
            dir,
            name,
            mode,
            uid,
            gid,
        } => {
            w.u64(*dir);
            w.name(name)?;
            w.u32(*mode);
            w.u32(*uid);
            w.u32(*gid);
        }
        Request::Symlink {
            dir,
            name,
            target,
            uid,
            gid,
        } => {
            w.u64(*dir);
            w.name(name)?;
            w.symlink_target(target)?;
            w.u32(*uid);
            w.u32(*gid);
        }
        Request::Link { dir, name, target } => {
            w.u64(*dir);
            w.name(name)?;
            w.u64(*target);
        }
        Request::Mknod {
            dir,
            name,
            mode,
            rdev,
            uid,
            gid,
        } => {
            w.u64(*dir);
            w.name(name)?;
            w.u32(*mode);
            w.u64(*rdev);
            w.u32(*uid);
            w.u32(*gid);
        }
        Request::Unlink { dir, name, flags } => {
            w.u64(*dir);
            w.name(name)?;
            w.u32(*flags);
        }
        Request::Rename {
            old_dir,
            old_name,
            new_dir,
            new_name,
            flags,
        } => {
            w.u64(*old_dir);
            w.name(old_name)?;
            w.u64(*new_dir);
            w.name(new_name)?;
            w.u32(*flags);
        }
        Request::SetAttr { fid, attr } => {
            w.u64(*fid);
            w.setattr(attr)?;
        }
        Request::GetXattr { fid, name } | Request::RemoveXattr { fid, name } => {
            w.u64(*fid);
            w.xattr_name(name)?;
        }
        Request::SetXattr {
            fid,
            name,
            value,
            flags,
        } => {
            w.u64(*fid);
            w.xattr_name(name)?;
            w.u32(*flags);
            w.blob(value)?;
        }
    }
    w.finish(HEADER_LEN)
}

/// Splits a message into its checked header and exact payload.
fn split(buf: &[u8], header_len: usize) -> Result<(Header, &[u8]), ProtoError> {
    if buf.len() > MAX_MESSAGE {
        return Err(ProtoError::TooLarge);
    }
    let hdr = Header::decode(buf)?;
    hdr.check()?;
    let rest = buf.get(header_len..).ok_or(ProtoError::Truncated)?;
    if rest.len() != hdr.payload_len as usize {
        return Err(ProtoError::LengthMismatch {
            declared: hdr.payload_len,
            actual: rest.len(),
        });
    }
    Ok((hdr, rest))
}

/// Decodes one request message. Returns the header too, so the caller
/// can address its reply.
pub fn decode_request(buf: &[u8]) -> Result<(Header, Request), ProtoError> {
    let (hdr, payload) = split(buf, HEADER_LEN)?;
    let op = Op::from_u8(hdr.op).ok_or(ProtoError::UnknownOp(hdr.op))?;
    let mut r = Reader::new(payload);
    let req = match op {
        Op::Attach => Request::Attach,
        Op::Walk => {
            let dir = r.u64()?;
            let name = r.name()?;
            Request::Walk { dir, name }
        }
        Op::Stat => Request::Stat { fid: r.u64()? },
        Op::Open => {
            let fid = r.u64()?;
            let flags = r.i32()?;
            Request::Open { fid, flags }
        }
        Op::Readdir => {
            let fid = r.u64()?;
            let cookie = r.u64()?;
            Request::Readdir { fid, cookie }
        }
        Op::Readlink => Request::Readlink { fid: r.u64()? },
        Op::Statfs => Request::Statfs { fid: r.u64()? },
        Op::Clunk => Request::Clunk { fid: r.u64()? },
        Op::Create => Request::Create {
            dir: r.u64()?,
            name: r.name()?,
            flags: r.i32()?,
            mode: r.u32()?,
            uid: r.u32()?,
            gid: r.u32()?,
        },
        Op::Mkdir => Request::Mkdir {
            dir: r.u64()?,
            name: r.name()?,
            mode: r.u32()?,
            uid: r.u32()?,
            gid: r.u32()?,
        },
        Op::Symlink => Request::Symlink {
            dir: r.u64()?,
            name: r.name()?,
            target: r.symlink_target()?,
            uid: r.u32()?,
            gid: r.u32()?,
        },
        Op::Link => Request::Link {
            dir: r.u64()?,
            name: r.name()?,
            target: r.u64()?,
        },
        Op::Mknod => Request::Mknod {
            dir: r.u64()?,
            name: r.name()?,
            mode: r.u32()?,
            rdev: r.u64()?,
            uid: r.u32()?,
            gid: r.u32()?,
        },
        Op::Unlink => Request::Unlink {
            dir: r.u64()?,
            name: r.name()?,
            flags: r.u32()?,
        },
        Op::Rename => Request::Rename {
            old_dir: r.u64()?,
            old_name: r.name()?,
            new_dir: r.u64()?,
            new_name: r.name()?,
            flags: r.u32()?,
        },
        Op::SetAttr => Request::SetAttr {
            fid: r.u64()?,
            attr: r.setattr()?,
        },
        Op::Fsync => Request::Fsync { fid: r.u64()? },
        Op::Connect => Request::Connect {
            fid: r.u64()?,
            sock_type: r.i32()?,
        },
        Op::GetXattr => Request::GetXattr {
            fid: r.u64()?,
            name: r.xattr_name()?,
        },
        Op::SetXattr => Request::SetXattr {
            fid: r.u64()?,
            name: r.xattr_name()?,
            flags: r.u32()?,
            value: r.blob()?,
        },
        Op::ListXattr => Request::ListXattr { fid: r.u64()? },
        Op::RemoveXattr => Request::RemoveXattr {
            fid: r.u64()?,
            name: r.xattr_name()?,
        },
    };
    r.finish()?;
    Ok((hdr, req))
}

/// Encodes a response. `op` is echoed from the request (it may be an op
/// this server does not know). On `Ok`, the reply's own op must equal `op`.
pub fn encode_response(
    tag: u32,
    op: u8,
    result: Result<&Reply, Errno>,
) -> Result<Vec<u8>, ProtoError> {
    let reply = match result {
        Ok(reply) => reply,
        Err(e) => {
            let mut w = start(op, tag, RESPONSE_HEADER_LEN);
            let errno = e as i32;
            w.i32(if errno > 0 { errno } else { Errno::EIO as i32 });
            return w.finish(RESPONSE_HEADER_LEN);
        }
    };
    if reply.op() as u8 != op {
        return Err(ProtoError::BadValue);
    }
    let mut w = start(op, tag, RESPONSE_HEADER_LEN + STAT_LEN + 8);
    w.i32(0);
    match reply {
        Reply::Attach { fid, stat }
        | Reply::Walk { fid, stat }
        | Reply::Create { fid, stat }
        | Reply::Mkdir { fid, stat }
        | Reply::Symlink { fid, stat }
        | Reply::Mknod { fid, stat } => {
            w.u64(*fid);
            w.stat(stat);
        }
        Reply::Stat(stat) | Reply::Link(stat) | Reply::SetAttr(stat) => w.stat(stat),
        Reply::Open
        | Reply::Clunk
        | Reply::Unlink
        | Reply::Rename
        | Reply::Fsync
        | Reply::Connect
        | Reply::SetXattr
        | Reply::RemoveXattr => {}
        Reply::GetXattr(b) | Reply::ListXattr(b) => w.blob(b)?,
        Reply::Readdir {
            entries,
            next_cookie,
            end,
        } => {
            w.u64(*next_cookie);
            w.u8(u8::from(*end));
            let count = u32::try_from(entries.len()).map_err(|_| ProtoError::TooLarge)?;
            w.u32(count);
            for e in entries {
                w.u64(e.ino);
                w.u8(e.d_type);
                w.name(&e.name)?;
            }
        }
        Reply::Readlink(target) => {
            let len = u32::try_from(target.len()).map_err(|_| ProtoError::TooLarge)?;
            w.u32(len);
            w.buf.extend_from_slice(target);
        }
        Reply::Statfs(s) => w.statfs(s),
    }
    w.finish(RESPONSE_HEADER_LEN)
}

/// A decoded response: its header fields and either the reply or the errno.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub tag: u32,
    pub op: u8,
    pub result: Result<Reply, Errno>,
}

/// Decodes one response message.
pub fn decode_response(buf: &[u8]) -> Result<Response, ProtoError> {
    let (hdr, payload) = split(buf, RESPONSE_HEADER_LEN)?;
    let status = Reader::new(buf.get(HEADER_LEN..).ok_or(ProtoError::Truncated)?).i32()?;
    if status != 0 {
        if !(1..4096).contains(&status) {
            return Err(ProtoError::BadStatus(status));
        }
        if !payload.is_empty() {
            return Err(ProtoError::TrailingBytes(payload.len()));
        }
        return Ok(Response {
            tag: hdr.tag,
            op: hdr.op,
            result: Err(Errno::from_raw(status)),
        });
    }
    let op = Op::from_u8(hdr.op).ok_or(ProtoError::UnknownOp(hdr.op))?;
    let mut r = Reader::new(payload);
    let reply = match op {
        Op::Attach => {
            let fid = r.u64()?;
            let stat = r.stat()?;
            Reply::Attach { fid, stat }
        }
        Op::Walk => {
            let fid = r.u64()?;
            let stat = r.stat()?;
            Reply::Walk { fid, stat }
        }
        Op::Stat => Reply::Stat(r.stat()?),
        Op::Open => Reply::Open,
        Op::Readdir => {
            let next_cookie = r.u64()?;
            let end = match r.u8()? {
                0 => false,
                1 => true,
                _ => return Err(ProtoError::BadValue),
            };
            let count = r.u32()? as usize;
            // Each entry takes at least dirent_len(1) bytes: bound the
            // allocation by what the payload can actually hold.
            if count > payload.len() / dirent_len(1) {
                return Err(ProtoError::Truncated);
            }
            let mut entries = Vec::with_capacity(count);
            for _ in 0..count {
                let ino = r.u64()?;
                let d_type = r.u8()?;
                let name = r.name()?;
                entries.push(DirEntry { ino, d_type, name });
            }
            Reply::Readdir {
                entries,
                next_cookie,
                end,
            }
        }
        Op::Readlink => {
            let len = r.u32()? as usize;
            Reply::Readlink(r.bytes(len)?.to_vec())
        }
        Op::Statfs => Reply::Statfs(r.statfs()?),
        Op::Clunk => Reply::Clunk,
        Op::Create => Reply::Create {
            fid: r.u64()?,
            stat: r.stat()?,
        },
        Op::Mkdir => Reply::Mkdir {
            fid: r.u64()?,
            stat: r.stat()?,
        },
        Op::Symlink => Reply::Symlink {
            fid: r.u64()?,
            stat: r.stat()?,
        },
        Op::Link => Reply::Link(r.stat()?),
        Op::Mknod => Reply::Mknod {
            fid: r.u64()?,
            stat: r.stat()?,
        },
        Op::Unlink => Reply::Unlink,
        Op::Rename => Reply::Rename,
        Op::SetAttr => Reply::SetAttr(r.stat()?),
        Op::Fsync => Reply::Fsync,
        Op::Connect => Reply::Connect,
        Op::GetXattr => Reply::GetXattr(r.blob()?),
        Op::SetXattr => Reply::SetXattr,
        Op::ListXattr => Reply::ListXattr(r.blob()?),
        Op::RemoveXattr => Reply::RemoveXattr,
    };
    r.finish()?;
    Ok(Response {
        tag: hdr.tag,
        op: hdr.op,
        result: Ok(reply),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_stat(seed: i64) -> Stat {
        Stat {
            st_dev: 0x0102_0304_0506_0708,
            st_ino: u64::MAX - seed as u64,
            st_mode: libc::S_IFREG | 0o644,
            st_nlink: 3,
            st_uid: 1000,
            st_gid: u32::MAX,
            st_rdev: 7,
            st_size: -seed,
            st_blksize: 4096,
            st_blocks: 8,
            st_atime: 1,
            st_atime_nsec: 2,
            st_mtime: 3,
            st_mtime_nsec: 999_999_999,
            st_ctime: i64::MIN,
            st_ctime_nsec: i64::MAX,
        }
    }

    fn all_requests() -> Vec<Request> {
        vec![
            Request::Attach,
            Request::Walk {
                dir: 42,
                name: b"caf\xe9 \xff name".to_vec(),
            },
            Request::Walk {
                dir: u64::MAX,
                name: vec![b'x'; MAX_NAME],
            },
            Request::Stat { fid: 1 },
            Request::Open {
                fid: 2,
                flags: libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            },
            Request::Open { fid: 2, flags: -1 },
            Request::Readdir {
                fid: 3,
                cookie: u64::MAX,
            },
            Request::Readlink { fid: 4 },
            Request::Statfs { fid: 5 },
            Request::Clunk { fid: 6 },
            Request::Create {
                dir: 7,
                name: b"new".to_vec(),
                flags: libc::O_RDWR | libc::O_NONBLOCK,
                mode: 0o4755,
                uid: u32::MAX,
                gid: 0,
            },
            Request::Mkdir {
                dir: 8,
                name: b"d".to_vec(),
                mode: 0o2775,
                uid: 1,
                gid: 2,
            },
            Request::Symlink {
                dir: 9,
                name: b"l".to_vec(),
                target: vec![b'/'; MAX_SYMLINK_TARGET],
                uid: 3,
                gid: 4,
            },
            Request::Link {
                dir: 10,
                name: b"hard".to_vec(),
                target: u64::MAX,
            },
            Request::Mknod {
                dir: 11,
                name: b"fifo".to_vec(),
                mode: libc::S_IFIFO | 0o600,
                rdev: u64::MAX,
                uid: 5,
                gid: 6,
            },
            Request::Unlink {
                dir: 12,
                name: b"gone".to_vec(),
                flags: libc::AT_REMOVEDIR as u32,
            },
            Request::Rename {
                old_dir: 13,
                old_name: b"a".to_vec(),
                new_dir: 14,
                new_name: b"\xff".to_vec(),
                flags: libc::RENAME_EXCHANGE,
            },
            Request::SetAttr {
                fid: 15,
                attr: SetAttr {
                    mask: SETATTR_ALL,
                    mode: 0o7777,
                    uid: 7,
                    gid: 8,
                    size: u64::MAX,
                    atime_sec: -1,
                    atime_nsec: libc::UTIME_NOW,
                    mtime_sec: i64::MAX,
                    mtime_nsec: libc::UTIME_OMIT,
                },
            },
            Request::SetAttr {
                fid: 15,
                attr: SetAttr::default(),
            },
            Request::Fsync { fid: 16 },
            Request::GetXattr {
                fid: 17,
                name: b"user.x".to_vec(),
            },
            Request::SetXattr {
                fid: 18,
                name: vec![b'n'; MAX_XATTR_NAME],
                value: vec![7; MAX_XATTR_VALUE],
                flags: libc::XATTR_CREATE as u32,
            },
            Request::SetXattr {
                fid: 18,
                name: b"user.empty".to_vec(),
                value: Vec::new(),
                flags: 0,
            },
            Request::ListXattr { fid: 19 },
            Request::RemoveXattr {
                fid: 20,
                name: b"user.x".to_vec(),
            },
        ]
    }

    fn all_replies() -> Vec<Reply> {
        vec![
            Reply::Attach {
                fid: 1,
                stat: sample_stat(1),
            },
            Reply::Walk {
                fid: 99,
                stat: sample_stat(2),
            },
            Reply::Stat(sample_stat(3)),
            Reply::Open,
            Reply::Readdir {
                entries: vec![],
                next_cookie: 0,
                end: true,
            },
            Reply::Readdir {
                entries: vec![
                    DirEntry {
                        ino: 1,
                        d_type: libc::DT_DIR,
                        name: b"sub".to_vec(),
                    },
                    DirEntry {
                        ino: u64::MAX,
                        d_type: libc::DT_LNK,
                        name: b"\x80\x81".to_vec(),
                    },
                ],
                next_cookie: 0x7fff_ffff_ffff_ffff,
                end: false,
            },
            Reply::Readlink(b"../../etc".to_vec()),
            Reply::Readlink(Vec::new()),
            Reply::Statfs(Statfs {
                f_type: 0xef53,
                f_bsize: 4096,
                f_blocks: 1,
                f_bfree: 2,
                f_bavail: 3,
                f_files: 4,
                f_ffree: 5,
                f_namelen: 255,
            }),
            Reply::Clunk,
            Reply::Create {
                fid: 5,
                stat: sample_stat(4),
            },
            Reply::Mkdir {
                fid: 6,
                stat: sample_stat(5),
            },
            Reply::Symlink {
                fid: 7,
                stat: sample_stat(6),
            },
            Reply::Link(sample_stat(7)),
            Reply::Mknod {
                fid: 8,
                stat: sample_stat(8),
            },
            Reply::Unlink,
            Reply::Rename,
            Reply::SetAttr(sample_stat(9)),
            Reply::Fsync,
            Reply::GetXattr(b"value\0with nul".to_vec()),
            Reply::GetXattr(Vec::new()),
            Reply::SetXattr,
            Reply::ListXattr(b"user.a\0user.b\0".to_vec()),
            Reply::RemoveXattr,
        ]
    }

    #[test]
    fn request_round_trip() {
        for (i, req) in all_requests().into_iter().enumerate() {
            let tag = 0xdead_0000 + i as u32;
            let bytes = encode_request(tag, &req).expect("encode");
            assert_eq!(&bytes[0..2], &[0x67, 0x6f], "magic is \"go\"");
            assert_eq!(bytes[2], VERSION);
            assert_eq!(bytes[3], req.op() as u8);
            let (hdr, back) = decode_request(&bytes).expect("decode");
            assert_eq!(hdr.tag, tag);
            assert_eq!(hdr.payload_len as usize, bytes.len() - HEADER_LEN);
            assert_eq!(back, req);
        }
    }

    #[test]
    fn response_round_trip() {
        for (i, reply) in all_replies().into_iter().enumerate() {
            let tag = i as u32;
            let op = reply.op() as u8;
            let bytes = encode_response(tag, op, Ok(&reply)).expect("encode");
            let resp = decode_response(&bytes).expect("decode");
            assert_eq!(resp.tag, tag);
            assert_eq!(resp.op, op);
            assert_eq!(resp.result, Ok(reply));
        }
        for errno in [Errno::ENOENT, Errno::EROFS, Errno::ELOOP, Errno::EBADF] {
            let bytes = encode_response(7, 200, Err(errno)).expect("encode");
            assert_eq!(bytes.len(), RESPONSE_HEADER_LEN);
            let resp = decode_response(&bytes).expect("decode");
            assert_eq!((resp.tag, resp.op, resp.result), (7, 200, Err(errno)));
        }
    }

    #[test]
    fn reply_op_must_match() {
        assert_eq!(
            encode_response(1, Op::Stat as u8, Ok(&Reply::Clunk)),
            Err(ProtoError::BadValue)
        );
    }

    #[test]
    fn every_truncation_and_extension_is_rejected() {
        for req in all_requests() {
            let bytes = encode_request(9, &req).expect("encode");
            for n in 0..bytes.len() {
                assert!(decode_request(&bytes[..n]).is_err(), "{req:?} cut at {n}");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(decode_request(&longer).is_err());
            // Consistent payload_len but extra payload byte: trailing bytes.
            let len = (longer.len() - HEADER_LEN) as u32;
            longer[8..12].copy_from_slice(&len.to_le_bytes());
            assert_eq!(
                decode_request(&longer).map(|_| ()).unwrap_err().errno(),
                Errno::EINVAL
            );
        }
        for reply in all_replies() {
            let bytes = encode_response(9, reply.op() as u8, Ok(&reply)).expect("encode");
            for n in 0..bytes.len() {
                assert!(
                    decode_response(&bytes[..n]).is_err(),
                    "{reply:?} cut at {n}"
                );
            }
        }
    }

    #[test]
    fn bad_headers() {
        let good = encode_request(5, &Request::Stat { fid: 1 }).expect("encode");
        let mut b = good.clone();
        b[0] = 0;
        assert!(matches!(decode_request(&b), Err(ProtoError::BadMagic(_))));
        let mut b = good.clone();
        b[2] = 2;
        assert_eq!(decode_request(&b), Err(ProtoError::BadVersion(2)));
        let mut b = good.clone();
        b[3] = 0;
        let err = decode_request(&b).unwrap_err();
        assert_eq!(err, ProtoError::UnknownOp(0));
        assert_eq!(err.errno(), Errno::ENOSYS);
        let mut b = good.clone();
        b[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode_request(&b),
            Err(ProtoError::LengthMismatch { .. })
        ));
        let mut big = good.clone();
        big.resize(MAX_MESSAGE + 1, 0);
        assert_eq!(decode_request(&big), Err(ProtoError::TooLarge));
        assert_eq!(peek_tag_op(&good), (5, Op::Stat as u8));
        assert_eq!(peek_tag_op(&good[..5]), (0, Op::Stat as u8));
        assert_eq!(peek_tag_op(&[]), (0, 0));
    }

    fn raw_walk(name: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&MAGIC.to_le_bytes());
        b.push(VERSION);
        b.push(Op::Walk as u8);
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&((8 + 2 + name.len()) as u32).to_le_bytes());
        b.extend_from_slice(&1u64.to_le_bytes());
        b.extend_from_slice(&(name.len() as u16).to_le_bytes());
        b.extend_from_slice(name);
        b
    }

    #[test]
    fn names() {
        for bad in [&b""[..], b".", b"..", b"a/b", b"/", b"a\0b"] {
            assert_eq!(validate_name(bad), Err(Errno::EINVAL), "{bad:?}");
            assert_eq!(
                decode_request(&raw_walk(bad)),
                Err(ProtoError::BadName(Errno::EINVAL))
            );
            assert!(encode_request(
                0,
                &Request::Walk {
                    dir: 1,
                    name: bad.to_vec()
                }
            )
            .is_err());
        }
        let long = vec![b'a'; MAX_NAME + 1];
        assert_eq!(validate_name(&long), Err(Errno::ENAMETOOLONG));
        assert_eq!(
            decode_request(&raw_walk(&long)).unwrap_err().errno(),
            Errno::ENAMETOOLONG
        );
        for good in [&b"..."[..], b".a", b"a..", b"\xff\xfe", b" "] {
            assert_eq!(validate_name(good), Ok(()));
            assert!(decode_request(&raw_walk(good)).is_ok());
        }
    }

    #[test]
    fn bad_responses() {
        let ok = encode_response(1, Op::Clunk as u8, Ok(&Reply::Clunk)).expect("encode");
        let mut b = ok.clone();
        b[12..16].copy_from_slice(&(-5i32).to_le_bytes());
        assert_eq!(decode_response(&b), Err(ProtoError::BadStatus(-5)));
        let mut b = ok.clone();
        b[12..16].copy_from_slice(&100_000i32.to_le_bytes());
        assert!(decode_response(&b).is_err());
        // Error status with a payload.
        let mut b = ok.clone();
        b[12..16].copy_from_slice(&2i32.to_le_bytes());
        b.push(0);
        b[8..12].copy_from_slice(&1u32.to_le_bytes());
        assert!(decode_response(&b).is_err());
        // Readdir claiming more entries than fit.
        let rd = Reply::Readdir {
            entries: vec![],
            next_cookie: 1,
            end: false,
        };
        let mut b = encode_response(1, Op::Readdir as u8, Ok(&rd)).expect("encode");
        let count_at = RESPONSE_HEADER_LEN + 9;
        b[count_at..count_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_response(&b).is_err());
        // Bad end flag.
        let mut b = encode_response(1, Op::Readdir as u8, Ok(&rd)).expect("encode");
        b[RESPONSE_HEADER_LEN + 8] = 2;
        assert_eq!(decode_response(&b), Err(ProtoError::BadValue));
        // Readlink length beyond the payload.
        let rl = Reply::Readlink(b"abc".to_vec());
        let mut b = encode_response(1, Op::Readlink as u8, Ok(&rl)).expect("encode");
        b[RESPONSE_HEADER_LEN..RESPONSE_HEADER_LEN + 4].copy_from_slice(&4u32.to_le_bytes());
        assert_eq!(decode_response(&b), Err(ProtoError::Truncated));
    }

    #[test]
    fn oversized_readdir_reply_is_refused() {
        let entry = DirEntry {
            ino: 1,
            d_type: 0,
            name: vec![b'n'; MAX_NAME],
        };
        let n = (MAX_MESSAGE - RESPONSE_HEADER_LEN - READDIR_FIXED_LEN) / dirent_len(MAX_NAME);
        let fits = Reply::Readdir {
            entries: vec![entry.clone(); n],
            next_cookie: 0,
            end: false,
        };
        assert!(encode_response(1, Op::Readdir as u8, Ok(&fits)).is_ok());
        let too_big = Reply::Readdir {
            entries: vec![entry; n + 1],
            next_cookie: 0,
            end: false,
        };
        assert_eq!(
            encode_response(1, Op::Readdir as u8, Ok(&too_big)),
            Err(ProtoError::TooLarge)
        );
    }

    #[test]
    fn new_op_field_checks() {
        // Symlink targets.
        assert_eq!(validate_symlink_target(b""), Err(Errno::ENOENT));
        assert_eq!(
            validate_symlink_target(&vec![b'a'; MAX_SYMLINK_TARGET + 1]),
            Err(Errno::ENAMETOOLONG)
        );
        assert_eq!(validate_symlink_target(b"a\0"), Err(Errno::EINVAL));
        assert_eq!(validate_symlink_target(b"../../x/./y"), Ok(()));
        for bad in [&b""[..], b"a\0b"] {
            let req = Request::Symlink {
                dir: 1,
                name: b"l".to_vec(),
                target: bad.to_vec(),
                uid: 0,
                gid: 0,
            };
            assert!(encode_request(1, &req).is_err());
        }
        // Xattr names.
        assert_eq!(validate_xattr_name(b""), Err(Errno::ERANGE));
        assert_eq!(
            validate_xattr_name(&[b'u'; MAX_XATTR_NAME + 1]),
            Err(Errno::ERANGE)
        );
        assert_eq!(validate_xattr_name(b"user.\0"), Err(Errno::EINVAL));
        // Names are checked in every op that carries one.
        let bad_name = Request::Rename {
            old_dir: 1,
            old_name: b"ok".to_vec(),
            new_dir: 1,
            new_name: b"a/b".to_vec(),
            flags: 0,
        };
        assert_eq!(
            encode_request(1, &bad_name),
            Err(ProtoError::BadName(Errno::EINVAL))
        );
        // SetAttr with unknown mask bits is malformed both ways.
        let bad = Request::SetAttr {
            fid: 1,
            attr: SetAttr {
                mask: 1 << 31,
                ..SetAttr::default()
            },
        };
        assert_eq!(encode_request(1, &bad), Err(ProtoError::BadValue));
        let good = Request::SetAttr {
            fid: 1,
            attr: SetAttr::default(),
        };
        let mut b = encode_request(1, &good).expect("encode");
        b[HEADER_LEN + 8 + 3] = 0x80;
        assert_eq!(decode_request(&b), Err(ProtoError::BadValue));
        // An xattr value too big for one message.
        let big = Request::SetXattr {
            fid: 1,
            name: vec![b'n'; MAX_XATTR_NAME],
            value: vec![0; MAX_XATTR_VALUE + 1],
            flags: 0,
        };
        assert_eq!(encode_request(1, &big), Err(ProtoError::TooLarge));
        // A value length beyond the payload.
        let sx = Request::SetXattr {
            fid: 1,
            name: b"user.a".to_vec(),
            value: b"abc".to_vec(),
            flags: 0,
        };
        let mut b = encode_request(1, &sx).expect("encode");
        let at = b.len() - 3 - 4;
        b[at..at + 4].copy_from_slice(&4u32.to_le_bytes());
        assert_eq!(decode_request(&b), Err(ProtoError::Truncated));
        b[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode_request(&b), Err(ProtoError::Truncated));
        // Write ops are flagged; read ops (and fsync) are not.
        assert!(Op::Create.modifies() && Op::SetXattr.modifies() && Op::Rename.modifies());
        assert!(!Op::Walk.modifies() && !Op::Fsync.modifies() && !Op::GetXattr.modifies());
        for v in 9..=22u8 {
            assert_eq!(Op::from_u8(v).map(|o| o as u8), Some(v));
        }
        assert!(!Op::Connect.modifies());
        assert_eq!(Op::from_u8(23), None);
        // Connect round-trips.
        let req = Request::Connect {
            fid: 9,
            sock_type: libc::SOCK_STREAM,
        };
        let enc = encode_request(5, &req).expect("encode");
        assert_eq!(decode_request(&enc).map(|(_, r)| r), Ok(req));
    }

    #[test]
    fn garbage_never_panics() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..20_000 {
            let len = (next() % 200) as usize;
            let mut b: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if i % 2 == 0 && b.len() >= HEADER_LEN {
                b[0..2].copy_from_slice(&MAGIC.to_le_bytes());
                b[2] = VERSION;
                b[3] = (next() % 24) as u8;
                let plen = (b.len() - HEADER_LEN) as u32;
                b[8..12].copy_from_slice(&plen.to_le_bytes());
            }
            let _ = decode_request(&b);
            let _ = decode_response(&b);
        }
    }
}
