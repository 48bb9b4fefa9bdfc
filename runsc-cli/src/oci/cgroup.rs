//! The sandbox's cgroup on the host: created from config.json's
//! `linux.cgroupsPath`, given `linux.resources` (cgroup v1 and v2), joined
//! by the sandbox's host processes (sentry and gofers), frozen for
//! pause/resume, read for stats, and removed on delete.
//!
//! Every guest page lives in the sentry's memory file and every guest
//! instruction runs in a stub process of the sandbox, so limits on the
//! sandbox's cgroup bound the whole container: a memory limit ends in the
//! kernel's OOM killer taking the sandbox (exit 137), as with runc.
//! `linux.resources.devices` is not applied: the sentry never opens host
//! devices for the guest, its /dev is its own.

use anyhow::{bail, Context as _, Result};
use oci_spec::runtime::LinuxResources;
use std::path::{Path, PathBuf};

/// Controllers a v1 sandbox cgroup is made in.
const V1_CONTROLLERS: [&str; 6] = ["memory", "cpu", "cpuacct", "cpuset", "pids", "blkio"];
/// The freezer is joined too (pause/resume).
const V1_FREEZER: &str = "freezer";

/// Where the host's cgroup hierarchies are mounted.
pub const ROOT: &str = "/sys/fs/cgroup";

/// Whether `r` asks for any limit (devices rules, which every docker
/// container carries, and zero values, which mean "unset", do not).
pub fn requested(r: &LinuxResources) -> bool {
    let mem = r.memory().as_ref().is_some_and(|m| {
        m.limit().is_some_and(|v| v > 0)
            || m.reservation().is_some_and(|v| v > 0)
            || m.swap().is_some_and(|v| v > 0)
            || m.disable_oom_killer() == Some(true)
    });
    let cpu = r.cpu().as_ref().is_some_and(|c| {
        c.shares().is_some_and(|v| v > 0)
            || c.quota().is_some_and(|v| v > 0)
            || c.cpus().as_ref().is_some_and(|v| !v.is_empty())
            || c.mems().as_ref().is_some_and(|v| !v.is_empty())
    });
    let pids = r.pids().as_ref().is_some_and(|p| p.limit() > 0);
    let blkio = r.block_io().as_ref().is_some_and(|b| {
        b.weight().is_some_and(|w| w > 0)
            || [
                b.throttle_read_bps_device(),
                b.throttle_write_bps_device(),
                b.throttle_read_iops_device(),
                b.throttle_write_iops_device(),
            ]
            .iter()
            .any(|t| t.as_ref().is_some_and(|v| !v.is_empty()))
    });
    let huge = r.hugepage_limits().as_ref().is_some_and(|v| !v.is_empty());
    let unified = r.unified().as_ref().is_some_and(|u| !u.is_empty());
    mem || cpu || pids || blkio || huge || unified
}

/// The CPUs in a cpuset list ("0-3,5"); None if it does not parse.
pub fn cpuset_count(list: &str) -> Option<usize> {
    let mut n = 0usize;
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                if b < a {
                    return None;
                }
                n += b - a + 1;
            }
            None => {
                part.trim().parse::<usize>().ok()?;
                n += 1;
            }
        }
    }
    Some(n)
}

