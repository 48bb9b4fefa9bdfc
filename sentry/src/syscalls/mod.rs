//! The system call table: number → handler, checked against
//! `syscalls-table` (which generates docs/COMPATIBILITY.md). Handlers live in
//! `sys_<topic>` files and stay thin: decode arguments, call the kernel
//! concept, encode the result. Anything not listed returns ENOSYS.

pub mod sys_file;
pub mod sys_mmap;
pub mod sys_mount;
pub mod sys_mqueue;
pub mod sys_poll;
pub mod sys_signal;
pub mod sys_socket;
pub mod sys_splice;
pub mod sys_stat;
pub mod sys_thread;
pub mod sys_time;

use crate::errno::{Errno, KResult};
use crate::kernel::task::CurrentTask;
use std::collections::HashSet;
use std::sync::Mutex;

pub type Args = [u64; 6];
pub type Handler = fn(&mut CurrentTask, &Args) -> KResult<u64>;

/// Returned by handlers that set the guest registers themselves
/// (rt_sigreturn, execve): the dispatcher leaves rax alone.
pub const EJUSTRETURN: Errno = Errno(-2);

macro_rules! table {
    ($($nr:ident => $h:path),* $(,)?) => {
        /// The handler for syscall `nr`, if we implement it.
        pub fn handler(nr: u64) -> Option<Handler> {
            match nr as i64 {
                $(libc::$nr => Some($h),)*
                _ => None,
            }
        }
    };
}

