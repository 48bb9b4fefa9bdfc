//! AF_UNIX sockets, entirely inside the sentry: stream, seqpacket and
//! datagram; path names (a socket node in the VFS), abstract names and
//! unnamed sockets; SCM_RIGHTS and SCM_CREDENTIALS; SO_PEERCRED.
//!
//! Every socket owns its receive queue. A connection is two sockets
//! pointing at each other (weakly: a closed socket is gone); sending
//! appends to the peer's queue under the peer's lock, so the peer's state
//! (closed, shut down) is checked where it cannot change underneath. No
//! code path holds two sockets' locks at once.
//!
//! Bound names live in one table per sandbox: abstract names by their
//! bytes, path names by the (device, inode) of the socket node that bind
//! created, so any filesystem that can hold the node (tmpfs, the overlay,
//! a writable gofer mount) works and renaming or hard-linking the node
//! keeps it reachable, as on Linux.

use super::socket::{
    deadline, int_opt, read_int_opt, wait_errno, CommonOpts, RecvControl, RecvMsg, SendControl,
    Socket, Ucred,
};
use crate::errno::{Errno, KResult};
use crate::fs::{lock, new_anon_dev, next_ino};
use crate::kernel::task::Task;
use crate::kernel::waiter::WaitQueue;
use crate::vfs::file::{POLLERR, POLLHUP, POLLIN, POLLOUT, POLLRDNORM, POLLWRNORM};
use crate::vfs::{File, FileOps, Stat, Timespec};
use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock, Weak};

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
/// net.unix.max_dgram_qlen: datagrams a receiver queues before senders wait.
const MAX_DGRAM_QLEN: usize = 512;
/// offsetof(struct sockaddr_un, sun_path) and sizeof(struct sockaddr_un).
const PATH_OFF: usize = 2;
const SUN_LEN: usize = 110;
/// Credentials reported for a socket with no peer (overflow ids).
const NOBODY: u32 = 65534;

pub const RCV_SHUTDOWN: u8 = 1;
pub const SEND_SHUTDOWN: u8 = 2;

/// A bound name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Name {
    /// Bytes after the leading NUL.
    Abstract(Vec<u8>),
    /// The path as given (for getsockname) and the node's identity.
    Path(Vec<u8>, (u64, u64)),
}

impl Name {
    /// As a struct sockaddr_un, with Linux's lengths: abstract names are
    /// exactly as long as bound, paths get their terminating NUL.
    fn sockaddr(&self) -> Vec<u8> {
        let mut b = (libc::AF_UNIX as u16).to_le_bytes().to_vec();
        match self {
            Name::Abstract(n) => {
                b.push(0);
                b.extend_from_slice(n);
            }
            Name::Path(p, _) => {
                b.extend_from_slice(p);
                b.push(0);
            }
        }
        b
    }

    fn key(&self) -> Key {
        match self {
            Name::Abstract(n) => Key::Abstract(n.clone()),
            Name::Path(_, id) => Key::Node(id.0, id.1),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Abstract(Vec<u8>),
    Node(u64, u64),
}

/// A parsed sockaddr_un from bind/connect/sendto.
enum Addr {
    /// Only the family (length 2): bind autobinds.
    Empty,
    Abstract(Vec<u8>),
    Path(Vec<u8>),
}

fn parse_addr(sa: &[u8]) -> KResult<Addr> {
    if sa.len() < PATH_OFF || sa.len() > SUN_LEN {
        return Err(Errno::EINVAL);
    }
    if u16::from_le_bytes([sa[0], sa[1]]) != libc::AF_UNIX as u16 {
        return Err(Errno::EINVAL);
    }
    let p = &sa[PATH_OFF..];
    if p.is_empty() {
        return Ok(Addr::Empty);
    }
    if p[0] == 0 {
        return Ok(Addr::Abstract(p[1..].to_vec()));
    }
    let end = p.iter().position(|&c| c == 0).unwrap_or(p.len());
    Ok(Addr::Path(p[..end].to_vec()))
}

fn unnamed() -> Vec<u8> {
    (libc::AF_UNIX as u16).to_le_bytes().to_vec()
}

/// The sandbox's bound names.
fn names() -> &'static Mutex<HashMap<Key, Weak<UnixSocket>>> {
    static NAMES: OnceLock<Mutex<HashMap<Key, Weak<UnixSocket>>>> = OnceLock::new();
    NAMES.get_or_init(Default::default)
}

/// Every live AF_UNIX socket by inode number (for /proc/net/unix).
fn all() -> &'static Mutex<HashMap<u64, Weak<UnixSocket>>> {
    static ALL: OnceLock<Mutex<HashMap<u64, Weak<UnixSocket>>>> = OnceLock::new();
    ALL.get_or_init(Default::default)
}

/// One row of /proc/net/unix.
pub struct ProcEntry {
    pub ino: u64,
    pub ty: i32,
    pub listening: bool,
    pub connected: bool,
    /// The bound name as Linux prints it ("@" for the abstract NUL).
    pub path: Option<Vec<u8>>,
}

/// The sandbox's AF_UNIX sockets, by inode number.
pub fn proc_entries() -> Vec<ProcEntry> {
    let socks: Vec<Arc<UnixSocket>> = {
        let m = lock(all());
        let mut v: Vec<_> = m.values().filter_map(Weak::upgrade).collect();
        v.sort_by_key(|s| s.ino);
        v
    };
    socks
        .iter()
        .map(|s| {
            let st = lock(&s.st);
            ProcEntry {
                ino: s.ino,
                ty: s.ty,
                listening: matches!(st.conn, Conn::Listening { .. }),
                connected: matches!(st.conn, Conn::Connected)
                    || (s.ty == libc::SOCK_DGRAM && st.peer.is_some()),
                path: st.name.as_ref().map(|n| match n {
                    Name::Abstract(a) => {
                        let mut p = vec![b'@'];
                        p.extend(a.iter().map(|&c| if c == 0 { b'@' } else { c }));
                        p
                    }
                    Name::Path(p, _) => p.clone(),
                }),
            }
        })
        .collect()
}

/// The device number of every socket's inode (Linux's sockfs).
pub(crate) fn sockfs_dev() -> u64 {
    static DEV: OnceLock<u64> = OnceLock::new();
    *DEV.get_or_init(new_anon_dev)
}

/// One message (packets) or chunk of bytes (streams) in a receive queue.
struct Msg {
    data: Vec<u8>,
    /// Bytes of `data` already read (streams).
    off: usize,
    from: Option<Name>,
    rights: Vec<Arc<File>>,
    creds: Ucred,
}

impl Msg {
    fn left(&self) -> usize {
        self.data.len() - self.off
    }
}

enum Conn {
    /// Not connected (a datagram socket may still have a default peer).
    None,
    Listening {
        backlog: usize,
        /// Server-side sockets of connections not yet accepted.
        pending: VecDeque<Arc<UnixSocket>>,
    },
    Connected,
}

