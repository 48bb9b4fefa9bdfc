//! containerd with our shim (`containerd-shim-runsc-v1`, runtime
//! `io.containerd.runsc.v1`): the test starts its own containerd (Debian's,
//! its root, state and sockets under a temporary directory, CRI off),
//! imports a busybox OCI image built from the host's static busybox, and
//! checks what `ctr` users do (run by runtime type and by path, exit
//! codes, a missing command, stdin, -t, -d with task ls/exec/exec -t/ps/
//! metrics/pause/resume/kill/delete) against containerd's runc shim
//! (io.containerd.runc.v2) doing the same, and that a shim killed under a
//! running task leaves no sandbox (containerd runs the shim's `delete`).
//!
//! One #[test] with sub-steps: the containerd is shared and stopped at the
//! end (also on failure), every task is killed and deleted first, and no
//! process it started may outlive it. Without a containerd that starts,
//! the test fails when `CI` is set and is skipped (loudly) otherwise.

use integration_tests::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const CONTAINERD: &str = "/usr/bin/containerd";
const CTR: &str = "/usr/bin/ctr";
const BUSYBOX: &str = "/bin/busybox";
const IMAGE: &str = "docker.io/library/runsc-busybox:test";
const RUNC_SHIM: &str = "io.containerd.runc.v2";
/// Upper bound for one ctr command; a hang fails the test instead.
const TIMEOUT: Duration = Duration::from_secs(60);
/// How long containerd may take to answer its first request.
const STARTUP: Duration = Duration::from_secs(30);

