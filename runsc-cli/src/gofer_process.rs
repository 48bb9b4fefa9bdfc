//! Starting the gofer: a child `runsc gofer` serving one root directory
//! over a socketpair, killed by the host kernel when its parent exits.

use crate::userns::IdMaps;
use anyhow::Context;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;

/// Spawns `runsc gofer --root ROOT` and returns our end of its socket.
/// `rw` lets the guest write to the directory.
pub fn spawn_gofer(root: &Path, rw: bool) -> anyhow::Result<OwnedFd> {
    spawn_gofer_with(root, rw, false)
}

/// As [`spawn_gofer`]; with `host_uds` the gofer connects the sandbox to
/// host Unix sockets found in the tree.
pub fn spawn_gofer_with(root: &Path, rw: bool, host_uds: bool) -> anyhow::Result<OwnedFd> {
    spawn_gofer_in(root, rw, host_uds, None)
}

/// As [`spawn_gofer_with`], the gofer in a user namespace of its own with
/// `userns`'s mappings (see `crate::userns`).
pub fn spawn_gofer_in(
    root: &Path,
    rw: bool,
    host_uds: bool,
    userns: Option<&IdMaps>,
) -> anyhow::Result<OwnedFd> {
    let (ours, theirs) = gofer::socketpair().context("creating the gofer socket")?;
    let exe = std::env::current_exe().context("finding our own executable")?;
    let child_fd = theirs.as_raw_fd();
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("gofer").arg("--root").arg(root).args(["--fd", "3"]);
    if rw {
        cmd.arg("--rw");
    }
    if host_uds {
        cmd.arg("--host-uds");
    }
    let pending = match userns {
        Some(_) => {
            cmd.args(["--userns-sync-fd", "4"]);
            Some(crate::userns::channel()?)
        }
        None => None,
    };
    let sync_fd = pending.as_ref().map_or(-1, |(r, _)| r.as_raw_fd());
    // SAFETY: between fork and exec we only call async-signal-safe dup2
    // and prctl on fds and values we own.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(child_fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if sync_fd >= 0 {
                if libc::dup2(sync_fd, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    cmd.stdin(std::process::Stdio::null());
    let mut child = cmd.spawn().context("starting the gofer")?;
    drop(theirs);
    if let (Some((r, go)), Some(maps)) = (pending, userns) {
        drop(r);
        if let Err(e) = go.release(child.id(), maps) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e.context("starting the gofer in a user namespace"));
        }
    }
    Ok(ours)
}
