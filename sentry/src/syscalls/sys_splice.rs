//! Moving data between files without (guest) user buffers: splice, tee,
//! vmsplice, copy_file_range, and fallocate.
//!
//! Linux moves pipe pages around; we stage the bytes through a sentry
//! buffer (read from one File, write to the other), keeping Linux's
//! argument checks, errnos and blocking rules: splice needs a pipe on at
//! least one side, offsets are refused (ESPIPE) for pipe sides, waits for
//! pipe data or room honour SPLICE_F_NONBLOCK and the pipe's O_NONBLOCK,
//! and writing to a pipe without readers is EPIPE with SIGPIPE. Transfers
//! into a pipe are sized to the room it has, so nothing read is lost.

use super::sys_file::{get_file, iovecs, sigpipe, MAX_RW};
use super::Args;
use crate::errno::{Errno, KResult};
use crate::fs::pipe::{pipe_of, Pipe};
use crate::kernel::task::CurrentTask;
use crate::vfs::file::{POLLERR, POLLHUP};
use crate::vfs::File;
use std::sync::Arc;

const SPLICE_F_NONBLOCK: u32 = 2;
const SPLICE_F_ALL: u32 = 0xf; // MOVE | NONBLOCK | MORE | GIFT
const UIO_MAXIOV: u64 = 1024;
/// Staging buffer for copy_file_range's loop.
const CHUNK: usize = 1 << 20;

/// What one side of a splice is.
enum Kind {
    /// One of our pipes.
    Pipe(Arc<Pipe>),
    /// A pipe we do not own (a host pipe passed in as stdio): a pipe for
    /// the rules, plain read/write for the data.
    HostFifo,
    File,
}

impl Kind {
    fn of(f: &File) -> Kind {
        if let Some(p) = pipe_of(&*f.ops) {
            return Kind::Pipe(p.clone());
        }
        match f.ops.stat() {
            Ok(st) if st.file_type() == libc::S_IFIFO => Kind::HostFifo,
            _ => Kind::File,
        }
    }

    fn is_pipe(&self) -> bool {
        !matches!(self, Kind::File)
    }

    fn pipe(&self) -> Option<&Arc<Pipe>> {
        match self {
            Kind::Pipe(p) => Some(p),
            _ => None,
        }
    }
}

/// A descriptor for data transfer: O_PATH ones are EBADF (Linux's fdget).
fn io_file(t: &CurrentTask, fd: u64) -> KResult<Arc<File>> {
    let f = get_file(t, fd)?;
    if f.flags() & libc::O_PATH as u32 != 0 {
        return Err(Errno::EBADF);
    }
    Ok(f)
}

fn read_offset(t: &CurrentTask, addr: u64) -> KResult<Option<i64>> {
    if addr == 0 {
        return Ok(None);
    }
    Ok(Some(t.mm.read_u64(addr)? as i64))
}

/// Waits until pipe `p` (read through `f`) has data: its length, or 0 at
/// EOF (empty, no writers).
fn wait_data(t: &CurrentTask, p: &Pipe, f: &File, nonblock: bool) -> KResult<usize> {
    let ready = || {
        let n = p.len();
        if n > 0 {
            return Some(Ok(n));
        }
        if f.ops.readiness(0) & POLLHUP != 0 {
            return Some(Ok(0));
        }
        if nonblock {
            return Some(Err(Errno::EAGAIN));
        }
        None
    };
    t.task.block_until(&[p.queue()], &[], None, ready)
}

/// Waits until pipe `p` (written through `f`) has room: how much. EPIPE
/// (with SIGPIPE) once it has no readers.
fn wait_space(t: &CurrentTask, p: &Pipe, f: &File, nonblock: bool) -> KResult<usize> {
    let ready = || {
        if f.ops.readiness(0) & POLLERR != 0 {
            return Some(Err(Errno::EPIPE));
        }
        let free = p.capacity().saturating_sub(p.len());
        if free > 0 {
            return Some(Ok(free));
        }
        if nonblock {
            return Some(Err(Errno::EAGAIN));
        }
        None
    };
    let r = t.task.block_until(&[p.queue()], &[], None, ready);
    sigpipe(t, r)
}

/// Reads at `off` (pread) or at and advancing the file position.
fn read_from(t: &CurrentTask, f: &File, buf: &mut [u8], off: Option<i64>) -> KResult<usize> {
    match off {
        Some(o) => f.pread(&t.task, buf, o as u64),
        None => f.read(&t.task, buf),
    }
}

