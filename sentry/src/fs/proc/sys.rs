//! /proc/sys: the sysctls programs read. Values are ours (the sandbox's
//! kernel identity and limits), read-only except the tunables of
//! kernel::sysctl.

use super::{dir, file, random_uuid, rw_file, text, Builder, Node, Owner, ProcFs, Table};
use crate::errno::{Errno, KResult};
use crate::kernel::sysctl;
use crate::kernel::task::current;
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

/// A sysctl the kernel acts on (kernel::sysctl): root may write it.
fn tunable(fs: &Arc<ProcFs>, path: &'static str, key: &'static str) -> Builder {
    let fs = fs.clone();
    Box::new(move || {
        rw_file(
            &fs,
            path,
            &Owner::Kernel,
            move |k: &Arc<Kernel>| sysctl::get(k, key).ok_or(Errno::ENOENT),
            move |k: &Arc<Kernel>, buf: &[u8]| -> KResult<()> {
                if current().is_some_and(|t| t.creds().euid != 0) {
                    return Err(Errno::EPERM);
                }
                sysctl::set(k, key, buf)
            },
        )
    })
}

fn sys_kernel(fs: &Arc<ProcFs>) -> Arc<Node> {
    let boot_id = fs.boot_id.clone();
    subdir(
        fs,
        "sys/kernel",
        vec![
            ("cap_last_cap", val(fs, "sys/kernel/cap_last_cap", "40")),
            (
                "domainname",
                tunable(fs, "sys/kernel/domainname", "kernel.domainname"),
            ),
            (
                "hostname",
                tunable(fs, "sys/kernel/hostname", "kernel.hostname"),
            ),
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

fn sys_net(fs: &Arc<ProcFs>) -> Arc<Node> {
    subdir(
        fs,
        "sys/net",
        vec![
            ("core", {
                let fs = fs.clone();
                Box::new(move || {
                    subdir(
                        &fs,
                        "sys/net/core",
                        vec![(
                            "somaxconn",
                            tunable(&fs, "sys/net/core/somaxconn", "net.core.somaxconn"),
                        )],
                    )
                })
            }),
            ("ipv4", {
                let fs = fs.clone();
                Box::new(move || {
                    subdir(
                        &fs,
                        "sys/net/ipv4",
                        vec![
                            (
                                "ip_unprivileged_port_start",
                                tunable(
                                    &fs,
                                    "sys/net/ipv4/ip_unprivileged_port_start",
                                    "net.ipv4.ip_unprivileged_port_start",
                                ),
                            ),
                            (
                                "ping_group_range",
                                tunable(
                                    &fs,
                                    "sys/net/ipv4/ping_group_range",
                                    "net.ipv4.ping_group_range",
                                ),
                            ),
                        ],
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
