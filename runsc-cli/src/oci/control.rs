//! The sandbox's control socket (`<root>/<id>/control.sock`): one JSON
//! request and one JSON reply per connection. The sandbox process serves
//! it; `runsc start/kill/ps/wait` are its clients.

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Request {
    Start,
    Signal { signal: i32, all: bool },
    Ps,
    Wait,
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
    let stream = with_short_path(sock, |p| UnixStream::connect(p))
        .with_context(|| format!("connecting to the sandbox at {}", sock.display()))?;
    stream.set_read_timeout(timeout)?;
    stream.set_write_timeout(timeout)?;
    let mut w = &stream;
    let mut line = serde_json::to_vec(req)?;
    line.push(b'\n');
    w.write_all(&line).context("sending to the sandbox")?;
    let mut r = BufReader::new(&stream);
    let mut text = String::new();
    r.read_line(&mut text)
        .context("reading the sandbox's reply")?;
    if text.is_empty() {
        bail!("the sandbox closed the control connection without replying");
    }
    let reply: Reply = serde_json::from_str(&text).context("malformed reply from the sandbox")?;
    if let Some(e) = reply.error {
        bail!("{e}");
    }
    Ok(reply)
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
    let mut line = String::new();
    if BufReader::new(&conn).read_line(&mut line).is_err() {
        return;
    }
    let reply = match serde_json::from_str::<Request>(&line) {
        Err(e) => Reply {
            error: Some(format!("malformed request: {e}")),
            ..Reply::default()
        },
        Ok(req) => answer(req, sandbox, exit).unwrap_or_else(|e| Reply {
            error: Some(format!("{e:#}")),
            ..Reply::default()
        }),
    };
    let mut out = serde_json::to_vec(&reply).unwrap_or_default();
    out.push(b'\n');
    let _ = (&conn).write_all(&out);
}

fn answer(req: Request, sandbox: &sentry::Sandbox, exit: &ExitNotice) -> anyhow::Result<Reply> {
    tracing::debug!(?req, "control request");
    Ok(match req {
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
    })
}
