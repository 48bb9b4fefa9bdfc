//! How far the sentry implements each syscall.
//!
//! [`STATUS`] is the only place this is recorded. It drives [`status`], and
//! through it `docs/COMPATIBILITY.md`, so the document cannot drift from
//! what the code claims.

/// Support level of one syscall, with a note for the compatibility doc.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Implemented with Linux semantics.
    Supported,
    /// Implemented, but with the limitation described in the note.
    Partial(&'static str),
    /// Not implemented; the note says what the caller observes.
    Unsupported(&'static str),
}

impl Status {
    /// Short label used in the compatibility table.
    pub fn label(&self) -> &'static str {
        match self {
            Status::Supported => "Supported",
            Status::Partial(_) => "Partial",
            Status::Unsupported(_) => "Unsupported",
        }
    }

    /// The explanatory note; empty for fully supported syscalls.
    pub fn note(&self) -> &'static str {
        match self {
            Status::Supported => "",
            Status::Partial(note) | Status::Unsupported(note) => note,
        }
    }
}

/// Status of every syscall not listed in [`STATUS`].
pub const DEFAULT_STATUS: Status = Status::Unsupported("Not implemented; returns ENOSYS.");

/// Support status by syscall name, edited by hand as sentry handlers land.
///
/// Format: one `("name", Status::...)` entry per syscall, using the kernel
/// name exactly as in [`crate::SYSCALLS`] (a test rejects unknown names and
/// duplicates). Any syscall not listed is reported as [`DEFAULT_STATUS`].
/// Keep the list in syscall-number order so diffs stay readable, and write
/// notes as full sentences: they are copied verbatim into
/// `docs/COMPATIBILITY.md` (regenerate it after editing this list with
/// `cargo run -p syscalls-table --bin gen-compat > docs/COMPATIBILITY.md`).
///
/// ```text
/// ("read", Status::Supported),
/// ("ioctl", Status::Partial("Only TCGETS, TCSETS and FIONREAD.")),
/// ("ptrace", Status::Unsupported("Denied with EPERM inside the sandbox.")),
/// ```
pub static STATUS: &[(&str, Status)] = &[
    ("read", Status::Supported),
    ("write", Status::Supported),
    ("open", Status::Partial("O_TMPFILE files on tmpfs (/tmp, /dev/shm, tmpfs mounts) can be linked later; elsewhere (overlay, gofer mounts) they work but cannot be given a name afterwards.")),
    ("close", Status::Supported),
    ("stat", Status::Supported),
    ("fstat", Status::Supported),
    ("lstat", Status::Supported),
    ("poll", Status::Supported),
    ("lseek", Status::Supported),
    ("mmap", Status::Partial("Private and anonymous-shared mappings are exact. MAP_SHARED mappings of tmpfs files (/tmp, /dev/shm, shm_open, tmpfs mounts, files written in the root overlay) map the file's own pages: every mapping, read(2) and write(2) see the same bytes; pages past the end of the file read as zeros instead of raising SIGBUS, and a truncate does not take pages away from existing mappings. MAP_SHARED mappings of image files (gofer) are copies made at mmap time: their writes are not written back.")),
    ("mprotect", Status::Supported),
    ("munmap", Status::Supported),
    ("brk", Status::Supported),
    ("rt_sigaction", Status::Supported),
    ("rt_sigprocmask", Status::Supported),
    ("rt_sigreturn", Status::Supported),
    ("ioctl", Status::Partial("FIONBIO, FIOCLEX/FIONCLEX, FIOASYNC (O_ASYNC: SIGIO as F_SETFL, see fcntl), FIOSETOWN/SIOCSPGRP/FIOGETOWN/SIOCGPGRP (the F_SETOWN owner), FIONREAD on pipes, and terminal TCGETS/TCSETS*/TIOCGWINSZ/TIOCSWINSZ on host terminals, with job control (TIOCGPGRP/TIOCSPGRP/TIOCGSID/TIOCSCTTY) kept in the sentry: ^C, ^\\ and resizes the host sends the sandbox go to the guest's foreground process group. Sandbox ptys (/dev/ptmx, /dev/pts, /dev/tty) implement the terminal ioctls: TCGETS/TCSETS*/TCGETS2/TCSETS2*/TCGETA/TCSETA*, TIOCGWINSZ/TIOCSWINSZ (SIGWINCH), FIONREAD, TIOCOUTQ, TCFLSH, TCXONC, TCSBRK*, TIOCSCTTY, TIOCNOTTY, TIOCGPGRP/TIOCSPGRP, TIOCGSID, TIOCSTI, TIOCEXCL/TIOCNXCL, TIOCGETD/TIOCSETD, TIOCGDEV and on the master TIOCGPTN, TIOCSPTLCK/TIOCGPTLCK, TIOCGPTPEER, TIOCPKT (data packets only) and TIOCSIG. TIOCNOTTY by a non-leader keeps the session's terminal; modem-line ioctls return ENOTTY as on Linux ptys; others return ENOTTY. Sockets: FIONREAD/SIOCINQ (AF_INET TCP: bytes queued, UDP: the next datagram's length) and SIOCOUTQ; on the sentry's stack's inet sockets, the interface queries SIOCGIFCONF, SIOCGIFADDR, SIOCGIFFLAGS, SIOCGIFINDEX, SIOCGIFNAME, SIOCGIFNETMASK, SIOCGIFBRDADDR, SIOCGIFMTU, SIOCGIFHWADDR, SIOCGIFMETRIC and SIOCGIFTXQLEN describe its interfaces (lo, and the container's when taken over). With `--network=host`, inet sockets answer FIONREAD/SIOCINQ, SIOCOUTQ, SIOCOUTQNSD, SIOCATMARK and the interface queries SIOCGIFCONF, SIOCGIFADDR, SIOCGIFFLAGS, SIOCGIFINDEX, SIOCGIFNAME, SIOCGIFNETMASK, SIOCGIFMTU, SIOCGIFHWADDR, SIOCGIFBRDADDR, SIOCGIFDSTADDR, SIOCGIFMETRIC, SIOCGIFTXQLEN from the host, structs copied through the sentry.")),
    ("pread64", Status::Supported),
    ("pwrite64", Status::Supported),
    ("readv", Status::Supported),
    ("writev", Status::Supported),
    ("access", Status::Partial("Permission bits are checked against the caller's ids; no ACLs.")),
    ("pipe", Status::Supported),
    ("select", Status::Supported),
    ("sched_yield", Status::Supported),
    ("mremap", Status::Partial("MREMAP_DONTUNMAP is not supported (EINVAL).")),
    ("msync", Status::Partial("Checks the range is mapped; tmpfs mappings need nothing more (the mapping is the file), mappings of image files are not written back (see mmap).")),
    ("mincore", Status::Partial("Reports every mapped page as resident.")),
    ("madvise", Status::Partial("MADV_DONTNEED drops private pages; other advice is accepted as a hint with no effect.")),
    ("dup", Status::Supported),
    ("dup2", Status::Supported),
    ("pause", Status::Supported),
    ("nanosleep", Status::Supported),
    ("getitimer", Status::Partial("ITIMER_REAL only; ITIMER_VIRTUAL/ITIMER_PROF return EINVAL.")),
    ("alarm", Status::Supported),
    ("setitimer", Status::Partial("ITIMER_REAL only; ITIMER_VIRTUAL/ITIMER_PROF return EINVAL.")),
    ("getpid", Status::Supported),
    ("sendfile", Status::Partial("Copies through the sentry (up to 16 MiB per call).")),
    ("socket", Status::Partial("AF_UNIX SOCK_STREAM/SOCK_SEQPACKET/SOCK_DGRAM, and AF_INET/AF_INET6 SOCK_STREAM (TCP) and SOCK_DGRAM (UDP) served by the sentry's own TCP/IP stack (smoltcp: loopback 127.0.0.1 and ::1, plus, for an OCI container with its own network namespace in sandbox mode, the IPv4 and IPv6 addresses of its interface (docker's eth0) with their default routes, which the sentry takes over from the host at start and serves through an AF_PACKET socket, doing ARP and IPv6 neighbor discovery itself) with --network=sandbox or none; SOCK_NONBLOCK/SOCK_CLOEXEC. ICMP echo (\"ping\") sockets: SOCK_DGRAM with IPPROTO_ICMP/IPPROTO_ICMPV6 (identifier rewritten to the socket's port, echo replies with that identifier delivered as ICMP header and payload; creation allowed by net.ipv4.ping_group_range as Linux, default \"1 0\" gives EACCES even to root; root may write /proc/sys/net/ipv4/ping_group_range). SOCK_RAW needs root (EPERM otherwise, as CAP_NET_RAW); raw IPPROTO_ICMP/IPPROTO_ICMPV6 sockets see every ICMP packet (IPv4 with its IP header, rebuilt by the stack: IP identification and flags are not the sender's), ICMP_FILTER/ICMPV6_FILTER apply, IP_HDRINCL is not supported; other raw protocols return EPROTONOSUPPORT. ICMP errors (unreachable, time exceeded) are not reported to ping sockets. AF_PACKET for the guest is not implemented yet. AF_NETLINK NETLINK_ROUTE: RTM_GETLINK/GETADDR/GETROUTE/GETNEIGH describe the sandbox's interfaces (changes are refused with EOPNOTSUPP; with --network=host, GET requests go to the host); other netlink protocols return EPROTONOSUPPORT. With `--network=host`, AF_INET/AF_INET6 SOCK_STREAM (TCP) and SOCK_DGRAM (UDP, UDP-Lite, ICMP echo if the host's ping_group_range allows) are served by non-blocking host sockets the sentry creates; SOCK_RAW returns EPERM. Other families return EAFNOSUPPORT.")),
    ("connect", Status::Partial("AF_UNIX: path names (socket nodes in the VFS, write permission checked), abstract names, backlog waits, EISCONN/ECONNREFUSED/EPROTOTYPE like Linux; datagram connect sets the default peer (AF_UNSPEC disconnects). With `runsc do --host-uds`, a path that is a host socket in the image is connected through the gofer (stream and seqpacket; no fd passing across it). AF_INET/AF_INET6 (netstack): TCP connects block until established (EINPROGRESS when non-blocking, outcome via SO_ERROR or a second connect), ECONNREFUSED from a closed port, ENETUNREACH for addresses other than 127.0.0.1, ::1 and the unspecified address unless the container's interface was taken over (then IPv4 addresses on its subnet, and any through its default gateway; IPv6 stays loopback-only), AF_UNSPEC disconnects; UDP sets the default peer and filters received datagrams. With `--network=host`, AF_INET/AF_INET6 are host sockets: the address is checked and rebuilt in the sentry, a blocking connect waits for completion (interruptible, bounded by SO_SNDTIMEO, then EINPROGRESS) and reports SO_ERROR; non-blocking gives EINPROGRESS.")),
    ("accept", Status::Partial("AF_UNIX stream and seqpacket; the peer address is the connector's name (unnamed: family only). AF_INET/AF_INET6 TCP: the stack keeps a pool of listening sockets (backlog+1, at most 8) refilled as connections arrive; connections beyond the backlog are queued (up to 4096) rather than left to retry their SYN. With `--network=host`, AF_INET/AF_INET6 are host sockets: the new connection is a host socket too; blocking waits honour SO_RCVTIMEO and signals.")),
    ("sendto", Status::Partial("AF_UNIX: a destination address on datagram sockets (EISCONN/EOPNOTSUPP on streams, ignored on seqpacket); MSG_DONTWAIT, MSG_NOSIGNAL; EPIPE raises SIGPIPE. AF_INET/AF_INET6: TCP with blocking, MSG_DONTWAIT, EPIPE after a FIN-answered RST or reset; UDP binds implicitly, EMSGSIZE above 65507 bytes (IPv4) or 65487 (IPv6: no fragmentation), EDESTADDRREQ without a peer. MSG_OOB is not supported on TCP (EOPNOTSUPP). With `--network=host`, AF_INET/AF_INET6 are host sockets: MSG_OOB, MSG_DONTROUTE, MSG_EOR, MSG_MORE, MSG_CONFIRM, MSG_FASTOPEN pass through; blocking stream sends queue everything unless a signal or SO_SNDTIMEO stops them (the bytes sent so far count).")),
    ("recvfrom", Status::Partial("AF_UNIX: MSG_DONTWAIT, MSG_PEEK, MSG_WAITALL (streams), MSG_TRUNC (packets); MSG_OOB returns EOPNOTSUPP; the sender's name is reported (length 0 when unnamed). AF_INET/AF_INET6: TCP with MSG_PEEK, MSG_WAITALL, MSG_DONTWAIT, ECONNRESET once after a reset; UDP reports the sender's address and the full length under MSG_TRUNC. With `--network=host`, AF_INET/AF_INET6 are host sockets: MSG_PEEK, MSG_TRUNC, MSG_OOB, MSG_ERRQUEUE pass through, MSG_WAITALL, SO_RCVLOWAT and blocking are emulated (signals, SO_RCVTIMEO); the sender's address for datagrams.")),
    ("sendmsg", Status::Partial("AF_UNIX with SCM_RIGHTS (up to 253 fds per message) and SCM_CREDENTIALS (checked like Linux: own pid and ids unless root). Fds passed in a cycle through sockets are not garbage-collected while the cycle lives. AF_INET/AF_INET6: as sendto; ancillary data is ignored. With `--network=host`, AF_INET/AF_INET6 are host sockets: as sendto; SCM_RIGHTS is EINVAL as on Linux, other ancillary data is ignored.")),
    ("recvmsg", Status::Partial("AF_UNIX: SCM_RIGHTS installs the fds (MSG_CMSG_CLOEXEC honoured, MSG_CTRUNC when msg_control is short), SCM_CREDENTIALS with SO_PASSCRED; stream reads do not glue bytes from different senders when credentials are asked for. AF_INET/AF_INET6 (netstack): as recvfrom; UDP datagrams carry SCM_TIMESTAMP/SCM_TIMESTAMPNS (the time the stack took the packet in), IP_PKTINFO (interface index, destination as spec_dst and addr), IP_TOS (always 0: the stack sends every packet with TOS 0) and IPV6_PKTINFO (v4-mapped for IPv4 on a dual-stack socket) when asked for, in Linux's order, MSG_CTRUNC when msg_control is short; ICMPv6 sockets IPV6_HOPLIMIT/IPV6_2292HOPLIMIT. No IP_RECVERR error queue (MSG_ERRQUEUE), IP_TTL/IPV6_TCLASS messages or TCP ancillary data. With `--network=host`, AF_INET/AF_INET6 are host sockets: as recvfrom, with MSG_TRUNC in msg_flags; no ancillary data is returned yet (IP_PKTINFO, SO_TIMESTAMP, IP_RECVERR messages are dropped).")),
    ("shutdown", Status::Partial("AF_UNIX: SHUT_RD/SHUT_WR/SHUT_RDWR, mirrored onto the peer for stream and seqpacket; ENOTCONN when not connected. AF_INET/AF_INET6 TCP: SHUT_WR sends FIN; SHUT_RD makes reads return 0, and on a listener stops listening (blocked accepts fail with EINVAL); UDP needs a peer (ENOTCONN). With `--network=host`, AF_INET/AF_INET6 are host sockets: passed to the host.")),
    ("bind", Status::Partial("AF_UNIX: path names create a socket node (EADDRINUSE if the path exists), abstract names, autobind with only the family. AF_INET/AF_INET6: 127.0.0.1, ::1, the container interface's IPv4 address (when taken over) or the unspecified address (others EADDRNOTAVAIL), port 0 picks from 32768-60999, ports below 1024 need root, EADDRINUSE as Linux with SO_REUSEADDR and SO_REUSEPORT (listeners sharing a port by SO_REUSEPORT are not load-balanced: the first takes the connections; no TIME-WAIT: a closed socket frees its port); 0.0.0.0 and :: receive on loopback and the container's interface, :: is dual-stack unless IPV6_V6ONLY. With `--network=host`, AF_INET/AF_INET6 are host sockets: the address is checked and rebuilt in the sentry (AF_UNSPEC passed as given), errors are the host's (EADDRINUSE, EADDRNOTAVAIL, EACCES…).")),
    ("listen", Status::Partial("AF_UNIX stream and seqpacket (EOPNOTSUPP for datagrams, EINVAL unbound); backlog capped at 4096. AF_INET/AF_INET6 TCP (autobinds an ephemeral port when unbound; EADDRINUSE if another socket listens on the port). With `--network=host`, AF_INET/AF_INET6 are host sockets: passed to the host.")),
    ("getsockname", Status::Partial("AF_UNIX: the bound name with Linux's lengths (paths NUL-terminated, abstract names as bound), family only when unnamed. AF_INET/AF_INET6: the bound or connected local address (IPv4 peers of AF_INET6 sockets appear v4-mapped). With `--network=host`, AF_INET/AF_INET6 are host sockets: the host socket's address.")),
    ("getpeername", Status::Partial("AF_UNIX: the peer's name (kept after the peer closed); ENOTCONN when not connected. AF_INET/AF_INET6: the connected peer (TCP: ENOTCONN after a reset). With `--network=host`, AF_INET/AF_INET6 are host sockets: the host socket's peer.")),
    ("socketpair", Status::Partial("AF_UNIX only (AF_INET/AF_INET6 return EOPNOTSUPP, others EAFNOSUPPORT) with SOCK_STREAM, SOCK_SEQPACKET or SOCK_DGRAM plus SOCK_NONBLOCK/SOCK_CLOEXEC.")),
    ("setsockopt", Status::Partial("SOL_SOCKET: SO_SNDBUF/SO_RCVBUF (doubled and clamped as Linux), SO_PASSCRED, SO_RCVTIMEO/SO_SNDTIMEO (used by blocking calls), and SO_REUSEADDR, SO_REUSEPORT, SO_KEEPALIVE, SO_LINGER, SO_BROADCAST, SO_OOBINLINE, SO_PRIORITY, SO_MARK, SO_RCVLOWAT, SO_TIMESTAMP stored; other options ENOPROTOOPT, other levels EOPNOTSUPP on AF_UNIX. AF_INET/AF_INET6 (netstack): the SOL_SOCKET options above (SO_SNDBUF/SO_RCVBUF reported but the stack's buffers stay fixed: 1 MiB for TCP, 256 KiB for UDP), IPPROTO_TCP TCP_NODELAY and SO_KEEPALIVE/TCP_KEEPIDLE applied, TCP_KEEPINTVL, TCP_KEEPCNT, TCP_CORK, TCP_QUICKACK, TCP_USER_TIMEOUT, TCP_LINGER2, TCP_SYNCNT, TCP_DEFER_ACCEPT, TCP_WINDOW_CLAMP stored; IP_TOS, IP_TTL, IPV6_V6ONLY (before bind), IPV6_TCLASS, IPV6_UNICAST_HOPS stored; UDP: SO_TIMESTAMP/SO_TIMESTAMPNS (one flag, the last set picks the format, as Linux), IP_PKTINFO, IP_RECVTOS, IPV6_RECVPKTINFO (see recvmsg); IP_RECVERR/IPV6_RECVERR stored (glibc's resolver needs them) but the error queue stays empty: the stack reports no ICMP errors, recvmsg(MSG_ERRQUEUE) gives EAGAIN; ICMP sockets: IP_TOS/IP_TTL (applied to sent packets), ICMP_FILTER, ICMPV6_FILTER, IPV6_CHECKSUM (SOL_RAW), IPV6_RECVHOPLIMIT/IPV6_2292HOPLIMIT. With `--network=host`, AF_INET/AF_INET6 are host sockets: SO_RCVTIMEO/SO_SNDTIMEO are kept in the sentry; an allow-list is passed to the host (SOL_SOCKET: SO_REUSEADDR, SO_REUSEPORT, SO_KEEPALIVE, SO_RCVBUF, SO_SNDBUF, SO_LINGER, SO_BROADCAST, SO_OOBINLINE, SO_RCVLOWAT, SO_PRIORITY, SO_DONTROUTE, SO_TIMESTAMP(NS); IPPROTO_TCP: TCP_NODELAY, TCP_MAXSEG, TCP_CORK, TCP_KEEPIDLE/KEEPINTVL/KEEPCNT, TCP_SYNCNT, TCP_LINGER2, TCP_DEFER_ACCEPT, TCP_WINDOW_CLAMP, TCP_QUICKACK, TCP_CONGESTION (reno, cubic), TCP_USER_TIMEOUT, TCP_FASTOPEN(_CONNECT), TCP_NOTSENT_LOWAT; IPPROTO_IP: IP_TOS, IP_TTL, IP_PKTINFO, IP_RECVERR, IP_RECVTTL, IP_RECVTOS, IP_MTU_DISCOVER, IP_FREEBIND, IP_BIND_ADDRESS_NO_PORT, IP_MULTICAST_IF/TTL/LOOP/ALL, IP_ADD/DROP_MEMBERSHIP and source memberships; IPPROTO_IPV6: IPV6_V6ONLY, IPV6_TCLASS, IPV6_UNICAST_HOPS, IPV6_MULTICAST_IF/HOPS/LOOP, IPV6_ADD/DROP_MEMBERSHIP, IPV6_MTU_DISCOVER, IPV6_RECVERR, IPV6_RECVPKTINFO, IPV6_RECVHOPLIMIT, IPV6_RECVTCLASS; UDP_CORK); what needs CAP_NET_ADMIN on the host (SO_SNDBUFFORCE/SO_RCVBUFFORCE, SO_MARK, SO_PRIORITY above 6, IP_TRANSPARENT/IPV6_TRANSPARENT) EPERM, a TCP_CONGESTION other than reno/cubic EPERM (ENOENT for root) so no module gets loaded; anything else ENOPROTOOPT.")),
    ("getsockopt", Status::Partial("SOL_SOCKET: SO_TYPE, SO_DOMAIN, SO_PROTOCOL, SO_ERROR, SO_SNDBUF, SO_RCVBUF, SO_ACCEPTCONN, SO_PASSCRED, SO_PEERCRED (pairs: the creator; connections: the peer at connect/listen time) and the stored options of setsockopt; others ENOPROTOOPT. AF_INET/AF_INET6: the options setsockopt stores, SO_ERROR (ECONNREFUSED/ECONNRESET/EPIPE from the stack), TCP_MAXSEG; TCP_INFO and TCP_CONGESTION are not implemented (ENOPROTOOPT). With `--network=host`, AF_INET/AF_INET6 are host sockets: the setsockopt allow-list plus SO_ERROR, SO_ACCEPTCONN, SO_PEERCRED, SO_SNDLOWAT, SO_INCOMING_CPU, TCP_INFO, IP_MTU, IPV6_MTU from the host; SO_RCVTIMEO/SO_SNDTIMEO from the sentry; anything else ENOPROTOOPT.")),
    ("clone", Status::Partial("Namespace flags (CLONE_NEW*) and CLONE_PIDFD return EINVAL.")),
    ("fork", Status::Supported),
    ("vfork", Status::Supported),
    ("execve", Status::Partial("ELF x86-64 and #! scripts; no vDSO is mapped (AT_SYSINFO_EHDR absent).")),
    ("exit", Status::Supported),
    ("wait4", Status::Partial("The rusage argument is filled with zeros.")),
    ("kill", Status::Supported),
    ("uname", Status::Supported),
    ("fcntl", Status::Partial("F_DUPFD(_CLOEXEC), F_GETFD/SETFD, F_GETFL/SETFL, F_GETPIPE_SZ/SETPIPE_SZ, F_SETOWN/F_GETOWN(_EX) and F_SETSIG/F_GETSIG with O_ASYNC: SIGIO (si_code SI_KERNEL), or the F_SETSIG signal with si_code POLL_IN/POLL_OUT/POLL_ERR/POLL_HUP, si_band and si_fd, goes to the owning process or process group when a file with a wait queue (pipes, FIFOs, unix and sandbox-stack inet sockets, eventfd, ...) becomes readable, writable, errored or hung up; unlike Linux, more data arriving on a file that is still readable sends no further signal (an edge, re-armed by reading to EAGAIN), F_OWNER_TID owners get a process-directed signal, no sigio permission check is made, and --network=host sockets send none, and advisory record locks with Linux semantics: POSIX locks (F_SETLK/F_SETLKW/F_GETLK; owned by the process, split and merged by range, released when it closes any fd of the file or exits, EDEADLK detection) and OFD locks (F_OFD_*; owned by the open file description). Locks are sandbox-local: host processes do not see them. Leases, F_NOTIFY, F_SETOWN/F_SETSIG and seals return EINVAL.")),
    ("flock", Status::Partial("Shared and exclusive locks owned by the open file description (kept across fork and dup, released by LOCK_UN or its last close), LOCK_NB, and non-atomic conversion as on Linux. Locks are sandbox-local: host processes do not see them.")),
    ("fsync", Status::Supported),
    ("fdatasync", Status::Supported),
    ("truncate", Status::Supported),
    ("ftruncate", Status::Supported),
    ("getdents", Status::Supported),
    ("getcwd", Status::Supported),
    ("chdir", Status::Supported),
    ("fchdir", Status::Supported),
    ("rename", Status::Supported),
    ("mkdir", Status::Supported),
    ("rmdir", Status::Supported),
    ("mknod", Status::Partial("FIFOs, sockets and regular files; device nodes return EPERM.")),
    ("creat", Status::Supported),
    ("link", Status::Supported),
    ("unlink", Status::Supported),
    ("symlink", Status::Supported),
    ("readlink", Status::Supported),
    ("chmod", Status::Supported),
    ("fchmod", Status::Supported),
    ("chown", Status::Partial("Only as root inside the sandbox (EPERM otherwise).")),
    ("fchown", Status::Partial("Only as root inside the sandbox (EPERM otherwise).")),
    ("lchown", Status::Partial("Only as root inside the sandbox (EPERM otherwise).")),
    ("umask", Status::Supported),
    ("gettimeofday", Status::Supported),
    ("getrlimit", Status::Supported),
    ("getrusage", Status::Partial("Only CPU time: the time each thread spends switched into the guest, as user time; other fields are zero.")),
    ("sysinfo", Status::Partial("Uptime and process count are the sandbox's; memory totals are the host's.")),
    ("times", Status::Partial("CPU time is the time threads spend switched into the guest (user time); the sentry's own work is not charged.")),
    ("getuid", Status::Supported),
    ("getgid", Status::Supported),
    ("setuid", Status::Supported),
    ("setgid", Status::Supported),
    ("geteuid", Status::Supported),
    ("getegid", Status::Supported),
    ("setpgid", Status::Supported),
    ("getppid", Status::Supported),
    ("getpgrp", Status::Supported),
    ("setsid", Status::Supported),
    ("setreuid", Status::Supported),
    ("setregid", Status::Supported),
    ("getgroups", Status::Supported),
    ("setgroups", Status::Supported),
    ("setresuid", Status::Supported),
    ("getresuid", Status::Supported),
    ("setresgid", Status::Supported),
    ("getresgid", Status::Supported),
    ("getpgid", Status::Supported),
    ("getsid", Status::Supported),
    ("rt_sigpending", Status::Supported),
    ("rt_sigtimedwait", Status::Supported),
    ("rt_sigqueueinfo", Status::Supported),
    ("rt_sigsuspend", Status::Supported),
    ("sigaltstack", Status::Supported),
    ("statfs", Status::Partial("Host numbers for gofer-backed files, the size limit and usage for tmpfs and the overlay; special filesystems (proc, dev) report synthetic values.")),
    ("fstatfs", Status::Partial("Host numbers for gofer-backed files, the size limit and usage for tmpfs and the overlay; special filesystems (proc, dev) report synthetic values.")),
    ("getpriority", Status::Partial("Per-thread nice value is recorded, not enforced; PRIO_PGRP/PRIO_USER return ESRCH.")),
    ("setpriority", Status::Partial("Per-thread nice value is recorded, not enforced; PRIO_PGRP/PRIO_USER return ESRCH.")),
    ("sched_setparam", Status::Supported),
    ("sched_getparam", Status::Supported),
    ("sched_setscheduler", Status::Partial("SCHED_OTHER/BATCH/IDLE accepted; real-time policies return EPERM.")),
    ("sched_getscheduler", Status::Supported),
    ("sched_get_priority_max", Status::Supported),
    ("sched_get_priority_min", Status::Supported),
    ("mlock", Status::Partial("Accepted: guest memory is never swapped by the sentry.")),
    ("munlock", Status::Partial("Accepted: guest memory is never swapped by the sentry.")),
    ("pivot_root", Status::Partial("As root: the mount at new_root becomes the root, the old root moves to put_old with the other mounts; processes whose root or cwd was the old root (or whose cwd is new_root) follow. A working directory deeper inside the moved tree keeps reporting its old path.")),
    ("prctl", Status::Partial("PR_SET/GET_NAME, PR_SET_PDEATHSIG (accepted, not acted on), PR_GET/SET_DUMPABLE, PR_SET/GET_NO_NEW_PRIVS, PR_SET/GET_KEEPCAPS, PR_CAPBSET_READ/DROP, PR_CAP_AMBIENT; others EINVAL.")),
    ("arch_prctl", Status::Partial("ARCH_SET/GET_FS, ARCH_SET/GET_GS, ARCH_GET_CPUID.")),
    ("setrlimit", Status::Supported),
    ("chroot", Status::Supported),
    ("mount", Status::Partial("tmpfs, proc and bind mounts (MS_BIND) inside the sandbox, as root, with MS_RDONLY/MS_NOEXEC/MS_NODEV enforced (EROFS for writes, EACCES for exec and device opens, EPERM for PROT_EXEC maps) and MS_NOSUID recorded (set-id bits never change credentials here); MS_REMOUNT (with or without MS_BIND) changes those options. Propagation flags are accepted (one private namespace); other filesystem types return ENODEV; a second mount on the same path replaces the first instead of stacking.")),
    ("umount2", Status::Supported),
    ("sync", Status::Supported),
    ("sethostname", Status::Supported),
    ("setdomainname", Status::Supported),
    ("mq_open", Status::Supported),
    ("mq_unlink", Status::Supported),
    ("mq_timedsend", Status::Supported),
    ("mq_timedreceive", Status::Supported),
    ("mq_notify", Status::Partial("SIGEV_SIGNAL and SIGEV_NONE; SIGEV_THREAD (glibc's netlink helper) is EINVAL.")),
    ("mq_getsetattr", Status::Supported),
    ("capget", Status::Partial("Versions 1-3; every task's sets are kept and checked (no file capabilities, no securebits).")),
    ("capset", Status::Partial("The calling thread only, as Linux since 2.6.24; no file capabilities, no securebits.")),
    ("gettid", Status::Supported),
    ("setxattr", Status::Partial("tmpfs keeps user., trusted. (root) and security. attributes; host files (gofer) only user.; the overlay copies up first. No system.* (POSIX ACLs): EOPNOTSUPP.")),
    ("lsetxattr", Status::Partial("tmpfs keeps user., trusted. (root) and security. attributes; host files (gofer) only user.; the overlay copies up first. No system.* (POSIX ACLs): EOPNOTSUPP.")),
    ("fsetxattr", Status::Partial("tmpfs keeps user., trusted. (root) and security. attributes; host files (gofer) only user.; the overlay copies up first. No system.* (POSIX ACLs): EOPNOTSUPP.")),
    ("getxattr", Status::Partial("tmpfs keeps user., trusted. (root) and security. attributes; host files (gofer) only user.; the overlay reads the top layer. No system.* (POSIX ACLs): EOPNOTSUPP.")),
    ("lgetxattr", Status::Partial("tmpfs keeps user., trusted. (root) and security. attributes; host files (gofer) only user.; the overlay reads the top layer. No system.* (POSIX ACLs): EOPNOTSUPP.")),
    ("fgetxattr", Status::Partial("tmpfs keeps user., trusted. (root) and security. attributes; host files (gofer) only user.; the overlay reads the top layer. No system.* (POSIX ACLs): EOPNOTSUPP.")),
    ("listxattr", Status::Partial("Lists tmpfs user./trusted. (root)/security. attributes and host files' (gofer) user. ones; the overlay lists the top layer.")),
    ("llistxattr", Status::Partial("Lists tmpfs user./trusted. (root)/security. attributes and host files' (gofer) user. ones; the overlay lists the top layer.")),
    ("flistxattr", Status::Partial("Lists tmpfs user./trusted. (root)/security. attributes and host files' (gofer) user. ones; the overlay lists the top layer.")),
    ("removexattr", Status::Partial("tmpfs keeps user., trusted. (root) and security. attributes; host files (gofer) only user.; the overlay copies up first.")),
    ("lremovexattr", Status::Partial("tmpfs keeps user., trusted. (root) and security. attributes; host files (gofer) only user.; the overlay copies up first.")),
    ("fremovexattr", Status::Partial("tmpfs keeps user., trusted. (root) and security. attributes; host files (gofer) only user.; the overlay copies up first.")),
    ("tkill", Status::Supported),
    ("time", Status::Supported),
    ("futex", Status::Partial("WAIT, WAKE, REQUEUE, CMP_REQUEUE, WAKE_OP, WAIT_BITSET, WAKE_BITSET; PI futexes return ENOSYS.")),
    ("sched_setaffinity", Status::Partial("Accepted and validated but not enforced.")),
    ("sched_getaffinity", Status::Supported),
    ("epoll_create", Status::Supported),
    ("getdents64", Status::Supported),
    ("set_tid_address", Status::Supported),
    ("fadvise64", Status::Supported),
    ("clock_gettime", Status::Supported),
    ("clock_getres", Status::Supported),
    ("clock_nanosleep", Status::Supported),
    ("exit_group", Status::Supported),
    ("epoll_wait", Status::Partial("Edge-triggered entries re-report after any wake-up of their file; host-backed files (host sockets, host stdio) are watched in a host epoll, edge-triggered, so their host edges count as wake-ups.")),
    ("epoll_ctl", Status::Partial("EPOLLEXCLUSIVE is accepted but every waiter is woken.")),
    ("tgkill", Status::Supported),
    ("waitid", Status::Supported),
    ("inotify_init", Status::Partial("Changes made inside the sandbox (create, write, truncate, rename, unlink, mkdir, chmod/chown/utimes) are reported; changes made outside the sandbox (on the host) are not seen. IN_ACCESS, IN_OPEN and IN_CLOSE_* are not generated.")),
    ("inotify_add_watch", Status::Partial("As inotify_init.")),
    ("inotify_rm_watch", Status::Partial("As inotify_init.")),
    ("openat", Status::Partial("O_TMPFILE files on tmpfs (/tmp, /dev/shm, tmpfs mounts) can be linked later; elsewhere (overlay, gofer mounts) they work but cannot be given a name afterwards.")),
    ("mkdirat", Status::Supported),
    ("mknodat", Status::Partial("FIFOs, sockets and regular files; device nodes return EPERM.")),
    ("fchownat", Status::Partial("Only as root inside the sandbox (EPERM otherwise).")),
    ("newfstatat", Status::Supported),
    ("unlinkat", Status::Supported),
    ("renameat", Status::Partial("RENAME_EXCHANGE and RENAME_WHITEOUT are not supported.")),
    ("linkat", Status::Supported),
    ("symlinkat", Status::Supported),
    ("readlinkat", Status::Supported),
    ("fchmodat", Status::Supported),
    ("faccessat", Status::Partial("Permission bits are checked against the caller's ids; no ACLs.")),
    ("pselect6", Status::Supported),
    ("ppoll", Status::Supported),
    ("set_robust_list", Status::Partial("The list is recorded but not walked at thread exit.")),
    ("get_robust_list", Status::Supported),
    ("splice", Status::Partial("Pipe to pipe, pipe to file and file to pipe, with Linux's argument checks (ESPIPE for pipe offsets, EINVAL without a pipe), blocking rules (SPLICE_F_NONBLOCK or the pipe's O_NONBLOCK) and EPIPE/SIGPIPE. Data is copied through the sentry (at most 16 MiB per call) rather than moved as pages; SPLICE_F_MOVE, SPLICE_F_MORE and SPLICE_F_GIFT are accepted and have no effect.")),
    ("tee", Status::Partial("Duplicates pipe data by copying it (at most 16 MiB per call); the input pipe is not consumed.")),
    ("vmsplice", Status::Partial("Copies user memory into a pipe, or pipe data out to user memory; pages are never gifted or shared (SPLICE_F_GIFT has no effect).")),
    ("utimensat", Status::Supported),
    ("epoll_pwait", Status::Partial("Edge-triggered entries re-report after any wake-up of their file.")),
    ("signalfd", Status::Partial("Reads the reading task's pending signals in the mask; readiness is the polling task's. ssi_syscall, ssi_call_addr and ssi_arch are not filled.")),
    ("timerfd_create", Status::Partial("CLOCK_REALTIME, CLOCK_MONOTONIC and CLOCK_BOOTTIME; the *_ALARM clocks return EPERM.")),
    ("eventfd", Status::Supported),
    ("fallocate", Status::Partial("Mode 0 grows the file to offset+len (as a hole, which reads as zeros) and FALLOC_FL_KEEP_SIZE succeeds without change; FALLOC_FL_PUNCH_HOLE, ZERO_RANGE, COLLAPSE_RANGE, INSERT_RANGE and UNSHARE_RANGE return EOPNOTSUPP (after Linux's argument checks).")),
    ("timerfd_settime", Status::Partial("Absolute times are converted to the monotonic timeline when set: later changes of CLOCK_REALTIME do not move the expiry, and TFD_TIMER_CANCEL_ON_SET is accepted but never cancels.")),
    ("timerfd_gettime", Status::Supported),
    ("accept4", Status::Partial("As accept, with SOCK_NONBLOCK/SOCK_CLOEXEC (other flags EINVAL); with `--network=host` also for AF_INET/AF_INET6.")),
    ("signalfd4", Status::Partial("As signalfd, with SFD_NONBLOCK and SFD_CLOEXEC.")),
    ("eventfd2", Status::Supported),
    ("epoll_create1", Status::Supported),
    ("dup3", Status::Supported),
    ("pipe2", Status::Supported),
    ("inotify_init1", Status::Partial("As inotify_init, with IN_NONBLOCK and IN_CLOEXEC.")),
    ("preadv", Status::Supported),
    ("pwritev", Status::Supported),
    ("recvmmsg", Status::Partial("A loop over recvmsg (at most 1024 messages) with MSG_WAITFORONE; the timeout is checked between messages, as on Linux.")),
    ("prlimit64", Status::Supported),
    ("sendmmsg", Status::Partial("A loop over sendmsg (at most 1024 messages); stops at the first error after a message was sent.")),
    ("getcpu", Status::Partial("Always reports CPU 0 and node 0.")),
    ("renameat2", Status::Partial("RENAME_NOREPLACE and RENAME_EXCHANGE (tmpfs, overlay, gofer mounts); RENAME_WHITEOUT returns EPERM (EINVAL as root): whiteouts belong to the sentry's own overlay. On the overlay, moving a directory copies its lower tree up first.")),
    ("getrandom", Status::Supported),
    ("execveat", Status::Partial("ELF x86-64 and #! scripts; no vDSO is mapped (AT_SYSINFO_EHDR absent).")),
    ("copy_file_range", Status::Partial("Between regular files (any filesystems, as Linux 5.19+), with Linux's checks (EISDIR, EINVAL for other file types, overlapping ranges or flags, EBADF). Data is copied through the sentry, at most 16 MiB per call (callers loop on short counts); no reflinks.")),
    ("statx", Status::Supported),
    ("clone3", Status::Partial("Namespace flags, CLONE_PIDFD, set_tid and cgroup return EINVAL.")),
    ("close_range", Status::Supported),
    ("faccessat2", Status::Partial("Permission bits are checked against the caller's ids; no ACLs.")),
];

