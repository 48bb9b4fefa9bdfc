//! `containerd-shim-runsc-v1`: containerd's shim v2 for runsc, selected
//! with runtime_type `io.containerd.runsc.v1`. containerd starts it with
//! `start` (it spawns the serving shim and prints its ttrpc address),
//! talks the Task API to the serving shim, and runs `delete` to clean up
//! after a shim that died. The shim runs our `runsc` binary as the OCI
//! runtime for each operation, as containerd's runc.v2 shim runs runc.
//!
//! The containerd-shim crate provides the pieces (flags, ttrpc server and
//! Task API, event publisher, exit monitor, rootfs mounts); the bootstrap
//! is ours so that one binary serves containerd 1.x (task API v2, a bare
//! address from `start`) as well as 2.x (which also takes those).

mod error;
mod io;
mod runsc;
mod service;
mod stats;

use containerd_shim::api::DeleteResponse;
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::protobuf::{Message, MessageField};
use containerd_shim::protos::shim::shim_ttrpc::create_task;
use containerd_shim::protos::ttrpc::Server;
use containerd_shim::protos::types::introspection::RuntimeInfo;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::synchronous::monitor::monitor_notify_by_pid;
use containerd_shim::{ExitSignal, Flags, StartOpts};
use std::io::Write;
use std::os::fd::IntoRawFd;
use std::sync::Arc;

const RUNTIME_ID: &str = "io.containerd.runsc.v1";
const TTRPC_ADDRESS: &str = "TTRPC_ADDRESS";

fn main() {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let flags = match containerd_shim::parse(&args) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{RUNTIME_ID}: {e}");
            std::process::exit(2);
        }
    };
    if flags.version {
        println!(
            "{RUNTIME_ID} (containerd-shim-runsc-v1) {}",
            env!("CARGO_PKG_VERSION")
        );
        return;
    }
    init_logging(&flags);
    if let Err(e) = run(&flags) {
        tracing::error!("{}: {e}", flags.action);
        eprintln!("{RUNTIME_ID}: {e}");
        std::process::exit(1);
    }
}

fn run(flags: &Flags) -> Result<(), String> {
    if flags.info {
        let info = RuntimeInfo {
            name: RUNTIME_ID.to_string(),
            ..Default::default()
        };
        let bytes = info.write_to_bytes().map_err(|e| e.to_string())?;
        return write_stdout(&bytes);
    }
    if flags.namespace.is_empty() {
        return Err("-namespace is required".into());
    }
    match flags.action.as_str() {
        "start" => start(flags),
        "delete" => {
            set_subreaper()?;
            reap_children()?;
            let resp = delete(flags)?;
            let bytes = resp.write_to_bytes().map_err(|e| e.to_string())?;
            write_stdout(&bytes)
        }
        "" => serve(flags),
        other => Err(format!("unknown action {other:?}")),
    }
}

fn write_stdout(bytes: &[u8]) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| format!("writing the reply: {e}"))
}

/// Logs go to containerd's `log` fifo in the bundle (the serving shim has
/// no stderr; containerd 1.x takes `start`'s stderr as part of its reply),
/// else to stderr (`delete`, whose stderr containerd reports).
fn init_logging(flags: &Flags) {
    // `delete`'s stderr shows up as containerd's "cleanup warnings".
    let level = match (flags.debug, flags.action.as_str()) {
        (true, _) => "debug",
        (false, "delete") => "warn",
        (false, _) => "info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUNSC_SHIM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false);
    let fifo = if flags.action == "delete" {
        None
    } else {
        open_log_fifo()
    };
    let r = match fifo {
        Some(f) => b.with_writer(std::sync::Mutex::new(f)).try_init(),
        None if flags.action == "start" || flags.info => b.with_writer(std::io::sink).try_init(),
        None => b.with_writer(std::io::stderr).try_init(),
    };
    if let Err(e) = r {
        eprintln!("{RUNTIME_ID}: logging: {e}");
    }
}

/// containerd's `log` fifo, opened without blocking when nobody reads it.
fn open_log_fifo() -> Option<std::fs::File> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("log")
        .ok()?;
    // Blocking writes from here on: a full fifo must not lose lines.
    let fl = nix::fcntl::fcntl(f.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL).ok()?;
    let mut fl = nix::fcntl::OFlag::from_bits_truncate(fl);
    fl.remove(nix::fcntl::OFlag::O_NONBLOCK);
    nix::fcntl::fcntl(f.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(fl)).ok()?;
    Some(f)
}

