//! User namespaces for the processes that touch host files (OCI
//! `linux.namespaces` type "user" with `uidMappings`/`gidMappings`, what
//! docker's userns-remap asks for). Each gofer is started in a new user
//! namespace with the container's mappings and becomes root there, so it
//! reaches the image as the host ids the mappings name (docker chowns the
//! image to them), stat results come back in container ids (host ids
//! outside the mappings show as 65534, as in runc containers), and files
//! it creates or chowns get the mapped host ids.

use anyhow::{bail, Context};
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

/// One line of uid_map/gid_map: container ids `inside..inside+size` are
/// host ids `host..host+size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IdRange {
    pub inside: u32,
    pub host: u32,
    pub size: u32,
}

/// The container's uid and gid mappings.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IdMaps {
    pub uids: Vec<IdRange>,
    pub gids: Vec<IdRange>,
}

/// The most lines the kernel takes in one map (since Linux 4.15).
const MAX_LINES: usize = 340;

impl IdMaps {
    /// Checks mappings as the kernel would take them, naming `field`s:
    /// non-empty, non-zero sizes, no overflow, no overlaps, and container
    /// root mapped (the gofer becomes it).
    pub fn check(&self) -> anyhow::Result<()> {
        for (field, m) in [
            ("linux.uidMappings", &self.uids),
            ("linux.gidMappings", &self.gids),
        ] {
            if m.is_empty() {
                bail!("{field}: a user namespace needs at least one mapping");
            }
            if m.len() > MAX_LINES {
                bail!("{field}: more than {MAX_LINES} mappings");
            }
            for (i, r) in m.iter().enumerate() {
                if r.size == 0 {
                    bail!("{field}[{i}].size: must not be 0");
                }
                if r.inside.checked_add(r.size).is_none() || r.host.checked_add(r.size).is_none() {
                    bail!("{field}[{i}]: the range overflows 32-bit ids");
                }
                for (j, o) in m.iter().enumerate().take(i) {
                    let overlap = |a: u32, b: u32| {
                        let (a, b) = (u64::from(a), u64::from(b));
                        a < b + u64::from(o.size) && b < a + u64::from(r.size)
                    };
                    if overlap(r.inside, o.inside) || overlap(r.host, o.host) {
                        bail!("{field}[{i}]: overlaps {field}[{j}]");
                    }
                }
            }
            if !m.iter().any(|r| r.inside == 0) {
                bail!(
                    "{field}: container id 0 must be mapped (the sandbox's file server runs as it)"
                );
            }
        }
        Ok(())
    }

    /// uid_map/gid_map contents: "inside host size" lines.
    pub fn text(m: &[IdRange]) -> String {
        m.iter()
            .map(|r| format!("{} {} {}\n", r.inside, r.host, r.size))
            .collect()
    }

    /// The container uid host uid `host` is; 65534 (the overflow id) when
    /// the mappings do not cover it, as the kernel shows it.
    pub fn to_container_uid(&self, host: u32) -> u32 {
        to_container(&self.uids, host)
    }

    pub fn to_container_gid(&self, host: u32) -> u32 {
        to_container(&self.gids, host)
    }

    /// (uid_map, gid_map) contents.
    pub fn map_texts(&self) -> (String, String) {
        (IdMaps::text(&self.uids), IdMaps::text(&self.gids))
    }
}

fn to_container(m: &[IdRange], host: u32) -> u32 {
    m.iter()
        .find(|r| host >= r.host && host - r.host < r.size)
        .map_or(OVERFLOW_ID, |r| r.inside + (host - r.host))
}

/// /proc/sys/kernel/overflowuid and overflowgid.
const OVERFLOW_ID: u32 = 65534;

/// The parent's end of the line to a child being started into a user
/// namespace. The child makes the namespace itself, after exec (an exec
/// by a process not yet mapped to root there would drop its
/// capabilities), says so, and waits until its maps are written.
pub struct Pending {
    line: UnixStream,
}

