//! `--network=host`: inet sockets served by host sockets. Programs run
//! natively and in the sandbox (with the flag) and must print the same
//! thing; one test reaches a server in the sandbox from the test process.

use integration_tests::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn hostnet(code: &str) -> Spec {
    py(code).do_flag("--network=host")
}

#[test]
fn http_server_and_urllib_client_in_the_sandbox() {
    let o = assert_same_spec(&hostnet(
        r#"
        import subprocess, sys, os, tempfile, hashlib, urllib.request, re
        d = tempfile.mkdtemp()
        body = b''.join(b'line %d of a file served over http\n' % i for i in range(5000))
        with open(os.path.join(d, 'file.txt'), 'wb') as f:
            f.write(body)
        srv = subprocess.Popen(
            [sys.executable, '-u', '-m', 'http.server', '0', '--bind', '127.0.0.1', '--directory', d],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        line = srv.stdout.readline().decode()
        port = int(re.search(r'port (\d+)', line).group(1))
        print('serving', line.split(' port ')[0])
        with urllib.request.urlopen('http://127.0.0.1:%d/file.txt' % port) as r:
            got = r.read()
            print('status', r.status, r.headers['Content-Type'], r.headers['Content-Length'])
        print('same body', got == body, len(got), hashlib.sha256(got).hexdigest()[:16])
        try:
            urllib.request.urlopen('http://127.0.0.1:%d/missing' % port)
        except urllib.error.HTTPError as e:
            print('missing', e.code)
        srv.terminate()
        print('server exit', srv.wait())
    "#,
    ));
    assert!(o.stdout_str().contains("same body True"), "{o:?}");
}

/// Kills the sandbox if the test fails before it exits.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn sandbox_server_reachable_from_the_host() {
    let code = dedent(
        r#"
        import socket
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(('127.0.0.1', 0))
        s.listen()
        print('ready', s.getsockname()[1], flush=True)
        for _ in range(2):
            c, addr = s.accept()
            n = 0
            while True:
                d = c.recv(65536)
                if not d:
                    break
                c.sendall(d)
                n += len(d)
            c.close()
            print('echoed', n, addr[0], flush=True)
    "#,
    );
    let mut cmd = Command::new(runsc_bin());
    cmd.args([
        "do",
        "--network=host",
        "--",
        "/usr/bin/python3",
        "-c",
        &code,
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .process_group(0);
    let mut child = Reaper(cmd.spawn().expect("starting runsc"));
    let mut out = BufReader::new(child.0.stdout.take().expect("stdout"));
    // A watchdog: a hung sandbox fails the test instead of stalling it.
    let pid = child.0.id();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let d2 = done.clone();
    std::thread::spawn(move || {
        std::thread::sleep(DEFAULT_TIMEOUT);
        if !d2.load(std::sync::atomic::Ordering::SeqCst) {
            let _ = Command::new("kill")
                .args(["-9", &format!("-{pid}")])
                .status();
        }
    });
    let mut line = String::new();
    out.read_line(&mut line).expect("reading the sandbox");
    let port: u16 = line
        .strip_prefix("ready ")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("expected 'ready PORT', got {line:?}"));
    for round in 0..2 {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + round) as u8).collect();
        let writer = {
            let mut w = c.try_clone().expect("clone");
            let data = data.clone();
            std::thread::spawn(move || {
                w.write_all(&data).expect("write");
                w.shutdown(std::net::Shutdown::Write).expect("shutdown");
            })
        };
        let mut got = Vec::new();
        c.read_to_end(&mut got).expect("read");
        writer.join().expect("writer");
        assert!(
            got == data,
            "round {round}: echo differs ({} bytes)",
            got.len()
        );
        line.clear();
        out.read_line(&mut line).expect("reading the sandbox");
        assert_eq!(line, "echoed 300000 127.0.0.1\n");
    }
    let st = child.0.wait().expect("wait");
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut err = String::new();
    if let Some(mut e) = child.0.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    assert!(st.success(), "sandbox exit {st:?}\n{err}");
}

