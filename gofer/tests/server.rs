//! End-to-end tests: a gofer server thread over a socketpair, serving a
//! temporary directory tree, driven by the client and by raw messages.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, IntoRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use gofer::protocol::{
    decode_response, encode_request, peek_tag_op, Op, Reply, Request, Response, SetAttr,
    HEADER_LEN, MAGIC, MAX_MESSAGE, SETATTR_ATIME, SETATTR_GID, SETATTR_MODE, SETATTR_MTIME,
    SETATTR_SIZE, SETATTR_UID, VERSION,
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

/// Like [`with_client`], also giving the path of the served tree.
fn with_tree(read_only: bool, f: impl FnOnce(&Client, &Path)) {
    let Running { sock, done, _tree } = spawn_server(read_only, false);
    let client = Client::new(sock);
    f(&client, &_tree.path);
    drop(client);
    expect_server_exit(&done);
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
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
    garbage_run(true);
}

#[test]
fn garbage_on_a_writable_server() {
    garbage_run(false);
}

fn garbage_run(read_only: bool) {
    let Running { sock, done, _tree } = spawn_server(read_only, false);
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
            // Every op, and a few unknown ones.
            msg[3] = (rng.next() % 24) as u8;
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
    ]
    .into_iter()
    .chain(
        write_requests(root)
            .iter()
            .map(|r| encode_request(82, r).expect("encode")),
    )
    .collect::<Vec<_>>();
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

    // Nothing the garbage did reached the tree (random fids never exist).
    let mut listing: Vec<_> = std::fs::read_dir(&_tree.path)
        .expect("read tree")
        .map(|e| e.expect("entry").file_name().into_vec())
        .collect();
    listing.sort();
    let mut want: Vec<Vec<u8>> = [
        &b"hello.txt"[..],
        b"sub",
        b"root_link",
        b"etc_link",
        b"fifo",
        b"caf\xe9",
    ]
    .iter()
    .map(|n| n.to_vec())
    .collect();
    want.sort();
    assert_eq!(listing, want);

    // And a fresh client on a fresh server still does the full dance.
    with_client(read_only, false, |c| {
        let (root, _) = c.attach().expect("attach");
        let (f, _) = c.walk(root, b"hello.txt").expect("walk");
        let mut s = Vec::new();
        File::from(c.open(f, libc::O_RDONLY).expect("open"))
            .read_to_end(&mut s)
            .expect("read");
        assert_eq!(s, HELLO);
    });
}

/// One well-formed request of every op that changes the tree, aimed at
/// the tree's root fid `root`.
fn write_requests(root: u64) -> Vec<Request> {
    vec![
        Request::Create {
            dir: root,
            name: b"new".to_vec(),
            flags: libc::O_RDWR,
            mode: 0o644,
            uid: 0,
            gid: 0,
        },
        Request::Mkdir {
            dir: root,
            name: b"newdir".to_vec(),
            mode: 0o755,
            uid: 0,
            gid: 0,
        },
        Request::Symlink {
            dir: root,
            name: b"newlink".to_vec(),
            target: b"hello.txt".to_vec(),
            uid: 0,
            gid: 0,
        },
        Request::Link {
            dir: root,
            name: b"hard".to_vec(),
            target: root,
        },
        Request::Mknod {
            dir: root,
            name: b"newfifo".to_vec(),
            mode: libc::S_IFIFO | 0o600,
            rdev: 0,
            uid: 0,
            gid: 0,
        },
        Request::Unlink {
            dir: root,
            name: b"hello.txt".to_vec(),
            flags: 0,
        },
        Request::Rename {
            old_dir: root,
            old_name: b"hello.txt".to_vec(),
            new_dir: root,
            new_name: b"moved".to_vec(),
            flags: 0,
        },
        Request::SetAttr {
            fid: root,
            attr: SetAttr {
                mask: SETATTR_MODE,
                mode: 0o700,
                ..SetAttr::default()
            },
        },
        Request::SetXattr {
            fid: root,
            name: b"user.x".to_vec(),
            value: b"v".to_vec(),
            flags: 0,
        },
        Request::RemoveXattr {
            fid: root,
            name: b"user.x".to_vec(),
        },
    ]
}

fn mode_of(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).expect("lstat").mode()
}

fn read_all(fd: OwnedFd) -> Vec<u8> {
    let mut v = Vec::new();
    File::from(fd).read_to_end(&mut v).expect("read");
    v
}

