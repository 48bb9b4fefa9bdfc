//! Sockets: the interface every family implements (`socket`), and the
//! families. AF_UNIX lives entirely in the sentry (`unix`); AF_INET and
//! AF_INET6 are served by the sentry's own TCP/IP stack (`netstack`) in
//! the sandbox and none network modes, and by host sockets (`hostinet`)
//! with `--network=host`. NETLINK_ROUTE describes the interfaces
//! (`netlink`, `iface`).

pub mod hostinet;
pub mod iface;
pub mod inet;
pub mod link;
pub mod netlink;
pub mod netstack;
pub mod socket;
pub mod unix;

use crate::errno::{Errno, KResult};
use crate::kernel::task::Task;
use crate::vfs::FileOps;
use std::sync::{Arc, OnceLock};

/// How the sandbox reaches the network (`runsc --network`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetworkMode {
    /// Inet sockets served by the sentry's own TCP/IP stack (default).
    Sandbox,
    /// Inet sockets served by host sockets (speed over isolation).
    Host,
    /// The sentry's stack with loopback only.
    None,
}

static MODE: OnceLock<NetworkMode> = OnceLock::new();

/// Set once at boot, before the first guest instruction.
pub fn set_network_mode(m: NetworkMode) {
    let _ = MODE.set(m);
}

pub fn network_mode() -> NetworkMode {
    *MODE.get().unwrap_or(&NetworkMode::Sandbox)
}

/// Takes over the network interface of the sandbox's network namespace
/// for the sentry's stack (`link`): at start, before the guest runs. No
/// interface (a namespace with loopback only) is fine; one that cannot be
/// taken is an error naming what failed.
pub fn take_interfaces() -> anyhow::Result<()> {
    for (cfg, sock) in link::take_interfaces()? {
        netstack::attach(cfg, sock)?;
    }
    Ok(())
}

/// socket(2) after the flags were split off `ty`.
pub fn new_socket(t: &Task, family: i32, ty: i32, proto: i32) -> KResult<Arc<dyn FileOps>> {
    match family {
        libc::AF_UNIX => unix::new_socket(t, ty, proto),
        libc::AF_INET | libc::AF_INET6 => match network_mode() {
            NetworkMode::Sandbox | NetworkMode::None => netstack::new_socket(t, family, ty, proto),
            NetworkMode::Host => hostinet::new_socket(t, family, ty, proto),
        },
        libc::AF_NETLINK => netlink::new_socket(t, ty, proto),
        _ => Err(Errno::EAFNOSUPPORT),
    }
}
