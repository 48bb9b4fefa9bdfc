//! Files backed by a host fd: the sandbox's stdio and the fds the gofer
//! donates. Regular files and block devices use pread/pwrite at the
//! guest's offset; everything else (ttys, pipes, sockets, char devices) is
//! a stream that never blocks the sentry thread: we wait for host readiness
//! through Task::block_until (so signals still interrupt) and only then
//! read or write. Guest pointers never reach the host: ioctl arguments
//! are copied through local buffers.

use super::{lock, stat_from_host};
use crate::errno::{Errno, KResult};
use crate::kernel::task::Task;
use crate::vfs::{DirEntry, File, FileOps, Stat};
use std::any::Any;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};

/// Kernel `struct termios` (TCGETS/TCSETS*): 4 flag words, c_line, 19 cc.
const KERNEL_TERMIOS_SIZE: usize = 36;
/// `struct winsize`: 4 u16.
const WINSIZE_SIZE: usize = 8;
/// Most bytes handed to one write(2) on a stream: a blocking host pipe
/// that polled writable takes at least this much without sleeping, so the
/// sentry thread is never stuck in the host kernel.
const STREAM_CHUNK: usize = 4096;

pub struct HostFile {
    fd: OwnedFd,
    /// Regular file, block device or directory: positioned I/O.
    seekable: bool,
    is_dir: bool,
    /// Stdio handed in from the host: the host file description's offset is
    /// shared with processes outside the sandbox (a shell appending to a log,
    /// `2>&1`), so I/O uses and moves the host offset rather than our own.
    shared_offset: bool,
    /// Serializes readdir's rewind-and-read of the host fd offset.
    dir_lock: Mutex<()>,
}

fn host_fstat(fd: RawFd) -> KResult<libc::stat> {
    // SAFETY: an all-zero stat is a valid value to overwrite.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: st is a live, writable struct stat.
    if unsafe { libc::fstat(fd, &mut st) } < 0 {
        return Err(Errno::last());
    }
    Ok(st)
}

/// Zero-timeout poll: the events among `events` (plus POLLERR/POLLHUP/
/// POLLNVAL, which poll always reports) ready on `fd` now.
pub(crate) fn poll_now(fd: RawFd, events: i16) -> i16 {
    let mut p = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    loop {
        // SAFETY: p is one live pollfd.
        let n = unsafe { libc::poll(&mut p, 1, 0) };
        if n >= 0 {
            return if n == 0 { 0 } else { p.revents };
        }
        if Errno::last() != Errno::EINTR {
            // Treat a failing poll as "ready" so the following read or
            // write reports the real error instead of waiting forever.
            return events;
        }
    }
}

impl HostFile {
    /// Wraps `fd`. Takes its kind from fstat; an fd fstat fails on (it
    /// should not happen) is treated as a stream.
    pub fn new(fd: OwnedFd) -> Arc<HostFile> {
        let fmt = host_fstat(fd.as_raw_fd())
            .map(|s| s.st_mode & libc::S_IFMT)
            .unwrap_or(0);
        Arc::new(HostFile {
            fd,
            seekable: matches!(fmt, libc::S_IFREG | libc::S_IFBLK | libc::S_IFDIR),
            is_dir: fmt == libc::S_IFDIR,
            shared_offset: false,
            dir_lock: Mutex::new(()),
        })
    }

    /// Wraps one of the host's stdio fds (see `shared_offset`).
    pub fn new_stdio(fd: OwnedFd) -> Arc<HostFile> {
        let fmt = host_fstat(fd.as_raw_fd())
            .map(|s| s.st_mode & libc::S_IFMT)
            .unwrap_or(0);
        Arc::new(HostFile {
            fd,
            seekable: false,
            is_dir: false,
            shared_offset: matches!(fmt, libc::S_IFREG | libc::S_IFBLK),
            dir_lock: Mutex::new(()),
        })
    }

