//! POSIX message queues (mq_overview(7)): named queues of prioritized
//! messages, one namespace for the sandbox (what an IPC namespace of its
//! own gives a container). A queue lives until it is unlinked and its last
//! descriptor is closed; a descriptor is a file whose read shows the
//! queue's state as Linux's mqueue filesystem does, and which polls
//! readable when a message waits and writable when there is room.

use super::signal::SigInfo;
use super::task::{lock, Task, ThreadGroup};
use super::waiter::WaitQueue;
use crate::errno::{Errno, KResult};
use crate::vfs::file::{POLLIN, POLLOUT, POLLRDNORM, POLLWRNORM};
use crate::vfs::{File, FileOps, Stat};
use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, Weak};

/// /proc/sys/fs/mqueue defaults: msg_default, msgsize_default, and the
/// limits an unprivileged creator may ask for (msg_max, msgsize_max).
pub const MSG_DEFAULT: i64 = 10;
pub const MSGSIZE_DEFAULT: i64 = 8192;
pub const MSG_MAX: i64 = 10;
pub const MSGSIZE_MAX: i64 = 8192;
/// HARD_MSGMAX and HARD_MSGSIZEMAX: what even CAP_SYS_RESOURCE may not pass.
pub const HARD_MSG_MAX: i64 = 65536;
pub const HARD_MSGSIZE_MAX: i64 = 16 << 20;
/// MQ_PRIO_MAX.
pub const PRIO_MAX: u32 = 32768;
/// SI_MESGQ: the si_code of a notification.
const SI_MESGQ: i32 = -3;

/// Who mq_notify registered, and how to tell it.
struct Notify {
    tg: Weak<ThreadGroup>,
    tgid: i32,
    /// None: SIGEV_NONE (registered, nothing sent).
    signo: Option<i32>,
    value: u64,
}

struct State {
    /// (priority reversed, arrival) → message: the first entry is the
    /// oldest of the highest priority.
    msgs: BTreeMap<(u32, u64), Vec<u8>>,
    next_seq: u64,
    bytes: u64,
    notify: Option<Notify>,
    /// Receivers blocked in mq_timedreceive (a notification is only sent
    /// when nobody waits).
    receivers: usize,
}

pub struct Queue {
    pub maxmsg: i64,
    pub msgsize: i64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    st: Mutex<State>,
    queue: WaitQueue,
}

/// The sandbox's queues by name (without the leading '/').
static NAMES: Mutex<Option<HashMap<Vec<u8>, Arc<Queue>>>> = Mutex::new(None);

impl Queue {
    pub fn new(maxmsg: i64, msgsize: i64, mode: u32, uid: u32, gid: u32) -> Arc<Queue> {
        Arc::new(Queue {
            maxmsg,
            msgsize,
            mode,
            uid,
            gid,
            st: Mutex::new(State {
                msgs: BTreeMap::new(),
                next_seq: 0,
                bytes: 0,
                notify: None,
                receivers: 0,
            }),
            queue: WaitQueue::new(),
        })
    }

    pub fn stat_for_access(&self) -> Stat {
        Stat {
            mode: libc::S_IFREG | (self.mode & 0o777),
            uid: self.uid,
            gid: self.gid,
            nlink: 1,
            ..crate::fs::eventfd::anon_inode_stat()
        }
    }

    /// Adds a message if there is room (the caller checked its size).
    /// Returns the notification to send, if one is due.
    fn try_send(&self, data: &[u8], prio: u32) -> Option<Option<Notify>> {
        let mut st = lock(&self.st);
        if st.msgs.len() as i64 >= self.maxmsg {
            return None;
        }
        let was_empty = st.msgs.is_empty();
        let seq = st.next_seq;
        st.next_seq += 1;
        st.msgs.insert((u32::MAX - prio, seq), data.to_vec());
        st.bytes += data.len() as u64;
        // Linux notifies when a message arrives on an empty queue that no
        // receiver is blocked on, then forgets the registration.
        let notify = if was_empty && st.receivers == 0 {
            st.notify.take()
        } else {
            None
        };
        drop(st);
        self.queue.notify_all();
        Some(notify)
    }

    fn try_receive(&self) -> Option<(Vec<u8>, u32)> {
        let mut st = lock(&self.st);
        let (&key, _) = st.msgs.iter().next()?;
        let msg = st.msgs.remove(&key)?;
        st.bytes -= msg.len() as u64;
        drop(st);
        self.queue.notify_all();
        Some((msg, u32::MAX - key.0))
    }

    /// mq_timedsend: EMSGSIZE for a message over the queue's size, EAGAIN
    /// when full and non-blocking, ETIMEDOUT past `deadline`.
    pub fn send(
        &self,
        t: &Task,
        data: &[u8],
        prio: u32,
        nonblock: bool,
        deadline: Option<std::time::Instant>,
    ) -> KResult<()> {
        if data.len() as i64 > self.msgsize {
            return Err(Errno::EMSGSIZE);
        }
        let notify = match self.try_send(data, prio) {
            Some(n) => n,
            None if nonblock => return Err(Errno::EAGAIN),
            None => t.block_until(&[&self.queue], &[], deadline, || {
                self.try_send(data, prio).map(Ok)
            })?,
        };
        if let Some(n) = notify {
            if let (Some(signo), Some(tg)) = (n.signo, n.tg.upgrade()) {
                let mut info = SigInfo::from_sender(signo, SI_MESGQ, t.tgid(), t.creds().ruid);
                info.0[24..32].copy_from_slice(&n.value.to_le_bytes());
                t.kernel.send_to_group(&tg, info);
            }
        }
        Ok(())
    }

