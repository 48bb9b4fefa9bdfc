//! Starting a sandbox: the memory file, platform, gofer-backed root, mounts,
//! the kernel, and PID 1 running the requested program. `boot` does it all
//! at once (`runsc do`); an OCI container is `prepare`d (PID 1 loaded but
//! not running), then `Sandbox::start`ed, signalled, listed and waited for.

use crate::errno::Errno;
use crate::fs;
use crate::fs::console::Console;
use crate::kernel::exec::load_image;
use crate::kernel::signal::SigAction;
use crate::kernel::sysctl;
use crate::kernel::task::{default_rlimits, initial_regs, CurrentTask, Task, ThreadGroup};
use crate::kernel::{Creds, Kernel, ProcEntry};
use crate::mm::memory_file::MemoryFile;
use crate::mm::MemoryManager;
use crate::vfs::path::MountFlags;
use crate::vfs::{Dentry, FdTable, File, FsContext, Vfs};
use anyhow::{bail, Context as _};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

pub struct BootConfig {
    /// The program and its arguments (argv[0] is looked up in PATH).
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub strace: bool,
    /// A connected socket to the gofer serving the root filesystem.
    pub gofer: OwnedFd,
    /// Put a memory overlay over the (read-only) image root, so the guest
    /// may change its root while the image stays untouched.
    pub overlay: bool,
    /// The image is the host's own root: give the guest a private /tmp
    /// instead of the host's.
    pub private_tmp: bool,
    /// Without the overlay: the gofer serves the image read-only (what
    /// /proc/mounts reports for the root).
    pub root_readonly: bool,
    /// Directories served by gofers of their own, mounted over the root.
    pub gofer_mounts: Vec<GoferMount>,
    /// uname's nodename; None keeps the kernel's default.
    pub hostname: Option<String>,
    /// Identity of PID 1.
    pub user: User,
    /// PID 1's rlimits over the defaults: (resource, soft, hard).
    pub rlimits: Vec<(i32, u64, u64)>,
    /// Extra empty tmpfs mounts (absolute, normalized guest paths).
    pub tmpfs_mounts: Vec<String>,
    /// How inet sockets reach the network (`--network`).
    pub network: crate::net::NetworkMode,
    /// At start, take over the network interface of the network namespace
    /// the sandbox process is in (`net::take_interfaces`): an OCI
    /// container with its own network namespace in sandbox mode.
    pub take_interfaces: bool,
    /// Single files mounted over guest paths, as in-memory copies.
    pub file_mounts: Vec<FileMount>,
    /// CPUs the guest sees (nproc, sched_getaffinity, /proc/cpuinfo,
    /// /sys/devices/system/cpu): the container's cpuset and CPU quota.
    /// None: the host's.
    pub cpus: Option<usize>,
    /// The container's memory limit in bytes: /proc/meminfo's MemTotal
    /// and sysinfo's totalram. None: the host's memory.
    pub memory_limit: Option<u64>,
    /// The container's pids limit: guest tasks (threads, zombies included)
    /// beyond it make fork/clone fail with EAGAIN, as the pids controller
    /// does. The host cgroup's limit covers the sandbox's own threads too,
    /// so it cannot stand for the guest's.
    pub pids_limit: Option<u64>,
    /// uname's domainname; None keeps "(none)".
    pub domainname: Option<String>,
    /// Sysctls to set before the guest runs (kernel::sysctl::KEYS).
    pub sysctls: Vec<(String, String)>,
    /// Guest paths hidden from the container (OCI linux.maskedPaths).
    pub masked_paths: Vec<String>,
    /// Guest paths made read-only (OCI linux.readonlyPaths).
    pub readonly_paths: Vec<String>,
    /// A user namespace for the host processes that run guest code (the
    /// stubs): (uid_map, gid_map) as written to /proc/PID/uid_map.
    pub stub_user_namespace: Option<(String, String)>,
    /// PID 1 is on a terminal: when the host stdin is one, PID 1 gets a
    /// pty of the sandbox's own (`fs::console`) in place of the host
    /// stdio fds that are terminals, as its controlling terminal.
    pub terminal: bool,
}

/// What the guest is told about the machine: set at `prepare`, changed by
/// `set_guest_limits` (`runsc update`); 0 stands for "no limit".
static GUEST_CPUS: AtomicUsize = AtomicUsize::new(0);
static GUEST_MEMORY: AtomicU64 = AtomicU64::new(0);
static GUEST_PIDS: AtomicU64 = AtomicU64::new(0);

/// The container's resource limits as the guest sees and feels them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuestLimits {
    /// CPUs shown (nproc, sched_getaffinity, /proc/cpuinfo, /sys).
    pub cpus: Option<usize>,
    /// /proc/meminfo's MemTotal and sysinfo's totalram, in bytes.
    pub memory: Option<u64>,
    /// Guest tasks beyond it make fork/clone fail with EAGAIN.
    pub pids: Option<u64>,
}

