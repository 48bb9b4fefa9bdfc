//! Helpers for integration tests: run a command natively and in the sandbox
//! (`runsc do`) under the same clean environment, with a timeout, and compare.

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The PATH the sandbox gives its command by default (see `runsc do`).
pub const SANDBOX_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The HOME the sandbox gives its command by default.
pub const SANDBOX_HOME: &str = "/root";
/// How long one run may take before it is killed and the test fails.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// What a finished run produced.
#[derive(Clone, PartialEq, Eq)]
pub struct Outcome {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Shell-style exit code: the exit status, or 128+N for a death by
    /// signal N.
    pub code: i32,
}

impl Outcome {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "exit code: {}", self.code)?;
        writeln!(f, "--- stdout ---")?;
        writeln!(f, "{}", String::from_utf8_lossy(&self.stdout))?;
        writeln!(f, "--- stderr ---")?;
        write!(f, "{}", String::from_utf8_lossy(&self.stderr))
    }
}

/// A command to run, natively or in the sandbox, with the same inputs.
#[derive(Clone, Debug)]
pub struct Spec {
    pub args: Vec<String>,
    pub stdin: Option<Vec<u8>>,
    /// Extra environment variables (`-e K=V` for the sandbox).
    pub env: Vec<(String, String)>,
    /// Working directory; `None` means "/" (the sandbox's default).
    pub cwd: Option<String>,
    pub timeout: Duration,
    /// Extra `runsc` flags before `do` (sandbox runs only), e.g. `--strace`.
    pub runsc_flags: Vec<String>,
    pub do_flags: Vec<String>,
    /// Extra environment for the `runsc` process itself (sandbox runs only),
    /// e.g. `RUNSC_LOG`.
    pub runsc_env: Vec<(String, String)>,
}

impl Spec {
    pub fn new<S: AsRef<str>>(args: &[S]) -> Spec {
        Spec {
            args: args.iter().map(|a| a.as_ref().to_string()).collect(),
            stdin: None,
            env: Vec::new(),
            cwd: None,
            timeout: DEFAULT_TIMEOUT,
            runsc_flags: Vec::new(),
            do_flags: Vec::new(),
            runsc_env: Vec::new(),
        }
    }
    pub fn stdin(mut self, data: &[u8]) -> Spec {
        self.stdin = Some(data.to_vec());
        self
    }
    pub fn env(mut self, k: &str, v: &str) -> Spec {
        self.env.push((k.to_string(), v.to_string()));
        self
    }
    pub fn cwd(mut self, dir: &str) -> Spec {
        self.cwd = Some(dir.to_string());
        self
    }
    pub fn timeout(mut self, t: Duration) -> Spec {
        self.timeout = t;
        self
    }
    pub fn runsc_flag(mut self, flag: &str) -> Spec {
        self.runsc_flags.push(flag.to_string());
        self
    }
    /// A flag of `runsc do` itself (after `do`, e.g. `--overlay=false`).
    pub fn do_flag(mut self, flag: &str) -> Spec {
        self.do_flags.push(flag.to_string());
        self
    }
    pub fn runsc_env(mut self, k: &str, v: &str) -> Spec {
        self.runsc_env.push((k.to_string(), v.to_string()));
        self
    }

    /// Runs the command directly on the host, with the environment the
    /// sandbox would give it.
    pub fn run_native(&self) -> Outcome {
        let mut cmd = Command::new(&self.args[0]);
        cmd.args(&self.args[1..])
            .env_clear()
            .env("PATH", SANDBOX_PATH)
            .env("HOME", SANDBOX_HOME)
            .current_dir(self.cwd.as_deref().unwrap_or("/"));
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        run_with_timeout(cmd, self.stdin.as_deref(), self.timeout, "native")
    }

    /// Runs the command with `runsc do`.
    pub fn run_sandbox(&self) -> Outcome {
        let mut cmd = Command::new(runsc_bin());
        cmd.args(&self.runsc_flags).arg("do").args(&self.do_flags);
        if let Some(cwd) = &self.cwd {
            cmd.args(["--cwd", cwd]);
        }
        for (k, v) in &self.env {
            cmd.arg("-e").arg(format!("{k}={v}"));
        }
        cmd.arg("--").args(&self.args);
        // `runsc do` passes the host's TERM through; the native run has a
        // clean environment without it, so keep them identical.
        cmd.env_remove("TERM");
        for (k, v) in &self.runsc_env {
            cmd.env(k, v);
        }
        run_with_timeout(cmd, self.stdin.as_deref(), self.timeout, "sandbox")
    }
}

