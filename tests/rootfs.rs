//! Image roots (`runsc do --root DIR`): a busybox tree built from the host's
//! static busybox, the overlay keeping the image byte-for-byte unchanged,
//! and attempts to reach files outside the image.

use integration_tests::*;
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

const BUSYBOX: &str = "/bin/busybox";

/// A fresh busybox root in a scratch directory, removed on drop. The
/// directory beside it holds a "secret" the guest must never read.
struct Image {
    base: PathBuf,
}

impl Image {
    fn new(tag: &str) -> Image {
        assert!(
            Path::new(BUSYBOX).exists(),
            "{BUSYBOX} missing: install busybox-static (the CI script does)"
        );
        let base = std::env::temp_dir().join(format!("runsc-rootfs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let root = base.join("root");
        for d in [
            "bin",
            "etc",
            "tmp",
            "proc",
            "sys",
            "dev",
            "root",
            "usr/share",
        ] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::copy(BUSYBOX, root.join("bin/busybox")).unwrap();
        let out = std::process::Command::new(BUSYBOX)
            .arg("--list")
            .output()
            .unwrap();
        for applet in String::from_utf8_lossy(&out.stdout).lines() {
            if applet != "busybox" {
                std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
            }
        }
        std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        std::fs::write(root.join("etc/hostname"), "image\n").unwrap();
        std::fs::write(root.join("usr/share/data"), vec![7u8; 100_000]).unwrap();
        std::os::unix::fs::symlink("../../secret", root.join("etc/escape")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("etc/abs")).unwrap();
        std::fs::write(base.join("secret"), "SECRET-OUTSIDE-IMAGE\n").unwrap();
        Image { base }
    }

    fn root(&self) -> String {
        self.base.join("root").to_string_lossy().into_owned()
    }

    fn run(&self, script: &str, extra: &[&str]) -> Outcome {
        let mut spec = Spec::new(&["/bin/sh", "-c", script])
            .do_flag("--root")
            .do_flag(&self.root());
        for f in extra {
            spec = spec.do_flag(f);
        }
        spec.run_sandbox()
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// Everything that identifies a tree: paths, types, modes, owners, sizes,
/// mtimes, file contents and link targets.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(root).unwrap().to_path_buf();
        let what = if m.file_type().is_symlink() {
            format!("link {}", std::fs::read_link(&p).unwrap().display())
        } else if m.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
            "dir".to_string()
        } else {
            let data = std::fs::read(&p).unwrap();
            format!(
                "file {} {:x}",
                data.len(),
                data.iter().fold(0u64, |h, &b| h
                    .wrapping_mul(1_000_003)
                    .wrapping_add(b as u64))
            )
        };
        out.insert(
            rel,
            format!(
                "{what} mode={:o} uid={} gid={} mtime={}",
                m.permissions().mode(),
                m.uid(),
                m.gid(),
                m.mtime()
            ),
        );
    }
    out
}

#[test]
fn busybox_root_runs() {
    let img = Image::new("basic");
    let o = img.run("echo hi; cat /etc/hostname; ls /bin/busybox; readlink /bin/sh; wc -c < /usr/share/data; echo $$", &[]);
    assert_code(&o, 0, "sandbox");
    assert_eq!(
        o.stdout_str(),
        "hi\nimage\n/bin/busybox\nbusybox\n100000\n1\n",
        "{o:?}"
    );
}

#[test]
fn overlay_leaves_image_byte_for_byte_unchanged() {
    let img = Image::new("unchanged");
    let root = PathBuf::from(img.root());
    let before = snapshot(&root);
    let o = img.run(
        "set -e; rm -rf /usr /etc/hostname; echo x > /etc/passwd; chmod 700 /bin; mv /bin/ls /ls2; \
         mkdir -p /new/a; echo y > /new/a/f; ln -s /new /newlink; touch -d 2001-01-01 /bin/busybox; \
         cp /bin/busybox /bin/bb2; rm /bin/cat; ls / | sort | tr '\\n' ' '; echo",
        &[],
    );
    assert_code(&o, 0, "sandbox");
    assert_eq!(
        o.stdout_str(),
        "bin dev etc ls2 new newlink proc root sys tmp \n",
        "{o:?}"
    );
    let after = snapshot(&root);
    assert_eq!(before, after, "the image changed on the host");
}

#[test]
fn without_overlay_writes_reach_the_image_dir() {
    let img = Image::new("rw");
    let o = img.run(
        "echo written > /etc/new && mkdir /d && mv /etc/hostname /d/h && cat /d/h",
        &["--overlay=false"],
    );
    assert_code(&o, 0, "sandbox");
    assert_eq!(o.stdout_str(), "image\n", "{o:?}");
    let root = PathBuf::from(img.root());
    assert_eq!(
        std::fs::read_to_string(root.join("etc/new")).unwrap(),
        "written\n"
    );
    assert!(root.join("d/h").exists() && !root.join("etc/hostname").exists());
}

#[test]
fn escapes_stay_inside_the_image() {
    let img = Image::new("escape");
    // Each attempt prints what it read; none may print the secret. Symlinks
    // are resolved against the sandbox's root, `..` stops at the root.
    let o = img.run(
        "cat /../secret; cat /../../secret; cd / && cat ../secret; cat /etc/escape; \
         ln -s / /tmp/x && cat /tmp/x/../secret; ln -s ../../../../secret /tmp/y && cat /tmp/y; \
         cat /etc/abs; cd /proc/.. && cat ../../secret; \
         (for i in 1 2 3 4 5 6 7 8 9 10; do ln -sfn / /tmp/race; ln -sfn /etc /tmp/race; done &); \
         for i in 1 2 3 4 5 6 7 8 9 10; do cat /tmp/race/../secret 2>/dev/null; done; echo end",
        &[],
    );
    assert!(
        !o.stdout_str().contains("SECRET"),
        "the guest read a file outside its image:\n{o:?}"
    );
    assert!(
        o.stdout_str().contains("root:x:0:0"),
        "absolute symlinks resolve inside the image\n{o:?}"
    );
    assert!(o.stdout_str().ends_with("end\n"), "{o:?}");
}

#[test]
fn missing_root_is_a_clear_error() {
    let o = Spec::new(&["/bin/true"])
        .do_flag("--root")
        .do_flag("/nonexistent-runsc-root")
        .run_sandbox();
    assert_eq!(o.code, 125, "{o:?}");
    assert!(o.stderr_str().contains("/nonexistent-runsc-root"), "{o:?}");
}

#[test]
fn fifo_chroot_and_mounts() {
    let img = Image::new("mounts");
    let o = img.run(
        "mkfifo /tmp/f && (echo through-fifo > /tmp/f &) && cat /tmp/f; \
         mkdir -p /tmp/jail/bin && cp /bin/busybox /tmp/jail/bin/ && chroot /tmp/jail /bin/busybox sh -c 'cd /..; ls /'; \
         mkdir /m && mount -t tmpfs none /m && echo in-tmpfs > /m/f && cat /m/f && umount /m && test ! -e /m/f && echo unmounted; \
         mount --bind /etc /m && cat /m/hostname && umount /m; \
         mount -t proc proc /m && test -d /m/self && echo proc-mounted",
        &[],
    );
    assert_code(&o, 0, "sandbox");
    assert_eq!(
        o.stdout_str(),
        "through-fifo\nbin\nin-tmpfs\nunmounted\nimage\nproc-mounted\n",
        "{o:?}"
    );
}

/// Permission checks against the sandbox's credentials: read/write modes,
/// search permission, the sticky bit, chmod/utime ownership — the same
/// answers as natively.
#[test]
fn permissions_match_native() {
    let script = r#"import os, sys, errno
d = sys.argv[1]
os.makedirs(d, exist_ok=True); os.chmod(d, 0o1777)
def as_user(uid, f):
    pid = os.fork()
    if pid == 0:
        os.setgroups([]); os.setgid(uid); os.setuid(uid)
        try:
            r = f()
        except OSError as e:
            r = errno.errorcode[e.errno]
        print(uid, r, flush=True); os._exit(0)
    os.waitpid(pid, 0)
as_user(1000, lambda: open("/etc/shadow").read()[:0] or "read-ok")
as_user(1000, lambda: open("/etc/passwd", "a") and "write-ok")
as_user(1000, lambda: open(d + "/mine", "w").write("x") and "created")
as_user(1001, lambda: os.unlink(d + "/mine") or "deleted")
as_user(1000, lambda: os.chmod(d + "/mine", 0o600) or "chmod-ok")
as_user(1001, lambda: open(d + "/mine").read())
as_user(1001, lambda: os.chmod(d + "/mine", 0o644) or "chmod-ok")
as_user(1000, lambda: os.mkdir(d + "/sub", 0o700) or "mkdir")
as_user(1001, lambda: os.listdir(d + "/sub"))
as_user(1001, lambda: os.stat(d + "/sub/x"))
as_user(1000, lambda: os.access("/etc/shadow", os.R_OK))
as_user(1000, lambda: os.utime(d + "/mine") or "utime-ok")
as_user(1001, lambda: os.utime(d + "/mine") or "utime-ok")
as_user(1000, lambda: os.unlink(d + "/mine") or "deleted")
"#;
    let native_dir = format!("/var/tmp/runsc-it-perm-{}", std::process::id());
    let n = Spec::new(&["/usr/bin/python3", "-c", script, &native_dir]).run_native();
    let _ = std::fs::remove_dir_all(&native_dir);
    let s = Spec::new(&["/usr/bin/python3", "-c", script, "/tmp/perm"]).run_sandbox();
    assert_code(&n, 0, "native");
    assert_code(&s, 0, "sandbox");
    assert_eq!(n.stdout_str(), s.stdout_str());
    assert!(s.stdout_str().contains("1001 EPERM"), "{s:?}");
}

/// Real programs on the host image through the overlay: sqlite (python's)
/// with a WAL journal, git, and sort over a 50 MB file, compared with the
/// same run natively in a scratch directory.
#[test]
fn sqlite_git_and_big_sort_match_native() {
    let script = r#"set -e; d=$1; mkdir -p $d; cd $d
        /usr/bin/python3 -c "
import sqlite3
c = sqlite3.connect('t.db'); c.execute('create table t(a integer, b text)')
c.executemany('insert into t values(?,?)', [(i, str(i)) for i in range(5000)]); c.commit()
c.execute('pragma journal_mode=wal'); c.execute('insert into t values(-1, \"x\")'); c.commit()
print(c.execute('select count(*), sum(a), max(b) from t').fetchone())"
        seq 1 6500000 > big; wc -c < big; sort -rn big | md5sum; sort big | tail -1
        if [ -x /usr/bin/git ]; then git init -q r && cd r && echo a > f && git add f && \
            git -c user.email=a@b -c user.name=n commit -qm init && git log --format=%s; fi"#;
    let dir = format!("/var/tmp/runsc-it-prog-{}", std::process::id());
    let n = Spec::new(&["/bin/sh", "-c", script, "sh", &dir])
        .timeout(std::time::Duration::from_secs(120))
        .run_native();
    let _ = std::fs::remove_dir_all(&dir);
    let s = Spec::new(&["/bin/sh", "-c", script, "sh", &dir])
        .timeout(std::time::Duration::from_secs(120))
        .run_sandbox();
    assert_code(&n, 0, "native");
    assert_code(&s, 0, "sandbox");
    assert_eq!(n.stdout_str(), s.stdout_str());
    assert!(
        !std::path::Path::new(&dir).exists(),
        "the overlay wrote to the host"
    );
}

/// Exec failures in a vfork child (dash vforks simple commands): the child
/// shares its parent's address space, and its exit must not take the
/// parent's down with it. Also garbage and truncated executables.
#[test]
fn failing_execs_leave_the_parent_alive() {
    let o = sh("printf garbage > /tmp/x; chmod +x /tmp/x; /tmp/x; head -c 100 /bin/ls > /tmp/y; chmod +x /tmp/y; \
         /tmp/y; echo $?; head -c 5000 /bin/ls > /tmp/z; chmod +x /tmp/z; /tmp/z; echo $?; /nonexistent; echo $?; echo alive")
    .run_sandbox();
    assert_code(&o, 0, "sandbox");
    assert_eq!(o.stdout_str(), "126\n139\n127\nalive\n", "{o:?}");
    assert!(o.stderr_str().contains("Exec format error"), "{o:?}");
}

/// Extended attributes: python's os.*xattr on tmpfs (/tmp) and through the
/// overlay on the host root (/var/tmp, a host file with an attribute copied
/// up), compared with the same calls natively on the host's /var/tmp.
#[test]
fn xattrs_match_native() {
    let script = r#"
import os, sys
def run(p):
    out = []
    def t(f, *a):
        try:
            out.append(repr(f(*a)))
        except OSError as e:
            out.append('E%d' % e.errno)
    open(p, 'w').close()
    t(os.listxattr, p)
    t(os.setxattr, p, 'user.a', b'hello')
    t(os.setxattr, p, 'user.b', b'')
    t(os.getxattr, p, 'user.a')
    t(os.getxattr, p, 'user.b')
    t(os.getxattr, p, 'user.zz')
    t(lambda: sorted(os.listxattr(p)))
    t(os.setxattr, p, 'user.a', b'x', os.XATTR_CREATE)
    t(os.setxattr, p, 'user.c', b'x', os.XATTR_REPLACE)
    t(os.setxattr, p, 'user.a', b'world', os.XATTR_REPLACE)
    t(os.getxattr, p, 'user.a')
    t(os.setxattr, p, 'user.', b'x')
    t(os.setxattr, p, 'bogus.a', b'x')
    t(os.getxattr, p, '')
    t(os.getxattr, p, 'user.' + 'x' * 300)
    t(os.setxattr, p, 'user.big', b'x' * 70000)
    t(os.removexattr, p, 'user.a')
    t(os.removexattr, p, 'user.a')
    t(lambda: sorted(os.listxattr(p)))
    fd = os.open(p, os.O_RDONLY)
    t(os.getxattr, fd, 'user.b')
    t(os.listxattr, fd)
    os.close(fd)
    os.unlink(p)
    return ' '.join(out)
for p in sys.argv[2:]:
    print(run(p))
low = sys.argv[1]
try:
    a = (os.listxattr(low), os.getxattr(low, 'user.k'))
    os.setxattr(low, 'user.n', b'2')
    print(*a, sorted(os.listxattr(low)), open(low).read())
except OSError as e:
    print('E%d' % e.errno)
"#;
    const EXPECTED: &str =
        "[] None None b'hello' b'' E61 ['user.a', 'user.b'] E17 E61 None b'world' \
        E22 E95 E34 E34 E7 None E61 ['user.b'] b'' ['user.b']";
    let dir = format!("/var/tmp/runsc-it-xattr-{}", std::process::id());
    std::fs::create_dir_all(&dir).unwrap();
    let low = format!("{dir}/low");
    let f = |n: &str| format!("{dir}/{n}");
    let prep = |p: &str| {
        let _ = std::fs::remove_file(p);
        std::fs::write(p, "hi").unwrap();
        run_native(
            &[
                "/usr/bin/python3",
                "-c",
                &format!("import os; os.setxattr('{p}', 'user.k', b'v')"),
            ],
            None,
        )
    };
    let native_ok = prep(&low).code == 0;
    let n = run_native(
        &["/usr/bin/python3", "-c", script, &low, &f("native")],
        None,
    );
    prep(&low);
    let s = run_sandbox(
        &[
            "/usr/bin/python3",
            "-c",
            script,
            &low,
            "/tmp/x",
            &f("sandbox"),
        ],
        None,
    );
    let host_after = std::fs::read(&low).unwrap();
    let host_names = run_native(
        &[
            "/usr/bin/python3",
            "-c",
            "import os, sys; print(os.listxattr(sys.argv[1]))",
            &low,
        ],
        None,
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert_code(&n, 0, "native");
    assert_code(&s, 0, "sandbox");
    let out = s.stdout_str();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{s:?}");
    assert_eq!(lines[0], EXPECTED, "tmpfs");
    assert_eq!(lines[1], EXPECTED, "overlay");
    if native_ok {
        assert_eq!(
            n.stdout_str().lines().next(),
            Some(EXPECTED),
            "native {n:?}"
        );
        assert_eq!(
            lines[2], "['user.k'] b'v' ['user.k', 'user.n'] hi",
            "copy-up"
        );
    }
    assert_eq!(host_after, b"hi", "the overlay wrote to the host");
    if native_ok {
        assert_eq!(
            host_names.stdout_str(),
            "['user.k']\n",
            "the overlay wrote to the host"
        );
    }
}

/// O_TMPFILE: an unnamed file in a directory, readable and writable, that
/// never shows in the listing; O_RDONLY is refused as on Linux.
#[test]
fn o_tmpfile_makes_unnamed_files() {
    let script = "import os, sys\nd = sys.argv[1]; os.makedirs(d, exist_ok=True)\n\
        fd = os.open(d, os.O_TMPFILE | os.O_RDWR, 0o600)\nos.write(fd, b'hello'); os.lseek(fd, 0, 0)\n\
        print(os.read(fd, 10), sorted(os.listdir(d)), oct(os.fstat(fd).st_mode), os.fstat(fd).st_nlink)\n\
        try:\n    os.open(d, os.O_TMPFILE | os.O_RDONLY)\nexcept OSError as e:\n    print('err', e.errno)\nos.rmdir(d)\n";
    let n = Spec::new(&[
        "/usr/bin/python3",
        "-c",
        script,
        &format!("/var/tmp/runsc-it-tmpf-{}", std::process::id()),
    ])
    .run_native();
    let s = Spec::new(&["/usr/bin/python3", "-c", script, "/tmp/tmpf"]).run_sandbox();
    assert_code(&n, 0, "native");
    assert_code(&s, 0, "sandbox");
    assert_eq!(n.stdout_str(), s.stdout_str());
}
