//! The OCI runtime commands. A container is one sandbox process (`runsc
//! boot`, started detached by `create`) whose sentry holds PID 1 loaded but
//! stopped until `start`; its host pid is the container's pid, and it exits
//! with the container's exit status. Every state change goes through the
//! state directory (`state.rs`) and the sandbox's control socket
//! (`control.rs`). The sandbox's host processes live in a cgroup of their
//! own (`cgroup.rs`), joined before the sandbox process starts anything:
//! it carries the resource limits, freezes for pause, and feeds
//! `events --stats`.

use super::cgroup::{self, Cgroup};
use super::control::{self, Request};
use super::spec::{self, Container, Hook};
use super::state::{self, ContainerDir, ExitInfo, State, Status};
use super::GlobalOpts;
use anyhow::{bail, Context};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long start/kill/ps wait for the sandbox to answer.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(30);

/// `create` flags.
#[derive(Clone, Debug, Default)]
pub struct CreateOpts {
    pub bundle: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
}

/// Where the container's terminal comes from when process.terminal is set.
enum Terminal {
    /// A new pty whose master goes to the console socket.
    ConsoleSocket(PathBuf),
    /// `run` in the foreground: the caller's own stdio.
    Inherit,
}

fn bundle_dir(b: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match b {
        Some(b) => Ok(b.clone()),
        None => std::env::current_dir().context("finding the current directory"),
    }
}

/// `runsc create`: the sandbox is ready and PID 1 loaded, not running.
pub fn create(g: &GlobalOpts, id: &str, o: &CreateOpts) -> anyhow::Result<()> {
    let terminal = o.console_socket.clone().map(Terminal::ConsoleSocket);
    create_sandbox(g, id, o, terminal).map(|_| ())
}

fn create_sandbox(
    g: &GlobalOpts,
    id: &str,
    o: &CreateOpts,
    terminal: Option<Terminal>,
) -> anyhow::Result<Child> {
    g.check()?;
    let dir = ContainerDir::new(&g.root, id)?;
    let c = spec::load(&bundle_dir(&o.bundle)?)?;
    if c.terminal && terminal.is_none() {
        bail!("cannot allocate tty if runsc will detach without setting console socket");
    }
    if !c.terminal && matches!(terminal, Some(Terminal::ConsoleSocket(_))) {
        bail!("cannot use console socket if runsc will not detach or allocate tty");
    }
    std::fs::create_dir_all(&g.root)
        .with_context(|| format!("creating the state root {}", g.root.display()))?;
    // Only root reaches the control socket inside.
    match std::fs::DirBuilder::new().mode(0o700).create(&dir.path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            bail!("container with id exists: {id}")
        }
        Err(e) => {
            return Err(e).with_context(|| format!("creating {}", dir.path.display()));
        }
    }
    let mut child: Option<Child> = None;
    let mut cg: Option<Cgroup> = None;
    let r = spawn_and_record(g, &dir, &c, o, terminal, &mut child, &mut cg);
    match (r, child) {
        (Ok(()), Some(ch)) => Ok(ch),
        (r, child) => {
            if let Some(mut ch) = child {
                let _ = ch.kill();
                let _ = ch.wait();
            }
            if let Some(cg) = cg {
                cg.kill_all();
                let _ = cg.destroy();
            }
            let _ = std::fs::remove_dir_all(&dir.path);
            Err(r
                .err()
                .unwrap_or_else(|| anyhow::anyhow!("the sandbox process did not start")))
        }
    }
}

/// The sandbox's cgroup: `linux.cgroupsPath` (default `/runsc/<id>`) with
/// `linux.resources`. Without limits asked for, a host where cgroups
/// cannot be made (not root, no cgroupfs) gets a warning and no cgroup.
fn setup_cgroup(id: &str, c: &Container) -> anyhow::Result<Option<Cgroup>> {
    let path = c
        .cgroups_path
        .clone()
        .unwrap_or_else(|| format!("/runsc/{id}"));
    let wanted = c.resources.as_ref().is_some_and(cgroup::requested);
    // SAFETY: geteuid(2) has no preconditions.
    let is_root = unsafe { libc::geteuid() } == 0;
    if !is_root && !wanted {
        tracing::warn!("not root: the sandbox runs without a cgroup of its own");
        return Ok(None);
    }
    let res = if wanted { c.resources.as_ref() } else { None };
    match Cgroup::create(Path::new(cgroup::ROOT), &path, res) {
        Ok(cg) => Ok(Some(cg)),
        Err(e) if !wanted => {
            tracing::warn!("cgroup {path}: {e:#}; the sandbox runs without a cgroup of its own");
            Ok(None)
        }
        Err(e) => Err(e.context(format!("linux.cgroupsPath {path}"))),
    }
}