/// The shim binary: `$SHIM_BIN`, else next to runsc (built with `cargo
/// build --release -p shim` if missing).
fn shim_bin() -> &'static Path {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let r = BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("SHIM_BIN") {
            return Ok(PathBuf::from(p));
        }
        let dir = runsc_bin()
            .parent()
            .ok_or("runsc has no directory")?
            .to_path_buf();
        let bin = dir.join("containerd-shim-runsc-v1");
        if bin.exists() {
            return Ok(bin);
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let st = Command::new(cargo)
            .args(["build", "--release", "-p", "shim"])
            .current_dir(workspace_root())
            .status()
            .map_err(|e| format!("cargo build -p shim: {e}"))?;
        if !st.success() || !bin.exists() {
            return Err(format!("cargo build --release -p shim: {st}"));
        }
        Ok(bin)
    });
    match r {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

/// A containerd of our own under `base`. Dropping it kills and deletes
/// every task, stops the daemon, and kills whatever it left behind.
struct Containerd {
    base: PathBuf,
    sock: PathBuf,
    ns: String,
    snapshotter: &'static str,
    child: Option<Child>,
}

impl Containerd {
    fn start() -> Result<Containerd, String> {
        for bin in [CONTAINERD, CTR] {
            if !Path::new(bin).exists() {
                return Err(format!(
                    "{bin} missing: install containerd (docker.io brings it; the CI script does)"
                ));
            }
        }
        // SAFETY: geteuid(2) has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("containerd needs root".into());
        }
        let base = PathBuf::from(format!("/tmp/rsctd-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).map_err(|e| format!("{}: {e}", base.display()))?;
        let sock = base.join("c.sock");
        let overlay = std::fs::read_to_string("/proc/filesystems")
            .unwrap_or_default()
            .contains("overlay");
        let snapshotter = if overlay { "overlayfs" } else { "native" };
        let config = format!(
            "version = 2\n\
             root = \"{b}/root\"\n\
             state = \"{b}/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{s}\"\n\
             [ttrpc]\n  address = \"{s}.ttrpc\"\n\
             [debug]\n  level = \"debug\"\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{b}/opt\"\n",
            b = base.display(),
            s = sock.display()
        );
        let cfg = base.join("config.toml");
        std::fs::write(&cfg, config).map_err(|e| e.to_string())?;
        let shim_dir = shim_bin().parent().ok_or("the shim has no directory")?;
        let path = format!(
            "{}:{}",
            shim_dir.display(),
            std::env::var("PATH").unwrap_or_else(|_| SANDBOX_PATH.to_string())
        );
        let log = std::fs::File::create(base.join("containerd.log")).map_err(|e| e.to_string())?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(CONTAINERD)
            .arg("--config")
            .arg(&cfg)
            // The shim finds runsc by this (also when RUNSC_BIN moved it).
            .env("RUNSC_BINARY", runsc_bin())
            // And containerd finds the shim for io.containerd.runsc.v1.
            .env("PATH", path)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("starting {CONTAINERD}: {e}"))?;
        let mut c = Containerd {
            base,
            sock,
            ns: format!("rsctest-{}", std::process::id()),
            snapshotter,
            child: Some(child),
        };
        let start = Instant::now();
        loop {
            if c.ctr(&["version"], None).code == 0 {
                return Ok(c);
            }
            let exited = c.child.as_mut().and_then(|ch| ch.try_wait().ok().flatten());
            if exited.is_some() || start.elapsed() > STARTUP {
                return Err(format!(
                    "containerd did not come up ({}):\n{}",
                    exited.map_or("timed out".to_string(), |s| s.to_string()),
                    c.log_tail(15)
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_tail(&self, n: usize) -> String {
        let log = std::fs::read_to_string(self.base.join("containerd.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(n).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// `ctr --address SOCK -n NS ARGS` with `stdin` piped in (else none).
    fn ctr(&self, args: &[&str], stdin: Option<&[u8]>) -> Outcome {
        let mut cmd = Command::new(CTR);
        cmd.arg("--address")
            .arg(&self.sock)
            .args(["-n", &self.ns])
            .args(args);
        run_bounded(cmd, stdin)
    }

    /// `ctr ARGS`, which must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let o = self.ctr(args, None);
        assert_code(&o, 0, &format!("ctr {}", args.join(" ")));
        o.stdout_str()
    }

    /// `ctr run --rm --runtime RT [FLAGS] IMAGE ID CMD...`.
    fn run(
        &self,
        rt: &str,
        id: &str,
        flags: &[&str],
        cmd: &[&str],
        stdin: Option<&[u8]>,
    ) -> Outcome {
        let mut args = vec![
            "run",
            "--rm",
            "--snapshotter",
            self.snapshotter,
            "--runtime",
            rt,
        ];
        args.extend(flags);
        args.push(IMAGE);
        args.push(id);
        args.extend(cmd);
        self.ctr(&args, stdin)
    }

    /// The same under a pty (`script`), as a user at a terminal.
    fn run_tty(&self, rt: &str, args: &[&str]) -> Outcome {
        let mut line = format!("{CTR} --address {} -n {} ", self.sock.display(), self.ns);
        line.push_str(&args.join(" "));
        let mut cmd = Command::new("script");
        cmd.args(["-qec", &line, "/dev/null"]);
        let o = run_bounded(cmd, None);
        eprintln!("{rt}: {line}: {o:?}");
        o
    }

    /// Host processes whose command line mentions our base directory
    /// (containerd, shims, runsc sandboxes and their helpers).
    fn processes(&self) -> Vec<(i32, String)> {
        let needle = self.base.to_string_lossy().into_owned();
        let mut out = Vec::new();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
                let c = String::from_utf8_lossy(&c).replace('\0', " ");
                if c.contains(&needle) {
                    out.push((pid, c));
                }
            }
        }
        out
    }

    /// Kills and deletes every task, removes the containers, stops
    /// containerd (TERM, then KILL after 20s) and returns the processes
    /// still alive after that.
    fn stop(&mut self) -> Vec<(i32, String)> {
        let Some(mut child) = self.child.take() else {
            return Vec::new();
        };
        let tasks = self.ctr(&["task", "ls", "-q"], None).stdout_str();
        for id in tasks.split_whitespace() {
            let _ = self.ctr(&["task", "kill", "-s", "SIGKILL", "--all", id], None);
            let _ = self.ctr(&["task", "delete", "--force", id], None);
        }
        let containers = self.ctr(&["container", "ls", "-q"], None).stdout_str();
        for id in containers.split_whitespace() {
            let _ = self.ctr(&["container", "rm", id], None);
        }
        stop_daemon(&mut child, || self.processes())
    }

    /// Mount points at or under our base directory, deepest first.
    fn mounts(&self) -> Vec<String> {
        let needle = self.base.to_string_lossy().into_owned();
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut m: Vec<String> = info
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|p| p.starts_with(&needle))
            .map(str::to_string)
            .collect();
        m.sort_by_key(|p| std::cmp::Reverse(p.len()));
        m
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.base.join("containerd.log")).unwrap_or_default();
            let shim: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("containerd_shim") || l.contains("level=error"))
                .collect();
            let from = shim.len().saturating_sub(80);
            eprintln!(
                "--- containerd's log (shim lines) ---\n{}",
                shim[from..].join("\n")
            );
        }
        let left = self.stop();
        for (pid, _) in &left {
            // SAFETY: kill(2) of a process started under our containerd.
            unsafe {
                libc::kill(*pid, libc::SIGKILL);
            }
        }
        if !left.is_empty() {
            let list: Vec<String> = left.iter().map(|(p, c)| format!("{p}: {c}")).collect();
            eprintln!(
                "killed processes left behind by containerd:\n{}",
                list.join("\n")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        for m in self.mounts() {
            let _ = Command::new("umount").args(["-l", &m]).output();
        }
        if self.mounts().is_empty() {
            let _ = std::fs::remove_dir_all(&self.base);
        }
        let _ = std::fs::remove_dir_all(Path::new("/run/containerd/runsc").join(&self.ns));
    }
}

/// Runs `cmd` to completion within TIMEOUT, `stdin` piped in.
fn run_bounded(cmd: Command, stdin: Option<&[u8]>) -> Outcome {
    integration_tests::run_bounded(cmd, stdin, TIMEOUT)
}

fn sha256(p: &Path) -> String {
    let o = Command::new("sha256sum")
        .arg(p)
        .output()
        .expect("sha256sum");
    assert!(o.status.success(), "sha256sum {}: {o:?}", p.display());
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .expect("sha256sum printed a digest")
        .to_string()
}

/// Adds `path` to the layout's blobs; its OCI descriptor.
fn blob(layout: &Path, path: &Path, media_type: &str) -> serde_json::Value {
    let digest = sha256(path);
    let size = std::fs::metadata(path).unwrap().len();
    std::fs::copy(path, layout.join("blobs/sha256").join(&digest)).unwrap();
    serde_json::json!({ "mediaType": media_type, "digest": format!("sha256:{digest}"), "size": size })
}

/// A busybox image (the host's static busybox and its applet links) as an
/// OCI image layout tar for `ctr image import`: one uncompressed layer.
fn busybox_image(dir: &Path) -> PathBuf {
    assert!(
        Path::new(BUSYBOX).exists(),
        "{BUSYBOX} missing: install busybox-static (the CI script does)"
    );
    let root = dir.join("rootfs");
    for d in ["bin", "etc", "tmp", "proc", "sys", "dev", "root"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy(BUSYBOX, root.join("bin/busybox")).unwrap();
    let out = Command::new(BUSYBOX).arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\n").unwrap();
    let layer = dir.join("layer.tar");
    let o = Command::new("tar")
        .args(["--numeric-owner", "-C"])
        .arg(&root)
        .arg("-cf")
        .arg(&layer)
        .arg(".")
        .output()
        .expect("running tar");
    assert!(o.status.success(), "tar: {o:?}");
    let layout = dir.join("oci");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    let layer_desc = blob(&layout, &layer, "application/vnd.oci.image.layer.v1.tar");
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": { "Env": ["PATH=/bin"], "Cmd": ["sh"] },
        "rootfs": { "type": "layers", "diff_ids": [layer_desc["digest"]] },
    });
    let config_path = dir.join("config.json");
    std::fs::write(&config_path, config.to_string()).unwrap();
    let config_desc = blob(
        &layout,
        &config_path,
        "application/vnd.oci.image.config.v1+json",
    );
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_desc,
        "layers": [layer_desc],
    });
    let manifest_path = dir.join("manifest.json");
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    let mut manifest_desc = blob(
        &layout,
        &manifest_path,
        "application/vnd.oci.image.manifest.v1+json",
    );
    manifest_desc["annotations"] = serde_json::json!({ "io.containerd.image.name": IMAGE });
    let index = serde_json::json!({ "schemaVersion": 2, "manifests": [manifest_desc] });
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let tar = dir.join("image.tar");
    let o = Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .output()
        .expect("running tar");
    assert!(o.status.success(), "tar: {o:?}");
    tar
}

/// Starts our containerd, or says why not: a failure under CI, a loud
/// skip elsewhere (None).
fn containerd_or_skip() -> Option<Containerd> {
    let err = match Containerd::start() {
        Ok(c) => return Some(c),
        Err(e) => e,
    };
    if std::env::var_os("CI").is_some() {
        panic!("cannot start containerd (CI is set, so this fails):\n{err}");
    }
    let _ = writeln!(
        std::io::stderr(),
        "\n!!!!!!!! SKIPPING the containerd test: cannot start containerd !!!!!!!!\n{err}\n\
         (install docker.io, as .ci/run does; with CI set this fails)\n"
    );
    None
}

/// Runs the same container under runc's shim and ours; stdout and exit
/// code must agree. Returns ours.
fn same(c: &Containerd, ours: &str, what: &str, cmd: &[&str], stdin: Option<&[u8]>) -> Outcome {
    // ctr attaches its stdin to the task's (no -i as in docker).
    let a = c.run(ours, "rs-same", &[], cmd, stdin);
    let b = c.run(RUNC_SHIM, "rc-same", &[], cmd, stdin);
    assert_eq!(
        (a.code, a.stdout_str()),
        (b.code, b.stdout_str()),
        "{what}: runsc shim (left) and runc shim (right) differ\n--- runsc ---\n{a:?}\n--- runc ---\n{b:?}"
    );
    a
}

/// The row of `ctr task ls` for `id`: (pid, status).
fn task_row(c: &Containerd, id: &str) -> Option<(String, String)> {
    let ls = c.ok(&["task", "ls"]);
    ls.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() >= 3 && f[0] == id).then(|| (f[1].to_string(), f[2].to_string()))
    })
}

