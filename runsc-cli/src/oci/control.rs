//! The sandbox's control socket (`<root>/<id>/control.sock`): one JSON
//! request and one JSON reply per connection. The sandbox process serves
//! it; `runsc start/kill/ps/wait/exec` are its clients. An `exec` request
//! carries the new process's stdio as SCM_RIGHTS fds beside its line.

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Request {
    Start,
    Signal {
        signal: i32,
        all: bool,
    },
    Ps,
    Wait,
    /// Start a process; its stdio fds come with the request, in order, for
    /// the guest fds listed in `stdio`.
    Exec {
        process: ExecProcess,
        stdio: Vec<i32>,
        /// process.terminal: the process gets a pty of the sandbox's own
        /// on the host terminal that is its stdin.
        #[serde(default)]
        terminal: bool,
    },
    /// Wait for a process `Exec` started: the reply's exit_code.
    WaitProcess {
        pid: i32,
    },
    /// A signal to one process.
    SignalProcess {
        pid: i32,
        signal: i32,
    },
    /// New resource limits for the guest (`runsc update`); None: no limit.
    Update {
        cpus: Option<usize>,
        memory: Option<u64>,
        pids: Option<u64>,
    },
}

/// What `Exec` runs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExecProcess {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    #[serde(default)]
    pub additional_gids: Vec<u32>,
    pub umask: u32,
    /// Capability sets; None: what the uid has on Linux.
    #[serde(default)]
    pub caps: Option<CapSets>,
}

/// A task's capability sets, as the control socket carries them.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct CapSets {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub bounding: u64,
    pub ambient: u64,
    pub no_new_privs: bool,
}

impl From<sentry::kernel::caps::Caps> for CapSets {
    fn from(c: sentry::kernel::caps::Caps) -> CapSets {
        CapSets {
            effective: c.effective,
            permitted: c.permitted,
            inheritable: c.inheritable,
            bounding: c.bounding,
            ambient: c.ambient,
            no_new_privs: c.no_new_privs,
        }
    }
}

impl From<CapSets> for sentry::kernel::caps::Caps {
    fn from(c: CapSets) -> sentry::kernel::caps::Caps {
        let all = sentry::kernel::caps::ALL;
        sentry::kernel::caps::Caps {
            effective: c.effective & all,
            permitted: c.permitted & all,
            inheritable: c.inheritable & all,
            bounding: c.bounding & all,
            ambient: c.ambient & all,
            keep_caps: false,
            no_new_privs: c.no_new_privs,
        }
    }
}

/// One guest process.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Process {
    pub pid: i32,
    pub ppid: i32,
    pub uid: u32,
    pub cmd: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Reply {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes: Option<Vec<Process>>,
    /// Wait: the shell-style exit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Exec: the new process's pid in the sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// Exec that failed to start the program: the shell-style code
    /// (127 not found, 126 not executable) besides the error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec_failure: Option<i32>,
}

/// The sandbox could not start an exec'd program: `code` is what a shell
/// would exit with.
#[derive(Debug, thiserror::Error)]
#[error("{msg}")]
pub struct ExecFailed {
    pub msg: String,
    pub code: i32,
}

/// Runs `f` with a name for `path` that fits in sun_path (108 bytes): the
/// path itself, or one through /proc/self/fd of its directory.
fn with_short_path<T>(
    path: &Path,
    f: impl FnOnce(&Path) -> std::io::Result<T>,
) -> anyhow::Result<T> {
    if path.as_os_str().len() < 100 {
        return Ok(f(path)?);
    }
    let dir = path.parent().context("socket path has no directory")?;
    let name = path.file_name().context("socket path has no name")?;
    let d = std::fs::File::open(dir).with_context(|| format!("opening {}", dir.display()))?;
    let short = Path::new("/proc/self/fd")
        .join(d.as_raw_fd().to_string())
        .join(name);
    Ok(f(&short)?)
}

/// Sends one request and returns the reply. `timeout` bounds each read and
/// write (None: wait forever, for `Wait`).
pub fn call(sock: &Path, req: &Request, timeout: Option<Duration>) -> anyhow::Result<Reply> {
    call_with_fds(sock, req, &[], timeout)
}

