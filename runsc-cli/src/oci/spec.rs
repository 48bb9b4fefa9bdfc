//! A bundle's config.json (the OCI runtime spec, parsed by `oci-spec`)
//! turned into what the sandbox needs to load PID 1. Everything we read is
//! checked here, before any state exists, and an error names the field.
//! Fields we do not act on yet (capabilities, namespaces other than the
//! network's, seccomp) are accepted and ignored: the sentry is the
//! isolation boundary, not the host kernel's features.

use anyhow::{bail, Context};
use oci_spec::runtime::{PosixRlimitType, Spec};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// The config file's name inside a bundle.
pub const CONFIG: &str = "config.json";

/// One hook: a host program run with the container's state on stdin.
#[derive(Clone, Debug)]
pub struct Hook {
    pub path: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub timeout_secs: Option<u64>,
}

/// The hooks the runtime runs on the host, by stage.
#[derive(Clone, Debug, Default)]
pub struct Hooks {
    /// prestart and createRuntime: after the sandbox is created.
    pub create_runtime: Vec<Hook>,
    pub poststart: Vec<Hook>,
    pub poststop: Vec<Hook>,
}

/// The network namespace config.json asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetNs {
    /// None listed: the runtime's own.
    Runtime,
    /// Listed without a path: a new one (docker's bridge mode: its
    /// prestart hook moves the interface into the sandbox process's).
    New,
    /// Join this one (`/proc/PID/ns/net`, a bind-mounted netns file).
    Path(PathBuf),
}

/// What a container is, as far as the sandbox is concerned.
#[derive(Clone, Debug)]
pub struct Container {
    /// The bundle directory, absolute.
    pub bundle: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: sentry::boot::User,
    pub terminal: bool,
    pub hostname: Option<String>,
    /// root.path resolved against the bundle, canonical.
    pub rootfs: PathBuf,
    pub root_readonly: bool,
    pub rlimits: Vec<(i32, u64, u64)>,
    /// Destinations of tmpfs mounts the sentry does not already provide.
    pub tmpfs_mounts: Vec<String>,
    /// Bind mounts of directories: (destination, canonical source,
    /// read-only).
    pub bind_mounts: Vec<(String, PathBuf, bool)>,
    /// Bind mounts of regular files: (destination, canonical source,
    /// read-only). The sandbox serves a private copy made at boot.
    pub file_mounts: Vec<(String, PathBuf, bool)>,
    /// Mounts accepted but not acted upon (bind mounts of sockets and
    /// devices), for a warning.
    pub ignored_mounts: Vec<String>,
    pub annotations: BTreeMap<String, String>,
    pub hooks: Hooks,
    /// linux.cgroupsPath, else `/runsc/<id>` (chosen by `create`).
    pub cgroups_path: Option<String>,
    /// linux.resources.
    pub resources: Option<oci_spec::runtime::LinuxResources>,
    pub netns: NetNs,
    /// A user namespace (linux.namespaces "user" with linux.uidMappings
    /// and gidMappings) for the processes that touch host files.
    pub userns: Option<crate::userns::IdMaps>,
    pub domainname: Option<String>,
    /// linux.sysctl, checked against what the sandbox can set.
    pub sysctls: Vec<(String, String)>,
    /// linux.maskedPaths and linux.readonlyPaths, normalized.
    pub masked_paths: Vec<String>,
    pub readonly_paths: Vec<String>,
}

impl Container {
    /// CPUs the guest is shown: the cpuset's count (else the host's),
    /// at most ceil(quota/period). None without CPU limits.
    pub fn guest_cpus(&self) -> Option<usize> {
        let c = self.resources.as_ref()?.cpu().as_ref()?;
        let set = c
            .cpus()
            .as_deref()
            .filter(|s| !s.is_empty())
            .and_then(super::cgroup::cpuset_count)
            .filter(|n| *n > 0);
        let quota = match (c.quota(), c.period()) {
            (Some(q), p) if q > 0 => {
                let p = p.filter(|p| *p > 0).unwrap_or(100_000);
                Some((q as u64).div_ceil(p).max(1) as usize)
            }
            _ => None,
        };
        match (set, quota) {
            (None, None) => None,
            (Some(s), None) => Some(s),
            (s, Some(q)) => {
                let host = s
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
                Some(host.min(q))
            }
        }
    }

