//! End-to-end tests: a gofer server thread over a socketpair, serving a
//! temporary directory tree, driven by the client and by raw messages.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, IntoRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use gofer::protocol::{
    decode_response, encode_request, peek_tag_op, Op, Reply, Request, Response, HEADER_LEN, MAGIC,
    MAX_MESSAGE, VERSION,
};
use gofer::transport::{recv_msg, send_msg};
use gofer::{Client, Stat};
use nix::errno::Errno;
use nix::sys::socket::{setsockopt, shutdown, sockopt, Shutdown};
use nix::sys::stat::Mode;
use nix::sys::time::{TimeVal, TimeValLike};

const HELLO: &[u8] = b"hello from the gofer\n";
const MANY: usize = 600;

/// A temporary tree, removed on drop.
struct Tree {
    path: PathBuf,
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn long_name(i: usize) -> String {
    format!("{i:04}-{}", "n".repeat(200))
}

fn make_tree(with_many: bool) -> Tree {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "gofer-test-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&path);
    std::fs::create_dir(&path).expect("mkdir root");
    let tree = Tree { path };
    let p = &tree.path;
    std::fs::write(p.join("hello.txt"), HELLO).expect("write hello");
    std::fs::create_dir(p.join("sub")).expect("mkdir sub");
    std::fs::write(p.join("sub/inner.txt"), b"inner").expect("write inner");
    symlink("/", p.join("root_link")).expect("symlink /");
    symlink("../../etc", p.join("etc_link")).expect("symlink etc");
    nix::unistd::mkfifo(&p.join("fifo"), Mode::from_bits_truncate(0o600)).expect("mkfifo");
    std::fs::write(
        p.join(std::ffi::OsStr::from_bytes(b"caf\xe9")),
        b"latin-1 name",
    )
    .expect("write non-utf8");
    if with_many {
        std::fs::create_dir(p.join("many")).expect("mkdir many");
        for i in 0..MANY {
            File::create(p.join("many").join(long_name(i))).expect("create many");
        }
    }
    tree
}

fn open_root(path: &Path) -> OwnedFd {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(path)
        .expect("open root");
    OwnedFd::from(f)
}

/// A running server: the client end of its socket, the tree it serves,
/// and a channel that gets serve()'s result when its thread ends.
struct Running {
    sock: OwnedFd,
    done: Receiver<anyhow::Result<()>>,
    _tree: Tree,
}

fn spawn_server(read_only: bool, with_many: bool) -> Running {
    let tree = make_tree(with_many);
    let root = open_root(&tree.path);
    let (client, server) = gofer::socketpair().expect("socketpair");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(gofer::serve(root, server, read_only));
    });
    // A lost reply must fail the test rather than hang it.
    setsockopt(&client, sockopt::ReceiveTimeout, &TimeVal::seconds(10)).expect("SO_RCVTIMEO");
    Running {
        sock: client,
        done: rx,
        _tree: tree,
    }
}

fn expect_server_exit(done: &Receiver<anyhow::Result<()>>) {
    match done.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("serve failed: {e:#}"),
        Err(e) => panic!("server did not exit: {e}"),
    }
}

/// Runs `f` with a client, then closes it and checks the server exits.
fn with_client(read_only: bool, with_many: bool, f: impl FnOnce(&Client)) {
    let Running { sock, done, _tree } = spawn_server(read_only, with_many);
    let client = Client::new(sock);
    f(&client);
    drop(client);
    expect_server_exit(&done);
}

fn walk_path(c: &Client, root: u64, path: &[&[u8]]) -> Result<(u64, Stat), Errno> {
    let mut cur = (root, c.stat(root)?);
    for name in path {
        cur = c.walk(cur.0, name)?;
    }
    Ok(cur)
}

fn names(entries: &[gofer::DirEntry]) -> BTreeSet<Vec<u8>> {
    entries.iter().map(|e| e.name.clone()).collect()
}

