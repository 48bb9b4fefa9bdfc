//! `getpid-bench`: system call round trips, natively and inside the sandbox,
//! measured in one run.
//!
//! Two roles share this binary:
//!
//! * Inner (`--inner N [--op getpid|clock]`): performs a warm-up, then `N`
//!   calls in a timed loop, and prints one `key=value` line with the loop
//!   time and ns/call. Only the loop is timed. `getpid` is issued as a raw
//!   `syscall(SYS_getpid)` so no libc caching can skip the kernel. `clock` is
//!   `libc::clock_gettime(CLOCK_MONOTONIC)`: glibc normally serves it from
//!   the vDSO natively; the sandbox has no vDSO yet, so there it traps.
//! * Driver (no `--inner`): runs the inner role natively and under
//!   `runsc do`, several repetitions each, and prints a table with median and
//!   minimum ns/call, calls/s, whole-process wall time ("startup+run") and the
//!   sandbox/native ratio.

#[path = "common.rs"]
mod common;

use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

const DEFAULT_NATIVE_ITERS: u64 = 200_000;
const DEFAULT_SANDBOX_ITERS: u64 = 20_000;
const DEFAULT_REPS: usize = 5;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Getpid,
    Clock,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Getpid => "getpid",
            Op::Clock => "clock",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Op::Getpid => "getpid (raw syscall(SYS_getpid))",
            Op::Clock => {
                "clock_gettime(CLOCK_MONOTONIC) via libc (vDSO natively, trapped in sandbox: no vDSO yet)"
            }
        }
    }

    fn parse(s: &str) -> Result<Op, String> {
        match s {
            "getpid" => Ok(Op::Getpid),
            "clock" => Ok(Op::Clock),
            _ => Err(format!("unknown --op {s:?} (expected getpid or clock)")),
        }
    }
}

const USAGE: &str = "\
usage:
  getpid-bench [--runsc PATH] [--reps R] [--iters N] [--native-iters N]
               [--sandbox-iters N] [--op getpid|clock|all]
      driver: runs itself natively and under `runsc do`, prints a table.
      runsc is found via --runsc, $RUNSC_BIN, <workspace>/target/release/runsc
      or next to this executable. --iters sets both iteration counts
      (defaults: 200000 native, 20000 sandboxed); --reps defaults to 5.
  getpid-bench --inner N [--op getpid|clock]
      inner: N timed calls (after a warm-up), prints ns/call.";

struct Opts {
    inner: Option<u64>,
    op: Option<Op>,
    runsc: Option<PathBuf>,
    reps: usize,
    native_iters: u64,
    sandbox_iters: u64,
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        inner: None,
        op: None,
        runsc: None,
        reps: DEFAULT_REPS,
        native_iters: DEFAULT_NATIVE_ITERS,
        sandbox_iters: DEFAULT_SANDBOX_ITERS,
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
            "--inner" => o.inner = Some(num("--inner", args.next())?),
            "--op" => {
                let v = args.next().ok_or("--op needs a value")?;
                o.op = if v == "all" {
                    None
                } else {
                    Some(Op::parse(&v)?)
                };
            }
            "--runsc" => o.runsc = Some(args.next().ok_or("--runsc needs a value")?.into()),
            "--reps" => {
                o.reps = num("--reps", args.next())? as usize;
                if o.reps == 0 {
                    return Err("--reps must be at least 1".into());
                }
            }
            "--iters" => {
                let n = num("--iters", args.next())?;
                o.native_iters = n;
                o.sandbox_iters = n;
            }
            "--native-iters" => o.native_iters = num("--native-iters", args.next())?,
            "--sandbox-iters" => o.sandbox_iters = num("--sandbox-iters", args.next())?,
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
            eprintln!("getpid-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let r = match opts.inner {
        Some(n) => {
            inner(opts.op.unwrap_or(Op::Getpid), n);
            Ok(())
        }
        None => driver(&opts),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("getpid-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------- inner --

#[inline(always)]
fn raw_getpid() -> libc::c_long {
    // SAFETY: getpid takes no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_getpid) }
}

#[inline(always)]
fn libc_clock() -> libc::timespec {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts
}

/// Runs `n` calls of `op`; the results are folded into a value that is
/// passed through `black_box` so the loop cannot be optimised away.
fn run_loop(op: Op, n: u64) -> i64 {
    let mut acc: i64 = 0;
    match op {
        Op::Getpid => {
            for _ in 0..n {
                acc = acc.wrapping_add(std::hint::black_box(raw_getpid()));
            }
        }
        Op::Clock => {
            for _ in 0..n {
                let ts = std::hint::black_box(libc_clock());
                acc = acc.wrapping_add(ts.tv_nsec);
            }
        }
    }
    std::hint::black_box(acc)
}

fn inner(op: Op, n: u64) {
    let pid = raw_getpid();
    // Warm-up: 10% of the timed count, at least 100 calls.
    let warm = (n / 10).max(100);
    run_loop(op, warm);
    let t0 = Instant::now();
    run_loop(op, n);
    let loop_ns = t0.elapsed().as_nanos();
    let per_call = if n == 0 {
        0.0
    } else {
        loop_ns as f64 / n as f64
    };
    println!(
        "op={} n={n} warmup={warm} pid={pid} loop_ns={loop_ns} ns_per_call={per_call:.1}",
        op.name()
    );
}

// --------------------------------------------------------------- driver --

struct Sample {
    ns_per_call: f64,
    wall: Duration,
    pid: i64,
}

fn find_runsc(opts: &Opts) -> Result<PathBuf, String> {
    common::find_runsc(opts.runsc.as_deref())
}

fn run_one(mut cmd: Command) -> Result<Sample, String> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let t0 = Instant::now();
    let out = cmd.output().map_err(|e| format!("spawning {cmd:?}: {e}"))?;
    let wall = t0.elapsed();
    if !out.status.success() {
        return Err(format!("{cmd:?} failed: {}", out.status));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("op="))
        .ok_or_else(|| format!("{cmd:?}: no result line in output {text:?}"))?;
    let field = |k: &str| -> Result<&str, String> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(k).and_then(|r| r.strip_prefix('=')))
            .ok_or_else(|| format!("no {k}= in {line:?}"))
    };
    let ns_per_call = field("ns_per_call")?
        .parse()
        .map_err(|e| format!("ns_per_call in {line:?}: {e}"))?;
    let pid = field("pid")?
        .parse()
        .map_err(|e| format!("pid in {line:?}: {e}"))?;
    Ok(Sample {
        ns_per_call,
        wall,
        pid,
    })
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

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

struct Row {
    median: f64,
    min: f64,
    wall_median_ms: f64,
    n: u64,
}

fn measure(
    reps: usize,
    n: u64,
    mode: &str,
    what: &str,
    make: &dyn Fn() -> Command,
) -> Result<Row, String> {
    let mut per_call = Vec::with_capacity(reps);
    let mut walls = Vec::with_capacity(reps);
    let mut pids = Vec::with_capacity(reps);
    for _ in 0..reps {
        let s = run_one(make())?;
        per_call.push(s.ns_per_call);
        walls.push(s.wall.as_secs_f64() * 1e3);
        pids.push(s.pid);
    }
    let list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.1}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    if n == 0 {
        eprintln!(
            "  {mode:<7} {what:<7} n={n:<7} wall ms per rep: {}  (pid seen: {pids:?})",
            list(&walls)
        );
    } else {
        eprintln!(
            "  {mode:<7} {what:<7} n={n:<7} ns/call per rep: {}  (pid seen: {pids:?})",
            list(&per_call)
        );
    }
    Ok(Row {
        median: median(&per_call),
        min: min(&per_call),
        wall_median_ms: median(&walls),
        n,
    })
}

