//! /proc/sys: the sysctls programs read. Values are ours (the sandbox's
//! kernel identity and limits), read-only except kernel/hostname.

use super::{dir, file, random_uuid, rw_file, text, Builder, Node, Owner, ProcFs, Table};
use crate::errno::{Errno, KResult};
use crate::kernel::task::{current, lock};
use crate::kernel::{Kernel, RELEASE, SYSNAME, VERSION};
use std::sync::Arc;

/// A fixed-text sysctl (`value` plus the newline).
fn val(fs: &Arc<ProcFs>, key: &'static str, value: &str) -> Builder {
    let fs = fs.clone();
    let v = format!("{value}\n");
    Box::new(move || text(&fs, key, &Owner::Kernel, v.clone()))
}

fn subdir(fs: &Arc<ProcFs>, key: &'static str, entries: Vec<(&'static str, Builder)>) -> Arc<Node> {
    dir(fs, key, 0o555, &Owner::Kernel, Table::new(entries))
}

fn sub(fs: &Arc<ProcFs>, make: fn(&Arc<ProcFs>) -> Arc<Node>) -> Builder {
    let fs = fs.clone();
    Box::new(move || make(&fs))
}

pub(super) fn new_sys(fs: &Arc<ProcFs>) -> Arc<Node> {
    subdir(
        fs,
        "sys",
        vec![
            ("fs", sub(fs, sys_fs)),
            ("kernel", sub(fs, sys_kernel)),
            ("net", sub(fs, sys_net)),
            ("vm", sub(fs, sys_vm)),
        ],
    )
}

fn sys_fs(fs: &Arc<ProcFs>) -> Arc<Node> {
    subdir(
        fs,
        "sys/fs",
        vec![
            (
                "file-max",
                val(fs, "sys/fs/file-max", "9223372036854775807"),
            ),
            ("nr_open", val(fs, "sys/fs/nr_open", "1048576")),
            (
                "pipe-max-size",
                val(
                    fs,
                    "sys/fs/pipe-max-size",
                    &crate::fs::pipe::PIPE_MAX_SIZE.to_string(),
                ),
            ),
        ],
    )
}

fn hostname_node(fs: &Arc<ProcFs>) -> Arc<Node> {
    rw_file(
        fs,
        "sys/kernel/hostname",
        &Owner::Kernel,
        |k: &Arc<Kernel>| {
            let mut h = lock(&k.hostname).clone();
            h.push(b'\n');
            Ok(h)
        },
        |k: &Arc<Kernel>, buf: &[u8]| -> KResult<()> {
            // Like sethostname(2): root only, at most 64 bytes.
            if current().is_some_and(|t| t.creds().euid != 0) {
                return Err(Errno::EPERM);
            }
            let mut name = buf.to_vec();
            if let Some(i) = name.iter().position(|&c| c == b'\n' || c == 0) {
                name.truncate(i);
            }
            if name.len() > 64 {
                return Err(Errno::EINVAL);
            }
            *lock(&k.hostname) = name;
            Ok(())
        },
    )
}

fn sys_kernel(fs: &Arc<ProcFs>) -> Arc<Node> {
    let f = fs.clone();
    let boot_id = fs.boot_id.clone();
    subdir(
        fs,
        "sys/kernel",
        vec![
            ("cap_last_cap", val(fs, "sys/kernel/cap_last_cap", "40")),
            ("domainname", val(fs, "sys/kernel/domainname", "(none)")),
            ("hostname", Box::new(move || hostname_node(&f))),
            ("ngroups_max", val(fs, "sys/kernel/ngroups_max", "65536")),
            ("osrelease", val(fs, "sys/kernel/osrelease", RELEASE)),
            ("ostype", val(fs, "sys/kernel/ostype", SYSNAME)),
            ("overflowgid", val(fs, "sys/kernel/overflowgid", "65534")),
            ("overflowuid", val(fs, "sys/kernel/overflowuid", "65534")),
            ("pid_max", val(fs, "sys/kernel/pid_max", "4194304")),
            ("random", {
                let fs = fs.clone();
                Box::new(move || {
                    subdir(
                        &fs,
                        "sys/kernel/random",
                        vec![
                            ("boot_id", val(&fs, "sys/kernel/random/boot_id", &boot_id)),
                            (
                                "entropy_avail",
                                val(&fs, "sys/kernel/random/entropy_avail", "256"),
                            ),
                            ("poolsize", val(&fs, "sys/kernel/random/poolsize", "256")),
                            ("uuid", {
                                let fs = fs.clone();
                                Box::new(move || {
                                    file(&fs, "sys/kernel/random/uuid", &Owner::Kernel, |_| {
                                        Ok(format!("{}\n", random_uuid()).into_bytes())
                                    })
                                })
                            }),
                        ],
                    )
                })
            }),
            ("threads-max", val(fs, "sys/kernel/threads-max", "4194304")),
            ("version", val(fs, "sys/kernel/version", VERSION)),
        ],
    )
}

/// net.ipv4.ping_group_range: the sandbox stack's (root may set it); with
/// `--network=host` the host's, which decides there, read-only.
fn ping_group_range_node(fs: &Arc<ProcFs>) -> Arc<Node> {
    use crate::net::{netstack::icmp, network_mode, NetworkMode};
    rw_file(
        fs,
        "sys/net/ipv4/ping_group_range",
        &Owner::Kernel,
        |_k: &Arc<Kernel>| {
            if network_mode() == NetworkMode::Host {
                if let Ok(v) = std::fs::read("/proc/sys/net/ipv4/ping_group_range") {
                    return Ok(v);
                }
            }
            let (low, high) = icmp::ping_group_range();
            Ok(format!("{low}\t{high}\n").into_bytes())
        },
        |_k: &Arc<Kernel>, buf: &[u8]| -> KResult<()> {
            if current().is_some_and(|t| t.creds().euid != 0) || network_mode() == NetworkMode::Host
            {
                return Err(Errno::EPERM);
            }
            icmp::set_ping_group_range(buf)
        },
    )
}

fn sys_net(fs: &Arc<ProcFs>) -> Arc<Node> {
    let f = fs.clone();
    subdir(
        fs,
        "sys/net",
        vec![
            ("ipv4", {
                Box::new(move || {
                    let g = f.clone();
                    subdir(
                        &f,
                        "sys/net/ipv4",
                        vec![(
                            "ping_group_range",
                            Box::new(move || ping_group_range_node(&g)),
                        )],
                    )
                })
            }),
            ("core", {
                let fs = fs.clone();
                Box::new(move || {
                    subdir(
                        &fs,
                        "sys/net/core",
                        vec![("somaxconn", val(&fs, "sys/net/core/somaxconn", "4096"))],
                    )
                })
            }),
        ],
    )
}

fn sys_vm(fs: &Arc<ProcFs>) -> Arc<Node> {
    subdir(
        fs,
        "sys/vm",
        vec![
            ("max_map_count", val(fs, "sys/vm/max_map_count", "65530")),
            // Our mmap never places mappings below 64 KiB.
            ("mmap_min_addr", val(fs, "sys/vm/mmap_min_addr", "65536")),
            (
                "overcommit_memory",
                val(fs, "sys/vm/overcommit_memory", "0"),
            ),
            ("overcommit_ratio", val(fs, "sys/vm/overcommit_ratio", "50")),
        ],
    )
}
