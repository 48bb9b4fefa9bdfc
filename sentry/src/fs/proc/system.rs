//! System-wide /proc files: meminfo, cpuinfo, stat, uptime, loadavg,
//! version, filesystems, and the mount table (mounts, mountinfo).

use super::pid::ticks;
use super::ProcFs;
use crate::kernel::task::{Task, LAST_TID, TASKS_CREATED};
use crate::kernel::{Kernel, RELEASE, SYSNAME, VERSION};
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

pub(super) fn ncpus() -> usize {
    crate::boot::guest_cpus()
}

// ---------------------------------------------------------------------------
// Memory.
// ---------------------------------------------------------------------------

fn host_sysinfo() -> libc::sysinfo {
    // SAFETY: an all-zero sysinfo is a valid value to overwrite.
    let mut si: libc::sysinfo = unsafe { std::mem::zeroed() };
    // SAFETY: si is a live, writable struct sysinfo.
    unsafe { libc::sysinfo(&mut si) };
    si
}

/// The host's memory as sysinfo(2) reports it. sysinfo does not know the
/// page cache, so Cached is the shared memory it does know (Linux counts
/// shmem in Cached too, and the guest's own memory is host shmem) and
/// MemAvailable is free memory plus buffers: an underestimate on a host
/// with a large cache. Counters sysinfo has no source for are 0.
///
/// With a container memory limit, MemTotal is the limit (if below the
/// host's), and MemFree/MemAvailable are what is left of it after the
/// guest's memory (the memory file's allocated pages), at most the host's.
pub(super) fn meminfo(k: &Kernel) -> Vec<u8> {
    meminfo_for(crate::boot::guest_memory_limit(), k.mf.committed_bytes())
}

/// meminfo under memory limit `limit` with `used` bytes of guest memory.
// c_ulong is not u64 everywhere.
#[allow(clippy::unnecessary_cast)]
pub(super) fn meminfo_for(limit: Option<u64>, used: u64) -> Vec<u8> {
    let si = host_sysinfo();
    let unit = (si.mem_unit as u64).max(1);
    let kb = |x: libc::c_ulong| (x as u64).saturating_mul(unit) >> 10;
    let mut total = kb(si.totalram);
    let mut free = kb(si.freeram);
    let buffers = kb(si.bufferram);
    let shared = kb(si.sharedram);
    let swap_total = kb(si.totalswap);
    let swap_free = kb(si.freeswap);
    let mut available = (free + buffers).min(total);
    if let Some(limit) = limit {
        let limit_kb = limit >> 10;
        if limit_kb < total {
            total = limit_kb;
            let left = limit_kb.saturating_sub(used >> 10);
            free = free.min(left);
            available = available.min(left);
        }
    }
    let mut s = String::with_capacity(1500);
    let mut line = |name: &str, v: u64| {
        let _ = writeln!(s, "{:<16}{:>8} kB", format!("{name}:"), v);
    };
    line("MemTotal", total);
    line("MemFree", free);
    line("MemAvailable", available);
    line("Buffers", buffers);
    line("Cached", shared);
    line("SwapCached", 0);
    line("Active", 0);
    line("Inactive", 0);
    line("Active(anon)", 0);
    line("Inactive(anon)", 0);
    line("Active(file)", 0);
    line("Inactive(file)", 0);
    line("Unevictable", 0);
    line("Mlocked", 0);
    line("SwapTotal", swap_total);
    line("SwapFree", swap_free);
    line("Dirty", 0);
    line("Writeback", 0);
    line("AnonPages", 0);
    line("Mapped", 0);
    line("Shmem", shared);
    line("KReclaimable", 0);
    line("Slab", 0);
    line("SReclaimable", 0);
    line("SUnreclaim", 0);
    line("KernelStack", 0);
    line("PageTables", 0);
    line("NFS_Unstable", 0);
    line("Bounce", 0);
    line("WritebackTmp", 0);
    line("CommitLimit", total / 2 + swap_total);
    line("Committed_AS", 0);
    line("VmallocTotal", 34_359_738_367);
    line("VmallocUsed", 0);
    line("VmallocChunk", 0);
    line("Percpu", 0);
    line("AnonHugePages", 0);
    line("ShmemHugePages", 0);
    line("ShmemPmdMapped", 0);
    line("FileHugePages", 0);
    line("FilePmdMapped", 0);
    for name in [
        "HugePages_Total",
        "HugePages_Free",
        "HugePages_Rsvd",
        "HugePages_Surp",
    ] {
        let _ = writeln!(s, "{:<16}{:>8}", format!("{name}:"), 0);
    }
    let mut line = |name: &str, v: u64| {
        let _ = writeln!(s, "{:<16}{:>8} kB", format!("{name}:"), v);
    };
    line("Hugepagesize", 2048);
    line("Hugetlb", 0);
    s.into_bytes()
}

