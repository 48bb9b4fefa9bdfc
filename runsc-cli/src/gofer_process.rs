//! Starting the gofer: a child `runsc gofer` serving one root directory
//! over a socketpair, killed by the host kernel when its parent exits.

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
    // SAFETY: between fork and exec we only call async-signal-safe dup2 and
    // prctl on fds and values we own.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(child_fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd.stdin(std::process::Stdio::null());
    cmd.spawn().context("starting the gofer")?;
    drop(theirs);
    Ok(ours)
}