/// Runs `args` natively (clean environment, cwd "/"), with optional stdin.
pub fn run_native<S: AsRef<str>>(args: &[S], stdin: Option<&[u8]>) -> Outcome {
    let mut s = Spec::new(args);
    s.stdin = stdin.map(<[u8]>::to_vec);
    s.run_native()
}

/// Runs `args` with `runsc do`, with optional stdin.
pub fn run_sandbox<S: AsRef<str>>(args: &[S], stdin: Option<&[u8]>) -> Outcome {
    let mut s = Spec::new(args);
    s.stdin = stdin.map(<[u8]>::to_vec);
    s.run_sandbox()
}

/// Shorthand for `["/bin/sh", "-c", script]`.
pub fn sh(script: &str) -> Spec {
    Spec::new(&["/bin/sh", "-c", script])
}

/// Shorthand for `["/usr/bin/python3", "-c", code]` (the system Python, by
/// absolute path so both runs use the same interpreter). `code` is dedented,
/// so it can be written indented inside a Rust string.
pub fn py(code: &str) -> Spec {
    Spec::new(&["/usr/bin/python3", "-c", &dedent(code)])
}

/// Removes the common leading whitespace of the non-blank lines of `s`
/// (like Python's `textwrap.dedent`).
pub fn dedent(s: &str) -> String {
    let indent = s
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    s.lines()
        .map(|l| l.get(indent..).unwrap_or("").trim_end())
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Runs `args` natively and in the sandbox and asserts identical stdout and
/// exit code. Returns the sandbox outcome.
pub fn assert_same<S: AsRef<str>>(args: &[S]) -> Outcome {
    assert_same_spec(&Spec::new(args))
}

/// [`assert_same`] for a full [`Spec`].
pub fn assert_same_spec(spec: &Spec) -> Outcome {
    let (native, sandbox) = run_both(spec);
    if native.stdout != sandbox.stdout || native.code != sandbox.code {
        panic!(
            "native and sandbox runs differ for {:?}\n\
             ====== native ======\n{native:?}\n====== sandbox ======\n{sandbox:?}",
            spec.args
        );
    }
    sandbox
}

/// Runs `spec` natively and in the sandbox, concurrently.
pub fn run_both(spec: &Spec) -> (Outcome, Outcome) {
    std::thread::scope(|s| {
        let n = s.spawn(|| spec.run_native());
        let sb = spec.run_sandbox();
        let n = n.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        (n, sb)
    })
}

/// Asserts the outcome has the exit code `code`, printing it all otherwise.
pub fn assert_code(o: &Outcome, code: i32, what: &str) {
    assert_eq!(o.code, code, "{what}: unexpected exit code\n{o:?}");
}

/// `s` without ANSI colour escapes (`ESC [ ... letter`), for matching logs.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\x1b' && it.peek() == Some(&'[') {
            it.next();
            for c in it.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The workspace root: the parent of this crate's directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests crate has a parent directory")
        .to_path_buf()
}

/// The `runsc` binary: `$RUNSC_BIN`, else `<workspace>/target/release/runsc`
/// (or under `$CARGO_TARGET_DIR`), built with `cargo build --release -p
/// runsc-cli` if missing. Found (or built) once per test process: parallel
/// tests wait for the one build, and a failure is not retried.
pub fn runsc_bin() -> &'static Path {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BIN.get_or_init(find_or_build_runsc) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

fn find_or_build_runsc() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("RUNSC_BIN") {
        let p = PathBuf::from(p);
        if !p.exists() {
            return Err(format!("RUNSC_BIN={} does not exist", p.display()));
        }
        return Ok(p);
    }
    let root = workspace_root();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| if t.is_absolute() { t } else { root.join(t) })
        .unwrap_or_else(|| root.join("target"));
    let bin = target.join("release").join("runsc");
    if bin.exists() {
        return Ok(bin);
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!(
        "{} missing: running cargo build --release -p runsc-cli",
        bin.display()
    );
    let st = Command::new(cargo)
        .args(["build", "--release", "-p", "runsc-cli"])
        .current_dir(&root)
        .status()
        .map_err(|e| format!("running cargo build for runsc: {e}"))?;
    if !st.success() {
        return Err(format!("cargo build --release -p runsc-cli failed: {st}"));
    }
    if !bin.exists() {
        return Err(format!("{} missing after the build", bin.display()));
    }
    Ok(bin)
}

fn reader<R: Read + Send + 'static>(
    mut r: R,
    buf: Arc<Mutex<Vec<u8>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        loop {
            match r.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => buf.lock().unwrap().extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    })
}