/// Before spawning: the parent's end and the child's (to pass as an fd).
pub fn channel() -> anyhow::Result<(OwnedFd, Pending)> {
    let (ours, theirs) = UnixStream::pair().context("creating the user namespace channel")?;
    Ok((theirs.into(), Pending { line: ours }))
}

impl Pending {
    /// Waits for the child to have made its namespace, writes its uid_map
    /// and gid_map, and lets it go on.
    pub fn release(mut self, pid: u32, maps: &IdMaps) -> anyhow::Result<()> {
        self.line
            .set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .context("user namespace channel")?;
        let mut b = [0u8; 1];
        self.line
            .read_exact(&mut b)
            .context("the gofer did not make its user namespace")?;
        for (file, m) in [("uid_map", &maps.uids), ("gid_map", &maps.gids)] {
            let path = format!("/proc/{pid}/{file}");
            std::fs::write(&path, IdMaps::text(m))
                .with_context(|| format!("writing {path} (needs root)"))?;
        }
        self.line.write_all(b"1").context("releasing the gofer")?;
        Ok(())
    }
}

/// In the child, after exec (single-threaded): makes a user namespace,
/// waits until the parent wrote its maps, then becomes its root (the
/// image's owner).
pub fn become_root(fd: i32) -> anyhow::Result<()> {
    // SAFETY: the fd was set up for us by the parent (see `channel`) and
    // is ours alone.
    let mut line = UnixStream::from(unsafe { OwnedFd::from_raw_fd(fd) });
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER)
        .context("creating a user namespace")?;
    line.write_all(b"1").context("user namespace channel")?;
    let mut b = [0u8; 1];
    line.read_exact(&mut b)
        .context("waiting for the user namespace's mappings")?;
    let root = nix::unistd::Gid::from_raw(0);
    nix::unistd::setgroups(&[]).context("setgroups in the user namespace")?;
    nix::unistd::setresgid(root, root, root).context("becoming gid 0 in the user namespace")?;
    let root = nix::unistd::Uid::from_raw(0);
    nix::unistd::setresuid(root, root, root).context("becoming uid 0 in the user namespace")?;
    // Changing credentials cleared the parent-death signal: set it again,
    // and go if the parent is already gone.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    if nix::unistd::getppid() == nix::unistd::Pid::from_raw(1) {
        bail!("the sandbox exited while the gofer started");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(inside: u32, host: u32, size: u32) -> IdRange {
        IdRange { inside, host, size }
    }

    #[test]
    fn checks_name_the_field() {
        let ok = IdMaps {
            uids: vec![r(0, 100000, 65536)],
            gids: vec![r(0, 100000, 65536)],
        };
        assert!(ok.check().is_ok());
        assert_eq!(ok.map_texts().1, "0 100000 65536\n");
        let e = |m: IdMaps| format!("{:#}", m.check().unwrap_err());
        assert!(e(IdMaps {
            uids: vec![],
            ..ok.clone()
        })
        .contains("linux.uidMappings: a user"));
        assert!(e(IdMaps {
            gids: vec![r(0, 1, 0)],
            ..ok.clone()
        })
        .contains("gidMappings[0].size"));
        assert!(e(IdMaps {
            uids: vec![r(1, 100000, 10)],
            ..ok.clone()
        })
        .contains("id 0 must"));
        assert!(e(IdMaps {
            uids: vec![r(0, 100000, 10), r(5, 200000, 10)],
            ..ok.clone()
        })
        .contains("overlaps"));
        assert!(e(IdMaps {
            uids: vec![r(0, u32::MAX - 1, 10)],
            ..ok.clone()
        })
        .contains("overflows"));
        assert_eq!(IdMaps::text(&ok.uids), "0 100000 65536\n");
        assert_eq!(ok.to_container_uid(101000), 1000);
        assert_eq!(ok.to_container_uid(0), 65534);
        assert_eq!(ok.to_container_gid(100000 + 65536), 65534);
    }
}
