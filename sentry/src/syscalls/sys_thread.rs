//! Task system calls: clone/fork/exec/exit/wait, ids and credentials,
//! sessions and process groups, rlimits, scheduling, uname, prctl, futex.

use super::{path_arg, string_array, Args, EJUSTRETURN};
use crate::errno::{Errno, KResult};
use crate::kernel::caps;
use crate::kernel::clone::CloneArgs;
use crate::kernel::exit::{WaitOpts, WaitTarget};
use crate::kernel::task::{lock, CurrentTask, RLIMIT_COUNT};
use crate::kernel::{Creds, MACHINE, RELEASE, SYSNAME, VERSION};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub fn clone(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    // x86-64 order: flags, stack, parent_tid, child_tid, tls.
    let args = CloneArgs {
        flags: a[0] & !0xff,
        stack: a[1],
        parent_tid: a[2],
        child_tid: a[3],
        tls: a[4],
        exit_signal: (a[0] & 0xff) as i32,
    };
    check_tls(t, &args)?;
    t.do_clone(args).map(|x| x as u64)
}

/// A TLS base outside the user address space is refused, as arch_prctl does.
fn check_tls(t: &CurrentTask, a: &CloneArgs) -> KResult<()> {
    if a.flags & crate::kernel::clone::CLONE_SETTLS != 0
        && a.tls >= t.kernel.platform.max_user_address()
    {
        return Err(Errno::EPERM);
    }
    Ok(())
}

pub fn clone3(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let size = a[1];
    if !(64..=4096).contains(&size) {
        return Err(Errno::EINVAL);
    }
    let mut b = vec![0u8; size as usize];
    t.mm.copy_in(a[0], &mut b)?;
    let u = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
    // flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup
    if b.len() > 88 && b[88..].iter().any(|&x| x != 0) {
        return Err(Errno::E2BIG);
    }
    if u(4) > 64 || u(8) != 0 || (b.len() >= 80 && u(9) != 0) {
        return Err(Errno::EINVAL);
    }
    let stack = u(5);
    let stack_size = u(6);
    if (stack == 0) != (stack_size == 0) {
        return Err(Errno::EINVAL);
    }
    let args = CloneArgs {
        flags: u(0),
        stack: if stack != 0 { stack + stack_size } else { 0 },
        parent_tid: u(3),
        child_tid: u(2),
        tls: u(7),
        exit_signal: u(4) as i32,
    };
    check_tls(t, &args)?;
    t.do_clone(args).map(|x| x as u64)
}

pub fn fork(t: &mut CurrentTask, _a: &Args) -> KResult<u64> {
    t.do_clone(CloneArgs {
        exit_signal: libc::SIGCHLD,
        ..Default::default()
    })
    .map(|x| x as u64)
}

pub fn vfork(t: &mut CurrentTask, _a: &Args) -> KResult<u64> {
    t.do_clone(CloneArgs {
        flags: crate::kernel::clone::CLONE_VM | crate::kernel::clone::CLONE_VFORK,
        exit_signal: libc::SIGCHLD,
        ..Default::default()
    })
    .map(|x| x as u64)
}

pub fn execve(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let p = path_arg(t, a[0])?;
    let argv = string_array(t, a[1])?;
    let envp = string_array(t, a[2])?;
    t.execve(libc::AT_FDCWD, &p, argv, envp, false)?;
    Err(EJUSTRETURN)
}

pub fn execveat(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let p = path_arg(t, a[1])?;
    let argv = string_array(t, a[2])?;
    let envp = string_array(t, a[3])?;
    let flags = a[4] as i32;
    if flags & !(libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW) != 0 {
        return Err(Errno::EINVAL);
    }
    t.execve(
        a[0] as i32,
        &p,
        argv,
        envp,
        flags & libc::AT_EMPTY_PATH != 0,
    )?;
    Err(EJUSTRETURN)
}

pub fn exit(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    // Only this thread: the run loop exits when it sees `killed`, with the
    // status recorded for the case it is the last thread.
    let status = ((a[0] & 0xff) << 8) as i32;
    t.killed.store(true, Ordering::SeqCst);
    t.thread_exit_status.store(status, Ordering::SeqCst);
    Err(EJUSTRETURN)
}

pub fn exit_group(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let status = ((a[0] & 0xff) << 8) as i32;
    let tg = t.tg.clone();
    t.kernel.group_exit(&tg, status);
    Err(EJUSTRETURN)
}

fn wait_target(t: &CurrentTask, pid: i32) -> WaitTarget {
    match pid {
        -1 => WaitTarget::Any,
        0 => WaitTarget::Pgid(
            t.kernel
                .ts()
                .procs
                .get(&t.tgid())
                .map(|e| e.pgid)
                .unwrap_or(0),
        ),
        p if p < -1 => WaitTarget::Pgid(-p),
        p => WaitTarget::Pid(p),
    }
}

