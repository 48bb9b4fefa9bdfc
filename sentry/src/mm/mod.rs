//! The guest address space, owned by the sentry: VMAs, brk, mmap/munmap/
//! mprotect/mremap, copy-in/copy-out, and copying on fork.
//!
//! Every VMA is backed by a range of the memory file. Changes are mirrored
//! into the platform through the calling task's context, under the mm lock so
//! the host view follows the same order as ours.

pub mod memory_file;

use crate::errno::{Errno, KResult};
use memory_file::{page_down, page_up, Extent, MemoryFile, PAGE};
use platform::Context;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

pub const PROT_READ: i32 = libc::PROT_READ;
pub const PROT_WRITE: i32 = libc::PROT_WRITE;
pub const PROT_EXEC: i32 = libc::PROT_EXEC;

#[derive(Clone)]
pub struct Vma {
    pub start: u64,
    pub end: u64,
    pub prot: i32,
    pub shared: bool,
    pub ext: Arc<Extent>,
    /// Offset of `start` inside `ext`.
    pub ext_off: u64,
    /// What /proc/pid/maps shows (file path, "[stack]", "[heap]").
    pub name: Option<Arc<str>>,
    pub file_off: u64,
    pub growsdown: bool,
    /// Address space only (anonymous PROT_NONE never made accessible):
    /// no memory behind it and nothing mapped on the host, so huge
    /// reservations (InnoDB's buffer pool, language runtimes' heaps) cost
    /// nothing. mprotect to an accessible protection gives it memory.
    pub reserved: bool,
}

impl Vma {
    fn file_offset_of(&self, addr: u64) -> u64 {
        self.ext.off + self.ext_off + (addr - self.start)
    }

    /// The same mapping moved to `start`, `len` long (mremap).
    fn moved(self, start: u64, len: u64) -> Vma {
        Vma {
            start,
            end: start + len,
            ..self
        }
    }
}

/// What a new mapping is filled with.
pub enum Backing<'a> {
    /// Zero-filled private or shared anonymous memory.
    Anon,
    /// A private (or, for now, copied) mapping of file content: called with the
    /// buffer to fill and the file offset it starts at; returns bytes filled.
    File(
        &'a mut dyn FnMut(&mut [u8], u64) -> KResult<usize>,
        Arc<str>,
        u64,
    ),
    /// Memory shared with others (a shared memory object).
    Shared(Arc<Extent>, u64),
}

/// Part of a shared file mapping backed by one contiguous range of the
/// memory file (the file's own pages): pages `first..first+n` of the
/// mapping are pages `ext_page..` of `ext`.
pub struct MapRun {
    pub first: u64,
    pub n: u64,
    pub ext: Arc<Extent>,
    pub ext_page: u64,
}

pub struct MmState {
    pub vmas: BTreeMap<u64, Vma>,
    pub brk_start: u64,
    pub brk: u64,
    pub mmap_base: u64,
    pub max_addr: u64,
    pub stack_top: u64,
    pub arg_start: u64,
    pub arg_end: u64,
    pub env_start: u64,
    pub env_end: u64,
    pub auxv: Vec<(u64, u64)>,
    pub exe: Option<Arc<str>>,
}

pub struct MemoryManager {
    pub mf: Arc<MemoryFile>,
    state: Mutex<MmState>,
}

pub struct MapRequest {
    pub addr: u64,
    pub len: u64,
    pub prot: i32,
    pub fixed: bool,
    /// MAP_FIXED_NOREPLACE
    pub noreplace: bool,
    pub shared: bool,
    pub growsdown: bool,
}

