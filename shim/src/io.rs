//! A process's stdio: containerd names fifos (stdin, stdout, stderr; any
//! may be empty). The container gets pipes (or, with a terminal, a pty
//! whose master runsc hands over a console socket) and threads copy
//! between them and the fifos, as containerd's runc shim does, so that
//! closing stdin (CloseIO) and the end of output both reach the other side.

use crate::error::Error;
use crate::runsc::ChildStdio;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The fifo paths containerd gave for one process.
#[derive(Clone, Debug, Default)]
pub struct StdioPaths {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

/// Counts a process's output copiers still running, so that Delete can
/// wait for its output to reach containerd (containerd cancels the fifos
/// once Delete returns, as it does with runc's shim).
#[derive(Clone, Default)]
pub struct OutputDone(Arc<(Mutex<usize>, Condvar)>);

/// One running copier; dropping it counts it done.
struct Copier(OutputDone);

impl OutputDone {
    fn start(&self) -> Copier {
        *self.0 .0.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        Copier(self.clone())
    }

    /// Waits until every copier ended, or `limit` passed: whether they did.
    pub fn wait(&self, limit: Duration) -> bool {
        let (m, cv) = &*self.0;
        let deadline = Instant::now() + limit;
        let mut n = m.lock().unwrap_or_else(|e| e.into_inner());
        while *n > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            n = cv
                .wait_timeout(n, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

impl Drop for Copier {
    fn drop(&mut self) {
        let (m, cv) = &*self.0 .0;
        let mut n = m.lock().unwrap_or_else(|e| e.into_inner());
        *n = n.saturating_sub(1);
        cv.notify_all();
    }
}

/// The shim's side of a running process's stdio.
#[derive(Default)]
pub struct ProcIo {
    /// The output copiers.
    pub output: OutputDone,
    /// Where the stdin copier writes (pipe or pty master); None once
    /// closed (CloseIO, or the stdin fifo's end).
    stdin: Arc<Mutex<Option<File>>>,
    /// The pty master (terminal processes).
    console: Option<OwnedFd>,
}

impl ProcIo {
    /// CloseIO: the process sees the end of its stdin (pipes; a terminal's
    /// stdin copier just stops).
    pub fn close_stdin(&self) {
        let mut w = self.stdin.lock().unwrap_or_else(|e| e.into_inner());
        *w = None;
    }

    /// ResizePty: the terminal's window size.
    pub fn resize(&self, width: u32, height: u32) -> Result<(), Error> {
        let Some(master) = &self.console else {
            tracing::debug!("resize of a process without a terminal: ignored");
            return Ok(());
        };
        let ws = libc::winsize {
            ws_row: u16::try_from(height).unwrap_or(u16::MAX),
            ws_col: u16::try_from(width).unwrap_or(u16::MAX),
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ on the pty master we own, with a valid winsize.
        let r = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        if r < 0 {
            return Err(Error::Internal(format!(
                "setting the window size: {}",
                std::io::Error::last_os_error()
            )));
        }
        Ok(())
    }
}

/// Pipes for a process without a terminal: what runsc gets as its stdio
/// (the container inherits it) and the shim's side, copier threads started.
pub fn pipes(p: &StdioPaths) -> Result<(ChildStdio, ProcIo), Error> {
    let mut child = ChildStdio::null();
    let io = ProcIo::default();
    if !p.stdin.is_empty() {
        let (r, w) = pipe()?;
        child.stdin = Stdio::from(r);
        *io.stdin.lock().unwrap_or_else(|e| e.into_inner()) = Some(File::from(w));
        copy_stdin(PathBuf::from(&p.stdin), io.stdin.clone());
    }
    if !p.stdout.is_empty() {
        let dst = open_output(&p.stdout)?;
        let (r, w) = pipe()?;
        child.stdout = Stdio::from(w);
        copy_out(File::from(r), dst, &p.stdout, io.output.start());
    }
    if !p.stderr.is_empty() {
        let dst = open_output(&p.stderr)?;
        let (r, w) = pipe()?;
        child.stderr = Stdio::from(w);
        copy_out(File::from(r), dst, &p.stderr, io.output.start());
    }
    Ok((child, io))
}

/// A unix socket runsc sends a terminal's pty master to (`--console-socket`).
pub struct ConsoleSocket {
    pub path: PathBuf,
    listener: UnixListener,
    /// The stdout fifo, opened before runsc runs.
    stdout: Option<File>,
}

impl ConsoleSocket {
    /// A new socket under /tmp (a bundle path may be too long for a socket).
    pub fn new(p: &StdioPaths) -> Result<ConsoleSocket, Error> {
        let stdout = match p.stdout.as_str() {
            "" => None,
            path => Some(open_output(path)?),
        };
        static N: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "runsc-shim-pty-{}-{}.sock",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)
            .map_err(|e| Error::Internal(format!("console socket {}: {e}", path.display())))?;
        Ok(ConsoleSocket {
            path,
            listener,
            stdout,
        })
    }

    /// After runsc returned: takes the pty master it sent and starts the
    /// copiers between it and the fifos.
    pub fn finish(mut self, p: &StdioPaths) -> Result<ProcIo, Error> {
        let master = self.receive()?;
        let io = ProcIo::default();
        if !p.stdin.is_empty() {
            *io.stdin.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(File::from(master.try_clone()?));
            copy_stdin(PathBuf::from(&p.stdin), io.stdin.clone());
        }
        if let Some(dst) = self.stdout.take() {
            copy_out(
                File::from(master.try_clone()?),
                dst,
                &p.stdout,
                io.output.start(),
            );
        }
        Ok(ProcIo {
            console: Some(master),
            ..io
        })
    }

    fn receive(&self) -> Result<OwnedFd, Error> {
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
        self.listener.set_nonblocking(true)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let stream = loop {
            match self.listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() > deadline {
                        return Err(Error::Internal("runsc sent no pty master".into()));
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(e.into()),
            }
        };
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut name = [0u8; 4096];
        let mut iov = [std::io::IoSliceMut::new(&mut name)];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let msg = recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(|e| Error::Internal(format!("receiving the pty master: {e}")))?;
        let mut fds = Vec::new();
        for c in msg
            .cmsgs()
            .map_err(|e| Error::Internal(format!("receiving the pty master: {e}")))?
        {
            if let ControlMessageOwned::ScmRights(r) = c {
                fds.extend(r);
            }
        }
        let mut owned: Vec<OwnedFd> = fds
            .into_iter()
            // SAFETY: SCM_RIGHTS just installed these fds in our table and
            // nothing else owns them.
            .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
            .collect();
        if owned.is_empty() {
            return Err(Error::Internal("runsc sent no pty master".into()));
        }
        Ok(owned.swap_remove(0))
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), Error> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| Error::Internal(format!("pipe: {e}")))
}

/// Copies the stdin fifo into `dst` until the fifo ends or `dst` is
/// closed, then closes `dst`.
fn copy_stdin(fifo: PathBuf, dst: Arc<Mutex<Option<File>>>) {
    let r = std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            // Blocks until containerd's side opens it for writing.
            let mut src = match File::open(&fifo) {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!("stdin {}: {e}", fifo.display());
                    *dst.lock().unwrap_or_else(|e| e.into_inner()) = None;
                    return;
                }
            };
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                let n = match src.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let mut w = dst.lock().unwrap_or_else(|e| e.into_inner());
                let Some(f) = w.as_mut() else { return };
                if f.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            *dst.lock().unwrap_or_else(|e| e.into_inner()) = None;
        });
    if let Err(e) = r {
        tracing::warn!("starting the stdin copier: {e}");
    }
}