/// Support status of the syscall called `name`.
pub fn status(name: &str) -> Status {
    STATUS
        .iter()
        .find(|(listed, _)| *listed == name)
        .map_or(DEFAULT_STATUS, |&(_, status)| status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn status_list_names_real_syscalls_once() {
        let mut seen = HashSet::new();
        for (name, _) in STATUS {
            assert!(
                crate::by_name(name).is_some(),
                "STATUS lists unknown syscall {name:?}"
            );
            assert!(seen.insert(name), "STATUS lists {name:?} twice");
        }
    }

    #[test]
    fn unlisted_syscalls_are_enosys() {
        if !STATUS.iter().any(|(name, _)| *name == "mseal") {
            assert_eq!(status("mseal"), DEFAULT_STATUS);
        }
        assert_eq!(status("no_such_syscall"), DEFAULT_STATUS);
        assert_eq!(DEFAULT_STATUS.note(), "Not implemented; returns ENOSYS.");
    }

    #[test]
    fn labels_and_notes() {
        assert_eq!(Status::Supported.label(), "Supported");
        assert_eq!(Status::Supported.note(), "");
        assert_eq!(Status::Partial("p").label(), "Partial");
        assert_eq!(Status::Partial("p").note(), "p");
        assert_eq!(Status::Unsupported("u").label(), "Unsupported");
        assert_eq!(Status::Unsupported("u").note(), "u");
    }
}