fn set_subreaper() -> Result<(), String> {
    // SAFETY: prctl(2) PR_SET_CHILD_SUBREAPER takes plain integers.
    let r = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if r < 0 {
        return Err(format!(
            "becoming a child subreaper: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Reaps every child (ours and the orphans we inherit as subreaper) and
/// tells the exit monitor, which runsc commands and the service watch.
fn reap_children() -> Result<(), String> {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    use nix::unistd::Pid;
    let mut signals = signal_hook::iterator::Signals::new([
        libc::SIGCHLD,
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGPIPE,
    ])
    .map_err(|e| format!("signal handlers: {e}"))?;
    std::thread::Builder::new()
        .name("reaper".into())
        .spawn(move || loop {
            for sig in signals.wait() {
                if sig != libc::SIGCHLD {
                    tracing::debug!("signal {sig} ignored");
                    continue;
                }
                loop {
                    let (pid, code) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                        Ok(WaitStatus::Exited(pid, code)) => (pid, code),
                        Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, 128 + sig as i32),
                        Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => break,
                        Ok(_) => continue,
                        Err(e) => {
                            tracing::warn!("waitpid: {e}");
                            break;
                        }
                    };
                    if let Err(e) = monitor_notify_by_pid(pid.as_raw(), code) {
                        tracing::warn!("exit of {pid}: {e}");
                    }
                }
            }
        })
        .map_err(|e| format!("starting the reaper: {e}"))?;
    Ok(())
}

/// `start`: spawns the serving shim (same flags, `-socket ADDRESS`) and
/// prints the address it serves.
fn start(flags: &Flags) -> Result<(), String> {
    // containerd 2 pipes its bootstrap parameters in; what we need of them
    // is on the command line and in the environment too.
    let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
    let opts = StartOpts {
        id: flags.id.clone(),
        publish_binary: flags.publish_binary.clone(),
        address: flags.address.clone(),
        ttrpc_address: std::env::var(TTRPC_ADDRESS).unwrap_or_default(),
        namespace: flags.namespace.clone(),
        debug: flags.debug,
        ..Default::default()
    };
    if opts.ttrpc_address.is_empty() {
        return Err(format!("{TTRPC_ADDRESS} is not set"));
    }
    let (pid, address) =
        containerd_shim::spawn(opts, &flags.id, Vec::new()).map_err(|e| e.to_string())?;
    containerd_shim::util::write_address(&address).map_err(|e| e.to_string())?;
    tracing::info!("started the shim for {} (pid {pid}) at {address}", flags.id);
    write_stdout(address.as_bytes())
}

/// `delete`: cleanup after a shim that is gone (cwd is the bundle): the
/// sandbox is force-deleted and the rootfs unmounted.
fn delete(flags: &Flags) -> Result<DeleteResponse, String> {
    let bundle = std::env::current_dir().map_err(|e| format!("current dir: {e}"))?;
    tracing::info!("delete {} in {}", flags.id, bundle.display());
    match runsc::Runsc::load(&bundle) {
        Ok(r) => {
            if let Err(e) = r.run(
                &["delete".into(), "--force".into(), flags.id.clone().into()],
                runsc::ChildStdio::null(),
            ) {
                tracing::warn!("runsc delete {}: {e}", flags.id);
            }
        }
        Err(e) => tracing::warn!("no runsc settings in the bundle: {e}"),
    }
    let rootfs = bundle.join("rootfs");
    if rootfs.exists() {
        service::unmount(&rootfs);
    }
    // The dead shim's socket (`start` wrote its address into the bundle).
    if let Ok(addr) = std::fs::read_to_string(bundle.join("address")) {
        let path = addr.trim();
        let path = path.strip_prefix("unix://").unwrap_or(path);
        let is_socket = std::fs::symlink_metadata(path)
            .map(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
            .unwrap_or(false);
        if is_socket && std::os::unix::net::UnixStream::connect(path).is_err() {
            let _ = std::fs::remove_file(path);
        }
    }
    Ok(DeleteResponse {
        exit_status: 128 + libc::SIGKILL as u32,
        exited_at: MessageField::some(Timestamp::now()),
        ..Default::default()
    })
}

/// The serving shim: the Task API on `-socket` until Shutdown.
fn serve(flags: &Flags) -> Result<(), String> {
    if flags.socket.is_empty() {
        return Err("-socket is required".into());
    }
    set_subreaper()?;
    reap_children()?;
    let ttrpc_address =
        std::env::var(TTRPC_ADDRESS).map_err(|_| format!("{TTRPC_ADDRESS} is not set"))?;
    let publisher = RemotePublisher::new(&ttrpc_address)
        .map_err(|e| format!("connecting to containerd at {ttrpc_address}: {e}"))?;
    let exit = Arc::new(ExitSignal::default());
    let svc = service::Service::new(&flags.namespace, exit.clone(), publisher);
    let task: Arc<dyn containerd_shim::Task + Send + Sync> = Arc::new(svc);
    // The same service under task API v3 (containerd 2) and v2 (1.x): the
    // messages are the same.
    let v3 = create_task(task.clone());
    let v2 = create_task(task)
        .into_iter()
        .map(|(k, v)| (k.replace("/containerd.task.v3.", "/containerd.task.v2."), v))
        .collect();
    let path = flags
        .socket
        .strip_prefix("unix://")
        .unwrap_or(&flags.socket)
        .to_string();
    if let Some(dir) = std::path::Path::new(&path).parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let listener = match std::os::unix::net::UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            // A socket left by a shim that died.
            std::fs::remove_file(&path).map_err(|e| format!("{path}: {e}"))?;
            std::os::unix::net::UnixListener::bind(&path).map_err(|e| format!("{path}: {e}"))?
        }
        Err(e) => return Err(format!("{path}: {e}")),
    };
    // Wait blocks a worker until its process exits (containerd waits on
    // the task and on every exec at once): room for many.
    let mut server = Server::new()
        .set_thread_count_min(1)
        .set_thread_count_default(4)
        .set_thread_count_max(256)
        .add_listener(listener.into_raw_fd())
        .map_err(|e| e.to_string())?
        .register_service(v3)
        .register_service(v2);
    server.start().map_err(|e| e.to_string())?;
    // `start` waits for our stdout to close: point it at stderr.
    // SAFETY: dup2(2) of our own standard descriptors.
    unsafe {
        libc::dup2(libc::STDERR_FILENO, libc::STDOUT_FILENO);
    }
    tracing::info!("serving {} on {path}", flags.id);
    exit.wait();
    tracing::info!("shutting down");
    server.shutdown();
    let _ = std::fs::remove_file(&path);
    Ok(())
}