struct State {
    name: Option<Name>,
    conn: Conn,
    /// The connected peer (streams, seqpacket, pairs) or a datagram
    /// socket's default destination.
    peer: Option<Weak<UnixSocket>>,
    /// The peer's name when it connected (getpeername after it closed).
    peer_name: Option<Name>,
    /// SO_PEERCRED.
    peer_cred: Option<Ucred>,
    /// Waiting to be accepted (not yet handed to the guest).
    embryo: bool,
    recv: VecDeque<Msg>,
    recv_bytes: usize,
    shut: u8,
    closed: bool,
    /// Pending SO_ERROR (positive errno).
    err: i32,
    sndbuf: usize,
    rcvbuf: usize,
    passcred: bool,
    opts: CommonOpts,
}

pub struct UnixSocket {
    ty: i32,
    ino: u64,
    uid: u32,
    gid: u32,
    ctime: Timespec,
    me: Weak<UnixSocket>,
    /// Connected to a host socket of the image (through the gofer): all
    /// I/O goes to this non-blocking host fd.
    host: OnceLock<std::os::fd::OwnedFd>,
    st: Mutex<State>,
    queue: WaitQueue,
}

fn check_type(ty: i32, proto: i32) -> KResult<()> {
    if !matches!(
        ty,
        libc::SOCK_STREAM | libc::SOCK_SEQPACKET | libc::SOCK_DGRAM
    ) {
        return Err(Errno::ESOCKTNOSUPPORT);
    }
    // PF_UNIX (0) is the only protocol.
    if proto != 0 && proto != libc::PF_UNIX {
        return Err(Errno::EPROTONOSUPPORT);
    }
    Ok(())
}

fn new_raw(ty: i32, uid: u32, gid: u32) -> Arc<UnixSocket> {
    let s = new_unlisted(ty, uid, gid);
    lock(all()).insert(s.ino, Arc::downgrade(&s));
    s
}

fn new_unlisted(ty: i32, uid: u32, gid: u32) -> Arc<UnixSocket> {
    Arc::new_cyclic(|me| UnixSocket {
        ty,
        ino: next_ino(),
        uid,
        gid,
        ctime: Timespec::now(),
        me: me.clone(),
        st: Mutex::new(State {
            name: None,
            conn: Conn::None,
            peer: None,
            peer_name: None,
            peer_cred: None,
            embryo: false,
            recv: VecDeque::new(),
            recv_bytes: 0,
            shut: 0,
            closed: false,
            err: 0,
            sndbuf: DEFAULT_BUF,
            rcvbuf: DEFAULT_BUF,
            passcred: false,
            opts: CommonOpts::default(),
        }),
        queue: WaitQueue::new(),
        host: OnceLock::new(),
    })
}

/// socket(AF_UNIX, ty, proto).
pub fn new_socket(t: &Task, ty: i32, proto: i32) -> KResult<Arc<dyn FileOps>> {
    check_type(ty, proto)?;
    let c = t.creds();
    Ok(new_raw(ty, c.fsuid, c.fsgid))
}

/// socketpair(AF_UNIX, ty, proto): two connected sockets; each reports
/// the creator's credentials as SO_PEERCRED.
pub fn new_pair(t: &Task, ty: i32, proto: i32) -> KResult<(Arc<UnixSocket>, Arc<UnixSocket>)> {
    check_type(ty, proto)?;
    let c = t.creds();
    let (a, b) = (new_raw(ty, c.fsuid, c.fsgid), new_raw(ty, c.fsuid, c.fsgid));
    let cred = Ucred::of(t);
    for (x, y) in [(&a, &b), (&b, &a)] {
        let mut s = lock(&x.st);
        s.peer = Some(Arc::downgrade(y));
        s.peer_cred = Some(cred);
        if ty != libc::SOCK_DGRAM {
            s.conn = Conn::Connected;
        }
    }
    Ok((a, b))
}

/// The result of one non-blocking attempt: Some when done, None to wait.
type Attempt<T> = Option<KResult<T>>;

impl UnixSocket {
    pub fn sock_type(&self) -> i32 {
        self.ty
    }

    fn stream(&self) -> bool {
        self.ty == libc::SOCK_STREAM
    }

    fn connection_oriented(&self) -> bool {
        self.ty != libc::SOCK_DGRAM
    }

    fn peer(&self) -> Option<Arc<UnixSocket>> {
        lock(&self.st).peer.as_ref().and_then(Weak::upgrade)
    }

    /// Binds `name` in the table; EADDRINUSE if a live socket has it.
    fn register(&self, name: &Name) -> KResult<()> {
        let mut n = lock(names());
        let key = name.key();
        if n.get(&key).is_some_and(|w| w.strong_count() > 0) {
            return Err(Errno::EADDRINUSE);
        }
        n.insert(key, self.me.clone());
        Ok(())
    }

