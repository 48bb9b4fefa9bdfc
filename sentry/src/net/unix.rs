//! Connected AF_UNIX socket pairs (socketpair(2)): two endpoints joined by
//! one queue per direction. SOCK_STREAM is a byte stream; SOCK_SEQPACKET
//! and SOCK_DGRAM keep message boundaries (a short read truncates the
//! message). Shutdown and close follow Linux: for stream and seqpacket a
//! close or shutdown is mirrored onto the peer, for datagrams it is not.
//! No addresses, no ancillary data (SCM_RIGHTS/SCM_CREDENTIALS).

use crate::errno::{Errno, KResult};
use crate::fs::{lock, new_anon_dev, next_ino};
use crate::kernel::task::Task;
use crate::kernel::waiter::WaitQueue;
use crate::vfs::file::{POLLERR, POLLHUP, POLLIN, POLLOUT, POLLRDNORM, POLLWRNORM};
use crate::vfs::{File, FileOps, Stat, Timespec};
use std::any::Any;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};

pub const POLLRDHUP: u32 = libc::POLLRDHUP as u32;
pub const POLLWRBAND: u32 = libc::POLLWRBAND as u32;
/// net.core.wmem_default / rmem_default.
pub const DEFAULT_BUF: usize = 212992;
/// net.core.wmem_max / rmem_max: the most SO_SNDBUF/SO_RCVBUF may ask.
pub const MAX_BUF: usize = 212992;
pub const MIN_RCVBUF: usize = 2304;
pub const MIN_SNDBUF: usize = 4608;
/// Per-message overhead counted against the send buffer for packets.
const MSG_OVERHEAD: usize = 32;

pub const RCV_SHUTDOWN: u8 = 1;
pub const SEND_SHUTDOWN: u8 = 2;

/// Bytes or messages travelling one way.
#[derive(Default)]
struct Queue {
    /// Stream: chunks of bytes (boundaries meaningless). Packets: messages.
    msgs: VecDeque<Vec<u8>>,
    bytes: usize,
}

struct State {
    /// `q[i]`: what endpoint `i` receives.
    q: [Queue; 2],
    /// Linux sk_shutdown bits per endpoint.
    shut: [u8; 2],
    closed: [bool; 2],
    sndbuf: [usize; 2],
    rcvbuf: [usize; 2],
    passcred: [bool; 2],
}

struct Shared {
    ty: i32,
    state: Mutex<State>,
    queue: WaitQueue,
    ino: [u64; 2],
    uid: u32,
    gid: u32,
    ctime: Timespec,
}

/// One end of a pair; one per open file description.
pub struct UnixEndpoint {
    shared: Arc<Shared>,
    side: usize,
}

fn sockfs_dev() -> u64 {
    static DEV: OnceLock<u64> = OnceLock::new();
    *DEV.get_or_init(new_anon_dev)
}

/// socketpair(AF_UNIX, ty): ty is SOCK_STREAM, SOCK_SEQPACKET or SOCK_DGRAM.
pub fn new_pair(ty: i32, uid: u32, gid: u32) -> (Arc<UnixEndpoint>, Arc<UnixEndpoint>) {
    let shared = Arc::new(Shared {
        ty,
        state: Mutex::new(State {
            q: Default::default(),
            shut: [0; 2],
            closed: [false; 2],
            sndbuf: [DEFAULT_BUF; 2],
            rcvbuf: [DEFAULT_BUF; 2],
            passcred: [false; 2],
        }),
        queue: WaitQueue::new(),
        ino: [next_ino(), next_ino()],
        uid,
        gid,
        ctime: Timespec::now(),
    });
    (
        Arc::new(UnixEndpoint {
            shared: shared.clone(),
            side: 0,
        }),
        Arc::new(UnixEndpoint { shared, side: 1 }),
    )
}

/// Result of one receive.
#[derive(Debug, PartialEq, Eq)]
pub struct Recv {
    /// Bytes copied into the buffer.
    pub copied: usize,
    /// The whole message's length (packets; equals `copied` for streams).
    pub full: usize,
}

impl UnixEndpoint {
    pub fn sock_type(&self) -> i32 {
        self.shared.ty
    }

    fn stream(&self) -> bool {
        self.shared.ty == libc::SOCK_STREAM
    }

    fn peer(&self) -> usize {
        1 - self.side
    }