/// /proc/vmstat: the free page count from sysinfo(2); the event counters
/// (paging, swapping, faults) are the host's and read 0.
// c_ulong is not u64 everywhere.
#[allow(clippy::unnecessary_cast)]
pub(super) fn vmstat() -> Vec<u8> {
    let si = host_sysinfo();
    let unit = (si.mem_unit as u64).max(1);
    let pages = |x: libc::c_ulong| (x as u64).saturating_mul(unit) / 4096;
    let mut s = String::new();
    let _ = writeln!(s, "nr_free_pages {}", pages(si.freeram));
    let _ = writeln!(s, "nr_shmem {}", pages(si.sharedram));
    for name in [
        "nr_inactive_anon",
        "nr_active_anon",
        "nr_inactive_file",
        "nr_active_file",
        "nr_dirty",
        "nr_writeback",
        "pgpgin",
        "pgpgout",
        "pswpin",
        "pswpout",
        "pgfault",
        "pgmajfault",
    ] {
        let _ = writeln!(s, "{name} 0");
    }
    s.into_bytes()
}

// ---------------------------------------------------------------------------
// CPU.
// ---------------------------------------------------------------------------

#[cfg(target_arch = "x86_64")]
fn cpuid(leaf: u32, sub: u32) -> [u32; 4] {
    // SAFETY: cpuid is available on every x86-64 CPU (newer toolchains
    // made the intrinsic safe).
    #[allow(unused_unsafe)]
    let r = unsafe { std::arch::x86_64::__cpuid_count(leaf, sub) };
    [r.eax, r.ebx, r.ecx, r.edx]
}

#[cfg(not(target_arch = "x86_64"))]
fn cpuid(_leaf: u32, _sub: u32) -> [u32; 4] {
    [0; 4]
}

/// Linux's names for CPUID feature bits, in the order /proc/cpuinfo
/// prints its capability words: (leaf, subleaf, register 0-3 =
/// eax/ebx/ecx/edx, [(bit, name)]).
type FlagWord = (u32, u32, usize, &'static [(u32, &'static str)]);

