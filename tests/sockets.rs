//! Sockets: each program runs natively and in the sandbox, and the two
//! runs must print the same thing.

use integration_tests::*;

#[test]
fn py_unix_stream_server_and_errors() {
    // A path-named and an abstract listener, a client per listener, names
    // and peer credentials, then the error paths Linux gives.
    let o = assert_same_spec(&py(r#"
        import socket, os, tempfile, threading, struct, errno
        d = tempfile.mkdtemp()
        path = os.path.join(d, 'sock')
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(path)
        print('mode', oct(os.stat(path).st_mode & 0o170000))
        srv.listen(4)
        print('acceptconn', srv.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))
        def serve(s):
            c, addr = s.accept()
            seen.append(('server sees peer', repr(addr), 'local', c.getsockname() == s.getsockname()))
            while True:
                b = c.recv(100)
                if not b:
                    break
                c.sendall(b.upper())
            c.close()
        seen = []
        th = threading.Thread(target=serve, args=(srv,))
        th.start()
        cl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        cl.connect(path)
        print('peername', cl.getpeername() == path, 'sockname', repr(cl.getsockname()))
        pid, uid, gid = struct.unpack('3i', cl.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        print('peercred', pid == os.getpid(), uid == os.geteuid(), gid == os.getegid())
        cl.sendall(b'hello ')
        cl.sendall(b'world')
        cl.shutdown(socket.SHUT_WR)
        got = b''
        while True:
            b = cl.recv(100)
            if not b:
                break
            got += b
        print(got)
        th.join()
        print(*seen[0])
        cl.close()

        name = b'\0sandbox-test-%d' % os.getpid()
        a = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        a.bind(name)
        a.listen()
        print('abstract name ok', a.getsockname() == name)
        b = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        b.connect(name)
        c, _ = a.accept()
        b.send(b'one'); b.send(b'two')
        print(c.recv(10), c.recv(2), c.recv(10, socket.MSG_DONTWAIT) if False else '')
        x = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            x.bind(name)
        except OSError as e:
            print('rebind abstract', errno.errorcode[e.errno])

        def err(f):
            try:
                f()
                return 'ok'
            except OSError as e:
                return errno.errorcode[e.errno]
        s = socket.socket(socket.AF_UNIX)
        print('connect missing', err(lambda: s.connect(os.path.join(d, 'nope'))))
        open(os.path.join(d, 'file'), 'w').close()
        print('connect file', err(lambda: s.connect(os.path.join(d, 'file'))))
        print('bind existing', err(lambda: socket.socket(socket.AF_UNIX).bind(path)))
        print('listen unbound', err(lambda: socket.socket(socket.AF_UNIX).listen()))
        print('accept unlistened', err(lambda: socket.socket(socket.AF_UNIX).accept()))
        print('dgram listen', err(lambda: socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).listen()))
        print('wrong type', err(lambda: socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).connect(path)))
        print('send unconnected', err(lambda: socket.socket(socket.AF_UNIX).send(b'x')))
        print('recv unconnected', err(lambda: socket.socket(socket.AF_UNIX).recv(1)))
        print('peername unconnected', err(lambda: socket.socket(socket.AF_UNIX).getpeername()))
        srv.close()
        print('connect closed', err(lambda: socket.socket(socket.AF_UNIX).connect(path)))
        s2 = socket.socket(socket.AF_UNIX)
        s2.bind('')
        n = s2.getsockname()
        print('autobind', len(n), n[:1])
        os.unlink(path)
        bl = socket.socket(socket.AF_UNIX)
        bl.bind(path); bl.listen(0); bl.setblocking(False)
        conns = []
        for i in range(4):
            c = socket.socket(socket.AF_UNIX); c.setblocking(False)
            r = err(lambda: c.connect(path))
            conns.append(c)
            if r != 'ok':
                print('backlog full after', i, r)
                break
        print('accept nonblocking', err(lambda: socket.socket(socket.AF_UNIX).accept()))
    "#));
    let out = o.stdout_str();
    assert!(out.contains("b'HELLO WORLD'"), "{out}");
    assert!(out.contains("connect missing ENOENT"), "{out}");
}