/// Replaces the guest's limits (`None`: none, the host's view).
pub fn set_guest_limits(l: GuestLimits) {
    GUEST_CPUS.store(l.cpus.unwrap_or(0), Ordering::Relaxed);
    GUEST_MEMORY.store(l.memory.unwrap_or(0), Ordering::Relaxed);
    GUEST_PIDS.store(l.pids.unwrap_or(0), Ordering::Relaxed);
}

/// The container's pids limit, if it has one.
pub fn guest_pids_limit() -> Option<u64> {
    Some(GUEST_PIDS.load(Ordering::Relaxed)).filter(|p| *p > 0)
}

/// CPUs the guest sees: the container's (BootConfig::cpus), else the
/// host's available parallelism.
pub fn guest_cpus() -> usize {
    match GUEST_CPUS.load(Ordering::Relaxed) {
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        n => n,
    }
}

/// The container's CPU limit (cpuset and quota), if it has one.
pub fn guest_cpus_limit() -> Option<usize> {
    Some(GUEST_CPUS.load(Ordering::Relaxed)).filter(|n| *n > 0)
}

/// The container's memory limit, if it has one.
pub fn guest_memory_limit() -> Option<u64> {
    Some(GUEST_MEMORY.load(Ordering::Relaxed)).filter(|m| *m > 0)
}

/// A bind mount of one host file, served as a sandbox-private tmpfs copy
/// made at boot: writes inside (unless read-only) stay in the sandbox and
/// never reach the host (what docker's /etc/hosts, /etc/resolv.conf and
/// /etc/hostname need: it writes them before the container starts).
pub struct FileMount {
    /// Absolute, normalized guest path.
    pub dest: String,
    pub data: Vec<u8>,
    /// Permission bits, owner and group of the host file.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Mounted read-only: writes fail with EROFS.
    pub readonly: bool,
}

/// A process to start in a running sandbox (`runsc exec`).
pub struct ExecConfig {
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: User,
    /// The guest's fds 0, 1 and 2 (host fds; None leaves the fd closed).
    pub stdio: [Option<OwnedFd>; 3],
    /// On a terminal: as `BootConfig::terminal`, the host terminal being
    /// `stdio[0]`.
    pub terminal: bool,
}

/// A bind mount: a connected socket to the gofer serving the source
/// directory (read-only or not, as the gofer was told), and where it goes.
pub struct GoferMount {
    /// Absolute, normalized guest path.
    pub dest: String,
    pub gofer: OwnedFd,
    /// Mounted read-only (the gofer refuses writes too).
    pub readonly: bool,
}

/// Who PID 1 runs as (real, effective, saved and filesystem ids alike).
#[derive(Clone, Debug)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub umask: u32,
    /// Capabilities (OCI process.capabilities, noNewPrivileges); None:
    /// what the uid has on Linux (all for root, none for others).
    pub caps: Option<crate::kernel::caps::Caps>,
}

impl Default for User {
    fn default() -> User {
        User {
            uid: 0,
            gid: 0,
            additional_gids: Vec::new(),
            caps: None,
            umask: 0o022,
        }
    }
}

/// Why the sandbox could not start its command, with the exit code a shell
/// would give (127: not found, 126: found but not executable).
#[derive(Debug, thiserror::Error)]
#[error("{msg}")]
pub struct ExecFailure {
    pub msg: String,
    pub code: i32,
}

/// Runs the sandbox until PID 1 exits; returns the shell-style exit code
/// (status, or 128+signal).
pub fn boot(cfg: BootConfig) -> anyhow::Result<i32> {
    let sandbox = prepare(cfg)?;
    sandbox.start()?;
    Ok(sandbox.wait())
}

/// A sandbox whose PID 1 is loaded; it runs guest code once started.
pub struct Sandbox {
    kernel: Arc<Kernel>,
    start: Mutex<Option<mpsc::Sender<()>>>,
    started: AtomicBool,
    take_interfaces: bool,
    /// The consoles of the processes started on a terminal, by pid.
    consoles: Consoles,
}

/// How long an exiting process's console may take to hand its last
/// output to the host terminal.
const CONSOLE_DRAIN: Duration = Duration::from_secs(5);

type Consoles = Arc<Mutex<Vec<(i32, Arc<Console>)>>>;

/// One guest process, for `runsc ps`.
#[derive(Clone, Debug)]
pub struct ProcessInfo {
    pub pid: i32,
    pub ppid: i32,
    pub uid: u32,
    pub comm: String,
    /// Exited, not yet waited for.
    pub zombie: bool,
}

