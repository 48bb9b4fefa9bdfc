//! The fd table: small integers to open file descriptions, with FD_CLOEXEC.

use super::File;
use crate::errno::{Errno, KResult};
use std::sync::{Arc, Mutex};

#[derive(Clone)]
struct Slot {
    file: Arc<File>,
    cloexec: bool,
}

pub struct FdTable {
    slots: Mutex<Vec<Option<Slot>>>,
}

pub const NR_OPEN_DEFAULT: usize = 1024;

impl FdTable {
    pub fn new() -> Arc<FdTable> {
        Arc::new(FdTable {
            slots: Mutex::new(Vec::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Option<Slot>>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn fork(&self) -> Arc<FdTable> {
        Arc::new(FdTable {
            slots: Mutex::new(self.lock().clone()),
        })
    }

    pub fn get(&self, fd: i32) -> KResult<Arc<File>> {
        if fd < 0 {
            return Err(Errno::EBADF);
        }
        self.lock()
            .get(fd as usize)
            .and_then(|s| s.as_ref())
            .map(|s| s.file.clone())
            .ok_or(Errno::EBADF)
    }

    pub fn get_cloexec(&self, fd: i32) -> KResult<bool> {
        self.lock()
            .get(fd.max(0) as usize)
            .and_then(|s| s.as_ref())
            .map(|s| s.cloexec)
            .ok_or(Errno::EBADF)
    }

    pub fn set_cloexec(&self, fd: i32, on: bool) -> KResult<()> {
        let mut v = self.lock();
        match v.get_mut(fd.max(0) as usize).and_then(|s| s.as_mut()) {
            Some(s) => {
                s.cloexec = on;
                Ok(())
            }
            None => Err(Errno::EBADF),
        }
    }

    /// Installs at the lowest free fd >= `min`.
    pub fn install_from(
        &self,
        file: Arc<File>,
        cloexec: bool,
        min: i32,
        limit: usize,
    ) -> KResult<i32> {
        let mut v = self.lock();
        let mut fd = min.max(0) as usize;
        while fd < v.len() && v[fd].is_some() {
            fd += 1;
        }
        if fd >= limit {
            return Err(Errno::EMFILE);
        }
        if fd >= v.len() {
            v.resize(fd + 1, None);
        }
        v[fd] = Some(Slot { file, cloexec });
        Ok(fd as i32)
    }

    pub fn install(&self, file: Arc<File>, cloexec: bool) -> KResult<i32> {
        self.install_from(file, cloexec, 0, NR_OPEN_DEFAULT)
    }

    /// dup2-style: replaces whatever is at `fd`; the old file is returned so
    /// it is released outside the lock.
    pub fn install_at(
        &self,
        fd: i32,
        file: Arc<File>,
        cloexec: bool,
        limit: usize,
    ) -> KResult<Option<Arc<File>>> {
        if fd < 0 || fd as usize >= limit {
            return Err(Errno::EBADF);
        }
        let mut v = self.lock();
        if fd as usize >= v.len() {
            v.resize(fd as usize + 1, None);
        }
        Ok(v[fd as usize]
            .replace(Slot { file, cloexec })
            .map(|s| s.file))
    }

    pub fn remove(&self, fd: i32) -> KResult<Arc<File>> {
        if fd < 0 {
            return Err(Errno::EBADF);
        }
        let mut v = self.lock();
        v.get_mut(fd as usize)
            .and_then(|s| s.take())
            .map(|s| s.file)
            .ok_or(Errno::EBADF)
    }

    /// Closes every FD_CLOEXEC fd (execve).
    pub fn close_on_exec(&self) {
        let dropped: Vec<Slot> = {
            let mut v = self.lock();
            v.iter_mut()
                .filter(|s| s.as_ref().is_some_and(|s| s.cloexec))
                .filter_map(|s| s.take())
                .collect()
        };
        drop(dropped);
    }

    pub fn close_range(&self, first: u32, last: u32, cloexec_only: bool) {
        let dropped: Vec<Slot> = {
            let mut v = self.lock();
            let end = (last as usize).saturating_add(1).min(v.len());
            let mut out = Vec::new();
            for s in v.iter_mut().take(end).skip(first as usize) {
                if cloexec_only {
                    if let Some(s) = s.as_mut() {
                        s.cloexec = true;
                    }
                } else if let Some(x) = s.take() {
                    out.push(x);
                }
            }
            out
        };
        drop(dropped);
    }

    pub fn fds(&self) -> Vec<i32> {
        self.lock()
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_some())
            .map(|(i, _)| i as i32)
            .collect()
    }

    /// Drops every file (process exit), outside the lock.
    pub fn clear(&self) {
        let v = std::mem::take(&mut *self.lock());
        drop(v);
    }
}
