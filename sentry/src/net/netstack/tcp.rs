//! TCP sockets (SOCK_STREAM) on the sandbox's stack. The guest socket
//! keeps what Linux keeps per socket (bound address, options, shutdown
//! bits, pending SO_ERROR) and the handle of its smoltcp socket; the
//! connection itself lives in smoltcp. A listener owns a pool in the
//! stack (see `Listener`), accept() takes its established connections.

use super::procnet::{linux_state, ProcRow, ProcSocket, TCP_LISTEN};
use super::{
    bindable, fin_received, from_endpoint, listen_addrs, route, stack, tcp_socket, to_endpoint,
    Binding, Inner, BUF_SIZE, PROTO_TCP,
};
use crate::errno::{Errno, KResult};
use crate::fs::{lock, next_ino};
use crate::kernel::task::Task;
use crate::kernel::waiter::WaitQueue;
use crate::net::inet::{format_sockaddr, is_unspec, parse_sockaddr, unspecified};
use crate::net::socket::{
    deadline, int_opt, read_int_opt, wait_errno, CommonOpts, RecvMsg, SendControl, Socket,
};
use crate::net::unix::{MAX_BUF, MIN_RCVBUF, MIN_SNDBUF, POLLRDHUP};
use crate::vfs::file::{POLLERR, POLLHUP, POLLIN, POLLOUT, POLLRDNORM, POLLWRNORM};
use crate::vfs::{File, FileOps, Stat, Timespec};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::State as TcpState;
use smoltcp::wire::IpListenEndpoint;
use std::any::Any;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const RCV_SHUTDOWN: u8 = 1;
const SEND_SHUTDOWN: u8 = 2;
/// TCP_MAXSEG before a connection exists (Linux's TCP_MSS_DEFAULT), and
/// on our loopback (MTU 65535 less IPv4 and TCP headers).
const MSS_DEFAULT: i32 = 536;
const MSS_LOOPBACK: i32 = 65495;

/// Options of levels IPPROTO_TCP, IPPROTO_IP, IPPROTO_IPV6: stored and
/// reported; nodelay and keepalive are applied to the connection.
#[derive(Clone, Debug)]
struct TcpOpts {
    nodelay: bool,
    keepidle: i32,
    keepintvl: i32,
    keepcnt: i32,
    cork: bool,
    quickack: bool,
    user_timeout: i32,
    linger2: i32,
    syncnt: i32,
    defer_accept: i32,
    window_clamp: i32,
    tos: i32,
    ttl: i32,
    tclass: i32,
    hops: i32,
    v6only: bool,
}

