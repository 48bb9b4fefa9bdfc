//! The sandbox console: when a process is started on a terminal (`runsc
//! do` on a tty, a container or `exec` with `process.terminal`), it gets
//! a pty of the sandbox's own devpts instead of the host terminal, as
//! gVisor does: the slave (/dev/pts/N) is its stdin/stdout/stderr and its
//! session's controlling terminal, and a sentry thread copies bytes
//! between the host terminal and the master. The guest's line discipline
//! does the echo, editing and ISIG signals, so the host terminal is put in
//! raw mode (and restored when the console finishes).
//!
//! Window size: the host terminal's, at start and whenever it changes
//! (`host_resized`, on the SIGWINCH the sandbox process gets, and a check
//! every `WINSIZE_POLL` for terminals that are nobody's controlling
//! terminal on the host, like an exec's). Host hang-up (EOF, EIO) closes
//! the master: the guest session is hung up (SIGHUP). `finish` drains the
//! output still queued to the host before the process's exit is reported.

use super::devpts::{DevPts, MasterFile, Pty};
use super::lock;
use crate::errno::Errno;
use crate::kernel::task::ThreadGroup;
use crate::kernel::waiter::Waiter;
use crate::kernel::Kernel;
use crate::vfs::{File, FsContext};
use anyhow::Context as _;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often the host terminal's size is checked without a SIGWINCH.
const WINSIZE_POLL: Duration = Duration::from_millis(200);
/// Bytes moved per host read or pty read.
const CHUNK: usize = 4096;

pub struct Console {
    pty: Arc<Pty>,
    /// The master end; dropping it hangs the guest side up.
    master: Mutex<Option<Arc<MasterFile>>>,
    host_in: OwnedFd,
    host_out: OwnedFd,
    /// Host terminals put in raw mode, with their termios before.
    saved: Vec<(RawFd, libc::termios)>,
    /// Wakes the copying thread: the pty's queue and `host_resized`.
    waiter: Arc<Waiter>,
    /// Held while output taken from the pty is on its way to the host, so
    /// `finish` knows when all of it arrived.
    out_lock: Mutex<()>,
    /// The copying thread stopped (host gone, or `finish`).
    done: AtomicBool,
}

fn isatty(fd: RawFd) -> bool {
    // SAFETY: isatty on an fd the caller owns.
    unsafe { libc::isatty(fd) == 1 }
}

/// The host terminal's window size (struct winsize's bytes).
fn host_winsize(fd: RawFd) -> Option<[u8; 8]> {
    let mut ws = [0u8; 8];
    // SAFETY: TIOCGWINSZ writes one 8-byte struct winsize into ws.
    let r = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, ws.as_mut_ptr()) };
    (r == 0).then_some(ws)
}

/// Puts host terminal `fd` in raw mode; returns its termios before.
fn make_raw(fd: RawFd) -> Option<libc::termios> {
    // SAFETY: an all-zero termios is a valid value to overwrite.
    let mut old: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: tcgetattr fills the live termios.
    if unsafe { libc::tcgetattr(fd, &mut old) } != 0 {
        return None;
    }
    let mut raw = old;
    // SAFETY: cfmakeraw edits the live termios; tcsetattr reads it.
    let r = unsafe {
        libc::cfmakeraw(&mut raw);
        libc::tcsetattr(fd, libc::TCSANOW, &raw)
    };
    if r != 0 {
        tracing::warn!(
            "console: raw mode on the host terminal: {}",
            std::io::Error::last_os_error()
        );
        return None;
    }
    Some(old)
}