#[test]
fn attach_walk_stat_open_read() {
    with_client(true, false, |c| {
        let (root, st) = c.attach().expect("attach");
        assert!(st.is_dir());
        assert_eq!(c.stat(root).expect("stat root").st_ino, st.st_ino);

        let (fid, st) = c.walk(root, b"hello.txt").expect("walk hello");
        assert!(st.is_file());
        assert_eq!(st.st_size, HELLO.len() as i64);
        assert_eq!(st.st_mode & 0o777, st.st_mode & 0o777);
        assert_eq!(c.stat(fid).expect("stat"), st);

        let fd = c.open(fid, libc::O_RDONLY).expect("open");
        let mut content = Vec::new();
        File::from(fd).read_to_end(&mut content).expect("read");
        assert_eq!(content, HELLO);

        // The donated fd is close-on-exec in the receiver.
        let fd = c.open(fid, libc::O_RDONLY | libc::O_CLOEXEC).expect("open");
        let fdflags = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::F_GETFD).expect("getfd");
        assert_ne!(fdflags & libc::FD_CLOEXEC, 0);

        let (_, inner) = walk_path(c, root, &[b"sub", b"inner.txt"]).expect("walk sub/inner");
        assert_eq!(inner.st_size, 5);

        let (latin, _) = c.walk(root, b"caf\xe9").expect("walk non-utf8");
        let mut s = String::new();
        File::from(c.open(latin, libc::O_RDONLY).expect("open"))
            .read_to_string(&mut s)
            .expect("read");
        assert_eq!(s, "latin-1 name");

        assert_eq!(c.walk(root, b"missing").unwrap_err(), Errno::ENOENT);
        // Walking from a file: not a directory.
        assert_eq!(c.walk(fid, b"x").unwrap_err(), Errno::ENOTDIR);

        // A directory opens with O_DIRECTORY; a file with O_DIRECTORY fails.
        let (sub, _) = c.walk(root, b"sub").expect("walk sub");
        c.open(sub, libc::O_RDONLY | libc::O_DIRECTORY)
            .expect("open dir");
        assert_eq!(
            c.open(fid, libc::O_RDONLY | libc::O_DIRECTORY).unwrap_err(),
            Errno::ENOTDIR
        );

        c.clunk(fid).expect("clunk");
        assert_eq!(c.stat(fid).unwrap_err(), Errno::EBADF);
    });
}

#[test]
fn readdir_lists_everything_but_dots() {
    with_client(true, true, |c| {
        let (root, _) = c.attach().expect("attach");
        let entries = c.readdir(root).expect("readdir");
        let want: BTreeSet<Vec<u8>> = [
            &b"hello.txt"[..],
            b"sub",
            b"root_link",
            b"etc_link",
            b"fifo",
            b"caf\xe9",
            b"many",
        ]
        .iter()
        .map(|n| n.to_vec())
        .collect();
        assert_eq!(names(&entries), want);
        assert_eq!(entries.len(), want.len(), "no duplicates");
        for e in &entries {
            let want_type = match &e.name[..] {
                b"sub" | b"many" => libc::DT_DIR,
                b"root_link" | b"etc_link" => libc::DT_LNK,
                b"fifo" => libc::DT_FIFO,
                _ => libc::DT_REG,
            };
            assert_eq!(e.d_type, want_type, "{:?}", e.name);
            let (fid, st) = c.walk(root, &e.name).expect("walk entry");
            assert_eq!(st.st_ino, e.ino);
            c.clunk(fid).expect("clunk");
        }

        // A listing larger than one message comes in several pages.
        let (many, _) = c.walk(root, b"many").expect("walk many");
        let first = c.readdir_page(many, 0).expect("page");
        assert!(!first.end);
        assert!(!first.entries.is_empty() && first.entries.len() < MANY);
        let all = c.readdir(many).expect("readdir many");
        assert_eq!(all.len(), MANY);
        let want: BTreeSet<Vec<u8>> = (0..MANY).map(|i| long_name(i).into_bytes()).collect();
        assert_eq!(names(&all), want);
        // Restarting from the first page's cookie continues after it.
        let second = c.readdir_page(many, first.next_cookie).expect("page 2");
        assert!(names(&first.entries).is_disjoint(&names(&second.entries)));

        let (sub, _) = c.walk(root, b"sub").expect("walk sub");
        assert_eq!(
            names(&c.readdir(sub).expect("readdir sub")),
            [b"inner.txt".to_vec()].into_iter().collect()
        );
        let (file, _) = c.walk(root, b"hello.txt").expect("walk file");
        assert_eq!(c.readdir(file).unwrap_err(), Errno::ENOTDIR);
    });
}