    /// Autobind: an abstract name of five hex digits, as Linux picks.
    fn autobind(&self) -> KResult<Name> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        for _ in 0..0x100000 {
            let n = NEXT.fetch_add(1, Ordering::Relaxed) & 0xfffff;
            let name = Name::Abstract(format!("{n:05x}").into_bytes());
            if self.register(&name).is_ok() {
                return Ok(name);
            }
        }
        Err(Errno::ENOSPC)
    }

    /// Our name, binding one automatically when we have none.
    fn ensure_name(&self) -> KResult<Name> {
        if let Some(n) = lock(&self.st).name.clone() {
            return Ok(n);
        }
        let name = self.autobind()?;
        let mut s = lock(&self.st);
        if let Some(n) = s.name.clone() {
            // Raced with another bind of this socket: keep the first.
            lock(names()).remove(&name.key());
            return Ok(n);
        }
        s.name = Some(name.clone());
        Ok(name)
    }

    /// Finds the socket bound to `sa` for connect/sendto.
    fn lookup(t: &Task, sa: &[u8]) -> KResult<Arc<UnixSocket>> {
        let key = match parse_addr(sa)? {
            Addr::Empty => return Err(Errno::EINVAL),
            Addr::Abstract(n) => Key::Abstract(n),
            Addr::Path(p) => {
                let d = t.lookup_at(libc::AT_FDCWD, &p, true, false)?;
                let st = d.inode.stat()?;
                if st.file_type() != libc::S_IFSOCK {
                    return Err(Errno::ECONNREFUSED);
                }
                let c = t.creds();
                if !c.may(&st, 2) {
                    return Err(Errno::EACCES);
                }
                Key::Node(st.dev, st.ino)
            }
        };
        lock(names())
            .get(&key)
            .and_then(Weak::upgrade)
            .ok_or(Errno::ECONNREFUSED)
    }

    fn do_bind(&self, t: &Task, sa: &[u8]) -> KResult<()> {
        let addr = parse_addr(sa)?;
        if lock(&self.st).name.is_some() {
            return Err(Errno::EINVAL);
        }
        let name = match addr {
            Addr::Empty => {
                let name = self.autobind()?;
                return self.set_name(name);
            }
            Addr::Abstract(n) => Name::Abstract(n),
            Addr::Path(p) => {
                let (dir, leaf) = t.lookup_parent_at(libc::AT_FDCWD, &p)?;
                if leaf.is_empty() || leaf == b"." || leaf == b".." {
                    return Err(Errno::EADDRINUSE);
                }
                if t.kernel.vfs.child(&dir, &leaf).is_ok() {
                    return Err(Errno::EADDRINUSE);
                }
                t.make_node(&dir, &leaf, libc::S_IFSOCK | 0o777, 0)?;
                let node = t.kernel.vfs.child(&dir, &leaf)?;
                let st = node.inode.stat()?;
                Name::Path(p, (st.dev, st.ino))
            }
        };
        self.register(&name)?;
        self.set_name(name)
    }

    fn set_name(&self, name: Name) -> KResult<()> {
        let mut s = lock(&self.st);
        if s.name.is_some() {
            drop(s);
            lock(names()).remove(&name.key());
            return Err(Errno::EINVAL);
        }
        s.name = Some(name);
        Ok(())
    }

    fn do_listen(&self, backlog: i32, cred: Ucred) -> KResult<()> {
        if !self.connection_oriented() {
            return Err(Errno::EOPNOTSUPP);
        }
        let backlog = (backlog as u32 as usize).min(crate::kernel::sysctl::somaxconn());
        let mut s = lock(&self.st);
        if s.name.is_none() {
            return Err(Errno::EINVAL);
        }
        // Connectors see the listener's credentials as of listen().
        if !matches!(s.conn, Conn::Connected) {
            s.peer_cred = Some(cred);
        }
        match &mut s.conn {
            Conn::Connected => return Err(Errno::EINVAL),
            Conn::Listening { backlog: b, .. } => *b = backlog,
            Conn::None => {
                s.conn = Conn::Listening {
                    backlog,
                    pending: VecDeque::new(),
                }
            }
        }
        drop(s);
        self.queue.notify_all();
        Ok(())
    }

    /// One attempt to queue a new connection on `server` for us. The
    /// server's and our locks are taken one after the other, never
    /// together.
    fn try_connect(&self, t: &Task, server: &Arc<UnixSocket>) -> Attempt<()> {
        if server.ty != self.ty {
            return Some(Err(Errno::EPROTOTYPE));
        }
        if std::ptr::eq(Arc::as_ptr(server), self) {
            return Some(Err(Errno::EINVAL));
        }
        let (listener_name, listener_cred, passcred, sndbuf, rcvbuf) = {
            let s = lock(&server.st);
            let Conn::Listening { backlog, pending } = &s.conn else {
                return Some(Err(Errno::ECONNREFUSED));
            };
            if pending.len() > *backlog {
                return None;
            }
            (s.name.clone(), s.peer_cred, s.passcred, s.sndbuf, s.rcvbuf)
        };
        let new = new_raw(self.ty, server.uid, server.gid);
        let my_name = {
            let mut me = lock(&self.st);
            match me.conn {
                Conn::Connected => return Some(Err(Errno::EISCONN)),
                Conn::Listening { .. } => return Some(Err(Errno::EINVAL)),
                Conn::None => {}
            }
            me.conn = Conn::Connected;
            me.peer = Some(Arc::downgrade(&new));
            me.peer_name = listener_name.clone();
            me.peer_cred = listener_cred;
            me.name.clone()
        };
        {
            let mut n = lock(&new.st);
            n.name = listener_name;
            n.conn = Conn::Connected;
            n.peer = Some(self.me.clone());
            n.peer_name = my_name;
            n.peer_cred = Some(Ucred::of(t));
            n.embryo = true;
            n.passcred = passcred;
            n.sndbuf = sndbuf;
            n.rcvbuf = rcvbuf;
        }
        let mut s = lock(&server.st);
        if let Conn::Listening { pending, .. } = &mut s.conn {
            pending.push_back(new);
        }
        // Else the listener closed meanwhile: `new` goes away here and
        // we see the connection reset.
        drop(s);
        server.queue.notify_all();
        self.queue.notify_all();
        Some(Ok(()))
    }

    fn do_connect(&self, t: &Task, sa: &[u8], nonblock: bool) -> KResult<()> {
        if !self.connection_oriented() {
            return self.dgram_connect(t, sa);
        }
        {
            let s = lock(&self.st);
            match s.conn {
                Conn::Connected => return Err(Errno::EISCONN),
                Conn::Listening { .. } => return Err(Errno::EINVAL),
                Conn::None => {}
            }
            if s.passcred && s.name.is_none() {
                drop(s);
                self.ensure_name()?;
            }
        }
        let server = match Self::lookup(t, sa) {
            Ok(s) => s,
            // No socket of ours there: maybe a host socket of the image.
            Err(e) if e == Errno::ECONNREFUSED => return self.connect_host(t, sa),
            Err(e) => return Err(e),
        };
        if let Some(r) = self.try_connect(t, &server) {
            return r;
        }
        if nonblock {
            return Err(Errno::EAGAIN);
        }
        let timeo = lock(&self.st).opts.sndtimeo;
        t.block_until(&[&server.queue], &[], deadline(timeo), || {
            self.try_connect(t, &server)
        })
        .map_err(|e| wait_errno(e, timeo))
    }

    /// connect(2) to a host socket in the image (when the sandbox allows
    /// host sockets): the gofer connects a host socket and donates it,
    /// and this socket then forwards everything to it.
    fn connect_host(&self, t: &Task, sa: &[u8]) -> KResult<()> {
        let Addr::Path(p) = parse_addr(sa)? else {
            return Err(Errno::ECONNREFUSED);
        };
        let d = t.lookup_at(libc::AT_FDCWD, &p, true, false)?;
        let st = d.inode.stat()?;
        let fd = d.inode.connect_host(self.ty)?;
        // SAFETY: F_SETFL on the fd we were just given.
        unsafe {
            let fl = libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&fd), libc::F_GETFL);
            libc::fcntl(
                std::os::fd::AsRawFd::as_raw_fd(&fd),
                libc::F_SETFL,
                fl | libc::O_NONBLOCK,
            );
        }
        let mut s = lock(&self.st);
        if matches!(s.conn, Conn::Connected) {
            return Err(Errno::EISCONN);
        }
        if self.host.set(fd).is_err() {
            return Err(Errno::EISCONN);
        }
        s.conn = Conn::Connected;
        s.peer_name = Some(Name::Path(p, (st.dev, st.ino)));
        drop(s);
        self.queue.notify_all();
        Ok(())
    }

    fn host_raw(&self) -> Option<i32> {
        self.host.get().map(std::os::fd::AsRawFd::as_raw_fd)
    }

    /// send on a host-connected socket (no fd passing across the host).
    fn host_send(
        &self,
        t: &Task,
        fd: i32,
        buf: &[u8],
        ctl: &SendControl,
        nonblock: bool,
    ) -> KResult<usize> {
        if !ctl.rights.is_empty() {
            return Err(Errno::EINVAL);
        }
        let mut sent = 0;
        let mut attempt = || -> Option<KResult<usize>> {
            // SAFETY: send from a live buffer range to our host fd.
            let r = unsafe {
                libc::send(
                    fd,
                    buf[sent..].as_ptr() as *const libc::c_void,
                    buf.len() - sent,
                    libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
                )
            };
            if r < 0 {
                let e = Errno::last();
                if e == Errno::EAGAIN {
                    return None;
                }
                return Some(if sent > 0 { Ok(sent) } else { Err(e) });
            }
            sent += r as usize;
            (sent == buf.len() || self.ty != libc::SOCK_STREAM).then_some(Ok(sent))
        };
        if let Some(r) = attempt() {
            return r;
        }
        if nonblock {
            return if sent > 0 {
                Ok(sent)
            } else {
                Err(Errno::EAGAIN)
            };
        }
        let timeo = lock(&self.st).opts.sndtimeo;
        match t.block_until(&[], &[(fd, libc::POLLOUT)], deadline(timeo), attempt) {
            Err(_) if sent > 0 => Ok(sent),
            Err(e) => Err(wait_errno(e, timeo)),
            r => r,
        }
    }

    fn host_recv(
        &self,
        t: &Task,
        fd: i32,
        buf: &mut [u8],
        flags: i32,
        nonblock: bool,
    ) -> KResult<RecvMsg> {
        let pass = flags & (libc::MSG_PEEK | libc::MSG_WAITALL | libc::MSG_TRUNC);
        let attempt = |buf: &mut [u8]| -> Option<KResult<RecvMsg>> {
            // SAFETY: recv into a live buffer of buf.len() bytes.
            let r = unsafe {
                libc::recv(
                    fd,
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                    (pass & !libc::MSG_WAITALL) | libc::MSG_DONTWAIT,
                )
            };
            if r < 0 {
                let e = Errno::last();
                return if e == Errno::EAGAIN {
                    None
                } else {
                    Some(Err(e))
                };
            }
            let n = r as usize;
            Some(Ok(RecvMsg {
                copied: n.min(buf.len()),
                full: n,
                ..Default::default()
            }))
        };
        if let Some(r) = attempt(buf) {
            return r;
        }
        if nonblock {
            return Err(Errno::EAGAIN);
        }
        let timeo = lock(&self.st).opts.rcvtimeo;
        t.block_until(&[], &[(fd, libc::POLLIN)], deadline(timeo), || attempt(buf))
            .map_err(|e| wait_errno(e, timeo))
    }

    fn dgram_connect(&self, t: &Task, sa: &[u8]) -> KResult<()> {
        if sa.len() >= 2 && u16::from_le_bytes([sa[0], sa[1]]) == libc::AF_UNSPEC as u16 {
            let mut s = lock(&self.st);
            s.peer = None;
            s.peer_name = None;
            return Ok(());
        }
        let target = Self::lookup(t, sa)?;
        if target.ty != self.ty {
            return Err(Errno::EPROTOTYPE);
        }
        if lock(&self.st).passcred {
            self.ensure_name()?;
        }
        let tname = lock(&target.st).name.clone();
        let mut s = lock(&self.st);
        s.peer = Some(Arc::downgrade(&target));
        s.peer_name = tname;
        Ok(())
    }

    fn try_accept(&self) -> Attempt<Arc<UnixSocket>> {
        let mut s = lock(&self.st);
        let Conn::Listening { pending, .. } = &mut s.conn else {
            return Some(Err(Errno::EINVAL));
        };
        let new = pending.pop_front()?;
        drop(s);
        lock(&new.st).embryo = false;
        // Connectors blocked on a full backlog may go on.
        self.queue.notify_all();
        Some(Ok(new))
    }

    fn do_accept(&self, t: &Task, nonblock: bool) -> KResult<Arc<UnixSocket>> {
        if !self.connection_oriented() {
            return Err(Errno::EOPNOTSUPP);
        }
        if let Some(r) = self.try_accept() {
            return r;
        }
        if nonblock {
            return Err(Errno::EAGAIN);
        }
        let timeo = lock(&self.st).opts.rcvtimeo;
        t.block_until(&[&self.queue], &[], deadline(timeo), || self.try_accept())
            .map_err(|e| wait_errno(e, timeo))
    }

    /// One attempt to append to `dst`'s queue. `sent` counts stream bytes
    /// already queued by earlier attempts.
    #[allow(clippy::too_many_arguments)]
    fn try_send(
        &self,
        dst: &UnixSocket,
        buf: &[u8],
        sent: &mut usize,
        ctl: &mut Option<SendControl>,
        from: &Option<Name>,
        creds: Ucred,
        sndbuf: usize,
    ) -> Attempt<usize> {
        let partial = |e: Errno, sent: usize| Some(if sent > 0 { Ok(sent) } else { Err(e) });
        let mut d = lock(&dst.st);
        if d.closed {
            let e = if self.connection_oriented() {
                Errno::EPIPE
            } else {
                Errno::ECONNREFUSED
            };
            return partial(e, *sent);
        }
        if self.connection_oriented() && d.shut & RCV_SHUTDOWN != 0 {
            return partial(Errno::EPIPE, *sent);
        }
        if !self.connection_oriented() {
            // A datagram socket connected elsewhere takes nothing from us.
            if let Some(p) = &d.peer {
                if !std::ptr::eq(p.as_ptr(), self as *const _) && p.strong_count() > 0 {
                    return Some(Err(Errno::EPERM));
                }
            }
        }
        let take_ctl = |ctl: &mut Option<SendControl>| {
            let c = ctl.take().unwrap_or_default();
            (c.rights, c.creds.unwrap_or(creds))
        };
        if self.stream() {
            if buf.is_empty() && ctl.as_ref().is_none_or(|c| c.rights.is_empty()) {
                return Some(Ok(0));
            }
            let free = sndbuf.saturating_sub(d.recv_bytes);
            let n = free.min(buf.len() - *sent);
            if n == 0 && !buf.is_empty() {
                return None;
            }
            let (rights, cr) = take_ctl(ctl);
            d.recv.push_back(Msg {
                data: buf[*sent..*sent + n].to_vec(),
                off: 0,
                from: from.clone(),
                rights,
                creds: cr,
            });
            d.recv_bytes += n;
            *sent += n;
            drop(d);
            dst.queue.notify_all();
            return (*sent == buf.len()).then_some(Ok(*sent));
        }
        if buf.len() + MSG_OVERHEAD > sndbuf {
            return Some(Err(Errno::EMSGSIZE));
        }
        let full = if self.ty == libc::SOCK_DGRAM {
            d.recv.len() >= MAX_DGRAM_QLEN || d.recv_bytes + buf.len() + MSG_OVERHEAD > d.rcvbuf
        } else {
            d.recv_bytes + buf.len() + MSG_OVERHEAD > sndbuf
        };
        if full && !d.recv.is_empty() {
            return None;
        }
        let (rights, cr) = take_ctl(ctl);
        d.recv.push_back(Msg {
            data: buf.to_vec(),
            off: 0,
            from: from.clone(),
            rights,
            creds: cr,
        });
        d.recv_bytes += buf.len() + MSG_OVERHEAD;
        drop(d);
        dst.queue.notify_all();
        Some(Ok(buf.len()))
    }

    fn do_send(
        &self,
        t: &Task,
        buf: &[u8],
        to: Option<&[u8]>,
        ctl: SendControl,
        nonblock: bool,
    ) -> KResult<usize> {
        if let Some(fd) = self.host_raw() {
            if to.is_some() && self.ty == libc::SOCK_STREAM {
                return Err(Errno::EISCONN);
            }
            return self.host_send(t, fd, buf, &ctl, nonblock);
        }
        let (dst, from, sndbuf, timeo) = {
            let s = lock(&self.st);
            if s.shut & SEND_SHUTDOWN != 0 {
                return Err(Errno::EPIPE);
            }
            if s.err != 0 && self.connection_oriented() {
                drop(s);
                return Err(Errno(self.take_err()));
            }
            let want_name = s.passcred && s.name.is_none();
            let peer = s.peer.clone();
            let connected = matches!(s.conn, Conn::Connected);
            let (sndbuf, timeo) = (s.sndbuf, s.opts.sndtimeo);
            drop(s);
            let dst = match (self.ty, to) {
                (libc::SOCK_STREAM, Some(_)) => {
                    return Err(if connected {
                        Errno::EISCONN
                    } else {
                        Errno::EOPNOTSUPP
                    })
                }
                (libc::SOCK_DGRAM, Some(sa)) => Self::lookup(t, sa)?,
                _ => {
                    if self.connection_oriented() && !connected {
                        return Err(Errno::ENOTCONN);
                    }
                    match peer {
                        Some(w) => match w.upgrade() {
                            Some(p) => p,
                            None if self.connection_oriented() => return Err(Errno::EPIPE),
                            None => return Err(Errno::ECONNREFUSED),
                        },
                        None => return Err(Errno::ENOTCONN),
                    }
                }
            };
            if dst.ty != self.ty {
                return Err(Errno::EPROTOTYPE);
            }
            if want_name && self.ty == libc::SOCK_DGRAM {
                self.ensure_name()?;
            }
            let from = lock(&self.st).name.clone();
            (dst, from, sndbuf, timeo)
        };
        let creds = Ucred::of(t);
        let mut ctl = Some(ctl);
        let mut sent = 0;
        if let Some(r) = self.try_send(&dst, buf, &mut sent, &mut ctl, &from, creds, sndbuf) {
            return r;
        }
        if nonblock {
            return if sent > 0 {
                Ok(sent)
            } else {
                Err(Errno::EAGAIN)
            };
        }
        match t.block_until(&[&dst.queue, &self.queue], &[], deadline(timeo), || {
            if lock(&self.st).shut & SEND_SHUTDOWN != 0 {
                return Some(if sent > 0 {
                    Ok(sent)
                } else {
                    Err(Errno::EPIPE)
                });
            }
            self.try_send(&dst, buf, &mut sent, &mut ctl, &from, creds, sndbuf)
        }) {
            Err(_) if sent > 0 => Ok(sent),
            Err(e) => Err(wait_errno(e, timeo)),
            r => r,
        }
    }

    fn take_err(&self) -> i32 {
        std::mem::take(&mut lock(&self.st).err)
    }

    /// One receive attempt into `buf` (streams continue at `got`).
    fn try_recv(&self, buf: &mut [u8], got: usize, peek: bool) -> Attempt<RecvMsg> {
        let mut s = lock(&self.st);
        if s.recv.is_empty() {
            if got > 0 {
                return Some(Ok(RecvMsg {
                    copied: got,
                    full: got,
                    ..Default::default()
                }));
            }
            if s.err != 0 {
                let e = std::mem::take(&mut s.err);
                return Some(Err(Errno(e)));
            }
            if s.shut & RCV_SHUTDOWN != 0 {
                return Some(Ok(RecvMsg::default()));
            }
            if self.connection_oriented() && !matches!(s.conn, Conn::Connected) {
                // Linux: EINVAL from a stream, ENOTCONN from seqpacket.
                return Some(Err(if self.stream() {
                    Errno::EINVAL
                } else {
                    Errno::ENOTCONN
                }));
            }
            return None;
        }
        let passcred = s.passcred;
        let m = if self.stream() {
            let mut n = got;
            let mut out = RecvMsg::default();
            let mut i = 0;
            let first_creds = s.recv[0].creds;
            let mut consumed = 0;
            while i < s.recv.len() && n < buf.len() {
                let m = &s.recv[i];
                // Never glue bytes from different writers when the
                // receiver asked for credentials.
                if passcred && (i > 0 || got > 0) && m.creds != first_creds {
                    break;
                }
                let k = m.left().min(buf.len() - n);
                buf[n..n + k].copy_from_slice(&m.data[m.off..m.off + k]);
                n += k;
                if out.addr.is_none() {
                    out.addr = m.from.as_ref().map(Name::sockaddr);
                }
                let has_rights = !m.rights.is_empty();
                if has_rights {
                    out.control.rights = m.rights.clone();
                }
                if !peek {
                    let m = &mut s.recv[i];
                    m.off += k;
                    m.rights.clear();
                    consumed += k;
                }
                i += 1;
                if has_rights {
                    break;
                }
            }
            if passcred {
                out.control.creds = Some(first_creds);
            }
            if !peek {
                while s.recv.front().is_some_and(|m| m.left() == 0) {
                    s.recv.pop_front();
                }
                s.recv_bytes -= consumed;
            }
            out.copied = n;
            out.full = n;
            out
        } else {
            let m = s.recv.front().expect("checked non-empty");
            let n = m.data.len().min(buf.len());
            buf[..n].copy_from_slice(&m.data[..n]);
            let out = RecvMsg {
                copied: n,
                full: m.data.len(),
                addr: m.from.as_ref().map(Name::sockaddr),
                control: RecvControl {
                    rights: m.rights.clone(),
                    creds: passcred.then_some(m.creds),
                    ..Default::default()
                },
            };
            if !peek {
                let m = s.recv.pop_front().expect("checked non-empty");
                s.recv_bytes -= m.data.len() + MSG_OVERHEAD;
            }
            out
        };
        let peer = s.peer.as_ref().and_then(Weak::upgrade);
        drop(s);
        if !peek {
            // Room for writers waiting on our queue.
            self.queue.notify_all();
            if let Some(p) = peer {
                p.queue.notify_all();
            }
        }
        Some(Ok(m))
    }

    fn do_recv(&self, t: &Task, buf: &mut [u8], flags: i32, nonblock: bool) -> KResult<RecvMsg> {
        if flags & libc::MSG_OOB != 0 {
            return Err(Errno::EOPNOTSUPP);
        }
        if let Some(fd) = self.host_raw() {
            return self.host_recv(t, fd, buf, flags, nonblock);
        }
        let peek = flags & libc::MSG_PEEK != 0;
        let waitall = flags & libc::MSG_WAITALL != 0 && self.stream() && !peek && !nonblock;
        let timeo = lock(&self.st).opts.rcvtimeo;
        let mut acc = RecvMsg::default();
        loop {
            let got = acc.copied;
            let r = match self.try_recv(buf, got, peek) {
                Some(r) => r,
                None if nonblock => Err(Errno::EAGAIN),
                None => t
                    .block_until(&[&self.queue], &[], deadline(timeo), || {
                        self.try_recv(buf, got, peek)
                    })
                    .map_err(|e| wait_errno(e, timeo)),
            };
            match r {
                Ok(m) if waitall => {
                    let progressed = m.copied > got;
                    acc.copied = m.copied;
                    acc.full = m.copied;
                    if acc.addr.is_none() {
                        acc.addr = m.addr;
                    }
                    acc.control.rights.extend(m.control.rights);
                    if acc.control.creds.is_none() {
                        acc.control.creds = m.control.creds;
                    }
                    if !progressed || acc.copied == buf.len() || !acc.control.rights.is_empty() {
                        return Ok(acc);
                    }
                }
                Ok(m) => return Ok(m),
                Err(_) if acc.copied > 0 => return Ok(acc),
                Err(e) => return Err(e),
            }
        }
    }

    fn do_shutdown(&self, how: i32) -> KResult<()> {
        let mode = match how {
            libc::SHUT_RD => RCV_SHUTDOWN,
            libc::SHUT_WR => SEND_SHUTDOWN,
            libc::SHUT_RDWR => RCV_SHUTDOWN | SEND_SHUTDOWN,
            _ => return Err(Errno::EINVAL),
        };
        if let Some(fd) = self.host_raw() {
            // SAFETY: shutdown of our own host fd.
            if unsafe { libc::shutdown(fd, how) } < 0 {
                return Err(Errno::last());
            }
            return Ok(());
        }
        let mut s = lock(&self.st);
        if self.connection_oriented() && !matches!(s.conn, Conn::Connected) {
            return Err(Errno::ENOTCONN);
        }
        s.shut |= mode;
        let peer = s.peer.as_ref().and_then(Weak::upgrade);
        drop(s);
        self.queue.notify_all();
        if self.connection_oriented() {
            if let Some(p) = peer {
                let mut pm = 0;
                if mode & RCV_SHUTDOWN != 0 {
                    pm |= SEND_SHUTDOWN;
                }
                if mode & SEND_SHUTDOWN != 0 {
                    pm |= RCV_SHUTDOWN;
                }
                lock(&p.st).shut |= pm;
                p.queue.notify_all();
            }
        }
        Ok(())
    }

    /// (SO_SNDBUF, SO_RCVBUF).
    pub fn bufs(&self) -> (usize, usize) {
        let s = lock(&self.st);
        (s.sndbuf, s.rcvbuf)
    }

    /// SO_SNDBUF/SO_RCVBUF: doubled and clamped as Linux does.
    pub fn set_buf(&self, send: bool, val: u32) {
        let v = (val as usize).min(MAX_BUF) * 2;
        let mut s = lock(&self.st);
        if send {
            s.sndbuf = v.max(MIN_SNDBUF);
        } else {
            s.rcvbuf = v.max(MIN_RCVBUF);
        }
        drop(s);
        self.queue.notify_all();
    }

    /// FIONREAD/SIOCINQ: all queued bytes for stream and seqpacket, the
    /// next message's length for datagrams.
    pub fn inq(&self) -> usize {
        let s = lock(&self.st);
        if self.ty == libc::SOCK_DGRAM {
            s.recv.front().map_or(0, |m| m.data.len())
        } else {
            s.recv.iter().map(Msg::left).sum()
        }
    }

    /// SIOCOUTQ: bytes we sent that the peer has not read (streams).
    fn outq(&self) -> usize {
        match self.peer() {
            Some(p) if self.connection_oriented() => lock(&p.st).recv.iter().map(Msg::left).sum(),
            _ => 0,
        }
    }
}