impl Console {
    /// A console for a process whose host stdio is `stdio`, if it is on a
    /// terminal (host fd 0 is one): the guest file to install, in place of
    /// each host fd that is a terminal, is returned beside it. The slave
    /// node belongs to `uid`.
    pub fn open(
        kernel: &Arc<Kernel>,
        stdio: &[Option<OwnedFd>; 3],
        uid: u32,
    ) -> anyhow::Result<Option<(Arc<Console>, Arc<File>)>> {
        let Some(input) = stdio[0].as_ref().filter(|f| isatty(f.as_raw_fd())) else {
            return Ok(None);
        };
        // A background job of its host terminal (`runsc do ... &`) leaves
        // it alone: changing its modes or reading it would stop us with
        // SIGTTOU/SIGTTIN.
        // SAFETY: tcgetpgrp on a host fd the caller owns; getpgrp has no
        // preconditions.
        let (fg, ours) = unsafe { (libc::tcgetpgrp(input.as_raw_fd()), libc::getpgrp()) };
        if fg > 0 && fg != ours {
            tracing::debug!("console: in the background of the host terminal: not taking it");
            return Ok(None);
        }
        let output = [1, 2, 0]
            .into_iter()
            .find_map(|i| stdio[i].as_ref().filter(|f| isatty(f.as_raw_fd())))
            .unwrap_or(input);
        let host_in = input.try_clone().context("console: duplicating stdin")?;
        let host_out = output.try_clone().context("console: duplicating stdout")?;
        let vfs = &kernel.vfs;
        let fsc = FsContext {
            root: vfs.root(),
            cwd: vfs.root(),
            umask: 0o022,
        };
        let lookup = |path: &str| {
            vfs.lookup(&fsc, &vfs.root(), path.as_bytes(), true)
                .map_err(|e| anyhow::anyhow!("console: {path}: {e}"))
        };
        let pts = lookup("/dev/pts")?;
        let devpts = pts
            .inode
            .as_any()
            .downcast_ref::<DevPts>()
            .context("console: /dev/pts is not a devpts")?;
        let master = devpts
            .new_console(kernel, uid)
            .map_err(|e| anyhow::anyhow!("console: allocating a pty: {e}"))?;
        let pty = master.pty().clone();
        let slave = lookup(&format!("/dev/pts/{}", pty.index()))?;
        let flags = (libc::O_RDWR | libc::O_NOCTTY) as u32;
        let ops = slave
            .inode
            .clone()
            .open(flags)
            .map_err(|e| anyhow::anyhow!("console: opening /dev/pts/{}: {e}", pty.index()))?;
        let file = File::new(ops, libc::O_RDWR as u32, Some(slave));
        if let Some(ws) = host_winsize(host_in.as_raw_fd()) {
            pty.set_winsize(ws);
        }
        // The guest's line discipline echoes and edits: the host terminal
        // must pass bytes through untouched.
        let mut saved = Vec::new();
        for fd in [host_in.as_raw_fd(), host_out.as_raw_fd()] {
            if let Some(old) = make_raw(fd) {
                saved.push((fd, old));
            }
        }
        let waiter = Waiter::new().context("console: creating a waiter")?;
        pty.queue().add(&waiter);
        let console = Arc::new(Console {
            pty,
            master: Mutex::new(Some(master)),
            host_in,
            host_out,
            saved,
            waiter,
            out_lock: Mutex::new(()),
            done: AtomicBool::new(false),
        });
        let c2 = console.clone();
        let spawned = std::thread::Builder::new()
            .name("console".into())
            .spawn(move || c2.copy_loop());
        if let Err(e) = spawned {
            console.restore();
            return Err(e).context("console: starting its thread");
        }
        Ok(Some((console, file)))
    }

    /// Makes the pty the controlling terminal of the session `leader`
    /// leads (pid `sid`), its process group in the foreground.
    pub fn make_controlling(&self, sid: i32, leader: &Arc<ThreadGroup>) {
        self.pty.set_controlling(sid, leader, sid);
    }

    /// The sandbox got SIGWINCH: look at the host terminal's size now.
    pub fn host_resized(&self) {
        self.waiter.notify();
    }

    /// The host terminal hung up (its other end closed): the guest session
    /// gets its SIGHUP from the console's hang-up.
    pub fn host_hung_up(&self) -> bool {
        super::host::poll_now(self.host_in.as_raw_fd(), 0) & libc::POLLHUP != 0
    }

