//! POSIX capabilities (capabilities(7)): each task's effective, permitted,
//! inheritable, bounding and ambient sets, how user-id changes and execve
//! transform them, and the numbers and names the OCI config uses. The
//! sandbox has no file capabilities and no set-user-ID programs that gain
//! privilege, so execve follows the "no file capabilities" rules.

pub const CAP_CHOWN: u32 = 0;
pub const CAP_DAC_OVERRIDE: u32 = 1;
pub const CAP_DAC_READ_SEARCH: u32 = 2;
pub const CAP_FOWNER: u32 = 3;
pub const CAP_FSETID: u32 = 4;
pub const CAP_KILL: u32 = 5;
pub const CAP_SETGID: u32 = 6;
pub const CAP_SETUID: u32 = 7;
pub const CAP_SETPCAP: u32 = 8;
pub const CAP_LINUX_IMMUTABLE: u32 = 9;
pub const CAP_NET_BIND_SERVICE: u32 = 10;
pub const CAP_NET_ADMIN: u32 = 12;
pub const CAP_NET_RAW: u32 = 13;
pub const CAP_SYS_CHROOT: u32 = 18;
pub const CAP_SYS_PTRACE: u32 = 19;
pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_SYS_NICE: u32 = 23;
pub const CAP_SYS_RESOURCE: u32 = 24;
pub const CAP_SYS_TTY_CONFIG: u32 = 26;
pub const CAP_MKNOD: u32 = 27;
pub const CAP_MAC_OVERRIDE: u32 = 32;

/// /proc/sys/kernel/cap_last_cap.
pub const LAST_CAP: u32 = 40;
/// Every capability the kernel knows.
pub const ALL: u64 = (1 << (LAST_CAP + 1)) - 1;

/// The names, indexed by number (as in <linux/capability.h>).
const NAMES: [&str; LAST_CAP as usize + 1] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// A capability's number from its name ("CAP_CHOWN"; case-insensitive,
/// the "CAP_" prefix optional).
pub fn by_name(name: &str) -> Option<u32> {
    let n = name.to_ascii_uppercase();
    let n = if n.starts_with("CAP_") {
        n
    } else {
        format!("CAP_{n}")
    };
    NAMES.iter().position(|x| *x == n).map(|i| i as u32)
}

/// The capabilities a file-system id of 0 carries (dropped from the
/// effective set when fsuid leaves 0, restored when it returns).
const FS_MASK: u64 = bit(CAP_CHOWN)
    | bit(CAP_DAC_OVERRIDE)
    | bit(CAP_DAC_READ_SEARCH)
    | bit(CAP_FOWNER)
    | bit(CAP_FSETID)
    | bit(CAP_LINUX_IMMUTABLE)
    | bit(CAP_MAC_OVERRIDE)
    | bit(CAP_MKNOD);

pub const fn bit(cap: u32) -> u64 {
    1 << cap
}

/// One task's capability state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub bounding: u64,
    pub ambient: u64,
    /// PR_SET_KEEPCAPS: keep the permitted set when every uid leaves 0.
    pub keep_caps: bool,
    /// PR_SET_NO_NEW_PRIVS.
    pub no_new_privs: bool,
}

impl Default for Caps {
    /// Root's: everything effective, permitted and in the bounding set.
    fn default() -> Caps {
        Caps {
            effective: ALL,
            permitted: ALL,
            inheritable: 0,
            bounding: ALL,
            ambient: 0,
            keep_caps: false,
            no_new_privs: false,
        }
    }
}

impl Caps {
    /// What a process of `uid` starts with when nothing says otherwise:
    /// root's full sets, or nothing (bounding set full) for other users.
    pub fn for_uid(uid: u32) -> Caps {
        if uid == 0 {
            Caps::default()
        } else {
            Caps {
                effective: 0,
                permitted: 0,
                ..Caps::default()
            }
        }
    }

    pub fn has(&self, cap: u32) -> bool {
        cap <= LAST_CAP && self.effective & bit(cap) != 0
    }

    /// What setuid-family calls do to the sets (capabilities(7), "Effect
    /// of user ID changes on capabilities"); ids are (real, effective,
    /// saved, filesystem) before and after.
    pub fn on_uid_change(&mut self, old: [u32; 4], new: [u32; 4]) {
        let had_root = old[..3].contains(&0);
        let all_nonzero = new[..3].iter().all(|&u| u != 0);
        if had_root && all_nonzero {
            if !self.keep_caps {
                self.permitted = 0;
            }
            self.effective = 0;
            self.ambient = 0;
        }
        if old[1] == 0 && new[1] != 0 {
            self.effective = 0;
        } else if old[1] != 0 && new[1] == 0 {
            self.effective = self.permitted;
        }
        if old[3] == 0 && new[3] != 0 {
            self.effective &= !FS_MASK;
        } else if old[3] != 0 && new[3] == 0 {
            self.effective |= self.permitted & FS_MASK;
        }
    }