    /// One non-blocking send attempt continuing after `*sent` bytes.
    /// Some(result) when finished, None when it must wait for room.
    fn try_send(&self, buf: &[u8], sent: &mut usize) -> Option<KResult<usize>> {
        let mut s = lock(&self.shared.state);
        let (me, peer) = (self.side, self.peer());
        let cap = s.sndbuf[me];
        if s.shut[me] & SEND_SHUTDOWN != 0 {
            return Some(if *sent > 0 {
                Ok(*sent)
            } else {
                Err(Errno::EPIPE)
            });
        }
        if s.closed[peer] {
            // A datagram peer that is gone refuses; streams see EPIPE.
            let e = if self.shared.ty == libc::SOCK_DGRAM {
                Errno::ECONNREFUSED
            } else {
                Errno::EPIPE
            };
            return Some(if *sent > 0 { Ok(*sent) } else { Err(e) });
        }
        let q = &mut s.q[peer];
        if self.stream() {
            if buf.is_empty() {
                return Some(Ok(0));
            }
            let free = cap.saturating_sub(q.bytes);
            let n = free.min(buf.len() - *sent);
            if n > 0 {
                q.msgs.push_back(buf[*sent..*sent + n].to_vec());
                q.bytes += n;
                *sent += n;
                drop(s);
                self.shared.queue.notify_all();
            }
            return (*sent == buf.len()).then_some(Ok(*sent));
        }
        if buf.len() + MSG_OVERHEAD > cap {
            return Some(Err(Errno::EMSGSIZE));
        }
        if q.bytes > 0 && q.bytes + buf.len() + MSG_OVERHEAD > cap {
            return None;
        }
        q.msgs.push_back(buf.to_vec());
        q.bytes += buf.len() + MSG_OVERHEAD;
        drop(s);
        self.shared.queue.notify_all();
        Some(Ok(buf.len()))
    }

    /// One non-blocking receive attempt: Some when done (data or EOF),
    /// None when it must wait.
    fn try_recv(&self, buf: &mut [u8], peek: bool) -> Option<KResult<Recv>> {
        let mut s = lock(&self.shared.state);
        let me = self.side;
        let shut = s.shut[me];
        let q = &mut s.q[me];
        if q.msgs.is_empty() {
            return (shut & RCV_SHUTDOWN != 0).then_some(Ok(Recv { copied: 0, full: 0 }));
        }
        let r = if self.stream() {
            let mut n = 0;
            for m in q.msgs.iter() {
                if n == buf.len() {
                    break;
                }
                let k = m.len().min(buf.len() - n);
                buf[n..n + k].copy_from_slice(&m[..k]);
                n += k;
            }
            if !peek {
                let mut left = n;
                while left > 0 {
                    let front = q.msgs.front_mut().unwrap();
                    if front.len() <= left {
                        left -= front.len();
                        q.msgs.pop_front();
                    } else {
                        front.drain(..left);
                        left = 0;
                    }
                }
                q.bytes -= n;
            }
            Recv { copied: n, full: n }
        } else {
            let m = q.msgs.front().unwrap();
            let n = m.len().min(buf.len());
            buf[..n].copy_from_slice(&m[..n]);
            let full = m.len();
            if !peek {
                q.msgs.pop_front();
                q.bytes -= full + MSG_OVERHEAD;
            }
            Recv { copied: n, full }
        };
        drop(s);
        if !peek {
            self.shared.queue.notify_all();
        }
        Some(Ok(r))
    }

    /// send(2): `nonblock` from O_NONBLOCK or MSG_DONTWAIT. EPIPE is
    /// returned as is (SIGPIPE is the caller's).
    pub fn send(&self, t: &Task, buf: &[u8], nonblock: bool) -> KResult<usize> {
        let mut sent = 0;
        if let Some(r) = self.try_send(buf, &mut sent) {
            return r;
        }
        if nonblock {
            return if sent > 0 {
                Ok(sent)
            } else {
                Err(Errno::EAGAIN)
            };
        }
        match t.block_until(&[&self.shared.queue], &[], None, || {
            self.try_send(buf, &mut sent)
        }) {
            Err(e) if e.is_restart() && sent > 0 => Ok(sent),
            r => r,
        }
    }

