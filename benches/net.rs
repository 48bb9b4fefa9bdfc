//! `net-bench`: socket throughput and round-trip latency natively, in the
//! sandbox with its own network stack (`--network=sandbox`) and with host
//! sockets (`--network=host`), side by side in one run.
//!
//! Two roles share this binary:
//!
//! * Inner (`--inner KIND BYTES|COUNT`): one process runs a server thread
//!   and a client thread talking over loopback (`tcp`: 127.0.0.1, `unix`:
//!   an AF_UNIX stream pair bound to a path) and prints one `key=value`
//!   line. `stream` moves BYTES in 64 KiB writes and reports MB/s; `rr`
//!   does COUNT 1-byte ping-pongs and reports microseconds per round
//!   trip. Only the transfer loop is timed, not process start-up.
//! * `--inner serve [ADDR]`: listens on ADDR (default 127.0.0.1; port
//!   0), prints `port=P`, and
//!   serves one connection: a first byte `s` makes it a sink (it answers
//!   the byte count when the client shuts down its side), `r` an echo
//!   server. The driver uses it for traffic from the host into the
//!   sandbox.
//! * Driver (no `--inner`): runs every workload natively and under
//!   `runsc do --network=MODE` for MODE in sandbox and host, `--reps` times
//!   interleaved, and prints medians and ratios to native.
//! * The "via veth" rows (root and iproute2 needed) put the server in a
//!   network namespace of its own reached through a veth pair, as docker's
//!   bridge mode does: natively (`ip netns exec`), and as an OCI container
//!   (`runsc run` of a bundle naming the namespace, root "/") whose
//!   interface the sandbox's stack takes over, or served by host sockets
//!   in that namespace with `--network=host`.

#[path = "common.rs"]
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

const CHUNK: usize = 64 * 1024;
const DEFAULT_REPS: usize = 3;
const DEFAULT_MIB: u64 = 256;
const DEFAULT_RR: u64 = 5_000;

const USAGE: &str = "\
usage:
  net-bench [--runsc PATH] [--reps R] [--mib M] [--rr N]
      driver: TCP and AF_UNIX stream throughput (M MiB, default 256) and
      1-byte round trips (N, default 5000) over loopback, natively and in
      the sandbox with --network=sandbox and --network=host; then the same
      from the host into a server in the sandbox. Prints medians of R runs
      (default 3) and ratios to native.
  net-bench --inner stream tcp|unix BYTES
  net-bench --inner rr tcp|unix COUNT
  net-bench --inner serve [ADDR]";

fn die(msg: String) -> ! {
    eprintln!("net-bench: {msg}");
    std::process::exit(1)
}

/// A connected (client, server) pair over loopback TCP or a Unix path.
enum Pair {
    Tcp(TcpStream, TcpStream),
    Unix(UnixStream, UnixStream),
}

fn pair(kind: &str) -> std::io::Result<Pair> {
    match kind {
        "tcp" => {
            let l = TcpListener::bind("127.0.0.1:0")?;
            let c = TcpStream::connect(l.local_addr()?)?;
            let (s, _) = l.accept()?;
            c.set_nodelay(true)?;
            s.set_nodelay(true)?;
            Ok(Pair::Tcp(c, s))
        }
        "unix" => {
            let dir = std::env::temp_dir().join(format!("net-bench-{}", std::process::id()));
            let _ = std::fs::create_dir_all(&dir);
            let path = dir.join("s");
            let _ = std::fs::remove_file(&path);
            let l = UnixListener::bind(&path)?;
            let c = UnixStream::connect(&path)?;
            let (s, _) = l.accept()?;
            let _ = std::fs::remove_dir_all(&dir);
            Ok(Pair::Unix(c, s))
        }
        k => Err(std::io::Error::other(format!("unknown kind {k}"))),
    }
}

type Boxed = Box<dyn ReadWrite + Send>;

trait ReadWrite: Read + Write {
    fn shut_write(&self);
}

impl ReadWrite for TcpStream {
    fn shut_write(&self) {
        let _ = self.shutdown(Shutdown::Write);
    }
}

impl ReadWrite for UnixStream {
    fn shut_write(&self) {
        let _ = self.shutdown(Shutdown::Write);
    }
}

