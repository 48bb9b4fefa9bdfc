//! Futexes. A futex is keyed by the memory-file offset of its word, so
//! private and shared futexes (and futexes in memory shared across fork) all
//! meet in one table without looking at who mapped what.

use super::task::{lock, Task};
use super::waiter::Waiter;
use crate::errno::{Errno, KResult};
use crate::mm::MemoryManager;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

struct FutexWaiter {
    woken: AtomicBool,
    waiter: Arc<Waiter>,
    bitset: u32,
}

#[derive(Default)]
pub struct Futexes {
    queues: Mutex<HashMap<u64, Vec<Arc<FutexWaiter>>>>,
}

impl Futexes {
    pub fn key(&self, mm: &MemoryManager, addr: u64, _shared: bool) -> KResult<u64> {
        if addr % 4 != 0 {
            return Err(Errno::EINVAL);
        }
        mm.file_offset(addr)
    }

    /// FUTEX_WAIT(_BITSET): sleeps while `*addr == val`.
    pub fn wait(
        &self,
        t: &Task,
        mm: &MemoryManager,
        addr: u64,
        val: u32,
        bitset: u32,
        deadline: Option<Instant>,
    ) -> KResult<()> {
        if bitset == 0 {
            return Err(Errno::EINVAL);
        }
        let key = self.key(mm, addr, false)?;
        let cell = mm.atomic_u32(addr)?;
        let w = Arc::new(FutexWaiter {
            woken: AtomicBool::new(false),
            waiter: t.waiter.clone(),
            bitset,
        });
        {
            let mut q = lock(&self.queues);
            if cell.load(Ordering::SeqCst) != val {
                return Err(Errno::EAGAIN);
            }
            q.entry(key).or_default().push(w.clone());
        }
        let r = t.block_until(&[], &[], deadline, || {
            w.woken.load(Ordering::SeqCst).then_some(Ok(()))
        });
        if r.is_err() {
            let mut q = lock(&self.queues);
            for v in q.values_mut() {
                v.retain(|x| !Arc::ptr_eq(x, &w));
            }
            q.retain(|_, v| !v.is_empty());
            drop(q);
            if w.woken.load(Ordering::SeqCst) {
                return Ok(());
            }
        }
        r
    }

    /// Wakes up to `n` waiters on `key` whose bitset intersects `bitset`.
    pub fn wake(&self, key: u64, n: u32, bitset: u32) -> u32 {
        let mut q = lock(&self.queues);
        Self::wake_locked(&mut q, key, n, bitset)
    }

    fn wake_locked(
        q: &mut HashMap<u64, Vec<Arc<FutexWaiter>>>,
        key: u64,
        n: u32,
        bitset: u32,
    ) -> u32 {
        let Some(v) = q.get_mut(&key) else { return 0 };
        let mut woken = 0;
        v.retain(|w| {
            if woken < n && w.bitset & bitset != 0 {
                w.woken.store(true, Ordering::SeqCst);
                w.waiter.notify();
                woken += 1;
                false
            } else {
                true
            }
        });
        if v.is_empty() {
            q.remove(&key);
        }
        woken
    }

    /// FUTEX_(CMP_)REQUEUE: wakes `nwake` on `from`, moves up to `nreq` to `to`.
    pub fn requeue(
        &self,
        mm: &MemoryManager,
        from: u64,
        to: u64,
        nwake: u32,
        nreq: u32,
        cmp: Option<(u64, u32)>,
    ) -> KResult<u32> {
        let mut q = lock(&self.queues);
        if let Some((addr, val)) = cmp {
            if mm.atomic_u32(addr)?.load(Ordering::SeqCst) != val {
                return Err(Errno::EAGAIN);
            }
        }
        let woken = Self::wake_locked(&mut q, from, nwake, u32::MAX);
        let mut moved = Vec::new();
        if let Some(v) = q.get_mut(&from) {
            let k = (nreq as usize).min(v.len());
            moved = v.drain(..k).collect();
            if v.is_empty() {
                q.remove(&from);
            }
        }
        let n = moved.len() as u32;
        if !moved.is_empty() {
            q.entry(to).or_default().extend(moved);
        }
        Ok(woken + n)
    }

    /// FUTEX_WAKE_OP.
    pub fn wake_op(
        &self,
        mm: &MemoryManager,
        addr1: u64,
        addr2: u64,
        n1: u32,
        n2: u32,
        op: u32,
    ) -> KResult<u32> {
        let k1 = self.key(mm, addr1, false)?;
        let k2 = self.key(mm, addr2, false)?;
        let mut q = lock(&self.queues);
        let cell = mm.atomic_u32(addr2)?;
        let oparg_raw = (op >> 12) & 0xfff;
        let cmparg = op & 0xfff;
        let opkind = (op >> 28) & 0x7;
        let oparg = if op & (8 << 28) != 0 {
            1u32.checked_shl(oparg_raw).unwrap_or(0)
        } else {
            oparg_raw
        };
        let old = loop {
            let cur = cell.load(Ordering::SeqCst);
            let new = match opkind {
                0 => oparg,
                1 => cur.wrapping_add(oparg),
                2 => cur | oparg,
                3 => cur & !oparg,
                4 => cur ^ oparg,
                _ => return Err(Errno::ENOSYS),
            };
            if cell
                .compare_exchange(cur, new, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                break cur;
            }
        };
        let cond = match (op >> 24) & 0xf {
            0 => old == cmparg,
            1 => old != cmparg,
            2 => (old as i32) < cmparg as i32,
            3 => (old as i32) <= cmparg as i32,
            4 => (old as i32) > cmparg as i32,
            5 => (old as i32) >= cmparg as i32,
            _ => return Err(Errno::ENOSYS),
        };
        let mut n = Self::wake_locked(&mut q, k1, n1, u32::MAX);
        if cond {
            n += Self::wake_locked(&mut q, k2, n2, u32::MAX);
        }
        Ok(n)
    }
}