pub fn wait4(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let pid = a[0] as i32;
    let options = a[2] as i32;
    if options
        & !(libc::WNOHANG
            | libc::WUNTRACED
            | libc::WCONTINUED
            | libc::__WALL
            | libc::__WCLONE
            | libc::__WNOTHREAD)
        != 0
    {
        return Err(Errno::EINVAL);
    }
    let opts = WaitOpts {
        target: wait_target(t, pid),
        exited: true,
        stopped: options & libc::WUNTRACED != 0,
        continued: options & libc::WCONTINUED != 0,
        nohang: options & libc::WNOHANG != 0,
        nowait: false,
    };
    match t.wait_child(&opts)? {
        None => Ok(0),
        Some(r) => {
            if a[1] != 0 {
                t.mm.write_u32(a[1], r.status as u32)?;
            }
            if a[3] != 0 {
                t.mm.copy_out(a[3], &[0u8; 144])?;
            }
            Ok(r.pid as u64)
        }
    }
}

pub fn waitid(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let (idtype, id, infop, options) = (a[0] as u32, a[1] as i32, a[2], a[3] as i32);
    let target = match idtype {
        libc::P_ALL => WaitTarget::Any,
        libc::P_PID => WaitTarget::Pid(id),
        libc::P_PGID => WaitTarget::Pgid(if id == 0 {
            t.kernel
                .ts()
                .procs
                .get(&t.tgid())
                .map(|e| e.pgid)
                .unwrap_or(0)
        } else {
            id
        }),
        _ => return Err(Errno::EINVAL),
    };
    if options & (libc::WEXITED | libc::WSTOPPED | libc::WCONTINUED) == 0 {
        return Err(Errno::EINVAL);
    }
    let opts = WaitOpts {
        target,
        exited: options & libc::WEXITED != 0,
        stopped: options & libc::WSTOPPED != 0,
        continued: options & libc::WCONTINUED != 0,
        nohang: options & libc::WNOHANG != 0,
        nowait: options & libc::WNOWAIT != 0,
    };
    let r = t.wait_child(&opts)?;
    if infop != 0 {
        let mut si = [0u8; 128];
        if let Some(r) = r {
            let status = match r.code {
                crate::kernel::signal::CLD_EXITED => (r.status >> 8) & 0xff,
                crate::kernel::signal::CLD_STOPPED => (r.status >> 8) & 0xff,
                crate::kernel::signal::CLD_CONTINUED => libc::SIGCONT,
                _ => r.status & 0x7f,
            };
            let info = crate::kernel::signal::SigInfo::child(r.code, r.pid, r.uid, status);
            si = info.0;
        }
        t.mm.copy_out(infop, &si)?;
    }
    Ok(0)
}

pub fn getpid(t: &mut CurrentTask, _a: &Args) -> KResult<u64> {
    Ok(t.tgid() as u64)
}

pub fn gettid(t: &mut CurrentTask, _a: &Args) -> KResult<u64> {
    Ok(t.tid as u64)
}

pub fn getppid(t: &mut CurrentTask, _a: &Args) -> KResult<u64> {
    Ok(t.kernel
        .ts()
        .procs
        .get(&t.tgid())
        .map(|e| e.parent)
        .unwrap_or(0) as u64)
}

pub fn set_tid_address(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    t.clear_child_tid.store(a[0], Ordering::SeqCst);
    Ok(t.tid as u64)
}

pub fn set_robust_list(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    if a[1] != 24 {
        return Err(Errno::EINVAL);
    }
    t.robust_list.store(a[0], Ordering::SeqCst);
    Ok(0)
}

pub fn get_robust_list(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let pid = a[0] as i32;
    let target = if pid == 0 {
        t.task.clone()
    } else {
        t.kernel.ts().tasks.get(&pid).cloned().ok_or(Errno::ESRCH)?
    };
    t.mm.write_u64(a[1], target.robust_list.load(Ordering::SeqCst))?;
    t.mm.write_u64(a[2], 24)?;
    Ok(0)
}

pub fn arch_prctl(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    const ARCH_SET_GS: u64 = 0x1001;
    const ARCH_SET_FS: u64 = 0x1002;
    const ARCH_GET_FS: u64 = 0x1003;
    const ARCH_GET_GS: u64 = 0x1004;
    const ARCH_GET_CPUID: u64 = 0x1011;
    match a[0] {
        ARCH_SET_FS | ARCH_SET_GS => {
            if a[1] >= t.kernel.platform.max_user_address() {
                return Err(Errno::EPERM);
            }
            if a[0] == ARCH_SET_FS {
                t.regs.fs_base = a[1];
            } else {
                t.regs.gs_base = a[1];
            }
            Ok(0)
        }
        ARCH_GET_FS => t.mm.write_u64(a[1], t.regs.fs_base).map(|_| 0),
        ARCH_GET_GS => t.mm.write_u64(a[1], t.regs.gs_base).map(|_| 0),
        ARCH_GET_CPUID => Ok(1),
        _ => Err(Errno::EINVAL),
    }
}