    /// mq_timedreceive: the oldest message of the highest priority.
    pub fn receive(
        &self,
        t: &Task,
        room: usize,
        nonblock: bool,
        deadline: Option<std::time::Instant>,
    ) -> KResult<(Vec<u8>, u32)> {
        if (room as i64) < self.msgsize {
            return Err(Errno::EMSGSIZE);
        }
        if let Some(m) = self.try_receive() {
            return Ok(m);
        }
        if nonblock {
            return Err(Errno::EAGAIN);
        }
        lock(&self.st).receivers += 1;
        let r = t.block_until(&[&self.queue], &[], deadline, || self.try_receive().map(Ok));
        lock(&self.st).receivers -= 1;
        r
    }

    /// mq_notify: `None` removes the caller's registration; a new one is
    /// EBUSY while another process holds it.
    pub fn set_notify(
        &self,
        tg: &Arc<ThreadGroup>,
        how: Option<(Option<i32>, u64)>,
    ) -> KResult<()> {
        let mut st = lock(&self.st);
        let held_by_other = st
            .notify
            .as_ref()
            .is_some_and(|n| n.tgid != tg.tgid && n.tg.strong_count() > 0);
        match how {
            None => {
                if st.notify.as_ref().is_some_and(|n| n.tgid == tg.tgid) {
                    st.notify = None;
                }
                Ok(())
            }
            Some(_) if held_by_other || st.notify.as_ref().is_some_and(|n| n.tgid == tg.tgid) => {
                Err(Errno::EBUSY)
            }
            Some((signo, value)) => {
                st.notify = Some(Notify {
                    tg: Arc::downgrade(tg),
                    tgid: tg.tgid,
                    signo,
                    value,
                });
                Ok(())
            }
        }
    }

    pub fn cur_msgs(&self) -> i64 {
        lock(&self.st).msgs.len() as i64
    }

    /// What reading the queue's file shows (Linux's mqueue_read_file).
    fn info(&self) -> Vec<u8> {
        let st = lock(&self.st);
        let (notify, signo, pid) = match &st.notify {
            Some(n) => (0, n.signo.unwrap_or(0), n.tgid),
            None => (0, 0, 0),
        };
        format!(
            "QSIZE:{:<10} NOTIFY:{:<5} SIGNO:{:<5} NOTIFY_PID:{:<6}\n",
            st.bytes, notify, signo, pid
        )
        .into_bytes()
    }
}

/// The queue named `name`, if any.
pub fn lookup(name: &[u8]) -> Option<Arc<Queue>> {
    lock(&NAMES).as_ref()?.get(name).cloned()
}

/// Adds `q` under `name`, or returns the queue already there.
pub fn insert(name: &[u8], q: Arc<Queue>) -> Result<Arc<Queue>, Arc<Queue>> {
    let mut names = lock(&NAMES);
    let map = names.get_or_insert_with(HashMap::new);
    if let Some(old) = map.get(name) {
        return Err(old.clone());
    }
    map.insert(name.to_vec(), q.clone());
    Ok(q)
}

/// mq_unlink: the name goes; open descriptors keep the queue.
pub fn remove(name: &[u8]) -> Option<Arc<Queue>> {
    lock(&NAMES).as_mut()?.remove(name)
}

/// A message queue descriptor.
pub struct MqFile {
    pub q: Arc<Queue>,
}

impl FileOps for MqFile {
    fn read(&self, _t: &Task, _f: &File, buf: &mut [u8], off: u64) -> KResult<usize> {
        let text = self.q.info();
        let start = (off as usize).min(text.len());
        let n = buf.len().min(text.len() - start);
        buf[..n].copy_from_slice(&text[start..start + n]);
        Ok(n)
    }

    fn seekable(&self) -> bool {
        true
    }

    fn stat(&self) -> KResult<Stat> {
        Ok(self.q.stat_for_access())
    }

    fn readiness(&self, mask: u32) -> u32 {
        let n = self.q.cur_msgs();
        let mut r = 0;
        if n > 0 {
            r |= POLLIN | POLLRDNORM;
        }
        if n < self.q.maxmsg {
            r |= POLLOUT | POLLWRNORM;
        }
        r & mask
    }

    fn queue(&self) -> Option<&WaitQueue> {
        Some(&self.q.queue)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highest_priority_first_then_fifo_and_bounded() {
        let q = Queue::new(3, 16, 0o600, 0, 0);
        assert!(q.try_send(b"a", 1).is_some());
        assert!(q.try_send(b"b", 5).is_some());
        assert!(q.try_send(b"c", 1).is_some());
        assert!(q.try_send(b"d", 9).is_none(), "full at maxmsg");
        assert_eq!(q.readiness(POLLIN | POLLOUT), POLLIN);
        let order: Vec<_> = std::iter::from_fn(|| q.try_receive()).collect();
        assert_eq!(
            order,
            vec![(b"b".to_vec(), 5), (b"a".to_vec(), 1), (b"c".to_vec(), 1)]
        );
        assert!(q.info().starts_with(b"QSIZE:0 "));
    }

    impl Queue {
        fn readiness(self: &Arc<Self>, mask: u32) -> u32 {
            MqFile { q: self.clone() }.readiness(mask)
        }
    }
}
