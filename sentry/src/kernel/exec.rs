//! execve: replace the calling process's image. Everything that can fail is
//! done on a fresh address space first; only then is the old one dropped.

use super::signal::{AltStack, SigAction, SIG_IGN};
use super::task::{initial_regs, lock, CurrentTask, Task};
use crate::errno::{Errno, KResult};
use crate::loader::{elf, stack};
use crate::mm::MemoryManager;
use crate::vfs::File;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

const MAX_INTERP_DEPTH: usize = 4;

/// A loaded image waiting to be installed.
pub struct Image {
    pub ctx: Box<dyn platform::Context>,
    pub mm: Arc<MemoryManager>,
    pub entry: u64,
    pub sp: u64,
}

fn reader<'a>(t: &'a Task, f: &'a Arc<File>) -> impl FnMut(&mut [u8], u64) -> KResult<usize> + 'a {
    move |buf, off| f.ops.read(t, f, buf, off)
}

/// Loads `path` (with `#!` scripts) into a new address space.
pub fn load_image(
    t: &Task,
    dirfd: i32,
    path: &[u8],
    mut argv: Vec<Vec<u8>>,
    envp: &[Vec<u8>],
    empty_ok: bool,
) -> KResult<(Image, Vec<u8>)> {
    let mut path = path.to_vec();
    let mut file = t.open_for_exec(dirfd, &path, empty_ok)?;
    let execfn = path.clone();
    for depth in 0.. {
        let mut head = [0u8; 256];
        let n = file.ops.read(t, &file, &mut head, 0)?;
        let head = &head[..n];
        if head.starts_with(b"#!") {
            if depth >= MAX_INTERP_DEPTH {
                return Err(Errno::ELOOP);
            }
            let line_end = head.iter().position(|&c| c == b'\n').unwrap_or(head.len());
            let line = &head[2..line_end];
            let line: Vec<u8> = line
                .iter()
                .copied()
                .skip_while(|c| *c == b' ' || *c == b'\t')
                .collect();
            let mut parts = line.splitn(2, |&c| c == b' ' || c == b'\t');
            let interp = parts.next().unwrap_or(&[]).to_vec();
            if interp.is_empty() {
                return Err(Errno::ENOEXEC);
            }
            let arg: Vec<u8> = parts
                .next()
                .map(|a| a.trim_ascii().to_vec())
                .unwrap_or_default();
            let mut new_argv = vec![interp.clone()];
            if !arg.is_empty() {
                new_argv.push(arg);
            }
            new_argv.push(path.clone());
            new_argv.extend(argv.into_iter().skip(1));
            argv = new_argv;
            path = interp;
            file = t.open_for_exec(libc::AT_FDCWD, &path, false)?;
            continue;
        }
        if !elf::is_elf(head) {
            return Err(Errno::ENOEXEC);
        }
        break;
    }
    let kernel = &t.kernel;
    let main = elf::parse(&mut reader(t, &file))?;
    let mut ctx = kernel.platform.new_address_space().map_err(|e| {
        tracing::error!("new address space: {e}");
        Errno::ENOMEM
    })?;
    let mm = Arc::new(MemoryManager::new(
        kernel.mf.clone(),
        kernel.platform.max_user_address(),
    ));
    let exe_name = String::from_utf8_lossy(
        &file
            .dentry
            .as_ref()
            .map(|d| d.path())
            .unwrap_or_else(|| path.clone()),
    )
    .into_owned();
    let loaded = elf::load(
        &mm,
        ctx.as_mut(),
        &main,
        &mut reader(t, &file),
        &exe_name,
        true,
    )?;
    let mut entry = loaded.entry;
    let mut base = 0;
    if let Some(interp) = &main.interp {
        let ifile = t
            .open_for_exec(libc::AT_FDCWD, interp, false)
            .map_err(|e| if e == Errno::EACCES { e } else { Errno::ENOENT })?;
        let ielf = elf::parse(&mut reader(t, &ifile))?;
        let iname = String::from_utf8_lossy(
            &ifile
                .dentry
                .as_ref()
                .map(|d| d.path())
                .unwrap_or_else(|| interp.clone()),
        )
        .into_owned();
        let il = elf::load(
            &mm,
            ctx.as_mut(),
            &ielf,
            &mut reader(t, &ifile),
            &iname,
            false,
        )?;
        entry = il.entry;
        base = il.bias;
    }
    {
        let mut st = mm.lock();
        st.brk_start = crate::mm::memory_file::page_up(loaded.end);
        st.brk = st.brk_start;
        st.exe = Some(exe_name.into());
    }
    let creds = t.creds();
    let auxv = vec![
        (stack::AT_PHDR, loaded.phdr),
        (stack::AT_PHENT, 56),
        (stack::AT_PHNUM, main.phnum as u64),
        (stack::AT_PAGESZ, 4096),
        (stack::AT_BASE, base),
        (stack::AT_FLAGS, 0),
        (stack::AT_ENTRY, loaded.entry),
        (stack::AT_UID, creds.ruid as u64),
        (stack::AT_EUID, creds.euid as u64),
        (stack::AT_GID, creds.rgid as u64),
        (stack::AT_EGID, creds.egid as u64),
        (stack::AT_SECURE, 0),
        (stack::AT_HWCAP, hwcap(libc::AT_HWCAP)),
        (stack::AT_HWCAP2, hwcap(libc::AT_HWCAP2)),
        (stack::AT_CLKTCK, 100),
        (stack::AT_MINSIGSTKSZ, 2048),
    ];
    let layout = stack::build(&mm, ctx.as_mut(), &argv, envp, &execfn, auxv)?;
    {
        let mut st = mm.lock();
        st.arg_start = layout.arg_start;
        st.arg_end = layout.arg_end;
        st.env_start = layout.env_start;
        st.env_end = layout.env_end;
        st.auxv = layout.auxv.clone();
    }
    let comm = argv_comm(&path);
    Ok((
        Image {
            ctx,
            mm,
            entry,
            sp: layout.sp,
        },
        comm,
    ))
}