pub fn prctl(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    match a[0] as i32 {
        libc::PR_SET_NAME => {
            let name = t.mm.read_cstring(a[1], 4096).map(|mut s| {
                s.truncate(15);
                s
            })?;
            *lock(&t.comm) = name;
            Ok(0)
        }
        libc::PR_GET_NAME => {
            let mut n = lock(&t.comm).clone();
            n.resize(16, 0);
            t.mm.copy_out(a[1], &n)?;
            Ok(0)
        }
        libc::PR_SET_PDEATHSIG => {
            if a[1] > 64 {
                return Err(Errno::EINVAL);
            }
            Ok(0)
        }
        libc::PR_GET_DUMPABLE => Ok(1),
        libc::PR_SET_DUMPABLE => {
            if a[1] > 1 {
                return Err(Errno::EINVAL);
            }
            Ok(0)
        }
        libc::PR_SET_NO_NEW_PRIVS => {
            if a[1] != 1 || a[2] != 0 || a[3] != 0 || a[4] != 0 {
                return Err(Errno::EINVAL);
            }
            lock(&t.creds).caps.no_new_privs = true;
            Ok(0)
        }
        libc::PR_GET_NO_NEW_PRIVS => Ok(u64::from(t.creds().caps.no_new_privs)),
        libc::PR_GET_KEEPCAPS => Ok(u64::from(t.creds().caps.keep_caps)),
        libc::PR_SET_KEEPCAPS => {
            if a[1] > 1 {
                return Err(Errno::EINVAL);
            }
            lock(&t.creds).caps.keep_caps = a[1] == 1;
            Ok(0)
        }
        libc::PR_CAPBSET_READ => {
            let cap = cap_arg(a[1])?;
            Ok(u64::from(t.creds().caps.bounding & caps::bit(cap) != 0))
        }
        libc::PR_CAPBSET_DROP => {
            let cap = cap_arg(a[1])?;
            let mut c = lock(&t.creds);
            if !c.capable(caps::CAP_SETPCAP) {
                return Err(Errno::EPERM);
            }
            c.caps.bounding &= !caps::bit(cap);
            Ok(0)
        }
        libc::PR_CAP_AMBIENT => {
            if a[3] != 0 || a[4] != 0 {
                return Err(Errno::EINVAL);
            }
            let mut c = lock(&t.creds);
            match a[1] as i32 {
                libc::PR_CAP_AMBIENT_CLEAR_ALL => {
                    if a[2] != 0 {
                        return Err(Errno::EINVAL);
                    }
                    c.caps.ambient = 0;
                    Ok(0)
                }
                libc::PR_CAP_AMBIENT_IS_SET => {
                    Ok(u64::from(c.caps.ambient & caps::bit(cap_arg(a[2])?) != 0))
                }
                libc::PR_CAP_AMBIENT_RAISE => {
                    let b = caps::bit(cap_arg(a[2])?);
                    if c.caps.permitted & b == 0 || c.caps.inheritable & b == 0 {
                        return Err(Errno::EPERM);
                    }
                    c.caps.ambient |= b;
                    Ok(0)
                }
                libc::PR_CAP_AMBIENT_LOWER => {
                    c.caps.ambient &= !caps::bit(cap_arg(a[2])?);
                    Ok(0)
                }
                _ => Err(Errno::EINVAL),
            }
        }
        _ => Err(Errno::EINVAL),
    }
}

/// A capability number argument: EINVAL past cap_last_cap.
fn cap_arg(v: u64) -> KResult<u32> {
    if v > u64::from(caps::LAST_CAP) {
        return Err(Errno::EINVAL);
    }
    Ok(v as u32)
}

/// capget/capset header versions (<linux/capability.h>): v1 carries one
/// 32-bit word per set, v2 and v3 two.
const CAP_V1: u32 = 0x1998_0330;
const CAP_V2: u32 = 0x2007_1026;
const CAP_V3: u32 = 0x2008_0522;

/// Reads a capget/capset header: (words per set, pid). An unknown version
/// gets v3 written back and EINVAL, as cap_validate_magic does.
fn cap_header(t: &CurrentTask, hdr: u64) -> KResult<(usize, i32)> {
    let version = t.mm.read_u32(hdr)?;
    let words = match version {
        CAP_V1 => 1,
        CAP_V2 | CAP_V3 => 2,
        _ => {
            t.mm.write_u32(hdr, CAP_V3)?;
            return Err(Errno::EINVAL);
        }
    };
    let pid = t.mm.read_u32(hdr + 4)? as i32;
    if pid < 0 {
        return Err(Errno::EINVAL);
    }
    Ok((words, pid))
}