#[test]
fn tcp_error_paths_like_linux() {
    let o = assert_same_spec(&hostnet(
        r#"
        import socket, errno, select, signal, struct
        def err(f):
            try:
                r = f()
                return 'ok' if r is None else r
            except OSError as e:
                return errno.errorcode.get(e.errno, e.errno)

        # Bound but not listening: a connection is refused.
        b = socket.socket()
        b.bind(('127.0.0.1', 0))
        c = socket.socket()
        print('connect refused', err(lambda: c.connect(b.getsockname())))
        print('so_error after', c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))

        l = socket.socket()
        l.bind(('127.0.0.1', 0))
        l.listen(8)
        print('bind in use', err(lambda: socket.socket().bind(l.getsockname())))
        print('listen acceptconn', l.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))
        print('accept nonblocking', err(lambda: (l.setblocking(False), l.accept())[1]))
        l.setblocking(True)

        # Non-blocking connect: EINPROGRESS, then writable with SO_ERROR 0.
        n = socket.socket()
        n.setblocking(False)
        print('nonblocking connect', errno.errorcode.get(n.connect_ex(l.getsockname()), 'ok'))
        select.select([], [n], [], 10)
        print('so_error', n.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
        print('connected to listener', n.getpeername() == l.getsockname())
        a, peer = l.accept()
        print('accept peer', peer == n.getsockname(), 'sockname', a.getsockname() == l.getsockname())
        print('accepted type', a.type, a.family == socket.AF_INET, a.proto)
        print('again', err(lambda: n.connect(l.getsockname())))
        n.setblocking(True)

        # Options: passed through, kept, or refused.
        a.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        print('nodelay', a.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0)
        a.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        print('keepalive', a.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE))
        print('unknown tcp option', err(lambda: a.getsockopt(socket.IPPROTO_TCP, 9999)))
        print('congestion', a.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16).rstrip(b'\0') != b'')
        print('tcp_info', len(a.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)))
        print('type', a.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE))

        # SO_RCVTIMEO: a blocking recv gives up with EAGAIN.
        a.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack('ll', 0, 200000))
        print('rcvtimeo', struct.unpack('ll', a.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16)))
        print('recv timeout', err(lambda: a.recv(10)))

        # Data, FIONREAD, MSG_PEEK, MSG_WAITALL, shutdown.
        import fcntl, termios, array
        n.sendall(b'0123456789')
        select.select([a], [], [], 10)
        buf = array.array('i', [0])
        fcntl.ioctl(a.fileno(), termios.FIONREAD, buf)
        print('fionread', buf[0])
        print('peek', a.recv(4, socket.MSG_PEEK))
        print('waitall', a.recv(10, socket.MSG_WAITALL))
        n.shutdown(socket.SHUT_WR)
        print('eof', a.recv(10))
        print('shutdown bad how', err(lambda: n.shutdown(7)))

        # The peer resets (SO_LINGER 0): ECONNRESET once, then EPIPE with
        # SIGPIPE, which a handler sees.
        pipes = []
        signal.signal(signal.SIGPIPE, lambda s, f: pipes.append(s))
        a.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        a.close()
        select.select([n], [], [], 10)
        print('write after reset', err(lambda: n.send(b'x')))
        print('write again', err(lambda: n.send(b'x')))
        print('sigpipe', pipes)
        print('peername after reset', err(lambda: n.getpeername()))
        print('read unconnected', err(lambda: socket.socket().recv(1)))
        print('write unconnected', err(lambda: socket.socket().send(b'x', socket.MSG_NOSIGNAL)))
        print('sigpipe still', pipes)
        print('peername unconnected', err(lambda: socket.socket().getpeername()))
        print('sockname unbound', socket.socket().getsockname())
        print('listen then connect', err(lambda: l.connect(l.getsockname())))
        print('seqpacket', err(lambda: socket.socket(socket.AF_INET, socket.SOCK_SEQPACKET)))
        print('socketpair', err(lambda: socket.socketpair(socket.AF_INET)))
    "#,
    ));
    let out = o.stdout_str();
    assert!(out.contains("connect refused ECONNREFUSED"), "{out}");
    assert!(out.contains("bind in use EADDRINUSE"), "{out}");
    assert!(out.contains("recv timeout EAGAIN"), "{out}");
    assert!(out.contains("write again EPIPE"), "{out}");
}