#[test]
fn create_honours_mode_owner_and_donates_fd() {
    with_tree(false, |c, path| {
        let (root, _) = c.attach().expect("attach");
        // The test process's umask (typically 022) must not interfere.
        let old = nix::sys::stat::umask(Mode::from_bits_truncate(0o077));
        let (fid, st, fd) = c
            .create(root, b"new.txt", libc::O_RDWR, 0o666, 4321, 8765)
            .expect("create");
        nix::sys::stat::umask(old);
        assert!(st.is_file());
        assert_eq!(st.st_mode & 0o7777, 0o666);
        assert_eq!(mode_of(&path.join("new.txt")) & 0o7777, 0o666);
        if is_root() {
            assert_eq!((st.st_uid, st.st_gid), (4321, 8765));
        }
        let fl = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::F_GETFL).expect("getfl");
        assert_eq!(fl & libc::O_ACCMODE, libc::O_RDWR);
        let fdflags = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::F_GETFD).expect("getfd");
        assert_ne!(fdflags & libc::FD_CLOEXEC, 0);
        nix::unistd::write(&fd, b"written").expect("write");
        assert_eq!(c.stat(fid).expect("stat").st_size, 7);
        assert_eq!(
            std::fs::read(path.join("new.txt")).expect("read"),
            b"written"
        );
        // The new fid is a normal one: walkable siblings, reopenable.
        assert_eq!(
            read_all(c.open(fid, libc::O_RDONLY).expect("open")),
            b"written"
        );
        let (again, st2) = c.walk(root, b"new.txt").expect("walk");
        assert_eq!(st2.st_ino, st.st_ino);
        c.clunk(again).expect("clunk");

        // Set-ID bits are kept exactly (the gofer's chown comes first).
        let (_, st, _) = c
            .create(root, b"suid", libc::O_WRONLY, 0o4755, 0, 0)
            .expect("create suid");
        assert_eq!(st.st_mode & 0o7777, 0o4755);
        // Mode 0: still created and written through the donated fd.
        let (_, st, fd) = c
            .create(root, b"nomode", libc::O_WRONLY, 0, 0, 0)
            .expect("create 000");
        assert_eq!(st.st_mode & 0o7777, 0);
        nix::unistd::write(&fd, b"x").expect("write to mode 000");

        // Existing names, even symlinks (dangling or not), are EEXIST.
        for name in [
            &b"hello.txt"[..],
            b"sub",
            b"root_link",
            b"etc_link",
            b"fifo",
        ] {
            assert_eq!(
                c.create(root, name, libc::O_RDWR, 0o644, 0, 0).unwrap_err(),
                Errno::EEXIST,
                "{name:?}"
            );
        }
        assert_eq!(std::fs::read(path.join("hello.txt")).expect("read"), HELLO);
        // Flags: no O_DIRECTORY / O_TMPFILE / O_PATH, bad access mode.
        for flags in [
            libc::O_RDWR | libc::O_DIRECTORY,
            libc::O_RDWR | libc::O_TMPFILE,
            libc::O_PATH,
            libc::O_ACCMODE,
        ] {
            assert_eq!(
                c.create(root, b"bad", flags, 0o644, 0, 0).unwrap_err(),
                Errno::EINVAL,
                "{flags:#o}"
            );
        }
        assert!(!path.join("bad").exists());
        // O_CREAT/O_EXCL/O_TRUNC are implied or ignored.
        c.create(
            root,
            b"flags",
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_TRUNC | libc::O_CLOEXEC,
            0o600,
            0,
            0,
        )
        .expect("create with redundant flags");
        // Not in a file, nor through a symlink to a directory.
        let (file, _) = c.walk(root, b"hello.txt").expect("walk");
        assert_eq!(
            c.create(file, b"x", libc::O_RDWR, 0o644, 0, 0).unwrap_err(),
            Errno::ENOTDIR
        );
        let (link, _) = c.walk(root, b"root_link").expect("walk");
        assert_eq!(
            c.create(link, b"x", libc::O_RDWR, 0o644, 0, 0).unwrap_err(),
            Errno::ENOTDIR
        );
        // Inside a subdirectory.
        let (sub, _) = c.walk(root, b"sub").expect("walk");
        c.create(sub, b"deep", libc::O_RDONLY, 0o640, 0, 0)
            .expect("create in sub");
        assert_eq!(mode_of(&path.join("sub/deep")) & 0o7777, 0o640);
    });
}

#[test]
fn mkdir_symlink_mknod() {
    with_tree(false, |c, path| {
        let (root, _) = c.attach().expect("attach");
        let old = nix::sys::stat::umask(Mode::from_bits_truncate(0o077));
        let (d, st) = c.mkdir(root, b"dir", 0o777, 1, 2).expect("mkdir");
        nix::sys::stat::umask(old);
        assert!(st.is_dir());
        assert_eq!(st.st_mode & 0o7777, 0o777);
        if is_root() {
            assert_eq!((st.st_uid, st.st_gid), (1, 2));
        }
        assert_eq!(
            c.mkdir(root, b"dir", 0o755, 0, 0).unwrap_err(),
            Errno::EEXIST
        );
        assert_eq!(
            c.mkdir(root, b"root_link", 0o755, 0, 0).unwrap_err(),
            Errno::EEXIST
        );
        // The new fid is a directory fid: usable as a parent at once.
        let (f, _, _) = c
            .create(d, b"f", libc::O_RDWR, 0o600, 0, 0)
            .expect("create");
        assert!(path.join("dir/f").is_file());
        assert_eq!(
            names(&c.readdir(d).expect("readdir")),
            [b"f".to_vec()].into()
        );
        c.clunk(f).expect("clunk");

        // Set-group-ID directories: group and bit are inherited.
        let (sg, _) = c.mkdir(root, b"sgid", 0o2775, 0, 77).expect("mkdir sgid");
        let (sgd, st) = c.mkdir(sg, b"child", 0o755, 0, 99).expect("mkdir child");
        assert_eq!(st.st_mode & 0o7777, 0o2755);
        let (_, fst, _) = c
            .create(sg, b"file", libc::O_RDWR, 0o644, 0, 99)
            .expect("create");
        if is_root() {
            assert_eq!((st.st_gid, fst.st_gid), (77, 77));
        }
        assert_eq!(fst.st_mode & 0o7777, 0o644);
        c.clunk(sgd).expect("clunk");

        // Symlinks: the target is stored verbatim and never resolved.
        let (l, st) = c
            .symlink(root, b"out", b"../../../etc/passwd", 5, 6)
            .expect("symlink");
        assert!(st.is_symlink());
        assert_eq!(c.readlink(l).expect("readlink"), b"../../../etc/passwd");
        if is_root() {
            assert_eq!((st.st_uid, st.st_gid), (5, 6));
        }
        assert_eq!(
            std::fs::read_link(path.join("out"))
                .expect("readlink")
                .as_os_str()
                .as_bytes(),
            b"../../../etc/passwd"
        );
        assert_eq!(
            c.symlink(root, b"out", b"x", 0, 0).unwrap_err(),
            Errno::EEXIST
        );
        assert_eq!(
            c.symlink(root, b"empty", b"", 0, 0).unwrap_err(),
            Errno::ENOENT
        );
        assert_eq!(
            c.symlink(root, b"long", &[b'a'; 4096], 0, 0).unwrap_err(),
            Errno::ENAMETOOLONG
        );

        // Mknod: FIFOs, sockets and regular files, with exact modes.
        let (_, st) = c
            .mknod(root, b"p", libc::S_IFIFO | 0o666, 0, 0, 0)
            .expect("mkfifo");
        assert_eq!(st.st_mode, libc::S_IFIFO | 0o666);
        let (_, st) = c
            .mknod(root, b"s", libc::S_IFSOCK | 0o600, 0, 0, 0)
            .expect("mksock");
        assert_eq!(st.st_mode, libc::S_IFSOCK | 0o600);
        let (_, st) = c.mknod(root, b"r", 0o640, 0, 0, 0).expect("mknod regular");
        assert_eq!(st.st_mode, libc::S_IFREG | 0o640);
        for ty in [libc::S_IFCHR, libc::S_IFBLK] {
            assert_eq!(
                c.mknod(root, b"dev", ty | 0o666, 0x0103, 0, 0).unwrap_err(),
                Errno::EPERM
            );
        }
        for ty in [libc::S_IFDIR, libc::S_IFLNK, 0o170000] {
            assert_eq!(
                c.mknod(root, b"odd", ty | 0o666, 0, 0, 0).unwrap_err(),
                Errno::EINVAL
            );
        }
        assert!(!path.join("dev").exists() && !path.join("odd").exists());
        assert_eq!(
            c.mknod(root, b"p", libc::S_IFIFO | 0o600, 0, 0, 0)
                .unwrap_err(),
            Errno::EEXIST
        );

        let listing = names(&c.readdir(root).expect("readdir"));
        for n in [&b"dir"[..], b"sgid", b"out", b"p", b"s", b"r"] {
            assert!(listing.contains(n), "{n:?}");
        }
    });
}

