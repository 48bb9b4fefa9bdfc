//! Property test: long random sequences of valid requests against a
//! writable gofer, each one mirrored natively on a second tree. Every
//! request must succeed or fail exactly as the same host operation does,
//! and the two trees must stay identical.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use gofer::protocol::{SetAttr, SETATTR_MODE, SETATTR_SIZE};
use gofer::Client;
use nix::errno::Errno;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[(self.next() % v.len() as u64) as usize]
    }
}

struct Dirs {
    gofer: PathBuf,
    native: PathBuf,
}

impl Drop for Dirs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.gofer);
        let _ = std::fs::remove_dir_all(&self.native);
    }
}

fn scratch() -> Dirs {
    static N: AtomicUsize = AtomicUsize::new(0);
    let base = std::env::temp_dir().join(format!(
        "gofer-model-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let d = Dirs {
        gofer: base.with_extension("g"),
        native: base.with_extension("n"),
    };
    for p in [&d.gofer, &d.native] {
        let _ = std::fs::remove_dir_all(p);
        std::fs::create_dir(p).expect("mkdir scratch");
    }
    d
}

const NAMES: [&[u8]; 5] = [b"a", b"b", b"c", b"dir", b"x y"];
const TARGETS: [&[u8]; 4] = [b"a", b"../b", b"/etc/passwd", b"dir/c"];

/// Real directories of the native tree (relative paths; "" is the root).
fn dirs_of(root: &Path) -> Vec<Vec<u8>> {
    let mut out = vec![Vec::new()];
    let mut i = 0;
    while i < out.len() {
        let rel = out[i].clone();
        i += 1;
        let p = root.join(std::ffi::OsStr::from_bytes(&rel));
        let Ok(rd) = std::fs::read_dir(&p) else {
            continue;
        };
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                let mut r = rel.clone();
                if !r.is_empty() {
                    r.push(b'/');
                }
                r.extend_from_slice(e.file_name().as_bytes());
                out.push(r);
            }
        }
    }
    out
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut r = dir.to_vec();
    if !r.is_empty() {
        r.push(b'/');
    }
    r.extend_from_slice(name);
    r
}

fn cpath(root: &Path, rel: &[u8]) -> CString {
    let p = root.join(std::ffi::OsStr::from_bytes(rel));
    CString::new(p.as_os_str().as_bytes()).expect("no NUL in test paths")
}

/// The result of a native libc call as the gofer reports errors.
fn native(r: libc::c_int) -> Result<(), Errno> {
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// Walks `rel` from the root fid; returns the fid (caller clunks).
fn walk(c: &Client, root: u64, rel: &[u8]) -> Result<u64, Errno> {
    let mut fid = root;
    for comp in rel.split(|&b| b == b'/').filter(|s| !s.is_empty()) {
        let (next, _) = c.walk(fid, comp)?;
        if fid != root {
            let _ = c.clunk(fid);
        }
        fid = next;
    }
    Ok(fid)
}

/// Everything the two trees must agree on, by relative path.
fn snapshot(root: &Path) -> BTreeMap<Vec<u8>, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![Vec::new()];
    while let Some(rel) = stack.pop() {
        let p = root.join(std::ffi::OsStr::from_bytes(&rel));
        let Ok(rd) = std::fs::read_dir(&p) else {
            continue;
        };
        for e in rd.flatten() {
            let r = join(&rel, e.file_name().as_bytes());
            let full = root.join(std::ffi::OsStr::from_bytes(&r));
            let Ok(m) = std::fs::symlink_metadata(&full) else {
                continue;
            };
            let ft = m.file_type();
            let desc = if ft.is_symlink() {
                format!("link -> {:?}", std::fs::read_link(&full).ok())
            } else if ft.is_dir() {
                stack.push(r.clone());
                format!("dir {:o}", m.permissions().mode() & 0o7777)
            } else {
                let data = std::fs::read(&full).unwrap_or_default();
                format!(
                    "file {:o} nlink {} {:?}",
                    m.permissions().mode() & 0o7777,
                    m.nlink(),
                    String::from_utf8_lossy(&data)
                )
            };
            out.insert(r, desc);
        }
    }
    out
}