#[test]
fn signals_timeouts_and_urgent_data_like_linux() {
    assert_same_spec(&hostnet(
        r#"
        import socket, signal, struct, errno, select, fcntl, array
        def err(f):
            try:
                r = f()
                return 'ok' if r is None else r
            except OSError as e:
                return errno.errorcode.get(e.errno, e.errno)
        l = socket.socket()
        l.bind(('127.0.0.1', 0))
        l.listen()
        a = socket.create_connection(l.getsockname())
        b, _ = l.accept()

        # A signal whose handler raises interrupts a blocking recv.
        class Alarm(Exception):
            pass
        def on_alarm(s, f):
            raise Alarm()
        signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        try:
            b.recv(10)
        except Alarm:
            print('recv interrupted by the handler')
        # A handler that returns: the recv goes on (PEP 475) and gets data.
        hits = []
        signal.signal(signal.SIGALRM, lambda s, f: (hits.append(s), a.send(b'late')))
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        print('recv after signal', b.recv(10), hits)

        # SO_SNDTIMEO: a blocking send into a full buffer returns what it
        # queued, and EAGAIN when it queued nothing.
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack('ll', 0, 100000))
        big = b'x' * (64 << 20)
        n = a.send(big)
        print('partial send', 0 < n < len(big))
        # The receive window may still open a little: send until the
        # timeout finds no room at all.
        r = None
        for _ in range(100):
            r = err(lambda: a.send(big))
            if not isinstance(r, int):
                break
        print('full', r)
        b.close()
        a.close()

        # Urgent data.
        a = socket.create_connection(l.getsockname())
        b, _ = l.accept()
        a.send(b'ab')
        a.send(b'!', socket.MSG_OOB)
        a.send(b'cd')
        select.select([b], [], [], 5)
        print('oob', b.recv(1, socket.MSG_OOB))
        buf = array.array('i', [0])
        fcntl.ioctl(b.fileno(), 0x8905, buf)  # SIOCATMARK
        print('at mark', buf[0])
        print('data', b.recv(2))
        fcntl.ioctl(b.fileno(), 0x8905, buf)
        print('at mark now', buf[0])
        print('no more oob', err(lambda: b.recv(1, socket.MSG_OOB)))
        print('empty read', b.recv(0))
        # SO_RCVLOWAT: a blocking recv takes what is there and waits for
        # more (Linux wakes it once that many bytes are queued anew).
        import threading, time
        print('left', b.recv(2))
        b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 5)
        print('rcvlowat', b.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT))
        a.send(b'ab')
        threading.Thread(target=lambda: (time.sleep(0.2), a.send(b'cdefgh'))).start()
        print('lowat recv', b.recv(100))
        a.send(b'xyz')
        print('lowat above len', b.recv(2), b.recv(1))
        import os
        print('reopen', err(lambda: os.open('/proc/self/fd/%d' % b.fileno(), os.O_RDWR)))
        print('fd link', os.readlink('/proc/self/fd/%d' % b.fileno()).startswith('socket:['))

        # A full accept queue drops SYNs: a blocking connect waits, bounded
        # by SO_SNDTIMEO (then EINPROGRESS) or cut short by a signal.
        q = socket.socket()
        q.bind(('127.0.0.1', 0))
        q.listen(0)
        first = socket.create_connection(q.getsockname())
        c = socket.socket()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack('ll', 0, 200000))
        print('connect timeout', err(lambda: c.connect(q.getsockname())))
        print('connect again', err(lambda: c.connect(q.getsockname())))
        signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        try:
            socket.socket().connect(q.getsockname())
        except Alarm:
            print('connect interrupted by the handler')
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        try:
            l.accept()
        except Alarm:
            print('accept interrupted by the handler')
    "#,
    ));
}