fn write_to(t: &CurrentTask, f: &File, buf: &[u8], off: Option<i64>) -> KResult<usize> {
    let r = match off {
        Some(o) => f.pwrite(&t.task, buf, o as u64),
        None => f.write(&t.task, buf),
    };
    sigpipe(t, r)
}

pub fn splice(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let (off_in_addr, off_out_addr) = (a[1], a[3]);
    let len = a[4] as usize;
    let mut flags = a[5] as u32;
    if len == 0 {
        return Ok(0);
    }
    if flags & !SPLICE_F_ALL != 0 {
        return Err(Errno::EINVAL);
    }
    let inp = io_file(t, a[0])?;
    let out = io_file(t, a[2])?;
    let (ik, ok) = (Kind::of(&inp), Kind::of(&out));
    if ik.is_pipe() && off_in_addr != 0 {
        return Err(Errno::ESPIPE);
    }
    if ok.is_pipe() && off_out_addr != 0 {
        return Err(Errno::ESPIPE);
    }
    let off_out = read_offset(t, off_out_addr)?;
    let off_in = read_offset(t, off_in_addr)?;
    if !inp.readable() || !out.writable() {
        return Err(Errno::EBADF);
    }
    let len = len.min(MAX_RW);
    let n = match (ik.is_pipe(), ok.is_pipe()) {
        (true, true) => {
            if let (Some(ip), Some(op)) = (ik.pipe(), ok.pipe()) {
                if Arc::ptr_eq(ip, op) {
                    return Err(Errno::EINVAL);
                }
            }
            if (inp.flags() | out.flags()) & libc::O_NONBLOCK as u32 != 0 {
                flags |= SPLICE_F_NONBLOCK;
            }
            transfer(t, &inp, &ik, None, &out, &ok, None, len, flags)?
        }
        (true, false) => {
            if off_out.is_some() && !out.ops.seekable() {
                return Err(Errno::EINVAL);
            }
            if out.flags() & libc::O_APPEND as u32 != 0 {
                return Err(Errno::EINVAL);
            }
            if off_out.is_some_and(|o| o < 0) {
                return Err(Errno::EINVAL);
            }
            if inp.nonblocking() {
                flags |= SPLICE_F_NONBLOCK;
            }
            let n = transfer(t, &inp, &ik, None, &out, &ok, off_out, len, flags)?;
            if let Some(o) = off_out {
                t.mm.write_u64(off_out_addr, (o + n as i64) as u64)?;
            }
            n
        }
        (false, true) => {
            if off_in.is_some() && !inp.ops.seekable() {
                return Err(Errno::EINVAL);
            }
            if off_in.is_some_and(|o| o < 0) {
                return Err(Errno::EINVAL);
            }
            if out.nonblocking() {
                flags |= SPLICE_F_NONBLOCK;
            }
            let n = transfer(t, &inp, &ik, off_in, &out, &ok, None, len, flags)?;
            if let Some(o) = off_in {
                t.mm.write_u64(off_in_addr, (o + n as i64) as u64)?;
            }
            n
        }
        (false, false) => return Err(Errno::EINVAL),
    };
    Ok(n as u64)
}

/// One splice: up to `len` bytes from `inp` to `out`, waiting for pipe
/// data first and pipe room second, as Linux does.
#[allow(clippy::too_many_arguments)]
fn transfer(
    t: &CurrentTask,
    inp: &File,
    ik: &Kind,
    off_in: Option<i64>,
    out: &File,
    ok: &Kind,
    off_out: Option<i64>,
    len: usize,
    flags: u32,
) -> KResult<usize> {
    let nonblock = flags & SPLICE_F_NONBLOCK != 0;
    let mut cap = len;
    if let Some(ip) = ik.pipe() {
        let avail = wait_data(t, ip, inp, nonblock)?;
        if avail == 0 {
            return Ok(0);
        }
        cap = cap.min(avail);
    }
    if let Some(op) = ok.pipe() {
        cap = cap.min(wait_space(t, op, out, nonblock)?);
    } else if matches!(ok, Kind::HostFifo) {
        cap = cap.min(crate::fs::pipe::DEFAULT_PIPE_SIZE);
    }
    let mut buf = vec![0u8; cap];
    let n = if ik.is_pipe() || off_in.is_some() || !inp.ops.seekable() {
        read_from(t, inp, &mut buf, off_in)?
    } else {
        // A file read at its position: advance it by what was written, so
        // a short write into the pipe loses nothing.
        let pos = *crate::kernel::task::lock(&inp.pos);
        let n = inp.pread(&t.task, &mut buf, pos)?;
        let w = write_to(t, out, &buf[..n], off_out)?;
        *crate::kernel::task::lock(&inp.pos) = pos + w as u64;
        return Ok(w);
    };
    if n == 0 {
        return Ok(0);
    }
    write_to(t, out, &buf[..n], off_out)
}

