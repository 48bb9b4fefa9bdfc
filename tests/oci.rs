//! The OCI runtime lifecycle: bundles made with `runsc spec` around a busybox
//! root (from the host's static busybox), driven through create, start,
//! state, kill, wait, delete and run, each test with its own `--root`.

use integration_tests::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BUSYBOX: &str = "/bin/busybox";
/// Upper bound for one runsc command; a hang fails the test instead.
const TIMEOUT: Duration = Duration::from_secs(20);

/// A bundle (config.json + busybox rootfs) and a private state root, in a
/// scratch directory; containers left over are force-deleted on drop.
struct Bundle {
    base: PathBuf,
    ids: std::cell::RefCell<Vec<String>>,
}

impl Bundle {
    fn new(tag: &str) -> Bundle {
        assert!(
            Path::new(BUSYBOX).exists(),
            "{BUSYBOX} missing: install busybox-static (the CI script does)"
        );
        let base = std::env::temp_dir().join(format!("runsc-oci-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let rootfs = base.join("bundle/rootfs");
        for d in ["bin", "etc", "tmp", "proc", "sys", "dev", "root", "home/u"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        std::fs::create_dir_all(base.join("state")).unwrap();
        std::fs::copy(BUSYBOX, rootfs.join("bin/busybox")).unwrap();
        let out = Command::new(BUSYBOX).arg("--list").output().unwrap();
        for applet in String::from_utf8_lossy(&out.stdout).lines() {
            if applet != "busybox" {
                std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
            }
        }
        std::fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nu:x:1000:1000:u:/home/u:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(rootfs.join("etc/group"), "root:x:0:\nu:x:1000:\n").unwrap();
        let b = Bundle {
            base,
            ids: Default::default(),
        };
        let o = b.runsc(&["spec", "--bundle", &b.dir()]);
        assert_code(&o, 0, "runsc spec");
        b
    }

    fn dir(&self) -> String {
        self.base.join("bundle").to_string_lossy().into_owned()
    }

    fn state_root(&self) -> PathBuf {
        self.base.join("state")
    }

    fn config_path(&self) -> PathBuf {
        self.base.join("bundle/config.json")
    }

    fn config(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.config_path()).unwrap()).unwrap()
    }

    /// Edits config.json: `sh -c script`, no terminal, then `f`.
    fn set_script(&self, script: &str, f: impl FnOnce(&mut Value)) {
        let mut c = self.config();
        c["process"]["args"] = serde_json::json!(["sh", "-c", script]);
        c["process"]["terminal"] = Value::Bool(false);
        f(&mut c);
        std::fs::write(self.config_path(), serde_json::to_vec_pretty(&c).unwrap()).unwrap();
    }

    /// `runsc --root STATE ARGS...` to completion, output captured.
    fn runsc(&self, args: &[&str]) -> Outcome {
        let mut cmd = Command::new(runsc_bin());
        cmd.arg("--root").arg(self.state_root()).args(args);
        run_bounded(cmd, Stdio::piped(), Stdio::piped())
    }

    /// `runc run` (Debian's runc, the oracle) of this bundle as `id`, with
    /// a state root of its own; asserts it succeeded.
    fn runc_run(&self, id: &str) -> Outcome {
        let runc = Path::new("/usr/sbin/runc");
        assert!(
            runc.exists(),
            "runc missing: install docker.io (the CI script does)"
        );
        let mut cmd = Command::new(runc);
        cmd.arg("--root").arg(self.base.join("runc-state")).args([
            "run",
            "--bundle",
            &self.dir(),
            id,
        ]);
        let o = run_bounded(cmd, Stdio::piped(), Stdio::piped());
        assert_code(&o, 0, "runc run");
        o
    }

    /// `runsc create` with the container's stdout and stderr going to
    /// files (the sandbox keeps them open while it lives); returns create's
    /// exit code.
    fn create(&self, id: &str, extra: &[&str]) -> i32 {
        self.ids.borrow_mut().push(id.to_string());
        let mut cmd = Command::new(runsc_bin());
        cmd.arg("--root")
            .arg(self.state_root())
            .args(["create", "--bundle", &self.dir()])
            .args(extra)
            .arg(id);
        let out = std::fs::File::create(self.out_path(id)).unwrap();
        let err = std::fs::File::create(self.err_path(id)).unwrap();
        run_bounded(cmd, out.into(), err.into()).code
    }

    fn out_path(&self, id: &str) -> PathBuf {
        self.base.join(format!("{id}.out"))
    }
    fn err_path(&self, id: &str) -> PathBuf {
        self.base.join(format!("{id}.err"))
    }
    fn stdout_of(&self, id: &str) -> String {
        std::fs::read_to_string(self.out_path(id)).unwrap_or_default()
    }
    fn stderr_of(&self, id: &str) -> String {
        std::fs::read_to_string(self.err_path(id)).unwrap_or_default()
    }

    /// `runsc state ID`, parsed.
    fn state(&self, id: &str) -> Value {
        let o = self.runsc(&["state", id]);
        assert_code(&o, 0, "runsc state");
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("state JSON: {e}\n{o:?}"))
    }

    fn status(&self, id: &str) -> String {
        self.state(id)["status"].as_str().unwrap().to_string()
    }