#[test]
fn udp_ipv6_and_interfaces_like_linux() {
    assert_same_spec(&hostnet(
        r#"
        import socket, errno, struct, fcntl, ctypes
        def err(f):
            try:
                r = f()
                return 'ok' if r is None else r
            except OSError as e:
                return errno.errorcode.get(e.errno, e.errno)

        u1 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u1.bind(('127.0.0.1', 0))
        u2.bind(('127.0.0.1', 0))
        print('proto', u1.proto, u1.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL))
        u1.sendto(b'first datagram', u2.getsockname())
        data, addr = u2.recvfrom(100)
        print(data, 'from sender', addr == u1.getsockname())
        u1.sendto(b'truncated datagram', u2.getsockname())
        data, anc, flags, addr = u2.recvmsg(9)
        print(data, anc, 'trunc', bool(flags & socket.MSG_TRUNC), addr == u1.getsockname())
        u1.sendto(b'peek', u2.getsockname())
        print(u2.recv(100, socket.MSG_PEEK), u2.recv(100))
        print('nothing', err(lambda: u2.recv(10, socket.MSG_DONTWAIT)))
        u1.connect(u2.getsockname())
        u1.send(b'connected')
        print(u2.recvfrom(100)[0], 'peer', u1.getpeername() == u2.getsockname())
        print('big', err(lambda: u1.send(b'x' * 70000)))
        u1.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        print('broadcast', u1.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST))
        u1.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 7)
        print('ttl', u1.getsockopt(socket.IPPROTO_IP, socket.IP_TTL))
        print('ping socket', err(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)))

        # IPv6 on ::1.
        try:
            l6 = socket.socket(socket.AF_INET6)
            l6.bind(('::1', 0))
        except OSError as e:
            print('no ipv6', errno.errorcode[e.errno])
        else:
            print('v6only default', l6.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY))
            l6.listen()
            c6 = socket.create_connection(l6.getsockname()[:2])
            a6, peer = l6.accept()
            print('v6 peer', peer == c6.getsockname(), peer[0])
            c6.sendall(b'over ipv6')
            print(a6.recv(100))
            m = socket.socket(socket.AF_INET6)
            m.bind(('::', 0))
            print('v4-mapped sockname', m.getsockname()[0])
            u6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            u6.bind(('::1', 0))
            u6.sendto(b'udp6', u6.getsockname())
            d, a = u6.recvfrom(10)
            print(d, a == u6.getsockname())
            print('v4 addr on v6 socket', err(lambda: u6.sendto(b'x', ('127.0.0.1', 1))))

        # Interface queries go to the host's ioctls.
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        r = fcntl.ioctl(s.fileno(), 0x8933, struct.pack('16si20x', b'lo', 0))  # SIOCGIFINDEX
        idx = struct.unpack('16si20x', r)[1]
        print('lo index', idx > 0)
        r = fcntl.ioctl(s.fileno(), 0x8910, struct.pack('16si20x', b'', idx))  # SIOCGIFNAME
        print('name of index', r[:16].rstrip(b'\0'))
        r = fcntl.ioctl(s.fileno(), 0x8913, struct.pack('16sH22x', b'lo', 0))  # SIOCGIFFLAGS
        print('lo flags up+loopback', struct.unpack('16sH22x', r)[1] & 0x9)
        r = fcntl.ioctl(s.fileno(), 0x8915, struct.pack('16s24x', b'lo'))  # SIOCGIFADDR
        print('lo addr', socket.inet_ntoa(r[20:24]))
        r = fcntl.ioctl(s.fileno(), 0x891b, struct.pack('16s24x', b'lo'))  # SIOCGIFNETMASK
        print('lo netmask', socket.inet_ntoa(r[20:24]))
        r = fcntl.ioctl(s.fileno(), 0x8921, struct.pack('16si20x', b'lo', 0))  # SIOCGIFMTU
        print('lo mtu', struct.unpack('16si20x', r)[1])
        r = fcntl.ioctl(s.fileno(), 0x8927, struct.pack('16s24x', b'lo'))  # SIOCGIFHWADDR
        print('lo hw family', struct.unpack('H', r[16:18])[0])
        print('no such if', err(lambda: fcntl.ioctl(s.fileno(), 0x8933, struct.pack('16si20x', b'nosuchif0', 0))))
        buf = ctypes.create_string_buffer(40 * 64)
        r = fcntl.ioctl(s.fileno(), 0x8912, struct.pack('iL', len(buf), ctypes.addressof(buf)))  # SIOCGIFCONF
        n = struct.unpack('iL', r)[0]
        names = [buf.raw[i:i + 16].rstrip(b'\0') for i in range(0, n, 40)]
        print('ifconf', n % 40, b'lo' in names, sorted(names))
        r = fcntl.ioctl(s.fileno(), 0x8912, struct.pack('iL', 0, 0))
        print('ifconf length only', struct.unpack('iL', r)[0] == n)
        print('unknown ioctl', err(lambda: fcntl.ioctl(s.fileno(), 0x5401, b'\0' * 40)))
    "#,
    ));
}