impl Sandbox {
    /// Lets PID 1 run; signals sent to this host process now reach it.
    pub fn start(&self) -> anyhow::Result<()> {
        let mut slot = self.start.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            bail!("the sandbox was already started");
        }
        // The network is set up by now (docker's prestart hook moved the
        // interface into our namespace after create).
        if self.take_interfaces {
            crate::net::take_interfaces().context("taking over the network interface")?;
        }
        let tx = slot
            .take()
            .ok_or_else(|| anyhow::anyhow!("the sandbox was already started"))?;
        drop(slot);
        tx.send(())
            .map_err(|_| anyhow::anyhow!("init task died before starting"))?;
        self.started.store(true, Ordering::SeqCst);
        forward_host_signals(self.kernel.clone(), self.consoles.clone());
        Ok(())
    }

    pub fn started(&self) -> bool {
        self.started.load(Ordering::SeqCst)
    }

    /// Sends `sig` to PID 1, or with `all` to every process. Before start,
    /// a signal whose default action kills ends the sandbox as if PID 1 had
    /// died of it (its program never ran, so no handler can catch it);
    /// others are dropped.
    pub fn signal(&self, sig: i32, all: bool) -> anyhow::Result<()> {
        use crate::kernel::signal::{default_action, DefaultAction, SigInfo, SI_USER};
        if !(1..=crate::kernel::signal::NSIG as i32).contains(&sig) {
            bail!("invalid signal {sig}");
        }
        if !self.started() {
            let fatal = sig == libc::SIGKILL
                || !matches!(
                    default_action(sig),
                    DefaultAction::Ignore | DefaultAction::Continue | DefaultAction::Stop
                );
            if fatal {
                self.kernel
                    .finish(crate::kernel::task_signals::killed_status(sig));
            }
            return Ok(());
        }
        let targets: Vec<_> = {
            let ts = self.kernel.ts();
            ts.procs
                .iter()
                .filter(|(pid, e)| (all || **pid == 1) && e.zombie.is_none())
                .map(|(_, e)| e.tg.clone())
                .collect()
        };
        for tg in targets {
            self.kernel.send_to_group(&tg, SigInfo::new(sig, SI_USER));
        }
        Ok(())
    }

    /// Starts a new process (its own session and process group, with no
    /// parent, like runc's exec joining the container) and returns its pid.
    /// Its rlimits are PID 1's.
    pub fn exec(&self, cfg: ExecConfig) -> anyhow::Result<i32> {
        if !self.started() {
            bail!("the container is not running");
        }
        if cfg.argv.is_empty() || cfg.argv[0].is_empty() {
            bail!("no command given");
        }
        let kernel = &self.kernel;
        let (rlimits, root) = {
            let ts = kernel.ts();
            let init = ts
                .procs
                .get(&1)
                .filter(|e| e.zombie.is_none())
                .context("the container has exited")?;
            let rl = *crate::kernel::task::lock(&init.tg.rlimits);
            let root = ts.tasks.get(&1).map(|t| {
                crate::kernel::task::lock(&crate::kernel::task::lock(&t.fs))
                    .root
                    .clone()
            });
            (rl, root.unwrap_or_else(|| kernel.vfs.root()))
        };
        let fsctx = fs_context(&kernel.vfs, root, &cfg.cwd, cfg.user.umask)?;
        let fds = FdTable::new();
        let console = ConsoleGuard(install_stdio(
            kernel,
            &fds,
            cfg.stdio,
            cfg.terminal,
            cfg.user.uid,
        )?);
        let sighand = Arc::new(Mutex::new(
            [SigAction::default(); crate::kernel::signal::NSIG],
        ));
        let mm = Arc::new(MemoryManager::new(
            kernel.mf.clone(),
            platform::Platform::max_user_address(&*kernel.platform),
        ));
        let comm: Vec<u8> = cfg.argv[0]
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .bytes()
            .take(15)
            .collect();
        let task = {
            let mut ts = kernel.ts();
            let pid = ts.alloc_pid();
            let tg = ThreadGroup::new(pid, sighand, rlimits);
            let task = Task::new(
                pid,
                kernel.clone(),
                tg.clone(),
                mm,
                fds,
                Arc::new(Mutex::new(fsctx)),
                creds_of(&cfg.user),
                0,
                comm,
            )
            .map_err(|e| anyhow::anyhow!("creating the process: {e}"))?;
            ts.tasks.insert(pid, task.clone());
            ts.procs.insert(
                pid,
                ProcEntry {
                    tg: tg.clone(),
                    parent: 0,
                    children: Vec::new(),
                    threads: vec![pid],
                    pgid: pid,
                    sid: pid,
                    zombie: None,
                    exit_signal: libc::SIGCHLD,
                    stop_report: None,
                    cont_report: false,
                },
            );
            if let Some(c) = console.as_ref() {
                c.make_controlling(pid, &tg);
            }
            task
        };
        let pid = task.tid;
        let forget = |task: &Arc<Task>| {
            let mut ts = kernel.ts();
            ts.tasks.remove(&task.tid);
            ts.procs.remove(&task.tid);
        };
        let path = match resolve_command(&task, &cfg.argv[0], &cfg.env) {
            Ok(p) => p,
            Err(e) => {
                forget(&task);
                return Err(e);
            }
        };
        let argv: Vec<Vec<u8>> = cfg.argv.iter().map(|s| s.as_bytes().to_vec()).collect();
        let envp: Vec<Vec<u8>> = cfg.env.iter().map(|s| s.as_bytes().to_vec()).collect();
        let (tx, rx) = mpsc::channel::<Result<(), (String, i32)>>();
        let t2 = task.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("task-{pid}"))
            .spawn(
                move || match load_image(&t2, libc::AT_FDCWD, &path, argv, &envp, false) {
                    Ok((img, comm)) => {
                        *crate::kernel::task::lock(&t2.mm) = img.mm.clone();
                        *crate::kernel::task::lock(&t2.comm) = comm;
                        let _ = tx.send(Ok(()));
                        CurrentTask::new(t2, img.ctx, initial_regs(img.entry, img.sp)).run();
                    }
                    Err(e) => {
                        let code = if e == Errno::ENOENT { 127 } else { 126 };
                        let _ = tx.send(Err((describe_exec_error(e, &path), code)));
                    }
                },
            );
        if let Err(e) = spawned {
            forget(&task);
            return Err(e).context("starting the process's thread");
        }
        match rx.recv() {
            Ok(Ok(())) => {
                if let Some(c) = console.keep() {
                    lock_consoles(&self.consoles).push((pid, c));
                }
                Ok(pid)
            }
            Ok(Err((msg, code))) => {
                forget(&task);
                Err(ExecFailure { msg, code }.into())
            }
            Err(_) => {
                forget(&task);
                bail!("the process died while loading")
            }
        }
    }

    /// Blocks until process `pid` started by `exec` exits; returns the
    /// shell-style exit code.
    pub fn wait_process(&self, pid: i32) -> i32 {
        let code = shell_code(self.kernel.wait_parentless(pid));
        let console = {
            let mut cs = lock_consoles(&self.consoles);
            cs.iter()
                .position(|(p, _)| *p == pid)
                .map(|i| cs.remove(i).1)
        };
        if let Some(c) = console {
            c.finish(CONSOLE_DRAIN);
        }
        code
    }

    /// Sends `sig` to process `pid`.
    pub fn signal_process(&self, pid: i32, sig: i32) -> anyhow::Result<()> {
        use crate::kernel::signal::{SigInfo, SI_USER};
        if !(1..=crate::kernel::signal::NSIG as i32).contains(&sig) {
            bail!("invalid signal {sig}");
        }
        let tg = {
            let ts = self.kernel.ts();
            ts.procs
                .get(&pid)
                .filter(|e| e.zombie.is_none())
                .map(|e| e.tg.clone())
        };
        let tg = tg.with_context(|| format!("no process {pid}"))?;
        self.kernel.send_to_group(&tg, SigInfo::new(sig, SI_USER));
        Ok(())
    }

    /// The guest's processes, by pid.
    pub fn processes(&self) -> Vec<ProcessInfo> {
        let ts = self.kernel.ts();
        let mut out: Vec<ProcessInfo> = ts
            .procs
            .iter()
            .map(|(pid, e)| {
                let leader = ts
                    .tasks
                    .get(pid)
                    .or_else(|| e.threads.iter().find_map(|t| ts.tasks.get(t)));
                let (comm, uid) = match leader {
                    Some(t) => (
                        crate::kernel::task::lock(&t.comm).clone(),
                        crate::kernel::task::lock(&t.creds).ruid,
                    ),
                    None => crate::kernel::task::lock(&e.tg.exit_info)
                        .as_ref()
                        .map(|(c, cr)| (c.clone(), cr.ruid))
                        .unwrap_or_default(),
                };
                ProcessInfo {
                    pid: *pid,
                    ppid: e.parent,
                    uid,
                    comm: String::from_utf8_lossy(&comm).into_owned(),
                    zombie: e.zombie.is_some(),
                }
            })
            .collect();
        out.sort_by_key(|p| p.pid);
        out
    }

    /// Blocks until PID 1 exits; returns the shell-style exit code (status,
    /// or 128+signal).
    pub fn wait(&self) -> i32 {
        let code = shell_code(self.kernel.wait_for_init());
        // Its last output reaches the terminal before the exit is told.
        let consoles = std::mem::take(&mut *lock_consoles(&self.consoles));
        for (_, c) in consoles {
            c.finish(CONSOLE_DRAIN);
        }
        code
    }
}