fn read_u64(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// "key value" lines (memory.stat, cpu.stat, cpuacct.stat).
fn read_kv(p: &Path) -> std::collections::BTreeMap<String, u64> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Version {
    /// One hierarchy per controller under `root`.
    V1,
    /// The unified hierarchy at `root`.
    V2,
}

/// The cgroup hierarchy of the host, found at `root` (normally
/// /sys/fs/cgroup): v2 when `root/cgroup.controllers` exists.
pub fn detect(root: &Path) -> Version {
    if root.join("cgroup.controllers").exists() {
        Version::V2
    } else {
        Version::V1
    }
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Cgroup {
    pub version: Version,
    /// The leaf directories made for this sandbox (one per v1 controller
    /// hierarchy; one for v2).
    pub dirs: Vec<PathBuf>,
}

/// `cgroupsPath` under a hierarchy root; relative paths are taken from the
/// root too (our own cgroup is not a meaningful parent for a daemon).
fn under(root: &Path, cgroups_path: &str) -> Result<PathBuf> {
    let rel = cgroups_path.trim_start_matches('/');
    if rel.is_empty() || rel.split('/').any(|c| c == ".." || c == ".") {
        bail!("linux.cgroupsPath: {cgroups_path:?} is not a valid cgroup path");
    }
    Ok(root.join(rel))
}

/// The config.json field a cgroup file stands for, for errors.
fn field_of(file: &str) -> &'static str {
    match file.split('.').next().unwrap_or("") {
        "memory" => "linux.resources.memory: ",
        "cpu" | "cpuset" => "linux.resources.cpu: ",
        "pids" => "linux.resources.pids: ",
        "blkio" | "io" => "linux.resources.blockIO: ",
        _ => "",
    }
}

fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    std::fs::write(dir.join(file), value).with_context(|| {
        format!(
            "{}writing {value:?} to {}",
            field_of(file),
            dir.join(file).display()
        )
    })
}

/// mkdir -p for a v1 cpuset hierarchy: each new level copies its
/// parent's cpus and mems (an empty cpuset cannot take tasks).
fn mkdir_cpuset(root: &Path, leaf: &Path) -> Result<()> {
    let rel = leaf.strip_prefix(root).unwrap_or(leaf);
    let mut cur = root.to_path_buf();
    for c in rel.components() {
        let parent = cur.clone();
        cur.push(c);
        if !cur.exists() {
            std::fs::create_dir(&cur).with_context(|| format!("creating {}", cur.display()))?;
        }
        for f in ["cpuset.cpus", "cpuset.mems"] {
            let mine = std::fs::read_to_string(cur.join(f)).unwrap_or_default();
            if mine.trim().is_empty() {
                let theirs = std::fs::read_to_string(parent.join(f)).unwrap_or_default();
                if !theirs.trim().is_empty() {
                    write(&cur, f, theirs.trim())?;
                }
            }
        }
    }
    Ok(())
}

/// v2: enables the controllers we use on every level above `leaf`.
fn enable_v2_controllers(root: &Path, leaf: &Path) -> Result<()> {
    let available = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
    let wanted: Vec<&str> = ["cpu", "cpuset", "io", "memory", "pids"]
        .into_iter()
        .filter(|c| available.split_whitespace().any(|a| a == *c))
        .collect();
    let rel = leaf.strip_prefix(root).unwrap_or(leaf);
    let mut cur = root.to_path_buf();
    for c in rel.components() {
        for w in &wanted {
            // Already enabled or not delegated: the resource writes below
            // report what is really missing.
            let _ = write(&cur, "cgroup.subtree_control", &format!("+{w}"));
        }
        cur.push(c);
        if !cur.exists() {
            std::fs::create_dir(&cur).with_context(|| format!("creating {}", cur.display()))?;
        }
    }
    Ok(())
}

/// The host pids limit for a container allowed `guest` tasks.
pub fn sandbox_pids_max(guest: u64) -> u64 {
    guest.saturating_mul(2).saturating_add(64)
}

/// The guest's pids limit a host pids.max was written for (the inverse of
/// `sandbox_pids_max`).
fn guest_pids_of(host_max: u64) -> u64 {
    host_max.saturating_sub(64) / 2
}

/// v1 cpu.shares → v2 cpu.weight, as runc converts.
fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + ((shares.clamp(2, 262144) - 2) * 9999) / 262142
}

/// v1 blkio.weight (10–1000) → v2 io.weight (1–10000), as runc converts.
fn blkio_to_io_weight(w: u16) -> u64 {
    if w == 0 {
        return 0;
    }
    1 + ((w.clamp(10, 1000) as u64 - 10) * 9999) / 990
}

