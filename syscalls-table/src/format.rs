//! strace-style rendering of syscall entries and results.

use std::fmt::Write as _;

use crate::{by_nr, ArgKind};

/// `openat(2)`'s "relative to the current directory" descriptor.
const AT_FDCWD: i32 = -100;

/// Longest string argument shown before it is cut off with `...`.
const MAX_STR_CHARS: usize = 64;

/// The kernel returns `-errno` for errors, and errno values never exceed
/// 4095 (`MAX_ERRNO`); anything more negative is a real result, typically
/// an address in the upper half.
const MAX_ERRNO: i64 = 4095;

/// Renders a syscall entry, e.g. `openat(AT_FDCWD, "/etc/passwd", 0x80000, 0)`.
///
/// Only as many of `args` are printed as the syscall takes. `read_str`
/// fetches a C string from the tracee's memory; when it returns `None` the
/// raw pointer is printed instead. Unknown numbers print all six registers
/// as `syscall_<nr>(...)`.
pub fn format_call(nr: u64, args: &[u64; 6], read_str: &dyn Fn(u64) -> Option<String>) -> String {
    let mut out = String::new();
    match by_nr(nr) {
        Some(info) => {
            out.push_str(info.name);
            out.push('(');
            for (i, (arg, &value)) in info.args.iter().zip(args).enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                format_arg(&mut out, arg.kind, value, read_str);
            }
        }
        None => {
            let _ = write!(out, "syscall_{nr}(");
            for (i, value) in args.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                let _ = write!(out, "{value:#x}");
            }
        }
    }
    out.push(')');
    out
}

fn format_arg(
    out: &mut String,
    kind: ArgKind,
    value: u64,
    read_str: &dyn Fn(u64) -> Option<String>,
) {
    // Writing to a String cannot fail, hence the ignored results.
    let _ = match kind {
        // The kernel reads `int`-typed arguments from the low 32 bits only,
        // so descriptors and pids are decoded the same way: callers that
        // zero-extend AT_FDCWD still get it recognised.
        ArgKind::Fd => match value as u32 as i32 {
            AT_FDCWD => write!(out, "AT_FDCWD"),
            fd => write!(out, "{fd}"),
        },
        ArgKind::Pid => write!(out, "{}", value as u32 as i32),
        ArgKind::Int | ArgKind::Size | ArgKind::Off => write!(out, "{}", value as i64),
        ArgKind::UInt => write!(out, "{value}"),
        ArgKind::Hex | ArgKind::Flags => write!(out, "{value:#x}"),
        ArgKind::Ptr | ArgKind::Buf => write_pointer(out, value),
        ArgKind::Mode => write_mode(out, value),
        ArgKind::Signal => match signal_name(value as u32 as i32) {
            Some(name) => write!(out, "{name}"),
            None => write!(out, "{}", value as u32 as i32),
        },
        // NULL is printed without asking the reader to dereference it.
        ArgKind::Path => match (value != 0).then(|| read_str(value)).flatten() {
            Some(s) => {
                write_quoted(out, &s);
                Ok(())
            }
            None => write_pointer(out, value),
        },
    };
}

fn write_pointer(out: &mut String, value: u64) -> std::fmt::Result {
    if value == 0 {
        write!(out, "NULL")
    } else {
        write!(out, "{value:#x}")
    }
}

/// Permission bits read naturally in octal with a C-style leading zero
/// (`0644`); zero stays `0` rather than `00`.
fn write_mode(out: &mut String, value: u64) -> std::fmt::Result {
    if value == 0 {
        write!(out, "0")
    } else {
        write!(out, "0{value:o}")
    }
}

