//! Property test of the sentry's VFS: a long random sequence of file
//! operations (fixed seeds) runs natively and in the sandbox, on tmpfs and
//! on the overlay over a pre-populated image directory; every result
//! (success or errno) and the final tree must match Linux's.

use integration_tests::*;
use std::path::{Path, PathBuf};

const MODEL: &str = r#"
import os, sys, errno, ctypes, random, stat
libc = ctypes.CDLL(None, use_errno=True)
D = os.environ['MODEL_DIR']
seed = int(os.environ['MODEL_SEED'])
steps = int(os.environ.get('MODEL_STEPS', '400'))
os.makedirs(D, exist_ok=True)
os.chdir(D)
rng = random.Random(seed)
NAMES = ['a', 'b', 'c', 'dir', 'pre', 'sub']
def dirs():
    out = ['.']
    for root, ds, fs in os.walk('.'):
        out += [os.path.join(root, d) for d in sorted(ds)]
    return sorted(out)
def renameat2(a, b, flags):
    r = libc.syscall(316, -100, a.encode(), -100, b.encode(), flags)
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
def do(op):
    try:
        r = op()
        return 'ok' if r is None else r
    except OSError as e:
        return errno.errorcode[e.errno]
for step in range(steps):
    ds = dirs()
    p = os.path.join(rng.choice(ds), rng.choice(NAMES))
    q = os.path.join(rng.choice(ds), rng.choice(NAMES))
    op = rng.randrange(12)
    if op == 0:
        m = 0o600 | rng.randrange(0o100)
        def f():
            fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, m)
            os.close(fd)
        what, r = 'create', do(f)
    elif op == 1:
        what, r = 'mkdir', do(lambda: os.mkdir(p))
    elif op == 2:
        t = rng.choice(['a', 'sub/../b', 'dir/c', 'nowhere/x'])
        what, r = 'symlink ' + t, do(lambda: os.symlink(t, p))
    elif op == 3:
        what, r = 'link ' + q, do(lambda: os.link(q, p, follow_symlinks=False))
    elif op == 4:
        what, r = 'unlink', do(lambda: os.unlink(p))
    elif op == 5:
        what, r = 'rmdir', do(lambda: os.rmdir(p))
    elif op == 6:
        fl = rng.choice([0, 0, 1, 2])
        what, r = 'rename %s %d' % (q, fl), do(lambda: renameat2(p, q, fl))
    elif op == 7:
        def f():
            with open(p, 'a') as fh:
                fh.write('s%d;' % step)
        what, r = 'append', do(f)
    elif op == 8:
        n = rng.randrange(20)
        what, r = 'truncate %d' % n, do(lambda: os.truncate(p, n))
    elif op == 9:
        m = rng.randrange(0o1000) | 0o700
        what, r = 'chmod %o' % m, do(lambda: os.chmod(p, m, follow_symlinks=True))
    elif op == 10:
        what, r = 'listdir', do(lambda: ','.join(sorted(os.listdir(p))))
    else:
        def f():
            st = os.lstat(p)
            size = st.st_size if not stat.S_ISDIR(st.st_mode) else '-'
            return '%s %o nlink=%s size=%s' % (stat.filemode(st.st_mode), st.st_mode & 0o7777, st.st_nlink if not stat.S_ISDIR(st.st_mode) else '-', size)
        what, r = 'lstat', do(f)
    print(step, what, p, r)
for root, ds, fs in os.walk('.'):
    ds.sort()
    for n in sorted(ds + fs):
        x = os.path.join(root, n)
        st = os.lstat(x)
        if stat.S_ISLNK(st.st_mode):
            print(x, '->', os.readlink(x))
        elif stat.S_ISDIR(st.st_mode):
            print(x, 'dir %o' % (st.st_mode & 0o7777))
        else:
            print(x, 'file %o nlink %d' % (st.st_mode & 0o7777, st.st_nlink), open(x).read() if st.st_mode & 0o400 else '?')
"#;

/// A pre-populated image directory: files, a directory with content and a
/// symlink, so the overlay copies up, whites out and merges.
fn populate(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("sub/dir")).expect("mkdir");
    std::fs::write(dir.join("pre"), "lower pre;").expect("write");
    std::fs::write(dir.join("a"), "lower a;").expect("write");
    std::fs::write(dir.join("sub/c"), "lower c;").expect("write");
    std::fs::write(dir.join("sub/dir/a"), "deep;").expect("write");
    std::os::unix::fs::symlink("pre", dir.join("b")).expect("symlink");
}

fn compare(native: &Spec, sandbox: &Spec) {
    let n = native.run_native();
    let s = sandbox.run_sandbox();
    assert_eq!(n.code, 0, "native run failed: {n:?}");
    if n.stdout != s.stdout || n.code != s.code {
        let (ns, ss) = (n.stdout_str(), s.stdout_str());
        let first = ns
            .lines()
            .zip(ss.lines())
            .find(|(a, b)| a != b)
            .map(|(a, b)| format!("native:  {a}\nsandbox: {b}"))
            .unwrap_or_default();
        panic!(
            "VFS model differs from Linux:\n{first}\n\nsandbox stderr:\n{}",
            s.stderr_str()
        );
    }
}

fn model_spec(dir: &str, seed: u64) -> Spec {
    py(MODEL)
        .env("MODEL_DIR", dir)
        .env("MODEL_SEED", &seed.to_string())
        .env("MODEL_STEPS", "400")
}

#[test]
fn random_file_operations_on_tmpfs_match_linux() {
    // The sandbox's /tmp is its own tmpfs; the native run gets a fresh
    // directory of the host's /tmp.
    for seed in 1u64..=4 {
        let dir = format!("/tmp/vfs-model-{}-{seed}", std::process::id());
        let spec = model_spec(&dir, seed);
        compare(&spec, &spec);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn random_file_operations_on_the_overlay_match_linux() {
    // Two identical image directories: the native run changes one for
    // real, the sandbox works on the other through its overlay (and must
    // leave it untouched).
    for seed in 11u64..=14 {
        let base = PathBuf::from(format!("/var/tmp/vfs-model-{}-{seed}", std::process::id()));
        let (native_dir, image_dir) = (base.join("native"), base.join("image"));
        populate(&native_dir);
        populate(&image_dir);
        compare(
            &model_spec(native_dir.to_str().expect("utf-8"), seed),
            &model_spec(image_dir.to_str().expect("utf-8"), seed),
        );
        let untouched = std::fs::read_to_string(image_dir.join("pre")).expect("image file");
        assert_eq!(untouched, "lower pre;");
        let _ = std::fs::remove_dir_all(&base);
    }
}
