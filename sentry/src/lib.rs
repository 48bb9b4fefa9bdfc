//! The sentry: a Linux kernel in user space. Guest programs run on a
//! platform (ptrace stubs) and every system call they make is served here,
//! from our own tasks, memory, filesystems and signals. The sentry opens no
//! container files itself: the gofer does, and donates fds.

pub mod boot;
pub mod errno;
pub mod fs;
pub mod host_syscalls;
pub mod kernel;
pub mod loader;
pub mod mm;
pub mod net;
pub mod syscalls;
pub mod vfs;

pub use boot::{boot, prepare, BootConfig, Sandbox};
