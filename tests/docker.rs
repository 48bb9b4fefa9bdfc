//! Docker with `--runtime=sandbox`: the test starts its own dockerd (Debian's
//! docker.io, with its own containerd and runc) whose daemon.json names our
//! `runsc` as the runtime "sandbox", imports a busybox image built from the
//! host's static busybox, and checks what docker users do (run, exit codes,
//! -e/-w/-u, --read-only, volumes, --tmpfs, -i, -d/logs/exec/top/stop/rm)
//! against runc, docker's default runtime, doing the same.
//!
//! Each #[test] has sub-steps and a dockerd of its own (their directories
//! and bridges apart), stopped at the end (also on failure); no process it
//! started may outlive it. The second test types at `docker run -it` and
//! `docker exec -it` shells in tmux windows (tmux must be installed). Without
//! a dockerd that starts, the tests fail when `CI` is set and are skipped
//! (loudly) otherwise.

use integration_tests::*;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's dockerd; `$DOCKERD` names another.
const DOCKERD: &str = "/usr/sbin/dockerd";
/// Debian's client (20.10, like the daemon), not whatever else is on PATH.
const DOCKER: &str = "/usr/bin/docker";
const BUSYBOX: &str = "/bin/busybox";
const IMAGE: &str = "runsc-busybox:test";
/// Upper bound for one docker command; a hang fails the test instead.
const TIMEOUT: Duration = Duration::from_secs(60);
/// How long dockerd may take to answer its first request.
const STARTUP: Duration = Duration::from_secs(40);

/// A dockerd of our own: its data, exec root, pid file and socket all
/// under `base`. Dropping it removes every container, stops the daemon and
/// checks that nothing it started is left.
struct Dockerd {
    base: PathBuf,
    host: String,
    child: Option<Child>,
    /// A bridge of our own for docker's bridge network (name, gateway
    /// address); None when it could not be made (then "bridge": "none").
    bridge: Option<(String, std::net::Ipv4Addr)>,
}

/// Makes a bridge of our own (not docker0: other builders on this machine
/// may run their own dockerd) on a 10.231.N.0/24 no interface here uses.
fn make_bridge(tag: &str) -> Result<(String, std::net::Ipv4Addr), String> {
    let name = format!("rsdbr{tag}{}", std::process::id());
    let used = Command::new("ip")
        .args(["-4", "-o", "addr"])
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    let used = String::from_utf8_lossy(&used.stdout).into_owned();
    let n = (0..250u32)
        .map(|k| (std::process::id() + k) % 250 + 1)
        .find(|n| !used.contains(&format!(" 10.231.{n}.")))
        .ok_or("no free 10.231.N.0/24")?;
    let gw = std::net::Ipv4Addr::new(10, 231, n as u8, 1);
    let _ = Command::new("ip").args(["link", "del", &name]).output();
    for args in [
        vec!["link", "add", &name, "type", "bridge"],
        vec!["addr", "add", &format!("{gw}/24"), "dev", &name],
        vec!["link", "set", &name, "up"],
    ] {
        let o = Command::new("ip")
            .args(&args)
            .output()
            .map_err(|e| format!("ip: {e}"))?;
        if !o.status.success() {
            let _ = Command::new("ip").args(["link", "del", &name]).output();
            return Err(format!(
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&o.stderr)
            ));
        }
    }
    Ok((name, gw))
}