pub fn tee(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let len = a[2] as usize;
    let mut flags = a[3] as u32;
    if flags & !SPLICE_F_ALL != 0 {
        return Err(Errno::EINVAL);
    }
    if len == 0 {
        return Ok(0);
    }
    let inp = io_file(t, a[0])?;
    let out = io_file(t, a[1])?;
    if !inp.readable() || !out.writable() {
        return Err(Errno::EBADF);
    }
    let (ip, op) = match (pipe_of(&*inp.ops), pipe_of(&*out.ops)) {
        (Some(i), Some(o)) if !Arc::ptr_eq(i, o) => (i.clone(), o.clone()),
        _ => return Err(Errno::EINVAL),
    };
    if (inp.flags() | out.flags()) & libc::O_NONBLOCK as u32 != 0 {
        flags |= SPLICE_F_NONBLOCK;
    }
    let nonblock = flags & SPLICE_F_NONBLOCK != 0;
    let avail = wait_data(t, &ip, &inp, nonblock)?;
    if avail == 0 {
        return Ok(0);
    }
    let room = wait_space(t, &op, &out, nonblock)?;
    let mut buf = vec![0u8; len.min(avail).min(room).min(MAX_RW)];
    let n = ip.peek(&mut buf);
    Ok(write_to(t, &out, &buf[..n], None)? as u64)
}

/// vmsplice(2): user memory into a pipe (write end) or out of one (read
/// end), copying.
pub fn vmsplice(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let flags = a[3] as u32;
    if flags & !SPLICE_F_ALL != 0 {
        return Err(Errno::EINVAL);
    }
    let f = io_file(t, a[0])?;
    if !f.readable() && !f.writable() {
        return Err(Errno::EBADF);
    }
    if a[2] > UIO_MAXIOV {
        return Err(Errno::EINVAL);
    }
    let iov = iovecs(t, a[1], a[2])?;
    let total: usize = iov.iter().map(|v| v.1).sum();
    if total == 0 {
        return Ok(0);
    }
    let p = pipe_of(&*f.ops).ok_or(Errno::EBADF)?.clone();
    let nonblock = flags & SPLICE_F_NONBLOCK != 0;
    if f.writable() {
        let room = wait_space(t, &p, &f, nonblock)?;
        let mut buf = Vec::with_capacity(total.min(room));
        for &(base, len) in &iov {
            let n = len.min(room - buf.len());
            let start = buf.len();
            buf.resize(start + n, 0);
            t.mm.copy_in(base, &mut buf[start..])?;
            if buf.len() == room {
                break;
            }
        }
        Ok(write_to(t, &f, &buf, None)? as u64)
    } else {
        let avail = wait_data(t, &p, &f, nonblock)?;
        if avail == 0 {
            return Ok(0);
        }
        let mut buf = vec![0u8; total.min(avail).min(MAX_RW)];
        let got = f.read(&t.task, &mut buf)?;
        super::sys_file::scatter(t, &iov, &buf[..got])?;
        Ok(got as u64)
    }
}

/// The current file position (SEEK_CUR), wherever it lives.
fn position(f: &File) -> KResult<i64> {
    f.seek(0, libc::SEEK_CUR).map(|p| p as i64)
}