#[test]
fn link_unlink_rename() {
    with_tree(false, |c, path| {
        let (root, _) = c.attach().expect("attach");
        let (hello, st) = c.walk(root, b"hello.txt").expect("walk");
        assert_eq!(st.st_nlink, 1);
        let (sub, _) = c.walk(root, b"sub").expect("walk sub");

        // Link.
        let st = c.link(sub, b"hard", hello).expect("link");
        assert_eq!(st.st_nlink, 2);
        assert_eq!(std::fs::read(path.join("sub/hard")).expect("read"), HELLO);
        assert_eq!(c.link(sub, b"hard", hello).unwrap_err(), Errno::EEXIST);
        assert_eq!(c.link(root, b"dirlink", sub).unwrap_err(), Errno::EPERM);
        // A link to a symlink links the symlink itself.
        let (rl, _) = c.walk(root, b"root_link").expect("walk");
        c.link(sub, b"rl2", rl).expect("link symlink");
        assert_eq!(
            std::fs::read_link(path.join("sub/rl2"))
                .expect("readlink")
                .as_os_str(),
            "/"
        );

        // Unlink.
        c.unlink(sub, b"hard", 0).expect("unlink");
        assert_eq!(c.stat(hello).expect("stat").st_nlink, 1);
        assert!(!path.join("sub/hard").exists());
        assert_eq!(c.unlink(sub, b"hard", 0).unwrap_err(), Errno::ENOENT);
        assert_eq!(c.unlink(root, b"sub", 0).unwrap_err(), Errno::EISDIR);
        assert_eq!(
            c.unlink(root, b"sub", libc::AT_REMOVEDIR as u32)
                .unwrap_err(),
            Errno::ENOTEMPTY
        );
        assert_eq!(
            c.unlink(root, b"hello.txt", libc::AT_REMOVEDIR as u32)
                .unwrap_err(),
            Errno::ENOTDIR
        );
        assert_eq!(c.unlink(root, b"hello.txt", 1).unwrap_err(), Errno::EINVAL);
        assert_eq!(c.unlink(hello, b"x", 0).unwrap_err(), Errno::ENOTDIR);
        let (_, _) = c.mkdir(root, b"empty", 0o755, 0, 0).expect("mkdir");
        c.unlink(root, b"empty", libc::AT_REMOVEDIR as u32)
            .expect("rmdir");
        assert!(!path.join("empty").exists());
        // Unlinking a symlink removes the link, not its target.
        c.unlink(sub, b"rl2", 0).expect("unlink symlink");

        // Rename across directories: the moved file's fid still opens.
        c.rename(root, b"hello.txt", sub, b"moved.txt", 0)
            .expect("rename");
        assert!(!path.join("hello.txt").exists());
        assert_eq!(
            std::fs::read(path.join("sub/moved.txt")).expect("read"),
            HELLO
        );
        assert_eq!(
            read_all(c.open(hello, libc::O_RDONLY).expect("open moved")),
            HELLO
        );
        // And links by its new name.
        c.link(root, b"again", hello).expect("link moved");
        assert_eq!(std::fs::read(path.join("again")).expect("read"), HELLO);
        c.unlink(root, b"again", 0).expect("unlink");
        // NOREPLACE and EXCHANGE.
        std::fs::write(path.join("other"), b"other").expect("write");
        assert_eq!(
            c.rename(sub, b"moved.txt", root, b"other", libc::RENAME_NOREPLACE)
                .unwrap_err(),
            Errno::EEXIST
        );
        let (other, _) = c.walk(root, b"other").expect("walk other");
        c.rename(sub, b"moved.txt", root, b"other", libc::RENAME_EXCHANGE)
            .expect("exchange");
        assert_eq!(std::fs::read(path.join("other")).expect("read"), HELLO);
        assert_eq!(
            std::fs::read(path.join("sub/moved.txt")).expect("read"),
            b"other"
        );
        assert_eq!(
            read_all(c.open(hello, libc::O_RDONLY).expect("open")),
            HELLO
        );
        assert_eq!(
            read_all(c.open(other, libc::O_RDONLY).expect("open")),
            b"other"
        );
        for bad in [
            libc::RENAME_NOREPLACE | libc::RENAME_EXCHANGE,
            libc::RENAME_WHITEOUT,
            1 << 20,
        ] {
            assert_eq!(
                c.rename(root, b"other", root, b"x", bad).unwrap_err(),
                Errno::EINVAL,
                "{bad:#x}"
            );
        }
        // Plain rename over an existing file replaces it.
        c.rename(root, b"other", sub, b"moved.txt", 0)
            .expect("replace");
        assert_eq!(
            std::fs::read(path.join("sub/moved.txt")).expect("read"),
            HELLO
        );
        assert_eq!(
            c.rename(root, b"nope", root, b"x", 0).unwrap_err(),
            Errno::ENOENT
        );
        // A directory into itself.
        assert_eq!(
            c.rename(root, b"sub", sub, b"x", 0).unwrap_err(),
            Errno::EINVAL
        );
        assert_eq!(
            c.rename(hello, b"a", root, b"b", 0).unwrap_err(),
            Errno::ENOTDIR
        );
        // A renamed directory's fid keeps working as a parent.
        c.rename(root, b"sub", root, b"sub2", 0)
            .expect("rename dir");
        c.create(sub, b"inside", libc::O_RDWR, 0o644, 0, 0)
            .expect("create in moved dir");
        assert!(path.join("sub2/inside").exists());
    });
}

