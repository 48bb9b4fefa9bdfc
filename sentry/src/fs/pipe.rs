//! Pipes: a bounded in-sentry byte queue with Linux pipe(7) semantics —
//! 64 KiB default capacity, atomic writes up to PIPE_BUF, EOF once every
//! writer is gone, EPIPE once every reader is gone, O_NONBLOCK, blocking
//! that signals interrupt, poll readiness, FIONREAD and F_GET/SETPIPE_SZ.
//!
//! Each end is its own FileOps; the reader and writer counts follow the
//! ends' lifetimes (Drop), so closing the last fd (in any process) of an
//! end is what makes the other side see EOF or EPIPE.

use super::{lock, new_anon_dev, next_ino};
use crate::errno::{Errno, KResult};
use crate::kernel::task::Task;
use crate::kernel::waiter::WaitQueue;
use crate::vfs::file::{POLLERR, POLLHUP, POLLIN, POLLOUT, POLLRDNORM, POLLWRNORM};
use crate::vfs::{File, FileOps, Stat, Timespec};
use std::any::Any;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};

/// Writes of at most this many bytes are atomic.
pub const PIPE_BUF: usize = 4096;
/// Default capacity, as Linux (16 pages).
pub const DEFAULT_PIPE_SIZE: usize = 65536;
/// /proc/sys/fs/pipe-max-size default: the most an unprivileged
/// F_SETPIPE_SZ may ask for.
pub const PIPE_MAX_SIZE: usize = 1 << 20;
const PAGE: usize = 4096;

struct State {
    buf: VecDeque<u8>,
    capacity: usize,
    readers: usize,
    writers: usize,
    /// Opens ever made of each end (a FIFO reader waits for a writer to
    /// *have opened*, even if it already closed again).
    reader_opens: u64,
    writer_opens: u64,
    atime: Timespec,
    mtime: Timespec,
    ctime: Timespec,
}

impl State {
    fn free(&self) -> usize {
        self.capacity.saturating_sub(self.buf.len())
    }
}

/// The shared part of a pipe.
pub struct Pipe {
    state: Mutex<State>,
    /// Notified on every change: data in or out, an end closed, resized.
    queue: WaitQueue,
    ino: u64,
    uid: u32,
    gid: u32,
}

/// All pipes live on one "pipefs" with one anonymous device number.
fn pipefs_dev() -> u64 {
    static DEV: OnceLock<u64> = OnceLock::new();
    *DEV.get_or_init(new_anon_dev)
}

/// pipe(2): (read end, write end).
pub fn new_pipe() -> (Arc<dyn FileOps>, Arc<dyn FileOps>) {
    new_pipe_owned(0, 0)
}

/// pipe(2) by a task with fsuid `uid` and fsgid `gid` (what fstat shows).
pub fn new_pipe_owned(uid: u32, gid: u32) -> (Arc<dyn FileOps>, Arc<dyn FileOps>) {
    let p = Pipe::new(uid, gid);
    (p.open_reader(), p.open_writer())
}

/// The pipe behind either end, for fcntl(F_GETPIPE_SZ/F_SETPIPE_SZ)
/// (EBADF for anything else is the caller's).
pub fn pipe_of(ops: &dyn FileOps) -> Option<&Arc<Pipe>> {
    let any = ops.as_any();
    if let Some(r) = any.downcast_ref::<PipeReader>() {
        return Some(&r.pipe);
    }
    any.downcast_ref::<PipeWriter>().map(|w| &w.pipe)
}

impl Pipe {
    pub fn new(uid: u32, gid: u32) -> Arc<Pipe> {
        let now = Timespec::now();
        Arc::new(Pipe {
            state: Mutex::new(State {
                buf: VecDeque::new(),
                capacity: DEFAULT_PIPE_SIZE,
                readers: 0,
                reader_opens: 0,
                writer_opens: 0,
                writers: 0,
                atime: now,
                mtime: now,
                ctime: now,
            }),
            queue: WaitQueue::new(),
            ino: next_ino(),
            uid,
            gid,
        })
    }

