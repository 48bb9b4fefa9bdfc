//! /sys/fs/cgroup: the container's cgroup as its processes see it from
//! their own cgroup namespace, a read-only cgroup v2 directory (what
//! /proc/self/cgroup's "0::/" names): the limits the runtime gave the
//! sandbox (`boot::guest_*`, which `runsc update` changes) and the
//! sandbox's own usage. Runtimes size themselves from these files (the
//! JVM, Go's GOMAXPROCS, .NET), as they do in a runc container.

use super::{dir, file, Builder, Node, Owner, ProcFs, Table};
use crate::kernel::Kernel;
use std::sync::Arc;

/// A read-only file whose text `gen` makes when it is opened.
fn entry(fs: &Arc<ProcFs>, key: &'static str, gen: fn(&Arc<Kernel>) -> String) -> Builder {
    let fs = fs.clone();
    Box::new(move || {
        file(&fs, key, &Owner::Kernel, move |k| {
            Ok(format!("{}\n", gen(k)).into_bytes())
        })
    })
}

/// A limit as cgroup v2 writes it: the number, or "max" for none.
fn limit(v: Option<u64>) -> String {
    v.map_or_else(|| "max".to_string(), |v| v.to_string())
}

pub(super) fn new_root(fs: &Arc<ProcFs>) -> Arc<Node> {
    dir(
        fs,
        "cgroup",
        0o555,
        &Owner::Kernel,
        Table::new(vec![
            (
                "cgroup.controllers",
                entry(fs, "cgroup/cgroup.controllers", |_| {
                    "cpuset cpu memory pids".into()
                }),
            ),
            (
                "cgroup.procs",
                entry(fs, "cgroup/cgroup.procs", |k| {
                    let mut pids: Vec<i32> = k.ts().procs.keys().copied().collect();
                    pids.sort_unstable();
                    let lines: Vec<String> = pids.iter().map(i32::to_string).collect();
                    lines.join("\n")
                }),
            ),
            (
                "cpu.max",
                // The CPUs the guest may use, as a quota of that many
                // periods (nproc shows the same count).
                entry(fs, "cgroup/cpu.max", |_| {
                    let quota =
                        crate::boot::guest_cpus_limit().map(|n| (n as u64 * 100_000).to_string());
                    format!("{} 100000", quota.unwrap_or_else(|| "max".into()))
                }),
            ),
            (
                "cpuset.cpus.effective",
                entry(
                    fs,
                    "cgroup/cpuset.cpus.effective",
                    |_| match crate::boot::guest_cpus() {
                        1 => "0".to_string(),
                        n => format!("0-{}", n - 1),
                    },
                ),
            ),
            (
                "memory.current",
                entry(fs, "cgroup/memory.current", |k| {
                    k.mf.committed_bytes().to_string()
                }),
            ),
            (
                "memory.max",
                entry(fs, "cgroup/memory.max", |_| {
                    limit(crate::boot::guest_memory_limit())
                }),
            ),
            (
                "pids.current",
                entry(fs, "cgroup/pids.current", |k| {
                    k.ts().tasks.len().to_string()
                }),
            ),
            (
                "pids.max",
                entry(fs, "cgroup/pids.max", |_| {
                    limit(crate::boot::guest_pids_limit())
                }),
            ),
        ]),
    )
}