    /// The pids limit, if one is set.
    pub fn pids_limit(&self) -> Option<u64> {
        let l = self.resources.as_ref()?.pids().as_ref()?.limit();
        (l > 0).then_some(l as u64)
    }

    /// The memory limit in bytes, if one is set.
    pub fn memory_limit(&self) -> Option<u64> {
        let l = self.resources.as_ref()?.memory().as_ref()?.limit()?;
        (l > 0).then_some(l as u64)
    }
}

/// Reads and checks `<bundle>/config.json`.
pub fn load(bundle: &Path) -> anyhow::Result<Container> {
    let bundle =
        std::fs::canonicalize(bundle).with_context(|| format!("bundle {}", bundle.display()))?;
    let path = bundle.join(CONFIG);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("JSON specification file {} not found", path.display())
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let spec = parse(&text).with_context(|| format!("{}", path.display()))?;
    from_spec(&spec, &bundle).with_context(|| format!("{}", path.display()))
}

/// Parses config.json text; a type error names the JSON path of the field.
pub fn parse(text: &str) -> anyhow::Result<Spec> {
    let de = &mut serde_json::Deserializer::from_str(text);
    match serde_path_to_error::deserialize::<_, Spec>(de) {
        Ok(s) => Ok(s),
        Err(e) => {
            let field = e.path().to_string();
            if field == "." || field.is_empty() {
                bail!("invalid JSON: {}", e.inner())
            }
            bail!("{field}: {}", e.inner())
        }
    }
}

