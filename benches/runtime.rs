//! `runtime-bench`: what a container costs with `runsc` against runc, in
//! one run, side by side:
//!
//! 1. the OCI lifecycle of `/bin/true` in a busybox bundle: `create`,
//!    `start`, wait for the container's process to exit, `delete` (each
//!    phase timed; the container process is waited for as a child, this
//!    process being a child subreaper);
//! 2. the memory of an idle container (`sleep`): the cgroup's memory
//!    usage, and the sum of VmRSS and of Pss over the container's host
//!    processes (for runsc: sentry, gofer, stubs; for runc: the `sleep`);
//! 3. `docker run --rm IMG true` with each runtime, when dockerd (Debian's
//!    docker.io) can be started: a private daemon like tests/docker.rs
//!    starts, with runsc registered as the runtime "sandbox".
//!
//! Medians of N repetitions, runtimes interleaved within each repetition,
//! and the runsc/runc ratio. Needs root (cgroups, runc) and runc
//! (`/usr/sbin/runc`, Debian's `runc` package, or `--runc PATH`).

#[path = "common.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: runtime-bench [--runsc PATH] [--runc PATH] [--reps N] [--docker-reps N]
                     [--mem-reps N] [--no-docker]
  Times create+start+wait+delete of /bin/true with runsc and runc (--reps,
  default 10), measures an idle container's memory (--mem-reps, default 3)
  and `docker run --rm IMG true` with each runtime (--docker-reps, default
  5; skipped with a message when dockerd cannot be started).";

const BUSYBOX: &str = "/bin/busybox";
const DOCKERD: &str = "/usr/sbin/dockerd";
const DOCKER: &str = "/usr/bin/docker";