/// A wait status as a shell reports it: the exit status, or 128+signal.
fn shell_code(status: i32) -> i32 {
    if status & 0x7f == 0 {
        (status >> 8) & 0xff
    } else {
        128 + (status & 0x7f)
    }
}

/// A filesystem context rooted at `root` whose working directory is `cwd`.
fn fs_context(vfs: &Vfs, root: Arc<Dentry>, cwd: &str, umask: u32) -> anyhow::Result<FsContext> {
    let fsc = FsContext {
        root: root.clone(),
        cwd: root.clone(),
        umask,
    };
    let cwd_d = vfs
        .lookup(&fsc, &root, cwd.as_bytes(), true)
        .map_err(|e| anyhow::anyhow!("working directory {cwd}: {e}"))?;
    if !cwd_d.is_dir() {
        bail!("working directory {cwd} is not a directory");
    }
    Ok(FsContext { cwd: cwd_d, ..fsc })
}

/// A new process's console until the process runs: on the error paths
/// before, the console stops and the host terminal gets its modes back.
struct ConsoleGuard(Option<Arc<Console>>);

impl ConsoleGuard {
    fn as_ref(&self) -> Option<&Arc<Console>> {
        self.0.as_ref()
    }

    /// The process runs: the console stays.
    fn keep(mut self) -> Option<Arc<Console>> {
        self.0.take()
    }
}