const FLAG_WORDS: &[FlagWord] = &[
    (
        1,
        0,
        3,
        &[
            (0, "fpu"),
            (1, "vme"),
            (2, "de"),
            (3, "pse"),
            (4, "tsc"),
            (5, "msr"),
            (6, "pae"),
            (7, "mce"),
            (8, "cx8"),
            (9, "apic"),
            (11, "sep"),
            (12, "mtrr"),
            (13, "pge"),
            (14, "mca"),
            (15, "cmov"),
            (16, "pat"),
            (17, "pse36"),
            (18, "pn"),
            (19, "clflush"),
            (21, "dts"),
            (22, "acpi"),
            (23, "mmx"),
            (24, "fxsr"),
            (25, "sse"),
            (26, "sse2"),
            (27, "ss"),
            (28, "ht"),
            (29, "tm"),
            (30, "ia64"),
            (31, "pbe"),
        ],
    ),
    (
        0x8000_0001,
        0,
        3,
        &[
            (11, "syscall"),
            (19, "mp"),
            (20, "nx"),
            (22, "mmxext"),
            (25, "fxsr_opt"),
            (26, "pdpe1gb"),
            (27, "rdtscp"),
            (29, "lm"),
            (30, "3dnowext"),
            (31, "3dnow"),
        ],
    ),
    (
        1,
        0,
        2,
        &[
            (0, "pni"),
            (1, "pclmulqdq"),
            (2, "dtes64"),
            (3, "monitor"),
            (4, "ds_cpl"),
            (5, "vmx"),
            (6, "smx"),
            (7, "est"),
            (8, "tm2"),
            (9, "ssse3"),
            (10, "cid"),
            (11, "sdbg"),
            (12, "fma"),
            (13, "cx16"),
            (14, "xtpr"),
            (15, "pdcm"),
            (17, "pcid"),
            (18, "dca"),
            (19, "sse4_1"),
            (20, "sse4_2"),
            (21, "x2apic"),
            (22, "movbe"),
            (23, "popcnt"),
            (24, "tsc_deadline_timer"),
            (25, "aes"),
            (26, "xsave"),
            (28, "avx"),
            (29, "f16c"),
            (30, "rdrand"),
            (31, "hypervisor"),
        ],
    ),
    (
        0x8000_0001,
        0,
        2,
        &[
            (0, "lahf_lm"),
            (1, "cmp_legacy"),
            (2, "svm"),
            (3, "extapic"),
            (4, "cr8_legacy"),
            (5, "abm"),
            (6, "sse4a"),
            (7, "misalignsse"),
            (8, "3dnowprefetch"),
            (9, "osvw"),
            (10, "ibs"),
            (11, "xop"),
            (12, "skinit"),
            (13, "wdt"),
            (15, "lwp"),
            (16, "fma4"),
            (17, "tce"),
            (19, "nodeid_msr"),
            (21, "tbm"),
            (22, "topoext"),
            (23, "perfctr_core"),
            (24, "perfctr_nb"),
            (26, "bpext"),
            (27, "ptsc"),
            (28, "perfctr_llc"),
            (29, "mwaitx"),
        ],
    ),
    (
        7,
        0,
        1,
        &[
            (0, "fsgsbase"),
            (1, "tsc_adjust"),
            (3, "bmi1"),
            (4, "hle"),
            (5, "avx2"),
            (7, "smep"),
            (8, "bmi2"),
            (9, "erms"),
            (10, "invpcid"),
            (11, "rtm"),
            (12, "cqm"),
            (14, "mpx"),
            (15, "rdt_a"),
            (16, "avx512f"),
            (17, "avx512dq"),
            (18, "rdseed"),
            (19, "adx"),
            (20, "smap"),
            (21, "avx512ifma"),
            (23, "clflushopt"),
            (24, "clwb"),
            (25, "intel_pt"),
            (26, "avx512pf"),
            (27, "avx512er"),
            (28, "avx512cd"),
            (29, "sha_ni"),
            (30, "avx512bw"),
            (31, "avx512vl"),
        ],
    ),
    (
        0xd,
        1,
        0,
        &[
            (0, "xsaveopt"),
            (1, "xsavec"),
            (2, "xgetbv1"),
            (3, "xsaves"),
        ],
    ),
    (
        7,
        0,
        2,
        &[
            (1, "avx512vbmi"),
            (2, "umip"),
            (3, "pku"),
            (4, "ospke"),
            (5, "waitpkg"),
            (6, "avx512_vbmi2"),
            (8, "gfni"),
            (9, "vaes"),
            (10, "vpclmulqdq"),
            (11, "avx512_vnni"),
            (12, "avx512_bitalg"),
            (14, "avx512_vpopcntdq"),
            (16, "la57"),
            (22, "rdpid"),
            (25, "cldemote"),
            (27, "movdiri"),
            (28, "movdir64b"),
        ],
    ),
    (
        7,
        0,
        3,
        &[
            (2, "avx512_4vnniw"),
            (3, "avx512_4fmaps"),
            (4, "fsrm"),
            (8, "avx512_vp2intersect"),
            (10, "md_clear"),
            (14, "serialize"),
            (16, "tsxldtrk"),
            (18, "pconfig"),
            (22, "amx_bf16"),
            (23, "avx512_fp16"),
            (24, "amx_tile"),
            (25, "amx_int8"),
            (28, "flush_l1d"),
            (29, "arch_capabilities"),
        ],
    ),
];

