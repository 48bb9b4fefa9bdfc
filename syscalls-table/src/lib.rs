//! Single source of truth for x86-64 Linux syscalls.
//!
//! The sentry dispatches on these numbers, the strace-style logger prints
//! them with [`format_call`] / [`format_result`], and the compatibility
//! document (`docs/COMPATIBILITY.md`) is generated from them together with
//! the hand-maintained support list in [`status::STATUS`]. Keeping all of
//! that in one crate means a syscall can never be known to one component
//! and missing from another.
//!
//! The table covers every 64-bit x86 syscall of Linux 6.10: numbers
//! `0..=334` and `424..=462`.

mod compat;
mod format;
pub mod status;
mod table;

use std::collections::HashMap;
use std::sync::OnceLock;

pub use compat::compatibility_markdown;
pub use format::{errno_info, format_call, format_result, signal_name};
pub use status::{status, Status};

/// How a syscall argument is interpreted, which decides how it is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgKind {
    /// Signed integer (`int`, `long`, `clockid_t`, ...).
    Int,
    /// Unsigned integer (`unsigned int`, `uid_t`, counts, ...).
    UInt,
    /// A number best read in hex: addresses, ioctl requests, opaque words.
    Hex,
    /// A file descriptor; `AT_FDCWD` is recognised.
    Fd,
    /// Pointer to a NUL-terminated C string (usually a path).
    Path,
    /// Pointer to a structure.
    Ptr,
    /// Pointer to an input or output data buffer.
    Buf,
    /// A byte count or length.
    Size,
    /// A bit set of flags.
    Flags,
    /// File permission bits (`mode_t`).
    Mode,
    /// A process, thread or process-group id.
    Pid,
    /// A signal number.
    Signal,
    /// A file offset (`loff_t`).
    Off,
}

/// One named syscall argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arg {
    pub name: &'static str,
    pub kind: ArgKind,
}

/// One row of the syscall table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyscallInfo {
    pub nr: u32,
    pub name: &'static str,
    pub args: &'static [Arg],
}

/// Every x86-64 syscall, sorted by number. Unused numbers are absent.
pub static SYSCALLS: &[SyscallInfo] = table::TABLE;

/// The highest syscall number in [`SYSCALLS`].
pub const MAX_NR: u32 = check_sorted_and_get_max(table::TABLE);

/// Marks a number with no syscall in [`NR_INDEX`].
const NO_SYSCALL: u16 = u16::MAX;

/// Maps a syscall number to its position in [`SYSCALLS`], so that
/// [`by_nr`] (called on every trapped syscall) is a single array load.
/// Built at compile time, so there is no lazy-initialisation cost or lock.
static NR_INDEX: [u16; MAX_NR as usize + 1] = build_nr_index(table::TABLE);

/// Fails the build if the table is not strictly ascending by number (which
/// also rules out duplicates), and returns the largest number.
const fn check_sorted_and_get_max(table: &[SyscallInfo]) -> u32 {
    assert!(!table.is_empty(), "syscall table is empty");
    let mut i = 1;
    while i < table.len() {
        assert!(
            table[i - 1].nr < table[i].nr,
            "syscall table must be strictly ascending by number"
        );
        i += 1;
    }
    table[table.len() - 1].nr
}

const fn build_nr_index(table: &[SyscallInfo]) -> [u16; MAX_NR as usize + 1] {
    assert!(table.len() < NO_SYSCALL as usize, "index type too small");
    let mut index = [NO_SYSCALL; MAX_NR as usize + 1];
    let mut i = 0;
    while i < table.len() {
        index[table[i].nr as usize] = i as u16;
        i += 1;
    }
    index
}

/// Looks a syscall up by number in O(1).
///
/// Takes `u64` because that is the width of `orig_rax`; anything out of
/// range is simply unknown.
pub fn by_nr(nr: u64) -> Option<&'static SyscallInfo> {
    let slot = *NR_INDEX.get(usize::try_from(nr).ok()?)?;
    (slot != NO_SYSCALL).then(|| &SYSCALLS[slot as usize])
}