    /// Waits (bounded) until the container's stdout contains `what`.
    fn await_stdout(&self, id: &str, what: &str) {
        let start = Instant::now();
        while !self.stdout_of(id).contains(what) {
            assert!(
                start.elapsed() < TIMEOUT,
                "{id} never printed {what:?}; stdout {:?}, stderr {:?}",
                self.stdout_of(id),
                self.stderr_of(id)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        for id in self.ids.borrow().iter() {
            let _ = self.runsc(&["delete", "--force", id]);
        }
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// Docker's default capabilities.
const DOCKER_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Adds `caps` to the bounding, effective and permitted sets of a
/// config.json (`runsc spec`'s has only AUDIT_WRITE, KILL and
/// NET_BIND_SERVICE).
fn grant_caps(c: &mut Value, caps: &[&str]) {
    for set in ["bounding", "effective", "permitted"] {
        let v = &mut c["process"]["capabilities"][set];
        if !v.is_array() {
            *v = serde_json::json!([]);
        }
        let list = v.as_array_mut().unwrap();
        for cap in caps {
            if !list.iter().any(|x| x == cap) {
                list.push(Value::String(cap.to_string()));
            }
        }
    }
}

/// `GET /` over HTTP/1.0 from `ip`:8080, retried until the answer ends
/// with `tail` (a server in a sandbox that is still starting) for at most
/// TIMEOUT; the whole answer.
fn http_get_until(ip: impl Into<std::net::IpAddr>, tail: &str) -> String {
    use std::io::{Read, Write};
    let ip = ip.into();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let got = std::net::TcpStream::connect((ip, 8080)).and_then(|mut c| {
            c.set_read_timeout(Some(Duration::from_secs(5)))?;
            c.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
            let mut s = String::new();
            c.read_to_string(&mut s)?;
            Ok(s)
        });
        match got {
            Ok(s) if s.ends_with(tail) => return s,
            r => assert!(Instant::now() < deadline, "GET: {r:?}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `cmd` to completion within TIMEOUT (killing it past that).
fn run_bounded(mut cmd: Command, out: Stdio, err: Stdio) -> Outcome {
    let desc = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("{desc}: {e}"));
    let collect = |r: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut v);
            }
            v
        })
    };
    let so = collect(child.stdout.take().map(|s| Box::new(s) as _));
    let se = collect(child.stderr.take().map(|s| Box::new(s) as _));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            panic!("{desc}: TIMED OUT after {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    use std::os::unix::process::ExitStatusExt;
    Outcome {
        stdout: so.join().unwrap(),
        stderr: se.join().unwrap(),
        code: status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
    }
}

fn assert_fails_with(o: &Outcome, msg: &str, what: &str) {
    assert_eq!(o.code, 1, "{what}: expected exit code 1\n{o:?}");
    assert!(
        o.stderr_str().contains(msg),
        "{what}: expected {msg:?} on stderr\n{o:?}"
    );
}

#[test]
fn run_propagates_exit_code_and_cleans_up() {
    let b = Bundle::new("run");
    b.set_script("echo out; echo err >&2; exit 3", |_| {});
    let o = b.runsc(&["run", "--bundle", &b.dir(), "r1"]);
    assert_eq!(o.code, 3, "{o:?}");
    assert_eq!(o.stdout_str(), "out\n", "{o:?}");
    assert!(o.stderr_str().contains("err\n"), "{o:?}");
    assert!(!b.state_root().join("r1").exists(), "run left its state");
    // PID 1 is the container's init: its own SIGKILL is dropped, as under
    // runc. A signal death is 128+N (PID 1 killed by a signal it has no
    // handler for, from outside: `runsc kill`).
    b.set_script("kill -9 $$; echo alive", |_| {});
    let o = b.runsc(&["run", "--bundle", &b.dir(), "r2"]);
    assert_eq!((o.code, o.stdout_str().as_str()), (0, "alive\n"), "{o:?}");
    b.set_script("echo started; sleep 100", |_| {});
    assert_eq!(b.create("r3", &[]), 0, "create: {}", b.stderr_of("r3"));
    assert_code(&b.runsc(&["start", "r3"]), 0, "start");
    b.await_stdout("r3", "started");
    assert_code(&b.runsc(&["kill", "r3", "KILL"]), 0, "kill");
    let o = b.runsc(&["wait", "r3"]);
    assert!(o.stdout_str().contains("\"exitStatus\":137"), "{o:?}");
}

#[test]
fn lifecycle_created_running_stopped_deleted() {
    let b = Bundle::new("life");
    b.set_script(
        "trap 'echo got-term; exit 7' TERM; echo started; while :; do sleep 1 & wait; done",
        |_| {},
    );
    let pid_file = b.base.join("init.pid");
    assert_eq!(
        b.create("c1", &["--pid-file", &pid_file.to_string_lossy()]),
        0,
        "create: {}",
        b.stderr_of("c1")
    );
    let st = b.state("c1");
    assert_eq!(st["status"], "created", "{st}");
    assert_eq!(st["id"], "c1");
    assert_eq!(st["bundle"], b.dir());
    assert!(st["ociVersion"].as_str().unwrap().starts_with("1."));
    let pid = st["pid"].as_i64().unwrap();
    assert!(pid > 0);
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap().trim(),
        pid.to_string()
    );
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    // Created: PID 1 is loaded but has run no guest code.
    assert_eq!(b.stdout_of("c1"), "", "the guest ran before start");
    let ids = b.runsc(&["list", "--format", "json"]);
    let list: Value = serde_json::from_slice(&ids.stdout).unwrap();
    assert_eq!(list[0]["id"], "c1", "{ids:?}");

    assert_code(&b.runsc(&["start", "c1"]), 0, "start");
    assert_eq!(b.status("c1"), "running");
    b.await_stdout("c1", "started");
    let ps = b.runsc(&["ps", "--format", "json", "c1"]);
    assert_eq!(ps.stdout_str().trim(), format!("[{pid}]"), "{ps:?}");
    let ps = b.runsc(&["ps", "c1"]);
    assert!(ps.stdout_str().contains("PID"), "{ps:?}");

    assert_code(&b.runsc(&["kill", "c1", "TERM"]), 0, "kill");
    let w = b.runsc(&["wait", "c1"]);
    let w: Value = serde_json::from_slice(&w.stdout).unwrap_or_else(|e| panic!("{e}: {w:?}"));
    assert_eq!(w["exitStatus"], 7, "{w}");
    assert_eq!(b.status("c1"), "stopped");
    assert!(b.stdout_of("c1").contains("got-term"));

    assert_code(&b.runsc(&["delete", "c1"]), 0, "delete");
    assert!(!b.state_root().join("c1").exists(), "state dir left behind");
    assert_fails_with(
        &b.runsc(&["state", "c1"]),
        "container \"c1\" does not exist",
        "state after delete",
    );
}

#[test]
fn wrong_state_commands_are_refused() {
    let b = Bundle::new("wrong");
    b.set_script("echo started; while :; do sleep 1 & wait; done", |_| {});
    assert_eq!(b.create("w1", &[]), 0, "{}", b.stderr_of("w1"));
    assert_fails_with(
        &b.runsc(&["create", "--bundle", &b.dir(), "w1"]),
        "container with id exists: w1",
        "create twice",
    );
    assert_code(&b.runsc(&["start", "w1"]), 0, "start");
    assert_fails_with(
        &b.runsc(&["start", "w1"]),
        "cannot start an already running container",
        "start twice",
    );
    assert_fails_with(
        &b.runsc(&["delete", "w1"]),
        "container is running",
        "delete running",
    );
    assert_eq!(b.status("w1"), "running");
    assert_code(&b.runsc(&["kill", "w1", "KILL"]), 0, "kill KILL");
    b.runsc(&["wait", "w1"]);
    assert_eq!(b.status("w1"), "stopped");
    assert_fails_with(
        &b.runsc(&["kill", "w1", "TERM"]),
        "container not running",
        "kill stopped",
    );
    assert_fails_with(
        &b.runsc(&["start", "w1"]),
        "cannot start a container that has stopped",
        "start stopped",
    );
    assert_code(&b.runsc(&["delete", "w1"]), 0, "delete stopped");
    for cmd in ["start", "kill", "delete", "ps"] {
        assert_fails_with(&b.runsc(&[cmd, "nope"]), "does not exist", cmd);
    }
    assert_code(
        &b.runsc(&["delete", "--force", "nope"]),
        0,
        "delete -f missing",
    );
    assert_fails_with(
        &b.runsc(&["kill", "w1", "NOSIG"]),
        "invalid signal",
        "bad signal",
    );
}

#[test]
fn force_delete_and_kill_of_created_containers() {
    let b = Bundle::new("force");
    b.set_script("echo started; while :; do sleep 1 & wait; done", |_| {});
    // A running container goes with --force, sandbox process and all.
    assert_eq!(b.create("f1", &[]), 0, "{}", b.stderr_of("f1"));
    let pid = b.state("f1")["pid"].as_i64().unwrap();
    assert_code(&b.runsc(&["start", "f1"]), 0, "start");
    assert_code(&b.runsc(&["delete", "--force", "f1"]), 0, "delete --force");
    assert!(!b.state_root().join("f1").exists());
    let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z"))
        .unwrap_or(false);
    assert!(!alive, "the sandbox process outlived delete --force");
    // A created container dies of a fatal signal without ever running.
    assert_eq!(b.create("f2", &[]), 0, "{}", b.stderr_of("f2"));
    assert_code(&b.runsc(&["kill", "f2", "SIGKILL"]), 0, "kill created");
    let w = b.runsc(&["wait", "f2"]);
    assert!(w.stdout_str().contains("137"), "{w:?}");
    assert_eq!(b.status("f2"), "stopped");
    assert_eq!(b.stdout_of("f2"), "");
    // A created container may be deleted without --force, as with runc.
    assert_eq!(b.create("f3", &[]), 0, "{}", b.stderr_of("f3"));
    assert_code(&b.runsc(&["delete", "f3"]), 0, "delete created");
    assert!(!b.state_root().join("f3").exists());
}

#[test]
fn bad_configs_are_clear_errors_and_leave_no_state() {
    let b = Bundle::new("bad");
    std::fs::write(b.config_path(), "{ not json").unwrap();
    assert_eq!(b.create("b1", &[]), 1);
    assert!(
        b.stderr_of("b1").contains("config.json"),
        "{}",
        b.stderr_of("b1")
    );
    assert!(!b.state_root().join("b1").exists());
    assert_fails_with(&b.runsc(&["state", "b1"]), "does not exist", "state");

    // A wrongly typed field is named.
    std::fs::remove_file(b.config_path()).unwrap();
    assert_code(&b.runsc(&["spec", "--bundle", &b.dir()]), 0, "spec");
    b.set_script("true", |c| c["process"]["user"]["uid"] = "root".into());
    assert_eq!(b.create("b2", &[]), 1);
    assert!(
        b.stderr_of("b2").contains("process.user.uid"),
        "{}",
        b.stderr_of("b2")
    );
    assert!(!b.state_root().join("b2").exists());

    // A relative cwd is refused, naming the field.
    b.set_script("true", |c| {
        c["process"]["user"]["uid"] = 0.into();
        c["process"]["cwd"] = "tmp".into();
    });
    assert_eq!(b.create("b3", &[]), 1);
    assert!(
        b.stderr_of("b3").contains("process.cwd"),
        "{}",
        b.stderr_of("b3")
    );

    // A missing rootfs.
    b.set_script("true", |c| {
        c["process"]["cwd"] = "/".into();
        c["root"]["path"] = "no-such-rootfs".into();
    });
    let o = b.runsc(&["run", "--bundle", &b.dir(), "b4"]);
    assert_fails_with(&o, "no-such-rootfs", "missing rootfs");
    assert!(o.stderr_str().contains("root.path"), "{o:?}");
    assert!(!b.state_root().join("b4").exists());

    // A command that is not in the image fails create, not start.
    b.set_script("true", |c| {
        c["root"]["path"] = "rootfs".into();
        c["process"]["args"] = serde_json::json!(["/bin/nope"]);
    });
    assert_eq!(b.create("b5", &[]), 1);
    assert!(
        b.stderr_of("b5").contains("/bin/nope"),
        "{}",
        b.stderr_of("b5")
    );
    assert!(!b.state_root().join("b5").exists());

    // A terminal needs a console socket when detached.
    b.set_script("true", |c| c["process"]["terminal"] = true.into());
    assert_eq!(b.create("b6", &[]), 1);
    assert!(
        b.stderr_of("b6").contains("console socket"),
        "{}",
        b.stderr_of("b6")
    );

    let list = b.runsc(&["list", "-q"]);
    assert_eq!(list.stdout_str(), "", "{list:?}");
}

#[test]
fn spec_writes_a_default_config() {
    let b = Bundle::new("spec");
    let c = b.config();
    assert_eq!(c["process"]["args"], serde_json::json!(["sh"]));
    assert_eq!(c["process"]["terminal"], true);
    assert_eq!(c["root"]["path"], "rootfs");
    assert!(c["ociVersion"].as_str().unwrap().starts_with("1."));
    assert_fails_with(
        &b.runsc(&["spec", "--bundle", &b.dir()]),
        "exists",
        "spec over an existing config",
    );
}

#[test]
fn process_fields_reach_the_guest() {
    let b = Bundle::new("fields");
    b.set_script(
        "echo $FOO; pwd; id -u; id -g; id -G; hostname; ulimit -n; umask",
        |c| {
            c["process"]["env"] = serde_json::json!(["PATH=/bin", "FOO=bar baz"]);
            c["process"]["cwd"] = "/home/u".into();
            c["process"]["user"] =
                serde_json::json!({"uid": 1000, "gid": 1000, "additionalGids": [5, 7], "umask": 23});
            c["process"]["rlimits"] =
                serde_json::json!([{"type": "RLIMIT_NOFILE", "soft": 321, "hard": 4096}]);
            c["hostname"] = "oci-host".into();
        },
    );
    let o = b.runsc(&["run", "--bundle", &b.dir(), "p1"]);
    assert_code(&o, 0, "run");
    assert_eq!(
        o.stdout_str(),
        "bar baz\n/home/u\n1000\n1000\n1000 5 7\noci-host\n321\n0027\n",
        "{o:?}"
    );
}

#[test]
fn global_flags_as_docker_passes_them() {
    let b = Bundle::new("flags");
    b.set_script("echo hi", |_| {});
    let log = b.base.join("log.json");
    let o = b.runsc(&[
        "--log",
        &log.to_string_lossy(),
        "--log-format",
        "json",
        "state",
        "missing",
    ]);
    assert_fails_with(&o, "does not exist", "state");
    // The error is the log's last line, as JSON (containerd reads it).
    let text = std::fs::read_to_string(&log).unwrap();
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["level"], "error");
    assert!(last["msg"].as_str().unwrap().contains("does not exist"));
    assert_fails_with(
        &b.runsc(&["--systemd-cgroup", "run", "--bundle", &b.dir(), "x"]),
        "not supported",
        "--systemd-cgroup",
    );
    assert_fails_with(&b.runsc(&["exec", "x", "true"]), "does not exist", "exec");
    let o = b.runsc(&[
        "--network",
        "none",
        "--overlay=false",
        "run",
        "--bundle",
        &b.dir(),
        "y",
    ]);
    assert_code(&o, 0, "run with flags");
    assert_eq!(o.stdout_str(), "hi\n");
}