/// `call`, passing `fds` along with the request (SCM_RIGHTS).
pub fn call_with_fds(
    sock: &Path,
    req: &Request,
    fds: &[RawFd],
    timeout: Option<Duration>,
) -> anyhow::Result<Reply> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let stream = with_short_path(sock, |p| UnixStream::connect(p))
        .with_context(|| format!("connecting to the sandbox at {}", sock.display()))?;
    stream.set_read_timeout(timeout)?;
    stream.set_write_timeout(timeout)?;
    let mut line = serde_json::to_vec(req)?;
    line.push(b'\n');
    let mut sent = 0;
    if !fds.is_empty() {
        let iov = [std::io::IoSlice::new(&line)];
        sent = sendmsg::<()>(
            stream.as_raw_fd(),
            &iov,
            &[ControlMessage::ScmRights(fds)],
            MsgFlags::empty(),
            None,
        )
        .context("sending to the sandbox")?;
    }
    let mut w = &stream;
    w.write_all(&line[sent..])
        .context("sending to the sandbox")?;
    let mut r = BufReader::new(&stream);
    let mut text = String::new();
    r.read_line(&mut text)
        .context("reading the sandbox's reply")?;
    if text.is_empty() {
        bail!("the sandbox closed the control connection without replying");
    }
    let reply: Reply = serde_json::from_str(&text).context("malformed reply from the sandbox")?;
    if let Some(e) = reply.error {
        if let Some(code) = reply.exec_failure {
            return Err(ExecFailed { msg: e, code }.into());
        }
        bail!("{e}");
    }
    Ok(reply)
}

/// Reads one request line and any fds sent with it (at most 8; more are
/// closed). The line is at most 1 MiB.
fn read_request(conn: &UnixStream) -> anyhow::Result<(String, Vec<OwnedFd>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut data = Vec::new();
    let mut fds = Vec::new();
    let mut buf = [0u8; 4096];
    while !data.contains(&b'\n') {
        let mut cmsg = nix::cmsg_space!([RawFd; 8]);
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .context("reading the request")?;
        for c in msg.cmsgs().context("reading the request's fds")? {
            if let ControlMessageOwned::ScmRights(rights) = c {
                for fd in rights {
                    // SAFETY: the kernel just installed this fd for us.
                    fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
        let n = msg.bytes;
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buf[..n]);
        if data.len() > 1 << 20 {
            bail!("request too long");
        }
    }
    fds.truncate(8);
    Ok((String::from_utf8_lossy(&data).into_owned(), fds))
}

/// Shared between the sandbox's main thread and the control connections:
/// PID 1's exit code once it is recorded in exit.json (for `Wait`
/// replies), and how many replies are still being written, so the process
/// does not exit under a client still waiting for its answer.
#[derive(Default)]
pub struct ExitNotice {
    code: Mutex<Option<i32>>,
    cv: Condvar,
    in_flight: Mutex<usize>,
    drained: Condvar,
}

impl ExitNotice {
    pub fn set(&self, code: i32) {
        *self.code.lock().unwrap_or_else(|p| p.into_inner()) = Some(code);
        self.cv.notify_all();
    }

    fn wait(&self) -> i32 {
        let mut c = self.code.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(code) = *c {
                return code;
            }
            c = self.cv.wait(c).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn begin(&self) {
        *self.in_flight.lock().unwrap_or_else(|p| p.into_inner()) += 1;
    }

    fn end(&self) {
        let mut n = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        *n -= 1;
        if *n == 0 {
            self.drained.notify_all();
        }
    }

    /// Waits (at most `limit`) until every request taken so far has had
    /// its reply written.
    pub fn drain(&self, limit: Duration) {
        let n = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let _ = self
            .drained
            .wait_timeout_while(n, limit, |n| *n > 0)
            .unwrap_or_else(|p| p.into_inner());
    }
}

/// Binds the control socket and serves it on a thread (one more thread
/// per connection, since `Wait` blocks).
pub fn serve(
    sock: &Path,
    sandbox: Arc<sentry::Sandbox>,
    exit: Arc<ExitNotice>,
) -> anyhow::Result<()> {
    let _ = std::fs::remove_file(sock);
    let listener = with_short_path(sock, |p| UnixListener::bind(p))
        .with_context(|| format!("binding {}", sock.display()))?;
    std::thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let sandbox = sandbox.clone();
                let exit = exit.clone();
                exit.begin();
                let e2 = exit.clone();
                let r = std::thread::Builder::new()
                    .name("control-conn".into())
                    .spawn(move || {
                        reply_to(conn, &sandbox, &e2);
                        e2.end();
                    });
                if r.is_err() {
                    exit.end();
                }
            }
        })?;
    Ok(())
}

fn reply_to(conn: UnixStream, sandbox: &sentry::Sandbox, exit: &ExitNotice) {
    let Ok((line, fds)) = read_request(&conn) else {
        return;
    };
    let reply = match serde_json::from_str::<Request>(&line) {
        Err(e) => Reply {
            error: Some(format!("malformed request: {e}")),
            ..Reply::default()
        },
        Ok(req) => answer(req, fds, sandbox, exit).unwrap_or_else(|e| Reply {
            exec_failure: e
                .downcast_ref::<sentry::boot::ExecFailure>()
                .map(|f| f.code),
            error: Some(format!("{e:#}")),
            ..Reply::default()
        }),
    };
    let mut out = serde_json::to_vec(&reply).unwrap_or_default();
    out.push(b'\n');
    let _ = (&conn).write_all(&out);
}

