//! `runsc`: the command line of the sandbox. This version has `do` (run a
//! host command sandboxed, with the host root as a read-only image) and the
//! hidden `gofer` role it starts as a separate process.

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "runsc",
    about = "An application kernel sandbox for Linux programs",
    version
)]
struct Cli {
    /// Verbose logging to stderr.
    #[arg(long, global = true)]
    debug: bool,
    /// Print every guest system call with decoded arguments and result.
    #[arg(long, global = true)]
    strace: bool,
    #[command(subcommand)]
    cmd: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a command in a sandbox, using the host's root filesystem as a
    /// read-only image (with a private /tmp).
    Do(DoArgs),
    /// Serve a root filesystem to a sentry (internal).
    #[command(hide = true)]
    Gofer(GoferArgs),
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
}

fn main() {
    let cli = Cli::parse();
    let level = if cli.debug { "debug" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RUNSC_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .with_writer(std::io::stderr)
        .init();
    let code = match run(cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("runsc: {e:#}");
            // The command itself could not run: 127/126 like a shell;
            // anything else is the runtime's own failure.
            e.downcast_ref::<sentry::boot::ExecFailure>()
                .map_or(125, |f| f.code)
        }
    };
    std::process::exit(code);
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.cmd {
        Command::Gofer(g) => {
            raise_nofile();
            gofer::run(&g.root, g.fd, !g.rw)?;
            Ok(0)
        }
        Command::Do(d) => run_do(d, cli.strace),
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
    let (ours, theirs) = gofer::socketpair().context("creating the gofer socket")?;
    let exe = std::env::current_exe().context("finding our own executable")?;
    let child_fd = theirs.as_raw_fd();
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
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("gofer")
        .arg("--root")
        .arg(&root)
        .args(["--fd", "3"]);
    // Without the overlay, an image directory the user named is served
    // writable (the guest's changes land in it); the host's own root never is.
    if !d.overlay && d.image_root.is_some() {
        cmd.arg("--rw");
    }
    // SAFETY: between fork and exec we only call async-signal-safe dup2 and
    // prctl on fds and values we own.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(child_fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd.stdin(std::process::Stdio::null());
    let _gofer = cmd.spawn().context("starting the gofer")?;
    drop(theirs);
    sentry::boot(sentry::BootConfig {
        argv: d.command,
        env: default_env(&d.env),
        cwd: d.cwd,
        strace,
        gofer: ours,
        overlay: d.overlay,
        private_tmp: d.image_root.is_none(),
        network: d.network.into(),
    })
}