    /// A new read end (counts as a reader until dropped). For pipe(2) and,
    /// later, FIFO opens.
    pub fn open_reader(self: &Arc<Self>) -> Arc<dyn FileOps> {
        {
            let mut st = lock(&self.state);
            st.readers += 1;
            st.reader_opens += 1;
        }
        self.queue.notify_all();
        Arc::new(PipeReader { pipe: self.clone() })
    }

    /// (reader opens, writer opens) ever made.
    pub fn opens(&self) -> (u64, u64) {
        let st = lock(&self.state);
        (st.reader_opens, st.writer_opens)
    }

    /// (readers, writers) currently open.
    pub fn ends(&self) -> (usize, usize) {
        let st = lock(&self.state);
        (st.readers, st.writers)
    }

    /// A new write end (counts as a writer until dropped).
    pub fn open_writer(self: &Arc<Self>) -> Arc<dyn FileOps> {
        {
            let mut st = lock(&self.state);
            st.writers += 1;
            st.writer_opens += 1;
        }
        self.queue.notify_all();
        Arc::new(PipeWriter { pipe: self.clone() })
    }

    /// F_GETPIPE_SZ.
    pub fn capacity(&self) -> usize {
        lock(&self.state).capacity
    }

    /// F_SETPIPE_SZ: rounds `size` up to a power-of-two number of pages
    /// (at least one); EPERM above PIPE_MAX_SIZE unless `privileged`
    /// (CAP_SYS_RESOURCE), EINVAL above 2^31, EBUSY if the data already
    /// queued would not fit. Returns the new capacity.
    pub fn set_capacity(&self, size: u64, privileged: bool) -> KResult<usize> {
        if size > 1 << 31 {
            return Err(Errno::EINVAL);
        }
        let size = (size as usize).max(PAGE).next_power_of_two();
        if size > PIPE_MAX_SIZE && !privileged {
            return Err(Errno::EPERM);
        }
        let mut s = lock(&self.state);
        if s.buf.len() > size {
            return Err(Errno::EBUSY);
        }
        s.capacity = size;
        drop(s);
        self.queue.notify_all();
        Ok(size)
    }

    /// Bytes queued (FIONREAD).
    pub fn len(&self) -> usize {
        lock(&self.state).buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies up to `buf.len()` queued bytes into `buf` without consuming
    /// them (tee(2)); returns how many.
    pub fn peek(&self, buf: &mut [u8]) -> usize {
        let s = lock(&self.state);
        let n = buf.len().min(s.buf.len());
        for (d, b) in buf[..n].iter_mut().zip(s.buf.iter()) {
            *d = *b;
        }
        n
    }

    pub fn queue(&self) -> &WaitQueue {
        &self.queue
    }

    fn stat(&self) -> Stat {
        let s = lock(&self.state);
        Stat {
            dev: pipefs_dev(),
            ino: self.ino,
            mode: libc::S_IFIFO | 0o600,
            nlink: 1,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            size: 0,
            blksize: PAGE as u64,
            blocks: 0,
            atime: s.atime,
            mtime: s.mtime,
            ctime: s.ctime,
        }
    }

    /// One non-blocking read attempt: Some(result) when the read is done
    /// (data, or EOF with no writers), None when it would have to wait.
    fn try_read(&self, buf: &mut [u8]) -> Option<KResult<usize>> {
        let mut s = lock(&self.state);
        if s.buf.is_empty() {
            return if s.writers == 0 { Some(Ok(0)) } else { None };
        }
        let n = buf.len().min(s.buf.len());
        for (d, b) in buf[..n].iter_mut().zip(s.buf.drain(..n)) {
            *d = b;
        }
        s.atime = Timespec::now();
        drop(s);
        self.queue.notify_all();
        Some(Ok(n))
    }

    /// One non-blocking write attempt, continuing after `*written` bytes
    /// of `buf`. Some(result) when the write is finished (all written, or
    /// no readers), None when it must wait for room.
    fn try_write(&self, buf: &[u8], written: &mut usize) -> Option<KResult<usize>> {
        let mut s = lock(&self.state);
        if s.readers == 0 {
            return Some(if *written > 0 {
                Ok(*written)
            } else {
                Err(Errno::EPIPE)
            });
        }
        let rest = &buf[*written..];
        let free = s.free();
        // Up to PIPE_BUF bytes go in at once or not at all; bigger writes
        // may be split anywhere.
        let n = if buf.len() <= PIPE_BUF {
            if free >= rest.len() {
                rest.len()
            } else {
                0
            }
        } else {
            free.min(rest.len())
        };
        if n > 0 {
            s.buf.extend(&rest[..n]);
            *written += n;
            let now = Timespec::now();
            s.mtime = now;
            s.ctime = now;
            drop(s);
            self.queue.notify_all();
        }
        if *written == buf.len() {
            Some(Ok(*written))
        } else {
            None
        }
    }

    fn fionread(&self, t: &Task, arg: u64) -> KResult<u64> {
        let n = self.len().min(i32::MAX as usize) as u32;
        t.mm().write_u32(arg, n)?;
        Ok(0)
    }
}

/// The read end.
pub struct PipeReader {
    pipe: Arc<Pipe>,
}

/// The write end.
pub struct PipeWriter {
    pipe: Arc<Pipe>,
}

impl PipeReader {
    pub fn pipe(&self) -> &Arc<Pipe> {
        &self.pipe
    }
}

impl PipeWriter {
    pub fn pipe(&self) -> &Arc<Pipe> {
        &self.pipe
    }
}

impl Drop for PipeReader {
    fn drop(&mut self) {
        lock(&self.pipe.state).readers -= 1;
        self.pipe.queue.notify_all();
    }
}

impl Drop for PipeWriter {
    fn drop(&mut self) {
        lock(&self.pipe.state).writers -= 1;
        self.pipe.queue.notify_all();
    }
}

impl FileOps for PipeReader {
    fn read(&self, t: &Task, f: &File, buf: &mut [u8], _off: u64) -> KResult<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if let Some(r) = self.pipe.try_read(buf) {
            return r;
        }
        if f.nonblocking() {
            return Err(Errno::EAGAIN);
        }
        t.block_until(&[&self.pipe.queue], &[], None, || self.pipe.try_read(buf))
    }