impl Dockerd {
    /// Starts dockerd with `storage_driver`; Err says why it did not come up.
    /// `tag` tells apart the daemons of tests running at once (their
    /// directories and bridges); `bridge`: make a bridge network.
    fn start(storage_driver: &str, tag: &str, bridge: bool) -> Result<Dockerd, String> {
        let dockerd = std::env::var("DOCKERD").unwrap_or_else(|_| DOCKERD.to_string());
        for bin in [dockerd.as_str(), DOCKER] {
            if !Path::new(bin).exists() {
                return Err(format!(
                    "{bin} missing: install docker.io (the CI script does)"
                ));
            }
        }
        // SAFETY: geteuid(2) has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("dockerd needs root".into());
        }
        // Short: containerd's sockets live under the exec root.
        let base = PathBuf::from(format!("/tmp/rsd{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).map_err(|e| format!("{}: {e}", base.display()))?;
        let host = format!("unix://{}/docker.sock", base.display());
        let bridge = match bridge.then(|| make_bridge(tag)) {
            None => None,
            Some(Ok(b)) => Some(b),
            Some(Err(e)) => {
                eprintln!("no bridge of our own ({e}): bridge networking is not tested");
                None
            }
        };
        let config = serde_json::json!({
            "data-root": base.join("data"),
            "exec-root": base.join("x"),
            "pidfile": base.join("docker.pid"),
            "hosts": [host],
            "storage-driver": storage_driver,
            "iptables": false,
            "ip-forward": false,
            "ip-masq": false,
            // Not docker0: other builders on this machine may run their
            // own dockerd. Most containers here use --network none.
            "bridge": bridge.as_ref().map_or("none", |b| b.0.as_str()),
            "runtimes": { "sandbox": { "path": runsc_bin() } },
        });
        let cfg_path = base.join("daemon.json");
        std::fs::write(&cfg_path, config.to_string()).map_err(|e| e.to_string())?;
        let log = std::fs::File::create(base.join("dockerd.log")).map_err(|e| e.to_string())?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(&dockerd)
            .arg("--config-file")
            .arg(&cfg_path)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("starting {dockerd}: {e}"))?;
        let mut d = Dockerd {
            base,
            host,
            child: Some(child),
            bridge,
        };
        let start = Instant::now();
        loop {
            let o = d.docker(&["version", "--format", "{{.Server.Version}}"], None);
            if o.code == 0 {
                return Ok(d);
            }
            let exited = d.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || start.elapsed() > STARTUP {
                let log = std::fs::read_to_string(d.base.join("dockerd.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                return Err(format!(
                    "dockerd ({storage_driver}) did not come up ({}):\n{}",
                    exited.map_or("timed out".to_string(), |s| s.to_string()),
                    tail.join("\n")
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `docker ARGS` against our daemon, with `stdin` piped in (else none).
    fn docker(&self, args: &[&str], stdin: Option<&[u8]>) -> Outcome {
        let mut cmd = Command::new(DOCKER);
        cmd.arg("-H").arg(&self.host).args(args);
        run_bounded(cmd, stdin)
    }

    /// `docker ARGS`, which must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let o = self.docker(args, None);
        assert_code(&o, 0, &format!("docker {}", args.join(" ")));
        o.stdout_str()
    }

    /// Host processes whose command line mentions our base directory
    /// (dockerd, containerd, shims, runsc sandboxes and helpers).
    fn processes(&self) -> Vec<String> {
        let needle = self.base.to_string_lossy().into_owned();
        let mut out = Vec::new();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.parse::<u32>().is_err() {
                continue;
            }
            if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
                let c = String::from_utf8_lossy(&c).replace('\0', " ");
                if c.contains(&needle) {
                    out.push(format!("{name}: {c}"));
                }
            }
        }
        out
    }

    /// Removes every container, stops dockerd (TERM, then KILL after 20s)
    /// and returns the processes still alive after that.
    fn stop(&mut self) -> Vec<String> {
        let Some(mut child) = self.child.take() else {
            return Vec::new();
        };
        let ids = self.docker(&["ps", "-aq"], None).stdout_str();
        for id in ids.split_whitespace() {
            let _ = self.docker(&["rm", "-f", id], None);
        }
        stop_daemon(&mut child, || self.processes())
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let left = self.stop();
        if let Some((name, _)) = &self.bridge {
            let _ = Command::new("ip").args(["link", "del", name]).output();
        }
        // Whatever survived must not outlive the test either.
        for p in &left {
            if let Some(pid) = p.split(':').next().and_then(|p| p.parse::<i32>().ok()) {
                // SAFETY: kill(2) of a process started under our daemon.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
        // A daemon that died uncleanly may leave overlay mounts behind:
        // only a clean stop gets its directory removed. (The test asserts
        // a clean stop itself; a drop must not panic over it.)
        if left.is_empty() {
            let _ = std::fs::remove_dir_all(&self.base);
        } else {
            eprintln!(
                "killed processes left behind by dockerd:\n{}",
                left.join("\n")
            );
        }
    }
}

/// Runs `cmd` to completion with a timeout, `stdin` piped in.
fn run_bounded(cmd: Command, stdin: Option<&[u8]>) -> Outcome {
    run_bounded_for(cmd, stdin, TIMEOUT)
}

/// As `run_bounded`, with its own time limit.
fn run_bounded_for(cmd: Command, stdin: Option<&[u8]>, limit: Duration) -> Outcome {
    integration_tests::run_bounded(cmd, stdin, limit)
}

/// A busybox tree (the host's static busybox and its applet links, a
/// passwd/group with an unprivileged user) as a tar for `docker import`.
fn busybox_tar(dir: &Path) -> PathBuf {
    assert!(
        Path::new(BUSYBOX).exists(),
        "{BUSYBOX} missing: install busybox-static (the CI script does)"
    );
    let root = dir.join("rootfs");
    for d in ["bin", "etc", "tmp", "proc", "sys", "dev", "root", "home/u"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy(BUSYBOX, root.join("bin/busybox")).unwrap();
    let out = Command::new(BUSYBOX).arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nu:x:1000:1000:u:/home/u:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\nu:x:1000:\n").unwrap();
    std::fs::create_dir_all(root.join("www")).unwrap();
    std::fs::write(root.join("www/index.html"), "served from the container\n").unwrap();
    let tar = dir.join("busybox.tar");
    let o = Command::new("tar")
        .args(["--numeric-owner", "-C"])
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .output()
        .expect("running tar");
    assert!(o.status.success(), "tar: {o:?}");
    tar
}

/// Starts our dockerd (overlay2, else vfs), or says why not: a failure
/// under CI, a loud skip elsewhere (None). `tag` and `bridge`: see
/// `Dockerd::start`.
fn dockerd_or_skip(tag: &str, bridge: bool) -> Option<Dockerd> {
    let err = match Dockerd::start("overlay2", tag, bridge) {
        Ok(d) => return Some(d),
        Err(e) => match Dockerd::start("vfs", tag, bridge) {
            Ok(d) => {
                eprintln!("overlay2 failed, using vfs: {e}");
                return Some(d);
            }
            Err(e2) => format!("{e}\n--- with vfs ---\n{e2}"),
        },
    };
    if std::env::var_os("CI").is_some() {
        panic!("cannot start dockerd (CI is set, so this fails):\n{err}");
    }
    // Straight to stderr: the test harness would swallow eprintln! of a
    // passing test.
    let _ = writeln!(
        std::io::stderr(),
        "\n!!!!!!!! SKIPPING the docker test: cannot start dockerd !!!!!!!!\n{err}\n\
         (install docker.io, as .ci/run does; with CI set this fails)\n"
    );
    None
}

/// `docker run --rm --network none --runtime=RT FLAGS IMAGE CMD...`.
fn run(d: &Dockerd, rt: &str, flags: &[&str], cmd: &[&str], stdin: Option<&[u8]>) -> Outcome {
    let rt_flag = format!("--runtime={rt}");
    let mut args = vec!["run", "--rm", "--network", "none", &rt_flag];
    if stdin.is_some() {
        args.push("-i");
    }
    args.extend(flags);
    args.push(IMAGE);
    args.extend(cmd);
    d.docker(&args, stdin)
}

/// Runs the same container under runc and under our runtime; their stdout
/// and exit codes must agree. Returns ours.
fn same(d: &Dockerd, what: &str, flags: &[&str], cmd: &[&str], stdin: Option<&[u8]>) -> Outcome {
    let ours = run(d, "sandbox", flags, cmd, stdin);
    let runc = run(d, "runc", flags, cmd, stdin);
    assert_eq!(
        (ours.code, ours.stdout_str()),
        (runc.code, runc.stdout_str()),
        "{what}: sandbox (left) and runc (right) differ\n--- sandbox ---\n{ours:?}\n--- runc ---\n{runc:?}"
    );
    ours
}

/// Polls `docker logs` until it holds `text`.
fn wait_for_log(d: &Dockerd, id: &str, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let o = d.docker(&["logs", id], None);
        if o.stdout_str().contains(text) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "container {id} never logged {text:?}: {o:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A detached container's life under runtime `rt`: logs, top, exec, a
/// graceful stop and rm. Returns what a user would see, to compare.
fn detached(d: &Dockerd, rt: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let script = "trap 'echo got TERM; exit 0' TERM; echo ready; \
                  while true; do sleep 0.1; done";
    let rt_flag = format!("--runtime={rt}");
    let id = d
        .ok(&[
            "run",
            "-d",
            "--network",
            "none",
            &rt_flag,
            IMAGE,
            "sh",
            "-c",
            script,
        ])
        .trim()
        .to_string();
    wait_for_log(d, &id, "ready");
    // docker top: the container's host processes (ours: the sandbox).
    let top = d.ok(&["top", &id]);
    assert!(
        top.starts_with("UID") && top.lines().count() >= 2,
        "{rt}: docker top: {top}"
    );
    let o = d.docker(&["exec", &id, "echo", "hi"], None);
    seen.push(format!("exec echo: {} {:?}", o.code, o.stdout_str()));
    let o = d.docker(&["exec", &id, "sh", "-c", "exit 3"], None);
    seen.push(format!("exec exit 3: {}", o.code));
    let o = d.docker(
        &["exec", "-i", &id, "tr", "a-z", "A-Z"],
        Some(b"piped in\n"),
    );
    seen.push(format!("exec -i: {} {:?}", o.code, o.stdout_str()));
    let o = d.docker(
        &[
            "exec",
            "-u",
            "1000:1000",
            "-w",
            "/tmp",
            "-e",
            "X=y",
            &id,
            "sh",
            "-c",
            "id -u; pwd; echo $X",
        ],
        None,
    );
    seen.push(format!("exec -u -w -e: {} {:?}", o.code, o.stdout_str()));
    let o = d.docker(&["exec", "-t", &id, "echo", "tty"], None);
    seen.push(format!("exec -t: {} {:?}", o.code, o.stdout_str()));
    let o = d.docker(&["exec", &id, "no-such-command"], None);
    seen.push(format!("exec missing command fails: {}", o.code != 0));
    // pause/unpause: docker refuses exec while paused; afterwards the
    // container carries on.
    d.ok(&["pause", &id]);
    let status = d.ok(&["inspect", "-f", "{{.State.Status}}", &id]);
    seen.push(format!("after pause: {}", status.trim()));
    let o = d.docker(&["exec", &id, "true"], None);
    seen.push(format!("exec while paused fails: {}", o.code != 0));
    d.ok(&["unpause", &id]);
    let status = d.ok(&["inspect", "-f", "{{.State.Status}}", &id]);
    seen.push(format!("after unpause: {}", status.trim()));
    let o = d.docker(&["exec", &id, "echo", "still here"], None);
    seen.push(format!(
        "exec after unpause: {} {:?}",
        o.code,
        o.stdout_str()
    ));
    // A graceful stop: the trap runs, well within the timeout.
    let t = Instant::now();
    d.ok(&["stop", "-t", "20", &id]);
    let took = t.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "{rt}: docker stop took {took:?}: the TERM trap did not end it"
    );
    let code = d.ok(&["inspect", "-f", "{{.State.ExitCode}}", &id]);
    seen.push(format!("exit code after stop: {}", code.trim()));
    seen.push(format!("logs: {:?}", d.ok(&["logs", &id])));
    d.ok(&["rm", &id]);
    let o = d.docker(&["inspect", &id], None);
    seen.push(format!("gone after rm: {}", o.code != 0));
    seen
}

/// A v1 controller file of container `id`'s cgroup (docker's cgroupfs
/// driver: `/docker/<id>`).
fn cgroup_file(ctrl: &str, id: &str, file: &str) -> PathBuf {
    Path::new("/sys/fs/cgroup")
        .join(ctrl)
        .join("docker")
        .join(id)
        .join(file)
}

fn read_u64(p: &Path) -> u64 {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Resource limits (--memory, --pids-limit, --cpus), `docker stats` and
/// pause of a guest that never makes a system call, each against runc.
fn resources(d: &Dockerd) {
    let v1 = Path::new("/sys/fs/cgroup/memory/cgroup.procs").exists();
    // --memory: a guest that touches 200 MB is OOM-killed (the kernel
    // kills the sentry, the biggest process of the sandbox's cgroup).
    for rt in ["sandbox", "runc"] {
        let name = format!("oom-{rt}");
        let rt_flag = format!("--runtime={rt}");
        let o = d.docker(
            &[
                "run",
                "--name",
                &name,
                "--network",
                "none",
                &rt_flag,
                "--memory",
                "64m",
                IMAGE,
                "dd",
                "if=/dev/zero",
                "of=/dev/null",
                "bs=200M",
                "count=1",
                "iflag=fullblock",
            ],
            None,
        );
        assert_eq!(o.code, 137, "{rt}: --memory 64m with 200 MB touched: {o:?}");
        let st = d.ok(&[
            "inspect",
            "-f",
            "{{.State.ExitCode}} {{.State.OOMKilled}}",
            &name,
        ]);
        assert_eq!(
            st.trim(),
            "137 true",
            "{rt}: docker inspect after the OOM kill"
        );
        d.ok(&["rm", &name]);
    }
    // --pids-limit: a fork loop fails; the container carries on.
    let o = same(
        d,
        "--pids-limit 20",
        &["--pids-limit", "20"],
        &[
            "sh",
            "-c",
            "(for i in $(seq 40); do sleep 1 & done; echo all forked); sleep 2; echo alive",
        ],
        None,
    );
    assert_eq!(o.stdout_str(), "alive\n", "{o:?}");
    assert!(o.stderr_str().contains("can't fork"), "{o:?}");
    // --cpus 0.5: the quota on the sandbox's cgroup, which holds the
    // pid file's process (docker stats reads that cgroup through the
    // shim); the guest sees ceil(0.5) = 1 CPU (runc's guest sees the
    // host's CPUs: affinity is not changed by a quota). A guest spinning
    // without system calls stops when paused.
    let mut nprocs = Vec::new();
    for rt in ["sandbox", "runc"] {
        let rt_flag = format!("--runtime={rt}");
        let id = d
            .ok(&[
                "run",
                "-d",
                "--network",
                "none",
                &rt_flag,
                "--cpus",
                "0.5",
                "--memory",
                "64m",
                IMAGE,
                "sh",
                "-c",
                "while :; do :; done",
            ])
            .trim()
            .to_string();
        let pid = d.ok(&["inspect", "-f", "{{.State.Pid}}", &id]);
        let cg = std::fs::read_to_string(format!("/proc/{}/cgroup", pid.trim())).unwrap();
        if v1 {
            assert_eq!(
                read_u64(&cgroup_file("cpu", &id, "cpu.cfs_quota_us")),
                50_000,
                "{rt}"
            );
            assert!(
                cg.lines()
                    .any(|l| l.ends_with(&format!(":cpu:/docker/{id}"))
                        || l.ends_with(&format!(":cpu,cpuacct:/docker/{id}"))),
                "{rt}: the pid file's process is not in the container's cgroup:\n{cg}"
            );
            if rt == "sandbox" {
                // Every host process of the sandbox is in it: sentry,
                // gofer, stubs.
                let procs =
                    std::fs::read_to_string(cgroup_file("memory", &id, "cgroup.procs")).unwrap();
                assert!(procs.lines().count() >= 3, "{rt}: cgroup.procs: {procs}");
            }
        }
        let n = d.ok(&["exec", &id, "nproc"]);
        nprocs.push(n.trim().to_string());
        let stats = d.ok(&["stats", "--no-stream", "--format", "{{.MemUsage}}", &id]);
        assert!(
            !stats.starts_with("0B") && stats.contains("64MiB"),
            "{rt}: docker stats: {stats:?}"
        );
        eprintln!(
            "{rt}: --cpus 0.5: nproc {}, docker stats {}",
            n.trim(),
            stats.trim()
        );
        if v1 {
            let usage = cgroup_file("cpuacct", &id, "cpuacct.usage");
            d.ok(&["pause", &id]);
            let a = read_u64(&usage);
            std::thread::sleep(Duration::from_millis(300));
            let b = read_u64(&usage);
            assert_eq!(a, b, "{rt}: the spinning guest kept running while paused");
            d.ok(&["unpause", &id]);
            std::thread::sleep(Duration::from_millis(300));
            assert!(
                read_u64(&usage) > b,
                "{rt}: not running again after unpause"
            );
        }
        d.ok(&["rm", "-f", &id]);
        if v1 {
            assert!(
                !cgroup_file("memory", &id, "").exists(),
                "{rt}: cgroup left after rm"
            );
        }
    }
    assert_eq!(
        nprocs[0], "1",
        "nproc with --cpus 0.5 (runc's guest says {})",
        nprocs[1]
    );
    // The host survived all that.
    d.ok(&["version"]);
}

/// An HTTP/1.0 GET of `/` from `addr`; the body (None: no full answer).
fn http_get(addr: std::net::SocketAddr, path: &str) -> Option<String> {
    let mut c = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(c, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut r = String::new();
    c.read_to_string(&mut r).ok()?;
    let (head, body) = r.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.").then(|| body.to_string())
}

/// `http_get`, retried for a while (the server may still be starting;
/// docker-proxy accepts before the container does).
fn http_get_retrying(addr: std::net::SocketAddr, path: &str) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match http_get(addr, path) {
            Some(b) if !b.is_empty() => return Some(b),
            r if Instant::now() > deadline => return r,
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// docker's bridge network under runtime `rt`: a busybox httpd reached
/// through `-p 127.0.0.1:PORT:8080` (docker-proxy) and at the container's
/// address, what `ip addr`/`ip route` show inside, and the container
/// fetching from a server of ours on the bridge's address.
fn bridge_network(d: &Dockerd, rt: &str, gw: std::net::Ipv4Addr) -> Vec<String> {
    let mut seen = Vec::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let publish = format!("127.0.0.1:{port}:8080");
    let rt_flag = format!("--runtime={rt}");
    let id = d
        .ok(&[
            "run", "-d", &rt_flag, "-p", &publish, IMAGE, "httpd", "-f", "-p", "8080", "-h", "/www",
        ])
        .trim()
        .to_string();
    let body = http_get_retrying(([127, 0, 0, 1], port).into(), "/");
    seen.push(format!("GET through -p: {body:?}"));
    let ip = d.ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", &id]);
    let ip: std::net::Ipv4Addr = ip.trim().parse().expect("container IP");
    let body = http_get_retrying((ip, 8080).into(), "/");
    seen.push(format!("GET at the container's address: {body:?}"));
    // Inside: the addresses (lines naming the container's address with
    // it replaced, so runs compare) and routes.
    let o = d.docker(&["exec", &id, "ip", "addr"], None);
    let inet: Vec<String> = o
        .stdout_str()
        .lines()
        .filter(|l| l.trim_start().starts_with("inet "))
        .map(|l| l.trim().replace(&ip.to_string(), "IP"))
        .collect();
    seen.push(format!("ip addr: {} {inet:?}", o.code));
    let o = d.docker(&["exec", &id, "ip", "route"], None);
    seen.push(format!(
        "ip route: {} {:?}",
        o.code,
        o.stdout_str().replace(&ip.to_string(), "IP")
    ));
    // Out: the container fetches from a server of ours on the gateway.
    let l = std::net::TcpListener::bind((gw, 0)).expect("listening on the bridge");
    let url = format!("http://{}/f", l.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        if let Ok((mut c, _)) = l.accept() {
            let _ = c.set_read_timeout(Some(Duration::from_secs(10)));
            let mut buf = [0u8; 1024];
            let _ = c.read(&mut buf);
            let _ = c.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 10\r\n\r\nfrom host\n");
        }
    });
    let o = d.docker(&["exec", &id, "wget", "-qO-", &url], None);
    seen.push(format!(
        "wget from the gateway: {} {:?}",
        o.code,
        o.stdout_str()
    ));
    let _ = server.join();
    d.ok(&["rm", "-f", &id]);
    seen
}

/// A Debian image with nginx, built from Debian's packages with
/// mmdebstrap (minbase + nginx-light), imported as `sandbox-test-nginx`.
/// None (with the reason) when mmdebstrap or the mirror is unavailable.
fn nginx_image(d: &Dockerd) -> Result<&'static str, String> {
    const NAME: &str = "sandbox-test-nginx:latest";
    let mirror = std::fs::read_to_string("/etc/apt/sources.list.d/debian.sources")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("URIs:").map(|u| u.trim().to_string()))
        })
        .unwrap_or_else(|| "http://deb.debian.org/debian".into());
    let dir = d.base.join("nginx-rootfs");
    let mut cmd = Command::new("mmdebstrap");
    cmd.args([
        "--variant=minbase",
        "--include=nginx-light",
        "--format=directory",
        "bookworm",
    ])
    .arg(&dir)
    .arg(&mirror);
    // Downloads and unpacks ~200 MB: 15-75 s on these machines.
    let o = run_bounded_for(cmd, None, Duration::from_secs(300));
    if o.code != 0 {
        return Err(format!("mmdebstrap failed: {}", o.stderr_str()));
    }
    // Our page, and nginx in the foreground.
    std::fs::write(
        dir.join("var/www/html/index.html"),
        "debian nginx in the sandbox\n",
    )
    .map_err(|e| e.to_string())?;
    let tar = d.base.join("nginx.tar");
    let mut t = Command::new("tar");
    t.args(["--numeric-owner", "-C"])
        .arg(&dir)
        .args(["-cf"])
        .arg(&tar)
        .arg(".");
    let o = run_bounded(t, None);
    if o.code != 0 {
        return Err(format!("tar failed: {}", o.stderr_str()));
    }
    let _ = std::fs::remove_dir_all(&dir);
    d.ok(&["import", &tar.to_string_lossy(), NAME]);
    let _ = std::fs::remove_file(&tar);
    Ok(NAME)
}

/// `docker run -d -p 127.0.0.1:PORT:80 IMG nginx -g 'daemon off;'` and a
/// GET from the host through docker-proxy.
fn nginx_through_port(d: &Dockerd, rt: &str, image: &str) -> Option<String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .ok()?
        .port();
    let publish = format!("127.0.0.1:{port}:80");
    let rt_flag = format!("--runtime={rt}");
    let id = d
        .ok(&[
            "run",
            "-d",
            &rt_flag,
            "-p",
            &publish,
            image,
            "nginx",
            "-g",
            "daemon off;",
        ])
        .trim()
        .to_string();
    let body = http_get_retrying(([127, 0, 0, 1], port).into(), "/");
    d.ok(&["rm", "-f", &id]);
    body
}

#[test]
fn docker_run_with_the_sandbox_runtime() {
    let t0 = Instant::now();
    let Some(d) = dockerd_or_skip("", true) else {
        return;
    };
    eprintln!("dockerd up in {:?}", t0.elapsed());
    let tar = busybox_tar(&d.base);
    d.ok(&["import", &tar.to_string_lossy(), IMAGE]);

    // The basics.
    let o = same(&d, "echo", &[], &["echo", "hi"], None);
    assert_eq!(o.stdout_str(), "hi\n");
    let o = same(&d, "exit code", &[], &["sh", "-c", "exit 7"], None);
    assert_eq!(o.code, 7);
    let o = same(
        &d,
        "-e",
        &["-e", "FOO=bar"],
        &["sh", "-c", "echo $FOO"],
        None,
    );
    assert_eq!(o.stdout_str(), "bar\n");
    let o = same(&d, "-w", &["-w", "/tmp"], &["pwd"], None);
    assert_eq!(o.stdout_str(), "/tmp\n");
    let o = same(&d, "-u", &["-u", "1000:1000"], &["id"], None);
    assert_eq!(o.stdout_str(), "uid=1000(u) gid=1000(u) groups=1000(u)\n");
    let o = same(&d, "-i", &[], &["tr", "a-z", "A-Z"], Some(b"abc\n"));
    assert_eq!(o.stdout_str(), "ABC\n");

    // -t: the output comes through the pty (\r\n line ends).
    let o = same(&d, "-t", &["-t"], &["echo", "hi"], None);
    assert_eq!(o.stdout_str(), "hi\r\n");

    // A read-only root: writes fail with EROFS.
    let o = same(
        &d,
        "--read-only",
        &["--read-only"],
        &["sh", "-c", "echo x > /f"],
        None,
    );
    assert_ne!(o.code, 0);
    assert!(
        o.stderr_str().contains("Read-only file system"),
        "--read-only: {o:?}"
    );

    // The files docker bind-mounts (/etc/hostname, /etc/hosts,
    // /etc/resolv.conf) are served.
    let o = same(
        &d,
        "docker's /etc files",
        &["--hostname", "boxname"],
        &["sh", "-c", "cat /etc/hostname; hostname; grep -c localhost /etc/hosts; test -f /etc/resolv.conf && echo resolv"],
        None,
    );
    assert_eq!(o.stdout_str(), "boxname\nboxname\n2\nresolv\n");

    // Volumes: a write inside lands on the host; mount points missing in
    // the image are made (also nested ones); a single file bind-mounted.
    for rt in ["sandbox", "runc"] {
        let vol = d.base.join(format!("vol-{rt}"));
        std::fs::create_dir_all(&vol).unwrap();
        std::fs::write(vol.join("in"), "from host\n").unwrap();
        let file = d.base.join(format!("file-{rt}"));
        std::fs::write(&file, "a single file\n").unwrap();
        let v1 = format!("{}:/data", vol.display());
        let v2 = format!("{}:/new/deep/dir:ro", vol.display());
        let v3 = format!("{}:/etc/app.conf:ro", file.display());
        let o = run(
            &d,
            rt,
            &["-v", &v1, "-v", &v2, "-v", &v3],
            &["sh", "-c", "cat /data/in; echo written > /data/out; cat /new/deep/dir/in; cat /etc/app.conf; \
               echo x > /etc/app.conf || echo file ro; awk '$2==\"/data\"||$2==\"/new/deep/dir\"{print $2, substr($4,1,2)}' /proc/mounts; \
               echo x > /new/deep/dir/f"],
            None,
        );
        assert_eq!(
            o.stdout_str(),
            "from host\nfrom host\na single file\nfile ro\n/data rw\n/new/deep/dir ro\n",
            "{rt}: volumes: {o:?}"
        );
        assert_ne!(o.code, 0, "{rt}: a write to a :ro volume must fail: {o:?}");
        assert!(
            o.stderr_str().contains("Read-only file system"),
            "{rt}: {o:?}"
        );
        assert_eq!(
            std::fs::read_to_string(vol.join("out")).unwrap_or_default(),
            "written\n",
            "{rt}: a write in the volume must reach the host"
        );
    }

    // --init: docker's tini (bind-mounted as a single file) as PID 1.
    let o = same(
        &d,
        "--init",
        &["--init"],
        &[
            "sh",
            "-c",
            "[ $$ != 1 ] && echo not-init; cat /proc/1/comm; exit 5",
        ],
        None,
    );
    assert_eq!(
        (o.code, o.stdout_str()),
        (5, "not-init\ndocker-init\n".into())
    );

    // --tmpfs: a fresh tmpfs at a path the image lacks.
    let o = same(
        &d,
        "--tmpfs",
        &["--tmpfs", "/scratch"],
        &["sh", "-c", "echo s > /scratch/f && cat /scratch/f && awk '$2==\"/scratch\"{print $3}' /proc/mounts"],
        None,
    );
    assert_eq!(o.stdout_str(), "s\ntmpfs\n");

    // Detached: logs, top, exec, stop (graceful), rm.
    let ours = detached(&d, "sandbox");
    let runc = detached(&d, "runc");
    assert_eq!(
        ours, runc,
        "detached containers: sandbox (left) vs runc (right)"
    );
    assert!(
        ours.iter().any(|s| s == "exec echo: 0 \"hi\\n\""),
        "{ours:?}"
    );
    assert!(ours.iter().any(|s| s == "exec exit 3: 3"), "{ours:?}");
    assert!(
        ours.iter().any(|s| s == "exit code after stop: 0"),
        "{ours:?}"
    );

    resources(&d);
    // Bridge networking: the sandbox's stack serves the container's eth0.
    if let Some((_, gw)) = d.bridge {
        let ours = bridge_network(&d, "sandbox", gw);
        let runc = bridge_network(&d, "runc", gw);
        assert_eq!(ours, runc, "bridge network: sandbox (left) vs runc (right)");
        assert_eq!(
            ours[0], "GET through -p: Some(\"served from the container\\n\")",
            "{ours:?}"
        );
        assert!(ours[2].contains("scope global eth0"), "{ours:?}");
        assert_eq!(ours[4], "wget from the gateway: 0 \"from host\\n\"");
        // A Debian nginx image, published on a host port.
        match nginx_image(&d) {
            Ok(img) => {
                let ours = nginx_through_port(&d, "sandbox", img);
                let runc = nginx_through_port(&d, "runc", img);
                assert_eq!(ours, runc, "nginx: sandbox (left) vs runc (right)");
                assert_eq!(ours.as_deref(), Some("debian nginx in the sandbox\n"));
            }
            Err(e) if std::env::var_os("CI").is_some() => panic!("nginx image: {e}"),
            Err(e) => eprintln!("!!!!!!!! nginx image NOT tested: {e}"),
        }
    } else {
        eprintln!("!!!!!!!! bridge networking NOT tested: no bridge could be made");
    }

    let mut d = d;
    let left = d.stop();
    assert!(
        left.is_empty(),
        "left behind after dockerd stopped:\n{}",
        left.join("\n")
    );
    eprintln!("docker test took {:?}", t0.elapsed());
}

const TMUX: &str = "/usr/bin/tmux";

/// A tmux server of our own (private socket) running one command in a
/// detached session; killed when dropped.
struct Tmux {
    sock: PathBuf,
}

impl Tmux {
    /// Starts `cmd` in a new detached `cols`x`rows` session.
    fn start(sock: PathBuf, cols: u16, rows: u16, cmd: &str) -> Tmux {
        let t = Tmux { sock };
        let (x, y) = (cols.to_string(), rows.to_string());
        let o = t.tmux(&["new-session", "-d", "-x", &x, "-y", &y, cmd]);
        assert_code(&o, 0, "tmux new-session");
        t
    }

    fn tmux(&self, args: &[&str]) -> Outcome {
        let mut cmd = Command::new(TMUX);
        cmd.arg("-S")
            .arg(&self.sock)
            .args(args)
            .env("TERM", "xterm");
        run_bounded(cmd, None)
    }

    /// The pane's text (with its scrollback).
    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-J", "-S", "-200"])
            .stdout_str()
    }

    /// Types `keys` (tmux key names, e.g. "Enter", "C-c").
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys"];
        args.extend(keys);
        assert_code(&self.tmux(&args), 0, "tmux send-keys");
    }