    /// What execve does, without file capabilities or set-user-ID bits:
    /// root (real or effective uid 0) gets its bounding set plus its
    /// inheritable and ambient ones and, if the effective uid is 0, all of
    /// it effective; others keep their ambient set, permitted and
    /// effective. The ambient set survives; keep_caps is cleared.
    pub fn on_exec(&mut self, ruid: u32, euid: u32) {
        if ruid == 0 || euid == 0 {
            self.permitted = self.inheritable | self.bounding | self.ambient;
            self.effective = if euid == 0 {
                self.permitted
            } else {
                self.ambient
            };
        } else {
            self.permitted = self.ambient;
            self.effective = self.ambient;
        }
        self.keep_caps = false;
    }

    /// capset(2)'s rules for new (effective, permitted, inheritable) sets.
    pub fn check_set(&self, eff: u64, prm: u64, inh: u64) -> bool {
        let inh_limit = if self.has(CAP_SETPCAP) {
            self.inheritable | self.bounding
        } else {
            self.inheritable | self.permitted
        };
        inh & !inh_limit == 0 && prm & !self.permitted == 0 && eff & !prm == 0
    }

    /// After capset: ambient capabilities no longer both permitted and
    /// inheritable are dropped.
    pub fn set(&mut self, eff: u64, prm: u64, inh: u64) {
        self.effective = eff & ALL;
        self.permitted = prm & ALL;
        self.inheritable = inh & ALL;
        self.ambient &= self.permitted & self.inheritable;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(by_name("CAP_CHOWN"), Some(0));
        assert_eq!(by_name("net_raw"), Some(CAP_NET_RAW));
        assert_eq!(by_name("CAP_CHECKPOINT_RESTORE"), Some(LAST_CAP));
        assert_eq!(by_name("CAP_NOPE"), None);
    }

    #[test]
    fn setuid_from_root_drops_everything_unless_kept() {
        let mut c = Caps::default();
        c.on_uid_change([0, 0, 0, 0], [1000, 1000, 1000, 1000]);
        assert_eq!((c.effective, c.permitted), (0, 0));
        let mut k = Caps {
            keep_caps: true,
            ..Caps::default()
        };
        k.on_uid_change([0, 0, 0, 0], [1000, 1000, 1000, 1000]);
        assert_eq!((k.effective, k.permitted), (0, ALL));
        // seteuid(1000) then seteuid(0): the effective set comes back.
        let mut e = Caps::default();
        e.on_uid_change([0, 0, 0, 0], [0, 1000, 0, 1000]);
        assert_eq!((e.effective, e.permitted), (0, ALL));
        e.on_uid_change([0, 1000, 0, 1000], [0, 0, 0, 0]);
        assert_eq!(e.effective, ALL);
        // setfsuid(1000) drops just the file-system capabilities.
        let mut f = Caps::default();
        f.on_uid_change([0, 0, 0, 0], [0, 0, 0, 1000]);
        assert!(!f.has(CAP_CHOWN) && f.has(CAP_KILL));
    }

    #[test]
    fn exec_rules() {
        let mut c = Caps {
            bounding: ALL & !bit(CAP_SYS_ADMIN),
            effective: 0,
            ..Caps::default()
        };
        c.on_exec(0, 0);
        assert!(c.has(CAP_CHOWN) && !c.has(CAP_SYS_ADMIN));
        let mut u = Caps {
            ambient: bit(CAP_NET_BIND_SERVICE),
            ..Caps::default()
        };
        u.on_exec(1000, 1000);
        assert_eq!(u.effective, bit(CAP_NET_BIND_SERVICE));
        assert_eq!(u.permitted, bit(CAP_NET_BIND_SERVICE));
    }

    #[test]
    fn capset_may_only_shrink() {
        let c = Caps {
            effective: bit(CAP_KILL),
            permitted: bit(CAP_KILL) | bit(CAP_CHOWN),
            ..Caps::default()
        };
        assert!(c.check_set(bit(CAP_CHOWN), bit(CAP_CHOWN), 0));
        assert!(!c.check_set(0, bit(CAP_SYS_ADMIN), 0));
        assert!(!c.check_set(bit(CAP_KILL), bit(CAP_CHOWN), 0));
        assert!(c.check_set(0, 0, bit(CAP_CHOWN)));
        assert!(!c.check_set(0, 0, bit(CAP_SYS_ADMIN)));
    }
}
