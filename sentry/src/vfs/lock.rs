//! Advisory file locks with Linux semantics: flock(2) locks, POSIX record
//! locks (fcntl F_SETLK/F_SETLKW/F_GETLK) and open-file-description locks
//! (F_OFD_SETLK/F_OFD_SETLKW/F_OFD_GETLK).
//!
//! Locks live in one table per file, keyed by the identity of the object
//! every open of the file shares: the dentry's inode (Arc address) when the
//! File has a dentry, the pipe for pipes, else the FileOps. A table exists
//! only while some lock is held or some task waits on it; it keeps a Weak
//! of the keyed object so the address cannot be reused meanwhile.
//!
//! Owners, as on Linux:
//! - flock locks belong to the open file description (File) and go away
//!   with its last reference (`release_file`, called from File's Drop);
//! - OFD record locks belong to the File too, and conflict with POSIX locks;
//! - POSIX record locks belong to the process (thread group). They are not
//!   inherited by fork, and all of a process's locks on a file go when it
//!   closes *any* fd of that file (`on_close`) or exits (`release_process`).
//!   As a safety net, locks set through a File also go when that File's last
//!   reference drops (the setter must have closed it by then), and locks of a
//!   process found dead while checking a conflict are dropped lazily.
//!
//! Record ranges are inclusive byte ranges `[start, end]`, `end ==
//! OFFSET_MAX` meaning "to EOF and beyond"; a process's locks are split and
//! merged like Linux's posix_lock_inode (adjacent or overlapping locks of
//! the same type coalesce).
//!
//! Blocking waits go through Task::block_until on the table's WaitQueue; a
//! signal ends them with ERESTARTSYS (flock and F_SETLKW are restarted
//! under SA_RESTART, EINTR otherwise, as signal(7) lists). Deadlocks between
//! processes waiting in F_SETLKW are detected (EDEADLK), like Linux's
//! posix_locks_deadlock (the wait-for chain is followed up to 10 steps).
//!
//! Lock order: the global table map, then one table's state; the kernel's
//! task set (for the dead-owner check) is only taken with neither held, so
//! Files may be dropped (and release their locks) under the task set.

use super::file::{File, FileOps};
use super::Inode;
use crate::errno::{Errno, KResult};
use crate::fs::pipe::Pipe;
use crate::kernel::task::{lock, Task, ThreadGroup};
use crate::kernel::waiter::WaitQueue;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// The largest file offset (Linux's OFFSET_MAX): a lock ending here runs to
/// EOF, however the file grows.
pub const OFFSET_MAX: i64 = i64::MAX;

/// `File::lock_state` bits: what the File may have to release on drop.
pub const HOLDS_FLOCK: u8 = 1;
pub const HOLDS_OFD: u8 = 2;
pub const SET_POSIX: u8 = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockType {
    Read,
    Write,
}

impl LockType {
    /// From l_type (F_RDLCK/F_WRLCK); None for F_UNLCK.
    pub fn from_l_type(t: i16) -> KResult<Option<LockType>> {
        match t as i32 {
            libc::F_RDLCK => Ok(Some(LockType::Read)),
            libc::F_WRLCK => Ok(Some(LockType::Write)),
            libc::F_UNLCK => Ok(None),
            _ => Err(Errno::EINVAL),
        }
    }

    pub fn l_type(self) -> i16 {
        match self {
            LockType::Read => libc::F_RDLCK as i16,
            LockType::Write => libc::F_WRLCK as i16,
        }
    }
}

fn conflicting(a: LockType, b: LockType) -> bool {
    a == LockType::Write || b == LockType::Write
}

/// Who owns a record lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// A POSIX lock: the thread group, by address.
    Process(usize),
    /// An OFD lock: the open file description, by address.
    File(usize),
}

#[derive(Clone, Debug)]
struct Record {
    owner: Owner,
    typ: LockType,
    start: i64,
    /// Inclusive; OFFSET_MAX for "to EOF".
    end: i64,
    /// What F_GETLK reports: the owner's tgid, -1 for OFD locks.
    pid: i32,
    /// POSIX locks: the owning group (liveness checks; pins the address).
    tg: Option<Weak<ThreadGroup>>,
    /// The Files the lock was set through (POSIX), released with them.
    via: Vec<usize>,
}

