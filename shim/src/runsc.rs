//! Running our `runsc` binary as the OCI runtime, the way containerd's
//! runc.v2 shim runs runc: one command per operation, its error read back
//! from the JSON log (`--log B/log.json --log-format json`).
//!
//! The shim is a child subreaper whose SIGCHLD thread (containerd-shim's)
//! reaps every child and broadcasts the exits: a command's own exit is
//! taken from that broadcast, never from `Child::wait` (which would race
//! the reaper).

use crate::error::Error;
use containerd_shim::monitor::{ExitEvent, Subject, Topic};
use containerd_shim::synchronous::monitor::monitor_subscribe;
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

/// The runsc state root when containerd gives none (per namespace).
pub const DEFAULT_ROOT: &str = "/run/containerd/runsc";
/// Names another runsc binary (else the one next to the shim, else PATH).
pub const BINARY_ENV: &str = "RUNSC_BINARY";
/// What the shim remembers in the bundle for the `delete` action, which
/// runs in a fresh process after the serving shim is gone.
pub const BUNDLE_FILE: &str = "runsc-shim.json";
/// How long one runsc command may take before it is killed.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// How to invoke runsc for one container.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Runsc {
    pub binary: PathBuf,
    pub root: PathBuf,
    /// runsc's log (JSON lines), in the bundle.
    pub log: PathBuf,
}

/// The stdio a runsc command gets.
pub struct ChildStdio {
    pub stdin: Stdio,
    pub stdout: Stdio,
    pub stderr: Stdio,
}

impl ChildStdio {
    pub fn null() -> ChildStdio {
        ChildStdio {
            stdin: Stdio::null(),
            stdout: Stdio::null(),
            stderr: Stdio::null(),
        }
    }
}

/// The runsc binary: `binary_name` from the runtime options, `$RUNSC_BINARY`,
/// `runsc` next to this executable, else `runsc` on PATH.
pub fn find_binary(from_options: &str) -> Result<PathBuf, Error> {
    if !from_options.is_empty() {
        return Ok(PathBuf::from(from_options));
    }
    if let Some(p) = std::env::var_os(BINARY_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        let p = dir.join("runsc");
        if p.is_file() {
            return Ok(p);
        }
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let p = dir.join("runsc");
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(Error::FailedPrecondition(format!(
        "no runsc binary: not next to the shim, not on PATH, ${BINARY_ENV} unset"
    )))
}

impl Runsc {
    pub fn new(binary: PathBuf, root: PathBuf, bundle: &Path) -> Runsc {
        Runsc {
            binary,
            root,
            log: bundle.join("log.json"),
        }
    }

    /// Saves what `load` needs into the bundle.
    pub fn save(&self, bundle: &Path) -> Result<(), Error> {
        let text = serde_json::to_string(self).map_err(|e| Error::Internal(e.to_string()))?;
        std::fs::write(bundle.join(BUNDLE_FILE), text)
            .map_err(|e| Error::Internal(format!("writing {BUNDLE_FILE}: {e}")))
    }

    /// What `save` wrote into `bundle`.
    pub fn load(bundle: &Path) -> Result<Runsc, Error> {
        let p = bundle.join(BUNDLE_FILE);
        let text = std::fs::read_to_string(&p)
            .map_err(|e| Error::NotFound(format!("{}: {e}", p.display())))?;
        serde_json::from_str(&text).map_err(|e| Error::Internal(format!("{}: {e}", p.display())))
    }

    fn command(&self, args: &[OsString]) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--root")
            .arg(&self.root)
            .arg("--log")
            .arg(&self.log)
            .args(["--log-format", "json"])
            .args(args);
        cmd
    }

    /// Runs `runsc ARGS` with `stdio` to completion; Err carries runsc's
    /// own error message.
    pub fn run(&self, args: &[OsString], stdio: ChildStdio) -> Result<(), Error> {
        let mut cmd = self.command(args);
        cmd.stdin(stdio.stdin)
            .stdout(stdio.stdout)
            .stderr(stdio.stderr);
        self.finish(args, cmd, false).map(|_| ())
    }

    /// Runs `runsc ARGS` and returns what it printed.
    pub fn output(&self, args: &[OsString]) -> Result<Vec<u8>, Error> {
        let mut cmd = self.command(args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        self.finish(args, cmd, true)
    }

    fn finish(&self, args: &[OsString], mut cmd: Command, capture: bool) -> Result<Vec<u8>, Error> {
        let what = format!(
            "runsc {}",
            args.iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ")
        );
        if !self.binary.is_file() {
            // Checked first: a failed exec makes std wait for the child
            // itself, racing the shim's reaper.
            return Err(Error::FailedPrecondition(format!(
                "{}: no such runsc binary",
                self.binary.display()
            )));
        }
        tracing::debug!("{what}");
        let sub = monitor_subscribe(Topic::Pid).map_err(|e| Error::Internal(e.to_string()))?;
        let log_len = std::fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0);
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::Internal(format!("{what}: {e}")))?;
        drop(cmd);
        let pid = child.id() as i32;
        let mut out = Vec::new();
        if capture {
            if let Some(mut so) = child.stdout.take() {
                let _ = so.read_to_end(&mut out);
            }
        }
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        let code = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match sub.rx.recv_timeout(left) {
                Ok(ExitEvent {
                    subject: Subject::Pid(p),
                    exit_code,
                }) if p == pid => break exit_code,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    // SAFETY: kill(2) of our own unreaped child.
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                    }
                    return Err(Error::Internal(format!(
                        "{what}: timed out after {COMMAND_TIMEOUT:?}"
                    )));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(Error::Internal(format!("{what}: lost the exit monitor")));
                }
            }
        };
        if code == 0 {
            return Ok(out);
        }
        let msg = last_error(&self.log, log_len).unwrap_or_else(|| format!("exit status {code}"));
        tracing::warn!("{what}: {msg}");
        Err(classify(&msg))
    }
}