fn from_spec(spec: &Spec, bundle: &Path) -> anyhow::Result<Container> {
    let version = spec.version();
    if !version.starts_with("1.") {
        bail!("ociVersion: unsupported version {version:?} (expected 1.x)");
    }
    let process = spec
        .process()
        .as_ref()
        .context("process: missing (nothing to run)")?;
    let args = process.args().clone().unwrap_or_default();
    if args.is_empty() || args[0].is_empty() {
        bail!("process.args: empty (nothing to run)");
    }
    let env = process.env().clone().unwrap_or_default();
    for (i, e) in env.iter().enumerate() {
        if !e.contains('=') {
            bail!("process.env[{i}]: {e:?} is not KEY=VALUE");
        }
    }
    let cwd = process.cwd().to_string_lossy().into_owned();
    if !cwd.starts_with('/') {
        bail!("process.cwd: must be an absolute path, got {cwd:?}");
    }
    let u = process.user();
    let user = sentry::boot::User {
        uid: u.uid(),
        gid: u.gid(),
        additional_gids: u.additional_gids().clone().unwrap_or_default(),
        umask: u.umask().unwrap_or(0o022),
        caps: Some(caps_of(process)),
    };
    if user.umask > 0o777 {
        bail!(
            "process.user.umask: {:o} is not a permission mask",
            user.umask
        );
    }
    let mut rlimits = Vec::new();
    for (i, r) in process.rlimits().iter().flatten().enumerate() {
        let Some(res) = rlimit_resource(r.typ()) else {
            bail!("process.rlimits[{i}].type: {:?} is not supported", r.typ());
        };
        if r.soft() > r.hard() {
            bail!(
                "process.rlimits[{i}]: soft limit {} above hard limit {}",
                r.soft(),
                r.hard()
            );
        }
        rlimits.push((res, r.soft(), r.hard()));
    }
    let hostname = spec.hostname().clone().filter(|h| !h.is_empty());
    if let Some(h) = &hostname {
        if h.len() > 64 {
            bail!("hostname: longer than 64 bytes");
        }
    }
    let root = spec.root().as_ref().context("root: missing")?;
    let rootfs = if root.path().is_absolute() {
        root.path().clone()
    } else {
        bundle.join(root.path())
    };
    let meta = std::fs::metadata(&rootfs)
        .with_context(|| format!("root.path: rootfs {}", rootfs.display()))?;
    if !meta.is_dir() {
        bail!("root.path: rootfs {} is not a directory", rootfs.display());
    }
    let rootfs = std::fs::canonicalize(&rootfs)
        .with_context(|| format!("root.path: rootfs {}", rootfs.display()))?;
    let mut tmpfs_mounts = Vec::new();
    let mut ignored_mounts = Vec::new();
    let mut bind_mounts = Vec::new();
    let mut file_mounts = Vec::new();
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let dest =
            normalize(m.destination()).with_context(|| format!("mounts[{i}].destination"))?;
        let typ = m.typ().as_deref().unwrap_or("");
        let bind = typ == "bind"
            || m.options()
                .iter()
                .flatten()
                .any(|o| o == "bind" || o == "rbind");
        // The sentry's own /dev/shm stays: POSIX shared memory is the
        // sandbox's, not a host directory's.
        if bind && dest == "/dev/shm" {
            continue;
        }
        if bind {
            let src = m
                .source()
                .as_ref()
                .with_context(|| format!("mounts[{i}].source: missing for a bind mount"))?;
            let src = std::fs::canonicalize(src)
                .with_context(|| format!("mounts[{i}].source: {}", src.display()))?;
            let ro = m.options().iter().flatten().any(|o| o == "ro");
            if src.is_dir() {
                bind_mounts.push((dest, src, ro));
            } else if src.is_file() {
                file_mounts.push((dest, src, ro));
            } else {
                ignored_mounts.push(dest);
            }
            continue;
        }
        match typ {
            // The sentry's own /proc, /sys and /dev (with pts and shm)
            // serve these (a cgroup v2 view at /sys/fs/cgroup); POSIX
            // message queues are the sandbox's own (mq_*), without a
            // filesystem listing them.
            "proc" | "sysfs" | "devpts" | "mqueue" | "cgroup" | "cgroup2" => {}
            "tmpfs" if matches!(dest.as_str(), "/dev" | "/dev/shm") => {}
            "tmpfs" => tmpfs_mounts.push(dest),
            other => bail!("mounts[{i}].type: {other:?} is not supported"),
        }
    }
    if let Some(r) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()) {
        if r.hugepage_limits().as_ref().is_some_and(|v| !v.is_empty()) {
            bail!(
                "linux.resources.hugepageLimits: not supported (guest memory is not backed by host huge pages)"
            );
        }
    }
    let hooks = match spec.hooks() {
        None => Hooks::default(),
        Some(h) => {
            if h.create_container().as_ref().is_some_and(|v| !v.is_empty()) {
                bail!("hooks.createContainer: not supported (no container namespace to run in)");
            }
            if h.start_container().as_ref().is_some_and(|v| !v.is_empty()) {
                bail!("hooks.startContainer: not supported (no container namespace to run in)");
            }
            #[allow(deprecated)]
            let prestart = h.prestart().clone().unwrap_or_default();
            let mut create_runtime = convert_hooks(&prestart, "hooks.prestart")?;
            create_runtime.extend(convert_hooks(
                h.create_runtime().as_deref().unwrap_or(&[]),
                "hooks.createRuntime",
            )?);
            Hooks {
                create_runtime,
                poststart: convert_hooks(
                    h.poststart().as_deref().unwrap_or(&[]),
                    "hooks.poststart",
                )?,
                poststop: convert_hooks(h.poststop().as_deref().unwrap_or(&[]), "hooks.poststop")?,
            }
        }
    };
    let linux = spec.linux().as_ref();
    let mut sysctls = Vec::new();
    for (key, value) in linux
        .and_then(|l| l.sysctl().as_ref())
        .into_iter()
        .flatten()
    {
        sentry::kernel::sysctl::validate(key, value)
            .map_err(|e| anyhow::anyhow!("linux.sysctl.{key}: {e}"))?;
        sysctls.push((key.clone(), value.clone()));
    }
    let paths = |field: &str, v: Option<&Vec<String>>| -> anyhow::Result<Vec<String>> {
        v.into_iter()
            .flatten()
            .enumerate()
            .map(|(i, p)| normalize(Path::new(p)).with_context(|| format!("linux.{field}[{i}]")))
            .collect()
    };
    let masked_paths = paths("maskedPaths", linux.and_then(|l| l.masked_paths().as_ref()))?;
    let readonly_paths = paths(
        "readonlyPaths",
        linux.and_then(|l| l.readonly_paths().as_ref()),
    )?;
    let domainname = spec.domainname().clone().filter(|d| !d.is_empty());
    if domainname.as_ref().is_some_and(|d| d.len() > 64) {
        bail!("domainname: longer than 64 bytes");
    }
    let mut netns = NetNs::Runtime;
    let mut userns = None;
    let namespaces = spec.linux().as_ref().and_then(|l| l.namespaces().clone());
    for n in namespaces.iter().flatten() {
        if n.typ() == oci_spec::runtime::LinuxNamespaceType::User {
            if n.path().as_ref().is_some_and(|p| !p.as_os_str().is_empty()) {
                bail!(
                    "linux.namespaces: joining an existing user namespace by path is not supported"
                );
            }
            let ranges = |v: Option<&Vec<oci_spec::runtime::LinuxIdMapping>>| -> Vec<crate::userns::IdRange> {
                v.into_iter()
                    .flatten()
                    .map(|m| crate::userns::IdRange {
                        inside: m.container_id(),
                        host: m.host_id(),
                        size: m.size(),
                    })
                    .collect()
            };
            let maps = crate::userns::IdMaps {
                uids: ranges(linux.and_then(|l| l.uid_mappings().as_ref())),
                gids: ranges(linux.and_then(|l| l.gid_mappings().as_ref())),
            };
            maps.check()?;
            userns = Some(maps);
        }
        if n.typ() == oci_spec::runtime::LinuxNamespaceType::Network {
            netns = match n.path() {
                Some(p) if !p.as_os_str().is_empty() => NetNs::Path(p.clone()),
                _ => NetNs::New,
            };
        }
    }
    Ok(Container {
        bundle: bundle.to_path_buf(),
        args,
        env,
        cwd,
        user,
        terminal: process.terminal().unwrap_or(false),
        hostname,
        rootfs,
        root_readonly: root.readonly().unwrap_or(false),
        rlimits,
        tmpfs_mounts,
        bind_mounts,
        file_mounts,
        ignored_mounts,
        annotations: spec
            .annotations()
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        hooks,
        cgroups_path: spec
            .linux()
            .as_ref()
            .and_then(|l| l.cgroups_path().as_ref())
            .map(|p| p.to_string_lossy().into_owned())
            .filter(|p| !p.is_empty()),
        resources: spec.linux().as_ref().and_then(|l| l.resources().clone()),
        netns,
        userns,
        domainname,
        sysctls,
        masked_paths,
        readonly_paths,
    })
}