#[test]
fn symlinks_are_returned_not_followed() {
    with_client(true, false, |c| {
        let (root, _) = c.attach().expect("attach");
        for (name, target) in [(&b"root_link"[..], &b"/"[..]), (b"etc_link", b"../../etc")] {
            let (fid, st) = c.walk(root, name).expect("walk link");
            assert!(st.is_symlink(), "{st:?}");
            assert_eq!(st.st_mode & libc::S_IFMT, libc::S_IFLNK);
            assert!(c.stat(fid).expect("stat link").is_symlink());
            assert_eq!(c.readlink(fid).expect("readlink"), target);
            assert_eq!(c.open(fid, libc::O_RDONLY).unwrap_err(), Errno::ELOOP);
            assert_eq!(
                c.open(fid, libc::O_RDONLY | libc::O_DIRECTORY).unwrap_err(),
                Errno::ELOOP
            );
            // Walking "through" the link does not follow it.
            assert_eq!(c.walk(fid, b"etc").unwrap_err(), Errno::ENOTDIR);
            assert_eq!(c.walk(fid, b"passwd").unwrap_err(), Errno::ENOTDIR);
            assert_eq!(c.readdir(fid).unwrap_err(), Errno::ENOTDIR);
        }
        let (file, _) = c.walk(root, b"hello.txt").expect("walk");
        assert_eq!(c.readlink(file).unwrap_err(), Errno::EINVAL);
    });
}

#[test]
fn fifo_open_does_not_block() {
    with_client(true, false, |c| {
        let (root, _) = c.attach().expect("attach");
        let (fifo, st) = c.walk(root, b"fifo").expect("walk fifo");
        assert_eq!(st.st_mode & libc::S_IFMT, libc::S_IFIFO);
        let fd = c.open(fifo, libc::O_RDONLY).expect("open fifo");
        let fl = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::F_GETFL).expect("getfl");
        assert_eq!(fl & libc::O_NONBLOCK, 0, "O_NONBLOCK restored");
        let fd = c
            .open(fifo, libc::O_RDONLY | libc::O_NONBLOCK)
            .expect("open fifo nonblock");
        let fl = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::F_GETFL).expect("getfl");
        assert_ne!(fl & libc::O_NONBLOCK, 0);
    });
}

#[test]
fn bad_names_are_einval() {
    with_client(true, false, |c| {
        let (root, _) = c.attach().expect("attach");
        for bad in [
            &b".."[..],
            b".",
            b"a/b",
            b"",
            b"/",
            b"a\0b",
            b"../hello.txt",
        ] {
            assert_eq!(c.walk(root, bad).unwrap_err(), Errno::EINVAL, "{bad:?}");
        }
        assert_eq!(c.walk(root, &[b'a'; 256]).unwrap_err(), Errno::ENAMETOOLONG);
        // Names that merely look odd are fine (and here, absent).
        assert_eq!(c.walk(root, b"...").unwrap_err(), Errno::ENOENT);
    });
}

/// A Walk request built by hand, bypassing all client-side checks.
fn raw_walk(tag: u32, dir: u64, name: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&MAGIC.to_le_bytes());
    b.push(VERSION);
    b.push(Op::Walk as u8);
    b.extend_from_slice(&tag.to_le_bytes());
    b.extend_from_slice(&((8 + 2 + name.len()) as u32).to_le_bytes());
    b.extend_from_slice(&dir.to_le_bytes());
    b.extend_from_slice(&(name.len() as u16).to_le_bytes());
    b.extend_from_slice(name);
    b
}

/// Sends raw bytes and returns the decoded reply (panics on none).
fn exchange(sock: &OwnedFd, msg: &[u8]) -> Response {
    send_msg(sock.as_fd(), msg, None).expect("send");
    let mut buf = vec![0u8; MAX_MESSAGE];
    let got = recv_msg(sock.as_fd(), &mut buf).expect("no reply from server");
    assert!(!got.truncated);
    decode_response(&buf[..got.len]).expect("server reply must decode")
}

