//! `fs-bench`: file-system workloads, natively and inside the sandbox,
//! measured side by side in one run.
//!
//! Two roles share this binary:
//!
//! * Inner (`--inner read PATH [OFFSET]`, `--inner files DIR N`): the
//!   workload itself. It prints one `key=value` line; only the workload loop
//!   is timed (with `std::time::Instant`), not process start-up.
//!   * `read`: one unmeasured pass over PATH (warms the host page cache and
//!     anything the sandbox caches, and checksums the data), then a timed
//!     pass of 1 MiB `read(2)` calls on a fresh descriptor until end of file,
//!     into a page-aligned buffer (OFFSET bytes past the boundary, default 0).
//!   * `files`: creates DIR (if missing), then N files
//!     (`open(O_CREAT|O_EXCL|O_WRONLY)`, one 100-byte `write`, `close`), then
//!     `stat`s each, then `unlink`s each; the three phases are timed
//!     separately. DIR is removed afterwards if this process created it.
//! * Driver (no `--inner`): creates the data file under /var/tmp on the host,
//!   runs the inner role natively and under `runsc do`, and the real `find`
//!   binary natively and under `runsc do` (plus a `find` of a missing
//!   directory, to subtract start-up), `--reps` times each, interleaved per
//!   repetition, and prints medians and sandbox/native ratios. The files
//!   workload runs natively under /var/tmp and (if it is a tmpfs) /dev/shm,
//!   and in the sandbox in /tmp (tmpfs) and under /var/tmp (overlay). The
//!   scratch directory under /var/tmp is removed at the end, also on errors.

#[path = "common.rs"]
mod common;

use std::ffi::{CString, OsString};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const DEFAULT_REPS: usize = 3;
const DEFAULT_SIZE_MIB: u64 = 200;
const DEFAULT_FILES: u64 = 10_000;
const DEFAULT_FIND_DIR: &str = "/usr";
const EMPTY_FIND_DIR: &str = "/nonexistent-dir-fs-bench";
const READ_CHUNK: usize = 1 << 20;
const FILE_BYTES: usize = 100;

const USAGE: &str = "\
usage:
  fs-bench [--runsc PATH] [--reps R] [--size-mib M] [--read-offset B]
           [--files N] [--find PATH] [--find-dir DIR] [--only read|files|find]
      driver: runs the workloads natively and under `runsc do`, prints a
      table of medians and sandbox/native ratios. Defaults: 3 reps, a
      200 MiB file, 10000 files, `find /usr`. runsc is found via --runsc,
      $RUNSC_BIN, <workspace>/target/release/runsc or next to this executable.
      --read-offset B puts the read buffer B bytes past a page boundary (default 0).
  fs-bench --inner read PATH [OFFSET]
      inner: one unmeasured pass, then a timed pass of 1 MiB reads into a
      page-aligned (+OFFSET) buffer; prints MB/s.
  fs-bench --inner files DIR N
      inner: create (100 B each), stat, unlink N files in DIR; prints ns per phase.";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Only {
    All,
    Read,
    Files,
    Find,
}