    fn stat(&self) -> KResult<Stat> {
        Ok(self.pipe.stat())
    }

    fn ioctl(&self, t: &Task, _f: &File, cmd: u32, arg: u64) -> KResult<u64> {
        if libc::c_ulong::from(cmd) == libc::FIONREAD {
            return self.pipe.fionread(t, arg);
        }
        Err(Errno::ENOTTY)
    }

    fn readiness(&self, mask: u32) -> u32 {
        let s = lock(&self.pipe.state);
        let mut r = 0;
        if !s.buf.is_empty() {
            r |= POLLIN | POLLRDNORM;
        }
        r &= mask;
        // Hang-up is reported whether asked for or not, as poll(2) does.
        if s.writers == 0 {
            r |= POLLHUP;
        }
        r
    }

    fn queue(&self) -> Option<&WaitQueue> {
        Some(&self.pipe.queue)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl FileOps for PipeWriter {
    fn write(&self, t: &Task, f: &File, buf: &[u8], _off: u64) -> KResult<usize> {
        // Linux: "Null write succeeds", even without readers.
        if buf.is_empty() {
            return Ok(0);
        }
        let mut written = 0;
        if let Some(r) = self.pipe.try_write(buf, &mut written) {
            return r;
        }
        if f.nonblocking() {
            return if written > 0 {
                Ok(written)
            } else {
                Err(Errno::EAGAIN)
            };
        }
        let r = t.block_until(&[&self.pipe.queue], &[], None, || {
            self.pipe.try_write(buf, &mut written)
        });
        match r {
            // Interrupted after some progress: report the progress.
            Err(e) if e.is_restart() && written > 0 => Ok(written),
            r => r,
        }
    }

    fn stat(&self) -> KResult<Stat> {
        Ok(self.pipe.stat())
    }

    fn ioctl(&self, t: &Task, _f: &File, cmd: u32, arg: u64) -> KResult<u64> {
        if libc::c_ulong::from(cmd) == libc::FIONREAD {
            return self.pipe.fionread(t, arg);
        }
        Err(Errno::ENOTTY)
    }

    fn readiness(&self, mask: u32) -> u32 {
        let s = lock(&self.pipe.state);
        let mut r = 0;
        if s.free() >= PIPE_BUF.min(s.capacity) {
            r |= POLLOUT | POLLWRNORM;
        }
        r &= mask;
        // Error is reported whether asked for or not.
        if s.readers == 0 {
            r |= POLLERR;
        }
        r
    }

    fn queue(&self) -> Option<&WaitQueue> {
        Some(&self.pipe.queue)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: u32 = POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM;

    #[test]
    fn readiness_follows_state() {
        let (r, w) = new_pipe();
        let p = pipe_of(&*r).unwrap().clone();
        assert!(Arc::ptr_eq(&p, pipe_of(&*w).unwrap()));
        assert_eq!(r.readiness(ALL), 0);
        assert_eq!(w.readiness(ALL), POLLOUT | POLLWRNORM);
        let mut n = 0;
        assert_eq!(p.try_write(b"abc", &mut n), Some(Ok(3)));
        assert_eq!(r.readiness(ALL), POLLIN | POLLRDNORM);
        assert_eq!(r.readiness(POLLOUT), 0);
        assert_eq!(p.len(), 3);
        // Fill until less than PIPE_BUF is free: not writable.
        let big = vec![7u8; DEFAULT_PIPE_SIZE];
        let mut n = 0;
        assert_eq!(p.try_write(&big, &mut n), None);
        assert_eq!(n, DEFAULT_PIPE_SIZE - 3);
        assert_eq!(w.readiness(ALL), 0);
        let mut buf = vec![0u8; PIPE_BUF];
        assert_eq!(p.try_read(&mut buf), Some(Ok(PIPE_BUF)));
        assert_eq!(&buf[..3], b"abc");
        assert_eq!(w.readiness(ALL), POLLOUT | POLLWRNORM);
        drop(w);
        assert_eq!(r.readiness(ALL), POLLIN | POLLRDNORM | POLLHUP);
        assert_eq!(r.readiness(0), POLLHUP);
        // Drain, then EOF.
        let mut sink = vec![0u8; DEFAULT_PIPE_SIZE];
        assert_eq!(
            p.try_read(&mut sink),
            Some(Ok(DEFAULT_PIPE_SIZE - PIPE_BUF))
        );
        assert_eq!(p.try_read(&mut sink), Some(Ok(0)));
        assert_eq!(r.readiness(ALL), POLLHUP);
    }

    #[test]
    fn peek_does_not_consume() {
        let (r, _w) = new_pipe();
        let p = pipe_of(&*r).unwrap().clone();
        let mut n = 0;
        assert_eq!(p.try_write(b"hello", &mut n), Some(Ok(5)));
        let mut b = [0u8; 3];
        assert_eq!(p.peek(&mut b), 3);
        assert_eq!(&b, b"hel");
        let mut all = [0u8; 10];
        assert_eq!(p.peek(&mut all), 5);
        assert_eq!(p.try_read(&mut all), Some(Ok(5)));
        assert_eq!(&all[..5], b"hello");
        assert_eq!(p.peek(&mut all), 0);
    }

    #[test]
    fn writer_sees_closed_reader() {
        let (r, w) = new_pipe();
        let p = pipe_of(&*w).unwrap().clone();
        drop(r);
        assert_eq!(w.readiness(ALL), POLLOUT | POLLWRNORM | POLLERR);
        let mut n = 0;
        assert_eq!(p.try_write(b"x", &mut n), Some(Err(Errno::EPIPE)));
    }

    #[test]
    fn atomic_small_writes() {
        let (_r, w) = new_pipe();
        let p = pipe_of(&*w).unwrap().clone();
        let mut n = 0;
        let fill = vec![0u8; DEFAULT_PIPE_SIZE - 100];
        assert_eq!(p.try_write(&fill, &mut n), Some(Ok(fill.len())));
        // 200 <= PIPE_BUF does not fit: nothing is written.
        let mut n = 0;
        assert_eq!(p.try_write(&[1u8; 200], &mut n), None);
        assert_eq!(n, 0);
        // 100 fits exactly.
        assert_eq!(p.try_write(&[1u8; 100], &mut n), Some(Ok(100)));
        assert_eq!(p.len(), DEFAULT_PIPE_SIZE);
    }

    #[test]
    fn stat_and_size() {
        let (r, w) = new_pipe_owned(5, 6);
        let (sr, sw) = (r.stat().unwrap(), w.stat().unwrap());
        assert_eq!(sr.mode, libc::S_IFIFO | 0o600);
        assert_eq!(sr.ino, sw.ino);
        assert_eq!((sr.uid, sr.gid), (5, 6));
        let (r2, _w2) = new_pipe();
        assert_ne!(r2.stat().unwrap().ino, sr.ino);
        let p = pipe_of(&*r).unwrap();
        assert_eq!(p.capacity(), DEFAULT_PIPE_SIZE);
        assert_eq!(p.set_capacity(0, false), Ok(PAGE));
        assert_eq!(p.set_capacity(5000, false), Ok(8192));
        assert_eq!(p.set_capacity(2 << 20, false), Err(Errno::EPERM));
        assert_eq!(p.set_capacity(2 << 20, true), Ok(2 << 20));
        assert_eq!(p.set_capacity(u64::MAX, true), Err(Errno::EINVAL));
        let mut n = 0;
        p.try_write(&[0u8; 5000], &mut n);
        assert_eq!(p.set_capacity(4096, false), Err(Errno::EBUSY));
        assert!(!r.seekable() && !w.seekable());
    }
}

/// Opens a named pipe with Linux's rules: a reader waits for a writer and a
/// writer for a reader, unless O_NONBLOCK (then a writer with no reader gets
/// ENXIO); O_RDWR never waits.
pub fn open_fifo(p: &Arc<Pipe>, flags: u32) -> KResult<Arc<dyn FileOps>> {
    let acc = flags & libc::O_ACCMODE as u32;
    let nonblock = flags & libc::O_NONBLOCK as u32 != 0;
    if acc == libc::O_RDWR as u32 {
        return Ok(Arc::new(FifoBoth {
            r: p.open_reader(),
            w: p.open_writer(),
        }));
    }
    let reading = acc == libc::O_RDONLY as u32;
    if !reading && nonblock && p.ends().0 == 0 {
        return Err(Errno::ENXIO);
    }
    // One snapshot of who is there and how many have come: a partner
    // present now, or one arriving later (even if it leaves again before
    // we look), ends the wait.
    let (r, w, ro, wo) = {
        let st = lock(&p.state);
        (st.readers, st.writers, st.reader_opens, st.writer_opens)
    };
    let (present, other_before) = if reading { (w > 0, wo) } else { (r > 0, ro) };
    let end = if reading {
        p.open_reader()
    } else {
        p.open_writer()
    };
    if nonblock || present {
        return Ok(end);
    }
    let task = crate::kernel::task::current().ok_or(Errno::EIO)?;
    let pipe = p.clone();
    task.block_until(&[&p.queue], &[], None, || {
        let (r, w) = pipe.ends();
        let (ro, wo) = pipe.opens();
        let (now, opens) = if reading { (w, wo) } else { (r, ro) };
        (now > 0 || opens != other_before).then_some(Ok(()))
    })?;
    Ok(end)
}

/// A FIFO opened O_RDWR: both ends in one file.
struct FifoBoth {
    r: Arc<dyn FileOps>,
    w: Arc<dyn FileOps>,
}

impl FileOps for FifoBoth {
    fn read(&self, t: &Task, f: &File, buf: &mut [u8], off: u64) -> KResult<usize> {
        self.r.read(t, f, buf, off)
    }
    fn write(&self, t: &Task, f: &File, buf: &[u8], off: u64) -> KResult<usize> {
        self.w.write(t, f, buf, off)
    }
    fn stat(&self) -> KResult<Stat> {
        self.r.stat()
    }
    fn readiness(&self, mask: u32) -> u32 {
        (self.r.readiness(mask) & (POLLIN | POLLRDNORM | POLLHUP))
            | (self.w.readiness(mask) & (POLLOUT | POLLWRNORM))
    }
    fn queue(&self) -> Option<&WaitQueue> {
        self.r.queue()
    }
    fn ioctl(&self, t: &Task, f: &File, cmd: u32, arg: u64) -> KResult<u64> {
        self.r.ioctl(t, f, cmd, arg)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
