//! inotify(7): watches on inodes and a queue of events, fed by the syscall
//! layer through `notify` (so only changes made inside the sandbox are
//! seen).

use super::lock;
use crate::errno::{Errno, KResult};
use crate::kernel::task::Task;
use crate::kernel::waiter::WaitQueue;
use crate::vfs::file::{POLLIN, POLLRDNORM};
use crate::vfs::{File, FileOps, Inode, Stat};
use std::any::Any;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

pub const IN_ACCESS: u32 = 0x1;
pub const IN_MODIFY: u32 = 0x2;
pub const IN_ATTRIB: u32 = 0x4;
pub const IN_CLOSE_WRITE: u32 = 0x8;
pub const IN_CLOSE_NOWRITE: u32 = 0x10;
pub const IN_OPEN: u32 = 0x20;
pub const IN_MOVED_FROM: u32 = 0x40;
pub const IN_MOVED_TO: u32 = 0x80;
pub const IN_CREATE: u32 = 0x100;
pub const IN_DELETE: u32 = 0x200;
pub const IN_DELETE_SELF: u32 = 0x400;
pub const IN_MOVE_SELF: u32 = 0x800;
pub const IN_UNMOUNT: u32 = 0x2000;
pub const IN_Q_OVERFLOW: u32 = 0x4000;
pub const IN_IGNORED: u32 = 0x8000;
pub const IN_ONLYDIR: u32 = 0x0100_0000;
pub const IN_DONT_FOLLOW: u32 = 0x0200_0000;
pub const IN_EXCL_UNLINK: u32 = 0x0400_0000;
pub const IN_MASK_CREATE: u32 = 0x1000_0000;
pub const IN_MASK_ADD: u32 = 0x2000_0000;
pub const IN_ISDIR: u32 = 0x4000_0000;
pub const IN_ONESHOT: u32 = 0x8000_0000;
pub const IN_ALL_EVENTS: u32 = 0xfff;
/// The bits inotify_add_watch accepts.
pub const IN_VALID_MASK: u32 = IN_ALL_EVENTS
    | IN_ONLYDIR
    | IN_DONT_FOLLOW
    | IN_EXCL_UNLINK
    | IN_MASK_CREATE
    | IN_MASK_ADD
    | IN_ONESHOT;

/// fs.inotify.max_queued_events.
pub const MAX_QUEUED_EVENTS: usize = 16384;

/// How many watches exist across all instances: `notify` is free when 0.
static WATCH_COUNT: AtomicUsize = AtomicUsize::new(0);
static INSTANCES: Mutex<Vec<Weak<Inotify>>> = Mutex::new(Vec::new());

/// Identity of an inode: (dev, ino) when it can be stat'ed (filesystems may
/// hand out a fresh Arc per lookup), else the Arc's address.
pub fn inode_key(inode: &Arc<dyn Inode>) -> (u64, u64) {
    match inode.stat() {
        Ok(st) => (st.dev, st.ino),
        Err(_) => (u64::MAX, Arc::as_ptr(inode) as *const () as usize as u64),
    }
}

struct Watch {
    wd: i32,
    key: (u64, u64),
    mask: u32,
    /// Pins the inode (as Linux's watch does).
    _inode: Arc<dyn Inode>,
}

#[derive(Clone, PartialEq, Eq)]
struct Event {
    wd: i32,
    mask: u32,
    cookie: u32,
    name: Vec<u8>,
}

impl Event {
    /// The record's size: header plus the name NUL-padded to 4 bytes.
    fn len(&self) -> usize {
        16 + self.name_len()
    }
    fn name_len(&self) -> usize {
        if self.name.is_empty() {
            0
        } else {
            (self.name.len() + 1 + 3) & !3
        }
    }
}

#[derive(Default)]
struct State {
    watches: Vec<Watch>,
    next_wd: i32,
    events: VecDeque<Event>,
}

pub struct Inotify {
    state: Mutex<State>,
    queue: WaitQueue,
}

/// A new inotify instance, registered for `notify`.
pub fn new_inotify() -> Arc<Inotify> {
    let i = Arc::new(Inotify {
        state: Mutex::new(State {
            next_wd: 1,
            ..State::default()
        }),
        queue: WaitQueue::new(),
    });
    let mut all = lock(&INSTANCES);
    all.retain(|w| w.strong_count() > 0);
    all.push(Arc::downgrade(&i));
    i
}