#[test]
fn setattr_changes_what_the_mask_says() {
    with_tree(false, |c, path| {
        let (root, _) = c.attach().expect("attach");
        let (f, before) = c.walk(root, b"hello.txt").expect("walk");
        let p = path.join("hello.txt");
        // Mask 0: nothing changes, the stat comes back.
        let st = c.setattr(f, &SetAttr::default()).expect("noop");
        assert_eq!((st.st_mode, st.st_size), (before.st_mode, before.st_size));

        let st = c
            .setattr(
                f,
                &SetAttr {
                    mask: SETATTR_MODE,
                    mode: 0o4711 | libc::S_IFDIR, // type bits are ignored
                    ..SetAttr::default()
                },
            )
            .expect("chmod");
        assert_eq!(st.st_mode, libc::S_IFREG | 0o4711);
        assert_eq!(mode_of(&p), libc::S_IFREG | 0o4711);

        if is_root() {
            let st = c
                .setattr(
                    f,
                    &SetAttr {
                        mask: SETATTR_UID,
                        uid: 1000,
                        gid: 9999, // not in the mask: ignored
                        ..SetAttr::default()
                    },
                )
                .expect("chown uid");
            assert_eq!((st.st_uid, st.st_gid), (1000, before.st_gid));
            let st = c
                .setattr(
                    f,
                    &SetAttr {
                        mask: SETATTR_UID | SETATTR_GID,
                        uid: 2000,
                        gid: 3000,
                        ..SetAttr::default()
                    },
                )
                .expect("chown");
            assert_eq!((st.st_uid, st.st_gid), (2000, 3000));
        }

        let st = c
            .setattr(
                f,
                &SetAttr {
                    mask: SETATTR_SIZE,
                    size: 5,
                    ..SetAttr::default()
                },
            )
            .expect("truncate");
        assert_eq!(st.st_size, 5);
        assert_eq!(std::fs::read(&p).expect("read"), &HELLO[..5]);
        let st = c
            .setattr(
                f,
                &SetAttr {
                    mask: SETATTR_SIZE,
                    size: 1 << 20,
                    ..SetAttr::default()
                },
            )
            .expect("extend");
        assert_eq!(st.st_size, 1 << 20);

        // Times, with UTIME_OMIT and UTIME_NOW.
        let st = c
            .setattr(
                f,
                &SetAttr {
                    mask: SETATTR_ATIME | SETATTR_MTIME,
                    atime_sec: 1_000_000,
                    atime_nsec: 5,
                    mtime_sec: 2_000_000,
                    mtime_nsec: 999_999_999,
                    ..SetAttr::default()
                },
            )
            .expect("utimes");
        assert_eq!((st.st_atime, st.st_atime_nsec), (1_000_000, 5));
        assert_eq!((st.st_mtime, st.st_mtime_nsec), (2_000_000, 999_999_999));
        let st = c
            .setattr(
                f,
                &SetAttr {
                    mask: SETATTR_MTIME,
                    mtime_sec: 3_000_000,
                    mtime_nsec: 0,
                    atime_sec: 42, // not in the mask
                    ..SetAttr::default()
                },
            )
            .expect("mtime only");
        assert_eq!((st.st_atime, st.st_mtime), (1_000_000, 3_000_000));
        let st = c
            .setattr(
                f,
                &SetAttr {
                    mask: SETATTR_ATIME | SETATTR_MTIME,
                    atime_nsec: libc::UTIME_OMIT,
                    mtime_nsec: libc::UTIME_NOW,
                    ..SetAttr::default()
                },
            )
            .expect("now");
        assert_eq!(st.st_atime, 1_000_000);
        assert!(st.st_mtime > 1_600_000_000, "{}", st.st_mtime);
        for nsec in [-1, 1_000_000_000] {
            assert_eq!(
                c.setattr(
                    f,
                    &SetAttr {
                        mask: SETATTR_MTIME,
                        mtime_nsec: nsec,
                        ..SetAttr::default()
                    },
                )
                .unwrap_err(),
                Errno::EINVAL
            );
        }
        // A bad field fails the whole request before anything changes.
        // (The root-only chown above cleared the set-user-ID bit, as Linux
        // does.)
        let mode_before = mode_of(&p);
        assert_eq!(
            c.setattr(
                f,
                &SetAttr {
                    mask: SETATTR_MODE | SETATTR_ATIME,
                    mode: 0o600,
                    atime_nsec: -5,
                    ..SetAttr::default()
                },
            )
            .unwrap_err(),
            Errno::EINVAL
        );
        assert_eq!(mode_of(&p), mode_before);

        // Directories: mode and times yes, size no.
        let (sub, _) = c.walk(root, b"sub").expect("walk");
        let st = c
            .setattr(
                sub,
                &SetAttr {
                    mask: SETATTR_MODE | SETATTR_MTIME,
                    mode: 0o1777,
                    mtime_sec: 7,
                    ..SetAttr::default()
                },
            )
            .expect("dir setattr");
        assert_eq!((st.st_mode & 0o7777, st.st_mtime), (0o1777, 7));
        let size = SetAttr {
            mask: SETATTR_SIZE,
            ..SetAttr::default()
        };
        assert_eq!(c.setattr(sub, &size).unwrap_err(), Errno::EISDIR);
        let (fifo, _) = c.walk(root, b"fifo").expect("walk");
        assert_eq!(c.setattr(fifo, &size).unwrap_err(), Errno::EINVAL);
        let huge = SetAttr {
            mask: SETATTR_SIZE,
            size: u64::MAX,
            ..SetAttr::default()
        };
        assert_eq!(c.setattr(f, &huge).unwrap_err(), Errno::EINVAL);
        // The fifo's mode can change without opening it (no blocking).
        let st = c
            .setattr(
                fifo,
                &SetAttr {
                    mask: SETATTR_MODE,
                    mode: 0o640,
                    ..SetAttr::default()
                },
            )
            .expect("chmod fifo");
        assert_eq!(st.st_mode, libc::S_IFIFO | 0o640);
        assert_eq!(c.setattr(0xbad, &size).unwrap_err(), Errno::EBADF);
    });
}