/// process.capabilities and noNewPrivileges as the task's capability
/// sets. A set the config leaves out is empty, as runc leaves it.
pub fn caps_of(p: &oci_spec::runtime::Process) -> sentry::kernel::caps::Caps {
    use sentry::kernel::caps::{bit, by_name, Caps};
    let mask = |set: Option<&oci_spec::runtime::Capabilities>| -> u64 {
        set.into_iter()
            .flatten()
            .filter_map(|c| by_name(&c.to_string()))
            .fold(0, |m, c| m | bit(c))
    };
    let c = p.capabilities().as_ref();
    Caps {
        effective: mask(c.and_then(|c| c.effective().as_ref())),
        permitted: mask(c.and_then(|c| c.permitted().as_ref())),
        inheritable: mask(c.and_then(|c| c.inheritable().as_ref())),
        bounding: mask(c.and_then(|c| c.bounding().as_ref())),
        ambient: mask(c.and_then(|c| c.ambient().as_ref())),
        keep_caps: false,
        no_new_privs: p.no_new_privileges().unwrap_or(false),
    }
}

fn convert_hooks(hooks: &[oci_spec::runtime::Hook], field: &str) -> anyhow::Result<Vec<Hook>> {
    hooks
        .iter()
        .enumerate()
        .map(|(i, h)| {
            if !h.path().is_absolute() {
                bail!(
                    "{field}[{i}].path: must be absolute, got {}",
                    h.path().display()
                );
            }
            let timeout_secs = match h.timeout() {
                None => None,
                Some(t) if t > 0 => Some(t as u64),
                Some(t) => bail!("{field}[{i}].timeout: must be positive, got {t}"),
            };
            Ok(Hook {
                path: h.path().clone(),
                args: h.args().clone().unwrap_or_default(),
                env: h.env().clone().unwrap_or_default(),
                timeout_secs,
            })
        })
        .collect()
}