impl State {
    fn push(&mut self, ev: Event) {
        if self.events.back() == Some(&ev) {
            return;
        }
        if self.events.len() >= MAX_QUEUED_EVENTS {
            return;
        }
        if self.events.len() == MAX_QUEUED_EVENTS - 1 {
            self.events.push_back(Event {
                wd: -1,
                mask: IN_Q_OVERFLOW,
                cookie: 0,
                name: Vec::new(),
            });
            return;
        }
        self.events.push_back(ev);
    }

    fn remove_watch(&mut self, idx: usize) {
        let w = self.watches.remove(idx);
        WATCH_COUNT.fetch_sub(1, Ordering::Relaxed);
        self.push(Event {
            wd: w.wd,
            mask: IN_IGNORED,
            cookie: 0,
            name: Vec::new(),
        });
    }
}

impl Inotify {
    /// inotify_add_watch on `inode`: the watch descriptor (the existing one
    /// when the inode is already watched).
    pub fn add_watch(&self, inode: &Arc<dyn Inode>, mask: u32) -> KResult<i32> {
        let key = inode_key(inode);
        let mut s = lock(&self.state);
        if let Some(w) = s.watches.iter_mut().find(|w| w.key == key) {
            if mask & IN_MASK_CREATE != 0 {
                return Err(Errno::EEXIST);
            }
            let m = mask & (IN_ALL_EVENTS | IN_EXCL_UNLINK | IN_ONESHOT);
            w.mask = if mask & IN_MASK_ADD != 0 {
                w.mask | m
            } else {
                m
            };
            return Ok(w.wd);
        }
        let wd = s.next_wd;
        s.next_wd = s.next_wd.checked_add(1).ok_or(Errno::ENOSPC)?;
        s.watches.push(Watch {
            wd,
            key,
            mask: mask & (IN_ALL_EVENTS | IN_EXCL_UNLINK | IN_ONESHOT),
            _inode: inode.clone(),
        });
        WATCH_COUNT.fetch_add(1, Ordering::Relaxed);
        Ok(wd)
    }

    /// inotify_rm_watch: queues IN_IGNORED.
    pub fn rm_watch(&self, wd: i32) -> KResult<()> {
        {
            let mut s = lock(&self.state);
            let idx = s
                .watches
                .iter()
                .position(|w| w.wd == wd)
                .ok_or(Errno::EINVAL)?;
            s.remove_watch(idx);
        }
        self.queue.notify_all();
        Ok(())
    }

    /// Queues `mask` for watches on `key` (with `name` when the watch is on
    /// the directory containing the subject); `self_event` drops the watch
    /// after IN_DELETE_SELF.
    fn deliver(&self, key: (u64, u64), mask: u32, name: &[u8], cookie: u32) -> bool {
        let mut s = lock(&self.state);
        let Some(idx) = s.watches.iter().position(|w| w.key == key) else {
            return false;
        };
        let w = &s.watches[idx];
        let ev_bits = mask & IN_ALL_EVENTS;
        let mut queued = false;
        if w.mask & ev_bits != 0 {
            let (wd, oneshot) = (w.wd, w.mask & IN_ONESHOT != 0);
            s.push(Event {
                wd,
                mask,
                cookie,
                name: name.to_vec(),
            });
            queued = true;
            if oneshot {
                s.remove_watch(idx);
                return true;
            }
        }
        if ev_bits & IN_DELETE_SELF != 0 {
            s.remove_watch(idx);
            queued = true;
        }
        queued
    }

    fn try_read(&self, len: usize) -> Option<KResult<Vec<u8>>> {
        let mut s = lock(&self.state);
        let first = s.events.front()?;
        if first.len() > len {
            return Some(Err(Errno::EINVAL));
        }
        let mut out = Vec::new();
        while let Some(ev) = s.events.front() {
            if out.len() + ev.len() > len {
                break;
            }
            let ev = s.events.pop_front().unwrap();
            out.extend_from_slice(&ev.wd.to_ne_bytes());
            out.extend_from_slice(&ev.mask.to_ne_bytes());
            out.extend_from_slice(&ev.cookie.to_ne_bytes());
            out.extend_from_slice(&(ev.name_len() as u32).to_ne_bytes());
            let start = out.len();
            out.extend_from_slice(&ev.name);
            out.resize(start + ev.name_len(), 0);
        }
        Some(Ok(out))
    }

    /// Bytes of queued events (FIONREAD).
    pub fn pending_bytes(&self) -> usize {
        lock(&self.state).events.iter().map(Event::len).sum()
    }
}

impl Drop for Inotify {
    fn drop(&mut self) {
        let n = lock(&self.state).watches.len();
        WATCH_COUNT.fetch_sub(n, Ordering::Relaxed);
    }
}

static COOKIE: AtomicUsize = AtomicUsize::new(1);