fn split(p: Pair) -> (Boxed, Boxed) {
    match p {
        Pair::Tcp(c, s) => (Box::new(c), Box::new(s)),
        Pair::Unix(c, s) => (Box::new(c), Box::new(s)),
    }
}

/// Sends `bytes` from client to server; returns MB/s.
fn stream(mut c: Boxed, mut s: Boxed, bytes: u64) -> f64 {
    let sink = std::thread::spawn(move || {
        let mut buf = vec![0u8; CHUNK];
        let mut got = 0u64;
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n as u64,
            }
        }
        got
    });
    let buf = vec![0x5au8; CHUNK];
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < bytes {
        let n = (bytes - sent).min(CHUNK as u64) as usize;
        if c.write_all(&buf[..n]).is_err() {
            die("write failed".into());
        }
        sent += n as u64;
    }
    c.shut_write();
    let got = sink.join().unwrap_or(0);
    let secs = start.elapsed().as_secs_f64();
    if got != bytes {
        die(format!("sent {bytes} bytes, the server got {got}"));
    }
    bytes as f64 / secs / 1e6
}

/// `count` 1-byte round trips; returns microseconds per round trip.
fn rr(mut c: Boxed, mut s: Boxed, count: u64) -> f64 {
    let echo = std::thread::spawn(move || {
        let mut b = [0u8; 1];
        while let Ok(1) = s.read(&mut b) {
            if s.write_all(&b).is_err() {
                break;
            }
        }
    });
    let mut b = [7u8; 1];
    let start = Instant::now();
    for _ in 0..count {
        if c.write_all(&b).is_err() || c.read_exact(&mut b).is_err() {
            die("round trip failed".into());
        }
    }
    let us = start.elapsed().as_secs_f64() * 1e6 / count as f64;
    c.shut_write();
    let _ = echo.join();
    us
}

/// The server end of host-to-sandbox runs, listening on `addr`.
fn serve(addr: &str) {
    let l = TcpListener::bind((addr, 0)).unwrap_or_else(|e| die(format!("bind {addr}: {e}")));
    let port = l.local_addr().map(|a| a.port()).unwrap_or(0);
    println!("port={port}");
    let _ = std::io::stdout().flush();
    let (mut s, _) = l.accept().unwrap_or_else(|e| die(format!("accept: {e}")));
    let _ = s.set_nodelay(true);
    let mut b = [0u8; 1];
    if s.read_exact(&mut b).is_err() {
        return;
    }
    if b[0] == b's' {
        let mut buf = vec![0u8; CHUNK];
        let mut got = 0u64;
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            got += n as u64;
        }
        let _ = s.write_all(&got.to_le_bytes());
    } else {
        while let Ok(1) = s.read(&mut b) {
            if s.write_all(&b).is_err() {
                break;
            }
        }
    }
}

fn inner(args: &[String]) {
    match args {
        [role, kind, n] if role == "stream" || role == "rr" => {
            let n: u64 = n.parse().unwrap_or_else(|_| die(format!("bad number {n}")));
            let p = pair(kind).unwrap_or_else(|e| die(format!("{kind} pair: {e}")));
            let (c, s) = split(p);
            if role == "stream" {
                println!("mbps={:.1}", stream(c, s, n));
            } else {
                println!("us={:.2}", rr(c, s, n));
            }
        }
        [role] if role == "serve" => serve("127.0.0.1"),
        [role, addr] if role == "serve" => serve(addr),
        _ => die(USAGE.into()),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Native,
    Sandbox,
    Host,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Native => "native",
            Mode::Sandbox => "sandbox",
            Mode::Host => "host",
        }
    }
}

fn command(mode: Mode, runsc: &PathBuf, args: &[&str]) -> Command {
    let me = std::env::current_exe().unwrap_or_else(|e| die(format!("current_exe: {e}")));
    let mut c = if mode == Mode::Native {
        Command::new(&me)
    } else {
        let mut c = Command::new(runsc);
        c.arg("do")
            .arg(format!("--network={}", mode.name()))
            .arg("--")
            .arg(&me);
        c
    };
    c.arg("--inner").args(args);
    c
}

/// Runs one inner workload; the value of its `key=value` line.
fn run_inner(mode: Mode, runsc: &PathBuf, args: &[&str]) -> Result<f64, String> {
    let out = command(mode, runsc, args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.split_once('=').and_then(|(_, v)| v.trim().parse().ok()))
        .ok_or_else(|| {
            let err = String::from_utf8_lossy(&out.stderr);
            err.lines().last().unwrap_or("no output").to_string()
        })
}