#[test]
fn fsync_files_and_dirs() {
    with_tree(false, |c, _| {
        let (root, _) = c.attach().expect("attach");
        c.fsync(root).expect("fsync dir");
        let (f, _) = c.walk(root, b"hello.txt").expect("walk");
        c.fsync(f).expect("fsync file");
        let (fifo, _) = c.walk(root, b"fifo").expect("walk");
        assert_eq!(c.fsync(fifo).unwrap_err(), Errno::EINVAL);
        let (l, _) = c.walk(root, b"root_link").expect("walk");
        assert_eq!(c.fsync(l).unwrap_err(), Errno::EINVAL);
    });
    // Harmless on a read-only server too.
    with_client(true, false, |c| {
        let (root, _) = c.attach().expect("attach");
        let (f, _) = c.walk(root, b"hello.txt").expect("walk");
        c.fsync(f).expect("fsync on read-only");
    });
}

#[test]
fn user_xattrs() {
    with_tree(false, |c, path| {
        let (root, _) = c.attach().expect("attach");
        let (f, _) = c.walk(root, b"hello.txt").expect("walk");
        match c.setxattr(f, b"user.test", b"value\0bytes", 0) {
            Err(Errno::EOPNOTSUPP) => {
                eprintln!("host filesystem without user xattrs: skipping");
                return;
            }
            r => r.expect("setxattr"),
        }
        assert_eq!(c.getxattr(f, b"user.test").expect("get"), b"value\0bytes");
        assert_eq!(
            c.setxattr(f, b"user.test", b"x", libc::XATTR_CREATE as u32)
                .unwrap_err(),
            Errno::EEXIST
        );
        assert_eq!(
            c.setxattr(f, b"user.new", b"x", libc::XATTR_REPLACE as u32)
                .unwrap_err(),
            Errno::ENODATA
        );
        assert_eq!(
            c.setxattr(f, b"user.test", b"x", 4).unwrap_err(),
            Errno::EINVAL
        );
        c.setxattr(f, b"user.empty", b"", 0).expect("empty value");
        assert_eq!(c.getxattr(f, b"user.empty").expect("get"), b"");
        let mut l = c.listxattr(f).expect("list");
        l.sort();
        assert_eq!(l, vec![b"user.empty".to_vec(), b"user.test".to_vec()]);
        c.removexattr(f, b"user.test").expect("remove");
        assert_eq!(c.getxattr(f, b"user.test").unwrap_err(), Errno::ENODATA);
        assert_eq!(c.removexattr(f, b"user.test").unwrap_err(), Errno::ENODATA);
        // Big values (ext4 takes about one block per inode; a message
        // holds up to MAX_XATTR_VALUE).
        let big = vec![0xa5u8; 3000];
        c.setxattr(f, b"user.big", &big, 0).expect("big");
        assert_eq!(c.getxattr(f, b"user.big").expect("get big"), big);
        assert_eq!(
            c.setxattr(f, b"user.huge", &vec![0; 70_000], 0)
                .unwrap_err(),
            Errno::E2BIG
        );
        // Directories too.
        let (sub, _) = c.walk(root, b"sub").expect("walk");
        c.setxattr(sub, b"user.d", b"1", 0).expect("dir xattr");
        assert_eq!(c.listxattr(sub).expect("list"), vec![b"user.d".to_vec()]);
        // Only user.*: no trusted.*, security.* or system.* from a guest.
        for name in [
            &b"trusted.x"[..],
            b"security.capability",
            b"system.posix_acl_access",
            b"x",
        ] {
            assert_eq!(c.setxattr(f, name, b"v", 0).unwrap_err(), Errno::EOPNOTSUPP);
            assert_eq!(c.getxattr(f, name).unwrap_err(), Errno::EOPNOTSUPP);
            assert_eq!(c.removexattr(f, name).unwrap_err(), Errno::EOPNOTSUPP);
        }
        assert_eq!(c.getxattr(f, b"").unwrap_err(), Errno::ERANGE);
        assert_eq!(c.getxattr(f, &[b'u'; 256]).unwrap_err(), Errno::ERANGE);
        // Symlinks carry no user xattrs, and their targets are not reached.
        let (l, _) = c.walk(root, b"root_link").expect("walk");
        assert_eq!(c.getxattr(l, b"user.test").unwrap_err(), Errno::ENODATA);
        assert_eq!(
            c.setxattr(l, b"user.test", b"v", 0).unwrap_err(),
            Errno::EPERM
        );
        assert_eq!(c.listxattr(l).expect("list link"), Vec::<Vec<u8>>::new());
        // The host sees what was set.
        let host = nix::sys::stat::stat(&path.join("hello.txt")).expect("stat");
        assert!(host.st_size > 0);
    });
}