impl Drop for UnixSocket {
    fn drop(&mut self) {
        lock(all()).remove(&self.ino);
        let s = self.st.get_mut().unwrap_or_else(|e| e.into_inner());
        s.closed = true;
        if let Some(name) = s.name.take() {
            let mut n = lock(names());
            let key = name.key();
            if n.get(&key).is_some_and(|w| w.strong_count() == 0) {
                n.remove(&key);
            }
        }
        let unread = !s.recv.is_empty();
        let embryo = s.embryo;
        s.recv.clear();
        // Connections never accepted go with their listener.
        if let Conn::Listening { pending, .. } = &mut s.conn {
            pending.clear();
        }
        let peer = s.peer.take().and_then(|w| w.upgrade());
        if let Some(p) = peer {
            if self.connection_oriented() {
                let mut ps = lock(&p.st);
                ps.shut = RCV_SHUTDOWN | SEND_SHUTDOWN;
                if unread || embryo {
                    ps.err = libc::ECONNRESET;
                }
                drop(ps);
            }
            p.queue.notify_all();
        }
        self.queue.notify_all();
    }
}

impl Socket for UnixSocket {
    fn family(&self) -> i32 {
        libc::AF_UNIX
    }

    fn sock_type(&self) -> i32 {
        self.ty
    }

