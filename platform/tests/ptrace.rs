//! The ptrace backend against hand-written guest code: system calls stop in
//! the tracer without reaching the host, faults come back as events, memory
//! is shared with the memory file, and threads share the address space.

use platform::ptrace::PtracePlatform;
use platform::{Event, Platform, Regs};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const CODE: u64 = 0x40_0000;
const DATA: u64 = 0x50_0000;

fn memfd(len: usize) -> (OwnedFd, *mut u8) {
    // SAFETY: test-only host calls on our own fd and mapping.
    unsafe {
        let fd = libc::memfd_create(c"test".as_ptr(), libc::MFD_CLOEXEC);
        assert!(fd >= 0);
        assert_eq!(libc::ftruncate(fd, len as i64), 0);
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        );
        assert_ne!(p, libc::MAP_FAILED);
        (OwnedFd::from_raw_fd(fd), p as *mut u8)
    }
}

fn regs(rip: u64) -> Regs {
    // SAFETY: plain integers.
    let mut r: Regs = unsafe { std::mem::zeroed() };
    r.rip = rip;
    r.rsp = DATA + 0x800;
    r.cs = 0x33;
    r.ss = 0x2b;
    r.eflags = 0x202;
    r.orig_rax = u64::MAX;
    r
}

#[test]
fn syscalls_faults_and_shared_memory() {
    let (fd, view) = memfd(2 * 4096);
    // Page 0: code; page 1: data.
    let code: &[u8] = &[
        0xb8, 39, 0, 0, 0, // mov eax, 39 (getpid)
        0x0f, 0x05, // syscall
        0x48, 0xc7, 0xc0, 0x3c, 0, 0, 0, // mov rax, 60 (exit)
        0x0f, 0x05, // syscall
        0x48, 0x8b, 0x04, 0x25, 0, 0, 0, 0, // mov rax, [0]  -> SIGSEGV
        0xc7, 0x04, 0x25, 0x00, 0x00, 0x50, 0x00, 0x2a, 0, 0, 0, // mov dword [DATA], 42
        0x0f, 0x0b, // ud2 -> SIGILL
    ];
    // SAFETY: view maps 2 pages.
    unsafe { std::ptr::copy_nonoverlapping(code.as_ptr(), view, code.len()) };
    let p = PtracePlatform::new(fd.as_raw_fd()).expect("platform");
    let mut ctx = p.new_address_space().expect("address space");
    ctx.map(CODE, 4096, libc::PROT_READ | libc::PROT_EXEC, 0)
        .unwrap();
    ctx.map(DATA, 4096, libc::PROT_READ | libc::PROT_WRITE, 4096)
        .unwrap();

    let mut r = regs(CODE);
    assert_eq!(ctx.switch(&mut r).unwrap(), Event::Syscall);
    assert_eq!(r.orig_rax, 39);
    assert_eq!(r.rip, CODE + 7);
    // The guest's exit is only a request: we decide, and skip past it.
    assert_eq!(ctx.switch(&mut r).unwrap(), Event::Syscall);
    assert_eq!(r.orig_rax, 60);

    match ctx.switch(&mut r).unwrap() {
        Event::Fault(f) => {
            assert_eq!(f.signo, libc::SIGSEGV);
            assert_eq!(f.addr, 0);
        }
        e => panic!("expected a fault, got {e:?}"),
    }
    // Skip the faulting load (8 bytes) and run the store.
    r.rip += 8;
    match ctx.switch(&mut r).unwrap() {
        Event::Fault(f) => assert_eq!(f.signo, libc::SIGILL),
        e => panic!("expected SIGILL, got {e:?}"),
    }
    // SAFETY: page 1 of the view.
    let v = unsafe { std::ptr::read_volatile(view.add(4096) as *const u32) };
    assert_eq!(v, 42, "guest store visible through the memory file");

    // A second thread in the same address space sees the same memory.
    let pending = ctx.new_thread().expect("thread");
    let h = std::thread::spawn(move || {
        let mut t = pending.adopt().expect("adopt");
        let mut r = regs(CODE);
        let ev = t.switch(&mut r).unwrap();
        t.release();
        (ev, r.orig_rax)
    });
    let (ev, nr) = h.join().unwrap();
    assert_eq!(ev, Event::Syscall);
    assert_eq!(nr, 39);

    // Unmapping makes the code fault.
    ctx.unmap(CODE, 4096).unwrap();
    let mut r = regs(CODE);
    match ctx.switch(&mut r).unwrap() {
        Event::Fault(f) => assert_eq!(f.signo, libc::SIGSEGV),
        e => panic!("expected SIGSEGV, got {e:?}"),
    }
    ctx.release();
}
