//! Sockets: the interface every family implements (`socket`), and the
//! families. AF_UNIX lives entirely in the sentry (`unix`).

pub mod socket;
pub mod unix;

use crate::errno::{Errno, KResult};
use crate::kernel::task::Task;
use crate::vfs::FileOps;
use std::sync::Arc;

/// socket(2) after the flags were split off `ty`.
pub fn new_socket(t: &Task, family: i32, ty: i32, proto: i32) -> KResult<Arc<dyn FileOps>> {
    match family {
        libc::AF_UNIX => unix::new_socket(t, ty, proto),
        libc::AF_INET | libc::AF_INET6 => Err(Errno::EAFNOSUPPORT),
        _ => Err(Errno::EAFNOSUPPORT),
    }
}