impl Drop for ConsoleGuard {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            c.finish(Duration::ZERO);
        }
    }
}

fn lock_consoles(c: &Consoles) -> std::sync::MutexGuard<'_, Vec<(i32, Arc<Console>)>> {
    c.lock().unwrap_or_else(|p| p.into_inner())
}

/// Installs a new process's stdio: the host fds, or, on a terminal (see
/// `BootConfig::terminal`), a console's pty slave in place of those that
/// are terminals. Returns the console.
fn install_stdio(
    kernel: &Arc<Kernel>,
    fds: &FdTable,
    stdio: [Option<OwnedFd>; 3],
    terminal: bool,
    uid: u32,
) -> anyhow::Result<Option<Arc<Console>>> {
    let console = if terminal {
        Console::open(kernel, &stdio, uid)?
    } else {
        None
    };
    for (fd, host) in stdio.into_iter().enumerate() {
        let Some(h) = host else { continue };
        match &console {
            // SAFETY: isatty on a host fd we own.
            Some((_, slave)) if unsafe { libc::isatty(h.as_raw_fd()) } == 1 => {
                let _ = fds.install_at(fd as i32, slave.clone(), false, 1024);
            }
            _ => install_host_stdio(fds, fd as i32, h),
        }
    }
    Ok(console.map(|(c, _)| c))
}

/// Installs host fd `host` as the guest's `fd`, with the host
/// description's access mode and flags.
fn install_host_stdio(fds: &FdTable, fd: i32, host: OwnedFd) {
    // SAFETY: F_GETFL on an fd we own.
    let fl = unsafe { libc::fcntl(host.as_raw_fd(), libc::F_GETFL) };
    let fl = if fl < 0 {
        if fd == 0 {
            libc::O_RDONLY
        } else {
            libc::O_WRONLY
        }
    } else {
        fl & (libc::O_ACCMODE | libc::O_APPEND | libc::O_NONBLOCK)
    };
    let host = fs::host::HostFile::new_stdio(host);
    let _ = fds.install_at(fd, File::new(host, fl as u32, None), false, 1024);
}

/// What goes at a mount point.
enum MountKind {
    Tmpfs,
    Gofer(OwnedFd, bool),
    File(FileMount),
}

/// Creates a missing mount point and its missing parents (mkdir -p; the
/// last one a file for a file mount) in whatever filesystem holds them,
/// normally the root's overlay. Best effort: a read-only root cannot get
/// them, and a mount whose parent exists works without its mount point.
fn make_mount_point(vfs: &Vfs, dest: &str, dir: bool) {
    let fsc = FsContext {
        root: vfs.root(),
        cwd: vfs.root(),
        umask: 0o022,
    };
    let comps: Vec<&str> = dest.split('/').filter(|c| !c.is_empty()).collect();
    let mut cur = vfs.root();
    for (i, name) in comps.iter().enumerate() {
        let prefix = format!("/{}", comps[..=i].join("/"));
        match vfs.lookup(&fsc, &vfs.root(), prefix.as_bytes(), true) {
            Ok(d) => {
                cur = d;
                continue;
            }
            Err(Errno::ENOENT) => {}
            Err(e) => {
                tracing::debug!("mount point {dest}: {prefix}: {e}");
                return;
            }
        }
        let made = if i + 1 == comps.len() && !dir {
            cur.inode.create(name.as_bytes(), 0o644, 0, 0).map(|_| ())
        } else {
            cur.inode.mkdir(name.as_bytes(), 0o755, 0, 0)
        };
        if let Err(e) = made {
            tracing::debug!("mount point {dest}: creating {prefix}: {e}");
            return;
        }
        match vfs.lookup(&fsc, &vfs.root(), prefix.as_bytes(), true) {
            Ok(d) => cur = d,
            Err(_) => return,
        }
    }
}