fn run(seed: u64, steps: usize) {
    let d = scratch();
    let root_fd = OwnedFd::from(
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(&d.gofer)
            .expect("open root"),
    );
    let (client, server) = gofer::socketpair().expect("socketpair");
    let th = std::thread::spawn(move || gofer::serve(root_fd, server, false));
    let c = Client::new(client);
    let (root, _) = c.attach().expect("attach");
    let (uid, gid) = (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    let mut rng = Rng(seed);
    for step in 0..steps {
        let dirs = dirs_of(&d.native);
        let dir = rng.pick(&dirs).clone();
        let name = *rng.pick(&NAMES);
        let rel = join(&dir, name);
        let n = cpath(&d.native, &rel);
        let op = rng.next() % 9;
        let (what, g, nat): (String, Result<(), Errno>, Result<(), Errno>) = match op {
            0 => {
                let mode = 0o600 | (rng.next() as u32 & 0o066);
                let g = walk(&c, root, &dir).and_then(|f| {
                    let r = c.create(f, name, libc::O_WRONLY, mode, uid, gid);
                    r.map(|(fid, _, _)| {
                        let _ = c.clunk(fid);
                    })
                });
                // SAFETY: open/fchmod/close on a path we built; the fd is ours.
                let nat = native(unsafe {
                    let fd =
                        libc::open(n.as_ptr(), libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY, 0);
                    if fd >= 0 {
                        libc::fchmod(fd, mode);
                        libc::close(fd);
                    }
                    fd
                });
                (format!("create {mode:o}"), g, nat)
            }
            1 => {
                let g = walk(&c, root, &dir).and_then(|f| {
                    c.mkdir(f, name, 0o755, uid, gid).map(|(fid, _)| {
                        let _ = c.clunk(fid);
                    })
                });
                // SAFETY: mkdir/chmod of a path we built.
                let nat = native(unsafe {
                    let r = libc::mkdir(n.as_ptr(), 0o755);
                    if r == 0 {
                        libc::chmod(n.as_ptr(), 0o755);
                    }
                    r
                });
                ("mkdir".into(), g, nat)
            }
            2 => {
                let target = *rng.pick(&TARGETS);
                let g = walk(&c, root, &dir).and_then(|f| {
                    c.symlink(f, name, target, uid, gid).map(|(fid, _)| {
                        let _ = c.clunk(fid);
                    })
                });
                let t = CString::new(target).expect("no NUL");
                // SAFETY: symlink between C strings we own.
                let nat = native(unsafe { libc::symlink(t.as_ptr(), n.as_ptr()) });
                (
                    format!("symlink {:?}", String::from_utf8_lossy(target)),
                    g,
                    nat,
                )
            }
            3 => {
                let src_dir = rng.pick(&dirs).clone();
                let src = join(&src_dir, *rng.pick(&NAMES));
                if std::fs::symlink_metadata(d.native.join(std::ffi::OsStr::from_bytes(&src)))
                    .is_err()
                {
                    continue;
                }
                let g = walk(&c, root, &src).and_then(|t| {
                    let r = walk(&c, root, &dir).and_then(|f| c.link(f, name, t));
                    let _ = c.clunk(t);
                    r.map(|_| ())
                });
                let s = cpath(&d.native, &src);
                // SAFETY: linkat between paths we built (the symlink itself, not followed).
                let nat = native(unsafe {
                    libc::linkat(libc::AT_FDCWD, s.as_ptr(), libc::AT_FDCWD, n.as_ptr(), 0)
                });
                (
                    format!("link from {:?}", String::from_utf8_lossy(&src)),
                    g,
                    nat,
                )
            }
            4 | 5 => {
                let flags = if op == 5 {
                    libc::AT_REMOVEDIR as u32
                } else {
                    0
                };
                let g = walk(&c, root, &dir).and_then(|f| c.unlink(f, name, flags));
                // SAFETY: unlinkat of a path we built.
                let nat =
                    native(unsafe { libc::unlinkat(libc::AT_FDCWD, n.as_ptr(), flags as i32) });
                (format!("unlink {flags}"), g, nat)
            }
            6 => {
                let dir2 = rng.pick(&dirs).clone();
                let name2 = *rng.pick(&NAMES);
                let flags = *rng.pick(&[0u32, 0, libc::RENAME_NOREPLACE, libc::RENAME_EXCHANGE]);
                let g = walk(&c, root, &dir).and_then(|f| {
                    walk(&c, root, &dir2).and_then(|f2| c.rename(f, name, f2, name2, flags))
                });
                let n2 = cpath(&d.native, &join(&dir2, name2));
                // SAFETY: renameat2 between paths we built.
                let nat = native(unsafe {
                    libc::syscall(
                        libc::SYS_renameat2,
                        libc::AT_FDCWD,
                        n.as_ptr(),
                        libc::AT_FDCWD,
                        n2.as_ptr(),
                        flags,
                    ) as libc::c_int
                });
                (
                    format!(
                        "rename to {:?} flags {flags}",
                        String::from_utf8_lossy(&join(&dir2, name2))
                    ),
                    g,
                    nat,
                )
            }
            7 | 8 => {
                // Data and attributes of an existing regular file.
                let p = d.native.join(std::ffi::OsStr::from_bytes(&rel));
                let Ok(m) = std::fs::symlink_metadata(&p) else {
                    continue;
                };
                if !m.file_type().is_file() {
                    continue;
                }
                if op == 7 {
                    let data = format!("step {step};");
                    let g = walk(&c, root, &rel).and_then(|f| {
                        let r = c.open(f, libc::O_WRONLY | libc::O_APPEND);
                        let _ = c.clunk(f);
                        let fd = r?;
                        nix::unistd::write(&fd, data.as_bytes()).map(|_| ())
                    });
                    let nat = std::fs::OpenOptions::new()
                        .append(true)
                        .open(&p)
                        .and_then(|mut f| std::io::Write::write_all(&mut f, data.as_bytes()))
                        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)));
                    ("append".into(), g, nat)
                } else {
                    let size = rng.next() % 12;
                    let mode = 0o400 | (rng.next() as u32 & 0o377);
                    let attr = SetAttr {
                        mask: SETATTR_SIZE | SETATTR_MODE,
                        mode,
                        size,
                        ..Default::default()
                    };
                    let g = walk(&c, root, &rel).and_then(|f| {
                        let r = c.setattr(f, &attr).map(|_| ());
                        let _ = c.clunk(f);
                        r
                    });
                    // SAFETY: truncate/chmod of a path we built.
                    let nat = native(unsafe {
                        let r = libc::truncate(n.as_ptr(), size as i64);
                        if r == 0 {
                            libc::chmod(n.as_ptr(), mode)
                        } else {
                            r
                        }
                    });
                    (format!("setattr size {size} mode {mode:o}"), g, nat)
                }
            }
            _ => unreachable!(),
        };
        assert_eq!(
            g,
            nat,
            "step {step} (seed {seed:#x}): {what} at {:?}",
            String::from_utf8_lossy(&rel)
        );
        if step % 25 == 0 || step + 1 == steps {
            assert_eq!(
                snapshot(&d.gofer),
                snapshot(&d.native),
                "trees differ after step {step} (seed {seed:#x}, {what})"
            );
        }
    }
    drop(c);
    th.join().expect("server thread").expect("serve");
    // The served tree's root fd never left the scratch dir.
    assert!(d.gofer.exists() && d.native.exists());
    let _ = std::fs::File::open(&d.gofer).map(|f| f.as_raw_fd());
}

#[test]
fn random_valid_sequences_match_the_host() {
    for i in 0..8u64 {
        run(0x9e37_79b9_7f4a_7c15 ^ (i * 0x2545_f491_4f6c_dd1d), 500);
    }
}