/// A fresh cookie tying IN_MOVED_FROM to IN_MOVED_TO.
pub fn next_cookie() -> u32 {
    COOKIE.fetch_add(1, Ordering::Relaxed) as u32
}

/// Whether any watch exists (callers may skip work otherwise).
pub fn active() -> bool {
    WATCH_COUNT.load(Ordering::Relaxed) != 0
}

/// Reports event `mask` on `name` in `dir_inode`: to watches on the
/// directory (with `name`) and on `child_inode` itself (without one).
pub fn notify(
    dir_inode: &Arc<dyn Inode>,
    child_inode: Option<&Arc<dyn Inode>>,
    mask: u32,
    name: &[u8],
    cookie: u32,
) {
    if !active() {
        return;
    }
    let dkey = inode_key(dir_inode);
    let ckey = child_inode.map(inode_key);
    for_each(|i| {
        let mut q = i.deliver(dkey, mask, name, cookie);
        if let Some(ck) = ckey {
            q |= i.deliver(ck, mask, b"", cookie);
        }
        q
    });
}

/// Reports a self event (IN_DELETE_SELF, IN_MOVE_SELF, IN_ATTRIB…) to
/// watches on `inode` only.
pub fn notify_self(inode: &Arc<dyn Inode>, mask: u32) {
    if !active() {
        return;
    }
    let key = inode_key(inode);
    for_each(|i| i.deliver(key, mask, b"", 0));
}

fn for_each(mut f: impl FnMut(&Inotify) -> bool) {
    let all: Vec<Arc<Inotify>> = lock(&INSTANCES).iter().filter_map(Weak::upgrade).collect();
    for i in all {
        if f(&i) {
            i.queue.notify_all();
        }
    }
}

/// Reports a change to an open file: to the file's watches and in its
/// parent directory with its name.
pub fn notify_file(f: &File, mask: u32) {
    if !active() {
        return;
    }
    if let Some(d) = &f.dentry {
        notify_dentry(d, mask);
    }
}

/// As `notify_file`, for a looked-up path.
pub fn notify_dentry(d: &crate::vfs::Dentry, mask: u32) {
    if !active() {
        return;
    }
    {
        let isdir = d.inode.stat().map(|s| s.is_dir()).unwrap_or(false);
        let mask = if isdir { mask | IN_ISDIR } else { mask };
        match &d.parent {
            Some(p) => notify(&p.inode, Some(&d.inode), mask, &d.name, 0),
            None => notify_self(&d.inode, mask),
        }
    }
}

impl FileOps for Inotify {
    fn read(&self, t: &Task, f: &File, buf: &mut [u8], _off: u64) -> KResult<usize> {
        let len = buf.len();
        let out = match self.try_read(len) {
            Some(r) => r?,
            None if f.nonblocking() => return Err(Errno::EAGAIN),
            None => t.block_until(&[&self.queue], &[], None, || self.try_read(len))?,
        };
        buf[..out.len()].copy_from_slice(&out);
        Ok(out.len())
    }

    fn stat(&self) -> KResult<Stat> {
        Ok(super::eventfd::anon_inode_stat())
    }

    fn readiness(&self, mask: u32) -> u32 {
        if lock(&self.state).events.is_empty() {
            0
        } else {
            (POLLIN | POLLRDNORM) & mask
        }
    }

    fn queue(&self) -> Option<&WaitQueue> {
        Some(&self.queue)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_coalesce_and_overflow() {
        let i = new_inotify();
        let mut s = lock(&i.state);
        let ev = |n: &[u8]| Event {
            wd: 1,
            mask: IN_MODIFY,
            cookie: 0,
            name: n.to_vec(),
        };
        s.push(ev(b"a"));
        s.push(ev(b"a"));
        s.push(ev(b"bcde"));
        assert_eq!(s.events.len(), 2);
        assert_eq!(s.events[0].len(), 20);
        assert_eq!(s.events[1].len(), 24);
        drop(s);
        assert!(matches!(i.try_read(10), Some(Err(Errno::EINVAL))));
        let out = i.try_read(30).unwrap().unwrap();
        assert_eq!(out.len(), 20);
        assert_eq!(&out[16..20], b"a\0\0\0");
        let mut s = lock(&i.state);
        s.events.clear();
        for n in 0..MAX_QUEUED_EVENTS + 10 {
            s.push(ev(n.to_string().as_bytes()));
        }
        assert_eq!(s.events.len(), MAX_QUEUED_EVENTS);
        assert_eq!(s.events.back().unwrap().mask, IN_Q_OVERFLOW);
    }
}