/// An absolute guest path without `.`, `..` or repeated slashes.
fn normalize(p: &Path) -> anyhow::Result<String> {
    if !p.is_absolute() {
        bail!("must be an absolute path, got {}", p.display());
    }
    let mut parts: Vec<String> = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

fn rlimit_resource(t: PosixRlimitType) -> Option<i32> {
    use PosixRlimitType::*;
    let r = match t {
        RlimitCpu => libc::RLIMIT_CPU,
        RlimitFsize => libc::RLIMIT_FSIZE,
        RlimitData => libc::RLIMIT_DATA,
        RlimitStack => libc::RLIMIT_STACK,
        RlimitCore => libc::RLIMIT_CORE,
        RlimitRss => libc::RLIMIT_RSS,
        RlimitNproc => libc::RLIMIT_NPROC,
        RlimitNofile => libc::RLIMIT_NOFILE,
        RlimitMemlock => libc::RLIMIT_MEMLOCK,
        RlimitAs => libc::RLIMIT_AS,
        RlimitLocks => libc::RLIMIT_LOCKS,
        RlimitSigpending => libc::RLIMIT_SIGPENDING,
        RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        RlimitNice => libc::RLIMIT_NICE,
        RlimitRtprio => libc::RLIMIT_RTPRIO,
        RlimitRttime => libc::RLIMIT_RTTIME,
    };
    Some(r as i32)
}

/// The config.json `runsc spec` writes: like `runc spec`, an interactive
/// `sh` in a terminal, the root at `rootfs` (read-only).
pub fn default_spec() -> Spec {
    let mut spec = Spec::default();
    spec.set_hostname(Some("runsc".to_string()));
    if let Some(p) = spec.process_mut() {
        p.set_terminal(Some(true));
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_errors_name_the_field() {
        let e = parse(r#"{"ociVersion":"1.0.2","process":{"cwd":"/","user":{"uid":"x","gid":0}}}"#)
            .unwrap_err();
        assert!(format!("{e:#}").starts_with("process.user.uid:"), "{e:#}");
        let e = parse("{not json").unwrap_err();
        assert!(
            format!("{e:#}").contains("invalid JSON") || format!("{e:#}").contains("key"),
            "{e:#}"
        );
    }

    #[test]
    fn default_spec_round_trips() {
        let s = serde_json::to_string(&default_spec()).unwrap();
        let back = parse(&s).unwrap();
        assert_eq!(back.process().as_ref().unwrap().terminal(), Some(true));
        assert_eq!(back.root().as_ref().unwrap().path(), Path::new("rootfs"));
    }

    #[test]
    fn checks_fields() {
        let dir = std::env::temp_dir().join(format!("runsc-spec-unit-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("rootfs")).unwrap();
        let mut spec = default_spec();
        let c = from_spec(&spec, &dir).unwrap();
        assert_eq!(c.args, vec!["sh"]);
        assert_eq!(c.hostname.as_deref(), Some("runsc"));
        spec.process_mut().as_mut().unwrap().set_cwd("rel".into());
        let e = from_spec(&spec, &dir).unwrap_err();
        assert!(format!("{e}").starts_with("process.cwd:"), "{e}");
        spec.process_mut().as_mut().unwrap().set_cwd("/".into());
        spec.root_mut().as_mut().unwrap().set_path("nope".into());
        let e = from_spec(&spec, &dir).unwrap_err();
        assert!(format!("{e:#}").starts_with("root.path:"), "{e:#}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// What docker 20.10 (through containerd's runc shim) hands a runtime.
    #[test]
    fn docker_config_is_accepted() {
        let spec = parse(include_str!("testdata/docker-config.json")).unwrap();
        let dir = std::env::temp_dir().join(format!("runsc-spec-docker-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut spec = spec;
        spec.root_mut().as_mut().unwrap().set_path(dir.clone());
        // The bind sources docker made: files for /etc, a volume directory.
        std::fs::create_dir_all(dir.join("vol")).unwrap();
        let mut mounts = spec.mounts().clone().unwrap();
        for m in mounts.iter_mut() {
            if let Some(src) = m.source().clone() {
                if src.is_absolute() {
                    let name = src.file_name().unwrap().to_owned();
                    std::fs::write(dir.join(&name), "x").unwrap();
                    m.set_source(Some(dir.join(name)));
                }
            }
        }
        let mut vol = mounts.last().unwrap().clone();
        vol.set_destination("/data".into());
        vol.set_source(Some(dir.join("vol")));
        mounts.push(vol);
        spec.set_mounts(Some(mounts));
        let c = from_spec(&spec, &dir).unwrap();
        assert_eq!(c.hostname.as_deref(), Some("0123456789ab"));
        assert!(!c.root_readonly);
        assert!(c.tmpfs_mounts.is_empty(), "{:?}", c.tmpfs_mounts);
        let files: Vec<&str> = c.file_mounts.iter().map(|m| m.0.as_str()).collect();
        assert_eq!(files, ["/etc/resolv.conf", "/etc/hostname", "/etc/hosts"]);
        assert!(c.ignored_mounts.is_empty(), "{:?}", c.ignored_mounts);
        assert_eq!(c.bind_mounts.len(), 1);
        assert_eq!(c.bind_mounts[0].0, "/data");
        assert!(!c.bind_mounts[0].2, "rw");
        assert_eq!(c.hooks.create_runtime.len(), 1);
        assert_eq!(c.hooks.create_runtime[0].args[0], "libnetwork-setkey");
        assert_eq!(c.netns, NetNs::Path("/var/run/docker/netns/abc".into()));
        // docker's bridge mode: a network namespace without a path (the
        // prestart hook fills it); none listed: the runtime's.
        let mut nss = spec.linux().as_ref().unwrap().namespaces().clone().unwrap();
        for n in nss.iter_mut() {
            if n.typ() == oci_spec::runtime::LinuxNamespaceType::Network {
                n.set_path(None);
            }
        }
        spec.linux_mut()
            .as_mut()
            .unwrap()
            .set_namespaces(Some(nss.clone()));
        assert_eq!(from_spec(&spec, &dir).unwrap().netns, NetNs::New);
        nss.retain(|n| n.typ() != oci_spec::runtime::LinuxNamespaceType::Network);
        spec.linux_mut().as_mut().unwrap().set_namespaces(Some(nss));
        assert_eq!(from_spec(&spec, &dir).unwrap().netns, NetNs::Runtime);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn normalizes_destinations() {
        assert_eq!(normalize(Path::new("/a//b/./c/../d/")).unwrap(), "/a/b/d");
        assert!(normalize(Path::new("a")).is_err());
    }
}