pub fn copy_file_range(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let (off_in_addr, off_out_addr) = (a[1], a[3]);
    let len = a[4] as usize;
    let inp = io_file(t, a[0])?;
    let out = io_file(t, a[2])?;
    let off_in = read_offset(t, off_in_addr)?;
    let off_out = read_offset(t, off_out_addr)?;
    if a[5] as u32 != 0 {
        return Err(Errno::EINVAL);
    }
    // generic_file_rw_checks: directories, then non-regular files, then
    // the access modes.
    let (si, so) = (inp.ops.stat()?, out.ops.stat()?);
    if si.is_dir() || so.is_dir() {
        return Err(Errno::EISDIR);
    }
    if si.file_type() != libc::S_IFREG || so.file_type() != libc::S_IFREG {
        return Err(Errno::EINVAL);
    }
    if !inp.readable() || !out.writable() || out.flags() & libc::O_APPEND as u32 != 0 {
        return Err(Errno::EBADF);
    }
    let pos_in = match off_in {
        Some(o) => o,
        None => position(&inp)?,
    };
    let pos_out = match off_out {
        Some(o) => o,
        None => position(&out)?,
    };
    let len = len.min(i64::MAX as usize) as i64;
    if pos_in.checked_add(len).is_none() || pos_out.checked_add(len).is_none() {
        return Err(Errno::EOVERFLOW);
    }
    // Shorten to the input's EOF.
    let size_in = si.size as i64;
    let count = if pos_in >= size_in {
        0
    } else {
        len.min(size_in - pos_in)
    };
    let same = si.dev == so.dev && si.ino == so.ino;
    if same && pos_out + count > pos_in && pos_out < pos_in + count {
        return Err(Errno::EINVAL);
    }
    if pos_in < 0 || pos_out < 0 {
        return Err(Errno::EINVAL);
    }
    if count == 0 {
        return Ok(0);
    }
    let count = (count as usize).min(MAX_RW);
    let mut buf = vec![0u8; count.min(CHUNK)];
    let mut done = 0usize;
    while done < count {
        let want = (count - done).min(buf.len());
        let n = match read_from(t, &inp, &mut buf[..want], off_in.map(|o| o + done as i64)) {
            Ok(n) => n,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        };
        if n == 0 {
            break;
        }
        let w = match write_to(t, &out, &buf[..n], off_out.map(|o| o + done as i64)) {
            Ok(w) => w,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        };
        done += w;
        if w < n {
            if off_in.is_none() {
                // Give back what was read but not written.
                let _ = inp.seek(-((n - w) as i64), libc::SEEK_CUR);
            }
            break;
        }
        if n < want {
            break;
        }
    }
    if let Some(o) = off_in {
        t.mm.write_u64(off_in_addr, (o + done as i64) as u64)?;
    }
    if let Some(o) = off_out {
        t.mm.write_u64(off_out_addr, (o + done as i64) as u64)?;
    }
    Ok(done as u64)
}

/// fallocate(2): mode 0 (and FALLOC_FL_KEEP_SIZE) reserve space, which for
/// us only means growing the file (a hole reads as zeros, as allocated
/// space does); hole punching, zeroing, collapsing, inserting and
/// unsharing ranges are EOPNOTSUPP, as on filesystems that lack them.
pub fn fallocate(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    const KEEP_SIZE: u32 = 0x01;
    const PUNCH_HOLE: u32 = 0x02;
    const COLLAPSE_RANGE: u32 = 0x08;
    const ZERO_RANGE: u32 = 0x10;
    const INSERT_RANGE: u32 = 0x20;
    const UNSHARE_RANGE: u32 = 0x40;
    const SUPPORTED: u32 =
        KEEP_SIZE | PUNCH_HOLE | COLLAPSE_RANGE | ZERO_RANGE | INSERT_RANGE | UNSHARE_RANGE;
    let f = io_file(t, a[0])?;
    let mode = a[1] as u32;
    let (offset, len) = (a[2] as i64, a[3] as i64);
    // vfs_fallocate's checks, in order.
    if offset < 0 || len <= 0 {
        return Err(Errno::EINVAL);
    }
    if mode & !SUPPORTED != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    if mode & (PUNCH_HOLE | ZERO_RANGE) == PUNCH_HOLE | ZERO_RANGE {
        return Err(Errno::EOPNOTSUPP);
    }
    if mode & PUNCH_HOLE != 0 && mode & KEEP_SIZE == 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    if mode & COLLAPSE_RANGE != 0 && mode & !COLLAPSE_RANGE != 0 {
        return Err(Errno::EINVAL);
    }
    if mode & INSERT_RANGE != 0 && mode & !INSERT_RANGE != 0 {
        return Err(Errno::EINVAL);
    }
    if mode & UNSHARE_RANGE != 0 && mode & !(UNSHARE_RANGE | KEEP_SIZE) != 0 {
        return Err(Errno::EINVAL);
    }
    if !f.writable() {
        return Err(Errno::EBADF);
    }
    let st = f.ops.stat()?;
    match st.file_type() {
        libc::S_IFIFO => return Err(Errno::ESPIPE),
        libc::S_IFDIR => return Err(Errno::EISDIR),
        libc::S_IFREG => {}
        _ => return Err(Errno::ENODEV),
    }
    let end = offset.checked_add(len).ok_or(Errno::EFBIG)?;
    if mode & !KEEP_SIZE != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    if mode & KEEP_SIZE == 0 && end as u64 > st.size {
        f.ops.truncate(end as u64)?;
    }
    Ok(0)
}