pub fn capget(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    // Without a data pointer it is a version probe: success, with the
    // preferred version written back if the asked one is unknown.
    let (words, pid) = match cap_header(t, a[0]) {
        Err(Errno::EINVAL) if a[1] == 0 => return Ok(0),
        r => r?,
    };
    if a[1] == 0 {
        return Ok(0);
    }
    let c = if pid == 0 || pid == t.tid {
        t.creds()
    } else {
        let task = t.kernel.ts().tasks.get(&pid).cloned().ok_or(Errno::ESRCH)?;
        task.creds()
    };
    let mut out = Vec::with_capacity(words * 12);
    for w in 0..words {
        for set in [c.caps.effective, c.caps.permitted, c.caps.inheritable] {
            out.extend_from_slice(&((set >> (32 * w)) as u32).to_le_bytes());
        }
    }
    t.mm.copy_out(a[1], &out)?;
    Ok(0)
}

pub fn capset(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let (words, pid) = cap_header(t, a[0])?;
    if pid != 0 && pid != t.tid {
        return Err(Errno::EPERM);
    }
    let mut b = vec![0u8; words * 12];
    t.mm.copy_in(a[1], &mut b)?;
    let word = |i: usize| u64::from(u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]));
    let (mut eff, mut prm, mut inh) = (0u64, 0u64, 0u64);
    for w in 0..words {
        let base = w * 12;
        eff |= word(base) << (32 * w);
        prm |= word(base + 4) << (32 * w);
        inh |= word(base + 8) << (32 * w);
    }
    let mut c = lock(&t.creds);
    if !c.caps.check_set(eff, prm, inh) {
        return Err(Errno::EPERM);
    }
    c.caps.set(eff, prm, inh);
    Ok(0)
}

pub fn uname(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let mut b = vec![0u8; 65 * 6];
    let host = lock(&t.kernel.hostname).clone();
    let domain = crate::kernel::sysctl::domainname();
    let fields: [&[u8]; 6] = [
        SYSNAME.as_bytes(),
        &host,
        RELEASE.as_bytes(),
        VERSION.as_bytes(),
        MACHINE.as_bytes(),
        &domain,
    ];
    for (i, f) in fields.iter().enumerate() {
        let n = f.len().min(64);
        b[i * 65..i * 65 + n].copy_from_slice(&f[..n]);
    }
    t.mm.copy_out(a[0], &b)?;
    Ok(0)
}

/// The (name, len) argument of sethostname/setdomainname: CAP_SYS_ADMIN,
/// at most 64 bytes.
fn uts_name_arg(t: &CurrentTask, a: &Args) -> KResult<Vec<u8>> {
    if !t.creds().capable(caps::CAP_SYS_ADMIN) {
        return Err(Errno::EPERM);
    }
    if a[1] > 64 {
        return Err(Errno::EINVAL);
    }
    let mut b = vec![0u8; a[1] as usize];
    t.mm.copy_in(a[0], &mut b)?;
    Ok(b)
}

pub fn sethostname(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    *lock(&t.kernel.hostname) = uts_name_arg(t, a)?;
    Ok(0)
}

pub fn setdomainname(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    crate::kernel::sysctl::set_domainname(&uts_name_arg(t, a)?)?;
    Ok(0)
}

pub fn getuid(t: &mut CurrentTask, _a: &Args) -> KResult<u64> {
    Ok(t.creds().ruid as u64)
}
pub fn geteuid(t: &mut CurrentTask, _a: &Args) -> KResult<u64> {
    Ok(t.creds().euid as u64)
}
pub fn getgid(t: &mut CurrentTask, _a: &Args) -> KResult<u64> {
    Ok(t.creds().rgid as u64)
}
pub fn getegid(t: &mut CurrentTask, _a: &Args) -> KResult<u64> {
    Ok(t.creds().egid as u64)
}

fn id_arg(v: u64) -> Option<u32> {
    (v as u32 != u32::MAX).then_some(v as u32)
}

/// setresuid semantics; the other setters are expressed through it.
fn set_uids(c: &mut Creds, r: Option<u32>, e: Option<u32>, s: Option<u32>) -> KResult<()> {
    if !c.capable(caps::CAP_SETUID) {
        let ok = |x: Option<u32>| x.is_none_or(|v| v == c.ruid || v == c.euid || v == c.suid);
        if !(ok(r) && ok(e) && ok(s)) {
            return Err(Errno::EPERM);
        }
    }
    let old = [c.ruid, c.euid, c.suid, c.fsuid];
    if let Some(v) = r {
        c.ruid = v;
    }
    if let Some(v) = e {
        c.euid = v;
    }
    if let Some(v) = s {
        c.suid = v;
    }
    c.fsuid = c.euid;
    let new = [c.ruid, c.euid, c.suid, c.fsuid];
    c.caps.on_uid_change(old, new);
    Ok(())
}

