//! The memory file: one memfd holding every page of guest memory.
//!
//! The sentry maps the whole file once, so it reads and writes guest memory
//! with plain loads and stores; platforms map ranges of the same file into the
//! guest's address space. Ranges are handed out page-aligned and zeroed.

use crate::errno::{Errno, KResult};
use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Mutex;

pub const PAGE: u64 = 4096;
/// How much of the file the sentry's view reserves address space for.
const VIEW_SIZE: u64 = 1 << 40;
const GROW_STEP: u64 = 64 << 20;

pub fn page_up(x: u64) -> u64 {
    (x + PAGE - 1) & !(PAGE - 1)
}

pub fn page_down(x: u64) -> u64 {
    x & !(PAGE - 1)
}

pub struct MemoryFile {
    fd: OwnedFd,
    base: *mut u8,
    alloc: Mutex<Allocator>,
}

// SAFETY: `base` is a fixed shared mapping valid for the life of the
// MemoryFile; concurrent access to guest memory is the guest's own business,
// and allocator state is behind a Mutex.
unsafe impl Send for MemoryFile {}
// SAFETY: as above.
unsafe impl Sync for MemoryFile {}

struct Allocator {
    size: u64,
    /// Free ranges: start → length, coalesced.
    free: BTreeMap<u64, u64>,
}

impl MemoryFile {
    pub fn new() -> anyhow::Result<MemoryFile> {
        // SAFETY: memfd_create with a static NUL-terminated name.
        let raw = unsafe { libc::memfd_create(c"sentry-memory".as_ptr(), libc::MFD_CLOEXEC) };
        if raw < 0 {
            anyhow::bail!("memfd_create: {}", std::io::Error::last_os_error());
        }
        // SAFETY: raw is a fresh fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: a new shared mapping of our memfd at a kernel-chosen address;
        // pages past EOF are never touched because offsets come from `allocate`.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                VIEW_SIZE as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_NORESERVE,
                fd.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            anyhow::bail!(
                "mapping the memory file: {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(MemoryFile {
            fd,
            base: base as *mut u8,
            alloc: Mutex::new(Allocator {
                size: 0,
                free: BTreeMap::new(),
            }),
        })
    }

    /// Bytes of host memory the file holds now (allocated pages).
    pub fn committed_bytes(&self) -> u64 {
        // SAFETY: fstat(2) of our own fd into a zeroed, writable struct.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { libc::fstat(self.fd.as_raw_fd(), &mut st) } != 0 {
            return 0;
        }
        (st.st_blocks as u64).saturating_mul(512)
    }

    pub fn fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// Allocates `len` (page-multiple) zeroed bytes; returns the file offset.
    pub fn allocate(&self, len: u64) -> KResult<u64> {
        let len = page_up(len.max(PAGE));
        let mut a = self.alloc.lock().unwrap_or_else(|p| p.into_inner());
        let found = a
            .free
            .iter()
            .find(|(_, l)| **l >= len)
            .map(|(o, l)| (*o, *l));
        if let Some((off, l)) = found {
            a.free.remove(&off);
            if l > len {
                a.free.insert(off + len, l - len);
            }
            return Ok(off);
        }
        let off = a.size;
        let new_size = page_up(off + len).div_ceil(GROW_STEP) * GROW_STEP;
        if new_size > VIEW_SIZE {
            return Err(Errno::ENOMEM);
        }
        // SAFETY: ftruncate on our own memfd.
        if unsafe { libc::ftruncate(self.fd.as_raw_fd(), new_size as i64) } < 0 {
            return Err(Errno::ENOMEM);
        }
        if new_size > off + len {
            Self::insert_free(&mut a.free, off + len, new_size - off - len);
        }
        a.size = new_size;
        Ok(off)
    }

    /// Returns a range to the allocator; its pages are released (and read
    /// back as zeros when handed out again).
    pub fn free(&self, off: u64, len: u64) {
        let len = page_up(len.max(PAGE));
        self.decommit(off, len);
        let mut a = self.alloc.lock().unwrap_or_else(|p| p.into_inner());
        Self::insert_free(&mut a.free, off, len);
    }

    /// Drops the pages of a range without freeing it (they read as zeros).
    pub fn decommit(&self, off: u64, len: u64) {
        // SAFETY: punching a hole in our own memfd.
        unsafe {
            libc::fallocate(
                self.fd.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                off as i64,
                len as i64,
            );
        }
    }

    fn insert_free(free: &mut BTreeMap<u64, u64>, mut off: u64, mut len: u64) {
        if let Some((&po, &pl)) = free.range(..off).next_back() {
            if po + pl == off {
                free.remove(&po);
                off = po;
                len += pl;
            }
        }
        if let Some(&nl) = free.get(&(off + len)) {
            free.remove(&(off + len));
            len += nl;
        }
        free.insert(off, len);
    }

    /// The sentry's pointer to file offset `off`.
    pub fn ptr(&self, off: u64) -> *mut u8 {
        // SAFETY: offsets handed to callers are < VIEW_SIZE.
        unsafe { self.base.add(off as usize) }
    }

    /// Copies `len` bytes from offset `src` to `dst`, skipping holes so
    /// untouched memory stays unallocated.
    pub fn copy_range(&self, src: u64, dst: u64, len: u64) {
        let end = src + len;
        let mut pos = src;
        while pos < end {
            // SAFETY: lseek on our own memfd.
            let data = unsafe { libc::lseek(self.fd.as_raw_fd(), pos as i64, libc::SEEK_DATA) };
            if data < 0 || data as u64 >= end {
                break;
            }
            let data = data as u64;
            // SAFETY: as above.
            let hole = unsafe { libc::lseek(self.fd.as_raw_fd(), data as i64, libc::SEEK_HOLE) };
            let hole = if hole < 0 {
                end
            } else {
                (hole as u64).min(end)
            };
            // SAFETY: both ranges lie inside allocated parts of the view and
            // do not overlap (distinct allocations).
            unsafe {
                std::ptr::copy_nonoverlapping(
                    self.ptr(data),
                    self.ptr(dst + (data - src)),
                    (hole - data) as usize,
                );
            }
            pos = hole;
        }
    }
}