struct Opts {
    inner: Option<Vec<String>>,
    runsc: Option<PathBuf>,
    reps: usize,
    size_mib: u64,
    files: u64,
    find: Option<PathBuf>,
    find_dir: String,
    read_offset: usize,
    only: Only,
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        inner: None,
        runsc: None,
        reps: DEFAULT_REPS,
        size_mib: DEFAULT_SIZE_MIB,
        files: DEFAULT_FILES,
        find: None,
        find_dir: DEFAULT_FIND_DIR.into(),
        read_offset: 0,
        only: Only::All,
    };
    let mut args = std::env::args().skip(1);
    let num = |flag: &str, v: Option<String>| -> Result<u64, String> {
        let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
        v.replace('_', "")
            .parse::<u64>()
            .map_err(|e| format!("{flag} {v:?}: {e}"))
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--inner" => {
                // Everything after --inner belongs to the inner role.
                o.inner = Some(args.by_ref().collect());
            }
            "--runsc" => o.runsc = Some(args.next().ok_or("--runsc needs a value")?.into()),
            "--reps" => {
                o.reps = num("--reps", args.next())? as usize;
                if o.reps == 0 {
                    return Err("--reps must be at least 1".into());
                }
            }
            "--size-mib" => {
                o.size_mib = num("--size-mib", args.next())?;
                if o.size_mib == 0 {
                    return Err("--size-mib must be at least 1".into());
                }
            }
            "--files" => {
                o.files = num("--files", args.next())?;
                if o.files == 0 {
                    return Err("--files must be at least 1".into());
                }
            }
            "--find" => o.find = Some(args.next().ok_or("--find needs a value")?.into()),
            "--find-dir" => o.find_dir = args.next().ok_or("--find-dir needs a value")?,
            "--read-offset" => {
                o.read_offset = num("--read-offset", args.next())? as usize;
                if o.read_offset >= 4096 {
                    return Err("--read-offset must be below 4096".into());
                }
            }
            "--only" => {
                o.only = match args.next().as_deref() {
                    Some("read") => Only::Read,
                    Some("files") => Only::Files,
                    Some("find") => Only::Find,
                    Some("all") => Only::All,
                    v => return Err(format!("--only {v:?}: expected read, files, find or all")),
                }
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => return Err(format!("unknown argument {a:?}\n{USAGE}")),
        }
    }
    Ok(o)
}

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("fs-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let r = match &opts.inner {
        Some(args) => inner(args),
        None => driver(&opts),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fs-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------- inner --

fn inner(args: &[String]) -> Result<(), String> {
    match args {
        [m, path] if m == "read" => inner_read(Path::new(path), 0),
        [m, path, off] if m == "read" => {
            let off = off
                .parse::<usize>()
                .map_err(|e| format!("read OFFSET {off:?}: {e}"))?;
            inner_read(Path::new(path), off)
        }
        [m, dir, n] if m == "files" => {
            let n = n
                .replace('_', "")
                .parse::<u64>()
                .map_err(|e| format!("files N {n:?}: {e}"))?;
            inner_files(Path::new(dir), n)
        }
        _ => Err(format!("bad --inner arguments {args:?}\n{USAGE}")),
    }
}

/// A zeroed, page-aligned buffer of `len` bytes, as `dd` and coreutils
/// `cat` use. `offset` shifts the start off the page boundary: natively,
/// the host kernel's copy into a misaligned user buffer is markedly slower
/// on some CPUs, so the alignment is a parameter, not an accident of the
/// allocator (a plain `vec!` of 1 MiB starts 16 bytes into a page).
struct AlignedBuf {
    ptr: *mut u8,
    layout: std::alloc::Layout,
    offset: usize,
    len: usize,
}

impl AlignedBuf {
    fn new(len: usize, offset: usize) -> Result<AlignedBuf, String> {
        let layout = std::alloc::Layout::from_size_align(len + offset, 4096)
            .map_err(|e| format!("buffer layout: {e}"))?;
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        if ptr.is_null() {
            return Err("out of memory for the read buffer".into());
        }
        Ok(AlignedBuf {
            ptr,
            layout,
            offset,
            len,
        })
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: ptr points to layout.size() = offset + len zeroed bytes
        // owned by self, and the borrow of self keeps them exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(self.offset), self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in new() with this layout.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) };
    }
}

/// Reads `path` to the end with `read(2)` calls of `buf.len()` bytes;
/// returns the number of bytes read and a checksum of the contents (a
/// wrapping sum of little-endian u64 words, to compare native and sandbox).
fn read_all_sum(path: &Path, buf: &mut [u8]) -> Result<(u64, u64), String> {
    let mut f = fs::File::open(path).map_err(|e| format!("open {}: {e}", path.display()))?;
    let (mut total, mut sum) = (0u64, 0u64);
    loop {
        // std's File::read is a single read(2) call.
        match f.read(buf) {
            Ok(0) => return Ok((total, sum)),
            Ok(n) => {
                let words = buf[..n].chunks_exact(8);
                let mut tail = [0u8; 8];
                tail[..words.remainder().len()].copy_from_slice(words.remainder());
                for w in words {
                    sum = sum.wrapping_add(u64::from_le_bytes(w.try_into().unwrap()));
                }
                sum = sum.wrapping_add(u64::from_le_bytes(tail));
                total += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("read {}: {e}", path.display())),
        }
    }
}

fn inner_read(path: &Path, offset: usize) -> Result<(), String> {
    let mut ab = AlignedBuf::new(READ_CHUNK, offset)?;
    let buf = ab.as_mut_slice();
    // Unmeasured pass: warms caches on both sides and checksums the data.
    let (warm, sum) = read_all_sum(path, buf)?;
    let mut f = fs::File::open(path).map_err(|e| format!("open {}: {e}", path.display()))?;
    let mut total = 0u64;
    let mut calls = 0u64;
    let t0 = Instant::now();
    loop {
        match f.read(buf) {
            Ok(0) => break,
            Ok(n) => {
                total += n as u64;
                calls += 1;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("read {}: {e}", path.display())),
        }
    }
    let loop_ns = t0.elapsed().as_nanos();
    std::hint::black_box(&buf);
    if total != warm || total == 0 {
        return Err(format!(
            "{}: timed pass read {total} bytes, warm-up pass {warm}",
            path.display()
        ));
    }
    let mb_per_s = total as f64 / 1e6 / (loop_ns as f64 / 1e9);
    println!(
        "mode=read bytes={total} chunk={READ_CHUNK} offset={offset} calls={calls} \
         loop_ns={loop_ns} mb_per_s={mb_per_s:.1} sum={sum}"
    );
    Ok(())
}

fn cstr(p: &Path) -> Result<CString, String> {
    CString::new(p.as_os_str().as_bytes()).map_err(|e| format!("{}: {e}", p.display()))
}

fn errno_msg(what: &str, p: &CString) -> String {
    format!(
        "{what} {}: {}",
        p.to_string_lossy(),
        std::io::Error::last_os_error()
    )
}

fn inner_files(dir: &Path, n: u64) -> Result<(), String> {
    let created_dir = match fs::create_dir(dir) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(format!("mkdir {}: {e}", dir.display())),
    };
    // Paths are built before timing so that only system calls are timed.
    let names: Vec<CString> = (0..n)
        .map(|i| cstr(&dir.join(format!("f{i:06}"))))
        .collect::<Result<_, _>>()?;
    let data = [b'x'; FILE_BYTES];

    let t0 = Instant::now();
    for p in &names {
        // SAFETY: p is a valid NUL-terminated path.
        let fd = unsafe {
            libc::open(
                p.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC,
                0o644,
            )
        };
        if fd < 0 {
            return Err(errno_msg("open", p));
        }
        // SAFETY: fd is open; data is a valid buffer of FILE_BYTES bytes.
        let w = unsafe { libc::write(fd, data.as_ptr().cast(), FILE_BYTES) };
        if w != FILE_BYTES as isize {
            return Err(format!("write {}: returned {w}", p.to_string_lossy()));
        }
        // SAFETY: fd is open and owned here.
        if unsafe { libc::close(fd) } != 0 {
            return Err(errno_msg("close", p));
        }
    }
    let create_ns = t0.elapsed().as_nanos();

    let t1 = Instant::now();
    for p in &names {
        // SAFETY: an all-zero stat is a valid value to be overwritten.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: p is a valid path; st is writable.
        if unsafe { libc::stat(p.as_ptr(), &mut st) } != 0 {
            return Err(errno_msg("stat", p));
        }
        if st.st_size != FILE_BYTES as libc::off_t {
            return Err(format!(
                "stat {}: size {} (expected {FILE_BYTES})",
                p.to_string_lossy(),
                st.st_size
            ));
        }
    }
    let stat_ns = t1.elapsed().as_nanos();

    let t2 = Instant::now();
    for p in &names {
        // SAFETY: p is a valid path.
        if unsafe { libc::unlink(p.as_ptr()) } != 0 {
            return Err(errno_msg("unlink", p));
        }
    }
    let unlink_ns = t2.elapsed().as_nanos();

    if created_dir {
        fs::remove_dir(dir).map_err(|e| format!("rmdir {}: {e}", dir.display()))?;
    }
    println!(
        "mode=files n={n} bytes={FILE_BYTES} create_ns={create_ns} stat_ns={stat_ns} \
         unlink_ns={unlink_ns} total_ns={}",
        create_ns + stat_ns + unlink_ns
    );
    Ok(())
}