#[test]
fn hooks_get_the_state_on_stdin() {
    let b = Bundle::new("hooks");
    let hook = |name: &str| {
        let f = b.base.join(format!("{name}.json"));
        serde_json::json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("cat > {}", f.display())],
        })
    };
    let hooks = serde_json::json!({
        "prestart": [hook("prestart")],
        "createRuntime": [hook("createRuntime")],
        "poststart": [hook("poststart")],
        "poststop": [hook("poststop")],
    });
    b.set_script("echo ran", |c| c["hooks"] = hooks);
    let read = |name: &str| -> Value {
        let text = std::fs::read_to_string(b.base.join(format!("{name}.json")))
            .unwrap_or_else(|e| panic!("{name} hook did not run: {e}"));
        serde_json::from_str(&text).unwrap()
    };
    assert_eq!(b.create("h1", &[]), 0, "{}", b.stderr_of("h1"));
    for stage in ["prestart", "createRuntime"] {
        let st = read(stage);
        assert_eq!(
            (st["id"].as_str(), st["status"].as_str()),
            (Some("h1"), Some("created")),
            "{stage}: {st}"
        );
    }
    assert_code(&b.runsc(&["start", "h1"]), 0, "start");
    assert_eq!(read("poststart")["id"], "h1");
    b.runsc(&["wait", "h1"]);
    assert_code(&b.runsc(&["delete", "h1"]), 0, "delete");
    assert_eq!(read("poststop")["id"], "h1");

    // A failing hook fails create and leaves nothing behind.
    b.set_script("true", |c| {
        c["hooks"] = serde_json::json!({"prestart": [{"path": "/bin/false"}]})
    });
    assert_eq!(b.create("h2", &[]), 1);
    assert!(b.stderr_of("h2").contains("hook"), "{}", b.stderr_of("h2"));
    assert!(!b.state_root().join("h2").exists());
}

#[test]
fn terminal_goes_to_the_console_socket() {
    let b = Bundle::new("tty");
    b.set_script("echo hello-from-tty", |c| {
        c["process"]["terminal"] = true.into()
    });
    // The console socket's other end (containerd's part), in Python: take
    // the pty master, start the container, read until the pty closes.
    let script = r#"
import os, socket, subprocess, sys
runsc, root, bundle, path = sys.argv[1:5]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(1)
create = subprocess.Popen([runsc, "--root", root, "create", "--bundle", bundle,
                           "--console-socket", path, "t1"], stdin=subprocess.DEVNULL)
conn, _ = s.accept()
msg, fds, _, _ = socket.recv_fds(conn, 1024, 1)
assert create.wait() == 0, "create failed"
subprocess.run([runsc, "--root", root, "start", "t1"], check=True)
out = b""
while b"hello-from-tty" not in out:
    try:
        d = os.read(fds[0], 1024)
    except OSError:
        break
    if not d:
        break
    out += d
print(out.decode(errors="replace"))
"#;
    let sock = b.base.join("console.sock");
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg("-c")
        .arg(script)
        .arg(runsc_bin())
        .arg(b.state_root())
        .arg(b.dir())
        .arg(&sock);
    b.ids.borrow_mut().push("t1".into());
    let o = run_bounded(cmd, Stdio::piped(), Stdio::piped());
    assert_code(&o, 0, "console socket client");
    // Through a pty, the newline comes out as CR LF.
    assert!(o.stdout_str().contains("hello-from-tty\r\n"), "{o:?}");
}

