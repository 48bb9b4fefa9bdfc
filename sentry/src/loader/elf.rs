//! ELF64 x86-64 parsing and mapping into a MemoryManager.

use crate::errno::{Errno, KResult};
use crate::mm::memory_file::{page_down, page_up, PAGE};
use crate::mm::{Backing, MapRequest, MemoryManager, PROT_EXEC, PROT_READ, PROT_WRITE};
use platform::Context;

pub const ET_EXEC: u16 = 2;
pub const ET_DYN: u16 = 3;
const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;
const PT_PHDR: u32 = 6;
const PT_GNU_STACK: u32 = 0x6474_e551;
/// Where Linux puts a PIE executable without randomization (2/3 of 47 bits).
pub const ET_DYN_BASE: u64 = 0x5555_5555_4000;

#[derive(Clone, Debug)]
pub struct ProgramHeader {
    pub p_type: u32,
    pub flags: u32,
    pub offset: u64,
    pub vaddr: u64,
    pub filesz: u64,
    pub memsz: u64,
}

#[derive(Clone, Debug)]
pub struct ElfFile {
    pub e_type: u16,
    pub entry: u64,
    pub phoff: u64,
    pub phentsize: u16,
    pub phnum: u16,
    pub phdrs: Vec<ProgramHeader>,
    pub interp: Option<Vec<u8>>,
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

pub fn is_elf(head: &[u8]) -> bool {
    head.len() >= 4 && &head[..4] == b"\x7fELF"
}

/// Parses the header and program headers; `read_at` reads file bytes.
pub fn parse(read_at: &mut dyn FnMut(&mut [u8], u64) -> KResult<usize>) -> KResult<ElfFile> {
    let mut h = [0u8; 64];
    if read_exact(read_at, &mut h, 0)? < 64 || !is_elf(&h) {
        return Err(Errno::ENOEXEC);
    }
    // 64-bit, little-endian, version 1, x86-64.
    if h[4] != 2 || h[5] != 1 || h[6] != 1 || u16_at(&h, 18) != 62 {
        return Err(Errno::ENOEXEC);
    }
    let e_type = u16_at(&h, 16);
    if e_type != ET_EXEC && e_type != ET_DYN {
        return Err(Errno::ENOEXEC);
    }
    let entry = u64_at(&h, 24);
    let phoff = u64_at(&h, 32);
    let phentsize = u16_at(&h, 54);
    let phnum = u16_at(&h, 56);
    if phentsize != 56 || phnum == 0 || phnum > 256 {
        return Err(Errno::ENOEXEC);
    }
    let mut ph = vec![0u8; 56 * phnum as usize];
    if read_exact(read_at, &mut ph, phoff)? < ph.len() {
        return Err(Errno::ENOEXEC);
    }
    let mut phdrs = Vec::new();
    let mut interp = None;
    for i in 0..phnum as usize {
        let b = &ph[i * 56..i * 56 + 56];
        let p = ProgramHeader {
            p_type: u32_at(b, 0),
            flags: u32_at(b, 4),
            offset: u64_at(b, 8),
            vaddr: u64_at(b, 16),
            filesz: u64_at(b, 32),
            memsz: u64_at(b, 40),
        };
        if p.p_type == PT_LOAD
            && (p.filesz > p.memsz
                || p.vaddr % PAGE != p.offset % PAGE
                || p.vaddr.checked_add(p.memsz).is_none())
        {
            return Err(Errno::ENOEXEC);
        }
        if p.p_type == PT_INTERP {
            if p.filesz == 0 || p.filesz > 4096 {
                return Err(Errno::ENOEXEC);
            }
            let mut s = vec![0u8; p.filesz as usize];
            if read_exact(read_at, &mut s, p.offset)? < s.len() {
                return Err(Errno::ENOEXEC);
            }
            while s.last() == Some(&0) {
                s.pop();
            }
            interp = Some(s);
        }
        phdrs.push(p);
    }
    if !phdrs.iter().any(|p| p.p_type == PT_LOAD) {
        return Err(Errno::ENOEXEC);
    }
    Ok(ElfFile {
        e_type,
        entry,
        phoff,
        phentsize,
        phnum,
        phdrs,
        interp,
    })
}

fn read_exact(
    read_at: &mut dyn FnMut(&mut [u8], u64) -> KResult<usize>,
    buf: &mut [u8],
    off: u64,
) -> KResult<usize> {
    let mut done = 0;
    while done < buf.len() {
        let n = read_at(&mut buf[done..], off + done as u64)?;
        if n == 0 {
            break;
        }
        done += n;
    }
    Ok(done)
}

/// Where an image landed.
#[derive(Clone, Copy, Debug, Default)]
pub struct Loaded {
    pub bias: u64,
    pub entry: u64,
    pub phdr: u64,
    pub end: u64,
    pub exec_stack: bool,
}

fn prot_of(flags: u32) -> i32 {
    let mut p = 0;
    if flags & 4 != 0 {
        p |= PROT_READ;
    }
    if flags & 2 != 0 {
        p |= PROT_WRITE;
    }
    if flags & 1 != 0 {
        p |= PROT_EXEC;
    }
    p
}

/// Maps every PT_LOAD of `elf`. `main` chooses the PIE base of an executable;
/// otherwise (an interpreter) the image goes wherever there is room.
pub fn load(
    mm: &MemoryManager,
    ctx: &mut dyn Context,
    elf: &ElfFile,
    read_at: &mut dyn FnMut(&mut [u8], u64) -> KResult<usize>,
    name: &str,
    main: bool,
) -> KResult<Loaded> {
    let loads: Vec<&ProgramHeader> = elf.phdrs.iter().filter(|p| p.p_type == PT_LOAD).collect();
    let lo = page_down(loads.iter().map(|p| p.vaddr).min().unwrap_or(0));
    let hi = page_up(loads.iter().map(|p| p.vaddr + p.memsz).max().unwrap_or(0));
    if hi <= lo {
        return Err(Errno::ENOEXEC);
    }
    let span = hi - lo;
    // Reserve the whole span so the gaps between segments stay ours.
    let bias = if elf.e_type == ET_DYN {
        let want = if main { ET_DYN_BASE } else { 0 };
        let at = mm.map(
            ctx,
            MapRequest {
                addr: want,
                len: span,
                prot: 0,
                fixed: false,
                noreplace: false,
                shared: false,
                growsdown: false,
            },
            Backing::Anon,
        )?;
        at - lo
    } else {
        0
    };
    let name: std::sync::Arc<str> = name.into();
    for p in &loads {
        let start = page_down(bias + p.vaddr);
        let end = page_up(bias + p.vaddr + p.memsz);
        let file_start = p.offset - ((bias + p.vaddr) - start);
        let file_len = (bias + p.vaddr + p.filesz) - start;
        let mut buf = vec![0u8; file_len as usize];
        let got = read_exact(read_at, &mut buf, file_start)?;
        buf.truncate(got);
        mm.map(
            ctx,
            MapRequest {
                addr: start,
                len: end - start,
                prot: prot_of(p.flags),
                fixed: true,
                noreplace: false,
                shared: false,
                growsdown: false,
            },
            Backing::Anon,
        )?;
        mm.copy_out_force(start, &buf)?;
        mm.set_name(start, name.clone(), file_start);
    }
    let phdr = match elf.phdrs.iter().find(|p| p.p_type == PT_PHDR) {
        Some(p) => bias + p.vaddr,
        None => {
            // The program headers inside the first segment that holds them.
            let seg = loads
                .iter()
                .find(|p| p.offset <= elf.phoff && elf.phoff < p.offset + p.filesz);
            seg.map(|p| bias + p.vaddr + (elf.phoff - p.offset))
                .unwrap_or(0)
        }
    };
    let exec_stack = elf
        .phdrs
        .iter()
        .find(|p| p.p_type == PT_GNU_STACK)
        .is_some_and(|p| p.flags & 1 != 0);
    Ok(Loaded {
        bias,
        entry: bias + elf.entry,
        phdr,
        end: bias + hi,
        exec_stack,
    })
}
