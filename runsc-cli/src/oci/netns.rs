//! The sandbox process's network namespace (config.json
//! `linux.namespaces`), entered by `runsc boot` before it starts any
//! thread or opens any socket: `setns` only moves the calling thread, and
//! every later thread inherits it.

use super::spec::NetNs;
use anyhow::Context;
use sentry::net::NetworkMode;

/// Enters the network namespace the spec asks for; returns whether the
/// sentry's stack is to take over its interface at start (sandbox mode
/// in a namespace of the container's own, never the runtime's).
pub fn enter(ns: &NetNs, mode: NetworkMode) -> anyhow::Result<bool> {
    use nix::sched::{setns, unshare, CloneFlags};
    match ns {
        NetNs::Runtime => return Ok(false),
        NetNs::Path(p) => {
            let f = std::fs::File::open(p)
                .with_context(|| format!("network namespace {}", p.display()))?;
            setns(&f, CloneFlags::CLONE_NEWNET)
                .with_context(|| format!("joining the network namespace {}", p.display()))?;
        }
        // Host mode keeps the runtime's network: its sockets are host ones.
        NetNs::New if mode == NetworkMode::Host => return Ok(false),
        NetNs::New => {
            unshare(CloneFlags::CLONE_NEWNET).context("creating a network namespace")?;
        }
    }
    Ok(mode == NetworkMode::Sandbox)
}