impl Record {
    fn overlaps(&self, start: i64, end: i64) -> bool {
        self.start <= end && start <= self.end
    }
}

/// What F_GETLK finds: the first lock in the way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    pub typ: LockType,
    pub start: i64,
    /// Inclusive; OFFSET_MAX for "to EOF".
    pub end: i64,
    pub pid: i32,
}

#[derive(Clone, Copy)]
struct FlockEntry {
    file: usize,
    typ: LockType,
}

#[derive(Default)]
struct State {
    flocks: Vec<FlockEntry>,
    records: Vec<Record>,
}

impl State {
    fn is_empty(&self) -> bool {
        self.flocks.is_empty() && self.records.is_empty()
    }
}

/// Keeps the keyed object's allocation (not the object) alive while its
/// table exists, so its address is not reused for another file.
#[allow(dead_code)]
enum Pin {
    Inode(Weak<dyn Inode>),
    Pipe(Weak<Pipe>),
    Ops(Weak<dyn FileOps>),
}

/// The locks of one file.
pub struct FileLocks {
    state: Mutex<State>,
    /// Notified whenever a lock is released or downgraded.
    queue: WaitQueue,
    _pin: Pin,
}

/// Every table with locks or waiters, by file identity.
static TABLES: Mutex<BTreeMap<usize, Arc<FileLocks>>> = Mutex::new(BTreeMap::new());

/// For deadlock detection: the process (group address) each blocked
/// F_SETLKW process waits for.
static BLOCKED: Mutex<BTreeMap<usize, usize>> = Mutex::new(BTreeMap::new());

fn addr<T: ?Sized>(p: *const T) -> usize {
    p as *const () as usize
}

/// The identity of the file behind `f`, and how to pin it.
fn key_of(f: &File) -> (usize, Pin) {
    if let Some(d) = &f.dentry {
        return (
            addr(Arc::as_ptr(&d.inode)),
            Pin::Inode(Arc::downgrade(&d.inode)),
        );
    }
    if let Some(p) = crate::fs::pipe::pipe_of(&*f.ops) {
        return (addr(Arc::as_ptr(p)), Pin::Pipe(Arc::downgrade(p)));
    }
    (addr(Arc::as_ptr(&f.ops)), Pin::Ops(Arc::downgrade(&f.ops)))
}

/// The address identifying the open file description `f`.
pub fn file_id(f: &File) -> usize {
    addr(f as *const File)
}

/// The table for `f`'s file, made if missing. Callers hand it back with
/// `put` so an unused table is dropped.
fn get_table(f: &File) -> (usize, Arc<FileLocks>) {
    let (key, pin) = key_of(f);
    let mut m = lock(&TABLES);
    let t = m
        .entry(key)
        .or_insert_with(|| {
            Arc::new(FileLocks {
                state: Mutex::new(State::default()),
                queue: WaitQueue::new(),
                _pin: pin,
            })
        })
        .clone();
    (key, t)
}

/// The existing table for `f`'s file, if any.
fn find_table(f: &File) -> Option<(usize, Arc<FileLocks>)> {
    let m = lock(&TABLES);
    if m.is_empty() {
        return None;
    }
    let (key, _) = key_of(f);
    m.get(&key).map(|t| (key, t.clone()))
}

/// Returns a table reference; the table goes once it holds nothing and
/// nobody else holds it (new references are only made under the map lock,
/// so the count is reliable there).
fn put(key: usize, t: Arc<FileLocks>) {
    drop(t);
    let mut m = lock(&TABLES);
    if let Some(e) = m.get(&key) {
        if Arc::strong_count(e) == 1 && lock(&e.state).is_empty() {
            m.remove(&key);
        }
    }
}

/// Whether any lock exists at all (a cheap check for close paths).
pub fn any_locks() -> bool {
    !lock(&TABLES).is_empty()
}

// ---------------------------------------------------------------------------
// flock(2)
// ---------------------------------------------------------------------------

/// flock(2) on the open file description `f`: `typ` None unlocks; with
/// `wait`, blocks until the lock is granted (EWOULDBLOCK (EAGAIN) otherwise).
pub fn flock(t: &Task, f: &File, typ: Option<LockType>, wait: bool) -> KResult<()> {
    let me = file_id(f);
    if typ.is_none() && f.lock_state.load(Ordering::Relaxed) & HOLDS_FLOCK == 0 {
        return Ok(());
    }
    let (key, tbl) = get_table(f);
    let r = flock_locked(t, f, me, &tbl, typ, wait);
    put(key, tbl);
    r
}