/// A network namespace with a veth pair to the host (host side
/// 10.237.N.1/24, namespace side .2), removed on drop.
struct NetNs {
    name: String,
    host_if: String,
    ns_ip: std::net::Ipv4Addr,
}

impl NetNs {
    fn new() -> Result<NetNs, String> {
        // SAFETY: geteuid(2) has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("needs root (network namespaces)".into());
        }
        let id = std::process::id();
        let n = (id % 250 + 1) as u8;
        let ns = NetNs {
            name: format!("nb{id}"),
            host_if: format!("nb{id}h"),
            ns_ip: std::net::Ipv4Addr::new(10, 237, n, 2),
        };
        let peer = format!("nb{id}c");
        let host_ip = format!("10.237.{n}.1");
        let ip = |args: &[&str]| -> Result<(), String> {
            let o = Command::new("ip")
                .args(args)
                .output()
                .map_err(|e| format!("ip: {e} (install iproute2)"))?;
            if o.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "ip {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&o.stderr).trim()
                ))
            }
        };
        ip(&["netns", "add", &ns.name])?;
        let in_ns = |args: &[&str]| {
            let mut a = vec!["netns", "exec", &ns.name, "ip"];
            a.extend(args);
            ip(&a)
        };
        ip(&[
            "link",
            "add",
            &ns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
        ])?;
        ip(&["link", "set", &peer, "netns", &ns.name])?;
        ip(&["addr", "add", &format!("{host_ip}/24"), "dev", &ns.host_if])?;
        ip(&["link", "set", &ns.host_if, "up"])?;
        in_ns(&["addr", "add", &format!("{}/24", ns.ns_ip), "dev", &peer])?;
        in_ns(&["link", "set", &peer, "up"])?;
        in_ns(&["link", "set", "lo", "up"])?;
        in_ns(&["route", "add", "default", "via", &host_ip])?;
        Ok(ns)
    }

    fn path(&self) -> String {
        format!("/var/run/netns/{}", self.name)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// An OCI bundle (root "/", read-only) that runs `args` in network
/// namespace `netns`, and a state root for `runsc run`; removed on drop.
struct Bundle {
    dir: PathBuf,
    runsc: PathBuf,
    id: String,
}

impl Bundle {
    fn new(runsc: &PathBuf, netns: &str, args: &[String]) -> Result<Bundle, String> {
        let dir = std::env::temp_dir().join(format!("net-bench-bundle-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("state")).map_err(|e| e.to_string())?;
        let b = Bundle {
            dir,
            runsc: runsc.clone(),
            id: format!("nb{}", std::process::id()),
        };
        let o = Command::new(runsc)
            .args(["spec", "--bundle"])
            .arg(&b.dir)
            .output()
            .map_err(|e| e.to_string())?;
        if !o.status.success() {
            return Err(format!(
                "runsc spec: {}",
                String::from_utf8_lossy(&o.stderr)
            ));
        }
        let path = b.dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
        let mut c: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        c["process"]["args"] = serde_json::json!(args);
        c["process"]["terminal"] = serde_json::Value::Bool(false);
        c["root"] = serde_json::json!({"path": "/", "readonly": true});
        let nss = c["linux"]["namespaces"]
            .as_array_mut()
            .ok_or("config.json: no linux.namespaces")?;
        nss.retain(|n| n["type"] != "network");
        nss.push(serde_json::json!({"type": "network", "path": netns}));
        std::fs::write(&path, c.to_string()).map_err(|e| e.to_string())?;
        Ok(b)
    }
}

impl Drop for Bundle {
    /// A run cut short (a failed connect kills `runsc run`) must not leave
    /// its sandbox behind.
    fn drop(&mut self) {
        let _ = Command::new(&self.runsc)
            .arg("--root")
            .arg(self.dir.join("state"))
            .args(["delete", "--force", &self.id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The server command for a "via veth" run: natively in the namespace, or
/// `runsc run` of a bundle naming it (kept alive by the returned guard).
fn netns_server(
    mode: Mode,
    runsc: &PathBuf,
    ns: &NetNs,
) -> Result<(Command, Option<Bundle>), String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let me = me.to_string_lossy().into_owned();
    if mode == Mode::Native {
        let mut c = Command::new("ip");
        c.args([
            "netns", "exec", &ns.name, &me, "--inner", "serve", "0.0.0.0",
        ]);
        return Ok((c, None));
    }
    let args: Vec<String> = [me.as_str(), "--inner", "serve", "0.0.0.0"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let b = Bundle::new(runsc, &ns.path(), &args)?;
    let mut c = Command::new(runsc);
    c.arg("--root")
        .arg(b.dir.join("state"))
        .arg(format!("--network={}", mode.name()))
        .args(["run", "--bundle"])
        .arg(&b.dir)
        .arg(&b.id);
    Ok((c, Some(b)))
}

/// From the host into a server running in `mode`: MB/s or µs per trip.
fn run_from_host(mode: Mode, runsc: &PathBuf, rr_mode: bool, n: u64) -> Result<f64, String> {
    if mode == Mode::Sandbox {
        return Err("n/a: the stack of `runsc do` has loopback only (see the veth rows)".into());
    }
    let cmd = command(mode, runsc, &["serve"]);
    drive_server(cmd, std::net::Ipv4Addr::LOCALHOST, rr_mode, n)
}

/// As `run_from_host`, into a server behind a veth pair, in a namespace
/// made for this run: the sandbox's stack takes the interface's address
/// away from the host kernel, as gVisor's does, so a namespace serves one
/// container.
fn run_via_veth(mode: Mode, runsc: &PathBuf, rr_mode: bool, n: u64) -> Result<f64, String> {
    let ns = NetNs::new()?;
    let (cmd, _bundle) = netns_server(mode, runsc, &ns)?;
    drive_server(cmd, ns.ns_ip, rr_mode, n)
}

/// Starts `cmd` (a `serve` role), connects to `ip`:its port and measures.
fn drive_server(
    mut cmd: Command,
    ip: std::net::Ipv4Addr,
    rr_mode: bool,
    n: u64,
) -> Result<f64, String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    let _ = BufReader::new(stdout).read_line(&mut line);
    let port: u16 = match line
        .trim()
        .strip_prefix("port=")
        .and_then(|p| p.parse().ok())
    {
        Some(p) => p,
        None => {
            let _ = child.kill();
            let out = child.wait_with_output().map_err(|e| e.to_string())?;
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(err.lines().last().unwrap_or("no port").to_string());
        }
    };
    let r = (|| -> Result<f64, String> {
        let mut c = TcpStream::connect_timeout(
            &std::net::SocketAddr::from((ip, port)),
            Duration::from_secs(5),
        )
        .map_err(|e| {
            format!("connect: {e} (the sandbox's stack is not reachable from the host)")
        })?;
        c.set_nodelay(true).map_err(|e| e.to_string())?;
        c.set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| e.to_string())?;
        if rr_mode {
            c.write_all(b"r").map_err(|e| e.to_string())?;
            let mut b = [1u8; 1];
            let start = Instant::now();
            for _ in 0..n {
                c.write_all(&b).map_err(|e| e.to_string())?;
                c.read_exact(&mut b).map_err(|e| e.to_string())?;
            }
            Ok(start.elapsed().as_secs_f64() * 1e6 / n as f64)
        } else {
            c.write_all(b"s").map_err(|e| e.to_string())?;
            let buf = vec![0x5au8; CHUNK];
            let start = Instant::now();
            let mut sent = 0;
            while sent < n {
                let k = (n - sent).min(CHUNK as u64) as usize;
                c.write_all(&buf[..k]).map_err(|e| e.to_string())?;
                sent += k as u64;
            }
            c.shutdown(Shutdown::Write).map_err(|e| e.to_string())?;
            let mut got = [0u8; 8];
            c.read_exact(&mut got).map_err(|e| e.to_string())?;
            if u64::from_le_bytes(got) != n {
                return Err("byte count mismatch".into());
            }
            Ok(n as f64 / start.elapsed().as_secs_f64() / 1e6)
        }
    })();
    if r.is_err() {
        let _ = child.kill();
    }
    let _ = child.wait();
    r
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--inner") {
        inner(&args[1..]);
        return ExitCode::SUCCESS;
    }
    let (mut reps, mut mib, mut rr_n, mut runsc) = (DEFAULT_REPS, DEFAULT_MIB, DEFAULT_RR, None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().unwrap_or_else(|| die(USAGE.into()));
        match a.as_str() {
            "--reps" => reps = val().parse().unwrap_or_else(|_| die(USAGE.into())),
            "--mib" => mib = val().parse().unwrap_or_else(|_| die(USAGE.into())),
            "--rr" => rr_n = val().parse().unwrap_or_else(|_| die(USAGE.into())),
            "--runsc" => runsc = Some(PathBuf::from(val())),
            _ => die(USAGE.into()),
        }
    }
    let runsc = common::find_runsc(runsc.as_deref()).unwrap_or_else(|e| die(e));
    let bytes = (mib << 20).to_string();
    let rr_s = rr_n.to_string();
    let modes = [Mode::Native, Mode::Sandbox, Mode::Host];
    println!(
        "net-bench: {reps} reps, {mib} MiB streams, {rr_n} round trips; runsc = {}",
        runsc.display()
    );
    type Work<'a> = (
        &'a str,
        &'a str,
        Box<dyn Fn(Mode) -> Result<f64, String> + 'a>,
    );
    let work: Vec<Work> = vec![
        (
            "tcp loopback stream",
            "MB/s",
            Box::new(|m| run_inner(m, &runsc, &["stream", "tcp", &bytes])),
        ),
        (
            "tcp loopback 1-byte rr",
            "us",
            Box::new(|m| run_inner(m, &runsc, &["rr", "tcp", &rr_s])),
        ),
        (
            "unix stream",
            "MB/s",
            Box::new(|m| run_inner(m, &runsc, &["stream", "unix", &bytes])),
        ),
        (
            "unix 1-byte rr",
            "us",
            Box::new(|m| run_inner(m, &runsc, &["rr", "unix", &rr_s])),
        ),
        (
            "host -> guest tcp stream",
            "MB/s",
            Box::new(|m| run_from_host(m, &runsc, false, mib << 20)),
        ),
        (
            "host -> guest tcp 1-byte rr",
            "us",
            Box::new(|m| run_from_host(m, &runsc, true, rr_n)),
        ),
        (
            "host -> veth tcp stream",
            "MB/s",
            Box::new(|m| run_via_veth(m, &runsc, false, mib << 20)),
        ),
        (
            "host -> veth tcp 1-byte rr",
            "us",
            Box::new(|m| run_via_veth(m, &runsc, true, rr_n)),
        ),
    ];
    println!(
        "{:<28} {:>6} {:>12} {:>12} {:>12} {:>10} {:>10}",
        "workload", "unit", "native", "sandbox", "host", "sbx/nat", "host/nat"
    );
    for (name, unit, f) in &work {
        let mut vals: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
        let mut errs: Vec<Option<String>> = vec![None; modes.len()];
        for _ in 0..reps {
            for (i, m) in modes.iter().enumerate() {
                if errs[i].is_some() {
                    continue;
                }
                match f(*m) {
                    Ok(v) => vals[i].push(v),
                    Err(e) => errs[i] = Some(e),
                }
            }
        }
        let med: Vec<Option<f64>> = vals
            .iter_mut()
            .map(|v| (!v.is_empty()).then(|| median(v)))
            .collect();
        let cell = |i: usize| match med[i] {
            Some(v) => format!("{v:.1}"),
            None if errs[i].as_deref().is_some_and(|e| e.starts_with("n/a")) => "n/a".into(),
            None => "failed".into(),
        };
        let ratio = |i: usize| match (med[0], med[i]) {
            // Time units: sandbox/native; rates: native/sandbox, so that
            // "3.0x" always means three times slower.
            (Some(n), Some(v)) if *unit == "us" => format!("{:.1}x", v / n),
            (Some(n), Some(v)) => format!("{:.1}x", n / v),
            _ => "-".into(),
        };
        println!(
            "{:<28} {:>6} {:>12} {:>12} {:>12} {:>10} {:>10}",
            name,
            unit,
            cell(0),
            cell(1),
            cell(2),
            ratio(1),
            ratio(2)
        );
        for (i, e) in errs.iter().enumerate() {
            if let Some(e) = e {
                println!("    {} failed: {e}", modes[i].name());
            }
        }
    }
    ExitCode::SUCCESS
}