fn wait_status(c: &Containerd, id: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let row = task_row(c, id);
        if row.as_ref().is_some_and(|(_, s)| s == want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "task {id} never became {want}: {row:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A detached task's life under runtime `rt`: task ls, exec, ps,
/// pause/resume, kill (TERM, which the task traps) and delete. Returns
/// what a user would see, to compare.
fn detached(c: &Containerd, rt: &str, id: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let script = "trap 'exit 7' TERM; while true; do sleep 0.1; done";
    c.ok(&[
        "run",
        "-d",
        "--snapshotter",
        c.snapshotter,
        "--runtime",
        rt,
        IMAGE,
        id,
        "sh",
        "-c",
        script,
    ]);
    wait_status(c, id, "RUNNING");
    let (pid, _) = task_row(c, id).expect("task listed");
    seen.push("ls: RUNNING".to_string());
    let o = c.ctr(
        &["task", "exec", "--exec-id", "e1", id, "echo", "from exec"],
        None,
    );
    seen.push(format!("exec echo: {} {:?}", o.code, o.stdout_str()));
    let o = c.ctr(
        &["task", "exec", "--exec-id", "e2", id, "sh", "-c", "exit 5"],
        None,
    );
    seen.push(format!("exec exit 5: {}", o.code));
    let ps = c.ok(&["task", "ps", id]);
    assert!(
        ps.lines()
            .skip(1)
            .any(|l| l.split_whitespace().next() == Some(&pid)),
        "{rt}: task ps lacks the task's pid {pid}:\n{ps}"
    );
    seen.push("ps lists the task's pid".to_string());
    // SIGKILL to one exec'd process (ctr task kill --exec-id): it ends,
    // the task goes on.
    c.ok(&[
        "task",
        "exec",
        "-d",
        "--exec-id",
        "long",
        id,
        "sleep",
        "999",
    ]);
    let count = "ps -o pid,args | grep -c '[s]leep 999'";
    let o = c.ctr(
        &["task", "exec", "--exec-id", "c1", id, "sh", "-c", count],
        None,
    );
    seen.push(format!("long exec running: {:?}", o.stdout_str().trim()));
    c.ok(&["task", "kill", "--exec-id", "long", "-s", "SIGKILL", id]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut n = 0;
    let left = loop {
        n += 1;
        let exec_id = format!("c2-{n}");
        let o = c.ctr(
            &["task", "exec", "--exec-id", &exec_id, id, "sh", "-c", count],
            None,
        );
        if o.stdout_str().trim() == "0" || Instant::now() > deadline {
            break o.stdout_str().trim().to_string();
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    seen.push(format!("long exec after SIGKILL: {left:?}"));
    let m = c.ok(&["task", "metrics", id]);
    seen.push(format!(
        "metrics: memory {} cpu {} pids {}",
        m.contains("memory.usage_in_bytes"),
        m.contains("cpuacct.usage"),
        m.contains("pids.current")
    ));
    c.ok(&["task", "pause", id]);
    wait_status(c, id, "PAUSED");
    seen.push("paused".to_string());
    c.ok(&["task", "resume", id]);
    wait_status(c, id, "RUNNING");
    let o = c.ctr(
        &["task", "exec", "--exec-id", "e4", id, "echo", "resumed"],
        None,
    );
    seen.push(format!(
        "exec after resume: {} {:?}",
        o.code,
        o.stdout_str()
    ));
    // ours only: runc's shim now and then loses this output (its exit
    // races ctr's late resize).
    if rt != RUNC_SHIM && has_script() {
        let o = c.run_tty(
            rt,
            &[
                "task",
                "exec",
                "-t",
                "--exec-id",
                "e5",
                id,
                "sh",
                "-c",
                "'[ -t 0 ] && echo tty; exit 2'",
            ],
        );
        assert_eq!(
            (o.code, clean_tty(&o).lines().next().unwrap_or("")),
            (2, "tty"),
            "ctr task exec -t: {o:?}"
        );
    }
    c.ok(&["task", "kill", id]);
    wait_status(c, id, "STOPPED");
    seen.push("stopped after SIGTERM".to_string());
    let o = c.ctr(&["task", "delete", id], None);
    seen.push(format!(
        "delete: {} exit code 7 reported: {}",
        o.code,
        o.stderr_str().contains("exit code 7")
    ));
    assert!(task_row(c, id).is_none(), "{rt}: task {id} still listed");
    c.ok(&["container", "rm", id]);
    seen
}

fn has_script() -> bool {
    Command::new("script").arg("--version").output().is_ok()
}

/// A terminal's output: what script's pty echoes of its own stdin's end
/// ("^@") comes and goes with timing, and lines end in CR LF.
fn clean_tty(o: &Outcome) -> String {
    o.stdout_str().replace("^@", "").replace('\r', "")
}

/// Kills the shim of a running detached task: containerd notices, runs
/// the shim's `delete` action, and nothing of the sandbox is left.
fn shim_killed(c: &Containerd, rt: &str, id: &str) {
    c.ok(&[
        "run",
        "-d",
        "--snapshotter",
        c.snapshotter,
        "--runtime",
        rt,
        IMAGE,
        id,
        "sleep",
        "1000",
    ]);
    wait_status(c, id, "RUNNING");
    let shim_args = format!("-id {id} ");
    let sandbox = |c: &Containerd| {
        c.processes()
            .into_iter()
            .filter(|(_, cmd)| cmd.contains(id) && !cmd.contains("containerd-shim"))
            .collect::<Vec<_>>()
    };
    assert!(!sandbox(c).is_empty(), "no sandbox process for {id}");
    let shims: Vec<(i32, String)> = c
        .processes()
        .into_iter()
        .filter(|(_, cmd)| cmd.contains("containerd-shim-runsc-v1") && cmd.contains(&shim_args))
        .collect();
    assert_eq!(shims.len(), 1, "the shim of {id}: {shims:?}");
    let socket = shims[0]
        .1
        .split_whitespace()
        .skip_while(|a| *a != "-socket")
        .nth(1)
        .map(|a| PathBuf::from(a.trim_start_matches("unix://")))
        .expect("the shim's -socket");
    assert!(socket.exists(), "{}", socket.display());
    // SAFETY: kill(2) of the shim our containerd started for this task.
    unsafe {
        libc::kill(shims[0].0, libc::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let gone = task_row(c, id).is_none();
        let left = sandbox(c);
        // Its socket too (the shim's `delete` removes it).
        let socket_left = socket.exists();
        if gone && left.is_empty() && !socket_left {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after its shim died, task {id} listed: {}, sandbox left: {left:?}, \
             socket {} left: {socket_left}",
            !gone,
            socket.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    c.ok(&["container", "rm", id]);
}

#[test]
fn containerd_with_the_runsc_shim() {
    let Some(c) = containerd_or_skip() else {
        return;
    };
    let shim = shim_bin().to_string_lossy().into_owned();
    let shim = shim.as_str();
    let img = busybox_image(&c.base.join("image"));
    let img = img.to_string_lossy().into_owned();
    c.ok(&["image", "import", "--snapshotter", c.snapshotter, &img]);
    assert!(c.ok(&["image", "ls", "-q"]).contains(IMAGE));

    // By runtime type: containerd finds containerd-shim-runsc-v1 on PATH.
    let o = same(&c, "io.containerd.runsc.v1", "echo", &["echo", "hi"], None);
    assert_eq!(o.stdout_str(), "hi\n");
    let o = same(
        &c,
        shim,
        "exit code",
        &["sh", "-c", "echo out; echo err >&2; exit 3"],
        None,
    );
    assert_eq!(o.code, 3);
    assert!(o.stderr_str().contains("err"), "stderr: {o:?}");
    // A command the image lacks: the task is not created, ctr says why.
    let a = c.run(shim, "rs-missing", &[], &["/nonexistent"], None);
    let b = c.run(RUNC_SHIM, "rc-missing", &[], &["/nonexistent"], None);
    assert!(a.code != 0 && b.code != 0, "missing command:\n{a:?}\n{b:?}");
    assert!(
        a.stderr_str().contains("/nonexistent"),
        "missing command: {a:?}"
    );
    // Piped stdin reaches the task and so does its end (runc's shim keeps
    // the task waiting for a CloseIO that `ctr run` never sends: ours only).
    let o = c.run(
        shim,
        "rs-stdin",
        &[],
        &["sh", "-c", "cat; echo done"],
        Some(b"piped\n"),
    );
    assert_eq!(
        (o.code, o.stdout_str().as_str()),
        (0, "piped\ndone\n"),
        "stdin: {o:?}"
    );

    let ours = detached(&c, shim, "rs-detached");
    let runc = detached(&c, RUNC_SHIM, "rc-detached");
    assert_eq!(
        ours, runc,
        "detached task: runsc shim (left) and runc shim (right) differ"
    );

    // A shim that dies (SIGKILL): containerd runs `SHIM delete`, which
    // must end the sandbox; the task is gone from `task ls`.
    shim_killed(&c, shim, "rs-shimdies");

    // A terminal (ctr run -t) under `script`'s pty, if script is there.
    if has_script() {
        let cmd = |rt: &str, id: &str| {
            vec![
                "run".to_string(),
                "--rm".into(),
                "-t".into(),
                "--snapshotter".into(),
                c.snapshotter.into(),
                "--runtime".into(),
                rt.into(),
                IMAGE.into(),
                id.into(),
                "sh".into(),
                "-c".into(),
                "'[ -t 0 ] && [ -t 1 ] && echo tty; exit 4'".into(),
            ]
        };
        let a = cmd(shim, "rs-tty");
        let a = c.run_tty(shim, &a.iter().map(String::as_str).collect::<Vec<_>>());
        let b = cmd(RUNC_SHIM, "rc-tty");
        let b = c.run_tty(RUNC_SHIM, &b.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(
            (a.code, clean_tty(&a)),
            (4, "tty\n".to_string()),
            "ctr run -t: {a:?}"
        );
        assert_eq!(
            (a.code, clean_tty(&a)),
            (b.code, clean_tty(&b)),
            "ctr run -t"
        );
    } else {
        eprintln!("no `script`: ctr run -t is not tested");
    }

    let mut c = c;
    let left = c.stop();
    assert!(
        left.is_empty(),
        "processes left after containerd stopped: {left:?}"
    );
    let state = Path::new("/run/containerd/runsc").join(&c.ns);
    let leftover: Vec<_> = std::fs::read_dir(&state)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        leftover.is_empty(),
        "runsc state left in {}: {leftover:?}",
        state.display()
    );
}