fn set_gids(c: &mut Creds, r: Option<u32>, e: Option<u32>, s: Option<u32>) -> KResult<()> {
    if !c.capable(caps::CAP_SETGID) {
        let ok = |x: Option<u32>| x.is_none_or(|v| v == c.rgid || v == c.egid || v == c.sgid);
        if !(ok(r) && ok(e) && ok(s)) {
            return Err(Errno::EPERM);
        }
    }
    if let Some(v) = r {
        c.rgid = v;
    }
    if let Some(v) = e {
        c.egid = v;
    }
    if let Some(v) = s {
        c.sgid = v;
    }
    c.fsgid = c.egid;
    Ok(())
}

pub fn setuid(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let uid = id_arg(a[0]).ok_or(Errno::EINVAL)?;
    let mut c = lock(&t.creds);
    if c.capable(caps::CAP_SETUID) {
        set_uids(&mut c, Some(uid), Some(uid), Some(uid))?;
    } else {
        set_uids(&mut c, None, Some(uid), None)?;
    }
    Ok(0)
}

pub fn setgid(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let gid = id_arg(a[0]).ok_or(Errno::EINVAL)?;
    let mut c = lock(&t.creds);
    if c.capable(caps::CAP_SETGID) {
        set_gids(&mut c, Some(gid), Some(gid), Some(gid))?;
    } else {
        set_gids(&mut c, None, Some(gid), None)?;
    }
    Ok(0)
}

pub fn setreuid(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let mut c = lock(&t.creds);
    let (r, e) = (id_arg(a[0]), id_arg(a[1]));
    let s = if r.is_some() || e.is_some_and(|e| e != c.ruid) {
        Some(e.unwrap_or(c.euid))
    } else {
        None
    };
    set_uids(&mut c, r, e, s).map(|_| 0)
}

pub fn setregid(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let mut c = lock(&t.creds);
    let (r, e) = (id_arg(a[0]), id_arg(a[1]));
    let s = if r.is_some() || e.is_some_and(|e| e != c.rgid) {
        Some(e.unwrap_or(c.egid))
    } else {
        None
    };
    set_gids(&mut c, r, e, s).map(|_| 0)
}

pub fn setresuid(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    set_uids(
        &mut lock(&t.creds),
        id_arg(a[0]),
        id_arg(a[1]),
        id_arg(a[2]),
    )
    .map(|_| 0)
}

pub fn setresgid(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    set_gids(
        &mut lock(&t.creds),
        id_arg(a[0]),
        id_arg(a[1]),
        id_arg(a[2]),
    )
    .map(|_| 0)
}

pub fn getresuid(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let c = t.creds();
    t.mm.write_u32(a[0], c.ruid)?;
    t.mm.write_u32(a[1], c.euid)?;
    t.mm.write_u32(a[2], c.suid)?;
    Ok(0)
}

pub fn getresgid(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let c = t.creds();
    t.mm.write_u32(a[0], c.rgid)?;
    t.mm.write_u32(a[1], c.egid)?;
    t.mm.write_u32(a[2], c.sgid)?;
    Ok(0)
}

pub fn getgroups(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let g = t.creds().groups;
    let n = a[0] as i32;
    if n < 0 {
        return Err(Errno::EINVAL);
    }
    if n == 0 {
        return Ok(g.len() as u64);
    }
    if (n as usize) < g.len() {
        return Err(Errno::EINVAL);
    }
    let b: Vec<u8> = g.iter().flat_map(|x| x.to_le_bytes()).collect();
    t.mm.copy_out(a[1], &b)?;
    Ok(g.len() as u64)
}