    fn protocol(&self) -> i32 {
        0
    }

    fn bind(&self, t: &Task, addr: &[u8]) -> KResult<()> {
        self.do_bind(t, addr)
    }

    fn listen(&self, t: &Task, backlog: i32) -> KResult<()> {
        self.do_listen(backlog, Ucred::of(t))
    }

    fn accept(&self, t: &Task, nonblock: bool) -> KResult<(Arc<dyn FileOps>, Vec<u8>)> {
        let new = self.do_accept(t, nonblock)?;
        let peer = lock(&new.st)
            .peer_name
            .as_ref()
            .map_or_else(unnamed, Name::sockaddr);
        Ok((new, peer))
    }

    fn connect(&self, t: &Task, addr: &[u8], nonblock: bool) -> KResult<()> {
        self.do_connect(t, addr, nonblock)
    }

    fn sockname(&self) -> KResult<Vec<u8>> {
        Ok(lock(&self.st)
            .name
            .as_ref()
            .map_or_else(unnamed, Name::sockaddr))
    }

    fn peername(&self) -> KResult<Vec<u8>> {
        let s = lock(&self.st);
        if s.peer.is_none() && !(self.connection_oriented() && matches!(s.conn, Conn::Connected)) {
            return Err(Errno::ENOTCONN);
        }
        if let Some(p) = s.peer.as_ref().and_then(Weak::upgrade) {
            drop(s);
            if let Some(n) = lock(&p.st).name.clone() {
                return Ok(n.sockaddr());
            }
            return Ok(unnamed());
        }
        Ok(s.peer_name.as_ref().map_or_else(unnamed, Name::sockaddr))
    }