/// What cpuid tells about the CPU, once.
struct CpuId {
    vendor: String,
    family: u32,
    model: u32,
    stepping: u32,
    model_name: String,
    mhz: f64,
    cache_kb: u32,
    level: u32,
    flags: String,
    clflush: u32,
    phys_bits: u32,
    virt_bits: u32,
}

fn probe_cpu() -> CpuId {
    let l0 = cpuid(0, 0);
    let max = l0[0];
    let mut vendor = Vec::new();
    for r in [l0[1], l0[3], l0[2]] {
        vendor.extend_from_slice(&r.to_le_bytes());
    }
    let vendor = String::from_utf8_lossy(&vendor)
        .trim_end_matches('\0')
        .to_string();
    let l1 = if max >= 1 { cpuid(1, 0) } else { [0; 4] };
    let eax = l1[0];
    let mut family = (eax >> 8) & 0xf;
    let mut model = (eax >> 4) & 0xf;
    if family == 0xf {
        family += (eax >> 20) & 0xff;
    }
    if family == 6 || family >= 0xf {
        model += ((eax >> 16) & 0xf) << 4;
    }
    let ext_max = cpuid(0x8000_0000, 0)[0];
    let mut model_name = String::new();
    if ext_max >= 0x8000_0004 {
        let mut b = Vec::new();
        for leaf in 0x8000_0002..=0x8000_0004u32 {
            for r in cpuid(leaf, 0) {
                b.extend_from_slice(&r.to_le_bytes());
            }
        }
        model_name = String::from_utf8_lossy(&b)
            .trim_end_matches('\0')
            .trim()
            .to_string();
    }
    // Base frequency: leaf 0x16 where the CPU has it, else the brand
    // string's "@ 2.50GHz".
    let mut mhz = 0.0;
    if max >= 0x16 {
        mhz = (cpuid(0x16, 0)[0] & 0xffff) as f64;
    }
    if mhz == 0.0 && cpuid(1, 0)[2] & (1 << 31) != 0 {
        // A hypervisor's timing leaf (TSC frequency in kHz), where offered.
        let hv_max = cpuid(0x4000_0000, 0)[0];
        if (0x4000_0010..0x4001_0000).contains(&hv_max) {
            mhz = cpuid(0x4000_0010, 0)[0] as f64 / 1000.0;
        }
    }
    if mhz == 0.0 {
        if let Some(i) = model_name.find("GHz") {
            let head = &model_name[..i];
            let num = head.rsplit([' ', '@']).next().unwrap_or("");
            mhz = num.parse::<f64>().map(|g| g * 1000.0).unwrap_or(0.0);
        }
    }
    if mhz == 0.0 {
        mhz = measure_tsc_mhz();
    }
    // The last-level cache, as Linux's "cache size".
    let mut cache_kb = 0;
    if vendor == "GenuineIntel" && max >= 4 {
        for sub in 0..16 {
            let r = cpuid(4, sub);
            if r[0] & 0x1f == 0 {
                break;
            }
            let ways = ((r[1] >> 22) & 0x3ff) + 1;
            let parts = ((r[1] >> 12) & 0x3ff) + 1;
            let line = (r[1] & 0xfff) + 1;
            let sets = r[2] + 1;
            cache_kb = cache_kb.max(ways * parts * line * sets / 1024);
        }
    } else if ext_max >= 0x8000_0006 {
        cache_kb = cpuid(0x8000_0006, 0)[2] >> 16;
    }
    let mut flags = Vec::new();
    let ext = |leaf: u32| {
        if leaf >= 0x8000_0000 {
            leaf <= ext_max
        } else {
            leaf <= max
        }
    };
    for (leaf, sub, reg, bits) in FLAG_WORDS {
        if !ext(*leaf) {
            continue;
        }
        let v = cpuid(*leaf, *sub)[*reg];
        for (bit, name) in bits.iter() {
            if v & (1 << bit) != 0 {
                flags.push(*name);
            }
        }
    }
    let (phys_bits, virt_bits) = if ext_max >= 0x8000_0008 {
        let r = cpuid(0x8000_0008, 0)[0];
        (r & 0xff, (r >> 8) & 0xff)
    } else {
        (36, 48)
    };
    CpuId {
        vendor,
        family,
        model,
        stepping: eax & 0xf,
        model_name,
        mhz,
        cache_kb,
        level: max,
        flags: flags.join(" "),
        clflush: ((l1[1] >> 8) & 0xff) * 8,
        phys_bits,
        virt_bits,
    }
}