#[test]
fn console_socket_terminals_are_sandbox_ptys() {
    // The container's process and an exec'd one each get a pty of the
    // sandbox's own (named /dev/pts/N, their controlling terminal) with the
    // size set on the console socket's pty; typed lines are edited and
    // echoed by the sandbox's line discipline, once.
    let b = Bundle::new("ttys");
    b.set_script(
        "sleep 1; echo \"T1=$(tty) S1=$(stty size)\"; read x; echo \"X1=$x\"; sleep 100",
        |c| c["process"]["terminal"] = true.into(),
    );
    let script = r#"
import os, socket, subprocess, sys, time, fcntl, termios, struct, re, select
runsc, root, bundle, path = sys.argv[1:5]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(2)
def take():
    conn, _ = s.accept()
    msg, fds, _, _ = socket.recv_fds(conn, 1024, 1)
    fcntl.ioctl(fds[0], termios.TIOCSWINSZ, struct.pack('HHHH', 25, 90, 0, 0))
    return fds[0]
def read_until(fd, want):
    out = b""
    end = time.time() + 8
    while not re.search(want, out) and time.time() < end:
        if not select.select([fd], [], [], 0.1)[0]:
            continue
        try:
            d = os.read(fd, 1024)
        except OSError:
            break
        if not d:
            break
        out += d
    return out
create = subprocess.Popen([runsc, "--root", root, "create", "--bundle", bundle,
                           "--console-socket", path, "t1"], stdin=subprocess.DEVNULL)
m1 = take()
assert create.wait() == 0, "create failed"
subprocess.run([runsc, "--root", root, "start", "t1"], check=True)
out = read_until(m1, rb"S1=.*\n")
os.write(m1, b"ab\x7fc\n")
out += read_until(m1, rb"X1=.*\n")
ex = subprocess.Popen([runsc, "--root", root, "exec", "--console-socket", path, "-t", "t1",
                       "sh", "-c", "sleep 1; echo \"T2=$(tty) S2=$(stty size)\""],
                      stdin=subprocess.DEVNULL)
m2 = take()
out2 = read_until(m2, rb"S2=.*\n")
print("exec status", ex.wait())
subprocess.run([runsc, "--root", root, "kill", "t1", "KILL"])
for o in (out, out2):
    print(re.sub(r"/dev/pts/[0-9]+", "/dev/pts/N", o.decode(errors="replace")).encode("unicode_escape").decode())
"#;
    let sock = b.base.join("console.sock");
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg("-c")
        .arg(script)
        .arg(runsc_bin())
        .arg(b.state_root())
        .arg(b.dir())
        .arg(&sock);
    b.ids.borrow_mut().push("t1".into());
    let o = run_bounded(cmd, Stdio::piped(), Stdio::piped());
    assert_code(&o, 0, "console socket client");
    let out = o.stdout_str();
    for want in [
        "T1=/dev/pts/N S1=25 90\\r\\n",
        "ab\\x08 \\x08c\\r\\nX1=ac\\r\\n",
        "exec status 0",
        "T2=/dev/pts/N S2=25 90\\r\\n",
    ] {
        assert!(out.contains(want), "{want:?} missing from\n{o:?}");
    }
}

#[test]
fn long_state_paths_like_dockers_work() {
    // docker: --root /var/run/docker/runtime-NAME/moby and 64-hex ids, so
    // the control socket's path is longer than sun_path.
    let b = Bundle::new("long");
    b.set_script("echo started; while :; do sleep 1 & wait; done", |_| {});
    let root = b.state_root().join("runtime-sandbox-with-a-long-name/moby");
    let id = "0123456789abcdef".repeat(4);
    let sock = root.join(&id).join("control.sock");
    assert!(sock.as_os_str().len() > 108, "{}", sock.display());
    let runsc = |args: &[&str]| {
        let mut cmd = Command::new(runsc_bin());
        cmd.arg("--root").arg(&root).args(args);
        run_bounded(cmd, Stdio::piped(), Stdio::piped())
    };
    let mut cmd = Command::new(runsc_bin());
    cmd.arg("--root")
        .arg(&root)
        .args(["create", "--bundle", &b.dir(), &id]);
    let out = std::fs::File::create(b.out_path("long")).unwrap();
    let err = std::fs::File::create(b.err_path("long")).unwrap();
    let o = run_bounded(cmd, out.into(), err.into());
    assert_eq!(o.code, 0, "{}", b.stderr_of("long"));
    assert_code(&runsc(&["start", &id]), 0, "start");
    assert_code(&runsc(&["kill", &id, "KILL"]), 0, "kill");
    let w = runsc(&["wait", &id]);
    assert!(w.stdout_str().contains("137"), "{w:?}");
    assert_code(&runsc(&["delete", &id]), 0, "delete");
    assert!(!root.join(&id).exists());
}

#[test]
fn directory_bind_mounts() {
    // The mount points need not exist, their parents must (see README).
    let b = Bundle::new("bind");
    let rw = b.base.join("vol-rw");
    let ro = b.base.join("vol-ro");
    std::fs::create_dir_all(&rw).unwrap();
    std::fs::create_dir_all(&ro).unwrap();
    std::fs::write(ro.join("data"), "from-host\n").unwrap();
    let (rw_s, ro_s) = (rw.to_string_lossy(), ro.to_string_lossy());
    b.set_script(
        "echo guest > /home/rw/new && cat /home/ro/data; echo x > /home/ro/x || echo ro-refused",
        |c| {
            let mounts = c["mounts"].as_array_mut().unwrap();
            mounts.push(
                serde_json::json!({"destination": "/home/rw", "type": "bind",
                "source": rw_s, "options": ["rbind", "rw"]}),
            );
            mounts.push(
                serde_json::json!({"destination": "/home/ro", "type": "none",
                "source": ro_s, "options": ["bind", "ro"]}),
            );
        },
    );
    let o = b.runsc(&["--overlay=true", "run", "--bundle", &b.dir(), "v1"]);
    assert_code(&o, 0, "run");
    assert_eq!(o.stdout_str(), "from-host\nro-refused\n", "{o:?}");
    assert_eq!(std::fs::read_to_string(rw.join("new")).unwrap(), "guest\n");
    assert!(!ro.join("x").exists());

    // A missing source is named.
    b.set_script("true", |c| {
        c["mounts"].as_array_mut().unwrap().push(serde_json::json!(
            {"destination": "/x", "type": "bind", "source": "/nonexistent-src", "options": ["bind"]}))
    });
    let o = b.runsc(&["run", "--bundle", &b.dir(), "v2"]);
    assert_fails_with(&o, "nonexistent-src", "missing bind source");
    assert!(o.stderr_str().contains("source"), "{o:?}");
}