pub fn setgroups(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    if a[0] > 65536 {
        return Err(Errno::EINVAL);
    }
    if !t.creds().capable(caps::CAP_SETGID) {
        return Err(Errno::EPERM);
    }
    let mut b = vec![0u8; a[0] as usize * 4];
    t.mm.copy_in(a[1], &mut b)?;
    lock(&t.creds).groups = b
        .chunks(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok(0)
}

pub fn getpgid(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let pid = if a[0] as i32 == 0 {
        t.tgid()
    } else {
        a[0] as i32
    };
    t.kernel
        .ts()
        .procs
        .get(&pid)
        .map(|e| e.pgid as u64)
        .ok_or(Errno::ESRCH)
}

pub fn getpgrp(t: &mut CurrentTask, _a: &Args) -> KResult<u64> {
    getpgid(t, &[0; 6])
}

pub fn getsid(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let pid = if a[0] as i32 == 0 {
        t.tgid()
    } else {
        a[0] as i32
    };
    t.kernel
        .ts()
        .procs
        .get(&pid)
        .map(|e| e.sid as u64)
        .ok_or(Errno::ESRCH)
}

pub fn setpgid(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let me = t.tgid();
    let pid = if a[0] as i32 == 0 { me } else { a[0] as i32 };
    let pgid = if a[1] as i32 == 0 { pid } else { a[1] as i32 };
    if pgid < 0 {
        return Err(Errno::EINVAL);
    }
    let mut ts = t.kernel.ts();
    let my_sid = ts.procs.get(&me).map(|e| e.sid).ok_or(Errno::ESRCH)?;
    let e = ts.procs.get(&pid).ok_or(Errno::ESRCH)?;
    if pid != me && e.parent != me {
        return Err(Errno::ESRCH);
    }
    if e.sid != my_sid {
        return Err(Errno::EPERM);
    }
    if e.sid == pid {
        return Err(Errno::EPERM);
    }
    if pgid != pid && !ts.procs.values().any(|x| x.pgid == pgid && x.sid == my_sid) {
        return Err(Errno::EPERM);
    }
    if let Some(e) = ts.procs.get_mut(&pid) {
        e.pgid = pgid;
    }
    Ok(0)
}

pub fn setsid(t: &mut CurrentTask, _a: &Args) -> KResult<u64> {
    let me = t.tgid();
    let mut ts = t.kernel.ts();
    if ts.procs.values().any(|e| e.pgid == me) {
        return Err(Errno::EPERM);
    }
    let e = ts.procs.get_mut(&me).ok_or(Errno::ESRCH)?;
    e.sid = me;
    e.pgid = me;
    Ok(me as u64)
}

fn read_rlimit(t: &CurrentTask, addr: u64) -> KResult<[u64; 2]> {
    Ok([t.mm.read_u64(addr)?, t.mm.read_u64(addr + 8)?])
}

fn do_prlimit(
    t: &CurrentTask,
    pid: i32,
    res: u64,
    new: Option<[u64; 2]>,
    old_addr: u64,
) -> KResult<u64> {
    if res as usize >= RLIMIT_COUNT {
        return Err(Errno::EINVAL);
    }
    let tg = if pid == 0 || pid == t.tgid() {
        t.tg.clone()
    } else {
        t.kernel
            .ts()
            .procs
            .get(&pid)
            .map(|e| e.tg.clone())
            .ok_or(Errno::ESRCH)?
    };
    let mut rl = lock(&tg.rlimits);
    let old = rl[res as usize];
    if let Some(n) = new {
        if n[0] > n[1] {
            return Err(Errno::EINVAL);
        }
        if n[1] > old[1] && !t.creds().capable(caps::CAP_SYS_RESOURCE) {
            return Err(Errno::EPERM);
        }
        if res == libc::RLIMIT_NOFILE as u64 && n[1] > 1 << 20 {
            return Err(Errno::EPERM);
        }
        rl[res as usize] = n;
    }
    drop(rl);
    if old_addr != 0 {
        t.mm.write_u64(old_addr, old[0])?;
        t.mm.write_u64(old_addr + 8, old[1])?;
    }
    Ok(0)
}

pub fn getrlimit(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    do_prlimit(t, 0, a[0], None, a[1])
}

pub fn setrlimit(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let n = read_rlimit(t, a[1])?;
    do_prlimit(t, 0, a[0], Some(n), 0)
}

pub fn prlimit64(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let new = if a[2] != 0 {
        Some(read_rlimit(t, a[2])?)
    } else {
        None
    };
    do_prlimit(t, a[0] as i32, a[1], new, a[3])
}

fn timeval(ns: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&((ns / 1_000_000_000) as i64).to_le_bytes());
    b[8..].copy_from_slice(&(((ns % 1_000_000_000) / 1000) as i64).to_le_bytes());
    b
}

fn group_cpu_ns(t: &CurrentTask) -> u64 {
    t.kernel.group_cpu_ns(&t.tg)
}

pub fn getrusage(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    // Guest CPU time is user time; the sentry's own work is not charged.
    let ns = match a[0] as i32 {
        libc::RUSAGE_SELF => group_cpu_ns(t),
        libc::RUSAGE_THREAD => t.cpu_time_ns(),
        libc::RUSAGE_CHILDREN => t.tg.children_cpu_ns.load(Ordering::Relaxed),
        _ => return Err(Errno::EINVAL),
    };
    let mut b = vec![0u8; 144];
    b[..16].copy_from_slice(&timeval(ns));
    t.mm.copy_out(a[1], &b)?;
    Ok(0)
}

