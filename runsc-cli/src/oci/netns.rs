//! The sandbox process's network namespace (config.json
//! `linux.namespaces`), entered by `runsc boot` before it starts any
//! thread or opens any socket: `setns` only moves the calling thread, and
//! every later thread inherits it.

use super::spec::NetNs;
use anyhow::Context;
use sentry::net::NetworkMode;

/// A network namespace's identity (device, inode of its nsfs file).
fn ns_id(path: &str) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Enters the network namespace the spec asks for; returns whether the
/// sentry's stack is to take over its interface at start (sandbox mode
/// in a namespace of the container's own, never the runtime's or the
/// host's: docker's `--network host` names the host's namespace, whose
/// interfaces must stay the host's).
pub fn enter(ns: &NetNs, mode: NetworkMode) -> anyhow::Result<bool> {
    use nix::sched::{setns, unshare, CloneFlags};
    match ns {
        NetNs::Runtime => return Ok(false),
        NetNs::Path(p) => {
            let before = ns_id("/proc/self/ns/net");
            let f = std::fs::File::open(p)
                .with_context(|| format!("network namespace {}", p.display()))?;
            setns(&f, CloneFlags::CLONE_NEWNET)
                .with_context(|| format!("joining the network namespace {}", p.display()))?;
            let now = ns_id("/proc/thread-self/ns/net");
            if now.is_none() || now == before || now == ns_id("/proc/1/ns/net") {
                tracing::warn!(
                    "network namespace {}: the host's or the runtime's own; its interfaces \
                     are left alone (loopback only)",
                    p.display()
                );
                return Ok(false);
            }
        }
        // Host mode keeps the runtime's network: its sockets are host ones.
        NetNs::New if mode == NetworkMode::Host => return Ok(false),
        NetNs::New => {
            unshare(CloneFlags::CLONE_NEWNET).context("creating a network namespace")?;
        }
    }
    Ok(mode == NetworkMode::Sandbox)
}