table! {
    SYS_read => sys_file::read,
    SYS_write => sys_file::write,
    SYS_open => sys_file::open,
    SYS_close => sys_file::close,
    SYS_stat => sys_stat::stat,
    SYS_fstat => sys_stat::fstat,
    SYS_lstat => sys_stat::lstat,
    SYS_poll => sys_poll::poll,
    SYS_lseek => sys_file::lseek,
    SYS_mmap => sys_mmap::mmap,
    SYS_mprotect => sys_mmap::mprotect,
    SYS_munmap => sys_mmap::munmap,
    SYS_brk => sys_mmap::brk,
    SYS_rt_sigaction => sys_signal::rt_sigaction,
    SYS_rt_sigprocmask => sys_signal::rt_sigprocmask,
    SYS_rt_sigreturn => sys_signal::rt_sigreturn,
    SYS_ioctl => sys_file::ioctl,
    SYS_pread64 => sys_file::pread64,
    SYS_pwrite64 => sys_file::pwrite64,
    SYS_readv => sys_file::readv,
    SYS_writev => sys_file::writev,
    SYS_access => sys_stat::access,
    SYS_pipe => sys_file::pipe,
    SYS_select => sys_poll::select,
    SYS_sched_yield => sys_thread::sched_yield,
    SYS_mremap => sys_mmap::mremap,
    SYS_msync => sys_mmap::msync,
    SYS_mincore => sys_mmap::mincore,
    SYS_madvise => sys_mmap::madvise,
    SYS_dup => sys_file::dup,
    SYS_dup2 => sys_file::dup2,
    SYS_pause => sys_signal::pause,
    SYS_nanosleep => sys_time::nanosleep,
    SYS_getitimer => sys_signal::getitimer,
    SYS_alarm => sys_signal::alarm,
    SYS_setitimer => sys_signal::setitimer,
    SYS_getpid => sys_thread::getpid,
    SYS_socket => sys_socket::socket,
    SYS_connect => sys_socket::connect,
    SYS_accept => sys_socket::accept,
    SYS_sendto => sys_socket::sendto,
    SYS_recvfrom => sys_socket::recvfrom,
    SYS_sendmsg => sys_socket::sendmsg,
    SYS_recvmsg => sys_socket::recvmsg,
    SYS_shutdown => sys_socket::shutdown,
    SYS_bind => sys_socket::bind,
    SYS_listen => sys_socket::listen,
    SYS_getsockname => sys_socket::getsockname,
    SYS_getpeername => sys_socket::getpeername,
    SYS_socketpair => sys_socket::socketpair,
    SYS_setsockopt => sys_socket::setsockopt,
    SYS_getsockopt => sys_socket::getsockopt,
    SYS_accept4 => sys_socket::accept4,
    SYS_recvmmsg => sys_socket::recvmmsg,
    SYS_sendmmsg => sys_socket::sendmmsg,
    SYS_sendfile => sys_file::sendfile,
    SYS_clone => sys_thread::clone,
    SYS_fork => sys_thread::fork,
    SYS_vfork => sys_thread::vfork,
    SYS_execve => sys_thread::execve,
    SYS_exit => sys_thread::exit,
    SYS_wait4 => sys_thread::wait4,
    SYS_kill => sys_signal::kill,
    SYS_uname => sys_thread::uname,
    SYS_fcntl => sys_file::fcntl,
    SYS_flock => sys_file::flock,
    SYS_fsync => sys_file::fsync,
    SYS_fdatasync => sys_file::fsync,
    SYS_truncate => sys_stat::truncate,
    SYS_ftruncate => sys_file::ftruncate,
    SYS_getdents64 => sys_file::getdents64,
    SYS_getcwd => sys_stat::getcwd,
    SYS_chdir => sys_stat::chdir,
    SYS_fchdir => sys_stat::fchdir,
    SYS_rename => sys_stat::rename,
    SYS_mkdir => sys_stat::mkdir,
    SYS_rmdir => sys_stat::rmdir,
    SYS_creat => sys_file::creat,
    SYS_link => sys_stat::link,
    SYS_unlink => sys_stat::unlink,
    SYS_symlink => sys_stat::symlink,
    SYS_readlink => sys_stat::readlink,
    SYS_chmod => sys_stat::chmod,
    SYS_fchmod => sys_stat::fchmod,
    SYS_chown => sys_stat::chown,
    SYS_fchown => sys_stat::fchown,
    SYS_lchown => sys_stat::lchown,
    SYS_umask => sys_stat::umask,
    SYS_gettimeofday => sys_time::gettimeofday,
    SYS_getrlimit => sys_thread::getrlimit,
    SYS_getrusage => sys_thread::getrusage,
    SYS_sysinfo => sys_thread::sysinfo,
    SYS_times => sys_thread::times,
    SYS_getuid => sys_thread::getuid,
    SYS_getgid => sys_thread::getgid,
    SYS_setuid => sys_thread::setuid,
    SYS_setgid => sys_thread::setgid,
    SYS_geteuid => sys_thread::geteuid,
    SYS_getegid => sys_thread::getegid,
    SYS_setpgid => sys_thread::setpgid,
    SYS_getppid => sys_thread::getppid,
    SYS_getpgrp => sys_thread::getpgrp,
    SYS_setsid => sys_thread::setsid,
    SYS_setreuid => sys_thread::setreuid,
    SYS_setregid => sys_thread::setregid,
    SYS_getgroups => sys_thread::getgroups,
    SYS_setgroups => sys_thread::setgroups,
    SYS_setresuid => sys_thread::setresuid,
    SYS_getresuid => sys_thread::getresuid,
    SYS_setresgid => sys_thread::setresgid,
    SYS_getresgid => sys_thread::getresgid,
    SYS_getpgid => sys_thread::getpgid,
    SYS_getsid => sys_thread::getsid,
    SYS_rt_sigpending => sys_signal::rt_sigpending,
    SYS_rt_sigtimedwait => sys_signal::rt_sigtimedwait,
    SYS_rt_sigqueueinfo => sys_signal::rt_sigqueueinfo,
    SYS_rt_sigsuspend => sys_signal::rt_sigsuspend,
    SYS_sigaltstack => sys_signal::sigaltstack,
    SYS_statfs => sys_stat::statfs,
    SYS_fstatfs => sys_stat::fstatfs,
    SYS_getpriority => sys_thread::getpriority,
    SYS_setpriority => sys_thread::setpriority,
    SYS_sched_setparam => sys_thread::sched_setparam,
    SYS_sched_getparam => sys_thread::sched_getparam,
    SYS_sched_setscheduler => sys_thread::sched_setscheduler,
    SYS_sched_getscheduler => sys_thread::sched_getscheduler,
    SYS_sched_get_priority_max => sys_thread::sched_get_priority_max,
    SYS_sched_get_priority_min => sys_thread::sched_get_priority_min,
    SYS_mlock => sys_mmap::mlock,
    SYS_munlock => sys_mmap::mlock,
    SYS_prctl => sys_thread::prctl,
    SYS_arch_prctl => sys_thread::arch_prctl,
    SYS_setrlimit => sys_thread::setrlimit,
    SYS_sync => sys_file::sync,
    SYS_sethostname => sys_thread::sethostname,
    SYS_setdomainname => sys_thread::setdomainname,
    SYS_capget => sys_thread::capget,
    SYS_capset => sys_thread::capset,
    SYS_mq_open => sys_mqueue::mq_open,
    SYS_mq_unlink => sys_mqueue::mq_unlink,
    SYS_mq_timedsend => sys_mqueue::mq_timedsend,
    SYS_mq_timedreceive => sys_mqueue::mq_timedreceive,
    SYS_mq_notify => sys_mqueue::mq_notify,
    SYS_mq_getsetattr => sys_mqueue::mq_getsetattr,
    SYS_gettid => sys_thread::gettid,
    SYS_tkill => sys_signal::tkill,
    SYS_time => sys_time::time,
    SYS_futex => sys_thread::futex,
    SYS_sched_setaffinity => sys_thread::sched_setaffinity,
    SYS_sched_getaffinity => sys_thread::sched_getaffinity,
    SYS_epoll_create => sys_poll::epoll_create,
    SYS_getdents => sys_file::getdents,
    SYS_set_tid_address => sys_thread::set_tid_address,
    SYS_fadvise64 => sys_file::fadvise64,
    SYS_clock_gettime => sys_time::clock_gettime,
    SYS_clock_getres => sys_time::clock_getres,
    SYS_clock_nanosleep => sys_time::clock_nanosleep,
    SYS_exit_group => sys_thread::exit_group,
    SYS_epoll_wait => sys_poll::epoll_wait,
    SYS_epoll_ctl => sys_poll::epoll_ctl,
    SYS_tgkill => sys_signal::tgkill,
    SYS_waitid => sys_thread::waitid,
    SYS_inotify_init => sys_file::inotify_init,
    SYS_inotify_add_watch => sys_file::inotify_add_watch,
    SYS_inotify_rm_watch => sys_file::inotify_rm_watch,
    SYS_openat => sys_file::openat,
    SYS_mkdirat => sys_stat::mkdirat,
    SYS_fchownat => sys_stat::fchownat,
    SYS_newfstatat => sys_stat::newfstatat,
    SYS_unlinkat => sys_stat::unlinkat,
    SYS_renameat => sys_stat::renameat,
    SYS_linkat => sys_stat::linkat,
    SYS_symlinkat => sys_stat::symlinkat,
    SYS_readlinkat => sys_stat::readlinkat,
    SYS_fchmodat => sys_stat::fchmodat,
    SYS_faccessat => sys_stat::faccessat,
    SYS_pselect6 => sys_poll::pselect6,
    SYS_ppoll => sys_poll::ppoll,
    SYS_set_robust_list => sys_thread::set_robust_list,
    SYS_get_robust_list => sys_thread::get_robust_list,
    SYS_utimensat => sys_stat::utimensat,
    SYS_splice => sys_splice::splice,
    SYS_tee => sys_splice::tee,
    SYS_vmsplice => sys_splice::vmsplice,
    SYS_epoll_pwait => sys_poll::epoll_pwait,
    SYS_signalfd => sys_file::signalfd,
    SYS_timerfd_create => sys_file::timerfd_create,
    SYS_eventfd => sys_file::eventfd,
    SYS_fallocate => sys_splice::fallocate,
    SYS_timerfd_settime => sys_file::timerfd_settime,
    SYS_timerfd_gettime => sys_file::timerfd_gettime,
    SYS_signalfd4 => sys_file::signalfd4,
    SYS_eventfd2 => sys_file::eventfd2,
    SYS_epoll_create1 => sys_poll::epoll_create1,
    SYS_dup3 => sys_file::dup3,
    SYS_pipe2 => sys_file::pipe2,
    SYS_inotify_init1 => sys_file::inotify_init1,
    SYS_preadv => sys_file::preadv,
    SYS_pwritev => sys_file::pwritev,
    SYS_prlimit64 => sys_thread::prlimit64,
    SYS_getcpu => sys_thread::getcpu,
    SYS_renameat2 => sys_stat::renameat2,
    SYS_getrandom => sys_thread::getrandom,
    SYS_execveat => sys_thread::execveat,
    SYS_copy_file_range => sys_splice::copy_file_range,
    SYS_statx => sys_stat::statx,
    SYS_clone3 => sys_thread::clone3,
    SYS_close_range => sys_file::close_range,
    SYS_faccessat2 => sys_stat::faccessat2,
    SYS_mknod => sys_stat::mknod,
    SYS_mknodat => sys_stat::mknodat,
    SYS_chroot => sys_stat::chroot,
    SYS_mount => sys_mount::mount,
    SYS_umount2 => sys_mount::umount2,
    SYS_pivot_root => sys_mount::pivot_root,
    SYS_setxattr => sys_stat::setxattr,
    SYS_lsetxattr => sys_stat::lsetxattr,
    SYS_fsetxattr => sys_stat::fsetxattr,
    SYS_getxattr => sys_stat::getxattr,
    SYS_lgetxattr => sys_stat::lgetxattr,
    SYS_fgetxattr => sys_stat::fgetxattr,
    SYS_listxattr => sys_stat::listxattr,
    SYS_llistxattr => sys_stat::llistxattr,
    SYS_flistxattr => sys_stat::flistxattr,
    SYS_removexattr => sys_stat::removexattr,
    SYS_lremovexattr => sys_stat::lremovexattr,
    SYS_fremovexattr => sys_stat::fremovexattr,
}