/// Copies `src` (the container's output) into the fifo until it ends.
/// Opens an output fifo for writing before the process exists, as runc's
/// shim does: containerd's reader is opening it meanwhile, and a client
/// (ctr) cancels a reader still opening once the task has exited, which
/// would lose the output. Bounded: a reader that never comes fails it.
fn open_output(path: &str) -> Result<File, Error> {
    let (tx, rx) = std::sync::mpsc::channel();
    let p = PathBuf::from(path);
    std::thread::Builder::new()
        .name("fifo-open".into())
        .spawn(move || {
            // Blocks until containerd's side has it open for reading. If
            // we gave up meanwhile, the file is just dropped.
            let _ = tx.send(OpenOptions::new().write(true).open(&p));
        })
        .map_err(|e| Error::Internal(format!("opening {path}: {e}")))?;
    match rx.recv_timeout(FIFO_OPEN_TIMEOUT) {
        Ok(Ok(f)) => Ok(f),
        Ok(Err(e)) => Err(Error::Internal(format!("opening {path}: {e}"))),
        Err(_) => Err(Error::Internal(format!(
            "opening {path}: nobody reads it after {FIFO_OPEN_TIMEOUT:?}"
        ))),
    }
}

/// How long containerd's reader of an output fifo may take to appear.
const FIFO_OPEN_TIMEOUT: Duration = Duration::from_secs(10);

fn copy_out(mut src: File, mut dst: File, fifo: &str, done: Copier) {
    let fifo = PathBuf::from(fifo);
    let r = std::thread::Builder::new()
        .name("output".into())
        .spawn(move || {
            let _done = done;
            let mut buf = vec![0u8; 32 * 1024];
            let mut total = 0usize;
            loop {
                // A pty master reads EIO once the terminal's last user is
                // gone: the end, like a pipe's EOF.
                let n = match src.read(&mut buf) {
                    Ok(0) => {
                        tracing::debug!("output {}: {total} bytes, then EOF", fifo.display());
                        break;
                    }
                    Err(e) => {
                        tracing::debug!("output {}: {total} bytes, then {e}", fifo.display());
                        break;
                    }
                    Ok(n) => n,
                };
                total += n;
                if let Err(e) = dst.write_all(&buf[..n]) {
                    // containerd's reader went away: drain and drop.
                    tracing::warn!("output {}: {e}: output dropped", fifo.display());
                    let _ = std::io::copy(&mut src, &mut std::io::sink());
                    break;
                }
            }
        });
    if let Err(e) = r {
        tracing::warn!("starting an output copier: {e}");
    }
}

/// Whether `p` names a fifo path (not a `binary://` or `file://` URI).
pub fn check_path(p: &str) -> Result<(), Error> {
    if p.contains("://") {
        return Err(Error::Unimplemented(format!(
            "stdio {p}: only fifos are supported"
        )));
    }
    if !p.is_empty() && !Path::new(p).is_absolute() {
        return Err(Error::InvalidArgument(format!(
            "stdio {p}: not an absolute path"
        )));
    }
    Ok(())
}