fn answer(
    req: Request,
    fds: Vec<OwnedFd>,
    sandbox: &sentry::Sandbox,
    exit: &ExitNotice,
) -> anyhow::Result<Reply> {
    tracing::debug!(?req, "control request");
    Ok(match req {
        Request::Exec {
            process,
            stdio,
            terminal,
        } => {
            if stdio.len() != fds.len() {
                bail!(
                    "exec: {} stdio fds announced, {} received",
                    stdio.len(),
                    fds.len()
                );
            }
            let mut guest: [Option<OwnedFd>; 3] = [None, None, None];
            for (target, fd) in stdio.into_iter().zip(fds) {
                let slot = usize::try_from(target)
                    .ok()
                    .and_then(|t| guest.get_mut(t))
                    .with_context(|| format!("exec: stdio fd {target} is not 0, 1 or 2"))?;
                *slot = Some(fd);
            }
            let pid = sandbox.exec(sentry::boot::ExecConfig {
                argv: process.args,
                env: process.env,
                cwd: process.cwd,
                user: sentry::boot::User {
                    uid: process.uid,
                    gid: process.gid,
                    additional_gids: process.additional_gids,
                    umask: process.umask,
                    caps: process.caps.map(Into::into),
                },
                stdio: guest,
                terminal,
            })?;
            Reply {
                pid: Some(pid),
                ..Reply::default()
            }
        }
        Request::WaitProcess { pid } => Reply {
            exit_code: Some(sandbox.wait_process(pid)),
            ..Reply::default()
        },
        Request::SignalProcess { pid, signal } => {
            sandbox.signal_process(pid, signal)?;
            Reply::default()
        }
        Request::Start => {
            sandbox.start()?;
            Reply::default()
        }
        Request::Signal { signal, all } => {
            sandbox.signal(signal, all)?;
            Reply::default()
        }
        Request::Ps => Reply {
            processes: Some(
                sandbox
                    .processes()
                    .into_iter()
                    .filter(|p| !p.zombie)
                    .map(|p| Process {
                        pid: p.pid,
                        ppid: p.ppid,
                        uid: p.uid,
                        cmd: p.comm,
                    })
                    .collect(),
            ),
            ..Reply::default()
        },
        Request::Wait => Reply {
            exit_code: Some(exit.wait()),
            ..Reply::default()
        },
        Request::Update { cpus, memory, pids } => {
            sentry::boot::set_guest_limits(sentry::boot::GuestLimits { cpus, memory, pids });
            Reply::default()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// A request line and the fds sent with it arrive together; the fds
    /// work on the other side.
    #[test]
    fn requests_carry_fds() {
        let dir = std::env::temp_dir().join(format!("runsc-control-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("c.sock");
        let listener = UnixListener::bind(&sock).unwrap();
        let server = std::thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            let (line, fds) = read_request(&conn).unwrap();
            let req: Request = serde_json::from_str(&line).unwrap();
            let Request::Exec { process, stdio, .. } = req else {
                panic!("{line}");
            };
            assert_eq!(process.args, ["echo", "hi"]);
            assert_eq!(stdio, [1]);
            assert_eq!(fds.len(), 1);
            let mut w = std::fs::File::from(fds.into_iter().next().unwrap());
            w.write_all(b"through the fd").unwrap();
            let reply = Reply {
                pid: Some(42),
                ..Reply::default()
            };
            let mut out = serde_json::to_vec(&reply).unwrap();
            out.push(b'\n');
            (&conn).write_all(&out).unwrap();
        });
        let (r, w) = nix::unistd::pipe().unwrap();
        let req = Request::Exec {
            process: ExecProcess {
                args: vec!["echo".into(), "hi".into()],
                env: vec![],
                cwd: "/".into(),
                uid: 0,
                gid: 0,
                additional_gids: vec![],
                umask: 0o022,
                caps: None,
            },
            stdio: vec![1],
            terminal: false,
        };
        let reply =
            call_with_fds(&sock, &req, &[w.as_raw_fd()], Some(Duration::from_secs(10))).unwrap();
        assert_eq!(reply.pid, Some(42));
        drop(w);
        server.join().unwrap();
        let mut got = String::new();
        std::fs::File::from(r).read_to_string(&mut got).unwrap();
        assert_eq!(got, "through the fd");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// An exec the sandbox could not start comes back as `ExecFailed`
    /// with the shell-style code.
    #[test]
    fn exec_failures_keep_their_code() {
        let dir = std::env::temp_dir().join(format!("runsc-control-fail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("c.sock");
        let listener = UnixListener::bind(&sock).unwrap();
        let server = std::thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            read_request(&conn).unwrap();
            (&conn)
                .write_all(b"{\"error\":\"x: not found\",\"exec_failure\":127}\n")
                .unwrap();
        });
        let e = call(&sock, &Request::Ps, Some(Duration::from_secs(10))).unwrap_err();
        server.join().unwrap();
        let f = e.downcast_ref::<ExecFailed>().expect("an ExecFailed");
        assert_eq!((f.code, f.msg.as_str()), (127, "x: not found"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