/// OCI maskedPaths and readonlyPaths, applied as runc applies them: an
/// empty read-only tmpfs over a masked directory, /dev/null over a masked
/// file, and each read-only path bound onto itself read-only. Paths that
/// do not exist in the sandbox are skipped.
fn restrict_paths(vfs: &Vfs, masked: &[String], readonly: &[String]) -> anyhow::Result<()> {
    let fsc = FsContext {
        root: vfs.root(),
        cwd: vfs.root(),
        umask: 0o022,
    };
    let find = |field: &str, p: &str| match vfs.lookup(&fsc, &vfs.root(), p.as_bytes(), true) {
        Ok(d) => Ok(Some(d)),
        Err(Errno::ENOENT) | Err(Errno::ENOTDIR) => Ok(None),
        Err(e) => Err(anyhow::anyhow!("linux.{field}: {p}: {e}")),
    };
    for p in masked {
        let Some(d) = find("maskedPaths", p)? else {
            continue;
        };
        if d.is_dir() {
            let flags = MountFlags {
                readonly: true,
                ..MountFlags::default()
            };
            vfs.mount_with_flags(&d.path(), fs::tmpfs::new_tmpfs(0o1777), "tmpfs", flags);
        } else {
            let null = vfs
                .lookup(&fsc, &vfs.root(), b"/dev/null", true)
                .map_err(|e| anyhow::anyhow!("linux.maskedPaths: /dev/null: {e}"))?;
            vfs.mount(&d.path(), null.inode.clone(), vfs.fstype_of(&null));
        }
    }
    for p in readonly {
        let Some(d) = find("readonlyPaths", p)? else {
            continue;
        };
        let flags = MountFlags {
            readonly: true,
            ..vfs.flags_of(&d)
        };
        vfs.mount_with_flags(&d.path(), d.inode.clone(), vfs.fstype_of(&d), flags);
    }
    Ok(())
}