    /// Waits until a line of the screen starts with `prefix` (after the
    /// shell's prompt); returns the rest of the first such line.
    fn wait_line(&self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.screen();
            let found = s.lines().find_map(|l| {
                let l = l.trim_end();
                l.starts_with(prefix).then(|| l[prefix.len()..].to_string())
            });
            if let Some(rest) = found {
                return rest;
            }
            assert!(
                Instant::now() < deadline,
                "no line starting with {prefix:?} on the screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether the session is still there (its command has not exited).
    fn alive(&self) -> bool {
        self.tmux(&["has-session"]).code == 0
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

/// A shell in a terminal under runtime `rt` in a tmux window (`docker
/// ARGS`: `run -it ... sh` or `exec -it ID sh`), used as a user types at
/// it: what it shows, to compare.
fn interactive_shell(d: &Dockerd, rt: &str, args: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let cmd = format!("{DOCKER} -H {} {args}", d.host);
    let t = Tmux::start(d.base.join(format!("tmux-{rt}.sock")), 100, 30, &cmd);
    // Each answer goes on a line of its own, marked, so neither the
    // prompt nor the echoed command line is taken for it.
    let ask = |name: &str, what: &str| {
        t.keys(&[&format!("echo {name}=\"{what}\""), "Enter"]);
        t.wait_line(&format!("{name}="))
    };
    let tty = ask("TTY", "$(tty)");
    seen.push(format!(
        "tty: {}",
        if tty.starts_with("/dev/pts/") && tty[9..].parse::<u32>().is_ok() {
            "/dev/pts/N".to_string()
        } else {
            tty.clone()
        }
    ));
    let size = ask("SIZE", "$(stty size)");
    seen.push(format!("stty size: {size}"));
    // Line editing is the container's terminal's: the DEL erases the b.
    t.keys(&["read x; echo \"READ=$x\"", "Enter"]);
    std::thread::sleep(Duration::from_millis(300));
    t.keys(&["-l", "ab\x7fc"]);
    t.keys(&["Enter"]);
    seen.push(format!("read: {}", t.wait_line("READ=")));
    // A resize reaches the container: the foreground job gets SIGWINCH
    // (a shell's trap runs between its sleeps), stty size the new size.
    t.keys(&[
        "sh -c 'trap \"echo GOT-WINCH\" WINCH; while :; do sleep 0.1; done'",
        "Enter",
    ]);
    std::thread::sleep(Duration::from_millis(1000));
    assert_code(
        &t.tmux(&["resize-window", "-x", "80", "-y", "20"]),
        0,
        "tmux resize-window",
    );
    t.wait_line("GOT-WINCH");
    seen.push("SIGWINCH trapped".to_string());
    t.keys(&["C-c"]);
    let resized = ask("RESIZED", "$(stty size)");
    seen.push(format!("stty size after the resize: {resized}"));
    assert_ne!(
        resized, size,
        "{rt}: the resize did not reach the container"
    );
    // ^C interrupts the foreground job, not the shell.
    t.keys(&["sleep 100", "Enter"]);
    std::thread::sleep(Duration::from_millis(1500));
    t.keys(&["C-c"]);
    seen.push(format!("after ^C: {}", ask("STATUS", "$?")));
    seen.push(format!("shell still there: {}", ask("ALIVE", "yes")));
    // Nothing typed comes back twice.
    let s = t.screen();
    seen.push(format!(
        "echoed once: {}",
        s.lines().filter(|l| l.contains("echo ALIVE=")).count() == 1
            && !s.contains("echo ALIVE=\"yes\"echo")
    ));
    t.keys(&["exit", "Enter"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while t.alive() {
        assert!(
            Instant::now() < deadline,
            "{rt}: docker run -it did not end after exit:\n{}",
            t.screen()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    seen
}

#[test]
fn docker_run_it_through_tmux() {
    if !Path::new(TMUX).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{TMUX} missing: install tmux (CI is set, so this fails)"
        );
        let _ = writeln!(
            std::io::stderr(),
            "\n!!!!!!!! SKIPPING the docker -it test: {TMUX} missing !!!!!!!!\n"
        );
        return;
    }
    let Some(d) = dockerd_or_skip("t", false) else {
        return;
    };
    let tar = busybox_tar(&d.base);
    d.ok(&["import", &tar.to_string_lossy(), IMAGE]);
    let run_it = |rt: &str| format!("run -it --rm --network none --runtime={rt} {IMAGE} sh");
    let ours = interactive_shell(&d, "sandbox", &run_it("sandbox"));
    let runc = interactive_shell(&d, "runc", &run_it("runc"));
    eprintln!("docker run -it, sandbox: {ours:?}");
    assert_eq!(ours, runc, "docker run -it: sandbox (left) vs runc (right)");
    assert_eq!(ours[0], "tty: /dev/pts/N", "{ours:?}");
    assert_eq!(ours[2], "read: ac", "{ours:?}");
    assert_eq!(ours[5], "after ^C: 130", "{ours:?}");
    // docker exec -it: a terminal of its own in a running container.
    let exec_it = |rt: &str| {
        let rt_flag = format!("--runtime={rt}");
        let id = d.ok(&[
            "run",
            "-d",
            "--network",
            "none",
            &rt_flag,
            IMAGE,
            "sleep",
            "1000",
        ]);
        let id = id.trim().to_string();
        let seen = interactive_shell(&d, rt, &format!("exec -it {id} sh"));
        d.ok(&["rm", "-f", &id]);
        seen
    };
    let ours = exec_it("sandbox");
    let runc = exec_it("runc");
    eprintln!("docker exec -it, sandbox: {ours:?}");
    assert_eq!(
        ours, runc,
        "docker exec -it: sandbox (left) vs runc (right)"
    );
    let mut d = d;
    let left = d.stop();
    assert!(
        left.is_empty(),
        "left behind after dockerd stopped:\n{}",
        left.join("\n")
    );
}