static UNKNOWN_LOGGED: Mutex<Option<HashSet<u64>>> = Mutex::new(None);

/// Serves the system call the current task just made.
pub fn dispatch(t: &mut CurrentTask) {
    let nr = t.regs.orig_rax;
    let args: Args = [
        t.regs.rdi, t.regs.rsi, t.regs.rdx, t.regs.r10, t.regs.r8, t.regs.r9,
    ];
    let strace = t.kernel.strace;
    if strace {
        let mm = t.mm.clone();
        let call = syscalls_table::format_call(nr, &args, &|p| {
            mm.read_cstring(p, 4096)
                .ok()
                .map(|s| String::from_utf8_lossy(&s).into_owned())
        });
        eprintln!("[{:>5}] {call}", t.tid);
    }
    // `int 0x80` (the 32-bit ABI) stops us the same way with i386 numbers:
    // it is not supported, and must not be served as a 64-bit call.
    let mut insn = [0u8; 2];
    let r = if t.mm.copy_in(t.regs.rip.wrapping_sub(2), &mut insn).is_ok() && insn == [0xcd, 0x80] {
        Err(Errno::ENOSYS)
    } else {
        match handler(nr) {
            Some(h) => {
                crate::kernel::fasync::set_in_syscall(true);
                let r = h(t, &args);
                crate::kernel::fasync::set_in_syscall(false);
                // O_ASYNC signals the call raised, now that it holds no
                // locks (and before signals are checked on the way out).
                crate::kernel::fasync::flush();
                r
            }
            None => {
                let mut seen = UNKNOWN_LOGGED.lock().unwrap_or_else(|p| p.into_inner());
                if seen.get_or_insert_with(HashSet::new).insert(nr) {
                    let name = syscalls_table::by_nr(nr).map(|s| s.name).unwrap_or("?");
                    tracing::info!("unsupported syscall {nr} ({name}): ENOSYS");
                }
                Err(Errno::ENOSYS)
            }
        }
    };
    match r {
        Ok(v) => t.regs.rax = v,
        Err(e) if e == EJUSTRETURN => {}
        Err(e) if e.is_restart() => {
            t.restart = Some(e);
            t.regs.rax = (-(Errno::EINTR.0 as i64)) as u64;
        }
        Err(e) => t.regs.rax = (-(e.0 as i64)) as u64,
    }
    if strace && r != Err(EJUSTRETURN) {
        let shown = match r {
            Err(e) if e.is_restart() => -(e.0 as i64),
            _ => t.regs.rax as i64,
        };
        eprintln!(
            "[{:>5}] {} = {}",
            t.tid,
            syscalls_table::by_nr(nr).map(|s| s.name).unwrap_or("?"),
            syscalls_table::format_result(shown)
        );
    }
}

