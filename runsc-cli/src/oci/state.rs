//! The state directory of one container, `<root>/<id>/`: `state.json`
//! (written atomically by rename), the sandbox's `control.sock`, and
//! `exit.json` (the sandbox writes it when PID 1 has exited). Whether a
//! container is stopped is decided from the host, never by asking the
//! sandbox, so `state` cannot hang on a stuck one.

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const STATE_FILE: &str = "state.json";
pub const CONTROL_SOCKET: &str = "control.sock";
pub const EXIT_FILE: &str = "exit.json";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    /// The sandbox is frozen (its cgroup's freezer, else SIGSTOP) by
    /// `pause`.
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// What `state.json` records.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct State {
    pub id: String,
    /// The sandbox process's host pid.
    pub pid: i32,
    /// Its start time (clock ticks since boot, /proc/PID/stat field 22), so
    /// a recycled pid is never mistaken for it.
    pub pid_start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339, UTC.
    pub created: String,
    /// created or running, as last recorded; see `ContainerDir::status`.
    pub status: Status,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// The --network mode the sandbox was created with.
    #[serde(default)]
    pub network: String,
    /// Signals `kill` took while the container was paused, delivered by
    /// `resume` (as a frozen cgroup holds them for runc).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_signals: Vec<PendingSignal>,
    /// The sandbox's cgroup (None: cgroups were unusable and no limits
    /// were asked for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<super::cgroup::Cgroup>,
}

/// A signal waiting for `resume`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct PendingSignal {
    pub signal: i32,
    pub all: bool,
}

/// The OCI state as `runsc state` prints it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OciState {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: Status,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    pub annotations: BTreeMap<String, String>,
}

/// What the sandbox leaves in `exit.json`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct ExitInfo {
    /// Shell-style: the status, or 128+signal.
    pub code: i32,
}

/// Container ids name directories: keep them to runc's alphabet.
pub fn validate_id(id: &str) -> anyhow::Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.'));
    if !ok {
        bail!("invalid container id {id:?}: use letters, digits and _+-.");
    }
    Ok(())
}

/// `<root>/<id>`.
pub struct ContainerDir {
    pub id: String,
    pub path: PathBuf,
}

impl ContainerDir {
    pub fn new(root: &Path, id: &str) -> anyhow::Result<ContainerDir> {
        validate_id(id)?;
        Ok(ContainerDir {
            id: id.to_string(),
            path: root.join(id),
        })
    }

    pub fn exists(&self) -> bool {
        self.path.join(STATE_FILE).exists()
    }

    pub fn control_socket(&self) -> PathBuf {
        self.path.join(CONTROL_SOCKET)
    }

    /// Serializes state changes (start, delete) of this container between
    /// runsc processes: an exclusive flock on the directory, held until the
    /// returned file is dropped. None if the directory is gone.
    pub fn lock(&self) -> Option<std::fs::File> {
        let f = std::fs::File::open(&self.path).ok()?;
        // SAFETY: flock(2) on an fd we own; it blocks until granted.
        unsafe {
            libc::flock(std::os::fd::AsRawFd::as_raw_fd(&f), libc::LOCK_EX);
        }
        Some(f)
    }

    /// Reads state.json; a missing one is runc's "does not exist".
    pub fn load(&self) -> anyhow::Result<State> {
        let p = self.path.join(STATE_FILE);
        let text = match std::fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                bail!("container {:?} does not exist", self.id)
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", p.display())),
        };
        serde_json::from_str(&text).with_context(|| format!("{}: corrupt state", p.display()))
    }

    pub fn save(&self, st: &State) -> anyhow::Result<()> {
        let data = serde_json::to_vec_pretty(st)?;
        write_atomic(&self.path.join(STATE_FILE), &data)
    }

    pub fn exit_info(&self) -> Option<ExitInfo> {
        let text = std::fs::read_to_string(self.path.join(EXIT_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn save_exit_info(&self, e: ExitInfo) -> anyhow::Result<()> {
        write_atomic(&self.path.join(EXIT_FILE), &serde_json::to_vec(&e)?)
    }

    /// The status now: stopped once PID 1 has exited or the sandbox
    /// process is gone (or a zombie), else what was recorded.
    pub fn status(&self, st: &State) -> Status {
        if self.path.join(EXIT_FILE).exists() || !sandbox_alive(st.pid, st.pid_start_time) {
            Status::Stopped
        } else {
            st.status
        }
    }

    pub fn oci_state(&self, st: &State) -> OciState {
        let status = self.status(st);
        OciState {
            oci_version: oci_spec::runtime::Spec::default().version().clone(),
            id: st.id.clone(),
            pid: if status == Status::Stopped { 0 } else { st.pid },
            status,
            bundle: st.bundle.clone(),
            rootfs: st.rootfs.clone(),
            created: st.created.clone(),
            owner: String::new(),
            annotations: st.annotations.clone(),
        }
    }
}

/// Writes `path` by a rename from a temporary file beside it, so readers
/// see the old or the new content, never a torn one.
pub fn write_atomic(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, data).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

/// (state letter, start time) from /proc/PID/stat.
fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after
    // the last ')'.
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let state = f.first()?.chars().next()?;
    // Field 22 overall is index 19 after the name (fields 3.. start at 0).
    let start = f.get(19)?.parse().ok()?;
    Some((state, start))
}

/// The start time of a live process, to record with its pid.
pub fn process_start_time(pid: i32) -> anyhow::Result<u64> {
    proc_stat(pid)
        .map(|(_, t)| t)
        .with_context(|| format!("reading /proc/{pid}/stat"))
}

/// Whether every thread of `pid` is stopped (a group stop completed).
pub fn all_threads_stopped(pid: i32) -> bool {
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    rd.flatten().all(|t| {
        std::fs::read_to_string(t.path().join("stat"))
            .ok()
            .and_then(|s| {
                let rest = &s[s.rfind(')')? + 1..];
                rest.split_whitespace().next().map(|st| st == "T")
            })
            .unwrap_or(true)
    })
}

/// Whether the sandbox process still runs (a zombie has finished).
pub fn sandbox_alive(pid: i32, start_time: u64) -> bool {
    pid > 0 && matches!(proc_stat(pid), Some((s, t)) if t == start_time && s != 'Z' && s != 'X')
}

/// Now, as RFC 3339 in UTC with nanoseconds (what runc records).
pub fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs() as i64, d.subsec_nanos())
}

fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(validate_id("abc-1.2_x+y").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "ü"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn time_format() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(1_709_251_199, 5), "2024-02-29T23:59:59.000000005Z");
    }

    #[test]
    fn own_process_is_alive_and_wrong_start_time_is_not() {
        let me = std::process::id() as i32;
        let t = process_start_time(me).unwrap();
        assert!(sandbox_alive(me, t));
        assert!(!sandbox_alive(me, t + 1));
        assert!(!sandbox_alive(0, 0));
    }
}