fn attach_raw(sock: &OwnedFd, tag: u32) -> u64 {
    let resp = exchange(
        sock,
        &encode_request(tag, &Request::Attach).expect("encode"),
    );
    assert_eq!(resp.tag, tag);
    match resp.result {
        Ok(Reply::Attach { fid, stat }) => {
            assert!(stat.is_dir());
            fid
        }
        other => panic!("attach failed: {other:?}"),
    }
}

#[test]
fn server_refuses_bad_names_itself() {
    let Running { sock, done, _tree } = spawn_server(true, false);
    let root = attach_raw(&sock, 1);
    let mut tag = 100;
    for bad in [&b".."[..], b".", b"a/b", b"", b"/etc", b"x\0"] {
        tag += 1;
        let resp = exchange(&sock, &raw_walk(tag, root, bad));
        assert_eq!(resp.tag, tag);
        assert_eq!(resp.op, Op::Walk as u8);
        assert_eq!(resp.result, Err(Errno::EINVAL), "{bad:?}");
    }
    let resp = exchange(&sock, &raw_walk(7, root, &[b'z'; 300]));
    assert_eq!(resp.result, Err(Errno::ENAMETOOLONG));
    let resp = exchange(&sock, &raw_walk(8, root, b"hello.txt"));
    assert!(matches!(resp.result, Ok(Reply::Walk { .. })));
    drop(sock);
    expect_server_exit(&done);
}

#[test]
fn read_only_server_refuses_writes() {
    with_client(true, false, |c| {
        let (root, _) = c.attach().expect("attach");
        let (fid, _) = c.walk(root, b"hello.txt").expect("walk");
        for flags in [
            libc::O_WRONLY,
            libc::O_RDWR,
            libc::O_RDONLY | libc::O_TRUNC,
            libc::O_RDONLY | libc::O_CREAT,
            libc::O_WRONLY | libc::O_APPEND,
            libc::O_RDONLY | libc::O_APPEND,
        ] {
            assert_eq!(c.open(fid, flags).unwrap_err(), Errno::EROFS, "{flags:#o}");
        }
        let (sub, _) = c.walk(root, b"sub").expect("walk sub");
        assert_eq!(
            c.open(sub, libc::O_RDWR | libc::O_DIRECTORY).unwrap_err(),
            Errno::EROFS
        );
        assert_eq!(c.open(fid, libc::O_PATH).unwrap_err(), Errno::EINVAL);
        assert_eq!(c.open(fid, libc::O_ACCMODE).unwrap_err(), Errno::EINVAL);
        // Read-class flags are fine.
        c.open(
            fid,
            libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOFOLLOW,
        )
        .expect("read-class open");
    });
}

#[test]
fn writable_server_allows_write_open_but_not_create() {
    with_client(false, false, |c| {
        let (root, _) = c.attach().expect("attach");
        let (fid, _) = c.walk(root, b"hello.txt").expect("walk");
        let fd = c
            .open(fid, libc::O_WRONLY | libc::O_APPEND)
            .expect("open w");
        nix::unistd::write(&fd, b"more").expect("write");
        assert_eq!(c.stat(fid).expect("stat").st_size, (HELLO.len() + 4) as i64);
        assert_eq!(
            c.open(fid, libc::O_WRONLY | libc::O_CREAT).unwrap_err(),
            Errno::EINVAL
        );
    });
}

#[test]
fn unknown_fid_is_ebadf() {
    with_client(true, false, |c| {
        let (root, _) = c.attach().expect("attach");
        let bogus = 0xdead_beef;
        assert_eq!(c.stat(bogus).unwrap_err(), Errno::EBADF);
        assert_eq!(c.walk(bogus, b"x").unwrap_err(), Errno::EBADF);
        assert_eq!(c.open(bogus, libc::O_RDONLY).unwrap_err(), Errno::EBADF);
        assert_eq!(c.readdir(bogus).unwrap_err(), Errno::EBADF);
        assert_eq!(c.readlink(bogus).unwrap_err(), Errno::EBADF);
        assert_eq!(c.statfs(bogus).unwrap_err(), Errno::EBADF);
        assert_eq!(c.clunk(bogus).unwrap_err(), Errno::EBADF);
        c.clunk(root).expect("clunk");
        assert_eq!(c.clunk(root).unwrap_err(), Errno::EBADF);
        assert_eq!(c.stat(root).unwrap_err(), Errno::EBADF);
    });
}