fn driver(opts: &Opts) -> Result<(), String> {
    let me = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map_err(|e| format!("finding our own executable: {e}"))?;
    let runsc = find_runsc(opts)?;
    let runsc = runsc
        .canonicalize()
        .map_err(|e| format!("{}: {e}", runsc.display()))?;
    let ops: Vec<Op> = match opts.op {
        Some(op) => vec![op],
        None => vec![Op::Getpid, Op::Clock],
    };

    println!("getpid-bench driver");
    println!("  self:  {}", me.display());
    println!("  runsc: {}", runsc.display());
    println!(
        "  reps: {}, iterations: native {}, sandbox {} (figures are per call, so comparable)",
        opts.reps, opts.native_iters, opts.sandbox_iters
    );
    println!();
    eprintln!("raw samples:");

    let mut results = Vec::new();
    for &op in &ops {
        let native = measure(opts.reps, opts.native_iters, "native", op.name(), &|| {
            let mut c = Command::new(&me);
            c.arg("--inner")
                .arg(opts.native_iters.to_string())
                .arg("--op")
                .arg(op.name());
            c
        })?;
        let sandbox = measure(opts.reps, opts.sandbox_iters, "sandbox", op.name(), &|| {
            let mut c = Command::new(&runsc);
            c.arg("do")
                .arg("--")
                .arg(&me)
                .arg("--inner")
                .arg(opts.sandbox_iters.to_string())
                .arg("--op")
                .arg(op.name());
            c
        })?;
        results.push((op, native, sandbox));
    }
    // Start-up alone: the same children with --inner 0 (exec, runtime
    // initialisation and the 100-call warm-up, no timed loop).
    let startup_native = measure(opts.reps, 0, "native", "startup", &|| {
        let mut c = Command::new(&me);
        c.args(["--inner", "0"]);
        c
    })?;
    let startup_sandbox = measure(opts.reps, 0, "sandbox", "startup", &|| {
        let mut c = Command::new(&runsc);
        c.arg("do").arg("--").arg(&me).args(["--inner", "0"]);
        c
    })?;
    eprintln!();

    for (op, native, sandbox) in &results {
        println!("{}", op.label());
        println!(
            "  {:<8} {:>8} {:>14} {:>11} {:>14} {:>18}",
            "mode", "n", "median ns/call", "min ns/call", "calls/s (med)", "startup+run ms"
        );
        for (mode, r) in [("native", native), ("sandbox", sandbox)] {
            println!(
                "  {:<8} {:>8} {:>14.1} {:>11.1} {:>14.0} {:>18.1}",
                mode,
                r.n,
                r.median,
                r.min,
                1e9 / r.median,
                r.wall_median_ms
            );
        }
        println!(
            "  sandbox/native ratio: {:.1}x (median), {:.1}x (min)",
            sandbox.median / native.median,
            sandbox.min / native.min
        );
        println!();
    }
    println!(
        "process start-up only (child run with --inner 0: exec, init, 100 warm-up getpid calls)"
    );
    println!("  {:<8} {:>18}", "mode", "startup+run ms");
    println!("  {:<8} {:>18.1}", "native", startup_native.wall_median_ms);
    println!(
        "  {:<8} {:>18.1}",
        "sandbox", startup_sandbox.wall_median_ms
    );
    println!();
    println!(
        "ns/call covers only the timed loop (after a warm-up); startup+run ms is the median\n\
         wall time of the whole child process (for the sandbox: runsc start-up, gofer,\n\
         loading the binary, warm-up and the loop)."
    );
    Ok(())
}