#[test]
fn py_unix_datagrams() {
    let o = assert_same_spec(&py(r#"
        import socket, os, tempfile, errno
        d = tempfile.mkdtemp()
        p1, p2 = os.path.join(d, 'a'), os.path.join(d, 'b')
        a = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); a.bind(p1)
        b = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); b.bind(p2)
        a.sendto(b'to b', p2)
        data, addr = b.recvfrom(100)
        print(data, addr == p1)
        u = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        u.sendto(b'anon', p2)
        print(b.recvfrom(100))
        b.connect(p1)
        print('peer', b.getpeername() == p1)
        try:
            u.sendto(b'x', p2)
        except OSError as e:
            print('send to connected-elsewhere', errno.errorcode[e.errno])
        a.sendto(b'ok from peer', p2)
        print(b.recv(100))
        b.send(b'default dest')
        print(a.recv(3, socket.MSG_PEEK), a.recv(100))
        b.sendto(b'x' * 10, p1)
        print('trunc', a.recv(4, socket.MSG_TRUNC))
        b.connect(p1)
        a.close()
        def err(f):
            try:
                f(); return 'ok'
            except OSError as e:
                return errno.errorcode[e.errno]
        print('send to closed peer', err(lambda: b.send(b'x')))
        print('sendto unbound path', err(lambda: u.sendto(b'x', p1)))
        print('send no dest', err(lambda: socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).send(b'x')))
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.setblocking(False)
        print('empty nonblocking', err(lambda: s.recv(1)))
        s.settimeout(0.05)
        print('timeout', err(lambda: s.recv(1)))
    "#));
    assert!(
        o.stdout_str().contains("b'ok from peer'"),
        "{}",
        o.stdout_str()
    );
}

#[test]
fn py_unix_fd_and_credential_passing() {
    // SCM_RIGHTS across fork: the child gets a pipe's write end and a file,
    // writes through both; SCM_CREDENTIALS with SO_PASSCRED carries the
    // sender's pid.
    let o = assert_same_spec(&py(r#"
        import socket, os, tempfile, struct, array
        a, b = socket.socketpair()
        r, w = os.pipe()
        fd, path = tempfile.mkstemp()
        pid = os.fork()
        if pid == 0:
            a.close()
            msg, fds, flags, addr = socket.recv_fds(b, 100, 4)
            os.write(fds[0], b'via pipe ' + msg)
            os.write(fds[1], b'into file')
            os._exit(0)
        b.close()
        socket.send_fds(a, [b'hi'], [w, fd])
        os.close(w)
        os.waitpid(pid, 0)
        print(os.read(r, 100))
        os.lseek(fd, 0, 0)
        print(os.read(fd, 100))

        x, y = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        y.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        x.send(b'c')
        msg, anc, flags, _ = y.recvmsg(10, socket.CMSG_SPACE(12))
        lvl, typ, data = anc[0]
        p, u, g = struct.unpack('3i', data)
        print(msg, typ == socket.SCM_CREDENTIALS, p == os.getpid(), u == os.geteuid())
        creds = struct.pack('3i', os.getpid(), os.getuid(), os.getgid())
        x.sendmsg([b'd'], [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS, creds)])
        print(y.recvmsg(10, socket.CMSG_SPACE(12))[0])
        # Too little control space: the fds that do not fit are dropped.
        x.sendmsg([b'e'], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array('i', [r, r, r]))])
        y.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 0)
        msg, anc, flags, _ = y.recvmsg(10, socket.CMSG_LEN(4))
        print(msg, len(anc), len(anc[0][2]) if anc else 0, bool(flags & socket.MSG_CTRUNC))
        try:
            x.sendmsg([b'f'], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array('i', [999]))])
        except OSError as e:
            print('bad fd', e.errno == 9)
    "#));
    assert!(
        o.stdout_str().starts_with("b'via pipe hi'\nb'into file'\n"),
        "{}",
        o.stdout_str()
    );
}