impl Default for TcpOpts {
    fn default() -> Self {
        TcpOpts {
            nodelay: false,
            keepidle: 7200,
            keepintvl: 75,
            keepcnt: 9,
            cork: false,
            quickack: true,
            user_timeout: 0,
            linger2: 60,
            syncnt: 6,
            defer_accept: 0,
            window_clamp: 0,
            tos: 0,
            ttl: 64,
            tclass: 0,
            hops: 64,
            v6only: false,
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Conn {
    Idle,
    Connecting(SocketHandle, SocketAddr),
    Connected(SocketHandle, SocketAddr),
    Listening,
}

struct St {
    /// The bound address (its ip may be unspecified); registered in the
    /// stack's port table under our id.
    bound: Option<SocketAddr>,
    /// Bound by connect() with an ephemeral port (released if it fails).
    autobound: bool,
    /// A connect() returned before the handshake ended (Linux's
    /// SS_CONNECTING): the next connect() reports the outcome.
    in_progress: bool,
    conn: Conn,
    opts: CommonOpts,
    tcp: TcpOpts,
    shut: u8,
    /// Pending SO_ERROR (positive errno).
    err: i32,
    sndbuf: usize,
    rcvbuf: usize,
}

pub struct TcpSocket {
    family: i32,
    id: u64,
    ino: u64,
    uid: u32,
    gid: u32,
    ctime: Timespec,
    queue: Arc<WaitQueue>,
    st: Mutex<St>,
}

type Attempt<T> = Option<KResult<T>>;

fn smol_duration(d: Duration) -> smoltcp::time::Duration {
    smoltcp::time::Duration::from_micros(d.as_micros().min(u64::MAX as u128) as u64)
}

impl TcpSocket {
    fn raw(family: i32, uid: u32, gid: u32, st: St) -> Arc<TcpSocket> {
        let s = Arc::new(TcpSocket {
            family,
            id: super::next_id(),
            ino: next_ino(),
            uid,
            gid,
            ctime: Timespec::now(),
            queue: Arc::new(WaitQueue::new()),
            st: Mutex::new(st),
        });
        let w: std::sync::Weak<dyn ProcSocket> = Arc::downgrade(&s) as _;
        super::procnet::register(PROTO_TCP, w);
        s
    }

    pub fn new(t: &Task, family: i32) -> Arc<TcpSocket> {
        let c = t.creds();
        TcpSocket::raw(
            family,
            c.fsuid,
            c.fsgid,
            St {
                bound: None,
                autobound: false,
                in_progress: false,
                conn: Conn::Idle,
                opts: CommonOpts::default(),
                tcp: TcpOpts::default(),
                shut: 0,
                err: 0,
                sndbuf: BUF_SIZE,
                rcvbuf: BUF_SIZE,
            },
        )
    }

    /// Applies the options smoltcp implements to our connection.
    fn apply(s: &St, n: &mut Inner, h: SocketHandle) {
        let k = n.tcp(h);
        k.set_nagle_enabled(!s.tcp.nodelay);
        let idle = Duration::from_secs(s.tcp.keepidle.max(1) as u64);
        k.set_keep_alive(s.opts.keepalive.then(|| smol_duration(idle)));
    }

    fn keepalive(s: &St) -> Option<Duration> {
        s.opts
            .keepalive
            .then(|| Duration::from_secs(s.tcp.keepidle.max(1) as u64))
    }

    /// Catches up with what the stack did to our connection: a connect
    /// that completed or failed, a reset.
    fn sync(&self, s: &mut St, n: &mut Inner) {
        match s.conn {
            Conn::Connecting(h, remote) => match n.tcp(h).state() {
                TcpState::SynSent | TcpState::SynReceived => {}
                TcpState::Closed => {
                    let e = n.take_ended(h).unwrap_or(Errno::ECONNREFUSED);
                    n.remove(h);
                    s.conn = Conn::Idle;
                    s.err = e.0;
                    if s.autobound {
                        if let Some(b) = s.bound.take() {
                            n.unbind(PROTO_TCP, self.id, b.port());
                        }
                        s.autobound = false;
                    }
                }
                _ => s.conn = Conn::Connected(h, remote),
            },
            Conn::Connected(h, _) => {
                if let Some(e) = n.take_ended(h) {
                    // A reset after our own close is no news.
                    if s.shut & SEND_SHUTDOWN == 0 || e != Errno::EPIPE {
                        s.err = e.0;
                    }
                }
            }
            _ => {}
        }
    }

    fn take_err(s: &mut St) -> Option<Errno> {
        match std::mem::take(&mut s.err) {
            0 => None,
            e => Some(Errno(e)),
        }
    }

    fn do_bind(&self, t: &Task, sa: &[u8]) -> KResult<()> {
        let addr = parse_sockaddr(self.family, sa)?;
        if is_unspec(sa) && !addr.ip().is_unspecified() {
            return Err(Errno::EAFNOSUPPORT);
        }
        let mut s = lock(&self.st);
        if s.bound.is_some() || !matches!(s.conn, Conn::Idle) {
            return Err(Errno::EINVAL);
        }
        if !bindable(addr.ip()) {
            return Err(Errno::EADDRNOTAVAIL);
        }
        if crate::kernel::sysctl::port_is_privileged(addr.port())
            && !t.creds().capable(crate::kernel::caps::CAP_NET_BIND_SERVICE)
        {
            return Err(Errno::EACCES);
        }
        let b = Binding {
            id: self.id,
            ip: addr.ip(),
            v6only: s.tcp.v6only,
            reuse: s.opts.reuseaddr,
            reuseport: s.opts.reuseport,
            listening: false,
        };
        let port = stack().with(|n| n.bind(PROTO_TCP, b, addr.port()))?;
        s.bound = Some(SocketAddr::new(addr.ip(), port));
        Ok(())
    }

    fn do_listen(&self, backlog: i32) -> KResult<()> {
        let backlog = (backlog.max(0) as usize).min(crate::kernel::sysctl::somaxconn());
        let mut s = lock(&self.st);
        let s = &mut *s;
        match s.conn {
            Conn::Connected(..) | Conn::Connecting(..) => return Err(Errno::EINVAL),
            Conn::Listening | Conn::Idle => {}
        }
        let (nodelay, keepalive) = (s.tcp.nodelay, Self::keepalive(s));
        stack().with(|n| {
            if s.bound.is_none() {
                let b = Binding {
                    id: self.id,
                    ip: unspecified(self.family).ip(),
                    v6only: s.tcp.v6only,
                    reuse: s.opts.reuseaddr,
                    reuseport: s.opts.reuseport,
                    listening: false,
                };
                let port = n.bind(PROTO_TCP, b, 0)?;
                s.bound = Some(SocketAddr::new(unspecified(self.family).ip(), port));
            }
            let b = s.bound.ok_or(Errno::EINVAL)?;
            n.set_listening(self.id, b.port())?;
            let eps = listen_addrs(b.ip(), s.tcp.v6only)
                .into_iter()
                .map(|addr| IpListenEndpoint {
                    addr,
                    port: b.port(),
                })
                .collect();
            n.listen(self.id, eps, backlog, &self.queue, nodelay, keepalive);
            KResult::Ok(())
        })?;
        s.conn = Conn::Listening;
        Ok(())
    }

    fn try_accept(&self) -> Attempt<Arc<TcpSocket>> {
        let s = lock(&self.st);
        if !matches!(s.conn, Conn::Listening) {
            return Some(Err(Errno::EINVAL));
        }
        let (h, local, remote) = stack().with(|n| {
            let h = n.accept(self.id)?;
            let k = n.tcp(h);
            match (k.local_endpoint(), k.remote_endpoint()) {
                (Some(l), Some(r)) => Some((h, from_endpoint(l), from_endpoint(r))),
                _ => {
                    n.orphan_tcp(h, true);
                    None
                }
            }
        })?;
        // Linux copies the listener's options to the new socket.
        let st = St {
            bound: Some(local),
            autobound: false,
            in_progress: false,
            conn: Conn::Connected(h, remote),
            opts: s.opts.clone(),
            tcp: s.tcp.clone(),
            shut: 0,
            err: 0,
            sndbuf: s.sndbuf,
            rcvbuf: s.rcvbuf,
        };
        drop(s);
        let new = TcpSocket::raw(self.family, self.uid, self.gid, st);
        {
            let ns = lock(&new.st);
            stack().with(|n| {
                n.watch(h, &new.queue);
                Self::apply(&ns, n, h);
                n.add_binding(
                    PROTO_TCP,
                    Binding {
                        id: new.id,
                        ip: local.ip(),
                        v6only: ns.tcp.v6only,
                        reuse: true,
                        reuseport: ns.opts.reuseport,
                        listening: false,
                    },
                    local.port(),
                );
            });
        }
        Some(Ok(new))
    }

    fn do_accept(&self, t: &Task, nonblock: bool) -> KResult<Arc<TcpSocket>> {
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

    /// connect(AF_UNSPEC): drops the connection, as tcp_disconnect.
    fn disconnect(&self) -> KResult<()> {
        let mut s = lock(&self.st);
        let conn = std::mem::replace(&mut s.conn, Conn::Idle);
        stack().with(|n| match conn {
            Conn::Connecting(h, _) => n.remove(h),
            Conn::Connected(h, _) => n.orphan_tcp(h, true),
            Conn::Listening => n.unlisten(self.id),
            Conn::Idle => {}
        });
        s.shut = 0;
        drop(s);
        self.queue.notify_all();
        Ok(())
    }

    fn do_connect(&self, t: &Task, sa: &[u8], nonblock: bool) -> KResult<()> {
        if is_unspec(sa) {
            return self.disconnect();
        }
        let addr = parse_sockaddr(self.family, sa)?;
        let mut g = lock(&self.st);
        let s = &mut *g;
        stack().peek(|n| self.sync(s, n));
        if std::mem::take(&mut s.in_progress) {
            // The first connect() after EINPROGRESS reports how it ended.
            match s.conn {
                Conn::Connected(..) => return Ok(()),
                Conn::Connecting(..) => {
                    s.in_progress = true;
                    return Err(Errno::EALREADY);
                }
                _ => return Err(Self::take_err(s).unwrap_or(Errno::ECONNABORTED)),
            }
        }
        match s.conn {
            Conn::Connected(..) | Conn::Listening => return Err(Errno::EISCONN),
            Conn::Connecting(..) => return Err(Errno::EALREADY),
            Conn::Idle => {}
        }
        let dst = route(addr.ip())?;
        if dst.is_ipv4() && self.family == libc::AF_INET6 && s.tcp.v6only {
            return Err(Errno::ENETUNREACH);
        }
        if addr.port() == 0 {
            return Err(Errno::ECONNREFUSED);
        }
        let remote = SocketAddr::new(dst, addr.port());
        s.err = 0;
        stack().with(|n| {
            let src = match s.bound {
                Some(b) if !b.ip().is_unspecified() => {
                    let ip = super::canonical(b.ip());
                    if ip.is_ipv4() != dst.is_ipv4() {
                        return Err(Errno::ENETUNREACH);
                    }
                    Some(smoltcp::wire::IpAddress::from(ip))
                }
                _ => None,
            };
            let port = match s.bound {
                Some(b) => b.port(),
                None => {
                    let b = Binding {
                        id: self.id,
                        ip: unspecified(self.family).ip(),
                        v6only: s.tcp.v6only,
                        reuse: s.opts.reuseaddr,
                        reuseport: s.opts.reuseport,
                        listening: false,
                    };
                    let port = n.bind(PROTO_TCP, b, 0)?;
                    s.bound = Some(SocketAddr::new(unspecified(self.family).ip(), port));
                    s.autobound = true;
                    port
                }
            };
            let mut k = tcp_socket();
            let local = IpListenEndpoint { addr: src, port };
            if k.connect(n.iface.context(), to_endpoint(remote), local)
                .is_err()
            {
                return Err(Errno::EADDRNOTAVAIL);
            }
            let h = n.sockets.add(k);
            Self::apply(s, n, h);
            n.watch(h, &self.queue);
            s.conn = Conn::Connecting(h, remote);
            Ok(())
        })?;
        stack().peek(|n| self.sync(s, n));
        if nonblock {
            // Linux answers EINPROGRESS even when loopback completed it.
            s.in_progress = true;
            return Err(Errno::EINPROGRESS);
        }
        let timeo = s.opts.sndtimeo;
        drop(g);
        let r = wait_connected(self, t, timeo);
        if matches!(r, Err(e) if e == Errno::EINPROGRESS || e.is_restart() || e == Errno::EINTR) {
            lock(&self.st).in_progress = true;
        }
        r
    }

    /// One attempt to queue `data[*sent..]`.
    fn try_send(&self, data: &[u8], sent: &mut usize) -> Attempt<usize> {
        let mut s = lock(&self.st);
        let s = &mut *s;
        let partial = |e: Errno, sent: usize| Some(if sent > 0 { Ok(sent) } else { Err(e) });
        stack().with(|n| {
            self.sync(s, n);
            if s.shut & SEND_SHUTDOWN != 0 {
                return partial(Errno::EPIPE, *sent);
            }
            if let Some(e) = Self::take_err(s) {
                return partial(e, *sent);
            }
            match s.conn {
                Conn::Connecting(..) => None,
                Conn::Connected(h, _) => {
                    let k = n.tcp(h);
                    if !k.may_send() {
                        return partial(Errno::EPIPE, *sent);
                    }
                    if data.is_empty() {
                        return Some(Ok(0));
                    }
                    match k.send_slice(&data[*sent..]) {
                        Ok(m) => *sent += m,
                        Err(_) => return partial(Errno::EPIPE, *sent),
                    }
                    (*sent == data.len()).then_some(Ok(*sent))
                }
                _ => partial(Errno::EPIPE, *sent),
            }
        })
    }

    fn do_send(&self, t: &Task, data: &[u8], flags: i32, nonblock: bool) -> KResult<usize> {
        if flags & libc::MSG_OOB != 0 {
            return Err(Errno::EOPNOTSUPP);
        }
        let mut sent = 0;
        if let Some(r) = self.try_send(data, &mut sent) {
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
        match t.block_until(&[&self.queue], &[], deadline(timeo), || {
            self.try_send(data, &mut sent)
        }) {
            Err(_) if sent > 0 => Ok(sent),
            Err(e) => Err(wait_errno(e, timeo)),
            r => r,
        }
    }

    /// One receive attempt into `buf[got..]`; the total so far.
    fn try_recv(&self, buf: &mut [u8], got: usize, peek: bool) -> Attempt<usize> {
        let mut s = lock(&self.st);
        let s = &mut *s;
        stack().with(|n| {
            self.sync(s, n);
            match s.conn {
                Conn::Connected(h, _) => {
                    let k = n.tcp(h);
                    if k.recv_queue() > 0 && got < buf.len() {
                        let m = if peek {
                            k.peek_slice(&mut buf[got..]).unwrap_or(0)
                        } else {
                            k.recv_slice(&mut buf[got..]).unwrap_or(0)
                        };
                        return Some(Ok(got + m));
                    }
                    if got > 0 || buf.is_empty() {
                        return Some(Ok(got));
                    }
                    // EPIPE means the peer's FIN came before its RST: the
                    // reader sees the end of the stream (SOCK_DONE), only
                    // writers the error.
                    if s.err == libc::EPIPE {
                        return Some(Ok(0));
                    }
                    if let Some(e) = Self::take_err(s) {
                        return Some(Err(e));
                    }
                    let st = k.state();
                    if s.shut & RCV_SHUTDOWN != 0 || fin_received(st) || st == TcpState::Closed {
                        return Some(Ok(0));
                    }
                    None
                }
                Conn::Connecting(..) if got == 0 => None,
                Conn::Connecting(..) => Some(Ok(got)),
                _ => Some(Err(Errno::ENOTCONN)),
            }
        })
    }

    fn do_recv(&self, t: &Task, buf: &mut [u8], flags: i32, nonblock: bool) -> KResult<usize> {
        if flags & libc::MSG_OOB != 0 {
            return Err(Errno::EINVAL);
        }
        let peek = flags & libc::MSG_PEEK != 0;
        let waitall = flags & libc::MSG_WAITALL != 0 && !peek && !nonblock;
        let timeo = lock(&self.st).opts.rcvtimeo;
        let mut got = 0;
        loop {
            let before = got;
            let r = match self.try_recv(buf, got, peek) {
                Some(r) => r,
                None if nonblock => Err(Errno::EAGAIN),
                None => t
                    .block_until(&[&self.queue], &[], deadline(timeo), || {
                        self.try_recv(buf, before, peek)
                    })
                    .map_err(|e| wait_errno(e, timeo)),
            };
            match r {
                Ok(n) if waitall => {
                    got = n;
                    if n == before || got == buf.len() {
                        return Ok(got);
                    }
                }
                Ok(n) => return Ok(n),
                Err(_) if got > 0 => return Ok(got),
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
        let mut s = lock(&self.st);
        let s = &mut *s;
        stack().with(|n| {
            self.sync(s, n);
            match s.conn {
                Conn::Connected(h, _) => {
                    if mode & SEND_SHUTDOWN != 0 && s.shut & SEND_SHUTDOWN == 0 {
                        n.tcp(h).close();
                    }
                    s.shut |= mode;
                    Ok(())
                }
                // Linux stops listening (blocked accepts fail with
                // EINVAL, pending connections are reset); the port stays
                // bound. SHUT_WR alone does nothing.
                Conn::Listening => {
                    if mode & RCV_SHUTDOWN != 0 {
                        n.unlisten(self.id);
                        n.set_not_listening(self.id);
                        s.conn = Conn::Idle;
                    }
                    Ok(())
                }
                _ => Err(Errno::ENOTCONN),
            }
        })?;
        self.queue.notify_all();
        Ok(())
    }

    fn set_buf(s: &mut St, send: bool, val: i32) {
        let v = (val.max(0) as usize).min(MAX_BUF) * 2;
        if send {
            s.sndbuf = v.max(MIN_SNDBUF);
        } else {
            s.rcvbuf = v.max(MIN_RCVBUF);
        }
    }

    fn inq(&self) -> KResult<usize> {
        let mut s = lock(&self.st);
        let s = &mut *s;
        stack().peek(|n| {
            self.sync(s, n);
            match s.conn {
                Conn::Listening => Err(Errno::EINVAL),
                Conn::Connected(h, _) => Ok(n.tcp(h).recv_queue()),
                _ => Ok(0),
            }
        })
    }

    fn outq(&self) -> KResult<usize> {
        let mut s = lock(&self.st);
        let s = &mut *s;
        stack().peek(|n| {
            self.sync(s, n);
            match s.conn {
                Conn::Listening => Err(Errno::EINVAL),
                Conn::Connected(h, _) => Ok(n.tcp(h).send_queue()),
                _ => Ok(0),
            }
        })
    }
}

/// The blocking half of connect(): waits for the handshake to finish.
fn wait_connected(sock: &TcpSocket, t: &Task, timeo: Option<Duration>) -> KResult<()> {
    let r = t.block_until(&[&sock.queue], &[], deadline(timeo), || {
        let mut s = lock(&sock.st);
        let s = &mut *s;
        stack().peek(|n| sock.sync(s, n));
        match s.conn {
            Conn::Connected(..) => Some(Ok(())),
            Conn::Connecting(..) => None,
            _ => Some(Err(TcpSocket::take_err(s).unwrap_or(Errno::ECONNREFUSED))),
        }
    });
    r.map_err(|e| match wait_errno(e, timeo) {
        // A connect that timed out is still under way.
        Errno::EAGAIN => Errno::EINPROGRESS,
        e => e,
    })
}

impl Drop for TcpSocket {
    fn drop(&mut self) {
        let s = self.st.get_mut().unwrap_or_else(|e| e.into_inner());
        if s.bound.is_none() && matches!(s.conn, Conn::Idle) {
            return;
        }
        let abort_linger = s.opts.linger.0 != 0 && s.opts.linger.1 == 0;
        let (conn, bound, id) = (s.conn, s.bound, self.id);
        stack().with(|n| {
            match conn {
                Conn::Connecting(h, _) => n.remove(h),
                Conn::Connected(h, _) => {
                    let k = n.tcp(h);
                    if k.state() == TcpState::Closed {
                        n.remove(h);
                    } else {
                        // Unread data makes Linux answer a close with RST.
                        let abort = abort_linger || k.recv_queue() > 0;
                        n.orphan_tcp(h, abort);
                    }
                }
                Conn::Listening => n.unlisten(id),
                Conn::Idle => {}
            }
            if let Some(b) = bound {
                n.unbind(PROTO_TCP, id, b.port());
            }
        });
    }
}

impl Socket for TcpSocket {
    fn family(&self) -> i32 {
        self.family
    }

    fn sock_type(&self) -> i32 {
        libc::SOCK_STREAM
    }

    fn protocol(&self) -> i32 {
        libc::IPPROTO_TCP
    }

    fn bind(&self, t: &Task, addr: &[u8]) -> KResult<()> {
        self.do_bind(t, addr)
    }

    fn listen(&self, _t: &Task, backlog: i32) -> KResult<()> {
        self.do_listen(backlog)
    }

    fn accept(&self, t: &Task, nonblock: bool) -> KResult<(Arc<dyn FileOps>, Vec<u8>)> {
        let new = self.do_accept(t, nonblock)?;
        let peer = new
            .peername()
            .unwrap_or_else(|_| format_sockaddr(self.family, unspecified(self.family)));
        Ok((new, peer))
    }

    fn connect(&self, t: &Task, addr: &[u8], nonblock: bool) -> KResult<()> {
        self.do_connect(t, addr, nonblock)
    }

    fn sockname(&self) -> KResult<Vec<u8>> {
        let s = lock(&self.st);
        let local = match s.conn {
            Conn::Connected(h, _) | Conn::Connecting(h, _) => {
                stack().peek(|n| n.tcp(h).local_endpoint().map(from_endpoint))
            }
            _ => None,
        };
        let a = local
            .or(s.bound)
            .unwrap_or_else(|| unspecified(self.family));
        Ok(format_sockaddr(self.family, a))
    }

    fn peername(&self) -> KResult<Vec<u8>> {
        let mut s = lock(&self.st);
        let s = &mut *s;
        stack().peek(|n| {
            self.sync(s, n);
            match s.conn {
                Conn::Connected(h, remote) if n.tcp(h).state() != TcpState::Closed => {
                    Ok(format_sockaddr(self.family, remote))
                }
                _ => Err(Errno::ENOTCONN),
            }
        })
    }

    fn sendmsg(
        &self,
        t: &Task,
        data: &[u8],
        _to: Option<&[u8]>,
        _control: SendControl,
        flags: i32,
        nonblock: bool,
    ) -> KResult<usize> {
        // Linux ignores a destination on a connected stream socket.
        self.do_send(t, data, flags, nonblock)
    }

    fn recvmsg(&self, t: &Task, buf: &mut [u8], flags: i32, nonblock: bool) -> KResult<RecvMsg> {
        let n = self.do_recv(t, buf, flags, nonblock)?;
        Ok(RecvMsg {
            copied: n,
            full: n,
            ..Default::default()
        })
    }

    fn shutdown(&self, _t: &Task, how: i32) -> KResult<()> {
        self.do_shutdown(how)
    }

    fn getsockopt(&self, _t: &Task, level: i32, name: i32, _len: usize) -> KResult<Vec<u8>> {
        let mut s = lock(&self.st);
        let s = &mut *s;
        match level {
            libc::SOL_SOCKET => {
                if let Some(v) = s.opts.get(name) {
                    return Ok(v);
                }
                Ok(match name {
                    libc::SO_ERROR => {
                        stack().peek(|n| self.sync(s, n));
                        int_opt(std::mem::take(&mut s.err))
                    }
                    libc::SO_SNDBUF => int_opt(s.sndbuf as i32),
                    libc::SO_RCVBUF => int_opt(s.rcvbuf as i32),
                    libc::SO_ACCEPTCONN => int_opt(matches!(s.conn, Conn::Listening) as i32),
                    _ => return Err(Errno::ENOPROTOOPT),
                })
            }
            libc::IPPROTO_TCP => {
                let o = &s.tcp;
                Ok(int_opt(match name {
                    libc::TCP_NODELAY => o.nodelay as i32,
                    libc::TCP_KEEPIDLE => o.keepidle,
                    libc::TCP_KEEPINTVL => o.keepintvl,
                    libc::TCP_KEEPCNT => o.keepcnt,
                    libc::TCP_CORK => o.cork as i32,
                    libc::TCP_QUICKACK => o.quickack as i32,
                    libc::TCP_USER_TIMEOUT => o.user_timeout,
                    libc::TCP_LINGER2 => o.linger2,
                    libc::TCP_SYNCNT => o.syncnt,
                    libc::TCP_DEFER_ACCEPT => o.defer_accept,
                    libc::TCP_WINDOW_CLAMP => o.window_clamp,
                    libc::TCP_MAXSEG => match s.conn {
                        Conn::Connected(..) => MSS_LOOPBACK,
                        _ => MSS_DEFAULT,
                    },
                    _ => return Err(Errno::ENOPROTOOPT),
                }))
            }
            libc::IPPROTO_IP => Ok(int_opt(match name {
                libc::IP_TOS => s.tcp.tos,
                libc::IP_TTL => s.tcp.ttl,
                _ => return Err(Errno::ENOPROTOOPT),
            })),
            libc::IPPROTO_IPV6 if self.family == libc::AF_INET6 => Ok(int_opt(match name {
                libc::IPV6_V6ONLY => s.tcp.v6only as i32,
                libc::IPV6_TCLASS => s.tcp.tclass,
                libc::IPV6_UNICAST_HOPS => s.tcp.hops,
                _ => return Err(Errno::ENOPROTOOPT),
            })),
            _ => Err(Errno::ENOPROTOOPT),
        }
    }

    fn setsockopt(&self, _t: &Task, level: i32, name: i32, val: &[u8]) -> KResult<()> {
        let mut s = lock(&self.st);
        let s = &mut *s;
        match level {
            libc::SOL_SOCKET => {
                if let Some(r) = s.opts.set(name, val) {
                    r?;
                } else {
                    let v = read_int_opt(val)?;
                    match name {
                        libc::SO_SNDBUF => Self::set_buf(s, true, v),
                        libc::SO_RCVBUF => Self::set_buf(s, false, v),
                        _ => return Err(Errno::ENOPROTOOPT),
                    }
                }
            }
            libc::IPPROTO_TCP => {
                let v = read_int_opt(val)?;
                let o = &mut s.tcp;
                let positive = |v: i32, max: i32| {
                    if v < 1 || v > max {
                        Err(Errno::EINVAL)
                    } else {
                        Ok(v)
                    }
                };
                match name {
                    libc::TCP_NODELAY => o.nodelay = v != 0,
                    libc::TCP_KEEPIDLE => o.keepidle = positive(v, 32767)?,
                    libc::TCP_KEEPINTVL => o.keepintvl = positive(v, 32767)?,
                    libc::TCP_KEEPCNT => o.keepcnt = positive(v, 127)?,
                    libc::TCP_CORK => o.cork = v != 0,
                    libc::TCP_QUICKACK => o.quickack = v != 0,
                    libc::TCP_USER_TIMEOUT if v >= 0 => o.user_timeout = v,
                    libc::TCP_LINGER2 => o.linger2 = v,
                    libc::TCP_SYNCNT => o.syncnt = positive(v, 127)?,
                    libc::TCP_DEFER_ACCEPT => o.defer_accept = v.max(0),
                    libc::TCP_WINDOW_CLAMP => o.window_clamp = v.max(0),
                    libc::TCP_MAXSEG => {
                        if !(0..=32767).contains(&v) {
                            return Err(Errno::EINVAL);
                        }
                    }
                    libc::TCP_USER_TIMEOUT => return Err(Errno::EINVAL),
                    _ => return Err(Errno::ENOPROTOOPT),
                }
            }
            libc::IPPROTO_IP => {
                let v = read_int_opt(val)?;
                match name {
                    libc::IP_TOS => s.tcp.tos = v & 0xff,
                    libc::IP_TTL if v == -1 => s.tcp.ttl = 64,
                    libc::IP_TTL if (1..=255).contains(&v) => s.tcp.ttl = v,
                    libc::IP_TTL => return Err(Errno::EINVAL),
                    _ => return Err(Errno::ENOPROTOOPT),
                }
            }
            libc::IPPROTO_IPV6 if self.family == libc::AF_INET6 => {
                let v = read_int_opt(val)?;
                match name {
                    libc::IPV6_V6ONLY => {
                        if s.bound.is_some() {
                            return Err(Errno::EINVAL);
                        }
                        s.tcp.v6only = v != 0;
                    }
                    libc::IPV6_TCLASS if (-1..=255).contains(&v) => s.tcp.tclass = v.max(0),
                    libc::IPV6_UNICAST_HOPS if (-1..=255).contains(&v) => {
                        s.tcp.hops = if v == -1 { 64 } else { v }
                    }
                    libc::IPV6_TCLASS | libc::IPV6_UNICAST_HOPS => return Err(Errno::EINVAL),
                    _ => return Err(Errno::ENOPROTOOPT),
                }
            }
            _ => return Err(Errno::ENOPROTOOPT),
        }
        // Options smoltcp implements take effect on the connection now.
        if let Conn::Connected(h, _) | Conn::Connecting(h, _) = s.conn {
            stack().with(|n| Self::apply(s, n, h));
        }
        Ok(())
    }
}

impl FileOps for TcpSocket {
    fn read(&self, t: &Task, f: &File, buf: &mut [u8], _off: u64) -> KResult<usize> {
        self.do_recv(t, buf, 0, f.nonblocking())
    }

    fn write(&self, t: &Task, f: &File, buf: &[u8], _off: u64) -> KResult<usize> {
        self.do_send(t, buf, 0, f.nonblocking())
    }

    fn stat(&self) -> KResult<Stat> {
        Ok(crate::net::socket::socket_stat(
            self.ino, self.uid, self.gid, self.ctime,
        ))
    }

    fn ioctl(&self, t: &Task, _f: &File, cmd: u32, arg: u64) -> KResult<u64> {
        let n = match libc::c_ulong::from(cmd) {
            libc::FIONREAD => self.inq()?,
            libc::TIOCOUTQ => self.outq()?,
            _ => return crate::net::iface::ioctl(t, cmd, arg).unwrap_or(Err(Errno::ENOTTY)),
        };
        t.mm().write_u32(arg, n.min(i32::MAX as usize) as u32)?;
        Ok(0)
    }

    fn readiness(&self, mask: u32) -> u32 {
        let mut s = lock(&self.st);
        let s = &mut *s;
        let r = stack().peek(|n| {
            self.sync(s, n);
            let mut r = 0;
            match s.conn {
                Conn::Listening => {
                    if n.can_accept(self.id) {
                        r |= POLLIN | POLLRDNORM;
                    }
                }
                // Linux: a socket in CLOSE is hung up and writable.
                Conn::Idle => r |= POLLOUT | POLLWRNORM | POLLHUP,
                Conn::Connecting(..) => {}
                Conn::Connected(h, _) => {
                    let k = n.tcp(h);
                    let st = k.state();
                    let closed = st == TcpState::Closed;
                    let rcv_shut = s.shut & RCV_SHUTDOWN != 0 || fin_received(st) || closed;
                    let snd_shut = s.shut & SEND_SHUTDOWN != 0 || closed;
                    if rcv_shut && snd_shut {
                        r |= POLLHUP;
                    }
                    if rcv_shut {
                        r |= POLLIN | POLLRDNORM | POLLRDHUP;
                    }
                    if k.recv_queue() > 0 {
                        r |= POLLIN | POLLRDNORM;
                    }
                    if snd_shut || k.send_queue() < k.send_capacity() {
                        r |= POLLOUT | POLLWRNORM;
                    }
                }
            }
            r
        });
        let r = if s.err != 0 { r | POLLERR } else { r };
        r & (mask | POLLHUP | POLLERR)
    }

    fn queue(&self) -> Option<&WaitQueue> {
        Some(&self.queue)
    }

    fn as_socket(&self) -> Option<&dyn Socket> {
        Some(self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl ProcSocket for TcpSocket {
    fn proc_row(&self) -> Option<ProcRow> {
        let mut g = lock(&self.st);
        let s = &mut *g;
        let v6 = self.family == libc::AF_INET6;
        stack().peek(|n| {
            self.sync(s, n);
            match s.conn {
                Conn::Idle => None,
                Conn::Listening => {
                    let local = s.bound?;
                    Some(ProcRow {
                        v6,
                        local,
                        remote: SocketAddr::new(unspecified(self.family).ip(), 0),
                        state: TCP_LISTEN,
                        tx_queue: 0,
                        rx_queue: n.accept_queue_len(self.id),
                        uid: self.uid,
                        ino: self.ino,
                    })
                }
                Conn::Connecting(h, remote) | Conn::Connected(h, remote) => {
                    let k = n.tcp(h);
                    if k.state() == TcpState::Closed {
                        return None;
                    }
                    let local = k
                        .local_endpoint()
                        .map(from_endpoint)
                        .or(s.bound)
                        .unwrap_or_else(|| unspecified(self.family));
                    Some(ProcRow {
                        v6,
                        local,
                        remote,
                        state: linux_state(k.state()),
                        tx_queue: k.send_queue(),
                        rx_queue: k.recv_queue(),
                        uid: self.uid,
                        ino: self.ino,
                    })
                }
            }
        })
    }
}