impl MemoryManager {
    pub fn new(mf: Arc<MemoryFile>, max_addr: u64) -> MemoryManager {
        let stack_top = max_addr - (16 << 20);
        MemoryManager {
            mf,
            state: Mutex::new(MmState {
                vmas: BTreeMap::new(),
                brk_start: 0,
                brk: 0,
                mmap_base: stack_top - (8 << 20) - (128 << 20),
                max_addr,
                stack_top,
                arg_start: 0,
                arg_end: 0,
                env_start: 0,
                env_end: 0,
                auxv: Vec::new(),
                exe: None,
            }),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, MmState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy for fork: private memory is copied, shared memory shared.
    pub fn fork(&self) -> KResult<MemoryManager> {
        let st = self.lock();
        let mut vmas = BTreeMap::new();
        // Split VMAs of one private extent must keep sharing one new extent.
        let mut copies: Vec<(*const Extent, Arc<Extent>)> = Vec::new();
        for (start, v) in st.vmas.iter() {
            let mut nv = v.clone();
            if !v.shared && !v.reserved {
                let key = Arc::as_ptr(&v.ext);
                let ext = match copies.iter().find(|(k, _)| *k == key) {
                    Some((_, e)) => e.clone(),
                    None => {
                        let e = Arc::new(Extent::new(&self.mf, v.ext.len)?);
                        copies.push((key, e.clone()));
                        e
                    }
                };
                self.mf
                    .copy_range(v.ext.off + v.ext_off, ext.off + v.ext_off, v.end - v.start);
                nv.ext = ext;
            }
            vmas.insert(*start, nv);
        }
        Ok(MemoryManager {
            mf: self.mf.clone(),
            state: Mutex::new(MmState {
                vmas,
                brk_start: st.brk_start,
                brk: st.brk,
                mmap_base: st.mmap_base,
                max_addr: st.max_addr,
                stack_top: st.stack_top,
                arg_start: st.arg_start,
                arg_end: st.arg_end,
                env_start: st.env_start,
                env_end: st.env_end,
                auxv: st.auxv.clone(),
                exe: st.exe.clone(),
            }),
        })
    }

    /// Mirrors every VMA into a fresh address space.
    pub fn sync_all(&self, ctx: &mut dyn Context) -> KResult<()> {
        let st = self.lock();
        for v in st.vmas.values().filter(|v| !v.reserved) {
            ctx.map(v.start, v.end - v.start, v.prot, v.ext.off + v.ext_off)
                .map_err(host_err)?;
        }
        Ok(())
    }

    pub fn map(&self, ctx: &mut dyn Context, req: MapRequest, backing: Backing) -> KResult<u64> {
        let len = page_up(req.len);
        if len == 0 || req.len > (1 << 46) {
            return Err(Errno::EINVAL);
        }
        let mut st = self.lock();
        let addr = st.place(&req, len)?;
        let reserved = matches!(backing, Backing::Anon) && req.prot == 0 && !req.shared;
        let (ext, ext_off, name, file_off) = match backing {
            Backing::Anon if reserved => (Arc::new(Extent::none(&self.mf)), 0, None, 0),
            Backing::Anon => (Arc::new(Extent::new(&self.mf, len)?), 0, None, 0),
            Backing::Shared(ext, off) => {
                if off + len > ext.len {
                    return Err(Errno::EINVAL);
                }
                (ext, off, None, off)
            }
            Backing::File(fill, name, foff) => {
                let ext = Extent::new(&self.mf, len)?;
                // SAFETY: the extent was just allocated for us; nobody else
                // sees it yet.
                let buf =
                    unsafe { std::slice::from_raw_parts_mut(self.mf.ptr(ext.off), len as usize) };
                let mut done = 0usize;
                while done < buf.len() {
                    let n = fill(&mut buf[done..], foff + done as u64)?;
                    if n == 0 {
                        break;
                    }
                    done += n;
                }
                (Arc::new(ext), 0, Some(name), foff)
            }
        };
        st.remove_range(&self.mf, addr, len);
        if reserved {
            // Whatever was there goes; nothing replaces it on the host.
            ctx.unmap(addr, len).map_err(host_err)?;
        } else {
            ctx.map(addr, len, req.prot, ext.off + ext_off)
                .map_err(host_err)?;
        }
        st.vmas.insert(
            addr,
            Vma {
                start: addr,
                end: addr + len,
                prot: req.prot,
                shared: req.shared,
                ext,
                ext_off,
                name,
                file_off,
                growsdown: req.growsdown,
                reserved,
            },
        );
        Ok(addr)
    }

    /// A MAP_SHARED mapping of a file whose pages live in the memory file
    /// (tmpfs): each run becomes one VMA mapping the file's own pages, so
    /// every process mapping the file, and read/write on it, see the same
    /// bytes.
    pub fn map_shared_file(
        &self,
        ctx: &mut dyn Context,
        req: MapRequest,
        runs: Vec<MapRun>,
        name: Arc<str>,
        file_off: u64,
    ) -> KResult<u64> {
        let len = page_up(req.len);
        if len == 0 || req.len > (1 << 46) {
            return Err(Errno::EINVAL);
        }
        if runs.iter().map(|r| r.n).sum::<u64>() * PAGE != len {
            return Err(Errno::EINVAL);
        }
        let mut st = self.lock();
        let addr = st.place(&req, len)?;
        st.remove_range(&self.mf, addr, len);
        for r in runs {
            let start = addr + r.first * PAGE;
            let ext_off = r.ext_page * PAGE;
            ctx.map(start, r.n * PAGE, req.prot, r.ext.off + ext_off)
                .map_err(host_err)?;
            st.vmas.insert(
                start,
                Vma {
                    start,
                    end: start + r.n * PAGE,
                    prot: req.prot,
                    shared: true,
                    ext: r.ext,
                    ext_off,
                    name: Some(name.clone()),
                    file_off: file_off + r.first * PAGE,
                    growsdown: false,
                    reserved: false,
                },
            );
        }
        Ok(addr)
    }

    pub fn unmap(&self, ctx: &mut dyn Context, addr: u64, len: u64) -> KResult<()> {
        if addr % PAGE != 0 || len == 0 {
            return Err(Errno::EINVAL);
        }
        let len = page_up(len);
        let mut st = self.lock();
        if addr.checked_add(len).is_none_or(|e| e > st.max_addr) {
            return Err(Errno::EINVAL);
        }
        st.remove_range(&self.mf, addr, len);
        ctx.unmap(addr, len).map_err(host_err)
    }

    pub fn protect(&self, ctx: &mut dyn Context, addr: u64, len: u64, prot: i32) -> KResult<()> {
        if addr % PAGE != 0 {
            return Err(Errno::EINVAL);
        }
        let len = page_up(len);
        let end = addr.checked_add(len).ok_or(Errno::ENOMEM)?;
        let mut st = self.lock();
        if !st.is_mapped(addr, end) {
            return Err(Errno::ENOMEM);
        }
        st.split_at(addr);
        st.split_at(end);
        let keys: Vec<u64> = st.vmas.range(addr..end).map(|(k, _)| *k).collect();
        for k in keys {
            let Some(v) = st.vmas.get_mut(&k) else {
                continue;
            };
            v.prot = prot;
            let n = v.end - v.start;
            if v.reserved {
                if prot == 0 {
                    continue;
                }
                // First access allowed: the reservation gets memory.
                let ext = Arc::new(Extent::new(&self.mf, n)?);
                ctx.map(v.start, n, prot, ext.off).map_err(host_err)?;
                v.ext = ext;
                v.ext_off = 0;
                v.reserved = false;
            } else {
                ctx.protect(v.start, n, prot).map_err(host_err)?;
            }
        }
        Ok(())
    }

    pub fn brk(&self, ctx: &mut dyn Context, new: u64) -> u64 {
        let (start, cur) = {
            let st = self.lock();
            (st.brk_start, st.brk)
        };
        if new < start {
            return cur;
        }
        let old_end = page_up(cur);
        let new_end = page_up(new);
        if new_end > old_end {
            let req = MapRequest {
                addr: old_end,
                len: new_end - old_end,
                prot: PROT_READ | PROT_WRITE,
                fixed: false,
                noreplace: true,
                shared: false,
                growsdown: false,
            };
            match self.map(ctx, req, Backing::Anon) {
                Ok(_) => {
                    let mut st = self.lock();
                    if let Some(v) = st.vmas.get_mut(&old_end) {
                        v.name = Some("[heap]".into());
                    }
                }
                Err(_) => return cur,
            }
        } else if new_end < old_end && self.unmap(ctx, new_end, old_end - new_end).is_err() {
            return cur;
        }
        self.lock().brk = new;
        new
    }

    pub fn remap(
        &self,
        ctx: &mut dyn Context,
        old: u64,
        old_len: u64,
        new_len: u64,
        may_move: bool,
        fixed: Option<u64>,
    ) -> KResult<u64> {
        if old % PAGE != 0 || new_len == 0 {
            return Err(Errno::EINVAL);
        }
        let old_len = page_up(old_len);
        let new_len = page_up(new_len);
        let mut st = self.lock();
        let v = st.vma_at(old).cloned().ok_or(Errno::EFAULT)?;
        if old + old_len > v.end && old_len != 0 {
            return Err(Errno::EFAULT);
        }
        if fixed.is_none() && new_len <= old_len {
            drop(st);
            if new_len < old_len {
                self.unmap(ctx, old + new_len, old_len - new_len)?;
            }
            return Ok(old);
        }
        let in_place = fixed.is_none()
            && st.is_free(old + old_len, new_len - old_len)
            && old + new_len <= st.max_addr;
        let target = if let Some(f) = fixed {
            if f % PAGE != 0 {
                return Err(Errno::EINVAL);
            }
            f
        } else if in_place {
            old
        } else if may_move {
            st.find_free(0, new_len).ok_or(Errno::ENOMEM)?
        } else {
            return Err(Errno::ENOMEM);
        };
        if v.reserved {
            // A reservation moves or grows as address space only.
            st.remove_range(&self.mf, old, old_len);
            ctx.unmap(old, old_len).map_err(host_err)?;
            st.remove_range(&self.mf, target, new_len);
            ctx.unmap(target, new_len).map_err(host_err)?;
            st.vmas.insert(target, v.moved(target, new_len));
            return Ok(target);
        }
        // Private memory that is a whole VMA, alone on its extent, whose
        // extent has room: it keeps its pages where they are (no copy).
        // The room past a VMA's end is zero (never touched, or decommitted
        // when that part was unmapped).
        let rel = old - v.start;
        let fits = v.ext_off + rel + new_len <= v.ext.len;
        // Held by the VMA in the map and by `v`.
        let exclusive = !v.shared && old == v.start && old + old_len == v.end;
        if exclusive && fits && Arc::strong_count(&v.ext) == 2 {
            st.vmas.remove(&old);
            ctx.unmap(old, old_len).map_err(host_err)?;
            st.remove_range(&self.mf, target, new_len);
            ctx.map(target, new_len, v.prot, v.ext.off + v.ext_off)
                .map_err(host_err)?;
            st.vmas.insert(target, v.moved(target, new_len));
            return Ok(target);
        }
        // New backing: shared memory keeps its extent when it fits; private
        // memory is copied into a new extent with as much room again to
        // grow (up to 1 GiB more; untouched memory costs nothing), so a
        // buffer grown by repeated mremap, as realloc does, is copied a
        // logarithmic number of times rather than on every call.
        let (ext, ext_off) = if v.shared && fits {
            (v.ext.clone(), v.ext_off + rel)
        } else {
            let room = if v.shared {
                new_len
            } else {
                new_len.saturating_add(new_len.min(1 << 30))
            };
            let e = Arc::new(Extent::new(&self.mf, room)?);
            self.mf
                .copy_range(v.file_offset_of(old), e.off, old_len.min(new_len));
            (e, 0)
        };
        st.remove_range(&self.mf, old, old_len);
        ctx.unmap(old, old_len).map_err(host_err)?;
        st.remove_range(&self.mf, target, new_len);
        ctx.map(target, new_len, v.prot, ext.off + ext_off)
            .map_err(host_err)?;
        st.vmas.insert(
            target,
            Vma {
                ext,
                ext_off,
                ..v.moved(target, new_len)
            },
        );
        Ok(target)
    }

    /// MADV_DONTNEED: private pages read back as zeros.
    pub fn dontneed(&self, addr: u64, len: u64) -> KResult<()> {
        let st = self.lock();
        let end = addr.saturating_add(page_up(len));
        for v in st.vmas.values() {
            if v.end <= addr || v.start >= end || v.shared || v.reserved {
                continue;
            }
            let s = v.start.max(addr);
            let e = v.end.min(end);
            self.mf.decommit(v.file_offset_of(s), e - s);
        }
        Ok(())
    }

    /// Runs `f` over the memory-file pieces backing `[addr, addr+len)`.
    fn access(
        &self,
        addr: u64,
        len: usize,
        need: i32,
        mut f: impl FnMut(*mut u8, usize, usize),
    ) -> KResult<()> {
        if len == 0 {
            return Ok(());
        }
        let st = self.lock();
        let end = addr.checked_add(len as u64).ok_or(Errno::EFAULT)?;
        let mut pos = addr;
        while pos < end {
            let v = st.vma_at(pos).ok_or(Errno::EFAULT)?;
            if v.prot & need != need || v.reserved {
                return Err(Errno::EFAULT);
            }
            let n = (v.end.min(end) - pos) as usize;
            f(self.mf.ptr(v.file_offset_of(pos)), (pos - addr) as usize, n);
            pos += n as u64;
        }
        Ok(())
    }

    pub fn copy_in(&self, addr: u64, buf: &mut [u8]) -> KResult<()> {
        let dst = buf.as_mut_ptr();
        self.access(addr, buf.len(), PROT_READ, |p, off, n| {
            // SAFETY: p points at n bytes of mapped memory file; dst+off..+n is
            // inside buf.
            unsafe { std::ptr::copy_nonoverlapping(p, dst.add(off), n) }
        })
    }

    pub fn copy_out(&self, addr: u64, buf: &[u8]) -> KResult<()> {
        let src = buf.as_ptr();
        self.access(addr, buf.len(), PROT_WRITE, |p, off, n| {
            // SAFETY: as in copy_in, reversed.
            unsafe { std::ptr::copy_nonoverlapping(src.add(off), p, n) }
        })
    }

    /// Reads ignoring page protection, as Linux's FOLL_FORCE reads of
    /// another process's memory (/proc/<pid>/cmdline, environ): only an
    /// unmapped address fails.
    pub fn copy_in_force(&self, addr: u64, buf: &mut [u8]) -> KResult<()> {
        let dst = buf.as_mut_ptr();
        self.access(addr, buf.len(), 0, |p, off, n| {
            // SAFETY: as in copy_in.
            unsafe { std::ptr::copy_nonoverlapping(p, dst.add(off), n) }
        })
    }

    /// Writes ignoring page protection (the loader filling read-only text).
    pub fn copy_out_force(&self, addr: u64, buf: &[u8]) -> KResult<()> {
        let src = buf.as_ptr();
        self.access(addr, buf.len(), 0, |p, off, n| {
            // SAFETY: as in copy_out.
            unsafe { std::ptr::copy_nonoverlapping(src.add(off), p, n) }
        })
    }

    pub fn read_u64(&self, addr: u64) -> KResult<u64> {
        let mut b = [0u8; 8];
        self.copy_in(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    pub fn read_u32(&self, addr: u64) -> KResult<u32> {
        let mut b = [0u8; 4];
        self.copy_in(addr, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    pub fn write_u32(&self, addr: u64, v: u32) -> KResult<()> {
        self.copy_out(addr, &v.to_le_bytes())
    }

    pub fn write_u64(&self, addr: u64, v: u64) -> KResult<()> {
        self.copy_out(addr, &v.to_le_bytes())
    }

    /// Reads a NUL-terminated string of at most `max` bytes.
    pub fn read_cstring(&self, addr: u64, max: usize) -> KResult<Vec<u8>> {
        let mut out = Vec::new();
        let mut pos = addr;
        loop {
            // Read up to the end of the page so we never touch an unmapped one.
            let chunk = (PAGE - pos % PAGE) as usize;
            let mut buf = vec![0u8; chunk];
            self.copy_in(pos, &mut buf)?;
            if let Some(i) = buf.iter().position(|&b| b == 0) {
                out.extend_from_slice(&buf[..i]);
                return Ok(out);
            }
            out.extend_from_slice(&buf);
            if out.len() > max {
                return Err(Errno::ENAMETOOLONG);
            }
            pos += chunk as u64;
        }
    }

    /// Translates a guest address to a memory-file offset (for futex keys).
    pub fn file_offset(&self, addr: u64) -> KResult<u64> {
        let st = self.lock();
        let v = st.vma_at(addr).ok_or(Errno::EFAULT)?;
        if v.reserved {
            return Err(Errno::EFAULT);
        }
        Ok(v.file_offset_of(addr))
    }

    /// An atomic 32-bit cell of guest memory (futex words).
    pub fn atomic_u32(&self, addr: u64) -> KResult<&std::sync::atomic::AtomicU32> {
        if addr % 4 != 0 {
            return Err(Errno::EINVAL);
        }
        let off = self.file_offset(addr)?;
        // SAFETY: aligned, inside the mapped memory file which outlives self.
        Ok(unsafe { &*(self.mf.ptr(off) as *const std::sync::atomic::AtomicU32) })
    }

    /// Whether `addr` lies in a mapping with `prot` bits (fault triage).
    pub fn prot_at(&self, addr: u64) -> Option<i32> {
        self.lock().vma_at(addr).map(|v| v.prot)
    }
}

fn host_err(e: platform::PlatformError) -> Errno {
    tracing::error!("platform: {e}");
    Errno::ENOMEM
}

impl MmState {
    pub fn vma_at(&self, addr: u64) -> Option<&Vma> {
        self.vmas
            .range(..=addr)
            .next_back()
            .map(|(_, v)| v)
            .filter(|v| addr < v.end)
    }

    fn is_free(&self, addr: u64, len: u64) -> bool {
        let end = addr + len;
        if end > self.max_addr {
            return false;
        }
        if self.vma_at(addr).is_some() {
            return false;
        }
        self.vmas.range(addr..end).next().is_none()
    }

    fn is_mapped(&self, addr: u64, end: u64) -> bool {
        let mut pos = addr;
        while pos < end {
            match self.vma_at(pos) {
                Some(v) => pos = v.end,
                None => return false,
            }
        }
        true
    }

    /// Highest free range of `len` below mmap_base (or at `hint` if free).
    fn find_free(&self, hint: u64, len: u64) -> Option<u64> {
        if hint >= 0x10000 && self.is_free(hint, len) {
            return Some(hint);
        }
        let mut top = self.mmap_base;
        for (_, v) in self.vmas.range(..self.mmap_base).rev() {
            if v.end <= top && top - v.end >= len {
                return Some(top - len);
            }
            top = top.min(v.start);
        }
        if top >= len + 0x10000 {
            return Some(top - len);
        }
        // Above the base, below the stack.
        let mut bottom = self.mmap_base;
        for (_, v) in self.vmas.range(self.mmap_base..) {
            if v.start >= bottom + len {
                return Some(bottom);
            }
            bottom = bottom.max(v.end);
        }
        (bottom + len <= self.max_addr).then_some(bottom)
    }

    /// Where a new mapping of `len` bytes goes: the fixed address asked
    /// for (checked), else a free range near the hint.
    fn place(&self, req: &MapRequest, len: u64) -> KResult<u64> {
        if req.fixed || req.noreplace {
            if req.addr % PAGE != 0 || req.addr.checked_add(len).is_none_or(|e| e > self.max_addr) {
                return Err(Errno::EINVAL);
            }
            if req.noreplace && !self.is_free(req.addr, len) {
                return Err(Errno::EEXIST);
            }
            return Ok(req.addr);
        }
        self.find_free(page_down(req.addr), len)
            .ok_or(Errno::ENOMEM)
    }

    fn split_at(&mut self, addr: u64) {
        let Some(v) = self.vma_at(addr).cloned() else {
            return;
        };
        if v.start == addr {
            return;
        }
        let mut hi = v.clone();
        hi.ext_off += addr - v.start;
        hi.file_off += addr - v.start;
        hi.start = addr;
        if let Some(lo) = self.vmas.get_mut(&v.start) {
            lo.end = addr;
        }
        self.vmas.insert(addr, hi);
    }

    fn remove_range(&mut self, mf: &MemoryFile, addr: u64, len: u64) {
        let end = addr + len;
        self.split_at(addr);
        self.split_at(end);
        let keys: Vec<u64> = self.vmas.range(addr..end).map(|(k, _)| *k).collect();
        for k in keys {
            if let Some(v) = self.vmas.remove(&k) {
                if !v.shared && !v.reserved && Arc::strong_count(&v.ext) > 1 {
                    // Other VMAs still hold this extent: drop our pages now.
                    mf.decommit(v.file_offset_of(v.start), v.end - v.start);
                }
            }
        }
    }
}

impl MemoryManager {
    /// Labels the VMA at `addr` (for /proc/pid/maps).
    pub fn set_name(&self, addr: u64, name: Arc<str>, file_off: u64) {
        if let Some(v) = self.lock().vmas.get_mut(&addr) {
            v.name = Some(name);
            v.file_off = file_off;
        }
    }
}
