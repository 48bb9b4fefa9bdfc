//! `runsc`: the command line of the sandbox. This file is argument parsing
//! only: the OCI runtime commands live in the library (`runsc_cli::oci`),
//! `do` runs a host command sandboxed, and the hidden `gofer` and `boot`
//! roles are the processes a sandbox is made of.

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use runsc_cli::oci::{self, commands, GlobalOpts};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "runsc",
    about = "An application kernel sandbox for Linux programs",
    version
)]
struct Cli {
    /// Verbose logging (to --log, else stderr).
    #[arg(long, global = true)]
    debug: bool,
    /// Print every guest system call with decoded arguments and result.
    #[arg(long, global = true)]
    strace: bool,
    /// Directory holding container state (OCI commands; give it before the
    /// command).
    #[arg(long = "root", value_name = "DIR", default_value = oci::DEFAULT_ROOT)]
    state_root: PathBuf,
    /// Log file (containerd and docker read errors from it).
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    log_format: String,
    /// Systemd cgroup management (not supported).
    #[arg(long)]
    systemd_cgroup: bool,
    /// Overlay a memory layer on a container's root so writes never reach
    /// the image (`--overlay=false`: writes reach the rootfs directory).
    #[arg(long = "overlay", id = "global_overlay", value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    global_overlay: bool,
    /// How guest code runs: ptrace.
    #[arg(long, default_value = "ptrace")]
    platform: String,
    /// Network mode for create/run: sandbox (the sentry's own TCP/IP
    /// stack), host (host sockets) or none (loopback only).
    #[arg(long, default_value = "sandbox")]
    network: String,
    #[command(subcommand)]
    cmd: Command,
}

// Parsed once per run: the size of the biggest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run a command in a sandbox, using the host's root filesystem as a
    /// read-only image (with a private /tmp).
    Do(DoArgs),
    /// Create a container from a bundle; its process waits for `start`.
    Create(CreateArgs),
    /// Start a created container.
    Start(IdArg),
    /// Print a container's OCI state as JSON.
    State(IdArg),
    /// Send a signal to a container's init process (default TERM).
    Kill(KillArgs),
    /// Delete a stopped container (with --force, also a running one).
    Delete(DeleteArgs),
    /// Create and start a container, wait for it, and delete it.
    Run(RunArgs),
    /// List containers.
    List(ListArgs),
    /// List a container's processes.
    Ps(PsArgs),
    /// Wait for a container to exit and print its exit status.
    Wait(IdArg),
    /// Write a default config.json into a bundle.
    Spec(SpecArgs),
    /// Run a process in a running container.
    Exec(ExecArgs),
    /// Wait for an exec'd process and exit with its status (internal,
    /// started by `exec --detach`).
    #[command(hide = true)]
    ExecWait(ExecWaitArgs),
    /// Pause a container (freezes its cgroup).
    Pause(IdArg),
    /// Resume a paused container.
    Resume(IdArg),
    /// Change a running container's resource limits.
    Update(UpdateArgs),
    /// A container's resource usage as JSON (runc's stats events).
    Events(EventsArgs),
    /// Serve a root filesystem to a sentry (internal).
    #[command(hide = true)]
    Gofer(GoferArgs),
    /// The sandbox process of a container (internal, started by create).
    #[command(hide = true)]
    Boot(BootArgs),
}

#[derive(Args)]
struct IdArg {
    id: String,
}

#[derive(Args)]
struct CreateFlags {
    /// Bundle directory (default: the current directory).
    #[arg(long, short = 'b', value_name = "DIR")]
    bundle: Option<PathBuf>,
    /// Write the container's host pid here.
    #[arg(long, value_name = "FILE")]
    pid_file: Option<PathBuf>,
    /// Unix socket to send the terminal's pty master to.
    #[arg(long, value_name = "SOCKET")]
    console_socket: Option<PathBuf>,
    /// Accepted for runc compatibility; no effect.
    #[arg(long, hide = true)]
    no_pivot: bool,
    /// Accepted for runc compatibility; no effect.
    #[arg(long, hide = true)]
    no_new_keyring: bool,
}

impl CreateFlags {
    fn opts(&self) -> commands::CreateOpts {
        commands::CreateOpts {
            bundle: self.bundle.clone(),
            pid_file: self.pid_file.clone(),
            console_socket: self.console_socket.clone(),
        }
    }
}

#[derive(Args)]
struct CreateArgs {
    #[command(flatten)]
    flags: CreateFlags,
    id: String,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    flags: CreateFlags,
    /// Return once started instead of waiting for the container.
    #[arg(long, short = 'd')]
    detach: bool,
    id: String,
}