/// The TSC rate, measured over 10 ms (once: the result is cached) by
/// busy-waiting on the monotonic clock (sleeping would need a host
/// syscall the sentry does not otherwise make).
#[cfg(target_arch = "x86_64")]
fn measure_tsc_mhz() -> f64 {
    use std::arch::x86_64::_rdtsc;
    let t0 = std::time::Instant::now();
    // SAFETY: rdtsc has no preconditions on x86-64.
    #[allow(unused_unsafe)]
    let c0 = unsafe { _rdtsc() };
    while t0.elapsed() < std::time::Duration::from_millis(10) {
        std::hint::spin_loop();
    }
    // SAFETY: as above.
    #[allow(unused_unsafe)]
    let c1 = unsafe { _rdtsc() };
    let secs = t0.elapsed().as_secs_f64();
    let mhz = c1.wrapping_sub(c0) as f64 / secs / 1e6;
    // Rounded to 0.1 MHz: the measurement is not finer than that.
    (mhz * 10.0).round() / 10.0
}

#[cfg(not(target_arch = "x86_64"))]
fn measure_tsc_mhz() -> f64 {
    0.0
}

fn cpu() -> &'static CpuId {
    static CPU: OnceLock<CpuId> = OnceLock::new();
    CPU.get_or_init(probe_cpu)
}

/// One block per CPU the sandbox may use. Topology is simplified to one
/// package whose cores are the CPUs.
pub(super) fn cpuinfo() -> Vec<u8> {
    let c = cpu();
    let n = ncpus();
    let mut s = String::new();
    for i in 0..n {
        let _ = writeln!(s, "processor\t: {i}");
        let _ = writeln!(s, "vendor_id\t: {}", c.vendor);
        let _ = writeln!(s, "cpu family\t: {}", c.family);
        let _ = writeln!(s, "model\t\t: {}", c.model);
        let _ = writeln!(s, "model name\t: {}", c.model_name);
        let _ = writeln!(s, "stepping\t: {}", c.stepping);
        let _ = writeln!(s, "cpu MHz\t\t: {:.3}", c.mhz);
        if c.cache_kb > 0 {
            let _ = writeln!(s, "cache size\t: {} KB", c.cache_kb);
        }
        let _ = writeln!(s, "physical id\t: 0");
        let _ = writeln!(s, "siblings\t: {n}");
        let _ = writeln!(s, "core id\t\t: {i}");
        let _ = writeln!(s, "cpu cores\t: {n}");
        let _ = writeln!(s, "apicid\t\t: {i}");
        let _ = writeln!(s, "initial apicid\t: {i}");
        let _ = writeln!(s, "fpu\t\t: yes");
        let _ = writeln!(s, "fpu_exception\t: yes");
        let _ = writeln!(s, "cpuid level\t: {}", c.level);
        let _ = writeln!(s, "wp\t\t: yes");
        let _ = writeln!(s, "flags\t\t: {}", c.flags);
        let _ = writeln!(s, "bugs\t\t:");
        let _ = writeln!(s, "bogomips\t: {:.2}", c.mhz * 2.0);
        let _ = writeln!(s, "clflush size\t: {}", c.clflush);
        let _ = writeln!(s, "cache_alignment\t: {}", c.clflush);
        let _ = writeln!(
            s,
            "address sizes\t: {} bits physical, {} bits virtual",
            c.phys_bits, c.virt_bits
        );
        let _ = writeln!(s, "power management:");
        s.push('\n');
    }
    s.into_bytes()
}