pub fn times(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let ticks = |ns: u64| ns / 10_000_000;
    if a[0] != 0 {
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&ticks(group_cpu_ns(t)).to_le_bytes());
        b[16..24]
            .copy_from_slice(&ticks(t.tg.children_cpu_ns.load(Ordering::Relaxed)).to_le_bytes());
        t.mm.copy_out(a[0], &b)?;
    }
    Ok(ticks(t.kernel.boot.elapsed().as_nanos() as u64) + 100_000)
}

pub fn sysinfo(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    // SAFETY: zeroed plain struct filled by the host.
    let mut host: libc::sysinfo = unsafe { std::mem::zeroed() };
    // SAFETY: valid out pointer.
    unsafe { libc::sysinfo(&mut host) };
    let nprocs = t.kernel.ts().procs.len() as u16;
    let mut b = vec![0u8; 112];
    b[..8].copy_from_slice(&(t.kernel.boot.elapsed().as_secs() as i64).to_le_bytes());
    // With a container memory limit: the limit, and what the guest's
    // memory leaves of it (in mem_unit units, as the host reports).
    #[allow(clippy::unnecessary_cast)]
    let (mut total, mut free) = (host.totalram as u64, host.freeram as u64);
    if let Some(limit) = crate::boot::guest_memory_limit() {
        let unit = (host.mem_unit as u64).max(1);
        let l = limit / unit;
        if l < total {
            total = l;
            free = free.min(l.saturating_sub(t.kernel.mf.committed_bytes() / unit));
        }
    }
    b[32..40].copy_from_slice(&total.to_le_bytes());
    b[40..48].copy_from_slice(&free.to_le_bytes());
    b[80..82].copy_from_slice(&nprocs.to_le_bytes());
    b[104..108].copy_from_slice(&host.mem_unit.to_le_bytes());
    t.mm.copy_out(a[0], &b)?;
    Ok(0)
}

pub fn sched_yield(_t: &mut CurrentTask, _a: &Args) -> KResult<u64> {
    std::thread::yield_now();
    Ok(0)
}

fn ncpus() -> usize {
    crate::boot::guest_cpus()
}

pub fn sched_getaffinity(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let size = a[1] as usize;
    if size < 8 || size % 8 != 0 {
        return Err(Errno::EINVAL);
    }
    let n = ncpus();
    let mut b = vec![0u8; size.min(128)];
    for i in 0..n.min(b.len() * 8) {
        b[i / 8] |= 1 << (i % 8);
    }
    t.mm.copy_out(a[2], &b)?;
    Ok(b.len() as u64)
}

pub fn sched_setaffinity(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let pid = a[0] as i32;
    if pid != 0 && !t.kernel.ts().tasks.contains_key(&pid) {
        return Err(Errno::ESRCH);
    }
    let mut b = vec![0u8; (a[1] as usize).min(128)];
    t.mm.copy_in(a[2], &mut b)?;
    if b.iter().all(|&x| x == 0) {
        return Err(Errno::EINVAL);
    }
    // Affinity is accepted but not enforced: guest threads run where the
    // host schedules the stub threads.
    Ok(0)
}

pub fn sched_getparam(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    t.mm.write_u32(a[1], 0)?;
    Ok(0)
}

pub fn sched_setparam(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    if t.mm.read_u32(a[1])? != 0 {
        return Err(Errno::EINVAL);
    }
    Ok(0)
}

pub fn sched_getscheduler(_t: &mut CurrentTask, _a: &Args) -> KResult<u64> {
    Ok(libc::SCHED_OTHER as u64)
}

pub fn sched_setscheduler(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    match a[1] as i32 {
        libc::SCHED_OTHER | libc::SCHED_BATCH | libc::SCHED_IDLE => {
            if t.mm.read_u32(a[2])? != 0 {
                return Err(Errno::EINVAL);
            }
            Ok(0)
        }
        libc::SCHED_FIFO | libc::SCHED_RR => Err(Errno::EPERM),
        _ => Err(Errno::EINVAL),
    }
}

pub fn sched_get_priority_max(_t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    match a[0] as i32 {
        libc::SCHED_FIFO | libc::SCHED_RR => Ok(99),
        libc::SCHED_OTHER | libc::SCHED_BATCH | libc::SCHED_IDLE => Ok(0),
        _ => Err(Errno::EINVAL),
    }
}

pub fn sched_get_priority_min(_t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    match a[0] as i32 {
        libc::SCHED_FIFO | libc::SCHED_RR => Ok(1),
        libc::SCHED_OTHER | libc::SCHED_BATCH | libc::SCHED_IDLE => Ok(0),
        _ => Err(Errno::EINVAL),
    }
}

pub fn getpriority(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    if a[0] as i32 != libc::PRIO_PROCESS as i32
        || (a[1] != 0 && a[1] as i32 != t.tgid() && a[1] as i32 != t.tid)
    {
        return Err(Errno::ESRCH);
    }
    // The kernel returns 20 - nice.
    Ok((20 - t.niceness.load(Ordering::Relaxed)) as u64)
}