fn flock_locked(
    t: &Task,
    f: &File,
    me: usize,
    tbl: &FileLocks,
    typ: Option<LockType>,
    wait: bool,
) -> KResult<()> {
    {
        let mut s = lock(&tbl.state);
        if let Some(i) = s.flocks.iter().position(|l| l.file == me) {
            if Some(s.flocks[i].typ) == typ {
                return Ok(());
            }
            // Like Linux, a conversion drops the old lock first (it is not
            // atomic: a failed LOCK_NB conversion leaves no lock).
            s.flocks.remove(i);
            drop(s);
            tbl.queue.notify_all();
        }
    }
    let Some(typ) = typ else {
        return Ok(());
    };
    let try_lock = || {
        let mut s = lock(&tbl.state);
        if s.flocks
            .iter()
            .any(|l| l.file != me && conflicting(l.typ, typ))
        {
            return None;
        }
        f.lock_state.fetch_or(HOLDS_FLOCK, Ordering::Relaxed);
        s.flocks.push(FlockEntry { file: me, typ });
        Some(Ok(()))
    };
    if !wait {
        return try_lock().unwrap_or(Err(Errno::EAGAIN));
    }
    t.block_until(&[&tbl.queue], &[], None, try_lock)
}

// ---------------------------------------------------------------------------
// Record locks (POSIX and OFD)
// ---------------------------------------------------------------------------

/// The owner a record-lock request acts for.
pub struct Requester<'a> {
    pub owner: Owner,
    /// For POSIX locks: the requesting process.
    pub tg: Option<&'a Arc<ThreadGroup>>,
}

impl<'a> Requester<'a> {
    /// POSIX locks of the task's process.
    pub fn posix(t: &'a Task) -> Requester<'a> {
        Requester {
            owner: Owner::Process(addr(Arc::as_ptr(&t.tg))),
            tg: Some(&t.tg),
        }
    }

    /// OFD locks of the open file description `f`.
    pub fn ofd(f: &File) -> Requester<'static> {
        Requester {
            owner: Owner::File(file_id(f)),
            tg: None,
        }
    }

    fn pid(&self) -> i32 {
        self.tg.map_or(-1, |g| g.tgid)
    }
}

/// Whether the process behind a POSIX record is gone (or going): its
/// locks no longer count. Takes the task-set lock, so it is never called
/// with a table's state held.
fn owner_dead(t: &Task, w: &Weak<ThreadGroup>) -> bool {
    let Some(tg) = w.upgrade() else {
        return true;
    };
    if tg.exiting().is_some() {
        return true;
    }
    let ts = t.kernel.ts();
    match ts.procs.get(&tg.tgid) {
        Some(e) => !Arc::ptr_eq(&e.tg, &tg) || e.zombie.is_some() || e.threads.is_empty(),
        None => true,
    }
}

/// What a record-lock request finds.
enum Found<'a> {
    /// Nothing in the way: the state, still locked, to apply the request to.
    Free(MutexGuard<'a, State>),
    /// The first lock of another (live) owner in the way.
    Blocked(Record),
}

/// Looks for a lock of another owner in the way of `typ` over [start,
/// end]. Locks of processes found dead are dropped on the way (checked
/// with the state unlocked; see the module comment on lock order).
fn check<'a>(
    t: &Task,
    tbl: &'a FileLocks,
    who: Owner,
    typ: LockType,
    start: i64,
    end: i64,
) -> Found<'a> {
    loop {
        let s = lock(&tbl.state);
        let hit = s
            .records
            .iter()
            .find(|r| r.owner != who && r.overlaps(start, end) && conflicting(r.typ, typ));
        let Some(r) = hit.cloned() else {
            return Found::Free(s);
        };
        drop(s);
        match &r.tg {
            Some(w) if owner_dead(t, w) => {
                lock(&tbl.state).records.retain(|x| x.owner != r.owner);
                tbl.queue.notify_all();
            }
            _ => return Found::Blocked(r),
        }
    }
}