fn spawn_and_record(
    g: &GlobalOpts,
    dir: &ContainerDir,
    c: &Container,
    o: &CreateOpts,
    terminal: Option<Terminal>,
    child_out: &mut Option<Child>,
    cg_out: &mut Option<Cgroup>,
) -> anyhow::Result<()> {
    *cg_out = setup_cgroup(&dir.id, c)?;
    // The sandbox process joins its cgroup before it starts anything, so
    // its gofers and stub processes are born in it.
    let procs = match cg_out {
        Some(cg) => cg.open_procs()?,
        None => Vec::new(),
    };
    let procs_fds: Vec<i32> = procs.iter().map(|f| f.as_raw_fd()).collect();
    let (sync_r, sync_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("creating the sync pipe")?;
    let exe = std::env::current_exe().context("finding our own executable")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(g.to_args())
        .arg("boot")
        .arg("--bundle")
        .arg(&c.bundle)
        .args(["--sync-fd", "3"])
        .arg(&dir.id);
    let mut pty_slave: Option<OwnedFd> = None;
    if let Some(Terminal::ConsoleSocket(sock)) = &terminal {
        let pty = nix::pty::openpty(None, None).context("allocating a pty")?;
        send_console(sock, &pty.master)?;
        let dup = || pty.slave.try_clone().context("duplicating the pty");
        cmd.stdin(dup()?).stdout(dup()?).stderr(dup()?);
        pty_slave = Some(pty.slave);
    }
    let sync_fd = sync_w.as_raw_fd();
    let set_ctty = pty_slave.is_some();
    // SAFETY: between fork and exec only async-signal-safe calls on fds we
    // own: joining the cgroup (write "0": this process), a new session (so
    // the container is not in our terminal's), the pty as controlling
    // terminal, the sync pipe at fd 3.
    unsafe {
        cmd.pre_exec(move || {
            for fd in &procs_fds {
                if libc::write(*fd, b"0".as_ptr().cast(), 1) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if set_ctty {
                libc::ioctl(0, libc::TIOCSCTTY, 0);
            }
            if libc::dup2(sync_fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().context("starting the sandbox process")?;
    let pid = child.id() as i32;
    *child_out = Some(child);
    drop(procs);
    drop(sync_w);
    drop(pty_slave);
    let mut msg = String::new();
    std::fs::File::from(sync_r)
        .read_to_string(&mut msg)
        .context("reading the sandbox's report")?;
    let report: SyncReport = match serde_json::from_str(msg.trim()) {
        Ok(r) => r,
        Err(_) => {
            let status = child_out.as_mut().and_then(|c| c.wait().ok());
            bail!(
                "the sandbox process exited before it was ready{}",
                status.map(|s| format!(" ({s})")).unwrap_or_default()
            );
        }
    };
    if let Some(e) = report.error {
        bail!("{e}");
    }
    let st = State {
        id: dir.id.clone(),
        pid,
        pid_start_time: state::process_start_time(pid)?,
        bundle: c.bundle.clone(),
        rootfs: c.rootfs.clone(),
        created: state::now_rfc3339(),
        status: Status::Created,
        annotations: c.annotations.clone(),
        network: g.network.clone(),
        pending_signals: Vec::new(),
        cgroup: cg_out.clone(),
    };
    dir.save(&st)?;
    run_hooks(
        &c.hooks.create_runtime,
        &dir.oci_state(&st),
        "createRuntime",
    )?;
    if let Some(p) = &o.pid_file {
        state::write_atomic(p, pid.to_string().as_bytes())
            .with_context(|| format!("--pid-file {}", p.display()))?;
    }
    Ok(())
}

/// Hands the pty master to the console socket, as runc does: the pty's
/// name as data, the fd as SCM_RIGHTS.
fn send_console(sock: &Path, master: &OwnedFd) -> anyhow::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let stream = std::os::unix::net::UnixStream::connect(sock)
        .with_context(|| format!("--console-socket {}", sock.display()))?;
    let name = nix::unistd::ttyname(master)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "/dev/ptmx".into());
    let fds = [master.as_raw_fd()];
    let iov = [std::io::IoSlice::new(name.as_bytes())];
    sendmsg::<()>(
        stream.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .with_context(|| format!("sending the pty to {}", sock.display()))?;
    Ok(())
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct SyncReport {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// `runsc boot` (internal): the sandbox process of one container. Reports
/// readiness (or why not) on `sync_fd`, serves the control socket, and
/// exits with PID 1's exit code.
pub fn boot(g: &GlobalOpts, id: &str, bundle: &Path, sync_fd: i32) -> anyhow::Result<i32> {
    // SAFETY: the sync fd was set up for us by `create` and is ours alone.
    let sync = unsafe { OwnedFd::from_raw_fd(sync_fd) };
    // Not for the gofer or anything else we start.
    nix::fcntl::fcntl(
        sync.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .context("--sync-fd")?;
    let mut sync = std::fs::File::from(sync);
    let dir = ContainerDir::new(&g.root, id)?;
    let prepared = (|| -> anyhow::Result<Arc<sentry::Sandbox>> {
        let c = spec::load(bundle)?;
        // First, on this (the only) thread: see `netns`.
        let take_interfaces = super::netns::enter(&c.netns, g.network_mode())?;
        for m in &c.ignored_mounts {
            tracing::warn!(
                "mount at {m}: bind mounts of sockets and devices are not supported; ignored"
            );
        }
        let mut file_mounts = Vec::new();
        for (dest, src, ro) in &c.file_mounts {
            file_mounts.push(read_file_mount(dest, src, *ro, c.userns.as_ref())?);
        }
        let mut gofer_mounts = Vec::new();
        for (dest, src, ro) in &c.bind_mounts {
            gofer_mounts.push(sentry::boot::GoferMount {
                dest: dest.clone(),
                gofer: crate::gofer_process::spawn_gofer_in(src, !ro, false, c.userns.as_ref())
                    .with_context(|| format!("bind mount {}", src.display()))?,
                readonly: *ro,
            });
        }
        let readonly = c.root_readonly;
        let overlay = g.overlay && !readonly;
        let gofer = crate::gofer_process::spawn_gofer_in(
            &c.rootfs,
            !overlay && !readonly,
            false,
            c.userns.as_ref(),
        )?;
        let sandbox = sentry::prepare(sentry::BootConfig {
            argv: c.args.clone(),
            env: c.env.clone(),
            cwd: c.cwd.clone(),
            strace: g.strace,
            gofer,
            overlay,
            private_tmp: false,
            root_readonly: readonly,
            gofer_mounts,
            hostname: c.hostname.clone(),
            user: c.user.clone(),
            rlimits: c.rlimits.clone(),
            tmpfs_mounts: c.tmpfs_mounts.clone(),
            network: g.network_mode(),
            take_interfaces,
            file_mounts,
            cpus: c.guest_cpus(),
            memory_limit: c.memory_limit(),
            pids_limit: c.pids_limit(),
            domainname: c.domainname.clone(),
            sysctls: c.sysctls.clone(),
            masked_paths: c.masked_paths.clone(),
            readonly_paths: c.readonly_paths.clone(),
            stub_user_namespace: c.userns.as_ref().map(|m| m.map_texts()),
            terminal: c.terminal,
        })?;
        Ok(Arc::new(sandbox))
    })();
    let exit = Arc::new(control::ExitNotice::default());
    let served = prepared.and_then(|s| {
        control::serve(&dir.control_socket(), s.clone(), exit.clone())?;
        Ok(s)
    });
    let sandbox = match served {
        Ok(s) => {
            let _ = writeln!(sync, "{}", serde_json::to_string(&SyncReport::default())?);
            drop(sync);
            s
        }
        Err(e) => {
            let r = SyncReport {
                error: Some(format!("{e:#}")),
            };
            let _ = writeln!(sync, "{}", serde_json::to_string(&r)?);
            return Ok(1);
        }
    };
    let code = sandbox.wait();
    if let Err(e) = dir.save_exit_info(ExitInfo { code }) {
        tracing::warn!("recording the exit status: {e:#}");
    }
    exit.set(code);
    // Answer the requests already taken (a kill that ended PID 1, the
    // waiters) before going; a client cut short reads exit.json.
    exit.drain(Duration::from_secs(2));
    Ok(code)
}

/// Bind-mounted files are copied into the sandbox at boot; bigger ones
/// than this are refused rather than held in memory.
const MAX_FILE_MOUNT: u64 = 16 << 20;

/// Reads a bind-mounted file for the sandbox's private copy (docker's
/// /etc/hosts, /etc/resolv.conf, /etc/hostname: small files docker writes
/// before the container starts). The guest's writes stay in the sandbox.
fn read_file_mount(
    dest: &str,
    src: &Path,
    readonly: bool,
    userns: Option<&crate::userns::IdMaps>,
) -> anyhow::Result<sentry::boot::FileMount> {
    use std::os::unix::fs::MetadataExt;
    let ctx = || format!("bind mount of {} at {dest}", src.display());
    let f = std::fs::File::open(src).with_context(ctx)?;
    let meta = f.metadata().with_context(ctx)?;
    if meta.len() > MAX_FILE_MOUNT {
        bail!(
            "{}: {} bytes; bind mounts of files above {MAX_FILE_MOUNT} bytes are not supported",
            ctx(),
            meta.len()
        );
    }
    let mut data = Vec::new();
    f.take(MAX_FILE_MOUNT)
        .read_to_end(&mut data)
        .with_context(ctx)?;
    Ok(sentry::boot::FileMount {
        dest: dest.to_string(),
        data,
        mode: meta.mode() & 0o7777,
        uid: userns.map_or(meta.uid(), |m| m.to_container_uid(meta.uid())),
        gid: userns.map_or(meta.gid(), |m| m.to_container_gid(meta.gid())),
        readonly,
    })
}

fn load(g: &GlobalOpts, id: &str) -> anyhow::Result<(ContainerDir, State)> {
    let dir = ContainerDir::new(&g.root, id)?;
    let st = dir.load()?;
    Ok((dir, st))
}

/// `runsc start`: lets a created container's PID 1 run.
pub fn start(g: &GlobalOpts, id: &str) -> anyhow::Result<()> {
    let dir = ContainerDir::new(&g.root, id)?;
    let _lock = dir.lock();
    let mut st = dir.load()?;
    match dir.status(&st) {
        Status::Created => {}
        Status::Running | Status::Paused => bail!("cannot start an already running container"),
        Status::Stopped => bail!("cannot start a container that has stopped"),
    }
    control::call(
        &dir.control_socket(),
        &Request::Start,
        Some(CONTROL_TIMEOUT),
    )
    .context("starting the container")?;
    st.status = Status::Running;
    dir.save(&st)?;
    if let Ok(c) = spec::load(&st.bundle) {
        if let Err(e) = run_hooks(&c.hooks.poststart, &dir.oci_state(&st), "poststart") {
            tracing::warn!("{e:#}");
        }
    }
    Ok(())
}

/// `runsc state`: the OCI state JSON.
pub fn state(g: &GlobalOpts, id: &str) -> anyhow::Result<()> {
    let (dir, st) = load(g, id)?;
    println!("{}", serde_json::to_string_pretty(&dir.oci_state(&st))?);
    Ok(())
}

/// `runsc kill`: a signal to PID 1 (or every process with `all`).
pub fn kill(g: &GlobalOpts, id: &str, signal: &str, all: bool) -> anyhow::Result<()> {
    let sig = super::signal::parse(signal)?;
    let (dir, st) = load(g, id)?;
    match dir.status(&st) {
        Status::Stopped => bail!("container not running"),
        // A stopped sandbox cannot take a signal: SIGKILL ends it from
        // the host, others wait for `resume`.
        Status::Paused if sig == libc::SIGKILL => {
            kill_sandbox(&st);
            return Ok(());
        }
        Status::Paused => {
            let _lock = dir.lock();
            let mut st = dir.load()?;
            if dir.status(&st) == Status::Paused {
                st.pending_signals
                    .push(state::PendingSignal { signal: sig, all });
                dir.save(&st)?;
                return Ok(());
            }
        }
        Status::Created | Status::Running => {}
    }
    let r = control::call(
        &dir.control_socket(),
        &Request::Signal { signal: sig, all },
        Some(CONTROL_TIMEOUT),
    );
    if let Err(e) = r {
        // The container ended meanwhile (perhaps of this very signal).
        if dir.status(&st) == Status::Stopped {
            return Ok(());
        }
        // A sandbox that cannot answer still dies of SIGKILL.
        if sig == libc::SIGKILL {
            kill_sandbox(&st);
            return Ok(());
        }
        return Err(e.context("signalling the container"));
    }
    Ok(())
}

/// SIGKILLs the sandbox process (its gofer and stubs follow, by their
/// parent-death signal) and waits until it is gone.
fn kill_sandbox(st: &State) {
    if !state::sandbox_alive(st.pid, st.pid_start_time) {
        return;
    }
    // SAFETY: kill(2) of the process we recorded, checked by start time.
    unsafe {
        libc::kill(st.pid, libc::SIGKILL);
    }
    // A frozen sandbox dies once thawed.
    if let Some(cg) = st.cgroup.as_ref().filter(|cg| cg.has_freezer()) {
        let _ = cg.freeze(false);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while state::sandbox_alive(st.pid, st.pid_start_time) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `runsc delete`: removes a stopped (or created) container; `force`
/// kills a running one first. A missing container is fine with `force`.
pub fn delete(g: &GlobalOpts, id: &str, force: bool) -> anyhow::Result<()> {
    let dir = ContainerDir::new(&g.root, id)?;
    let _lock = dir.lock();
    let st = match dir.load() {
        Ok(st) => st,
        Err(e) => {
            if force {
                let _ = std::fs::remove_dir_all(&dir.path);
                return Ok(());
            }
            return Err(e);
        }
    };
    let status = dir.status(&st);
    if matches!(status, Status::Running | Status::Paused) && !force {
        bail!("cannot delete container {id} that is not stopped: container is running");
    }
    kill_sandbox(&st);
    destroy(&dir, &st)
}

/// Removes every trace of a container whose sandbox is gone, after its
/// poststop hooks.
fn destroy(dir: &ContainerDir, st: &State) -> anyhow::Result<()> {
    if let Some(cg) = &st.cgroup {
        // The gofers and stubs die with the sandbox process (parent-death
        // signal); whatever has not yet goes now.
        cg.kill_all();
        if let Err(e) = cg.destroy() {
            tracing::warn!("removing the sandbox's cgroup: {e:#}");
        }
    }
    if let Ok(c) = spec::load(&st.bundle) {
        if let Err(e) = run_hooks(&c.hooks.poststop, &dir.oci_state(st), "poststop") {
            tracing::warn!("{e:#}");
        }
    }
    std::fs::remove_dir_all(&dir.path).with_context(|| format!("removing {}", dir.path.display()))
}

/// `runsc run`: create, start and (unless `detach`) wait, then delete;
/// returns the container's exit code.
pub fn run(g: &GlobalOpts, id: &str, o: &CreateOpts, detach: bool) -> anyhow::Result<i32> {
    let terminal = match (&o.console_socket, detach) {
        (Some(s), _) => Some(Terminal::ConsoleSocket(s.clone())),
        (None, false) => Some(Terminal::Inherit),
        (None, true) => None,
    };
    // Signals to us go to the container, like runc's foreground run.
    let forwarded = forward_signals_setup();
    let mut child = create_sandbox(g, id, o, terminal)?;
    if let Err(e) = start(g, id) {
        let _ = delete(g, id, true);
        return Err(e);
    }
    if detach {
        return Ok(0);
    }
    forward_signals(forwarded, child.id() as i32);
    let status = child.wait().context("waiting for the sandbox")?;
    let code = match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        _ => 1,
    };
    let dir = ContainerDir::new(&g.root, id)?;
    if let Ok(st) = dir.load() {
        destroy(&dir, &st)?;
    }
    Ok(code)
}

const FORWARDED: [i32; 7] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
];

fn forward_signals_setup() -> libc::sigset_t {
    // SAFETY: building a sigset on the stack and blocking it in this
    // (still single-threaded) process; children get a clean mask from
    // std's spawn.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in FORWARDED {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn forward_signals(set: libc::sigset_t, pid: i32) {
    let _ = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || loop {
            let mut sig = 0;
            // SAFETY: sigwait on a valid set; kill(2) of our own child.
            unsafe {
                if libc::sigwait(&set, &mut sig) == 0 {
                    libc::kill(pid, sig);
                }
            }
        });
}

/// `runsc list`.
pub fn list(g: &GlobalOpts, json: bool) -> anyhow::Result<()> {
    let mut states = Vec::new();
    if let Ok(rd) = std::fs::read_dir(&g.root) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(dir) = ContainerDir::new(&g.root, &name) else {
                continue;
            };
            if let Ok(st) = dir.load() {
                states.push(dir.oci_state(&st));
            }
        }
    }
    states.sort_by(|a, b| a.id.cmp(&b.id));
    if json {
        println!("{}", serde_json::to_string(&states)?);
        return Ok(());
    }
    let rows: Vec<[String; 6]> =
        std::iter::once(["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from))
            .chain(states.iter().map(|s| {
                [
                    s.id.clone(),
                    s.pid.to_string(),
                    s.status.to_string(),
                    s.bundle.display().to_string(),
                    s.created.clone(),
                    s.owner.clone(),
                ]
            }))
            .collect();
    print_table(&rows);
    Ok(())
}

fn print_table<const N: usize>(rows: &[[String; N]]) {
    let mut widths = [0usize; N];
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == N {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}   ", w = widths[i]));
            }
        }
        println!("{}", line.trim_end());
    }
}

/// `runsc ps`: the guest's processes (table), or, as JSON, the host pids
/// of the container: the one sandbox process, as gVisor reports it (every
/// guest process lives inside it).
pub fn ps(g: &GlobalOpts, id: &str, json: bool) -> anyhow::Result<()> {
    let (dir, st) = load(g, id)?;
    let status = dir.status(&st);
    if status == Status::Stopped {
        bail!("container not running");
    }
    if json {
        println!("{}", serde_json::to_string(&[st.pid])?);
        return Ok(());
    }
    if status == Status::Paused {
        bail!("container {id} is paused: resume it to list its processes");
    }
    let reply = control::call(&dir.control_socket(), &Request::Ps, Some(CONTROL_TIMEOUT))?;
    let rows: Vec<[String; 4]> = std::iter::once(["UID", "PID", "PPID", "CMD"].map(String::from))
        .chain(reply.processes.unwrap_or_default().into_iter().map(|p| {
            [
                p.uid.to_string(),
                p.pid.to_string(),
                p.ppid.to_string(),
                p.cmd,
            ]
        }))
        .collect();
    print_table(&rows);
    Ok(())
}

/// `runsc wait`: blocks until PID 1 exits and prints
/// `{"id":ID,"exitStatus":CODE}`.
pub fn wait(g: &GlobalOpts, id: &str) -> anyhow::Result<()> {
    let (dir, st) = load(g, id)?;
    let code = match dir.exit_info() {
        Some(e) => e.code,
        None => match control::call(&dir.control_socket(), &Request::Wait, None) {
            Ok(r) => r.exit_code.unwrap_or(-1),
            // Gone without a reply: exit.json (written before the sandbox
            // exits) says how, unless it was killed from outside.
            Err(e) => match dir.exit_info() {
                Some(x) => x.code,
                None if !state::sandbox_alive(st.pid, st.pid_start_time) => -1,
                None => return Err(e),
            },
        },
    };
    println!("{}", serde_json::json!({ "id": id, "exitStatus": code }));
    Ok(())
}

/// `runsc spec`: writes a default config.json into the bundle.
pub fn spec(bundle: &Option<PathBuf>) -> anyhow::Result<()> {
    let dir = bundle_dir(bundle)?;
    let path = dir.join(spec::CONFIG);
    if path.exists() {
        bail!("File {} exists. Remove it first", path.display());
    }
    let text = serde_json::to_string_pretty(&spec::default_spec())?;
    std::fs::write(&path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

/// Runs hooks in order with the state on stdin; the first failure stops.
fn run_hooks(hooks: &[Hook], st: &state::OciState, stage: &str) -> anyhow::Result<()> {
    if hooks.is_empty() {
        return Ok(());
    }
    let input = serde_json::to_vec(st)?;
    for h in hooks {
        let mut cmd = std::process::Command::new(&h.path);
        if let Some((argv0, rest)) = h.args.split_first() {
            cmd.arg0(argv0).args(rest);
        }
        cmd.env_clear();
        for e in &h.env {
            if let Some((k, v)) = e.split_once('=') {
                cmd.env(k, v);
            }
        }
        cmd.stdin(Stdio::piped());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("{stage} hook {}", h.path.display()))?;
        if let Some(mut w) = child.stdin.take() {
            let _ = w.write_all(&input);
        }
        let deadline = h
            .timeout_secs
            .map(|t| Instant::now() + Duration::from_secs(t));
        let status = loop {
            if let Some(s) = child.try_wait()? {
                break s;
            }
            if deadline.is_some_and(|d| Instant::now() > d) {
                let _ = child.kill();
                let _ = child.wait();
                bail!("{stage} hook {}: timed out", h.path.display());
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        if !status.success() {
            bail!("{stage} hook {}: {status}", h.path.display());
        }
    }
    Ok(())
}

/// `runsc list -q`: the ids, one a line.
pub fn list_ids(g: &GlobalOpts) -> anyhow::Result<()> {
    let mut ids: Vec<String> = std::fs::read_dir(&g.root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| ContainerDir::new(&g.root, n).is_ok_and(|d| d.exists()))
        .collect();
    ids.sort();
    for id in ids {
        println!("{id}");
    }
    Ok(())
}

/// `exec` flags (runc's).
#[derive(Clone, Debug, Default)]
pub struct ExecOpts {
    /// A process.json (OCI `process` object) to run instead of `args`.
    pub process: Option<PathBuf>,
    /// Return once started; the pid file's process waits for it.
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub cwd: Option<String>,
    /// Extra K=V over the container's environment.
    pub env: Vec<String>,
    pub tty: bool,
    /// uid[:gid]
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    pub args: Vec<String>,
}

/// What to run and whether in a terminal.
fn exec_process(st: &State, o: &ExecOpts) -> anyhow::Result<(control::ExecProcess, bool)> {
    if let Some(path) = &o.process {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--process {}", path.display()))?;
        let de = &mut serde_json::Deserializer::from_str(&text);
        let p: oci_spec::runtime::Process = serde_path_to_error::deserialize(de).map_err(|e| {
            anyhow::anyhow!("--process {}: {}: {}", path.display(), e.path(), e.inner())
        })?;
        let args = p.args().clone().unwrap_or_default();
        if args.first().is_none_or(|a| a.is_empty()) {
            bail!("--process {}: args: empty (nothing to run)", path.display());
        }
        let env = p.env().clone().unwrap_or_default();
        let cwd = p.cwd().to_string_lossy().into_owned();
        if !cwd.starts_with('/') {
            bail!(
                "--process {}: cwd: must be an absolute path, got {cwd:?}",
                path.display()
            );
        }
        let u = p.user();
        let umask = u.umask().unwrap_or(0o022);
        if umask > 0o777 {
            bail!(
                "--process {}: user.umask: {umask:o} is not a permission mask",
                path.display()
            );
        }
        let proc_ = control::ExecProcess {
            args,
            env,
            cwd,
            uid: u.uid(),
            gid: u.gid(),
            additional_gids: u.additional_gids().clone().unwrap_or_default(),
            umask,
            caps: Some(spec::caps_of(&p).into()),
        };
        return Ok((proc_, p.terminal().unwrap_or(false)));
    }
    if o.args.is_empty() || o.args[0].is_empty() {
        bail!("exec: no command given (give one after the container id, or --process)");
    }
    let base = spec::load(&st.bundle)?;
    let mut env = base.env.clone();
    for e in &o.env {
        let Some((k, _)) = e.split_once('=') else {
            bail!("--env {e}: expected K=V");
        };
        env.retain(|x| x.split_once('=').map(|(xk, _)| xk) != Some(k));
        env.push(e.clone());
    }
    let cwd = o.cwd.clone().unwrap_or(base.cwd.clone());
    if !cwd.starts_with('/') {
        bail!("--cwd {cwd}: must be an absolute path");
    }
    let (uid, gid) = match &o.user {
        None => (base.user.uid, base.user.gid),
        Some(u) => {
            let (a, b) = match u.split_once(':') {
                Some((a, b)) => (a, Some(b)),
                None => (u.as_str(), None),
            };
            let uid: u32 = a
                .parse()
                .with_context(|| format!("--user {u}: expected uid[:gid] (numbers)"))?;
            let gid: u32 = match b {
                Some(b) => b
                    .parse()
                    .with_context(|| format!("--user {u}: expected uid[:gid] (numbers)"))?,
                None => 0,
            };
            (uid, gid)
        }
    };
    let mut additional_gids = if o.user.is_none() {
        base.user.additional_gids.clone()
    } else {
        Vec::new()
    };
    additional_gids.extend(&o.additional_gids);
    Ok((
        control::ExecProcess {
            args: o.args.clone(),
            env,
            cwd,
            uid,
            gid,
            additional_gids,
            umask: base.user.umask,
            caps: base.user.caps.map(Into::into),
        },
        o.tty,
    ))
}

/// `runsc exec`: runs a process in a running container. Its stdio is
/// ours (or a new pty whose master goes to the console socket). Without
/// `detach` we wait and return its exit code; with it, a helper process
/// (`runsc exec-wait`, named by the pid file) waits and exits with it.
pub fn exec(g: &GlobalOpts, id: &str, o: &ExecOpts) -> anyhow::Result<i32> {
    let (dir, st) = load(g, id)?;
    match dir.status(&st) {
        Status::Running => {}
        Status::Created => bail!("cannot exec in a created container: start it first"),
        Status::Stopped => bail!("cannot exec in a stopped container"),
        Status::Paused => bail!("cannot exec in a paused container"),
    }
    let (process, terminal) = exec_process(&st, o)?;
    if terminal && o.console_socket.is_none() && o.detach {
        bail!("cannot allocate tty if runsc will detach without setting console socket");
    }
    if !terminal && o.console_socket.is_some() {
        bail!("cannot use console socket if runsc will not detach or allocate tty");
    }
    // The pty's slave stands for all three when a console socket is given.
    let pty_slave = match (&o.console_socket, terminal) {
        (Some(sock), true) => {
            let pty = nix::pty::openpty(None, None).context("allocating a pty")?;
            send_console(sock, &pty.master)?;
            Some(pty.slave)
        }
        _ => None,
    };
    let stdio: [i32; 3] = match &pty_slave {
        Some(s) => [s.as_raw_fd(); 3],
        None => [0, 1, 2],
    };
    let reply = control::call_with_fds(
        &dir.control_socket(),
        &Request::Exec {
            process,
            stdio: vec![0, 1, 2],
            terminal,
        },
        &stdio,
        Some(CONTROL_TIMEOUT),
    )
    .context("exec")?;
    drop(pty_slave);
    let pid = reply
        .pid
        .context("the sandbox did not say which process it started")?;
    if o.detach {
        let exe = std::env::current_exe().context("finding our own executable")?;
        let mut cmd = std::process::Command::new(exe);
        cmd.args(g.to_args())
            .arg("exec-wait")
            .args(["--pid", &pid.to_string()])
            .arg(id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: setsid(2) between fork and exec, async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        let helper = cmd.spawn().context("starting the exec-wait helper")?;
        if let Some(p) = &o.pid_file {
            state::write_atomic(p, helper.id().to_string().as_bytes())
                .with_context(|| format!("--pid-file {}", p.display()))?;
        }
        return Ok(0);
    }
    if let Some(p) = &o.pid_file {
        state::write_atomic(p, std::process::id().to_string().as_bytes())
            .with_context(|| format!("--pid-file {}", p.display()))?;
    }
    exec_wait(g, id, pid, terminal)
}

/// `runsc exec-wait` (internal): forwards the signals we get to process
/// `pid` of the container and returns its exit code once it has exited
/// (137, as SIGKILL, if the sandbox went away first). `terminal`: the
/// process is on a sandbox pty following our terminal (not forwarding
/// SIGWINCH, which the pty sends on the resize itself).
pub fn exec_wait(g: &GlobalOpts, id: &str, pid: i32, terminal: bool) -> anyhow::Result<i32> {
    let dir = ContainerDir::new(&g.root, id)?;
    let set = forward_signals_setup();
    let sock = dir.control_socket();
    let sock2 = sock.clone();
    let _ = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || loop {
            let mut sig = 0;
            // SAFETY: sigwait on a valid set with a valid out pointer.
            if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                continue;
            }
            // On a terminal, the process's sandbox pty follows our
            // terminal's size and signals its foreground group itself.
            if terminal && sig == libc::SIGWINCH {
                continue;
            }
            let r = control::call(
                &sock2,
                &Request::SignalProcess { pid, signal: sig },
                Some(CONTROL_TIMEOUT),
            );
            if let Err(e) = r {
                tracing::debug!("forwarding signal {sig} to process {pid}: {e:#}");
            }
        });
    match control::call(&sock, &Request::WaitProcess { pid }, None) {
        Ok(r) => Ok(r.exit_code.unwrap_or(128 + libc::SIGKILL)),
        Err(e) => {
            tracing::debug!("waiting for process {pid}: {e:#}");
            Ok(128 + libc::SIGKILL)
        }
    }
}

/// `runsc pause`: freezes the sandbox's cgroup (sentry, gofers and the
/// stubs running guest code, so even a guest thread that never makes a
/// system call stops). Without a freezer, stops the sandbox process
/// (SIGSTOP): a guest thread then gets as far as its next system call or
/// fault. Signals sent meanwhile wait for `resume`; SIGKILL does not.
pub fn pause(g: &GlobalOpts, id: &str) -> anyhow::Result<()> {
    let dir = ContainerDir::new(&g.root, id)?;
    let _lock = dir.lock();
    let mut st = dir.load()?;
    match dir.status(&st) {
        Status::Running => {}
        Status::Paused => bail!("container {id} is already paused"),
        Status::Created | Status::Stopped => bail!("container {id} is not running"),
    }
    if let Some(cg) = st.cgroup.as_ref().filter(|cg| cg.has_freezer()) {
        cg.freeze_wait(CONTROL_TIMEOUT)
            .context("freezing the sandbox")?;
        st.status = Status::Paused;
        return dir.save(&st);
    }
    // SAFETY: kill(2) of the sandbox process, alive and checked by start
    // time in status() just above.
    if unsafe { libc::kill(st.pid, libc::SIGSTOP) } != 0 {
        return Err(std::io::Error::last_os_error()).context("stopping the sandbox process");
    }
    let deadline = Instant::now() + CONTROL_TIMEOUT;
    while !state::all_threads_stopped(st.pid) {
        if Instant::now() > deadline {
            // SAFETY: as above; undo the half-done pause.
            unsafe {
                libc::kill(st.pid, libc::SIGCONT);
            }
            bail!("the sandbox process did not stop");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    st.status = Status::Paused;
    dir.save(&st)
}

/// `runsc resume`: continues a paused sandbox and delivers the signals
/// `kill` held back.
pub fn resume(g: &GlobalOpts, id: &str) -> anyhow::Result<()> {
    let dir = ContainerDir::new(&g.root, id)?;
    let _lock = dir.lock();
    let mut st = dir.load()?;
    if dir.status(&st) != Status::Paused {
        bail!("container {id} is not paused");
    }
    match st.cgroup.as_ref().filter(|cg| cg.has_freezer()) {
        Some(cg) => cg.freeze(false).context("thawing the sandbox")?,
        // SAFETY: kill(2) of the sandbox process, alive and checked above.
        None if unsafe { libc::kill(st.pid, libc::SIGCONT) } != 0 => {
            return Err(std::io::Error::last_os_error()).context("continuing the sandbox process");
        }
        None => {}
    }
    let pending = std::mem::take(&mut st.pending_signals);
    st.status = Status::Running;
    dir.save(&st)?;
    for p in pending {
        let r = control::call(
            &dir.control_socket(),
            &Request::Signal {
                signal: p.signal,
                all: p.all,
            },
            Some(CONTROL_TIMEOUT),
        );
        if let Err(e) = r {
            if dir.status(&st) == Status::Stopped {
                break;
            }
            tracing::warn!("delivering signal {} held while paused: {e:#}", p.signal);
        }
    }
    Ok(())
}

/// `update` flags (runc's): each overrides the same field of
/// `--resources`.
#[derive(Clone, Debug, Default)]
pub struct UpdateOpts {
    /// A JSON file of linux.resources ("-": stdin).
    pub resources: Option<PathBuf>,
    pub memory: Option<String>,
    pub memory_reservation: Option<String>,
    pub memory_swap: Option<String>,
    pub kernel_memory: Option<String>,
    pub cpu_shares: Option<u64>,
    pub cpu_period: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_rt_period: Option<u64>,
    pub cpu_rt_runtime: Option<i64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub pids_limit: Option<i64>,
    pub blkio_weight: Option<u16>,
}

/// A byte count as runc's flags take it: a number with an optional
/// k/m/g/t suffix (powers of 1024, "b"/"kb"/"kib" spellings too), or -1
/// for no limit.
pub fn parse_bytes(flag: &str, v: &str) -> anyhow::Result<i64> {
    let t = v.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(-1);
    }
    let digits = t
        .find(|ch: char| !ch.is_ascii_digit() && ch != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let unit = unit.trim();
    let mul: f64 = match unit.trim_end_matches("ib").trim_end_matches('b') {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => bail!("{flag} {v}: unknown unit {unit:?} (use b, k, m, g or t)"),
    };
    let n: f64 = num
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n >= 0.0)
        .with_context(|| format!("{flag} {v}: expected a size like 64m, or -1"))?;
    let bytes = n * mul;
    if bytes > i64::MAX as f64 {
        bail!("{flag} {v}: too large");
    }
    Ok(bytes as i64)
}

/// The resources `update` asks for: `--resources` overlaid with the flags.
pub fn update_resources(o: &UpdateOpts) -> anyhow::Result<oci_spec::runtime::LinuxResources> {
    use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};
    let mut r = match &o.resources {
        None => LinuxResources::default(),
        Some(p) => {
            let text = if p.as_os_str() == "-" {
                let mut t = String::new();
                std::io::stdin()
                    .read_to_string(&mut t)
                    .context("--resources -: reading stdin")?;
                t
            } else {
                std::fs::read_to_string(p)
                    .with_context(|| format!("--resources {}", p.display()))?
            };
            let de = &mut serde_json::Deserializer::from_str(&text);
            serde_path_to_error::deserialize(de).map_err(|e| {
                anyhow::anyhow!("--resources {}: {}: {}", p.display(), e.path(), e.inner())
            })?
        }
    };
    if o.kernel_memory.is_some() {
        bail!("--kernel-memory: not supported (kernel memory limits are deprecated)");
    }
    if o.cpu_rt_period.is_some() || o.cpu_rt_runtime.is_some() {
        bail!("--cpu-rt-period/--cpu-rt-runtime: real-time scheduling is not supported");
    }
    if o.memory.is_some() || o.memory_reservation.is_some() || o.memory_swap.is_some() {
        let mut m: LinuxMemory = (*r.memory()).unwrap_or_default();
        if let Some(v) = &o.memory {
            m.set_limit(Some(parse_bytes("--memory", v)?));
        }
        if let Some(v) = &o.memory_reservation {
            m.set_reservation(Some(parse_bytes("--memory-reservation", v)?));
        }
        if let Some(v) = &o.memory_swap {
            m.set_swap(Some(parse_bytes("--memory-swap", v)?));
        }
        r.set_memory(Some(m));
    }
    let cpu_flag = o.cpu_shares.is_some()
        || o.cpu_period.is_some()
        || o.cpu_quota.is_some()
        || o.cpuset_cpus.is_some()
        || o.cpuset_mems.is_some();
    if cpu_flag {
        let mut c: LinuxCpu = r.cpu().clone().unwrap_or_default();
        if o.cpu_shares.is_some() {
            c.set_shares(o.cpu_shares);
        }
        if o.cpu_period.is_some() {
            c.set_period(o.cpu_period);
        }
        if o.cpu_quota.is_some() {
            c.set_quota(o.cpu_quota);
        }
        if o.cpuset_cpus.is_some() {
            c.set_cpus(o.cpuset_cpus.clone());
        }
        if o.cpuset_mems.is_some() {
            c.set_mems(o.cpuset_mems.clone());
        }
        r.set_cpu(Some(c));
    }
    if let Some(l) = o.pids_limit {
        let mut p: LinuxPids = (*r.pids()).unwrap_or_default();
        p.set_limit(l);
        r.set_pids(Some(p));
    }
    if let Some(w) = o.blkio_weight {
        if w != 0 && !(10..=1000).contains(&w) {
            bail!("--blkio-weight {w}: must be 10 to 1000");
        }
        let mut b: LinuxBlockIo = r.block_io().clone().unwrap_or_default();
        b.set_weight(Some(w));
        r.set_block_io(Some(b));
    }
    if r.hugepage_limits().as_ref().is_some_and(|v| !v.is_empty()) {
        bail!("hugepageLimits: not supported (guest memory is not backed by host huge pages)");
    }
    Ok(r)
}

/// The cgroup of a live container, or why there is none.
fn live_cgroup(g: &GlobalOpts, id: &str) -> anyhow::Result<(ContainerDir, State, Cgroup)> {
    let (dir, st) = load(g, id)?;
    if dir.status(&st) == Status::Stopped {
        bail!("container {id} is not running");
    }
    let cg = st.cgroup.clone().with_context(|| {
        format!("container {id} has no cgroup (cgroups were not usable when it was created)")
    })?;
    Ok((dir, st, cg))
}

/// `runsc update`: applies new resource limits to a running container's
/// cgroup, then gives the guest the same view (/proc/meminfo, CPU count,
/// the pids limit fork obeys).
pub fn update(g: &GlobalOpts, id: &str, o: &UpdateOpts) -> anyhow::Result<()> {
    let r = update_resources(o)?;
    let (dir, st, cg) = live_cgroup(g, id)?;
    cg.apply(&r)?;
    if dir.status(&st) == Status::Paused {
        // A frozen sandbox cannot answer; runc too only writes the cgroup.
        tracing::warn!("container {id} is paused: the guest keeps its view of the old limits");
        return Ok(());
    }
    // The guest sees (and its pids limit follows) what the cgroup now says.
    let l = cg.guest_limits();
    let req = control::Request::Update {
        cpus: l.cpus,
        memory: l.memory,
        pids: l.pids,
    };
    let reply = control::call(&dir.control_socket(), &req, Some(Duration::from_secs(10)))?;
    if let Some(e) = reply.error {
        bail!("updating the sandbox's limits: {e}");
    }
    Ok(())
}

/// `runsc events [--stats] [--interval N] ID`: runc's stats event
/// (`{"type":"stats","id":…,"data":{cpu,memory,pids,…}}`) from the
/// sandbox's cgroup, once with `stats`, else every `interval` until the
/// container stops.
pub fn events(g: &GlobalOpts, id: &str, stats: bool, interval: Duration) -> anyhow::Result<()> {
    let (dir, st, cg) = live_cgroup(g, id)?;
    loop {
        let ev = serde_json::json!({ "type": "stats", "id": id, "data": cg.stats() });
        println!("{ev}");
        let _ = std::io::stdout().flush();
        if stats {
            return Ok(());
        }
        std::thread::sleep(interval);
        if dir.status(&st) == Status::Stopped {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_as_runc_takes_them() {
        assert_eq!(parse_bytes("--memory", "64m").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("--memory", "64MB").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("--memory", "1g").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("--memory", "4096").unwrap(), 4096);
        assert_eq!(parse_bytes("--memory", "-1").unwrap(), -1);
        let e = parse_bytes("--memory", "12q").unwrap_err().to_string();
        assert!(e.contains("--memory"), "{e}");
        assert!(parse_bytes("--memory", "m").is_err());
        assert!(parse_bytes("--memory", "-5").is_err());
    }

    #[test]
    fn update_flags_override_the_resources_file() {
        let o = UpdateOpts {
            memory: Some("32m".into()),
            cpu_quota: Some(20_000),
            pids_limit: Some(7),
            ..Default::default()
        };
        let r = update_resources(&o).unwrap();
        assert_eq!(r.memory().as_ref().unwrap().limit(), Some(32 << 20));
        assert_eq!(r.cpu().as_ref().unwrap().quota(), Some(20_000));
        assert_eq!(r.pids().as_ref().unwrap().limit(), 7);
        let bad = UpdateOpts {
            kernel_memory: Some("1m".into()),
            ..Default::default()
        };
        assert!(update_resources(&bad)
            .unwrap_err()
            .to_string()
            .contains("--kernel-memory"));
    }
}