    /// recv(2). `waitall` (streams only) keeps reading until `buf` is
    /// full, EOF or a signal.
    pub fn recv(
        &self,
        t: &Task,
        buf: &mut [u8],
        nonblock: bool,
        peek: bool,
        waitall: bool,
    ) -> KResult<Recv> {
        let waitall = waitall && self.stream() && !peek && !nonblock;
        let mut got = 0;
        loop {
            let r = match self.try_recv(&mut buf[got..], peek) {
                Some(r) => r,
                None if nonblock => Err(Errno::EAGAIN),
                None => t.block_until(&[&self.shared.queue], &[], None, || {
                    self.try_recv(&mut buf[got..], peek)
                }),
            };
            match r {
                Ok(r) if waitall => {
                    got += r.copied;
                    if r.copied == 0 || got == buf.len() {
                        return Ok(Recv {
                            copied: got,
                            full: got,
                        });
                    }
                }
                Ok(r) => return Ok(r),
                Err(e) if got > 0 && e.is_restart() => {
                    return Ok(Recv {
                        copied: got,
                        full: got,
                    })
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// shutdown(2): `how` is SHUT_RD, SHUT_WR or SHUT_RDWR.
    pub fn shutdown(&self, how: i32) -> KResult<()> {
        let mode = match how {
            libc::SHUT_RD => RCV_SHUTDOWN,
            libc::SHUT_WR => SEND_SHUTDOWN,
            libc::SHUT_RDWR => RCV_SHUTDOWN | SEND_SHUTDOWN,
            _ => return Err(Errno::EINVAL),
        };
        let mut s = lock(&self.shared.state);
        s.shut[self.side] |= mode;
        if self.shared.ty != libc::SOCK_DGRAM {
            let mut pm = 0;
            if mode & RCV_SHUTDOWN != 0 {
                pm |= SEND_SHUTDOWN;
            }
            if mode & SEND_SHUTDOWN != 0 {
                pm |= RCV_SHUTDOWN;
            }
            s.shut[self.peer()] |= pm;
        }
        drop(s);
        self.shared.queue.notify_all();
        Ok(())
    }

    /// (SO_SNDBUF, SO_RCVBUF).
    pub fn bufs(&self) -> (usize, usize) {
        let s = lock(&self.shared.state);
        (s.sndbuf[self.side], s.rcvbuf[self.side])
    }

    /// SO_SNDBUF/SO_RCVBUF: doubled and clamped as Linux does.
    pub fn set_buf(&self, send: bool, val: u32) {
        let v = (val as usize).min(MAX_BUF) * 2;
        let mut s = lock(&self.shared.state);
        if send {
            s.sndbuf[self.side] = v.max(MIN_SNDBUF);
        } else {
            s.rcvbuf[self.side] = v.max(MIN_RCVBUF);
        }
        drop(s);
        self.shared.queue.notify_all();
    }

    pub fn passcred(&self) -> bool {
        lock(&self.shared.state).passcred[self.side]
    }

    pub fn set_passcred(&self, on: bool) {
        lock(&self.shared.state).passcred[self.side] = on;
    }

    /// FIONREAD/SIOCINQ: all queued bytes for stream and seqpacket, the
    /// next message's length for datagrams.
    pub fn inq(&self) -> usize {
        let s = lock(&self.shared.state);
        let q = &s.q[self.side];
        if self.shared.ty == libc::SOCK_DGRAM {
            q.msgs.front().map_or(0, |m| m.len())
        } else {
            q.msgs.iter().map(|m| m.len()).sum()
        }
    }
}

impl Drop for UnixEndpoint {
    fn drop(&mut self) {
        let mut s = lock(&self.shared.state);
        s.closed[self.side] = true;
        s.q[self.side] = Queue::default();
        if self.shared.ty != libc::SOCK_DGRAM {
            s.shut[self.peer()] = RCV_SHUTDOWN | SEND_SHUTDOWN;
        }
        drop(s);
        self.shared.queue.notify_all();
    }
}

impl FileOps for UnixEndpoint {
    fn read(&self, t: &Task, f: &File, buf: &mut [u8], _off: u64) -> KResult<usize> {
        Ok(self.recv(t, buf, f.nonblocking(), false, false)?.copied)
    }

    fn write(&self, t: &Task, f: &File, buf: &[u8], _off: u64) -> KResult<usize> {
        self.send(t, buf, f.nonblocking())
    }

    fn stat(&self) -> KResult<Stat> {
        Ok(Stat {
            dev: sockfs_dev(),
            ino: self.shared.ino[self.side],
            mode: libc::S_IFSOCK | 0o777,
            nlink: 1,
            uid: self.shared.uid,
            gid: self.shared.gid,
            rdev: 0,
            size: 0,
            blksize: 4096,
            blocks: 0,
            atime: self.shared.ctime,
            mtime: self.shared.ctime,
            ctime: self.shared.ctime,
        })
    }

    fn ioctl(&self, t: &Task, _f: &File, cmd: u32, arg: u64) -> KResult<u64> {
        if libc::c_ulong::from(cmd) == libc::FIONREAD {
            let n = self.inq().min(i32::MAX as usize) as u32;
            t.mm().write_u32(arg, n)?;
            return Ok(0);
        }
        Err(Errno::ENOTTY)
    }

    fn readiness(&self, mask: u32) -> u32 {
        let s = lock(&self.shared.state);
        let (me, peer) = (self.side, self.peer());
        let shut = s.shut[me];
        let mut r = 0;
        if shut == RCV_SHUTDOWN | SEND_SHUTDOWN {
            r |= POLLHUP;
        }
        if shut & RCV_SHUTDOWN != 0 {
            r |= POLLRDHUP | POLLIN | POLLRDNORM;
        }
        if !s.q[me].msgs.is_empty() {
            r |= POLLIN | POLLRDNORM;
        }
        let writable = if self.shared.ty == libc::SOCK_DGRAM && s.closed[peer] {
            true
        } else {
            s.q[peer].bytes < s.sndbuf[me]
        };
        if writable {
            r |= POLLOUT | POLLWRNORM | POLLWRBAND;
        }
        r & (mask | POLLHUP | POLLERR)
    }

    fn queue(&self) -> Option<&WaitQueue> {
        Some(&self.shared.queue)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(e: &UnixEndpoint, b: &[u8]) -> Option<KResult<usize>> {
        e.try_send(b, &mut 0)
    }

    #[test]
    fn stream_bytes_and_eof() {
        let (a, b) = new_pair(libc::SOCK_STREAM, 0, 0);
        assert_eq!(send(&a, b"hel"), Some(Ok(3)));
        assert_eq!(send(&a, b"lo"), Some(Ok(2)));
        assert_eq!(b.inq(), 5);
        let mut buf = [0u8; 4];
        assert_eq!(
            b.try_recv(&mut buf, true),
            Some(Ok(Recv { copied: 4, full: 4 }))
        );
        assert_eq!(
            b.try_recv(&mut buf, false),
            Some(Ok(Recv { copied: 4, full: 4 }))
        );
        assert_eq!(&buf, b"hell");
        assert_eq!(
            b.try_recv(&mut buf, false),
            Some(Ok(Recv { copied: 1, full: 1 }))
        );
        assert_eq!(b.try_recv(&mut buf, false), None);
        assert_eq!(b.readiness(POLLIN | POLLOUT), POLLOUT);
        drop(a);
        assert_eq!(
            b.try_recv(&mut buf, false),
            Some(Ok(Recv { copied: 0, full: 0 }))
        );
        assert_eq!(send(&b, b"x"), Some(Err(Errno::EPIPE)));
        let r = b.readiness(POLLIN | POLLOUT | POLLRDHUP);
        assert_eq!(
            r & (POLLIN | POLLHUP | POLLRDHUP),
            POLLIN | POLLHUP | POLLRDHUP
        );
        assert_eq!(b.stat().unwrap().mode & libc::S_IFMT, libc::S_IFSOCK);
    }

    #[test]
    fn packets_keep_boundaries_and_truncate() {
        for ty in [libc::SOCK_SEQPACKET, libc::SOCK_DGRAM] {
            let (a, b) = new_pair(ty, 0, 0);
            assert_eq!(send(&a, b"hello"), Some(Ok(5)));
            assert_eq!(send(&a, b""), Some(Ok(0)));
            assert_eq!(send(&a, b"xy"), Some(Ok(2)));
            let mut buf = [0u8; 3];
            assert_eq!(
                b.try_recv(&mut buf, false),
                Some(Ok(Recv { copied: 3, full: 5 }))
            );
            assert_eq!(&buf, b"hel");
            assert_eq!(
                b.try_recv(&mut buf, false),
                Some(Ok(Recv { copied: 0, full: 0 }))
            );
            assert_eq!(b.inq(), 2);
            assert_eq!(
                b.try_recv(&mut buf, false),
                Some(Ok(Recv { copied: 2, full: 2 }))
            );
            assert_eq!(
                send(&a, &vec![0u8; DEFAULT_BUF]),
                Some(Err(Errno::EMSGSIZE))
            );
        }
    }

    #[test]
    fn shutdown_mirrors_to_peer() {
        let (a, b) = new_pair(libc::SOCK_STREAM, 0, 0);
        a.shutdown(libc::SHUT_WR).unwrap();
        assert_eq!(send(&a, b"x"), Some(Err(Errno::EPIPE)));
        let mut buf = [0u8; 4];
        assert_eq!(
            b.try_recv(&mut buf, false),
            Some(Ok(Recv { copied: 0, full: 0 }))
        );
        assert_eq!(send(&b, b"ok"), Some(Ok(2)));
        b.shutdown(libc::SHUT_RD).unwrap();
        assert_eq!(send(&a, b"x"), Some(Err(Errno::EPIPE)));
        assert_eq!(a.shutdown(7), Err(Errno::EINVAL));
        a.set_buf(true, 1000);
        assert_eq!(a.bufs().0, 2000.max(MIN_SNDBUF));
    }
}