struct Opts {
    runsc: Option<PathBuf>,
    runc: PathBuf,
    reps: usize,
    mem_reps: usize,
    docker_reps: usize,
    docker: bool,
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        runsc: None,
        runc: PathBuf::from("/usr/sbin/runc"),
        reps: 10,
        mem_reps: 3,
        docker_reps: 5,
        docker: true,
    };
    let mut args = std::env::args().skip(1);
    let num = |flag: &str, v: Option<String>| -> Result<usize, String> {
        let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
        match v.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("{flag} {v:?}: expected a positive number")),
        }
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runsc" => o.runsc = Some(args.next().ok_or("--runsc needs a value")?.into()),
            "--runc" => o.runc = args.next().ok_or("--runc needs a value")?.into(),
            "--reps" => o.reps = num("--reps", args.next())?,
            "--mem-reps" => o.mem_reps = num("--mem-reps", args.next())?,
            "--docker-reps" => o.docker_reps = num("--docker-reps", args.next())?,
            "--no-docker" => o.docker = false,
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
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("runtime-bench: {e}");
            return ExitCode::from(2);
        }
    };
    match driver(&o) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("runtime-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One runtime under test.
struct Runtime {
    name: &'static str,
    bin: PathBuf,
    root: PathBuf,
}

impl Runtime {
    /// Runs `RUNTIME --root ROOT ARGS`; its stderr (which the container
    /// process inherits from `create`, so no pipe) goes to a file.
    fn run(&self, args: &[&str]) -> Result<(), String> {
        let _ = std::fs::create_dir_all(&self.root);
        let err_path = self.root.join("stderr.log");
        let err = std::fs::File::create(&err_path).map_err(|e| e.to_string())?;
        let st = Command::new(&self.bin)
            .arg("--root")
            .arg(&self.root)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .status()
            .map_err(|e| format!("{} {args:?}: {e}", self.name))?;
        if !st.success() {
            return Err(format!(
                "{} {}: {st}: {}",
                self.name,
                args.join(" "),
                std::fs::read_to_string(&err_path)
                    .unwrap_or_default()
                    .trim()
            ));
        }
        Ok(())
    }
}

/// A busybox root and a config.json running `args`, under `cgroups_path`.
fn write_bundle(dir: &Path, args: &[&str], cgroups_path: &str) -> Result<(), String> {
    let rootfs = dir.join("rootfs");
    if !rootfs.exists() {
        for d in ["bin", "etc", "tmp", "proc", "sys", "dev"] {
            std::fs::create_dir_all(rootfs.join(d)).map_err(|e| e.to_string())?;
        }
        std::fs::copy(BUSYBOX, rootfs.join("bin/busybox"))
            .map_err(|e| format!("{BUSYBOX}: {e} (install busybox-static)"))?;
        let out = Command::new(BUSYBOX)
            .arg("--list")
            .output()
            .map_err(|e| e.to_string())?;
        for applet in String::from_utf8_lossy(&out.stdout).lines() {
            if applet != "busybox" {
                let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet));
            }
        }
    }
    let cfg = dir.join("config.json");
    let _ = std::fs::remove_file(&cfg);
    let runsc = common::find_runsc(None)?;
    let o = Command::new(&runsc)
        .args(["spec", "--bundle"])
        .arg(dir)
        .output()
        .map_err(|e| e.to_string())?;
    if !o.status.success() {
        return Err(format!(
            "runsc spec: {}",
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    let text = std::fs::read_to_string(&cfg).map_err(|e| e.to_string())?;
    let mut c: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    c["process"]["args"] = serde_json::json!(args);
    c["process"]["terminal"] = serde_json::Value::Bool(false);
    c["linux"]["cgroupsPath"] = serde_json::Value::String(cgroups_path.to_string());
    std::fs::write(&cfg, c.to_string()).map_err(|e| e.to_string())
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Waits for child `pid` (ours as the subreaper) to exit.
fn wait_pid(pid: i32) -> Result<(), String> {
    let mut status = 0;
    // SAFETY: waitpid(2) for a process reparented to us (subreaper).
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    if r != pid {
        return Err(format!(
            "waitpid({pid}): {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Phase times (ms) of one create+start+wait+delete.
fn lifecycle(rt: &Runtime, bundle: &Path, id: &str) -> Result<[f64; 5], String> {
    let pid_file = bundle.join(format!("{id}.pid"));
    let b = bundle.to_string_lossy();
    let pf = pid_file.to_string_lossy();
    let t0 = Instant::now();
    rt.run(&["create", "--bundle", &b, "--pid-file", &pf, id])?;
    let t1 = Instant::now();
    rt.run(&["start", id])?;
    let t2 = Instant::now();
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .map_err(|e| format!("{}: {e}", pid_file.display()))?
        .trim()
        .parse()
        .map_err(|e| format!("{}: {e}", pid_file.display()))?;
    wait_pid(pid)?;
    let t3 = Instant::now();
    rt.run(&["delete", id])?;
    let t4 = Instant::now();
    Ok([
        ms(t1 - t0),
        ms(t2 - t1),
        ms(t3 - t2),
        ms(t4 - t3),
        ms(t4 - t0),
    ])
}

/// The memory cgroup directory of `path` (v1 memory hierarchy or v2).
fn memcg(path: &str) -> PathBuf {
    let root = Path::new("/sys/fs/cgroup");
    let rel = path.trim_start_matches('/');
    if root.join("cgroup.controllers").exists() {
        root.join(rel)
    } else {
        root.join("memory").join(rel)
    }
}

fn status_kb(pid: &str, key: &str, file: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// (cgroup usage, ΣVmRSS, ΣPss) in MiB and the process count of an idle
/// `sleep` container.
fn idle_memory(rt: &Runtime, bundle: &Path, id: &str, cg: &str) -> Result<[f64; 4], String> {
    let pid_file = bundle.join(format!("{id}.pid"));
    let b = bundle.to_string_lossy();
    let pf = pid_file.to_string_lossy();
    rt.run(&["create", "--bundle", &b, "--pid-file", &pf, id])?;
    rt.run(&["start", id])?;
    std::thread::sleep(Duration::from_millis(1500));
    let dir = memcg(cg);
    let usage_file = if dir.join("memory.current").exists() {
        "memory.current"
    } else {
        "memory.usage_in_bytes"
    };
    let usage: f64 = std::fs::read_to_string(dir.join(usage_file))
        .map_err(|e| format!("{}: {e}", dir.join(usage_file).display()))?
        .trim()
        .parse()
        .map_err(|e| format!("{usage_file}: {e}"))?;
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    let (mut rss, mut pss, mut n) = (0u64, 0u64, 0usize);
    for p in procs.lines() {
        rss += status_kb(p, "VmRSS:", "status");
        pss += status_kb(p, "Pss:", "smaps_rollup");
        n += 1;
    }
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .map_err(|e| e.to_string())?
        .trim()
        .parse()
        .map_err(|e| format!("{}: {e}", pid_file.display()))?;
    rt.run(&["kill", id, "KILL"])?;
    wait_pid(pid)?;
    rt.run(&["delete", id])?;
    let mib = |kb: u64| kb as f64 / 1024.0;
    Ok([usage / 1048576.0, mib(rss), mib(pss), n as f64])
}

fn driver(o: &Opts) -> Result<(), String> {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("needs root (runc and cgroups)".into());
    }
    if !o.runc.is_file() {
        return Err(format!(
            "{}: missing; install Debian's runc (apt-get install runc) or give --runc",
            o.runc.display()
        ));
    }
    let runsc = common::find_runsc(o.runsc.as_deref())?;
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) on ourselves: the containers'
    // processes (detached by create) become our children to wait for.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
    let base = PathBuf::from(format!("/tmp/runtime-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let rts = [
        Runtime {
            name: "runsc",
            bin: runsc.clone(),
            root: base.join("state-runsc"),
        },
        Runtime {
            name: "runc",
            bin: o.runc.clone(),
            root: base.join("state-runc"),
        },
    ];
    let r = measure(o, &base, &rts, &runsc);
    let _ = std::fs::remove_dir_all(&base);
    // The parent cgroup both runtimes made, in every hierarchy (runc
    // also uses devices, systemd, …), and the v2 root.
    let root = Path::new("/sys/fs/cgroup");
    let _ = std::fs::remove_dir(root.join("runtime-bench"));
    for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let _ = std::fs::remove_dir(e.path().join("runtime-bench"));
    }
    r
}

fn measure(o: &Opts, base: &Path, rts: &[Runtime; 2], runsc: &Path) -> Result<(), String> {
    let bundle = base.join("bundle");
    let cg_parent = "/runtime-bench";
    println!(
        "runtime-bench: runsc {} vs runc {} ({}), {} reps, busybox bundle",
        runsc.display(),
        o.runc.display(),
        String::from_utf8_lossy(
            &Command::new(&o.runc)
                .arg("--version")
                .output()
                .map(|x| x.stdout)
                .unwrap_or_default()
        )
        .lines()
        .next()
        .unwrap_or("?"),
        o.reps
    );

    // 1. create+start+wait+delete of /bin/true.
    let mut times: Vec<Vec<[f64; 5]>> = vec![Vec::new(), Vec::new()];
    for rep in 0..=o.reps {
        for (i, rt) in rts.iter().enumerate() {
            let id = format!("{}-{rep}", rt.name);
            write_bundle(&bundle, &["/bin/true"], &format!("{cg_parent}/{id}"))?;
            let t = lifecycle(rt, &bundle, &id)?;
            // Repetition 0 warms the page cache; not counted.
            if rep > 0 {
                times[i].push(t);
            }
        }
    }
    println!();
    println!("1. OCI lifecycle of /bin/true (ms, median of {})", o.reps);
    println!(
        "{:<8} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "runtime", "create", "start", "wait", "delete", "total"
    );
    let mut med = [[0f64; 5]; 2];
    for (i, rt) in rts.iter().enumerate() {
        for (k, m) in med[i].iter_mut().enumerate() {
            *m = median(&times[i].iter().map(|t| t[k]).collect::<Vec<_>>());
        }
        let m = med[i];
        println!(
            "{:<8} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
            rt.name, m[0], m[1], m[2], m[3], m[4]
        );
    }
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    println!(
        "{:<8} {:>8.2}x {:>8.2}x {:>8.2}x {:>8.2}x {:>8.2}x",
        "ratio",
        ratio(med[0][0], med[1][0]),
        ratio(med[0][1], med[1][1]),
        ratio(med[0][2], med[1][2]),
        ratio(med[0][3], med[1][3]),
        ratio(med[0][4], med[1][4])
    );
    let totals: Vec<String> = times[0]
        .iter()
        .zip(&times[1])
        .map(|(a, b)| format!("{:.0}/{:.0}", a[4], b[4]))
        .collect();
    println!("totals per rep (runsc/runc ms): {}", totals.join(" "));

    // 2. An idle container's memory.
    let mut mem: Vec<Vec<[f64; 4]>> = vec![Vec::new(), Vec::new()];
    for rep in 0..o.mem_reps {
        for (i, rt) in rts.iter().enumerate() {
            let id = format!("{}-idle-{rep}", rt.name);
            let cg = format!("{cg_parent}/{id}");
            write_bundle(&bundle, &["sleep", "1000"], &cg)?;
            mem[i].push(idle_memory(rt, &bundle, &id, &cg)?);
        }
    }
    println!();
    println!(
        "2. idle `sleep 1000` container, 1.5 s after start (MiB, median of {})",
        o.mem_reps
    );
    println!(
        "{:<8} {:>14} {:>12} {:>12} {:>10}",
        "runtime", "cgroup usage", "sum VmRSS", "sum Pss", "processes"
    );
    let mut mm = [[0f64; 4]; 2];
    for (i, rt) in rts.iter().enumerate() {
        for (k, m) in mm[i].iter_mut().enumerate() {
            *m = median(&mem[i].iter().map(|t| t[k]).collect::<Vec<_>>());
        }
        println!(
            "{:<8} {:>14.1} {:>12.1} {:>12.1} {:>10.0}",
            rt.name, mm[i][0], mm[i][1], mm[i][2], mm[i][3]
        );
    }
    println!(
        "{:<8} {:>13.1}x {:>11.1}x {:>11.1}x",
        "ratio",
        ratio(mm[0][0], mm[1][0]),
        ratio(mm[0][1], mm[1][1]),
        ratio(mm[0][2], mm[1][2])
    );

    // 3. docker run --rm IMG true.
    println!();
    if !o.docker {
        println!("3. docker run: skipped (--no-docker)");
        return Ok(());
    }
    let d = match Dockerd::start(runsc) {
        Ok(d) => d,
        Err(e) => {
            println!("3. docker run: SKIPPED, cannot start dockerd: {e}");
            return Ok(());
        }
    };
    let r = docker_runs(o, &d, &bundle.join("rootfs"));
    drop(d);
    r
}

fn docker_runs(o: &Opts, d: &Dockerd, rootfs: &Path) -> Result<(), String> {
    let tar = d.base.join("busybox.tar");
    let st = Command::new("tar")
        .args(["--numeric-owner", "-C"])
        .arg(rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .map_err(|e| e.to_string())?;
    if !st.success() {
        return Err("tar of the busybox root failed".into());
    }
    d.docker(&["import", &tar.to_string_lossy(), "runtime-bench:busybox"])?;
    let mut t: Vec<Vec<f64>> = vec![Vec::new(), Vec::new()];
    for rep in 0..=o.docker_reps {
        for (i, rt) in ["sandbox", "runc"].iter().enumerate() {
            let flag = format!("--runtime={rt}");
            let t0 = Instant::now();
            d.docker(&[
                "run",
                "--rm",
                "--network",
                "none",
                &flag,
                "runtime-bench:busybox",
                "true",
            ])?;
            if rep > 0 {
                t[i].push(ms(t0.elapsed()));
            }
        }
    }
    let (a, b) = (median(&t[0]), median(&t[1]));
    println!(
        "3. docker run --rm --network none IMG true (ms, median of {}; dockerd 20.10, runc v2 shim)",
        o.docker_reps
    );
    println!("{:<8} {:>9}", "runtime", "wall");
    println!("{:<8} {:>9.1}", "runsc", a);
    println!("{:<8} {:>9.1}", "runc", b);
    println!("{:<8} {:>8.2}x", "ratio", a / b);
    let per: Vec<String> = t[0]
        .iter()
        .zip(&t[1])
        .map(|(x, y)| format!("{x:.0}/{y:.0}"))
        .collect();
    println!("per rep (runsc/runc ms): {}", per.join(" "));
    Ok(())
}

/// A private dockerd (as tests/docker.rs starts one), stopped on drop.
struct Dockerd {
    base: PathBuf,
    host: String,
    child: std::process::Child,
}

impl Dockerd {
    fn start(runsc: &Path) -> Result<Dockerd, String> {
        for bin in [DOCKERD, DOCKER] {
            if !Path::new(bin).exists() {
                return Err(format!("{bin} missing (apt-get install docker.io)"));
            }
        }
        // Short: containerd's socket paths live under the exec root.
        let base = PathBuf::from(format!("/tmp/rtb-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).map_err(|e| e.to_string())?;
        let host = format!("unix://{}/docker.sock", base.display());
        let runsc = std::fs::canonicalize(runsc).map_err(|e| e.to_string())?;
        let cfg = serde_json::json!({
            "data-root": base.join("data"),
            "exec-root": base.join("x"),
            "pidfile": base.join("docker.pid"),
            "hosts": [host],
            "storage-driver": "overlay2",
            "iptables": false,
            "ip-forward": false,
            "ip-masq": false,
            "bridge": "none",
            "runtimes": { "sandbox": { "path": runsc } },
        });
        let cfg_path = base.join("daemon.json");
        std::fs::write(&cfg_path, cfg.to_string()).map_err(|e| e.to_string())?;
        let log = std::fs::File::create(base.join("dockerd.log")).map_err(|e| e.to_string())?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(DOCKERD)
            .arg("--config-file")
            .arg(&cfg_path)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("{DOCKERD}: {e}"))?;
        let mut d = Dockerd { base, host, child };
        let t0 = Instant::now();
        while d.docker(&["version"]).is_err() {
            if t0.elapsed() > Duration::from_secs(40) || d.child.try_wait().ok().flatten().is_some()
            {
                return Err(format!(
                    "dockerd did not come up (log: {})",
                    d.base.join("dockerd.log").display()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(d)
    }

    fn docker(&self, args: &[&str]) -> Result<(), String> {
        let o = Command::new(DOCKER)
            .arg("-H")
            .arg(&self.host)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        if !o.status.success() {
            return Err(format!(
                "docker {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
        Ok(())
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // SAFETY: kill(2) of the dockerd we started and have not reaped.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let t0 = Instant::now();
        while self.child.try_wait().ok().flatten().is_none() {
            if t0.elapsed() > Duration::from_secs(20) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Reap what the daemon's children left to us (the subreaper).
        // SAFETY: waitpid(2) for any child, without blocking.
        while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
        let _ = std::fs::remove_dir_all(&self.base);
    }
}