#[test]
fn privileged_operations_are_refused() {
    // Natively root may open a raw socket (CAP_NET_RAW) or set options that
    // need CAP_NET_ADMIN; the sandbox never lets the guest use the host
    // privileges the sentry might have.
    let o = hostnet(
        r#"
        import socket, errno
        def err(f):
            try:
                r = f()
                return 'ok' if r is None else r
            except OSError as e:
                return errno.errorcode.get(e.errno, e.errno)
        for fam in (socket.AF_INET, socket.AF_INET6):
            print('raw', err(lambda: socket.socket(fam, socket.SOCK_RAW, socket.IPPROTO_ICMP)))
        s = socket.socket()
        print('mark', err(lambda: s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, 1)))
        print('priority 7', err(lambda: s.setsockopt(socket.SOL_SOCKET, socket.SO_PRIORITY, 7)))
        print('priority 3', err(lambda: s.setsockopt(socket.SOL_SOCKET, socket.SO_PRIORITY, 3)))
        print('rcvbufforce', err(lambda: s.setsockopt(socket.SOL_SOCKET, 33, 1 << 20)))
        print('transparent', err(lambda: s.setsockopt(socket.IPPROTO_IP, 19, 1)))
        print('bindtodevice', err(lambda: s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b'lo')))
        print('congestion', err(lambda: s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, b'bbr')))
        print('congestion cubic', err(lambda: s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, b'cubic')))
    "#,
    )
    .run_sandbox();
    assert_eq!(
        o.stdout_str(),
        "raw EPERM\nraw EPERM\nmark EPERM\npriority 7 EPERM\npriority 3 ok\n\
         rcvbufforce EPERM\ntransparent EPERM\nbindtodevice ENOPROTOOPT\n\
         congestion ENOENT\ncongestion cubic ok\n",
        "{o:?}"
    );
    // With --network=none, inet sockets come from the sentry's loopback
    // stack: nothing outside is reachable.
    let o = py("import socket\ntry:\n socket.socket().connect(('192.0.2.1', 80))\nexcept OSError as e:\n print(e.errno)\n")
        .do_flag("--network=none")
        .run_sandbox();
    assert_eq!(o.stdout_str(), "101\n", "{o:?}");
}

#[test]
fn epoll_edges_on_host_sockets_like_linux() {
    // Edge-triggered entries report once per edge: not again while nothing
    // happens (an idle writable socket), again when new data arrives even
    // if earlier data is still unread.
    assert_same_spec(&hostnet(
        r#"
        import socket, select
        l = socket.socket()
        l.bind(('127.0.0.1', 0))
        l.listen()
        a = socket.create_connection(l.getsockname())
        b, _ = l.accept()
        ep = select.epoll()
        ep.register(b.fileno(), select.EPOLLIN | select.EPOLLOUT | select.EPOLLET)
        print('first', ep.poll(5))
        print('idle', ep.poll(0.2))
        a.send(b'one')
        print('data', ep.poll(5))
        print('nothing new', ep.poll(0.2))
        print(b.recv(1))
        print('partial read, no edge', ep.poll(0.2))
        a.send(b'two')
        print('more data', ep.poll(5))
        print(b.recv(100))
        a.close()
        print('peer closed', ep.poll(5))
        print('after hup', ep.poll(0.2))
        lt = select.epoll()
        c = socket.create_connection(l.getsockname())
        d, _ = l.accept()
        lt.register(d.fileno(), select.EPOLLIN)
        print('level idle', lt.poll(0.2))
        c.send(b'x')
        print('level data', lt.poll(5), lt.poll(5))
        p = select.poll()
        p.register(d.fileno(), select.POLLIN | select.POLLOUT)
        print('poll ready', p.poll(5))
        # A socket added while another thread already waits on the set.
        import threading, time
        e2 = select.epoll()
        got = []
        w = threading.Thread(target=lambda: got.append(e2.poll(40)))
        w.start()
        time.sleep(0.2)
        f = socket.create_connection(l.getsockname())
        g, _ = l.accept()
        e2.register(g.fileno(), select.EPOLLIN)
        time.sleep(0.2)
        f.send(b'late data')
        # Only a hang detector: a missed wake-up would sleep the whole 40 s.
        w.join(20)
        print('waiter woke', not w.is_alive())
        w.join()
        print('added while waiting', [ev for fd, ev in got[0]])
    "#,
    ));
}