/// Replaces `owner`'s locks over [start, end] with `typ` (None: unlock),
/// splitting and merging like Linux.
fn apply(s: &mut State, req: &Requester, via: usize, typ: Option<LockType>, start: i64, end: i64) {
    let owner = req.owner;
    let mut kept = Vec::with_capacity(s.records.len() + 2);
    let mut mine = Vec::new();
    for r in s.records.drain(..) {
        if r.owner != owner {
            kept.push(r);
        } else if !r.overlaps(start, end) {
            mine.push(r);
        } else {
            if r.start < start {
                mine.push(Record {
                    end: start - 1,
                    ..r.clone()
                });
            }
            if r.end > end {
                mine.push(Record {
                    start: end + 1,
                    ..r
                });
            }
        }
    }
    if let Some(typ) = typ {
        mine.push(Record {
            owner,
            typ,
            start,
            end,
            pid: req.pid(),
            tg: req.tg.map(Arc::downgrade),
            via: if matches!(owner, Owner::Process(_)) {
                vec![via]
            } else {
                Vec::new()
            },
        });
    }
    mine.sort_by_key(|r| r.start);
    let mut merged: Vec<Record> = Vec::with_capacity(mine.len());
    for r in mine {
        if let Some(last) = merged.last_mut() {
            let touches = last.end == OFFSET_MAX || last.end + 1 >= r.start;
            if last.typ == r.typ && touches {
                last.end = last.end.max(r.end);
                for v in r.via {
                    if !last.via.contains(&v) {
                        last.via.push(v);
                    }
                }
                continue;
            }
        }
        merged.push(r);
    }
    kept.extend(merged);
    s.records = kept;
}

/// F_GETLK / F_OFD_GETLK: the first lock of another owner that would block
/// `typ` over [start, end].
pub fn test_lock(
    t: &Task,
    f: &File,
    req: &Requester,
    typ: LockType,
    start: i64,
    end: i64,
) -> Option<Conflict> {
    let (key, tbl) = find_table(f)?;
    let r = match check(t, &tbl, req.owner, typ, start, end) {
        Found::Free(_) => None,
        Found::Blocked(r) => Some(Conflict {
            typ: r.typ,
            start: r.start,
            end: r.end,
            pid: r.pid,
        }),
    };
    put(key, tbl);
    r
}

/// F_SETLK(W) / F_OFD_SETLK(W): sets (`typ` Some) or releases (None) the
/// requester's lock over [start, end] of `f`'s file. Without `wait` a
/// conflict is EAGAIN; with it, the call sleeps until the lock is free (a
/// signal ends the sleep with ERESTARTSYS; a POSIX deadlock gives EDEADLK).
pub fn set_lock(
    t: &Task,
    f: &File,
    req: &Requester,
    typ: Option<LockType>,
    start: i64,
    end: i64,
    wait: bool,
) -> KResult<()> {
    let me = file_id(f);
    let Some(typ) = typ else {
        if let Some((key, tbl)) = find_table(f) {
            {
                let mut s = lock(&tbl.state);
                apply(&mut s, req, me, None, start, end);
            }
            tbl.queue.notify_all();
            put(key, tbl);
        }
        return Ok(());
    };
    let (key, tbl) = get_table(f);
    let bit = match req.owner {
        Owner::Process(_) => SET_POSIX,
        Owner::File(_) => HOLDS_OFD,
    };
    let try_lock = |deadlock_check: bool| -> Option<KResult<()>> {
        match check(t, &tbl, req.owner, typ, start, end) {
            Found::Free(mut s) => {
                f.lock_state.fetch_or(bit, Ordering::Relaxed);
                apply(&mut s, req, me, Some(typ), start, end);
                drop(s);
                // Shrinking or downgrading our own lock may unblock others.
                tbl.queue.notify_all();
                Some(Ok(()))
            }
            Found::Blocked(r) => {
                if let (true, Owner::Process(mine), Owner::Process(theirs)) =
                    (deadlock_check, req.owner, r.owner)
                {
                    if let Err(e) = note_blocked(mine, theirs) {
                        return Some(Err(e));
                    }
                }
                None
            }
        }
    };
    let r = if !wait {
        try_lock(false).unwrap_or(Err(Errno::EAGAIN))
    } else {
        let posix = matches!(req.owner, Owner::Process(_));
        let r = loop {
            // POSIX waits re-check now and then: an owner that died without
            // its locks being released (see the module comment) is noticed.
            let deadline = posix.then(|| Instant::now() + Duration::from_millis(250));
            match t.block_until(&[&tbl.queue], &[], deadline, || try_lock(posix)) {
                Err(e) if e == Errno::ETIMEDOUT => continue,
                r => break r,
            }
        };
        if let Owner::Process(me_tg) = req.owner {
            lock(&BLOCKED).remove(&me_tg);
        }
        r
    };
    put(key, tbl);
    r
}

