//! The gofer: the only process of the sandbox that opens files of the
//! container's root file system.
//!
//! The sentry serves the guest's system calls but never opens container
//! files itself, so that a compromised sentry cannot reach host files
//! outside the container root. Instead it asks the gofer, over a
//! `SOCK_SEQPACKET` Unix socket pair, to walk the tree and open files;
//! the gofer answers with attributes and donates open host fds with
//! `SCM_RIGHTS`, which the sentry then reads directly.
//!
//! The gofer owns:
//! - the root directory fd and a per-connection table of *fids*, each an
//!   `O_PATH` fd reached from the root one name at a time
//!   ([`server`]);
//! - confinement: names are single components (no `/`, `.` or `..`) and
//!   every open is `O_NOFOLLOW` relative to a fid's fd, so symlinks are
//!   returned as themselves (`S_IFLNK`) for the client to resolve and no
//!   path can escape the root;
//! - the wire protocol ([`protocol`]): a small, versioned, length-checked
//!   little-endian binary format, extensible with new ops.
//!
//! [`client`] is the sentry side: a thread-safe [`Client`] that turns
//! each call into one request/reply exchange. A server is read-only
//! (Open with write access and every op that changes the tree get
//! `EROFS`) or writable: then the client may also create, link, remove
//! and rename entries, change attributes and `user.` extended attributes,
//! all confined to the root in the same way.

pub mod client;
pub mod protocol;
pub mod server;
pub mod transport;

pub use client::{Client, DirPage};
pub use protocol::{DirEntry, Fid, SetAttr, Stat, Statfs};
pub use server::{run, run_with, serve, serve_with, MAX_FIDS};
pub use transport::socketpair;