#[test]
fn epoll_edge_triggered_server_and_big_transfer() {
    // An edge-triggered epoll echo server (non-blocking, drains to EAGAIN
    // on each edge) with several concurrent clients, one of them moving
    // 20 MB; a missed edge hangs it, so this also checks host edges.
    let o = assert_same_spec(
        &hostnet(
            r#"
        import socket, select, threading, hashlib, random
        ET = select.EPOLLET
        srv = socket.socket()
        srv.bind(('127.0.0.1', 0))
        srv.listen(64)
        srv.setblocking(False)
        ep = select.epoll()
        ep.register(srv.fileno(), select.EPOLLIN | ET)
        sizes = [20 << 20, 1 << 20, 300000, 5, 70000]
        def server():
            conns = {}
            closed = 0
            while closed < len(sizes):
                for fd, ev in ep.poll():
                    if fd == srv.fileno():
                        while True:
                            try:
                                c, _ = srv.accept()
                            except BlockingIOError:
                                break
                            c.setblocking(False)
                            conns[c.fileno()] = [c, bytearray(), False]
                            ep.register(c.fileno(), select.EPOLLIN | select.EPOLLOUT | select.EPOLLRDHUP | ET)
                        continue
                    st = conns[fd]
                    c, out = st[0], st[1]
                    while not st[2]:
                        try:
                            d = c.recv(1 << 16)
                        except BlockingIOError:
                            break
                        if not d:
                            st[2] = True
                        out += d
                    while out:
                        try:
                            n = c.send(out)
                        except BlockingIOError:
                            break
                        del out[:n]
                    if st[2] and not out:
                        ep.unregister(fd)
                        c.close()
                        del conns[fd]
                        closed += 1
        th = threading.Thread(target=server)
        th.start()
        results = {}
        def client(i, size):
            data = random.Random(i).randbytes(size)
            c = socket.create_connection(srv.getsockname())
            def send():
                c.sendall(data)
                c.shutdown(socket.SHUT_WR)
            w = threading.Thread(target=send)
            w.start()
            h = hashlib.sha256()
            n = 0
            while True:
                d = c.recv(1 << 16)
                if not d:
                    break
                h.update(d)
                n += len(d)
            w.join()
            c.close()
            results[i] = (n, h.hexdigest() == hashlib.sha256(data).hexdigest(), h.hexdigest()[:16])
        cs = [threading.Thread(target=client, args=(i, s)) for i, s in enumerate(sizes)]
        for t in cs:
            t.start()
        for t in cs:
            t.join()
        th.join()
        for i in sorted(results):
            print(i, *results[i])
    "#,
        )
        .timeout(Duration::from_secs(120)),
    );
    assert!(o.stdout_str().contains("0 20971520 True"), "{o:?}");
}

#[test]
fn asyncio_streams_server_and_clients() {
    assert_same_spec(&hostnet(
        r#"
        import asyncio
        async def handle(r, w):
            while True:
                line = await r.readline()
                if not line:
                    break
                w.write(line.upper())
                await w.drain()
            w.close()
            await w.wait_closed()
        async def client(port, i):
            r, w = await asyncio.open_connection('127.0.0.1', port)
            got = []
            for j in range(20):
                w.write(b'client %d line %d\n' % (i, j))
                await w.drain()
                got.append(await r.readline())
            w.close()
            await w.wait_closed()
            return got[0], got[-1], len(got)
        async def main():
            srv = await asyncio.start_server(handle, '127.0.0.1', 0)
            port = srv.sockets[0].getsockname()[1]
            res = await asyncio.gather(*(client(port, i) for i in range(8)))
            srv.close()
            await srv.wait_closed()
            for r in res:
                print(*r)
        asyncio.run(main())
    "#,
    ));
}

/// ICMP echo sockets pass through to the host, which decides who may
/// create them (its net.ipv4.ping_group_range, shown read-only).
#[test]
fn ping_sockets_follow_the_host() {
    assert_same_spec(&hostnet(
        r#"
        import socket, errno, struct, select
        rng = open('/proc/sys/net/ipv4/ping_group_range').read()
        print('range', rng.encode())
        lo, hi = map(int, rng.split())
        try:
            p = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
        except OSError as e:
            print('ping socket', errno.errorcode[e.errno])
        else:
            p.sendto(struct.pack('!BBHHH', 8, 0, 0, 0, 1) + b'hi', ('127.0.0.1', 0))
            select.select([p], [], [], 5)
            d = p.recv(100)
            print('reply', d[0], d[6:])
    "#,
    ));
}

/// Name resolution with host sockets: localhost from /etc/hosts, and the
/// resolver's setup (glibc sets IP_RECVERR on its UDP socket).
#[test]
fn getaddrinfo_localhost() {
    assert_same_spec(&hostnet(
        r#"
        import socket, subprocess
        print(sorted(set(a[4][0] for a in socket.getaddrinfo('localhost', 80, socket.AF_INET))))
        print(socket.gethostbyname('localhost'))
        r = subprocess.run(['getent', 'hosts', 'localhost'], capture_output=True, text=True)
        print(r.returncode, r.stdout.split()[:1])
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.setsockopt(socket.IPPROTO_IP, 11, 1)
        print('IP_RECVERR', u.getsockopt(socket.IPPROTO_IP, 11))
    "#,
    ));
}