/// Looks a syscall up by its kernel name (e.g. `"openat"`).
pub fn by_name(name: &str) -> Option<&'static SyscallInfo> {
    // Name lookups come from config, docs and tests rather than the syscall
    // hot path, so a lazily built map is fine here.
    static BY_NAME: OnceLock<HashMap<&'static str, &'static SyscallInfo>> = OnceLock::new();
    BY_NAME
        .get_or_init(|| SYSCALLS.iter().map(|s| (s.name, s)).collect())
        .get(name)
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn well_known_numbers() {
        for (nr, name) in [
            (0, "read"),
            (1, "write"),
            (2, "open"),
            (9, "mmap"),
            (56, "clone"),
            (59, "execve"),
            (60, "exit"),
            (62, "kill"),
            (156, "_sysctl"),
            (202, "futex"),
            (231, "exit_group"),
            (257, "openat"),
            (334, "rseq"),
            (424, "pidfd_send_signal"),
            (435, "clone3"),
            (436, "close_range"),
            (437, "openat2"),
            (443, "quotactl_fd"),
            (449, "futex_waitv"),
            (462, "mseal"),
        ] {
            assert_eq!(by_nr(nr).map(|s| s.name), Some(name), "nr {nr}");
            assert_eq!(by_name(name).map(|s| s.nr), Some(nr as u32), "{name}");
        }
    }

    #[test]
    fn unknown_numbers_and_names() {
        assert!(by_nr(335).is_none());
        assert!(by_nr(423).is_none());
        assert!(by_nr(u64::from(MAX_NR) + 1).is_none());
        assert!(by_nr(512).is_none(), "x32-only entries are excluded");
        assert!(by_nr(u64::MAX).is_none());
        assert!(by_name("no_such_syscall").is_none());
        assert!(by_name("").is_none());
    }

    #[test]
    fn table_shape() {
        assert_eq!(MAX_NR, 462);
        // 0..=334 and 424..=462, with no holes in either range.
        assert_eq!(SYSCALLS.len(), 335 + 39);
        let nrs: Vec<u32> = SYSCALLS.iter().map(|s| s.nr).collect();
        let expected: Vec<u32> = (0..=334).chain(424..=462).collect();
        assert_eq!(nrs, expected);

        let mut names = HashSet::new();
        for s in SYSCALLS {
            assert!(names.insert(s.name), "duplicate name {}", s.name);
            assert!(s.args.len() <= 6, "{} has more than 6 args", s.name);
            let mut arg_names = HashSet::new();
            for a in s.args {
                assert!(
                    arg_names.insert(a.name),
                    "{}: duplicate arg {}",
                    s.name,
                    a.name
                );
            }
            // Every row round-trips through both lookups.
            assert_eq!(by_nr(u64::from(s.nr)), Some(s));
            assert_eq!(by_name(s.name), Some(s));
        }
    }

    #[test]
    fn argument_kinds() {
        let kinds = |name: &str| -> Vec<(&str, ArgKind)> {
            by_name(name)
                .unwrap()
                .args
                .iter()
                .map(|a| (a.name, a.kind))
                .collect()
        };
        use ArgKind::*;
        assert_eq!(kinds("read"), [("fd", Fd), ("buf", Buf), ("count", Size)]);
        assert_eq!(
            kinds("openat"),
            [
                ("dfd", Fd),
                ("filename", Path),
                ("flags", Flags),
                ("mode", Mode)
            ]
        );
        assert_eq!(
            kinds("mmap"),
            [
                ("addr", Hex),
                ("len", Size),
                ("prot", Flags),
                ("flags", Flags),
                ("fd", Fd),
                ("off", Off)
            ]
        );
        assert_eq!(kinds("kill"), [("pid", Pid), ("sig", Signal)]);
        assert!(kinds("getpid").is_empty());
    }

    /// Cross-checks every `__NR_x` in the installed kernel UAPI header
    /// against the table. The header may be older than the table (so we
    /// only check one direction), and it may be absent, in which case the
    /// check is skipped rather than failed: it is a guard against typos,
    /// not a build requirement.
    #[test]
    fn matches_system_unistd_header() {
        const HEADER: &str = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h";
        let Ok(text) = std::fs::read_to_string(HEADER) else {
            eprintln!("skipping: {HEADER} not found (install linux-libc-dev)");
            return;
        };
        let mut checked = 0;
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let (Some("#define"), Some(macro_name), Some(value)) =
                (words.next(), words.next(), words.next())
            else {
                continue;
            };
            let Some(name) = macro_name.strip_prefix("__NR_") else {
                continue;
            };
            let nr: u64 = value
                .parse()
                .unwrap_or_else(|_| panic!("{HEADER}: bad number in {line:?}"));
            assert_eq!(
                by_nr(nr).map(|s| s.name),
                Some(name),
                "{HEADER} says __NR_{name} = {nr}"
            );
            checked += 1;
        }
        assert!(checked > 300, "parsed only {checked} entries from {HEADER}");
    }
}
