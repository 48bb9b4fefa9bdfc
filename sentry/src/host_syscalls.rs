//! Every host system call the sentry itself makes, in one list. The sandbox
//! issue turns this into the sentry's seccomp filter; until then it is the
//! reviewed inventory. Guest system calls never appear here: they are served
//! by the sentry and never passed to the host.

/// (syscall, why the sentry needs it)
pub const HOST_SYSCALLS: &[(&str, &str)] = &[
    ("read", "host fds: stdio, donated files, eventfds"),
    ("write", "host fds: stdio, donated files, eventfd wake-ups"),
    ("pread64", "donated regular files"),
    ("pwrite64", "donated regular files"),
    ("close", "releasing fds"),
    ("fstat", "donated fds"),
    ("lseek", "memory file SEEK_DATA/SEEK_HOLE on fork"),
    (
        "ioctl",
        "terminal ioctls on host stdio (TCGETS, TIOCGWINSZ, ...); the console's host terminal: TCGETS/TCSETS (raw mode and back), TIOCGWINSZ; on hostinet sockets FIONREAD, SIOCOUTQ, SIOCOUTQNSD, SIOCATMARK and the SIOCGIF* interface queries (SIOCGIFCONF, ADDR, FLAGS, INDEX, NAME, NETMASK, MTU, HWADDR, BRDADDR, DSTADDR, METRIC, TXQLEN); at start, taking over the container's interface: SIOCGIFFLAGS/HWADDR/ADDR/NETMASK/MTU/INDEX and SIOCSIFADDR 0.0.0.0 (removing the host's address)",
    ),
    ("ppoll", "blocking on wait queues (eventfd) and host fds"),
    ("poll", "readiness of host fds"),
    ("getdents64", "donated directories"),
    ("eventfd2", "one waiter per task"),
    ("mmap", "the memory file view, thread stacks, heap"),
    ("munmap", "heap"),
    ("mprotect", "stub code page, heap"),
    ("madvise", "heap"),
    ("memfd_create", "the memory file (once at start)"),
    ("ftruncate", "growing the memory file"),
    ("fallocate", "releasing guest pages (PUNCH_HOLE)"),
    ("fork", "stub processes (from the stub factory thread)"),
    ("clone", "sentry threads"),
    ("ptrace", "driving stub threads"),
    ("wait4", "ptrace stops of stub threads"),
    ("kill", "ending a stub process"),
    ("tgkill", "interrupting a running stub thread"),
    ("futex", "Rust std locks"),
    ("clock_gettime", "clocks; stub thread CPU time"),
    ("getrandom", "AT_RANDOM, getrandom(2), /dev/urandom"),
    ("sendmsg", "gofer requests; hostinet sends (always MSG_DONTWAIT|MSG_NOSIGNAL)"),
    (
        "recvmsg",
        "gofer replies with donated fds; hostinet receives (always MSG_DONTWAIT)",
    ),
    (
        "socket",
        "hostinet (--network=host): AF_INET/AF_INET6 TCP, UDP, ICMP sockets, non-blocking; at start, for the container's interface (net/link.rs): one AF_INET datagram socket for its SIOCGIF*/SIOCSIFADDR ioctls and one AF_PACKET SOCK_RAW socket per taken interface",
    ),
    ("bind", "hostinet; the packet socket to its interface"),
    (
        "sendto",
        "frames out the taken-over interface (AF_PACKET, MSG_DONTWAIT)",
    ),
    (
        "recvfrom",
        "frames from the taken-over interface (AF_PACKET, MSG_DONTWAIT)",
    ),
    (
        "openat",
        "at start only: /proc/self/net/dev and /proc/self/net/route of the sandbox's network namespace",
    ),
    ("listen", "hostinet"),
    ("connect", "hostinet (non-blocking; completion waited with ppoll)"),
    ("accept4", "hostinet (SOCK_NONBLOCK|SOCK_CLOEXEC)"),
    ("getsockname", "hostinet"),
    ("getpeername", "hostinet"),
    ("shutdown", "hostinet"),
    (
        "getsockopt",
        "hostinet: an allow-list of SOL_SOCKET/IP/IPV6/TCP/UDP options; SO_ERROR",
    ),
    (
        "setsockopt",
        "hostinet: an allow-list of SOL_SOCKET/IP/IPV6/TCP/UDP options",
    ),
    ("epoll_create1", "one host epoll per guest epoll watching host fds"),
    ("epoll_ctl", "watching host fds (edge-triggered) for a guest epoll"),
    ("epoll_wait", "taking host edges (timeout 0)"),
    ("sysinfo", "sysinfo(2) memory totals"),
    ("sched_yield", "sched_yield(2)"),
    (
        "sched_setaffinity",
        "keeping each stub thread on its tracer's CPU",
    ),
    ("getcpu", "which CPU the tracer runs on (vDSO)"),
    ("rt_sigprocmask", "the signal-forwarding thread"),
    ("rt_sigtimedwait", "the signal-forwarding thread"),
    ("exit", "sentry threads ending"),
    ("exit_group", "the sandbox ending"),
];