#[test]
fn exec_pause_and_resume() {
    let b = Bundle::new("exec");
    b.set_script(
        "trap 'echo got-term; exit 0' TERM; echo started; while :; do sleep 1 & wait; done",
        |c| c["process"]["env"] = serde_json::json!(["PATH=/bin", "BASE=1"]),
    );
    assert_eq!(b.create("e1", &[]), 0, "create: {}", b.stderr_of("e1"));
    assert_fails_with(
        &b.runsc(&["exec", "e1", "true"]),
        "created",
        "exec before start",
    );
    assert_code(&b.runsc(&["start", "e1"]), 0, "start");
    b.await_stdout("e1", "started");

    // Args form: the container's environment plus -e, our stdio, the
    // process's exit code.
    let o = b.runsc(&[
        "exec",
        "-e",
        "X=y",
        "--cwd",
        "/tmp",
        "e1",
        "sh",
        "-c",
        "echo $BASE$X; pwd; echo err >&2; exit 4",
    ]);
    assert_eq!(o.code, 4, "{o:?}");
    assert_eq!(o.stdout_str(), "1y\n/tmp\n", "{o:?}");
    assert_eq!(o.stderr_str(), "err\n", "{o:?}");
    let o = b.runsc(&["exec", "e1", "no-such-command"]);
    assert_eq!(o.code, 127, "{o:?}");

    // process.json as containerd writes it, detached: the pid file names
    // a helper that lives as long as the process.
    let process = serde_json::json!({
        "args": ["sh", "-c", "id -u; exec >&- 2>&-; sleep 1"],
        "env": ["PATH=/bin"],
        "cwd": "/",
        "user": {"uid": 1000, "gid": 1000},
        "terminal": false,
    });
    let pfile = b.base.join("process.json");
    std::fs::write(&pfile, process.to_string()).unwrap();
    let pid_file = b.base.join("exec.pid");
    let o = b.runsc(&[
        "exec",
        "--process",
        &pfile.to_string_lossy(),
        "--detach",
        "--pid-file",
        &pid_file.to_string_lossy(),
        "e1",
    ]);
    // Its stdio is what runsc exec was given (read to the end here).
    assert_code(&o, 0, "exec --detach");
    assert_eq!(o.stdout_str(), "1000\n", "{o:?}");
    let helper = std::fs::read_to_string(&pid_file).unwrap();
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", helper.trim())).unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&cmdline).contains("exec-wait"),
        "pid file names {helper}: {cmdline:?}"
    );
    let start = Instant::now();
    while Path::new(&format!("/proc/{}/cmdline", helper.trim())).exists()
        && std::fs::read(format!("/proc/{}/cmdline", helper.trim())).unwrap_or_default() == cmdline
    {
        assert!(
            start.elapsed() < TIMEOUT,
            "the exec-wait helper never ended"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // Paused: no exec, signals wait for resume.
    assert_code(&b.runsc(&["pause", "e1"]), 0, "pause");
    assert_eq!(b.status("e1"), "paused");
    assert_fails_with(
        &b.runsc(&["exec", "e1", "true"]),
        "paused",
        "exec while paused",
    );
    assert_code(&b.runsc(&["kill", "e1", "TERM"]), 0, "kill while paused");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !b.stdout_of("e1").contains("got-term"),
        "a signal got through the pause"
    );
    assert_eq!(b.status("e1"), "paused");
    assert_code(&b.runsc(&["resume", "e1"]), 0, "resume");
    let w = b.runsc(&["wait", "e1"]);
    let w: Value = serde_json::from_slice(&w.stdout).unwrap_or_else(|e| panic!("{e}: {w:?}"));
    assert_eq!(w["exitStatus"], 0, "{w}");
    assert!(b.stdout_of("e1").contains("got-term"));
    assert_code(&b.runsc(&["delete", "e1"]), 0, "delete");
}

/// A cgroup file of the container's cgroup `path`: the memory (or
/// `ctrl`) hierarchy with cgroup v1, the unified one with v2.
fn cg_file(ctrl: &str, path: &str, file: &str) -> PathBuf {
    let root = Path::new("/sys/fs/cgroup");
    let rel = path.trim_start_matches('/');
    if root.join("cgroup.controllers").exists() {
        root.join(rel).join(file)
    } else {
        root.join(ctrl).join(rel).join(file)
    }
}

fn read_trim(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

#[test]
fn cgroup_resources_update_events_and_delete() {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPING: cgroups need root");
        return;
    }
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let b = Bundle::new("cgroup");
    let path = format!("/runsc-oci-test-{}/c1", std::process::id());
    let p2 = path.clone();
    b.set_script(
        "echo started; nproc; grep MemTotal /proc/meminfo; while :; do :; done",
        move |c| {
            c["linux"]["cgroupsPath"] = Value::String(p2);
            c["linux"]["resources"] = serde_json::json!({
                "memory": {"limit": 64 << 20},
                "cpu": {"quota": 50000, "period": 100000},
                "pids": {"limit": 50},
            });
        },
    );
    assert_eq!(b.create("c1", &[]), 0, "create: {}", b.stderr_of("c1"));
    let mem_file = if v2 {
        "memory.max"
    } else {
        "memory.limit_in_bytes"
    };
    assert_eq!(
        read_trim(&cg_file("memory", &path, mem_file)),
        (64u64 << 20).to_string()
    );
    assert_eq!(read_trim(&cg_file("pids", &path, "pids.max")), "164");
    // The sandbox process, its gofer and the stubs are all in it.
    let pid = b.state("c1")["pid"].as_i64().unwrap();
    let procs = read_trim(&cg_file("memory", &path, "cgroup.procs"));
    assert!(
        procs.lines().any(|l| l == pid.to_string()),
        "sandbox {pid} not in {procs}"
    );
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(own.contains(&path), "/proc/{pid}/cgroup: {own}");
    assert_code(&b.runsc(&["start", "c1"]), 0, "start");
    b.await_stdout("c1", "MemTotal");
    // The guest's view: ceil(quota/period) CPUs, the limit as MemTotal.
    let out = b.stdout_of("c1");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[1], "1", "nproc: {out}");
    assert!(lines[2].split_whitespace().nth(1) == Some("65536"), "{out}");
    let procs = read_trim(&cg_file("memory", &path, "cgroup.procs"));
    assert!(procs.lines().count() >= 3, "sentry, gofer, stubs: {procs}");

    // events --stats: runc's JSON.
    let o = b.runsc(&["events", "--stats", "c1"]);
    assert_code(&o, 0, "events --stats");
    let ev: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {o:?}"));
    assert_eq!(ev["type"], "stats");
    assert_eq!(ev["id"], "c1");
    let data = &ev["data"];
    assert!(
        data["memory"]["usage"]["usage"].as_u64().unwrap() > 0,
        "{ev}"
    );
    assert_eq!(data["memory"]["usage"]["limit"], 64u64 << 20, "{ev}");
    assert!(data["pids"]["current"].as_u64().unwrap() >= 3, "{ev}");
    assert_eq!(data["pids"]["limit"], 50, "{ev}");
    assert!(data["cpu"]["usage"]["total"].as_u64().unwrap() > 0, "{ev}");

    // update: flags, and a resources file.
    let o = b.runsc(&[
        "update",
        "--memory",
        "128m",
        "--pids-limit",
        "60",
        "--cpu-quota",
        "20000",
        "c1",
    ]);
    assert_code(&o, 0, "update");
    assert_eq!(
        read_trim(&cg_file("memory", &path, mem_file)),
        (128u64 << 20).to_string()
    );
    assert_eq!(read_trim(&cg_file("pids", &path, "pids.max")), "184");
    let quota = if v2 {
        read_trim(&cg_file("cpu", &path, "cpu.max"))
    } else {
        read_trim(&cg_file("cpu", &path, "cpu.cfs_quota_us"))
    };
    assert!(quota.starts_with("20000"), "{quota}");
    let rfile = b.base.join("resources.json");
    std::fs::write(&rfile, r#"{"memory": {"limit": 104857600}}"#).unwrap();
    assert_code(
        &b.runsc(&["update", "-r", &rfile.to_string_lossy(), "c1"]),
        0,
        "update -r",
    );
    assert_eq!(read_trim(&cg_file("memory", &path, mem_file)), "104857600");
    // The guest's view follows the update.
    let view = |what: &str| {
        let o = b.runsc(&[
            "exec",
            "c1",
            "sh",
            "-c",
            "nproc; grep MemTotal /proc/meminfo | tr -s ' '; \
             cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max",
        ]);
        assert_code(&o, 0, what);
        o.stdout_str()
    };
    assert_eq!(
        view("exec after update"),
        "1\nMemTotal: 102400 kB\n104857600\n60\n100000 100000\n"
    );
    assert_code(
        &b.runsc(&["update", "--cpu-quota", "200000", "--memory", "-1", "c1"]),
        0,
        "update to 2 CPUs",
    );
    let host_cpus = std::thread::available_parallelism().unwrap().get().min(2);
    let v = view("exec after the second update");
    assert!(v.starts_with(&format!("{host_cpus}\n")), "{v}");
    assert!(!v.contains("102400"), "MemTotal is the host's again: {v}");
    assert!(
        v.contains("\nmax\n60\n"),
        "no memory limit in the cgroup view: {v}"
    );
    // Errors name the field.
    std::fs::write(
        &rfile,
        r#"{"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]}"#,
    )
    .unwrap();
    let o = b.runsc(&["update", "-r", &rfile.to_string_lossy(), "c1"]);
    assert_fails_with(&o, "hugepageLimits", "update with hugepageLimits");
    std::fs::write(&rfile, r#"{"memory": {"limit": "lots"}}"#).unwrap();
    let o = b.runsc(&["update", "-r", &rfile.to_string_lossy(), "c1"]);
    assert_fails_with(&o, "memory.limit", "update with a bad limit");
    let o = b.runsc(&["update", "--memory", "12q", "c1"]);
    assert_fails_with(&o, "--memory", "update --memory 12q");

    // pause freezes even a guest that makes no system call.
    assert_code(&b.runsc(&["pause", "c1"]), 0, "pause");
    if !v2 {
        assert_eq!(
            read_trim(&cg_file("freezer", &path, "freezer.state")),
            "FROZEN"
        );
    }
    assert_eq!(b.status("c1"), "paused");
    assert_code(&b.runsc(&["resume", "c1"]), 0, "resume");
    assert_eq!(b.status("c1"), "running");

    // delete removes the cgroup (every hierarchy's directory).
    assert_code(&b.runsc(&["delete", "--force", "c1"]), 0, "delete");
    for ctrl in ["memory", "cpu", "pids", "freezer", "cpuset"] {
        let d = cg_file(ctrl, &path, "");
        assert!(!d.exists(), "{} left after delete", d.display());
    }
    // Our parent directories are ours to clean up.
    for ctrl in [
        "memory", "cpu", "cpuacct", "pids", "freezer", "cpuset", "blkio",
    ] {
        let parent = format!("/runsc-oci-test-{}", std::process::id());
        let _ = std::fs::remove_dir(cg_file(ctrl, &parent, ""));
    }

    // Unsupported resources at create: an error naming the field, and
    // no state or cgroup left.
    b.set_script("true", |c| {
        c["linux"]["resources"] =
            serde_json::json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]});
    });
    assert_eq!(b.create("c2", &[]), 1);
    assert!(
        b.stderr_of("c2").contains("linux.resources.hugepageLimits"),
        "{}",
        b.stderr_of("c2")
    );
}

