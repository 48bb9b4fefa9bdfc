//! sysfs: the few files programs read to learn the machine's shape (CPU
//! counts for sysconf(_SC_NPROCESSORS_*), the cgroup mount point, THP
//! mode). Built once at boot as a read-only-permission tree; nothing from
//! the host's /sys shows through.

use super::tmpfs::{new_tmpfs, set_contents};
use crate::errno::KResult;
use crate::vfs::Inode;
use std::sync::Arc;

fn dir(parent: &Arc<dyn Inode>, name: &str) -> KResult<Arc<dyn Inode>> {
    parent.mkdir(name.as_bytes(), libc::S_IFDIR | 0o555, 0, 0)?;
    parent.lookup(name.as_bytes())
}

fn file(parent: &Arc<dyn Inode>, name: &str, content: &str) -> KResult<()> {
    let f = parent.create(name.as_bytes(), libc::S_IFREG | 0o444, 0, 0)?;
    set_contents(&*f, content.as_bytes())
}

/// "0-N" for N+1 CPUs, as the kernel formats cpu lists.
fn cpu_list(n: usize) -> String {
    if n <= 1 {
        "0\n".to_string()
    } else {
        format!("0-{}\n", n - 1)
    }
}

pub fn new_sysfs() -> KResult<Arc<dyn Inode>> {
    let root = new_tmpfs(0o555);
    let ncpu = crate::boot::guest_cpus();
    let devices = dir(&root, "devices")?;
    let system = dir(&devices, "system")?;
    let cpu = dir(&system, "cpu")?;
    for f in ["online", "possible", "present"] {
        file(&cpu, f, &cpu_list(ncpu))?;
    }
    for i in 0..ncpu {
        let c = dir(&cpu, &format!("cpu{i}"))?;
        file(&c, "online", "1\n")?;
    }
    let fs = dir(&root, "fs")?;
    // The cgroup hierarchy is filled in by the OCI runtime's resources.
    dir(&fs, "cgroup")?;
    let kernel = dir(&root, "kernel")?;
    let mm = dir(&kernel, "mm")?;
    let thp = dir(&mm, "transparent_hugepage")?;
    file(&thp, "enabled", "always madvise [never]\n")?;
    file(
        &thp,
        "defrag",
        "always defer defer+madvise madvise [never]\n",
    )?;
    dir(&root, "class")?;
    dir(&root, "bus")?;
    dir(&root, "block")?;
    Ok(root)
}