    fn sendmsg(
        &self,
        t: &Task,
        data: &[u8],
        to: Option<&[u8]>,
        control: SendControl,
        _flags: i32,
        nonblock: bool,
    ) -> KResult<usize> {
        // Seqpacket ignores a destination, as Linux does.
        let to = if self.ty == libc::SOCK_SEQPACKET {
            None
        } else {
            to
        };
        self.do_send(t, data, to, control, nonblock)
    }

    fn recvmsg(&self, t: &Task, buf: &mut [u8], flags: i32, nonblock: bool) -> KResult<RecvMsg> {
        self.do_recv(t, buf, flags, nonblock)
    }

    fn shutdown(&self, _t: &Task, how: i32) -> KResult<()> {
        self.do_shutdown(how)
    }

    fn getsockopt(&self, _t: &Task, level: i32, name: i32, _len: usize) -> KResult<Vec<u8>> {
        if level != libc::SOL_SOCKET {
            return Err(Errno::EOPNOTSUPP);
        }
        let s = lock(&self.st);
        if let Some(v) = s.opts.get(name) {
            return Ok(v);
        }
        Ok(match name {
            libc::SO_ERROR => {
                drop(s);
                int_opt(self.take_err())
            }
            libc::SO_SNDBUF => int_opt(s.sndbuf as i32),
            libc::SO_RCVBUF => int_opt(s.rcvbuf as i32),
            libc::SO_ACCEPTCONN => int_opt(matches!(s.conn, Conn::Listening { .. }) as i32),
            libc::SO_PASSCRED => int_opt(s.passcred as i32),
            libc::SO_PEERCRED if self.host.get().is_some() => {
                drop(s);
                let fd = self.host_raw().ok_or(Errno::EBADF)?;
                let mut c = [0u8; 12];
                let mut len = 12 as libc::socklen_t;
                // SAFETY: getsockopt into a 12-byte buffer with its length.
                let r = unsafe {
                    libc::getsockopt(
                        fd,
                        libc::SOL_SOCKET,
                        libc::SO_PEERCRED,
                        c.as_mut_ptr() as *mut libc::c_void,
                        &mut len,
                    )
                };
                if r < 0 {
                    return Err(Errno::last());
                }
                c.to_vec()
            }
            libc::SO_PEERCRED => s
                .peer_cred
                .unwrap_or(Ucred {
                    pid: 0,
                    uid: NOBODY,
                    gid: NOBODY,
                })
                .to_bytes()
                .to_vec(),
            _ => return Err(Errno::ENOPROTOOPT),
        })
    }