#[derive(Args)]
struct KillArgs {
    /// Signal every process of the container.
    #[arg(long, short = 'a')]
    all: bool,
    id: String,
    /// TERM, SIGTERM or 15.
    #[arg(default_value = "TERM")]
    signal: String,
}

#[derive(Args)]
struct DeleteArgs {
    /// Kill the container first if it runs.
    #[arg(long, short = 'f')]
    force: bool,
    id: String,
}

#[derive(Args)]
struct ListArgs {
    /// table or json.
    #[arg(long, short = 'f', default_value = "table")]
    format: String,
    /// Print only the ids.
    #[arg(long, short = 'q')]
    quiet: bool,
}

#[derive(Args)]
struct PsArgs {
    /// table or json (json: the container's host pids).
    #[arg(long, short = 'f', default_value = "table")]
    format: String,
    id: String,
}

#[derive(Args)]
struct SpecArgs {
    /// Bundle directory to write config.json into (default: current).
    #[arg(long, short = 'b', value_name = "DIR")]
    bundle: Option<PathBuf>,
}

#[derive(Args)]
struct ExecArgs {
    /// process.json: the OCI process to run (instead of a command).
    #[arg(long, short = 'p', value_name = "FILE")]
    process: Option<PathBuf>,
    /// Return once started; the pid file names a process that exits with
    /// the exec'd process's status.
    #[arg(long, short = 'd')]
    detach: bool,
    #[arg(long, value_name = "FILE")]
    pid_file: Option<PathBuf>,
    /// Unix socket to send the terminal's pty master to.
    #[arg(long, value_name = "SOCKET")]
    console_socket: Option<PathBuf>,
    /// Working directory (default: the container's).
    #[arg(long)]
    cwd: Option<String>,
    /// K=V added to the container's environment (repeatable).
    #[arg(long, short = 'e')]
    env: Vec<String>,
    /// Allocate a terminal.
    #[arg(long, short = 't')]
    tty: bool,
    /// uid[:gid] to run as.
    #[arg(long, short = 'u')]
    user: Option<String>,
    /// Extra group ids (repeatable).
    #[arg(long = "additional-gids", short = 'g')]
    additional_gids: Vec<u32>,
    /// Accepted for runc compatibility; no effect.
    #[arg(long, hide = true)]
    no_new_privs: bool,
    /// Accepted for runc compatibility; no effect.
    #[arg(long, hide = true)]
    process_label: Option<String>,
    /// Accepted for runc compatibility; no effect.
    #[arg(long, hide = true)]
    apparmor: Option<String>,
    /// Accepted for runc compatibility; no effect.
    #[arg(long, hide = true)]
    cap: Vec<String>,
    /// Accepted for runc compatibility; no effect.
    #[arg(long, hide = true)]
    ignore_paused: bool,
    /// Accepted for runc compatibility; no effect.
    #[arg(long, hide = true)]
    cgroup: Option<String>,
    /// Accepted for runc compatibility: only 0 is supported.
    #[arg(long, hide = true, default_value_t = 0)]
    preserve_fds: u32,
    id: String,
    /// Command and arguments (without --process).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(Args)]
struct UpdateArgs {
    /// JSON file of linux.resources ("-": stdin); the flags override it.
    #[arg(long, short = 'r', value_name = "FILE")]
    resources: Option<PathBuf>,
    /// Memory limit (e.g. 64m; -1: none).
    #[arg(long, short = 'm', allow_hyphen_values = true)]
    memory: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    memory_reservation: Option<String>,
    /// Memory plus swap limit (-1: none).
    #[arg(long, allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// Not supported.
    #[arg(long)]
    kernel_memory: Option<String>,
    #[arg(long)]
    cpu_shares: Option<u64>,
    /// CFS period (µs).
    #[arg(long)]
    cpu_period: Option<u64>,
    /// CFS quota (µs per period; -1: none).
    #[arg(long, allow_hyphen_values = true)]
    cpu_quota: Option<i64>,
    /// Not supported.
    #[arg(long)]
    cpu_rt_period: Option<u64>,
    /// Not supported.
    #[arg(long, allow_hyphen_values = true)]
    cpu_rt_runtime: Option<i64>,
    #[arg(long)]
    cpuset_cpus: Option<String>,
    #[arg(long)]
    cpuset_mems: Option<String>,
    /// Maximum number of host tasks (0 or -1: none).
    #[arg(long, allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    #[arg(long)]
    blkio_weight: Option<u16>,
    id: String,
}

#[derive(Args)]
struct EventsArgs {
    /// Print the stats once and exit.
    #[arg(long)]
    stats: bool,
    /// Seconds between stats events.
    #[arg(long, default_value = "5s")]
    interval: String,
    id: String,
}

#[derive(Args)]
struct ExecWaitArgs {
    #[arg(long)]
    pid: i32,
    id: String,
}

#[derive(Args)]
struct BootArgs {
    #[arg(long)]
    bundle: PathBuf,
    /// Where to report readiness or the error that prevented it.
    #[arg(long)]
    sync_fd: i32,
    id: String,
}

#[derive(Args)]
struct DoArgs {
    /// Directory to use as the image's root filesystem (default: the
    /// host's root, with a private /tmp).
    #[arg(long = "root", id = "image_root", value_name = "DIR")]
    image_root: Option<PathBuf>,
    /// Overlay a memory layer on the root so writes never reach the image
    /// (`--overlay=false` makes the root read-only instead).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    overlay: bool,
    /// How inet sockets reach the network: `sandbox` (the sentry's own
    /// stack), `host` (host sockets: speed over isolation) or `none`.
    #[arg(long, value_enum, default_value_t = Network::Sandbox)]
    network: Network,
    /// Let the guest connect(2) to host Unix sockets that are files of the
    /// image (like gVisor's --host-uds=open); off by default.
    #[arg(long)]
    host_uds: bool,
    /// Working directory inside the sandbox.
    #[arg(long, default_value = "/")]
    cwd: String,
    /// Environment variable K=V for the command (repeatable); PATH, HOME and
    /// TERM default to sensible values.
    #[arg(short = 'e', long = "env")]
    env: Vec<String>,
    /// Command and arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Network {
    Sandbox,
    Host,
    None,
}

impl From<Network> for sentry::net::NetworkMode {
    fn from(n: Network) -> Self {
        match n {
            Network::Sandbox => sentry::net::NetworkMode::Sandbox,
            Network::Host => sentry::net::NetworkMode::Host,
            Network::None => sentry::net::NetworkMode::None,
        }
    }
}

#[derive(Args)]
struct GoferArgs {
    #[arg(long)]
    root: PathBuf,
    /// The connected socket fd to serve.
    #[arg(long)]
    fd: i32,
    /// Allow writes (default: read-only).
    #[arg(long)]
    rw: bool,
    /// Let the sandbox connect to host Unix sockets found in the tree.
    #[arg(long)]
    host_uds: bool,
    /// Make a user namespace, announce it on this fd, wait there until
    /// the maps are written, then become its root.
    #[arg(long)]
    userns_sync_fd: Option<i32>,
}

fn main() {
    let cli = Cli::parse();
    let g = GlobalOpts {
        root: cli.state_root.clone(),
        log: cli.log.clone(),
        log_format: cli.log_format.clone(),
        debug: cli.debug,
        strace: cli.strace,
        overlay: cli.global_overlay,
        platform: cli.platform.clone(),
        network: cli.network.clone(),
        systemd_cgroup: cli.systemd_cgroup,
    };
    let is_do = matches!(cli.cmd, Command::Do(_) | Command::Gofer(_));
    runsc_cli::logging::init(&g);
    let code = match run(cli, &g) {
        Ok(c) => c,
        Err(e) => {
            runsc_cli::logging::error(&g, &format!("{e:#}"));
            if let Some(f) = e.downcast_ref::<oci::control::ExecFailed>() {
                f.code
            } else if is_do {
                // The command itself could not run: 127/126 like a shell;
                // anything else is the runtime's own failure.
                e.downcast_ref::<sentry::boot::ExecFailure>()
                    .map_or(125, |f| f.code)
            } else {
                1
            }
        }
    };
    std::process::exit(code);
}

fn run(cli: Cli, g: &GlobalOpts) -> anyhow::Result<i32> {
    let ok = |r: anyhow::Result<()>| r.map(|()| 0);
    match cli.cmd {
        Command::Gofer(a) => {
            raise_nofile();
            if let Some(fd) = a.userns_sync_fd {
                runsc_cli::userns::become_root(fd)?;
            }
            gofer::run_with(&a.root, a.fd, !a.rw, a.host_uds)?;
            Ok(0)
        }
        Command::Do(d) => run_do(d, cli.strace),
        Command::Boot(b) => commands::boot(g, &b.id, &b.bundle, b.sync_fd),
        Command::Create(c) => ok(commands::create(g, &c.id, &c.flags.opts())),
        Command::Start(a) => ok(commands::start(g, &a.id)),
        Command::State(a) => ok(commands::state(g, &a.id)),
        Command::Kill(k) => ok(commands::kill(g, &k.id, &k.signal, k.all)),
        Command::Delete(d) => ok(commands::delete(g, &d.id, d.force)),
        Command::Run(r) => commands::run(g, &r.id, &r.flags.opts(), r.detach),
        Command::List(l) => ok(match (l.format.as_str(), l.quiet) {
            (_, true) => commands::list_ids(g),
            ("table", _) => commands::list(g, false),
            ("json", _) => commands::list(g, true),
            (f, _) => Err(anyhow::anyhow!("--format {f}: expected table or json")),
        }),
        Command::Ps(p) => ok(match p.format.as_str() {
            "table" => commands::ps(g, &p.id, false),
            "json" => commands::ps(g, &p.id, true),
            f => Err(anyhow::anyhow!("--format {f}: expected table or json")),
        }),
        Command::Wait(a) => ok(commands::wait(g, &a.id)),
        Command::Spec(s) => ok(commands::spec(&s.bundle)),
        Command::Exec(e) => {
            if e.preserve_fds != 0 {
                bail!("--preserve-fds: not supported");
            }
            commands::exec(
                g,
                &e.id,
                &commands::ExecOpts {
                    process: e.process,
                    detach: e.detach,
                    pid_file: e.pid_file,
                    console_socket: e.console_socket,
                    cwd: e.cwd,
                    env: e.env,
                    tty: e.tty,
                    user: e.user,
                    additional_gids: e.additional_gids,
                    args: e.command,
                },
            )
        }
        Command::ExecWait(w) => commands::exec_wait(g, &w.id, w.pid, false),
        Command::Pause(a) => ok(commands::pause(g, &a.id)),
        Command::Resume(a) => ok(commands::resume(g, &a.id)),
        Command::Update(u) => ok(commands::update(
            g,
            &u.id,
            &commands::UpdateOpts {
                resources: u.resources,
                memory: u.memory,
                memory_reservation: u.memory_reservation,
                memory_swap: u.memory_swap,
                kernel_memory: u.kernel_memory,
                cpu_shares: u.cpu_shares,
                cpu_period: u.cpu_period,
                cpu_quota: u.cpu_quota,
                cpu_rt_period: u.cpu_rt_period,
                cpu_rt_runtime: u.cpu_rt_runtime,
                cpuset_cpus: u.cpuset_cpus,
                cpuset_mems: u.cpuset_mems,
                pids_limit: u.pids_limit,
                blkio_weight: u.blkio_weight,
            },
        )),
        Command::Events(e) => {
            let secs = e.interval.trim_end_matches('s');
            let interval = secs
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e9)
                .with_context(|| format!("--interval {}: expected seconds like 5s", e.interval))?;
            ok(commands::events(
                g,
                &e.id,
                e.stats,
                std::time::Duration::from_secs_f64(interval),
            ))
        }
    }
}

