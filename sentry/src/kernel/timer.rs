//! Kernel timers: one host thread runs callbacks at their deadlines
//! (ITIMER_REAL/alarm and other timed signal sources).

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

type Callback = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct State {
    next_id: u64,
    /// (deadline, id) → callback
    queue: BTreeMap<(Instant, u64), Callback>,
    thread_started: bool,
}

pub struct Timers {
    inner: Arc<(Mutex<State>, Condvar)>,
}

impl Timers {
    pub fn new() -> Timers {
        Timers {
            inner: Arc::new((Mutex::new(State::default()), Condvar::new())),
        }
    }

    /// Runs `f` at `deadline`; returns an id for `cancel`.
    pub fn schedule(&self, deadline: Instant, f: Callback) -> u64 {
        let (m, cv) = &*self.inner;
        let mut st = m.lock().unwrap_or_else(|p| p.into_inner());
        st.next_id += 1;
        let id = st.next_id;
        st.queue.insert((deadline, id), f);
        if !st.thread_started {
            st.thread_started = true;
            let inner = self.inner.clone();
            let _ = std::thread::Builder::new()
                .name("timers".into())
                .spawn(move || run(inner));
        }
        cv.notify_all();
        id
    }

    pub fn cancel(&self, id: u64) {
        let (m, cv) = &*self.inner;
        let mut st = m.lock().unwrap_or_else(|p| p.into_inner());
        st.queue.retain(|&(_, i), _| i != id);
        cv.notify_all();
    }
}

impl Default for Timers {
    fn default() -> Self {
        Timers::new()
    }
}

fn run(inner: Arc<(Mutex<State>, Condvar)>) {
    let (m, cv) = &*inner;
    let mut st = m.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let now = Instant::now();
        let first = st.queue.keys().next().copied();
        match first {
            Some(k) if k.0 <= now => {
                if let Some(f) = st.queue.remove(&k) {
                    drop(st);
                    f();
                    st = m.lock().unwrap_or_else(|p| p.into_inner());
                }
            }
            Some(k) => {
                st = cv
                    .wait_timeout(st, k.0 - now)
                    .map(|r| r.0)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
            None => {
                st = cv.wait(st).unwrap_or_else(|p| p.into_inner());
            }
        }
    }
}