/// A network namespace of our own with a veth pair (host side
/// 10.235.N.1/24, namespace side 10.235.N.2/24 + a default route), as a
/// CNI plugin or docker would prepare one; removed on drop.
struct NetNsFixture {
    name: String,
    host_if: String,
    host_ip: std::net::Ipv4Addr,
    ns_ip: std::net::Ipv4Addr,
}

impl NetNsFixture {
    fn new(tag: &str) -> Option<NetNsFixture> {
        // SAFETY: geteuid(2) has no preconditions.
        if unsafe { libc::geteuid() } != 0 || !Path::new("/usr/sbin/ip").exists() {
            eprintln!("!!!!!!!! skipping: network namespaces need root and iproute2");
            return None;
        }
        let id = std::process::id();
        let n = (id % 250 + 1) as u8;
        let f = NetNsFixture {
            name: format!("rs{tag}{id}"),
            host_if: format!("rs{tag}{id}h"),
            host_ip: std::net::Ipv4Addr::new(10, 235, n, 1),
            ns_ip: std::net::Ipv4Addr::new(10, 235, n, 2),
        };
        let peer = format!("rs{tag}{id}c");
        let ip = |args: &[&str]| {
            let o = Command::new("ip").args(args).output().unwrap();
            assert!(o.status.success(), "ip {}: {o:?}", args.join(" "));
        };
        ip(&["netns", "add", &f.name]);
        ip(&[
            "link", "add", &f.host_if, "type", "veth", "peer", "name", &peer,
        ]);
        ip(&["link", "set", &peer, "netns", &f.name]);
        ip(&[
            "addr",
            "add",
            &format!("{}/24", f.host_ip),
            "dev",
            &f.host_if,
        ]);
        ip(&["link", "set", &f.host_if, "up"]);
        let inside = |args: &[&str]| {
            let mut a = vec!["netns", "exec", &f.name, "ip"];
            a.extend(args);
            ip(&a);
        };
        inside(&["addr", "add", &format!("{}/24", f.ns_ip), "dev", &peer]);
        inside(&["link", "set", &peer, "up"]);
        inside(&["route", "add", "default", "via", &f.host_ip.to_string()]);
        Some(f)
    }

    fn path(&self) -> String {
        format!("/var/run/netns/{}", self.name)
    }

    /// Adds IPv6: host side fd00:235:N::1/64, namespace side ::2/64 with
    /// a default route (no duplicate address detection, so they are
    /// usable at once). Returns (host, namespace) addresses.
    fn add_ipv6(&self) -> (std::net::Ipv6Addr, std::net::Ipv6Addr) {
        let n = u16::from(self.ns_ip.octets()[2]);
        let host6 = std::net::Ipv6Addr::new(0xfd00, 0x235, n, 0, 0, 0, 0, 1);
        let ns6 = std::net::Ipv6Addr::new(0xfd00, 0x235, n, 0, 0, 0, 0, 2);
        let peer = format!("{}c", &self.host_if[..self.host_if.len() - 1]);
        let ip = |args: &[&str]| {
            let o = Command::new("ip").args(args).output().unwrap();
            assert!(o.status.success(), "ip {}: {o:?}", args.join(" "));
        };
        // IPv6 may be off on the host (and so on a new veth).
        let conf = |ifname: &str| format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6");
        std::fs::write(conf(&self.host_if), "0").unwrap();
        let o = Command::new("ip")
            .args(["netns", "exec", &self.name, "sh", "-c"])
            .arg(format!("echo 0 > {}", conf(&peer)))
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
        let h = format!("{host6}/64");
        ip(&["-6", "addr", "add", &h, "dev", &self.host_if, "nodad"]);
        let a = format!("{ns6}/64");
        let inside = |args: &[&str]| {
            let mut v = vec!["netns", "exec", &self.name, "ip"];
            v.extend(args);
            ip(&v);
        };
        inside(&["-6", "addr", "add", &a, "dev", &peer, "nodad"]);
        inside(&["-6", "route", "add", "default", "via", &host6.to_string()]);
        (host6, ns6)
    }