/// The gofer holds one host fd per walked file: let it use all it may.
fn raise_nofile() {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: get/setrlimit with a live struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) == 0 {
            rl.rlim_cur = rl.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
        }
    }
}

fn default_env(user: &[String]) -> Vec<String> {
    let mut env: Vec<String> = Vec::new();
    let has = |k: &str| user.iter().any(|e| e.split('=').next() == Some(k));
    if !has("PATH") {
        env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    }
    if !has("HOME") {
        env.push("HOME=/root".into());
    }
    if !has("TERM") {
        if let Ok(t) = std::env::var("TERM") {
            env.push(format!("TERM={t}"));
        }
    }
    env.extend(user.iter().cloned());
    env
}

fn run_do(d: DoArgs, strace: bool) -> anyhow::Result<i32> {
    for e in &d.env {
        if !e.contains('=') {
            bail!("-e {e}: expected K=V");
        }
    }
    let root = match &d.image_root {
        Some(r) => {
            let meta = std::fs::metadata(r).with_context(|| format!("--root {}", r.display()))?;
            if !meta.is_dir() {
                bail!("--root {}: not a directory", r.display());
            }
            std::fs::canonicalize(r).with_context(|| format!("--root {}", r.display()))?
        }
        None => PathBuf::from("/"),
    };
    // Without the overlay, an image directory the user named is served
    // writable (the guest's changes land in it); the host's own root never is.
    let ours = runsc_cli::gofer_process::spawn_gofer_with(
        &root,
        !d.overlay && d.image_root.is_some(),
        d.host_uds,
    )?;
    sentry::boot(sentry::BootConfig {
        argv: d.command,
        env: default_env(&d.env),
        cwd: d.cwd,
        strace,
        gofer: ours,
        overlay: d.overlay,
        private_tmp: d.image_root.is_none(),
        root_readonly: false,
        gofer_mounts: Vec::new(),
        hostname: None,
        user: sentry::boot::User::default(),
        rlimits: Vec::new(),
        tmpfs_mounts: Vec::new(),
        network: d.network.into(),
        take_interfaces: false,
        file_mounts: Vec::new(),
        cpus: None,
        memory_limit: None,
        pids_limit: None,
        domainname: None,
        sysctls: Vec::new(),
        masked_paths: Vec::new(),
        readonly_paths: Vec::new(),
        stub_user_namespace: None,
        // On a terminal (stdin is one): the sandbox's own pty.
        terminal: true,
    })
}