// --------------------------------------------------------------- driver --

fn find_runsc(opts: &Opts) -> Result<PathBuf, String> {
    common::find_runsc(opts.runsc.as_deref())
}

/// `find` from `--find` or the first `find` on $PATH, made absolute so the
/// sandbox runs the same binary.
fn find_find(opts: &Opts) -> Result<PathBuf, String> {
    if let Some(p) = &opts.find {
        return p
            .canonicalize()
            .map_err(|e| format!("{}: {e}", p.display()));
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/bin:/bin"));
    for d in std::env::split_paths(&path) {
        let p = d.join("find");
        if p.is_file() {
            return p
                .canonicalize()
                .map_err(|e| format!("{}: {e}", p.display()));
        }
    }
    Err("no `find` on $PATH (use --find PATH)".into())
}

/// A directory the driver is responsible for on the host; removed on drop
/// (if it still exists), so also when a run fails.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        match fs::remove_dir_all(&self.0) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                eprintln!("fs-bench: removing {}: {e}", self.0.display())
            }
            _ => {}
        }
    }
}

/// Writes `mib` MiB of pseudo-random (incompressible, non-sparse) data.
fn make_data_file(path: &Path, mib: u64) -> Result<(), String> {
    let mut f = fs::File::create(path).map_err(|e| format!("create {}: {e}", path.display()))?;
    let mut buf = vec![0u8; READ_CHUNK];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..mib {
        for chunk in buf.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        f.write_all(&buf)
            .map_err(|e| format!("write {}: {e}", path.display()))?;
    }
    f.sync_all()
        .map_err(|e| format!("fsync {}: {e}", path.display()))
}

