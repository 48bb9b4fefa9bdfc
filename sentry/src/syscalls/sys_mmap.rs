//! Memory system calls: mmap/munmap/mprotect/brk/mremap/madvise/msync.

use super::sys_file::get_file;
use super::Args;
use crate::errno::{Errno, KResult};
use crate::kernel::task::CurrentTask;
use crate::mm::memory_file::{page_up, PAGE};
use crate::mm::{Backing, MapRequest};

const PROT_MASK: u64 = (libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC) as u64;

pub fn mmap(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let (addr, len, prot, flags, fd, off) = (a[0], a[1], a[2], a[3] as i32, a[4] as i32, a[5]);
    if len == 0 || off % PAGE != 0 || prot & !(PROT_MASK | libc::PROT_GROWSDOWN as u64) != 0 {
        return Err(Errno::EINVAL);
    }
    let typ = flags & libc::MAP_TYPE;
    let shared = match typ {
        libc::MAP_SHARED | libc::MAP_SHARED_VALIDATE => true,
        libc::MAP_PRIVATE => false,
        _ => return Err(Errno::EINVAL),
    };
    if page_up(len) == 0 || len > (1 << 46) {
        return Err(Errno::ENOMEM);
    }
    let req = MapRequest {
        addr,
        len,
        prot: (prot & PROT_MASK) as i32,
        fixed: flags & libc::MAP_FIXED != 0,
        noreplace: flags & libc::MAP_FIXED_NOREPLACE != 0,
        shared,
        growsdown: flags & libc::MAP_GROWSDOWN != 0,
    };
    let mm = t.mm.clone();
    if flags & libc::MAP_ANONYMOUS != 0 {
        if shared {
            // Shared anonymous memory: its own extent, kept across fork.
            let ext =
                std::sync::Arc::new(crate::mm::memory_file::Extent::new(&mm.mf, page_up(len))?);
            return mm.map(t.ctx.as_mut(), req, Backing::Shared(ext, 0));
        }
        return mm.map(t.ctx.as_mut(), req, Backing::Anon);
    }
    let f = get_file(t, fd as u64)?;
    if !f.readable() || (shared && prot & libc::PROT_WRITE as u64 != 0 && !f.writable()) {
        return Err(Errno::EACCES);
    }
    let st = f.ops.stat()?;
    if st.file_type() != libc::S_IFREG && st.file_type() != libc::S_IFCHR {
        return Err(Errno::ENODEV);
    }
    // Executable mappings of files on a noexec mount.
    if prot & libc::PROT_EXEC as u64 != 0 {
        if let Some(d) = &f.dentry {
            if t.kernel.vfs.flags_of(d).noexec {
                return Err(Errno::EPERM);
            }
        }
    }
    let name: std::sync::Arc<str> = f
        .dentry
        .as_ref()
        .map(|d| String::from_utf8_lossy(&d.path()).into_owned())
        .unwrap_or_default()
        .into();
    let task = t.task.clone();
    let f2 = f.clone();
    let mut fill = move |buf: &mut [u8], o: u64| -> KResult<usize> {
        match f2.ops.read(&task, &f2, buf, o) {
            Ok(n) => Ok(n),
            // Devices like /dev/zero read as zeros.
            Err(e) if e == Errno::EINVAL => Ok(0),
            Err(e) => Err(e),
        }
    };
    // Files whose pages can live in the memory file (tmpfs) share them
    // with every MAP_SHARED mapping; others get a copy.
    if shared {
        if let Some(runs) = f.ops.shared_mapping(off, len) {
            let runs = runs?;
            return mm.map_shared_file(t.ctx.as_mut(), req, runs, name, off);
        }
    }
    // File contents are copied in: shared writable mappings of files that
    // are not on tmpfs are not written back (see the compatibility table).
    mm.map(t.ctx.as_mut(), req, Backing::File(&mut fill, name, off))
}

pub fn munmap(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let mm = t.mm.clone();
    mm.unmap(t.ctx.as_mut(), a[0], a[1]).map(|_| 0)
}

pub fn mprotect(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    if a[2] & !(PROT_MASK | (libc::PROT_GROWSDOWN | libc::PROT_GROWSUP) as u64) != 0 {
        return Err(Errno::EINVAL);
    }
    let mm = t.mm.clone();
    mm.protect(t.ctx.as_mut(), a[0], a[1], (a[2] & PROT_MASK) as i32)
        .map(|_| 0)
}

pub fn brk(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let mm = t.mm.clone();
    Ok(mm.brk(t.ctx.as_mut(), a[0]))
}

pub fn mremap(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    let flags = a[3] as i32;
    if flags & !(libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED | 4) != 0 {
        return Err(Errno::EINVAL);
    }
    if flags & 4 != 0 {
        // MREMAP_DONTUNMAP
        return Err(Errno::EINVAL);
    }
    let fixed = if flags & libc::MREMAP_FIXED != 0 {
        if flags & libc::MREMAP_MAYMOVE == 0 {
            return Err(Errno::EINVAL);
        }
        Some(a[4])
    } else {
        None
    };
    let mm = t.mm.clone();
    mm.remap(
        t.ctx.as_mut(),
        a[0],
        a[1],
        a[2],
        flags & libc::MREMAP_MAYMOVE != 0,
        fixed,
    )
}

pub fn madvise(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    if a[0] % PAGE != 0 {
        return Err(Errno::EINVAL);
    }
    match a[2] as i32 {
        libc::MADV_DONTNEED => t.mm.dontneed(a[0], a[1]).map(|_| 0),
        // Hints with no effect on semantics.
        libc::MADV_NORMAL
        | libc::MADV_RANDOM
        | libc::MADV_SEQUENTIAL
        | libc::MADV_WILLNEED
        | libc::MADV_FREE
        | libc::MADV_HUGEPAGE
        | libc::MADV_NOHUGEPAGE
        | libc::MADV_DONTDUMP
        | libc::MADV_DODUMP
        | libc::MADV_MERGEABLE
        | libc::MADV_UNMERGEABLE
        | libc::MADV_DONTFORK
        | libc::MADV_DOFORK => Ok(0),
        _ => Err(Errno::EINVAL),
    }
}

pub fn msync(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    if a[0] % PAGE != 0 || a[2] & !7 != 0 {
        return Err(Errno::EINVAL);
    }
    let st = t.mm.lock();
    let end = a[0].saturating_add(page_up(a[1]));
    let mut pos = a[0];
    while pos < end {
        match st.vma_at(pos) {
            Some(v) => pos = v.end,
            None => return Err(Errno::ENOMEM),
        }
    }
    Ok(0)
}

pub fn mincore(t: &mut CurrentTask, a: &Args) -> KResult<u64> {
    if a[0] % PAGE != 0 {
        return Err(Errno::EINVAL);
    }
    let pages = page_up(a[1]) / PAGE;
    {
        let st = t.mm.lock();
        let mut pos = a[0];
        while pos < a[0] + pages * PAGE {
            match st.vma_at(pos) {
                Some(v) => pos = v.end,
                None => return Err(Errno::ENOMEM),
            }
        }
    }
    // Everything mapped is resident from the guest's point of view.
    t.mm.copy_out(a[2], &vec![1u8; pages as usize])?;
    Ok(0)
}

pub fn mlock(_t: &mut CurrentTask, _a: &Args) -> KResult<u64> {
    // Guest memory is never swapped by us; locking has nothing to do.
    Ok(0)
}
