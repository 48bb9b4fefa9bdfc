//! `containerd-shim-runsc-v1`: containerd's shim v2 for runsc, selected
//! with runtime_type `io.containerd.runsc.v1`. containerd starts it with
//! `start` (it spawns the serving shim and prints its ttrpc address),
//! talks the Task API to the serving shim, and runs `delete` to clean up
//! after a shim that died. The shim runs our `runsc` binary as the OCI
//! runtime for each operation, as containerd's runc.v2 shim runs runc.

mod error;
mod io;
mod runsc;
mod service;
mod stats;

use containerd_shim::api::DeleteResponse;
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::protobuf::MessageField;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::{Config, ExitSignal, Flags, StartOpts};
use std::sync::Arc;

const RUNTIME_ID: &str = "io.containerd.runsc.v1";

struct Shim {
    namespace: String,
    id: String,
    exit: Arc<ExitSignal>,
}

/// Logs go to containerd's `log` fifo in the bundle (the serving shim has
/// no stderr), else to stderr (`start` and `delete`, whose stderr
/// containerd reports).
fn init_logging(flags: &Flags) {
    let level = if flags.debug { "debug" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUNSC_SHIM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false);
    let serving = flags.action.is_empty();
    let fifo = if serving { open_log_fifo() } else { None };
    let r = match fifo {
        Some(f) => b.with_writer(std::sync::Mutex::new(f)).try_init(),
        None => b.with_writer(std::io::stderr).try_init(),
    };
    if let Err(e) = r {
        eprintln!("{RUNTIME_ID}: logging: {e}");
    }
}

/// containerd's reader of the `log` fifo, opened without blocking when
/// nobody reads it.
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

impl containerd_shim::Shim for Shim {
    type T = service::Service;

    fn new(_runtime_id: &str, flags: &Flags, _config: &mut Config) -> Self {
        init_logging(flags);
        Shim {
            namespace: flags.namespace.clone(),
            id: flags.id.clone(),
            exit: Arc::new(ExitSignal::default()),
        }
    }

    fn start_shim(&mut self, opts: StartOpts) -> Result<String, containerd_shim::Error> {
        let grouping = opts.id.clone();
        let (pid, address) = containerd_shim::spawn(opts, &grouping, Vec::new())?;
        containerd_shim::util::write_address(&address)?;
        tracing::info!("started the shim for {} (pid {pid}) at {address}", self.id);
        Ok(address)
    }

    /// Cleanup after a shim that is gone: the sandbox is force-deleted and
    /// the rootfs unmounted (cwd is the bundle).
    fn delete_shim(&mut self) -> Result<DeleteResponse, containerd_shim::Error> {
        let bundle = std::env::current_dir()
            .map_err(|e| containerd_shim::Error::Other(format!("current dir: {e}")))?;
        tracing::info!("delete {} in {}", self.id, bundle.display());
        match runsc::Runsc::load(&bundle) {
            Ok(r) => {
                if let Err(e) = r.run(
                    &["delete".into(), "--force".into(), self.id.clone().into()],
                    runsc::ChildStdio::null(),
                ) {
                    tracing::warn!("runsc delete {}: {e}", self.id);
                }
            }
            Err(e) => tracing::warn!("no runsc settings in the bundle: {e}"),
        }
        let rootfs = bundle.join("rootfs");
        if rootfs.exists() {
            service::unmount(&rootfs);
        }
        Ok(DeleteResponse {
            exit_status: 128 + libc::SIGKILL as u32,
            exited_at: MessageField::some(Timestamp::now()),
            ..Default::default()
        })
    }

    fn wait(&mut self) {
        self.exit.wait();
    }

    fn create_task_service(&self, publisher: RemotePublisher) -> Self::T {
        service::Service::new(&self.namespace, self.exit.clone(), publisher)
    }
}

fn main() {
    containerd_shim::run::<Shim>(
        RUNTIME_ID,
        Some(Config {
            no_setup_logger: true,
            ..Default::default()
        }),
    );
}