/// A file and a directory outside the served tree, and symlinks to them
/// inside it: no write op may follow those symlinks.
#[test]
fn writes_never_follow_symlinks_out_of_the_root() {
    let outside = make_tree(false);
    let out_file = outside.path.join("hello.txt");
    let out_dir = outside.path.join("sub");
    let before = std::fs::symlink_metadata(&out_file).expect("lstat");
    with_tree(false, |c, path| {
        symlink(&out_file, path.join("out")).expect("symlink");
        symlink(&out_dir, path.join("out_dir")).expect("symlink");
        symlink(&out_file, path.join("out2")).expect("symlink");
        let (root, _) = c.attach().expect("attach");
        let (out, st) = c.walk(root, b"out").expect("walk");
        assert!(st.is_symlink());
        let (od, _) = c.walk(root, b"out_dir").expect("walk");

        // Creating over the link or through the directory link.
        assert_eq!(
            c.create(root, b"out", libc::O_RDWR, 0o666, 0, 0)
                .unwrap_err(),
            Errno::EEXIST
        );
        assert_eq!(
            c.mkdir(root, b"out", 0o777, 0, 0).unwrap_err(),
            Errno::EEXIST
        );
        assert_eq!(
            c.symlink(root, b"out", b"x", 0, 0).unwrap_err(),
            Errno::EEXIST
        );
        assert_eq!(
            c.mknod(root, b"out", libc::S_IFIFO | 0o666, 0, 0, 0)
                .unwrap_err(),
            Errno::EEXIST
        );
        assert_eq!(
            c.create(od, b"x", libc::O_RDWR, 0o666, 0, 0).unwrap_err(),
            Errno::ENOTDIR
        );
        assert_eq!(c.mkdir(od, b"x", 0o777, 0, 0).unwrap_err(), Errno::ENOTDIR);
        assert_eq!(c.symlink(od, b"x", b"y", 0, 0).unwrap_err(), Errno::ENOTDIR);
        assert_eq!(
            c.mknod(od, b"x", libc::S_IFIFO, 0, 0, 0).unwrap_err(),
            Errno::ENOTDIR
        );
        assert_eq!(c.unlink(od, b"inner.txt", 0).unwrap_err(), Errno::ENOTDIR);
        assert_eq!(
            c.rename(od, b"inner.txt", root, b"stolen", 0).unwrap_err(),
            Errno::ENOTDIR
        );
        assert_eq!(
            c.rename(root, b"sub", od, b"planted", 0).unwrap_err(),
            Errno::ENOTDIR
        );
        assert_eq!(c.link(od, b"x", out).unwrap_err(), Errno::ENOTDIR);

        // Attribute changes on the link never reach its target.
        assert_eq!(
            c.setattr(
                out,
                &SetAttr {
                    mask: SETATTR_MODE,
                    mode: 0o777,
                    ..SetAttr::default()
                }
            )
            .unwrap_err(),
            Errno::EOPNOTSUPP
        );
        assert_eq!(
            c.setattr(
                out,
                &SetAttr {
                    mask: SETATTR_SIZE,
                    size: 0,
                    ..SetAttr::default()
                }
            )
            .unwrap_err(),
            Errno::EINVAL
        );
        let st = c
            .setattr(
                out,
                &SetAttr {
                    mask: SETATTR_MTIME,
                    mtime_sec: 12345,
                    ..SetAttr::default()
                },
            )
            .expect("lutimes");
        assert_eq!(st.st_mtime, 12345);
        assert!(st.is_symlink());
        if is_root() {
            let st = c
                .setattr(
                    out,
                    &SetAttr {
                        mask: SETATTR_UID | SETATTR_GID,
                        uid: 4242,
                        gid: 4242,
                        ..SetAttr::default()
                    },
                )
                .expect("lchown");
            assert_eq!(st.st_uid, 4242);
        }
        assert_eq!(
            c.open(out, libc::O_WRONLY | libc::O_TRUNC).unwrap_err(),
            Errno::ELOOP
        );
        assert_eq!(c.fsync(out).unwrap_err(), Errno::EINVAL);

        // Linking the link links the link.
        c.link(root, b"hl", out).expect("link symlink");
        assert!(std::fs::symlink_metadata(path.join("hl"))
            .expect("lstat")
            .file_type()
            .is_symlink());

        // Renaming onto a link replaces the link, renaming a link moves it.
        c.rename(root, b"fifo", root, b"out2", 0)
            .expect("rename onto link");
        assert!(std::fs::symlink_metadata(path.join("out2"))
            .expect("lstat")
            .file_type()
            .is_fifo());
        c.rename(root, b"out", root, b"out_moved", 0)
            .expect("rename link");
        // Unlinking removes the links only.
        c.unlink(root, b"out_moved", 0).expect("unlink link");
        c.unlink(root, b"hl", 0).expect("unlink link");
        assert_eq!(
            c.unlink(root, b"out_dir", libc::AT_REMOVEDIR as u32)
                .unwrap_err(),
            Errno::ENOTDIR
        );
        c.unlink(root, b"out_dir", 0).expect("unlink dir link");
    });
    let after = std::fs::symlink_metadata(&out_file).expect("outside file intact");
    assert_eq!(std::fs::read(&out_file).expect("read"), HELLO);
    assert_eq!(
        (
            after.mode(),
            after.uid(),
            after.gid(),
            after.mtime(),
            after.nlink()
        ),
        (
            before.mode(),
            before.uid(),
            before.gid(),
            before.mtime(),
            before.nlink()
        )
    );
    assert!(out_dir.join("inner.txt").exists());
    let mut names: Vec<_> = std::fs::read_dir(&out_dir)
        .expect("readdir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    names.sort();
    assert_eq!(names, vec![std::ffi::OsString::from("inner.txt")]);
}

/// Raw requests with names the client would refuse: the server checks
/// every name itself.
#[test]
fn write_ops_refuse_bad_names() {
    let Running { sock, done, _tree } = spawn_server(false, false);
    let root = attach_raw(&sock, 1);
    let bad_names: [&[u8]; 6] = [b"..", b".", b"a/b", b"", b"/etc", b"x\0"];
    let mut tag: u32 = 1000;
    for req in write_requests(root) {
        let Ok(good) = encode_request(0, &req) else {
            panic!("encode {req:?}")
        };
        let op = good[3];
        for bad in bad_names {
            // Rebuild the request with the bad name in each name field by
            // patching the first name: every op's first name follows the
            // 8-byte fid at the start of the payload.
            let (Request::Create { name, .. }
            | Request::Mkdir { name, .. }
            | Request::Symlink { name, .. }
            | Request::Link { name, .. }
            | Request::Mknod { name, .. }
            | Request::Unlink { name, .. }
            | Request::Rename { old_name: name, .. }) = &req
            else {
                continue;
            };
            let at = HEADER_LEN + 8;
            let mut b = good[..at].to_vec();
            b.extend_from_slice(&(bad.len() as u16).to_le_bytes());
            b.extend_from_slice(bad);
            b.extend_from_slice(&good[at + 2 + name.len()..]);
            let plen = (b.len() - HEADER_LEN) as u32;
            b[8..12].copy_from_slice(&plen.to_le_bytes());
            tag += 1;
            b[4..8].copy_from_slice(&tag.to_le_bytes());
            let resp = exchange(&sock, &b);
            assert_eq!((resp.tag, resp.op), (tag, op));
            assert_eq!(resp.result, Err(Errno::EINVAL), "op {op} name {bad:?}");
        }
    }
    // The second name of Rename too.
    let mut b = encode_request(
        5,
        &Request::Rename {
            old_dir: root,
            old_name: b"hello.txt".to_vec(),
            new_dir: root,
            new_name: b"zz".to_vec(),
            flags: 0,
        },
    )
    .expect("encode");
    let at = b.len() - 4 - 2;
    b[at..at + 2].copy_from_slice(b"..");
    assert_eq!(exchange(&sock, &b).result, Err(Errno::EINVAL));
    // Symlink targets: empty and with NUL.
    let mut b = encode_request(
        6,
        &Request::Symlink {
            dir: root,
            name: b"l".to_vec(),
            target: b"t".to_vec(),
            uid: 0,
            gid: 0,
        },
    )
    .expect("encode");
    let at = b.len() - 8 - 1;
    b[at] = 0;
    assert_eq!(exchange(&sock, &b).result, Err(Errno::EINVAL));
    // Nothing was created, removed or renamed.
    let mut listing: Vec<_> = std::fs::read_dir(&_tree.path)
        .expect("read tree")
        .map(|e| e.expect("entry").file_name().into_vec())
        .collect();
    listing.sort();
    assert_eq!(listing.len(), 6, "{listing:?}");
    assert!(_tree.path.join("hello.txt").exists());
    drop(sock);
    expect_server_exit(&done);
}

#[test]
fn client_refuses_bad_names_in_write_ops() {
    with_client(false, false, |c| {
        let (root, _) = c.attach().expect("attach");
        for bad in [&b".."[..], b".", b"a/b", b"", b"../x"] {
            assert_eq!(
                c.create(root, bad, libc::O_RDWR, 0o644, 0, 0).unwrap_err(),
                Errno::EINVAL
            );
            assert_eq!(c.mkdir(root, bad, 0o755, 0, 0).unwrap_err(), Errno::EINVAL);
            assert_eq!(c.symlink(root, bad, b"t", 0, 0).unwrap_err(), Errno::EINVAL);
            assert_eq!(c.link(root, bad, root).unwrap_err(), Errno::EINVAL);
            assert_eq!(
                c.mknod(root, bad, libc::S_IFIFO, 0, 0, 0).unwrap_err(),
                Errno::EINVAL
            );
            assert_eq!(c.unlink(root, bad, 0).unwrap_err(), Errno::EINVAL);
            assert_eq!(
                c.rename(root, bad, root, b"x", 0).unwrap_err(),
                Errno::EINVAL
            );
            assert_eq!(
                c.rename(root, b"hello.txt", root, bad, 0).unwrap_err(),
                Errno::EINVAL
            );
        }
        assert_eq!(
            c.create(root, &[b'n'; 256], libc::O_RDWR, 0o644, 0, 0)
                .unwrap_err(),
            Errno::ENAMETOOLONG
        );
    });
}

#[test]
fn read_only_server_refuses_every_write_op() {
    let Running { sock, done, _tree } = spawn_server(true, false);
    let root = attach_raw(&sock, 1);
    for (i, req) in write_requests(root).iter().enumerate() {
        let tag = 500 + i as u32;
        let resp = exchange(&sock, &encode_request(tag, req).expect("encode"));
        assert_eq!((resp.tag, resp.op), (tag, req.op() as u8));
        assert_eq!(resp.result, Err(Errno::EROFS), "{req:?}");
    }
    // Reads still work.
    let resp = exchange(
        &sock,
        &encode_request(600, &Request::ListXattr { fid: root }).expect("encode"),
    );
    assert!(resp.result.is_ok(), "{:?}", resp.result);
    let mut listing: Vec<_> = std::fs::read_dir(&_tree.path)
        .expect("read tree")
        .map(|e| e.expect("entry").file_name().into_vec())
        .collect();
    listing.sort();
    assert_eq!(listing.len(), 6, "{listing:?}");
    assert_eq!(
        mode_of(&_tree.path) & 0o7777,
        std::fs::metadata(&_tree.path).unwrap().permissions().mode() & 0o7777
    );
    drop(sock);
    expect_server_exit(&done);

    // The client API says the same.
    with_client(true, false, |c| {
        let (root, _) = c.attach().expect("attach");
        let (f, _) = c.walk(root, b"hello.txt").expect("walk");
        assert_eq!(
            c.create(root, b"n", libc::O_RDWR, 0o644, 0, 0).unwrap_err(),
            Errno::EROFS
        );
        assert_eq!(c.mkdir(root, b"n", 0o755, 0, 0).unwrap_err(), Errno::EROFS);
        assert_eq!(c.symlink(root, b"n", b"t", 0, 0).unwrap_err(), Errno::EROFS);
        assert_eq!(c.link(root, b"n", f).unwrap_err(), Errno::EROFS);
        assert_eq!(
            c.mknod(root, b"n", libc::S_IFIFO, 0, 0, 0).unwrap_err(),
            Errno::EROFS
        );
        assert_eq!(c.unlink(root, b"hello.txt", 0).unwrap_err(), Errno::EROFS);
        assert_eq!(
            c.rename(root, b"hello.txt", root, b"n", 0).unwrap_err(),
            Errno::EROFS
        );
        let attr = SetAttr {
            mask: SETATTR_SIZE,
            ..SetAttr::default()
        };
        assert_eq!(c.setattr(f, &attr).unwrap_err(), Errno::EROFS);
        assert_eq!(c.setxattr(f, b"user.a", b"", 0).unwrap_err(), Errno::EROFS);
        assert_eq!(c.removexattr(f, b"user.a").unwrap_err(), Errno::EROFS);
        assert_eq!(c.stat(f).expect("stat").st_size, HELLO.len() as i64);
    });
}

#[test]
fn connect_reaches_host_sockets_only_when_allowed() {
    use std::io::{Read as _, Write as _};
    let tree = make_tree(false);
    let listener =
        std::os::unix::net::UnixListener::bind(tree.path.join("sock")).expect("bind host socket");
    let echo = thread::spawn(move || {
        for _ in 0..1 {
            let (mut c, _) = listener.accept().expect("accept");
            let mut b = [0u8; 5];
            c.read_exact(&mut b).expect("read");
            c.write_all(&b).expect("write");
        }
    });
    for allowed in [false, true] {
        let root = open_root(&tree.path);
        let (client, server) = gofer::socketpair().expect("socketpair");
        let th = thread::spawn(move || gofer::serve_with(root, server, true, allowed));
        let c = Client::new(client);
        let (root_fid, _) = c.attach().expect("attach");
        let (sock_fid, st) = c.walk(root_fid, b"sock").expect("walk");
        assert_eq!(st.st_mode & libc::S_IFMT, libc::S_IFSOCK);
        let (file_fid, _) = c.walk(root_fid, b"hello.txt").expect("walk");
        assert_eq!(
            c.connect(file_fid, libc::SOCK_STREAM).err(),
            Some(Errno::ECONNREFUSED)
        );
        match c.connect(sock_fid, libc::SOCK_STREAM) {
            Ok(fd) => {
                assert!(allowed);
                let mut s = std::os::unix::net::UnixStream::from(fd);
                s.write_all(b"hello").expect("write");
                let mut b = [0u8; 5];
                s.read_exact(&mut b).expect("read");
                assert_eq!(&b, b"hello");
            }
            Err(e) => {
                assert!(!allowed);
                assert_eq!(e, Errno::ECONNREFUSED);
            }
        }
        drop(c);
        th.join().expect("server").expect("serve");
    }
    echo.join().expect("echo");
}