fn hwcap(kind: libc::c_ulong) -> u64 {
    // SAFETY: getauxval has no preconditions.
    unsafe { libc::getauxval(kind) }
}

fn argv_comm(path: &[u8]) -> Vec<u8> {
    let base = path.rsplit(|&c| c == b'/').next().unwrap_or(path);
    base.iter().take(15).copied().collect()
}

impl CurrentTask {
    pub fn execve(
        &mut self,
        dirfd: i32,
        path: &[u8],
        argv: Vec<Vec<u8>>,
        envp: Vec<Vec<u8>>,
        empty_ok: bool,
    ) -> KResult<()> {
        let (img, comm) = load_image(&self.task, dirfd, path, argv, &envp, empty_ok)?;
        // Point of no return: other threads go first.
        self.kill_other_threads();
        self.replace_context(img.ctx);
        self.mm = img.mm.clone();
        *lock(&self.task.mm) = img.mm;
        self.fd_table().close_on_exec();
        // Handlers are reset; ignored signals stay ignored. A handler table
        // shared with another process is unshared first.
        let old = lock(&self.tg.sighand).clone();
        let mut acts = *lock(&old);
        for a in acts.iter_mut() {
            if a.handler != SIG_IGN {
                *a = SigAction::default();
            }
        }
        *lock(&self.tg.sighand) = Arc::new(Mutex::new(acts));
        {
            let mut s = lock(&self.sig);
            s.altstack = AltStack {
                flags: super::signal::SS_DISABLE,
                ..Default::default()
            };
        }
        *lock(&self.comm) = comm;
        {
            let mut c = lock(&self.creds);
            let (ruid, euid) = (c.ruid, c.euid);
            c.caps.on_exec(ruid, euid);
        }
        self.clear_child_tid.store(0, Ordering::SeqCst);
        self.robust_list.store(0, Ordering::SeqCst);
        self.release_vfork_parent();
        self.regs = initial_regs(img.entry, img.sp);
        Ok(())
    }

    /// de_thread: every other thread of the group exits before exec goes on.
    fn kill_other_threads(&mut self) {
        let others: Vec<Arc<Task>> = self
            .kernel
            .ts()
            .threads_of(self.tgid())
            .into_iter()
            .filter(|t| t.tid != self.tid)
            .collect();
        if others.is_empty() {
            return;
        }
        for t in &others {
            t.killed.store(true, Ordering::SeqCst);
            t.kick();
        }
        let me = self.tid;
        let tgid = self.tgid();
        let kernel = self.kernel.clone();
        loop {
            let left = kernel
                .ts()
                .procs
                .get(&tgid)
                .map(|e| e.threads.iter().any(|&t| t != me))
                .unwrap_or(false);
            if !left {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}