fn kill_group(child: &mut Child) {
    // The child leads its own process group: take down it and everything it
    // started (background jobs, the gofer, stubs).
    // SAFETY: plain kill(2) on a process group we created.
    unsafe {
        libc_kill(-(child.id() as i32), 9);
    }
    let _ = child.kill();
    let _ = child.wait();
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// Stops a daemon the test started (dockerd, containerd): SIGTERM, SIGKILL
/// after 20 s, then up to 10 s for the processes `leftovers` lists to go.
/// Returns those still there.
pub fn stop_daemon<T>(child: &mut Child, leftovers: impl Fn() -> Vec<T>) -> Vec<T> {
    // SAFETY: kill(2) of a child we started and have not reaped.
    unsafe {
        libc_kill(child.id() as i32, 15);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = leftovers();
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `cmd` (stdout and stderr captured, `stdin` fed by a thread of its
/// own) in a process group of its own, killing the group and panicking with
/// the partial output past `timeout`.
pub fn run_bounded(cmd: Command, stdin: Option<&[u8]>, timeout: Duration) -> Outcome {
    run_with_timeout(cmd, stdin, timeout, "bounded")
}

/// Spawns `cmd` in its own process group with piped stdio, feeds `stdin`,
/// and collects output; panics (after killing the group) past `timeout`.
fn run_with_timeout(
    mut cmd: Command,
    stdin: Option<&[u8]>,
    timeout: Duration,
    what: &str,
) -> Outcome {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .process_group(0);
    let desc = format!("{what} run of {cmd:?}");
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{desc}: spawn failed: {e}"));
    let out = Arc::new(Mutex::new(Vec::new()));
    let err = Arc::new(Mutex::new(Vec::new()));
    let readers = [
        reader(child.stdout.take().unwrap(), out.clone()),
        reader(child.stderr.take().unwrap(), err.clone()),
    ];
    if let Some(data) = stdin {
        let mut w = child.stdin.take().unwrap();
        let data = data.to_vec();
        // A writer thread, so a child that does not read cannot block us;
        // EPIPE is fine.
        std::thread::spawn(move || {
            let _ = w.write_all(&data);
        });
    }
    let timed_out = |child: &mut Child, phase: &str| -> ! {
        kill_group(child);
        let o = Outcome {
            stdout: out.lock().unwrap().clone(),
            stderr: err.lock().unwrap().clone(),
            code: -1,
        };
        panic!("{desc}: TIMED OUT after {timeout:?} ({phase}); killed. Partial output:\n{o:?}");
    };
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) => {}
            Err(e) => panic!("{desc}: wait failed: {e}"),
        }
        if start.elapsed() > timeout {
            timed_out(&mut child, "still running");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    // The process exited; its output pipes close once everything that
    // inherited them (e.g. background jobs) is gone too.
    for r in &readers {
        while !r.is_finished() {
            if start.elapsed() > timeout {
                timed_out(&mut child, "exited, but its output pipes stayed open");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let code = match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        _ => panic!("{desc}: odd exit status {status:?}"),
    };
    let stdout = std::mem::take(&mut *out.lock().unwrap());
    let stderr = std::mem::take(&mut *err.lock().unwrap());
    Outcome {
        stdout,
        stderr,
        code,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_exit_codes() {
        assert_eq!(sh("exit 3").run_native().code, 3);
        assert_eq!(sh("kill -9 $$").run_native().code, 137);
        let o = Spec::new(&["cat"]).stdin(b"xyz").run_native();
        assert_eq!((o.code, o.stdout.as_slice()), (0, &b"xyz"[..]));
    }

    #[test]
    #[should_panic(expected = "TIMED OUT")]
    fn timeout_kills_and_fails() {
        sh("sleep 30")
            .timeout(Duration::from_millis(300))
            .run_native();
    }

    #[test]
    #[should_panic(expected = "output pipes stayed open")]
    fn timeout_covers_leftover_background_jobs() {
        sh("sleep 30 & echo started")
            .timeout(Duration::from_millis(300))
            .run_native();
    }

    #[test]
    fn strip_ansi_removes_colours() {
        assert_eq!(
            strip_ansi("\x1b[3msig\x1b[0m\x1b[2m=\x1b[0m11 x"),
            "sig=11 x"
        );
    }

    #[test]
    fn dedent_strips_common_indent() {
        assert_eq!(dedent("\n    a\n      b\n    c\n  "), "\na\n  b\nc\n\n");
    }
}