/// Builds the kernel and loads PID 1, which waits for `Sandbox::start`
/// before running any guest code.
pub fn prepare(cfg: BootConfig) -> anyhow::Result<Sandbox> {
    if cfg.argv.is_empty() {
        bail!("no command given");
    }
    forward_host_signals_setup();
    set_guest_limits(GuestLimits {
        cpus: cfg.cpus,
        memory: cfg.memory_limit,
        pids: cfg.pids_limit,
    });
    crate::net::set_network_mode(cfg.network);
    let cfg_take_interfaces = cfg.take_interfaces;
    let mf = Arc::new(MemoryFile::new()?);
    // tmpfs pages shared with MAP_SHARED mappings must live in the memory
    // file the platform maps.
    crate::mm::memory_file::set_global(mf.clone());
    let platform =
        platform::ptrace::PtracePlatform::new(mf.fd()).context("starting the ptrace platform")?;
    if let Some((uid_map, gid_map)) = cfg.stub_user_namespace.clone() {
        platform
            .set_stub_user_namespace(uid_map, gid_map)
            .context("the stubs' user namespace")?;
    }
    let client = Arc::new(gofer::Client::new(cfg.gofer));
    let image = fs::gofer::new_goferfs(client)
        .map_err(|e| anyhow::anyhow!("attaching to the gofer: {e}"))?;
    let root = if cfg.overlay {
        fs::overlay::new_overlay(image, fs::tmpfs::new_tmpfs(0o755))
    } else {
        image
    };
    let vfs = Arc::new(Vfs::new(root));
    if cfg.overlay {
        vfs.set_root_fstype("overlay", false);
    } else {
        // The host's own root is never writable; a named image directory
        // without the overlay is served read-write.
        vfs.set_root_fstype("9p", cfg.private_tmp || cfg.root_readonly);
    }
    if cfg.private_tmp {
        vfs.mount(b"/tmp", fs::tmpfs::new_tmpfs(0o1777), "tmpfs");
    }
    vfs.mount(b"/dev", fs::dev::new_devfs(), "devtmpfs");
    // Our own sysfs: the host's must not show through the gofer.
    let sysfs = fs::sys::new_sysfs().map_err(|e| anyhow::anyhow!("building sysfs: {e}"))?;
    vfs.mount(b"/sys", sysfs, "sysfs");
    let mut mounts: Vec<(String, MountKind)> = Vec::new();
    mounts.extend(
        cfg.tmpfs_mounts
            .iter()
            .map(|m| (m.clone(), MountKind::Tmpfs)),
    );
    mounts.extend(
        cfg.gofer_mounts
            .into_iter()
            .map(|m| (m.dest, MountKind::Gofer(m.gofer, m.readonly))),
    );
    mounts.extend(
        cfg.file_mounts
            .into_iter()
            .map(|m| (m.dest.clone(), MountKind::File(m))),
    );
    // Parents before children, so a mount point inside another mount is
    // made in the filesystem mounted there.
    mounts.sort_by_key(|(dest, _)| dest.split('/').filter(|c| !c.is_empty()).count());
    for (dest, kind) in mounts {
        make_mount_point(&vfs, &dest, !matches!(kind, MountKind::File(_)));
        match kind {
            MountKind::Tmpfs => {
                vfs.mount(dest.as_bytes(), fs::tmpfs::new_tmpfs(0o1777), "tmpfs");
            }
            MountKind::Gofer(g, readonly) => {
                let fs = fs::gofer::new_goferfs(Arc::new(gofer::Client::new(g)))
                    .map_err(|e| anyhow::anyhow!("attaching to the gofer for {dest}: {e}"))?;
                let flags = MountFlags {
                    readonly,
                    ..MountFlags::default()
                };
                vfs.mount_with_flags(dest.as_bytes(), fs, "9p", flags);
            }
            MountKind::File(f) => {
                let dir = fs::tmpfs::new_tmpfs(0o755);
                let file = dir
                    .create(b"file", f.mode & 0o7777, f.uid, f.gid)
                    .and_then(|i| fs::tmpfs::set_contents(&*i, &f.data).map(|()| i))
                    .map_err(|e| anyhow::anyhow!("bind mount of a file at {dest}: {e}"))?;
                let flags = MountFlags {
                    readonly: f.readonly,
                    ..MountFlags::default()
                };
                vfs.mount_with_flags(dest.as_bytes(), file, "tmpfs", flags);
            }
        }
    }
    let kernel = Kernel::new(platform.clone(), mf.clone(), vfs.clone(), cfg.strace);
    vfs.mount(b"/proc", fs::proc::new_procfs(&kernel), "proc");
    make_mount_point(&vfs, "/sys/fs/cgroup", true);
    vfs.mount(
        b"/sys/fs/cgroup",
        fs::proc::new_cgroupfs(&kernel),
        "cgroup2",
    );
    if let Some(h) = &cfg.hostname {
        *kernel.hostname.lock().unwrap_or_else(|p| p.into_inner()) = h.as_bytes().to_vec();
    }
    if let Some(d) = &cfg.domainname {
        sysctl::set_domainname(d.as_bytes())
            .map_err(|e| anyhow::anyhow!("domainname {d:?}: {e}"))?;
    }
    for (key, value) in &cfg.sysctls {
        sysctl::set(&kernel, key, value.as_bytes())
            .map_err(|e| anyhow::anyhow!("linux.sysctl: {key}={value:?}: {e}"))?;
    }
    restrict_paths(&vfs, &cfg.masked_paths, &cfg.readonly_paths)?;

    let fsctx = fs_context(&vfs, vfs.root(), &cfg.cwd, cfg.user.umask)?;
    let fds = FdTable::new();
    let stdio = [0, 1, 2].map(|fd| {
        // SAFETY: dup of our own stdio; failure leaves the guest fd closed.
        let d = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
        // SAFETY: d is a fresh fd we own.
        (d >= 0).then(|| unsafe { OwnedFd::from_raw_fd(d) })
    });
    let console = ConsoleGuard(install_stdio(
        &kernel,
        &fds,
        stdio,
        cfg.terminal,
        cfg.user.uid,
    )?);
    let sighand = Arc::new(Mutex::new(
        [SigAction::default(); crate::kernel::signal::NSIG],
    ));
    let mut rlimits = default_rlimits();
    for &(res, soft, hard) in &cfg.rlimits {
        if let Some(r) = rlimits.get_mut(res as usize) {
            *r = [soft, hard];
        }
    }
    let tg = ThreadGroup::new(1, sighand, rlimits);
    let mm = Arc::new(MemoryManager::new(
        mf.clone(),
        platform::Platform::max_user_address(&*platform),
    ));
    let task = Task::new(
        1,
        kernel.clone(),
        tg.clone(),
        mm,
        fds,
        Arc::new(Mutex::new(fsctx)),
        creds_of(&cfg.user),
        0,
        b"init".to_vec(),
    )
    .map_err(|e| anyhow::anyhow!("creating init: {e}"))?;
    {
        let mut ts = kernel.ts();
        let _ = ts.alloc_pid();
        ts.tasks.insert(1, task.clone());
        ts.procs.insert(
            1,
            ProcEntry {
                tg: tg.clone(),
                parent: 0,
                children: Vec::new(),
                threads: vec![1],
                pgid: 1,
                sid: 1,
                zombie: None,
                exit_signal: libc::SIGCHLD,
                stop_report: None,
                cont_report: false,
            },
        );
    }
    if let Some(c) = console.as_ref() {
        c.make_controlling(1, &tg);
    }
    let path = resolve_command(&task, &cfg.argv[0], &cfg.env)?;
    let argv: Vec<Vec<u8>> = cfg.argv.iter().map(|s| s.as_bytes().to_vec()).collect();
    let envp: Vec<Vec<u8>> = cfg.env.iter().map(|s| s.as_bytes().to_vec()).collect();
    let (tx, rx) = mpsc::channel::<Result<(), (String, i32)>>();
    let (start_tx, start_rx) = mpsc::channel::<()>();
    let t2 = task.clone();
    std::thread::Builder::new()
        .name("task-1".into())
        .spawn(
            move || match load_image(&t2, libc::AT_FDCWD, &path, argv, &envp, false) {
                Ok((img, comm)) => {
                    *crate::kernel::task::lock(&t2.mm) = img.mm.clone();
                    *crate::kernel::task::lock(&t2.comm) = comm;
                    let _ = tx.send(Ok(()));
                    // Never started: the sandbox ends without running it.
                    if start_rx.recv().is_ok() {
                        CurrentTask::new(t2, img.ctx, initial_regs(img.entry, img.sp)).run();
                    }
                }
                Err(e) => {
                    let code = if e == Errno::ENOENT { 127 } else { 126 };
                    let _ = tx.send(Err((describe_exec_error(e, &path), code)));
                }
            },
        )?;
    match rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err((msg, code))) => return Err(ExecFailure { msg, code }.into()),
        Err(_) => bail!("init task died while loading"),
    }
    Ok(Sandbox {
        kernel,
        start: Mutex::new(Some(start_tx)),
        started: AtomicBool::new(false),
        take_interfaces: cfg_take_interfaces,
        consoles: Arc::new(Mutex::new(
            console.keep().into_iter().map(|c| (1, c)).collect(),
        )),
    })
}