/// Records that process `me` waits for process `them`; EDEADLK if `them`
/// (transitively) waits for `me`.
fn note_blocked(me: usize, them: usize) -> KResult<()> {
    let mut b = lock(&BLOCKED);
    let mut cur = them;
    for _ in 0..10 {
        if cur == me {
            b.remove(&me);
            return Err(Errno::EDEADLK);
        }
        match b.get(&cur) {
            Some(&next) => cur = next,
            None => break,
        }
    }
    b.insert(me, them);
    Ok(())
}

// ---------------------------------------------------------------------------
// Release on close and exit
// ---------------------------------------------------------------------------

/// The last reference to the open file description `f` is going (File's
/// Drop): its flock and OFD locks go, and so do POSIX locks set through it.
pub fn release_file(f: &File) {
    let Some((key, tbl)) = find_table(f) else {
        return;
    };
    let me = file_id(f);
    {
        let mut s = lock(&tbl.state);
        s.flocks.retain(|l| l.file != me);
        s.records
            .retain(|r| r.owner != Owner::File(me) && !r.via.contains(&me));
    }
    tbl.queue.notify_all();
    put(key, tbl);
}

/// POSIX close rule: process `tg` closed an fd of `f`'s file, so all its
/// record locks on that file go (whichever fd they were set through).
pub fn on_close(tg: &Arc<ThreadGroup>, f: &File) {
    let Some((key, tbl)) = find_table(f) else {
        return;
    };
    let who = Owner::Process(addr(Arc::as_ptr(tg)));
    let changed = {
        let mut s = lock(&tbl.state);
        let n = s.records.len();
        s.records.retain(|r| r.owner != who);
        s.records.len() != n
    };
    if changed {
        tbl.queue.notify_all();
    }
    put(key, tbl);
}

/// Process `tg` exited (or is exiting): all its POSIX locks go. Call with
/// no kernel locks held.
pub fn release_process(tg: &Arc<ThreadGroup>) {
    let who = Owner::Process(addr(Arc::as_ptr(tg)));
    let tables: Vec<(usize, Arc<FileLocks>)> =
        lock(&TABLES).iter().map(|(k, t)| (*k, t.clone())).collect();
    for (key, tbl) in tables {
        let changed = {
            let mut s = lock(&tbl.state);
            let n = s.records.len();
            s.records.retain(|r| r.owner != who);
            s.records.len() != n
        };
        if changed {
            tbl.queue.notify_all();
        }
        put(key, tbl);
    }
    lock(&BLOCKED).remove(&(who_addr(who)));
}

fn who_addr(o: Owner) -> usize {
    match o {
        Owner::Process(a) | Owner::File(a) => a,
    }
}