fn limit_v2(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

impl Cgroup {
    /// Creates the sandbox's cgroup and applies `res`.
    pub fn create(root: &Path, cgroups_path: &str, res: Option<&LinuxResources>) -> Result<Cgroup> {
        let version = detect(root);
        let mut dirs = Vec::new();
        match version {
            Version::V1 => {
                for ctrl in V1_CONTROLLERS.iter().chain(std::iter::once(&V1_FREEZER)) {
                    let base = root.join(ctrl);
                    if !base.is_dir() {
                        continue;
                    }
                    let leaf = under(&base, cgroups_path)?;
                    // cpu and cpuacct are often one hierarchy.
                    let canon = leaf.clone();
                    if dirs.iter().any(|d: &PathBuf| {
                        d.canonicalize()
                            .ok()
                            .zip(canon.canonicalize().ok())
                            .is_some_and(|(a, b)| a == b)
                    }) {
                        continue;
                    }
                    if *ctrl == "cpuset" {
                        mkdir_cpuset(&base, &leaf)?;
                    } else {
                        std::fs::create_dir_all(&leaf)
                            .with_context(|| format!("creating {}", leaf.display()))?;
                    }
                    dirs.push(leaf);
                }
                if dirs.is_empty() {
                    bail!("no cgroup v1 controllers under {}", root.display());
                }
            }
            Version::V2 => {
                let leaf = under(root, cgroups_path)?;
                enable_v2_controllers(root, &leaf)?;
                dirs.push(leaf);
            }
        }
        let cg = Cgroup { version, dirs };
        if let Some(r) = res {
            if let Err(e) = cg.apply(r) {
                let _ = cg.destroy();
                return Err(e);
            }
        }
        Ok(cg)
    }

    /// The directory of controller `ctrl` (v1), or the unified one (v2).
    pub fn dir(&self, ctrl: &str) -> Option<&Path> {
        match self.version {
            Version::V2 => self.dirs.first().map(PathBuf::as_path),
            Version::V1 => self
                .dirs
                .iter()
                .find(|d| {
                    d.ancestors().any(|a| {
                        a.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.split(',').any(|c| c == ctrl))
                    })
                })
                .map(PathBuf::as_path),
        }
    }

    fn need(&self, ctrl: &str, field: &str) -> Result<&Path> {
        self.dir(ctrl).with_context(|| {
            format!("{field}: the {ctrl} cgroup controller is not available on this host")
        })
    }

    /// Writes `linux.resources` to the cgroup files.
    pub fn apply(&self, r: &LinuxResources) -> Result<()> {
        let v2 = self.version == Version::V2;
        if let Some(m) = r.memory() {
            let d = self.need("memory", "linux.resources.memory")?;
            if let Some(l) = m.limit() {
                if v2 {
                    write(d, "memory.max", &limit_v2(l))?;
                } else if let Err(e) = write(d, "memory.limit_in_bytes", &l.to_string()) {
                    // Raising the limit above memory+swap's: that one first.
                    match m.swap() {
                        Some(swap) if d.join("memory.memsw.limit_in_bytes").exists() => {
                            write(d, "memory.memsw.limit_in_bytes", &swap.to_string())?;
                            write(d, "memory.limit_in_bytes", &l.to_string())?;
                        }
                        _ => return Err(e),
                    }
                }
            }
            if let Some(res) = m.reservation() {
                if v2 {
                    write(d, "memory.low", &limit_v2(res))?;
                } else {
                    write(d, "memory.soft_limit_in_bytes", &res.to_string())?;
                }
            }
            if let Some(swap) = m.swap() {
                if v2 {
                    // OCI's swap is memory+swap; v2 limits swap alone.
                    let v = match (swap, m.limit()) {
                        (s, _) if s < 0 => "max".to_string(),
                        (s, Some(l)) if l >= 0 => s.saturating_sub(l).max(0).to_string(),
                        (s, _) => s.to_string(),
                    };
                    if d.join("memory.swap.max").exists() {
                        write(d, "memory.swap.max", &v)?;
                    }
                } else if d.join("memory.memsw.limit_in_bytes").exists() {
                    write(d, "memory.memsw.limit_in_bytes", &swap.to_string())?;
                } else {
                    tracing::warn!("swap accounting is off on this host: memory.swap not applied");
                }
            }
            if let Some(sw) = m.swappiness() {
                if !v2 && sw <= 100 {
                    write(d, "memory.swappiness", &sw.to_string())?;
                }
            }
            if m.disable_oom_killer() == Some(true) {
                if v2 {
                    bail!("linux.resources.memory.disableOOMKiller: not supported with cgroup v2");
                }
                write(d, "memory.oom_control", "1")?;
            }
        }
        if let Some(c) = r.cpu() {
            let d = self.need("cpu", "linux.resources.cpu")?;
            if let Some(s) = c.shares() {
                if v2 {
                    let w = shares_to_weight(s);
                    if w != 0 {
                        write(d, "cpu.weight", &w.to_string())?;
                    }
                } else if s != 0 {
                    write(d, "cpu.shares", &s.to_string())?;
                }
            }
            let (quota, period) = (c.quota(), c.period());
            if quota.is_some() || period.is_some() {
                if v2 {
                    let q = match quota {
                        Some(q) if q > 0 => q.to_string(),
                        _ => "max".into(),
                    };
                    let p = period.filter(|p| *p > 0).unwrap_or(100_000);
                    write(d, "cpu.max", &format!("{q} {p}"))?;
                } else {
                    if let Some(p) = period.filter(|p| *p > 0) {
                        write(d, "cpu.cfs_period_us", &p.to_string())?;
                    }
                    if let Some(q) = quota {
                        write(
                            d,
                            "cpu.cfs_quota_us",
                            &if q > 0 { q } else { -1 }.to_string(),
                        )?;
                    }
                }
            }
            for (val, file) in [(c.cpus(), "cpuset.cpus"), (c.mems(), "cpuset.mems")] {
                if let Some(v) = val.as_ref().filter(|v| !v.is_empty()) {
                    let d = self.need("cpuset", "linux.resources.cpu.cpus/mems")?;
                    write(d, file, v)?;
                }
            }
        }
        if let Some(p) = r.pids() {
            let d = self.need("pids", "linux.resources.pids")?;
            // The host cgroup holds the sandbox's own threads too (a host
            // thread and a stub thread per guest thread, the gofers, the
            // sentry's helpers): room for them here, while the sentry
            // holds the guest to the limit itself.
            let l = p.limit();
            write(
                d,
                "pids.max",
                &if l > 0 {
                    sandbox_pids_max(l as u64).to_string()
                } else {
                    "max".into()
                },
            )?;
        }
        if let Some(b) = r.block_io() {
            let ctrl = if v2 { "io" } else { "blkio" };
            if let Some(w) = b.weight().filter(|w| *w != 0) {
                let d = self.need(ctrl, "linux.resources.blockIO.weight")?;
                if v2 {
                    let f = if d.join("io.bfq.weight").exists() {
                        ("io.bfq.weight", w.to_string())
                    } else {
                        ("io.weight", format!("default {}", blkio_to_io_weight(w)))
                    };
                    if d.join(f.0).exists() {
                        write(d, f.0, &f.1)?;
                    } else {
                        tracing::warn!(
                            "no I/O weight control on this host: blockIO.weight not applied"
                        );
                    }
                } else if d.join("blkio.weight").exists() {
                    write(d, "blkio.weight", &w.to_string())?;
                } else {
                    tracing::warn!("no blkio.weight on this host (no CFQ/BFQ): not applied");
                }
            }
            let throttles = [
                (
                    b.throttle_read_bps_device(),
                    "blkio.throttle.read_bps_device",
                    "rbps",
                ),
                (
                    b.throttle_write_bps_device(),
                    "blkio.throttle.write_bps_device",
                    "wbps",
                ),
                (
                    b.throttle_read_iops_device(),
                    "blkio.throttle.read_iops_device",
                    "riops",
                ),
                (
                    b.throttle_write_iops_device(),
                    "blkio.throttle.write_iops_device",
                    "wiops",
                ),
            ];
            for (devs, v1file, v2key) in throttles {
                for t in devs.iter().flatten() {
                    let d = self.need(ctrl, "linux.resources.blockIO.throttle*")?;
                    let (maj, min, rate) = (t.major(), t.minor(), t.rate());
                    if v2 {
                        write(d, "io.max", &format!("{maj}:{min} {v2key}={rate}"))?;
                    } else {
                        write(d, v1file, &format!("{maj}:{min} {rate}"))?;
                    }
                }
            }
        }
        if r.hugepage_limits().as_ref().is_some_and(|v| !v.is_empty()) {
            bail!("linux.resources.hugepageLimits: not supported (guest memory is not backed by host huge pages)");
        }
        if let Some(u) = r.unified() {
            if !v2 && !u.is_empty() {
                bail!("linux.resources.unified: needs cgroup v2, this host has v1");
            }
            let d = self.dirs.first().context("no cgroup")?;
            for (k, v) in u {
                if k.contains('/') || k.starts_with('.') {
                    bail!("linux.resources.unified: bad key {k:?}");
                }
                write(d, k, v)?;
            }
        }
        Ok(())
    }

    /// Moves host process `pid` (and, v1, in every hierarchy) into the
    /// cgroup.
    pub fn add_pid(&self, pid: i32) -> Result<()> {
        for d in &self.dirs {
            write(d, "cgroup.procs", &pid.to_string())?;
        }
        Ok(())
    }

    /// Freezes (pause) or thaws (resume) every process of the sandbox.
    pub fn freeze(&self, frozen: bool) -> Result<()> {
        match self.version {
            Version::V2 => {
                let d = self.dirs.first().context("no cgroup")?;
                write(d, "cgroup.freeze", if frozen { "1" } else { "0" })
            }
            Version::V1 => {
                let d = self.need(V1_FREEZER, "pause")?;
                write(d, "freezer.state", if frozen { "FROZEN" } else { "THAWED" })
            }
        }
    }

    /// Files `cgroup.procs` of every hierarchy, opened for writing (close
    /// on exec): a child writes "0" to each between fork and exec to join
    /// the cgroup before it starts anything.
    pub fn open_procs(&self) -> Result<Vec<std::fs::File>> {
        self.dirs
            .iter()
            .map(|d| {
                let p = d.join("cgroup.procs");
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&p)
                    .with_context(|| format!("opening {}", p.display()))
            })
            .collect()
    }

    /// Whether pause/resume can use a freezer.
    pub fn has_freezer(&self) -> bool {
        match self.version {
            Version::V2 => self
                .dirs
                .first()
                .is_some_and(|d| d.join("cgroup.freeze").exists()),
            Version::V1 => self
                .dir(V1_FREEZER)
                .is_some_and(|d| d.join("freezer.state").exists()),
        }
    }

    /// Whether every process of the cgroup is frozen now.
    pub fn is_frozen(&self) -> bool {
        match self.version {
            Version::V2 => self.dirs.first().is_some_and(|d| {
                std::fs::read_to_string(d.join("cgroup.events"))
                    .unwrap_or_default()
                    .lines()
                    .any(|l| l.trim() == "frozen 1")
            }),
            Version::V1 => self.dir(V1_FREEZER).is_some_and(|d| {
                std::fs::read_to_string(d.join("freezer.state"))
                    .unwrap_or_default()
                    .trim()
                    == "FROZEN"
            }),
        }
    }

    /// Freezes and waits until every task is frozen (or `timeout`, when
    /// the cgroup is thawed again and an error returned).
    pub fn freeze_wait(&self, timeout: std::time::Duration) -> Result<()> {
        self.freeze(true)?;
        let deadline = std::time::Instant::now() + timeout;
        while !self.is_frozen() {
            if std::time::Instant::now() > deadline {
                let _ = self.freeze(false);
                bail!("the sandbox's cgroup did not freeze within {timeout:?}");
            }
            // v1 re-tries the tasks that were busy on each write.
            if self.version == Version::V1 {
                let _ = self.freeze(true);
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        Ok(())
    }

    /// The host pids in the cgroup.
    pub fn pids(&self) -> Vec<i32> {
        let mut v: Vec<i32> = self
            .dirs
            .iter()
            .flat_map(|d| {
                std::fs::read_to_string(d.join("cgroup.procs"))
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect::<Vec<i32>>()
            })
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// SIGKILLs whatever is left in the cgroup (gofers and stubs of a
    /// sandbox process that is gone) and thaws it, so it can be removed.
    pub fn kill_all(&self) {
        for pid in self.pids() {
            if pid > 0 {
                // SAFETY: kill(2) of a process in the sandbox's own cgroup,
                // which only the sandbox's processes join.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
        if self.has_freezer() {
            let _ = self.freeze(false);
        }
    }

    /// runc's `events --stats` data (libcontainer's types.Stats as JSON)
    /// for the memory, cpu and pids controllers.
    pub fn stats(&self) -> serde_json::Value {
        use serde_json::json;
        let v2 = self.version == Version::V2;
        let mut memory = json!({});
        if let Some(d) = self.dir("memory") {
            let raw = read_kv(&d.join("memory.stat"));
            let (usage, limit, max, failcnt, cache) = if v2 {
                let limit = std::fs::read_to_string(d.join("memory.max"))
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(u64::MAX);
                let failcnt = read_kv(&d.join("memory.events"))
                    .get("max")
                    .copied()
                    .unwrap_or(0);
                let cur = read_u64(&d.join("memory.current")).unwrap_or(0);
                let peak = read_u64(&d.join("memory.peak")).unwrap_or(0);
                let cache = raw.get("file").copied().unwrap_or(0);
                (cur, limit, peak, failcnt, cache)
            } else {
                (
                    read_u64(&d.join("memory.usage_in_bytes")).unwrap_or(0),
                    read_u64(&d.join("memory.limit_in_bytes")).unwrap_or(u64::MAX),
                    read_u64(&d.join("memory.max_usage_in_bytes")).unwrap_or(0),
                    read_u64(&d.join("memory.failcnt")).unwrap_or(0),
                    raw.get("cache").copied().unwrap_or(0),
                )
            };
            memory = json!({
                "cache": cache,
                "usage": { "limit": limit, "usage": usage, "max": max, "failcnt": failcnt },
                "raw": raw,
            });
        }
        let mut cpu = json!({});
        if v2 {
            if let Some(d) = self.dirs.first() {
                let st = read_kv(&d.join("cpu.stat"));
                let g = |k: &str| st.get(k).copied().unwrap_or(0);
                cpu = json!({
                    "usage": {
                        "total": g("usage_usec") * 1000,
                        "kernel": g("system_usec") * 1000,
                        "user": g("user_usec") * 1000,
                    },
                    "throttling": {
                        "periods": g("nr_periods"),
                        "throttledPeriods": g("nr_throttled"),
                        "throttledTime": g("throttled_usec") * 1000,
                    },
                });
            }
        } else {
            // cpuacct may be its own hierarchy or share cpu's.
            let acct = self
                .dirs
                .iter()
                .find(|d| d.join("cpuacct.usage").exists())
                .map(PathBuf::as_path);
            if let Some(d) = acct {
                let percpu: Vec<u64> = std::fs::read_to_string(d.join("cpuacct.usage_percpu"))
                    .unwrap_or_default()
                    .split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect();
                let st = read_kv(&d.join("cpuacct.stat"));
                // USER_HZ ticks to ns, as runc converts.
                let ns = |k: &str| st.get(k).copied().unwrap_or(0) * 10_000_000;
                cpu["usage"] = json!({
                    "total": read_u64(&d.join("cpuacct.usage")).unwrap_or(0),
                    "percpu": percpu,
                    "kernel": ns("system"),
                    "user": ns("user"),
                });
            }
            if let Some(d) = self.dir("cpu") {
                let st = read_kv(&d.join("cpu.stat"));
                let g = |k: &str| st.get(k).copied().unwrap_or(0);
                cpu["throttling"] = json!({
                    "periods": g("nr_periods"),
                    "throttledPeriods": g("nr_throttled"),
                    "throttledTime": g("throttled_time"),
                });
            }
        }
        let mut pids = json!({});
        if let Some(d) = self.dir("pids") {
            pids = json!({
                "current": read_u64(&d.join("pids.current")).unwrap_or(0),
                // The container's limit, not the room the sandbox's own
                // threads get on top of it (see sandbox_pids_max).
                "limit": read_u64(&d.join("pids.max"))
                    .map_or(0, |v| v.saturating_sub(64) / 2),
            });
        }
        json!({
            "cpu": cpu,
            "memory": memory,
            "pids": pids,
            "blkio": {},
            "hugetlb": {},
        })
    }

    /// The limits the guest should see, read back from the cgroup files
    /// (after `apply`, so `runsc update` reaches the guest): the memory
    /// limit, the pids limit, and the CPUs the cpuset and the CFS quota
    /// allow (rounded up).
    pub fn guest_limits(&self) -> sentry::boot::GuestLimits {
        let v2 = self.version == Version::V2;
        let read = |ctrl: &str, file: &str| -> Option<String> {
            let d = self.dir(ctrl)?;
            Some(
                std::fs::read_to_string(d.join(file))
                    .ok()?
                    .trim()
                    .to_string(),
            )
        };
        // v1 shows "no limit" as a page-rounded i64::MAX.
        let limit = |t: Option<String>| {
            t.and_then(|t| t.parse::<u64>().ok())
                .filter(|v| *v < 1 << 62)
        };
        let memory = if v2 {
            limit(read("memory", "memory.max"))
        } else {
            limit(read("memory", "memory.limit_in_bytes"))
        };
        let pids = limit(read("pids", "pids.max")).map(guest_pids_of);
        let (quota, period) = if v2 {
            let t = read("cpu", "cpu.max").unwrap_or_default();
            let mut w = t.split_whitespace();
            (
                w.next().and_then(|q| q.parse::<i64>().ok()),
                w.next().and_then(|p| p.parse::<u64>().ok()),
            )
        } else {
            (
                read("cpu", "cpu.cfs_quota_us").and_then(|q| q.parse::<i64>().ok()),
                read("cpu", "cpu.cfs_period_us").and_then(|p| p.parse::<u64>().ok()),
            )
        };
        let by_quota = match (quota, period) {
            (Some(q), Some(p)) if q > 0 && p > 0 => Some((q as u64).div_ceil(p).max(1) as usize),
            _ => None,
        };
        let set = if v2 {
            read("cpuset", "cpuset.cpus.effective")
        } else {
            read("cpuset", "cpuset.cpus")
        };
        let by_set = set.as_deref().and_then(cpuset_count).filter(|n| *n > 0);
        let host = std::thread::available_parallelism().map_or(1, |n| n.get());
        let cpus = match (by_set.filter(|n| *n < host), by_quota) {
            (None, None) => None,
            (s, q) => Some(s.unwrap_or(host).min(q.unwrap_or(usize::MAX))),
        };
        sentry::boot::GuestLimits { cpus, memory, pids }
    }

    /// Memory in use by the sandbox, in bytes.
    pub fn memory_usage(&self) -> Option<u64> {
        let (d, f) = match self.version {
            Version::V2 => (self.dirs.first()?.as_path(), "memory.current"),
            Version::V1 => (self.dir("memory")?, "memory.usage_in_bytes"),
        };
        std::fs::read_to_string(d.join(f)).ok()?.trim().parse().ok()
    }

    /// Removes the cgroup directories (after the processes are gone;
    /// retried briefly while the kernel finishes with exiting tasks).
    pub fn destroy(&self) -> Result<()> {
        let mut last = Ok(());
        for d in &self.dirs {
            if !d.exists() {
                continue;
            }
            last = Ok(());
            for _ in 0..50 {
                match std::fs::remove_dir(d) {
                    Ok(()) => {
                        last = Ok(());
                        break;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(e) => {
                        last = Err(e).with_context(|| format!("removing {}", d.display()));
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                }
            }
        }
        last
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{
        LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder,
    };

    /// A fake cgroupfs: real directories and files (the kernel's files
    /// appear on mkdir; here the test pre-creates the ones read back).
    fn fake(v2: bool) -> PathBuf {
        let root = std::env::temp_dir().join(format!(
            "cgroup-test-{}-{}",
            std::process::id(),
            if v2 { 2 } else { 1 }
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("mkdir");
        if v2 {
            std::fs::write(
                root.join("cgroup.controllers"),
                "cpuset cpu io memory pids\n",
            )
            .expect("w");
        } else {
            for c in ["memory", "cpu,cpuacct", "cpuset", "pids", "freezer"] {
                std::fs::create_dir_all(root.join(c)).expect("mkdir");
            }
            std::os::unix::fs::symlink("cpu,cpuacct", root.join("cpu")).expect("symlink");
            std::os::unix::fs::symlink("cpu,cpuacct", root.join("cpuacct")).expect("symlink");
            std::fs::write(root.join("cpuset/cpuset.cpus"), "0-1\n").expect("w");
            std::fs::write(root.join("cpuset/cpuset.mems"), "0\n").expect("w");
        }
        root
    }

    fn resources() -> LinuxResources {
        LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(64i64 << 20)
                    .swap(128i64 << 20)
                    .build()
                    .expect("memory"),
            )
            .cpu(
                LinuxCpuBuilder::default()
                    .shares(512u64)
                    .quota(50_000i64)
                    .period(100_000u64)
                    .cpus("0")
                    .build()
                    .expect("cpu"),
            )
            .pids(
                LinuxPidsBuilder::default()
                    .limit(20i64)
                    .build()
                    .expect("pids"),
            )
            .build()
            .expect("resources")
    }

    fn read(p: PathBuf) -> String {
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[test]
    fn v1_files_and_inherited_cpuset() {
        let root = fake(false);
        let cg = Cgroup::create(&root, "/docker/abc", Some(&resources())).expect("create");
        let mem = root.join("memory/docker/abc");
        assert_eq!(
            read(mem.join("memory.limit_in_bytes")),
            (64u64 << 20).to_string()
        );
        assert_eq!(read(root.join("cpu/docker/abc/cpu.shares")), "512");
        assert_eq!(read(root.join("cpu/docker/abc/cpu.cfs_quota_us")), "50000");
        assert_eq!(
            read(root.join("cpu/docker/abc/cpu.cfs_period_us")),
            "100000"
        );
        // The intermediate level inherited the parent's cpuset; the leaf
        // got its own cpus.
        assert_eq!(read(root.join("cpuset/docker/cpuset.cpus")), "0-1");
        assert_eq!(read(root.join("cpuset/docker/abc/cpuset.cpus")), "0");
        assert_eq!(read(root.join("pids/docker/abc/pids.max")), "104");
        // cpu and cpuacct are one hierarchy: one directory for both.
        assert_eq!(
            cg.dirs
                .iter()
                .filter(|d| d.starts_with(root.join("cpu")))
                .count()
                + cg.dirs
                    .iter()
                    .filter(|d| d.starts_with(root.join("cpuacct")))
                    .count(),
            1
        );
        cg.freeze(true).expect("freeze");
        assert_eq!(
            read(root.join("freezer/docker/abc/freezer.state")),
            "FROZEN"
        );
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn v2_files_and_conversions() {
        let root = fake(true);
        std::fs::create_dir_all(root.join("docker/abc")).expect("mkdir");
        std::fs::write(root.join("docker/abc/memory.swap.max"), "").expect("w");
        let cg = Cgroup::create(&root, "docker/abc", Some(&resources())).expect("create");
        let d = root.join("docker/abc");
        assert_eq!(read(d.join("memory.max")), (64u64 << 20).to_string());
        assert_eq!(read(d.join("memory.swap.max")), (64u64 << 20).to_string());
        assert_eq!(read(d.join("cpu.max")), "50000 100000");
        assert_eq!(
            read(d.join("cpu.weight")),
            shares_to_weight(512).to_string()
        );
        assert_eq!(read(d.join("pids.max")), "104");
        assert_eq!(read(d.join("cpuset.cpus")), "0");
        cg.freeze(true).expect("freeze");
        assert_eq!(read(d.join("cgroup.freeze")), "1");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn bad_paths_and_conversions() {
        assert!(under(Path::new("/x"), "/a/../b").is_err());
        assert!(under(Path::new("/x"), "/").is_err());
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(blkio_to_io_weight(500), 1 + (490 * 9999) / 990);
    }
}