fn creds_of(u: &User) -> Creds {
    Creds {
        ruid: u.uid,
        euid: u.uid,
        suid: u.uid,
        fsuid: u.uid,
        rgid: u.gid,
        egid: u.gid,
        sgid: u.gid,
        fsgid: u.gid,
        groups: u.additional_gids.clone(),
        // The sets the runtime gives are the ones before the program's
        // execve, which transforms them as any execve does.
        caps: u.caps.map_or_else(
            || crate::kernel::caps::Caps::for_uid(u.uid),
            |mut c| {
                c.on_exec(u.uid, u.uid);
                c
            },
        ),
    }
}

fn describe_exec_error(e: Errno, path: &[u8]) -> String {
    format!("cannot execute {}: {e}", String::from_utf8_lossy(path))
}

/// argv[0] without a slash is looked up in the guest's PATH, like execvp.
fn resolve_command(task: &Arc<Task>, cmd: &str, env: &[String]) -> anyhow::Result<Vec<u8>> {
    if cmd.contains('/') {
        return Ok(cmd.as_bytes().to_vec());
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let cand = format!("{dir}/{cmd}");
        if let Ok(d) = task.lookup_at(libc::AT_FDCWD, cand.as_bytes(), true, false) {
            if d.inode
                .stat()
                .map(|s| s.file_type() == libc::S_IFREG && s.mode & 0o111 != 0)
                .unwrap_or(false)
            {
                return Ok(cand.into_bytes());
            }
        }
    }
    Err(ExecFailure {
        msg: format!("{cmd}: command not found in the sandbox's PATH"),
        code: 127,
    }
    .into())
}

const FORWARDED: [i32; 6] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGWINCH,
];

fn forwarded_set() -> libc::sigset_t {
    // SAFETY: sigset manipulation on a local.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in FORWARDED {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Blocks the signals we forward (before any thread starts, so all inherit
/// the mask) and has stub processes' exits reaped by the host.
fn forward_host_signals_setup() {
    let set = forwarded_set();
    // SAFETY: changing our own signal mask and SIGCHLD disposition.
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        libc::signal(libc::SIGCHLD, libc::SIG_IGN);
    }
}

/// Signals sent to `runsc` go to the sandbox's PID 1, as with a container;
/// SIGWINCH, the host terminal's resize, goes to the consoles instead when
/// there are any (they pass the new size to their pty).
fn forward_host_signals(kernel: Arc<Kernel>, consoles: Consoles) {
    let _ = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || loop {
            let set = forwarded_set();
            let mut sig: libc::c_int = 0;
            // SAFETY: waiting on a valid set with a valid out pointer.
            if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                continue;
            }
            // The host kernel's SIGHUP for a hung-up host terminal: PID 1's
            // console hangs its pty up, which signals the guest session as
            // Linux would; forwarding it too would make it twice.
            if sig == libc::SIGHUP
                && lock_consoles(&consoles)
                    .iter()
                    .any(|(pid, c)| *pid == 1 && c.host_hung_up())
            {
                continue;
            }
            if sig == libc::SIGWINCH {
                let cs = lock_consoles(&consoles);
                if !cs.is_empty() {
                    for (_, c) in cs.iter() {
                        c.host_resized();
                    }
                    continue;
                }
            }
            let init = kernel.ts().procs.get(&1).map(|e| e.tg.clone());
            if let Some(tg) = init {
                kernel.send_to_group(
                    &tg,
                    crate::kernel::signal::SigInfo::new(sig, crate::kernel::signal::SI_USER),
                );
            }
        });
}