    /// `ip -4 -br addr` inside the namespace (what the host kernel holds).
    fn host_view(&self) -> String {
        let o = Command::new("ip")
            .args(["netns", "exec", &self.name, "ip", "-4", "-o", "addr"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

impl Drop for NetNsFixture {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// config.json's network namespace path is joined, and at start the
/// sentry's stack takes over its interface: the host's address moves into
/// the sandbox, a server inside answers on it, the guest reaches the host
/// side, and `ip addr` shows it. Without CAP_NET_RAW the start fails and
/// says why, leaving the interface as it was.
#[test]
fn network_namespace_interface_is_taken_over() {
    let Some(ns) = NetNsFixture::new("n") else {
        return;
    };
    let b = Bundle::new("netns");
    let host = std::net::TcpListener::bind((ns.host_ip, 0)).unwrap();
    let host_port = host.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        if let Ok((mut c, _)) = host.accept() {
            let mut buf = [0u8; 256];
            let _ = c.read(&mut buf);
            let _ = c.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhost\n");
        }
    });
    let script = format!(
        "mkdir -p /tmp/www && echo inside > /tmp/www/index.html && \
         ip -4 addr | grep inet; ip route; \
         wget -qO- http://{}:{host_port}/; echo fetched; \
         ping -c 1 -W 5 {} | grep -o '1 packets received' | sed 's/^/host: /'; \
         ping -c 1 -W 5 {} | grep -o '1 packets received' | sed 's/^/self: /'; echo pinged; \
         exec httpd -f -p 8080 -h /tmp/www",
        ns.host_ip, ns.host_ip, ns.ns_ip
    );
    let path = ns.path();
    b.set_script(&script, |c| {
        // busybox ping opens a raw socket.
        grant_caps(c, &["CAP_NET_RAW"]);
        c["linux"]["namespaces"] = serde_json::json!([
            {"type": "pid"}, {"type": "network", "path": path}, {"type": "mount"}
        ]);
        c["root"]["readonly"] = Value::Bool(false);
    });
    assert_eq!(b.create("n1", &[]), 0, "create: {}", b.stderr_of("n1"));
    // Until start, the host keeps the address.
    assert!(ns.host_view().contains(&ns.ns_ip.to_string()));
    assert_code(&b.runsc(&["start", "n1"]), 0, "start");
    b.await_stdout("n1", "fetched");
    let _ = server.join();
    // ICMP echo through the interface: the guest's ping (a raw socket) to
    // the host side and to its own address, and the host's to the guest's
    // address (answered by the sentry's stack).
    b.await_stdout("n1", "pinged");
    let out = b.stdout_of("n1");
    assert!(
        out.contains("host: 1 packets received\nself: 1 packets received\npinged"),
        "{out}"
    );
    let o = Command::new("busybox")
        .args(["ping", "-c", "1", "-W", "5", &ns.ns_ip.to_string()])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("1 packets received"),
        "{o:?}"
    );
    let out = b.stdout_of("n1");
    assert!(
        out.contains(&format!("inet {}/24 brd", ns.ns_ip)) && out.contains("scope global"),
        "{out}"
    );
    assert!(
        out.contains(&format!("default via {}", ns.host_ip)),
        "{out}"
    );
    assert!(out.contains("host\nfetched"), "{out}");
    assert!(
        !ns.host_view().contains(&ns.ns_ip.to_string()),
        "the host still holds the address: {}",
        ns.host_view()
    );
    // From the host to the server in the sandbox.
    let body = http_get_until(ns.ns_ip, "inside\n");
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    assert_code(&b.runsc(&["kill", "n1", "KILL"]), 0, "kill");
    let _ = b.runsc(&["delete", "--force", "n1"]);
    drop(ns);

    // Without CAP_NET_RAW: a clear error at start; the address stays.
    let Some(ns) = NetNsFixture::new("e") else {
        return;
    };
    let path = ns.path();
    b.set_script("echo never", |c| {
        c["linux"]["namespaces"] = serde_json::json!([{"type": "network", "path": path}]);
    });
    let setpriv = |args: &[&str], out: Stdio, err: Stdio| {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--bounding-set", "-net_raw"])
            .arg(runsc_bin())
            .arg("--root")
            .arg(b.state_root())
            .args(args);
        run_bounded(cmd, out, err)
    };
    b.ids.borrow_mut().push("n2".into());
    // The sandbox keeps create's stdio: files, not pipes to drain.
    let out = std::fs::File::create(b.out_path("n2")).unwrap();
    let err = std::fs::File::create(b.err_path("n2")).unwrap();
    let o = setpriv(
        &["create", "--bundle", &b.dir(), "n2"],
        out.into(),
        err.into(),
    );
    assert_eq!(o.code, 0, "create: {}", b.stderr_of("n2"));
    let o = setpriv(&["start", "n2"], Stdio::piped(), Stdio::piped());
    assert_fails_with(&o, "AF_PACKET", "start without CAP_NET_RAW");
    assert!(o.stderr_str().contains("CAP_NET_RAW"), "{o:?}");
    assert!(ns.host_view().contains(&ns.ns_ip.to_string()));
}

/// linux.maskedPaths, linux.readonlyPaths, linux.sysctl and domainname,
/// with runc (Debian's) on the same bundle as the oracle.
#[test]
fn masked_readonly_paths_and_sysctls_match_runc() {
    let b = Bundle::new("mask");
    let rootfs = b.base.join("bundle/rootfs");
    std::fs::write(rootfs.join("etc/secret"), "s3cret\n").unwrap();
    std::fs::create_dir_all(rootfs.join("etc/hidden")).unwrap();
    std::fs::write(rootfs.join("etc/hidden/f0"), "x").unwrap();
    std::fs::create_dir_all(rootfs.join("data")).unwrap();
    std::fs::write(rootfs.join("data/keep"), "kept\n").unwrap();
    b.set_script(
        "cat /etc/secret; echo \"secret:$?\"; ls -A /etc/hidden; echo \"hidden:$?\"; \
         touch /etc/hidden/f 2>/dev/null || echo hidden-ro; \
         echo y > /data/f 2>/dev/null || echo data-ro; cat /data/keep; \
         echo 5 > /proc/sys/net/core/somaxconn 2>/dev/null || echo proc-sys-ro; \
         cat /proc/sys/net/core/somaxconn /proc/sys/kernel/domainname; hostname",
        |c| {
            c["root"]["readonly"] = Value::Bool(false);
            c["hostname"] = "masked".into();
            c["linux"]["maskedPaths"] =
                serde_json::json!(["/etc/secret", "/etc/hidden", "/nonexistent/x"]);
            c["linux"]["readonlyPaths"] = serde_json::json!(["/data", "/proc/sys", "/nope"]);
            c["linux"]["sysctl"] =
                serde_json::json!({"net.core.somaxconn": "321", "kernel.domainname": "example.org"});
        },
    );
    let o = b.runsc(&["run", "--bundle", &b.dir(), "m1"]);
    assert_code(&o, 0, "runsc run");
    let expected =
        "secret:0\nhidden:0\nhidden-ro\ndata-ro\nkept\nproc-sys-ro\n321\nexample.org\nmasked\n";
    assert_eq!(o.stdout_str(), expected, "{o:?}");

    let native = b.runc_run("runc-mask");
    assert_eq!(native.stdout_str(), expected, "runc: {native:?}");
    assert!(!rootfs.join("data/f").exists() && !rootfs.join("etc/hidden/f").exists());

    // The domainname field (Debian's runc leaves it unset).
    b.set_script("cat /proc/sys/kernel/domainname", |c| {
        c["domainname"] = "corp.example".into();
        c["linux"]["sysctl"] = serde_json::json!({});
    });
    let o = b.runsc(&["run", "--bundle", &b.dir(), "m4"]);
    assert_eq!(o.stdout_str(), "corp.example\n", "{o:?}");

    // What the sandbox cannot set is refused by name, before anything runs.
    b.set_script("true", |c| {
        c["linux"]["sysctl"] = serde_json::json!({"kernel.shmmax": "1"});
    });
    let o = b.runsc(&["run", "--bundle", &b.dir(), "m2"]);
    assert_fails_with(
        &o,
        "linux.sysctl.kernel.shmmax: not supported",
        "unknown sysctl",
    );
    b.set_script("true", |c| {
        c["linux"]["sysctl"] = serde_json::json!({"net.ipv4.ip_unprivileged_port_start": "x"});
    });
    let o = b.runsc(&["run", "--bundle", &b.dir(), "m3"]);
    assert_fails_with(&o, "invalid value \"x\"", "bad sysctl value");
}

/// linux.namespaces "user" with uid/gid mappings (docker's userns-remap):
/// the image, owned by the mapped host ids, is root's inside; host ids
/// outside the mappings show as 65534; files made inside get mapped host
/// ids. runc (Debian's) on the same bundle is the oracle.
#[test]
fn user_namespace_mappings_match_runc() {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPING: user namespace mappings need root");
        return;
    }
    let b = Bundle::new("userns");
    let rootfs = b.base.join("bundle/rootfs");
    std::fs::create_dir_all(rootfs.join("data")).unwrap();
    std::fs::write(rootfs.join("data/mine"), "x").unwrap();
    std::fs::write(rootfs.join("data/hosts-root"), "y").unwrap();
    // The whole image belongs to the mapped root, as docker chowns it...
    let chown_tree = Command::new("chown")
        .args(["-R", "-h", "200000:200000"])
        .arg(&rootfs)
        .status()
        .unwrap();
    assert!(chown_tree.success());
    // ...but for one file of the host's root and one of a mapped user.
    std::os::unix::fs::lchown(rootfs.join("data/hosts-root"), Some(0), Some(0)).unwrap();
    std::os::unix::fs::lchown(rootfs.join("data/mine"), Some(201000), Some(201000)).unwrap();
    let script = "id -u; id -g; stat -c '%u:%g %n' / /bin /data/mine /data/hosts-root; \
         echo new > /data/new && chown 1000:1001 /data/new && stat -c '%u:%g %n' /data/new; \
         echo z > /data/hosts-root 2>/dev/null || echo refused; \
         chown 0 /data/hosts-root 2>/dev/null || echo chown-refused";
    b.set_script(script, |c| {
        c["root"]["readonly"] = Value::Bool(false);
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"type": "user"}));
        let map = serde_json::json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
        c["linux"]["uidMappings"] = map.clone();
        c["linux"]["gidMappings"] = map;
        // `runsc spec`'s capabilities, like runc's, lack CAP_CHOWN.
        grant_caps(c, DOCKER_CAPS);
    });
    let owner = |p: &str| {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(rootfs.join(p)).unwrap();
        (m.uid(), m.gid())
    };
    let expected = "0\n0\n0:0 /\n0:0 /bin\n1000:1000 /data/mine\n65534:65534 /data/hosts-root\n\
                    1000:1001 /data/new\nrefused\nchown-refused\n";

    let native = b.runc_run("runc-userns");
    assert_eq!(native.stdout_str(), expected, "runc: {native:?}");
    assert_eq!(owner("data/new"), (201000, 201001), "runc's new file");
    std::fs::remove_file(rootfs.join("data/new")).unwrap();

    // Without the overlay, so the guest's writes reach the image.
    let o = b.runsc(&["--overlay=false", "run", "--bundle", &b.dir(), "u1"]);
    assert_code(&o, 0, "runsc run");
    assert_eq!(o.stdout_str(), expected, "{o:?}");
    assert_eq!(
        owner("data/new"),
        (201000, 201001),
        "the sandbox's new file"
    );
    assert_eq!(owner("data/hosts-root"), (0, 0));

    // The host processes that touch the image (gofers) and run guest
    // code (stubs) are the mapped root, not the host's.
    b.set_script("echo started; sleep 30", |_| {});
    assert_eq!(b.create("u3", &[]), 0, "create: {}", b.stderr_of("u3"));
    assert_code(&b.runsc(&["start", "u3"]), 0, "start");
    b.await_stdout("u3", "started");
    let pid = b.state("u3")["pid"].as_i64().unwrap();
    let children: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| c.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .collect();
    assert!(children.len() >= 2, "gofer and a stub: {children:?}");
    for c in &children {
        let status = std::fs::read_to_string(format!("/proc/{c}/status")).unwrap_or_default();
        let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap_or("");
        assert_eq!(
            uid.split_whitespace().collect::<Vec<_>>(),
            ["Uid:", "200000", "200000", "200000", "200000"],
            "child {c}: {status}"
        );
    }
    assert_code(&b.runsc(&["delete", "--force", "u3"]), 0, "delete");

    // Mappings the kernel would refuse are named.
    b.set_script("true", |c| {
        c["linux"]["uidMappings"] =
            serde_json::json!([{"containerID": 1, "hostID": 200000, "size": 10}]);
    });
    let o = b.runsc(&["run", "--bundle", &b.dir(), "u2"]);
    assert_fails_with(
        &o,
        "linux.uidMappings: container id 0 must be mapped",
        "no root mapping",
    );
}