impl Drop for MemoryFile {
    fn drop(&mut self) {
        // SAFETY: unmapping the view we created.
        unsafe { libc::munmap(self.base as *mut libc::c_void, VIEW_SIZE as usize) };
    }
}

static GLOBAL: std::sync::OnceLock<std::sync::Arc<MemoryFile>> = std::sync::OnceLock::new();

/// Makes `mf` the sandbox's memory file for users that are not tied to an
/// address space (tmpfs pages shared with mappings). Set once at boot.
pub fn set_global(mf: std::sync::Arc<MemoryFile>) {
    let _ = GLOBAL.set(mf);
}

/// The sandbox's memory file (a private one is made on first use where
/// boot did not set it, as in unit tests).
pub fn global() -> KResult<std::sync::Arc<MemoryFile>> {
    if let Some(m) = GLOBAL.get() {
        return Ok(m.clone());
    }
    let mf = MemoryFile::new().map_err(|_| Errno::ENOMEM)?;
    Ok(GLOBAL.get_or_init(|| std::sync::Arc::new(mf)).clone())
}

/// An allocated range of the memory file, freed when the last user drops it.
pub struct Extent {
    pub mf: std::sync::Arc<MemoryFile>,
    pub off: u64,
    pub len: u64,
}

impl Extent {
    pub fn new(mf: &std::sync::Arc<MemoryFile>, len: u64) -> KResult<Extent> {
        let len = page_up(len.max(PAGE));
        let off = mf.allocate(len)?;
        Ok(Extent {
            mf: mf.clone(),
            off,
            len,
        })
    }
}

impl Extent {
    /// A placeholder of no memory: the backing of reserved (PROT_NONE,
    /// never committed) mappings, which the guest cannot touch.
    pub fn none(mf: &std::sync::Arc<MemoryFile>) -> Extent {
        Extent {
            mf: mf.clone(),
            off: 0,
            len: 0,
        }
    }
}

impl Drop for Extent {
    fn drop(&mut self) {
        if self.len != 0 {
            self.mf.free(self.off, self.len);
        }
    }
}