/// Resolves an l_whence/l_start/l_len triple to an inclusive byte range,
/// like Linux's flock_to_posix_lock: `pos` is the file position (SEEK_CUR)
/// and `size` the file size (SEEK_END, only asked for then).
pub fn resolve_range(
    whence: i16,
    l_start: i64,
    l_len: i64,
    pos: impl FnOnce() -> KResult<i64>,
    size: impl FnOnce() -> KResult<i64>,
) -> KResult<(i64, i64)> {
    let base = match whence as i32 {
        libc::SEEK_SET => 0,
        libc::SEEK_CUR => pos()?,
        libc::SEEK_END => size()?,
        _ => return Err(Errno::EINVAL),
    };
    if l_start > OFFSET_MAX - base {
        return Err(Errno::EOVERFLOW);
    }
    let start = base + l_start;
    if start < 0 {
        return Err(Errno::EINVAL);
    }
    if l_len > 0 {
        if l_len - 1 > OFFSET_MAX - start {
            return Err(Errno::EOVERFLOW);
        }
        Ok((start, start + (l_len - 1)))
    } else if l_len < 0 {
        if start + l_len < 0 {
            return Err(Errno::EINVAL);
        }
        Ok((start + l_len, start - 1))
    } else {
        Ok((start, OFFSET_MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(owner: usize, typ: LockType, start: i64, end: i64) -> Record {
        Record {
            owner: Owner::Process(owner),
            typ,
            start,
            end,
            pid: owner as i32,
            tg: None,
            via: vec![],
        }
    }

    fn ranges(s: &State, owner: usize) -> Vec<(LockType, i64, i64)> {
        let mut v: Vec<_> = s
            .records
            .iter()
            .filter(|r| r.owner == Owner::Process(owner))
            .map(|r| (r.typ, r.start, r.end))
            .collect();
        v.sort_by_key(|x| x.1);
        v
    }

    fn req(owner: usize) -> Requester<'static> {
        Requester {
            owner: Owner::Process(owner),
            tg: None,
        }
    }

    use LockType::{Read as R, Write as W};

    #[test]
    fn split_and_merge() {
        let mut s = State::default();
        apply(&mut s, &req(1), 0, Some(W), 0, 99);
        apply(&mut s, &req(1), 0, None, 10, 19);
        assert_eq!(ranges(&s, 1), vec![(W, 0, 9), (W, 20, 99)]);
        apply(&mut s, &req(1), 0, Some(R), 40, 49);
        assert_eq!(
            ranges(&s, 1),
            vec![(W, 0, 9), (W, 20, 39), (R, 40, 49), (W, 50, 99)]
        );
        // Adjacent locks of the same type coalesce.
        apply(&mut s, &req(1), 0, Some(W), 10, 19);
        assert_eq!(ranges(&s, 1), vec![(W, 0, 39), (R, 40, 49), (W, 50, 99)]);
        apply(&mut s, &req(1), 0, Some(W), 40, 49);
        assert_eq!(ranges(&s, 1), vec![(W, 0, 99)]);
        // To-EOF locks.
        apply(&mut s, &req(1), 0, Some(R), 50, OFFSET_MAX);
        assert_eq!(ranges(&s, 1), vec![(W, 0, 49), (R, 50, OFFSET_MAX)]);
        apply(&mut s, &req(1), 0, None, 0, OFFSET_MAX);
        assert!(s.records.is_empty());
    }

    #[test]
    fn owners_are_separate() {
        let mut s = State::default();
        s.records.push(rec(2, R, 0, 9));
        apply(&mut s, &req(1), 0, Some(R), 5, 15);
        apply(&mut s, &req(1), 0, None, 0, 100);
        assert_eq!(ranges(&s, 2), vec![(R, 0, 9)]);
        assert!(ranges(&s, 1).is_empty());
    }

    #[test]
    fn ranges_resolve_like_linux() {
        let p = || Ok(100);
        let z = || Ok(1000);
        assert_eq!(resolve_range(0, 10, 5, p, z), Ok((10, 14)));
        assert_eq!(resolve_range(0, 10, 0, p, z), Ok((10, OFFSET_MAX)));
        assert_eq!(resolve_range(1, 0, -10, p, z), Ok((90, 99)));
        assert_eq!(resolve_range(2, -1, 1, p, z), Ok((999, 999)));
        assert_eq!(resolve_range(0, -1, 1, p, z), Err(Errno::EINVAL));
        assert_eq!(resolve_range(0, 5, -6, p, z), Err(Errno::EINVAL));
        assert_eq!(resolve_range(3, 0, 0, p, z), Err(Errno::EINVAL));
        assert_eq!(resolve_range(1, i64::MAX, 1, p, z), Err(Errno::EOVERFLOW));
        assert_eq!(resolve_range(0, 1, i64::MAX, p, z), Ok((1, OFFSET_MAX)));
        assert_eq!(resolve_range(0, 2, i64::MAX, p, z), Err(Errno::EOVERFLOW));
    }

    #[test]
    fn deadlock_chain() {
        lock(&BLOCKED).clear();
        assert_eq!(note_blocked(0x1000, 0x2000), Ok(()));
        assert_eq!(note_blocked(0x2000, 0x1000), Err(Errno::EDEADLK));
        lock(&BLOCKED).remove(&0x1000);
        assert_eq!(note_blocked(0x2000, 0x1000), Ok(()));
        lock(&BLOCKED).clear();
    }
}
