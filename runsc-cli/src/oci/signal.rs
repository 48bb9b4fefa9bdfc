//! Signal names as `kill` takes them: TERM, SIGTERM, term, or a number.

use anyhow::bail;

const NAMES: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("IOT", libc::SIGIOT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("POLL", libc::SIGPOLL),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

/// Parses a signal: a number 1..=64, a name with or without SIG, or
/// RTMIN+N / RTMAX-N.
pub fn parse(s: &str) -> anyhow::Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        bail!("invalid signal {s:?}");
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    if let Some(&(_, n)) = NAMES.iter().find(|(k, _)| *k == name) {
        return Ok(n);
    }
    let rt = |base: i32, rest: &str, sign: i32| -> Option<i32> {
        let off: i32 = if rest.is_empty() {
            0
        } else {
            rest.parse().ok()?
        };
        let n = base + sign * off;
        (34..=64).contains(&n).then_some(n)
    };
    let parsed = if let Some(r) = name.strip_prefix("RTMIN") {
        rt(34, r.strip_prefix('+').unwrap_or(r), 1)
    } else if let Some(r) = name.strip_prefix("RTMAX") {
        rt(64, r.strip_prefix('-').unwrap_or(r), -1)
    } else {
        None
    };
    match parsed {
        Some(n) => Ok(n),
        None => bail!("invalid signal {s:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse("TERM").unwrap(), 15);
        assert_eq!(parse("SIGKILL").unwrap(), 9);
        assert_eq!(parse("sigusr1").unwrap(), 10);
        assert_eq!(parse("9").unwrap(), 9);
        assert_eq!(parse("RTMIN+2").unwrap(), 36);
        assert_eq!(parse("RTMAX").unwrap(), 64);
        for bad in ["0", "65", "FOO", "-1", "", "RTMIN+40"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