/// The last `"level":"error"` message runsc logged past byte `from`.
fn last_error(log: &Path, from: u64) -> Option<String> {
    let text = std::fs::read(log).ok()?;
    let from = usize::try_from(from).ok()?.min(text.len());
    let text = String::from_utf8_lossy(&text[from..]).into_owned();
    text.lines().rev().find_map(|line| {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        let level = v.get("level")?.as_str()?;
        if !level.eq_ignore_ascii_case("error") {
            return None;
        }
        v.get("msg")
            .or_else(|| v.get("fields").and_then(|f| f.get("message")))
            .and_then(|m| m.as_str())
            .map(str::to_string)
    })
}

/// runsc's message as the error kind containerd expects.
fn classify(msg: &str) -> Error {
    let m = msg.to_ascii_lowercase();
    if m.contains("does not exist") || m.contains("not found") || m.contains("no such") {
        Error::NotFound(msg.to_string())
    } else if m.contains("exists") {
        Error::AlreadyExists(msg.to_string())
    } else if m.contains("not running") || m.contains("cannot ") || m.contains("stopped") {
        Error::FailedPrecondition(msg.to_string())
    } else {
        Error::Internal(msg.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_error_reads_the_newest_error_after_the_offset() {
        let dir = std::env::temp_dir().join(format!("shim-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("log.json");
        let old = "{\"level\":\"error\",\"msg\":\"old\"}\n";
        std::fs::write(
            &log,
            format!("{old}{{\"level\":\"warn\",\"msg\":\"w\"}}\n{{\"level\":\"error\",\"msg\":\"new\"}}\nnot json\n"),
        )
        .unwrap();
        assert_eq!(last_error(&log, 0).as_deref(), Some("new"));
        assert_eq!(last_error(&log, 1 << 20), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn messages_map_to_kinds() {
        assert!(matches!(
            classify("container abc does not exist"),
            Error::NotFound(_)
        ));
        assert!(matches!(
            classify("container with id exists: x"),
            Error::AlreadyExists(_)
        ));
        assert!(matches!(classify("boom"), Error::Internal(_)));
    }
}
