//! Starting a sandbox: the memory file, platform, gofer-backed root, mounts,
//! the kernel, and PID 1 running the requested program.

use crate::errno::Errno;
use crate::fs;
use crate::kernel::exec::load_image;
use crate::kernel::signal::SigAction;
use crate::kernel::task::{default_rlimits, initial_regs, CurrentTask, Task, ThreadGroup};
use crate::kernel::{Creds, Kernel, ProcEntry};
use crate::mm::memory_file::MemoryFile;
use crate::mm::MemoryManager;
use crate::vfs::{FdTable, File, FsContext, Vfs};
use anyhow::{bail, Context as _};
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

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
    /// How inet sockets reach the network (`--network`).
    pub network: crate::net::NetworkMode,
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
    if cfg.argv.is_empty() {
        bail!("no command given");
    }
    forward_host_signals_setup();
    crate::net::set_network_mode(cfg.network);
    let mf = Arc::new(MemoryFile::new()?);
    let platform =
        platform::ptrace::PtracePlatform::new(mf.fd()).context("starting the ptrace platform")?;
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
        vfs.set_root_fstype("9p", cfg.private_tmp);
    }
    if cfg.private_tmp {
        vfs.mount(b"/tmp", fs::tmpfs::new_tmpfs(0o1777), "tmpfs");
    }
    vfs.mount(b"/dev", fs::dev::new_devfs(), "devtmpfs");
    // Our own sysfs: the host's must not show through the gofer.
    let sysfs = fs::sys::new_sysfs().map_err(|e| anyhow::anyhow!("building sysfs: {e}"))?;
    vfs.mount(b"/sys", sysfs, "sysfs");
    let kernel = Kernel::new(platform.clone(), mf.clone(), vfs.clone(), cfg.strace);
    vfs.mount(b"/proc", fs::proc::new_procfs(&kernel), "proc");

    let fsctx = {
        let fsc = FsContext {
            root: vfs.root.clone(),
            cwd: vfs.root.clone(),
            umask: 0o022,
        };
        let cwd = vfs
            .lookup(&fsc, &vfs.root, cfg.cwd.as_bytes(), true)
            .map_err(|e| anyhow::anyhow!("working directory {}: {e}", cfg.cwd))?;
        if !cwd.is_dir() {
            bail!("working directory {} is not a directory", cfg.cwd);
        }
        FsContext { cwd, ..fsc }
    };
    let fds = FdTable::new();
    for fd in 0..3 {
        // SAFETY: dup of our own stdio; failure leaves the guest fd closed.
        let d = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
        if d >= 0 {
            // SAFETY: d is a fresh fd we own.
            let host = fs::host::HostFile::new_stdio(unsafe { OwnedFd::from_raw_fd(d) });
            // The guest sees the host description's access mode and flags.
            // SAFETY: F_GETFL on our own fd.
            let fl = unsafe { libc::fcntl(d, libc::F_GETFL) };
            let fl = if fl < 0 {
                if fd == 0 {
                    libc::O_RDONLY
                } else {
                    libc::O_WRONLY
                }
            } else {
                fl & (libc::O_ACCMODE | libc::O_APPEND | libc::O_NONBLOCK)
            };
            let _ = fds.install_at(fd, File::new(host, fl as u32, None), false, 1024);
        }
    }
    let sighand = Arc::new(Mutex::new(
        [SigAction::default(); crate::kernel::signal::NSIG],
    ));
    let tg = ThreadGroup::new(1, sighand, default_rlimits());
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
        Creds::root(),
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
                tg,
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
    let path = resolve_command(&task, &cfg.argv[0], &cfg.env)?;
    let argv: Vec<Vec<u8>> = cfg.argv.iter().map(|s| s.as_bytes().to_vec()).collect();
    let envp: Vec<Vec<u8>> = cfg.env.iter().map(|s| s.as_bytes().to_vec()).collect();
    let (tx, rx) = std::sync::mpsc::channel::<Result<(), (String, i32)>>();
    let t2 = task.clone();
    std::thread::Builder::new()
        .name("task-1".into())
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
        )?;
    match rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err((msg, code))) => return Err(ExecFailure { msg, code }.into()),
        Err(_) => bail!("init task died while loading"),
    }
    forward_host_signals(kernel.clone());
    let status = kernel.wait_for_init();
    Ok(if status & 0x7f == 0 {
        (status >> 8) & 0xff
    } else {
        128 + (status & 0x7f)
    })
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

/// Signals sent to `runsc` go to the sandbox's PID 1, as with a container.
fn forward_host_signals(kernel: Arc<Kernel>) {
    let _ = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || loop {
            let set = forwarded_set();
            let mut sig: libc::c_int = 0;
            // SAFETY: waiting on a valid set with a valid out pointer.
            if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                continue;
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