#[test]
fn statfs_matches_host() {
    let Running { sock, done, _tree } = spawn_server(true, false);
    let host = nix::sys::statfs::statfs(&_tree.path).expect("host statfs");
    let c = Client::new(sock);
    let (root, _) = c.attach().expect("attach");
    let s = c.statfs(root).expect("statfs");
    assert_eq!(s.f_type, host.filesystem_type().0 as u64);
    assert_eq!(s.f_bsize, host.block_size() as u64);
    assert_eq!(s.f_namelen, host.maximum_name_length() as u64);
    assert_eq!(s.f_blocks, host.blocks() as u64);
    assert!(s.f_namelen >= 255);
    // Works on a symlink fid too (O_PATH fd).
    let (link, _) = c.walk(root, b"root_link").expect("walk");
    assert_eq!(c.statfs(link).expect("statfs link").f_type, s.f_type);
    drop(c);
    expect_server_exit(&done);
}

#[test]
fn fid_table_is_capped() {
    with_client(true, false, |c| {
        let mut fids = Vec::new();
        loop {
            match c.attach() {
                Ok((fid, _)) => fids.push(fid),
                Err(e) => {
                    assert_eq!(e, Errno::EMFILE);
                    break;
                }
            }
            assert!(fids.len() <= gofer::MAX_FIDS, "no cap");
        }
        assert_eq!(fids.len(), gofer::MAX_FIDS);
        let (root, last) = (fids[0], fids[fids.len() - 1]);
        assert_eq!(c.walk(root, b"sub").unwrap_err(), Errno::EMFILE);
        c.clunk(last).expect("clunk");
        c.walk(root, b"sub").expect("walk after clunk");
    });
}