/// Writes `s` as a double-quoted C-style literal, escaping anything that
/// would make the trace line ambiguous and cutting it at
/// [`MAX_STR_CHARS`] characters.
fn write_quoted(out: &mut String, s: &str) {
    out.push('"');
    let mut chars = s.chars();
    for c in chars.by_ref().take(MAX_STR_CHARS) {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                // Control characters are at most U+009F, so this prints
                // one or two hex escapes' worth of digits.
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    if chars.next().is_some() {
        out.push_str("...");
    }
}

/// Renders a syscall return value: `-1 ENOENT (No such file or directory)`
/// for errors, hex for values that only make sense as addresses, and
/// decimal otherwise.
pub fn format_result(ret: i64) -> String {
    if (-MAX_ERRNO..0).contains(&ret) {
        let errno = (-ret) as u32;
        return match errno_info(errno) {
            Some((name, desc)) => format!("-1 {name} ({desc})"),
            None => format!("-1 E{errno} (Unknown error {errno})"),
        };
    }
    if ret as u64 > 0xffff_ffff {
        format!("{:#x}", ret as u64)
    } else {
        ret.to_string()
    }
}

/// Name of a standard signal (`1..=31`), e.g. `SIGTERM` for 15.
pub fn signal_name(sig: i32) -> Option<&'static str> {
    const NAMES: [&str; 31] = [
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    let index = usize::try_from(sig).ok()?.checked_sub(1)?;
    NAMES.get(index).copied()
}

/// Name and short description of an errno value.
///
/// Covers the user-visible errnos `1..=133` (41 and 58 are unassigned on
/// Linux) plus the kernel-internal restart codes `512..=516`, which a
/// tracer inside the kernel can observe before they are translated.
pub fn errno_info(errno: u32) -> Option<(&'static str, &'static str)> {
    match errno {
        1..=133 => ERRNOS[errno as usize - 1],
        512..=516 => INTERNAL_ERRNOS[errno as usize - 512],
        _ => None,
    }
}

type ErrnoEntry = Option<(&'static str, &'static str)>;

/// Indexed by `errno - 1`; descriptions match glibc's `strerror`.
#[rustfmt::skip]
static ERRNOS: [ErrnoEntry; 133] = [
    Some(("EPERM", "Operation not permitted")),
    Some(("ENOENT", "No such file or directory")),
    Some(("ESRCH", "No such process")),
    Some(("EINTR", "Interrupted system call")),
    Some(("EIO", "Input/output error")),
    Some(("ENXIO", "No such device or address")),
    Some(("E2BIG", "Argument list too long")),
    Some(("ENOEXEC", "Exec format error")),
    Some(("EBADF", "Bad file descriptor")),
    Some(("ECHILD", "No child processes")),
    Some(("EAGAIN", "Resource temporarily unavailable")),
    Some(("ENOMEM", "Cannot allocate memory")),
    Some(("EACCES", "Permission denied")),
    Some(("EFAULT", "Bad address")),
    Some(("ENOTBLK", "Block device required")),
    Some(("EBUSY", "Device or resource busy")),
    Some(("EEXIST", "File exists")),
    Some(("EXDEV", "Invalid cross-device link")),
    Some(("ENODEV", "No such device")),
    Some(("ENOTDIR", "Not a directory")),
    Some(("EISDIR", "Is a directory")),
    Some(("EINVAL", "Invalid argument")),
    Some(("ENFILE", "Too many open files in system")),
    Some(("EMFILE", "Too many open files")),
    Some(("ENOTTY", "Inappropriate ioctl for device")),
    Some(("ETXTBSY", "Text file busy")),
    Some(("EFBIG", "File too large")),
    Some(("ENOSPC", "No space left on device")),
    Some(("ESPIPE", "Illegal seek")),
    Some(("EROFS", "Read-only file system")),
    Some(("EMLINK", "Too many links")),
    Some(("EPIPE", "Broken pipe")),
    Some(("EDOM", "Numerical argument out of domain")),
    Some(("ERANGE", "Numerical result out of range")),
    Some(("EDEADLK", "Resource deadlock avoided")),
    Some(("ENAMETOOLONG", "File name too long")),
    Some(("ENOLCK", "No locks available")),
    Some(("ENOSYS", "Function not implemented")),
    Some(("ENOTEMPTY", "Directory not empty")),
    Some(("ELOOP", "Too many levels of symbolic links")),
    None, // 41: EWOULDBLOCK is an alias of EAGAIN.
    Some(("ENOMSG", "No message of desired type")),
    Some(("EIDRM", "Identifier removed")),
    Some(("ECHRNG", "Channel number out of range")),
    Some(("EL2NSYNC", "Level 2 not synchronized")),
    Some(("EL3HLT", "Level 3 halted")),
    Some(("EL3RST", "Level 3 reset")),
    Some(("ELNRNG", "Link number out of range")),
    Some(("EUNATCH", "Protocol driver not attached")),
    Some(("ENOCSI", "No CSI structure available")),
    Some(("EL2HLT", "Level 2 halted")),
    Some(("EBADE", "Invalid exchange")),
    Some(("EBADR", "Invalid request descriptor")),
    Some(("EXFULL", "Exchange full")),
    Some(("ENOANO", "No anode")),
    Some(("EBADRQC", "Invalid request code")),
    Some(("EBADSLT", "Invalid slot")),
    None, // 58: EDEADLOCK is an alias of EDEADLK.
    Some(("EBFONT", "Bad font file format")),
    Some(("ENOSTR", "Device not a stream")),
    Some(("ENODATA", "No data available")),
    Some(("ETIME", "Timer expired")),
    Some(("ENOSR", "Out of streams resources")),
    Some(("ENONET", "Machine is not on the network")),
    Some(("ENOPKG", "Package not installed")),
    Some(("EREMOTE", "Object is remote")),
    Some(("ENOLINK", "Link has been severed")),
    Some(("EADV", "Advertise error")),
    Some(("ESRMNT", "Srmount error")),
    Some(("ECOMM", "Communication error on send")),
    Some(("EPROTO", "Protocol error")),
    Some(("EMULTIHOP", "Multihop attempted")),
    Some(("EDOTDOT", "RFS specific error")),
    Some(("EBADMSG", "Bad message")),
    Some(("EOVERFLOW", "Value too large for defined data type")),
    Some(("ENOTUNIQ", "Name not unique on network")),
    Some(("EBADFD", "File descriptor in bad state")),
    Some(("EREMCHG", "Remote address changed")),
    Some(("ELIBACC", "Can not access a needed shared library")),
    Some(("ELIBBAD", "Accessing a corrupted shared library")),
    Some(("ELIBSCN", ".lib section in a.out corrupted")),
    Some(("ELIBMAX", "Attempting to link in too many shared libraries")),
    Some(("ELIBEXEC", "Cannot exec a shared library directly")),
    Some(("EILSEQ", "Invalid or incomplete multibyte or wide character")),
    Some(("ERESTART", "Interrupted system call should be restarted")),
    Some(("ESTRPIPE", "Streams pipe error")),
    Some(("EUSERS", "Too many users")),
    Some(("ENOTSOCK", "Socket operation on non-socket")),
    Some(("EDESTADDRREQ", "Destination address required")),
    Some(("EMSGSIZE", "Message too long")),
    Some(("EPROTOTYPE", "Protocol wrong type for socket")),
    Some(("ENOPROTOOPT", "Protocol not available")),
    Some(("EPROTONOSUPPORT", "Protocol not supported")),
    Some(("ESOCKTNOSUPPORT", "Socket type not supported")),
    Some(("EOPNOTSUPP", "Operation not supported")),
    Some(("EPFNOSUPPORT", "Protocol family not supported")),
    Some(("EAFNOSUPPORT", "Address family not supported by protocol")),
    Some(("EADDRINUSE", "Address already in use")),
    Some(("EADDRNOTAVAIL", "Cannot assign requested address")),
    Some(("ENETDOWN", "Network is down")),
    Some(("ENETUNREACH", "Network is unreachable")),
    Some(("ENETRESET", "Network dropped connection on reset")),
    Some(("ECONNABORTED", "Software caused connection abort")),
    Some(("ECONNRESET", "Connection reset by peer")),
    Some(("ENOBUFS", "No buffer space available")),
    Some(("EISCONN", "Transport endpoint is already connected")),
    Some(("ENOTCONN", "Transport endpoint is not connected")),
    Some(("ESHUTDOWN", "Cannot send after transport endpoint shutdown")),
    Some(("ETOOMANYREFS", "Too many references: cannot splice")),
    Some(("ETIMEDOUT", "Connection timed out")),
    Some(("ECONNREFUSED", "Connection refused")),
    Some(("EHOSTDOWN", "Host is down")),
    Some(("EHOSTUNREACH", "No route to host")),
    Some(("EALREADY", "Operation already in progress")),
    Some(("EINPROGRESS", "Operation now in progress")),
    Some(("ESTALE", "Stale file handle")),
    Some(("EUCLEAN", "Structure needs cleaning")),
    Some(("ENOTNAM", "Not a XENIX named type file")),
    Some(("ENAVAIL", "No XENIX semaphores available")),
    Some(("EISNAM", "Is a named type file")),
    Some(("EREMOTEIO", "Remote I/O error")),
    Some(("EDQUOT", "Disk quota exceeded")),
    Some(("ENOMEDIUM", "No medium found")),
    Some(("EMEDIUMTYPE", "Wrong medium type")),
    Some(("ECANCELED", "Operation canceled")),
    Some(("ENOKEY", "Required key not available")),
    Some(("EKEYEXPIRED", "Key has expired")),
    Some(("EKEYREVOKED", "Key has been revoked")),
    Some(("EKEYREJECTED", "Key was rejected by service")),
    Some(("EOWNERDEAD", "Owner died")),
    Some(("ENOTRECOVERABLE", "State not recoverable")),
    Some(("ERFKILL", "Operation not possible due to RF-kill")),
    Some(("EHWPOISON", "Memory page has hardware error")),
];

/// Kernel-internal codes from `include/linux/errno.h`, indexed by
/// `errno - 512`. Descriptions follow strace's wording.
#[rustfmt::skip]
static INTERNAL_ERRNOS: [ErrnoEntry; 5] = [
    Some(("ERESTARTSYS", "To be restarted if SA_RESTART is set")),
    Some(("ERESTARTNOINTR", "To be restarted")),
    Some(("ERESTARTNOHAND", "To be restarted if no handler")),
    Some(("ENOIOCTLCMD", "No ioctl command")),
    Some(("ERESTART_RESTARTBLOCK", "Interrupted by signal")),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn no_strings(_: u64) -> Option<String> {
        None
    }

    fn call(nr: u64, args: [u64; 6]) -> String {
        format_call(nr, &args, &no_strings)
    }

    #[test]
    fn read_and_write() {
        assert_eq!(
            call(0, [3, 0x7ffd_1000, 4096, 9, 9, 9]),
            "read(3, 0x7ffd1000, 4096)"
        );
        assert_eq!(call(1, [1, 0, 0, 0, 0, 0]), "write(1, NULL, 0)");
    }

    #[test]
    fn openat_with_path() {
        let read_str = |ptr: u64| (ptr == 0x1000).then(|| "/etc/passwd".to_string());
        let args = [(-100i64) as u64, 0x1000, 0x80000, 0o644, 0, 0];
        assert_eq!(
            format_call(257, &args, &read_str),
            r#"openat(AT_FDCWD, "/etc/passwd", 0x80000, 0644)"#
        );
        // AT_FDCWD passed zero-extended is still AT_FDCWD to the kernel.
        let args = [0xffff_ff9c, 0x2000, 0, 0, 0, 0];
        assert_eq!(
            format_call(257, &args, &read_str),
            "openat(AT_FDCWD, 0x2000, 0x0, 0)"
        );
    }

    #[test]
    fn path_escaping_and_truncation() {
        let read_str = |_: u64| Some("a\"b\\c\nd\te\u{1}".to_string());
        assert_eq!(
            format_call(87, &[1, 0, 0, 0, 0, 0], &read_str),
            r#"unlink("a\"b\\c\nd\te\x01")"#
        );

        let long = "x".repeat(100);
        let read_str = move |_: u64| Some(long.clone());
        let expected = format!("chdir(\"{}\"...)", "x".repeat(64));
        assert_eq!(format_call(80, &[1, 0, 0, 0, 0, 0], &read_str), expected);

        let exact = "y".repeat(64);
        let read_str = move |_: u64| Some(exact.clone());
        let expected = format!("chdir(\"{}\")", "y".repeat(64));
        assert_eq!(format_call(80, &[1, 0, 0, 0, 0, 0], &read_str), expected);

        // A NULL path is never dereferenced.
        let read_str = |_: u64| -> Option<String> { panic!("NULL must not be read") };
        assert_eq!(format_call(80, &[0; 6], &read_str), "chdir(NULL)");
    }

    #[test]
    fn mmap_kill_and_signed_values() {
        let args = [0, 8192, 3, 0x22, u64::MAX, 0];
        assert_eq!(call(9, args), "mmap(0x0, 8192, 0x3, 0x22, -1, 0)");
        assert_eq!(call(62, [1234, 15, 0, 0, 0, 0]), "kill(1234, SIGTERM)");
        assert_eq!(
            call(62, [(-1i64) as u64, 9, 0, 0, 0, 0]),
            "kill(-1, SIGKILL)"
        );
        assert_eq!(call(62, [1, 0, 0, 0, 0, 0]), "kill(1, 0)");
        assert_eq!(call(62, [1, 34, 0, 0, 0, 0]), "kill(1, 34)");
        assert_eq!(
            call(8, [3, (-10i64) as u64, 2, 0, 0, 0]),
            "lseek(3, -10, 2)"
        );
        assert_eq!(call(60, [(-1i64) as u64, 0, 0, 0, 0, 0]), "exit(-1)");
        assert_eq!(call(231, [0; 6]), "exit_group(0)");
        assert_eq!(call(39, [7; 6]), "getpid()");
        assert_eq!(
            call(105, [u64::from(u32::MAX), 0, 0, 0, 0, 0]),
            "setuid(4294967295)"
        );
        assert_eq!(call(95, [0o22, 0, 0, 0, 0, 0]), "umask(022)");
    }

    #[test]
    fn unknown_syscall() {
        assert_eq!(
            call(400, [1, 2, 0, 0xff, 0, 0]),
            "syscall_400(0x1, 0x2, 0x0, 0xff, 0x0, 0x0)"
        );
    }

    #[test]
    fn results() {
        assert_eq!(format_result(0), "0");
        assert_eq!(format_result(42), "42");
        assert_eq!(format_result(0xffff_ffff), "4294967295");
        assert_eq!(format_result(0x7f12_3456_7000), "0x7f1234567000");
        assert_eq!(format_result(-4), "-1 EINTR (Interrupted system call)");
        assert_eq!(format_result(-2), "-1 ENOENT (No such file or directory)");
        assert_eq!(format_result(-38), "-1 ENOSYS (Function not implemented)");
        assert_eq!(
            format_result(-133),
            "-1 EHWPOISON (Memory page has hardware error)"
        );
        assert_eq!(
            format_result(-512),
            "-1 ERESTARTSYS (To be restarted if SA_RESTART is set)"
        );
        assert_eq!(format_result(-41), "-1 E41 (Unknown error 41)");
        assert_eq!(format_result(-4095), "-1 E4095 (Unknown error 4095)");
        // Just past the errno range: an upper-half address, not an error.
        assert_eq!(format_result(-4096), "0xfffffffffffff000");
    }

    #[test]
    fn signal_names() {
        assert_eq!(signal_name(1), Some("SIGHUP"));
        assert_eq!(signal_name(9), Some("SIGKILL"));
        assert_eq!(signal_name(31), Some("SIGSYS"));
        assert_eq!(signal_name(0), None);
        assert_eq!(signal_name(32), None);
        assert_eq!(signal_name(-1), None);
    }

    /// Guards the hand-written errno table against off-by-one slips by
    /// comparing it with the installed kernel headers, when they exist.
    #[test]
    fn errnos_match_system_headers() {
        let mut checked = 0;
        for header in [
            "/usr/include/asm-generic/errno-base.h",
            "/usr/include/asm-generic/errno.h",
        ] {
            let Ok(text) = std::fs::read_to_string(header) else {
                eprintln!("skipping {header}: not found");
                continue;
            };
            for line in text.lines() {
                let mut words = line.split_whitespace();
                let (Some("#define"), Some(name), Some(value)) =
                    (words.next(), words.next(), words.next())
                else {
                    continue;
                };
                // Aliases (`#define EWOULDBLOCK EAGAIN`) are not numbers.
                let Ok(errno) = value.parse::<u32>() else {
                    continue;
                };
                assert_eq!(
                    errno_info(errno).map(|e| e.0),
                    Some(name),
                    "{header}: {line}"
                );
                checked += 1;
            }
        }
        if checked > 0 {
            assert_eq!(
                checked, 131,
                "every numbered errno 1..=133 except 41 and 58"
            );
        }
    }
}