    /// Waits (at most `timeout`) until the output queued so far reached
    /// the host, stops copying and restores the host terminal's modes.
    pub fn finish(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.done.load(Ordering::SeqCst) && Instant::now() < deadline {
            let drained = match self.out_lock.try_lock() {
                Ok(_g) => !self.pty.has_output(),
                Err(_) => false,
            };
            if drained {
                break;
            }
            self.waiter.notify();
            std::thread::sleep(Duration::from_millis(2));
        }
        self.done.store(true, Ordering::SeqCst);
        self.waiter.notify();
        self.restore();
    }

    fn restore(&self) {
        for (fd, old) in self.saved.iter().rev() {
            // SAFETY: tcsetattr on our own fd from a live termios.
            unsafe {
                libc::tcsetattr(*fd, libc::TCSANOW, old);
            }
        }
    }

    /// The host side is gone: hang the guest side up.
    fn hang_up(&self) {
        self.done.store(true, Ordering::SeqCst);
        let master = lock(&self.master).take();
        drop(master);
    }

    /// Writes all of `buf` to the host terminal; false if it is gone.
    fn write_host(&self, mut buf: &[u8]) -> bool {
        let fd = self.host_out.as_raw_fd();
        while !buf.is_empty() {
            // SAFETY: writing from a live buffer of buf.len() bytes.
            let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
            if n > 0 {
                buf = &buf[n as usize..];
                continue;
            }
            let e = Errno::last();
            if e == Errno::EAGAIN {
                // A non-blocking host terminal: wait until it takes more.
                let mut p = libc::pollfd {
                    fd,
                    events: libc::POLLOUT,
                    revents: 0,
                };
                // SAFETY: p is one live pollfd.
                unsafe { libc::poll(&mut p, 1, WINSIZE_POLL.as_millis() as i32) };
                if self.done.load(Ordering::SeqCst) {
                    return false;
                }
            } else if e != Errno::EINTR {
                tracing::debug!("console: writing to the host terminal: {e}");
                return false;
            }
        }
        true
    }

    /// Guest output to the host until none is queued; false if the host
    /// is gone.
    fn pump_output(&self) -> bool {
        let _g = lock(&self.out_lock);
        let mut buf = [0u8; CHUNK];
        loop {
            let n = self.pty.take_output(&mut buf);
            if n == 0 {
                return true;
            }
            if !self.write_host(&buf[..n]) {
                return false;
            }
        }
    }

    fn copy_loop(self: Arc<Self>) {
        let in_fd = self.host_in.as_raw_fd();
        let mut input: Vec<u8> = Vec::new();
        let mut last_ws = host_winsize(in_fd);
        loop {
            if self.done.load(Ordering::SeqCst) {
                break;
            }
            if !self.pump_output() {
                self.hang_up();
                break;
            }
            if !input.is_empty() {
                let n = self.pty.put_input(&input);
                input.drain(..n);
            }
            let ws = host_winsize(in_fd);
            if ws.is_some() && ws != last_ws {
                last_ws = ws;
                if let Some(ws) = ws {
                    self.pty.set_winsize(ws);
                }
            }
            // Read the host only once the guest took the last input.
            let mut pfd = [libc::pollfd {
                fd: if input.is_empty() { in_fd } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            }];
            self.waiter
                .sleep(&mut pfd, Some(Instant::now() + WINSIZE_POLL));
            if pfd[0].revents == 0 {
                continue;
            }
            let mut buf = [0u8; CHUNK];
            // SAFETY: reading into a live buffer of CHUNK bytes.
            let n = unsafe { libc::read(in_fd, buf.as_mut_ptr().cast(), CHUNK) };
            if n > 0 {
                input.extend_from_slice(&buf[..n as usize]);
                continue;
            }
            let e = if n == 0 { Errno::EIO } else { Errno::last() };
            if e == Errno::EINTR || e == Errno::EAGAIN {
                continue;
            }
            tracing::debug!("console: the host terminal is gone ({e}): hanging up");
            // What the guest wrote before still goes out if it can.
            self.pump_output();
            self.hang_up();
            break;
        }
        // The sleeping end is gone; the queue must not keep waking it.
        self.pty.queue().remove(&self.waiter);
    }
}
