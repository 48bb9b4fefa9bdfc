//! The /proc directory itself: the system-wide files, `self`,
//! `thread-self`, and one directory per thread group (live or zombie).
//! Threads that do not lead a group are not listed but can be looked up
//! by tid, as on Linux.

use super::{file, link, pid, sys, system, DirOps, Kind, Node, Owner, ProcFs, ProcRef};
use crate::errno::{Errno, KResult};
use crate::kernel::task::current;
use crate::kernel::Kernel;
use crate::vfs::{DirEntry, Inode};
use std::sync::Arc;

pub(super) fn new_root(fs: &Arc<ProcFs>) -> Arc<dyn Inode> {
    Node::new(
        fs,
        1,
        0o555,
        Owner::Kernel,
        Kind::Dir(Box::new(Root { fs: fs.clone() })),
    )
}

struct Root {
    fs: Arc<ProcFs>,
}

type Maker = fn(&Arc<ProcFs>) -> Arc<Node>;

/// The fixed entries, in listing order.
const STATIC: &[(&str, Maker)] = &[
    ("cpuinfo", |fs| {
        file(fs, "cpuinfo", &Owner::Kernel, |_| Ok(system::cpuinfo()))
    }),
    ("filesystems", |fs| {
        file(fs, "filesystems", &Owner::Kernel, |_| {
            Ok(system::filesystems())
        })
    }),
    ("loadavg", |fs| {
        file(fs, "loadavg", &Owner::Kernel, |k| Ok(system::loadavg(k)))
    }),
    ("meminfo", |fs| {
        file(fs, "meminfo", &Owner::Kernel, |k| Ok(system::meminfo(k)))
    }),
    // A symlink to the reader's own mount table, as on Linux.
    ("mounts", |fs| {
        link(
            fs,
            "mounts",
            &Owner::Kernel,
            |_| Ok(b"self/mounts".to_vec()),
        )
    }),
    ("net", super::net::new_net),
    ("stat", |fs| {
        let f = fs.clone();
        file(fs, "stat", &Owner::Kernel, move |k| Ok(system::stat(&f, k)))
    }),
    ("swaps", |fs| {
        file(fs, "swaps", &Owner::Kernel, |_| {
            Ok(b"Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n".to_vec())
        })
    }),
    ("sys", sys::new_sys),
    ("uptime", |fs| {
        file(fs, "uptime", &Owner::Kernel, |k| Ok(system::uptime(k)))
    }),
    ("version", |fs| {
        file(fs, "version", &Owner::Kernel, |_| Ok(system::version()))
    }),
    ("vmstat", |fs| {
        file(fs, "vmstat", &Owner::Kernel, |_| Ok(system::vmstat()))
    }),
];

/// The calling task, for self and thread-self (none outside a task: the
/// links then dangle, as /proc/self does for a kernel thread).
fn caller() -> KResult<Arc<crate::kernel::task::Task>> {
    current().ok_or(Errno::ENOENT)
}

fn self_link(fs: &Arc<ProcFs>) -> Arc<Node> {
    link(fs, "self", &Owner::Kernel, |_| {
        Ok(caller()?.tgid().to_string().into_bytes())
    })
}

fn thread_self_link(fs: &Arc<ProcFs>) -> Arc<Node> {
    link(fs, "thread-self", &Owner::Kernel, |_| {
        let t = caller()?;
        Ok(format!("{}/task/{}", t.tgid(), t.tid).into_bytes())
    })
}

impl DirOps for Root {
    fn list(&self, k: &Arc<Kernel>) -> KResult<Vec<DirEntry>> {
        let mut out = Vec::new();
        let mut push = |name: &str, n: Arc<Node>| {
            out.push(DirEntry {
                ino: n.ino(),
                d_type: n.dtype(),
                name: name.as_bytes().to_vec(),
            })
        };
        for (name, make) in STATIC {
            push(name, make(&self.fs));
        }
        push("self", self_link(&self.fs));
        push("thread-self", thread_self_link(&self.fs));
        let mut pids: Vec<i32> = k.ts().procs.keys().copied().collect();
        pids.sort_unstable();
        for p in pids {
            out.push(DirEntry {
                ino: pid::pid_dir_ino(p, None),
                d_type: libc::DT_DIR,
                name: p.to_string().into_bytes(),
            });
        }
        Ok(out)
    }

    fn lookup(&self, k: &Arc<Kernel>, name: &[u8]) -> KResult<Arc<dyn Inode>> {
        if let Some((_, make)) = STATIC.iter().find(|(n, _)| n.as_bytes() == name) {
            return Ok(make(&self.fs));
        }
        match name {
            b"self" => return Ok(self_link(&self.fs)),
            b"thread-self" => return Ok(thread_self_link(&self.fs)),
            _ => {}
        }
        let id = parse_pid(name).ok_or(Errno::ENOENT)?;
        let (p, tid) = {
            let ts = k.ts();
            if let Some(e) = ts.procs.get(&id) {
                (ProcRef::new(id, &e.tg), None)
            } else {
                // A thread that does not lead its group: hidden from the
                // listing, reachable by name.
                let t = ts.tasks.get(&id).ok_or(Errno::ENOENT)?;
                (ProcRef::new(t.tgid(), &t.tg), Some((id, Arc::downgrade(t))))
            }
        };
        Ok(pid::new_pid_dir(&self.fs, p, tid, false))
    }
}

/// A PID as /proc names it: decimal digits without sign or leading zeros.
pub(super) fn parse_pid(name: &[u8]) -> Option<i32> {
    if name.is_empty() || name.len() > 10 || (name[0] == b'0') {
        return None;
    }
    if !name.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(name).ok()?.parse().ok()
}