#[test]
fn client_is_shared_across_threads() {
    let Running { sock, done, _tree } = spawn_server(true, false);
    let c = Arc::new(Client::new(sock));
    let (root, _) = c.attach().expect("attach");
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let c = Arc::clone(&c);
            thread::spawn(move || {
                for _ in 0..200 {
                    let (fid, st) = c.walk(root, b"hello.txt").expect("walk");
                    assert_eq!(st.st_size, HELLO.len() as i64);
                    c.clunk(fid).expect("clunk");
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    drop(c);
    expect_server_exit(&done);
}

#[test]
fn run_opens_root_by_path() {
    let tree = make_tree(false);
    let (client, server) = gofer::socketpair().expect("socketpair");
    let raw = server.into_raw_fd();
    let path = tree.path.clone();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(gofer::run(&path, raw, true));
    });
    let c = Client::new(client);
    let (root, _) = c.attach().expect("attach");
    assert!(c.walk(root, b"hello.txt").is_ok());
    drop(c);
    expect_server_exit(&rx);
    assert!(gofer::run(Path::new("/nonexistent-gofer-root"), -1, true).is_err());
}

#[test]
fn peer_shutdown_ends_server() {
    let Running { sock, done, _tree } = spawn_server(true, false);
    attach_raw(&sock, 1);
    shutdown(sock.as_raw_fd(), Shutdown::Write).expect("shutdown");
    expect_server_exit(&done);
}

/// Simple xorshift64 PRNG: deterministic, no extra dependencies.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn garbage_gets_error_replies_and_server_survives() {
    let Running { sock, done, _tree } = spawn_server(true, false);
    let root = attach_raw(&sock, 1);
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);

    let check = |msg: &[u8], resp: &Response| {
        let (tag, op) = peek_tag_op(msg);
        assert_eq!(resp.tag, tag, "reply addressed with the request tag");
        assert_eq!(resp.op, op);
    };

    for i in 0..2000 {
        let len = 1 + (rng.next() % 400) as usize;
        let mut msg: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        // Half of them get a plausible header so decoding goes deeper.
        if i % 2 == 0 && msg.len() >= HEADER_LEN {
            msg[0..2].copy_from_slice(&MAGIC.to_le_bytes());
            msg[2] = VERSION;
            msg[3] = (rng.next() % 12) as u8;
            if i % 4 == 0 {
                let plen = (msg.len() - HEADER_LEN) as u32;
                msg[8..12].copy_from_slice(&plen.to_le_bytes());
            }
        }
        let resp = exchange(&sock, &msg);
        check(&msg, &resp);
        // Random fids almost never exist: expect an error, whichever.
        if let Ok(reply) = &resp.result {
            // Only ops without an fid argument can succeed by chance.
            assert!(matches!(reply, Reply::Attach { .. }), "{reply:?}");
        }
    }

    // Every truncation of valid requests, and an over-declared length.
    let valid = [
        raw_walk(77, root, b"hello.txt"),
        encode_request(
            78,
            &Request::Readdir {
                fid: root,
                cookie: 0,
            },
        )
        .expect("encode"),
        encode_request(
            79,
            &Request::Open {
                fid: root,
                flags: 0,
            },
        )
        .expect("encode"),
    ];
    for v in &valid {
        for n in 1..v.len() {
            let resp = exchange(&sock, &v[..n]);
            check(&v[..n], &resp);
            assert_eq!(resp.result, Err(Errno::EINVAL), "cut at {n}");
        }
        let mut over = v.clone();
        over[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(exchange(&sock, &over).result, Err(Errno::EINVAL));
    }

    // Unknown op with a well-formed header: ENOSYS.
    let mut unknown = encode_request(80, &Request::Attach).expect("encode");
    unknown[3] = 0xee;
    let resp = exchange(&sock, &unknown);
    assert_eq!((resp.tag, resp.op), (80, 0xee));
    assert_eq!(resp.result, Err(Errno::ENOSYS));

    // Oversized packets (over 64 KiB): EINVAL, tag still echoed.
    for size in [MAX_MESSAGE + 1, 70_000, 200_000] {
        let mut big = raw_walk(81, root, b"hello.txt");
        big.resize(size, b'A');
        let plen = (size - HEADER_LEN) as u32;
        big[8..12].copy_from_slice(&plen.to_le_bytes());
        let resp = exchange(&sock, &big);
        assert_eq!((resp.tag, resp.result), (81, Err(Errno::EINVAL)));
    }

    // An empty packet is not end of stream: it gets EINVAL too.
    assert_eq!(exchange(&sock, &[]).result, Err(Errno::EINVAL));

    // Fds sent to the server are closed, not leaked: once the server
    // drops the write end, the read end sees EOF.
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK).expect("pipe");
    send_msg(sock.as_fd(), &[1, 2, 3], Some(wr.as_fd())).expect("send fd");
    drop(wr);
    let mut buf = vec![0u8; MAX_MESSAGE];
    let got = recv_msg(sock.as_fd(), &mut buf).expect("reply");
    assert!(decode_response(&buf[..got.len]).is_ok());
    let mut eof = [0u8; 1];
    assert_eq!(nix::unistd::read(rd.as_raw_fd(), &mut eof), Ok(0));

    // The server still works.
    let resp = exchange(&sock, &raw_walk(90, root, b"hello.txt"));
    assert_eq!(resp.tag, 90);
    let Ok(Reply::Walk { fid, stat }) = resp.result else {
        panic!("walk after garbage: {:?}", resp.result);
    };
    assert_eq!(stat.st_size, HELLO.len() as i64);
    drop(sock);
    expect_server_exit(&done);
    assert!(fid > root);

    // And a fresh client on a fresh server still does the full dance.
    with_client(true, false, |c| {
        let (root, _) = c.attach().expect("attach");
        let (f, _) = c.walk(root, b"hello.txt").expect("walk");
        let mut s = Vec::new();
        File::from(c.open(f, libc::O_RDONLY).expect("open"))
            .read_to_end(&mut s)
            .expect("read");
        assert_eq!(s, HELLO);
    });
}