struct Run {
    wall: Duration,
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Runs `cmd` with stdin from /dev/null; stdout either to /dev/null or
/// captured. Wall time covers spawn to exit.
fn run(mut cmd: Command, capture_stdout: bool) -> Result<Run, String> {
    cmd.stdin(Stdio::null())
        .stdout(if capture_stdout {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::piped());
    let t0 = Instant::now();
    let out = cmd.output().map_err(|e| format!("spawning {cmd:?}: {e}"))?;
    let wall = t0.elapsed();
    Ok(Run {
        wall,
        status: out.status,
        stdout: out.stdout,
        stderr: out.stderr,
    })
}

fn status_str(s: ExitStatus) -> String {
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit {c}"),
        (None, Some(sig)) => format!("signal {sig}"),
        _ => format!("{s}"),
    }
}

fn failed(what: &str, r: &Run) -> String {
    format!(
        "{what}: {}; stderr: {}",
        status_str(r.status),
        String::from_utf8_lossy(&r.stderr).trim_end()
    )
}

/// Runs an inner workload and returns its `key=value` result line's fields.
fn run_inner(what: &str, cmd: Command) -> Result<(Fields, Duration), String> {
    let r = run(cmd, true)?;
    if !r.status.success() {
        return Err(failed(what, &r));
    }
    let text = String::from_utf8_lossy(&r.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("mode="))
        .ok_or_else(|| format!("{what}: no result line in output {text:?}"))?;
    let fields = line
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Ok((fields, r.wall))
}

/// The `key=value` pairs of an inner result line.
type Fields = Vec<(String, String)>;

fn field_str<'a>(fields: &'a Fields, k: &str) -> Result<&'a str, String> {
    fields
        .iter()
        .find(|(key, _)| key == k)
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| format!("no {k}= in result {fields:?}"))
}

