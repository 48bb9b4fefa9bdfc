//! Guest-visible error numbers, exactly Linux's, plus the kernel-internal
//! restart codes that never reach the guest.

use std::fmt;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

macro_rules! errnos {
    ($($name:ident),* $(,)?) => {
        impl Errno {
            $(pub const $name: Errno = Errno(libc::$name);)*
        }
    };
}

errnos!(
    EPERM,
    ENOENT,
    ESRCH,
    EINTR,
    EIO,
    ENXIO,
    E2BIG,
    ENOEXEC,
    EBADF,
    ECHILD,
    EAGAIN,
    ENOMEM,
    EACCES,
    EFAULT,
    EBUSY,
    EEXIST,
    EXDEV,
    ENODEV,
    ENOTDIR,
    EISDIR,
    EINVAL,
    ENFILE,
    EMFILE,
    ENOTTY,
    ETXTBSY,
    EFBIG,
    ENOSPC,
    ESPIPE,
    EROFS,
    EMLINK,
    EPIPE,
    EDOM,
    ERANGE,
    EDEADLK,
    ENAMETOOLONG,
    ENOLCK,
    ENOSYS,
    ENOTEMPTY,
    ELOOP,
    ENOMSG,
    ENODATA,
    ETIME,
    EOVERFLOW,
    EOPNOTSUPP,
    ETIMEDOUT,
    ENOTSOCK,
    EAFNOSUPPORT,
    ECONNREFUSED,
    ENOTSUP,
    ECANCELED,
    EBADFD,
    ENOPROTOOPT,
    EISCONN,
    EPROTONOSUPPORT,
    EMSGSIZE,
    ESOCKTNOSUPPORT,
    EADDRINUSE,
    EADDRNOTAVAIL,
    EPROTOTYPE,
    ENOTCONN,
    ECONNRESET,
    ECONNABORTED,
    ENETUNREACH,
    ENETDOWN,
    EHOSTUNREACH,
    EALREADY,
    EINPROGRESS,
    EDESTADDRREQ,
    ENOBUFS,
    EPROTO,
    ETOOMANYREFS,
    EPFNOSUPPORT,
);

impl Errno {
    /// Restart the call after the signal if its handler has SA_RESTART (or
    /// there was no handler).
    pub const ERESTARTSYS: Errno = Errno(512);
    /// Always restart (the call was not yet observable).
    pub const ERESTARTNOINTR: Errno = Errno(513);
    /// Restart unless a handler ran.
    pub const ERESTARTNOHAND: Errno = Errno(514);

    pub fn from_nix(e: nix::errno::Errno) -> Errno {
        Errno(e as i32)
    }

    /// The errno of the last failed libc call on this thread.
    pub fn last() -> Errno {
        Errno(nix::errno::Errno::last_raw())
    }

    pub fn is_restart(self) -> bool {
        matches!(self.0, 512 | 513 | 514 | 516)
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", syscalls_table::format_result(-(self.0 as i64)))
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = syscalls_table::format_result(-(self.0 as i64));
        write!(f, "{}", s.trim_start_matches("-1 "))
    }
}

impl std::error::Error for Errno {}

impl From<nix::errno::Errno> for Errno {
    fn from(e: nix::errno::Errno) -> Errno {
        Errno::from_nix(e)
    }
}

pub type KResult<T> = Result<T, Errno>;
