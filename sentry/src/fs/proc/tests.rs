use super::pid::{cpu_list, cpu_mask, format_limits};
use super::*;
use crate::kernel::task::default_rlimits;

#[test]
fn inode_numbers_are_stable_and_distinct() {
    assert_eq!(ino_of("1/status"), ino_of("1/status"));
    assert_ne!(ino_of("1/status"), ino_of("1/stat"));
    assert_ne!(ino_of("1"), ino_of("2"));
    for k in ["", "1", "self", "sys/kernel/hostname"] {
        let i = ino_of(k);
        assert!(i >= 2 && i <= i64::MAX as u64, "{k}: {i}");
    }
}

#[test]
fn pid_names() {
    use super::root::parse_pid;
    assert_eq!(parse_pid(b"1"), Some(1));
    assert_eq!(parse_pid(b"4194304"), Some(4194304));
    for bad in [
        &b""[..],
        b"0",
        b"01",
        b"-1",
        b"+1",
        b"1a",
        b"self",
        b"99999999999",
    ] {
        assert_eq!(parse_pid(bad), None, "{:?}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn uuid_format() {
    let u = random_uuid();
    assert_eq!(u.len(), 36);
    let parts: Vec<&str> = u.split('-').collect();
    assert_eq!(
        parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
        [8, 4, 4, 4, 12]
    );
    assert!(parts[2].starts_with('4'));
    assert!(u.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
    assert_ne!(u, random_uuid());
}

#[test]
fn cpu_masks() {
    assert_eq!(cpu_mask(1), "1");
    assert_eq!(cpu_mask(2), "3");
    assert_eq!(cpu_mask(8), "ff");
    assert_eq!(cpu_mask(12), "fff");
    assert_eq!(cpu_mask(32), "ffffffff");
    assert_eq!(cpu_mask(33), "1,ffffffff");
    assert_eq!(cpu_mask(64), "ffffffff,ffffffff");
    assert_eq!(cpu_list(1), "0");
    assert_eq!(cpu_list(4), "0-3");
}

#[test]
fn limits_table_matches_linux_layout() {
    let t = format_limits(&default_rlimits());
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines.len(), 17);
    assert_eq!(
        lines[0],
        "Limit                     Soft Limit           Hard Limit           Units     "
    );
    assert_eq!(
        lines[4],
        "Max stack size            8388608              unlimited            bytes     "
    );
    assert_eq!(
        lines[14],
        "Max nice priority         0                    0                    "
    );
    assert_eq!(
        lines[16],
        "Max realtime timeout      unlimited            unlimited            us        "
    );
}

#[test]
fn meminfo_under_a_memory_limit() {
    let m = String::from_utf8(system::meminfo_for(Some(64 << 20), 16 << 20)).unwrap();
    let get = |k: &str| -> u64 {
        let line = m.lines().find(|l| l.starts_with(&format!("{k}:"))).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    assert_eq!(get("MemTotal"), 65536);
    assert!(get("MemFree") <= 49152);
    assert!(get("MemAvailable") <= 49152);
    assert!(get("MemFree") <= get("MemAvailable"));
}

#[test]
fn meminfo_has_what_free_reads() {
    let m = String::from_utf8(system::meminfo_for(None, 0)).unwrap();
    let get = |k: &str| -> u64 {
        let line = m
            .lines()
            .find(|l| l.starts_with(&format!("{k}:")))
            .unwrap_or_else(|| panic!("{k} missing"));
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    let total = get("MemTotal");
    assert!(total > 0);
    assert!(get("MemFree") <= total);
    assert!(get("MemAvailable") <= total);
    for k in [
        "Buffers",
        "Cached",
        "SwapTotal",
        "SwapFree",
        "Shmem",
        "SReclaimable",
    ] {
        get(k);
    }
    assert!(m.starts_with("MemTotal:       "));
    assert!(m.contains("\nHugePages_Total:       0\n"));
}

#[test]
fn cpuinfo_one_block_per_cpu() {
    let c = String::from_utf8(system::cpuinfo()).unwrap();
    let n = system::ncpus();
    assert_eq!(c.matches("processor\t: ").count(), n);
    assert_eq!(c.matches("\n\n").count(), n);
    assert!(c.contains("\nflags\t\t: "));
    assert!(c.contains("fpu"));
    assert!(c.contains("\nmodel name\t: "));
}

#[test]
fn version_names_our_kernel() {
    let v = String::from_utf8(system::version()).unwrap();
    assert!(v.starts_with("Linux version 4.4.0-sentry "), "{v}");
    assert!(v.ends_with("2016\n"));
}

#[test]
fn resident_bytes_counts_touched_pages() {
    use crate::mm::memory_file::{MemoryFile, PAGE};
    let mf = MemoryFile::new().unwrap();
    let off = mf.allocate(16 * PAGE).unwrap();
    let rss = |o: u64, l: u64| super::pid::resident_bytes(mf.fd(), o, l);
    assert_eq!(rss(off, 16 * PAGE), 0);
    // SAFETY: inside the range just allocated.
    unsafe {
        *mf.ptr(off + 3 * PAGE) = 1;
        *mf.ptr(off + 4 * PAGE + 100) = 1;
        *mf.ptr(off + 10 * PAGE) = 1;
    }
    assert_eq!(rss(off, 16 * PAGE), 3 * PAGE);
    assert_eq!(rss(off, 4 * PAGE), PAGE);
    assert_eq!(rss(off + 5 * PAGE, 5 * PAGE), 0);
    mf.free(off, 16 * PAGE);
}