/// process.capabilities and noNewPrivileges: `runsc spec`'s (like runc's)
/// leave root with AUDIT_WRITE, KILL and NET_BIND_SERVICE only, so chown,
/// mknod and sethostname are refused; runc on the same bundle is the
/// oracle.
#[test]
fn capabilities_match_runc() {
    let b = Bundle::new("caps");
    b.set_script(
        "grep -E '^(Cap|NoNewPrivs)' /proc/self/status; \
         hostname other 2>/dev/null || echo hostname-refused; \
         chown 1 /tmp 2>/dev/null || echo chown-refused; \
         mknod /tmp/n c 1 3 2>/dev/null || echo mknod-refused; \
         kill -0 1 && echo kill-ok",
        |c| {
            c["root"]["readonly"] = Value::Bool(false);
            c["process"]["noNewPrivileges"] = Value::Bool(true);
        },
    );
    let same_as_runc = |id: &str| {
        let native = b.runc_run(&format!("runc-{id}"));
        let o = b.runsc(&["run", "--bundle", &b.dir(), id]);
        assert_code(&o, 0, "runsc run");
        assert_eq!(
            o.stdout_str(),
            native.stdout_str(),
            "runsc: {o:?}\nrunc: {native:?}"
        );
        o.stdout_str()
    };
    let out = same_as_runc("c1");
    assert!(out.contains("CapEff:\t0000000020000420"), "{out}");
    assert!(out.contains("chown-refused"), "{out}");

    // A non-root user keeps only the ambient set through exec: the
    // default one, then none.
    b.set_script("grep -E '^Cap(Prm|Eff)' /proc/self/status", |c| {
        c["process"]["user"] = serde_json::json!({"uid": 1000, "gid": 1000});
    });
    assert!(same_as_runc("c2").contains("CapEff:\t0000000020000420"));
    b.set_script("grep -E '^Cap(Prm|Eff)' /proc/self/status", |c| {
        c["process"]["capabilities"]["ambient"] = serde_json::json!([]);
    });
    assert!(same_as_runc("c3").contains("CapEff:\t0000000000000000"));
}

/// IPv6 on the taken-over interface: the namespace's IPv6 address and
/// default route move into the sandbox (the host side's kernel turns IPv6
/// off there), neighbor discovery runs in the sentry, the guest fetches
/// from the host over IPv6 and pings it, and the host reaches a server in
/// the sandbox on the IPv6 address.
#[test]
fn network_namespace_ipv6_is_taken_over() {
    let Some(ns) = NetNsFixture::new("6") else {
        return;
    };
    let (host6, ns6) = ns.add_ipv6();
    let b = Bundle::new("netns6");
    let host = std::net::TcpListener::bind((host6, 0)).unwrap();
    let host_port = host.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        if let Ok((mut c, _)) = host.accept() {
            let mut buf = [0u8; 256];
            let _ = c.read(&mut buf);
            let _ = c.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 7\r\n\r\nhost v6");
        }
    });
    let script = format!(
        "mkdir -p /tmp/www && echo inside6 > /tmp/www/index.html && \
         ip -6 addr | grep 'inet6 fd00'; ip -6 route | grep default; \
         wget -qO- http://[{host6}]:{host_port}/; echo; echo fetched; \
         ping -c 1 -W 5 {host6} | grep -o '1 packets received'; echo pinged; \
         exec httpd -f -p 8080 -h /tmp/www"
    );
    let path = ns.path();
    b.set_script(&script, |c| {
        // busybox ping opens a raw socket.
        grant_caps(c, &["CAP_NET_RAW"]);
        c["linux"]["namespaces"] = serde_json::json!([
            {"type": "pid"}, {"type": "network", "path": path}, {"type": "mount"}
        ]);
        c["root"]["readonly"] = Value::Bool(false);
    });
    assert_eq!(b.create("v6", &[]), 0, "create: {}", b.stderr_of("v6"));
    assert_code(&b.runsc(&["start", "v6"]), 0, "start");
    b.await_stdout("v6", "pinged");
    let _ = server.join();
    let out = b.stdout_of("v6");
    assert!(
        out.contains(&format!("inet6 {ns6}/64 scope global")),
        "{out}"
    );
    assert!(out.contains(&format!("default via {host6}")), "{out}");
    assert!(out.contains("host v6\nfetched"), "{out}");
    assert!(out.contains("1 packets received\npinged"), "{out}");
    let body = http_get_until(ns6, "inside6\n");
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    assert_code(&b.runsc(&["kill", "v6", "KILL"]), 0, "kill");
    let _ = b.runsc(&["delete", "--force", "v6"]);
}
