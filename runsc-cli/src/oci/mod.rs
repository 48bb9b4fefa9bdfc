//! The OCI runtime: `create/start/state/kill/delete/run/list/ps/wait/spec`
//! over a state directory per container, and the sandbox process
//! (`runsc boot`) each container runs in.

pub mod cgroup;
pub mod commands;
pub mod control;
pub mod netns;
pub mod signal;
pub mod spec;
pub mod state;

use std::path::PathBuf;

/// Where container state lives unless `--root` says otherwise.
pub const DEFAULT_ROOT: &str = "/var/run/runsc";

/// The runtime's global flags (before the subcommand), as docker and
/// containerd pass them.
#[derive(Clone, Debug)]
pub struct GlobalOpts {
    pub root: PathBuf,
    pub log: Option<PathBuf>,
    /// "text" or "json".
    pub log_format: String,
    pub debug: bool,
    pub strace: bool,
    pub overlay: bool,
    pub platform: String,
    /// "sandbox" (the sentry's own stack), "host" (host sockets) or "none"
    /// (loopback only); see `network_mode`.
    pub network: String,
    pub systemd_cgroup: bool,
}

impl Default for GlobalOpts {
    fn default() -> GlobalOpts {
        GlobalOpts {
            root: PathBuf::from(DEFAULT_ROOT),
            log: None,
            log_format: "text".into(),
            debug: false,
            strace: false,
            overlay: true,
            platform: "ptrace".into(),
            network: "sandbox".into(),
            systemd_cgroup: false,
        }
    }
}

impl GlobalOpts {
    /// The same flags as arguments, for re-executing ourselves.
    pub fn to_args(&self) -> Vec<String> {
        let mut a = vec![
            "--root".to_string(),
            self.root.to_string_lossy().into_owned(),
            "--log-format".into(),
            self.log_format.clone(),
            format!("--overlay={}", self.overlay),
            "--platform".into(),
            self.platform.clone(),
            "--network".into(),
            self.network.clone(),
        ];
        if let Some(l) = &self.log {
            a.push("--log".into());
            a.push(l.to_string_lossy().into_owned());
        }
        if self.debug {
            a.push("--debug".into());
        }
        if self.strace {
            a.push("--strace".into());
        }
        a
    }

    /// Refuses flag values we cannot honour, before anything is created.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.systemd_cgroup {
            anyhow::bail!(
                "--systemd-cgroup: systemd cgroup management is not supported; \
                 use the cgroupfs driver"
            );
        }
        if self.platform != "ptrace" {
            anyhow::bail!(
                "--platform {}: unknown platform (supported: ptrace)",
                self.platform
            );
        }
        if !matches!(self.network.as_str(), "sandbox" | "host" | "none") {
            anyhow::bail!("--network {}: expected sandbox, host or none", self.network);
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            anyhow::bail!("--log-format {}: expected text or json", self.log_format);
        }
        Ok(())
    }
}

impl GlobalOpts {
    /// `--network` as the sentry's mode (validated by `check`).
    pub fn network_mode(&self) -> sentry::net::NetworkMode {
        match self.network.as_str() {
            "host" => sentry::net::NetworkMode::Host,
            "none" => sentry::net::NetworkMode::None,
            _ => sentry::net::NetworkMode::Sandbox,
        }
    }
}