#[test]
fn py_multiprocessing_manager_and_forkserver() {
    // A Manager serves proxies over an AF_UNIX listener with an
    // authentication handshake; the forkserver start method hands fds to
    // its server with SCM_RIGHTS.
    let o = assert_same_spec(&py(r#"
        import multiprocessing as mp
        def sq(x):
            return x * x
        if __name__ == '__main__':
            with mp.Manager() as m:
                d = m.dict()
                l = m.list([1, 2])
                d['a'] = 1
                l.append(3)
                print(dict(d), list(l))
            ctx = mp.get_context('forkserver')
            with ctx.Pool(2) as p:
                print(p.map(abs, range(-4, 1)))
    "#));
    assert_eq!(o.stdout_str(), "{'a': 1} [1, 2, 3]\n[4, 3, 2, 1, 0]\n");
}

#[test]
fn netlink_route_describes_loopback_like_a_fresh_netns() {
    // The sandbox's network (default --network=sandbox) as iproute2 and
    // glibc see it over NETLINK_ROUTE must match a new network namespace
    // on the host with lo up.
    let script = "ip -o addr; ip -o link; ip route; ip -6 route; \
                  ip -o -4 route show table local; ip -6 route show table all; \
                  python3 -c 'import socket; print(socket.if_nameindex())'";
    if !std::path::Path::new("/usr/sbin/ip").exists() {
        eprintln!("iproute2 missing: skipped");
        return;
    }
    let native = run_native(
        &[
            "unshare",
            "-n",
            "sh",
            "-c",
            &format!("ip link set lo up; {script}"),
        ],
        None,
    );
    assert_eq!(native.code, 0, "{native:?}");
    let sandbox = run_sandbox(&["/bin/sh", "-c", script], None);
    assert_eq!(sandbox.stdout_str(), native.stdout_str(), "{sandbox:?}");
    assert!(sandbox
        .stdout_str()
        .contains("inet 127.0.0.1/8 scope host lo"));
}

#[test]
fn proc_net_unix_lists_the_sandboxs_sockets() {
    let o = assert_same_spec(&py(r#"
        import socket, os, tempfile
        d = tempfile.mkdtemp()
        s = socket.socket(socket.AF_UNIX); s.bind(d + '/srv'); s.listen()
        a = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); a.bind(b'\0abs\0x')
        c = socket.socket(socket.AF_UNIX); c.connect(d + '/srv'); x, _ = s.accept()
        mine = {os.fstat(f.fileno()).st_ino for f in (s, a, c, x)}
        rows = []
        for line in open('/proc/net/unix').read().splitlines()[1:]:
            f = line.split()
            if int(f[6]) in mine:
                rows.append(' '.join([f[3], f[4], f[5], f[7].replace(d, 'D') if len(f) > 7 else '-']))
        print(open('/proc/net/unix').readline().rstrip())
        print('\n'.join(sorted(rows)))
    "#));
    assert!(o.stdout_str().contains("00010000 0001 01 D/srv"), "{o:?}");
}

#[test]
fn proc_net_files_match_a_fresh_netns() {
    if !std::path::Path::new("/usr/sbin/ip").exists() {
        eprintln!("iproute2 missing: skipped");
        return;
    }
    let files = "cat /proc/net/if_inet6 /proc/net/route";
    let native = run_native(
        &[
            "unshare",
            "-n",
            "sh",
            "-c",
            &format!("ip link set lo up; {files}"),
        ],
        None,
    );
    let sandbox = run_sandbox(&["/bin/sh", "-c", files], None);
    assert_eq!(sandbox.stdout_str(), native.stdout_str(), "{sandbox:?}");
}

#[test]
fn host_unix_socket_in_the_image_with_host_uds() {
    // A host server's socket file in the image tree: refused by default,
    // reached through the gofer with --host-uds (stream, both directions,
    // the peer's name and credentials).
    use std::io::{Read, Write};
    let dir = std::path::PathBuf::from(format!("/var/tmp/host-uds-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = dir.join("s");
    let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
    let server = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().expect("accept");
        let mut b = [0u8; 10];
        c.read_exact(&mut b).expect("read");
        c.write_all(&b.to_ascii_uppercase()).expect("write");
    });
    let client = format!(
        "import socket, errno, struct, os\n\
         s = socket.socket(socket.AF_UNIX)\n\
         try:\n    s.connect('{p}')\n\
         except OSError as e:\n    print('error', errno.errorcode[e.errno]); raise SystemExit\n\
         s.sendall(b'hello host')\n\
         print(s.recv(100), s.getpeername() == '{p}')\n\
         pid, uid, gid = struct.unpack('3i', s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))\n\
         print('peer pid is a host pid', pid > 1)\n",
        p = path.display()
    );
    let refused = py(&client).run_sandbox();
    assert_eq!(refused.stdout_str(), "error ECONNREFUSED\n", "{refused:?}");
    let o = py(&client).do_flag("--host-uds").run_sandbox();
    assert_eq!(
        o.stdout_str(),
        "b'HELLO HOST' True\npeer pid is a host pid True\n",
        "{o:?}"
    );
    server.join().expect("server");
    let _ = std::fs::remove_dir_all(&dir);
}

/// O_ASYNC: SIGIO to the F_SETOWN owner (the process, its group, another
/// process) when a unix socket, pipe, TCP or UDP socket becomes readable
/// or (a full pipe) writable; F_SETSIG's signal with si_code and si_band;
/// FIOASYNC.
#[test]
fn py_o_async_sigio_on_sockets_and_pipes() {
    let o = assert_same_spec(&py(r#"
        import socket, os, fcntl, signal, time, select, errno
        # SIGIO to our process group must not reach the caller's (in the
        # sandbox we lead a session already: EPERM).
        try:
            os.setpgid(0, 0)
        except PermissionError:
            pass
        got = []
        signal.signal(signal.SIGIO, lambda s, f: got.append('SIGIO'))
        def take():
            time.sleep(0.05)
            r = list(got); got.clear(); return r
        def arm(fd, owner=None):
            fcntl.fcntl(fd, fcntl.F_SETOWN, owner or os.getpid())
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_ASYNC)
        a, b = socket.socketpair()
        arm(a)
        print('armed', take(), fcntl.fcntl(a, fcntl.F_GETOWN) == os.getpid())
        b.send(b'x'); print('unix data', take())
        a.recv(10); print('after read', take())
        b.send(b'y'); print('more data', take())
        a.recv(10)
        b.close(); print('peer closed', take())
        # A pipe: readers learn of data, writers of room.
        r, w = os.pipe()
        arm(r); os.write(w, b'hi'); print('pipe data', take())
        os.read(r, 10)
        os.set_blocking(w, False)
        arm(w); print('writer armed', take())
        n = 0
        try:
            while True: n += os.write(w, b'z' * 4096)
        except BlockingIOError: pass
        print('filled', 'SIGIO' in take())  # the reader got data (Linux: on every write)
        os.read(r, 65536); print('drained', take())
        # Process group owner, F_SETSIG with the reason, band and fd.
        c, d = socket.socketpair()
        sig = signal.SIGRTMIN + 1
        signal.pthread_sigmask(signal.SIG_BLOCK, [sig, signal.SIGIO])
        fcntl.fcntl(c, 10, sig)  # F_SETSIG
        print('F_GETSIG', fcntl.fcntl(c, 11) == sig)
        arm(c, -os.getpgrp())
        d.send(b'q')
        i = signal.sigtimedwait([sig], 2)
        print('setsig', i.si_signo == sig, i.si_code, hex(i.si_band))
        import struct
        print('F_GETOWN_EX', struct.unpack('ii', fcntl.fcntl(c, 16, b'\0' * 8)) == (2, os.getpgrp()))
        fcntl.fcntl(c, 10, 0)
        c.recv(10); d.send(b'r')
        i = signal.sigtimedwait([signal.SIGIO], 2)
        print('plain', i.si_signo == signal.SIGIO, i.si_code)
        # POLL_OUT with F_SETSIG: a full pipe's writer learns of room.
        fcntl.fcntl(r, fcntl.F_SETFL, 0)
        fcntl.fcntl(w, 10, sig)
        try:
            while True: os.write(w, b'z' * 4096)
        except BlockingIOError: pass
        os.read(r, 65536)
        i = signal.sigtimedwait([sig], 2)
        print('pipe room', i.si_code, hex(i.si_band))
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig, signal.SIGIO])
        # FIOASYNC, and inet sockets: TCP and UDP.
        l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen()
        fcntl.fcntl(l, fcntl.F_SETOWN, os.getpid())
        import array, termios
        fcntl.ioctl(l, termios.FIOASYNC, array.array('i', [1]))
        print('FIOASYNC flag', bool(fcntl.fcntl(l, fcntl.F_GETFL) & os.O_ASYNC))
        e = socket.create_connection(l.getsockname()); print('tcp connection', take())
        s, _ = l.accept(); arm(s); print('accepted', take())
        e.send(b'data'); print('tcp data', take())
        s.recv(10); e.send(b'more'); print('tcp more', take())
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(('127.0.0.1', 0)); arm(u)
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'u', u.getsockname()); print('udp', take())
        fcntl.ioctl(u, termios.FIOASYNC, array.array('i', [0])); u.recv(10)
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'u', u.getsockname()); print('udp off', take())
        # Another process as the owner.
        x, y = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGIO, lambda s, f: os._exit(7))
            time.sleep(5); os._exit(1)
        time.sleep(0.1)
        arm(x, pid); y.send(b'!')
        print('child killed by its handler', os.waitpid(pid, 0)[1] >> 8)
        signal.signal(signal.SIGIO, signal.SIG_IGN)  # closing sockets at exit signals too
    "#));
    assert!(o.stdout_str().contains("setsig True 1 0x41"), "{o:?}");
}