// ---------------------------------------------------------------------------
// Scheduling statistics.
// ---------------------------------------------------------------------------

/// CPU use and task counts over the whole sandbox.
struct Activity {
    /// Guest CPU time of every task that ran (ns): live threads, exited
    /// threads of existing processes, and reaped descendants.
    busy_ns: u64,
    running: usize,
    tasks: usize,
}

fn activity(k: &Kernel) -> Activity {
    let (tasks, groups): (Vec<Arc<Task>>, Vec<_>) = {
        let ts = k.ts();
        (
            ts.tasks.values().cloned().collect(),
            ts.procs.values().map(|e| e.tg.clone()).collect(),
        )
    };
    let mut busy: u64 = tasks.iter().map(|t| t.cpu_time_ns()).sum();
    for tg in &groups {
        busy += tg.dead_cpu_ns.load(Ordering::Relaxed);
        busy += tg.children_cpu_ns.load(Ordering::Relaxed);
    }
    let running = tasks
        .iter()
        .filter(|t| !t.sleeping.load(Ordering::Relaxed) && !t.tg.stopped.load(Ordering::Relaxed))
        .count();
    Activity {
        busy_ns: busy,
        running,
        tasks: tasks.len(),
    }
}

/// /proc/stat. Guest CPU time is all "user"; it is split evenly over the
/// per-CPU lines (we do not know where the host ran it), and idle is the
/// rest of each CPU's time since boot. Interrupts and context switches
/// are the host's and show as 0.
pub(super) fn stat(fs: &ProcFs, k: &Kernel) -> Vec<u8> {
    let a = activity(k);
    let n = ncpus() as u64;
    let up = ticks(k.boot.elapsed().as_nanos() as u64);
    let user = ticks(a.busy_ns);
    let per_cpu = user / n;
    let idle_per_cpu = up.saturating_sub(per_cpu);
    let mut s = String::new();
    let line = |s: &mut String, name: &str, user: u64, idle: u64| {
        let _ = writeln!(s, "{name} {user} 0 0 {idle} 0 0 0 0 0 0");
    };
    line(&mut s, "cpu ", user, idle_per_cpu * n);
    for i in 0..n {
        line(&mut s, &format!("cpu{i}"), per_cpu, idle_per_cpu);
    }
    s.push_str("intr 0\n");
    s.push_str("ctxt 0\n");
    let _ = writeln!(s, "btime {}", fs.boot_wall.sec);
    let _ = writeln!(s, "processes {}", TASKS_CREATED.load(Ordering::Relaxed));
    let _ = writeln!(s, "procs_running {}", a.running.max(1));
    s.push_str("procs_blocked 0\n");
    s.push_str("softirq 0 0 0 0 0 0 0 0 0 0 0\n");
    s.into_bytes()
}

/// Seconds since the kernel started, and the CPUs' idle time: each CPU's
/// share of that time not spent running guest code.
pub(super) fn uptime(k: &Kernel) -> Vec<u8> {
    let up = k.boot.elapsed();
    let up_cs = up.as_millis() as u64 / 10;
    let busy_cs = activity(k).busy_ns / 10_000_000;
    let idle_cs = (up_cs * ncpus() as u64).saturating_sub(busy_cs);
    format!(
        "{}.{:02} {}.{:02}\n",
        up_cs / 100,
        up_cs % 100,
        idle_cs / 100,
        idle_cs % 100
    )
    .into_bytes()
}