    fn setsockopt(&self, _t: &Task, level: i32, name: i32, val: &[u8]) -> KResult<()> {
        if level != libc::SOL_SOCKET {
            return Err(Errno::EOPNOTSUPP);
        }
        if let Some(r) = lock(&self.st).opts.set(name, val) {
            return r;
        }
        let v = read_int_opt(val)?;
        match name {
            libc::SO_SNDBUF => self.set_buf(true, v as u32),
            libc::SO_RCVBUF => self.set_buf(false, v as u32),
            libc::SO_PASSCRED => lock(&self.st).passcred = v != 0,
            _ => return Err(Errno::ENOPROTOOPT),
        }
        Ok(())
    }
}

impl FileOps for UnixSocket {
    fn read(&self, t: &Task, f: &File, buf: &mut [u8], _off: u64) -> KResult<usize> {
        Ok(self.do_recv(t, buf, 0, f.nonblocking())?.copied)
    }

    fn write(&self, t: &Task, f: &File, buf: &[u8], _off: u64) -> KResult<usize> {
        self.do_send(t, buf, None, SendControl::default(), f.nonblocking())
    }

    fn stat(&self) -> KResult<Stat> {
        Ok(crate::net::socket::socket_stat(
            self.ino, self.uid, self.gid, self.ctime,
        ))
    }

    fn ioctl(&self, t: &Task, _f: &File, cmd: u32, arg: u64) -> KResult<u64> {
        let n = match libc::c_ulong::from(cmd) {
            libc::FIONREAD => self.inq(),
            libc::TIOCOUTQ => self.outq(),
            _ => return Err(Errno::ENOTTY),
        };
        t.mm().write_u32(arg, n.min(i32::MAX as usize) as u32)?;
        Ok(0)
    }

    fn readiness(&self, mask: u32) -> u32 {
        if let Some(fd) = self.host_raw() {
            let events = (mask | POLLHUP | POLLERR) as i16;
            return crate::fs::host::poll_now(fd, events) as u16 as u32
                & (mask | POLLHUP | POLLERR);
        }
        let s = lock(&self.st);
        let mut r = 0;
        if s.err != 0 {
            r |= POLLERR;
        }
        if s.shut == RCV_SHUTDOWN | SEND_SHUTDOWN {
            r |= POLLHUP;
        }
        if s.shut & RCV_SHUTDOWN != 0 {
            r |= POLLRDHUP | POLLIN | POLLRDNORM;
        }
        if !s.recv.is_empty() {
            r |= POLLIN | POLLRDNORM;
        }
        match &s.conn {
            Conn::Listening { pending, .. } => {
                if !pending.is_empty() {
                    r |= POLLIN | POLLRDNORM;
                }
                return r & (mask | POLLHUP | POLLERR);
            }
            Conn::None if self.connection_oriented() => r |= POLLHUP,
            _ => {}
        }
        let sndbuf = s.sndbuf;
        let shut_send = s.shut & SEND_SHUTDOWN != 0;
        let peer = s.peer.as_ref().and_then(Weak::upgrade);
        drop(s);
        let writable = match peer {
            Some(p) => {
                let ps = lock(&p.st);
                if self.ty == libc::SOCK_DGRAM {
                    ps.recv.len() < MAX_DGRAM_QLEN && ps.recv_bytes < ps.rcvbuf
                } else {
                    ps.recv_bytes < sndbuf
                }
            }
            None => true,
        };
        if writable && !shut_send {
            r |= POLLOUT | POLLWRNORM | POLLWRBAND;
        } else if shut_send && self.connection_oriented() {
            // Linux reports a shut-down writer as writable (the write fails).
            r |= POLLOUT | POLLWRNORM | POLLWRBAND;
        }
        r & (mask | POLLHUP | POLLERR)
    }