pub fn setpriority(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    if a[0] as i32 != libc::PRIO_PROCESS as i32
        || (a[1] != 0 && a[1] as i32 != t.tgid() && a[1] as i32 != t.tid)
    {
        return Err(Errno::ESRCH);
    }
    let nice = (a[2] as i32).clamp(-20, 19);
    if nice < t.niceness.load(Ordering::Relaxed) && !t.creds().capable(caps::CAP_SYS_NICE) {
        return Err(Errno::EACCES);
    }
    t.niceness.store(nice, Ordering::Relaxed);
    Ok(0)
}

pub fn getcpu(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    if a[0] != 0 {
        t.mm.write_u32(a[0], 0)?;
    }
    if a[1] != 0 {
        t.mm.write_u32(a[1], 0)?;
    }
    Ok(0)
}

pub fn getrandom(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    if a[2] & !7 != 0 {
        return Err(Errno::EINVAL);
    }
    let n = (a[1] as usize).min(32 << 20);
    let mut b = vec![0u8; n];
    let mut done = 0;
    while done < n {
        // SAFETY: filling our own buffer.
        let r =
            unsafe { libc::getrandom(b[done..].as_mut_ptr() as *mut libc::c_void, n - done, 0) };
        if r <= 0 {
            break;
        }
        done += r as usize;
    }
    t.mm.copy_out(a[0], &b[..done])?;
    Ok(done as u64)
}

/// Absolute deadline from a relative timespec in guest memory.
pub fn read_timeout(t: &CurrentTask, addr: u64) -> KResult<Option<Instant>> {
    if addr == 0 {
        return Ok(None);
    }
    let d = read_duration(t, addr)?;
    Ok(Some(Instant::now() + d))
}

pub fn read_duration(t: &CurrentTask, addr: u64) -> KResult<Duration> {
    let sec = t.mm.read_u64(addr)? as i64;
    let nsec = t.mm.read_u64(addr + 8)? as i64;
    if sec < 0 || !(0..1_000_000_000).contains(&nsec) {
        return Err(Errno::EINVAL);
    }
    Ok(Duration::new(sec as u64, nsec as u32))
}

pub fn futex(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    const FUTEX_CMD_MASK: u64 = !(128 | 256);
    let (uaddr, op, val, timeout, uaddr2, val3) =
        (a[0], a[1], a[2] as u32, a[3], a[4], a[5] as u32);
    let cmd = (op & FUTEX_CMD_MASK) as i32;
    let realtime = op & 256 != 0;
    let mm = t.mm.clone();
    let f = &t.kernel.futexes;
    match cmd {
        libc::FUTEX_WAIT | libc::FUTEX_WAIT_BITSET => {
            let bitset = if cmd == libc::FUTEX_WAIT {
                u32::MAX
            } else {
                val3
            };
            let deadline = if timeout == 0 {
                None
            } else if cmd == libc::FUTEX_WAIT {
                read_timeout(t, timeout)?
            } else {
                // Absolute time on CLOCK_MONOTONIC (or REALTIME).
                let d = read_duration(t, timeout)?;
                let clock = if realtime {
                    libc::CLOCK_REALTIME
                } else {
                    libc::CLOCK_MONOTONIC
                };
                let now = crate::syscalls::sys_time::host_clock(clock);
                Some(Instant::now() + d.saturating_sub(now))
            };
            match f.wait(&t.task, &mm, uaddr, val, bitset, deadline) {
                Ok(()) => Ok(0),
                Err(e) if e == Errno::ERESTARTSYS => Err(if timeout == 0 {
                    Errno::ERESTARTSYS
                } else {
                    Errno::EINTR
                }),
                Err(e) => Err(e),
            }
        }
        libc::FUTEX_WAKE | libc::FUTEX_WAKE_BITSET => {
            let bitset = if cmd == libc::FUTEX_WAKE {
                u32::MAX
            } else {
                val3
            };
            if bitset == 0 {
                return Err(Errno::EINVAL);
            }
            let key = f.key(&mm, uaddr, false)?;
            Ok(f.wake(key, val, bitset) as u64)
        }
        libc::FUTEX_REQUEUE | libc::FUTEX_CMP_REQUEUE => {
            let k1 = f.key(&mm, uaddr, false)?;
            let k2 = f.key(&mm, uaddr2, false)?;
            let cmp = (cmd == libc::FUTEX_CMP_REQUEUE).then_some((uaddr, val3));
            f.requeue(&mm, k1, k2, val, timeout as u32, cmp)
                .map(|n| n as u64)
        }
        libc::FUTEX_WAKE_OP => f
            .wake_op(&mm, uaddr, uaddr2, val, timeout as u32, val3)
            .map(|n| n as u64),
        _ => Err(Errno::ENOSYS),
    }
}