/// Reads a path argument.
pub fn path_arg(t: &CurrentTask, addr: u64) -> KResult<Vec<u8>> {
    if addr == 0 {
        return Err(Errno::EFAULT);
    }
    t.mm.read_cstring(addr, crate::vfs::path::PATH_MAX)
}

/// Reads a NULL-terminated array of string pointers (argv, envp).
pub fn string_array(t: &CurrentTask, addr: u64) -> KResult<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    if addr == 0 {
        return Ok(out);
    }
    let mut total = 0usize;
    for i in 0.. {
        let p = t.mm.read_u64(addr + i * 8)?;
        if p == 0 {
            break;
        }
        let s = t.mm.read_cstring(p, 128 * 1024)?;
        total += s.len() + 1;
        if total > crate::loader::stack::MAX_ARG_BYTES || i > 1 << 20 {
            return Err(Errno::E2BIG);
        }
        out.push(s);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::handler;
    use syscalls_table::{status, Status, SYSCALLS};

    /// The dispatch table and the status table must agree: a syscall has a
    /// handler exactly when the table does not call it unsupported.
    #[test]
    fn dispatch_matches_status_table() {
        let mut bad = Vec::new();
        for s in SYSCALLS {
            let has = handler(s.nr as u64).is_some();
            let claims = !matches!(status(s.name), Status::Unsupported(_));
            if has != claims {
                bad.push(format!(
                    "{} (handler: {has}, table says supported: {claims})",
                    s.name
                ));
            }
        }
        assert!(
            bad.is_empty(),
            "dispatch table and syscalls-table status disagree:\n{}",
            bad.join("\n")
        );
    }
}