fn field(fields: &Fields, k: &str) -> Result<f64, String> {
    let v = field_str(fields, k)?;
    v.parse()
        .map_err(|e| format!("{k}={v:?} in result {fields:?}: {e}"))
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

fn list(v: &[f64], prec: usize) -> String {
    v.iter()
        .map(|x| format!("{x:.prec$}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The ways a workload is run: natively, or under `runsc do`.
struct Launcher {
    me: PathBuf,
    runsc: PathBuf,
}

impl Launcher {
    fn native(&self, prog: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(prog);
        c.args(args).current_dir("/");
        c
    }

    fn sandbox(&self, prog: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(&self.runsc);
        c.arg("do").arg("--").arg(prog).args(args).current_dir("/");
        c
    }

    fn me_native(&self, args: &[&str]) -> Command {
        self.native(&self.me, args)
    }

    fn me_sandbox(&self, args: &[&str]) -> Command {
        self.sandbox(&self.me, args)
    }
}

fn driver(opts: &Opts) -> Result<(), String> {
    let me = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map_err(|e| format!("finding our own executable: {e}"))?;
    let runsc = find_runsc(opts)?;
    let runsc = runsc
        .canonicalize()
        .map_err(|e| format!("{}: {e}", runsc.display()))?;
    let l = Launcher { me, runsc };
    let reps = opts.reps;
    let want = |w: Only| opts.only == Only::All || opts.only == w;

    println!("fs-bench driver");
    println!("  self:  {}", l.me.display());
    println!("  runsc: {}", l.runsc.display());
    println!(
        "  reps: {reps} per mode, interleaved (rep 1 of every mode, then rep 2, ...); figures are medians"
    );
    println!();
    eprintln!("raw samples:");

    if want(Only::Read) {
        read_bench(&l, opts)?;
    }
    if want(Only::Files) {
        files_bench(&l, opts)?;
    }
    if want(Only::Find) {
        find_bench(&l, opts)?;
    }
    Ok(())
}

fn scratch_dir() -> Result<Scratch, String> {
    let dir = PathBuf::from(format!("/var/tmp/fs-bench.{}", std::process::id()));
    fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    Ok(Scratch(dir))
}

fn read_bench(l: &Launcher, opts: &Opts) -> Result<(), String> {
    let scratch = scratch_dir()?;
    let file = scratch.0.join("read.dat");
    let t0 = Instant::now();
    make_data_file(&file, opts.size_mib)?;
    eprintln!(
        "  created {} ({} MiB) in {:.0} ms",
        file.display(),
        opts.size_mib,
        ms(t0.elapsed())
    );
    let path = file.to_str().ok_or("non-UTF-8 scratch path")?;
    let offset = opts.read_offset.to_string();
    let args = ["--inner", "read", path, &offset];
    let mut sums = Vec::new();

    let (mut n_rate, mut s_rate) = (Vec::new(), Vec::new());
    let (mut n_loop, mut s_loop) = (Vec::new(), Vec::new());
    let (mut n_wall, mut s_wall) = (Vec::new(), Vec::new());
    for _ in 0..opts.reps {
        let (f, w) = run_inner("native read", l.me_native(&args))?;
        sums.push(field_str(&f, "sum")?.to_string());
        n_rate.push(field(&f, "mb_per_s")?);
        n_loop.push(field(&f, "loop_ns")? / 1e6);
        n_wall.push(ms(w));
        let (f, w) = run_inner("sandbox read", l.me_sandbox(&args))?;
        sums.push(field_str(&f, "sum")?.to_string());
        s_rate.push(field(&f, "mb_per_s")?);
        s_loop.push(field(&f, "loop_ns")? / 1e6);
        s_wall.push(ms(w));
    }
    if sums.iter().any(|s| *s != sums[0]) {
        return Err(format!("read: checksums differ between runs: {sums:?}"));
    }
    eprintln!("  read: all runs saw the same data (checksum {})", sums[0]);
    eprintln!("  read native  MB/s per rep: {}", list(&n_rate, 0));
    eprintln!("  read sandbox MB/s per rep: {}", list(&s_rate, 0));
    eprintln!(
        "  read native  whole-process ms per rep (2 passes + start-up): {}",
        list(&n_wall, 1)
    );
    eprintln!(
        "  read sandbox whole-process ms per rep (2 passes + start-up): {}",
        list(&s_wall, 1)
    );
    drop(scratch);

    let (nr, sr) = (median(&n_rate), median(&s_rate));
    println!(
        "1. sequential read of a {} MiB file on the host's /var/tmp (in the sandbox: the\n   \
         overlay's lower layer, opened through the gofer), 1 MiB read(2) calls into a buffer\n   \
         {} bytes past a page boundary, warm cache (one unmeasured pass in the same process\n   \
         first); only the timed read loop counts.",
        opts.size_mib, opts.read_offset
    );
    println!(
        "  {:<8} {:>12} {:>15} {:>16} {:>18}",
        "mode", "median MB/s", "min..max MB/s", "median loop ms", "whole process ms"
    );
    for (mode, rate, lp, wall) in [
        ("native", &n_rate, &n_loop, &n_wall),
        ("sandbox", &s_rate, &s_loop, &s_wall),
    ] {
        let lo = rate.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = rate.iter().copied().fold(0.0, f64::max);
        println!(
            "  {:<8} {:>12.0} {:>15} {:>16.1} {:>18.1}",
            mode,
            median(rate),
            format!("{lo:.0}..{hi:.0}"),
            median(lp),
            median(wall)
        );
    }
    println!(
        "  sandbox/native time ratio: {:.2}x (sandbox throughput is {:.0}% of native)",
        nr / sr,
        100.0 * sr / nr
    );
    println!("  (MB = 10^6 bytes; whole process = start-up, both passes and exit)");
    println!();
    Ok(())
}

struct FilesSample {
    create: f64,
    stat: f64,
    unlink: f64,
    total: f64,
}

fn files_sample(f: &Fields) -> Result<FilesSample, String> {
    Ok(FilesSample {
        create: field(f, "create_ns")? / 1e6,
        stat: field(f, "stat_ns")? / 1e6,
        unlink: field(f, "unlink_ns")? / 1e6,
        total: field(f, "total_ns")? / 1e6,
    })
}

/// Whether `p` is on a tmpfs (statfs magic).
fn is_tmpfs(p: &Path) -> bool {
    let Ok(c) = cstr(p) else { return false };
    // SAFETY: an all-zero statfs is a valid value to be overwritten.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid path; st is writable.
    let r = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    // The types of f_type and TMPFS_MAGIC differ between targets.
    #[allow(clippy::unnecessary_cast)]
    let tmpfs = st.f_type as i64 == libc::TMPFS_MAGIC as i64;
    r == 0 && tmpfs
}

fn files_bench(l: &Launcher, opts: &Opts) -> Result<(), String> {
    let scratch = scratch_dir()?;
    let n = opts.files;
    let n_s = n.to_string();
    let pid = std::process::id();
    let shm = Path::new("/dev/shm");
    let with_shm = is_tmpfs(shm);
    // (label, sandboxed?, directory for repetition `rep`). Natively the
    // directory is fresh on the host; in the sandbox the inner role creates
    // it, in the private tmpfs or in the overlay's memory upper layer (its
    // name does not exist on the host, so nothing reaches the host).
    type DirFor = Box<dyn Fn(usize) -> String>;
    let mut configs: Vec<(&str, bool, DirFor)> = Vec::new();
    let sd = scratch.0.clone();
    configs.push((
        "native /var/tmp (host disk)",
        false,
        Box::new(move |rep| sd.join(format!("files-{rep}")).display().to_string()),
    ));
    if with_shm {
        configs.push((
            "native /dev/shm (host tmpfs)",
            false,
            Box::new(move |rep| format!("/dev/shm/fs-bench.{pid}.{rep}")),
        ));
    }
    configs.push((
        "sandbox /tmp (tmpfs)",
        true,
        Box::new(move |rep| format!("/tmp/fs-bench.{pid}.{rep}")),
    ));
    configs.push((
        "sandbox /var/tmp (overlay)",
        true,
        Box::new(move |rep| format!("/var/tmp/fs-bench.{pid}.sandbox-{rep}")),
    ));

    let mut samples: Vec<Vec<FilesSample>> = configs.iter().map(|_| Vec::new()).collect();
    for rep in 0..opts.reps {
        for ((label, sandboxed, dir_for), out) in configs.iter().zip(samples.iter_mut()) {
            let dir = dir_for(rep);
            // The inner role removes its directory; this covers failures.
            let _cleanup = (!*sandboxed).then(|| Scratch(PathBuf::from(&dir)));
            let args = ["--inner", "files", dir.as_str(), n_s.as_str()];
            let cmd = if *sandboxed {
                l.me_sandbox(&args)
            } else {
                l.me_native(&args)
            };
            let (f, _) = run_inner(label, cmd)?;
            out.push(files_sample(&f)?);
            if *sandboxed && Path::new(&dir).exists() {
                return Err(format!(
                    "{dir} appeared on the host: the sandbox wrote through"
                ));
            }
        }
    }
    drop(scratch);

    type Get = fn(&FilesSample) -> f64;
    let phases: [(&str, Get); 4] = [
        ("create", |s| s.create),
        ("stat", |s| s.stat),
        ("unlink", |s| s.unlink),
        ("total", |s| s.total),
    ];
    for ((label, _, _), s) in configs.iter().zip(&samples) {
        for (name, get) in &phases {
            let v: Vec<f64> = s.iter().map(get).collect();
            eprintln!("  files {label:<28} {name:<6} ms per rep: {}", list(&v, 1));
        }
    }
    // med[config][phase]
    let med: Vec<Vec<f64>> = samples
        .iter()
        .map(|s| {
            phases
                .iter()
                .map(|(_, get)| median(&s.iter().map(get).collect::<Vec<_>>()))
                .collect()
        })
        .collect();

    println!(
        "2. create+stat+unlink of {n} files: create = open(O_CREAT|O_EXCL|O_WRONLY) + write\n   \
         {FILE_BYTES} B + close; then stat each; then unlink each; each phase timed on its own.\n   \
         Fresh directory per run. Native: under /var/tmp on the host disk{}. Sandbox: in /tmp\n   \
         (the sandbox's private in-memory tmpfs) and under /var/tmp through the overlay\n   \
         (memory upper layer).",
        if with_shm {
            ", and under /dev/shm\n   (host tmpfs, a like-for-like reference for in-memory storage)"
        } else {
            ""
        }
    );
    println!(
        "  {:<29} {:>10} {:>9} {:>10} {:>10} {:>9}",
        "median ms per phase", "create", "stat", "unlink", "total", "files/s"
    );
    for ((label, _, _), m) in configs.iter().zip(&med) {
        println!(
            "  {:<29} {:>10.1} {:>9.1} {:>10.1} {:>10.1} {:>9.0}",
            label,
            m[0],
            m[1],
            m[2],
            m[3],
            n as f64 / (m[3] / 1e3)
        );
    }
    println!(
        "  {:<29} {:>10} {:>9} {:>10} {:>10}",
        "ratio (sandbox ms/native ms)", "create", "stat", "unlink", "total"
    );
    let natives: Vec<usize> = (0..configs.len()).filter(|&i| !configs[i].1).collect();
    for s in (0..configs.len()).filter(|&i| configs[i].1) {
        for &nat in &natives {
            let short = |l: &str| {
                l.split(" (")
                    .next()
                    .unwrap_or(l)
                    .replace("sandbox ", "sbx ")
                    .replace("native ", "nat ")
            };
            println!(
                "  {:<29} {:>9.1}x {:>8.1}x {:>9.1}x {:>9.1}x",
                format!("{} vs {}", short(configs[s].0), short(configs[nat].0)),
                med[s][0] / med[nat][0],
                med[s][1] / med[nat][1],
                med[s][2] / med[nat][2],
                med[s][3] / med[nat][3]
            );
        }
    }
    println!(
        "  (ms = median over repetitions of each phase's loop; files/s = files per second of\n   \
         the median total, each file created, stat'ed and unlinked)"
    );
    println!();
    Ok(())
}

fn find_bench(l: &Launcher, opts: &Opts) -> Result<(), String> {
    let find = find_find(opts)?;
    let dir = opts.find_dir.as_str();

    // Unmeasured check run per mode (also warms the host's dentry/inode
    // caches): count the output lines and compare.
    let mut counts = Vec::new();
    for (mode, cmd) in [
        ("native", l.native(&find, &[dir])),
        ("sandbox", l.sandbox(&find, &[dir])),
    ] {
        let r = run(cmd, true)?;
        if !r.status.success() {
            return Err(failed(&format!("{mode} find {dir}"), &r));
        }
        let lines = r.stdout.iter().filter(|&&b| b == b'\n').count();
        counts.push(lines);
    }
    eprintln!(
        "  find {dir}: {} entries natively, {} in the sandbox (unmeasured check run)",
        counts[0], counts[1]
    );
    if counts[0] != counts[1] {
        eprintln!("  WARNING: find {dir} output differs in length between native and sandbox");
    }

    let (mut n_full, mut s_full) = (Vec::new(), Vec::new());
    let (mut n_empty, mut s_empty) = (Vec::new(), Vec::new());
    let check_empty = |what: &str, r: &Run| -> Result<(), String> {
        // find exits 1 after reporting the missing directory.
        if r.status.code() == Some(1) && !r.stderr.is_empty() {
            Ok(())
        } else {
            Err(failed(what, r))
        }
    };
    for _ in 0..opts.reps {
        let r = run(l.native(&find, &[dir]), false)?;
        if !r.status.success() {
            return Err(failed("native find", &r));
        }
        n_full.push(ms(r.wall));
        let r = run(l.sandbox(&find, &[dir]), false)?;
        if !r.status.success() {
            return Err(failed("sandbox find", &r));
        }
        s_full.push(ms(r.wall));
        let r = run(l.native(&find, &[EMPTY_FIND_DIR]), false)?;
        check_empty("native empty find", &r)?;
        n_empty.push(ms(r.wall));
        let r = run(l.sandbox(&find, &[EMPTY_FIND_DIR]), false)?;
        check_empty("sandbox empty find", &r)?;
        s_empty.push(ms(r.wall));
    }
    eprintln!("  find native  {dir} ms per rep: {}", list(&n_full, 1));
    eprintln!("  find sandbox {dir} ms per rep: {}", list(&s_full, 1));
    eprintln!(
        "  find native  {EMPTY_FIND_DIR} ms per rep: {}",
        list(&n_empty, 1)
    );
    eprintln!(
        "  find sandbox {EMPTY_FIND_DIR} ms per rep: {}",
        list(&s_empty, 1)
    );
    eprintln!();

    let (nf, sf) = (median(&n_full), median(&s_full));
    let (ne, se) = (median(&n_empty), median(&s_empty));
    println!(
        "3. `{} {dir} > /dev/null` ({} entries), whole-process wall time measured by the\n   \
         driver; start-up-free = median(find {dir}) - median(find {EMPTY_FIND_DIR}), the\n   \
         latter being the same binary started on a missing directory (exits 1 at once).",
        find.display(),
        counts[0]
    );
    println!(
        "  {:<8} {:>16} {:>14} {:>18}",
        "mode", "whole process ms", "empty run ms", "start-up-free ms"
    );
    println!(
        "  {:<8} {:>16.1} {:>14.1} {:>18.1}",
        "native",
        nf,
        ne,
        nf - ne
    );
    println!(
        "  {:<8} {:>16.1} {:>14.1} {:>18.1}",
        "sandbox",
        sf,
        se,
        sf - se
    );
    println!(
        "  sandbox/native ratio: {:.1}x (whole process), {:.1}x (start-up-free)",
        sf / nf,
        (sf - se) / (nf - ne)
    );
    println!();
    Ok(())
}
