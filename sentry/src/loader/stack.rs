//! The initial process stack: strings, then auxv, envp, argv and argc, as the
//! x86-64 ABI lays them out.

use crate::errno::{Errno, KResult};
use crate::mm::{Backing, MapRequest, MemoryManager, PROT_READ, PROT_WRITE};
use platform::Context;

pub const AT_NULL: u64 = 0;
pub const AT_PHDR: u64 = 3;
pub const AT_PHENT: u64 = 4;
pub const AT_PHNUM: u64 = 5;
pub const AT_PAGESZ: u64 = 6;
pub const AT_BASE: u64 = 7;
pub const AT_FLAGS: u64 = 8;
pub const AT_ENTRY: u64 = 9;
pub const AT_UID: u64 = 11;
pub const AT_EUID: u64 = 12;
pub const AT_GID: u64 = 13;
pub const AT_EGID: u64 = 14;
pub const AT_PLATFORM: u64 = 15;
pub const AT_HWCAP: u64 = 16;
pub const AT_CLKTCK: u64 = 17;
pub const AT_SECURE: u64 = 23;
pub const AT_RANDOM: u64 = 25;
pub const AT_HWCAP2: u64 = 26;
pub const AT_EXECFN: u64 = 31;
pub const AT_MINSIGSTKSZ: u64 = 51;

pub const STACK_SIZE: u64 = 8 << 20;
/// Linux's limit on argv+envp: a quarter of the stack rlimit.
pub const MAX_ARG_BYTES: usize = 2 << 20;

pub struct StackLayout {
    pub sp: u64,
    pub arg_start: u64,
    pub arg_end: u64,
    pub env_start: u64,
    pub env_end: u64,
    pub auxv: Vec<(u64, u64)>,
}

/// Maps the stack and writes the initial frame. `auxv` lacks the entries
/// that point into the stack (AT_RANDOM, AT_EXECFN, AT_PLATFORM): added here.
pub fn build(
    mm: &MemoryManager,
    ctx: &mut dyn Context,
    argv: &[Vec<u8>],
    envp: &[Vec<u8>],
    execfn: &[u8],
    mut auxv: Vec<(u64, u64)>,
) -> KResult<StackLayout> {
    let total: usize = argv.iter().chain(envp.iter()).map(|s| s.len() + 1).sum();
    if total > MAX_ARG_BYTES {
        return Err(Errno::E2BIG);
    }
    let top = mm.lock().stack_top;
    mm.map(
        ctx,
        MapRequest {
            addr: top - STACK_SIZE,
            len: STACK_SIZE,
            prot: PROT_READ | PROT_WRITE,
            fixed: true,
            noreplace: false,
            shared: false,
            growsdown: true,
        },
        Backing::Anon,
    )?;
    mm.set_name(top - STACK_SIZE, "[stack]".into(), 0);
    let mut sp = top;
    let push_bytes = |sp: &mut u64, b: &[u8]| -> KResult<u64> {
        *sp -= b.len() as u64;
        mm.copy_out(*sp, b)?;
        Ok(*sp)
    };
    // An 8-byte end marker, then the exec file name.
    push_bytes(&mut sp, &[0u8; 8])?;
    let mut s = execfn.to_vec();
    s.push(0);
    let execfn_addr = push_bytes(&mut sp, &s)?;
    let env_end = sp;
    let mut env_ptrs = Vec::with_capacity(envp.len());
    for e in envp.iter().rev() {
        let mut s = e.clone();
        s.push(0);
        env_ptrs.push(push_bytes(&mut sp, &s)?);
    }
    env_ptrs.reverse();
    let env_start = sp;
    let arg_end = sp;
    let mut arg_ptrs = Vec::with_capacity(argv.len());
    for a in argv.iter().rev() {
        let mut s = a.clone();
        s.push(0);
        arg_ptrs.push(push_bytes(&mut sp, &s)?);
    }
    arg_ptrs.reverse();
    let arg_start = sp;
    let platform_addr = push_bytes(&mut sp, b"x86_64\0")?;
    let mut random = [0u8; 16];
    // SAFETY: getrandom into a live 16-byte buffer.
    unsafe { libc::getrandom(random.as_mut_ptr() as *mut libc::c_void, 16, 0) };
    sp &= !15;
    let random_addr = push_bytes(&mut sp, &random)?;
    auxv.push((AT_RANDOM, random_addr));
    auxv.push((AT_EXECFN, execfn_addr));
    auxv.push((AT_PLATFORM, platform_addr));
    auxv.push((AT_NULL, 0));

    // argc, argv[], NULL, envp[], NULL, auxv pairs: keep sp 16-aligned.
    let words = 1 + arg_ptrs.len() + 1 + env_ptrs.len() + 1 + auxv.len() * 2;
    sp &= !15;
    if words % 2 == 1 {
        sp -= 8;
    }
    sp -= (words * 8) as u64;
    let mut v: Vec<u8> = Vec::with_capacity(words * 8);
    v.extend_from_slice(&(argv.len() as u64).to_le_bytes());
    for p in &arg_ptrs {
        v.extend_from_slice(&p.to_le_bytes());
    }
    v.extend_from_slice(&0u64.to_le_bytes());
    for p in &env_ptrs {
        v.extend_from_slice(&p.to_le_bytes());
    }
    v.extend_from_slice(&0u64.to_le_bytes());
    for (k, val) in &auxv {
        v.extend_from_slice(&k.to_le_bytes());
        v.extend_from_slice(&val.to_le_bytes());
    }
    mm.copy_out(sp, &v)?;
    Ok(StackLayout {
        sp,
        arg_start,
        arg_end,
        env_start,
        env_end,
        auxv,
    })
}