    fn queue(&self) -> Option<&WaitQueue> {
        Some(&self.queue)
    }

    fn host_fd(&self) -> Option<std::os::fd::RawFd> {
        self.host_raw()
    }

    fn as_socket(&self) -> Option<&dyn Socket> {
        Some(self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(ty: i32) -> (Arc<UnixSocket>, Arc<UnixSocket>) {
        let (a, b) = (new_raw(ty, 0, 0), new_raw(ty, 0, 0));
        for (x, y) in [(&a, &b), (&b, &a)] {
            let mut s = lock(&x.st);
            s.peer = Some(Arc::downgrade(y));
            if ty != libc::SOCK_DGRAM {
                s.conn = Conn::Connected;
            }
        }
        (a, b)
    }

    fn send(a: &UnixSocket, b: &UnixSocket, data: &[u8]) -> Attempt<usize> {
        a.try_send(
            b,
            data,
            &mut 0,
            &mut None,
            &None,
            Ucred::default(),
            DEFAULT_BUF,
        )
    }

    fn recv(b: &UnixSocket, buf: &mut [u8], peek: bool) -> Option<(usize, usize)> {
        b.try_recv(buf, 0, peek)
            .map(|r| r.map(|m| (m.copied, m.full)).unwrap_or((usize::MAX, 0)))
    }

    #[test]
    fn stream_bytes_and_eof() {
        let (a, b) = pair(libc::SOCK_STREAM);
        assert_eq!(send(&a, &b, b"hel"), Some(Ok(3)));
        assert_eq!(send(&a, &b, b"lo"), Some(Ok(2)));
        assert_eq!(b.inq(), 5);
        assert_eq!(a.outq(), 5);
        let mut buf = [0u8; 4];
        assert_eq!(recv(&b, &mut buf, true), Some((4, 4)));
        assert_eq!(recv(&b, &mut buf, false), Some((4, 4)));
        assert_eq!(&buf, b"hell");
        assert_eq!(recv(&b, &mut buf, false), Some((1, 1)));
        assert_eq!(recv(&b, &mut buf, false), None);
        assert_eq!(b.readiness(POLLIN | POLLOUT), POLLOUT);
        drop(a);
        assert_eq!(recv(&b, &mut buf, false), Some((0, 0)));
        let r = b.readiness(POLLIN | POLLOUT | POLLRDHUP);
        assert_eq!(
            r & (POLLIN | POLLHUP | POLLRDHUP),
            POLLIN | POLLHUP | POLLRDHUP
        );
        assert_eq!(b.stat().unwrap().mode & libc::S_IFMT, libc::S_IFSOCK);
    }

    #[test]
    fn close_with_unread_data_resets_peer() {
        let (a, b) = pair(libc::SOCK_STREAM);
        assert_eq!(send(&a, &b, b"x"), Some(Ok(1)));
        drop(b);
        let mut buf = [0u8; 4];
        assert_eq!(
            a.try_recv(&mut buf, 0, false).map(|r| r.err()),
            Some(Some(Errno::ECONNRESET))
        );
        assert_eq!(recv(&a, &mut buf, false), Some((0, 0)));
    }

    #[test]
    fn packets_keep_boundaries_and_truncate() {
        for ty in [libc::SOCK_SEQPACKET, libc::SOCK_DGRAM] {
            let (a, b) = pair(ty);
            assert_eq!(send(&a, &b, b"hello"), Some(Ok(5)));
            assert_eq!(send(&a, &b, b""), Some(Ok(0)));
            assert_eq!(send(&a, &b, b"xy"), Some(Ok(2)));
            let mut buf = [0u8; 3];
            assert_eq!(recv(&b, &mut buf, false), Some((3, 5)));
            assert_eq!(&buf, b"hel");
            assert_eq!(recv(&b, &mut buf, false), Some((0, 0)));
            assert_eq!(b.inq(), 2);
            assert_eq!(recv(&b, &mut buf, false), Some((2, 2)));
            assert_eq!(
                send(&a, &b, &vec![0u8; DEFAULT_BUF]),
                Some(Err(Errno::EMSGSIZE))
            );
        }
    }

    #[test]
    fn stream_reads_stop_at_passed_fds() {
        let (a, b) = pair(libc::SOCK_STREAM);
        assert_eq!(send(&a, &b, b"ab"), Some(Ok(2)));
        let f = File::new(new_raw(libc::SOCK_DGRAM, 0, 0), 0, None);
        let mut ctl = Some(SendControl {
            rights: vec![f],
            creds: None,
        });
        let r = a.try_send(
            &b,
            b"cd",
            &mut 0,
            &mut ctl,
            &None,
            Ucred::default(),
            DEFAULT_BUF,
        );
        assert_eq!(r, Some(Ok(2)));
        assert_eq!(send(&a, &b, b"ef"), Some(Ok(2)));
        let mut buf = [0u8; 8];
        let m = b.try_recv(&mut buf, 0, false).unwrap().unwrap();
        // The bytes up to and including the message carrying the fd.
        assert_eq!((m.copied, m.control.rights.len()), (4, 1));
        let m = b.try_recv(&mut buf, 0, false).unwrap().unwrap();
        assert_eq!((m.copied, m.control.rights.len()), (2, 0));
    }

    #[test]
    fn names_parse_like_linux() {
        let mut sa = (libc::AF_UNIX as u16).to_le_bytes().to_vec();
        assert!(matches!(parse_addr(&sa), Ok(Addr::Empty)));
        sa.extend_from_slice(b"/tmp/s\0junk");
        assert!(matches!(parse_addr(&sa), Ok(Addr::Path(p)) if p == b"/tmp/s"));
        let mut ab = (libc::AF_UNIX as u16).to_le_bytes().to_vec();
        ab.extend_from_slice(b"\0x\0y");
        assert!(matches!(parse_addr(&ab), Ok(Addr::Abstract(n)) if n == b"x\0y"));
        assert!(parse_addr(&[2, 0, b'a']).is_err());
        assert!(parse_addr(&[1]).is_err());
        assert_eq!(Name::Abstract(b"ab".to_vec()).sockaddr().len(), 5);
        assert_eq!(Name::Path(b"/a".to_vec(), (0, 0)).sockaddr().len(), 5);
    }

    #[test]
    fn shutdown_mirrors_to_peer() {
        let (a, b) = pair(libc::SOCK_STREAM);
        a.do_shutdown(libc::SHUT_WR).unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(recv(&b, &mut buf, false), Some((0, 0)));
        assert_eq!(send(&b, &a, b"ok"), Some(Ok(2)));
        b.do_shutdown(libc::SHUT_RD).unwrap();
        assert_eq!(send(&a, &b, b"x"), Some(Err(Errno::EPIPE)));
        assert_eq!(a.do_shutdown(7), Err(Errno::EINVAL));
        a.set_buf(true, 1000);
        assert_eq!(a.bufs().0, 2000.max(MIN_SNDBUF));
    }
}