/// Load averages are not tracked (they would need a periodic sampler), so
/// they read 0.00, honestly; the running/total task counts and the last
/// PID handed out are real.
pub(super) fn loadavg(k: &Kernel) -> Vec<u8> {
    let a = activity(k);
    format!(
        "0.00 0.00 0.00 {}/{} {}\n",
        a.running.max(1),
        a.tasks,
        LAST_TID.load(Ordering::Relaxed)
    )
    .into_bytes()
}

pub(super) fn version() -> Vec<u8> {
    format!("{SYSNAME} version {RELEASE} (sentry@sandbox) (rustc) {VERSION}\n").into_bytes()
}

/// The filesystem types the sentry implements.
pub(super) fn filesystems() -> Vec<u8> {
    let mut s = String::new();
    for t in [
        "tmpfs",
        "proc",
        "devtmpfs",
        "pipefs",
        "anon_inodefs",
        "overlay",
        "9p",
    ] {
        let _ = writeln!(s, "nodev\t{t}");
    }
    s.into_bytes()
}

// ---------------------------------------------------------------------------
// Mounts.
// ---------------------------------------------------------------------------

pub(super) struct MountRow {
    pub id: u32,
    pub parent: u32,
    pub path: Vec<u8>,
    pub fstype: &'static str,
    pub flags: crate::vfs::path::MountFlags,
    pub dev: u64,
}

/// Whether `path` lies in the tree mounted at `mnt`.
fn is_under(path: &[u8], mnt: &[u8]) -> bool {
    mnt == b"/" || path == mnt || (path.starts_with(mnt) && path.get(mnt.len()) == Some(&b'/'))
}

/// The mount table with ids (the root is 1, then in mount order) and each
/// mount's parent (the mount containing its mount point).
pub(super) fn mount_rows(k: &Kernel) -> Vec<MountRow> {
    let mps = k.vfs.mount_points();
    let mut rows: Vec<MountRow> = Vec::with_capacity(mps.len());
    for (i, mp) in mps.iter().enumerate() {
        let parent = rows
            .iter()
            .filter(|r| r.path != mp.path && is_under(&mp.path, &r.path))
            .max_by_key(|r| r.path.len())
            .map(|r| r.id)
            .unwrap_or(0);
        rows.push(MountRow {
            id: i as u32 + 1,
            parent,
            path: mp.path.clone(),
            fstype: mp.fstype,
            flags: mp.flags,
            dev: mp.root.stat().map(|s| s.dev).unwrap_or(0),
        });
    }
    rows
}

/// The id of the mount `path` lies on.
pub(super) fn mount_id_of(k: &Kernel, path: &[u8]) -> u32 {
    mount_rows(k)
        .iter()
        .filter(|r| is_under(path, &r.path))
        .max_by_key(|r| r.path.len())
        .map(|r| r.id)
        .unwrap_or(0)
}

/// Octal escapes for the separators of the mount table.
fn mangle(p: &[u8]) -> String {
    let mut out = Vec::with_capacity(p.len());
    for &b in p {
        match b {
            b' ' | b'\t' | b'\n' | b'\\' => out.extend_from_slice(format!("\\{b:03o}").as_bytes()),
            _ => out.push(b),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn opts(r: &MountRow) -> String {
    r.flags.options()
}

pub(super) fn mounts(k: &Kernel) -> Vec<u8> {
    let mut s = String::new();
    for r in mount_rows(k) {
        let _ = writeln!(
            s,
            "{} {} {} {} 0 0",
            r.fstype,
            mangle(&r.path),
            r.fstype,
            opts(&r)
        );
    }
    s.into_bytes()
}

pub(super) fn mountinfo(k: &Kernel) -> Vec<u8> {
    let mut s = String::new();
    for r in mount_rows(k) {
        let _ = writeln!(
            s,
            "{} {} {}:{} / {} {} - {} {} {}",
            r.id,
            r.parent,
            crate::vfs::major(r.dev),
            crate::vfs::minor(r.dev),
            mangle(&r.path),
            opts(&r),
            r.fstype,
            r.fstype,
            opts(&r)
        );
    }
    s.into_bytes()
}