    /// read(2)/write(2) at the host offset, for shared-offset files (they
    /// are regular files: the calls do not block).
    fn rw_at_host_offset(&self, buf: *mut u8, len: usize, write: bool) -> KResult<usize> {
        loop {
            // SAFETY: the caller's buffer is live for len bytes (readable
            // for write, writable for read).
            let n = unsafe {
                if write {
                    libc::write(self.raw_fd(), buf as *const libc::c_void, len)
                } else {
                    libc::read(self.raw_fd(), buf as *mut libc::c_void, len)
                }
            };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = Errno::last();
            if e != Errno::EINTR {
                return Err(e);
            }
        }
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn pread(&self, buf: &mut [u8], off: u64) -> KResult<usize> {
        let off = i64::try_from(off).map_err(|_| Errno::EINVAL)?;
        loop {
            // SAFETY: buf is live and writable for buf.len() bytes.
            let n = unsafe { libc::pread(self.raw_fd(), buf.as_mut_ptr().cast(), buf.len(), off) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = Errno::last();
            if e != Errno::EINTR {
                return Err(e);
            }
        }
    }

    fn pwrite(&self, buf: &[u8], off: u64) -> KResult<usize> {
        let off = i64::try_from(off).map_err(|_| Errno::EINVAL)?;
        loop {
            // SAFETY: buf is live and readable for buf.len() bytes.
            let n = unsafe { libc::pwrite(self.raw_fd(), buf.as_ptr().cast(), buf.len(), off) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = Errno::last();
            if e != Errno::EINTR {
                return Err(e);
            }
        }
    }

    /// One stream read that does not block: None if nothing is ready.
    fn try_read(&self, buf: &mut [u8]) -> Option<KResult<usize>> {
        if poll_now(self.raw_fd(), libc::POLLIN) == 0 {
            return None;
        }
        // SAFETY: buf is live and writable for buf.len() bytes.
        let n = unsafe { libc::read(self.raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Some(Ok(n as usize));
        }
        match Errno::last() {
            // Raced with another reader of the host fd, or a host signal:
            // wait again.
            Errno::EAGAIN | Errno::EINTR => None,
            e => Some(Err(e)),
        }
    }

    /// One stream write of at most STREAM_CHUNK bytes that does not block:
    /// None if the fd is not writable now.
    fn try_write_chunk(&self, buf: &[u8]) -> Option<KResult<usize>> {
        if poll_now(self.raw_fd(), libc::POLLOUT) == 0 {
            return None;
        }
        let len = buf.len().min(STREAM_CHUNK);
        // SAFETY: buf is live and readable for at least len bytes.
        let n = unsafe { libc::write(self.raw_fd(), buf.as_ptr().cast(), len) };
        if n >= 0 {
            return Some(Ok(n as usize));
        }
        match Errno::last() {
            Errno::EAGAIN | Errno::EINTR => None,
            e => Some(Err(e)),
        }
    }

    /// Stream write: all of `buf` unless O_NONBLOCK, an error, or a signal
    /// stops it (then the bytes written so far, if any), like a Linux
    /// blocking write to a pipe or tty.
    fn stream_write(&self, t: &Task, nonblocking: bool, buf: &[u8]) -> KResult<usize> {
        let mut done = 0;
        while done < buf.len() {
            let step = if nonblocking {
                self.try_write_chunk(&buf[done..])
                    .unwrap_or(Err(Errno::EAGAIN))
            } else {
                t.block_until(&[], &[(self.raw_fd(), libc::POLLOUT)], None, || {
                    self.try_write_chunk(&buf[done..])
                })
            };
            match step {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) => {
                    if done > 0 {
                        break;
                    }
                    return Err(e);
                }
            }
        }
        Ok(done)
    }

    /// ioctl with a `size`-byte struct read from the guest at `arg`.
    fn ioctl_in(&self, t: &Task, cmd: u32, arg: u64, size: usize) -> KResult<u64> {
        let mut buf = [0u8; KERNEL_TERMIOS_SIZE];
        let b = buf.get_mut(..size).ok_or(Errno::EINVAL)?;
        t.mm().copy_in(arg, b)?;
        // SAFETY: the request reads at most `size` bytes from our local
        // buffer, which holds KERNEL_TERMIOS_SIZE >= size bytes.
        let r = unsafe { libc::ioctl(self.raw_fd(), cmd as libc::c_ulong, buf.as_mut_ptr()) };
        if r < 0 {
            return Err(Errno::last());
        }
        Ok(r as u64)
    }

    /// ioctl filling a `size`-byte struct then copied to the guest at `arg`.
    fn ioctl_out(&self, t: &Task, cmd: u32, arg: u64, size: usize) -> KResult<u64> {
        let mut buf = [0u8; KERNEL_TERMIOS_SIZE];
        if size > buf.len() {
            return Err(Errno::EINVAL);
        }
        // SAFETY: the request writes at most `size` bytes into our local
        // buffer, which holds KERNEL_TERMIOS_SIZE >= size bytes.
        let r = unsafe { libc::ioctl(self.raw_fd(), cmd as libc::c_ulong, buf.as_mut_ptr()) };
        if r < 0 {
            return Err(Errno::last());
        }
        t.mm().copy_out(arg, &buf[..size])?;
        Ok(r as u64)
    }

    /// The directory's entries via getdents64, without "." and "..".
    fn list_dir(&self) -> KResult<Vec<DirEntry>> {
        let _g = lock(&self.dir_lock);
        // SAFETY: lseek on our own fd.
        if unsafe { libc::lseek(self.raw_fd(), 0, libc::SEEK_SET) } < 0 {
            return Err(Errno::last());
        }
        let mut out = Vec::new();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            // SAFETY: buf is live and writable for buf.len() bytes.
            let n = unsafe {
                libc::syscall(
                    libc::SYS_getdents64,
                    self.raw_fd(),
                    buf.as_mut_ptr(),
                    buf.len(),
                )
            };
            if n < 0 {
                let e = Errno::last();
                if e == Errno::EINTR {
                    continue;
                }
                return Err(e);
            }
            if n == 0 {
                return Ok(out);
            }
            parse_dirents(buf.get(..n as usize).ok_or(Errno::EIO)?, &mut out)?;
        }
    }
}

/// Parses a getdents64 buffer (struct linux_dirent64: ino u64, off i64,
/// reclen u16, type u8, NUL-terminated name), skipping "." and "..".
fn parse_dirents(mut b: &[u8], out: &mut Vec<DirEntry>) -> KResult<()> {
    const HDR: usize = 19;
    while !b.is_empty() {
        let hdr = b.get(..HDR).ok_or(Errno::EIO)?;
        let ino = u64::from_ne_bytes(hdr[0..8].try_into().map_err(|_| Errno::EIO)?);
        let reclen = u16::from_ne_bytes(hdr[16..18].try_into().map_err(|_| Errno::EIO)?) as usize;
        let d_type = hdr[18];
        if reclen < HDR {
            return Err(Errno::EIO);
        }
        let rec = b.get(..reclen).ok_or(Errno::EIO)?;
        let name_field = &rec[HDR..];
        let len = name_field
            .iter()
            .position(|&c| c == 0)
            .unwrap_or(name_field.len());
        let name = &name_field[..len];
        if name != b"." && name != b".." {
            out.push(DirEntry {
                ino,
                d_type,
                name: name.to_vec(),
            });
        }
        b = &b[reclen..];
    }
    Ok(())
}

impl FileOps for HostFile {
    fn read(&self, t: &Task, f: &File, buf: &mut [u8], off: u64) -> KResult<usize> {
        if self.seekable {
            return self.pread(buf, off);
        }
        if self.shared_offset {
            return self.rw_at_host_offset(buf.as_mut_ptr(), buf.len(), false);
        }
        if buf.is_empty() {
            return Ok(0);
        }
        if f.nonblocking() {
            return self.try_read(buf).unwrap_or(Err(Errno::EAGAIN));
        }
        t.block_until(&[], &[(self.raw_fd(), libc::POLLIN)], None, || {
            self.try_read(buf)
        })
    }

    fn write(&self, t: &Task, f: &File, buf: &[u8], off: u64) -> KResult<usize> {
        if self.seekable {
            return self.pwrite(buf, off);
        }
        if self.shared_offset {
            return self.rw_at_host_offset(buf.as_ptr() as *mut u8, buf.len(), true);
        }
        if buf.is_empty() {
            return Ok(0);
        }
        self.stream_write(t, f.nonblocking(), buf)
    }

    fn seekable(&self) -> bool {
        self.seekable
    }

    fn host_seek(&self, off: i64, whence: i32) -> Option<KResult<u64>> {
        if !self.shared_offset {
            return None;
        }
        // SAFETY: lseek on our own fd with plain integers.
        let r = unsafe { libc::lseek(self.raw_fd(), off, whence) };
        Some(if r < 0 {
            Err(Errno::last())
        } else {
            Ok(r as u64)
        })
    }

    fn stat(&self) -> KResult<Stat> {
        Ok(stat_from_host(&host_fstat(self.raw_fd())?))
    }

    fn readdir(&self) -> KResult<Vec<DirEntry>> {
        if !self.is_dir {
            return Err(Errno::ENOTDIR);
        }
        self.list_dir()
    }

    fn ioctl(&self, t: &Task, _f: &File, cmd: u32, arg: u64) -> KResult<u64> {
        let c = cmd as libc::c_ulong;
        if c == libc::TCGETS {
            self.ioctl_out(t, cmd, arg, KERNEL_TERMIOS_SIZE)
        } else if c == libc::TCSETS || c == libc::TCSETSW || c == libc::TCSETSF {
            self.ioctl_in(t, cmd, arg, KERNEL_TERMIOS_SIZE)
        } else if c == libc::TIOCGWINSZ {
            self.ioctl_out(t, cmd, arg, WINSIZE_SIZE)
        } else if c == libc::TIOCSWINSZ {
            self.ioctl_in(t, cmd, arg, WINSIZE_SIZE)
        } else if c == libc::FIONREAD {
            let mut n: libc::c_int = 0;
            // SAFETY: FIONREAD writes one int into n.
            if unsafe { libc::ioctl(self.raw_fd(), libc::FIONREAD, &mut n) } < 0 {
                return Err(Errno::last());
            }
            t.mm().write_u32(arg, n as u32)?;
            Ok(0)
        } else {
            Err(Errno::ENOTTY)
        }
    }

    fn readiness(&self, mask: u32) -> u32 {
        let events = (mask & 0xffff) as i16;
        let r = poll_now(self.raw_fd(), events) as u16 as u32;
        // Regular files poll always ready (as on Linux); POLLNVAL cannot
        // happen for an fd we own.
        r & (mask | crate::vfs::file::POLLERR | crate::vfs::file::POLLHUP)
    }

    fn host_fd(&self) -> Option<RawFd> {
        Some(self.raw_fd())
    }

    fn truncate(&self, len: u64) -> KResult<()> {
        let len = i64::try_from(len).map_err(|_| Errno::EINVAL)?;
        // SAFETY: ftruncate on our own fd.
        if unsafe { libc::ftruncate(self.raw_fd(), len) } < 0 {
            return Err(Errno::last());
        }
        Ok(())
    }

    fn fsync(&self) -> KResult<()> {
        // SAFETY: fsync on our own fd.
        if unsafe { libc::fsync(self.raw_fd()) } < 0 {
            return Err(Errno::last());
        }
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::FromRawFd;

    fn host_pipe() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: fds is a live array of two ints.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: both fds are new and ours.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    #[test]
    fn kinds_and_readiness() {
        let (r, w) = host_pipe();
        let (r, w) = (HostFile::new(r), HostFile::new(w));
        assert!(!r.seekable() && !w.seekable());
        assert_eq!(r.stat().unwrap().file_type(), libc::S_IFIFO);
        let all = crate::vfs::file::POLLIN | crate::vfs::file::POLLOUT;
        assert_eq!(r.readiness(all), 0);
        assert_eq!(w.readiness(all), crate::vfs::file::POLLOUT);
        assert_eq!(w.try_write_chunk(b"hi"), Some(Ok(2)));
        assert_eq!(r.readiness(all), crate::vfs::file::POLLIN);
        let mut b = [0u8; 8];
        assert_eq!(r.try_read(&mut b), Some(Ok(2)));
        assert_eq!(r.try_read(&mut b), None);
        assert_eq!(r.host_fd(), Some(r.raw_fd()));
        drop(w);
        assert_eq!(r.try_read(&mut b), Some(Ok(0)));
        assert_ne!(r.readiness(all) & crate::vfs::file::POLLHUP, 0);
        assert_eq!(r.readdir().err(), Some(Errno::ENOTDIR));
    }

    #[test]
    fn regular_file_and_dir() {
        let dir = std::env::temp_dir().join(format!("sentry-host-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a"), b"hello").unwrap();
        std::fs::write(dir.join("b"), b"").unwrap();
        let f = HostFile::new(
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(dir.join("a"))
                .unwrap()
                .into(),
        );
        assert!(f.seekable());
        let mut b = [0u8; 3];
        assert_eq!(f.pread(&mut b, 2).unwrap(), 3);
        assert_eq!(&b, b"llo");
        assert_eq!(f.pwrite(b"J", 0).unwrap(), 1);
        f.truncate(2).unwrap();
        assert_eq!(f.stat().unwrap().size, 2);
        f.fsync().unwrap();
        let d = HostFile::new(std::fs::File::open(&dir).unwrap().into());
        let mut names: Vec<_> = d.readdir().unwrap().into_iter().map(|e| e.name).collect();
        names.sort();
        assert_eq!(names, vec![b"a".to_vec(), b"b".to_vec()]);
        // Twice: the rewind works.
        assert_eq!(d.readdir().unwrap().len(), 2);
        assert!(d.stat().unwrap().is_dir());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn dirent_parsing_rejects_garbage() {
        let mut out = Vec::new();
        assert!(parse_dirents(&[1, 2, 3], &mut out).is_err());
        let mut rec = vec![0u8; 24];
        rec[0] = 9;
        rec[16] = 24;
        rec[18] = libc::DT_REG;
        rec[19..22].copy_from_slice(b"abc");
        parse_dirents(&rec, &mut out).unwrap();
        assert_eq!(out[0].name, b"abc");
        assert_eq!(out[0].ino, 9);
        rec[16] = 200;
        assert!(parse_dirents(&rec, &mut out).is_err());
    }
}
